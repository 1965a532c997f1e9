#pragma once
// Proto <-> model codec for the control-plane stream: the only place wsgate::v1 messages and
// the route model meet. Decoding runs the same rules as the YAML loader.

#include <variant>

#include "config/route.hpp"
#include "config/route_yaml.hpp"
#include "wsgate/v1/routes.pb.h"

namespace wsgate::config {

wsgate::v1::RouteTable to_proto(const RouteTable& table);

// Every field is taken as sent (proto3 has no "absent", so there are no defaults here: the
// controller always sends full routes). Errors read
// "control plane: route ns/name: spec.backends[0].address: missing port".
std::variant<RouteTable, ConfigError> from_proto(const wsgate::v1::RouteTable& message);

}  // namespace wsgate::config
