#!/usr/bin/env bash
# demo.sh SAECAP_BIN: the pipeline end to end on the bundled tiny model and
# demo data (configs/demo.yaml). Later stages are added here as they land.
set -euo pipefail
bin=${1:-build/saecap}
cd "$(dirname "$0")/.."
out=demo-out

echo "== 1/3 tiny random Gemma-3 checkpoint (Hugging Face layout)"
"$bin" tiny-model "$out/tiny-model" --seed 1234
echo "== 2/3 inspect it"
"$bin" inspect "$out/tiny-model" | tail -n 4
echo "== 3/3 prepare the demo dataset"
"$bin" prepare --config configs/demo.yaml

cat <<EOM

demo finished. Outputs:
  $out/tiny-model/                          config.json, 2 bf16 shards + index, tokenizer, processor
  $out/data/processed/samples.jsonl         one validated row per sample, with its split
  $out/data/processed/prepare_report.json   counts per label and split, rejected rows
EOM
