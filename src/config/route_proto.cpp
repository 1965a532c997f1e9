#include "config/route_proto.hpp"

#include <string>
#include <vector>

#include "config/route_validate.hpp"

namespace wsgate::config {
namespace {

constexpr std::string_view kPrefix = "control plane: ";

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
  route.path_prefix = message.path_prefix();
  route.websocket_only = message.websocket_only();
  for (const auto& b : message.backends()) {
    Backend backend;
    backend.address = b.address();
    backend.weight = b.weight();
    backend.tls = b.tls();
    backend.ca_file = b.ca_file();
    backend.server_name = b.server_name();
    route.backends.push_back(std::move(backend));
  }
  route.allowed_origins = to_vector(message.allowed_origins());
  route.subprotocols = to_vector(message.subprotocols());
  route.max_tunnels = message.max_tunnels();
  route.idle_timeout_seconds = message.idle_timeout_seconds();
  route.handshake_timeout_seconds = message.handshake_timeout_seconds();
  route.max_lifetime_seconds = message.max_lifetime_seconds();
  route.ping_interval_seconds = message.ping_interval_seconds();
  route.handshakes_per_second = message.handshakes_per_second();
  route.max_message_bytes = message.max_message_bytes();
  route.source = message.source();
  return route;
}

}  // namespace

wsgate::v1::RouteTable to_proto(const RouteTable& table) {
  wsgate::v1::RouteTable out;
  for (const auto& route : table.routes()) {
    auto* message = out.add_routes();
    message->set_namespace_(route.namespace_);
    message->set_name(route.name);
    assign(route.hosts, message->mutable_hosts());
    message->set_path_prefix(route.path_prefix);
    message->set_websocket_only(route.websocket_only);
    for (const auto& backend : route.backends) {
      auto* b = message->add_backends();
      b->set_address(backend.address);
      b->set_weight(backend.weight);
      b->set_tls(backend.tls);
      b->set_ca_file(backend.ca_file);
      b->set_server_name(backend.server_name);
    }
    assign(route.allowed_origins, message->mutable_allowed_origins());
    assign(route.subprotocols, message->mutable_subprotocols());
    message->set_max_tunnels(route.max_tunnels);
    message->set_idle_timeout_seconds(route.idle_timeout_seconds);
    message->set_handshake_timeout_seconds(route.handshake_timeout_seconds);
    message->set_max_lifetime_seconds(route.max_lifetime_seconds);
    message->set_ping_interval_seconds(route.ping_interval_seconds);
    message->set_handshakes_per_second(route.handshakes_per_second);
    message->set_max_message_bytes(route.max_message_bytes);
    message->set_source(route.source);
  }
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
