// YAML route documents: defaults, every field, multi-document files and every validation
// error, each with its exact message.
#include "config/route_yaml.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "config_test_util.hpp"

namespace wsgate::config {
namespace {

using test::parse_error;
using test::parse_ok;

constexpr const char* kHead =
    "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: chat\n";
constexpr const char* kBackend = "  backends:\n    - address: 127.0.0.1:9001\n";
constexpr const char* kRoute = "routes/chat.yaml: route default/chat: ";
constexpr const char* kDocument = "routes/chat.yaml: document 1: ";
constexpr const char* kSubdomainRule =
    "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending "
    "with a letter or digit, at most 253 characters)";
constexpr const char* kLabelRule =
    "must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a "
    "letter or digit, at most 63 characters)";

// A document whose spec is the valid backend list plus `extra` spec lines.
std::string with_spec(const std::string& extra) {
  return std::string(kHead) + "spec:\n" + kBackend + extra;
}

// A document whose spec has exactly `spec` (no default backend).
std::string spec_only(const std::string& spec) {
  return std::string(kHead) + "spec:\n" + spec;
}

// A document with one backend given by `backend_lines` (each indented by six spaces).
std::string with_backend(const std::string& backend_lines) {
  return std::string(kHead) + "spec:\n  backends:\n    - " + backend_lines;
}

TEST(RouteYaml, MinimalRouteGetsTheDefaults) {
  const auto routes = parse_ok(with_spec(""));
  ASSERT_EQ(routes.size(), 1u);
  const Route& r = routes[0];
  EXPECT_EQ(r.id(), "default/chat");
  EXPECT_TRUE(r.hosts.empty());
  EXPECT_EQ(r.path_prefix, "/");
  EXPECT_TRUE(r.websocket_only);
  ASSERT_EQ(r.backends.size(), 1u);
  EXPECT_EQ(r.backends[0].address, "127.0.0.1:9001");
  EXPECT_EQ(r.backends[0].host, "127.0.0.1");
  EXPECT_EQ(r.backends[0].port, 9001);
  EXPECT_EQ(r.backends[0].weight, 1u);
  EXPECT_FALSE(r.backends[0].tls);
  EXPECT_EQ(r.backends[0].ca_file, "");
  EXPECT_EQ(r.backends[0].server_name, "");
  EXPECT_TRUE(r.allowed_origins.empty());
  EXPECT_TRUE(r.subprotocols.empty());
  EXPECT_EQ(r.max_tunnels, 0u);
  EXPECT_EQ(r.idle_timeout_seconds, 0u);
  EXPECT_EQ(r.handshake_timeout_seconds, 10u);
  EXPECT_EQ(r.max_lifetime_seconds, 0u);
  EXPECT_EQ(r.ping_interval_seconds, 0u);
  EXPECT_EQ(r.handshakes_per_second, 0u);
  EXPECT_EQ(r.max_message_bytes, 0u);
  EXPECT_EQ(r.source, "routes/chat.yaml");
}

TEST(RouteYaml, EveryFieldIsRead) {
  const auto routes = parse_ok(
      "apiVersion: wsgate.dev/v1alpha1\n"
      "kind: WebSocketRoute\n"
      "metadata:\n"
      "  name: chat.v2\n"
      "  namespace: team-a\n"
      "  labels: {app: chat}\n"
      "spec:\n"
      "  hosts: [Chat.Example.com, '*.chat.example.com']\n"
      "  pathPrefix: /ws\n"
      "  websocketOnly: false\n"
      "  backends:\n"
      "    - address: '[::1]:9443'\n"
      "      weight: 1000\n"
      "      tls: true\n"
      "      caFile: /etc/ca.pem\n"
      "      serverName: Backend.internal\n"
      "    - address: backend.svc:80\n"
      "  allowedOrigins: [HTTPS://Chat.example.com, 'http://[::1]:8080']\n"
      "  subprotocols: [chat.v2, mqtt]\n"
      "  maxTunnels: 5\n"
      "  idleTimeoutSeconds: 6\n"
      "  handshakeTimeoutSeconds: 3600\n"
      "  maxLifetimeSeconds: 8\n"
      "  pingIntervalSeconds: 9\n"
      "  handshakesPerSecond: 2147483647\n"
      "  maxMessageBytes: 9223372036854775807\n");
  ASSERT_EQ(routes.size(), 1u);
  const Route& r = routes[0];
  EXPECT_EQ(r.id(), "team-a/chat.v2");
  EXPECT_EQ(r.hosts, (std::vector<std::string>{"chat.example.com", "*.chat.example.com"}));
  EXPECT_EQ(r.path_prefix, "/ws");
  EXPECT_FALSE(r.websocket_only);
  ASSERT_EQ(r.backends.size(), 2u);
  EXPECT_EQ(r.backends[0].address, "[::1]:9443");
  EXPECT_EQ(r.backends[0].host, "::1");
  EXPECT_EQ(r.backends[0].port, 9443);
  EXPECT_EQ(r.backends[0].weight, 1000u);
  EXPECT_TRUE(r.backends[0].tls);
  EXPECT_EQ(r.backends[0].ca_file, "/etc/ca.pem");
  EXPECT_EQ(r.backends[0].server_name, "backend.internal");
  EXPECT_EQ(r.backends[1].host, "backend.svc");
  EXPECT_EQ(r.backends[1].port, 80);
  EXPECT_EQ(r.allowed_origins,
            (std::vector<std::string>{"https://chat.example.com", "http://[::1]:8080"}));
  EXPECT_EQ(r.subprotocols, (std::vector<std::string>{"chat.v2", "mqtt"}));
  EXPECT_EQ(r.max_tunnels, 5u);
  EXPECT_EQ(r.idle_timeout_seconds, 6u);
  EXPECT_EQ(r.handshake_timeout_seconds, 3600u);
  EXPECT_EQ(r.max_lifetime_seconds, 8u);
  EXPECT_EQ(r.ping_interval_seconds, 9u);
  EXPECT_EQ(r.handshakes_per_second, 2147483647u);
  EXPECT_EQ(r.max_message_bytes, 9223372036854775807u);
}

// The example in SPEC.md, comments and all, is a valid route (empty caFile/serverName with
// tls: false included).
TEST(RouteYaml, SpecExampleDocumentIsValid) {
  const auto routes = parse_ok(R"(apiVersion: wsgate.dev/v1alpha1
kind: WebSocketRoute
metadata:
  name: chat                 # required; with namespace, the route's id "namespace/name"
  namespace: default         # optional, default "default"
spec:
  hosts: ["chat.example.com", "*.chat.example.com"]  # optional; none = any host
  pathPrefix: /ws            # optional, default "/"; longest prefix wins, then exact host over wildcard
  websocketOnly: true        # optional, default true; false also proxies plain HTTP requests
  backends:                  # required, at least one
    - address: 127.0.0.1:9001   # host:port (IPv4, [IPv6] or DNS name)
      weight: 1                 # optional, default 1
      tls: false                # optional: true = wss/https to the backend
      caFile: ""                # optional, with tls: CA bundle to verify it (default: system store)
      serverName: ""            # optional, with tls: SNI and name to verify (default: the host)
  allowedOrigins: []         # optional; non-empty = Origin must match one exactly, else 403
                             # (a request with no Origin is refused too)
  subprotocols: []           # optional; non-empty = client must offer one of them, else 400
  maxTunnels: 0              # optional; 0 = unlimited, else 503 with Retry-After past it
  idleTimeoutSeconds: 0      # optional; 0 = never; an idle tunnel is closed with close code 1001
  handshakeTimeoutSeconds: 10  # optional: backend connect + its response to the upgrade
  maxLifetimeSeconds: 0      # optional; 0 = none; a tunnel older than this is closed with 1001
  pingIntervalSeconds: 0     # optional; 0 = off; the proxy pings each side and closes dead peers
  handshakesPerSecond: 0     # optional; 0 = unlimited; token bucket, 429 with Retry-After past it
  maxMessageBytes: 0         # optional; 0 = unlimited; larger message: 1009 to sender, 1001 to peer
)");
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].path_prefix, "/ws");
}

