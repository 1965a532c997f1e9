// route_fields.hpp against what must agree with it: the WebSocketRoute CRD declares exactly the
// listed keys (plus the hand-written lists) with compatible types, defaults and ranges; the
// wsgate.v1 messages have no field the list and the hand-written codec miss; and the parser,
// the validator and the JSON view apply each entry's default and range.
#include "config/route_fields.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>

#include "config/route.hpp"
#include "config/route_validate.hpp"
#include "config_test_util.hpp"
#include "wsgate/v1/routes.pb.h"

namespace wsgate::config {
namespace {

using test::parse_error;
using test::parse_ok;
using test::route_doc;

constexpr const char* kCrdPath =
    WSGATE_SOURCE_DIR "/charts/wsgate/crds/websocketroutes.wsgate.dev.yaml";

// The spec keys route_fields.hpp leaves to hand-written code (see its header comment).
const std::set<std::string> kHandWrittenSpecKeys = {"hosts", "backends", "allowedOrigins",
                                                    "subprotocols"};
// The same in the proto: identity, the lists, and where the route came from.
const std::set<std::string> kHandWrittenRouteProtoFields = {
    "namespace", "name", "hosts", "backends", "allowed_origins", "subprotocols", "source"};

#define WSGATE_KEY_OF(member, key, ...) key,
#define WSGATE_PROTO_OF(member, key, type, default_value, min, max, proto) #proto,
const std::set<std::string> kRouteKeys = {WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_KEY_OF)};
const std::set<std::string> kBackendKeys = {WSGATE_BACKEND_FIELDS(WSGATE_KEY_OF)};
const std::set<std::string> kRouteProtoFields = {WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_PROTO_OF)};
const std::set<std::string> kBackendProtoFields = {WSGATE_BACKEND_FIELDS(WSGATE_PROTO_OF)};
#undef WSGATE_PROTO_OF
#undef WSGATE_KEY_OF

std::set<std::string> keys_of(const YAML::Node& map) {
  std::set<std::string> out;
  for (const auto& entry : map) out.insert(entry.first.as<std::string>());
  return out;
}

