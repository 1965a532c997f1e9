// The load modes that measure rates: handshake (full cycles per second), echo (RTT at a fixed
// message rate) and bulk (MB/s of large messages), plus what all modes share.

#include "load_client.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <cstdio>

#include "tunnel_set.hpp"

namespace wsgate::bench {

std::string make_target(const ClientOptions& options, Target& target) {
  std::string_view url = options.url;
  bool tls = false;
  if (url.starts_with("wss://")) {
    tls = true;
    url.remove_prefix(6);
  } else if (url.starts_with("ws://")) {
    url.remove_prefix(5);
  } else {
    return "the URL must start with ws:// or wss://";
  }
  const auto slash = url.find('/');
  const std::string_view authority = url.substr(0, slash);
  const std::string path(slash == std::string_view::npos ? "/" : url.substr(slash));
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) return "the URL needs an explicit port";
  ErrorCode ec;
  const auto address = asio::ip::make_address(std::string(authority.substr(0, colon)), ec);
  if (ec) return "the URL's host must be an IP address";
  const int port = std::atoi(std::string(authority.substr(colon + 1)).c_str());
  if (port <= 0 || port > 65535) return "bad port in the URL";
  target.endpoint = tcp::endpoint(address, static_cast<unsigned short>(port));
  target.server_name = "localhost";
  const std::string key = random_websocket_key();
  target.request = upgrade_request(authority, path, key);
  target.accept = websocket_accept(key);
  if (options.sources > 1) {
    if (!address.is_loopback() || !address.is_v4()) return "--sources needs a 127.x.x.x target";
    for (std::size_t i = 1; i <= options.sources && i < 255; ++i)
      target.sources.push_back(asio::ip::make_address_v4(0x7f000000u + static_cast<unsigned>(i)));
  }
  target.use_tls = tls;
  return {};
}

void configure_client_tls(asio::ssl::context& ctx) {
  ctx.set_verify_mode(asio::ssl::verify_none);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
}

void Window::sample(Cpu& cpu) const {
  cpu.proxy = cpu_times(options_.watch);
  cpu.own = own_cpu_seconds();
  cpu.peers = cpu_seconds(options_.peers);
}

void Window::report(JsonLine& out) const {
  out.add("seconds", seconds())
      .add("proxy_cpu_s", after_.proxy.total() - before_.proxy.total())
      .add("proxy_user_s", after_.proxy.user - before_.proxy.user)
      .add("proxy_sys_s", after_.proxy.system - before_.proxy.system)
      .add("client_cpu_s", after_.own - before_.own)
      .add("backend_cpu_s", after_.peers - before_.peers);
}

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double per(double amount, double count) {
  return count > 0 ? amount / count : std::numeric_limits<double>::quiet_NaN();
}

template <typename T>
class HandshakeLoad {
 public:
  HandshakeLoad(asio::io_context& io, const Target& target, const ClientOptions& options)
      : io_(io),
        target_(target),
        options_(options),
        window_(io, options),
        watchdog_(Watchdog::start(
            io, options.workers,
            std::chrono::milliseconds(static_cast<long>(options.timeout * 1000)))) {}

  int run() {
    for (std::size_t i = 0; i < options_.workers; ++i)
      asio::co_spawn(io_, worker(i), asio::detached);
    asio::co_spawn(io_,
                   window_.run(
                       [this] {
                         at_open_ = {ok_, errors_};
                       },
                       [this] {
                         in_window_ = {ok_ - at_open_.ok, errors_ - at_open_.errors};
                         io_.stop();
                       }),
                   asio::detached);
    io_.run();
    JsonLine out;
    out.add("mode", "handshake").add("url", options_.url).add("workers", double(options_.workers));
    window_.report(out);
    const double seconds = window_.seconds();
    out.add("handshakes", double(in_window_.ok))
        .add("errors", double(in_window_.errors))
        .add("rate", per(double(in_window_.ok), seconds))
        .add("upgrade_p50_us", percentile(upgrade_us_, 0.5))
        .add("upgrade_p99_us", percentile(upgrade_us_, 0.99))
        .add("cycle_p50_us", percentile(cycle_us_, 0.5))
        .add("first_error", first_error_);
    std::printf("%s\n", out.str().c_str());
    return in_window_.ok > 0 ? 0 : 1;
  }

 private:
  struct Counts {
    std::size_t ok = 0;
    std::size_t errors = 0;
  };

  asio::awaitable<void> worker(std::size_t index) {
    asio::steady_timer backoff(io_);
    std::size_t n = index;
    while (!window_.stopped()) {
      const CycleResult r = co_await run_cycle<T>(io_, target_, n, *watchdog_, index);
      n += options_.workers;
      if (r.ec) {
        ++errors_;
        if (first_error_.empty()) first_error_ = r.ec.message();
        backoff.expires_after(std::chrono::milliseconds(10));  // no spinning on a refusal
        co_await backoff.async_wait(kTuple);
        continue;
      }
      ++ok_;
      if (window_.measuring()) {
        upgrade_us_.push_back(r.upgrade_us);
        cycle_us_.push_back(r.total_us);
      }
    }
  }

