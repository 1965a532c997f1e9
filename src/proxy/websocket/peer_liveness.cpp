#include "proxy/websocket/peer_liveness.hpp"

namespace wsgate::proxy {

PeerLiveness::Action PeerLiveness::on_tick(Clock::time_point now, Clock::time_point last_heard,
                                           Clock::duration interval) {
  if (outstanding_) {
    if (last_heard < ping_sent_at_) {
      return now - ping_sent_at_ >= interval / 2 ? Action::kDead : Action::kNone;
    }
    outstanding_ = false;
  }
  return now - last_heard >= interval ? Action::kPing : Action::kNone;
}

void PeerLiveness::on_ping_sent(Clock::time_point at) {
  outstanding_ = true;
  ping_sent_at_ = at;
}

}  // namespace wsgate::proxy
