#include "proxy/tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wsgate::proxy {

std::shared_ptr<asio::ssl::context> UpstreamTls::context_for(const std::string& ca_file,
                                                             std::string& error) {
  std::lock_guard lock(mutex_);
  auto& slot = contexts_[ca_file];
  if (slot) return slot;
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    context->set_default_verify_paths(ec);
  } else {
    context->load_verify_file(ca_file, ec);
  }
  if (ec) {
    contexts_.erase(ca_file);
    error = "cannot load CA " + (ca_file.empty() ? std::string("system store") : ca_file) + ": " +
            ec.message();
    return nullptr;
  }
  context->set_verify_mode(asio::ssl::verify_peer);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(context->native_handle(), kAlpn, sizeof kAlpn);
  slot = context;
  return slot;
}

asio::awaitable<std::unique_ptr<Stream>> connect_tls_upstream(ProxyContext& ctx, tcp::socket socket,
                                                              const config::Backend& backend,
                                                              Deadline& deadline,
                                                              std::string& error) {
  if (ctx.upstream_tls == nullptr) {
    error = "upstream TLS is not configured";
    co_return nullptr;
  }
  auto context = ctx.upstream_tls->context_for(backend.ca_file, error);
  if (!context) co_return nullptr;
  // The context must outlive the stream: a CA file's context is kept for the process life.
  auto stream = std::make_unique<Stream>(std::move(socket), *context);
  SSL* ssl = stream->tls()->native_handle();
  const std::string& name = backend.server_name.empty() ? backend.host : backend.server_name;
  // SNI only for names, never for IP literals (RFC 6066 §3).
  boost::system::error_code ec;
  asio::ip::make_address(name, ec);
  if (ec) SSL_set_tlsext_host_name(ssl, name.c_str());
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (!SSL_set1_host(ssl, name.c_str())) {
    error = "invalid server name " + name;
    co_return nullptr;
  }
  deadline.on_expiry([s = stream.get()] { s->close(); });
  auto [hs_ec] = co_await stream->tls()->async_handshake(asio::ssl::stream_base::client,
                                                         asio::as_tuple(asio::use_awaitable));
  deadline.on_expiry(nullptr);
  if (hs_ec) {
    const long verify = SSL_get_verify_result(ssl);
    if (deadline.expired()) {
      error = "TLS handshake timed out";
    } else if (verify != X509_V_OK) {
      error =
          std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify);
    } else {
      error = "TLS handshake failed: " + hs_ec.message();
    }
    co_return nullptr;
  }
  co_return stream;
}

}  // namespace wsgate::proxy
