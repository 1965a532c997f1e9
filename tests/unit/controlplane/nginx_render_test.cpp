// The nginx renderer: the directives that make WebSocket proxying right, route policy as nginx
// answers, and server/location layout that picks the route wsgate's router would pick.
// (tests/integration/test_nginx_render.py runs the output on a real nginx.)
#include "controlplane/nginx_render.hpp"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "controlplane_test_util.hpp"

namespace wsgate::controlplane {
namespace {

std::string render(const std::string& yaml, NginxRenderOptions options = {}) {
  auto result = render_nginx(test::table_from(yaml), options);
  if (auto* error = std::get_if<RenderError>(&result)) {
    ADD_FAILURE() << "render failed: " << error->message;
    return "";
  }
  return std::get<std::string>(result);
}

std::string render_error(const std::string& yaml) {
  auto result = render_nginx(test::table_from(yaml), {});
  if (auto* error = std::get_if<RenderError>(&result)) return error->message;
  return "";
}

// The text of the server block whose server_name is `name` ("_" = the default server).
std::string server_block(const std::string& text, const std::string& name) {
  std::size_t at = 0;
  while ((at = text.find("\nserver {\n", at)) != std::string::npos) {
    const std::size_t end = text.find("\n}\n", at + 1);
    const std::string block = text.substr(at, end - at);
    if (block.find("    server_name " + name + ";\n") != std::string::npos) return block;
    at = end;
  }
  return "";
}

// The location blocks of a server block: prefix -> route id ("404" for the no-route default).
std::map<std::string, std::string> locations(const std::string& block) {
  std::map<std::string, std::string> out;
  std::istringstream lines(block);
  std::string line;
  std::string prefix;
  while (std::getline(lines, line)) {
    if (line.starts_with("    location \"")) {
      prefix = line.substr(14, line.rfind('"') - 14);
      out[prefix] = "?";
    } else if (line.starts_with("    location / {")) {
      prefix = "/";
      out[prefix] = "404";
    } else if (line.starts_with("        # route ") && !prefix.empty()) {
      out[prefix] = line.substr(16);
    }
  }
  return out;
}

// The location block text for `prefix` inside a server block.
std::string location_block(const std::string& block, const std::string& prefix) {
  const std::size_t at = block.find("    location \"" + prefix + "\" {");
  if (at == std::string::npos) return "";
  return block.substr(at, block.find("\n    }\n", at) - at);
}

const std::string kEcho = test::route("echo",
                                      "  pathPrefix: /echo\n  backends:\n"
                                      "    - address: 127.0.0.1:9001\n");

TEST(NginxRender, ConnectionHeaderKeepsUpstreamKeepAliveForPlainRequests) {
  const auto text = render(kEcho);
  EXPECT_NE(text.find("map $http_upgrade $wsgate_connection_upgrade {\n    default upgrade;\n"
                      "    \"\" \"\";\n}"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find(" close;"), std::string::npos) << "plain requests must not get close";
  EXPECT_NE(text.find("    keepalive 32;\n"), std::string::npos);
}

TEST(NginxRender, LocationForwardsTheUpgradeAndTheClientsIdentity) {
  const auto loc = location_block(server_block(render(kEcho), "_"), "/echo");
  for (const char* directive : {
           "proxy_pass http://wsgate_r0_default_echo;",
           "proxy_http_version 1.1;",
           "proxy_set_header Host $http_host;",
           "proxy_set_header Upgrade $http_upgrade;",
           "proxy_set_header Connection $wsgate_connection_upgrade;",
           "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
           "proxy_set_header X-Forwarded-Proto $scheme;",
           "proxy_set_header X-Forwarded-Host $http_host;",
       }) {
    EXPECT_NE(loc.find(directive), std::string::npos) << directive << "\n" << loc;
  }
}

TEST(NginxRender, TimeoutsComeFromTheRoute) {
  const auto never = location_block(server_block(render(kEcho), "_"), "/echo");
  EXPECT_NE(never.find("proxy_read_timeout 86400s;"), std::string::npos) << never;
  EXPECT_NE(never.find("proxy_send_timeout 86400s;"), std::string::npos);
  EXPECT_NE(never.find("proxy_connect_timeout 10s;"), std::string::npos);

  const auto set = location_block(
      server_block(render(test::route("echo",
                                      "  pathPrefix: /echo\n  idleTimeoutSeconds: 45\n"
                                      "  handshakeTimeoutSeconds: 7\n  backends:\n"
                                      "    - address: 127.0.0.1:9001\n")),
                   "_"),
      "/echo");
  EXPECT_NE(set.find("proxy_read_timeout 45s;"), std::string::npos) << set;
  EXPECT_NE(set.find("proxy_send_timeout 45s;"), std::string::npos);
  EXPECT_NE(set.find("proxy_connect_timeout 7s;"), std::string::npos);
}

TEST(NginxRender, WeightedUpstream) {
  const auto text = render(test::route("chat",
                                       "  backends:\n"
                                       "    - {address: 127.0.0.1:9001, weight: 3}\n"
                                       "    - {address: '[::1]:9002'}\n"));
  EXPECT_NE(text.find("upstream wsgate_r0_default_chat {\n"
                      "    server 127.0.0.1:9001 weight=3;\n"
                      "    server [::1]:9002 weight=1;\n"),
            std::string::npos)
      << text;
}

TEST(NginxRender, WebSocketOnlyAnswers426WithUpgradeHeader) {
  const auto only = location_block(server_block(render(kEcho), "_"), "/echo");
  EXPECT_NE(only.find("if ($wsgate_websocket = 0) {\n            add_header Upgrade websocket "
                      "always;\n            return 426"),
            std::string::npos)
      << only;
  const auto both = location_block(
      server_block(render(test::route("web",
                                      "  pathPrefix: /web\n  websocketOnly: false\n"
                                      "  backends:\n    - address: 127.0.0.1:9001\n")),
                   "_"),
      "/web");
  EXPECT_EQ(both.find("return 426 \"this route"), std::string::npos) << both;
  // Broken upgrades are refused on every route.
  EXPECT_NE(both.find("if ($wsgate_bad_handshake)"), std::string::npos);
  EXPECT_NE(both.find("add_header Sec-WebSocket-Version 13 always;"), std::string::npos);
}

TEST(NginxRender, AllowedOriginsAnswer403) {
  const auto text =
      render(test::route("chat",
                         "  allowedOrigins: ['https://Chat.example.com', 'http://localhost:8080']\n"
                         "  backends:\n    - address: 127.0.0.1:9001\n"));
  EXPECT_NE(text.find("map \"$wsgate_websocket:$http_origin\" $wsgate_r0_default_chat_origin_denied"
                      " {\n    default 0;\n    \"~*^1:[ \\t]*(?:https://chat\\.example\\.com|"
                      "http://localhost:8080)[ \\t]*$\" 0;\n    \"~^1:\" 1;\n}"),
            std::string::npos)
      << text;
  const auto loc = server_block(text, "_");
  EXPECT_NE(loc.find("if ($wsgate_r0_default_chat_origin_denied) {\n"
                     "            return 403"),
            std::string::npos)
      << loc;
}

TEST(NginxRender, SubprotocolsAndLimits) {
  const auto text = render(test::route("chat",
                                       "  subprotocols: [chat.v1]\n  maxTunnels: 5\n"
                                       "  handshakesPerSecond: 20\n  backends:\n"
                                       "    - address: 127.0.0.1:9001\n"));
  EXPECT_NE(text.find("(?:chat\\.v1)"), std::string::npos) << text;
  EXPECT_NE(text.find("limit_req_zone $wsgate_r0_default_chat_key "
                      "zone=wsgate_r0_default_chat_handshakes:1m rate=20r/s;"),
            std::string::npos);
  EXPECT_NE(text.find("limit_req zone=wsgate_r0_default_chat_handshakes burst=19 nodelay;"),
            std::string::npos);
  EXPECT_NE(text.find("limit_conn wsgate_r0_default_chat_tunnels 5;"), std::string::npos);
  EXPECT_NE(text.find("limit_req_status 429;"), std::string::npos);
  EXPECT_NE(text.find("limit_conn_status 503;"), std::string::npos);
}

TEST(NginxRender, TlsBackendsVerifyTheBackendsName) {
  const auto text = render(
      test::route("secure", "  backends:\n    - {address: 'backend.internal:9443', tls: true}\n"));
  const auto loc = server_block(text, "_");
  EXPECT_NE(loc.find("proxy_pass https://wsgate_r0_default_secure;"), std::string::npos) << loc;
  EXPECT_NE(loc.find("proxy_ssl_server_name on;"), std::string::npos);
  EXPECT_NE(loc.find("proxy_ssl_name \"backend.internal\";"), std::string::npos);
  EXPECT_NE(loc.find("proxy_ssl_verify on;"), std::string::npos);
  EXPECT_NE(loc.find("proxy_ssl_trusted_certificate \"/etc/ssl/certs/ca-certificates.crt\";"),
            std::string::npos);

  const auto custom =
      server_block(render(test::route("secure",
                                      "  backends:\n    - {address: '10.0.0.1:9443', tls: true, "
                                      "caFile: /etc/wsgate/ca.pem, serverName: api.internal}\n"
                                      "    - {address: '10.0.0.2:9443', tls: true, "
                                      "caFile: /etc/wsgate/ca.pem, serverName: api.internal}\n")),
                   "_");
  EXPECT_NE(custom.find("proxy_ssl_name \"api.internal\";"), std::string::npos) << custom;
  EXPECT_NE(custom.find("proxy_ssl_trusted_certificate \"/etc/wsgate/ca.pem\";"),
            std::string::npos);
}

TEST(NginxRender, WhatNginxCannotExpressIsAnErrorNamingTheRoute) {
  EXPECT_EQ(render_error(test::route("mixed",
                                     "  backends:\n    - address: 127.0.0.1:9001\n"
                                     "    - {address: '127.0.0.1:9443', tls: true}\n")),
            "route default/mixed: spec.backends: nginx cannot mix tls and plain backends in one "
            "route");
  EXPECT_NE(render_error(test::route("names",
                                     "  backends:\n"
                                     "    - {address: 'a.internal:9443', tls: true}\n"
                                     "    - {address: 'b.internal:9443', tls: true}\n"))
                .find("route default/names: spec.backends: nginx verifies one name"),
            std::string::npos);
  EXPECT_NE(render_error(test::route("cas",
                                     "  backends:\n"
                                     "    - {address: 'a:1', tls: true, caFile: /x.pem}\n"
                                     "    - {address: 'a:2', tls: true, caFile: /y.pem}\n"))
                .find("one caFile"),
            std::string::npos);
}

TEST(NginxRender, HostsBecomeServerBlocksThatPickTheRoutersWinner) {
  const auto text = render(
      test::route("any-root", "  pathPrefix: /\n  backends:\n    - address: 127.0.0.1:9001\n") +
      test::route("any-ws", "  pathPrefix: /ws\n  backends:\n    - address: 127.0.0.1:9001\n") +
      test::route("chat-ws",
                  "  hosts: [chat.example.com]\n  pathPrefix: /ws\n  backends:\n"
                  "    - address: 127.0.0.1:9002\n") +
      test::route("wild-api",
                  "  hosts: ['*.example.com']\n  pathPrefix: /api\n  backends:\n"
                  "    - address: 127.0.0.1:9003\n") +
      test::route("wild-ws",
                  "  hosts: ['*.example.com']\n  pathPrefix: /ws\n  backends:\n"
                  "    - address: 127.0.0.1:9003\n"));
  using Locations = std::map<std::string, std::string>;
  // Exact host: its own /ws beats the wildcard's and the any-host one; the wildcard's /api and
  // the any-host / still apply to it.
  EXPECT_EQ(
      locations(server_block(text, "chat.example.com")),
      (Locations{
          {"/", "default/any-root"}, {"/api", "default/wild-api"}, {"/ws", "default/chat-ws"}}));
  EXPECT_EQ(
      locations(server_block(text, "*.example.com")),
      (Locations{
          {"/", "default/any-root"}, {"/api", "default/wild-api"}, {"/ws", "default/wild-ws"}}));
  EXPECT_EQ(locations(server_block(text, "_")),
            (Locations{{"/", "default/any-root"}, {"/ws", "default/any-ws"}}));
  EXPECT_NE(server_block(text, "_").find("listen 80 default_server;"), std::string::npos);
}

TEST(NginxRender, ServerWithoutRootRouteAnswers404) {
  const auto block = server_block(render(kEcho), "_");
  EXPECT_EQ(locations(block),
            (std::map<std::string, std::string>{{"/", "404"}, {"/echo", "default/echo"}}));
  EXPECT_NE(block.find("return 404"), std::string::npos);
}

TEST(NginxRender, ListenParametersAndOddPrefixesAreQuoted) {
  NginxRenderOptions options;
  options.listen = {"127.0.0.1:8080", "[::1]:8080"};
  const auto text = render(test::route("odd",
                                       "  pathPrefix: '/a\"b{c;'\n  backends:\n"
                                       "    - address: 127.0.0.1:9001\n"),
                           options);
  EXPECT_NE(text.find("    location \"/a\\\"b{c;\" {\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    listen 127.0.0.1:8080 default_server;\n"
                      "    listen [::1]:8080 default_server;\n"),
            std::string::npos);
}

TEST(NginxRender, LongHostNamesGetABiggerHashBucket) {
  const std::string host(60, 'a');
  const auto text = render(test::route("long", "  hosts: [" + host +
                                                   ".example.com]\n"
                                                   "  backends:\n    - address: 127.0.0.1:9001\n"));
  EXPECT_NE(text.find("server_names_hash_bucket_size 128;\n"), std::string::npos) << text;
  EXPECT_EQ(render(kEcho).find("server_names_hash_bucket_size"), std::string::npos);
}

TEST(NginxRender, SameTableSameTextAndItNamesTheVersion) {
  const auto table = test::table_from(kEcho);
  const auto a = render(kEcho);
  EXPECT_EQ(a, render(kEcho));
  EXPECT_NE(a.find("routes version " + table.version()), std::string::npos);
}

}  // namespace
}  // namespace wsgate::controlplane
