#include "config/route_proto.hpp"

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/route_fields.hpp"
#include "config/route_validate.hpp"

namespace wsgate::config {
namespace {

constexpr std::string_view kPrefix = "control plane: ";

// Each list entry's proto field carries exactly its C++ type (uint32 for std::uint32_t, ...), so
// the wire form neither narrows nor widens a knob.
#define WSGATE_CHECK_PROTO_TYPE(message, member, key, type, default_value, min, max, proto) \
  static_assert(                                                                            \
      std::is_same_v<std::decay_t<decltype(std::declval<const message&>().proto())>, type>, \
      key ": the proto field's type differs from the C++ member's");
#define WSGATE_CHECK_ROUTE_PROTO_TYPE(...) WSGATE_CHECK_PROTO_TYPE(wsgate::v1::Route, __VA_ARGS__)
#define WSGATE_CHECK_BACKEND_PROTO_TYPE(...) \
  WSGATE_CHECK_PROTO_TYPE(wsgate::v1::Backend, __VA_ARGS__)
WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_CHECK_ROUTE_PROTO_TYPE)
WSGATE_BACKEND_FIELDS(WSGATE_CHECK_BACKEND_PROTO_TYPE)
#undef WSGATE_CHECK_BACKEND_PROTO_TYPE
#undef WSGATE_CHECK_ROUTE_PROTO_TYPE
#undef WSGATE_CHECK_PROTO_TYPE

// member, key, type, default, min, max, proto: one field between the model and the message.
#define WSGATE_DECODE_FIELD(member, key, type, default_value, min, max, proto) \
  out.member = in.proto();
#define WSGATE_ENCODE_FIELD(member, key, type, default_value, min, max, proto) \
  out->set_##proto(in.member);

template <typename Repeated>
std::vector<std::string> to_vector(const Repeated& items) {
  return std::vector<std::string>(items.begin(), items.end());
}

template <typename Repeated>
void assign(const std::vector<std::string>& items, Repeated* out) {
  for (const auto& item : items) out->Add(std::string(item));
}

Route decode_route(const wsgate::v1::Route& message) {
  Route route;
  route.namespace_ = message.namespace_();
  route.name = message.name();
  route.hosts = to_vector(message.hosts());
  for (const auto& in : message.backends()) {
    Backend out;
    WSGATE_BACKEND_FIELDS(WSGATE_DECODE_FIELD)
    route.backends.push_back(std::move(out));
  }
  route.allowed_origins = to_vector(message.allowed_origins());
  route.subprotocols = to_vector(message.subprotocols());
  route.source = message.source();
  {
    const auto& in = message;
    auto& out = route;
    WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_DECODE_FIELD)
  }
  return route;
}

void encode_route(const Route& route, wsgate::v1::Route* message) {
  message->set_namespace_(route.namespace_);
  message->set_name(route.name);
  assign(route.hosts, message->mutable_hosts());
  for (const auto& in : route.backends) {
    auto* out = message->add_backends();
    WSGATE_BACKEND_FIELDS(WSGATE_ENCODE_FIELD)
  }
  assign(route.allowed_origins, message->mutable_allowed_origins());
  assign(route.subprotocols, message->mutable_subprotocols());
  message->set_source(route.source);
  const auto& in = route;
  auto* out = message;
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_ENCODE_FIELD)
}

#undef WSGATE_ENCODE_FIELD
#undef WSGATE_DECODE_FIELD

}  // namespace

wsgate::v1::RouteTable to_proto(const RouteTable& table) {
  wsgate::v1::RouteTable out;
  for (const auto& route : table.routes()) encode_route(route, out.add_routes());
  return out;
}

std::variant<RouteTable, ConfigError> from_proto(const wsgate::v1::RouteTable& message) {
  std::vector<Route> routes;
  routes.reserve(static_cast<std::size_t>(message.routes_size()));
  for (int i = 0; i < message.routes_size(); ++i) {
    Route route = decode_route(message.routes(i));
    // Until the id is valid, the position in the message is the only name the route has.
    if (auto error = validate_route_id(route)) {
      return ConfigError{std::string(kPrefix) + "routes[" + std::to_string(i) +
                         "]: " + error->field + ": " + error->reason};
    }
    if (auto error = validate_route_spec(route)) {
      return ConfigError{std::string(kPrefix) + "route " + route.id() + ": " + error->field + ": " +
                         error->reason};
    }
    routes.push_back(std::move(route));
  }
  if (auto duplicate = find_duplicate_id(routes)) {
    return ConfigError{std::string(kPrefix) + "route " + duplicate->second->id() +
                       ": defined twice"};
  }
  return RouteTable(std::move(routes));
}

}  // namespace wsgate::config
