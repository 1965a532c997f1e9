// The Kubernetes wire shapes: custom resource -> route through the route-file parser, list
// pages, watch events, the Accepted status and its patch body, API paths, and merging the
// custom resources' routes with a route directory's.

#include "source/kube_objects.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "config/route_yaml.hpp"
#include "source/route_merge.hpp"

namespace wsgate::source {
namespace {

namespace json = boost::json;

json::object object_from(std::string_view text) {
  return json::parse(text).as_object();
}

// A WebSocketRoute as the API server returns it: server-set metadata, managedFields, status.
constexpr std::string_view kServed = R"({
  "apiVersion": "wsgate.dev/v1alpha1", "kind": "WebSocketRoute",
  "metadata": {"name": "chat", "namespace": "team-a", "uid": "6f1c", "resourceVersion": "4711",
    "generation": 3, "creationTimestamp": "2024-01-01T00:00:00Z",
    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}"},
    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
  "spec": {"hosts": ["Chat.Example.com"], "pathPrefix": "/ws", "maxTunnels": 100,
    "backends": [{"address": "10.0.0.7:9000", "weight": 2}],
    "allowedOrigins": ["https://chat.example.com"]},
  "status": {"observedGeneration": 2, "conditions": [
    {"type": "Ready", "status": "True", "reason": "X", "message": "",
     "lastTransitionTime": "2024-01-01T00:00:00Z"},
    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
     "observedGeneration": 2, "lastTransitionTime": "2024-01-02T00:00:00Z"}]}
})";

KubeObject read_ok(std::string_view text) {
  auto read = read_kube_object(object_from(text));
  if (auto* error = std::get_if<std::string>(&read)) ADD_FAILURE() << *error;
  return std::holds_alternative<KubeObject>(read) ? std::get<KubeObject>(read) : KubeObject{};
}

std::string route_error(std::string_view text) {
  const KubeObject object = read_ok(text);
  if (auto* error = std::get_if<std::string>(&object.route)) return *error;
  ADD_FAILURE() << "expected an invalid route";
  return {};
}

TEST(KubeObject, ServedObjectBecomesARoute) {
  const KubeObject object = read_ok(kServed);
  EXPECT_EQ(object.key(), "team-a/chat");
  EXPECT_EQ(object.resource_version, "4711");
  EXPECT_EQ(object.generation, 3);
  EXPECT_EQ(object.status_observed_generation, 2);
  EXPECT_EQ(object.accepted.status, "True");
  EXPECT_EQ(object.accepted.observed_generation, 2);
  EXPECT_EQ(object.accepted.last_transition_time, "2024-01-02T00:00:00Z");
  const auto* route = std::get_if<config::Route>(&object.route);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->id(), "team-a/chat");
  EXPECT_EQ(route->source, "kubernetes:team-a/chat");
  EXPECT_EQ(route->hosts, std::vector<std::string>{"chat.example.com"});  // normalised
  EXPECT_EQ(route->path_prefix, "/ws");
  EXPECT_EQ(route->max_tunnels, 100u);
  ASSERT_EQ(route->backends.size(), 1u);
  EXPECT_EQ(route->backends[0].host, "10.0.0.7");
  EXPECT_EQ(route->backends[0].port, 9000);
  EXPECT_EQ(route->backends[0].weight, 2u);
}

