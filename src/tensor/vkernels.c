/* vkernels.c: kernels of the vision tower and projector (see vkernels.h). Norm statistics and softmax sums are accumulated in double,
 * as kernels.c does, to stay close to the float64 reference. */
#include "tensor/vkernels.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "tensor/blas.h"

/* Loops over fewer elements than this run on one thread. */
#define PAR_MIN_ELEMS ((int64_t)1 << 15)

/* ==== Element-wise and row kernels ==== */

static void layernorm_row(float *y, const float *x, const float *w, const float *b, int64_t d,
                          float eps) {
  double s = 0.0, ss = 0.0;
  for (int64_t i = 0; i < d; i++) s += x[i];
  double mean = s / (double)d;
  for (int64_t i = 0; i < d; i++) {
    double c = x[i] - mean;
    ss += c * c;
  }
  double inv = 1.0 / sqrt(ss / (double)d + (double)eps);
  for (int64_t i = 0; i < d; i++) y[i] = (float)((x[i] - mean) * inv) * w[i] + b[i];
}

void sc_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
                  float eps) {
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN_ELEMS)
  for (int64_t r = 0; r < n; r++) layernorm_row(y + r * d, x + r * d, w, b, d, eps);
}

void sc_add_bias(float *x, const float *b, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN_ELEMS)
  for (int64_t r = 0; r < n; r++)
    for (int64_t i = 0; i < d; i++) x[r * d + i] += b[i];
}

/* The decoder's kernel: with AVX2 a vector exp, >10x the tanhf loop. */
void sc_gelu_tanh(float *x, int64_t n) { sc_gelu_tanh_mul(x, NULL, n); }

/* ==== Attention without a mask ==== */

size_t sc_mha_full_scratch(int64_t n, int head_dim) {
  (void)head_dim;
  return (size_t)n * (size_t)n;
}

/* bf16(x) as f32, bit for bit sc_f32_from_bf16(sc_bf16_from_f32(x)) (NaN:
 * sign, top payload bits, quiet bit; else round to nearest even), inline so
 * the n² probabilities are rounded at memory speed (the out-of-line pair
 * cost ~20% of a bf16 layer at 4096 patches). */
static inline float bf16_round1(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) u = (u & 0xffff0000u) | 0x00400000u;
  else u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  memcpy(&x, &u, sizeof x);
  return x;
}

void sc_round_bf16_v(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN_ELEMS)
  for (int64_t i = 0; i < n; i++) x[i] = bf16_round1(x[i]);
}

/* Row-wise softmax of s[n, n] (max subtracted, sum in double); with
 * round_p each row is rounded to bf16 while it is still in cache. */
static void softmax_rows(float *s, int64_t n, int round_p) {
#pragma omp parallel for schedule(static) if (n * n > PAR_MIN_ELEMS)
  for (int64_t r = 0; r < n; r++) {
    float *row = s + r * n;
    sc_softmax(row, n);
    if (round_p)
      for (int64_t i = 0; i < n; i++) row[i] = bf16_round1(row[i]);
  }
}

void sc_mha_full(float *out, const float *q, const float *k, const float *v, int64_t n, int heads,
                 int head_dim, float scale, float *scratch) {
  sc_mha_full_prec(out, q, k, v, n, heads, head_dim, scale, SC_PRECISION_F32, scratch);
}

void sc_mha_full_prec(float *out, const float *q, const float *k, const float *v, int64_t n,
                      int heads, int head_dim, float scale, sc_precision p, float *scratch) {
  int64_t width = (int64_t)heads * head_dim;
  float *s = scratch;
  for (int h = 0; h < heads; h++) {
    int64_t off = (int64_t)h * head_dim;
    /* HF SiglipAttention: (q·kᵀ)·scale, softmax in f32, then ·v; the head's
     * columns are read in place. */
    sc_sgemm(0, 1, n, n, head_dim, scale, q + off, width, k + off, width, 0.0f, s, n);
    /* HF's bf16 eager attention casts the f32 softmax back to bf16. */
    softmax_rows(s, n, p == SC_PRECISION_BF16);
    sc_sgemm(0, 0, n, head_dim, n, 1.0f, s, n, v + off, width, 0.0f, out + off, width);
  }
}

/* ==== Pooling ==== */

void sc_avgpool2d(float *out, const float *x, int64_t side, int64_t c, int64_t k) {
  int64_t no = side / k;
  double inv = 1.0 / (double)(k * k);
#pragma omp parallel for schedule(static) if (no * no * c > PAR_MIN_ELEMS)
  for (int64_t cell = 0; cell < no * no; cell++) {
    int64_t r0 = (cell / no) * k, c0 = (cell % no) * k;
    for (int64_t ch = 0; ch < c; ch++) {
      double sum = 0.0;
      for (int64_t dy = 0; dy < k; dy++)
        for (int64_t dx = 0; dx < k; dx++) sum += x[((r0 + dy) * side + c0 + dx) * c + ch];
      out[cell * c + ch] = (float)(sum * inv);
    }
  }
}

/* ==== Un-transposed matrix product ==== */

size_t sc_matmul_nn_scratch(const sc_mat *w) {
  return w->dtype == SC_DTYPE_F32 ? 0 : (size_t)w->rows * (size_t)w->cols;
}

int sc_matmul_nn(float *y, const float *x, const sc_mat *w, int64_t n, sc_precision p,
                 float *scratch) {
  if (p != SC_PRECISION_F32)
    return sc_error_setc(SC_ERR_ARG, "precision bf16 is not available for the projector (use f32)");
  if (w->dtype != SC_DTYPE_F32 && w->dtype != SC_DTYPE_BF16 && w->dtype != SC_DTYPE_F16)
    return sc_error_setc(SC_ERR_ARG, "cannot multiply %s weights", sc_dtype_name(w->dtype));
  if (n <= 0 || w->rows <= 0 || w->cols <= 0) return 0;
  if (n > INT_MAX || w->rows > INT_MAX || w->cols > INT_MAX)
    return sc_error_setc(SC_ERR_ARG, "GEMM of [%lld, %lld] x [%lld, %lld]: too large for BLAS",
                         (long long)n, (long long)w->rows, (long long)w->rows, (long long)w->cols);
  const float *wf = (const float *)w->data;
  if (w->dtype != SC_DTYPE_F32) {
    for (int64_t r = 0; r < w->rows; r++) sc_mat_row(scratch + r * w->cols, w, r);
    wf = scratch;
  }
  sc_sgemm(0, 0, n, w->cols, w->rows, 1.0f, x, w->rows, wf, w->cols, 0.0f, y, w->cols);
  return 0;
}
