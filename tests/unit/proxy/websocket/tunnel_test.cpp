// Whole tunnels in memory: start_tunnel over two TestTransport streams whose far ends are the
// test's client and backend, on a Worker's io_context run by the test itself. Bytes both ways,
// partial writes, close at a frame boundary on drain, ping liveness, idle timeout, half-close,
// and a failure at every step of an exchange (fail_count), each ending the tunnel with the
// counters right. Timeouts are whole seconds in routes, so the timed tests take one or two.

#include "proxy/websocket/tunnel.hpp"

#include <gtest/gtest.h>

#include <boost/beast/_experimental/test/fail_count.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../support/test_transport.hpp"
#include "metrics/registry.hpp"
#include "proxy/websocket/frame_tracker.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
using test::beast_test::stream;
using Bytes = std::vector<std::uint8_t>;
using std::chrono::milliseconds;

constexpr char kRoute[] = "default/chat";
constexpr milliseconds kShortGrace(300);
constexpr milliseconds kLongGrace(30000);

// A data frame of RFC 6455 §5.2 (payload < 64 KiB), built here apart from the code under test;
// a client's frames are masked (a fixed key: its value does not matter to the proxy).
Bytes frame(std::uint8_t opcode, const std::string& payload, bool masked) {
  Bytes out = {static_cast<std::uint8_t>(0x80 | opcode)};
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  if (payload.size() < 126) {
    out.push_back(static_cast<std::uint8_t>(mask_bit | payload.size()));
  } else {
    out.push_back(mask_bit | 126);
    out.push_back(static_cast<std::uint8_t>(payload.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(payload.size()));
  }
  const std::uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  if (masked) out.insert(out.end(), key, key + 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<std::uint8_t>(payload[i] ^ (masked ? key[i % 4] : 0)));
  }
  return out;
}
Bytes text(const std::string& payload, bool masked) {
  return frame(0x1, payload, masked);
}
Bytes pong(bool masked) {
  return frame(0xA, "wsgate", masked);
}
Bytes close_frame(std::uint16_t code, bool masked) {
  return make_close_frame(code, "", masked);
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// What a peer received, frame by frame.
FrameTracker frames_of(const std::string& received) {
  FrameTracker tracker;
  tracker.advance(
      std::span(reinterpret_cast<const std::uint8_t*>(received.data()), received.size()));
  return tracker;
}

// The route the tunnel runs under (its backend is never connected here).
config::Route chat_route(std::uint32_t idle_seconds = 0, std::uint32_t ping_seconds = 0) {
  config::Route route;
  route.name = "chat";
  route.idle_timeout_seconds = idle_seconds;
  route.ping_interval_seconds = ping_seconds;
  route.backends.emplace_back().address = "127.0.0.1:9001";
  return route;
}

// One tunnel with everything it needs; `client` and `backend` are the test's ends.
class Harness {
 public:
  // `close_grace`: how long peers get to finish a close. A long one shows that a completed
  // close handshake, not the grace, ended a tunnel.
  explicit Harness(config::Route route = chat_route(), milliseconds close_grace = kShortGrace,
                   beast::test::fail_count* client_fail = nullptr,
                   beast::test::fail_count* backend_fail = nullptr)
      : snapshot_(builder_.build(config::RouteTable({std::move(route)}))),
        entry_(snapshot_->match("", "/")),
        client(worker_.io()),
        backend(worker_.io()) {
    ctx_.options.close_grace = close_grace;
    stream client_side = client_fail ? stream(worker_.io(), *client_fail) : stream(worker_.io());
    stream backend_side = backend_fail ? stream(worker_.io(), *backend_fail) : stream(worker_.io());
    client_side.connect(client);
    backend_side.connect(backend);
    client_side_ = std::move(client_side);
    backend_side_ = std::move(backend_side);
  }

  // Limits every write the tunnel makes to `n` bytes (short writes: the rest waits).
  void with_write_size(std::size_t n) {
    client_side_->write_size(n);
    backend_side_->write_size(n);
  }

  void start() {
    ASSERT_NE(entry_, nullptr);
    entry_->runtime->tunnels.fetch_add(1);  // as the upgrade does before the lease holds it
    TunnelParams params;
    params.snapshot = snapshot_;
    params.entry = entry_;
    params.lease.hold_route_slot(*entry_->runtime);
    start_tunnel(ctx_, worker_, test::make_test_stream(std::move(*client_side_), client),
                 test::make_test_stream(std::move(*backend_side_), backend), std::move(params));
    client_side_.reset();
    backend_side_.reset();
  }

  // Runs the worker's handlers until `done` holds, for at most `limit`.
  template <typename Done>
  bool run_until(Done done, milliseconds limit = milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      worker_.io().run_one_until(deadline);
    }
    return true;
  }
  // Runs whatever is ready now (and what that makes ready), without waiting for timers.
  void settle() { worker_.io().run_for(milliseconds(20)); }

  void send(stream& peer, const Bytes& bytes) {
    if (!bytes.empty()) peer.write_some(asio::buffer(bytes));
  }
  static std::string as_string(const Bytes& bytes) {
    return std::string(bytes.begin(), bytes.end());
  }
  // Waits until `peer` has received at least `size` bytes (or the tunnel is gone).
  bool receive(stream& peer, std::size_t size) {
    return run_until([&] { return peer.str().size() >= size || gone(); });
  }
  void drain() {
    worker_.start_drain([] {});
  }
  // Waits until both peers got a close frame from the proxy.
  bool both_told_to_close(milliseconds limit = milliseconds(5000)) {
    return run_until(
        [&] {
          return frames_of(client.str()).close_seen() && frames_of(backend.str()).close_seen();
        },
        limit);
  }
  // Both peers answer the proxy's close frames.
  void answer_closes(std::uint16_t code) {
    send(client, close_frame(code, true));
    send(backend, close_frame(code, false));
  }

  bool gone() { return worker_.live_count() == 0; }
  // Waits for the tunnel to delete itself.
  bool ends(milliseconds limit = milliseconds(5000)) {
    return run_until([&] { return gone(); }, limit);
  }
  std::uint64_t closes(const std::string& code, const std::string& initiator) {
    return ctx_.metrics.tunnel_closes.with({kRoute, code, initiator}).value();
  }
  std::uint64_t timeouts(const std::string& reason) {
    return ctx_.metrics.tunnel_timeouts.with({kRoute, reason}).value();
  }
  std::int64_t active() { return entry_->runtime->active_tunnels.value(); }
  std::uint32_t route_tunnels() { return entry_->runtime->tunnels.load(); }
  std::uint64_t bytes_to_backend() { return entry_->runtime->bytes_client_to_backend.value(); }
  std::uint64_t bytes_to_client() { return entry_->runtime->bytes_backend_to_client.value(); }

 private:
  metrics::Registry registry_;
  ProxyMetrics metrics_{registry_};
  ProxyContext ctx_{ProxyOptions{}, metrics_, nullptr, {}};
  SnapshotBuilder builder_{metrics_};
  SnapshotPtr snapshot_;
  Snapshot::RouteEntry* entry_;
  Worker worker_{0};
  std::optional<stream> client_side_;
  std::optional<stream> backend_side_;

 public:
  // Declared last: destroyed before the worker (and its io_context) they run on.
  stream client;
  stream backend;
};

