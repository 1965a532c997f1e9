#include "proxy/websocket/frame_tracker.hpp"

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <random>
#include <set>

namespace wsgate::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;
using MaskKey = std::array<std::uint8_t, 4>;

constexpr MaskKey kKey = {0x37, 0xfa, 0x21, 0x3d};

// Builds one frame by hand from RFC 6455 §5.2, independent of the code under test.
Bytes frame(std::uint8_t opcode, const Bytes& payload, bool fin = true,
            std::optional<MaskKey> mask = std::nullopt) {
  Bytes out;
  out.push_back(static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | opcode));
  const std::uint8_t mask_bit = mask ? 0x80 : 0x00;
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<std::uint8_t>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    out.push_back(mask_bit | 126);
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<std::uint8_t>(n >> shift));
  }
  if (mask) out.insert(out.end(), mask->begin(), mask->end());
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(payload[i] ^ (mask ? (*mask)[i % 4] : 0));
  }
  return out;
}

Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes pattern(std::size_t n) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i * 31 + 7);
  return out;
}

Bytes close_payload(std::uint16_t code, std::string_view reason) {
  // Sized up front: growing a 2-element vector by insert() trips GCC 12's -Warray-bounds at -O2.
  Bytes out(2 + reason.size());
  out[0] = static_cast<std::uint8_t>(code >> 8);
  out[1] = static_cast<std::uint8_t>(code);
  std::copy(reason.begin(), reason.end(), out.begin() + 2);
  return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

enum class Feed { kWhole, kByteByByte, kRandomChunks };

// Feeds all of bytes in the given way; every call must consume everything it is given.
void feed(FrameTracker& tracker, const Bytes& bytes, Feed how, std::uint32_t seed = 1) {
  std::span<const std::uint8_t> rest(bytes);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> chunk(1, 300);
  while (!rest.empty()) {
    std::size_t n = rest.size();
    if (how == Feed::kByteByByte) n = 1;
    if (how == Feed::kRandomChunks) n = std::min(rest.size(), chunk(rng));
    ASSERT_EQ(tracker.advance(rest.first(n)), n);
    ASSERT_EQ(tracker.status(), FrameTracker::Status::kOk);
    rest = rest.subspan(n);
  }
}

class LengthForms : public testing::TestWithParam<std::tuple<std::size_t, bool, Feed>> {};

TEST_P(LengthForms, ConsumesOneFrameAndEndsAtItsBoundary) {
  const auto [length, masked, how] = GetParam();
  const Bytes bytes =
      frame(0x2, pattern(length), true, masked ? std::optional(kKey) : std::nullopt);
  const std::size_t header = 2 + (length < 126 ? 0 : length <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
  ASSERT_EQ(bytes.size(), header + length);

  FrameTracker tracker;
  EXPECT_TRUE(tracker.at_boundary());
  if (how == Feed::kByteByByte) {
    // The boundary is reached only with the last byte.
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      ASSERT_EQ(tracker.advance(std::span(bytes).subspan(i, 1)), 1u);
      ASSERT_EQ(tracker.at_boundary(), i + 1 == bytes.size()) << "at byte " << i;
    }
  } else {
    feed(tracker, bytes, how, static_cast<std::uint32_t>(length));
  }
  EXPECT_EQ(tracker.status(), FrameTracker::Status::kOk);
  EXPECT_TRUE(tracker.at_boundary());
  EXPECT_EQ(tracker.frames(), 1u);
  EXPECT_EQ(tracker.messages(), 1u);
  EXPECT_EQ(tracker.current_message_bytes(), length);
  EXPECT_EQ(tracker.largest_message_bytes(), length);
  EXPECT_FALSE(tracker.close_seen());
}

INSTANTIATE_TEST_SUITE_P(
    AllForms, LengthForms,
    testing::Combine(testing::Values(0, 1, 125, 126, 65535, 65536, 1 << 20), testing::Bool(),
                     testing::Values(Feed::kWhole, Feed::kByteByByte, Feed::kRandomChunks)));

TEST(FrameTracker, ManyFramesInRandomChunksAreAllCounted) {
  Bytes stream;
  std::uint64_t expected_largest = 0;
  const std::size_t lengths[] = {0, 3, 125, 126, 127, 1000, 65535, 65536, 70000};
  for (int round = 0; round < 3; ++round) {
    for (std::size_t length : lengths) {
      const bool masked = (length + round) % 2 == 0;
      const Bytes f =
          frame(0x1, pattern(length), true, masked ? std::optional(kKey) : std::nullopt);
      stream.insert(stream.end(), f.begin(), f.end());
      expected_largest = std::max<std::uint64_t>(expected_largest, length);
    }
  }
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    FrameTracker tracker;
    feed(tracker, stream, Feed::kRandomChunks, seed);
    EXPECT_TRUE(tracker.at_boundary());
    EXPECT_EQ(tracker.frames(), 27u);
    EXPECT_EQ(tracker.messages(), 27u);
    EXPECT_EQ(tracker.current_message_bytes(), 70000u);
    EXPECT_EQ(tracker.largest_message_bytes(), expected_largest);
  }
}

