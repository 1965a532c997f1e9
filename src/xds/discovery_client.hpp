#pragma once
// The proxy's side of the route stream from wsgate-controller (xDS state-of-the-world): applies
// each snapshot through the same swap as file routes, ACKs or NACKs it, and reconnects with
// exponential backoff and jitter while the last good snapshot keeps serving.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/route.hpp"
#include "config/route_yaml.hpp"
#include "metrics/registry.hpp"
#include "wsgate/v1/discovery.pb.h"

namespace grpc {
class ClientContext;
}

namespace wsgate::xds {

struct DiscoveryClientOptions {
  std::string target;        // --control-plane HOST:PORT
  std::string node_id;       // --node-id; "" = this host's name
  std::string node_address;  // what this proxy listens on, shown in the controller's /proxies
  // --grpc-tls-cert/--grpc-tls-key/--grpc-tls-ca: all empty = plaintext; the CA alone = TLS
  // verifying the controller; with cert and key the proxy also proves itself (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{10000};
};

// The ACK/NACK rule of one proxy, apart from the socket: decode, check, apply, answer.
class SnapshotApplier {
 public:
  // Applies a decoded, valid table; returns "" when it is in force, else why it was refused.
  using Apply = std::function<std::string(config::RouteTable)>;
  // Told about a response that could not even be decoded (it is NACKed).
  using Reject = std::function<void(const config::ConfigError&)>;

  SnapshotApplier(wsgate::v1::Node node, Apply apply, Reject reject);

  // The request that opens a stream: the node and the version in force ("" before the first).
  wsgate::v1::DiscoveryRequest first_request() const;
  // Decodes, checks and applies one response and returns its answer: an ACK naming the
  // response's version, or a NACK naming the version still in force, with the reason.
  wsgate::v1::DiscoveryRequest on_response(const wsgate::v1::DiscoveryResponse& response);

  const std::string& applied_version() const { return applied_version_; }

 private:
  wsgate::v1::Node node_;
  Apply apply_;
  Reject reject_;
  std::string applied_version_;
};

class DiscoveryClient {
 public:
  // Registers wsgate_control_plane_connected in `registry`.
  DiscoveryClient(DiscoveryClientOptions options, SnapshotApplier::Apply apply,
                  SnapshotApplier::Reject reject, metrics::Registry& registry);
  ~DiscoveryClient();  // stops
  DiscoveryClient(const DiscoveryClient&) = delete;
  DiscoveryClient& operator=(const DiscoveryClient&) = delete;

  // Starts the stream thread. Throws std::runtime_error when a TLS file cannot be read.
  void start();
  // Cancels the stream and joins the thread. Idempotent.
  void stop();

 private:
  void run();
  // Sleeps up to `delay`; false when stop() was called meanwhile.
  bool wait(std::chrono::milliseconds delay);

  DiscoveryClientOptions options_;
  SnapshotApplier applier_;
  metrics::Gauge& connected_;
  std::string root_certs_, private_key_, cert_chain_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  grpc::ClientContext* context_ = nullptr;  // the open stream's, for stop() to cancel
  std::thread thread_;
};

}  // namespace wsgate::xds
