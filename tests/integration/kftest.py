"""Shared harness for kfront's integration tests: real processes, real sockets.

Each test starts the kfront binary (path from $KFRONT) with a config it writes
to a temp dir, plus backends from this module, and asserts on what clients see.
Everything binds to 127.0.0.1 (or ::1) on ports the kernel picks.
"""
import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

KFRONT = os.environ.get("KFRONT", "build/proxy/kfront")


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Backend:
    """A TCP backend speaking just enough HTTP/1.1 for the tests.

    GET /id      -> 200, body is the backend name (keep-alive)
    GET /readyz  -> 200 "ok" or 503 while .ready is False
    GET /stream  -> 200, then one line every 50 ms until the client closes
    Anything else echoes raw bytes (for non-HTTP tunnels).
    """

    def __init__(self, name, port=None, host="127.0.0.1", tls=None):
        self.name = name
        self.tls = tls  # an ssl.SSLContext for server-side TLS, or None
        self.ready = True
        self.accepted = 0
        self.open = 0
        self.lock = threading.Lock()
        backend = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with backend.lock:
                    backend.accepted += 1
                    backend.open += 1
                try:
                    sock = self.request
                    if backend.tls:
                        sock = backend.tls.wrap_socket(sock, server_side=True)
                    backend._serve(sock)
                except OSError:
                    pass
                finally:
                    with backend.lock:
                        backend.open -= 1

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, port or 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"{host}:{self.port}" if ":" not in host else f"[{host}]:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _serve(self, sock):
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            if not buf.startswith((b"GET ", b"POST ")):
                sock.sendall(buf)  # echo
                buf = b""
                continue
            while b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                if path == "/stream":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                    i = 0
                    while True:
                        sock.sendall(b"line %d from %s\n" % (i, self.name.encode()))
                        i += 1
                        time.sleep(0.05)
                if path == "/readyz":
                    code, body = (200, b"ok") if self.ready else (503, b"not ready")
                else:
                    code, body = 200, self.name.encode()
                sock.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (code, len(body), body))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SilentBackend:
    """Accepts connections and never answers: a hung apiserver."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self.conns = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                return

    def stop(self):
        self.running = False
        self.sock.close()
        for c in self.conns:
            c.close()


def make_cert(dirpath, cn="localhost"):
    """A self-signed serving certificate for 127.0.0.1 and localhost: (cert, key) paths."""
    cert, key = os.path.join(dirpath, "tls.crt"), os.path.join(dirpath, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", f"/CN={cn}", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def write_config(dirpath, servers, listen, admin, balance="roundrobin", check=None,
                 timeouts=None, extra_backend="", name="kfront.yaml", maxconn=None):
    check = check or {"type": "tcp", "interval": "200ms", "timeout": "200ms", "rise": 2, "fall": 2}
    lines = [
        "apiVersion: kfront.io/v1alpha1",
        "kind: KfrontConfiguration",
        "workers: 2",
        "logLevel: debug" if os.environ.get("KF_DEBUG") else "logLevel: info",
        f"admin:\n  listen: {admin}",
    ]
    if maxconn is not None:
        lines.append(f"maxConnections: {maxconn}")
    if timeouts:
        lines.append("timeouts:")
        lines += [f"  {k}: {v}" for k, v in timeouts.items()]
    lines += [
        "frontends:",
        "  - name: api",
        "    listen: [" + ", ".join(f'"{l}"' for l in listen) + "]",
        "    mode: tcp",
        "    backend: masters",
        "backends:",
        "  - name: masters",
        f"    balance: {balance}",
        "    healthCheck:",
    ]
    lines += [f"      {k}: {v}" for k, v in check.items()]
    lines.append("    servers:")
    for s in servers:
        lines.append("      - {" + ", ".join(f"{k}: {v}" for k, v in s.items()) + "}")
    path = os.path.join(dirpath, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra_backend)
    return path


class Kfront:
    def __init__(self, args, admin=None):
        self.admin = admin
        self.log = tempfile.NamedTemporaryFile(prefix="kfront-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([KFRONT] + args, stdout=self.log, stderr=subprocess.STDOUT)
        if admin:
            wait_for(lambda: self.http_status("/healthz") == 200, 10, "kfront admin endpoint")

    def http(self, path):
        try:
            with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def http_status(self, path):
        try:
            return self.http(path)[0]
        except OSError:
            return None

    def metric(self, name):
        """Sum of every sample of a metric family whose line starts with name."""
        _, text = self.http("/metrics")
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        assert found, f"metric {name} not found"
        return total

    def logs(self):
        with open(self.log.name) as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, wait; fails the test if kfront did not exit 0 or a sanitizer spoke."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("kfront did not exit within %ss of SIGTERM" % timeout)
        logs = self.logs()
        for marker in ("Sanitizer", "runtime error:", "BUG at"):
            assert marker not in logs, "kfront log:\n" + logs[-4000:]
        assert self.proc.returncode == 0, f"kfront exited {self.proc.returncode}"
        return self.proc.returncode


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get_id(addr, timeout=3):
    """One HTTP/1.1 request through kfront; returns the backend's name."""
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before a response")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(body) < n:
            body += s.recv(4096)
        return body.decode()


class Test:
    """Minimal runner: each test_* function runs; prints 'N passed, N failed'."""

    def __init__(self):
        self.results = []

    def run(self, funcs):
        for f in funcs:
            t0 = time.time()
            try:
                f()
                self.results.append((f.__name__, None))
                print(f"ok   {f.__name__} ({time.time()-t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                import traceback
                traceback.print_exc()
                self.results.append((f.__name__, e))
                print(f"FAIL {f.__name__}: {e}", flush=True)
        failed = sum(1 for _, e in self.results if e)
        print(f"{len(self.results) - failed} passed, {failed} failed")
        sys.exit(1 if failed else 0)


@contextlib.contextmanager
def tmpdir():
    with tempfile.TemporaryDirectory(prefix="kfront-test-") as d:
        yield d
