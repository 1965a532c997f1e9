// The only translation unit with Beast templates for the admin port: they dominate compile
// time, so every other file sees just the small header.

#include "admin/admin_server.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>

#include "common/net_address.hpp"

namespace wsgate::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kHeaderLimit = 8 * 1024;
// Admin endpoints take no body; a small one (a stray POST) is read so keep-alive survives.
constexpr std::uint64_t kBodyLimit = 64 * 1024;
constexpr std::chrono::seconds kWriteTimeout{10};
// After an error response, what the client still sends is read and dropped for a while:
// closing with unread bytes makes the kernel send RST, which can wipe out the response
// before the client has read it.
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr std::size_t kLingerBytes = 64 * 1024;
// Scrapes and probes need a handful of connections; the cap keeps a flood from exhausting
// descriptors the data plane needs.
constexpr int kMaxConnections = 128;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// HEAD gets the headers GET would get, Content-Length included, and no body.
Response make_response(const AdminResponse& out, unsigned version, bool keep_alive, bool head) {
  Response res;
  res.version(version);
  res.result(out.status >= 100 && out.status <= 599 ? out.status : 500);
  res.set(http::field::server, "wsgate");
  res.set(http::field::content_type, out.content_type);
  res.content_length(out.body.size());
  if (!head) res.body() = out.body;
  res.keep_alive(keep_alive);
  return res;
}

Response make_error(http::status status, std::string_view reason) {
  AdminResponse out{static_cast<int>(status), "text/plain; charset=utf-8", std::string(reason)};
  out.body += '\n';
  return make_response(out, 11, false, false);
}

}  // namespace

struct AdminServer::Impl {
  std::string listen;
  std::map<std::string, Handler, std::less<>> handlers;
  std::chrono::milliseconds read_timeout{std::chrono::seconds(10)};
  int connections = 0;  // touched on the admin thread only
  std::unique_ptr<asio::io_context> ioc;
  std::thread thread;

  Response respond(const Request& req) const {
    const bool head = req.method() == http::verb::head;
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    AdminResponse out;
    auto found = handlers.find(path);
    if (found == handlers.end()) {
      out = {404, "text/plain; charset=utf-8", "not found\n"};
    } else if (req.method() != http::verb::get && !head) {
      out = {405, "text/plain; charset=utf-8", "method not allowed\n"};
    } else {
      // A failing handler must cost one request, not the admin thread.
      try {
        out = found->second();
      } catch (const std::exception& error) {
        spdlog::warn("admin handler for {} failed: {}", path, error.what());
        out = {500, "text/plain; charset=utf-8", "internal error\n"};
      }
    }
    Response res = make_response(out, req.version(), req.keep_alive(), head);
    if (out.status == 405) res.set(http::field::allow, "GET, HEAD");
    return res;
  }

  static asio::awaitable<void> send_and_close(beast::tcp_stream& stream, Response res) {
    stream.expires_after(kWriteTimeout);
    auto [error, written] = co_await http::async_write(stream, res, kUseTuple);
    if (error) co_return;
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(kLingerTimeout);
    std::array<char, 4096> sink;
    for (std::size_t drained = 0; drained < kLingerBytes;) {
      auto [read_error, got] = co_await stream.async_read_some(asio::buffer(sink), kUseTuple);
      if (read_error) break;
      drained += got;
    }
  }

  // One connection: requests in order, until the client closes, asks to close, errs or idles.
  asio::awaitable<void> serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(kBodyLimit);
      // Covers the idle time before the next request too; tcp_stream closes on expiry.
      stream.expires_after(read_timeout);
      auto [error, read] = co_await http::async_read(stream, buffer, parser, kUseTuple);
      if (error == http::error::header_limit) {
        co_await send_and_close(stream, make_error(http::status::request_header_fields_too_large,
                                                   "request header fields too large"));
        co_return;
      }
      if (error == http::error::body_limit) {
        co_await send_and_close(
            stream, make_error(http::status::payload_too_large, "request body too large"));
        co_return;
      }
      if (error == http::error::end_of_stream || error == http::error::partial_message) {
        co_return;  // the client closed
      }
      if (error && error.category() == http::make_error_code(http::error::bad_method).category()) {
        co_await send_and_close(stream, make_error(http::status::bad_request, "bad request"));
        co_return;
      }
      if (error) co_return;  // timeout (already closed), reset, ...

