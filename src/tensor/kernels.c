/* kernels.c: f32 CPU kernels (see kernels.h).
 *
 * Dot products keep 16 independent partial sums so the compiler can
 * vectorise them without -ffast-math; norms and softmax sum in double,
 * which costs little and keeps them close to the float64 reference.
 */
#include "tensor/kernels.h"
#include "tensor/sgemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/error.h"

/* Widened weight panels hold about this many floats (8 MiB): sgemm packs
 * x again for every row panel, and at 4 MiB a 4B layer packed 2.4x as many
 * x floats as it has weights (the down_proj alone 27 times, in 96-row
 * panels; it now takes column panels). At 8 MiB that is ~0.55x; 16 MiB
 * would save ~0.2x more but pushed bench_decoder's anonymous memory past
 * its 10% goal. */
#define LINEAR_PANEL_FLOATS ((int64_t)1 << 21)
#define LINEAR_PANEL_MIN_ROWS 16
/* Up to this many rows of x, a GEMM is memory-bound (decode): each weight
 * row is widened once into a per-thread buffer and dotted with every x row,
 * instead of widening whole panels (which would triple the memory traffic). */
#define LINEAR_FUSED_MAX_N 4
/* Loops over fewer elements than this run on one thread. */
#define PAR_MIN_ELEMS ((int64_t)1 << 15)

/* ==== Threads ==== */

void sc_kernels_set_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int sc_kernels_threads(void) { return omp_get_max_threads(); }

/* ==== Precision names ==== */

int sc_precision_parse(const char *name, sc_precision *out) {
  if (name && !strcmp(name, "f32")) *out = SC_PRECISION_F32;
  else if (name && !strcmp(name, "bf16")) *out = SC_PRECISION_BF16;
  else return sc_error_setc(SC_ERR_ARG, "precision '%s' is not f32 or bf16", name ? name : "");
  return 0;
}

const char *sc_precision_name(sc_precision p) {
  return p == SC_PRECISION_F32 ? "f32" : p == SC_PRECISION_BF16 ? "bf16" : "?";
}

/* ==== Small helpers ==== */

static float dot_f32(const float *a, const float *b, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) acc[l] += a[i + l] * b[i + l];
  float s = 0.0f;
  for (; i < n; i++) s += a[i] * b[i];
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

void sc_mat_row(float *out, const sc_mat *w, int64_t i) {
  size_t k = (size_t)w->cols, off = (size_t)i * k;
  switch (w->dtype) {
  case SC_DTYPE_BF16:
    sc_f32_from_bf16_n(out, (const uint16_t *)w->data + off, k);
    break;
  case SC_DTYPE_F16:
    sc_f32_from_f16_n(out, (const uint16_t *)w->data + off, k);
    break;
  default:
    memcpy(out, (const float *)w->data + off, k * sizeof(float));
    break;
  }
}

/* ==== GEMM: y = x · Wᵀ ==== */

static int64_t panel_rows(int64_t cols) {
  int64_t p = LINEAR_PANEL_FLOATS / (cols > 0 ? cols : 1);
  p -= p % LINEAR_PANEL_MIN_ROWS;
  return p < LINEAR_PANEL_MIN_ROWS ? LINEAR_PANEL_MIN_ROWS : p;
}

size_t sc_linear_scratch(int64_t cols) {
  size_t panel = (size_t)panel_rows(cols) * (size_t)cols;
  if (panel < (size_t)LINEAR_PANEL_FLOATS) panel = (size_t)LINEAR_PANEL_FLOATS; /* column panels */
  size_t fused = (size_t)sc_kernels_threads() * (size_t)cols;
  return panel > fused ? panel : fused;
}

/* dot_f32(x, widen(w), n) for a bf16 row w, with the same 16 lanes, the
 * same separate multiply and add (no FMA) and the same final order, so the
 * result is bit-identical; but w is widened in registers, never stored. */
__attribute__((target("avx2"))) static float dot_bf16_avx2(const float *x, const uint16_t *w,
                                                           int64_t n) {
  __m256 lo = _mm256_setzero_ps(), hi = lo;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i wi = _mm256_loadu_si256((const __m256i *)(w + i));
    __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(wi)), 16));
    __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(wi, 1)), 16));
    lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(x + i), w0));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(x + i + 8), w1));
  }
  float acc[16], s = 0.0f;
  _mm256_storeu_ps(acc, lo);
  _mm256_storeu_ps(acc + 8, hi);
  for (; i < n; i++) s += x[i] * sc_f32_from_bf16(w[i]);
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

