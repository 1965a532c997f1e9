#pragma once
// Process signals for the controller's long-running modes: SIGTERM/SIGINT end the main loop,
// SIGHUP asks for an immediate re-read of the routes.

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <functional>

namespace wsgate::controlplane {

class StopSignals {
 public:
  // Takes over SIGTERM, SIGINT and SIGHUP at once: construct it before anything an early
  // signal must not find half-started.
  StopSignals();

  // Blocks until SIGTERM or SIGINT and returns which; each SIGHUP meanwhile calls on_hangup
  // (on this thread).
  int wait(const std::function<void()>& on_hangup);

 private:
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
};

}  // namespace wsgate::controlplane
