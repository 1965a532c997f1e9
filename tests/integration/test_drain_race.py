"""Connections around a SIGTERM: every connection the proxy accepts once the drain has begun is
answered 503 with Connection: close, however its bytes and the drain's sweep interleave -
whether it connected before the SIGTERM and sends after it, connects and sends at once, or
connects and sends nothing. A connection refused because the listener already closed is fine;
one accepted and closed without a byte is the bug this test is for.

Two stacks: one whose drain is held open by a tunnel (the listener stays open the whole time, so
every client must be answered), and one whose drain ends while clients keep connecting (the
listener closes meanwhile; a client still gets either its 503 or a refusal/reset from the
kernel, never a clean close with no answer).

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_drain_race.py
"""

import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import OP_CLOSE, OP_TEXT, SocketReader, close_payload, echo_route_spec, http_get, wait_until  # noqa: E402
from test_drain import proxy_holds_connection  # noqa: E402
from test_tunnel import RawWebSocketServer, start_stack  # noqa: E402

DRAIN_SECONDS = 6
READ_TIMEOUT = 5.0


class Client:
    """One connection with a fixed plan: `kind` is "now" (sends at connect), "later" (sends
    when `go` is set), or "silent" (never sends). `outcome` is set by finish()."""

    def __init__(self, port, kind, name):
        self.port = port
        self.kind = kind
        self.name = name
        self.sock = None
        self.go = threading.Event()
        self.outcome = None  # ("answered", status, connection header) or (failure kind, detail)

    def connect(self):
        try:
            self.sock = socket.create_connection((harness.LOCALHOST, self.port), timeout=READ_TIMEOUT)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except ConnectionRefusedError:
            self.outcome = ("refused", "")
            return False
        except ConnectionResetError:  # the listener closed between the SYN-ACK and connect()
            self.outcome = ("reset", b"")
            return False
        return True

    def request(self):
        return harness.request_bytes("GET", "/status/200", headers={"Connection": "close"})

    def finish(self):
        """Sends (per the plan) and reads one response; never raises."""
        if self.outcome is not None:
            return
        reader = SocketReader(self.sock, READ_TIMEOUT)
        # A reset that the send reports is consumed by it: the read then sees a plain EOF. Such a
        # reset came before the request reached the peer, so it is the kernel's (a connection
        # still in the listen queue when the listener closed; a proxy that closes a connection
        # itself sends a FIN), and it is classified as the reset it was.
        send_reset = False
        try:
            if self.kind == "now":
                self.sock.sendall(self.request())
            elif self.kind == "later":
                if not self.go.wait(READ_TIMEOUT):
                    raise AssertionError("never told to send")
                self.sock.sendall(self.request())
        except ConnectionResetError:
            send_reset = True  # the answer may be there already: read it
        except BrokenPipeError:
            pass  # the answer may be there already: read it
        try:
            response = harness.read_response(reader, timeout=READ_TIMEOUT)
            self.outcome = ("answered", response.status, response.headers.get("connection", ""))
        except socket.timeout:
            self.outcome = ("timeout", reader.buffer[:80])
        except ConnectionResetError:
            self.outcome = ("reset", reader.buffer[:80])
        except ConnectionError:  # closed before a full response
            reset = send_reset and not reader.buffer
            self.outcome = ("reset" if reset else "eof", reader.buffer[:80])
        finally:
            self.sock.close()

    def acceptable(self):
        """503 with Connection: close; or 200 for a request that may have reached the proxy
        before its drain began (a signal takes a moment); never a close without an answer."""
        if self.outcome[0] != "answered":
            return False
        return self.outcome[1:] == (503, "close") or (self.outcome[1] == 200 and self.kind != "silent")

    def refused_by_the_kernel(self):
        """Refused, or reset without a byte: the kernel's answer for a connection still in the
        listen queue when the listener closes (never accepted, so not the proxy's to answer)."""
        return self.outcome == ("refused", "") or self.outcome == ("reset", b"")


