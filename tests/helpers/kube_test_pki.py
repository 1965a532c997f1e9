"""Certificates for the fake Kubernetes API server's tests, made with the openssl CLI: a CA,
a server certificate for 127.0.0.1/localhost, and a client certificate (clientAuth)."""

import base64
import os
import secrets
import shutil
import subprocess


def _openssl(*args):
    tool = shutil.which("openssl")
    if tool is None:
        raise AssertionError("openssl CLI not found")
    result = subprocess.run([tool, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {result.stdout.decode()}")


class TestPki:
    """A CA in `directory`, a server certificate for 127.0.0.1/localhost and a client one."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_cert = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2",
                 "-subj", "/CN=fake kube CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.server_cert, self.server_key = self._issue(
            "apiserver", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.client_cert, self.client_key = self._issue("client", "clientAuth", "")

    def _issue(self, stem, usage, extra):
        cert = os.path.join(self.dir, f"{stem}.crt")
        key = os.path.join(self.dir, f"{stem}.key")
        csr = os.path.join(self.dir, f"{stem}.csr")
        ext = os.path.join(self.dir, f"{stem}.ext")
        with open(ext, "w", encoding="ascii") as out:
            out.write(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
                      "keyUsage=critical,digitalSignature\n" + extra)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", f"/CN={stem}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                 "-set_serial", str(secrets.randbits(62)), "-days", "2", "-out", cert,
                 "-extfile", ext)
        return cert, key

    @staticmethod
    def read_b64(path):
        with open(path, "rb") as source:
            return base64.b64encode(source.read()).decode("ascii")
