"""HTTP: the TLS server, authentication, routing of API paths, content negotiation (JSON or
Table), and the verbs (get, list, watch, create, update, patch, delete, deletecollection)."""

import base64
import copy
import http.server
import json
import socket
import ssl
import sys
import time
import traceback
import urllib.parse
import uuid

from . import discovery, openapi, tables, watch
from .util import (ApiError, bad_request, parse_body, parse_field_selector,
                   parse_label_selector, status_object)

NOT_FOUND = "the server could not find the requested resource"


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


def _manager(handler, query):
    if query.get("fieldManager"):
        return query["fieldManager"]
    agent = handler.headers.get("User-Agent", "unknown")
    return agent.split("/")[0] or "unknown"


def _parse_resource_path(segments):
    """(group, version, namespace, plural, name, subresource) or None."""
    if segments[:1] == ["api"] and len(segments) >= 3:
        group, version, rest = "", segments[1], segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 4:
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 3:
        return None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return group, version, namespace, plural, name, sub


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_api = None  # set by FakeKubeApiServer.start
    record = None  # this request's entry in FakeKubeApiServer.requests

    def log_message(self, *args):  # quiet: the tests read the recorded requests instead
        pass

    def send_response(self, code, message=None):
        if self.record is not None:
            with self.server_api.store.cond:
                self.record["status"] = code
        super().send_response(code, message)

    def send_json(self, code, body, content_type="application/json"):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events):
        data = b"".join(json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        for kind, obj in events)
        size = self.server_api.chunk_size or len(data)
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
        try:
            return self._route(api, parsed.path, query, body)
        except ApiError as error:
            return self.send_json(error.status["code"], error.status)
        except OSError:
            raise  # the connection went away
        except ValueError as error:  # a malformed query parameter
            return self.send_json(400, status_object(400, "BadRequest", str(error)))
        except Exception as error:  # a bug here: answered as kube-apiserver answers a panic
            traceback.print_exc()
            return self.send_json(500, status_object(500, "InternalError",
                                                     f"Internal error occurred: {error!r}"))

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _dispatch

    def _route(self, api, path, query, body):
        store = api.store
        segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/") if s]
        if self.command == "GET":
            if path in ("/healthz", "/livez", "/readyz"):
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return self.wfile.write(data)
            if path == "/version":
                return self.send_json(200, discovery.VERSION)
            with store.cond:
                document = self._discovery(api, segments)
            if document is not None:
                return self.send_json(200, document)
        target = _parse_resource_path(segments)
        if target is None:
            raise ApiError(404, "NotFound", NOT_FOUND)
        group, version, namespace, plural, name, sub = target
        with store.cond:
            rtype = store.lookup(group, version, plural)
        if sub not in (None, "status") or (sub == "status" and not rtype.status):
            raise ApiError(404, "NotFound", NOT_FOUND)
        if rtype.namespaced != (namespace is not None):
            if rtype.namespaced and name is None and self.command in ("GET",):
                pass  # list or watch across namespaces
            else:
                raise ApiError(404, "NotFound", NOT_FOUND)
        if name is None:
            return self._collection(api, rtype, namespace, query, body)
        return self._item(api, rtype, namespace, name, sub, query, body)

    def _discovery(self, api, segments):
        store = api.store
        if segments == ["api"]:
            return discovery.api_versions(f"{api.host}:{api.port}")
        if segments == ["apis"]:
            return discovery.api_group_list(store)
        if segments == ["api", "v1"]:
            return discovery.resource_list(store, "", "v1")
        if len(segments) == 2 and segments[0] == "apis":
            return discovery.api_group(store, segments[1])
        if len(segments) == 3 and segments[0] == "apis":
            return discovery.resource_list(store, segments[1], segments[2])
        if segments == ["openapi", "v3"]:
            return openapi.index(store)
        if segments[:2] == ["openapi", "v3"] and len(segments) > 2:
            return openapi.document(store, "/".join(segments[2:]))
        return None

    # ----- verbs

    def _content_type(self):
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def _answer(self, code, rtype, obj, query):
        if tables.wants_table(self.headers.get("Accept")) and obj.get("kind") == rtype.kind:
            body = tables.table(rtype, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, query.get("includeObject", "Metadata"))
            return self.send_json(code, body)
        return self.send_json(code, obj)

    def _matcher(self, rtype, namespace, name, query):
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))

        def matches(obj):
            metadata = obj.get("metadata") or {}
            return ((namespace is None or metadata.get("namespace", "") == namespace) and
                    (name is None or metadata.get("name") == name) and labels(obj) and fields(obj))
        return matches

    def _collection(self, api, rtype, namespace, query, body):
        store = api.store
        dry_run = bool(query.get("dryRun"))
        if self.command == "GET":
            matches = self._matcher(rtype, namespace, None, query)
            as_table = tables.wants_table(self.headers.get("Accept"))
            include = query.get("includeObject", "Metadata")
            if query.get("watch") in ("1", "true"):
                return watch.serve(self, api, rtype, namespace, matches, query, as_table, include)
            code, result = api._list(rtype, namespace, matches, query)
            if code == 200 and as_table:
                result = tables.table(rtype, result["items"], result["metadata"], include)
            return self.send_json(code, result)
        if self.command == "POST":
            document = parse_body(body, self._content_type())
            with store.cond:
                obj = store.create(rtype, namespace, document, _manager(self, query), dry_run)
            return self._answer(201, rtype, obj, query)
        if self.command == "DELETE":
            matches = self._matcher(rtype, namespace, None, query)
            with store.cond:
                deleted = [store.delete(rtype, obj["metadata"].get("namespace"),
                                        obj["metadata"]["name"], None, dry_run)
                           for obj in store.items(rtype, namespace, matches)]
                rv = str(store.rv)
            return self.send_json(200, {"apiVersion": rtype.api_version, "kind": rtype.list_kind,
                                        "metadata": {"resourceVersion": rv}, "items": deleted})
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    def _item(self, api, rtype, namespace, name, sub, query, body):
        store = api.store
        dry_run = bool(query.get("dryRun"))
        manager = _manager(self, query)
        if self.command == "GET":
            if query.get("watch") in ("1", "true"):
                matches = self._matcher(rtype, namespace, name, query)
                return watch.serve(self, api, rtype, namespace, matches, query,
                                   tables.wants_table(self.headers.get("Accept")),
                                   query.get("includeObject", "Metadata"))
            with store.cond:
                obj = store.get(rtype, namespace, name)
            return self._answer(200, rtype, obj, query)
        content_type = self._content_type()
        document = parse_body(body, content_type)
        if sub == "status" and self.command in ("PUT", "PATCH"):
            with store.cond:
                api.status_writes.append({
                    "method": self.command, "namespace": namespace, "name": name,
                    "resource": rtype.plural, "content_type": content_type,
                    "body": copy.deepcopy(document), "time": time.monotonic()})
        if self.command == "PUT":
            with store.cond:
                obj = store.update(rtype, namespace, name, document, manager, sub, dry_run,
                                   require_rv=rtype.crd is not None)
            return self._answer(200, rtype, obj, query)
        if self.command == "PATCH":
            with store.cond:
                existed = (namespace or "", name) in store.bucket(rtype)
                obj = store.patch(rtype, namespace, name, content_type, document, manager, sub,
                                  query.get("force") == "true", dry_run)
            return self._answer(200 if existed else 201, rtype, obj, query)
        if self.command == "DELETE" and sub is None:
            if document is not None and not isinstance(document, dict):
                raise bad_request("expected DeleteOptions")
            with store.cond:
                obj = store.delete(rtype, namespace, name, document, dry_run)
            return self._answer(200, rtype, obj, query)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")


