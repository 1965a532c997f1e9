"""The demo, as a user sees it: headless Chromium opens the demo page through the proxy (the
page itself over plain HTTP, then its WebSocket to /echo) with the example routes, and the page
reports "echo ok" once its greeting came back. The page's DOM is read over the DevTools protocol.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_demo_browser.py
"""

import glob
import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCALHOST, OP_TEXT, RawWebSocket, metric, wait_until  # noqa: E402

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

    def open_page(self, url):
        """Starts headless Chromium on `url` and returns a DevTools connection to the page.

        The page is watched through the DevTools protocol rather than with --dump-dom: with
        --virtual-time-budget, virtual time does not wait for WebSocket messages, so a dump can
        come before the echo (seen as "open" about once in 15 runs)."""
        profile = self.make_temp_dir("wsgate-chromium-")
        browser = self.start_process([
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0", url,
        ], name="chromium")
        match = browser.wait_for_log(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/",
                                     timeout=BROWSER_TIMEOUT)
        port = int(match.group(1))

        def page_target():
            targets = json.loads(harness.http_get(port, "/json/list").body)
            return next((t for t in targets if t.get("type") == "page" and t.get("url") == url),
                        None)

        target = wait_until(page_target, timeout=BROWSER_TIMEOUT, what="the page's DevTools target")
        devtools = RawWebSocket(port, f"/devtools/page/{target['id']}", host=f"{LOCALHOST}:{port}")
        self.addCleanup(devtools.abort)
        return devtools

    def evaluate(self, devtools, expression):
        """The value of a JavaScript expression in the page (Runtime.evaluate)."""
        self.request_id = getattr(self, "request_id", 0) + 1
        devtools.send_text(json.dumps({"id": self.request_id, "method": "Runtime.evaluate",
                                       "params": {"expression": expression,
                                                  "returnByValue": True}}))
        for _ in range(1000):  # events are not enabled, but skip any message that is not ours
            opcode, data = devtools.recv_message()
            self.assertEqual(opcode, OP_TEXT)
            message = json.loads(data)
            if message.get("id") == self.request_id:
                self.assertNotIn("error", message)
                return message["result"]["result"].get("value")
        self.fail("no answer to Runtime.evaluate")

    def test_demo_page_echoes_through_the_proxy(self):
        before = harness.metrics(self.proxy.admin_port)
        url = f"http://{LOCALHOST}:{self.proxy.port}/"
        devtools = self.open_page(url)
        # The page's status box: "connecting", "open", then "echo ok" once the greeting came
        # back, or "closed ..." if the WebSocket failed. Until the page has loaded it counts as
        # "connecting"; a loaded page without the box (an error page) ends the wait at once.
        status = (f"location.href !== {json.dumps(url)} || document.readyState === 'loading'"
                  " ? 'connecting' : document.getElementById('status')"
                  " ? document.getElementById('status').textContent"
                  " : 'no status box in: ' + document.body.innerText.slice(0, 200)")
        final = wait_until(
            lambda: (lambda text: text if text not in ("connecting", "open") else None)(
                self.evaluate(devtools, status)),
            timeout=BROWSER_TIMEOUT, what="the demo page to finish")
        dom = self.evaluate(devtools, "document.documentElement.outerHTML")
        self.assertEqual(final, "echo ok", dom[:4000])
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
