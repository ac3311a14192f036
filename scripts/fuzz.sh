#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS: runs every libFuzzer target in BUILD_DIR for
# SECONDS each, starting from its seed corpus fuzz/corpus/<name>/ (copied to a
# scratch folder so the committed corpus stays small). Fails on any crash.
set -euo pipefail
build=$1; secs=$2
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  mkdir -p "$work/$name" "$here/fuzz/artifacts"
  seeds="$here/fuzz/corpus/${name#fuzz_}"
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work/$name"/
  echo "fuzz: $name for ${secs}s"
  ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -rss_limit_mb=4096 \
    -artifact_prefix="$here/fuzz/artifacts/$name-" "$work/$name" > "$work/$name.log" 2>&1 || {
    tail -40 "$work/$name.log"; echo "fuzz: $name crashed (artifact in fuzz/artifacts/)"; exit 1; }
  tail -1 "$work/$name.log"
  n=$((n+1))
done
echo "fuzz: $n targets ran without a crash"
