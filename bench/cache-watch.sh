#!/usr/bin/env bash
# Watch fan-out benchmark: the same simulated kubelets (loadgen kubelets: HTTP/2, TLS, node
# tokens, each with its pod/node/service/ConfigMap/Secret informers) run twice against the same
# kube-sim under the same churn: through HAProxy in mode tcp (every client watch reaches the
# apiserver), then through kfront with its watch cache. Printed for each: the watches and the
# CPU the apiserver (kube-sim) spends per second once the kubelets are up, event delivery
# latency over a direct reference watch, and whether every kubelet ended with the apiserver's
# view (wrong/missing events). Then the ratios, HAProxy / kfront.
#
#   bash bench/cache-watch.sh                   # needs a build: ninja -C build
#   KUBELETS=160 STEADY=30 bash bench/cache-watch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
KUBELETS=${KUBELETS:-160} # about 64 watches each: ~10,000 client watches
NODES=${NODES:-1000}
PODS=${PODS:-25000}
CHURN=${CHURN:-100} # writes/s
STEADY=${STEADY:-30}
WARMUP=${WARMUP:-20}
KFRONT=${KFRONT:-build/proxy/kfront}
SIM=${KUBE_SIM:-build/loadgen/kube-sim/kube-sim}
LOADGEN=${LOADGEN:-build/loadgen/loadgen}
command -v haproxy >/dev/null || { echo "needs haproxy"; exit 1; }
[ -x "$KFRONT" ] && [ -x "$SIM" ] && [ -x "$LOADGEN" ] || { echo "build first (ninja -C build)"; exit 1; }
ulimit -n 65536 2>/dev/null || true

W=$(mktemp -d /tmp/kfront-benchw-XXXX)
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf $W; true' EXIT
BASE=${BASE_PORT:-27300}
SP=$((BASE + 1)); SA=$((BASE + 2)); HA=$((BASE + 3)); KF=$((BASE + 4)); KFA=$((BASE + 5))

for p in $SP $SA $HA $KF $KFA; do # a leftover process would answer instead
  ! ss -ltn | grep -q "127.0.0.1:$p " || { echo "port $p is busy: set BASE_PORT"; exit 1; }
done
"$LOADGEN" kubelets --write-policy $W/policy --nodes "$KUBELETS"
echo "allow user=system:kfront verbs=* resources=*" >> $W/policy
"$SIM" --listen 127.0.0.1:$SP --admin-listen 127.0.0.1:$SA --cert-dir $W/pki \
  --kubeconfig-out $W/sim.kubeconfig --policy $W/policy --nodes "$NODES" --pods "$PODS" \
  --configmaps 5000 --secrets 2000 --churn "$CHURN" > $W/sim.out 2> $W/sim.log &
echo $! > $W/sim.pid
for _ in $(seq 600); do grep -q "kube-sim ready" $W/sim.out 2>/dev/null && break; sleep 0.1; done
grep -q "kube-sim ready" $W/sim.out || { echo "kube-sim did not start"; cat $W/sim.log; exit 1; }

sim_watches() { curl -s http://127.0.0.1:$SA/stats | /usr/bin/python3 -c \
  'import json,sys; print(json.load(sys.stdin)["watches"])'; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; } # utime + stime, clock ticks
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$1/status; }

# run_kubelets NAME KUBECONFIG: loadgen for WARMUP+STEADY s; measures kube-sim over STEADY.
run_kubelets() {
  # the previous run's loadgen stopped the churn to compare views: start it again
  curl -s -X POST "http://127.0.0.1:$SA/churn?rate=$CHURN" > /dev/null
  "$LOADGEN" kubelets --kubeconfig "$2" --nodes "$KUBELETS" --duration $((WARMUP + STEADY)) \
    --truth-kubeconfig $W/sim.kubeconfig --truth-admin http://127.0.0.1:$SA \
    --report-json $W/$1.json > $W/$1.out 2>&1 &
  local lg=$!
  sleep "$WARMUP"
  local watches t0 t1
  watches=$(sim_watches)
  [ -f $W/kfront.pid ] && curl -s http://127.0.0.1:$KFA/metrics |
    awk '/^kfront_cache_watches / {print $2}' > $W/client_watches
  t0=$(cpu_ticks "$(cat $W/sim.pid)")
  sleep "$STEADY"
  t1=$(cpu_ticks "$(cat $W/sim.pid)")
  echo "$watches $(echo "($t1 - $t0) / $(getconf CLK_TCK) / $STEADY" | bc -l) $(rss_mb "$(cat $W/sim.pid)")" > $W/$1.sim
  wait $lg || true
}

