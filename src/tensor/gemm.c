/* gemm.c: bf16 GEMM through oneDNN's matmul, or through widening to f32
 * where oneDNN has no bf16 kernel for the CPU (see gemm.h). This file is the
 * only caller of oneDNN in saecap.
 */
#include "tensor/gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/dtype.h"
#include "tensor/sgemm.h"

/* Cached oneDNN primitives; the least recently used one is dropped beyond
 * this (a run sees about 7 weight shapes x {prefill T, decode 1}). */
#define GEMM_CACHE_CAP 64
/* Floats in the widened W panel of the WIDEN sgemm path (16 MiB): sgemm
 * repacks x for every panel, so panels of 4 MiB ran ~10% below sgemm on the
 * whole f32 W at M = 512 and 16 MiB ~3% (Zen 3, one thread); still within
 * the 32 MiB L3 while sgemm packs it. */
#define GEMM_PANEL_FLOATS ((size_t)1 << 22)
/* Element counts below this are rounded/widened on one thread. */
#define GEMM_PAR_MIN ((size_t)1 << 16)
/* The GEMV kernel prefetches W this many elements (8 KiB) ahead of its
 * loads: one thread then streamed ~16 GB/s of bf16 weights instead of
 * ~11 (Zen 3, best of 3 on a busy machine; 1-4 KiB ahead was in between). */
#define GEMM_PF 4096

/* One cached oneDNN matmul for one shape; memory objects are created
 * without data and pointed at the caller's arrays on each call. */
typedef struct gemm_prim {
  int M, N, K, has_bias, accumulate; /* the key, with dt */
  dnnl_data_type_t dt;               /* of x and W: bf16, or f32 (sc_gemm_f32_onednn) */
  uint64_t last_use;                 /* g->clock at the last call */
  dnnl_primitive_t prim;
  dnnl_memory_t src, wei, bias, dst; /* bias NULL when has_bias is 0 */
  char impl[64];                     /* oneDNN's implementation name */
} gemm_prim;

struct sc_gemm {
  sc_gemm_backend backend; /* ONEDNN or WIDEN */
  int n_threads;           /* <= 0: process-wide counts */
  int avx2;                /* the CPU has AVX2 + FMA (WIDEN's GEMV kernel) */
  dnnl_engine_t engine;    /* NULL under WIDEN */
  dnnl_stream_t stream;
  gemm_prim cache[GEMM_CACHE_CAP];
  int n_cache;
  uint64_t clock;
  uint16_t *xb;   /* (M, K) bf16(x) */
  size_t xb_cap;  /* bytes */
  float *xf;      /* (M, K) f32(bf16(x)), WIDEN (xb holds bf16(x) first) */
  size_t xf_cap;  /* bytes */
  float *panel;   /* (rows, K) widened W, WIDEN */
  size_t panel_cap;
  uint16_t *wb;   /* (N, K) bf16(W), sc_gemm_bf16_f32w */
  size_t wb_cap;
  char why[128];  /* why AUTO chose WIDEN; "" otherwise */
  char impl[64];  /* kernel of the last product */
  char desc[320]; /* sc_gemm_describe's line */
};

/* ==== helpers ============================================================ */

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
  case dnnl_cpu_isa_sse41: return "sse41";
  case dnnl_cpu_isa_avx: return "avx";
  case dnnl_cpu_isa_avx2: return "avx2";
  case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
  case dnnl_cpu_isa_avx512_core: return "avx512_core";
  case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
  default: return "other";
  }
}

/* buf if it holds bytes already, else a new buffer of that size (contents
 * not kept; the old one is freed); NULL with *cap = 0 when out of memory. */
static void *grow(void *buf, size_t *cap, size_t bytes) {
  if (buf && bytes <= *cap) return buf;
  free(buf);
  buf = malloc(bytes);
  *cap = buf ? bytes : 0;
  return buf;
}

static int no_memory(size_t bytes) {
  return sc_error_setc(SC_ERR_NOMEM, "gemm: out of memory for a %zu-byte buffer", bytes);
}

