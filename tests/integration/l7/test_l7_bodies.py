"""Request bodies stream through kfront (L7): a client that uploads slowly over HTTP/1.1 (chunked)
or HTTP/2 has its first bytes at the apiserver long before it has finished sending, the bytes
arrive unchanged, the 3 MiB limit holds mid-stream, and kubectl applies a large ConfigMap
through kfront against kube-sim."""
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from kftest import Kfront, Test, free_port, tmpdir, wait_for  # noqa: E402
from pki import Pki  # noqa: E402
from test_l7 import QuietHandler, config, serve_https  # noqa: E402  (test_l7's kfront and TLS)

MiB = 1 << 20


class UploadBackend:
    """An HTTPS 'apiserver' (front-proxy client certificate required) that reads request bodies
    as they come, Content-Length or chunked, and tells when their first byte arrived."""

    def __init__(self, name, pki):
        backend = self
        self.name = name
        self.received = 0  # bytes of the upload in progress
        self.first_byte_at = None
        self.errors = []

        class H(QuietHandler):
            def do_POST(self):
                try:
                    info = backend.read_body(self)
                except (ConnectionError, ValueError, ssl.SSLError, OSError) as e:
                    backend.errors.append(repr(e))  # kfront gave up on the upstream request
                    self.close_connection = True
                    return
                out = json.dumps(info).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_PUT = do_POST

        self.httpd, self.address = serve_https(H, pki)

    def read_body(self, h):
        self.received, self.first_byte_at = 0, None
        sha = hashlib.sha256()

        def take(n):
            data = h.rfile.read(n)
            if not data:
                raise ConnectionError("body cut short")
            if self.first_byte_at is None:
                self.first_byte_at = time.monotonic()
            self.received += len(data)
            sha.update(data)
            return len(data)

        chunked = h.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if chunked:
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                while size:
                    size -= take(min(size, 16384))
                h.rfile.readline()
        else:
            left = int(h.headers.get("Content-Length") or 0)
            while left:
                left -= take(min(left, 16384))
        return {"backend": self.name, "len": self.received, "sha256": sha.hexdigest(),
                "chunked": chunked, "content_length": h.headers.get("Content-Length"),
                "user": h.headers.get("X-Remote-User")}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Env:
    def __init__(self, d):
        self.pki = Pki(d)
        self.backend = UploadBackend("apiserver-0", self.pki)
        self.port, admin = free_port(), f"127.0.0.1:{free_port()}"
        self.kf = Kfront(["--config", config(d, self.pki, [self.backend], self.port, admin)],
                         admin=admin)
        self.url = f"https://localhost:{self.port}"
        wait_for(lambda: self.kf.metric("kfront_backend_up") == 1, 10, "backend up")

    def curl_upload(self, http, path):
        """curl reading the body from stdin: sent as it is written (chunked on HTTP/1.1,
        DATA frames without a length on HTTP/2)."""
        cmd = ["curl", "-sS", http, "--cacert", self.pki.ca[0], "--cert", self.pki.alice[0],
               "--key", self.pki.alice[1], "-X", "POST", "-T", "-",
               "-H", "Content-Type: application/octet-stream", "-w", "\n%{http_code}",
               self.url + path]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def close(self):
        try:
            self.kf.stop()
        finally:
            self.backend.stop()


def finish(p, timeout=30):
    """Close curl's stdin (the end of the body) and collect its answer."""
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass  # curl stopped reading once kfront answered
    out, err = p.stdout.read(), p.stderr.read()
    p.wait(timeout)
    body, _, code = out.decode().rpartition("\n")
    return code, body, err.decode()


