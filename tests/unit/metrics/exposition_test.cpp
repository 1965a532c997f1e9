// Exact Prometheus text for each metric type, label order and escaping, and number formatting,
// as prometheus-cpp 1.0.1's TextSerializer writes it behind our Registry (label names sorted,
// a histogram's _count and _sum before its buckets, values with up to 16 significant digits).

#include <gtest/gtest.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <vector>

#include "metrics/registry.hpp"

namespace wsgate::metrics {
namespace {

TEST(Exposition, CounterWithLabelsSortedByNameSeriesSortedAndEscaped) {
  Registry registry;
  // Declared route-then-code; prometheus-cpp keeps labels in a std::map, so code comes first.
  CounterFamily& family = registry.counter("wsgate_handshakes_total",
                                           "Handshakes by route and status.", {"route", "code"});
  family.with({"default/chat", "400"});  // created, never incremented: still exposed as 0
  family.with({"default/chat", "101"}).inc(3);
  family.with({"a\"b\\c\nd", "404"}).inc();

  EXPECT_EQ(registry.expose(),
            "# HELP wsgate_handshakes_total Handshakes by route and status.\n"
            "# TYPE wsgate_handshakes_total counter\n"
            "wsgate_handshakes_total{code=\"101\",route=\"default/chat\"} 3\n"
            "wsgate_handshakes_total{code=\"400\",route=\"default/chat\"} 0\n"
            "wsgate_handshakes_total{code=\"404\",route=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Exposition, GaugeWithoutLabelsAndNegativeValues) {
  Registry registry;
  GaugeFamily& plain = registry.gauge("wsgate_up", "Whether it runs.", {});
  plain.with({}).set(1);
  GaugeFamily& tunnels = registry.gauge("wsgate_active_tunnels", "Open tunnels.", {"route"});
  Gauge& chat = tunnels.with({"default/chat"});
  chat.inc(5);
  chat.dec(2);
  tunnels.with({"default/b"}).dec(7);

  EXPECT_EQ(registry.expose(),
            "# HELP wsgate_up Whether it runs.\n"
            "# TYPE wsgate_up gauge\n"
            "wsgate_up 1\n"
            "# HELP wsgate_active_tunnels Open tunnels.\n"
            "# TYPE wsgate_active_tunnels gauge\n"
            "wsgate_active_tunnels{route=\"default/b\"} -7\n"
            "wsgate_active_tunnels{route=\"default/chat\"} 3\n");
}

TEST(Exposition, HistogramBucketsSumAndCount) {
  Registry registry;
  HistogramFamily& family = registry.histogram("wsgate_handshake_duration_seconds",
                                               "Handshake latency.", {"route"}, {0.25, 1, 2.5});
  Histogram& chat = family.with({"x\"y"});
  chat.observe(0.25);  // on a bound: counts in that bucket (le = less or equal)
  chat.observe(0.5);
  chat.observe(2);
  chat.observe(4);  // above every bound: +Inf only

  EXPECT_EQ(registry.expose(),
            "# HELP wsgate_handshake_duration_seconds Handshake latency.\n"
            "# TYPE wsgate_handshake_duration_seconds histogram\n"
            "wsgate_handshake_duration_seconds_count{route=\"x\\\"y\"} 4\n"
            "wsgate_handshake_duration_seconds_sum{route=\"x\\\"y\"} 6.75\n"
            "wsgate_handshake_duration_seconds_bucket{route=\"x\\\"y\",le=\"0.25\"} 1\n"
            "wsgate_handshake_duration_seconds_bucket{route=\"x\\\"y\",le=\"1\"} 2\n"
            "wsgate_handshake_duration_seconds_bucket{route=\"x\\\"y\",le=\"2.5\"} 3\n"
            "wsgate_handshake_duration_seconds_bucket{route=\"x\\\"y\",le=\"+Inf\"} 4\n");
}

TEST(Exposition, HistogramWithoutLabelsAndDefaultBoundsTexts) {
  Registry registry;
  HistogramFamily& family = registry.histogram("lat_seconds", "L.", {}, default_latency_buckets());
  family.with({}).observe(0.003);
  std::string text = registry.expose();
  const char* expected_les[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                "0.25",  "0.5",    "1",     "2.5",  "5",     "10",   "+Inf"};
  std::size_t from = 0;
  for (const char* le : expected_les) {
    std::string line = std::string("lat_seconds_bucket{le=\"") + le + "\"}";
    std::size_t at = text.find(line, from);
    ASSERT_NE(at, std::string::npos) << line << " missing or out of order in\n" << text;
    from = at;
  }
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.0025\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_sum 0.003\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count 1\n"), std::string::npos);
}

TEST(Exposition, EmptyFamilyStillHasHelpAndTypeAndFamiliesKeepRegistrationOrder) {
  Registry registry;
  registry.gauge("zzz_first", "Registered first.", {"a"});
  registry.counter("aaa_second_total", "Help with \\ and\nnewline.", {});
  EXPECT_EQ(registry.expose(),
            "# HELP zzz_first Registered first.\n"
            "# TYPE zzz_first gauge\n"
            "# HELP aaa_second_total Help with \\\\ and\\nnewline.\n"
            "# TYPE aaa_second_total counter\n");
}

TEST(Exposition, RemoveDropsOnlyThatSeries) {
  Registry registry;
  CounterFamily& family = registry.counter("x_total", "X.", {"k"});
  family.with({"a"}).inc(2);
  family.with({"b"}).inc(5);
  family.remove({"a"});
  family.remove({"never-created"});  // no effect
  EXPECT_EQ(registry.expose(), "# HELP x_total X.\n# TYPE x_total counter\nx_total{k=\"b\"} 5\n");
  // Re-created after removal: a fresh series starting at zero.
  EXPECT_EQ(family.with({"a"}).value(), 0u);
}

TEST(Exposition, CollectorTextIsAppendedAfterFamilies) {
  Registry registry;
  registry.gauge("g", "G.", {}).with({}).set(2);
  registry.add_collector([](std::string& out) { out += "# HELP c C.\n# TYPE c gauge\nc 9\n"; });
  EXPECT_EQ(registry.expose(),
            "# HELP g G.\n# TYPE g gauge\ng 2\n# HELP c C.\n# TYPE c gauge\nc 9\n");
}

TEST(Exposition, IntegralValuesPrintAsIntegersOthersInShortForm) {
  // Tests and dashboards read byte and event counts: they stay integers ("86400", not
  // "8.64e+04") up to 16 digits, as the serializer prints with 16 significant digits.
  Registry registry;
  CounterFamily& bytes = registry.counter("b_total", "B.", {"k"});
  bytes.with({"a"}).inc(86400);
  bytes.with({"b"}).inc(1'000'000'000'000'000);
  bytes.with({"c"}).inc(9'007'199'254'740'992);   // 2^53: still every digit
  bytes.with({"d"}).inc(10'000'000'000'000'000);  // 17 digits: exponent form
  HistogramFamily& latency = registry.histogram("l_seconds", "L.", {}, {0.0025, 0.1, 86400});
  latency.with({}).observe(0.001);
  latency.with({}).observe(0.0015);
  EXPECT_EQ(registry.expose(),
            "# HELP b_total B.\n# TYPE b_total counter\n"
            "b_total{k=\"a\"} 86400\n"
            "b_total{k=\"b\"} 1000000000000000\n"
            "b_total{k=\"c\"} 9007199254740992\n"
            "b_total{k=\"d\"} 1e+16\n"
            "# HELP l_seconds L.\n# TYPE l_seconds histogram\n"
            "l_seconds_count 2\n"
            "l_seconds_sum 0.0025\n"
            "l_seconds_bucket{le=\"0.0025\"} 2\n"
            "l_seconds_bucket{le=\"0.1\"} 2\n"
            "l_seconds_bucket{le=\"86400\"} 2\n"
            "l_seconds_bucket{le=\"+Inf\"} 2\n");
}

TEST(Exposition, CollectablesFollowFamiliesAndCollectorTextComesLast) {
  class Fixed : public prometheus::Collectable {
   public:
    std::vector<prometheus::MetricFamily> Collect() const override {
      prometheus::ClientMetric metric;
      metric.gauge.value = 7;
      return {{"k", "K.", prometheus::MetricType::Gauge, {metric}}};
    }
  };
  Registry registry;
  registry.add_collector([](std::string& out) { out += "# HELP c C.\n# TYPE c gauge\nc 9\n"; });
  registry.add_collectable(std::make_shared<Fixed>());
  registry.gauge("g", "G.", {}).with({}).set(2);
  EXPECT_EQ(registry.expose(),
            "# HELP g G.\n# TYPE g gauge\ng 2\n# HELP k K.\n# TYPE k gauge\nk 7\n"
            "# HELP c C.\n# TYPE c gauge\nc 9\n");
}

TEST(EscapeLabelValue, BackslashQuoteNewlineOnly) {
  EXPECT_EQ(escape_label_value("plain/route-1"), "plain/route-1");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\te");
}

}  // namespace
}  // namespace wsgate::metrics
