/* pool.c: per-sample reductions of stored activations (see pool.h). */
#include "analysis/pool.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"

an_pool_opts an_pool_opts_default(void) {
  an_pool_opts o;
  memset(&o, 0, sizeof o);
  o.mean_segments = (1u << STORE_N_SEGMENTS) - 1;
  return o;
}

int64_t an_sample_row(const store_samples *smp, int64_t sample_index) {
  int64_t lo = 0, hi = smp->n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (smp->rows[mid].sample_index < sample_index)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < smp->n && smp->rows[lo].sample_index == sample_index ? lo : -1;
}

void an_pooled_free(an_pooled *p) {
  if (!p) return;
  free(p->x);
  free(p->count);
  memset(p, 0, sizeof *p);
}

void an_sae_pooled_free(an_sae_pooled *p) {
  if (!p) return;
  free(p->row_ptr), free(p->feature), free(p->mean), free(p->max), free(p->max_pos);
  free(p->max_token), free(p->count), free(p->first_pos);
  memset(p, 0, sizeof *p);
}

static int oom(void) { return sc_error_setc(SC_ERR_NOMEM, "out of memory"); }

/* The pass's working state. */
typedef struct pool_run {
  const an_pool_opts *o;
  const store_samples *smp;
  const char *const *dirs;
  int d;
  an_pooled *means; /* NULL or [STORE_N_SEGMENTS] */
  double *acc[STORE_N_SEGMENTS];
  int32_t rows[STORE_N_SEGMENTS];
  /* SAE reduction of the current sample */
  const sae *s;
  an_sae_pooled *out;
  int64_t cap;  /* of out's entry arrays */
  double *fsum; /* (n_features) */
  float *fmax;
  int32_t *fpos, *ftok;
  uint8_t *touched;
  int32_t *list; /* touched features of the current sample */
  int64_t n_list;
  int32_t frows, fpos0;
  int64_t cur;        /* samples.jsonl row being accumulated, -1 none */
  int64_t last_index; /* its sample_index */
} pool_run;

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int grow_entries(pool_run *r, int64_t need) {
  an_sae_pooled *p = r->out;
  if (need <= r->cap) return 0;
  int64_t cap = r->cap ? r->cap : 4096;
  while (cap < need) cap *= 2;
  int32_t *f = realloc(p->feature, (size_t)cap * sizeof *f);
  if (f) p->feature = f;
  float *m = f ? realloc(p->mean, (size_t)cap * sizeof *m) : NULL;
  if (m) p->mean = m;
  float *x = m ? realloc(p->max, (size_t)cap * sizeof *x) : NULL;
  if (x) p->max = x;
  int32_t *q = x ? realloc(p->max_pos, (size_t)cap * sizeof *q) : NULL;
  if (q) p->max_pos = q;
  int32_t *t = q ? realloc(p->max_token, (size_t)cap * sizeof *t) : NULL;
  if (t) p->max_token = t;
  if (!t) return oom();
  r->cap = cap;
  return 0;
}

/* Closes the current sample: writes its means and its feature entries. */
static int flush(pool_run *r) {
  if (r->cur < 0) return 0;
  for (int s = 0; r->means && s < STORE_N_SEGMENTS; s++) {
    if (!r->acc[s]) continue;
    an_pooled *p = &r->means[s];
    float *x = p->x + r->cur * (int64_t)r->d;
    p->count[r->cur] = r->rows[s];
    if (r->rows[s])
      for (int j = 0; j < r->d; j++) x[j] = (float)(r->acc[s][j] / r->rows[s]);
    memset(r->acc[s], 0, (size_t)r->d * sizeof(double));
    r->rows[s] = 0;
  }
  if (r->out) {
    an_sae_pooled *p = r->out;
    qsort(r->list, (size_t)r->n_list, sizeof *r->list, cmp_i32);
    int rc = grow_entries(r, p->nnz + r->n_list);
    if (rc) return rc;
    for (int64_t i = 0; i < r->n_list; i++) {
      int32_t f = r->list[i];
      int64_t e = p->nnz++;
      p->feature[e] = f;
      p->mean[e] = (float)(r->fsum[f] / r->frows);
      p->max[e] = r->fmax[f];
      p->max_pos[e] = r->fpos[f];
      p->max_token[e] = r->ftok[f];
      r->fsum[f] = 0;
      r->fmax[f] = 0;
      r->touched[f] = 0;
    }
    p->count[r->cur] = r->frows;
    p->first_pos[r->cur] = r->frows ? r->fpos0 : -1;
    p->row_ptr[r->cur + 1] = p->nnz;
    r->n_list = 0;
    r->frows = 0;
  }
  return 0;
}

