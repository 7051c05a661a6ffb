"""kfront's watch cache against kube-sim, byte for byte.

kube-sim is the truth: for the same request, what kfront serves from its cache must be the
bytes kube-sim sends itself, except what legitimately differs (a list's
metadata.resourceVersion, the oldest RV in a 410 message, Audit-Id/Date headers, and the
x-kubernetes-pf-* headers kube-sim adds and kfront's cached answers omit). Each comparison
also proves the answer came from the cache: no x-kubernetes-pf-* header, and kube-sim's own
request counter for that verb did not move.
"""
import http.client
import base64
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import SimFront, Test, proc_kib as rss_kib, wait_for  # noqa: E402

KUBE_SIM = os.environ.get("KUBE_SIM", "build/loadgen/kube-sim/kube-sim")
os.environ["KUBE_SIM"] = KUBE_SIM
import ksim  # noqa: E402

PB = "application/vnd.kubernetes.protobuf"
FORMATS = ("json", "pb")
RESOURCES = [  # (path prefix, resource, namespaced): kfront's default cached resources
    ("/api/v1", "pods", True),
    ("/api/v1", "nodes", False),
    ("/api/v1", "services", True),
    ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    ("/api/v1", "configmaps", True),
    ("/api/v1", "secrets", True),
    ("/api/v1", "namespaces", False),
    ("/apis/node.k8s.io/v1", "runtimeclasses", False),
    ("/apis/storage.k8s.io/v1", "csidrivers", False),
]


# ---- protobuf wire helpers (just enough to normalise and split) -------------------------------

def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def put_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fields(b):
    """[(num, wiretype, value bytes or int, raw field bytes)] of a message."""
    i, out = 0, []
    while i < len(b):
        start = i
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((num, wt, v, b[start:i]))
    return out


def ld(num, payload):
    return put_varint(num << 3 | 2) + put_varint(len(payload)) + payload


def pb_unknown_raw(body):
    """The raw object bytes of an enveloped (k8s\\0 + runtime.Unknown) body."""
    assert body[:4] == b"k8s\x00", body[:16]
    for num, _, v, _ in fields(body[4:]):
        if num == 2:
            return v
    raise AssertionError("no raw in envelope")


def pb_list_without_rv(body):
    """An enveloped protobuf list with ListMeta.resourceVersion blanked (lengths rewritten)."""
    out_env = b""
    for num, _, v, raw in fields(body[4:]):
        if num != 2:
            out_env += raw
            continue
        lst = b""
        for n2, _, v2, raw2 in fields(v):
            if n2 == 1:
                meta = b"".join(r for n3, _, _, r in fields(v2) if n3 != 2)
                lst += ld(1, meta)
            else:
                lst += raw2
        out_env += ld(2, lst)
    return body[:4] + out_env


def json_list_without_rv(body):
    # the list's own metadata comes first: {"kind":..,"apiVersion":..,"metadata":{..."resourceVersion":"N"
    return re.sub(rb'^(\{"kind":"[A-Za-z]+List","apiVersion":"[^"]+","metadata":\{[^{}]*?)'
                  rb'"resourceVersion":"\d+"', rb'\1"resourceVersion":"X"', body, count=1)


def list_rv(fmt, body):
    if fmt == "json":
        return int(json.loads(body)["metadata"]["resourceVersion"])
    raw = pb_unknown_raw(body)
    for num, _, v, _ in fields(raw):
        if num == 1:
            for n2, _, v2, _ in fields(v):
                if n2 == 2:
                    return int(v2)
    raise AssertionError("no list RV")


# ---- watch streams --------------------------------------------------------------------------

def split_events(fmt, body):
    """[(type, frame bytes)] of a watch stream body (chunking already removed)."""
    out = []
    if fmt == "json":
        for line in body.split(b"\n"):
            if line:
                out.append((json.loads(line)["type"], line + b"\n"))
        return out
    i = 0
    while i < len(body):
        (n,) = struct.unpack(">I", body[i:i + 4])
        frame = body[i + 4:i + 4 + n]
        typ = [v for num, _, v, _ in fields(frame) if num == 1][0].decode()
        out.append((typ, body[i:i + 4 + n]))
        i += 4 + n
    return out


def event_object(fmt, frame):
    """The event's object: a dict (JSON) or the enveloped protobuf bytes."""
    if fmt == "json":
        return json.loads(frame)["object"]
    f = fields(frame[4:])
    obj = [v for num, _, v, _ in f if num == 2][0]
    return [v for num, _, v, _ in fields(obj) if num == 1][0]


def is_initial_end(fmt, frame):
    if fmt == "json":
        ann = json.loads(frame)["object"]["metadata"].get("annotations") or {}
        return ann.get("k8s.io/initial-events-end") == "true"
    return b"k8s.io/initial-events-end" in frame


# ---- the environment ------------------------------------------------------------------------

