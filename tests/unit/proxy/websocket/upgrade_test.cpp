// The upgrade's exchange with a connected backend, without sockets: the backend and the client
// are Beast test streams. A fail_count on the backend fails its operation n = 0, 1, 2, ... in
// turn (write the request, read the answer), each a 502; then the upgrade succeeds. A silent
// backend is a 504 at the deadline, garbage or a wrong accept a 502, a refusal is relayed.
// Every run ends with nothing pending, the handshake counted once and the backend gone.

#include "proxy/websocket/upgrade.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/error.hpp>
#include <boost/beast/_experimental/test/fail_count.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "../support/test_transport.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
using test::beast_test::stream;
using Kind = ProxyError::Kind;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// RFC 6455 §1.3's example key and its accept value.
constexpr std::string_view kRequest =
    "GET /chat HTTP/1.1\r\n"
    "Host: chat.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";
constexpr std::string_view kClientPreamble = "\x81\x05hello";  // a frame right behind the GET
constexpr std::string_view kSwitching =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";
constexpr std::string_view kBackendPreamble = "\x81\x02hi";  // a frame right behind the 101
constexpr auto kNoDeadline = std::chrono::hours(1);

// What the proxy shares, and one route whose counters the tests read.
struct Proxy {
  Proxy() {
    route.name = "chat";
    entry.route = &route;
    entry.runtime = std::make_shared<RouteRuntime>(route.id(), metrics);
  }
  std::uint64_t handshakes(const std::string& code) {
    return metrics.handshakes.with({route.id(), code}).value();
  }

  // Declared first: the test streams register with it and must go before it.
  asio::io_context io;
  metrics::Registry registry;
  ProxyMetrics metrics{registry};
  ProxyContext ctx{ProxyOptions{}, metrics, nullptr, {}};
  config::Route route;
  Snapshot::RouteEntry entry;
};

RequestHeader parse_request(std::string_view text) {
  http::request_parser<http::empty_body> parser;
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(asio::buffer(text), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(parser.is_header_done());
  return std::move(parser.release().base());
}

// Everything `peer` has been sent, once the proxy is done; `ended` says whether its input has
// ended too (a read then completes at once with eof; else it is cancelled).
std::string drain(asio::io_context& io, stream& peer, bool& ended) {
  std::string out = peer.str();
  peer.clear();
  ended = false;
  bool completed = false;
  char byte = 0;
  peer.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t n) {
    completed = true;
    ended = ec == asio::error::eof;
    out.append(&byte, n);
  });
  io.restart();
  io.poll();
  if (!completed) {
    peer.close();
    io.restart();
    io.poll();
  }
  return out;
}

// One exchange: the backend's and the client's ends, each with an optional fail_count.
struct Exchange {
  explicit Exchange(Proxy& proxy, beast::test::fail_count* backend_fail = nullptr,
                    beast::test::fail_count* client_fail = nullptr)
      : proxy(proxy), backend_peer(proxy.io), client_peer(proxy.io) {
    stream backend_end = backend_fail ? stream(proxy.io, *backend_fail) : stream(proxy.io);
    backend_end.connect(backend_peer);
    backend = std::make_unique<Stream>(
        std::make_unique<test::TestTransport>(std::move(backend_end), &backend_peer));
    stream client_end = client_fail ? stream(proxy.io, *client_fail) : stream(proxy.io);
    client_end.connect(client_peer);
    client.emplace(test::make_test_stream(std::move(client_end), client_peer));

    request.header = parse_request(kRequest);
    const auto space = request.leftover.prepare(kClientPreamble.size());
    asio::buffer_copy(space, asio::buffer(kClientPreamble));
    request.leftover.commit(kClientPreamble.size());
    request.entry = &proxy.entry;
    request.client_address = "10.0.0.1";
    request.started = steady_clock::now();
  }

  // The backend's answer, there before the proxy asks (read in as few reads as it fits).
  void backend_sends(std::string_view bytes) { backend_peer.write_some(asio::buffer(bytes)); }

