#include "proxy/websocket/tunnel_deadlines.hpp"

#include <algorithm>

namespace wsgate::proxy {

namespace {

using Clock = TunnelDeadlines::Clock;

Clock::time_point after(Clock::time_point start, Clock::duration limit) {
  return limit > Clock::duration::zero() ? start + limit : TunnelDeadlines::kNever;
}

}  // namespace

TunnelDeadlines::TunnelDeadlines(const Limits& limits, Clock::time_point start)
    : limits_(limits),
      lifetime_at_(after(start, limits.lifetime)),
      next_ping_at_(after(start, limits.ping_interval)),
      idle_check_at_(after(start, limits.idle)),
      last_activity_(start) {}

Clock::time_point TunnelDeadlines::next() const {
  return std::min({grace_at_, lifetime_at_, next_ping_at_, idle_check_at_});
}

TunnelDeadlines::Due TunnelDeadlines::expire(Clock::time_point now) {
  Due due;
  if (now >= grace_at_) {
    due.grace = true;
    return due;
  }
  if (now >= lifetime_at_) {
    lifetime_at_ = kNever;
    due.lifetime = true;
  }
  if (now >= next_ping_at_) {
    next_ping_at_ = now + limits_.ping_interval;
    due.ping_tick = true;
  }
  if (now >= idle_check_at_) {
    // Checked when the limit could first have run out, then again when it next could.
    const Clock::duration idle_for = now - last_activity_;
    if (idle_for >= limits_.idle) {
      idle_check_at_ = kNever;
      due.idle = true;
    } else {
      idle_check_at_ = now + (limits_.idle - idle_for);
    }
  }
  return due;
}

}  // namespace wsgate::proxy
