#pragma once
// Shared by the source tests: temp directories, route YAML, and a callback recorder that
// tests wait on with bounded condition-variable waits.

#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "config/route.hpp"
#include "config/route_yaml.hpp"
#include "source/directory_watcher.hpp"

namespace wsgate::source::test_support {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "wsgate-source-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Truncate + write in place, the way `echo > file` and many editors save.
inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Write a temp file, then rename it over the target, the way vim/emacs/kubectl cp save.
inline void write_file_atomically(const fs::path& path, const std::string& text) {
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".swp");
  write_file(temp, text);
  fs::rename(temp, path);
}

inline std::string route_yaml_with_backend(const std::string& name, const std::string& path_prefix,
                                           const std::string& backend_address) {
  return "apiVersion: wsgate.dev/v1alpha1\n"
         "kind: WebSocketRoute\n"
         "metadata:\n"
         "  name: " +
         name + "\nspec:\n  pathPrefix: " + path_prefix +
         "\n  backends:\n"
         "    - address: " +
         backend_address + "\n";
}

inline std::string route_yaml(const std::string& name, const std::string& path_prefix = "/ws") {
  return route_yaml_with_backend(name, path_prefix, "127.0.0.1:9001");
}

// A route whose backend lacks its port: rejected, naming file, route and field.
inline std::string invalid_route_yaml(const std::string& name) {
  return route_yaml_with_backend(name, "/ws", "127.0.0.1");
}

// The version a table built from `text` has (versions hash content only, not file names).
inline std::string version_of(const std::string& text) {
  auto parsed = config::parse_route_documents(text, "reference.yaml");
  if (auto* error = std::get_if<config::ConfigError>(&parsed)) {
    throw std::runtime_error("reference YAML invalid: " + error->message);
  }
  return config::RouteTable(std::get<std::vector<config::Route>>(std::move(parsed))).version();
}

// Records what the watcher reports; every wait is bounded.
class Recorder {
 public:
  using Duration = std::chrono::milliseconds;
  static constexpr Duration kPatience{5000};  // a positive wait on a busy 2-core machine

  std::function<void(config::RouteTable)> on_table() {
    return [this](config::RouteTable table) {
      std::lock_guard lock(mutex_);
      tables_.push_back(std::move(table));
      cv_.notify_all();
    };
  }
  std::function<void(const config::ConfigError&)> on_error() {
    return [this](const config::ConfigError& error) {
      std::lock_guard lock(mutex_);
      errors_.push_back(error.message);
      cv_.notify_all();
    };
  }

  // Waits until at least `count` tables (errors) were reported.
  bool wait_tables(std::size_t count, Duration timeout = kPatience) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return tables_.size() >= count; });
  }
  bool wait_errors(std::size_t count, Duration timeout = kPatience) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return errors_.size() >= count; });
  }
  // Waits until the latest table has `version`.
  bool wait_version(const std::string& version, Duration timeout = kPatience) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout,
                        [&] { return !tables_.empty() && tables_.back().version() == version; });
  }

  std::size_t table_count() {
    std::lock_guard lock(mutex_);
    return tables_.size();
  }
  std::size_t error_count() {
    std::lock_guard lock(mutex_);
    return errors_.size();
  }
  std::vector<config::RouteTable> tables() {
    std::lock_guard lock(mutex_);
    return tables_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<config::RouteTable> tables_;
  std::vector<std::string> errors_;
};

// Debounce settings short enough for tests, long enough that a burst of writes stays one burst.
constexpr std::chrono::milliseconds kHoldoff{50};
constexpr std::chrono::milliseconds kMaxDelay{250};
// Absence checks: nothing may be reported within a few debounce horizons of the change.
constexpr std::chrono::milliseconds kQuietWindow{800};

// A watched directory "routes" inside a fresh temp dir, and a recorder for its reports.
class WatcherTest : public ::testing::Test {
 protected:
  WatcherTest() : dir_(temp_.path() / "routes") {}

  void make_watcher(std::chrono::milliseconds holdoff = kHoldoff,
                    std::chrono::milliseconds max_delay = kMaxDelay) {
    DirectoryWatcher::Options options;
    options.dir = dir_;
    options.holdoff = holdoff;
    options.max_delay = max_delay;
    watcher_ =
        std::make_unique<DirectoryWatcher>(options, recorder_.on_table(), recorder_.on_error());
  }
  bool start_watcher() {
    if (!watcher_) make_watcher();
    return watcher_->start();
  }
  std::string latest_version() {
    auto tables = recorder_.tables();
    return tables.empty() ? std::string() : tables.back().version();
  }

  TempDir temp_;
  fs::path dir_;
  Recorder recorder_;
  std::unique_ptr<DirectoryWatcher> watcher_;  // after recorder_: destroyed (stopped) first
};

}  // namespace wsgate::source::test_support
