#pragma once
// Renders a RouteTable as nginx configuration (a file to include inside http {}) that keeps
// nginx's WebSocket proxying as close to wsgate's handshake rules as nginx can express.

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "config/route.hpp"

namespace wsgate::controlplane {

struct NginxRenderOptions {
  // nginx `listen` parameters for every server block ("80", "127.0.0.1:8080", "[::]:80").
  std::vector<std::string> listen{"80"};
  // Trusted CAs for tls backends without caFile: wsgate verifies against the system store,
  // and nginx needs that store as a file.
  std::string system_ca = "/etc/ssl/certs/ca-certificates.crt";
  std::uint32_t upstream_keepalive = 32;  // idle keep-alive connections per upstream
};

// What a route needs that nginx cannot express ("route default/chat: spec.backends: ...").
struct RenderError {
  std::string message;
};

// nginx has no "never" for timeouts: idleTimeoutSeconds 0 renders as this many seconds.
inline constexpr std::uint32_t kNginxNoIdleTimeoutSeconds = 86400;

std::variant<std::string, RenderError> render_nginx(const config::RouteTable& table,
                                                    const NginxRenderOptions& options);

}  // namespace wsgate::controlplane
