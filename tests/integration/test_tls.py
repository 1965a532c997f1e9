"""TLS listeners, on one proxy with three certificate pairs: wss through the proxy with real TLS
on 127.0.0.1 (python3-websockets, the ssl module, `openssl s_client`, headless Chromium),
certificates chosen by SNI, ALPN, resumption by tickets, and failed handshakes counted by reason.
The certificate helpers here (a test CA and certificates made with the openssl CLI) are shared
with test_tls_lifecycle.py and test_tls_upstream.py.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_tls.py
"""

import asyncio
import json
import os
import select
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import harness  # noqa: E402
from test_pki import TestPki  # noqa: E402 - re-exported to the other TLS tests
from test_demo_browser import CHROMIUM, DemoBrowserTest  # noqa: E402
from harness import (  # noqa: E402
    LOCALHOST,
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    RawWebSocket,
    SocketReader,
    frame_bytes,
    metric,
    read_response,
    request_bytes,
    upgrade_request,
    wait_until,
)

OPENSSL = shutil.which("openssl")
DEMO_DIR = os.path.join(harness.SOURCE_DIR, "deploy", "demo")
REASONS = ("no_shared_cipher", "protocol_version", "unknown_ca", "timeout", "other")


# --------------------------------------------------------------------------------------------
# TLS helpers, shared with test_tls_lifecycle.py and test_tls_upstream.py


def der_of(cert_path):
    with open(cert_path, encoding="ascii") as source:
        return ssl.PEM_cert_to_DER_cert(source.read())


def client_context(cafile, minimum=ssl.TLSVersion.TLSv1_2, maximum=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, ctx, server_name, timeout=harness.DEFAULT_TIMEOUT, session=None):
    raw = harness.connect(port, timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name, session=session)
    except BaseException:
        raw.close()
        raise


def peer_der(port, ctx, server_name):
    with tls_connect(port, ctx, server_name) as sock:
        return sock.getpeercert(binary_form=True)


def tls_websocket(port, ctx, server_name, path="/echo", early_data=b""):
    """A RawWebSocket over TLS: the request (and early_data) go in one TLS record."""
    ws = RawWebSocket(port, path, host=f"{server_name}:{port}", handshake=False)
    try:
        ws.sock = ctx.wrap_socket(ws.sock, server_hostname=server_name)
    except BaseException:
        ws.sock.close()
        raise
    ws.reader = SocketReader(ws.sock, ws.timeout)
    ws.handshake(early_data)
    return ws


def tls_errors(admin_port):
    samples = harness.metrics(admin_port)
    return {reason: metric(samples, "wsgate_tls_handshake_errors_total", reason=reason)
            for reason in REASONS}


def tls_proxy_args(pairs, extra=()):
    args = ["--tls-listen", f"{LOCALHOST}:0"]
    for cert, key in pairs:
        args += ["--tls-cert", cert, "--tls-key", key]
    return args + list(extra)


def start_tls_proxy(case, routes, pairs, extra=(), name="proxy"):
    """A proxy with a TLS listener (and the harness's plain one); .tls_port is set."""
    proxy = case.start_proxy(routes, tls_proxy_args(pairs, extra), name=name)
    proxy.tls_port = proxy.listening("https")
    wait_until(lambda: harness.http_get(proxy.admin_port, "/readyz").status == 200,
               what=f"{name} ready")
    return proxy


# --------------------------------------------------------------------------------------------


