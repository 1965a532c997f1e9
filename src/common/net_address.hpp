#pragma once
// "host:port" parsing shared by flags (listen addresses) and route backends.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wsgate {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;
  bool ipv6_literal = false;

  // host:port, with brackets around an IPv6 literal.
  std::string to_string() const;
};

// Returns the parsed address, or a short reason ("missing port", "port out of range", ...).
// allow_port_zero: listeners accept 0 (kernel picks); backends do not.
std::variant<HostPort, std::string> parse_host_port(std::string_view text, bool allow_port_zero);

// "host:port,host:port" of listeners, with the ports they actually bound (port 0 flags).
std::string listen_addresses(const std::vector<std::string>& configured,
                             const std::vector<std::uint16_t>& bound);

}  // namespace wsgate
