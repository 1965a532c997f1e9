#pragma once
// THE route model: immutable Route/Backend values and the RouteTable snapshot built from them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wsgate::config {

struct Backend {
  std::string address;  // as written: host:port, [v6]:port or name:port
  std::string host;     // parsed host (no brackets)
  std::uint16_t port = 0;
  std::uint32_t weight = 1;
  bool tls = false;
  std::string ca_file;      // with tls: CA bundle; empty = system store
  std::string server_name;  // with tls: SNI and verified name; empty = host

  bool operator==(const Backend&) const = default;
};

struct Route {
  std::string namespace_ = "default";
  std::string name;
  std::vector<std::string> hosts;  // lower-case; "*.example.com" wildcards; empty = any host
  std::string path_prefix = "/";
  bool websocket_only = true;
  std::vector<Backend> backends;
  std::vector<std::string> allowed_origins;
  std::vector<std::string> subprotocols;
  std::uint32_t max_tunnels = 0;
  std::uint32_t idle_timeout_seconds = 0;
  std::uint32_t handshake_timeout_seconds = 10;
  std::uint32_t max_lifetime_seconds = 0;
  std::uint32_t ping_interval_seconds = 0;
  std::uint32_t handshakes_per_second = 0;
  std::uint64_t max_message_bytes = 0;

  std::string source;  // file (or "kubernetes") the route came from; not part of its identity

  // "namespace/name": the metric label and the key that survives reloads.
  std::string id() const { return namespace_ + "/" + name; }

  // Equality over content only (source excluded), for snapshot hashing and diffing.
  bool same_content(const Route& other) const;
};

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
