#pragma once
// The headers a request or response carries across the proxy: hop-by-hop fields removed
// (RFC 9110 §7.6.1), X-Forwarded-* set for the backend, and heads serialized for a write.

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include <string>

#include "proxy/http/request_checks.hpp"

namespace wsgate::proxy {

// Removes the RFC 9110 §7.6.1 hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection,
// TE, Trailer, Transfer-Encoding, Upgrade) and every field the Connection header names, except
// Content-Length and Host.
void strip_hop_by_hop(boost::beast::http::fields& fields);

// Headers the backend gets: the client's minus hop-by-hop ones, plus Connection/Upgrade (for
// an upgrade) and X-Forwarded-For/-Proto/-Host.
void rewrite_request_headers(RequestHeader& header, bool upgrade, const std::string& client_address,
                             bool client_tls);

// An HTTP/1.1 head (start line, fields, blank line) as one string, written in one call.
std::string serialize_header(const http::response_header<>& header);
std::string serialize_header(const RequestHeader& header);

}  // namespace wsgate::proxy
