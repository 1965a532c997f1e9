#include "source/debouncer.hpp"

#include <gtest/gtest.h>

namespace wsgate::source {
namespace {

using std::chrono::milliseconds;
using Clock = Debouncer::Clock;

const Clock::time_point kT0 = Clock::time_point() + std::chrono::hours(1);

TEST(Debouncer, NothingPendingHasNoDeadline) {
  Debouncer d(milliseconds(100), milliseconds(500), milliseconds(2000));
  EXPECT_FALSE(d.pending());
  EXPECT_EQ(d.deadline(false), Clock::time_point::max());
  EXPECT_FALSE(d.due(kT0, false));
}

TEST(Debouncer, SingleEventWaitsForTheHoldoff) {
  Debouncer d(milliseconds(100), milliseconds(500), milliseconds(2000));
  d.on_event(kT0);
  EXPECT_TRUE(d.pending());
  EXPECT_EQ(d.deadline(false), kT0 + milliseconds(100));
  EXPECT_FALSE(d.due(kT0 + milliseconds(99), false));
  EXPECT_TRUE(d.due(kT0 + milliseconds(100), false));
}

TEST(Debouncer, EachEventPushesTheHoldoffButNotPastMaxDelay) {
  Debouncer d(milliseconds(100), milliseconds(500), milliseconds(2000));
  d.on_event(kT0);
  d.on_event(kT0 + milliseconds(80));
  EXPECT_EQ(d.deadline(false), kT0 + milliseconds(180));
  // A steady stream every 80 ms would never be quiet: max_delay cuts it off.
  for (int i = 2; i <= 10; ++i) d.on_event(kT0 + milliseconds(80 * i));
  EXPECT_EQ(d.deadline(false), kT0 + milliseconds(500));
  EXPECT_TRUE(d.due(kT0 + milliseconds(500), false));
}

TEST(Debouncer, OpenWriterStretchesTheWaitUpToTheGrace) {
  Debouncer d(milliseconds(100), milliseconds(500), milliseconds(2000));
  d.on_event(kT0);
  EXPECT_FALSE(d.due(kT0 + milliseconds(100), true));
  EXPECT_FALSE(d.due(kT0 + milliseconds(2499), true));
  EXPECT_TRUE(d.due(kT0 + milliseconds(2500), true));
  // Once the writer closed, the ordinary deadline applies again (here: already passed).
  EXPECT_TRUE(d.due(kT0 + milliseconds(600), false));
}

TEST(Debouncer, ClearEndsTheBurstAndTheNextEventStartsAFreshOne) {
  Debouncer d(milliseconds(100), milliseconds(500), milliseconds(2000));
  d.on_event(kT0);
  d.on_event(kT0 + milliseconds(450));
  d.clear();
  EXPECT_FALSE(d.pending());
  d.on_event(kT0 + milliseconds(1000));
  // Measured from the new burst's first event, not the old one's.
  EXPECT_EQ(d.deadline(false), kT0 + milliseconds(1100));
  for (int i = 1; i <= 9; ++i) d.on_event(kT0 + milliseconds(1000 + 90 * i));
  EXPECT_EQ(d.deadline(false), kT0 + milliseconds(1500));
}

TEST(Debouncer, MaxDelayBelowHoldoffIsRaisedToTheHoldoff) {
  Debouncer d(milliseconds(100), milliseconds(10), milliseconds(0));
  d.on_event(kT0);
  EXPECT_EQ(d.deadline(false), kT0 + milliseconds(100));
}

}  // namespace
}  // namespace wsgate::source