/* Decode-sized n on bf16 weights with AVX2: each row is read once, from
 * memory into registers, and dotted with every x row. */
static void linear_fused_bf16(float *y, const float *x, const sc_mat *w, int64_t n) {
  int64_t k = w->cols, r_n = w->rows;
  const uint16_t *wd = w->data;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < r_n; r++)
    for (int64_t t = 0; t < n; t++) y[t * r_n + r] = dot_bf16_avx2(x + t * k, wd + r * k, k);
}

/* Decode-sized n: one widened weight row per thread at a time. */
static void linear_fused(float *y, const float *x, const sc_mat *w, int64_t n, float *scratch) {
  int64_t k = w->cols, r_n = w->rows;
  if (w->dtype == SC_DTYPE_BF16 && __builtin_cpu_supports("avx2")) {
    linear_fused_bf16(y, x, w, n);
    return;
  }
#pragma omp parallel
  {
    float *row = scratch + (size_t)omp_get_thread_num() * (size_t)k;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < r_n; r++) {
      sc_mat_row(row, w, r);
      for (int64_t t = 0; t < n; t++) y[t * r_n + r] = dot_f32(x + t * k, row, k);
    }
  }
}

/* out[len] = f32 of row r, columns [c0, c0 + len) of a BF16 or F16 w;
 * inline so that the bf16 loop vectorises. */
static void widen_span(float *out, const sc_mat *w, int64_t r, int64_t c0, int64_t len) {
  size_t off = (size_t)r * (size_t)w->cols + (size_t)c0;
  if (w->dtype == SC_DTYPE_F16) {
    sc_f32_from_f16_n(out, (const uint16_t *)w->data + off, (size_t)len);
    return;
  }
  const uint16_t *src = (const uint16_t *)w->data + off;
  for (int64_t i = 0; i < len; i++) {
    uint32_t u = (uint32_t)src[i] << 16;
    memcpy(&out[i], &u, sizeof u);
  }
}

/* Prefill-sized n: the weights are widened one panel at a time, each
 * multiplied by one sgemm. sgemm packs both operands on every call, so the
 * panels are cut where repacking costs least: across rows (each panel
 * fills y's matching columns and repacks all of x) when K <= N, and across
 * columns when K > N (down_proj: each slice of x is packed once, y
 * accumulates with beta 1). The widening stays on this thread: an OpenMP
 * team here, alternating with OpenBLAS's own threads, halved sgemm
 * throughput on the 2-core machine (spin-waiting teams fighting over the
 * cores). */
static void linear_panels(float *y, const float *x, const sc_mat *w, int64_t n, float *scratch) {
  int64_t k = w->cols, r_n = w->rows, p = panel_rows(k);
  if (k > r_n && r_n * LINEAR_PANEL_MIN_ROWS <= LINEAR_PANEL_FLOATS) {
    int64_t kc = LINEAR_PANEL_FLOATS / r_n;
    kc -= kc % LINEAR_PANEL_MIN_ROWS;
    for (int64_t c0 = 0; c0 < k; c0 += kc) {
      int64_t len = k - c0 < kc ? k - c0 : kc;
      for (int64_t r = 0; r < r_n; r++) widen_span(scratch + r * len, w, r, c0, len);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)r_n, (int)len, 1.0f, x + c0,
                  (int)k, scratch, (int)len, c0 ? 1.0f : 0.0f, y, (int)r_n);
    }
    return;
  }
  for (int64_t r0 = 0; r0 < r_n; r0 += p) {
    int64_t pr = r_n - r0 < p ? r_n - r0 : p;
    for (int64_t i = 0; i < pr; i++) widen_span(scratch + i * k, w, r0 + i, 0, k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)pr, (int)k, 1.0f, x, (int)k,
                scratch, (int)k, 0.0f, y + r0, (int)r_n);
  }
}

/* BF16 mode: the weights' own bf16 values, or f32 weights rounded by g. */
static int linear_bf16(float *y, const float *x, const sc_mat *w, int64_t n, sc_gemm *g) {
  if (!g) return sc_error_setc(SC_ERR_ARG, "precision bf16 needs a GEMM context (sc_linear_gemm)");
  int M = (int)n, N = (int)w->rows, K = (int)w->cols;
  if (w->dtype == SC_DTYPE_BF16) return sc_gemm_bf16(g, y, x, w->data, NULL, M, N, K, 0);
  if (w->dtype == SC_DTYPE_F32) return sc_gemm_bf16_f32w(g, y, x, w->data, NULL, M, N, K, 0);
  /* F16 would need a converted copy of every matrix; Gemma 3 ships bf16. */
  return sc_error_setc(SC_ERR_ARG, "precision bf16 cannot multiply %s weights (use f32)",
                       sc_dtype_name(w->dtype));
}

