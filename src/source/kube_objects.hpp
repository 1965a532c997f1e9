#pragma once
// The Kubernetes wire shapes of WebSocketRoute, without any I/O: list pages, watch events,
// custom resource -> route (through the same YAML parser as route files), the Accepted
// status condition and its merge-patch body, and the API paths.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>

#include "config/route.hpp"

namespace wsgate::source {

inline constexpr std::string_view kKubeGroupVersion = "wsgate.dev/v1alpha1";
inline constexpr std::string_view kKubeResource = "websocketroutes";

// The Accepted condition as found in an object's status (empty strings when absent).
struct AcceptedCondition {
  std::string status;  // "True" / "False" / "Unknown" / ""
  std::string reason;
  std::string message;
  std::string last_transition_time;
  std::int64_t observed_generation = -1;
};

// One WebSocketRoute custom resource as the source keeps it.
struct KubeObject {
  std::string namespace_;
  std::string name;
  std::string resource_version;
  std::int64_t generation = 0;
  // The route it defines, or why it is invalid ("route ns/name: spec.backends: required").
  std::variant<config::Route, std::string> route;
  std::int64_t status_observed_generation = -1;
  AcceptedCondition accepted;

  std::string key() const { return namespace_ + "/" + name; }
};

// What the source wants the object's status to say.
struct DesiredStatus {
  bool accepted = false;
  std::string reason;   // "Accepted", "Invalid" or "Conflict"
  std::string message;  // the validation error; empty when accepted
  std::int64_t generation = 0;
  bool operator==(const DesiredStatus&) const = default;
};

// An item of a list or the object of a watch event. Fails only when the object has no
// metadata.name (nothing to key it by); an invalid spec is a KubeObject whose route is the error.
std::variant<KubeObject, std::string> read_kube_object(const boost::json::object& object);

struct ListPage {
  std::vector<boost::json::object> items;
  std::string resource_version;
  std::string continue_token;
};
std::variant<ListPage, std::string> parse_list_page(std::string_view body);

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  boost::json::object object;
};
std::variant<WatchEvent, std::string> parse_watch_event(std::string_view line);

// metadata.resourceVersion of an object (also of a BOOKMARK's object); "" when absent.
std::string resource_version_of(const boost::json::object& object);
// A Status object's code and message (an ERROR event, or an error response's body).
struct KubeStatus {
  int code = 0;
  std::string reason;
  std::string message;
};
KubeStatus read_status(const boost::json::object& object);
// The same from a response body; the body itself (shortened) when it is not a Status.
KubeStatus read_status_body(std::string_view body);

bool status_matches(const KubeObject& object, const DesiredStatus& desired);
// {"status":{"observedGeneration":G,"conditions":[{"type":"Accepted",...}]}} for a
// merge-patch. `now` is an RFC 3339 time, used when the condition's status changes.
std::string status_patch_body(const KubeObject& object, const DesiredStatus& desired,
                              std::string_view now);
// The current UTC time as RFC 3339 ("2024-05-01T12:00:00Z").
std::string rfc3339_now();

// API paths. `namespace_` empty = all namespaces.
std::string collection_path(std::string_view base_path, std::string_view namespace_);
std::string status_path(std::string_view base_path, std::string_view namespace_,
                        std::string_view name);
std::string list_target(std::string_view base_path, std::string_view namespace_, std::size_t limit,
                        std::string_view continue_token);
std::string watch_target(std::string_view base_path, std::string_view namespace_,
                         std::string_view resource_version, int timeout_seconds);

}  // namespace wsgate::source
