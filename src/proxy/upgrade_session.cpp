#include "proxy/upgrade_session.hpp"

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

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "proxy/responses.hpp"
#include "proxy/upstream.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies strip.
constexpr std::array<http::field, 7> kHopByHop = {
    http::field::connection, http::field::keep_alive, http::field::proxy_connection,
    http::field::te,         http::field::trailer,    http::field::transfer_encoding,
    http::field::upgrade};

}  // namespace

void strip_hop_by_hop(http::fields& fields) {
  // Fields named in Connection are hop-by-hop too (copied: the pass below erases Connection).
  boost::container::small_vector<std::string, 4> named;
  for (auto it = fields.find(http::field::connection);
       it != fields.end() && it->name() == http::field::connection; ++it) {
    std::string_view value = it->value();
    while (!value.empty()) {
      const auto comma = value.find(',');
      std::string_view token = value.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      if (!token.empty()) named.emplace_back(token);
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  // One pass over the fields: erasing by name searches the field set once per name, which cost
  // more than the rest of the header rewrite together (callgrind).
  for (auto it = fields.begin(); it != fields.end();) {
    const http::field field = it->name();
    bool hop = std::find(kHopByHop.begin(), kHopByHop.end(), field) != kHopByHop.end();
    // A Connection token may not remove what frames or routes the message: without its
    // Content-Length a body would be read by the next hop as a request of its own.
    if (!hop && field != http::field::content_length && field != http::field::host) {
      const std::string_view name = it->name_string();
      hop = std::any_of(named.begin(), named.end(),
                        [&](const std::string& token) { return beast::iequals(token, name); });
    }
    it = hop ? fields.erase(it) : std::next(it);
  }
}

namespace {

// Typical serialized heads fit: one allocation instead of a doubling series.
constexpr std::size_t kHeadReserve = 512;

void append_fields(std::string& out, const http::fields& fields) {
  for (const auto& field : fields) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
}

std::string serialize_header(const http::response_header<>& header) {
  std::string out;
  out.reserve(kHeadReserve);
  out += "HTTP/1.1 ";
  out += std::to_string(header.result_int());
  out += ' ';
  out += header.reason().empty() ? std::string(http::obsolete_reason(header.result()))
                                 : std::string(header.reason());
  out += "\r\n";
  append_fields(out, header);
  return out;
}

std::string serialize_header(const RequestHeader& header) {
  std::string out;
  out.reserve(kHeadReserve);
  out += header.method_string();
  out += ' ';
  out += header.target();
  out += " HTTP/1.1\r\n";
  append_fields(out, header);
  return out;
}

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

}  // namespace

void rewrite_request_headers(RequestHeader& header, bool upgrade, const std::string& client_address,
                             bool client_tls) {
  const std::string host(header[http::field::host]);
  std::string forwarded_for(header["X-Forwarded-For"]);
  strip_hop_by_hop(header);
  if (upgrade) {
    header.set(http::field::connection, "Upgrade");
    header.set(http::field::upgrade, "websocket");
  }
  forwarded_for = forwarded_for.empty() ? client_address : forwarded_for + ", " + client_address;
  header.set("X-Forwarded-For", forwarded_for);
  header.set("X-Forwarded-Proto", client_tls ? "https" : "http");
  if (!host.empty()) header.set("X-Forwarded-Host", host);
  header.version(11);
}

namespace {

// A backend that answered 101, and the bytes each side sent right behind its headers.
struct Established {
  std::unique_ptr<Stream> backend;
  std::vector<std::uint8_t> client_preamble;
  std::vector<std::uint8_t> backend_preamble;
};

// The handshake with the backend, in its own coroutine frame: the parsers, buffers and header
// strings it needs die with it, so a long-lived tunnel does not carry them.
asio::awaitable<std::optional<Established>> establish(ProxyContext& ctx, Worker& worker,
                                                      Stream& client, UpgradeRequest& request) {
  auto& entry = *request.entry;
  const std::string& route_id = entry.runtime->id();

  auto fail = [&](int status, std::string_view reason) -> asio::awaitable<void> {
    ctx.metrics.count_handshake(route_id, status);
    spdlog::info("route {}: client {}: {} {}", route_id, request.client_address, status, reason);
    const std::string response = make_error_response(status, reason, false);
    co_await asio::async_write(client, asio::buffer(response), kTuple);
    client.shutdown_send();
  };

  const auto deadline_at =
      request.started + std::chrono::seconds(entry.route->handshake_timeout_seconds);
  Deadline deadline(worker.io().get_executor(), deadline_at);
  UpstreamConnection upstream = co_await connect_upstream(ctx, worker, entry, deadline);
  if (!upstream.stream) {
    co_await fail(upstream.timed_out ? 504 : 502, upstream.timed_out
                                                      ? "backend did not answer in time"
                                                      : "no backend could be connected");
    co_return std::nullopt;
  }
  Stream& backend = *upstream.stream;

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
    co_await fail(deadline.expired() ? 504 : 502, "backend closed the connection");
    co_return std::nullopt;
  }

  beast::flat_buffer backend_buffer;
  http::response_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(ctx.options.response_header_limit));
  auto [rec, rn] = co_await http::async_read_header(backend, backend_buffer, parser, kTuple);
  deadline.on_expiry(nullptr);
  if (rec) {
    if (deadline.expired()) {
      co_await fail(504, "backend did not answer the upgrade in time");
    } else {
      co_await fail(502, "backend answer was not HTTP: " + rec.message());
    }
    co_return std::nullopt;
  }
  auto& response = parser.get();
  if (response.result() != http::status::switching_protocols) {
    ctx.metrics.count_handshake(route_id, response.result_int());
    co_await relay_refusal(client, backend, backend_buffer, parser);
    client.shutdown_send();
    co_return std::nullopt;
  }
  if (!header_has_token(response[http::field::upgrade], "websocket") ||
      response[http::field::sec_websocket_accept] != websocket_accept(key)) {
    co_await fail(502, "backend sent an invalid WebSocket handshake answer");
    co_return std::nullopt;
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
    ctx.metrics.count_handshake(route_id, 499);
    co_return std::nullopt;
  }
  entry.runtime->handshakes_switched.inc();  // no per-handshake series lookup on success
  entry.runtime->handshake_duration.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - request.started).count());
  entry.runtime->bytes_client_to_backend.inc(client_preamble.size());
  entry.runtime->bytes_backend_to_client.inc(backend_preamble.size());
  co_return Established{std::move(upstream.stream),
                        {client_preamble.begin(), client_preamble.end()},
                        {backend_preamble.begin(), backend_preamble.end()}};
}

}  // namespace

asio::awaitable<bool> run_upgrade(ProxyContext& ctx, Worker& worker, Stream& client,
                                  ConnectionSlot& connection, UpgradeRequest request) {
  std::optional<Established> established = co_await establish(ctx, worker, client, request);
  if (!established) co_return false;
  TunnelParams params;
  params.snapshot = std::move(request.snapshot);
  params.entry = request.entry;
  params.client_preamble = established->client_preamble;
  params.backend_preamble = established->backend_preamble;
  params.lease = std::move(request.lease);
  params.lease.hold_connection(std::move(connection));
  start_tunnel(ctx, worker, std::move(client), std::move(*established->backend), std::move(params));
  co_return true;
}

}  // namespace wsgate::proxy
