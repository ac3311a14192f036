#!/usr/bin/env bash
# bench.sh BUILD_DIR: runs every benchmark program in BUILD_DIR from the
# repository root. Each prints its own figures next to a baseline measured in
# the same run. Run on an idle machine.
set -euo pipefail
build=$1
cd "$(dirname "$0")/.."
n=0
for bin in "$build"/bench_*; do
  [ -x "$bin" ] || continue
  echo "== $(basename "$bin")"
  "$bin"
  n=$((n+1))
done
[ "$n" -gt 0 ] || echo "bench: no benchmarks built yet"
