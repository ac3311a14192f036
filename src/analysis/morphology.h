/* morphology.h: RQ4, grammatical versus semantic gender in SAE features.
 *
 * For one language and one layer's SAE features, given the caption tokens of
 * every sample (their decoded texts and per-token feature activations) and
 * the samples' image labels, it asks of each feature:
 *   grammatical  does it separate feminine from masculine words whose gender
 *                carries no meaning? Token level. Arabic: inanimate nouns
 *                (morph.h: lexicon list, e.g. طاولة/سيارة vs كتاب/باب).
 *                English analogue: the pronouns she/her/hers/herself vs
 *                he/him/his/himself. One observation per word: its LAST
 *                token (the model has read the whole word there).
 *   semantic     does it separate images of women from images of men?
 *                Sample level: each sample's mean activation over all its
 *                caption tokens; female vs male samples (ground_truth_gender).
 * Each test: Cohen's d (pooled sample SD; positive = larger for feminine /
 * female), two-sided Mann–Whitney U p (scipy 'auto'), Benjamini–Hochberg q
 * over the features tested (those non-zero somewhere in the test's data);
 * all from analysis/stats.h. A feature is "grammatical" (q_g < fdr only),
 * "semantic" (q_s < fdr only), "both" or "neither". A class with fewer
 * observations than the minimum skips that test: recorded as status
 * "skipped" + skip_reason in the JSON, and every feature's class is then
 * "untested" for it; never a NaN. Token-level observations from the same
 * caption are not independent: the grammatical p-values are a screening
 * device, documented as such in docs/results/morphology_analysis.md.
 *
 * Typical use (analyze stage, per layer):
 *   an_morphology_input in = {.lang = AN_LANG_AR, .n_samples = .., .label = ..,
 *       .n_tokens = .., .token_sample = .., .token_text = .., .n_features = d_sae,
 *       .acts = dense};                          // or .rows = callback
 *   sc_json *obj;
 *   an_morphology_run(lex_ar, &in, &obj);        // obj: docs/results/morphology_analysis.md
 */
#ifndef AN_MORPHOLOGY_H
#define AN_MORPHOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/lexicon.h"
#include "io/json.h"

/* Fills out[n_tok * n_features] (row-major, f32) with the feature
 * activations of tokens tok0 .. tok0+n_tok-1. Returns 0 or a negative
 * SC_ERR_* with the message set (passed on unchanged). */
typedef int (*an_morphology_rows_fn)(void *user, size_t tok0, size_t n_tok, float *out);

typedef struct an_morphology_input {
  an_lang lang;                  /* AN_LANG_AR (inanimate nouns) or AN_LANG_EN (pronouns) */
  size_t n_samples;
  const int *label;              /* (n_samples) SC_LABEL_* of pipeline/prepare.h; male/female enter
                                    the semantic test, other labels only the grammatical one */
  const uint8_t *exclude;        /* (n_samples) or NULL: 1 = leave the sample out of both tests
                                    (e.g. its prompt leaks the label) */
  size_t n_tokens;
  const int64_t *token_sample;   /* (n_tokens) sample index; non-decreasing (the tokens of one
                                    caption are contiguous and in order) */
  const char *const *token_text; /* (n_tokens) each token's decoded piece; a caption's pieces
                                    concatenate to its text */
  const size_t *token_len;       /* (n_tokens) byte lengths, or NULL = strlen(token_text[i]) */
  size_t n_features;
  const float *acts;             /* (n_tokens, n_features) row-major, or NULL to use rows */
  an_morphology_rows_fn rows;
  void *user;
  double fdr;                    /* BH level; 0 = 0.05 */
  size_t min_tokens;             /* per gender for the grammatical test; 0 = 10 */
  size_t min_samples;            /* per label for the semantic test; 0 = 5 */
  size_t top_k;                  /* length of the top_* lists; 0 = 50 */
  size_t max_features_listed;    /* cap on the "features" list; 0 = 5000 */
} an_morphology_input;

/* Runs both tests and returns a new cJSON object in *out (caller frees
 * with sc_json_free); the keys are documented in
 * docs/results/morphology_analysis.md. Errors (message names the field):
 * SC_ERR_ARG (no features, a token_sample outside [0, n_samples) or
 * decreasing, neither acts nor rows, a non-finite activation: "token T
 * feature F: non-finite activation"), the rows callback's own error,
 * SC_ERR_NOMEM. */
int an_morphology_run(const an_lexicon *lex, const an_morphology_input *in, sc_json **out);

#endif
