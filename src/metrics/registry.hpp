#pragma once
// Metric registry: counters, gauges and histograms with labels, and the Prometheus text
// exposition of them. prometheus-cpp is not packaged on Debian 12; this module is ours.
//
// Hot path contract: look a series up once (with()), keep the reference, then inc()/observe()
// are lock-free atomics. Series references stay valid for the registry's lifetime unless
// remove() is called for exactly that series.

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace wsgate::metrics {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void inc(std::int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(std::int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);  // bounds ascending, +Inf implied
  void observe(double value);

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double>* bounds_;
  // Non-cumulative, size bounds+1. The count is their sum, so a scrape racing observe() can
  // never show a +Inf bucket that differs from _count.
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name with its label names, and every label combination seen so far.
template <typename Series>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Series>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}

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

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Series>()> make_;
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
  ~Registry();  // out of line: Entry is complete only in registry.cpp
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& counter(std::string name, std::string help, std::vector<std::string> labels);
  GaugeFamily& gauge(std::string name, std::string help, std::vector<std::string> labels);
  HistogramFamily& histogram(std::string name, std::string help, std::vector<std::string> labels,
                             std::vector<double> bounds);

  // A collector appends complete exposition text (HELP/TYPE lines included) at scrape time:
  // process_* metrics and other values read on demand.
  void add_collector(std::function<void(std::string& out)> collector);

  // The whole registry in Prometheus text format 0.0.4, families in registration order.
  std::string expose() const;

 private:
  struct Entry;
  // Validates, then returns the existing entry for an identical definition or a new one.
  Entry& add(MetricType type, std::string name, std::string help, std::vector<std::string> labels,
             std::vector<double> bounds);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// Registers process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds, process_cpu_seconds_total and process_start_time_seconds, read from /proc.
void register_process_collector(Registry& registry);

// Escapes a label value per the text format (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);

// A sample value as the text format wants it: integral values without exponent or
// fraction ("3", "86400"), others in the shortest form that reads back exactly ("0.0025"),
// and "NaN", "+Inf", "-Inf". Also used for `le` labels.
std::string format_double(double value);

}  // namespace wsgate::metrics
