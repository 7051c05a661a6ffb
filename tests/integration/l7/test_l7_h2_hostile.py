"""Malformed HTTP/2 from a raw client (TLS, ALPN h2, frames built by hand) through kfront in
L7 mode in front of kube-sim.

Each connection error of RFC 9113 must get kfront's GOAWAY with the error code the RFC names
(nghttp2, kfront's HTTP/2 library, sends those), and the connection must then be closed;
stream errors get RST_STREAM and leave the connection usable. Meanwhile, watches on other
connections (HTTP/2 and HTTP/1.1) keep streaming and new requests succeed.
"""
import json
import os
import re
import socket
import ssl
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
sys.path.insert(0, os.path.join(HERE, "..", "cache"))
from kftest import (CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, H2_ERRORS,  # noqa: E402
                    H2_PREFACE, HEADERS, PING, RST_STREAM, SETTINGS,
                    SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_UPDATE, SimFront,
                    Test, h2_frame, h2_settings, hpack_literal, proc_kib, wait_for)
import ksim  # noqa: E402
from test_cache_conformance import Client, Watch  # noqa: E402

NS_CMS = "/api/v1/namespaces/default/configmaps"
ENV = None
CACHED = None
CACHED_CM = NS_CMS + "/records?resourceVersion=0"


def env():
    global ENV
    if ENV is None:
        ENV = SimFront([ksim.KubeSim(nodes=2, pods=4, configmaps=3, secrets=1)], cache=False)
    return ENV


def cached_env():
    """kfront with its cache on, in front of env()'s kube-sim, which holds a ConfigMap of
    5,000 bytes, "records", that kfront answers from its cache."""
    global CACHED
    if CACHED is None:
        sim = env().sims[0]
        st, _ = sim.json("POST", NS_CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "records"},
                                          "data": {"b": "x" * 5000}})
        assert st == 201, st
        CACHED = SimFront(env().sims)
        wait_for(lambda: served(CACHED, lambda: CACHED.h1(CACHED_CM)[0] == 200), 10,
                 "the ConfigMap answered from kfront's cache")
    return CACHED


def served_count(e):
    """Requests kfront's cache has answered."""
    return e.kf.metric('kfront_cache_requests_total{result="served"}')


def served(e, request):
    """Whether request() succeeded and kfront's cache answered it."""
    before = served_count(e)
    return request() and served_count(e) > before


def request_block(path, extra=()):
    return b"".join(hpack_literal(k, v) for k, v in
                    [(":method", "GET"), (":scheme", "https"), (":authority", "127.0.0.1"),
                     (":path", path), ("accept", "application/json")] + list(extra))


def open_conn(e):
    """A connection past the handshake: our SETTINGS sent, the server's SETTINGS received."""
    c = e.h2()
    wait_frames(c, lambda f: f[0] == SETTINGS and not f[1] & 1, "the server's SETTINGS")
    return c


