#pragma once
// An open WebSocket tunnel. After the handshake the HTTP session hands it both streams and
// goes away; the tunnel then owns itself (one heap object per tunnel, listed by its worker)
// and deletes itself when both directions are finished.
//
// Each direction is read -> write -> read, so a slow reader stalls its writer (backpressure).
// It is driven by plain completion handlers rather than coroutines: an idle tunnel then holds
// its object, two parked reads and one timer wait, and no coroutine frames. A parked read on a
// plain socket lands in a small buffer inside the tunnel (a readiness-only wait would cost an
// epoll_ctl per message); bytes beyond it are read into a pooled buffer taken only while they
// are in flight. A FrameTracker per direction lets the proxy close both sides with 1001 at a
// frame boundary (drain, idle timeout, ping failure, lifetime).

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/routing/snapshot.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

// What a tunnel (or a handshake that will become one) holds of the limits shared by all
// workers; given back by the destructor, however the tunnel or handshake ends.
class TunnelLease {
 public:
  TunnelLease() = default;
  TunnelLease(TunnelLease&& other) noexcept { *this = std::move(other); }
  TunnelLease& operator=(TunnelLease&& other) noexcept;
  TunnelLease(const TunnelLease&) = delete;
  TunnelLease& operator=(const TunnelLease&) = delete;
  ~TunnelLease() { release(); }

  // RouteRuntime::tunnels was incremented for this tunnel (the route's maxTunnels).
  void hold_route_slot(RouteRuntime& runtime) { route_ = &runtime; }
  // A --max-tunnels-per-client slot was reserved for `client`.
  void hold_client_slot(AdmissionLimits& limits, std::string client);
  // The client connection's --max-connections place moves here from its HTTP session.
  void hold_connection(ConnectionSlot connection) { connection_ = std::move(connection); }

 private:
  void release();
  RouteRuntime* route_ = nullptr;
  AdmissionLimits* client_limits_ = nullptr;
  std::string client_;
  ConnectionSlot connection_;
};

struct TunnelParams {
  SnapshotPtr snapshot;  // pinned: the route below lives in it
  Snapshot::RouteEntry* entry = nullptr;
  // Bytes already forwarded during the handshake (frames sent right after the headers):
  // the trackers must see them to stay aligned with frame boundaries. Read only by
  // start_tunnel.
  std::span<const std::uint8_t> client_preamble;
  std::span<const std::uint8_t> backend_preamble;
  TunnelLease lease;
};

// Starts the tunnel on `worker` (its thread); it closes both streams when it ends.
void start_tunnel(ProxyContext& ctx, Worker& worker, Stream client, Stream backend,
                  TunnelParams params);

}  // namespace wsgate::proxy