/* Moves to the sample of `meta`, closing the previous one; samples in
 * between (no rows) keep their zeroed outputs. */
static int enter_sample(pool_run *r, const store_row_meta *meta) {
  if (r->cur >= 0 && meta->sample_index == r->last_index) return 0;
  const char *dir = r->dirs[meta->dir];
  if (r->cur >= 0 && meta->sample_index < r->last_index)
    return sc_error_setc(SC_ERR_FORMAT, "%s: rows out of sample order (sample_index %lld after %lld)", dir,
                         (long long)meta->sample_index, (long long)r->last_index);
  int64_t row = an_sample_row(r->smp, meta->sample_index);
  if (row < 0)
    return sc_error_setc(SC_ERR_FORMAT, "%s: sample_index %lld is not in samples.jsonl", dir,
                         (long long)meta->sample_index);
  int rc = flush(r);
  if (rc) return rc;
  if (r->out)
    for (int64_t i = r->cur + 1; i <= row; i++) r->out->row_ptr[i + 1] = r->out->nnz;
  r->cur = row;
  r->last_index = meta->sample_index;
  return 0;
}

static void add_code_row(pool_run *r, const store_row_meta *meta, const sae_codes *c, int64_t k) {
  if (!r->frows || meta->position < r->fpos0) r->fpos0 = meta->position;
  r->frows++;
  for (int64_t e = c->row_ptr[k]; e < c->row_ptr[k + 1]; e++) {
    int32_t f = c->idx[e];
    float v = c->val[e];
    if (!r->touched[f]) {
      r->touched[f] = 1;
      r->list[r->n_list++] = f;
    }
    r->fsum[f] += v;
    if (v > r->fmax[f]) {
      r->fmax[f] = v;
      r->fpos[f] = meta->position;
      r->ftok[f] = meta->token_id;
    }
  }
}

static int alloc_outputs(pool_run *r, int64_t n) {
  const an_pool_opts *o = r->o;
  for (int s = 0; r->means && s < STORE_N_SEGMENTS; s++) {
    if (!(o->mean_segments >> s & 1u)) continue;
    an_pooled *p = &r->means[s];
    memset(p, 0, sizeof *p);
    p->n = n;
    p->d = r->d;
    p->segments = 1u << s;
    p->x = calloc((size_t)(n ? n : 1) * (size_t)r->d, sizeof *p->x);
    p->count = calloc((size_t)(n ? n : 1), sizeof *p->count);
    r->acc[s] = calloc((size_t)r->d, sizeof(double));
    if (!p->x || !p->count || !r->acc[s]) return oom();
  }
  if (r->out) {
    an_sae_pooled *p = r->out;
    int64_t nf = r->s->cfg.n;
    memset(p, 0, sizeof *p);
    p->n = n;
    p->n_features = nf;
    p->row_ptr = calloc((size_t)n + 1, sizeof *p->row_ptr);
    p->count = calloc((size_t)(n ? n : 1), sizeof *p->count);
    p->first_pos = malloc((size_t)(n ? n : 1) * sizeof *p->first_pos);
    r->fsum = calloc((size_t)nf, sizeof *r->fsum);
    r->fmax = calloc((size_t)nf, sizeof *r->fmax);
    r->fpos = calloc((size_t)nf, sizeof *r->fpos);
    r->ftok = calloc((size_t)nf, sizeof *r->ftok);
    r->touched = calloc((size_t)nf, 1);
    r->list = malloc((size_t)nf * sizeof *r->list);
    if (!p->row_ptr || !p->count || !p->first_pos || !r->fsum || !r->fmax || !r->fpos || !r->ftok || !r->touched ||
        !r->list)
      return oom();
    for (int64_t i = 0; i < n; i++) p->first_pos[i] = -1;
    if (grow_entries(r, 1)) return SC_ERR_NOMEM;
  }
  return 0;
}

static void free_run(pool_run *r) {
  for (int s = 0; s < STORE_N_SEGMENTS; s++) free(r->acc[s]);
  free(r->fsum), free(r->fmax), free(r->fpos), free(r->ftok), free(r->touched), free(r->list);
}

/* Processes one chunk of rows: encodes the SAE rows, then accumulates in
 * row order. */
