#include "proxy/websocket/frame_tracker.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

namespace wsgate::proxy {
namespace {

constexpr std::size_t kMaxControlPayload = 125;
constexpr std::size_t kMaxCloseReason = kMaxControlPayload - 2;
constexpr std::uint16_t kCloseNoStatus = 1005;
constexpr std::uint8_t kFinBit = 0x80;
constexpr std::uint8_t kMaskBit = 0x80;

bool is_control(Opcode opcode) {
  return (static_cast<std::uint8_t>(opcode) & 0x8) != 0;
}

bool is_defined_opcode(std::uint8_t opcode) {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

// Extended payload length bytes announced by the 7-bit length field.
std::size_t extended_length_bytes(std::uint8_t len7) {
  if (len7 == 126) return 2;
  if (len7 == 127) return 8;
  return 0;
}

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b
             ? std::numeric_limits<std::uint64_t>::max()
             : a + b;
}

// Mask keys come from a per-thread splitmix64 seeded once: random_device is a syscall per
// call, and the proxy only masks its own control frames (close, ping), whose payloads a page
// script cannot choose, so the key need not be cryptographic.
std::uint32_t next_mask_key() {
  thread_local std::uint64_t state = [] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }();
  state += 0x9E3779B97F4A7C15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return static_cast<std::uint32_t>((z ^ (z >> 31)) >> 32);
}

// Cuts text to at most max bytes without splitting a UTF-8 sequence: backs up while the first
// byte left out is a continuation byte (10xxxxxx).
std::string_view truncate_utf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<std::uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

// One unfragmented control frame; payload is at most 125 bytes (callers truncate).
std::vector<std::uint8_t> encode_control_frame(Opcode opcode, std::string_view payload,
                                               bool masked) {
  std::vector<std::uint8_t> frame;
  frame.reserve(2 + (masked ? 4 : 0) + payload.size());
  frame.push_back(kFinBit | static_cast<std::uint8_t>(opcode));
  frame.push_back(static_cast<std::uint8_t>((masked ? kMaskBit : 0) | payload.size()));
  std::uint8_t key[4] = {};
  if (masked) {
    const std::uint32_t random = next_mask_key();
    std::memcpy(key, &random, sizeof key);
    frame.insert(frame.end(), key, key + 4);
  }
  for (std::size_t i = 0; i < payload.size(); ++i) {
    frame.push_back(static_cast<std::uint8_t>(payload[i]) ^ key[i % 4]);
  }
  return frame;
}

}  // namespace

std::size_t FrameTracker::advance(std::span<const std::uint8_t> data, bool stop_at_boundary) {
  if (status_ != Status::kOk) return 0;
  if (stop_at_boundary && at_boundary()) return 0;
  std::size_t pos = 0;
  while (pos < data.size()) {
    if (state_ == State::kHeader) {
      pos += read_header(data.subspan(pos));
      if (header_len_ < header_need_) break;
      on_header_complete();
      if (status_ != Status::kOk) return pos;
      if (payload_len_ != 0) {
        state_ = State::kPayload;
        continue;
      }
    } else {
      const std::size_t take = static_cast<std::size_t>(
          std::min<std::uint64_t>(data.size() - pos, payload_len_ - payload_done_));
      if (opcode_ == Opcode::kClose) keep_close_payload(data.subspan(pos, take));
      payload_done_ += take;
      pos += take;
      if (payload_done_ < payload_len_) break;
    }
    on_frame_complete();
    if (status_ != Status::kOk || stop_at_boundary) return pos;
  }
  return pos;
}

std::size_t FrameTracker::read_header(std::span<const std::uint8_t> data) {
  std::size_t pos = 0;
  while (header_len_ < header_need_ && pos < data.size()) {
    header_[header_len_++] = data[pos++];
    // The second byte tells how long the rest of the header is.
    if (header_len_ == 2) {
      header_need_ =
          2 + extended_length_bytes(header_[1] & 0x7F) + ((header_[1] & kMaskBit) != 0 ? 4 : 0);
    }
  }
  return pos;
}

