#include "config/route_validate.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <set>
#include <variant>
#include <vector>

#include "common/net_address.hpp"
#include "config/route_fields.hpp"

namespace wsgate::config {
namespace {

struct IntegerLimit {
  std::string_view field;
  bool is_integer;  // only integers have a range
  std::uint64_t min;
  std::uint64_t max;
};

// The ranges of route_fields.hpp, by YAML key (route and backend keys do not overlap).
#define WSGATE_LIMIT_OF_FIELD(member, key, type, default_value, min, max, proto) \
  IntegerLimit{key, kIsIntegerField<type>, min, max},
constexpr IntegerLimit kIntegerLimits[] = {WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_LIMIT_OF_FIELD)
                                               WSGATE_BACKEND_FIELDS(WSGATE_LIMIT_OF_FIELD)};
#undef WSGATE_LIMIT_OF_FIELD

// A list entry's range, when it is an integer; other types have nothing to check here.
template <typename T>
std::optional<std::string> check_field(std::string_view key, const T& value) {
  if constexpr (kIsIntegerField<T>) {
    return check_integer(key, value);
  } else {
    return std::nullopt;
  }
}

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// One DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
bool is_dns_label(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (!is_lower_alnum(label.front()) || !is_lower_alnum(label.back())) return false;
  return std::all_of(label.begin(), label.end(),
                     [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_dns_subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const auto dot = name.find('.', start);
    if (!is_dns_label(name.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A lower-case DNS name or IPv4 address as it appears in a Host header, without a port.
std::optional<std::string> check_hostname(std::string_view host) {
  if (host.empty()) return "must not be empty";
  if (host.find(':') != std::string_view::npos) return "must not contain a port";
  if (host.size() > 253) return "longer than 253 characters";
  std::size_t start = 0;
  while (true) {
    const auto dot = host.find('.', start);
    const auto label = host.substr(start, dot - start);
    if (label.empty()) return "empty label in hostname";
    if (label.size() > 63) return "hostname label longer than 63 characters";
    for (const char c : label) {
      if (!is_lower_alnum(c) && c != '-') return std::string("invalid character '") + c + "'";
    }
    if (label.front() == '-' || label.back() == '-')
      return "hostname label must not start or end with '-'";
    if (dot == std::string_view::npos) return std::nullopt;
    start = dot + 1;
  }
}

// "chat.example.com" or "*.example.com" (the star stands for one or more leading labels).
std::optional<std::string> check_host_pattern(std::string_view host) {
  if (host == "*") return "a lone '*' is not allowed; leave hosts empty to match any host";
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.find('*') != std::string_view::npos)
    return "'*' is only allowed as the whole first label, as in \"*.example.com\"";
  return check_hostname(host);
}

// scheme://host[:port], as a browser serialises the Origin header (no path, no trailing '/').
std::optional<std::string> check_origin(std::string_view origin) {
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos) return "must look like scheme://host[:port]";
  const auto scheme = origin.substr(0, sep);
  if (scheme.empty() || !(scheme.front() >= 'a' && scheme.front() <= 'z') ||
      !std::all_of(scheme.begin(), scheme.end(),
                   [](char c) { return is_lower_alnum(c) || c == '+' || c == '-' || c == '.'; }))
    return "invalid scheme";
  const auto authority = origin.substr(sep + 3);
  if (authority.find_first_of("/?#") != std::string_view::npos)
    return "must not contain a path, query or fragment";
  if (authority.find('@') != std::string_view::npos) return "must not contain user info";
  std::optional<std::string_view> port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return "unterminated '[' in IPv6 address";
    const auto v6 = authority.substr(1, close - 1);
    if (v6.empty() || v6.find_first_not_of("0123456789abcdef:.") != std::string_view::npos)
      return "invalid IPv6 address";
    const auto rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return "expected ':' after ']'";
    if (!rest.empty()) port = rest.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (auto reason = check_hostname(authority.substr(0, colon))) return "host " + *reason;
  }
  if (port) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
    if (port->empty() || ec != std::errc() || end != port->data() + port->size() || value == 0 ||
        value > 65535)
      return "invalid port";
  }
  return std::nullopt;
}

// RFC 6455 subprotocol names are RFC 7230 tokens.
std::optional<std::string> check_token(std::string_view token) {
  if (token.empty()) return "must not be empty";
  constexpr std::string_view kSeparators = "()<>@,;:\\\"/[]?={}";
  for (const char c : token) {
    if (c <= 0x20 || c >= 0x7f || kSeparators.find(c) != std::string_view::npos)
      return std::string("invalid character in token");
  }
  return std::nullopt;
}

std::optional<std::string> check_path_prefix(std::string_view path) {
  if (!path.starts_with('/')) return "must start with '/'";
  for (const char c : path) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) return "must not contain spaces or control characters";
    if (byte >= 0x80) return "must be ASCII (percent-encode other characters)";
    if (c == '?' || c == '#') return "must not contain '?' or '#'";
  }
  return std::nullopt;
}

