#include "proxy/upstream/connect.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>

#include <cerrno>

#include "proxy/upstream/upstream_tls.hpp"

namespace wsgate::proxy {
namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

void count_failed_attempt(ProxyContext& ctx, Snapshot::RouteEntry& entry,
                          const config::Backend& backend, const ProxyError& error) {
  const bool tls = error.kind() == ProxyError::Kind::kTlsHandshakeFailed;
  spdlog::warn("route {}: backend {} {}: {}", entry.runtime->id(), backend.address,
               tls ? "TLS failed" : "unreachable", tls ? error.detail() : error.cause().message());
  if (error.counts_as_connect_error())
    ctx.metrics.upstream_connect_errors.with({entry.runtime->id(), backend.address}).inc();
}

}  // namespace

asio::awaitable<UpstreamConnection> connect_upstream(ProxyContext& ctx, Worker& worker,
                                                     Snapshot::RouteEntry& entry,
                                                     Deadline& deadline) {
  UpstreamConnection result;
  const auto& backends = entry.route->backends;
  for (const std::size_t index : entry.picker->next_order()) {
    const config::Backend& backend = backends[index];
    tcp::socket socket(worker.io());
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(backend.host, ec);
    if (!ec) {
      deadline.on_expiry([&socket] {
        boost::system::error_code ignored;
        socket.close(ignored);
      });
      // Non-blocking before the connect: the only ioctl this socket gets (see start_tunnel).
      const tcp::endpoint endpoint(address, backend.port);
      socket.open(endpoint.protocol(), ec);
      if (!ec) socket.non_blocking(true, ec);
      // connect() here and a wait for writability: what async_connect does, minus the poll()
      // Asio adds after the wait (one system call per handshake).
      if (!ec && ::connect(socket.native_handle(), endpoint.data(), endpoint.size()) != 0) {
        if (errno != EINPROGRESS) {
          ec = boost::system::error_code(errno, boost::system::system_category());
        } else {
          std::tie(ec) = co_await socket.async_wait(tcp::socket::wait_write, kTuple);
          int error = 0;
          socklen_t length = sizeof error;
          if (!ec &&
              ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
            error = errno;
          }
          if (!ec && error != 0)
            ec = boost::system::error_code(error, boost::system::system_category());
        }
      }
    } else {
      tcp::resolver resolver(worker.io());
      deadline.on_expiry([&resolver] { resolver.cancel(); });
      auto [resolve_ec, results] =
          co_await resolver.async_resolve(backend.host, std::to_string(backend.port), kTuple);
      ec = resolve_ec;
      if (!ec && !deadline.expired()) {
        deadline.on_expiry([&socket] {
          boost::system::error_code ignored;
          socket.close(ignored);
        });
        tcp::endpoint connected;
        std::tie(ec, connected) = co_await asio::async_connect(socket, results, kTuple);
      }
    }
    if (!ec && !deadline.expired()) {
      socket.set_option(tcp::no_delay(true), ec);
      ec = {};
      std::unique_ptr<Stream> stream;
      if (backend.tls) {
        std::string tls_error;
        stream =
            co_await connect_tls_upstream(ctx, std::move(socket), backend, deadline, tls_error);
        if (!stream) {
          // Counted even when the deadline cut the handshake short.
          result.error = ProxyError(ProxyError::Kind::kTlsHandshakeFailed, {}, tls_error);
          count_failed_attempt(ctx, entry, backend, result.error);
          if (deadline.expired()) break;
          continue;
        }
      } else {
        stream = std::make_unique<Stream>(std::move(socket));
      }
      deadline.on_expiry(nullptr);
      result.stream = std::move(stream);
      result.backend = index;
      co_return result;
    }
    deadline.on_expiry(nullptr);
    if (deadline.expired()) break;
    result.error = ProxyError(ProxyError::Kind::kConnectFailed, ec);
    count_failed_attempt(ctx, entry, backend, result.error);
  }
  deadline.on_expiry(nullptr);
  if (deadline.expired()) result.error = ProxyError(ProxyError::Kind::kConnectTimeout);
  co_return result;
}

}  // namespace wsgate::proxy
