#include "proxy/core/proxy_metrics.hpp"

namespace wsgate::proxy {

ProxyMetrics::ProxyMetrics(metrics::Registry& r)
    : handshakes(r.counter("wsgate_handshakes_total",
                           "WebSocket handshakes by route and the status the client got.",
                           {"route", "code"})),
      handshake_duration(r.histogram("wsgate_handshake_duration_seconds",
                                     "Time from request headers received to the 101 relayed.",
                                     {"route"}, metrics::default_latency_buckets())),
      active_tunnels(r.gauge("wsgate_active_tunnels", "Open WebSocket tunnels.", {"route"})),
      tunnel_duration(r.histogram("wsgate_tunnel_duration_seconds",
                                  "Lifetime of closed WebSocket tunnels.", {"route"},
                                  metrics::default_duration_buckets())),
      tunnel_bytes(r.counter("wsgate_tunnel_bytes_total",
                             "Bytes carried by tunnels, counted as they flow.",
                             {"route", "direction"})),
      tunnel_closes(r.counter("wsgate_tunnel_closes_total",
                              "Closed tunnels by close code and by who closed first.",
                              {"route", "code", "initiator"})),
      http_requests(r.counter("wsgate_http_requests_total",
                              "Plain HTTP requests by route and the status the client got.",
                              {"route", "code"})),
      tls_handshake_errors(r.counter("wsgate_tls_handshake_errors_total",
                                     "Failed TLS handshakes on TLS listeners, by reason.",
                                     {"reason"})),
      config_updates(r.counter("wsgate_config_updates_total",
                               "Route configuration updates by result.", {"result"})),
      config_info(
          r.gauge("wsgate_config_info", "The route configuration version in force.", {"version"})),
      upstream_connect_errors(r.counter("wsgate_upstream_connect_errors_total",
                                        "Failed connection attempts to backends.",
                                        {"route", "backend"})),
      tunnel_timeouts(r.counter("wsgate_tunnel_timeouts_total",
                                "Tunnels the proxy closed with 1001 because of a timeout.",
                                {"route", "reason"})),
      connections_rejected(r.counter("wsgate_connections_rejected_total",
                                     "Client connections closed at accept by an admission limit.",
                                     {"reason"})) {}

}  // namespace wsgate::proxy
