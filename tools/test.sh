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
  # Count test cases, not executables: Criterion's synthesis lines and the integration
  # scripts' "N passed, N failed" lines; a test executable that died counts as one failure.
  local counts
  counts=$(awk '
    /Synthesis: Tested:/ { for (i = 1; i <= NF; i++) { if ($i == "Passing:") p += $(i+1); if ($i == "Failing:" || $i == "Crashing:") f += $(i+1) } }
    /^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3 }
    /^(Fail|Timeout):/ { exe += $NF }
    END { print p+0, f+0, exe+0 }' "$log")
  set -- $counts
  pass=$((pass + $1))
  fail=$((fail + $2))
  if [ "$2" -eq 0 ] && [ "$3" -gt 0 ]; then fail=$((fail + $3)); fi
  return $rc
}

run_suite build -Dbuildtype=debugoptimized || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false || status=1

echo "tests: $pass passed, $fail failed"
exit $status