TEST(KubeObject, SameRulesAsRouteFiles) {
  EXPECT_EQ(route_error(R"({"metadata": {"name": "bad", "namespace": "default"},
                            "spec": {"backends": [{"address": "127.0.0.1"}]}})"),
            "route default/bad: spec.backends[0].address: missing port");
  EXPECT_EQ(route_error(R"({"metadata": {"name": "b", "namespace": "n"}, "spec": {}})"),
            "route n/b: spec.backends: required");
  EXPECT_EQ(route_error(R"({"metadata": {"name": "b", "namespace": "n"}})"),
            "route n/b: spec: required");
  // JSON strings are quoted scalars to the parser: a number in quotes stays a string.
  EXPECT_EQ(route_error(R"({"metadata": {"name": "b", "namespace": "n"}, "spec": {
                            "maxTunnels": "10", "backends": [{"address": "h:1"}]}})"),
            "route n/b: spec.maxTunnels: expected an integer");
  EXPECT_EQ(route_error(R"({"metadata": {"name": "b", "namespace": "n"}, "spec": {
                            "maxTunnels": 1.5, "backends": [{"address": "h:1"}]}})"),
            "route n/b: spec.maxTunnels: expected an integer");
  EXPECT_EQ(route_error(R"({"metadata": {"name": "b", "namespace": "n"}, "spec": {
                            "colour": "red", "backends": [{"address": "h:1"}]}})"),
            "route n/b: spec.colour: unknown field");
  EXPECT_EQ(route_error(R"({"kind": "Ingress", "metadata": {"name": "b", "namespace": "n"},
                            "spec": {"backends": [{"address": "h:1"}]}})"),
            "route n/b: kind: must be WebSocketRoute, not \"Ingress\"");
}

TEST(KubeObject, StringsWithEscapesSurviveTheYamlRoundTrip) {
  const KubeObject object = read_ok(R"({"metadata": {"name": "e", "namespace": "n"}, "spec": {
      "subprotocols": ["v1.chat"], "backends": [{"address": "h:1", "tls": true,
      "caFile": "/etc/ca/\"q\"\\ \t\u00e9 #not-a-comment: [x], {y}"}]}})");
  const auto* route = std::get_if<config::Route>(&object.route);
  ASSERT_NE(route, nullptr) << std::get<std::string>(object.route);
  ASSERT_EQ(route->backends.size(), 1u);
  EXPECT_EQ(route->backends[0].ca_file, "/etc/ca/\"q\"\\ \t\xc3\xa9 #not-a-comment: [x], {y}");
  EXPECT_EQ(route->subprotocols, std::vector<std::string>{"v1.chat"});
}

TEST(KubeObject, DefaultsAndRejects) {
  // List items and bookmarks may omit apiVersion/kind; a missing namespace is "default".
  const KubeObject object =
      read_ok(R"({"metadata": {"name": "n1"}, "spec": {"backends": [{"address": "h:1"}]}})");
  EXPECT_EQ(object.key(), "default/n1");
  EXPECT_TRUE(std::holds_alternative<config::Route>(object.route));
  EXPECT_EQ(object.status_observed_generation, -1);
  EXPECT_EQ(object.accepted.status, "");
  EXPECT_TRUE(std::holds_alternative<std::string>(
      read_kube_object(object_from(R"({"metadata": {"namespace": "x"}})"))));
  EXPECT_TRUE(std::holds_alternative<std::string>(read_kube_object(object_from(R"({})"))));
}

TEST(ListPage, ReadsItemsVersionAndContinue) {
  auto page = parse_list_page(R"({"apiVersion": "wsgate.dev/v1alpha1", "kind": "WebSocketRouteList",
      "metadata": {"resourceVersion": "99", "continue": "abc="},
      "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})");
  ASSERT_TRUE(std::holds_alternative<ListPage>(page)) << std::get<std::string>(page);
  EXPECT_EQ(std::get<ListPage>(page).resource_version, "99");
  EXPECT_EQ(std::get<ListPage>(page).continue_token, "abc=");
  EXPECT_EQ(std::get<ListPage>(page).items.size(), 2u);
  auto empty = parse_list_page(R"({"metadata": {"resourceVersion": "5"}, "items": null})");
  ASSERT_TRUE(std::holds_alternative<ListPage>(empty));
  EXPECT_TRUE(std::get<ListPage>(empty).items.empty());
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_list_page(R"({"items": []})")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_list_page("{\"metadata\":")));
  EXPECT_TRUE(std::holds_alternative<std::string>(
      parse_list_page(R"({"metadata": {"resourceVersion": "5"}, "items": [1]})")));
}

