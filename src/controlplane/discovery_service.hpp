#pragma once
// The controller's side of the route stream (xDS state-of-the-world over gRPC): one reactor per
// proxy, a nonce per response, ACK/NACK bookkeeping, and the per-proxy state behind /proxies
// and the wsgate_controller_* metrics.

#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "controlplane/snapshot_cache.hpp"
#include "metrics/registry.hpp"
#include "wsgate/v1/discovery.grpc.pb.h"

namespace wsgate::controlplane {

// What the controller knows about one connected proxy.
struct ProxyStatus {
  std::string node;
  std::string address;         // what the proxy says it listens on ("" = not reported)
  std::string peer;            // the stream's remote address
  std::string acked_version;   // the version the proxy runs ("" = none yet)
  std::string nacked_version;  // the latest version it refused ("" = none since its last ACK)
  std::string last_error;      // why it refused it
  std::chrono::system_clock::time_point connected_since;
};

class DiscoveryService final : public wsgate::v1::RouteDiscovery::CallbackService {
 public:
  using Request = wsgate::v1::DiscoveryRequest;
  using Response = wsgate::v1::DiscoveryResponse;

  // Registers the controller's discovery metrics (and a scrape-time collector that reads this
  // service: the registry must not be scraped after the service is gone).
  DiscoveryService(SnapshotCache& cache, metrics::Registry& registry);
  ~DiscoveryService() override;

  grpc::ServerBidiReactor<Request, Response>* StreamRoutes(
      grpc::CallbackServerContext* context) override;

  // Sends `snapshot` to every proxy that neither runs nor was already sent that version.
  void push(const SnapshotPtr& snapshot);
  // Ends every stream with UNAVAILABLE (proxies reconnect, to a restarted controller or another
  // replica) and refuses new ones. Call before grpc::Server::Shutdown.
  void shut_down();

  // Proxies whose stream has identified itself, by node id.
  std::vector<ProxyStatus> proxies() const;

 private:
  class Stream;
  friend class Stream;

  void remove(Stream* stream);
  void collect(std::string& out) const;

  SnapshotCache& cache_;
  metrics::Counter& responses_;
  metrics::CounterFamily& requests_;

  mutable std::mutex mutex_;  // lock order: this, then a Stream's, then the cache's
  std::set<Stream*> streams_;
  bool shutting_down_ = false;
};

// /proxies: [{"node","address","peer","acked_version","nacked_version","last_error",
// "connected_since"}], connected_since in RFC 3339 UTC.
std::string proxies_json(const std::vector<ProxyStatus>& proxies);

}  // namespace wsgate::controlplane
