/* test_gemm.c: the bf16 GEMM (src/tensor/gemm.h) on every backend this CPU
 * has (WIDEN always, ONEDNN where oneDNN implements bf16 here), against a
 * triple-loop f64 reference computed from the bf16-rounded inputs: shapes
 * from 1x1x1 to Gemma-3-4B widths, odd sizes, the GEMV/sgemm switch and
 * two sgemm panels (16 MiB of f32 W each), bias, accumulation, f32
 * weights, thread counts, primitive-cache eviction, and the error paths. */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/rng.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
#include "tensor/sgemm.h"
#include "tu.h"

/* f32 accumulation of K products: the error of each output, relative to
 * Σ|x_k·w_k| (+|bias| + |y0|), stays far below K·2^-24; blocked sums as
 * both backends use give ~sqrt(K)·2^-24, so 1e-5 holds up to K ~ 1e5 with
 * room. The same figure bounds max|y - ref| / max|ref|. */
#define TOL_SUM 1e-5
#define TOL_REL 1e-5
/* Rounding x to bf16 moves the product by ~2^-9 relative; a result within
 * this of the unrounded-x reference would mean x was not rounded. */
#define MIN_ROUNDING_EFFECT 1e-4

typedef struct gcase {
  int M, N, K;
  float *x;      /* (M, K) */
  uint16_t *w;   /* (N, K) bf16 */
  float *bias;   /* (N) */
  float *y0;     /* (M, N) values already in y when accumulating */
  float *y;      /* (M, N) output */
} gcase;

static void case_make(gcase *c, int M, int N, int K, uint64_t seed) {
  sc_rng r;
  sc_rng_seed(&r, seed);
  size_t mk = (size_t)M * K, nk = (size_t)N * K, mn = (size_t)M * N;
  *c = (gcase){M, N, K, malloc(mk * 4), malloc(nk * 2), malloc((size_t)N * 4), malloc(mn * 4),
               malloc(mn * 4)};
  for (size_t i = 0; i < mk; i++) c->x[i] = (float)sc_rng_normal(&r);
  for (size_t i = 0; i < nk; i++) c->w[i] = sc_bf16_from_f32((float)(0.05 * sc_rng_normal(&r)));
  for (int i = 0; i < N; i++) c->bias[i] = (float)sc_rng_normal(&r);
  for (size_t i = 0; i < mn; i++) c->y0[i] = (float)sc_rng_normal(&r);
}

static void case_free(gcase *c) {
  free(c->x);
  free(c->w);
  free(c->bias);
  free(c->y0);
  free(c->y);
}

/* Worst errors of c->y against the f64 reference (x rounded to bf16 when
 * round_x): per element relative to its sum of magnitudes, and overall
 * relative to max|ref|. */
typedef struct gerr {
  double sum_rel, max_rel;
} gerr;

static gerr case_check(const gcase *c, int use_bias, int accumulate, int round_x) {
  gerr e = {0, 0};
  double max_ref = 0, max_diff = 0;
  for (int m = 0; m < c->M; m++) {
    for (int n = 0; n < c->N; n++) {
      double ref = 0, mag = 0;
      for (int k = 0; k < c->K; k++) {
        float xv = c->x[(size_t)m * c->K + k];
        double xr = round_x ? sc_f32_from_bf16(sc_bf16_from_f32(xv)) : xv;
        double p = xr * sc_f32_from_bf16(c->w[(size_t)n * c->K + k]);
        ref += p;
        mag += fabs(p);
      }
      size_t i = (size_t)m * c->N + n;
      if (use_bias) ref += c->bias[n], mag += fabs(c->bias[n]);
      if (accumulate) ref += c->y0[i], mag += fabs(c->y0[i]);
      double d = fabs((double)c->y[i] - ref);
      if (mag > 0 && d / mag > e.sum_rel) e.sum_rel = d / mag;
      if (d > max_diff) max_diff = d;
      if (fabs(ref) > max_ref) max_ref = fabs(ref);
    }
  }
  e.max_rel = max_ref > 0 ? max_diff / max_ref : max_diff;
  return e;
}

