#include "xds/discovery_client.hpp"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "common/backoff.hpp"
#include "config/route_proto.hpp"
#include "wsgate/v1/discovery.grpc.pb.h"

namespace wsgate::xds {
namespace {

constexpr int kMaxSnapshotBytes = 64 * 1024 * 1024;

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "unknown";
  return name;
}

std::string read_pem(const std::string& path, const char* flag) {
  if (path.empty()) return {};
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty())
    throw std::runtime_error(std::string(flag) + ": cannot read " + path);
  return text.str();
}

}  // namespace

SnapshotApplier::SnapshotApplier(wsgate::v1::Node node, Apply apply, Reject reject)
    : node_(std::move(node)), apply_(std::move(apply)), reject_(std::move(reject)) {}

wsgate::v1::DiscoveryRequest SnapshotApplier::first_request() const {
  wsgate::v1::DiscoveryRequest request;
  *request.mutable_node() = node_;
  request.set_version_info(applied_version_);
  return request;
}

wsgate::v1::DiscoveryRequest SnapshotApplier::on_response(
    const wsgate::v1::DiscoveryResponse& response) {
  std::string error;
  auto decoded = config::from_proto(response.routes());
  if (auto* bad = std::get_if<config::ConfigError>(&decoded)) {
    error = bad->message;
    reject_(*bad);
  } else {
    auto& table = std::get<config::RouteTable>(decoded);
    if (table.version() != response.version_info()) {
      // The version is the content's hash: a mismatch means the two ends disagree on the
      // content (a damaged or foreign message), so nothing of it is trusted.
      error = "control plane: version " + response.version_info() +
              " does not match its content (which hashes to " + table.version() + ")";
      reject_(config::ConfigError{error});
    } else if (table.version() != applied_version_) {
      const std::string version = table.version();
      error = apply_(std::move(table));
      if (error.empty()) applied_version_ = version;
    }
  }
  wsgate::v1::DiscoveryRequest request = first_request();
  request.set_response_nonce(response.nonce());
  if (!error.empty()) request.mutable_error_detail()->set_message(error);
  return request;
}

DiscoveryClient::DiscoveryClient(DiscoveryClientOptions options, SnapshotApplier::Apply apply,
                                 SnapshotApplier::Reject reject, metrics::Registry& registry)
    : options_(std::move(options)),
      applier_(
          [this] {
            wsgate::v1::Node node;
            node.set_id(options_.node_id.empty() ? host_name() : options_.node_id);
            node.set_address(options_.node_address);
            return node;
          }(),
          std::move(apply), std::move(reject)),
      connected_(registry
                     .gauge("wsgate_control_plane_connected",
                            "1 while the route stream to wsgate-controller is open.", {})
                     .with({})) {}

DiscoveryClient::~DiscoveryClient() {
  stop();
}

void DiscoveryClient::start() {
  if (!options_.tls_cert.empty() != !options_.tls_key.empty())
    throw std::runtime_error("--grpc-tls-cert and --grpc-tls-key go together");
  root_certs_ = read_pem(options_.tls_ca, "--grpc-tls-ca");
  cert_chain_ = read_pem(options_.tls_cert, "--grpc-tls-cert");
  private_key_ = read_pem(options_.tls_key, "--grpc-tls-key");
  thread_ = std::thread([this] { run(); });
}

void DiscoveryClient::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool DiscoveryClient::wait(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, delay, [this] { return stopping_; });
}

void DiscoveryClient::run() {
  const bool tls = !root_certs_.empty() || !cert_chain_.empty();
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = root_certs_;
    ssl.pem_private_key = private_key_;
    ssl.pem_cert_chain = cert_chain_;
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxSnapshotBytes);
  // Find a dead controller (or a dead path to it) within ~15 s, even when no route changes.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A fresh channel per attempt with its own subchannel, so the only retry pacing is ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);

  Backoff backoff(options_.backoff_initial, options_.backoff_max);
  while (true) {
    auto channel = grpc::CreateCustomChannel(options_.target, credentials, args);
    auto stub = wsgate::v1::RouteDiscovery::NewStub(channel);
    grpc::ClientContext context;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      context_ = &context;
    }
    auto stream = stub->StreamRoutes(&context);
    bool opened = false;
    if (stream->Write(applier_.first_request())) {
      // The controller sends its headers as soon as it takes the stream, before any snapshot
      // (it sends none while this proxy already runs the current version).
      stream->WaitForInitialMetadata();
      opened = true;
      connected_.set(1);
      backoff.reset();
      spdlog::info("control plane {}: stream open, running version {}", options_.target,
                   applier_.applied_version().empty() ? "none" : applier_.applied_version());
      wsgate::v1::DiscoveryResponse response;
      while (stream->Read(&response)) {
        const auto request = applier_.on_response(response);
        if (request.has_error_detail()) {
          spdlog::warn("control plane: NACK version {} (keeping {}): {}", response.version_info(),
                       request.version_info().empty() ? "none" : request.version_info(),
                       request.error_detail().message());
        }
        if (!stream->Write(request)) break;
      }
    }
    connected_.set(0);
    const grpc::Status status = stream->Finish();
    {
      std::lock_guard lock(mutex_);
      context_ = nullptr;
      if (stopping_) return;
    }
    const auto delay = backoff.next();
    spdlog::warn("control plane {}: {} ({}: {}); keeping version {}, retrying in {} ms",
                 options_.target, opened ? "stream ended" : "cannot open stream",
                 static_cast<int>(status.error_code()), status.error_message(),
                 applier_.applied_version().empty() ? "none" : applier_.applied_version(),
                 delay.count());
    if (!wait(delay)) return;
  }
}

}  // namespace wsgate::xds
