#!/usr/bin/python3
"""Hostile and malformed input gets a 400-class Status and never hurts the server."""
import json
import socket
import ssl

from ksim import KubeSim, check, finish

PB = "application/vnd.kubernetes.protobuf"

with KubeSim() as ks:
    cases = [
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":', "application/json", 400, "unexpected end of JSON input"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{bad', "application/json", 400, "invalid character 'b'"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'[1,2]', "application/json", 400, "cannot unmarshal array"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"x"},"bogus":1}', "application/json", 400, 'strict decoding error: unknown field "bogus"'),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"x"},"data":{"k":1}}', "application/json", 400, "cannot unmarshal number"),
        ("POST", "/api/v1/namespaces/default/pods", b'{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","ports":[{"containerPort":"x"}]}]}}', "application/json", 400, "spec.containers[0].ports[0].containerPort"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"Bad_Name"}}', "application/json", 422, "RFC 1123"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{}}', "application/json", 422, "name or generateName is required"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'k8s\x00\x0a\xff\xff', PB, 400, "unrecognized"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'k8s\x00\x12\x05\x0a\x03', PB, 400, "unrecognized"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'not protobuf', PB, 400, "unrecognized"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'a: b', "application/yaml", 415, "unknown format"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", b'{"data":', "application/merge-patch+json", 400, "unexpected end"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", b'[{"op":"frob","path":"/x"}]', "application/json-patch+json", 422, "Unexpected kind"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", b'{}', "application/apply-patch+yaml", 415, "unknown format"),
        ("GET", "/api/v1/pods?labelSelector=a%20in%20(", None, None, 400, "unable to parse requirement"),
        ("GET", "/api/v1/pods?fieldSelector=nonsense", None, None, 400, "invalid selector"),
        ("GET", "/api/v1/pods?limit=abc", None, None, 400, "invalid syntax"),
        ("GET", "/api/v1/pods?resourceVersion=abc", None, None, 422, "Invalid value"),
        ("GET", "/api/v1/pods?watch=1&timeoutSeconds=-1", None, None, 400, "invalid syntax"),
        ("GET", "/api/v1/pods?resourceVersionMatch=Bogus&resourceVersion=1", None, None, 422, "Unsupported value"),
        ("PUT", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", b'{"metadata":{"name":"other"}}', "application/json", 400, "does not match the name on the URL"),
        ("POST", "/api/v1/namespaces/other/configmaps", b'{"metadata":{"name":"x","namespace":"default"}}', "application/json", 400, "does not match the namespace"),
        ("DELETE", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", b'{"preconditions":{"uid":"nope"}}', "application/json", 409, "Precondition failed"),
        ("TRACE", "/api/v1/pods", None, None, 405, "does not allow this method"),
    ]
    for method, path, body, ctype, code, text in cases:
        headers = {"Content-Type": ctype} if ctype else {}
        st, hdrs, raw = ks.request(method, path, body, headers)
        message = json.loads(raw).get("message", "") if raw.startswith(b"{") else raw.decode(errors="replace")
        ok = st == code and text in message
        check(ok, "%s %s %r -> %d %s" % (method, path, body, st, raw[:300]))
        if raw and hdrs.get("Content-Type") == "application/json":
            check(json.loads(raw)["kind"] == "Status", "Status body for %s" % path)

    # raw garbage on the wire, truncated requests and frames
    ctx = ks.ssl_context()
    for junk in [b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nshort",
                 b"\x00\x01\x02\x03 garbage\r\n\r\n",
                 b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x05\x04\x00\x00\x00\x00",
                 b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ks.port), timeout=3), server_hostname="localhost")
        s.sendall(junk)
        try:
            s.recv(4096)
        except (socket.timeout, ConnectionError, ssl.SSLError):
            pass
        s.close()
    st, _, _ = ks.request("GET", "/healthz")
    check(st == 200, "still serving after hostile input")
finish()
