// TunnelDeadlines with made-up times: which deadline is next, what one expiry reports, and how
// each deadline moves on (ping every interval, idle measured from the last activity, the close
// grace ahead of everything else).

#include "proxy/websocket/tunnel_deadlines.hpp"

#include <gtest/gtest.h>

namespace wsgate::proxy {
namespace {

using Clock = TunnelDeadlines::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point kStart = Clock::time_point() + std::chrono::hours(1);

TunnelDeadlines::Limits limits(seconds idle, seconds lifetime, seconds ping,
                               milliseconds grace = milliseconds(500)) {
  TunnelDeadlines::Limits out;
  out.idle = idle;
  out.lifetime = lifetime;
  out.ping_interval = ping;
  out.close_grace = grace;
  return out;
}

bool nothing_due(const TunnelDeadlines::Due& due) {
  return !due.grace && !due.lifetime && !due.ping_tick && !due.idle;
}

TEST(TunnelDeadlines, NoneConfiguredMeansNoTimer) {
  TunnelDeadlines deadlines(limits(seconds(0), seconds(0), seconds(0)), kStart);
  EXPECT_EQ(deadlines.next(), TunnelDeadlines::kNever);
  EXPECT_TRUE(nothing_due(deadlines.expire(kStart + std::chrono::hours(100))));
}

TEST(TunnelDeadlines, NextIsTheEarliest) {
  TunnelDeadlines deadlines(limits(seconds(30), seconds(3600), seconds(10)), kStart);
  EXPECT_EQ(deadlines.next(), kStart + seconds(10));
  deadlines.arm_grace(kStart + seconds(1));
  EXPECT_EQ(deadlines.next(), kStart + seconds(1) + milliseconds(500));
}

TEST(TunnelDeadlines, IdleIsMeasuredFromTheLastActivity) {
  TunnelDeadlines deadlines(limits(seconds(10), seconds(0), seconds(0)), kStart);
  EXPECT_EQ(deadlines.next(), kStart + seconds(10));
  deadlines.on_activity(kStart + seconds(4));
  // The first check finds 6 s of silence: the next one is when 10 s could have passed.
  EXPECT_TRUE(nothing_due(deadlines.expire(kStart + seconds(10))));
  EXPECT_EQ(deadlines.next(), kStart + seconds(14));
  const auto due = deadlines.expire(kStart + seconds(14));
  EXPECT_TRUE(due.idle);
  EXPECT_FALSE(due.lifetime);
  // Reported once.
  EXPECT_EQ(deadlines.next(), TunnelDeadlines::kNever);
  EXPECT_FALSE(deadlines.expire(kStart + seconds(100)).idle);
}

TEST(TunnelDeadlines, RestoredActivityUndoesAPongOnlyRead) {
  TunnelDeadlines deadlines(limits(seconds(10), seconds(0), seconds(0)), kStart);
  const auto previous = deadlines.on_activity(kStart + seconds(9));
  EXPECT_EQ(previous, kStart);
  deadlines.restore_activity(previous);
  EXPECT_EQ(deadlines.last_activity(), kStart);
  EXPECT_TRUE(deadlines.expire(kStart + seconds(10)).idle);
}

TEST(TunnelDeadlines, PingTicksEveryIntervalFromTheExpiry) {
  TunnelDeadlines deadlines(limits(seconds(0), seconds(0), seconds(5)), kStart);
  EXPECT_TRUE(deadlines.expire(kStart + seconds(5)).ping_tick);
  EXPECT_EQ(deadlines.next(), kStart + seconds(10));
  // A late timer moves the next tick from when it fired.
  EXPECT_TRUE(deadlines.expire(kStart + seconds(12)).ping_tick);
  EXPECT_EQ(deadlines.next(), kStart + seconds(17));
  EXPECT_FALSE(deadlines.expire(kStart + seconds(16)).ping_tick);
}

TEST(TunnelDeadlines, LifetimeOnceAndTogetherWithWhatElseIsDue) {
  TunnelDeadlines deadlines(limits(seconds(5), seconds(5), seconds(5)), kStart);
  const auto due = deadlines.expire(kStart + seconds(5));
  EXPECT_TRUE(due.lifetime);
  EXPECT_TRUE(due.ping_tick);
  EXPECT_TRUE(due.idle);
  EXPECT_FALSE(due.grace);
  EXPECT_FALSE(deadlines.expire(kStart + seconds(10)).lifetime);
}

TEST(TunnelDeadlines, GraceComesAloneAndStaysDue) {
  TunnelDeadlines deadlines(limits(seconds(1), seconds(1), seconds(1)), kStart);
  deadlines.arm_grace(kStart);
  const auto due = deadlines.expire(kStart + seconds(2));
  EXPECT_TRUE(due.grace);
  EXPECT_FALSE(due.lifetime);
  EXPECT_FALSE(due.ping_tick);
  EXPECT_FALSE(due.idle);
  // Arming again moves it later.
  deadlines.arm_grace(kStart + seconds(3));
  EXPECT_FALSE(deadlines.expire(kStart + seconds(3)).grace);
  EXPECT_TRUE(deadlines.expire(kStart + seconds(3) + milliseconds(500)).grace);
}

TEST(TunnelDeadlines, NotDueBeforeItsTime) {
  TunnelDeadlines deadlines(limits(seconds(10), seconds(20), seconds(5)), kStart);
  EXPECT_TRUE(nothing_due(deadlines.expire(kStart + seconds(4))));
  EXPECT_EQ(deadlines.next(), kStart + seconds(5));
}

}  // namespace
}  // namespace wsgate::proxy
