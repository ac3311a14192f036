/* crossling.h: RQ1 — where the English and Arabic gender representations
 * diverge across layers, in residual space (shared coordinates, so no SAE
 * feature matching is needed).
 *
 * Input: for each analysed layer, the per-sample pooled activations of the
 * same samples in both languages ([n, d] f32, row-major, same rows in the
 * same order: row i of `en` and of `ar` are the EN and AR captions of the
 * same sample), the samples' labels (SC_LABEL_* from pipeline/prepare.h;
 * only male and female rows are used, others are ignored) and image ids
 * (the bootstrap and the probe folds resample / split whole images).
 *
 * Per layer and language: the gender direction (mean female − mean male)
 * and its norm; the cosine of the EN and AR directions with a bootstrap CI
 * over images and a label-permutation p-value (the EN and AR activations of
 * one image are correlated, so even random labels give a positive cosine:
 * the null matters); probe accuracy (an_probe, grouped k-fold) within EN,
 * within AR and transferred EN→AR and AR→EN, each with a bootstrap CI over
 * images; linear CKA of the EN and AR representations. Across layers: the
 * divergence layer (largest drop of agreement between consecutive analysed
 * layers) for two agreement measures, each with a bootstrap CI. The exact
 * definitions and the JSON schema are in docs/results/cross_lingual_analysis.md.
 *
 * Degenerate input (fewer than cfg->min_per_label rows of a label, fewer
 * images than folds, one layer only) is a documented skip recorded in the
 * JSON ("status"/"skip_reason"), never a NaN.
 *
 * Typical use (analysis stage):
 *   sc_json *root; an_crossling_root(&cfg->analyze, cfg->seed, &root);
 *   sc_json *seg;  an_crossling_run(&in, &cfg->analyze, cfg->seed, &seg);
 *   an_crossling_add_segment(root, "caption", seg);   // root owns seg
 *   ... add the stage's own keys, print, write atomically, sc_json_free(root).
 */
#ifndef AN_CROSSLING_H
#define AN_CROSSLING_H

#include <stddef.h>
#include <stdint.h>

#include "io/json.h"
#include "pipeline/config.h"

#define AN_CROSSLING_SCHEMA "saecap.cross_lingual_analysis/1"

typedef struct an_crossling_input {
  size_t n;                /* rows (samples) */
  size_t d;                /* residual width */
  size_t n_layers;         /* analysed layers, in the order they are compared */
  const int *layers;       /* [n_layers] model layer index of each matrix */
  const float *const *en;  /* [n_layers] → [n, d] pooled EN activations */
  const float *const *ar;  /* [n_layers] → [n, d] pooled AR activations (same rows) */
  const int *labels;       /* [n] SC_LABEL_*; rows other than male/female are left out */
  const uint64_t *groups;  /* [n] image id of each row */
  const char *segment;     /* pooled segment name, recorded ("caption") */
} an_crossling_input;

/* Runs RQ1 on one segment and returns a new JSON object (the segment's
 * entry of "segments", see the schema doc) in *out, which the caller frees
 * or hands to an_crossling_add_segment. Uses cfg->bootstrap, permutations,
 * folds, probe_c, ci, min_per_label; `seed` is the run's seed (every
 * stochastic step derives its own seed from it). Shows progress through
 * base/log.h. Errors: SC_ERR_ARG (n = 0, d = 0, n_layers = 0, NULL
 * matrices, a non-finite activation: message names the layer, language and
 * row), SC_ERR_NOMEM; a too-small sample is NOT an error (skip in JSON). */
int an_crossling_run(const an_crossling_input *in, const sc_config_analyze *cfg, uint64_t seed,
                     sc_json **out);

/* New file root: {"schema", "saecap_version", "seed", "config": {bootstrap,
 * permutations, folds, probe_c, ci, min_per_label}, "primary_segment": null,
 * "segments": {}}. SC_ERR_NOMEM. */
int an_crossling_root(const sc_config_analyze *cfg, uint64_t seed, sc_json **out);

/* Adds seg under root.segments[name] (root takes ownership, also on
 * failure); the first segment added becomes "primary_segment".
 * SC_ERR_ARG (root not from an_crossling_root), SC_ERR_NOMEM. */
int an_crossling_add_segment(sc_json *root, const char *name, sc_json *seg);

#endif
