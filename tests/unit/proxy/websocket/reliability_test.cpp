#include "proxy/core/admission.hpp"
#include "proxy/websocket/message_limit.hpp"
#include "proxy/websocket/peer_liveness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <thread>
#include <vector>

namespace wsgate::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;

// One frame from RFC 6455 §5.2, built here independently of the code under test. The payload
// is a pattern; `masked` uses a fixed key (its value does not matter to the limiter).
Bytes frame(std::uint8_t opcode, std::size_t payload_size, bool fin = true, bool masked = true) {
  Bytes out;
  out.push_back(static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | opcode));
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  if (payload_size < 126) {
    out.push_back(static_cast<std::uint8_t>(mask_bit | payload_size));
  } else if (payload_size <= 0xFFFF) {
    out.push_back(mask_bit | 126);
    out.push_back(static_cast<std::uint8_t>(payload_size >> 8));
    out.push_back(static_cast<std::uint8_t>(payload_size));
  } else {
    out.push_back(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(payload_size) >> shift));
  }
  if (masked) out.insert(out.end(), {0x11, 0x22, 0x33, 0x44});
  for (std::size_t i = 0; i < payload_size; ++i) out.push_back(static_cast<std::uint8_t>(i * 7));
  return out;
}

void append(Bytes& out, const Bytes& more) {
  out.insert(out.end(), more.begin(), more.end());
}

// What a pump with a limit does with a stream cut into reads: the bytes it forwards, and
// whether (and where) it stopped.
struct PumpResult {
  Bytes forwarded;
  bool over = false;
  bool clean = true;
  std::size_t max_held = 0;
  std::size_t consumed_at_over = 0;  // stream offset the tracker had reached at the cut
};

PumpResult pump(const Bytes& stream, const std::vector<std::size_t>& reads, std::uint64_t limit,
                FrameTracker& tracker) {
  PumpResult result;
  HeldHeader held;
  std::size_t offset = 0;
  for (std::size_t size : reads) {
    size = std::min(size, stream.size() - offset);
    if (size == 0) break;
    const std::span<const std::uint8_t> data(stream.data() + offset, size);
    const ForwardPlan plan = plan_limited_forward(tracker, data, held, limit);
    EXPECT_LE(plan.held_to_send, held.size);
    EXPECT_LE(plan.forward, data.size());
    result.forwarded.insert(result.forwarded.end(), held.bytes.begin(),
                            held.bytes.begin() + static_cast<std::ptrdiff_t>(plan.held_to_send));
    result.forwarded.insert(result.forwarded.end(), data.begin(),
                            data.begin() + static_cast<std::ptrdiff_t>(plan.forward));
    apply_plan(held, plan, data);
    result.max_held = std::max(result.max_held, held.size);
    if (plan.over_limit) {
      result.over = true;
      result.clean = plan.clean_cut;
      result.consumed_at_over = offset + plan.consumed;
      return result;
    }
    offset += size;
  }
  return result;
}

std::vector<std::size_t> random_reads(std::size_t total, std::mt19937& rng, std::size_t max_read) {
  std::uniform_int_distribution<std::size_t> size(1, max_read);
  std::vector<std::size_t> reads;
  for (std::size_t sum = 0; sum < total;) {
    reads.push_back(size(rng));
    sum += reads.back();
  }
  return reads;
}

TEST(ReliabilityFrameHeader, SizeFollowsLengthAndMaskBits) {
  EXPECT_EQ(frame_header_size(0x05), 2u);
  EXPECT_EQ(frame_header_size(0x85), 6u);
  EXPECT_EQ(frame_header_size(126), 4u);
  EXPECT_EQ(frame_header_size(0x80 | 126), 8u);
  EXPECT_EQ(frame_header_size(127), 10u);
  EXPECT_EQ(frame_header_size(0x80 | 127), 14u);
}

TEST(ReliabilityMessageLimit, MessagesWithinTheLimitPassWhole) {
  Bytes stream;
  append(stream, frame(0x1, 100));
  append(stream, frame(0x2, 1000));  // exactly the limit: allowed
  append(stream, frame(0x9, 5));
  append(stream, frame(0x1, 0));
  FrameTracker tracker;
  const auto result = pump(stream, {stream.size()}, 1000, tracker);
  EXPECT_FALSE(result.over);
  EXPECT_EQ(result.forwarded, stream);
  EXPECT_EQ(tracker.messages(), 3u);
}

