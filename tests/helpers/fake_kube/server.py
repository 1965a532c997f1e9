"""FakeKubeApiServer: the in-process API the tests use (start/stop, the store seen from the
test side, fault injection, and what the clients did)."""

import copy
import json
import os
import re
import socket
import ssl
import threading
import time

from . import http as fake_http
from .resources import check_crd
from .store import CRD_KEY, Store
from .util import load_documents, now

GROUP_VERSION = "wsgate.dev/v1alpha1"
KIND = "WebSocketRoute"
RESOURCE = "websocketroutes"
ROUTE_KEY = ("wsgate.dev", RESOURCE)
SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WSGATE_CRD = os.path.join(SOURCE_DIR, "deploy", "kubernetes", "websocketroutes.wsgate.dev.yaml")

# From the WebSocketRoute CRD's status.conditions item schema (status writes get 422 past it).
_REASON_RE = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")


def check_status_schema(status):
    """The WebSocketRoute CRD's status schema; returns the first violation, or None."""
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


class FakeKubeApiServer:
    """Start with start(); `port` and `url` are then set. Every method is thread-safe.

    crds: CRD objects or file paths to serve from the start; None (the default) serves the
    WebSocketRoute CRD of deploy/kubernetes, () none. The create/update/delete/get/set_status
    methods with (namespace, name, spec) act on WebSocketRoutes, as the first tests wrote them;
    put_object/get_object/delete_object/objects act on any kind."""

    def __init__(self, pki=None, tokens=("test-token",), client_ca=None, chunk_size=97,
                 crds=None, host="127.0.0.1", port=0):
        self.pki = pki
        self.tokens = set(tokens)
        self.client_ca = client_ca
        self.chunk_size = chunk_size
        self.host, self._port = host, port
        self.watch_gone_mode = "event"  # how a too-old watch RV is answered: "event" or "http"
        self.store = Store()
        self._cond = self.store.cond
        self._snapshots = {}  # list snapshots for continue tokens
        self._fail_watches = 0
        self.requests = []
        self.status_writes = []
        self._httpd = None
        self._thread = None
        self.port = None
        self.url = None
        self.store.status_hooks[ROUTE_KEY] = check_status_schema
        for crd in ([WSGATE_CRD] if crds is None else crds):
            self.add_crd(crd)

    # ----- lifecycle

    def start(self):
        class Handler(fake_http.Handler):
            server_api = self

        self._httpd = fake_http.Server((self.host, self._port), Handler)
        if self.pki is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
            context.set_alpn_protocols(["http/1.1"])
            if self.client_ca:
                context.load_verify_locations(self.client_ca)
                context.verify_mode = ssl.CERT_OPTIONAL
            self._httpd.ssl_context = context
        self.port = self._httpd.server_address[1]
        self.url = f"{'https' if self.pki else 'http'}://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        with self._cond:
            self.store.stopping = True
            for watcher in self.store.watchers:
                watcher.kill = True
            self._cond.notify_all()
        self.drop_connections()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    # ----- any kind (test side)

    def add_crd(self, crd):
        """Serves a CRD (an object, or a YAML/JSON file of them) as if it had been created."""
        documents = load_documents(crd) if isinstance(crd, str) else [crd]
        for document in documents:
            if document.get("kind") != "CustomResourceDefinition":
                continue
            problem = check_crd(document)
            if problem:
                raise ValueError(f"{document['metadata'].get('name')}: {problem}")
            with self._cond:
                obj = copy.deepcopy(document)
                obj["apiVersion"] = "apiextensions.k8s.io/v1"
                obj["metadata"].setdefault("generation", 1)
                self.store.put(CRD_KEY, "", obj["metadata"]["name"], obj)

    def put_object(self, obj, notify=True):
        """Creates or replaces any object as is (server-set metadata filled in): ADDED or
        MODIFIED. Its namespace is created when missing."""
        with self._cond:
            rtype = self.store.find(obj["kind"], obj.get("apiVersion"))
            obj = copy.deepcopy(obj)
            metadata = obj.setdefault("metadata", {})
            namespace = metadata.get("namespace", "default") if rtype.namespaced else ""
            if rtype.namespaced:
                metadata["namespace"] = namespace
                self.store.ensure_namespace(namespace)
            old = self.store.objects[rtype.key].get((namespace, metadata["name"]))
            if old is not None:
                for field in ("uid", "creationTimestamp"):
                    metadata.setdefault(field, old["metadata"][field])
            return self.store.put(rtype.key, namespace, metadata["name"], obj, notify,
                                  "ADDED" if old is None else "MODIFIED")

    def get_object(self, kind, namespace, name, api_version=None):
        with self._cond:
            rtype = self.store.find(kind, api_version)
            obj = self.store.objects[rtype.key].get((namespace or "", name))
            return self.store.output(rtype, obj) if obj else None

    def delete_object(self, kind, namespace, name, api_version=None, notify=True):
        with self._cond:
            rtype = self.store.find(kind, api_version)
            return self.store.remove(rtype.key, namespace or "", name, notify)

    def objects(self, kind, namespace=None, api_version=None):
        with self._cond:
            return self.store.items(self.store.find(kind, api_version), namespace)

    def wait_for(self, predicate, timeout=10.0):
        """Blocks until predicate(server) is true (re-checked on every store change)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(self)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout}s")
                self._cond.wait(remaining)

    # ----- WebSocketRoutes (test side)

    def _route(self, namespace, name):
        return self.store.objects[ROUTE_KEY][(namespace, name)]

    def create(self, namespace, name, spec, notify=True, raw=None):
        """Adds a WebSocketRoute (ADDED); `raw` overrides top-level fields (broken objects)."""
        with self._cond:
            self.store.ensure_namespace(namespace)
            obj = {
                "apiVersion": GROUP_VERSION, "kind": KIND,
                "metadata": {
                    "name": name, "namespace": namespace, "generation": 1,
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                    json.dumps({"spec": spec})},
                    "managedFields": [{"manager": "kubectl", "operation": "Update",
                                       "apiVersion": GROUP_VERSION, "time": now(),
                                       "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
                },
                "spec": spec,
            }
            if raw:
                obj.update(raw)
            return self.store.put(ROUTE_KEY, namespace, name, obj, notify)

    def update(self, namespace, name, spec, notify=True):
        """Replaces the spec (MODIFIED); the generation moves when the spec changes."""
        with self._cond:
            obj = self._route(namespace, name)
            old = copy.deepcopy(obj)
            if obj.get("spec") != spec:
                obj["metadata"]["generation"] += 1
            obj["spec"] = spec
            obj["metadata"]["resourceVersion"] = str(self.store.bump())
            self.store.record(ROUTE_KEY, "MODIFIED", obj, old, notify)
            return copy.deepcopy(obj)

    def delete(self, namespace, name, notify=True):
        with self._cond:
            self.store.remove(ROUTE_KEY, namespace, name, notify)

    def get(self, namespace, name):
        with self._cond:
            obj = self.store.objects[ROUTE_KEY].get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def resource_version(self):
        with self._cond:
            return str(self.store.rv)

    def set_status(self, namespace, name, status):
        """Replaces .status as another writer would (MODIFIED; the generation stays)."""
        with self._cond:
            obj = self._route(namespace, name)
            old = copy.deepcopy(obj)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = str(self.store.bump())
            self.store.record(ROUTE_KEY, "MODIFIED", obj, old, True)

    # ----- faults

    def bookmark(self, timeout=5.0):
        """Moves the RV on (as writes elsewhere in the cluster do) and sends every watcher that
        asked for bookmarks a BOOKMARK at it; returns that RV once they are all written to
        their sockets (so a connection cut afterwards still delivers them first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            rv = self.store.bump()
            targets = [watcher for watcher in self.store.watchers if watcher.bookmarks]
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
            self.store.compact()
            self.watch_gone_mode = mode
            for watcher in self.store.watchers:
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
            watchers = list(self.store.watchers)
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
            return len(self.store.watchers)

    # ----- what the clients did

    def requests_matching(self, method=None, watch=None, path=None):
        with self._cond:
            out = []
            for request in self.requests:
                if method and request["method"] != method:
                    continue
                is_watch = request["query"].get("watch") in ("1", "true")
                if watch is not None and is_watch != watch:
                    continue
                if path is not None and not re.search(path, request["path"]):
                    continue
                out.append(dict(request))
            return out

    def writes(self):
        with self._cond:
            return [dict(write) for write in self.status_writes]

    # ----- request handling (called by the HTTP layer)

    def _log_request(self, handler, path, query):
        record = {"method": handler.command, "path": path, "query": query,
                  "time": time.monotonic(), "status": None,
                  "authorization": handler.headers.get("Authorization"),
                  "user_agent": handler.headers.get("User-Agent"),
                  "accept": handler.headers.get("Accept"),
                  "content_type": handler.headers.get("Content-Type")}
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

    def _list(self, rtype, namespace, matches, query):
        with self._cond:
            return fake_http.list_page(self.store, self._snapshots, rtype, namespace, matches,
                                       query)
