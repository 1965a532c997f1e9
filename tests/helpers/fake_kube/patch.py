"""Patches the API server takes: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic
merge patch (the directives kubectl's three-way patches use, without Go struct tags), and
server-side apply with field ownership in managedFields (lists are atomic)."""

import copy

from .util import bad_request, now

# List fields merged by key in a strategic merge patch when the patch gives no
# $setElementOrder directive (the ones whose Go tags say patchStrategy=merge everywhere).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
              "env": "name", "volumes": "name", "volumeMounts": "mountPath",
              "imagePullSecrets": "name", "conditions": "type", "ownerReferences": "uid"}
MERGE_PRIMITIVES = {"finalizers"}


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


# --------------------------------------------------------------------------------------------
# RFC 6902


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts, path):
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise ApiPatchError(f"doc is missing path: {path!r}")
    return doc


class ApiPatchError(Exception):
    pass


def json_patch(doc, operations):
    if not isinstance(operations, list):
        raise bad_request("json patch: expected a list of operations")
    doc = copy.deepcopy(doc)
    try:
        for op in operations:
            kind, path = op.get("op"), op.get("path", "")
            parts = _pointer(path)
            if kind in ("add", "replace", "test"):
                value = copy.deepcopy(op.get("value"))
            if kind in ("move", "copy"):
                source = _walk(doc, _pointer(op.get("from", "")), op.get("from"))
                value = copy.deepcopy(source)
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]), op["from"])
                kind = "add"
            if kind == "test":
                if _walk(doc, parts, path) != value:
                    raise ApiPatchError(f"testing value {path} failed")
            elif kind == "remove":
                doc = _remove(doc, parts, path)
            elif kind in ("add", "replace"):
                if not parts:
                    doc = value
                    continue
                parent = _walk(doc, parts[:-1], path)
                last = parts[-1]
                if isinstance(parent, dict):
                    if kind == "replace" and last not in parent:
                        raise ApiPatchError(f"replace operation does not apply: doc is missing "
                                            f"key: {path}")
                    parent[last] = value
                elif isinstance(parent, list):
                    if last == "-":
                        parent.append(value)
                    elif not last.isdigit() or int(last) > len(parent) or (
                            kind == "replace" and int(last) >= len(parent)):
                        raise ApiPatchError(f"index out of range: {path}")
                    elif kind == "add":
                        parent.insert(int(last), value)
                    else:
                        parent[int(last)] = value
                else:
                    raise ApiPatchError(f"doc is missing path: {path}")
            else:
                raise ApiPatchError(f"unexpected operation {kind!r}")
    except ApiPatchError as error:
        raise bad_request(str(error)) from None
    return doc


def _remove(doc, parts, path):
    if not parts:
        raise ApiPatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise ApiPatchError(f"remove operation does not apply: doc is missing path: {path}")
    return doc


# --------------------------------------------------------------------------------------------
# Strategic merge patch


def strategic_merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key, orders.get(key))
        else:
            result[key] = copy.deepcopy(value)
    for field in orders:
        if field not in patch and isinstance(result.get(field), list):
            result[field] = _order(result[field], orders[field], _order_key(orders[field]))
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _order_key(order):
    if order and all(isinstance(item, dict) and len(item) == 1 for item in order):
        keys = {next(iter(item)) for item in order}
        if len(keys) == 1:
            return keys.pop()
    return None