/* The backends to run: WIDEN always, ONEDNN when this CPU has it. */
static int backends(sc_gemm_backend out[2]) {
  int n = 0;
  out[n++] = SC_GEMM_BACKEND_WIDEN;
  sc_gemm *g;
  if (sc_gemm_create(&g, SC_GEMM_BACKEND_ONEDNN, 0) == 0) out[n++] = SC_GEMM_BACKEND_ONEDNN;
  else print_message("ONEDNN backend unavailable here: %s\n", sc_error_get());
  sc_gemm_free(g);
  return n;
}

/* Runs one case on g and checks it; returns the errors for reporting. */
static gerr run_case(sc_gemm *g, int M, int N, int K, int use_bias, int accumulate, uint64_t seed) {
  gcase c;
  case_make(&c, M, N, K, seed);
  memcpy(c.y, c.y0, (size_t)M * N * 4);
  int rc = sc_gemm_bf16(g, c.y, c.x, c.w, use_bias ? c.bias : NULL, M, N, K, accumulate);
  if (rc) fail_msg("sc_gemm_bf16 M=%d N=%d K=%d: %s", M, N, K, sc_error_get());
  gerr e = case_check(&c, use_bias, accumulate, 1);
  if (e.sum_rel > TOL_SUM || e.max_rel > TOL_REL)
    fail_msg("M=%d N=%d K=%d bias=%d acc=%d (%s): sum_rel %.3g max_rel %.3g", M, N, K, use_bias,
             accumulate, sc_gemm_describe(g), e.sum_rel, e.max_rel);
  if (K >= 64) {
    gerr u = case_check(&c, use_bias, accumulate, 0);
    if (u.max_rel < MIN_ROUNDING_EFFECT)
      fail_msg("M=%d N=%d K=%d: result matches unrounded x (%.3g): x not rounded to bf16", M, N,
               K, u.max_rel);
  }
  case_free(&c);
  return e;
}

static const int SHAPES[][3] = {
    {1, 1, 1},     {1, 33, 67},   {3, 17, 31},   {7, 5, 129},   {8, 5, 7},
    {1, 2048, 2560}, {37, 129, 2560}, {9, 1700, 2560}, {64, 96, 1000}, {37, 1, 2560},
};

static void test_shapes(void **state) {
  (void)state;
  sc_gemm_backend b[2];
  int nb = backends(b);
  for (int i = 0; i < nb; i++) {
    sc_gemm *g;
    assert_int_equal(sc_gemm_create(&g, b[i], 0), 0);
    assert_int_equal(sc_gemm_backend_of(g), b[i]);
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
      gerr e = run_case(g, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], 0, 0, 100 + s);
      print_message("%-6s M=%-3d N=%-4d K=%-4d sum_rel %.2e max_rel %.2e  %s\n",
                    b[i] == SC_GEMM_BACKEND_ONEDNN ? "onednn" : "widen", SHAPES[s][0],
                    SHAPES[s][1], SHAPES[s][2], e.sum_rel, e.max_rel, sc_gemm_describe(g));
    }
    sc_gemm_free(g);
  }
}

/* Bias and accumulation on both sides of the GEMV/sgemm switch. */
static void test_bias_accumulate(void **state) {
  (void)state;
  sc_gemm_backend b[2];
  int nb = backends(b);
  static const int ms[] = {1, 5, SC_GEMM_SMALL_M, 40};
  for (int i = 0; i < nb; i++) {
    sc_gemm *g;
    assert_int_equal(sc_gemm_create(&g, b[i], 0), 0);
    for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++)
      for (int mode = 0; mode < 4; mode++)
        run_case(g, ms[j], 71, 300, mode & 1, mode >> 1, 7 * j + mode);
    sc_gemm_free(g);
  }
}

/* AUTO picks one of the two and computes the same thing. */
static void test_auto(void **state) {
  (void)state;
  sc_gemm *g;
  assert_int_equal(sc_gemm_create(&g, SC_GEMM_BACKEND_AUTO, 0), 0);
  sc_gemm_backend b = sc_gemm_backend_of(g);
  assert_true(b == SC_GEMM_BACKEND_ONEDNN || b == SC_GEMM_BACKEND_WIDEN);
  assert_non_null(strstr(sc_gemm_describe(g), "impl=none yet"));
  run_case(g, 37, 64, 2560, 1, 0, 5);
  run_case(g, 1, 64, 2560, 1, 1, 6);
  print_message("auto: %s\n", sc_gemm_describe(g));
  sc_gemm_free(g);
}

