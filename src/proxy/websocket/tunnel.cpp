#include "proxy/websocket/tunnel.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "proxy/websocket/frame_tracker.hpp"
#include "proxy/websocket/message_limit.hpp"
#include "proxy/websocket/peer_liveness.hpp"

namespace wsgate::proxy {

TunnelLease& TunnelLease::operator=(TunnelLease&& other) noexcept {
  if (this != &other) {
    release();
    route_ = std::exchange(other.route_, nullptr);
    client_limits_ = std::exchange(other.client_limits_, nullptr);
    client_ = std::move(other.client_);
    connection_ = std::move(other.connection_);
  }
  return *this;
}

void TunnelLease::hold_client_slot(AdmissionLimits& limits, std::string client) {
  client_limits_ = &limits;
  client_ = std::move(client);
}

void TunnelLease::release() {
  if (route_ != nullptr) route_->tunnels.fetch_sub(1, std::memory_order_relaxed);
  if (client_limits_ != nullptr) client_limits_->release_client_tunnel(client_);
  connection_.reset();
  route_ = nullptr;
  client_limits_ = nullptr;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr Clock::time_point kNever = Clock::time_point::max();

// A parked read on a plain socket lands here. Small WebSocket messages (chat, ticks, the
// echo of a handshake check) fit whole; a read that fills it means more is waiting, and the
// rest is read at once into a pooled buffer.
constexpr std::size_t kParkBytes = 256;
// SSL_read returns one record at most: a full one means more is probably waiting.
constexpr std::size_t kTlsRecordBytes = 16 * 1024;
static_assert(kTlsRecordBytes <= BufferPool::kBufferSize);
// Reads forwarded by one direction before it lets the worker's other connections run.
constexpr int kTurnsPerSlice = 16;

// A close frame the proxy sends to one side of a tunnel.
struct CloseOrder {
  std::uint16_t code = 1001;
  std::string reason;
  bool send = true;  // false: the side is dead or mid-frame, and gets no close frame
};

class Tunnel final : public SelfOwned {
 public:
  Tunnel(ProxyContext& ctx, Worker& worker, Stream client, Stream backend, TunnelParams params)
      : ctx_(ctx),
        worker_(worker),
        snapshot_(std::move(params.snapshot)),
        runtime_(*params.entry->runtime),
        route_(*params.entry->route),
        lease_(std::move(params.lease)),
        client_(std::move(client)),
        backend_(std::move(backend)),
        client_to_backend_(client_, backend_, true, runtime_.bytes_client_to_backend),
        backend_to_client_(backend_, client_, false, runtime_.bytes_backend_to_client),
        timer_(worker.io()),
        started_(Clock::now()),
        last_activity_(started_) {}

  void start(std::span<const std::uint8_t> client_preamble,
             std::span<const std::uint8_t> backend_preamble) {
    worker_.adopt(this);
    runtime_.active_tunnels.inc();
    observe(client_to_backend_, client_preamble);
    observe(backend_to_client_, backend_preamble);
    client_to_backend_.last_read = started_;
    backend_to_client_.last_read = started_;
    if (route_.idle_timeout_seconds > 0) {
      idle_check_at_ = started_ + std::chrono::seconds(route_.idle_timeout_seconds);
    }
    if (route_.max_lifetime_seconds > 0) {
      lifetime_at_ = started_ + std::chrono::seconds(route_.max_lifetime_seconds);
    }
    if (route_.ping_interval_seconds > 0) {
      next_ping_at_ = started_ + std::chrono::seconds(route_.ping_interval_seconds);
    }
    check_preamble_sizes();
    if (worker_.draining()) request_close(1001, "proxy is shutting down");
    schedule_timer();
    drive(client_to_backend_);
    drive(backend_to_client_);
    release_if_done();
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
    HeldHeader held;              // maxMessageBytes: a frame header not forwarded yet
    CloseOrder close_order;       // the close frame the proxy sends into dst
    PeerLiveness dst_liveness;    // proxy pings towards dst, and their answers
    Clock::time_point last_read;  // bytes last came from src (ping liveness of src)
    bool close_injected = false;  // our close frame went to dst: nothing more may follow it
    bool done = false;            // src ended (or failed): this direction reads no more
    bool ping_wanted = false;     // inject a ping into dst at the next frame boundary
    bool flowing = false;         // the last read filled its buffer: read again without a wait
    bool reading = false;         // a read (or readiness wait) on src is pending
    bool writing = false;         // a write into dst is pending
    bool read_ready = false;      // a read finished and its bytes wait to be processed

    // The read being processed: its bytes live in `park` or in `buffer`.
    boost::system::error_code read_ec;
    std::size_t read_n = 0;
    const std::uint8_t* read_data = nullptr;
    BufferPool::Buffer buffer;
    std::array<std::uint8_t, kParkBytes> park{};

    // What the write in flight leaves to do afterwards (see after_write).
    std::optional<ForwardPlan> plan;
    std::size_t tracked = 0;  // bytes of the read the tracker has seen before the write
    std::size_t written = 0;  // held + data bytes the write sends
    std::uint64_t frames_before = 0;
    std::uint64_t pongs_before = 0;
    Clock::time_point previous_activity;
    std::vector<std::uint8_t> control;  // a control frame whose write is in flight
    bool control_is_ping = false;

    const char* source_name() const { return to_backend ? "client" : "backend"; }
    std::span<const std::uint8_t> read_bytes() const { return {read_data, read_n}; }
  };

  Direction& other(Direction& d) {
    return &d == &client_to_backend_ ? backend_to_client_ : client_to_backend_;
  }

  // Every asynchronous operation's handler goes through here: the tunnel deletes itself once
  // it is finished and no handler of it is still pending.
  template <typename F>
  auto handler(F&& body) {
    ++outstanding_;
    return [this, body = std::forward<F>(body)](auto&&... args) mutable {
      --outstanding_;
      body(std::forward<decltype(args)>(args)...);
      release_if_done();
    };
  }

  void release_if_done() {
    if (!finished_ || outstanding_ > 0) return;
    runtime_.active_tunnels.dec();
    runtime_.tunnel_duration.observe(
        std::chrono::duration<double>(Clock::now() - started_).count());
    const std::string code = close_code_ ? std::to_string(*close_code_) : std::string("none");
    ctx_.metrics.tunnel_closes.with({runtime_.id(), code, initiator_ ? initiator_ : "proxy"}).inc();
    worker_.destroy(this);  // the last thing this object does
  }

  // Runs direction d as far as it can go without waiting: control frames due at a frame
  // boundary, then read -> forward -> read until a read or a write has to wait. Called from
  // handlers only (never from inside itself), so its state flags are all it needs.
  void drive(Direction& d) {
    for (int turn = 0; turn < kTurnsPerSlice; ++turn) {
      if (finished_ || d.done || d.writing) return;
      if (closing_ && close_handshake_complete()) {
        finish();
        return;
      }
      if (closing_ && !d.close_injected && d.tracker.at_boundary()) {
        inject_close(d);
        continue;
      }
      if (d.ping_wanted && !closing_ && d.tracker.at_boundary()) {
        inject_ping(d);
        continue;
      }
      if (!d.read_ready) {
        if (d.reading || !read_now(d)) return;  // parked: the read's handler drives on
      }
      d.read_ready = false;
      process(d);
    }
    // A busy direction yields to the worker's other connections, then goes on.
    asio::post(worker_.io(), handler([this, &d] { drive(d); }));
  }

  // Reads from d's source without waiting if bytes are (probably) there; else parks a read.
  // True when a read result is ready to process.
  bool read_now(Direction& d) {
    auto& pool = worker_.buffers();
    if (d.src.is_tls()) {
      if (d.flowing || d.src.has_buffered_input()) {
        d.buffer = pool.acquire();
        const auto attempt = d.src.tls()->try_read(d.buffer.get(), kTlsRecordBytes);
        if (attempt.next == TlsStream::Attempt::Next::kDone) {
          set_read(d, attempt.ec, attempt.bytes, d.buffer.get());
          d.flowing = attempt.bytes == kTlsRecordBytes;
          return true;
        }
        d.buffer.reset();
        d.flowing = false;
        park_wait(d, attempt.next == TlsStream::Attempt::Next::kWaitWrite ? tcp::socket::wait_write
                                                                          : tcp::socket::wait_read);
        return false;
      }
      park_wait(d, tcp::socket::wait_read);
      return false;
    }
    if (d.flowing) {
      d.buffer = pool.acquire();
      boost::system::error_code ec;
      const std::size_t n =
          d.src.socket().read_some(asio::buffer(d.buffer.get(), BufferPool::kBufferSize), ec);
      if (ec != asio::error::would_block) {
        set_read(d, ec, n, d.buffer.get());
        d.flowing = !ec && n == BufferPool::kBufferSize;
        return true;
      }
      d.buffer.reset();
      d.flowing = false;
    }
    park_read(d);
    return false;
  }

  void set_read(Direction& d, const boost::system::error_code& ec, std::size_t n, const void* at) {
    d.read_ec = ec;
    d.read_n = ec ? 0 : n;
    d.read_data = static_cast<const std::uint8_t*>(at);
  }

  // A plain socket: Asio tries the read at once and, if nothing is there, waits for the next
  // readiness edge without an epoll_ctl (a readiness-only wait re-arms the descriptor).
  void park_read(Direction& d) {
    d.reading = true;
    d.src.socket().async_read_some(
        asio::buffer(d.park),
        handler([this, &d](const boost::system::error_code& ec, std::size_t n) {
          d.reading = false;
          if (finished_) return;
          set_read(d, ec, n, d.park.data());
          // A read that filled the park buffer left more behind: read it without a wait.
          d.flowing = !ec && n == kParkBytes;
          d.read_ready = true;
          drive(d);
        }));
  }

  // TLS: wait for the readiness OpenSSL asked for, then attempt the read again.
  void park_wait(Direction& d, tcp::socket::wait_type what) {
    d.reading = true;
    d.src.socket().async_wait(what, handler([this, &d](const boost::system::error_code& ec) {
                                d.reading = false;
                                if (finished_) return;
                                if (ec) {
                                  set_read(d, ec, 0, nullptr);
                                  d.read_ready = true;
                                } else {
                                  d.flowing = true;  // attempt the read now
                                }
                                drive(d);
                              }));
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

  // One read's bytes (or its end): decide what goes on, and write it into d's destination.
  void process(Direction& d) {
    if (d.read_ec) {
      d.buffer.reset();
      d.done = true;
      if (d.read_ec == asio::error::eof || d.read_ec == asio::ssl::error::stream_truncated) {
        end_with_eof(d);
      } else {
        end_with_error(d, d.read_ec);
      }
      return;
    }
    const auto data = d.read_bytes();
    const std::size_t n = data.size();
    d.previous_activity = last_activity_;
    d.frames_before = d.tracker.frames();
    d.pongs_before = d.tracker.pongs();
    last_activity_ = Clock::now();
    d.last_read = last_activity_;
    std::size_t forward = n;
    std::size_t held_out = 0;  // held header bytes that go out before data
    d.tracked = n;             // bytes the tracker has seen; the rest is seen after the write
    d.plan.reset();
    if (d.close_injected) {
      forward = 0;  // only watching for the peer's close reply now
      d.tracked = 0;
    } else if (closing_) {
      held_out = d.held.size;
      forward = d.tracker.advance(data, true);  // up to the end of the current frame
      d.tracked = forward;
      note_close_frame(d);
    } else if (route_.max_message_bytes > 0) {
      d.plan = plan_limited_forward(d.tracker, data, d.held, route_.max_message_bytes);
      held_out = d.plan->held_to_send;
      forward = d.plan->forward;
      d.tracked = d.plan->consumed;
      note_close_frame(d);
      if (d.plan->over_limit) close_for_oversized_message(d, d.plan->clean_cut);
    } else {
      d.tracker.advance(data);
      note_close_frame(d);
    }
    d.written = held_out + forward;
    if (d.written == 0) {
      after_write(d);
      return;
    }
    const std::array<asio::const_buffer, 2> out = {asio::buffer(d.held.bytes.data(), held_out),
                                                   asio::buffer(data.data(), forward)};
    // Usually the whole of it fits in the socket buffer: no round trip through the scheduler,
    // which an asynchronous write costs even when it completes at once.
    boost::system::error_code ec;
    std::size_t sent = write_now(d.dst, out, ec);
    if (ec) {
      end_with_error(other(d), ec);
      return;
    }
    if (sent == d.written) {
      d.bytes.inc(d.written);
      after_write(d);
      return;
    }
    // The rest waits for the destination to drain (backpressure: no read meanwhile).
    std::array<asio::const_buffer, 2> rest = out;
    for (auto& b : rest) {
      const std::size_t skip = std::min(sent, b.size());
      b += skip;
      sent -= skip;
    }
    d.writing = true;
    asio::async_write(d.dst, rest,
                      handler([this, &d](const boost::system::error_code& ec, std::size_t) {
                        d.writing = false;
                        if (finished_) return;
                        if (ec) {
                          end_with_error(other(d), ec);
                          return;
                        }
                        d.bytes.inc(d.written);
                        after_write(d);
                        drive(d);
                      }));
  }

  // Writes as much of `out` into `dst` as it takes right now, without waiting; returns the
  // bytes written. `ec` is set on a failure, not when the socket is merely full.
  static std::size_t write_now(Stream& dst, const std::array<asio::const_buffer, 2>& out,
                               boost::system::error_code& ec) {
    if (!dst.is_tls()) {
      // (One buffer when the first is empty: send() rather than sendmsg() with an empty iovec.)
      const std::size_t sent = out[0].size() == 0 ? dst.socket().write_some(out[1], ec)
                                                  : dst.socket().write_some(out, ec);
      if (ec == asio::error::would_block) ec = {};
      return ec ? 0 : sent;
    }
    std::size_t sent = 0;
    for (const auto& buffer : out) {
      const auto* data = static_cast<const char*>(buffer.data());
      std::size_t left = buffer.size();
      while (left > 0) {
        const auto attempt = dst.tls()->try_write(data, left);
        if (attempt.next != TlsStream::Attempt::Next::kDone) return sent;  // the rest waits
        if (attempt.ec) {
          ec = attempt.ec;
          return sent;
        }
        data += attempt.bytes;
        left -= attempt.bytes;
        sent += attempt.bytes;
      }
    }
    return sent;
  }

  // The rest of a read's processing, once its bytes are in the destination.
  void after_write(Direction& d) {
    const auto data = d.read_bytes();
    if (d.plan) {
      apply_plan(d.held, *d.plan, data);
    } else {
      d.held.size = 0;  // sent, or dropped after our close frame
    }
    // Decided before the discarded rest is tracked: the boundary that counts is where the
    // forwarded bytes end.
    bool close_now = false;
    bool ping_now = false;
    if (d.plan && d.plan->over_limit && d.plan->clean_cut && !d.close_injected) {
      // The forwarded stream ends right before the oversized frame: a boundary for the peer
      // even though the tracker is inside that frame.
      close_now = true;
    } else if (closing_ && !d.close_injected && d.tracker.at_boundary()) {
      close_now = true;
    } else if (d.ping_wanted && !closing_ && d.tracker.at_boundary()) {
      ping_now = true;
    }
    if (d.tracked < data.size()) {
      d.tracker.advance(data.subspan(d.tracked));  // discarded, but a close reply must be seen
    }
    // Pongs (answers to the proxy's pings) show that a peer is alive, not that the tunnel is
    // in use: with keepalive on, an idle tunnel must still reach idleTimeoutSeconds.
    const auto frames = d.tracker.frames() - d.frames_before;
    if (frames > 0 && frames == d.tracker.pongs() - d.pongs_before && d.tracker.at_boundary()) {
      last_activity_ = d.previous_activity;
    }
    d.buffer.reset();
    d.read_n = 0;
    d.plan.reset();
    if (close_now) {
      inject_close(d);
    } else if (ping_now) {
      inject_ping(d);
    }
  }

  // Writes our close frame into d's destination at a frame boundary.
  void inject_close(Direction& d) {
    d.close_injected = true;
    if (!close_code_) {
      close_code_ = recorded_code_;
      initiator_ = "proxy";
    }
    write_control(d, make_close_frame(d.close_order.code, d.close_order.reason, d.to_backend),
                  false);
  }

  // Writes a ping into d's destination at a frame boundary (masked towards the backend).
  // The peer's pong is forwarded to the other side like any frame: an unsolicited pong is
  // legal (RFC 6455 §5.5.3) and ignored by endpoints, and passing it costs nothing.
  void inject_ping(Direction& d) {
    static constexpr std::string_view kPingPayload = "wsgate";
    d.ping_wanted = false;
    write_control(d, make_ping_frame(kPingPayload, d.to_backend), true);
  }

  void write_control(Direction& d, std::vector<std::uint8_t> frame, bool ping) {
    boost::system::error_code ec;
    const std::array<asio::const_buffer, 2> out = {asio::const_buffer(), asio::buffer(frame)};
    const std::size_t sent = write_now(d.dst, out, ec);
    if (ec) {
      end_with_error(other(d), ec);
      return;
    }
    if (sent == frame.size()) {
      if (ping) d.dst_liveness.on_ping_sent(Clock::now());
      return;
    }
    d.control = std::move(frame);
    d.control_is_ping = ping;
    d.writing = true;
    asio::async_write(d.dst, asio::buffer(d.control.data() + sent, d.control.size() - sent),
                      handler([this, &d](const boost::system::error_code& ec, std::size_t) {
                        d.writing = false;
                        d.control = {};
                        if (finished_) return;
                        if (ec) {
                          end_with_error(other(d), ec);
                          return;
                        }
                        if (d.control_is_ping) d.dst_liveness.on_ping_sent(Clock::now());
                        drive(d);
                      }));
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
      // Nothing more goes to a side that gets no close frame; its direction only watches now.
      if (!d->close_order.send) d->close_injected = true;
    }
    arm_grace_timer();
    wake(client_to_backend_);
    wake(backend_to_client_);
  }

  // A direction parked in a read gets to write a control frame now. Posted: request_close
  // and pings may be decided while a direction is being driven.
  void wake(Direction& d) {
    asio::post(worker_.io(), handler([this, &d] { drive(d); }));
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
    if (initiator_ == nullptr) initiator_ = d.source_name();
    if (other(d).done || closing_) {
      finish();  // both sockets close now: a FIN first would only cost a system call
      return;
    }
    // Half-close: pass the FIN on; the other direction keeps flowing until it ends too.
    d.dst.shutdown_send();
    // A WebSocket peer ends TCP only after the close handshake (RFC 6455 §7.1.1); a FIN
    // with or without its close frame means the WebSocket is over (a crashed backend sends
    // no close frame). The other peer gets the close grace to end its side, not forever.
    arm_grace_timer();
  }

  void end_with_error(Direction& d, const boost::system::error_code& ec) {
    if (initiator_ == nullptr) initiator_ = d.source_name();
    spdlog::debug("route {}: tunnel ended by {}: {}", runtime_.id(), d.source_name(), ec.message());
    finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    client_to_backend_.buffer.reset();
    backend_to_client_.buffer.reset();
    client_.close();
    backend_.close();
    timer_.cancel();
  }

  // One timer per tunnel, set to the earliest of its deadlines (close grace, lifetime, next
  // ping tick, next idle check); each expiry handles whatever is due and sets the next.
  void arm_grace_timer() {
    grace_at_ = Clock::now() + ctx_.options.close_grace;
    schedule_timer();
  }

  void schedule_timer() {
    if (finished_) return;
    const auto next = std::min({grace_at_, lifetime_at_, next_ping_at_, idle_check_at_});
    if (next == kNever || next >= timer_due_) return;  // the pending wait comes first
    timer_due_ = next;
    timer_.expires_at(next);  // a pending wait completes with operation_aborted
    timer_.async_wait(handler([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;  // replaced by an earlier deadline, or the tunnel ended
      timer_due_ = kNever;
      on_timer(Clock::now());
      schedule_timer();
    }));
  }

  void on_timer(Clock::time_point now) {
    if (now >= grace_at_) {
      finish();
      return;
    }
    if (now >= lifetime_at_) {
      lifetime_at_ = kNever;
      if (!finished_) close_for_timeout("lifetime", "max lifetime");
    }
    if (now >= next_ping_at_) {
      next_ping_at_ = now + std::chrono::seconds(route_.ping_interval_seconds);
      if (!closing_ && !close_code_) on_ping_tick(now);
    }
    if (now >= idle_check_at_) {
      const auto idle_limit = std::chrono::seconds(route_.idle_timeout_seconds);
      const auto idle_for = now - last_activity_;
      if (idle_for >= idle_limit) {
        idle_check_at_ = kNever;
        close_for_timeout("idle", "idle timeout");
      } else {
        idle_check_at_ = now + (idle_limit - idle_for);
      }
    }
  }

  // Each interval, per side: ping it if it was silent for the interval; if a ping went
  // unanswered (nothing at all came back) close with 1001 to the side still alive.
  void on_ping_tick(Clock::time_point now) {
    const auto interval = std::chrono::seconds(route_.ping_interval_seconds);
    bool backend_dead = false;
    bool client_dead = false;
    for (Direction* d : {&client_to_backend_, &backend_to_client_}) {
      // d writes to the peer being judged; what that peer sends is read by the other direction.
      const auto action = d->dst_liveness.on_tick(now, other(*d).last_read, interval);
      if (action == PeerLiveness::Action::kDead) {
        (d->to_backend ? backend_dead : client_dead) = true;
      } else if (action == PeerLiveness::Action::kPing && !d->ping_wanted) {
        d->ping_wanted = true;
        wake(*d);  // the direction injects it at its next frame boundary
      }
    }
    if (!backend_dead && !client_dead) return;
    spdlog::info("route {}: {} did not answer the proxy's ping: closing the tunnel", runtime_.id(),
                 backend_dead ? (client_dead ? "neither side" : "the backend") : "the client");
    ctx_.metrics.tunnel_timeouts.with({runtime_.id(), "ping"}).inc();
    request_close(CloseOrder{1001, "backend not answering", !client_dead},
                  CloseOrder{1001, "client not answering", !backend_dead}, 1001);
  }

  ProxyContext& ctx_;
  Worker& worker_;
  SnapshotPtr snapshot_;  // keeps route_ and runtime_ alive
  RouteRuntime& runtime_;
  const config::Route& route_;
  TunnelLease lease_;
  Stream client_;
  Stream backend_;
  Direction client_to_backend_;
  Direction backend_to_client_;
  asio::steady_timer timer_;
  Clock::time_point timer_due_ = kNever;  // expiry of the pending timer wait
  Clock::time_point grace_at_ = kNever;
  Clock::time_point lifetime_at_ = kNever;   // maxLifetimeSeconds
  Clock::time_point next_ping_at_ = kNever;  // pingIntervalSeconds
  Clock::time_point idle_check_at_ = kNever;
  Clock::time_point started_;
  Clock::time_point last_activity_;

  int outstanding_ = 0;    // handlers of this tunnel still pending
  bool closing_ = false;   // the proxy decided to close: inject close frames at boundaries
  bool finished_ = false;  // sockets closed; pending handlers drain, then the tunnel goes
  std::uint16_t recorded_code_ = 1001;       // the code counted when the proxy closes
  std::optional<std::uint16_t> close_code_;  // first close frame seen (or injected)
  const char* initiator_ = nullptr;          // "client", "backend" or "proxy"
};

}  // namespace

void start_tunnel(ProxyContext& ctx, Worker& worker, Stream client, Stream backend,
                  TunnelParams params) {
  // Both sockets are read and written here without waiting when they can be: the user-level
  // non-blocking flag makes such calls return would_block instead of blocking the worker.
  for (Stream* s : {&client, &backend}) {
    if (!s->is_tls() && !s->socket().non_blocking()) {
      boost::system::error_code ec;
      s->socket().non_blocking(true, ec);
    }
  }
  const auto client_preamble = params.client_preamble;
  const auto backend_preamble = params.backend_preamble;
  auto* tunnel = new Tunnel(ctx, worker, std::move(client), std::move(backend), std::move(params));
  tunnel->start(client_preamble, backend_preamble);
}

}  // namespace wsgate::proxy
