#!/usr/bin/env bash
# The README's main command: installs what is missing, builds kfront and kube-sim, starts a
# simulated cluster (kube-sim: 200 nodes, 6,000 pods, churn), runs kfront in L7 mode in front
# of it (TLS, HTTP/2, front-proxy identity), and talks to it through kfront with kubectl.
# Ctrl-C stops everything. Pass an apiserver kubeconfig? Not yet: see README.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh >/dev/null
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
W=$(mktemp -d /tmp/kfront-demo-XXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
SIM=127.0.0.1:16551 KF=127.0.0.1:16443 ADMIN=127.0.0.1:16449

build/loadgen/kube-sim/kube-sim --listen $SIM --cert-dir "$W/pki" --kubeconfig-out "$W/sim.kubeconfig" \
  --nodes 200 --pods 6000 --configmaps 1000 --secrets 1000 --churn 20 2>"$W/kube-sim.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$W/sim.kubeconfig" ] && break; sleep 0.1; done

cat > "$W/kfront.yaml" <<YAML
apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
admin:
  listen: $ADMIN
identity:
  mode: front-proxy
  proxyClientCertFile: $W/pki/front-proxy-client.crt
  proxyClientKeyFile: $W/pki/front-proxy-client.key
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
build/proxy/kfront --config "$W/kfront.yaml" 2>"$W/kfront.log" &
pids+=($!)
sed "s#https://$SIM#https://$KF#" "$W/sim.kubeconfig" > "$W/kfront.kubeconfig"
for _ in $(seq 100); do curl -sf http://$ADMIN/readyz >/dev/null && break; sleep 0.1; done
export KUBECONFIG="$W/kfront.kubeconfig"
echo "--- kubectl through kfront (https://$KF) to kube-sim (https://$SIM):"
kubectl get nodes | sed -n 1,5p
kubectl get pods -A | sed -n 1,5p
echo "--- kfront's view (/metrics):"
curl -s http://$ADMIN/metrics | grep -E '^kfront_http_requests_total|^kfront_backend_up'
echo "--- try it: KUBECONFIG=$W/kfront.kubeconfig kubectl get pods -w   (Ctrl-C stops the demo)"
wait "${pids[-1]}"
