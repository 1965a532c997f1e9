#include "config/route.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <tuple>

namespace wsgate::config {
namespace {

// Every field but `source`: what makes two routes the same route.
auto content_of(const Route& r) {
  return std::tie(r.namespace_, r.name, r.hosts, r.path_prefix, r.websocket_only, r.backends,
                  r.allowed_origins, r.subprotocols, r.max_tunnels, r.idle_timeout_seconds,
                  r.handshake_timeout_seconds, r.max_lifetime_seconds, r.ping_interval_seconds,
                  r.handshakes_per_second, r.max_message_bytes);
}

boost::json::array string_array(const std::vector<std::string>& items) {
  boost::json::array out;
  for (const auto& item : items) out.emplace_back(item);
  return out;
}

// Keys in a fixed order (SPEC's order), so equal content always serialises to equal text.
boost::json::object route_json(const Route& route, bool with_source) {
  boost::json::object out;
  out["namespace"] = route.namespace_;
  out["name"] = route.name;
  out["hosts"] = string_array(route.hosts);
  out["pathPrefix"] = route.path_prefix;
  out["websocketOnly"] = route.websocket_only;
  boost::json::array backends;
  for (const auto& backend : route.backends) {
    boost::json::object b;
    b["address"] = backend.address;
    b["weight"] = backend.weight;
    b["tls"] = backend.tls;
    b["caFile"] = backend.ca_file;
    b["serverName"] = backend.server_name;
    backends.emplace_back(std::move(b));
  }
  out["backends"] = std::move(backends);
  out["allowedOrigins"] = string_array(route.allowed_origins);
  out["subprotocols"] = string_array(route.subprotocols);
  out["maxTunnels"] = route.max_tunnels;
  out["idleTimeoutSeconds"] = route.idle_timeout_seconds;
  out["handshakeTimeoutSeconds"] = route.handshake_timeout_seconds;
  out["maxLifetimeSeconds"] = route.max_lifetime_seconds;
  out["pingIntervalSeconds"] = route.ping_interval_seconds;
  out["handshakesPerSecond"] = route.handshakes_per_second;
  out["maxMessageBytes"] = route.max_message_bytes;
  if (with_source) out["source"] = route.source;
  return out;
}

boost::json::array routes_json(const RouteTable& table, bool with_source) {
  boost::json::array out;
  for (const auto& route : table.routes()) out.emplace_back(route_json(route, with_source));
  return out;
}

// First 16 hex digits of SHA-256: short enough for a metric label, long enough not to collide.
std::string short_sha256(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1 ||
      length < 8)
    std::abort();  // SHA-256 is built into every OpenSSL: failing here cannot happen
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < 8; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

}  // namespace

bool Route::same_content(const Route& other) const {
  return content_of(*this) == content_of(other);
}

RouteTable::RouteTable() : RouteTable(std::vector<Route>{}) {}

RouteTable::RouteTable(std::vector<Route> routes) : routes_(std::move(routes)) {
  std::stable_sort(routes_.begin(), routes_.end(),
                   [](const Route& a, const Route& b) { return a.id() < b.id(); });
  version_ = short_sha256(canonical_json(*this));
}

const Route* RouteTable::find(const std::string& id) const {
  const auto it =
      std::lower_bound(routes_.begin(), routes_.end(), id,
                       [](const Route& route, const std::string& key) { return route.id() < key; });
  if (it == routes_.end() || it->id() != id) return nullptr;
  return &*it;
}

std::string canonical_json(const RouteTable& table) {
  boost::json::object doc;
  doc["routes"] = routes_json(table, false);
  return boost::json::serialize(doc);
}

std::string config_json(const RouteTable& table) {
  boost::json::object doc;
  doc["version"] = table.version();
  doc["routes"] = routes_json(table, true);
  return boost::json::serialize(doc);
}

}  // namespace wsgate::config
