#!/usr/bin/env bash
# demo.sh SAECAP_BIN: the pipeline end to end on the bundled tiny model and
# demo data (configs/demo.yaml): writes the tiny model, then `saecap run`.
set -euo pipefail
bin=${1:-build/saecap}
cd "$(dirname "$0")/.."
out=demo-out

echo "== tiny random Gemma-3 checkpoint (Hugging Face layout)"
"$bin" tiny-model "$out/tiny-model" --seed 1234
echo "== inspect it"
"$bin" inspect "$out/tiny-model" | tail -n 4
echo "== the whole study: prepare, extract, train, sae-eval, analyze, steer, report"
echo "   (saecap run: a finished stage is skipped, an interrupted one resumes)"
"$bin" run --config configs/demo.yaml

cat <<EOM

demo finished. Outputs:
  $out/tiny-model/                          config.json, 2 bf16 shards + index, tokenizer, processor
  $out/data/processed/samples.jsonl         one validated row per sample, with its split
  $out/data/processed/prepare_report.json   counts per label and split, rejected rows
  $out/activations/<lang>/layer_<L>/         resid_post shards + manifest.json (en, ar)
  $out/captions/<lang>.jsonl                 one generated caption per sample and language
  $out/saes/layer_<L>/                       SAELens v6 SAE, sparsity, trainer state, training_log.jsonl
  $out/results/sae_metrics.json              SAE metrics per layer and language (docs/results/sae_metrics.md)
  $out/results/cross_lingual_analysis.json   RQ1 per layer (docs/results/cross_lingual_analysis.md)
  $out/results/feature_analysis.json         RQ2 gender features + cards (docs/results/feature_analysis.md)
  $out/results/morphology_analysis.json      RQ4 grammatical vs semantic (docs/results/morphology_analysis.md)
  $out/results/steering_experiments.json     RQ3 steering effects + costs (docs/results/steering_experiments.md)
  $out/results/steering_captions/            one <condition>.jsonl of captions and measures per condition
  $out/visualizations/                       every figure as SVG and PNG
  $out/stages/                               one record per finished stage (docs/results/stages.md)
EOM

echo "report: $out/report/report.html  (figures in $out/visualizations/, docs/results/report.md)"
