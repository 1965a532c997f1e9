#pragma once
// One byte stream to a peer, plain TCP or TLS, behind one type so that sessions, tunnels and
// Beast's HTTP algorithms are written once. Models Asio's AsyncReadStream/AsyncWriteStream.

#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <utility>

#include "proxy/core/tls_stream.hpp"

namespace wsgate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Stream {
 public:
  using executor_type = tcp::socket::executor_type;

  explicit Stream(tcp::socket socket) : tcp_(std::move(socket)) {}
  // Wraps the socket in TLS (the handshake is the caller's next step).
  Stream(tcp::socket socket, SSL_CTX* ctx)
      : tcp_(socket.get_executor()), tls_(std::make_unique<TlsStream>(std::move(socket), ctx)) {}

  executor_type get_executor() { return tcp_.get_executor(); }
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : tcp_; }
  bool is_tls() const { return tls_ != nullptr; }
  TlsStream* tls() { return tls_.get(); }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return tcp_.async_read_some(buffers, std::forward<Token>(token));
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return tcp_.async_write_some(buffers, std::forward<Token>(token));
  }

  // True when bytes are already decrypted and waiting: a readiness wait would miss them.
  bool has_buffered_input() const;

  // Stops sending: TCP FIN, after a close_notify for TLS (sent only if it fits right now).
  void shutdown_send();
  // Closes the socket now; pending operations complete with operation_aborted.
  void close();

 private:
  tcp::socket tcp_;
  std::unique_ptr<TlsStream> tls_;
};

}  // namespace wsgate::proxy
