"""OpenAPI as far as kubectl needs it.

/openapi/v3 lists one document per group/version; each document has the resources' paths
with a PATCH operation tagged x-kubernetes-group-version-kind whose parameters include
fieldValidation and fieldManager, so kubectl leaves validation to the server (and we accept
everything). PATCH operations carry no requestBody: kubectl then computes strategic merge
patches from its compiled-in types instead of from schemas. Custom resources' documents carry
their CRD's openAPIV3Schema under components.schemas, which is what `kubectl explain` reads.
/openapi/v2 answers 404, as an apiserver with it disabled does; kubectl copes."""

import hashlib
import json

_PARAMETERS = [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True},
                "description": name}
               for name in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")]


def gv_path(rtype):
    return f"apis/{rtype.group}/{rtype.version}" if rtype.group else f"api/{rtype.version}"


def _schema_name(rtype):
    group = ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
    return f"{group}.{rtype.version}.{rtype.kind}"


def document(store, path):
    types = [t for t in store.served() if gv_path(t) == path]
    if not types:
        return None
    paths, schemas = {}, {}
    for rtype in types:
        gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        base = "/" + path + ("/namespaces/{namespace}" if rtype.namespaced else "")
        item = f"{base}/{rtype.plural}/{{name}}"
        operation = {"operationId": f"patch{rtype.kind}", "parameters": list(_PARAMETERS),
                     "responses": {"200": {"description": "OK"}},
                     "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk}
        paths[item] = {"patch": operation,
                       "get": {"operationId": f"read{rtype.kind}",
                               "responses": {"200": {"description": "OK"}},
                               "x-kubernetes-action": "get",
                               "x-kubernetes-group-version-kind": gvk}}
        if rtype.status:
            status = dict(operation, operationId=f"patch{rtype.kind}Status")
            paths[item + "/status"] = {"patch": status}
        paths[f"{base}/{rtype.plural}"] = {
            "get": {"operationId": f"list{rtype.kind}", "x-kubernetes-action": "list",
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-group-version-kind": gvk}}
        if rtype.schema is not None:
            schema = json.loads(json.dumps(rtype.schema))
            schema["x-kubernetes-group-version-kind"] = [gvk]
            schemas[_schema_name(rtype)] = schema
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-fake"},
            "paths": paths, "components": {"schemas": schemas}}


def index(store):
    out = {}
    for path in sorted({gv_path(t) for t in store.served()}):
        digest = hashlib.sha512(json.dumps(document(store, path), sort_keys=True).encode())
        url = f"/openapi/v3/{path}?hash={digest.hexdigest()[:64].upper()}"
        out[path] = {"serverRelativeURL": url}
    return {"paths": out}
