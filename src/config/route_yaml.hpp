#pragma once
// Route documents (YAML, one or more per file) -> validated Routes, with errors naming file,
// route and field, for example
//   routes/chat.yaml: route default/chat: spec.backends[0].address: missing port

#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/route.hpp"

namespace wsgate::config {

struct ConfigError {
  std::string message;  // the full "file: route ns/name: field: reason" line
};

// Parses and validates every document in `text`. `file` is only used in error messages.
std::variant<std::vector<Route>, ConfigError> parse_route_documents(std::string_view text,
                                                                    std::string_view file);

// Reads every *.yaml / *.yml file directly in `dir` (following the kubelet's ..data symlink
// layout; hidden entries such as "..2024_01_01" are skipped) and builds one RouteTable.
// Any invalid file, or a route id defined twice, rejects the whole directory.
std::variant<RouteTable, ConfigError> load_route_directory(const std::filesystem::path& dir);

}  // namespace wsgate::config
