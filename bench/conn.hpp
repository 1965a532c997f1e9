#pragma once
// One WebSocket connection of the load client, over plain TCP or TLS (the Plain/Tls traits let
// every load mode be written once), plus the watchdog that unsticks connections a proxy leaves
// hanging so a run always ends.

#include <netinet/in.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ws_wire.hpp"

namespace wsgate::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

inline ErrorCode protocol_error() {
  return make_error_code(boost::system::errc::protocol_error);
}

inline Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

inline double micros_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

struct Plain {
  using Stream = tcp::socket;
  static constexpr bool kTls = false;
  static Stream make(asio::io_context& io, asio::ssl::context*) { return Stream(io); }
  static tcp::socket& socket(Stream& s) { return s; }
  static asio::awaitable<ErrorCode> handshake(Stream&, asio::ssl::stream_base::handshake_type) {
    co_return ErrorCode{};
  }
};

struct Tls {
  using Stream = asio::ssl::stream<tcp::socket>;
  static constexpr bool kTls = true;
  static Stream make(asio::io_context& io, asio::ssl::context* ctx) { return Stream(io, *ctx); }
  static tcp::socket& socket(Stream& s) { return s.next_layer(); }
  static asio::awaitable<ErrorCode> handshake(Stream& s,
                                              asio::ssl::stream_base::handshake_type type) {
    auto [ec] = co_await s.async_handshake(type, kTuple);
    co_return ec;
  }
};

// Where and how the client connects; shared, read-only, by every connection of a run.
struct Target {
  tcp::endpoint endpoint;
  std::string server_name;                 // SNI
  std::string request;                     // the upgrade request, built once
  std::string accept;                      // the Sec-WebSocket-Accept it must get back
  std::vector<asio::ip::address> sources;  // local addresses to spread connections over
  bool use_tls = false;
  asio::ssl::context* tls = nullptr;  // set when use_tls
};

template <typename T>
struct Conn {
  Conn(asio::io_context& io, asio::ssl::context* tls)
      : stream(T::make(io, tls)),
        buffer(std::make_unique_for_overwrite<std::uint8_t[]>(kReadBufferSize)) {}

  tcp::socket& socket() { return T::socket(stream); }

  typename T::Stream stream;
  std::unique_ptr<std::uint8_t[]> buffer;
  std::size_t have = 0;
  FrameScanner scanner;
};

// Connects (from source address number `n`), does TLS when T says so, sends the upgrade and
// checks the 101 answer. Bytes after the answer stay in the connection's buffer.
template <typename T>
asio::awaitable<ErrorCode> connect_upgrade(Conn<T>& c, const Target& target, std::size_t n) {
  auto& socket = c.socket();
  ErrorCode ec;
  socket.open(target.endpoint.protocol(), ec);
  if (ec) co_return ec;
  if (!target.sources.empty()) {
    // Defer the port choice to connect() so each source address has its own port range.
    const int one = 1;
    ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    socket.bind(tcp::endpoint(target.sources[n % target.sources.size()], 0), ec);
    if (ec) co_return ec;
  }
  auto [cec] = co_await socket.async_connect(target.endpoint, kTuple);
  if (cec) co_return cec;
  socket.set_option(tcp::no_delay(true), ec);
  if constexpr (T::kTls) {
    SSL_set_tlsext_host_name(c.stream.native_handle(), target.server_name.c_str());
  }
  if (auto hec = co_await T::handshake(c.stream, asio::ssl::stream_base::client)) co_return hec;
  auto [wec, wn] = co_await asio::async_write(c.stream, asio::buffer(target.request), kTuple);
  if (wec) co_return wec;
  std::size_t end = 0;
  while (end == 0) {
    if (c.have >= kMaxHeadBytes) co_return protocol_error();
    auto [rec, rn] = co_await c.stream.async_read_some(
        asio::buffer(c.buffer.get() + c.have, kMaxHeadBytes - c.have), kTuple);
    if (rec) co_return rec;
    c.have += rn;
    end = head_end(c.buffer.get(), c.have);
  }
  const std::string_view head(reinterpret_cast<const char*>(c.buffer.get()), end);
  if (!head.starts_with("HTTP/1.1 101") ||
      find_header(head, "Sec-WebSocket-Accept") != target.accept)
    co_return protocol_error();
  std::memmove(c.buffer.get(), c.buffer.get() + end, c.have - end);
  c.have -= end;
  co_return ErrorCode{};
}

// Reads and scans frames into handler until done() holds (checked after every scan).
template <typename T, typename Handler, typename Done>
asio::awaitable<ErrorCode> read_frames(Conn<T>& c, Handler& handler, Done done) {
  for (;;) {
    if (c.have > 0) {
      const auto used = c.scanner.feed(c.buffer.get(), c.have, handler);
      if (!used) co_return protocol_error();
      if (*used > 0) {
        std::memmove(c.buffer.get(), c.buffer.get() + *used, c.have - *used);
        c.have -= *used;
      }
    }
    if (done()) co_return ErrorCode{};
    auto [ec, n] = co_await c.stream.async_read_some(
        asio::buffer(c.buffer.get() + c.have, kReadBufferSize - c.have), kTuple);
    if (ec) co_return ec;
    c.have += n;
  }
}

// Closes the socket of any armed slot that made no progress within the timeout. Shared: its
// timer loop keeps it alive until stop() lets the loop end.
class Watchdog : public std::enable_shared_from_this<Watchdog> {
 public:
  static std::shared_ptr<Watchdog> start(asio::io_context& io, std::size_t slots,
                                         std::chrono::milliseconds timeout) {
    auto dog = std::make_shared<Watchdog>(io, slots, timeout);
    asio::co_spawn(io, run(dog), asio::detached);
    return dog;
  }

  Watchdog(asio::io_context& io, std::size_t slots, std::chrono::milliseconds timeout)
      : timer_(io), slots_(slots), timeout_(timeout) {}

  void arm(std::size_t slot, tcp::socket& socket) { slots_[slot] = {&socket, Clock::now()}; }
  void disarm(std::size_t slot) { slots_[slot].socket = nullptr; }
  void stop() {
    stopped_ = true;
    for (auto& slot : slots_) slot.socket = nullptr;
    timer_.cancel();
  }

 private:
  static asio::awaitable<void> run(std::shared_ptr<Watchdog> self) {
    while (!self->stopped_) {
      self->timer_.expires_after(std::chrono::milliseconds(200));
      co_await self->timer_.async_wait(kTuple);
      const auto now = Clock::now();
      for (auto& slot : self->slots_) {
        if (slot.socket != nullptr && now - slot.since > self->timeout_) {
          ErrorCode ignored;
          slot.socket->close(ignored);
          slot.socket = nullptr;
        }
      }
    }
  }

  struct Slot {
    tcp::socket* socket = nullptr;
    Clock::time_point since;
  };
  asio::steady_timer timer_;
  std::vector<Slot> slots_;
  std::chrono::milliseconds timeout_;
  bool stopped_ = false;
};

// Handler that only notes which frames ended: data frames and the close frame.
struct FrameCounter {
  std::size_t data_frames = 0;
  bool close_seen = false;
  std::uint8_t opcode = 0;
  void on_start(std::uint8_t op, bool, std::uint64_t) { opcode = op; }
  void on_data(const std::uint8_t*, std::size_t) {}
  void on_end() {
    if (opcode == kOpClose) {
      close_seen = true;
    } else if ((opcode & 0x08) == 0) {
      ++data_frames;
    }
  }
};

}  // namespace wsgate::bench
