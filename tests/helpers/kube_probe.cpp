// wsgate-kube-probe: runs the Kubernetes route source (optionally merged with a route
// directory, wired as the controller wires them) and logs every table it publishes, so the
// integration tests can drive it against the fake API server.

#include <signal.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "common/log.hpp"
#include "source/directory_watcher.hpp"
#include "source/kubernetes_source.hpp"

namespace {

using namespace wsgate;

std::string route_ids(const config::RouteTable& table) {
  std::string ids;
  for (const auto& route : table.routes()) {
    if (!ids.empty()) ids += ",";
    ids += route.id();
  }
  return ids.empty() ? "-" : ids;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs the Kubernetes route source and logs each table it publishes"};
  source::KubernetesSource::Options options;
  std::string routes_dir;
  int holdoff_ms = 100;
  int backoff_initial_ms = 500;
  int backoff_max_ms = 30000;
  int watch_timeout_seconds = 300;
  std::string service_account_dir(source::kServiceAccountDir);
  app.add_option("--kubeconfig", options.kubeconfig, "kubeconfig file (default: in-cluster)");
  app.add_option("--namespace", options.namespace_, "Only this namespace (default: all)");
  app.add_option("--service-account-dir", service_account_dir, "In-cluster credentials");
  app.add_option("--routes", routes_dir, "Route directory merged with the custom resources");
  app.add_option("--holdoff-ms", holdoff_ms, "Debounce holdoff");
  app.add_option("--backoff-initial-ms", backoff_initial_ms, "Reconnect backoff start");
  app.add_option("--backoff-max-ms", backoff_max_ms, "Reconnect backoff cap");
  app.add_option("--watch-timeout-seconds", watch_timeout_seconds, "timeoutSeconds per watch");
  app.add_option("--page-size", options.list_page_size, "List page size (limit)");
  CLI11_PARSE(app, argc, argv);
  init_logging(LogFormat::kText);

  options.service_account_dir = service_account_dir;
  options.holdoff = std::chrono::milliseconds(holdoff_ms);
  options.max_delay = std::chrono::milliseconds(holdoff_ms * 5);
  options.backoff_initial = std::chrono::milliseconds(backoff_initial_ms);
  options.backoff_max = std::chrono::milliseconds(backoff_max_ms);
  options.watch_timeout = std::chrono::seconds(watch_timeout_seconds);

  // Signals are taken synchronously below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  source::KubernetesSource kube(
      options,
      [](config::RouteTable table) {
        spdlog::info("kube-probe: table version={} routes={}", table.version(), route_ids(table));
      },
      [](const config::ConfigError& error) {
        spdlog::info("kube-probe: rejected {}", error.message);
      });
  std::unique_ptr<source::DirectoryWatcher> watcher;
  if (!routes_dir.empty()) {
    // The controller's wiring: each good directory table becomes the base the custom
    // resources are merged into; a rejected directory keeps the last good base.
    watcher = std::make_unique<source::DirectoryWatcher>(
        source::DirectoryWatcher::Options{routes_dir},
        [&kube](config::RouteTable table) { kube.set_base_table(std::move(table)); },
        [](const config::ConfigError& error) {
          spdlog::error("kube-probe: routes rejected: {}", error.message);
        });
    watcher->start();
  }
  if (auto error = kube.start()) {
    spdlog::error("{}", *error);
    return 1;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("kube-probe: stopping (signal {})", signal_number);
  if (watcher) watcher->stop();
  kube.stop();
  return 0;
}
