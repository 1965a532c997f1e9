#pragma once
// Second stage of a WebSocket connection: connect a backend (weighted order, failover, within
// handshakeTimeoutSeconds), forward the upgrade request, relay the answer, and on 101 hand both
// streams to a Tunnel.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>

#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/http/request_checks.hpp"
#include "proxy/routing/snapshot.hpp"
#include "proxy/runtime/worker.hpp"
#include "proxy/websocket/tunnel.hpp"

namespace wsgate::proxy {

struct UpgradeRequest {
  RequestHeader header;
  boost::beast::flat_buffer leftover;  // bytes the client sent after its headers
  SnapshotPtr snapshot;                // pinned for the tunnel's life
  Snapshot::RouteEntry* entry = nullptr;
  std::string client_address;
  std::chrono::steady_clock::time_point started;
  TunnelLease lease;  // the route's (and client's) tunnel slot, reserved by the caller
};

// Runs the handshake and, on success, starts the tunnel. Returns true when the tunnel took
// `client` and `connection` (both moved from then); on failure the lease's slots are given
// back when this returns and the caller keeps the connection.
boost::asio::awaitable<bool> run_upgrade(ProxyContext& ctx, Worker& worker, Stream& client,
                                         ConnectionSlot& connection, UpgradeRequest request);
}  // namespace wsgate::proxy
