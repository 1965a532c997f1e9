"""The 16 KiB request-header limit (SPEC: 431) counts every header byte of a request: the
request line and all header lines up to and including the blank line, however they arrive (one
segment, many segments, one byte at a time), for WebSocket upgrades and plain HTTP alike. A
request of exactly the limit passes (101 / 200); one byte more gets 431 with Connection: close.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_header_limit.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import OP_TEXT, SocketReader, connect, echo_route_spec, frame_bytes, read_response, wait_until  # noqa: E402

LIMIT = 16 * 1024
LINE = 1024  # bytes of one padding header line, CRLF included


def head_lines(websocket, host):
    if websocket:
        return ["GET /ws HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                f"Sec-WebSocket-Key: {harness.make_key()}", "Sec-WebSocket-Version: 13"]
    return ["GET /status/200 HTTP/1.1", f"Host: {host}"]


def pad_line(index, size):
    """One header line of exactly `size` bytes, CRLF included."""
    name = f"X-Pad-{index:02d}: "
    return name + "p" * (size - len(name) - 2)


def request_of_size(websocket, host, total):
    """A request whose header (request line through the blank line) is exactly `total` bytes,
    made of 1 KiB header lines and one shorter filler line."""
    lines = head_lines(websocket, host)
    used = sum(len(line) + 2 for line in lines) + 2  # + the blank line
    index = 0
    while total - used > LINE + 64:
        lines.append(pad_line(index, LINE))
        used += LINE
        index += 1
    lines.append(pad_line(index, total - used))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    assert len(data) == total, (len(data), total)
    return data


def request_with_lines(websocket, host, count):
    """The ordinary head plus `count` header lines of 1 KiB each."""
    lines = head_lines(websocket, host) + [pad_line(i, LINE) for i in range(count)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def pieces(data, mode):
    if mode == "one segment":
        return [data]
    if mode == "line by line":
        parts = data.split(b"\r\n")
        return [part + b"\r\n" for part in parts[:-1]]
    if mode == "odd chunks":
        return [data[i : i + 700] for i in range(0, len(data), 700)]
    if mode == "byte by byte":
        return [data[i : i + 1] for i in range(len(data))]
    raise ValueError(mode)


class HeaderLimitTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        from test_tunnel import start_stack  # noqa: E402 - shares the stack helper

        def routes(port):
            return {"ws": echo_route_spec(port, "/ws"),
                    "plain": echo_route_spec(port, "/status", websocketOnly=False)}

        cls.echo, cls.routes_dir, cls.proxy = start_stack(cls, routes)
        wait_until(lambda: harness.http_get(cls.proxy.admin_port, "/readyz").status == 200,
                   what="proxy ready")

    def host(self):
        return f"{harness.LOCALHOST}:{self.proxy.port}"

    def send(self, data, mode):
        """Sends `data` as `mode` says on a new connection; returns (socket, reader). The proxy
        may answer and close before the last piece is sent: a failed send ends the sending."""
        sock = connect(self.proxy.port)
        self.addCleanup(sock.close)
        for piece in pieces(data, mode):
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        return sock, SocketReader(sock, timeout=10)

    def assert_431(self, data, mode):
        _, reader = self.send(data, mode)
        response = read_response(reader)
        self.assertEqual(response.status, 431, f"{len(data)} header bytes sent {mode}: {response}")
        self.assertEqual(response.headers.get("connection"), "close")
        self.assertIn(b"larger than the limit", response.body)
        self.assertTrue(reader.wait_closed(timeout=5), "the connection stayed open after 431")

    def assert_accepted(self, data, mode, websocket):
        _, reader = self.send(data, mode)
        response = read_response(reader)
        if websocket:
            self.assertEqual(response.status, 101, f"{len(data)} header bytes sent {mode}")
            # The tunnel works: the echo backend answers through it.
            reader.sock.sendall(frame_bytes(OP_TEXT, b"after the headers"))
            echoed = reader.read_exact(2 + len(b"after the headers"))
            self.assertEqual(echoed[2:], b"after the headers")
        else:
            self.assertEqual(response.status, 200, f"{len(data)} header bytes sent {mode}")

    # ----------------------------------------------------------------------------------------

    def test_twenty_lines_of_1_kib_get_431(self):
        for websocket in (True, False):
            data = request_with_lines(websocket, self.host(), 20)
            self.assertGreater(len(data), 20 * LINE)
            for mode in ("one segment", "line by line", "odd chunks"):
                with self.subTest(websocket=websocket, mode=mode):
                    self.assert_431(data, mode)

    def test_one_byte_over_the_limit_gets_431_however_it_arrives(self):
        for websocket in (True, False):
            data = request_of_size(websocket, self.host(), LIMIT + 1)
            for mode in ("one segment", "line by line", "odd chunks", "byte by byte"):
                with self.subTest(websocket=websocket, mode=mode):
                    self.assert_431(data, mode)

    def test_exactly_the_limit_is_accepted_however_it_arrives(self):
        for websocket in (True, False):
            for mode in ("one segment", "line by line", "odd chunks", "byte by byte"):
                with self.subTest(websocket=websocket, mode=mode):
                    self.assert_accepted(request_of_size(websocket, self.host(), LIMIT), mode,
                                         websocket)

    def test_a_single_17_kib_header_gets_431(self):
        for websocket in (True, False):
            lines = head_lines(websocket, self.host()) + ["X-Big: " + "b" * (17 * 1024)]
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            for mode in ("one segment", "odd chunks"):
                with self.subTest(websocket=websocket, mode=mode):
                    self.assert_431(data, mode)

    def test_the_limit_is_per_request_on_a_keep_alive_connection(self):
        # Two plain requests of 12 KiB each on one connection: each is under the limit.
        data = request_of_size(False, self.host(), 12 * 1024)
        sock = connect(self.proxy.port)
        self.addCleanup(sock.close)
        reader = SocketReader(sock)
        for _ in range(2):
            sock.sendall(data)
            self.assertEqual(read_response(reader).status, 200)
        # And a third one over it still gets 431 on the same connection.
        sock.sendall(request_of_size(False, self.host(), LIMIT + 1))
        self.assertEqual(read_response(reader).status, 431)


if __name__ == "__main__":
    harness.main()
