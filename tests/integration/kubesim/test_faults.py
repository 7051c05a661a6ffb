#!/usr/bin/python3
"""The admin API: readiness, injected 429/5xx/delay, closing and dropping watches,
compaction, churn; and /metrics."""
import json
import signal
import threading
import time
import urllib.request

from ksim import KubeSim, check, finish, wait_until

with KubeSim(churn=200) as ks:
    check(ks.request("GET", "/readyz")[0] == 200, "ready")
    ks.admin_post("/faults?notReady=1")
    st, _, body = ks.request("GET", "/readyz")
    check(st == 500 and b"readyz check failed" in body, "not ready: %d" % st)
    check(ks.request("GET", "/healthz")[0] == 200, "healthz stays ok")
    ks.admin_post("/faults?notReady=0&error429=1")
    st, hdrs, body = ks.request("GET", "/api/v1/pods?limit=1")
    check(st == 429 and hdrs.get("Retry-After") == "1" and json.loads(body)["reason"] == "TooManyRequests", "429")
    ks.admin_post("/faults?error429=0&error5xx=1")
    check(ks.request("GET", "/api/v1/pods?limit=1")[0] == 500, "5xx")
    ks.admin_post("/faults?reset=1&delayMs=300")
    t = time.time()
    check(ks.request("GET", "/api/v1/namespaces/default")[0] == 200, "delayed request answered")
    check(time.time() - t >= 0.3, "delay applied: %.2f" % (time.time() - t))
    ks.admin_post("/faults?reset=1")

    # churn makes events; a watch sees them; close-watches ends it cleanly
    resp = urllib.request.urlopen(urllib.request.Request(ks.url + "/api/v1/pods?watch=1&resourceVersion=0"),
                                  context=ks.ssl_context(), timeout=10)
    got = []
    threading.Thread(target=lambda: [got.append(json.loads(l)) for l in resp], daemon=True).start()
    check(wait_until(lambda: any(e["type"] == "MODIFIED" for e in got), 5), "churn events arrive")
    stats = json.loads(ks.admin_get("/stats"))
    check(stats["watches"] == 1 and stats["events"] > 0, "stats %r" % stats)
    metrics = ks.admin_get("/metrics").decode()
    check('apiserver_registered_watchers{group="",kind="Pod",resource="pods",version="v1"} 1' in metrics, "watchers metric")
    check('apiserver_request_total{code="429",resource="pods",subresource="",verb="LIST"} 1' in metrics, "request metric")
    ks.admin_post("/close-watches")
    check(wait_until(lambda: json.loads(ks.admin_get("/stats"))["watches"] == 0, 3), "watch closed")
    compacted = ks.admin_post("/compact")["compactedResourceVersion"]
    check(compacted >= stats["resourceVersion"], "compacted")
    ks.admin_post("/churn?rate=0")
    rv = json.loads(ks.admin_get("/stats"))["resourceVersion"]
    time.sleep(0.3)
    check(json.loads(ks.admin_get("/stats"))["resourceVersion"] == rv, "churn stopped")
    st, _, body = ks.request("GET", "/metrics")
    check(st == 200 and b"kubesim_bytes_sent_total" in body, "/metrics on the API port (admin)")
# graceful termination: not ready at once, still serving for the delay, then gone
with KubeSim("--shutdown-delay", "800", nodes=2, pods=4) as ks:
    ks.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    check(ks.request("GET", "/readyz")[0] == 500, "readyz fails while terminating")
    check(ks.request("GET", "/healthz")[0] == 200, "healthz still ok while terminating")
    check(ks.proc.wait(5) == 0, "exits after the delay")
finish()
