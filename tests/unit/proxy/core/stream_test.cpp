// Stream over a Transport: the operations Beast and the tunnel use reach the transport, and a
// fail_count on the transport's end fails exactly the n-th operation.

#include "proxy/core/stream.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <string>

#include "../support/test_transport.hpp"

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using test::beast_test::stream;

struct Pair {
  explicit Pair(asio::io_context& io, beast::test::fail_count* fail = nullptr)
      : local(fail ? stream(io, *fail) : stream(io)), remote(io) {
    local.connect(remote);
  }
  stream local;
  stream remote;
};

// The peer sends: bytes land in the input of the Stream's end.
void feed(stream& peer, std::string_view bytes) {
  peer.write_some(asio::buffer(bytes));
}

TEST(StreamOverTransport, AsyncReadAndWriteReachThePeer) {
  asio::io_context io;
  Pair pair(io);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote);
  EXPECT_FALSE(s.is_tls());
  EXPECT_EQ(s.tls(), nullptr);

  feed(pair.remote, "hello");
  std::string got(5, '\0');
  boost::system::error_code read_ec;
  asio::async_read(s, asio::buffer(got),
                   [&](boost::system::error_code ec, std::size_t) { read_ec = ec; });
  boost::system::error_code write_ec;
  asio::async_write(s, asio::buffer(std::string_view("world")),
                    [&](boost::system::error_code ec, std::size_t) { write_ec = ec; });
  io.run();
  EXPECT_FALSE(read_ec);
  EXPECT_EQ(got, "hello");
  EXPECT_FALSE(write_ec);
  EXPECT_EQ(pair.remote.str(), "world");
}

TEST(StreamOverTransport, BeastHttpRoundTrip) {
  asio::io_context io;
  Pair pair(io);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote);
  feed(pair.remote, "GET /chat HTTP/1.1\r\nHost: a\r\n\r\n");
  beast::flat_buffer buffer;
  http::request<http::empty_body> request;
  boost::system::error_code ec;
  http::async_read(s, buffer, request, [&](boost::system::error_code e, std::size_t) { ec = e; });
  io.run();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(request.target(), "/chat");

  http::response<http::empty_body> response{http::status::no_content, 11};
  io.restart();
  http::async_write(s, response, [&](boost::system::error_code e, std::size_t) { ec = e; });
  io.run();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(pair.remote.str().substr(0, 24), "HTTP/1.1 204 No Content\r");
}

TEST(StreamOverTransport, TryOperationsNeverWait) {
  asio::io_context io;
  Pair pair(io);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote);
  s.make_non_blocking();  // nothing to do for a transport
  char data[8];
  boost::system::error_code ec;
  EXPECT_EQ(s.try_read_some(asio::buffer(data), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);

  feed(pair.remote, "abc");
  ec = {};
  EXPECT_EQ(s.try_read_some(asio::buffer(data), ec), 3u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(std::string(data, 3), "abc");

  const std::array<asio::const_buffer, 2> out = {asio::buffer(std::string_view("hd")),
                                                 asio::buffer(std::string_view("body"))};
  EXPECT_EQ(s.try_write_some(out, ec), 6u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(pair.remote.str(), "hdbody");
  EXPECT_EQ(s.read_chunk(65536), 65536u);
  EXPECT_FALSE(s.has_buffered_input());
}

TEST(StreamOverTransport, TransportWithoutTryOperationsAnswersWouldBlock) {
  asio::io_context io;
  Pair pair(io);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote, false);
  feed(pair.remote, "abc");
  char data[8];
  boost::system::error_code ec;
  EXPECT_EQ(s.try_read_some(asio::buffer(data), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);
  ec = {};
  EXPECT_EQ(s.try_write_some(asio::buffer(std::string_view("x")), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);

  // The parked read is the fallback: it delivers what is there.
  std::array<char, 256> park{};
  std::size_t got = 0;
  s.async_park_read(asio::buffer(park), [&](boost::system::error_code e, std::size_t n) {
    ec = e;
    got = n;
  });
  io.run();
  EXPECT_FALSE(ec);
  EXPECT_EQ(got, 3u);
}

TEST(StreamOverTransport, FailCountFailsTheNthOperation) {
  asio::io_context io;
  beast::test::fail_count fail(3);  // the third operation fails (and every later one)
  Pair pair(io, &fail);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote);
  boost::system::error_code ec;
  EXPECT_EQ(s.try_write_some(asio::buffer(std::string_view("one")), ec), 3u);
  EXPECT_FALSE(ec);
  feed(pair.remote, "two");
  char data[8];
  EXPECT_EQ(s.try_read_some(asio::buffer(data), ec), 3u);
  EXPECT_FALSE(ec);
  std::size_t n = 99;
  s.async_write_some(asio::buffer(std::string_view("three")),
                     [&](boost::system::error_code e, std::size_t bytes) {
                       ec = e;
                       n = bytes;
                     });
  io.run();
  EXPECT_EQ(ec, beast::test::error::test_failure);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(pair.remote.str(), "one");
}

TEST(StreamOverTransport, ShutdownSendEndsThePeersInputOnly) {
  asio::io_context io;
  Pair pair(io);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote);
  s.shutdown_send();
  char data[4];
  boost::system::error_code peer_ec;
  pair.remote.async_read_some(asio::buffer(data),
                              [&](boost::system::error_code e, std::size_t) { peer_ec = e; });
  boost::system::error_code write_ec;
  pair.remote.async_write_some(asio::buffer(std::string_view("late")),
                               [&](boost::system::error_code e, std::size_t) { write_ec = e; });
  std::size_t got = 0;
  boost::system::error_code read_ec;
  s.async_read_some(asio::buffer(data), [&](boost::system::error_code e, std::size_t n) {
    read_ec = e;
    got = n;
  });
  io.run();
  EXPECT_EQ(peer_ec, asio::error::eof);
  EXPECT_FALSE(write_ec);
  EXPECT_FALSE(read_ec);
  EXPECT_EQ(got, 4u);
}

TEST(StreamOverTransport, CloseAbortsAPendingRead) {
  asio::io_context io;
  Pair pair(io);
  Stream s = test::make_test_stream(std::move(pair.local), pair.remote);
  char data[4];
  boost::system::error_code read_ec;
  s.async_read_some(asio::buffer(data),
                    [&](boost::system::error_code e, std::size_t) { read_ec = e; });
  io.poll();
  s.close();
  io.run();
  EXPECT_EQ(read_ec, asio::error::operation_aborted);
}

}  // namespace
}  // namespace wsgate::proxy
