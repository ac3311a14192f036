/* test_stats.c: an_stats (Cohen's d, Mann–Whitney, BH, bootstrap,
 * permutation, CKA, cosine, degenerate cases) against the numpy/scipy
 * reference tests/reference/stats_reference.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/stats.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/json.h"
#include "tu.h"
#include "an_ref.h"

/* ==== RNG port ==== */

static void test_rng_port(void **state) {
  (void)state;
  sc_json *in = sc_json_new_object();
  sc_json_add_num(in, "seed", 12345);
  sc_json_add_num(in, "n", 8);
  sc_json_add_num(in, "below", 7);
  sc_json *out = run_ref("rng", in);
  sc_rng r;
  sc_rng_seed(&r, 12345);
  for (int i = 0; i < 8; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)sc_rng_u64(&r));
    assert_string_equal(buf, sc_json_str(sc_json_at(sc_json_get(out, "u64"), i)));
  }
  for (int i = 0; i < 8; i++)
    assert_int_equal((int)sc_rng_below(&r, 7), (int)num_at(sc_json_get(out, "below"), i));
  sc_json_free(out);
}

/* ==== Cohen's d ==== */

static void test_cohens_d(void **state) {
  (void)state;
  sc_rng r;
  sc_rng_seed(&r, 1);
  enum { NC = 5 };
  double a[NC][40], b[NC][40];
  size_t na[NC] = {40, 7, 3, 25, 2}, nb[NC] = {33, 9, 2, 25, 5};
  for (int c = 0; c < NC; c++) {
    for (size_t i = 0; i < na[c]; i++) a[c][i] = sc_rng_normal(&r) * (1 + c) + 0.5 * c;
    for (size_t i = 0; i < nb[c]; i++) b[c][i] = sc_rng_normal(&r) * 2 - 0.3;
  }
  sc_json *in = sc_json_new_object(), *cases = sc_json_new_array();
  sc_json_add(in, "cases", cases);
  for (int c = 0; c < NC; c++) {
    sc_json *o = sc_json_new_object();
    sc_json_add(o, "a", arr_d(a[c], na[c]));
    sc_json_add(o, "b", arr_d(b[c], nb[c]));
    sc_json_add(cases, NULL, o);
  }
  sc_json *out = run_ref("cohen", in);
  for (int c = 0; c < NC; c++) {
    double d;
    int st = an_cohens_d(a[c], na[c], b[c], nb[c], &d);
    sc_json *w = sc_json_at(sc_json_get(out, "cases"), c);
    assert_string_equal(an_stat_status_str(st), sc_json_str(sc_json_get(w, "status")));
    near(d, sc_json_num(sc_json_get(w, "d")), 1e-12, "cohen's d");
  }
  sc_json_free(out);
  /* Sample (n − 1) SD, not the population SD: a hand case. a = {0, 2},
   * b = {4, 6}: s_p = sqrt(2), d = −4 / sqrt(2). */
  double ha[2] = {0, 2}, hb[2] = {4, 6}, d;
  assert_int_equal(an_cohens_d(ha, 2, hb, 2, &d), AN_STAT_OK);
  near(d, -4 / sqrt(2.0), 1e-15, "hand d");
}

