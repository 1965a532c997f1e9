#include "proxy/websocket/tunnel_control.hpp"

#include <string_view>
#include <utility>

namespace wsgate::proxy {

TunnelControl::TunnelControl(Clock::time_point start) {
  for (Side& side : sides_) side.last_read = start;
}

std::vector<std::uint8_t> TunnelControl::take_close_frame(Way way) {
  Side& side = sides_[way];
  side.close_sent = true;
  if (!close_code_) {
    close_code_ = recorded_code_;
    initiator_ = "proxy";
  }
  return make_close_frame(side.close_order.code, side.close_order.reason, way == kFromClient);
}

// The peer's pong is forwarded to the other side like any frame: an unsolicited pong is legal
// (RFC 6455 §5.5.3) and ignored by endpoints, and passing it costs nothing.
std::vector<std::uint8_t> TunnelControl::take_ping_frame(Way way) {
  static constexpr std::string_view kPingPayload = "wsgate";
  sides_[way].ping_wanted = false;
  return make_ping_frame(kPingPayload, way == kFromClient);
}

bool TunnelControl::close_handshake_complete() const {
  for (const Way way : {kFromClient, kFromBackend}) {
    const Side& side = sides_[way];
    if (!side.close_sent) return false;
    if (side.close_order.send && !sides_[other(way)].tracker.close_seen()) return false;
  }
  return true;
}

TunnelControl::Next TunnelControl::request_close(CloseOrder to_client, CloseOrder to_backend,
                                                 std::uint16_t recorded) {
  if (closing_) return Next::kNothing;
  if (close_code_) return Next::kBoundGrace;
  if (!to_client.send && !to_backend.send) return Next::kFinish;
  closing_ = true;
  recorded_code_ = recorded;
  sides_[kFromBackend].close_order = std::move(to_client);
  sides_[kFromClient].close_order = std::move(to_backend);
  // Nothing more goes to a side that gets no close frame; its direction only watches now.
  for (Side& side : sides_) {
    if (!side.close_order.send) side.close_sent = true;
  }
  return Next::kClose;
}

TunnelControl::Next TunnelControl::close_for_oversized_message(Way way, bool clean_cut) {
  CloseOrder to_sender{1009, "message too big", true};
  CloseOrder to_peer{1001, "peer sent a message too big", clean_cut};
  if (way == kFromClient) return request_close(std::move(to_sender), std::move(to_peer), 1009);
  return request_close(std::move(to_peer), std::move(to_sender), 1009);
}

// Per side: ping it if it was silent for the interval; if a ping went unanswered (nothing at
// all came back) close with 1001 to the side still alive.
TunnelControl::PingTick TunnelControl::on_ping_tick(Clock::time_point now,
                                                    Clock::duration interval) {
  PingTick tick;
  for (const Way way : {kFromClient, kFromBackend}) {
    // `way` writes to the peer being judged; what that peer sends is read by the other way.
    Side& side = sides_[way];
    const auto action = side.liveness.on_tick(now, sides_[other(way)].last_read, interval);
    if (action == PeerLiveness::Action::kDead) {
      (way == kFromClient ? tick.backend_dead : tick.client_dead) = true;
    } else if (action == PeerLiveness::Action::kPing && !side.ping_wanted) {
      side.ping_wanted = true;
      tick.wake[way] = true;  // the direction injects it at its next frame boundary
    }
  }
  if (tick.backend_dead || tick.client_dead) {
    tick.next = request_close(CloseOrder{1001, "backend not answering", !tick.client_dead},
                              CloseOrder{1001, "client not answering", !tick.backend_dead}, 1001);
  }
  return tick;
}

std::string TunnelControl::code_label() const {
  return close_code_ ? std::to_string(*close_code_) : std::string("none");
}

}  // namespace wsgate::proxy
