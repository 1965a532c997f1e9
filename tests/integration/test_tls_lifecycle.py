"""TLS listeners with their own proxy per test: certificate rotation while 20 wss tunnels stay
open (a kubelet ..data swap), broken and mismatched pairs refused while the old pair serves, bad
pairs and flags at start, the handshake timeout, clients leaving without close_notify, and the
memory an idle wss tunnel costs. Certificates are made with the openssl CLI (see test_tls.py).

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_tls_lifecycle.py
"""

import asyncio
import os
import re
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    LOCALHOST,
    OP_TEXT,
    SocketReader,
    metric,
    read_response,
    request_bytes,
    wait_until,
)
from test_tls import (  # noqa: E402
    OPENSSL,
    TestPki,
    client_context,
    der_of,
    peer_der,
    start_tls_proxy,
    tls_connect,
    tls_errors,
    tls_websocket,
)


def sanitized(pid):
    """True when the process runs under ASan/TSan (its memory figures mean nothing then)."""
    with open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps:
        return any(re.search(r"lib[at]san", line) for line in maps)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class OwnProxyTestCase(harness.HarnessTestCase):
    """Tests that start their own proxy: each gets a fresh CA (self.pki, self.ctx trusts it),
    an echo backend and a route to it in self.routes."""

    websocket_only = True

    def setUp(self):
        super().setUp()
        self.tmp = self.make_temp_dir("wsgate-tls-own-")
        self.pki = TestPki(self.tmp)
        self.ctx = client_context(self.pki.ca_cert)
        self.echo = self.start_echo_backend()
        self.routes = self.make_temp_dir("wsgate-tls-routes-")
        harness.write_route(self.routes, "echo", harness.echo_route_spec(
            self.echo.port, websocketOnly=self.websocket_only))


