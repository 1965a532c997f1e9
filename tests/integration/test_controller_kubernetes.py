"""wsgate-controller --kubernetes end to end: custom resources in a fake API server that speaks
the real wire protocol (tests/helpers/fake_kube_apiserver.py) become routes served by a proxy
connected to the controller over gRPC; an invalid object gets Accepted=False and does not
disturb the others; --routes DIR merges with the custom resources.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_controller_kubernetes.py
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import harness  # noqa: E402
from fake_kube_apiserver import FakeKubeApiServer  # noqa: E402
from test_pki import TestPki  # noqa: E402
from harness import LOCALHOST, Process, binary, echo_route_spec, wait_until, write_route  # noqa: E402
from test_controlplane import start_cp_proxy, upgrade_status  # noqa: E402
from test_kubernetes_source import accepted  # noqa: E402


class ControllerKubernetesTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="wsgate-ctl-kube-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki_dir, True)
        cls.pki = TestPki(cls.pki_dir, "fake kube CA", with_kube_pair=True)

    def setUp(self):
        super().setUp()
        self.echo = self.start_echo_backend()
        self.server = FakeKubeApiServer(pki=self.pki).start()
        self.addCleanup(self.server.stop)

    def kubeconfig(self):
        directory = self.make_temp_dir("wsgate-kubeconfig-")
        path = os.path.join(directory, "config")
        with open(path, "w", encoding="ascii") as out:
            out.write("\n".join([
                "apiVersion: v1", "kind: Config",
                "clusters:", "- name: fake", "  cluster:", f"    server: {self.server.url}",
                f"    certificate-authority: {self.pki.ca_cert}",
                "users:", "- name: tester", "  user:", "    token: test-token",
                "contexts:", "- name: fake", "  context:", "    cluster: fake", "    user: tester",
                "current-context: fake", ""]))
        return path

    def start_controller(self, extra_args=()):
        args = [binary("wsgate-controller"), "--kubernetes", "--kubeconfig", self.kubeconfig(),
                "--grpc-listen", f"{LOCALHOST}:0", "--admin", f"{LOCALHOST}:0", *extra_args]
        process = self._own(Process(args, name="controller"))
        process.grpc_port = process.listening("grpc")
        process.admin_port = process.listening("admin")
        return process

    def spec(self, path):
        return {"pathPrefix": path, "backends": [{"address": f"{LOCALHOST}:{self.echo.port}"}]}

    def wait_status(self, proxy, path, status):
        wait_until(lambda: upgrade_status(proxy.port, path) == status,
                   what=f"{path} answering {status}")

    def test_custom_resources_are_served_and_status_written(self):
        self.server.create("default", "alpha", self.spec("/alpha"))
        controller = self.start_controller()
        proxy = self._own(start_cp_proxy(controller.grpc_port, "proxy-k"))
        self.wait_status(proxy, "/alpha", 101)

        # A new resource reaches the proxy; an invalid one is refused, the others stay served.
        self.server.create("team", "beta", self.spec("/beta"))
        self.wait_status(proxy, "/beta", 101)
        self.server.create("default", "broken", {"backends": [{"address": "127.0.0.1"}]})

        def broken_refused():
            condition, generation = accepted(self.server.get("default", "broken"))
            return condition is not None and condition["status"] == "False" and generation == 1 and condition
        condition = wait_until(broken_refused, what="default/broken Accepted=False")
        self.assertIn("spec.backends[0].address: missing port", condition["message"])
        self.assertEqual(upgrade_status(proxy.port, "/alpha"), 101)
        self.assertEqual(upgrade_status(proxy.port, "/beta"), 101)
        good, _ = accepted(self.server.get("team", "beta"))
        self.assertEqual(good["status"], "True")

        # Deleting a resource removes its route.
        self.server.delete("team", "beta")
        self.wait_status(proxy, "/beta", 404)
        self.assertEqual(upgrade_status(proxy.port, "/alpha"), 101)

    def test_route_files_merge_with_custom_resources(self):
        routes = self.make_temp_dir()
        write_route(routes, "from-file", echo_route_spec(self.echo.port, "/file"))
        self.server.create("default", "from-kube", self.spec("/kube"))
        controller = self.start_controller(["--routes", routes])
        proxy = self._own(start_cp_proxy(controller.grpc_port, "proxy-m"))
        self.wait_status(proxy, "/file", 101)
        self.wait_status(proxy, "/kube", 101)


if __name__ == "__main__":
    harness.main()