def slow_upload(env, http):
    data = os.urandom(5 * MiB // 2)
    p = env.curl_upload(http, "/api/v1/namespaces/demo/configmaps")
    pieces = 40
    step = len(data) // pieces
    try:
        for i in range(pieces):
            end = len(data) if i == pieces - 1 else (i + 1) * step
            p.stdin.write(data[i * step:end])
            p.stdin.flush()
            time.sleep(0.02)
            if i == pieces // 2:
                # Half of it is out of the client; a buffering proxy would have sent nothing yet.
                wait_for(lambda: env.backend.received >= MiB, 5,
                         f"{http}: the apiserver to get the first MiB while the client still sends")
                assert env.backend.first_byte_at is not None
    except BaseException:
        p.kill()
        raise
    client_done = time.monotonic()
    code, body, err = finish(p)
    assert code == "201", (http, code, body, err)
    got = json.loads(body)
    assert got["len"] == len(data), (http, got["len"])
    assert got["sha256"] == hashlib.sha256(data).hexdigest(), http
    assert got["user"] == "alice", got
    assert got["chunked"] and got["content_length"] is None, got  # no length: chunked upstream
    assert env.backend.first_byte_at < client_done - 0.2, "the first byte came at the end"


def test_slow_uploads_stream_over_both_http_versions():
    with tmpdir() as d:
        env = Env(d)
        try:
            for http in ("--http1.1", "--http2"):
                slow_upload(env, http)
            assert env.kf.metric('kfront_http_requests_total{verb="create",resource="configmaps",code="201"}') == 2
        finally:
            env.close()


def test_content_length_goes_through_and_the_limit_holds_mid_stream():
    with tmpdir() as d:
        env = Env(d)
        try:
            path = os.path.join(d, "body")
            data = os.urandom(2 * MiB)
            with open(path, "wb") as f:
                f.write(data)
            for http in ("--http1.1", "--http2"):
                out = subprocess.run(
                    ["curl", "-sS", http, "--cacert", env.pki.ca[0], "--cert", env.pki.alice[0],
                     "--key", env.pki.alice[1], "-X", "PUT", "--data-binary", "@" + path,
                     "-w", "\n%{http_code}", env.url + "/api/v1/namespaces/demo/configmaps/x"],
                    capture_output=True, text=True, timeout=30)
                body, _, code = out.stdout.rpartition("\n")
                assert code == "201", (http, code, out.stderr)
                got = json.loads(body)
                assert got["content_length"] == str(len(data)) and not got["chunked"], got
                assert got["sha256"] == hashlib.sha256(data).hexdigest()
            # Over the apiserver's 3 MiB with no length announced: cut mid-stream, 413.
            big = os.path.join(d, "big")
            with open(big, "wb") as f:
                f.write(os.urandom(4 * MiB))
            p = env.curl_upload("--http1.1", "/api/v1/namespaces/demo/configmaps")
            with open(big, "rb") as f:
                try:
                    p.stdin.write(f.read())
                except BrokenPipeError:
                    pass  # curl stopped reading once kfront answered
            code, body, err = finish(p)
            assert code == "413", (code, body, err)
            st = json.loads(body)
            assert st["kind"] == "Status" and st["reason"] == "RequestEntityTooLarge", st
            if shutil.which("nghttp"):
                # curl 7.88 takes the RST_STREAM(NO_ERROR) that follows a complete early
                # answer (RFC 9113 8.1, as Go's server sends it) for an error: nghttp does not
                out = subprocess.run(["nghttp", "-v", "--no-content-length", "-d", big, "--cert",
                                      env.pki.alice[0], "--key", env.pki.alice[1],
                                      env.url + "/api/v1/namespaces/demo/configmaps"],
                                     capture_output=True, text=True, timeout=30)
                assert ":status: 413" in out.stdout and "RequestEntityTooLarge" in out.stdout, \
                    out.stdout[-2000:]
                assert "error_code=NO_ERROR" in out.stdout, out.stdout[-2000:]
            n = 2 if shutil.which("nghttp") else 1
            wait_for(lambda: env.kf.metric('kfront_http_requests_total{verb="create",resource="configmaps",code="413"}') == n,
                     5, "the 413s counted")
            # kfront serves on
            out = subprocess.run(["curl", "-sS", "--http2", "--cacert", env.pki.ca[0], "--cert",
                                  env.pki.alice[0], "--key", env.pki.alice[1], "--data", "{}",
                                  "-w", "\n%{http_code}", env.url + "/api/v1/x"],
                                 capture_output=True, text=True, timeout=20)
            assert out.stdout.endswith("\n201"), out
        finally:
            env.close()


def test_kubectl_applies_a_large_configmap_through_kfront():
    if not shutil.which("kubectl") or not os.environ.get("KUBE_SIM"):
        print("kubectl or kube-sim not available: skipped")
        return
    from test_l7_kubesim import Env as SimEnv  # noqa: E402
    env = SimEnv()
    try:
        value = os.urandom(450 * 1024).hex()  # 900 KB: with kubectl's last-applied copy ~1.8 MB
        manifest = os.path.join(env.sim.dir, "big.json")
        doc = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "big", "namespace": "default"}, "data": {"blob": value}}
        with open(manifest, "w") as f:
            json.dump(doc, f)
        env.kubectl("apply", "-f", manifest, timeout=60)
        got = json.loads(env.kubectl("get", "configmap", "big", "-n", "default", "-o", "json").stdout)
        assert got["data"]["blob"] == value
        doc["data"]["blob"] = value[::-1]  # a changed apply: a PATCH of the same size
        with open(manifest, "w") as f:
            json.dump(doc, f)
        env.kubectl("apply", "-f", manifest, timeout=60)
        got = json.loads(env.kubectl("get", "configmap", "big", "-n", "default", "-o", "json").stdout)
        assert got["data"]["blob"] == value[::-1]
        env.kubectl("delete", "configmap", "big", "-n", "default")
    finally:
        env.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
