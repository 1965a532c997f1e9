// load_route_directory over real directories: file selection and order, duplicates across
// files, the kubelet ConfigMap layout, and the shipped example routes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "config/route_yaml.hpp"
#include "config_test_util.hpp"

namespace wsgate::config {
namespace {

namespace fs = std::filesystem;
using test::route_doc;
using test::TempDir;

RouteTable load_ok(const fs::path& dir) {
  auto result = load_route_directory(dir);
  if (auto* error = std::get_if<ConfigError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << error->message;
    return {};
  }
  return std::get<RouteTable>(std::move(result));
}

std::string load_error(const fs::path& dir) {
  auto result = load_route_directory(dir);
  if (auto* error = std::get_if<ConfigError>(&result)) return error->message;
  return "";
}

TEST(RouteDirectory, EmptyDirectoryIsAnEmptyTable) {
  TempDir dir;
  const RouteTable table = load_ok(dir.path());
  EXPECT_TRUE(table.routes().empty());
  EXPECT_EQ(table.version(), RouteTable().version());
}

TEST(RouteDirectory, MissingDirectoryIsAnError) {
  TempDir dir;
  const fs::path missing = dir.path() / "nope";
  EXPECT_EQ(load_error(missing),
            missing.string() + ": cannot read directory: No such file or directory");
}

TEST(RouteDirectory, ReadsYamlAndYmlFilesOnlySkippingHiddenOnesAndFolders) {
  TempDir dir;
  dir.write("a.yaml", route_doc("a"));
  dir.write("b.yml", route_doc("b"));
  dir.write(".hidden.yaml", route_doc("hidden"));
  dir.write("c.yaml~", route_doc("backup"));
  dir.write("README.md", "not yaml: [");
  dir.write("d.json", "{");
  dir.write("sub.yaml/inner.yaml", route_doc("inner"));
  const RouteTable table = load_ok(dir.path());
  ASSERT_EQ(table.routes().size(), 2u);
  EXPECT_EQ(table.routes()[0].id(), "default/a");
  EXPECT_EQ(table.routes()[0].source, (dir.path() / "a.yaml").string());
  EXPECT_EQ(table.routes()[1].id(), "default/b");
  EXPECT_EQ(table.routes()[1].source, (dir.path() / "b.yml").string());
}

TEST(RouteDirectory, OneBadFileRejectsTheWholeDirectory) {
  TempDir dir;
  dir.write("a.yaml", route_doc("a"));
  dir.write("chat.yaml", route_doc("chat", "/", "127.0.0.1"));
  dir.write("z.yaml", route_doc("z"));
  EXPECT_EQ(load_error(dir.path()),
            (dir.path() / "chat.yaml").string() +
                ": route default/chat: spec.backends[0].address: missing port");
}

TEST(RouteDirectory, FilesAreReadInNameOrderSoTheFirstErrorIsStable) {
  TempDir dir;
  dir.write("b.yaml", "b: [\n");
  dir.write("a.yaml", "kind: x\n");
  EXPECT_EQ(load_error(dir.path()),
            (dir.path() / "a.yaml").string() + ": document 1: metadata: required");
}

TEST(RouteDirectory, SameRouteInTwoFilesNamesBoth) {
  TempDir dir;
  dir.write("a.yaml", route_doc("chat"));
  dir.write("b.yaml", route_doc("other") + "---\n" + route_doc("chat", "/x"));
  EXPECT_EQ(load_error(dir.path()), (dir.path() / "b.yaml").string() +
                                        ": route default/chat: defined twice (also in " +
                                        (dir.path() / "a.yaml").string() + ")");
}

TEST(RouteDirectory, HowRoutesAreSplitIntoFilesDoesNotChangeTheVersion) {
  TempDir one;
  one.write("all.yaml", route_doc("b", "/b") + "---\n" + route_doc("a", "/a"));
  TempDir two;
  two.write("x.yaml", route_doc("a", "/a"));
  two.write("y.yaml", route_doc("b", "/b"));
  const RouteTable first = load_ok(one.path());
  const RouteTable second = load_ok(two.path());
  ASSERT_EQ(first.routes().size(), 2u);
  EXPECT_EQ(first.version(), second.version());

  two.write("y.yaml", route_doc("b", "/bb"));
  EXPECT_NE(load_ok(two.path()).version(), first.version());
}

// What the kubelet makes of a ConfigMap volume: files in a timestamped folder, "..data"
// pointing at it, and visible names pointing through "..data". An update writes a new folder
// and swaps "..data" with one rename.
TEST(RouteDirectory, KubeletConfigMapLayoutAndItsAtomicSwap) {
  TempDir dir;
  const fs::path root = dir.path();
  dir.write("..2024_01_01_00_00_00.000000001/chat.yaml", route_doc("chat", "/chat"));
  dir.write("..2024_01_01_00_00_00.000000001/echo.yaml", route_doc("echo", "/echo"));
  fs::create_directory_symlink("..2024_01_01_00_00_00.000000001", root / "..data");
  fs::create_symlink("..data/chat.yaml", root / "chat.yaml");
  fs::create_symlink("..data/echo.yaml", root / "echo.yaml");

  const RouteTable before = load_ok(root);
  ASSERT_EQ(before.routes().size(), 2u);
  EXPECT_EQ(before.routes()[0].id(), "default/chat");
  EXPECT_EQ(before.routes()[0].source, (root / "chat.yaml").string());
  EXPECT_EQ(before.routes()[1].path_prefix, "/echo");

  dir.write("..2024_01_02_00_00_00.000000002/chat.yaml", route_doc("chat", "/chat2"));
  dir.write("..2024_01_02_00_00_00.000000002/echo.yaml", route_doc("echo", "/echo"));
  fs::create_directory_symlink("..2024_01_02_00_00_00.000000002", root / "..data_tmp");
  fs::rename(root / "..data_tmp", root / "..data");
  fs::remove_all(root / "..2024_01_01_00_00_00.000000001");

  const RouteTable after = load_ok(root);
  ASSERT_EQ(after.routes().size(), 2u);
  EXPECT_EQ(after.find("default/chat")->path_prefix, "/chat2");
  EXPECT_NE(after.version(), before.version());
}

TEST(RouteDirectory, BrokenSymlinkIsAnError) {
  TempDir dir;
  fs::create_symlink("..data/gone.yaml", dir.path() / "gone.yaml");
  EXPECT_EQ(load_error(dir.path()), (dir.path() / "gone.yaml").string() + ": broken symbolic link");
}

TEST(RouteDirectory, OversizedFileIsRejected) {
  TempDir dir;
  dir.write("big.yaml", std::string(5 * 1024 * 1024, '#'));
  EXPECT_EQ(load_error(dir.path()),
            (dir.path() / "big.yaml").string() + ": cannot read: larger than 4 MiB");
}

TEST(RouteDirectory, ShippedExampleRoutesLoad) {
  const RouteTable table = load_ok(fs::path(WSGATE_SOURCE_DIR) / "deploy/examples/routes");
  ASSERT_EQ(table.routes().size(), 3u);

  const Route* echo = table.find("default/echo");
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->path_prefix, "/echo");
  EXPECT_EQ(echo->idle_timeout_seconds, 300u);
  ASSERT_EQ(echo->backends.size(), 1u);
  EXPECT_EQ(echo->backends[0].address, "127.0.0.1:9001");

  const Route* demo = table.find("default/demo");
  ASSERT_NE(demo, nullptr);
  EXPECT_EQ(demo->path_prefix, "/");
  EXPECT_FALSE(demo->websocket_only);
  EXPECT_EQ(demo->backends[0].port, 9001);

  const Route* chat = table.find("default/chat");
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->hosts, (std::vector<std::string>{"chat.example.com", "*.chat.example.com"}));
  EXPECT_EQ(chat->path_prefix, "/chat");
  ASSERT_EQ(chat->backends.size(), 2u);
  EXPECT_EQ(chat->backends[0].address, "127.0.0.1:9001");
  EXPECT_EQ(chat->backends[0].weight, 3u);
  EXPECT_EQ(chat->backends[1].address, "127.0.0.1:9002");
  EXPECT_FALSE(chat->allowed_origins.empty());
  EXPECT_FALSE(chat->subprotocols.empty());
  EXPECT_NE(chat->max_tunnels, 0u);
  EXPECT_NE(chat->max_message_bytes, 0u);
}

}  // namespace
}  // namespace wsgate::config
