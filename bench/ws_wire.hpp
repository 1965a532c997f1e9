#pragma once
// WebSocket wire pieces for the bench, written for speed rather than completeness: the upgrade
// request and answer, frame headers, masking, and an incremental frame scanner that both the
// load client and the echo backend feed straight from their read buffers.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace wsgate::bench {

constexpr std::uint8_t kOpContinuation = 0x0;
constexpr std::uint8_t kOpBinary = 0x2;
constexpr std::uint8_t kOpClose = 0x8;
constexpr std::uint8_t kOpPing = 0x9;
constexpr std::uint8_t kOpPong = 0xA;

// Read buffers hold at least this much, so a small frame always fits whole (see FrameScanner).
constexpr std::size_t kReadBufferSize = 64 * 1024;
constexpr std::size_t kWholeFrameMax = 16 * 1024;
constexpr std::size_t kMaxHeadBytes = 8 * 1024;  // upgrade request / answer headers

// Writes a frame header into out (room for 14 bytes); a non-null mask makes a client frame.
std::size_t write_frame_header(std::uint8_t* out, bool fin, std::uint8_t opcode, std::uint64_t len,
                               const std::uint8_t* mask);

// XORs data with the 4-byte key, starting `offset` bytes into the key's cycle.
void apply_mask(std::uint8_t* data, std::size_t n, const std::uint8_t* key, std::size_t offset);

// Appends a whole masked (client) frame carrying payload.
void append_client_frame(std::string& out, std::uint8_t opcode, const void* payload, std::size_t n,
                         std::uint32_t key);

// The value the server must answer in Sec-WebSocket-Accept (RFC 6455 §4.2.2).
std::string websocket_accept(std::string_view key);

// A fresh random Sec-WebSocket-Key (base64 of 16 bytes).
std::string random_websocket_key();

std::string upgrade_request(std::string_view host, std::string_view path, std::string_view key);
std::string upgrade_answer(std::string_view accept);

// Value of a header in raw header text, matched case-insensitively; empty when absent.
std::string_view find_header(std::string_view head, std::string_view name);

// End of the header block ("\r\n\r\n" included) in data, or 0 when not complete yet.
std::size_t head_end(const std::uint8_t* data, std::size_t n);

// Splits a byte stream into frames. Small frames (payload <= kWholeFrameMax) are delivered only
// once complete, so on_data sees their whole payload in one call; larger frames stream through
// in pieces. Payloads are unmasked in place. Handler:
//   void on_start(std::uint8_t opcode, bool fin, std::uint64_t length);
//   void on_data(const std::uint8_t* data, std::size_t n);
//   void on_end();
class FrameScanner {
 public:
  // Returns how many bytes were used; the rest (an incomplete header or small frame) must be
  // fed again with more bytes behind it. nullopt on a frame no peer may send.
  template <typename Handler>
  std::optional<std::size_t> feed(std::uint8_t* data, std::size_t n, Handler& handler);

 private:
  struct Header {
    bool fin = false;
    std::uint8_t opcode = 0;
    bool masked = false;
    std::uint8_t key[4] = {0, 0, 0, 0};
    std::uint64_t length = 0;
  };
  // Bytes of header parsed, 0 when incomplete, -1 when invalid.
  static int parse_header(const std::uint8_t* p, std::size_t n, Header& h);

  std::uint64_t remaining_ = 0;
  bool masked_ = false;
  std::uint8_t key_[4] = {0, 0, 0, 0};
  std::size_t mask_offset_ = 0;
};

template <typename Handler>
std::optional<std::size_t> FrameScanner::feed(std::uint8_t* data, std::size_t n, Handler& handler) {
  std::size_t pos = 0;
  while (pos < n) {
    if (remaining_ > 0) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, n - pos));
      if (masked_) apply_mask(data + pos, take, key_, mask_offset_);
      mask_offset_ = (mask_offset_ + take) & 3;
      handler.on_data(data + pos, take);
      pos += take;
      remaining_ -= take;
      if (remaining_ == 0) handler.on_end();
      continue;
    }
    Header h;
    const int used = parse_header(data + pos, n - pos, h);
    if (used < 0) return std::nullopt;
    if (used == 0) break;
    if (h.length <= kWholeFrameMax && n - pos - static_cast<std::size_t>(used) < h.length) break;
    pos += static_cast<std::size_t>(used);
    masked_ = h.masked;
    std::memcpy(key_, h.key, sizeof key_);
    mask_offset_ = 0;
    remaining_ = h.length;
    handler.on_start(h.opcode, h.fin, h.length);
    if (remaining_ == 0) handler.on_end();
  }
  return pos;
}

}  // namespace wsgate::bench