TEST(ReliabilityMessageLimit, CutsRightBeforeTheOversizedFrame) {
  Bytes stream;
  append(stream, frame(0x1, 10));
  const std::size_t cut = stream.size();
  append(stream, frame(0x2, 1001));
  append(stream, frame(0x1, 10));
  FrameTracker tracker;
  const auto result = pump(stream, {stream.size()}, 1000, tracker);
  ASSERT_TRUE(result.over);
  EXPECT_TRUE(result.clean);
  EXPECT_EQ(result.forwarded, Bytes(stream.begin(), stream.begin() + cut));
  // The header was enough to decide: none of the oversized payload had to be read.
  EXPECT_EQ(result.consumed_at_over, cut + 4 + 4);
}

TEST(ReliabilityMessageLimit, FragmentsCountTowardsTheirMessageButControlFramesDoNot) {
  Bytes stream;
  append(stream, frame(0x1, 400, false));
  append(stream, frame(0xA, 100));  // a pong between fragments: not part of the message
  append(stream, frame(0x0, 400, false));
  const std::size_t cut = stream.size();
  append(stream, frame(0x0, 201, true));  // 1001 in total
  FrameTracker tracker;
  const auto result = pump(stream, {stream.size()}, 1000, tracker);
  ASSERT_TRUE(result.over);
  EXPECT_EQ(result.forwarded, Bytes(stream.begin(), stream.begin() + cut));

  FrameTracker exact;
  Bytes fits = stream;
  fits.resize(cut);
  append(fits, frame(0x0, 200, true));  // exactly 1000
  EXPECT_FALSE(pump(fits, {fits.size()}, 1000, exact).over);
}

TEST(ReliabilityMessageLimit, IncompleteHeadersAreHeldBackNotForwarded) {
  // A 64-bit length header (14 bytes) fed one byte per read: nothing of it may go out before
  // the proxy knows the length, so it can still drop the whole frame.
  Bytes stream;
  append(stream, frame(0x2, 70000));
  FrameTracker tracker;
  const std::vector<std::size_t> one_byte_reads(20, 1);
  const auto result = pump(stream, one_byte_reads, 1000, tracker);
  ASSERT_TRUE(result.over);
  EXPECT_TRUE(result.clean);
  EXPECT_TRUE(result.forwarded.empty());
  EXPECT_EQ(result.max_held, 13u);
}

TEST(ReliabilityMessageLimit, HeldHeaderGoesOutWithTheRestOfItsFrame) {
  Bytes stream;
  append(stream, frame(0x1, 300));
  append(stream, frame(0x1, 5));
  FrameTracker tracker;
  // Reads end inside the first header (after 1 and 3 bytes), then the rest.
  const auto result = pump(stream, {1, 2, stream.size()}, 1000, tracker);
  EXPECT_FALSE(result.over);
  EXPECT_EQ(result.forwarded, stream);
  EXPECT_EQ(tracker.messages(), 2u);
}

TEST(ReliabilityMessageLimit, AnySplitOfAnyStreamForwardsExactlyUpToTheCut) {
  std::mt19937 rng(20240607);
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<std::size_t> small(0, 200);
  for (int round = 0; round < 300; ++round) {
    const std::uint64_t limit = 50 + (round % 7) * 100;
    Bytes stream;
    std::optional<std::size_t> expected_cut;
    std::uint64_t message = 0;
    bool fragmented = false;
    for (int f = 0; f < 12; ++f) {
      const int k = kind(rng);
      std::size_t size = small(rng);
      if (k == 0) size = 70000;  // the 64-bit length form
      if (k == 1) size = 300;    // the 16-bit length form
      Bytes next;
      if (k == 2 || k == 3) {
        next = frame(k == 2 ? 0x9 : 0xA, std::min<std::size_t>(size, 125), true, round % 2 == 0);
      } else {
        const bool fin = k != 4;
        const std::uint8_t opcode = fragmented ? 0x0 : 0x2;
        next = frame(opcode, size, fin, round % 2 == 0);
        message = (fragmented ? message : 0) + size;
        fragmented = !fin;
        if (!expected_cut && message > limit) expected_cut = stream.size();
      }
      append(stream, next);
    }
    FrameTracker tracker;
    const auto reads = random_reads(stream.size(), rng, round % 3 == 0 ? 3 : 4000);
    const auto result = pump(stream, reads, limit, tracker);
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_EQ(result.over, expected_cut.has_value());
    EXPECT_LE(result.max_held, 13u);
    if (expected_cut) {
      EXPECT_TRUE(result.clean);
      ASSERT_EQ(result.forwarded.size(), *expected_cut);
      EXPECT_TRUE(std::equal(result.forwarded.begin(), result.forwarded.end(), stream.begin()));
    } else {
      // Ends at a frame boundary: everything went out, nothing is held.
      EXPECT_EQ(result.forwarded, stream);
    }
  }
}

