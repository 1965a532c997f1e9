"""Tunnels through a real wsgate-proxy to a real echo backend, driven byte by byte with the
harness's RawWebSocket: message sizes, fragmentation, ping/pong, close codes both ways, half-close
and reset, live byte counters, idle timeout. Also holds small helpers the other proxy
integration tests import (start_stack, wait_metric, backend_connections, RawWebSocketServer).

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_tunnel.py
"""

import os
import random
import shutil
import socket
import string
import struct
import sys
import tempfile
import threading
import time

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
    close_payload,
    frame_bytes,
    metric,
    metric_sum,
    metrics,
    wait_until,
)

SIZES = [0, 125, 126, 65535, 65536, 1 << 20]
ACTIVE = "wsgate_active_tunnels"
BYTES = "wsgate_tunnel_bytes_total"
CLOSES = "wsgate_tunnel_closes_total"
C2B = "client_to_backend"
B2C = "backend_to_client"


# --------------------------------------------------------------------------------------------
# Helpers shared by the proxy integration tests


def start_stack(owner, routes, proxy_args=(), echo_args=("--threads", "2"), class_scope=True):
    """An echo backend, a routes dir holding `routes(echo_port)` ({name: spec}), and a proxy on
    it. `owner` is the test class (class_scope) or the test; returns (echo, routes_dir, proxy)."""
    if class_scope:
        routes_dir = tempfile.mkdtemp(prefix="wsgate-routes-")
        owner.addClassCleanup(shutil.rmtree, routes_dir, True)
        echo = owner.start_class_process(harness.start_echo_backend(extra_args=echo_args))
    else:
        routes_dir = owner.make_temp_dir("wsgate-routes-")
        echo = owner.start_echo_backend(extra_args=echo_args)
    for name, spec in routes(echo.port).items():
        harness.write_route(routes_dir, name, spec)
    if class_scope:
        proxy = owner.start_class_process(harness.start_proxy(routes_dir, proxy_args))
    else:
        proxy = owner.start_proxy(routes_dir, proxy_args)
    return echo, routes_dir, proxy


def wait_metric(admin_port, name, expected, timeout=harness.DEFAULT_TIMEOUT, **labels):
    """Waits until the sample with exactly these labels equals `expected`; returns the samples."""
    seen = []

    def check():
        samples = metrics(admin_port)
        seen[:] = [metric(samples, name, **labels)]
        return samples if seen[0] == expected else None

    try:
        return wait_until(check, timeout, f"{name}{labels} == {expected}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last value {seen}") from None


def wait_no_tunnels(admin_port, timeout=harness.DEFAULT_TIMEOUT):
    """Waits until no route has an open tunnel; a finished tunnel has counted all its bytes."""
    return wait_until(lambda: metric_sum(metrics(admin_port), ACTIVE) == 0, timeout, "no open tunnels")


def backend_connections(port):
    """ESTABLISHED TCP connections whose local end is 127.0.0.1:`port` (a server's accepted
    sockets), read from /proc/net/tcp."""
    wanted = f"0100007F:{port:04X}"
    count = 0
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "01":
                count += 1
    return count


def unmasked_len(opcode, payload):
    return len(frame_bytes(opcode, payload, mask=False))


def masked_len(opcode, payload):
    return len(frame_bytes(opcode, payload))


def text_payload(size):
    return "".join(random.choices(string.ascii_letters, k=size)).encode("ascii")


class RawWebSocketServer:
    """A one-connection WebSocket backend on 127.0.0.1 port 0 with byte-level control: it
    accepts the proxied handshake in a thread, and `ws` (a RawWebSocket around the accepted
    socket) is set once `ready` is. Frames are sent unmasked, as a server must."""

    def __init__(self, timeout=harness.DEFAULT_TIMEOUT, hold_101=False):
        self.listener = socket.create_server((harness.LOCALHOST, 0))
        self.port = self.listener.getsockname()[1]
        self.timeout = timeout
        self.got_request = threading.Event()
        # With hold_101 the 101 is sent only once `release` is set: a handshake kept in flight.
        self.release = threading.Event()
        if not hold_101:
            self.release.set()
        self.ready = threading.Event()
        self.ws = None
        self.request = b""
        self.error = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            self.listener.settimeout(self.timeout)
            sock, _ = self.listener.accept()
            reader = SocketReader(sock, self.timeout)
            self.request = reader.read_until(b"\r\n\r\n")
            key = harness.request_key(self.request)
            self.got_request.set()
            if not self.release.wait(self.timeout):
                raise AssertionError("the 101 was never released")
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {harness.accept_for(key)}\r\n\r\n".encode("ascii")
            )
            ws = RawWebSocket.__new__(RawWebSocket)  # the client class, minus its connect
            ws.timeout, ws.sock, ws.reader, ws.request, ws.response = self.timeout, sock, reader, self.request, None
            self.ws = ws
        except Exception as error:  # noqa: BLE001 - reported by wait_ready
            self.error = error
        finally:
            self.ready.set()

    def wait_ready(self):
        if not self.ready.wait(self.timeout) or self.ws is None:
            raise AssertionError(f"raw backend got no handshake: {self.error!r}")
        return self.ws

    def send_frame(self, opcode, payload=b""):
        self.ws.send_frame(opcode, payload, mask=False)

    def close(self):
        self.release.set()
        if self.ws is not None:
            self.ws.sock.close()
        self.listener.close()
        self.thread.join(self.timeout)


