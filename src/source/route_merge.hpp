#pragma once
// Merges the routes of two sources (route files and Kubernetes custom resources) into one
// table: ids must not clash, and on a clash the first source's route stays.

#include <string>
#include <vector>

#include "config/route.hpp"

namespace wsgate::source {

struct RouteConflict {
  std::string id;       // "namespace/name"
  std::string message;  // for the rejected route's status: where the id is already defined
};

struct MergedRoutes {
  config::RouteTable table;
  std::vector<RouteConflict> conflicts;  // routes of `extra` left out, in `extra`'s order
};

// `base` wins every clash: a route file is an operator's deliberate pin, and a custom
// resource must not silently replace it.
MergedRoutes merge_routes(const config::RouteTable& base, std::vector<config::Route> extra);

}  // namespace wsgate::source
