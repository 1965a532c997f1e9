#include "proxy/stream.hpp"

#include <openssl/ssl.h>

namespace wsgate::proxy {

bool Stream::has_buffered_input() const {
  return tls_ &&
         SSL_pending(const_cast<asio::ssl::stream<tcp::socket>&>(*tls_).native_handle()) > 0;
}

void Stream::shutdown_send() {
  boost::system::error_code ignored;
  socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void Stream::close() {
  boost::system::error_code ignored;
  socket().close(ignored);
}

}  // namespace wsgate::proxy
