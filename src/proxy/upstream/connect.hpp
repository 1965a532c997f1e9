#pragma once
// Connecting to a route's backends: smooth-WRR order, failover to the next backend on a
// failed connect, DNS names resolved per attempt, TLS when the backend asks for it.

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

#include "proxy/core/deadline.hpp"
#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/routing/snapshot.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

struct UpstreamConnection {
  std::unique_ptr<Stream> stream;  // null on failure
  std::size_t backend = 0;         // index into the route's backends
  bool timed_out = false;          // the deadline passed (-> 504), else unreachable (-> 502)
  std::string error;               // why the last attempt failed
};

boost::asio::awaitable<UpstreamConnection> connect_upstream(ProxyContext& ctx, Worker& worker,
                                                            Snapshot::RouteEntry& entry,
                                                            Deadline& deadline);

}  // namespace wsgate::proxy
