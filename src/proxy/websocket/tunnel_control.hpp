#pragma once
// The close and ping protocol of one tunnel, apart from its I/O so that it is unit-tested
// without streams. It follows the frames of both directions (a FrameTracker each), decides
// which control frame the proxy injects into a direction and when (only at a frame boundary
// of that direction's stream: a half-sent frame is finished first), runs the close handshake
// the proxy starts (1001 on drain and timeouts, 1009 for an oversized message) and the
// keepalive pings, and says which close code and initiator the tunnel is counted with.
//
// A direction is named by the peer it reads from: kFromClient forwards client -> backend, so
// the frames it injects go to the backend (masked, as a client's must be).

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/websocket/frame_tracker.hpp"
#include "proxy/websocket/peer_liveness.hpp"

namespace wsgate::proxy {

// A close frame the proxy sends to one side of a tunnel.
struct CloseOrder {
  std::uint16_t code = 1001;
  std::string reason;
  bool send = true;  // false: the side is dead or mid-frame, and gets no close frame
};

class TunnelControl {
 public:
  using Clock = std::chrono::steady_clock;
  enum Way : std::uint8_t { kFromClient = 0, kFromBackend = 1 };
  static Way other(Way way) { return way == kFromClient ? kFromBackend : kFromClient; }
  static const char* source_name(Way way) { return way == kFromClient ? "client" : "backend"; }

  // What the tunnel does after a close decision.
  enum class Next {
    kNothing,
    kBoundGrace,  // the peers are closing already: give them the close grace, not forever
    kFinish,      // close both streams now
    kClose,       // start the close grace and let both directions inject their close frames
  };
  // The control frame a direction sends next, at its current position.
  enum class Frame { kNone, kClose, kPing };

  explicit TunnelControl(Clock::time_point start);

  FrameTracker& tracker(Way way) { return sides_[way].tracker; }
  const FrameTracker& tracker(Way way) const { return sides_[way].tracker; }

  // Bytes of `way` that pass the proxy: tracked, and a peer's close frame noted. (This and
  // the two below run per read or write of a tunnel: inline, they cost a few loads.)
  void observe(Way way, std::span<const std::uint8_t> data) {
    if (data.empty()) return;
    sides_[way].tracker.advance(data);
    note_close_frame(way);
  }
  // After the caller advanced tracker(way) itself.
  void note_close_frame(Way way) {
    const FrameTracker& tracker = sides_[way].tracker;
    if (tracker.close_seen() && !close_code_) {
      close_code_ = tracker.close_code();
      initiator_ = source_name(way);
    }
  }
  // Bytes came from way's source at `at` (that peer is alive).
  void on_read(Way way, Clock::time_point at) { sides_[way].last_read = at; }

  // The proxy decided to close (close frames wait for frame boundaries).
  bool closing() const { return closing_; }
  // A close frame was seen from a peer, or the proxy sent its own.
  bool close_started() const { return close_code_.has_value(); }
  // Our close frame went into way's destination: nothing more may follow it.
  bool close_sent(Way way) const { return sides_[way].close_sent; }

  // Close if closing and at a boundary, else a ping if one is wanted and at a boundary.
  [[gnu::always_inline]] Frame due(Way way) const {
    const Side& side = sides_[way];
    if (!side.tracker.at_boundary()) return Frame::kNone;
    if (closing_) return side.close_sent ? Frame::kNone : Frame::kClose;
    return side.ping_wanted ? Frame::kPing : Frame::kNone;
  }
  // The frame to write into way's destination; from here on it counts as sent.
  std::vector<std::uint8_t> take_close_frame(Way way);
  std::vector<std::uint8_t> take_ping_frame(Way way);
  // The ping taken from `way` is in its destination (the peer has an interval to answer).
  void on_ping_written(Way way, Clock::time_point at) { sides_[way].liveness.on_ping_sent(at); }
  // Every side the proxy sent a close frame to answered with its own (a side that got none is
  // not waited for).
  bool close_handshake_complete() const;

  // The proxy closes the tunnel: each side gets its own close frame at a frame boundary of its
  // stream (or none); `recorded` is the code the tunnel is counted with.
  Next request_close(CloseOrder to_client, CloseOrder to_backend, std::uint16_t recorded);
  Next request_close(std::uint16_t code, const std::string& reason) {
    return request_close(CloseOrder{code, reason, true}, CloseOrder{code, reason, true}, code);
  }
  // way's source sent a message over maxMessageBytes: 1009 to it, 1001 to its peer (if the
  // peer's stream was cut at a frame boundary). Call when neither closing() nor
  // close_started(); the peers' own close needs kFinish instead.
  Next close_for_oversized_message(Way way, bool clean_cut);

  // One ping interval passed: which directions now want to inject a ping (wake them), and
  // which peers did not answer the last one (then the close has been requested).
  struct PingTick {
    std::array<bool, 2> wake{};
    bool client_dead = false;
    bool backend_dead = false;
    Next next = Next::kNothing;
  };
  PingTick on_ping_tick(Clock::time_point now, Clock::duration interval);

  // way's source ended (FIN or error): it closed first unless someone had already.
  void on_end(Way way) {
    if (initiator_ == nullptr) initiator_ = source_name(way);
  }
  // The labels of wsgate_tunnel_closes_total: close code or "none", and who closed first.
  std::string code_label() const;
  const char* initiator_label() const { return initiator_ != nullptr ? initiator_ : "proxy"; }

 private:
  struct Side {
    FrameTracker tracker;
    CloseOrder close_order;       // the close frame the proxy sends into the destination
    PeerLiveness liveness;        // proxy pings towards the destination, and their answers
    Clock::time_point last_read;  // bytes last came from the source
    bool close_sent = false;
    bool ping_wanted = false;  // inject a ping into the destination at the next boundary
  };

  std::array<Side, 2> sides_;
  bool closing_ = false;
  std::uint16_t recorded_code_ = 1001;       // the code counted when the proxy closes
  std::optional<std::uint16_t> close_code_;  // first close frame seen (or injected)
  const char* initiator_ = nullptr;          // "client", "backend" or "proxy"
};

}  // namespace wsgate::proxy
