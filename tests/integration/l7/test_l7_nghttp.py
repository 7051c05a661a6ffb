"""nghttp (nghttp2's own client) through kfront in L7 mode against kube-sim: a GET, and a
watch with timeoutSeconds that sees a write and ends on time, with the watch cache on
(served by kfront) and off (forwarded)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import SimFront, Test, wait_for  # noqa: E402
import ksim  # noqa: E402

NS_CMS = "/api/v1/namespaces/default/configmaps"


def nghttp(e, path):
    """nghttp -v with the admin certificate, started."""
    return subprocess.Popen(["nghttp", "-v", "--cert", os.path.join(e.certs, "admin.crt"),
                             "--key", os.path.join(e.certs, "admin.key"),
                             "-H", "accept: application/json", "-H", "user-agent: nghttp-test",
                             e.url + path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result(proc, timeout=15):
    """(statuses received, JSON lines of the body) once nghttp exits 0."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, err[-500:], out[-1500:])
    text = out.decode(errors="replace")
    statuses = re.findall(r"recv \(stream_id=\d+\) :status: (\d+)", text)
    # -v interleaves the frame log with the body: keep the JSON lines
    return statuses, [l for l in text.splitlines() if l.startswith("{")]


def test_nghttp_get_and_watch():
    if not shutil.which("nghttp"):
        print("nghttp not installed: skipped")
        return
    for cache in (True, False):
        e = SimFront([ksim.KubeSim(nodes=2, pods=4, configmaps=4, secrets=2)], cache=cache)
        try:
            _, direct = e.sims[0].json("GET", NS_CMS)
            if cache:
                wait_for(lambda: e.kf.metric('kfront_cache_objects{resource="configmaps",'
                                             'format="json"}') >= len(direct["items"]), 15,
                         "kfront's cache to fill")
            statuses, body = result(nghttp(e, NS_CMS))
            got = json.loads("".join(body))
            assert statuses == ["200"] and got["kind"] == "ConfigMapList", (statuses, body[:2])
            names = [i["metadata"]["name"] for i in got["items"]]
            assert names == [i["metadata"]["name"] for i in direct["items"]], names
            rv = got["metadata"]["resourceVersion"]
            # a watch from the list's RV sees a write made while it runs, then ends on time
            name = f"nghttp-{int(cache)}"
            t0 = time.time()
            proc = nghttp(e, f"{NS_CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=2")
            time.sleep(0.5)
            st, _ = e.sims[0].json("POST", NS_CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": name}})
            assert st == 201, st
            statuses, body = result(proc)
            took = time.time() - t0
            events = [json.loads(l) for l in body]
            assert statuses == ["200"], statuses
            assert [(ev["type"], ev["object"]["metadata"]["name"]) for ev in events] == \
                [("ADDED", name)], events
            assert 1.5 <= took <= 5, f"the 2 s watch took {took:.1f}s"
            print(f"  cache {'on' if cache else 'off'}: GET of {len(names)} ConfigMaps; watch saw "
                  f"{name} and ended after {took:.1f}s")
        finally:
            e.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
