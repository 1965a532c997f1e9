"""Mutual TLS on the control-plane channel: a controller with --grpc-tls-cert/-key/-ca requires
a client certificate signed by its CA; a proxy with the matching --grpc-tls-* flags gets its
snapshot and serves it, a proxy without a client certificate (or plaintext) never does.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_controlplane_tls.py
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import harness  # noqa: E402
from harness import echo_route_spec, http_get, metric, metrics, wait_until, write_route  # noqa: E402
from test_pki import TestPki  # noqa: E402
from test_controlplane import start_controller, start_cp_proxy, upgrade_status  # noqa: E402


class ControlPlaneMutualTlsTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="wsgate-grpc-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki_dir, True)
        cls.pki = TestPki(cls.pki_dir, "fake kube CA", with_kube_pair=True)

    def setUp(self):
        super().setUp()
        echo = self.start_echo_backend()
        routes = self.make_temp_dir()
        write_route(routes, "alpha", echo_route_spec(echo.port, "/alpha"))
        pki = self.pki
        self.controller = self._own(start_controller(routes, extra_args=[
            "--grpc-tls-cert", pki.server_cert, "--grpc-tls-key", pki.server_key,
            "--grpc-tls-ca", pki.ca_cert]))

    def test_proxy_with_client_certificate_is_served(self):
        pki = self.pki
        proxy = self._own(start_cp_proxy(self.controller.grpc_port, "mtls-proxy", extra_args=[
            "--grpc-tls-cert", pki.client_cert, "--grpc-tls-key", pki.client_key,
            "--grpc-tls-ca", pki.ca_cert]))
        wait_until(lambda: http_get(proxy.admin_port, "/readyz").status == 200, what="proxy ready")
        self.assertEqual(upgrade_status(proxy.port, "/alpha"), 101)
        wait_until(lambda: metric(metrics(self.controller.admin_port),
                                  "wsgate_controller_connected_proxies") == 1,
                   what="one connected proxy")

    def test_proxy_without_client_certificate_is_refused(self):
        # TLS verifying the controller, but no client certificate: the controller refuses it.
        no_cert = self._own(start_cp_proxy(self.controller.grpc_port, "no-cert",
                                           extra_args=["--grpc-tls-ca", self.pki.ca_cert]))
        plaintext = self._own(start_cp_proxy(self.controller.grpc_port, "plaintext"))
        # Both keep retrying and never get a snapshot: three refused attempts each (backoff
        # starts at 250 ms), then neither is ready and the controller counts no proxy.
        for proxy in (no_cert, plaintext):
            for _ in range(3):
                proxy.wait_for_log(r"control plane .*cannot open stream", timeout=10,
                                   since=proxy.mark())
            self.assertEqual(http_get(proxy.admin_port, "/readyz").status, 503)
        self.assertEqual(metric(metrics(self.controller.admin_port),
                                "wsgate_controller_connected_proxies"), 0)

if __name__ == "__main__":
    harness.main()
