#include "proxy/tunnel.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "proxy/frame_tracker.hpp"
#include "proxy/reliability.hpp"

namespace wsgate::proxy {
namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

// A close frame the proxy sends to one side of a tunnel.
struct CloseOrder {
  std::uint16_t code = 1001;
  std::string reason;
  bool send = true;  // false: the side is dead or mid-frame, and gets no close frame
};

class Tunnel final : public Drainable {
 public:
  Tunnel(ProxyContext& ctx, Worker& worker, Stream& client, Stream& backend, TunnelParams params)
      : ctx_(ctx),
        worker_(worker),
        params_(std::move(params)),
        runtime_(*params_.entry->runtime),
        route_(*params_.entry->route),
        client_to_backend_(client, backend, true, runtime_.bytes_client_to_backend),
        backend_to_client_(backend, client, false, runtime_.bytes_backend_to_client),
        idle_timer_(worker.io()),
        grace_timer_(worker.io()),
        lifetime_timer_(worker.io()),
        ping_timer_(worker.io()),
        started_(Clock::now()),
        last_activity_(started_) {}

  asio::awaitable<void> run() {
    using namespace asio::experimental::awaitable_operators;
    worker_.track(this);
    runtime_.active_tunnels.inc();
    observe(client_to_backend_, params_.client_preamble);
    observe(backend_to_client_, params_.backend_preamble);
    if (route_.idle_timeout_seconds > 0)
      arm_idle_timer(std::chrono::seconds(route_.idle_timeout_seconds));
    if (route_.max_lifetime_seconds > 0) arm_lifetime_timer();
    if (route_.ping_interval_seconds > 0) arm_ping_timer();
    check_preamble_sizes();
    if (worker_.draining()) request_close(1001, "proxy is shutting down");

    co_await (pump(client_to_backend_) && pump(backend_to_client_));

    idle_timer_.cancel();
    grace_timer_.cancel();
    lifetime_timer_.cancel();
    ping_timer_.cancel();
    worker_.untrack(this);
    runtime_.active_tunnels.dec();
    runtime_.tunnel_duration.observe(
        std::chrono::duration<double>(Clock::now() - started_).count());
    const std::string code = close_code_ ? std::to_string(*close_code_) : std::string("none");
    ctx_.metrics.tunnel_closes
        .with({runtime_.id(), code, initiator_.empty() ? "proxy" : initiator_})
        .inc();
  }

  void on_drain() override { request_close(1001, "proxy is shutting down"); }

 private:
  struct Direction {
    Direction(Stream& source, Stream& destination, bool towards_backend, metrics::Counter& counter)
        : src(source), dst(destination), to_backend(towards_backend), bytes(counter) {}
    Stream& src;
    Stream& dst;
    bool to_backend;
    metrics::Counter& bytes;
    FrameTracker tracker;
    asio::cancellation_signal wait_cancel;
    bool close_injected = false;  // our close frame went to dst: nothing more may follow it
    bool done = false;
    CloseOrder close_order;       // the close frame the proxy sends into dst
    HeldHeader held;              // maxMessageBytes: a frame header not forwarded yet
    Clock::time_point last_read;  // bytes last came from src (ping liveness of src)
    PeerLiveness dst_liveness;    // proxy pings towards dst, and their answers
    bool ping_wanted = false;     // inject a ping into dst at the next frame boundary
    bool flowing = false;         // the last read filled its buffer: read again without a wait
    const char* source_name() const { return to_backend ? "client" : "backend"; }
  };

  Direction& other(Direction& d) {
    return &d == &client_to_backend_ ? backend_to_client_ : client_to_backend_;
  }

  // Feeds bytes to the tracker (all of them) and records the first close frame seen.
  void observe(Direction& d, std::span<const std::uint8_t> data) {
    if (data.empty()) return;
    d.tracker.advance(data);
    note_close_frame(d);
  }

  // After a read of n bytes: a full buffer means more is probably waiting. The plain socket is
  // put in non-blocking mode (for reads without a wait) the first time that happens only, so
  // short-lived tunnels pay no extra system call.
  void note_flow(Direction& d, std::size_t n) {
    const bool full = n == BufferPool::kBufferSize && !d.src.is_tls();
    if (full && !d.src.socket().non_blocking()) {
      boost::system::error_code ec;
      d.src.socket().non_blocking(true, ec);
      if (ec) return;
    }
    d.flowing = full;
  }

  void note_close_frame(Direction& d) {
    if (d.tracker.close_seen() && !close_code_) {
      close_code_ = d.tracker.close_code();
      initiator_ = d.source_name();
    }
  }

