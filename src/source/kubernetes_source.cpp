#include "source/kubernetes_source.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "common/backoff.hpp"
#include "source/debouncer.hpp"
#include "source/kube_client.hpp"
#include "source/kube_objects.hpp"
#include "source/route_merge.hpp"

namespace wsgate::source {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// A watch silent for its own timeout plus this long is a dead connection.
constexpr std::chrono::seconds kIdleMargin{30};
// A watch that delivered events, or lasted this long, proves the server healthy again.
constexpr std::chrono::seconds kHealthyWatch{10};
// Bounds a list that keeps handing out continue tokens.
constexpr int kMaxListPages = 10000;

enum class WatchOutcome { kEnded, kGone, kFailed };
struct WatchResult {
  WatchOutcome outcome = WatchOutcome::kFailed;
  std::string reason;
  bool healthy = false;
};

std::string describe(const KubeResponse& response) {
  if (response.status == 0) return response.error;
  const KubeStatus status = read_status_body(response.body);
  std::string text = "HTTP " + std::to_string(response.status);
  if (!status.message.empty()) text += ": " + status.message;
  if (response.status == 401) text += " (check the token or client certificate)";
  if (response.status == 403)
    text +=
        " (RBAC: the controller needs get/list/watch on websocketroutes.wsgate.dev and "
        "update/patch on websocketroutes/status)";
  return text;
}

// Coroutines end by io_context::stop(); anything escaping one is a bug worth a log line,
// never a terminated controller.
void log_failure(std::exception_ptr failure) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    spdlog::error("kubernetes: internal error: {}", e.what());
  } catch (...) {
    spdlog::error("kubernetes: internal error");
  }
}

}  // namespace

struct KubernetesSource::Impl {
  // A status we wrote (or had refused), so that it is not written again while the watch has
  // not yet shown its effect. Dropped by any event carrying another resourceVersion.
  struct Written {
    DesiredStatus status;
    // What our write produced, or for a refused write the version it was refused for.
    std::string resource_version;
  };

  Options options;
  OnTable on_table;
  OnError on_error;
  std::shared_ptr<const KubeClientContext> client;
  std::mutex lifecycle_mutex;
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  std::atomic<bool> synced{false};
  bool started = false;

  // Below: only touched on the source's thread (set_base_table posts to it).
  std::map<std::string, KubeObject> objects;
  config::RouteTable base;
  std::string resource_version;
  bool listed = false;
  bool published = false;
  std::string published_version;
  Debouncer debouncer;
  std::map<std::string, DesiredStatus> desired;
  std::map<std::string, Written> written;
  std::deque<std::string> status_queue;
  std::set<std::string> queued;
  std::set<std::string> conflicts;  // ids rejected as taken at the last publish

  // Last, so it is destroyed first: the coroutine frames it still owns refer to the members
  // above, which must outlive them.
  asio::io_context io{1};
  asio::steady_timer publish_timer{io};
  asio::steady_timer status_wake{io};

  Impl(Options opts, OnTable table_cb, OnError error_cb)
      : options(std::move(opts)),
        on_table(std::move(table_cb)),
        on_error(std::move(error_cb)),
        debouncer(options.holdoff, options.max_delay, milliseconds(0)) {}

  const std::string& base_path() const { return client->config().base_path; }

  asio::awaitable<void> sleep(milliseconds delay) {
    asio::steady_timer timer(io);
    timer.expires_after(delay);
    co_await timer.async_wait(kTuple);
  }

  void schedule_publish() {
    debouncer.on_event(Clock::now());
    publish_timer.cancel();  // the publisher recomputes its deadline
  }

  void enqueue_status(const std::string& key) {
    if (!queued.insert(key).second) return;
    status_queue.push_back(key);
    status_wake.cancel();
  }

  void report_rejected(const std::string& key, const std::string& reason) {
    spdlog::warn("kubernetes: {} rejected: {}", key, reason);
    if (!on_error) return;
    try {
      on_error(config::ConfigError{"kubernetes:" + key + ": " + reason});
    } catch (const std::exception& e) {
      spdlog::error("kubernetes: error callback threw: {}", e.what());
    }
  }

  // ----- object store