@unittest.skipIf(OPENSSL is None, "openssl CLI not installed")
class TlsCertificateLifecycleTest(OwnProxyTestCase):
    """These change certificate files."""

    def secret_volume(self, version, dns):
        """Writes a Kubernetes Secret volume layout in <tmp>/secret: tls.crt -> ..data/tls.crt,
        ..data -> <version>/; a later call swaps ..data the way kubelet does."""
        volume = os.path.join(self.tmp, "secret")
        os.makedirs(os.path.join(volume, version))
        pair = self.pki.issue("tls", dns=dns, out_dir=os.path.join(volume, version))
        os.symlink(version, os.path.join(volume, "..data_tmp"))
        os.replace(os.path.join(volume, "..data_tmp"), os.path.join(volume, "..data"))
        for name in ("tls.crt", "tls.key"):
            link = os.path.join(volume, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        return os.path.join(volume, "tls.crt"), os.path.join(volume, "tls.key"), pair[0]

    def test_rotation_while_20_wss_tunnels_stay_open(self):
        import websockets

        cert, key, first_cert = self.secret_volume("..2024_01", ["rotate.test"])
        proxy = start_tls_proxy(self, self.routes, [(cert, key)])
        self.assertEqual(peer_der(proxy.tls_port, self.ctx, "rotate.test"), der_of(first_cert))

        async def scenario():
            uri = f"wss://{LOCALHOST}:{proxy.tls_port}/echo"
            tunnels = [await websockets.connect(uri, ssl=self.ctx, server_hostname="rotate.test")
                       for _ in range(20)]
            for i, ws in enumerate(tunnels):
                await ws.send(f"before {i}")
                self.assertEqual(await ws.recv(), f"before {i}")
            mark = proxy.mark()
            new_cert = self.secret_volume("..2024_02", ["rotate.test"])[2]
            shutil.rmtree(os.path.join(self.tmp, "secret", "..2024_01"))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: proxy.wait_for_log(
                r"TLS certificate .*tls\.crt reloaded: names \[rotate\.test\]", since=mark))
            # New handshakes get the new certificate...
            served = await loop.run_in_executor(
                None, lambda: peer_der(proxy.tls_port, self.ctx, "rotate.test"))
            self.assertEqual(served, der_of(new_cert))
            fresh = await websockets.connect(uri, ssl=self.ctx, server_hostname="rotate.test")
            await fresh.send("after rotation")
            self.assertEqual(await fresh.recv(), "after rotation")
            await fresh.close()
            # ...and every tunnel opened before it is still up.
            for i, ws in enumerate(tunnels):
                await ws.send(f"after {i}")
                self.assertEqual(await ws.recv(), f"after {i}")
            for ws in tunnels:
                await ws.close(1000)
            return [ws.close_code for ws in tunnels]

        self.assertEqual(harness.run_async(scenario(), 60), [1000] * 20)
        samples = harness.metrics(proxy.admin_port)
        self.assertEqual(metric(samples, "wsgate_tunnel_closes_total", route="default/echo",
                                code="1000", initiator="client"), 21)

    def test_broken_and_mismatched_pairs_are_refused_and_the_old_pair_serves(self):
        cert, key = self.pki.issue("site", dns=["site.test"])
        proxy = start_tls_proxy(self, self.routes, [(cert, key)])
        good = der_of(cert)
        ws = tls_websocket(proxy.tls_port, self.ctx, "site.test")
        self.addCleanup(ws.abort)

        # A broken certificate file.
        mark = proxy.mark()
        with open(cert, "w", encoding="ascii") as out:
            out.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
        proxy.wait_for_log(r"TLS certificate pair .*site\.crt.* refused, the previous one keeps "
                           r"serving: no PEM certificate in .*site\.crt", since=mark)
        self.assertEqual(peer_der(proxy.tls_port, self.ctx, "site.test"), good)

        # A valid certificate whose key is not the one in the key file.
        mark = proxy.mark()
        other_cert, _ = self.pki.issue("other", dns=["site.test"])
        shutil.copyfile(other_cert, cert + ".tmp")
        os.replace(cert + ".tmp", cert)
        proxy.wait_for_log(r"refused, the previous one keeps serving: private key .*site\.key "
                           r"does not match certificate .*site\.crt", since=mark)
        self.assertEqual(peer_der(proxy.tls_port, self.ctx, "site.test"), good)

        # The tunnel opened before all this never noticed.
        ws.send_text("still here")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"still here"))

        # A matching pair, written file by file: accepted once both are in place.
        mark = proxy.mark()
        fixed_cert, fixed_key = self.pki.issue("fixed", dns=["site.test"])
        shutil.copyfile(fixed_key, key + ".tmp")
        os.replace(key + ".tmp", key)
        shutil.copyfile(fixed_cert, cert + ".tmp")
        os.replace(cert + ".tmp", cert)
        proxy.wait_for_log(r"TLS certificate .*site\.crt reloaded", since=mark)
        self.assertEqual(peer_der(proxy.tls_port, self.ctx, "site.test"), der_of(fixed_cert))
        self.assertEqual(ws.close(1000), (1000, ""))

    def test_a_bad_pair_at_start_stops_the_proxy_with_a_clear_error(self):
        cert, key = self.pki.issue("start", dns=["start.test"])
        _, other_key = self.pki.issue("start-other", dns=["start.test"])
        cases = [
            ([cert, other_key], r"private key .*start-other\.key does not match certificate"),
            ([os.path.join(self.tmp, "missing.crt"), key], r"cannot read .*missing\.crt"),
        ]
        for (c, k), message in cases:
            with self.subTest(message=message):
                process = self.start_process(
                    [harness.binary("wsgate-proxy"), "--routes", self.routes, "--listen",
                     f"{LOCALHOST}:0", "--admin", f"{LOCALHOST}:0", "--tls-listen",
                     f"{LOCALHOST}:0", "--tls-cert", c, "--tls-key", k])
                self.assertEqual(process.wait(), 1)
                self.assertRegex(process.log_text(), message)

    def test_flag_pairing_errors(self):
        cert, key = self.pki.issue("flags", dns=["flags.test"])
        base = [harness.binary("wsgate-proxy"), "--routes", self.routes, "--listen",
                f"{LOCALHOST}:0", "--admin", f"{LOCALHOST}:0"]
        cases = [
            (["--tls-listen", f"{LOCALHOST}:0"], "--tls-listen needs at least one"),
            (["--tls-listen", f"{LOCALHOST}:0", "--tls-cert", cert], "come in pairs"),
            (["--tls-cert", cert, "--tls-key", key], "without --tls-listen"),
        ]
        for extra, message in cases:
            with self.subTest(extra=extra):
                process = self.start_process(base + extra)
                self.assertEqual(process.wait(), 2)
                self.assertIn(message, process.log_text())

    def test_handshake_timeout_is_counted_and_a_tcp_probe_is_not(self):
        cert, key = self.pki.issue("slow", dns=["slow.test"])
        proxy = start_tls_proxy(self, self.routes, [(cert, key)],
                                ["--client-header-timeout-ms", "500", "--log-level", "debug"])
        before = tls_errors(proxy.admin_port)
        # A TCP connection closed without a byte (a load balancer's probe): not an error.
        mark = proxy.mark()
        harness.connect(proxy.tls_port).close()
        proxy.wait_for_log(r"closed before the TLS handshake", since=mark)
        self.assertEqual(tls_errors(proxy.admin_port), before)
        # Half a record header, then silence: closed after the timeout and counted.
        started = time.monotonic()
        with harness.connect(proxy.tls_port) as sock:
            sock.sendall(b"\x16\x03\x01")
            self.assertTrue(SocketReader(sock).wait_closed(10))
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        wait_until(lambda: tls_errors(proxy.admin_port)["timeout"] == before["timeout"] + 1,
                   what="the timeout counted")

    def test_max_connections_bounds_tls_handshakes_in_progress(self):
        # Connections that never finish their TLS handshake count against --max-connections:
        # past it a new one is closed at once (no handshake: that CPU is what the limit guards).
        cert, key = self.pki.issue("limit", dns=["limit.test"])
        proxy = start_tls_proxy(self, self.routes, [(cert, key)],
                                ["--max-connections", "2", "--workers", "1"])
        stalled = [harness.connect(proxy.tls_port) for _ in range(2)]
        for sock in stalled:
            self.addCleanup(sock.close)
            sock.sendall(b"\x16\x03\x01")  # half a record header, then nothing
        rejected = lambda: metric(harness.metrics(proxy.admin_port),  # noqa: E731
                                  "wsgate_connections_rejected_total", reason="max_connections")
        with harness.connect(proxy.tls_port) as third:
            self.assertTrue(SocketReader(third).wait_closed(3), "the third connection was served")
        wait_until(lambda: rejected() == 1, what="the refused connection counted")
        self.assertEqual(tls_errors(proxy.admin_port)["timeout"], 0)
        # The stalled ones still hold their places; once one goes, a wss tunnel is admitted.
        stalled[0].close()

        def tunnel_admitted():
            try:
                ws = tls_websocket(proxy.tls_port, self.ctx, "limit.test")
            except (OSError, AssertionError, harness.HandshakeError):
                return False
            ws.send_text("admitted")
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"admitted"))
            ws.close(1000)
            return True

        wait_until(tunnel_admitted, what="a wss tunnel admitted after a place freed")


