#pragma once
// A data-path failure, tagged by where it came from (Pingora's ErrorSource): the one place that
// decides which status the client gets (502 or 504, 499), the reason it reads, and the code
// label the handshake and request counters get.

#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace wsgate::proxy {

enum class ErrorSource : std::uint8_t {
  kDownstream,  // the client
  kUpstream,    // the backend
  kInternal,    // the proxy itself
};

// Every kind with its name (for logs), source, status and the reason the client reads (no
// backend address, nothing secret), once. The status is also the `code` label of
// wsgate_handshakes_total and wsgate_http_requests_total. 499 (nginx's "client closed
// request") is never written, only counted.
// KIND(enumerator, name, source, status, reason)
#define WSGATE_PROXY_ERROR_KINDS(KIND)                                                         \
  /* refused, unreachable, name not resolved */                                                \
  KIND(kConnectFailed, "connect_failed", kUpstream, 502, "no backend could be connected")      \
  /* certificate, name or protocol (also a CA bundle that does not load) */                    \
  KIND(kTlsHandshakeFailed, "tls_handshake_failed", kUpstream, 502,                            \
       "no backend could be connected (TLS handshake failed)")                                 \
  /* the handshake deadline passed before a backend was connected */                           \
  KIND(kConnectTimeout, "connect_timeout", kUpstream, 504, "backend did not answer in time")   \
  /* reset or closed while the request or its answer was in flight */                          \
  KIND(kUpstreamClosed, "upstream_closed", kUpstream, 502, "backend closed the connection")    \
  /* connected, but the deadline passed before the answer's header */                          \
  KIND(kResponseTimeout, "response_timeout", kUpstream, 504, "backend did not answer in time") \
  /* the answer is not HTTP (or its header is too large); the parser's reason is appended */   \
  KIND(kBadResponse, "bad_response", kUpstream, 502, "backend answer was not HTTP")            \
  /* a 101 without "Upgrade: websocket" or with a wrong accept key */                          \
  KIND(kBadUpgradeAnswer, "bad_upgrade_answer", kUpstream, 502,                                \
       "backend sent an invalid WebSocket handshake answer")                                   \
  /* the client went away before it could be answered */                                       \
  KIND(kClientGone, "client_gone", kDownstream, 499, "client closed the connection")           \
  KIND(kInternal, "internal", kInternal, 500, "internal error")

enum class ErrorKind : std::uint8_t {
#define WSGATE_ERROR_KIND_ENUMERATOR(enumerator, ...) enumerator,
  WSGATE_PROXY_ERROR_KINDS(WSGATE_ERROR_KIND_ENUMERATOR)
#undef WSGATE_ERROR_KIND_ENUMERATOR
};

struct ErrorKindInfo {
  std::string_view name;
  ErrorSource source;
  int status;
  std::string_view code_label;  // the status as the metric label
  std::string_view reason;
};

inline constexpr std::array kErrorKinds = {
#define WSGATE_ERROR_KIND_INFO(enumerator, name, source, status, reason) \
  ErrorKindInfo{name, ErrorSource::source, status, #status, reason},
    WSGATE_PROXY_ERROR_KINDS(WSGATE_ERROR_KIND_INFO)
#undef WSGATE_ERROR_KIND_INFO
};

constexpr const ErrorKindInfo& info(ErrorKind kind) {
  return kErrorKinds[static_cast<std::size_t>(kind)];
}

class ProxyError {
 public:
  using Kind = ErrorKind;

  explicit ProxyError(Kind kind, boost::system::error_code cause = {}, std::string detail = {})
      : kind_(kind), cause_(cause), detail_(std::move(detail)) {}

  // After a read or write on a connected backend failed: a timeout when the deadline closed the
  // stream, else what `ec` says (a parse error is a bad answer, anything else a closed one).
  static ProxyError upstream_write(const boost::system::error_code& ec, bool deadline_expired);
  static ProxyError upstream_read(const boost::system::error_code& ec, bool deadline_expired);

  Kind kind() const { return kind_; }
  ErrorSource source() const { return info(kind_).source; }
  const boost::system::error_code& cause() const { return cause_; }
  const std::string& detail() const { return detail_; }

  int status() const { return info(kind_).status; }
  std::string_view code_label() const { return info(kind_).code_label; }
  // A failed connection attempt that counts in wsgate_upstream_connect_errors_total.
  bool counts_as_connect_error() const {
    return kind_ == Kind::kConnectFailed || kind_ == Kind::kTlsHandshakeFailed;
  }
  // The plain-text body's reason.
  std::string reason() const;
  // For the log: the reason with the detail, else the cause.
  std::string describe() const;

 private:
  Kind kind_;
  boost::system::error_code cause_;
  std::string detail_;  // a reason with more than an error_code holds (TLS verification)
};

inline std::string_view to_string(ErrorSource source) {
  constexpr std::array<std::string_view, 3> kNames = {"downstream", "upstream", "internal"};
  return kNames[static_cast<std::size_t>(source)];
}
inline std::string_view to_string(ErrorKind kind) {
  return info(kind).name;
}

}  // namespace wsgate::proxy
