"""Who the apiserver thinks the client is, through kfront in L7 mode: an authentication matrix.

Every client kind (x509 certificate: user CN, groups O; bearer token valid or not; no
credentials) with and without forged identity headers (X-Remote-User/-Group/-Extra-* and
Impersonate-*) asks kube-sim "who am I" (a SelfSubjectReview, as `kubectl auth whoami`
does), over HTTP/1.1 and HTTP/2, once directly and once through kfront. The answer (status
and body bytes) must be the one kube-sim gives directly, except where the identity mode
cannot carry the credential (passthrough has no way to present a client certificate
upstream: such a client is anonymous). Whatever the mode, kube-sim must never see a forged
identity.

Reads kfront answers from its cache are authorized by kfront itself (TokenReview and
SubjectAccessReview upstream): they must answer each client as kube-sim does.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import SimFront, Test, wait_for, xfail  # noqa: E402
import ksim  # noqa: E402

WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSR = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
POLICY = ("token tok-bob bob uid=u-bob groups=dev,ops extra=example.io/team=blue "
          "extra=scopes=read\n"
          "allow user=bob verbs=get,list,watch resources=configmaps\n")
FORGED = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters",
          "X-Remote-Extra-Scopes": "everything"}

JUNK = {f"X-Junk-{i}": "1" for i in range(300)}

# (case, certificate, headers): certificates from kube-sim's cert dir
CLIENTS = [
    ("cert alice (O=dev)", "user-alice", {}),
    ("cert admin (O=system:masters)", "admin", {}),
    ("token bob", None, {"Authorization": "Bearer tok-bob"}),
    ("invalid token", None, {"Authorization": "Bearer tok-nobody"}),
    ("no credentials", None, {}),
    ("cert alice + forged X-Remote-*", "user-alice", FORGED),
    ("token bob + forged X-Remote-*", None, dict(FORGED, Authorization="Bearer tok-bob")),
    ("no credentials + forged X-Remote-*", None, FORGED),
    ("cert alice + Impersonate-User admin", "user-alice",
     {"Impersonate-User": "kubernetes-admin", "Impersonate-Group": "system:masters"}),
    ("token bob + Impersonate-User admin", None,
     {"Authorization": "Bearer tok-bob", "Impersonate-User": "kubernetes-admin"}),
    ("cert admin + Impersonate-User alice", "admin",
     {"Impersonate-User": "alice", "Impersonate-Group": "dev"}),
    # a service account is reviewed as serviceaccounts NAME in its namespace and gets its
    # groups when none are asked for
    ("cert admin + Impersonate-User service account", "admin",
     {"Impersonate-User": "system:serviceaccount:kube-system:builder"}),
    ("cert alice + Impersonate-User service account", "user-alice",
     {"Impersonate-User": "system:serviceaccount:kube-system:builder"}),
    ("cert admin + Impersonate-User with extras, uid, system:unauthenticated", "admin",
     {"Impersonate-User": "carol", "Impersonate-Group": "system:unauthenticated",
      "Impersonate-Extra-Example.io%2fteam": "red", "Impersonate-Uid": "u-carol"}),
    ("cert admin + Impersonate-Extra key with a malformed escape", "admin",
     {"Impersonate-User": "carol", "Impersonate-Extra-Bad%zZ%2FKey": "v",
      "Impersonate-Extra-Good%2FKey": "w"}),
    ("cert alice + Impersonate-User carol with an extra", "user-alice",
     {"Impersonate-User": "carol", "Impersonate-Extra-Scopes": "<all>"}),
    # groups, extras or a uid without a user: the apiserver's 500, whoever asks
    ("cert admin + Impersonate-Group without a user", "admin",
     {"Impersonate-Group": "system:masters"}),
    ("token bob + Impersonate-Extra and -Uid without a user", None,
     {"Authorization": "Bearer tok-bob", "Impersonate-Extra-Scopes": "a&b",
      "Impersonate-Uid": "u-1"}),
    ("cert alice + empty Impersonate-User", "user-alice",
     {"Impersonate-User": "", "Impersonate-Group": "dev"}),
    # many headers must not crowd out the identity kfront adds (it once ran such a client as
    # kfront itself)
    ("no credentials + 300 other headers", None, JUNK),
    ("cert alice + 300 other headers", "user-alice", JUNK),
    ("token bob + 300 other headers", None, dict(JUNK, Authorization="Bearer tok-bob")),
]


def start(identity, cache=False, anonymous=False):
    sim = ksim.KubeSim(users=("alice=dev",), nodes=2, pods=4, configmaps=4, secrets=2,
                       policy=POLICY + ("anonymous on\n" if anonymous else ""))
    return SimFront([sim], cache=cache, identity=identity, anonymous=anonymous)


def call(e, port, proto, cert, headers, method="POST", path=WHOAMI, body=None):
    """(status, body bytes) of one request over HTTP/1.1 or HTTP/2."""
    if body is None and method == "POST":
        body = json.dumps(SSR).encode()
    if proto == "h1":
        h = {"Content-Type": "application/json"} if body else {}
        st, _, out = e.h1(path, method, body, dict(h, **headers), cert=cert, port=port)
        return st, out
    c = e.h2(cert=cert, port=port)
    try:
        hs = [("accept", "application/json"), ("user-agent", "kfront-test")]
        hs += [("content-type", "application/json")] if body else []
        hs += [(k.lower(), v) for k, v in headers.items()]
        st = c.request(path, method=method, headers=hs, body=body)
        c.sock.settimeout(10)
        while not st.done and c.pump() is not None:
            pass
        assert st.ended, (path, st.reset, c.goaway)
        return st.status, bytes(st.data)
    finally:
        c.close()


def who(status, body):
    """A short rendering of an answer: the user kube-sim saw, or the error."""
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{status} {body[:80]!r}"
    if doc.get("kind") == "SelfSubjectReview":
        u = doc["status"]["userInfo"]
        return f"{status} {u.get('username')} {u.get('groups')} {u.get('extra', {})}"
    return f"{status} {doc.get('reason')}: {doc.get('message', '')[:120]}"


def matrix(e, expect, only=lambda case: True):
    """Runs CLIENTS (those only(case) keeps) directly and through kfront over both
    protocols; returns the rows where kfront's answer is not the expected one.
    expect(case, direct answer) gives the answer kfront must give."""
    bad, seen = [], []
    for case, cert, headers in CLIENTS:
        if not only(case):
            continue
        direct = call(e, e.sims[0].port, "h1", cert, headers)
        want = expect(case, direct)
        for proto in ("h1", "h2"):
            got = call(e, e.port, proto, cert, headers)
            seen.append(f"{proto} {case}: {who(*got)}")
            if got != want:
                bad.append(f"{proto} {case}: kfront {who(*got)}, want {who(*want)}")
            assert b"system:admin" not in got[1] and b"everything" not in got[1], (case, got)
    print("  " + "\n  ".join(seen[::2]))
    return bad


def check(identity, only=lambda case: True, expect_for=None):
    """The matrix in one identity mode; expect_for(env) gives expect (default: every answer
    is kube-sim's direct one)."""
    e = start(identity)
    try:
        expect = expect_for(e) if expect_for else (lambda case, direct: direct)
        bad = matrix(e, expect, only)
        assert not bad, "\n".join(bad)
    finally:
        e.close()


def test_front_proxy_answers_as_kube_sim_does():
    check("front-proxy")


def test_passthrough_answers_as_kube_sim_does():
    """passthrough forwards Authorization as is and presents no certificate of kfront's: a
    certificate client reaches kube-sim as an unauthenticated one (401 with anonymous off);
    everything else is what kube-sim answers directly."""
    def expect(e):
        anon = call(e, e.sims[0].port, "h1", None, {})
        assert anon[0] == 401, anon
        return lambda case, direct: anon if case.startswith("cert") else direct
    check("passthrough", expect_for=expect)


def impersonating(case):
    return "Impersonate" in case


def credentialless(case):
    return case.startswith("no credentials")


def test_impersonate_answers_as_kube_sim_does():
    """impersonate: kfront's own certificate (kube-sim's admin) carries Impersonate-User and
    -Group for the client it authenticated (impersonating and credentialless clients: below)."""
    check("impersonate", lambda case: not impersonating(case) and not credentialless(case))


def test_impersonate_mode_honours_or_refuses_client_impersonation():
    check("impersonate", impersonating)


def test_impersonate_mode_no_credentials_as_kube_sim_answers():
    check("impersonate", credentialless)


def test_impersonate_mode_refuses_what_it_cannot_review_whole():
    """A name longer than kfront's review fields would be reviewed truncated and then
    impersonated whole: kfront refuses it (400) instead."""
    e = start("impersonate")
    try:
        for headers in ({"Impersonate-User": "u" * 300},
                        {"Impersonate-User": "carol", "Impersonate-Group": "g" * 256},
                        {"Impersonate-User": "carol", "Impersonate-Extra-" + "k" * 90: "v"},
                        {"Impersonate-User": "carol",
                         **{f"Impersonate-Extra-K{i}": "v" for i in range(33)}}):
            for proto in ("h1", "h2"):
                st, body = call(e, e.port, proto, "admin", headers)
                assert st == 400 and b"kfront reviews impersonated names" in body, (
                    proto, list(headers)[-1][:40], st, body[:200])
        # at the limits, reviewed and impersonated as asked
        st, body = call(e, e.port, "h1", "admin", {"Impersonate-User": "u" * 255})
        assert st == 201 and ("u" * 255).encode() in body, (st, body[:200])
    finally:
        e.close()


def test_h1_client_with_a_rejected_token():
    """kube-sim's own 401 Status for a bad token, over HTTP/1.1, in both vouching modes. kfront
    runs with MALLOC_PERTURB_ so that reading freed memory crashes it every time (the 401 path
    once counted the request from its freed arena)."""
    old = os.environ.get("MALLOC_PERTURB_")
    os.environ["MALLOC_PERTURB_"] = "165"
    try:
        for identity in ("front-proxy", "impersonate"):
            e = start(identity)
            try:
                headers = {"Authorization": "Bearer tok-nobody"}
                direct = call(e, e.sims[0].port, "h1", None, headers)
                for path in (WHOAMI, "/api/v1/namespaces/default/configmaps"):
                    got = call(e, e.port, "h1", None, headers, "POST" if path == WHOAMI
                               else "GET", path)
                    assert got == direct, (identity, path, who(*got))
            finally:
                e.close()
    finally:
        if old is None:
            del os.environ["MALLOC_PERTURB_"]
        else:
            os.environ["MALLOC_PERTURB_"] = old


def test_anonymous_on_is_kube_sims_call():
    """With kube-sim's anonymous auth on, a client without credentials is system:anonymous
    (group system:unauthenticated) through kfront too, in every identity mode."""
    for identity in ("front-proxy", "passthrough", "impersonate"):
        e = start(identity, anonymous=True)
        try:
            for proto in ("h1", "h2"):
                direct = call(e, e.sims[0].port, "h1", None, {})
                got = call(e, e.port, proto, None, {})
                assert got == direct and b'"system:anonymous"' in got[1], (identity, proto,
                                                                           who(*got))
        finally:
            e.close()


def test_passthrough_without_a_token_keeps_the_cache_off():
    """passthrough presents no certificate of kfront's: with no token for kfront's own
    requests the cache (on by default) stays off, said once at start, instead of listing
    anonymously and retrying 401s for ever. Reads are forwarded and answered."""
    sim = ksim.KubeSim(users=("alice=dev",), nodes=2, pods=4, configmaps=4, secrets=2,
                       policy=POLICY)
    e = SimFront([sim], cache=None, identity="passthrough")
    try:
        st, body = call(e, e.port, "h1", None, {"Authorization": "Bearer tok-bob"}, "GET", CACHED)
        assert st == 200 and json.loads(body)["kind"] == "ConfigMapList", (st, body[:200])
        time.sleep(1.5)  # reflectors would have listed, been refused and retried by now
        logs = e.kf.logs()
        assert "watch cache off: identity mode passthrough" in logs, logs[-2000:]
        assert "list answered 401" not in logs, logs[-2000:]
        _, metrics = e.kf.http("/metrics")
        assert "kfront_cache_requests_total" not in metrics
    finally:
        e.close()


CACHED = "/api/v1/namespaces/default/configmaps?resourceVersion=0"


def test_cached_reads_are_authenticated_as_kube_sim_does():
    """kfront serves this LIST from its cache, after its own authentication and
    authorization: each client must get kube-sim's status, and for errors its body."""
    cached_matrix(lambda case: not impersonating(case) and not credentialless(case))


def test_cached_read_without_credentials_as_kube_sim_answers():
    cached_matrix(credentialless)


def test_cacheable_read_by_an_impersonating_client_as_kube_sim_answers():
    """A client acting as someone else is not served from the cache (it would be authorized
    as itself): the apiserver judges the impersonation, and the answers match."""
    cached_matrix(impersonating)


PATH_POLICY = ("token tok-carol carol\n"
               "allow user=carol verbs=get,watch resources=configmaps names=cm-a\n"
               "token tok-dave dave\n"
               "allow user=dave verbs=* resources=* namespaces=default\n")


def test_cached_paths_answer_as_kube_sim_does():
    """Paths whose shape changes what is asked: a name with ?watch=1 is a get of that name
    (it was once served as a watch of every object in the namespace), the /watch/ prefix, a
    cluster-scoped resource under namespaces/NS/ (the apiserver's 404; it was once served by
    a namespace Role), an unknown version, ?watch=false. kfront's cache (or its forwarding)
    must answer each as kube-sim does."""
    sim = ksim.KubeSim(users=("alice=dev",), nodes=2, pods=4, configmaps=4, secrets=2,
                       policy=POLICY + PATH_POLICY)
    e = SimFront([sim], cache=True, identity="front-proxy")
    try:
        cms = "/api/v1/namespaces/default/configmaps"
        for name in ("cm-a", "cm-b"):
            st, _ = sim.json("POST", cms, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": name}, "data": {"k": name}})
            assert st == 201, st
        n = len(json.loads(call(e, sim.port, "h1", "admin", {}, "GET", "/api/v1/configmaps")[1])
                ["items"])
        wait_for(lambda: e.kf.metric('kfront_cache_objects{resource="configmaps",format="json"}')
                 >= n, 15, "kfront's configmaps cache to fill")
        node = json.loads(call(e, sim.port, "h1", "admin", {}, "GET", "/api/v1/nodes")[1])[
            "items"][0]["metadata"]["name"]
        carol, dave = {"Authorization": "Bearer tok-carol"}, {"Authorization": "Bearer tok-dave"}
        cases = [
            (carol, f"{cms}/cm-a?watch=1"),
            (carol, f"{cms}/cm-a?watch=true&resourceVersion=0"),
            (carol, f"{cms}/cm-b?watch=1"),
            (carol, f"{cms}?watch=1&fieldSelector=metadata.name%3Dcm-b"),
            (carol, "/api/v1/watch/namespaces/default/configmaps/cm-b"),
            (dave, "/api/v1/namespaces/default/nodes"),
            (dave, f"/api/v1/namespaces/default/nodes/{node}"),
            (dave, "/api/v1/namespaces/default/namespaces"),
            (dave, f"{cms}?watch=false&resourceVersion=0"),
            (dave, f"{cms}?watch=0"),
            ({}, "/api/v9/nodes"),
            ({}, "/api/v9/namespaces/default/configmaps?resourceVersion=0"),
            # a list with sendInitialEvents is the apiserver's to refuse
            (dave, f"{cms}?sendInitialEvents=true&resourceVersion=0"),
            # Accept: the first media range as the apiserver negotiates it
            (dict(dave, Accept="application/json; as=Table;v=v1;g=meta.k8s.io"),
             f"{cms}?resourceVersion=0"),
            (dict(dave, Accept="application/json;As=Table;v=v1;g=meta.k8s.io"),
             f"{cms}?resourceVersion=0"),
            (dict(dave, Accept="application/jsonfoo"), f"{cms}?resourceVersion=0"),
            (dict(dave, Accept="application/json;q=0.5, application/vnd.kubernetes.protobuf"),
             f"{cms}?resourceVersion=0"),
            (dict(dave, Accept="application/json; charset=utf-8"), f"{cms}?resourceVersion=0"),
        ]
        bad = []
        for headers, path in cases:
            cert = "admin" if not headers else None
            direct = call(e, sim.port, "h1", cert, headers, "GET", path)
            for proto in (("h1",) if "Accept" in headers else ("h1", "h2")):
                got = call(e, e.port, proto, cert, headers, "GET", path)
                same = got[0] == direct[0] and (got[0] != 200 or "watch=false" in path or
                                                 "watch=0" in path or got[1] == direct[1])
                if got[0] == 200 and direct[0] == 200 and not same:
                    same = json.loads(got[1])["kind"] == json.loads(direct[1])["kind"]
                if not same:
                    bad.append(f"{proto} {path}: kfront {who(*got)}, kube-sim {who(*direct)}")
        assert not bad, "\n".join(bad)
    finally:
        e.close()


def cached_matrix(only):
    e = start("front-proxy", cache=True)
    try:
        want_items = len(json.loads(call(e, e.sims[0].port, "h1", "admin", {}, "GET",
                                         CACHED)[1])["items"])
        wait_for(lambda: e.kf.metric('kfront_cache_objects{resource="configmaps",format="json"}')
                 >= want_items, 15, "kfront's configmaps cache to fill")
        bad, seen = [], []
        for case, cert, headers in CLIENTS:
            if not only(case):
                continue
            direct = call(e, e.sims[0].port, "h1", cert, headers, "GET", CACHED)
            served = e.kf.metric('kfront_cache_requests_total{result="served"}')
            got = call(e, e.port, "h1", cert, headers, "GET", CACHED)
            from_cache = e.kf.metric('kfront_cache_requests_total{result="served"}') > served
            seen.append(f"{case}: {got[0]}{' (cache)' if from_cache else ''}")
            same = got[0] == direct[0] and (got[0] == 200 or got[1] == direct[1])
            if got[0] == 200:
                same = same and len(json.loads(got[1])["items"]) == want_items
            if not same:
                bad.append(f"{case}: kfront {who(*got)}, kube-sim {who(*direct)}")
        print("  " + "\n  ".join(seen))
        assert not bad, "\n".join(bad)
    finally:
        e.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
