// A real AdminServer on 127.0.0.1:0, driven by a plain POSIX socket client that reads the
// bytes on the wire (so the checks do not share Beast's view of HTTP with the server).

#include "admin/admin_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace wsgate::admin {
namespace {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// Blocking client with a receive timeout, so a server that never answers fails the test
// instead of hanging it.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("connect");
    }
  }
  ~RawClient() { close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send_raw(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send");
      sent += static_cast<std::size_t>(n);
    }
  }

  // One response; nullopt when the connection ends (or times out) before it is complete.
  // `head`: the answer to a HEAD request carries Content-Length but no body.
  std::optional<RawResponse> read_response(bool head = false) {
    std::size_t end = std::string::npos;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!receive_more()) return std::nullopt;
    }
    RawResponse res;
    std::istringstream lines(pending_.substr(0, end));
    std::string line;
    std::getline(lines, line);
    if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return std::nullopt;
    res.status = std::stoi(line.substr(9, 3));
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      res.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    pending_.erase(0, end + 4);
    std::size_t length = 0;
    if (!head && res.headers.count("content-length")) {
      length = std::stoul(res.headers["content-length"]);
    }
    while (pending_.size() < length) {
      if (!receive_more()) return std::nullopt;
    }
    res.body = pending_.substr(0, length);
    pending_.erase(0, length);
    return res;
  }

  // Sends one request and reads its response; status 0 when none came.
  RawResponse exchange(const std::string& request, bool head = false) {
    send_raw(request);
    return read_response(head).value_or(RawResponse{});
  }

  // True when the server closes the connection (no further bytes) before the receive
  // timeout; false on timeout or on unexpected data.
  bool wait_closed() {
    if (!pending_.empty()) return false;
    char byte;
    for (int attempts = 0; attempts < 2; ++attempts) {  // EINTR at most once
      ssize_t n = recv(fd_, &byte, 1, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      if (n > 0 || errno == EAGAIN || errno == EWOULDBLOCK) return false;
    }
    return false;
  }

 private:
  bool receive_more() {
    char buffer[4096];
    ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    pending_.append(buffer, static_cast<std::size_t>(n));
    return pending_.size() < (1u << 20);
  }

  int fd_ = -1;
  std::string pending_;
};

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: admin\r\n" + extra + "\r\n";
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.handle("/metrics", [] {
      return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", "up 1\n"};
    });
    server_.handle("/readyz", [] { return AdminResponse{503, "text/plain", "draining\n"}; });
    server_.handle("/counter", [this] {
      return AdminResponse{200, "text/plain", std::to_string(++calls_)};
    });
    server_.handle("/throws", []() -> AdminResponse { throw std::runtime_error("boom"); });
  }

  std::uint16_t start() {
    port_ = server_.start();
    return port_;
  }

  std::atomic<int> calls_{0};  // before server_: outlives the admin thread
  AdminServer server_{"127.0.0.1:0"};
  std::uint16_t port_ = 0;
};

TEST_F(AdminServerTest, GetReturnsHandlerResponseWithTypeAndLength) {
  RawClient client(start());
  RawResponse res = client.exchange(get("/metrics"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res.headers["content-length"], "5");
  EXPECT_EQ(res.body, "up 1\n");
}

TEST_F(AdminServerTest, HandlerStatusIsPassedThroughAndQueryStringIgnored) {
  RawClient client(start());
  RawResponse res = client.exchange(get("/readyz?verbose=1"));
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.body, "draining\n");
}

TEST_F(AdminServerTest, UnknownPathIs404AndPrefixesDoNotMatch) {
  RawClient client(start());
  for (const char* path : {"/nope", "/metrics/", "/metric", "/"}) {
    RawResponse res = client.exchange(get(path));
    EXPECT_EQ(res.status, 404) << path;
  }
}

