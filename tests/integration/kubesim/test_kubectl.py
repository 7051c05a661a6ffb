#!/usr/bin/python3
"""kubectl against kube-sim: discovery, get (tables), -o yaml, -w, apply, label, delete."""
import os
import subprocess
import tempfile
import time

from ksim import KubeSim, check, finish, wait_until

MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  namespace: default
  labels:
    origin: test
data:
  key: %s
"""

with KubeSim() as ks:
    p = ks.kubectl("get", "pods", "-A")
    lines = p.stdout.strip().splitlines()
    check(lines[0].split()[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
          "kubectl get pods -A header: %r" % lines[:1])
    check(len(lines) == 61, "60 pods listed, got %d lines" % len(lines))
    check(all(" Running " in l for l in lines[1:]), "pods are Running")

    p = ks.kubectl("get", "nodes")
    check("node-00000" in p.stdout and "Ready" in p.stdout, "get nodes: %s" % p.stdout[:200])
    p = ks.kubectl("get", "pods", "-n", "team-000", "-o", "yaml")
    check("kind: List" in p.stdout and "nodeName: node-" in p.stdout, "get -o yaml")
    p = ks.kubectl("get", "widgets", "-n", "default")
    check("widget-0" in p.stdout, "custom resource listed: %s" % p.stdout)
    p = ks.kubectl("api-resources")
    check("leases" in p.stdout and "endpointslices" in p.stdout and "widgets" in p.stdout,
          "api-resources lists the groups")

    # apply, apply again (unchanged), change, label, delete
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(MANIFEST % "one")
        path = f.name
    p = ks.kubectl("apply", "-f", path)
    check("created" in p.stdout, "apply creates: %s" % p.stdout)
    p = ks.kubectl("apply", "-f", path)
    check("unchanged" in p.stdout, "apply again is a no-op: %s" % p.stdout)
    rv1 = ks.kubectl("get", "cm", "applied", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    with open(path, "w") as f:
        f.write(MANIFEST % "two")
    p = ks.kubectl("apply", "-f", path)
    check("configured" in p.stdout, "apply configures: %s" % p.stdout)
    p = ks.kubectl("get", "cm", "applied", "-o", "jsonpath={.data.key} {.metadata.resourceVersion}")
    value, rv2 = p.stdout.split()
    check(value == "two" and int(rv2) > int(rv1), "applied change visible: %s" % p.stdout)
    ks.kubectl("label", "cm", "applied", "extra=yes")
    p = ks.kubectl("get", "cm", "-l", "extra=yes", "-o", "name")
    check(p.stdout.strip() == "configmap/applied", "label selector finds it: %r" % p.stdout)
    os.unlink(path)

    # kubectl get -w sees writes made meanwhile
    w = subprocess.Popen(["kubectl", "--kubeconfig", ks.kubeconfig, "get", "cm", "-n", "default",
                          "-w", "--request-timeout=0"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.8)
    ks.kubectl("create", "cm", "watched", "-n", "default", "--from-literal=a=b")
    ks.kubectl("delete", "cm", "applied")
    time.sleep(0.8)
    w.terminate()
    out = w.communicate(timeout=5)[0]
    check("watched" in out, "kubectl get -w shows the created configmap: %r" % out)
    check(out.count("NAME") == 1, "one header line: %r" % out)
    p = ks.kubectl("get", "cm", "applied", check_rc=False)
    check(p.returncode != 0 and "NotFound" in p.stderr, "deleted: %s" % p.stderr)

    # a pod deleted gracefully goes Terminating, then disappears
    pod = ks.kubectl("get", "pods", "-n", "team-000", "-o", "jsonpath={.items[0].metadata.name}").stdout
    ks.kubectl("delete", "pod", "-n", "team-000", pod, "--wait=false")
    check(wait_until(lambda: ks.kubectl("get", "pod", "-n", "team-000", pod,
                                        check_rc=False).returncode != 0, 5),
          "gracefully deleted pod goes away")
finish()
