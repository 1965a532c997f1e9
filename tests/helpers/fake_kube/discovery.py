"""Legacy discovery (/api, /apis, /api/v1, /apis/GROUP[/VERSION]) and /version. Aggregated
discovery (apidiscovery.k8s.io/v2) is not offered: clients that ask for it get the legacy
documents as application/json and fall back, as against an old server."""

import re

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "fake",
           "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23",
           "compiler": "gc", "platform": "linux/amd64"}


def version_priority(version):
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    match = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not match:
        return (3, 0, 0, version)
    level = {"alpha": 2, "beta": 1, None: 0}[match.group(2)]
    return (level, -int(match.group(1)), -int(match.group(3) or 0), version)


def groups(store):
    """{group: [versions, preferred first]}."""
    out = {}
    for rtype in store.served():
        versions = out.setdefault(rtype.group, [])
        if rtype.version not in versions:
            versions.append(rtype.version)
    for versions in out.values():
        versions.sort(key=version_priority)
    return out


def api_versions(address):
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def _group(name, versions):
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(store):
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        _group(name, versions) for name, versions in sorted(groups(store).items()) if name]}


def api_group(store, name):
    versions = groups(store).get(name)
    if not versions or not name:
        return None
    body = _group(name, versions)
    body.update(kind="APIGroup", apiVersion="v1")
    return body


def resource_list(store, group, version):
    types = [t for t in store.served() if t.group == group and t.version == version]
    if not types:
        return None
    resources = []
    for rtype in types:
        entry = {"name": rtype.plural, "singularName": rtype.singular,
                 "namespaced": rtype.namespaced, "kind": rtype.kind,
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch",
                           "update", "watch"]}
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        if rtype.status:
            resources.append({"name": rtype.plural + "/status", "singularName": "",
                              "namespaced": rtype.namespaced, "kind": rtype.kind,
                              "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
