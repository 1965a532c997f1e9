"""What the proxy does to requests on their way through: the upgrade request's headers
(case-insensitive names, Connection token lists, hop-by-hop removal, X-Forwarded-*), bytes sent
with the handshake, weighted backend choice and failover, and plain HTTP proxying on
websocketOnly: false routes (keep-alive, request bodies, streamed responses, HEAD, 404/426).

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_http_proxying.py
"""

import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    LOCALHOST,
    OP_BINARY,
    OP_TEXT,
    RawWebSocket,
    SocketReader,
    chunked_body,
    connect,
    echo_route_spec,
    frame_bytes,
    make_key,
    metric,
    metric_sum,
    pattern_bytes,
    read_response,
    request_bytes,
    wait_until,
)

DEMO_DIR = os.path.join(harness.SOURCE_DIR, "deploy", "demo")
PLAIN_HOST = "plain.example"
SCRIPTED_HOST = "scripted.example"
HTTP_REQUESTS = "wsgate_http_requests_total"
HANDSHAKES = "wsgate_handshakes_total"
CONNECT_ERRORS = "wsgate_upstream_connect_errors_total"


def established_on(port):
    """Established TCP connections whose local port is `port` (a backend's accepted sockets)."""
    count = 0
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


class ScriptedBackend:
    """A backend on a plain socket that answers each upgrade with a 101 of its own making,
    followed in the same send by one frame, then waits for the peer to close; a plain request
    gets a small 200 with hop-by-hop fields. For what the echo backend cannot do: extra and
    hop-by-hop headers in its answers, bytes right after the 101."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((LOCALHOST, 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.requests = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-backend", daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    reader = SocketReader(conn, timeout=5)
                    head = reader.read_until(b"\r\n\r\n")
                    self.requests.append(head)
                    key = harness.request_key(head)
                    if key is None:  # a plain request: a response with hop-by-hop fields
                        conn.sendall(
                            b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop-Answer\r\n"
                            b"X-Hop-Answer: private\r\nKeep-Alive: timeout=5\r\n"
                            b"X-Backend: scripted\r\nContent-Length: 2\r\n\r\nok")
                        continue
                    conn.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Keep-Alive, Upgrade\r\nKeep-Alive: timeout=5\r\n"
                        b"X-Backend: scripted\r\nSec-WebSocket-Accept: "
                        + harness.accept_for(key).encode() + b"\r\n\r\n"
                        + frame_bytes(OP_TEXT, b"backend speaks first", mask=False))
                    reader.wait_closed(5)
                except (OSError, ValueError, ConnectionError):
                    pass

    def stop(self):
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=2)


class HttpProxyingTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.scripted = ScriptedBackend()
        cls.addClassCleanup(cls.scripted.stop)
        cls.closed_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.addClassCleanup(cls.closed_socket.close)
        cls.closed_socket.bind((LOCALHOST, 0))  # bound, never listening: connects are refused
        cls.closed_port = cls.closed_socket.getsockname()[1]

        cls.echo = cls.start_class_process(harness.start_echo_backend(DEMO_DIR))
        # Two backends that only the weighted route uses, so their connection counts are its own.
        cls.heavy = cls.start_class_process(harness.start_echo_backend(name="echo-heavy"))
        cls.light = cls.start_class_process(harness.start_echo_backend(name="echo-light"))
        routes = harness.tempfile.mkdtemp(prefix="wsgate-http-")
        cls.addClassCleanup(harness.shutil.rmtree, routes, True)
        specs = {
            "ws": echo_route_spec(cls.echo.port, "/ws"),
            "plain": echo_route_spec(cls.echo.port, "/", hosts=[PLAIN_HOST], websocketOnly=False),
            "weighted": {
                "pathPrefix": "/weighted",
                "backends": [
                    {"address": f"{LOCALHOST}:{cls.heavy.port}", "weight": 3},
                    {"address": f"{LOCALHOST}:{cls.light.port}", "weight": 1},
                ],
            },
            "scripted": echo_route_spec(cls.scripted.port, "/scripted"),
            "scripted-http": echo_route_spec(cls.scripted.port, "/", hosts=[SCRIPTED_HOST],
                                             websocketOnly=False),
            "failover": {
                "pathPrefix": "/failover",
                "backends": [
                    {"address": f"{LOCALHOST}:{cls.closed_port}"},
                    {"address": f"{LOCALHOST}:{cls.echo.port}"},
                ],
            },
        }
        for name, spec in specs.items():
            harness.write_route(routes, name, spec)
        cls.proxy = cls.start_class_process(harness.start_proxy(routes))
        wait_until(lambda: harness.http_get(cls.proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")
        config = json.loads(harness.http_get(cls.proxy.admin_port, "/config").body)
        loaded = {route["name"] for route in config["routes"]}
        assert loaded == set(specs), f"routes loaded: {sorted(loaded)}"

    def metrics(self):
        return harness.metrics(self.proxy.admin_port)

    def ws(self, path="/ws", **kwargs):
        ws = RawWebSocket(self.proxy.port, path, **kwargs)
        self.addCleanup(ws.abort)
        return ws

    def backend_view(self, ws):
        """The upgrade request as the echo backend received it."""
        ws.send_text("headers")
        opcode, data = ws.recv_message()
        self.assertEqual(opcode, OP_TEXT)
        return json.loads(data)

    def plain_connection(self):
        sock = connect(self.proxy.port)
        self.addCleanup(sock.close)
        return sock, SocketReader(sock)

    def exchange(self, sock, reader, method, path, host=PLAIN_HOST, headers=None, body=b""):
        sock.sendall(request_bytes(method, path, host, headers, body))
        return read_response(reader, method)

    # ----------------------------------------------------------------------------------------
    # the upgrade request

    def test_header_names_match_case_insensitively(self):
        key = make_key()
        request = (f"GET /ws HTTP/1.1\r\nhOST: {LOCALHOST}:{self.proxy.port}\r\n"
                   "uPgRaDe: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\n"
                   f"sec-websocket-key: {key}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n").encode()
        ws = self.ws(request=request)
        ws.send_text("mixed case")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"mixed case"))
        seen = self.backend_view(ws)["headers"]
        self.assertEqual(seen["sec-websocket-key"], key)
        self.assertEqual(seen["sec-websocket-version"], "13")
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_connection_token_lists_and_repeated_connection_headers(self):
        for extra in ([("Connection", "keep-alive, Upgrade")],
                      [("Connection", "keep-alive"), ("Connection", "upgrade")],
                      [("Connection", "keep-alive"), ("X-Between", "1"), ("Connection", "Upgrade")],
                      [("Connection", " UPGRADE ,foo")]):
            with self.subTest(headers=extra):
                ws = self.ws(extra_headers=extra)
                ws.send_binary(b"\x00\x01")
                self.assertEqual(ws.recv_message(), (OP_BINARY, b"\x00\x01"))
                self.assertEqual(ws.close(1000), (1000, ""))

    def test_bytes_sent_with_the_handshake_reach_the_backend(self):
        # The request and two frames leave in one send: the proxy must forward what it read
        # past the headers, not drop it.
        early = frame_bytes(OP_TEXT, b"early bird") + frame_bytes(OP_BINARY, pattern_bytes(3000))
        ws = self.ws(early_data=early)
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"early bird"))
        self.assertEqual(ws.recv_message(), (OP_BINARY, pattern_bytes(3000)))
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_hop_by_hop_headers_removed_and_forwarded_headers_set(self):
        host = f"{LOCALHOST}:{self.proxy.port}"
        ws = self.ws(extra_headers=[
            ("Connection", "Upgrade, X-Private-Hop"),
            ("X-Private-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-End-To-End", "kept"),
            ("Sec-WebSocket-Protocol", "chat"),
        ])
        seen = self.backend_view(ws)
        headers = seen["headers"]
        self.assertEqual(seen["method"], "GET")
        self.assertEqual(seen["target"], "/ws")
        self.assertEqual(seen["version"], "1.1")
        for gone in ("x-private-hop", "keep-alive", "proxy-connection", "te"):
            self.assertNotIn(gone, headers)
        self.assertEqual(headers["connection"].lower(), "upgrade")
        self.assertEqual(headers["upgrade"].lower(), "websocket")
        self.assertEqual(headers["x-end-to-end"], "kept")
        self.assertEqual(headers["sec-websocket-protocol"], "chat")
        self.assertEqual(headers["host"], host)
        self.assertEqual(headers["x-forwarded-for"], f"203.0.113.7, {LOCALHOST}")
        self.assertEqual(headers["x-forwarded-proto"], "http")
        self.assertEqual(headers["x-forwarded-host"], host)
        self.assertEqual(ws.subprotocol, "chat")
        # Each forwarded header appears once.
        names = [name.lower() for name, _ in seen["raw_headers"]]
        self.assertEqual(len(names), len(set(names)), names)
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_forwarded_headers_are_replaced_not_trusted(self):
        ws = self.ws(extra_headers=[("X-Forwarded-Proto", "https"),
                                    ("X-Forwarded-Host", "spoofed.example")])
        headers = self.backend_view(ws)["headers"]
        self.assertEqual(headers["x-forwarded-proto"], "http")
        self.assertEqual(headers["x-forwarded-host"], f"{LOCALHOST}:{self.proxy.port}")
        self.assertEqual(headers["x-forwarded-for"], LOCALHOST)
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_backend_101_relayed_with_bytes_that_follow_it(self):
        ws = self.ws("/scripted")
        headers = ws.response.headers
        self.assertEqual(headers.get("x-backend"), "scripted")
        self.assertNotIn("keep-alive", headers)
        self.assertEqual(headers.get("connection", "").lower(), "upgrade")
        self.assertEqual(headers.get("upgrade", "").lower(), "websocket")
        # The frame left the backend in the same send as its 101.
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"backend speaks first"))
        ws.abort()

    # ----------------------------------------------------------------------------------------
    # backend choice

    def test_weighted_backends_share_tunnels_by_weight(self):
        ports = (self.heavy.port, self.light.port)
        wait_until(lambda: all(established_on(port) == 0 for port in ports),
                   what="no earlier connections to the weighted backends")
        sockets = [self.ws("/weighted") for _ in range(8)]
        for index, ws in enumerate(sockets):
            ws.send_text(f"tunnel {index}")
            self.assertEqual(ws.recv_message(), (OP_TEXT, f"tunnel {index}".encode()))
        # Smooth weighted round-robin: any 4 consecutive picks at 3:1 hold exactly 3 and 1.
        self.assertEqual([established_on(port) for port in ports], [6, 2])
        for ws in sockets:
            self.assertEqual(ws.close(1000), (1000, ""))
        wait_until(lambda: all(established_on(port) == 0 for port in ports),
                   what="the weighted tunnels to close")

    def test_failover_to_the_next_backend(self):
        route, closed = "default/failover", f"{LOCALHOST}:{self.closed_port}"
        before = self.metrics()
        for index in range(4):
            with self.subTest(handshake=index):
                ws = self.ws("/failover")
                ws.send_text("survived")
                self.assertEqual(ws.recv_message(), (OP_TEXT, b"survived"))
                self.assertEqual(ws.close(1000), (1000, ""))
        # Equal weights: the closed port comes first for every other handshake.
        after = wait_until(lambda: (lambda s: s if metric(s, HANDSHAKES, route=route, code="101")
                                    - metric(before, HANDSHAKES, route=route, code="101") >= 4
                                    else None)(self.metrics()), what="4 handshakes counted")
        self.assertEqual(metric(after, CONNECT_ERRORS, route=route, backend=closed)
                         - metric(before, CONNECT_ERRORS, route=route, backend=closed), 2)
        self.assertEqual(metric_sum(after, HANDSHAKES, route=route)
                         - metric_sum(before, HANDSHAKES, route=route), 4)

    # ----------------------------------------------------------------------------------------
    # plain HTTP

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        before = self.metrics()
        sock, reader = self.plain_connection()
        first = self.exchange(sock, reader, "GET", "/headers")
        second = self.exchange(sock, reader, "POST", "/echo-http", body=b"second")
        third = self.exchange(sock, reader, "GET", "/headers?again=1")
        self.assertEqual([first.status, second.status, third.status], [200, 200, 200])
        self.assertEqual(second.body, b"second")
        self.assertEqual(json.loads(third.body)["target"], "/headers?again=1")
        for response in (first, second, third):
            self.assertNotEqual(response.headers.get("connection", "").lower(), "close")
        after = wait_until(lambda: (lambda s: s if metric(s, HTTP_REQUESTS, route="default/plain",
                                                          code="200")
                                    - metric(before, HTTP_REQUESTS, route="default/plain",
                                             code="200") >= 3 else None)(self.metrics()),
                           what="3 requests counted")
        self.assertEqual(metric_sum(after, HTTP_REQUESTS) - metric_sum(before, HTTP_REQUESTS), 3)
        self.assertEqual(metric_sum(after, HANDSHAKES), metric_sum(before, HANDSHAKES))

    def test_plain_request_headers_rewritten(self):
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "GET", "/headers", headers=[
            ("Connection", "keep-alive, X-Private-Hop, Upgrade"),
            ("Upgrade", "h2c"),  # not a WebSocket: a plain request whose Upgrade is dropped
            ("X-Private-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("X-End-To-End", "kept"),
        ])
        self.assertEqual(response.status, 200)
        headers = json.loads(response.body)["headers"]
        for gone in ("x-private-hop", "keep-alive", "te", "upgrade"):
            self.assertNotIn(gone, headers)
        self.assertEqual(headers["x-end-to-end"], "kept")
        self.assertEqual(headers["host"], PLAIN_HOST)
        self.assertEqual(headers["x-forwarded-for"], LOCALHOST)
        self.assertEqual(headers["x-forwarded-proto"], "http")
        self.assertEqual(headers["x-forwarded-host"], PLAIN_HOST)
        # Still usable afterwards.
        self.assertEqual(self.exchange(sock, reader, "GET", "/headers").status, 200)

    def test_pipelined_requests_answered_in_order(self):
        sock, reader = self.plain_connection()
        sock.sendall(request_bytes("POST", "/echo-http", PLAIN_HOST, body=b"first body")
                     + request_bytes("GET", "/headers?n=2", PLAIN_HOST)
                     + request_bytes("GET", "/stream/20000", PLAIN_HOST))
        first = read_response(reader, "POST")
        second = read_response(reader, "GET")
        third = read_response(reader, "GET")
        self.assertEqual((first.status, first.body), (200, b"first body"))
        self.assertEqual(json.loads(second.body)["target"], "/headers?n=2")
        self.assertEqual(third.body, pattern_bytes(20000))

    def test_websocket_on_a_route_that_also_proxies_http(self):
        ws = self.ws("/any/path?x=1", host=PLAIN_HOST)
        seen = self.backend_view(ws)
        self.assertEqual(seen["target"], "/any/path?x=1")
        self.assertEqual(seen["headers"]["host"], PLAIN_HOST)
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_hop_by_hop_fields_of_a_response_removed(self):
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "GET", "/", host=SCRIPTED_HOST)
        self.assertEqual((response.status, response.body), (200, b"ok"))
        self.assertEqual(response.headers.get("x-backend"), "scripted")
        self.assertNotIn("x-hop-answer", response.headers)  # named in the backend's Connection
        self.assertNotIn("keep-alive", response.headers)
        # The backend closing its connection does not close the client's.
        self.assertNotEqual(response.headers.get("connection"), "close")
        self.assertEqual(self.exchange(sock, reader, "GET", "/headers").status, 200)

    def test_connection_cannot_strip_framing_or_host(self):
        # Fields named in Connection are hop-by-hop, but dropping Content-Length would leave the
        # body on the backend connection to be read as a request of its own (smuggling).
        body = b"GET /status/299 HTTP/1.1\r\nHost: plain.example\r\n\r\n"
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "POST", "/echo-http", body=body, headers=[
            ("Connection", "keep-alive, Content-Length, Host")])
        self.assertEqual((response.status, response.body), (200, body))
        seen = self.exchange(sock, reader, "GET", "/headers", headers=[("Connection", "Host")])
        self.assertEqual(json.loads(seen.body)["headers"].get("host"), PLAIN_HOST)

    def test_content_length_body_echoed(self):
        body = pattern_bytes(300000)
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "POST", "/echo-http",
                                 headers={"Content-Type": "application/x-test"}, body=body)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get("content-type"), "application/x-test")
        self.assertEqual(response.body, body)
        self.assertEqual(self.exchange(sock, reader, "GET", "/headers").status, 200)

    def test_chunked_body_echoed(self):
        body = pattern_bytes(100000, 7)
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "PUT", "/echo-http",
                                 headers={"Transfer-Encoding": "chunked"},
                                 body=chunked_body(body, 4000))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, body)
        # The request was framed right: the next one on the connection parses.
        self.assertEqual(self.exchange(sock, reader, "GET", "/headers").status, 200)

    def test_large_streamed_response_arrives_intact(self):
        size = 5_000_000
        sock, reader = self.plain_connection()
        sock.sendall(request_bytes("GET", f"/stream/{size}", PLAIN_HOST))
        response = read_response(reader, "GET", timeout=30)
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.body), size)
        self.assertEqual(response.body, pattern_bytes(size))
        self.assertEqual(self.exchange(sock, reader, "GET", "/headers").status, 200)

    def test_head_request(self):
        with open(os.path.join(DEMO_DIR, "index.html"), "rb") as page:
            size = len(page.read())
        sock, reader = self.plain_connection()
        head = self.exchange(sock, reader, "HEAD", "/index.html")
        self.assertEqual(head.status, 200)
        self.assertEqual(head.headers.get("content-length"), str(size))
        self.assertEqual(head.body, b"")
        # No body followed the HEAD answer: the next response starts right there.
        get = self.exchange(sock, reader, "GET", "/index.html")
        self.assertEqual(get.status, 200)
        self.assertEqual(len(get.body), size)
        self.assertIn(b"wsgate demo", get.body)

    def test_404_without_route_keeps_the_connection(self):
        before = self.metrics()
        sock, reader = self.plain_connection()
        missing = self.exchange(sock, reader, "GET", "/nowhere", host="nowhere.example")
        self.assertEqual(missing.status, 404)
        self.assertIn(b"no route", missing.body)
        self.assertEqual(missing.headers.get("connection"), "keep-alive")
        found = self.exchange(sock, reader, "GET", "/headers")
        self.assertEqual(found.status, 200)
        wait_until(lambda: metric(self.metrics(), HTTP_REQUESTS, route="", code="404")
                   - metric(before, HTTP_REQUESTS, route="", code="404") >= 1, what="404 counted")
        self.assertEqual(metric(self.metrics(), HTTP_REQUESTS, route="", code="404")
                         - metric(before, HTTP_REQUESTS, route="", code="404"), 1)

    def test_404_with_a_body_closes_the_connection(self):
        # The unread body would be taken for the next request: the proxy closes instead.
        sock, reader = self.plain_connection()
        missing = self.exchange(sock, reader, "POST", "/nowhere", host="nowhere.example",
                                body=b"GET /smuggled HTTP/1.1\r\nHost: plain.example\r\n\r\n")
        self.assertEqual(missing.status, 404)
        self.assertEqual(missing.headers.get("connection"), "close")
        self.assertTrue(reader.wait_closed(5))
        self.assertEqual(reader.buffer, b"", "nothing may answer the smuggled request")

    def test_426_on_websocket_only_route(self):
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "GET", "/ws", host=f"{LOCALHOST}:{self.proxy.port}")
        self.assertEqual(response.status, 426)
        self.assertEqual(response.headers.get("upgrade"), "websocket")
        self.assertIn(b"only accepts WebSocket", response.body)

    def test_backend_status_and_body_relayed(self):
        sock, reader = self.plain_connection()
        response = self.exchange(sock, reader, "GET", "/status/418")
        self.assertEqual(response.status, 418)
        self.assertEqual(response.body, b"status 418 from the echo backend\n")
        self.assertEqual(self.exchange(sock, reader, "GET", "/headers").status, 200)

    def test_http_1_0_client_gets_its_response(self):
        sock, reader = self.plain_connection()
        sock.sendall(request_bytes("GET", "/stream/1000", PLAIN_HOST, http_version="1.0"))
        response = read_response(reader, "GET")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, pattern_bytes(1000))
        # HTTP/1.0 knows no chunked coding (RFC 9112 §7.1): the body is delimited by the close.
        self.assertNotIn("transfer-encoding", response.headers)
        self.assertTrue(reader.wait_closed(5), "an HTTP/1.0 request without keep-alive ends it")

    def test_http_1_0_keep_alive(self):
        keep = {"Connection": "keep-alive"}
        sock, reader = self.plain_connection()
        # A response with a length: the connection stays, and says so (1.0 needs it spelled out).
        sock.sendall(request_bytes("GET", "/headers", PLAIN_HOST, keep, http_version="1.0"))
        first = read_response(reader, "GET")
        self.assertEqual(first.status, 200)
        self.assertEqual(first.headers.get("connection"), "keep-alive")
        self.assertEqual(json.loads(first.body)["target"], "/headers")
        # A response without a length cannot be chunked for 1.0: it ends with the connection.
        sock.sendall(request_bytes("GET", "/stream/70000", PLAIN_HOST, keep, http_version="1.0"))
        second = read_response(reader, "GET")
        self.assertEqual(second.status, 200)
        self.assertNotIn("transfer-encoding", second.headers)
        self.assertEqual(second.headers.get("connection"), "close")
        self.assertEqual(second.body, pattern_bytes(70000))


if __name__ == "__main__":
    harness.main()
