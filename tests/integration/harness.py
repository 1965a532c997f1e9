"""Integration-test harness: real processes and raw sockets on 127.0.0.1, python3 stdlib only.

Binaries come from WSGATE_BIN_DIR (default <repo>/build/bin), the source tree from
WSGATE_SOURCE_DIR (default: two levels above this file). Every wait here is bounded.

Pieces:
  Process                      a started binary with its log captured line by line
  start_echo_backend()         wsgate-echo-backend on a free port (.port)
  start_proxy(routes_dir)      wsgate-proxy on free ports (.port, .admin_port)
  write_route()/remove_route() route YAML files as SPEC.md describes them
  wait_until()                 poll a predicate with a deadline
  raw_request()/upgrade_request()/SocketReader   byte-level HTTP
  RawWebSocket                 a minimal RFC 6455 client with byte-level control
  metrics()/promtool_check()   the admin endpoint's Prometheus text
  HarnessTestCase              unittest base: owns processes and temp dirs, dumps logs on failure
"""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import NamedTuple

SOURCE_DIR = os.path.abspath(
    os.environ.get("WSGATE_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
)
BIN_DIR = os.path.abspath(os.environ.get("WSGATE_BIN_DIR") or os.path.join(SOURCE_DIR, "build", "bin"))
LOCALHOST = "127.0.0.1"
DEFAULT_TIMEOUT = 10.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

LISTENING_RE = r"listening \((\w+)\) on (\S+):(\d+)"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def binary(name):
    """Absolute path of a built binary; fails the test with a clear message if it is missing."""
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"binary {path} not found: build it first (WSGATE_BIN_DIR={BIN_DIR})")
    return path


