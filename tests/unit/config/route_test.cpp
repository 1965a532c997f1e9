// The route model: sorting, lookup, content equality, the canonical JSON and its version hash.
#include "config/route.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <boost/json.hpp>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace wsgate::config {
namespace {

Route make_route(const std::string& ns, const std::string& name) {
  Route route;
  route.namespace_ = ns;
  route.name = name;
  route.path_prefix = "/" + name;
  Backend backend;
  backend.address = "127.0.0.1:9001";
  backend.host = "127.0.0.1";
  backend.port = 9001;
  route.backends.push_back(backend);
  route.source = "routes/" + name + ".yaml";
  return route;
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
  }
  return out;
}

TEST(RouteTable, SortsByIdAndFinds) {
  const RouteTable table(
      {make_route("default", "zeta"), make_route("apps", "chat"), make_route("default", "alpha")});
  ASSERT_EQ(table.routes().size(), 3u);
  EXPECT_EQ(table.routes()[0].id(), "apps/chat");
  EXPECT_EQ(table.routes()[1].id(), "default/alpha");
  EXPECT_EQ(table.routes()[2].id(), "default/zeta");
  ASSERT_NE(table.find("default/zeta"), nullptr);
  EXPECT_EQ(table.find("default/zeta")->path_prefix, "/zeta");
  EXPECT_EQ(table.find("apps/chat"), &table.routes()[0]);
  EXPECT_EQ(table.find("default/chat"), nullptr);
  EXPECT_EQ(table.find(""), nullptr);
  EXPECT_EQ(table.find("zzz/zzz"), nullptr);
}

TEST(RouteTable, VersionIsFirst16HexOfSha256OfCanonicalJson) {
  const RouteTable table({make_route("default", "chat")});
  EXPECT_EQ(table.version().size(), 16u);
  EXPECT_EQ(table.version(), sha256_hex(canonical_json(table)).substr(0, 16));
}

TEST(RouteTable, EmptyTableHasAVersion) {
  const RouteTable empty;
  EXPECT_EQ(empty.version().size(), 16u);
  EXPECT_EQ(empty.version(), RouteTable(std::vector<Route>{}).version());
  EXPECT_NE(empty.version(), RouteTable({make_route("default", "chat")}).version());
  EXPECT_EQ(canonical_json(empty), R"({"routes":[]})");
}

TEST(RouteTable, SameContentSameVersionWhateverTheOrderOrSource) {
  const RouteTable a({make_route("default", "a"), make_route("default", "b")});
  Route b_elsewhere = make_route("default", "b");
  b_elsewhere.source = "kubernetes";
  const RouteTable b({b_elsewhere, make_route("default", "a")});
  EXPECT_EQ(a.version(), b.version());
  EXPECT_EQ(canonical_json(a), canonical_json(b));
  EXPECT_TRUE(a.routes()[1].same_content(b.routes()[1]));
  // ...but /config shows where each came from.
  EXPECT_NE(config_json(a), config_json(b));
}

TEST(RouteTable, AnyFieldChangeGivesANewVersion) {
  const Route base = make_route("default", "chat");
  const std::vector<std::function<void(Route&)>> changes = {
      [](Route& r) { r.namespace_ = "other"; },
      [](Route& r) { r.name = "chat2"; },
      [](Route& r) { r.hosts = {"chat.example.com"}; },
      [](Route& r) { r.path_prefix = "/other"; },
      [](Route& r) { r.websocket_only = false; },
      [](Route& r) { r.backends[0].address = "127.0.0.1:9002"; },
      [](Route& r) { r.backends[0].weight = 2; },
      [](Route& r) { r.backends[0].tls = true; },
      [](Route& r) { r.backends[0].ca_file = "/ca.pem"; },
      [](Route& r) { r.backends[0].server_name = "backend"; },
      [](Route& r) { r.backends.push_back(r.backends[0]); },
      [](Route& r) { r.allowed_origins = {"https://a.com"}; },
      [](Route& r) { r.subprotocols = {"mqtt"}; },
      [](Route& r) { r.max_tunnels = 1; },
      [](Route& r) { r.idle_timeout_seconds = 1; },
      [](Route& r) { r.handshake_timeout_seconds = 11; },
      [](Route& r) { r.max_lifetime_seconds = 1; },
      [](Route& r) { r.ping_interval_seconds = 1; },
      [](Route& r) { r.handshakes_per_second = 1; },
      [](Route& r) { r.max_message_bytes = 1; },
  };
  std::set<std::string> versions = {RouteTable({base}).version()};
  for (std::size_t i = 0; i < changes.size(); ++i) {
    Route changed = base;
    changes[i](changed);
    EXPECT_FALSE(changed.same_content(base)) << "change " << i;
    EXPECT_TRUE(versions.insert(RouteTable({changed}).version()).second) << "change " << i;
  }
  Route moved = base;
  moved.source = "elsewhere.yaml";
  EXPECT_TRUE(moved.same_content(base));
  EXPECT_EQ(RouteTable({moved}).version(), RouteTable({base}).version());
}

TEST(RouteTable, CanonicalJsonHasFixedKeysInSpecOrder) {
  Route route = make_route("default", "chat");
  route.hosts = {"chat.example.com"};
  route.max_message_bytes = 9223372036854775807u;
  EXPECT_EQ(
      canonical_json(RouteTable({route})),
      R"({"routes":[{"namespace":"default","name":"chat","hosts":["chat.example.com"],)"
      R"("pathPrefix":"/chat","websocketOnly":true,"backends":[{"address":"127.0.0.1:9001",)"
      R"("weight":1,"tls":false,"caFile":"","serverName":""}],"allowedOrigins":[],)"
      R"("subprotocols":[],"maxTunnels":0,"idleTimeoutSeconds":0,"handshakeTimeoutSeconds":10,)"
      R"("maxLifetimeSeconds":0,"pingIntervalSeconds":0,"handshakesPerSecond":0,)"
      R"("maxMessageBytes":9223372036854775807}]})");
}

TEST(RouteTable, ConfigJsonCarriesVersionRoutesAndSources) {
  const RouteTable table({make_route("default", "b"), make_route("default", "a")});
  const boost::json::value doc = boost::json::parse(config_json(table));
  EXPECT_EQ(doc.at("version").as_string(), table.version());
  const auto& routes = doc.at("routes").as_array();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].at("name").as_string(), "a");
  EXPECT_EQ(routes[0].at("source").as_string(), "routes/a.yaml");
  EXPECT_EQ(routes[1].at("backends").as_array()[0].at("address").as_string(), "127.0.0.1:9001");
  EXPECT_EQ(routes[1].at("handshakeTimeoutSeconds").as_int64(), 10);
}

}  // namespace
}  // namespace wsgate::config
