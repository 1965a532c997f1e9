// The echo backend's WebSocket side. Framing is done here by hand rather than with Beast's
// websocket::stream because a test backend needs behaviour Beast does not offer: the reply to a
// client's close frame carries the SAME code and reason (Beast replies with the code only, and
// with 1000 to an empty close), and frames the client sent in the handshake's packet are kept.
// It is deliberately lenient where a proxy test wants to see bytes pass unchanged: text is not
// UTF-8 checked and any close code is echoed. Fragmented messages are reassembled and echoed as
// one message with the opcode of their first frame.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "echo_backend.hpp"

namespace wsgate::echo {
namespace {

constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);

constexpr std::uint8_t kOpContinuation = 0x0;
constexpr std::uint8_t kOpText = 0x1;
constexpr std::uint8_t kOpBinary = 0x2;
constexpr std::uint8_t kOpClose = 0x8;
constexpr std::uint8_t kOpPing = 0x9;
constexpr std::uint8_t kOpPong = 0xA;

constexpr std::uint16_t kCloseProtocolError = 1002;
constexpr std::uint16_t kCloseTooBig = 1009;

constexpr std::size_t kMaxControlPayload = 125;
constexpr std::size_t kMaxCloseReason = kMaxControlPayload - 2;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxFrameHeader = 14;
// How long the closing handshake may take before the TCP connection is dropped anyway.
constexpr std::chrono::seconds kCloseWait{5};

struct Frame {
  bool fin = false;
  std::uint8_t opcode = 0;
  std::string payload;
};

enum class ReadResult { kFrame, kGone, kProtocolError, kTooBig };

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload.append(reason.substr(0, kMaxCloseReason));
  return payload;
}

class WebSocketSession {
 public:
  WebSocketSession(beast::tcp_stream stream, beast::flat_buffer buffer, std::string headers_json)
      : stream_(std::move(stream)),
        buffer_(kMaxMessageBytes + kMaxFrameHeader + kReadChunk),
        headers_json_(std::move(headers_json)) {
    // The HTTP stage's buffer has a different limit; copy what it already read.
    const auto pending = buffer.data();
    buffer_.commit(net::buffer_copy(buffer_.prepare(pending.size()), pending));
  }

  net::awaitable<void> run() {
    for (;;) {
      Frame frame;
      const ReadResult result = co_await read_frame(frame);
      bool go_on = false;
      if (result == ReadResult::kFrame) {
        go_on = co_await on_frame(frame);
      } else if (result == ReadResult::kProtocolError) {
        co_await fail(kCloseProtocolError, "protocol error");
      } else if (result == ReadResult::kTooBig) {
        co_await fail(kCloseTooBig, "message too big");
      }
      if (!go_on) co_return;
    }
  }

 private:
  // Handles one frame; false when the session is over. (if/else, not switch: GCC 12 has
  // miscompiled co_await inside switch statements for us.)
  net::awaitable<bool> on_frame(Frame& frame) {
    if (frame.opcode == kOpPing) co_return co_await write_frame(kOpPong, frame.payload);
    if (frame.opcode == kOpPong) co_return true;
    if (frame.opcode == kOpClose) {
      co_await answer_close(frame.payload);
      co_return false;
    }
    if (frame.opcode != kOpContinuation) {  // text or binary: a new message
      if (in_message_) {
        co_await fail(kCloseProtocolError, "new message inside a fragmented one");
        co_return false;
      }
      message_opcode_ = frame.opcode;
      message_ = std::move(frame.payload);
    } else if (!in_message_) {
      co_await fail(kCloseProtocolError, "continuation without a message");
      co_return false;
    } else if (message_.size() + frame.payload.size() > kMaxMessageBytes) {
      co_await fail(kCloseTooBig, "message too big");
      co_return false;
    } else {
      message_ += frame.payload;
    }
    in_message_ = !frame.fin;
    if (in_message_) co_return true;
    std::string message = std::move(message_);
    message_.clear();
    co_return co_await on_message(message_opcode_, std::move(message));
  }

