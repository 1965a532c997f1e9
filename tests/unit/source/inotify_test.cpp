#include "source/inotify.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "watcher_test_support.hpp"

namespace wsgate::source {
namespace {

constexpr std::uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO |
                                IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

// Collects events until one matches `mask` and `name`, waiting at most `timeout` in total.
bool wait_for_event(Inotify& inotify, std::uint32_t mask, const std::string& name,
                    std::vector<Inotify::Event>& seen,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (auto& event : inotify.read_available()) seen.push_back(std::move(event));
    if (std::any_of(seen.begin(), seen.end(),
                    [&](const Inotify::Event& e) { return (e.mask & mask) && e.name == name; })) {
      return true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd fd{inotify.fd(), POLLIN, 0};
    ::poll(&fd, 1, static_cast<int>(left.count()));
  }
}

class InotifyTest : public ::testing::Test {
 protected:
  // Watches `path` and returns the watch descriptor (a failed expectation when it cannot).
  int watch(const std::filesystem::path& path) {
    EXPECT_TRUE(inotify_.valid()) << inotify_.open_error().message();
    std::error_code ec;
    const int wd = inotify_.add_watch(path, kMask, ec);
    EXPECT_GE(wd, 0) << ec.message();
    return wd;
  }

  test_support::TempDir dir_;
  Inotify inotify_;
  std::vector<Inotify::Event> seen_;
};

TEST_F(InotifyTest, ReportsCreateWriteAndRenameByName) {
  ASSERT_GE(watch(dir_.path()), 0);

  test_support::write_file(dir_.path() / "a.tmp", "x");
  EXPECT_TRUE(wait_for_event(inotify_, IN_CREATE, "a.tmp", seen_));
  EXPECT_TRUE(wait_for_event(inotify_, IN_CLOSE_WRITE, "a.tmp", seen_));
  std::filesystem::rename(dir_.path() / "a.tmp", dir_.path() / "a.yaml");
  EXPECT_TRUE(wait_for_event(inotify_, IN_MOVED_FROM, "a.tmp", seen_));
  EXPECT_TRUE(wait_for_event(inotify_, IN_MOVED_TO, "a.yaml", seen_));
}

// The watcher relies on truncation raising IN_MODIFY before the new bytes arrive: that is how
// it knows a file is being rewritten in place and holds the reload until IN_CLOSE_WRITE.
TEST_F(InotifyTest, TruncatingOpenRaisesModifyBeforeClose) {
  test_support::write_file(dir_.path() / "r.yaml", "old content");
  ASSERT_GE(watch(dir_.path()), 0);

  int fd = ::open((dir_.path() / "r.yaml").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(wait_for_event(inotify_, IN_MODIFY, "r.yaml", seen_));
  EXPECT_FALSE(std::any_of(seen_.begin(), seen_.end(),
                           [](const Inotify::Event& e) { return e.mask & IN_CLOSE_WRITE; }));
  ::close(fd);
  EXPECT_TRUE(wait_for_event(inotify_, IN_CLOSE_WRITE, "r.yaml", seen_));
}

// Reading must not raise events in the mask, or every reload would trigger the next one.
TEST_F(InotifyTest, ReadingRaisesNothing) {
  test_support::write_file(dir_.path() / "r.yaml", "content");
  ASSERT_GE(watch(dir_.path()), 0);
  std::ifstream in(dir_.path() / "r.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  EXPECT_EQ(text, "content");
  // A marker written afterwards arrives after anything the read could have caused.
  test_support::write_file(dir_.path() / "marker", "m");
  ASSERT_TRUE(wait_for_event(inotify_, IN_CLOSE_WRITE, "marker", seen_));
  for (const auto& event : seen_) EXPECT_EQ(event.name, "marker") << std::hex << event.mask;
}

TEST_F(InotifyTest, RemovedDirectoryEndsTheWatch) {
  const auto dir = dir_.path() / "watched";
  std::filesystem::create_directory(dir);
  const int wd = watch(dir);
  ASSERT_GE(wd, 0);
  std::filesystem::remove(dir);
  ASSERT_TRUE(wait_for_event(inotify_, IN_IGNORED, "", seen_));
  EXPECT_TRUE(std::any_of(seen_.begin(), seen_.end(), [wd](const Inotify::Event& e) {
    return e.wd == wd && (e.mask & IN_DELETE_SELF);
  }));
}

TEST_F(InotifyTest, MissingDirectoryFailsWithAnError) {
  std::error_code ec;
  EXPECT_EQ(inotify_.add_watch(dir_.path() / "missing", kMask, ec), -1);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
}

}  // namespace
}  // namespace wsgate::source
