/* test_sgemm.c: saecap's AVX2 f32 GEMM (src/tensor/sgemm.h) against a
 * triple-loop f64 reference: every B layout (f32 [N,K], bf16 [N,K], f32
 * [K,N]), shapes around the 6x16 tile and the 256-deep blocks (1x1x1 up to
 * several blocks, tails on every side), padded leading dimensions, bias and
 * beta, K = 0, NaN in C under beta 0, bitwise equality across thread counts
 * and between calls, and the BLAS seam (tensor/blas.h) that routes to it.
 * Skipped where the CPU has no AVX2/FMA (the seam then is plain OpenBLAS). */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/rng.h"
#include "tensor/blas.h"
#include "tensor/dtype.h"
#include "tensor/sgemm.h"
#include "tu.h"

/* Relative to Σ|a·b| + |bias| + |beta·c| per element: f32 sums of K terms
 * in blocks stay within ~sqrt(K)·2^-24; 1e-5 leaves room up to K ~ 1e5. */
#define TOL 1e-5

typedef struct gcase {
  int64_t M, N, K, lda, ldb, ldc;
  sc_sg_layout layout;
  float *A, *Bf, *bias, *C0;
  uint16_t *Bh;
} gcase;

static float uniform(sc_rng *r) { return (float)(sc_rng_uniform(r) * 2.0 - 1.0); }

/* Random operands with leading dimensions pad elements wider than needed;
 * the padding holds NaN so any read of it shows in the result. */
static gcase make(int64_t M, int64_t N, int64_t K, sc_sg_layout layout, int pad, uint64_t seed) {
  gcase g = {.M = M, .N = N, .K = K, .lda = K + pad, .ldb = (layout == SC_SG_KN_F32 ? N : K) + pad,
             .ldc = N + pad, .layout = layout};
  sc_rng r;
  sc_rng_seed(&r, seed);
  int64_t brows = layout == SC_SG_KN_F32 ? K : N;
  g.A = malloc((size_t)(M * g.lda + 1) * sizeof(float));
  g.Bf = malloc((size_t)(brows * g.ldb + 1) * sizeof(float));
  g.Bh = malloc((size_t)(brows * g.ldb + 1) * sizeof(uint16_t));
  g.bias = malloc((size_t)N * sizeof(float));
  g.C0 = malloc((size_t)(M * g.ldc + 1) * sizeof(float));
  for (int64_t i = 0; i < M * g.lda; i++) g.A[i] = i % g.lda < K ? uniform(&r) : NAN;
  for (int64_t i = 0; i < brows * g.ldb; i++) {
    int in = i % g.ldb < (layout == SC_SG_KN_F32 ? N : K);
    g.Bh[i] = sc_bf16_from_f32(in ? uniform(&r) : NAN);
    /* bf16 layout: the f32 copy is the widened value, the reference's input */
    g.Bf[i] = layout == SC_SG_NK_BF16 ? sc_f32_from_bf16(g.Bh[i]) : (in ? uniform(&r) : NAN);
  }
  for (int64_t j = 0; j < N; j++) g.bias[j] = uniform(&r);
  for (int64_t i = 0; i < M * g.ldc; i++) g.C0[i] = uniform(&r);
  return g;
}

static void drop(gcase *g) { free(g->A), free(g->Bf), free(g->Bh), free(g->bias), free(g->C0); }

static float b_at(const gcase *g, int64_t k, int64_t n) {
  return g->layout == SC_SG_KN_F32 ? g->Bf[k * g->ldb + n] : g->Bf[n * g->ldb + k];
}

/* Runs the case into a fresh copy of C0 and returns it (caller frees). */
static float *run(const gcase *g, int bias, float beta) {
  float *C = malloc((size_t)(g->M * g->ldc + 1) * sizeof(float));
  memcpy(C, g->C0, (size_t)(g->M * g->ldc) * sizeof(float));
  const void *B = g->layout == SC_SG_NK_BF16 ? (const void *)g->Bh : (const void *)g->Bf;
  assert_int_equal(sc_sg_gemm(C, g->ldc, g->A, g->lda, B, g->ldb, g->layout, bias ? g->bias : NULL,
                              beta, g->M, g->N, g->K),
                   0);
  return C;
}

