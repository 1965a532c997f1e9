#pragma once
// An open WebSocket tunnel: two pumps (client->backend, backend->client) on one executor, each
// read -> write -> read so a slow reader stalls its writer (backpressure) with one bounded
// buffer, taken from the worker's pool only while bytes are in flight. A FrameTracker per
// direction lets the proxy close both sides with 1001 at a frame boundary (drain, idle timeout).

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "proxy/proxy_context.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/stream.hpp"
#include "proxy/worker.hpp"

namespace wsgate::proxy {

struct TunnelParams {
  SnapshotPtr snapshot;  // pinned: the route below lives in it
  Snapshot::RouteEntry* entry;
  // Bytes already forwarded during the handshake (frames sent right after the headers):
  // the trackers must see them to stay aligned with frame boundaries.
  std::span<const std::uint8_t> client_preamble;
  std::span<const std::uint8_t> backend_preamble;
};

// Runs until both directions are finished; closes both streams.
boost::asio::awaitable<void> run_tunnel(ProxyContext& ctx, Worker& worker, Stream& client,
                                        Stream& backend, TunnelParams params);

}  // namespace wsgate::proxy
