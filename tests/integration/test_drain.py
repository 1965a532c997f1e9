"""SIGTERM drain of a real wsgate-proxy with tunnels open: /readyz turns 503 at once, new
requests get 503, both peers of every tunnel get close 1001, and the process exits with code 0
as soon as the tunnels are gone, or at --drain-seconds when a client never answers.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_drain.py
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import OP_CLOSE, OP_TEXT, HandshakeError, RawWebSocket, close_payload, echo_route_spec, http_get, wait_until  # noqa: E402
from test_tunnel import ACTIVE, CLOSES, RawWebSocketServer, start_stack, wait_metric  # noqa: E402

DRAIN_SECONDS = 5



def proxy_holds_connection(pid, local_port, remote_port):
    """True when process pid has a descriptor on the TCP socket local_port <- remote_port."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
                inode = fields[9]
    if inode is None or inode == "0":
        return False
    target = f"socket:[{inode}]"
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False

class DrainTest(harness.HarnessTestCase):
    def start(self, drain_seconds=DRAIN_SECONDS, extra_routes=None):
        def routes(port):
            table = {"echo": echo_route_spec(port, "/echo")}
            table.update(extra_routes(port) if callable(extra_routes) else extra_routes or {})
            return table

        self.echo, self.routes_dir, self.proxy = start_stack(
            self, routes, proxy_args=["--drain-seconds", str(drain_seconds)], class_scope=False)
        self.admin = self.proxy.admin_port
        wait_until(lambda: http_get(self.admin, "/readyz").status == 200, what="proxy ready")

    def ws(self, path="/echo"):
        ws = RawWebSocket(self.proxy.port, path)
        self.addCleanup(ws.abort)
        ws.send_text("hello")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"hello"))
        return ws

    def sigterm(self):
        self.proxy.send_signal(signal.SIGTERM)
        return time.monotonic()

    def assert_close_1001(self, frame, masked=False):
        self.assertEqual((frame.opcode, frame.close_code, frame.masked), (OP_CLOSE, 1001, masked))

    def wait_exit(self, started, limit):
        code = self.proxy.wait(timeout=limit + 2)
        elapsed = time.monotonic() - started
        self.assertEqual(code, 0, "drain must end with exit code 0")
        self.assertLess(elapsed, limit, f"exit took {elapsed:.2f}s")
        return elapsed

    def raw_tunnel(self):
        """A route to a backend this test drives by hand, and one tunnel through it."""
        backend = RawWebSocketServer()
        self.addCleanup(backend.close)
        return backend

    def open_raw(self, backend):
        client = RawWebSocket(self.proxy.port, "/raw")
        self.addCleanup(client.abort)
        server = backend.wait_ready()
        # One round trip: the tunnel's pumps are running (and registered with the drain).
        client.send_text("ready?")
        self.assertEqual(server.recv_message(), (OP_TEXT, b"ready?"))
        server.send_frame(OP_TEXT, b"ready")
        self.assertEqual(client.recv_message(), (OP_TEXT, b"ready"))
        return client, server

    def test_sigterm_tells_tunnels_to_go_and_exits_when_they_are_gone(self):
        backend = self.raw_tunnel()
        self.start(extra_routes={"raw": echo_route_spec(backend.port, "/raw")})
        clients = [self.ws() for _ in range(3)]
        raw_client, raw_server = self.open_raw(backend)

        started = self.sigterm()
        wait_until(lambda: http_get(self.admin, "/readyz").status == 503, timeout=1, what="/readyz 503")
        for ws in clients + [raw_client]:
            self.assert_close_1001(ws.recv_frame(timeout=2))
        # The backend side is told too; to the backend the proxy is a client, so it masks.
        self.assert_close_1001(raw_server.recv_frame(timeout=2), masked=True)

        # The hand-driven backend has not answered, so the drain goes on: new requests get 503.
        with self.assertRaises(HandshakeError) as raised:
            RawWebSocket(self.proxy.port, "/echo")
        self.assertEqual(raised.exception.response.status, 503)
        self.assertEqual(http_get(self.proxy.port, "/echo").status, 503)
        self.assertEqual(http_get(self.admin, "/healthz").status, 200)

        # The echo backend answers the proxy's 1001 by itself; with the clients' answers these
        # tunnels end now, while the hand-driven one keeps the process draining.
        for ws in clients:
            ws.send_frame(OP_CLOSE, close_payload(1001))
            self.assertTrue(ws.wait_closed(timeout=3))
        wait_metric(self.admin, CLOSES, 3, route="default/echo", code="1001", initiator="proxy")
        wait_metric(self.admin, ACTIVE, 0, route="default/echo")
        self.assertEqual(http_get(self.admin, "/readyz").status, 503)

        raw_server.send_frame(OP_CLOSE, close_payload(1001))
        raw_client.send_frame(OP_CLOSE, close_payload(1001))
        # Gone as soon as the last tunnel is: well before the 5 s close grace or drain deadline.
        self.wait_exit(started, DRAIN_SECONDS - 1)
        self.assertTrue(raw_client.wait_closed(timeout=2))
        self.assertRegex(self.proxy.log_text(), r"drained: no connections left")

    def test_peers_that_never_answer_do_not_hold_the_exit_past_the_deadline(self):
        backend = self.raw_tunnel()
        self.start(extra_routes={"raw": echo_route_spec(backend.port, "/raw")})
        client, server = self.open_raw(backend)
        started = self.sigterm()
        self.assert_close_1001(client.recv_frame(timeout=2))
        self.assert_close_1001(server.recv_frame(timeout=2), masked=True)
        # No answer and no FIN from either side: only the deadline (or close grace) ends this.
        elapsed = self.wait_exit(started, DRAIN_SECONDS + 1.5)
        self.assertGreater(elapsed, DRAIN_SECONDS - 1, "did not give the peers their time")
        self.assertTrue(client.wait_closed(timeout=2), "the silent client's connection was not closed")

    def test_drain_deadline_shorter_than_the_close_grace_is_kept(self):
        backend = self.raw_tunnel()
        self.start(drain_seconds=2, extra_routes={"raw": echo_route_spec(backend.port, "/raw")})
        client, server = self.open_raw(backend)
        started = self.sigterm()
        self.assert_close_1001(client.recv_frame(timeout=2))
        elapsed = self.wait_exit(started, 2 + 1.5)
        self.assertGreater(elapsed, 1.5)
        self.assertRegex(self.proxy.log_text(), r"drain time is up with \d+ connections open")

    # Known bug, outside this test's files: http_session.cpp untracks the connection before
    # run_upgrade and the tunnel tracks itself only once it runs, so the drain sees no
    # connection while the backend's 101 is pending and exits at once, cutting the handshake.
    # Remove this decorator when the session stays tracked through the upgrade.
    def test_a_handshake_in_flight_at_sigterm_is_finished_then_told_to_go(self):
        backend = RawWebSocketServer(hold_101=True)
        self.addCleanup(backend.close)
        self.start(extra_routes={"raw": echo_route_spec(backend.port, "/raw")})
        client = RawWebSocket(self.proxy.port, "/raw", handshake=False)
        self.addCleanup(client.abort)
        client.sock.sendall(client.request)
        self.assertTrue(backend.got_request.wait(5), "the upgrade never reached the backend")
        started = self.sigterm()
        wait_until(lambda: http_get(self.admin, "/readyz").status == 503, timeout=1, what="/readyz 503")
        # A proxy that forgets the handshake exits within milliseconds of the SIGTERM.
        with self.assertRaises(subprocess.TimeoutExpired, msg="exited with a handshake in flight"):
            self.proxy.proc.wait(timeout=0.5)
        backend.release.set()
        # The accepted handshake completes (101), and the new tunnel is closed with 1001 at once.
        response = harness.read_response(client.reader, "GET")
        self.assertEqual(response.status, 101)
        self.assert_close_1001(client.recv_frame(timeout=2))
        server = backend.wait_ready()
        self.assert_close_1001(server.recv_frame(timeout=2), masked=True)
        server.send_frame(OP_CLOSE, close_payload(1001))
        client.send_frame(OP_CLOSE, close_payload(1001))
        self.wait_exit(started, DRAIN_SECONDS - 1)

    def test_sigterm_closes_idle_connections_and_exits_at_once(self):
        self.start(extra_routes=lambda port: {"app": echo_route_spec(port, "/status", websocketOnly=False)})
        # One keep-alive connection after a request, one that never sent anything.
        kept = harness.connect(self.proxy.port)
        self.addCleanup(kept.close)
        kept.sendall(harness.request_bytes("GET", "/status/200"))
        reader = harness.SocketReader(kept)
        self.assertEqual(harness.read_response(reader).status, 200)
        silent = harness.connect(self.proxy.port)
        self.addCleanup(silent.close)
        # The drain closes a connection whose session waits for its first request; make sure
        # the proxy has accepted this one (a connection accepted after the SIGTERM would be
        # read for a request to answer with 503 instead): the kernel socket of the proxy's side
        # of this connection must be among the proxy's descriptors.
        silent_port = silent.getsockname()[1]
        wait_until(lambda: proxy_holds_connection(self.proxy.pid, self.proxy.port, silent_port),
                   what="accepted")
        started = self.sigterm()
        self.assertTrue(reader.wait_closed(timeout=2), "idle keep-alive connection left open")
        self.assertTrue(harness.SocketReader(silent).wait_closed(timeout=2), "silent connection left open")
        self.wait_exit(started, 2)

    def test_sigint_drains_like_sigterm(self):
        self.start()
        ws = self.ws()
        self.proxy.send_signal(signal.SIGINT)
        started = time.monotonic()
        self.assert_close_1001(ws.recv_frame(timeout=2))
        ws.send_frame(OP_CLOSE, close_payload(1001))
        self.wait_exit(started, 2)


if __name__ == "__main__":
    harness.main()
