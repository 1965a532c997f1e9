"""A fake Kubernetes API server for tests (see docs/guides/testing-kubernetes.md).

In-process:  from fake_kube_apiserver import FakeKubeApiServer
             server = FakeKubeApiServer(pki=TestPki(...)).start()   # serves WebSocketRoutes
As a process:
  python3 tests/helpers/fake_kube_apiserver.py --listen 127.0.0.1:0 --kubeconfig-out FILE \\
      [--crd FILE]... [--object FILE]... [--token TOKEN] [--pki-dir DIR]
writes a kubeconfig (https server URL, inline CA, bearer token) that kubectl and
wsgate-controller use, prints "listening on 127.0.0.1:PORT" and serves until SIGTERM/SIGINT.
"""

import argparse
import base64
import os
import secrets
import signal
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_kube import (FakeKubeApiServer, check_status_schema, merge_patch,  # noqa: E402
                       status_object)
from fake_kube.server import GROUP_VERSION, KIND, RESOURCE, WSGATE_CRD  # noqa: E402
from fake_kube.util import load_documents  # noqa: E402

__all__ = ["FakeKubeApiServer", "check_status_schema", "merge_patch", "status_object",
           "GROUP_VERSION", "KIND", "RESOURCE", "WSGATE_CRD", "write_kubeconfig", "main"]


def write_kubeconfig(path, server, ca_cert, token):
    with open(ca_cert, "rb") as source:
        ca_data = base64.b64encode(source.read()).decode("ascii")
    text = "\n".join([
        "apiVersion: v1", "kind: Config",
        "clusters:", "- name: fake", "  cluster:", f"    server: {server.url}",
        f"    certificate-authority-data: {ca_data}",
        "users:", "- name: tester", "  user:", f"    token: {token}",
        "contexts:", "- name: fake", "  context:", "    cluster: fake", "    user: tester",
        "current-context: fake", ""])
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="ascii") as out:
        out.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    parser.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    parser.add_argument("--crd", action="append", default=[], help="serve the CRDs in FILE")
    parser.add_argument("--wsgate-crd", action="store_true",
                        help="serve the WebSocketRoute CRD of deploy/kubernetes")
    parser.add_argument("--object", action="append", default=[],
                        help="create the objects in FILE at start")
    parser.add_argument("--token", help="the bearer token (default: random)")
    parser.add_argument("--pki-dir", help="where the CA and server certificate go "
                        "(default: a temporary directory)")
    parser.add_argument("--chunk-size", type=int, default=0,
                        help="cut watch bodies into chunks of N bytes (0: one per write)")
    args = parser.parse_args(argv)

    from test_pki import TestPki
    host, _, port = args.listen.rpartition(":")
    pki_dir = args.pki_dir or tempfile.mkdtemp(prefix="fake-kube-pki-")
    pki = TestPki(pki_dir, "fake kube CA", with_kube_pair=True)
    token = args.token or secrets.token_hex(16)
    crds = ([WSGATE_CRD] if args.wsgate_crd else []) + args.crd
    server = FakeKubeApiServer(pki=pki, tokens=(token,), chunk_size=args.chunk_size,
                               crds=crds, host=host or "127.0.0.1", port=int(port or 0))
    for path in args.object:
        for document in load_documents(path):
            server.put_object(document)
    server.start()
    if args.kubeconfig_out:
        write_kubeconfig(args.kubeconfig_out, server, pki.ca_cert, token)
    print(f"listening on {server.host}:{server.port}", flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(3600):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
