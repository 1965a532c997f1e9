#pragma once
// Every metric the data plane exports, declared in one place (names and labels per SPEC).

#include <cstdint>
#include <string>

#include "metrics/registry.hpp"

namespace wsgate::proxy {

struct ProxyMetrics {
  explicit ProxyMetrics(metrics::Registry& registry);

  metrics::CounterFamily& handshakes;               // route, code
  metrics::HistogramFamily& handshake_duration;     // route
  metrics::GaugeFamily& active_tunnels;             // route
  metrics::HistogramFamily& tunnel_duration;        // route
  metrics::CounterFamily& tunnel_bytes;             // route, direction
  metrics::CounterFamily& tunnel_closes;            // route, code, initiator
  metrics::CounterFamily& http_requests;            // route, code
  metrics::CounterFamily& tls_handshake_errors;     // reason
  metrics::CounterFamily& config_updates;           // result
  metrics::GaugeFamily& config_info;                // version
  metrics::CounterFamily& upstream_connect_errors;  // route, backend (extra: which backend fails)
  metrics::CounterFamily& tunnel_timeouts;          // route, reason = idle / lifetime / ping
  metrics::CounterFamily& connections_rejected;     // reason = max_connections

  void count_handshake(const std::string& route, int code) {
    handshakes.with({route, std::to_string(code)}).inc();
  }
  void count_http_request(const std::string& route, int code) {
    http_requests.with({route, std::to_string(code)}).inc();
  }
};

}  // namespace wsgate::proxy
