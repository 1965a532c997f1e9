"""wsgate-controller with two wsgate-proxy processes over loopback gRPC: route changes reach
both and are served, invalid changes are rejected by the controller, a proxy-side NACK keeps the
old routes, a controller restart leaves tunnels and routing alone and resyncs, and identical
content is never pushed again."""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    LOCALHOST,
    OP_TEXT,
    HarnessTestCase,
    Process,
    RawWebSocket,
    binary,
    echo_route_spec,
    http_get,
    main,
    metric,
    metrics,
    metrics_text,
    promtool_check,
    raw_request,
    upgrade_request,
    wait_until,
    write_route,
)

# Control-plane processes and probes (bench/config_propagation.py uses them too).


def start_controller(routes_dir, grpc_listen=f"{LOCALHOST}:0", extra_args=(), name="controller"):
    """wsgate-controller on a free admin port; the Process has .grpc_port and .admin_port."""
    args = [binary("wsgate-controller"), "--routes", routes_dir, "--grpc-listen", grpc_listen,
            "--admin", f"{LOCALHOST}:0"] + list(extra_args)
    process = Process(args, name=name)
    try:
        process.grpc_port = process.listening("grpc")
        process.admin_port = process.listening("admin")
    except AssertionError:
        process.kill()
        raise
    return process


def start_cp_proxy(grpc_port, node_id, extra_args=(), name=None):
    """wsgate-proxy --control-plane on free ports (one worker); .port and .admin_port."""
    args = [binary("wsgate-proxy"), "--control-plane", f"{LOCALHOST}:{grpc_port}", "--node-id", node_id,
            "--listen", f"{LOCALHOST}:0", "--admin", f"{LOCALHOST}:0", "--workers", "1",
            "--drain-seconds", "1"] + list(extra_args)
    process = Process(args, name=name or node_id)
    try:
        process.port = process.listening("http")
        process.admin_port = process.listening("admin")
    except AssertionError:
        process.kill()
        raise
    return process


def upgrade_status(port, path):
    """The status a WebSocket upgrade for `path` gets (a 101's tunnel is closed right away)."""
    return raw_request(port, upgrade_request(f"{LOCALHOST}:{port}", path)).status


def proxies(controller):
    """The controller's /proxies list, by node id."""
    response = http_get(controller.admin_port, "/proxies")
    assert response.status == 200, response
    return {entry["node"]: entry for entry in json.loads(response.body)}


def snapshot_version(controller):
    """The version of the controller's snapshot in force (its /config)."""
    response = http_get(controller.admin_port, "/config")
    assert response.status == 200, response
    return json.loads(response.body)["version"]


def proxy_version(proxy):
    response = http_get(proxy.admin_port, "/config")
    return json.loads(response.body)["version"] if response.status == 200 else None


def responses_sent(controller):
    return metric(metrics(controller.admin_port), "wsgate_controller_discovery_responses_total")


NODES = ("proxy-a", "proxy-b")


