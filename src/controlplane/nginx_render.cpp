#include "controlplane/nginx_render.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace wsgate::controlplane {
namespace {

// One (route, host, prefix) the way src/proxy/router.cpp ranks them: longer prefix first, then
// exact host (2) over wildcard (1) over any host (0), then the longer host, then route id.
struct Entry {
  std::size_t route;
  std::string prefix;
  std::string host;
  int rank;
};

std::vector<Entry> router_entries(const config::RouteTable& table) {
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < table.routes().size(); ++i) {
    const auto& route = table.routes()[i];
    if (route.hosts.empty()) entries.push_back(Entry{i, route.path_prefix, "", 0});
    for (const auto& host : route.hosts) {
      entries.push_back(Entry{i, route.path_prefix, host, host.starts_with("*.") ? 1 : 2});
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.prefix.size() != b.prefix.size()) return a.prefix.size() > b.prefix.size();
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.host.size() > b.host.size();
  });
  return entries;
}

// Whether `entry` answers every request nginx sends to the server block named `server` ("" =
// the default server, which gets requests for hosts no block names). nginx picks an exact
// server_name first, then the longest wildcard, like wsgate.
bool serves(const Entry& entry, const std::string& server) {
  if (entry.rank == 0) return true;
  if (server.empty()) return false;
  const std::string_view suffix = std::string_view(entry.host).substr(1);  // ".example.com"
  if (server.starts_with("*.")) {
    return entry.rank == 1 && std::string_view(server).substr(1).ends_with(suffix);
  }
  if (entry.rank == 2) return entry.host == server;
  return server.size() > suffix.size() && server.ends_with(suffix);
}

std::string quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A PCRE literal inside a quoted nginx string: PCRE metacharacters get a backslash (which
// nginx passes through), and a double quote or backslash is escaped for nginx first.
std::string regex_literal(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"') {
      out += "\\\"";  // nginx reads \" as ", which PCRE takes literally
    } else if (c == '\\') {
      out += "\\\\\\\\";  // nginx reads \\\\ as \\, which PCRE reads as one backslash
    } else {
      if (std::string_view(".^$|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
      out += c;
    }
  }
  return out;
}

// A regex map key: `pattern` is already nginx-escaped (regex_literal), so only wrapped.
std::string quote_regex(const std::string& pattern) {
  return "\"" + pattern + "\"";
}

std::string alternatives(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "|") + regex_literal(item);
  return "(?:" + out + ")";
}

// Text for a comment line: a file name with a newline must not end the comment.
std::string comment_text(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

std::string route_tag(const config::RouteTable& table, std::size_t index) {
  std::string id = table.routes()[index].id();
  for (char& c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) c = '_';
  }
  // The index keeps tags unique where ids differ only in punctuation.
  return "wsgate_r" + std::to_string(index) + "_" + id;
}

bool has_limits(const config::Route& route) {
  return route.max_tunnels > 0 || route.handshakes_per_second > 0;
}

std::optional<RenderError> check_backends(const config::Route& route) {
  const auto& first = route.backends.front();
  const auto server_name = [](const config::Backend& b) {
    return b.server_name.empty() ? b.host : b.server_name;
  };
  for (const auto& backend : route.backends) {
    const std::string where = "route " + route.id() + ": spec.backends: ";
    if (backend.tls != first.tls)
      return RenderError{where + "nginx cannot mix tls and plain backends in one route"};
    if (backend.tls && backend.ca_file != first.ca_file)
      return RenderError{where + "nginx needs one caFile for all tls backends of a route"};
    if (backend.tls && server_name(backend) != server_name(first))
      return RenderError{where +
                         "nginx verifies one name for all tls backends of a route: set the "
                         "same serverName on each"};
  }
  return std::nullopt;
}

const char kPreamble[] =
    R"nginx(# Include this file inside http { }. Regenerate it rather than edit it.
#
# Where nginx cannot do what wsgate does:
#  - idleTimeoutSeconds 0 (never) becomes 86400s, and an idle tunnel is cut without close frame;
#  - handshakeTimeoutSeconds bounds the backend connect (proxy_connect_timeout) only;
#  - maxLifetimeSeconds, pingIntervalSeconds and maxMessageBytes are not enforced;
#  - 429 and 503 answers carry no Retry-After.

