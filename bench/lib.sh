# Shared by the cache benchmarks (sourced): kfront in mode http with its watch cache in front
# of one kube-sim, identity front-proxy, over kube-sim's PKI in $W/pki.
#   start_kfront_cached KFRONT_PORT ADMIN_PORT SIM_PORT RESOURCE [EXTRA_YAML]
# writes $W/kfront.yaml (EXTRA_YAML: more top-level lines), starts $KFRONT (pid in
# $W/kfront.pid, log in $W/kfront.log) and waits up to 60 s for RESOURCE's JSON store to fill.
start_kfront_cached() {
  local kf=$1 kfa=$2 sp=$3 resource=$4 extra=${5:-}
  cat > $W/kfront.yaml <<YAML
apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
logLevel: warn
admin: {listen: "127.0.0.1:$kfa"}
identity: {mode: front-proxy, proxyClientCertFile: $W/pki/front-proxy-client.crt,
           proxyClientKeyFile: $W/pki/front-proxy-client.key}
$extra
frontends:
  - name: api
    listen: ["127.0.0.1:$kf"]
    mode: http
    backend: sim
    tls: {certFile: $W/pki/apiserver.crt, keyFile: $W/pki/apiserver.key, clientCAFile: $W/pki/ca.crt}
backends:
  - name: sim
    healthCheck: {type: tls, interval: 1s, tls: {caFile: $W/pki/ca.crt}}
    upstreamTLS: {caFile: $W/pki/ca.crt}
    servers: [{name: s1, address: "127.0.0.1:$sp"}]
YAML
  "$KFRONT" --config $W/kfront.yaml 2> $W/kfront.log & echo $! > $W/kfront.pid
  for _ in $(seq 600); do
    curl -s http://127.0.0.1:$kfa/metrics 2>/dev/null |
      grep -q "kfront_cache_objects{resource=\"$resource\",format=\"json\"} [1-9]" && return 0
    sleep 0.1
  done
  echo "kfront's $resource cache did not fill" >&2
}
