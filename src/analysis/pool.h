/* pool.h: per-sample reductions of stored activations, the analysis input.
 *
 * One pass over the rows of an activation store (store/reader.h) of one
 * language and layer gives, per sample of samples.jsonl (in its order):
 *  - the mean residual row over the sample's rows of each requested segment
 *    (caption, image, prompt; each pooled separately): an_pooled [n, d];
 *  - with an SAE: every row of the SAE segments is encoded (sae_encode, in
 *    tiles of rows) and reduced per sample to the features that fired on any
 *    of its rows, with the mean activation over the sample's rows (rows
 *    where the feature did not fire count as 0), the largest activation and
 *    the row (position, token) where it was reached: an_sae_pooled, sparse.
 *    A dense [tokens, d_sae] matrix is never formed; memory is the pooled
 *    output plus one tile.
 *  - optionally a callback per encoded row with its active features (the
 *    per-token view RQ4 needs), so a caller keeps only what it uses.
 *
 * Rows must come in sample order (the store guarantees it); a row whose
 * sample_index is not in samples.jsonl is an error naming the store
 * directory. Samples without rows get a zero mean row and count 0.
 * Accumulation is in double, per sample, in row order: the result does not
 * depend on the thread count.
 *
 *   an_pool_opts o = an_pool_opts_default();
 *   o.mean_segments = 1u << STORE_SEG_CAPTION; o.sae_segments = o.mean_segments;
 *   an_pooled means[STORE_N_SEGMENTS] = {0}; an_sae_pooled f = {0};
 *   an_pool(dirs, 1, &samples, &o, sae, means, &f);
 *   ... an_pooled_free(&means[STORE_SEG_CAPTION]); an_sae_pooled_free(&f);
 */
#ifndef SC_AN_POOL_H
#define SC_AN_POOL_H

#include <stdint.h>

#include "sae/sae.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "store/samples.h"

/* The rows of one sample that one encoded row contributes: its active
 * features (increasing index order not guaranteed; TOPK gives them by
 * activation) and their values. `sample` is the row of samples.jsonl.
 * Return non-zero (with sc_error_set) to stop the pass with that code. */
typedef int (*an_token_fn)(void *user, int64_t sample, const store_row_meta *meta,
                           const int32_t *feature, const float *value, int n_active);

typedef struct an_pool_opts {
  unsigned mean_segments;        /* bits 1 << STORE_SEG_*: each pooled into means[seg] */
  unsigned sae_segments;         /* bits: rows encoded with the SAE and reduced together */
  const int32_t *exclude_tokens; /* (n_exclude_tokens) token ids skipped (e.g. <bos>) */
  int n_exclude_tokens;
  int allow_incomplete;          /* read a store whose run has not finished */
  int64_t chunk_rows;            /* rows read and encoded per tile; 0 = automatic */
  an_token_fn per_token;         /* NULL or called per encoded row, in row order */
  void *user;
  const char *label;             /* progress label (NULL: no progress) */
} an_pool_opts;

/* Mean rows of one segment. */
typedef struct an_pooled {
  int64_t n;       /* samples (rows of samples.jsonl) */
  int d;
  unsigned segments; /* the segment bits pooled */
  float *x;        /* (n, d) row-major means; zero where count is 0 */
  int32_t *count;  /* (n) rows pooled */
} an_pooled;

/* SAE features per sample, CSR over samples; entries of a sample in
 * increasing feature order. */
typedef struct an_sae_pooled {
  int64_t n;          /* samples */
  int64_t n_features; /* d_sae */
  int64_t nnz;
  int64_t *row_ptr;   /* (n + 1) */
  int32_t *feature;   /* (nnz) */
  float *mean;        /* (nnz) mean activation over the sample's encoded rows */
  float *max;         /* (nnz) largest activation */
  int32_t *max_pos;   /* (nnz) position of the row where it is largest (first if tied) */
  int32_t *max_token; /* (nnz) that row's token id */
  int32_t *count;     /* (n) encoded rows of the sample */
  int32_t *first_pos; /* (n) smallest position among those rows; -1 when none */
} an_sae_pooled;

/* Every segment pooled, no SAE segments, nothing excluded. */
an_pool_opts an_pool_opts_default(void);

/* Reads the store directories dirs[0..n_dirs) (one language and layer, or
 * its --shard slices in order) once. means: array of STORE_N_SEGMENTS; entry
 * s is filled when bit s of mean_segments is set (others untouched); may be
 * NULL when mean_segments is 0. With s_sae (and sae_out) non-NULL the
 * sae_segments rows are encoded; the SAE's d must equal the store's d.
 * Errors: the reader's (each naming the file), SC_ERR_ARG "<dir>: d is D,
 * the SAE expects E", SC_ERR_FORMAT "<dir>: sample_index S is not in
 * samples.jsonl" or "... rows out of sample order", SC_ERR_NOMEM, and
 * whatever per_token returns. On error the outputs are freed and zeroed. */
int an_pool(const char *const *dirs, int n_dirs, const store_samples *smp, const an_pool_opts *o,
            const sae *s_sae, an_pooled *means, an_sae_pooled *sae_out);

void an_pooled_free(an_pooled *p);
void an_sae_pooled_free(an_sae_pooled *p);

/* Row of samples.jsonl holding sample_index, or -1 (binary search). */
int64_t an_sample_row(const store_samples *smp, int64_t sample_index);

#endif