  asio::io_context& io_;
  const Target& target_;
  const ClientOptions& options_;
  Window window_;
  std::shared_ptr<Watchdog> watchdog_;
  std::size_t ok_ = 0;
  std::size_t errors_ = 0;
  Counts at_open_;
  Counts in_window_;
  std::vector<double> upgrade_us_;
  std::vector<double> cycle_us_;
  std::string first_error_;
};

template <typename T>
class EchoLoad {
 public:
  EchoLoad(asio::io_context& io, const Target& target, const ClientOptions& options)
      : io_(io), target_(target), options_(options), window_(io, options) {}

  int run() {
    if (options_.size < 8 || options_.size > kWholeFrameMax) {
      std::fprintf(stderr, "echo: --size must be 8..%zu\n", kWholeFrameMax);
      return 2;
    }
    payload_.assign(options_.size, 'e');
    asio::co_spawn(io_, start(), asio::detached);
    io_.run();
    JsonLine out;
    out.add("mode", "echo").add("url", options_.url).add("tunnels", double(tunnels_.opened()));
    out.add("open_errors", double(tunnels_.failed)).add("target_rate", options_.rate);
    window_.report(out);
    const double seconds = window_.seconds();
    const double replies = double(replies_in_window_);
    out.add("sent", double(sent_in_window_))
        .add("replies", replies)
        .add("rate", per(replies, seconds))
        .add("rtt_p50_us", percentile(rtt_us_, 0.5))
        .add("rtt_p99_us", percentile(rtt_us_, 0.99))
        .add("rtt_p999_us", percentile(rtt_us_, 0.999))
        .add("rtt_max_us", percentile(rtt_us_, 1.0))
        .add("dead_tunnels", double(dead_))
        .add("first_error", tunnels_.first_error);
    std::printf("%s\n", out.str().c_str());
    return replies > 0 ? 0 : 1;
  }

 private:
  struct Outbox {
    std::string pending;
    std::string inflight;
    bool writing = false;
    bool dead = false;
    std::uint32_t key = 0;
  };

  struct ReplyHandler {
    EchoLoad* load;
    std::uint8_t opcode = 0;
    void on_start(std::uint8_t op, bool, std::uint64_t) { opcode = op; }
    void on_data(const std::uint8_t* data, std::size_t n) {
      if ((opcode & 0x08) == 0 && n >= 8) load->on_reply(data);
    }
    void on_end() {}
  };

  asio::awaitable<void> start() {
    co_await tunnels_.open(io_, target_, options_.tunnels, options_.open_concurrency,
                           std::chrono::milliseconds(static_cast<long>(options_.timeout * 1000)));
    outboxes_.resize(tunnels_.conns.size());
    for (std::size_t i = 0; i < tunnels_.conns.size(); ++i) {
      if (!tunnels_.conns[i]) continue;
      outboxes_[i].key = 0x9e3779b9u * static_cast<std::uint32_t>(i + 1);
      live_.push_back(i);
      asio::co_spawn(io_, reader(i), asio::detached);
    }
    if (live_.empty()) {
      io_.stop();
      co_return;
    }
    asio::co_spawn(io_, ticker(), asio::detached);
    co_await window_.run(
        [this] {
          sent_at_open_ = sent_;
          replies_at_open_ = replies_;
        },
        [this] {
          sent_in_window_ = sent_ - sent_at_open_;
          replies_in_window_ = replies_ - replies_at_open_;
          io_.stop();
        });
  }

  asio::awaitable<void> reader(std::size_t index) {
    ReplyHandler handler{this};
    co_await read_frames(*tunnels_.conns[index], handler, [] { return false; });
    if (!outboxes_[index].dead) ++dead_;
    outboxes_[index].dead = true;
  }

  void on_reply(const std::uint8_t* data) {
    std::int64_t sent;
    std::memcpy(&sent, data, sizeof sent);
    ++replies_;
    if (window_.measuring()) rtt_us_.push_back(double(now_ns() - sent) / 1000.0);
  }

  // Open loop: messages go out on schedule whether or not earlier ones were answered, so a
  // slow proxy shows as latency rather than as a lower send rate.
  asio::awaitable<void> ticker() {
    asio::steady_timer timer(io_);
    const auto started = Clock::now();
    std::size_t next = 0;
    while (!window_.stopped()) {
      timer.expires_after(std::chrono::milliseconds(1));
      co_await timer.async_wait(kTuple);
      const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
      const auto due = static_cast<std::uint64_t>(options_.rate * elapsed);
      while (sent_ < due) {
        send(live_[next]);
        next = (next + 1) % live_.size();
        ++sent_;
      }
    }
  }

