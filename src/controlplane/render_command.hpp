#pragma once
// `wsgate-controller render nginx`: routes -> nginx configuration file, once or (with --watch)
// on every route change, reloading the running nginx with SIGHUP after each new file.

#include <string>

#include "controlplane/nginx_render.hpp"

namespace wsgate::controlplane {

struct RenderCommandOptions {
  std::string routes_dir;
  std::string out;        // "" = stdout (not with watch)
  bool watch = false;     // re-render on change until SIGTERM/SIGINT
  std::string nginx_pid;  // with watch: nginx's pid file, sent SIGHUP after each new file
  NginxRenderOptions render;
};

// The process exit code: 0, 1 when the routes are invalid or cannot be rendered (once mode),
// 2 for a usage error.
int run_render_nginx(const RenderCommandOptions& options);

}  // namespace wsgate::controlplane
