/* sae_metrics.h: reconstruction and sparsity metrics of an SAE.
 *
 * Accumulate batch by batch (sae_metrics_add), read at the end. Sums are
 * f64. Definitions (research/sae_anchors.md §1.11):
 *   mse        Σ_t ‖x_t − x̂_t‖² / N          (per token, summed over d: SAELens)
 *   fvu        Σ_t ‖x_t − x̂_t‖² / Σ_t ‖x_t − x̄‖², x̄ the mean over all N
 *              tokens (about the mean: the fix of SAELens PR #665)
 *   explained_variance         1 − fvu
 *   explained_variance_legacy  mean over tokens of 1 − ‖x_t − x̂_t‖² /
 *              ‖x_t − x̄_batch‖², x̄_batch the mean of the token's batch
 *              (what the SAEBench paper reports; depends on batching)
 *   l0         mean active latents per token
 *   dead_fraction   latents that never fired over the evaluated tokens
 *   dense_fraction  latents firing on more than dense_threshold of tokens
 *   cosine     mean over tokens of cos(x_t, x̂_t)
 *   l2_ratio   mean over tokens of ‖x̂_t‖ / ‖x_t‖
 * Tokens with ‖x_t‖ = 0 (or a zero batch deviation) are skipped in the
 * per-token ratios.
 */
#ifndef SC_SAE_METRICS_H
#define SC_SAE_METRICS_H

#include <stdint.h>

#include "sae/sae.h"

typedef struct sae_metrics {
  int64_t tokens;
  double mse, fvu, explained_variance, explained_variance_legacy;
  double l0, dead_fraction, dense_fraction, cosine, l2_ratio;
} sae_metrics;

typedef struct sae_metrics_acc sae_metrics_acc;

/* dense_threshold: firing frequency above which a latent counts as dense
 * (SAEBench's 10%: 0.1). Errors: SC_ERR_ARG, SC_ERR_NOMEM. */
int sae_metrics_create(sae_metrics_acc **out, int64_t d, int64_t n, double dense_threshold);
void sae_metrics_free(sae_metrics_acc *a);
/* Adds a batch: x, xhat [B, d] and the codes of the same B rows. */
int sae_metrics_add(sae_metrics_acc *a, const float *x, const float *xhat, const sae_codes *codes);
void sae_metrics_result(const sae_metrics_acc *a, sae_metrics *out);

/* Mean over the rows of A [na, d] of the largest cosine with any row of
 * B [nb, d] (dictionary recovery: A = true features, B = decoder rows). */
double sae_mean_max_cosine(const float *A, int64_t na, const float *B, int64_t nb, int64_t d);

#endif
