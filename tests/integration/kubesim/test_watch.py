#!/usr/bin/python3
"""WATCH semantics: replay from an RV, filtered watches (ADDED/DELETED as objects enter and
leave), binding and graceful pod deletion, bookmarks, watch-list, 410 after compaction."""
import json
import threading
import time
import urllib.request

from ksim import KubeSim, check, finish, recording


class Watch:
    """Collect JSON watch events in a thread (HTTP/1.1, chunked)."""

    def __init__(self, ks, path):
        self.events, self.started = [], time.time()
        req = urllib.request.Request(ks.url + path)
        self.resp = urllib.request.urlopen(req, context=ks.ssl_context(), timeout=30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for line in self.resp:
            self.events.append((time.time() - self.started, json.loads(line)))
        self.ended = time.time() - self.started

    def join(self, timeout=15):
        self.thread.join(timeout)
        return [e for _, e in self.events]


def summary(events):
    out = []
    for e in events:
        o = e["object"]
        m = o["metadata"]
        out.append((e["type"], m.get("name"), (m.get("labels") or {}).get("app"),
                    int(m["resourceVersion"]) if "resourceVersion" in m else None))
    return out


with KubeSim("--pod-termination", "60000", "--bookmark-interval", "700") as ks:
    ks.json("POST", "/api/v1/namespaces", {"metadata": {"name": "watch2"}})
    ns = "/api/v1/namespaces/watch2"

    # --- label-filtered watch: the object leaves and comes back (watch-cm-label-appx-json)
    rv = ks.json("GET", ns + "/configmaps?labelSelector=app%3Dx")[1]["metadata"]["resourceVersion"]
    w = Watch(ks, ns + "/configmaps?allowWatchBookmarks=true&labelSelector=app%%3Dx&resourceVersion=%s&timeoutSeconds=3&watch=true" % rv)
    mp = {"Content-Type": "application/merge-patch+json"}
    ks.json("POST", ns + "/configmaps", {"metadata": {"name": "lx", "labels": {"app": "x"}}, "data": {"k": "1"}})
    for body in ['{"metadata":{"labels":{"app":"y"}}}', '{"data":{"k":"2"}}',
                 '{"metadata":{"labels":{"app":"x"}}}', '{"data":{"k":"3"}}']:
        st, _, _ = ks.request("PATCH", ns + "/configmaps/lx", body, mp)
        check(st == 200, "patch lx")
    st, _, _ = ks.request("DELETE", ns + "/configmaps/lx")
    got = summary(w.join())
    want = [(e["type"], e["object"]["metadata"].get("name"), (e["object"]["metadata"].get("labels") or {}).get("app"))
            for e in map(json.loads, recording("watch-cm-label-appx-json.body.bin").splitlines())]
    check([g[:3] for g in got if g[0] != "BOOKMARK"] == [x for x in want if x[0] != "BOOKMARK"],
          "label watch events:\n %r\nwant\n %r" % (got, want))
    rvs = [g[3] for g in got if g[0] != "BOOKMARK"]
    check(rvs == sorted(rvs) and len(set(rvs)) == len(rvs), "increasing RVs %r" % rvs)
    check(got[-1][0] == "BOOKMARK" and got[-1][1] is None, "bookmark before the deadline: %r" % got[-1:])
    check(2.5 < w.ended < 4.5, "watch ended at its timeout: %.1f" % w.ended)

    # --- nodeName watch: binding brings the pod in, graceful delete (watch-pods-node1-json)
    rv = ks.json("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-00001&limit=500")[1]["metadata"]["resourceVersion"]
    w = Watch(ks, "/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%%3Dnode-00001&resourceVersion=%s&timeoutSeconds=3&watch=true" % rv)
    pod = {"metadata": {"name": "wa1"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    st, created = ks.json("POST", ns + "/pods", pod)
    check(st == 201 and created["status"]["phase"] == "Pending", "pod created unbound")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "wa1", "namespace": "watch2"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-00001"}}
    st, _ = ks.json("POST", ns + "/pods/wa1/binding", binding)
    check(st == 201, "bound")
    ks.request("PATCH", ns + "/pods/wa1", '{"metadata":{"labels":{"step":"modified"}}}', mp)
    ks.json("POST", ns + "/pods", {"metadata": {"name": "wa2"}, "spec": {"nodeName": "node-00002", "containers": [{"name": "c"}]}})
    st, graceful = ks.json("DELETE", ns + "/pods/wa1")
    check(st == 200 and graceful["metadata"].get("deletionGracePeriodSeconds") == 30, "graceful delete %r" % graceful.get("metadata"))
    st, final = ks.json("DELETE", ns + "/pods/wa1?gracePeriodSeconds=0")
    check(st == 200 and final["metadata"].get("deletionGracePeriodSeconds") == 0, "force delete")
    ks.json("DELETE", ns + "/pods/wa2?gracePeriodSeconds=0")
    got = w.join()
    want = [json.loads(l) for l in recording("watch-pods-node1-json.body.bin").splitlines()]
    def shape(e):
        m = e["object"]["metadata"]
        return (e["type"], m.get("name"), m.get("deletionGracePeriodSeconds"), e["object"].get("spec", {}).get("nodeName") is not None)
    check([shape(e) for e in got if e["type"] != "BOOKMARK"] == [shape(e) for e in want if e["type"] != "BOOKMARK"],
          "nodeName watch:\n %r\nwant\n %r" % ([shape(e) for e in got], [shape(e) for e in want]))
    check(got and got[0]["object"]["status"]["conditions"][0]["type"] == "PodScheduled", "binding adds PodScheduled")
    deleted = [e for e in got if e["type"] == "DELETED"]
    check(deleted and final["metadata"]["resourceVersion"] == deleted[-1]["object"]["metadata"]["resourceVersion"],
          "the DELETE response is the DELETED object: %r vs %r" % (final["metadata"], summary(got)))

    # binding twice: the recorded 409 (names as in post-binding-again)
    ks.json("POST", ns + "/pods", {"metadata": {"name": "wbind"}, "spec": {"containers": [{"name": "c"}]}})
    b = dict(binding, metadata={"name": "wbind", "namespace": "watch2"}, target={"apiVersion": "v1", "kind": "Node", "name": "node-1"})
    p = ks.curl("-X", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(b), ks.url + ns + "/pods/wbind/binding")
    check(p.stdout == recording("post-binding.body.bin"), "binding body %r" % p.stdout)
    b["target"]["name"] = "node-2"
    p = ks.curl("-X", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(b), ks.url + ns + "/pods/wbind/binding")
    check(p.stdout == recording("post-binding-again.body.bin"), "second binding body %r" % p.stdout)

    # --- a kubelet's per-object watch (metadata.name) sees only its object
    ks.json("POST", ns + "/configmaps", {"metadata": {"name": "cm1"}, "data": {"k": "0"}})
    rv = ks.json("GET", ns + "/configmaps?fieldSelector=metadata.name%3Dcm1")[1]["metadata"]["resourceVersion"]
    w = Watch(ks, ns + "/configmaps?watch=true&fieldSelector=metadata.name%%3Dcm1&resourceVersion=%s&timeoutSeconds=1" % rv)
    ks.json("POST", ns + "/configmaps", {"metadata": {"name": "cm2"}})
    ks.request("PATCH", ns + "/configmaps/cm1", '{"data":{"k":"1"}}', mp)
    ks.request("DELETE", ns + "/configmaps/cm2")
    got = summary(w.join())
    check([g[:2] for g in got] == [("MODIFIED", "cm1")], "name-pinned watch: %r" % got)
    # a pod moved to another node leaves one nodeName watch (DELETED) and enters the other
    st, p2 = ks.json("POST", ns + "/pods", {"metadata": {"name": "mover"}, "spec": {"nodeName": "node-00003", "containers": [{"name": "c"}]}})
    w3 = Watch(ks, "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%%3Dnode-00003&resourceVersion=%s&timeoutSeconds=1" % p2["metadata"]["resourceVersion"])
    w4 = Watch(ks, "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%%3Dnode-00004&resourceVersion=%s&timeoutSeconds=1" % p2["metadata"]["resourceVersion"])
    ks.request("PATCH", ns + "/pods/mover", '{"spec":{"nodeName":"node-00004"}}', mp)
    g3, g4 = summary(w3.join()), summary(w4.join())
    check([g[:2] for g in g3] == [("DELETED", "mover")] and [g[:2] for g in g4] == [("ADDED", "mover")],
          "node change: %r / %r" % (g3, g4))
    check(g3 and g4 and g3[0][3] == g4[0][3], "both at the new resourceVersion")

    # --- watch-list: initial ADDED events end with the annotated bookmark
    w = Watch(ks, "/api/v1/namespaces/team-000/secrets?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=&timeoutSeconds=1")
    got = w.join()
    n = len(ks.json("GET", "/api/v1/namespaces/team-000/secrets")[1]["items"])
    types = [e["type"] for e in got]
    check(types[:n] == ["ADDED"] * n and types[n] == "BOOKMARK", "watch-list order %r" % types)
    check(got[n]["object"]["metadata"].get("annotations") == {"k8s.io/initial-events-end": "true"}, "initial-events-end bookmark")
    st, s = ks.json("GET", "/api/v1/secrets?watch=1&sendInitialEvents=true")
    check(st == 422 and "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan" in s["message"], "watch-list validation %r" % s)

    # --- replay from an RV, then compaction makes it too old (200 + ERROR 410)
    st, lst = ks.json("GET", "/api/v1/namespaces/watch2/configmaps")
    rv = lst["metadata"]["resourceVersion"]
    ks.json("POST", ns + "/configmaps", {"metadata": {"name": "r1"}})
    w = Watch(ks, ns + "/configmaps?watch=1&resourceVersion=%s&timeoutSeconds=1" % rv)
    check(summary(w.join())[:1] and summary(w.events and [e for _, e in w.events])[0][:2] == ("ADDED", "r1"), "replay from rv")
    compacted = ks.admin_post("/compact")["compactedResourceVersion"]
    p = ks.curl(ks.url + ns + "/configmaps?watch=1&resourceVersion=%s" % rv)
    ev = json.loads(p.stdout)
    check(ev["type"] == "ERROR" and ev["object"]["code"] == 410 and
          ev["object"]["message"] == "too old resource version: %s (%d)" % (rv, compacted), "too old: %r" % ev)
    st, s = ks.json("GET", ns + "/configmaps?resourceVersion=%s&resourceVersionMatch=Exact" % rv)
    check(st == 410 and s["reason"] == "Expired", "Exact list after compaction: 410")
    # a kube-proxy-style watch with label selectors and bookmarks at the interval
    w = Watch(ks, "/apis/discovery.k8s.io/v1/endpointslices?watch=1&allowWatchBookmarks=true&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name&timeoutSeconds=2")
    got = w.join()
    added = [e for e in got if e["type"] == "ADDED"]
    check(added and all("service.kubernetes.io/headless" not in e["object"]["metadata"]["labels"] for e in added), "kube-proxy selector")
    check(sum(e["type"] == "BOOKMARK" for e in got) >= 1, "periodic bookmarks")
finish()
