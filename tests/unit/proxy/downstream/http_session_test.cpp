// The HTTP session's own answers, without sockets: the client is a Beast test stream. Request
// headers over the limit are a 431 however they arrive (many lines, one byte at a time) and a
// header of exactly the limit is not; a malformed request is a 400; one not complete before
// the header timeout is counted 408 and closed; a connection accepted while draining gets its
// 503 at once. Every run ends with the session gone.

#include "proxy/downstream/http_session.hpp"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "../support/test_transport.hpp"
#include "metrics/registry.hpp"

namespace wsgate::proxy {
namespace {

using test::beast_test::stream;

constexpr std::size_t kLimit = 16 * 1024;

struct Proxy {
  explicit Proxy(ProxyOptions options = {}) : ctx{options, metrics, nullptr, {}} {}

  std::uint64_t handshakes(int code) {
    return metrics.handshakes.with({"", std::to_string(code)}).value();
  }
  std::uint64_t http_requests(int code) {
    return metrics.http_requests.with({"", std::to_string(code)}).value();
  }

  // Runs what is ready, and what that makes ready, until nothing is.
  void settle() {
    for (int i = 0; i < 10000; ++i) {
      worker.io().restart();
      if (worker.io().poll() == 0) return;
    }
    ADD_FAILURE() << "the session never settled";
  }

  // Declared first: the test streams and the session use its io_context, which must outlive
  // them (the worker is never started: the test runs its io_context).
  Worker worker{0};
  metrics::Registry registry;
  ProxyMetrics metrics{registry};
  ProxyContext ctx;
};

// A client connected to a new session of `proxy`.
struct Client {
  explicit Client(Proxy& proxy) : proxy(proxy), peer(proxy.worker.io()) {
    stream local(proxy.worker.io());
    local.connect(peer);
    start_http_session(proxy.ctx, proxy.worker, test::make_test_stream(std::move(local), peer),
                       tcp::endpoint(asio::ip::make_address("10.0.0.1"), 40000));
  }

  void send(std::string_view bytes) {
    peer.write_some(asio::buffer(bytes));
    proxy.settle();
  }
  // What the session has written so far.
  std::string received() const { return std::string(peer.str()); }
  // The client goes; the session (lingering or waiting) ends with it.
  void leave() {
    peer.close();
    proxy.settle();
  }

