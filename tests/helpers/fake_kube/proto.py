"""Decoding the protobuf bodies kubectl's typed clients send (`kubectl create configmap`,
`secret`, `namespace`, `service`, `serviceaccount` post application/vnd.kubernetes.protobuf):
the k8s envelope (magic "k8s\\0" + runtime.Unknown) and the fields of those few kinds, from
k8s.io/api's generated.proto. Answers are always JSON, which those clients also accept."""

import base64

_STR, _BYTES, _INT, _BOOL = "string", "bytes", "int", "bool"

_OWNER = {1: ("kind", _STR), 3: ("name", _STR), 4: ("uid", _STR), 5: ("apiVersion", _STR),
          6: ("controller", _BOOL), 7: ("blockOwnerDeletion", _BOOL)}
_META = {1: ("name", _STR), 2: ("generateName", _STR), 3: ("namespace", _STR),
         5: ("uid", _STR), 6: ("resourceVersion", _STR), 7: ("generation", _INT),
         11: ("labels", ("map", _STR)), 12: ("annotations", ("map", _STR)),
         13: ("ownerReferences", ("repeated", _OWNER)), 14: ("finalizers", ("repeated", _STR))}
_INT_OR_STRING = {1: ("type", _INT), 2: ("intVal", _INT), 3: ("strVal", _STR)}
_SERVICE_PORT = {1: ("name", _STR), 2: ("protocol", _STR), 3: ("port", _INT),
                 4: ("targetPort", _INT_OR_STRING), 5: ("nodePort", _INT),
                 6: ("appProtocol", _STR)}
_SERVICE_SPEC = {1: ("ports", ("repeated", _SERVICE_PORT)), 2: ("selector", ("map", _STR)),
                 3: ("clusterIP", _STR), 4: ("type", _STR),
                 5: ("externalIPs", ("repeated", _STR)), 7: ("sessionAffinity", _STR),
                 10: ("externalName", _STR), 11: ("externalTrafficPolicy", _STR),
                 13: ("publishNotReadyAddresses", _BOOL), 17: ("ipFamilyPolicy", _STR),
                 18: ("clusterIPs", ("repeated", _STR)), 19: ("ipFamilies", ("repeated", _STR)),
                 22: ("internalTrafficPolicy", _STR)}
KINDS = {
    "ConfigMap": {1: ("metadata", _META), 2: ("data", ("map", _STR)),
                  3: ("binaryData", ("map", _BYTES)), 4: ("immutable", _BOOL)},
    "Secret": {1: ("metadata", _META), 2: ("data", ("map", _BYTES)), 3: ("type", _STR),
               4: ("stringData", ("map", _STR)), 5: ("immutable", _BOOL)},
    "Namespace": {1: ("metadata", _META),
                  2: ("spec", {1: ("finalizers", ("repeated", _STR))})},
    "Service": {1: ("metadata", _META), 2: ("spec", _SERVICE_SPEC)},
    "ServiceAccount": {1: ("metadata", _META)},
}
_UNKNOWN = {1: ("typeMeta", {1: ("apiVersion", _STR), 2: ("kind", _STR)}),
            2: ("raw", _BYTES), 3: ("contentEncoding", _STR), 4: ("contentType", _STR)}


class ProtoError(ValueError):
    pass


def _varint(data, position):
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtoError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, position


def _fields(data):
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        yield number, value


def _scalar(kind, value):
    if kind == _STR:
        return bytes(value).decode("utf-8")
    if kind == _BYTES:
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == _INT:
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == _BOOL:
        return bool(value)
    return decode_message(bytes(value), kind)


def decode_message(data, schema):
    out = {}
    for number, value in _fields(data):
        if number not in schema:
            continue  # a field this decoder does not know: dropped
        name, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = dict(_fields(bytes(value)))
            out.setdefault(name, {})[_scalar(_STR, entry.get(1, b""))] = \
                _scalar(kind[1], entry.get(2, b""))
        elif isinstance(kind, tuple) and kind[0] == "repeated":
            out.setdefault(name, []).append(_scalar(kind[1], value))
        else:
            decoded = _scalar(kind, value)
            if decoded not in ("", 0, False) or isinstance(kind, dict):
                out[name] = decoded  # Go's omitempty: zero values are not sent in JSON
    return out


def _int_or_string(port):
    target = port.get("targetPort")
    if isinstance(target, dict):
        port["targetPort"] = target.get("strVal", "") if target.get("type") == 1 else \
            target.get("intVal", 0)


def decode(data):
    """A JSON-shaped object from a k8s protobuf body (ProtoError when it cannot)."""
    if not data.startswith(b"k8s\x00"):
        raise ProtoError("missing the k8s protobuf magic")
    envelope = decode_message(data[4:], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in KINDS:
        raise ProtoError(f"protobuf bodies of kind {kind!r} are not understood here")
    obj = decode_message(base64.b64decode(envelope.get("raw", "")), KINDS[kind])
    obj["apiVersion"], obj["kind"] = type_meta.get("apiVersion", "v1"), kind
    for port in (obj.get("spec") or {}).get("ports") or []:
        _int_or_string(port)
    return obj
