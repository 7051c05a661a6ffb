"""kfront in L7 mode in front of kube-sim, driven by real clients: kubectl, the Python
kubernetes package, curl over HTTP/1.1 and HTTP/2 (JSON and protobuf). Identity flows as
front-proxy headers, so kube-sim authorizes the real user."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import Kfront, SimFront, Test, free_port, wait_for  # noqa: E402
import ksim  # noqa: E402

KUBE_SIM = os.environ.get("KUBE_SIM", "build/loadgen/kube-sim/kube-sim")
os.environ["KUBE_SIM"] = KUBE_SIM


class Env:
    """kube-sim, kfront (mode http) in front of it, and a kubeconfig that points at kfront."""

    def __init__(self, flags=False, identity="front-proxy", extra_yaml="", **sim):
        self.sim = ksim.KubeSim(users=("alice=dev",), **sim)
        try:
            self._start(flags, identity, extra_yaml)
        except BaseException:  # a kfront that did not come up must leave nothing behind
            if getattr(self, "kf", None):
                self.kf.stop()
            self.sim.stop()
            raise

    def _start(self, flags, identity, extra_yaml):
        c = self.sim.certs
        if flags:
            self.port, admin = free_port(), f"127.0.0.1:{free_port()}"
            self._start_from_flags(c, admin)
            return
        front = SimFront([self.sim], identity=identity, extra_yaml=extra_yaml)
        self.port, self.kf = front.port, front.kf
        self._ready()

    def _ready(self):
        """Wait for kube-sim to be seen up; write a kubeconfig that points at kfront."""
        wait_for(lambda: self.kf.metric("kfront_backend_up") == 1, 10, "kube-sim up")
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = os.path.join(self.sim.dir, "kfront.kubeconfig")
        with open(self.sim.kubeconfig) as f:
            text = f.read()
        with open(self.kubeconfig, "w") as f:
            f.write(text.replace(self.sim.url, self.url))

    def _start_from_flags(self, c, admin):
        """Only apiserver-style flags and the apiserver's kubeconfig: no configuration file."""
        self.kf = Kfront(["--mode", "http", "--listen", f"127.0.0.1:{self.port}",
                          "--upstream-kubeconfig", self.sim.kubeconfig,
                          "--tls-cert-file", f"{c}/apiserver.crt",
                          "--tls-private-key-file", f"{c}/apiserver.key",
                          "--client-ca-file", f"{c}/ca.crt",
                          "--proxy-client-cert-file", f"{c}/front-proxy-client.crt",
                          "--proxy-client-key-file", f"{c}/front-proxy-client.key",
                          "--health-check", "tls", "--admin-listen", admin], admin=admin)
        self._ready()

    def kubectl(self, *args, check=True, timeout=30):
        out = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig] + list(args),
                             capture_output=True, text=True, timeout=timeout)
        assert not check or out.returncode == 0, (args, out.stderr)
        return out

    def curl(self, path, *args, cert="admin", http="--http2"):
        crt, key = self.sim.cert(cert)
        out = subprocess.run(["curl", "-sS", http, "--cacert", os.path.join(self.sim.certs, "ca.crt"),
                              "--cert", crt, "--key", key, "-w", "\n%{http_code}"] + list(args)
                             + [self.url + path], capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        body, _, code = out.stdout.rpartition(b"\n")
        return int(code), body

    def close(self):
        try:
            self.kf.stop()
        finally:
            self.sim.stop()


def test_kubectl_get_apply_label_delete_through_kfront():
    if not shutil.which("kubectl"):
        print("kubectl not installed: skipped")
        return
    env = Env()
    try:
        nodes = env.kubectl("get", "nodes", "-o", "name").stdout.split()
        assert len(nodes) == 6, nodes
        out = env.kubectl("get", "pods", "-A").stdout
        assert "NAMESPACE" in out and len(out.splitlines()) == 61, out[:500]
        manifest = os.path.join(env.sim.dir, "cm.yaml")
        with open(manifest, "w") as f:
            f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: through-kfront\n"
                    "  namespace: default\ndata:\n  k: v\n")
        env.kubectl("apply", "-f", manifest)
        env.kubectl("label", "configmap", "through-kfront", "-n", "default", "tier=front")
        got = json.loads(env.kubectl("get", "configmap", "through-kfront", "-n", "default",
                                     "-o", "json").stdout)
        assert got["data"] == {"k": "v"} and got["metadata"]["labels"] == {"tier": "front"}, got
        env.kubectl("delete", "configmap", "through-kfront", "-n", "default")
        out = env.kubectl("get", "configmap", "through-kfront", "-n", "default", check=False)
        assert out.returncode != 0 and "NotFound" in out.stderr, out.stderr
        assert env.kf.metric('kfront_http_requests_total{verb="create",resource="configmaps",code="201"}') >= 1
    finally:
        env.close()


