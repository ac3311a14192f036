/* sae_kernels.c: sparse CPU kernels for SAEs (see sae_kernels.h). */
#include "sae/sae_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/blas.h"
#include "tensor/sgemm.h"

/* ==== Encoder tile ==== */

void sae_encode_tile(float *h, float *xc, const float *x, const float *sub, const float *W_enc,
                     const float *b_enc, int64_t T, int64_t d, int64_t n) {
  const float *a = x;
  if (sub) {
#pragma omp parallel for schedule(static) SAE_PAR(T * d)
    for (int64_t r = 0; r < T; r++)
      for (int64_t j = 0; j < d; j++) xc[r * d + j] = x[r * d + j] - sub[j];
    a = xc;
  }
  /* sgemm.h adds the bias as it writes h: one pass over the tile fewer. */
  if (T >= SC_SG_MIN_M && sc_sg_available() &&
      sc_sg_gemm(h, n, a, d, W_enc, d, SC_SG_NK_F32, b_enc, 0.0f, T, n, d) == 0)
    return;
  sc_error_clear();
#pragma omp parallel for schedule(static) SAE_PAR(T * n)
  for (int64_t r = 0; r < T; r++) memcpy(h + r * n, b_enc, (size_t)n * sizeof *h);
  sc_sgemm(0, 1, T, n, d, 1.0f, a, d, W_enc, d, 1.0f, h, n);
}

/* ==== Top-k ==== */

/* Heap order: the root is the "smallest" kept entry; a larger value wins,
 * and among equal values the lower index wins (it ranks higher). */
static int ranks_below(float va, int32_t ia, float vb, int32_t ib) {
  return va < vb || (va == vb && ia > ib);
}

static void heap_sift_down(float *hv, int32_t *hi, int k, int p) {
  for (;;) {
    int l = 2 * p + 1, r = l + 1, m = p;
    if (l < k && ranks_below(hv[l], hi[l], hv[m], hi[m])) m = l;
    if (r < k && ranks_below(hv[r], hi[r], hv[m], hi[m])) m = r;
    if (m == p) return;
    float tv = hv[p];
    int32_t ti = hi[p];
    hv[p] = hv[m], hi[p] = hi[m], hv[m] = tv, hi[m] = ti;
    p = m;
  }
}

/* Adds entry (v, i) to a heap holding cnt of k: appended (and heapified
 * when it becomes full) while cnt < k, else offered against the root.
 * Returns the new count. */
static inline int heap_add(float *hv, int32_t *hi, int k, int cnt, float v, int32_t i) {
  if (cnt < k) {
    hv[cnt] = v, hi[cnt] = i, cnt++;
    if (cnt == k)
      for (int p = k / 2 - 1; p >= 0; p--) heap_sift_down(hv, hi, k, p);
  } else if (ranks_below(hv[0], hi[0], v, i)) {
    hv[0] = v, hi[0] = i;
    heap_sift_down(hv, hi, k, 0);
  }
  return cnt;
}

/* Sorts the heap of cnt entries descending in place; returns cnt. */
static int heap_finish(float *hv, int32_t *hi, int k, int cnt) {
  if (cnt < k)
    for (int p = cnt / 2 - 1; p >= 0; p--) heap_sift_down(hv, hi, cnt, p);
  /* Heap sort: repeatedly move the smallest to the end -> descending order. */
  for (int m = cnt - 1; m > 0; m--) {
    float tv = hv[0];
    int32_t ti = hi[0];
    hv[0] = hv[m], hi[0] = hi[m], hv[m] = tv, hi[m] = ti;
    heap_sift_down(hv, hi, m, 0);
  }
  return cnt;
}

/* Selects the k best of row (restricted to mask when given) into a min-heap,
 * then sorts it descending in place. Returns how many were found. */
static int topk_one(int32_t *hi, float *hv, const float *row, const uint8_t *mask, int64_t n,
                    int k) {
  int cnt = 0;
  for (int64_t i = 0; i < n; i++)
    if (!mask || mask[i]) cnt = heap_add(hv, hi, k, cnt, row[i], (int32_t)i);
  return heap_finish(hv, hi, k, cnt);
}

/* Candidates the fast top-k keeps on the stack; a row with more (many equal
 * values) takes the plain path. */
#define TOPK_CAND 512
/* Most blocks the fast top-k cuts a row into. */
#define TOPK_BLOCKS 1024

