#include "controlplane/render_command.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/route_yaml.hpp"
#include "controlplane/stop_signals.hpp"
#include "source/directory_watcher.hpp"

namespace wsgate::controlplane {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes beside the target and renames over it, so nginx never reads half a file.
bool write_atomically(const std::string& path, const std::string& content) {
  const std::filesystem::path target(path);
  const std::filesystem::path temp =
      target.parent_path() / ("." + target.filename().string() + ".tmp");
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) {
      spdlog::error("cannot write {}", temp.string());
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, target, ec);
  if (ec) {
    spdlog::error("cannot rename {} to {}: {}", temp.string(), path, ec.message());
    return false;
  }
  return true;
}

void reload_nginx(const std::string& pid_file) {
  std::istringstream text(read_file(pid_file));
  long pid = 0;
  if (!(text >> pid) || pid <= 1) {
    // nginx not started yet: it reads the new file when it starts.
    spdlog::warn("nginx pid file {} holds no pid: nginx not reloaded", pid_file);
    return;
  }
  if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
    spdlog::error("SIGHUP to nginx (pid {}) failed: {}", pid, std::strerror(errno));
    return;
  }
  spdlog::info("nginx (pid {}) told to reload", pid);
}

int render_once(const RenderCommandOptions& options) {
  auto loaded = config::load_route_directory(options.routes_dir);
  if (auto* error = std::get_if<config::ConfigError>(&loaded)) {
    spdlog::error("{}", error->message);
    return 1;
  }
  auto rendered = render_nginx(std::get<config::RouteTable>(loaded), options.render);
  if (auto* error = std::get_if<RenderError>(&rendered)) {
    spdlog::error("cannot render nginx configuration: {}", error->message);
    return 1;
  }
  const auto& text = std::get<std::string>(rendered);
  if (options.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  return write_atomically(options.out, text) ? 0 : 1;
}

int render_watch(const RenderCommandOptions& options) {
  // On the watcher thread: every valid route change rewrites the file if its text changed.
  const auto on_table = [&options](config::RouteTable table) {
    auto rendered = render_nginx(table, options.render);
    if (auto* error = std::get_if<RenderError>(&rendered)) {
      spdlog::error("routes version {} cannot be rendered, keeping {}: {}", table.version(),
                    options.out, error->message);
      return;
    }
    const auto& text = std::get<std::string>(rendered);
    if (read_file(options.out) == text) {
      spdlog::info("nginx configuration unchanged (routes version {})", table.version());
      return;
    }
    if (!write_atomically(options.out, text)) return;
    spdlog::info("wrote {} for routes version {}", options.out, table.version());
    if (!options.nginx_pid.empty()) reload_nginx(options.nginx_pid);
  };
  const auto on_error = [&options](const config::ConfigError& error) {
    spdlog::error("route update rejected, keeping {}: {}", options.out, error.message);
  };
  StopSignals signals;
  source::DirectoryWatcher watcher(source::DirectoryWatcher::Options{options.routes_dir}, on_table,
                                   on_error);
  watcher.start();
  signals.wait([&watcher] { watcher.reload_now(); });
  watcher.stop();
  return 0;
}

}  // namespace

int run_render_nginx(const RenderCommandOptions& options) {
  if (options.watch && options.out.empty()) {
    spdlog::error("--watch needs --out FILE");
    return 2;
  }
  if (!options.nginx_pid.empty() && !options.watch) {
    spdlog::error("--nginx-pid goes with --watch");
    return 2;
  }
  return options.watch ? render_watch(options) : render_once(options);
}

}  // namespace wsgate::controlplane
