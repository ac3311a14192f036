/* sgemm.c: the AVX2 f32 GEMM of sgemm.h.
 *
 * The classic blocked structure (Goto; BLIS's loop order): per thread and
 * per depth block of SC_SG_KC, A is packed into 6-row micro-panels ([k][6]),
 * B into 16-column micro-panels ([k][16], bf16 widened here), and a 6x16
 * kernel keeps its 12 accumulators in registers while it walks k. A
 * 16-column panel of B (16 KiB) stays in L1 across all the A panels of an
 * SG_MC-row block (in L2); B's packed NC-column block sits in L3.
 */
#include "tensor/sgemm.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/error.h"
#include "tensor/dtype.h"

#define SG_MR 6
#define SG_NR 16
#define SG_KC SC_SG_KC
/* Rows of A per L2 block (24 micro-panels, 144 KiB at KC = 256). */
#define SG_MC 144
/* Columns of B per packed block (2 MiB at KC = 256). */
#define SG_NC 2048
/* Products with fewer multiply-adds than this run on the calling thread. */
#define SG_PAR_MIN ((int64_t)1 << 22)
/* Slack floats after packed A: the 6-row packer stores 8 floats at a time. */
#define SG_SLACK 8

int sc_sg_available(void) {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* ==== packing ============================================================ */

__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* One 6-row panel of A: dst[k * 6 + i] = A[i][k0 + k], rows past mr zero.
 * Full panels go 8 k at a time through an 8x8 transpose (rows 6, 7 zero)
 * and 8-float stores 6 apart, each overwriting the previous one's two
 * spare floats; the last leaves two floats of slack written. */
__attribute__((target("avx2"))) static void pack_a_panel(float *dst, const float *A, int64_t lda,
                                                         int mr, int64_t k0, int64_t kc) {
  int64_t k = 0;
  if (mr == SG_MR) {
    for (; k + 8 <= kc; k += 8) {
      __m256 r[8];
      for (int i = 0; i < SG_MR; i++) r[i] = _mm256_loadu_ps(A + i * lda + k0 + k);
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int t = 0; t < 8; t++) _mm256_storeu_ps(dst + (k + t) * SG_MR, r[t]);
    }
  }
  for (; k < kc; k++)
    for (int i = 0; i < SG_MR; i++) dst[k * SG_MR + i] = i < mr ? A[i * lda + k0 + k] : 0.0f;
}

__attribute__((target("avx2"))) static inline __m256 widen8(const uint16_t *p) {
  __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* One 16-column panel of B: dst[k * 16 + j] = B(k0 + k, n0 + j), columns
 * past nr zero. */
__attribute__((target("avx2"))) static void pack_b_panel(float *dst, const void *B, int64_t ldb,
                                                         sc_sg_layout layout, int nr, int64_t n0,
                                                         int64_t k0, int64_t kc) {
  int64_t k = 0;
  if (layout == SC_SG_KN_F32) {
    const float *b = (const float *)B + k0 * ldb + n0;
    if (nr == SG_NR) {
      for (; k < kc; k++) {
        _mm256_store_ps(dst + k * SG_NR, _mm256_loadu_ps(b + k * ldb));
        _mm256_store_ps(dst + k * SG_NR + 8, _mm256_loadu_ps(b + k * ldb + 8));
      }
      return;
    }
    for (; k < kc; k++)
      for (int j = 0; j < SG_NR; j++) dst[k * SG_NR + j] = j < nr ? b[k * ldb + j] : 0.0f;
    return;
  }
  if (nr == SG_NR) {
    for (; k + 8 <= kc; k += 8)
      for (int h = 0; h < 2; h++) {
        __m256 r[8];
        if (layout == SC_SG_NK_BF16) {
          const uint16_t *w = (const uint16_t *)B + (n0 + 8 * h) * ldb + k0 + k;
          for (int i = 0; i < 8; i++) r[i] = widen8(w + i * ldb);
        } else {
          const float *w = (const float *)B + (n0 + 8 * h) * ldb + k0 + k;
          for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(w + i * ldb);
        }
        transpose8(r);
        for (int t = 0; t < 8; t++) _mm256_store_ps(dst + (k + t) * SG_NR + 8 * h, r[t]);
      }
  }
  for (; k < kc; k++)
    for (int j = 0; j < SG_NR; j++) {
      float v = 0.0f;
      if (j < nr) {
        int64_t at = (n0 + j) * ldb + k0 + k;
        v = layout == SC_SG_NK_BF16 ? sc_f32_from_bf16(((const uint16_t *)B)[at]) : ((const float *)B)[at];
      }
      dst[k * SG_NR + j] = v;
    }
}

/* ==== kernel ============================================================= */

/* How a tile is written: the first depth block puts beta · C + bias under
 * the sums, later blocks add to C. */
typedef struct sg_out {
  int first;
  float beta;
  const float *bias; /* at the tile's first column; NULL: none */
} sg_out;

/* acc[6][16] = Σ_k a[k][i] · b[k][j] over kc, then into c per o. */
__attribute__((target("avx2,fma"))) static void kern_6x16(int64_t kc, const float *restrict a,
                                                          const float *restrict b, float *c,
                                                          int64_t ldc, sg_out o) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int i = 0; i < SG_MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
  for (int i = 0; i < SG_MR; i++) _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), t;
    t = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(t, b0, c00);
    c01 = _mm256_fmadd_ps(t, b1, c01);
    t = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(t, b0, c10);
    c11 = _mm256_fmadd_ps(t, b1, c11);
    t = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(t, b0, c20);
    c21 = _mm256_fmadd_ps(t, b1, c21);
    t = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(t, b0, c30);
    c31 = _mm256_fmadd_ps(t, b1, c31);
    t = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(t, b0, c40);
    c41 = _mm256_fmadd_ps(t, b1, c41);
    t = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(t, b0, c50);
    c51 = _mm256_fmadd_ps(t, b1, c51);
    a += SG_MR;
    b += SG_NR;
  }
  __m256 acc[SG_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  __m256 bias0 = _mm256_setzero_ps(), bias1 = bias0, beta = _mm256_set1_ps(o.beta);
  if (o.first && o.bias) bias0 = _mm256_loadu_ps(o.bias), bias1 = _mm256_loadu_ps(o.bias + 8);
  for (int i = 0; i < SG_MR; i++) {
    float *ci = c + i * ldc;
    __m256 v0 = acc[i][0], v1 = acc[i][1];
    if (!o.first) {
      v0 = _mm256_add_ps(_mm256_loadu_ps(ci), v0);
      v1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), v1);
    } else {
      if (o.beta != 0.0f) {
        v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(ci), v0);
        v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(ci + 8), v1);
      }
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
    }
    _mm256_storeu_ps(ci, v0);
    _mm256_storeu_ps(ci + 8, v1);
  }
}

