#include "proxy/routing/snapshot.hpp"

#include <algorithm>
#include <cmath>

namespace wsgate::proxy {

RouteRuntime::RouteRuntime(const std::string& id, ProxyMetrics& metrics)
    : active_tunnels(metrics.active_tunnels.with({id})),
      bytes_client_to_backend(metrics.tunnel_bytes.with({id, "client_to_backend"})),
      bytes_backend_to_client(metrics.tunnel_bytes.with({id, "backend_to_client"})),
      handshake_duration(metrics.handshake_duration.with({id})),
      tunnel_duration(metrics.tunnel_duration.with({id})),
      handshakes_switched(metrics.handshakes.with({id, "101"})),
      id_(id) {}

std::uint32_t RouteRuntime::take_handshake_token(std::uint32_t per_second) {
  if (per_second == 0) return 0;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(bucket_mutex_);
  const double capacity = per_second;  // a burst of one second's worth
  if (tokens_ < 0) {
    tokens_ = capacity;
  } else {
    const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    tokens_ = std::min(capacity, tokens_ + elapsed * per_second);
  }
  last_refill_ = now;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return 0;
  }
  const double wait = (1.0 - tokens_) / per_second;
  return static_cast<std::uint32_t>(std::max(1.0, std::ceil(wait)));
}

Snapshot::Snapshot(config::RouteTablePtr table, std::vector<std::shared_ptr<RouteRuntime>> runtimes)
    : table_(std::move(table)), router_(*table_) {
  const auto& routes = table_->routes();
  entries_.reserve(routes.size());
  for (std::size_t i = 0; i < routes.size(); ++i) {
    entries_.push_back(RouteEntry{&routes[i], std::move(runtimes[i]),
                                  std::make_unique<BackendPicker>(routes[i].backends)});
    index_.emplace(&routes[i], i);
  }
}

Snapshot::RouteEntry* Snapshot::match(std::string_view host, std::string_view target) const {
  const config::Route* route = router_.match(host, target);
  if (route == nullptr) return nullptr;
  return &entries_[index_.at(route)];
}

SnapshotPtr SnapshotBuilder::build(config::RouteTable table) {
  auto shared_table = std::make_shared<const config::RouteTable>(std::move(table));
  std::vector<std::shared_ptr<RouteRuntime>> runtimes;
  {
    std::lock_guard lock(mutex_);
    for (const auto& route : shared_table->routes()) {
      auto& slot = runtimes_[route.id()];
      if (!slot) slot = std::make_shared<RouteRuntime>(route.id(), metrics_);
      runtimes.push_back(slot);
    }
  }
  return std::make_shared<const Snapshot>(std::move(shared_table), std::move(runtimes));
}

}  // namespace wsgate::proxy