# --------------------------------------------------------------------------------------------


class TunnelTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo, cls.routes_dir, cls.proxy = start_stack(
            cls,
            lambda port: {"echo": harness.echo_route_spec(port, "/")},
            proxy_args=["--workers", "2"],
        )

    def setUp(self):
        super().setUp()
        # Every test starts with the previous one's tunnels gone, so metric deltas are exact.
        wait_no_tunnels(self.proxy.admin_port)

    def ws(self, path="/echo", port=None, **kwargs):
        ws = RawWebSocket(port or self.proxy.port, path, **kwargs)
        self.addCleanup(ws.abort)
        return ws

    def samples(self):
        return metrics(self.proxy.admin_port)

    def route_bytes(self, route="default/echo"):
        samples = self.samples()
        return (metric(samples, BYTES, route=route, direction=C2B),
                metric(samples, BYTES, route=route, direction=B2C))

    def wait_bytes(self, expected, route="default/echo"):
        wait_until(lambda: self.route_bytes(route) == expected, what=f"{route} bytes == {expected}")

    def wait_closes(self, before, route="default/echo", timeout=harness.DEFAULT_TIMEOUT, **labels):
        return wait_metric(self.proxy.admin_port, CLOSES, before + 1, timeout, route=route, **labels)

    def add_route(self, name, spec):
        """Adds a route file for this test only; returns the route id once it is in force."""
        harness.write_route(self.routes_dir, name, spec)
        self.addCleanup(harness.remove_route, self.routes_dir, name)
        marker = f'"pathPrefix":"{spec["pathPrefix"]}"'.encode()
        wait_until(lambda: marker in harness.http_get(self.proxy.admin_port, "/config").body,
                   what=f"route {name} applied")
        return f"default/{name}"

    def assert_proxy_serves(self):
        ws = self.ws()
        ws.send_text("still serving")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"still serving"))
        self.assertEqual(ws.close(1000), (1000, ""))

    # -- messages -----------------------------------------------------------------------------

    def test_message_sizes_text_and_binary_with_exact_byte_counts(self):
        start = self.route_bytes()
        sent = received = 0
        ws = self.ws()
        for size in SIZES:
            for opcode, payload in ((OP_TEXT, text_payload(size)), (OP_BINARY, os.urandom(size))):
                with self.subTest(size=size, opcode=opcode):
                    ws.send_frame(opcode, payload)
                    got_opcode, got = ws.recv_message(timeout=20)
                    self.assertEqual(got_opcode, opcode)
                    self.assertEqual(len(got), size)
                    self.assertTrue(got == payload, f"{size}-byte payload changed on the way")
                    sent += masked_len(opcode, payload)
                    received += unmasked_len(opcode, payload)
        self.assertEqual(ws.close(1000, "sizes done"), (1000, "sizes done"))
        close = close_payload(1000, "sizes done")
        self.wait_bytes((start[0] + sent + masked_len(OP_CLOSE, close),
                         start[1] + received + unmasked_len(OP_CLOSE, close)))

    def test_fragmented_messages_with_a_ping_between_fragments(self):
        ws = self.ws()
        ws.send_frame(OP_TEXT, b"frag", fin=False)
        ws.send_frame(OP_PING, b"in between")  # control frames may sit between fragments
        ws.send_frame(OP_CONTINUATION, b"", fin=False)
        ws.send_frame(OP_CONTINUATION, b"mented")
        pong = ws.recv_frame()
        self.assertEqual((pong.opcode, pong.payload, pong.masked), (OP_PONG, b"in between", False))
        self.assertEqual(ws.recv_message(answer_pings=False), (OP_TEXT, b"fragmented"))

        big = os.urandom((1 << 20) + 3)
        ws.send_fragmented(OP_BINARY, big, 7)
        self.assertTrue(ws.recv_message(timeout=20) == (OP_BINARY, big), "1 MiB fragmented message changed")
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_ping_pong_payloads(self):
        ws = self.ws()
        for payload in (b"", b"p", os.urandom(125)):
            ws.send_frame(OP_PING, payload)
            frame = ws.recv_frame()
            self.assertEqual((frame.opcode, frame.payload, frame.fin), (OP_PONG, payload, True))
        self.assertEqual(ws.close(1000), (1000, ""))

    # -- closing --------------------------------------------------------------------------------

    def test_client_close_code_and_reason_come_back_and_are_counted(self):
        before = metric(self.samples(), CLOSES, route="default/echo", code="4001", initiator="client")
        ws = self.ws()
        ws.send_text("hello")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"hello"))
        self.assertEqual(ws.close(4001, "bye"), (4001, "bye"))
        samples = self.wait_closes(before, code="4001", initiator="client")
        self.assertEqual(metric(samples, CLOSES, route="default/echo", code="4001", initiator="backend"), 0)

    def test_backend_initiated_close_is_relayed_and_counted(self):
        before = metric(self.samples(), CLOSES, route="default/echo", code="4002", initiator="backend")
        ws = self.ws()
        ws.send_text("close:4002:server bye")
        frame = ws.recv_frame()
        self.assertEqual((frame.opcode, frame.close_code, frame.close_reason), (OP_CLOSE, 4002, "server bye"))
        self.assertFalse(frame.masked)
        ws.send_frame(OP_CLOSE, close_payload(4002, "server bye"))
        self.assertTrue(ws.wait_closed(), "proxy kept the connection after the close handshake")
        ws.abort()
        self.wait_closes(before, code="4002", initiator="backend")

    def test_client_that_keeps_its_socket_after_the_backend_closed_is_let_go(self):
        # The backend sent its close frame and FIN; a client that answers with its close but
        # never closes its socket must not hold the tunnel forever (the proxy's close grace).
        before = metric(self.samples(), CLOSES, route="default/echo", code="4003", initiator="backend")
        ws = self.ws()
        ws.send_text("close:4003:go away")
        self.assertEqual(ws.recv_frame().close_code, 4003)
        ws.send_frame(OP_CLOSE, close_payload(4003))
        self.assertTrue(ws.wait_closed())  # the backend's FIN, passed on
        self.wait_closes(before, code="4003", initiator="backend", timeout=9)
        wait_metric(self.proxy.admin_port, ACTIVE, 0, route="default/echo")

    def test_client_half_close_reaches_backend(self):
        before = metric(self.samples(), CLOSES, route="default/echo", code="none", initiator="client")
        ws = self.ws()
        ws.send_text("before fin")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"before fin"))
        ws.sock.shutdown(socket.SHUT_WR)
        # The echo backend ends its side when it reads the FIN; that EOF comes back to us.
        self.assertTrue(ws.wait_closed(), "client FIN did not end the tunnel")
        self.wait_closes(before, code="none", initiator="client")
        wait_until(lambda: backend_connections(self.echo.port) == 0, what="backend connection gone")

    def test_client_reset_ends_backend_side_and_proxy_keeps_serving(self):
        before = metric(self.samples(), CLOSES, route="default/echo", code="none", initiator="client")
        ws = self.ws()
        ws.send_text("about to reset")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"about to reset"))
        self.assertEqual(backend_connections(self.echo.port), 1)
        self.assertEqual(metric(self.samples(), ACTIVE, route="default/echo"), 1)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.sock.close()  # linger 0: RST instead of FIN
        wait_until(lambda: backend_connections(self.echo.port) == 0, what="backend connection gone")
        wait_metric(self.proxy.admin_port, ACTIVE, 0, route="default/echo")
        self.wait_closes(before, code="none", initiator="client")
        self.assertTrue(self.proxy.running())
        self.assert_proxy_serves()

    # -- backpressure --------------------------------------------------------------------------

    def test_a_client_that_stops_reading_stalls_the_backend_and_loses_nothing(self):
        # The proxy forwards one bounded buffer per direction: when the client stops reading,
        # its socket fills, the proxy's write waits, and the backend's sends block in turn.
        # Everything sent arrives intact once the client reads again.
        backend = RawWebSocketServer()
        self.addCleanup(backend.close)
        self.add_route("slowreader", harness.echo_route_spec(backend.port, "/slowreader"))
        ws = self.ws("/slowreader")
        server = backend.wait_ready()
        chunk = os.urandom(256 * 1024)
        frame = frame_bytes(OP_BINARY, chunk, mask=False)
        server.sock.settimeout(0.5)
        sent_frames = 0
        stalled = False
        for _ in range(256):  # at most 64 MiB: far more than two loopback socket buffers hold
            try:
                server.sock.sendall(frame)
            except socket.timeout:
                stalled = True  # (part of this frame may have gone: it is sent on below)
                break
            sent_frames += 1
        self.assertTrue(stalled, "the backend never blocked: the proxy buffered without bound")
        self.assertTrue(self.proxy.running())
        # The client reads again: every whole frame sent, byte for byte (the frame whose send
        # timed out went partly and is left unread).
        received = 0
        while received < sent_frames:
            opcode, payload = ws.recv_message(timeout=20)
            self.assertEqual(opcode, OP_BINARY)
            self.assertTrue(payload == chunk, f"frame {received} changed on the way")
            received += 1
        self.assertGreater(received, 4)
        ws.abort()
        wait_metric(self.proxy.admin_port, ACTIVE, 0, route="default/slowreader")

    # -- live counters -------------------------------------------------------------------------

    def test_byte_counters_move_while_the_tunnel_is_open(self):
        ws = self.ws()
        c2b, b2c = self.route_bytes()
        for payload in (os.urandom(1000), os.urandom(70000), b""):
            ws.send_binary(payload)
            self.assertEqual(ws.recv_message(), (OP_BINARY, payload))
            c2b += masked_len(OP_BINARY, payload)
            b2c += unmasked_len(OP_BINARY, payload)
            self.wait_bytes((c2b, b2c))
            self.assertEqual(metric(self.samples(), ACTIVE, route="default/echo"), 1, "tunnel closed early")
        self.assertEqual(ws.close(1000), (1000, ""))

    # -- idle timeout --------------------------------------------------------------------------

    def test_idle_timeout_closes_both_sides_with_1001(self):
        backend = RawWebSocketServer()
        self.addCleanup(backend.close)
        route = self.add_route("idle", harness.echo_route_spec(backend.port, "/idle", idleTimeoutSeconds=1))
        before = metric(self.samples(), CLOSES, route=route, code="1001", initiator="proxy")

        ws = self.ws("/idle")
        server = backend.wait_ready()
        # Traffic well inside the timeout keeps the tunnel open...
        for index in range(3):
            ws.send_text(f"keepalive {index}")
            self.assertEqual(server.recv_message(), (OP_TEXT, f"keepalive {index}".encode()))
            backend.send_frame(OP_TEXT, b"ack")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"ack"))
            time.sleep(0.4)  # the subject of this test is idleness, not synchronisation
        # ...then silence: both peers get close 1001.
        client_close = ws.recv_frame(timeout=5)
        self.assertEqual((client_close.opcode, client_close.close_code, client_close.masked),
                         (OP_CLOSE, 1001, False))
        backend_close = server.recv_frame(timeout=5)
        self.assertEqual((backend_close.opcode, backend_close.close_code, backend_close.masked),
                         (OP_CLOSE, 1001, True))  # to the backend the proxy is a client: masked
        backend.send_frame(OP_CLOSE, close_payload(1001))
        ws.send_frame(OP_CLOSE, close_payload(1001))
        self.assertTrue(ws.wait_closed(timeout=3), "tunnel not ended after both close replies")
        self.assertTrue(server.wait_closed(timeout=3))
        self.wait_closes(before, route=route, code="1001", initiator="proxy")
        wait_metric(self.proxy.admin_port, ACTIVE, 0, route=route)

    def test_idle_timeout_with_echo_backend_completes_close_handshake(self):
        route = self.add_route("idle-echo",
                               harness.echo_route_spec(self.echo.port, "/idle-echo", idleTimeoutSeconds=1))
        before = metric(self.samples(), CLOSES, route=route, code="1001", initiator="proxy")
        ws = self.ws("/idle-echo")
        frame = ws.recv_frame(timeout=5)
        self.assertEqual((frame.opcode, frame.close_code), (OP_CLOSE, 1001))
        started = time.monotonic()
        ws.send_frame(OP_CLOSE, close_payload(1001))
        # The echo backend answers the proxy's 1001 with its own, so the tunnel ends at once
        # rather than after the proxy's close grace period (5 s).
        self.assertTrue(ws.wait_closed(timeout=4))
        self.assertLess(time.monotonic() - started, 4)
        self.wait_closes(before, route=route, code="1001", initiator="proxy")


if __name__ == "__main__":
    harness.main()
