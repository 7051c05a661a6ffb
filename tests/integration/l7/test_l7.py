"""L7 mode end to end: curl (HTTP/2 and HTTP/1.1) -> kfront (TLS, mode http) -> TLS backends
that check kfront's front-proxy client certificate and echo what they received."""
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kftest import (DATA, END_HEADERS, END_STREAM, H2_PREFACE, HEADERS, PING,  # noqa: E402
                    SETTINGS, H2Conn, Kfront, LoopbackServer, Test, free_port, h2_frame,
                    hpack_literal, tmpdir, wait_for)
from pki import Pki  # noqa: E402


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass


def serve_https(handler, pki):
    """An HTTPS server on a free loopback port that requires kfront's front-proxy client
    certificate, served by a thread. Returns it and its "host:port"."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki.server)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.front_proxy_ca[0])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"127.0.0.1:{httpd.server_address[1]}"


class EchoBackend:
    """An HTTPS 'apiserver' that requires the front-proxy client certificate and answers
    with JSON describing the request it got."""

    def __init__(self, name, pki):
        backend = self
        self.name = name
        self.seen = []

        class H(QuietHandler):
            def _reply(self):
                peer = self.connection.getpeercert()
                cn = dict(x[0] for x in peer["subject"])["commonName"] if peer else None
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                info = {"backend": backend.name, "method": self.command, "path": self.path,
                        "client_cert": cn, "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "groups": self.headers.get_all("X-Remote-Group") or []}
                backend.seen.append(info)
                if self.headers.get("Upgrade") and self.path.startswith("/deny"):
                    out = b'{"kind":"Status","code":403}\n'
                    self.send_response(403)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                if self.headers.get("Upgrade"):
                    # an exec-like stream: 101, a greeting, then every byte echoed back
                    self.send_response(101)
                    self.send_header("Upgrade", self.headers["Upgrade"])
                    self.send_header("Connection", "Upgrade")
                    self.send_header("X-Seen-User", self.headers.get("X-Remote-User", ""))
                    self.end_headers()
                    self.wfile.flush()
                    self.wfile.write(b"hello from the apiserver\n")
                    self.wfile.flush()
                    while True:
                        data = self.connection.recv(65536)
                        if not data:
                            break
                        self.connection.sendall(data)
                    self.close_connection = True
                    return
                if self.path.startswith("/stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(5):
                        line = json.dumps({"type": "ADDED", "i": i}).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                        time.sleep(0.05)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                out = json.dumps(info).encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Audit-Id", "abc")
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _reply

        self.httpd, self.address = serve_https(H, pki)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class BurstH2Backend(LoopbackServer):
    """A TLS HTTP/2 'apiserver' that holds requests until it has `batch` of them (or 1 s has
    passed), then answers them all in one send(): a HEADERS record and a DATA record per
    stream, so kfront's upstream socket receives many TLS records at once."""

    def __init__(self, name, pki, batch):
        self.name, self.batch = name, batch
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*pki.server)
        self.ctx.set_alpn_protocols(["h2"])
        super().__init__()

    def _serve(self, raw):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)

        def flush():
            data = out.read()
            if data:
                raw.sendall(data)

        def fill():
            data = raw.recv(1 << 16)
            if not data:
                raise EOFError
            inc.write(data)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    fill()
            flush()
            if tls.selected_alpn_protocol() != "h2":  # a health check
                while True:
                    fill()
            buf, pending, deadline = b"", [], None
            tls.write(h2_frame(SETTINGS, 0, 0))
            flush()
            raw.settimeout(0.2)
            while True:
                try:
                    buf += tls.read(1 << 16)
                except ssl.SSLWantReadError:
                    try:
                        fill()
                    except socket.timeout:
                        pass
                if buf.startswith(H2_PREFACE):
                    buf = buf[len(H2_PREFACE):]
                while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                    n = int.from_bytes(buf[:3], "big")
                    t, fl, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                    buf = buf[9 + n:]
                    if t == SETTINGS and not fl & 1:
                        tls.write(h2_frame(SETTINGS, 1, 0))
                    elif t == PING and not fl & 1:
                        tls.write(h2_frame(PING, 1, 0, b"\0" * 8))
                    elif t == HEADERS and fl & END_STREAM:
                        pending.append(sid)
                        deadline = deadline or time.time() + 1
                flush()
                if pending and (len(pending) >= self.batch or time.time() > deadline):
                    for sid in pending:  # one record each, one send for all
                        tls.write(h2_frame(HEADERS, END_HEADERS, sid,
                                           b"\x88" + hpack_literal("content-type",
                                                                    "application/json")))
                        tls.write(h2_frame(DATA, END_STREAM, sid, b'{"kind":"Status"}'))
                    flush()
                    pending, deadline = [], None
        except (EOFError, OSError, ssl.SSLError):
            pass
        finally:
            raw.close()


