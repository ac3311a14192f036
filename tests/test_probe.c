/* test_probe.c: an_probe — image-grouped stratified folds (no image in two
 * folds, checked), LIBLINEAR probe predictions and CV accuracy (within and
 * transferred) against a scipy L2 logistic regression with LIBLINEAR's
 * objective (tests/reference/stats_reference.py probe), bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/probe.h"
#include "analysis/stats.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/json.h"
#include "tu.h"
#include "an_ref.h"

/* Groups of 1..4 rows (images), one label per image. */
static size_t make_groups(size_t n, uint64_t seed, uint64_t *gid, int *y) {
  sc_rng r;
  sc_rng_seed(&r, seed);
  size_t i = 0, g = 0;
  while (i < n) {
    size_t sz = 1 + (size_t)sc_rng_below(&r, 4);
    int lab = sc_rng_uniform(&r) < 0.4; /* unbalanced on purpose */
    for (size_t k = 0; k < sz && i < n; k++, i++) {
      gid[i] = 5000 + g * 17 % 1009; /* ids not in row order */
      y[i] = lab;
    }
    g++;
  }
  return g;
}

static void test_folds(void **state) {
  (void)state;
  enum { N = 200, K = 5 };
  uint64_t gid[N];
  int y[N], fold[N], fold2[N], fold3[N];
  make_groups(N, 1, gid, y);
  an_groups g;
  assert_int_equal(an_groups_build(gid, N, &g), 0);
  assert_int_equal(an_folds_grouped(&g, y, K, 42, fold), 0);
  assert_int_equal(an_folds_check(&g, fold, K), 0);
  /* Independently of an_folds_check: every image's rows share a fold. */
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < N; j++)
      if (gid[i] == gid[j]) assert_int_equal(fold[i], fold[j]);
  /* Stratified: per label, the images per fold differ by at most one. */
  for (int lab = 0; lab <= 1; lab++) {
    size_t cnt[K] = {0};
    for (size_t k = 0; k < g.n_groups; k++) {
      size_t r0 = g.rows[g.start[k]];
      if (y[r0] == lab) cnt[fold[r0]]++;
    }
    size_t mn = cnt[0], mx = cnt[0];
    for (int f = 1; f < K; f++) {
      if (cnt[f] < mn) mn = cnt[f];
      if (cnt[f] > mx) mx = cnt[f];
    }
    assert_true(mx - mn <= 1);
  }
  /* Deterministic for a seed; another seed deals differently. */
  assert_int_equal(an_folds_grouped(&g, y, K, 42, fold2), 0);
  assert_memory_equal(fold, fold2, sizeof fold);
  assert_int_equal(an_folds_grouped(&g, y, K, 43, fold3), 0);
  assert_true(memcmp(fold, fold3, sizeof fold) != 0);
  /* The check catches an image split across folds. */
  size_t gi = 3;
  while (g.start[gi + 1] - g.start[gi] < 2) gi++;
  size_t r0 = g.rows[g.start[gi]], r1 = g.rows[g.start[gi] + 1];
  fold2[r1] = (fold2[r0] + 1) % K;
  assert_int_equal(an_folds_check(&g, fold2, K), SC_ERR_INTERNAL);
  char want[64];
  snprintf(want, sizeof want, "image %llu is in folds", (unsigned long long)g.ids[gi]);
  assert_non_null(strstr(sc_error_get(), want));
  fold2[r1] = K;
  assert_int_equal(an_folds_check(&g, fold2, K), SC_ERR_INTERNAL);
  /* Too many folds for the images; a bad label. */
  assert_int_equal(an_folds_grouped(&g, y, g.n_groups + 1, 1, fold2), SC_ERR_ARG);
  y[7] = 2;
  assert_int_equal(an_folds_grouped(&g, y, K, 1, fold2), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "row 7"));
  an_groups_free(&g);
}

/* A fixed case: 6 features (one constant, one pure noise), a noisy linear
 * signal, and a "second language" matrix that shares part of the signal. */
static void make_case(size_t n, size_t d, const int *y, float *X, float *X2) {
  sc_rng r;
  sc_rng_seed(&r, 77);
  for (size_t i = 0; i < n; i++) {
    double s = y[i] ? 1 : -1;
    for (size_t j = 0; j < d; j++) {
      double v = sc_rng_normal(&r) * (1 + 0.5 * (double)j) + 10 * (double)(j % 3);
      if (j == 0) v += 0.9 * s;
      if (j == 1) v -= 0.6 * s;
      if (j == 4) v = 3.25; /* constant column */
      X[i * d + j] = (float)v;
      double v2 = v + sc_rng_normal(&r);
      if (j == 1) v2 += 1.2 * s; /* feature 1 flips sign in the other matrix */
      X2[i * d + j] = (float)v2;
    }
  }
}