/* The same selection, unmasked, in two vector passes: the row is cut into
 * nb >= k blocks, and the k-th largest block maximum is a value that k
 * distinct entries reach, so no entry below it can be among the k best.
 * The entries at or above it (about 75 of 16384 for k = 64 with nb = 4k)
 * then go through the heap in index order, which gives exactly topk_one's
 * result; the plain path's per-entry heap work took ~35 us per such row.
 * Returns -1, having done nothing, when it does not apply: n < 8·k, a NaN
 * in the row (the plain path's NaN handling is kept), or too many
 * candidates (many equal values). */
__attribute__((target("avx2"))) static int topk_one_avx2(int32_t *hi, float *hv, const float *row,
                                                         int64_t n, int k) {
  if (n < 8 * (int64_t)k || k > TOPK_BLOCKS) return -1;
  int nb = n >= 32 * (int64_t)k && 4 * k <= TOPK_BLOCKS ? 4 * k : k;
  int64_t blk = (n / nb) & ~(int64_t)7; /* nb blocks of blk (a multiple of 8) cover [0, nb·blk) */
  __m256 nan = _mm256_setzero_ps();
  float bm[TOPK_BLOCKS];
  for (int b = 0; b < nb; b++) {
    const float *p = row + (int64_t)b * blk;
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (int64_t j = 0; j < blk; j += 8) {
      __m256 x = _mm256_loadu_ps(p + j);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
      mx = _mm256_max_ps(mx, x);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    bm[b] = _mm_cvtss_f32(m4);
  }
  for (int64_t j = (int64_t)nb * blk; j < n; j++)
    if (row[j] != row[j]) return -1;
  if (_mm256_movemask_ps(nan)) return -1;
  float thr = sae_kth_largest(bm, nb, k);
  float cv[TOPK_CAND];
  int32_t ci[TOPK_CAND];
  int nc = 0;
  __m256 t = _mm256_set1_ps(thr);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + j), t, _CMP_GE_OQ));
    for (; bits; bits &= bits - 1) {
      if (nc == TOPK_CAND) return -1;
      int o = __builtin_ctz(bits);
      cv[nc] = row[j + o], ci[nc] = (int32_t)(j + o), nc++;
    }
  }
  for (; j < n; j++)
    if (row[j] >= thr) {
      if (nc == TOPK_CAND) return -1;
      cv[nc] = row[j], ci[nc] = (int32_t)j, nc++;
    }
  /* Candidates are few: a stable insertion sort by value, descending (equal
   * values keep index order, as the heap ranks them), then the first k. */
  for (int e = 1; e < nc; e++) {
    float v = cv[e];
    int32_t i = ci[e];
    int p = e;
    for (; p > 0 && cv[p - 1] < v; p--) cv[p] = cv[p - 1], ci[p] = ci[p - 1];
    cv[p] = v, ci[p] = i;
  }
  int cnt = nc < k ? nc : k;
  memcpy(hv, cv, (size_t)cnt * sizeof *hv);
  memcpy(hi, ci, (size_t)cnt * sizeof *hi);
  return cnt;
}

void sae_topk_rows(int32_t *idx, float *val, const float *h, int64_t rows, int64_t n,
                   int64_t ldh, int k) {
#pragma omp parallel for schedule(static) SAE_PAR(rows * n)
  for (int64_t r = 0; r < rows; r++) {
    if (!__builtin_cpu_supports("avx2") || topk_one_avx2(idx + r * k, val + r * k, h + r * ldh, n, k) < 0)
      topk_one(idx + r * k, val + r * k, h + r * ldh, NULL, n, k);
  }
}

void sae_topk_rows_masked(int32_t *idx, float *val, const float *h, const uint8_t *mask,
                          int64_t rows, int64_t n, int64_t ldh, int k) {
#pragma omp parallel for schedule(static) SAE_PAR(rows * n)
  for (int64_t r = 0; r < rows; r++) {
    int got = topk_one(idx + r * k, val + r * k, h + r * ldh, mask, n, k);
    for (int j = got; j < k; j++) idx[r * k + j] = -1, val[r * k + j] = -INFINITY;
  }
}

float sae_kth_largest(float *v, int64_t count, int64_t kth) {
  int64_t lo = 0, hi = count - 1, want = kth - 1; /* position in descending order */
  while (lo < hi) {
    float pivot = v[lo + (hi - lo) / 2];
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] > pivot) i++;
      while (v[j] < pivot) j--;
      if (i <= j) {
        float t = v[i];
        v[i] = v[j], v[j] = t;
        i++, j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return v[want];
  }
  return v[want];
}

