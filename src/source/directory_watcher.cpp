#include "source/directory_watcher.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <variant>

#include "source/debouncer.hpp"
#include "source/inotify.hpp"

namespace wsgate::source {
namespace {

namespace fs = std::filesystem;
using Clock = Debouncer::Clock;
using std::chrono::milliseconds;
using LoadResult = std::variant<config::RouteTable, config::ConfigError>;

constexpr std::uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE |
                                     IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF |
                                     IN_MOVE_SELF | IN_ONLYDIR;
// Any of these means the kernel no longer watches that directory for us.
constexpr std::uint32_t kWatchLost = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT;
// How often a missing directory is looked for, and a present one checked for being replaced
// (a mount swapped underneath, a symlinked path retargeted) without any event telling us.
constexpr milliseconds kRecheckInterval{1000};
// A burst may wait this much past max_delay for a route file still open for writing.
constexpr milliseconds kOpenWriterGrace{2000};
// A load during which events arrived may have read a mix of old and new files; it is redone
// after the next quiet period, at most this many times in a row so that churn cannot starve us.
constexpr int kMaxDiscardedLoads = 3;
// Bounds for the extra watches on directories that symlinked route files point into.
constexpr std::size_t kMaxTargetWatches = 64;
constexpr std::size_t kMaxDirectoryEntries = 4096;
// Without a wake-up fd (eventfd failed), stop/reload flags are looked at this often.
constexpr milliseconds kFlagPollInterval{50};

enum class Trigger { kInitial, kBurst, kForced };

bool is_route_file_name(const std::string& name) {
  if (name.empty() || name.front() == '.') return false;
  return name.ends_with(".yaml") || name.ends_with(".yml");
}

struct DirIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const DirIdentity&) const = default;
};

std::optional<DirIdentity> identity_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return DirIdentity{st.st_dev, st.st_ino};
}

// Callbacks are user code on our thread: an exception escaping them must not end the process.
template <typename Fn, typename Arg>
void invoke_guarded(const Fn& fn, Arg&& arg, const char* what) {
  if (!fn) return;
  try {
    fn(std::forward<Arg>(arg));
  } catch (const std::exception& e) {
    spdlog::error("directory watcher: {} callback threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("directory watcher: {} callback threw a non-standard exception", what);
  }
}

}  // namespace

struct DirectoryWatcher::Impl {
  struct TargetWatch {
    std::set<std::string> names;  // the symlink targets' file names in that directory
  };

  Options options;
  OnTable on_table;
  OnError on_error;
  Inotify inotify;
  int wake_fd = -1;
  Debouncer debouncer;

  // start/stop/destructor. Recursive: a callback during start()'s first load may call stop().
  std::recursive_mutex lifecycle_mutex;
  std::thread thread;
  std::atomic<std::thread::id> watcher_id{};  // lets stop() know it runs inside a callback
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> reload_requested{false};

  // Below: touched by start() before the thread exists, then only by the thread.
  int dir_wd = -1;
  DirIdentity dir_identity;
  std::map<int, TargetWatch> target_watches;
  // (wd, name) of route files modified but not yet closed: reading them now could see half.
  std::set<std::pair<int, std::string>> open_writers;
  Clock::time_point next_recheck{};
  int discarded_loads = 0;
  bool has_good = false;
  std::string good_version;
  std::string last_error;
  std::atomic<bool> last_ok{false};  // read by a repeated start()

