#include "source/route_merge.hpp"

#include <set>
#include <utility>

namespace wsgate::source {

MergedRoutes merge_routes(const config::RouteTable& base, std::vector<config::Route> extra) {
  MergedRoutes merged;
  std::vector<config::Route> routes = base.routes();
  std::set<std::string> ids;
  for (const auto& route : routes) ids.insert(route.id());
  for (auto& route : extra) {
    std::string id = route.id();
    if (!ids.insert(id).second) {
      const config::Route* existing = base.find(id);
      const std::string where =
          existing != nullptr ? existing->source : std::string("another source");
      merged.conflicts.push_back(
          {id, "route " + id + ": already defined in " + where + ", which takes precedence"});
      continue;
    }
    routes.push_back(std::move(route));
  }
  merged.table = config::RouteTable(std::move(routes));
  return merged;
}

}  // namespace wsgate::source