/* ==== CSR building ==== */

int sae_codes_append_threshold(sae_codes *c, const float *h, const float *thr, int64_t T,
                               int64_t n, int64_t ldh) {
  int64_t r0 = c->rows, base = c->row_ptr[r0];
  int rc = sae_codes_reserve(c, r0 + T, base);
  if (rc) return rc;
#pragma omp parallel for schedule(static) SAE_PAR(T * n)
  for (int64_t r = 0; r < T; r++) {
    int64_t cnt = 0;
    const float *row = h + r * ldh;
    for (int64_t i = 0; i < n; i++) cnt += row[i] > 0.0f && (!thr || row[i] > thr[i]);
    c->row_ptr[r0 + r + 1] = cnt;
  }
  for (int64_t r = 0; r < T; r++) c->row_ptr[r0 + r + 1] += c->row_ptr[r0 + r];
  rc = sae_codes_reserve(c, r0 + T, c->row_ptr[r0 + T]);
  if (rc) return rc;
#pragma omp parallel for schedule(static) SAE_PAR(T * n)
  for (int64_t r = 0; r < T; r++) {
    int64_t e = c->row_ptr[r0 + r];
    const float *row = h + r * ldh;
    for (int64_t i = 0; i < n; i++)
      if (row[i] > 0.0f && (!thr || row[i] > thr[i])) c->idx[e] = (int32_t)i, c->val[e++] = row[i];
  }
  c->rows = r0 + T;
  return 0;
}

int sae_codes_append_fixed(sae_codes *c, const int32_t *idx, const float *val, int64_t T, int k,
                           float lo) {
  int64_t r0 = c->rows;
  int rc = sae_codes_reserve(c, r0 + T, c->row_ptr[r0] + T * (int64_t)k);
  if (rc) return rc;
  for (int64_t r = 0; r < T; r++) {
    int64_t e = c->row_ptr[r0 + r];
    for (int j = 0; j < k; j++) {
      float v = val[r * k + j];
      if (v >= lo && v > 0.0f) c->idx[e] = idx[r * k + j], c->val[e++] = v;
    }
    c->row_ptr[r0 + r + 1] = e;
  }
  c->rows = r0 + T;
  return 0;
}

/* ==== Decode and latent gradients ==== */

void sae_decode_csr(float *xhat, const sae_codes *c, const float *W_dec, const float *b_dec,
                    int64_t d) {
#pragma omp parallel for schedule(static) SAE_PAR(c->rows * d * 8)
  for (int64_t r = 0; r < c->rows; r++) {
    float *y = xhat + r * d;
    if (b_dec) memcpy(y, b_dec, (size_t)d * sizeof *y);
    else memset(y, 0, (size_t)d * sizeof *y);
    for (int64_t e = c->row_ptr[r]; e < c->row_ptr[r + 1]; e++) {
      const float *w = W_dec + (int64_t)c->idx[e] * d;
      float a = c->val[e];
      for (int64_t j = 0; j < d; j++) y[j] += a * w[j];
    }
  }
}

/* Σ_j (g[j]·gs)·w[j] in 16 fixed lanes, then the lanes pairwise: a float
 * dot the compiler can vectorise (a single running sum cannot be reordered)
 * with one fixed order of additions. */
static float dot_lanes(const float *g, const float *w, float gs, int64_t d) {
  float acc[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= d; j += 16)
    for (int t = 0; t < 16; t++) acc[t] += (g[j + t] * gs) * w[j + t];
  float tail = 0.0f;
  for (; j < d; j++) tail += (g[j] * gs) * w[j];
  for (int h = 8; h > 0; h /= 2)
    for (int t = 0; t < h; t++) acc[t] += acc[t + h];
  return acc[0] + tail;
}

void sae_entry_dots(float *out, const sae_codes *c, const float *W, const float *g, int64_t d) {
#pragma omp parallel for schedule(static) SAE_PAR(c->rows * d * 8)
  for (int64_t r = 0; r < c->rows; r++) {
    const float *gr = g + r * d;
    for (int64_t e = c->row_ptr[r]; e < c->row_ptr[r + 1]; e++)
      out[e] = dot_lanes(gr, W + (int64_t)c->idx[e] * d, 1.0f, d);
  }
}

