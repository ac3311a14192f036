/* stats.c: see stats.h for the definitions; each matches a scipy/numpy
 * function named there (tests/reference/stats_reference.py). */
#include "analysis/stats.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/blas.h"

const char *an_stat_status_str(int status) {
  switch (status) {
    case AN_STAT_OK: return "ok";
    case AN_STAT_TOO_FEW: return "too_few_samples";
    case AN_STAT_ZERO_VAR: return "zero_variance";
    case AN_STAT_ALL_TIES: return "all_ties";
    case AN_STAT_ZERO_NORM: return "zero_norm";
    case AN_STAT_NO_VALID: return "no_valid_resample";
    default: return status < 0 ? "error" : "unknown";
  }
}

/* ==== moments ============================================================= */

int an_moments_f64(const double *x, size_t n, an_moments *out) {
  memset(out, 0, sizeof *out);
  out->n = n;
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) return sc_error_setc(SC_ERR_ARG, "statistics: value %zu is not finite", i);
    s += x[i];
  }
  if (n == 0) return AN_STAT_TOO_FEW;
  out->mean = s / (double)n;
  if (n < 2) return AN_STAT_TOO_FEW;
  /* Second pass about the mean: no cancellation from Σx² − n·mean². */
  double ss = 0;
  for (size_t i = 0; i < n; i++) ss += (x[i] - out->mean) * (x[i] - out->mean);
  out->var = ss / (double)(n - 1);
  return AN_STAT_OK;
}

int an_moments_f32(const float *x, size_t n, size_t stride, an_moments *out) {
  memset(out, 0, sizeof *out);
  out->n = n;
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double v = x[i * stride];
    if (!isfinite(v)) return sc_error_setc(SC_ERR_ARG, "statistics: value %zu is not finite", i);
    s += v;
  }
  if (n == 0) return AN_STAT_TOO_FEW;
  out->mean = s / (double)n;
  if (n < 2) return AN_STAT_TOO_FEW;
  double ss = 0;
  for (size_t i = 0; i < n; i++) {
    double e = (double)x[i * stride] - out->mean;
    ss += e * e;
  }
  out->var = ss / (double)(n - 1);
  return AN_STAT_OK;
}

/* ==== effect size ========================================================= */

int an_cohens_d(const double *a, size_t n_a, const double *b, size_t n_b, double *d) {
  *d = 0;
  an_moments ma, mb;
  int rc = an_moments_f64(a, n_a, &ma);
  if (rc < 0) return rc;
  int rc2 = an_moments_f64(b, n_b, &mb);
  if (rc2 < 0) return rc2;
  if (rc || rc2) return AN_STAT_TOO_FEW;
  double pooled = ((double)(n_a - 1) * ma.var + (double)(n_b - 1) * mb.var) / (double)(n_a + n_b - 2);
  if (!(pooled > 0)) return AN_STAT_ZERO_VAR;
  *d = (ma.mean - mb.mean) / sqrt(pooled);
  return AN_STAT_OK;
}

/* ==== Mann–Whitney ======================================================== */

typedef struct {
  double v;
  size_t i;
} vi_pair;

static int cmp_vi(const void *pa, const void *pb) {
  const vi_pair *a = pa, *b = pb;
  if (a->v < b->v) return -1;
  if (a->v > b->v) return 1;
  return (a->i > b->i) - (a->i < b->i);
}

/* P(U' >= u) under H0 for sample sizes m <= n (U' symmetric about mn/2):
 * the counts of U' are the coefficients of the Gaussian binomial
 * [m+n choose m]_q = Π_{i=1..m} (1 − q^{n+i}) / (1 − q^i); after factor i
 * the polynomial is [n+i choose i]_q, so every intermediate has
 * non-negative integer coefficients and doubles stay accurate. */