static void test_degenerate(void **state) {
  (void)state;
  double x[4] = {1, 1, 1, 1}, y[3] = {2, 2, 2}, d = 99;
  assert_int_equal(an_cohens_d(x, 4, y, 3, &d), AN_STAT_ZERO_VAR);
  assert_true(d == 0);
  assert_int_equal(an_cohens_d(x, 1, y, 3, &d), AN_STAT_TOO_FEW);
  assert_true(d == 0);
  an_moments m;
  assert_int_equal(an_moments_f64(x, 0, &m), AN_STAT_TOO_FEW);
  assert_true(m.mean == 0 && m.var == 0);
  double bad[2] = {1, NAN};
  assert_int_equal(an_cohens_d(bad, 2, y, 3, &d), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "not finite"));
  an_mw_result mw;
  assert_int_equal(an_mannwhitney(x, 0, y, 3, AN_MW_AUTO, &mw), AN_STAT_TOO_FEW);
  assert_true(mw.p == 1);
  double z[12] = {0};
  assert_int_equal(an_mannwhitney(z, 6, z + 6, 6, AN_MW_ASYMPTOTIC, &mw), AN_STAT_ALL_TIES);
  assert_true(mw.p == 1);
  double c;
  double u[3] = {0, 0, 0}, v[3] = {1, 2, 3};
  assert_int_equal(an_cosine(u, v, 3, &c), AN_STAT_ZERO_NORM);
  assert_true(c == 0);
  float X[8] = {1, 2, 1, 2, 1, 2, 1, 2}, Y[4] = {3, 3, 3, 3};
  double k = 5;
  assert_int_equal(an_cka_linear(X, 2, Y, 1, 4, NULL, 0, &k), AN_STAT_ZERO_VAR);
  assert_true(k == 0);
  assert_int_equal(an_cka_linear(X, 2, Y, 1, 1, NULL, 0, &k), AN_STAT_TOO_FEW);
  double p[3] = {0.1, 1.5, 0.2}, q[3];
  assert_int_equal(an_bh_qvalues(p, 3, q), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "p-value 1"));
  assert_string_equal(an_stat_status_str(AN_STAT_NO_VALID), "no_valid_resample");
}

/* ==== Mann–Whitney ==== */

static void test_mannwhitney(void **state) {
  (void)state;
  sc_rng r;
  sc_rng_seed(&r, 7);
  enum { NC = 8 };
  static double a[NC][60], b[NC][60];
  size_t na[NC] = {6, 5, 30, 40, 3, 8, 7, 1};
  size_t nb[NC] = {7, 8, 35, 38, 40, 8, 6, 9};
  /* 0: small no ties (exact), 1: small with ties (asymptotic), 2: large no
   * ties, 3: large with ties, 4: 3 vs 40 (exact), 5: 8 vs 8 shifted (exact),
   * 6: small with ties, forced exact, 7: n_a = 1 (exact). */
  const char *meth[NC] = {"auto", "auto", "auto", "auto", "auto", "auto", "exact", "auto"};
  an_mw_method cm[NC] = {AN_MW_AUTO, AN_MW_AUTO, AN_MW_AUTO, AN_MW_AUTO,
                         AN_MW_AUTO, AN_MW_AUTO, AN_MW_EXACT, AN_MW_AUTO};
  int ties[NC] = {0, 1, 0, 1, 0, 0, 1, 0};
  for (int c = 0; c < NC; c++) {
    for (size_t i = 0; i < na[c]; i++) {
      double v = sc_rng_normal(&r) + 0.8;
      a[c][i] = ties[c] ? round(v * 2) : v;
    }
    for (size_t i = 0; i < nb[c]; i++) {
      double v = sc_rng_normal(&r) + (c == 5 ? 2.5 : 0);
      b[c][i] = ties[c] ? round(v * 2) : v;
    }
  }
  sc_json *in = sc_json_new_object(), *cases = sc_json_new_array();
  sc_json_add(in, "cases", cases);
  for (int c = 0; c < NC; c++) {
    sc_json *o = sc_json_new_object();
    sc_json_add(o, "a", arr_d(a[c], na[c]));
    sc_json_add(o, "b", arr_d(b[c], nb[c]));
    sc_json_add_str(o, "method", meth[c]);
    sc_json_add(cases, NULL, o);
  }
  sc_json *out = run_ref("mwu", in);
  int expect_exact[NC] = {1, 0, 0, 0, 1, 1, 1, 1};
  for (int c = 0; c < NC; c++) {
    an_mw_result res;
    assert_int_equal(an_mannwhitney(a[c], na[c], b[c], nb[c], cm[c], &res), AN_STAT_OK);
    sc_json *w = sc_json_at(sc_json_get(out, "cases"), c);
    char what[64];
    snprintf(what, sizeof what, "mwu case %d u1", c);
    near(res.u1, sc_json_num(sc_json_get(w, "u1")), 1e-12, what);
    snprintf(what, sizeof what, "mwu case %d p", c);
    near(res.p, sc_json_num(sc_json_get(w, "p")), 1e-10, what);
    assert_int_equal(res.exact, expect_exact[c]);
  }
  sc_json_free(out);
}

/* ==== Benjamini–Hochberg ==== */

