/* bench_common.h: timing helpers every benchmark shares (header-only, so each
 * bench/bench_<name>.c stays one program). Figures are reported as the best
 * and the median of the runs, as the project's benchmark rule asks. */
#ifndef SC_BENCH_COMMON_H
#define SC_BENCH_COMMON_H

#include <cblas.h>
#include <stdlib.h>

#include "base/log.h"
#include "tensor/blas.h"

typedef struct bench_stat {
  double min, med; /* best and median; 0 = not measured */
} bench_stat;

/* Monotonic seconds (the library's clock). */
static inline double bench_now(void) { return sc_time_now(); }

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Best and median of t[0..n) (sorts t; n >= 1). */
static inline bench_stat bench_summarize(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
  return (bench_stat){t[0], n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])};
}

/* GFLOP/s (best, median of runs after one warm-up) of y[M,N] = x[M,K]
 * w[N,K]^T in f32, through OpenBLAS's cblas_sgemm (seam 0) or through
 * saecap's sc_sgemm (seam 1: tensor/sgemm.h where the CPU has AVX2, else
 * OpenBLAS): the peak a bench's GEMM figures are read against. {0, 0} when
 * out of memory. */
static inline bench_stat bench_gemm_peak(int M, int N, int K, int runs, int seam) {
  float *x = malloc((size_t)M * K * 4), *w = malloc((size_t)N * K * 4), *y = malloc((size_t)M * N * 4);
  double *t = malloc((size_t)runs * sizeof *t);
  if (!x || !w || !y || !t) {
    free(x), free(w), free(y), free(t);
    return (bench_stat){0, 0};
  }
  for (size_t i = 0; i < (size_t)M * K; i++) x[i] = (float)(i % 13) * 0.01f;
  for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (float)(i % 7) * 0.01f;
  for (int r = 0; r <= runs; r++) { /* run 0 warms up */
    double t0 = bench_now();
    if (seam) sc_sgemm(0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
    if (r) t[r - 1] = bench_now() - t0;
  }
  free(x), free(w), free(y);
  bench_stat s = bench_summarize(t, runs);
  free(t);
  double flop = 2.0 * M * N * K;
  return (bench_stat){flop / s.min * 1e-9, flop / s.med * 1e-9};
}

/* The OpenBLAS peak (bench_gemm_peak, seam 0). */
static inline bench_stat bench_sgemm_peak(int M, int N, int K, int runs) {
  return bench_gemm_peak(M, N, K, runs, 0);
}

#endif