static int dnnl_fail(dnnl_status_t s, const char *what, int M, int N, int K) {
  return sc_error_setc(SC_ERR_INTERNAL, "gemm: oneDNN %s failed for M=%d N=%d K=%d: %s", what, M, N,
                       K, dnnl_status2str(s));
}

/* Thread counts saved around one product when g->n_threads > 0. */
typedef struct gemm_threads {
  int omp, blas;
} gemm_threads;

static gemm_threads threads_enter(const sc_gemm *g) {
  gemm_threads t = {omp_get_max_threads(), openblas_get_num_threads()};
  if (g->n_threads > 0) {
    if (t.omp != g->n_threads) omp_set_num_threads(g->n_threads);
    if (t.blas != g->n_threads) openblas_set_num_threads(g->n_threads);
  }
  return t;
}

static void threads_leave(const sc_gemm *g, gemm_threads t) {
  if (g->n_threads <= 0) return;
  if (t.omp != g->n_threads) omp_set_num_threads(t.omp);
  if (t.blas != g->n_threads) openblas_set_num_threads(t.blas);
}

static int check_args(const float *y, const float *x, const void *w, int M, int N, int K) {
  if (!y || !x || !w) return sc_error_setc(SC_ERR_ARG, "gemm: NULL %s", !y ? "y" : !x ? "x" : "w");
  if (M < 1 || N < 1 || K < 1 || M > SC_GEMM_MAX_DIM || N > SC_GEMM_MAX_DIM || K > SC_GEMM_MAX_DIM)
    return sc_error_setc(SC_ERR_ARG, "gemm: bad shape M=%d N=%d K=%d (each must be 1..%d)", M, N,
                         K, SC_GEMM_MAX_DIM);
  return 0;
}

/* ==== oneDNN primitives ================================================== */

static void prim_free(gemm_prim *p) {
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->src) dnnl_memory_destroy(p->src);
  if (p->wei) dnnl_memory_destroy(p->wei);
  if (p->bias) dnnl_memory_destroy(p->bias);
  if (p->dst) dnnl_memory_destroy(p->dst);
  memset(p, 0, sizeof *p);
}

/* The four memory descriptors of y = x · W, W read as the [K, N] matrix
 * with strides {1, K}: exactly the stored [N, K] row-major bytes. */
static dnnl_status_t prim_descs(const gemm_prim *p, dnnl_memory_desc_t md[4]) {
  dnnl_dims_t sd = {p->M, p->K}, ss = {p->K, 1}, wd = {p->K, p->N}, ws = {1, p->K};
  dnnl_dims_t bd = {1, p->N}, bs = {p->N, 1}, dd = {p->M, p->N}, ds = {p->N, 1};
  dnnl_status_t s = dnnl_memory_desc_init_by_strides(&md[0], 2, sd, p->dt, ss);
  if (s == dnnl_success) s = dnnl_memory_desc_init_by_strides(&md[1], 2, wd, p->dt, ws);
  if (s == dnnl_success) s = dnnl_memory_desc_init_by_strides(&md[2], 2, bd, dnnl_f32, bs);
  if (s == dnnl_success) s = dnnl_memory_desc_init_by_strides(&md[3], 2, dd, dnnl_f32, ds);
  return s;
}

/* The matmul primitive descriptor for p's key (a sum post-op when
 * accumulating: dst = x·W + bias + dst). */
static dnnl_status_t prim_pd(dnnl_engine_t eng, const gemm_prim *p, const dnnl_memory_desc_t md[4],
                             dnnl_primitive_desc_t *pd) {
  dnnl_matmul_desc_t mm;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_status_t s = dnnl_matmul_desc_init(&mm, &md[0], &md[1], p->has_bias ? &md[2] : NULL, &md[3]);
  if (s == dnnl_success) s = dnnl_primitive_attr_create(&attr);
  if (s == dnnl_success && p->accumulate) {
    s = dnnl_post_ops_create(&po);
    if (s == dnnl_success) s = dnnl_post_ops_append_sum(po, 1.0f);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
  }
  if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &mm, attr, eng, NULL);
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return s;
}

