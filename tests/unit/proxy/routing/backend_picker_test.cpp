#include "proxy/routing/backend_picker.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace wsgate::proxy {
namespace {

std::vector<config::Backend> backends(const std::vector<std::uint32_t>& weights) {
  std::vector<config::Backend> out;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    config::Backend backend;
    backend.port = static_cast<std::uint16_t>(9001 + i);
    backend.host = "127.0.0.1";
    backend.address = "127.0.0.1:" + std::to_string(backend.port);
    backend.weight = weights[i];
    out.push_back(backend);
  }
  return out;
}

TEST(BackendPicker, FollowsNginxSmoothSequence) {
  // nginx's documented example: weights a=5 b=1 c=1 give a a b a c a a, cycle after cycle.
  BackendPicker picker(backends({5, 1, 1}));
  const std::vector<std::size_t> cycle = {0, 0, 1, 0, 2, 0, 0};
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < cycle.size(); ++i) {
      EXPECT_EQ(picker.next_order().front(), cycle[i]) << "round " << round << " pick " << i;
    }
  }
}

TEST(BackendPicker, OrderIsTheChoiceThenTheRestByDescendingWeight) {
  BackendPicker picker(backends({5, 1, 1}));
  const std::vector<std::vector<std::size_t>> expected = {
      {0, 1, 2}, {0, 1, 2}, {1, 0, 2}, {0, 1, 2}, {2, 0, 1}, {0, 1, 2}, {0, 1, 2}};
  for (const auto& order : expected) EXPECT_EQ(picker.next_order(), order);
}

TEST(BackendPicker, EqualWeightsKeepBackendOrderInTheFallback) {
  BackendPicker picker(backends({1, 3, 3, 2}));
  // Smooth WRR with weights 1 3 3 2 (total 9) picks 1 2 3 0 1 2 3 1 2; the fallback order is
  // the others by weight, equal weights in backend order: 1 2 3 0.
  const std::vector<std::vector<std::size_t>> expected = {{1, 2, 3, 0}, {2, 1, 3, 0}, {3, 1, 2, 0},
                                                          {0, 1, 2, 3}, {1, 2, 3, 0}, {2, 1, 3, 0},
                                                          {3, 1, 2, 0}, {1, 2, 3, 0}, {2, 1, 3, 0}};
  for (const auto& order : expected) EXPECT_EQ(picker.next_order(), order);
}

TEST(BackendPicker, FallbackOrderIsStableOverManyBackends) {
  // Enough backends that an unstable sort would reorder equal weights.
  std::vector<std::uint32_t> weights;
  for (std::uint32_t i = 0; i < 40; ++i) weights.push_back(i % 3 == 0 ? 2 : 1);
  BackendPicker picker(backends(weights));
  const std::vector<std::size_t> order = picker.next_order();
  ASSERT_EQ(order.size(), weights.size());
  EXPECT_EQ(order.front(), 0u);  // first of the heaviest
  std::vector<std::size_t> expected;
  for (std::size_t i = 3; i < 40; i += 3) expected.push_back(i);  // the other weight-2 ones
  for (std::size_t i = 0; i < 40; ++i) {
    if (i % 3 != 0) expected.push_back(i);
  }
  EXPECT_EQ(std::vector<std::size_t>(order.begin() + 1, order.end()), expected);
}

TEST(BackendPicker, EachFullCycleHitsEveryBackendExactlyByWeight) {
  const std::vector<std::uint32_t> weights = {3, 7, 2, 1, 5};
  const std::uint32_t total = 18;
  BackendPicker picker(backends(weights));
  for (int cycle = 0; cycle < 10; ++cycle) {
    std::vector<std::uint32_t> counts(weights.size(), 0);
    for (std::uint32_t i = 0; i < total; ++i) {
      const std::vector<std::size_t> order = picker.next_order();
      ASSERT_EQ(order.size(), weights.size());
      ++counts[order.front()];
    }
    EXPECT_EQ(counts, weights) << "cycle " << cycle;
  }
}

TEST(BackendPicker, SpreadsPicksInsteadOfBursting) {
  // The "smooth" part: with 1:1 weights, no backend is picked twice in a row.
  BackendPicker picker(backends({2, 2}));
  std::size_t previous = picker.next_order().front();
  for (int i = 0; i < 20; ++i) {
    const std::size_t now = picker.next_order().front();
    EXPECT_NE(now, previous);
    previous = now;
  }
}

TEST(BackendPicker, SingleBackend) {
  BackendPicker picker(backends({4}));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(picker.next_order(), std::vector<std::size_t>{0});
}

TEST(BackendPicker, NoBackendsGivesAnEmptyOrder) {
  BackendPicker picker({});
  EXPECT_TRUE(picker.next_order().empty());
}

TEST(BackendPicker, ConcurrentPicksKeepExactTotals) {
  BackendPicker picker(backends({5, 1, 1}));
  constexpr int kThreads = 4;
  constexpr int kPicksPerThread = 7000;  // 4 * 7000 picks = 4000 full cycles of 7
  std::vector<std::vector<std::uint64_t>> counts(kThreads, std::vector<std::uint64_t>(3, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&picker, &mine = counts[t]] {
      for (int i = 0; i < kPicksPerThread; ++i) {
        const std::vector<std::size_t> order = picker.next_order();
        if (order.size() == 3) ++mine[order.front()];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<std::uint64_t> total(3, 0);
  for (const auto& mine : counts) {
    for (std::size_t i = 0; i < 3; ++i) total[i] += mine[i];
  }
  EXPECT_EQ(total, (std::vector<std::uint64_t>{20000, 4000, 4000}));
}

}  // namespace
}  // namespace wsgate::proxy
