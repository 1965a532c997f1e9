// Hostile requests: smuggling-prone framing and request targets that could make the proxy an
// open proxy. Requests go through Beast's parser first, as in the proxy, so each case shows
// which layer refuses it.

#include <gtest/gtest.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <optional>
#include <string>

#include "proxy/http/request_checks.hpp"

namespace wsgate::proxy {
namespace {

// The parsed header, or nullopt when Beast's parser itself refuses the bytes.
std::optional<RequestHeader> parse(const std::string& raw) {
  http::request_parser<http::empty_body> parser;
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(raw), ec);
  if (ec || !parser.is_header_done()) return std::nullopt;
  return parser.get().base();
}

std::string request(const std::string& start_line, const std::string& fields) {
  return start_line + "\r\n" + fields + "\r\n";
}

int framing_status(const std::string& fields, const std::string& version = "HTTP/1.1") {
  const auto req = parse(request("POST /upload " + version, fields));
  if (!req) return -1;  // refused by the parser
  return check_framing(*req).status;
}

TEST(ReliabilitySmuggling, ParserRefusesTheClassicDesyncs) {
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"), -1);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"), -1);
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n"), -1);
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: +5\r\n"), -1);
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length : 5\r\n"), -1);  // space before colon
  EXPECT_EQ(framing_status("Host: a\r\nX\x01Y: 1\r\n"), -1);
  EXPECT_EQ(framing_status("Host: a\r\nX: a\x7f"
                           "b\r\n"),
            -1);
  EXPECT_EQ(framing_status("Host: a\r\nX: a\rb\r\n"), -1);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                           "chunked\r\n"),
            -1);
}

TEST(ReliabilitySmuggling, CheckFramingRefusesWhatTheParserLetsThrough) {
  // Equal duplicates and list values: RFC 9110 lets a recipient accept them, a backend may not.
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n"), 400);
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: 5, 5\r\n"), 400);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: chunked, identity\r\n"), 400);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: xchunked\r\n"), 400);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.0"), 400);
  EXPECT_EQ(framing_status("Host: a\r\nHost: b\r\n"), 400);
  EXPECT_EQ(framing_status("Host: good.example@evil.example\r\n"), 400);
  EXPECT_EQ(framing_status("Host: good.example/evil\r\n"), 400);
  EXPECT_EQ(framing_status("Host: a b\r\n"), 400);
}

TEST(ReliabilitySmuggling, OrdinaryFramingPasses) {
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: 5\r\n"), 0);
  EXPECT_EQ(framing_status("Host: a\r\nContent-Length: 0\r\n"), 0);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: chunked\r\n"), 0);
  EXPECT_EQ(framing_status("Host: a\r\nTransfer-Encoding: Chunked\r\n"), 0);
  EXPECT_EQ(framing_status("Host: chat.example.com:8443\r\n"), 0);
  EXPECT_EQ(framing_status("Host: [::1]:8080\r\n"), 0);
  EXPECT_EQ(framing_status(""), 0);  // no Host: refused later, where its absence matters
}

struct Target {
  int status;
  std::string target;
  std::string host;
};

Target normalize(const std::string& start_line, const std::string& host = "front.example") {
  auto req = parse(request(start_line, "Host: " + host + "\r\n"));
  if (!req) return {-1, "", ""};
  const auto rejection = normalize_target(*req);
  return {rejection.status, std::string(req->target()), std::string((*req)[http::field::host])};
}

TEST(ReliabilityTargets, OriginFormIsUntouched) {
  const auto t = normalize("GET /ws?room=1 HTTP/1.1");
  EXPECT_EQ(t.status, 0);
  EXPECT_EQ(t.target, "/ws?room=1");
  EXPECT_EQ(t.host, "front.example");
}

TEST(ReliabilityTargets, AbsoluteFormBecomesOriginFormWithItsAuthorityAsHost) {
  auto t = normalize("GET http://evil.example/ HTTP/1.1");
  EXPECT_EQ(t.status, 0);
  EXPECT_EQ(t.target, "/");
  EXPECT_EQ(t.host, "evil.example");  // routed as evil.example: only a route naming it matches

  t = normalize("GET HTTPS://chat.example.com:8443/ws/room?x=1 HTTP/1.1");
  EXPECT_EQ(t.status, 0);
  EXPECT_EQ(t.target, "/ws/room?x=1");
  EXPECT_EQ(t.host, "chat.example.com:8443");

  t = normalize("GET http://chat.example.com HTTP/1.1");
  EXPECT_EQ(t.target, "/");
  t = normalize("GET http://chat.example.com?x=1 HTTP/1.1");
  EXPECT_EQ(t.target, "/?x=1");
}

TEST(ReliabilityTargets, OtherFormsNeverReachABackend) {
  EXPECT_EQ(normalize("CONNECT evil.example:443 HTTP/1.1", "evil.example:443").status, 405);
  EXPECT_EQ(normalize("CONNECT /ws HTTP/1.1").status, 405);
  EXPECT_EQ(normalize("GET evil.example:443 HTTP/1.1").status, 400);  // authority-form
  EXPECT_EQ(normalize("GET ftp://evil.example/ HTTP/1.1").status, 400);
  EXPECT_EQ(normalize("GET http://user@evil.example/ HTTP/1.1").status, 400);
  EXPECT_EQ(normalize("GET http:///path HTTP/1.1").status, 400);
  EXPECT_EQ(normalize("GET * HTTP/1.1").status, 400);
  EXPECT_EQ(normalize("OPTIONS * HTTP/1.1").status, 0);
}

}  // namespace
}  // namespace wsgate::proxy
