#include "proxy/websocket/upgrade.hpp"

#include "proxy/websocket/handshake_checks.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <utility>

#include "proxy/http/headers.hpp"
#include "proxy/http/responses.hpp"
#include "proxy/upstream/connect.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::span<const std::uint8_t> as_bytes(const beast::flat_buffer& buffer) {
  const auto data = buffer.cdata();
  return {static_cast<const std::uint8_t*>(data.data()), data.size()};
}

// The backend answered something other than 101: relay it (header and body, streamed) and
// close, as nginx does for a refused upgrade.
asio::awaitable<void> relay_refusal(Stream& client, Stream& backend, beast::flat_buffer& buffer,
                                    http::response_parser<http::empty_body>& header_parser) {
  http::response_parser<http::buffer_body> parser(std::move(header_parser));
  auto& res = parser.get();
  strip_hop_by_hop(res.base());
  res.keep_alive(false);
  http::response_serializer<http::buffer_body> serializer(res);
  auto [hec, hn] = co_await http::async_write_header(client, serializer, kTuple);
  if (hec) co_return;
  std::array<char, 16 * 1024> chunk;
  while (!parser.is_done()) {
    res.body().data = chunk.data();
    res.body().size = chunk.size();
    auto [rec, rn] = co_await http::async_read(backend, buffer, parser, kTuple);
    if (rec == http::error::need_buffer) rec = {};
    if (rec) break;
    res.body().size = chunk.size() - res.body().size;
    res.body().data = chunk.data();
    res.body().more = !parser.is_done();
    auto [wec, wn] = co_await http::async_write(client, serializer, kTuple);
    if (wec == http::error::need_buffer) wec = {};
    if (wec) break;
  }
}

// The proxy answers for the backend: counted, written, and the client's side shut down.
asio::awaitable<UpgradeExchange> fail(ProxyContext& ctx, Stream& client,
                                      const UpgradeRequest& request, ProxyError error) {
  const std::string& route_id = request.entry->runtime->id();
  ctx.metrics.handshakes.with({route_id, std::string(error.code_label())}).inc();
  spdlog::info("route {}: client {}: {} {}", route_id, request.client_address, error.status(),
               error.describe());
  if (error.source() != ErrorSource::kDownstream) {
    const std::string response = make_error_response(error.status(), error.reason(), false);
    co_await asio::async_write(client, asio::buffer(response), kTuple);
    client.shutdown_send();
  }
  UpgradeExchange result;
  result.status = error.status();
  result.error = std::move(error);
  co_return result;
}

// Connect and exchange in a coroutine frame of their own: the parsers, buffers and header
// strings they need die with it, so a long-lived tunnel does not carry them.
asio::awaitable<UpgradeExchange> establish(ProxyContext& ctx, Worker& worker, Stream& client,
                                           UpgradeRequest& request) {
  auto& entry = *request.entry;
  const auto deadline_at =
      request.started + std::chrono::seconds(entry.route->handshake_timeout_seconds);
  Deadline deadline(worker.io().get_executor(), deadline_at);
  UpstreamConnection upstream = co_await connect_upstream(ctx, worker, entry, deadline);
  if (!upstream.stream) co_return co_await fail(ctx, client, request, std::move(upstream.error));
  co_return co_await exchange_upgrade(ctx, client, std::move(upstream.stream), request, deadline);
}

}  // namespace

asio::awaitable<UpgradeExchange> exchange_upgrade(ProxyContext& ctx, Stream& client,
                                                  std::unique_ptr<Stream> backend_stream,
                                                  UpgradeRequest& request, Deadline& deadline) {
  auto& entry = *request.entry;
  // A deadline that has passed already would never run the cancel action set below.
  if (deadline.expired())
    co_return co_await fail(ctx, client, request, ProxyError(ProxyError::Kind::kResponseTimeout));
  Stream& backend = *backend_stream;
  const std::string key(request.header[http::field::sec_websocket_key]);
  rewrite_request_headers(request.header, true, request.client_address, client.is_tls());
  const std::string head = serialize_header(request.header);
  const auto client_preamble = as_bytes(request.leftover);
  std::array<asio::const_buffer, 2> out = {
      asio::buffer(head), asio::buffer(client_preamble.data(), client_preamble.size())};
  deadline.on_expiry([&backend] { backend.close(); });
  auto [wec, wn] = co_await asio::async_write(backend, out, kTuple);
  if (wec) {
    deadline.on_expiry(nullptr);
    co_return co_await fail(ctx, client, request,
                            ProxyError::upstream_write(wec, deadline.expired()));
  }

  beast::flat_buffer backend_buffer;
  http::response_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(ctx.options.response_header_limit));
  auto [rec, rn] = co_await http::async_read_header(backend, backend_buffer, parser, kTuple);
  deadline.on_expiry(nullptr);
  if (rec)
    co_return co_await fail(ctx, client, request,
                            ProxyError::upstream_read(rec, deadline.expired()));
  auto& response = parser.get();
  if (response.result() != http::status::switching_protocols) {
    UpgradeExchange result;
    result.status = response.result_int();
    ctx.metrics.count_handshake(entry.runtime->id(), result.status);
    co_await relay_refusal(client, backend, backend_buffer, parser);
    client.shutdown_send();
    co_return result;
  }
  if (!header_has_token(response[http::field::upgrade], "websocket") ||
      response[http::field::sec_websocket_accept] != websocket_accept(key)) {
    co_return co_await fail(ctx, client, request, ProxyError(ProxyError::Kind::kBadUpgradeAnswer));
  }
  strip_hop_by_hop(response.base());
  response.set(http::field::connection, "Upgrade");
  response.set(http::field::upgrade, "websocket");
  const std::string answer = serialize_header(response.base());
  const auto backend_preamble = as_bytes(backend_buffer);
  std::array<asio::const_buffer, 2> reply = {
      asio::buffer(answer), asio::buffer(backend_preamble.data(), backend_preamble.size())};
  auto [cec, cn] = co_await asio::async_write(client, reply, kTuple);
  if (cec) {
    // The client vanished between its request and our answer.
    co_return co_await fail(ctx, client, request, ProxyError(ProxyError::Kind::kClientGone, cec));
  }
  entry.runtime->handshakes_switched.inc();  // no per-handshake series lookup on success
  entry.runtime->handshake_duration.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - request.started).count());
  entry.runtime->bytes_client_to_backend.inc(client_preamble.size());
  entry.runtime->bytes_backend_to_client.inc(backend_preamble.size());
  UpgradeExchange result;
  result.status = 101;
  result.backend = std::move(backend_stream);
  result.client_preamble.assign(client_preamble.begin(), client_preamble.end());
  result.backend_preamble.assign(backend_preamble.begin(), backend_preamble.end());
  co_return result;
}

asio::awaitable<bool> run_upgrade(ProxyContext& ctx, Worker& worker, Stream& client,
                                  ConnectionSlot& connection, UpgradeRequest request) {
  UpgradeExchange established = co_await establish(ctx, worker, client, request);
  if (!established.backend) co_return false;
  TunnelParams params;
  params.snapshot = std::move(request.snapshot);
  params.entry = request.entry;
  params.client_preamble = established.client_preamble;
  params.backend_preamble = established.backend_preamble;
  params.lease = std::move(request.lease);
  params.lease.hold_connection(std::move(connection));
  start_tunnel(ctx, worker, std::move(client), std::move(*established.backend), std::move(params));
  co_return true;
}

}  // namespace wsgate::proxy
