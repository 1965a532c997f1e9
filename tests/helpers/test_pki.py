"""Test certificates made with the openssl CLI (P-256 keys: fast), shared by the TLS, control
plane and Kubernetes tests: a CA in a directory and the leaf certificates it signs."""

import base64
import os
import secrets
import shutil
import subprocess


def openssl(*args, cwd=None):
    """Runs the openssl CLI; its output (stdout and stderr) as text, or AssertionError."""
    tool = shutil.which("openssl")
    if tool is None:
        raise AssertionError("openssl CLI not found")
    result = subprocess.run([tool, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {result.stdout.decode()}")
    return result.stdout.decode("utf-8", "replace")


class TestPki:
    """A CA in `directory`. `issue` signs leaf certificates (serverAuth by default). With
    `with_kube_pair`, also a server certificate for 127.0.0.1/localhost (server_cert/_key)
    and a clientAuth one (client_cert/_key), as the fake Kubernetes API server tests use."""

    def __init__(self, directory, name="wsgate test CA", with_kube_pair=False):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_cert = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2", "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        if with_kube_pair:
            self.server_cert, self.server_key = self.issue(
                "apiserver", dns=("localhost",), ips=("127.0.0.1",), cn="apiserver")
            self.client_cert, self.client_key = self.issue("client", usage="clientAuth")

    def issue(self, stem, dns=(), ips=(), cn=None, out_dir=None, usage="serverAuth"):
        """Writes <stem>.crt and <stem>.key (into out_dir, default the CA's directory)."""
        out_dir = out_dir or self.dir
        cert = os.path.join(out_dir, f"{stem}.crt")
        key = os.path.join(out_dir, f"{stem}.key")
        csr = os.path.join(self.dir, f"{stem}.csr")
        ext = os.path.join(self.dir, f"{stem}.ext")
        names = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        with open(ext, "w", encoding="ascii") as out:
            out.write(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
                      "keyUsage=critical,digitalSignature\n"
                      "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
            if names:
                out.write("subjectAltName=" + ",".join(names) + "\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN={cn or (dns[0] if dns else stem)}")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                "-set_serial", str(secrets.randbits(62)), "-days", "2", "-out", cert,
                "-extfile", ext)
        return cert, key

    @staticmethod
    def read_b64(path):
        with open(path, "rb") as source:
            return base64.b64encode(source.read()).decode("ascii")