/* Builds p (key already set): primitive, implementation name, memories. */
static int prim_build(sc_gemm *g, gemm_prim *p) {
  dnnl_memory_desc_t md[4];
  dnnl_primitive_desc_t pd = NULL;
  const char *impl = NULL;
  dnnl_status_t s = prim_descs(p, md);
  if (s == dnnl_success) s = prim_pd(g->engine, p, md, &pd);
  if (s == dnnl_success) s = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  if (s == dnnl_success) snprintf(p->impl, sizeof p->impl, "%s", impl ? impl : "?");
  if (s == dnnl_success) s = dnnl_primitive_create(&p->prim, pd);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (s == dnnl_success) s = dnnl_memory_create(&p->src, &md[0], g->engine, DNNL_MEMORY_NONE);
  if (s == dnnl_success) s = dnnl_memory_create(&p->wei, &md[1], g->engine, DNNL_MEMORY_NONE);
  if (s == dnnl_success && p->has_bias)
    s = dnnl_memory_create(&p->bias, &md[2], g->engine, DNNL_MEMORY_NONE);
  if (s == dnnl_success) s = dnnl_memory_create(&p->dst, &md[3], g->engine, DNNL_MEMORY_NONE);
  if (s != dnnl_success) {
    int M = p->M, N = p->N, K = p->K;
    prim_free(p);
    return dnnl_fail(s, "matmul creation", M, N, K);
  }
  return 0;
}

/* The cached primitive for this key, built (evicting the least recently
 * used one if the cache is full) on first use. */
static int prim_get(sc_gemm *g, const gemm_prim *key, gemm_prim **out) {
  gemm_prim *victim = NULL;
  g->clock++;
  for (int i = 0; i < g->n_cache; i++) {
    gemm_prim *p = &g->cache[i];
    if (p->M == key->M && p->N == key->N && p->K == key->K && p->has_bias == key->has_bias &&
        p->accumulate == key->accumulate && p->dt == key->dt) {
      p->last_use = g->clock;
      *out = p;
      return 0;
    }
    if (!victim || p->last_use < victim->last_use) victim = p;
  }
  if (g->n_cache < GEMM_CACHE_CAP) victim = &g->cache[g->n_cache++];
  else prim_free(victim);
  *victim = *key;
  victim->last_use = g->clock;
  int rc = prim_build(g, victim);
  if (rc) {
    /* keep the cache dense: move the last entry into the freed slot */
    *victim = g->cache[--g->n_cache];
    memset(&g->cache[g->n_cache], 0, sizeof g->cache[0]);
    return rc;
  }
  *out = victim;
  return 0;
}

/* Whether oneDNN can build a bf16 x bf16 -> f32 matmul on this CPU. */
static int onednn_has_bf16(dnnl_engine_t eng) {
  gemm_prim p = {.M = 4, .N = 16, .K = 16, .dt = dnnl_bf16};
  dnnl_memory_desc_t md[4];
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t s = prim_descs(&p, md);
  if (s == dnnl_success) s = prim_pd(eng, &p, md, &pd);
  if (pd) dnnl_primitive_desc_destroy(pd);
  return s == dnnl_success;
}

/* ==== activations ======================================================== */

/* xb = bf16(x), n elements, on all threads for large n when par (OpenMP;
 * see widen_sgemm for why not always). */
static void round_bf16(uint16_t *xb, const float *x, size_t n, int par) {
  size_t chunk = GEMM_PAR_MIN, n_chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (par && n_chunks > 1)
  for (size_t c = 0; c < n_chunks; c++) {
    size_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
    sc_bf16_from_f32_n(xb + lo, x + lo, len);
  }
}

/* dst = f32(src): a bf16 is the top half of the f32 with the same value.
 * Inline (not sc_f32_from_bf16_n, a call per element from another file) so
 * that the compiler vectorises it: it runs over every weight in prefill. */
static void widen_n(float *dst, const uint16_t *src, size_t n, int par) {
#pragma omp parallel for schedule(static) if (par && n >= GEMM_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)src[i] << 16;
    memcpy(&dst[i], &u, sizeof u);
  }
}

/* ==== backend ONEDNN ===================================================== */

