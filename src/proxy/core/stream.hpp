#pragma once
// One byte stream to a peer behind one type, so that sessions, tunnels and Beast's HTTP
// algorithms are written once: plain TCP, TLS (TlsStream), or a Transport that is not one of
// our sockets (an in-memory stream in tests, later an HTTP/2 stream). Models Asio's
// AsyncReadStream/AsyncWriteStream, and adds the transport operations a tunnel pumps with
// (HAProxy's xprt_ops): attempts that never wait, a parked read, shutdown and close.
//
// Sockets are dispatched with a branch on kind_, inlined: no virtual call and no type-erased
// handler per operation. Only a Transport pays for those.

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <utility>

#include "proxy/core/tls_stream.hpp"
#include "proxy/core/transport.hpp"

namespace wsgate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Stream {
 public:
  using executor_type = tcp::socket::executor_type;

  explicit Stream(tcp::socket socket) : tcp_(std::move(socket)) {}
  // Wraps the socket in TLS (the handshake is the caller's next step).
  Stream(tcp::socket socket, SSL_CTX* ctx)
      : tcp_(socket.get_executor()),
        tls_(std::make_unique<TlsStream>(std::move(socket), ctx)),
        kind_(Kind::kTls) {}
  // Every operation goes to `transport`.
  explicit Stream(std::unique_ptr<Transport> transport)
      : tcp_(transport->get_executor()),
        transport_(std::move(transport)),
        kind_(Kind::kTransport) {}

  executor_type get_executor() {
    return kind_ == Kind::kTransport ? transport_->get_executor() : tcp_.get_executor();
  }
  // The socket under a plain or TLS stream. A transport-backed stream has none: this is then
  // a socket that was never opened (its operations fail with bad_descriptor).
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : tcp_; }
  bool is_tls() const { return kind_ == Kind::kTls; }
  TlsStream* tls() { return tls_.get(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (kind_ == Kind::kPlain) return tcp_.async_read_some(buffers, std::forward<Token>(token));
    if (kind_ == Kind::kTls) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return transport_async<asio::mutable_buffer, &Transport::async_read_some>(
        buffers, std::forward<Token>(token));
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (kind_ == Kind::kPlain) return tcp_.async_write_some(buffers, std::forward<Token>(token));
    if (kind_ == Kind::kTls) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return transport_async<asio::const_buffer, &Transport::async_write_some>(
        buffers, std::forward<Token>(token));
  }

  // --- Transport operations (a tunnel's pump) ---

  // The user-level non-blocking mode the try_ operations need on a plain socket (a TLS socket
  // has it from the start; a transport needs none). One system call, at most once.
  void make_non_blocking() {
    if (kind_ != Kind::kPlain || tcp_.non_blocking()) return;
    boost::system::error_code ignored;
    tcp_.non_blocking(true, ignored);
  }

  // One read that never waits: bytes, an error (eof at the end; for TLS stream_truncated
  // without close_notify), or would_block when nothing can be read now.
  std::size_t try_read_some(asio::mutable_buffer buffer, boost::system::error_code& ec) {
    if (kind_ == Kind::kPlain) return tcp_.read_some(buffer, ec);
    if (kind_ == Kind::kTls) return tls_->try_read_some(buffer, ec);
    return transport_->try_read_some(buffer, ec);
  }

  // Writes as much of `buffers` as fits now, never waiting: a short count means the rest
  // would wait (no second attempt needed to find out), would_block that nothing fits.
  template <typename ConstBuffers>
  std::size_t try_write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    if (kind_ == Kind::kPlain) return tcp_.write_some(buffers, ec);
    if (kind_ == Kind::kTls) return tls_->try_write_some(buffers, ec);
    return transport_try_write(buffers, ec);
  }

  // How much of a `capacity`-byte buffer one try_read_some should be offered. A read that
  // fills it probably left more behind. TLS returns one record per read at most.
  std::size_t read_chunk(std::size_t capacity) const {
    return kind_ == Kind::kTls && capacity > kTlsRecordBytes ? kTlsRecordBytes : capacity;
  }

  // Parks until there is input, holding no pooled buffer. Handler: void(error_code, size_t).
  // A plain socket (or a transport) reads into `park` at once or at the next readiness edge
  // (a readiness-only wait would re-arm the descriptor); TLS only waits for readiness (a
  // record is decrypted whole) and completes with 0 bytes: "ready, try_read_some now".
  template <typename Handler>
  void async_park_read(asio::mutable_buffer park, Handler&& handler) {
    if (kind_ == Kind::kPlain) {
      tcp_.async_read_some(park, std::forward<Handler>(handler));
    } else if (kind_ == Kind::kTls) {
      tls_->async_wait_input(
          [handler = std::forward<Handler>(handler)](const boost::system::error_code& ec) mutable {
            handler(ec, std::size_t{0});
          });
    } else {
      async_read_some(park, std::forward<Handler>(handler));
    }
  }

  // True when bytes are already decrypted and waiting: a readiness wait would miss them.
  bool has_buffered_input() const { return kind_ == Kind::kTls && tls_->has_buffered_input(); }

  // Stops sending: TCP FIN, after a close_notify for TLS (sent only if it fits right now).
  void shutdown_send();
  // Closes the stream now; pending operations complete with operation_aborted.
  void close();

 private:
  enum class Kind : std::uint8_t { kPlain, kTls, kTransport };
  static constexpr std::size_t kTlsRecordBytes = 16 * 1024;

  // A read or write of the first non-empty buffer, through the transport's type-erased call.
  template <typename Buffer, auto kOperation, typename Buffers, typename Token>
  auto transport_async(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [](auto handler, Transport* transport, Buffer buffer) {
          (transport->*kOperation)(buffer, Transport::Handler(std::move(handler)));
        },
        token, transport_.get(), first_buffer<Buffer>(buffers));
  }

  template <typename ConstBuffers>
  std::size_t transport_try_write(const ConstBuffers& buffers, boost::system::error_code& ec) {
    std::size_t sent = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      const asio::const_buffer buffer(*it);
      if (buffer.size() == 0) continue;
      boost::system::error_code step;
      const std::size_t n = transport_->try_write_some(buffer, step);
      sent += step ? 0 : n;
      if (step || n < buffer.size()) {
        // would_block after some bytes is just a short write.
        if (sent == 0 || step != asio::error::would_block) ec = step;
        return sent;
      }
    }
    return sent;
  }

  tcp::socket tcp_;
  std::unique_ptr<TlsStream> tls_;
  std::unique_ptr<Transport> transport_;
  Kind kind_ = Kind::kPlain;
};

}  // namespace wsgate::proxy
