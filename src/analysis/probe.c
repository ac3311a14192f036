/* probe.c: LIBLINEAR L2R_LR probes on standardised features, image-grouped
 * stratified folds, cross-validated accuracy (within and across languages). */
#include "analysis/probe.h"

#include <linear.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"

/* Tighter than LIBLINEAR's 0.01 so the solution (and every prediction away
 * from the boundary) matches an exact minimiser of the same objective; the
 * Newton solver converges quadratically, so this costs a step or two. */
#ifndef PROBE_EPS
#define PROBE_EPS 1e-4
#endif

struct an_probe {
  size_t d;
  double *mu, *inv_sd; /* [d] training-fold standardisation (inv_sd 0: constant feature) */
  double *w;           /* [d] weights of label 1 in standardised space */
  double b;            /* bias */
  int single;          /* -1: two labels seen; else the only label */
};

static void quiet_print(const char *s) { (void)s; }

/* ==== folds ================================================================== */

int an_folds_grouped(const an_groups *g, const int *y, size_t k, uint64_t seed, int *fold_of_row) {
  if (k < 2 || k > g->n_groups)
    return sc_error_setc(SC_ERR_ARG, "probe folds: %zu folds need at least %zu images, have %zu", k,
                         k < 2 ? (size_t)2 : k, g->n_groups);
  for (size_t i = 0; i < g->n_rows; i++)
    if (y[i] != 0 && y[i] != 1)
      return sc_error_setc(SC_ERR_ARG, "probe folds: row %zu has label %d (want 0 or 1)", i, y[i]);
  size_t ng = g->n_groups;
  size_t *order = malloc(ng * sizeof *order);
  size_t *dealt = malloc(ng * sizeof *dealt);
  if (!order || !dealt) {
    free(order);
    free(dealt);
    return sc_error_setc(SC_ERR_NOMEM, "probe folds: out of memory (%zu images)", ng);
  }
  for (size_t i = 0; i < ng; i++) order[i] = i;
  sc_rng rng;
  sc_rng_seed(&rng, seed);
  sc_rng_shuffle(&rng, order, ng, sizeof *order);
  size_t nd = 0;
  for (int lab = 0; lab <= 1; lab++)
    for (size_t t = 0; t < ng; t++) {
      size_t gi = order[t], ones = 0, n = g->start[gi + 1] - g->start[gi];
      for (size_t r = g->start[gi]; r < g->start[gi + 1]; r++) ones += y[g->rows[r]] == 1;
      int glab = 2 * ones > n; /* majority, ties → 0 */
      if (glab == lab) dealt[nd++] = gi;
    }
  for (size_t t = 0; t < nd; t++) {
    size_t gi = dealt[t];
    for (size_t r = g->start[gi]; r < g->start[gi + 1]; r++) fold_of_row[g->rows[r]] = (int)(t % k);
  }
  free(order);
  free(dealt);
  return 0;
}

int an_folds_check(const an_groups *g, const int *fold_of_row, size_t k) {
  for (size_t gi = 0; gi < g->n_groups; gi++) {
    int f0 = fold_of_row[g->rows[g->start[gi]]];
    for (size_t r = g->start[gi]; r < g->start[gi + 1]; r++) {
      int f = fold_of_row[g->rows[r]];
      if (f < 0 || (size_t)f >= k)
        return sc_error_setc(SC_ERR_INTERNAL, "probe folds: row %zu has fold %d outside [0, %zu)",
                             g->rows[r], f, k);
      if (f != f0)
        return sc_error_setc(SC_ERR_INTERNAL, "probe folds: image %llu is in folds %d and %d",
                             (unsigned long long)g->ids[gi], f0, f);
    }
  }
  return 0;
}

/* ==== one probe ================================================================ */

void an_probe_free(an_probe *p) {
  if (!p) return;
  free(p->mu);
  free(p->inv_sd);
  free(p->w);
  free(p);
}

size_t an_probe_dim(const an_probe *p) { return p->d; }
int an_probe_single_label(const an_probe *p) { return p->single >= 0; }

void an_probe_weights(const an_probe *p, double *w, double *b) {
  memcpy(w, p->w, p->d * sizeof *w);
  *b = p->b;
}

static int standardise(an_probe *p, const float *X, const size_t *rows, size_t n_rows) {
  size_t d = p->d;
  for (size_t i = 0; i < n_rows; i++) {
    const float *x = X + rows[i] * d;
    for (size_t j = 0; j < d; j++) {
      if (!isfinite(x[j]))
        return sc_error_setc(SC_ERR_ARG, "probe: row %zu column %zu is not finite", rows[i], j);
      p->mu[j] += x[j];
    }
  }
  for (size_t j = 0; j < d; j++) p->mu[j] /= (double)n_rows;
  for (size_t i = 0; i < n_rows; i++) {
    const float *x = X + rows[i] * d;
    for (size_t j = 0; j < d; j++) {
      double e = x[j] - p->mu[j];
      p->inv_sd[j] += e * e;
    }
  }
  for (size_t j = 0; j < d; j++) {
    double sd = sqrt(p->inv_sd[j] / (double)n_rows);
    /* A relative floor: a column constant up to f32 rounding is constant. */
    p->inv_sd[j] = sd > 1e-12 * fmax(1.0, fabs(p->mu[j])) ? 1.0 / sd : 0.0;
  }
  return 0;
}