def wait_frames(c, pred, what, timeout=5):
    """Pumps frames until pred(frame) holds; returns that frame (None if EOF came first)."""
    c.sock.settimeout(timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        f = c.pump()
        if f is None or pred(f):
            return f
    raise AssertionError(f"timed out waiting for {what}")


def goaway_then_close(c, timeout=5):
    """Reads to EOF: (error code of the GOAWAY received or None, seconds to EOF)."""
    t0 = time.time()
    c.sock.settimeout(timeout)
    while c.pump() is not None:
        assert time.time() - t0 < timeout, "the connection was not closed"
    return (c.goaway[1] if c.goaway else None), time.time() - t0


# (name, what to send after the handshake, the GOAWAY error code RFC 9113 requires)
MAX = 16384  # SETTINGS_MAX_FRAME_SIZE: kfront does not advertise a larger one (checked)
CONNECTION_ERRORS = [
    ("DATA on stream 0 (6.1)", h2_frame(DATA, 0, 0, b"x"), "PROTOCOL_ERROR"),
    ("HEADERS over SETTINGS_MAX_FRAME_SIZE (4.2)",
     h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(NS_CMS) + b"\0" * MAX),
     "FRAME_SIZE_ERROR"),
    ("HEADERS with an HPACK index past both tables (4.3)",
     h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\x0f"), "COMPRESSION_ERROR"),
    ("HEADERS with a truncated HPACK literal (4.3)",
     h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x00\x7f\x20abc"), "COMPRESSION_ERROR"),
    ("WINDOW_UPDATE of 0 on the connection (6.9)",
     h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), "PROTOCOL_ERROR"),
    # a stream error by the RFC, which nghttp2 makes a connection error (5.4.1 allows it)
    ("WINDOW_UPDATE of 0 on an open stream (6.9)",
     h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(NS_CMS + "?watch=1")) +
     h2_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)), "PROTOCOL_ERROR"),
    ("WINDOW_UPDATE past 2^31-1 on the connection (6.9.1)",
     h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2, "FLOW_CONTROL_ERROR"),
    ("HEADERS on an even (server) stream id (5.1.1)",
     h2_frame(HEADERS, END_HEADERS | END_STREAM, 2, request_block(NS_CMS)), "PROTOCOL_ERROR"),
    ("SETTINGS of 5 bytes (6.5)", h2_frame(SETTINGS, 0, 0, b"\0\0\0\0\0"), "FRAME_SIZE_ERROR"),
    ("SETTINGS_INITIAL_WINDOW_SIZE 2^31 (6.5.2)",
     h2_frame(SETTINGS, 0, 0, h2_settings([(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)])),
     "FLOW_CONTROL_ERROR"),
    ("SETTINGS_ENABLE_PUSH 2 (6.5.2)",
     h2_frame(SETTINGS, 0, 0, h2_settings([(SETTINGS_ENABLE_PUSH, 2)])), "PROTOCOL_ERROR"),
    ("PING of 7 bytes (6.7)", h2_frame(PING, 0, 0, b"\0" * 7), "FRAME_SIZE_ERROR"),
    ("CONTINUATION without HEADERS (6.10)",
     h2_frame(CONTINUATION, END_HEADERS, 1, request_block(NS_CMS)), "PROTOCOL_ERROR"),
    ("DATA on an idle stream (5.1)", h2_frame(DATA, 0, 5, b"x"), "PROTOCOL_ERROR"),
    ("RST_STREAM on stream 0 (6.4)", h2_frame(RST_STREAM, 0, 0, struct.pack(">I", 8)),
     "PROTOCOL_ERROR"),
]


