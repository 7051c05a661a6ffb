#!/usr/bin/env bash
# Builds kfront with warnings as errors, runs every unit and integration test,
# then builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# them all once more. Prints "N passed, N failed" at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
status=0
pass=0
fail=0

run_suite() { # dir, extra meson args...
  local dir=$1; shift
  if [ ! -d "$dir" ]; then
    meson setup "$dir" "$@" >/dev/null || return 1
  fi
  ninja -C "$dir" -j "$jobs" || return 1
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs
  local rc=$?
  local log="$dir/meson-logs/testlog.txt"
  local ok bad
  ok=$(awk '/^Ok:/ {print $2}' "$log" | tail -n1)
  bad=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {s+=$NF} END {print s+0}' "$log")
  pass=$((pass + ${ok:-0}))
  fail=$((fail + ${bad:-0}))
  return $rc
}

run_suite build -Dbuildtype=debugoptimized || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false || status=1

echo "tests: $pass passed, $fail failed"
exit $status
