#pragma once
// A byte stream that is not one of our own sockets: an in-memory stream in unit tests, an
// HTTP/2 stream carrying a WebSocket (RFC 8441) later. A Stream built on one routes every
// operation here; sockets never come through this interface, so they pay no virtual call or
// type-erased handler per operation.

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>

namespace wsgate::proxy {

class Transport {
 public:
  using Handler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

  virtual ~Transport() = default;

  virtual boost::asio::any_io_executor get_executor() = 0;

  // As a socket's: the handler runs later (never inside the call) on its associated executor.
  // End of input -> asio::error::eof; after close(), pending operations complete with
  // operation_aborted.
  virtual void async_read_some(boost::asio::mutable_buffer buffer, Handler handler) = 0;
  virtual void async_write_some(boost::asio::const_buffer buffer, Handler handler) = 0;

  // One attempt that never waits: bytes, an error, or would_block when nothing can be done
  // now. A write returns as much as fits now: a short count means the rest would wait. A
  // transport may always answer would_block; a tunnel then moves bytes with the async calls.
  virtual std::size_t try_read_some(boost::asio::mutable_buffer, boost::system::error_code& ec) {
    ec = boost::asio::error::would_block;
    return 0;
  }
  virtual std::size_t try_write_some(boost::asio::const_buffer, boost::system::error_code& ec) {
    ec = boost::asio::error::would_block;
    return 0;
  }

  // Ends our direction (the peer reads eof); reading goes on.
  virtual void shutdown_send() = 0;
  // Ends both directions now.
  virtual void close() = 0;
};

}  // namespace wsgate::proxy