int sc_linear_gemm(float *y, const float *x, const sc_mat *w, int64_t n, sc_precision p,
                   float *scratch, sc_gemm *g) {
  if (p != SC_PRECISION_F32 && p != SC_PRECISION_BF16)
    return sc_error_setc(SC_ERR_ARG, "unknown precision %d", (int)p);
  if (w->dtype != SC_DTYPE_F32 && w->dtype != SC_DTYPE_BF16 && w->dtype != SC_DTYPE_F16)
    return sc_error_setc(SC_ERR_ARG, "cannot multiply %s weights", sc_dtype_name(w->dtype));
  if (n <= 0 || w->rows <= 0) return 0;
  if (n > INT_MAX || w->rows > INT_MAX || w->cols > INT_MAX)
    return sc_error_setc(SC_ERR_ARG, "GEMM of [%lld, %lld] x [%lld]: too large for BLAS",
                         (long long)n, (long long)w->cols, (long long)w->rows);
  if (p == SC_PRECISION_BF16) return linear_bf16(y, x, w, n, g);
  if (n > LINEAR_FUSED_MAX_N && w->dtype != SC_DTYPE_F16 && sc_sg_available())
    return sc_sg_gemm(y, w->rows, x, w->cols, w->data, w->cols,
                      w->dtype == SC_DTYPE_BF16 ? SC_SG_NK_BF16 : SC_SG_NK_F32, NULL, 0.0f, n,
                      w->rows, w->cols);
  if (w->dtype == SC_DTYPE_F32)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)w->rows, (int)w->cols, 1.0f,
                x, (int)w->cols, (const float *)w->data, (int)w->cols, 0.0f, y, (int)w->rows);
  else if (n <= LINEAR_FUSED_MAX_N)
    linear_fused(y, x, w, n, scratch);
  else
    linear_panels(y, x, w, n, scratch);
  return 0;
}

int sc_linear(float *y, const float *x, const sc_mat *w, int64_t n, sc_precision p, float *scratch) {
  return sc_linear_gemm(y, x, w, n, p, scratch, NULL);
}

void sc_round_bf16(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN_ELEMS)
  for (int64_t i = 0; i < n; i++) x[i] = sc_f32_from_bf16(sc_bf16_from_f32(x[i]));
}

/* ==== Element-wise and row kernels ==== */

void sc_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps) {
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN_ELEMS)
  for (int64_t t = 0; t < n; t++) {
    const float *xr = x + t * d;
    float *yr = y + t * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
    /* Gemma3RMSNorm: x * rsqrt(mean(x²) + eps), then * (1 + w). */
    float inv = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
    for (int64_t i = 0; i < d; i++) yr[i] = xr[i] * inv * (1.0f + w[i]);
  }
}

void sc_add(float *x, const float *r, int64_t n, int64_t d) {
  int64_t m = n * d;
#pragma omp parallel for schedule(static) if (m > PAR_MIN_ELEMS)
  for (int64_t i = 0; i < m; i++) x[i] += r[i];
}

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* e^x for x clamped to [-87.3, 88] (Cephes expf: x = n·ln2 + r with ln2
 * split in two, a degree-5 polynomial for e^r, 2^n from the exponent bits,
 * which the bounds keep within -126..127); within 2 ulp of expf. NaN comes
 * back as a bound, so callers keep NaN through another operand. */
__attribute__((target("avx2,fma"))) static inline __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* gelu_tanh(x) = 0.5·x·(1 + tanh(z)) = x / (1 + e^(−2z)), z = c·(x + a·x³):
 * the logistic form needs one exp and no 1 + tanh cancellation. Differs
 * from the tanhf form by a few ulp (more, but below 1e-7 absolute, where
 * 1 + tanh(z) cancels for x < −3). */
static inline float gelu_tanh1(float x) {
  float z = GELU_C * (x + GELU_A * x * x * x);
  return x / (1.0f + expf(-2.0f * z));
}

