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

namespace wsgate::proxy {
namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;

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
    if (worker_.draining()) request_close(1001, "proxy is shutting down");

    co_await (pump(client_to_backend_) && pump(backend_to_client_));

    idle_timer_.cancel();
    grace_timer_.cancel();
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
      if (!d.src.has_buffered_input()) {
        // Wait for readability without holding a buffer: an idle tunnel costs no buffer.
        auto [ec] = co_await d.src.socket().async_wait(
            tcp::socket::wait_read, asio::bind_cancellation_slot(d.wait_cancel.slot(), kTuple));
        if (finished_) break;
        if (ec == asio::error::operation_aborted) continue;  // close requested: inject above
        if (ec) {
          end_with_error(d, ec);
          break;
        }
      }
      auto buffer = pool.acquire();
      auto [rec, n] = co_await d.src.async_read_some(
          asio::buffer(buffer.get(), BufferPool::kBufferSize), kTuple);
      if (finished_) break;
      if (rec) {
        if (rec == asio::error::eof || rec == asio::ssl::error::stream_truncated) {
          end_with_eof(d);
        } else {
          end_with_error(d, rec);
        }
        break;
      }
      last_activity_ = Clock::now();
      const std::span<const std::uint8_t> data(reinterpret_cast<const std::uint8_t*>(buffer.get()),
                                               n);
      std::size_t forward = n;
      if (d.close_injected) {
        forward = 0;  // only watching for the peer's close reply now
      } else if (closing_) {
        forward = d.tracker.advance(data, true);  // up to the end of the current frame
        note_close_frame(d);
      } else {
        d.tracker.advance(data);
        note_close_frame(d);
      }
      if (forward > 0) {
        auto [wec, wn] =
            co_await asio::async_write(d.dst, asio::buffer(data.data(), forward), kTuple);
        if (finished_) break;
        if (wec) {
          end_with_error(other(d), wec);
          break;
        }
        d.bytes.inc(forward);
      }
      if (closing_ && !d.close_injected && d.tracker.at_boundary()) {
        if (!co_await inject_close(d)) break;
      }
      if (forward < n) {
        d.tracker.advance(data.subspan(forward));  // discarded, but a close reply must be seen
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
    const auto frame = make_close_frame(requested_code_, requested_reason_, d.to_backend);
    d.close_injected = true;
    if (!close_code_) {
      close_code_ = requested_code_;
      initiator_ = "proxy";
    }
    auto [ec, n] = co_await asio::async_write(d.dst, asio::buffer(frame), kTuple);
    if (ec && !finished_) {
      end_with_error(other(d), ec);
      co_return false;
    }
    co_return !finished_;
  }

  // Both sides got our close frame and both answered with theirs.
  bool close_handshake_complete() const {
    return client_to_backend_.close_injected && backend_to_client_.close_injected &&
           client_to_backend_.tracker.close_seen() && backend_to_client_.tracker.close_seen();
  }

  void request_close(std::uint16_t code, std::string reason) {
    if (closing_ || finished_) return;
    if (close_code_) {
      // A close handshake is already under way between the peers: just bound its duration.
      arm_grace_timer();
      return;
    }
    closing_ = true;
    requested_code_ = code;
    requested_reason_ = std::move(reason);
    arm_grace_timer();
    // Wake pumps parked in a readiness wait so they write the close frame now.
    client_to_backend_.wait_cancel.emit(asio::cancellation_type::terminal);
    backend_to_client_.wait_cancel.emit(asio::cancellation_type::terminal);
  }

  void end_with_eof(Direction& d) {
    if (initiator_.empty()) initiator_ = d.source_name();
    // Half-close: pass the FIN on; the other direction keeps flowing until it ends too.
    d.dst.shutdown_send();
    if (other(d).done || closing_) {
      finish();
    } else if (d.tracker.close_seen()) {
      // This peer sent its close frame and then its FIN: the WebSocket is over. The other
      // peer gets the close grace to end its side, not forever (it may never send a FIN).
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

  void arm_idle_timer(Clock::duration after) {
    idle_timer_.expires_after(after);
    idle_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;
      const auto idle_limit = std::chrono::seconds(route_.idle_timeout_seconds);
      const auto idle_for = Clock::now() - last_activity_;
      if (idle_for >= idle_limit) {
        request_close(1001, "idle timeout");
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
  Clock::time_point started_;
  Clock::time_point last_activity_;

  bool closing_ = false;   // the proxy decided to close: inject close frames at boundaries
  bool finished_ = false;  // sockets closed; pumps exit
  std::uint16_t requested_code_ = 1001;
  std::string requested_reason_;
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