class Client:
    """Raw HTTP/1.1 over TLS with the admin (system:masters) certificate."""

    def __init__(self, port, certs, cert="admin"):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(certs, cert + ".crt"), os.path.join(certs, cert + ".key"))

    def request(self, path, fmt="json", method="GET", body=None, timeout=20, ctype=None):
        """(status, lowercased headers, body bytes)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        h = {"Accept": PB if fmt == "pb" else "application/json", "User-Agent": "kfront-conformance"}
        if body is not None:
            h["Content-Type"] = ctype or "application/json"
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()


class Env:
    """kube-sim (a small cluster) and kfront (mode http, cache on) in front of it."""

    def __init__(self, sims=1, churn=0, nodes=20, pods=400, cms=50, secrets=50, extra_sim_args=()):
        self.sims = [ksim.KubeSim(*extra_sim_args, nodes=nodes, pods=pods, configmaps=cms,
                                  secrets=secrets, churn=churn)]
        for _ in range(1, sims):
            # the same seed and the same CA (kept when present): the same objects and RVs
            self.sims.append(ksim.KubeSim("--cert-dir", self.sims[0].certs, *extra_sim_args,
                                          nodes=nodes, pods=pods, configmaps=cms,
                                          secrets=secrets, churn=churn))
        self.sim = self.sims[0]
        c = self.sim.certs
        self.front = SimFront(self.sims)
        self.port, self.admin, self.kf = self.front.port, self.front.admin, self.front.kf
        self.kfc = Client(self.port, c)
        self.simc = [Client(s.port, c) for s in self.sims]
        self.wait_filled("json")

    def cache_objects(self, fmt):
        """{resource: objects} of kfront's stores in fmt."""
        _, text = self.kf.http("/metrics")
        want = "protobuf" if fmt == "pb" else "json"
        out = {}
        for m in re.finditer(r'^kfront_cache_objects\{resource="([^"]+)",format="([^"]+)"\} (\d+)',
                             text, re.M):
            if m.group(2) == want:
                out[m.group(1)] = int(m.group(3))
        return out

    def wait_filled(self, fmt):
        """Until every default resource's store in fmt holds what kube-sim holds."""
        want = {}
        for prefix, res, _ in RESOURCES:
            st, _, body = self.simc[0].request(f"{prefix}/{res}")
            assert st == 200, (res, st)
            want[res] = len(json.loads(body)["items"] or [])

        def filled():
            have = self.cache_objects(fmt)
            return all(have.get(r) == n for r, n in want.items())
        if fmt == "pb":
            # a protobuf store starts on its first client: ask once for each
            for prefix, res, _ in RESOURCES:
                self.kfc.request(f"{prefix}/{res}?resourceVersion=0", "pb")
        wait_for(filled, 20, f"kfront's {fmt} cache to fill")

    def served(self):
        return self.kf.metric('kfront_cache_requests_total{result="served"}')

    def sim_count(self, verb, resource, i=0):
        """kube-sim's apiserver_request_total for verb/resource (all codes)."""
        text = self.sims[i].admin_get("/metrics").decode()
        total = 0
        for line in text.splitlines():
            if (line.startswith("apiserver_request_total{") and f'verb="{verb}"' in line
                    and f'resource="{resource}"' in line and 'subresource=""' in line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def close(self):
        try:
            self.front.close()
        finally:
            assert not ksim.FAILURES, ksim.FAILURES


def verb_of(path):
    if "watch=" in path:
        return "watch"
    return "get"  # refined by the caller when it is a list


def compare(e, path, fmt, verb, resource, normalise=None):
    """Request path from kube-sim and kfront; assert the same status and bytes (after
    normalise) and that kfront answered from its cache. Returns (status, kube-sim body)."""
    before, served = e.sim_count(verb, resource), e.served()
    st_k, h_k, b_k = e.kfc.request(path, fmt)
    after = e.sim_count(verb, resource)
    assert e.served() == served + 1, (f"{fmt} {path}", "not counted as served from the cache",
                                      st_k, e.kf.metric('kfront_cache_requests_total{result="forwarded"}'))
    st_s, h_s, b_s = e.simc[0].request(path, fmt)
    where = f"{fmt} {path}"
    assert not any(k.startswith("x-kubernetes-pf-") for k in h_k), (where, "forwarded", h_k)
    assert after == before, (where, "kube-sim saw the request", before, after)
    assert st_k == st_s, (where, st_k, st_s, b_k[:300], b_s[:300])
    assert h_k.get("content-type") == h_s.get("content-type"), (where, h_k, h_s)
    nk, ns = (normalise(b_k), normalise(b_s)) if normalise else (b_k, b_s)
    assert nk == ns, (where, first_diff(nk, ns))
    return st_s, b_s


def first_diff(a, b):
    i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return f"lengths {len(a)} vs {len(b)}, first difference at {i}: kfront {a[max(0, i - 80):i + 80]!r} " \
           f"kube-sim {b[max(0, i - 80):i + 80]!r}"


def list_norm(fmt):
    return json_list_without_rv if fmt == "json" else pb_list_without_rv


class Watch:
    """A watch whose head has arrived; its body is read to the end on a thread."""

    def __init__(self, client, path, fmt, timeout=30):
        self.fmt, self.path = fmt, path
        self.conn = http.client.HTTPSConnection("127.0.0.1", client.port, context=client.ctx,
                                                timeout=timeout)
        self.conn.request("GET", path, headers={
            "Accept": PB if fmt == "pb" else "application/json",
            "User-Agent": "kfront-conformance"})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.body, self.error = b"", None
        self.frames = []  # JSON lines / protobuf frames as they come
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = b""
        try:
            while True:
                chunk = self.resp.read1(65536)
                if not chunk:
                    break
                buf += chunk
                self.body += chunk
                buf = self._split(buf)
        except Exception as ex:  # noqa: BLE001 - reported by the test
            self.error = ex
        finally:
            self.conn.close()

    def _split(self, buf):
        while True:
            if self.fmt == "json":
                if b"\n" not in buf:
                    return buf
                line, buf = buf.split(b"\n", 1)
                self.frames.append(line + b"\n")
            else:
                if len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                    return buf
                n = 4 + struct.unpack(">I", buf[:4])[0]
                self.frames.append(buf[:n])
                buf = buf[n:]

    def join(self, timeout=20):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), (self.path, "watch did not end")
        assert self.error is None, (self.path, self.error)
        return split_events(self.fmt, self.body)

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def names(self):
        """[(type, name)] seen so far."""
        out = []
        for f in list(self.frames):
            typ, _ = split_events(self.fmt, f)[0]
            if typ == "BOOKMARK":
                out.append((typ, None))
            elif self.fmt == "json":
                out.append((typ, json.loads(f)["object"]["metadata"].get("name")))
            else:
                out.append((typ, pb_object_name(event_object("pb", f))))
        return out


