/* sae_source.c: the in-memory and synthetic row sources (see sae_source.h). */
#include "sae/sae_source.h"
#include "sae/sae_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"

int sae_source_next(sae_source *s, float *rows, int64_t n) { return s->ops->next(s->ctx, rows, n); }
int sae_source_seek(sae_source *s, uint64_t cursor) { return s->ops->seek(s->ctx, cursor); }
uint64_t sae_source_tell(const sae_source *s) { return s->ops->tell(s->ctx); }

void sae_source_free(sae_source *s) {
  if (!s) return;
  if (s->ops && s->ops->free) s->ops->free(s->ctx);
  free(s);
}

static int source_wrap(sae_source **out, const sae_source_ops *ops, void *ctx, int64_t d) {
  sae_source *s = calloc(1, sizeof *s);
  if (!s) {
    ops->free(ctx);
    return sc_error_setc(SC_ERR_NOMEM, "sae source: out of memory");
  }
  s->ops = ops, s->ctx = ctx, s->d = d;
  *out = s;
  return 0;
}

/* ==== In memory ==== */

typedef struct mem_src {
  const float *rows; /* (n_rows, d) borrowed */
  int64_t n_rows, d;
  uint64_t cursor;   /* rows consumed since the start */
} mem_src;

static int mem_next(void *ctx, float *out, int64_t n) {
  mem_src *m = ctx;
  for (int64_t r = 0; r < n; r++) {
    int64_t i = (int64_t)(m->cursor++ % (uint64_t)m->n_rows);
    memcpy(out + r * m->d, m->rows + i * m->d, (size_t)m->d * sizeof *out);
  }
  return 0;
}

static int mem_seek(void *ctx, uint64_t cursor) {
  ((mem_src *)ctx)->cursor = cursor;
  return 0;
}

static uint64_t mem_tell(const void *ctx) { return ((const mem_src *)ctx)->cursor; }

static const sae_source_ops mem_ops = {mem_next, mem_seek, mem_tell, free};

int sae_source_memory(sae_source **out, const float *rows, int64_t n_rows, int64_t d) {
  *out = NULL;
  if (!rows || n_rows < 1 || d < 1)
    return sc_error_setc(SC_ERR_ARG, "sae source: need at least one row of width >= 1");
  mem_src *m = calloc(1, sizeof *m);
  if (!m) return sc_error_setc(SC_ERR_NOMEM, "sae source: out of memory");
  m->rows = rows, m->n_rows = n_rows, m->d = d;
  return source_wrap(out, &mem_ops, m, d);
}

/* ==== Synthetic ==== */

typedef struct synth_src {
  sae_synth_cfg cfg;
  float *dict;   /* (n_features, d) unit rows */
  float *offset; /* (d) */
  uint64_t cursor;
} synth_src;

/* Row r is generated from its own RNG stream, so seek is free. */
static void synth_row(const synth_src *s, uint64_t r, float *x) {
  const sae_synth_cfg *c = &s->cfg;
  sc_rng rng;
  sc_rng_seed(&rng, c->seed * 0x9E3779B97F4A7C15ull + r + 1);
  for (int64_t j = 0; j < c->d; j++) x[j] = s->offset[j] + c->noise * (float)sc_rng_normal(&rng);
  int64_t chosen[64];
  for (int a = 0; a < c->active; a++) {
    int64_t f;
    int dup;
    do {
      f = (int64_t)sc_rng_below(&rng, (uint64_t)c->n_features);
      dup = 0;
      for (int b = 0; b < a; b++) dup |= chosen[b] == f;
    } while (dup);
    chosen[a] = f;
    float amp = c->amp_lo + (c->amp_hi - c->amp_lo) * (float)sc_rng_uniform(&rng);
    for (int64_t j = 0; j < c->d; j++) x[j] += amp * s->dict[f * c->d + j];
  }
}

static int synth_next(void *ctx, float *out, int64_t n) {
  synth_src *s = ctx;
#pragma omp parallel for schedule(static) SAE_PAR(n * s->cfg.d * 4)
  for (int64_t r = 0; r < n; r++) synth_row(s, s->cursor + (uint64_t)r, out + r * s->cfg.d);
  s->cursor += (uint64_t)n;
  return 0;
}

static int synth_seek(void *ctx, uint64_t cursor) {
  ((synth_src *)ctx)->cursor = cursor;
  return 0;
}

static uint64_t synth_tell(const void *ctx) { return ((const synth_src *)ctx)->cursor; }

static void synth_free(void *ctx) {
  synth_src *s = ctx;
  if (!s) return;
  free(s->dict);
  free(s->offset);
  free(s);
}

static const sae_source_ops synth_ops = {synth_next, synth_seek, synth_tell, synth_free};

static void synth_dictionary(synth_src *s) {
  const sae_synth_cfg *c = &s->cfg;
  sc_rng rng;
  sc_rng_seed(&rng, c->seed);
  for (int64_t f = 0; f < c->n_features; f++) {
    float *w = s->dict + f * c->d;
    double nn = 0.0;
    for (int64_t j = 0; j < c->d; j++) w[j] = (float)sc_rng_normal(&rng), nn += (double)w[j] * w[j];
    float inv = (float)(1.0 / sqrt(nn));
    for (int64_t j = 0; j < c->d; j++) w[j] *= inv;
  }
  for (int64_t j = 0; j < c->d; j++) s->offset[j] = c->offset * (float)sc_rng_normal(&rng);
}

int sae_source_synthetic(sae_source **out, const sae_synth_cfg *cfg) {
  *out = NULL;
  if (cfg->d < 1 || cfg->d > (1 << 16) || cfg->n_features < 1 || cfg->n_features > (1 << 24) ||
      cfg->active < 1 || cfg->active > 64 || cfg->active > cfg->n_features)
    return sc_error_setc(SC_ERR_ARG, "synthetic source: bad sizes (d %lld, features %lld, active %d)",
                         (long long)cfg->d, (long long)cfg->n_features, cfg->active);
  synth_src *s = calloc(1, sizeof *s);
  if (!s) return sc_error_setc(SC_ERR_NOMEM, "synthetic source: out of memory");
  s->cfg = *cfg;
  s->dict = malloc((size_t)(cfg->n_features * cfg->d) * sizeof *s->dict);
  s->offset = malloc((size_t)cfg->d * sizeof *s->offset);
  if (!s->dict || !s->offset) {
    synth_free(s);
    return sc_error_setc(SC_ERR_NOMEM, "synthetic source: out of memory");
  }
  synth_dictionary(s);
  return source_wrap(out, &synth_ops, s, cfg->d);
}

const float *sae_source_synthetic_dict(const sae_source *s) {
  return s->ops == &synth_ops ? ((const synth_src *)s->ctx)->dict : NULL;
}
