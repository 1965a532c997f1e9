// Idle mode: open K tunnels and hold them; the proxy's resident memory before and after gives
// the cost of an idle tunnel. While they are held, handshake cycles are timed (does a loaded
// proxy still answer quickly?), and at the end every tunnel must still echo.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <cstdio>

#include "load_client.hpp"
#include "tunnel_set.hpp"

namespace wsgate::bench {
namespace {

template <typename T>
class IdleLoad {
 public:
  IdleLoad(asio::io_context& io, const Target& target, const ClientOptions& options)
      : io_(io), target_(target), options_(options) {}

  int run() {
    asio::co_spawn(io_, start(), asio::detached);
    io_.run();
    const double per_tunnel = tunnels_.opened() > 0 ? (double(rss_loaded_) - double(rss_before_)) /
                                                          double(tunnels_.opened())
                                                    : 0.0;
    JsonLine out;
    out.add("mode", "idle")
        .add("url", options_.url)
        .add("tunnels", double(options_.tunnels))
        .add("opened", double(tunnels_.opened()))
        .add("open_errors", double(tunnels_.failed))
        .add("open_s", tunnels_.open_seconds)
        .add("proxy_cpu_open_s", cpu_opened_ - cpu_before_)
        .add("rss_before", double(rss_before_))
        .add("rss_loaded", double(rss_loaded_))
        .add("rss_per_tunnel", per_tunnel)
        .add("probes", double(probe_us_.size()))
        .add("probe_errors", double(probe_errors_))
        .add("probe_p50_us", percentile(probe_us_, 0.5))
        .add("probe_p99_us", percentile(probe_us_, 0.99))
        .add("alive", double(alive_))
        .add("first_error", tunnels_.first_error);
    std::printf("%s\n", out.str().c_str());
    return tunnels_.opened() == options_.tunnels && alive_ == tunnels_.opened() ? 0 : 1;
  }

 private:
  asio::awaitable<void> start() {
    const auto timeout = std::chrono::milliseconds(static_cast<long>(options_.timeout * 1000));
    rss_before_ = rss_bytes(options_.watch);
    cpu_before_ = cpu_seconds(options_.watch);
    co_await tunnels_.open(io_, target_, options_.tunnels, options_.open_concurrency, timeout);
    cpu_opened_ = cpu_seconds(options_.watch);
    asio::steady_timer pause(io_);
    pause.expires_after(from_seconds(options_.hold));
    co_await pause.async_wait(kTuple);
    rss_loaded_ = rss_bytes(options_.watch);

    auto watchdog = Watchdog::start(io_, 1, timeout);
    for (std::size_t i = 0; i < options_.probes; ++i) {
      const CycleResult r = co_await run_cycle<T>(io_, target_, options_.tunnels + i, *watchdog, 0);
      if (r.ec) {
        ++probe_errors_;
      } else {
        probe_us_.push_back(r.upgrade_us);
      }
    }
    watchdog->stop();

    // Every held tunnel must still carry a message both ways.
    Latch answered(io_, tunnels_.opened());
    for (auto& conn : tunnels_.conns) {
      if (conn) asio::co_spawn(io_, check_alive(*conn, answered), asio::detached);
    }
    co_await answered.wait(timeout);
    io_.stop();
  }

  asio::awaitable<void> check_alive(Conn<T>& conn, Latch& answered) {
    std::string frame;
    static constexpr char kPayload[] = "still there?";
    append_client_frame(frame, kOpBinary, kPayload, sizeof kPayload, 0x0badcafeu);
    auto [ec, n] = co_await asio::async_write(conn.stream, asio::buffer(frame), kTuple);
    FrameCounter counter;
    if (!ec) ec = co_await read_frames(conn, counter, [&] { return counter.data_frames > 0; });
    if (!ec) ++alive_;
    answered.count_down();
  }

  asio::io_context& io_;
  const Target& target_;
  const ClientOptions& options_;
  TunnelSet<T> tunnels_;
  std::uint64_t rss_before_ = 0;
  std::uint64_t rss_loaded_ = 0;
  double cpu_before_ = 0;
  double cpu_opened_ = 0;
  std::vector<double> probe_us_;
  std::size_t probe_errors_ = 0;
  std::size_t alive_ = 0;
};

}  // namespace

int run_idle(const ClientOptions& options) {
  return dispatch<IdleLoad>(options);
}

}  // namespace wsgate::bench
