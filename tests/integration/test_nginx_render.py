"""`wsgate-controller render nginx` on a real nginx: the output passes `nginx -t`, and WebSocket
echo, 426, 403, 400, host routing, forwarded headers and upstream keep-alive behave through that
nginx as the routes say. With --watch --nginx-pid, a route change re-renders and reloads nginx."""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    LOCALHOST,
    OP_TEXT,
    HarnessTestCase,
    HandshakeError,
    Process,
    RawWebSocket,
    binary,
    echo_route_spec,
    http_get,
    main,
    raw_request,
    request_bytes,
    start_echo_backend,
    upgrade_request,
    wait_until,
    write_route,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    """A port nothing listens on right now (nginx cannot report a port-0 choice)."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def make_ca(directory):
    """A throwaway CA certificate (nginx -t loads proxy_ssl_trusted_certificate)."""
    path = os.path.join(directory, "ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", os.path.join(directory, "ca.key"), "-out", path, "-days", "2",
                    "-subj", "/CN=wsgate-test-ca"], check=True, capture_output=True, timeout=30)
    return path


class Nginx:
    """nginx under a private prefix: its own nginx.conf including the rendered file, pid and
    temp paths in a temporary directory, logs on stderr (captured), listening on 127.0.0.1."""

    def __init__(self, directory, include):
        self.dir = directory
        self.conf = os.path.join(directory, "nginx.conf")
        self.pid_file = os.path.join(directory, "nginx.pid")
        temp = os.path.join(directory, "temp")
        os.makedirs(temp, exist_ok=True)
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        with open(self.conf, "w", encoding="utf-8") as out:
            out.write(f"""{user}worker_processes 1;