TEST(ReliabilityMessageLimit, AFrameBegunBeforeTheLimiterCannotBeCutCleanly) {
  // The first header bytes went out with the handshake (the tracker saw them elsewhere).
  const Bytes stream = frame(0x2, 5000);
  FrameTracker tracker;
  tracker.advance(std::span<const std::uint8_t>(stream.data(), 1));
  const Bytes rest(stream.begin() + 1, stream.end());
  const auto result = pump(rest, {rest.size()}, 1000, tracker);
  ASSERT_TRUE(result.over);
  EXPECT_FALSE(result.clean);
  EXPECT_TRUE(result.forwarded.empty());
}

TEST(ReliabilityMessageLimit, ABrokenStreamIsPassedOnForTheEndpointsToRefuse) {
  Bytes stream = {0x83, 0x00};  // reserved opcode 3
  append(stream, frame(0x2, 5000));
  FrameTracker tracker;
  const auto result = pump(stream, {stream.size()}, 1000, tracker);
  EXPECT_FALSE(result.over);
  EXPECT_EQ(result.forwarded, stream);
  EXPECT_EQ(tracker.status(), FrameTracker::Status::kProtocolError);
}

TEST(ReliabilityMessageLimit, ZeroMeansUnlimited) {
  const Bytes stream = frame(0x2, 70000);
  FrameTracker tracker;
  const auto result = pump(stream, {5, 20, stream.size()}, 0, tracker);
  EXPECT_FALSE(result.over);
  EXPECT_EQ(result.forwarded, stream);
}

// --------------------------------------------------------------------------------------------

using Clock = PeerLiveness::Clock;
constexpr auto kInterval = std::chrono::seconds(10);

TEST(ReliabilityPeerLiveness, PingsOnlyAfterAnIntervalOfSilence) {
  PeerLiveness liveness;
  const Clock::time_point t0{};
  const auto heard = t0 + std::chrono::seconds(5);
  EXPECT_EQ(liveness.on_tick(t0 + kInterval, heard, kInterval), PeerLiveness::Action::kNone);
  EXPECT_EQ(liveness.on_tick(t0 + std::chrono::seconds(14), heard, kInterval),
            PeerLiveness::Action::kNone);
  EXPECT_EQ(liveness.on_tick(t0 + std::chrono::seconds(15), heard, kInterval),
            PeerLiveness::Action::kPing);
}

TEST(ReliabilityPeerLiveness, AnAnsweredPingKeepsThePeerAlive) {
  PeerLiveness liveness;
  const Clock::time_point t0{};
  EXPECT_EQ(liveness.on_tick(t0 + kInterval, t0, kInterval), PeerLiveness::Action::kPing);
  liveness.on_ping_sent(t0 + kInterval);
  EXPECT_TRUE(liveness.ping_outstanding());
  const auto pong = t0 + kInterval + std::chrono::milliseconds(20);
  EXPECT_EQ(liveness.on_tick(t0 + 2 * kInterval, pong, kInterval), PeerLiveness::Action::kNone);
  EXPECT_FALSE(liveness.ping_outstanding());
  // Silent again for a whole interval after the pong: pinged again, not declared dead.
  EXPECT_EQ(liveness.on_tick(t0 + 3 * kInterval, pong, kInterval), PeerLiveness::Action::kPing);
}

TEST(ReliabilityPeerLiveness, NoAnswerWithinAnIntervalIsDeath) {
  PeerLiveness liveness;
  const Clock::time_point t0{};
  EXPECT_EQ(liveness.on_tick(t0 + kInterval, t0, kInterval), PeerLiveness::Action::kPing);
  liveness.on_ping_sent(t0 + kInterval);
  EXPECT_EQ(liveness.on_tick(t0 + 2 * kInterval, t0, kInterval), PeerLiveness::Action::kDead);
}

TEST(ReliabilityPeerLiveness, ALatePingGetsTimeToBeAnswered) {
  PeerLiveness liveness;
  const Clock::time_point t0{};
  EXPECT_EQ(liveness.on_tick(t0 + kInterval, t0, kInterval), PeerLiveness::Action::kPing);
  // The pump could only write it just before the next tick (it was mid-frame).
  liveness.on_ping_sent(t0 + 2 * kInterval - std::chrono::seconds(1));
  EXPECT_EQ(liveness.on_tick(t0 + 2 * kInterval, t0, kInterval), PeerLiveness::Action::kNone);
  EXPECT_EQ(liveness.on_tick(t0 + 3 * kInterval, t0, kInterval), PeerLiveness::Action::kDead);
}