/* x·Wᵀ through the cached primitive for key; src is bf16(x) or, for an f32
 * key, x itself. */
static int onednn_run(sc_gemm *g, const gemm_prim *key, float *y, const float *x, const void *w,
                      const float *bias) {
  int M = key->M, N = key->N, K = key->K;
  size_t n = (size_t)M * (size_t)K;
  gemm_prim *p;
  const void *src = x;
  if (key->dt == dnnl_bf16) {
    g->xb = grow(g->xb, &g->xb_cap, n * sizeof(uint16_t));
    if (!g->xb) return no_memory(n * sizeof(uint16_t));
    src = g->xb;
  }
  int rc = prim_get(g, key, &p);
  if (rc) return rc;
  if (key->dt == dnnl_bf16) round_bf16(g->xb, x, n, 1);
  /* oneDNN takes void *; it only reads x, the weights and the bias. */
  dnnl_memory_set_data_handle(p->src, (void *)(uintptr_t)src);
  dnnl_memory_set_data_handle(p->wei, (void *)(uintptr_t)w);
  if (p->bias) dnnl_memory_set_data_handle(p->bias, (void *)(uintptr_t)bias);
  dnnl_memory_set_data_handle(p->dst, y);
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->wei},
                             {DNNL_ARG_DST, p->dst}, {DNNL_ARG_BIAS, p->bias}};
  dnnl_status_t s = dnnl_primitive_execute(p->prim, g->stream, p->bias ? 4 : 3, args);
  if (s == dnnl_success) s = dnnl_stream_wait(g->stream);
  if (s != dnnl_success) return dnnl_fail(s, "matmul execution", M, N, K);
  snprintf(g->impl, sizeof g->impl, "%s", p->impl);
  return 0;
}

/* ==== backend WIDEN ====================================================== */

/* The GEMV kernel widens W with one unpack per 8 values: interleaving 16
 * bf16 with zeros (unpacklo/unpackhi_epi16) gives f32 lanes holding block
 * elements {0-3, 8-11} and {4-7, 12-15}. x is stored in that order (per
 * full 16-block; a tail stays as is), so the products pair up; a zero-extend
 * plus shift per 8 values ran ~20% slower. */
static void widen_x_perm(float *xp, const uint16_t *xb, int K) {
  static const int from[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
  int k = 0;
  for (; k + 16 <= K; k += 16)
    for (int j = 0; j < 16; j++) xp[k + j] = sc_f32_from_bf16(xb[k + from[j]]);
  for (; k < K; k++) xp[k] = sc_f32_from_bf16(xb[k]);
}

__attribute__((target("avx2,fma"))) static float hsum_avx2(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Two dot products of the permuted row xp with W rows w0 and w1 (two
 * streams from memory per thread), 16 values of each row per step. */
__attribute__((target("avx2,fma"))) static void dot2_avx2(const float *xp, const uint16_t *w0,
                                                          const uint16_t *w1, int K,
                                                          float out[2]) {
  const __m256i z = _mm256_setzero_si256();
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m256 xl = _mm256_loadu_ps(xp + k), xh = _mm256_loadu_ps(xp + k + 8);
    __m256i v = _mm256_loadu_si256((const __m256i *)(w0 + k));
    __m256i u = _mm256_loadu_si256((const __m256i *)(w1 + k));
    _mm_prefetch((const char *)(w0 + k + GEMM_PF), _MM_HINT_T0);
    _mm_prefetch((const char *)(w1 + k + GEMM_PF), _MM_HINT_T0);
    a0 = _mm256_fmadd_ps(xl, _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, v)), a0);
    a1 = _mm256_fmadd_ps(xh, _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, v)), a1);
    b0 = _mm256_fmadd_ps(xl, _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, u)), b0);
    b1 = _mm256_fmadd_ps(xh, _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, u)), b1);
  }
  float s0 = hsum_avx2(_mm256_add_ps(a0, a1)), s1 = hsum_avx2(_mm256_add_ps(b0, b1));
  for (; k < K; k++) {
    s0 += xp[k] * sc_f32_from_bf16(w0[k]);
    s1 += xp[k] * sc_f32_from_bf16(w1[k]);
  }
  out[0] = s0;
  out[1] = s1;
}

