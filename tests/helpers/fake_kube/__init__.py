"""A fake Kubernetes API server good enough for kubectl and the wsgate controller (python3
stdlib, plus python3-yaml when present). See docs/guides/testing-kubernetes.md.

  util       v1 Status errors, selectors, JSONPath, time
  resources  the table of served kinds, CRDs -> resource types, printer columns
  patch      merge, JSON and strategic merge patches; server-side apply and managedFields
  store      objects, the resourceVersion counter, history, write rules
  watch      watch streams
  tables     server-side printing (Table)
  discovery  /api, /apis, /version
  openapi    /openapi/v3
  http       TLS server, auth, routing, verbs
  server     FakeKubeApiServer, the in-process API tests use
"""

from .patch import merge_patch
from .server import FakeKubeApiServer, check_status_schema
from .util import status_object

__all__ = ["FakeKubeApiServer", "check_status_schema", "merge_patch", "status_object"]
