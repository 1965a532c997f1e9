#include "common/net_address.hpp"

#include <charconv>

namespace wsgate {

std::string HostPort::to_string() const {
  std::string out;
  if (ipv6_literal) {
    out = "[" + host + "]";
  } else {
    out = host;
  }
  out += ":" + std::to_string(port);
  return out;
}

std::variant<HostPort, std::string> parse_host_port(std::string_view text, bool allow_port_zero) {
  if (text.empty()) return std::string("empty address");
  HostPort out;
  std::string_view port_text;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::string("unterminated '[' in IPv6 address");
    out.host = std::string(text.substr(1, close - 1));
    out.ipv6_literal = true;
    if (out.host.empty() ||
        out.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
      return std::string("invalid IPv6 address");
    const auto rest = text.substr(close + 1);
    if (rest.empty()) return std::string("missing port");
    if (rest.front() != ':') return std::string("expected ':' after ']'");
    port_text = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::string("missing port");
    if (text.substr(0, colon).find(':') != std::string_view::npos)
      return std::string("IPv6 address must be in brackets");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (out.host.empty()) return std::string("missing host");
    for (const char c : out.host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_';
      if (!ok) return std::string("invalid character in host");
    }
  }
  if (port_text.empty()) return std::string("missing port");
  unsigned value = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size())
    return std::string("port is not a number");
  if (value > 65535) return std::string("port out of range");
  if (value == 0 && !allow_port_zero) return std::string("port must not be 0");
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

std::string listen_addresses(const std::vector<std::string>& configured,
                             const std::vector<std::uint16_t>& bound) {
  std::string out;
  for (std::size_t i = 0; i < configured.size(); ++i) {
    auto parsed = parse_host_port(configured[i], /*allow_port_zero=*/true);
    std::string address = configured[i];
    if (auto* host_port = std::get_if<HostPort>(&parsed); host_port && i < bound.size()) {
      host_port->port = bound[i];
      address = host_port->to_string();
    }
    out += (out.empty() ? "" : ",") + address;
  }
  return out;
}

}  // namespace wsgate
