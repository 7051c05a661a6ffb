"""Shared harness for kfront's integration tests: real processes, real sockets.

Each test starts the kfront binary (path from $KFRONT) with a config it writes
to a temp dir, plus backends from this module, and asserts on what clients see.
Everything binds to 127.0.0.1 (or ::1) on ports the kernel picks.
"""
import contextlib
import ctypes
import ctypes.util
import http.client
import json
import os
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

KFRONT = os.environ.get("KFRONT", "build/proxy/kfront")



def read_head(sock):
    """Read an HTTP/1.1 response head off sock: (head bytes, what followed it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest

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
            request_queue_size = 128  # 5 by default: health checks and a loaded CI overflow it
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


class LoopbackServer:
    """A server on a free loopback port: each accepted connection is handed, on a thread of
    its own, to self._serve(socket). Subclasses set what _serve needs before calling
    __init__, which starts accepting."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raise NotImplementedError

    def close(self):
        self.sock.close()


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


def proc_kib(pid, field="VmRSS"):
    """A memory figure of /proc/<pid>/status in KiB: VmRSS now, VmHWM its peak."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


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

    def run(self, funcs, cleanup=None):
        """Runs funcs, then cleanup() (shared environments); exits 0 if all passed."""
        try:
            self._run(funcs)
        finally:
            if cleanup:
                cleanup()
        failed = sum(1 for _, e in self.results if e)
        print(f"{len(self.results) - failed} passed, {failed} failed")
        sys.exit(1 if failed else 0)

    def _run(self, funcs):
        only = os.environ.get("KF_ONLY")  # run just the tests whose name contains this
        for f in funcs:
            if only and only not in f.__name__:
                continue
            t0 = time.time()
            xfail = getattr(f, "xfail", None)
            try:
                f()
                if xfail and f.xfail_strict:
                    raise AssertionError(f"XPASS (strict): marked xfail ({xfail}) but passed")
                self.results.append((f.__name__, None))
                print(f"ok   {f.__name__} ({time.time()-t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                import traceback
                traceback.print_exc()
                if xfail and not str(e).startswith("XPASS"):
                    self.results.append((f.__name__, None))
                    print(f"xfail {f.__name__} ({time.time()-t0:.1f}s): {xfail}", flush=True)
                    continue
                self.results.append((f.__name__, e))
                print(f"FAIL {f.__name__}: {e}", flush=True)


@contextlib.contextmanager
def tmpdir():
    with tempfile.TemporaryDirectory(prefix="kfront-test-") as d:
        yield d


def xfail(reason, strict=True):
    """Mark a test that shows a known bug (like pytest.mark.xfail(strict=True)): the runner
    counts its failure as expected and its passing as a failure, so the mark is removed
    once the bug is fixed."""
    def mark(f):
        f.xfail = reason
        f.xfail_strict = strict
        return f
    return mark


# ---- a raw HTTP/2 client ---------------------------------------------------------------------
# Frames are built by hand (so tests can also send malformed ones); requests are HPACK literals
# without indexing; response header blocks are decoded with libnghttp2's HPACK inflater (through
# ctypes), the library kfront itself links.

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
H2_ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
             "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
             "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY",
             "HTTP_1_1_REQUIRED"]
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 2, 4, 5


def h2_frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload


def h2_settings(pairs):
    return b"".join(struct.pack(">HI", k, v) for k, v in pairs)


def hpack_int(v, prefix_bits, first=0):
    top = (1 << prefix_bits) - 1
    if v < top:
        return bytes([first | v])
    out = [first | top]
    v -= top
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    return bytes(out + [v])


def hpack_literal(name, value):
    """'Literal Header Field without Indexing, New Name', no Huffman (RFC 7541 6.2.2)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


class _Nv(ctypes.Structure):
    _fields_ = [("name", ctypes.POINTER(ctypes.c_uint8)), ("value", ctypes.POINTER(ctypes.c_uint8)),
                ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                ("flags", ctypes.c_uint8)]


