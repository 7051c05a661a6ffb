#!/usr/bin/env bash
# The README's main command: installs what is missing, builds kfront, kube-sim and loadgen,
# starts a simulated 1,000-node cluster with writes going on (kube-sim), runs kfront in L7 mode
# with its watch cache in front of it (TLS, HTTP/2, front-proxy identity, SubjectAccessReview),
# starts simulated kubelets (loadgen) through kfront, and prints a live view every 2 s:
# watches clients hold vs watches kfront holds upstream, reads answered from the cache vs
# forwarded, events delivered and their latency. kubectl works through it too (printed below).
# Ctrl-C stops everything.
#   bash tools/demo.sh                      # DEMO_KUBELETS=300 DEMO_SECONDS=0 (0: until Ctrl-C)
#   APISERVER_KUBECONFIG=~/.kube/config bash tools/demo.sh   # a real cluster instead of kube-sim
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh >/dev/null
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
W=$(mktemp -d /tmp/kfront-demo-XXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 0' INT TERM
SIM=127.0.0.1:16551 SIMADMIN=127.0.0.1:16552 KF=127.0.0.1:16443 ADMIN=127.0.0.1:16449
KUBELETS=${DEMO_KUBELETS:-300}
SECONDS_RUN=${DEMO_SECONDS:-0}

build/loadgen/loadgen kubelets --write-policy "$W/policy" --nodes "$KUBELETS"
echo "allow user=system:kfront verbs=* resources=*" >> "$W/policy"
echo "starting kube-sim: 1,000 nodes, 25,000 pods, 15,000 configmaps, 200 writes/s ..."
build/loadgen/kube-sim/kube-sim --listen $SIM --admin-listen $SIMADMIN --cert-dir "$W/pki" \
  --kubeconfig-out "$W/sim.kubeconfig" --policy "$W/policy" \
  --nodes 1000 --pods 25000 --configmaps 15000 --secrets 5000 --churn 200 \
  > "$W/kube-sim.out" 2> "$W/kube-sim.log" &
pids+=($!)
for _ in $(seq 600); do grep -q "kube-sim ready" "$W/kube-sim.out" 2>/dev/null && break; sleep 0.1; done

cat > "$W/kfront.yaml" <<YAML
apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
logLevel: warn
admin:
  listen: $ADMIN
identity:
  mode: front-proxy
  proxyClientCertFile: $W/pki/front-proxy-client.crt
  proxyClientKeyFile: $W/pki/front-proxy-client.key
cache:
  enabled: true            # LIST/GET/WATCH answered from memory, authorized by SubjectAccessReview
frontends:
  - name: kube-apiserver
    listen: ["$KF"]
    mode: http
    backend: apiservers
    tls: {certFile: $W/pki/apiserver.crt, keyFile: $W/pki/apiserver.key, clientCAFile: $W/pki/ca.crt}
backends:
  - name: apiservers
    healthCheck: {type: tls, interval: 1s, tls: {caFile: $W/pki/ca.crt}}
    upstreamTLS: {caFile: $W/pki/ca.crt}
    servers:
      - {name: sim-1, address: "$SIM"}
YAML
build/proxy/kfront --config "$W/kfront.yaml" 2> "$W/kfront.log" &
pids+=($!)
sed "s#https://$SIM#https://$KF#" "$W/sim.kubeconfig" > "$W/kfront.kubeconfig"
for _ in $(seq 300); do
  curl -s "http://$ADMIN/metrics" | grep -q 'kfront_cache_objects{resource="pods",format="json"} [1-9]' && break
  sleep 0.1
done
export KUBECONFIG="$W/kfront.kubeconfig"
echo "--- kubectl through kfront (https://$KF):"
kubectl get nodes 2>&1 | sed -n 1,4p || true
echo "--- $KUBELETS simulated kubelets (HTTP/2, TLS, protobuf, node tokens) through kfront:"
build/loadgen/loadgen kubelets --kubeconfig "$W/kfront.kubeconfig" --nodes "$KUBELETS" \
  --duration "${SECONDS_RUN/#0/100000000}" --truth-kubeconfig "$W/sim.kubeconfig" \
  --truth-admin "http://$SIMADMIN" --progress 2 > "$W/loadgen.out" 2>&1 &
pids+=($!)
metric() { awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}' "$W/metrics"; }
sim_watches() { curl -s "http://$SIMADMIN/stats" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("watches", "?"))' 2>/dev/null || echo "?"; }
echo "(apiserver watches: what kube-sim serves, kfront's reflectors plus loadgen's 6 reference watches)"
printf "%8s %15s %18s %12s %10s   %s\n" time "client watches" "apiserver watches" "cache reads" "forwarded" "loadgen"
start=$(date +%s)
while kill -0 "${pids[-1]}" 2>/dev/null; do
  sleep 2
  curl -s "http://$ADMIN/metrics" > "$W/metrics" || continue
  printf "%7ss %15s %18s %12s %10s   %s\n" $(( $(date +%s) - start )) \
    "$(metric 'kfront_cache_watches ')" "$(sim_watches)" \
    "$(metric 'kfront_cache_requests_total{result="served"}')" \
    "$(metric 'kfront_cache_requests_total{result="forwarded"}')" \
    "$(tail -1 "$W/loadgen.out" | sed 's/^loadgen: *//')"
done
grep -v -E "^loadgen: +[0-9]+ s " "$W/loadgen.out" || true  # the verdict, and any view that differs