TEST(Tunnel, BytesFlowBothWaysAndACloseHandshakeEndsIt) {
  Harness h;
  h.start();
  const Bytes hello = text("hello", true);
  h.send(h.client, hello);
  ASSERT_TRUE(h.receive(h.backend, hello.size()));
  EXPECT_EQ(h.backend.str(), Harness::as_string(hello));

  // A message larger than the park buffer and than one pooled buffer: read on at once.
  const Bytes big = frame(0x2, std::string(60000, 'b'), false) + text("after", false);
  h.send(h.backend, big);
  ASSERT_TRUE(h.receive(h.client, big.size()));
  EXPECT_EQ(h.client.str(), Harness::as_string(big));
  EXPECT_EQ(h.bytes_to_backend(), hello.size());
  EXPECT_EQ(h.bytes_to_client(), big.size());
  EXPECT_EQ(h.active(), 1);

  h.send(h.client, close_frame(1000, true));
  ASSERT_TRUE(h.receive(h.backend, hello.size() + 8));
  h.send(h.backend, close_frame(1000, false));
  h.backend.close();
  h.client.close();
  ASSERT_TRUE(h.ends());
  EXPECT_EQ(h.closes("1000", "client"), 1u);
  EXPECT_EQ(h.active(), 0);
  EXPECT_EQ(h.route_tunnels(), 0u);  // the lease went with the tunnel
}

