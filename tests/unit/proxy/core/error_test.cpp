// ProxyError: every kind has one source, one status, one code label and a reason; a failed
// read or write on a backend becomes a timeout exactly when the deadline had passed.

#include "proxy/core/error.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/_experimental/test/error.hpp>
#include <boost/beast/http/error.hpp>

#include <set>
#include <string>
#include <vector>

namespace wsgate::proxy {
namespace {

namespace http = boost::beast::http;
using Kind = ProxyError::Kind;

struct Expected {
  Kind kind;
  ErrorSource source;
  int status;
  const char* reason_part;  // what the client's body must say (integration tests match on it)
  bool connect_error;
};

// Written out here, independently of the switch statements under test.
const std::vector<Expected> kTable = {
    {Kind::kConnectFailed, ErrorSource::kUpstream, 502, "no backend could be connected", true},
    {Kind::kTlsHandshakeFailed, ErrorSource::kUpstream, 502, "no backend could be connected", true},
    {Kind::kConnectTimeout, ErrorSource::kUpstream, 504, "in time", false},
    {Kind::kUpstreamClosed, ErrorSource::kUpstream, 502, "backend closed the connection", false},
    {Kind::kResponseTimeout, ErrorSource::kUpstream, 504, "in time", false},
    {Kind::kBadResponse, ErrorSource::kUpstream, 502, "not HTTP", false},
    {Kind::kBadUpgradeAnswer, ErrorSource::kUpstream, 502, "invalid WebSocket handshake", false},
    {Kind::kClientGone, ErrorSource::kDownstream, 499, "client", false},
    {Kind::kInternal, ErrorSource::kInternal, 500, "internal", false},
};

TEST(ProxyError, EachKindMapsToOneSourceStatusLabelAndReason) {
  std::set<std::string> names;
  for (const auto& expected : kTable) {
    const ProxyError error(expected.kind);
    SCOPED_TRACE(std::string(to_string(expected.kind)));
    EXPECT_EQ(error.kind(), expected.kind);
    EXPECT_EQ(error.source(), expected.source);
    EXPECT_EQ(error.status(), expected.status);
    // The label is what count_handshake / count_http_request write for the same status.
    EXPECT_EQ(error.code_label(), std::to_string(expected.status));
    EXPECT_NE(error.reason().find(expected.reason_part), std::string::npos) << error.reason();
    EXPECT_EQ(error.counts_as_connect_error(), expected.connect_error);
    EXPECT_TRUE(names.insert(std::string(to_string(expected.kind))).second) << "name repeated";
  }
  EXPECT_EQ(to_string(ErrorSource::kDownstream), "downstream");
  EXPECT_EQ(to_string(ErrorSource::kUpstream), "upstream");
  EXPECT_EQ(to_string(ErrorSource::kInternal), "internal");
}

TEST(ProxyError, TheListCoversEveryKindInOrder) {
  // The table above names each kind once, and info() finds each at its own place.
  ASSERT_EQ(kErrorKinds.size(), kTable.size());
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(kTable[i].kind), i);
    EXPECT_EQ(&info(kTable[i].kind), &kErrorKinds[i]);
  }
  static_assert(info(Kind::kResponseTimeout).status == 504);
  static_assert(info(Kind::kBadResponse).code_label == "502");
  static_assert(info(Kind::kClientGone).source == ErrorSource::kDownstream);
}

TEST(ProxyError, WriteFailureIsATimeoutOnlyAfterTheDeadline) {
  const auto reset = make_error_code(boost::asio::error::connection_reset);
  EXPECT_EQ(ProxyError::upstream_write(reset, false).kind(), Kind::kUpstreamClosed);
  EXPECT_EQ(ProxyError::upstream_write(reset, false).status(), 502);
  // The deadline closes the stream: the write then fails with whatever the close caused.
  const auto aborted = make_error_code(boost::asio::error::operation_aborted);
  EXPECT_EQ(ProxyError::upstream_write(aborted, true).kind(), Kind::kResponseTimeout);
  EXPECT_EQ(ProxyError::upstream_write(aborted, true).status(), 504);
  EXPECT_EQ(ProxyError::upstream_write(reset, false).cause(), reset);
}

TEST(ProxyError, ReadFailureTellsGarbageFromAClose) {
  // Bytes that are not HTTP.
  for (const auto e : {http::error::bad_version, http::error::bad_status, http::error::bad_field,
                       http::error::header_limit}) {
    const auto error = ProxyError::upstream_read(make_error_code(e), false);
    EXPECT_EQ(error.kind(), Kind::kBadResponse) << make_error_code(e).message();
    EXPECT_EQ(error.status(), 502);
    // The parser's reason reaches the client's body.
    EXPECT_NE(error.reason().find(make_error_code(e).message()), std::string::npos);
  }
  // The backend went away before a whole header: closed, not garbage.
  for (const auto ec :
       {make_error_code(http::error::end_of_stream), make_error_code(http::error::partial_message),
        make_error_code(boost::asio::error::connection_reset),
        make_error_code(boost::asio::error::eof),
        make_error_code(boost::beast::test::error::test_failure)}) {
    const auto error = ProxyError::upstream_read(ec, false);
    EXPECT_EQ(error.kind(), Kind::kUpstreamClosed) << ec.message();
    EXPECT_EQ(error.status(), 502);
  }
  // Whatever the error, past the deadline it is the backend's silence.
  EXPECT_EQ(ProxyError::upstream_read(make_error_code(http::error::bad_version), true).kind(),
            Kind::kResponseTimeout);
  EXPECT_EQ(ProxyError::upstream_read(make_error_code(boost::asio::error::operation_aborted), true)
                .status(),
            504);
}

TEST(ProxyError, DescribeAddsTheCauseOrTheDetailForTheLog) {
  const ProxyError tls(Kind::kTlsHandshakeFailed, {}, "certificate verification failed (a.test)");
  EXPECT_EQ(tls.detail(), "certificate verification failed (a.test)");
  EXPECT_NE(tls.describe().find("certificate verification failed (a.test)"), std::string::npos);
  // The detail stays out of what the client reads.
  EXPECT_EQ(tls.reason().find("a.test"), std::string::npos);

  const auto refused = make_error_code(boost::asio::error::connection_refused);
  const ProxyError connect(Kind::kConnectFailed, refused);
  EXPECT_NE(connect.describe().find(refused.message()), std::string::npos);
  EXPECT_EQ(connect.reason(), "no backend could be connected");

  // A bad answer's cause is in the reason already, and not twice in the log.
  const auto bad = make_error_code(http::error::bad_version);
  const std::string line = ProxyError(Kind::kBadResponse, bad).describe();
  EXPECT_EQ(line.find(bad.message()), line.rfind(bad.message()));
}

}  // namespace
}  // namespace wsgate::proxy
