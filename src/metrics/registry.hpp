#pragma once
// Metric registry: wsgate's handles over prometheus-cpp's core library (Debian 12's
// prometheus-cpp-dev 1.0.1). prometheus::Registry owns the families and series,
// prometheus::TextSerializer writes the exposition, and our admin server serves it (no civetweb
// Exposer). This facade adds what callers rely on: label values by position in declared order,
// registration checks (counter names end in _total, ascending bounds), the same family back for
// the same definition, and HELP/TYPE for a family that has no series yet.
//
// Hot path contract: look a series up once (with()), keep the reference, then inc()/observe()
// take no lock and do no label lookup. Every update is one relaxed atomic operation on the
// handle, folded into the prometheus-cpp series before each collect: prometheus-cpp 1.0's
// Counter::Increment and Gauge::Increment are out-of-line calls around a CAS loop on
// std::atomic<double>, and Histogram::Observe takes a mutex, which would cost the byte
// counters (every tunnel write) and a handshake's observations and gauge moves several times
// what our own atomics do. Series references stay valid for the registry's lifetime unless
// remove() is called for exactly that series.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
class Collectable;
class Counter;
class Gauge;
class Histogram;
class Registry;
struct MetricFamily;
template <typename T>
class Family;
}  // namespace prometheus

namespace wsgate::metrics {

using LabelValues = std::vector<std::string>;

template <typename Series>
class Family;

class Counter {
 public:
  using Native = prometheus::Counter;
  explicit Counter(Native& series) : series_(&series) {}

  void inc(std::uint64_t n = 1) { pending_.fetch_add(n, std::memory_order_relaxed); }
  // Folds first, so it includes every inc() that happened before the call.
  std::uint64_t value() const;

 private:
  template <typename>
  friend class Family;
  void fold() const;  // moves the pending adds into the prometheus-cpp series

  mutable std::atomic<std::uint64_t> pending_{0};
  Native* series_;
};

class Gauge {
 public:
  using Native = prometheus::Gauge;
  explicit Gauge(Native& series) : series_(&series) {}

  void inc(std::int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(std::int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  template <typename>
  friend class Family;
  void fold() const;  // sets the prometheus-cpp series to value()

  std::atomic<std::int64_t> value_{0};
  Native* series_;
};

class Histogram {
 public:
  using Native = prometheus::Histogram;
  // `bounds` (ascending, +Inf implied) is the family's, which outlives the series.
  Histogram(Native& series, const std::vector<double>& bounds);

  // le semantics, as Prometheus: a value equal to a bound counts in that bound's bucket. NaN
  // counts in +Inf only (prometheus-cpp alone would put it in the first bucket).
  void observe(double value);

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    std::uint64_t count = 0;
  };
  // Folds first, so it includes every observe() that happened before the call.
  Snapshot snapshot() const;

 private:
  template <typename>
  friend class Family;
  void fold() const;  // moves the pending observations into the prometheus-cpp series

  Native* series_;
  const std::vector<double>* bounds_;
  // Observations since the last fold, non-cumulative: one per bound, then +Inf. A fold racing
  // observe() may take a bucket now and its sum at the next fold; counts stay exact.
  std::unique_ptr<std::atomic<std::uint64_t>[]> pending_buckets_;
  mutable std::atomic<double> pending_sum_{0};
  mutable std::mutex fold_mutex_;  // one fold at a time (a scrape and a snapshot may overlap)
};

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name with its label names, and every label combination seen so far. Made by
// Registry only.
template <typename Series>
class Family {
 public:
  using Native = prometheus::Family<typename Series::Native>;

  // Returns the series for these label values (created on first use). values.size() must
  // equal the number of label names (asserted; release builds pad or cut so the
  // exposition stays well-formed).
  Series& with(const LabelValues& values);
  // Drops the series; references to it obtained from with() dangle afterwards.
  void remove(const LabelValues& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Visits every series in label order, under the family lock.
  void for_each(const std::function<void(const LabelValues&, const Series&)>& visit) const;

  Family(std::string name, std::string help, std::vector<std::string> label_names, Native& native,
         std::vector<double> bounds);

 private:
  friend class Registry;
  // The prometheus-cpp family's samples (every handle folded first); HELP/TYPE only when empty.
  void collect(std::vector<prometheus::MetricFamily>& out) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  Native& native_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mutex_;
  std::map<LabelValues, std::unique_ptr<Series>> series_;
};

// Defined once in registry.cpp for the three series types.
extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Default histogram bounds in seconds: latency 1 ms .. 10 s (handshakes, requests);
// duration 100 ms .. 1 day (tunnel lifetimes).
const std::vector<double>& default_latency_buckets();
const std::vector<double>& default_duration_buckets();

// Registration is startup code: it throws std::invalid_argument for an invalid metric or
// label name, a counter whose name does not end in _total, histogram bounds that are not
// strictly ascending, or a name already registered with another type, help, labels or
// bounds. Registering the same metric again returns the existing family.
class Registry {
 public:
  Registry();
  ~Registry();  // out of line: Entry and prometheus::Registry are complete in registry.cpp
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& counter(std::string name, std::string help, std::vector<std::string> labels);
  GaugeFamily& gauge(std::string name, std::string help, std::vector<std::string> labels);
  HistogramFamily& histogram(std::string name, std::string help, std::vector<std::string> labels,
                             std::vector<double> bounds);

  // Metrics read at scrape time (process_*), collected and serialized with the families.
  void add_collectable(std::shared_ptr<const prometheus::Collectable> collectable);
  // Appends finished exposition text (HELP/TYPE lines included) after everything else, for
  // code that writes its own scrape-time samples.
  void add_collector(std::function<void(std::string& out)> collector);

  // The whole registry in Prometheus text format 0.0.4: families in registration order (each
  // family's series sorted by their labels), then collectables, then collector text.
  std::string expose() const;

 private:
  struct Entry;
  // Validates, then returns the existing entry for an identical definition or a new one.
  Entry& add(MetricType type, std::string name, std::string help, std::vector<std::string> labels,
             std::vector<double> bounds);

  mutable std::mutex mutex_;
  std::unique_ptr<prometheus::Registry> native_;  // destroyed after the entries that use it
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<std::shared_ptr<const prometheus::Collectable>> collectables_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// Registers process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds, process_cpu_seconds_total and process_start_time_seconds, read from /proc
// at each scrape by a prometheus::Collectable.
void register_process_collector(Registry& registry);

// Escapes a label value per the text format (backslash, double quote, newline), for collector
// text written by hand.
std::string escape_label_value(const std::string& value);

}  // namespace wsgate::metrics
