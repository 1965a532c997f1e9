#pragma once
// Pure pieces of the tunnel's and listener's protections: maxMessageBytes cutting at a frame
// boundary, proxy-side ping liveness, and connection/per-client admission counts. Kept apart
// from the coroutines so they are unit-tested and fuzzed without sockets.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>

#include "proxy/frame_tracker.hpp"

namespace wsgate::proxy {

// Bytes of an incomplete frame header that the tunnel direction has fed to its tracker but not
// forwarded yet: with maxMessageBytes the proxy must be able to drop a whole oversized frame,
// header included, so the peer's stream stays at a frame boundary where a close frame can follow.
struct HeldHeader {
  static constexpr std::size_t kMaxHeader = 14;  // 2 + 8 (length) + 4 (mask)
  std::array<std::uint8_t, kMaxHeader> bytes{};
  std::size_t size = 0;
};

// What to do with one read of a direction when the route has a message limit.
struct ForwardPlan {
  std::size_t held_to_send = 0;  // write the first held_to_send held bytes first,
  std::size_t forward = 0;       // then data[0, forward)
  // After the write: held bytes become held[0, keep_held) + data[hold_from, data.size()).
  std::size_t keep_held = 0;
  std::size_t hold_from = 0;
  std::size_t consumed = 0;  // bytes of data the tracker has seen (the rest: after a cut)
  bool over_limit = false;   // a frame made its message larger than the limit
  // With over_limit: the forwarded stream ends at a frame boundary (a close frame may follow).
  // False only when the oversized frame's first bytes had already gone out before.
  bool clean_cut = true;
};

// Feeds `data` to the tracker and decides how much of it may be forwarded: everything up to
// the first frame whose header makes its message exceed `limit` (the header is inspected
// before its payload is forwarded), minus a trailing incomplete header, which is held back.
// `limit` 0 means unlimited (only incomplete headers are held back then).
// `held` is only read here; apply_plan() updates it once the write is done.
ForwardPlan plan_limited_forward(FrameTracker& tracker, std::span<const std::uint8_t> data,
                                 const HeldHeader& held, std::uint64_t limit);
void apply_plan(HeldHeader& held, const ForwardPlan& plan, std::span<const std::uint8_t> data);

// Size of a frame header given its second byte (mask bit and 7-bit length): 2 to 14.
std::size_t frame_header_size(std::uint8_t second);

// Proxy-side keepalive for one peer: ping it after an interval of silence, and call it dead
// when nothing at all (pong or other traffic) came back within one further interval. A ping
// that went out late (its direction was busy) gets at least half an interval before judgement.
class PeerLiveness {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Action { kNone, kPing, kDead };

  // Called once per interval; last_heard = when the last bytes from this peer were read.
  Action on_tick(Clock::time_point now, Clock::time_point last_heard, Clock::duration interval);
  // Our ping went out (written into the peer's stream) at `at`.
  void on_ping_sent(Clock::time_point at);
  bool ping_outstanding() const { return outstanding_; }

 private:
  bool outstanding_ = false;
  Clock::time_point ping_sent_at_{};
};

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
