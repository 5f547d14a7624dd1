#!/usr/bin/env bash
# Runs each Check suite binary, prints its output, and closes with one line
# "N passed, N failed, N skipped" over all checks: a check that printed "SKIP: <test>: <why>"
# (testutil.h: TU_SKIP, e.g. a GPU case without a GPU) counts as skipped, not passed. Exits 1 if any
# suite failed or crashed.
set -u
passed=0; failed=0; skipped=0; bad_suites=()
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  # Check's summary: "100%: Checks: 12, Failures: 0, Errors: 0"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: [0-9]+' | tail -n 1)
  if [ -z "$line" ]; then
    bad_suites+=("$(basename "$t") (no summary, exit $rc)"); failed=$((failed + 1)); continue
  fi
  n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
  e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
  k=$(printf '%s\n' "$out" | grep -c '^SKIP: ')
  passed=$((passed + n - f - e - k)); failed=$((failed + f + e)); skipped=$((skipped + k))
  if [ "$rc" -ne 0 ] || [ $((f + e)) -ne 0 ]; then bad_suites+=("$(basename "$t")"); fi
done
echo
[ ${#bad_suites[@]} -gt 0 ] && echo "failing suites: ${bad_suites[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#bad_suites[@]} -eq 0 ]
