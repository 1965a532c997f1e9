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

// One list entry between the model and the message: into `route`/`backend` from
// `message`/`b` (decode), or the other way (encode).
#define WSGATE_DECODE_ROUTE_FIELD(member, key, type, default_value, min, max, proto) \
  route.member = message.proto();
#define WSGATE_DECODE_BACKEND_FIELD(member, key, type, default_value, min, max, proto) \
  backend.member = b.proto();
#define WSGATE_ENCODE_ROUTE_FIELD(member, key, type, default_value, min, max, proto) \
  message->set_##proto(route.member);
#define WSGATE_ENCODE_BACKEND_FIELD(member, key, type, default_value, min, max, proto) \
  b->set_##proto(backend.member);

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
  for (const auto& b : message.backends()) {
    Backend backend;
    WSGATE_BACKEND_FIELDS(WSGATE_DECODE_BACKEND_FIELD)
    route.backends.push_back(std::move(backend));
  }
  route.allowed_origins = to_vector(message.allowed_origins());
  route.subprotocols = to_vector(message.subprotocols());
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_DECODE_ROUTE_FIELD)
  route.source = message.source();
  return route;
}

void encode_route(const Route& route, wsgate::v1::Route* message) {
  message->set_namespace_(route.namespace_);
  message->set_name(route.name);
  assign(route.hosts, message->mutable_hosts());
  for (const auto& backend : route.backends) {
    auto* b = message->add_backends();
    WSGATE_BACKEND_FIELDS(WSGATE_ENCODE_BACKEND_FIELD)
  }
  assign(route.allowed_origins, message->mutable_allowed_origins());
  assign(route.subprotocols, message->mutable_subprotocols());
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_ENCODE_ROUTE_FIELD)
  message->set_source(route.source);
}

#undef WSGATE_ENCODE_BACKEND_FIELD
#undef WSGATE_ENCODE_ROUTE_FIELD
#undef WSGATE_DECODE_BACKEND_FIELD
#undef WSGATE_DECODE_ROUTE_FIELD

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
