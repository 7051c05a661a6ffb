#!/usr/bin/env bash
# Cache LIST benchmark: LIST resourceVersion=0 of every pod of a 5,000-node / 150,000-pod
# cluster, answered by kfront from its watch cache, against kube-sim answering the same LIST
# from its own store, same curl client (TLS, HTTP/2), same run. JSON and protobuf. Prints
# bytes/s, the medians of ROUNDS, and the kfront/kube-sim ratio; checks both bodies are equal.
#
#   bash bench/cache-list.sh                 # needs a build: meson setup build && ninja -C build
#   NODES=1000 PODS=30000 ROUNDS=5 bash bench/cache-list.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
NODES=${NODES:-5000}
PODS=${PODS:-150000}
KFRONT=${KFRONT:-build/proxy/kfront}
SIM=${KUBE_SIM:-build/loadgen/kube-sim/kube-sim}
[ -x "$KFRONT" ] && [ -x "$SIM" ] || { echo "build first (ninja -C build)"; exit 1; }

W=$(mktemp -d /tmp/kfront-benchlist-XXXX)
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null; rm -rf $W; true' EXIT
BASE=${BASE_PORT:-27200}
SP=$((BASE+1)); KF=$((BASE+3)); KFA=$((BASE+9))

"$SIM" --listen 127.0.0.1:$SP --cert-dir $W/pki --kubeconfig-out $W/kubeconfig \
  --nodes $NODES --pods $PODS --configmaps 100 --secrets 100 > $W/sim.out 2> $W/sim.log &
echo $! > $W/sim.pid
for _ in $(seq 1200); do grep -q "kube-sim ready" $W/sim.out 2>/dev/null && break; sleep 0.1; done
start_kfront_cached $KF $KFA $SP pods "cache: {resources: [pods]}"
C=(-s --cacert $W/pki/ca.crt --cert $W/pki/admin.crt --key $W/pki/admin.key -A bench)
PB="application/vnd.kubernetes.protobuf"
ready() { # until the store of that format is filled (a protobuf store starts on first demand)
  for _ in $(seq 1800); do
    curl "${C[@]}" -H "Accept: $1" -o /dev/null "https://127.0.0.1:$KF/api/v1/pods?resourceVersion=0&limit=1&fieldSelector=metadata.name%3Dx"
    curl -s http://127.0.0.1:$KFA/metrics | grep -q "kfront_cache_objects{resource=\"pods\",format=\"$2\"} [1-9]" && return 0
    sleep 0.5
  done; echo "cache did not fill"; exit 1; }
speed() { curl "${C[@]}" -H "Accept: $2" -o /dev/null -w '%{speed_download}\n' "https://127.0.0.1:$1/api/v1/pods?resourceVersion=0"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "LIST resourceVersion=0 of $PODS pods ($NODES nodes), curl over TLS + HTTP/2, median of $ROUNDS"
for fmt in json protobuf; do
  acc=application/json; [ $fmt = protobuf ] && acc=$PB
  ready $acc $fmt
  a=$(curl "${C[@]}" -H "Accept: $acc" "https://127.0.0.1:$KF/api/v1/pods?resourceVersion=0" | md5sum)
  b=$(curl "${C[@]}" -H "Accept: $acc" "https://127.0.0.1:$SP/api/v1/pods?resourceVersion=0" | md5sum)
  [ "$a" = "$b" ] && same="bodies identical" || same="BODIES DIFFER (churn off: they should not)"
  k=$(for i in $(seq $ROUNDS); do speed $KF $acc; done | median)
  s=$(for i in $(seq $ROUNDS); do speed $SP $acc; done | median)
  awk -v f=$fmt -v k=$k -v s=$s -v same="$same" 'BEGIN {printf "%-8s kfront %7.0f MB/s   kube-sim %7.0f MB/s   ratio %.2fx   (%s)\n", f, k/1e6, s/1e6, k/s, same}'
done
echo "kfront RSS $(( $(awk '/VmRSS/ {print $2}' /proc/$(cat $W/kfront.pid)/status) / 1024 )) MiB"
