#!/usr/bin/env bash
# Runs the libFuzzer targets (build/fuzz/fuzz_*, made by `make fuzz`).
#   fuzz/run.sh smoke SECONDS TARGET...            each target for SECONDS on its committed corpus (make fuzz-smoke)
#   fuzz/run.sh campaign SECONDS PROCS TARGET...   PROCS processes per target at once, SECONDS each; a table of
#                                                  executions, coverage and failures (results/fuzz/)
# Every run: ASan + UBSan, -rss_limit_mb=2048 (an allocation past 2 GB is a failure), -timeout=10 (an input
# taking 10 s is a failure). New corpus entries go to build/fuzz/corpus/TARGET, crash inputs to
# build/fuzz/artifacts/. Closes with "fuzz: N passed, N failed" (a target passes with no crash, sanitizer
# report, timeout or OOM). Exit 1 if any target failed.
set -u
cd "$(dirname "$0")/.."
mode=${1:?mode}; secs=${2:?seconds}; shift 2
procs=1
if [ "$mode" = campaign ]; then procs=${1:?procs}; shift; fi
logs=build/fuzz/logs/$mode; mkdir -p "$logs" build/fuzz/artifacts
export OMP_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1
pids=()
for t in "$@"; do
  mkdir -p "build/fuzz/corpus/$t"
  for k in $(seq 1 "$procs"); do
    # -close_fd_mask=1: the CLI's stdout (dry-run configs) is noise; errors and sanitizer reports go to stderr
    # absolute paths: each target works in a folder of its own
    "$PWD/build/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -seed="$k" \
      -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$PWD/build/fuzz/artifacts/${t}-" \
      "$PWD/build/fuzz/corpus/$t" "$PWD/fuzz/corpus/$t" >"$logs/$t.$k.log" 2>&1 &
    pids+=("$!:$t:$k")
  done
done
declare -A execs cov ft bad
for p in "${pids[@]}"; do
  pid=${p%%:*}; rest=${p#*:}; t=${rest%%:*}; k=${rest#*:}
  wait "$pid"; rc=$?
  log="$logs/$t.$k.log"
  n=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n1 | awk '{print $2}')
  c=$(grep -E '^#[0-9]+' "$log" | grep -oE 'cov: [0-9]+' | tail -n1 | awk '{print $2}')
  f=$(grep -E '^#[0-9]+' "$log" | grep -oE 'ft: [0-9]+' | tail -n1 | awk '{print $2}')
  execs[$t]=$(( ${execs[$t]:-0} + ${n:-0} ))
  [ "${c:-0}" -gt "${cov[$t]:-0}" ] && cov[$t]=$c
  [ "${f:-0}" -gt "${ft[$t]:-0}" ] && ft[$t]=$f
  if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|ALARM: working' "$log"; then
    bad[$t]=1
    echo "fuzz: $t (process $k) FAILED (exit $rc): $log"
    grep -E 'ERROR:|runtime error:|ALARM|SUMMARY|Test unit written' "$log" | head -n 8
  fi
done
passed=0; failed=0; total=0
printf '\n| target | processes | seconds each | executions | exec/s | coverage (edges) | features | result |\n|---|---|---|---|---|---|---|---|\n'
for t in "$@"; do
  e=${execs[$t]:-0}; total=$((total + e))
  r=passed; if [ -n "${bad[$t]:-}" ]; then r=FAILED; failed=$((failed + 1)); else passed=$((passed + 1)); fi
  printf '| %s | %d | %d | %d | %d | %s | %s | %s |\n' "$t" "$procs" "$secs" "$e" $((e / (secs * procs))) "${cov[$t]:-?}" "${ft[$t]:-?}" "$r"
done
printf '| all | | | %d | | | | |\n\n' "$total"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