def pb_object_name(enveloped):
    raw = pb_unknown_raw(enveloped)
    meta = [v for n, _, v, _ in fields(raw) if n == 1][0]
    names = [v for n, _, v, _ in fields(meta) if n == 1]
    return names[0].decode() if names else None


def without_bookmarks(events, keep_initial_end=True):
    return [(t, f) for t, f in events
            if t != "BOOKMARK" or (keep_initial_end and is_initial_end_any(f))]


def is_initial_end_any(frame):
    return b"k8s.io/initial-events-end" in frame


# ---- the tests ---------------------------------------------------------------------------------

ENV = None


def env():
    global ENV
    if ENV is None:
        ENV = Env()
        ENV.wait_filled("pb")
    return ENV


def some_names(e, prefix, res, n=2):
    _, _, body = e.simc[0].request(f"{prefix}/{res}")
    items = json.loads(body)["items"] or []
    return [(i["metadata"].get("namespace"), i["metadata"]["name"]) for i in items[:n]]


def test_get_rv0_existing_and_missing():
    e = env()
    checked = 0
    for prefix, res, namespaced in RESOURCES:
        for ns, name in some_names(e, prefix, res):
            base = f"{prefix}/namespaces/{ns}/{res}" if namespaced else f"{prefix}/{res}"
            for fmt in FORMATS:
                st, _ = compare(e, f"{base}/{name}?resourceVersion=0", fmt, "GET", res)
                assert st == 200
                st, _ = compare(e, f"{base}/no-such-{name}?resourceVersion=0", fmt, "GET", res)
                assert st == 404
                checked += 1
    assert checked >= 30, checked
    # a missing namespace is a plain 404 of the object, like the apiserver's cache says
    for fmt in FORMATS:
        st, _ = compare(e, "/api/v1/namespaces/no-such-ns/configmaps/x?resourceVersion=0", fmt,
                        "GET", "configmaps")
        assert st == 404


def test_list_rv0_every_resource_and_namespace():
    e = env()
    for prefix, res, namespaced in RESOURCES:
        for fmt in FORMATS:
            st, body = compare(e, f"{prefix}/{res}?resourceVersion=0", fmt, "LIST", res,
                               list_norm(fmt))
            assert st == 200
        if namespaced:
            for ns in ("kube-system", "default", "team-001", "no-such-ns"):
                for fmt in FORMATS:
                    compare(e, f"{prefix}/namespaces/{ns}/{res}?resourceVersion=0", fmt, "LIST",
                            res, list_norm(fmt))
    # limit is ignored with resourceVersion=0, as the apiserver's cache does
    for fmt in FORMATS:
        compare(e, "/api/v1/pods?resourceVersion=0&limit=5", fmt, "LIST", "pods", list_norm(fmt))


def test_list_selectors():
    e = env()
    _, _, body = e.simc[0].request("/api/v1/pods")
    pods = json.loads(body)["items"]
    node = pods[0]["spec"]["nodeName"]
    ns, name = pods[0]["metadata"]["namespace"], pods[0]["metadata"]["name"]
    label = sorted(pods[0]["metadata"].get("labels", {}).items())[0]
    cases = [
        ("/api/v1/pods", f"fieldSelector=spec.nodeName={node}"),
        ("/api/v1/pods", "fieldSelector=spec.nodeName%3D"),  # the scheduler's: unbound pods
        ("/api/v1/pods", f"fieldSelector=spec.nodeName!={node}"),
        ("/api/v1/pods", f"fieldSelector=metadata.name={name}"),
        ("/api/v1/pods", f"fieldSelector=metadata.namespace={ns}"),
        ("/api/v1/pods", "fieldSelector=status.phase=Running"),
        ("/api/v1/pods", "fieldSelector=status.phase!=Running"),
        ("/api/v1/pods", f"fieldSelector=spec.nodeName={node},status.phase=Running"),
        (f"/api/v1/namespaces/{ns}/pods", f"fieldSelector=metadata.name={name}"),
        ("/api/v1/pods", f"labelSelector={label[0]}={label[1]}"),
        ("/api/v1/pods", f"labelSelector={label[0]}"),
        ("/api/v1/pods", f"labelSelector=!{label[0]}"),
        ("/api/v1/pods", f"labelSelector={label[0]}+in+({label[1]},x)"),
        ("/api/v1/pods", f"labelSelector={label[0]}+notin+({label[1]})"),
        ("/api/v1/nodes", "fieldSelector=metadata.name=" + pods[0]["spec"]["nodeName"]),
        ("/api/v1/namespaces/default/configmaps", "fieldSelector=metadata.name=kube-root-ca.crt"),
        ("/api/v1/configmaps", "fieldSelector=metadata.name=kube-root-ca.crt"),
        ("/api/v1/secrets", "fieldSelector=metadata.namespace=kube-system"),
    ]
    proxy_sel = "labelSelector=!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
    cases += [("/api/v1/services", proxy_sel),
              ("/apis/discovery.k8s.io/v1/endpointslices", proxy_sel)]
    for base, q in cases:
        for fmt in FORMATS:
            res = base.rsplit("/", 1)[1]
            st, body = compare(e, f"{base}?resourceVersion=0&{q}", fmt, "LIST", res,
                               list_norm(fmt))
            assert st == 200, (base, q)
    # the selectors select something, and not everything (else the cases prove little)
    n = lambda q: len(json.loads(e.simc[0].request("/api/v1/pods?" + q)[2])["items"] or [])
    assert 0 < n(f"fieldSelector=spec.nodeName={node}") < len(pods)
    assert 0 < n(f"labelSelector={label[0]}={label[1]}") < len(pods)


