#pragma once
// The deadlines of one tunnel, apart from its I/O so that they are unit-tested with made-up
// times: the close grace (how long peers get to finish a close, or to follow a half-close),
// maxLifetimeSeconds, the ping tick (pingIntervalSeconds) and the idle check
// (idleTimeoutSeconds). The tunnel waits on one timer set to next(); when it fires, expire()
// says what is due and moves each deadline on (Envoy's tcp_proxy idle timer does the same
// with one timer per connection).

#include <chrono>

namespace wsgate::proxy {

class TunnelDeadlines {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr Clock::time_point kNever = Clock::time_point::max();

  // A zero duration turns its deadline off (the close grace is always on).
  struct Limits {
    Clock::duration idle{};
    Clock::duration lifetime{};
    Clock::duration ping_interval{};
    Clock::duration close_grace{};
  };

  // What one expiry found due, handled in this order.
  struct Due {
    bool grace = false;      // the close grace ran out: close the sockets (nothing else is due)
    bool lifetime = false;   // the tunnel is older than its lifetime (reported once)
    bool ping_tick = false;  // one ping interval passed (reported every interval)
    bool idle = false;       // nothing but pongs moved for the idle timeout (reported once)
  };

  TunnelDeadlines(const Limits& limits, Clock::time_point start);

  // Bytes moved at `at`; returns the activity it replaces, so that a read found to hold only
  // pongs (answers to our pings, not use of the tunnel) can put it back with restore_activity.
  Clock::time_point on_activity(Clock::time_point at) {
    const Clock::time_point previous = last_activity_;
    last_activity_ = at;
    return previous;
  }
  void restore_activity(Clock::time_point previous) { last_activity_ = previous; }
  Clock::time_point last_activity() const { return last_activity_; }

  // Starts the close grace from `now` (a later call moves it later).
  void arm_grace(Clock::time_point now) { grace_at_ = now + limits_.close_grace; }

  // The earliest deadline still pending; kNever when none is.
  Clock::time_point next() const;
  // What is due at `now` (a timer may fire late, never early), each deadline moved on.
  Due expire(Clock::time_point now);

  Clock::duration ping_interval() const { return limits_.ping_interval; }

 private:
  Limits limits_;
  Clock::time_point grace_at_ = kNever;
  Clock::time_point lifetime_at_ = kNever;
  Clock::time_point next_ping_at_ = kNever;
  Clock::time_point idle_check_at_ = kNever;
  Clock::time_point last_activity_;
};

}  // namespace wsgate::proxy
