#include "config/route.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <tuple>

namespace wsgate::config {
namespace {

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
#define WSGATE_WRITE_ROUTE_FIELD(member, key, ...) out[key] = route.member;
#define WSGATE_WRITE_BACKEND_FIELD(member, key, ...) b[key] = backend.member;
  WSGATE_ROUTE_HEAD_FIELDS(WSGATE_WRITE_ROUTE_FIELD)
  boost::json::array backends;
  for (const auto& backend : route.backends) {
    boost::json::object b;
    WSGATE_BACKEND_FIELDS(WSGATE_WRITE_BACKEND_FIELD)
    backends.emplace_back(std::move(b));
  }
  out["backends"] = std::move(backends);
  out["allowedOrigins"] = string_array(route.allowed_origins);
  out["subprotocols"] = string_array(route.subprotocols);
  WSGATE_ROUTE_TAIL_FIELDS(WSGATE_WRITE_ROUTE_FIELD)
#undef WSGATE_WRITE_BACKEND_FIELD
#undef WSGATE_WRITE_ROUTE_FIELD
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

// Every field but `source`: what makes two routes the same route. (Backend's operator== is
// defaulted, so it covers WSGATE_BACKEND_FIELDS by itself.)
bool Route::same_content(const Route& other) const {
  if (std::tie(namespace_, name, hosts, backends, allowed_origins, subprotocols) !=
      std::tie(other.namespace_, other.name, other.hosts, other.backends, other.allowed_origins,
               other.subprotocols))
    return false;
#define WSGATE_SAME_FIELD(member, ...) \
  if (member != other.member) return false;
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_SAME_FIELD)
#undef WSGATE_SAME_FIELD
  return true;
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