__attribute__((target("avx2,fma"))) static void gelu_tanh_mul_avx2(float *g, const float *u, int64_t n) {
  const __m256 c2 = _mm256_set1_ps(-2.0f * GELU_C), a = _mm256_set1_ps(GELU_A), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(g + i);
    __m256 t = _mm256_fmadd_ps(_mm256_mul_ps(a, x), _mm256_mul_ps(x, x), x); /* x + a·x³ */
    __m256 e = exp_avx2(_mm256_mul_ps(c2, t));
    __m256 y = _mm256_div_ps(x, _mm256_add_ps(one, e));
    _mm256_storeu_ps(g + i, u ? _mm256_mul_ps(y, _mm256_loadu_ps(u + i)) : y);
  }
  for (; i < n; i++) g[i] = gelu_tanh1(g[i]) * (u ? u[i] : 1.0f);
}

/* With AVX2 one thread runs at memory speed (~3 ms for a 4B prefill's
 * 512 x 10240), and staying off OpenMP keeps its team from spinning
 * against the next sgemm's threads (see linear_panels). */
void sc_gelu_tanh_mul(float *g, const float *u, int64_t n) {
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    gelu_tanh_mul_avx2(g, u, n);
    return;
  }
#pragma omp parallel for schedule(static) if (n > PAR_MIN_ELEMS)
  for (int64_t i = 0; i < n; i++) {
    float x = g[i];
    g[i] = 0.5f * x * (1.0f + tanhf(GELU_C * (x + GELU_A * x * x * x))) * (u ? u[i] : 1.0f);
  }
}