  Impl(Options opts, OnTable table_cb, OnError error_cb)
      : options(std::move(opts)),
        on_table(std::move(table_cb)),
        on_error(std::move(error_cb)),
        debouncer(options.holdoff, options.max_delay, kOpenWriterGrace) {
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
      spdlog::warn("directory watcher: eventfd failed ({}); stop/reload may take up to {} ms",
                   std::strerror(errno), kFlagPollInterval.count());
    }
  }

  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() {
    if (wake_fd < 0) return;
    std::uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the thread is woken either way.
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  void drain_wake() {
    if (wake_fd < 0) return;
    std::uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(wake_fd, &count, sizeof count);
  }

  std::string dir_name() const { return options.dir.string(); }

  // --- watches ---------------------------------------------------------------------------

  bool arm() {
    std::error_code ec;
    int wd = inotify.add_watch(options.dir, kWatchMask, ec);
    if (wd < 0) return false;
    if (dir_wd >= 0 && dir_wd != wd) forget_watch(dir_wd);
    dir_wd = wd;
    target_watches.erase(wd);  // a target directory that turned out to be this one
    dir_identity = identity_of(options.dir).value_or(DirIdentity{});
    return true;
  }

  void forget_watch(int wd) {
    inotify.remove_watch(wd);
    std::erase_if(open_writers, [wd](const auto& key) { return key.first == wd; });
  }

  void lose_dir_watch() {
    if (dir_wd < 0) return;
    forget_watch(dir_wd);
    dir_wd = -1;
    // A directory moved away may already have been replaced (mv new routes): try at once.
    if (arm()) return;
    spdlog::warn("route directory {} is gone; checking for it every {} ms", dir_name(),
                 kRecheckInterval.count());
  }

  // Edits to a file that a route file symlinks to (outside the watched directory) raise events
  // only in the target's directory, so that directory is watched too, for those names only.
  void refresh_target_watches() {
    if (!inotify.valid()) return;
    std::map<fs::path, std::set<std::string>> wanted;
    std::error_code ec;
    const fs::path self = fs::canonical(options.dir, ec);
    if (!ec) {
      fs::directory_iterator it(options.dir, ec);
      for (std::size_t n = 0; !ec && it != fs::directory_iterator() && n < kMaxDirectoryEntries;
           it.increment(ec), ++n) {
        std::error_code entry_ec;
        const std::string name = it->path().filename().string();
        if (!is_route_file_name(name) || !it->is_symlink(entry_ec)) continue;
        const fs::path target = fs::canonical(it->path(), entry_ec);
        if (entry_ec || target.parent_path() == self) continue;
        if (wanted.size() >= kMaxTargetWatches && !wanted.contains(target.parent_path())) continue;
        wanted[target.parent_path()].insert(target.filename().string());
      }
    }
    std::map<int, TargetWatch> next;
    for (auto& [dir, names] : wanted) {
      std::error_code add_ec;
      // Idempotent for a directory already watched: the kernel returns the same descriptor.
      int wd = inotify.add_watch(dir, kWatchMask, add_ec);
      if (wd < 0 || wd == dir_wd) continue;
      next[wd].names.merge(names);
    }
    for (const auto& [wd, watch] : target_watches) {
      if (!next.contains(wd)) forget_watch(wd);
    }
    target_watches = std::move(next);
  }

  void track_writer(const Inotify::Event& event, bool route_file) {
    if (event.name.empty()) return;
    auto key = std::make_pair(event.wd, event.name);
    if ((event.mask & IN_MODIFY) && route_file) open_writers.insert(key);
    if (event.mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM)) open_writers.erase(key);
  }

  // Reads queued events; returns whether any of them can change what a load would see.
  bool drain_events(Clock::time_point now) {
    bool relevant = false;
    for (const auto& event : inotify.read_available()) {
      if (event.mask & IN_Q_OVERFLOW) {
        open_writers.clear();  // we lost track of who writes what; the reload re-reads all
        relevant = true;
        continue;
      }
      if (event.wd == dir_wd) {
        relevant = true;
        track_writer(event, is_route_file_name(event.name));
        if (event.mask & kWatchLost) lose_dir_watch();
        continue;
      }
      auto it = target_watches.find(event.wd);
      if (it == target_watches.end()) continue;  // a watch we dropped; its IN_IGNORED
      if (event.mask & kWatchLost) {
        forget_watch(event.wd);
        target_watches.erase(it);
        relevant = true;
        continue;
      }
      if (!it->second.names.contains(event.name)) continue;
      track_writer(event, true);
      relevant = true;
    }
    if (relevant) debouncer.on_event(now);
    return relevant;
  }

  void recheck(Clock::time_point now) {
    next_recheck = now + kRecheckInterval;
    if (!inotify.valid()) {
      debouncer.on_event(now);  // no events at all: re-read; unchanged content stays silent
      return;
    }
    const auto identity = identity_of(options.dir);
    if (dir_wd >= 0 && identity && *identity == dir_identity) return;
    if (!identity) {
      if (dir_wd < 0) return;  // still missing; the error was reported when it went
      // Gone without an event reaching us (e.g. the path was a symlink that now dangles).
      forget_watch(dir_wd);
      dir_wd = -1;
      debouncer.on_event(now);
      return;
    }
    if (arm()) {
      spdlog::info("route directory {} is present; watching it", dir_name());
      debouncer.on_event(now);
    }
  }

  // --- loading and reporting ---------------------------------------------------------------

  LoadResult load() const {
    struct stat st {};
    if (::stat(options.dir.c_str(), &st) != 0) {
      const int err = errno;
      return config::ConfigError{dir_name() + ": route directory " +
                                 (err == ENOENT
                                      ? std::string("does not exist")
                                      : std::string("cannot be read: ") + std::strerror(err))};
    }
    if (!S_ISDIR(st.st_mode)) {
      return config::ConfigError{dir_name() + ": route directory is not a directory"};
    }
    try {
      return config::load_route_directory(options.dir);
    } catch (const std::exception& e) {
      return config::ConfigError{dir_name() + ": " + e.what()};
    }
  }

  // Returns whether the directory's content is a valid table (reported or not).
  bool evaluate(Trigger trigger) {
    refresh_target_watches();  // before reading, so that edits from here on raise events
    LoadResult result = load();
    if (trigger == Trigger::kBurst && discarded_loads < kMaxDiscardedLoads &&
        drain_events(Clock::now())) {
      // Files changed while we read them; the result may mix old and new. Read again once
      // it is quiet: the drained events have started a new burst.
      ++discarded_loads;
      spdlog::debug("route directory {} changed while being read; reading it again", dir_name());
      return last_ok;
    }
    discarded_loads = 0;
    last_ok = std::holds_alternative<config::RouteTable>(result);
    if (auto* table = std::get_if<config::RouteTable>(&result)) {
      report_table(std::move(*table), trigger);
    } else {
      report_error(std::get<config::ConfigError>(result), trigger);
    }
    return last_ok;
  }

  void report_table(config::RouteTable table, Trigger trigger) {
    last_error.clear();  // the same mistake made again later is news again
    if (trigger != Trigger::kForced && has_good && table.version() == good_version) {
      spdlog::debug("route directory {} re-read: version {} unchanged", dir_name(), good_version);
      return;
    }
    has_good = true;
    good_version = table.version();
    spdlog::info("routes reloaded from {}: {} routes, version {}", dir_name(),
                 table.routes().size(), good_version);
    invoke_guarded(on_table, std::move(table), "on_table");
  }

  void report_error(const config::ConfigError& error, Trigger trigger) {
    if (trigger != Trigger::kForced && error.message == last_error) return;
    last_error = error.message;
    spdlog::warn("route update rejected: {}", error.message);
    invoke_guarded(on_error, error, "on_error");
  }

  // --- the thread ----------------------------------------------------------------------------

  int poll_timeout_ms(Clock::time_point now) const {
    const auto wake_at = std::min(debouncer.deadline(!open_writers.empty()), next_recheck);
    auto wait = wake_at > now ? std::chrono::ceil<milliseconds>(wake_at - now) : milliseconds(0);
    wait = std::min(wait, kRecheckInterval);
    if (wake_fd < 0) wait = std::min(wait, kFlagPollInterval);
    return static_cast<int>(wait.count());
  }

  void run() {
    watcher_id = std::this_thread::get_id();
    next_recheck = Clock::now() + kRecheckInterval;
    while (!stop_requested.load()) {
      pollfd fds[2];
      nfds_t count = 0;
      if (inotify.valid()) fds[count++] = pollfd{inotify.fd(), POLLIN, 0};
      if (wake_fd >= 0) fds[count++] = pollfd{wake_fd, POLLIN, 0};
      if (::poll(fds, count, poll_timeout_ms(Clock::now())) < 0 && errno != EINTR) {
        spdlog::error("directory watcher: poll failed: {}", std::strerror(errno));
        std::this_thread::sleep_for(kFlagPollInterval);  // keep a persistent failure from spinning
      }
      drain_wake();
      if (stop_requested.load()) break;
      const auto now = Clock::now();
      drain_events(now);
      if (now >= next_recheck) recheck(now);
      if (reload_requested.exchange(false)) {
        debouncer.clear();
        evaluate(Trigger::kForced);
      } else if (debouncer.due(now, !open_writers.empty())) {
        debouncer.clear();
        evaluate(Trigger::kBurst);
      }
    }
    watcher_id = std::thread::id();
  }
};

