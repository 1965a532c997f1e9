// The data path of a tunnel: each direction read -> forward -> read, so a slow reader stalls
// its writer (backpressure), with the proxy's control frames injected at frame boundaries.

#include "proxy/websocket/tunnel_pump.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>

namespace wsgate::proxy {

namespace {

// Writes as much of `out` into `dst` as it takes right now, without waiting; returns the bytes
// written. `ec` is set on a failure, not when the destination is merely full.
std::size_t write_now(Stream& dst, const std::array<asio::const_buffer, 2>& out,
                      boost::system::error_code& ec) {
  // (One buffer when the first is empty: send() rather than sendmsg() with an empty iovec.)
  const std::size_t sent =
      out[0].size() == 0 ? dst.try_write_some(out[1], ec) : dst.try_write_some(out, ec);
  if (ec == asio::error::would_block) {
    ec = {};
    return 0;
  }
  return ec ? 0 : sent;
}

}  // namespace

// Runs direction d as far as it can go without waiting: control frames due at a frame
// boundary, then read -> forward -> read until a read or a write has to wait. Called from
// handlers only (never from inside itself), so its state flags are all it needs.
void Tunnel::drive(Direction& d) {
  for (int turn = 0; turn < kTurnsPerSlice; ++turn) {
    if (finished_ || d.done || d.writing) return;
    if (control_.closing() && control_.close_handshake_complete()) {
      finish();
      return;
    }
    if (const auto frame = control_.due(d.way); frame != TunnelControl::Frame::kNone) {
      inject(d, frame);
      continue;
    }
    if (!d.read_ready) {
      if (d.reading || !read_now(d)) return;  // parked: the read's handler drives on
    }
    d.read_ready = false;
    process(d);
  }
  // A busy direction yields to the worker's other connections, then goes on.
  wake(d);
}

void Tunnel::wake(Direction& d) {
  asio::post(worker_.io(), handler([this, &d] { drive(d); }));
}

// Reads from d's source without waiting if bytes are (probably) there; else parks a read.
// True when a read result is ready to process.
bool Tunnel::read_now(Direction& d) {
  if (d.flowing || d.src.has_buffered_input()) {
    d.buffer = worker_.buffers().acquire();
    const std::size_t chunk = d.src.read_chunk(BufferPool::kBufferSize);
    boost::system::error_code ec;
    const std::size_t n = d.src.try_read_some(asio::buffer(d.buffer.get(), chunk), ec);
    if (ec != asio::error::would_block) {
      d.read_ec = ec;
      d.read_n = ec ? 0 : n;
      d.read_data = reinterpret_cast<const std::uint8_t*>(d.buffer.get());
      d.flowing = !ec && n == chunk;  // a full read probably left more behind
      return true;
    }
    d.buffer.reset();
    d.flowing = false;
  }
  park(d);
  return false;
}

// Waits for input holding no pooled buffer: bytes land in `park`, or (TLS) the handler only
// says that a read may succeed now.
void Tunnel::park(Direction& d) {
  d.reading = true;
  d.src.async_park_read(asio::buffer(d.park),
                        handler([this, &d](const boost::system::error_code& ec, std::size_t n) {
                          d.reading = false;
                          if (finished_) return;
                          if (ec || n > 0) {
                            d.read_ec = ec;
                            d.read_n = ec ? 0 : n;
                            d.read_data = d.park.data();
                            d.flowing = !ec && n == kParkBytes;  // more is probably waiting
                            d.read_ready = true;
                          } else {
                            d.flowing = true;  // ready: attempt the read now
                          }
                          drive(d);
                        }));
}

// One read's bytes (or its end): decide what goes on, and write it into d's destination.
void Tunnel::process(Direction& d) {
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
  FrameTracker& t = tracker(d);
  const Clock::time_point now = Clock::now();
  d.previous_activity = deadlines_.on_activity(now);
  d.frames_before = t.frames();
  d.pongs_before = t.pongs();
  control_.on_read(d.way, now);
  std::size_t forward = data.size();
  std::size_t held_out = 0;  // held header bytes that go out before data
  d.tracked = data.size();   // bytes the tracker has seen; the rest is seen after the write
  d.plan.reset();
  if (control_.close_sent(d.way)) {
    forward = 0;  // only watching for the peer's close reply now
    d.tracked = 0;
  } else if (control_.closing()) {
    held_out = d.held.size;
    forward = t.advance(data, true);  // up to the end of the current frame
    d.tracked = forward;
    control_.note_close_frame(d.way);
  } else if (route_.max_message_bytes > 0) {
    d.plan = plan_limited_forward(t, data, d.held, route_.max_message_bytes);
    held_out = d.plan->held_to_send;
    forward = d.plan->forward;
    d.tracked = d.plan->consumed;
    control_.note_close_frame(d.way);
    if (d.plan->over_limit) close_for_oversized_message(d, d.plan->clean_cut);
  } else {
    t.advance(data);
    control_.note_close_frame(d.way);
  }
  d.written = held_out + forward;
  if (d.written == 0) {
    after_write(d);
    return;
  }
  const std::array<asio::const_buffer, 2> out = {asio::buffer(d.held.bytes.data(), held_out),
                                                 asio::buffer(data.data(), forward)};
  // Usually the whole of it fits in the destination: no round trip through the scheduler,
  // which an asynchronous write costs even when it completes at once.
  boost::system::error_code ec;
  const std::size_t sent = write_now(d.dst, out, ec);
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
  write_rest(d, out, sent, [this, &d] {
    d.bytes.inc(d.written);
    after_write(d);
  });
}

// The part of `out` past its first `sent` bytes goes out asynchronously; then `done` runs and
// the direction drives on (or the tunnel ends on an error).
template <typename Done>
void Tunnel::write_rest(Direction& d, std::array<asio::const_buffer, 2> out, std::size_t sent,
                        Done done) {
  for (auto& b : out) {
    const std::size_t skip = std::min(sent, b.size());
    b += skip;
    sent -= skip;
  }
  d.writing = true;
  asio::async_write(d.dst, out,
                    handler([this, &d, done = std::move(done)](const boost::system::error_code& ec,
                                                               std::size_t) mutable {
                      d.writing = false;
                      d.control = {};
                      if (finished_) return;
                      if (ec) {
                        end_with_error(other(d), ec);
                        return;
                      }
                      done();
                      drive(d);
                    }));
}

// The rest of a read's processing, once its bytes are in the destination.
void Tunnel::after_write(Direction& d) {
  const auto data = d.read_bytes();
  FrameTracker& t = tracker(d);
  if (d.plan) {
    apply_plan(d.held, *d.plan, data);
  } else {
    d.held.size = 0;  // sent, or dropped after our close frame
  }
  // Decided before the discarded rest is tracked: the boundary that counts is where the
  // forwarded bytes end.
  auto frame = control_.due(d.way);
  if (d.plan && d.plan->over_limit && d.plan->clean_cut && !control_.close_sent(d.way)) {
    // The forwarded stream ends right before the oversized frame: a boundary for the peer
    // even though the tracker is inside that frame.
    frame = TunnelControl::Frame::kClose;
  }
  if (d.tracked < data.size()) {
    t.advance(data.subspan(d.tracked));  // discarded, but a close reply must be seen
  }
  // Pongs (answers to the proxy's pings) show that a peer is alive, not that the tunnel is in
  // use: with keepalive on, an idle tunnel must still reach idleTimeoutSeconds.
  const auto frames = t.frames() - d.frames_before;
  if (frames > 0 && frames == t.pongs() - d.pongs_before && t.at_boundary()) {
    deadlines_.restore_activity(d.previous_activity);
  }
  d.buffer.reset();
  d.read_n = 0;
  d.plan.reset();
  if (frame != TunnelControl::Frame::kNone) inject(d, frame);
}

// Writes our close frame or ping into d's destination (d's stream is at a frame boundary).
void Tunnel::inject(Direction& d, TunnelControl::Frame frame) {
  const bool ping = frame == TunnelControl::Frame::kPing;
  std::vector<std::uint8_t> bytes =
      ping ? control_.take_ping_frame(d.way) : control_.take_close_frame(d.way);
  boost::system::error_code ec;
  const std::array<asio::const_buffer, 2> out = {asio::const_buffer(), asio::buffer(bytes)};
  const std::size_t sent = write_now(d.dst, out, ec);
  if (ec) {
    end_with_error(other(d), ec);
    return;
  }
  if (sent == bytes.size()) {
    if (ping) control_.on_ping_written(d.way, Clock::now());
    return;
  }
  d.control = std::move(bytes);
  d.control_is_ping = ping;
  write_rest(d, {asio::const_buffer(), asio::buffer(d.control)}, sent, [this, &d] {
    if (d.control_is_ping) control_.on_ping_written(d.way, Clock::now());
  });
}

}  // namespace wsgate::proxy
