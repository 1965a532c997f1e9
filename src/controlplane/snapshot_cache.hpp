#pragma once
// The controller's current route snapshot: one validated RouteTable, its content-hash version
// and its wire form, encoded once and shared by every proxy stream.

#include <memory>
#include <mutex>
#include <string>

#include "config/route.hpp"
#include "wsgate/v1/routes.pb.h"

namespace wsgate::controlplane {

struct Snapshot {
  config::RouteTablePtr table;
  std::shared_ptr<const wsgate::v1::RouteTable> wire;

  const std::string& version() const { return table->version(); }
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

class SnapshotCache {
 public:
  // Installs `table` and returns the new snapshot, or nullptr when its content equals the
  // current snapshot's (same version): identical content is never pushed twice.
  SnapshotPtr update(config::RouteTable table);
  // nullptr until the first update.
  SnapshotPtr current() const;

 private:
  mutable std::mutex mutex_;
  SnapshotPtr current_;
};

}  // namespace wsgate::controlplane
