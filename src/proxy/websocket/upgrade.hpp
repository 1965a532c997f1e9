#pragma once
// Second stage of a WebSocket connection: connect a backend (weighted order, failover, within
// handshakeTimeoutSeconds), forward the upgrade request, relay the answer, and on 101 hand both
// streams to a Tunnel.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "proxy/core/deadline.hpp"
#include "proxy/core/error.hpp"
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

// The backend's side of a handshake and what the client got from it.
struct UpgradeExchange {
  int status = 0;                   // what the client got, as counted (499: nothing written)
  std::optional<ProxyError> error;  // set when the proxy answered instead of the backend
  std::unique_ptr<Stream> backend;  // with 101: the tunnel's backend
  // With 101: the bytes each side sent right behind its headers (already relayed).
  std::vector<std::uint8_t> client_preamble;
  std::vector<std::uint8_t> backend_preamble;
};

// The exchange with a backend already connected, before `deadline`: forwards the upgrade
// request, reads the answer and relays it (a 101 checked and rewritten, any other status as
// is). Counts the handshake (a 101 with its duration and the preamble bytes). Unless the
// answer was a 101 relayed, the backend is gone and the client's side shut down on return.
boost::asio::awaitable<UpgradeExchange> exchange_upgrade(ProxyContext& ctx, Stream& client,
                                                         std::unique_ptr<Stream> backend,
                                                         UpgradeRequest& request,
                                                         Deadline& deadline);

// Runs the handshake and, on success, starts the tunnel. Returns true when the tunnel took
// `client` and `connection` (both moved from then); on failure the lease's slots are given
// back when this returns and the caller keeps the connection.
boost::asio::awaitable<bool> run_upgrade(ProxyContext& ctx, Worker& worker, Stream& client,
                                         ConnectionSlot& connection, UpgradeRequest request);
}  // namespace wsgate::proxy