static int do_chunk(pool_run *r, const float *x, const store_row_meta *meta, int64_t got, float *sx, int64_t *sx_row,
                    sae_codes *codes) {
  int64_t ns = 0;
  if (r->out) {
    for (int64_t i = 0; i < got; i++)
      if (r->o->sae_segments >> meta[i].segment & 1u) {
        memcpy(sx + ns * (int64_t)r->d, x + i * (int64_t)r->d, (size_t)r->d * sizeof *sx);
        sx_row[ns++] = i;
      }
    if (ns) {
      int rc = sae_encode(r->s, sx, ns, codes);
      if (rc) return rc;
    }
  }
  int64_t k = 0;
  for (int64_t i = 0; i < got; i++) {
    int rc = enter_sample(r, &meta[i]);
    if (rc) return rc;
    unsigned seg = meta[i].segment;
    if (r->means && r->acc[seg]) {
      const float *xi = x + i * (int64_t)r->d;
      double *a = r->acc[seg];
      for (int j = 0; j < r->d; j++) a[j] += xi[j];
      r->rows[seg]++;
    }
    if (k < ns && sx_row[k] == i) {
      add_code_row(r, &meta[i], codes, k);
      if (r->o->per_token) {
        int64_t e0 = codes->row_ptr[k];
        rc = r->o->per_token(r->o->user, r->cur, &meta[i], codes->idx + e0, codes->val + e0,
                             (int)(codes->row_ptr[k + 1] - e0));
        if (rc) return rc;
      }
      k++;
    }
  }
  return 0;
}

int an_pool(const char *const *dirs, int n_dirs, const store_samples *smp, const an_pool_opts *o, const sae *s_sae,
            an_pooled *means, an_sae_pooled *sae_out) {
  pool_run r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.smp = smp;
  r.dirs = dirs;
  r.means = o->mean_segments ? means : NULL;
  r.s = s_sae && sae_out && o->sae_segments ? s_sae : NULL;
  r.out = r.s ? sae_out : NULL;
  r.cur = -1;
  if (sae_out) memset(sae_out, 0, sizeof *sae_out);
  if (o->mean_segments && !means) return sc_error_setc(SC_ERR_ARG, "an_pool: mean_segments set but means is NULL");

  store_filter f = store_filter_default();
  f.segments = (o->mean_segments | (r.s ? o->sae_segments : 0u)) & ((1u << STORE_N_SEGMENTS) - 1);
  f.exclude_tokens = o->exclude_tokens;
  f.n_exclude_tokens = o->n_exclude_tokens;
  f.allow_incomplete = o->allow_incomplete;
  store_reader *rd = NULL;
  int rc = store_reader_open(&rd, dirs, n_dirs, &f);
  if (rc) return rc;
  r.d = store_reader_d(rd);
  if (r.s && r.s->cfg.d != r.d)
    rc = sc_error_setc(SC_ERR_ARG, "%s: d is %d, the SAE expects %lld", dirs[0], r.d, (long long)r.s->cfg.d);

  int64_t chunk = o->chunk_rows > 0 ? o->chunk_rows : 1024;
  if (r.s) {
    int64_t t = sae_tile_rows(r.s->cfg.n);
    if (o->chunk_rows <= 0 && t < chunk) chunk = t > 0 ? t : 1;
  }
  float *x = NULL, *sx = NULL;
  store_row_meta *meta = NULL;
  int64_t *sx_row = NULL;
  sae_codes codes;
  sae_codes_init(&codes);
  if (!rc) rc = alloc_outputs(&r, smp->n);
  if (!rc) {
    x = malloc((size_t)chunk * (size_t)r.d * sizeof *x);
    meta = malloc((size_t)chunk * sizeof *meta);
    if (r.s) {
      sx = malloc((size_t)chunk * (size_t)r.d * sizeof *sx);
      sx_row = malloc((size_t)chunk * sizeof *sx_row);
    }
    if (!x || !meta || (r.s && (!sx || !sx_row))) rc = oom();
  }
  sc_progress *pg = !rc && o->label ? sc_progress_create(o->label, store_reader_n_rows(rd), "rows") : NULL;
  for (int64_t got = 0, done = 0; !rc;) {
    rc = store_reader_next(rd, x, meta, chunk, &got);
    if (rc || !got) break;
    rc = do_chunk(&r, x, meta, got, sx, sx_row, &codes);
    done += got;
    sc_progress_set(pg, done);
  }
  if (!rc) rc = flush(&r);
  if (!rc && r.out)
    for (int64_t i = r.cur + 1; i < smp->n; i++) r.out->row_ptr[i + 1] = r.out->nnz;
  if (rc)
    sc_progress_abort(pg);
  else
    sc_progress_finish(pg);
  free(x), free(sx), free(meta), free(sx_row);
  sae_codes_release(&codes);
  free_run(&r);
  store_reader_free(rd);
  if (rc) {
    for (int s = 0; r.means && s < STORE_N_SEGMENTS; s++)
      if (o->mean_segments >> s & 1u) an_pooled_free(&means[s]);
    if (sae_out) an_sae_pooled_free(sae_out);
  }
  return rc;
}
