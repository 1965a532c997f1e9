// TunnelControl without streams: close frames only at frame boundaries, the close handshake the
// proxy starts (and when it is complete), the pings and the dead-peer verdict, and the labels a
// tunnel is counted with.

#include "proxy/websocket/tunnel_control.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace wsgate::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Clock = TunnelControl::Clock;
using Frame = TunnelControl::Frame;
using Next = TunnelControl::Next;
constexpr auto kFromClient = TunnelControl::kFromClient;
constexpr auto kFromBackend = TunnelControl::kFromBackend;
const Clock::time_point kStart = Clock::time_point() + std::chrono::hours(1);
constexpr std::chrono::seconds kInterval(10);

// A binary frame with `size` payload bytes (masked as a client's, with a fixed key).
Bytes data_frame(std::size_t size, bool masked) {
  Bytes out;
  out.push_back(0x82);
  out.push_back(static_cast<std::uint8_t>((masked ? 0x80 : 0) | size));
  for (std::uint8_t key = 1; masked && key <= 4; ++key) out.push_back(key);
  out.resize(out.size() + size, 'x');
  return out;
}

// What a frame tells a tracker of its own: its close code, when it is a close frame.
FrameTracker parse(const Bytes& frame) {
  FrameTracker tracker;
  tracker.advance(frame);
  return tracker;
}

TEST(TunnelControl, CloseWaitsForAFrameBoundary) {
  TunnelControl control(kStart);
  const Bytes frame = data_frame(10, true);
  control.observe(kFromClient, std::span(frame).first(6));  // half a frame towards the backend
  EXPECT_EQ(control.request_close(1001, "bye"), Next::kClose);
  EXPECT_TRUE(control.closing());
  EXPECT_EQ(control.due(kFromClient), Frame::kNone);  // mid-frame
  EXPECT_EQ(control.due(kFromBackend), Frame::kClose);
  control.observe(kFromClient, std::span(frame).subspan(6));
  EXPECT_EQ(control.due(kFromClient), Frame::kClose);

  const FrameTracker to_backend = parse(control.take_close_frame(kFromClient));
  EXPECT_TRUE(to_backend.close_seen());
  EXPECT_EQ(to_backend.close_code(), 1001);
  EXPECT_EQ(to_backend.close_reason(), "bye");
  EXPECT_TRUE(control.close_sent(kFromClient));
  EXPECT_EQ(control.due(kFromClient), Frame::kNone);  // once
  EXPECT_TRUE(control.close_started());
  EXPECT_EQ(control.code_label(), "1001");
  EXPECT_STREQ(control.initiator_label(), "proxy");
}

TEST(TunnelControl, FramesTowardsTheBackendAreMaskedAndTowardsTheClientNot) {
  TunnelControl control(kStart);
  control.request_close(1001, "");
  const Bytes to_backend = control.take_close_frame(kFromClient);
  const Bytes to_client = control.take_close_frame(kFromBackend);
  EXPECT_EQ(to_backend[1] & 0x80, 0x80);
  EXPECT_EQ(to_client[1] & 0x80, 0);
}

TEST(TunnelControl, HandshakeCompleteWhenEverySideThatGotACloseAnswered) {
  TunnelControl control(kStart);
  control.request_close(1001, "drain");
  control.take_close_frame(kFromClient);
  EXPECT_FALSE(control.close_handshake_complete());  // one close frame still to send
  control.take_close_frame(kFromBackend);
  EXPECT_FALSE(control.close_handshake_complete());
  // The backend answers (its frames are read by kFromBackend), then the client.
  control.observe(kFromBackend, make_close_frame(1001, "", false));
  EXPECT_FALSE(control.close_handshake_complete());
  control.observe(kFromClient, make_close_frame(1001, "", true));
  EXPECT_TRUE(control.close_handshake_complete());
  // The proxy closed first: the peers' answers do not change the labels.
  EXPECT_EQ(control.code_label(), "1001");
  EXPECT_STREQ(control.initiator_label(), "proxy");
}

TEST(TunnelControl, APeersCloseFrameIsRecordedFirst) {
  TunnelControl control(kStart);
  EXPECT_EQ(control.code_label(), "none");
  control.observe(kFromBackend, data_frame(3, false));
  EXPECT_FALSE(control.close_started());
  control.observe(kFromBackend, make_close_frame(1000, "done", false));
  EXPECT_TRUE(control.close_started());
  EXPECT_EQ(control.code_label(), "1000");
  EXPECT_STREQ(control.initiator_label(), "backend");
  control.observe(kFromClient, make_close_frame(1000, "", true));
  control.on_end(kFromClient);
  EXPECT_STREQ(control.initiator_label(), "backend");
}

TEST(TunnelControl, ADrainDuringThePeersCloseOnlyBoundsIt) {
  TunnelControl control(kStart);
  control.observe(kFromClient, make_close_frame(1000, "", true));
  EXPECT_EQ(control.request_close(1001, "drain"), Next::kBoundGrace);
  EXPECT_FALSE(control.closing());
  EXPECT_EQ(control.due(kFromClient), Frame::kNone);
  EXPECT_EQ(control.due(kFromBackend), Frame::kNone);
}

