#include "proxy/core/admission.hpp"

namespace wsgate::proxy {

bool AdmissionLimits::try_open_connection(std::size_t limit) {
  return increment_within(connections_, limit);
}

void AdmissionLimits::close_connection() {
  connections_.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t AdmissionLimits::open_connections() const {
  return connections_.load(std::memory_order_relaxed);
}

bool AdmissionLimits::try_reserve_client_tunnel(const std::string& client, std::uint32_t limit) {
  if (limit == 0) return true;
  std::lock_guard lock(mutex_);
  auto& count = tunnels_by_client_[client];
  if (count >= limit) return false;
  ++count;
  return true;
}

void AdmissionLimits::release_client_tunnel(const std::string& client) {
  std::lock_guard lock(mutex_);
  const auto it = tunnels_by_client_.find(client);
  if (it == tunnels_by_client_.end()) return;
  if (--it->second == 0) tunnels_by_client_.erase(it);  // the map holds active clients only
}

std::uint32_t AdmissionLimits::client_tunnels(const std::string& client) const {
  std::lock_guard lock(mutex_);
  const auto it = tunnels_by_client_.find(client);
  return it == tunnels_by_client_.end() ? 0 : it->second;
}

}  // namespace wsgate::proxy
