#!/usr/bin/python3
"""Authentication and authorization: x509 users, static tokens, front-proxy request
headers, the Node authorizer, TokenReview and SubjectAccessReview; bodies as recorded."""
import json

from ksim import KubeSim, check, finish, recording

TOKEN = "static-token-0123456789abcdef"
POLICY = """# tokens and rules for the auth test
token %s tokenuser uid=uid-tokenuser-1 groups=dev,token-group
allow user=alice verbs=get,list resources=configmaps namespaces=team-000
""" % TOKEN


def body_of(name):
    return recording(name + ".body.bin")


def without_meta(raw):
    d = json.loads(raw)
    d.pop("metadata", None)
    return d


with KubeSim(policy=POLICY, users=["alice=dev", "system:node:node-1=system:nodes"]) as ks:
    base = ks.url
    # the objects of the recordings: demo/np1 on node-1 references sec1 and cm1
    ks.json("POST", "/api/v1/namespaces", {"metadata": {"name": "demo"}})
    for kind, name in [("secrets", "sec1"), ("secrets", "sec2"), ("configmaps", "cm1")]:
        ks.json("POST", "/api/v1/namespaces/demo/" + kind, {"metadata": {"name": name}})
    st, _ = ks.json("POST", "/api/v1/namespaces/demo/pods", {
        "metadata": {"name": "np1"},
        "spec": {"nodeName": "node-1", "volumes": [{"name": "c", "configMap": {"name": "cm1"}}],
                 "containers": [{"name": "c", "image": "busybox", "env": [
                     {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec1", "key": "k"}}}]}]}})
    check(st == 201, "pod np1 created")

    def curl(*args, cert="admin"):
        return ks.curl(*args, cert=cert).stdout

    hdrs = ["-H", "X-Remote-User: system:node:node-1", "-H", "X-Remote-Group: system:nodes",
            "-H", "X-Remote-Extra-Reason: recording"]
    # 401s
    check(curl(base + "/api/v1/namespaces/demo/pods", cert=None) == body_of("unauthenticated-list-pods"), "401 list")
    check(curl(base + "/version", cert=None) == body_of("unauthenticated-version"), "401 version")
    check(curl(base + "/healthz", cert=None) == body_of("unauthenticated-healthz"), "401 healthz")
    check(curl("-H", "Authorization: Bearer not-a-valid-token", base + "/api", cert=None) == body_of("bearer-bad-token"), "401 bad token")
    check(curl(*hdrs, base + "/api/v1/nodes", cert=None) == body_of("reqheader-headers-without-cert"), "X-Remote-* without a cert: 401")
    # tokens
    tok = ["-H", "Authorization: Bearer " + TOKEN]
    check(curl(*tok, base + "/api/v1/namespaces/demo/pods", cert=None) == body_of("bearer-static-token-list-pods"), "token user 403")
    got = curl(*tok, base + "/api", cert=None)
    check(json.loads(got)["versions"] == ["v1"], "token user reads discovery")
    # x509 users and the policy
    check(curl(base + "/api/v1/namespaces/demo/pods", cert="user-alice") == body_of("forbidden-alice-list-pods"), "alice 403")
    check(json.loads(curl(base + "/api/v1/namespaces/team-000/configmaps/app-config-1", cert="user-alice")).get("kind") == "ConfigMap",
          "alice may read team-000 configmaps (policy rule)")
    # request-header authentication: only with the front-proxy-client certificate
    check(curl(*hdrs, base + "/api/v1/nodes", cert="user-alice") == body_of("reqheader-headers-with-alice-cert"), "headers ignored with alice's cert")
    got = curl(*hdrs, base + "/api/v1/namespaces/demo/secrets/sec2", cert="admin")
    check(json.loads(got)["metadata"]["name"] == "sec2", "headers ignored with the admin cert")
    check(curl(*hdrs, base + "/api/v1/namespaces/demo/secrets/sec2", cert="front-proxy-client") == body_of("reqheader-node-get-secret-unrelated"),
          "front proxy: node user denied an unrelated secret")
    got = json.loads(curl(*hdrs, base + "/api/v1/namespaces/demo/secrets/sec1", cert="front-proxy-client"))
    check(got.get("metadata", {}).get("name") == "sec1", "front proxy: node user reads the related secret")
    got = json.loads(curl(*hdrs, base + "/api/v1/nodes", cert="front-proxy-client"))
    check(got.get("kind") == "NodeList", "front proxy: node lists nodes")
    # the Node authorizer for a node's own certificate
    node = "user-system-node-node-1"
    check(json.loads(curl(base + "/api/v1/namespaces/demo/configmaps/cm1", cert=node)).get("kind") == "ConfigMap", "node reads cm1")
    check(json.loads(curl(base + "/api/v1/namespaces/demo/secrets?fieldSelector=metadata.name%3Dsec1", cert=node)).get("kind") == "SecretList",
          "kubelet-style list by name is authorized as get")
    s = json.loads(curl(base + "/api/v1/namespaces/demo/secrets", cert=node))
    check(s.get("code") == 403 and s["message"].endswith(": No Object name found"), "node list secrets: %r" % s)
    check(json.loads(curl(base + "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1", cert=node)).get("kind") == "PodList", "node lists its pods")
    st = json.loads(curl("-X", "PUT", "-H", "Content-Type: application/json", "-d",
                         '{"metadata":{"name":"node-1","namespace":"kube-node-lease"},"spec":{"holderIdentity":"node-1"}}',
                         base + "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-9", cert=node))
    check(st.get("code") == 403, "node may not touch another node's lease")

    # TokenReview and SubjectAccessReview, compared with the recordings (metadata aside)
    post = ["-X", "POST", "-H", "Content-Type: application/json", "-H", "Accept: application/json"]
    tr = base + "/apis/authentication.k8s.io/v1/tokenreviews"
    for name, body in [("tokenreview-static-token", {"spec": {"token": TOKEN}}),
                       ("tokenreview-bad-token", {"spec": {"token": "not-a-valid-token"}}),
                       ("tokenreview-static-token-with-audience", {"spec": {"token": TOKEN, "audiences": ["other-audience"]}})]:
        body.update(apiVersion="authentication.k8s.io/v1", kind="TokenReview")
        got = curl(*post, "-d", json.dumps(body), tr)
        check(without_meta(got) == without_meta(body_of(name)), "%s: %s" % (name, got))
    got = curl(*post, *tok, "-d", '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}', tr, cert=None)
    check(got == body_of("tokenreview-as-tokenuser"), "tokenreview by tokenuser: 403 %r" % got)
    sar = base + "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    for line in recording("INDEX.txt").decode().splitlines():
        if not line.startswith("sar-") or "body {" not in line:
            continue
        name = line.split(":", 1)[0]
        body = line[line.index("body {") + 5:line.index("} --") + 1]
        got = curl(*post, "-d", body.replace("node-1", "node-1"), sar)
        want = body_of(name)
        if name == "sar-missing-attributes":
            check(got == want, "%s: %s" % (name, got))
        else:
            check(without_meta(got) == without_meta(want), "%s:\n %s\nwant\n %s" % (name, got, want))
finish()