  void apply_object(const boost::json::object& raw) {
    auto read = read_kube_object(raw);
    if (auto* error = std::get_if<std::string>(&read)) {
      spdlog::warn("kubernetes: ignoring an object: {}", *error);
      return;
    }
    KubeObject object = std::get<KubeObject>(std::move(read));
    if (!options.namespace_.empty() && object.namespace_ != options.namespace_) return;
    const std::string key = object.key();
    auto existing = objects.find(key);
    if (existing != objects.end() && existing->second.resource_version == object.resource_version)
      return;
    if (auto* error = std::get_if<std::string>(&object.route);
        error && (existing == objects.end() || existing->second.generation != object.generation))
      report_rejected(key, *error);
    // Any version other than the one our status write produced may carry another status.
    if (auto w = written.find(key);
        w != written.end() && w->second.resource_version != object.resource_version)
      written.erase(w);
    objects[key] = std::move(object);
    schedule_publish();
  }

  void remove_object(const boost::json::object& raw) {
    auto read = read_kube_object(raw);
    if (auto* object = std::get_if<KubeObject>(&read)) {
      const std::string key = object->key();
      written.erase(key);
      if (objects.erase(key) > 0) schedule_publish();
    }
  }

  void replace_objects(std::map<std::string, KubeObject> fresh) {
    for (auto w = written.begin(); w != written.end();) {
      auto found = fresh.find(w->first);
      const bool same =
          found != fresh.end() && found->second.resource_version == w->second.resource_version;
      w = same ? std::next(w) : written.erase(w);
    }
    for (const auto& [key, object] : fresh) {
      if (auto* error = std::get_if<std::string>(&object.route)) {
        auto old = objects.find(key);
        if (old == objects.end() || old->second.generation != object.generation)
          report_rejected(key, *error);
      }
    }
    objects = std::move(fresh);
    schedule_publish();
  }

  // ----- publishing

  void publish() {
    if (!listed) return;  // a table without the custom resources would remove their routes
    std::vector<config::Route> routes;
    std::map<std::string, DesiredStatus> want;
    for (const auto& [key, object] : objects) {
      if (const auto* route = std::get_if<config::Route>(&object.route)) {
        routes.push_back(*route);
        want[key] = DesiredStatus{true, "Accepted", "", object.generation};
      } else {
        want[key] =
            DesiredStatus{false, "Invalid", std::get<std::string>(object.route), object.generation};
      }
    }
    const std::size_t from_kubernetes = routes.size();
    MergedRoutes merged = merge_routes(base, std::move(routes));
    std::set<std::string> now_conflicting;
    for (const auto& conflict : merged.conflicts) {
      if (!conflicts.contains(conflict.id)) report_rejected(conflict.id, conflict.message);
      now_conflicting.insert(conflict.id);
      auto& slot = want[conflict.id];
      slot = DesiredStatus{false, "Conflict", conflict.message, slot.generation};
    }
    conflicts = std::move(now_conflicting);
    if (!published || merged.table.version() != published_version) {
      published = true;
      published_version = merged.table.version();
      spdlog::info("kubernetes: publishing {} routes ({} from custom resources), version {}",
                   merged.table.routes().size(), from_kubernetes - merged.conflicts.size(),
                   published_version);
      if (on_table) {
        try {
          on_table(merged.table);
        } catch (const std::exception& e) {
          spdlog::error("kubernetes: table callback threw: {}", e.what());
        }
      }
    }
    synced = true;
    desired = std::move(want);
    for (const auto& [key, status] : desired) {
      if (status_matches(objects.at(key), status)) continue;
      if (auto w = written.find(key); w != written.end() && w->second.status == status) continue;
      enqueue_status(key);
    }
  }

  asio::awaitable<void> run_publisher() {
    for (;;) {
      publish_timer.expires_at(debouncer.pending() ? debouncer.deadline(false)
                                                   : Clock::time_point::max());
      co_await publish_timer.async_wait(kTuple);
      if (debouncer.due(Clock::now(), false)) {
        debouncer.clear();
        publish();
      }
    }
  }

  // ----- list and watch

