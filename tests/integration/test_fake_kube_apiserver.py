"""The fake Kubernetes API server (tests/helpers/fake_kube) against the real kubectl: discovery,
client-side and server-side apply, get -o yaml/json and tables, patches (merge, JSON,
strategic, status subresource), wait --for=condition and --for=delete, get -w, delete,
CRDs applied at runtime, errors as v1 Status objects (401, 404, 409, 410), and the server run
as a process with the kubeconfig it writes (also used by wsgate-controller, when built).

Needs kubectl (1.32 is on the machine image; skipped without it).
Run: WSGATE_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_fake_kube_apiserver.py
"""

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import harness  # noqa: E402
from fake_kube_apiserver import FakeKubeApiServer, WSGATE_CRD, write_kubeconfig  # noqa: E402
from test_pki import TestPki  # noqa: E402
from harness import Process, wait_until  # noqa: E402

try:
    import yaml
except ImportError:  # -o yaml is then checked as text only
    yaml = None

KUBECTL = shutil.which("kubectl")
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers",
                      "fake_kube_apiserver.py")
KUBECTL_TIMEOUT = 30

SERVICE_AND_SLICE = """\
apiVersion: v1
kind: Service
metadata:
  name: chat
  labels: {app: chat}
spec:
  selector: {app: chat}
  ports:
  - {name: ws, port: 9000}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: chat-1
  labels: {kubernetes.io/service-name: chat}
addressType: IPv4
ports:
- {name: ws, port: 9000, protocol: TCP}
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true, serving: true, terminating: false}
"""

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: chat}
data:
  mode: MODE
"""

ROUTE = """\
apiVersion: wsgate.dev/v1alpha1
kind: WebSocketRoute
metadata:
  name: {name}
spec:
  pathPrefix: {path}
  backends:
  - address: chat:9000