TEST(RouteYaml, SeveralDocumentsPerFileAndEmptyDocumentsAreSkipped) {
  const std::string text = "# leading comment\n---\n" + test::route_doc("a") + "---\n" +
                           "# a document with only a comment\n---\n---\n" +
                           test::route_doc("b", "/b") + "...\n";
  const auto routes = parse_ok(text);
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].name, "a");
  EXPECT_EQ(routes[1].name, "b");
  EXPECT_EQ(routes[1].path_prefix, "/b");
}

TEST(RouteYaml, EmptyTextHasNoRoutes) {
  EXPECT_TRUE(parse_ok("").empty());
  EXPECT_TRUE(parse_ok("# nothing here\n").empty());
}

TEST(RouteYaml, DocumentNumberCountsFromOneInTheFile) {
  const std::string text = test::route_doc("a") + "---\nkind: WebSocketRoute\n";
  EXPECT_EQ(parse_error(text), "routes/chat.yaml: document 2: metadata: required");
}

TEST(RouteYaml, StatusIsIgnoredAsKubernetesWritesIt) {
  const auto routes = parse_ok(with_spec("") + "status:\n  conditions: [{type: Ready}]\n");
  EXPECT_EQ(routes.size(), 1u);
}

TEST(RouteYaml, NullOptionalFieldsMeanDefaults) {
  const auto routes = parse_ok(with_spec("  hosts:\n  pathPrefix: ~\n  maxTunnels: null\n"));
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_TRUE(routes[0].hosts.empty());
  EXPECT_EQ(routes[0].path_prefix, "/");
}

