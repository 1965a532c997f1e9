#include "proxy/core/stream.hpp"

namespace wsgate::proxy {

void Stream::shutdown_send() {
  if (kind_ == Kind::kTls) {
    tls_->shutdown_send();
  } else if (kind_ == Kind::kTransport) {
    transport_->shutdown_send();
  } else {
    boost::system::error_code ignored;
    tcp_.shutdown(tcp::socket::shutdown_send, ignored);
  }
}

void Stream::close() {
  if (kind_ == Kind::kTransport) {
    transport_->close();
    return;
  }
  boost::system::error_code ignored;
  socket().close(ignored);
}

}  // namespace wsgate::proxy
