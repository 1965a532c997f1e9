#include "proxy/upstream/upstream_tls.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wsgate::proxy {

std::shared_ptr<SSL_CTX> UpstreamTls::context_for(const std::string& ca_file, std::string& error) {
  std::lock_guard lock(mutex_);
  if (auto found = contexts_.find(ca_file); found != contexts_.end()) return found->second;
  auto context = new_tls_context(TLS_client_method(), error);
  if (!context) return nullptr;
  SSL_CTX* raw = context.get();
  ERR_clear_error();
  const int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(raw)
                                     : SSL_CTX_load_verify_locations(raw, ca_file.c_str(), nullptr);
  if (loaded != 1) {
    error = "cannot load CA " + (ca_file.empty() ? std::string("system store") : ca_file) + ": " +
            openssl_error_text();
    return nullptr;
  }
  SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(raw, kAlpn, sizeof kAlpn);
  contexts_.emplace(ca_file, context);
  return context;
}

asio::awaitable<std::unique_ptr<Stream>> connect_tls_upstream(ProxyContext& ctx, tcp::socket socket,
                                                              const config::Backend& backend,
                                                              Deadline& deadline,
                                                              std::string& error) {
  if (ctx.upstream_tls == nullptr) {
    error = "upstream TLS is not configured";
    co_return nullptr;
  }
  const auto context = ctx.upstream_tls->context_for(backend.ca_file, error);
  if (!context) co_return nullptr;
  // The SSL object holds its own reference to the context.
  auto stream = std::make_unique<Stream>(std::move(socket), context.get());
  SSL* ssl = stream->tls()->native_handle();
  if (ssl == nullptr) {
    error = "cannot create a TLS connection";
    co_return nullptr;
  }
  const std::string& name = backend.server_name.empty() ? backend.host : backend.server_name;
  boost::system::error_code not_ip;
  asio::ip::make_address(name, not_ip);
  if (not_ip) {
    // SNI only for names, never for IP literals (RFC 6066 §3).
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name.c_str()) != 1) {
      error = "invalid server name " + name;
      co_return nullptr;
    }
  } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
    error = "invalid server address " + name;
    co_return nullptr;
  }
  deadline.on_expiry([s = stream.get()] { s->close(); });
  auto [hs_ec] = co_await stream->tls()->async_handshake(TlsStream::Role::kClient,
                                                         asio::as_tuple(asio::use_awaitable));
  deadline.on_expiry(nullptr);
  if (hs_ec) {
    const long verify = SSL_get_verify_result(ssl);
    if (deadline.expired()) {
      error = "TLS handshake timed out";
    } else if (verify != X509_V_OK) {
      error = std::string("certificate verification failed (") + name +
              "): " + X509_verify_cert_error_string(verify);
    } else {
      error = "TLS handshake failed: " + hs_ec.message();
    }
    co_return nullptr;
  }
  co_return stream;
}

std::string check_ca_files(const config::RouteTable& table, UpstreamTls& tls) {
  for (const auto& route : table.routes()) {
    for (std::size_t i = 0; i < route.backends.size(); ++i) {
      const auto& backend = route.backends[i];
      if (!backend.tls) continue;
      std::string error;
      if (!tls.context_for(backend.ca_file, error)) {
        return "route " + route.id() + ": spec.backends[" + std::to_string(i) +
               "].caFile: " + error;
      }
    }
  }
  return {};
}

}  // namespace wsgate::proxy
