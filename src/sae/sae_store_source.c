/* sae_store_source.c: the shuffled store-backed source (see sae_store_source.h). */
#include "sae/sae_store_source.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"

typedef struct ss_src {
  store_reader *r;
  int64_t N;          /* kept rows, one epoch */
  int64_t C, K;       /* rows per chunk, chunks per buffer */
  int64_t n_chunks, n_buffers;
  uint64_t seed, cursor;
  int64_t epoch;      /* epoch whose chunk order is loaded (-1 none) */
  int64_t *order;     /* (n_chunks) chunk order of that epoch */
  int64_t *buf_start; /* (n_buffers + 1) first epoch offset of each buffer */
  int64_t buf;        /* buffer whose rows are loaded (-1 none) */
  int64_t *rows;      /* (K·C) row indices of that buffer, permuted */
  int64_t n_buf_rows;
} ss_src;

/* splitmix64's finaliser, to derive independent seeds from (seed, e, b). */
static uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

int64_t sae_store_chunk_rows(int64_t buffer) {
  int64_t c = buffer / 16;
  return c < 1 ? 1 : c > 4096 ? 4096 : c;
}

static int64_t chunk_len(const ss_src *s, int64_t c) {
  int64_t lo = c * s->C, hi = lo + s->C;
  return (hi > s->N ? s->N : hi) - lo;
}

static void load_epoch(ss_src *s, int64_t e) {
  if (s->epoch == e) return;
  sc_rng g;
  sc_rng_seed(&g, mix64(s->seed ^ mix64((uint64_t)e * 2 + 1)));
  for (int64_t c = 0; c < s->n_chunks; c++) s->order[c] = c;
  sc_rng_shuffle(&g, s->order, (uint64_t)s->n_chunks, sizeof *s->order);
  s->buf_start[0] = 0;
  for (int64_t b = 0; b < s->n_buffers; b++) {
    int64_t rows = 0;
    for (int64_t j = b * s->K; j < (b + 1) * s->K && j < s->n_chunks; j++) rows += chunk_len(s, s->order[j]);
    s->buf_start[b + 1] = s->buf_start[b] + rows;
  }
  s->epoch = e;
  s->buf = -1;
}

static void load_buffer(ss_src *s, int64_t b) {
  if (s->buf == b) return;
  int64_t m = 0;
  for (int64_t j = b * s->K; j < (b + 1) * s->K && j < s->n_chunks; j++) {
    int64_t c = s->order[j], len = chunk_len(s, c);
    for (int64_t i = 0; i < len; i++) s->rows[m++] = c * s->C + i;
  }
  sc_rng g;
  sc_rng_seed(&g, mix64(s->seed ^ mix64(((uint64_t)s->epoch << 1) * 0x100000001B3ULL + (uint64_t)b * 2 + 2)));
  sc_rng_shuffle(&g, s->rows, (uint64_t)m, sizeof *s->rows);
  s->n_buf_rows = m;
  s->buf = b;
}

/* Loads the buffer serving cursor pos; *off = pos's place in it. */
static void locate(ss_src *s, uint64_t pos, int64_t *off) {
  int64_t e = (int64_t)(pos / (uint64_t)s->N), q = (int64_t)(pos % (uint64_t)s->N);
  load_epoch(s, e);
  int64_t lo = 0, hi = s->n_buffers - 1; /* last b with buf_start[b] <= q */
  while (lo < hi) {
    int64_t mid = (lo + hi + 1) / 2;
    if (s->buf_start[mid] <= q) lo = mid;
    else hi = mid - 1;
  }
  load_buffer(s, lo);
  *off = q - s->buf_start[lo];
}

static int ss_next(void *ctx, float *out, int64_t n) {
  ss_src *s = ctx;
  int64_t d = store_reader_d(s->r);
  for (int64_t done = 0; done < n;) {
    int64_t off;
    locate(s, s->cursor, &off);
    int64_t m = s->n_buf_rows - off;
    if (m > n - done) m = n - done;
    int rc = store_reader_gather(s->r, s->rows + off, m, out + done * d, NULL);
    if (rc) return rc;
    done += m;
    s->cursor += (uint64_t)m;
  }
  return 0;
}

static int ss_seek(void *ctx, uint64_t cursor) {
  ((ss_src *)ctx)->cursor = cursor;
  return 0;
}

static uint64_t ss_tell(const void *ctx) { return ((const ss_src *)ctx)->cursor; }

static void ss_free(void *ctx) {
  ss_src *s = ctx;
  if (!s) return;
  store_reader_free(s->r);
  free(s->order), free(s->buf_start), free(s->rows);
  free(s);
}

static const sae_source_ops ss_ops = {ss_next, ss_seek, ss_tell, ss_free};

int sae_source_store(sae_source **out, store_reader *r, int64_t buffer, uint64_t seed) {
  *out = NULL;
  if (!r) return sc_error_setc(SC_ERR_ARG, "train: no store reader");
  int64_t N = store_reader_n_rows(r);
  if (N < 1 || buffer < 1) {
    store_reader_free(r);
    return N < 1 ? sc_error_setc(SC_ERR_ARG, "train: no rows left after the filters (segments, special tokens, split)")
                 : sc_error_setc(SC_ERR_ARG, "train: shuffle buffer must be >= 1 row");
  }
  ss_src *s = calloc(1, sizeof *s);
  sae_source *src = calloc(1, sizeof *src);
  if (!s || !src) {
    free(s), free(src);
    store_reader_free(r);
    return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  }
  s->r = r, s->N = N, s->seed = seed, s->epoch = -1, s->buf = -1;
  s->C = sae_store_chunk_rows(buffer);
  s->K = buffer / s->C > 0 ? buffer / s->C : 1;
  s->n_chunks = (N + s->C - 1) / s->C;
  s->n_buffers = (s->n_chunks + s->K - 1) / s->K;
  s->order = malloc((size_t)s->n_chunks * sizeof *s->order);
  s->buf_start = malloc((size_t)(s->n_buffers + 1) * sizeof *s->buf_start);
  s->rows = malloc((size_t)(s->K * s->C) * sizeof *s->rows);
  if (!s->order || !s->buf_start || !s->rows) {
    ss_free(s);
    free(src);
    return sc_error_setc(SC_ERR_NOMEM, "train: out of memory for a shuffle buffer of %lld rows", (long long)buffer);
  }
  src->ops = &ss_ops, src->ctx = s, src->d = store_reader_d(r);
  *out = src;
  return 0;
}

int64_t sae_source_store_rows(const sae_source *s) { return ((const ss_src *)s->ctx)->N; }

int sae_source_store_row_at(sae_source *src, uint64_t pos, int64_t *row) {
  ss_src *s = src->ctx;
  int64_t off;
  locate(s, pos, &off);
  *row = s->rows[off];
  return 0;
}
