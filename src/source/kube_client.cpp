// The only translation unit of the source layer with Beast and OpenSSL templates: they
// dominate compile time, so the Kubernetes source sees just the small header.

#include "source/kube_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <optional>
#include <utility>

namespace wsgate::source {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
// A list page of 500 routes is a few MiB; far more is not an API server we understand.
constexpr std::uint64_t kBodyLimit = 64 * 1024 * 1024;
// One watch event is one object; etcd caps objects at 1.5 MiB.
constexpr std::size_t kMaxLineBytes = 16 * 1024 * 1024;
// The body of an error answer is only read to quote its message.
constexpr std::size_t kMaxErrorBody = 64 * 1024;
constexpr std::size_t kReadPiece = 16 * 1024;

http::verb verb_of(HttpMethod method) {
  switch (method) {
    case HttpMethod::kPut:
      return http::verb::put;
    case HttpMethod::kPatch:
      return http::verb::patch;
    case HttpMethod::kGet:
      break;
  }
  return http::verb::get;
}

bool is_ip_literal(const std::string& name) {
  boost::system::error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

// A kept-alive connection the server closed while idle fails like this on first use.
bool is_stale_error(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == ssl::error::stream_truncated;
}

}  // namespace

struct KubeClientContext::Impl {
  KubeConfig config;
  ssl::context tls{ssl::context::tls_client};
};

KubeClientContext::KubeClientContext() : impl_(std::make_unique<Impl>()) {}
KubeClientContext::~KubeClientContext() = default;

const KubeConfig& KubeClientContext::config() const {
  return impl_->config;
}

std::variant<std::shared_ptr<KubeClientContext>, std::string> KubeClientContext::create(
    KubeConfig config) {
  std::shared_ptr<KubeClientContext> context(new KubeClientContext());
  ssl::context& tls = context->impl_->tls;
  boost::system::error_code ec;
  tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (config.insecure_skip_tls_verify) {
    tls.set_verify_mode(ssl::verify_none, ec);
  } else {
    tls.set_verify_mode(ssl::verify_peer, ec);
    if (!config.ca_pem.empty()) {
      tls.add_certificate_authority(asio::buffer(config.ca_pem), ec);
      if (ec) return "certificate authority: " + ec.message();
    } else {
      tls.set_default_verify_paths(ec);
      if (ec) return "system CA store: " + ec.message();
    }
  }
  if (!config.client_cert_pem.empty()) {
    tls.use_certificate_chain(asio::buffer(config.client_cert_pem), ec);
    if (ec) return "client certificate: " + ec.message();
    tls.use_private_key(asio::buffer(config.client_key_pem), ssl::context::pem, ec);
    if (ec) return "client key: " + ec.message();
    if (SSL_CTX_check_private_key(tls.native_handle()) != 1)
      return std::string("client key does not match the client certificate");
  }
  context->impl_->config = std::move(config);
  return context;
}

struct KubeConnection::Impl {
  asio::any_io_executor executor;
  std::shared_ptr<const KubeClientContext> context;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  // The streamed response being read by read_line().
  std::optional<http::response_parser<http::buffer_body>> stream;
  std::string pending;  // streamed body bytes not yet returned as lines
  bool body_done = false;

  const KubeConfig& config() const { return context->config(); }
  bool open() const { return plain.has_value() || tls.has_value(); }

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Runs `op(stream)` on whichever stream is open: both branches give the same awaitable type.
  template <typename Op>
  auto on_stream(Op&& op) {
    return tls ? op(*tls) : op(*plain);
  }

  void close() {
    boost::system::error_code ignored;
    if (tls) beast::get_lowest_layer(*tls).socket().close(ignored);
    if (plain) plain->socket().close(ignored);
    tls.reset();
    plain.reset();
    stream.reset();
    buffer.clear();
    pending.clear();
    body_done = false;
  }