  Proxy& proxy;
  stream peer;
};

std::string head(bool websocket) {
  std::string out = "GET /chat HTTP/1.1\r\nHost: chat.example\r\n";
  if (websocket) {
    out +=
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  }
  return out;
}

// A request whose header (request line to blank line) is `total` bytes: 1 KiB lines and a
// shorter last one.
std::string request_of_size(bool websocket, std::size_t total) {
  std::string out = head(websocket);
  for (int i = 0; out.size() + 2 < total; ++i) {
    const std::string name = "X-Pad-" + std::to_string(i) + ": ";
    const std::size_t room = total - out.size() - 2;  // what is left before the blank line
    const std::size_t line = room > 1024 + 64 ? 1024 : room;
    out += name + std::string(line - name.size() - 2, 'p') + "\r\n";
  }
  out += "\r\n";
  return out;
}

bool starts_with(const std::string& text, std::string_view prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

TEST(HttpSession, TwentyHeaderLinesOfOneKibAreA431) {
  for (const bool websocket : {true, false}) {
    Proxy proxy;
    Client client(proxy);
    std::string request = head(websocket);
    for (int i = 0; i < 20; ++i)
      request += "X-Pad-" + std::to_string(i) + ": " + std::string(1000, 'p') + "\r\n";
    request += "\r\n";
    // In pieces of 8 KiB, as reads of a socket would bring them.
    for (std::size_t at = 0; at < request.size(); at += 8192) client.send(request.substr(at, 8192));
    const std::string answer = client.received();
    EXPECT_TRUE(starts_with(answer, "HTTP/1.1 431 ")) << answer.substr(0, 80);
    EXPECT_NE(answer.find("Connection: close"), std::string::npos);
    EXPECT_EQ(websocket ? proxy.handshakes(431) : proxy.http_requests(431), 1u);
    client.leave();
    EXPECT_EQ(proxy.worker.live_count(), 0u);
  }
}

TEST(HttpSession, OneByteOverTheLimitIsA431EvenOneByteAtATime) {
  Proxy proxy;
  Client client(proxy);
  const std::string request = request_of_size(true, kLimit + 1);
  ASSERT_EQ(request.size(), kLimit + 1);
  for (const char byte : request) {
    if (!client.received().empty()) break;  // answered: the rest is not needed
    client.send(std::string_view(&byte, 1));
  }
  EXPECT_TRUE(starts_with(client.received(), "HTTP/1.1 431 ")) << client.received();
  EXPECT_EQ(proxy.handshakes(431), 1u);
  client.leave();
  EXPECT_EQ(proxy.worker.live_count(), 0u);
}

TEST(HttpSession, ExactlyTheLimitIsNotA431) {
  for (const std::size_t piece : {std::size_t{1}, std::size_t{700}, kLimit}) {
    Proxy proxy;  // no routes: a request that passes the checks is a 404
    Client client(proxy);
    const std::string request = request_of_size(false, kLimit);
    ASSERT_EQ(request.size(), kLimit);
    for (std::size_t at = 0; at < request.size(); at += piece)
      client.send(std::string_view(request).substr(at, piece));
    EXPECT_TRUE(starts_with(client.received(), "HTTP/1.1 404 ")) << piece;
    EXPECT_EQ(proxy.http_requests(431), 0u);
    client.leave();
    EXPECT_EQ(proxy.worker.live_count(), 0u);
  }
}

TEST(HttpSession, MalformedRequestIsA400) {
  Proxy proxy;
  Client client(proxy);
  client.send("GET /chat HTTP/1.1\r\nHost chat.example\r\nUpgrade: websocket\r\n\r\n");
  const std::string answer = client.received();
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 400 ")) << answer;
  EXPECT_NE(answer.find("malformed HTTP request"), std::string::npos) << answer;
  EXPECT_EQ(proxy.handshakes(400), 1u);  // "websocket" is in its bytes
  client.leave();
  EXPECT_EQ(proxy.worker.live_count(), 0u);
}

TEST(HttpSession, RequestNotCompleteBeforeTheHeaderTimeoutIsA408) {
  ProxyOptions options;
  options.client_header_timeout = std::chrono::milliseconds(30);
  Proxy proxy(options);
  Client client(proxy);
  client.send("GET /chat HTTP/1.1\r\nHost: chat.example\r\n");
  EXPECT_EQ(proxy.worker.live_count(), 1u);
  // The timer is real: run until the session has gone (bounded).
  for (int i = 0; i < 100 && proxy.worker.live_count() > 0; ++i) {
    proxy.worker.io().restart();
    proxy.worker.io().run_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(proxy.worker.live_count(), 0u);
  EXPECT_EQ(proxy.http_requests(408), 1u);
  EXPECT_EQ(client.received(), "");  // the stream was closed: nothing can be written
}

TEST(HttpSession, AcceptedWhileDrainingIsAnswered503AtOnce) {
  Proxy proxy;
  bool drained = false;
  proxy.worker.start_drain([&] { drained = true; });
  proxy.settle();
  ASSERT_TRUE(drained);
  Client client(proxy);
  proxy.settle();
  // Answered before it sent anything; its request, arriving later, is read and dropped.
  const std::string answer = client.received();
  EXPECT_TRUE(starts_with(answer, "HTTP/1.1 503 ")) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
  EXPECT_EQ(proxy.worker.live_count(), 1u);  // lingering for the request
  client.send(head(true) + "\r\n");
  client.leave();
  EXPECT_EQ(proxy.worker.live_count(), 0u);
  EXPECT_EQ(proxy.handshakes(503), 1u);  // the request it dropped was an upgrade
}

}  // namespace
}  // namespace wsgate::proxy