# ---- HAProxy, mode tcp: TLS passes through, every watch is the apiserver's
cat > $W/haproxy.cfg <<HAP
global
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend api
  bind 127.0.0.1:$HA
  default_backend sim
backend sim
  server s1 127.0.0.1:$SP
HAP
haproxy -f $W/haproxy.cfg -D -p $W/haproxy.pid
sed "s#https://127.0.0.1:$SP#https://127.0.0.1:$HA#" $W/sim.kubeconfig > $W/haproxy.kubeconfig
echo "running $KUBELETS kubelets through HAProxy (mode tcp) ..." >&2
run_kubelets haproxy $W/haproxy.kubeconfig
kill "$(cat $W/haproxy.pid)"; rm -f $W/haproxy.pid

# ---- kfront, mode http with the watch cache
start_kfront_cached $KF $KFA $SP pods "maxConnections: 20000
timeouts: {drain: 1s}
cache: {enabled: true}"
sed "s#https://127.0.0.1:$SP#https://127.0.0.1:$KF#" $W/sim.kubeconfig > $W/kfront.kubeconfig
echo "running $KUBELETS kubelets through kfront (mode http, watch cache) ..." >&2
run_kubelets kfront $W/kfront.kubeconfig
client_watches=$(cat $W/client_watches 2>/dev/null)
kf_rss=$(rss_mb "$(cat $W/kfront.pid)")

/usr/bin/python3 - "$W" "$KUBELETS" "$STEADY" "$CHURN" "${client_watches:-?}" "$kf_rss" <<'PY'
import json, sys
w, n, steady, churn, client_watches, kf_rss = sys.argv[1:]
rows = {}
for name in ("haproxy", "kfront"):
    watches, cpu, rss = open(f"{w}/{name}.sim").read().split()
    try:
        rep = json.load(open(f"{w}/{name}.json"))
    except (OSError, ValueError):
        rep = {}
    rows[name] = (int(watches), float(cpu), int(rss), rep)
print(f"{n} simulated kubelets, kube-sim with {churn} writes/s; apiserver measured over {steady} s "
      f"of steady state (kfront served {client_watches} client watches, RSS {kf_rss} MB)")
print(f"{'path':24} {'apiserver':>10} {'apiserver':>10} {'apiserver':>9} {'latency':>8} {'latency':>8} {'wrong':>6} {'missing':>8}")
print(f"{'':24} {'watches':>10} {'CPU s/s':>10} {'RSS MB':>9} {'p50 ms':>8} {'p99 ms':>8} {'':>6} {'':>8}")
for name, label in (("haproxy", "HAProxy mode tcp"), ("kfront", "kfront (watch cache)")):
    watches, cpu, rss, rep = rows[name]
    lat = rep.get("latency_ms", {})
    print(f"{label:24} {watches:>10} {cpu:>10.2f} {rss:>9} {lat.get('p50', float('nan')):>8.2f} "
          f"{lat.get('p99', float('nan')):>8.2f} {rep.get('events_wrong', '?'):>6} "
          f"{rep.get('events_missing', '?'):>8}")
h, k = rows["haproxy"], rows["kfront"]
print("views not compared (never listed: the node authorizer refused them from the start): "
      f"HAProxy {h[3].get('views_refused', '?')}, kfront {k[3].get('views_refused', '?')}")
print(f"apiserver watches HAProxy/kfront: {h[0] / max(k[0], 1):.1f}x; "
      f"apiserver CPU HAProxy/kfront: {h[1] / max(k[1], 1e-9):.1f}x")
PY
