// libFuzzer target: request bytes -> Beast's request parser (as the proxy configures it) ->
// every pure check the proxy runs before a request may reach a backend. Besides crashes it
// checks that normalize_target only ever leaves an origin-form path (or OPTIONS *) behind.

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/route.hpp"
#include "proxy/http/request_checks.hpp"
#include "proxy/websocket/handshake_checks.hpp"

namespace {

using namespace wsgate;

const config::Route& policy_route() {
  static const config::Route route = [] {
    config::Route r;
    r.name = "fuzz";
    r.allowed_origins = {"https://good.example"};
    r.subprotocols = {"chat.v2", "chat.v1"};
    return r;
  }();
  return route;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http = boost::beast::http;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(boost::none);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;

  proxy::RequestHeader& req = parser.get().base();
  (void)proxy::check_framing(req);
  const auto target = proxy::normalize_target(req);
  if (!target) {
    const std::string_view t = req.target();
    const bool origin_form = !t.empty() && t.front() == '/';
    const bool asterisk = t == "*" && req.method() == http::verb::options;
    if (!origin_form && !asterisk) std::abort();  // would be forwarded as something else
  }
  (void)proxy::wants_websocket(req);
  const auto upgrade = proxy::check_upgrade(req);
  (void)proxy::check_route_policy(req, policy_route());
  if (!upgrade) {
    const std::string accept = proxy::websocket_accept(req[http::field::sec_websocket_key]);
    if (accept.size() != 28) std::abort();  // base64 of a 20-byte SHA-1
  }
  return 0;
}
