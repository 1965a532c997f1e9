#include "controlplane/snapshot_cache.hpp"

#include <utility>

#include "config/route_proto.hpp"

namespace wsgate::controlplane {

SnapshotPtr SnapshotCache::update(config::RouteTable table) {
  {
    std::lock_guard lock(mutex_);
    if (current_ && current_->version() == table.version()) return nullptr;
  }
  // Encode outside the lock: a large table must not stall streams reading the current one.
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->wire = std::make_shared<const wsgate::v1::RouteTable>(config::to_proto(table));
  snapshot->table = std::make_shared<const config::RouteTable>(std::move(table));
  std::lock_guard lock(mutex_);
  // Updates come from the one watcher thread, so no newer table can have slipped in meanwhile;
  // the re-check only keeps the "never twice" promise if that ever changes.
  if (current_ && current_->version() == snapshot->version()) return nullptr;
  current_ = snapshot;
  return current_;
}

SnapshotPtr SnapshotCache::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

}  // namespace wsgate::controlplane
