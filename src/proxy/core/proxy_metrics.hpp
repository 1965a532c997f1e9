#pragma once
// Every metric the data plane exports, declared once (names and labels as the reference in
// docs/reference/metrics.md gives them). The list is an X-macro, as Envoy's
// ALL_TCP_PROXY_STATS: the struct's members, their registration and the metric-name list that
// tests check against the documentation all expand it, so a new metric is one line here.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "metrics/registry.hpp"

// COUNTER/GAUGE(member, name, help, labels...); HISTOGRAM(member, name, help, buckets, labels...)
#define WSGATE_PROXY_METRICS(COUNTER, GAUGE, HISTOGRAM)                                            \
  COUNTER(handshakes, "wsgate_handshakes_total",                                                   \
          "WebSocket handshakes by route and the status the client got.", "route", "code")         \
  HISTOGRAM(handshake_duration, "wsgate_handshake_duration_seconds",                               \
            "Time from request headers received to the 101 relayed.",                              \
            metrics::default_latency_buckets(), "route")                                           \
  GAUGE(active_tunnels, "wsgate_active_tunnels", "Open WebSocket tunnels.", "route")               \
  HISTOGRAM(tunnel_duration, "wsgate_tunnel_duration_seconds",                                     \
            "Lifetime of closed WebSocket tunnels.", metrics::default_duration_buckets(), "route") \
  COUNTER(tunnel_bytes, "wsgate_tunnel_bytes_total",                                               \
          "Bytes carried by tunnels, counted as they flow.", "route", "direction")                 \
  COUNTER(tunnel_closes, "wsgate_tunnel_closes_total",                                             \
          "Closed tunnels by close code and by who closed first.", "route", "code", "initiator")   \
  COUNTER(http_requests, "wsgate_http_requests_total",                                             \
          "Plain HTTP requests by route and the status the client got.", "route", "code")          \
  COUNTER(tls_handshake_errors, "wsgate_tls_handshake_errors_total",                               \
          "Failed TLS handshakes on TLS listeners, by reason.", "reason")                          \
  COUNTER(config_updates, "wsgate_config_updates_total", "Route configuration updates by result.", \
          "result")                                                                                \
  GAUGE(config_info, "wsgate_config_info", "The route configuration version in force.", "version") \
  COUNTER(upstream_connect_errors, "wsgate_upstream_connect_errors_total",                         \
          "Failed connection attempts to backends.", "route", "backend")                           \
  COUNTER(tunnel_timeouts, "wsgate_tunnel_timeouts_total",                                         \
          "Tunnels the proxy closed with 1001 because of a timeout.", "route", "reason")           \
  COUNTER(connections_rejected, "wsgate_connections_rejected_total",                               \
          "Client connections closed at accept by an admission limit.", "reason")

namespace wsgate::proxy {

struct ProxyMetrics {
  explicit ProxyMetrics(metrics::Registry& registry) : registry_(registry) {}

 private:
  // Declared before the families: their initializers below register through it.
  metrics::Registry& registry_;

 public:
#define WSGATE_DECLARE_COUNTER(member, name, help, ...) \
  metrics::CounterFamily& member = registry_.counter(name, help, {__VA_ARGS__});
#define WSGATE_DECLARE_GAUGE(member, name, help, ...) \
  metrics::GaugeFamily& member = registry_.gauge(name, help, {__VA_ARGS__});
#define WSGATE_DECLARE_HISTOGRAM(member, name, help, buckets, ...) \
  metrics::HistogramFamily& member = registry_.histogram(name, help, {__VA_ARGS__}, buckets);
  WSGATE_PROXY_METRICS(WSGATE_DECLARE_COUNTER, WSGATE_DECLARE_GAUGE, WSGATE_DECLARE_HISTOGRAM)
#undef WSGATE_DECLARE_COUNTER
#undef WSGATE_DECLARE_GAUGE
#undef WSGATE_DECLARE_HISTOGRAM

  void count_handshake(const std::string& route, int code) {
    handshakes.with({route, std::to_string(code)}).inc();
  }
  void count_http_request(const std::string& route, int code) {
    http_requests.with({route, std::to_string(code)}).inc();
  }
};

// The names of every family above, in declaration order.
#define WSGATE_METRIC_NAME(member, name, ...) std::string_view(name),
inline constexpr std::array kProxyMetricNames = {
    WSGATE_PROXY_METRICS(WSGATE_METRIC_NAME, WSGATE_METRIC_NAME, WSGATE_METRIC_NAME)};
#undef WSGATE_METRIC_NAME

}  // namespace wsgate::proxy
