#pragma once
// Routes from the Kubernetes API: lists and watches WebSocketRoute custom resources (relisting
// on 410 Gone, reconnecting with backoff), turns each into a route through the route-file
// parser, publishes one whole RouteTable per debounced burst of changes, and writes each
// object's status (Accepted condition, observedGeneration).

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/route.hpp"
#include "config/route_yaml.hpp"
#include "source/kube_config.hpp"

namespace wsgate::source {

class KubernetesSource {
 public:
  struct Options {
    std::string kubeconfig;  // --kubeconfig; empty = in-cluster, else $KUBECONFIG / ~/.kube/config
    std::string namespace_;  // --namespace; empty = every namespace
    std::filesystem::path service_account_dir{kServiceAccountDir};
    // Debounce, as for route directories: a quiet holdoff, capped after a burst's first event.
    std::chrono::milliseconds holdoff{100};
    std::chrono::milliseconds max_delay{500};
    // Reconnect (list, watch, status write) backoff with full jitter.
    std::chrono::milliseconds backoff_initial{500};
    std::chrono::milliseconds backoff_max{30000};
    // Asked of the server per watch (it then ends the stream cleanly and we watch again);
    // no byte for this long plus a margin means a dead connection.
    std::chrono::seconds watch_timeout{300};
    std::chrono::milliseconds request_timeout{30000};
    std::size_t list_page_size = 500;
  };
  // Called on the source's thread: first after the initial list, then whenever the merged
  // table's version changes.
  using OnTable = std::function<void(config::RouteTable)>;
  // Called on the source's thread once for each newly rejected object version (invalid, or
  // its id taken by a route file); the other objects are still served. The message reads
  // "kubernetes:ns/name: route ns/name: field: reason".
  using OnError = std::function<void(const config::ConfigError&)>;

  KubernetesSource(Options options, OnTable on_table, OnError on_error = {});
  ~KubernetesSource();  // stops
  KubernetesSource(const KubernetesSource&) = delete;
  KubernetesSource& operator=(const KubernetesSource&) = delete;

  // Loads the client configuration and starts the thread. Returns why it cannot start (no or a
  // broken kubeconfig, unreadable service-account files); the API server being unreachable is
  // not an error here: the source keeps retrying.
  std::optional<std::string> start();
  void stop();

  // Routes from `--routes DIR`, published together with the custom resources. A custom
  // resource whose id a route file already defines is left out and gets Accepted=False
  // (reason Conflict). Callable from any thread, before or after start().
  void set_base_table(config::RouteTable table);

  // True once the first list has been applied (and a table published).
  bool synced() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::source
