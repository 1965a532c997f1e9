"""Every PromQL expression of the Grafana dashboard and the alerts (deploy/prometheus/queries.txt,
generated from the chart) run against a real Prometheus (Debian `prometheus`) scraping a real
controller and a real proxy under test traffic: each query must return data. The alerts return
data only while firing, so the test makes each condition true: failing handshakes on a route,
a rejected config, and a proxy that NACKs the controller's version (a caFile missing on its node).

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_prometheus_queries.py
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCALHOST, echo_route_spec, raw_request, request_bytes, wait_until, write_route  # noqa: E402
from test_controlplane import start_controller, start_cp_proxy, upgrade_status  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
QUERIES = os.path.join(os.environ.get("WSGATE_SOURCE_DIR", "."), "deploy", "prometheus", "queries.txt")


def free_port():
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


@unittest.skipIf(PROMETHEUS is None, "prometheus is not installed (scripts/install-deps.sh test)")
class PrometheusQueriesTest(harness.HarnessTestCase):
    def query(self, expr):
        url = (f"http://{LOCALHOST}:{self.prom_port}/api/v1/query?" +
               urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        self.assertEqual(body["status"], "success", body)
        return body["data"]["result"]

    def start_prometheus(self, targets):
        directory = self.make_temp_dir("wsgate-prometheus-")
        config = os.path.join(directory, "prometheus.yml")
        with open(config, "w", encoding="ascii") as out:
            out.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
            for job, port in targets:
                out.write(f"  - job_name: {job}\n    static_configs:\n"
                          f"      - targets: ['{LOCALHOST}:{port}']\n")
        self.prom_port = free_port()
        prometheus = self.start_process(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory}/data",
             f"--web.listen-address={LOCALHOST}:{self.prom_port}"], name="prometheus")
        prometheus.wait_for_log(r"Server is ready to receive web requests", timeout=30)
        return prometheus

    def test_every_dashboard_and_alert_query_returns_data(self):
        with open(QUERIES, encoding="utf-8") as lines:
            queries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        self.assertGreaterEqual(len(queries), 10)

        echo = self.start_echo_backend()
        routes = self.make_temp_dir()
        write_route(routes, "app", echo_route_spec(echo.port, "/app"))
        write_route(routes, "web", echo_route_spec(echo.port, "/web", websocketOnly=False))
        controller = self._own(start_controller(routes))
        pki = self.make_temp_dir("wsgate-prom-tls-")
        cert, key = os.path.join(pki, "cert.pem"), os.path.join(pki, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True,
                       timeout=30)
        proxy = self._own(start_cp_proxy(controller.grpc_port, "prom-proxy", extra_args=[
            "--tls-listen", f"{LOCALHOST}:0", "--tls-cert", cert, "--tls-key", key]))
        tls_port = proxy.listening("https")
        wait_until(lambda: upgrade_status(proxy.port, "/app") == 101, what="proxy serving /app")
        # Every series the traffic below moves exists before the first scrape, so each
        # increase is seen whole (a counter first scraped at 60 shows no increase).
        raw_request(proxy.port, request_bytes("GET", "/app"))
        raw_request(proxy.port, request_bytes("GET", "/web/status/200"))
        self.start_prometheus([("wsgate-proxy", proxy.admin_port),
                               ("wsgate-controller", controller.admin_port)])
        wait_until(lambda: self.query("up == 1") and len(self.query("up == 1")) == 2,
                   timeout=30, what="both targets scraped")

        # Traffic after the first scrape, so rates and increases see it: tunnels that echo and
        # close (one stays open), plain HTTP, 426s on the WebSocket-only route (a failure ratio
        # that fires the alert), a TLS-less listener gets no TLS errors but the series exist.
        keep = harness.RawWebSocket(proxy.port, "/app", host=f"{LOCALHOST}:{proxy.port}")
        self.addCleanup(keep.abort)
        for _ in range(60):
            with harness.RawWebSocket(proxy.port, "/app", host=f"{LOCALHOST}:{proxy.port}") as ws:
                ws.send_text("hello")
                ws.recv_message()
                ws.close(1000, "done")
            raw_request(proxy.port, request_bytes("GET", "/app"))  # 426 on the route
            raw_request(proxy.port, request_bytes("GET", "/web/status/200"))
        # Plain HTTP sent to the TLS port: a failed TLS handshake (reason "other").
        for _ in range(3):
            try:
                raw_request(tls_port, request_bytes("GET", "/"), timeout=3)
            except (OSError, AssertionError, ValueError):
                pass
        # A rejected config, then a change every proxy NACKs (its caFile is not on the node).
        with open(os.path.join(routes, "broken.yaml"), "w", encoding="ascii") as out:
            out.write("apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: broken}\n"
                      "spec: {backends: [{address: 127.0.0.1}]}\n")
        wait_until(lambda: harness.metric(harness.metrics(controller.admin_port),
                                          "wsgate_config_updates_total", result="rejected") >= 1,
                   what="the controller rejecting the broken file")
        os.remove(os.path.join(routes, "broken.yaml"))
        write_route(routes, "secure", echo_route_spec(echo.port, "/secure") | {
            "backends": [{"address": f"{LOCALHOST}:{echo.port}", "tls": True,
                          "caFile": os.path.join(routes, "missing-ca.pem")}]})
        for _ in range(20):  # keep traffic flowing while Prometheus collects samples
            raw_request(proxy.port, request_bytes("GET", "/app"))

        missing = list(queries)
        def all_answered():
            for expr in list(missing):
                if self.query(expr):
                    missing.remove(expr)
            return not missing
        try:
            wait_until(all_answered, timeout=60, interval=1, what="data for every query")
        except AssertionError:
            self.fail(f"queries still without data: {missing}")


if __name__ == "__main__":
    harness.main()
