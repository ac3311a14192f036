/* features.h: RQ2, language-specific gender features in the shared SAE of
 * one layer.
 *
 * Input per language: the per-sample SAE reduction of pool.h (mean feature
 * activation over the segment's tokens, sparse) and a mask of the samples
 * that enter the statistics (male or female label, prompt not leaky, at
 * least one token in the segment); labels and image ids are shared by the
 * languages (row i is the same sample of samples.jsonl in every language).
 *
 * Per feature and language (definitions in docs/results/feature_analysis.md):
 *  - firing rate (share of used samples where the feature fired on at least
 *    one token), overall and per label; mean activation per label;
 *  - Cohen's d = (mean_female − mean_male) / pooled SAMPLE SD (an_cohens_d;
 *    positive = more active on female samples);
 *  - two-sided Mann–Whitney U p (an_mannwhitney, scipy 'auto');
 *  - BH q-values (an_bh_qvalues) over every tested (feature, language) pair
 *    of the layer jointly; a feature is tested in a language when it fired
 *    on at least one used sample there (a label-blind filter, so FDR control
 *    holds); untested features get p = q = 1;
 *  - significant in EN only / AR only / both at q <= fdr.
 * Across languages: overlap (count, Jaccard) of the top-k features by |d| of
 * the two languages, against a label-permutation null: labels are shuffled
 * over images (one permutation applied to both languages, so the null keeps
 * the EN/AR pairing of each image) and the top-k recomputed from sparse
 * per-label sums; p = (1 + #{null >= observed}) / (1 + permutations).
 * Feature cards: for the top-k features of each language, the samples with
 * the largest activation on one token (ties: lower sample row), each with
 * the token's position and id; the caller adds texts through a callback.
 *
 * Too few used samples of a label (< min_per_label) in a language: that
 * language's statistics are skipped and the JSON says why; nothing is NaN.
 * Deterministic for a seed; no dependence on thread count.
 */
#ifndef SC_AN_FEATURES_H
#define SC_AN_FEATURES_H

#include <stdint.h>

#include "analysis/pool.h"
#include "io/json.h"

#define AN_FEAT_MAX_LANGS 2
/* The contract with steering: ranking length is max(AN_FEAT_RANKING_MIN, top_k). */
#define AN_FEAT_RANKING_MIN 1000

typedef struct an_feat_lang_in {
  const char *lang;        /* "en" / "ar" */
  const an_sae_pooled *f;  /* per-sample features, n = the shared sample count */
  const uint8_t *use;      /* (n) 1 = the sample enters the statistics */
} an_feat_lang_in;

/* Adds the caller's keys to one card example (image_id, caption, token
 * text, byte span, ...). lang_i indexes the inputs; sample is the row of
 * samples.jsonl. Return non-zero with the error set to abort. */
typedef int (*an_card_fn)(void *user, int lang_i, int64_t sample, int32_t position, int32_t token_id,
                          sc_json *example);

typedef struct an_feat_opts {
  double fdr;               /* BH level */
  uint64_t top_k;           /* top features per language (overlap, cards) */
  uint64_t permutations;    /* label permutations of the overlap null (0: none) */
  uint64_t card_examples;   /* examples per card (0: no cards) */
  uint64_t min_per_label;   /* fewer used samples of a label: skip the language */
  uint64_t seed;
  an_card_fn card;          /* NULL: examples carry only what features.c knows */
  void *user;
} an_feat_opts;

/* Statistics of one language (arrays of n_features). */
typedef struct an_feat_lang {
  const char *lang;
  int skipped;              /* 1: too few samples; the arrays are NULL */
  char skip_reason[160];
  int64_t n_features, n_used, n_male, n_female, n_tested;
  double *rate, *rate_male, *rate_female;   /* firing rates over used samples */
  double *mean_male, *mean_female;          /* mean activation per label */
  double *d;                                /* female − male, 0 when degenerate */
  int8_t *d_status;                         /* an_stat_status of d */
  double *p, *q;                            /* 1 when untested */
  uint8_t *tested;
  int32_t *ranking;                         /* features that fired, by |d| desc, ties by index */
  int64_t n_ranking;                        /* min(#fired, max(1000, top_k)) */
} an_feat_lang;

typedef struct an_feat_result {
  int n_langs;
  int64_t n_features;
  an_feat_lang lang[AN_FEAT_MAX_LANGS];
  int64_t n_tests;          /* p-values in the joint BH family */
  /* cross-language (both languages present and not skipped) */
  int cross;                /* 1 when the fields below are set */
  int64_t n_en_only, n_ar_only, n_both;  /* significant at q <= fdr (lang[0] = "en" side) */
  int64_t k;                /* top-k actually compared (<= both rankings) */
  int64_t overlap;          /* |top_k(0) ∩ top_k(1)| */
  double jaccard;
  int64_t n_perm;           /* permutations run */
  double null_mean, null_sd, null_lo, null_hi;  /* overlap under the null (2.5/97.5 %) */
  double p_overlap;
} an_feat_result;

/* Computes RQ2 for n_langs (1 or 2) languages over n samples: labels (n,
 * SC_LABEL_*) and image group ids (n) shared. Errors: SC_ERR_ARG (bad
 * sizes, SAEs of different widths), SC_ERR_NOMEM, the stats' argument
 * errors. On error *out is freed. */
int an_features_compute(const an_feat_lang_in *in, int n_langs, const int *labels, const uint64_t *groups,
                        int64_t n, const an_feat_opts *o, an_feat_result *out);
void an_feat_result_free(an_feat_result *r);

/* The layer's "languages" object and "cross_language" object of
 * feature_analysis.json (docs/results/feature_analysis.md), with feature
 * cards built from in[] (the same inputs as compute). SC_ERR_NOMEM or the
 * card callback's error. */
int an_features_json(const an_feat_result *r, const an_feat_lang_in *in, const int *labels,
                     const an_feat_opts *o, sc_json **languages, sc_json **cross);

#endif
