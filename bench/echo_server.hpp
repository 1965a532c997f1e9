#pragma once
// The bench's fast WebSocket echo backend (ws and, for the direct wss baseline, wss).

#include <string>

namespace wsgate::bench {

struct ServerOptions {
  std::string listen;      // host:port for ws (port 0: any free port, logged)
  std::string tls_listen;  // host:port for wss
  std::string tls_cert;
  std::string tls_key;
};

// Serves until SIGINT/SIGTERM; returns the process exit code.
int run_echo_server(const ServerOptions& options);

}  // namespace wsgate::bench
