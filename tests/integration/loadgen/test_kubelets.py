#!/usr/bin/python3
"""loadgen kubelets straight at kube-sim: the final check of every informer's view against the
truth. With every node known, each view must match (missing 0, nothing left uncompared); a node
whose token kube-sim does not know never lists, and its views are counted as not compared, not
as missing."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kubesim"))
from ksim import KubeSim, check, finish  # noqa: E402

LOADGEN = os.environ.get("LOADGEN", "")


def policy(nodes):
    with tempfile.NamedTemporaryFile("r", suffix=".policy") as f:
        subprocess.run([LOADGEN, "kubelets", "--write-policy", f.name, "--nodes", str(nodes)],
                       check=True)
        return f.read()


def run(ks, nodes, seconds=3):
    """loadgen's exit code, its JSON report and its stderr."""
    report = os.path.join(ks.dir, "report.json")
    p = subprocess.run([LOADGEN, "kubelets", "--kubeconfig", ks.kubeconfig, "--nodes", str(nodes),
                        "--duration", str(seconds), "--truth-kubeconfig", ks.kubeconfig,
                        "--truth-admin", ks.admin, "--report-json", report],
                       capture_output=True, text=True, timeout=120)
    with open(report) as f:
        return p.returncode, json.load(f), p.stderr


def main():
    if not os.path.exists(LOADGEN):
        print("usage: LOADGEN=/path/to/loadgen %s /path/to/kube-sim" % sys.argv[0])
        sys.exit(2)
    # tokens for nodes 1-3 only: node 4 is refused everything
    with KubeSim(nodes=4, pods=16, configmaps=8, secrets=4, policy=policy(3)) as ks:
        rc, rep, err = run(ks, 3)
        check(rc == 0, f"known nodes: exit {rc}: {err}")
        check(rep["lists"] > 0 and rep["events_missing"] == 0 and rep["events_wrong"] == 0,
              f"known nodes: {rep}")
        check(rep["views_refused"] == 0, f"known nodes: views not compared: {rep} {err}")

        rc, rep, err = run(ks, 4)
        refused = [line for line in err.splitlines() if "not compared" in line]
        check(rc == 0 and rep["events_missing"] == 0, f"unknown node: exit {rc}, {rep}: {err}")
        check(rep["views_refused"] >= 5 and len(refused) == rep["views_refused"],
              f"unknown node: {rep['views_refused']} views not compared: {err}")
        check(all("of node-00004 not compared: never listed, refused to its node 401" in line
                  for line in refused), f"views of known nodes refused: {refused}")
    finish()


if __name__ == "__main__":
    main()
