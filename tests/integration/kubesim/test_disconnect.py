#!/usr/bin/python3
"""Clients that vanish mid-stream: a big LIST cut short, and many watches multiplexed on one
HTTP/2 connection torn down at once while events flow. The server must clean up every
stream (no leak, no crash, under the sanitizers too) and keep serving."""
import json
import subprocess
import time

from ksim import KubeSim, check, finish, wait_until

with KubeSim(churn=500, pods=2000, nodes=20, configmaps=40, secrets=20) as ks:
    base = ["curl", "-s", "--cacert", ks.certs + "/ca.crt", "--cert", ks.cert()[0], "--key", ks.cert()[1]]
    for proto in ("--http1.1", "--http2"):
        for _ in range(3):
            p = subprocess.Popen(base + [proto, "--limit-rate", "200k", "-o", "/dev/null", ks.url + "/api/v1/pods"])
            time.sleep(0.3)
            p.kill()
            p.wait()
    urls = [ks.url + "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%%3Dnode-%05d" % i for i in range(20)]
    urls += [ks.url + "/api/v1/pods?watch=1&resourceVersion=0", ks.url + "/api/v1/configmaps?watch=1"]
    for _ in range(3):
        p = subprocess.Popen(base + ["--http2", "--parallel", "--parallel-max", "50", "--no-progress-meter"] +
                             sum([[u, "-o", "/dev/null"] for u in urls], []), stderr=subprocess.DEVNULL)
        check(wait_until(lambda: json.loads(ks.admin_get("/stats"))["watches"] >= len(urls), 5),
              "all watches open on one connection")
        time.sleep(0.3)
        p.kill()
        p.wait()
        check(wait_until(lambda: json.loads(ks.admin_get("/stats"))["watches"] == 0, 5), "all watches reaped")
    st, _, _ = ks.request("GET", "/api/v1/namespaces/default/configmaps?limit=1")
    check(st == 200, "still serving")
finish()