def test_list_not_older_than():
    e = env()
    for fmt in FORMATS:
        st, _, body = e.simc[0].request("/api/v1/configmaps?resourceVersion=0", fmt)
        rv = list_rv(fmt, body)
        for q in (f"resourceVersion={rv}&resourceVersionMatch=NotOlderThan",
                  f"resourceVersion={rv}", f"resourceVersion={rv - 5}&resourceVersionMatch=NotOlderThan"):
            compare(e, f"/api/v1/configmaps?{q}", fmt, "LIST", "configmaps", list_norm(fmt))
            compare(e, f"/api/v1/namespaces/default/configmaps/kube-root-ca.crt?{q}".split("&")[0],
                    fmt, "GET", "configmaps")


def test_too_large_rv_is_the_apiservers_504():
    """An RV the cache does not reach within 3 s: the apiserver's 504 (a Timeout Status with
    the ResourceVersionTooLarge cause and retryAfterSeconds 1, Retry-After: 1), byte for byte
    but for the current RV in the message."""
    e = env()
    norm = lambda b: re.sub(rb"current: \d+", b"current: N", b)  # noqa: E731
    for fmt in ("json",):
        st, _, body = e.simc[0].request("/api/v1/configmaps?resourceVersion=0", fmt)
        far = list_rv(fmt, body) + 1000000
        st, _ = compare(e, f"/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
                        f"?resourceVersion={far}", fmt, "GET", "configmaps", norm)
        assert st == 504, st


def test_invalid_timeouts_are_the_apiservers_400():
    """A short request's ?timeout= that Go's time.ParseDuration refuses is the apiserver's 400
    (filters/request_deadline.go), whatever else the request asks: kfront forwards it and the
    client gets that answer. A valid one is still served from the cache."""
    e = env()
    get = "/api/v1/namespaces/default/configmaps/kube-root-ca.crt?resourceVersion=0"
    lst = "/api/v1/namespaces/default/configmaps?resourceVersion=0"
    cases = [(get, "abc", 'time: invalid duration "abc"'),
             (get, "3", 'time: missing unit in duration "3"'),
             (lst, "1d", 'time: unknown unit "d" in duration "1d"'),
             (lst, "9999999999h", 'time: invalid duration "9999999999h"')]
    for path, value, text in cases:
        url, verb = f"{path}&timeout={value}", "GET" if path == get else "LIST"
        served, before = e.served(), e.sim_count(verb, "configmaps")
        st_k, _, b_k = e.kfc.request(url)
        assert e.served() == served, (url, "answered from the cache")
        assert e.sim_count(verb, "configmaps") == before + 1, (url, "not forwarded")
        st_s, _, b_s = e.simc[0].request(url)
        assert (st_k, b_k) == (st_s, b_s), (url, st_k, b_k, st_s, b_s)
        assert st_k == 400, (url, st_k, b_k)
        status = json.loads(b_k)
        assert status["message"] == "invalid timeout specified in the request URL - " + text, status
        assert (status["reason"], status["code"]) == ("BadRequest", 400), status
    # a list's timeoutSeconds that is not a number is the apiserver's to refuse
    served = e.served()
    e.kfc.request(f"{lst}&timeoutSeconds=soon")
    assert e.served() == served, "timeoutSeconds=soon answered from the cache"
    # valid values: still the cache's
    for path, q in ((get, "timeout=30s"), (lst, "timeout=1.5m"), (lst, "timeoutSeconds=5"),
                    (lst, "timeout=0")):
        st, _ = compare(e, f"{path}&{q}", "json", "GET", "configmaps")
        assert st == 200, (path, q, st)


