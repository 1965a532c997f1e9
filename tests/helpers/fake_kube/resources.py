"""The table of resources the fake serves: built-in kinds, and one entry per served version of
every CustomResourceDefinition (from --crd files, the Python API or the API itself)."""

import dataclasses
import json

from .util import jsonpath, human_age

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclasses.dataclass
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple = ()
    categories: tuple = ()
    status: bool = False  # has a status subresource
    columns: tuple = ()  # (name, type, jsonPath or callable, priority)
    singular: str = ""
    list_kind: str = ""
    crd: str = None  # the CRD that defines it
    schema: dict = None  # openAPIV3Schema of a CRD version
    storage_versions: tuple = ()  # every version of the same resource

    def __post_init__(self):
        self.singular = self.singular or self.kind.lower()
        self.list_kind = self.list_kind or self.kind + "List"

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self):
        """Objects are stored per group and resource, whichever version wrote them."""
        return (self.group, self.plural)

    @property
    def strategic(self):
        """Built-in kinds take strategic merge patches; custom resources do not."""
        return self.crd is None


def _ports(obj):
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}{'/' + p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _count(field):
    return lambda obj: str(len(obj.get(field) or {}) + len(obj.get("binaryData") or {})
                           if field == "data" else len(obj.get(field) or {}))


def _pod_ready(obj):
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    containers = (obj.get("spec") or {}).get("containers") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _slice_ports(obj):
    ports = obj.get("ports") or []
    return ",".join(str(p.get("port")) for p in ports) or "<unset>"


def _slice_endpoints(obj):
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return ",".join(addresses[:3]) + (" + more..." if len(addresses) > 3 else "") or "<unset>"


def _crd_created(obj):
    return obj.get("metadata", {}).get("creationTimestamp", "")


def _ingress_hosts(obj):
    hosts = [r.get("host", "*") for r in (obj.get("spec") or {}).get("rules") or []]
    return ",".join(hosts) or "*"


def _core(kind, plural, **kwargs):
    return ResourceType("", "v1", kind, plural, **kwargs)


BUILTINS = [
    _core("Namespace", "namespaces", namespaced=False, short_names=("ns",), status=True,
          columns=(("Status", "string", ".status.phase", 0),)),
    _core("Service", "services", short_names=("svc",), status=True, categories=("all",),
          columns=(("Type", "string", ".spec.type", 0),
                   ("Cluster-IP", "string", ".spec.clusterIP", 0),
                   ("Port(s)", "string", _ports, 0),
                   ("Selector", "string", lambda o: ",".join(
                       f"{k}={v}" for k, v in sorted(((o.get("spec") or {}).get("selector") or {})
                                                     .items())) or "<none>", 1))),
    _core("Secret", "secrets", columns=(("Type", "string", ".type", 0),
                                        ("Data", "string", _count("data"), 0))),
    _core("ConfigMap", "configmaps", short_names=("cm",),
          columns=(("Data", "string", _count("data"), 0),)),
    _core("Pod", "pods", short_names=("po",), status=True, categories=("all",),
          columns=(("Ready", "string", _pod_ready, 0),
                   ("Status", "string", ".status.phase", 0),
                   ("IP", "string", ".status.podIP", 1))),
    _core("Event", "events", short_names=("ev",),
          columns=(("Type", "string", ".type", 0), ("Reason", "string", ".reason", 0),
                   ("Object", "string", lambda o: "{}/{}".format(
                       (o.get("involvedObject") or {}).get("kind", "").lower(),
                       (o.get("involvedObject") or {}).get("name", "")), 0),
                   ("Message", "string", ".message", 0))),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",)),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases",
                 columns=(("Holder", "string", ".spec.holderIdentity", 0),)),
    ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",),
                 status=True, columns=(("Class", "string", ".spec.ingressClassName", 0),
                                       ("Hosts", "string", _ingress_hosts, 0))),
    ResourceType("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False,
                 columns=(("Controller", "string", ".spec.controller", 0),)),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices",
                 columns=(("AddressType", "string", ".addressType", 0),
                          ("Ports", "string", _slice_ports, 0),
                          ("Endpoints", "string", _slice_endpoints, 0))),
    ResourceType("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
                 "validatingwebhookconfigurations", namespaced=False),
    ResourceType("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
                 "mutatingwebhookconfigurations", namespaced=False),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
                 "customresourcedefinitions", namespaced=False, short_names=("crd", "crds"),
                 status=True, columns=(("Created At", "date", _crd_created, 0),)),
]

# Kinds whose objects carry no metadata.generation in a real cluster.
NO_GENERATION = {"ConfigMap", "Secret", "Event", "ServiceAccount", "Namespace", "Lease",
                 "EndpointSlice", "Service", "Pod"}


def crd_types(crd):
    """One ResourceType per served version of a CRD object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    all_versions = tuple(v["name"] for v in versions)
    out = []
    for version in versions:
        columns = tuple((c["name"], c.get("type", "string"), c["jsonPath"], c.get("priority", 0))
                        for c in version.get("additionalPrinterColumns") or [])
        out.append(ResourceType(
            spec["group"], version["name"], names["kind"], names["plural"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status="status" in (version.get("subresources") or {}),
            columns=columns, singular=names.get("singular", ""),
            list_kind=names.get("listKind", ""), crd=crd["metadata"]["name"],
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            storage_versions=all_versions))
    return out


def check_crd(crd):
    """The problems kube-apiserver would refuse a CRD for (a few of them), or None."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = (crd.get("metadata") or {}).get("name", "")
    for field in ("group",):
        if not spec.get(field):
            return f"spec.{field}: Required value"
    for field in ("kind", "plural"):
        if not names.get(field):
            return f"spec.names.{field}: Required value"
    if name != f"{names['plural']}.{spec['group']}":
        return f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group'
    if spec.get("scope", "Namespaced") not in ("Namespaced", "Cluster"):
        return "spec.scope: Unsupported value"
    if not spec.get("versions") or sum(1 for v in spec["versions"] if v.get("storage")) != 1:
        return "spec.versions: Invalid value: must have exactly one version marked as storage " \
            "version"
    return None


def cell(obj, column):
    """One printed cell of a column (name, type, path-or-function, priority)."""
    _, kind, path, _ = column
    if callable(path):
        value = path(obj)
    else:
        values = jsonpath(obj, path)
        if not values:
            return None
        if kind == "date":
            return human_age(values[0])
        value = values[0] if len(values) == 1 else ",".join(
            v if isinstance(v, str) else _text(v) for v in values)
    if kind == "date":
        return human_age(value)
    if kind in ("integer", "number", "boolean"):
        return value
    return value if isinstance(value, str) else _text(value)


def _text(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def apply_defaults(schema, value):
    """Structural-schema defaulting of a custom resource (in place): every `default` of a
    property missing from an object that is there, as kube-apiserver does on write."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        for name, child in (schema.get("properties") or {}).items():
            if name not in value and isinstance(child, dict) and "default" in child:
                value[name] = json.loads(json.dumps(child["default"]))
            if name in value:
                apply_defaults(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in (schema.get("properties") or {}):
                    apply_defaults(extra, value[name])
    elif isinstance(value, list):
        for item in value:
            apply_defaults(schema.get("items"), item)
