// wsgate-bench: flags only. `backend` is the echo server; the other subcommands are the load
// modes, each printing one JSON line of results on stdout.

#include <CLI/CLI.hpp>

#include "common/log.hpp"
#include "echo_server.hpp"
#include "load_client.hpp"

namespace {

void add_client_flags(CLI::App& cmd, wsgate::bench::ClientOptions& o) {
  cmd.add_option("--url", o.url, "ws://IP:PORT/path or wss://IP:PORT/path")->required();
  cmd.add_option("--warmup", o.warmup, "seconds before the measured window")->capture_default_str();
  cmd.add_option("--duration", o.duration, "seconds measured")->capture_default_str();
  cmd.add_option("--sources", o.sources, "spread connections over 127.0.0.1..127.0.0.N")
      ->check(CLI::Range(1, 254))
      ->capture_default_str();
  cmd.add_option("--open-concurrency", o.open_concurrency, "tunnels being opened at once")
      ->capture_default_str();
  cmd.add_option("--timeout", o.timeout, "seconds without progress before a connection is dropped")
      ->capture_default_str();
  cmd.add_option("--watch", o.watch, "proxy pid (repeatable): CPU and RSS are read from it");
  cmd.add_option("--peer", o.peers, "backend pid (repeatable): CPU is reported");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wsgate-bench: WebSocket load tool and echo backend"};
  app.require_subcommand(1);
  wsgate::bench::ServerOptions server;
  wsgate::bench::ClientOptions client;

  auto* backend = app.add_subcommand("backend", "fast WebSocket echo server");
  backend->add_option("--listen", server.listen, "ws address host:port");
  backend->add_option("--tls-listen", server.tls_listen, "wss address host:port");
  backend->add_option("--tls-cert", server.tls_cert, "certificate chain (PEM)");
  backend->add_option("--tls-key", server.tls_key, "private key (PEM)");

  auto* handshake = app.add_subcommand(
      "handshake", "C workers loop: connect, upgrade, one echo, close; handshakes/s");
  add_client_flags(*handshake, client);
  handshake->add_option("--workers", client.workers, "concurrent loops")->capture_default_str();

  auto* echo = app.add_subcommand("echo", "K tunnels, S-byte messages at a fixed total rate; RTT");
  add_client_flags(*echo, client);
  echo->add_option("--tunnels", client.tunnels, "tunnels")->capture_default_str();
  echo->add_option("--size", client.size, "payload bytes (8..16384)")->capture_default_str();
  echo->add_option("--rate", client.rate, "messages per second, all tunnels together")
      ->capture_default_str();

  auto* bulk = app.add_subcommand("bulk", "large binary messages echoed back to back; MB/s");
  add_client_flags(*bulk, client);
  bulk->add_option("--tunnels", client.tunnels, "tunnels")->capture_default_str();
  bulk->add_option("--size", client.bulk_size, "message payload bytes")->capture_default_str();

  auto* idle = app.add_subcommand("idle", "open K idle tunnels, hold them; proxy RSS per tunnel");
  add_client_flags(*idle, client);
  idle->add_option("--tunnels", client.tunnels, "tunnels")->capture_default_str();
  idle->add_option("--hold", client.hold, "seconds held before the RSS reading")
      ->capture_default_str();
  idle->add_option("--probes", client.probes, "handshake cycles timed while holding")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  wsgate::init_logging(wsgate::LogFormat::kText);
  if (*backend) return wsgate::bench::run_echo_server(server);
  if (*handshake) return wsgate::bench::run_handshake(client);
  if (*echo) return wsgate::bench::run_echo(client);
  if (*bulk) {
    client.tunnels = bulk->count("--tunnels") > 0 ? client.tunnels : 4;
    return wsgate::bench::run_bulk(client);
  }
  return wsgate::bench::run_idle(client);
}
