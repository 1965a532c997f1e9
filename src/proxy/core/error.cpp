#include "proxy/core/error.hpp"

#include <boost/beast/http/error.hpp>

namespace wsgate::proxy {
namespace {

namespace http = boost::beast::http;

// A parse error says the bytes were not HTTP; the end of the stream before a complete header
// says the backend closed, as any socket error does.
bool is_parse_error(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

ProxyError ProxyError::upstream_write(const boost::system::error_code& ec, bool deadline_expired) {
  return ProxyError(deadline_expired ? Kind::kResponseTimeout : Kind::kUpstreamClosed, ec);
}

ProxyError ProxyError::upstream_read(const boost::system::error_code& ec, bool deadline_expired) {
  if (deadline_expired) return ProxyError(Kind::kResponseTimeout, ec);
  return ProxyError(is_parse_error(ec) ? Kind::kBadResponse : Kind::kUpstreamClosed, ec);
}

std::string ProxyError::reason() const {
  std::string out(info(kind_).reason);
  if (kind_ == Kind::kBadResponse && cause_) {
    out += ": ";
    out += cause_.message();
  }
  return out;
}

std::string ProxyError::describe() const {
  std::string out = reason();
  if (!detail_.empty()) {
    out += ": ";
    out += detail_;
  } else if (cause_ && kind_ != Kind::kBadResponse) {
    out += ": ";
    out += cause_.message();
  }
  return out;
}

}  // namespace wsgate::proxy
