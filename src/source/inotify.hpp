#pragma once
// A Linux inotify instance as a value: watches by path, non-blocking reads decoded into events.

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace wsgate::source {

class Inotify {
 public:
  struct Event {
    int wd = -1;
    std::uint32_t mask = 0;
    std::string name;  // empty for events about the watched directory itself
  };

  // Opens a non-blocking, close-on-exec instance; check valid() (it fails past the per-user limit).
  Inotify();
  ~Inotify();
  Inotify(const Inotify&) = delete;
  Inotify& operator=(const Inotify&) = delete;

  bool valid() const { return fd_ >= 0; }
  const std::error_code& open_error() const { return open_error_; }
  int fd() const { return fd_; }

  // Returns the watch descriptor, or -1 with `ec` set.
  int add_watch(const std::filesystem::path& path, std::uint32_t mask, std::error_code& ec);
  void remove_watch(int wd);
  // Everything queued right now (never blocks). Bounded: a flood is left for the next call.
  std::vector<Event> read_available();

 private:
  int fd_ = -1;
  std::error_code open_error_;
  std::vector<char> buffer_;  // events are copied out of it, so alignment does not matter
};

}  // namespace wsgate::source