"""


def config_map(mode):
    return CONFIG_MAP.replace("MODE", mode)


def route_yaml(name, path):
    return ROUTE.format(name=name, path=path)


ACCEPTED = {"status": {"observedGeneration": 1, "conditions": [{
    "type": "Accepted", "status": "True", "reason": "Accepted", "message": "served",
    "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}


class KubectlFailed(AssertionError):
    def __init__(self, result):
        super().__init__(f"kubectl {' '.join(result.args[1:])} exited {result.returncode}:\n"
                         f"{result.stdout}{result.stderr}")
        self.result = result


@unittest.skipIf(KUBECTL is None, "kubectl is not installed")
class FakeKubeApiServerTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wsgate-fake-kube-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.pki = TestPki(os.path.join(cls.dir, "pki"), "fake kube CA", with_kube_pair=True)

    def setUp(self):
        super().setUp()
        self.server = FakeKubeApiServer(pki=self.pki, crds=(), chunk_size=0).start()
        self.addCleanup(self.server.stop)
        self.home = self.make_temp_dir("wsgate-kubectl-home-")
        self.kubeconfig = os.path.join(self.home, "config")
        write_kubeconfig(self.kubeconfig, self.server, self.pki.ca_cert, "test-token")

    # ----- helpers

    def kubectl_args(self, args, kubeconfig=None):
        return [KUBECTL, "--kubeconfig", kubeconfig or self.kubeconfig,
                "--cache-dir", os.path.join(self.home, "cache"), *args]

    def env(self):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home}

    def run_kubectl(self, *args, stdin=None, kubeconfig=None):
        return subprocess.run(self.kubectl_args(args, kubeconfig), input=stdin, text=True,
                              capture_output=True, timeout=KUBECTL_TIMEOUT, env=self.env())

    def kubectl(self, *args, stdin=None, kubeconfig=None):
        result = self.run_kubectl(*args, stdin=stdin, kubeconfig=kubeconfig)
        if result.returncode != 0:
            raise KubectlFailed(result)
        return result.stdout

    def kubectl_fails(self, *args, stdin=None, kubeconfig=None):
        result = self.run_kubectl(*args, stdin=stdin, kubeconfig=kubeconfig)
        self.assertNotEqual(result.returncode, 0, result.stdout)
        return result.stderr

    def start_kubectl(self, *args, name="kubectl"):
        return self._own(Process(self.kubectl_args(args), name=name, env=self.env()))

    def get_json(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def get_yaml(self, *args):
        text = self.kubectl("get", *args, "-o", "yaml")
        return yaml.safe_load(text) if yaml else text

    def apply_crd(self):
        self.assertRegex(self.kubectl("apply", "-f", WSGATE_CRD),
                         r"customresourcedefinition.apiextensions.k8s.io/websocketroutes"
                         r".wsgate.dev created")
        self.kubectl("wait", "--for=condition=Established", "--timeout=10s",
                     "crd/websocketroutes.wsgate.dev")

    def raw(self, method, path, body=None, token="test-token", headers=None):
        """(status, parsed JSON body) of one HTTPS request."""
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        connection = http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=10,
                                                 context=context)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, path, body=json.dumps(body) if body is not None else None,
                               headers=all_headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def watch_requests(self, resource, name=None):
        def opened():
            return [r for r in self.server.requests_matching("GET", watch=True, path=resource)
                    if r["status"] == 200 and (name is None or name in
                                               r["query"].get("fieldSelector", ""))]
        return wait_until(opened, what=f"a watch on {resource} {name or ''}")

    # ----- tests

    def test_discovery_lists_the_built_in_kinds(self):
        resources = self.kubectl("api-resources", "-o", "name")
        for name in ("services", "endpointslices.discovery.k8s.io", "secrets", "configmaps",
                     "pods", "events", "namespaces", "leases.coordination.k8s.io",
                     "ingresses.networking.k8s.io", "ingressclasses.networking.k8s.io",
                     "customresourcedefinitions.apiextensions.k8s.io",
                     "validatingwebhookconfigurations.admissionregistration.k8s.io"):
            self.assertIn(name, resources.split())
        self.assertNotIn("endpoints", resources.split())
        self.assertIn("v1.32", self.kubectl("version", "-o", "json"))
        self.assertEqual(self.kubectl("get", "ns", "-o", "name").split(),
                         ["namespace/default", "namespace/kube-node-lease",
                          "namespace/kube-public", "namespace/kube-system"])

    def test_apply_get_and_reapply(self):
        out = self.kubectl("apply", "-f", "-", stdin=SERVICE_AND_SLICE)
        self.assertIn("service/chat created", out)
        self.assertIn("endpointslice.discovery.k8s.io/chat-1 created", out)
        self.assertIn("configmap/settings created",
                      self.kubectl("apply", "-f", "-", stdin=config_map("a")))
        self.apply_crd()
        self.assertIn("websocketroute.wsgate.dev/chat created", self.kubectl(
            "apply", "-f", "-", stdin=route_yaml("chat", "/ws")))

        service = self.get_yaml("service", "chat")
        if yaml is None:
            self.assertRegex(service, r"clusterIP: 10\.96\.")
            return
        metadata = service["metadata"]
        self.assertRegex(metadata["uid"], r"^[0-9a-f-]{36}$")
        self.assertRegex(metadata["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration", metadata["annotations"])
        self.assertRegex(service["spec"]["clusterIP"], r"^10\.96\.")
        self.assertEqual(service["spec"]["ports"][0]["targetPort"], 9000)
        slices = self.get_yaml("endpointslices", "-l", "kubernetes.io/service-name=chat")
        self.assertEqual([s["metadata"]["name"] for s in slices["items"]], ["chat-1"])
        self.assertEqual(slices["items"][0]["endpoints"][0]["addresses"], ["127.0.0.1"])
        route = self.get_yaml("websocketroute", "chat")
        self.assertEqual((route["apiVersion"], route["metadata"]["generation"]),
                         ("wsgate.dev/v1alpha1", 1))
        self.assertEqual(route["spec"]["backends"], [{"address": "chat:9000", "weight": 1,
                                                      "tls": False}])  # the CRD's defaults
        self.assertEqual(route["spec"]["handshakeTimeoutSeconds"], 10)
        versions = [int(self.get_json(kind, name)["metadata"]["resourceVersion"])
                    for kind, name in (("service", "chat"), ("endpointslice", "chat-1"),
                                       ("configmap", "settings"), ("wsr", "chat"))]
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(len(set(versions)), 4)

        # Unchanged files change nothing; a changed one is patched (RV and data move).
        self.assertRegex(self.kubectl("apply", "-f", "-", stdin=config_map("a")),
                         r"configmap/settings unchanged")
        # The CRD's defaults filled in backends[0] (weight, tls): the list differs from the
        # file, so kubectl sends it again (as against a real server); it changes nothing.
        self.assertRegex(self.kubectl("apply", "-f", "-", stdin=route_yaml("chat", "/ws")),
                         r"websocketroute.wsgate.dev/chat configured")
        self.assertEqual(int(self.get_json("wsr", "chat")["metadata"]["resourceVersion"]),
                         versions[3])
        self.assertIn("configmap/settings configured",
                      self.kubectl("apply", "-f", "-", stdin=config_map("b")))
        config = self.get_json("configmap", "settings")
        self.assertEqual(config["data"], {"mode": "b"})
        self.assertGreater(int(config["metadata"]["resourceVersion"]), versions[3])
        self.assertEqual(self.server.requests_matching("PATCH", path="configmaps/settings")[-1][
            "content_type"], "application/strategic-merge-patch+json")

        # Tables: the CRD's printer columns, -A adds the namespace, -l filters.
        table = self.kubectl("get", "wsr")
        self.assertRegex(table.splitlines()[0],
                         r"^NAME\s+HOSTS\s+PATH\s+BACKENDS\s+ACCEPTED\s+AGE$")
        self.assertRegex(table.splitlines()[1], r"^chat\s+/ws\s+chat:9000\s+\d+s$")
        self.assertRegex(self.kubectl("get", "svc", "-A"),
                         r"NAMESPACE\s+NAME\s+TYPE\s+CLUSTER-IP\s+PORT\(S\)\s+AGE\n"
                         r"default\s+chat\s+ClusterIP\s+10\.96\.\S+\s+9000/TCP\s+\d+s")

    def test_selectors_and_all_namespaces(self):
        self.kubectl("create", "namespace", "team")
        for namespace, name, app in (("default", "a", "x"), ("team", "b", "x"),
                                     ("team", "c", "y")):
            self.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"app": app}}}))
        self.assertEqual(self.kubectl("get", "cm", "-A", "-l", "app=x", "-o", "name").split(),
                         ["configmap/a", "configmap/b"])
        self.assertEqual(self.kubectl("get", "cm", "-A", "-l", "app in (y)", "-o", "name").split(),
                         ["configmap/c"])
        self.assertEqual(self.kubectl("get", "cm", "-n", "team", "-l", "app!=y", "-o",
                                      "name").split(), ["configmap/b"])
        self.assertEqual(self.kubectl("get", "cm", "-A", "--field-selector", "metadata.name=c",
                                      "-o", "jsonpath={.items[*].metadata.namespace}"), "team")
        # Deleting a namespace deletes what is in it.
        self.kubectl("delete", "namespace", "team")
        self.assertEqual(self.kubectl("get", "cm", "-A", "-o", "name").split(), ["configmap/a"])

    def test_patches_and_generation(self):
        self.kubectl("apply", "-f", "-", stdin=config_map("a"))
        self.kubectl("patch", "configmap", "settings", "--type", "merge",
                     "-p", '{"data": {"mode": "m", "extra": "1"}}')
        self.kubectl("patch", "configmap", "settings", "--type", "json",
                     "-p", '[{"op": "remove", "path": "/data/extra"},'
                     ' {"op": "add", "path": "/data/j", "value": "2"}]')
        self.assertEqual(self.get_json("cm", "settings")["data"], {"mode": "m", "j": "2"})
        self.assertIn("testing value /data/mode failed", self.kubectl_fails(
            "patch", "cm", "settings", "--type", "json",
            "-p", '[{"op": "test", "path": "/data/mode", "value": "zzz"}]'))
        # Strategic merge: service ports merge by port.
        self.kubectl("apply", "-f", "-", stdin=SERVICE_AND_SLICE)
        self.kubectl("patch", "service", "chat", "-p",
                     '{"spec": {"ports": [{"name": "admin", "port": 9100}], '
                     '"$setElementOrder/ports": [{"port": 9000}, {"port": 9100}]}}')
        ports = self.get_json("svc", "chat")["spec"]["ports"]
        self.assertEqual([(p["name"], p["port"]) for p in ports], [("ws", 9000), ("admin", 9100)])

        self.apply_crd()
        self.kubectl("apply", "-f", "-", stdin=route_yaml("r", "/a"))
        self.kubectl("label", "wsr", "r", "tier=edge")
        self.assertEqual(self.get_json("wsr", "r")["metadata"]["generation"], 1)
        self.kubectl("patch", "wsr", "r", "--type", "merge", "-p", '{"spec": {"pathPrefix": "/b"}}')
        route = self.get_json("wsr", "r")
        self.assertEqual((route["spec"]["pathPrefix"], route["metadata"]["generation"]), ("/b", 2))
        self.assertIn("no change", self.kubectl("patch", "wsr", "r", "--type", "merge",
                                                "-p", '{"spec": {"pathPrefix": "/b"}}'))
        # Custom resources take no strategic merge patch (415), as in a real cluster.
        self.assertIn("application/strategic-merge-patch+json is not supported", self.kubectl_fails(
            "patch", "wsr", "r", "--type", "strategic", "-p", '{"spec": {"pathPrefix": "/c"}}'))

    def test_status_subresource_and_wait_for_condition(self):
        self.server.add_crd(WSGATE_CRD)  # from the test side: a route without its defaults
        self.server.create("default", "r", {"pathPrefix": "/a", "backends": [{"address": "b:1"}]})
        # The main resource ignores .status; the status subresource takes only .status.
        self.kubectl("patch", "wsr", "r", "--type", "merge", "-p", json.dumps(ACCEPTED))
        self.assertNotIn("status", self.get_json("wsr", "r"))

        waiter = self.start_kubectl("wait", "--for=condition=Accepted", "--timeout=20s",
                                    "websocketroute/r", name="kubectl-wait")
        self.watch_requests("websocketroutes", "r")
        self.assertTrue(waiter.running(), waiter.log_text())
        patcher = threading.Thread(target=self.kubectl, args=(
            "patch", "wsr", "r", "--subresource=status", "--type", "merge", "-p",
            json.dumps(dict(ACCEPTED, spec={"pathPrefix": "/ignored"}))))
        patcher.start()
        patcher.join(KUBECTL_TIMEOUT)
        self.assertEqual(waiter.wait(timeout=20), 0, waiter.log_text())
        self.assertIn("websocketroute.wsgate.dev/r condition met", waiter.log_text())
        route = self.get_json("wsr", "r")
        self.assertEqual(route["spec"]["pathPrefix"], "/a")
        self.assertEqual(route["metadata"]["generation"], 1)
        self.assertEqual(route["status"]["conditions"][0]["status"], "True")
        write = self.server.writes()[-1]
        self.assertEqual((write["method"], write["content_type"]),
                         ("PATCH", "application/merge-patch+json"))
        # The CRD's status schema: a condition without a reason is refused (422).
        self.assertIn("is invalid", self.kubectl_fails(
            "patch", "wsr", "r", "--subresource=status", "--type", "json", "-p",
            '[{"op": "remove", "path": "/status/conditions/0/reason"}]'))

    def test_watch_sees_modified_and_deleted(self):
        self.kubectl("apply", "-f", "-", stdin=config_map("a"))
        events = self.start_kubectl(
            "get", "configmap", "settings", "--watch", "--output-watch-events", "-o",
            "jsonpath={.type} {.object.metadata.name} {.object.data.mode}{\"\\n\"}",
            name="kubectl-watch")
        table = self.start_kubectl("get", "configmaps", "--watch", "--output-watch-events",
                                   name="kubectl-watch-table")
        events.wait_for_log(r"^ADDED settings a$")
        table.wait_for_log(r"^EVENT\s+NAME\s+DATA\s+AGE$")
        self.watch_requests("configmaps", "settings")
        wait_until(lambda: len(self.watch_requests("configmaps")) >= 2, what="both watches")
        self.kubectl("patch", "cm", "settings", "--type", "merge", "-p", '{"data": {"mode": "b"}}')
        events.wait_for_log(r"^MODIFIED settings b$")
        table.wait_for_log(r"^MODIFIED\s+settings\s+1\s+\d+s$")
        self.kubectl("delete", "configmap", "settings")
        events.wait_for_log(r"^DELETED settings b$")
        table.wait_for_log(r"^DELETED\s+settings\s+1\s+\d+s$")
        self.assertEqual(len([l for l in events.lines() if l.strip()]), 3, events.log_text())

    def test_server_side_apply_is_idempotent_and_tracks_owners(self):
        self.apply_crd()
        manifest = config_map("a") + "---\n" + route_yaml("r", "/a")
        out = self.kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
        self.assertIn("configmap/settings serverside-applied", out)
        self.assertIn("websocketroute.wsgate.dev/r serverside-applied", out)
        first = [self.get_json(k, "settings" if k == "cm" else "r") for k in ("cm", "wsr")]
        self.kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
        second = [self.get_json(k, "settings" if k == "cm" else "r") for k in ("cm", "wsr")]
        self.assertEqual([o["metadata"]["resourceVersion"] for o in first],
                         [o["metadata"]["resourceVersion"] for o in second])
        managed = json.loads(self.kubectl("get", "cm", "settings", "--show-managed-fields",
                                          "-o", "json"))["metadata"]["managedFields"]
        self.assertEqual([(m["manager"], m["operation"]) for m in managed], [("kubectl", "Apply")])
        self.assertIn("f:mode", managed[0]["fieldsV1"]["f:data"])

        # Another writer takes a field: a conflict, unless forced; dropped fields go.
        self.kubectl("patch", "cm", "settings", "--type", "merge", "-p", '{"data": {"mode": "x"}}')
        self.assertIn('conflict with "kubectl-patch"', self.kubectl_fails(
            "apply", "--server-side", "-f", "-", stdin=config_map("a")))
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     stdin=config_map("a"))
        self.assertEqual(self.get_json("cm", "settings")["data"], {"mode": "a"})
        self.kubectl("apply", "--server-side", "-f", "-",
                     stdin=config_map("a").replace("  labels: {app: chat}\n", ""))
        self.assertNotIn("labels", self.get_json("cm", "settings")["metadata"])

    def test_delete_finalizers_and_wait_for_delete(self):
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
        self.assertIn('configmap "held" deleted', self.kubectl("delete", "cm", "held",
                                                               "--wait=false"))
        held = self.get_json("cm", "held")
        self.assertIn("deletionTimestamp", held["metadata"])
        waiter = self.start_kubectl("wait", "--for=delete", "--timeout=20s", "configmap/held",
                                    name="kubectl-wait-delete")
        self.watch_requests("configmaps", "held")
        self.kubectl("patch", "cm", "held", "--type", "json",
                     "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')
        self.assertEqual(waiter.wait(timeout=20), 0, waiter.log_text())
        self.assertIn("NotFound", self.kubectl_fails("get", "cm", "held"))
        # DELETE answers 200 with the object.
        self.kubectl("create", "configmap", "plain", "--from-literal=a=b")
        status, body = self.raw("DELETE", "/api/v1/namespaces/default/configmaps/plain")
        self.assertEqual((status, body["kind"], body["metadata"]["name"]),
                         (200, "ConfigMap", "plain"))

    def test_errors_are_status_objects(self):
        self.assertIn('Error from server (NotFound): configmaps "nope" not found',
                      self.kubectl_fails("get", "configmap", "nope"))
        self.kubectl("create", "configmap", "once")
        self.assertIn('configmaps "once" already exists',
                      self.kubectl_fails("create", "configmap", "once"))
        self.assertIn('Error from server (AlreadyExists): error when creating "STDIN": '
                      'configmaps "once" already exists', self.kubectl_fails(
                          "create", "-f", "-", stdin=json.dumps({
                              "apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "once"}})))
        self.assertIn('namespaces "nowhere" not found',
                      self.kubectl_fails("create", "configmap", "x", "-n", "nowhere"))
        # A PUT with a stale resourceVersion: 409 Conflict.
        stale = self.kubectl("get", "cm", "once", "-o", "json")
        self.kubectl("patch", "cm", "once", "--type", "merge", "-p", '{"data": {"a": "1"}}')
        self.assertIn("the object has been modified", self.kubectl_fails(
            "replace", "-f", "-", stdin=stale))
        status, body = self.raw("GET", "/api/v1/namespaces/default/configmaps/nope")
        self.assertEqual((status, body["kind"], body["reason"], body["code"], body["details"]),
                         (404, "Status", "NotFound", 404, {"name": "nope", "group": "",
                                                           "kind": "configmaps"}))
        status, body = self.raw("POST", "/api/v1/namespaces/default/configmaps",
                                {"metadata": {"name": "once"}})
        self.assertEqual((status, body["reason"]), (409, "AlreadyExists"))
        status, body = self.raw("GET", "/apis/example.com/v1/widgets")
        self.assertEqual((status, body["reason"]), (404, "NotFound"))
        # No token, or a wrong one: 401.
        self.assertEqual(self.raw("GET", "/api/v1/namespaces", token=None)[0], 401)
        status, body = self.raw("GET", "/api", token="wrong")
        self.assertEqual((status, body["reason"]), (401, "Unauthorized"))
        wrong = os.path.join(self.home, "wrong-token")
        write_kubeconfig(wrong, self.server, self.pki.ca_cert, "wrong")
        self.assertRegex(self.kubectl_fails("get", "cm", kubeconfig=wrong),
                         r"Unauthorized|must be logged in")

    def test_watch_too_old_resource_version_is_gone(self):
        self.kubectl("create", "configmap", "a")
        old_rv = self.get_json("cm", "a")["metadata"]["resourceVersion"]
        self.kubectl("create", "configmap", "b")  # history moves past old_rv, then goes
        self.server.expire()
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        connection = http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=10,
                                                 context=context)
        self.addCleanup(connection.close)
        connection.request("GET", f"/api/v1/namespaces/default/configmaps?watch=1&"
                           f"resourceVersion={old_rv}",
                           headers={"Authorization": "Bearer test-token"})
        response = connection.getresponse()
        self.assertEqual(response.status, 200)
        event = json.loads(response.readline())
        self.assertEqual((event["type"], event["object"]["code"], event["object"]["reason"]),
                         ("ERROR", 410, "Expired"))

    def test_crds_applied_at_runtime_become_servable(self):
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Cluster",
                        "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wg"]},
                        "versions": [
                            {"name": "v1beta1", "served": True, "storage": False,
                             "schema": {"openAPIV3Schema": {"type": "object"}}},
                            {"name": "v1", "served": True, "storage": True,
                             "subresources": {"status": {}},
                             "additionalPrinterColumns": [
                                 {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                             "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
        self.kubectl("wait", "--for=condition=Established", "--timeout=10s",
                     "crd/widgets.example.com")
        self.assertIn("widgets.example.com", self.kubectl("api-resources", "-o", "name").split())
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 3}}))
        self.assertRegex(self.kubectl("get", "wg"), r"NAME\s+SIZE\n(w)\s+3\n")
        # Both versions serve the same object; it is cluster-scoped.
        old = self.get_json("widgets.v1beta1.example.com", "w")
        self.assertEqual((old["apiVersion"], old["spec"]["size"]), ("example.com/v1beta1", 3))
        self.assertNotIn("namespace", old["metadata"])
        self.kubectl("patch", "wg", "w", "--subresource=status", "--type", "merge",
                     "-p", '{"status": {"ready": true}}')
        self.assertEqual(self.get_json("wg", "w")["status"], {"ready": True})
        # An invalid CRD is refused; deleting the CRD takes its objects and resource away.
        bad = dict(crd, metadata={"name": "wrong.example.com"})
        self.assertIn("must be spec.names.plural", self.kubectl_fails(
            "apply", "-f", "-", stdin=json.dumps(bad)))
        self.kubectl("delete", "crd", "widgets.example.com")
        self.assertEqual(self.raw("GET", "/apis/example.com/v1/widgets")[0], 404)
        self.assertNotIn("widgets.example.com", self.kubectl("api-resources", "-o", "name").split())

    def test_kinds_the_controller_uses(self):
        self.kubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cret")
        self.assertEqual(self.kubectl("get", "secret", "creds", "-o",
                                      "jsonpath={.data.token}"), "czNjcmV0")
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "wsgate-controller"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
        lease = self.get_json("lease", "wsgate-controller")
        # Leader election: an update against the RV it read wins, a second one conflicts.
        lease["spec"]["holderIdentity"] = "b"
        path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/wsgate-controller"
        self.assertEqual(self.raw("PUT", path, lease)[0], 200)
        lease["spec"]["holderIdentity"] = "c"
        status, body = self.raw("PUT", path, lease)
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertRegex(self.kubectl("get", "lease"), r"wsgate-controller\s+b\s")
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "wsgate"}, "spec": {"controller": "wsgate.dev/controller"}}))
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
            "spec": {"ingressClassName": "wsgate", "rules": [{"host": "chat.example.com"}]}}))
        self.assertRegex(self.kubectl("get", "ingress"), r"i\s+wsgate\s+chat.example.com\s+\d+s")
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        self.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default",
                               "uid": self.get_json("pod", "p")["metadata"]["uid"]},
            "reason": "Tested", "message": "hello", "type": "Normal"}))
        self.assertIn("Tested", self.kubectl("describe", "pod", "p"))

    def test_more_kubectl_commands(self):
        self.apply_crd()
        self.kubectl("get", "wsr")  # explain reads the discovery cache without refreshing it
        self.assertIn("pathPrefix\t<string>", self.kubectl("explain", "wsr.spec"))
        self.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
        self.assertEqual(self.get_json("svc", "web")["spec"]["ports"], [
            {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}])
        self.kubectl("create", "serviceaccount", "bot")
        self.kubectl("annotate", "sa", "bot", "example.com/note=hi")
        self.assertEqual(self.get_json("sa", "bot")["metadata"]["annotations"],
                         {"example.com/note": "hi"})
        self.kubectl("apply", "-f", "-", stdin=SERVICE_AND_SLICE)
        self.assertIn('service "chat" deleted', self.kubectl("delete", "-f", "-",
                                                             stdin=SERVICE_AND_SLICE))
        self.assertEqual(self.kubectl("get", "endpointslices", "-o", "name"), "")
        for name in ("a", "b"):
            self.kubectl("create", "configmap", name)
        self.kubectl("delete", "configmaps", "--all")
        self.assertEqual(self.kubectl("get", "cm", "-o", "name"), "")

    def test_runs_as_a_process_with_its_kubeconfig(self):
        kubeconfig = os.path.join(self.home, "process-kubeconfig")
        server = self.start_process(
            [sys.executable, HELPER, "--listen", "127.0.0.1:0", "--kubeconfig-out", kubeconfig,
             "--crd", WSGATE_CRD, "--pki-dir", os.path.join(self.home, "pki")],
            name="fake-kube-apiserver")
        port = int(server.wait_for_log(r"^listening on 127\.0\.0\.1:(\d+)$", timeout=20).group(1))
        with open(kubeconfig, encoding="ascii") as source:
            text = source.read()
        self.assertIn(f"server: https://127.0.0.1:{port}", text)
        self.assertRegex(text, r"certificate-authority-data: \S+")
        self.assertRegex(text, r"token: [0-9a-f]{32}")
        self.assertIn("No resources found", self.run_kubectl(
            "get", "websocketroutes", kubeconfig=kubeconfig).stderr)
        self.kubectl("apply", "-f", "-", stdin=route_yaml("r", "/a"),
                     kubeconfig=kubeconfig)
        self.assertIn("r", self.kubectl("get", "wsr", "-o", "name", kubeconfig=kubeconfig))
        context = ssl.create_default_context(cafile=os.path.join(self.home, "pki", "ca.crt"))
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        connection.request("GET", "/api/v1/namespaces")
        self.assertEqual(connection.getresponse().status, 401)
        connection.close()
        self.assertEqual(server.terminate(), 0)

    def test_controller_and_kubectl_share_the_process_kubeconfig(self):
        controller_binary = os.path.join(harness.BIN_DIR, "wsgate-controller")
        if not os.access(controller_binary, os.X_OK):
            self.skipTest(f"{controller_binary} not built")
        kubeconfig = os.path.join(self.home, "process-kubeconfig")
        server = self.start_process(
            [sys.executable, HELPER, "--listen", "127.0.0.1:0", "--kubeconfig-out", kubeconfig,
             "--wsgate-crd", "--pki-dir", os.path.join(self.home, "pki")],
            name="fake-kube-apiserver")
        server.wait_for_log(r"^listening on 127\.0\.0\.1:\d+$", timeout=20)
        self.kubectl("apply", "-f", "-", stdin=route_yaml("r", "/a"), kubeconfig=kubeconfig)
        self.start_process([controller_binary, "--kubernetes", "--kubeconfig", kubeconfig,
                            "--grpc-listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                           name="controller")
        self.kubectl("wait", "--for=condition=Accepted", "--timeout=20s", "wsr/r",
                     kubeconfig=kubeconfig)
        route = json.loads(self.kubectl("get", "wsr", "r", "-o", "json", kubeconfig=kubeconfig))
        self.assertEqual(route["status"]["observedGeneration"], 1)


if __name__ == "__main__":
    harness.main()
