#include "proxy/http/forward.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <array>

#include "proxy/core/error.hpp"
#include "proxy/http/headers.hpp"
#include "proxy/http/responses.hpp"
#include "proxy/upstream/connect.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kChunk = 16 * 1024;

// Copies a message body from `in` to `out` through one fixed buffer: Beast's relay pattern.
// The header has been written already. Returns false when either side failed.
template <bool isRequest>
asio::awaitable<bool> relay_body(Stream& in, beast::flat_buffer& in_buffer,
                                 http::parser<isRequest, http::buffer_body>& parser,
                                 http::serializer<isRequest, http::buffer_body>& serializer,
                                 Stream& out) {
  std::array<char, kChunk> chunk;
  auto& body = parser.get().body();
  while (!parser.is_done()) {
    body.data = chunk.data();
    body.size = chunk.size();
    auto [rec, rn] = co_await http::async_read(in, in_buffer, parser, kTuple);
    if (rec == http::error::need_buffer) rec = {};
    if (rec) co_return false;
    body.size = chunk.size() - body.size;
    body.data = chunk.data();
    body.more = !parser.is_done();
    auto [wec, wn] = co_await http::async_write(out, serializer, kTuple);
    if (wec == http::error::need_buffer) wec = {};
    if (wec) co_return false;
  }
  if (!serializer.is_done()) {
    // Terminate a chunked body (the last-chunk) when the parser finished with no more data.
    body.data = nullptr;
    body.size = 0;
    body.more = false;
    auto [wec, wn] = co_await http::async_write(out, serializer, kTuple);
    if (wec && wec != http::error::need_buffer) co_return false;
  }
  co_return true;
}

}  // namespace

asio::awaitable<ForwardResult> forward_http(
    ProxyContext& ctx, Worker& worker, Stream& client, beast::flat_buffer& buffer,
    std::unique_ptr<http::request_parser<http::empty_body>> header_parser,
    Snapshot::RouteEntry& entry, const std::string& client_address) {
  ForwardResult result;
  const auto& route = *entry.route;
  const auto started = std::chrono::steady_clock::now();
  http::request_parser<http::buffer_body> request_parser(std::move(*header_parser));
  auto& request = request_parser.get();
  const bool client_keep_alive = request.keep_alive();
  // Read before rewrite_request_headers turns the request into HTTP/1.1 for the backend.
  const bool client_http11 = request.version() >= 11;
  const bool head_request = request.method() == http::verb::head;

  auto answer_error = [&](const ProxyError& error) -> asio::awaitable<void> {
    result.status = error.status();
    result.keep_alive = false;
    spdlog::debug("route {}: client {}: {} {}", entry.runtime->id(), client_address, error.status(),
                  error.describe());
    const std::string response = make_error_response(error.status(), error.reason(), false);
    co_await asio::async_write(client, asio::buffer(response), kTuple);
  };

  Deadline deadline(worker.io().get_executor(),
                    started + std::chrono::seconds(route.handshake_timeout_seconds));
  UpstreamConnection upstream = co_await connect_upstream(ctx, worker, entry, deadline);
  if (!upstream.stream) {
    co_await answer_error(upstream.error);
    co_return result;
  }
  Stream& backend = *upstream.stream;
  deadline.on_expiry([&backend] { backend.close(); });

  // One backend connection per request: ask the backend to close after answering.
  const bool chunked = request.chunked();
  rewrite_request_headers(request.base(), false, client_address, client.is_tls());
  request.keep_alive(false);
  if (chunked) request.chunked(true);
  http::request_serializer<http::buffer_body> request_serializer(request);
  auto [hec, hn] = co_await http::async_write_header(backend, request_serializer, kTuple);
  // A body the client stops sending is answered 502 too: the request cannot be completed.
  if (hec || !co_await relay_body(client, buffer, request_parser, request_serializer, backend)) {
    co_await answer_error(ProxyError::upstream_write(hec, deadline.expired()));
    co_return result;
  }

  beast::flat_buffer backend_buffer;
  http::response_parser<http::buffer_body> response_parser;
  response_parser.header_limit(static_cast<std::uint32_t>(ctx.options.response_header_limit));
  response_parser.body_limit(boost::none);
  response_parser.skip(head_request);
  auto [rec, rn] =
      co_await http::async_read_header(backend, backend_buffer, response_parser, kTuple);
  deadline.on_expiry(nullptr);
  if (rec) {
    co_await answer_error(ProxyError::upstream_read(rec, deadline.expired()));
    co_return result;
  }
  auto& response = response_parser.get();
  const bool response_chunked = response.chunked();
  const bool length_known = response.has_content_length() || head_request ||
                            response.result_int() / 100 == 1 ||
                            response.result() == http::status::no_content ||
                            response.result() == http::status::not_modified;
  const bool delimited = length_known || response_chunked;
  strip_hop_by_hop(response.base());
  if (client_http11) {
    // A body read until the backend closes cannot be delimited for a keep-alive client unless
    // it is re-chunked.
    result.keep_alive = client_keep_alive;
    if (response_chunked || (!delimited && result.keep_alive)) response.chunked(true);
    response.keep_alive(result.keep_alive);
  } else {
    // HTTP/1.0 knows no chunked coding (RFC 9112 §7.1): a body without a length is sent as is
    // and ended by the close. A 1.0 client keeps the connection only when told explicitly.
    result.keep_alive = client_keep_alive && length_known;
    response.keep_alive(result.keep_alive);
    if (result.keep_alive) response.set(http::field::connection, "keep-alive");
  }
  result.status = response.result_int();

  http::response_serializer<http::buffer_body> response_serializer(response);
  auto [whec, whn] = co_await http::async_write_header(client, response_serializer, kTuple);
  if (whec) {
    result.keep_alive = false;
    co_return result;
  }
  if (!head_request &&
      !co_await relay_body(backend, backend_buffer, response_parser, response_serializer, client)) {
    result.keep_alive = false;
  }
  co_return result;
}

}  // namespace wsgate::proxy
