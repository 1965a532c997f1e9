#include "proxy/proxy_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "admin/admin_server.hpp"
#include "common/net_address.hpp"
#include "config/route_yaml.hpp"
#include "metrics/registry.hpp"
#include "proxy/core/proxy_context.hpp"
#include "proxy/downstream/http_session.hpp"
#include "proxy/downstream/listener.hpp"
#include "proxy/downstream/listener_certificates.hpp"
#include "proxy/downstream/tls_accept.hpp"
#include "proxy/routing/snapshot.hpp"
#include "proxy/runtime/worker.hpp"
#include "proxy/upstream/upstream_tls.hpp"
#include "source/directory_watcher.hpp"

namespace wsgate::proxy {

struct ProxyServer::Impl {
  explicit Impl(ProxyServerOptions opts)
      : options(std::move(opts)),
        metrics(registry),
        context{{}, metrics, &upstream_tls, {}},
        builder(metrics) {
    context.options.client_header_timeout = options.client_header_timeout;
    context.options.max_connections = options.max_connections;
    context.options.max_tunnels_per_client = options.max_tunnels_per_client;
    metrics.connections_rejected.with({"max_connections"});  // the series exists from the start
    metrics::register_process_collector(registry);
  }

  // Called from the route source's thread with each new valid table.
  void apply(config::RouteTable table) {
    const std::string version = table.version();
    const std::size_t count = table.routes().size();
    SnapshotPtr snapshot = builder.build(std::move(table));
    {
      std::lock_guard lock(snapshot_mutex);
      if (current) metrics.config_info.remove({current->version()});
      current = snapshot;
    }
    metrics.config_info.with({version}).set(1);
    for (auto& worker : workers) worker->publish(snapshot);
    metrics.config_updates.with({"applied"}).inc();
    has_config = true;
    spdlog::info("routes applied: {} routes, version {}", count, version);
  }

  void reject(const config::ConfigError& error) {
    metrics.config_updates.with({"rejected"}).inc();
    spdlog::error("route update rejected, keeping version {}: {}", current_version(),
                  error.message);
  }

  std::string current_version() {
    std::lock_guard lock(snapshot_mutex);
    return current ? current->version() : std::string("none");
  }

  admin::AdminResponse config_endpoint() {
    SnapshotPtr snapshot;
    {
      std::lock_guard lock(snapshot_mutex);
      snapshot = current;
    }
    if (!snapshot) return {503, "application/json", "{\"error\":\"no configuration loaded\"}\n"};
    return {200, "application/json", config::config_json(snapshot->table()) + "\n"};
  }

  admin::AdminResponse readyz_endpoint() {
    if (draining) return {503, "text/plain; charset=utf-8", "draining\n"};
    if (!has_config) return {503, "text/plain; charset=utf-8", "no route configuration yet\n"};
    if (!listening) return {503, "text/plain; charset=utf-8", "listeners not up\n"};
    return {200, "text/plain; charset=utf-8", "ready\n"};
  }

  void start_listeners() {
    std::vector<Worker*> raw;
    for (auto& w : workers) raw.push_back(w.get());
    for (const auto& address : options.listen) {
      listeners.push_back(std::make_unique<Listener>(
          "http", address, raw,
          [this](Worker& worker, tcp::socket socket, const tcp::endpoint& peer) {
            // Set before the first asynchronous operation, this is the only ioctl the socket
            // gets; a tunnel reads and writes it directly, without waiting, when it can.
            boost::system::error_code ec;
            socket.non_blocking(true, ec);
            start_http_session(context, worker, Stream(std::move(socket)), peer);
          }));
    }
    if (!options.tls_listen.empty()) {
      std::vector<CertFiles> pairs;
      for (const auto& pair : options.tls_certs) pairs.push_back({pair.cert_file, pair.key_file});
      server_tls = std::make_unique<ServerTls>(std::move(pairs));
      server_tls->start_watching(std::chrono::seconds(1));
      for (const auto reason : kTlsHandshakeErrorReasons) {
        metrics.tls_handshake_errors.with({std::string(reason)});
      }
    }
    for (const auto& address : options.tls_listen) {
      listeners.push_back(std::make_unique<Listener>(
          "https", address, raw,
          [this](Worker& worker, tcp::socket socket, const tcp::endpoint& peer) {
            start_tls_session(context, worker, *server_tls, std::move(socket), peer);
          }));
    }
    for (auto& listener : listeners) listener->start();
    listening = true;
  }