class ControlPlaneTest(HarnessTestCase):
    def setUp(self):
        super().setUp()
        self.echo = self.start_echo_backend()
        self.routes = self.make_temp_dir()
        write_route(self.routes, "alpha", echo_route_spec(self.echo.port, "/alpha"))
        self.controller = self._own(start_controller(self.routes))
        self.proxies = [self._own(start_cp_proxy(self.controller.grpc_port, node)) for node in NODES]
        self.v0 = snapshot_version(self.controller)
        self.wait_all_acked(self.v0)
        for proxy in self.proxies:
            self.assertEqual(http_get(proxy.admin_port, "/readyz").status, 200)

    # ----------------------------------------------------------------------------------------

    def restart_controller(self, port):
        self.controller = self._own(start_controller(self.routes, f"127.0.0.1:{port}", name="controller-2"))

    def wait_all_acked(self, version, timeout=15):
        def acked():
            listed = proxies(self.controller)
            return set(listed) == set(NODES) and all(p["acked_version"] == version for p in listed.values())

        wait_until(acked, timeout, f"both proxies to ACK {version}")

    def wait_served(self, path, status=101, timeout=15):
        for proxy in self.proxies:
            wait_until(lambda: upgrade_status(proxy.port, path) == status, timeout,
                       f"{proxy.name} to answer {status} for {path}")

    def assert_echo(self, port, path):
        with RawWebSocket(port, path) as ws:
            ws.send_text("ping " + path)
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"ping " + path.encode()))

    # ----------------------------------------------------------------------------------------

    def test_route_change_reaches_both_proxies_and_is_served(self):
        self.assertEqual(upgrade_status(self.proxies[0].port, "/beta"), 404)
        write_route(self.routes, "beta", echo_route_spec(self.echo.port, "/beta"))
        self.wait_served("/beta")
        for proxy in self.proxies:
            self.assert_echo(proxy.port, "/beta")
            self.assert_echo(proxy.port, "/alpha")
        v1 = snapshot_version(self.controller)
        self.assertNotEqual(v1, self.v0)
        self.wait_all_acked(v1)
        for proxy in self.proxies:
            self.assertEqual(proxy_version(proxy), v1)
        listed = proxies(self.controller)
        for node, proxy in zip(NODES, self.proxies):
            self.assertEqual(listed[node]["address"], f"127.0.0.1:{proxy.port}")
            self.assertEqual(listed[node]["last_error"], "")
            self.assertRegex(listed[node]["connected_since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        samples = metrics(self.controller.admin_port)
        self.assertEqual(metric(samples, "wsgate_controller_connected_proxies"), 2)
        self.assertEqual(metric(samples, "wsgate_controller_snapshot_version_info", version=v1), 1)
        self.assertEqual(metric(samples, "wsgate_controller_snapshot_version_info", -1, version=self.v0), -1)
        self.assertEqual(metric(samples, "wsgate_config_updates_total", result="applied"), 2)
        for node in NODES:
            self.assertEqual(metric(samples, "wsgate_controller_proxy_config_info", node=node, version=v1,
                                    state="acked"), 1)
        self.assertIn("process_resident_memory_bytes", metrics_text(self.controller.admin_port))
        code, output = promtool_check(metrics_text(self.controller.admin_port))
        self.assertEqual(code, 0, output)
        for path in ("/healthz", "/readyz"):
            self.assertEqual(http_get(self.controller.admin_port, path).status, 200)

    def test_invalid_change_is_rejected_by_the_controller_and_old_routes_stay(self):
        sent = responses_sent(self.controller)
        mark = self.controller.mark()
        write_route(self.routes, "bad", {"pathPrefix": "/bad", "backends": [{"address": "127.0.0.1"}]})
        self.controller.wait_for_log(r"bad\.yaml: route default/bad: spec\.backends\[0\]\.address: missing port",
                                     since=mark)
        samples = metrics(self.controller.admin_port)
        self.assertEqual(metric(samples, "wsgate_config_updates_total", result="rejected"), 1)
        self.assertEqual(snapshot_version(self.controller), self.v0)
        self.assertEqual(responses_sent(self.controller), sent)
        for proxy in self.proxies:
            self.assertEqual(proxy_version(proxy), self.v0)
            self.assert_echo(proxy.port, "/alpha")
            self.assertEqual(upgrade_status(proxy.port, "/bad"), 404)

    def test_proxy_side_nack_keeps_last_good_snapshot(self):
        # The controller cannot see the proxies' files: a CA bundle missing on the proxies is
        # valid for the controller and refused by each proxy.
        missing_ca = os.path.join(self.routes, "no-such-ca.pem")
        write_route(self.routes, "secure", echo_route_spec(self.echo.port, "/secure")
                    | {"backends": [{"address": f"127.0.0.1:{self.echo.port}", "tls": True, "caFile": missing_ca}]})
        wait_until(lambda: snapshot_version(self.controller) != self.v0, 10, "the controller to accept it")
        v1 = snapshot_version(self.controller)

        def both_nacked():
            listed = proxies(self.controller)
            return all(listed[n]["nacked_version"] == v1 for n in NODES)

        wait_until(both_nacked, 15, "both proxies to NACK")
        listed = proxies(self.controller)
        samples = metrics(self.controller.admin_port)
        for node, proxy in zip(NODES, self.proxies):
            self.assertEqual(listed[node]["acked_version"], self.v0)
            self.assertIn("route default/secure: spec.backends[0].caFile", listed[node]["last_error"])
            self.assertIn(missing_ca, listed[node]["last_error"])
            self.assertEqual(metric(samples, "wsgate_controller_proxy_config_info", node=node, version=v1,
                                    state="nacked"), 1)
            self.assertEqual(metric(samples, "wsgate_controller_proxy_config_info", node=node, version=self.v0,
                                    state="acked"), 1)
            proxy.wait_for_log(r"NACK version " + v1)
            proxy_samples = metrics(proxy.admin_port)
            self.assertEqual(metric(proxy_samples, "wsgate_config_updates_total", result="rejected"), 1)
            self.assertEqual(metric(proxy_samples, "wsgate_config_info", version=self.v0), 1)
            self.assertEqual(proxy_version(proxy), self.v0)
            self.assert_echo(proxy.port, "/alpha")
            self.assertEqual(upgrade_status(proxy.port, "/secure"), 404)

        # Back to the old content: the proxies ACK it (they run it already) and the NACK clears.
        os.remove(os.path.join(self.routes, "secure.yaml"))
        wait_until(lambda: snapshot_version(self.controller) == self.v0, 10, "the controller to go back")
        wait_until(lambda: all(p["nacked_version"] == "" for p in proxies(self.controller).values()), 15,
                   "the NACK to clear")
        self.wait_all_acked(self.v0)
        for proxy in self.proxies:
            self.assertEqual(metric(metrics(proxy.admin_port), "wsgate_config_updates_total", result="applied"), 1)

    def test_controller_restart_keeps_tunnels_and_routes_then_resyncs(self):
        tunnels = [RawWebSocket(proxy.port, "/alpha") for proxy in self.proxies]
        for ws in tunnels:
            self.addCleanup(ws.abort)
        port = self.controller.grpc_port
        self.controller.kill()
        for proxy in self.proxies:
            wait_until(lambda: metric(metrics(proxy.admin_port), "wsgate_control_plane_connected", -1) == 0, 10,
                       f"{proxy.name} to notice the controller is gone")
        # Still serving: open tunnels, new handshakes, readiness.
        for ws, proxy in zip(tunnels, self.proxies):
            ws.send_text("still here")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"still here"))
            self.assert_echo(proxy.port, "/alpha")
            self.assertEqual(http_get(proxy.admin_port, "/readyz").status, 200)
            proxy.wait_for_log(r"control plane .*retrying in \d+ ms")

        write_route(self.routes, "gamma", echo_route_spec(self.echo.port, "/gamma"))
        self.restart_controller(port)
        self.wait_served("/gamma")
        v1 = snapshot_version(self.controller)
        self.wait_all_acked(v1)
        for ws, proxy in zip(tunnels, self.proxies):
            ws.send_text("after resync")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"after resync"))
            self.assert_echo(proxy.port, "/gamma")
            self.assertEqual(metric(metrics(proxy.admin_port), "wsgate_control_plane_connected"), 1)

    def test_identical_content_is_not_pushed_again(self):
        self.assertEqual(responses_sent(self.controller), 2)  # one snapshot per proxy so far
        # Same content rewritten, then a forced re-read: nothing to push.
        write_route(self.routes, "alpha", echo_route_spec(self.echo.port, "/alpha"))
        mark = self.controller.mark()
        self.controller.send_signal(signal.SIGHUP)
        self.controller.wait_for_log(r"routes unchanged \(version " + self.v0 + r"\): nothing to push", since=mark)
        self.assertEqual(responses_sent(self.controller), 2)

        # A restarted controller with the same content: the proxies say they run it, so it
        # sends nothing at all, yet knows both as ACKed.
        port = self.controller.grpc_port
        self.controller.terminate()
        self.restart_controller(port)
        self.wait_all_acked(self.v0)
        self.assertEqual(metric(metrics(self.controller.admin_port), "wsgate_controller_connected_proxies"), 2)
        self.assertEqual(responses_sent(self.controller), 0)

        # A real change: exactly one response per proxy.
        write_route(self.routes, "beta", echo_route_spec(self.echo.port, "/beta"))
        self.wait_served("/beta")
        self.wait_all_acked(snapshot_version(self.controller))
        self.assertEqual(responses_sent(self.controller), 2)


if __name__ == "__main__":
    main()