TEST(FrameTracker, FragmentedMessageWithInterleavedControlFrames) {
  const Bytes stream = concat({
      frame(0x1, text("abc"), false),      // text, not final
      frame(0x9, text("p1"), true, kKey),  // ping in between
      frame(0x0, pattern(4), false),       // continuation
      frame(0xA, text("p2")),              // pong in between
      frame(0x0, pattern(5), true, kKey),  // final continuation
      frame(0x2, pattern(7), true),        // the next message
  });
  for (Feed how : {Feed::kWhole, Feed::kByteByByte, Feed::kRandomChunks}) {
    FrameTracker tracker;
    const std::size_t first_message = stream.size() - frame(0x2, pattern(7)).size();
    feed(tracker, Bytes(stream.begin(), stream.begin() + first_message), how);
    EXPECT_EQ(tracker.messages(), 1u);
    EXPECT_EQ(tracker.current_message_bytes(), 12u);  // control frames do not count
    EXPECT_EQ(tracker.pings(), 1u);
    EXPECT_EQ(tracker.pongs(), 1u);
    EXPECT_EQ(tracker.frames(), 5u);

    feed(tracker, Bytes(stream.begin() + first_message, stream.end()), how);
    EXPECT_EQ(tracker.messages(), 2u);
    EXPECT_EQ(tracker.current_message_bytes(), 7u);  // reset when the next message started
    EXPECT_EQ(tracker.largest_message_bytes(), 12u);
    EXPECT_EQ(tracker.frames(), 6u);
  }
}

TEST(FrameTracker, MessageBytesCountAsSoonAsTheHeaderIsRead) {
  FrameTracker tracker;
  const Bytes first = frame(0x2, pattern(1000), false);
  ASSERT_EQ(tracker.advance(std::span(first).first(4)), 4u);  // header only
  EXPECT_EQ(tracker.current_message_bytes(), 1000u);
  EXPECT_EQ(tracker.messages(), 0u);
  ASSERT_EQ(tracker.advance(std::span(first).subspan(4)), first.size() - 4);
  const Bytes second = frame(0x0, pattern(300), true);
  ASSERT_EQ(tracker.advance(std::span(second).first(4)), 4u);
  EXPECT_EQ(tracker.current_message_bytes(), 1300u);
  EXPECT_EQ(tracker.messages(), 0u);  // completed only when its payload is through
  ASSERT_EQ(tracker.advance(std::span(second).subspan(4)), second.size() - 4);
  EXPECT_EQ(tracker.messages(), 1u);
}

