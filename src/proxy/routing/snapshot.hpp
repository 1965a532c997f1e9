#pragma once
// The immutable routing state a request is served with: a RouteTable, its Router, and the
// per-route runtime (pickers, counters) it needs. Sessions pin the snapshot they started with,
// so a reload never touches a live tunnel.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/route.hpp"
#include "proxy/core/proxy_metrics.hpp"
#include "proxy/routing/backend_picker.hpp"
#include "proxy/routing/router.hpp"

namespace wsgate::proxy {

// State of a route that must outlive snapshots (keyed by route id): a reload that keeps the
// route keeps its tunnel count, so maxTunnels holds across reloads; metric series are looked
// up once here instead of on every request.
class RouteRuntime {
 public:
  RouteRuntime(const std::string& id, ProxyMetrics& metrics);

  const std::string& id() const { return id_; }
  std::atomic<std::uint32_t> tunnels{0};

  metrics::Gauge& active_tunnels;
  metrics::Counter& bytes_client_to_backend;
  metrics::Counter& bytes_backend_to_client;
  metrics::Histogram& handshake_duration;
  metrics::Histogram& tunnel_duration;
  // The common outcome, looked up once: other codes go through ProxyMetrics::count_handshake.
  metrics::Counter& handshakes_switched;  // code 101

  // Token bucket for handshakesPerSecond; returns seconds to wait (0 = admitted).
  std::uint32_t take_handshake_token(std::uint32_t per_second);

 private:
  std::string id_;
  std::mutex bucket_mutex_;
  double tokens_ = -1;  // < 0: bucket not initialised yet (starts full)
  std::chrono::steady_clock::time_point last_refill_{};
};

class Snapshot {
 public:
  struct RouteEntry {
    const config::Route* route;
    std::shared_ptr<RouteRuntime> runtime;
    std::unique_ptr<BackendPicker> picker;
  };

  Snapshot(config::RouteTablePtr table, std::vector<std::shared_ptr<RouteRuntime>> runtimes);

  const config::RouteTable& table() const { return *table_; }
  const std::string& version() const { return table_->version(); }
  // nullptr when nothing matches.
  RouteEntry* match(std::string_view host, std::string_view target) const;

 private:
  config::RouteTablePtr table_;
  Router router_;
  // Mutable pickers inside an immutable snapshot: the picker is internally synchronised.
  mutable std::vector<RouteEntry> entries_;
  std::map<const config::Route*, std::size_t> index_;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

// Builds snapshots and keeps RouteRuntime objects alive across them.
class SnapshotBuilder {
 public:
  explicit SnapshotBuilder(ProxyMetrics& metrics) : metrics_(metrics) {}
  SnapshotPtr build(config::RouteTable table);

 private:
  ProxyMetrics& metrics_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<RouteRuntime>> runtimes_;
};

}  // namespace wsgate::proxy
