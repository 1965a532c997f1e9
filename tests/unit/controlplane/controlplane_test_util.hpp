#pragma once
// Helpers for the control-plane tests: route tables parsed from YAML text, as the watcher
// builds them.

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "config/route.hpp"
#include "config/route_yaml.hpp"

namespace wsgate::controlplane::test {

// A whole table from route documents; a parse error fails the test (and gives an empty table).
inline config::RouteTable table_from(const std::string& yaml) {
  auto parsed = config::parse_route_documents(yaml, "routes/test.yaml");
  if (auto* error = std::get_if<config::ConfigError>(&parsed)) {
    ADD_FAILURE() << "test routes do not parse: " << error->message;
    return config::RouteTable();
  }
  return config::RouteTable(std::get<std::vector<config::Route>>(parsed));
}

// One route document: `spec` is the YAML under spec:, indented by four spaces per line.
inline std::string route(const std::string& name, const std::string& spec) {
  return "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata:\n  name: " + name +
         "\nspec:\n" + spec + "---\n";
}

}  // namespace wsgate::controlplane::test
