#include "controlplane/stop_signals.hpp"

#include <csignal>

namespace wsgate::controlplane {

StopSignals::StopSignals() : signals_(io_, SIGTERM, SIGINT, SIGHUP) {}

int StopSignals::wait(const std::function<void()>& on_hangup) {
  int stop_signal = 0;
  std::function<void()> arm = [&] {
    signals_.async_wait([&](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo != SIGHUP) {
        stop_signal = signo;
        return;
      }
      on_hangup();
      arm();
    });
  };
  arm();
  while (stop_signal == 0 && io_.run_one() > 0) {
  }
  return stop_signal;
}

}  // namespace wsgate::controlplane
