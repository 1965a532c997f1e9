#include "ws_wire.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <boost/beast/core/string.hpp>

namespace wsgate::bench {
namespace {

std::string base64(const unsigned char* data, std::size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

}  // namespace

std::size_t write_frame_header(std::uint8_t* out, bool fin, std::uint8_t opcode, std::uint64_t len,
                               const std::uint8_t* mask) {
  std::size_t i = 0;
  out[i++] = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | opcode);
  const std::uint8_t mask_bit = mask != nullptr ? 0x80 : 0x00;
  if (len < 126) {
    out[i++] = static_cast<std::uint8_t>(mask_bit | len);
  } else if (len <= 0xffff) {
    out[i++] = mask_bit | 126;
    out[i++] = static_cast<std::uint8_t>(len >> 8);
    out[i++] = static_cast<std::uint8_t>(len);
  } else {
    out[i++] = mask_bit | 127;
    for (int shift = 56; shift >= 0; shift -= 8) out[i++] = static_cast<std::uint8_t>(len >> shift);
  }
  if (mask != nullptr) {
    std::memcpy(out + i, mask, 4);
    i += 4;
  }
  return i;
}

void apply_mask(std::uint8_t* data, std::size_t n, const std::uint8_t* key, std::size_t offset) {
  std::size_t i = 0;
  // Byte-wise up to the key's cycle start, then eight bytes at a time.
  for (; i < n && ((offset + i) & 3) != 0; ++i) data[i] ^= key[(offset + i) & 3];
  std::uint8_t word_key[8];
  for (int k = 0; k < 8; ++k) word_key[k] = key[k & 3];
  std::uint64_t wide;
  std::memcpy(&wide, word_key, 8);
  for (; i + 8 <= n; i += 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, data + i, 8);
    chunk ^= wide;
    std::memcpy(data + i, &chunk, 8);
  }
  for (; i < n; ++i) data[i] ^= key[(offset + i) & 3];
}

void append_client_frame(std::string& out, std::uint8_t opcode, const void* payload, std::size_t n,
                         std::uint32_t key) {
  std::uint8_t mask[4];
  std::memcpy(mask, &key, 4);
  std::uint8_t header[14];
  const std::size_t header_len = write_frame_header(header, true, opcode, n, mask);
  const std::size_t start = out.size();
  out.append(reinterpret_cast<const char*>(header), header_len);
  out.append(static_cast<const char*>(payload), n);
  apply_mask(reinterpret_cast<std::uint8_t*>(out.data() + start + header_len), n, mask, 0);
}

std::string websocket_accept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(key);
  input += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(digest, sizeof digest);
}

std::string random_websocket_key() {
  unsigned char raw[16];
  RAND_bytes(raw, sizeof raw);
  return base64(raw, sizeof raw);
}

std::string upgrade_request(std::string_view host, std::string_view path, std::string_view key) {
  std::string out = "GET ";
  out += path;
  out += " HTTP/1.1\r\nHost: ";
  out += host;
  out += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  out += key;
  out += "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  return out;
}

std::string upgrade_answer(std::string_view accept) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  out += accept;
  out += "\r\n\r\n";
  return out;
}

std::string_view find_header(std::string_view head, std::string_view name) {
  std::size_t line = head.find("\r\n");
  while (line != std::string_view::npos && line + 2 < head.size()) {
    const std::size_t start = line + 2;
    const std::size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos || end == start) break;
    const std::string_view text = head.substr(start, end - start);
    const std::size_t colon = text.find(':');
    if (colon != std::string_view::npos && boost::beast::iequals(text.substr(0, colon), name)) {
      std::string_view value = text.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
      return value;
    }
    line = end;
  }
  return {};
}

std::size_t head_end(const std::uint8_t* data, std::size_t n) {
  const std::string_view text(reinterpret_cast<const char*>(data), n);
  const std::size_t at = text.find("\r\n\r\n");
  return at == std::string_view::npos ? 0 : at + 4;
}

int FrameScanner::parse_header(const std::uint8_t* p, std::size_t n, Header& h) {
  if (n < 2) return 0;
  h.fin = (p[0] & 0x80) != 0;
  h.opcode = p[0] & 0x0f;
  h.masked = (p[1] & 0x80) != 0;
  std::size_t need = 2;
  const std::uint8_t short_len = p[1] & 0x7f;
  if (short_len == 126) need += 2;
  if (short_len == 127) need += 8;
  if (h.masked) need += 4;
  if (n < need) return 0;
  std::size_t i = 2;
  if (short_len < 126) {
    h.length = short_len;
  } else if (short_len == 126) {
    h.length = (std::uint64_t{p[2]} << 8) | p[3];
    i = 4;
  } else {
    h.length = 0;
    for (int k = 0; k < 8; ++k) h.length = (h.length << 8) | p[2 + k];
    i = 10;
    if ((h.length >> 63) != 0) return -1;
  }
  if ((h.opcode & 0x08) != 0 && (h.length > 125 || !h.fin)) return -1;  // control frame rules
  if (h.masked) std::memcpy(h.key, p + i, 4);
  return static_cast<int>(need);
}

}  // namespace wsgate::bench
