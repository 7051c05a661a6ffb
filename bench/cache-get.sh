#!/usr/bin/env bash
# Cached GET benchmark: GET ?resourceVersion=0 of a 4 KB ConfigMap answered by kfront from its
# watch cache (TLS, HTTP/2, the client's bearer token reviewed and the SubjectAccessReview
# decision cached, as for any non-admin user) against nginx serving the same bytes as a file
# with the same certificate, TLS and HTTP/2, same number of workers, same h2load client, same
# run. kube-sim's own figure (the apiserver without kfront) is printed for scale.
# Prints requests/s, p50/p99 and the kfront/nginx ratio, medians of ROUNDS.
#
#   bash bench/cache-get.sh            # needs a build: meson setup build && ninja -C build
#   ROUNDS=5 N=200000 THREADS=1 bash bench/cache-get.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
CONNS=${CONNS:-10}
STREAMS=${STREAMS:-10}
THREADS=${THREADS:-2}
KFRONT=${KFRONT:-build/proxy/kfront}
SIM=${KUBE_SIM:-build/loadgen/kube-sim/kube-sim}
for t in nginx h2load curl; do command -v $t >/dev/null || { echo "needs $t (apt-get install -y nginx nghttp2-client)"; exit 1; }; done
[ -x "$KFRONT" ] && [ -x "$SIM" ] || { echo "build first (ninja -C build)"; exit 1; }

W=$(mktemp -d /tmp/kfront-benchget-XXXX)
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null; rm -rf $W; true' EXIT
BASE=${BASE_PORT:-27300}
SP=$((BASE+1)); NG=$((BASE+2)); KF=$((BASE+3)); KFA=$((BASE+9))

cat > $W/policy <<POL
token bench-token bench
allow user=bench verbs=get,list,watch resources=configmaps
allow user=system:kfront verbs=* resources=*
POL
"$SIM" --listen 127.0.0.1:$SP --cert-dir $W/pki --kubeconfig-out $W/kubeconfig --policy $W/policy \
  --nodes 10 --pods 100 --configmaps 100 --secrets 10 > $W/sim.out 2> $W/sim.log & echo $! > $W/sim.pid
for _ in $(seq 100); do grep -q "kube-sim ready" $W/sim.out 2>/dev/null && break; sleep 0.1; done
AUTH="Authorization: Bearer bench-token"
ADM=(--cacert $W/pki/ca.crt --cert $W/pki/admin.crt --key $W/pki/admin.key)
DATA=$(head -c 3000 /dev/urandom | base64 -w0 | head -c 3900)
curl -sf "${ADM[@]}" -H "Content-Type: application/json" \
  -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"bench-4k\"},\"data\":{\"blob\":\"$DATA\"}}" \
  https://127.0.0.1:$SP/api/v1/namespaces/default/configmaps > /dev/null
URLPATH="/api/v1/namespaces/default/configmaps/bench-4k?resourceVersion=0"
mkdir -p $W/www/api/v1/namespaces/default/configmaps
curl -sf "${ADM[@]}" -A bench "https://127.0.0.1:$SP$URLPATH" > $W/www/api/v1/namespaces/default/configmaps/bench-4k
SIZE=$(wc -c < $W/www/api/v1/namespaces/default/configmaps/bench-4k)
# nginx started by root reads as nobody, and mktemp -d makes $W 0700: without this it serves 403s
chmod 755 $W && chmod -R a+rX $W/www

cat > $W/nginx.conf <<NGX
worker_processes $THREADS;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000; # default 1000: nginx would end each connection mid-run
  server {
    listen 127.0.0.1:$NG ssl http2;
    ssl_certificate $W/pki/apiserver.crt;
    ssl_certificate_key $W/pki/apiserver.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $W/www;
    location / { default_type application/json; }
  }
}
NGX
nginx -c $W/nginx.conf

start_kfront_cached $KF $KFA $SP configmaps "workers: $THREADS
authorization: {group: \"\"}
cache: {resources: [configmaps]}"
for p in $NG $KF $SP; do
  for _ in $(seq 100); do
    code=$(curl -s --cacert $W/pki/ca.crt -H "$AUTH" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p$URLPATH" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "port $p answers $code, not 200: no figures" >&2; exit 1; }
done
cmp -s <(curl -s --cacert $W/pki/ca.crt -H "$AUTH" -A bench "https://127.0.0.1:$KF$URLPATH") \
  $W/www/api/v1/namespaces/default/configmaps/bench-4k && same="same bytes as the apiserver" || same="BYTES DIFFER"

run_h2load() { # port n -> "rps p50_ms p99_ms"
  h2load -n "$2" -c "$CONNS" -m "$STREAMS" -t "$THREADS" -H "$AUTH" --log-file $W/h2.log \
    "https://127.0.0.1:$1$URLPATH" > $W/h2.out 2>&1
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
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > $W/n; : > $W/k
if [ -n "${SYSCALLS:-}" ]; then  # SYSCALLS=1: system calls per request, kfront and nginx
  for who in kfront nginx; do
    if [ $who = kfront ]; then pid=$(cat $W/kfront.pid); port=$KF; else pid=$(pgrep -f "nginx: worker" | head -1); port=$NG; fi
    timeout 5 strace -c -f -p $pid -o $W/strace.$who >/dev/null 2>&1 & spid=$!
    sleep 0.5; run_h2load $port $N > /dev/null; wait $spid || true
    echo "== $who ($N requests)"; head -12 $W/strace.$who
  done
  exit 0
fi
if [ -n "${PROFILE:-}" ]; then  # PROFILE=1: where kfront spends its time under this load
  perf record -F 999 -g -p "$(cat $W/kfront.pid)" -o $W/perf.data -- sleep 4 >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.3; run_h2load $KF $N; wait $perf_pid
  perf report -i $W/perf.data --no-children --sort dso --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -12
  perf report -i $W/perf.data --no-children --sort sym --stdio -g caller,0.5,callee,function,percent --percent-limit 1.5 2>/dev/null | grep -v "^$" | head -120
  exit 0
fi
for _ in $(seq "$ROUNDS"); do run_h2load $NG $N >> $W/n; run_h2load $KF $N >> $W/k; done
run_h2load $SP $((N / 5)) > $W/s
col() { cut -d' ' -f$2 $W/$1 | median; }
echo "GET ?resourceVersion=0 of a ${SIZE}-byte ConfigMap ($same), TLS + HTTP/2, h2load -n $N -c $CONNS -m $STREAMS, $THREADS workers each, $ROUNDS rounds (medians)"
printf "%-22s %10s %9s %9s\n" server "req/s" "p50 ms" "p99 ms"
printf "%-22s %10.0f %9.2f %9.2f\n" "nginx (file)" "$(col n 1)" "$(col n 2)" "$(col n 3)" \
  "kfront (cache)" "$(col k 1)" "$(col k 2)" "$(col k 3)" "kube-sim (no kfront)" "$(col s 1)" "$(col s 2)" "$(col s 3)"
printf "kfront/nginx: %.2fx requests/s\n" "$(echo "$(col k 1) / $(col n 1)" | bc -l)"
curl -s http://127.0.0.1:$KFA/metrics | grep -E '^kfront_cache_requests_total|^kfront_authz_requests_total' | sed 's/^/  /'
