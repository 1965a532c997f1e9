// The bench's echo backend: one thread, one coroutine per connection, frames echoed as they
// stream in (a large message is never held whole), unmasked in place and sent straight back.
// Close is answered with the same payload, then the server closes TCP first (RFC 6455 §7.1.1).

#include "echo_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <memory>
#include <optional>

#include "common/net_address.hpp"
#include "conn.hpp"

namespace wsgate::bench {
namespace {

// Collects what goes back to the client for one read's worth of frames.
struct EchoHandler {
  std::string out;
  std::string control;
  std::uint8_t opcode = 0;
  bool closed = false;

  void on_start(std::uint8_t op, bool fin, std::uint64_t length) {
    opcode = op;
    if (closed) return;
    if ((op & 0x08) != 0) {
      control.clear();
      return;
    }
    std::uint8_t header[14];
    out.append(reinterpret_cast<const char*>(header),
               write_frame_header(header, fin, op, length, nullptr));
  }
  void on_data(const std::uint8_t* data, std::size_t n) {
    if (closed) return;
    auto& sink = (opcode & 0x08) != 0 ? control : out;
    sink.append(reinterpret_cast<const char*>(data), n);
  }
  void on_end() {
    if (closed) return;
    if (opcode == kOpClose || opcode == kOpPing) {
      std::uint8_t header[14];
      const auto reply = opcode == kOpClose ? kOpClose : kOpPong;
      out.append(reinterpret_cast<const char*>(header),
                 write_frame_header(header, true, reply, control.size(), nullptr));
      out += control;
      closed = opcode == kOpClose;
    }
  }
};

template <typename T>
asio::awaitable<void> serve(typename T::Stream stream) {
  if (co_await T::handshake(stream, asio::ssl::stream_base::server)) co_return;
  auto buffer = std::make_unique_for_overwrite<std::uint8_t[]>(kReadBufferSize);
  std::size_t have = 0;
  std::size_t end = 0;
  while (end == 0) {
    if (have >= kMaxHeadBytes) co_return;
    auto [ec, n] = co_await stream.async_read_some(
        asio::buffer(buffer.get() + have, kMaxHeadBytes - have), kTuple);
    if (ec) co_return;
    have += n;
    end = head_end(buffer.get(), have);
  }
  const std::string_view head(reinterpret_cast<const char*>(buffer.get()), end);
  const std::string_view key = find_header(head, "Sec-WebSocket-Key");
  if (key.empty()) {
    static constexpr std::string_view kRefusal =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    co_await asio::async_write(stream, asio::buffer(kRefusal), kTuple);
    co_return;
  }
  const std::string answer = upgrade_answer(websocket_accept(key));
  if (auto [ec, n] = co_await asio::async_write(stream, asio::buffer(answer), kTuple); ec)
    co_return;
  std::memmove(buffer.get(), buffer.get() + end, have - end);
  have -= end;

  FrameScanner scanner;
  EchoHandler handler;
  for (;;) {
    if (have > 0) {
      const auto used = scanner.feed(buffer.get(), have, handler);
      if (!used) co_return;
      std::memmove(buffer.get(), buffer.get() + *used, have - *used);
      have -= *used;
    }
    if (!handler.out.empty()) {
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(handler.out), kTuple);
      if (ec) co_return;
      handler.out.clear();
    }
    if (handler.closed) {
      ErrorCode ignored;
      T::socket(stream).shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    auto [ec, n] = co_await stream.async_read_some(
        asio::buffer(buffer.get() + have, kReadBufferSize - have), kTuple);
    if (ec) co_return;
    have += n;
  }
}

std::optional<tcp::endpoint> parse_endpoint(const std::string& text) {
  auto parsed = parse_host_port(text, /*allow_port_zero=*/true);
  if (std::holds_alternative<std::string>(parsed)) return std::nullopt;
  const auto& host_port = std::get<HostPort>(parsed);
  ErrorCode ec;
  const auto address = asio::ip::make_address(host_port.host, ec);
  if (ec) return std::nullopt;
  return tcp::endpoint(address, host_port.port);
}

class Listener {
 public:
  Listener(asio::io_context& io, asio::ssl::context* tls) : io_(io), acceptor_(io), tls_(tls) {}

  std::string open(const std::string& address) {
    const auto endpoint = parse_endpoint(address);
    if (!endpoint) return "bad address " + address;
    ErrorCode ec;
    acceptor_.open(endpoint->protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(*endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return "cannot listen on " + address + ": " + ec.message();
    const auto bound = acceptor_.local_endpoint();
    spdlog::info("listening ({}) on {}:{}", tls_ != nullptr ? "wss" : "ws",
                 bound.address().to_string(), bound.port());
    return {};
  }

  asio::awaitable<void> accept_loop() {
    asio::steady_timer pause(io_);
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors: back off rather than spin on the error.
        pause.expires_after(std::chrono::milliseconds(50));
        co_await pause.async_wait(kTuple);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      if (tls_ != nullptr) {
        asio::co_spawn(io_, serve<Tls>(Tls::Stream(std::move(socket), *tls_)), asio::detached);
      } else {
        asio::co_spawn(io_, serve<Plain>(std::move(socket)), asio::detached);
      }
    }
  }

 private:
  asio::io_context& io_;
  tcp::acceptor acceptor_;
  asio::ssl::context* tls_;
};

}  // namespace

int run_echo_server(const ServerOptions& options) {
  asio::io_context io(1);
  asio::ssl::context tls(asio::ssl::context::tls_server);
  std::vector<std::unique_ptr<Listener>> listeners;
  if (!options.listen.empty()) {
    listeners.push_back(std::make_unique<Listener>(io, nullptr));
    if (auto error = listeners.back()->open(options.listen); !error.empty()) {
      spdlog::error("{}", error);
      return 1;
    }
  }
  if (!options.tls_listen.empty()) {
    ErrorCode ec;
    tls.use_certificate_chain_file(options.tls_cert, ec);
    if (!ec) tls.use_private_key_file(options.tls_key, asio::ssl::context::pem, ec);
    if (ec) {
      spdlog::error("TLS certificate/key: {}", ec.message());
      return 1;
    }
    listeners.push_back(std::make_unique<Listener>(io, &tls));
    if (auto error = listeners.back()->open(options.tls_listen); !error.empty()) {
      spdlog::error("{}", error);
      return 1;
    }
  }
  if (listeners.empty()) {
    spdlog::error("backend: give --listen and/or --tls-listen");
    return 2;
  }
  for (auto& listener : listeners) asio::co_spawn(io, listener->accept_loop(), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const ErrorCode&, int) { io.stop(); });
  io.run();
  return 0;
}

}  // namespace wsgate::bench
