#include "metrics/registry.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

namespace wsgate::metrics {

// ---- series --------------------------------------------------------------------------------

void Counter::fold() const {
  const std::uint64_t delta = pending_.exchange(0, std::memory_order_relaxed);
  if (delta != 0) series_->Increment(static_cast<double>(delta));
}

std::uint64_t Counter::value() const {
  fold();
  return static_cast<std::uint64_t>(series_->Value());
}

void Gauge::fold() const {
  series_->Set(static_cast<double>(value()));
}

Histogram::Histogram(Native& series, const std::vector<double>& bounds)
    : series_(&series),
      bounds_(&bounds),
      pending_buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void Histogram::observe(double value) {
  // lower_bound: the first bound >= value (le). A NaN is below no bound: it lands in +Inf.
  const std::size_t bucket =
      std::isnan(value)
          ? bounds_->size()
          : static_cast<std::size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), value) -
                                     bounds_->begin());
  pending_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  pending_sum_.fetch_add(value, std::memory_order_relaxed);
}

void Histogram::fold() const {
  std::lock_guard lock(fold_mutex_);
  std::vector<double> increments(bounds_->size() + 1, 0.0);
  bool any = false;
  for (std::size_t i = 0; i < increments.size(); ++i) {
    const std::uint64_t n = pending_buckets_[i].exchange(0, std::memory_order_relaxed);
    increments[i] = static_cast<double>(n);
    any = any || n != 0;
  }
  const double sum = pending_sum_.exchange(0, std::memory_order_relaxed);
  if (any || sum != 0) series_->ObserveMultiple(increments, sum);
}

Histogram::Snapshot Histogram::snapshot() const {
  fold();
  const prometheus::ClientMetric::Histogram collected = series_->Collect().histogram;
  Snapshot snap;
  snap.cumulative.reserve(collected.bucket.size());
  for (const auto& bucket : collected.bucket) snap.cumulative.push_back(bucket.cumulative_count);
  snap.count = collected.sample_count;
  snap.sum = collected.sample_sum;
  return snap;
}

// ---- families ------------------------------------------------------------------------------

namespace {

// prometheus-cpp 1.0.1's TextSerializer writes HELP text as given: escape backslash and
// newline here (the exposition test holds the serializer to that).
std::string escape_help(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

template <typename Series>
Family<Series>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                       Native& native, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      native_(native),
      bounds_(std::move(bounds)) {}

template <typename Series>
Series& Family<Series>::with(const LabelValues& values) {
  assert(values.size() == label_names_.size() && "label value count != label name count");
  std::lock_guard lock(mutex_);
  auto found = series_.find(values);
  if (found != series_.end()) return *found->second;
  LabelValues key = values;
  key.resize(label_names_.size());  // release builds: keep the exposition well-formed
  prometheus::Labels labels;
  for (std::size_t i = 0; i < label_names_.size(); ++i) labels[label_names_[i]] = key[i];
  // prometheus-cpp hands back the series it has for these labels, or makes one.
  std::unique_ptr<Series> series;
  if constexpr (std::is_same_v<Series, Histogram>) {
    series = std::make_unique<Histogram>(native_.Add(labels, bounds_), bounds_);
  } else {
    series = std::make_unique<Series>(native_.Add(labels));
  }
  // Not inserted only when padding made the key of an existing series: that one is the same.
  return *series_.try_emplace(std::move(key), std::move(series)).first->second;
}

template <typename Series>
void Family<Series>::remove(const LabelValues& values) {
  std::lock_guard lock(mutex_);
  auto found = series_.find(values);
  if (found == series_.end()) return;
  native_.Remove(found->second->series_);
  series_.erase(found);
}

template <typename Series>
void Family<Series>::for_each(
    const std::function<void(const LabelValues&, const Series&)>& visit) const {
  std::lock_guard lock(mutex_);
  for (const auto& [values, series] : series_) visit(values, *series);
}

template <typename Series>
void Family<Series>::collect(std::vector<prometheus::MetricFamily>& out) const {
  {
    std::lock_guard lock(mutex_);
    for (const auto& entry : series_) entry.second->fold();
  }
  std::vector<prometheus::MetricFamily> collected = native_.Collect();
  if (collected.empty()) {
    // prometheus-cpp leaves out a family without series; we keep its HELP and TYPE, as before.
    collected.push_back({name_, escape_help(help_), Series::Native::metric_type, {}});
  }
  for (prometheus::MetricFamily& family : collected) {
    // Collect() walks an unordered_map: sort so that scrapes are stable and diffable.
    std::sort(family.metric.begin(), family.metric.end(),
              [](const prometheus::ClientMetric& a, const prometheus::ClientMetric& b) {
                return a.label < b.label;
              });
    out.push_back(std::move(family));
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

const std::vector<double>& default_latency_buckets() {
  static const std::vector<double> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1,     2.5,  5,     10};
  return kBounds;
}

const std::vector<double>& default_duration_buckets() {
  static const std::vector<double> kBounds{0.1, 0.5, 1,    5,    10,   30,    60,
                                           300, 600, 1800, 3600, 7200, 21600, 86400};
  return kBounds;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// ---- registration checks -------------------------------------------------------------------

namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

[[noreturn]] void reject(const std::string& name, const std::string& why) {
  throw std::invalid_argument("metric '" + name + "': " + why);
}

void validate(const std::string& name, MetricType type, const std::vector<std::string>& labels) {
  if (!valid_name(name, true)) reject(name, "invalid metric name");
  if (type == MetricType::kCounter && !name.ends_with("_total")) {
    reject(name, "counter names must end in _total");
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i];
    if (!valid_name(label, false) || label.starts_with("__")) {
      reject(name, "invalid label name '" + label + "'");
    }
    if (type == MetricType::kHistogram && label == "le") {
      reject(name, "label 'le' is reserved for histogram buckets");
    }
    if (std::find(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(i), label) !=
        labels.begin() + static_cast<std::ptrdiff_t>(i)) {
      reject(name, "duplicate label name '" + label + "'");
    }
  }
}

std::vector<double> validate_bounds(const std::string& name, std::vector<double> bounds) {
  // +Inf is implied; accept it written out as the last bound, as other clients do.
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) reject(name, "histogram bounds must be finite");
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      reject(name, "histogram bounds must be strictly ascending");
    }
  }
  return bounds;
}

}  // namespace