static void check(const gcase *g, const float *C, int bias, float beta) {
  for (int64_t m = 0; m < g->M; m++)
    for (int64_t n = 0; n < g->N; n++) {
      double s = 0.0, mag = 0.0;
      for (int64_t k = 0; k < g->K; k++) {
        double p = (double)g->A[m * g->lda + k] * b_at(g, k, n);
        s += p, mag += fabs(p);
      }
      if (bias) s += g->bias[n], mag += fabs(g->bias[n]);
      if (beta != 0.0f) {
        double c = (double)beta * g->C0[m * g->ldc + n];
        s += c, mag += fabs(c);
      }
      double got = C[m * g->ldc + n];
      if (!(fabs(got - s) <= TOL * (mag + 1e-30)))
        fail_msg("M %lld N %lld K %lld layout %d: C[%lld,%lld] = %.9g, reference %.9g",
                 (long long)g->M, (long long)g->N, (long long)g->K, (int)g->layout, (long long)m,
                 (long long)n, got, s);
    }
  /* columns past N in the padded C are never written */
  for (int64_t m = 0; m < g->M; m++)
    for (int64_t n = g->N; n < g->ldc; n++)
      assert_memory_equal(&C[m * g->ldc + n], &g->C0[m * g->ldc + n], sizeof(float));
}

static int skip_without_avx2(void) {
  if (sc_sg_available()) return 0;
  print_message("no AVX2/FMA on this CPU: sgemm.h is not used here\n");
  return 1;
}

/* Shapes around MR = 6, NR = 16 and KC = 256, every layout, with and
 * without bias, beta 0 and 1, tight and padded leading dimensions. */
static void test_shapes(void **state) {
  (void)state;
  if (skip_without_avx2()) return;
  static const int64_t shapes[][3] = {
      {1, 1, 1},    {5, 7, 3},     {6, 16, 8},    {7, 17, 9},    {12, 32, 256}, {13, 33, 257},
      {1, 300, 64}, {300, 1, 64},  {37, 70, 600}, {150, 48, 40}, {64, 2100, 33}, {200, 5, 513}};
  sc_sg_layout layouts[] = {SC_SG_NK_F32, SC_SG_NK_BF16, SC_SG_KN_F32};
  uint64_t seed = 1;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int l = 0; l < 3; l++)
      for (int v = 0; v < 4; v++) {
        int bias = v & 1, pad = (v >> 1) * 5;
        float beta = v == 2 ? 1.0f : v == 3 ? -0.5f : 0.0f;
        gcase g = make(shapes[s][0], shapes[s][1], shapes[s][2], layouts[l], pad, seed++);
        float *C = run(&g, bias, beta);
        check(&g, C, bias, beta);
        free(C);
        drop(&g);
      }
}

/* K = 0 leaves bias + beta · C; beta 0 ignores NaN already in C. */
static void test_degenerate(void **state) {
  (void)state;
  if (skip_without_avx2()) return;
  gcase g = make(9, 20, 0, SC_SG_NK_F32, 0, 7);
  float *C = run(&g, 1, 2.0f);
  check(&g, C, 1, 2.0f);
  free(C);
  for (int64_t i = 0; i < g.M * g.ldc; i++) g.C0[i] = NAN;
  C = run(&g, 1, 0.0f);
  for (int64_t i = 0; i < g.M * g.N; i++) assert_float_equal(C[i], g.bias[i % g.N], 0.0);
  free(C);
  drop(&g);
  gcase h = make(13, 40, 300, SC_SG_NK_BF16, 0, 8);
  for (int64_t i = 0; i < h.M * h.ldc; i++) h.C0[i] = NAN;
  C = run(&h, 0, 0.0f);
  for (int64_t i = 0; i < h.M * h.N; i++) assert_false(isnan(C[i]));
  free(C);
  drop(&h);
  /* an empty product is a no-op */
  assert_int_equal(sc_sg_gemm(NULL, 1, NULL, 1, NULL, 1, SC_SG_NK_F32, NULL, 0.0f, 0, 5, 5), 0);
}