TEST(RouteYaml, MalformedYamlNamesFileLineAndColumn) {
  EXPECT_EQ(parse_error("apiVersion: wsgate.dev/v1alpha1\nspec:\n  hosts: [a, b\n"),
            "routes/chat.yaml: invalid YAML at line 4, column 1: end of sequence flow not found");
  EXPECT_EQ(parse_error("a: b\n c: d\n"),
            "routes/chat.yaml: invalid YAML at line 2, column 3: illegal map value");
}

TEST(RouteYaml, DeepNestingIsAnErrorNotACrash) {
  EXPECT_EQ(parse_error(std::string(100000, '[')),
            "routes/chat.yaml: invalid YAML at line 1, column 1: nesting too deep");
}

TEST(RouteYaml, LongestValidNamesAreAccepted) {
  // 253 characters: four labels of 63 and 61, with dots.
  const std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                           std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(name.size(), 253u);
  const auto routes =
      parse_ok("apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: " + name +
               "\n  namespace: " + std::string(63, 'n') + "\nspec:\n" + kBackend);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].name, name);
}

TEST(RouteYaml, SameRouteTwiceInOneFileIsAnError) {
  EXPECT_EQ(parse_error(test::route_doc("chat") + "---\n" + test::route_doc("chat", "/other")),
            "routes/chat.yaml: route default/chat: defined twice (also in routes/chat.yaml)");
}

struct ErrorCase {
  const char* name;
  std::string yaml;
  std::string message;
};

// gtest would otherwise dump the struct's raw bytes (padding included) into test names.
void PrintTo(const ErrorCase& c, std::ostream* out) {
  *out << c.name;
}

class RouteYamlError : public testing::TestWithParam<ErrorCase> {};

TEST_P(RouteYamlError, HasExactMessage) {
  EXPECT_EQ(parse_error(GetParam().yaml), GetParam().message);
}

std::string route_error(const std::string& field, const std::string& reason) {
  return kRoute + field + ": " + reason;
}

std::string document_error(const std::string& field, const std::string& reason) {
  return kDocument + field + ": " + reason;
}

const std::string kNoSpec =
    "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: chat\n";
const std::string kSpecTail = "spec:\n" + std::string(kBackend);

