#pragma once
// A TLS connection driven directly on its socket: OpenSSL reads and writes the descriptor and
// Asio only reports readiness. asio::ssl::stream keeps four 17 KiB staging buffers per
// connection; here an idle connection holds just the SSL object, because OpenSSL's own record
// buffers are freed whenever they are empty (SSL_MODE_RELEASE_BUFFERS, set on every SSL).

#include <openssl/ssl.h>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace wsgate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The calling thread's OpenSSL error queue as one line ("a; b"), and the queue cleared.
std::string openssl_error_text();

// A context with what both directions share: TLS 1.2 minimum, OpenSSL's default ciphers,
// record buffers released while empty. Null with `error` set if OpenSSL cannot make one.
std::shared_ptr<SSL_CTX> new_tls_context(const SSL_METHOD* method, std::string& error);

// The first non-empty buffer of a sequence (an operation on one buffer serves the rest later).
template <typename Buffer, typename Buffers>
Buffer first_buffer(const Buffers& buffers) {
  for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
       ++it) {
    Buffer buffer(*it);
    if (buffer.size() > 0) return buffer;
  }
  return Buffer();
}

class TlsStream {
 public:
  enum class Role { kClient, kServer };

  // Takes the socket and makes an SSL object from `ctx`. OpenSSL holds a reference to the
  // context, so a context replaced by a certificate rotation lives until its last connection.
  TlsStream(tcp::socket socket, SSL_CTX* ctx);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  tcp::socket& next_layer() { return socket_; }
  SSL* native_handle() { return ssl_.get(); }

  // Bytes of a record already taken off the socket: a readiness wait would not see them.
  bool has_buffered_input() const;
  // Raw bytes read from the socket so far (tells a silent TCP probe from a failed handshake).
  std::uint64_t bytes_received() const { return bytes_received_; }
  // close_notify if it fits in the socket buffer right now (never waits), then TCP FIN.
  void shutdown_send();

  // Completion signature void(error_code).
  template <typename Token>
  auto async_handshake(Role role, Token&& token) {
    if (ssl_) {
      role == Role::kServer ? SSL_set_accept_state(ssl_.get()) : SSL_set_connect_state(ssl_.get());
    }
    return asio::async_compose<Token, void(boost::system::error_code)>(
        Op<false>{*this, Kind::kHandshake, nullptr, 0}, token, socket_);
  }

  // Completion signature void(error_code, std::size_t). Reads into the first non-empty buffer.
  // Peer's close_notify -> asio::error::eof; TCP end without it -> ssl::error::stream_truncated.
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const asio::mutable_buffer first = first_buffer<asio::mutable_buffer>(buffers);
    return asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<true>{*this, Kind::kRead, first.data(), first.size()}, token, socket_);
  }

  // Writes (part of) the first non-empty buffer; at most one TLS record per call.
  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const asio::const_buffer first = first_buffer<asio::const_buffer>(buffers);
    return asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<true>{*this, Kind::kWrite, const_cast<void*>(first.data()), first.size()}, token,
        socket_);
  }

  // Stream's transport operations (see stream.hpp). One SSL_read that never waits: bytes, an
  // error, or would_block; the readiness OpenSSL then asked for is what async_wait_input waits
  // for next.
  std::size_t try_read_some(asio::mutable_buffer buffer, boost::system::error_code& ec) {
    const Attempt result = attempt(Kind::kRead, buffer.data(), buffer.size());
    if (result.next == Attempt::Next::kDone) {
      ec = result.ec;
      return result.bytes;
    }
    input_wait_ =
        result.next == Attempt::Next::kWaitWrite ? tcp::socket::wait_write : tcp::socket::wait_read;
    ec = asio::error::would_block;
    return 0;
  }

  // SSL_writes (one record each) until all is written or one would wait; a short count means
  // the rest waits. After that, the unwritten bytes must be offered again first, as
  // async_write_some does.
  template <typename ConstBuffers>
  std::size_t try_write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    std::size_t sent = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      asio::const_buffer buffer(*it);
      while (buffer.size() > 0) {
        const Attempt result =
            attempt(Kind::kWrite, const_cast<void*>(buffer.data()), buffer.size());
        if (result.next != Attempt::Next::kDone) {
          if (sent == 0) ec = asio::error::would_block;
          return sent;
        }
        if (result.ec) {
          ec = result.ec;
          return sent;
        }
        buffer += result.bytes;
        sent += result.bytes;
      }
    }
    return sent;
  }

  // Waits for the readiness the last would_block read asked for (else readability), holding
  // no record buffer meanwhile. Handler: void(error_code).
  template <typename Handler>
  void async_wait_input(Handler&& handler) {
    socket_.async_wait(std::exchange(input_wait_, tcp::socket::wait_read),
                       std::forward<Handler>(handler));
  }

  // One non-blocking OpenSSL call: finished (with bytes or an error), or the readiness to await.
  // (try_read_some/try_write_some above are the tunnel's view of it.)
  struct Attempt {
    enum class Next { kDone, kWaitRead, kWaitWrite } next = Next::kDone;
    boost::system::error_code ec;
    std::size_t bytes = 0;
  };

 private:
  enum class Kind { kHandshake, kRead, kWrite };

  Attempt attempt(Kind kind, void* data, std::size_t size);

  // The asynchronous loop shared by handshake, read and write: attempt, else wait for the
  // readiness OpenSSL asked for and attempt again. Several may be pending at once (one read
  // and one write, as a tunnel does); each only ever waits on the socket.
  template <bool kWithBytes>
  struct Op {
    TlsStream& stream;
    Kind kind;
    void* data;
    std::size_t size;
    bool waited = false;
    bool posted = false;
    Attempt result{};

    template <typename Self>
    void operator()(Self& self, boost::system::error_code wait_ec = {}) {
      if (!posted) {
        if (wait_ec) {
          result = Attempt{};
          result.ec = wait_ec;
        } else {
          result = stream.attempt(kind, data, size);
          if (result.next != Attempt::Next::kDone) {
            waited = true;
            const auto what = result.next == Attempt::Next::kWaitRead ? tcp::socket::wait_read
                                                                      : tcp::socket::wait_write;
            stream.socket_.async_wait(what, std::move(self));
            return;
          }
        }
        if (!waited) {
          // Finished inside the initiating call: the handler must still run later.
          posted = true;
          asio::post(stream.socket_.get_executor(), std::move(self));
          return;
        }
      }
      if constexpr (kWithBytes) {
        self.complete(result.ec, result.bytes);
      } else {
        self.complete(result.ec);
      }
    }
  };

  static BIO_METHOD* bio_method();
  static int bio_read(BIO* bio, char* data, int size);
  static int bio_write(BIO* bio, const char* data, int size);
  static long bio_ctrl(BIO* bio, int command, long number, void* pointer);

  struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };

  tcp::socket socket_;
  std::unique_ptr<SSL, SslFree> ssl_;
  int last_errno_ = 0;   // errno of the last failed socket call made by OpenSSL
  bool failed_ = false;  // a fatal TLS error happened: no close_notify may follow
  bool eof_ = false;     // the peer closed its side of the TCP connection
  tcp::socket::wait_type input_wait_ = tcp::socket::wait_read;  // for async_wait_input
  std::uint64_t bytes_received_ = 0;
};

}  // namespace wsgate::proxy
