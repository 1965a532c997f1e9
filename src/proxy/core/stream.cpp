#include "proxy/core/stream.hpp"

namespace wsgate::proxy {

bool Stream::has_buffered_input() const {
  return tls_ && tls_->has_buffered_input();
}

void Stream::shutdown_send() {
  if (tls_) {
    tls_->shutdown_send();
    return;
  }
  boost::system::error_code ignored;
  socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void Stream::close() {
  boost::system::error_code ignored;
  socket().close(ignored);
}

}  // namespace wsgate::proxy
