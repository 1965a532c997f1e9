#pragma once
// The wsgate-controller process: route directory watch -> snapshot cache -> gRPC discovery
// stream to every proxy, with admin endpoints (/metrics /healthz /readyz /config /proxies).

#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>

namespace wsgate::controlplane {

struct ControllerOptions {
  std::string routes_dir;      // --routes
  bool kubernetes = false;     // --kubernetes: WebSocketRoute custom resources
  std::string kubeconfig;      // --kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)
  std::string kube_namespace;  // --namespace (default: all namespaces)
  std::string grpc_listen = "0.0.0.0:18000";  // --grpc-listen
  std::string admin = "127.0.0.1:9902";       // --admin
  // --grpc-tls-cert/--grpc-tls-key: serve TLS; with --grpc-tls-ca also require and verify a
  // client certificate (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
};

// The gRPC server credentials the TLS options ask for (insecure when none are set). Throws
// std::runtime_error for an incomplete set or an unreadable file.
std::shared_ptr<grpc::ServerCredentials> grpc_server_credentials(const ControllerOptions& options);

class Controller {
 public:
  explicit Controller(ControllerOptions options);
  ~Controller();

  // Serves until SIGTERM/SIGINT (SIGHUP re-reads the routes) and returns the exit code.
  // Throws std::runtime_error when an address cannot be bound or a TLS file cannot be read.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::controlplane
