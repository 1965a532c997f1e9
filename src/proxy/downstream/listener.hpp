#pragma once
// Accepting connections: one acceptor per worker on the same address (SO_REUSEPORT), so the
// kernel spreads connections over workers and no accepted socket changes thread.

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

class Listener {
 public:
  // Called on the worker's thread with each accepted socket and its peer's address (taken
  // from accept itself: no getpeername per connection).
  using OnAccept = std::function<void(Worker&, tcp::socket, const tcp::endpoint&)>;

  // Binds `address` ("host:port", port 0 = kernel's choice, shared by all workers) on every
  // worker and logs "listening (<kind>) on HOST:PORT". Throws std::runtime_error on failure.
  Listener(std::string kind, const std::string& address, std::vector<Worker*> workers,
           OnAccept on_accept);
  ~Listener();

  std::uint16_t port() const { return port_; }
  void start();
  // From any thread. `on_closed` (optional) is called, on some worker's thread, once every
  // acceptor is closed and has no accept left in flight: every connection accepted until then
  // has gone to on_accept (the kernel resets those it still queued).
  void close(std::function<void()> on_closed = {});

 private:
  struct Acceptor;
  std::string kind_;
  std::uint16_t port_ = 0;
  std::vector<std::shared_ptr<Acceptor>> acceptors_;
  OnAccept on_accept_;
};

}  // namespace wsgate::proxy
