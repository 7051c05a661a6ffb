#!/usr/bin/env bash
# The L4 demo (bash tools/demo-l4.sh): installs what is missing, builds kfront, starts three local
# backends that stand in for apiservers, runs kfront in L4 mode in front of them, and shows
# round robin, failover when a backend dies, and the admin endpoints. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh >/dev/null
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
W=$(mktemp -d /tmp/kfront-demo-XXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for i in 1 2 3; do
  mkdir -p "$W/m$i"; echo ok > "$W/m$i/readyz"; echo "apiserver m$i" > "$W/m$i/id"
  (cd "$W/m$i" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 $((16450 + i)) >/dev/null 2>&1) &
  pids+=($!)
done
cat > "$W/kfront.yaml" <<YAML
apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
admin:
  listen: 127.0.0.1:16449
frontends:
  - name: kube-apiserver
    listen: ["127.0.0.1:16443"]
    mode: tcp
    backend: masters
backends:
  - name: masters
    balance: roundrobin
    healthCheck: {type: http, path: /readyz, interval: 500ms, timeout: 300ms, rise: 2, fall: 2}
    servers:
      - {name: m1, address: "127.0.0.1:16451"}
      - {name: m2, address: "127.0.0.1:16452"}
      - {name: m3, address: "127.0.0.1:16453"}
YAML
build/proxy/kfront --config "$W/kfront.yaml" &
pids+=($!)
sleep 2
echo "--- six requests through kfront (round robin):"
for _ in 1 2 3 4 5 6; do curl -s http://127.0.0.1:16443/id; done
echo "--- killing m1; kfront marks it down after 2 failed checks and retries refused connects:"
kill "${pids[0]}"; sleep 1.5
for _ in 1 2 3 4; do curl -s http://127.0.0.1:16443/id; done
echo "--- /readyz: $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:16449/readyz)"
echo "--- backend state (/metrics):"
curl -s http://127.0.0.1:16449/metrics | grep '^kfront_backend_up'
echo "--- kfront keeps running; Ctrl-C to stop (it drains first)."
wait "${pids[-1]}"