  asio::awaitable<void> pump(Direction& d) {
    auto& pool = worker_.buffers();
    while (!finished_) {
      if (closing_ && !d.close_injected && d.tracker.at_boundary()) {
        if (!co_await inject_close(d)) break;
        if (close_handshake_complete()) {
          finish();
          break;
        }
      }
      if (d.ping_wanted && !closing_ && d.tracker.at_boundary()) {
        if (!co_await inject_ping(d)) break;
      }
      // While bytes are flowing (the last read filled the buffer) a plain socket is read again
      // at once: the readiness wait costs an epoll_ctl, and an epoll_wait, per 16 KiB of a bulk
      // transfer. An empty socket answers would_block and the pump waits as before.
      BufferPool::Buffer buffer;
      std::size_t n = 0;
      boost::system::error_code rec = asio::error::would_block;
      if (d.flowing) {
        buffer = pool.acquire();
        n = d.src.socket().read_some(asio::buffer(buffer.get(), BufferPool::kBufferSize), rec);
        if (rec == asio::error::would_block) buffer.reset();
      }
      if (rec == asio::error::would_block) {
        if (!d.src.has_buffered_input()) {
          // Wait for readability without holding a buffer: an idle tunnel costs no buffer.
          auto [ec] = co_await d.src.socket().async_wait(
              tcp::socket::wait_read, asio::bind_cancellation_slot(d.wait_cancel.slot(), kTuple));
          if (finished_) break;
          if (ec == asio::error::operation_aborted) continue;  // close or ping: inject above
          if (ec) {
            end_with_error(d, ec);
            break;
          }
        }
        buffer = pool.acquire();
        auto [read_ec, read_n] = co_await d.src.async_read_some(
            asio::buffer(buffer.get(), BufferPool::kBufferSize), kTuple);
        if (finished_) break;
        rec = read_ec;
        n = read_n;
      }
      if (rec) {
        if (rec == asio::error::eof || rec == asio::ssl::error::stream_truncated) {
          end_with_eof(d);
        } else {
          end_with_error(d, rec);
        }
        break;
      }
      note_flow(d, n);
      const auto previous_activity = last_activity_;
      const auto frames_before = d.tracker.frames();
      const auto pongs_before = d.tracker.pongs();
      last_activity_ = Clock::now();
      d.last_read = last_activity_;
      const std::span<const std::uint8_t> data(reinterpret_cast<const std::uint8_t*>(buffer.get()),
                                               n);
      std::size_t forward = n;
      std::size_t tracked = n;   // bytes the tracker has seen; the rest is seen after the write
      std::size_t held_out = 0;  // held header bytes that go out before data
      std::optional<ForwardPlan> plan;
      if (d.close_injected) {
        forward = 0;  // only watching for the peer's close reply now
        tracked = 0;
      } else if (closing_) {
        held_out = d.held.size;
        forward = d.tracker.advance(data, true);  // up to the end of the current frame
        tracked = forward;
        note_close_frame(d);
      } else if (route_.max_message_bytes > 0) {
        plan = plan_limited_forward(d.tracker, data, d.held, route_.max_message_bytes);
        held_out = plan->held_to_send;
        forward = plan->forward;
        tracked = plan->consumed;
        note_close_frame(d);
        if (plan->over_limit) close_for_oversized_message(d, plan->clean_cut);
      } else {
        d.tracker.advance(data);
        note_close_frame(d);
      }
      if (held_out + forward > 0) {
        const std::array<asio::const_buffer, 2> out = {asio::buffer(d.held.bytes.data(), held_out),
                                                       asio::buffer(data.data(), forward)};
        auto [wec, wn] = co_await asio::async_write(d.dst, out, kTuple);
        if (finished_) break;
        if (wec) {
          end_with_error(other(d), wec);
          break;
        }
        d.bytes.inc(held_out + forward);
      }
      if (plan) {
        apply_plan(d.held, *plan, data);
      } else {
        d.held.size = 0;  // sent above, or dropped after our close frame
      }
      if (plan && plan->over_limit && plan->clean_cut && !d.close_injected) {
        // The forwarded stream ends right before the oversized frame: a boundary for the peer
        // even though the tracker is inside that frame.
        if (!co_await inject_close(d)) break;
      } else if (closing_ && !d.close_injected && d.tracker.at_boundary()) {
        if (!co_await inject_close(d)) break;
      } else if (d.ping_wanted && !closing_ && d.tracker.at_boundary()) {
        if (!co_await inject_ping(d)) break;
      }
      if (tracked < n) {
        d.tracker.advance(data.subspan(tracked));  // discarded, but a close reply must be seen
      }
      // Pongs (answers to the proxy's pings) show that a peer is alive, not that the tunnel is
      // in use: with keepalive on, an idle tunnel must still reach idleTimeoutSeconds.
      const auto frames = d.tracker.frames() - frames_before;
      if (frames > 0 && frames == d.tracker.pongs() - pongs_before && d.tracker.at_boundary()) {
        last_activity_ = previous_activity;
      }
      if (closing_ && close_handshake_complete()) {
        finish();
        break;
      }
    }
    d.done = true;
  }