# A WebSocket upgrade: Upgrade lists the websocket token.
map $http_upgrade $wsgate_websocket {
    default 0;
    "~*(?:^|,)[ \t]*websocket[ \t]*(?:,|$)" 1;
}
# Connection for the backend: "upgrade" for upgrades, and "" (not "close") for plain requests
# so that upstream keep-alive connections are reused.
map $http_upgrade $wsgate_connection_upgrade {
    default upgrade;
    "" "";
}
# Broken handshakes answered by nginx as wsgate answers them (400, or 426 for the version).
map "$wsgate_websocket:$request_method:$server_protocol" $wsgate_bad_request_line {
    default 0;
    "~^1:GET:HTTP/1\.1$" 0;
    "~^1:" 1;
}
map "$wsgate_websocket:$http_connection" $wsgate_no_upgrade_token {
    default 0;
    "~*^1:(?:.*,)?[ \t]*upgrade[ \t]*(?:,.*)?$" 0;
    "~^1:" 1;
}
map "$wsgate_websocket:$http_sec_websocket_key" $wsgate_bad_key {
    default 0;
    "~^1:[ \t]*[A-Za-z0-9+/]{21}[AQgw]==[ \t]*$" 0;
    "~^1:" 1;
}
map "$wsgate_bad_request_line$wsgate_no_upgrade_token$wsgate_bad_key" $wsgate_bad_handshake {
    default 1;
    "000" 0;
}
map "$wsgate_websocket:$http_sec_websocket_version" $wsgate_bad_version {
    default 0;
    "~^1:[ \t]*13[ \t]*$" 0;
    "~^1:" 1;
}
)nginx";

class Renderer {
 public:
  Renderer(const config::RouteTable& table, const NginxRenderOptions& options)
      : table_(table), options_(options) {}

  std::variant<std::string, RenderError> render() {
    for (const auto& route : table_.routes()) {
      if (auto error = check_backends(route)) return *error;
    }
    out_ = "# Generated by wsgate-controller render nginx from routes version " + table_.version() +
           " (" + std::to_string(table_.routes().size()) + " routes).\n";
    out_ += kPreamble;
    std::set<std::string> servers;
    std::size_t longest = 0;
    for (const auto& route : table_.routes()) {
      for (const auto& host : route.hosts) {
        servers.insert(host);
        longest = std::max(longest, host.size());
      }
    }
    // nginx's default bucket (one 64-byte cache line) fits names up to 46 characters.
    if (longest > 46) {
      std::size_t bucket = 64;
      while (bucket < longest + 24) bucket *= 2;
      out_ += "server_names_hash_bucket_size " + std::to_string(bucket) + ";\n";
    }
    for (std::size_t i = 0; i < table_.routes().size(); ++i) route_blocks(i);
    const auto entries = router_entries(table_);
    for (const auto& server : servers) server_block(entries, server);
    server_block(entries, "");
    return std::move(out_);
  }

 private:
  void route_blocks(std::size_t index) {
    const auto& route = table_.routes()[index];
    const std::string tag = route_tag(table_, index);
    out_ += "\n# route " + route.id() +
            (route.source.empty() ? "" : " (" + comment_text(route.source) + ")") + "\nupstream " +
            tag + " {\n";
    for (const auto& backend : route.backends) {
      out_ += "    server " + backend.address + " weight=" + std::to_string(backend.weight) + ";\n";
    }
    out_ += "    keepalive " + std::to_string(options_.upstream_keepalive) + ";\n}\n";
    if (!route.allowed_origins.empty()) {
      // Only upgrades are checked, and a missing Origin is refused too.
      out_ += "map \"$wsgate_websocket:$http_origin\" $" + tag +
              "_origin_denied {\n    default 0;\n    " +
              quote_regex("~*^1:[ \\t]*" + alternatives(route.allowed_origins) + "[ \\t]*$") +
              " 0;\n    \"~^1:\" 1;\n}\n";
    }
    if (!route.subprotocols.empty()) {
      out_ += "map \"$wsgate_websocket:$http_sec_websocket_protocol\" $" + tag +
              "_subprotocol_missing {\n    default 0;\n    " +
              quote_regex("~*^1:(?:.*,)?[ \\t]*" + alternatives(route.subprotocols) +
                          "[ \\t]*(?:,.*)?$") +
              " 0;\n    \"~^1:\" 1;\n}\n";
    }
    if (has_limits(route)) {
      // Counted per route, for upgrades only (an empty key is not counted).
      out_ +=
          "map $wsgate_websocket $" + tag + "_key {\n    1 " + tag + ";\n    default \"\";\n}\n";
      if (route.handshakes_per_second > 0)
        out_ += "limit_req_zone $" + tag + "_key zone=" + tag +
                "_handshakes:1m rate=" + std::to_string(route.handshakes_per_second) + "r/s;\n";
      if (route.max_tunnels > 0)
        out_ += "limit_conn_zone $" + tag + "_key zone=" + tag + "_tunnels:1m;\n";
    }
  }

