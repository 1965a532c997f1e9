#include "proxy/downstream/tls_accept.hpp"

#include <openssl/err.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/core/deadline.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/downstream/http_session.hpp"

namespace wsgate::proxy {
namespace {

asio::awaitable<void> run_tls_handshake(ProxyContext& ctx, Worker& worker, ServerTls& tls,
                                        tcp::socket socket, tcp::endpoint remote,
                                        ConnectionSlot connection) {
  // Pinned for the handshake: the SNI callback chooses from this set even if a rotation
  // replaces it meanwhile.
  const auto certificates = tls.current();
  Stream stream(std::move(socket), certificates->default_context());
  TlsStream& tls_stream = *stream.tls();
  if (tls_stream.native_handle() == nullptr) {
    spdlog::error("client {}: cannot create a TLS connection", remote.address().to_string());
    co_return;
  }
  certificates->attach(tls_stream.native_handle());
  Deadline deadline(worker.io().get_executor(),
                    std::chrono::steady_clock::now() + ctx.options.client_header_timeout);
  deadline.on_expiry([&stream] { stream.close(); });
  auto [ec] = co_await tls_stream.async_handshake(TlsStream::Role::kServer,
                                                  asio::as_tuple(asio::use_awaitable));
  deadline.on_expiry(nullptr);
  CertificateSet::detach(tls_stream.native_handle());
  if (ec) {
    // A connection closed before sending a byte is a TCP probe (load balancer health check),
    // not a failed handshake.
    if (!deadline.expired() && tls_stream.bytes_received() == 0) {
      spdlog::debug("client {}: closed before the TLS handshake", remote.address().to_string());
    } else {
      const auto reason = tls_handshake_error_reason(ec, deadline.expired());
      ctx.metrics.tls_handshake_errors.with({std::string(reason)}).inc();
      spdlog::info("client {}: TLS handshake failed ({}): {}", remote.address().to_string(), reason,
                   deadline.expired() ? std::string("timed out") : ec.message());
    }
    stream.close();
    co_return;
  }
  start_admitted_http_session(ctx, worker, std::move(stream), remote, std::move(connection));
}

}  // namespace

std::string_view tls_handshake_error_reason(const boost::system::error_code& ec, bool timed_out) {
  if (timed_out) return "timeout";
  if (ec.category() != asio::error::get_ssl_category()) return "other";
  const auto code = static_cast<unsigned long>(ec.value());
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return "other";
  switch (ERR_GET_REASON(code)) {
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
      return "no_shared_cipher";
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return "protocol_version";
    // The client refused our certificate.
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      return "unknown_ca";
    default:
      return "other";
  }
}

void start_tls_session(ProxyContext& ctx, Worker& worker, ServerTls& tls, tcp::socket socket,
                       const tcp::endpoint& peer) {
  // Counted before the handshake, so the limit also bounds handshakes in progress. Past it
  // the connection is closed at once: a 503 would need a TLS handshake first, and that is the
  // CPU the limit protects.
  if (!ctx.admission.try_open_connection(ctx.options.max_connections)) {
    ctx.metrics.connections_rejected.with({"max_connections"}).inc();
    spdlog::debug("TLS connection from {} closed: --max-connections {} reached",
                  peer.address().to_string(), ctx.options.max_connections);
    boost::system::error_code ignored;
    socket.close(ignored);
    return;
  }
  // The place is given back if the handshake fails (or its coroutine is destroyed at exit).
  asio::co_spawn(
      worker.io(),
      run_tls_handshake(ctx, worker, tls, std::move(socket), peer, ConnectionSlot(ctx.admission)),
      asio::detached);
}

}  // namespace wsgate::proxy
