// The life of a tunnel: start, the close decisions of TunnelControl carried out, one timer
// for the deadlines of TunnelDeadlines, and the end. The data path is in tunnel_pump.cpp.

#include "proxy/websocket/tunnel.hpp"

#include <spdlog/spdlog.h>

#include "proxy/websocket/tunnel_pump.hpp"

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

TunnelDeadlines::Limits deadline_limits(const config::Route& route, const ProxyOptions& options) {
  TunnelDeadlines::Limits limits;
  limits.idle = std::chrono::seconds(route.idle_timeout_seconds);
  limits.lifetime = std::chrono::seconds(route.max_lifetime_seconds);
  limits.ping_interval = std::chrono::seconds(route.ping_interval_seconds);
  limits.close_grace = options.close_grace;
  return limits;
}

}  // namespace

Tunnel::Tunnel(ProxyContext& ctx, Worker& worker, Stream client, Stream backend,
               TunnelParams params)
    : ctx_(ctx),
      worker_(worker),
      snapshot_(std::move(params.snapshot)),
      runtime_(*params.entry->runtime),
      route_(*params.entry->route),
      lease_(std::move(params.lease)),
      client_(std::move(client)),
      backend_(std::move(backend)),
      from_client_(TunnelControl::kFromClient, client_, backend_, runtime_.bytes_client_to_backend),
      from_backend_(TunnelControl::kFromBackend, backend_, client_,
                    runtime_.bytes_backend_to_client),
      timer_(worker.io()),
      started_(Clock::now()),
      control_(started_),
      deadlines_(deadline_limits(route_, ctx.options), started_) {}

void Tunnel::start(std::span<const std::uint8_t> client_preamble,
                   std::span<const std::uint8_t> backend_preamble) {
  worker_.adopt(this);
  runtime_.active_tunnels.inc();
  control_.observe(TunnelControl::kFromClient, client_preamble);
  control_.observe(TunnelControl::kFromBackend, backend_preamble);
  check_preamble_sizes();
  if (worker_.draining()) request_close(1001, "proxy is shutting down");
  schedule_timer();
  drive(from_client_);
  drive(from_backend_);
  release_if_done();
}

void Tunnel::release() {
  runtime_.active_tunnels.dec();
  runtime_.tunnel_duration.observe(std::chrono::duration<double>(Clock::now() - started_).count());
  ctx_.metrics.tunnel_closes
      .with({runtime_.id(), control_.code_label(), control_.initiator_label()})
      .inc();
  worker_.destroy(this);  // the last thing this object does
}

void Tunnel::apply(TunnelControl::Next next) {
  if (finished_) return;
  if (next == TunnelControl::Next::kFinish) {
    finish();
  } else if (next == TunnelControl::Next::kBoundGrace) {
    arm_grace_timer();
  } else if (next == TunnelControl::Next::kClose) {
    arm_grace_timer();
    wake(from_client_);
    wake(from_backend_);
  }
}

void Tunnel::request_close(std::uint16_t code, const std::string& reason) {
  if (!finished_) apply(control_.request_close(code, reason));
}

// A timeout closes the tunnel with 1001 to both sides; counted once, by reason, and only when
// it is what ends the tunnel.
void Tunnel::close_for_timeout(const char* label, const std::string& reason) {
  if (control_.closing() || finished_) return;
  if (!control_.close_started()) ctx_.metrics.tunnel_timeouts.with({runtime_.id(), label}).inc();
  request_close(1001, reason);
}

void Tunnel::close_for_oversized_message(Direction& d, bool clean_cut) {
  if (control_.closing() || finished_) return;
  if (control_.close_started()) {
    finish();  // the peers are closing already: no second close frame may be sent
    return;
  }
  spdlog::info("route {}: {} sent a message over maxMessageBytes {}: closing with 1009",
               runtime_.id(), d.source_name(), route_.max_message_bytes);
  apply(control_.close_for_oversized_message(d.way, clean_cut));
}

