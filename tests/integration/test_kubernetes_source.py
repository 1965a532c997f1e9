"""The Kubernetes route source against a fake API server that speaks the real wire protocol
(tests/helpers/fake_kube_apiserver.py: HTTPS with a test CA, bearer tokens, list pages, chunked
watch streams, status subresource). wsgate-kube-probe runs the source and logs each table
it publishes ("kube-probe: table version=V routes=ns/a,ns/b").

Covers: initial list then watch from its resourceVersion, ADDED/MODIFIED/DELETED, BOOKMARK
moving the resume point, 410 as an ERROR event and as an HTTP status (relist), dropped
connections (reconnect with backoff, resume without relist), invalid objects (Accepted=False,
the rest still served), status with observedGeneration, the namespace filter, paginated lists,
kubeconfig shapes (token + CA file, inline CA + client certificate, insecure), in-cluster
configuration with token rotation, and merging with a route directory.

Run: WSGATE_BIN_DIR=build/bin WSGATE_SOURCE_DIR=. /usr/bin/python3 tests/integration/test_kubernetes_source.py
"""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import harness  # noqa: E402
from fake_kube_apiserver import FakeKubeApiServer  # noqa: E402
from test_pki import TestPki  # noqa: E402
from harness import wait_until, write_route, remove_route  # noqa: E402

TABLE_RE = r"kube-probe: table version=(\w+) routes=(\S+)$"
BACKOFF_INITIAL_MS = 200
BACKOFF_MAX_MS = 1600


def spec(port=9001, **fields):
    result = {"backends": [{"address": f"127.0.0.1:{port}"}]}
    result.update(fields)
    return result


def table_pattern(ids):
    return r"kube-probe: table version=(\w+) routes=" + re.escape(",".join(sorted(ids)) or "-") + "$"


def accepted(obj):
    """The object's Accepted condition (or None) and its status.observedGeneration."""
    status = (obj or {}).get("status") or {}
    for condition in status.get("conditions", []):
        if condition.get("type") == "Accepted":
            return condition, status.get("observedGeneration")
    return None, status.get("observedGeneration")