static void test_bh(void **state) {
  (void)state;
  sc_rng r;
  sc_rng_seed(&r, 3);
  enum { M = 57 };
  double p[M], q[M];
  for (int i = 0; i < M; i++) p[i] = pow(sc_rng_uniform(&r), 3);
  p[3] = p[10] = p[20]; /* ties */
  p[5] = 0;
  p[6] = 1;
  p[7] = 1e-12;
  sc_json *in = sc_json_new_object();
  sc_json_add(in, "p", arr_d(p, M));
  sc_json *out = run_ref("bh", in);
  assert_int_equal(an_bh_qvalues(p, M, q), 0);
  for (int i = 0; i < M; i++) {
    near(q[i], num_at(sc_json_get(out, "q"), i), 1e-13, "bh q");
    assert_true(q[i] <= 1 && q[i] >= p[i]);
  }
  /* In place, and monotone in p. */
  double pc[M];
  memcpy(pc, p, sizeof pc);
  assert_int_equal(an_bh_qvalues(pc, M, pc), 0);
  for (int i = 0; i < M; i++) {
    assert_true(pc[i] == q[i]);
    for (int j = 0; j < M; j++)
      if (p[i] <= p[j]) assert_true(q[i] <= q[j]);
  }
  sc_json_free(out);
}

/* ==== CKA ==== */

static void cka_case(size_t n, size_t d1, size_t d2, int with_rows) {
  sc_rng r;
  sc_rng_seed(&r, n * 131 + d1);
  float *X = malloc(n * d1 * sizeof *X), *Y = malloc(n * d2 * sizeof *Y);
  for (size_t i = 0; i < n * d1; i++) X[i] = (float)(sc_rng_normal(&r) + 3);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d2; j++)
      Y[i * d2 + j] = (float)(0.7 * X[i * d1 + j % d1] + sc_rng_normal(&r) - 1);
  size_t rows[40], nr = 0;
  if (with_rows)
    for (nr = 0; nr < 30; nr++) rows[nr] = (size_t)sc_rng_below(&r, n);
  sc_json *in = sc_json_new_object(), *xa = sc_json_new_array(), *ya = sc_json_new_array();
  for (size_t i = 0; i < n; i++) {
    double row[64];
    for (size_t j = 0; j < d1; j++) row[j] = X[i * d1 + j];
    sc_json_add(xa, NULL, arr_d(row, d1));
    for (size_t j = 0; j < d2; j++) row[j] = Y[i * d2 + j];
    sc_json_add(ya, NULL, arr_d(row, d2));
  }
  sc_json_add(in, "X", xa);
  sc_json_add(in, "Y", ya);
  if (with_rows) {
    uint64_t ru[40];
    for (size_t i = 0; i < nr; i++) ru[i] = rows[i];
    sc_json_add(in, "rows", arr_u(ru, nr));
  }
  sc_json *out = run_ref("cka", in);
  double k;
  assert_int_equal(an_cka_linear(X, d1, Y, d2, n, with_rows ? rows : NULL, nr, &k), AN_STAT_OK);
  near(k, sc_json_num(sc_json_get(out, "cka")), 2e-5, "cka");
  /* Symmetric, and 1 for a representation with itself. */
  double k2, k3;
  assert_int_equal(an_cka_linear(Y, d2, X, d1, n, with_rows ? rows : NULL, nr, &k2), AN_STAT_OK);
  near(k2, k, 2e-5, "cka symmetric");
  assert_int_equal(an_cka_linear(X, d1, X, d1, n, NULL, 0, &k3), AN_STAT_OK);
  near(k3, 1, 1e-5, "cka self");
  sc_json_free(out);
  free(X);
  free(Y);
}

static void test_cka(void **state) {
  (void)state;
  cka_case(60, 4, 6, 0);  /* n > d: the d×d form */
  cka_case(12, 40, 30, 0); /* n < d: the n×n form */
  cka_case(50, 5, 3, 1);  /* a bootstrap-style row list with repetitions */
}

/* ==== bootstrap ==== */

typedef struct {
  const double *v;
} mean_user;

static int mean_stat(const size_t *rows, size_t n, void *user, double *out) {
  const mean_user *u = user;
  double s = 0;
  for (size_t i = 0; i < n; i++) s += u->v[rows[i]];
  out[0] = s / (double)n;
  out[1] = 2 * out[0];
  return 0;
}

