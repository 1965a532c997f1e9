// process_* metrics read from /proc at scrape time by a prometheus::Collectable, named and
// described as the Prometheus client libraries do, so stock dashboards and alerts work unchanged.

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/registry.hpp"

namespace wsgate::metrics {
namespace {

struct SelfStat {
  std::uint64_t utime_ticks = 0;
  std::uint64_t stime_ticks = 0;
  std::uint64_t start_ticks = 0;  // since boot
  std::uint64_t vsize_bytes = 0;
  std::uint64_t rss_pages = 0;
};

std::optional<SelfStat> read_self_stat() {
  std::ifstream file("/proc/self/stat");
  std::string line;
  if (!std::getline(file, line)) return std::nullopt;
  // The command name (field 2) is in parentheses and may itself hold spaces or ')': the
  // fields we want are counted from the last ')'.
  std::size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields{std::istream_iterator<std::string>(rest),
                                  std::istream_iterator<std::string>()};
  // fields[0] is field 3 (state) of proc(5); so field N is fields[N - 3].
  constexpr std::size_t kUtime = 14 - 3, kStime = 15 - 3, kStart = 22 - 3, kVsize = 23 - 3,
                        kRss = 24 - 3;
  if (fields.size() <= kRss) return std::nullopt;
  SelfStat stat;
  try {
    stat.utime_ticks = std::stoull(fields[kUtime]);
    stat.stime_ticks = std::stoull(fields[kStime]);
    stat.start_ticks = std::stoull(fields[kStart]);
    stat.vsize_bytes = std::stoull(fields[kVsize]);
    stat.rss_pages = std::stoull(fields[kRss]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return stat;
}

std::optional<std::uint64_t> read_boot_time() {
  std::ifstream file("/proc/stat");
  std::string key;
  std::uint64_t value = 0;
  while (file >> key) {
    if (key == "btime") {
      if (file >> value) return value;
      return std::nullopt;
    }
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::optional<std::uint64_t> count_open_fds() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  if (ec) return std::nullopt;
  std::uint64_t count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    ++count;
  }
  // The iterator's own descriptor is listed too; the Go client counts it the same way.
  return count;
}

prometheus::MetricFamily sample(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return {std::move(name), std::move(help), type, {std::move(metric)}};
}

// Reads /proc at each collect. The start time cannot change: it is computed once.
class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector()
      : ticks_per_second_(static_cast<double>(sysconf(_SC_CLK_TCK))),
        page_size_(static_cast<double>(sysconf(_SC_PAGESIZE))) {
    std::optional<SelfStat> initial = read_self_stat();
    std::optional<std::uint64_t> boot_time = read_boot_time();
    if (initial && boot_time && ticks_per_second_ > 0) {
      start_time_ = static_cast<double>(*boot_time) +
                    static_cast<double>(initial->start_ticks) / ticks_per_second_;
    }
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    // A value that cannot be read is left out rather than reported as 0.
    if (std::optional<SelfStat> stat = read_self_stat()) {
      if (ticks_per_second_ > 0) {
        out.push_back(
            sample("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                   MetricType::Counter,
                   static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second_));
      }
      out.push_back(sample("process_resident_memory_bytes", "Resident memory size in bytes.",
                           MetricType::Gauge, static_cast<double>(stat->rss_pages) * page_size_));
      out.push_back(sample("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                           MetricType::Gauge, static_cast<double>(stat->vsize_bytes)));
    }
    if (std::optional<std::uint64_t> fds = count_open_fds()) {
      out.push_back(sample("process_open_fds", "Number of open file descriptors.",
                           MetricType::Gauge, static_cast<double>(*fds)));
    }
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      // RLIM_INFINITY prints as 1.844674407370955e+19.
      out.push_back(sample("process_max_fds", "Maximum number of open file descriptors.",
                           MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
    }
    if (start_time_) {
      out.push_back(sample("process_start_time_seconds",
                           "Start time of the process since unix epoch in seconds.",
                           MetricType::Gauge, *start_time_));
    }
    return out;
  }

 private:
  double ticks_per_second_;
  double page_size_;
  std::optional<double> start_time_;
};

}  // namespace

void register_process_collector(Registry& registry) {
  registry.add_collectable(std::make_shared<ProcessCollector>());
}

}  // namespace wsgate::metrics
