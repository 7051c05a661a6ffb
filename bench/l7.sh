#!/usr/bin/env bash
# L7 benchmark: GET of a 4 KB ConfigMap from kube-sim through kfront (mode http: TLS
# termination, HTTP/2, re-encryption to the apiserver over HTTP/2) against HAProxy (mode http,
# the same TLS termination and re-encryption), same backend, same h2load client, same run.
# Prints requests/s, p50/p99 (from h2load's per-request log) and the kfront/HAProxy ratio,
# medians of ROUNDS. Both proxies forward the client's bearer token (kfront identity mode
# passthrough), so kube-sim authenticates each request the same way.
#
# HAProxy runs with `http-reuse always`, which is faster here than its default. h2load's 100
# concurrent streams still open about 70 HTTP/2 connections to the apiserver (kfront opens 4);
# with the default (`safe`, HAPROXY_REUSE=safe) about 90, and HAProxy is slower by about a
# seventh. HAPROXY_SERVER_OPTS adds options to HAProxy's server line: "pool-max-conn 4" holds
# it to 4 connections, like kfront; the ratio stays about the same.
#
#   bash bench/l7.sh            # needs a build: meson setup build && ninja -C build
#   ROUNDS=5 N=100000 bash bench/l7.sh
#   PROTO=h1 bash bench/l7.sh   # clients speak HTTP/1.1 (wrk, CONNS*STREAMS/5 keep-alive
#                               # connections for H1_SECONDS each); upstream is still HTTP/2
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-40000}
CONNS=${CONNS:-10}
STREAMS=${STREAMS:-10}
THREADS=${THREADS:-2}
KFRONT=${KFRONT:-build/proxy/kfront}
SIM=${KUBE_SIM:-build/loadgen/kube-sim/kube-sim}
PROTO=${PROTO:-h2}
H1_CONNS=$((CONNS * STREAMS / 5))
for t in haproxy h2load curl $([ "$PROTO" = h1 ] && echo wrk); do command -v $t >/dev/null || { echo "needs $t"; exit 1; }; done
[ -x "$KFRONT" ] && [ -x "$SIM" ] || { echo "build first (ninja -C build)"; exit 1; }

W=$(mktemp -d /tmp/kfront-bench7-XXXX)
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null; rm -rf $W; true' EXIT
BASE=${BASE_PORT:-27100}
SP=$((BASE+1)); HA=$((BASE+2)); KF=$((BASE+3)); KFA=$((BASE+9))

echo "token bench-token bench groups=system:masters" > $W/policy
"$SIM" --listen 127.0.0.1:$SP --cert-dir $W/pki --kubeconfig-out $W/kubeconfig --policy $W/policy \
  --nodes 10 --pods 100 --configmaps 100 --secrets 10 > $W/sim.out 2> $W/sim.log & echo $! > $W/sim.pid
for _ in $(seq 100); do grep -q "kube-sim ready" $W/sim.out 2>/dev/null && break; sleep 0.1; done
AUTH="Authorization: Bearer bench-token"
DATA=$(head -c 3000 /dev/urandom | base64 -w0 | head -c 3900)
curl -sf --cacert $W/pki/ca.crt -H "$AUTH" -H "Content-Type: application/json" \
  -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"bench-4k\"},\"data\":{\"blob\":\"$DATA\"}}" \
  https://127.0.0.1:$SP/api/v1/namespaces/default/configmaps > /dev/null
