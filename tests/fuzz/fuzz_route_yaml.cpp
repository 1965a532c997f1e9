// libFuzzer target: any text as a route file. Parsing and validation must never crash or
// throw, and a route table that loads must survive the trip to the control-plane proto and
// back unchanged (same content version), as the controller -> proxy path relies on.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "config/route_proto.hpp"
#include "config/route_yaml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace wsgate::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_route_documents(text, "fuzz.yaml");
  if (std::holds_alternative<ConfigError>(parsed)) {
    if (std::get<ConfigError>(parsed).message.empty()) std::abort();  // errors say what failed
    return 0;
  }
  auto routes = std::get<std::vector<Route>>(std::move(parsed));
  // Two routes with one id are rejected when a directory is loaded, not per file.
  for (std::size_t i = 0; i < routes.size(); ++i) {
    for (std::size_t j = i + 1; j < routes.size(); ++j) {
      if (routes[i].id() == routes[j].id()) return 0;
    }
  }
  const RouteTable table(std::move(routes));
  (void)canonical_json(table);
  (void)config_json(table);
  const auto decoded = from_proto(to_proto(table));
  if (!std::holds_alternative<RouteTable>(decoded)) std::abort();
  if (std::get<RouteTable>(decoded).version() != table.version()) std::abort();
  return 0;
}
