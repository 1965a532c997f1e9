#pragma once
// A Transport over one end of a connected pair of Beast test streams, so that unit tests can
// build a proxy Stream without sockets. The other end is the test's peer: it writes what this
// side reads, reads what it writes, and fails operations on cue through a fail_count.

#include <boost/beast/_experimental/test/stream.hpp>

#include <memory>
#include <utility>

#include "proxy/core/stream.hpp"
#include "proxy/core/transport.hpp"

namespace wsgate::proxy::test {

namespace beast_test = boost::beast::test;

class TestTransport final : public Transport {
 public:
  // `remote` (the peer's end, when given) must outlive this transport: shutdown_send() ends its
  // input; without it shutdown_send() closes the whole connection. With `try_operations` off
  // every try_ answers would_block, as a transport without synchronous access does.
  explicit TestTransport(beast_test::stream local, beast_test::stream* remote = nullptr,
                         bool try_operations = true)
      : local_(std::move(local)), remote_(remote), try_operations_(try_operations) {}

  boost::asio::any_io_executor get_executor() override { return local_.get_executor(); }

  void async_read_some(boost::asio::mutable_buffer buffer, Handler handler) override {
    local_.async_read_some(buffer, std::move(handler));
  }
  void async_write_some(boost::asio::const_buffer buffer, Handler handler) override {
    local_.async_write_some(buffer, std::move(handler));
  }

  std::size_t try_read_some(boost::asio::mutable_buffer buffer,
                            boost::system::error_code& ec) override {
    // A test stream's read_some blocks while its input is empty: only buffered bytes are
    // read now (the end of input is reported by the asynchronous read).
    if (!try_operations_ || local_.buffer().size() == 0) {
      ec = boost::asio::error::would_block;
      return 0;
    }
    return local_.read_some(buffer, ec);
  }
  std::size_t try_write_some(boost::asio::const_buffer buffer,
                             boost::system::error_code& ec) override {
    if (!try_operations_) {
      ec = boost::asio::error::would_block;
      return 0;
    }
    return local_.write_some(buffer, ec);
  }

  void shutdown_send() override {
    if (remote_ != nullptr) {
      remote_->close_remote();
    } else {
      local_.close();
    }
  }
  void close() override { local_.close(); }

  beast_test::stream& local() { return local_; }

 private:
  beast_test::stream local_;
  beast_test::stream* remote_;
  bool try_operations_;
};

// A proxy Stream over `local`, whose peer is `remote` (connected to it by the caller).
inline Stream make_test_stream(beast_test::stream local, beast_test::stream& remote,
                               bool try_operations = true) {
  return Stream(std::make_unique<TestTransport>(std::move(local), &remote, try_operations));
}

}  // namespace wsgate::proxy::test