/* Portable version (no AVX2): x in natural order. */
static void dot2_c(const float *x, const uint16_t *w0, const uint16_t *w1, int K, float out[2]) {
  float s0 = 0.0f, s1 = 0.0f;
  for (int k = 0; k < K; k++) {
    s0 += x[k] * sc_f32_from_bf16(w0[k]);
    s1 += x[k] * sc_f32_from_bf16(w1[k]);
  }
  out[0] = s0;
  out[1] = s1;
}

/* Few rows (decode): threads split the W rows, two at a time; each pair is
 * read once from memory and dotted with every row of xf (permuted when
 * g->avx2). An odd last row is paired with itself. */
static void widen_gemv(const sc_gemm *g, float *y, const float *xf, const uint16_t *w,
                       const float *bias, int M, int N, int K, int accumulate) {
  int avx2 = g->avx2, pairs = (N + 1) / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)K >= GEMM_PAR_MIN)
  for (int p = 0; p < pairs; p++) {
    int n0 = 2 * p, n1 = n0 + 1 < N ? n0 + 1 : n0;
    const uint16_t *w0 = w + (size_t)n0 * (size_t)K, *w1 = w + (size_t)n1 * (size_t)K;
    for (int m = 0; m < M; m++) {
      float v[2], *yr = y + (size_t)m * (size_t)N;
      if (avx2) dot2_avx2(xf + (size_t)m * (size_t)K, w0, w1, K, v);
      else dot2_c(xf + (size_t)m * (size_t)K, w0, w1, K, v);
      for (int j = 0; j < 1 + (n1 != n0); j++) {
        int n = n0 + j;
        yr[n] = v[j] + (bias ? bias[n] : 0.0f) + (accumulate ? yr[n] : 0.0f);
      }
    }
  }
}

/* Bias and accumulation before sgemm: returns sgemm's beta. */
static float widen_prologue(float *y, const float *bias, int M, int N, int accumulate) {
  if (!bias) return accumulate ? 1.0f : 0.0f;
  for (int m = 0; m < M; m++) {
    float *yr = y + (size_t)m * (size_t)N;
    for (int n = 0; n < N; n++) yr[n] = (accumulate ? yr[n] : 0.0f) + bias[n];
  }
  return 1.0f;
}

/* Many rows (prefill): W widened one panel of rows at a time, sgemm per
 * panel into the matching columns of y. The rounding and widening run on
 * the calling thread only: OpenMP workers left spinning after a parallel
 * region took cores from OpenBLAS's own threads (pthreads); on 2 cores this
 * ran at ~0.7x sgemm's speed with parallel passes, ~0.9x with serial ones. */
/* K > N (down_proj): panels of columns instead, so that sgemm packs each
 * slice of x once rather than all of x once per row panel; y accumulates
 * over the slices. */
static int widen_sgemm_cols(sc_gemm *g, float *y, const float *xf, const uint16_t *w, float beta,
                            int M, int N, int K) {
  size_t kc = GEMM_PANEL_FLOATS / (size_t)N;
  kc -= kc % 16;
  if (kc > (size_t)K) kc = (size_t)K;
  g->panel = grow(g->panel, &g->panel_cap, (size_t)N * kc * sizeof(float));
  if (!g->panel) return no_memory((size_t)N * kc * sizeof(float));
  for (size_t c0 = 0; c0 < (size_t)K; c0 += kc) {
    size_t len = (size_t)K - c0 < kc ? (size_t)K - c0 : kc;
    for (size_t r = 0; r < (size_t)N; r++) widen_n(g->panel + r * len, w + r * (size_t)K + c0, len, 0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, (int)len, 1.0f, xf + c0, K, g->panel,
                (int)len, c0 ? 1.0f : beta, y, N);
  }
  return 0;
}