void FrameTracker::on_header_complete() {
  fin_ = (header_[0] & kFinBit) != 0;
  masked_ = (header_[1] & kMaskBit) != 0;
  const std::uint8_t raw_opcode = header_[0] & 0x0F;
  const std::uint8_t len7 = header_[1] & 0x7F;
  std::size_t at = 2;
  if (len7 < 126) {
    payload_len_ = len7;
  } else {
    payload_len_ = 0;
    const std::size_t n = extended_length_bytes(len7);
    for (std::size_t i = 0; i < n; ++i) payload_len_ = (payload_len_ << 8) | header_[at + i];
    at += n;
  }
  if (masked_) std::memcpy(mask_, header_ + at, sizeof mask_);
  payload_done_ = 0;

  if (!is_defined_opcode(raw_opcode) || (payload_len_ >> 63) != 0) {
    status_ = Status::kProtocolError;
    return;
  }
  opcode_ = static_cast<Opcode>(raw_opcode);
  if (is_control(opcode_)) {
    if (!fin_ || payload_len_ > kMaxControlPayload) status_ = Status::kProtocolError;
    if (opcode_ == Opcode::kClose) close_payload_.clear();
    return;
  }
  if (opcode_ == Opcode::kContinuation) {
    if (!in_fragmented_message_) {
      status_ = Status::kProtocolError;
      return;
    }
  } else {
    if (in_fragmented_message_) {
      status_ = Status::kProtocolError;
      return;
    }
    message_bytes_ = 0;
  }
  message_bytes_ = saturating_add(message_bytes_, payload_len_);
  largest_message_bytes_ = std::max(largest_message_bytes_, message_bytes_);
}

void FrameTracker::keep_close_payload(std::span<const std::uint8_t> data) {
  // Only the first close frame of a direction is the one that counts.
  if (close_seen_) return;
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::uint8_t byte = data[i];
    if (masked_) byte ^= mask_[(payload_done_ + i) % 4];
    close_payload_.push_back(static_cast<char>(byte));
  }
}

void FrameTracker::on_frame_complete() {
  ++frames_;
  switch (opcode_) {
    case Opcode::kClose:
      on_close_complete();
      break;
    case Opcode::kPing:
      ++pings_;
      break;
    case Opcode::kPong:
      ++pongs_;
      break;
    case Opcode::kContinuation:
    case Opcode::kText:
    case Opcode::kBinary:
      in_fragmented_message_ = !fin_;
      if (fin_) ++messages_;
      break;
  }
  state_ = State::kHeader;
  header_len_ = 0;
  header_need_ = 2;
}

void FrameTracker::on_close_complete() {
  if (close_seen_) return;
  if (close_payload_.size() == 1) {
    // A close body must start with a 2-byte code (RFC 6455 §5.5.1).
    status_ = Status::kProtocolError;
    return;
  }
  close_seen_ = true;
  if (close_payload_.empty()) {
    close_code_ = kCloseNoStatus;
    close_reason_.clear();
    return;
  }
  close_code_ = static_cast<std::uint16_t>((static_cast<std::uint8_t>(close_payload_[0]) << 8) |
                                           static_cast<std::uint8_t>(close_payload_[1]));
  close_reason_.assign(close_payload_, 2);
}

std::vector<std::uint8_t> make_close_frame(std::uint16_t code, std::string_view reason,
                                           bool masked) {
  const std::string_view kept = truncate_utf8(reason, kMaxCloseReason);
  std::string payload;
  payload.reserve(2 + kept.size());
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(kept);
  return encode_control_frame(Opcode::kClose, payload, masked);
}

std::vector<std::uint8_t> make_ping_frame(std::string_view payload, bool masked) {
  return encode_control_frame(Opcode::kPing, payload.substr(0, kMaxControlPayload), masked);
}

}  // namespace wsgate::proxy