std::set<std::string> operator+(std::set<std::string> a, const std::set<std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

// The spec's schema, and the schema of one entry of spec.backends.
struct CrdSchemas {
  YAML::Node spec;
  YAML::Node backend;
};

CrdSchemas load_crd() {
  const YAML::Node crd = YAML::LoadFile(kCrdPath);
  const YAML::Node versions = crd["spec"]["versions"];
  EXPECT_EQ(versions.size(), 1u) << "one served version, v1alpha1";
  const YAML::Node spec = versions[0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
  return CrdSchemas{spec, spec["properties"]["backends"]["items"]};
}

// One list entry against its CRD property: type (and integer format), default, range.
template <typename T, typename Default>
void expect_property(const YAML::Node& properties, std::string_view key, Default default_value,
                     std::uint64_t min, std::uint64_t max) {
  SCOPED_TRACE(std::string(key));
  const YAML::Node property = properties[std::string(key)];
  ASSERT_TRUE(property.IsDefined() && property.IsMap()) << "not in the CRD";
  const std::string type = property["type"].as<std::string>("");
  const T expected_default = T(default_value);
  if constexpr (std::is_same_v<T, bool>) {
    EXPECT_EQ(type, "boolean");
  } else if constexpr (std::is_same_v<T, std::string>) {
    EXPECT_EQ(type, "string");
    EXPECT_FALSE(property["minimum"] || property["maximum"]);
  } else {
    static_assert(kIsIntegerField<T>);
    EXPECT_EQ(type, "integer");
    const std::string format = property["format"].as<std::string>("");
    // A uint32 knob's range fits int32, a uint64 knob's int64 (both unsigned in C++).
    const std::uint64_t format_max =
        format == "int32" ? std::numeric_limits<std::int32_t>::max()
                          : static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(format, sizeof(T) == 4 ? "int32" : "int64");
    ASSERT_TRUE(property["minimum"]) << "an unsigned knob needs a minimum";
    EXPECT_EQ(property["minimum"].as<std::uint64_t>(), min);
    EXPECT_EQ(property["maximum"] ? property["maximum"].as<std::uint64_t>() : format_max, max);
  }
  // Where the CRD gives no default, the API server leaves the key out: the list's default must
  // then be the one "absent" means, the type's zero.
  if (property["default"])
    EXPECT_EQ(property["default"].as<T>(), expected_default);
  else
    EXPECT_EQ(expected_default, T{});
}

TEST(RouteFields, CrdSpecDeclaresExactlyTheListedKeys) {
  const CrdSchemas crd = load_crd();
  EXPECT_EQ(keys_of(crd.spec["properties"]), kRouteKeys + kHandWrittenSpecKeys);
  EXPECT_EQ(keys_of(crd.backend["properties"]), kBackendKeys);
}

TEST(RouteFields, CrdPropertiesHaveTheListedTypesDefaultsAndRanges) {
  const CrdSchemas crd = load_crd();
  const YAML::Node spec = crd.spec["properties"];
  const YAML::Node backend = crd.backend["properties"];
#define WSGATE_EXPECT_SPEC(member, key, type, default_value, min, max, proto) \
  expect_property<type>(spec, key, default_value, min, max);
#define WSGATE_EXPECT_BACKEND(member, key, type, default_value, min, max, proto) \
  expect_property<type>(backend, key, default_value, min, max);
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_EXPECT_SPEC)
  WSGATE_BACKEND_FIELDS(WSGATE_EXPECT_BACKEND)
#undef WSGATE_EXPECT_BACKEND
#undef WSGATE_EXPECT_SPEC
}

std::set<std::string> proto_fields(const google::protobuf::Descriptor* descriptor) {
  std::set<std::string> out;
  for (int i = 0; i < descriptor->field_count(); ++i) out.insert(descriptor->field(i)->name());
  return out;
}

TEST(RouteFields, ProtoHasNoFieldTheCodecMisses) {
  EXPECT_EQ(proto_fields(wsgate::v1::Route::descriptor()),
            kRouteProtoFields + kHandWrittenRouteProtoFields);
  EXPECT_EQ(proto_fields(wsgate::v1::Backend::descriptor()), kBackendProtoFields);
}

TEST(RouteFields, ParserAppliesEachDefault) {
  const auto routes = parse_ok(route_doc("chat"));
  ASSERT_EQ(routes.size(), 1u);
  const Route& route = routes[0];
  ASSERT_EQ(route.backends.size(), 1u);
  const Backend& backend = route.backends[0];
  const Route route_defaults;
  const Backend backend_defaults;
#define WSGATE_EXPECT_DEFAULT(object, member, key, type, default_value, ...) \
  EXPECT_EQ(object.member, type(default_value)) << key;                      \
  EXPECT_EQ(object##_defaults.member, type(default_value)) << key;
#define WSGATE_EXPECT_ROUTE_DEFAULT(...) WSGATE_EXPECT_DEFAULT(route, __VA_ARGS__)
#define WSGATE_EXPECT_BACKEND_DEFAULT(member, ...)      \
  if (std::string_view(#member) != "address") {         \
    WSGATE_EXPECT_DEFAULT(backend, member, __VA_ARGS__) \
  }
  // route_doc() sets pathPrefix and the backend's address; every other knob is left out.
  WSGATE_ROUTE_TAIL_FIELDS(WSGATE_EXPECT_ROUTE_DEFAULT)
  EXPECT_EQ(route.websocket_only, route_defaults.websocket_only);
  WSGATE_BACKEND_FIELDS(WSGATE_EXPECT_BACKEND_DEFAULT)
#undef WSGATE_EXPECT_BACKEND_DEFAULT
#undef WSGATE_EXPECT_ROUTE_DEFAULT
#undef WSGATE_EXPECT_DEFAULT
}

TEST(RouteFields, JsonWritesEachKnobUnderItsKey) {
  Route route;
  route.name = "chat";
  route.backends.emplace_back();
  const boost::json::object json =
      boost::json::parse(canonical_json(RouteTable({route}))).at("routes").at(0).as_object();
  // Besides the knobs and the hand-written lists: namespace and name (no source in this one).
  EXPECT_EQ(json.size(), kRouteKeys.size() + kHandWrittenSpecKeys.size() + 2);
  for (const auto& key : kRouteKeys + kHandWrittenSpecKeys) EXPECT_TRUE(json.contains(key)) << key;
  const boost::json::object& backend = json.at("backends").at(0).as_object();
  EXPECT_EQ(backend.size(), kBackendKeys.size());
  for (const auto& key : kBackendKeys) EXPECT_TRUE(backend.contains(key)) << key;
  EXPECT_EQ(json.at("handshakeTimeoutSeconds").as_int64(), 10);
  EXPECT_EQ(backend.at("weight").as_int64(), 1);
}

// An integer knob given one past its range: the YAML reader and the shared check both refuse
// it, with the message the range implies.
template <typename T>
void expect_range_enforced(std::string_view key, std::uint64_t min, std::uint64_t max,
                           bool in_spec) {
  SCOPED_TRACE(std::string(key));
  if constexpr (kIsIntegerField<T>) {
    const std::string reason =
        min == 0 ? "must be at most " + std::to_string(max)
                 : "must be between " + std::to_string(min) + " and " + std::to_string(max);
    EXPECT_EQ(check_integer(key, min), std::nullopt);
    EXPECT_EQ(check_integer(key, max), std::nullopt);
    if (min > 0) {
      EXPECT_EQ(check_integer(key, min - 1), reason);
    }
    ASSERT_LT(max, std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(check_integer(key, max + 1), reason);
    const std::string value = std::to_string(max + 1);
    const std::string doc =
        in_spec ? route_doc("chat") + "  " + std::string(key) + ": " + value + "\n"
                : route_doc("chat") + "      " + std::string(key) + ": " + value + "\n";
    const std::string field =
        in_spec ? "spec." + std::string(key) : "spec.backends[0]." + std::string(key);
    EXPECT_EQ(parse_error(doc), "routes/chat.yaml: route default/chat: " + field + ": " + reason);
  }
}

TEST(RouteFields, ParserAndValidatorEnforceEachRange) {
#define WSGATE_EXPECT_SPEC_RANGE(member, key, type, default_value, min, max, proto) \
  expect_range_enforced<type>(key, min, max, true);
#define WSGATE_EXPECT_BACKEND_RANGE(member, key, type, default_value, min, max, proto) \
  expect_range_enforced<type>(key, min, max, false);
  WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_EXPECT_SPEC_RANGE)
  WSGATE_BACKEND_FIELDS(WSGATE_EXPECT_BACKEND_RANGE)
#undef WSGATE_EXPECT_BACKEND_RANGE
#undef WSGATE_EXPECT_SPEC_RANGE
}

}  // namespace
}  // namespace wsgate::config
