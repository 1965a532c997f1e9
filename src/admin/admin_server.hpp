#pragma once
// A small HTTP/1.1 server for operator endpoints (/metrics, /healthz, /readyz, /config, ...),
// on its own thread so a busy data plane never delays a scrape or a probe.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace wsgate::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class AdminServer {
 public:
  // Handlers run on the admin thread; they must be thread-safe w.r.t. the data plane.
  using Handler = std::function<AdminResponse()>;

  // listen: "host:port" (port 0 = kernel's choice).
  explicit AdminServer(std::string listen);
  ~AdminServer();  // stops
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Registers an exact path (query strings are ignored when matching). Call before start().
  void handle(std::string path, Handler handler);

  // How long a client may take to send a complete request, and how long a keep-alive
  // connection may sit idle, before it is closed. Default 10 s. Call before start().
  void set_read_timeout(std::chrono::milliseconds timeout);

  // Binds, logs "listening (admin) on HOST:PORT", starts the thread; returns the bound port.
  // Throws std::runtime_error when the address is invalid or cannot be bound.
  std::uint16_t start();
  // Closes the listener and every connection, joins the thread. Idempotent; no restart.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::admin