      Response res = respond(parser.get());
      const bool keep_alive = res.keep_alive();
      stream.expires_after(kWriteTimeout);
      auto [write_error, written] = co_await http::async_write(stream, res, kUseTuple);
      if (write_error) co_return;
      if (!keep_alive) {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  asio::awaitable<void> accept_loop(tcp::acceptor acceptor) {
    asio::steady_timer backoff(acceptor.get_executor());
    for (;;) {
      auto [error, socket] = co_await acceptor.async_accept(kUseTuple);
      if (error == asio::error::operation_aborted) co_return;
      if (error) {
        // Out of descriptors, most likely: retry shortly instead of spinning or giving up.
        spdlog::warn("admin accept failed: {}", error.message());
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(kUseTuple);
        continue;
      }
      if (connections >= kMaxConnections) continue;  // socket closes as it goes out of scope
      // Pipelined requests get back-to-back small responses: Nagle would hold the second one
      // until the client's delayed ACK.
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      ++connections;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)),
                     [this](std::exception_ptr failure) {
                       --connections;
                       log_failure("connection", failure);
                     });
    }
  }

  static void log_failure(std::string_view what, const std::exception_ptr& failure) {
    if (!failure) return;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& error) {
      spdlog::error("admin {} failed: {}", what, error.what());
    } catch (...) {
      spdlog::error("admin {} failed", what);
    }
  }
};

AdminServer::AdminServer(std::string listen) : impl_(std::make_unique<Impl>()) {
  impl_->listen = std::move(listen);
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::handle(std::string path, Handler handler) {
  impl_->handlers[std::move(path)] = std::move(handler);
}

void AdminServer::set_read_timeout(std::chrono::milliseconds timeout) {
  impl_->read_timeout = timeout;
}

std::uint16_t AdminServer::start() {
  if (impl_->ioc) throw std::runtime_error("admin server already started");
  const std::string& listen = impl_->listen;
  auto parsed = parse_host_port(listen, /*allow_port_zero=*/true);
  if (const auto* reason = std::get_if<std::string>(&parsed)) {
    throw std::runtime_error("admin listen address '" + listen + "': " + *reason);
  }
  const HostPort& host_port = std::get<HostPort>(parsed);

  auto ioc = std::make_unique<asio::io_context>(1);
  boost::system::error_code error;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(host_port.host, error);
  if (!error) {
    endpoint = tcp::endpoint(address, host_port.port);
  } else {
    // A name such as "localhost": startup code, a blocking lookup is fine.
    tcp::resolver resolver(*ioc);
    auto results = resolver.resolve(host_port.host, std::to_string(host_port.port), error);
    if (error || results.empty()) {
      throw std::runtime_error("admin listen address '" + listen + "': cannot resolve host: " +
                               (error ? error.message() : std::string("no address")));
    }
    endpoint = results.begin()->endpoint();
  }

  tcp::acceptor acceptor(*ioc);
  auto fail = [&](std::string_view step) {
    return std::runtime_error("cannot listen (admin) on " + listen + ": " + std::string(step) +
                              ": " + error.message());
  };
  acceptor.open(endpoint.protocol(), error);
  if (error) throw fail("socket");
  acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (error) throw fail("setsockopt");
  acceptor.bind(endpoint, error);
  if (error) throw fail("bind");
  acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) throw fail("listen");
  tcp::endpoint local = acceptor.local_endpoint(error);
  if (error) throw fail("getsockname");

  HostPort bound{local.address().to_string(), local.port(), local.address().is_v6()};
  spdlog::info("listening (admin) on {}", bound.to_string());

  asio::co_spawn(*ioc, impl_->accept_loop(std::move(acceptor)),
                 [](std::exception_ptr failure) { Impl::log_failure("listener", failure); });
  impl_->ioc = std::move(ioc);
  impl_->thread = std::thread([ioc = impl_->ioc.get()] {
    pthread_setname_np(pthread_self(), "wsgate-admin");
    ioc->run();
  });
  return local.port();
}

void AdminServer::stop() {
  if (!impl_->ioc) return;
  impl_->ioc->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Destroying the context destroys every suspended coroutine, closing the listener and all
  // connections, so the port is free when stop() returns.
  impl_->ioc.reset();
}

}  // namespace wsgate::admin