TEST(ReliabilityPeerLiveness, AnyTrafficCountsAsAnAnswer) {
  PeerLiveness liveness;
  const Clock::time_point t0{};
  liveness.on_tick(t0 + kInterval, t0, kInterval);
  liveness.on_ping_sent(t0 + kInterval);
  const auto data = t0 + kInterval + std::chrono::seconds(3);  // a data frame, not a pong
  EXPECT_EQ(liveness.on_tick(t0 + 2 * kInterval, data, kInterval), PeerLiveness::Action::kNone);
}

// --------------------------------------------------------------------------------------------

TEST(ReliabilityAdmission, ConnectionLimitIsExactAndReleased) {
  AdmissionLimits limits;
  EXPECT_TRUE(limits.try_open_connection(2));
  EXPECT_TRUE(limits.try_open_connection(2));
  EXPECT_FALSE(limits.try_open_connection(2));
  EXPECT_EQ(limits.open_connections(), 2u);
  limits.close_connection();
  EXPECT_TRUE(limits.try_open_connection(2));
  EXPECT_TRUE(limits.try_open_connection(0));  // 0 = unlimited, still counted
  EXPECT_EQ(limits.open_connections(), 3u);
}

TEST(ReliabilityAdmission, ConnectionSlotGivesItsPlaceBackOnceWhereverItMoved) {
  AdmissionLimits limits;
  ASSERT_TRUE(limits.try_open_connection(1));
  {
    ConnectionSlot accepted(limits);
    ConnectionSlot session(std::move(accepted));  // TLS accept -> HTTP session
    ConnectionSlot tunnel;
    tunnel = std::move(session);  // session -> tunnel
    EXPECT_EQ(limits.open_connections(), 1u);
    EXPECT_FALSE(limits.try_open_connection(1));
  }
  EXPECT_EQ(limits.open_connections(), 0u);  // once, by the last holder
  ASSERT_TRUE(limits.try_open_connection(1));
  ConnectionSlot slot(limits);
  slot.reset();
  slot.reset();  // a second reset gives back nothing
  EXPECT_EQ(limits.open_connections(), 0u);
}

TEST(ReliabilityAdmission, TunnelsAreCountedPerClient) {
  AdmissionLimits limits;
  EXPECT_TRUE(limits.try_reserve_client_tunnel("10.0.0.1", 2));
  EXPECT_TRUE(limits.try_reserve_client_tunnel("10.0.0.1", 2));
  EXPECT_FALSE(limits.try_reserve_client_tunnel("10.0.0.1", 2));
  EXPECT_TRUE(limits.try_reserve_client_tunnel("10.0.0.2", 2));
  limits.release_client_tunnel("10.0.0.1");
  EXPECT_EQ(limits.client_tunnels("10.0.0.1"), 1u);
  EXPECT_TRUE(limits.try_reserve_client_tunnel("10.0.0.1", 2));
  limits.release_client_tunnel("10.0.0.2");
  EXPECT_EQ(limits.client_tunnels("10.0.0.2"), 0u);
  limits.release_client_tunnel("10.0.0.9");  // unknown: harmless
  EXPECT_TRUE(limits.try_reserve_client_tunnel("10.0.0.3", 0));
  EXPECT_EQ(limits.client_tunnels("10.0.0.3"), 0u);  // unlimited: not tracked
}

TEST(ReliabilityAdmission, ConcurrentWorkersNeverExceedTheLimits) {
  AdmissionLimits limits;
  constexpr std::size_t kLimit = 50;
  std::atomic<std::size_t> admitted{0};
  std::atomic<std::size_t> peak{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (limits.try_open_connection(kLimit)) {
          const std::size_t now = limits.open_connections();
          std::size_t seen = peak.load();
          while (now > seen && !peak.compare_exchange_weak(seen, now)) {
          }
          ++admitted;
          limits.close_connection();
        }
        if (limits.try_reserve_client_tunnel("client", 3)) limits.release_client_tunnel("client");
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_LE(peak.load(), kLimit);
  EXPECT_GT(admitted.load(), 0u);
  EXPECT_EQ(limits.open_connections(), 0u);
  EXPECT_EQ(limits.client_tunnels("client"), 0u);
}

}  // namespace
}  // namespace wsgate::proxy
