#pragma once
// The echo backend for integration tests and the demo: WebSocket echo, scripted HTTP answers
// (/status/N, /hang, /garbage, /bad-accept), plain HTTP endpoints and the static demo page.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <charconv>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace wsgate::echo {

namespace net = boost::asio;
namespace beast = boost::beast;

// One WebSocket message, one HTTP request body, one "bytes:<n>" answer: all capped here so a
// misbehaving client costs a bounded amount of memory.
inline constexpr std::size_t kMaxMessageBytes = 64 * 1024 * 1024;

struct Options {
  std::filesystem::path demo_dir;  // empty: no static files are served
};

// Serves one accepted connection: HTTP/1.1 requests (keep-alive) until the peer goes, or a
// WebSocket upgrade after which the connection belongs to the echo loop.
net::awaitable<void> serve_connection(beast::tcp_stream stream, Options options);

// The echo loop, entered after the 101 was written. `buffer` holds whatever the client sent
// after its request headers (frames that arrived in the same packet as the handshake);
// `headers_json` is the upgrade request as received, returned for the text message "headers".
net::awaitable<void> run_websocket(beast::tcp_stream stream, beast::flat_buffer buffer,
                                   std::string headers_json);

// The deterministic byte pattern of "bytes:<n>" and /stream/<n>: byte i is i % 251.
void fill_pattern(char* out, std::size_t count, std::size_t first_index);

// A decimal number that must make up all of `text` (paths like /status/403, "bytes:100").
template <typename T>
bool parse_decimal(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace wsgate::echo
