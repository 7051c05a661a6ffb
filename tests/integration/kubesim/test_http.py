#!/usr/bin/python3
"""curl over HTTP/1.1 and HTTP/2, JSON and protobuf: bodies, headers, list semantics."""
import base64
import json
import struct
import subprocess

from ksim import KubeSim, check, finish, recording

PB = "application/vnd.kubernetes.protobuf"


def pb_unwrap(body):
    """The raw object inside k8s\\0 + runtime.Unknown, and its kind."""
    check(body[:4] == b"k8s\x00", "protobuf magic")
    i, kind, raw = 4, None, None
    while i < len(body):
        key = body[i]
        i += 1
        n, shift = 0, 0
        while True:
            b = body[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if key == 0x0A:
            tm = body[i:i + n]
            kind = tm[tm.index(b"\x12") + 2:].decode()
        elif key == 0x12:
            raw = body[i:i + n]
        i += n
    return kind, raw


with KubeSim() as ks:
    # byte-for-byte Status bodies (curl's user agent gets pretty JSON, as recorded)
    for name, path, accept in [
        ("get-missing-json", "/api/v1/namespaces/demo/pods/does-not-exist", None),
        ("get-missing-ns-json", "/api/v1/namespaces/demo/configmaps/x", None),
        ("get-missing-protobuf", "/api/v1/namespaces/demo/pods/does-not-exist", PB),
        ("list-too-old-exact-json", "/api/v1/configmaps?resourceVersion=1&resourceVersionMatch=Exact", None),
        ("list-too-old-exact-protobuf", "/api/v1/configmaps?resourceVersion=1&resourceVersionMatch=Exact", PB),
    ]:
        for proto in ("--http1.1", "--http2"):
            args = [proto, "https://127.0.0.1:%d%s" % (ks.port, path)]
            if accept:
                args = ["-H", "Accept: " + accept] + args
            got = ks.curl(*args).stdout
            check(got == recording(name + ".body.bin"), "%s %s: body differs: %r" % (name, proto, got[:200]))
    got = ks.curl("https://127.0.0.1:%d/api/v1/namespaces/demo/pods" % ks.port, cert=None).stdout
    check(got == recording("unauthenticated-list-pods.body.bin"), "401 body")

    # GET: compact JSON with a newline for non-curl clients, kind first
    st, hdrs, body = ks.request("GET", "/api/v1/namespaces/team-000/configmaps/app-config-0")
    check(st == 200 and body.endswith(b"}\n") and body.startswith(b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-config-0"'),
          "GET configmap JSON: %r" % body[:100])
    check(hdrs.get("Content-Type") == "application/json" and "Audit-Id" in hdrs, "GET headers %r" % hdrs)
    st, hdrs, body = ks.request("GET", "/api/v1/namespaces/team-000/configmaps/app-config-0", headers={"Accept": PB + ", */*"})
    kind, raw = pb_unwrap(body)
    check(st == 200 and kind == "ConfigMap" and b"app-config-0" in raw, "GET protobuf")
    check(hdrs.get("Content-Type") == PB, "protobuf content type")
    # CRDs do not speak protobuf: fallback to JSON, or 406 when only protobuf is acceptable
    st, hdrs, body = ks.request("GET", "/apis/example.kfront.io/v1/namespaces/default/widgets/widget-0", headers={"Accept": PB + ", */*"})
    check(st == 200 and hdrs.get("Content-Type") == "application/json", "CRD falls back to JSON")
    st, _, _ = ks.request("GET", "/apis/example.kfront.io/v1/namespaces/default/widgets/widget-0", headers={"Accept": PB})
    check(st == 406, "CRD with protobuf only: 406, got %d" % st)

    # LIST: items without kind, RV, pagination with continue and remainingItemCount
    st, lst = ks.json("GET", "/api/v1/namespaces/team-000/configmaps?limit=2")
    check(st == 200 and lst["kind"] == "ConfigMapList" and len(lst["items"]) == 2, "limit=2")
    check("kind" not in lst["items"][0], "list items carry no kind")
    total = len(ks.json("GET", "/api/v1/namespaces/team-000/configmaps")[1]["items"])
    check(lst["metadata"].get("remainingItemCount") == total - 2, "remainingItemCount %r of %d" % (lst["metadata"], total))
    tok = lst["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
    check(decoded["v"] == "meta.k8s.io/v1" and decoded["rv"] == int(lst["metadata"]["resourceVersion"])
          and decoded["start"] == lst["items"][1]["metadata"]["name"] + "\x00", "continue token %r" % decoded)
    names = [i["metadata"]["name"] for i in lst["items"]]
    while tok:
        st, page = ks.json("GET", "/api/v1/namespaces/team-000/configmaps?limit=2&continue=" + tok)
        check(st == 200, "continue page")
        names += [i["metadata"]["name"] for i in page["items"]]
        tok = page["metadata"].get("continue")
    check(len(names) == total and names == sorted(names), "pages cover the list in key order")
    # protobuf list: the same items
    st, _, body = ks.request("GET", "/api/v1/namespaces/team-000/configmaps", headers={"Accept": PB})
    kind, raw = pb_unwrap(body)
    check(kind == "ConfigMapList" and raw.count(b"app-config-") == total - 1  # + kube-root-ca.crt
          and b"kube-root-ca.crt" in raw, "protobuf list")
    # resourceVersion=0 ignores limit; selectors filter
    st, lst = ks.json("GET", "/api/v1/pods?resourceVersion=0&limit=1")
    check(len(lst["items"]) == 60 and "continue" not in lst["metadata"], "RV=0 ignores limit")
    st, lst = ks.json("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-00001")
    check(lst["items"] and all(p["spec"]["nodeName"] == "node-00001" for p in lst["items"]), "field selector")
    st, lst = ks.json("GET", "/api/v1/pods?labelSelector=app%3Dapp-1,tier%20in%20(backend)")
    check(len(lst["items"]) == 10, "label selector: %d" % len(lst["items"]))
    # the apiserver's validation
    st, s = ks.json("GET", "/api/v1/pods?resourceVersionMatch=Exact")
    check(st == 422 and s["message"] == 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided', "422: %r" % s)
    st, s = ks.json("GET", "/api/v1/pods?fieldSelector=spec.bogus%3Dx")
    check(st == 400 and s["message"] == "field label not supported: spec.bogus", "bad field: %r" % s)
    st, s = ks.json("GET", "/api/v1/pods?continue=bogus!")
    check(st == 400 and s["message"].startswith("invalid continue token: continue key is not valid"), "bad continue %r" % s)
    st, s = ks.json("GET", "/api/v1/pods?limit=1&continue=%s&resourceVersion=5" % lst_tok if (lst_tok := ks.json("GET", "/api/v1/pods?limit=1")[1]["metadata"]["continue"]) else "")
    check(st == 400 and s["message"] == "specifying resource version is not allowed when using continue", "continue+rv %r" % s)
    # Exact at an rv within the history sees the state then
    st, a = ks.json("GET", "/api/v1/namespaces/default/configmaps")
    rv = a["metadata"]["resourceVersion"]
    ks.json("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "later"}})
    st, b = ks.json("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=%s&resourceVersionMatch=Exact" % rv)
    check(st == 200 and len(b["items"]) == len(a["items"]) and b["metadata"]["resourceVersion"] == rv, "Exact list")
    # future rv: wait, then 504 Timeout with Retry-After
    st, hdrs, body = ks.request("GET", "/api/v1/configmaps?resourceVersion=999999999&resourceVersionMatch=NotOlderThan")
    s = json.loads(body)
    check(st == 504 and s["reason"] == "Timeout" and hdrs.get("Retry-After") == "1", "future rv: %d %r" % (st, s))

    # HTTP/1.1 watch: one event per chunk, like the recording
    p = ks.curl("--http1.1", "--raw", "-N", "https://127.0.0.1:%d/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1" % ks.port)
    chunks = p.stdout.split(b"\r\n")
    events = [c for c in chunks if c.startswith(b'{"type":')]
    check(len(events) >= 2 and all(e.endswith(b"}\n") for e in events), "chunked watch framing: %r" % p.stdout[:300])
    # HTTP/2 protobuf watch: length-prefixed WatchEvent frames
    p = ks.curl("--http2", "-N", "-H", "Accept: " + PB, "https://127.0.0.1:%d/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1" % ks.port)
    data, frames = p.stdout, 0
    while len(data) >= 4:
        n = struct.unpack(">I", data[:4])[0]
        frame = data[4:4 + n]
        check(frame[:7] == b"\x0a\x05ADDED", "protobuf watch frame type")
        data = data[4 + n:]
        frames += 1
    check(frames >= 2 and not data, "protobuf frames: %d, %d bytes left" % (frames, len(data)))

    # protobuf writes, as kubelets send them: a lease PUT back with one field changed
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-00001"
    st, _, body = ks.request("GET", lease, headers={"Accept": PB})
    rv_before = json.loads(ks.request("GET", lease)[2])["metadata"]["resourceVersion"]
    st, _, same = ks.request("PUT", lease, body, {"Content-Type": PB, "Accept": PB})
    check(st == 200 and same == body, "no-op protobuf PUT keeps the version")
    i = body.rindex(b"\x0a\x0anode-00001")  # spec.holderIdentity (the last one), same length
    changed = body[:i] + b"\x0a\x0anode-00002" + body[i + 12:]
    check(changed != body, "lease protobuf carries the holder")
    st, _, raw = ks.request("PUT", lease, changed, {"Content-Type": PB})
    got = json.loads(raw)
    check(st == 200 and got["spec"]["holderIdentity"] == "node-00002" and
          int(got["metadata"]["resourceVersion"]) > int(rv_before), "protobuf PUT: %d %r" % (st, got.get("spec")))
    st, _, raw = ks.request("PUT", lease, body, {"Content-Type": PB})
    check(st == 409 and json.loads(raw)["reason"] == "Conflict", "stale protobuf PUT: 409")

    # kubectl's Table for a pod like the recorded one
    pod = json.loads(recording("get-pod-json.body.bin"))
    for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        pod["metadata"].pop(k, None)
    ks.json("POST", "/api/v1/namespaces", {"metadata": {"name": "demo"}})
    st, _ = ks.json("POST", "/api/v1/namespaces/demo/pods", pod)
    check(st == 201, "recorded pod created")
    # written back exactly as the apiserver wrote it: same fields, same order
    got = json.loads(ks.request("GET", "/api/v1/namespaces/demo/pods/pod1")[2])
    recorded = json.loads(recording("get-pod-json.body.bin"))
    for d in (got, recorded):
        for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
            d["metadata"].pop(k, None)
    check(json.dumps(got) == json.dumps(recorded), "pod JSON as the apiserver writes it:\n%s\n%s" % (json.dumps(got), json.dumps(recorded)))
    want = json.loads(recording("list-pods-table.body.bin"))
    p = ks.curl("-H", "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                "https://127.0.0.1:%d/api/v1/namespaces/demo/pods?limit=500" % ks.port)
    got = json.loads(p.stdout)
    check(got["kind"] == "Table" and got["apiVersion"] == "meta.k8s.io/v1", "Table kind")
    check(got["columnDefinitions"] == want["columnDefinitions"], "pod columns as recorded")
    row = [r for r in got["rows"] if r["cells"][0] == "pod1"]
    wrow = want["rows"][0]
    check(row and row[0]["cells"][:4] == wrow["cells"][:4] and row[0]["cells"][5:] == wrow["cells"][5:],
          "pod1 cells %r vs %r" % (row and row[0]["cells"], wrow["cells"]))
    check(row and row[0]["object"]["kind"] == "PartialObjectMetadata" and
          row[0]["object"]["metadata"]["labels"] == {"run": "pod1"}, "row object is the metadata")

    # the plain (insecure-port) listener: h2c and HTTP/1.1, trusted
    for proto in ("--http1.1", "--http2-prior-knowledge"):
        p = subprocess.run(["curl", "-s", proto, ks.plain + "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"],
                           capture_output=True, timeout=10)
        check(json.loads(p.stdout).get("kind") == "ConfigMap", "plain listener %s: %r" % (proto, p.stdout[:100]))

    # discovery and non-resource endpoints
    for path in ["/api", "/apis", "/api/v1", "/apis/coordination.k8s.io/v1", "/version", "/healthz", "/readyz", "/livez", "/openapi/v2"]:
        st, _, _ = ks.request("GET", path)
        check(st == 200, "GET %s: %d" % (path, st))
    st, s = ks.json("GET", "/api/v1/bogus")
    check(st == 404 and s["message"] == "the server could not find the requested resource", "unknown resource 404")
finish()
