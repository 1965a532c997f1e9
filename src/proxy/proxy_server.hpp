#pragma once
// The whole data plane process: workers, listeners, route source, snapshot publishing, admin
// endpoints, signals and the SIGTERM drain.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wsgate::proxy {

struct TlsCertPair {
  std::string cert_file;
  std::string key_file;
};

struct ProxyServerOptions {
  std::string routes_dir;     // --routes
  std::string control_plane;  // --control-plane HOST:PORT
  std::string node_id;        // --node-id
  // --grpc-tls-cert/--grpc-tls-key: client certificate for mutual TLS; --grpc-tls-ca: trust for
  // the controller's certificate (any of them set = TLS on the control-plane channel).
  std::string grpc_tls_cert;
  std::string grpc_tls_key;
  std::string grpc_tls_ca;
  std::vector<std::string> listen;      // --listen (repeatable)
  std::vector<std::string> tls_listen;  // --tls-listen (repeatable)
  std::vector<TlsCertPair> tls_certs;   // --tls-cert/--tls-key pairs
  std::string admin = "127.0.0.1:9901";
  std::chrono::seconds drain{30};
  std::size_t workers = 1;
  std::chrono::milliseconds client_header_timeout{std::chrono::seconds(10)};
  std::size_t max_connections = 10000;       // --max-connections; 0 = unlimited
  std::uint32_t max_tunnels_per_client = 0;  // --max-tunnels-per-client; 0 = unlimited
};

class ProxyServer {
 public:
  explicit ProxyServer(ProxyServerOptions options);
  ~ProxyServer();

  // Serves until SIGTERM/SIGINT, drains, and returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::proxy