def test_list_exact_and_pages_from_the_window():
    """resourceVersionMatch=Exact, a limit with an RV (the apiserver's legacy exact) and the
    continue chain it starts are rebuilt from kfront's event window: the same bytes as the
    apiserver, though objects changed after that RV. An RV older than the window goes to the
    apiserver (etcd keeps about 5 minutes of history): its answer, byte for byte."""
    e = env()
    for fmt in FORMATS:
        st, _, body = e.simc[0].request("/api/v1/configmaps?resourceVersion=0", fmt)
        rv = list_rv(fmt, body)
        # changes after rv: a label on one configmap, a new one, a deleted one
        name = f"exact-{fmt}"
        write(e, "POST", "/api/v1/namespaces/default/configmaps",
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"k": "v"}})
        wait_for(lambda: e.kfc.request(f"/api/v1/namespaces/default/configmaps/{name}"
                                       "?resourceVersion=0", fmt)[0] == 200, 5, "write seen")
        for q in (f"resourceVersion={rv}&resourceVersionMatch=Exact",
                  f"resourceVersion={rv}&resourceVersionMatch=Exact&limit=7",
                  f"resourceVersion={rv}&limit=5"):
            compare(e, f"/api/v1/configmaps?{q}", fmt, "LIST", "configmaps")
            compare(e, f"/api/v1/namespaces/default/configmaps?{q}", fmt, "LIST", "configmaps")
        # follow a continue chain on both: every page identical
        q, pages = f"resourceVersion={rv}&limit=9", 0
        while True:
            _, body = compare(e, f"/api/v1/configmaps?{q}", fmt, "LIST", "configmaps")
            pages += 1
            token = continue_of(fmt, body)
            if not token:
                break
            q = f"limit=9&continue={token}"
        assert pages > 3, pages
        write(e, "DELETE", f"/api/v1/namespaces/default/configmaps/{name}", want=(200, 202))
    # older than the window: etcd may still hold that state, so the apiserver answers it
    for fmt in FORMATS:
        token = base64.urlsafe_b64encode(
            b'{"v":"meta.k8s.io/v1","rv":2,"start":"default/x\\u0000"}').rstrip(b"=").decode()
        for path in (f"/api/v1/configmaps?limit=5&continue={token}",
                     "/api/v1/configmaps?resourceVersion=2&resourceVersionMatch=Exact"):
            forwarded = e.kf.metric('kfront_cache_requests_total{result="forwarded"}')
            st_k, _, b_k = e.kfc.request(path, fmt)
            st_s, _, b_s = e.simc[0].request(path, fmt)
            assert (st_k, b_k) == (st_s, b_s), (fmt, path, st_k, st_s, b_k[:200], b_s[:200])
            assert e.kf.metric('kfront_cache_requests_total{result="forwarded"}') == \
                forwarded + 1, (fmt, path, "not forwarded")


def continue_of(fmt, body):
    """metadata.continue of a list body in either format ("" when absent)."""
    if fmt == "json":
        return json.loads(body)["metadata"].get("continue", "")
    raw = pb_unknown_raw(body)
    for num, _, val, _ in fields(raw):
        if num == 1:
            for n2, _, v2, _ in fields(val):
                if n2 == 3:
                    return v2.decode()
    return ""