TEST(Tunnel, ShortWritesKeepTheOrderOfBytes) {
  Harness h;
  h.with_write_size(7);
  h.start();
  Bytes stream_bytes;
  for (int i = 0; i < 20; ++i)
    stream_bytes = stream_bytes + text("message " + std::to_string(i), true);
  h.send(h.client, stream_bytes);
  ASSERT_TRUE(h.receive(h.backend, stream_bytes.size()));
  EXPECT_EQ(h.backend.str(), Harness::as_string(stream_bytes));
  // Counted once each write completes (the last one's handler may still be queued).
  EXPECT_TRUE(h.run_until([&] { return h.bytes_to_backend() == stream_bytes.size(); }));
  EXPECT_FALSE(h.gone());
}

TEST(Tunnel, DrainFinishesAHalfSentFrameBeforeItsCloseFrame) {
  Harness h(chat_route(), kLongGrace);
  h.with_write_size(5);  // the close frames go out in pieces too
  h.start();
  const Bytes message = text("half of this frame now, the rest later", true);
  const std::size_t half = 20;
  h.send(h.client, Bytes(message.begin(), message.begin() + half));
  ASSERT_TRUE(h.receive(h.backend, half));
  h.drain();

  // The client's side is at a frame boundary: its close frame goes at once.
  ASSERT_TRUE(h.receive(h.client, 4));
  h.settle();
  const FrameTracker to_client = frames_of(h.client.str());
  EXPECT_TRUE(to_client.close_seen());
  EXPECT_EQ(to_client.close_code(), 1001);
  // The backend is mid-frame: nothing more until the frame is complete.
  EXPECT_EQ(h.backend.str().size(), half);

  // The rest of the frame, and a frame after it that must not follow the close frame.
  h.send(h.client, Bytes(message.begin() + half, message.end()) + text("dropped", true));
  ASSERT_TRUE(h.run_until([&] { return frames_of(h.backend.str()).close_seen() || h.gone(); }));
  const std::string got = h.backend.str();
  ASSERT_GT(got.size(), message.size());
  EXPECT_EQ(got.substr(0, message.size()), Harness::as_string(message));
  const FrameTracker to_backend = frames_of(got);
  EXPECT_EQ(to_backend.frames(), 2u);
  EXPECT_EQ(to_backend.close_code(), 1001);
  EXPECT_TRUE(to_backend.at_boundary());

  // Both answer: the close handshake is complete and the tunnel goes before the grace.
  h.answer_closes(1001);
  ASSERT_TRUE(h.ends());
  EXPECT_EQ(h.closes("1001", "proxy"), 1u);
  EXPECT_EQ(h.active(), 0);
}

