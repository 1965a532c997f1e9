#include "proxy/routing/router.hpp"

#include <gtest/gtest.h>

namespace wsgate::proxy {
namespace {

config::Route route(std::string name, std::vector<std::string> hosts, std::string prefix) {
  config::Route r;
  r.name = std::move(name);
  r.hosts = std::move(hosts);
  r.path_prefix = std::move(prefix);
  config::Backend backend;
  backend.address = "127.0.0.1:9001";
  backend.host = "127.0.0.1";
  backend.port = 9001;
  r.backends.push_back(backend);
  return r;
}

// The name of the matched route, or "-" when none matches.
std::string matched(const Router& router, std::string_view host, std::string_view target) {
  const config::Route* r = router.match(host, target);
  return r == nullptr ? "-" : r->name;
}

TEST(NormalizeHost, LowerCasesAndStripsPortBracketsAndRootDot) {
  EXPECT_EQ(normalize_host("Chat.Example.COM"), "chat.example.com");
  EXPECT_EQ(normalize_host("chat.example.com:8443"), "chat.example.com");
  EXPECT_EQ(normalize_host("example.com."), "example.com");
  EXPECT_EQ(normalize_host("EXAMPLE.com.:443"), "example.com");
  EXPECT_EQ(normalize_host("[::1]:8080"), "::1");
  EXPECT_EQ(normalize_host("[::1]"), "::1");
  EXPECT_EQ(normalize_host("[FE80::A]:80"), "fe80::a");
  EXPECT_EQ(normalize_host("127.0.0.1:80"), "127.0.0.1");
  EXPECT_EQ(normalize_host("::1"), "::1");  // unbracketed: no port to strip
  EXPECT_EQ(normalize_host(""), "");
  EXPECT_EQ(normalize_host(":80"), "");
}

TEST(Router, LongestPathPrefixWinsOverHostRank) {
  const config::RouteTable table({route("any-long", {}, "/ws/chat"),
                                  route("exact-short", {"chat.example.com"}, "/ws"),
                                  route("root", {}, "/")});
  const Router router(table);
  EXPECT_EQ(matched(router, "chat.example.com", "/ws/chat/room"), "any-long");
  EXPECT_EQ(matched(router, "chat.example.com", "/ws/other"), "exact-short");
  EXPECT_EQ(matched(router, "other.example.com", "/ws/other"), "root");
  EXPECT_EQ(matched(router, "other.example.com", "/"), "root");
}

TEST(Router, SamePrefixExactBeatsWildcardBeatsAnyHost) {
  const config::RouteTable table({route("any", {}, "/ws"), route("wild", {"*.example.com"}, "/ws"),
                                  route("exact", {"chat.example.com"}, "/ws")});
  const Router router(table);
  EXPECT_EQ(matched(router, "chat.example.com", "/ws"), "exact");
  EXPECT_EQ(matched(router, "news.example.com", "/ws"), "wild");
  EXPECT_EQ(matched(router, "example.org", "/ws"), "any");
  EXPECT_EQ(matched(router, "example.com", "/ws"), "any");  // a wildcard needs a label more
}

TEST(Router, ExactBeatsAnEquallyLongWildcardListedFirst) {
  // Same prefix, same host length, the wildcard first by id: rank alone decides.
  const config::RouteTable table(
      {route("a-wild", {"*.example.com"}, "/"), route("b-exact", {"x.example.com"}, "/")});
  EXPECT_EQ(matched(Router(table), "x.example.com", "/"), "b-exact");
  EXPECT_EQ(matched(Router(table), "y.example.com", "/"), "a-wild");
}

TEST(Router, LongerWildcardSuffixWins) {
  // The shorter suffix comes first by id, so only the suffix length can put "long" first.
  const config::RouteTable table(
      {route("a-short", {"*.example.com"}, "/"), route("b-long", {"*.chat.example.com"}, "/")});
  const Router router(table);
  EXPECT_EQ(matched(router, "eu.chat.example.com", "/"), "b-long");
  EXPECT_EQ(matched(router, "a.b.chat.example.com", "/"), "b-long");
  EXPECT_EQ(matched(router, "chat.example.com", "/"), "a-short");
  EXPECT_EQ(matched(router, "a.b.example.com", "/"), "a-short");
  EXPECT_EQ(matched(router, "example.com", "/"), "-");
  EXPECT_EQ(matched(router, ".example.com", "/"), "-");  // the label before must not be empty
  EXPECT_EQ(matched(router, "badexample.com", "/"), "-");
  EXPECT_EQ(matched(router, "a.example.com.evil.net", "/"), "-");
}

TEST(Router, HostsCompareWithoutCasePortOrRootDot) {
  // Route hosts are lower-case after validation; the router does not rely on it.
  const config::RouteTable table({route("chat", {"chat.example.com", "*.Live.Example.com"}, "/")});
  const Router router(table);
  for (std::string_view host :
       {"chat.example.com", "CHAT.Example.Com", "chat.example.com:8080", "chat.example.com.",
        "Chat.Example.Com.:443", "a.LIVE.example.com", "b.c.live.example.com.:1"}) {
    EXPECT_EQ(matched(router, host, "/"), "chat") << host;
  }
  EXPECT_EQ(matched(router, "chat.example.co", "/"), "-");
  EXPECT_EQ(matched(router, "xchat.example.com", "/"), "-");
  EXPECT_EQ(matched(router, "live.example.com", "/"), "-");
}

TEST(Router, Ipv6Hosts) {
  const config::RouteTable table({route("v6", {"::1"}, "/"), route("v4", {"127.0.0.1"}, "/")});
  const Router router(table);
  EXPECT_EQ(matched(router, "[::1]:8080", "/"), "v6");
  EXPECT_EQ(matched(router, "[::1]", "/"), "v6");
  EXPECT_EQ(matched(router, "127.0.0.1:8080", "/"), "v4");
  EXPECT_EQ(matched(router, "[::2]:8080", "/"), "-");
}

TEST(Router, EmptyHostMatchesOnlyAnyHostRoutes) {
  const config::RouteTable with_any(
      {route("exact", {"a.com"}, "/ws"), route("wild", {"*.a.com"}, "/ws"), route("any", {}, "/")});
  EXPECT_EQ(matched(Router(with_any), "", "/ws"), "any");
  EXPECT_EQ(matched(Router(with_any), ":8080", "/ws"), "any");
  const config::RouteTable without_any(
      {route("exact", {"a.com"}, "/"), route("wild", {"*.a.com"}, "/")});
  EXPECT_EQ(matched(Router(without_any), "", "/"), "-");
}

TEST(Router, QueryStringIsIgnored) {
  const config::RouteTable table({route("ws", {}, "/ws"), route("admin", {}, "/admin")});
  const Router router(table);
  EXPECT_EQ(matched(router, "h", "/ws?token=abc"), "ws");
  EXPECT_EQ(matched(router, "h", "/ws/x?next=/admin"), "ws");
  EXPECT_EQ(matched(router, "h", "/?/admin"), "-");
  EXPECT_EQ(matched(router, "h", "/adm?in"), "-");
  EXPECT_EQ(matched(router, "h", "/admin?"), "admin");
}

TEST(Router, QueryIsNeverPartOfTheMatchedPath) {
  // Only a prefix holding a '?' can tell; validation should not let one in, but the router
  // must still compare the path alone.
  const config::RouteTable table({route("odd", {}, "/search?q"), route("root", {}, "/")});
  EXPECT_EQ(matched(Router(table), "h", "/search?q=1"), "root");
}

TEST(Router, PrefixIsAPlainStringPrefix) {
  const config::RouteTable table({route("ws", {}, "/ws"), route("slash", {}, "/ws/")});
  const Router router(table);
  EXPECT_EQ(matched(router, "h", "/ws"), "ws");
  EXPECT_EQ(matched(router, "h", "/wsx"), "ws");
  EXPECT_EQ(matched(router, "h", "/ws/"), "slash");
  EXPECT_EQ(matched(router, "h", "/w"), "-");
  EXPECT_EQ(matched(router, "h", ""), "-");
}

TEST(Router, RouteWithSeveralHostsRanksEachOnItsOwn) {
  // "multi" is exact for b.com but only a wildcard for x.a.com, where "exact" is exact.
  const config::RouteTable table(
      {route("multi", {"*.a.com", "b.com"}, "/"), route("exact", {"x.a.com"}, "/")});
  const Router router(table);
  EXPECT_EQ(matched(router, "x.a.com", "/"), "exact");
  EXPECT_EQ(matched(router, "y.a.com", "/"), "multi");
  EXPECT_EQ(matched(router, "b.com", "/"), "multi");
}

TEST(Router, FullTiesGoToTheFirstRouteById) {
  // Validation should reject these; if they get through, the choice is at least stable.
  const config::RouteTable table({route("zeta", {}, "/ws"), route("alpha", {}, "/ws"),
                                  route("wild-b", {"*.x.com"}, "/"),
                                  route("wild-a", {"*.x.com"}, "/")});
  const Router router(table);
  EXPECT_EQ(matched(router, "h", "/ws"), "alpha");
  EXPECT_EQ(matched(router, "a.x.com", "/"), "wild-a");
}

TEST(Router, FullTiesStayInIdOrderInABigTable) {
  // Enough tied entries that an unstable sort would shuffle them.
  std::vector<config::Route> routes;
  for (int i = 39; i >= 0; --i) {
    routes.push_back(route((i < 10 ? "r0" : "r") + std::to_string(i), {"*.x.com"}, "/"));
  }
  const config::RouteTable table(std::move(routes));
  EXPECT_EQ(matched(Router(table), "a.x.com", "/"), "r00");
}

TEST(Router, EmptyTableMatchesNothing) {
  const config::RouteTable table;
  EXPECT_EQ(Router(table).match("example.com", "/"), nullptr);
}

TEST(Router, ReturnsTheRouteInsideTheTable) {
  const config::RouteTable table({route("a", {"a.com"}, "/"), route("b", {}, "/")});
  const Router router(table);
  EXPECT_EQ(router.match("a.com", "/"), table.find("default/a"));
  EXPECT_EQ(router.match("c.com", "/"), table.find("default/b"));
}

}  // namespace
}  // namespace wsgate::proxy
