#pragma once
// First stage of every client connection: reads requests (keep-alive), answers what the proxy
// decides itself (4xx/5xx), then hands a WebSocket upgrade to the upgrade stage or a plain
// request to HTTP forwarding.

#include <boost/asio/ip/tcp.hpp>

#include "proxy/proxy_context.hpp"
#include "proxy/stream.hpp"
#include "proxy/worker.hpp"

namespace wsgate::proxy {

// Starts serving an accepted connection on `worker` (call on the worker's thread). For a TLS
// listener the stream's TLS handshake has already completed.
void start_http_session(ProxyContext& ctx, Worker& worker, Stream stream,
                        const tcp::endpoint& peer);

}  // namespace wsgate::proxy
