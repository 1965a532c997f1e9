"""Reliability and hostile input, through a real proxy: the timeout model (client header
timeout, maxLifetimeSeconds, idle), proxy-side pings that find dead peers, admission limits
(route and process wide), maxMessageBytes (1009 to the sender, 1001 to its peer), close-code
metrics, request smuggling and open-proxy attempts.

Some tests use a scripted backend written here (RecordingBackend) because they must see what
reached the backend, or need a backend that stops answering.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_reliability.py
"""

import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    LOCALHOST,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HandshakeError,
    RawWebSocket,
    SocketReader,
    accept_for,
    close_payload,
    connect,
    echo_route_spec,
    metric,
    raw_request,
    read_response,
    upgrade_request,
    wait_until,
)

TIMEOUTS = "wsgate_tunnel_timeouts_total"
CLOSES = "wsgate_tunnel_closes_total"
HANDSHAKES = "wsgate_handshakes_total"


def route_id(name):
    return f"default/{name}"


class RecordingBackend:
    """A WebSocket + HTTP/1.1 backend on 127.0.0.1:0 that records what reaches it.

    mode "echo": echoes data frames, answers pings and close frames (with the same code).
    mode "silent": completes the handshake, then reads and drops everything, answering nothing.
    Plain HTTP requests get "200 ok" and the connection closes."""

    def __init__(self, mode="echo"):
        self.mode = mode
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []          # (request line, {lower-case name: value})
        self.close_codes = []       # close codes received from the proxy
        self.message_sizes = []     # sizes of data frames received
        self.pings = 0
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((LOCALHOST, 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while self.running:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        reader = SocketReader(sock, timeout=30)
        try:
            head = reader.read_until(b"\r\n\r\n").decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            with self.lock:
                self.requests.append((lines[0], headers))
            if "websocket" not in headers.get("upgrade", "").lower():
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    reader.read_exact(length)
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                return
            accept = accept_for(headers["sec-websocket-key"])
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self._websocket(sock, reader)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            sock.close()

    def _websocket(self, sock, reader):
        while True:
            first, second = reader.read_exact(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", reader.read_exact(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", reader.read_exact(8))[0]
            key = reader.read_exact(4) if second & 0x80 else b""
            payload = reader.read_exact(length)
            if key:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if self.mode == "silent":
                continue
            if opcode == OP_CLOSE:
                with self.lock:
                    self.close_codes.append(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
                sock.sendall(harness.frame_bytes(OP_CLOSE, payload[:2], mask=False))
                return
            if opcode == OP_PING:
                with self.lock:
                    self.pings += 1
                sock.sendall(harness.frame_bytes(OP_PONG, payload, mask=False))
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                with self.lock:
                    self.message_sizes.append(len(payload))
                sock.sendall(harness.frame_bytes(opcode, payload, fin=bool(first & 0x80), mask=False))

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "requests": list(self.requests),
                    "close_codes": list(self.close_codes), "message_sizes": list(self.message_sizes),
                    "pings": self.pings}

    def stop(self):
        self.running = False
        self.server.close()


class ReliabilityTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = cls.start_class_process(harness.start_echo_backend())
        cls.recorder = RecordingBackend()
        cls.addClassCleanup(cls.recorder.stop)
        cls.silent = RecordingBackend("silent")
        cls.addClassCleanup(cls.silent.stop)
        cls.routes = harness.tempfile.mkdtemp(prefix="wsgate-reliability-")
        cls.addClassCleanup(harness.shutil.rmtree, cls.routes, True)
        echo = cls.echo.port
        rec = cls.recorder.port
        specs = {
            "ws": echo_route_spec(echo, "/ws"),
            "life": echo_route_spec(echo, "/life", maxLifetimeSeconds=1),
            "idle": echo_route_spec(echo, "/idle", idleTimeoutSeconds=1),
            "idleping": echo_route_spec(echo, "/idleping", idleTimeoutSeconds=3,
                                        pingIntervalSeconds=1),
            "ping": echo_route_spec(echo, "/ping", pingIntervalSeconds=1),
            "silent": echo_route_spec(cls.silent.port, "/silent", pingIntervalSeconds=1),
            "big": echo_route_spec(rec, "/big", maxMessageBytes=1000),
            "limit": echo_route_spec(echo, "/limit", maxTunnels=1),
            "rate": echo_route_spec(echo, "/rate", handshakesPerSecond=1),
            "plain": echo_route_spec(rec, "/plain", websocketOnly=False),
            "hosted": echo_route_spec(rec, "/hosted", websocketOnly=False, hosts=["only.example"]),
        }
        for name, spec in specs.items():
            harness.write_route(cls.routes, name, spec)
        cls.proxy = cls.start_class_process(harness.start_proxy(
            cls.routes, ["--client-header-timeout-ms", "1000"]))
        wait_until(lambda: harness.http_get(cls.proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")
        config = json.loads(harness.http_get(cls.proxy.admin_port, "/config").body)
        assert {r["name"] for r in config["routes"]} == set(specs), config

    def metrics(self, proxy=None):
        return harness.metrics((proxy or self.proxy).admin_port)

    def wait_metric(self, name, at_least, proxy=None, **labels):
        return wait_until(lambda: (lambda s: s if metric(s, name, **labels) >= at_least else None)(
            self.metrics(proxy)), what=f"{name}{labels} >= {at_least}")

    def echo_round_trip(self, ws, text):
        ws.send_text(text)
        self.assertEqual(ws.recv_message(), (OP_TEXT, text.encode()))

    def close_reply(self, ws, code):
        ws.send_frame(OP_CLOSE, close_payload(code))
        self.assertTrue(ws.wait_closed(5))

    # ----------------------------------------------------------------------------------------
    # Timeouts

    def test_slowloris_is_closed_while_another_client_is_served(self):
        before = self.metrics()
        slow = connect(self.proxy.port)
        self.addCleanup(slow.close)
        slow.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        started = time.monotonic()
        closed_after = None
        with RawWebSocket(self.proxy.port, "/ws") as ws:
            # Keep dribbling a header line while the other client keeps talking: the header
            # deadline is absolute, so the dribble does not extend it.
            for i in range(60):
                try:
                    slow.sendall(b"X-Drip-%d: 1\r\n" % i)
                    readable, _, _ = select.select([slow], [], [], 0)
                    if readable and slow.recv(4096) == b"":
                        closed_after = time.monotonic() - started
                        break
                except OSError:  # reset: closed too
                    closed_after = time.monotonic() - started
                    break
                self.echo_round_trip(ws, f"still served {i}")
                time.sleep(0.1)
            self.assertIsNotNone(closed_after, "slow client never disconnected")
            self.assertGreaterEqual(closed_after, 0.8)
            self.assertLess(closed_after, 4.0)
            self.echo_round_trip(ws, "after the slow client went")
        after = self.wait_metric(HANDSHAKES, metric(before, HANDSHAKES, route="", code="408") + 1,
                                 route="", code="408")
        self.assertEqual(metric(after, HANDSHAKES, route="", code="408")
                         - metric(before, HANDSHAKES, route="", code="408"), 1)

    def test_max_lifetime_closes_with_1001(self):
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/life") as ws:
            opened = time.monotonic()
            self.echo_round_trip(ws, "young")
            opcode, payload = ws.recv_message(timeout=5)
            age = time.monotonic() - opened
            self.assertEqual(opcode, OP_CLOSE)
            self.assertEqual(struct.unpack("!H", payload[:2])[0], 1001)
            self.assertEqual(payload[2:], b"max lifetime")
            self.assertGreater(age, 0.7)
            self.close_reply(ws, 1001)
        route = route_id("life")
        after = self.wait_metric(CLOSES, metric(before, CLOSES, route=route, code="1001",
                                                initiator="proxy") + 1,
                                 route=route, code="1001", initiator="proxy")
        self.assertEqual(metric(after, TIMEOUTS, route=route, reason="lifetime")
                         - metric(before, TIMEOUTS, route=route, reason="lifetime"), 1)

    def test_idle_timeout_is_counted_by_reason(self):
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/idle") as ws:
            opcode, payload = ws.recv_message(timeout=5)
            self.assertEqual((opcode, payload[:2]), (OP_CLOSE, struct.pack("!H", 1001)))
            self.close_reply(ws, 1001)
        route = route_id("idle")
        self.wait_metric(TIMEOUTS, metric(before, TIMEOUTS, route=route, reason="idle") + 1,
                         route=route, reason="idle")

    def test_idle_timeout_is_not_held_off_by_keepalive_pongs(self):
        with RawWebSocket(self.proxy.port, "/idleping") as ws:
            opened = time.monotonic()
            pings = 0
            while True:
                frame = ws.recv_frame(timeout=8)
                if frame.opcode == OP_PING:
                    pings += 1
                    ws.send_frame(OP_PONG, frame.payload)
                    continue
                if frame.opcode == OP_PONG:  # the backend's answer to the proxy's ping
                    continue
                self.assertEqual(frame.opcode, OP_CLOSE)
                break
            self.assertEqual(frame.close_code, 1001)
            self.assertEqual(frame.close_reason, "idle timeout")
            self.assertGreaterEqual(pings, 1)
            self.assertGreater(time.monotonic() - opened, 2.5)
            self.close_reply(ws, 1001)

    # ----------------------------------------------------------------------------------------
    # Proxy-side pings

    def test_ping_answered_keeps_an_idle_tunnel(self):
        with RawWebSocket(self.proxy.port, "/ping") as ws:
            pings = 0
            deadline = time.monotonic() + 4.5
            while time.monotonic() < deadline:
                try:
                    frame = ws.recv_frame(timeout=max(0.05, deadline - time.monotonic()))
                except socket.timeout:
                    break
                self.assertNotEqual(frame.opcode, OP_CLOSE, "the proxy closed a live tunnel")
                if frame.opcode == OP_PING:
                    self.assertFalse(frame.masked, "frames to a client are never masked")
                    pings += 1
                    ws.send_frame(OP_PONG, frame.payload)
            self.assertGreaterEqual(pings, 2)
            self.echo_round_trip(ws, "alive after pings")
            ws.close()

    def test_client_that_stops_answering_pings_is_closed(self):
        before = self.metrics()
        route = route_id("ping")
        ws = RawWebSocket(self.proxy.port, "/ping")
        self.addCleanup(ws.abort)
        self.echo_round_trip(ws, "then silence")
        frames = []
        started = time.monotonic()
        while True:
            try:
                frames.append(ws.recv_frame(timeout=8))  # never answered
            except ConnectionError:
                break
        gone_after = time.monotonic() - started
        self.assertIn(OP_PING, [f.opcode for f in frames])
        # The close frame goes to the live side only; this side just loses TCP.
        self.assertNotIn(OP_CLOSE, [f.opcode for f in frames])
        self.assertLess(gone_after, 6)
        after = self.wait_metric(TIMEOUTS, metric(before, TIMEOUTS, route=route, reason="ping") + 1,
                                 route=route, reason="ping")
        self.assertEqual(metric(after, TIMEOUTS, route=route, reason="ping")
                         - metric(before, TIMEOUTS, route=route, reason="ping"), 1)
        self.wait_metric(CLOSES, metric(before, CLOSES, route=route, code="1001",
                                        initiator="proxy") + 1,
                         route=route, code="1001", initiator="proxy")

    def test_backend_that_stops_answering_is_closed_with_1001_to_the_client(self):
        before = self.metrics()
        route = route_id("silent")
        with RawWebSocket(self.proxy.port, "/silent") as ws:
            started = time.monotonic()
            opcode, payload = ws.recv_message(timeout=8)  # answers the proxy's pings itself
            self.assertEqual(opcode, OP_CLOSE)
            self.assertEqual(struct.unpack("!H", payload[:2])[0], 1001)
            self.assertEqual(payload[2:], b"backend not answering")
            self.assertLess(time.monotonic() - started, 6)
            self.close_reply(ws, 1001)
        self.wait_metric(TIMEOUTS, metric(before, TIMEOUTS, route=route, reason="ping") + 1,
                         route=route, reason="ping")

    # ----------------------------------------------------------------------------------------
    # maxMessageBytes

    def check_oversized(self, send):
        before_backend = self.recorder.snapshot()
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/big") as ws:
            self.echo_round_trip(ws, "x" * 1000)  # exactly the limit passes
            send(ws)
            opcode, payload = ws.recv_message(timeout=5)
            self.assertEqual(opcode, OP_CLOSE)
            self.assertEqual(struct.unpack("!H", payload[:2])[0], 1009)
            self.close_reply(ws, 1009)
        route = route_id("big")
        self.wait_metric(CLOSES, metric(before, CLOSES, route=route, code="1009",
                                        initiator="proxy") + 1,
                         route=route, code="1009", initiator="proxy")
        after_backend = wait_until(
            lambda: (lambda s: s if len(s["close_codes"]) > len(before_backend["close_codes"])
                     else None)(self.recorder.snapshot()), what="the backend's close frame")
        self.assertEqual(after_backend["close_codes"][-1], 1001)
        new_sizes = after_backend["message_sizes"][len(before_backend["message_sizes"]):]
        self.assertEqual(new_sizes[0], 1000)
        self.assertLessEqual(sum(new_sizes[1:]), 1000, "oversized payload reached the backend")

    def test_max_message_bytes_single_frame(self):
        self.check_oversized(lambda ws: ws.send_binary(b"y" * 5000))

    def test_max_message_bytes_fragmented(self):
        def send(ws):
            ws.send_frame(OP_TEXT, b"a" * 600, fin=False)
            ws.send_frame(OP_PING, b"between")  # control frames do not count
            ws.send_frame(OP_CONTINUATION, b"b" * 600, fin=True)
        self.check_oversized(send)

    # ----------------------------------------------------------------------------------------
    # Admission

    def test_route_max_tunnels_and_rate_limit(self):
        with RawWebSocket(self.proxy.port, "/limit") as first:
            with self.assertRaises(HandshakeError) as refused:
                RawWebSocket(self.proxy.port, "/limit")
            self.assertEqual(refused.exception.response.status, 503)
            self.assertIn("retry-after", refused.exception.response.headers)
            self.echo_round_trip(first, "the first one still works")
            first.close()
        wait_until(lambda: self.try_open("/limit"), what="the slot to come back")

        statuses = []
        for _ in range(3):
            try:
                RawWebSocket(self.proxy.port, "/rate").close()
                statuses.append(101)
            except HandshakeError as error:
                statuses.append(error.response.status)
                self.assertIn("retry-after", error.response.headers)
        self.assertIn(429, statuses)

    def try_open(self, path, port=None):
        try:
            RawWebSocket(port or self.proxy.port, path).close()
            return True
        except HandshakeError:
            return False

    def test_max_connections(self):
        proxy = self.start_proxy(self.routes, ["--max-connections", "2"], name="proxy-maxconn")
        socks = [connect(proxy.port) for _ in range(3)]
        for sock in socks:
            self.addCleanup(sock.close)
        refused = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not refused:
            readable, _, _ = select.select(socks, [], [], 0.2)
            refused = readable
        self.assertEqual(len(refused), 1, "exactly one connection is over the limit")
        response = read_response(SocketReader(refused[0]))
        self.assertEqual(response.status, 503)
        self.assertIn(b"too many connections", response.body)
        self.assertEqual(SocketReader(refused[0]).wait_closed(3), True)
        samples = self.metrics(proxy)
        self.assertEqual(metric(samples, "wsgate_connections_rejected_total",
                                reason="max_connections"), 1)
        # The two admitted connections are served; once one goes, a new one is admitted.
        survivors = [s for s in socks if s is not refused[0]]
        survivors[0].sendall(upgrade_request(f"{LOCALHOST}:{proxy.port}", "/ws"))
        self.assertEqual(read_response(SocketReader(survivors[0])).status, 101)
        survivors[1].close()
        wait_until(lambda: raw_request(proxy.port, harness.request_bytes("GET", "/nothing")).status
                   == 404, what="a new connection to be admitted")

    def test_max_tunnels_per_client(self):
        proxy = self.start_proxy(self.routes, ["--max-tunnels-per-client", "2"], name="proxy-client")
        before = self.metrics(proxy)
        first = RawWebSocket(proxy.port, "/ws")
        self.addCleanup(first.abort)
        second = RawWebSocket(proxy.port, "/ws")
        self.addCleanup(second.abort)
        with self.assertRaises(HandshakeError) as refused:
            RawWebSocket(proxy.port, "/ws")
        self.assertEqual(refused.exception.response.status, 503)
        self.assertIn(b"too many tunnels from this client", refused.exception.response.body)
        samples = self.metrics(proxy)
        self.assertEqual(metric(samples, HANDSHAKES, route=route_id("ws"), code="503")
                         - metric(before, HANDSHAKES, route=route_id("ws"), code="503"), 1)
        first.close()
        wait_until(lambda: self.try_open("/ws", proxy.port), what="the client's slot to come back")
        self.echo_round_trip(second, "unaffected")

    # ----------------------------------------------------------------------------------------
    # Close codes

    def test_close_codes_are_counted_by_initiator(self):
        route = route_id("ws")
        before = self.metrics()
        with RawWebSocket(self.proxy.port, "/ws") as ws:
            self.assertEqual(ws.close(1000, "bye"), (1000, "bye"))
        with RawWebSocket(self.proxy.port, "/ws") as ws:
            ws.send_text("close:4000:backend says bye")
            opcode, payload = ws.recv_message()
            self.assertEqual((opcode, payload[:2]), (OP_CLOSE, struct.pack("!H", 4000)))
            self.close_reply(ws, 4000)
        RawWebSocket(self.proxy.port, "/ws").abort()
        expected = {("1000", "client"): 1, ("4000", "backend"): 1, ("none", "client"): 1}
        for (code, initiator), count in expected.items():
            start = metric(before, CLOSES, route=route, code=code, initiator=initiator)
            self.wait_metric(CLOSES, start + count, route=route, code=code, initiator=initiator)

    # ----------------------------------------------------------------------------------------
    # Hostile input

    def test_smuggling_attempts_get_400_and_reach_no_backend(self):
        host = f"Host: {LOCALHOST}\r\n"
        cases = {
            "CL+TE": "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "TE+CL": "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "two CL": "Content-Length: 5\r\nContent-Length: 6\r\n",
            "equal CLs": "Content-Length: 5\r\nContent-Length: 5\r\n",
            "CL list": "Content-Length: 5, 5\r\n",
            "CL sign": "Content-Length: +5\r\n",
            "obs-fold": "X-Folded: a\r\n b\r\nContent-Length: 5\r\n",
            "obs-fold TE": "Transfer-Encoding:\r\n chunked\r\n",
            "TE gzip": "Transfer-Encoding: gzip\r\n",
            "TE list": "Transfer-Encoding: chunked, identity\r\n",
            "two TE": "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "two Hosts": "Host: other\r\nContent-Length: 5\r\n",
            "space before colon": "Content-Length : 5\r\n",
            "bad name": "X(bad): 1\r\nContent-Length: 5\r\n",
            "NUL in value": "X-Bad: a\x00b\r\nContent-Length: 5\r\n",
            "bare CR": "X-Bad: a\rb\r\nContent-Length: 5\r\n",
        }
        before = self.recorder.snapshot()["connections"]
        for name, fields in cases.items():
            with self.subTest(case=name):
                request = ("POST /plain HTTP/1.1\r\n" + host + fields + "\r\nhello").encode("latin-1")
                response = raw_request(self.proxy.port, request)
                self.assertEqual(response.status, 400, response)
        with self.subTest(case="TE in HTTP/1.0"):
            request = b"POST /plain HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            self.assertEqual(raw_request(self.proxy.port, request).status, 400)
        with self.subTest(case="Host with userinfo"):
            request = b"GET /plain HTTP/1.1\r\nHost: only.example@evil.example\r\n\r\n"
            self.assertEqual(raw_request(self.proxy.port, request).status, 400)
        self.assertEqual(self.recorder.snapshot()["connections"], before, "a backend was reached")
        # The same route works for an honest request (so the 400s were not a dead route).
        honest = b"POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        self.assertEqual(raw_request(self.proxy.port, honest).status, 200)

    def test_upgrade_with_body_is_refused(self):
        request = upgrade_request(LOCALHOST, "/ws", extra_headers={"Content-Length": "5"}) + b"hello"
        self.assertEqual(raw_request(self.proxy.port, request).status, 400)

    def test_no_open_proxy(self):
        outside = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(outside.close)
        outside.bind((LOCALHOST, 0))
        outside.listen(8)
        outside.setblocking(False)
        target = f"{LOCALHOST}:{outside.getsockname()[1]}"
        before = len(self.recorder.snapshot()["requests"])

        # Absolute-form: routed by its authority among our routes, forwarded in origin-form to
        # the route's backend, never to the authority.
        response = raw_request(self.proxy.port,
                               f"GET http://{target}/plain/x?y=1 HTTP/1.1\r\nHost: front\r\n\r\n".encode())
        self.assertEqual(response.status, 200)
        line, headers = self.recorder.snapshot()["requests"][before]
        self.assertEqual(line, "GET /plain/x?y=1 HTTP/1.1")
        self.assertEqual(headers["host"], target)
        # The authority wins over Host (RFC 9112 §3.2.2) both ways.
        response = raw_request(self.proxy.port,
                               b"GET http://evil.example/hosted HTTP/1.1\r\nHost: only.example\r\n\r\n")
        self.assertEqual(response.status, 404)
        response = raw_request(self.proxy.port,
                               b"GET http://only.example/hosted HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        self.assertEqual(response.status, 200)
        # CONNECT and authority-form: refused.
        response = raw_request(self.proxy.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
                               .encode(), method="CONNECT")
        self.assertEqual(response.status, 405)
        response = raw_request(self.proxy.port, f"GET {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        self.assertEqual(response.status, 400)
        # A WebSocket upgrade in absolute-form reaches the route's backend in origin-form.
        request = upgrade_request(LOCALHOST, f"http://{target}/ws")
        with RawWebSocket(self.proxy.port, request=request) as ws:
            ws.send_text("headers")
            opcode, payload = ws.recv_message()
            self.assertEqual(opcode, OP_TEXT)
            self.assertIn(b'"/ws"', payload)
            ws.close()
        with self.assertRaises(BlockingIOError):
            outside.accept()  # nobody ever connected to the outside address

    def test_admin_listens_on_loopback_by_default(self):
        result = subprocess.run([harness.binary("wsgate-proxy"), "--help"], capture_output=True,
                                text=True, timeout=10)
        self.assertIn("127.0.0.1:9901", result.stdout)
        self.assertIn("--max-connections", result.stdout)
        self.assertIn("--max-tunnels-per-client", result.stdout)


if __name__ == "__main__":
    harness.main()