def pattern_bytes(count, first_index=0):
    """The echo backend's "bytes:<n>" and /stream/<n> content: byte i is i % 251."""
    block = bytes(range(251))
    start = first_index % 251
    out = (block[start:] + block * (count // 251 + 2))[:count]
    return out


# --------------------------------------------------------------------------------------------
# Processes


class Process:
    """A started binary whose stdout+stderr lines are collected by a reader thread."""

    def __init__(self, args, name=None, env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self._lines = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C in the terminal goes to the test, not the child
        )
        self._reader = threading.Thread(target=self._read, name=f"log-{self.name}", daemon=True)
        self._reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.poll()

    def running(self):
        return self.proc.poll() is None

    def lines(self):
        with self._cond:
            return list(self._lines)

    def log_text(self):
        return "\n".join(self.lines())

    def mark(self):
        """The number of lines so far: pass as `since` to wait only for newer lines."""
        with self._cond:
            return len(self._lines)

    def wait_for_log(self, regex, timeout=DEFAULT_TIMEOUT, since=0):
        """The first match of `regex` in a line at index >= since; AssertionError on timeout."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self._lines):
                    match = pattern.search(self._lines[index])
                    index += 1
                    if match:
                        return match
                if self._eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        state = "exited with %s" % self.proc.poll() if self._eof else "still running"
        raise AssertionError(
            f"{self.name}: no log line matching {regex!r} within {timeout}s ({state})\n"
            f"--- {self.name} log ---\n{self.log_text()}\n--- end ---"
        )

    def listening(self, kind, timeout=DEFAULT_TIMEOUT):
        """The port of the `listening (kind) on HOST:PORT` line."""
        match = self.wait_for_log(r"listening \(" + re.escape(kind) + r"\) on (\S+):(\d+)", timeout)
        return int(match.group(2))

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout=DEFAULT_TIMEOUT):
        """Exit code, or AssertionError if the process is still running after `timeout`."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout}s") from None
        return self._finish()

    def terminate(self, timeout=5.0):
        """SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns the exit code."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._finish()

    def kill(self):
        if self.running():
            self.proc.kill()
        return self._finish()

    def _finish(self):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # cannot happen after SIGKILL, but stay bounded
            code = None
        self._reader.join(timeout=2)
        if not self._reader.is_alive():
            self.proc.stdout.close()
        return code

    def dump(self, out=None):
        out = out or sys.stderr
        out.write(f"\n--- {self.name} (pid {self.pid}, exit {self.proc.poll()}) log ---\n")
        out.write(self.log_text())
        out.write(f"\n--- end of {self.name} log ---\n")
        out.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.terminate()


def start_echo_backend(demo_dir=None, extra_args=(), name="echo"):
    """wsgate-echo-backend on 127.0.0.1 port 0; the returned Process has .port."""
    args = [binary("wsgate-echo-backend"), "--listen", f"{LOCALHOST}:0"]
    if demo_dir:
        args += ["--demo-dir", demo_dir]
    args += list(extra_args)
    process = Process(args, name=name)
    try:
        process.port = process.listening("echo")
    except AssertionError:
        process.kill()
        raise
    return process


def start_proxy(routes_dir, extra_args=(), name="proxy", default_listeners=True):
    """wsgate-proxy --routes DIR on free ports; the Process has .port (http) and .admin_port.

    default_listeners=False leaves --listen/--admin to extra_args (then .port/.admin_port are
    read only for the listeners that log a line)."""
    args = [binary("wsgate-proxy"), "--routes", routes_dir]
    if default_listeners:
        args += ["--listen", f"{LOCALHOST}:0", "--admin", f"{LOCALHOST}:0"]
    args += list(extra_args)
    process = Process(args, name=name)
    try:
        process.port = process.listening("http") if default_listeners else None
        process.admin_port = process.listening("admin") if default_listeners else None
    except AssertionError:
        process.kill()
        raise
    return process


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, what="condition", interval=0.02):
    """Polls `predicate` until it returns a truthy value (returned); AssertionError on timeout.

    Exceptions from the predicate count as "not yet" (a server still starting) and the last one
    is reported if time runs out."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - reported below
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


# --------------------------------------------------------------------------------------------
# Route files


def _yaml_scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value, indent=0):
    """Block-style YAML for dicts, lists and scalars (enough for route documents)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            elif isinstance(item, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = to_yaml(item, indent + 2).splitlines()
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            elif isinstance(item, (dict, list)):
                lines.append(f"{pad}- {json.dumps(item)}")  # empty: {} or [] (flow style)
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))
    return "\n".join(lines)


def route_document(name, spec, namespace=None):
    """A WebSocketRoute document (dict) for `spec` (the spec: mapping)."""
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "wsgate.dev/v1alpha1",
        "kind": "WebSocketRoute",
        "metadata": metadata,
        "spec": spec,
    }


def write_route(directory, name, spec, namespace=None):
    """Writes <directory>/<name>.yaml atomically (a hidden temp file renamed into place, so a
    watcher never reads half a file). `spec` is the spec mapping, a whole document (a dict with
    "apiVersion"), a list of whole documents, or YAML text written as is. Returns the path."""
    if isinstance(spec, str):
        text = spec
    elif isinstance(spec, list):
        text = "\n---\n".join(to_yaml(doc) for doc in spec)
    elif "apiVersion" in spec:
        text = to_yaml(spec)
    else:
        text = to_yaml(route_document(name, spec, namespace))
    if not text.endswith("\n"):
        text += "\n"
    path = os.path.join(directory, f"{name}.yaml")
    temp = os.path.join(directory, f".{name}.yaml.tmp")
    with open(temp, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temp, path)
    return path


def remove_route(directory, name):
    os.remove(os.path.join(directory, f"{name}.yaml"))


def echo_route_spec(backend_port, path_prefix="/", **fields):
    """The spec of a route to one echo backend; extra SPEC fields as keyword arguments."""
    spec = {"pathPrefix": path_prefix, "backends": [{"address": f"{LOCALHOST}:{backend_port}"}]}
    spec.update(fields)
    return spec


# --------------------------------------------------------------------------------------------
# Raw HTTP


class HttpResponse(NamedTuple):
    status: int
    headers: dict  # lower-case names; repeated headers joined with ", "
    body: bytes


class SocketReader:
    """Buffered, deadline-bounded reads from a socket; bytes past a response stay buffered."""

    def __init__(self, sock, timeout=DEFAULT_TIMEOUT):
        self.sock = sock
        self.timeout = timeout
        self.buffer = b""
        self.eof = False

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("read deadline passed")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        return chunk

    def read_until(self, delimiter, timeout=None, limit=1 << 20):
        deadline = time.monotonic() + (timeout or self.timeout)
        while delimiter not in self.buffer:
            if len(self.buffer) > limit:
                raise ValueError(f"no {delimiter!r} within {limit} bytes")
            if not self._recv(deadline):
                raise ConnectionError(f"connection closed before {delimiter!r}; got {self.buffer[:200]!r}")
        end = self.buffer.index(delimiter) + len(delimiter)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def read_exact(self, count, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buffer) < count:
            if not self._recv(deadline):
                raise ConnectionError(f"connection closed after {len(self.buffer)} of {count} bytes")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_until_close(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            self._recv(deadline)
        data, self.buffer = self.buffer, b""
        return data

    def wait_closed(self, timeout=None):
        """True if the peer closes (EOF or reset) within the timeout; data read meanwhile is kept."""
        try:
            self.read_until_close(timeout)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            pass
        return True


def parse_headers(block):
    """(status, reason, headers) from a response head ending in CRLFCRLF."""
    text = block.decode("latin-1")
    lines = text.split("\r\n")
    match = re.match(r"HTTP/(\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not match:
        raise ValueError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(match.group(2)), match.group(3) or "", headers


def read_response(reader, method="GET", timeout=None, chunk_sizes=None):
    """Reads one response from a SocketReader. For 101 the body is empty and the bytes after
    the head stay in reader.buffer. `chunk_sizes`, if a list, receives each chunk's size."""
    head = reader.read_until(b"\r\n\r\n", timeout)
    status, _, headers = parse_headers(head)
    if status == 101 or 100 <= status < 200 or status in (204, 304) or method == "HEAD":
        return HttpResponse(status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = reader.read_until(b"\r\n", timeout)
            size = int(size_line.split(b";")[0].strip(), 16)
            if chunk_sizes is not None and size:
                chunk_sizes.append(size)
            if size == 0:
                while reader.read_until(b"\r\n", timeout) != b"\r\n":  # trailers
                    pass
                break
            body += reader.read_exact(size, timeout)
            reader.read_exact(2, timeout)
        return HttpResponse(status, headers, body)
    if "content-length" in headers:
        return HttpResponse(status, headers, reader.read_exact(int(headers["content-length"]), timeout))
    return HttpResponse(status, headers, reader.read_until_close(timeout))


def connect(port, timeout=DEFAULT_TIMEOUT, host=LOCALHOST):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def raw_request(port, data, timeout=DEFAULT_TIMEOUT, method=None):
    """Sends raw request bytes on a new connection and parses one response."""
    if method is None:
        method = data.split(b" ", 1)[0].decode("latin-1")
    with connect(port, timeout) as sock:
        sock.sendall(data)
        return read_response(SocketReader(sock, timeout), method, timeout)


def request_bytes(method, path, host="localhost", headers=None, body=b"", http_version="1.1"):
    """A request as bytes; Content-Length is added for a body unless a framing header is given."""
    headers = list(headers.items() if isinstance(headers, dict) else (headers or []))
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/{http_version}"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_get(port, path, host="localhost", headers=None, timeout=DEFAULT_TIMEOUT):
    return raw_request(port, request_bytes("GET", path, host, headers), timeout)


def chunked_body(data, chunk_size=1000):
    out = b""
    for i in range(0, len(data), chunk_size):
        piece = data[i : i + chunk_size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def make_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")


def upgrade_request(host, path="/", extra_headers=None, omit=(), key=None, method="GET",
                    http_version="1.1", version="13"):
    """A valid WebSocket upgrade request as bytes, with a random Sec-WebSocket-Key unless `key`
    is given. `extra_headers` (dict or list of pairs) are appended; `omit` names (any case)
    default headers to leave out; a name in both replaces the default."""
    extra = list(extra_headers.items() if isinstance(extra_headers, dict) else (extra_headers or []))
    skip = {name.lower() for name in omit} | {name.lower() for name, _ in extra}
    defaults = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key or make_key()),
        ("Sec-WebSocket-Version", version),
    ]
    lines = [f"{method} {path} HTTP/{http_version}"]
    lines += [f"{name}: {value}" for name, value in defaults if name.lower() not in skip and value is not None]
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def request_key(request):
    match = re.search(rb"\r\nSec-WebSocket-Key: *([^\r]*)\r\n", request, re.IGNORECASE)
    return match.group(1).decode("latin-1") if match else None


