"""Tunnels through a real wsgate-proxy driven by a third-party client, python3-websockets: message
sizes, fragmented messages, ping/pong, close codes both ways, and 200 concurrent tunnels.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_websockets_client.py
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import metric, metrics, run_async  # noqa: E402
from test_tunnel import ACTIVE, CLOSES, SIZES, start_stack, text_payload, wait_metric, wait_no_tunnels  # noqa: E402

import websockets  # noqa: E402  (python3-websockets)

ROUTE = "default/echo"
CONCURRENT = 200
STEP_TIMEOUT = 10


class WebsocketsClientTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo, cls.routes_dir, cls.proxy = start_stack(
            cls, lambda port: {"echo": harness.echo_route_spec(port, "/")}, proxy_args=["--workers", "2"])
        cls.url = f"ws://127.0.0.1:{cls.proxy.port}/echo"

    def setUp(self):
        super().setUp()
        wait_no_tunnels(self.proxy.admin_port)

    def connect(self, **kwargs):
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("compression", None)
        kwargs.setdefault("open_timeout", STEP_TIMEOUT)
        kwargs.setdefault("close_timeout", STEP_TIMEOUT)
        return websockets.connect(self.url, **kwargs)

    def closes(self, code, initiator):
        return metric(metrics(self.proxy.admin_port), CLOSES, route=ROUTE, code=code, initiator=initiator)

    def test_message_sizes_text_and_binary(self):
        async def run():
            async with self.connect() as ws:
                for size in SIZES:
                    data = os.urandom(size)
                    await ws.send(data)
                    self.assertTrue(await ws.recv() == data, f"binary {size}")
                    text = text_payload(size).decode("ascii")
                    await ws.send(text)
                    self.assertTrue(await ws.recv() == text, f"text {size}")

        run_async(run(), 60)

    def test_fragmented_messages(self):
        async def run():
            async with self.connect() as ws:
                await ws.send(iter(["frag", "", "men", "ted"]))  # an iterable is sent as fragments
                self.assertEqual(await ws.recv(), "fragmented")
                pieces = [os.urandom(100000) for _ in range(11)]
                await ws.send(iter(pieces))
                self.assertTrue(await ws.recv() == b"".join(pieces), "fragmented binary changed")

        run_async(run(), 30)

    def test_ping_pong(self):
        async def run():
            async with self.connect() as ws:
                for payload in (b"", b"ping!", os.urandom(125)):
                    pong = await ws.ping(payload)
                    await asyncio.wait_for(pong, STEP_TIMEOUT)  # resolves only on the matching pong

        run_async(run(), 30)

    def test_client_close_code_and_reason_come_back(self):
        before = self.closes("4001", "client")

        async def run():
            ws = await self.connect()
            await ws.send("hi")
            self.assertEqual(await ws.recv(), "hi")
            await ws.close(4001, "bye")
            return ws.close_code, ws.close_reason

        self.assertEqual(run_async(run(), 30), (4001, "bye"))
        wait_metric(self.proxy.admin_port, CLOSES, before + 1, route=ROUTE, code="4001", initiator="client")

    def test_backend_close_code_and_reason_reach_the_client(self):
        before = self.closes("4002", "backend")

        async def run():
            async with self.connect() as ws:
                await ws.send("close:4002:server bye")
                with self.assertRaises(websockets.ConnectionClosed) as raised:
                    await ws.recv()
                return raised.exception.rcvd.code, raised.exception.rcvd.reason

        self.assertEqual(run_async(run(), 30), (4002, "server bye"))
        wait_metric(self.proxy.admin_port, CLOSES, before + 1, route=ROUTE, code="4002", initiator="backend")

    def test_200_concurrent_tunnels_each_echoing(self):
        admin = self.proxy.admin_port
        before = self.closes("1000", "client")

        async def one(index, opened, release):
            async with self.connect(ping_interval=None) as ws:
                message = f"tunnel {index} " + "x" * index
                await ws.send(message)
                self.assertEqual(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT), message)
                opened.release()
                await asyncio.wait_for(release.wait(), 30)
                # A second round once all are open: each still carries its own bytes.
                await ws.send(message[::-1])
                self.assertEqual(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT), message[::-1])
                await ws.close(1000)

        async def run():
            opened = asyncio.Semaphore(0)
            release = asyncio.Event()
            tasks = [asyncio.create_task(one(i, opened, release)) for i in range(CONCURRENT)]
            try:
                for _ in range(CONCURRENT):
                    await asyncio.wait_for(opened.acquire(), 30)
                loop = asyncio.get_running_loop()
                # Scraping blocks: do it off the loop while the tunnels sit idle.
                await loop.run_in_executor(None, lambda: wait_metric(admin, ACTIVE, CONCURRENT, route=ROUTE))
                release.set()
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        run_async(run(), 50)
        wait_metric(admin, ACTIVE, 0, route=ROUTE)
        wait_metric(admin, CLOSES, before + CONCURRENT, route=ROUTE, code="1000", initiator="client")


if __name__ == "__main__":
    harness.main()
