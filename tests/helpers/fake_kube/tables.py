"""Server-side printing: meta.k8s.io/v1 Table answers for `kubectl get` (Accept: ...;as=Table),
with NAME, the resource's columns (a CRD's additionalPrinterColumns) and AGE."""

from .resources import cell
from .util import human_age

NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "priority": 0,
               "description": "Name must be unique within a namespace."}
AGE_COLUMN = ("Age", "date", lambda o: o.get("metadata", {}).get("creationTimestamp", ""), 0)


def wants_table(accept):
    """True when the Accept header's first choice is a Table."""
    first = (accept or "").split(",")[0]
    return "as=Table" in first.replace(" ", "")


def columns(rtype):
    if rtype.crd is not None:
        return list(rtype.columns) or [AGE_COLUMN]
    return list(rtype.columns) + [AGE_COLUMN]


def column_definitions(rtype):
    out = [dict(NAME_COLUMN)]
    for name, kind, _, priority in columns(rtype):
        out.append({"name": name, "type": kind, "format": "", "description": name,
                    "priority": priority})
    return out


def row(rtype, obj, include="Metadata"):
    cells = [obj.get("metadata", {}).get("name", "")]
    for column in columns(rtype):
        cells.append(cell(obj, column))  # None prints as <none>
    out = {"cells": cells}
    if include == "Object":
        out["object"] = obj
    elif include != "None":
        out["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata", {})}
    return out


def table(rtype, objects, metadata, include="Metadata", headers=True):
    body = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "rows": [row(rtype, obj, include) for obj in objects]}
    body["columnDefinitions"] = column_definitions(rtype) if headers else []
    return body


__all__ = ["wants_table", "table", "row", "human_age"]