  asio::awaitable<std::string> connect(std::chrono::milliseconds timeout) {
    close();
    const KubeConfig& cfg = config();
    tcp::resolver resolver(executor);
    auto [resolve_ec, endpoints] = co_await resolver.async_resolve(cfg.host, cfg.port, kTuple);
    if (resolve_ec) co_return "resolve " + cfg.host + ": " + resolve_ec.message();
    beast::tcp_stream tcp_stream(executor);
    tcp_stream.expires_after(timeout);
    auto [connect_ec, endpoint] = co_await tcp_stream.async_connect(endpoints, kTuple);
    if (connect_ec) co_return "connect " + cfg.server_url() + ": " + connect_ec.message();
    boost::system::error_code ignored;
    tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
    if (cfg.scheme != "https") {
      plain.emplace(std::move(tcp_stream));
      co_return std::string();
    }
    tls.emplace(std::move(tcp_stream), context->impl_->tls);
    SSL* handle = tls->native_handle();
    const std::string& name = cfg.tls_server_name.empty() ? cfg.host : cfg.tls_server_name;
    // An address is checked against the certificate's IP SANs and never sent as SNI (RFC 6066).
    if (is_ip_literal(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), name.c_str());
    } else {
      SSL_set_tlsext_host_name(handle, name.c_str());
      SSL_set1_host(handle, name.c_str());
    }
    auto [handshake_ec] = co_await tls->async_handshake(ssl::stream_base::client, kTuple);
    if (handshake_ec) {
      std::string reason = "TLS handshake with " + cfg.server_url() + ": " + handshake_ec.message();
      const long verify = SSL_get_verify_result(handle);
      if (verify != X509_V_OK)
        reason += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      close();
      co_return reason;
    }
    co_return std::string();
  }

  // Fills the request's common headers; "" or why it cannot be sent.
  std::string prepare(http::request<http::string_body>& request) const {
    const KubeConfig& cfg = config();
    const bool default_port =
        (cfg.scheme == "https" && cfg.port == "443") || (cfg.scheme == "http" && cfg.port == "80");
    const std::string host =
        cfg.host.find(':') != std::string::npos ? "[" + cfg.host + "]" : cfg.host;
    request.set(http::field::host, default_port ? host : host + ":" + cfg.port);
    request.set(http::field::user_agent, "wsgate-controller");
    request.set(http::field::accept, "application/json");
    std::string error;
    const std::string token = cfg.current_token(&error);
    if (!error.empty()) return "bearer token: " + error;
    if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
    return {};
  }

  asio::awaitable<boost::system::error_code> write(const http::request<http::string_body>& request,
                                                   std::chrono::milliseconds timeout) {
    lowest().expires_after(timeout);
    auto [ec, written] =
        co_await on_stream([&](auto& s) { return http::async_write(s, request, kTuple); });
    co_return ec;
  }

  // Reads some of the streamed body into `pending` (or up to `limit` bytes into `sink`).
  asio::awaitable<boost::system::error_code> read_piece(std::chrono::milliseconds timeout,
                                                        std::string& sink) {
    char piece[kReadPiece];
    auto& body = stream->get().body();
    body.data = piece;
    body.size = sizeof piece;
    lowest().expires_after(timeout);
    auto [ec, bytes] = co_await on_stream(
        [&](auto& s) { return http::async_read_some(s, buffer, *stream, kTuple); });
    if (ec == http::error::need_buffer) ec = {};
    sink.append(piece, sizeof piece - body.size);
    if (!ec && stream->is_done()) body_done = true;
    co_return ec;
  }
};

KubeConnection::KubeConnection(asio::any_io_executor executor,
                               std::shared_ptr<const KubeClientContext> context)
    : impl_(std::make_unique<Impl>()) {
  impl_->executor = std::move(executor);
  impl_->context = std::move(context);
}

KubeConnection::~KubeConnection() {
  impl_->close();
}

void KubeConnection::close() {
  impl_->close();
}

