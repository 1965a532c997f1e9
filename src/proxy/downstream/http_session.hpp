#pragma once
// First stage of every client connection: reads requests (keep-alive), answers what the proxy
// decides itself (4xx/5xx), then hands a WebSocket upgrade to the upgrade stage or a plain
// request to HTTP forwarding.

#include <boost/asio/ip/tcp.hpp>

#include "proxy/core/proxy_context.hpp"
#include "proxy/core/stream.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {

// Starts serving an accepted plain connection on `worker` (call on the worker's thread): it
// counts against --max-connections here, and past the limit gets a 503 and is closed.
void start_http_session(ProxyContext& ctx, Worker& worker, Stream stream,
                        const tcp::endpoint& peer);

// The same for a connection that already holds its --max-connections place (a TLS connection
// takes it at accept, before its handshake, and arrives here with the handshake done).
void start_admitted_http_session(ProxyContext& ctx, Worker& worker, Stream stream,
                                 const tcp::endpoint& peer, ConnectionSlot connection);

}  // namespace wsgate::proxy