static int mw_exact_sf(size_t m, size_t n, double u, double *p) {
  size_t cap = m * n + n + m + 1;
  double *c = calloc(cap, sizeof *c);
  if (!c) return sc_error_setc(SC_ERR_NOMEM, "mann-whitney: out of memory (%zu x %zu)", m, n);
  c[0] = 1;
  size_t deg = 0;
  for (size_t i = 1; i <= m; i++) {
    size_t sh = n + i;
    for (size_t k = deg + sh; k >= sh; k--) c[k] -= c[k - sh];
    deg += sh;
    for (size_t k = i; k <= deg; k++) c[k] += c[k - i];
    deg -= i;
  }
  double total = 0, tail = 0;
  /* scipy casts U to int before the lookup (truncation). */
  size_t uk = u <= 0 ? 0 : (size_t)u;
  for (size_t k = 0; k <= deg; k++) {
    total += c[k];
    if (k >= uk) tail += c[k];
  }
  free(c);
  *p = tail / total;
  return 0;
}

int an_mannwhitney(const double *a, size_t n_a, const double *b, size_t n_b, an_mw_method method,
                   an_mw_result *out) {
  memset(out, 0, sizeof *out);
  out->p = 1;
  for (size_t i = 0; i < n_a; i++)
    if (!isfinite(a[i])) return sc_error_setc(SC_ERR_ARG, "mann-whitney: value %zu of a is not finite", i);
  for (size_t i = 0; i < n_b; i++)
    if (!isfinite(b[i])) return sc_error_setc(SC_ERR_ARG, "mann-whitney: value %zu of b is not finite", i);
  if (n_a == 0 || n_b == 0) return AN_STAT_TOO_FEW;
  size_t n = n_a + n_b;
  vi_pair *v = malloc(n * sizeof *v);
  if (!v) return sc_error_setc(SC_ERR_NOMEM, "mann-whitney: out of memory (n = %zu)", n);
  for (size_t i = 0; i < n_a; i++) v[i] = (vi_pair){a[i], i};
  for (size_t i = 0; i < n_b; i++) v[n_a + i] = (vi_pair){b[i], n_a + i};
  qsort(v, n, sizeof *v, cmp_vi);
  /* Midranks; R1 = rank sum of a; tie term Σ(t³ − t). */
  double r1 = 0, tie = 0;
  int has_ties = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && v[j].v == v[i].v) j++;
    double t = (double)(j - i);
    double rank = (double)(i + 1 + j) / 2.0; /* mean of ranks i+1 .. j */
    for (size_t k = i; k < j; k++)
      if (v[k].i < n_a) r1 += rank;
    if (j - i > 1) {
      has_ties = 1;
      tie += t * t * t - t;
    }
    i = j;
  }
  free(v);
  double na = (double)n_a, nb = (double)n_b, nn = (double)n;
  double u1 = r1 - na * (na + 1) / 2;
  double u2 = na * nb - u1;
  double u = u1 > u2 ? u1 : u2;
  out->u1 = u1;
  size_t mmin = n_a < n_b ? n_a : n_b, mmax = n_a < n_b ? n_b : n_a;
  int exact = 0;
  if (method == AN_MW_AUTO) exact = mmin <= 8 && !has_ties;
  else if (method == AN_MW_EXACT) exact = mmin <= 8;
  if (exact) {
    double sf = 1;
    int rc = mw_exact_sf(mmin, mmax, u, &sf);
    if (rc) return rc;
    out->exact = 1;
    out->p = fmin(1.0, 2 * sf);
    return AN_STAT_OK;
  }
  double s2 = na * nb / 12.0 * ((nn + 1) - tie / (nn * (nn - 1)));
  if (!(s2 > 0)) return AN_STAT_ALL_TIES; /* every value equal: no evidence, p = 1 */
  out->z = (u - na * nb / 2 - 0.5) / sqrt(s2);
  double p = 2 * gsl_cdf_ugaussian_Q(out->z);
  out->p = p > 1 ? 1 : (p < 0 ? 0 : p);
  return AN_STAT_OK;
}