# --------------------------------------------------------------------------------------------
# A minimal RFC 6455 client


def frame_bytes(opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None):
    """One frame on the wire. `length_override` puts a different length in the header (for
    tests of lying or oversized frames)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    length = len(payload) if length_override is None else length_override
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _apply_mask(payload, key)


def _apply_mask(payload, key):
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def close_payload(code=None, reason=""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


class Frame(NamedTuple):
    fin: bool
    opcode: int
    payload: bytes
    rsv: int = 0
    masked: bool = False

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self):
        return self.payload[2:].decode("utf-8", "replace")

    @property
    def text(self):
        return self.payload.decode("utf-8")


class HandshakeError(AssertionError):
    def __init__(self, response, message):
        super().__init__(f"{message}: {response.status} {response.headers} {response.body[:200]!r}")
        self.response = response


class RawWebSocket:
    """A WebSocket client over a plain socket, for tests that need byte-level control.

    ws = RawWebSocket(port, "/echo")            # connects and completes the handshake
    ws.send_frame(OP_TEXT, b"he", fin=False); ws.send_frame(OP_CONTINUATION, b"llo")
    frame = ws.recv_frame()                      # Frame(fin, opcode, payload, ...)
    code, reason = ws.close(1000, "bye")         # the peer's close frame
    """

    def __init__(self, port, path="/", host=None, extra_headers=None, omit=(), early_data=b"",
                 timeout=DEFAULT_TIMEOUT, handshake=True, request=None):
        self.timeout = timeout
        self.sock = connect(port, timeout)
        self.reader = SocketReader(self.sock, timeout)
        self.response = None
        self.request = request or upgrade_request(host or f"{LOCALHOST}:{port}", path, extra_headers, omit)
        if handshake:
            try:
                self.handshake(early_data)
            except BaseException:
                self.sock.close()
                raise

    def handshake(self, early_data=b""):
        """Sends the request (and `early_data` in the same send) and checks the 101 answer."""
        self.sock.sendall(self.request + early_data)
        self.response = read_response(self.reader, "GET", self.timeout)
        if self.response.status != 101:
            raise HandshakeError(self.response, "expected 101")
        expected = accept_for(request_key(self.request))
        if self.response.headers.get("sec-websocket-accept") != expected:
            raise HandshakeError(self.response, f"bad Sec-WebSocket-Accept (want {expected})")
        return self.response

    @property
    def subprotocol(self):
        return self.response.headers.get("sec-websocket-protocol") if self.response else None

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.sock.sendall(frame_bytes(opcode, payload, fin, mask, rsv))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_fragmented(self, opcode, payload, pieces):
        """One message split into `pieces` frames (the first carries the opcode)."""
        size = max(1, -(-len(payload) // pieces))
        parts = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        for index, part in enumerate(parts):
            self.send_frame(opcode if index == 0 else OP_CONTINUATION, part, fin=index == len(parts) - 1)

    def recv_frame(self, timeout=None):
        timeout = timeout or self.timeout
        first, second = self.reader.read_exact(2, timeout)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.reader.read_exact(2, timeout))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.reader.read_exact(8, timeout))[0]
        masked = bool(second & 0x80)
        key = self.reader.read_exact(4, timeout) if masked else b""
        payload = self.reader.read_exact(length, timeout)
        if masked:
            payload = _apply_mask(payload, key)
        return Frame(bool(first & 0x80), first & 0xF, payload, (first >> 4) & 0x7, masked)

    def recv_message(self, timeout=None, answer_pings=True):
        """The next data message (opcode, payload), fragments joined; a close frame is
        returned as (OP_CLOSE, payload). Pings are answered unless answer_pings is False."""
        deadline = time.monotonic() + (timeout or self.timeout)
        opcode, data = None, b""
        while True:
            frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode == OP_PING:
                if answer_pings:
                    self.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                return OP_CLOSE, frame.payload
            if opcode is None:
                opcode = frame.opcode
            data += frame.payload
            if frame.fin:
                return opcode, data

    def close(self, code=1000, reason="", timeout=None):
        """Sends a close frame and returns the peer's (code, reason); data frames that arrive
        first are skipped. Then waits (bounded) for the TCP close."""
        self.send_frame(OP_CLOSE, close_payload(code, reason))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode == OP_CLOSE:
                break
        self.reader.wait_closed(max(0.01, deadline - time.monotonic()))
        self.sock.close()
        return frame.close_code, frame.close_reason

    def wait_closed(self, timeout=None):
        return self.reader.wait_closed(timeout or self.timeout)

    def abort(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


# --------------------------------------------------------------------------------------------
# Metrics


def metrics_text(admin_port, timeout=DEFAULT_TIMEOUT):
    response = http_get(admin_port, "/metrics", timeout=timeout)
    if response.status != 200:
        raise AssertionError(f"/metrics answered {response.status}: {response.body[:200]!r}")
    return response.body.decode("utf-8")


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape_label(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from Prometheus text exposition."""
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            raise ValueError(f"unparsable metrics line: {line!r}")
        name, label_text, value = match.groups()
        labels = {}
        position = 0
        label_text = label_text or ""
        while position < len(label_text.strip()):
            label = _LABEL_RE.match(label_text, position)
            if not label:
                raise ValueError(f"bad labels in {line!r}")
            labels[label.group(1)] = _unescape_label(label.group(2))
            position = label.end()
        samples[(name, frozenset(labels.items()))] = float(value)
    return samples