int an_probe_train(const float *X, size_t d, const int *y, const size_t *rows, size_t n_rows,
                   double c, an_probe **out) {
  *out = NULL;
  if (n_rows == 0 || d == 0 || !(c > 0))
    return sc_error_setc(SC_ERR_ARG, "probe: need rows > 0, d > 0 and C > 0 (rows %zu, d %zu)",
                         n_rows, d);
  if (d >= (size_t)INT32_MAX - 2 || n_rows > (size_t)INT32_MAX)
    return sc_error_setc(SC_ERR_ARG, "probe: %zu rows x %zu columns is too large for LIBLINEAR",
                         n_rows, d);
  size_t n1 = 0;
  for (size_t i = 0; i < n_rows; i++) {
    int v = y[rows[i]];
    if (v != 0 && v != 1)
      return sc_error_setc(SC_ERR_ARG, "probe: row %zu has label %d (want 0 or 1)", rows[i], v);
    n1 += v;
  }
  an_probe *p = calloc(1, sizeof *p);
  if (!p) return sc_error_setc(SC_ERR_NOMEM, "probe: out of memory");
  p->d = d;
  p->single = -1;
  p->mu = calloc(d, sizeof *p->mu);
  p->inv_sd = calloc(d, sizeof *p->inv_sd);
  p->w = calloc(d, sizeof *p->w);
  struct feature_node *nodes = NULL, **xs = NULL;
  double *yy = NULL;
  struct model *m = NULL;
  int rc = 0;
  if (!p->mu || !p->inv_sd || !p->w) goto nomem;
  if ((rc = standardise(p, X, rows, n_rows))) goto fail;
  if (n1 == 0 || n1 == n_rows) {
    /* One label only: LIBLINEAR would fit a one-class one-vs-rest model;
     * the sensible probe is the constant prediction. */
    p->single = n1 ? 1 : 0;
    p->b = n1 ? 1.0 : -1.0;
    *out = p;
    return 0;
  }
  size_t per = d + 2; /* d features, the bias node, the terminator */
  if (n_rows > SIZE_MAX / per / sizeof *nodes) goto nomem;
  nodes = malloc(n_rows * per * sizeof *nodes);
  xs = malloc(n_rows * sizeof *xs);
  yy = malloc(n_rows * sizeof *yy);
  if (!nodes || !xs || !yy) goto nomem;
  for (size_t i = 0; i < n_rows; i++) {
    const float *x = X + rows[i] * d;
    struct feature_node *nd = nodes + i * per;
    xs[i] = nd;
    size_t t = 0;
    for (size_t j = 0; j < d; j++) {
      double z = (x[j] - p->mu[j]) * p->inv_sd[j];
      if (z != 0) nd[t++] = (struct feature_node){(int)j + 1, z};
    }
    nd[t++] = (struct feature_node){(int)d + 1, 1.0};
    nd[t] = (struct feature_node){-1, 0.0};
    yy[i] = y[rows[i]] ? 1.0 : -1.0;
  }
  struct problem prob = {(int)n_rows, (int)d + 1, yy, xs, 1.0};
  struct parameter par;
  memset(&par, 0, sizeof par);
  par.solver_type = L2R_LR;
  par.eps = PROBE_EPS;
  par.C = c;
  const char *why = check_parameter(&prob, &par);
  if (why) {
    rc = sc_error_setc(SC_ERR_INTERNAL, "probe: LIBLINEAR refused the problem: %s", why);
    goto fail;
  }
  set_print_string_function(quiet_print);
  m = train(&prob, &par);
  if (!m || m->nr_class != 2) {
    rc = sc_error_setc(SC_ERR_INTERNAL, "probe: LIBLINEAR training failed (%zu rows)", n_rows);
    goto fail;
  }
  /* LIBLINEAR's decision value is positive for its first label (the first
   * label it met in the data). */
  double sign = m->label[0] == 1 ? 1.0 : -1.0;
  for (size_t j = 0; j < d; j++) p->w[j] = sign * m->w[j];
  p->b = sign * m->w[d] * m->bias;
  free_and_destroy_model(&m);
  free(nodes);
  free(xs);
  free(yy);
  *out = p;
  return 0;
nomem:
  rc = sc_error_setc(SC_ERR_NOMEM, "probe: out of memory (%zu rows x %zu columns)", n_rows, d);
fail:
  if (m) free_and_destroy_model(&m);
  free(nodes);
  free(xs);
  free(yy);
  an_probe_free(p);
  return rc;
}