TEST_F(AdminServerTest, OtherMethodsAre405WithAllowAndConnectionSurvives) {
  RawClient client(start());
  RawResponse res =
      client.exchange("POST /counter HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.headers["allow"], "GET, HEAD");
  res = client.exchange("DELETE /counter HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(res.status, 405);
  // The POST body was consumed: the next request on the connection is parsed cleanly, and
  // the handler ran for none of the refused ones.
  res = client.exchange(get("/counter"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "1");
}

TEST_F(AdminServerTest, HeadHasGetsHeadersAndNoBody) {
  RawClient client(start());
  RawResponse res = client.exchange("HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n", /*head=*/true);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.headers["content-length"], "5");
  EXPECT_EQ(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  // Had a body been sent, it would now be read as the start of the next response.
  res = client.exchange(get("/readyz"));
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.body, "draining\n");
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  RawClient client(start());
  EXPECT_EQ(client.exchange(get("/counter")).body, "1");
  EXPECT_EQ(client.exchange(get("/counter")).body, "2");
  // Pipelined: two requests in one write, answered in order.
  client.send_raw(get("/counter") + get("/counter"));
  auto third = client.read_response();
  auto fourth = client.read_response();
  ASSERT_TRUE(third && fourth);
  EXPECT_EQ(third->body, "3");
  EXPECT_EQ(fourth->body, "4");
}

TEST_F(AdminServerTest, ConnectionCloseAndHttp10AreHonoured) {
  start();
  RawClient asks_close(port_);
  RawResponse res = asks_close.exchange(get("/metrics", "Connection: close\r\n"));
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(asks_close.wait_closed());

  RawClient old_client(port_);
  res = old_client.exchange("GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(res.body, "up 1\n");
  EXPECT_TRUE(old_client.wait_closed());
}

TEST_F(AdminServerTest, OversizedHeaderGets431AndClose) {
  RawClient client(start());
  RawResponse res = client.exchange(get("/metrics", "X-Big: " + std::string(9000, 'a') + "\r\n"));
  EXPECT_EQ(res.status, 431);
  EXPECT_EQ(res.headers["connection"], "close");
  EXPECT_TRUE(client.wait_closed());

  // Just under the limit is fine.
  RawClient fits(port_);
  res = fits.exchange(get("/metrics", "X-Big: " + std::string(7000, 'a') + "\r\n"));
  EXPECT_EQ(res.status, 200);
}

TEST_F(AdminServerTest, MalformedRequestGets400) {
  RawClient client(start());
  RawResponse res = client.exchange("GET /metrics HTTP/1.1\r\nBad Header Name: x\r\n\r\n");
  EXPECT_EQ(res.status, 400);
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(AdminServerTest, ThrowingHandlerGives500AndServerKeepsServing) {
  RawClient client(start());
  RawResponse res = client.exchange(get("/throws"));
  EXPECT_EQ(res.status, 500);
  res = client.exchange(get("/metrics"));
  EXPECT_EQ(res.status, 200);
}

TEST_F(AdminServerTest, StuckClientIsDisconnectedAndDoesNotBlockOthers) {
  server_.set_read_timeout(std::chrono::milliseconds(300));
  start();
  RawClient stuck(port_);
  stuck.send_raw("GET /metrics HTTP/1.1\r\nHost: a\r\n");  // never finishes its headers
  RawClient idle(port_);                                   // connects and sends nothing

  RawClient other(port_);
  RawResponse res = other.exchange(get("/metrics"));
  EXPECT_EQ(res.status, 200);

  // Closed by the server's timeout, well before the client's own 5 s receive timeout.
  auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(stuck.wait_closed());
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(4));
}

TEST(AdminServerStart, LogsListeningLineWithBoundPort) {
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  logger->set_pattern("%v");
  spdlog::set_default_logger(logger);
  std::uint16_t port = 0;
  {
    AdminServer server("127.0.0.1:0");
    port = server.start();
  }
  spdlog::set_default_logger(previous);
  EXPECT_NE(port, 0);
  EXPECT_NE(captured.str().find("listening (admin) on 127.0.0.1:" + std::to_string(port) + "\n"),
            std::string::npos)
      << captured.str();
}

TEST(AdminServerStart, BindFailureAndBadAddressThrowWithReason) {
  AdminServer first("127.0.0.1:0");
  std::uint16_t port = first.start();
  AdminServer second("127.0.0.1:" + std::to_string(port));
  try {
    second.start();
    FAIL() << "second bind to the same port succeeded";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << error.what();
  }
  AdminServer no_port("127.0.0.1");
  EXPECT_THROW(no_port.start(), std::runtime_error);
  AdminServer bad_port("127.0.0.1:70000");
  EXPECT_THROW(bad_port.start(), std::runtime_error);
}

TEST(AdminServerStart, StopReleasesPortAndIsIdempotent) {
  std::uint16_t port = 0;
  {
    AdminServer server("127.0.0.1:0");
    server.handle("/healthz", [] { return AdminResponse{200, "text/plain", "ok\n"}; });
    port = server.start();
    RawClient open_connection(port);  // an open connection must not keep stop() waiting
    open_connection.send_raw(get("/healthz"));
    ASSERT_TRUE(open_connection.read_response());
    server.stop();
    EXPECT_TRUE(open_connection.wait_closed());
    server.stop();
  }
  AdminServer again("127.0.0.1:" + std::to_string(port));
  again.handle("/healthz", [] { return AdminResponse{200, "text/plain", "again\n"}; });
  EXPECT_EQ(again.start(), port);
  RawClient client(port);
  RawResponse res = client.exchange(get("/healthz"));
  EXPECT_EQ(res.body, "again\n");
}

}  // namespace
}  // namespace wsgate::admin
