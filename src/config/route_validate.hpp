#pragma once
// The one set of route rules, shared by every way a route arrives (YAML files, the
// control-plane stream), so a route the controller accepts is exactly one the proxy accepts.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/route.hpp"

namespace wsgate::config {

inline constexpr std::string_view kApiVersion = "wsgate.dev/v1alpha1";
inline constexpr std::string_view kKind = "WebSocketRoute";

// A rule broken at one field: `field` is the path as a user writes it ("spec.backends[0].address").
struct FieldError {
  std::string field;
  std::string reason;
};

// Range of an integer field of the spec, by its YAML name ("weight", "maxTunnels", ...).
// Returns the reason when `value` is outside it. Unknown names accept any value.
std::optional<std::string> check_integer(std::string_view field, std::uint64_t value);

// metadata.name (DNS-1123 subdomain) and metadata.namespace (DNS-1123 label): checked first,
// because until they hold, the route has no id to name in an error.
std::optional<FieldError> validate_route_id(const Route& route);

// Everything under spec. Also normalises: hosts and origins are lower-cased, and each
// backend's host/port are parsed from its address.
std::optional<FieldError> validate_route_spec(Route& route);

// The first route whose id an earlier route already has, with that earlier route.
std::optional<std::pair<const Route*, const Route*>> find_duplicate_id(
    const std::vector<Route>& routes);

}  // namespace wsgate::config