INSTANTIATE_TEST_SUITE_P(
    Document, RouteYamlError,
    testing::Values(
        ErrorCase{"NotAMapping", "- a\n- b\n",
                  std::string(kDocument) + "expected a mapping (a WebSocketRoute object)"},
        ErrorCase{"MetadataMissing", "apiVersion: wsgate.dev/v1alpha1\n" + kSpecTail,
                  document_error("metadata", "required")},
        ErrorCase{"MetadataNotAMapping", "metadata: chat\n" + kSpecTail,
                  document_error("metadata", "expected a mapping")},
        ErrorCase{"NameMissing", "metadata:\n  namespace: default\n" + kSpecTail,
                  document_error("metadata.name", "required")},
        ErrorCase{"NameNotAString", "metadata:\n  name: [chat]\n" + kSpecTail,
                  document_error("metadata.name", "expected a string")},
        ErrorCase{"NameUpperCase", "metadata:\n  name: Chat\n" + kSpecTail,
                  document_error("metadata.name", kSubdomainRule)},
        ErrorCase{"NameStartsWithDash", "metadata:\n  name: -chat\n" + kSpecTail,
                  document_error("metadata.name", kSubdomainRule)},
        ErrorCase{"NameWithUnderscore", "metadata:\n  name: my_chat\n" + kSpecTail,
                  document_error("metadata.name", kSubdomainRule)},
        // Four valid 63-character labels: only the total length (255) is wrong.
        ErrorCase{"NameTooLong",
                  "metadata:\n  name: " + std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                      std::string(63, 'c') + "." + std::string(63, 'd') + "\n" + kSpecTail,
                  document_error("metadata.name", kSubdomainRule)},
        ErrorCase{"NamespaceWithDot", "metadata:\n  name: chat\n  namespace: a.b\n" + kSpecTail,
                  document_error("metadata.namespace", kLabelRule)},
        ErrorCase{"NamespaceEmpty", "metadata:\n  name: chat\n  namespace: ''\n" + kSpecTail,
                  document_error("metadata.namespace", kLabelRule)},
        ErrorCase{
            "NamespaceTooLong",
            "metadata:\n  name: chat\n  namespace: " + std::string(64, 'n') + "\n" + kSpecTail,
            document_error("metadata.namespace", kLabelRule)}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    TopLevel, RouteYamlError,
    testing::Values(
        ErrorCase{"ApiVersionWrong",
                  "apiVersion: v1\nkind: WebSocketRoute\nmetadata:\n  name: chat\n" + kSpecTail,
                  route_error("apiVersion", "must be wsgate.dev/v1alpha1, not \"v1\"")},
        ErrorCase{"ApiVersionMissing",
                  "kind: WebSocketRoute\nmetadata:\n  name: chat\n" + kSpecTail,
                  route_error("apiVersion", "required")},
        ErrorCase{
            "KindWrong",
            "apiVersion: wsgate.dev/v1alpha1\nkind: Ingress\nmetadata:\n  name: chat\n" + kSpecTail,
            route_error("kind", "must be WebSocketRoute, not \"Ingress\"")},
        ErrorCase{"KindMissing",
                  "apiVersion: wsgate.dev/v1alpha1\nmetadata:\n  name: chat\n" + kSpecTail,
                  route_error("kind", "required")},
        ErrorCase{"SpecMissing", kNoSpec, route_error("spec", "required")},
        ErrorCase{"SpecNotAMapping", kNoSpec + "spec: [a]\n",
                  route_error("spec", "expected a mapping")},
        ErrorCase{"UnknownTopLevelField", kNoSpec + kSpecTail + "specs: {}\n",
                  route_error("specs", "unknown field")},
        ErrorCase{"DuplicateTopLevelField", kNoSpec + kSpecTail + "kind: WebSocketRoute\n",
                  route_error("kind", "duplicate field")}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Spec, RouteYamlError,
    testing::Values(
        ErrorCase{"UnknownField", with_spec("  pathprefix: /chat\n"),
                  route_error("spec.pathprefix", "unknown field")},
        ErrorCase{"DuplicateField", with_spec("  pathPrefix: /a\n  pathPrefix: /b\n"),
                  route_error("spec.pathPrefix", "duplicate field")},
        ErrorCase{"HostsNotAList", with_spec("  hosts: chat.example.com\n"),
                  route_error("spec.hosts", "expected a list")},
        ErrorCase{"HostNotAString", with_spec("  hosts: [{a: b}]\n"),
                  route_error("spec.hosts[0]", "expected a string")},
        ErrorCase{"HostLoneStar", with_spec("  hosts: ['*']\n"),
                  route_error("spec.hosts[0]",
                              "a lone '*' is not allowed; leave hosts empty to match any host")},
        ErrorCase{
            "HostStarInTheMiddle", with_spec("  hosts: [ok.com, 'a.*.b']\n"),
            route_error("spec.hosts[1]",
                        "'*' is only allowed as the whole first label, as in \"*.example.com\"")},
        ErrorCase{
            "HostStarGlued", with_spec("  hosts: ['*chat.example.com']\n"),
            route_error("spec.hosts[0]",
                        "'*' is only allowed as the whole first label, as in \"*.example.com\"")},
        ErrorCase{"HostWithPort", with_spec("  hosts: ['chat.example.com:443']\n"),
                  route_error("spec.hosts[0]", "must not contain a port")},
        ErrorCase{"HostEmpty", with_spec("  hosts: ['']\n"),
                  route_error("spec.hosts[0]", "must not be empty")},
        ErrorCase{"HostBadCharacter", with_spec("  hosts: [chat_x.example.com]\n"),
                  route_error("spec.hosts[0]", "invalid character '_'")},
        ErrorCase{"HostEmptyLabel", with_spec("  hosts: [chat..example.com]\n"),
                  route_error("spec.hosts[0]", "empty label in hostname")},
        ErrorCase{"HostLabelDash", with_spec("  hosts: [-chat.example.com]\n"),
                  route_error("spec.hosts[0]", "hostname label must not start or end with '-'")},
        ErrorCase{"HostLabelTooLong", with_spec("  hosts: [" + std::string(64, 'a') + ".com]\n"),
                  route_error("spec.hosts[0]", "hostname label longer than 63 characters")},
        ErrorCase{"HostDuplicateAfterLowerCasing", with_spec("  hosts: [a.com, A.COM]\n"),
                  route_error("spec.hosts[1]", "duplicate entry \"a.com\"")},
        ErrorCase{"PathPrefixWithoutSlash", with_spec("  pathPrefix: chat\n"),
                  route_error("spec.pathPrefix", "must start with '/'")},
        ErrorCase{"PathPrefixWithSpace", with_spec("  pathPrefix: /a b\n"),
                  route_error("spec.pathPrefix", "must not contain spaces or control characters")},
        ErrorCase{"PathPrefixWithControl", with_spec("  pathPrefix: \"/a\\tb\"\n"),
                  route_error("spec.pathPrefix", "must not contain spaces or control characters")},
        ErrorCase{"PathPrefixWithQuery", with_spec("  pathPrefix: /a?b=1\n"),
                  route_error("spec.pathPrefix", "must not contain '?' or '#'")},
        ErrorCase{"PathPrefixNotAString", with_spec("  pathPrefix: [/a]\n"),
                  route_error("spec.pathPrefix", "expected a string")},
        ErrorCase{"WebsocketOnlyYes", with_spec("  websocketOnly: yes\n"),
                  route_error("spec.websocketOnly", "expected a boolean (true or false)")},
        ErrorCase{"WebsocketOnlyQuoted", with_spec("  websocketOnly: 'true'\n"),
                  route_error("spec.websocketOnly", "expected a boolean (true or false)")}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Backends, RouteYamlError,
    testing::Values(
        ErrorCase{"Missing", spec_only("  pathPrefix: /\n"),
                  route_error("spec.backends", "required")},
        ErrorCase{"Empty", spec_only("  backends: []\n"),
                  route_error("spec.backends", "at least one backend is required")},
        ErrorCase{"NotAList", spec_only("  backends: 127.0.0.1:9001\n"),
                  route_error("spec.backends", "expected a list")},
        ErrorCase{"ItemNotAMapping", spec_only("  backends: [127.0.0.1:9001]\n"),
                  route_error("spec.backends[0]", "expected a mapping")},
        ErrorCase{"UnknownField", with_backend("address: 127.0.0.1:9001\n      adress: x\n"),
                  route_error("spec.backends[0].adress", "unknown field")},
        ErrorCase{"AddressMissing", with_backend("weight: 2\n"),
                  route_error("spec.backends[0].address", "required")},
        ErrorCase{"AddressMissingPort", with_backend("address: 127.0.0.1\n"),
                  "routes/chat.yaml: route default/chat: spec.backends[0].address: missing port"},
        ErrorCase{"AddressPortZero", with_backend("address: 127.0.0.1:0\n"),
                  route_error("spec.backends[0].address", "port must not be 0")},
        ErrorCase{"AddressPortTooBig", with_backend("address: 127.0.0.1:70000\n"),
                  route_error("spec.backends[0].address", "port out of range")},
        ErrorCase{"AddressBareIpv6", with_backend("address: '::1:80'\n"),
                  route_error("spec.backends[0].address", "IPv6 address must be in brackets")},
        ErrorCase{"SecondBackendBad",
                  spec_only("  backends:\n    - address: a:1\n    - address: b\n"),
                  route_error("spec.backends[1].address", "missing port")},
        ErrorCase{"WeightZero", with_backend("address: a:1\n      weight: 0\n"),
                  route_error("spec.backends[0].weight", "must be between 1 and 1000")},
        ErrorCase{"WeightTooBig", with_backend("address: a:1\n      weight: 1001\n"),
                  route_error("spec.backends[0].weight", "must be between 1 and 1000")},
        ErrorCase{"WeightNegative", with_backend("address: a:1\n      weight: -1\n"),
                  route_error("spec.backends[0].weight", "must not be negative")},
        ErrorCase{"WeightFloat", with_backend("address: a:1\n      weight: 1.5\n"),
                  route_error("spec.backends[0].weight", "expected an integer")},
        ErrorCase{"WeightQuoted", with_backend("address: a:1\n      weight: '2'\n"),
                  route_error("spec.backends[0].weight", "expected an integer")},
        ErrorCase{"TlsNotABoolean", with_backend("address: a:1\n      tls: 1\n"),
                  route_error("spec.backends[0].tls", "expected a boolean (true or false)")},
        ErrorCase{"CaFileWithoutTls", with_backend("address: a:1\n      caFile: /ca.pem\n"),
                  route_error("spec.backends[0].caFile", "only allowed with tls: true")},
        ErrorCase{"ServerNameWithoutTls",
                  with_backend("address: a:1\n      tls: false\n      serverName: b\n"),
                  route_error("spec.backends[0].serverName", "only allowed with tls: true")},
        ErrorCase{"ServerNameInvalid",
                  with_backend("address: a:1\n      tls: true\n      serverName: 'a b'\n"),
                  route_error("spec.backends[0].serverName", "invalid character ' '")},
        ErrorCase{"CaFileNotAString",
                  with_backend("address: a:1\n      tls: true\n      caFile: [x]\n"),
                  route_error("spec.backends[0].caFile", "expected a string")}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    OriginsAndSubprotocols, RouteYamlError,
    testing::Values(
        ErrorCase{"OriginsNotAList", with_spec("  allowedOrigins: https://a.com\n"),
                  route_error("spec.allowedOrigins", "expected a list")},
        ErrorCase{
            "OriginWithPath", with_spec("  allowedOrigins: ['https://a.com/']\n"),
            route_error("spec.allowedOrigins[0]", "must not contain a path, query or fragment")},
        ErrorCase{"OriginWithoutScheme", with_spec("  allowedOrigins: [a.com]\n"),
                  route_error("spec.allowedOrigins[0]", "must look like scheme://host[:port]")},
        ErrorCase{"OriginBadScheme", with_spec("  allowedOrigins: ['1http://a.com']\n"),
                  route_error("spec.allowedOrigins[0]", "invalid scheme")},
        ErrorCase{"OriginPortZero", with_spec("  allowedOrigins: ['https://a.com:0']\n"),
                  route_error("spec.allowedOrigins[0]", "invalid port")},
        ErrorCase{"OriginPortNotANumber", with_spec("  allowedOrigins: ['https://a.com:x']\n"),
                  route_error("spec.allowedOrigins[0]", "invalid port")},
        ErrorCase{"OriginEmptyHost", with_spec("  allowedOrigins: ['https://:80']\n"),
                  route_error("spec.allowedOrigins[0]", "host must not be empty")},
        ErrorCase{"OriginUserInfo", with_spec("  allowedOrigins: ['https://u@a.com']\n"),
                  route_error("spec.allowedOrigins[0]", "must not contain user info")},
        ErrorCase{"SubprotocolsNotAList", with_spec("  subprotocols: {a: b}\n"),
                  route_error("spec.subprotocols", "expected a list")},
        ErrorCase{"SubprotocolWithSpace", with_spec("  subprotocols: ['chat v2']\n"),
                  route_error("spec.subprotocols[0]", "invalid character in token")},
        ErrorCase{"SubprotocolWithSeparator", with_spec("  subprotocols: ['a,b']\n"),
                  route_error("spec.subprotocols[0]", "invalid character in token")},
        ErrorCase{"SubprotocolEmpty", with_spec("  subprotocols: ['']\n"),
                  route_error("spec.subprotocols[0]", "must not be empty")},
        ErrorCase{"SubprotocolDuplicate", with_spec("  subprotocols: [mqtt, mqtt]\n"),
                  route_error("spec.subprotocols[1]", "duplicate entry \"mqtt\"")}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Integers, RouteYamlError,
    testing::Values(
        ErrorCase{"MaxTunnelsNegative", with_spec("  maxTunnels: -1\n"),
                  route_error("spec.maxTunnels", "must not be negative")},
        ErrorCase{"MaxTunnelsAbove2To31", with_spec("  maxTunnels: 2147483648\n"),
                  route_error("spec.maxTunnels", "must be at most 2147483647")},
        ErrorCase{"MaxTunnelsHuge", with_spec("  maxTunnels: 99999999999999999999999\n"),
                  route_error("spec.maxTunnels", "must be at most 2147483647")},
        ErrorCase{"MaxTunnelsString", with_spec("  maxTunnels: many\n"),
                  route_error("spec.maxTunnels", "expected an integer")},
        ErrorCase{"MaxTunnelsQuoted", with_spec("  maxTunnels: \"10\"\n"),
                  route_error("spec.maxTunnels", "expected an integer")},
        ErrorCase{"IdleTimeoutFloat", with_spec("  idleTimeoutSeconds: 1.5\n"),
                  route_error("spec.idleTimeoutSeconds", "expected an integer")},
        ErrorCase{"HandshakeTimeoutZero", with_spec("  handshakeTimeoutSeconds: 0\n"),
                  route_error("spec.handshakeTimeoutSeconds", "must be between 1 and 3600")},
        ErrorCase{"HandshakeTimeoutTooLong", with_spec("  handshakeTimeoutSeconds: 3601\n"),
                  route_error("spec.handshakeTimeoutSeconds", "must be between 1 and 3600")},
        ErrorCase{"MaxLifetimeList", with_spec("  maxLifetimeSeconds: [1]\n"),
                  route_error("spec.maxLifetimeSeconds", "expected an integer")},
        ErrorCase{"PingIntervalExponent", with_spec("  pingIntervalSeconds: 1e3\n"),
                  route_error("spec.pingIntervalSeconds", "expected an integer")},
        ErrorCase{"HandshakesPerSecondHex", with_spec("  handshakesPerSecond: 0x10\n"),
                  route_error("spec.handshakesPerSecond", "expected an integer")},
        ErrorCase{"MaxMessageBytesNegative", with_spec("  maxMessageBytes: -5\n"),
                  route_error("spec.maxMessageBytes", "must not be negative")},
        ErrorCase{"MaxMessageBytesAbove2To63",
                  with_spec("  maxMessageBytes: 9223372036854775808\n"),
                  route_error("spec.maxMessageBytes", "must be at most 9223372036854775807")}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace wsgate::config

namespace wsgate::config {
namespace {

// Found by the route_yaml fuzzer: yaml-cpp 0.7's LoadAll never returns on a lone "," (it keeps
// yielding empty documents). It must be a bounded, clear error.
TEST(RouteYamlHostileInput, StrayCommaIsAnErrorNotAnEndlessParse) {
  for (const char* text : {",", ",\n,", "---\n,", "a: 1\n---\n,"}) {
    auto result = parse_route_documents(text, "routes/bad.yaml");
    ASSERT_TRUE(std::holds_alternative<ConfigError>(result)) << text;
    EXPECT_NE(std::get<ConfigError>(result).message.find("routes/bad.yaml: "), std::string::npos);
  }
}

}  // namespace
}  // namespace wsgate::config