pid {self.pid_file};
error_log stderr info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {include};
}}
""")
        self.process = None

    def check(self):
        """(exit code, output) of nginx -t."""
        result = subprocess.run([NGINX, "-t", "-p", self.dir, "-c", self.conf], capture_output=True, timeout=30)
        return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")

    def start(self, port):
        self.process = Process([NGINX, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"], name="nginx")
        wait_until(lambda: socket.create_connection((LOCALHOST, port), timeout=1).close() or True, 10,
                   "nginx to listen")
        wait_until(lambda: os.path.exists(self.pid_file), 10, "nginx to write its pid file")
        return self.process


def render(routes, out, port, extra=()):
    result = subprocess.run([binary("wsgate-controller"), "render", "nginx", "--routes", routes, "--out", out,
                             "--listen", f"{LOCALHOST}:{port}"] + list(extra), capture_output=True, timeout=30)
    return result.returncode, result.stderr.decode("utf-8", "replace")


class NginxRenderTest(HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.realpath(tempfile.mkdtemp(prefix="wsgate-nginx-"))
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.echo = cls.start_class_process(start_echo_backend(name="echo-a"))
        cls.echo_b = cls.start_class_process(start_echo_backend(name="echo-b"))
        routes = os.path.join(cls.dir, "routes")
        os.makedirs(routes)
        a, b = cls.echo.port, cls.echo_b.port
        write_route(routes, "echo", echo_route_spec(a, "/echo", idleTimeoutSeconds=30))
        write_route(routes, "web", echo_route_spec(a, "/headers", websocketOnly=False))
        write_route(routes, "origin", echo_route_spec(a, "/origin", allowedOrigins=["https://good.example"]))
        write_route(routes, "proto", echo_route_spec(a, "/proto", subprotocols=["chat.v1"]))
        write_route(routes, "weighted", {"pathPrefix": "/weighted", "backends": [
            {"address": f"127.0.0.1:{a}", "weight": 3}, {"address": f"127.0.0.1:{b}", "weight": 1}]})
        # The same prefix for one host goes to a backend that is down: nginx answers 502 there.
        write_route(routes, "chat", {"hosts": ["chat.example.com"], "pathPrefix": "/echo",
                                     "backends": [{"address": f"127.0.0.1:{free_port()}"}]})
        write_route(routes, "secure", {"pathPrefix": "/secure", "backends": [
            {"address": f"127.0.0.1:{b}", "tls": True, "caFile": make_ca(cls.dir), "serverName": "backend.internal"}]})
        cls.port = free_port()
        cls.include = os.path.join(cls.dir, "wsgate.conf")
        code, log = render(routes, cls.include, cls.port)
        assert code == 0, log
        cls.nginx = Nginx(cls.dir, cls.include)
        cls.check_result = cls.nginx.check()
        if cls.check_result[0] == 0:
            cls.start_class_process(cls.nginx.start(cls.port))

    def setUp(self):
        super().setUp()
        self.assertEqual(self.check_result[0], 0, self.check_result[1])

    def upgrade(self, path, host=None, **kwargs):
        return raw_request(self.port, upgrade_request(host or f"{LOCALHOST}:{self.port}", path, **kwargs))

    def echo_through(self, path, headers=None, host=None):
        with RawWebSocket(self.port, path, host=host, extra_headers=headers) as ws:
            ws.send_text("hello " + path)
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"hello " + path.encode()))

    def test_nginx_accepts_the_rendered_configuration(self):
        code, output = self.check_result
        self.assertEqual(code, 0, output)
        self.assertIn("test is successful", output)
        with open(self.include, encoding="utf-8") as rendered:
            text = rendered.read()
        self.assertIn("map $http_upgrade $wsgate_connection_upgrade", text)
        self.assertIn("proxy_ssl_name \"backend.internal\";", text)

    def test_websocket_echo(self):
        self.echo_through("/echo")
        self.echo_through("/weighted")
        self.echo_through("/proto", headers={"Sec-WebSocket-Protocol": "chat.v1"})

    def test_websocket_only_route_answers_426_to_plain_requests(self):
        response = http_get(self.port, "/echo", host="localhost")
        self.assertEqual(response.status, 426)
        self.assertEqual(response.headers.get("upgrade"), "websocket")

    def test_allowed_origins(self):
        self.echo_through("/origin", headers={"Origin": "https://good.example"})
        self.echo_through("/origin", headers={"Origin": "HTTPS://GOOD.EXAMPLE"})
        self.assertEqual(self.upgrade("/origin", extra_headers={"Origin": "https://evil.example"}).status, 403)
        self.assertEqual(self.upgrade("/origin").status, 403)  # no Origin at all

    def test_broken_handshakes_as_wsgate_answers_them(self):
        self.assertEqual(self.upgrade("/echo", key="not-a-key").status, 400)
        self.assertEqual(self.upgrade("/echo", omit=("Connection",)).status, 400)
        self.assertEqual(self.upgrade("/echo", method="POST").status, 400)
        response = self.upgrade("/echo", version="8")
        self.assertEqual(response.status, 426)
        self.assertEqual(response.headers.get("sec-websocket-version"), "13")
        self.assertEqual(self.upgrade("/proto").status, 400)  # required subprotocol not offered
        self.assertEqual(self.upgrade("/nowhere").status, 404)

    def test_hosts_become_server_blocks(self):
        self.assertEqual(self.upgrade("/echo", host="chat.example.com").status, 502)
        self.echo_through("/echo", host="other.example.com")

    def test_plain_requests_get_forwarded_headers_and_keep_alive(self):
        response = raw_request(self.port, request_bytes("GET", "/headers", host=f"app.example:{self.port}",
                                                        headers={"X-Forwarded-For": "10.1.2.3"}))
        self.assertEqual(response.status, 200)
        seen = json.loads(response.body)
        headers = seen["headers"]
        self.assertEqual(seen["version"], "1.1")
        self.assertEqual(headers["host"], f"app.example:{self.port}")
        self.assertEqual(headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1")
        self.assertEqual(headers["x-forwarded-proto"], "http")
        self.assertEqual(headers["x-forwarded-host"], f"app.example:{self.port}")
        # No "Connection: close" to the backend: the upstream connection can be kept.
        self.assertNotIn("close", headers.get("connection", ""))
        self.assertNotIn("upgrade", headers)

    def test_upgrade_reaches_the_backend_with_upgrade_headers(self):
        with RawWebSocket(self.port, "/echo") as ws:
            ws.send_text("headers")
            _, body = ws.recv_message()
        headers = json.loads(body)["headers"]
        self.assertEqual(headers["upgrade"].lower(), "websocket")
        self.assertEqual(headers["connection"].lower(), "upgrade")
        self.assertEqual(headers["x-forwarded-proto"], "http")


class NginxWatchTest(HarnessTestCase):
    def test_route_change_rerenders_and_reloads_nginx(self):
        directory = self.make_temp_dir("wsgate-nginx-watch-")
        routes = os.path.join(directory, "routes")
        os.makedirs(routes)
        echo = self.start_echo_backend()
        write_route(routes, "echo", echo_route_spec(echo.port, "/echo"))
        port = free_port()
        include = os.path.join(directory, "wsgate.conf")
        nginx = Nginx(directory, include)
        watcher = self.start_process([binary("wsgate-controller"), "render", "nginx", "--routes", routes,
                                      "--out", include, "--listen", f"{LOCALHOST}:{port}", "--watch",
                                      "--nginx-pid", nginx.pid_file], name="render-watch")
        watcher.wait_for_log(r"wrote .*wsgate\.conf for routes version")
        code, output = nginx.check()
        self.assertEqual(code, 0, output)
        self._own(nginx.start(port))
        status = lambda path: raw_request(port, upgrade_request(f"{LOCALHOST}:{port}", path)).status  # noqa: E731
        self.assertEqual(status("/echo"), 101)
        self.assertEqual(status("/new"), 404)

        mark = watcher.mark()
        write_route(routes, "new", echo_route_spec(echo.port, "/new"))
        watcher.wait_for_log(r"nginx \(pid \d+\) told to reload", since=mark)
        wait_until(lambda: status("/new") == 101, 15, "nginx to serve the new route")

        # An invalid change keeps the file (and nginx) as they are.
        with open(include, encoding="utf-8") as current:
            before = current.read()
        mark = watcher.mark()
        write_route(routes, "bad", {"pathPrefix": "/bad", "backends": [{"address": "nowhere"}]})
        watcher.wait_for_log(r"route update rejected, keeping .*bad\.yaml: route default/bad", since=mark)
        with open(include, encoding="utf-8") as current:
            self.assertEqual(current.read(), before)
        self.assertEqual(status("/new"), 101)
        try:
            RawWebSocket(port, "/bad").abort()
            self.fail("/bad must not be served")
        except HandshakeError as error:
            self.assertEqual(error.response.status, 404)


if __name__ == "__main__":
    main()
