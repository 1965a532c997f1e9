"""The object store: every resource's objects, one global resourceVersion counter, the event
history watches replay, and the write rules of kube-apiserver (uid, creationTimestamp,
generation, optimistic concurrency, status subresource, finalizers, CRDs becoming servable)."""

import copy
import random
import string
import threading
import uuid

from . import patch as patches
from .resources import BUILTINS, NO_GENERATION, apply_defaults, check_crd, crd_types
from .util import (ApiError, already_exists, bad_request, conflict, invalid, not_found, now)

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY = ("", "namespaces")
_IP_POOL = iter(f"10.96.{n // 250}.{n % 250 + 2}" for n in range(1, 60000))


class Event:
    __slots__ = ("rv", "key", "type", "obj", "old")

    def __init__(self, rv, key, kind, obj, old):
        self.rv, self.key, self.type, self.obj, self.old = rv, key, kind, obj, old


class Store:
    def __init__(self, max_events=100000):
        self.cond = threading.Condition()
        self.rv = 1000
        self.compacted = 0
        self.max_events = max_events
        self.events = []
        self.types = {}  # (group, version, plural) -> ResourceType
        self.objects = {}  # (group, plural) -> {(namespace, name): object}
        self.status_hooks = {}  # (group, plural) -> function(status) -> problem or None
        self.watchers = set()
        self.stopping = False
        with self.cond:
            for rtype in BUILTINS:
                self._register(rtype)
            for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.ensure_namespace(namespace)

    # ----- the resource table

    def _register(self, rtype):
        self.types[(rtype.group, rtype.version, rtype.plural)] = rtype
        self.objects.setdefault(rtype.key, {})

    def lookup(self, group, version, plural):
        rtype = self.types.get((group, version, plural))
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype

    def find(self, kind_or_plural, api_version=None):
        """A ResourceType by kind, plural, singular or short name (and apiVersion)."""
        needle = kind_or_plural.lower()
        for rtype in self.types.values():
            if api_version and rtype.api_version != api_version:
                continue
            if needle in (rtype.kind.lower(), rtype.plural, rtype.singular) or \
                    needle in rtype.short_names:
                return rtype
        raise KeyError(f"no resource {kind_or_plural} {api_version or ''}")

    def _sync_crd(self, crd, removed=False):
        name = crd["metadata"]["name"]
        for key in [k for k, t in self.types.items() if t.crd == name]:
            del self.types[key]
        if not removed:
            for rtype in crd_types(crd):
                self._register(rtype)

    def bucket(self, rtype):
        """The objects of a resource (404 once its CRD is gone)."""
        objects = self.objects.get(rtype.key)
        if objects is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return objects

    def served(self):
        return sorted(self.types.values(), key=lambda t: (t.group, t.version, t.plural))

    # ----- history

    def bump(self):
        self.rv += 1
        return self.rv

    def record(self, key, kind, obj, old=None, notify=True):
        if notify:
            self.events.append(Event(int(obj["metadata"]["resourceVersion"]), key, kind,
                                     copy.deepcopy(obj), copy.deepcopy(old)))
            if len(self.events) > self.max_events:
                dropped = self.events[:len(self.events) // 10]
                del self.events[:len(dropped)]
                self.compacted = max(self.compacted, dropped[-1].rv)
        self.cond.notify_all()

    def compact(self):
        self.compacted = self.rv
        self.events = []

    # ----- reads

    def get(self, rtype, namespace, name):
        obj = self.bucket(rtype).get((namespace or "", name))
        if obj is None:
            raise not_found(rtype, name)
        return self.output(rtype, obj)

    def items(self, rtype, namespace=None, predicate=None):
        out = []
        for (ns, _), obj in sorted(self.bucket(rtype).items()):
            if namespace and ns != namespace:
                continue
            if predicate is None or predicate(obj):
                out.append(self.output(rtype, obj))
        return out

    @staticmethod
    def output(rtype, obj):
        """A copy at the version asked for (custom resources convert with strategy None)."""
        out = copy.deepcopy(obj)
        if rtype.crd is not None or out.get("apiVersion") in (None, ""):
            out["apiVersion"] = rtype.api_version
        return out

    # ----- writes (raise ApiError)

    def ensure_namespace(self, namespace):
        if namespace and ("", namespace) not in self.objects[NAMESPACE_KEY]:
            obj = {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": namespace, "labels": {
                       "kubernetes.io/metadata.name": namespace}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            self.put(NAMESPACE_KEY, "", namespace, obj)

    def put(self, key, namespace, name, obj, notify=True, kind="ADDED"):
        """Stores an object as is but for the server-set metadata (the test side's write)."""
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("name", name)
        if namespace:
            metadata.setdefault("namespace", namespace)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", now())
        metadata["resourceVersion"] = str(self.bump())
        old = self.objects[key].get((namespace, name))
        self.objects[key][(namespace, name)] = obj
        if key == CRD_KEY:
            self._establish(obj)
            self._sync_crd(obj)
        self.record(key, kind, obj, old, notify)
        return copy.deepcopy(obj)

    def remove(self, key, namespace, name, notify=True):
        obj = self.objects[key].pop((namespace, name))
        obj["metadata"]["resourceVersion"] = str(self.bump())
        self.record(key, "DELETED", obj, None, notify)
        if key == CRD_KEY:
            self._drop_crd(obj, notify)
        if key == NAMESPACE_KEY:
            for other_key, objects in self.objects.items():
                for ns, other in [k for k in objects if k[0] == name]:
                    self.remove(other_key, ns, other, notify)
        return obj

    def _drop_crd(self, crd, notify):
        spec = crd.get("spec") or {}
        key = (spec.get("group"), (spec.get("names") or {}).get("plural"))
        for namespace, name in list(self.objects.get(key, {})):
            self.remove(key, namespace, name, notify)
        self._sync_crd(crd, removed=True)
        self.objects.pop(key, None)

    @staticmethod
    def _establish(crd):
        names = dict((crd.get("spec") or {}).get("names") or {})
        names.setdefault("singular", names.get("kind", "").lower())
        names.setdefault("listKind", names.get("kind", "") + "List")
        stamp = now()
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in crd["spec"].get("versions", [])
                               if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp}]}

    def create(self, rtype, namespace, body, manager, dry_run=False):
        if not isinstance(body, dict):
            raise bad_request("expected an object")
        obj = copy.deepcopy(body)
        self._check_identity(rtype, namespace, obj)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + "".join(
                random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        name = metadata.get("name")
        if not name:
            raise invalid(rtype, "", "metadata.name: Required value: name or generateName is "
                          "required", "metadata.name")
        key = (namespace or "", name)
        if key in self.bucket(rtype):
            raise already_exists(rtype, name)
        if rtype.namespaced and ("", namespace) not in self.objects[NAMESPACE_KEY]:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})
        if rtype.key == CRD_KEY:
            problem = check_crd(obj)
            if problem:
                raise invalid(rtype, name, problem)
        for field in ("resourceVersion", "deletionTimestamp", "managedFields"):
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now()
        if rtype.kind not in NO_GENERATION:
            metadata["generation"] = 1
        if namespace:
            metadata["namespace"] = namespace
        elif not rtype.namespaced:
            metadata.pop("namespace", None)  # cluster-scoped objects have none
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        if rtype.status and rtype.key not in (NAMESPACE_KEY, CRD_KEY):
            obj.pop("status", None)
        self._defaults(rtype, obj, None)
        patches.record_update(obj, None, manager, rtype.api_version)
        if dry_run:
            return self.output(rtype, obj)
        return self.put(rtype.key, key[0], name, obj)

    def update(self, rtype, namespace, name, body, manager, subresource=None, dry_run=False,
               operation=None, allow_create=False, check=True, require_rv=False):
        """PUT (and the last step of every patch): optimistic when the body has an RV (which
        custom resources' PUTs must have: `require_rv`)."""
        if not isinstance(body, dict):
            raise bad_request("expected an object")
        key = (namespace or "", name)
        old = self.bucket(rtype).get(key)
        if old is None:
            if allow_create and subresource is None:
                return self.create(rtype, namespace, body, manager, dry_run)
            raise not_found(rtype, name)
        new = copy.deepcopy(body)
        if check:
            self._check_identity(rtype, namespace, new, name)
        sent_rv = (new.get("metadata") or {}).get("resourceVersion")
        if require_rv and not sent_rv:
            raise invalid(rtype, name, "metadata.resourceVersion: Invalid value: 0x0: must be "
                          "specified for an update")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rtype, name)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            hook = self.status_hooks.get(rtype.key)
            if hook and status is not None:
                problem = hook(status)
                if problem:
                    raise invalid(rtype, name, problem)
        else:
            if rtype.status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            metadata = new.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                          "namespace", "name"):
                if field in old["metadata"]:
                    metadata[field] = old["metadata"][field]
                else:
                    metadata.pop(field, None)
            if operation != "Apply" and "managedFields" not in metadata:
                metadata["managedFields"] = old["metadata"].get("managedFields", [])
            if rtype.key == CRD_KEY:
                problem = check_crd(new)
                if problem:
                    raise invalid(rtype, name, problem)
        new["apiVersion"], new["kind"] = rtype.api_version, old.get("kind", rtype.kind)
        if subresource is None:
            self._defaults(rtype, new, old)
            defaulted_old = copy.deepcopy(old)
            if rtype.schema is not None:
                apply_defaults(rtype.schema, defaulted_old)  # as the test side stored it
            if "generation" in old["metadata"] and _spec_changed(defaulted_old, new):
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        if operation != "Apply":
            patches.record_update(new, old, manager, rtype.api_version, subresource)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if rtype.key == CRD_KEY:
            new["status"] = old.get("status")
        if new == old:
            return self.output(rtype, old)
        if old["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            if dry_run:
                return self.output(rtype, new)
            self.bucket(rtype)[key] = new
            return self.output(rtype, self.remove(rtype.key, key[0], name))
        if dry_run:
            return self.output(rtype, new)
        new["metadata"]["resourceVersion"] = str(self.bump())
        self.bucket(rtype)[key] = new
        if rtype.key == CRD_KEY:
            self._establish(new)
            self._sync_crd(new)
        self.record(rtype.key, "MODIFIED", new, old)
        return self.output(rtype, new)

    def patch(self, rtype, namespace, name, content_type, body, manager, subresource=None,
              force=False, dry_run=False):
        key = (namespace or "", name)
        old = self.bucket(rtype).get(key)
        if content_type == "application/apply-patch+yaml":
            return self._apply(rtype, namespace, name, old, body, manager, subresource, force,
                               dry_run)
        if old is None:
            raise not_found(rtype, name)
        current = self.output(rtype, old)
        if content_type == "application/merge-patch+json":
            new = patches.merge_patch(current, body)
        elif content_type == "application/json-patch+json":
            new = patches.json_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json" and rtype.strategic:
            new = patches.strategic_merge(current, body)
        else:
            accepted = ["application/json-patch+json", "application/merge-patch+json",
                        "application/apply-patch+yaml"]
            if rtype.strategic:
                accepted.append("application/strategic-merge-patch+json")
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                           "unknown format - accepted media types include: " + ", ".join(accepted))
        if not isinstance(new, dict):
            raise bad_request("the patch does not give an object")
        sent_rv = (body.get("metadata") or {}).get("resourceVersion") \
            if isinstance(body, dict) else None
        if not sent_rv:
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self.update(rtype, namespace, name, new, manager, subresource, dry_run,
                           check=False)

    def _apply(self, rtype, namespace, name, old, config, manager, subresource, force, dry_run):
        if not isinstance(config, dict):
            raise bad_request("apply: expected an object")
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager")
        self._check_identity(rtype, namespace, config, name)
        if old is None:
            if subresource:
                raise not_found(rtype, name)
            created = copy.deepcopy(config)
            created.setdefault("metadata", {})["name"] = name
            result, _ = patches.server_side_apply(None, created, manager, True, rtype.api_version)
            fields = result["metadata"].pop("managedFields")
            obj = self.create(rtype, namespace, result, manager, dry_run=True)
            obj["metadata"]["managedFields"] = fields
            if dry_run:
                return obj
            return self.put(rtype.key, namespace or "", name, self._stored(obj))
        current = self.output(rtype, old)
        result, conflicts = patches.server_side_apply(current, config, manager, force,
                                                      rtype.api_version, subresource)
        if conflicts:
            lines = "\n".join(f'- conflict with "{who}": .{".".join(path)}'
                              for path, who in conflicts)
            raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflict"
                           f"{'s' if len(conflicts) > 1 else ''}: {lines}",
                           {"causes": [{"reason": "FieldManagerConflict",
                                        "message": f'conflict with "{who}"',
                                        "field": "." + ".".join(path)}
                                       for path, who in conflicts]})
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self.update(rtype, namespace, name, result, manager, subresource, dry_run,
                           operation="Apply", check=False)

    @staticmethod
    def _stored(obj):
        return copy.deepcopy(obj)

    def delete(self, rtype, namespace, name, options=None, dry_run=False):
        key = (namespace or "", name)
        old = self.bucket(rtype).get(key)
        if old is None:
            raise not_found(rtype, name)
        preconditions = (options or {}).get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
            raise conflict(rtype, name, "Precondition failed: UID in precondition: "
                           f"{preconditions['uid']}, UID in object meta: {old['metadata']['uid']}")
        if preconditions.get("resourceVersion") and \
                preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise conflict(rtype, name, "Precondition failed: ResourceVersion in precondition: "
                           f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                           f"{old['metadata']['resourceVersion']}")
        if rtype.key == NAMESPACE_KEY and name in ("default", "kube-system", "kube-public"):
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace '
                           'may not be deleted', {"name": name, "kind": "namespaces"})
        if dry_run:
            return self.output(rtype, old)
        finalizers = old["metadata"].get("finalizers")
        if rtype.key == NAMESPACE_KEY:
            finalizers = None  # no namespace controller here: contents go at once
        if finalizers:
            if not old["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = str(self.bump())
                self.bucket(rtype)[key] = new
                self.record(rtype.key, "MODIFIED", new, old)
                return self.output(rtype, new)
            return self.output(rtype, old)
        return self.output(rtype, self.remove(rtype.key, key[0], name))

    # ----- rules

    @staticmethod
    def _check_identity(rtype, namespace, obj, name=None):
        metadata = obj.get("metadata") or {}
        if obj.get("kind") and obj["kind"] != rtype.kind:
            raise bad_request(f"the object provided is of kind {obj['kind']}, not {rtype.kind}")
        if obj.get("apiVersion") and obj["apiVersion"] != rtype.api_version and \
                not (rtype.crd and obj["apiVersion"].split("/")[0] == rtype.group):
            raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not "
                              f"match the expected API version ({rtype.api_version})")
        if rtype.namespaced and metadata.get("namespace") and metadata["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if name is not None and metadata.get("name") and metadata["name"] != name:
            raise bad_request("the name of the object "
                              f"({metadata['name']}) does not match the name on the URL ({name})")

    @staticmethod
    def _defaults(rtype, obj, old):
        """The few defaults and server-filled fields clients depend on; a CRD's schema
        defaults."""
        kind = rtype.kind
        if rtype.schema is not None:
            apply_defaults(rtype.schema, obj)
        if kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
            if old_ip and not spec.get("clusterIP"):
                spec["clusterIP"] = old_ip
            if not spec.get("clusterIP"):
                spec["clusterIP"] = next(_IP_POOL)
            if spec["clusterIP"] != "None":
                spec["clusterIPs"] = [spec["clusterIP"]]
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            obj.setdefault("status", {"loadBalancer": {}})
        elif kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                import base64
                data = obj.setdefault("data", {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
            name = (obj.get("metadata") or {}).get("name")
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        elif kind == "Pod":
            obj.setdefault("status", {"phase": "Pending"})
        elif kind == "EndpointSlice":
            for port in obj.get("ports") or []:
                port.setdefault("protocol", "TCP")


def _spec_changed(old, new):
    ignored = ("metadata", "status")
    return {k: v for k, v in old.items() if k not in ignored} != \
        {k: v for k, v in new.items() if k not in ignored}
