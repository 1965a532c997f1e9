#pragma once
// Opens many tunnels with a bounded number of handshakes in flight, and a latch to wait for a
// group of coroutines on one thread.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <limits>
#include <memory>
#include <vector>

#include "conn.hpp"

namespace wsgate::bench {

// Waits until count_down() was called `count` times, or until the deadline.
class Latch {
 public:
  Latch(asio::io_context& io, std::size_t count) : timer_(io), left_(count) {}
  void count_down() {
    if (left_ > 0 && --left_ == 0) timer_.cancel();
  }
  std::size_t left() const { return left_; }
  asio::awaitable<void> wait(Clock::duration limit = Clock::duration::max() / 2) {
    if (left_ == 0) co_return;
    timer_.expires_after(limit);
    co_await timer_.async_wait(kTuple);
  }

 private:
  asio::steady_timer timer_;
  std::size_t left_;
};

template <typename T>
class TunnelSet {
 public:
  // Opens `count` tunnels, `concurrency` at a time; failed ones stay null in conns.
  asio::awaitable<void> open(asio::io_context& io, const Target& target, std::size_t count,
                             std::size_t concurrency, std::chrono::milliseconds timeout) {
    conns.resize(count);
    next_ = 0;
    concurrency = std::max<std::size_t>(1, std::min(concurrency, count));
    auto watchdog = Watchdog::start(io, concurrency, timeout);
    Latch done(io, concurrency);
    const auto started = Clock::now();
    for (std::size_t i = 0; i < concurrency; ++i) {
      asio::co_spawn(io, opener(io, target, *watchdog, i, done), asio::detached);
    }
    co_await done.wait();
    open_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    watchdog->stop();
  }

  std::size_t opened() const { return conns.size() - failed; }

  std::vector<std::unique_ptr<Conn<T>>> conns;
  std::size_t failed = 0;
  std::string first_error;
  double open_seconds = 0;

 private:
  asio::awaitable<void> opener(asio::io_context& io, const Target& target, Watchdog& watchdog,
                               std::size_t slot, Latch& done) {
    while (next_ < conns.size()) {
      const std::size_t index = next_++;
      auto conn = std::make_unique<Conn<T>>(io, target.tls);
      watchdog.arm(slot, conn->socket());
      const ErrorCode ec = co_await connect_upgrade(*conn, target, index);
      watchdog.disarm(slot);
      if (ec) {
        ++failed;
        if (first_error.empty()) first_error = ec.message();
      } else {
        conns[index] = std::move(conn);
      }
    }
    done.count_down();
  }

  std::size_t next_ = 0;
};

}  // namespace wsgate::bench