def list_page(store, snapshots, rtype, namespace, matches, query):
    """(code, List body) with limit/continue pages over a snapshot taken at the first page."""
    limit = int(query.get("limit", "0") or 0)
    token = query.get("continue")
    if token:
        try:
            state = json.loads(base64.b64decode(token))
            snapshot = snapshots[state["id"]]
        except (ValueError, KeyError):
            return 400, status_object(400, "BadRequest", "invalid continue token")
        if state["rv"] < store.compacted:
            return 410, status_object(
                410, "Expired", "The provided continue parameter is too old to display a "
                "consistent list result. You can start a new list without the continue "
                "parameter.")
        rv, items, offset = state["rv"], snapshot, state["offset"]
    else:
        rv, items, offset = store.rv, store.items(rtype, namespace, matches), 0
    page = items[offset:offset + limit] if limit else items[offset:]
    metadata = {"resourceVersion": str(rv)}
    if limit and offset + limit < len(items):
        snapshot_id = str(uuid.uuid4())
        snapshots[snapshot_id] = items
        metadata["continue"] = base64.b64encode(json.dumps(
            {"id": snapshot_id, "rv": rv, "offset": offset + limit}).encode()).decode()
        metadata["remainingItemCount"] = len(items) - offset - limit
    return 200, {"apiVersion": rtype.api_version, "kind": rtype.list_kind,
                 "metadata": metadata, "items": page}
