#pragma once
// Request -> route matching over one RouteTable: longest path prefix first, then exact host
// over wildcard ("*.example.com", longer suffix first) over any-host routes.

#include <string>
#include <string_view>
#include <vector>

#include "config/route.hpp"

namespace wsgate::proxy {

class Router {
 public:
  // The table must outlive the router (both live in one Snapshot).
  explicit Router(const config::RouteTable& table);

  // host: the Host header as received (any case, may carry ":port", may be an [IPv6]:port);
  // target: the request-target (origin form; the query string is ignored). A path prefix is
  // a plain string prefix ("/ws" also matches "/wsx"), as nginx's prefix locations are.
  // Returns nullptr when no route matches. Does not allocate.
  const config::Route* match(std::string_view host, std::string_view target) const;

 private:
  struct Entry {
    const config::Route* route;
    std::string_view path_prefix;  // route->path_prefix, kept here to scan without a hop
    std::string host;              // lower-case; "" = any host; "*.x.com" kept with the star
    int host_rank;                 // 2 exact, 1 wildcard, 0 any
  };
  static bool host_matches(const Entry& entry, std::string_view host);
  std::vector<Entry> entries_;  // sorted so that the first match is the best one
};

// Lower-cases the host and strips a trailing ":port", the brackets of an IPv6 literal and the
// trailing dot of a fully qualified name ("Example.COM.:443" -> "example.com", "[::1]:80" ->
// "::1").
std::string normalize_host(std::string_view host_header);

}  // namespace wsgate::proxy
