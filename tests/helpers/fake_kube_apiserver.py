"""A small Kubernetes API server for WebSocketRoute custom resources (python3 stdlib only).

It speaks the wire protocol of kube-apiserver for one namespaced custom resource, as the API
conventions describe it, so the controller's Kubernetes source can be tested without a cluster:

  GET   /apis/wsgate.dev/v1alpha1/websocketroutes                     list, all namespaces
  GET   /apis/wsgate.dev/v1alpha1/namespaces/NS/websocketroutes       list, one namespace
        ?limit=N&continue=TOKEN   pages (a token older than the compaction point answers 410)
        ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N
              200 with a chunked stream of {"type":..,"object":..}\n events (ADDED, MODIFIED,
              DELETED, BOOKMARK, ERROR); an RV older than the compaction point answers 410 (as
              an HTTP status or as an ERROR event, as the test chooses)
  PUT   .../namespaces/NS/websocketroutes/NAME/status                 optimistic (409 on a
        stale metadata.resourceVersion); only .status is taken
  PATCH .../namespaces/NS/websocketroutes/NAME/status                 application/merge-patch+json
        status writes are checked against the CRD's condition schema (422 when invalid)

HTTPS with a certificate from a test CA (test_pki.TestPki), bearer tokens
checked (and client certificates, when a client CA is given), errors as v1 Status objects.
Watch bodies are written in small chunks that cut events mid-line, as proxies may.

The test side changes the store (create/update/delete, with or without watch events), sends
bookmarks, compacts history (410), drops connections, makes watches fail, and reads back every
request and status write.
"""

import base64
import copy
import datetime
import http.server
import json
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

GROUP_VERSION = "wsgate.dev/v1alpha1"
KIND = "WebSocketRoute"
RESOURCE = "websocketroutes"
PREFIX = "/apis/" + GROUP_VERSION
_PATH_RE = re.compile(
    r"^" + re.escape(PREFIX) + r"(?:/namespaces/(?P<ns>[^/]+))?/" + RESOURCE +
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>status))?)?$")
# From the CRD's status.conditions item schema.
_REASON_RE = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")


# --------------------------------------------------------------------------------------------
# Wire helpers


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code, reason, message):
    """A v1 Status, the body of every error answer and of an ERROR watch event."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_status_schema(status):
    """The CRD's status schema; returns the first violation, or None."""
    if not isinstance(status, dict):
        return "status: expected an object"
    for key in status:
        if key not in ("observedGeneration", "conditions"):
            return f"status.{key}: unknown field"
    generation = status.get("observedGeneration")
    if generation is not None and (not isinstance(generation, int) or generation < 0):
        return "status.observedGeneration: expected a non-negative integer"
    conditions = status.get("conditions", [])
    if not isinstance(conditions, list):
        return "status.conditions: expected a list"
    seen = set()
    for index, condition in enumerate(conditions):
        where = f"status.conditions[{index}]"
        if not isinstance(condition, dict):
            return f"{where}: expected an object"
        for field in _CONDITION_FIELDS:
            if field not in condition:
                return f"{where}.{field}: Required value"
        if condition["type"] in seen:
            return f"{where}.type: Duplicate value"
        seen.add(condition["type"])
        if condition["status"] not in ("True", "False", "Unknown"):
            return f"{where}.status: Unsupported value"
        if not isinstance(condition["reason"], str) or not _REASON_RE.match(condition["reason"]):
            return f"{where}.reason: does not match the pattern"
        if not isinstance(condition["message"], str) or len(condition["message"]) > 32768:
            return f"{where}.message: expected a string of at most 32768 characters"
        if not isinstance(condition["lastTransitionTime"], str) or \
                not _TIME_RE.match(condition["lastTransitionTime"]):
            return f"{where}.lastTransitionTime: expected an RFC 3339 date-time"
        observed = condition.get("observedGeneration")
        if observed is not None and (not isinstance(observed, int) or observed < 0):
            return f"{where}.observedGeneration: expected a non-negative integer"
    return None


class _Watcher:
    def __init__(self, handler, namespace, bookmarks, cursor):
        self.handler = handler
        self.namespace = namespace
        self.bookmarks = bookmarks
        self.cursor = cursor
        self.bookmark_rv = None
        self.bookmark_sent = None
        self.error_410 = False
        self.kill = False


# --------------------------------------------------------------------------------------------
# The server


