// SnapshotCache: a version is the content's hash, identical content is never a new snapshot,
// and the wire form decodes back to the same table.
#include "controlplane/snapshot_cache.hpp"

#include <gtest/gtest.h>

#include "config/route_proto.hpp"
#include "controlplane_test_util.hpp"

namespace wsgate::controlplane {
namespace {

const std::string kChat = test::route("chat",
                                      "  pathPrefix: /chat\n  backends:\n"
                                      "    - address: 127.0.0.1:9001\n");
const std::string kEcho = test::route("echo",
                                      "  pathPrefix: /echo\n  backends:\n"
                                      "    - address: 127.0.0.1:9002\n");

TEST(SnapshotCache, EmptyUntilTheFirstUpdate) {
  SnapshotCache cache;
  EXPECT_EQ(cache.current(), nullptr);
}

TEST(SnapshotCache, FirstTableBecomesTheSnapshotWithItsContentHash) {
  SnapshotCache cache;
  const auto table = test::table_from(kChat);
  const auto snapshot = cache.update(table);
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->version(), table.version());
  EXPECT_EQ(snapshot->version().size(), 16u);
  EXPECT_EQ(cache.current(), snapshot);
}

TEST(SnapshotCache, IdenticalContentIsNotANewSnapshot) {
  SnapshotCache cache;
  const auto first = cache.update(test::table_from(kChat + kEcho));
  ASSERT_NE(first, nullptr);
  // Same routes in another order, parsed again: same content, same version.
  EXPECT_EQ(cache.update(test::table_from(kEcho + kChat)), nullptr);
  EXPECT_EQ(cache.current(), first);
}

TEST(SnapshotCache, ASourceRenameAloneIsNotANewSnapshot) {
  SnapshotCache cache;
  auto routes = test::table_from(kChat).routes();
  ASSERT_NE(cache.update(config::RouteTable(routes)), nullptr);
  routes[0].source = "routes/renamed.yaml";
  EXPECT_EQ(cache.update(config::RouteTable(routes)), nullptr);
}

TEST(SnapshotCache, ChangedContentIsANewVersionAndGoingBackRestoresTheOldOne) {
  SnapshotCache cache;
  const auto a = cache.update(test::table_from(kChat));
  const auto b = cache.update(test::table_from(kChat + kEcho));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->version(), b->version());
  const auto back = cache.update(test::table_from(kChat));
  ASSERT_NE(back, nullptr) << "A -> B -> A must push A again";
  EXPECT_EQ(back->version(), a->version());
}

TEST(SnapshotCache, OneFieldChangedIsANewVersion) {
  SnapshotCache cache;
  ASSERT_NE(cache.update(test::table_from(kChat)), nullptr);
  const auto changed =
      test::table_from(test::route("chat",
                                   "  pathPrefix: /chat\n  idleTimeoutSeconds: 5\n  backends:\n"
                                   "    - address: 127.0.0.1:9001\n"));
  EXPECT_NE(cache.update(changed), nullptr);
}

TEST(SnapshotCache, WireFormDecodesToTheSameVersion) {
  SnapshotCache cache;
  const auto snapshot = cache.update(test::table_from(kChat + kEcho));
  ASSERT_NE(snapshot, nullptr);
  auto decoded = config::from_proto(*snapshot->wire);
  ASSERT_TRUE(std::holds_alternative<config::RouteTable>(decoded));
  EXPECT_EQ(std::get<config::RouteTable>(decoded).version(), snapshot->version());
  EXPECT_EQ(snapshot->wire->routes_size(), 2);
}

TEST(SnapshotCache, EmptyTableIsAValidSnapshot) {
  SnapshotCache cache;
  const auto snapshot = cache.update(config::RouteTable());
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->wire->routes_size(), 0);
  EXPECT_EQ(cache.update(config::RouteTable()), nullptr);
}

}  // namespace
}  // namespace wsgate::controlplane