TEST(WatchEvent, AllTypes) {
  const std::pair<const char*, WatchEventType> cases[] = {{"ADDED", WatchEventType::kAdded},
                                                          {"MODIFIED", WatchEventType::kModified},
                                                          {"DELETED", WatchEventType::kDeleted},
                                                          {"BOOKMARK", WatchEventType::kBookmark},
                                                          {"ERROR", WatchEventType::kError}};
  for (const auto& [name, type] : cases) {
    const std::string line =
        std::string(R"({"type":")") + name + R"(","object":{"metadata":{"resourceVersion":"12"}}})";
    auto event = parse_watch_event(line);
    ASSERT_TRUE(std::holds_alternative<WatchEvent>(event)) << name;
    EXPECT_EQ(std::get<WatchEvent>(event).type, type);
    EXPECT_EQ(resource_version_of(std::get<WatchEvent>(event).object), "12");
  }
  EXPECT_TRUE(
      std::holds_alternative<std::string>(parse_watch_event(R"({"type":"SYNC","object":{}})")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_watch_event(R"({"type":"ADDED"})")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_watch_event(R"({"type":"ADDED","obj)")));
}

TEST(WatchEvent, ErrorStatus) {
  auto event = parse_watch_event(
      R"json({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},)json"
      R"json("status":"Failure","message":"too old resource version: 5 (9)","reason":"Expired",)json"
      R"json("code":410}})json");
  ASSERT_TRUE(std::holds_alternative<WatchEvent>(event));
  const KubeStatus status = read_status(std::get<WatchEvent>(event).object);
  EXPECT_EQ(status.code, 410);
  EXPECT_EQ(status.reason, "Expired");
  EXPECT_EQ(status.message, "too old resource version: 5 (9)");
  EXPECT_EQ(read_status_body(R"({"kind":"Status","code":403,"message":"forbidden"})").message,
            "forbidden");
  EXPECT_EQ(read_status_body("<html>bad gateway</html>").message, "<html>bad gateway</html>");
}

TEST(Status, MatchesOnlyTheWholeDesiredCondition) {
  KubeObject object = read_ok(kServed);  // Accepted=True at generation 2, object at 3
  DesiredStatus desired{true, "Accepted", "", 3};
  EXPECT_FALSE(status_matches(object, desired));
  object.status_observed_generation = 3;
  object.accepted.observed_generation = 3;
  EXPECT_TRUE(status_matches(object, desired));
  EXPECT_FALSE(status_matches(object, DesiredStatus{false, "Invalid", "x", 3}));
  object.accepted.last_transition_time.clear();  // a condition the schema would refuse
  EXPECT_FALSE(status_matches(object, desired));
}

TEST(Status, PatchBodyKeepsTransitionTimeUnlessTheStatusFlips) {
  const KubeObject object = read_ok(kServed);
  const auto same =
      json::parse(status_patch_body(object, {true, "Accepted", "", 3}, "2030-01-01T00:00:00Z"));
  EXPECT_EQ(json::serialize(same),
            R"({"status":{"observedGeneration":3,"conditions":[{"type":"Accepted","status":"True",)"
            R"("reason":"Accepted","message":"","observedGeneration":3,)"
            R"("lastTransitionTime":"2024-01-02T00:00:00Z"}]}})");
  const auto flipped = json::parse(status_patch_body(
      object, {false, "Invalid", "route team-a/chat: spec: required", 3}, "2030-01-01T00:00:00Z"));
  const auto& condition = flipped.at("status").at("conditions").at(0);
  EXPECT_EQ(condition.at("status"), "False");
  EXPECT_EQ(condition.at("reason"), "Invalid");
  EXPECT_EQ(condition.at("message"), "route team-a/chat: spec: required");
  EXPECT_EQ(condition.at("lastTransitionTime"), "2030-01-01T00:00:00Z");
}

TEST(Status, LongMessagesAreCutAtACharacterBoundary) {
  const KubeObject object = read_ok(kServed);
  std::string message(32767, 'x');
  message += "\xc3\xa9\xc3\xa9";  // a two-byte character straddles the 32768 limit
  const auto body = json::parse(status_patch_body(object, {false, "Invalid", message, 3}, "t"));
  const auto& sent = body.at("status").at("conditions").at(0).at("message").as_string();
  EXPECT_EQ(sent.size(), 32767u);
  KubeObject written = object;
  written.status_observed_generation = 3;
  written.accepted = {"False", "Invalid", std::string(sent), "t", 3};
  EXPECT_TRUE(status_matches(written, {false, "Invalid", message, 3}));
  EXPECT_EQ(rfc3339_now().size(), 20u);
}

TEST(Paths, CollectionStatusListAndWatch) {
  EXPECT_EQ(collection_path("", ""), "/apis/wsgate.dev/v1alpha1/websocketroutes");
  EXPECT_EQ(collection_path("/k8s/c-1", "team-a"),
            "/k8s/c-1/apis/wsgate.dev/v1alpha1/namespaces/team-a/websocketroutes");
  EXPECT_EQ(status_path("", "team-a", "chat"),
            "/apis/wsgate.dev/v1alpha1/namespaces/team-a/websocketroutes/chat/status");
  EXPECT_EQ(list_target("", "", 500, ""), "/apis/wsgate.dev/v1alpha1/websocketroutes?limit=500");
  EXPECT_EQ(list_target("", "ns", 2, "eyJ2Ijo+/=="),
            "/apis/wsgate.dev/v1alpha1/namespaces/ns/"
            "websocketroutes?limit=2&continue=eyJ2Ijo%2B%2F%3D%3D");
  EXPECT_EQ(watch_target("", "", "1234", 300),
            "/apis/wsgate.dev/v1alpha1/websocketroutes?watch=1&resourceVersion=1234"
            "&allowWatchBookmarks=true&timeoutSeconds=300");
}

// A route as a route file would give it, recorded as coming from `source`.
config::Route route(const std::string& ns, const std::string& name, const std::string& source) {
  auto parsed = config::parse_route_documents(
      "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: " + name +
          ", namespace: " + ns + "}\nspec: {backends: [{address: 'h:1'}]}\n",
      source);
  return std::get<std::vector<config::Route>>(parsed).at(0);
}

TEST(MergeRoutes, FilesWinAndClashesAreReported) {
  const config::RouteTable files(
      {route("default", "pinned", "routes/pinned.yaml"), route("default", "only-file", "f.yaml")});
  MergedRoutes merged =
      merge_routes(files, {route("default", "pinned", "kubernetes:default/pinned"),
                           route("team", "chat", "kubernetes:team/chat")});
  ASSERT_EQ(merged.table.routes().size(), 3u);
  EXPECT_EQ(merged.table.find("default/pinned")->source, "routes/pinned.yaml");
  EXPECT_NE(merged.table.find("team/chat"), nullptr);
  EXPECT_NE(merged.table.find("default/only-file"), nullptr);
  ASSERT_EQ(merged.conflicts.size(), 1u);
  EXPECT_EQ(merged.conflicts[0].id, "default/pinned");
  EXPECT_EQ(merged.conflicts[0].message,
            "route default/pinned: already defined in routes/pinned.yaml, which takes precedence");
  // No clash: the same table as building it from all routes at once.
  MergedRoutes plain = merge_routes(config::RouteTable(), {route("a", "b", "k")});
  EXPECT_TRUE(plain.conflicts.empty());
  EXPECT_EQ(plain.table.version(), config::RouteTable({route("a", "b", "x")}).version());
}

}  // namespace
}  // namespace wsgate::source
