#!/usr/bin/env bash
# demo.sh SAECAP_BIN: the pipeline end to end on the bundled tiny model and
# demo data (configs/demo.yaml). Later stages are added here as they land.
set -euo pipefail
bin=${1:-build/saecap}
cd "$(dirname "$0")/.."
out=demo-out

echo "== 1/4 tiny random Gemma-3 checkpoint (Hugging Face layout)"
"$bin" tiny-model "$out/tiny-model" --seed 1234
echo "== 2/4 inspect it"
"$bin" inspect "$out/tiny-model" | tail -n 4
echo "== 3/4 prepare the demo dataset"
"$bin" prepare --config configs/demo.yaml
echo "== 4/4 extract captions and activations (resumes if run before)"
"$bin" extract --config configs/demo.yaml

cat <<EOM

demo finished. Outputs:
  $out/tiny-model/                          config.json, 2 bf16 shards + index, tokenizer, processor
  $out/data/processed/samples.jsonl         one validated row per sample, with its split
  $out/data/processed/prepare_report.json   counts per label and split, rejected rows
  $out/activations/<lang>/layer_<L>/         resid_post shards + manifest.json (en, ar)
  $out/captions/<lang>.jsonl                 one generated caption per sample and language
EOM
