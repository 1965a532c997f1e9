#pragma once
// TLS towards backends (routes with tls: true): one client context per CA file, SNI set to the
// backend's name, certificate chain and host name verified; failures become 502s with a reason.

#include <openssl/ssl.h>
#include <boost/asio/awaitable.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "config/route.hpp"
#include "proxy/core/deadline.hpp"
#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"

namespace wsgate::proxy {

class UpstreamTls {
 public:
  // The client context verifying against `ca_file` ("" = the system trust store). Contexts are
  // created on first use and kept; nullptr with `error` set when the CA file cannot be loaded
  // (not kept: the next connection tries again, so a CA file that appears later is used).
  std::shared_ptr<SSL_CTX> context_for(const std::string& ca_file, std::string& error);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<SSL_CTX>> contexts_;
};

// Wraps a connected socket in TLS and completes the handshake with `backend`. Returns null
// with `error` set (certificate verification reason, handshake failure, timeout).
boost::asio::awaitable<std::unique_ptr<Stream>> connect_tls_upstream(ProxyContext& ctx,
                                                                     tcp::socket socket,
                                                                     const config::Backend& backend,
                                                                     Deadline& deadline,
                                                                     std::string& error);

// Loads the CA bundle of every tls backend (warming the cache the data path uses): "" when all
// load, else why not. A controller cannot see the proxy's files, so a bundle missing here is a
// reason to NACK a snapshot the controller accepted.
std::string check_ca_files(const config::RouteTable& table, UpstreamTls& tls);

}  // namespace wsgate::proxy
