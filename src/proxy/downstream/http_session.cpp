#include "proxy/downstream/http_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>

#include "proxy/core/admission.hpp"
#include "proxy/http/forward.hpp"
#include "proxy/http/request_checks.hpp"
#include "proxy/http/responses.hpp"
#include "proxy/websocket/handshake_checks.hpp"
#include "proxy/websocket/upgrade.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using HeaderParser = http::request_parser<http::empty_body>;

// The request asked for a WebSocket in the fields parsed before the error, or has "websocket"
// somewhere in its unparsed bytes: a malformed request is then counted as a failed handshake
// rather than a plain HTTP request. Both are needed because Beast consumes the fields it has
// parsed from the buffer even when a later field fails.
bool mentions_websocket(std::string_view text) {
  static constexpr std::string_view kNeedle = "websocket";
  return std::search(text.begin(), text.end(), kNeedle.begin(), kNeedle.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         }) != text.end();
}

bool looks_like_websocket(const beast::flat_buffer& buffer, const HeaderParser& parser) {
  if (wants_websocket(parser.get().base())) return true;
  const auto data = buffer.cdata();
  return mentions_websocket(std::string_view(static_cast<const char*>(data.data()), data.size()));
}

// After an answer that ends the connection, what the client still sends is read and dropped
// for a moment (until its end of stream: a lingering close), so that request bytes left unread
// do not turn the close into a reset that destroys the answer.
constexpr auto kLingerTime = std::chrono::seconds(1);
// The same while draining, shorter: these connections hold the exit.
constexpr auto kDrainLingerTime = std::chrono::milliseconds(500);
constexpr int kLingerReads = 64;

// The reading half of a lingering close: reads and drops what the client sends until its end
// of stream, an error (the caller's timer closing the stream ends it) or kLingerReads reads.
// Returns whether the bytes mention "websocket" (the metric of an answer sent before the
// request was read).
asio::awaitable<bool> read_and_drop(Stream& stream, bool websocket) {
  char sink[4096];
  for (int i = 0; i < kLingerReads; ++i) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
    if (ec) break;
    websocket = websocket || mentions_websocket(std::string_view(sink, n));
  }
  co_return websocket;
}

// Beast rejects smuggling-prone framing while parsing, before check_framing could; name the
// reason as check_framing would (the field parsed first is in the partial header).
std::string malformed_reason(const boost::system::error_code& ec, const HeaderParser& parser) {
  const auto& fields = parser.get().base();
  if (ec == http::error::multiple_content_length) return "conflicting Content-Length headers";
  if ((ec == http::error::bad_transfer_encoding &&
       fields.find(http::field::content_length) != fields.end()) ||
      (ec == http::error::bad_content_length &&
       fields.find(http::field::transfer_encoding) != fields.end())) {
    return "both Content-Length and Transfer-Encoding";
  }
  return "malformed HTTP request: " + ec.message();
}

// Over --max-connections: a short 503, then a lingering close (a moment of reading and dropping
// what the client sends) so that a request still unread does not turn the close into a reset
// that destroys the answer. The connection is never routed.
asio::awaitable<void> refuse_connection(std::shared_ptr<Stream> stream) {
  static const std::string kResponse =
      make_error_response(503, "too many connections", false, ExtraHeaders{{"Retry-After", "1"}});
  auto [wec, wn] = co_await asio::async_write(*stream, asio::buffer(kResponse), kTuple);
  if (!wec) {
    stream->shutdown_send();
    asio::steady_timer linger(stream->get_executor(), kLingerTime);
    linger.async_wait([stream](const boost::system::error_code& ec) {
      if (!ec) stream->close();
    });
    co_await read_and_drop(*stream, false);
    linger.cancel();
  }
  stream->close();
}

