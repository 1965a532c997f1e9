#include "source/kube_objects.hpp"

#include <ctime>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "config/route_validate.hpp"
#include "config/route_yaml.hpp"

namespace wsgate::source {
namespace {

namespace json = boost::json;

// The CRD caps a condition message at 32768 characters; the API server would refuse more.
constexpr std::size_t kMaxMessageBytes = 32768;
constexpr std::size_t kMaxErrorBodyShown = 200;

const json::object* object_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr ? value->if_object() : nullptr;
}

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return {};
  if (const json::string* text = value->if_string()) return std::string(*text);
  return {};
}

std::int64_t int_at(const json::object& object, std::string_view key, std::int64_t fallback) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return fallback;
  if (const std::int64_t* number = value->if_int64()) return *number;
  if (const std::uint64_t* number = value->if_uint64()) return static_cast<std::int64_t>(*number);
  return fallback;
}

void read_accepted(const json::object& object, KubeObject& out) {
  const json::object* status = object_at(object, "status");
  if (status == nullptr) return;
  out.status_observed_generation = int_at(*status, "observedGeneration", -1);
  const json::value* conditions = status->if_contains("conditions");
  if (conditions == nullptr || !conditions->is_array()) return;
  for (const json::value& item : conditions->get_array()) {
    const json::object* condition = item.if_object();
    if (condition == nullptr || string_at(*condition, "type") != "Accepted") continue;
    out.accepted.status = string_at(*condition, "status");
    out.accepted.reason = string_at(*condition, "reason");
    out.accepted.message = string_at(*condition, "message");
    out.accepted.last_transition_time = string_at(*condition, "lastTransitionTime");
    out.accepted.observed_generation = int_at(*condition, "observedGeneration", -1);
    return;
  }
}

// Only what the route parser reads: managedFields and the last-applied annotation can be far
// larger than the spec, and everything else in metadata is the API server's.
std::string route_document(const json::object& object, const KubeObject& out) {
  json::object doc;
  const json::value* api_version = object.if_contains("apiVersion");
  doc["apiVersion"] = api_version != nullptr ? *api_version : json::value(kKubeGroupVersion);
  const json::value* kind = object.if_contains("kind");
  doc["kind"] = kind != nullptr ? *kind : json::value("WebSocketRoute");
  doc["metadata"] = json::object{{"name", out.name}, {"namespace", out.namespace_}};
  if (const json::value* spec = object.if_contains("spec")) doc["spec"] = *spec;
  return json::serialize(doc);
}

// Cuts at a UTF-8 character boundary so the API server gets valid text.
std::string cap_message(std::string message) {
  if (message.size() <= kMaxMessageBytes) return message;
  std::size_t end = kMaxMessageBytes;
  while (end > 0 && (static_cast<unsigned char>(message[end]) & 0xC0) == 0x80) --end;
  message.resize(end);
  return message;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
        (byte >= '0' && byte <= '9') || byte == '-' || byte == '_' || byte == '.' || byte == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0F]);
    }
  }
  return out;
}

std::variant<json::object, std::string> parse_object(std::string_view text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec) return "invalid JSON: " + ec.message();
  if (!value.is_object()) return std::string("expected a JSON object");
  return std::move(value.get_object());
}

}  // namespace

std::variant<KubeObject, std::string> read_kube_object(const json::object& object) {
  const json::object* metadata = object_at(object, "metadata");
  if (metadata == nullptr) return std::string("object without metadata");
  KubeObject out;
  out.name = string_at(*metadata, "name");
  if (out.name.empty()) return std::string("object without metadata.name");
  out.namespace_ = string_at(*metadata, "namespace");
  if (out.namespace_.empty()) out.namespace_ = "default";
  out.resource_version = string_at(*metadata, "resourceVersion");
  out.generation = int_at(*metadata, "generation", 0);
  read_accepted(object, out);

  const std::string file = "kubernetes:" + out.key();
  auto parsed = config::parse_route_documents(route_document(object, out), file);
  if (auto* error = std::get_if<config::ConfigError>(&parsed)) {
    // The condition belongs to the object already, so the "kubernetes:ns/name: " prefix
    // would only repeat it.
    std::string message = std::move(error->message);
    if (message.starts_with(file + ": ")) message.erase(0, file.size() + 2);
    out.route = std::move(message);
  } else {
    auto& routes = std::get<std::vector<config::Route>>(parsed);
    if (routes.size() == 1) {
      out.route = std::move(routes.front());
    } else {
      out.route = std::string("expected one route, got ") + std::to_string(routes.size());
    }
  }
  return out;
}

