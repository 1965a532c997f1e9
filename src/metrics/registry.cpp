#include "metrics/registry.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace wsgate::metrics {

// ---- series --------------------------------------------------------------------------------

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds->size() + 1)) {
  assert(std::is_sorted(bounds->begin(), bounds->end()));
}

void Histogram::observe(double value) {
  // A bucket counts values <= its bound, so the first bound not below the value is the one.
  // NaN compares false with everything; it belongs in +Inf, as in the Go client.
  std::size_t index = bounds_->size();
  if (!std::isnan(value)) {
    index = static_cast<std::size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), value) -
                                     bounds_->begin());
  }
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  // std::atomic<double> has no lock-free add on every target; a CAS loop is the portable form.
  double current = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(current, current + value, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.cumulative.reserve(bounds_->size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_->size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snap.cumulative.push_back(running);
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

// ---- families ------------------------------------------------------------------------------

template <typename Series>
Series& Family<Series>::with(const LabelValues& values) {
  assert(values.size() == label_names_.size() && "label value count != label name count");
  std::lock_guard lock(mutex_);
  auto found = series_.find(values);
  if (found != series_.end()) return *found->second;
  LabelValues key = values;
  key.resize(label_names_.size());  // release builds: keep the exposition well-formed
  auto [pos, inserted] = series_.try_emplace(std::move(key));
  if (inserted) pos->second = make_();
  return *pos->second;
}

template <typename Series>
void Family<Series>::remove(const LabelValues& values) {
  std::lock_guard lock(mutex_);
  series_.erase(values);
}

template <typename Series>
void Family<Series>::for_each(
    const std::function<void(const LabelValues&, const Series&)>& visit) const {
  std::lock_guard lock(mutex_);
  for (const auto& [values, series] : series_) visit(values, *series);
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

// ---- text format helpers -------------------------------------------------------------------

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

std::string format_double(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Integral values below 2^53 are exact as integers; print them the way a reader expects
  // ("86400", not "86400.0" or "8.64e+04").
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (std::trunc(value) == value && std::fabs(value) < kExactIntegers) {
    return std::to_string(static_cast<std::int64_t>(value));
  }
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);  // shortest round-trip
  return std::string(buffer, result.ptr);
}

namespace {

// HELP text escapes backslash and newline only (quotes are fine there).
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

void append_header(std::string& out, const std::string& name, const std::string& help,
                   std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += escape_help(help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// `name{a="x",b="y",le="0.1"} value\n`, braces omitted when there is no label at all.
void append_sample(std::string& out, const std::string& name, std::string_view suffix,
                   const std::vector<std::string>& label_names, const LabelValues& values,
                   const std::string* le, const std::string& value) {
  out += name;
  out += suffix;
  if (!label_names.empty() || le != nullptr) {
    out += '{';
    bool first = true;
    for (std::size_t i = 0; i < label_names.size(); ++i) {
      if (!first) out += ',';
      first = false;
      out += label_names[i];
      out += "=\"";
      out += escape_label_value(i < values.size() ? values[i] : std::string());
      out += '"';
    }
    if (le != nullptr) {
      if (!first) out += ',';
      out += "le=\"";
      out += *le;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

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

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
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
  std::vector<double> bounds;         // histograms: every series points at this vector
  std::vector<std::string> le_texts;  // bounds, pre-formatted for the `le` label
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;

  void expose(std::string& out) const {
    append_header(out, name, help, type_name(type));
    switch (type) {
      case MetricType::kCounter:
        counters->for_each([&](const LabelValues& values, const Counter& counter) {
          append_sample(out, name, "", labels, values, nullptr, std::to_string(counter.value()));
        });
        break;
      case MetricType::kGauge:
        gauges->for_each([&](const LabelValues& values, const Gauge& gauge) {
          append_sample(out, name, "", labels, values, nullptr, std::to_string(gauge.value()));
        });
        break;
      case MetricType::kHistogram:
        histograms->for_each([&](const LabelValues& values, const Histogram& histogram) {
          static const std::string kInf = "+Inf";
          Histogram::Snapshot snap = histogram.snapshot();
          for (std::size_t i = 0; i < le_texts.size(); ++i) {
            append_sample(out, name, "_bucket", labels, values, &le_texts[i],
                          std::to_string(snap.cumulative[i]));
          }
          append_sample(out, name, "_bucket", labels, values, &kInf,
                        std::to_string(snap.cumulative.back()));
          append_sample(out, name, "_sum", labels, values, nullptr, format_double(snap.sum));
          append_sample(out, name, "_count", labels, values, nullptr, std::to_string(snap.count));
        });
        break;
    }
  }
};

Registry::Registry() = default;
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
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->labels = std::move(labels);
  entry->bounds = std::move(bounds);
  const Entry& e = *entry;
  switch (type) {
    case MetricType::kCounter:
      entry->counters = std::make_unique<CounterFamily>(e.name, e.help, e.labels,
                                                        [] { return std::make_unique<Counter>(); });
      break;
    case MetricType::kGauge:
      entry->gauges = std::make_unique<GaugeFamily>(e.name, e.help, e.labels,
                                                    [] { return std::make_unique<Gauge>(); });
      break;
    case MetricType::kHistogram: {
      for (double bound : e.bounds) entry->le_texts.push_back(format_double(bound));
      // The entry is heap-allocated and never freed before the registry: a stable address.
      const std::vector<double>* stable_bounds = &e.bounds;
      entry->histograms = std::make_unique<HistogramFamily>(
          e.name, e.help, e.labels,
          [stable_bounds] { return std::make_unique<Histogram>(stable_bounds); });
      break;
    }
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

void Registry::add_collector(std::function<void(std::string& out)> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::expose() const {
  // Copy what to visit, then render without the registry lock: a slow collector (reading
  // /proc) must not block registration, and entries are never freed before the registry.
  std::vector<const Entry*> entries;
  std::vector<std::function<void(std::string&)>> collectors;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (const auto& entry : entries_) entries.push_back(entry.get());
    collectors = collectors_;
  }
  std::string out;
  out.reserve(4096);
  for (const Entry* entry : entries) entry->expose(out);
  for (const auto& collector : collectors) collector(out);
  return out;
}

}  // namespace wsgate::metrics