TEST(Tunnel, AClosedPeerThatNeverAnswersIsCutAfterTheGrace) {
  Harness h;
  h.start();
  h.drain();
  ASSERT_TRUE(h.both_told_to_close());
  h.send(h.client, close_frame(1001, true));  // the backend stays silent
  h.settle();
  EXPECT_FALSE(h.gone());
  ASSERT_TRUE(h.ends(milliseconds(2000)));
  EXPECT_EQ(h.closes("1001", "proxy"), 1u);
}

TEST(Tunnel, APingUnansweredByTheBackendClosesTheClientWith1001) {
  Harness h(chat_route(0, 1), kLongGrace);
  h.start();
  ASSERT_TRUE(h.run_until(
      [&] {
        return frames_of(h.client.str()).pings() == 1 && frames_of(h.backend.str()).pings() == 1;
      },
      milliseconds(3000)));
  EXPECT_EQ(frames_of(h.backend.str()).frames(), 1u);
  h.send(h.client, pong(true));  // the client is alive, the backend is not
  ASSERT_TRUE(h.run_until([&] { return frames_of(h.client.str()).close_seen() || h.gone(); },
                          milliseconds(3000)));
  const FrameTracker to_client = frames_of(h.client.str());
  EXPECT_EQ(to_client.close_code(), 1001);
  EXPECT_EQ(to_client.close_reason(), "backend not answering");
  // The client's pong went on to the backend; the dead backend gets no close frame.
  const FrameTracker to_backend = frames_of(h.backend.str());
  EXPECT_FALSE(to_backend.close_seen());
  EXPECT_EQ(to_backend.pongs(), 1u);
  h.send(h.client, close_frame(1001, true));
  ASSERT_TRUE(h.ends());
  EXPECT_EQ(h.timeouts("ping"), 1u);
  EXPECT_EQ(h.closes("1001", "proxy"), 1u);
}

TEST(Tunnel, IdleTunnelClosedWith1001PongsDoNotCountAsUse) {
  Harness h(chat_route(2, 1), kLongGrace);
  h.start();
  // Both peers answer every ping: alive, but the tunnel is not in use.
  std::uint64_t answered = 0;
  ASSERT_TRUE(h.run_until(
      [&] {
        const FrameTracker to_client = frames_of(h.client.str());
        if (to_client.close_seen()) return true;
        const std::uint64_t pinged =
            std::min(to_client.pings(), frames_of(h.backend.str()).pings());
        if (pinged > answered) {
          answered = pinged;
          h.send(h.client, pong(true));
          h.send(h.backend, pong(false));
        }
        return h.gone();
      },
      milliseconds(4000)));
  EXPECT_GE(answered, 1u);
  EXPECT_EQ(frames_of(h.client.str()).close_reason(), "idle timeout");
  ASSERT_TRUE(h.both_told_to_close());
  h.answer_closes(1001);
  ASSERT_TRUE(h.ends());
  EXPECT_EQ(h.timeouts("idle"), 1u);
  EXPECT_EQ(h.timeouts("ping"), 0u);
  EXPECT_EQ(h.closes("1001", "proxy"), 1u);
}

TEST(Tunnel, IdleTimeoutWithoutPings) {
  Harness h(chat_route(1, 0), kLongGrace);
  h.start();
  ASSERT_TRUE(h.both_told_to_close(milliseconds(3000)));
  EXPECT_EQ(frames_of(h.backend.str()).close_reason(), "idle timeout");
  EXPECT_EQ(h.timeouts("idle"), 1u);
  h.answer_closes(1001);
  ASSERT_TRUE(h.ends());
  EXPECT_EQ(h.closes("1001", "proxy"), 1u);
}