std::variant<ListPage, std::string> parse_list_page(std::string_view body) {
  auto parsed = parse_object(body);
  if (auto* error = std::get_if<std::string>(&parsed)) return "list: " + *error;
  const json::object& root = std::get<json::object>(parsed);
  ListPage page;
  if (const json::object* metadata = object_at(root, "metadata")) {
    page.resource_version = string_at(*metadata, "resourceVersion");
    page.continue_token = string_at(*metadata, "continue");
  }
  if (page.resource_version.empty()) return std::string("list: no metadata.resourceVersion");
  const json::value* items = root.if_contains("items");
  if (items == nullptr || items->is_null()) return page;  // an empty list may omit items
  if (!items->is_array()) return std::string("list: items is not an array");
  for (const json::value& item : items->get_array()) {
    if (!item.is_object()) return std::string("list: an item is not an object");
    page.items.push_back(item.get_object());
  }
  return page;
}

std::variant<WatchEvent, std::string> parse_watch_event(std::string_view line) {
  auto parsed = parse_object(line);
  if (auto* error = std::get_if<std::string>(&parsed)) return "watch event: " + *error;
  const json::object& root = std::get<json::object>(parsed);
  const std::string type = string_at(root, "type");
  WatchEvent event;
  if (type == "ADDED") {
    event.type = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    event.type = WatchEventType::kModified;
  } else if (type == "DELETED") {
    event.type = WatchEventType::kDeleted;
  } else if (type == "BOOKMARK") {
    event.type = WatchEventType::kBookmark;
  } else if (type == "ERROR") {
    event.type = WatchEventType::kError;
  } else {
    return "watch event: unknown type \"" + type + "\"";
  }
  const json::object* object = object_at(root, "object");
  if (object == nullptr) return "watch event " + type + ": no object";
  event.object = *object;
  return event;
}

std::string resource_version_of(const json::object& object) {
  const json::object* metadata = object_at(object, "metadata");
  return metadata != nullptr ? string_at(*metadata, "resourceVersion") : std::string();
}

KubeStatus read_status(const json::object& object) {
  return KubeStatus{static_cast<int>(int_at(object, "code", 0)), string_at(object, "reason"),
                    string_at(object, "message")};
}

KubeStatus read_status_body(std::string_view body) {
  auto parsed = parse_object(body);
  if (auto* object = std::get_if<json::object>(&parsed)) {
    if (string_at(*object, "kind") == "Status") return read_status(*object);
  }
  KubeStatus status;
  status.message = std::string(body.substr(0, kMaxErrorBodyShown));
  return status;
}

bool status_matches(const KubeObject& object, const DesiredStatus& desired) {
  const AcceptedCondition& current = object.accepted;
  return object.status_observed_generation == desired.generation &&
         current.observed_generation == desired.generation &&
         current.status == (desired.accepted ? "True" : "False") &&
         current.reason == desired.reason && current.message == cap_message(desired.message) &&
         !current.last_transition_time.empty();
}

std::string status_patch_body(const KubeObject& object, const DesiredStatus& desired,
                              std::string_view now) {
  const std::string status = desired.accepted ? "True" : "False";
  // The time the condition last changed state, so a re-validation that comes to the same
  // answer keeps the original time.
  const std::string transition =
      object.accepted.status == status && !object.accepted.last_transition_time.empty()
          ? object.accepted.last_transition_time
          : std::string(now);
  json::object condition{{"type", "Accepted"},
                         {"status", status},
                         {"reason", desired.reason},
                         {"message", cap_message(desired.message)},
                         {"observedGeneration", desired.generation},
                         {"lastTransitionTime", transition}};
  json::object body{{"status", json::object{{"observedGeneration", desired.generation},
                                            {"conditions", json::array{std::move(condition)}}}}};
  return json::serialize(body);
}

std::string rfc3339_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string collection_path(std::string_view base_path, std::string_view namespace_) {
  std::string path(base_path);
  path += "/apis/";
  path += kKubeGroupVersion;
  if (!namespace_.empty()) path += "/namespaces/" + percent_encode(namespace_);
  path += "/";
  path += kKubeResource;
  return path;
}

std::string status_path(std::string_view base_path, std::string_view namespace_,
                        std::string_view name) {
  return collection_path(base_path, namespace_) + "/" + percent_encode(name) + "/status";
}

std::string list_target(std::string_view base_path, std::string_view namespace_, std::size_t limit,
                        std::string_view continue_token) {
  std::string target = collection_path(base_path, namespace_) + "?limit=" + std::to_string(limit);
  if (!continue_token.empty()) target += "&continue=" + percent_encode(continue_token);
  return target;
}

std::string watch_target(std::string_view base_path, std::string_view namespace_,
                         std::string_view resource_version, int timeout_seconds) {
  return collection_path(base_path, namespace_) +
         "?watch=1&resourceVersion=" + percent_encode(resource_version) +
         "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout_seconds);
}

}  // namespace wsgate::source
