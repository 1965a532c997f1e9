// Registration rules, histogram bucket invariants and concurrent updates (scrapes included:
// counters are folded into their prometheus-cpp series at each collect).

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.hpp"

namespace wsgate::metrics {
namespace {

TEST(Registration, CounterNamesMustEndInTotal) {
  Registry registry;
  EXPECT_THROW(registry.counter("wsgate_handshakes", "H.", {}), std::invalid_argument);
  EXPECT_NO_THROW(registry.counter("wsgate_handshakes_total", "H.", {}));
  EXPECT_NO_THROW(registry.gauge("wsgate_handshakes", "Gauges need no suffix.", {}));
}

TEST(Registration, InvalidNamesAndLabelsAreRejected) {
  Registry registry;
  EXPECT_THROW(registry.gauge("", "E.", {}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("9lives", "E.", {}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("has-dash", "E.", {}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "E.", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "E.", {"a:b"}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "E.", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("ok", "E.", {"dup", "dup"}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h", "E.", {"le"}, {1}), std::invalid_argument);
  EXPECT_NO_THROW(registry.gauge("name:with_colon", "E.", {"_x1"}));
}

TEST(Registration, HistogramBoundsMustAscendAndMayEndWithInf) {
  Registry registry;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(registry.histogram("h1", "H.", {}, {1, 0.5}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h2", "H.", {}, {1, 1}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h3", "H.", {}, {nan}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h4", "H.", {}, {-inf, 1}), std::invalid_argument);
  HistogramFamily& with_inf = registry.histogram("h5", "H.", {}, {1, inf});
  with_inf.with({}).observe(3);
  // +Inf written out is the implied bucket, not a second one.
  std::string text = registry.expose();
  EXPECT_NE(text.find("h5_sum 3\nh5_bucket{le=\"1\"} 0\nh5_bucket{le=\"+Inf\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(Registration, SameDefinitionReturnsSameFamilyDifferentOneThrows) {
  Registry registry;
  CounterFamily& first = registry.counter("c_total", "C.", {"a"});
  EXPECT_EQ(&registry.counter("c_total", "C.", {"a"}), &first);
  EXPECT_THROW(registry.counter("c_total", "C.", {"b"}), std::invalid_argument);
  EXPECT_THROW(registry.counter("c_total", "Other help.", {"a"}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("c_total", "C.", {"a"}), std::invalid_argument);
  HistogramFamily& h = registry.histogram("h", "H.", {}, {1, 2});
  EXPECT_EQ(&registry.histogram("h", "H.", {}, {1, 2}), &h);
  EXPECT_THROW(registry.histogram("h", "H.", {}, {1, 3}), std::invalid_argument);
}

TEST(Family, WithReturnsStableReferencePerLabelSet) {
  Registry registry;
  GaugeFamily& family = registry.gauge("g", "G.", {"a", "b"});
  Gauge& one = family.with({"x", "y"});
  for (int i = 0; i < 100; ++i) family.with({"x", std::to_string(i)});  // map grows
  EXPECT_EQ(&family.with({"x", "y"}), &one);
  int visited = 0;
  std::string previous;
  family.for_each([&](const LabelValues& values, const Gauge&) {
    ASSERT_EQ(values.size(), 2u);
    EXPECT_LE(previous, values[1]);  // sorted by label values
    previous = values[1];
    ++visited;
  });
  EXPECT_EQ(visited, 101);
}

TEST(Histogram, BucketsAreCumulativeNonDecreasingAndEndAtCount) {
  const std::vector<double> bounds = default_latency_buckets();
  Registry registry;
  Histogram& histogram = registry.histogram("h_seconds", "H.", {}, bounds).with({});
  // Values spread over every bucket, including exact bounds, below the first and above the last.
  std::uint64_t observed = 0;
  double expected_sum = 0;
  for (int i = 0; i <= 2000; ++i) {
    double value = 0.0005 * i * i / 100.0;  // 0 .. 20 s, denser near zero
    histogram.observe(value);
    expected_sum += value;
    ++observed;
  }
  for (double bound : bounds) {
    histogram.observe(bound);
    expected_sum += bound;
    ++observed;
  }
  Histogram::Snapshot snap = histogram.snapshot();
  ASSERT_EQ(snap.cumulative.size(), bounds.size() + 1);
  for (std::size_t i = 1; i < snap.cumulative.size(); ++i) {
    EXPECT_LE(snap.cumulative[i - 1], snap.cumulative[i]) << "bucket " << i;
  }
  EXPECT_EQ(snap.cumulative.back(), observed);
  EXPECT_EQ(snap.count, observed);
  EXPECT_NEAR(snap.sum, expected_sum, 1e-9 * expected_sum);

  // Each cumulative bucket holds exactly the values <= its bound.
  for (std::size_t b = 0; b < bounds.size(); ++b) {
    std::uint64_t expected = 0;
    for (int i = 0; i <= 2000; ++i) expected += (0.0005 * i * i / 100.0 <= bounds[b]) ? 1 : 0;
    expected += b + 1;  // the bounds themselves observed above, up to this one
    EXPECT_EQ(snap.cumulative[b], expected) << "le=" << bounds[b];
  }
}

TEST(Histogram, NanGoesToInfBucketOnly) {
  Registry registry;
  Histogram& histogram = registry.histogram("h_seconds", "H.", {}, {1, 2}).with({});
  histogram.observe(std::numeric_limits<double>::quiet_NaN());
  Histogram::Snapshot snap = histogram.snapshot();
  EXPECT_EQ(snap.cumulative, (std::vector<std::uint64_t>{0, 0, 1}));
  EXPECT_EQ(snap.count, 1u);
  EXPECT_TRUE(std::isnan(snap.sum));
}

TEST(DefaultBuckets, AreTheDocumentedOnes) {
  EXPECT_EQ(default_latency_buckets(), (std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1, 0.25, 0.5, 1, 2.5, 5, 10}));
  EXPECT_EQ(default_duration_buckets(), (std::vector<double>{0.1, 0.5, 1, 5, 10, 30, 60, 300, 600,
                                                             1800, 3600, 7200, 21600, 86400}));
}

TEST(Concurrency, IncrementsAndObservationsFromSeveralThreadsAddUp) {
  Registry registry;
  CounterFamily& counters = registry.counter("hits_total", "H.", {"route"});
  GaugeFamily& gauges = registry.gauge("open", "O.", {"route"});
  HistogramFamily& histograms = registry.histogram("lat", "L.", {"route"}, {0.5, 1, 2});
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread looks the shared series up itself: creation races must yield one series.
      Counter& shared = counters.with({"shared"});
      Counter& own = counters.with({"thread" + std::to_string(t)});
      Gauge& open = gauges.with({"shared"});
      Histogram& latency = histograms.with({"shared"});
      for (int i = 0; i < kIterations; ++i) {
        shared.inc();
        own.inc(2);
        open.inc();
        if (i % 2 == 1) open.dec(2);
        latency.observe(i % 2 == 0 ? 0.25 : 1.5);  // exact in binary: the sum is exact too
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(counters.with({"shared"}).value(), std::uint64_t{kThreads} * kIterations);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counters.with({"thread" + std::to_string(t)}).value(), 2u * kIterations);
  }
  EXPECT_EQ(gauges.with({"shared"}).value(), 0);
  Histogram::Snapshot snap = histograms.with({"shared"}).snapshot();
  const std::uint64_t half = std::uint64_t{kThreads} * kIterations / 2;
  EXPECT_EQ(snap.cumulative, (std::vector<std::uint64_t>{half, half, 2 * half, 2 * half}));
  EXPECT_EQ(snap.count, 2 * half);
  EXPECT_EQ(snap.sum, static_cast<double>(half) * 0.25 + static_cast<double>(half) * 1.5);
}

TEST(Concurrency, ScrapesDuringIncrementsLoseAndDoubleNothing) {
  Registry registry;
  CounterFamily& counters = registry.counter("bytes_total", "B.", {"direction"});
  Counter& bytes = counters.with({"up"});
  constexpr int kThreads = 3;
  constexpr int kIterations = 50000;
  std::atomic<bool> writing{true};
  std::thread scraper([&] {
    double previous = 0;
    while (writing.load()) {
      const std::string text = registry.expose();  // folds while the writers add
      const std::string prefix = "bytes_total{direction=\"up\"} ";
      const std::size_t at = text.find(prefix);
      ASSERT_NE(at, std::string::npos) << text;
      const double value = std::stod(text.substr(at + prefix.size()));
      EXPECT_GE(value, previous) << "a counter went down between scrapes";
      previous = value;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) bytes.inc(3);
    });
  }
  for (std::thread& writer : writers) writer.join();
  writing = false;
  scraper.join();
  EXPECT_EQ(bytes.value(), 3u * kThreads * kIterations);
  EXPECT_NE(registry.expose().find("bytes_total{direction=\"up\"} 450000\n"), std::string::npos);
}

}  // namespace
}  // namespace wsgate::metrics