TEST(FrameTracker, StopAtBoundarySplitsTwoAndAHalfFrames) {
  const Bytes a = frame(0x1, pattern(10), true, kKey);
  const Bytes b = frame(0x2, pattern(300));
  const Bytes c = frame(0x2, pattern(70000), true, kKey);
  const std::size_t c_half = c.size() / 2;
  Bytes buffer = concat({a, b});
  buffer.insert(buffer.end(), c.begin(), c.begin() + static_cast<std::ptrdiff_t>(c_half));
  std::span<const std::uint8_t> rest(buffer);

  FrameTracker tracker;
  // Already at a boundary: nothing to forward before an injected frame.
  EXPECT_EQ(tracker.advance(rest, true), 0u);
  ASSERT_EQ(tracker.advance(rest.first(3), false), 3u);  // into frame a
  EXPECT_EQ(tracker.advance(rest.subspan(3), true), a.size() - 3);
  EXPECT_TRUE(tracker.at_boundary());
  rest = rest.subspan(a.size());
  EXPECT_EQ(tracker.advance(rest, true), 0u);

  ASSERT_EQ(tracker.advance(rest.first(1), false), 1u);  // into frame b
  EXPECT_EQ(tracker.advance(rest.subspan(1), true), b.size() - 1);
  EXPECT_TRUE(tracker.at_boundary());
  EXPECT_EQ(tracker.frames(), 2u);
  rest = rest.subspan(b.size());

  ASSERT_EQ(tracker.advance(rest.first(1), false), 1u);  // into frame c
  // No boundary in the half frame that is left: all of it goes.
  EXPECT_EQ(tracker.advance(rest.subspan(1), true), c_half - 1);
  EXPECT_FALSE(tracker.at_boundary());
  EXPECT_EQ(tracker.frames(), 2u);

  // The rest of c, then a whole frame d: stops between them.
  const Bytes d = frame(0x1, pattern(5));
  Bytes tail(c.begin() + static_cast<std::ptrdiff_t>(c_half), c.end());
  tail.insert(tail.end(), d.begin(), d.end());
  EXPECT_EQ(tracker.advance(tail, true), c.size() - c_half);
  EXPECT_EQ(tracker.frames(), 3u);
  EXPECT_EQ(tracker.advance(std::span(tail).subspan(c.size() - c_half), false), d.size());
  EXPECT_EQ(tracker.frames(), 4u);
  EXPECT_TRUE(tracker.at_boundary());
}

TEST(FrameTracker, StopAtBoundaryAfterAHeaderOnlyFrame) {
  // A frame with an empty payload ends with its header: the stop comes right after it.
  const Bytes buffer = concat({frame(0x9, {}, true, kKey), frame(0x1, text("x"))});
  FrameTracker tracker;
  ASSERT_EQ(tracker.advance(std::span(buffer).first(1)), 1u);
  EXPECT_EQ(tracker.advance(std::span(buffer).subspan(1), true), 5u);
  EXPECT_EQ(tracker.pings(), 1u);
  EXPECT_TRUE(tracker.at_boundary());
}

class CloseFrames : public testing::TestWithParam<std::tuple<bool, Feed>> {};

TEST_P(CloseFrames, ExposeCodeAndReason) {
  const auto [masked, how] = GetParam();
  const std::optional<MaskKey> mask = masked ? std::optional(kKey) : std::nullopt;
  const std::string long_reason(123, 'r');
  struct Case {
    Bytes payload;
    std::uint16_t code;
    std::string reason;
  };
  const Case cases[] = {
      {close_payload(1000, "bye"), 1000, "bye"},
      {close_payload(4001, ""), 4001, ""},
      {close_payload(1001, long_reason), 1001, long_reason},
      {close_payload(1011, "\xC3\xA9t\xC3\xA9"), 1011, "\xC3\xA9t\xC3\xA9"},
      {{}, 1005, ""},
  };
  for (const Case& c : cases) {
    FrameTracker tracker;
    feed(tracker,
         concat({frame(0x1, text("hello"), true, mask), frame(0x8, c.payload, true, mask)}), how);
    EXPECT_TRUE(tracker.close_seen());
    EXPECT_EQ(tracker.close_code(), c.code);
    EXPECT_EQ(tracker.close_reason(), c.reason);
    EXPECT_EQ(tracker.messages(), 1u);
    EXPECT_EQ(tracker.current_message_bytes(), 5u);
  }
}

INSTANTIATE_TEST_SUITE_P(MaskedAndNot, CloseFrames,
                         testing::Combine(testing::Bool(),
                                          testing::Values(Feed::kWhole, Feed::kByteByByte,
                                                          Feed::kRandomChunks)));

TEST(FrameTracker, CloseIsReportedOnlyOnceItsPayloadIsThrough) {
  const Bytes close = frame(0x8, close_payload(1000, "done"), true, kKey);
  FrameTracker tracker;
  ASSERT_EQ(tracker.advance(std::span(close).first(close.size() - 1)), close.size() - 1);
  EXPECT_FALSE(tracker.close_seen());
  ASSERT_EQ(tracker.advance(std::span(close).last(1)), 1u);
  EXPECT_TRUE(tracker.close_seen());
  EXPECT_EQ(tracker.close_reason(), "done");
}

