// DirectoryWatcher against real mount layouts: the kubelet's ConfigMap/Secret ..data swap,
// route files symlinked elsewhere, and a directory that vanishes or is not there yet.
#include <gtest/gtest.h>

#include <map>

#include "source/directory_watcher.hpp"
#include "watcher_test_support.hpp"

namespace wsgate::source {
namespace {

using namespace test_support;

// What the kubelet's AtomicWriter does for a ConfigMap volume: the payload lives in a
// timestamped hidden directory, "..data" points at it, and each visible file is a symlink
// "name -> ..data/name". An update writes a new timestamped directory, points "..data_tmp" at
// it, renames that over "..data", adds/removes visible symlinks, then deletes the old payload.
class KubeletVolume {
 public:
  explicit KubeletVolume(fs::path dir) : dir_(std::move(dir)) {}

  void update(const std::map<std::string, std::string>& files) {
    const std::string payload = "..2024_11_25_10_00_00." + std::to_string(++generation_);
    fs::create_directory(dir_ / payload);
    for (const auto& [name, text] : files) write_file(dir_ / payload / name, text);
    fs::create_directory_symlink(payload, dir_ / "..data_tmp");
    fs::rename(dir_ / "..data_tmp", dir_ / "..data");
    for (const auto& [name, text] : files) {
      if (!fs::is_symlink(dir_ / name)) fs::create_symlink("..data/" + name, dir_ / name);
    }
    for (const auto& [name, text] : current_) {
      if (!files.contains(name)) fs::remove(dir_ / name);
    }
    if (!payload_.empty()) fs::remove_all(dir_ / payload_);
    payload_ = payload;
    current_ = files;
  }

 private:
  fs::path dir_;
  int generation_ = 0;
  std::string payload_;
  std::map<std::string, std::string> current_;
};

class LayoutTest : public WatcherTest {};

TEST_F(LayoutTest, KubeletDataSwapIsPickedUp) {
  fs::create_directories(dir_);
  KubeletVolume volume(dir_);
  const std::string v1 = route_yaml("chat", "/v1");
  volume.update({{"chat.yaml", v1}});
  ASSERT_TRUE(start_watcher());
  ASSERT_EQ(latest_version(), version_of(v1));  // through the symlinks, hidden dirs skipped

  const std::string v2 = route_yaml("chat", "/v2");
  volume.update({{"chat.yaml", v2}});
  ASSERT_TRUE(recorder_.wait_version(version_of(v2)));
  EXPECT_EQ(recorder_.error_count(), 0u) << "an atomic swap never shows a broken state";

  // A second key appears and the first goes: the table follows the ConfigMap's keys.
  const std::string other = route_yaml("other", "/other");
  volume.update({{"other.yaml", other}});
  ASSERT_TRUE(recorder_.wait_version(version_of(other)));
  EXPECT_FALSE(recorder_.wait_tables(recorder_.table_count() + 1, kQuietWindow));
  EXPECT_EQ(latest_version(), version_of(other));
}

TEST_F(LayoutTest, KubeletSwapToIdenticalContentIsSilent) {
  fs::create_directories(dir_);
  KubeletVolume volume(dir_);
  const std::string text = route_yaml("chat");
  volume.update({{"chat.yaml", text}});
  ASSERT_TRUE(start_watcher());
  volume.update({{"chat.yaml", text}});  // a resync: new payload dir, same bytes
  EXPECT_FALSE(recorder_.wait_tables(2, kQuietWindow));
  EXPECT_EQ(recorder_.error_count(), 0u);
}

TEST_F(LayoutTest, EditOfASymlinkTargetOutsideTheDirectoryIsPickedUp) {
  fs::create_directories(dir_);
  const fs::path elsewhere = temp_.path() / "elsewhere";
  fs::create_directories(elsewhere);
  write_file(elsewhere / "chat.yaml", route_yaml("chat", "/v1"));
  fs::create_symlink(elsewhere / "chat.yaml", dir_ / "chat.yaml");
  ASSERT_TRUE(start_watcher());

  // Edited in place: the event is raised in "elsewhere", not in the watched directory.
  const std::string v2 = route_yaml("chat", "/v2");
  write_file(elsewhere / "chat.yaml", v2);
  ASSERT_TRUE(recorder_.wait_version(version_of(v2)));
  // Unrelated files next to the target do not count as changes.
  write_file(elsewhere / "unrelated.yaml", route_yaml("unrelated"));
  EXPECT_FALSE(recorder_.wait_tables(3, kQuietWindow));
}

TEST_F(LayoutTest, RemovedDirectoryIsReportedAndRecoveredWhenItReturns) {
  fs::create_directories(dir_);
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/v1"));
  ASSERT_TRUE(start_watcher());

  fs::remove_all(dir_);
  ASSERT_TRUE(recorder_.wait_errors(1));
  EXPECT_NE(recorder_.errors().front().find(dir_.string()), std::string::npos)
      << recorder_.errors().front();
  EXPECT_EQ(recorder_.table_count(), 1u);  // the last good table stays in force

  // The directory comes back whole (a remount): found by the periodic check.
  const fs::path staging = temp_.path() / "staging";
  fs::create_directories(staging);
  const std::string v2 = route_yaml("chat", "/v2");
  write_file(staging / "chat.yaml", v2);
  fs::rename(staging, dir_);
  ASSERT_TRUE(recorder_.wait_version(version_of(v2)));

  // And it is watched again: an edit arrives through inotify.
  const std::string v3 = route_yaml("chat", "/v3");
  write_file(dir_ / "chat.yaml", v3);
  ASSERT_TRUE(recorder_.wait_version(version_of(v3)));
  EXPECT_EQ(recorder_.error_count(), 1u);
}

TEST_F(LayoutTest, DirectoryMovedAsideAndReplacedIsFollowed) {
  fs::create_directories(dir_);
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/v1"));
  ASSERT_TRUE(start_watcher());
  const fs::path replacement = temp_.path() / "replacement";
  fs::create_directories(replacement);
  const std::string v2 = route_yaml("chat", "/v2");
  write_file(replacement / "chat.yaml", v2);
  fs::rename(dir_, temp_.path() / "old");
  fs::rename(replacement, dir_);
  ASSERT_TRUE(recorder_.wait_version(version_of(v2)));

  // Edits in the moved-away directory no longer matter; edits at the path do.
  write_file(temp_.path() / "old" / "chat.yaml", route_yaml("chat", "/stale"));
  const std::string v3 = route_yaml("chat", "/v3");
  write_file(dir_ / "chat.yaml", v3);
  ASSERT_TRUE(recorder_.wait_version(version_of(v3)));
  EXPECT_FALSE(recorder_.wait_tables(recorder_.table_count() + 1, kQuietWindow));
  EXPECT_EQ(latest_version(), version_of(v3));
}

TEST_F(LayoutTest, MissingDirectoryAtStartIsReportedAndPickedUpLater) {
  EXPECT_FALSE(start_watcher());
  ASSERT_EQ(recorder_.error_count(), 1u);
  EXPECT_NE(recorder_.errors().front().find(dir_.string()), std::string::npos);
  EXPECT_EQ(recorder_.table_count(), 0u);

  fs::create_directories(dir_);
  const std::string text = route_yaml("chat");
  write_file(dir_ / "chat.yaml", text);
  ASSERT_TRUE(recorder_.wait_version(version_of(text)));
}

}  // namespace
}  // namespace wsgate::source
