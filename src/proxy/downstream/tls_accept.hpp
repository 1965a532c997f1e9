#pragma once
// The TLS stage of a TLS listener's connection: server handshake (certificate by SNI, with a
// timeout), failures counted by reason, then the connection goes to the HTTP session.

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <string_view>

#include "proxy/core/proxy_context.hpp"
#include "proxy/downstream/listener_certificates.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

// The reason label of wsgate_tls_handshake_errors_total for a failed server handshake:
// no_shared_cipher, protocol_version, unknown_ca, timeout or other.
std::string_view tls_handshake_error_reason(const boost::system::error_code& ec, bool timed_out);

// Every reason label, so the series exist (at 0) from the start.
inline constexpr std::string_view kTlsHandshakeErrorReasons[] = {
    "no_shared_cipher", "protocol_version", "unknown_ca", "timeout", "other"};

// Counts the connection against --max-connections (past it: closed at once, counted in
// wsgate_connections_rejected_total) and runs the handshake on `socket` (call on the worker's
// thread); the client must finish it within ctx.options.client_header_timeout.
void start_tls_session(ProxyContext& ctx, Worker& worker, ServerTls& tls,
                       boost::asio::ip::tcp::socket socket,
                       const boost::asio::ip::tcp::endpoint& peer);

}  // namespace wsgate::proxy