  // Replaces the store with a fresh list; "" or why it failed.
  asio::awaitable<std::string> list_all(KubeConnection& connection) {
    std::map<std::string, KubeObject> fresh;
    std::string continue_token;
    std::string version;
    for (int page = 0; page < kMaxListPages; ++page) {
      const std::string target =
          list_target(base_path(), options.namespace_, options.list_page_size, continue_token);
      KubeResponse response =
          co_await connection.request(HttpMethod::kGet, target, {}, {}, options.request_timeout);
      if (response.status != 200) co_return "list: " + describe(response);
      auto parsed = parse_list_page(response.body);
      if (auto* error = std::get_if<std::string>(&parsed)) co_return *error;
      ListPage& list = std::get<ListPage>(parsed);
      for (const auto& item : list.items) {
        auto read = read_kube_object(item);
        if (auto* error = std::get_if<std::string>(&read)) {
          spdlog::warn("kubernetes: ignoring a listed object: {}", *error);
          continue;
        }
        KubeObject& object = std::get<KubeObject>(read);
        if (!options.namespace_.empty() && object.namespace_ != options.namespace_) continue;
        std::string key = object.key();
        fresh[std::move(key)] = std::move(object);
      }
      version = list.resource_version;
      continue_token = list.continue_token;
      if (continue_token.empty()) break;
    }
    if (!continue_token.empty()) co_return std::string("list: too many pages");
    spdlog::info("kubernetes: listed {} WebSocketRoutes at resourceVersion {}", fresh.size(),
                 version);
    replace_objects(std::move(fresh));
    resource_version = version;
    listed = true;
    co_return std::string();
  }

  asio::awaitable<WatchResult> watch_once(KubeConnection& connection) {
    const auto started_at = Clock::now();
    WatchResult result;
    const int timeout = static_cast<int>(options.watch_timeout.count());
    KubeResponse response = co_await connection.open_stream(
        watch_target(base_path(), options.namespace_, resource_version, timeout),
        options.request_timeout);
    if (response.status == 410) {
      result.outcome = WatchOutcome::kGone;
      result.reason = describe(response);
      co_return result;
    }
    if (response.status != 200) {
      result.reason = "watch: " + describe(response);
      co_return result;
    }
    int events = 0;
    const milliseconds idle = options.watch_timeout + kIdleMargin;
    for (;;) {
      KubeLine line = co_await connection.read_line(idle);
      if (line.status == LineStatus::kEnd) {
        result.outcome = WatchOutcome::kEnded;
        break;
      }
      if (line.status == LineStatus::kError) {
        result.reason = line.text;
        break;
      }
      auto parsed = parse_watch_event(line.text);
      if (auto* error = std::get_if<std::string>(&parsed)) {
        result.reason = *error;
        break;
      }
      WatchEvent& event = std::get<WatchEvent>(parsed);
      if (event.type == WatchEventType::kError) {
        const KubeStatus status = read_status(event.object);
        result.outcome = status.code == 410 ? WatchOutcome::kGone : WatchOutcome::kFailed;
        result.reason = "watch ERROR " + std::to_string(status.code) + ": " + status.message;
        break;
      }
      ++events;
      if (event.type == WatchEventType::kDeleted) {
        remove_object(event.object);
      } else if (event.type != WatchEventType::kBookmark) {
        apply_object(event.object);
      }
      // Every event, a BOOKMARK above all, moves the point a new watch resumes from.
      if (std::string version = resource_version_of(event.object); !version.empty())
        resource_version = std::move(version);
    }
    connection.close();
    result.healthy = events > 0 || Clock::now() - started_at >= kHealthyWatch;
    co_return result;
  }

  asio::awaitable<void> run_watch_loop() {
    KubeConnection list_connection(io.get_executor(), client);
    KubeConnection watch_connection(io.get_executor(), client);
    Backoff backoff(options.backoff_initial, options.backoff_max);
    bool need_list = true;
    for (;;) {
      if (need_list) {
        if (std::string error = co_await list_all(list_connection); !error.empty()) {
          const milliseconds delay = backoff.next();
          spdlog::warn("kubernetes: {}; retrying in {} ms", error, delay.count());
          co_await sleep(delay);
          continue;
        }
        need_list = false;
      }
      const WatchResult result = co_await watch_once(watch_connection);
      if (result.healthy) backoff.reset();
      if (result.outcome == WatchOutcome::kGone) {
        spdlog::info("kubernetes: resourceVersion {} expired ({}); relisting", resource_version,
                     result.reason);
        need_list = true;
        if (result.healthy) continue;
      }
      const milliseconds delay = backoff.next();
      if (result.outcome == WatchOutcome::kFailed) {
        spdlog::warn("kubernetes: {}; reconnecting in {} ms", result.reason, delay.count());
      } else {
        spdlog::debug("kubernetes: watch ended; watching again in {} ms", delay.count());
      }
      co_await sleep(delay);
    }
  }

  // ----- status