/* The WIDEN backend names the kernel it ran. */
static void test_widen_describe(void **state) {
  (void)state;
  sc_gemm *g;
  assert_int_equal(sc_gemm_create(&g, SC_GEMM_BACKEND_WIDEN, 0), 0);
  run_case(g, 1, 16, 64, 0, 0, 1);
  assert_non_null(strstr(sc_gemm_describe(g), "impl=gemv"));
  run_case(g, SC_GEMM_SMALL_M, 16, 64, 0, 0, 1);
  assert_non_null(strstr(sc_gemm_describe(g), sc_sg_available() ? "impl=sg-avx2" : "impl=panel-sgemm"));
  assert_non_null(strstr(sc_gemm_describe(g), "widen oneDNN "));
  sc_gemm_free(g);
}

/* f32 weights: rounded to bf16 first, so the result equals the bf16 call on
 * the rounded weights bit for bit. */
static void test_f32_weights(void **state) {
  (void)state;
  sc_gemm_backend b[2];
  int nb = backends(b);
  int M = 11, N = 45, K = 333;
  sc_rng r;
  sc_rng_seed(&r, 9);
  float *wf = malloc((size_t)N * K * 4), *x = malloc((size_t)M * K * 4);
  uint16_t *wb = malloc((size_t)N * K * 2);
  float *y1 = malloc((size_t)M * N * 4), *y2 = malloc((size_t)M * N * 4);
  for (int i = 0; i < N * K; i++) wf[i] = (float)sc_rng_normal(&r), wb[i] = sc_bf16_from_f32(wf[i]);
  for (int i = 0; i < M * K; i++) x[i] = (float)sc_rng_normal(&r);
  for (int i = 0; i < nb; i++) {
    sc_gemm *g;
    assert_int_equal(sc_gemm_create(&g, b[i], 0), 0);
    assert_int_equal(sc_gemm_bf16_f32w(g, y1, x, wf, NULL, M, N, K, 0), 0);
    assert_int_equal(sc_gemm_bf16(g, y2, x, wb, NULL, M, N, K, 0), 0);
    assert_memory_equal(y1, y2, (size_t)M * N * 4);
    sc_gemm_free(g);
  }
  free(wf), free(x), free(wb), free(y1), free(y2);
}

/* n_threads > 0 runs on that many threads and restores the caller's count;
 * results agree with the process-wide count within tolerance. */
static void test_threads(void **state) {
  (void)state;
  sc_gemm_backend b[2];
  int nb = backends(b);
  omp_set_num_threads(2);
  for (int i = 0; i < nb; i++) {
    sc_gemm *g;
    assert_int_equal(sc_gemm_create(&g, b[i], 1), 0);
    run_case(g, 1, 300, 512, 0, 0, 3);
    run_case(g, 20, 300, 512, 1, 0, 4);
    assert_int_equal(omp_get_max_threads(), 2);
    sc_gemm_free(g);
  }
}

/* More shapes than the primitive cache holds: evicted entries rebuild. */
static void test_many_shapes(void **state) {
  (void)state;
  sc_gemm_backend b[2];
  int nb = backends(b);
  for (int i = 0; i < nb; i++) {
    sc_gemm *g;
    assert_int_equal(sc_gemm_create(&g, b[i], 0), 0);
    for (int round = 0; round < 2; round++)
      for (int m = 1; m <= 70; m++) run_case(g, m, 9, 16 + m % 3, m & 1, round, (uint64_t)m);
    sc_gemm_free(g);
  }
}

/* The oneDNN code (W as the strided [K, N] view, bias, sum post-op, cache
 * and eviction) in f32, which oneDNN implements on every CPU: y must match
 * the reference with x unrounded. */
static void onednn_f32_case(sc_gemm *g, int M, int N, int K, int use_bias, int accumulate,
                            uint64_t seed) {
  gcase c;
  case_make(&c, M, N, K, seed);
  float *wf = malloc((size_t)N * K * 4);
  sc_f32_from_bf16_n(wf, c.w, (size_t)N * K);
  memcpy(c.y, c.y0, (size_t)M * N * 4);
  int rc = sc_gemm_f32_onednn(g, c.y, c.x, wf, use_bias ? c.bias : NULL, M, N, K, accumulate);
  if (rc) fail_msg("sc_gemm_f32_onednn M=%d N=%d K=%d: %s", M, N, K, sc_error_get());
  gerr e = case_check(&c, use_bias, accumulate, 0);
  if (e.sum_rel > TOL_SUM || e.max_rel > TOL_REL)
    fail_msg("onednn f32 M=%d N=%d K=%d bias=%d acc=%d: sum_rel %.3g max_rel %.3g", M, N, K,
             use_bias, accumulate, e.sum_rel, e.max_rel);
  free(wf);
  case_free(&c);
}