  // Writes our close frame into d's destination at a frame boundary.
  asio::awaitable<bool> inject_close(Direction& d) {
    const auto frame = make_close_frame(d.close_order.code, d.close_order.reason, d.to_backend);
    d.close_injected = true;
    if (!close_code_) {
      close_code_ = recorded_code_;
      initiator_ = "proxy";
    }
    auto [ec, n] = co_await asio::async_write(d.dst, asio::buffer(frame), kTuple);
    if (ec && !finished_) {
      end_with_error(other(d), ec);
      co_return false;
    }
    co_return !finished_;
  }

  // Writes a ping into d's destination at a frame boundary (masked towards the backend).
  // The peer's pong is forwarded to the other side like any frame: an unsolicited pong is
  // legal (RFC 6455 §5.5.3) and ignored by endpoints, and passing it costs nothing.
  asio::awaitable<bool> inject_ping(Direction& d) {
    static constexpr std::string_view kPingPayload = "wsgate";
    const auto frame = make_ping_frame(kPingPayload, d.to_backend);
    d.ping_wanted = false;
    auto [ec, n] = co_await asio::async_write(d.dst, asio::buffer(frame), kTuple);
    if (ec && !finished_) {
      end_with_error(other(d), ec);
      co_return false;
    }
    d.dst_liveness.on_ping_sent(Clock::now());
    co_return !finished_;
  }

  // Every side the proxy sent a close frame to answered with its own (a side that got none,
  // being dead or mid-frame, is not waited for).
  bool close_handshake_complete() {
    for (Direction* d : {&client_to_backend_, &backend_to_client_}) {
      if (!d->close_injected) return false;
      if (d->close_order.send && !other(*d).tracker.close_seen()) return false;
    }
    return true;
  }

  void request_close(std::uint16_t code, std::string reason) {
    request_close(CloseOrder{code, reason, true}, CloseOrder{code, reason, true}, code);
  }

  // The proxy closes the tunnel: each side gets its own close frame at a frame boundary of
  // its stream (or none); `recorded` is the code counted in wsgate_tunnel_closes_total.
  void request_close(CloseOrder to_client, CloseOrder to_backend, std::uint16_t recorded) {
    if (closing_ || finished_) return;
    if (close_code_) {
      // A close handshake is already under way between the peers: just bound its duration.
      arm_grace_timer();
      return;
    }
    if (!to_client.send && !to_backend.send) {
      finish();
      return;
    }
    closing_ = true;
    recorded_code_ = recorded;
    backend_to_client_.close_order = std::move(to_client);
    client_to_backend_.close_order = std::move(to_backend);
    for (Direction* d : {&client_to_backend_, &backend_to_client_}) {
      // Nothing more goes to a side that gets no close frame; its pump only watches now.
      if (!d->close_order.send) d->close_injected = true;
    }
    arm_grace_timer();
    // Wake pumps parked in a readiness wait so they write the close frame now.
    client_to_backend_.wait_cancel.emit(asio::cancellation_type::terminal);
    backend_to_client_.wait_cancel.emit(asio::cancellation_type::terminal);
  }

  // A timeout closes the tunnel with 1001 to both sides; counted once, by reason, and only
  // when it is what ends the tunnel.
  void close_for_timeout(const char* label, std::string reason) {
    if (closing_ || finished_) return;
    if (!close_code_) ctx_.metrics.tunnel_timeouts.with({runtime_.id(), label}).inc();
    request_close(1001, std::move(reason));
  }

  // d's source sent a message over maxMessageBytes: 1009 to that sender, 1001 to its peer
  // (when the peer's stream could be cut at a frame boundary; else it just loses TCP).
  void close_for_oversized_message(Direction& d, bool clean_cut) {
    if (closing_ || finished_) return;
    if (close_code_) {
      finish();  // the peers are closing already: no second close frame may be sent
      return;
    }
    spdlog::info("route {}: {} sent a message over maxMessageBytes {}: closing with 1009",
                 runtime_.id(), d.source_name(), route_.max_message_bytes);
    CloseOrder to_sender{1009, "message too big", true};
    CloseOrder to_peer{1001, "peer sent a message too big", clean_cut};
    if (d.to_backend) {
      request_close(std::move(to_sender), std::move(to_peer), 1009);
    } else {
      request_close(std::move(to_peer), std::move(to_sender), 1009);
    }
  }

  // Bytes sent with the handshake are already forwarded: a message over the limit among them
  // can only be answered by closing, at a boundary if the peer's stream is at one.
  void check_preamble_sizes() {
    if (route_.max_message_bytes == 0) return;
    for (Direction* d : {&client_to_backend_, &backend_to_client_}) {
      if (d->tracker.current_message_bytes() > route_.max_message_bytes) {
        close_for_oversized_message(*d, d->tracker.at_boundary());
        return;
      }
    }
  }

