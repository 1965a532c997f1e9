#include "proxy/core/tls_stream.hpp"

#include <openssl/err.h>
#include <sys/socket.h>
#include <boost/asio/ssl/error.hpp>

#include <cerrno>
#include <climits>

namespace wsgate::proxy {
namespace {

constexpr long kModes =
    SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;

bool would_block(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

}  // namespace

std::string openssl_error_text() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? std::string("unknown OpenSSL error") : text;
}

std::shared_ptr<SSL_CTX> new_tls_context(const SSL_METHOD* method, std::string& error) {
  std::shared_ptr<SSL_CTX> context(SSL_CTX_new(method), SSL_CTX_free);
  if (!context) {
    error = "cannot create a TLS context: " + openssl_error_text();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(context.get(), SSL_MODE_RELEASE_BUFFERS);
  return context;
}

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE on a peer that is gone; this
// one uses send(MSG_NOSIGNAL) and records errno for the error report.
BIO_METHOD* TlsStream::bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsgate socket");
    BIO_meth_set_read(m, &TlsStream::bio_read);
    BIO_meth_set_write(m, &TlsStream::bio_write);
    BIO_meth_set_ctrl(m, &TlsStream::bio_ctrl);
    return m;
  }();
  return method;
}

int TlsStream::bio_read(BIO* bio, char* data, int size) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(self->socket_.native_handle(), data, static_cast<std::size_t>(size), 0);
  if (n > 0) {
    self->bytes_received_ += static_cast<std::uint64_t>(n);
    return static_cast<int>(n);
  }
  if (n == 0) {
    self->eof_ = true;  // BIO_eof(): OpenSSL then tells a clean close from a truncation
    return 0;
  }
  if (would_block(errno)) {
    BIO_set_retry_read(bio);
  } else {
    self->last_errno_ = errno;
  }
  return -1;
}

int TlsStream::bio_write(BIO* bio, const char* data, int size) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const ssize_t n =
      ::send(self->socket_.native_handle(), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (n >= 0) return static_cast<int>(n);
  if (would_block(errno)) {
    BIO_set_retry_write(bio);
  } else {
    self->last_errno_ = errno;
  }
  return -1;
}

long TlsStream::bio_ctrl(BIO* bio, int command, long, void*) {
  // Writes go straight to the socket: there is never anything to flush.
  if (command == BIO_CTRL_FLUSH) return 1;
  if (command == BIO_CTRL_EOF) return static_cast<TlsStream*>(BIO_get_data(bio))->eof_ ? 1 : 0;
  return 0;
}

TlsStream::TlsStream(tcp::socket socket, SSL_CTX* ctx)
    : socket_(std::move(socket)), ssl_(SSL_new(ctx)) {
  boost::system::error_code ignored;
  socket_.non_blocking(true, ignored);
  if (!ssl_) return;  // out of memory: every operation then fails
  SSL_set_mode(ssl_.get(), kModes);
  // Read-ahead: a recv() takes what has arrived up to the record buffer's size, not a 5-byte
  // header and then the body of each record. The buffer is still released whenever it is empty,
  // and has_buffered_input() (SSL_has_pending) counts what is read ahead.
  SSL_set_read_ahead(ssl_.get(), 1);
  BIO* bio = BIO_new(bio_method());
  if (bio == nullptr) {
    ssl_.reset();
    return;
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_.get(), bio, bio);  // one reference, owned by the SSL from here
}

TlsStream::~TlsStream() = default;

bool TlsStream::has_buffered_input() const {
  return ssl_ && SSL_has_pending(ssl_.get()) == 1;
}

void TlsStream::shutdown_send() {
  if (ssl_ && !failed_ && socket_.is_open() && SSL_is_init_finished(ssl_.get())) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // a full socket buffer just loses the close_notify
    ERR_clear_error();
  }
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

TlsStream::Attempt TlsStream::attempt(Kind kind, void* data, std::size_t size) {
  Attempt out;
  if (!ssl_) {
    out.ec = asio::error::no_memory;
    return out;
  }
  if (!socket_.is_open()) {
    out.ec = asio::error::bad_descriptor;
    return out;
  }
  if (kind != Kind::kHandshake && size == 0) return out;
  ERR_clear_error();
  last_errno_ = 0;
  int ret = 0;
  std::size_t done = 0;
  if (kind == Kind::kHandshake) {
    ret = SSL_do_handshake(ssl_.get());
  } else if (kind == Kind::kRead) {
    ret = SSL_read_ex(ssl_.get(), data, size, &done);
  } else {
    ret = SSL_write_ex(ssl_.get(), data, size, &done);
  }
  if (ret == 1) {
    out.bytes = done;
    return out;
  }
  const int error = SSL_get_error(ssl_.get(), ret);
  if (error == SSL_ERROR_WANT_READ) {
    out.next = Attempt::Next::kWaitRead;
    return out;
  }
  if (error == SSL_ERROR_WANT_WRITE) {
    out.next = Attempt::Next::kWaitWrite;
    return out;
  }
  if (error == SSL_ERROR_ZERO_RETURN) {
    out.ec = asio::error::eof;
    return out;
  }
  failed_ = true;
  if (error == SSL_ERROR_SYSCALL) {
    out.ec = last_errno_ != 0
                 ? boost::system::error_code(last_errno_, asio::error::get_system_category())
                 : boost::system::error_code(asio::ssl::error::stream_truncated);
    ERR_clear_error();
    return out;
  }
  // SSL_ERROR_SSL: the first queued error names the cause (the handshake's error report and
  // the metric reason read it from the code).
  const unsigned long code = ERR_peek_error();
  ERR_clear_error();
  if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
      ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    out.ec = asio::ssl::error::stream_truncated;
  } else if (code != 0 && code <= static_cast<unsigned long>(INT_MAX)) {
    out.ec = boost::system::error_code(static_cast<int>(code), asio::error::get_ssl_category());
  } else {
    out.ec = asio::error::fault;
  }
  return out;
}

}  // namespace wsgate::proxy