  // Runs exchange_upgrade with a deadline `timeout` from now (or `deadline`) to its end.
  void run(steady_clock::duration timeout, Deadline* deadline = nullptr) {
    asio::co_spawn(
        proxy.io,
        [&]() -> asio::awaitable<void> {
          std::optional<Deadline> own;
          if (deadline == nullptr)
            deadline = &own.emplace(proxy.io.get_executor(), steady_clock::now() + timeout);
          result =
              co_await exchange_upgrade(proxy.ctx, *client, std::move(backend), request, *deadline);
          done = true;
        },
        asio::detached);
    proxy.io.restart();
    proxy.io.run_for(std::chrono::seconds(20));
    // Out of work: no operation or timer was left behind.
    EXPECT_TRUE(proxy.io.stopped()) << "the exchange left work pending";
    ASSERT_TRUE(done) << "the exchange did not finish";
    backend_received = backend_peer.str();
    client_received = drain(proxy.io, client_peer, client_ended);
  }

  // The backend's stream was destroyed: writing to it finds no one.
  bool backend_gone() {
    boost::system::error_code ec;
    backend_peer.write_some(asio::buffer(std::string_view("x")), ec);
    return ec == asio::error::connection_reset;
  }

  std::string client_status() const { return client_received.substr(0, 12); }
  std::string client_body() const {
    const auto end = client_received.find("\r\n\r\n");
    return end == std::string::npos ? "" : client_received.substr(end + 4);
  }

