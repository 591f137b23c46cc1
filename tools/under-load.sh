#!/usr/bin/env bash
# Run a command while N CPU-bound busy loops keep the cores busy, then stop them; prints the wall time.
#   tools/under-load.sh 2 make test
# This is how the suite is shown to hold on a loaded machine (docs/testing.md).
set -euo pipefail
n=${1:?usage: $0 N command...}; shift
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for _ in $(seq "$n"); do
  sh -c 'while :; do :; done' &
  pids+=($!)
done
echo "under-load: $n busy loops (pids ${pids[*]}) while running: $*"
start=$(date +%s)
rc=0
"$@" || rc=$?
echo "under-load: exit $rc after $(( $(date +%s) - start )) s with $n busy loops"
exit "$rc"