  std::size_t live_connections() {
    // Read each worker's count on its own thread.
    struct Tally {
      std::atomic<std::size_t> total{0};
      std::atomic<std::size_t> answered{0};
    };
    auto tally = std::make_shared<Tally>();
    for (auto& w : workers) {
      asio::post(w->io(), [tally, worker = w.get()] {
        tally->total += worker->live_count();
        ++tally->answered;
      });
    }
    for (int i = 0; i < 200 && tally->answered.load() < workers.size(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return tally->total.load();
  }

  // Runs start(i, done) for i in [0, count), each `done` called once from any thread, and
  // waits until all were called or `deadline` passed. True if all were.
  static bool wait_for_all(std::size_t count, std::chrono::steady_clock::time_point deadline,
                           const std::function<void(std::size_t, std::function<void()>)>& start) {
    struct Latch {
      std::mutex mutex;
      std::condition_variable changed;
      std::size_t left = 0;
    };
    auto latch = std::make_shared<Latch>();
    latch->left = count;
    for (std::size_t i = 0; i < count; ++i) {
      start(i, [latch] {
        std::lock_guard<std::mutex> lock(latch->mutex);
        if (--latch->left == 0) latch->changed.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(latch->mutex);
    return latch->changed.wait_until(lock, deadline, [&] { return latch->left == 0; });
  }

  // SIGTERM: readyz 503, new requests 503, close 1001 to every tunnel, then exit once every
  // connection is gone or the drain time is up.
  void drain() {
    draining = true;
    spdlog::info("draining: closing tunnels with 1001, up to {} s", options.drain.count());
    const auto deadline = std::chrono::steady_clock::now() + options.drain;
    // Each worker reports when its last connection is gone: the exit follows at once,
    // without polling the counts.
    bool drained = wait_for_all(workers.size(), deadline, [this](std::size_t i, auto done) {
      workers[i]->start_drain(std::move(done));
    });
    if (drained) {
      // The listeners stayed open (a new connection gets its 503), so connections may have
      // come since the reports: close the listeners, then wait for those connections too.
      // They are answered at once; a deadline about to pass still gives them a moment.
      const auto late = std::max(deadline, std::chrono::steady_clock::now() + kLateAnswerTime);
      drained = wait_for_all(
                    listeners.size(), late,
                    [this](std::size_t i, auto done) { listeners[i]->close(std::move(done)); }) &&
                wait_for_all(workers.size(), late, [this](std::size_t i, auto done) {
                  workers[i]->when_drained(std::move(done));
                });
    }
    if (drained) {
      spdlog::info("drained: no connections left");
    } else {
      spdlog::warn("drain time is up with {} connections open: closing them", live_connections());
    }
  }

  // How long connections accepted at the end of a drain get for their 503.
  static constexpr std::chrono::seconds kLateAnswerTime{2};

  ProxyServerOptions options;
  metrics::Registry registry;
  ProxyMetrics metrics;
  UpstreamTls upstream_tls;
  std::unique_ptr<ServerTls> server_tls;  // TLS listeners' certificates (before the workers)
  ProxyContext context;
  SnapshotBuilder builder;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::unique_ptr<admin::AdminServer> admin;
  std::unique_ptr<source::DirectoryWatcher> watcher;
  std::unique_ptr<RouteFeed> feed;  // --control-plane

  std::mutex snapshot_mutex;
  SnapshotPtr current;
  std::atomic<bool> has_config{false};
  std::atomic<bool> listening{false};
  std::atomic<bool> draining{false};
};

ProxyServer::ProxyServer(ProxyServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ProxyServer::~ProxyServer() = default;

int ProxyServer::run() {
  Impl& s = *impl_;
  for (std::size_t i = 0; i < std::max<std::size_t>(1, s.options.workers); ++i) {
    s.workers.push_back(std::make_unique<Worker>(i));
  }
  for (auto& w : s.workers) w->start();

  s.admin = std::make_unique<admin::AdminServer>(s.options.admin);
  s.admin->handle("/metrics", [&s] {
    return admin::AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                                s.registry.expose()};
  });
  s.admin->handle("/healthz", [] {
    return admin::AdminResponse{200, "text/plain; charset=utf-8", "ok\n"};
  });
  s.admin->handle("/readyz", [&s] { return s.readyz_endpoint(); });
  s.admin->handle("/config", [&s] { return s.config_endpoint(); });

  // Signals are taken on this thread, so handlers may block (drain) without stalling workers.
  asio::io_context signal_io;
  asio::signal_set signals(signal_io, SIGTERM, SIGINT, SIGHUP);

  if (!s.options.routes_dir.empty()) {
    s.watcher = std::make_unique<source::DirectoryWatcher>(
        source::DirectoryWatcher::Options{s.options.routes_dir},
        [&s](config::RouteTable table) { s.apply(std::move(table)); },
        [&s](const config::ConfigError& error) { s.reject(error); });
    if (!s.watcher->start()) {
      spdlog::error("no valid routes in {} yet: not ready until they are fixed",
                    s.options.routes_dir);
    }
  }
  s.start_listeners();
  if (s.options.route_feed) {
    std::vector<std::uint16_t> ports;
    for (auto& listener : s.listeners) ports.push_back(listener->port());
    RouteFeedHooks hooks;
    // A fed table is applied like a file update, but a CA bundle missing on this node refuses it.
    hooks.apply = [&s](config::RouteTable table) {
      std::string error = check_ca_files(table, s.upstream_tls);
      if (error.empty()) {
        s.apply(std::move(table));
      } else {
        s.reject(config::ConfigError{error});
      }
      return error;
    };
    hooks.reject = [&s](const config::ConfigError& error) { s.reject(error); };
    hooks.registry = &s.registry;
    hooks.node_address = listen_addresses(s.options.listen, ports);
    s.feed = s.options.route_feed(hooks);
    s.feed->start();
  }
  s.admin->start();

  bool stop = false;
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        spdlog::info("SIGHUP: re-reading routes");
        if (s.watcher) s.watcher->reload_now();
        if (s.server_tls) s.server_tls->reload_changed();
        wait_signal();
        return;
      }
      spdlog::info("{}: starting drain", signo == SIGTERM ? "SIGTERM" : "SIGINT");
      stop = true;
    });
  };
  wait_signal();
  while (!stop) signal_io.run_one();

  s.drain();
  if (s.watcher) s.watcher->stop();
  if (s.feed) s.feed->stop();
  for (auto& l : s.listeners) l->close();
  for (auto& w : s.workers) w->stop();
  s.admin->stop();
  spdlog::info("wsgate-proxy stopped");
  return 0;
}

}  // namespace wsgate::proxy