static int widen_sgemm(sc_gemm *g, float *y, const float *xf, const uint16_t *w,
                       const float *bias, int M, int N, int K, int accumulate) {
  if (K > N && (size_t)N * 16 <= GEMM_PANEL_FLOATS)
    return widen_sgemm_cols(g, y, xf, w, widen_prologue(y, bias, M, N, accumulate), M, N, K);
  size_t rows = GEMM_PANEL_FLOATS / (size_t)K;
  if (rows > 16) rows -= rows % 16;
  if (rows < 1) rows = 1;
  if (rows > (size_t)N) rows = (size_t)N;
  g->panel = grow(g->panel, &g->panel_cap, rows * (size_t)K * sizeof(float));
  if (!g->panel) return no_memory(rows * (size_t)K * sizeof(float));
  float beta = widen_prologue(y, bias, M, N, accumulate);
  for (size_t n0 = 0; n0 < (size_t)N; n0 += rows) {
    size_t pr = (size_t)N - n0 < rows ? (size_t)N - n0 : rows;
    size_t len = pr * (size_t)K;
    widen_n(g->panel, w + n0 * (size_t)K, len, 0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, (int)pr, K, 1.0f, xf, K, g->panel, K,
                beta, y + n0, N);
  }
  return 0;
}

static int widen_run(sc_gemm *g, float *y, const float *x, const uint16_t *w, const float *bias,
                     int M, int N, int K, int accumulate) {
  size_t n = (size_t)M * (size_t)K;
  g->xb = grow(g->xb, &g->xb_cap, n * sizeof(uint16_t));
  g->xf = grow(g->xf, &g->xf_cap, n * sizeof(float));
  if (!g->xb || !g->xf) return no_memory(n * sizeof(float));
  round_bf16(g->xb, x, n, M < SC_GEMM_SMALL_M);
  if (M < SC_GEMM_SMALL_M && g->avx2)
    for (int m = 0; m < M; m++)
      widen_x_perm(g->xf + (size_t)m * (size_t)K, g->xb + (size_t)m * (size_t)K, K);
  else widen_n(g->xf, g->xb, n, M < SC_GEMM_SMALL_M); /* f32(bf16(x)) */
  if (M < SC_GEMM_SMALL_M) {
    widen_gemv(g, y, g->xf, w, bias, M, N, K, accumulate);
    snprintf(g->impl, sizeof g->impl, "%s", g->avx2 ? "gemv:avx2" : "gemv:c");
    return 0;
  }
  if (sc_sg_available()) {
    int rc = sc_sg_gemm(y, N, g->xf, K, w, K, SC_SG_NK_BF16, bias, accumulate ? 1.0f : 0.0f, M, N, K);
    if (!rc) snprintf(g->impl, sizeof g->impl, "sg-avx2");
    return rc;
  }
  int rc = widen_sgemm(g, y, g->xf, w, bias, M, N, K, accumulate);
  if (!rc) snprintf(g->impl, sizeof g->impl, "panel-sgemm");
  return rc;
}

/* ==== public ============================================================= */

/* Engine and stream for ONEDNN/AUTO; settles AUTO into a concrete backend. */
static int create_onednn(sc_gemm *g, sc_gemm_backend want) {
  dnnl_status_t s = dnnl_engine_create(&g->engine, dnnl_cpu, 0);
  if (s == dnnl_success) s = dnnl_stream_create(&g->stream, g->engine, dnnl_stream_default_flags);
  if (s != dnnl_success)
    return sc_error_setc(SC_ERR_INTERNAL, "gemm: oneDNN engine creation failed: %s",
                         dnnl_status2str(s));
  if (onednn_has_bf16(g->engine)) {
    g->backend = SC_GEMM_BACKEND_ONEDNN;
    return 0;
  }
  const dnnl_version_t *v = dnnl_version();
  snprintf(g->why, sizeof g->why, "oneDNN %d.%d.%d has no bf16 matmul at isa=%s", v->major,
           v->minor, v->patch, isa_name(dnnl_get_effective_cpu_isa()));
  if (want == SC_GEMM_BACKEND_ONEDNN)
    return sc_error_setc(SC_ERR_MISSING, "gemm: %s (this CPU lacks AVX-512)", g->why);
  g->backend = SC_GEMM_BACKEND_WIDEN;
  return 0;
}

