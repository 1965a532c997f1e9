#pragma once
// What every connection of the data plane shares: options, metrics, TLS contexts.

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

#include "proxy/core/admission.hpp"
#include "proxy/core/proxy_metrics.hpp"

namespace wsgate::proxy {

struct ProxyOptions {
  // A client must send complete request headers within this time (slowloris guard).
  std::chrono::milliseconds client_header_timeout{std::chrono::seconds(10)};
  std::size_t request_header_limit = 16 * 1024;
  std::size_t response_header_limit = 16 * 1024;
  // After the proxy has sent close frames, how long peers get to answer before the sockets go.
  std::chrono::milliseconds close_grace{std::chrono::seconds(5)};
  // Open client connections over all workers (--max-connections); 0 = unlimited.
  std::size_t max_connections = 10000;
  // Open tunnels per client address (--max-tunnels-per-client); 0 = unlimited.
  std::uint32_t max_tunnels_per_client = 0;
};

class UpstreamTls;  // tls.hpp: client-side TLS contexts per CA file

struct ProxyContext {
  ProxyOptions options;
  ProxyMetrics& metrics;
  UpstreamTls* upstream_tls = nullptr;
  AdmissionLimits admission;  // counts against the two limits above
};

}  // namespace wsgate::proxy
