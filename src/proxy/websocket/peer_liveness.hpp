#pragma once
// Proxy-side keepalive for one tunnel peer: when to ping it and when to call it dead. Kept
// apart from the tunnel so it is unit-tested without sockets.

#include <chrono>

namespace wsgate::proxy {

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

}  // namespace wsgate::proxy
