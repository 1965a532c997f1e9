#pragma once
// Admission counts shared by all workers: open client connections (--max-connections), open
// tunnels per client address (--max-tunnels-per-client), and the slot a connection holds.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace wsgate::proxy {

// Adds one to `counter` unless it already holds `limit` (0 = unlimited), without a lock: the
// admission check for counts shared by all workers (route maxTunnels, --max-connections).
template <typename T>
bool increment_within(std::atomic<T>& counter, T limit) {
  if (limit == 0) {
    counter.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  T current = counter.load(std::memory_order_relaxed);
  do {
    if (current >= limit) return false;
  } while (!counter.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  return true;
}

// Process-wide admission counts shared by all workers: open client connections
// (--max-connections) and open tunnels per client address (--max-tunnels-per-client).
// A limit of 0 means unlimited.
class AdmissionLimits {
 public:
  bool try_open_connection(std::size_t limit);
  void close_connection();
  std::size_t open_connections() const;

  bool try_reserve_client_tunnel(const std::string& client, std::uint32_t limit);
  void release_client_tunnel(const std::string& client);
  std::uint32_t client_tunnels(const std::string& client) const;

 private:
  std::atomic<std::size_t> connections_{0};
  mutable std::mutex mutex_;  // guards the per-client map (taken once per handshake)
  std::unordered_map<std::string, std::uint32_t> tunnels_by_client_;
};

// One open client connection's place under --max-connections (taken with try_open_connection),
// given back when the slot is destroyed. Moves with the connection: TLS accept -> HTTP session
// -> tunnel.
class ConnectionSlot {
 public:
  ConnectionSlot() = default;
  explicit ConnectionSlot(AdmissionLimits& limits) : limits_(&limits) {}
  ConnectionSlot(ConnectionSlot&& other) noexcept
      : limits_(std::exchange(other.limits_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&& other) noexcept {
    if (this != &other) {
      reset();
      limits_ = std::exchange(other.limits_, nullptr);
    }
    return *this;
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ~ConnectionSlot() { reset(); }

  void reset() {
    if (limits_ != nullptr) limits_->close_connection();
    limits_ = nullptr;
  }

 private:
  AdmissionLimits* limits_ = nullptr;
};

}  // namespace wsgate::proxy