def _merge_list(current, patch, field, order):
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    key = _order_key(order) if order is not None else None
    if key is None and order is None:
        key = MERGE_KEYS.get(field)
        if key is not None and not all(isinstance(i, dict) and key in i for i in patch):
            key = None
    current = list(current or []) if isinstance(current, list) else []
    if key is None:
        if (field in MERGE_PRIMITIVES or (order is not None and all(
                not isinstance(i, dict) for i in order))) and all(
                not isinstance(i, dict) for i in patch):
            merged = current + [v for v in patch if v not in current]
            return _order(merged, order, None) if order else merged
        return copy.deepcopy(patch)
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next((i for i, existing in enumerate(result)
                      if isinstance(existing, dict) and existing.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge(None, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return _order(result, order, key) if order else result


def _order(items, order, key):
    """$setElementOrder: the listed elements in that order, the others after them."""
    def ident(item):
        return item.get(key) if key and isinstance(item, dict) else item
    wanted = [item.get(key) if key and isinstance(item, dict) else item for item in order]
    ranked = sorted(items, key=lambda item: wanted.index(ident(item))
                    if ident(item) in wanted else len(wanted))
    return ranked


# --------------------------------------------------------------------------------------------
# Server-side apply


def field_set(value, prefix=()):
    """The leaf paths of a value (maps descend, anything else, lists included, is a leaf)."""
    if isinstance(value, dict) and value:
        out = set()
        for key, item in value.items():
            out |= field_set(item, prefix + (key,))
        return out
    return {prefix} if prefix else set()


def changed_fields(old, new, prefix=()):
    """Leaf paths whose values differ between two objects."""
    if (isinstance(old, dict) or old is None) and (isinstance(new, dict) or new is None) and \
            (old or new):
        old, new, out = old or {}, new or {}, set()
        for key in set(old) | set(new):
            out |= changed_fields(old.get(key), new.get(key), prefix + (key,))
        return out
    return {prefix} if old != new and prefix else set()


def to_fields_v1(paths):
    tree = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault("f:" + part, {})
    return tree


def from_fields_v1(tree, prefix=()):
    out = set()
    for key, child in (tree or {}).items():
        if not key.startswith("f:"):
            continue
        path = prefix + (key[2:],)
        if child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


def _get(obj, path):
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


_MISSING = object()


def _delete(obj, path):
    parents = []
    for part in path[:-1]:
        if not isinstance(obj, dict) or part not in obj:
            return
        parents.append((obj, part))
        obj = obj[part]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    for parent, part in reversed(parents):  # drop maps left empty
        if parent[part] == {}:
            del parent[part]
        else:
            break


IGNORED = {("metadata", "resourceVersion"), ("metadata", "uid"), ("metadata", "generation"),
           ("metadata", "creationTimestamp"), ("metadata", "managedFields"), ("apiVersion",),
           ("kind",), ("metadata", "name"), ("metadata", "namespace")}


def _owned(paths):
    return {p for p in paths if p not in IGNORED and p[:2] != ("metadata", "managedFields")}


def managers(obj):
    return [dict(entry) for entry in (obj.get("metadata") or {}).get("managedFields") or []]


def record_update(obj, old, manager, api_version, subresource=None):
    """Gives `manager` (operation Update) the fields this write changed."""
    changed = _owned(changed_fields(old or {}, obj))
    entries = managers(obj)  # the stored ones, or those the client wrote itself
    out, found = [], False

    def entry_for(paths):
        entry = {"manager": manager, "operation": "Update", "apiVersion": api_version,
                 "time": now(), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
        if subresource:
            entry["subresource"] = subresource
        return entry
    for entry in entries:
        paths = from_fields_v1(entry.get("fieldsV1"))
        if not changed:
            out.append(entry)
        elif entry["manager"] == manager and entry["operation"] == "Update" and \
                entry.get("subresource") == subresource:
            found = True
            paths = {p for p in paths | changed if _get(obj, p) is not _MISSING}
            if paths:
                out.append(entry_for(paths))
        elif paths - changed:
            if paths & changed:
                entry["fieldsV1"] = to_fields_v1(paths - changed)
            out.append(entry)
    if changed and not found:
        paths = {p for p in changed if _get(obj, p) is not _MISSING}
        if paths:
            out.append(entry_for(paths))
    obj.setdefault("metadata", {})["managedFields"] = out


def server_side_apply(current, config, manager, force, api_version, subresource=None):
    """Returns (new object, conflicts): each conflict is (path, other manager)."""
    applied = _owned(field_set(config))
    entries = managers(current or {})
    mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"
                 and e.get("subresource") == subresource), None)
    previously = from_fields_v1(mine.get("fieldsV1")) if mine else set()
    conflicts = []
    for entry in entries:
        if entry is mine:
            continue
        theirs = from_fields_v1(entry.get("fieldsV1"))
        for path in sorted(applied & theirs):
            if _get(current, path) != _get(config, path):
                conflicts.append((path, entry["manager"]))
    if conflicts and not force:
        return None, conflicts
    result = copy.deepcopy(current) if current else {}
    others = set()
    for entry in entries:
        if entry is not mine:
            others |= from_fields_v1(entry.get("fieldsV1"))
    for path in previously - applied - others:
        _delete(result, path)
    result = _deep_merge(result, config)
    new_entries = []
    mine_entry = {"manager": manager, "operation": "Apply", "apiVersion": api_version,
                  "time": now(), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(applied)}
    if subresource:
        mine_entry["subresource"] = subresource
    for entry in entries:
        if entry is mine:
            new_entries.append(mine if previously == applied else mine_entry)
            continue
        paths = from_fields_v1(entry.get("fieldsV1"))
        if force:
            paths -= applied
        if paths:
            if paths != from_fields_v1(entry.get("fieldsV1")):
                entry["fieldsV1"] = to_fields_v1(paths)
            new_entries.append(entry)
    if mine is None:
        new_entries.append(mine_entry)
    result.setdefault("metadata", {})["managedFields"] = new_entries
    return result, []


def _deep_merge(target, config):
    if not isinstance(config, dict) or not isinstance(target, dict):
        return copy.deepcopy(config)
    result = dict(target)
    for key, value in config.items():
        if value is None:
            continue
        result[key] = _deep_merge(target.get(key), value) if isinstance(value, dict) and \
            isinstance(target.get(key), dict) else copy.deepcopy(value)
    return result