class HttpSession final : public Drainable, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(ProxyContext& ctx, Worker& worker, Stream stream, const tcp::endpoint& peer,
              ConnectionSlot connection)
      : ctx_(ctx),
        worker_(worker),
        connection_(std::move(connection)),
        stream_(std::move(stream)),
        header_timer_(worker.io()),
        client_address_(peer.address().to_string()) {}

  ~HttpSession() override {
    if (tracked_) worker_.untrack(this);
  }

  void start() {
    worker_.track(this);
    tracked_ = true;
    asio::co_spawn(
        worker_.io(), [self = shared_from_this()]() { return self->run(); }, asio::detached);
  }

  // Draining: an idle keep-alive connection (no byte of a next request) is closed now; one
  // still waiting for (the rest of) a request, its first or part of a next one, is answered
  // 503 now (its read is cancelled); one busy with a request finishes it, then closes.
  void on_drain() override {
    if (!waiting_for_request_) return;
    if (requests_served_ > 0 && !request_started_) {
      stream_.close();
      return;
    }
    answer_drain_ = true;
    // A transport-backed stream has no socket: its read then ends by itself (the request, or
    // the header timeout).
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);
  }

 private:
  asio::awaitable<void> run() {
    try {
      co_await serve();
    } catch (const std::exception& e) {
      spdlog::error("client {}: session failed: {}", client_address_, e.what());
    }
    if (!handed_off_) stream_.close();
  }

  // The stream is closed when `timeout` passes (header_timed_out_ then tells why a read
  // failed), unless disarm_deadline() comes first.
  void arm_deadline(std::chrono::steady_clock::duration timeout) {
    // A timer that already fired may still be queued after the read finished: the
    // generation tells a stale expiry from the current one.
    const std::uint64_t generation = ++deadline_generation_;
    header_timed_out_ = false;
    header_timer_.expires_after(timeout);
    header_timer_.async_wait(
        [self = shared_from_this(), generation](const boost::system::error_code& ec) {
          if (ec || generation != self->deadline_generation_) return;
          self->header_timed_out_ = true;
          self->stream_.close();
        });
  }

  void disarm_deadline() {
    ++deadline_generation_;
    header_timer_.cancel();
  }

  asio::awaitable<void> serve() {
    for (;;) {
      // Accepted while draining: answered at once, without waiting for a request that may
      // never come (the drain would wait for it).
      if (worker_.draining() && requests_served_ == 0 && buffer_.size() == 0) {
        co_await answer_drain(false);
        co_return;
      }
      auto parser = std::make_unique<HeaderParser>();
      parser->header_limit(static_cast<std::uint32_t>(ctx_.options.request_header_limit));
      parser->body_limit(boost::none);  // bodies are streamed, never held whole

      arm_deadline(ctx_.options.client_header_timeout);
      waiting_for_request_ = buffer_.size() == 0;
      request_started_ = buffer_.size() > 0;
      if (worker_.draining() && waiting_for_request_ && requests_served_ > 0) co_return;
      auto [ec, folded] = co_await read_header(*parser);
      waiting_for_request_ = false;
      disarm_deadline();
      if (ec && answer_drain_ && !header_timed_out_) {
        // The drain cancelled the read: whatever arrived of the request, it gets the 503.
        co_await answer_drain(looks_like_websocket(buffer_, *parser));
        co_return;
      }
      if (ec) {
        co_await on_read_error(ec, header_timed_out_, *parser);
        co_return;
      }
      if (folded) {
        co_await reject(400, "obsolete line folding in request headers", "",
                        wants_websocket(parser->get().base()));
        co_return;
      }
      ++requests_served_;
      const auto started = std::chrono::steady_clock::now();
      if (!co_await handle(std::move(parser), started)) co_return;
    }
  }

  // http::async_read_header, with the raw header bytes passing through here: Beast unfolds
  // obs-fold (a field value continued on a line starting with a space) silently, which RFC 9112
  // §5.2 allows, but a proxy in front of other parsers is safer refusing it, as nginx does.
  // Returns the error and whether a fold was seen.
  //
  // The header limit is counted here over the whole header. Beast's header_limit bounds only
  // the bytes one put() looks at, and a put() that stops in the middle of the header keeps
  // (consumes) the fields it parsed: those left the buffer, and the next put() counts from
  // there, so headers of many short lines passed the limit by what the first read held.
  asio::awaitable<std::tuple<boost::system::error_code, bool>> read_header(HeaderParser& parser) {
    const std::size_t limit = ctx_.options.request_header_limit;
    std::size_t consumed = 0;  // header bytes the parser has taken
    bool folded = false;
    bool after_newline = false;  // the last header byte consumed was '\n'
    for (;;) {
      if (buffer_.size() > 0) {
        boost::system::error_code ec;
        const std::size_t used = parser.put(buffer_.data(), ec);
        const auto* bytes = static_cast<const char*>(buffer_.data().data());
        for (std::size_t i = 0; i < used; ++i) {
          if (after_newline && (bytes[i] == ' ' || bytes[i] == '\t')) folded = true;
          after_newline = bytes[i] == '\n';
        }
        buffer_.consume(used);
        consumed += used;
        if (parser.is_header_done() && consumed > limit) ec = http::error::header_limit;
        // No end of the header in what is buffered: it ends after it, one byte at least.
        if (ec == http::error::need_more && consumed + buffer_.size() >= limit) {
          ec = http::error::header_limit;
        }
        if (ec != http::error::need_more) {
          if (ec || parser.is_header_done()) co_return std::make_tuple(ec, folded);
          if (used > 0) continue;  // a structured element parsed: try the rest of the buffer
        }
      }
      if (answer_drain_) co_return std::make_tuple(asio::error::operation_aborted, folded);
      auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(8192), kTuple);
      if (ec == asio::error::eof) {
        ec = parser.got_some() || buffer_.size() > 0 ? http::error::partial_message
                                                     : http::error::end_of_stream;
      }
      if (ec) co_return std::make_tuple(ec, folded);
      buffer_.commit(n);
      if (n > 0) request_started_ = true;
    }
  }

  // The 503 of a drain for a connection without a complete request (none, part of one, or
  // one still to come), then a lingering close: the request's bytes may arrive after it.
  asio::awaitable<void> answer_drain(bool websocket) {
    static const std::string kResponse = make_error_response(503, "proxy is draining", false);
    spdlog::debug("client {}: 503 proxy is draining", client_address_);
    arm_deadline(kDrainLingerTime);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(kResponse), kTuple);
    if (!ec) {
      stream_.shutdown_send();
      websocket = co_await read_and_drop(stream_, websocket);
    }
    disarm_deadline();
    count("", 503, websocket);
  }

  asio::awaitable<void> on_read_error(const boost::system::error_code& ec, bool timed_out,
                                      const HeaderParser& parser) {
    const bool nothing_received = buffer_.size() == 0 && !parser.got_some();
    if (timed_out) {
      // An idle keep-alive connection is just closed; a slow sender gets 408 (may not arrive).
      if (nothing_received && requests_served_ > 0) co_return;
      spdlog::info("client {}: request headers not complete in time", client_address_);
      count("", 408, looks_like_websocket(buffer_, parser));
      // The socket is closed already: nothing can be written.
      co_return;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      if (!nothing_received) count("", 400, looks_like_websocket(buffer_, parser));
      co_return;
    }
    const bool websocket = looks_like_websocket(buffer_, parser);
    if (ec == http::error::header_limit) {
      // The client may still be sending the rest of its header: linger.
      co_await reject(431, "request headers larger than the limit", "", websocket);
      arm_deadline(kLingerTime);
      co_await read_and_drop(stream_, websocket);
      disarm_deadline();
    } else {
      co_await reject(400, malformed_reason(ec, parser), "", websocket);
    }
  }

  // Returns true when the connection can serve another request.
  asio::awaitable<bool> handle(std::unique_ptr<HeaderParser> parser,
                               std::chrono::steady_clock::time_point started) {
    RequestHeader& req = parser->get().base();
    // Absolute-form targets become origin-form before routing; CONNECT and the other forms
    // never reach a backend (no open proxy).
    if (auto bad = normalize_target(req)) {
      ExtraHeaders extra;
      if (bad.status == 405)
        extra.emplace_back("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
      co_await reject(bad.status, bad.reason, "", wants_websocket(req), extra);
      co_return false;
    }
    const bool websocket = wants_websocket(req);
    const SnapshotPtr snapshot = worker_.snapshot();  // pinned for this request
    Snapshot::RouteEntry* entry = nullptr;
    if (snapshot && req.find(http::field::host) != req.end()) {
      entry = snapshot->match(req[http::field::host], req.target());
    }
    const std::string route_id = entry != nullptr ? entry->runtime->id() : std::string();

    if (worker_.draining()) {
      co_await reject(503, "proxy is draining", route_id, websocket);
      co_return false;
    }
    if (auto bad = check_framing(req)) {
      co_await reject(bad.status, bad.reason, route_id, websocket);
      co_return false;
    }
    if (!websocket) {
      if (req.find(http::field::host) == req.end() && req.version() >= 11) {
        co_await reject(400, "missing Host header", route_id, false);
        co_return false;
      }
      if (entry == nullptr)
        co_return co_await reject_keep(404, "no route for host and path", *parser);
      if (entry->route->websocket_only) {
        // Braced lists inside co_await trip GCC 12 ("array used as initializer").
        const ExtraHeaders extra{{"Upgrade", "websocket"}};
        co_await reject(426, "this route only accepts WebSocket upgrades", route_id, true, extra);
        co_return false;
      }
      auto result = co_await forward_http(ctx_, worker_, stream_, buffer_, std::move(parser),
                                          *entry, client_address_);
      if (result.status != 0) count(route_id, result.status, false);
      co_return result.keep_alive;
    }

    if (auto bad = check_upgrade(req)) {
      ExtraHeaders extra;
      if (bad.status == 426) extra.emplace_back("Sec-WebSocket-Version", "13");
      co_await reject(bad.status, bad.reason, route_id, true, extra);
      co_return false;
    }
    if (entry == nullptr) {
      co_await reject(404, "no route for host and path", route_id, true);
      co_return false;
    }
    if (auto bad = check_route_policy(req, *entry->route)) {
      co_await reject(bad.status, bad.reason, route_id, true);
      co_return false;
    }
    const auto& route = *entry->route;
    if (const auto wait = entry->runtime->take_handshake_token(route.handshakes_per_second)) {
      const ExtraHeaders extra{{"Retry-After", std::to_string(wait)}};
      co_await reject(429, "handshake rate limit of the route exceeded", route_id, true, extra);
      co_return false;
    }
    // Given back when the tunnel ends, or when the handshake fails.
    TunnelLease lease;
    if (ctx_.options.max_tunnels_per_client > 0) {
      if (!ctx_.admission.try_reserve_client_tunnel(client_address_,
                                                    ctx_.options.max_tunnels_per_client)) {
        const ExtraHeaders extra{{"Retry-After", "1"}};
        co_await reject(503, "too many tunnels from this client address", route_id, true, extra);
        co_return false;
      }
      lease.hold_client_slot(ctx_.admission, client_address_);
    }
    if (!reserve_tunnel(*entry)) {
      const ExtraHeaders extra{{"Retry-After", "1"}};
      co_await reject(503, "the route's tunnel limit is reached", route_id, true, extra);
      co_return false;
    }
    lease.hold_route_slot(*entry->runtime);
    UpgradeRequest upgrade;
    upgrade.header = std::move(req);
    upgrade.leftover = std::move(buffer_);
    upgrade.snapshot = snapshot;
    upgrade.entry = entry;
    upgrade.client_address = client_address_;
    upgrade.started = started;
    upgrade.lease = std::move(lease);
    parser.reset();
    // The session stays tracked through the handshake: a drain must wait for one in flight
    // (on_drain leaves a busy session alone). On success the tunnel owns the connection and
    // this session ends, freeing its buffers and coroutine frames.
    handed_off_ = co_await run_upgrade(ctx_, worker_, stream_, connection_, std::move(upgrade));
    co_return false;
  }

  static bool reserve_tunnel(Snapshot::RouteEntry& entry) {
    return increment_within(entry.runtime->tunnels, entry.route->max_tunnels);
  }

  void count(const std::string& route, int status, bool websocket) {
    if (websocket) {
      ctx_.metrics.count_handshake(route, status);
    } else {
      ctx_.metrics.count_http_request(route, status);
    }
  }

  asio::awaitable<void> reject(int status, std::string_view reason, const std::string& route,
                               bool websocket, const ExtraHeaders& extra = {}) {
    count(route, status, websocket);
    spdlog::debug("client {}: {} {}", client_address_, status, reason);
    const std::string response = make_error_response(status, reason, false, extra);
    co_await asio::async_write(stream_, asio::buffer(response), kTuple);
    stream_.shutdown_send();
  }

  // A plain request that can be answered while keeping the connection (no body pending).
  asio::awaitable<bool> reject_keep(int status, std::string_view reason,
                                    const HeaderParser& parser) {
    const bool has_body = parser.content_length().value_or(0) > 0 || parser.chunked();
    const bool keep = parser.keep_alive() && !has_body;
    count("", status, false);
    const std::string response = make_error_response(status, reason, keep);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(response), kTuple);
    if (!keep || ec) stream_.shutdown_send();
    co_return keep && !ec;
  }

  ProxyContext& ctx_;
  Worker& worker_;
  // The connection's --max-connections place: given back when the session ends, unless a
  // tunnel took it. (Declared before stream_: the place outlives the socket's close.)
  ConnectionSlot connection_;
  Stream stream_;
  beast::flat_buffer buffer_;
  asio::steady_timer header_timer_;
  std::string client_address_;
  bool tracked_ = false;
  bool handed_off_ = false;        // stream_ and connection_ went to a tunnel
  bool header_timed_out_ = false;  // the deadline closed the stream
  std::uint64_t deadline_generation_ = 0;
  bool waiting_for_request_ = false;  // reading a request, with none buffered at the start
  bool request_started_ = false;      // a byte of the request being read has arrived
  bool answer_drain_ = false;         // the drain wants the 503 of answer_drain()
  std::uint64_t requests_served_ = 0;
};

}  // namespace

void start_http_session(ProxyContext& ctx, Worker& worker, Stream stream,
                        const tcp::endpoint& peer) {
  if (!ctx.admission.try_open_connection(ctx.options.max_connections)) {
    ctx.metrics.connections_rejected.with({"max_connections"}).inc();
    spdlog::debug("connection refused: --max-connections {} reached", ctx.options.max_connections);
    asio::co_spawn(worker.io(), refuse_connection(std::make_shared<Stream>(std::move(stream))),
                   asio::detached);
    return;
  }
  start_admitted_http_session(ctx, worker, std::move(stream), peer, ConnectionSlot(ctx.admission));
}

void start_admitted_http_session(ProxyContext& ctx, Worker& worker, Stream stream,
                                 const tcp::endpoint& peer, ConnectionSlot connection) {
  std::make_shared<HttpSession>(ctx, worker, std::move(stream), peer, std::move(connection))
      ->start();
}

}  // namespace wsgate::proxy
