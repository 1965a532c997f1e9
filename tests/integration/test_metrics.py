"""The admin endpoints of a real wsgate-proxy: /metrics after known traffic (exact values,
histogram consistency, `promtool check metrics`), /healthz, /readyz before and after a valid
config, and /config.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_metrics.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import OP_CLOSE, OP_TEXT, HandshakeError, RawWebSocket, close_payload, echo_route_spec, http_get, metric, metrics_text, parse_metrics, promtool_check, wait_until  # noqa: E402
from test_tunnel import ACTIVE, BYTES, B2C, C2B, CLOSES, masked_len, start_stack, unmasked_len, wait_metric, wait_no_tunnels  # noqa: E402

HANDSHAKES = "wsgate_handshakes_total"
HTTP = "wsgate_http_requests_total"
FAMILY_TYPES = {
    "wsgate_handshakes_total": "counter",
    "wsgate_handshake_duration_seconds": "histogram",
    "wsgate_active_tunnels": "gauge",
    "wsgate_tunnel_duration_seconds": "histogram",
    "wsgate_tunnel_bytes_total": "counter",
    "wsgate_tunnel_closes_total": "counter",
    "wsgate_http_requests_total": "counter",
    "wsgate_tls_handshake_errors_total": "counter",
    "wsgate_config_updates_total": "counter",
    "wsgate_config_info": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}


def declared_types(text):
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind
    return types


class MetricsTest(harness.HarnessTestCase):
    def start(self, routes):
        self.echo, self.routes_dir, self.proxy = start_stack(self, routes, class_scope=False)
        self.admin = self.proxy.admin_port

    def handshake_status(self, path, **kwargs):
        try:
            RawWebSocket(self.proxy.port, path, **kwargs).abort()
            return 101
        except HandshakeError as error:
            return error.response.status

    def assert_histogram(self, samples, name, route, count):
        """Buckets never decrease, +Inf equals _count, and _count is `count`."""
        buckets = sorted(
            (float(dict(labels)["le"]), value)
            for (sample, labels), value in samples.items()
            if sample == name + "_bucket" and dict(labels).get("route") == route
        )
        self.assertTrue(buckets, f"no {name} buckets for {route}")
        values = [value for _, value in buckets]
        self.assertEqual(values, sorted(values), f"{name} buckets decrease")
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual(buckets[-1][1], count)
        self.assertEqual(metric(samples, name + "_count", route=route), count)
        self.assertGreater(metric(samples, name + "_sum", route=route), 0)

    def test_metrics_match_the_traffic_exactly_and_pass_promtool(self):
        self.start(lambda port: {
            "chat": echo_route_spec(port, "/chat"),
            "app": echo_route_spec(port, "/status", websocketOnly=False),
        })
        sent = received = 0
        for index in range(3):
            ws = RawWebSocket(self.proxy.port, "/chat")
            message = f"message {index}".encode() * (index + 1)
            ws.send_text(message.decode())
            self.assertEqual(ws.recv_message(), (OP_TEXT, message))
            self.assertEqual(ws.close(1000), (1000, ""))
            sent += masked_len(OP_TEXT, message) + masked_len(OP_CLOSE, close_payload(1000))
            received += unmasked_len(OP_TEXT, message) + unmasked_len(OP_CLOSE, close_payload(1000))
        self.assertEqual(self.handshake_status("/nowhere"), 404)
        self.assertEqual(self.handshake_status("/nowhere/else"), 404)
        self.assertEqual(self.handshake_status("/chat", extra_headers={"Sec-WebSocket-Version": "12"}), 426)
        self.assertEqual(self.handshake_status("/status/403"), 403)  # the backend's refusal, relayed
        self.assertEqual(http_get(self.proxy.port, "/status/200").status, 200)
        self.assertEqual(http_get(self.proxy.port, "/status/503").status, 503)
        self.assertEqual(http_get(self.proxy.port, "/status/503").status, 503)
        self.assertEqual(http_get(self.proxy.port, "/nowhere").status, 404)

        wait_no_tunnels(self.admin)
        wait_metric(self.admin, CLOSES, 3, route="default/chat", code="1000", initiator="client")
        text = metrics_text(self.admin)
        samples = parse_metrics(text)

        def value(name, **labels):
            return metric(samples, name, default=None, **labels)

        self.assertEqual(value(HANDSHAKES, route="default/chat", code="101"), 3)
        self.assertEqual(value(HANDSHAKES, route="default/chat", code="426"), 1)
        self.assertEqual(value(HANDSHAKES, route="", code="404"), 2)
        self.assertEqual(value(HANDSHAKES, route="default/app", code="403"), 1)
        self.assertEqual(value(HTTP, route="default/app", code="200"), 1)
        self.assertEqual(value(HTTP, route="default/app", code="503"), 2)
        self.assertEqual(value(HTTP, route="", code="404"), 1)
        handshakes = sum(v for (n, _), v in samples.items() if n == HANDSHAKES)
        self.assertEqual(handshakes, 3 + 1 + 2 + 1, "a handshake was counted that the test did not make")
        self.assertEqual(sum(v for (n, _), v in samples.items() if n == HTTP), 4)

        self.assertEqual(value(BYTES, route="default/chat", direction=C2B), sent)
        self.assertEqual(value(BYTES, route="default/chat", direction=B2C), received)
        self.assertEqual(value(ACTIVE, route="default/chat"), 0)
        self.assertEqual(sum(v for (n, _), v in samples.items() if n == CLOSES), 3)
        self.assert_histogram(samples, "wsgate_handshake_duration_seconds", "default/chat", 3)
        self.assert_histogram(samples, "wsgate_tunnel_duration_seconds", "default/chat", 3)

        version = json.loads(http_get(self.admin, "/config").body)["version"]
        self.assertEqual(value("wsgate_config_info", version=version), 1)
        self.assertEqual(value("wsgate_config_updates_total", result="applied"), 1)
        self.assertIn(value("wsgate_config_updates_total", result="rejected"), (None, 0))

        self.assertGreater(value("process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(value("process_open_fds"), 3)
        self.assertGreaterEqual(value("process_cpu_seconds_total"), 0)
        self.assertEqual({name: declared_types(text).get(name) for name in FAMILY_TYPES}, FAMILY_TYPES)
        code, output = promtool_check(text)
        self.assertEqual(code, 0, f"promtool check metrics:\n{output}")

    def test_readyz_waits_for_a_valid_config_and_config_shows_it(self):
        routes_dir = self.make_temp_dir("wsgate-routes-")
        echo = self.start_echo_backend()
        harness.write_route(routes_dir, "chat", {"pathPrefix": "/chat", "backends": [{"address": "no-port"}]})
        self.proxy = self.start_proxy(routes_dir)
        self.admin = self.proxy.admin_port

        self.assertEqual(http_get(self.admin, "/healthz").status, 200)
        self.assertEqual(http_get(self.admin, "/readyz").status, 503)
        self.assertEqual(http_get(self.admin, "/config").status, 503)
        text = metrics_text(self.admin)
        samples = parse_metrics(text)
        self.assertEqual(metric(samples, "wsgate_config_updates_total", result="rejected"), 1)
        self.assertFalse([key for key in samples if key[0] == "wsgate_config_info"])
        self.assertEqual(promtool_check(text)[0], 0)
        self.assertEqual(self.handshake_status("/chat"), 404)  # no routes: nothing matches

        harness.write_route(routes_dir, "chat", {
            "hosts": ["chat.example.com", "*.chat.example.com"],
            "pathPrefix": "/chat",
            "backends": [{"address": f"127.0.0.1:{echo.port}", "weight": 3}],
            "allowedOrigins": ["https://chat.example.com"],
            "idleTimeoutSeconds": 30,
        })
        wait_until(lambda: http_get(self.admin, "/readyz").status == 200, what="/readyz 200 after the fix")
        response = http_get(self.admin, "/config")
        self.assertEqual(response.status, 200)
        self.assertIn("application/json", response.headers["content-type"])
        doc = json.loads(response.body)
        samples = parse_metrics(metrics_text(self.admin))
        self.assertEqual(metric(samples, "wsgate_config_info", version=doc["version"]), 1)
        self.assertEqual(metric(samples, "wsgate_config_updates_total", result="applied"), 1)
        self.assertEqual(len(doc["routes"]), 1)
        route = doc["routes"][0]
        self.assertEqual((route["namespace"], route["name"]), ("default", "chat"))
        self.assertEqual(route["hosts"], ["chat.example.com", "*.chat.example.com"])
        self.assertEqual(route["pathPrefix"], "/chat")
        self.assertEqual(route["backends"][0]["address"], f"127.0.0.1:{echo.port}")
        self.assertEqual(route["backends"][0]["weight"], 3)
        self.assertEqual(route["allowedOrigins"], ["https://chat.example.com"])
        self.assertEqual(route["idleTimeoutSeconds"], 30)
        self.assertEqual(route["websocketOnly"], True)

        ws = RawWebSocket(self.proxy.port, "/chat", host="a.chat.example.com",
                          extra_headers={"Origin": "https://chat.example.com"})
        ws.send_text("configured")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"configured"))
        self.assertEqual(ws.close(1000), (1000, ""))


if __name__ == "__main__":
    harness.main()