URLPATH=/api/v1/namespaces/default/configmaps/bench-4k
SIZE=$(curl -sf --cacert $W/pki/ca.crt -H "$AUTH" https://127.0.0.1:$SP$URLPATH | wc -c)

cat $W/pki/apiserver.crt $W/pki/apiserver.key > $W/serving.pem
cat > $W/haproxy.cfg <<HAP
global
  maxconn 8000
  nbthread $THREADS
defaults
  mode http
  option forwardfor
  http-reuse ${HAPROXY_REUSE:-always}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend api
  bind 127.0.0.1:$HA ssl crt $W/serving.pem alpn h2,http/1.1
  default_backend sim
backend sim
  server s1 127.0.0.1:$SP ssl verify required ca-file $W/pki/ca.crt alpn h2 ${HAPROXY_SERVER_OPTS:-}
HAP
haproxy -f $W/haproxy.cfg -D -p $W/haproxy.pid

cat > $W/kfront.yaml <<YAML
apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
workers: $THREADS
logLevel: warn
admin: {listen: "127.0.0.1:$KFA"}
identity: {mode: passthrough}
frontends:
  - name: api
    listen: ["127.0.0.1:$KF"]
    mode: http
    backend: sim
    tls: {certFile: $W/pki/apiserver.crt, keyFile: $W/pki/apiserver.key}
backends:
  - name: sim
    healthCheck: {type: tls, tls: {caFile: $W/pki/ca.crt}}
    upstreamTLS: {caFile: $W/pki/ca.crt}
    servers: [{name: s1, address: "127.0.0.1:$SP"}]
YAML
"$KFRONT" --config $W/kfront.yaml 2> $W/kfront.log & echo $! > $W/kfront.pid
for p in $HA $KF; do
  for _ in $(seq 100); do
    [ "$(curl -s --cacert $W/pki/ca.crt -H "$AUTH" -o /dev/null -w '%{http_code}' https://127.0.0.1:$p$URLPATH || true)" = 200 ] && break
    sleep 0.1
  done
done

run_h2load() { # port -> "rps p50_ms p99_ms"
  ${H2TIME:-} h2load -n "$N" -c "$CONNS" -m "$STREAMS" -t 1 -H "$AUTH" --log-file $W/h2.log \
    https://127.0.0.1:$1$URLPATH > $W/h2.out 2>&1
  grep -q " 0 failed, 0 errored" $W/h2.out || { echo "h2load errors (port $1), no figures:" >&2; grep -E "requests:|status codes" $W/h2.out >&2; exit 1; }
  /usr/bin/python3 - "$W/h2.out" "$W/h2.log" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
lat = sorted(int(l.split()[2]) for l in open(sys.argv[2]) if l.strip())
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0
print(rps, pct(0.50), pct(0.99))
PY
}
run_wrk() { # port -> "rps p50_ms p99_ms", clients on HTTP/1.1
  wrk -t1 -c "$H1_CONNS" -d "${H1_SECONDS:-5}s" --latency -H "$AUTH" \
    https://127.0.0.1:$1$URLPATH > $W/wrk.out 2>&1
  ! grep -qE "Non-2xx|Socket errors" $W/wrk.out || { echo "wrk errors (port $1), no figures:" >&2; cat $W/wrk.out >&2; exit 1; }
  /usr/bin/python3 - "$W/wrk.out" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
ms = lambda v, u: float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
print(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), pct["50"], pct["99"])
PY
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > $W/h; : > $W/k
if [ -n "${PROFILE:-}" ]; then  # PROFILE=1 (or haproxy): perf profile of kfront under the same load
  who=kfront port=$KF; [ "$PROFILE" = haproxy ] && who=haproxy port=$HA
  perf record -F 999 ${PERF_CG:--g} -p "$(head -1 $W/$who.pid)" -o $W/perf.data -- sleep 6 >/dev/null 2>&1 &
  perf_pid=$!  # not a bare wait: kube-sim and kfront are children too
  sleep 0.5; run_h2load $port > /dev/null; wait $perf_pid
  perf report -i $W/perf.data --no-children --sort dso --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -12
  perf report -i $W/perf.data --no-children --sort dso,sym --stdio -g none ${PERF_REPORT:-} --percent-limit ${PCT:-0.8} 2>/dev/null | grep -E "^ +[0-9]" | head -${TOP:-40}
  exit 0
fi
if [ -n "${HOLD:-}" ]; then  # HOLD=1: keep both proxies up for manual probing until killed
  echo "HAProxy https://127.0.0.1:$HA kfront https://127.0.0.1:$KF ca $W/pki/ca.crt path $URLPATH"
  sleep infinity
fi
cpu_ticks() { # utime+stime of a proxy, in clock ticks (100/s)
  awk '{ print $14 + $15 }' /proc/$(head -1 $W/$1.pid)/stat
}
if [ -n "${COST:-}${SYSCALLS:-}" ]; then
  # COST=1: CPU time per request (user+system) of each proxy, of kube-sim behind it and of
  # h2load, medians of ROUNDS; less noisy than requests/s on a shared machine.
  # SYSCALLS=1 adds an strace count of each proxy's system calls per request.
  per() { echo "($2 - $1) * 10000 / $N" | bc -l; }
  for _ in $(seq "$ROUNDS"); do
    for who in haproxy kfront; do
      port=$HA; [ $who = kfront ] && port=$KF
      p0=$(cpu_ticks $who); s0=$(cpu_ticks sim)
      H2TIME="/usr/bin/time -o $W/h2.time -f %U+%S" run_h2load $port > /dev/null
      p1=$(cpu_ticks $who); s1=$(cpu_ticks sim)
      echo "$(per $p0 $p1) $(per $s0 $s1) $(echo "($(cat $W/h2.time)) * 1000000 / $N" | bc -l)" >> $W/cost.$who
    done
  done
  echo "CPU per request (us, user+system), medians of $ROUNDS rounds of $N requests"
  printf "%-10s %8s %12s %8s %8s\n" proxy proxy "kube-sim" h2load total
  for who in haproxy kfront; do
    pr=$(cut -d' ' -f1 $W/cost.$who | median); sr=$(cut -d' ' -f2 $W/cost.$who | median)
    hr=$(cut -d' ' -f3 $W/cost.$who | median)
    printf "%-10s %8.1f %12.1f %8.1f %8.1f\n" $who $pr $sr $hr "$(echo "$pr + $sr + $hr" | bc -l)"
  done
  [ -n "${SYSCALLS:-}" ] || exit 0
  for who in haproxy kfront; do
    port=$HA; [ $who = kfront ] && port=$KF
    strace -c -f -p "$(head -1 $W/$who.pid)" -o $W/$who.strace & st=$!
    sleep 0.5; run_h2load $port > /dev/null; kill -INT $st; wait $st 2>/dev/null || true
    echo "$who: system calls per request"
    awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { if ($4 / n >= 0.05) printf "  %-16s %6.2f\n", $NF, $4 / n }' $W/$who.strace
  done
  exit 0
fi
run=run_h2load; [ "$PROTO" = h1 ] && run=run_wrk
for _ in $(seq "$ROUNDS"); do $run $HA >> $W/h; $run $KF >> $W/k; done
hr=$(cut -d' ' -f1 $W/h | median); h50=$(cut -d' ' -f2 $W/h | median); h99=$(cut -d' ' -f3 $W/h | median)
kr=$(cut -d' ' -f1 $W/k | median); k50=$(cut -d' ' -f2 $W/k | median); k99=$(cut -d' ' -f3 $W/k | median)
if [ "$PROTO" = h1 ]; then
  echo "GET of a ${SIZE}-byte ConfigMap, TLS both sides, clients on HTTP/1.1 (wrk -c $H1_CONNS, ${H1_SECONDS:-5} s), upstream HTTP/2, $THREADS threads each, $ROUNDS rounds (medians)"
else
  echo "GET of a ${SIZE}-byte ConfigMap, TLS + HTTP/2 both sides, h2load -n $N -c $CONNS -m $STREAMS, $THREADS threads each, $ROUNDS rounds (medians)"
fi
printf "%-10s %10s %9s %9s\n" proxy "req/s" "p50 ms" "p99 ms"
printf "%-10s %10.0f %9.2f %9.2f\n" HAProxy "$hr" "$h50" "$h99" kfront "$kr" "$k50" "$k99"
printf "kfront/HAProxy: %.2fx requests/s\n" "$(echo "$kr / $hr" | bc -l)"