asio::awaitable<KubeResponse> KubeConnection::request(HttpMethod method, std::string target,
                                                      std::string body,
                                                      std::string_view content_type,
                                                      std::chrono::milliseconds timeout) {
  Impl& self = *impl_;
  http::request<http::string_body> request{verb_of(method), target, 11};
  KubeResponse response;
  if (std::string error = self.prepare(request); !error.empty()) {
    response.error = std::move(error);
    co_return response;
  }
  if (!body.empty()) {
    request.set(http::field::content_type, content_type);
    request.body() = std::move(body);
  }
  request.prepare_payload();
  // A kept-alive connection may have been closed by the server meanwhile: one more try.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = self.open() && !self.stream;
    if (!reused) {
      if (std::string error = co_await self.connect(timeout); !error.empty()) {
        response.error = std::move(error);
        co_return response;
      }
    }
    const auto write_ec = co_await self.write(request, timeout);
    http::response_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    boost::system::error_code read_ec;
    if (!write_ec) {
      std::tie(read_ec, std::ignore) = co_await self.on_stream(
          [&](auto& s) { return http::async_read(s, self.buffer, parser, kTuple); });
    }
    const auto ec = write_ec ? write_ec : read_ec;
    if (ec) {
      self.close();
      if (reused && is_stale_error(ec) && !parser.got_some()) continue;
      response.error = "request " + target + ": " + ec.message();
      co_return response;
    }
    auto message = parser.release();
    response.status = message.result_int();
    response.body = std::move(message.body());
    if (!message.keep_alive()) self.close();
    co_return response;
  }
  co_return response;
}

asio::awaitable<KubeResponse> KubeConnection::open_stream(std::string target,
                                                          std::chrono::milliseconds timeout) {
  Impl& self = *impl_;
  KubeResponse response;
  http::request<http::string_body> request{http::verb::get, target, 11};
  if (std::string error = self.prepare(request); !error.empty()) {
    response.error = std::move(error);
    co_return response;
  }
  if (std::string error = co_await self.connect(timeout); !error.empty()) {
    response.error = std::move(error);
    co_return response;
  }
  if (const auto write_ec = co_await self.write(request, timeout)) {
    self.close();
    response.error = "watch " + target + ": " + write_ec.message();
    co_return response;
  }
  self.stream.emplace();
  self.stream->header_limit(kHeaderLimit);
  self.stream->body_limit(boost::none);  // a watch body ends when the watch does
  auto [read_ec, read] = co_await self.on_stream(
      [&](auto& s) { return http::async_read_header(s, self.buffer, *self.stream, kTuple); });
  if (read_ec) {
    self.close();
    response.error = "watch " + target + ": " + read_ec.message();
    co_return response;
  }
  response.status = self.stream->get().result_int();
  self.body_done = self.stream->is_done();
  if (response.status == 200) co_return response;
  // An error answer: its Status body says why; the connection is not reused.
  while (!self.body_done && response.body.size() < kMaxErrorBody) {
    if (co_await self.read_piece(timeout, response.body)) break;
  }
  self.close();
  co_return response;
}

asio::awaitable<KubeLine> KubeConnection::read_line(std::chrono::milliseconds idle_timeout) {
  Impl& self = *impl_;
  if (!self.stream) co_return KubeLine{LineStatus::kError, "no open stream"};
  for (;;) {
    // Empty lines are keep-alive padding some proxies add between events.
    std::size_t newline;
    while ((newline = self.pending.find('\n')) != std::string::npos) {
      std::string line = self.pending.substr(0, newline);
      self.pending.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) co_return KubeLine{LineStatus::kLine, std::move(line)};
    }
    if (self.pending.size() > kMaxLineBytes) {
      self.close();
      co_return KubeLine{LineStatus::kError, "watch event larger than 16 MiB"};
    }
    if (self.body_done) {
      // A last event without its newline still counts.
      std::string rest = std::move(self.pending);
      self.pending.clear();
      if (!rest.empty()) co_return KubeLine{LineStatus::kLine, std::move(rest)};
      co_return KubeLine{LineStatus::kEnd, {}};
    }
    if (auto ec = co_await self.read_piece(idle_timeout, self.pending)) {
      self.close();
      const std::string reason = ec == beast::error::timeout
                                     ? std::string("no data within the idle timeout")
                                     : ec.message();
      co_return KubeLine{LineStatus::kError, "watch stream: " + reason};
    }
  }
}

}  // namespace wsgate::source