TEST(Tunnel, HalfCloseForwardsTheFinAndTheOtherDirectionFlows) {
  Harness h;
  h.start();
  h.client.close();  // the client's FIN
  boost::system::error_code backend_read;
  char sink[8];
  h.backend.async_read_some(asio::buffer(sink),
                            [&](boost::system::error_code ec, std::size_t) { backend_read = ec; });
  ASSERT_TRUE(h.run_until([&] { return backend_read == asio::error::eof; }));
  const Bytes late = text("still flowing", false);
  h.send(h.backend, late);
  ASSERT_TRUE(h.receive(h.client, late.size()));
  EXPECT_EQ(h.client.str(), Harness::as_string(late));
  EXPECT_FALSE(h.gone());
  h.backend.close();
  ASSERT_TRUE(h.ends());
  EXPECT_EQ(h.closes("none", "client"), 1u);
  EXPECT_EQ(h.bytes_to_client(), late.size());
}

TEST(Tunnel, AHalfClosedTunnelEndsAfterTheGrace) {
  Harness h;
  h.start();
  h.backend.close();
  h.settle();
  EXPECT_FALSE(h.gone());
  ASSERT_TRUE(h.ends(milliseconds(2000)));
  EXPECT_EQ(h.closes("none", "backend"), 1u);
}

TEST(Tunnel, StartedWhileDrainingClosesAtOnce) {
  Harness h;
  h.drain();
  h.settle();
  h.start();
  ASSERT_TRUE(h.both_told_to_close());
  EXPECT_EQ(frames_of(h.client.str()).close_reason(), "proxy is shutting down");
}

// An exchange the proxy carries: a message each way, the client's close, the backend's answer,
// then both ends go. True when every step got through.
bool exchange(Harness& h) {
  const Bytes ask = text("ask", true);
  const Bytes answer = text("answer", false);
  const Bytes bye = close_frame(1000, true);
  const Bytes bye_back = close_frame(1000, false);
  h.send(h.client, ask);
  if (!h.receive(h.backend, ask.size()) || h.gone()) return false;
  h.send(h.backend, answer);
  if (!h.receive(h.client, answer.size()) || h.gone()) return false;
  h.send(h.client, bye);
  if (!h.receive(h.backend, ask.size() + bye.size()) || h.gone()) return false;
  h.send(h.backend, bye_back);
  if (!h.receive(h.client, answer.size() + bye_back.size()) || h.gone()) return false;
  const bool delivered = h.backend.str() == Harness::as_string(ask + bye) &&
                         h.client.str() == Harness::as_string(answer + bye_back);
  h.client.close();
  h.backend.close();
  return delivered;
}

// Fails the n-th operation on one of the tunnel's streams, n = 0, 1, 2, … until the exchange
// gets through: each failure ends the tunnel, once, with the failing side as initiator (or the
// client, once its close frame has passed), and gives every slot back.
void fail_each_step(bool client_side, const char* failing) {
  bool completed = false;
  for (std::size_t n = 0; n < 64 && !completed; ++n) {
    SCOPED_TRACE("failing operation " + std::to_string(n));
    beast::test::fail_count fail(n);
    Harness h(chat_route(), kShortGrace, client_side ? &fail : nullptr,
              client_side ? nullptr : &fail);
    h.start();
    completed = exchange(h);
    ASSERT_TRUE(h.ends(milliseconds(2000)));
    EXPECT_EQ(h.active(), 0);
    EXPECT_EQ(h.route_tunnels(), 0u);
    const std::uint64_t by_failure = h.closes("none", failing);
    const std::uint64_t after_close = h.closes("1000", "client");
    EXPECT_EQ(by_failure + after_close, 1u);
    EXPECT_EQ(h.closes("none", "proxy") + h.closes("1000", "backend"), 0u);
    if (completed) {
      EXPECT_EQ(after_close, 1u);
    }
  }
  EXPECT_TRUE(completed) << "the exchange never got through";
}

TEST(Tunnel, AFailingClientStreamAtEveryStepEndsTheTunnelCleanly) {
  fail_each_step(true, "client");
}

TEST(Tunnel, AFailingBackendStreamAtEveryStepEndsTheTunnelCleanly) {
  fail_each_step(false, "backend");
}

}  // namespace
}  // namespace wsgate::proxy
