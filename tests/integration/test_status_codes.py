"""Every row of SPEC's "Handshake outcomes" table, through a real proxy and the echo backend.

Each case sends the bad input behind a row and checks the status, the short plain-text body
naming the reason, the extra headers the row asks for, and that the matching
wsgate_handshakes_total{route,code} series (and no other) moved by exactly one.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_status_codes.py
"""

import base64
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    LOCALHOST,
    OP_TEXT,
    RawWebSocket,
    SocketReader,
    connect,
    echo_route_spec,
    metric,
    metric_sum,
    raw_request,
    read_response,
    upgrade_request,
    wait_until,
)

HANDSHAKES = "wsgate_handshakes_total"
HTTP_REQUESTS = "wsgate_http_requests_total"


def route_id(name):
    return f"default/{name}"


class StatusCodesTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        # Bound but never listening: a connect there is refused at once, and no other process
        # can take the port while the test holds it.
        cls.closed_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.addClassCleanup(cls.closed_socket.close)
        cls.closed_socket.bind((LOCALHOST, 0))
        cls.closed_port = cls.closed_socket.getsockname()[1]

        cls.echo = cls.start_class_process(harness.start_echo_backend())
        routes = harness.tempfile.mkdtemp(prefix="wsgate-status-")
        cls.addClassCleanup(harness.shutil.rmtree, routes, True)
        port = cls.echo.port
        specs = {
            "ws": echo_route_spec(port, "/ws"),
            "proto": echo_route_spec(port, "/proto", subprotocols=["chat.v2", "chat.v1"]),
            "origin": echo_route_spec(port, "/origin", allowedOrigins=["https://good.example"]),
            "hosted": echo_route_spec(port, "/hosted", hosts=["only.example"]),
            "rate": echo_route_spec(port, "/rate", handshakesPerSecond=1),
            "limit": echo_route_spec(port, "/limit", maxTunnels=1),
            "down": echo_route_spec(cls.closed_port, "/down"),
            "hang": echo_route_spec(port, "/hang", handshakeTimeoutSeconds=1),
            "garbage": echo_route_spec(port, "/garbage"),
            "bad-accept": echo_route_spec(port, "/bad-accept"),
            "status": echo_route_spec(port, "/status/"),
        }
        for name, spec in specs.items():
            harness.write_route(routes, name, spec)
        cls.proxy = cls.start_class_process(harness.start_proxy(routes))
        wait_until(lambda: harness.http_get(cls.proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")
        config = json.loads(harness.http_get(cls.proxy.admin_port, "/config").body)
        loaded = {route["name"] for route in config["routes"]}
        assert loaded == set(specs), f"routes loaded: {sorted(loaded)}"

    # ----------------------------------------------------------------------------------------
    # helpers

    def host(self):
        return f"{LOCALHOST}:{self.proxy.port}"

    def upgrade(self, path, **kwargs):
        return upgrade_request(self.host(), path, **kwargs)

    def metrics(self):
        return harness.metrics(self.proxy.admin_port)

    def assert_counted(self, before, route, code, family=HANDSHAKES):
        """The {route, code} series of `family` moved by exactly one, and the family as a whole
        by one too (nothing else counted the same request)."""
        start = metric(before, family, route=route, code=str(code))
        start_total = metric_sum(before, family)
        after = wait_until(
            lambda: (lambda s: s if metric(s, family, route=route, code=str(code)) > start else None)(
                self.metrics()),
            what=f"{family}{{route={route!r},code={code}}} to move")
        self.assertEqual(metric(after, family, route=route, code=str(code)) - start, 1)
        self.assertEqual(metric_sum(after, family) - start_total, 1, f"{family} moved elsewhere too")

    def assert_outcome(self, request, status, reason, route, headers=None, family=HANDSHAKES):
        """Sends `request` on a new connection and checks the proxy's own answer."""
        before = self.metrics()
        response = raw_request(self.proxy.port, request)
        self.check_proxy_answer(response, status, reason, headers)
        self.assert_counted(before, route, status, family)
        return response

    def check_proxy_answer(self, response, status, reason, headers=None):
        body = response.body.decode("utf-8")
        self.assertEqual(response.status, status, body)
        self.assertTrue(response.headers.get("content-type", "").startswith("text/plain"), response)
        self.assertTrue(body.startswith(f"{status} "), body)
        self.assertIn(reason.lower(), body.lower())
        self.assertLess(len(body), 200, "the body is a short reason")
        self.assertEqual(response.headers.get("connection"), "close")
        for name, value in (headers or {}).items():
            self.assertEqual(response.headers.get(name.lower()), value, response)

    # ----------------------------------------------------------------------------------------
    # 400

    def test_400_post_upgrade(self):
        self.assert_outcome(self.upgrade("/ws", method="POST"), 400, "must use GET", route_id("ws"))

    def test_400_http_1_0(self):
        self.assert_outcome(self.upgrade("/ws", http_version="1.0"), 400, "HTTP/1.1",
                            route_id("ws"))

    def test_400_connection_without_upgrade_token(self):
        request = self.upgrade("/ws", extra_headers={"Connection": "keep-alive"})
        self.assert_outcome(request, 400, "upgrade token", route_id("ws"))

    def test_400_missing_key(self):
        request = self.upgrade("/ws", omit=["Sec-WebSocket-Key"])
        self.assert_outcome(request, 400, "Sec-WebSocket-Key", route_id("ws"))

    def test_400_key_not_base64_of_16_bytes(self):
        for key in (base64.b64encode(os.urandom(15)).decode(),   # 20 characters
                    base64.b64encode(os.urandom(17)).decode(),   # 24 characters, one "="
                    "!!!!!!!!!!!!!!!!!!!!!!==",                   # right shape, not base64
                    "dGhlIHNhbXBsZSBub25jZQ"):                    # 16 bytes without padding
            with self.subTest(key=key):
                request = self.upgrade("/ws", key=key)
                self.assert_outcome(request, 400, "not base64 of 16 bytes", route_id("ws"))

    def test_400_no_host(self):
        # Without a Host no route can match: the series has the empty route label.
        self.assert_outcome(self.upgrade("/ws", omit=["Host"]), 400, "missing Host", "")

    def test_400_required_subprotocol_missing(self):
        self.assert_outcome(self.upgrade("/proto"), 400, "subprotocols", route_id("proto"))
        request = self.upgrade("/proto", extra_headers={"Sec-WebSocket-Protocol": "chat.v3, mqtt"})
        self.assert_outcome(request, 400, "subprotocols", route_id("proto"))

    def test_400_malformed_http(self):
        request = (b"GARBAGE\x01LINE\r\nHost: " + self.host().encode() +
                   b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        # Nothing was routed: the empty route label.
        self.assert_outcome(request, 400, "malformed HTTP", "")

    def test_400_content_length_with_transfer_encoding(self):
        # The parser refuses these before routing (empty route label); a Transfer-Encoding the
        # parser does not frame by gets through it and is refused after routing.
        cases = (([("Content-Length", "5"), ("Transfer-Encoding", "chunked")], ""),
                 ([("Transfer-Encoding", "chunked"), ("Content-Length", "5")], ""),
                 ([("Transfer-Encoding", "gzip"), ("Content-Length", "5")], route_id("ws")))
        for pair, route in cases:
            with self.subTest(headers=pair):
                request = self.upgrade("/ws", extra_headers=pair) + b"hello"
                self.assert_outcome(request, 400, "both Content-Length and Transfer-Encoding", route)

    def test_400_conflicting_content_lengths(self):
        for values in (["5", "6"], ["5, 6"]):
            with self.subTest(values=values):
                extra = [("Content-Length", value) for value in values]
                request = self.upgrade("/ws", extra_headers=extra) + b"hello!"
                self.assert_outcome(request, 400, "conflicting Content-Length", "")

    def test_400_upgrade_with_body(self):
        request = self.upgrade("/ws", extra_headers={"Content-Length": "5"}) + b"hello"
        self.assert_outcome(request, 400, "must not carry a body", route_id("ws"))

    # ----------------------------------------------------------------------------------------
    # 403, 404, 426

    def test_403_origin_not_allowed(self):
        request = self.upgrade("/origin", extra_headers={"Origin": "https://evil.example"})
        self.assert_outcome(request, 403, "Origin not allowed", route_id("origin"))

    def test_403_origin_missing(self):
        self.assert_outcome(self.upgrade("/origin"), 403, "Origin header required",
                            route_id("origin"))

    def test_allowed_origin_opens_a_tunnel(self):
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/origin",
                          extra_headers={"Origin": "https://good.example"}) as ws:
            ws.send_text("allowed")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"allowed"))
            self.assertEqual(ws.close(1000), (1000, ""))
        self.assert_counted(before, route_id("origin"), 101)

    def test_404_no_route_for_path(self):
        self.assert_outcome(self.upgrade("/nothing-here"), 404, "no route", "")

    def test_404_no_route_for_host(self):
        # /hosted exists, but only for only.example.
        request = upgrade_request("other.example", "/hosted")
        self.assert_outcome(request, 404, "no route", "")

    def test_hosted_route_matches_its_host(self):
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/hosted", host="ONLY.example:8080") as ws:
            self.assertEqual(ws.close(1000), (1000, ""))
        self.assert_counted(before, route_id("hosted"), 101)

    def test_426_plain_request_on_websocket_only_route(self):
        # A row of the handshake table, so a handshake counter moves (not the plain HTTP one).
        request = harness.request_bytes("GET", "/ws", self.host())
        before = self.metrics()
        self.assert_outcome(request, 426, "only accepts WebSocket", route_id("ws"),
                            headers={"Upgrade": "websocket"})
        self.assertEqual(metric_sum(self.metrics(), HTTP_REQUESTS), metric_sum(before, HTTP_REQUESTS))

    def test_426_wrong_websocket_version(self):
        for version in ("8", "14"):
            with self.subTest(version=version):
                self.assert_outcome(self.upgrade("/ws", version=version), 426, "must be 13",
                                    route_id("ws"), headers={"Sec-WebSocket-Version": "13"})

    # ----------------------------------------------------------------------------------------
    # 429, 431, 503

    def test_429_handshakes_per_second(self):
        # The bucket holds one token: of back-to-back handshakes one gets through and the next
        # is refused, unless a whole second passed between them (a very slow machine) - then try
        # again, boundedly.
        before = self.metrics()
        refused = None
        opened = 0
        for _ in range(5):
            response = raw_request(self.proxy.port, self.upgrade("/rate"))
            if response.status == 101:
                opened += 1
                continue
            refused = response
            break
        self.assertIsNotNone(refused, "no handshake was refused")
        self.assertGreaterEqual(opened, 1, "the first handshake should have had a token")
        self.check_proxy_answer(refused, 429, "rate limit", {})
        self.assertRegex(refused.headers.get("retry-after", ""), r"^[1-9][0-9]*$")
        self.assert_counted_excluding(before, route_id("rate"), 429, opened_101=opened)

    def assert_counted_excluding(self, before, route, code, opened_101):
        """Like assert_counted, for a test that also opened `opened_101` tunnels on the route."""
        wait_until(lambda: metric(self.metrics(), HANDSHAKES, route=route, code="101")
                   - metric(before, HANDSHAKES, route=route, code="101") >= opened_101,
                   what="101s counted")
        after = self.metrics()
        self.assertEqual(metric(after, HANDSHAKES, route=route, code=str(code))
                         - metric(before, HANDSHAKES, route=route, code=str(code)), 1)
        self.assertEqual(metric_sum(after, HANDSHAKES) - metric_sum(before, HANDSHAKES),
                         1 + opened_101)

    def test_431_headers_too_large(self):
        request = self.upgrade("/ws", extra_headers={"X-Padding": "a" * (17 * 1024)})
        self.assert_outcome(request, 431, "larger than the limit", "")

    def test_headers_just_under_the_limit_pass(self):
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/ws", extra_headers={"X-Padding": "a" * (15 * 1024)}) as ws:
            ws.send_text("big headers")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"big headers"))
        self.assert_counted(before, route_id("ws"), 101)

    def test_503_max_tunnels(self):
        before = self.metrics()
        first = RawWebSocket(self.proxy.port, "/limit")
        self.addCleanup(first.abort)
        self.assert_counted(before, route_id("limit"), 101)
        response = self.assert_outcome(self.upgrade("/limit"), 503, "tunnel limit",
                                       route_id("limit"))
        self.assertRegex(response.headers.get("retry-after", ""), r"^[1-9][0-9]*$")
        # The tunnel still works, and once it is closed its slot is free again.
        first.send_text("still open")
        self.assertEqual(first.recv_message(), (OP_TEXT, b"still open"))
        self.assertEqual(first.close(1000), (1000, ""))

        def reopened():
            try:
                with RawWebSocket(self.proxy.port, "/limit") as ws:
                    ws.close(1000)
                return True
            except harness.HandshakeError as error:
                if error.response.status != 503:
                    raise
                return False

        wait_until(reopened, what="the tunnel slot to be released")

    # ----------------------------------------------------------------------------------------
    # 502, 504

    def test_502_backend_port_closed(self):
        self.assert_outcome(self.upgrade("/down"), 502, "no backend could be connected",
                            route_id("down"))

    def test_502_backend_answer_not_http(self):
        self.assert_outcome(self.upgrade("/garbage"), 502, "not HTTP", route_id("garbage"))

    def test_502_bad_accept(self):
        self.assert_outcome(self.upgrade("/bad-accept"), 502, "invalid WebSocket handshake",
                            route_id("bad-accept"))

    def test_504_backend_hangs(self):
        started = time.monotonic()
        self.assert_outcome(self.upgrade("/hang"), 504, "in time", route_id("hang"))
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.8, "answered before handshakeTimeoutSeconds")
        self.assertLess(elapsed, 5.0, "handshakeTimeoutSeconds: 1 not applied")

    # ----------------------------------------------------------------------------------------
    # relayed answers

    def test_backend_refusal_relayed_as_is(self):
        before = self.metrics()
        with connect(self.proxy.port) as sock:
            sock.sendall(self.upgrade("/status/403"))
            reader = SocketReader(sock)
            response = read_response(reader)
            self.assertEqual(response.status, 403)
            self.assertEqual(response.body, b"status 403 from the echo backend\n")
            self.assertNotIn("upgrade", response.headers)
            # No tunnel: the proxy closes the connection after the answer.
            self.assertTrue(reader.wait_closed(5))
        self.assert_counted(before, route_id("status"), 403)

    def test_101_with_subprotocol_relayed(self):
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/proto",
                          extra_headers={"Sec-WebSocket-Protocol": "chat.v1, chat.v2"}) as ws:
            self.assertEqual(ws.response.status, 101)
            self.assertEqual(ws.subprotocol, "chat.v1")
            self.assertEqual(ws.response.headers.get("upgrade", "").lower(), "websocket")
            ws.send_text("with a subprotocol")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"with a subprotocol"))
            self.assertEqual(ws.close(1000), (1000, ""))
        self.assert_counted(before, route_id("proto"), 101)


if __name__ == "__main__":
    harness.main()