void an_probe_predict(const an_probe *p, const float *X, const size_t *rows, size_t n_rows,
                      int *pred, double *score) {
  size_t d = p->d;
  for (size_t i = 0; i < n_rows; i++) {
    double s = p->b;
    if (p->single < 0) {
      const float *x = X + rows[i] * d;
      for (size_t j = 0; j < d; j++) s += p->w[j] * ((x[j] - p->mu[j]) * p->inv_sd[j]);
    }
    pred[i] = s > 0;
    if (score) score[i] = s;
  }
}

/* ==== cross-validation ====================================================== */

void an_cv_eval_free(an_cv_eval *e) {
  if (!e) return;
  free(e->correct);
  free(e->fold_acc);
  free(e->fold_n);
  memset(e, 0, sizeof *e);
}

int an_probe_cv(const float *X_train, size_t d, const int *y, size_t n, const int *fold, size_t k,
                double c, size_t n_eval, const float *const *X_eval, an_cv_eval *out) {
  for (size_t e = 0; e < n_eval; e++) memset(&out[e], 0, sizeof out[e]);
  if (k < 2 || n == 0) return sc_error_setc(SC_ERR_ARG, "probe cv: need k >= 2 and rows > 0");
  size_t *tr = malloc(n * sizeof *tr), *te = malloc(n * sizeof *te);
  int *pred = malloc(n * sizeof *pred);
  int rc = 0;
  if (!tr || !te || !pred) goto nomem;
  for (size_t e = 0; e < n_eval; e++) {
    out[e].k = k;
    out[e].n_rows = n;
    out[e].correct = calloc(n, sizeof *out[e].correct);
    out[e].fold_acc = calloc(k, sizeof *out[e].fold_acc);
    out[e].fold_n = calloc(k, sizeof *out[e].fold_n);
    if (!out[e].correct || !out[e].fold_acc || !out[e].fold_n) goto nomem;
  }
  for (size_t f = 0; f < k; f++) {
    size_t ntr = 0, nte = 0;
    for (size_t i = 0; i < n; i++) {
      if (fold[i] < 0 || (size_t)fold[i] >= k) {
        rc = sc_error_setc(SC_ERR_ARG, "probe cv: row %zu has fold %d outside [0, %zu)", i, fold[i], k);
        goto fail;
      }
      if ((size_t)fold[i] == f) te[nte++] = i;
      else tr[ntr++] = i;
    }
    if (nte == 0 || ntr == 0) {
      rc = sc_error_setc(SC_ERR_ARG, "probe cv: fold %zu is %s", f, nte ? "everything" : "empty");
      goto fail;
    }
    an_probe *p;
    if ((rc = an_probe_train(X_train, d, y, tr, ntr, c, &p))) goto fail;
    for (size_t e = 0; e < n_eval; e++) {
      an_probe_predict(p, X_eval[e], te, nte, pred, NULL);
      size_t ok = 0;
      for (size_t i = 0; i < nte; i++) {
        int hit = pred[i] == y[te[i]];
        out[e].correct[te[i]] = (signed char)hit;
        ok += (size_t)hit;
      }
      out[e].fold_n[f] = nte;
      out[e].fold_acc[f] = (double)ok / (double)nte;
      out[e].n_correct += ok;
      if (an_probe_single_label(p)) out[e].single_label_folds++;
    }
    an_probe_free(p);
  }
  for (size_t e = 0; e < n_eval; e++) {
    out[e].acc = (double)out[e].n_correct / (double)n;
    double s = 0;
    for (size_t f = 0; f < k; f++) s += out[e].fold_acc[f];
    out[e].mean_fold_acc = s / (double)k;
  }
  free(tr);
  free(te);
  free(pred);
  return 0;
nomem:
  rc = sc_error_setc(SC_ERR_NOMEM, "probe cv: out of memory (%zu rows)", n);
fail:
  free(tr);
  free(te);
  free(pred);
  for (size_t e = 0; e < n_eval; e++) an_cv_eval_free(&out[e]);
  return rc;
}

static int acc_stat(const size_t *rows, size_t n_rows, void *user, double *value) {
  const signed char *correct = user;
  if (n_rows == 0) return AN_STAT_TOO_FEW;
  size_t ok = 0;
  for (size_t i = 0; i < n_rows; i++) ok += (size_t)correct[rows[i]];
  *value = (double)ok / (double)n_rows;
  return 0;
}

int an_cv_acc_ci(const an_cv_eval *ev, const an_groups *g, size_t n_resamples, double ci,
                 uint64_t seed, double *lo, double *hi) {
  *lo = *hi = 0;
  if (g->n_rows != ev->n_rows)
    return sc_error_setc(SC_ERR_ARG, "probe cv: %zu grouped rows but %zu evaluated rows", g->n_rows,
                         ev->n_rows);
  an_boot_result br;
  int rc = an_bootstrap(g, acc_stat, (void *)ev->correct, 1, n_resamples, ci, seed, 0, &br);
  if (rc) return rc;
  int st = br.status;
  if (st == AN_STAT_OK) {
    *lo = br.lo[0];
    *hi = br.hi[0];
  }
  an_boot_result_free(&br);
  return st;
}
