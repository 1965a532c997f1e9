// wsgate-echo-backend: flags, the listener and the worker threads. Every connection gets its own
// strand and one coroutine, so no connection state is ever shared between threads.

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <csignal>
#include <exception>
#include <thread>
#include <variant>
#include <vector>

#include "common/log.hpp"
#include "common/net_address.hpp"
#include "echo_backend.hpp"

namespace wsgate::echo {
namespace {

using net::ip::tcp;
constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);

void log_failure(std::exception_ptr failure) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    spdlog::warn("echo connection failed: {}", e.what());
  }
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, Options options) {
  net::steady_timer pause(acceptor.get_executor());
  for (;;) {
    tcp::socket socket(net::make_strand(acceptor.get_executor()));
    auto [ec] = co_await acceptor.async_accept(socket, kNoThrow);
    if (ec == net::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors, say: back off a little instead of spinning on the error.
      spdlog::warn("accept failed: {}", ec.message());
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto executor = socket.get_executor();
    net::co_spawn(executor, serve_connection(beast::tcp_stream(std::move(socket)), options),
                  log_failure);
  }
}

std::variant<tcp::endpoint, std::string> resolve_listen(net::io_context& ioc,
                                                        const std::string& text) {
  auto parsed = parse_host_port(text, /*allow_port_zero=*/true);
  if (auto* reason = std::get_if<std::string>(&parsed)) return *reason;
  const auto& address = std::get<HostPort>(parsed);
  beast::error_code ec;
  const auto ip = net::ip::make_address(address.host, ec);
  if (!ec) return tcp::endpoint(ip, address.port);
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
  if (ec || results.empty()) return "cannot resolve " + address.host;
  return results.begin()->endpoint();
}

int run(int argc, char** argv) {
  CLI::App app{"WebSocket echo backend for wsgate's tests and demo"};
  std::string listen = "127.0.0.1:9001";
  std::string demo_dir;
  unsigned threads = 1;
  app.add_option("--listen", listen, "host:port to listen on (port 0: any free port)");
  app.add_option("--demo-dir", demo_dir, "directory of static files (the demo page)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--threads", threads, "worker threads")->check(CLI::Range(1U, 64U));
  CLI11_PARSE(app, argc, argv);

  init_logging(LogFormat::kText);
  net::io_context ioc(static_cast<int>(threads));

  auto endpoint = resolve_listen(ioc, listen);
  if (auto* reason = std::get_if<std::string>(&endpoint)) {
    spdlog::error("--listen {}: {}", listen, *reason);
    return 2;
  }
  tcp::acceptor acceptor(ioc);
  beast::error_code ec;
  const auto& wanted = std::get<tcp::endpoint>(endpoint);
  acceptor.open(wanted.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(wanted, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    spdlog::error("cannot listen on {}: {}", listen, ec.message());
    return 1;
  }
  const auto bound = acceptor.local_endpoint();
  const HostPort shown{bound.address().to_string(), bound.port(), bound.address().is_v6()};
  spdlog::info("listening (echo) on {}", shown.to_string());

  Options options;
  options.demo_dir = demo_dir;
  net::co_spawn(ioc, accept_loop(acceptor, options), log_failure);

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const beast::error_code&, int signal) {
    spdlog::info("signal {}: stopping", signal);
    ioc.stop();
  });

  std::vector<std::thread> workers;
  for (unsigned i = 1; i < threads; ++i) workers.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& worker : workers) worker.join();
  return 0;
}

}  // namespace
}  // namespace wsgate::echo

int main(int argc, char** argv) {
  return wsgate::echo::run(argc, argv);
}
