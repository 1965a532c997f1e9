#pragma once
// Validation of an incoming request before anything reaches a backend: the WebSocket
// handshake rules of RFC 6455 §4.2.1, request-smuggling guards, and the route's own policy
// (origins, subprotocols). Pure functions over parsed headers, so they are unit-tested and
// fuzzed without sockets.

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include <string>
#include <string_view>

#include "config/route.hpp"

namespace wsgate::proxy {

namespace http = boost::beast::http;
using RequestHeader = http::request_header<http::fields>;

struct Rejection {
  int status = 0;  // 0 = accepted
  std::string reason;
  explicit operator bool() const { return status != 0; }
};

// True when a comma-separated header value lists `token` (case-insensitive, trimmed).
bool header_has_token(std::string_view value, std::string_view token);

// The request asks for a WebSocket: its Upgrade header lists "websocket".
bool wants_websocket(const RequestHeader& req);

// Framing problems that make any request unsafe to forward (smuggling): Content-Length with
// Transfer-Encoding, repeated Content-Length (even with equal values) or one that is not a
// plain number, a Transfer-Encoding other than chunked or in HTTP/1.0, several Host headers,
// a Host with characters that do not belong in one. (Beast's parser already refuses bad bytes
// in field names and values, CL+TE it frames by, and different Content-Length values.)
Rejection check_framing(const RequestHeader& req);

// The request target as a gateway takes it (RFC 9112 §3.2): origin-form ("/path") passes;
// absolute-form ("http://authority/path") is rewritten to origin-form with the authority as
// Host (§3.2.2: the target's authority wins), so routing and the backend only ever see a
// path and the route's own backends; CONNECT gets 405; "*" passes only with OPTIONS; anything
// else gets 400. Never forwards anywhere the route table does not name (no open proxy).
Rejection normalize_target(RequestHeader& req);

// RFC 6455 handshake rules: 400 for a broken handshake, 426 for a version other than 13.
Rejection check_upgrade(const RequestHeader& req);

// The route's policy: 403 when Origin is not allowed, 400 when no required subprotocol offered.
Rejection check_route_policy(const RequestHeader& req, const config::Route& route);

// Sec-WebSocket-Accept for a key (base64 of SHA-1 of key + GUID).
std::string websocket_accept(std::string_view key);

// The reason phrase of the statuses the proxy answers itself.
std::string_view status_text(int status);

}  // namespace wsgate::proxy
