#include "common/net_address.hpp"

#include <gtest/gtest.h>

namespace wsgate {
namespace {

std::string error_of(std::string_view text, bool allow_zero = false) {
  auto result = parse_host_port(text, allow_zero);
  if (auto* err = std::get_if<std::string>(&result)) return *err;
  return "";
}

TEST(ParseHostPort, AcceptsNameIpv4AndBracketedIpv6) {
  auto a = std::get<HostPort>(parse_host_port("echo.default.svc:9001", false));
  EXPECT_EQ(a.host, "echo.default.svc");
  EXPECT_EQ(a.port, 9001);
  auto b = std::get<HostPort>(parse_host_port("127.0.0.1:80", false));
  EXPECT_EQ(b.to_string(), "127.0.0.1:80");
  auto c = std::get<HostPort>(parse_host_port("[::1]:8443", false));
  EXPECT_EQ(c.host, "::1");
  EXPECT_TRUE(c.ipv6_literal);
  EXPECT_EQ(c.to_string(), "[::1]:8443");
}

TEST(ParseHostPort, ReportsEachProblem) {
  EXPECT_EQ(error_of("127.0.0.1"), "missing port");
  EXPECT_EQ(error_of("127.0.0.1:"), "missing port");
  EXPECT_EQ(error_of(":80"), "missing host");
  EXPECT_EQ(error_of("host:http"), "port is not a number");
  EXPECT_EQ(error_of("host:70000"), "port out of range");
  EXPECT_EQ(error_of("host:0"), "port must not be 0");
  EXPECT_EQ(error_of("host:0", true), "");
  EXPECT_EQ(error_of("::1:80"), "IPv6 address must be in brackets");
  EXPECT_EQ(error_of("[::1"), "unterminated '[' in IPv6 address");
  EXPECT_EQ(error_of("[::1]80"), "expected ':' after ']'");
  EXPECT_EQ(error_of("ho st:80"), "invalid character in host");
  EXPECT_EQ(error_of(""), "empty address");
}

}  // namespace
}  // namespace wsgate