/* y[j] += Σ_e coef[e] · rows[e][j] over e = 0..cnt−1 in order, for every j:
 * each y[j] gets the same additions in the same order as the plain loop
 * nest (multiply, then add; never fused), so both paths give the same bits.
 * The AVX2 path adds four rows per pass over y, so y is loaded and stored
 * once per four rows instead of once per row. */
__attribute__((target("avx2"))) static void axpy_rows_avx2(float *y, const float *const *rows,
                                                           const float *coef, int cnt, int64_t d) {
  int e = 0;
  for (; e + 4 <= cnt; e += 4) {
    const float *r0 = rows[e], *r1 = rows[e + 1], *r2 = rows[e + 2], *r3 = rows[e + 3];
    __m256 a0 = _mm256_set1_ps(coef[e]), a1 = _mm256_set1_ps(coef[e + 1]);
    __m256 a2 = _mm256_set1_ps(coef[e + 2]), a3 = _mm256_set1_ps(coef[e + 3]);
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
      __m256 v = _mm256_loadu_ps(y + j);
      v = _mm256_add_ps(v, _mm256_mul_ps(a0, _mm256_loadu_ps(r0 + j)));
      v = _mm256_add_ps(v, _mm256_mul_ps(a1, _mm256_loadu_ps(r1 + j)));
      v = _mm256_add_ps(v, _mm256_mul_ps(a2, _mm256_loadu_ps(r2 + j)));
      v = _mm256_add_ps(v, _mm256_mul_ps(a3, _mm256_loadu_ps(r3 + j)));
      _mm256_storeu_ps(y + j, v);
    }
    for (; j < d; j++) {
      float v = y[j];
      v += coef[e] * r0[j];
      v += coef[e + 1] * r1[j];
      v += coef[e + 2] * r2[j];
      v += coef[e + 3] * r3[j];
      y[j] = v;
    }
  }
  for (; e < cnt; e++) {
    const float *r = rows[e];
    __m256 a = _mm256_set1_ps(coef[e]);
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
      _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j),
                                            _mm256_mul_ps(a, _mm256_loadu_ps(r + j))));
    for (; j < d; j++) y[j] += coef[e] * r[j];
  }
}

static void axpy_rows(float *y, const float *const *rows, const float *coef, int cnt, int64_t d) {
  if (__builtin_cpu_supports("avx2")) {
    axpy_rows_avx2(y, rows, coef, cnt, d);
    return;
  }
  for (int e = 0; e < cnt; e++)
    for (int64_t j = 0; j < d; j++) y[j] += coef[e] * rows[e][j];
}

/* Rows handed to axpy_rows at a time. */
#define AXPY_BATCH 16

void sae_decode_residual_dots(float *diff, double *rowsq, float *dval, const sae_codes *c,
                              const float *W_dec, const float *b_dec, const float *x, float gs,
                              int64_t d) {
#pragma omp parallel for schedule(static) SAE_PAR(c->rows * d * 8)
  for (int64_t r = 0; r < c->rows; r++) {
    float *y = diff + r * d;
    const float *xr = x + r * d;
    if (b_dec) memcpy(y, b_dec, (size_t)d * sizeof *y);
    else memset(y, 0, (size_t)d * sizeof *y);
    for (int64_t e0 = c->row_ptr[r]; e0 < c->row_ptr[r + 1]; e0 += AXPY_BATCH) {
      int cnt = (int)(c->row_ptr[r + 1] - e0 < AXPY_BATCH ? c->row_ptr[r + 1] - e0 : AXPY_BATCH);
      const float *rows[AXPY_BATCH];
      for (int t = 0; t < cnt; t++) rows[t] = W_dec + (int64_t)c->idx[e0 + t] * d;
      axpy_rows(y, rows, c->val + e0, cnt, d);
    }
    double q = 0.0;
    for (int64_t j = 0; j < d; j++) {
      y[j] = y[j] - xr[j];
      q += (double)y[j] * y[j];
    }
    rowsq[r] = q;
    /* The row's decoder rows were just read: their dots come from cache. */
    for (int64_t e = c->row_ptr[r]; e < c->row_ptr[r + 1]; e++)
      dval[e] = dot_lanes(y, W_dec + (int64_t)c->idx[e] * d, gs, d);
  }
}

/* ==== Latent-major scatters ==== */