class Bystanders:
    """Watches on other connections that must not notice: one HTTP/2, one HTTP/1.1."""

    def __init__(self, e):
        _, _, body = e.h1(NS_CMS)
        rv = json.loads(body)["metadata"]["resourceVersion"]
        path = f"{NS_CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=60"
        self.conn = e.h2()
        self.h2 = self.conn.request(path, headers=[("accept", "application/json")])
        self.conn.start()
        self.h1 = Watch(Client(e.port, e.certs), path, "json")
        wait_for(lambda: self.h2.status == 200, 5, "the bystander HTTP/2 watch")

    def check(self, e, name):
        st, obj = e.sims[0].json("POST", NS_CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": name}})
        assert st == 201, (st, obj)
        wait_for(lambda: any(l["object"]["metadata"]["name"] == name for l in self.h2.lines())
                 and any(json.loads(f)["object"]["metadata"]["name"] == name
                         for f in list(self.h1.frames)), 10, f"the bystanders to see {name}")
        assert not self.h2.done and self.h1.thread.is_alive(), "a bystander watch ended"
        st, _, body = e.h1(f"{NS_CMS}/{name}")
        assert st == 200 and json.loads(body)["metadata"]["name"] == name, (st, body[:200])

    def close(self):
        self.conn.close()
        self.h1.close()


def test_connection_errors_get_goaway_with_the_rfc_code():
    e = env()
    by = Bystanders(e)
    try:
        got, slow = [], 0.0
        for name, frames, want in CONNECTION_ERRORS:
            c = open_conn(e)
            assert c.server_settings.get(5, MAX) == MAX, c.server_settings
            c.send(frames)
            code, took = goaway_then_close(c)
            c.close()
            got.append((name, H2_ERRORS[code] if code is not None else None, want))
            slow = max(slow, took)
        wrong = [g for g in got if g[1] != g[2]]
        assert not wrong, "\n".join(f"{n}: GOAWAY {g}, RFC 9113 wants {w}" for n, g, w in wrong)
        print(f"  {len(got)} hostile connections: GOAWAY with the right code, each closed "
              f"within {slow * 1000:.0f} ms")
        by.check(e, "after-connection-errors")
    finally:
        by.close()


def test_bad_preface_is_closed():
    """RFC 9113 3.4: an invalid preface is a connection error; the GOAWAY may be omitted."""
    e = env()
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"):
        c = e.h2(handshake=False)
        c.send(junk)
        code, _ = goaway_then_close(c)
        c.close()
        assert code in (None, 1), (junk, code)  # none, or PROTOCOL_ERROR


def test_stream_errors_reset_the_stream_and_keep_the_connection():
    """Malformed requests are stream errors (RFC 9113 8.1.1, 8.2.1, 8.3.1): RST_STREAM
    PROTOCOL_ERROR, and the connection goes on. A watch the client resets meanwhile (stream 1,
    forwarded to kube-sim) must be cancelled upstream."""
    e = env()
    sim = e.sims[0]
    before = json.loads(sim.admin_get("/stats"))["watches"]
    c = open_conn(e)
    try:
        c.send(h2_frame(HEADERS, END_HEADERS | END_STREAM, 1,
                        request_block(NS_CMS + "?watch=1&timeoutSeconds=60")))
        wait_frames(c, lambda f: f[0] == HEADERS and f[2] == 1, "the watch's response head")
        wait_for(lambda: json.loads(sim.admin_get("/stats"))["watches"] == before + 1, 5,
                 "the watch upstream")
        c.send(h2_frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))  # CANCEL
        bad = [("an upper-case header name", request_block(NS_CMS, [("X-Upper", "1")])),
               ("no :path", b"".join(hpack_literal(k, v) for k, v in
                                     [(":method", "GET"), (":scheme", "https"),
                                      (":authority", "x")])),
               ("a connection-specific header", request_block(NS_CMS, [("connection", "close")])),
               ("a pseudo-header after a regular one",
                request_block(NS_CMS, [("accept", "*/*"), (":method", "GET")]))]
        for i, (what, block) in enumerate(bad):
            sid = 3 + 2 * i
            c.send(h2_frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
            f = wait_frames(c, lambda f: f[0] == RST_STREAM and f[2] == sid, f"RST_STREAM {sid}")
            assert f, (what, "connection closed", c.goaway)
            assert H2_ERRORS[struct.unpack(">I", f[3])[0]] == "PROTOCOL_ERROR", (what, f)
            c.next_sid = sid + 2
        # the connection still serves
        st = c.request(NS_CMS, headers=[("accept", "application/json")])
        wait_frames(c, lambda f: st.done, "the GET on the same connection")
        assert st.status == 200 and json.loads(bytes(st.data))["kind"] == "ConfigMapList", \
            st.headers
        assert c.goaway is None, c.goaway
    finally:
        c.close()
    wait_for(lambda: json.loads(sim.admin_get("/stats"))["watches"] == before, 5,
             "the reset watch to be cancelled upstream")


def test_floods_are_cut_off():
    """Rapid reset (CVE-2023-44487): streams opened and reset at once must not pile up
    upstream. A CONTINUATION flood (CVE-2024-27316 style: a header block that never ends) must
    get the connection closed before it costs kfront memory."""
    e = env()
    sim = e.sims[0]
    by = Bystanders(e)
    try:
        base = json.loads(sim.admin_get("/stats"))["watches"]
        c = open_conn(e)
        burst = b"".join(h2_frame(HEADERS, END_HEADERS | END_STREAM, sid,
                                  request_block(NS_CMS + "?watch=1&timeoutSeconds=60")) +
                         h2_frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
                         for sid in range(1, 2001, 2))
        c.send(burst + h2_frame(PING, 0, 0, b"rapidrst"))
        f = wait_frames(c, lambda f: f[0] == PING and f[3] == b"rapidrst", "the PING ack", 15)
        outcome = "connection open" if f else \
            f"GOAWAY {H2_ERRORS[c.goaway[1]] if c.goaway else 'none'} and closed"
        c.close()
        wait_for(lambda: json.loads(sim.admin_get("/stats"))["watches"] == base, 10,
                 "no upstream watch left from the reset streams")
        print(f"  rapid reset of 1000 streams: {outcome}; upstream back to {base} watches")
        rss0 = proc_kib(e.kf.proc.pid)
        c = open_conn(e)
        block = request_block(NS_CMS)
        c.send(h2_frame(HEADERS, 0, 1, block))
        sent, closed = 0, False
        filler = hpack_literal("x-filler", "y" * 16000)
        try:
            for _ in range(2000):  # up to 32 MB of header block
                c.send(h2_frame(CONTINUATION, 0, 1, filler))
                sent += len(filler)
        except OSError:
            closed = True
        code, took = goaway_then_close(c)
        c.close()
        grew = proc_kib(e.kf.proc.pid) - rss0
        print(f"  CONTINUATION flood: cut off after {sent >> 10} KiB sent, GOAWAY "
              f"{H2_ERRORS[code] if code is not None else 'none'}; kfront RSS +{grew} KiB")
        assert closed or code is not None, "kfront took 32 MB of header block"
        assert grew < 16 * 1024, f"kfront's RSS grew {grew} KiB"
        by.check(e, "after-floods")
    finally:
        by.close()


class RecordBurst:
    """TLS over memory BIOs: each write is one TLS record, and what was written leaves in one
    send(), so the records reach kfront's socket together."""

    def __init__(self, port, ctx, alpn="h2"):
        ctx.set_alpn_protocols([alpn])
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="127.0.0.1")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._fill()
        self.flush()
        assert self.tls.selected_alpn_protocol() == alpn

    def _fill(self):
        data = self.raw.recv(1 << 16)
        if not data:
            raise EOFError
        self.inc.write(data)

    def flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def send_records(self, chunks):
        for chunk in chunks:
            self.tls.write(chunk)
        self.flush()

    def read(self):
        while True:
            try:
                return self.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                self._fill()