class FakeKubeApiServer:
    """Start with start(); `port` and `url` are then set. Every method is thread-safe."""

    def __init__(self, pki=None, tokens=("test-token",), client_ca=None, chunk_size=97):
        self.pki = pki
        self.tokens = set(tokens)
        self.client_ca = client_ca
        self.chunk_size = chunk_size
        self.watch_gone_mode = "event"  # how a too-old watch RV is answered: "event" or "http"
        self._cond = threading.Condition()
        self._rv = 1000
        self._compacted = 0
        self._objects = {}  # (namespace, name) -> object
        self._events = []  # (rv, type, object)
        self._watchers = set()
        self._snapshots = {}  # list snapshots for continue tokens
        self._fail_watches = 0
        self._stopping = False
        self.requests = []
        self.status_writes = []
        self._httpd = None
        self._thread = None
        self.port = None
        self.url = None

    # ----- lifecycle

    def start(self):
        api = self

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            ssl_context = None

            def handle_error(self, request, client_address):
                # A client gone mid-answer (a probe stopped, a cut connection) is expected.
                if isinstance(sys.exc_info()[1], (OSError, ValueError)):
                    return
                super().handle_error(request, client_address)

            def finish_request(self, request, client_address):
                # The TLS handshake runs here, in the connection's own thread.
                if self.ssl_context is not None:
                    try:
                        request = self.ssl_context.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                try:
                    self.RequestHandlerClass(request, client_address, self)
                finally:
                    if self.ssl_context is not None:
                        request.close()

        class Handler(_Handler):
            server_api = api

        self._httpd = Server(("127.0.0.1", 0), Handler)
        if self.pki is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
            if self.client_ca:
                context.load_verify_locations(self.client_ca)
                context.verify_mode = ssl.CERT_OPTIONAL
            self._httpd.ssl_context = context
        self.port = self._httpd.server_address[1]
        self.url = f"{'https' if self.pki else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        with self._cond:
            self._stopping = True
            for watcher in self._watchers:
                watcher.kill = True
            self._cond.notify_all()
        self.drop_connections()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    # ----- the store (test side)

    def _bump(self):
        self._rv += 1
        return self._rv

    def _record(self, kind, obj, notify):
        if notify:
            self._events.append((int(obj["metadata"]["resourceVersion"]), kind, copy.deepcopy(obj)))
        self._cond.notify_all()

    def create(self, namespace, name, spec, notify=True, raw=None):
        """Adds an object (ADDED); `raw` overrides top-level fields (for broken objects)."""
        with self._cond:
            obj = {
                "apiVersion": GROUP_VERSION, "kind": KIND,
                "metadata": {
                    "name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                    "resourceVersion": str(self._bump()), "generation": 1,
                    "creationTimestamp": _now(),
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                    json.dumps({"spec": spec})},
                    "managedFields": [{"manager": "kubectl", "operation": "Update",
                                       "apiVersion": GROUP_VERSION, "time": _now(),
                                       "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
                },
                "spec": spec,
            }
            if raw:
                obj.update(raw)
            self._objects[(namespace, name)] = obj
            self._record("ADDED", obj, notify)
            return copy.deepcopy(obj)

    def update(self, namespace, name, spec, notify=True):
        """Replaces the spec (MODIFIED); the generation moves when the spec changes."""
        with self._cond:
            obj = self._objects[(namespace, name)]
            if obj.get("spec") != spec:
                obj["metadata"]["generation"] += 1
            obj["spec"] = spec
            obj["metadata"]["resourceVersion"] = str(self._bump())
            self._record("MODIFIED", obj, notify)
            return copy.deepcopy(obj)

    def delete(self, namespace, name, notify=True):
        with self._cond:
            obj = self._objects.pop((namespace, name))
            obj["metadata"]["resourceVersion"] = str(self._bump())
            self._record("DELETED", obj, notify)

    def get(self, namespace, name):
        with self._cond:
            obj = self._objects.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def resource_version(self):
        with self._cond:
            return str(self._rv)

    def set_status(self, namespace, name, status):
        """Replaces .status as another writer would (MODIFIED; the generation stays)."""
        with self._cond:
            obj = self._objects[(namespace, name)]
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = str(self._bump())
            self._record("MODIFIED", obj, True)

    def bookmark(self, timeout=5.0):
        """Moves the RV on (as writes elsewhere in the cluster do) and sends every watcher that
        asked for bookmarks a BOOKMARK at it; returns that RV once they are all written to
        their sockets (so a connection cut afterwards still delivers them first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            rv = self._bump()
            targets = [watcher for watcher in self._watchers if watcher.bookmarks]
            if not targets:
                raise AssertionError("no open watch asked for bookmarks")
            for watcher in targets:
                watcher.bookmark_rv = rv
            self._cond.notify_all()
            while any(watcher.bookmark_sent != rv for watcher in targets):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"bookmark {rv} not written within {timeout}s")
                self._cond.wait(remaining)
            return str(rv)

    def expire(self, mode="event", changes=None):
        """Compacts history at the current RV, after applying `changes` (a function called with
        this server, under its lock) without watch events. Open watches then get an ERROR 410
        event (mode "event") or are cut (mode "http": their resumed watch answers HTTP 410)."""
        with self._cond:
            if changes:
                changes(self)
            self._compacted = self._rv
            self.watch_gone_mode = mode
            for watcher in self._watchers:
                if mode == "event":
                    watcher.error_410 = True
                else:
                    watcher.kill = True
            self._cond.notify_all()
        if mode != "event":
            self.drop_connections()

    def fail_next_watches(self, count):
        """The next `count` watch requests answer 500 at once."""
        with self._cond:
            self._fail_watches = count

    def drop_connections(self):
        """Cuts every open watch stream mid-flight (no terminating chunk)."""
        with self._cond:
            watchers = list(self._watchers)
            for watcher in watchers:
                watcher.kill = True
            self._cond.notify_all()
        for watcher in watchers:
            try:
                watcher.handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def watch_count(self):
        with self._cond:
            return len(self._watchers)

    # ----- what the client did

    def requests_matching(self, method=None, watch=None):
        with self._cond:
            out = []
            for request in self.requests:
                if method and request["method"] != method:
                    continue
                is_watch = request["query"].get("watch") in ("1", "true")
                if watch is not None and is_watch != watch:
                    continue
                out.append(dict(request))
            return out

    def writes(self):
        with self._cond:
            return [dict(write) for write in self.status_writes]

    # ----- request handling (server side)

    def _log_request(self, handler, path, query):
        record = {"method": handler.command, "path": path, "query": query,
                  "time": time.monotonic(), "status": None,
                  "authorization": handler.headers.get("Authorization")}
        with self._cond:
            self.requests.append(record)
        return record

    def _authorized(self, handler):
        header = handler.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            return True
        if self.client_ca and isinstance(handler.connection, ssl.SSLSocket):
            return handler.connection.getpeercert() is not None
        return False

    def _items(self, namespace):
        return [copy.deepcopy(obj) for key, obj in sorted(self._objects.items())
                if namespace is None or key[0] == namespace]

    def _list(self, namespace, query):
        with self._cond:
            limit = int(query.get("limit", "0") or 0)
            token = query.get("continue")
            if token:
                try:
                    state = json.loads(base64.b64decode(token))
                    snapshot = self._snapshots[state["id"]]
                except (ValueError, KeyError):
                    return 400, status_object(400, "BadRequest", "invalid continue token")
                if state["rv"] < self._compacted:
                    return 410, status_object(
                        410, "Expired", "The provided continue parameter is too old to display "
                        "a consistent list result. You can start a new list without the "
                        "continue parameter.")
                rv, items, offset = state["rv"], snapshot, state["offset"]
            else:
                rv, items, offset = self._rv, self._items(namespace), 0
            page = items[offset:offset + limit] if limit else items[offset:]
            metadata = {"resourceVersion": str(rv)}
            if limit and offset + limit < len(items):
                snapshot_id = str(uuid.uuid4())
                self._snapshots[snapshot_id] = items
                metadata["continue"] = base64.b64encode(json.dumps(
                    {"id": snapshot_id, "rv": rv, "offset": offset + limit}).encode()).decode()
            return 200, {"apiVersion": GROUP_VERSION, "kind": KIND + "List",
                         "metadata": metadata, "items": page}

    def _write_status(self, handler, namespace, name, body):
        content_type = handler.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return 400, status_object(400, "BadRequest", "invalid JSON body")
        with self._cond:
            self.status_writes.append({"method": handler.command, "namespace": namespace,
                                       "name": name, "content_type": content_type,
                                       "body": document, "time": time.monotonic()})
            obj = self._objects.get((namespace, name))
            if obj is None:
                return 404, status_object(404, "NotFound",
                                          f'{RESOURCE}.wsgate.dev "{name}" not found')
            if handler.command == "PATCH":
                if content_type != "application/merge-patch+json":
                    return 415, status_object(415, "UnsupportedMediaType",
                                              f"the body of the request was in an unknown "
                                              f"format - accepted media types include: "
                                              f"application/merge-patch+json")
                new_status = merge_patch(obj, document).get("status")
            else:
                if not isinstance(document, dict):
                    return 400, status_object(400, "BadRequest", "expected an object")
                sent_rv = document.get("metadata", {}).get("resourceVersion")
                if sent_rv != obj["metadata"]["resourceVersion"]:
                    return 409, status_object(
                        409, "Conflict", f'Operation cannot be fulfilled on {RESOURCE}.wsgate.dev '
                        f'"{name}": the object has been modified; please apply your changes '
                        f'to the latest version and try again')
                new_status = document.get("status")
            if new_status is not None:
                problem = check_status_schema(new_status)
                if problem:
                    return 422, status_object(422, "Invalid", f'{KIND}.wsgate.dev "{name}" is '
                                              f'invalid: {problem}')
            if new_status != obj.get("status"):
                if new_status is None:
                    obj.pop("status", None)
                else:
                    obj["status"] = new_status
                obj["metadata"]["resourceVersion"] = str(self._bump())
                self._record("MODIFIED", obj, True)
            return 200, copy.deepcopy(obj)

    def _watch(self, handler, namespace, query):
        rv_text = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") == "true"
        timeout = float(query.get("timeoutSeconds", "1800") or 1800)
        deadline = time.monotonic() + timeout
        refusal = None
        with self._cond:
            initial = []
            if self._fail_watches > 0:
                self._fail_watches -= 1
                refusal = (500, status_object(500, "InternalError", "injected watch failure"))
                cursor = self._rv
            elif rv_text in ("", "0"):
                # "Any version": the current state as ADDED events, then changes.
                cursor = self._rv
                initial = [("ADDED", obj) for obj in self._items(namespace)]
            else:
                cursor = int(rv_text)
                if cursor < self._compacted:
                    message = f"too old resource version: {cursor} ({self._compacted})"
                    if self.watch_gone_mode == "http":
                        refusal = (410, status_object(410, "Gone", message))
                    initial = [("ERROR", status_object(410, "Expired", message))]
            watcher = _Watcher(handler, namespace, bookmarks, cursor)
            if refusal is None:
                self._watchers.add(watcher)
        if refusal is not None:
            return handler.send_json(*refusal)
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            if initial:
                handler.send_events(initial)
                if initial[0][0] == "ERROR":
                    return handler.end_chunks()
            while True:
                with self._cond:
                    while True:
                        events = [(kind, obj) for rv, kind, obj in self._events
                                  if rv > watcher.cursor and
                                  (namespace is None or obj["metadata"]["namespace"] == namespace)]
                        if self._events and self._events[-1][0] > watcher.cursor:
                            watcher.cursor = self._events[-1][0]
                        if (events or watcher.kill or watcher.error_410 or
                                watcher.bookmark_rv is not None or self._stopping):
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                    kill = watcher.kill or self._stopping
                    error_410 = watcher.error_410
                    bookmark_rv = watcher.bookmark_rv
                    watcher.bookmark_rv = None
                    if bookmark_rv is not None:
                        watcher.cursor = max(watcher.cursor, bookmark_rv)
                    compacted = self._compacted
                if kill:
                    return handler.abort()
                if events:
                    handler.send_events(events)
                if error_410:
                    message = f"too old resource version: {watcher.cursor} ({compacted})"
                    handler.send_events([("ERROR", status_object(410, "Expired", message))])
                    return handler.end_chunks()
                if bookmark_rv is not None:
                    handler.send_events([("BOOKMARK", {
                        "apiVersion": GROUP_VERSION, "kind": KIND,
                        "metadata": {"resourceVersion": str(bookmark_rv)}})])
                    with self._cond:
                        watcher.bookmark_sent = bookmark_rv
                        self._cond.notify_all()
                if time.monotonic() >= deadline:
                    return handler.end_chunks()
        except (OSError, ValueError):  # ValueError: an SSL socket cut by drop_connections()
            return None
        finally:
            with self._cond:
                self._watchers.discard(watcher)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_api = None  # set by FakeKubeApiServer.start

    record = None  # this request's entry in FakeKubeApiServer.requests

    def log_message(self, *args):  # quiet: the tests read the recorded requests instead
        pass

    def send_response(self, code, message=None):
        if self.record is not None:
            with self.server_api._cond:
                self.record["status"] = code
        super().send_response(code, message)

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events):
        data = b"".join(json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        for kind, obj in events)
        size = self.server_api.chunk_size
        for start in range(0, len(data), size):
            piece = data[start:start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")

    def abort(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self):
        api = self.server_api
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        self.record = api._log_request(self, parsed.path, query)
        if not api._authorized(self):
            return self.send_json(401, status_object(401, "Unauthorized", "Unauthorized"))
        match = _PATH_RE.match(parsed.path)
        if not match:
            return self.send_json(404, status_object(404, "NotFound",
                                                     "the server could not find the requested resource"))
        namespace, name, sub = match.group("ns"), match.group("name"), match.group("sub")
        if self.command == "GET" and name is None:
            if query.get("watch") in ("1", "true"):
                return api._watch(self, namespace, query)
            return self.send_json(*api._list(namespace, query))
        if self.command == "GET" and name is not None and namespace is not None:
            obj = api.get(namespace, name)
            if obj is None:
                return self.send_json(404, status_object(404, "NotFound", f'"{name}" not found'))
            return self.send_json(200, obj)
        if self.command in ("PUT", "PATCH") and sub == "status" and namespace is not None:
            return self.send_json(*api._write_status(self, namespace, name, body))
        return self.send_json(405, status_object(405, "MethodNotAllowed",
                                                 "the server does not allow this method"))

    do_GET = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_POST = _dispatch
    do_DELETE = _dispatch
