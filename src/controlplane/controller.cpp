#include "controlplane/controller.hpp"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "admin/admin_server.hpp"
#include "common/net_address.hpp"
#include "config/route_yaml.hpp"
#include "controlplane/discovery_service.hpp"
#include "controlplane/snapshot_cache.hpp"
#include "controlplane/stop_signals.hpp"
#include "metrics/registry.hpp"
#include "source/directory_watcher.hpp"
#include "source/kubernetes_source.hpp"

namespace wsgate::controlplane {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(2);

std::string read_pem_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) throw std::runtime_error(flag + ": cannot read " + path);
  return text.str();
}

admin::AdminResponse text(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

}  // namespace

std::shared_ptr<grpc::ServerCredentials> grpc_server_credentials(const ControllerOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) {
    if (!options.tls_ca.empty())
      throw std::runtime_error("--grpc-tls-ca needs --grpc-tls-cert and --grpc-tls-key");
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert.empty() || options.tls_key.empty())
    throw std::runtime_error("--grpc-tls-cert and --grpc-tls-key go together");
  grpc::SslServerCredentialsOptions ssl(
      options.tls_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                             : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!options.tls_ca.empty()) ssl.pem_root_certs = read_pem_file(options.tls_ca, "--grpc-tls-ca");
  ssl.pem_key_cert_pairs.push_back({read_pem_file(options.tls_key, "--grpc-tls-key"),
                                    read_pem_file(options.tls_cert, "--grpc-tls-cert")});
  return grpc::SslServerCredentials(ssl);
}

struct Controller::Impl {
  explicit Impl(ControllerOptions opts)
      : options(std::move(opts)),
        config_updates(registry.counter("wsgate_config_updates_total",
                                        "Route updates by result: applied or rejected.",
                                        {"result"})),
        version_info(registry.gauge("wsgate_controller_snapshot_version_info",
                                    "1 for the version of the route snapshot in force.",
                                    {"version"})),
        service(cache, registry) {
    config_updates.with({"applied"});
    config_updates.with({"rejected"});
    metrics::register_process_collector(registry);
  }

  // On the watcher thread: each new valid table becomes the snapshot pushed to every proxy.
  void on_table(config::RouteTable table) {
    const std::size_t count = table.routes().size();
    const std::string version = table.version();
    SnapshotPtr previous = cache.current();
    SnapshotPtr snapshot = cache.update(std::move(table));
    if (!snapshot) {
      spdlog::info("routes unchanged (version {}): nothing to push", version);
      return;
    }
    if (previous) version_info.remove({previous->version()});
    version_info.with({version}).set(1);
    config_updates.with({"applied"}).inc();
    spdlog::info("snapshot {}: {} routes, pushing to {} proxies", version, count,
                 service.proxies().size());
    service.push(snapshot);
  }

  void on_error(const config::ConfigError& error) {
    config_updates.with({"rejected"}).inc();
    const SnapshotPtr current = cache.current();
    spdlog::error("route update rejected, keeping version {}: {}",
                  current ? current->version() : std::string("none"), error.message);
  }

  void start_grpc() {
    auto parsed = parse_host_port(options.grpc_listen, /*allow_port_zero=*/true);
    if (auto* reason = std::get_if<std::string>(&parsed))
      throw std::runtime_error("--grpc-listen " + options.grpc_listen + ": " + *reason);
    const HostPort address = std::get<HostPort>(parsed);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(address.to_string(), grpc_server_credentials(options), &port);
    builder.RegisterService(&service);
    // A second controller on the same port must fail, not share the port's connections.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Proxies ping every 10 s to find a dead controller: allow that, and ping them back.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    server = builder.BuildAndStart();
    if (!server || port == 0)
      throw std::runtime_error("cannot listen for gRPC on " + options.grpc_listen);
    HostPort bound = address;
    bound.port = static_cast<std::uint16_t>(port);
    spdlog::info("listening (grpc) on {}", bound.to_string());
  }

  void start_admin() {
    admin = std::make_unique<admin::AdminServer>(options.admin);
    admin->handle("/metrics", [this] {
      return admin::AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                                  registry.expose()};
    });
    admin->handle("/healthz", [] { return text(200, "ok\n"); });
    admin->handle("/readyz", [this] {
      if (stopping) return text(503, "shutting down\n");
      if (!cache.current()) return text(503, "no route configuration yet\n");
      if (!server) return text(503, "gRPC listener not up\n");
      return text(200, "ready\n");
    });
    admin->handle("/config", [this] {
      const SnapshotPtr snapshot = cache.current();
      if (!snapshot)
        return admin::AdminResponse{503, "application/json",
                                    "{\"error\":\"no configuration loaded\"}\n"};
      return admin::AdminResponse{200, "application/json",
                                  config::config_json(*snapshot->table) + "\n"};
    });
    admin->handle("/proxies", [this] {
      return admin::AdminResponse{200, "application/json", proxies_json(service.proxies())};
    });
    admin->start();
  }

  ControllerOptions options;
  metrics::Registry registry;
  metrics::CounterFamily& config_updates;
  metrics::GaugeFamily& version_info;
  SnapshotCache cache;
  DiscoveryService service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<admin::AdminServer> admin;
  // Declared before the watcher so the watcher (which feeds it the file routes) goes first.
  std::unique_ptr<source::KubernetesSource> kube;
  std::unique_ptr<source::DirectoryWatcher> watcher;
  std::atomic<bool> stopping{false};
};

Controller::Controller(ControllerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Controller::~Controller() = default;

int Controller::run() {
  Impl& c = *impl_;
  StopSignals signals;

  // Routes first, so the first proxy to connect gets a snapshot at once.
  if (c.options.kubernetes) {
    source::KubernetesSource::Options kube_options;
    kube_options.kubeconfig = c.options.kubeconfig;
    kube_options.namespace_ = c.options.kube_namespace;
    c.kube = std::make_unique<source::KubernetesSource>(
        std::move(kube_options), [&c](config::RouteTable table) { c.on_table(std::move(table)); },
        [&c](const config::ConfigError& error) { c.on_error(error); });
  }
  if (!c.options.routes_dir.empty()) {
    // With --kubernetes the files are merged into the custom resources' table.
    c.watcher = std::make_unique<source::DirectoryWatcher>(
        source::DirectoryWatcher::Options{c.options.routes_dir},
        [&c](config::RouteTable table) {
          if (c.kube) {
            c.kube->set_base_table(std::move(table));
          } else {
            c.on_table(std::move(table));
          }
        },
        [&c](const config::ConfigError& error) { c.on_error(error); });
    if (!c.watcher->start()) {
      spdlog::error("no valid routes in {} yet: proxies get a snapshot once they are fixed",
                    c.options.routes_dir);
    }
  }
  if (c.kube) {
    if (auto error = c.kube->start()) throw std::runtime_error("--kubernetes: " + *error);
  }
  c.start_grpc();
  c.start_admin();

  const int signo = signals.wait([&c] {
    spdlog::info("SIGHUP: re-reading routes");
    if (c.watcher) c.watcher->reload_now();
  });
  spdlog::info("{}: shutting down", signo == SIGTERM ? "SIGTERM" : "SIGINT");
  c.stopping = true;
  if (c.watcher) c.watcher->stop();
  if (c.kube) c.kube->stop();
  c.service.shut_down();
  c.server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  c.admin->stop();
  spdlog::info("wsgate-controller stopped");
  return 0;
}

}  // namespace wsgate::controlplane
