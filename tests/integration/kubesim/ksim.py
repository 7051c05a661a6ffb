"""Shared helpers for kube-sim's integration tests (standard library only).

Each test script starts its own kube-sim on ephemeral loopback ports with a
small cluster, talks to it with real clients, and exits non-zero on failure.
The kube-sim binary comes from $KUBE_SIM or argv[1].
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

FAILURES = []


def check(cond, what):
    """Record a failed expectation (the test goes on, and fails at the end)."""
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)
    return cond


def finish():
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("ok")
    sys.exit(0)


class KubeSim:
    """A running kube-sim; use as a context manager."""

    def __init__(self, *args, nodes=6, pods=60, configmaps=12, secrets=12, churn=0,
                 policy=None, users=()):
        self.binary = os.environ.get("KUBE_SIM") or (sys.argv[1] if len(sys.argv) > 1 else "")
        if not self.binary or not os.path.exists(self.binary):
            print("usage: %s /path/to/kube-sim (or $KUBE_SIM)" % sys.argv[0])
            sys.exit(2)
        self.dir = tempfile.mkdtemp(prefix="kubesim-test-")
        self.certs = os.path.join(self.dir, "certs")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        cmd = [self.binary, "--listen", "127.0.0.1:0", "--listen-plain", "127.0.0.1:0",
               "--admin-listen", "127.0.0.1:0", "--cert-dir", self.certs,
               "--kubeconfig-out", self.kubeconfig, "--nodes", str(nodes), "--pods", str(pods),
               "--configmaps", str(configmaps), "--secrets", str(secrets),
               "--churn", str(churn), "--seed", "7"]
        if policy is not None:
            path = os.path.join(self.dir, "policy")
            with open(path, "w") as f:
                f.write(policy)
            cmd += ["--policy", path]
        for u in users:
            cmd += ["--user-cert", u]
        cmd += list(args)
        self.log = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("kube-sim ready"):
            self.log.seek(0)
            print("kube-sim did not start:", line, self.log.read())
            sys.exit(1)
        parts = line.split()
        self.url = parts[2]
        self.plain = self.admin = None
        for p in parts[3:]:
            k, v = p.split("=", 1)
            if k == "plain":
                self.plain = v
            elif k == "admin":
                self.admin = v
        self.port = int(self.url.rsplit(":", 1)[1])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        rc = self.proc.returncode
        check(rc in (0, -signal.SIGTERM), "kube-sim exited with %s" % rc)
        self.log.seek(0)
        err = self.log.read()
        check("AddressSanitizer" not in err and "runtime error" not in err,
              "sanitizer report:\n" + err[-3000:])
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- clients -----------------------------------------------------------------

    def cert(self, name="admin"):
        return (os.path.join(self.certs, name + ".crt"), os.path.join(self.certs, name + ".key"))

    def ssl_context(self, cert="admin"):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
        if cert:
            ctx.load_cert_chain(*self.cert(cert))
        return ctx

    def request(self, method, path, body=None, headers=None, cert="admin", timeout=10):
        """HTTP/1.1 request over TLS; returns (status, headers, body bytes)."""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(cert), timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None, **kw):
        headers = kw.pop("headers", {})
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        status, hdrs, raw = self.request(method, path, body, headers, **kw)
        return status, (json.loads(raw) if raw else None)

    def admin_post(self, path):
        req = urllib.request.Request(self.admin + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def admin_get(self, path):
        with urllib.request.urlopen(self.admin + path, timeout=5) as r:
            return r.read()

    def curl(self, *args, cert="admin"):
        """Run curl against the TLS port; returns CompletedProcess (bytes)."""
        cmd = ["curl", "-s", "--cacert", os.path.join(self.certs, "ca.crt")]
        if cert:
            c, k = self.cert(cert)
            cmd += ["--cert", c, "--key", k]
        return subprocess.run(cmd + list(args), capture_output=True, timeout=30)

    def kubectl(self, *args, timeout=20, check_rc=True):
        if not shutil.which("kubectl"):
            print("kubectl not installed: skipped")
            sys.exit(77)
        p = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        if check_rc:
            check(p.returncode == 0, "kubectl %s: rc %d %s" % (" ".join(args), p.returncode,
                                                               p.stderr.strip()))
        return p


def recording(name):
    here = os.path.dirname(os.path.abspath(__file__))
    base = os.environ.get("KFRONT_FIXTURES") or os.path.join(here, "..", "..", "..", "..",
                                                            "shared", "fixtures")
    with open(os.path.join(base, "recordings", name), "rb") as f:
        return f.read()


def wait_until(pred, timeout=5.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