/* ==== Benjamini–Hochberg =================================================== */

static int cmp_vi_value(const void *pa, const void *pb) { return cmp_vi(pa, pb); }

int an_bh_qvalues(const double *p, size_t m, double *q) {
  if (m == 0) return 0;
  vi_pair *v = malloc(m * sizeof *v);
  if (!v) return sc_error_setc(SC_ERR_NOMEM, "bh: out of memory (m = %zu)", m);
  for (size_t i = 0; i < m; i++) {
    if (!(p[i] >= 0 && p[i] <= 1)) {
      free(v);
      return sc_error_setc(SC_ERR_ARG, "bh: p-value %zu is not in [0, 1]", i);
    }
    v[i] = (vi_pair){p[i], i};
  }
  qsort(v, m, sizeof *v, cmp_vi_value);
  double run = 1.0;
  for (size_t r = m; r-- > 0;) {
    double x = v[r].v * (double)m / (double)(r + 1);
    if (x < run) run = x;
    v[r].v = run;
  }
  for (size_t r = 0; r < m; r++) q[v[r].i] = v[r].v;
  free(v);
  return 0;
}

/* ==== quantiles ============================================================= */

static int cmp_double(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

double an_percentile_sort(double *x, size_t n, double prob) {
  qsort(x, n, sizeof *x, cmp_double);
  double h = (double)(n - 1) * prob;
  size_t lo = (size_t)floor(h);
  if (lo >= n - 1) return x[n - 1];
  double t = h - (double)lo, a = x[lo], b = x[lo + 1];
  /* numpy's _lerp: exact at both ends. */
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/* ==== groups ================================================================ */

typedef struct {
  uint64_t id;
  size_t row;
} id_row;

static int cmp_id_row(const void *pa, const void *pb) {
  const id_row *a = pa, *b = pb;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row);
}

int an_groups_build(const uint64_t *group_ids, size_t n_rows, an_groups *out) {
  memset(out, 0, sizeof *out);
  id_row *p = malloc((n_rows ? n_rows : 1) * sizeof *p);
  out->rows = malloc((n_rows ? n_rows : 1) * sizeof *out->rows);
  out->group_of = malloc((n_rows ? n_rows : 1) * sizeof *out->group_of);
  out->ids = malloc((n_rows ? n_rows : 1) * sizeof *out->ids);
  out->start = malloc((n_rows + 1) * sizeof *out->start);
  if (!p || !out->rows || !out->group_of || !out->ids || !out->start) {
    free(p);
    an_groups_free(out);
    return sc_error_setc(SC_ERR_NOMEM, "groups: out of memory (%zu rows)", n_rows);
  }
  for (size_t i = 0; i < n_rows; i++) p[i] = (id_row){group_ids[i], i};
  qsort(p, n_rows, sizeof *p, cmp_id_row);
  out->n_rows = n_rows;
  size_t g = 0;
  for (size_t i = 0; i < n_rows; i++) {
    if (i == 0 || p[i].id != p[i - 1].id) {
      out->ids[g] = p[i].id;
      out->start[g] = i;
      g++;
    }
    out->rows[i] = p[i].row;
    out->group_of[p[i].row] = g - 1;
  }
  out->n_groups = g;
  out->start[g] = n_rows;
  free(p);
  return 0;
}

void an_groups_free(an_groups *g) {
  if (!g) return;
  free(g->ids);
  free(g->start);
  free(g->rows);
  free(g->group_of);
  memset(g, 0, sizeof *g);
}

size_t an_groups_resample_cap(const an_groups *g) {
  size_t mx = 0;
  for (size_t i = 0; i < g->n_groups; i++) {
    size_t s = g->start[i + 1] - g->start[i];
    if (s > mx) mx = s;
  }
  return g->n_groups * mx;
}

void an_groups_resample(const an_groups *g, sc_rng *rng, size_t *rows_out, size_t *n_out) {
  size_t k = 0;
  for (size_t i = 0; i < g->n_groups; i++) {
    size_t gi = (size_t)sc_rng_below(rng, g->n_groups);
    for (size_t r = g->start[gi]; r < g->start[gi + 1]; r++) rows_out[k++] = g->rows[r];
  }
  *n_out = k;
}

/* ==== bootstrap ============================================================= */

void an_boot_result_free(an_boot_result *r) {
  if (!r) return;
  free(r->lo);
  free(r->hi);
  free(r->se);
  free(r->values);
  memset(r, 0, sizeof *r);
}

int an_bootstrap(const an_groups *g, an_stat_fn fn, void *user, size_t n_stats,
                 size_t n_resamples, double ci, uint64_t seed, int keep_values,
                 an_boot_result *out) {
  memset(out, 0, sizeof *out);
  if (n_resamples == 0 || n_stats == 0 || !(ci > 0 && ci < 1) || g->n_groups == 0)
    return sc_error_setc(SC_ERR_ARG, "bootstrap: need resamples > 0, stats > 0, ci in (0, 1) and "
                                     "at least one group");
  if (n_resamples > SIZE_MAX / n_stats / sizeof(double))
    return sc_error_setc(SC_ERR_ARG, "bootstrap: %zu resamples is too many", n_resamples);
  out->n_stats = n_stats;
  out->n_resamples = n_resamples;
  size_t cap = an_groups_resample_cap(g);
  size_t *rows = malloc((cap ? cap : 1) * sizeof *rows);
  double *vals = malloc(n_resamples * n_stats * sizeof *vals);
  double *col = malloc(n_resamples * sizeof *col);
  out->lo = calloc(n_stats, sizeof *out->lo);
  out->hi = calloc(n_stats, sizeof *out->hi);
  out->se = calloc(n_stats, sizeof *out->se);
  int rc = 0;
  if (!rows || !vals || !col || !out->lo || !out->hi || !out->se) {
    rc = sc_error_setc(SC_ERR_NOMEM, "bootstrap: out of memory (%zu resamples)", n_resamples);
    goto fail;
  }
  sc_rng rng;
  sc_rng_seed(&rng, seed);
  size_t nv = 0;
  for (size_t b = 0; b < n_resamples; b++) {
    size_t nr;
    an_groups_resample(g, &rng, rows, &nr);
    int s = fn(rows, nr, user, vals + nv * n_stats);
    if (s < 0) {
      rc = s;
      goto fail;
    }
    if (s == 0) nv++;
  }
  out->n_valid = nv;
  if (nv == 0) {
    out->status = AN_STAT_NO_VALID;
  } else {
    for (size_t s = 0; s < n_stats; s++) {
      double m = 0;
      for (size_t b = 0; b < nv; b++) m += col[b] = vals[b * n_stats + s];
      m /= (double)nv;
      double ss = 0;
      for (size_t b = 0; b < nv; b++) ss += (col[b] - m) * (col[b] - m);
      out->se[s] = nv > 1 ? sqrt(ss / (double)(nv - 1)) : 0;
      out->lo[s] = an_percentile_sort(col, nv, (1 - ci) / 2);
      out->hi[s] = an_percentile_sort(col, nv, 1 - (1 - ci) / 2);
    }
  }
  free(rows);
  free(col);
  if (keep_values) out->values = vals;
  else free(vals);
  return 0;
fail:
  free(rows);
  free(vals);
  free(col);
  an_boot_result_free(out);
  return rc;
}

/* ==== permutation ============================================================ */

int an_permutation_test(const int *labels, size_t n_rows, const an_groups *g, an_perm_fn fn,
                        void *user, size_t n_perm, an_tail tail, uint64_t seed,
                        an_perm_result *out) {
  memset(out, 0, sizeof *out);
  out->p = 1;
  if (n_perm == 0) return sc_error_setc(SC_ERR_ARG, "permutation test: need permutations > 0");
  int *perm = malloc((n_rows ? n_rows : 1) * sizeof *perm);
  int *glab = g ? malloc((g->n_groups ? g->n_groups : 1) * sizeof *glab) : NULL;
  if (!perm || (g && !glab)) {
    free(perm);
    free(glab);
    return sc_error_setc(SC_ERR_NOMEM, "permutation test: out of memory (%zu rows)", n_rows);
  }
  int rc = 0;
  if (g) {
    for (size_t k = 0; k < g->n_groups; k++) {
      glab[k] = labels[g->rows[g->start[k]]];
      for (size_t r = g->start[k]; r < g->start[k + 1]; r++)
        if (labels[g->rows[r]] != glab[k]) {
          rc = sc_error_setc(SC_ERR_ARG,
                             "permutation test: group %llu has rows with different labels "
                             "(row %zu)",
                             (unsigned long long)g->ids[k], g->rows[r]);
          goto done;
        }
    }
  }
  int s = fn(labels, n_rows, user, &out->observed);
  if (s != 0) {
    rc = s < 0 ? s : 0;
    out->status = s > 0 ? s : 0;
    goto done;
  }
  double obs = tail == AN_TAIL_TWO ? fabs(out->observed) : out->observed;
  sc_rng rng;
  sc_rng_seed(&rng, seed);
  size_t ge = 0, nv = 0;
  for (size_t b = 0; b < n_perm; b++) {
    if (g) {
      sc_rng_shuffle(&rng, glab, g->n_groups, sizeof *glab);
      for (size_t k = 0; k < g->n_groups; k++)
        for (size_t r = g->start[k]; r < g->start[k + 1]; r++) perm[g->rows[r]] = glab[k];
    } else {
      memcpy(perm, labels, n_rows * sizeof *perm);
      sc_rng_shuffle(&rng, perm, n_rows, sizeof *perm);
    }
    double t;
    int st = fn(perm, n_rows, user, &t);
    if (st < 0) {
      rc = st;
      goto done;
    }
    if (st > 0) continue;
    nv++;
    if (tail == AN_TAIL_TWO) t = fabs(t);
    /* A tolerance so that permutations equal to the observed value in exact
     * arithmetic count as "as extreme" despite rounding. */
    if (t >= obs - 1e-12 * fmax(1.0, fabs(obs))) ge++;
  }
  out->n_valid = nv;
  if (nv == 0) out->status = AN_STAT_NO_VALID;
  else out->p = (double)(1 + ge) / (double)(1 + nv);
done:
  free(perm);
  free(glab);
  return rc;
}

/* ==== similarity ============================================================ */

int an_cosine(const double *a, const double *b, size_t d, double *out) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < d; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  *out = 0;
  if (!(aa > 0) || !(bb > 0)) return AN_STAT_ZERO_NORM;
  double c = ab / (sqrt(aa) * sqrt(bb));
  *out = c > 1 ? 1 : (c < -1 ? -1 : c);
  return AN_STAT_OK;
}

