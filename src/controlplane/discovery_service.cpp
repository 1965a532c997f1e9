#include "controlplane/discovery_service.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <ctime>
#include <map>
#include <tuple>
#include <utility>

namespace wsgate::controlplane {
namespace {

// "ipv4:127.0.0.1:5000" -> "127.0.0.1:5000"; "ipv6:[::1]:5000" -> "[::1]:5000".
std::string peer_address(const std::string& peer) {
  for (const std::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (peer.starts_with(scheme)) return peer.substr(scheme.size());
  }
  return peer;
}

std::string rfc3339(std::chrono::system_clock::time_point when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace

// One proxy's stream. Reactions (reads, writes, done) run on gRPC's threads and pushes on the
// watcher's, so every member is guarded by mutex_. The object deletes itself in OnDone, after
// the service has forgotten it.
class DiscoveryService::Stream final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  Stream(DiscoveryService& service, grpc::CallbackServerContext* context)
      : service_(service),
        peer_(peer_address(context->peer())),
        connected_since_(std::chrono::system_clock::now()) {
    // Tells the proxy at once that the stream is up, even when it already runs the current
    // version and so gets no response for now.
    StartSendInitialMetadata();
    StartRead(&request_);
  }

  void push(const SnapshotPtr& snapshot) {
    std::lock_guard lock(mutex_);
    if (node_.empty() || snapshot->version() == known_version_) return;
    send_locked(snapshot);
  }

  void end(const grpc::Status& status) {
    std::lock_guard lock(mutex_);
    finish_locked(status);
  }

  bool identified() const {
    std::lock_guard lock(mutex_);
    return !node_.empty();
  }

  ProxyStatus status() const {
    std::lock_guard lock(mutex_);
    return ProxyStatus{node_,           address_,    peer_,           acked_version_,
                       nacked_version_, last_error_, connected_since_};
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mutex_);
    if (!ok) {  // the proxy closed its side, or the stream broke
      finish_locked(grpc::Status::OK);
      return;
    }
    handle_locked(request_);
    if (!finished_) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    if (!ok) {
      finish_locked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    } else if (finish_pending_) {
      finish_pending_ = false;
      Finish(finish_status_);
    } else if (push_pending_) {
      push_pending_ = false;
      const SnapshotPtr snapshot = service_.cache_.current();
      if (snapshot && snapshot->version() != known_version_) send_locked(snapshot);
    }
  }

  void OnCancel() override { end(grpc::Status::CANCELLED); }

  void OnDone() override {
    {
      std::lock_guard lock(mutex_);
      if (!node_.empty()) spdlog::info("proxy {} disconnected ({})", node_, peer_);
    }
    service_.remove(this);
    delete this;
  }

 private:
  void handle_locked(const Request& request) {
    if (node_.empty()) {
      node_ = request.node().id().empty() ? peer_ : request.node().id();
      address_ = request.node().address();
      spdlog::info("proxy {} connected from {}, running version {}", node_, peer_,
                   request.version_info().empty() ? "none" : request.version_info());
    }
    if (request.response_nonce().empty()) {
      // A new stream: the proxy says what it runs (after a controller restart, often the
      // current version already, which then is not sent again).
      service_.requests_.with({"initial"}).inc();
      acked_version_ = request.version_info();
      known_version_ = request.version_info();
      const SnapshotPtr snapshot = service_.cache_.current();
      if (snapshot && snapshot->version() != known_version_) send_locked(snapshot);
      return;
    }
    if (request.response_nonce() != sent_nonce_) {
      // Answers a response that a newer one has overtaken: that newer one's answer counts.
      service_.requests_.with({"stale"}).inc();
      return;
    }
    acked_version_ = request.version_info();
    if (request.has_error_detail()) {
      service_.requests_.with({"nack"}).inc();
      nacked_version_ = sent_version_;
      last_error_ = request.error_detail().message();
      spdlog::warn("proxy {} rejected version {} and keeps {}: {}", node_, sent_version_,
                   acked_version_.empty() ? "none" : acked_version_, last_error_);
    } else {
      service_.requests_.with({"ack"}).inc();
      nacked_version_.clear();
      last_error_.clear();
      spdlog::info("proxy {} applied version {}", node_, acked_version_);
    }
  }

  void send_locked(const SnapshotPtr& snapshot) {
    if (finished_) return;
    if (writing_) {  // one write at a time; the newest snapshot goes when this one is done
      push_pending_ = true;
      return;
    }
    response_.Clear();
    response_.set_version_info(snapshot->version());
    response_.set_nonce(std::to_string(++nonce_counter_));
    *response_.mutable_routes() = *snapshot->wire;
    sent_nonce_ = response_.nonce();
    sent_version_ = snapshot->version();
    known_version_ = sent_version_;
    writing_ = true;
    service_.responses_.inc();
    StartWrite(&response_);
  }