def test_upstream_from_the_apiservers_kubeconfig():
    """kfront --mode http --upstream-kubeconfig: server, CA (inline data) from the kubeconfig."""
    if not shutil.which("kubectl"):
        print("kubectl not installed: skipped")
        return
    env = Env(flags=True)
    try:
        nodes = env.kubectl("get", "nodes", "-o", "name").stdout.split()
        assert len(nodes) == 6, nodes
        code, body = env.curl("/api/v1/namespaces/default/pods", cert="user-alice")
        assert code == 403 and b'User \\"alice\\"' in body, (code, body[:300])
    finally:
        env.close()


def test_kubectl_watch_sees_changes_through_kfront():
    if not shutil.which("kubectl"):
        print("kubectl not installed: skipped")
        return
    env = Env()
    try:
        w = subprocess.Popen(["kubectl", "--kubeconfig", env.kubeconfig, "get", "configmaps",
                              "-n", "default", "-w", "--request-timeout=0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        st, _ = env.sim.json("POST", "/api/v1/namespaces/default/configmaps",
                             {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "watched"}, "data": {"a": "b"}})
        assert st == 201, st
        lines = []
        reader = threading.Thread(target=lambda: [lines.append(l) for l in iter(w.stdout.readline, "")])
        reader.daemon = True
        reader.start()
        wait_for(lambda: any(l.startswith("watched") for l in lines), 10, "the watch event")
        # The apiserver dies: the client's watch through kfront must end promptly, not hang.
        env.sim.stop()
        t0 = time.time()
        w.wait(timeout=20)
        assert time.time() - t0 < 20
    finally:
        if w.poll() is None:
            w.kill()
        env.kf.stop()


def test_python_client_list_watch_create():
    env = Env()
    try:
        code = f"""
import json, sys
from kubernetes import client, config, watch
config.load_kube_config(config_file={env.kubeconfig!r})
v1 = client.CoreV1Api()
pods = v1.list_pod_for_all_namespaces(limit=500)
rv = pods.metadata.resource_version
v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="from-python"), data={{"x": "y"}}))
seen = []
for ev in watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
    seen.append((ev["type"], ev["object"].metadata.name))
    if ev["object"].metadata.name == "from-python":
        break
print(json.dumps({{"pods": len(pods.items), "seen": seen}}))
"""
        out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["pods"] == 60, got
        assert ["ADDED", "from-python"] in got["seen"], got
    finally:
        env.close()


def test_curl_both_versions_protobuf_and_identity():
    env = Env()
    try:
        for http in ("--http2", "--http1.1"):
            code, body = env.curl("/api/v1/configmaps?limit=2", http=http)
            assert code == 200, (http, code, body[:300])
            got = json.loads(body)
            assert got["kind"] == "ConfigMapList" and len(got["items"]) == 2, got
            assert got["metadata"].get("continue"), got["metadata"]
        code, body = env.curl("/api/v1/nodes", "-H", "Accept: application/vnd.kubernetes.protobuf")
        assert code == 200 and body[:4] == b"k8s\x00", body[:16]
        # the upstream pool's own families: streams sent, connections by protocol
        assert env.kf.metric("kfront_upstream_streams_total") >= 2
        assert env.kf.metric('kfront_upstream_connections{backend="sim",server="sim-1",'
                             'protocol="h2"}') >= 1
        # alice (O=dev) has no grant: kube-sim's 403 names her, so her identity went through
        # as front-proxy headers even though kfront's own connection is front-proxy-client.
        code, body = env.curl("/api/v1/secrets", cert="user-alice")
        st = json.loads(body)
        assert code == 403 and st["reason"] == "Forbidden" and '"alice"' in st["message"], body
        # Forged front-proxy headers from a client are dropped.
        code, body = env.curl("/api/v1/secrets", "-H", "X-Remote-User: system:admin",
                              "-H", "X-Remote-Group: system:masters", cert="user-alice")
        assert code == 403 and '"alice"' in json.loads(body)["message"], body
    finally:
        env.close()

TOKEN_POLICY = ("token tok-bob bob uid=u-bob groups=dev,ops extra=example.io/team=blue "
                "extra=example.io/team=green extra=scopes=read\n"
                "allow user=bob verbs=get,list resources=configmaps\n")