DirectoryWatcher::DirectoryWatcher(Options options, OnTable on_table, OnError on_error)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(on_table), std::move(on_error))) {}

DirectoryWatcher::~DirectoryWatcher() {
  stop();
}

bool DirectoryWatcher::start() {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.lifecycle_mutex);
  if (impl.thread.joinable()) {
    // Running, or asked to stop from inside a callback and not joined yet.
    if (!impl.stop_requested || std::this_thread::get_id() == impl.watcher_id.load()) {
      return impl.last_ok;
    }
    impl.thread.join();
  }
  impl.stop_requested = false;
  impl.reload_requested = false;
  if (!impl.inotify.valid()) {
    spdlog::warn("directory watcher: inotify unavailable ({}); re-reading {} every {} ms",
                 impl.inotify.open_error().message(), impl.dir_name(), kRecheckInterval.count());
  } else if (!impl.arm()) {
    spdlog::warn("route directory {} cannot be watched yet; checking for it every {} ms",
                 impl.dir_name(), kRecheckInterval.count());
  }
  // Armed before the first read, so nothing written after that read goes unnoticed.
  const bool ok = impl.evaluate(Trigger::kInitial);
  impl.thread = std::thread([&impl] { impl.run(); });
  return ok;
}

void DirectoryWatcher::reload_now() {
  impl_->reload_requested = true;
  impl_->wake();
}

void DirectoryWatcher::stop() {
  Impl& impl = *impl_;
  impl.stop_requested = true;
  impl.wake();
  // From a callback (the watcher thread itself) only ask: the loop ends when the callback
  // returns, and the owner's stop() or destructor joins. Taking the lock here could deadlock
  // with an owner already joining under it.
  if (std::this_thread::get_id() == impl.watcher_id.load()) return;
  std::lock_guard lock(impl.lifecycle_mutex);
  impl.stop_requested = true;  // again under the lock: a concurrent start() may have cleared it
  impl.wake();
  if (impl.thread.joinable()) impl.thread.join();
}

}  // namespace wsgate::source
