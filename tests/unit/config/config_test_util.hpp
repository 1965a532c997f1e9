#pragma once
// Helpers for the config tests: a real temporary directory and short ways to parse text.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <variant>

#include "config/route_yaml.hpp"

namespace wsgate::config::test {

// A fresh directory under the system temp dir, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "wsgate-config-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes `text` to path()/name (creating parent folders) and returns the full path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// A valid route document with the given name, path prefix and backend address.
inline std::string route_doc(const std::string& name, const std::string& path_prefix = "/",
                             const std::string& address = "127.0.0.1:9001") {
  return "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: " + name +
         "\nspec:\n  pathPrefix: " + path_prefix + "\n  backends:\n    - address: " + address +
         "\n";
}

// The error message of parsing `text` as file "routes/chat.yaml", or "" when it parsed.
inline std::string parse_error(const std::string& text) {
  auto result = parse_route_documents(text, "routes/chat.yaml");
  if (auto* error = std::get_if<ConfigError>(&result)) return error->message;
  return "";
}

// The routes parsed from `text` (as "routes/chat.yaml"); a test failure when it did not parse.
inline std::vector<Route> parse_ok(const std::string& text) {
  auto result = parse_route_documents(text, "routes/chat.yaml");
  if (auto* error = std::get_if<ConfigError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << error->message;
    return {};
  }
  return std::get<std::vector<Route>>(std::move(result));
}

}  // namespace wsgate::config::test
