#pragma once
// maxMessageBytes at a frame boundary: how much of one read a tunnel direction may forward
// so that an oversized message is cut before its frame. Pure, so it is unit-tested and fuzzed
// without sockets.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "proxy/websocket/frame_tracker.hpp"

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

}  // namespace wsgate::proxy