  Proxy& proxy;
  stream backend_peer;
  stream client_peer;
  std::unique_ptr<Stream> backend;
  std::optional<Stream> client;
  UpgradeRequest request;
  UpgradeExchange result;
  bool done = false;
  std::string backend_received;
  std::string client_received;
  bool client_ended = false;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// What every answer the proxy writes for the backend looks like, and what it leaves behind.
void expect_proxy_answer(Proxy& proxy, Exchange& ex, int status, Kind kind,
                         std::string_view reason_part) {
  EXPECT_EQ(ex.result.status, status);
  ASSERT_TRUE(ex.result.error.has_value());
  EXPECT_EQ(ex.result.error->kind(), kind) << to_string(ex.result.error->kind());
  EXPECT_EQ(ex.result.error->source(), ErrorSource::kUpstream);
  EXPECT_EQ(ex.client_status(), "HTTP/1.1 " + std::to_string(status));
  EXPECT_NE(ex.client_body().find(reason_part), std::string::npos) << ex.client_received;
  EXPECT_TRUE(ex.client_ended) << "the client's side was not shut down";
  EXPECT_EQ(proxy.handshakes(std::to_string(status)), 1u);
  EXPECT_EQ(proxy.handshakes("101"), 0u);
  EXPECT_EQ(ex.result.backend, nullptr);
  EXPECT_TRUE(ex.backend_gone()) << "the backend stream outlived a failed handshake";
}

TEST(UpgradeExchange, SucceedsRelayingThe101AndBothPreambles) {
  Proxy proxy;
  Exchange ex(proxy);
  ex.backend_sends(std::string(kSwitching) + std::string(kBackendPreamble));
  ex.run(kNoDeadline);

  EXPECT_EQ(ex.result.status, 101);
  EXPECT_FALSE(ex.result.error.has_value());
  ASSERT_NE(ex.result.backend, nullptr);
  EXPECT_FALSE(ex.backend_gone());
  // The backend got the request rewritten for it, then the client's frame.
  EXPECT_EQ(ex.backend_received.rfind("GET /chat HTTP/1.1\r\n", 0), 0u) << ex.backend_received;
  EXPECT_NE(ex.backend_received.find("X-Forwarded-For: 10.0.0.1\r\n"), std::string::npos);
  EXPECT_TRUE(
      ends_with(ex.backend_received, std::string("\r\n\r\n") + std::string(kClientPreamble)));
  // The client got the 101, then the backend's frame; the tunnel is not started here.
  EXPECT_EQ(ex.client_status(), "HTTP/1.1 101");
  EXPECT_NE(ex.client_received.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            std::string::npos);
  EXPECT_EQ(ex.client_body(), kBackendPreamble);
  EXPECT_FALSE(ex.client_ended);
  EXPECT_EQ(std::string(ex.result.client_preamble.begin(), ex.result.client_preamble.end()),
            kClientPreamble);
  EXPECT_EQ(std::string(ex.result.backend_preamble.begin(), ex.result.backend_preamble.end()),
            kBackendPreamble);
  EXPECT_EQ(proxy.handshakes("101"), 1u);
  EXPECT_EQ(proxy.entry.runtime->bytes_client_to_backend.value(), kClientPreamble.size());
  EXPECT_EQ(proxy.entry.runtime->bytes_backend_to_client.value(), kBackendPreamble.size());
}

TEST(UpgradeExchange, EachBackendStepFailedInTurnIsA502UntilTheUpgradeSucceeds) {
  bool failed_writing = false;
  bool failed_reading = false;
  for (std::size_t n = 0; n < 64; ++n) {
    SCOPED_TRACE("backend operation " + std::to_string(n) + " fails");
    Proxy proxy;
    beast::test::fail_count fail(n);
    Exchange ex(proxy, &fail);
    ex.backend_sends(std::string(kSwitching) + std::string(kBackendPreamble));
    ex.run(kNoDeadline);
    if (ex.result.status == 101) {
      // Both steps were failed before the first run that gets through.
      EXPECT_TRUE(failed_writing) << "no run failed while writing the request";
      EXPECT_TRUE(failed_reading) << "no run failed while reading the answer";
      EXPECT_GE(n, 2u);
      EXPECT_EQ(proxy.handshakes("101"), 1u);
      EXPECT_EQ(proxy.handshakes("502"), 0u);
      EXPECT_EQ(ex.client_status(), "HTTP/1.1 101");
      return;
    }
    // A backend that fails an operation is one that closed on us: 502, never 504.
    expect_proxy_answer(proxy, ex, 502, Kind::kUpstreamClosed, "backend closed the connection");
    ASSERT_TRUE(ex.result.error.has_value());
    EXPECT_EQ(ex.result.error->cause(), beast::test::error::test_failure);
    EXPECT_EQ(proxy.handshakes("504"), 0u);
    if (ends_with(ex.backend_received, kClientPreamble)) {
      failed_reading = true;  // the whole request was out: the answer's read failed
    } else {
      EXPECT_FALSE(failed_reading) << "a write failed after a read had";
      failed_writing = true;
    }
    if (HasFailure()) return;
  }
  FAIL() << "the upgrade never succeeded";
}

TEST(UpgradeExchange, ClientGoneBefore101IsCounted499AndReleasesTheBackend) {
  for (std::size_t n = 0; n < 16; ++n) {
    SCOPED_TRACE("client operation " + std::to_string(n) + " fails");
    Proxy proxy;
    beast::test::fail_count fail(n);
    Exchange ex(proxy, nullptr, &fail);
    ex.backend_sends(std::string(kSwitching) + std::string(kBackendPreamble));
    ex.run(kNoDeadline);
    if (ex.result.status == 101) {
      EXPECT_GE(n, 1u);
      return;
    }
    EXPECT_EQ(ex.result.status, 499);
    ASSERT_TRUE(ex.result.error.has_value());
    EXPECT_EQ(ex.result.error->kind(), Kind::kClientGone);
    EXPECT_EQ(ex.result.error->source(), ErrorSource::kDownstream);
    EXPECT_EQ(proxy.handshakes("499"), 1u);
    EXPECT_EQ(proxy.handshakes("101"), 0u);
    // The proxy writes no answer of its own to a client that is gone; the 101 stopped short.
    EXPECT_TRUE(ex.client_received.empty() || ex.client_status() == "HTTP/1.1 101")
        << ex.client_received;
    EXPECT_FALSE(ends_with(ex.client_received, kBackendPreamble));
    EXPECT_EQ(ex.result.backend, nullptr);
    EXPECT_TRUE(ex.backend_gone());
    if (HasFailure()) return;
  }
  FAIL() << "the upgrade never succeeded";
}

TEST(UpgradeExchange, SilentBackendIs504AtTheDeadline) {
  Proxy proxy;
  Exchange ex(proxy);
  const auto timeout = milliseconds(50);
  const auto started = steady_clock::now();
  ex.run(timeout);
  EXPECT_GE(steady_clock::now() - started, timeout) << "answered before the deadline";
  expect_proxy_answer(proxy, ex, 504, Kind::kResponseTimeout, "did not answer in time");
  EXPECT_EQ(proxy.handshakes("502"), 0u);
}

TEST(UpgradeExchange, DeadlinePassedBeforeTheExchangeIs504AtOnce) {
  Proxy proxy;
  Exchange ex(proxy);
  Deadline deadline(proxy.io.get_executor(), steady_clock::now() - std::chrono::seconds(1));
  while (!deadline.expired()) proxy.io.run_one();  // the timer is due: one handler
  ex.run(kNoDeadline, &deadline);
  expect_proxy_answer(proxy, ex, 504, Kind::kResponseTimeout, "did not answer in time");
  EXPECT_EQ(ex.backend_received, "");
}

TEST(UpgradeExchange, AnswerThatIsNotHttpIs502) {
  Proxy proxy;
  Exchange ex(proxy);
  ex.backend_sends("this is not http\r\n\r\n");
  ex.run(kNoDeadline);
  expect_proxy_answer(proxy, ex, 502, Kind::kBadResponse, "not HTTP");
}

TEST(UpgradeExchange, AnswerHeaderOverTheLimitIs502) {
  Proxy proxy;
  proxy.ctx.options.response_header_limit = 256;
  Exchange ex(proxy);
  ex.backend_sends("HTTP/1.1 101 Switching Protocols\r\nX-Big: " + std::string(512, 'a') +
                   "\r\n\r\n");
  ex.run(kNoDeadline);
  expect_proxy_answer(proxy, ex, 502, Kind::kBadResponse, "not HTTP");
}

TEST(UpgradeExchange, BackendClosingWithoutAnAnswerIs502) {
  Proxy proxy;
  Exchange ex(proxy);
  ex.backend_sends("HTTP/1.1 101 Switch");  // part of a status line, then the end
  ex.backend_peer.close();
  ex.run(kNoDeadline);
  expect_proxy_answer(proxy, ex, 502, Kind::kUpstreamClosed, "backend closed the connection");
}

TEST(UpgradeExchange, WrongAcceptOrNoUpgradeIs502) {
  for (const std::string_view answer :
       {std::string_view("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"),
        std::string_view("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")}) {
    SCOPED_TRACE(std::string(answer));
    Proxy proxy;
    Exchange ex(proxy);
    ex.backend_sends(answer);
    ex.run(kNoDeadline);
    expect_proxy_answer(proxy, ex, 502, Kind::kBadUpgradeAnswer, "invalid WebSocket handshake");
  }
}

TEST(UpgradeExchange, RefusalIsRelayedAsIsAndCounted) {
  Proxy proxy;
  Exchange ex(proxy);
  ex.backend_sends("HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nX-App: yes\r\n\r\nnope!");
  ex.run(kNoDeadline);
  EXPECT_EQ(ex.result.status, 403);
  EXPECT_FALSE(ex.result.error.has_value());
  EXPECT_EQ(ex.client_status(), "HTTP/1.1 403");
  EXPECT_NE(ex.client_received.find("X-App: yes\r\n"), std::string::npos);
  EXPECT_EQ(ex.client_body(), "nope!");
  EXPECT_TRUE(ex.client_ended);
  EXPECT_EQ(proxy.handshakes("403"), 1u);
  EXPECT_EQ(proxy.handshakes("101"), 0u);
  EXPECT_EQ(ex.result.backend, nullptr);
  EXPECT_TRUE(ex.backend_gone());
}

}  // namespace
}  // namespace wsgate::proxy
