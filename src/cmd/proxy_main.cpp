// wsgate-proxy: flags and wiring only; the data plane lives in src/proxy.

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <thread>

#include "common/log.hpp"
#include "proxy/proxy_server.hpp"
#include "xds/discovery_client.hpp"

namespace {

// Each proxied connection holds two descriptors (client and backend): lift the soft limit to
// the hard one, as nginx's worker_rlimit_nofile or Go's runtime do, and say so when even that
// cannot hold --max-connections.
void raise_open_file_limit(std::size_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  const std::size_t needed = 2 * max_connections;
  if (max_connections > 0 && limit.rlim_cur < needed) {
    spdlog::warn("open file limit {} may not hold --max-connections {} (2 descriptors each)",
                 static_cast<unsigned long long>(limit.rlim_cur), max_connections);
  }
}

// The control-plane stream (src/xds) as the data plane's route feed.
class DiscoveryFeed : public wsgate::proxy::RouteFeed {
 public:
  DiscoveryFeed(wsgate::xds::DiscoveryClientOptions options,
                const wsgate::proxy::RouteFeedHooks& hooks)
      : client_(with_node_address(std::move(options), hooks.node_address), hooks.apply,
                hooks.reject, *hooks.registry) {}
  void start() override { client_.start(); }
  void stop() override { client_.stop(); }

 private:
  static wsgate::xds::DiscoveryClientOptions with_node_address(
      wsgate::xds::DiscoveryClientOptions options, std::string address) {
    options.node_address = std::move(address);
    return options;
  }
  wsgate::xds::DiscoveryClient client_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wsgate-proxy: WebSocket gateway data plane"};
  wsgate::proxy::ProxyServerOptions options;
  wsgate::xds::DiscoveryClientOptions control_plane_options;
  std::vector<std::string> listen;
  std::vector<std::string> tls_cert_files;
  std::vector<std::string> tls_key_files;
  std::string log_format = "text";
  std::string log_level = "info";
  int drain_seconds = 30;
  int header_timeout_ms = 10000;
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());

  auto* routes =
      app.add_option("--routes", options.routes_dir, "Directory of route YAML files (watched)");
  auto* control_plane = app.add_option("--control-plane", control_plane_options.target,
                                       "wsgate-controller gRPC address HOST:PORT");
  app.add_option("--node-id", control_plane_options.node_id,
                 "Node id reported to the control plane");
  app.add_option("--grpc-tls-cert", control_plane_options.tls_cert,
                 "Client certificate for mutual TLS to the control plane");
  app.add_option("--grpc-tls-key", control_plane_options.tls_key, "Private key of --grpc-tls-cert");
  app.add_option("--grpc-tls-ca", control_plane_options.tls_ca,
                 "CA that signed the controller's certificate (enables TLS)");
  app.add_option("--listen", listen, "HTTP listen address HOST:PORT (repeatable)")
      ->default_str("0.0.0.0:8080");
  app.add_option("--tls-listen", options.tls_listen, "TLS listen address HOST:PORT (repeatable)");
  app.add_option("--tls-cert", tls_cert_files,
                 "PEM certificate (+ chain) for the TLS listeners; repeat with --tls-key, the "
                 "first pair serves clients without SNI or with an unknown name; re-read when "
                 "the file changes");
  app.add_option("--tls-key", tls_key_files,
                 "PEM private key of the --tls-cert at the same position");
  app.add_option("--admin", options.admin, "Admin address for /metrics /healthz /readyz /config")
      ->default_str("127.0.0.1:9901");
  app.add_option("--drain-seconds", drain_seconds, "Drain time on SIGTERM")
      ->check(CLI::Range(0, 3600))
      ->default_str("30");
  app.add_option("--workers", workers, "Worker threads (default: number of cores)")
      ->check(CLI::Range(1, 256));
  app.add_option("--client-header-timeout-ms", header_timeout_ms,
                 "Time a client has to send complete request headers")
      ->check(CLI::Range(100, 600000))
      ->default_str("10000");
  app.add_option("--max-connections", options.max_connections,
                 "Open client connections at most, over all workers; past it a new connection "
                 "gets 503 and is closed (0 = unlimited)")
      ->default_str("10000");
  app.add_option("--max-tunnels-per-client", options.max_tunnels_per_client,
                 "Open tunnels per client IP address at most; past it the handshake gets 503 "
                 "(0 = unlimited)")
      ->default_str("0");
  app.add_option("--log-format", log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->default_str("text");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->default_str("info");
  routes->excludes(control_plane);

  CLI11_PARSE(app, argc, argv);

  wsgate::init_logging(log_format == "json" ? wsgate::LogFormat::kJson : wsgate::LogFormat::kText,
                       spdlog::level::from_str(log_level));
  if (options.routes_dir.empty() && control_plane_options.target.empty()) {
    spdlog::error("one of --routes DIR or --control-plane HOST:PORT is required");
    return 2;
  }
  if (tls_cert_files.size() != tls_key_files.size()) {
    spdlog::error("--tls-cert and --tls-key come in pairs: {} certificates, {} keys",
                  tls_cert_files.size(), tls_key_files.size());
    return 2;
  }
  if (!options.tls_listen.empty() && tls_cert_files.empty()) {
    spdlog::error("--tls-listen needs at least one --tls-cert/--tls-key pair");
    return 2;
  }
  if (options.tls_listen.empty() && !tls_cert_files.empty()) {
    spdlog::error("--tls-cert/--tls-key given without --tls-listen");
    return 2;
  }
  for (std::size_t i = 0; i < tls_cert_files.size(); ++i) {
    options.tls_certs.push_back({tls_cert_files[i], tls_key_files[i]});
  }
  options.listen = listen.empty() ? std::vector<std::string>{"0.0.0.0:8080"} : listen;
  options.drain = std::chrono::seconds(drain_seconds);
  options.workers = workers;
  options.client_header_timeout = std::chrono::milliseconds(header_timeout_ms);
  if (!control_plane_options.target.empty()) {
    options.route_feed = [cp = control_plane_options](const wsgate::proxy::RouteFeedHooks& hooks) {
      return std::make_unique<DiscoveryFeed>(cp, hooks);
    };
  }
  raise_open_file_limit(options.max_connections);
  try {
    wsgate::proxy::ProxyServer server(std::move(options));
    return server.run();
  } catch (const std::exception& e) {
    spdlog::critical("wsgate-proxy: {}", e.what());
    return 1;
  }
}