static void test_bootstrap(void **state) {
  (void)state;
  enum { N = 41 };
  uint64_t groups[N];
  double v[N];
  sc_rng r;
  sc_rng_seed(&r, 11);
  for (int i = 0; i < N; i++) {
    groups[i] = 1000 - (uint64_t)(i / 3) * 7; /* descending ids, groups of 3 (last of 2) */
    v[i] = sc_rng_normal(&r) + (double)(i % 5);
  }
  an_groups g;
  assert_int_equal(an_groups_build(groups, N, &g), 0);
  assert_int_equal((int)g.n_groups, 14);
  assert_true(g.ids[0] < g.ids[1]);
  sc_json *in = sc_json_new_object();
  sc_json_add(in, "groups", arr_u(groups, N));
  sc_json_add(in, "values", arr_d(v, N));
  sc_json_add_num(in, "seed", 424242);
  sc_json_add_num(in, "n_boot", 300);
  sc_json_add_num(in, "ci", 0.9);
  sc_json *out = run_ref("boot", in);
  mean_user u = {v};
  an_boot_result br;
  assert_int_equal(an_bootstrap(&g, mean_stat, &u, 2, 300, 0.9, 424242, 1, &br), 0);
  assert_int_equal(br.status, AN_STAT_OK);
  assert_int_equal((int)br.n_valid, 300);
  near(br.lo[0], sc_json_num(sc_json_get(out, "lo")), 1e-12, "boot lo");
  near(br.hi[0], sc_json_num(sc_json_get(out, "hi")), 1e-12, "boot hi");
  near(br.se[0], sc_json_num(sc_json_get(out, "se")), 1e-10, "boot se");
  near(br.lo[1], 2 * sc_json_num(sc_json_get(out, "lo")), 1e-12, "boot lo stat 2");
  /* The first resample's draws, as rows. */
  sc_rng rr;
  sc_rng_seed(&rr, 424242);
  size_t *rows = malloc(an_groups_resample_cap(&g) * sizeof *rows), nr;
  an_groups_resample(&g, &rr, rows, &nr);
  sc_json *fd = sc_json_get(out, "first_draws");
  size_t k = 0;
  for (int t = 0; t < sc_json_size(fd); t++) {
    size_t gi = (size_t)num_at(fd, t);
    for (size_t m = g.start[gi]; m < g.start[gi + 1]; m++) assert_int_equal(rows[k++], g.rows[m]);
  }
  assert_int_equal(k, nr);
  /* Deterministic: same seed, same CI; the kept values are in draw order. */
  an_boot_result b2;
  assert_int_equal(an_bootstrap(&g, mean_stat, &u, 2, 300, 0.9, 424242, 0, &b2), 0);
  assert_true(b2.lo[0] == br.lo[0] && b2.hi[1] == br.hi[1] && b2.values == NULL);
  double s0 = 0;
  for (size_t i = 0; i < nr; i++) s0 += v[rows[i]];
  near(br.values[0], s0 / (double)nr, 1e-15, "first kept value");
  an_boot_result_free(&b2);
  an_boot_result_free(&br);
  free(rows);
  an_groups_free(&g);
  sc_json_free(out);
}

static int never_valid(const size_t *rows, size_t n, void *user, double *out) {
  (void)rows, (void)n, (void)user, (void)out;
  return AN_STAT_TOO_FEW;
}

static void test_bootstrap_no_valid(void **state) {
  (void)state;
  uint64_t groups[3] = {1, 2, 3};
  an_groups g;
  assert_int_equal(an_groups_build(groups, 3, &g), 0);
  an_boot_result br;
  assert_int_equal(an_bootstrap(&g, never_valid, NULL, 1, 20, 0.95, 1, 0, &br), 0);
  assert_int_equal(br.status, AN_STAT_NO_VALID);
  assert_true(br.lo[0] == 0 && br.hi[0] == 0);
  an_boot_result_free(&br);
  assert_int_equal(an_bootstrap(&g, never_valid, NULL, 1, 0, 0.95, 1, 0, &br), SC_ERR_ARG);
  an_groups_free(&g);
}

