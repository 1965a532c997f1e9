#include "proxy/downstream/listener.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <stdexcept>
#include <utility>
#include <variant>

#include "common/net_address.hpp"

namespace wsgate::proxy {

struct Listener::Acceptor : std::enable_shared_from_this<Acceptor> {
  Acceptor(Worker& w, OnAccept cb)
      : worker(w), acceptor(w.io()), retry_timer(w.io()), on_accept(std::move(cb)) {}

  void accept() {
    accepting = true;
    acceptor.async_accept(
        peer, [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          self->accepting = false;
          if (!ec) {
            // Handed on even when the acceptor was closed meanwhile: the connection was
            // accepted, so it is answered (503 while draining), never dropped unanswered.
            socket.set_option(tcp::no_delay(true), ec);
            self->on_accept(self->worker, std::move(socket), self->peer);
            ec = {};
          }
          if (!self->acceptor.is_open()) {
            self->report_closed();
          } else if (!ec) {
            self->accept();
          } else if (ec != asio::error::operation_aborted) {
            // EMFILE and friends: the kernel queue holds the client; retry after a pause, or
            // the failing accept would spin this worker at full CPU.
            spdlog::warn("accept failed: {}; retrying in 50 ms", ec.message());
            self->retry_timer.expires_after(std::chrono::milliseconds(50));
            self->retry_timer.async_wait([self](const boost::system::error_code& timer_ec) {
              if (!timer_ec && self->acceptor.is_open()) self->accept();
            });
          }
        });
  }

  // Worker thread. An accept in flight still completes (aborted, or with a connection the
  // kernel gave it before the close): the closed report waits for it.
  void close(std::function<void()> on_closed) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    retry_timer.cancel();
    if (on_closed) closed_report = std::move(on_closed);
    if (!accepting) report_closed();
  }

  void report_closed() {
    if (auto report = std::exchange(closed_report, nullptr)) report();
  }

  Worker& worker;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;  // pause after a failed accept
  tcp::endpoint peer;              // filled by the accept in progress
  OnAccept on_accept;              // a copy: accept handlers may run after the Listener is gone
  bool accepting = false;          // an async_accept is in flight
  std::function<void()> closed_report;  // close()'s callback, until the acceptor is quiet
};

Listener::Listener(std::string kind, const std::string& address, std::vector<Worker*> workers,
                   OnAccept on_accept)
    : kind_(std::move(kind)), on_accept_(std::move(on_accept)) {
  auto parsed = parse_host_port(address, true);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    throw std::runtime_error("--listen " + address + ": " + *error);
  }
  const auto host_port = std::get<HostPort>(parsed);
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(host_port.host, ec);
  if (ec) throw std::runtime_error("listen address " + address + ": host must be an IP address");
  tcp::endpoint endpoint(ip, host_port.port);
  for (Worker* worker : workers) {
    auto acc = std::make_shared<Acceptor>(*worker, on_accept_);
    acc->acceptor.open(endpoint.protocol(), ec);
    if (!ec) acc->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) {
      const int one = 1;
      if (::setsockopt(acc->acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
          0) {
        ec = boost::system::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) acc->acceptor.bind(endpoint, ec);
    if (!ec) acc->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + address + ": " + ec.message());
    // Port 0: the first bind picks the port; every other worker joins that same port.
    endpoint = acc->acceptor.local_endpoint();
    acceptors_.push_back(std::move(acc));
  }
  port_ = endpoint.port();
  spdlog::info(
      "listening ({}) on {}", kind_,
      HostPort{endpoint.address().to_string(), port_, endpoint.address().is_v6()}.to_string());
}

Listener::~Listener() {
  close();
}

void Listener::start() {
  for (auto& acc : acceptors_) {
    asio::post(acc->worker.io(), [acc] { acc->accept(); });
  }
}

void Listener::close(std::function<void()> on_closed) {
  // One report for all acceptors: the last to be quiet calls on_closed.
  struct Countdown {
    std::atomic<std::size_t> left;
    std::function<void()> done;
  };
  std::shared_ptr<Countdown> countdown;
  if (on_closed) {
    countdown = std::make_shared<Countdown>();
    countdown->left = acceptors_.size();
    countdown->done = std::move(on_closed);
    if (acceptors_.empty()) countdown->done();
  }
  for (auto& acc : acceptors_) {
    asio::post(acc->worker.io(), [acc, countdown] {
      std::function<void()> report;
      if (countdown) {
        report = [countdown] {
          if (--countdown->left == 0) countdown->done();
        };
      }
      acc->close(std::move(report));
    });
  }
}

}  // namespace wsgate::proxy
