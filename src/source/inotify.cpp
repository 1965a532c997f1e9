#include "source/inotify.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wsgate::source {
namespace {

// Room for many events per read(); a single event is at most sizeof(inotify_event)+NAME_MAX+1.
constexpr std::size_t kReadBufferBytes = 64 * 1024;
// Reads per call: enough to empty a normal queue, small enough that a flood cannot pin us here.
constexpr int kMaxReadsPerCall = 16;

}  // namespace

Inotify::Inotify() {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) open_error_ = std::error_code(errno, std::generic_category());
}

Inotify::~Inotify() {
  if (fd_ >= 0) ::close(fd_);
}

int Inotify::add_watch(const std::filesystem::path& path, std::uint32_t mask, std::error_code& ec) {
  ec.clear();
  if (fd_ < 0) {
    ec = open_error_;
    return -1;
  }
  int wd = ::inotify_add_watch(fd_, path.c_str(), mask);
  if (wd < 0) ec = std::error_code(errno, std::generic_category());
  return wd;
}

void Inotify::remove_watch(int wd) {
  // Fails only when the kernel already dropped the watch (its IN_IGNORED is then queued).
  if (fd_ >= 0 && wd >= 0) ::inotify_rm_watch(fd_, wd);
}

std::vector<Inotify::Event> Inotify::read_available() {
  std::vector<Event> events;
  if (fd_ < 0) return events;
  buffer_.resize(kReadBufferBytes);
  char* buffer = buffer_.data();
  for (int reads = 0; reads < kMaxReadsPerCall; ++reads) {
    ssize_t n = ::read(fd_, buffer, buffer_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: queue empty
    for (ssize_t offset = 0; offset + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      inotify_event header;
      std::memcpy(&header, buffer + offset, sizeof header);
      Event event;
      event.wd = header.wd;
      event.mask = header.mask;
      if (header.len > 0) {
        const char* name = buffer + offset + sizeof(inotify_event);
        event.name.assign(name, ::strnlen(name, header.len));
      }
      events.push_back(std::move(event));
      offset += static_cast<ssize_t>(sizeof(inotify_event) + header.len);
    }
  }
  return events;
}

}  // namespace wsgate::source