/* A tile cut by the edge of C: the kernel writes a 6x16 scratch tile, then
 * its mr x nr corner goes into C with the same rule, added in the same
 * order as a full tile (beta · C + acc, then + bias). */
__attribute__((target("avx2,fma"))) static void kern_edge(int64_t kc, const float *a,
                                                          const float *b, float *c, int64_t ldc,
                                                          int mr, int nr, sg_out o) {
  float t[SG_MR * SG_NR];
  kern_6x16(kc, a, b, t, SG_NR, (sg_out){1, 0.0f, NULL});
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) {
      float *cij = c + i * ldc + j, v = t[i * SG_NR + j];
      if (!o.first) v = *cij + v;
      else {
        if (o.beta != 0.0f) v = fmaf(o.beta, *cij, v);
        if (o.bias) v += o.bias[j];
      }
      *cij = v;
    }
}

/* ==== blocked product ==================================================== */

typedef struct sg_job {
  float *C;
  int64_t ldc;
  const float *A;
  int64_t lda;
  const void *B;
  int64_t ldb;
  sc_sg_layout layout;
  const float *bias;
  float beta;
  int64_t K;
} sg_job;

/* C rows [m0, m1) x columns [n0, n1) on this thread; pa holds the packed A
 * of every row of the range for one depth block, pb one NC block of B.
 * Columns outermost (BLIS's order): the C block of one NC stripe (a few
 * MiB) stays in L3 while the depth blocks add into it; with depth
 * outermost all of this thread's C went through memory once per block. */
static void sg_block(const sg_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float *pa,
                     float *pb) {
  int64_t mlen = m1 - m0;
  for (int64_t jc = n0; jc < n1; jc += SG_NC) {
    int64_t nc = n1 - jc < SG_NC ? n1 - jc : SG_NC;
    for (int64_t pc = 0; pc < j->K; pc += SG_KC) {
      int64_t kc = j->K - pc < SG_KC ? j->K - pc : SG_KC;
      for (int64_t i = 0; i < mlen; i += SG_MR) {
        int mr = mlen - i < SG_MR ? (int)(mlen - i) : SG_MR;
        pack_a_panel(pa + i * kc, j->A + (m0 + i) * j->lda, j->lda, mr, pc, kc);
      }
      for (int64_t jr = 0; jr < nc; jr += SG_NR) {
        int nr = nc - jr < SG_NR ? (int)(nc - jr) : SG_NR;
        pack_b_panel(pb + jr * kc, j->B, j->ldb, j->layout, nr, jc + jr, pc, kc);
      }
      for (int64_t ic = 0; ic < mlen; ic += SG_MC) {
        int64_t mc = mlen - ic < SG_MC ? mlen - ic : SG_MC;
        for (int64_t jr = 0; jr < nc; jr += SG_NR) {
          int nr = nc - jr < SG_NR ? (int)(nc - jr) : SG_NR;
          const float *bp = pb + jr * kc;
          sg_out o = {pc == 0, j->beta, j->bias ? j->bias + jc + jr : NULL};
          for (int64_t ir = ic; ir < ic + mc; ir += SG_MR) {
            int mr = mlen - ir < SG_MR ? (int)(mlen - ir) : SG_MR;
            float *c = j->C + (m0 + ir) * j->ldc + jc + jr;
            if (mr == SG_MR && nr == SG_NR) kern_6x16(kc, pa + ir * kc, bp, c, j->ldc, o);
            else kern_edge(kc, pa + ir * kc, bp, c, j->ldc, mr, nr, o);
          }
        }
      }
    }
  }
}

