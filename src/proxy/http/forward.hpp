#pragma once
// Plain HTTP proxying for routes with websocketOnly: false: one request forwarded to a backend,
// bodies streamed in both directions (Content-Length or chunked, never buffered whole).

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <memory>

#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/routing/snapshot.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

struct ForwardResult {
  bool keep_alive = false;  // the client connection may serve another request
  int status = 0;           // what the client got (0 = nothing could be written)
};

// The parser has read the request header from `client` (with `buffer` holding any bytes
// after it). Forwards the request to the route's backends and relays the response.
boost::asio::awaitable<ForwardResult> forward_http(
    ProxyContext& ctx, Worker& worker, Stream& client, boost::beast::flat_buffer& buffer,
    std::unique_ptr<boost::beast::http::request_parser<boost::beast::http::empty_body>> parser,
    Snapshot::RouteEntry& entry, const std::string& client_address);

}  // namespace wsgate::proxy
