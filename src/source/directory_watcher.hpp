#pragma once
// Watches a directory of route files (inotify) and turns bursts of changes into one whole,
// validated RouteTable. Handles the kubelet's ConfigMap layout, where the visible files are
// symlinks through "..data" and an update swaps that symlink atomically.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "config/route.hpp"
#include "config/route_yaml.hpp"

namespace wsgate::source {

class DirectoryWatcher {
 public:
  struct Options {
    std::filesystem::path dir;
    // Debounce: wait this long after the last event...
    std::chrono::milliseconds holdoff{100};
    // ...but never longer than this after the first event of a burst.
    std::chrono::milliseconds max_delay{500};
  };
  // Called on the watcher thread with each new table whose version differs from the last
  // good one, and with every rejected update.
  using OnTable = std::function<void(config::RouteTable)>;
  using OnError = std::function<void(const config::ConfigError&)>;

  DirectoryWatcher(Options options, OnTable on_table, OnError on_error);
  ~DirectoryWatcher();  // stops the thread
  DirectoryWatcher(const DirectoryWatcher&) = delete;
  DirectoryWatcher& operator=(const DirectoryWatcher&) = delete;

  // Loads the directory once, synchronously (reporting through the callbacks), then starts
  // the watch thread. Returns false when the initial load was rejected (the watch still runs,
  // so fixing the files later recovers).
  bool start();
  // Re-reads now (SIGHUP), bypassing the debounce; reports even when the version is unchanged.
  void reload_now();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsgate::source