void sae_csc_build(int64_t *col_ptr, int64_t *perm, int32_t *row_of, const sae_codes *c,
                   int64_t n) {
  int64_t nnz = c->row_ptr[c->rows];
  memset(col_ptr, 0, (size_t)(n + 1) * sizeof *col_ptr);
  for (int64_t r = 0; r < c->rows; r++)
    for (int64_t e = c->row_ptr[r]; e < c->row_ptr[r + 1]; e++) {
      row_of[e] = (int32_t)r;
      col_ptr[c->idx[e] + 1]++;
    }
  for (int64_t i = 0; i < n; i++) col_ptr[i + 1] += col_ptr[i];
  /* Stable placement: entries arrive in row order, so each latent's list is
   * sorted by row. col_ptr is shifted during the fill and restored after. */
  for (int64_t e = 0; e < nnz; e++) perm[col_ptr[c->idx[e]]++] = e;
  for (int64_t i = n; i > 0; i--) col_ptr[i] = col_ptr[i - 1];
  col_ptr[0] = 0;
}

void sae_scatter_rows(float *dW, const int64_t *col_ptr, const int64_t *perm,
                      const int32_t *row_of, const float *coef, const float *r, int64_t n,
                      int64_t d, int overwrite, const float *proj, double *rowsq) {
#pragma omp parallel for schedule(dynamic, 64) SAE_PAR(col_ptr[n] * d + n)
  for (int64_t i = 0; i < n; i++) {
    float *w = dW + i * d;
    if (overwrite) memset(w, 0, (size_t)d * sizeof *w);
    for (int64_t p0 = col_ptr[i]; p0 < col_ptr[i + 1]; p0 += AXPY_BATCH) {
      int cnt = (int)(col_ptr[i + 1] - p0 < AXPY_BATCH ? col_ptr[i + 1] - p0 : AXPY_BATCH);
      const float *rows[AXPY_BATCH];
      float a[AXPY_BATCH];
      for (int t = 0; t < cnt; t++) {
        int64_t e = perm[p0 + t];
        rows[t] = r + (int64_t)row_of[e] * d, a[t] = coef[e];
      }
      axpy_rows(w, rows, a, cnt, d);
    }
    if (rowsq) rowsq[i] = sae_row_project_sq(w, proj ? proj + i * d : NULL, d);
  }
}

double sae_row_project_sq(float *g, const float *w, int64_t d) {
  if (w) {
    double dot = 0.0;
    for (int64_t j = 0; j < d; j++) dot += (double)g[j] * w[j];
    for (int64_t j = 0; j < d; j++) g[j] -= (float)dot * w[j];
  }
  double a = 0.0;
  for (int64_t j = 0; j < d; j++) a += (double)g[j] * g[j];
  return a;
}

void sae_sum_latents(float *out, const int64_t *col_ptr, const int64_t *perm, const float *coef,
                     int64_t n) {
#pragma omp parallel for schedule(static) SAE_PAR(col_ptr[n] + n)
  for (int64_t i = 0; i < n; i++) {
    double s = 0.0;
    for (int64_t p = col_ptr[i]; p < col_ptr[i + 1]; p++) s += coef[perm[p]];
    out[i] += (float)s;
  }
}

#define COMBINE_ROWS 256

void sae_rows_combine(double *out, const float *coef, const float *W, int64_t n, int64_t d,
                      double alpha, double *part) {
  /* Fixed chunks of rows, each summed in row order into its own partial,
   * then the partials in chunk order: the same bits for any thread count. */
  int64_t nc = (n + COMBINE_ROWS - 1) / COMBINE_ROWS;
#pragma omp parallel for schedule(static) SAE_PAR(n * d)
  for (int64_t ch = 0; ch < nc; ch++) {
    double *p = part + ch * d;
    memset(p, 0, (size_t)d * sizeof *p);
    int64_t i1 = (ch + 1) * COMBINE_ROWS < n ? (ch + 1) * COMBINE_ROWS : n;
    for (int64_t i = ch * COMBINE_ROWS; i < i1; i++) {
      double a = coef[i];
      if (a == 0.0) continue;
      const float *w = W + i * d;
      for (int64_t j = 0; j < d; j++) p[j] += a * w[j];
    }
  }
  for (int64_t ch = 0; ch < nc; ch++)
    for (int64_t j = 0; j < d; j++) out[j] += alpha * part[ch * d + j];
}

int64_t sae_rows_combine_scratch(int64_t n, int64_t d) {
  return (n + COMBINE_ROWS - 1) / COMBINE_ROWS * d;
}