def whoami(env, url, token, http="--http2"):
    """The SelfSubjectReview kube-sim answers for a token client (no certificate). A 401 is
    asked over HTTP/1.1: an answer before the body ends resets the HTTP/2 stream (RFC 9113
    8.1, as Go's server does), which curl 7.88 reports as an error."""
    out = subprocess.run(["curl", "-sS", http, "--cacert", os.path.join(env.sim.certs, "ca.crt"),
                          "-H", f"Authorization: Bearer {token}", "-H",
                          "Content-Type: application/json", "-w", "\n%{http_code}", "--data",
                          '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
                          url + "/apis/authentication.k8s.io/v1/selfsubjectreviews"],
                         capture_output=True, timeout=20)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body


def test_token_clients_are_reviewed_and_vouched_for():
    """Front-proxy and impersonate modes: a token client is authenticated by a TokenReview
    (one per token per TTL) and reaches kube-sim as its user, groups, uid and extra, exactly
    as kube-sim sees it directly; a bad token gets kube-sim's own 401."""
    env = Env(policy=TOKEN_POLICY)
    try:
        code, direct = whoami(env, env.sim.url, "tok-bob")
        assert code == 201, (code, direct)
        user = json.loads(direct)["status"]["userInfo"]
        assert user["username"] == "bob" and user["uid"] == "u-bob", user
        assert user["extra"] == {"example.io/team": ["blue", "green"], "scopes": ["read"]}, user
        for _ in range(5):
            code, body = whoami(env, env.url, "tok-bob")
            assert code == 201 and json.loads(body) == json.loads(direct), body
        # one review per token per worker (2 workers), then the cache
        assert 1 <= env.kf.metric('kfront_authz_requests_total{kind="tokenreview",result="authenticated"}') <= 2
        # the identity is bob's, so kube-sim's authorizer applies bob's grants
        out = subprocess.run(["curl", "-sS", "--cacert", os.path.join(env.sim.certs, "ca.crt"),
                              "-H", "Authorization: Bearer tok-bob", "-w", "\n%{http_code}",
                              env.url + "/api/v1/namespaces/default/secrets?resourceVersion=1"],
                             capture_output=True, timeout=20)
        body, _, code = out.stdout.rpartition(b"\n")
        assert int(code) == 403 and b'User \\"bob\\"' in body, out.stdout
        # a token kube-sim rejects: its own 401, byte for byte
        code, direct_401 = whoami(env, env.sim.url, "tok-nobody", "--http1.1")
        code2, via_401 = whoami(env, env.url, "tok-nobody", "--http1.1")
        assert code == code2 == 401 and via_401 == direct_401, (via_401, direct_401)
        # kubectl with a token kubeconfig
        if shutil.which("kubectl"):
            out = subprocess.run(["kubectl", "--server", env.url, "--certificate-authority",
                                  os.path.join(env.sim.certs, "ca.crt"), "--token", "tok-bob",
                                  "auth", "whoami", "-o", "json"], capture_output=True,
                                 text=True, timeout=20)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["status"]["userInfo"] == user, out.stdout
    finally:
        env.close()
    env = Env(policy=TOKEN_POLICY, identity="impersonate")
    try:
        code, body = whoami(env, env.url, "tok-bob")
        assert code == 201 and json.loads(body)["status"]["userInfo"] == user, body
        code, body = whoami(env, env.url, "tok-nobody", "--http1.1")
        assert code == 401, body
    finally:
        env.close()

def test_short_requests_have_a_deadline_and_watches_do_not():
    """timeouts.request: an apiserver that does not answer a GET in time gets the client the
    apiserver's 504 Timeout Status one second after the deadline (the request's timeout
    parameter shortens it); a watch through the same slow apiserver is not cut."""
    env = Env(extra_yaml="timeouts: {request: 2s}\ncache: {enabled: false}\n")
    try:
        env.sim.admin_post("/faults?delayMs=4500")
        t0 = time.monotonic()
        code, body = env.curl("/api/v1/namespaces/default/configmaps")
        took = time.monotonic() - t0
        st = json.loads(body)
        assert code == 504 and st == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Timeout: request did not complete within requested timeout - "
                       "context deadline exceeded", "reason": "Timeout", "details": {},
            "code": 504}, body
        assert 2.9 <= took <= 4.4, took
        t0 = time.monotonic()
        code, _ = env.curl("/api/v1/namespaces/default/configmaps?timeout=1s", http="--http1.1")
        took = time.monotonic() - t0
        assert code == 504 and 1.9 <= took <= 2.9, (code, took)
        # a watch waits out the delay and then streams
        code, body = env.curl("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
        assert code == 200 and b'"type":"ADDED"' in body, (code, body[:200])
        assert env.kf.metric('kfront_http_requests_total{verb="list",resource="configmaps",code="504"}') == 2
    finally:
        env.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