int sc_gemm_create(sc_gemm **out, sc_gemm_backend backend, int n_threads) {
  *out = NULL;
  if (backend != SC_GEMM_BACKEND_AUTO && backend != SC_GEMM_BACKEND_ONEDNN &&
      backend != SC_GEMM_BACKEND_WIDEN)
    return sc_error_setc(SC_ERR_ARG, "gemm: unknown backend %d", (int)backend);
  sc_gemm *g = calloc(1, sizeof *g);
  if (!g) return sc_error_setc(SC_ERR_NOMEM, "gemm: out of memory");
  g->n_threads = n_threads;
  __builtin_cpu_init();
  g->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  g->backend = SC_GEMM_BACKEND_WIDEN;
  int rc = backend == SC_GEMM_BACKEND_WIDEN ? 0 : create_onednn(g, backend);
  if (rc) {
    sc_gemm_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

void sc_gemm_free(sc_gemm *g) {
  if (!g) return;
  for (int i = 0; i < g->n_cache; i++) prim_free(&g->cache[i]);
  if (g->stream) dnnl_stream_destroy(g->stream);
  if (g->engine) dnnl_engine_destroy(g->engine);
  free(g->xb);
  free(g->xf);
  free(g->panel);
  free(g->wb);
  free(g);
}

sc_gemm_backend sc_gemm_backend_of(const sc_gemm *g) { return g->backend; }

const char *sc_gemm_describe(sc_gemm *g) {
  const dnnl_version_t *v = dnnl_version();
  snprintf(g->desc, sizeof g->desc, "%s oneDNN %d.%d.%d isa=%s%s%s%s impl=%s",
           g->backend == SC_GEMM_BACKEND_ONEDNN ? "onednn" : "widen", v->major, v->minor,
           v->patch, isa_name(dnnl_get_effective_cpu_isa()), g->why[0] ? " (" : "", g->why,
           g->why[0] ? ")" : "", g->impl[0] ? g->impl : "none yet");
  return g->desc;
}

int sc_gemm_bf16(sc_gemm *g, float *y, const float *x, const uint16_t *w, const float *bias,
                 int M, int N, int K, int accumulate) {
  int rc = check_args(y, x, w, M, N, K);
  if (rc) return rc;
  gemm_threads t = threads_enter(g);
  gemm_prim key = {.M = M, .N = N, .K = K, .has_bias = bias != NULL,
                   .accumulate = accumulate != 0, .dt = dnnl_bf16};
  if (g->backend == SC_GEMM_BACKEND_ONEDNN) rc = onednn_run(g, &key, y, x, w, bias);
  else rc = widen_run(g, y, x, w, bias, M, N, K, accumulate);
  threads_leave(g, t);
  return rc;
}

int sc_gemm_bf16_f32w(sc_gemm *g, float *y, const float *x, const float *w, const float *bias,
                      int M, int N, int K, int accumulate) {
  int rc = check_args(y, x, w, M, N, K);
  if (rc) return rc;
  size_t n = (size_t)N * (size_t)K;
  g->wb = grow(g->wb, &g->wb_cap, n * sizeof(uint16_t));
  if (!g->wb) return no_memory(n * sizeof(uint16_t));
  round_bf16(g->wb, w, n, 1);
  return sc_gemm_bf16(g, y, x, g->wb, bias, M, N, K, accumulate);
}

int sc_gemm_f32_onednn(sc_gemm *g, float *y, const float *x, const float *w, const float *bias,
                       int M, int N, int K, int accumulate) {
  int rc = check_args(y, x, w, M, N, K);
  if (rc) return rc;
  if (!g->engine)
    return sc_error_setc(SC_ERR_ARG, "gemm: sc_gemm_f32_onednn needs a context created with "
                                     "backend AUTO or ONEDNN");
  gemm_prim key = {.M = M, .N = N, .K = K, .has_bias = bias != NULL,
                   .accumulate = accumulate != 0, .dt = dnnl_f32};
  gemm_threads t = threads_enter(g);
  rc = onednn_run(g, &key, y, x, w, bias);
  threads_leave(g, t);
  return rc;
}