  // Reads until the buffer holds at least `count` bytes; false when the peer is gone.
  net::awaitable<bool> fill(std::size_t count) {
    while (buffer_.size() < count) {
      const std::size_t room = buffer_.max_size() - buffer_.size();
      const std::size_t want = std::min(std::max(count - buffer_.size(), kReadChunk), room);
      if (want == 0) co_return false;
      auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(want), kNoThrow);
      if (ec) co_return false;
      buffer_.commit(n);
    }
    co_return true;
  }

  net::awaitable<ReadResult> read_frame(Frame& frame) {
    if (!co_await fill(2)) co_return ReadResult::kGone;
    auto bytes = static_cast<const std::uint8_t*>(buffer_.data().data());
    const std::uint8_t length7 = bytes[1] & 0x7f;
    const bool masked = (bytes[1] & 0x80) != 0;
    const std::size_t length_bytes = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
    const std::size_t header_size = 2 + length_bytes + (masked ? 4 : 0);
    if (!co_await fill(header_size)) co_return ReadResult::kGone;
    bytes = static_cast<const std::uint8_t*>(buffer_.data().data());  // fill may reallocate

    frame.fin = (bytes[0] & 0x80) != 0;
    frame.opcode = bytes[0] & 0x0f;
    const bool reserved_bits = (bytes[0] & 0x70) != 0;
    std::uint64_t length = length7;
    if (length_bytes != 0) {
      length = 0;
      for (std::size_t i = 0; i < length_bytes; ++i) length = (length << 8) | bytes[2 + i];
    }
    const bool control = (frame.opcode & 0x8) != 0;
    const bool known_opcode =
        frame.opcode <= kOpBinary || (frame.opcode >= kOpClose && frame.opcode <= kOpPong);
    // RFC 6455 5.1: a server must fail the connection on an unmasked client frame.
    if (!masked || reserved_bits || !known_opcode ||
        (control && (!frame.fin || length > kMaxControlPayload)) || (length >> 63) != 0) {
      co_return ReadResult::kProtocolError;
    }
    if (length > kMaxMessageBytes) co_return ReadResult::kTooBig;

    std::array<std::uint8_t, 4> mask{};
    std::copy_n(bytes + 2 + length_bytes, 4, mask.begin());
    buffer_.consume(header_size);
    const auto size = static_cast<std::size_t>(length);
    if (!co_await fill(size)) co_return ReadResult::kGone;
    frame.payload.assign(static_cast<const char*>(buffer_.data().data()), size);
    buffer_.consume(size);
    for (std::size_t i = 0; i < size; ++i) frame.payload[i] ^= static_cast<char>(mask[i % 4]);
    co_return ReadResult::kFrame;
  }

  net::awaitable<bool> write_frame(std::uint8_t opcode, std::string_view payload) {
    std::array<std::uint8_t, kMaxFrameHeader> header{};
    std::size_t header_size = 2;
    header[0] = static_cast<std::uint8_t>(0x80 | opcode);
    const std::uint64_t length = payload.size();
    if (length < 126) {
      header[1] = static_cast<std::uint8_t>(length);
    } else if (length <= 0xffff) {
      header[1] = 126;
      header[2] = static_cast<std::uint8_t>(length >> 8);
      header[3] = static_cast<std::uint8_t>(length);
      header_size = 4;
    } else {
      header[1] = 127;
      for (int i = 0; i < 8; ++i) header[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
      header_size = 10;
    }
    const std::array<net::const_buffer, 2> buffers{net::buffer(header.data(), header_size),
                                                   net::buffer(payload.data(), payload.size())};
    auto [ec, n] = co_await net::async_write(stream_, buffers, kNoThrow);
    co_return !ec;
  }

  // Handles one complete message; false when the session is over.
  net::awaitable<bool> on_message(std::uint8_t opcode, std::string message) {
    if (opcode == kOpText) {
      const std::string_view text = message;
      if (text == "headers") co_return co_await write_frame(kOpText, headers_json_);
      if (text.starts_with("bytes:")) {
        std::size_t count = 0;
        if (parse_decimal(text.substr(6), count) && count <= kMaxMessageBytes) {
          std::string payload(count, '\0');
          fill_pattern(payload.data(), count, 0);
          co_return co_await write_frame(kOpBinary, payload);
        }
      }
      if (text.starts_with("close:")) {
        const std::string_view rest = text.substr(6);
        const std::size_t colon = rest.find(':');
        std::uint16_t code = 0;
        if (parse_decimal(rest.substr(0, colon), code)) {
          const std::string_view reason =
              colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
          co_await close_from_backend(close_payload(code, reason));
          co_return false;
        }
      }
    }
    co_return co_await write_frame(opcode, message);
  }

  // The client started the closing handshake: reply with its own code and reason.
  net::awaitable<void> answer_close(const std::string& payload) {
    if (payload.size() == 1) {  // a close body is empty or at least a 2-byte code
      co_await fail(kCloseProtocolError, "malformed close frame");
      co_return;
    }
    stream_.expires_after(kCloseWait);
    const bool sent = co_await write_frame(kOpClose, payload);
    if (sent) co_await finish();
  }

  // The backend starts the closing handshake and waits (bounded) for the client's close.
  net::awaitable<void> close_from_backend(const std::string& payload) {
    stream_.expires_after(kCloseWait);
    if (!co_await write_frame(kOpClose, payload)) co_return;
    for (;;) {
      Frame frame;
      if (co_await read_frame(frame) != ReadResult::kFrame) co_return;
      if (frame.opcode == kOpClose) break;  // data frames after our close are discarded
    }
    co_await finish();
  }

  net::awaitable<void> fail(std::uint16_t code, std::string_view reason) {
    stream_.expires_after(kCloseWait);
    const bool sent = co_await write_frame(kOpClose, close_payload(code, reason));
    if (sent) co_await finish();
  }

  // The server closes TCP first (RFC 6455 7.1.1): send FIN, then wait for the client's FIN so
  // unread bytes cannot turn our close into a reset that would lose the close frame.
  net::awaitable<void> finish() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kCloseWait);
    std::array<char, 4096> sink{};
    for (;;) {
      auto [ec, n] = co_await stream_.async_read_some(net::buffer(sink), kNoThrow);
      if (ec) break;
    }
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string headers_json_;
  std::string message_;  // a fragmented message being reassembled
  std::uint8_t message_opcode_ = 0;
  bool in_message_ = false;
};

}  // namespace

void fill_pattern(char* out, std::size_t count, std::size_t first_index) {
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<char>((first_index + i) % 251);
}

net::awaitable<void> run_websocket(beast::tcp_stream stream, beast::flat_buffer buffer,
                                   std::string headers_json) {
  stream.expires_never();
  WebSocketSession session(std::move(stream), std::move(buffer), std::move(headers_json));
  co_await session.run();
}

}  // namespace wsgate::echo