class KubernetesSourceTest(harness.HarnessTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="wsgate-kube-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki_dir, True)
        cls.pki = TestPki(cls.pki_dir, "fake kube CA", with_kube_pair=True)

    def start_server(self, **kwargs):
        server = FakeKubeApiServer(pki=self.pki, **kwargs).start()
        self.addCleanup(server.stop)
        return server

    def write_kubeconfig(self, server, cluster_lines=None, user_lines=None):
        """A kubeconfig in a temp dir (CA referenced relative to it, as kubectl allows)."""
        directory = self.make_temp_dir("wsgate-kubeconfig-")
        shutil.copy(self.pki.ca_cert, os.path.join(directory, "ca.crt"))
        if cluster_lines is None:
            cluster_lines = ["certificate-authority: ca.crt"]
        if user_lines is None:
            user_lines = ["token: test-token"]
        text = "\n".join(
            ["apiVersion: v1", "kind: Config", "clusters:", "- name: fake", "  cluster:",
             f"    server: {server.url}"] + [f"    {line}" for line in cluster_lines] +
            ["users:", "- name: tester", "  user:"] + [f"    {line}" for line in user_lines] +
            ["contexts:", "- name: fake", "  context:", "    cluster: fake", "    user: tester",
             "current-context: fake", ""])
        path = os.path.join(directory, "config")
        with open(path, "w", encoding="ascii") as out:
            out.write(text)
        return path

    def start_probe(self, args, env=None, name="kube-probe"):
        return self.start_process(
            [harness.binary("wsgate-kube-probe"), "--holdoff-ms", "50",
             "--backoff-initial-ms", str(BACKOFF_INITIAL_MS),
             "--backoff-max-ms", str(BACKOFF_MAX_MS), *args], name=name, env=env)

    def wait_table(self, probe, ids, since=0, timeout=10):
        """The version of the first table (at or after line `since`) holding exactly `ids`."""
        return probe.wait_for_log(table_pattern(ids), timeout=timeout, since=since).group(1)

    def wait_accepted(self, server, namespace, name, status, generation, reason=None):
        def check():
            condition, observed = accepted(server.get(namespace, name))
            return (condition is not None and condition["status"] == status and
                    observed == generation and condition.get("observedGeneration") == generation and
                    (reason is None or condition["reason"] == reason)) and condition
        return wait_until(check, what=f"{namespace}/{name} Accepted={status} at generation {generation}")

    def start_settled(self, extra_args=()):
        """A server holding default/a and a probe that has published it, written its status
        and has its watch open."""
        server = self.start_server()
        server.create("default", "a", spec())
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(server), *extra_args])
        self.wait_table(probe, ["default/a"])
        self.wait_accepted(server, "default", "a", "True", 1)
        wait_until(lambda: server.watch_count() == 1, what="an open watch")
        return server, probe

    # ----------------------------------------------------------------------------------------

    def test_list_then_watch_adds_modifies_and_deletes(self):
        server = self.start_server()
        server.create("default", "a", spec(9001))
        server.create("default", "b", spec(9002))
        listed_rv = server.resource_version()
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(server)])
        first = self.wait_table(probe, ["default/a", "default/b"])

        lists = server.requests_matching("GET", watch=False)
        self.assertEqual(lists[0]["path"], "/apis/wsgate.dev/v1alpha1/websocketroutes")
        self.assertEqual(lists[0]["query"].get("limit"), "500")
        self.assertEqual(lists[0]["authorization"], "Bearer test-token")
        watch = wait_until(lambda: server.requests_matching("GET", watch=True), what="a watch")[0]
        self.assertEqual(watch["query"]["resourceVersion"], listed_rv)
        self.assertEqual(watch["query"]["allowWatchBookmarks"], "true")
        self.assertEqual(watch["status"], 200)

        mark = probe.mark()
        server.create("default", "c", spec(9003))
        self.wait_table(probe, ["default/a", "default/b", "default/c"], since=mark)
        mark = probe.mark()
        server.update("default", "b", spec(9012))
        changed = self.wait_table(probe, ["default/a", "default/b", "default/c"], since=mark)
        self.assertNotEqual(changed, first)
        mark = probe.mark()
        server.delete("default", "a")
        self.wait_table(probe, ["default/b", "default/c"], since=mark)
        self.assertEqual(len(server.requests_matching("GET", watch=False)), 1, "no relist")

    def test_status_accepted_with_observed_generation(self):
        server = self.start_server()
        server.create("default", "good", spec(9001))
        server.create("default", "bad", {"backends": [{"address": "127.0.0.1"}]})
        server.create("default", "wrong-kind", spec(9002), raw={"kind": "Ingress"})
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(server)])
        self.wait_table(probe, ["default/good"])
        good = self.wait_accepted(server, "default", "good", "True", 1, reason="Accepted")
        bad = self.wait_accepted(server, "default", "bad", "False", 1, reason="Invalid")
        self.assertEqual(bad["message"], "route default/bad: spec.backends[0].address: missing port")
        probe.wait_for_log(re.escape("kube-probe: rejected kubernetes:default/bad: route default/bad: "
                                     "spec.backends[0].address: missing port"))
        kind = self.wait_accepted(server, "default", "wrong-kind", "False", 1)
        self.assertIn('kind: must be WebSocketRoute, not "Ingress"', kind["message"])
        for write in server.writes():
            self.assertEqual(write["method"], "PATCH")
            self.assertEqual(write["content_type"], "application/merge-patch+json")

        # The spec breaks: the route leaves the table, the condition flips with a new time.
        mark = probe.mark()
        server.update("default", "good", {"backends": []})
        self.wait_table(probe, [], since=mark)
        broken = self.wait_accepted(server, "default", "good", "False", 2)
        self.assertIn("spec.backends", broken["message"])
        # and is fixed again: accepted at generation 3.
        mark = probe.mark()
        server.update("default", "good", spec(9005))
        self.wait_table(probe, ["default/good"], since=mark)
        fixed = self.wait_accepted(server, "default", "good", "True", 3)
        self.assertGreaterEqual(fixed["lastTransitionTime"], good["lastTransitionTime"])

        # Someone else wipes the status: it is written again (generation unchanged).
        server.set_status("default", "good", None)
        self.wait_accepted(server, "default", "good", "True", 3)

        # Once settled, our own writes' MODIFIED events cause no further writes.
        def writes_for(name):
            return len([w for w in server.writes() if w["name"] == name])
        settled = {name: writes_for(name) for name in ("good", "bad", "wrong-kind")}
        mark = probe.mark()
        server.create("default", "later", spec(9006))
        self.wait_table(probe, ["default/good", "default/later"], since=mark)
        self.wait_accepted(server, "default", "later", "True", 1)
        server.create("default", "sentinel", spec(9007))
        self.wait_accepted(server, "default", "sentinel", "True", 1)
        self.assertEqual({name: writes_for(name) for name in settled}, settled)

    def test_bookmark_moves_the_resume_point(self):
        server, probe = self.start_settled()
        bookmark_rv = server.bookmark()
        watches_before = len(server.requests_matching("GET", watch=True))
        server.drop_connections()
        resumed = wait_until(
            lambda: server.requests_matching("GET", watch=True)[watches_before:], what="a new watch")
        self.assertEqual(resumed[0]["query"]["resourceVersion"], bookmark_rv)
        self.assertEqual(len(server.requests_matching("GET", watch=False)), 1, "no relist")
        mark = probe.mark()
        server.create("default", "b", spec())
        self.wait_table(probe, ["default/a", "default/b"], since=mark)

    def relist_after_expiry(self, mode):
        server, probe = self.start_settled()
        mark = probe.mark()

        def hidden_changes(api):  # history the watch can no longer replay
            api.create("default", "hidden", spec(), notify=False)
            api.delete("default", "a", notify=False)
        server.expire(mode, hidden_changes)
        self.wait_table(probe, ["default/hidden"], since=mark)
        self.assertEqual(len(server.requests_matching("GET", watch=False)), 2, "one relist")
        return server, probe

    def test_error_event_410_relists(self):
        _, probe = self.relist_after_expiry("event")
        probe.wait_for_log(r"expired \(watch ERROR 410: too old resource version.*relisting")

    def test_http_410_on_watch_relists(self):
        server, probe = self.relist_after_expiry("http")
        probe.wait_for_log(r"expired \(HTTP 410: too old resource version.*relisting")
        self.assertIn(410, [w["status"] for w in server.requests_matching("GET", watch=True)])

    def test_dropped_connection_reconnects_with_backoff_and_resumes(self):
        server, probe = self.start_settled()
        watches_before = len(server.requests_matching("GET", watch=True))
        mark = probe.mark()
        failures = 4
        server.fail_next_watches(failures)
        server.drop_connections()
        server.create("default", "b", spec())  # happens while the probe is away
        self.wait_table(probe, ["default/a", "default/b"], since=mark, timeout=20)

        attempts = server.requests_matching("GET", watch=True)[watches_before:]
        self.assertEqual([a["status"] for a in attempts[:failures + 1]], [500] * failures + [200])
        gaps = [later["time"] - earlier["time"] for earlier, later in zip(attempts, attempts[1:])]
        for gap in gaps[:failures]:
            self.assertGreaterEqual(gap, BACKOFF_INITIAL_MS / 2 / 1000 * 0.95, gaps)
        delays = [int(m) for m in re.findall(r"reconnecting in (\d+) ms", "\n".join(probe.lines()[mark:]))]
        self.assertGreaterEqual(len(delays), failures + 1)
        for delay in delays:
            self.assertGreaterEqual(delay, BACKOFF_INITIAL_MS // 2)
            self.assertLessEqual(delay, BACKOFF_MAX_MS)
        # The watch resumed where it was: b came from the replayed history, not a relist.
        self.assertEqual(len(server.requests_matching("GET", watch=False)), 1, "no relist")

    def test_watch_ended_by_its_timeout_is_renewed_from_the_same_version(self):
        server, probe = self.start_settled(["--watch-timeout-seconds", "1"])
        # The server closes each watch cleanly after timeoutSeconds=1; the probe watches again.
        watches = wait_until(lambda: [w for w in server.requests_matching("GET", watch=True)
                                      if w["status"] == 200][2:], timeout=15, what="renewed watches")
        self.assertEqual(watches[0]["query"]["timeoutSeconds"], "1")
        self.assertEqual(len(server.requests_matching("GET", watch=False)), 1, "no relist")
        mark = probe.mark()
        server.create("default", "b", spec())
        self.wait_table(probe, ["default/a", "default/b"], since=mark)
        self.assertNotIn("reconnecting", probe.log_text())

    def test_namespace_filter(self):
        server = self.start_server()
        server.create("team-a", "x", spec())
        server.create("team-b", "y", spec())
        server.create("default", "z", spec())
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(server),
                                  "--namespace", "team-a"])
        self.wait_table(probe, ["team-a/x"])
        mark = probe.mark()
        server.create("team-b", "w", spec())
        server.create("team-a", "v", spec())
        self.wait_table(probe, ["team-a/v", "team-a/x"], since=mark)
        self.wait_accepted(server, "team-a", "v", "True", 1)
        for request in server.requests_matching("GET"):
            self.assertTrue(request["path"].startswith("/apis/wsgate.dev/v1alpha1/namespaces/team-a/"),
                            request["path"])
        self.assertEqual({w["namespace"] for w in server.writes()}, {"team-a"})
        self.assertNotIn("team-b", "\n".join(l for l in probe.lines() if "kube-probe: table" in l))

    def test_paginated_list(self):
        server = self.start_server()
        names = [f"r{i}" for i in range(5)]
        for name in names:
            server.create("default", name, spec())
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(server), "--page-size", "2"])
        self.wait_table(probe, [f"default/{n}" for n in names])
        lists = server.requests_matching("GET", watch=False)
        self.assertEqual([l["query"].get("limit") for l in lists], ["2", "2", "2"])
        self.assertEqual(["continue" in l["query"] for l in lists], [False, True, True])

    def test_client_certificate_with_inline_ca(self):
        server = self.start_server(tokens=(), client_ca=self.pki.ca_cert)
        server.create("default", "a", spec())
        # A CA that did not sign the server's certificate: refused, and retried.
        other_dir = self.make_temp_dir("wsgate-other-ca-")
        other = TestPki(other_dir, "fake kube CA", with_kube_pair=True)
        wrong = self.write_kubeconfig(
            server, [f"certificate-authority-data: {TestPki.read_b64(other.ca_cert)}"], ["token: x"])
        refused = self.start_probe(["--kubeconfig", wrong], name="wrong-ca")
        refused.wait_for_log(r"TLS handshake.*certificate verify failed")
        refused.wait_for_log(r"retrying in \d+ ms")
        self.assertEqual(server.requests_matching(), [])

        kubeconfig = self.write_kubeconfig(
            server, [f"certificate-authority-data: {TestPki.read_b64(self.pki.ca_cert)}"],
            [f"client-certificate-data: {TestPki.read_b64(self.pki.client_cert)}",
             f"client-key-data: {TestPki.read_b64(self.pki.client_key)}"])
        probe = self.start_probe(["--kubeconfig", kubeconfig])
        self.wait_table(probe, ["default/a"])
        self.wait_accepted(server, "default", "a", "True", 1)
        self.assertIsNone(server.requests_matching()[0]["authorization"])

    def test_insecure_skip_tls_verify(self):
        server = self.start_server()
        server.create("default", "a", spec())
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(
            server, ["insecure-skip-tls-verify: true"])])
        self.wait_table(probe, ["default/a"])

    def test_broken_kubeconfig_is_a_startup_error(self):
        server = self.start_server()
        kubeconfig = self.write_kubeconfig(server, ["certificate-authority: missing-ca.crt"])
        probe = self.start_probe(["--kubeconfig", kubeconfig])
        self.assertEqual(probe.wait(), 1)
        self.assertIn("missing-ca.crt", probe.log_text())

    def test_in_cluster_config_with_token_rotation(self):
        server = self.start_server(tokens=("not-yet",))
        server.create("default", "a", spec())
        account = self.make_temp_dir("wsgate-serviceaccount-")
        shutil.copy(self.pki.ca_cert, os.path.join(account, "ca.crt"))
        with open(os.path.join(account, "namespace"), "w", encoding="ascii") as out:
            out.write("wsgate-system")
        token_path = os.path.join(account, "token")
        with open(token_path, "w", encoding="ascii") as out:
            out.write("sa-token-1\n")
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HOME")}
        env.update(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(server.port))
        probe = self.start_probe(["--service-account-dir", account], env=env)
        probe.wait_for_log(r"API server https://127\.0\.0\.1:\d+ \(in-cluster\)")
        # Not authorised yet: 401, retried with backoff until the token is accepted.
        probe.wait_for_log(r"list: HTTP 401: Unauthorized.*retrying in")
        server.tokens = {"sa-token-1"}
        self.wait_table(probe, ["default/a"])
        self.assertEqual(server.requests_matching("GET", watch=True)[-1]["authorization"],
                         "Bearer sa-token-1")
        # The kubelet rotates the projected token; the next connection uses the new one.
        with open(token_path + ".tmp", "w", encoding="ascii") as out:
            out.write("sa-token-2")
        os.replace(token_path + ".tmp", token_path)
        server.tokens = {"sa-token-2"}
        watches_before = len(server.requests_matching("GET", watch=True))
        server.drop_connections()
        wait_until(lambda: [w for w in server.requests_matching("GET", watch=True)[watches_before:]
                            if w["status"] == 200], what="a watch with the rotated token")
        mark = probe.mark()
        server.create("default", "b", spec())
        self.wait_table(probe, ["default/a", "default/b"], since=mark)
        self.assertEqual(server.requests_matching("GET", watch=True)[-1]["authorization"],
                         "Bearer sa-token-2")

    def test_merge_with_route_directory(self):
        server = self.start_server()
        server.create("default", "pinned", spec(9100))
        server.create("default", "kube-only", spec(9101))
        routes = self.make_temp_dir("wsgate-routes-")
        pinned_file = write_route(routes, "pinned", spec(9200))
        write_route(routes, "file-only", spec(9201))
        probe = self.start_probe(["--kubeconfig", self.write_kubeconfig(server), "--routes", routes])
        ids = ["default/file-only", "default/kube-only", "default/pinned"]
        self.wait_table(probe, ids)
        conflict = self.wait_accepted(server, "default", "pinned", "False", 1, reason="Conflict")
        self.assertIn(pinned_file, conflict["message"])
        self.wait_accepted(server, "default", "kube-only", "True", 1)
        # One rejection report for the clash, however often the table is rebuilt meanwhile.
        mark = probe.mark()
        write_route(routes, "unrelated", spec(9203))
        self.wait_table(probe, ids + ["default/unrelated"], since=mark)
        reports = [line for line in probe.lines() if "kube-probe: rejected" in line]
        self.assertEqual(len(reports), 1, reports)
        self.assertIn("kubernetes:default/pinned: route default/pinned: already defined in "
                      + pinned_file, reports[0])
        mark = probe.mark()
        remove_route(routes, "unrelated")
        self.wait_table(probe, ids, since=mark)

        # The file goes away: the custom resource takes the id over and is accepted.
        mark = probe.mark()
        remove_route(routes, "pinned")
        self.wait_table(probe, ids, since=mark)
        self.wait_accepted(server, "default", "pinned", "True", 1, reason="Accepted")
        # A file change alone publishes a new merged table.
        mark = probe.mark()
        write_route(routes, "another", spec(9202))
        self.wait_table(probe, ids + ["default/another"], since=mark)


if __name__ == "__main__":
    harness.main()
