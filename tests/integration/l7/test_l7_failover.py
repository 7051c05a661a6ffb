"""Killing a backend during watches, through kfront in L7 mode.

Two kube-sims started with the same seed hold the same objects at the same resourceVersions,
and each write is applied to both in the same order, so a client's RV is valid on either.
About 50 watches come from raw clients: one HTTP/2 connection carrying many streams, and
HTTP/1.1 connections, one watch each.

Without the cache, watches are forwarded and spread over both kube-sims. When one dies
(SIGKILL) or hangs (SIGSTOP: a half-open peer that only kfront's HTTP/2 PING can find), the
watches it carried must end promptly so their clients re-watch; the ones on the survivor must
not end; a watch re-issued from the last RV seen must land on the survivor and get the next
write. With the cache, client watches are served by kfront and must survive the kill.
"""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
sys.path.insert(0, os.path.join(HERE, "..", "cache"))
from kftest import SimFront, Test, wait_for, xfail  # noqa: E402
import ksim  # noqa: E402
from test_cache_conformance import Client, Watch  # noqa: E402

NS_CMS = "/api/v1/namespaces/default/configmaps"
N_H2, N_H1 = 25, 25


def identical_sims(n=2):
    first = ksim.KubeSim(nodes=3, pods=12, configmaps=6, secrets=3)
    sims = [first] + [ksim.KubeSim("--cert-dir", first.certs, nodes=3, pods=12, configmaps=6,
                                   secrets=3) for _ in range(n - 1)]
    for s in sims:
        s.certs = first.certs  # clients of each use the shared certificates
        s.stopped = False
    rvs = {json.loads(s.admin_get("/stats"))["resourceVersion"] for s in sims}
    assert len(rvs) == 1, rvs
    return sims


def stats(sim):
    return json.loads(sim.admin_get("/stats"))


