// process_* values read from /proc are plausible, and promtool accepts our real exposition.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "metrics/registry.hpp"

namespace wsgate::metrics {
namespace {

// name -> value of every unlabelled sample line; HELP/TYPE lines collected separately.
struct Parsed {
  std::map<std::string, double> values;
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> helps;
};

Parsed parse(const std::string& text) {
  Parsed parsed;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string first, name, rest;
    words >> first;
    if (first == "#") {
      std::string kind;
      words >> kind >> name;
      std::getline(words >> std::ws, rest);
      (kind == "TYPE" ? parsed.types : parsed.helps)[name] = rest;
    } else if (first.find('{') == std::string::npos) {
      words >> rest;
      parsed.values[first] = std::stod(rest);
    }
  }
  return parsed;
}

TEST(ProcessCollector, ValuesAreSaneAndDescribed) {
  Registry registry;
  register_process_collector(registry);
  Parsed parsed = parse(registry.expose());

  const std::map<std::string, std::string> expected_types{
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_max_fds", "gauge"},
      {"process_start_time_seconds", "gauge"}};
  for (const auto& [name, type] : expected_types) {
    ASSERT_TRUE(parsed.values.count(name)) << name << " missing";
    EXPECT_EQ(parsed.types[name], type) << name;
    EXPECT_FALSE(parsed.helps[name].empty()) << name;
  }
  EXPECT_EQ(parsed.helps["process_open_fds"], "Number of open file descriptors.");

  EXPECT_GT(parsed.values["process_resident_memory_bytes"], 0);
  EXPECT_GE(parsed.values["process_virtual_memory_bytes"],
            parsed.values["process_resident_memory_bytes"]);
  EXPECT_GE(parsed.values["process_open_fds"], 3);  // stdin, stdout, stderr at least
  EXPECT_GE(parsed.values["process_max_fds"], parsed.values["process_open_fds"]);
  EXPECT_GE(parsed.values["process_cpu_seconds_total"], 0);

  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double start = parsed.values["process_start_time_seconds"];
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600);  // this test binary started moments ago
}

TEST(ProcessCollector, OpenFdsFollowsRealDescriptors) {
  Registry registry;
  register_process_collector(registry);
  const double before = parse(registry.expose()).values["process_open_fds"];
  constexpr int kExtra = 5;
  int fds[kExtra];
  for (int& fd : fds) fd = dup(STDERR_FILENO);
  const double during = parse(registry.expose()).values["process_open_fds"];
  for (int fd : fds) close(fd);
  EXPECT_EQ(during, before + kExtra);
}

// Runs `promtool check metrics` on text; returns its exit status and output.
std::pair<int, std::string> promtool_check(const std::string& text) {
  char path[] = "/tmp/wsgate_promtool_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  {
    std::ofstream file(path);
    file << text;
  }
  close(fd);
  std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  int status = pipe != nullptr ? pclose(pipe) : -1;
  std::remove(path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Promtool, RejectsBrokenTextSoTheCheckBelowCanFail) {
  auto [status, output] = promtool_check("# HELP a X.\n# TYPE a counter\na 1\n");
  EXPECT_NE(status, 0) << "promtool accepted a counter without _total: " << output;
  auto [parse_status, parse_output] = promtool_check("garbage{ 1\n");
  EXPECT_NE(parse_status, 0) << parse_output;
}

TEST(Promtool, AcceptsRealExposition) {
  Registry registry;
  CounterFamily& handshakes = registry.counter(
      "wsgate_handshakes_total", "Handshakes by \"route\" and\nstatus \\ code.", {"route", "code"});
  handshakes.with({"default/chat", "101"}).inc(7);
  handshakes.with({"we\"ird\\route\nname", "404"}).inc();
  handshakes.with({"", "404"}).inc();  // empty route: no route matched
  registry.counter("wsgate_config_updates_total", "Config updates.", {"result"});  // no series
  registry.gauge("wsgate_active_tunnels", "Open tunnels.", {"route"})
      .with({"default/chat"})
      .set(-2);
  registry.gauge("wsgate_config_info", "Config in force.", {"version"}).with({"abc123"}).set(1);
  HistogramFamily& latency =
      registry.histogram("wsgate_handshake_duration_seconds", "Handshake latency.", {"route"},
                         default_latency_buckets());
  for (double value : {0.0004, 0.001, 0.003, 0.07, 0.9, 42.0}) {
    latency.with({"default/chat"}).observe(value);
  }
  latency.with({"other"});  // a series with no observation
  HistogramFamily& lifetime = registry.histogram(
      "wsgate_tunnel_duration_seconds", "Tunnel lifetime.", {}, default_duration_buckets());
  lifetime.with({}).observe(1234.5);
  register_process_collector(registry);

  const std::string text = registry.expose();
  auto [status, output] = promtool_check(text);
  EXPECT_EQ(status, 0) << output << "\n--- exposition ---\n" << text;
}

}  // namespace
}  // namespace wsgate::metrics
