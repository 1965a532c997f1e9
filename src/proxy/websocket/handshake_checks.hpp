#pragma once
// The WebSocket handshake rules of RFC 6455 §4.2.1 and the route's own policy (origins,
// subprotocols). Pure functions over parsed headers, so they are unit-tested and fuzzed
// without sockets.

#include <string>
#include <string_view>

#include "config/route.hpp"
#include "proxy/http/request_checks.hpp"

namespace wsgate::proxy {

// The request asks for a WebSocket: its Upgrade header lists "websocket".
bool wants_websocket(const RequestHeader& req);

// RFC 6455 handshake rules: 400 for a broken handshake, 426 for a version other than 13.
Rejection check_upgrade(const RequestHeader& req);

// The route's policy: 403 when Origin is not allowed, 400 when no required subprotocol offered.
Rejection check_route_policy(const RequestHeader& req, const config::Route& route);

// Sec-WebSocket-Accept for a key (base64 of SHA-1 of key + GUID).
std::string websocket_accept(std::string_view key);

}  // namespace wsgate::proxy
