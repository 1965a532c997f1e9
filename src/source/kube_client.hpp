#pragma once
// One HTTP/1.1 connection to the Kubernetes API server (TLS verified against the configured
// CA, optional client certificate, bearer token) for the Kubernetes source's coroutines:
// plain requests, and a streamed response body (a watch) read line by line.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "source/kube_config.hpp"

namespace wsgate::source {

// The TLS settings made once from a KubeConfig and shared by its connections.
class KubeClientContext {
 public:
  // Fails (with the reason) on an unusable CA, certificate or key.
  static std::variant<std::shared_ptr<KubeClientContext>, std::string> create(KubeConfig config);
  ~KubeClientContext();
  KubeClientContext(const KubeClientContext&) = delete;
  KubeClientContext& operator=(const KubeClientContext&) = delete;

  const KubeConfig& config() const;

 private:
  KubeClientContext();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend class KubeConnection;
};

enum class HttpMethod { kGet, kPut, kPatch };

struct KubeResponse {
  unsigned status = 0;  // 0 = no HTTP answer; `error` says why
  std::string body;
  std::string error;
};

enum class LineStatus { kLine, kEnd, kError };
struct KubeLine {
  LineStatus status = LineStatus::kEnd;
  std::string text;  // the line without its '\n', or the error
};

// Used by one coroutine at a time, on the executor it was made with.
class KubeConnection {
 public:
  KubeConnection(boost::asio::any_io_executor executor,
                 std::shared_ptr<const KubeClientContext> context);
  ~KubeConnection();
  KubeConnection(const KubeConnection&) = delete;
  KubeConnection& operator=(const KubeConnection&) = delete;

  // One request on the kept-alive connection (connecting first when there is none; a stale
  // kept-alive connection is replaced once). `timeout` bounds connect + exchange.
  boost::asio::awaitable<KubeResponse> request(HttpMethod method, std::string target,
                                               std::string body, std::string_view content_type,
                                               std::chrono::milliseconds timeout);
  // A GET on a fresh connection whose body is a stream. For 200 the body is left for
  // read_line(); for any other status it is read (bounded) into the response.
  boost::asio::awaitable<KubeResponse> open_stream(std::string target,
                                                   std::chrono::milliseconds timeout);
  // The next non-empty line of the streamed body. kEnd when the body ended; kError when the
  // connection failed, no byte came within `idle_timeout`, or a line grew past the limit.
  boost::asio::awaitable<KubeLine> read_line(std::chrono::milliseconds idle_timeout);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::source
