// The proto <-> model codec: a lossless round trip over the wire bytes, and the same rules as
// the YAML loader on the way in.
#include "config/route_proto.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <string>

#include "config_test_util.hpp"

namespace wsgate::config {
namespace {

// A table using every field with a non-default value.
RouteTable full_table() {
  const auto routes = test::parse_ok(
      "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\n"
      "metadata: {name: chat, namespace: team-a}\n"
      "spec:\n"
      "  hosts: [chat.example.com, '*.chat.example.com']\n"
      "  pathPrefix: /ws\n"
      "  websocketOnly: false\n"
      "  backends:\n"
      "    - {address: '[::1]:9443', weight: 7, tls: true, caFile: /ca.pem, serverName: "
      "b.internal}\n"
      "    - {address: backend.svc:80}\n"
      "  allowedOrigins: ['https://chat.example.com']\n"
      "  subprotocols: [chat.v2]\n"
      "  maxTunnels: 5\n  idleTimeoutSeconds: 6\n  handshakeTimeoutSeconds: 7\n"
      "  maxLifetimeSeconds: 8\n  pingIntervalSeconds: 9\n  handshakesPerSecond: 10\n"
      "  maxMessageBytes: 11\n"
      "---\n" +
      test::route_doc("echo", "/echo"));
  return RouteTable(routes);
}

// A valid proto route, to be broken one field at a time.
wsgate::v1::RouteTable valid_message() {
  return to_proto(RouteTable({test::parse_ok(test::route_doc("chat"))}));
}

std::string decode_error(const wsgate::v1::RouteTable& message) {
  auto result = from_proto(message);
  if (auto* error = std::get_if<ConfigError>(&result)) return error->message;
  return "";
}

TEST(RouteProto, RoundTripOverWireBytesKeepsEverything) {
  const RouteTable table = full_table();
  std::string bytes;
  ASSERT_TRUE(to_proto(table).SerializeToString(&bytes));
  wsgate::v1::RouteTable received;
  ASSERT_TRUE(received.ParseFromString(bytes));

  auto decoded = from_proto(received);
  ASSERT_TRUE(std::holds_alternative<RouteTable>(decoded))
      << std::get<ConfigError>(decoded).message;
  const RouteTable& back = std::get<RouteTable>(decoded);
  EXPECT_EQ(back.version(), table.version());
  EXPECT_EQ(config_json(back), config_json(table));
  ASSERT_EQ(back.routes().size(), table.routes().size());
  for (std::size_t i = 0; i < table.routes().size(); ++i) {
    EXPECT_TRUE(back.routes()[i].same_content(table.routes()[i]));
    EXPECT_EQ(back.routes()[i].source, "routes/chat.yaml");
  }
  // host/port are derived again on the receiving side, not sent.
  EXPECT_EQ(back.find("team-a/chat")->backends[0].host, "::1");
  EXPECT_EQ(back.find("team-a/chat")->backends[0].port, 9443);
}

TEST(RouteProto, EmptyTableRoundTrips) {
  auto decoded = from_proto(to_proto(RouteTable()));
  ASSERT_TRUE(std::holds_alternative<RouteTable>(decoded));
  EXPECT_EQ(std::get<RouteTable>(decoded).version(), RouteTable().version());
}

TEST(RouteProto, HostsAreLowerCasedAsFromYaml) {
  auto message = valid_message();
  message.mutable_routes(0)->add_hosts("Chat.Example.COM");
  auto decoded = from_proto(message);
  ASSERT_TRUE(std::holds_alternative<RouteTable>(decoded));
  EXPECT_EQ(std::get<RouteTable>(decoded).routes()[0].hosts[0], "chat.example.com");
}

struct ProtoErrorCase {
  const char* name;
  std::function<void(wsgate::v1::Route&)> change;
  std::string message;
};

// gtest would otherwise dump the struct's raw bytes (padding included) into test names.
void PrintTo(const ProtoErrorCase& c, std::ostream* out) {
  *out << c.name;
}

class RouteProtoError : public testing::TestWithParam<ProtoErrorCase> {};

TEST_P(RouteProtoError, HasExactMessage) {
  auto message = valid_message();
  GetParam().change(*message.mutable_routes(0));
  EXPECT_EQ(decode_error(message), GetParam().message);
}

const std::string kChat = "control plane: route default/chat: ";

INSTANTIATE_TEST_SUITE_P(
    Fields, RouteProtoError,
    testing::Values(
        ProtoErrorCase{"AddressWithoutPort",
                       [](auto& r) { r.mutable_backends(0)->set_address("127.0.0.1"); },
                       kChat + "spec.backends[0].address: missing port"},
        ProtoErrorCase{"WeightZero", [](auto& r) { r.mutable_backends(0)->set_weight(0); },
                       kChat + "spec.backends[0].weight: must be between 1 and 1000"},
        ProtoErrorCase{"NoBackends", [](auto& r) { r.clear_backends(); },
                       kChat + "spec.backends: at least one backend is required"},
        ProtoErrorCase{"CaFileWithoutTls",
                       [](auto& r) { r.mutable_backends(0)->set_ca_file("/ca.pem"); },
                       kChat + "spec.backends[0].caFile: only allowed with tls: true"},
        // proto3 cannot tell "absent" from "empty": nothing is defaulted on this path.
        ProtoErrorCase{"EmptyPathPrefix", [](auto& r) { r.clear_path_prefix(); },
                       kChat + "spec.pathPrefix: must start with '/'"},
        ProtoErrorCase{"HandshakeTimeoutZero", [](auto& r) { r.set_handshake_timeout_seconds(0); },
                       kChat + "spec.handshakeTimeoutSeconds: must be between 1 and 3600"},
        ProtoErrorCase{"CountAbove2To31", [](auto& r) { r.set_max_tunnels(3000000000u); },
                       kChat + "spec.maxTunnels: must be at most 2147483647"},
        ProtoErrorCase{"MaxMessageBytesAbove2To63",
                       [](auto& r) { r.set_max_message_bytes(9223372036854775808u); },
                       kChat + "spec.maxMessageBytes: must be at most 9223372036854775807"},
        ProtoErrorCase{"LoneStarHost", [](auto& r) { r.add_hosts("*"); },
                       kChat + "spec.hosts[0]: a lone '*' is not allowed; leave hosts empty to "
                               "match any host"},
        ProtoErrorCase{
            "BadOrigin", [](auto& r) { r.add_allowed_origins("https://a.com/x"); },
            kChat + "spec.allowedOrigins[0]: must not contain a path, query or fragment"},
        ProtoErrorCase{"BadSubprotocol", [](auto& r) { r.add_subprotocols("a b"); },
                       kChat + "spec.subprotocols[0]: invalid character in token"},
        ProtoErrorCase{"EmptyNamespace", [](auto& r) { r.clear_namespace_(); },
                       "control plane: routes[0]: metadata.namespace: must be a DNS-1123 label "
                       "(lower-case letters, digits and '-', starting and ending with a letter or "
                       "digit, at most 63 characters)"}),
    [](const testing::TestParamInfo<ProtoErrorCase>& info) {
      return std::string(info.param.name);
    });

TEST(RouteProto, InvalidNameIsNamedByPosition) {
  auto message = valid_message();
  *message.add_routes() = message.routes(0);
  message.mutable_routes(1)->set_name("Bad_Name");
  EXPECT_EQ(decode_error(message),
            "control plane: routes[1]: metadata.name: must be a DNS-1123 subdomain (lower-case "
            "letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 "
            "characters)");
}

TEST(RouteProto, DuplicateRoute) {
  auto message = valid_message();
  *message.add_routes() = message.routes(0);
  EXPECT_EQ(decode_error(message), "control plane: route default/chat: defined twice");
}

}  // namespace
}  // namespace wsgate::config