TEST(TunnelControl, ASecondRequestChangesNothing) {
  TunnelControl control(kStart);
  EXPECT_EQ(control.request_close(1001, "drain"), Next::kClose);
  EXPECT_EQ(control.request_close(1009, "other"), Next::kNothing);
  const FrameTracker frame = parse(control.take_close_frame(kFromBackend));
  EXPECT_EQ(frame.close_code(), 1001);
}

TEST(TunnelControl, NoCloseFrameToAnySideMeansFinishNow) {
  TunnelControl control(kStart);
  EXPECT_EQ(control.request_close(CloseOrder{1001, "", false}, CloseOrder{1001, "", false}, 1001),
            Next::kFinish);
  EXPECT_FALSE(control.closing());
}

TEST(TunnelControl, OversizedMessage1009ToTheSender1001ToItsPeer) {
  TunnelControl control(kStart);
  EXPECT_EQ(control.close_for_oversized_message(kFromClient, true), Next::kClose);
  // The client sent it: the client's close frame travels kFromBackend.
  EXPECT_EQ(parse(control.take_close_frame(kFromBackend)).close_code(), 1009);
  EXPECT_EQ(parse(control.take_close_frame(kFromClient)).close_code(), 1001);
  EXPECT_EQ(control.code_label(), "1009");
}

TEST(TunnelControl, OversizedWithoutACleanCutLeavesThePeerWithoutACloseFrame) {
  TunnelControl control(kStart);
  EXPECT_EQ(control.close_for_oversized_message(kFromBackend, false), Next::kClose);
  EXPECT_TRUE(control.close_sent(kFromBackend));  // the client gets none
  EXPECT_EQ(control.due(kFromBackend), Frame::kNone);
  EXPECT_EQ(control.due(kFromClient), Frame::kClose);
  control.take_close_frame(kFromClient);
  // Only the backend's answer is waited for.
  control.observe(kFromBackend, make_close_frame(1009, "", false));
  EXPECT_TRUE(control.close_handshake_complete());
}

TEST(TunnelControl, PingsSilentPeersAtTheNextBoundary) {
  TunnelControl control(kStart);
  const Bytes frame = data_frame(10, true);
  control.observe(kFromClient, std::span(frame).first(4));
  auto tick = control.on_ping_tick(kStart + kInterval, kInterval);
  EXPECT_TRUE(tick.wake[kFromClient]);
  EXPECT_TRUE(tick.wake[kFromBackend]);
  EXPECT_EQ(tick.next, Next::kNothing);
  EXPECT_EQ(control.due(kFromBackend), Frame::kPing);
  EXPECT_EQ(control.due(kFromClient), Frame::kNone);  // mid-frame: the ping waits
  const FrameTracker ping = parse(control.take_ping_frame(kFromBackend));
  EXPECT_EQ(ping.pings(), 1u);
  EXPECT_EQ(control.due(kFromBackend), Frame::kNone);
  // A second tick while the first ping still waits wakes nobody again.
  tick = control.on_ping_tick(kStart + kInterval + std::chrono::seconds(1), kInterval);
  EXPECT_FALSE(tick.wake[kFromClient]);
}

TEST(TunnelControl, APeerThatDoesNotAnswerIsDeadAndGetsNoCloseFrame) {
  TunnelControl control(kStart);
  const auto first = kStart + kInterval;
  control.on_ping_tick(first, kInterval);
  control.take_ping_frame(kFromClient);
  control.take_ping_frame(kFromBackend);
  control.on_ping_written(kFromClient, first);
  control.on_ping_written(kFromBackend, first);
  control.on_read(kFromClient, first + std::chrono::seconds(1));  // the client answers
  const auto tick = control.on_ping_tick(first + kInterval, kInterval);
  EXPECT_TRUE(tick.backend_dead);
  EXPECT_FALSE(tick.client_dead);
  EXPECT_EQ(tick.next, Next::kClose);
  EXPECT_TRUE(control.close_sent(kFromClient));  // towards the dead backend: nothing
  EXPECT_EQ(control.due(kFromBackend), Frame::kClose);
  const FrameTracker to_client = parse(control.take_close_frame(kFromBackend));
  EXPECT_EQ(to_client.close_code(), 1001);
  EXPECT_EQ(to_client.close_reason(), "backend not answering");
}

TEST(TunnelControl, BothDeadFinishes) {
  TunnelControl control(kStart);
  const auto first = kStart + kInterval;
  control.on_ping_tick(first, kInterval);
  control.on_ping_written(kFromClient, first);
  control.on_ping_written(kFromBackend, first);
  const auto tick = control.on_ping_tick(first + kInterval, kInterval);
  EXPECT_TRUE(tick.backend_dead && tick.client_dead);
  EXPECT_EQ(tick.next, Next::kFinish);
}

TEST(TunnelControl, TheFirstEndNamesTheInitiator) {
  TunnelControl control(kStart);
  control.on_end(kFromBackend);
  control.on_end(kFromClient);
  EXPECT_STREQ(control.initiator_label(), "backend");
  EXPECT_EQ(control.code_label(), "none");
}

}  // namespace
}  // namespace wsgate::proxy
