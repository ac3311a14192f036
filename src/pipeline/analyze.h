/* analyze.h: the `analyze` stage (issue 8): stored activations + SAEs ->
 * results/cross_lingual_analysis.json (RQ1), results/feature_analysis.json
 * (RQ2) and results/morphology_analysis.json (RQ4).
 *
 * Inputs under <output_dir>: data/processed/samples.jsonl (labels, image ids,
 * prompts), captions/<lang>.jsonl (caption text and ids per language),
 * activations/<lang>/layer_<L>/ (docs/store.md) and the shared EN+AR SAE
 * saes/layer_<L>/ of every analysed layer; the tokenizer of model.path
 * (token texts of feature cards and RQ4). Languages are extract.languages,
 * layers analyze.layers ("all" = every layer stored for every language).
 *
 * Per layer and language one pass over the store (analysis/pool.h) gives
 * the per-sample mean residual row of each of analyze.segments and, for the
 * first (primary) segment, the per-sample SAE feature reduction; RQ2
 * (analysis/features.h) runs on the latter, RQ1 (analysis/crossling.h) on
 * the former across layers, RQ4 (analysis/morphology.h) on the per-token
 * feature activations of the caption tokens.
 *
 * Label-leakage guard: a sample whose english_prompt or arabic_prompt (the
 * captions file's prompt, i.e. what the model saw, when samples.jsonl's is
 * empty) contains a gendered word (an_lexicon_scan_leaks) is counted and
 * listed in every results file, and with analyze.exclude_leaky_prompts
 * (default) left out of every statistic in both languages.
 *
 * Every file is written atomically and only after every computation
 * succeeded; each has "schema", "saecap_version", "config_hash" (FNV-1a 64
 * of the analyze settings, seed, languages, layers and the bytes of the
 * inputs' samples.jsonl, captions, manifests, SAE files and tokenizer.json)
 * and "dataset"
 * counts. A rerun whose three files already carry the same config_hash does
 * nothing (unless force). Deterministic for a seed.
 */
#ifndef SC_ANALYZE_H
#define SC_ANALYZE_H

#include <stdint.h>

#include "pipeline/config.h"

#define SC_FEATURE_ANALYSIS_SCHEMA "saecap.feature_analysis/1"

typedef struct sc_analyze_opts {
  int force; /* recompute even when the results are up to date */
} sc_analyze_opts;

typedef struct sc_analyze_summary {
  int up_to_date;      /* 1: nothing was recomputed */
  int n_layers, n_langs;
  int64_t n_samples;   /* rows of samples.jsonl */
  int64_t n_leaky;     /* samples with a gendered word in a prompt */
  int64_t n_excluded;  /* of them left out of the statistics */
  char *results_dir;   /* owned: <output_dir>/results */
} sc_analyze_summary;

/* Runs the stage. Errors (one line naming the file or key): SC_ERR_IO
 * "<path>: missing; run `saecap extract` first" (samples, captions,
 * activations of a configured layer), "<dir>: missing; run `saecap train`
 * first" (the layer's SAE); SC_ERR_ARG "<config>: analyze.layers: ...",
 * "<config>: analyze.segments: ...", "<config>: extract.languages: ...";
 * the readers' format errors; SC_ERR_NOMEM. *out is zeroed first. */
int sc_analyze_run(const sc_config *cfg, const sc_analyze_opts *o, sc_analyze_summary *out);
void sc_analyze_summary_free(sc_analyze_summary *s);

/* One line of captions/<lang>.jsonl as the stage reads it. */
typedef struct sc_caption_row {
  int64_t sample_index;
  char *prompt, *caption;  /* owned */
  int32_t *ids;            /* owned (n_ids) */
  int n_ids;
} sc_caption_row;

/* Parses captions jsonl text buf[0..len) (name in messages): one object per
 * non-blank line with sample_index (increasing), prompt, caption and
 * caption_ids. *rows is malloc'd (*n rows; free with sc_caption_rows_free).
 * Errors name the line: SC_ERR_FORMAT, SC_ERR_MISSING, SC_ERR_RANGE. */
int sc_caption_rows_parse(const char *buf, size_t len, const char *name, sc_caption_row **rows, int64_t *n);
void sc_caption_rows_free(sc_caption_row *rows, int64_t n);

#endif