def config(d, pki, backends, port, admin):
    servers = "\n".join(f'      - {{name: {b.name}, address: "{b.address}"}}' for b in backends)
    path = os.path.join(d, "kfront.yaml")
    with open(path, "w") as f:
        f.write(f"""apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
workers: 2
admin:
  listen: {admin}
identity:
  mode: front-proxy
  proxyClientCertFile: {pki.front_proxy_client[0]}
  proxyClientKeyFile: {pki.front_proxy_client[1]}
cache: {{enabled: false}}  # the echo backends are not apiservers: nothing to list and watch
frontends:
  - name: api
    listen: ["127.0.0.1:{port}"]
    mode: http
    backend: masters
    tls:
      certFile: {pki.server[0]}
      keyFile: {pki.server[1]}
      clientCAFile: {pki.ca[0]}
backends:
  - name: masters
    healthCheck: {{type: tls, interval: 200ms, timeout: 500ms, rise: 1, fall: 1,
                  tls: {{caFile: {pki.ca[0]}, certFile: {pki.front_proxy_client[0]},
                        keyFile: {pki.front_proxy_client[1]}}}}}
    upstreamTLS:
      caFile: {pki.ca[0]}
    servers:
{servers}
""")
    return path


def curl(pki, url, *args, cert=True, http="--http2"):
    cmd = ["curl", "-sS", http, "--cacert", pki.ca[0], "-w", "\n%{http_code} %{http_version}"]
    if cert:
        cmd += ["--cert", pki.alice[0], "--key", pki.alice[1]]
    out = subprocess.run(cmd + list(args) + [url], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return body, status


class Env:
    def __init__(self, d, n=2):
        self.pki = Pki(d)
        self.backends = [EchoBackend(f"apiserver-{i}", self.pki) for i in range(n)]
        self.port, admin = free_port(), f"127.0.0.1:{free_port()}"
        self.kf = Kfront(["--config", config(d, self.pki, self.backends, self.port, admin)],
                         admin=admin)
        self.url = f"https://localhost:{self.port}"
        wait_for(lambda: self.kf.metric("kfront_backend_up") == n, 10, "backends up")

    def close(self):
        try:
            self.kf.stop()
        finally:
            for b in self.backends:
                b.stop()


def test_front_proxy_identity_and_stripped_forgeries():
    with tmpdir() as d:
        env = Env(d)
        try:
            body, status = curl(env.pki, env.url + "/api/v1/namespaces/demo/pods?limit=1",
                                "-H", "X-Remote-User: system:admin",
                                "-H", "X-Remote-Group: system:masters",
                                "-H", "Authorization: Bearer stolen")
            assert status == "200 2", status
            got = json.loads(body)
            assert got["client_cert"] == "front-proxy-client"
            assert got["headers"]["x-remote-user"] == "alice"
            assert got["groups"] == ["dev", "qa"], got["groups"]
            assert "authorization" not in got["headers"]
            assert got["path"] == "/api/v1/namespaces/demo/pods?limit=1"
            # Without a client certificate the token goes through for the apiserver to judge,
            # and forged identity headers are still dropped.
            body, status = curl(env.pki, env.url + "/api", "-H", "Authorization: Bearer tok",
                                "-H", "X-Remote-User: system:admin", cert=False)
            got = json.loads(body)
            assert got["headers"]["authorization"] == "Bearer tok"
            assert "x-remote-user" not in got["headers"]
            # the client's address ends X-Forwarded-For, in one header after the client's own
            assert got["headers"]["x-forwarded-for"] == "127.0.0.1", got["headers"]
            body, status = curl(env.pki, env.url + "/api", "-H", "X-Forwarded-For: 10.0.0.1",
                                "-H", "X-Forwarded-For: 10.0.0.2, 10.0.0.3", "--http2")
            got = json.loads(body)
            assert got["headers"]["x-forwarded-for"] == "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1", \
                got["headers"]
        finally:
            env.close()


def test_http_connections_spread_evenly_over_workers():
    """Mode http connections go round robin over the workers (SO_REUSEPORT's hash put 10
    connections 6:4 or worse): 10 connections, 5 on each of the 2 workers, all answered."""
    with tmpdir() as d:
        env = Env(d)
        try:
            def per_worker():
                return [env.kf.metric(f'kfront_worker_http_connections_total{{worker="{i}"}}')
                        for i in range(2)]
            before = per_worker()
            for _ in range(10):
                body, status = curl(env.pki, env.url + "/api", "--http2")
                assert status.startswith("200"), status
            after = per_worker()
            assert [a - b for a, b in zip(after, before)] == [5, 5], (before, after)
        finally:
            env.close()


def test_balanced_per_request_on_one_connection_both_http_versions():
    with tmpdir() as d:
        env = Env(d)
        try:
            for http in ("--http2", "--http1.1"):
                urls = [env.url + f"/api/v1/pods/{i}" for i in range(10)]
                cmd = ["curl", "-sS", http, "--cacert", env.pki.ca[0], "--cert", env.pki.alice[0],
                       "--key", env.pki.alice[1]]
                for u in urls:
                    cmd += [u, "-w", "\n"]
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
                assert out.returncode == 0, out.stderr
                seen = Counter(json.loads(l)["backend"] for l in out.stdout.splitlines() if l)
                assert seen == Counter({"apiserver-0": 5, "apiserver-1": 5}), (http, seen)
            assert env.kf.metric('kfront_http_requests_total{verb="get",resource="pods",code="200"}') == 20
        finally:
            env.close()


def test_post_body_streaming_response_and_headers():
    with tmpdir() as d:
        env = Env(d)
        try:
            body, status = curl(env.pki, env.url + "/api/v1/namespaces/demo/configmaps",
                                "-X", "POST", "-H", "Content-Type: application/json",
                                "--data", '{"kind":"ConfigMap"}', "-D", "-")
            head, _, payload = body.partition("\n\n")
            assert status.startswith("201"), status
            assert payload, repr(body)
            assert "audit-id: abc" in head.lower()
            assert "content-length:" in head.lower()  # the apiserver's length goes through
            assert json.loads(payload)["body"] == '{"kind":"ConfigMap"}'
            for http in ("--http2", "--http1.1"):
                body, status = curl(env.pki, env.url + "/stream?watch=1", http=http)
                lines = [json.loads(l) for l in body.splitlines() if l]
                assert [l["i"] for l in lines] == [0, 1, 2, 3, 4], (http, body)
        finally:
            env.close()


def test_upstream_records_that_arrive_together_are_all_read():
    """kfront reads TLS ahead on upstream HTTP/2 connections too: eight answers the apiserver
    sends as sixteen TLS records in one write must all reach the client, though the
    apiserver then sends nothing more."""
    with tmpdir() as d:
        pki = Pki(d)
        backend = BurstH2Backend("apiserver-burst", pki, batch=8)
        port, admin = free_port(), f"127.0.0.1:{free_port()}"
        kf = Kfront(["--config", config(d, pki, [backend], port, admin)], admin=admin)
        try:
            wait_for(lambda: kf.metric("kfront_backend_up") == 1, 10, "the backend up")
            ctx = ssl.create_default_context(cafile=pki.ca[0])
            ctx.load_cert_chain(*pki.alice)
            c = H2Conn(port, ctx, host="localhost", timeout=5)
            streams = [c.request(f"/api/v1/namespaces/default/configmaps/c{i}",
                                 authority=f"localhost:{port}") for i in range(8)]
            deadline = time.time() + 5
            while not all(st.ended for st in streams) and time.time() < deadline:
                try:
                    if c.pump() is None:
                        break
                except socket.timeout:
                    break
            done = [st.sid for st in streams if st.ended and st.status == 200]
            assert len(done) == 8, f"answered {done} of {[st.sid for st in streams]}"
            c.close()
        finally:
            kf.stop()
            backend.close()


def test_all_backends_down_gives_503_status():
    with tmpdir() as d:
        env = Env(d, n=1)
        try:
            env.backends[0].stop()
            wait_for(lambda: env.kf.metric("kfront_backend_up") == 0, 10, "backend down")
            body, status = curl(env.pki, env.url + "/api/v1/pods")
            assert status.startswith("503"), status
            st = json.loads(body)
            assert st["kind"] == "Status" and st["code"] == 503 and st["reason"] == "ServiceUnavailable"
        finally:
            env.backends = []
            env.close()


def test_mode_http_from_apiserver_style_flags():
    with tmpdir() as d:
        pki = Pki(d)
        b = EchoBackend("apiserver-0", pki)
        port, admin = free_port(), f"127.0.0.1:{free_port()}"
        kf = Kfront(["--mode", "http", "--listen", f"127.0.0.1:{port}", "--upstream", b.address,
                     "--health-check", "tcp", "--admin-listen", admin,
                     "--tls-cert-file", pki.server[0], "--tls-private-key-file", pki.server[1],
                     "--client-ca-file", pki.ca[0], "--upstream-ca-file", pki.ca[0],
                     "--proxy-client-cert-file", pki.front_proxy_client[0],
                     "--proxy-client-key-file", pki.front_proxy_client[1],
                     "--goaway-chance", "0.001"], admin=admin)
        try:
            wait_for(lambda: kf.metric("kfront_backend_up") == 1, 10, "backend up")
            body, status = curl(pki, f"https://localhost:{port}/api/v1/nodes")
            got = json.loads(body)
            assert status == "200 2" and got["headers"]["x-remote-user"] == "alice", (status, got)
        finally:
            kf.stop()
            b.stop()
        # Missing serving certificate: refused with a clear error, exit 1.
        out = subprocess.run([os.environ.get("KFRONT", "build/proxy/kfront"), "--mode", "http",
                              "--listen", f"127.0.0.1:{port}", "--upstream", b.address, "--check"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 1 and "tls.certFile" in out.stderr, out.stderr


def upgrade_request(env, path, proto="websocket"):
    """A raw HTTP/1.1 upgrade over TLS with alice's certificate: the socket and the answer head."""
    ctx = ssl.create_default_context(cafile=env.pki.ca[0])
    ctx.load_cert_chain(*env.pki.alice)
    ctx.set_alpn_protocols(["http/1.1"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.port), timeout=10),
                           server_hostname="localhost")
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                  f"Upgrade: {proto}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n"
                  "X-Stream-Protocol-Version: portforward.k8s.io\r\n"
                  "X-Remote-User: system:admin\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    return sock, head.decode(), rest


def test_upgrade_tunnels_exec_and_relays_refusals():
    with tmpdir() as d:
        env = Env(d, n=1)
        try:
            sock, head, rest = upgrade_request(env, "/api/v1/namespaces/demo/pods/p/exec?command=sh")
            assert head.startswith("HTTP/1.1 101"), head
            assert "upgrade: websocket" in head.lower(), head
            assert "x-seen-user: alice" in head.lower(), head  # kfront vouched, forgery dropped
            while b"hello from the apiserver\n" not in rest:
                rest += sock.recv(4096)
            for msg in (b"ls\n", b"x" * 200000):  # both ways, more than one TLS record
                sock.sendall(msg)
                want, got = msg, b""
                while len(got) < len(want):
                    chunk = sock.recv(65536)
                    assert chunk, got[:100]
                    got += chunk
                assert got == want
            sock.close()
            seen = [x for x in env.backends[0].seen if "/exec" in x["path"]][-1]
            assert seen["client_cert"] == "front-proxy-client"
            assert seen["headers"]["upgrade"] == "websocket"
            # older clients' SPDY/3.1 upgrade (port-forward) is the same raw tunnel
            sock, head, rest = upgrade_request(env, "/api/v1/namespaces/demo/pods/p/portforward",
                                               proto="SPDY/3.1")
            assert head.startswith("HTTP/1.1 101") and "upgrade: spdy/3.1" in head.lower(), head
            sock.sendall(b"\x80\x03\x00\x01spdy-frame-bytes")
            while b"spdy-frame-bytes" not in rest:
                chunk = sock.recv(4096)
                assert chunk, rest
                rest += chunk
            sock.close()
            seen = [x for x in env.backends[0].seen if "/portforward" in x["path"]][-1]
            assert seen["headers"]["x-stream-protocol-version"] == "portforward.k8s.io", seen
            # a refusal comes back as the apiserver wrote it
            sock, head, rest = upgrade_request(env, "/deny/exec")
            assert head.startswith("HTTP/1.1 403"), head
            sock.close()
            # and kfront keeps serving
            body, status = curl(env.pki, env.url + "/api")
            assert status == "200 2", status
        finally:
            env.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