/* Each element is summed in one fixed order, so 1 and 2 threads (which
 * split N, or M when N is narrow) and repeated calls give the same bits;
 * a product large enough to go parallel. */
static void test_threads_bitwise(void **state) {
  (void)state;
  if (skip_without_avx2()) return;
  int64_t shapes[][3] = {{70, 700, 530}, {900, 20, 520}};
  for (int s = 0; s < 2; s++) {
    gcase g = make(shapes[s][0], shapes[s][1], shapes[s][2], SC_SG_NK_BF16, 3, 11 + s);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    float *one = run(&g, 1, 1.0f);
    omp_set_num_threads(2);
    float *two = run(&g, 1, 1.0f), *again = run(&g, 1, 1.0f);
    omp_set_num_threads(saved);
    assert_memory_equal(one, two, (size_t)(g.M * g.ldc) * sizeof(float));
    assert_memory_equal(two, again, (size_t)(g.M * g.ldc) * sizeof(float));
    check(&g, two, 1, 1.0f);
    free(one), free(two), free(again);
    drop(&g);
  }
}

/* Inside an OpenMP team (attention runs one product per thread) each call
 * runs on its own thread with its own scratch and gives the same result as
 * outside. */
static void test_inside_parallel(void **state) {
  (void)state;
  if (skip_without_avx2()) return;
  gcase g = make(64, 96, 300, SC_SG_KN_F32, 0, 21);
  float *ref = run(&g, 0, 0.0f);
  int bad = 0;
#pragma omp parallel num_threads(2) reduction(+ : bad)
  for (int rep = 0; rep < 4; rep++) {
    float *C = run(&g, 0, 0.0f);
    bad += memcmp(C, ref, (size_t)(g.M * g.ldc) * sizeof(float)) != 0;
    free(C);
  }
  assert_int_equal(bad, 0);
  free(ref);
  drop(&g);
}

/* The BLAS seam: sc_sgemm with trans_b 0/1 and beta goes to sgemm.h (same
 * bits as a direct call); alpha != 1 and trans_a still give right results
 * (through OpenBLAS). */
static void test_blas_seam(void **state) {
  (void)state;
  gcase g = make(40, 50, 270, SC_SG_NK_F32, 0, 31);
  float *C = malloc((size_t)(g.M * g.ldc) * sizeof(float));
  memcpy(C, g.C0, (size_t)(g.M * g.ldc) * sizeof(float));
  sc_sgemm(0, 1, g.M, g.N, g.K, 1.0f, g.A, g.lda, g.Bf, g.ldb, 1.0f, C, g.ldc);
  check(&g, C, 0, 1.0f);
  if (sc_sg_available()) {
    float *D = run(&g, 0, 1.0f);
    assert_memory_equal(C, D, (size_t)(g.M * g.ldc) * sizeof(float));
    free(D);
  }
  /* alpha 2: twice the product */
  sc_sgemm(0, 1, g.M, g.N, g.K, 2.0f, g.A, g.lda, g.Bf, g.ldb, 0.0f, C, g.ldc);
  for (int64_t m = 0; m < g.M; m++)
    for (int64_t n = 0; n < g.N; n++) {
      double s = 0.0, mag = 0.0;
      for (int64_t k = 0; k < g.K; k++) {
        double p = 2.0 * g.A[m * g.lda + k] * g.Bf[n * g.ldb + k];
        s += p, mag += fabs(p);
      }
      assert_true(fabs(C[m * g.ldc + n] - s) <= TOL * mag);
    }
  free(C);
  drop(&g);
  gcase h = make(30, 45, 200, SC_SG_KN_F32, 0, 32);
  C = malloc((size_t)(h.M * h.ldc) * sizeof(float));
  sc_sgemm(0, 0, h.M, h.N, h.K, 1.0f, h.A, h.lda, h.Bf, h.ldb, 0.0f, C, h.ldc);
  check(&h, C, 0, 0.0f);
  free(C);
  drop(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),          cmocka_unit_test(test_degenerate),
      cmocka_unit_test(test_threads_bitwise), cmocka_unit_test(test_inside_parallel),
      cmocka_unit_test(test_blas_seam),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
