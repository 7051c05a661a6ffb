#!/bin/sh
# Build the codec's libFuzzer targets and run each for N seconds (default 30).
#   tests/fuzz/run.sh [seconds]
# Uses build-fuzz/ (clang, ASan+UBSan, coverage on the libraries too); seeds each
# target's corpus from ../shared/fixtures. Exits non-zero if any target finds a crash.
set -eu
secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
fixtures="$root/../shared/fixtures"
if [ ! -f "$build/build.ninja" ]; then
    CC=clang CFLAGS=-fsanitize=fuzzer-no-link meson setup "$build" "$root" -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
fi
ninja -C "$build" -j2 \
    tests/fuzz/fuzz_envelope tests/fuzz/fuzz_json_meta tests/fuzz/fuzz_pb_meta \
    tests/fuzz/fuzz_watch_stream tests/fuzz/fuzz_label_selector tests/fuzz/fuzz_field_selector

seed() { # target, files...
    dir="$build/fuzz-corpus/$1"
    shift
    mkdir -p "$dir"
    for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null || true; done
}
seed envelope "$fixtures"/k8s-api/*.pb "$fixtures"/recordings/*protobuf.body.bin
seed json_meta "$fixtures"/k8s-api/*.json "$fixtures"/recordings/get-pod-json.body.bin
seed pb_meta "$fixtures"/k8s-api/*.pb
seed watch_stream "$fixtures"/recordings/watch-*.body.bin
mkdir -p "$build/fuzz-corpus/label_selector" "$build/fuzz-corpus/field_selector"
printf 'app=web,tier in (a,b),!x' >"$build/fuzz-corpus/label_selector/s1"
printf '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless' \
    >"$build/fuzz-corpus/label_selector/s2"
printf '\001spec.nodeName=node-1,metadata.name!=a\\,b' >"$build/fuzz-corpus/field_selector/s1"

status=0
for t in envelope json_meta pb_meta watch_stream label_selector field_selector; do
    echo "== fuzz_$t for ${secs}s"
    mkdir -p "$build/fuzz-artifacts/$t"
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -artifact_prefix="$build/fuzz-artifacts/$t/" -print_final_stats=0 \
        "$build/fuzz-corpus/$t" 2>"$build/fuzz-artifacts/$t/log.txt"; then
        echo "   CRASH: see $build/fuzz-artifacts/$t/"
        tail -30 "$build/fuzz-artifacts/$t/log.txt"
        status=1
    else
        grep -E '^#[0-9]+.*(DONE|pulse)' "$build/fuzz-artifacts/$t/log.txt" | tail -1 || true
    fi
done
exit $status
