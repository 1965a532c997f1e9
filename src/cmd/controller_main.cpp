// wsgate-controller: flags and wiring only; the control plane lives in src/controlplane.

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/log.hpp"
#include "controlplane/controller.hpp"
#include "controlplane/render_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"wsgate-controller: streams route snapshots to wsgate proxies over gRPC"};
  wsgate::controlplane::ControllerOptions options;
  std::string log_format = "text";
  std::string log_level = "info";

  app.add_option("--routes", options.routes_dir, "Directory of route YAML files (watched)");
  app.add_flag("--kubernetes", options.kubernetes, "Watch WebSocketRoute custom resources");
  app.add_option("--kubeconfig", options.kubeconfig,
                 "kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)");
  app.add_option("--namespace", options.kube_namespace,
                 "With --kubernetes: only this namespace (default: all)");
  app.add_option("--grpc-listen", options.grpc_listen, "gRPC address HOST:PORT for proxies")
      ->capture_default_str();
  app.add_option("--admin", options.admin,
                 "Admin address for /metrics /healthz /readyz /config "
                 "/proxies")
      ->capture_default_str();
  app.add_option("--grpc-tls-cert", options.tls_cert, "Serve gRPC over TLS with this certificate");
  app.add_option("--grpc-tls-key", options.tls_key, "Private key of --grpc-tls-cert");
  app.add_option("--grpc-tls-ca", options.tls_ca,
                 "Require proxy client certificates signed by this CA (mutual TLS)");
  app.add_option("--log-format", log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();

  wsgate::controlplane::RenderCommandOptions render;
  std::vector<std::string> render_listen;
  auto* render_cmd = app.add_subcommand("render", "Render the routes for another proxy");
  render_cmd->require_subcommand(1);
  render_cmd->fallthrough();
  auto* nginx =
      render_cmd->add_subcommand("nginx", "Write nginx configuration (an http{} include)");
  nginx->fallthrough();
  nginx->add_option("--routes", render.routes_dir, "Directory of route YAML files")->required();
  nginx->add_option("--out", render.out, "Output file (default: stdout)");
  nginx->add_option("--listen", render_listen,
                    "nginx listen parameter of every server block (repeatable; default 80)");
  nginx
      ->add_option("--system-ca", render.render.system_ca,
                   "CA bundle for tls backends without caFile")
      ->capture_default_str();
  nginx->add_flag("--watch", render.watch, "Re-render whenever the routes change (needs --out)");
  nginx->add_option("--nginx-pid", render.nginx_pid,
                    "With --watch: nginx pid file; nginx gets SIGHUP after each new file");

  CLI11_PARSE(app, argc, argv);

  wsgate::init_logging(log_format == "json" ? wsgate::LogFormat::kJson : wsgate::LogFormat::kText,
                       spdlog::level::from_str(log_level));
  if (nginx->parsed()) {
    if (!render_listen.empty()) render.render.listen = render_listen;
    return wsgate::controlplane::run_render_nginx(render);
  }
  if (options.routes_dir.empty() && !options.kubernetes) {
    spdlog::error("--routes DIR or --kubernetes is required");
    return 2;
  }
  try {
    wsgate::controlplane::Controller controller(std::move(options));
    return controller.run();
  } catch (const std::exception& e) {
    spdlog::critical("wsgate-controller: {}", e.what());
    return 1;
  }
}
