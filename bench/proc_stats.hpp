#pragma once
// What the bench reads about other processes (CPU time and resident memory from /proc), the
// percentile helper, and the one-line JSON result every mode prints.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsgate::bench {

struct CpuTimes {
  double user = 0;    // utime
  double system = 0;  // stime
  double total() const { return user + system; }
};

// utime and stime of every thread of the given processes, in seconds (0 for pids that are gone).
CpuTimes cpu_times(const std::vector<int>& pids);
inline double cpu_seconds(const std::vector<int>& pids) {
  return cpu_times(pids).total();
}
// This process's own utime + stime.
double own_cpu_seconds();
// Resident set size summed over the processes, in bytes.
std::uint64_t rss_bytes(const std::vector<int>& pids);

// q in [0, 1] of the samples (sorted in place); 0 when there are none.
double percentile(std::vector<double>& samples, double q);

// One flat JSON object, keys in insertion order.
class JsonLine {
 public:
  JsonLine& add(std::string_view key, double value);
  JsonLine& add(std::string_view key, std::string_view value);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(std::string_view key);
  std::string body_;
};

}  // namespace wsgate::bench