class HpackDecoder:
    """One connection's HPACK decoding context (libnghttp2's inflater)."""

    lib = None

    def __init__(self):
        if HpackDecoder.lib is None:
            lib = ctypes.CDLL(ctypes.util.find_library("nghttp2") or "libnghttp2.so.14")
            lib.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
            lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
            lib.nghttp2_hd_inflate_hd2.argtypes = [
                ctypes.c_void_p, ctypes.POINTER(_Nv), ctypes.POINTER(ctypes.c_int),
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
            lib.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]
            lib.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
            HpackDecoder.lib = lib
        self.ptr = ctypes.c_void_p()
        assert self.lib.nghttp2_hd_inflate_new(ctypes.byref(self.ptr)) == 0

    def decode(self, block):
        """[(name, value)] of a complete header block."""
        out, nv, flags = [], _Nv(), ctypes.c_int()
        buf = ctypes.create_string_buffer(block, len(block))
        pos = 0
        while True:
            rv = self.lib.nghttp2_hd_inflate_hd2(self.ptr, ctypes.byref(nv), ctypes.byref(flags),
                                                 ctypes.cast(ctypes.byref(buf, pos), ctypes.c_char_p),
                                                 len(block) - pos, 1)
            if rv < 0:
                raise ValueError(f"HPACK error {rv}")
            pos += rv
            if flags.value & 0x02:  # NGHTTP2_HD_INFLATE_EMIT
                out.append((ctypes.string_at(nv.name, nv.namelen).decode(),
                            ctypes.string_at(nv.value, nv.valuelen).decode()))
            if flags.value & 0x01:  # NGHTTP2_HD_INFLATE_FINAL
                self.lib.nghttp2_hd_inflate_end_headers(self.ptr)
                return out
            if rv == 0 and pos >= len(block):
                raise ValueError("truncated header block")

    def __del__(self):
        if self.lib and self.ptr:
            self.lib.nghttp2_hd_inflate_del(self.ptr)


class H2Stream:
    def __init__(self, sid, sink=None):
        self.sid = sid
        self.headers = None  # [(name, value)] of the response head
        self.data = bytearray()  # the body, unless a sink takes it
        self.sink = sink
        self.ended = False  # END_STREAM seen
        self.reset = None  # RST_STREAM error code
        self.end_time = None  # when it ended either way (time.time())

    @property
    def status(self):
        return int(dict(self.headers)[":status"]) if self.headers else None

    @property
    def done(self):
        return self.end_time is not None

    def lines(self):
        return [json.loads(l) for l in bytes(self.data).split(b"\n") if l.strip()]


