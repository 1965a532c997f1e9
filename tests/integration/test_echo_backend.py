"""The echo backend tested directly (no proxy), so proxy tests can rely on it.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_echo_backend.py
"""

import json
import os
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWebSocket,
    SocketReader,
    frame_bytes,
    http_get,
    pattern_bytes,
    raw_request,
    read_response,
    request_bytes,
    upgrade_request,
)

SIZES = [0, 125, 126, 65535, 65536, 1 << 20]
DEMO_DIR = os.path.join(harness.SOURCE_DIR, "deploy", "demo")


class EchoBackendTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        echo = harness.start_echo_backend(DEMO_DIR, ["--threads", "2"])
        cls.start_class_process(echo)
        cls.port = echo.port
        cls.echo = echo

    def ws(self, path="/echo", **kwargs):
        ws = RawWebSocket(self.port, path, **kwargs)
        self.addCleanup(ws.abort)
        return ws

    def assert_alive(self):
        """The backend still serves after whatever a test threw at it."""
        self.assertTrue(self.echo.running(), "echo backend died")
        ws = self.ws()
        ws.send_text("still there?")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"still there?"))
        self.assertEqual(ws.close(1000), (1000, ""))

    # -- WebSocket echo ----------------------------------------------------------------------

    def test_listening_line_names_a_real_port(self):
        self.assertGreater(self.port, 0)
        self.assertRegex(self.echo.log_text(), rf"listening \(echo\) on 127\.0\.0\.1:{self.port}\b")

    def test_echo_sizes_with_python_websockets(self):
        import websockets

        async def run():
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/echo", max_size=None,
                                          compression=None) as ws:
                for size in SIZES:
                    data = os.urandom(size)
                    await ws.send(data)
                    self.assertEqual(await ws.recv(), data, f"binary {size}")
                    text = ("x" * size)
                    await ws.send(text)
                    self.assertEqual(await ws.recv(), text, f"text {size}")
                await ws.close(1000, "done")
                self.assertEqual((ws.close_code, ws.close_reason), (1000, "done"))

        harness.run_async(run(), timeout=30)

    def test_echo_sizes_with_raw_frames(self):
        ws = self.ws()
        for size in SIZES:
            payload = os.urandom(size)
            ws.send_frame(OP_BINARY, payload)
            frame = ws.recv_frame()
            self.assertEqual((frame.fin, frame.opcode, frame.rsv, frame.masked), (True, OP_BINARY, 0, False))
            self.assertEqual(frame.payload, payload, f"size {size}")
        ws.send_frame(OP_TEXT, b"caf\xc3\xa9")
        self.assertEqual(ws.recv_frame().opcode, OP_TEXT)

    def test_fragmented_message_comes_back_as_one(self):
        ws = self.ws()
        ws.send_frame(OP_TEXT, b"frag", fin=False)
        ws.send_frame(OP_PING, b"mid-message ping")  # control frames may interleave
        ws.send_frame(OP_CONTINUATION, b"men", fin=False)
        ws.send_frame(OP_CONTINUATION, b"ted", fin=True)
        pong = ws.recv_frame()
        self.assertEqual((pong.opcode, pong.payload), (OP_PONG, b"mid-message ping"))
        frame = ws.recv_frame()
        self.assertEqual((frame.fin, frame.opcode, frame.payload), (True, OP_TEXT, b"fragmented"))
        big = os.urandom(300000)
        ws.send_fragmented(OP_BINARY, big, 7)
        self.assertEqual(ws.recv_frame().payload, big)

    def test_frames_in_the_handshake_packet_are_not_lost(self):
        early = frame_bytes(OP_TEXT, b"early one") + frame_bytes(OP_BINARY, b"\x00early two")
        ws = self.ws(early_data=early)
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"early one"))
        self.assertEqual(ws.recv_message(), (OP_BINARY, b"\x00early two"))

    def test_large_request_headers_are_fine(self):
        ws = self.ws(extra_headers={"X-Padding": "p" * 12000})
        ws.send_text("after big headers")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"after big headers"))

    def test_ping_gets_pong_with_same_payload(self):
        ws = self.ws()
        ws.send_frame(OP_PING, b"are you there")
        frame = ws.recv_frame()
        self.assertEqual((frame.opcode, frame.payload), (OP_PONG, b"are you there"))

    def test_client_close_is_answered_with_same_code_and_reason(self):
        for code, reason in [(1000, ""), (1001, "going away"), (4001, "custom reason \u2713"), (3000, "")]:
            ws = self.ws()
            self.assertEqual(ws.close(code, reason), (code, reason))
        ws = self.ws()
        ws.send_frame(OP_CLOSE, b"")  # no status code: answered with an empty close too
        frame = ws.recv_frame()
        self.assertEqual((frame.opcode, frame.payload), (OP_CLOSE, b""))
        self.assertTrue(ws.wait_closed(5), "backend must close TCP after the closing handshake")

    def test_close_code_echo_with_python_websockets(self):
        import websockets

        async def run():
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/echo") as ws:
                await ws.close(4321, "observable")
                return ws.close_code, ws.close_reason

        self.assertEqual(harness.run_async(run()), (4321, "observable"))

    def test_backend_initiated_close(self):
        ws = self.ws()
        ws.send_text("close:4000:server says bye")
        frame = ws.recv_frame()
        self.assertEqual((frame.opcode, frame.close_code, frame.close_reason), (OP_CLOSE, 4000, "server says bye"))
        ws.send_frame(OP_CLOSE, frame.payload)
        self.assertTrue(ws.wait_closed(5))

        ws = self.ws()
        ws.send_text("close:1011")  # reason optional
        frame = ws.recv_frame()
        self.assertEqual((frame.close_code, frame.close_reason), (1011, ""))

    def test_backend_initiated_close_with_python_websockets(self):
        import websockets

        async def run():
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/echo") as ws:
                await ws.send("close:4100:from backend")
                with self.assertRaises(websockets.ConnectionClosed) as caught:
                    await ws.recv()
                return caught.exception.code, caught.exception.reason

        self.assertEqual(harness.run_async(run()), (4100, "from backend"))

    def test_headers_message_reports_the_upgrade_request(self):
        ws = self.ws("/echo/x?q=1", extra_headers=[("X-Forwarded-For", "10.1.2.3"), ("X-Test", "one"), ("x-test", "two")])
        ws.send_text("headers")
        opcode, body = ws.recv_message()
        self.assertEqual(opcode, OP_TEXT)
        report = json.loads(body)
        self.assertEqual(report["method"], "GET")
        self.assertEqual(report["target"], "/echo/x?q=1")
        self.assertEqual(report["version"], "1.1")
        self.assertEqual(report["headers"]["host"], f"127.0.0.1:{self.port}")
        self.assertEqual(report["headers"]["x-forwarded-for"], "10.1.2.3")
        self.assertEqual(report["headers"]["x-test"], "one, two")
        self.assertEqual(report["headers"]["upgrade"], "websocket")
        self.assertIn(["X-Test", "one"], report["raw_headers"])
        self.assertIn(["x-test", "two"], report["raw_headers"])
        self.assertEqual(report["raw_headers"][0], ["Host", f"127.0.0.1:{self.port}"])

    def test_bytes_message(self):
        ws = self.ws()
        for count in (0, 1, 251, 70000):
            ws.send_text(f"bytes:{count}")
            self.assertEqual(ws.recv_message(), (OP_BINARY, pattern_bytes(count)))
        ws.send_text("bytes:lots")  # not a number: plain echo
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"bytes:lots"))

    def test_first_offered_subprotocol_is_selected(self):
        ws = self.ws(extra_headers={"Sec-WebSocket-Protocol": "chat.v2, chat.v1"})
        self.assertEqual(ws.subprotocol, "chat.v2")
        self.assertIsNone(self.ws().subprotocol)

    def test_protocol_violations_close_with_1002_and_1009(self):
        ws = self.ws()
        ws.send_raw(frame_bytes(OP_TEXT, b"unmasked", mask=False))
        frame = ws.recv_frame()
        self.assertEqual((frame.opcode, frame.close_code), (OP_CLOSE, 1002))
        self.assertTrue(ws.wait_closed(5))

        ws = self.ws()
        ws.send_frame(OP_CONTINUATION, b"nothing to continue")
        self.assertEqual(ws.recv_frame().close_code, 1002)

        ws = self.ws()
        ws.send_frame(OP_BINARY, b"x", rsv=4)
        self.assertEqual(ws.recv_frame().close_code, 1002)

        ws = self.ws()
        ws.send_frame(0x3, b"reserved opcode")
        self.assertEqual(ws.recv_frame().close_code, 1002)

        ws = self.ws()
        ws.send_frame(OP_PING, b"p", fin=False)
        self.assertEqual(ws.recv_frame().close_code, 1002)

        ws = self.ws()  # a header announcing more than the 64 MiB message limit
        ws.send_raw(frame_bytes(OP_BINARY, b"", length_override=(64 << 20) + 1))
        self.assertEqual(ws.recv_frame().close_code, 1009)

        ws = self.ws()  # fragments adding up past the limit
        chunk = b"\0" * (16 << 20)
        for _ in range(4):
            ws.send_frame(OP_BINARY if _ == 0 else OP_CONTINUATION, chunk, fin=False)
        ws.send_frame(OP_CONTINUATION, b"one too many", fin=True)
        self.assertEqual(ws.recv_frame(timeout=20).close_code, 1009)
        self.assert_alive()

    def test_bad_handshakes_are_refused(self):
        status, headers, _ = raw_request(self.port, upgrade_request("h", "/echo", omit=["Sec-WebSocket-Key"]))
        self.assertEqual(status, 400)
        status, _, _ = raw_request(self.port, upgrade_request("h", "/echo", key="c2hvcnQ="))
        self.assertEqual(status, 400)
        status, headers, _ = raw_request(self.port, upgrade_request("h", "/echo", version="8"))
        self.assertEqual((status, headers.get("sec-websocket-version")), (426, "13"))
        status, _, _ = raw_request(self.port, upgrade_request("h", "/echo", extra_headers={"Connection": "keep-alive"}))
        self.assertEqual(status, 400)
        # Several Connection tokens, in any case, are fine.
        ws = self.ws(extra_headers={"Connection": "keep-alive, UPGRADE"})
        ws.send_text("ok")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"ok"))

    # -- scripted answers --------------------------------------------------------------------

    def test_status_paths_answer_even_upgrades(self):
        for code in (200, 403, 404, 500, 503):
            status, headers, body = raw_request(self.port, upgrade_request("h", f"/status/{code}"))
            self.assertEqual(status, code)
            self.assertEqual(int(headers["content-length"]), len(body))
            self.assertIn(str(code).encode(), body)
        status, _, _ = http_get(self.port, "/status/abc")
        self.assertEqual(status, 400)

    def test_status_keeps_the_connection_alive(self):
        with harness.connect(self.port) as sock:
            reader = SocketReader(sock)
            for code in (403, 201):
                sock.sendall(request_bytes("POST", f"/status/{code}", body=b"dropped body"))
                self.assertEqual(read_response(reader).status, code)

    def test_garbage(self):
        with harness.connect(self.port) as sock:
            sock.sendall(upgrade_request("h", "/garbage"))
            self.assertEqual(SocketReader(sock).read_until_close(5), b"this is not http\r\n\r\n")

    def test_hang_never_answers_but_keeps_the_connection(self):
        with harness.connect(self.port) as sock:
            sock.sendall(upgrade_request("h", "/hang"))
            reader = SocketReader(sock)
            self.assertFalse(reader.wait_closed(1.0), "/hang must keep the connection open")
            self.assertEqual(reader.buffer, b"", "/hang must not answer")
        self.assert_alive()

    def test_bad_accept(self):
        request = upgrade_request("h", "/bad-accept")
        with harness.connect(self.port) as sock:
            sock.sendall(request)
            response = read_response(SocketReader(sock))
        self.assertEqual(response.status, 101)
        self.assertIn("sec-websocket-accept", response.headers)
        self.assertNotEqual(response.headers["sec-websocket-accept"], harness.accept_for(harness.request_key(request)))
        with self.assertRaises(harness.HandshakeError):
            RawWebSocket(self.port, "/bad-accept")

    # -- plain HTTP --------------------------------------------------------------------------

    def test_echo_http_with_content_length(self):
        body = os.urandom(100000)
        status, headers, echoed = raw_request(
            self.port, request_bytes("POST", "/echo-http", headers={"Content-Type": "application/x-test"}, body=body))
        self.assertEqual((status, echoed, headers["content-type"]), (200, body, "application/x-test"))
        self.assertEqual(headers["content-length"], str(len(body)))
        self.assertNotIn("transfer-encoding", headers)

    def test_echo_http_chunked_answers_chunked(self):
        body = os.urandom(50000)
        status, headers, echoed = raw_request(self.port, request_bytes(
            "POST", "/echo-http", headers={"Transfer-Encoding": "chunked"}, body=harness.chunked_body(body, 7000)))
        self.assertEqual((status, echoed), (200, body))
        self.assertEqual(headers.get("transfer-encoding"), "chunked")

    def test_stream_is_chunked_in_16k_pieces(self):
        with harness.connect(self.port) as sock:
            sock.sendall(request_bytes("GET", "/stream/100000"))
            sizes = []
            response = read_response(SocketReader(sock), chunk_sizes=sizes)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get("transfer-encoding"), "chunked")
        self.assertEqual(response.body, pattern_bytes(100000))
        self.assertEqual(sizes, [16384] * 6 + [100000 - 6 * 16384])

    def test_headers_endpoint(self):
        status, headers, body = http_get(self.port, "/headers", host="app.example", headers={"X-Forwarded-Proto": "https"})
        self.assertEqual((status, headers["content-type"]), (200, "application/json"))
        report = json.loads(body)
        self.assertEqual(report["headers"]["host"], "app.example")
        self.assertEqual(report["headers"]["x-forwarded-proto"], "https")

    def test_keep_alive_and_404(self):
        with harness.connect(self.port) as sock:
            reader = SocketReader(sock)
            sock.sendall(request_bytes("GET", "/nope") + request_bytes("GET", "/headers"))  # pipelined
            self.assertEqual(read_response(reader).status, 404)
            self.assertEqual(read_response(reader).status, 200)
            sock.sendall(request_bytes("GET", "/headers", headers={"Connection": "close"}))
            self.assertEqual(read_response(reader).status, 200)
            self.assertTrue(reader.wait_closed(5), "Connection: close must be honoured")

    def test_demo_page_is_served(self):
        status, headers, body = http_get(self.port, "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        with open(os.path.join(DEMO_DIR, "index.html"), "rb") as page:
            self.assertEqual(body, page.read())
        self.assertEqual(http_get(self.port, "/index.html").body, body)
        head = raw_request(self.port, request_bytes("HEAD", "/index.html"))
        self.assertEqual((head.status, head.headers["content-length"], head.body), (200, str(len(body)), b""))
        for path in ("/../README.md", "/%2e%2e/README.md", "/missing.html"):
            self.assertEqual(http_get(self.port, path).status, 404, path)

    # The page in a real browser is test_demo_browser.py (through the proxy, watched over the
    # DevTools protocol): --dump-dom here raced the echo under load (virtual time does not wait
    # for WebSocket messages).

    # -- robustness --------------------------------------------------------------------------

    def test_misbehaving_clients_do_not_hurt_it(self):
        junk = [
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),  # a TLS hello
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
            b"\r\n\r\n\r\n",
            os.urandom(4096),
        ]
        for data in junk:
            with harness.connect(self.port) as sock:
                try:
                    sock.sendall(data)
                    SocketReader(sock).wait_closed(5)
                except (ConnectionResetError, BrokenPipeError):
                    pass
        status, _, _ = raw_request(self.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertEqual(status, 431)
        # Half a frame, then the client vanishes; random frame bytes after a good handshake.
        ws = self.ws()
        ws.send_raw(frame_bytes(OP_BINARY, b"x" * 1000)[:500])
        ws.abort()
        ws = self.ws()
        ws.send_raw(os.urandom(2000))
        ws.reader.wait_closed(5)
        self.assert_alive()

    def test_many_concurrent_connections(self):
        import asyncio

        import websockets

        async def one(index):
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/echo") as ws:
                for round_ in range(5):
                    await ws.send(f"{index}:{round_}")
                    self.assertEqual(await ws.recv(), f"{index}:{round_}")

        async def run():
            await asyncio.gather(*(one(i) for i in range(50)))

        harness.run_async(run(), timeout=30)


class EchoBackendLifecycleTest(harness.HarnessTestCase):
    def test_sigterm_stops_it_cleanly(self):
        echo = self.start_echo_backend()
        ws = RawWebSocket(echo.port, "/echo")  # an open session must not block the exit
        self.addCleanup(ws.abort)
        echo.send_signal(signal.SIGTERM)
        self.assertEqual(echo.wait(10), 0)

    def test_bad_flags_fail(self):
        bad = harness.Process([harness.binary("wsgate-echo-backend"), "--listen", "127.0.0.1"])
        self.assertNotEqual(bad.wait(10), 0)
        self.assertIn("missing port", bad.log_text())
        busy = self.start_echo_backend()
        clash = harness.Process([harness.binary("wsgate-echo-backend"), "--listen", f"127.0.0.1:{busy.port}"])
        self.assertNotEqual(clash.wait(10), 0)


if __name__ == "__main__":
    harness.main()
