#pragma once
// The whole data plane process: workers, listeners, route source, snapshot publishing, admin
// endpoints, signals and the SIGTERM drain.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/route.hpp"
#include "config/route_yaml.hpp"

namespace wsgate::metrics {
class Registry;
}

namespace wsgate::proxy {

struct TlsCertPair {
  std::string cert_file;
  std::string key_file;
};

// A source of route tables besides --routes, started once the listeners are up and stopped at
// the drain: the control-plane stream (src/xds). The data plane only sees tables, so it needs
// neither gRPC nor to know where a route came from.
class RouteFeed {
 public:
  virtual ~RouteFeed() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
};

// What a RouteFeed is given: how to hand over a table, and what it may report.
struct RouteFeedHooks {
  // Applies a decoded, valid table; "" when it is in force, else why the proxy refused it.
  std::function<std::string(config::RouteTable)> apply;
  // An update that could not even be decoded.
  std::function<void(const config::ConfigError&)> reject;
  metrics::Registry* registry = nullptr;  // for the feed's own metrics
  std::string node_address;               // the listeners, with the ports they bound
};
using RouteFeedFactory = std::function<std::unique_ptr<RouteFeed>(const RouteFeedHooks&)>;

struct ProxyServerOptions {
  std::string routes_dir;               // --routes
  RouteFeedFactory route_feed;          // --control-plane: set by the main, empty = none
  std::vector<std::string> listen;      // --listen (repeatable)
  std::vector<std::string> tls_listen;  // --tls-listen (repeatable)
  std::vector<TlsCertPair> tls_certs;   // --tls-cert/--tls-key pairs
  std::string admin = "127.0.0.1:9901";
  std::chrono::seconds drain{30};
  std::size_t workers = 1;
  std::chrono::milliseconds client_header_timeout{std::chrono::seconds(10)};
  std::size_t max_connections = 10000;       // --max-connections; 0 = unlimited
  std::uint32_t max_tunnels_per_client = 0;  // --max-tunnels-per-client; 0 = unlimited
};

class ProxyServer {
 public:
  explicit ProxyServer(ProxyServerOptions options);
  ~ProxyServer();

  // Serves until SIGTERM/SIGINT, drains, and returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::proxy
