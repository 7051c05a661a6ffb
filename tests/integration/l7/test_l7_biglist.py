"""A ~300 MB LIST flows through kfront in bounded memory.

kube-sim holds enough pods that a JSON LIST of them is about 300 MB. kfront runs without the
cache, so the LIST is forwarded. A client reads it slowly at first (so kfront must stop
reading upstream instead of buffering what kube-sim sends as fast as it can), then as fast as
it can; the bytes must be kube-sim's own (same length and SHA-256 as a direct read), and
kfront's peak RSS (VmHWM) must grow by less than 64 MB. Once over HTTP/2 (flow-control
windows of 1 MB) and once over HTTP/1.1 (TCP backpressure).
"""
import hashlib
import http.client
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import SimFront, Test, proc_kib, wait_for  # noqa: E402
import ksim  # noqa: E402

PODS = "/api/v1/pods"
N_PODS = 66000  # ~4.6 KB of JSON each in kube-sim's generated cluster: ~300 MB
SLOW_S = 1.5  # reading at a trickle this long first
BOUND_KIB = 64 * 1024
ENV = None


class Digest:
    """Length and SHA-256 of a body read in pieces."""

    def __init__(self):
        self.n, self.h = 0, hashlib.sha256()

    def add(self, b):
        self.n += len(b)
        self.h.update(b)

    def value(self):
        return self.n, self.h.hexdigest()


def env():
    global ENV
    if ENV is None:
        # an ASan build keeps freed memory in a 256 MB quarantine, which would count as growth
        os.environ["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=16") if o)
        sim = ksim.KubeSim(nodes=600, pods=N_PODS, configmaps=10, secrets=10)
        ENV = SimFront([sim], cache=False)
        ENV.direct = direct_digest(ENV)
        assert ENV.direct[0] >= 290e6, f"the LIST is only {ENV.direct[0] / 1e6:.0f} MB"
    return ENV


def h1_read(port, ctx, digest, slow_s):
    """GET the pods over HTTP/1.1 into digest: 16 KiB every 50 ms for slow_s, then at once."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    conn.request("GET", PODS, headers={"Accept": "application/json", "User-Agent": "kfront-test"})
    r = conn.getresponse()
    assert r.status == 200, r.status
    until = time.time() + slow_s
    buf = memoryview(bytearray(1 << 20))  # reused: no allocation per read
    while True:
        slow = time.time() < until
        n = r.readinto(buf[:16384 if slow else 1 << 20])
        if not n:
            break
        digest.add(buf[:n])
        if slow:
            time.sleep(0.05)
    conn.close()
    return r.getheader("Content-Length")


def direct_digest(e):
    d = Digest()
    h1_read(e.sims[0].port, e.ctx(), d, 0)
    return d.value()


def hwm_growth(e, read):
    """Runs read(); returns how much kfront's peak RSS grew (KiB), and the seconds it took."""
    e.h1("/api/v1/namespaces/default/pods?limit=1")  # warm both sides' connections
    hwm0, t0 = proc_kib(e.kf.proc.pid, "VmHWM"), time.time()
    read()
    took = time.time() - t0
    hwm1 = proc_kib(e.kf.proc.pid, "VmHWM")
    print(f"  kfront VmHWM {hwm0 >> 10} -> {hwm1 >> 10} MiB")
    return hwm1 - hwm0, took


def test_biglist_http2_bounded():
    e = env()
    d = Digest()

    def read():
        c = e.h2()
        st = c.request(PODS, headers=[("accept", "application/json"),
                                      ("user-agent", "kfront-test")], sink=d.add)
        c.sock.settimeout(30)
        until = time.time() + SLOW_S
        while not st.done:
            if c.pump() is None:
                break
            if time.time() < until:
                time.sleep(0.05)  # one frame (at most 16 KiB) every 50 ms
        c.close()
        assert st.ended and st.status == 200, (st.status, st.reset, c.goaway)

    grew, took = hwm_growth(e, read)
    assert lists(e) == 0
    assert d.value() == e.direct, (d.value(), e.direct)
    print(f"  HTTP/2: {d.n >> 20} MiB identical to kube-sim's in {took:.1f}s "
          f"({SLOW_S}s of it slow); kfront VmHWM +{grew >> 10} MiB")
    assert grew < BOUND_KIB, f"kfront's peak RSS grew {grew >> 10} MiB for a {d.n >> 20} MiB LIST"


def test_biglist_http1_bounded():
    e = env()
    d = Digest()
    grew, took = hwm_growth(e, lambda: h1_read(e.port, e.ctx(), d, SLOW_S))
    assert d.value() == e.direct, (d.value(), e.direct)
    print(f"  HTTP/1.1: {d.n >> 20} MiB identical to kube-sim's in {took:.1f}s "
          f"({SLOW_S}s of it slow); kfront VmHWM +{grew >> 10} MiB")
    assert grew < BOUND_KIB, f"kfront's peak RSS grew {grew >> 10} MiB for a {d.n >> 20} MiB LIST"


def test_biglist_client_gone_midway():
    """A client that reads 10 MB and leaves: kfront cancels the upstream stream (kube-sim's
    open requests go back down) and keeps serving."""
    e = env()
    for proto in ("h2", "h1"):
        got = Digest()
        if proto == "h2":
            c = e.h2()
            st = c.request(PODS, headers=[("accept", "application/json")], sink=got.add)
            c.sock.settimeout(30)
            while got.n < 10 << 20 and c.pump() is not None:
                pass
            assert not st.done and lists(e) == 1
            c.close()
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", e.port, context=e.ctx(), timeout=30)
            conn.request("GET", PODS, headers={"Accept": "application/json"})
            r = conn.getresponse()
            while got.n < 10 << 20:
                got.add(r.read1(1 << 20))
            assert lists(e) == 1
            conn.sock.shutdown(socket.SHUT_RDWR)  # the response still holds the socket open
            r.close()
            conn.close()
        wait_for(lambda: lists(e) == 0, 10, f"kube-sim to see the {proto} LIST cancelled")
    st, _, body = e.h1("/api/v1/namespaces/default/pods?limit=1")
    assert st == 200, st


def lists(e):
    """LIST responses kube-sim is streaming."""
    return json.loads(e.sims[0].admin_get("/stats"))["lists"]


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")],
               cleanup=lambda: ENV and ENV.close())
