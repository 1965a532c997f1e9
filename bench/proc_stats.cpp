#include "proc_stats.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace wsgate::bench {
namespace {

// utime and stime in clock ticks.
CpuTimes ticks_of(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string text;
  CpuTimes ticks;
  if (!std::getline(in, text)) return ticks;
  // The command name (field 2) may hold spaces: fields are counted after its closing paren.
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return ticks;
  std::istringstream rest(text.substr(paren + 2));
  std::string field;
  for (int index = 3; rest >> field; ++index) {
    if (index == 14) ticks.user = std::stod(field);
    if (index == 15) {
      ticks.system = std::stod(field);
      break;
    }
  }
  return ticks;
}

double clock_ticks() {
  static const double kTicks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return kTicks;
}

}  // namespace

CpuTimes cpu_times(const std::vector<int>& pids) {
  CpuTimes total;
  for (int pid : pids) {
    const CpuTimes ticks = ticks_of("/proc/" + std::to_string(pid) + "/stat");
    total.user += ticks.user / clock_ticks();
    total.system += ticks.system / clock_ticks();
  }
  return total;
}

double own_cpu_seconds() {
  return ticks_of("/proc/self/stat").total() / clock_ticks();
}

std::uint64_t rss_bytes(const std::vector<int>& pids) {
  static const auto kPage = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  std::uint64_t total = 0;
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
    std::uint64_t size = 0;
    std::uint64_t resident = 0;
    if (in >> size >> resident) total += resident * kPage;
  }
  return total;
}

double percentile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  const double wanted = std::ceil(q * static_cast<double>(samples.size())) - 1;
  const auto rank =
      static_cast<std::size_t>(std::clamp(wanted, 0.0, static_cast<double>(samples.size() - 1)));
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(rank),
                   samples.end());
  return samples[rank];
}

void JsonLine::key(std::string_view key) {
  if (!body_.empty()) body_ += ',';
  body_ += fmt::format("\"{}\":", key);
}

JsonLine& JsonLine::add(std::string_view k, double value) {
  key(k);
  body_ += std::isfinite(value) ? fmt::format("{:.6g}", value) : std::string("null");
  return *this;
}

JsonLine& JsonLine::add(std::string_view k, std::string_view value) {
  key(k);
  body_ += fmt::format("\"{}\"", value);
  return *this;
}

}  // namespace wsgate::bench
