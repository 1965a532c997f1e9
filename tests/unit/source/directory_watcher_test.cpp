// DirectoryWatcher on a plain directory: initial load, edits, debouncing, rejections, reload_now,
// stop. Layout cases (kubelet ..data swaps, symlinks, a vanishing directory) are in
// directory_watcher_layout_test.cpp.
#include "source/directory_watcher.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "watcher_test_support.hpp"

namespace wsgate::source {
namespace {

using namespace test_support;
using std::chrono::milliseconds;

class DirectoryWatcherTest : public WatcherTest {
 protected:
  void SetUp() override { fs::create_directories(dir_); }
};

TEST_F(DirectoryWatcherTest, InitialLoadIsReportedSynchronously) {
  const std::string text = route_yaml("chat");
  write_file(dir_ / "chat.yaml", text);
  ASSERT_TRUE(start_watcher());
  ASSERT_EQ(recorder_.table_count(), 1u);  // no waiting: start() reports before returning
  const auto table = recorder_.tables().front();
  ASSERT_EQ(table.routes().size(), 1u);
  EXPECT_EQ(table.routes()[0].id(), "default/chat");
  EXPECT_EQ(table.version(), version_of(text));
  EXPECT_EQ(recorder_.error_count(), 0u);
}

TEST_F(DirectoryWatcherTest, EditGivesExactlyOneCallback) {
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/ws"));
  ASSERT_TRUE(start_watcher());
  const std::string edited = route_yaml("chat", "/chat");
  write_file(dir_ / "chat.yaml", edited);
  ASSERT_TRUE(recorder_.wait_tables(2));
  EXPECT_EQ(latest_version(), version_of(edited));
  EXPECT_FALSE(recorder_.wait_tables(3, kQuietWindow)) << "one edit, one callback";
}

TEST_F(DirectoryWatcherTest, RapidWritesAreDebouncedAndTheLastContentWins) {
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/start"));
  make_watcher(milliseconds(100), milliseconds(1000));
  ASSERT_TRUE(start_watcher());
  std::string last;
  for (int i = 0; i < 20; ++i) {
    last = route_yaml("chat", "/ws/" + std::to_string(i));
    write_file(dir_ / "chat.yaml", last);  // truncate + write: each one briefly empty
  }
  ASSERT_TRUE(recorder_.wait_version(version_of(last)));
  EXPECT_FALSE(recorder_.wait_version("no such version", kQuietWindow));
  EXPECT_EQ(latest_version(), version_of(last)) << "a later callback replaced the final content";
  const auto tables = recorder_.tables();
  EXPECT_LE(tables.size(), 1u + 3u) << "20 writes should collapse into very few reloads";
  for (const auto& table : tables) {
    EXPECT_EQ(table.routes().size(), 1u) << "a truncated file was published as a config";
  }
}

TEST_F(DirectoryWatcherTest, InvalidEditIsRejectedOnceAndTheFixIsApplied) {
  const std::string good = route_yaml("chat", "/ws");
  write_file(dir_ / "chat.yaml", good);
  ASSERT_TRUE(start_watcher());

  const std::string broken = invalid_route_yaml("chat");
  write_file(dir_ / "chat.yaml", broken);
  ASSERT_TRUE(recorder_.wait_errors(1));
  const std::string message = recorder_.errors().front();
  EXPECT_NE(message.find("chat.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("default/chat"), std::string::npos) << message;
  EXPECT_EQ(recorder_.table_count(), 1u);
  EXPECT_EQ(latest_version(), version_of(good));

  // The same broken content again (an editor re-saving it) is not reported again.
  write_file(dir_ / "chat.yaml", broken);
  EXPECT_FALSE(recorder_.wait_errors(2, kQuietWindow));
  EXPECT_EQ(recorder_.table_count(), 1u);

  const std::string fixed = route_yaml("chat", "/fixed");
  write_file(dir_ / "chat.yaml", fixed);
  ASSERT_TRUE(recorder_.wait_version(version_of(fixed)));
  EXPECT_EQ(recorder_.table_count(), 2u);
  EXPECT_EQ(recorder_.error_count(), 1u);
}

TEST_F(DirectoryWatcherTest, RevertIsSilentAndTheSameMistakeLaterIsReportedAgain) {
  const std::string good = route_yaml("chat");
  write_file(dir_ / "chat.yaml", good);
  ASSERT_TRUE(start_watcher());
  const std::string broken = invalid_route_yaml("chat");
  write_file(dir_ / "chat.yaml", broken);
  ASSERT_TRUE(recorder_.wait_errors(1));

  write_file(dir_ / "chat.yaml", good);  // back to the version in force: nothing to publish
  EXPECT_FALSE(recorder_.wait_tables(2, kQuietWindow));

  write_file(dir_ / "chat.yaml", broken);
  ASSERT_TRUE(recorder_.wait_errors(2)) << "a new broken edit must be reported";
  EXPECT_EQ(recorder_.errors()[0], recorder_.errors()[1]);
  EXPECT_EQ(recorder_.table_count(), 1u);
}

TEST_F(DirectoryWatcherTest, IdenticalRewritesAreSilent) {
  const std::string text = route_yaml("chat");
  write_file(dir_ / "chat.yaml", text);
  ASSERT_TRUE(start_watcher());
  write_file(dir_ / "chat.yaml", text);
  write_file_atomically(dir_ / "chat.yaml", text);
  fs::permissions(dir_ / "chat.yaml", fs::perms::owner_exec, fs::perm_options::add);  // IN_ATTRIB
  write_file(dir_ / "notes.txt", "not a route file");
  EXPECT_FALSE(recorder_.wait_tables(2, kQuietWindow));
  EXPECT_EQ(recorder_.error_count(), 0u);
}

TEST_F(DirectoryWatcherTest, NewAndDeletedFilesChangeTheTable) {
  write_file(dir_ / "a.yaml", route_yaml("a"));
  ASSERT_TRUE(start_watcher());
  write_file(dir_ / "b.yml", route_yaml("b", "/b"));
  ASSERT_TRUE(
      recorder_.wait_version(version_of(route_yaml("a") + "---\n" + route_yaml("b", "/b"))));
  fs::remove(dir_ / "a.yaml");
  ASSERT_TRUE(recorder_.wait_version(version_of(route_yaml("b", "/b"))));
  EXPECT_EQ(recorder_.error_count(), 0u);
}

TEST_F(DirectoryWatcherTest, EditorRenameOverTheFileIsPickedUp) {
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/ws"));
  ASSERT_TRUE(start_watcher());
  const std::string saved = route_yaml("chat", "/saved");
  write_file_atomically(dir_ / "chat.yaml", saved);
  ASSERT_TRUE(recorder_.wait_version(version_of(saved)));
  EXPECT_EQ(recorder_.table_count(), 2u);
  EXPECT_EQ(recorder_.error_count(), 0u);
}

// A writer that truncates, writes part, and pauses longer than max_delay must not have the
// part published: the reload waits for IN_CLOSE_WRITE (bounded by a grace period).
TEST_F(DirectoryWatcherTest, SlowInPlaceWriteIsNotReadHalfWay) {
  write_file(dir_ / "chat.yaml", route_yaml("old"));
  ASSERT_TRUE(start_watcher());
  const std::string first = route_yaml("a", "/a");
  const std::string whole = first + "---\n" + route_yaml("b", "/b");

  const int fd = ::open((dir_ / "chat.yaml").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, first.data(), first.size()), static_cast<ssize_t>(first.size()));
  const bool published_half = recorder_.wait_tables(2, kQuietWindow);
  const std::string rest = whole.substr(first.size());
  ASSERT_EQ(::write(fd, rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
  ::close(fd);
  EXPECT_FALSE(published_half) << "the first document alone was published";

  ASSERT_TRUE(recorder_.wait_version(version_of(whole)));
  for (const auto& table : recorder_.tables()) {
    EXPECT_NE(table.version(), version_of(first));
  }
}

TEST_F(DirectoryWatcherTest, ReloadNowReportsEvenWhenUnchanged) {
  const std::string text = route_yaml("chat");
  write_file(dir_ / "chat.yaml", text);
  ASSERT_TRUE(start_watcher());
  std::thread signal_thread([this] { watcher_->reload_now(); });
  signal_thread.join();
  ASSERT_TRUE(recorder_.wait_tables(2));
  EXPECT_EQ(recorder_.tables()[1].version(), version_of(text));

  // And an error in force is reported again on demand, although its text did not change.
  write_file(dir_ / "chat.yaml", invalid_route_yaml("chat"));
  ASSERT_TRUE(recorder_.wait_errors(1));
  watcher_->reload_now();
  ASSERT_TRUE(recorder_.wait_errors(2));
  EXPECT_EQ(recorder_.errors()[0], recorder_.errors()[1]);
  EXPECT_EQ(recorder_.table_count(), 2u);
}

TEST_F(DirectoryWatcherTest, StopReturnsPromptlyWithABurstPending) {
  write_file(dir_ / "chat.yaml", route_yaml("chat"));
  make_watcher(milliseconds(10'000), milliseconds(20'000));
  ASSERT_TRUE(start_watcher());
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/pending"));

  const auto begin = std::chrono::steady_clock::now();
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 3; ++i) stoppers.emplace_back([this] { watcher_->stop(); });
  watcher_->stop();
  for (auto& t : stoppers) t.join();
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(took, milliseconds(1000));
  EXPECT_EQ(recorder_.table_count(), 1u);  // the pending burst died with the thread
  watcher_->reload_now();                  // harmless after stop
  watcher_.reset();                        // destructor after stop
}

TEST_F(DirectoryWatcherTest, StopFromInsideACallbackEndsTheWatch) {
  write_file(dir_ / "chat.yaml", route_yaml("chat"));
  auto record = recorder_.on_table();
  std::atomic<bool> stop_in_callback{true};
  DirectoryWatcher* self = nullptr;
  DirectoryWatcher watcher(
      DirectoryWatcher::Options{dir_, kHoldoff, kMaxDelay},
      [&](config::RouteTable table) {
        record(std::move(table));
        if (stop_in_callback) self->stop();  // must neither deadlock nor throw
      },
      recorder_.on_error());
  self = &watcher;
  ASSERT_TRUE(watcher.start());  // stop() from the first, synchronous callback
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/ignored"));
  EXPECT_FALSE(recorder_.wait_tables(2, kQuietWindow));

  stop_in_callback = false;
  ASSERT_TRUE(watcher.start());  // restartable; picks up the edit made while stopped
  ASSERT_EQ(recorder_.table_count(), 2u);
  stop_in_callback = true;  // this time stop() comes from the watcher thread
  const std::string edited = route_yaml("chat", "/edited");
  write_file(dir_ / "chat.yaml", edited);
  ASSERT_TRUE(recorder_.wait_version(version_of(edited)));
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/after-stop"));
  EXPECT_FALSE(recorder_.wait_tables(4, kQuietWindow));
  watcher.stop();  // joins the thread that stopped itself
}

TEST_F(DirectoryWatcherTest, StartAgainAfterStopWatchesAgain) {
  write_file(dir_ / "chat.yaml", route_yaml("chat"));
  ASSERT_TRUE(start_watcher());
  watcher_->stop();
  const std::string edited = route_yaml("chat", "/again");
  write_file(dir_ / "chat.yaml", edited);
  ASSERT_TRUE(watcher_->start());  // reads the edit made while stopped
  EXPECT_EQ(latest_version(), version_of(edited));
  const std::string later = route_yaml("chat", "/later");
  write_file(dir_ / "chat.yaml", later);
  ASSERT_TRUE(recorder_.wait_version(version_of(later)));
}

TEST_F(DirectoryWatcherTest, ThrowingCallbackDoesNotStopTheWatch) {
  write_file(dir_ / "chat.yaml", route_yaml("chat"));
  std::atomic<int> calls{0};
  auto record = recorder_.on_table();
  DirectoryWatcher::Options options{dir_, kHoldoff, kMaxDelay};
  DirectoryWatcher watcher(
      options,
      [&](config::RouteTable table) {
        record(std::move(table));
        if (calls.fetch_add(1) < 2) throw std::runtime_error("consumer bug");
      },
      recorder_.on_error());
  ASSERT_TRUE(watcher.start());
  write_file(dir_ / "chat.yaml", route_yaml("chat", "/two"));
  ASSERT_TRUE(recorder_.wait_tables(2));
  const std::string three = route_yaml("chat", "/three");
  write_file(dir_ / "chat.yaml", three);
  ASSERT_TRUE(recorder_.wait_version(version_of(three)));
}

}  // namespace
}  // namespace wsgate::source
