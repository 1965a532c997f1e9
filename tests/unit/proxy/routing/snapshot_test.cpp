// Snapshot swap: immutable snapshots, per-route runtime that survives reloads, pinned snapshots
// staying valid after a newer one is published to a worker.

#include "proxy/routing/snapshot.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "metrics/registry.hpp"
#include "proxy/runtime/worker.hpp"

namespace wsgate::proxy {
namespace {

config::Route make_route(const std::string& name, const std::string& prefix, std::uint16_t port) {
  config::Route route;
  route.name = name;
  route.path_prefix = prefix;
  config::Backend backend;
  backend.address = "127.0.0.1:" + std::to_string(port);
  backend.host = "127.0.0.1";
  backend.port = port;
  route.backends.push_back(backend);
  return route;
}

class SnapshotTest : public ::testing::Test {
 protected:
  metrics::Registry registry_;
  ProxyMetrics metrics_{registry_};
  SnapshotBuilder builder_{metrics_};
};

TEST_F(SnapshotTest, MatchesThroughItsOwnRouter) {
  auto snapshot = builder_.build(
      config::RouteTable({make_route("a", "/a", 9001), make_route("b", "/b", 9002)}));
  auto* a = snapshot->match("x", "/a/1");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->runtime->id(), "default/a");
  EXPECT_EQ(a->route->backends[0].port, 9001);
  EXPECT_EQ(snapshot->match("x", "/c"), nullptr);
}

TEST_F(SnapshotTest, RuntimeSurvivesReloadOfTheSameRouteId) {
  auto first = builder_.build(config::RouteTable({make_route("a", "/a", 9001)}));
  auto* entry = first->match("", "/a");
  ASSERT_NE(entry, nullptr);
  entry->runtime->tunnels += 3;
  // Same id, changed content: a new snapshot with a new route, the same runtime (tunnel count).
  auto second = builder_.build(config::RouteTable({make_route("a", "/a", 9005)}));
  EXPECT_NE(first->version(), second->version());
  auto* again = second->match("", "/a");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->runtime.get(), entry->runtime.get());
  EXPECT_EQ(again->runtime->tunnels.load(), 3u);
  EXPECT_EQ(again->route->backends[0].port, 9005);
  // The old snapshot is untouched: a pinned tunnel still sees its own route.
  EXPECT_EQ(first->match("", "/a")->route->backends[0].port, 9001);
}

TEST_F(SnapshotTest, RemovedRouteStaysUsableThroughAPinnedSnapshot) {
  auto first = builder_.build(config::RouteTable({make_route("gone", "/gone", 9001)}));
  auto* pinned = first->match("", "/gone");
  auto second = builder_.build(config::RouteTable({make_route("other", "/other", 9002)}));
  EXPECT_EQ(second->match("", "/gone"), nullptr);
  ASSERT_NE(pinned, nullptr);
  EXPECT_EQ(pinned->route->name, "gone");
  EXPECT_EQ(pinned->picker->next_order().size(), 1u);
}

TEST_F(SnapshotTest, TokenBucketAdmitsABurstThenAsksToWait) {
  auto snapshot = builder_.build(config::RouteTable({make_route("a", "/", 9001)}));
  auto& runtime = *snapshot->match("", "/")->runtime;
  EXPECT_EQ(runtime.take_handshake_token(0), 0u);  // unlimited
  int admitted = 0;
  std::uint32_t wait = 0;
  for (int i = 0; i < 10; ++i) {
    wait = runtime.take_handshake_token(3);
    if (wait == 0) ++admitted;
  }
  EXPECT_EQ(admitted, 3);  // one second's worth of burst
  EXPECT_GE(wait, 1u);
}

TEST_F(SnapshotTest, WorkerSwapsPublishedSnapshotOnItsOwnThread) {
  Worker worker(0);
  worker.start();
  auto first = builder_.build(config::RouteTable({make_route("a", "/a", 9001)}));
  auto second = builder_.build(config::RouteTable({make_route("b", "/b", 9002)}));
  worker.publish(first);
  std::promise<SnapshotPtr> pinned_promise;
  boost::asio::post(worker.io(), [&] { pinned_promise.set_value(worker.snapshot()); });
  SnapshotPtr pinned = pinned_promise.get_future().get();
  EXPECT_EQ(pinned, first);
  worker.publish(second);
  std::promise<SnapshotPtr> now_promise;
  boost::asio::post(worker.io(), [&] { now_promise.set_value(worker.snapshot()); });
  EXPECT_EQ(now_promise.get_future().get(), second);
  // The pinned pointer still owns the first snapshot after the swap.
  first.reset();
  ASSERT_NE(pinned->match("", "/a"), nullptr);
  worker.stop();
}

TEST_F(SnapshotTest, ConcurrentBuildsShareOneRuntimePerRoute) {
  std::vector<std::thread> threads;
  std::vector<SnapshotPtr> built(8);
  for (std::size_t t = 0; t < built.size(); ++t) {
    threads.emplace_back([&, t] {
      built[t] = builder_.build(
          config::RouteTable({make_route("a", "/a", static_cast<std::uint16_t>(9000 + t))}));
    });
  }
  for (auto& t : threads) t.join();
  const RouteRuntime* runtime = built[0]->match("", "/a")->runtime.get();
  for (const auto& snapshot : built) EXPECT_EQ(snapshot->match("", "/a")->runtime.get(), runtime);
}

}  // namespace
}  // namespace wsgate::proxy
