#pragma once
// The load client's modes (handshake, echo, bulk, idle) and what they share: options, the
// target built from a ws:// or wss:// URL, the measurement window, and one full handshake cycle.

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "conn.hpp"
#include "proc_stats.hpp"

namespace wsgate::bench {

struct ClientOptions {
  std::string url;                     // ws://IP:PORT/path or wss://IP:PORT/path
  std::size_t workers = 64;            // handshake: concurrent connect/upgrade/echo/close loops
  double warmup = 0.5;                 // seconds before the measured window
  double duration = 3;                 // seconds of the measured window
  std::size_t tunnels = 100;           // echo/bulk/idle: tunnels held open
  std::size_t size = 128;              // echo: message payload bytes (>= 8: a send timestamp)
  double rate = 10000;                 // echo: messages per second over all tunnels
  std::size_t bulk_size = 1 << 20;     // bulk: message payload bytes
  std::size_t sources = 1;             // spread connections over 127.0.0.1 .. 127.0.0.N
  std::size_t open_concurrency = 128;  // tunnels being opened at once
  double hold = 1;                     // idle: seconds between the last open and the RSS reading
  std::size_t probes = 200;            // idle: handshake cycles timed while the tunnels are held
  double timeout = 5;                  // seconds without progress before a connection is dropped
  std::vector<int> watch;              // the proxy's pids: CPU and RSS are read from them
  std::vector<int> peers;              // the backend's pids: CPU only (to show a busy cpu 0)
};

int run_handshake(const ClientOptions& options);
int run_echo(const ClientOptions& options);
int run_bulk(const ClientOptions& options);
int run_idle(const ClientOptions& options);

// ---- shared by the modes ----

// Target from the URL, or an error message.
std::string make_target(const ClientOptions& options, Target& target);
// A client TLS context: no verification, no session reuse (every handshake is a full one).
void configure_client_tls(asio::ssl::context& ctx);

// Warm-up, then the measured window: CPU of proxy, client and backend are read at both ends.
class Window {
 public:
  Window(asio::io_context& io, const ClientOptions& options) : io_(io), options_(options) {}

  bool measuring() const { return measuring_; }
  bool stopped() const { return stopped_; }
  double seconds() const { return std::chrono::duration<double>(end_ - start_).count(); }

  // on_open runs as the window opens, on_close as it closes (counters are read there).
  template <typename Open, typename Close>
  asio::awaitable<void> run(Open on_open, Close on_close) {
    asio::steady_timer timer(io_);
    timer.expires_after(from_seconds(options_.warmup));
    co_await timer.async_wait(kTuple);
    sample(before_);
    start_ = Clock::now();
    on_open();
    measuring_ = true;
    timer.expires_after(from_seconds(options_.duration));
    co_await timer.async_wait(kTuple);
    measuring_ = false;
    end_ = Clock::now();
    sample(after_);
    on_close();
    stopped_ = true;
  }

  // Adds seconds, proxy_cpu_s (and its user/system parts), client_cpu_s, backend_cpu_s.
  void report(JsonLine& out) const;

 private:
  struct Cpu {
    CpuTimes proxy;
    double own = 0;
    double peers = 0;
  };
  void sample(Cpu& cpu) const;

  asio::io_context& io_;
  const ClientOptions& options_;
  bool measuring_ = false;
  bool stopped_ = false;
  Clock::time_point start_;
  Clock::time_point end_;
  Cpu before_;
  Cpu after_;
};

// Builds the target and runs Load<Plain> or Load<Tls> (constructed from io, target, options,
// with an int run()) on one io_context.
template <template <typename> class Load>
int dispatch(const ClientOptions& options) {
  Target target;
  if (const auto error = make_target(options, target); !error.empty()) {
    std::fprintf(stderr, "%s: %s\n", options.url.c_str(), error.c_str());
    return 2;
  }
  asio::ssl::context tls(asio::ssl::context::tls_client);
  configure_client_tls(tls);
  asio::io_context io(1);
  if (target.use_tls) {
    target.tls = &tls;
    return Load<Tls>(io, target, options).run();
  }
  return Load<Plain>(io, target, options).run();
}

struct CycleResult {
  ErrorCode ec;
  double upgrade_us = 0;  // connect until the 101 answer is read
  double total_us = 0;    // the whole cycle, until the server's TCP close
};

// One handshake cycle: connect, upgrade, one 32-byte echo, close handshake, wait for EOF.
template <typename T>
asio::awaitable<CycleResult> run_cycle(asio::io_context& io, const Target& target, std::size_t n,
                                       Watchdog& watchdog, std::size_t slot) {
  CycleResult result;
  Conn<T> c(io, target.tls);
  watchdog.arm(slot, c.socket());
  const auto started = Clock::now();
  result.ec = co_await connect_upgrade(c, target, n);
  if (!result.ec) {
    result.upgrade_us = micros_since(started);
    std::string frames;
    static constexpr char kPayload[32] = "wsgate-bench handshake echo....";
    append_client_frame(frames, kOpBinary, kPayload, sizeof kPayload, 0x5a17c3e1u);
    FrameCounter counter;
    auto [wec, wn] = co_await asio::async_write(c.stream, asio::buffer(frames), kTuple);
    result.ec = wec;
    if (!result.ec) {
      result.ec = co_await read_frames(c, counter, [&] { return counter.data_frames > 0; });
    }
    if (!result.ec) {
      frames.clear();
      static constexpr std::uint8_t kNormalClose[2] = {0x03, 0xe8};  // 1000
      append_client_frame(frames, kOpClose, kNormalClose, sizeof kNormalClose, 0x1c2d3e4fu);
      auto [cec, cn] = co_await asio::async_write(c.stream, asio::buffer(frames), kTuple);
      result.ec = cec;
    }
    if (!result.ec)
      result.ec = co_await read_frames(c, counter, [&] { return counter.close_seen; });
    if (!result.ec) {
      // The server closes the TCP connection first (RFC 6455 §7.1.1): wait for it.
      const auto end = co_await read_frames(c, counter, [] { return false; });
      const bool clean = end == asio::error::eof || end == asio::ssl::error::stream_truncated;
      if (!clean) result.ec = end;
    }
  }
  watchdog.disarm(slot);
  result.total_us = micros_since(started);
  co_return result;
}

}  // namespace wsgate::bench