def write_all(sims, name):
    """Create a ConfigMap on every live kube-sim, in the same order: the same RV everywhere."""
    rvs = set()
    for s in sims:
        if s.proc.poll() is not None or s.stopped:
            continue
        st, obj = s.json("POST", NS_CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": name}, "data": {"k": "v"}})
        assert st == 201, (st, obj)
        rvs.add(obj["metadata"]["resourceVersion"])
    assert len(rvs) == 1, rvs
    return int(rvs.pop())


class ClientWatch:
    """One client's watch, over an HTTP/2 stream or its own HTTP/1.1 connection."""

    def __init__(self, env, path, h2conn=None):
        self.path = path
        if h2conn:
            self.h2 = h2conn.request(path, headers=[("accept", "application/json"),
                                                    ("user-agent", "kfront-test")])
            self.h1 = None
        else:
            self.h2, self.h1 = None, Watch(Client(env.port, env.certs), path, "json")
            self.h1_end = None

    @property
    def proto(self):
        return "h2" if self.h2 else "h1"

    def done(self):
        if self.h2:
            return self.h2.done
        if not self.h1.thread.is_alive() and self.h1_end is None:
            self.h1_end = time.time()
        return self.h1_end is not None

    def end_time(self):
        return self.h2.end_time if self.h2 else self.h1_end

    def how_ended(self):
        if self.h2:
            return f"RST_STREAM {self.h2.reset}" if self.h2.reset is not None else \
                "END_STREAM" if self.h2.ended else "connection closed"
        return f"error {type(self.h1.error).__name__}" if self.h1.error else "clean end"

    def events(self):
        if self.h2:
            data = bytes(self.h2.data)
            return [json.loads(l) for l in data.split(b"\n")[:-1] if l.strip()]
        return [json.loads(f) for f in list(self.h1.frames)]

    def names(self):
        return [(e["type"], e["object"]["metadata"].get("name")) for e in self.events()]

    def last_rv(self):
        return int(self.events()[-1]["object"]["metadata"]["resourceVersion"])

    def forwarded(self):
        """Whether kube-sim answered (its APF headers came through) rather than the cache."""
        heads = dict(self.h2.headers or []) if self.h2 else self.h1.headers
        return any(k.startswith("x-kubernetes-pf-") for k in heads)

    def close(self):
        if self.h1:
            self.h1.close()


def open_watches(env, rv, conn):
    path = f"{NS_CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=120"
    ws = [ClientWatch(env, path, conn) for _ in range(N_H2)]
    conn.start()
    ws += [ClientWatch(env, path) for _ in range(N_H1)]
    wait_for(lambda: all(w.h2.status == 200 for w in ws if w.h2), 10, "HTTP/2 watch heads")
    assert all(w.h1.status == 200 for w in ws if w.h1)
    return ws


def all_see(ws, name, timeout=10):
    wait_for(lambda: all(("ADDED", name) in w.names() for w in ws), timeout,
             f"{len(ws)} watches to see {name}")


def start(check=None, cache=False):
    sims = identical_sims()
    env = SimFront(sims, cache=cache, check=check)
    return sims, env


def forwarded_watches_spread(env, sims):
    """50 forwarded watches from the current RV, all of which saw one write; returns them
    and how many each kube-sim carries."""
    _, lst = sims[0].json("GET", NS_CMS)
    conn = env.h2()
    ws = open_watches(env, lst["metadata"]["resourceVersion"], conn)
    wait_for(lambda: sum(stats(s)["watches"] for s in sims) == len(ws), 10,
             "every watch upstream")
    per_sim = [stats(s)["watches"] for s in sims]
    assert all(w.forwarded() for w in ws), "cache disabled: every watch is forwarded"
    write_all(sims, "before-failure")
    all_see(ws, "before-failure")
    return conn, ws, per_sim


def wait_ends(ws, n, t0, bound, what):
    """Until exactly n watches ended, within bound seconds of t0; returns the slowest end."""
    wait_for(lambda: sum(w.done() for w in ws) >= n, bound + 1, f"{n} watches to end ({what})")
    ended = [w for w in ws if w.done()]
    slowest = max(w.end_time() for w in ended) - t0
    assert len(ended) == n, (what, f"{len(ended)} ended, only {n} were on the failed backend")
    assert slowest <= bound, (what, f"the last watch ended {slowest:.1f}s after the failure")
    return ended, slowest


def test_sigterm_ends_forwarded_watches_cleanly():
    """Draining (SIGTERM), kfront ends every forwarded watch at an event boundary, as the
    apiserver ends its watches when it shuts down: HTTP/2 streams with END_STREAM, HTTP/1.1
    with the last chunk, every event whole (a protobuf watch too). The clients re-watch
    elsewhere at once instead of holding the drain to its 30 s deadline."""
    sims = identical_sims()
    env = SimFront(sims, cache=False, extra_yaml="timeouts: {drain: 30s}\n")
    ws, pb = [], None
    try:
        conn, ws, _ = forwarded_watches_spread(env, sims)
        _, lst = sims[0].json("GET", NS_CMS)
        pb = Watch(Client(env.port, env.certs),
                   f"{NS_CMS}?watch=1&resourceVersion={lst['metadata']['resourceVersion']}",
                   "pb")
        assert pb.status == 200, pb.status
        write_all(sims, "before-drain")
        all_see(ws, "before-drain")
        wait_for(lambda: len(pb.frames) >= 1, 10, "the protobuf watch's event")
        t0 = time.time()
        env.kf.signal(signal.SIGTERM)
        ended, slowest = wait_ends(ws, len(ws), t0, 5, "SIGTERM")
        how = {}
        for w in ended:
            k = f"{w.proto} {w.how_ended()}"
            how[k] = how.get(k, 0) + 1
        print(f"  {len(ended)} watches ended ({how}), the last {slowest * 1000:.0f} ms after "
              "SIGTERM")
        assert set(how) == {"h2 END_STREAM", "h1 clean end"}, how
        for w in ws:
            if w.h2:
                assert bytes(w.h2.data).endswith(b"\n"), "an HTTP/2 watch ended mid-event"
            assert ("ADDED", "before-drain") in w.names()
        assert len(pb.join(5)) >= 1  # whole frames and a clean end, or join fails
        env.kf.proc.wait(10)  # nothing else held the drain
        assert time.time() - t0 < 10, "kfront waited for its drain deadline"
    finally:
        for w in ws:
            w.close()
        if pb:
            pb.close()
        env.close()


def test_sigterm_ends_a_watch_answered_during_the_drain_after_its_first_event():
    """A watch whose answer was still on its way when the drain began ends after its first
    event (the apiservers delay their answers by 1.5 s here)."""
    sims = identical_sims()
    env = SimFront(sims, cache=False, extra_yaml="timeouts: {drain: 30s}\n")
    try:
        _, lst = sims[0].json("GET", NS_CMS)
        for s in sims:
            s.admin_post("/faults?delayMs=1500")
        conn = env.h2()
        w = ClientWatch(env, f"{NS_CMS}?watch=1&resourceVersion="
                        f"{lst['metadata']['resourceVersion']}&timeoutSeconds=120", conn)
        conn.start()
        time.sleep(0.3)
        assert w.h2.status is None, "answered before the drain began"
        env.kf.signal(signal.SIGTERM)
        wait_for(lambda: w.h2.status == 200, 10, "the watch's answer")
        for s in sims:
            s.admin_post("/faults?delayMs=0")
        write_all(sims, "during-drain")
        wait_for(w.done, 10, "the watch to end after its first event")
        assert w.how_ended() == "END_STREAM", w.how_ended()
        assert w.names() == [("ADDED", "during-drain")], w.names()
        assert bytes(w.h2.data).endswith(b"\n")
        env.kf.proc.wait(10)
    finally:
        env.close()


def test_kill_ends_forwarded_watches_and_rewatch_lands_on_survivor():
    sims, env = start()
    conn = None
    ws, rewatches = [], []
    try:
        conn, ws, per_sim = forwarded_watches_spread(env, sims)
        dead = max(range(2), key=lambda i: per_sim[i])
        alive = 1 - dead
        assert per_sim[dead] > 0 and per_sim[alive] > 0, per_sim  # per-request balancing
        t0 = time.time()
        sims[dead].proc.kill()
        sims[dead].proc.wait()
        ended, slowest = wait_ends(ws, per_sim[dead], t0, 10, "SIGKILL")
        how = {}
        for w in ended:
            k = f"{w.proto} {w.how_ended()}"
            how[k] = how.get(k, 0) + 1
        print(f"  {len(ended)} watches on the killed kube-sim ended ({how}), the last "
              f"{slowest * 1000:.0f} ms after SIGKILL; {per_sim[alive]} went on")
        # re-issue each ended watch from the last RV it saw, the HTTP/2 ones on the same
        # connection: through kfront they land on the survivor
        for w in ended:
            path = f"{NS_CMS}?watch=1&resourceVersion={w.last_rv()}&timeoutSeconds=120"
            rewatches.append(ClientWatch(env, path, conn if w.h2 else None))
        wait_for(lambda: all(w.h2.status for w in rewatches if w.h2), 10, "re-watch heads")
        assert all((w.h2.status if w.h2 else w.h1.status) == 200 for w in rewatches)
        wait_for(lambda: stats(sims[alive])["watches"] == len(ws), 10,
                 "re-issued watches on the survivor")
        write_all(sims, "after-failure")
        live = [w for w in ws if not w.done()] + rewatches
        all_see(live, "after-failure")
        for w in rewatches:  # resumed after the last RV: nothing seen twice
            assert w.names() == [("ADDED", "after-failure")], w.names()
        assert sum(w.done() for w in ws) == len(ended), "a watch on the survivor ended"
        assert not any(w.done() for w in rewatches)
    finally:
        for w in ws + rewatches:
            w.close()
        if conn:
            conn.close()
        env.close()


def test_half_open_backend_found_by_ping():
    """SIGSTOP: the kube-sim's sockets stay open and its kernel still completes TCP handshakes,
    so a TCP health check sees it up; only kfront's HTTP/2 PING to the upstream connection
    (sent after 10 s without a frame, dead after 5 s more: lb/upstream.c) finds it."""
    check = "{type: tcp, interval: 200ms, timeout: 500ms, rise: 1, fall: 1}"
    sims, env = start(check=check)
    conn, ws = None, []
    try:
        conn, ws, per_sim = forwarded_watches_spread(env, sims)
        hung = max(range(2), key=lambda i: per_sim[i])
        alive = 1 - hung
        t0 = time.time()  # the last frames from it came just now, with "before-failure"
        sims[hung].proc.send_signal(signal.SIGSTOP)
        sims[hung].stopped = True
        ended, slowest = wait_ends(ws, per_sim[hung], t0, 17, "SIGSTOP")
        assert slowest >= 9, f"ended after {slowest:.1f}s: before any PING could be unanswered"
        assert "no PING ack within" in env.kf.logs(), env.kf.logs()[-2000:]
        assert env.kf.metric("kfront_backend_up") == 2, "the TCP check still sees it up"
        print(f"  {len(ended)} watches on the stopped kube-sim ended after "
              f"{min(w.end_time() for w in ended) - t0:.1f}-{slowest:.1f}s (PING timeout)")
        write_all(sims, "after-failure")
        all_see([w for w in ws if not w.done()], "after-failure")
        assert sum(w.done() for w in ws) == len(ended), "a watch on the survivor ended"
    finally:
        for s in sims:
            if s.stopped:
                s.proc.send_signal(signal.SIGCONT)
        for w in ws:
            w.close()
        if conn:
            conn.close()
        env.close()


def test_upstream_metrics_are_exported():
    sims, env = start()
    try:
        st, _, _ = env.h1(NS_CMS)
        assert st == 200
        for name in ("kfront_upstream_streams_total", "kfront_upstream_ping_timeouts_total",
                     "kfront_upstream_connections"):
            env.kf.metric(name)
        assert env.kf.metric("kfront_upstream_streams_total") >= 1
    finally:
        env.close()


def test_cached_watches_survive_backend_kill():
    """With the cache, the client watches are kfront's: when the kube-sim its reflectors
    watch dies, they resume on the other one (same RVs) and no client watch ends."""
    sims, env = start(cache=True)
    conn, ws = None, []
    try:
        _, lst = sims[0].json("GET", NS_CMS)
        want = len(sims[0].json("GET", "/api/v1/configmaps")[1]["items"])
        wait_for(lambda: env.kf.metric('kfront_cache_objects{resource="configmaps",format="json"}')
                 == want, 15, "kfront's configmaps cache to fill")
        conn = env.h2()
        ws = open_watches(env, lst["metadata"]["resourceVersion"], conn)
        assert not any(w.forwarded() for w in ws), "served from kfront's cache"
        upstream = [stats(s)["watches"] for s in sims]  # kfront's reflectors only
        assert sum(upstream) < len(ws), upstream
        dead = max(range(2), key=lambda i: upstream[i])
        alive = 1 - dead
        write_all(sims, "before-failure")
        all_see(ws, "before-failure")
        sims[dead].proc.kill()
        sims[dead].proc.wait()
        wait_for(lambda: stats(sims[alive])["watches"] == sum(upstream), 15,
                 f"all {sum(upstream)} reflector watches on the survivor")
        write_all(sims, "after-failure")
        all_see(ws, "after-failure", timeout=15)
        assert not any(w.done() for w in ws), [w.proto for w in ws if w.done()]
        for w in ws:
            assert [n for t, n in w.names()] == ["before-failure", "after-failure"], w.names()
    finally:
        for w in ws:
            w.close()
        if conn:
            conn.close()
        env.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