def test_records_that_arrive_together_are_all_read():
    """kfront reads TLS ahead on HTTP/2 connections (one read(2) takes every record the socket
    holds). Records read ahead are not visible to epoll, so each must be handled without
    waiting for more bytes: eight requests in eight records, sent in one write, must all be
    answered while the client sends nothing more."""
    e = env()
    c = RecordBurst(e.port, e.ctx())
    try:
        c.send_records([H2_PREFACE + h2_frame(SETTINGS, 0, 0, b"")])
        buf, ended, acked = b"", set(), False
        sids = list(range(1, 17, 2))
        c.raw.settimeout(5)
        while len(ended) < len(sids):
            try:
                data = c.read()
            except (socket.timeout, EOFError) as err:
                raise AssertionError(f"answered {sorted(ended)} of {sids}: {err!r}") from None
            buf += data
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                t, fl, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                buf = buf[9 + n:]
                if t == SETTINGS and not fl & 1 and not acked:
                    # our ACK, then the burst: one record per request, one send for all
                    acked = True
                    c.send_records([h2_frame(SETTINGS, 1, 0)] + [
                        h2_frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block(NS_CMS))
                        for sid in sids])
                elif t in (DATA, HEADERS) and fl & END_STREAM:
                    ended.add(sid)
                elif t == GOAWAY:
                    raise AssertionError("GOAWAY " + repr(buf))
    finally:
        c.raw.close()


class RecordCounter(RecordBurst):
    """RecordBurst that counts the application-data records kfront sends (TLS 1.3 sends all
    records as type 23 on the wire) and the bytes they carry."""

    def __init__(self, port, ctx, alpn="h2"):
        self.wire, self.records, self.payload = b"", 0, 0
        super().__init__(port, ctx, alpn)

    def _fill(self):
        data = self.raw.recv(1 << 16)
        if not data:
            raise EOFError
        self.wire += data
        while len(self.wire) >= 5 and len(self.wire) >= 5 + int.from_bytes(self.wire[3:5], "big"):
            n = int.from_bytes(self.wire[3:5], "big")
            if self.wire[0] == 23:
                self.records += 1
                self.payload += n
            self.wire = self.wire[5 + n:]
        self.inc.write(data)