// Bytes sent with the handshake are already forwarded: a message over the limit among them can
// only be answered by closing, at a boundary if the peer's stream is at one.
void Tunnel::check_preamble_sizes() {
  if (route_.max_message_bytes == 0) return;
  for (Direction* d : {&from_client_, &from_backend_}) {
    const FrameTracker& t = tracker(*d);
    if (t.current_message_bytes() > route_.max_message_bytes) {
      close_for_oversized_message(*d, t.at_boundary());
      return;
    }
  }
}

void Tunnel::end_with_eof(Direction& d) {
  control_.on_end(d.way);
  if (other(d).done || control_.closing()) {
    finish();  // both streams close now: a FIN first would only cost a system call
    return;
  }
  // Half-close: pass the FIN on; the other direction keeps flowing until it ends too.
  d.dst.shutdown_send();
  // A WebSocket peer ends TCP only after the close handshake (RFC 6455 §7.1.1); a FIN with or
  // without its close frame means the WebSocket is over (a crashed backend sends no close
  // frame). The other peer gets the close grace to end its side, not forever.
  arm_grace_timer();
}

void Tunnel::end_with_error(Direction& d, const boost::system::error_code& ec) {
  control_.on_end(d.way);
  spdlog::debug("route {}: tunnel ended by {}: {}", runtime_.id(), d.source_name(), ec.message());
  finish();
}

void Tunnel::finish() {
  if (finished_) return;
  finished_ = true;
  from_client_.buffer.reset();
  from_backend_.buffer.reset();
  client_.close();
  backend_.close();
  timer_.cancel();
}

// One timer per tunnel, set to the earliest of its deadlines; each expiry handles whatever is
// due and sets the next.
void Tunnel::arm_grace_timer() {
  deadlines_.arm_grace(Clock::now());
  schedule_timer();
}

void Tunnel::schedule_timer() {
  if (finished_) return;
  const auto next = deadlines_.next();
  if (next == TunnelDeadlines::kNever || next >= timer_due_) return;  // the pending wait is first
  timer_due_ = next;
  timer_.expires_at(next);  // a pending wait completes with operation_aborted
  timer_.async_wait(handler([this](const boost::system::error_code& ec) {
    if (ec || finished_) return;  // replaced by an earlier deadline, or the tunnel ended
    timer_due_ = TunnelDeadlines::kNever;
    on_timer(Clock::now());
    schedule_timer();
  }));
}

void Tunnel::on_timer(Clock::time_point now) {
  const TunnelDeadlines::Due due = deadlines_.expire(now);
  if (due.grace) {
    finish();
    return;
  }
  if (due.lifetime) close_for_timeout("lifetime", "max lifetime");
  if (due.ping_tick && !control_.closing() && !control_.close_started()) on_ping_tick(now);
  if (due.idle) close_for_timeout("idle", "idle timeout");
}

void Tunnel::on_ping_tick(Clock::time_point now) {
  const auto tick = control_.on_ping_tick(now, deadlines_.ping_interval());
  if (tick.wake[TunnelControl::kFromClient]) wake(from_client_);
  if (tick.wake[TunnelControl::kFromBackend]) wake(from_backend_);
  if (!tick.backend_dead && !tick.client_dead) return;
  spdlog::info(
      "route {}: {} did not answer the proxy's ping: closing the tunnel", runtime_.id(),
      tick.backend_dead ? (tick.client_dead ? "neither side" : "the backend") : "the client");
  ctx_.metrics.tunnel_timeouts.with({runtime_.id(), "ping"}).inc();
  apply(tick.next);
}

void start_tunnel(ProxyContext& ctx, Worker& worker, Stream client, Stream backend,
                  TunnelParams params) {
  // Both streams are read and written here without waiting when they can be.
  client.make_non_blocking();
  backend.make_non_blocking();
  const auto client_preamble = params.client_preamble;
  const auto backend_preamble = params.backend_preamble;
  auto* tunnel = new Tunnel(ctx, worker, std::move(client), std::move(backend), std::move(params));
  tunnel->start(client_preamble, backend_preamble);
}

}  // namespace wsgate::proxy