TEST(FrameTracker, TheFirstCloseFrameIsTheOneKept) {
  FrameTracker tracker;
  feed(tracker,
       concat({frame(0x8, close_payload(1000, "first")), frame(0x8, close_payload(1002, "x"))}),
       Feed::kWhole);
  EXPECT_EQ(tracker.close_code(), 1000);
  EXPECT_EQ(tracker.close_reason(), "first");
  EXPECT_EQ(tracker.frames(), 2u);
}

// Feeds bytes (byte by byte when asked) and returns the status after the first error.
FrameTracker::Status status_after(const Bytes& bytes, bool byte_by_byte) {
  FrameTracker tracker;
  std::span<const std::uint8_t> rest(bytes);
  while (!rest.empty() && tracker.status() == FrameTracker::Status::kOk) {
    const std::size_t n = byte_by_byte ? 1 : rest.size();
    const std::size_t used = tracker.advance(rest.first(n));
    if (tracker.status() != FrameTracker::Status::kOk) break;
    EXPECT_EQ(used, n);
    rest = rest.subspan(n);
  }
  if (tracker.status() != FrameTracker::Status::kOk) {
    // Stuck for good: nothing more is consumed.
    EXPECT_EQ(tracker.advance(bytes), 0u);
    EXPECT_EQ(tracker.advance(bytes, true), 0u);
  }
  return tracker.status();
}

TEST(FrameTracker, ReportsEveryProtocolError) {
  const auto kError = FrameTracker::Status::kProtocolError;
  Bytes msb_set = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
  std::vector<std::pair<std::string, Bytes>> cases;
  for (std::uint8_t opcode : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    cases.emplace_back("reserved opcode " + std::to_string(opcode), frame(opcode, text("x")));
  }
  cases.emplace_back("ping of 126 bytes", frame(0x9, pattern(126)));
  cases.emplace_back("close of 126 bytes", frame(0x8, pattern(126), true, kKey));
  cases.emplace_back("pong of 65536 bytes", frame(0xA, pattern(65536)));
  cases.emplace_back("ping without FIN", frame(0x9, text("p"), false));
  cases.emplace_back("close without FIN", frame(0x8, close_payload(1000, ""), false));
  cases.emplace_back("64-bit length with MSB set", msb_set);
  cases.emplace_back("continuation first", frame(0x0, text("x")));
  cases.emplace_back("continuation after a whole message",
                     concat({frame(0x1, text("a")), frame(0x0, text("b"))}));
  cases.emplace_back("text inside a fragmented message",
                     concat({frame(0x1, text("a"), false), frame(0x1, text("b"))}));
  cases.emplace_back("binary inside a fragmented message",
                     concat({frame(0x2, text("a"), false), frame(0x9, {}), frame(0x2, text("b"))}));
  cases.emplace_back("close body of one byte", frame(0x8, {0x03}, true, kKey));
  for (const auto& [name, bytes] : cases) {
    EXPECT_EQ(status_after(bytes, false), kError) << name;
    EXPECT_EQ(status_after(bytes, true), kError) << name << " (byte by byte)";
  }
}

TEST(FrameTracker, ErrorStopsAtTheOffendingHeader) {
  const Bytes good = frame(0x1, text("ok"));
  const Bytes bytes = concat({good, frame(0x5, text("bad")), frame(0x1, text("later"))});
  FrameTracker tracker;
  EXPECT_EQ(tracker.advance(bytes), good.size() + 2);
  EXPECT_EQ(tracker.status(), FrameTracker::Status::kProtocolError);
  EXPECT_EQ(tracker.messages(), 1u);
}