def test_a_burst_of_answers_leaves_in_full_records():
    """An HTTP/2 answer is several pieces in kfront's output (frame headers and HEADERS, then
    the DATA payload by reference), and each piece used to become its own TLS record and
    write(2). Eight GETs answered from the cache in one go must leave in about as many records
    as full 16 KiB records would take, not two or more per answer."""
    e, path = cached_env(), CACHED_CM
    before_served = served_count(e)
    c = RecordCounter(e.port, e.ctx())
    try:
        c.send_records([H2_PREFACE + h2_frame(SETTINGS, 0, 0, b"")])
        sids, ended, buf, acked, before = list(range(1, 17, 2)), set(), b"", False, None
        c.raw.settimeout(5)
        while len(ended) < len(sids):
            buf += c.read()
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                t, fl, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                buf = buf[9 + n:]
                if t == SETTINGS and not fl & 1 and not acked:
                    acked, before = True, (c.records, c.payload)
                    c.send_records([h2_frame(SETTINGS, 1, 0) + b"".join(
                        h2_frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block(path))
                        for sid in sids)])
                elif t in (DATA, HEADERS) and fl & END_STREAM:
                    ended.add(sid)
                elif t == GOAWAY:
                    raise AssertionError("GOAWAY " + repr(buf))
        records, payload = c.records - before[0], c.payload - before[1]
    finally:
        c.raw.close()
    assert served_count(e) >= before_served + len(sids)
    assert payload > 8 * 5000, payload
    # 16 KiB of data per record (and 17 bytes of TLS 1.3 overhead), plus the SETTINGS ACK's
    # record and one more for a burst the event loop happens to split
    assert records <= -(-payload // (16384 + 17)) + 2, \
        f"{records} records for {payload} bytes of {len(sids)} answers"


def test_an_http1_answer_is_one_record():
    """Over HTTP/1.1 the head and the body (by reference from the cache) are two pieces of
    kfront's output; the answer must still leave as one record (over TLS 1.2, see tls12)."""
    e, path = cached_env(), CACHED_CM
    before_served = served_count(e)
    c = RecordCounter(e.port, tls12(e), "http/1.1")
    try:
        c.raw.settimeout(5)
        before = c.records
        c.send_records([f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()])
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + int(
                re.search(rb"(?i)content-length: (\d+)", answer).group(1)):
            answer += c.read()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert c.records - before == 1, f"{c.records - before} records for one answer"
    finally:
        c.raw.close()
    assert served_count(e) > before_served


def tls12(e):
    """A client context limited to TLS 1.2: TLS 1.3's session tickets would come as more
    records of the same outer type as application data."""
    ctx = e.ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def test_an_http1_watch_event_is_one_record():
    """A watch over HTTP/1.1 sends each event as chunks (size line, the event, CRLF) written
    piece by piece; the event must still leave as one record."""
    e = cached_env()
    st, _, body = e.h1(NS_CMS + "/records")
    assert st == 200, st
    cm = json.loads(body)
    path = (NS_CMS + "?watch=1&fieldSelector=metadata.name%3Drecords&resourceVersion="
            + cm["metadata"]["resourceVersion"])
    c = RecordCounter(e.port, tls12(e), "http/1.1")
    try:
        c.raw.settimeout(5)
        c.send_records([f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()])
        stream = b""
        while b"\r\n\r\n" not in stream:
            stream += c.read()
        assert stream.startswith(b"HTTP/1.1 200") and b"chunked" in stream.lower(), stream[:300]
        before = c.records
        cm["data"]["b"] = "y" * 5000
        st, _ = e.sims[0].json("PUT", NS_CMS + "/records", cm)
        assert st == 200, st
        while b'"MODIFIED"' not in stream or not stream.endswith(b"\n\r\n"):
            stream += c.read()
        assert c.records - before == 1, f"{c.records - before} records for one watch event"
    finally:
        c.raw.close()


def close_envs():
    try:
        if CACHED:
            CACHED.kf.stop()
    finally:
        if ENV:
            ENV.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")],
               cleanup=close_envs)
