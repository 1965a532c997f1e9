// process_* metrics read from /proc at scrape time, named and described as the Prometheus
// client libraries do, so stock dashboards and alerts work unchanged.

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
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

void append_metric(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type, const std::string& value) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out.append(name).append(" ").append(value).append("\n");
}

}  // namespace

void register_process_collector(Registry& registry) {
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page_size = static_cast<double>(sysconf(_SC_PAGESIZE));

  // The start time cannot change: compute it once instead of on every scrape.
  std::optional<double> start_time;
  std::optional<SelfStat> initial = read_self_stat();
  std::optional<std::uint64_t> boot_time = read_boot_time();
  if (initial && boot_time && ticks_per_second > 0) {
    start_time = static_cast<double>(*boot_time) +
                 static_cast<double>(initial->start_ticks) / ticks_per_second;
  }

  registry.add_collector([ticks_per_second, page_size, start_time](std::string& out) {
    // A value that cannot be read is left out rather than reported as 0.
    if (std::optional<SelfStat> stat = read_self_stat()) {
      if (ticks_per_second > 0) {
        append_metric(out, "process_cpu_seconds_total",
                      "Total user and system CPU time spent in seconds.", "counter",
                      format_double(static_cast<double>(stat->utime_ticks + stat->stime_ticks) /
                                    ticks_per_second));
      }
      append_metric(out, "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
                    format_double(static_cast<double>(stat->rss_pages) * page_size));
      append_metric(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
                    format_double(static_cast<double>(stat->vsize_bytes)));
    }
    if (std::optional<std::uint64_t> fds = count_open_fds()) {
      append_metric(out, "process_open_fds", "Number of open file descriptors.", "gauge",
                    std::to_string(*fds));
    }
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      // RLIM_INFINITY prints as 1.8446744073709552e+19, as the Go client does.
      append_metric(out, "process_max_fds", "Maximum number of open file descriptors.", "gauge",
                    format_double(static_cast<double>(limit.rlim_cur)));
    }
    if (start_time) {
      append_metric(out, "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.", "gauge",
                    format_double(*start_time));
    }
  });
}

}  // namespace wsgate::metrics
