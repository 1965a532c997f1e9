"""Watches: a 200 with a chunked stream of {"type": ..., "object": ...}\\n events (ADDED,
MODIFIED, DELETED, BOOKMARK, ERROR), replayed from the store's history after the asked
resourceVersion. An RV older than the compaction point gets an ERROR 410 event (or HTTP 410,
as the test chooses). Label and field selectors apply per event: an object that stops
matching is DELETED, one that starts is ADDED, as the cacher does."""

import bisect
import time

from . import tables
from .util import status_object


class Watcher:
    def __init__(self, handler, rtype, namespace, bookmarks, cursor):
        self.handler = handler
        self.rtype = rtype
        self.namespace = namespace
        self.bookmarks = bookmarks
        self.cursor = cursor
        self.bookmark_rv = None
        self.bookmark_sent = None
        self.error_410 = False
        self.kill = False


def _translate(event, matches):
    now_matches = matches(event.obj)
    if event.type == "MODIFIED":
        was = event.old is not None and matches(event.old)
        if now_matches and not was:
            return "ADDED"
        if was and not now_matches:
            return "DELETED"
    return event.type if now_matches else None


def serve(handler, server, rtype, namespace, matches, query, as_table, include):
    """Streams one watch; `matches` filters objects (namespace, name and selectors)."""
    store = server.store
    rv_text = query.get("resourceVersion", "")
    bookmarks = query.get("allowWatchBookmarks") == "true"
    initial_events = query.get("sendInitialEvents") == "true"
    timeout = float(query.get("timeoutSeconds", "1800") or 1800)
    deadline = time.monotonic() + timeout
    refusal = None
    headers_sent = [False]

    def shape(obj):
        obj = store.output(rtype, obj)
        if as_table:
            body = tables.table(rtype, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, include, headers=not headers_sent[0])
            headers_sent[0] = True
            return body
        return obj

    with store.cond:
        initial = []
        if server._fail_watches > 0:
            server._fail_watches -= 1
            refusal = (500, status_object(500, "InternalError", "injected watch failure"))
            cursor = store.rv
        elif rv_text in ("", "0") or initial_events:
            # "Any version": the current state as ADDED events, then changes.
            cursor = store.rv
            initial = [("ADDED", shape(obj)) for obj in store.bucket(rtype).values()
                       if matches(obj)]
            if initial_events:
                initial.append(("BOOKMARK", {
                    "apiVersion": rtype.api_version, "kind": rtype.kind, "metadata": {
                        "resourceVersion": str(cursor), "annotations": {
                            "k8s.io/initial-events-end": "true"}}}))
        else:
            try:
                cursor = int(rv_text)
            except ValueError:
                cursor = -1
            if cursor < store.compacted:
                message = f"too old resource version: {cursor} ({store.compacted})"
                if server.watch_gone_mode == "http":
                    refusal = (410, status_object(410, "Gone", message))
                initial = [("ERROR", status_object(410, "Expired", message))]
        watcher = Watcher(handler, rtype, namespace, bookmarks, cursor)
        if refusal is None:
            store.watchers.add(watcher)
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
            with store.cond:
                while True:
                    start = bisect.bisect_right(store.events, watcher.cursor, key=lambda e: e.rv)
                    events = []
                    for event in store.events[start:]:
                        if event.key != rtype.key:
                            continue
                        kind = _translate(event, matches)
                        if kind:
                            events.append((kind, shape(event.obj)))
                    if store.events and store.events[-1].rv > watcher.cursor:
                        watcher.cursor = store.events[-1].rv
                    if (events or watcher.kill or watcher.error_410 or
                            watcher.bookmark_rv is not None or store.stopping):
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    store.cond.wait(remaining)
                kill = watcher.kill or store.stopping
                error_410 = watcher.error_410
                bookmark_rv = watcher.bookmark_rv
                watcher.bookmark_rv = None
                if bookmark_rv is not None:
                    watcher.cursor = max(watcher.cursor, bookmark_rv)
                compacted = store.compacted
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
                    "apiVersion": rtype.api_version, "kind": rtype.kind,
                    "metadata": {"resourceVersion": str(bookmark_rv)}})])
                with store.cond:
                    watcher.bookmark_sent = bookmark_rv
                    store.cond.notify_all()
            if time.monotonic() >= deadline:
                return handler.end_chunks()
    except (OSError, ValueError):  # ValueError: an SSL socket cut by drop_connections()
        return None
    finally:
        with store.cond:
            store.watchers.discard(watcher)
