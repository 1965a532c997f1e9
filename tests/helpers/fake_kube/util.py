"""Shared pieces of the fake API server: v1 Status errors, time stamps, label and field
selectors, and the small JSONPath subset printer columns use."""

import datetime
import json
import re

try:  # python3-yaml is optional: kubectl sends JSON, --crd files may be JSON
    import yaml
except ImportError:  # pragma: no cover
    yaml = None


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_age(timestamp):
    """kube's duration.HumanDuration, roughly: 5s, 3m2s, 4h, 2d."""
    then = parse_time(timestamp)
    if then is None:
        return "<unknown>"
    seconds = max(0, int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def status_object(code, reason, message, details=None):
    """A v1 Status, the body of every error answer and of an ERROR watch event."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    """Raised anywhere below the HTTP layer; answered as a v1 Status."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.status = status_object(code, reason, message, details)


def qualified(rtype):
    return rtype.plural + ("." + rtype.group if rtype.group else "")


def not_found(rtype, name):
    return ApiError(404, "NotFound", f'{qualified(rtype)} "{name}" not found',
                    {"name": name, "group": rtype.group, "kind": rtype.plural})


def already_exists(rtype, name):
    return ApiError(409, "AlreadyExists", f'{qualified(rtype)} "{name}" already exists',
                    {"name": name, "group": rtype.group, "kind": rtype.plural})


def conflict(rtype, name, why="the object has been modified; please apply your changes to "
             "the latest version and try again"):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(rtype)} '
                    f'"{name}": {why}', {"name": name, "group": rtype.group, "kind": rtype.plural})


def invalid(rtype, name, message, field=None):
    if field is None and ": " in message:
        field = message.split(": ", 1)[0]
    details = {"name": name, "group": rtype.group, "kind": rtype.kind, "causes": [
        {"reason": "FieldValueInvalid", "message": message, "field": field or ""}]}
    return ApiError(422, "Invalid", f'{rtype.kind}{"." + rtype.group if rtype.group else ""} '
                    f'"{name}" is invalid: {message}', details)


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def parse_body(data, content_type=""):
    """JSON, or YAML when python3-yaml is there (apply-patch+yaml bodies may be YAML)."""
    if not data:
        return None
    if "protobuf" in content_type:
        from . import proto
        try:
            return proto.decode(data)
        except (proto.ProtoError, UnicodeDecodeError, ValueError) as error:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an "
                           f"unknown format ({error}) - accepted media types include: "
                           "application/json, application/yaml") from None
    try:
        return json.loads(data)
    except ValueError:
        if yaml is None or "yaml" not in content_type:
            raise bad_request("the body of the request is not valid JSON")
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise bad_request(f"invalid YAML body: {error}") from None


def load_documents(path):
    """Every document of a YAML (or JSON) file, skipping empty ones and unwrapping Lists."""
    with open(path, encoding="utf-8") as source:
        text = source.read()
    if yaml is not None:
        documents = list(yaml.safe_load_all(text))
    else:
        documents = [json.loads(text)]
    out = []
    for document in documents:
        if not document:
            continue
        if document.get("kind", "").endswith("List") and "items" in document:
            out.extend(document["items"])
        else:
            out.append(document)
    return out


# --------------------------------------------------------------------------------------------
# Selectors


def _split_top(text):
    """Splits on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s+\((.*)\)$")


def parse_label_selector(text):
    """A list of predicates over a labels dict; ApiError 400 on syntax errors."""
    predicates = []
    for term in _split_top(text or ""):
        match = _SET_RE.match(term)
        if match:
            key, op, values = match.group(1), match.group(2), {
                v.strip() for v in match.group(3).split(",") if v.strip()}
            if op == "in":
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        for op in ("==", "!=", "="):
            if op in term:
                key, value = (part.strip() for part in term.split(op, 1))
                if op == "!=":
                    predicates.append(lambda labels, k=key, v=value: labels.get(k) != v)
                else:
                    predicates.append(lambda labels, k=key, v=value: labels.get(k) == v)
                break
        else:
            if term.startswith("!"):
                predicates.append(lambda labels, k=term[1:].strip(): k not in labels)
            elif re.match(r"^[A-Za-z0-9./_-]+$", term):
                predicates.append(lambda labels, k=term: k in labels)
            else:
                raise bad_request(f"unable to parse requirement: {term!r}")
    return lambda obj: all(p((obj.get("metadata") or {}).get("labels") or {})
                           for p in predicates)


def _field_value(obj, path):
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text):
    """metadata.name=x, metadata.namespace!=y, any other dotted path compared as a string."""
    predicates = []
    for term in _split_top(text or ""):
        for op in ("==", "!=", "="):
            if op in term:
                path, value = (part.strip() for part in term.split(op, 1))
                if op == "!=":
                    predicates.append(lambda obj, p=path, v=value: _field_value(obj, p) != v)
                else:
                    predicates.append(lambda obj, p=path, v=value: _field_value(obj, p) == v)
                break
        else:
            raise bad_request(f"invalid field selector: {term!r}")
    return lambda obj: all(p(obj) for p in predicates)


# --------------------------------------------------------------------------------------------
# JSONPath (the subset additionalPrinterColumns use: .a.b, [*], [N], [?(@.k=="v")])

_TOKEN_RE = re.compile(r"\.([A-Za-z0-9_$-]+)|\[(\*|-?\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*"
                       r"(?:\"([^\"]*)\"|'([^']*)')\)\]")


def jsonpath(obj, path):
    """All values the path selects (a list)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    values, position = [obj], 0
    while position < len(path):
        match = _TOKEN_RE.match(path, position)
        if not match:
            return []
        position = match.end()
        key, index, filter_key = match.group(1), match.group(2), match.group(3)
        out = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                out.append(value[key])
            elif index == "*" and isinstance(value, list):
                out.extend(value)
            elif index == "*" and isinstance(value, dict):
                out.extend(value.values())
            elif index is not None and index != "*" and isinstance(value, list):
                try:
                    out.append(value[int(index)])
                except IndexError:
                    pass
            elif filter_key is not None and isinstance(value, list):
                wanted = match.group(4) if match.group(4) is not None else match.group(5)
                out.extend(item for item in value if isinstance(item, dict) and
                           _field_value(item, filter_key) == wanted)
        values = out
    return values