def pod_manifest(name, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "cw"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def write(e, method, path, body=None, ctype=None, want=(200, 201)):
    st, _, out = e.simc[0].request(path, method=method, body=body, ctype=ctype)
    assert st in want, (method, path, st, out[:300])
    return json.loads(out) if out else None


def scripted_writes(e, name, node):
    """Create unbound, bind, label on, label off, delete: each a step some filtered watch
    sees as entering or leaving."""
    base = "/api/v1/namespaces/default/pods"
    write(e, "POST", base, pod_manifest(name))
    write(e, "POST", f"{base}/{name}/binding",
          {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
           "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    merge = "application/merge-patch+json"
    write(e, "PATCH", f"{base}/{name}", {"metadata": {"labels": {"cw-probe": "on"}}}, merge)
    write(e, "PATCH", f"{base}/{name}", {"metadata": {"labels": {"cw-probe": None}}}, merge)
    write(e, "DELETE", f"{base}/{name}?gracePeriodSeconds=0")


def test_watch_from_rv_scripted_writes():
    e = env()
    _, _, body = e.simc[0].request("/api/v1/nodes")
    node = json.loads(body)["items"][3]["metadata"]["name"]
    name = f"cw-{int(time.time() * 1000) % 100000}"
    queries = [
        "/api/v1/pods?watch=1",
        "/api/v1/namespaces/default/pods?watch=1",
        f"/api/v1/pods?watch=1&fieldSelector=spec.nodeName={node}",
        "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3D",
        "/api/v1/pods?watch=1&labelSelector=cw-probe%3Don",
        f"/api/v1/namespaces/default/pods?watch=1&fieldSelector=metadata.name={name}",
        "/api/v1/pods?watch=1&fieldSelector=status.phase=Pending",
    ]
    watches = []
    for fmt in FORMATS:
        _, _, lb = e.simc[0].request("/api/v1/pods?resourceVersion=0&limit=1", fmt)
        rv = list_rv(fmt, lb)
        for q in queries:
            for bm in ("", "&allowWatchBookmarks=true"):
                path = f"{q}&resourceVersion={rv}&timeoutSeconds=3{bm}"
                watches.append((fmt, path, Watch(e.kfc, path, fmt), Watch(e.simc[0], path, fmt)))
    for fmt, path, k, s in watches:
        assert k.status == 200 and s.status == 200, (path, k.status, s.status)
        assert not any(h.startswith("x-kubernetes-pf-") for h in k.headers), (path, "forwarded")
        assert k.headers.get("content-type") == s.headers.get("content-type"), (path, k.headers)
    scripted_writes(e, name, node)
    for fmt, path, k, s in watches:
        try:
            ek = k.join()
        except Exception:
            raise AssertionError((fmt, path, "kfront", k.body[-700:]))
        es = s.join()
        ek, es = without_bookmarks(ek), without_bookmarks(es)
        assert [t for t, _ in ek] == [t for t, _ in es], (fmt, path, [t for t, _ in ek],
                                                          [t for t, _ in es])
        for (tk, fk), (_, fs) in zip(ek, es):
            if fk != fs:
                open("/tmp/cw-k.bin", "wb").write(fk)
                open("/tmp/cw-s.bin", "wb").write(fs)
            assert fk == fs, (fmt, path, tk, first_diff(fk, fs))
    # what each filter saw proves the enter/leave variants were exercised
    seen = {(fmt, path.split("&resourceVersion")[0]): [t for t, _ in without_bookmarks(
        split_events(fmt, k.body))] for fmt, path, k, _ in watches}
    for fmt in FORMATS:
        assert seen[(fmt, f"/api/v1/pods?watch=1&fieldSelector=spec.nodeName={node}")][:1] == \
            ["ADDED"], seen
        assert seen[(fmt, "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3D")][:2] == \
            ["ADDED", "DELETED"], seen
        assert seen[(fmt, "/api/v1/pods?watch=1&labelSelector=cw-probe%3Don")] == \
            ["ADDED", "DELETED"], seen
        allp = seen[(fmt, "/api/v1/pods?watch=1")]
        assert allp[0] == "ADDED" and allp[-1] == "DELETED" and len(allp) >= 5, seen


def start_compare(e, path, fmt):
    return Watch(e.kfc, path, fmt), Watch(e.simc[0], path, fmt), path, fmt


def end_compare(k, s, path, fmt, keep=lambda t, f: t != "BOOKMARK"):
    """Both watches end (timeoutSeconds); compare the kept events frame for frame. Returns
    (kfront's events, kube-sim's events), all of them."""
    assert k.status == s.status == 200, (path, k.status, s.status)
    assert not any(h.startswith("x-kubernetes-pf-") for h in k.headers), (path, "forwarded")
    ek, es = k.join(), s.join()
    fk, fs = [(t, f) for t, f in ek if keep(t, f)], [(t, f) for t, f in es if keep(t, f)]
    assert [t for t, _ in fk] == [t for t, _ in fs], (fmt, path, len(fk), len(fs))
    for (t, a), (_, b) in zip(fk, fs):
        assert a == b, (fmt, path, t, first_diff(a, b))
    return ek, es


def test_watch_rv0_initial_events():
    e = env()
    ws = []
    for fmt in FORMATS:
        for q in ("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0",
                  "/api/v1/pods?watch=1&resourceVersion=0&fieldSelector=spec.nodeName=node-00002",
                  "/api/v1/nodes?watch=1&fieldSelector=metadata.name=node-00002",  # RV unset
                  "/api/v1/services?watch=1&resourceVersion=0&labelSelector=!service.kubernetes.io/"
                  "service-proxy-name,!service.kubernetes.io/headless"):
            ws.append(start_compare(e, q + "&timeoutSeconds=2", fmt))
    for w in ws:
        ek, _ = end_compare(*w)
        assert ek and all(t == "ADDED" for t, _ in ek), (w[2], [t for t, _ in ek])


def test_watch_list_initial_events_end_bookmark():
    e = env()
    ws = []
    for fmt in FORMATS:
        _, _, lb = e.kfc.request("/api/v1/configmaps?resourceVersion=0", fmt)
        rv = list_rv(fmt, lb)
        for base in ("/api/v1/configmaps", "/api/v1/namespaces/default/configmaps",
                     "/api/v1/pods", "/api/v1/pods?fieldSelector=spec.nodeName=node-00004",
                     "/api/v1/namespaces/kube-system/configmaps"):
            sep = "&" if "?" in base else "?"
            start = 0 if base.endswith("kube-system/configmaps") else rv  # 0: from the newest
            q = (f"{base}{sep}watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                 f"&resourceVersionMatch=NotOlderThan&resourceVersion={start}&timeoutSeconds=2")
            ws.append((fmt, q, start, Watch(e.kfc, q, fmt), Watch(e.simc[0], q, fmt)))
    for fmt, q, rv, k, s in ws:
        assert k.status == s.status == 200 and not any(
            h.startswith("x-kubernetes-pf-") for h in k.headers), (q, k.status, k.headers)
        fk, fs = initial_part(k.join()), initial_part(s.join())
        types = [t for t, _ in fk]
        assert types == [t for t, _ in fs], (fmt, q, types, [t for t, _ in fs])
        assert types[-1] == "BOOKMARK" and set(types[:-1]) == {"ADDED"}, (q, types)
        for (t, a), (_, b) in zip(fk[:-1], fs[:-1]):
            assert a == b, (fmt, q, t, first_diff(a, b))
        # the bookmark: the same bytes but for its RV, which is the RV kfront's store has
        # reached: never older than asked, never newer than kube-sim's (kfront does not claim
        # an RV it has not observed, and writes to other resources move kube-sim's own RV)
        bk, bs = fk[-1][1], fs[-1][1]
        assert is_initial_end(fmt, bk), q
        assert rv <= bookmark_rv(fmt, bk) <= bookmark_rv(fmt, bs), (q, bk, bs)
        assert bookmark_without_rv(fmt, bk) == bookmark_without_rv(fmt, bs), (q, bk, bs)


def initial_part(events):
    """Events up to and including the initial-events-end bookmark (periodic ones dropped)."""
    out = []
    for t, f in events:
        if t != "BOOKMARK" or is_initial_end_any(f):
            out.append((t, f))
        if t == "BOOKMARK" and is_initial_end_any(f):
            break
    return out


def bookmark_meta(fmt, frame):
    obj = event_object(fmt, frame)
    if fmt == "json":
        return obj["metadata"]
    raw = pb_unknown_raw(obj)
    return [v for n, _, v, _ in fields(raw) if n == 1][0]


def bookmark_rv(fmt, frame):
    meta = bookmark_meta(fmt, frame)
    if fmt == "json":
        return int(meta["resourceVersion"])
    return int([v for n, _, v, _ in fields(meta) if n == 6][0])


def bookmark_without_rv(fmt, frame):
    if fmt == "json":
        return re.sub(rb'"resourceVersion":"\d+"', b'"resourceVersion":"X"', frame)
    # Protobuf: compare the kind and ObjectMeta without its empty and zero fields. The
    # apiserver writes every non-pointer field of the empty object (see the bookmarks in
    # recordings/watch-*-protobuf) and so does kfront, while kube-sim's bookmarks carry only
    # resourceVersion and annotations.
    obj = event_object(fmt, frame)
    env_type = [r for n, _, _, r in fields(obj[4:]) if n == 1][0]
    meta = bookmark_meta(fmt, frame)
    return env_type + b"".join(r for n, _, v, r in fields(meta) if n != 6 and v not in (0, b""))


def expired_norm(body):
    return re.sub(rb"too old resource version: (\d+) \(\d+\)", rb"too old resource version: \1 (X)", body)


def test_watch_too_old_rv_gets_410_event():
    e = env()
    for fmt in FORMATS:
        for q in ("/api/v1/pods?watch=1&resourceVersion=3",
                  "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=3&allowWatchBookmarks=true"):
            k, s = Watch(e.kfc, q + "&timeoutSeconds=5", fmt), Watch(e.simc[0], q + "&timeoutSeconds=5", fmt)
            assert not any(h.startswith("x-kubernetes-pf-") for h in k.headers), (q, "forwarded")
            ek, es = k.join(), s.join()
            assert k.status == s.status == 200
            assert [t for t, _ in ek] == ["ERROR"] == [t for t, _ in es], (ek, es)
            if fmt == "json":
                assert expired_norm(ek[0][1]) == expired_norm(es[0][1]), (ek, es)
                st = json.loads(ek[0][1])["object"]
                assert st["code"] == 410 and st["reason"] == "Expired", st
            else:
                # the protobuf Status differs only in the oldest RV's digits (and the lengths)
                ok, os_ = event_object("pb", ek[0][1]), event_object("pb", es[0][1])
                assert expired_norm(pb_status_fields(ok)) == expired_norm(pb_status_fields(os_))


def pb_status_fields(enveloped):
    """A canonical rendering of a protobuf Status: its fields in order, with values."""
    raw = pb_unknown_raw(enveloped)
    return b"|".join(b"%d=%s" % (n, v if isinstance(v, (bytes, bytearray)) else str(v).encode())
                     for n, _, v, _ in fields(raw))


def relists(e, resource, fmt):
    want = "protobuf" if fmt == "pb" else "json"
    return e.kf.metric(f'kfront_cache_relists_total{{resource="{resource}",format="{want}"}}')


def test_upstream_compaction_relist_keeps_client_watches():
    """kube-sim drops its history and ends its watches: kfront's reflectors resume, get 410,
    relist; client watches through kfront stay open, see no error, and see later writes."""
    e = env()
    # a write elsewhere moves kube-sim's RV past what kfront's configmaps stores have seen, so
    # their resume after the compaction is too old
    write(e, "POST", "/api/v1/namespaces/default/pods", pod_manifest(f"rl-{os.getpid()}"))
    watches, old_rv = [], {}
    for fmt in FORMATS:
        _, _, lb = e.kfc.request("/api/v1/namespaces/default/configmaps?resourceVersion=0", fmt)
        rv = old_rv[fmt] = list_rv(fmt, lb)
        for q in (f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}",
                  f"/api/v1/configmaps?watch=1&resourceVersion={rv}&allowWatchBookmarks=true",
                  "/api/v1/configmaps?watch=1&labelSelector=relist-probe"):
            watches.append(Watch(e.kfc, q + "&timeoutSeconds=60", fmt))
    before = {fmt: relists(e, "configmaps", fmt) for fmt in FORMATS}
    e.sim.admin_post("/compact")
    e.sim.admin_post("/close-watches")
    wait_for(lambda: all(relists(e, "configmaps", f) > before[f] for f in FORMATS), 10,
             "kfront to relist configmaps after 410")
    assert "configmaps: watch from rv" in e.kf.logs() and "expired (410)" in e.kf.logs()
    name = f"after-relist-{os.getpid()}"
    write(e, "POST", "/api/v1/namespaces/default/configmaps",
          {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": {"relist-probe": "x"}}, "data": {"k": "v"}})
    for w in watches:
        wait_for(lambda: ("ADDED", name) in w.names(), 10, f"{w.fmt} {w.path} to see {name}")
    for w in watches:
        assert w.thread.is_alive(), (w.path, "the client's watch ended")
        assert not any(t == "ERROR" for t, _ in w.names()), (w.path, w.names())
        w.close()
    # and what kfront serves after the relist is still kube-sim's bytes
    for fmt in FORMATS:
        compare(e, "/api/v1/namespaces/default/configmaps?resourceVersion=0", fmt, "LIST",
                "configmaps", list_norm(fmt))
    # a state from before the relist cannot be rebuilt (the relist only sent the difference):
    # the compacted apiserver's answer, not a state kfront made up
    for fmt in FORMATS:
        path = f"/api/v1/configmaps?resourceVersion={old_rv[fmt]}&resourceVersionMatch=Exact"
        st_k, _, b_k = e.kfc.request(path, fmt)
        st_s, _, b_s = e.simc[0].request(path, fmt)
        assert st_s == 410 and (st_k, b_k) == (st_s, b_s), (fmt, st_k, st_s, b_k[:200])


def test_failover_between_identical_kube_sims():
    """Two kube-sims with the same seed and no churn hold the same objects at the same RVs
    (UIDs and timestamps may differ: they are not compared). kfront's reflectors watch one;
    it dies; they resume on the other from the same RV and client watches go on."""
    e2 = Env(sims=2, nodes=5, pods=40, cms=10, secrets=10)
    watches = []
    try:
        stats = [json.loads(s.admin_get("/stats")) for s in e2.sims]
        assert stats[0]["resourceVersion"] == stats[1]["resourceVersion"], stats
        e2.wait_filled("pb")
        for fmt in FORMATS:
            _, _, lb = e2.kfc.request("/api/v1/namespaces/default/configmaps?resourceVersion=0", fmt)
            rv = list_rv(fmt, lb)
            for q in (f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}",
                      "/api/v1/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=0"):
                watches.append(Watch(e2.kfc, q + "&timeoutSeconds=60", fmt))
        # the reflectors' kube-sim is the one with watches open
        wait_for(lambda: sum(json.loads(s.admin_get("/stats"))["watches"] > 0 for s in e2.sims) >= 1,
                 5, "reflector watches")
        # the balancer spreads reflectors over both: kill one that has some
        used = [i for i, s in enumerate(e2.sims) if json.loads(s.admin_get("/stats"))["watches"] > 0]
        dead, alive = used[0], 1 - used[0]
        total = sum(json.loads(s.admin_get("/stats"))["watches"] for s in e2.sims)
        e2.sims[dead].proc.kill()
        e2.sims[dead].proc.wait()
        wait_for(lambda: json.loads(e2.sims[alive].admin_get("/stats"))["watches"] == total, 15,
                 f"all {total} reflector watches on the survivor")
        name = f"after-failover-{os.getpid()}"
        st, _, out = e2.simc[alive].request("/api/v1/namespaces/default/configmaps", method="POST",
                                           body={"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": name}, "data": {"k": "v"}})
        assert st == 201, (st, out[:300])
        for w in watches:
            wait_for(lambda: ("ADDED", name) in w.names(), 15, f"{w.fmt} {w.path} to see {name}")
            assert w.thread.is_alive() and not any(t == "ERROR" for t, _ in w.names()), w.names()
            w.close()
        # resumed, not relisted: the survivor had the same history at the same RVs
        for _, res, _ in RESOURCES:
            assert all(relists(e2, res, f) == 1 for f in FORMATS), (res, e2.kf.logs()[-2000:])
    finally:
        for w in watches:
            w.close()
        e2.close()


def test_stalled_watcher_does_not_delay_others():
    """200 pod watches through kfront under churn; one client never reads. The others see a
    new pod within a second or two, and kfront's memory stays bounded while the stalled one's
    backlog grows (it is replayed from the shared window, not queued per watcher). kfront
    closes a watch whose client has not read for 30 s; that has no config knob, so the
    closing itself is left to a longer test."""
    e = env()
    _, _, lb = e.kfc.request("/api/v1/pods?resourceVersion=0&limit=1")
    rv = list_rv("json", lb)
    q = f"/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=60"
    # the stalled client: a TLS socket with a tiny receive buffer that sends the request and
    # never reads again
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", e.port))
    stalled = e.kfc.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    stalled.sendall(f"GET {q} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                    "User-Agent: kfront-conformance\r\n\r\n".encode())
    watches = [Watch(e.kfc, q, "json") for _ in range(199)]
    try:
        assert all(w.status == 200 for w in watches)
        rss0 = rss_kib(e.kf.proc.pid)
        e.sim.admin_post("/churn?rate=400")
        time.sleep(4)  # the stalled client falls far behind (~1,600 pod updates)
        name = f"marker-{os.getpid()}"
        t0 = time.time()
        write(e, "POST", "/api/v1/namespaces/default/pods", pod_manifest(name))
        needle = f'"name":"{name}"'.encode()
        wait_for(lambda: all(needle in w.body for w in watches), 10, "every live watcher to see it")
        delay = time.time() - t0
        assert delay < 3, f"live watchers took {delay:.1f}s to see a new pod"
        time.sleep(3)
        e.sim.admin_post("/churn?rate=0")
        rss1 = rss_kib(e.kf.proc.pid)
        assert rss1 - rss0 < 64 * 1024, f"kfront RSS grew {rss0} -> {rss1} KiB"
        assert all(w.thread.is_alive() and w.error is None for w in watches)
        print(f"  live watchers saw the marker after {delay * 1000:.0f} ms; RSS {rss0} -> {rss1} KiB")
    finally:
        e.sim.admin_post("/churn?rate=0")
        stalled.close()
        for w in watches:
            w.close()


if __name__ == "__main__":
    try:
        Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
    finally:
        if ENV:
            ENV.close()
