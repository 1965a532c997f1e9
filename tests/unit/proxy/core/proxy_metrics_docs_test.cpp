// The metrics reference is written by hand: every family the data plane registers must have
// its row there, so that a new metric cannot ship undocumented.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "proxy/core/proxy_metrics.hpp"

namespace wsgate::proxy {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ProxyMetricsDocs, EveryFamilyHasARowInTheMetricsReference) {
  const std::string doc = read_file(std::string(WSGATE_SOURCE_DIR) + "/docs/reference/metrics.md");
  ASSERT_FALSE(doc.empty()) << "docs/reference/metrics.md not found";
  for (const std::string_view name : kProxyMetricNames) {
    // A table row starts with the name in backticks.
    const std::string row = "| `" + std::string(name) + "` |";
    EXPECT_NE(doc.find(row), std::string::npos) << name << " is not in docs/reference/metrics.md";
  }
}

}  // namespace
}  // namespace wsgate::proxy