  void server_block(const std::vector<Entry>& entries, const std::string& server) {
    std::map<std::string, std::size_t> locations;  // prefix -> the route that wins it
    for (const auto& entry : entries) {
      if (serves(entry, server)) locations.emplace(entry.prefix, entry.route);
    }
    out_ += "\nserver {\n";
    for (const auto& listen : options_.listen) {
      out_ += "    listen " + listen + (server.empty() ? " default_server" : "") + ";\n";
    }
    out_ += "    server_name " + (server.empty() ? std::string("_") : server) + ";\n";
    if (!locations.contains("/")) {
      out_ += "\n    location / {\n        return 404 \"no route for host and path\\n\";\n    }\n";
    }
    for (const auto& [prefix, route] : locations) location(prefix, route);
    out_ += "}\n";
  }

  void location(const std::string& prefix, std::size_t index) {
    const auto& route = table_.routes()[index];
    const std::string tag = route_tag(table_, index);
    std::string& o = out_;
    o += "\n    location " + quote(prefix) + " {\n        # route " + route.id() + "\n";
    if (route.websocket_only) {
      o += "        if ($wsgate_websocket = 0) {\n"
           "            add_header Upgrade websocket always;\n"
           "            return 426 \"this route only accepts WebSocket upgrades\\n\";\n"
           "        }\n";
    }
    o += "        if ($wsgate_bad_handshake) {\n"
         "            return 400 \"broken WebSocket handshake\\n\";\n"
         "        }\n"
         "        if ($wsgate_bad_version) {\n"
         "            add_header Sec-WebSocket-Version 13 always;\n"
         "            return 426 \"Sec-WebSocket-Version must be 13\\n\";\n"
         "        }\n";
    if (!route.allowed_origins.empty()) {
      o += "        if ($" + tag + "_origin_denied) {\n" +
           "            return 403 \"Origin not allowed\\n\";\n        }\n";
    }
    if (!route.subprotocols.empty()) {
      o += "        if ($" + tag + "_subprotocol_missing) {\n" +
           "            return 400 \"none of the route's subprotocols offered\\n\";\n        }\n";
    }
    if (route.handshakes_per_second > 0) {
      // nginx's burst counts requests beyond the first: capacity = handshakesPerSecond.
      o += "        limit_req zone=" + tag +
           "_handshakes burst=" + std::to_string(route.handshakes_per_second - 1) + " nodelay;\n" +
           "        limit_req_status 429;\n";
    }
    if (route.max_tunnels > 0) {
      o += "        limit_conn " + tag + "_tunnels " + std::to_string(route.max_tunnels) + ";\n" +
           "        limit_conn_status 503;\n";
    }
    const auto& backend = route.backends.front();
    const std::uint32_t idle =
        route.idle_timeout_seconds == 0 ? kNginxNoIdleTimeoutSeconds : route.idle_timeout_seconds;
    o += "        proxy_pass " + std::string(backend.tls ? "https://" : "http://") + tag + ";\n" +
         "        proxy_http_version 1.1;\n"
         "        proxy_set_header Host $http_host;\n"
         "        proxy_set_header Upgrade $http_upgrade;\n"
         "        proxy_set_header Connection $wsgate_connection_upgrade;\n"
         "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         "        proxy_set_header X-Forwarded-Proto $scheme;\n"
         "        proxy_set_header X-Forwarded-Host $http_host;\n"
         "        proxy_connect_timeout " +
         std::to_string(route.handshake_timeout_seconds) + "s;\n" + "        proxy_read_timeout " +
         std::to_string(idle) + "s;\n" + "        proxy_send_timeout " + std::to_string(idle) +
         "s;\n" +
         "        proxy_buffering off;\n"
         "        proxy_request_buffering off;\n";
    if (backend.tls) {
      // With an upstream block nginx would send the block's name as SNI: name the backend.
      const std::string name = backend.server_name.empty() ? backend.host : backend.server_name;
      o += "        proxy_ssl_server_name on;\n        proxy_ssl_name " + quote(name) + ";\n" +
           "        proxy_ssl_verify on;\n        proxy_ssl_verify_depth 8;\n" +
           "        proxy_ssl_trusted_certificate " +
           quote(backend.ca_file.empty() ? options_.system_ca : backend.ca_file) + ";\n" +
           "        proxy_ssl_protocols TLSv1.2 TLSv1.3;\n";
    }
    o += "    }\n";
  }

  const config::RouteTable& table_;
  const NginxRenderOptions& options_;
  std::string out_;
};

}  // namespace

std::variant<std::string, RenderError> render_nginx(const config::RouteTable& table,
                                                    const NginxRenderOptions& options) {
  return Renderer(table, options).render();
}

}  // namespace wsgate::controlplane