static void test_onednn_f32_path(void **state) {
  (void)state;
  sc_gemm *g;
  assert_int_equal(sc_gemm_create(&g, SC_GEMM_BACKEND_AUTO, 0), 0);
  for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
    for (int mode = 0; mode < 4; mode++)
      onednn_f32_case(g, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], mode & 1, mode >> 1, s + 50);
  print_message("onednn f32: %s\n", sc_gemm_describe(g));
  for (int round = 0; round < 2; round++)
    for (int m = 1; m <= 70; m++) onednn_f32_case(g, m, 9, 16 + m % 3, m & 1, round, (uint64_t)m);
  sc_gemm_free(g);
  /* a WIDEN context has no oneDNN engine */
  assert_int_equal(sc_gemm_create(&g, SC_GEMM_BACKEND_WIDEN, 0), 0);
  float y = 0, x = 1, w = 1;
  assert_int_equal(sc_gemm_f32_onednn(g, &y, &x, &w, NULL, 1, 1, 1, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(),
                      "gemm: sc_gemm_f32_onednn needs a context created with backend AUTO or ONEDNN");
  sc_gemm_free(g);
}

static void test_errors(void **state) {
  (void)state;
  sc_gemm *g;
  float y[4], x[4];
  uint16_t w[4] = {0};
  assert_int_equal(sc_gemm_create(&g, (sc_gemm_backend)9, 0), SC_ERR_ARG);
  assert_null(g);
  assert_string_equal(sc_error_get(), "gemm: unknown backend 9");
  assert_int_equal(sc_gemm_create(&g, SC_GEMM_BACKEND_AUTO, 0), 0);
  assert_int_equal(sc_gemm_bf16(g, y, x, w, NULL, 0, 2, 2, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: bad shape M=0 N=2 K=2 (each must be 1..16777216)");
  assert_int_equal(sc_gemm_bf16(g, y, x, w, NULL, 2, -1, 2, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: bad shape M=2 N=-1 K=2 (each must be 1..16777216)");
  assert_int_equal(sc_gemm_bf16(g, y, x, w, NULL, 1, 1, SC_GEMM_MAX_DIM + 1, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: bad shape M=1 N=1 K=16777217 (each must be 1..16777216)");
  assert_int_equal(sc_gemm_bf16(g, y, NULL, w, NULL, 1, 1, 1, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: NULL x");
  assert_int_equal(sc_gemm_bf16(g, NULL, x, w, NULL, 1, 1, 1, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: NULL y");
  assert_int_equal(sc_gemm_bf16_f32w(g, y, x, NULL, NULL, 1, 1, 1, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: NULL w");
  assert_int_equal(sc_gemm_bf16_f32w(g, y, x, x, NULL, 1, 0, 1, 0), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "gemm: bad shape M=1 N=0 K=1 (each must be 1..16777216)");
  sc_gemm_free(g);
  sc_gemm_free(NULL);
  /* ONEDNN asked for explicitly: either it runs, or a one-line refusal. */
  int rc = sc_gemm_create(&g, SC_GEMM_BACKEND_ONEDNN, 0);
  if (rc == 0) {
    assert_int_equal(sc_gemm_backend_of(g), SC_GEMM_BACKEND_ONEDNN);
    assert_non_null(strstr(sc_gemm_describe(g), "onednn oneDNN "));
    sc_gemm_free(g);
  } else {
    assert_int_equal(rc, SC_ERR_MISSING);
    assert_null(g);
    assert_non_null(strstr(sc_error_get(), "gemm: oneDNN "));
    assert_non_null(strstr(sc_error_get(), "has no bf16 matmul at isa="));
    assert_null(strchr(sc_error_get(), '\n'));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),      cmocka_unit_test(test_bias_accumulate),
      cmocka_unit_test(test_auto),        cmocka_unit_test(test_widen_describe),
      cmocka_unit_test(test_f32_weights), cmocka_unit_test(test_threads),
      cmocka_unit_test(test_many_shapes), cmocka_unit_test(test_onednn_f32_path),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
