#!/usr/bin/env bash
# L4 benchmark: kfront (mode tcp) against HAProxy (mode tcp) in front of the same nginx
# backends, driven by the same wrk client, in the same run. Prints requests/s, p50/p99
# latency, and the kfront/HAProxy ratio for each scenario (median of ROUNDS runs).
#
#   bash bench/l4.sh            # build kfront first: meson setup build && ninja -C build
#   ROUNDS=5 DURATION=10 bash bench/l4.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}       # proxy threads for both kfront and HAProxy
KFRONT=${KFRONT:-build/proxy/kfront}
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx-light)"; exit 1; }
command -v haproxy >/dev/null && command -v wrk >/dev/null || { echo "needs haproxy and wrk"; exit 1; }
[ -x "$KFRONT" ] || { echo "build kfront first (ninja -C build)"; exit 1; }

W=$(mktemp -d /tmp/kfront-bench-XXXX)
chmod 755 "$W"   # nginx workers run unprivileged and must read the files
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null; nginx -p $W -c $W/nginx.conf -s stop 2>/dev/null; rm -rf $W; true' EXIT
BASE=${BASE_PORT:-27000}
B1=$((BASE+1)); B2=$((BASE+2)); B3=$((BASE+3)); T1=$((BASE+11)); T2=$((BASE+12)); T3=$((BASE+13))
HA=$((BASE+20)); HAT=$((BASE+21)); KF=$((BASE+30)); KFT=$((BASE+31)); KFA=$((BASE+39))

openssl req -x509 -newkey rsa:2048 -nodes -keyout $W/key.pem -out $W/cert.pem -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
head -c 4096 /dev/urandom | base64 -w0 | head -c 4096 > $W/obj4k
head -c 8388608 /dev/zero > $W/big8m
cat > $W/nginx.conf <<NGX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; listen 127.0.0.1:$B3; root $W; }
  server { listen 127.0.0.1:$T1 ssl; listen 127.0.0.1:$T2 ssl; listen 127.0.0.1:$T3 ssl; root $W;
           ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; }
}
NGX
nginx -p $W -c $W/nginx.conf

cat > $W/haproxy.cfg <<HAP
global
  maxconn 8000
  nbthread $THREADS
defaults
  mode tcp
  timeout connect 5000ms
  timeout client 50000ms
  timeout server 50000ms
frontend plain
  bind 127.0.0.1:$HA
  default_backend plain
frontend tls
  bind 127.0.0.1:$HAT
  default_backend tls
backend plain
  balance roundrobin
  option tcp-check
  server m1 127.0.0.1:$B1 check inter 2000 rise 2 fall 3
  server m2 127.0.0.1:$B2 check inter 2000 rise 2 fall 3
  server m3 127.0.0.1:$B3 check inter 2000 rise 2 fall 3
backend tls
  balance roundrobin
  option tcp-check
  server m1 127.0.0.1:$T1 check inter 2000 rise 2 fall 3
  server m2 127.0.0.1:$T2 check inter 2000 rise 2 fall 3
  server m3 127.0.0.1:$T3 check inter 2000 rise 2 fall 3
HAP
haproxy -f $W/haproxy.cfg -D -p $W/haproxy.pid

# kfront reads the very same haproxy.cfg, with its ports moved.
sed -e "s/:$HA\$/:$KF/" -e "s/:$HAT\$/:$KFT/" $W/haproxy.cfg > $W/kfront-haproxy.cfg
"$KFRONT" --haproxy-config $W/kfront-haproxy.cfg --workers $THREADS --admin-listen 127.0.0.1:$KFA \
  --log-level warn 2>$W/kfront.log & echo $! > $W/kfront.pid
for _ in $(seq 50); do curl -sf http://127.0.0.1:$KFA/readyz >/dev/null && break; sleep 0.1; done
chmod 644 $W/obj4k $W/big8m
for p in $HA $KF; do  # both proxies up, their health checks passed, the file served whole
  ok=
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{size_download}' http://127.0.0.1:$p/big8m || true)" = 8388608 ] && { ok=1; break; }
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "bench: no 8 MB answer through port $p (kfront log: $W/kfront.log)" >&2; cat $W/kfront.log >&2; exit 1; }
done

run_wrk() { # url extra-args... -> "rps p50_ms p99_ms"
  local url=$1; shift
  wrk -t 1 -c "$CONNS" -d "${DURATION}s" --latency "$@" "$url" 2>/dev/null | /usr/bin/python3 -c '
import re, sys
t = sys.stdin.read()
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
lat = dict((p, ms(v, u)) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", t))
tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", t)
print(rps, lat["50"], lat["99"], tr.group(1) + tr.group(2))'
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ONLY=${ONLY:-}   # e.g. ONLY=stream runs only the scenarios whose name contains "stream"
scenario() { # name path scheme extra-args...
  local name=$1 path=$2 scheme=$3; shift 3
  [[ -z "$ONLY" || "$name" == *"$ONLY"* ]] || return 0
  local hp kp
  if [ "$scheme" = https ]; then hp=$HAT; kp=$KFT; else hp=$HA; kp=$KF; fi
  : > $W/h; : > $W/k
  for r in $(seq "$ROUNDS"); do
    run_wrk "$scheme://127.0.0.1:$hp$path" "$@" >> $W/h
    run_wrk "$scheme://127.0.0.1:$kp$path" "$@" >> $W/k
  done
  local hr hp50 hp99 kr kp50 kp99 htr ktr
  hr=$(cut -d' ' -f1 $W/h | median); hp50=$(cut -d' ' -f2 $W/h | median); hp99=$(cut -d' ' -f3 $W/h | median)
  kr=$(cut -d' ' -f1 $W/k | median); kp50=$(cut -d' ' -f2 $W/k | median); kp99=$(cut -d' ' -f3 $W/k | median)
  htr=$(tail -1 $W/h | cut -d' ' -f4); ktr=$(tail -1 $W/k | cut -d' ' -f4)
  printf "%-28s %10.0f %8.2f %8.2f %9s | %10.0f %8.2f %8.2f %9s | %5.2fx\n" "$name" \
    "$hr" "$hp50" "$hp99" "$htr" "$kr" "$kp50" "$kp99" "$ktr" "$(echo "$kr / $hr" | bc -l)"
}

echo "kfront vs HAProxy $(haproxy -v | head -1 | awk '{print $3}'), mode tcp, $THREADS threads each, wrk -c $CONNS, ${DURATION}s x $ROUNDS rounds (medians)"
printf "%-28s %10s %8s %8s %9s | %10s %8s %8s %9s | %6s\n" scenario "HAP req/s" "p50 ms" "p99 ms" "xfer/s" \
  "kfront r/s" "p50 ms" "p99 ms" "xfer/s" ratio
scenario "4KB GET keep-alive"        /obj4k http
scenario "4KB GET new conn each"     /obj4k http -H "Connection: close"
scenario "4KB GET TLS passthrough"   /obj4k https
scenario "8MB stream"                /big8m http
scenario "8MB stream TLS passthrough" /big8m https