  void finish_locked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    if (writing_) {  // Finish waits for the write in flight (OnWriteDone sends it)
      finish_pending_ = true;
      finish_status_ = status;
      return;
    }
    Finish(status);
  }

  DiscoveryService& service_;
  const std::string peer_;
  const std::chrono::system_clock::time_point connected_since_;

  mutable std::mutex mutex_;
  Request request_;
  Response response_;
  std::string node_;
  std::string address_;
  std::string acked_version_;
  std::string nacked_version_;
  std::string last_error_;
  std::string known_version_;  // what the proxy runs or was last sent: not sent again
  std::string sent_version_;
  std::string sent_nonce_;
  std::uint64_t nonce_counter_ = 0;
  bool writing_ = false;
  bool push_pending_ = false;
  bool finished_ = false;
  bool finish_pending_ = false;
  grpc::Status finish_status_;
};

DiscoveryService::DiscoveryService(SnapshotCache& cache, metrics::Registry& registry)
    : cache_(cache),
      responses_(registry
                     .counter("wsgate_controller_discovery_responses_total",
                              "Route snapshots sent to proxies.", {})
                     .with({})),
      requests_(registry.counter(
          "wsgate_controller_discovery_requests_total",
          "Requests received from proxies: initial (a new stream), ack, nack, or stale (answers "
          "a response a newer one overtook).",
          {"type"})) {
  for (const char* type : {"initial", "ack", "nack", "stale"}) requests_.with({type});
  registry.add_collector([this](std::string& out) { collect(out); });
}

DiscoveryService::~DiscoveryService() = default;

grpc::ServerBidiReactor<DiscoveryService::Request, DiscoveryService::Response>*
DiscoveryService::StreamRoutes(grpc::CallbackServerContext* context) {
  auto* stream = new Stream(*this, context);
  std::lock_guard lock(mutex_);
  streams_.insert(stream);
  if (shutting_down_) stream->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
  return stream;
}

void DiscoveryService::push(const SnapshotPtr& snapshot) {
  std::lock_guard lock(mutex_);
  for (Stream* stream : streams_) stream->push(snapshot);
}

void DiscoveryService::shut_down() {
  std::lock_guard lock(mutex_);
  shutting_down_ = true;
  for (Stream* stream : streams_) {
    stream->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller shutting down"));
  }
}

void DiscoveryService::remove(Stream* stream) {
  std::lock_guard lock(mutex_);
  streams_.erase(stream);
}

std::vector<ProxyStatus> DiscoveryService::proxies() const {
  std::vector<ProxyStatus> out;
  {
    std::lock_guard lock(mutex_);
    for (const Stream* stream : streams_) {
      if (stream->identified()) out.push_back(stream->status());
    }
  }
  std::sort(out.begin(), out.end(), [](const ProxyStatus& a, const ProxyStatus& b) {
    return std::tie(a.node, a.connected_since) < std::tie(b.node, b.connected_since);
  });
  return out;
}

// Read at scrape time from the live streams, so a proxy's series vanish with its stream and a
// node id that reconnects before its old stream is noticed gone is not counted twice.
void DiscoveryService::collect(std::string& out) const {
  std::map<std::string, ProxyStatus> latest;  // by node: the most recent stream
  for (auto& proxy : proxies()) latest[proxy.node] = std::move(proxy);
  out +=
      "# HELP wsgate_controller_connected_proxies Proxies with an open route stream.\n"
      "# TYPE wsgate_controller_connected_proxies gauge\n"
      "wsgate_controller_connected_proxies " +
      std::to_string(latest.size()) + "\n";
  out +=
      "# HELP wsgate_controller_proxy_config_info 1 per connected proxy and state: the version "
      "it last ACKed (state=\"acked\") and the one it last NACKed (state=\"nacked\").\n"
      "# TYPE wsgate_controller_proxy_config_info gauge\n";
  for (const auto& [node, proxy] : latest) {
    const auto series = [&](const std::string& version, const char* state) {
      out += "wsgate_controller_proxy_config_info{node=\"" + metrics::escape_label_value(node) +
             "\",version=\"" + metrics::escape_label_value(version) + "\",state=\"" + state +
             "\"} 1\n";
    };
    if (!proxy.acked_version.empty()) series(proxy.acked_version, "acked");
    if (!proxy.nacked_version.empty()) series(proxy.nacked_version, "nacked");
  }
}

std::string proxies_json(const std::vector<ProxyStatus>& proxies) {
  boost::json::array list;
  for (const auto& proxy : proxies) {
    list.push_back(boost::json::object{
        {"node", proxy.node},
        {"address", proxy.address.empty() ? proxy.peer : proxy.address},
        {"peer", proxy.peer},
        {"acked_version", proxy.acked_version},
        {"nacked_version", proxy.nacked_version},
        {"last_error", proxy.last_error},
        {"connected_since", rfc3339(proxy.connected_since)},
    });
  }
  return boost::json::serialize(list) + "\n";
}

}  // namespace wsgate::controlplane
