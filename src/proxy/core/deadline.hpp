#pragma once
// A deadline over a sequence of asynchronous steps: when it passes, it runs the cancel action
// of the step in progress (close a socket, cancel a resolver) and remembers that it fired, so
// the step's error can be told apart from a timeout.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace wsgate::proxy {

class Deadline {
 public:
  Deadline(const boost::asio::any_io_executor& executor, std::chrono::steady_clock::time_point at)
      : state_(std::make_shared<State>(executor)) {
    state_->timer.expires_at(at);
    state_->timer.async_wait([state = state_](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: the steps finished in time
      state->expired = true;
      if (state->cancel) state->cancel();
    });
  }
  ~Deadline() { state_->timer.cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // What to do if the deadline passes during the next step. Must stay valid until replaced.
  void on_expiry(std::function<void()> cancel) { state_->cancel = std::move(cancel); }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    explicit State(const boost::asio::any_io_executor& executor) : timer(executor) {}
    boost::asio::steady_timer timer;
    std::function<void()> cancel;
    bool expired = false;
  };
  std::shared_ptr<State> state_;
};

}  // namespace wsgate::proxy