// ---- registry ------------------------------------------------------------------------------

struct Registry::Entry {
  MetricType type;
  std::string name;
  std::string help;
  std::vector<std::string> labels;
  std::vector<double> bounds;
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;

  void collect(std::vector<prometheus::MetricFamily>& out) const {
    if (counters) counters->collect(out);
    if (gauges) gauges->collect(out);
    if (histograms) histograms->collect(out);
  }
};

Registry::Registry() : native_(std::make_unique<prometheus::Registry>()) {}
Registry::~Registry() = default;

Registry::Entry& Registry::add(MetricType type, std::string name, std::string help,
                               std::vector<std::string> labels, std::vector<double> bounds) {
  validate(name, type, labels);
  if (type == MetricType::kHistogram) bounds = validate_bounds(name, std::move(bounds));
  std::lock_guard lock(mutex_);
  for (const auto& entry : entries_) {
    if (entry->name != name) continue;
    if (entry->type != type || entry->help != help || entry->labels != labels ||
        entry->bounds != bounds) {
      reject(name, "already registered with a different type, help, labels or bounds");
    }
    return *entry;  // the same metric registered again (by another component)
  }
  auto entry = std::make_unique<Entry>();
  entry->type = type;
  entry->name = name;
  entry->help = help;
  entry->labels = labels;
  entry->bounds = bounds;
  const std::string native_help = escape_help(help);
  switch (type) {
    case MetricType::kCounter:
      entry->counters = std::make_unique<CounterFamily>(
          std::move(name), std::move(help), std::move(labels),
          prometheus::BuildCounter().Name(entry->name).Help(native_help).Register(*native_),
          std::vector<double>{});
      break;
    case MetricType::kGauge:
      entry->gauges = std::make_unique<GaugeFamily>(
          std::move(name), std::move(help), std::move(labels),
          prometheus::BuildGauge().Name(entry->name).Help(native_help).Register(*native_),
          std::vector<double>{});
      break;
    case MetricType::kHistogram:
      entry->histograms = std::make_unique<HistogramFamily>(
          std::move(name), std::move(help), std::move(labels),
          prometheus::BuildHistogram().Name(entry->name).Help(native_help).Register(*native_),
          std::move(bounds));
      break;
  }
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

CounterFamily& Registry::counter(std::string name, std::string help,
                                 std::vector<std::string> labels) {
  return *add(MetricType::kCounter, std::move(name), std::move(help), std::move(labels), {})
              .counters;
}

GaugeFamily& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  return *add(MetricType::kGauge, std::move(name), std::move(help), std::move(labels), {}).gauges;
}

HistogramFamily& Registry::histogram(std::string name, std::string help,
                                     std::vector<std::string> labels, std::vector<double> bounds) {
  return *add(MetricType::kHistogram, std::move(name), std::move(help), std::move(labels),
              std::move(bounds))
              .histograms;
}

void Registry::add_collectable(std::shared_ptr<const prometheus::Collectable> collectable) {
  std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

void Registry::add_collector(std::function<void(std::string& out)> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::expose() const {
  // Copy what to visit, then collect without the registry lock: a slow collectable (reading
  // /proc) must not block registration, and entries are never freed before the registry.
  std::vector<const Entry*> entries;
  std::vector<std::shared_ptr<const prometheus::Collectable>> collectables;
  std::vector<std::function<void(std::string&)>> collectors;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (const auto& entry : entries_) entries.push_back(entry.get());
    collectables = collectables_;
    collectors = collectors_;
  }
  std::vector<prometheus::MetricFamily> families;
  families.reserve(entries.size() + 8);
  for (const Entry* entry : entries) entry->collect(families);
  for (const auto& collectable : collectables) {
    for (prometheus::MetricFamily& family : collectable->Collect()) {
      families.push_back(std::move(family));
    }
  }
  std::string out = prometheus::TextSerializer().Serialize(families);
  for (const auto& collector : collectors) collector(out);
  return out;
}

}  // namespace wsgate::metrics