static void test_probe_vs_reference(void **state) {
  (void)state;
  enum { N = 150, D = 6, K = 5 };
  uint64_t gid[N];
  int y[N], fold[N];
  static float X[N * D], X2[N * D];
  make_groups(N, 9, gid, y);
  make_case(N, D, y, X, X2);
  an_groups g;
  assert_int_equal(an_groups_build(gid, N, &g), 0);
  assert_int_equal(an_folds_grouped(&g, y, K, 5, fold), 0);
  assert_int_equal(an_folds_check(&g, fold, K), 0);
  const double C = 0.3;
  sc_json *in = sc_json_new_object();
  sc_json_add(in, "X", mat_f(X, N, D));
  sc_json_add(in, "X_eval", mat_f(X2, N, D));
  sc_json_add(in, "y", arr_i(y, N));
  sc_json_add(in, "fold", arr_i(fold, N));
  sc_json_add_num(in, "k", K);
  sc_json_add_num(in, "C", C);
  sc_json *out = run_ref("probe", in);

  an_cv_eval ev[2];
  const float *eval[2] = {X, X2};
  assert_int_equal(an_probe_cv(X, D, y, N, fold, K, C, 2, eval, ev), 0);
  near(ev[0].acc, sc_json_num(sc_json_get(out, "acc")), 1e-15, "within accuracy");
  near(ev[1].acc, sc_json_num(sc_json_get(out, "acc_eval")), 1e-15, "transfer accuracy");
  assert_true(ev[0].acc > 0.65 && ev[0].acc < 0.97); /* a case where errors exist */
  assert_true(ev[1].acc < ev[0].acc);
  /* Per-row predictions and decision values, fold by fold. */
  sc_json *pred = sc_json_get(out, "pred"), *pe = sc_json_get(out, "pred_eval");
  sc_json *score = sc_json_get(out, "score");
  size_t tr[N], te[N];
  for (size_t f = 0; f < K; f++) {
    size_t ntr = 0, nte = 0;
    for (size_t i = 0; i < N; i++) {
      if ((size_t)fold[i] == f) te[nte++] = i;
      else tr[ntr++] = i;
    }
    an_probe *p;
    assert_int_equal(an_probe_train(X, D, y, tr, ntr, C, &p), 0);
    int pr[N];
    double sc[N];
    an_probe_predict(p, X, te, nte, pr, sc);
    for (size_t t = 0; t < nte; t++) {
      assert_int_equal(pr[t], (int)num_at(pred, (int)te[t]));
      assert_int_equal(ev[0].correct[te[t]], pr[t] == y[te[t]]);
      near(sc[t], num_at(score, (int)te[t]), 2e-3, "decision value");
    }
    an_probe_predict(p, X2, te, nte, pr, NULL);
    for (size_t t = 0; t < nte; t++) assert_int_equal(pr[t], (int)num_at(pe, (int)te[t]));
    /* The constant column carries no weight. */
    double w[D], b;
    an_probe_weights(p, w, &b);
    assert_true(w[4] == 0);
    assert_int_equal((int)an_probe_dim(p), D);
    an_probe_free(p);
  }
  size_t tot = 0;
  for (size_t f = 0; f < K; f++) tot += ev[0].fold_n[f];
  assert_int_equal(tot, N);
  /* Bootstrap CI over images brackets the accuracy, deterministically. */
  double lo, hi, lo2, hi2;
  assert_int_equal(an_cv_acc_ci(&ev[0], &g, 400, 0.95, 3, &lo, &hi), 0);
  assert_true(lo < ev[0].acc && ev[0].acc < hi && hi - lo < 0.3);
  assert_int_equal(an_cv_acc_ci(&ev[0], &g, 400, 0.95, 3, &lo2, &hi2), 0);
  assert_true(lo == lo2 && hi == hi2);
  an_cv_eval_free(&ev[0]);
  an_cv_eval_free(&ev[1]);
  an_groups_free(&g);
  sc_json_free(out);
}

static void test_probe_edge_cases(void **state) {
  (void)state;
  enum { N = 20, D = 3 };
  float X[N * D];
  int y[N];
  size_t rows[N];
  for (size_t i = 0; i < N; i++) {
    rows[i] = i;
    y[i] = 1;
    for (size_t j = 0; j < D; j++) X[i * D + j] = (float)(i * j);
  }
  /* One label only: the constant prediction. */
  an_probe *p;
  assert_int_equal(an_probe_train(X, D, y, rows, N, 1.0, &p), 0);
  assert_true(an_probe_single_label(p));
  int pr[N];
  an_probe_predict(p, X, rows, N, pr, NULL);
  for (size_t i = 0; i < N; i++) assert_int_equal(pr[i], 1);
  an_probe_free(p);
  /* Bad labels, bad values, bad C. */
  y[3] = -1;
  assert_int_equal(an_probe_train(X, D, y, rows, N, 1.0, &p), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "row 3"));
  assert_null(p);
  y[3] = 0;
  X[5 * D + 2] = NAN;
  assert_int_equal(an_probe_train(X, D, y, rows, N, 1.0, &p), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "row 5 column 2"));
  X[5 * D + 2] = 0;
  assert_int_equal(an_probe_train(X, D, y, rows, N, 0.0, &p), SC_ERR_ARG);
  assert_int_equal(an_probe_train(X, D, y, rows, 0, 1.0, &p), SC_ERR_ARG);
  /* An empty fold. */
  int fold[N];
  for (size_t i = 0; i < N; i++) fold[i] = (int)(i % 2);
  an_cv_eval ev;
  const float *eval[1] = {X};
  assert_int_equal(an_probe_cv(X, D, y, N, fold, 3, 1.0, 1, eval, &ev), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "fold 2 is empty"));
  an_cv_eval_free(&ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_folds),
      cmocka_unit_test(test_probe_vs_reference),
      cmocka_unit_test(test_probe_edge_cases),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
