#include "config/route_yaml.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>

#include "config/route_fields.hpp"
#include "config/route_validate.hpp"

namespace wsgate::config {
namespace {

// Far above any real route file (a ConfigMap holds at most 1 MiB); guards against reading a
// wrong, huge file into memory.
constexpr std::size_t kMaxFileBytes = 4 * 1024 * 1024;

using Result = std::optional<FieldError>;

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string indexed(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

// A quoted scalar ("10", "true") is a string in YAML, never a number or a boolean.
bool is_plain_scalar(const YAML::Node& node) {
  return node.IsScalar() && node.Tag() != "!";
}

Result read_string(const YAML::Node& node, const std::string& path, std::string& out) {
  if (!node.IsScalar()) return FieldError{path, "expected a string"};
  out = node.Scalar();
  return std::nullopt;
}

Result read_bool(const YAML::Node& node, const std::string& path, bool& out) {
  static constexpr std::string_view kTrue[] = {"true", "True", "TRUE"};
  static constexpr std::string_view kFalse[] = {"false", "False", "FALSE"};
  if (is_plain_scalar(node)) {
    const std::string& text = node.Scalar();
    if (std::find(std::begin(kTrue), std::end(kTrue), text) != std::end(kTrue)) {
      out = true;
      return std::nullopt;
    }
    if (std::find(std::begin(kFalse), std::end(kFalse), text) != std::end(kFalse)) {
      out = false;
      return std::nullopt;
    }
  }
  return FieldError{path, "expected a boolean (true or false)"};
}

// Plain decimal only: "1.5", "1e3", "0x10" and quoted numbers are typos worth reporting.
template <typename T>
Result read_integer(const YAML::Node& node, const std::string& path, std::string_view key, T& out) {
  if (!is_plain_scalar(node)) return FieldError{path, "expected an integer"};
  std::string_view text = node.Scalar();
  bool negative = false;
  if (text.starts_with('-') || text.starts_with('+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
    return FieldError{path, "expected an integer"};
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) value = std::numeric_limits<std::uint64_t>::max();
  if (negative && value != 0) return FieldError{path, "must not be negative"};
  if (auto reason = check_integer(key, value)) return FieldError{path, *reason};
  out = static_cast<T>(value);
  return std::nullopt;
}

// One scalar knob of route_fields.hpp, read as its type says.
template <typename T>
Result read_field(const YAML::Node& node, const std::string& path, std::string_view key, T& out) {
  if constexpr (std::is_same_v<T, std::string>) {
    return read_string(node, path, out);
  } else if constexpr (std::is_same_v<T, bool>) {
    return read_bool(node, path, out);
  } else {
    static_assert(kIsIntegerField<T>);
    return read_integer(node, path, key, out);
  }
}

Result read_string_list(const YAML::Node& node, const std::string& path,
                        std::vector<std::string>& out) {
  if (!node.IsSequence()) return FieldError{path, "expected a list"};
  out.clear();
  for (std::size_t i = 0; i < node.size(); ++i) {
    std::string item;
    if (auto error = read_string(node[i], indexed(path, i), item)) return error;
    out.push_back(std::move(item));
  }
  return std::nullopt;
}

// Calls on_field(key, path, value) for each entry of a mapping, rejecting a key given twice.
// A null value (`key:` or `key: ~`) means "not given", as Kubernetes reads it.
template <typename OnField>
Result for_each_field(const YAML::Node& map, const std::string& path, OnField on_field) {
  if (!map.IsMap()) return FieldError{path, "expected a mapping"};
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) return FieldError{path, "expected a field name"};
    const std::string& key = entry.first.Scalar();
    const std::string field = join(path, key);
    if (!seen.insert(key).second) return FieldError{field, "duplicate field"};
    if (entry.second.IsNull()) continue;
    if (auto error = on_field(key, field, entry.second)) return error;
  }
  return std::nullopt;
}

Result read_backend(const YAML::Node& node, const std::string& path, Backend& backend) {
  bool has_address = false;
  auto error = for_each_field(
      node, path,
      [&](const std::string& key, const std::string& field, const YAML::Node& value) -> Result {
        if (key == "address") has_address = true;
#define WSGATE_READ_BACKEND_FIELD(member, name, ...) \
  if (key == name) return read_field(value, field, key, backend.member);
        WSGATE_BACKEND_FIELDS(WSGATE_READ_BACKEND_FIELD)
#undef WSGATE_READ_BACKEND_FIELD
        return FieldError{field, "unknown field"};
      });
  if (error) return error;
  if (!has_address) return FieldError{join(path, "address"), "required"};
  return std::nullopt;
}

Result read_backends(const YAML::Node& node, const std::string& path, std::vector<Backend>& out) {
  if (!node.IsSequence()) return FieldError{path, "expected a list"};
  for (std::size_t i = 0; i < node.size(); ++i) {
    Backend backend;
    if (auto error = read_backend(node[i], indexed(path, i), backend)) return error;
    out.push_back(std::move(backend));
  }
  return std::nullopt;
}

Result read_spec(const YAML::Node& node, Route& route) {
  bool has_backends = false;
  auto error = for_each_field(
      node, "spec",
      [&](const std::string& key, const std::string& field, const YAML::Node& value) -> Result {
        // The lists and backends are hand-written (see route_fields.hpp); every scalar knob is
        // read from the list.
        if (key == "hosts") return read_string_list(value, field, route.hosts);
        if (key == "backends") {
          has_backends = true;
          return read_backends(value, field, route.backends);
        }
        if (key == "allowedOrigins") return read_string_list(value, field, route.allowed_origins);
        if (key == "subprotocols") return read_string_list(value, field, route.subprotocols);
#define WSGATE_READ_ROUTE_FIELD(member, name, ...) \
  if (key == name) return read_field(value, field, key, route.member);
        WSGATE_ROUTE_SCALAR_FIELDS(WSGATE_READ_ROUTE_FIELD)
#undef WSGATE_READ_ROUTE_FIELD
        return FieldError{field, "unknown field"};
      });
  if (error) return error;
  if (!has_backends) return FieldError{"spec.backends", "required"};
  return std::nullopt;
}

// metadata.name and metadata.namespace; other metadata (labels, uid, ...) is Kubernetes' own.
Result read_metadata(const YAML::Node& doc, Route& route) {
  const YAML::Node metadata = doc["metadata"];
  if (!metadata || metadata.IsNull()) return FieldError{"metadata", "required"};
  if (!metadata.IsMap()) return FieldError{"metadata", "expected a mapping"};
  if (const YAML::Node name = metadata["name"]; name && !name.IsNull()) {
    if (auto error = read_string(name, "metadata.name", route.name)) return error;
  }
  if (const YAML::Node ns = metadata["namespace"]; ns && !ns.IsNull()) {
    if (auto error = read_string(ns, "metadata.namespace", route.namespace_)) return error;
  }
  return validate_route_id(route);
}

Result read_identity(const YAML::Node& node, const std::string& field, std::string_view expected) {
  std::string text;
  if (auto error = read_string(node, field, text)) return error;
  if (text != expected)
    return FieldError{field, "must be " + std::string(expected) + ", not \"" + text + "\""};
  return std::nullopt;
}

// The rest of a document once the route has a valid id: top-level fields, then spec, then the
// shared rules.
Result read_route_body(const YAML::Node& doc, Route& route) {
  bool has_api_version = false;
  bool has_kind = false;
  bool has_spec = false;
  auto error = for_each_field(
      doc, "",
      [&](const std::string& key, const std::string& field, const YAML::Node& value) -> Result {
        if (key == "apiVersion") {
          has_api_version = true;
          return read_identity(value, field, kApiVersion);
        }
        if (key == "kind") {
          has_kind = true;
          return read_identity(value, field, kKind);
        }
        if (key == "spec") {
          has_spec = true;
          return read_spec(value, route);
        }
        // metadata was read first; status is what a Kubernetes controller writes back.
        if (key == "metadata" || key == "status") return std::nullopt;
        return FieldError{field, "unknown field"};
      });
  if (error) return error;
  if (!has_api_version) return FieldError{"apiVersion", "required"};
  if (!has_kind) return FieldError{"kind", "required"};
  if (!has_spec) return FieldError{"spec", "required"};
  return validate_route_spec(route);
}

std::variant<Route, ConfigError> read_document(const YAML::Node& doc, std::string_view file,
                                               std::size_t number) {
  const std::string document = std::string(file) + ": document " + std::to_string(number) + ": ";
  if (!doc.IsMap()) return ConfigError{document + "expected a mapping (a WebSocketRoute object)"};
  Route route;
  route.source = std::string(file);
  if (auto error = read_metadata(doc, route))
    return ConfigError{document + error->field + ": " + error->reason};
  if (auto error = read_route_body(doc, route)) {
    return ConfigError{std::string(file) + ": route " + route.id() + ": " + error->field + ": " +
                       error->reason};
  }
  return route;
}

std::string duplicate_message(const Route& first, const Route& second) {
  return second.source + ": route " + second.id() + ": defined twice (also in " + first.source +
         ")";
}

// Returns the reason when the file cannot be read whole.
std::optional<std::string> read_file(const std::string& path, std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return std::string(std::strerror(errno));
  char buffer[65536];
  std::size_t count = 0;
  while (text.size() <= kMaxFileBytes && (count = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text.append(buffer, count);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return std::string("read error");
  if (text.size() > kMaxFileBytes) return std::string("larger than 4 MiB");
  return std::nullopt;
}

ConfigError yaml_error(std::string_view file, const YAML::Mark& mark, const std::string& reason) {
  // Marks are 0-based; editors count from 1.
  return ConfigError{std::string(file) + ": invalid YAML at line " + std::to_string(mark.line + 1) +
                     ", column " + std::to_string(mark.column + 1) + ": " + reason};
}

// Counts parse events without building nodes.
class EventCounter final : public YAML::EventHandler {
 public:
  std::size_t events = 0;
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { ++events; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++events; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    ++events;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++events;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++events;
  }
  void OnMapEnd() override {}
};

constexpr std::size_t kMaxDocumentsPerFile = 10000;

// yaml-cpp 0.7's LoadAll never stops on some inputs (a lone ",": it keeps yielding documents
// that produce no events and allocates until memory runs out). Walk the event stream first and
// refuse such input, so a broken file is an error instead of taking the process down.
std::optional<std::string> check_document_stream(const std::string& text) {
  std::istringstream input(text);
  YAML::Parser parser(input);
  std::size_t documents = 0;
  for (;;) {
    EventCounter counter;
    if (!parser.HandleNextDocument(counter)) return std::nullopt;
    if (++documents > kMaxDocumentsPerFile) return "more than 10000 documents in one file";
    if (counter.events == 0 && documents > 1) {
      return "a document without content (stray characters between documents?)";
    }
  }
}

bool is_route_file_name(const std::string& name) {
  if (name.empty() || name.front() == '.') return false;
  return name.ends_with(".yaml") || name.ends_with(".yml");
}

}  // namespace

std::variant<std::vector<Route>, ConfigError> parse_route_documents(std::string_view text,
                                                                    std::string_view file) {
  std::vector<Route> routes;
  try {
    const std::string owned(text);
    if (auto problem = check_document_stream(owned))
      return ConfigError{std::string(file) + ": invalid YAML: " + *problem};
    const std::vector<YAML::Node> documents = YAML::LoadAll(owned);
    for (std::size_t i = 0; i < documents.size(); ++i) {
      if (documents[i].IsNull()) continue;  // an empty document, or comments only
      auto route = read_document(documents[i], file, i + 1);
      if (auto* error = std::get_if<ConfigError>(&route)) return std::move(*error);
      routes.push_back(std::get<Route>(std::move(route)));
    }
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp 0.7 gives this one the message "bad file".
    return yaml_error(file, e.mark, "nesting too deep");
  } catch (const YAML::Exception& e) {
    return yaml_error(file, e.mark, e.msg);
  }
  if (auto duplicate = find_duplicate_id(routes))
    return ConfigError{duplicate_message(*duplicate->first, *duplicate->second)};
  return routes;
}

std::variant<RouteTable, ConfigError> load_route_directory(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return ConfigError{dir.string() + ": cannot read directory: " + ec.message()};
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (!is_route_file_name(name)) continue;
    // status() follows symlinks: "chat.yaml -> ..data/chat.yaml" counts as a regular file.
    const fs::file_status status = fs::status(it->path(), ec);
    if (ec && status.type() != fs::file_type::not_found) break;
    ec.clear();
    if (status.type() == fs::file_type::not_found)
      return ConfigError{(dir / name).string() + ": broken symbolic link"};
    if (status.type() == fs::file_type::regular) names.push_back(name);
  }
  if (ec) return ConfigError{dir.string() + ": cannot read directory: " + ec.message()};
  std::sort(names.begin(), names.end());

  std::vector<Route> routes;
  for (const auto& name : names) {
    const std::string path = (dir / name).string();
    std::string text;
    if (auto reason = read_file(path, text)) return ConfigError{path + ": cannot read: " + *reason};
    auto parsed = parse_route_documents(text, path);
    if (auto* error = std::get_if<ConfigError>(&parsed)) return std::move(*error);
    for (auto& route : std::get<std::vector<Route>>(parsed)) routes.push_back(std::move(route));
  }
  if (auto duplicate = find_duplicate_id(routes))
    return ConfigError{duplicate_message(*duplicate->first, *duplicate->second)};
  return RouteTable(std::move(routes));
}

}  // namespace wsgate::config