/* ==== permutation ==== */

typedef struct {
  const double *v;
} diff_user;

static int diff_stat(const int *lab, size_t n, void *user, double *out) {
  const diff_user *u = user;
  double s1 = 0, s0 = 0;
  size_t n1 = 0, n0 = 0;
  for (size_t i = 0; i < n; i++) {
    if (lab[i]) s1 += u->v[i], n1++;
    else s0 += u->v[i], n0++;
  }
  if (!n1 || !n0) return AN_STAT_TOO_FEW;
  *out = s1 / (double)n1 - s0 / (double)n0;
  return 0;
}

static void test_permutation(void **state) {
  (void)state;
  enum { N = 30 };
  int lab[N];
  uint64_t groups[N];
  double v[N];
  sc_rng r;
  sc_rng_seed(&r, 5);
  for (int i = 0; i < N; i++) {
    groups[i] = (uint64_t)(i / 2) * 3 + 100;
    lab[i] = (i / 2) % 2;
    v[i] = sc_rng_normal(&r) + 0.6 * lab[i];
  }
  for (int grouped = 0; grouped <= 1; grouped++) {
    an_groups g;
    assert_int_equal(an_groups_build(groups, N, &g), 0);
    sc_json *in = sc_json_new_object();
    sc_json_add(in, "labels", arr_i(lab, N));
    sc_json_add(in, "values", arr_d(v, N));
    sc_json_add(in, "groups", grouped ? arr_u(groups, N) : sc_json_new_null());
    sc_json_add_num(in, "seed", 99);
    sc_json_add_num(in, "n_perm", 199);
    sc_json *out = run_ref("perm", in);
    diff_user u = {v};
    an_perm_result pr;
    assert_int_equal(an_permutation_test(lab, N, grouped ? &g : NULL, diff_stat, &u, 199, AN_TAIL_TWO,
                                         99, &pr),
                     0);
    assert_int_equal(pr.status, AN_STAT_OK);
    near(pr.observed, sc_json_num(sc_json_get(out, "observed")), 1e-12, "perm observed");
    near(pr.p, sc_json_num(sc_json_get(out, "p")), 1e-15, "perm p");
    sc_json_free(out);
    an_groups_free(&g);
  }
  /* Grouped: a group with two labels is refused. */
  an_groups g;
  assert_int_equal(an_groups_build(groups, N, &g), 0);
  lab[1] = 1 - lab[1];
  diff_user u = {v};
  an_perm_result pr;
  assert_int_equal(an_permutation_test(lab, N, &g, diff_stat, &u, 10, AN_TAIL_TWO, 1, &pr), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "group 100"));
  an_groups_free(&g);
}

static void test_cosine_percentile(void **state) {
  (void)state;
  double a[3] = {1, 2, 3}, b[3] = {-2, 0.5, 4}, c;
  assert_int_equal(an_cosine(a, b, 3, &c), AN_STAT_OK);
  near(c, (-2 + 1 + 12) / (sqrt(14.0) * sqrt(20.25)), 1e-15, "cosine");
  /* numpy.percentile([5, 1, 4, 2, 3], [0, 2.5, 50, 97.5, 100]) =
   * 1, 1.1, 3, 4.9, 5. */
  double x[5] = {5, 1, 4, 2, 3};
  near(an_percentile_sort(x, 5, 0), 1, 1e-15, "p0");
  near(an_percentile_sort(x, 5, 0.025), 1.1, 1e-15, "p2.5");
  near(an_percentile_sort(x, 5, 0.5), 3, 1e-15, "p50");
  near(an_percentile_sort(x, 5, 0.975), 4.9, 1e-15, "p97.5");
  near(an_percentile_sort(x, 5, 1), 5, 1e-15, "p100");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rng_port),       cmocka_unit_test(test_cohens_d),
      cmocka_unit_test(test_degenerate),     cmocka_unit_test(test_mannwhitney),
      cmocka_unit_test(test_bh),             cmocka_unit_test(test_cka),
      cmocka_unit_test(test_bootstrap),      cmocka_unit_test(test_bootstrap_no_valid),
      cmocka_unit_test(test_permutation),    cmocka_unit_test(test_cosine_percentile),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
