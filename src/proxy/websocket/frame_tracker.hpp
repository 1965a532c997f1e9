#pragma once
// Follows the WebSocket frame structure (RFC 6455 §5.2) of one direction of a tunnel by
// reading frame headers only: payload bytes are skipped, never copied. This lets the proxy
// inject its own frames (close 1001, ping) at a frame boundary, see close codes, and measure
// message sizes, without terminating the WebSocket.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wsgate::proxy {

enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

class FrameTracker {
 public:
  enum class Status {
    kOk,
    // reserved opcode, fragmented/oversized control frame, 64-bit length MSB set, continuation
    // without a message, new data frame inside a fragmented message, 1-byte close payload.
    // RSV bits and mask direction are not checked: extensions (permessage-deflate) are
    // negotiated end to end, and the endpoints enforce masking themselves.
    kProtocolError,
  };

  // Consumes bytes of the stream. When stop_at_boundary is true, consumption stops at the
  // first frame boundary reached (returns 0 when already at one), so the caller can forward
  // exactly up to it and insert a frame of its own. Returns the number of bytes consumed.
  // After kProtocolError the tracker stops consuming (returns 0); the call that detects it
  // returns the bytes read up to the end of the offending frame header.
  std::size_t advance(std::span<const std::uint8_t> data, bool stop_at_boundary = false);

  Status status() const { return status_; }
  // True between frames: the next byte starts a new frame header.
  bool at_boundary() const { return state_ == State::kHeader && header_len_ == 0; }

  // Close frame seen in this direction: its status code (1005 when the payload was empty)
  // and reason, available once the close frame's payload has been fully consumed.
  bool close_seen() const { return close_seen_; }
  std::uint16_t close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }

  // Payload bytes of the current (possibly fragmented) data message so far, and the size of
  // the largest data message completed or in progress; for maxMessageBytes. A frame's length
  // counts as soon as its header is read, so an oversized message is seen before its payload.
  // (Saturates at 2^64-1.) The current message ends only when the next one starts.
  std::uint64_t current_message_bytes() const { return message_bytes_; }
  std::uint64_t largest_message_bytes() const { return largest_message_bytes_; }
  std::uint64_t frames() const { return frames_; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t pongs() const { return pongs_; }
  std::uint64_t pings() const { return pings_; }

 private:
  enum class State { kHeader, kPayload };
  std::size_t read_header(std::span<const std::uint8_t> data);
  void on_header_complete();
  void keep_close_payload(std::span<const std::uint8_t> data);
  void on_frame_complete();
  void on_close_complete();

  State state_ = State::kHeader;
  Status status_ = Status::kOk;
  std::uint8_t header_[14] = {};
  std::size_t header_len_ = 0;   // header bytes collected so far
  std::size_t header_need_ = 2;  // header bytes needed (grows once length/mask bits known)
  Opcode opcode_ = Opcode::kContinuation;
  bool fin_ = false;
  bool masked_ = false;
  std::uint8_t mask_[4] = {};
  std::uint64_t payload_len_ = 0;
  std::uint64_t payload_done_ = 0;
  bool in_fragmented_message_ = false;

  // Close payload (at most 125 bytes) is the one payload we keep, to read code and reason.
  std::string close_payload_;
  bool close_seen_ = false;
  std::uint16_t close_code_ = 0;
  std::string close_reason_;

  std::uint64_t message_bytes_ = 0;
  std::uint64_t largest_message_bytes_ = 0;
  std::uint64_t frames_ = 0;
  std::uint64_t messages_ = 0;
  std::uint64_t pongs_ = 0;
  std::uint64_t pings_ = 0;
};

// Serialises a control frame (close/ping/pong) as the proxy sends it. Frames towards a server
// must be masked (masked = true, with a random key); frames towards a client must not be.
// For close, payload is the 2-byte code followed by reason (truncated to 123 bytes at a UTF-8
// character boundary). A ping payload longer than 125 bytes is truncated to 125.
std::vector<std::uint8_t> make_close_frame(std::uint16_t code, std::string_view reason,
                                           bool masked);
std::vector<std::uint8_t> make_ping_frame(std::string_view payload, bool masked);

}  // namespace wsgate::proxy