  void send(std::size_t index) {
    Outbox& box = outboxes_[index];
    if (box.dead) return;
    const std::int64_t stamp = now_ns();
    std::memcpy(payload_.data(), &stamp, sizeof stamp);
    append_client_frame(box.pending, kOpBinary, payload_.data(), payload_.size(), box.key);
    if (!box.writing) flush(index);
  }

  void flush(std::size_t index) {
    Outbox& box = outboxes_[index];
    box.inflight.swap(box.pending);
    box.writing = true;
    asio::async_write(tunnels_.conns[index]->stream, asio::buffer(box.inflight),
                      [this, index](const ErrorCode& ec, std::size_t) {
                        Outbox& b = outboxes_[index];
                        b.writing = false;
                        b.inflight.clear();
                        if (ec) {
                          b.dead = true;
                        } else if (!b.pending.empty() && !window_.stopped()) {
                          flush(index);
                        }
                      });
  }

  asio::io_context& io_;
  const Target& target_;
  const ClientOptions& options_;
  Window window_;
  TunnelSet<T> tunnels_;
  std::vector<Outbox> outboxes_;
  std::vector<std::size_t> live_;
  std::string payload_;
  std::uint64_t sent_ = 0;
  std::uint64_t replies_ = 0;
  std::uint64_t sent_at_open_ = 0;
  std::uint64_t replies_at_open_ = 0;
  std::uint64_t sent_in_window_ = 0;
  std::uint64_t replies_in_window_ = 0;
  std::size_t dead_ = 0;
  std::vector<double> rtt_us_;
};

template <typename T>
class BulkLoad {
 public:
  BulkLoad(asio::io_context& io, const Target& target, const ClientOptions& options)
      : io_(io), target_(target), options_(options), window_(io, options) {}

  int run() {
    const std::string payload(options_.bulk_size, 'b');
    append_client_frame(frame_, kOpBinary, payload.data(), payload.size(), 0x31415926u);
    asio::co_spawn(io_, start(), asio::detached);
    io_.run();
    JsonLine out;
    out.add("mode", "bulk").add("url", options_.url).add("tunnels", double(tunnels_.opened()));
    out.add("message_bytes", double(options_.bulk_size));
    window_.report(out);
    out.add("echoed_bytes", double(in_window_))
        .add("mb_per_s", per(double(in_window_) / 1e6, window_.seconds()))
        .add("first_error", tunnels_.first_error);
    std::printf("%s\n", out.str().c_str());
    return in_window_ > 0 ? 0 : 1;
  }

 private:
  struct ByteCounter {
    BulkLoad* load;
    std::uint8_t opcode = 0;
    void on_start(std::uint8_t op, bool, std::uint64_t) { opcode = op; }
    void on_data(const std::uint8_t*, std::size_t n) {
      if ((opcode & 0x08) == 0) load->received_ += n;
    }
    void on_end() {}
  };

  asio::awaitable<void> start() {
    co_await tunnels_.open(io_, target_, options_.tunnels, options_.open_concurrency,
                           std::chrono::milliseconds(static_cast<long>(options_.timeout * 1000)));
    bool any = false;
    for (std::size_t i = 0; i < tunnels_.conns.size(); ++i) {
      if (!tunnels_.conns[i]) continue;
      any = true;
      asio::co_spawn(io_, writer(*tunnels_.conns[i]), asio::detached);
      asio::co_spawn(io_, reader(*tunnels_.conns[i]), asio::detached);
    }
    if (!any) {
      io_.stop();
      co_return;
    }
    co_await window_.run([this] { at_open_ = received_; },
                         [this] {
                           in_window_ = received_ - at_open_;
                           io_.stop();
                         });
  }

  // Back-to-back messages: TCP backpressure through the proxy paces the writer.
  asio::awaitable<void> writer(Conn<T>& conn) {
    while (!window_.stopped()) {
      auto [ec, n] = co_await asio::async_write(conn.stream, asio::buffer(frame_), kTuple);
      if (ec) co_return;
    }
  }

  asio::awaitable<void> reader(Conn<T>& conn) {
    ByteCounter counter{this};
    co_await read_frames(conn, counter, [] { return false; });
  }

  asio::io_context& io_;
  const Target& target_;
  const ClientOptions& options_;
  Window window_;
  TunnelSet<T> tunnels_;
  std::string frame_;
  std::uint64_t received_ = 0;
  std::uint64_t at_open_ = 0;
  std::uint64_t in_window_ = 0;
};

}  // namespace

int run_handshake(const ClientOptions& options) {
  return dispatch<HandshakeLoad>(options);
}
int run_echo(const ClientOptions& options) {
  return dispatch<EchoLoad>(options);
}
int run_bulk(const ClientOptions& options) {
  return dispatch<BulkLoad>(options);
}

}  // namespace wsgate::bench
