// The echo backend's HTTP side: reads requests with Beast's parser, answers the scripted paths
// that status-code tests need, serves the plain HTTP endpoints and the demo page, and hands an
// accepted WebSocket upgrade (with any bytes read past its headers) to the echo loop.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "echo_backend.hpp"

namespace wsgate::echo {
namespace {

namespace http = beast::http;

constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
constexpr std::size_t kStreamChunk = 16 * 1024;
constexpr std::uint64_t kMaxStreamBytes = 1ULL << 30;
constexpr std::uintmax_t kMaxStaticFile = 16 * 1024 * 1024;
constexpr std::chrono::seconds kLingerTime{5};

using Request = http::request<http::empty_body>;
using StringResponse = http::response<http::string_body>;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// True when the comma-separated header value lists `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (lower(item) == lower(token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// All values of a header, joined as one list (a client may repeat Connection or Upgrade).
std::string joined(const http::request_header<>& req, http::field field) {
  std::string out;
  for (auto [it, end] = req.equal_range(field); it != end; ++it) {
    if (!out.empty()) out += ", ";
    out += it->value();
  }
  return out;
}

std::string path_of(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

// The request as received: method, target, version, headers merged by lower-case name (repeats
// joined with ", ") and, for tests about order or duplicates, the raw list.
std::string request_json(const http::request_header<>& req) {
  std::vector<std::pair<std::string, std::string>> merged;
  std::string raw;
  for (const auto& field : req) {
    const std::string name = lower(field.name_string());
    auto it =
        std::find_if(merged.begin(), merged.end(), [&](const auto& p) { return p.first == name; });
    if (it == merged.end()) {
      merged.emplace_back(name, std::string(field.value()));
    } else {
      it->second += ", ";
      it->second += field.value();
    }
    if (!raw.empty()) raw += ',';
    raw += "[\"" + json_escape(field.name_string()) + "\",\"" + json_escape(field.value()) + "\"]";
  }
  std::string out = "{\"method\":\"" + json_escape(req.method_string()) + "\",\"target\":\"" +
                    json_escape(req.target()) + "\",\"version\":\"" +
                    std::to_string(req.version() / 10) + "." + std::to_string(req.version() % 10) +
                    "\",\"headers\":{";
  for (std::size_t i = 0; i < merged.size(); ++i) {
    if (i != 0) out += ',';
    out += "\"" + json_escape(merged[i].first) + "\":\"" + json_escape(merged[i].second) + "\"";
  }
  out += "},\"raw_headers\":[" + raw + "]}";
  return out;
}

std::string_view content_type(const std::filesystem::path& file) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kTypes{{
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
  }};
  const std::string ext = lower(file.extension().string());
  for (const auto& [suffix, type] : kTypes) {
    if (ext == suffix) return type;
  }
  return "application/octet-stream";
}

// Maps a request path onto a regular file under `root`, refusing anything that could escape it.
std::optional<std::filesystem::path> static_file(const std::filesystem::path& root,
                                                 std::string path) {
  if (root.empty() || path.empty() || path.front() != '/') return std::nullopt;
  if (path.back() == '/') path += "index.html";
  const std::filesystem::path relative(path.substr(1));
  for (const auto& part : relative) {
    if (part == ".." || part == "." || part.string().find('\\') != std::string::npos) {
      return std::nullopt;
    }
  }
  if (path.find('\0') != std::string::npos) return std::nullopt;
  std::error_code ec;
  const std::filesystem::path file = root / relative;
  if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec || size > kMaxStaticFile) return std::nullopt;
  return file;
}

class HttpSession {
 public:
  HttpSession(beast::tcp_stream stream, Options options)
      : stream_(std::move(stream)), options_(std::move(options)) {}

