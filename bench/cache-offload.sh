#!/usr/bin/env bash
# ConfigMap read offload (MISSION scenario 2): a cluster of NODES nodes and CONFIGMAPS
# ConfigMaps, where workloads GET ConfigMaps at RATE requests/s (kubelet-style
# ?resourceVersion=0 reads, spread over every ConfigMap, an application token whose
# SubjectAccessReviews kfront caches) while KUBELETS simulated kubelets hold their per-name
# ConfigMap/Secret watches, send node GETs and lease PUTs. The same GET load runs twice for
# STEADY seconds: straight at the apiserver (kube-sim), then through kfront with its watch
# cache. Printed: the requests kube-sim received per second in each run against those offered
# (goal through kfront: under 1 %), kube-sim's CPU, and the GETs' p50/p99 as h2load saw them.
# kfront runs as a read-offload tier would: authorization.resourceWideAllow on (WIDE=false
# reviews every name).
#
#   bash bench/cache-offload.sh                # needs a build: ninja -C build
#   RATE=8500 STEADY=30 bash bench/cache-offload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
NODES=${NODES:-1000}
PODS=${PODS:-25000}
CONFIGMAPS=${CONFIGMAPS:-15000}
RATE=${RATE:-8500} # GETs/s offered
CLIENTS=${CLIENTS:-50}
KUBELETS=${KUBELETS:-100}
CHURN=${CHURN:-100} # writes/s
STEADY=${STEADY:-30}
KFRONT=${KFRONT:-build/proxy/kfront}
SIM=${KUBE_SIM:-build/loadgen/kube-sim/kube-sim}
LOADGEN=${LOADGEN:-build/loadgen/loadgen}
for t in h2load curl; do command -v $t >/dev/null || { echo "needs $t"; exit 1; }; done
[ -x "$KFRONT" ] && [ -x "$SIM" ] && [ -x "$LOADGEN" ] || { echo "build first (ninja -C build)"; exit 1; }
ulimit -n 65536 2>/dev/null || true

W=$(mktemp -d /tmp/kfront-benchoff-XXXX)
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf $W; true' EXIT
BASE=${BASE_PORT:-27400}
SP=$((BASE + 1)); SA=$((BASE + 2)); KF=$((BASE + 4)); KFA=$((BASE + 5))
for p in $SP $SA $KF $KFA; do # a leftover process would answer instead
  ! ss -ltn | grep -q "127.0.0.1:$p " || { echo "port $p is busy: set BASE_PORT"; exit 1; }
done

"$LOADGEN" kubelets --write-policy $W/policy --nodes "$KUBELETS"
cat >> $W/policy <<POL
allow user=system:kfront verbs=* resources=*
token app-token app
allow user=app verbs=get,list,watch resources=configmaps
POL
"$SIM" --listen 127.0.0.1:$SP --admin-listen 127.0.0.1:$SA --cert-dir $W/pki \
  --kubeconfig-out $W/sim.kubeconfig --policy $W/policy --nodes "$NODES" --pods "$PODS" \
  --configmaps "$CONFIGMAPS" --secrets 2000 --churn "$CHURN" > $W/sim.out 2> $W/sim.log &
echo $! > $W/sim.pid
for _ in $(seq 600); do grep -q "kube-sim ready" $W/sim.out 2>/dev/null && break; sleep 0.1; done
grep -q "kube-sim ready" $W/sim.out || { echo "kube-sim did not start"; cat $W/sim.log; exit 1; }
AUTH="Authorization: Bearer app-token"

# every ConfigMap's path, shuffled: each GET names a different object
curl -sf --cacert $W/pki/ca.crt -H "$AUTH" "https://127.0.0.1:$SP/api/v1/configmaps" |
  /usr/bin/python3 -c '
import json, random, sys
items = json.load(sys.stdin)["items"]
random.seed(1)
random.shuffle(items)
for o in items:
    m = o["metadata"]
    print("/api/v1/namespaces/%s/configmaps/%s?resourceVersion=0" % (m["namespace"], m["name"]))
' > $W/paths
[ "$(wc -l < $W/paths)" -ge "$CONFIGMAPS" ] || { echo "kube-sim listed $(wc -l < $W/paths) ConfigMaps"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; } # utime + stime, clock ticks
sim_requests() { # every request kube-sim has answered, watches included
  curl -s http://127.0.0.1:$SA/metrics | grep '^apiserver_request_total{' > $W/sim.metrics.$1
  awk '{s += $NF} END {printf "%d", s}' $W/sim.metrics.$1
}
kf_requests() {
  curl -s http://127.0.0.1:$KFA/metrics | awk '/^kfront_http_requests_total\{/ {s += $NF} END {printf "%d", s}'
}