@unittest.skipIf(OPENSSL is None, "openssl CLI not installed")
class TlsListenerTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wsgate-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.pki = TestPki(cls.tmp)
        cls.default_pair = cls.pki.issue("default", dns=["default.test"], ips=[LOCALHOST])
        cls.chat_pair = cls.pki.issue("chat", dns=["chat.example.test"])
        cls.wild_pair = cls.pki.issue("wild", dns=["*.wild.test"])
        cls.echo = cls.start_class_process(harness.start_echo_backend(DEMO_DIR))
        cls.routes = os.path.join(cls.tmp, "routes")
        os.mkdir(cls.routes)
        harness.write_route(cls.routes, "echo",
                            harness.echo_route_spec(cls.echo.port, websocketOnly=False))
        proxy = harness.start_proxy(
            cls.routes, tls_proxy_args([cls.default_pair, cls.chat_pair, cls.wild_pair],
                                       ["--client-header-timeout-ms", "3000"]))
        cls.proxy = cls.start_class_process(proxy)
        cls.tls_port = proxy.listening("https")
        wait_until(lambda: harness.http_get(proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")
        cls.ctx = client_context(cls.pki.ca_cert)

    # ---- wss end to end

    def test_wss_client_that_stops_reading_stalls_the_echo_and_loses_nothing(self):
        # The proxy writes TLS records into a client that reads nothing: its socket fills, an
        # SSL_write wants to wait, and the rest of that record must be offered again byte for
        # byte later. Every echo arrives intact once the client reads.
        import websockets

        chunk = os.urandom(256 * 1024)
        count = 256  # 64 MiB: more than every socket buffer on the way holds

        async def scenario():
            uri = f"wss://{LOCALHOST}:{self.tls_port}/echo"
            async with websockets.connect(uri, ssl=self.ctx, server_hostname="default.test",
                                          max_size=None, max_queue=1) as ws:
                async def send_all():
                    for _ in range(count):
                        await ws.send(chunk)

                sender = asyncio.ensure_future(send_all())
                done, _ = await asyncio.wait([sender], timeout=2)
                stalled = not done
                intact = 0
                for _ in range(count):
                    if await asyncio.wait_for(ws.recv(), 20) == chunk:
                        intact += 1
                await sender
                return stalled, intact

        stalled, intact = harness.run_async(scenario(), 120)
        self.assertTrue(stalled, "the sender never blocked: something buffered without bound")
        self.assertEqual(intact, count)
        self.assertTrue(self.proxy.running())

    def test_wss_echo_with_python_websockets(self):
        import websockets

        async def scenario():
            uri = f"wss://{LOCALHOST}:{self.tls_port}/echo"
            async with websockets.connect(uri, ssl=self.ctx, server_hostname="default.test",
                                          max_size=None) as ws:
                for message in ["hello over TLS", os.urandom(1 << 20), "x" * 70000, b""]:
                    await ws.send(message)
                    self.assertEqual(await ws.recv(), message)
                await ws.close(1000, "done")
                return ws.close_code

        self.assertEqual(harness.run_async(scenario(), 20), 1000)

    def test_http_over_tls_says_https_and_negotiates_http11(self):
        ctx = client_context(self.pki.ca_cert, alpn=["h2", "http/1.1"])
        with tls_connect(self.tls_port, ctx, "default.test") as sock:
            self.assertEqual(sock.selected_alpn_protocol(), "http/1.1")
            self.assertIn(sock.version(), ("TLSv1.2", "TLSv1.3"))
            sock.sendall(request_bytes("GET", "/headers", "default.test"))
            response = read_response(SocketReader(sock), "GET")
        self.assertEqual(response.status, 200)
        seen = json.loads(response.body)
        self.assertEqual(seen["headers"].get("x-forwarded-proto"), "https")

    def test_client_offering_only_h2_is_refused(self):
        ctx = client_context(self.pki.ca_cert, alpn=["h2"])

        def attempt():
            with self.assertRaises(ssl.SSLError) as raised:
                tls_connect(self.tls_port, ctx, "default.test").close()
            self.assertIn("NO APPLICATION PROTOCOL",
                          str(raised.exception).upper().replace("_", " "))

        self.assert_counted("other", attempt)

    def test_request_and_first_frames_in_one_record(self):
        # The request and a 6 KiB frame share a TLS record: part of it stays decrypted inside
        # OpenSSL after the header read, and the tunnel must forward it without new input.
        payload = os.urandom(6000)
        early = frame_bytes(OP_BINARY, payload) + frame_bytes(OP_TEXT, "second")
        ws = tls_websocket(self.tls_port, self.ctx, "default.test", early_data=early)
        self.addCleanup(ws.abort)
        self.assertEqual(ws.recv_message(), (OP_BINARY, payload))
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"second"))
        self.assertEqual(ws.close(1000, "bye"), (1000, "bye"))

    def test_two_records_in_one_segment(self):
        # Two frames in two TLS records arriving in one TCP segment: both are echoed.
        raw = harness.connect(self.tls_port)
        self.addCleanup(raw.close)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(incoming, outgoing, server_hostname="default.test")

        def pump_out():
            data = outgoing.read()
            if data:
                raw.sendall(data)

        def pump_in():
            data = raw.recv(65536)
            if not data:
                raise ConnectionError("closed")
            incoming.write(data)

        for _ in range(50):
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump_out()
                pump_in()
        pump_out()
        request = upgrade_request(f"default.test:{self.tls_port}", "/echo")
        tls.write(request)
        pump_out()
        received = b""
        while b"\r\n\r\n" not in received:
            try:
                received += tls.read(65536)
            except ssl.SSLWantReadError:
                pump_in()
        self.assertTrue(received.startswith(b"HTTP/1.1 101"), received[:100])
        received = received.split(b"\r\n\r\n", 1)[1]
        tls.write(frame_bytes(OP_TEXT, "one"))
        tls.write(frame_bytes(OP_TEXT, "two"))
        both = outgoing.read()  # two records
        raw.sendall(both)
        expected = frame_bytes(OP_TEXT, "one", mask=False) + frame_bytes(OP_TEXT, "two", mask=False)
        deadline = time.monotonic() + harness.DEFAULT_TIMEOUT
        while len(received) < len(expected):
            self.assertLess(time.monotonic(), deadline, f"echo incomplete: {received!r}")
            try:
                received += tls.read(65536)
            except ssl.SSLWantReadError:
                raw.settimeout(max(0.01, deadline - time.monotonic()))
                pump_in()
        self.assertEqual(received, expected)

    def test_wss_echo_with_openssl_s_client(self):
        args = [OPENSSL, "s_client", "-connect", f"{LOCALHOST}:{self.tls_port}", "-servername",
                "default.test", "-CAfile", self.pki.ca_cert, "-verify_return_error", "-quiet",
                "-alpn", "http/1.1"]
        client = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        self.addCleanup(client.stderr.close)
        self.addCleanup(client.stdout.close)
        self.addCleanup(client.kill)
        key = harness.make_key()
        request = upgrade_request(f"default.test:{self.tls_port}", "/echo", key=key)
        client.stdin.write(request + frame_bytes(OP_TEXT, "via s_client"))
        client.stdin.flush()
        expected_frame = frame_bytes(OP_TEXT, "via s_client", mask=False)
        output = b""
        deadline = time.monotonic() + harness.DEFAULT_TIMEOUT
        while not output.endswith(expected_frame) and time.monotonic() < deadline:
            ready, _, _ = select.select([client.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(client.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
        self.assertTrue(output.startswith(b"HTTP/1.1 101"), output[:200])
        self.assertIn(f"Sec-WebSocket-Accept: {harness.accept_for(key)}".encode(), output)
        self.assertTrue(output.endswith(expected_frame), output[-100:])
        client.stdin.write(frame_bytes(OP_CLOSE, harness.close_payload(1000)))
        client.stdin.close()  # s_client ends the TLS session and exits
        self.assertEqual(client.wait(timeout=10), 0, client.stderr.read().decode())

    # ---- SNI

    def test_sni_selects_the_certificate(self):
        cases = {
            "default.test": self.default_pair,
            "chat.example.test": self.chat_pair,
            "CHAT.Example.Test": self.chat_pair,
            "room.wild.test": self.wild_pair,
        }
        for name, (cert, _) in cases.items():
            with self.subTest(name=name):
                self.assertEqual(peer_der(self.tls_port, self.ctx, name), der_of(cert))
        # An unknown name, or no SNI at all, gets the first pair.
        loose = client_context(self.pki.ca_cert)
        loose.check_hostname = False
        self.assertEqual(peer_der(self.tls_port, loose, "nobody.test"), der_of(self.default_pair[0]))
        self.assertEqual(peer_der(self.tls_port, loose, "a.b.wild.test"),
                         der_of(self.default_pair[0]))
        self.assertEqual(peer_der(self.tls_port, loose, None), der_of(self.default_pair[0]))

    def test_wss_on_a_name_served_by_a_second_pair(self):
        ws = tls_websocket(self.tls_port, self.ctx, "room.wild.test")
        self.addCleanup(ws.abort)
        ws.send_text("wildcard")
        self.assertEqual(ws.recv_message(), (OP_TEXT, b"wildcard"))
        self.assertEqual(ws.close(1000), (1000, ""))

    # ---- session resumption

    def test_session_resumption_with_tickets(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version.name):
                ctx = client_context(self.pki.ca_cert, minimum=version, maximum=version)
                with tls_connect(self.tls_port, ctx, "chat.example.test") as first:
                    first.sendall(request_bytes("GET", "/headers", "chat.example.test"))
                    self.assertEqual(read_response(SocketReader(first), "GET").status, 200)
                    session = first.session  # TLS 1.3 tickets arrive after the handshake
                    self.assertFalse(first.session_reused)
                self.assertIsNotNone(session)
                self.assertTrue(session.has_ticket)
                with tls_connect(self.tls_port, ctx, "chat.example.test", session=session) as again:
                    self.assertTrue(again.session_reused)

    # ---- failed handshakes, counted by reason

    def assert_counted(self, reason, action):
        """`action` makes one failed handshake, which the proxy counts under `reason` only."""
        before = tls_errors(self.proxy.admin_port)
        action()
        wait_until(lambda: tls_errors(self.proxy.admin_port)[reason] == before[reason] + 1,
                   what=f"a {reason} handshake error counted")
        after = tls_errors(self.proxy.admin_port)
        self.assertEqual({r: v for r, v in after.items() if r != reason},
                         {r: v for r, v in before.items() if r != reason})

    def refusal(self, ctx, error=ssl.SSLError):
        def attempt():
            with self.assertRaises(error):
                tls_connect(self.tls_port, ctx, "default.test").close()

        return attempt

    def test_tls11_is_refused_and_counted(self):
        ctx = client_context(self.pki.ca_cert, minimum=ssl.TLSVersion.TLSv1_1,
                             maximum=ssl.TLSVersion.TLSv1_1)
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        self.assert_counted("protocol_version", self.refusal(ctx))

        def s_client():
            result = subprocess.run(
                [OPENSSL, "s_client", "-connect", f"{LOCALHOST}:{self.tls_port}", "-tls1_1",
                 "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "default.test"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=20)
            self.assertNotEqual(result.returncode, 0, result.stdout.decode())

        self.assert_counted("protocol_version", s_client)

    def test_no_shared_cipher_is_counted(self):
        ctx = client_context(self.pki.ca_cert, maximum=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")  # the server's keys are ECDSA
        self.assert_counted("no_shared_cipher", self.refusal(ctx))

    def test_client_distrusting_the_certificate_is_counted_as_unknown_ca(self):
        ctx = ssl.create_default_context()  # the system store: our test CA is not in it
        self.assert_counted("unknown_ca", self.refusal(ctx, ssl.SSLCertVerificationError))

    def test_plain_http_on_the_tls_port_is_counted_as_other(self):
        def plain_request():
            with harness.connect(self.tls_port) as sock:
                sock.sendall(request_bytes("GET", "/", "default.test"))
                SocketReader(sock).wait_closed()

        self.assert_counted("other", plain_request)

    def test_metrics_have_every_reason_and_pass_promtool(self):
        text = harness.metrics_text(self.proxy.admin_port)
        for reason in REASONS:
            self.assertIn(f'wsgate_tls_handshake_errors_total{{reason="{reason}"}}', text)
        if shutil.which("promtool"):
            code, output = harness.promtool_check(text)
            self.assertIn(code, (0, 3), output)  # 3: lint remarks only

    # ---- browser (DevTools helpers shared with test_demo_browser.py)

    open_page = DemoBrowserTest.open_page
    evaluate = DemoBrowserTest.evaluate

    def start_process(self, args, name=None, env=None, cwd=None):
        if name == "chromium":  # started by open_page: trust any certificate, resolve the name
            args = args[:-1] + ["--ignore-certificate-errors",
                                f"--host-resolver-rules=MAP default.test {LOCALHOST}"] + args[-1:]
        return super().start_process(args, name, env, cwd)

    @unittest.skipIf(CHROMIUM is None, "chromium is not installed")
    def test_headless_chromium_opens_the_demo_page_over_https_and_wss(self):
        before = harness.metrics(self.proxy.admin_port)
        url = f"https://default.test:{self.tls_port}/"
        devtools = self.open_page(url)
        # The page's status box ends as "echo ok", or "closed ..." if the wss failed.
        status_box = "(document.getElementById('status') || {}).textContent"

        def finished():
            text = self.evaluate(devtools, status_box)
            return text if text not in (None, "connecting", "open") else None

        final = wait_until(finished, timeout=45, what="the page's WebSocket to finish")
        dom = self.evaluate(devtools, "document.documentElement.outerHTML")
        self.assertEqual(final, "echo ok", dom[:4000])
        self.assertIn(f"wss://default.test:{self.tls_port}/echo", dom)
        wait_until(lambda: metric(harness.metrics(self.proxy.admin_port),
                                  "wsgate_handshakes_total", route="default/echo", code="101")
                   > metric(before, "wsgate_handshakes_total", route="default/echo", code="101"),
                   what="the browser's wss handshake counted")


if __name__ == "__main__":
    harness.main()
