"""Hot reload of a real wsgate-proxy's route directory while tunnels are open: changed and
added routes, removed routes, rejected files, kubelet ConfigMap "..data" swaps and SIGHUP.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_reload.py
"""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import OP_TEXT, HandshakeError, RawWebSocket, echo_route_spec, http_get, metric, metrics, route_document, wait_until  # noqa: E402
from test_tunnel import ACTIVE, CLOSES, RawWebSocketServer, start_stack, wait_metric  # noqa: E402

UPDATES = "wsgate_config_updates_total"
INFO = "wsgate_config_info"


def config_doc(admin_port):
    response = http_get(admin_port, "/config")
    if response.status != 200:
        raise AssertionError(f"/config answered {response.status}: {response.body!r}")
    return json.loads(response.body)


def info_versions(samples):
    """The version labels of wsgate_config_info samples set to 1."""
    return [dict(labels)["version"] for (name, labels), value in samples.items() if name == INFO and value == 1]


class ReloadTest(harness.HarnessTestCase):
    def start(self, routes, routes_dir=None):
        if routes_dir is None:
            self.echo, self.routes_dir, self.proxy = start_stack(self, routes, class_scope=False)
        else:
            self.echo = self.start_echo_backend()
            self.routes_dir = routes_dir
            for name, spec in routes(self.echo.port).items():
                harness.write_route(routes_dir, name, spec)
            self.proxy = self.start_proxy(routes_dir)
        self.admin = self.proxy.admin_port
        return config_doc(self.admin)["version"]

    def ws(self, path):
        ws = RawWebSocket(self.proxy.port, path)
        self.addCleanup(ws.abort)
        return ws

    def assert_echoes(self, sockets, message):
        for index, ws in enumerate(sockets):
            payload = f"{message} {index}".encode()
            ws.send_text(payload.decode())
            self.assertEqual(ws.recv_message(), (OP_TEXT, payload), f"tunnel {index}")

    def assert_no_route(self, path):
        with self.assertRaises(HandshakeError) as raised:
            self.ws(path)
        self.assertEqual(raised.exception.response.status, 404)

    def wait_version_change(self, old_version):
        doc = wait_until(lambda: (d := config_doc(self.admin))["version"] != old_version and d,
                         what=f"config version to move on from {old_version}")
        samples = metrics(self.admin)
        self.assertEqual(info_versions(samples), [doc["version"]], "wsgate_config_info must hold only the version in force")
        return doc, samples

    def route_in(self, doc, name):
        found = [r for r in doc["routes"] if r["name"] == name]
        return found[0] if found else None

    # ---------------------------------------------------------------------------------------

    def test_changed_and_added_route_keep_50_tunnels_echoing(self):
        version = self.start(lambda port: {"chat": echo_route_spec(port, "/chat")})
        applied = metric(metrics(self.admin), UPDATES, result="applied")
        self.assertEqual(applied, 1)
        self.assert_no_route("/new")
        tunnels = [self.ws("/chat") for _ in range(50)]
        self.assert_echoes(tunnels, "before reload")

        # One atomic rewrite of the file: a changed field, and a second route added to it.
        harness.write_route(self.routes_dir, "chat", [
            route_document("chat", echo_route_spec(self.echo.port, "/chat", maxTunnels=500)),
            route_document("new", echo_route_spec(self.echo.port, "/new")),
        ])
        doc, samples = self.wait_version_change(version)
        self.assertEqual(metric(samples, UPDATES, result="applied"), applied + 1)
        self.assertEqual(self.route_in(doc, "chat")["maxTunnels"], 500)
        self.assertEqual(self.route_in(doc, "new")["pathPrefix"], "/new")
        self.assertEqual(metric(samples, ACTIVE, route="default/chat"), 50, "a tunnel was dropped by the reload")

        new = self.ws("/new")
        new.send_text("on the new route")
        self.assertEqual(new.recv_message(), (OP_TEXT, b"on the new route"))
        self.assertEqual(metric(metrics(self.admin), "wsgate_handshakes_total", route="default/new", code="101"), 1)
        self.assert_echoes(tunnels, "after reload")
        for ws in tunnels:
            self.assertEqual(ws.close(4010, "done"), (4010, "done"))
        wait_metric(self.admin, CLOSES, 50, route="default/chat", code="4010", initiator="client")

    def test_removed_route_keeps_its_open_tunnels(self):
        version = self.start(lambda port: {
            "stay": echo_route_spec(port, "/stay"),
            "gone": echo_route_spec(port, "/gone"),
        })
        tunnels = [self.ws("/gone") for _ in range(10)]
        self.assert_echoes(tunnels, "before removal")
        harness.remove_route(self.routes_dir, "gone")
        doc, samples = self.wait_version_change(version)
        self.assertIsNone(self.route_in(doc, "gone"))
        self.assertEqual(metric(samples, ACTIVE, route="default/gone"), 10)
        self.assert_no_route("/gone")
        self.assert_echoes(tunnels, "after removal")
        for ws in tunnels:
            self.assertEqual(ws.close(4011, "bye"), (4011, "bye"))
        wait_metric(self.admin, CLOSES, 10, route="default/gone", code="4011", initiator="client")
        wait_metric(self.admin, ACTIVE, 0, route="default/gone")

    def test_a_handshake_in_flight_survives_the_removal_of_its_route(self):
        backend = RawWebSocketServer(hold_101=True)
        self.addCleanup(backend.close)
        version = self.start(lambda port: {
            "chat": echo_route_spec(port, "/chat"),
            "slow": echo_route_spec(backend.port, "/slow"),
        })
        client = RawWebSocket(self.proxy.port, "/slow", handshake=False)
        self.addCleanup(client.abort)
        client.sock.sendall(client.request)
        self.assertTrue(backend.got_request.wait(5), "the upgrade never reached the backend")
        harness.remove_route(self.routes_dir, "slow")
        self.wait_version_change(version)
        self.assert_no_route("/slow")
        backend.release.set()
        self.assertEqual(harness.read_response(client.reader, "GET").status, 101)
        server = backend.wait_ready()
        client.send_text("through a removed route")
        self.assertEqual(server.recv_message(), (OP_TEXT, b"through a removed route"))
        server.send_frame(OP_TEXT, b"and back")
        self.assertEqual(client.recv_message(), (OP_TEXT, b"and back"))
        self.assertEqual(metric(metrics(self.admin), ACTIVE, route="default/slow"), 1)
        client.abort()  # both ends gone: the tunnel ends now rather than in the stop's drain
        server.sock.close()
        wait_metric(self.admin, ACTIVE, 0, route="default/slow")

    def test_invalid_route_file_is_rejected_and_the_old_routes_stay(self):
        self.start(lambda port: {"chat": echo_route_spec(port, "/chat")})
        open_tunnel = self.ws("/chat")
        before_config = http_get(self.admin, "/config").body
        samples = metrics(self.admin)
        rejected = metric(samples, UPDATES, result="rejected")
        applied = metric(samples, UPDATES, result="applied")
        mark = self.proxy.mark()

        path = harness.write_route(self.routes_dir, "broken", {
            "pathPrefix": "/broken", "backends": [{"address": "127.0.0.1"}]})
        samples = wait_metric(self.admin, UPDATES, rejected + 1, result="rejected")
        self.assertEqual(metric(samples, UPDATES, result="applied"), applied)
        line = self.proxy.wait_for_log(r"rejected.*broken\.yaml.*", since=mark).group(0)
        self.assertIn(path, line)
        self.assertIn("default/broken", line)
        self.assertIn("spec.backends[0].address", line)
        self.assertEqual(http_get(self.admin, "/config").body, before_config)
        self.assertEqual(info_versions(samples), [json.loads(before_config)["version"]])

        self.assert_echoes([open_tunnel, self.ws("/chat")], "old routes still work")
        self.assert_no_route("/broken")

        # YAML that does not even parse: rejected too, named too. (The broken file goes first:
        # an update is rejected with its first error, and the same error is not counted twice.)
        os.remove(path)
        mark = self.proxy.mark()
        harness.write_route(self.routes_dir, "garbage", "spec: [unclosed\n")
        wait_metric(self.admin, UPDATES, rejected + 2, result="rejected")
        self.proxy.wait_for_log(r"rejected.*garbage\.yaml", since=mark)
        self.assertEqual(http_get(self.admin, "/config").body, before_config)
        self.assertTrue(self.proxy.running())

    def test_configmap_data_symlink_swap_triggers_a_reload(self):
        # The kubelet's layout: visible files are symlinks through "..data", which points at a
        # timestamped directory; an update writes a new directory and renames a new "..data"
        # symlink over the old one in one step.
        routes_dir = self.make_temp_dir("wsgate-configmap-")

        def publish(stamp, port, documents):
            data_dir = os.path.join(routes_dir, f"..{stamp}")
            os.mkdir(data_dir)
            harness.write_route(data_dir, "routes", documents)
            os.symlink(f"..{stamp}", os.path.join(routes_dir, "..data_tmp"))
            os.replace(os.path.join(routes_dir, "..data_tmp"), os.path.join(routes_dir, "..data"))
            if not os.path.lexists(os.path.join(routes_dir, "routes.yaml")):
                os.symlink("..data/routes.yaml", os.path.join(routes_dir, "routes.yaml"))
            return data_dir

        echo = self.start_echo_backend()
        first = publish("2024_01_01", echo.port, [route_document("chat", echo_route_spec(echo.port, "/chat"))])
        self.proxy = self.start_proxy(routes_dir)
        self.admin = self.proxy.admin_port
        version = config_doc(self.admin)["version"]
        tunnel = self.ws("/chat")
        self.assert_no_route("/swapped")

        publish("2024_01_02", echo.port, [
            route_document("chat", echo_route_spec(echo.port, "/chat")),
            route_document("swapped", echo_route_spec(echo.port, "/swapped")),
        ])
        harness.shutil.rmtree(first)  # the kubelet removes the old directory after the swap
        doc, _ = self.wait_version_change(version)
        self.assertIsNotNone(self.route_in(doc, "swapped"))
        self.assert_echoes([tunnel, self.ws("/swapped")], "after the swap")

    def test_sighup_rereads_the_routes(self):
        version = self.start(lambda port: {"chat": echo_route_spec(port, "/chat")})
        tunnel = self.ws("/chat")
        applied = metric(metrics(self.admin), UPDATES, result="applied")
        mark = self.proxy.mark()
        self.proxy.send_signal(signal.SIGHUP)
        self.proxy.wait_for_log(r"SIGHUP", since=mark)
        # Nothing changed on disk, so only the forced re-read can count an update.
        samples = wait_metric(self.admin, UPDATES, applied + 1, result="applied")
        self.proxy.wait_for_log(r"routes applied: 1 routes, version " + version, since=mark)
        self.assertEqual(info_versions(samples), [version])
        self.assert_echoes([tunnel], "after SIGHUP")
        self.assertTrue(self.proxy.running())


if __name__ == "__main__":
    harness.main()
