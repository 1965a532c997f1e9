#include "proxy/websocket/message_limit.hpp"

#include <algorithm>
#include <limits>

namespace wsgate::proxy {
namespace {

// The frame in progress began before this read and its first bytes were already forwarded
// (bytes sent with the handshake, or a limit applied mid-frame): it cannot be cut cleanly.
constexpr std::ptrdiff_t kStartedEarlier = std::numeric_limits<std::ptrdiff_t>::min();
// More header bytes than any frame has: "not enough bytes to know the header's size yet".
constexpr std::size_t kUnknownHeader = HeldHeader::kMaxHeader + 1;

}  // namespace

std::size_t frame_header_size(std::uint8_t second) {
  const std::uint8_t len7 = second & 0x7F;
  const std::size_t extended = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0);
  return 2 + extended + ((second & 0x80) != 0 ? 4 : 0);
}

ForwardPlan plan_limited_forward(FrameTracker& tracker, std::span<const std::uint8_t> data,
                                 const HeldHeader& held, std::uint64_t limit) {
  const auto h = static_cast<std::ptrdiff_t>(held.size);
  const auto n = static_cast<std::ptrdiff_t>(data.size());
  // Byte i of the stream "held bytes, then data", counted from data[0] (negative = held).
  const auto byte_at = [&](std::ptrdiff_t i) {
    return i < 0 ? held.bytes[static_cast<std::size_t>(h + i)] : data[static_cast<std::size_t>(i)];
  };

  ForwardPlan plan;
  plan.held_to_send = held.size;
  plan.forward = data.size();
  plan.hold_from = data.size();
  plan.consumed = data.size();

  std::ptrdiff_t frame_start = h > 0 ? -h : (tracker.at_boundary() ? 0 : kStartedEarlier);
  bool header_pending = frame_start != kStartedEarlier;  // the current frame's header is unread
  std::ptrdiff_t pos = 0;
  while (pos < n) {
    if (tracker.at_boundary()) {
      frame_start = pos;
      header_pending = true;
    }
    std::size_t step = 0;
    if (header_pending) {
      const std::ptrdiff_t have = n - frame_start;
      const std::size_t need =
          have >= 2 ? frame_header_size(byte_at(frame_start + 1)) : kUnknownHeader;
      if (have < static_cast<std::ptrdiff_t>(need)) {
        // Incomplete header: the tracker sees it now, the peer with the rest of it.
        tracker.advance(data.subspan(static_cast<std::size_t>(pos)));
        if (frame_start < 0) {
          plan.held_to_send = 0;
          plan.forward = 0;
          plan.keep_held = held.size;
          plan.hold_from = 0;
        } else {
          plan.forward = static_cast<std::size_t>(frame_start);
          plan.hold_from = static_cast<std::size_t>(frame_start);
        }
        return plan;
      }
      // Exactly the header: its length is counted before any of its payload moves.
      step = tracker.advance(data.subspan(
          static_cast<std::size_t>(pos),
          static_cast<std::size_t>(frame_start) + need - static_cast<std::size_t>(pos)));
      header_pending = false;
    } else {
      step = tracker.advance(data.subspan(static_cast<std::size_t>(pos)), true);
    }
    pos += static_cast<std::ptrdiff_t>(step);
    if (tracker.status() != FrameTracker::Status::kOk || step == 0) {
      // A broken stream is the endpoints' to refuse: pass it on as an unlimited direction does.
      return plan;
    }
    if (limit > 0 && tracker.current_message_bytes() > limit) {
      plan.over_limit = true;
      plan.consumed = static_cast<std::size_t>(pos);
      plan.hold_from = data.size();
      plan.keep_held = 0;
      if (frame_start == kStartedEarlier) {
        plan.clean_cut = false;
        plan.held_to_send = 0;
        plan.forward = 0;
      } else if (frame_start < 0) {
        plan.held_to_send = 0;  // the held bytes are the oversized frame's own header
        plan.forward = 0;
      } else {
        plan.forward = static_cast<std::size_t>(frame_start);
      }
      return plan;
    }
  }
  return plan;
}

void apply_plan(HeldHeader& held, const ForwardPlan& plan, std::span<const std::uint8_t> data) {
  const auto tail = data.subspan(std::min(plan.hold_from, data.size()));
  held.size = std::min(plan.keep_held, held.size);
  const std::size_t room = held.bytes.size() - held.size;
  const std::size_t take = std::min(room, tail.size());  // an incomplete header always fits
  std::copy_n(tail.begin(), take, held.bytes.begin() + static_cast<std::ptrdiff_t>(held.size));
  held.size += take;
}

}  // namespace wsgate::proxy
