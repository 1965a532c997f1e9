#pragma once
// THE route model: immutable Route/Backend values and the RouteTable snapshot built from them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/route_fields.hpp"

namespace wsgate::config {

// The scalar knobs (path_prefix, websocket_only, max_tunnels, ... in Route; address, weight,
// tls, ca_file, server_name in Backend) are declared from route_fields.hpp's lists, which give
// each one's type, default and meaning.
#define WSGATE_DECLARE_FIELD(member, key, type, default_value, min, max, proto) \
  type member = default_value;

struct Backend {
  WSGATE_BACKEND_FIELDS(WSGATE_DECLARE_FIELD)
  std::string host;  // parsed from address (no brackets)
  std::uint16_t port = 0;

  bool operator==(const Backend&) const = default;
};

struct Route {
  std::string namespace_ = "default";
  std::string name;
  std::vector<std::string> hosts;  // lower-case; "*.example.com" wildcards; empty = any host
  WSGATE_ROUTE_HEAD_FIELDS(WSGATE_DECLARE_FIELD)
  std::vector<Backend> backends;
  std::vector<std::string> allowed_origins;
  std::vector<std::string> subprotocols;
  WSGATE_ROUTE_TAIL_FIELDS(WSGATE_DECLARE_FIELD)

  std::string source;  // file (or "kubernetes") the route came from; not part of its identity

  // "namespace/name": the metric label and the key that survives reloads.
  std::string id() const { return namespace_ + "/" + name; }

  // Equality over content only (source excluded), for snapshot hashing and diffing.
  bool same_content(const Route& other) const;
};

#undef WSGATE_DECLARE_FIELD

// One whole, validated, immutable set of routes. Shared between threads by shared_ptr<const>.
class RouteTable {
 public:
  RouteTable();  // the empty table (with the version of no routes)
  explicit RouteTable(std::vector<Route> routes);  // sorts by id and computes the version

  const std::vector<Route>& routes() const { return routes_; }
  // Content hash (16 hex digits): identical content gives the identical version.
  const std::string& version() const { return version_; }
  const Route* find(const std::string& id) const;

 private:
  std::vector<Route> routes_;
  std::string version_;
};

using RouteTablePtr = std::shared_ptr<const RouteTable>;

// The canonical text of the table's content, {"routes":[...]} with fixed key order and no
// `source`: the input of the version hash.
std::string canonical_json(const RouteTable& table);

// What admin /config shows: {"version":"...","routes":[...]}, each route also naming its source.
std::string config_json(const RouteTable& table);

}  // namespace wsgate::config