# run NAME PORT: the GET load for STEADY s; kube-sim's requests and CPU over the same window
run() {
  sed "s#^#https://127.0.0.1:$2#" $W/paths > $W/uris
  local r0 c0 k0=0 k1=0
  r0=$(sim_requests 0); c0=$(cpu_ticks "$(cat $W/sim.pid)")
  [ "$1" = kfront ] && k0=$(kf_requests)
  h2load -i $W/uris -c "$CLIENTS" -m 10 -t 2 --rps $((RATE / CLIENTS)) -D "$STEADY" \
    -H "$AUTH" --log-file $W/$1.h2log > $W/$1.h2out 2>&1 || true
  [ "$1" = kfront ] && k1=$(kf_requests)
  cp $W/sim.metrics.0 $W/$1.m0
  echo "$(( $(sim_requests 1) - r0 )) $(( $(cpu_ticks "$(cat $W/sim.pid)") - c0 )) $((k1 - k0))" > $W/$1.sim
}

echo "GETs straight at kube-sim ..." >&2
run direct $SP

# a read-offload tier: one review per namespace, not per name (WIDE=false to compare)
start_kfront_cached $KF $KFA $SP configmaps "maxConnections: 20000
timeouts: {drain: 1s}
authorization: {resourceWideAllow: ${WIDE:-true}}
cache: {enabled: true}"
sed "s#https://127.0.0.1:$SP#https://127.0.0.1:$KF#" $W/sim.kubeconfig > $W/kfront.kubeconfig
echo "$KUBELETS kubelets through kfront, then GETs through kfront ..." >&2
"$LOADGEN" kubelets --kubeconfig $W/kfront.kubeconfig --nodes "$KUBELETS" \
  --duration $((STEADY + 40)) > $W/kubelets.out 2>&1 & echo $! > $W/kubelets.pid
sleep 15 # the kubelets' informers are up
run kfront $KF
served=$(curl -s http://127.0.0.1:$KFA/metrics | awk '/^kfront_cache_requests_total\{result="served"\}/ {print $2}')

/usr/bin/python3 - "$W" "$STEADY" "$RATE" "$KUBELETS" "$CONFIGMAPS" "${served:-?}" <<'PY'
import re, sys
w, steady, rate, kubelets, cms, served = sys.argv[1:]
steady = float(steady)
print(f"{cms} ConfigMaps, GET ?resourceVersion=0 offered at {rate}/s for {steady:.0f} s, TLS + "
      f"HTTP/2; through kfront {kubelets} kubelets run as well (kfront served {served} reads "
      f"from its cache)")
print(f"{'path':22} {'GETs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'offered/s':>10} "
      f"{'apiserver req/s':>16} {'fraction':>9} {'apiserver CPU':>14}")
rows = {}
for name, label in (("direct", "kube-sim directly"), ("kfront", "kfront (watch cache)")):
    out = open(f"{w}/{name}.h2out").read()
    ok = int(re.search(r"(\d+) succeeded", out).group(1))
    lat = sorted(int(l.split()[2]) for l in open(f"{w}/{name}.h2log") if l.strip())
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0 if lat else float("nan")
    up, ticks, kf = (int(x) for x in open(f"{w}/{name}.sim").read().split())
    offered = (kf if name == "kfront" else up) / steady
    rows[name] = up / steady
    print(f"{label:22} {ok / steady:>8.0f} {pct(0.5):>7.2f} {pct(0.99):>7.2f} {offered:>10.0f} "
          f"{up / steady:>16.1f} {100.0 * up / steady / max(offered, 1):>8.2f}% "
          f"{ticks / 100.0 / steady:>11.2f} s/s")
def counts(f):
    out = {}
    for line in open(f):
        labels, v = line.rsplit(" ", 1)
        key = ",".join(x for x in labels[labels.index("{") + 1:-1].split(",")
                       if x.split("=")[0] in ("verb", "resource", "subresource", "code"))
        out[key] = out.get(key, 0) + float(v)
    return out
before, after = counts(f"{w}/kfront.m0"), counts(f"{w}/sim.metrics.1")
top = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)[:4]
print("through kfront, what reached kube-sim: " + "; ".join(
    f"{n / steady:.1f}/s {k}" for n, k in top if n > 0))
print(f"apiserver requests/s, direct / through kfront: {rows['direct'] / max(rows['kfront'], 0.1):.0f}x")
PY
