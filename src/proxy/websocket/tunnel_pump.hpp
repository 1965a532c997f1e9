#pragma once
// Inside of websocket/tunnel: the Tunnel object start_tunnel() creates. Its two directions
// are pumped over Stream's transport operations (try_read_some, try_write_some,
// async_park_read), one code path for plain TCP, TLS and any other Transport, as HAProxy's
// xprt_ops serve its muxes. What to inject and when is TunnelControl's call, the timeouts are
// TunnelDeadlines'; this class only moves bytes and carries out their decisions.
//
// tunnel_pump.cpp holds the data path (drive, read, forward, inject); tunnel.cpp the life
// cycle (start, close decisions, the timer, the end).

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/websocket/message_limit.hpp"
#include "proxy/websocket/tunnel.hpp"
#include "proxy/websocket/tunnel_control.hpp"
#include "proxy/websocket/tunnel_deadlines.hpp"

namespace wsgate::proxy {

class Tunnel final : public SelfOwned {
 public:
  using Clock = std::chrono::steady_clock;
  using Way = TunnelControl::Way;

  // A parked read on a plain socket lands in a buffer of this size inside the tunnel. Small
  // WebSocket messages (chat, ticks, the echo of a handshake check) fit whole; a read that
  // fills it means more is waiting, and the rest is read at once into a pooled buffer.
  static constexpr std::size_t kParkBytes = 256;
  // Reads forwarded by one direction before it lets the worker's other connections run.
  static constexpr int kTurnsPerSlice = 16;

  Tunnel(ProxyContext& ctx, Worker& worker, Stream client, Stream backend, TunnelParams params);

  // Adopted by the worker; the preambles are bytes forwarded during the handshake.
  void start(std::span<const std::uint8_t> client_preamble,
             std::span<const std::uint8_t> backend_preamble);
  void on_drain() override { request_close(1001, "proxy is shutting down"); }

 private:
  struct Direction {
    Direction(Way w, Stream& source, Stream& destination, metrics::Counter& counter)
        : way(w), src(source), dst(destination), bytes(counter) {}
    Way way;
    Stream& src;
    Stream& dst;
    metrics::Counter& bytes;
    HeldHeader held;          // maxMessageBytes: a frame header not forwarded yet
    bool done = false;        // src ended (or failed): this direction reads no more
    bool flowing = false;     // input is (probably) there: try a read without a wait
    bool reading = false;     // a parked read on src is pending
    bool writing = false;     // a write into dst is pending
    bool read_ready = false;  // a read finished and its bytes wait to be processed
    bool control_is_ping = false;

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

    const char* source_name() const { return TunnelControl::source_name(way); }
    std::span<const std::uint8_t> read_bytes() const { return {read_data, read_n}; }
  };

  Direction& other(Direction& d) { return &d == &from_client_ ? from_backend_ : from_client_; }
  FrameTracker& tracker(Direction& d) { return control_.tracker(d.way); }

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
    if (finished_ && outstanding_ == 0) release();
  }
  void release();

  // --- The data path (tunnel_pump.cpp) ---
  // The steps of one read are called from tunnel_pump.cpp only and inlined into drive(): as
  // members of a class with external linkage GCC would not inline them on its own (it does so
  // for functions called once only when they are local to the file), and the calls cost ~8 %
  // of a message's instructions.
  void drive(Direction& d);
  [[gnu::always_inline]] inline bool read_now(Direction& d);
  [[gnu::always_inline]] inline void park(Direction& d);
  [[gnu::always_inline]] inline void process(Direction& d);
  template <typename Done>
  void write_rest(Direction& d, std::array<asio::const_buffer, 2> out, std::size_t sent, Done done);
  [[gnu::always_inline]] inline void after_write(Direction& d);
  void inject(Direction& d, TunnelControl::Frame frame);
  // A direction parked in a read gets to write a control frame now. Posted: closes and pings
  // may be decided while a direction is being driven.
  void wake(Direction& d);

  // --- Decisions and the end (tunnel.cpp) ---
  void apply(TunnelControl::Next next);
  void request_close(std::uint16_t code, const std::string& reason);
  void close_for_timeout(const char* label, const std::string& reason);
  void close_for_oversized_message(Direction& d, bool clean_cut);
  void check_preamble_sizes();
  void end_with_eof(Direction& d);
  void end_with_error(Direction& d, const boost::system::error_code& ec);
  void finish();
  void arm_grace_timer();
  void schedule_timer();
  void on_timer(Clock::time_point now);
  void on_ping_tick(Clock::time_point now);

  ProxyContext& ctx_;
  Worker& worker_;
  SnapshotPtr snapshot_;  // keeps route_ and runtime_ alive
  RouteRuntime& runtime_;
  const config::Route& route_;
  TunnelLease lease_;
  Stream client_;
  Stream backend_;
  Direction from_client_;
  Direction from_backend_;
  asio::steady_timer timer_;
  Clock::time_point timer_due_ = TunnelDeadlines::kNever;  // expiry of the pending timer wait
  Clock::time_point started_;
  TunnelControl control_;
  TunnelDeadlines deadlines_;

  int outstanding_ = 0;    // handlers of this tunnel still pending
  bool finished_ = false;  // streams closed; pending handlers drain, then the tunnel goes
};

}  // namespace wsgate::proxy