  asio::awaitable<void> run_status_writer() {
    KubeConnection connection(io.get_executor(), client);
    Backoff backoff(options.backoff_initial, options.backoff_max);
    for (;;) {
      if (status_queue.empty()) {
        status_wake.expires_at(Clock::time_point::max());
        co_await status_wake.async_wait(kTuple);
        continue;
      }
      const std::string key = status_queue.front();
      status_queue.pop_front();
      queued.erase(key);
      auto object_it = objects.find(key);
      auto desired_it = desired.find(key);
      if (object_it == objects.end() || desired_it == desired.end()) continue;
      const KubeObject& object = object_it->second;
      const DesiredStatus wanted = desired_it->second;
      if (status_matches(object, wanted)) continue;
      if (auto w = written.find(key); w != written.end() && w->second.status == wanted) continue;
      const std::string object_version = object.resource_version;
      const std::string target = status_path(base_path(), object.namespace_, object.name);
      // The store may change while the request is out: nothing below uses `object`.
      KubeResponse response = co_await connection.request(
          HttpMethod::kPatch, target, status_patch_body(object, wanted, rfc3339_now()),
          "application/merge-patch+json", options.request_timeout);
      // An event for the object that arrived meanwhile (our own write's, or anyone's) is
      // newer than this answer: the store then already says what the status is.
      const auto now_at = objects.find(key);
      const bool unchanged =
          now_at != objects.end() && now_at->second.resource_version == object_version;
      if (response.status == 200 || response.status == 201) {
        backoff.reset();
        boost::system::error_code ec;
        const boost::json::value updated = boost::json::parse(response.body, ec);
        std::string version;
        if (!ec && updated.is_object()) version = resource_version_of(updated.get_object());
        if (unchanged) written[key] = Written{wanted, version};
        spdlog::info("kubernetes: {} status: Accepted={} reason {} (generation {})", key,
                     wanted.accepted ? "True" : "False", wanted.reason, wanted.generation);
        continue;
      }
      if (response.status == 404) continue;  // deleted meanwhile: its DELETED event follows
      if (response.status == 0 || response.status == 429 || response.status >= 500) {
        const milliseconds delay = backoff.next();
        spdlog::warn("kubernetes: {} status update failed: {}; retrying in {} ms", key,
                     describe(response), delay.count());
        enqueue_status(key);
        co_await sleep(delay);
        continue;
      }
      // Refused (RBAC, validation): the same body would be refused again, so wait until
      // the object changes.
      spdlog::warn("kubernetes: {} status update refused: {}", key, describe(response));
      if (unchanged) written[key] = Written{wanted, object_version};
    }
  }

  void spawn(asio::awaitable<void> coroutine) {
    asio::co_spawn(io, std::move(coroutine), log_failure);
  }
};

KubernetesSource::KubernetesSource(Options options, OnTable on_table, OnError on_error)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(on_table), std::move(on_error))) {}

KubernetesSource::~KubernetesSource() {
  stop();
}

std::optional<std::string> KubernetesSource::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->started) return std::nullopt;
  auto loaded = resolve_kube_config(impl_->options.kubeconfig, impl_->options.service_account_dir);
  if (auto* error = std::get_if<std::string>(&loaded)) return "kubernetes: " + *error;
  const KubeConfig& config = std::get<KubeConfig>(loaded);
  spdlog::info("kubernetes: API server {} ({}), watching {}", config.server_url(), config.origin,
               impl_->options.namespace_.empty() ? std::string("all namespaces")
                                                 : "namespace " + impl_->options.namespace_);
  auto client = KubeClientContext::create(config);
  if (auto* error = std::get_if<std::string>(&client))
    return "kubernetes: " + config.origin + ": " + *error;
  impl_->client = std::get<std::shared_ptr<KubeClientContext>>(std::move(client));
  impl_->started = true;
  Impl& self = *impl_;
  self.spawn(self.run_publisher());
  self.spawn(self.run_status_writer());
  self.spawn(self.run_watch_loop());
  self.thread = std::thread([&self] {
    pthread_setname_np(pthread_self(), "wsgate-kube");
    self.thread_id = std::this_thread::get_id();
    self.io.run();
  });
  return std::nullopt;
}

void KubernetesSource::stop() {
  impl_->io.stop();
  // From inside a table callback (our own thread) joining would deadlock; the owner's later
  // stop() or the destructor joins.
  if (impl_->thread_id.load() == std::this_thread::get_id()) return;
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->thread.joinable()) impl_->thread.join();
}

void KubernetesSource::set_base_table(config::RouteTable table) {
  Impl& self = *impl_;
  asio::post(self.io, [&self, table = std::move(table)]() mutable {
    self.base = std::move(table);
    self.schedule_publish();
  });
}

bool KubernetesSource::synced() const {
  return impl_->synced;
}

}  // namespace wsgate::source
