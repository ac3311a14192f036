/* sae_source.h: where the SAE trainer gets its rows.
 *
 * A source is a small struct of function pointers (as ggml's backends are,
 * STYLE.md §1) so the activation store plugs in later without the trainer
 * changing: next() fills a buffer with the next rows [n, d] f32, tell()
 * returns an opaque cursor and seek() returns to one, so a resumed run reads
 * exactly the rows an uninterrupted run would. Sources never end: they wrap
 * around (epochs); what a cursor means is the source's business.
 *
 * Two sources live here: an in-memory one (borrowed rows, cursor = rows
 * consumed) and a synthetic one (x = Σ sparse codes × a known random
 * dictionary + noise, each row a pure function of (seed, row number), for
 * feature-recovery tests and benchmarks).
 */
#ifndef SC_SAE_SOURCE_H
#define SC_SAE_SOURCE_H

#include <stdint.h>

typedef struct sae_source_ops {
  /* Fills rows [n, d] with the next n rows and advances the cursor. */
  int (*next)(void *ctx, float *rows, int64_t n);
  /* Returns to a cursor a previous tell() gave (SC_ERR_RANGE if invalid). */
  int (*seek)(void *ctx, uint64_t cursor);
  uint64_t (*tell)(const void *ctx);
  /* Frees ctx (optional: NULL when nothing to free). */
  void (*free)(void *ctx);
} sae_source_ops;

typedef struct sae_source {
  const sae_source_ops *ops;
  void *ctx;
  int64_t d; /* row width */
} sae_source;

int sae_source_next(sae_source *s, float *rows, int64_t n);
int sae_source_seek(sae_source *s, uint64_t cursor);
uint64_t sae_source_tell(const sae_source *s);
/* Frees the source and its context; NULL is a no-op. */
void sae_source_free(sae_source *s);

/* Rows [n_rows, d] borrowed (must outlive the source), read in order and
 * wrapping around. Errors: SC_ERR_ARG (no rows, d < 1), SC_ERR_NOMEM. */
int sae_source_memory(sae_source **out, const float *rows, int64_t n_rows, int64_t d);

typedef struct sae_synth_cfg {
  int64_t d;          /* row width */
  int64_t n_features; /* true dictionary size */
  int active;         /* features active per row (distinct) */
  float amp_lo, amp_hi; /* code magnitudes, uniform in [lo, hi) */
  float noise;        /* standard deviation of the Gaussian noise per coordinate */
  float offset;       /* scale of a constant random offset added to every row (0: none) */
  uint64_t seed;
} sae_synth_cfg;

/* A synthetic source. The dictionary is n_features random unit rows.
 * Errors: SC_ERR_ARG (bad sizes), SC_ERR_NOMEM. */
int sae_source_synthetic(sae_source **out, const sae_synth_cfg *cfg);
/* The true dictionary [n_features, d] of a synthetic source (owned by it). */
const float *sae_source_synthetic_dict(const sae_source *s);

#endif