std::string indexed(std::string_view field, std::size_t index) {
  return std::string(field) + "[" + std::to_string(index) + "]";
}

// Checks and lower-cases each entry of a list of names; duplicates are a typo.
template <typename Check>
std::optional<FieldError> check_name_list(std::vector<std::string>& items, std::string_view field,
                                          bool fold_case, Check check) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (fold_case) items[i] = lower(items[i]);
    if (auto reason = check(items[i])) return FieldError{indexed(field, i), *reason};
    if (!seen.insert(items[i]).second)
      return FieldError{indexed(field, i), "duplicate entry \"" + items[i] + "\""};
  }
  return std::nullopt;
}

std::optional<FieldError> validate_backend(Backend& backend, const std::string& field) {
  auto parsed = parse_host_port(backend.address, /*allow_port_zero=*/false);
  if (auto* reason = std::get_if<std::string>(&parsed))
    return FieldError{field + ".address", *reason};
  const auto& host_port = std::get<HostPort>(parsed);
  backend.host = host_port.host;
  backend.port = host_port.port;
#define WSGATE_CHECK_BACKEND_FIELD(member, key, ...) \
  if (auto reason = check_field(key, backend.member)) return FieldError{field + "." key, *reason};
  WSGATE_BACKEND_FIELDS(WSGATE_CHECK_BACKEND_FIELD)
#undef WSGATE_CHECK_BACKEND_FIELD
  if (!backend.tls && !backend.ca_file.empty())
    return FieldError{field + ".caFile", "only allowed with tls: true"};
  if (!backend.tls && !backend.server_name.empty())
    return FieldError{field + ".serverName", "only allowed with tls: true"};
  if (!backend.server_name.empty()) {
    backend.server_name = lower(backend.server_name);
    if (auto reason = check_hostname(backend.server_name))
      return FieldError{field + ".serverName", *reason};
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_integer(std::string_view field, std::uint64_t value) {
  for (const auto& limit : kIntegerLimits) {
    if (!limit.is_integer || limit.field != field) continue;
    if (value >= limit.min && value <= limit.max) return std::nullopt;
    if (limit.min == 0) return "must be at most " + std::to_string(limit.max);
    return "must be between " + std::to_string(limit.min) + " and " + std::to_string(limit.max);
  }
  return std::nullopt;
}

std::optional<FieldError> validate_route_id(const Route& route) {
  if (route.name.empty()) return FieldError{"metadata.name", "required"};
  if (!is_dns_subdomain(route.name))
    return FieldError{"metadata.name",
                      "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
                      "starting and ending with a letter or digit, at most 253 characters)"};
  if (!is_dns_label(route.namespace_))
    return FieldError{"metadata.namespace",
                      "must be a DNS-1123 label (lower-case letters, digits and '-', starting and "
                      "ending with a letter or digit, at most 63 characters)"};
  return std::nullopt;
}

std::optional<FieldError> validate_route_spec(Route& route) {
  if (auto error = check_name_list(route.hosts, "spec.hosts", true, check_host_pattern))
    return error;
  if (auto reason = check_path_prefix(route.path_prefix))
    return FieldError{"spec.pathPrefix", *reason};
  if (route.backends.empty())
    return FieldError{"spec.backends", "at least one backend is required"};
  for (std::size_t i = 0; i < route.backends.size(); ++i) {
    if (auto error = validate_backend(route.backends[i], indexed("spec.backends", i))) return error;
  }
  if (auto error =
          check_name_list(route.allowed_origins, "spec.allowedOrigins", true, check_origin))
    return error;
  if (auto error = check_name_list(route.subprotocols, "spec.subprotocols", false, check_token))
    return error;
#define WSGATE_CHECK_ROUTE_FIELD(member, key, ...) \
  if (auto reason = check_field(key, route.member)) return FieldError{"spec." key, *reason};
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_CHECK_ROUTE_FIELD)
#undef WSGATE_CHECK_ROUTE_FIELD
  return std::nullopt;
}

std::optional<std::pair<const Route*, const Route*>> find_duplicate_id(
    const std::vector<Route>& routes) {
  std::map<std::string, const Route*> seen;
  for (const auto& route : routes) {
    const auto [it, inserted] = seen.emplace(route.id(), &route);
    if (!inserted) return std::pair{it->second, &route};
  }
  return std::nullopt;
}

}  // namespace wsgate::config
