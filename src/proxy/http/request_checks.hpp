#pragma once
// Checks of any incoming HTTP request before anything reaches a backend: request-smuggling
// guards and the request target. Pure functions over parsed headers, so they are unit-tested
// and fuzzed without sockets. (The WebSocket handshake's own rules: websocket/handshake_checks.)

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include <string>
#include <string_view>

namespace wsgate::proxy {

namespace http = boost::beast::http;
using RequestHeader = http::request_header<http::fields>;

struct Rejection {
  int status = 0;  // 0 = accepted
  std::string reason;
  explicit operator bool() const { return status != 0; }
};

// ASCII case-insensitive comparison, and a value without surrounding spaces and tabs (OWS).
bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);

// How many fields named `name` the request carries.
std::size_t count_fields(const RequestHeader& req, http::field name);

// True when a comma-separated header value lists `token` (case-insensitive, trimmed).
bool header_has_token(std::string_view value, std::string_view token);

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

// The reason phrase of the statuses the proxy answers itself.
std::string_view status_text(int status);

}  // namespace wsgate::proxy