  net::awaitable<void> run() {
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(kHeaderLimit);
      auto [ec, n] = co_await http::async_read_header(stream_, buffer_, parser, kNoThrow);
      if (ec == http::error::header_limit) {
        co_await reply_and_close(http::status::request_header_fields_too_large,
                                 "headers too large");
        co_return;
      }
      if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        co_await reply_and_close(http::status::bad_request, "malformed request");
        co_return;
      }
      if (ec) co_return;  // the client went away
      if (!co_await dispatch(parser)) co_return;
    }
  }

 private:
  // Answers one request; false when the connection is done (closed, hung or upgraded).
  net::awaitable<bool> dispatch(http::request_parser<http::empty_body>& parser) {
    const Request& req = parser.get();
    const std::string path = path_of(req.target());
    const bool upgrade = has_token(joined(req, http::field::upgrade), "websocket");

    if (path.starts_with("/status/")) co_return co_await scripted_status(parser, path.substr(8));
    if (path == "/hang") {
      co_await drain_until_closed();
      co_return false;
    }
    if (path == "/garbage") {
      co_await net::async_write(stream_, net::buffer(std::string_view("this is not http\r\n\r\n")),
                                kNoThrow);
      co_await close();
      co_return false;
    }
    if (path == "/bad-accept") {
      co_await bad_accept(req);
      co_return false;
    }
    if (upgrade) {
      co_await accept_websocket(req);
      co_return false;
    }

    http::request_parser<http::string_body> body_parser(std::move(parser));
    body_parser.body_limit(kMaxMessageBytes);
    if (!body_parser.is_done()) {
      auto [ec, n] = co_await http::async_read(stream_, buffer_, body_parser, kNoThrow);
      if (ec == http::error::body_limit) {
        co_await reply_and_close(http::status::payload_too_large, "body too large");
        co_return false;
      }
      if (ec) co_return false;
    }
    co_return co_await serve_plain(body_parser.get());
  }

  net::awaitable<bool> scripted_status(http::request_parser<http::empty_body>& parser,
                                       std::string_view code_text) {
    unsigned code = 0;
    const bool keep_alive = parser.get().keep_alive();
    if (!parser.is_done()) {  // read and drop any body, so the connection stays usable
      http::request_parser<http::string_body> body_parser(std::move(parser));
      body_parser.body_limit(kMaxMessageBytes);
      auto [ec, n] = co_await http::async_read(stream_, buffer_, body_parser, kNoThrow);
      if (ec) co_return false;
    }
    if (!parse_decimal(code_text, code) || code < 200 || code > 599) {
      co_return co_await reply(http::status::bad_request, "status must be 200..599\n", keep_alive);
    }
    StringResponse res{static_cast<http::status>(code), 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "status " + std::to_string(code) + " from the echo backend\n";
    co_return co_await send(std::move(res), keep_alive);
  }

  net::awaitable<bool> serve_plain(http::request<http::string_body>& req) {
    const std::string path = path_of(req.target());
    const bool keep_alive = req.keep_alive();
    if (path == "/echo-http") {
      StringResponse res{http::status::ok, 11};
      const auto type = req[http::field::content_type];
      res.set(http::field::content_type, type.empty() ? "application/octet-stream" : type);
      res.body() = std::move(req.body());
      if (req.chunked()) {
        res.chunked(true);
        res.keep_alive(keep_alive);
        auto [ec, n] = co_await http::async_write(stream_, res, kNoThrow);
        co_return co_await finish_response(ec, keep_alive);
      }
      co_return co_await send(std::move(res), keep_alive);
    }
    if (path.starts_with("/stream/")) {
      std::uint64_t count = 0;
      if (!parse_decimal(std::string_view(path).substr(8), count) || count > kMaxStreamBytes) {
        co_return co_await reply(http::status::bad_request, "byte count must be 0..2^30\n",
                                 keep_alive);
      }
      co_return co_await stream_bytes(count, keep_alive);
    }
    if (path == "/headers") {
      StringResponse res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = request_json(req);
      co_return co_await send(std::move(res), keep_alive);
    }
    if (auto file = static_file(options_.demo_dir, path)) {
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        StringResponse res{http::status::method_not_allowed, 11};
        res.set(http::field::allow, "GET, HEAD");
        res.body() = "method not allowed\n";
        co_return co_await send(std::move(res), keep_alive);
      }
      std::ifstream in(*file, std::ios::binary);
      StringResponse res{http::status::ok, 11};
      res.set(http::field::content_type, content_type(*file));
      res.body().assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (req.method() == http::verb::head) {
        http::response<http::empty_body> head{static_cast<const http::response_header<>&>(res)};
        head.content_length(res.body().size());
        head.keep_alive(keep_alive);
        auto [ec, n] = co_await http::async_write(stream_, head, kNoThrow);
        co_return co_await finish_response(ec, keep_alive);
      }
      co_return co_await send(std::move(res), keep_alive);
    }
    co_return co_await reply(http::status::not_found, "not found\n", keep_alive);
  }

  // `count` pattern bytes in 16 KiB chunks of chunked transfer encoding.
  net::awaitable<bool> stream_bytes(std::uint64_t count, bool keep_alive) {
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/octet-stream");
    res.chunked(true);
    res.keep_alive(keep_alive);
    http::response_serializer<http::empty_body> serializer(res);
    if (auto [ec, n] = co_await http::async_write_header(stream_, serializer, kNoThrow); ec) {
      co_return false;
    }
    std::string chunk(kStreamChunk, '\0');
    for (std::uint64_t sent = 0; sent < count;) {
      const auto size =
          static_cast<std::size_t>(std::min<std::uint64_t>(kStreamChunk, count - sent));
      fill_pattern(chunk.data(), size, static_cast<std::size_t>(sent));
      auto [ec, n] = co_await net::async_write(
          stream_, http::make_chunk(net::buffer(chunk.data(), size)), kNoThrow);
      if (ec) co_return false;
      sent += size;
    }
    auto [ec, n] = co_await net::async_write(stream_, http::make_chunk_last(), kNoThrow);
    co_return co_await finish_response(ec, keep_alive);
  }

  net::awaitable<void> accept_websocket(const Request& req) {
    const std::string key(req[http::field::sec_websocket_key]);
    std::array<char, 32> decoded{};
    const auto [written, read] =
        key.size() == 24 ? beast::detail::base64::decode(decoded.data(), key.data(), key.size())
                         : std::pair<std::size_t, std::size_t>{0, 0};
    const char* problem = nullptr;
    if (req.method() != http::verb::get)
      problem = "method must be GET";
    else if (req.version() != 11)
      problem = "HTTP/1.1 required";
    else if (!has_token(joined(req, http::field::connection), "upgrade"))
      problem = "no upgrade token";
    else if (written != 16 || read != 22 || !key.ends_with("=="))
      problem = "bad Sec-WebSocket-Key";
    if (problem != nullptr) {
      co_await reply_and_close(http::status::bad_request, problem);
      co_return;
    }
    if (req[http::field::sec_websocket_version] != "13") {
      StringResponse res{http::status::upgrade_required, 11};
      res.set(http::field::sec_websocket_version, "13");
      res.body() = "Sec-WebSocket-Version must be 13\n";
      co_await send(std::move(res), false);
      co_return;
    }
    beast::websocket::detail::sec_ws_accept_type accept;
    beast::websocket::detail::make_sec_ws_accept(accept, key);
    std::string head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    head.append(accept.data(), accept.size());
    head += "\r\n";
    // The first subprotocol the client offers is the one chosen.
    const std::string offered = joined(req, http::field::sec_websocket_protocol);
    std::string_view first = std::string_view(offered).substr(0, offered.find(','));
    while (!first.empty() && first.back() == ' ') first.remove_suffix(1);
    while (!first.empty() && first.front() == ' ') first.remove_prefix(1);
    if (!first.empty()) head += "Sec-WebSocket-Protocol: " + std::string(first) + "\r\n";
    head += "\r\n";
    if (auto [ec, n] = co_await net::async_write(stream_, net::buffer(head), kNoThrow); ec) {
      co_return;
    }
    co_await run_websocket(std::move(stream_), std::move(buffer_), request_json(req));
  }

  // A 101 whose Sec-WebSocket-Accept does not match the key, then silence until the peer goes.
  net::awaitable<void> bad_accept(const Request& req) {
    const std::string_view key = req[http::field::sec_websocket_key];
    beast::websocket::detail::sec_ws_accept_type accept;
    // Beast asserts on keys longer than a real one; the client's key is not trusted here.
    beast::websocket::detail::make_sec_ws_accept(accept, key.size() == 24 ? key : "x");
    accept[0] = accept[0] == 'A' ? 'B' : 'A';  // right length, wrong value
    std::string head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    head.append(accept.data(), accept.size());
    head += "\r\n\r\n";
    if (auto [ec, n] = co_await net::async_write(stream_, net::buffer(head), kNoThrow); !ec) {
      co_await drain_until_closed();
    }
  }

  // Reads and drops everything until the peer closes; no deadline, by design (/hang).
  net::awaitable<void> drain_until_closed() {
    stream_.expires_never();
    co_await drain();
    beast::error_code ignored;
    stream_.socket().close(ignored);
  }

  net::awaitable<void> drain() {
    std::array<char, 4096> sink{};
    for (;;) {
      auto [ec, n] = co_await stream_.async_read_some(net::buffer(sink), kNoThrow);
      if (ec) break;
    }
  }

  net::awaitable<bool> reply(http::status status, std::string body, bool keep_alive) {
    StringResponse res{status, 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(body);
    co_return co_await send(std::move(res), keep_alive);
  }

  net::awaitable<void> reply_and_close(http::status status, std::string_view reason) {
    co_await reply(status, std::string(reason) + "\n", false);
  }

  net::awaitable<bool> send(StringResponse res, bool keep_alive) {
    res.keep_alive(keep_alive);
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream_, res, kNoThrow);
    co_return co_await finish_response(ec, keep_alive);
  }

  // True when the connection carries on with the next request.
  net::awaitable<bool> finish_response(beast::error_code ec, bool keep_alive) {
    if (!ec && keep_alive) co_return true;
    if (!ec) co_await close();
    co_return false;
  }

  // FIN first, then wait (bounded) for the peer's FIN: closing with unread request bytes in the
  // socket would send a reset that can destroy the response before the client reads it.
  net::awaitable<void> close() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    co_await drain();
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Options options_;
};

}  // namespace

net::awaitable<void> serve_connection(beast::tcp_stream stream, Options options) {
  HttpSession session(std::move(stream), std::move(options));
  co_await session.run();
}

}  // namespace wsgate::echo
