// libFuzzer target: a WebSocket byte stream cut into reads, through the FrameTracker and the
// maxMessageBytes limiter exactly as a tunnel pump uses them. Besides crashes it checks the
// limiter's promises: what it forwards is a prefix of the stream, held header bytes never
// exceed 13, and a clean cut leaves the forwarded stream at a frame boundary (a second tracker
// fed only the forwarded bytes must be between frames). It also round-trips the proxy's own
// close frames through a tracker.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "proxy/websocket/frame_tracker.hpp"
#include "proxy/websocket/message_limit.hpp"

namespace {

using namespace wsgate::proxy;

void check_close_frames(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return;
  const auto code = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
  const std::string_view reason(reinterpret_cast<const char*>(data + 2), size - 2);
  for (const bool masked : {false, true}) {
    const auto frame = make_close_frame(code, reason, masked);
    FrameTracker tracker;
    if (tracker.advance(frame) != frame.size() || !tracker.close_seen() ||
        tracker.close_code() != code || !tracker.at_boundary() ||
        !reason.starts_with(tracker.close_reason())) {
      std::abort();
    }
    const auto ping = make_ping_frame(reason, masked);
    FrameTracker ping_tracker;
    if (ping_tracker.advance(ping) != ping.size() || ping_tracker.pings() != 1) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  // Byte 0: the limit (0 = unlimited, else 1..255 * 64); byte 1: the read size pattern.
  const std::uint64_t limit = static_cast<std::uint64_t>(data[0]) * 64;
  const std::size_t read_seed = data[1];
  const std::span<const std::uint8_t> stream(data + 2, size - 2);
  check_close_frames(stream.data(), std::min<std::size_t>(stream.size(), 200));

  FrameTracker tracker;
  FrameTracker mirror;  // sees only what would be forwarded
  HeldHeader held;
  std::vector<std::uint8_t> forwarded;
  std::size_t offset = 0;
  for (std::size_t i = 0; offset < stream.size(); ++i) {
    const std::size_t read = 1 + (read_seed * (i + 7) + i * i) % 97;
    const auto chunk = stream.subspan(offset, std::min(read, stream.size() - offset));
    const ForwardPlan plan = plan_limited_forward(tracker, chunk, held, limit);
    if (plan.held_to_send > held.size || plan.forward > chunk.size() ||
        plan.consumed > chunk.size()) {
      std::abort();
    }
    const std::size_t before = forwarded.size();
    forwarded.insert(forwarded.end(), held.bytes.begin(),
                     held.bytes.begin() + static_cast<std::ptrdiff_t>(plan.held_to_send));
    forwarded.insert(forwarded.end(), chunk.begin(),
                     chunk.begin() + static_cast<std::ptrdiff_t>(plan.forward));
    mirror.advance(std::span<const std::uint8_t>(forwarded).subspan(before));
    apply_plan(held, plan, chunk);
    if (held.size > HeldHeader::kMaxHeader - 1) std::abort();
    if (!std::equal(forwarded.begin(), forwarded.end(), stream.begin())) std::abort();
    if (plan.over_limit) {
      if (limit == 0) std::abort();
      if (plan.clean_cut && tracker.status() == FrameTracker::Status::kOk &&
          mirror.status() == FrameTracker::Status::kOk && !mirror.at_boundary()) {
        std::abort();  // a close frame injected now would land inside a frame
      }
      tracker.advance(chunk.subspan(plan.consumed));  // the pump keeps watching
      break;
    }
    offset += chunk.size();
  }
  return 0;
}
