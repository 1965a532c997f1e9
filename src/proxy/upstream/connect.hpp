#pragma once
// Connecting to a route's backends: smooth-WRR order, failover to the next backend on a
// failed connect, DNS names resolved per attempt, TLS when the backend asks for it.

#include <boost/asio/awaitable.hpp>

#include <memory>

#include "proxy/core/deadline.hpp"
#include "proxy/core/error.hpp"
#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/routing/snapshot.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

struct UpstreamConnection {
  std::unique_ptr<Stream> stream;  // null on failure
  std::size_t backend = 0;         // index into the route's backends
  // Without a stream: kConnectTimeout when the deadline passed, else why the last attempt
  // failed (kConnectFailed, kTlsHandshakeFailed).
  ProxyError error{ProxyError::Kind::kConnectFailed};
};

boost::asio::awaitable<UpstreamConnection> connect_upstream(ProxyContext& ctx, Worker& worker,
                                                            Snapshot::RouteEntry& entry,
                                                            Deadline& deadline);

}  // namespace wsgate::proxy