void sc_softmax(float *x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    if (x[i] > mx) mx = x[i];
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* ==== RoPE ==== */

void sc_rope_inv_freq(float *inv, int half, double theta, double factor) {
  /* HF compute_default_rope_parameters: exponent arange(0, dim, 2).float()
   * / dim in float32, base ** exponent, 1 / that; linear scaling then
   * divides by factor (_compute_linear_scaling_rope_parameters). */
  float dim = (float)(2 * half);
  for (int j = 0; j < half; j++) {
    float e = (float)(2 * j) / dim;
    float pw = (float)pow(theta, (double)e);
    inv[j] = 1.0f / pw;
    if (factor != 1.0) inv[j] = inv[j] / (float)factor;
  }
}

void sc_rope_table(float *cos_t, float *sin_t, const int32_t *pos, int64_t n, const float *inv,
                   int half) {
  for (int64_t t = 0; t < n; t++)
    for (int j = 0; j < half; j++) {
      /* The angle is a float32 product, as in HF's float32 matmul. */
      float ang = (float)pos[t] * inv[j];
      cos_t[t * half + j] = (float)cos((double)ang);
      sin_t[t * half + j] = (float)sin((double)ang);
    }
}

void sc_rope(float *x, const float *cos_t, const float *sin_t, int64_t n, int heads, int half) {
#pragma omp parallel for schedule(static) if (n * heads * half > PAR_MIN_ELEMS)
  for (int64_t t = 0; t < n; t++) {
    const float *c = cos_t + t * half, *s = sin_t + t * half;
    for (int h = 0; h < heads; h++) {
      float *xh = x + (t * heads + h) * 2 * half;
      for (int j = 0; j < half; j++) {
        float a = xh[j], b = xh[j + half];
        xh[j] = a * c[j] - b * s[j];
        xh[j + half] = b * c[j] + a * s[j];
      }
    }
  }
}

/* ==== Attention ==== */

/* Prompts of at least this many new tokens run the attention through
 * sgemm (scores and P·v per head and query block); shorter calls (decode)
 * keep the per-query loop, which reads the cache once per query. */
#define ATTN_GEMM_MIN_N 8
/* Query rows per score block of the sgemm path: the causal mask leaves
 * the later keys of early blocks out of the products. */
#define ATTN_QBLOCK 64

size_t sc_attention_scratch(const sc_attn *a, int64_t n) {
  size_t keys = (size_t)(a->pos0 - a->past_lo + n);
  size_t loop = (size_t)sc_kernels_threads() * keys;
  if (n < ATTN_GEMM_MIN_N) return loop;
  /* K and V of every kv head gathered in position order, and one score
   * block per thread. */
  size_t gemm = 2 * keys * (size_t)a->n_kv_heads * (size_t)a->head_dim +
                (size_t)sc_kernels_threads() * (size_t)ATTN_QBLOCK * keys;
  return gemm > loop ? gemm : loop;
}

/* Row of kv head g at position p: from the new block or the past ring. */
static const float *kv_row(const sc_attn *a, const float *fresh, const float *past, int64_t p, int g) {
  size_t width = (size_t)a->n_kv_heads * (size_t)a->head_dim;
  size_t off = (size_t)g * (size_t)a->head_dim;
  if (p >= a->pos0) return fresh + (size_t)(p - a->pos0) * width + off;
  return past + (size_t)(p % a->past_cap) * width + off;
}

static int key_allowed(const sc_attn *a, int64_t t, int64_t p) {
  int64_t q = a->pos0 + t;
  if (p <= q && (a->window <= 0 || p > q - a->window)) return 1;
  return a->group && p >= a->pos0 && a->group[t] >= 0 && a->group[t] == a->group[p - a->pos0];
}

/* Key positions [*lo, *hi] query t may need to look at. */
static void key_range(const sc_attn *a, int64_t t, int64_t n, int64_t *lo, int64_t *hi) {
  int64_t q = a->pos0 + t;
  *lo = a->past_lo;
  if (a->window > 0 && q - a->window + 1 > *lo) *lo = q - a->window + 1;
  *hi = q;
  if (a->group && a->group[t] >= 0) {
    if (a->pos0 < *lo) *lo = a->pos0;
    *hi = a->pos0 + n - 1;
  }
}

/* One (query, head): o[head_dim] = Σ softmax(s)·v over the allowed keys. */
static void attend_one(float *o, const float *qh, const float *k, const float *v, int64_t t,
                       int g, int64_t n, const sc_attn *a, float *s) {
  int64_t lo, hi;
  key_range(a, t, n, &lo, &hi);
  float mx = -INFINITY;
  for (int64_t p = lo; p <= hi; p++) {
    float sc = -INFINITY;
    if (key_allowed(a, t, p)) sc = dot_f32(qh, kv_row(a, k, a->past_k, p, g), a->head_dim) * a->scale;
    s[p - lo] = sc;
    if (sc > mx) mx = sc;
  }
  double sum = 0.0;
  for (int64_t p = lo; p <= hi; p++) {
    s[p - lo] = s[p - lo] == -INFINITY ? 0.0f : expf(s[p - lo] - mx);
    sum += s[p - lo];
  }
  memset(o, 0, (size_t)a->head_dim * sizeof *o);
  for (int64_t p = lo; p <= hi; p++) {
    if (s[p - lo] == 0.0f) continue;
    float wgt = (float)(s[p - lo] / sum);
    /* bf16 mode: P is a bf16 GEMM operand (HF bf16 casts the softmax back
     * to bf16 before P·v). */
    if (a->precision == SC_PRECISION_BF16) wgt = sc_f32_from_bf16(sc_bf16_from_f32(wgt));
    const float *vr = kv_row(a, v, a->past_v, p, g);
    for (int d = 0; d < a->head_dim; d++) o[d] += wgt * vr[d];
  }
}

/* Masks, softmaxes and (bf16 mode) rounds row t of a score block whose
 * columns are key positions [lo, lo + nk), as attend_one does: masked
 * keys get probability 0, sums in double. */
static void softmax_scores(float *s, int64_t nk, int64_t lo, int64_t t, int64_t n, const sc_attn *a) {
  int64_t rlo, rhi;
  key_range(a, t, n, &rlo, &rhi);
  float mx = -INFINITY;
  for (int64_t j = 0; j < nk; j++) {
    int64_t p = lo + j;
    int ok = p >= rlo && p <= rhi && (!a->group || key_allowed(a, t, p));
    if (!ok) s[j] = -INFINITY;
    else if (s[j] > mx) mx = s[j];
  }
  double sum = 0.0;
  for (int64_t j = 0; j < nk; j++) {
    s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx);
    sum += s[j];
  }
  for (int64_t j = 0; j < nk; j++) {
    float wgt = (float)(s[j] / sum);
    s[j] = a->precision == SC_PRECISION_BF16 ? sc_f32_from_bf16(sc_bf16_from_f32(wgt)) : wgt;
  }
}

/* S[rows, nk] = scale · q·kᵀ, or O[rows, hd] = P·v (kv = 1), one thread:
 * sgemm.h's kernel where the CPU has it (the scale applied after the sums,
 * as HF does), else OpenBLAS. */
