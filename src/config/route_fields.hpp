#pragma once
// The route's scalar knobs, written once (an X-macro list, as Envoy's ALL_TCP_PROXY_STATS).
//
// Every consumer expands these lists instead of naming the knobs itself:
//   - route.hpp declares the Route/Backend members (type, default);
//   - route_yaml.cpp reads each key (by type: string, boolean, decimal integer);
//   - route_validate.cpp checks each integer's [min, max] (check_integer and the spec/backend
//     checks that run for routes from the control plane too);
//   - route.cpp writes each into the canonical/admin JSON and compares it in same_content();
//   - route_proto.cpp encodes/decodes each through its wsgate.v1 accessor;
//   - tests/unit/config/route_fields_test.cpp checks the CRD declares exactly these keys, with
//     compatible types, defaults and ranges, and that the .proto has no field the list misses.
// So a new knob is one line here, one field in proto/wsgate/v1/routes.proto and one property in
// the WebSocketRoute CRD (charts/wsgate/crds, copied to deploy/kubernetes).
//
// X(member, key, type, default, min, max, proto)
//   member   the C++ member of Route (or Backend); names the data plane uses, never renamed
//   key      the YAML/JSON key (camelCase), also the CRD property name
//   type     bool, std::string, std::uint32_t (CRD integer/int32) or std::uint64_t (integer/int64)
//   default  the value when the key is absent or null (also the CRD's default, where it has one)
//   min,max  the valid range of an integer (the CRD's minimum/maximum); 0, 0 for other types
//   proto    the generated accessor of the wsgate.v1 field: message.proto(), set_proto(...)
//
// Hand-written, not in these lists (each needs more than a type, a default and a range, so a
// line here could not say how to read, check or encode it without the macro growing a column
// per special case):
//   - metadata.namespace / metadata.name: the route's identity, read from metadata rather than
//     spec, checked as DNS-1123 names before anything else (validate_route_id);
//   - hosts, allowedOrigins, subprotocols: lists, each with its own item syntax, case folding
//     and duplicate check, and repeated fields in the proto (mutable_x()->Add, not set_x);
//   - backends: a list of Backend objects (whose scalar fields are WSGATE_BACKEND_FIELDS below),
//     required and non-empty; the address is also parsed into host/port;
//   - source: where the route came from, not part of its content (no YAML key, no CRD property).
// A string knob's syntax (pathPrefix's pattern) is not a range either: its check stays in
// route_validate.cpp, where the list's integer ranges are checked too.

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

namespace wsgate::config {

// Counts and durations fit in a signed 32-bit value everywhere they are used (timers, gauges).
inline constexpr std::uint64_t kMaxCount = 2147483647;
// Byte counts fit in a signed 64-bit value (the CRD's int64).
inline constexpr std::uint64_t kMaxBytes =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// The spec's scalars, split in two only because the route's JSON (whose text is hashed into
// the table version, so its key order is fixed) and the Route struct keep SPEC's order, where
// the lists sit between them. Everything that does not care about order expands
// WSGATE_ROUTE_SCALAR_FIELDS. A new knob goes at the end of WSGATE_ROUTE_TAIL_FIELDS.
//
// Before backends, allowedOrigins and subprotocols:
#define WSGATE_ROUTE_HEAD_FIELDS(X)                                 \
  X(path_prefix, "pathPrefix", std::string, "/", 0, 0, path_prefix) \
  X(websocket_only, "websocketOnly", bool, true, 0, 0, websocket_only)

// After them:
#define WSGATE_ROUTE_TAIL_FIELDS(X)                                                   \
  X(max_tunnels, "maxTunnels", std::uint32_t, 0, 0, kMaxCount, max_tunnels)           \
  X(idle_timeout_seconds, "idleTimeoutSeconds", std::uint32_t, 0, 0, kMaxCount,       \
    idle_timeout_seconds)                                                             \
  X(handshake_timeout_seconds, "handshakeTimeoutSeconds", std::uint32_t, 10, 1, 3600, \
    handshake_timeout_seconds)                                                        \
  X(max_lifetime_seconds, "maxLifetimeSeconds", std::uint32_t, 0, 0, kMaxCount,       \
    max_lifetime_seconds)                                                             \
  X(ping_interval_seconds, "pingIntervalSeconds", std::uint32_t, 0, 0, kMaxCount,     \
    ping_interval_seconds)                                                            \
  X(handshakes_per_second, "handshakesPerSecond", std::uint32_t, 0, 0, kMaxCount,     \
    handshakes_per_second)                                                            \
  X(max_message_bytes, "maxMessageBytes", std::uint64_t, 0, 0, kMaxBytes, max_message_bytes)

#define WSGATE_ROUTE_SCALAR_FIELDS(X) WSGATE_ROUTE_HEAD_FIELDS(X) WSGATE_ROUTE_TAIL_FIELDS(X)

// Each entry of spec.backends, in SPEC's (and the JSON's) order. address (required) is as
// written: host:port, [v6]:port or name:port; the validator parses it into Backend::host/port
// (derived, so not listed). With tls: caFile is the CA bundle (empty = the system store) and
// serverName the SNI and verified name (empty = the address's host).
#define WSGATE_BACKEND_FIELDS(X)                         \
  X(address, "address", std::string, "", 0, 0, address)  \
  X(weight, "weight", std::uint32_t, 1, 1, 1000, weight) \
  X(tls, "tls", bool, false, 0, 0, tls)                  \
  X(ca_file, "caFile", std::string, "", 0, 0, ca_file)   \
  X(server_name, "serverName", std::string, "", 0, 0, server_name)

// The types a list entry may have; an integer is one that has a range.
template <typename T>
inline constexpr bool kIsIntegerField =
    std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint64_t>;
template <typename T>
inline constexpr bool kIsFieldType =
    kIsIntegerField<T> || std::is_same_v<T, bool> || std::is_same_v<T, std::string>;

// An integer's range fits its type and holds its default; other types have no range (0, 0).
template <typename T, typename Default>
constexpr bool field_range_is_valid(Default default_value, std::uint64_t min, std::uint64_t max) {
  if constexpr (kIsIntegerField<T>) {
    const auto value = static_cast<std::uint64_t>(default_value);
    return min <= max && max <= std::numeric_limits<T>::max() && value >= min && value <= max;
  } else {
    return min == 0 && max == 0;
  }
}

#define WSGATE_CHECK_FIELD(member, key, type, default_value, min, max, proto) \
  static_assert(kIsFieldType<type>, key ": unsupported type");                \
  static_assert(field_range_is_valid<type>(default_value, min, max),          \
                key ": range does not fit the type, or the default is outside it");
WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_CHECK_FIELD)
WSGATE_BACKEND_FIELDS(WSGATE_CHECK_FIELD)
#undef WSGATE_CHECK_FIELD

}  // namespace wsgate::config