  void end_with_eof(Direction& d) {
    if (initiator_.empty()) initiator_ = d.source_name();
    // Half-close: pass the FIN on; the other direction keeps flowing until it ends too.
    d.dst.shutdown_send();
    if (other(d).done || closing_) {
      finish();
    } else {
      // A WebSocket peer ends TCP only after the close handshake (RFC 6455 §7.1.1); a FIN
      // with or without its close frame means the WebSocket is over (a crashed backend sends
      // no close frame). The other peer gets the close grace to end its side, not forever.
      arm_grace_timer();
    }
  }

  void end_with_error(Direction& d, const boost::system::error_code& ec) {
    if (initiator_.empty()) initiator_ = d.source_name();
    spdlog::debug("route {}: tunnel ended by {}: {}", runtime_.id(), d.source_name(), ec.message());
    finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    client_to_backend_.src.close();
    backend_to_client_.src.close();
  }

  void arm_grace_timer() {
    grace_timer_.expires_after(ctx_.options.close_grace);
    grace_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) finish();
    });
  }

  void arm_lifetime_timer() {
    lifetime_timer_.expires_at(started_ + std::chrono::seconds(route_.max_lifetime_seconds));
    lifetime_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !finished_) close_for_timeout("lifetime", "max lifetime");
    });
  }

  // Each interval, per side: ping it if it was silent for the interval; if a ping went
  // unanswered (nothing at all came back) close with 1001 to the side still alive.
  void arm_ping_timer() {
    ping_timer_.expires_after(std::chrono::seconds(route_.ping_interval_seconds));
    ping_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;
      if (!closing_ && !close_code_) on_ping_tick();
      if (!finished_) arm_ping_timer();
    });
  }

  void on_ping_tick() {
    const auto now = Clock::now();
    const auto interval = std::chrono::seconds(route_.ping_interval_seconds);
    bool backend_dead = false;
    bool client_dead = false;
    for (Direction* d : {&client_to_backend_, &backend_to_client_}) {
      // d writes to the peer being judged; what that peer sends is read by the other pump.
      const auto action = d->dst_liveness.on_tick(now, other(*d).last_read, interval);
      if (action == PeerLiveness::Action::kDead) {
        (d->to_backend ? backend_dead : client_dead) = true;
      } else if (action == PeerLiveness::Action::kPing && !d->ping_wanted) {
        d->ping_wanted = true;
        d->wait_cancel.emit(asio::cancellation_type::terminal);  // the pump injects it
      }
    }
    if (!backend_dead && !client_dead) return;
    spdlog::info("route {}: {} did not answer the proxy's ping: closing the tunnel", runtime_.id(),
                 backend_dead ? (client_dead ? "neither side" : "the backend") : "the client");
    ctx_.metrics.tunnel_timeouts.with({runtime_.id(), "ping"}).inc();
    request_close(CloseOrder{1001, "backend not answering", !client_dead},
                  CloseOrder{1001, "client not answering", !backend_dead}, 1001);
  }

  void arm_idle_timer(Clock::duration after) {
    idle_timer_.expires_after(after);
    idle_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;
      const auto idle_limit = std::chrono::seconds(route_.idle_timeout_seconds);
      const auto idle_for = Clock::now() - last_activity_;
      if (idle_for >= idle_limit) {
        close_for_timeout("idle", "idle timeout");
      } else {
        arm_idle_timer(idle_limit - idle_for);
      }
    });
  }

  ProxyContext& ctx_;
  Worker& worker_;
  TunnelParams params_;
  RouteRuntime& runtime_;
  const config::Route& route_;
  Direction client_to_backend_;
  Direction backend_to_client_;
  asio::steady_timer idle_timer_;
  asio::steady_timer grace_timer_;
  asio::steady_timer lifetime_timer_;  // maxLifetimeSeconds
  asio::steady_timer ping_timer_;      // pingIntervalSeconds
  Clock::time_point started_;
  Clock::time_point last_activity_;

  bool closing_ = false;   // the proxy decided to close: inject close frames at boundaries
  bool finished_ = false;  // sockets closed; pumps exit
  std::uint16_t recorded_code_ = 1001;       // the code counted when the proxy closes
  std::optional<std::uint16_t> close_code_;  // first close frame seen (or injected)
  std::string initiator_;
};

}  // namespace

asio::awaitable<void> run_tunnel(ProxyContext& ctx, Worker& worker, Stream& client, Stream& backend,
                                 TunnelParams params) {
  Tunnel tunnel(ctx, worker, client, backend, std::move(params));
  co_await tunnel.run();
}

}  // namespace wsgate::proxy
