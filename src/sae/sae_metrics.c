/* sae_metrics.c: SAE metrics with f64 accumulators (see sae_metrics.h). */
#include "sae/sae_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/blas.h"

struct sae_metrics_acc {
  int64_t d, n, tokens;
  double dense_threshold;
  double *shift;        /* (d) first token seen: sums are of x − shift (stable variance) */
  double *sum;          /* (d) Σ (x − shift) */
  double sumsq;         /* Σ ‖x − shift‖² */
  double sse;           /* Σ ‖x − x̂‖² */
  double legacy, cosine, l2_ratio;  /* sums of per-token values */
  int64_t legacy_n, cos_n, l2_n, active;
  int64_t *fired;       /* (n) tokens each latent fired on */
};

int sae_metrics_create(sae_metrics_acc **out, int64_t d, int64_t n, double dense_threshold) {
  *out = NULL;
  if (d < 1 || n < 1) return sc_error_setc(SC_ERR_ARG, "metrics: d and n must be >= 1");
  sae_metrics_acc *a = calloc(1, sizeof *a);
  if (!a) return sc_error_setc(SC_ERR_NOMEM, "metrics: out of memory");
  a->d = d, a->n = n, a->dense_threshold = dense_threshold;
  a->shift = calloc((size_t)d, sizeof *a->shift);
  a->sum = calloc((size_t)d, sizeof *a->sum);
  a->fired = calloc((size_t)n, sizeof *a->fired);
  if (!a->shift || !a->sum || !a->fired) {
    sae_metrics_free(a);
    return sc_error_setc(SC_ERR_NOMEM, "metrics: out of memory");
  }
  *out = a;
  return 0;
}

void sae_metrics_free(sae_metrics_acc *a) {
  if (!a) return;
  free(a->shift), free(a->sum), free(a->fired);
  free(a);
}

/* Per-token sums that need no batch mean. */
static void add_token(sae_metrics_acc *a, const float *x, const float *y) {
  double xx = 0, yy = 0, xy = 0, ee = 0, ss = 0;
  for (int64_t j = 0; j < a->d; j++) {
    double e = (double)x[j] - y[j], c = (double)x[j] - a->shift[j];
    xx += (double)x[j] * x[j], yy += (double)y[j] * y[j], xy += (double)x[j] * y[j];
    ee += e * e, ss += c * c;
    a->sum[j] += c;
  }
  a->sse += ee, a->sumsq += ss;
  if (xx > 0) a->l2_ratio += sqrt(yy / xx), a->l2_n++;
  if (xx > 0 && yy > 0) a->cosine += xy / sqrt(xx * yy), a->cos_n++;
}

int sae_metrics_add(sae_metrics_acc *a, const float *x, const float *xhat, const sae_codes *codes) {
  int64_t B = codes->rows, d = a->d;
  double *mean = calloc((size_t)d, sizeof *mean);
  if (!mean) return sc_error_setc(SC_ERR_NOMEM, "metrics: out of memory");
  if (a->tokens == 0 && B > 0)
    for (int64_t j = 0; j < d; j++) a->shift[j] = x[j];
  for (int64_t r = 0; r < B; r++)
    for (int64_t j = 0; j < d; j++) mean[j] += x[r * d + j] / (double)B;
  for (int64_t r = 0; r < B; r++) {
    add_token(a, x + r * d, xhat + r * d);
    double ee = 0, tt = 0;
    for (int64_t j = 0; j < d; j++) {
      double e = (double)x[r * d + j] - xhat[r * d + j], c = x[r * d + j] - mean[j];
      ee += e * e, tt += c * c;
    }
    if (tt > 0) a->legacy += 1.0 - ee / tt, a->legacy_n++;
  }
  for (int64_t e = 0; e < codes->row_ptr[B]; e++) a->fired[codes->idx[e]]++;
  a->active += codes->row_ptr[B];
  a->tokens += B;
  free(mean);
  return 0;
}

void sae_metrics_result(const sae_metrics_acc *a, sae_metrics *m) {
  memset(m, 0, sizeof *m);
  m->tokens = a->tokens;
  if (a->tokens == 0) return;
  double N = (double)a->tokens, mean_sq = 0.0;
  for (int64_t j = 0; j < a->d; j++) mean_sq += (a->sum[j] / N) * (a->sum[j] / N);
  double total = a->sumsq - N * mean_sq; /* Σ‖x − x̄‖², shifted for stability */
  m->mse = a->sse / N;
  m->fvu = total > 0 ? a->sse / total : NAN;
  m->explained_variance = 1.0 - m->fvu;
  m->explained_variance_legacy = a->legacy_n ? a->legacy / (double)a->legacy_n : NAN;
  m->l0 = (double)a->active / N;
  int64_t dead = 0, dense = 0;
  for (int64_t i = 0; i < a->n; i++) {
    dead += a->fired[i] == 0;
    dense += (double)a->fired[i] / N > a->dense_threshold;
  }
  m->dead_fraction = (double)dead / (double)a->n;
  m->dense_fraction = (double)dense / (double)a->n;
  m->cosine = a->cos_n ? a->cosine / (double)a->cos_n : NAN;
  m->l2_ratio = a->l2_n ? a->l2_ratio / (double)a->l2_n : NAN;
}

/* Row norms into inv (1/‖row‖, 0 for a zero row). */
static void inv_norms(double *inv, const float *A, int64_t na, int64_t d) {
  for (int64_t i = 0; i < na; i++) {
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += (double)A[i * d + j] * A[i * d + j];
    inv[i] = s > 0 ? 1.0 / sqrt(s) : 0.0;
  }
}

double sae_mean_max_cosine(const float *A, int64_t na, const float *B, int64_t nb, int64_t d) {
  float *g = malloc((size_t)(na * nb) * sizeof *g);
  double *ia = malloc((size_t)na * sizeof *ia), *ib = malloc((size_t)nb * sizeof *ib), tot = 0;
  if (!g || !ia || !ib) {
    free(g), free(ia), free(ib);
    return NAN;
  }
  inv_norms(ia, A, na, d), inv_norms(ib, B, nb, d);
  sc_sgemm(0, 1, na, nb, d, 1.0f, A, d, B, d, 0.0f, g, nb);
  for (int64_t i = 0; i < na; i++) {
    double best = -1.0;
    for (int64_t j = 0; j < nb; j++) {
      double c = g[i * nb + j] * ia[i] * ib[j];
      if (c > best) best = c;
    }
    tot += best;
  }
  free(g), free(ia), free(ib);
  return tot / (double)na;
}
