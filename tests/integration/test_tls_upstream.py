"""TLS towards backends (routes with tls: true): the proxy connects with TLS, sends SNI, verifies
the chain against the route's caFile (or the system store) and the name against serverName (or
the address); a failure is a 502 with the reason logged, a silent backend a 504.

The TLS backend is a second wsgate-proxy with a TLS listener in front of the echo backend (a
real TLS server that speaks WebSocket). Certificates are made by the test with the openssl CLI.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_tls_upstream.py
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    LOCALHOST,
    OP_TEXT,
    HandshakeError,
    RawWebSocket,
    metric,
    wait_until,
)
from test_tls import OPENSSL, TestPki, tls_errors, tls_proxy_args  # noqa: E402


@unittest.skipIf(OPENSSL is None, "openssl CLI not installed")
class UpstreamTlsTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wsgate-tls-up-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        os.makedirs(os.path.join(cls.tmp, "trusted"))
        os.makedirs(os.path.join(cls.tmp, "untrusted"))
        cls.pki = TestPki(os.path.join(cls.tmp, "trusted"))
        cls.untrusted = TestPki(os.path.join(cls.tmp, "untrusted"), "some other CA")
        # The terminator's first pair (served without SNI) names only the IP address; the
        # second only backend.test, so a connection that verifies backend.test proves SNI.
        ip_pair = cls.pki.issue("terminator-ip", ips=[LOCALHOST], cn="terminator by address")
        name_pair = cls.pki.issue("terminator-name", dns=["backend.test"])

        cls.echo = cls.start_class_process(harness.start_echo_backend())
        terminator_routes = os.path.join(cls.tmp, "terminator-routes")
        os.mkdir(terminator_routes)
        harness.write_route(terminator_routes, "echo",
                            harness.echo_route_spec(cls.echo.port, websocketOnly=False))
        terminator = harness.start_proxy(terminator_routes, tls_proxy_args([ip_pair, name_pair]),
                                         name="terminator")
        cls.terminator = cls.start_class_process(terminator)
        cls.backend_port = terminator.listening("https")

        # A port that accepts TCP (the kernel does) but never says a word of TLS.
        cls.silent = socket.socket()
        cls.silent.bind((LOCALHOST, 0))
        cls.silent.listen(16)
        cls.addClassCleanup(cls.silent.close)

        backend = f"{LOCALHOST}:{cls.backend_port}"
        trusted_ca = cls.pki.ca_cert
        routes = {
            "by-ip": {"address": backend, "tls": True, "caFile": trusted_ca},
            "by-name": {"address": backend, "tls": True, "caFile": trusted_ca,
                        "serverName": "backend.test"},
            "untrusted": {"address": backend, "tls": True, "caFile": cls.untrusted.ca_cert},
            "system-store": {"address": backend, "tls": True},
            "wrong-name": {"address": backend, "tls": True, "caFile": trusted_ca,
                           "serverName": "wrong.test"},
            "silent": {"address": f"{LOCALHOST}:{cls.silent.getsockname()[1]}", "tls": True,
                       "caFile": trusted_ca},
        }
        cls.routes = os.path.join(cls.tmp, "front-routes")
        os.mkdir(cls.routes)
        for name, backend_spec in routes.items():
            spec = {"hosts": [f"{name}.test"], "pathPrefix": "/", "websocketOnly": False,
                    "backends": [backend_spec], "handshakeTimeoutSeconds": 2}
            harness.write_route(cls.routes, name, spec)
        front = harness.start_proxy(cls.routes, name="front")
        cls.front = cls.start_class_process(front)
        wait_until(lambda: harness.http_get(front.admin_port, "/readyz").status == 200,
                   what="front proxy ready")
        wait_until(lambda: harness.http_get(terminator.admin_port, "/readyz").status == 200,
                   what="terminator ready")

    def echo_through(self, host):
        ws = RawWebSocket(self.front.port, "/echo", host=host)
        self.addCleanup(ws.abort)
        ws.send_text(f"hello via {host}")
        self.assertEqual(ws.recv_message(), (OP_TEXT, f"hello via {host}".encode()))
        self.assertEqual(ws.close(1000), (1000, ""))

    def refused(self, host):
        with self.assertRaises(HandshakeError) as raised:
            RawWebSocket(self.front.port, "/echo", host=host).abort()
        return raised.exception.response

    def test_wss_backend_verified_by_its_ip_address(self):
        before = harness.metrics(self.terminator.admin_port)
        self.echo_through("by-ip.test")
        # The tunnel really ran through the TLS terminator.
        after = harness.metrics(self.terminator.admin_port)
        self.assertEqual(metric(after, "wsgate_handshakes_total", route="default/echo", code="101")
                         - metric(before, "wsgate_handshakes_total", route="default/echo",
                                  code="101"), 1)

    def test_server_name_is_sent_as_sni_and_verified(self):
        # Without SNI the terminator would answer with its address-only certificate, which
        # does not name backend.test: success proves both SNI and the name check.
        self.echo_through("by-name.test")

    def test_plain_http_to_a_tls_backend(self):
        response = harness.http_get(self.front.port, "/headers", host="by-ip.test")
        self.assertEqual(response.status, 200, response.body[:200])
        seen = json.loads(response.body)
        # The terminator received it over TLS and says so to the echo backend.
        self.assertEqual(seen["headers"].get("x-forwarded-proto"), "https")

    def test_untrusted_certificate_is_a_502_with_the_reason_logged(self):
        before = tls_errors(self.terminator.admin_port)
        mark = self.front.mark()
        self.assertEqual(self.refused("untrusted.test").status, 502)
        self.front.wait_for_log(
            r"route default/untrusted: backend .* TLS failed: certificate verification failed "
            r"\(127\.0\.0\.1\): unable to get local issuer certificate", since=mark)
        self.assertEqual(harness.http_get(self.front.port, "/headers", host="untrusted.test").status,
                         502)
        # The proxy told the backend why, with an alert the backend counts.
        wait_until(lambda: tls_errors(self.terminator.admin_port)["unknown_ca"]
                   >= before["unknown_ca"] + 1, what="the terminator counted unknown_ca")

    def test_system_store_is_the_default_and_does_not_know_the_test_ca(self):
        mark = self.front.mark()
        self.assertEqual(self.refused("system-store.test").status, 502)
        self.front.wait_for_log(r"route default/system-store: .*certificate verification failed",
                                since=mark)

    def test_wrong_server_name_is_a_502(self):
        mark = self.front.mark()
        self.assertEqual(self.refused("wrong-name.test").status, 502)
        self.front.wait_for_log(
            r"route default/wrong-name: .*certificate verification failed \(wrong\.test\): "
            r"hostname mismatch", since=mark)

    def test_backend_silent_in_the_tls_handshake_is_a_504(self):
        mark = self.front.mark()
        self.assertEqual(self.refused("silent.test").status, 504)
        self.front.wait_for_log(r"route default/silent: .*TLS handshake timed out", since=mark)


if __name__ == "__main__":
    harness.main()