static void attn_product(float *c, int64_t ldc, const float *x, int64_t ldx, const float *kv,
                         int64_t ld, int is_pv, float scale, int64_t rows, int64_t cols,
                         int64_t depth) {
  if (sc_sg_available() &&
      sc_sg_gemm(c, ldc, x, ldx, kv, ld, is_pv ? SC_SG_KN_F32 : SC_SG_NK_F32, NULL, 0.0f, rows,
                 cols, depth) == 0) {
    if (!is_pv)
      for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) c[r * ldc + j] *= scale;
    return;
  }
  sc_error_clear();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, is_pv ? CblasNoTrans : CblasTrans, (int)rows,
              (int)cols, (int)depth, is_pv ? 1.0f : scale, x, (int)ldx, kv, (int)ld, 0.0f, c,
              (int)ldc);
}

/* Prompt-sized attention with GEMMs: per query head and block of
 * ATTN_QBLOCK queries (the threads share these out), S = q·kᵀ·scale over
 * the keys the block may see, the masked softmax row by row, then out =
 * P·v. With a past, keys and values are first gathered in position order. */
static void attention_gemm(float *out, const float *q, const float *k, const float *v, int64_t n,
                           const sc_attn *a, float *scratch) {
  int hd = a->head_dim, heads = a->n_heads, rep = a->n_heads / a->n_kv_heads;
  int64_t past = a->pos0 - a->past_lo, keys = past + n, kvw = (int64_t)a->n_kv_heads * hd;
  int64_t qw = (int64_t)heads * hd, blocks = (n + ATTN_QBLOCK - 1) / ATTN_QBLOCK;
  float *kb = scratch, *vb = kb + keys * kvw, *sb = vb + keys * kvw;
  const float *kall = k, *vall = v;
  if (past > 0) {
#pragma omp parallel for schedule(static)
    for (int64_t p = a->past_lo; p < a->pos0 + n; p++)
      for (int g = 0; g < a->n_kv_heads; g++) {
        size_t at = (size_t)((p - a->past_lo) * kvw + (int64_t)g * hd);
        memcpy(kb + at, kv_row(a, k, a->past_k, p, g), (size_t)hd * sizeof *kb);
        memcpy(vb + at, kv_row(a, v, a->past_v, p, g), (size_t)hd * sizeof *vb);
      }
    kall = kb, vall = vb;
  }
#pragma omp parallel
  {
    float *s = sb + (size_t)omp_get_thread_num() * (size_t)(ATTN_QBLOCK * keys);
#pragma omp for collapse(2) schedule(dynamic)
    for (int h = 0; h < heads; h++)
      for (int64_t b = 0; b < blocks; b++) {
        int64_t t0 = b * ATTN_QBLOCK, t1 = t0 + ATTN_QBLOCK < n ? t0 + ATTN_QBLOCK : n;
        int64_t lo = INT64_MAX, hi = -1;
        for (int64_t t = t0; t < t1; t++) {
          int64_t rlo, rhi;
          key_range(a, t, n, &rlo, &rhi);
          if (rlo < lo) lo = rlo;
          if (rhi > hi) hi = rhi;
        }
        int64_t nk = hi - lo + 1, rows = t1 - t0;
        size_t kv_at = (size_t)((lo - a->past_lo) * kvw + (int64_t)(h / rep) * hd);
        attn_product(s, nk, q + (size_t)(t0 * qw + (int64_t)h * hd), qw, kall + kv_at, kvw, 0,
                     a->scale, rows, nk, hd);
        for (int64_t t = t0; t < t1; t++) softmax_scores(s + (t - t0) * nk, nk, lo, t, n, a);
        attn_product(out + (size_t)(t0 * qw + (int64_t)h * hd), qw, s, nk, vall + kv_at, kvw, 1,
                     1.0f, rows, hd, nk);
      }
  }
}

void sc_attention(float *out, const float *q, const float *k, const float *v, int64_t n,
                  const sc_attn *a, float *scratch) {
  if (n >= ATTN_GEMM_MIN_N) {
    attention_gemm(out, q, k, v, n, a, scratch);
    return;
  }
  int hd = a->head_dim, heads = a->n_heads, rep = a->n_heads / a->n_kv_heads;
  size_t per_thread = (size_t)(a->pos0 - a->past_lo + n);
#pragma omp parallel
  {
    float *s = scratch + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for collapse(2) schedule(static)
    for (int64_t t = 0; t < n; t++)
      for (int h = 0; h < heads; h++) {
        size_t off = ((size_t)t * heads + h) * hd;
        attend_one(out + off, q + off, k, v, t, h / rep, n, a, s);
      }
  }
}