/* Rows of M [n, d] chosen by rows (or all), columns centred in f64, as f32. */
static float *centred_f32(const float *M, size_t d, size_t n, const size_t *rows, size_t m) {
  double *mu = calloc(d ? d : 1, sizeof *mu);
  size_t cnt = m * d;
  float *C = malloc((cnt ? cnt : 1) * sizeof *C);
  if (!mu || !C) {
    free(mu);
    free(C);
    return NULL;
  }
  for (size_t i = 0; i < m; i++) {
    const float *x = M + (rows ? rows[i] : i) * d;
    for (size_t j = 0; j < d; j++) mu[j] += x[j];
  }
  for (size_t j = 0; j < d; j++) mu[j] /= (double)m;
  for (size_t i = 0; i < m; i++) {
    const float *x = M + (rows ? rows[i] : i) * d;
    for (size_t j = 0; j < d; j++) C[i * d + j] = (float)((double)x[j] - mu[j]);
  }
  (void)n;
  free(mu);
  return C;
}

static double sumsq_f32(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

#define CKA_BLOCK 256

int an_cka_linear(const float *X, size_t d1, const float *Y, size_t d2, size_t n,
                  const size_t *rows, size_t n_rows, double *out) {
  *out = 0;
  size_t m = rows ? n_rows : n;
  if (m < 2) return AN_STAT_TOO_FEW;
  float *Xc = centred_f32(X, d1, n, rows, m);
  float *Yc = centred_f32(Y, d2, n, rows, m);
  float *buf = NULL;
  int rc = 0;
  if (!Xc || !Yc) goto nomem;
  double xy = 0, xx = 0, yy = 0; /* ‖YᵀX‖², ‖XᵀX‖², ‖YᵀY‖² (= the n×n forms) */
  double cost_feat = (double)m * ((double)d1 * d2 + (double)d1 * d1 + (double)d2 * d2);
  double cost_gram = (double)m * m * (double)(d1 + d2);
  if (cost_feat <= cost_gram) {
    size_t mx = d1 > d2 ? d1 : d2;
    buf = malloc(mx * mx * sizeof *buf);
    if (!buf) goto nomem;
    sc_sgemm(1, 0, (int64_t)d2, (int64_t)d1, (int64_t)m, 1.0f, Yc, (int64_t)d2, Xc, (int64_t)d1,
             0.0f, buf, (int64_t)d1);
    xy = sumsq_f32(buf, d2 * d1);
    sc_sgemm(1, 0, (int64_t)d1, (int64_t)d1, (int64_t)m, 1.0f, Xc, (int64_t)d1, Xc, (int64_t)d1,
             0.0f, buf, (int64_t)d1);
    xx = sumsq_f32(buf, d1 * d1);
    sc_sgemm(1, 0, (int64_t)d2, (int64_t)d2, (int64_t)m, 1.0f, Yc, (int64_t)d2, Yc, (int64_t)d2,
             0.0f, buf, (int64_t)d2);
    yy = sumsq_f32(buf, d2 * d2);
  } else {
    /* n×n kernels K = XXᵀ, L = YYᵀ (centred already), a block of rows at a
     * time so memory stays O(block·m). */
    buf = malloc(2 * (size_t)CKA_BLOCK * m * sizeof *buf);
    if (!buf) goto nomem;
    float *K = buf, *L = buf + (size_t)CKA_BLOCK * m;
    for (size_t i0 = 0; i0 < m; i0 += CKA_BLOCK) {
      size_t bl = m - i0 < CKA_BLOCK ? m - i0 : CKA_BLOCK;
      sc_sgemm(0, 1, (int64_t)bl, (int64_t)m, (int64_t)d1, 1.0f, Xc + i0 * d1, (int64_t)d1, Xc,
               (int64_t)d1, 0.0f, K, (int64_t)m);
      sc_sgemm(0, 1, (int64_t)bl, (int64_t)m, (int64_t)d2, 1.0f, Yc + i0 * d2, (int64_t)d2, Yc,
               (int64_t)d2, 0.0f, L, (int64_t)m);
      for (size_t t = 0; t < bl * m; t++) {
        xy += (double)K[t] * L[t];
        xx += (double)K[t] * K[t];
        yy += (double)L[t] * L[t];
      }
    }
  }
  if (!(xx > 0) || !(yy > 0)) {
    rc = AN_STAT_ZERO_VAR;
  } else {
    double c = xy / (sqrt(xx) * sqrt(yy));
    *out = c > 1 ? 1 : (c < 0 ? 0 : c);
  }
  free(Xc);
  free(Yc);
  free(buf);
  return rc;
nomem:
  free(Xc);
  free(Yc);
  free(buf);
  return sc_error_setc(SC_ERR_NOMEM, "cka: out of memory (%zu rows, %zu + %zu columns)", m, d1, d2);
}