def metrics(admin_port, timeout=DEFAULT_TIMEOUT):
    return parse_metrics(metrics_text(admin_port, timeout))


def metric(samples, name, default=0.0, **labels):
    """The value of the sample with exactly these labels, or `default`."""
    return samples.get((name, frozenset(labels.items())), default)


def metric_sum(samples, name, **labels):
    """Sum over samples of `name` whose labels include the given ones."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def promtool_check(text, timeout=30):
    """(exit code, output) of `promtool check metrics` on `text`."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise AssertionError("promtool not installed (scripts/install-deps.sh test)")
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode("utf-8"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return result.returncode, result.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# unittest glue


def run_async(coroutine, timeout=DEFAULT_TIMEOUT):
    """Runs a coroutine (python3-websockets tests) with an overall deadline."""
    import asyncio

    return asyncio.run(asyncio.wait_for(coroutine, timeout))


class HarnessTestCase(unittest.TestCase):
    """Processes and temp dirs started through these methods are stopped and removed after
    each test; their logs are printed when the test failed (or WSGATE_TEST_VERBOSE=1)."""

    _class_processes = ()

    def setUp(self):
        super().setUp()
        self.addCleanup(self._dump_class_processes)

    @classmethod
    def start_class_process(cls, process):
        """Keeps a process for the whole class (started in setUpClass): stopped after the last
        test, its log printed after any failed test."""
        cls._class_processes = tuple(cls._class_processes) + (process,)
        cls.addClassCleanup(process.terminate)
        return process

    def _failed(self):
        # The result already holds this test's error or failure when cleanups run (the
        # outcome's own flag is reset for each cleanup, so it cannot be used).
        result = getattr(getattr(self, "_outcome", None), "result", None)
        problems = list(getattr(result, "errors", [])) + list(getattr(result, "failures", []))
        failed = any(test is self for test, _ in problems)
        return failed or os.environ.get("WSGATE_TEST_VERBOSE") == "1"

    def _dump_class_processes(self):
        if self._failed():
            for process in self._class_processes:
                process.dump()

    def _own(self, process):
        self.addCleanup(self._stop_process, process)
        return process

    def _stop_process(self, process):
        process.terminate()
        if self._failed():
            process.dump()

    def start_process(self, args, name=None, env=None, cwd=None):
        return self._own(Process(args, name, env, cwd))

    def start_echo_backend(self, demo_dir=None, extra_args=(), name="echo"):
        return self._own(start_echo_backend(demo_dir, extra_args, name))

    def start_proxy(self, routes_dir, extra_args=(), name="proxy", default_listeners=True):
        return self._own(start_proxy(routes_dir, extra_args, name, default_listeners))

    def make_temp_dir(self, prefix="wsgate-test-"):
        path = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, path, True)
        return path


def main():
    unittest.main(verbosity=2)
