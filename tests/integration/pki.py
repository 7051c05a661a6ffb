"""Throwaway PKI for integration tests, made with the openssl CLI: a cluster CA with a
serving certificate and client certificates (CN = user, O = groups), and a front-proxy CA
with kfront's front-proxy client certificate."""
import os
import subprocess


def _run(*args):
    subprocess.run(args, check=True, capture_output=True)


def ca(d, name):
    key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", "1", "-subj", f"/CN={name}")
    return crt, key


def issue(d, name, ca_pair, subject, server=False):
    key, csr, crt = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "crt"))
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        if server:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", subject)
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca_pair[0], "-CAkey", ca_pair[1],
         "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", ext)
    return crt, key


class Pki:
    def __init__(self, d):
        self.ca = ca(d, "cluster-ca")
        self.front_proxy_ca = ca(d, "front-proxy-ca")
        self.server = issue(d, "serving", self.ca, "/CN=kube-apiserver", server=True)
        self.alice = issue(d, "alice", self.ca, "/O=dev/O=qa/CN=alice")
        self.front_proxy_client = issue(d, "front-proxy-client", self.front_proxy_ca,
                                        "/CN=front-proxy-client")