class DrainRaceTest(harness.HarnessTestCase):
    maxDiff = None  # every failed connection in the report

    def start(self, extra_routes=None):
        def routes(port):
            table = {"app": echo_route_spec(port, "/status", websocketOnly=False)}
            table.update(extra_routes or {})
            return table

        self.echo, self.routes_dir, self.proxy = start_stack(
            self, routes, proxy_args=["--drain-seconds", str(DRAIN_SECONDS)], class_scope=False)
        wait_until(lambda: http_get(self.proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")

    def run_clients(self, clients, schedule):
        """Runs each client in its own thread: client i connects at schedule[i][0] seconds
        after now and, if it sends "later", sends at schedule[i][1]. Returns when all are done."""
        start = time.monotonic()

        def run(client, connect_at, send_at):
            time.sleep(max(0.0, start + connect_at - time.monotonic()))
            if client.sock is None and not client.connect():
                return
            if client.kind == "later":
                threading.Timer(max(0.0, start + send_at - time.monotonic()), client.go.set).start()
            client.finish()

        threads = [threading.Thread(target=run, args=(c, *at), daemon=True)
                   for c, at in zip(clients, schedule)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(READ_TIMEOUT * 3)
        self.assertFalse(any(t.is_alive() for t in threads), "a client never finished")

    def preconnect(self, count, kind):
        """Clients connected (and accepted by the proxy) before the SIGTERM, sending nothing yet."""
        clients = [Client(self.proxy.port, kind, f"pre-{kind}-{i}") for i in range(count)]
        for client in clients:
            self.assertTrue(client.connect())
            self.addCleanup(client.sock.close)
            port = client.sock.getsockname()[1]
            wait_until(lambda: proxy_holds_connection(self.proxy.pid, self.proxy.port, port),
                       timeout=5, what="the proxy accepted the connection")
        return clients

    def test_every_connection_is_answered_while_a_tunnel_holds_the_drain(self):
        backend = RawWebSocketServer()
        self.addCleanup(backend.close)
        self.start(extra_routes={"raw": echo_route_spec(backend.port, "/raw")})
        tunnel = harness.RawWebSocket(self.proxy.port, "/raw")
        self.addCleanup(tunnel.abort)
        server = backend.wait_ready()
        tunnel.send_text("ready?")
        self.assertEqual(server.recv_message(), (OP_TEXT, b"ready?"))

        # Connected before the SIGTERM, sending at staggered moments right after it (or never).
        early = self.preconnect(16, "later") + self.preconnect(4, "silent")
        early_schedule = [(0, 0.002 * i) for i in range(16)] + [(0, 0)] * 4
        # Connecting from the SIGTERM on: at once, a little later, and with the send delayed.
        kinds = ["now", "later", "silent"]
        late = [Client(self.proxy.port, kinds[i % 3], f"late-{i}") for i in range(45)]
        late_schedule = [(0.003 * i, 0.003 * i + 0.002 * (i % 5)) for i in range(45)]

        self.proxy.send_signal(signal.SIGTERM)
        self.run_clients(early + late, early_schedule + late_schedule)

        failures = [(c.name, c.outcome) for c in early + late if not c.acceptable()]
        self.assertEqual(failures, [], "connections not answered 503 + Connection: close")
        self.assertTrue(all(c.outcome[1] == 503 for c in early + late if c.kind == "silent"))
        # The tunnel kept the drain (and the listener) going the whole time.
        self.assertEqual(tunnel.recv_frame(timeout=2).close_code, 1001)
        self.assertTrue(self.proxy.running(), "the drain ended with the tunnel open")

        server.send_frame(OP_CLOSE, close_payload(1001))
        tunnel.send_frame(OP_CLOSE, close_payload(1001))
        self.assertEqual(self.proxy.wait(timeout=DRAIN_SECONDS), 0)

    def test_connections_while_the_drain_ends_are_answered_or_refused(self):
        self.start()
        early = self.preconnect(4, "silent") + self.preconnect(4, "later")
        started = time.monotonic()
        self.proxy.send_signal(signal.SIGTERM)
        for client in early:
            client.go.set()

        # Clients keep connecting until the listener is gone (bounded in count and time).
        clients = []
        lock = threading.Lock()
        stop = threading.Event()

        def connector(index):
            kinds = ["silent", "now", "later"]
            for n in range(150):
                if stop.is_set() or time.monotonic() - started > DRAIN_SECONDS:
                    return
                client = Client(self.proxy.port, kinds[(index + n) % 3], f"c{index}-{n}")
                if client.connect():
                    client.go.set()
                    client.finish()
                with lock:
                    clients.append(client)
                if client.outcome[0] == "refused":
                    stop.set()

        threads = [threading.Thread(target=connector, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        for client in early:
            client.finish()
        for t in threads:
            t.join(DRAIN_SECONDS + READ_TIMEOUT * 2)
        self.assertFalse(any(t.is_alive() for t in threads), "a connector never finished")

        code = self.proxy.wait(timeout=DRAIN_SECONDS)
        elapsed = time.monotonic() - started
        tally = {}
        for c in clients:
            tally[c.outcome[:2]] = tally.get(c.outcome[:2], 0) + 1
        print(f"\n{len(clients)} connections while the drain ended, exit after {elapsed:.2f} s: "
              f"{tally}", file=sys.stderr)
        self.assertEqual(code, 0)
        early_failures = [(c.name, c.outcome) for c in early if not c.acceptable()]
        self.assertEqual(early_failures, [], "connections open at the SIGTERM not answered 503")
        failures = [(c.name, c.kind, c.outcome) for c in clients
                    if not c.acceptable() and not c.refused_by_the_kernel()]
        self.assertEqual(failures, [], "accepted connections closed without their 503")
        self.assertTrue(any(c.outcome[:2] == ("answered", 503) for c in clients),
                        "no connection reached the draining proxy")
        self.assertTrue(stop.is_set(), "the listener never closed")
        self.assertLess(elapsed, DRAIN_SECONDS - 1, "the drain did not end promptly")


if __name__ == "__main__":
    harness.main()