/* K = 0: C = beta · C + bias. */
static void sg_no_depth(const sg_job *j, int64_t M, int64_t N) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      float *c = j->C + m * j->ldc + n;
      float v = j->beta != 0.0f ? j->beta * *c : 0.0f;
      *c = v + (j->bias ? j->bias[n] : 0.0f);
    }
}

static int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

/* Packing scratch, kept per calling thread between calls: freeing and
 * re-allocating megabytes per product cost page faults on every call (the
 * decoder makes ~70 products per token block, attention one per head and
 * query block on each OpenMP thread). Freed when the thread exits. */
typedef struct sg_scratch {
  float *p;
  size_t cap; /* floats */
} sg_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
  sg_scratch *s = v;
  if (s) free(s->p);
  free(s);
}

static void scratch_init(void) { (void)pthread_key_create(&scratch_key, scratch_free); }

static float *scratch_get(size_t floats) {
  (void)pthread_once(&scratch_once, scratch_init);
  sg_scratch *s = pthread_getspecific(scratch_key);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s || pthread_setspecific(scratch_key, s)) {
      free(s);
      return NULL;
    }
  }
  if (s->cap < floats) {
    float *p = aligned_alloc(64, round_up((int64_t)floats, 16) * sizeof(float));
    if (!p) return NULL;
    free(s->p);
    s->p = p, s->cap = floats;
  }
  return s->p;
}

int sc_sg_gemm(float *C, int64_t ldc, const float *A, int64_t lda, const void *B, int64_t ldb,
               sc_sg_layout layout, const float *bias, float beta, int64_t M, int64_t N,
               int64_t K) {
  if (!sc_sg_available()) return sc_error_setc(SC_ERR_ARG, "sgemm: this CPU has no AVX2/FMA");
  if (M <= 0 || N <= 0) return 0;
  sg_job j = {C, ldc, A, lda, B, ldb, layout, bias, beta, K};
  if (K <= 0) {
    sg_no_depth(&j, M, N);
    return 0;
  }
  int nt = omp_get_max_threads();
  if (M * N * K < SG_PAR_MIN || omp_in_parallel()) nt = 1;
  int64_t n_panels = (N + SG_NR - 1) / SG_NR, m_panels = (M + SG_MR - 1) / SG_MR;
  int split_n = n_panels >= 4 * (int64_t)nt || n_panels >= m_panels;
  int64_t units = split_n ? n_panels : m_panels;
  if (nt > units) nt = (int)units;
  /* Per thread: packed A for its rows (all of M when N is split), one NC
   * block of packed B. */
  int64_t rows = split_n ? M : ((m_panels + nt - 1) / nt) * SG_MR;
  int64_t kc = K < SG_KC ? K : SG_KC;
  size_t a_fl = (size_t)(round_up(rows, SG_MR) * kc + SG_SLACK);
  size_t b_fl = (size_t)(round_up(N < SG_NC ? N : SG_NC, SG_NR) * kc);
  size_t per = round_up((int64_t)(a_fl + b_fl), 16);
  float *buf = scratch_get((size_t)nt * per);
  if (!buf)
    return sc_error_setc(SC_ERR_NOMEM, "sgemm: out of memory for %zu bytes of packing scratch",
                         (size_t)nt * per * sizeof(float));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = omp_get_thread_num(), n_t = omp_get_num_threads();
    float *pa = buf + (size_t)t * per, *pb = pa + round_up((int64_t)a_fl, 16);
    int64_t lo = units * t / n_t, hi = units * (t + 1) / n_t;
    if (split_n) {
      int64_t n0 = lo * SG_NR, n1 = hi * SG_NR < N ? hi * SG_NR : N;
      if (n0 < n1) sg_block(&j, 0, M, n0, n1, pa, pb);
    } else {
      int64_t m0 = lo * SG_MR, m1 = hi * SG_MR < M ? hi * SG_MR : M;
      if (m0 < m1) sg_block(&j, m0, m1, 0, N, pa, pb);
    }
  }
  return 0;
}