class H2Conn:
    """A raw HTTP/2 client connection over TLS (ALPN h2) with flow control: each stream and the
    connection get window bytes, given back as DATA is received (so a caller that calls pump()
    slowly reads slowly). Use it from one thread, or call start() and from then on only
    request() and close() from others: the reader thread does all the socket I/O."""

    def __init__(self, port, ctx, host="127.0.0.1", window=1 << 20, handshake=True, timeout=10):
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.buf, self.pos = bytearray(), 0  # received, and how far frames were taken
        self.rbuf = memoryview(bytearray(1 << 20))  # reused: no allocation per receive
        self.window = window
        self.streams = {}
        self.next_sid = 1
        self.goaway = None  # (last stream id, error code, debug data)
        self.eof = False
        self.server_settings = None
        self.hpack = HpackDecoder()
        self.pending_head = None  # (sid, block so far, ended) while CONTINUATIONs come
        self.unacked = {}  # sid (0: connection) -> bytes received, not yet given back
        self.outq, self.lock, self.thread = [], threading.Lock(), None
        if handshake:
            self.send(H2_PREFACE + h2_frame(SETTINGS, 0, 0, h2_settings(
                [(SETTINGS_ENABLE_PUSH, 0), (SETTINGS_INITIAL_WINDOW_SIZE, window)])))
            if window > 65535:
                self.send(h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", window - 65535)))

    # -- raw I/O --
    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        """The next frame (type, flags, stream id, payload), or None at EOF."""
        while True:
            avail = len(self.buf) - self.pos
            if avail >= 9:
                n = int.from_bytes(self.buf[self.pos:self.pos + 3], "big")
                if avail >= 9 + n:
                    t, fl, sid = struct.unpack_from(">BBI", self.buf, self.pos + 3)
                    payload = bytes(self.buf[self.pos + 9:self.pos + 9 + n])
                    self.pos += 9 + n
                    return t, fl, sid & 0x7FFFFFFF, payload
            if self.pos:
                del self.buf[:self.pos]  # compact once per receive, not per frame
                self.pos = 0
            try:
                got = self.sock.recv_into(self.rbuf)
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                got = 0
            if not got:
                self.eof = True
                return None
            self.buf += self.rbuf[:got]

    # -- requests --
    def request(self, path, method="GET", headers=(), body=None, authority="127.0.0.1",
                sink=None):
        """Starts a request; returns its H2Stream. sink(bytes), if given, takes the response
        body instead of the stream's data buffer."""
        block = b"".join(hpack_literal(k, v) for k, v in
                         [(":method", method), (":scheme", "https"), (":authority", authority),
                          (":path", path)] + list(headers))
        with self.lock:
            sid = self.next_sid
            self.next_sid += 2
            st = self.streams[sid] = H2Stream(sid, sink)
            out = h2_frame(HEADERS, END_HEADERS | (0 if body else END_STREAM), sid, block)
            if body:
                out += h2_frame(DATA, END_STREAM, sid, body)
            if self.thread:
                self.outq.append(out)
            else:
                self.send(out)
        return st

    def _give_back(self, sid, n, stream_open):
        """WINDOW_UPDATE once half a window has been received (stream and connection)."""
        out = b""
        for key in (sid, 0) if stream_open else (0,):
            self.unacked[key] = self.unacked.get(key, 0) + n
            if self.unacked[key] >= self.window // 2:
                out += h2_frame(WINDOW_UPDATE, 0, key, struct.pack(">I", self.unacked[key]))
                self.unacked[key] = 0
        if out:
            self.send(out)

    def _ended(self, st):
        if st and not st.done:
            st.end_time = time.time()

    def pump(self):
        """Reads and handles one frame; returns it (None at EOF)."""
        f = self.read_frame()
        if f is None:
            for st in self.streams.values():
                self._ended(st)
            return None
        t, fl, sid, p = f
        st = self.streams.get(sid)
        if t == DATA:
            body = p[1 + p[0]:] if fl & PADDED else p
            if st and st.sink:
                st.sink(body)
            elif st:
                st.data += body
            if len(p):
                self._give_back(sid, len(p), not fl & END_STREAM)
            if fl & END_STREAM:
                if st:
                    st.ended = True
                self._ended(st)
        elif t in (HEADERS, CONTINUATION):
            self._headers(t, fl, sid, p)
        elif t == RST_STREAM and st:
            st.reset = struct.unpack(">I", p[:4])[0]
            self._ended(st)
        elif t == SETTINGS and not fl & ACK:
            self.server_settings = dict(struct.unpack(">HI", p[i:i + 6]) for i in range(0, len(p), 6))
            self.send(h2_frame(SETTINGS, ACK, 0))
        elif t == PING and not fl & ACK:
            self.send(h2_frame(PING, ACK, 0, p))
        elif t == GOAWAY:
            last, code = struct.unpack(">II", p[:8])
            self.goaway = (last & 0x7FFFFFFF, code, p[8:])
            for s in self.streams.values():
                if s.sid > self.goaway[0]:
                    self._ended(s)
        return f

    def _headers(self, t, fl, sid, p):
        if t == HEADERS:
            pad = p[0] if fl & PADDED else 0
            p = p[1 if fl & PADDED else 0:len(p) - pad]
            if fl & 0x20:  # PRIORITY
                p = p[5:]
            self.pending_head = (sid, p, bool(fl & END_STREAM))
        else:
            s0, block, end = self.pending_head
            self.pending_head = (s0, block + p, end)
        if not fl & END_HEADERS:
            return
        sid, block, end = self.pending_head
        self.pending_head = None
        fields = self.hpack.decode(block)
        st = self.streams.get(sid)
        if st and st.headers is None:
            st.headers = fields
        elif st:
            st.trailers = fields
        if end and st:
            st.ended = True
            self._ended(st)

    # -- the reader thread --
    def start(self):
        """From now on a thread reads (and sends what request() queues)."""
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self.eof:
                with self.lock:
                    out, self.outq = b"".join(self.outq), []
                if out:
                    self.send(out)
                try:
                    if self.pump() is None:
                        return
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
        except OSError:
            self.eof = True
            for st in self.streams.values():
                self._ended(st)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.thread:
            self.thread.join(5)
        self.sock.close()


# ---- kfront (mode http) in front of kube-sims ---------------------------------------------------

class SimFront:
    """kfront in L7 mode in front of running kube-sims (ksim.KubeSim objects that share one
    certificate directory, e.g. started with the same seed for identical content).

    cache: kfront's watch cache on (reflectors list and watch upstream), off (every request
    is forwarded) or None (not configured: on). identity: front-proxy, impersonate or
    passthrough. check: the backend's healthCheck mapping (YAML flow text). extra_yaml:
    more top-level settings."""

    def __init__(self, sims, cache=None, identity="front-proxy", check=None, extra_yaml="",
                 anonymous=None):
        self.sims = sims
        c = self.certs = sims[0].certs
        self.port, self.admin = free_port(), f"127.0.0.1:{free_port()}"
        self.url = f"https://127.0.0.1:{self.port}"
        check = check or ("{type: tls, interval: 200ms, timeout: 500ms, rise: 1, fall: 1, "
                          f"tls: {{caFile: {c}/ca.crt}}}}")
        ident = f"identity:\n  mode: {identity}\n"
        if anonymous is not None:  # what kfront is told of the apiservers' --anonymous-auth
            ident += f"  anonymous: {str(anonymous).lower()}\n"
        if identity == "front-proxy":
            ident += (f"  proxyClientCertFile: {c}/front-proxy-client.crt\n"
                      f"  proxyClientKeyFile: {c}/front-proxy-client.key\n")
        upstream = f"{{caFile: {c}/ca.crt}}"
        if identity == "impersonate":  # kfront's own credentials carry Impersonate-*
            upstream = f"{{caFile: {c}/ca.crt, certFile: {c}/admin.crt, keyFile: {c}/admin.key}}"
        # a test that failed may leave watches open: do not wait the default 30 s for them
        drain = "" if "timeouts:" in extra_yaml else "timeouts: {drain: 3s}\n"
        cache_line = "" if cache is None else f"cache: {{enabled: {str(cache).lower()}}}\n"
        servers = "\n".join(f'      - {{name: sim-{i + 1}, address: "127.0.0.1:{s.port}"}}'
                            for i, s in enumerate(sims))
        self.config = os.path.join(sims[0].dir, f"kfront-{self.port}.yaml")
        with open(self.config, "w") as f:
            f.write(f"""apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
workers: 2
{"logLevel: debug" if os.environ.get("KF_DEBUG") else "logLevel: info"}
admin: {{listen: "{self.admin}"}}
{drain}{ident}{cache_line}{extra_yaml}frontends:
  - name: api
    listen: ["127.0.0.1:{self.port}"]
    mode: http
    backend: sim
    tls: {{certFile: {c}/apiserver.crt, keyFile: {c}/apiserver.key, clientCAFile: {c}/ca.crt}}
backends:
  - name: sim
    healthCheck: {check}
    upstreamTLS: {upstream}
    servers:
{servers}
""")
        self.kf = None
        try:
            self.kf = Kfront(["--config", self.config], admin=self.admin)
            wait_for(lambda: self.kf.metric("kfront_backend_up") == len(sims), 10, "kube-sims up")
        except BaseException:  # a kfront that did not come up leaves nothing behind
            if self.kf and self.kf.proc.poll() is None:
                self.kf.proc.kill()
            for s in sims:
                if s.proc.poll() is None:
                    s.stop()
            raise

    def ctx(self, cert="admin"):
        """A client TLS context trusting the cluster CA, with certs/<cert>.crt (None: none)."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
        if cert:
            ctx.load_cert_chain(os.path.join(self.certs, cert + ".crt"),
                                os.path.join(self.certs, cert + ".key"))
        return ctx

    def h2(self, cert="admin", port=None, **kw):
        return H2Conn(port or self.port, self.ctx(cert), **kw)

    def h1(self, path, method="GET", body=None, headers=None, cert="admin", port=None,
           timeout=20):
        """One HTTP/1.1 request over TLS: (status, lowercased headers, body bytes)."""
        conn = http.client.HTTPSConnection("127.0.0.1", port or self.port, context=self.ctx(cert),
                                           timeout=timeout)
        h = {"Accept": "application/json", "User-Agent": "kfront-test"}
        h.update(headers or {})
        if body is not None and not isinstance(body, bytes):
            body, h["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def close(self):
        try:
            self.kf.stop()
        finally:
            for s in self.sims:
                if s.proc.poll() is None:
                    s.stop()