TEST(FrameTracker, LargestLegalLengthsAreAccepted) {
  // Lengths with every bit but the MSB set are legal; the payload just never arrives.
  FrameTracker tracker;
  const Bytes header = {0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(tracker.advance(header), header.size());
  EXPECT_EQ(tracker.status(), FrameTracker::Status::kOk);
  EXPECT_EQ(tracker.current_message_bytes(), 0x7FFFFFFFFFFFFFFFu);
  EXPECT_FALSE(tracker.at_boundary());
}

// Parses a frame the proxy made, and returns the tracker that read it.
FrameTracker parse_whole(const Bytes& bytes) {
  FrameTracker tracker;
  EXPECT_EQ(tracker.advance(bytes), bytes.size());
  EXPECT_EQ(tracker.status(), FrameTracker::Status::kOk);
  EXPECT_TRUE(tracker.at_boundary());
  EXPECT_EQ(tracker.frames(), 1u);
  return tracker;
}

// The payload of a frame made by the proxy, unmasked by hand.
Bytes payload_of(const Bytes& bytes) {
  EXPECT_GE(bytes.size(), 2u);
  const bool masked = (bytes[1] & 0x80) != 0;
  const std::size_t length = bytes[1] & 0x7F;
  const std::size_t start = masked ? 6 : 2;
  EXPECT_LE(length, 125u);
  EXPECT_EQ(bytes.size(), start + length);
  Bytes payload(bytes.begin() + static_cast<std::ptrdiff_t>(start), bytes.end());
  for (std::size_t i = 0; masked && i < payload.size(); ++i) payload[i] ^= bytes[2 + i % 4];
  return payload;
}

TEST(MakeCloseFrame, ParsesBackMaskedAndUnmasked) {
  for (bool masked : {false, true}) {
    const Bytes bytes = make_close_frame(1001, "going away", masked);
    EXPECT_EQ(bytes[0], 0x88);  // FIN + close
    EXPECT_EQ((bytes[1] & 0x80) != 0, masked);
    EXPECT_EQ(payload_of(bytes), close_payload(1001, "going away"));
    const FrameTracker tracker = parse_whole(bytes);
    EXPECT_TRUE(tracker.close_seen());
    EXPECT_EQ(tracker.close_code(), 1001);
    EXPECT_EQ(tracker.close_reason(), "going away");
  }
}

TEST(MakeCloseFrame, TruncatesReasonAtACharacterBoundary) {
  const std::string e_acute = "\xC3\xA9";        // 2 bytes
  const std::string emoji = "\xF0\x9F\x98\x80";  // 4 bytes
  struct Case {
    std::string reason;
    std::string kept;
  };
  const Case cases[] = {
      {std::string(200, 'a'), std::string(123, 'a')},
      {std::string(123, 'a'), std::string(123, 'a')},
      {std::string(121, 'a') + e_acute, std::string(121, 'a') + e_acute},  // exactly 123
      {std::string(122, 'a') + e_acute, std::string(122, 'a')},            // é would straddle
      {std::string(120, 'a') + emoji, std::string(120, 'a')},              // 124 bytes
      {std::string(119, 'a') + emoji + "b", std::string(119, 'a') + emoji},
      {"", ""},
  };
  for (const Case& c : cases) {
    for (bool masked : {false, true}) {
      const FrameTracker tracker = parse_whole(make_close_frame(4000, c.reason, masked));
      EXPECT_EQ(tracker.close_code(), 4000);
      EXPECT_EQ(tracker.close_reason(), c.kept) << c.reason.size() << " bytes in";
    }
  }
}

TEST(MakeCloseFrame, MaskKeysVary) {
  std::set<std::array<std::uint8_t, 4>> keys;
  for (int i = 0; i < 16; ++i) {
    const Bytes bytes = make_close_frame(1000, "", true);
    keys.insert({bytes[2], bytes[3], bytes[4], bytes[5]});
  }
  EXPECT_GT(keys.size(), 1u);
}

TEST(MakePingFrame, ParsesBackMaskedAndUnmasked) {
  for (bool masked : {false, true}) {
    const Bytes bytes = make_ping_frame("keepalive", masked);
    EXPECT_EQ(bytes[0], 0x89);  // FIN + ping
    EXPECT_EQ((bytes[1] & 0x80) != 0, masked);
    EXPECT_EQ(payload_of(bytes), text("keepalive"));
    const FrameTracker tracker = parse_whole(bytes);
    EXPECT_EQ(tracker.pings(), 1u);
    EXPECT_EQ(tracker.messages(), 0u);
    EXPECT_EQ(tracker.current_message_bytes(), 0u);
  }
  EXPECT_EQ(make_ping_frame("", false), (Bytes{0x89, 0x00}));
  EXPECT_EQ(payload_of(make_ping_frame(std::string(200, 'z'), true)), text(std::string(125, 'z')));
}

}  // namespace
}  // namespace wsgate::proxy