@unittest.skipIf(OPENSSL is None, "openssl CLI not installed")
class TlsConnectionEndTest(OwnProxyTestCase):
    websocket_only = False

    def test_keep_alive_client_leaving_without_close_notify_is_a_clean_end(self):
        # Browsers often drop an idle TLS connection without close_notify: not a bad request.
        cert, key = self.pki.issue("end", dns=["end.test"])
        # One worker: the first connection's end is handled before the second's request.
        proxy = start_tls_proxy(self, self.routes, [(cert, key)], ["--workers", "1"])
        for _ in range(2):
            with tls_connect(proxy.tls_port, self.ctx, "end.test") as sock:
                sock.sendall(request_bytes("GET", "/headers", "end.test"))
                self.assertEqual(read_response(SocketReader(sock), "GET").status, 200)
            # (leaving the with block closes the socket without a close_notify)

        def both_counted():  # a request is counted once its exchange is over: maybe just now
            samples = harness.metrics(proxy.admin_port)
            count = metric(samples, "wsgate_http_requests_total", route="default/echo", code="200")
            return samples if count == 2 else None

        samples = wait_until(both_counted, what="both requests counted")
        self.assertEqual(harness.metric_sum(samples, "wsgate_http_requests_total", code="400"), 0)
        self.assertEqual(sum(tls_errors(proxy.admin_port).values()), 0)


@unittest.skipIf(OPENSSL is None, "openssl CLI not installed")
class TlsTunnelMemoryTest(OwnProxyTestCase):
    TUNNELS = 300

    def test_idle_wss_tunnel_memory(self):
        """Opens TUNNELS idle tunnels and reports the proxy's RSS growth per tunnel, over TLS
        and (on a second proxy, so that freed memory is not reused) over plain TCP. OpenSSL's
        record buffers are released while idle and there are no staging buffers, so an idle
        TLS tunnel costs only a little more than a plain one."""
        import websockets

        cert, key = self.pki.issue("mem", dns=["mem.test"])

        async def open_idle(count, uri, **kwargs):
            tunnels = []
            for _ in range(count):
                ws = await websockets.connect(uri, ping_interval=None, **kwargs)
                await ws.send("x" * 4000)  # bytes flowed once: buffers were needed, then idle
                await ws.recv()
                tunnels.append(ws)
            return tunnels

        async def measure(pid, uri, **kwargs):
            for ws in await open_idle(10, uri, **kwargs):  # pools and caches grown once
                await ws.close()
            base = rss_bytes(pid)
            tunnels = await open_idle(self.TUNNELS, uri, **kwargs)
            grown = rss_bytes(pid) - base
            for ws in tunnels:
                await ws.close()
            return grown / self.TUNNELS

        results = {}
        for kind in ("wss", "ws"):
            proxy = start_tls_proxy(self, self.routes, [(cert, key)], ["--workers", "1"],
                                    name=kind)
            if sanitized(proxy.pid):
                self.skipTest("a sanitizer build: RSS is not representative")
            if kind == "wss":
                coroutine = measure(proxy.pid, f"wss://{LOCALHOST}:{proxy.tls_port}/echo",
                                    ssl=self.ctx, server_hostname="mem.test")
            else:
                coroutine = measure(proxy.pid, f"ws://{LOCALHOST}:{proxy.port}/echo")
            results[kind] = harness.run_async(coroutine, 120)
            proxy.terminate()
        sys.stderr.write(f"\nproxy RSS growth per idle tunnel ({self.TUNNELS} tunnels): "
                         f"wss {results['wss'] / 1024:.1f} KiB, ws {results['ws'] / 1024:.1f} KiB\n")
        # asio::ssl::stream alone would hold 4 x 17 KiB per connection, and OpenSSL's record
        # buffers another 2 x 16 KiB+ if they were not released.
        self.assertLess(results["wss"], 32 * 1024)
        self.assertLess(results["wss"] - results["ws"], 24 * 1024)


if __name__ == "__main__":
    harness.main()
