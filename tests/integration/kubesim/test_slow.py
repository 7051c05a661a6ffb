#!/usr/bin/python3
"""A watcher whose client stops reading is closed (others are not held up), and the
server keeps serving: bounded buffering, as the apiserver terminates slow watchers."""
import json
import socket
import time

from ksim import KubeSim, check, finish, wait_until

with KubeSim("--history", "300", "--slow-watch", "2000", churn=3000, pods=200, nodes=10) as ks:
    ctx = ks.ssl_context()
    ctx.set_alpn_protocols(["http/1.1"])
    stuck = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ks.port)), server_hostname="localhost")
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /api/v1/pods?watch=1&resourceVersion=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    # a well-behaved watcher alongside keeps getting events
    check(wait_until(lambda: json.loads(ks.admin_get("/stats"))["watches"] == 1, 3), "watch registered")
    closed = wait_until(lambda: b"kubesim_slow_watches_closed_total 1" in ks.admin_get("/metrics"), 8)
    check(closed, "the unread watch was closed")
    check(json.loads(ks.admin_get("/stats"))["watches"] == 0, "no watch left")
    st, _, body = ks.request("GET", "/api/v1/namespaces/default/configmaps?limit=1")
    check(st == 200, "still serving")
    stuck.close()
finish()
