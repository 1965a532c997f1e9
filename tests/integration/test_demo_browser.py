"""The demo, as a user sees it: headless Chromium opens the demo page through the proxy (the
page itself over plain HTTP, then its WebSocket to /echo) with the example routes, and the page
reports "echo ok" once its greeting came back.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_demo_browser.py
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCALHOST, metric, wait_until  # noqa: E402

DEMO_DIR = os.path.join(harness.SOURCE_DIR, "deploy", "demo")
EXAMPLE_ROUTES = os.path.join(harness.SOURCE_DIR, "deploy", "examples", "routes")
EXAMPLE_BACKEND = "127.0.0.1:9001"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_TIMEOUT = 45


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (scripts/install-deps.sh test)")
class DemoBrowserTest(harness.HarnessTestCase):
    def setUp(self):
        super().setUp()
        self.echo = self.start_echo_backend(DEMO_DIR)
        # The example routes, pointed at this test's echo backend instead of the fixed port.
        self.routes = self.make_temp_dir("wsgate-demo-routes-")
        files = sorted(glob.glob(os.path.join(EXAMPLE_ROUTES, "*.yaml")))
        self.assertTrue(files, f"no example routes in {EXAMPLE_ROUTES}")
        for path in files:
            with open(path, encoding="utf-8") as source:
                text = source.read()
            text = text.replace(EXAMPLE_BACKEND, f"{LOCALHOST}:{self.echo.port}")
            with open(os.path.join(self.routes, os.path.basename(path)), "w", encoding="utf-8") as out:
                out.write(text)
        self.proxy = self.start_proxy(self.routes)
        wait_until(lambda: harness.http_get(self.proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")

    def dump_dom(self, url):
        profile = self.make_temp_dir("wsgate-chromium-")
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
            "--dump-dom", url,
        ]
        try:
            result = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, timeout=BROWSER_TIMEOUT,
                                    start_new_session=True)
        except subprocess.TimeoutExpired as error:
            self.fail(f"chromium did not finish within {BROWSER_TIMEOUT}s: "
                      f"{(error.stderr or b'')[-2000:]!r}")
        dom = result.stdout.decode("utf-8", "replace")
        if result.returncode != 0 or not dom:
            self.fail(f"chromium exited {result.returncode}: {result.stderr[-2000:]!r}")
        return dom

    def test_demo_page_echoes_through_the_proxy(self):
        before = harness.metrics(self.proxy.admin_port)
        dom = self.dump_dom(f"http://{LOCALHOST}:{self.proxy.port}/")
        status = re.search(r'<div id="status">([^<]*)</div>', dom)
        self.assertIsNotNone(status, dom[:2000])
        self.assertEqual(status.group(1), "echo ok", dom[:4000])
        self.assertIn("hello from the demo page", dom)
        self.assertIn(f"ws://{LOCALHOST}:{self.proxy.port}/echo", dom)
        # The page came through the demo route (plain HTTP) and its WebSocket through the echo
        # route: both counted by the proxy (the counters move when each exchange has finished,
        # which may be just after the browser is done).
        def moved(name, route, code):
            return (metric(harness.metrics(self.proxy.admin_port), name, route=route, code=code)
                    - metric(before, name, route=route, code=code)) >= 1

        wait_until(lambda: moved("wsgate_http_requests_total", "default/demo", "200"),
                   what="the page request counted")
        wait_until(lambda: moved("wsgate_handshakes_total", "default/echo", "101"),
                   what="the page's handshake counted")

if __name__ == "__main__":
    harness.main()
