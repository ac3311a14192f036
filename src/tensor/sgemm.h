/* sgemm.h: saecap's own f32 GEMM for x86-64 CPUs with AVX2 and FMA.
 *
 *   C[M,N] = A[M,K] · B (+ bias[N]) (+ beta · C)
 *
 * A is f32 row-major. B is one of three layouts, packed straight from where
 * it lies (no widened or transposed copy of a whole matrix is ever made):
 *   SC_SG_NK_F32   f32 [N, K] row-major, used as its transpose (nn.Linear
 *                  weights, an SAE's W_enc stored [n, d])
 *   SC_SG_NK_BF16  bf16 [N, K] row-major, widened to f32 while packing
 *                  (exact: every bf16 value is an f32 value), so f32 mode on
 *                  a bf16 checkpoint costs no separate widening pass
 *   SC_SG_KN_F32   f32 [K, N] row-major
 *
 * Why not OpenBLAS: its sgemm reaches ~75-80% of the FMA peak on Zen 3 and
 * needs f32 weights, so bf16 checkpoints were widened a panel at a time in
 * a separate pass; this GEMM runs a 6x16 register-blocked kernel (BLIS's
 * shape for AVX2) on packed panels and reads bf16 directly. It also sums
 * every C element in the same order (k ascending within blocks of
 * SC_SG_KC, blocks ascending) whatever the thread count, so results do not
 * depend on --threads.
 *
 * Threads: an OpenMP team of sc_sgemm_threads() (0: omp_get_max_threads()),
 * splitting N (or M when N is narrow); small products run on the caller.
 * Thread-safe: packing scratch is kept per calling thread (grown as needed,
 * freed at thread exit).
 */
#ifndef SC_SGEMM_H
#define SC_SGEMM_H

#include <stdint.h>

typedef enum sc_sg_layout {
  SC_SG_NK_F32 = 0, /* B given as f32 W[N, K], C = A · Wᵀ */
  SC_SG_NK_BF16,    /* B given as bf16 W[N, K], C = A · f32(W)ᵀ */
  SC_SG_KN_F32      /* B given as f32 [K, N] */
} sc_sg_layout;

/* Products with fewer rows than this are better left to a GEMV (BLAS): the
 * kernel computes 6 rows at a time and packs all of B for any M, so one row
 * (an SAE encode per generated token) would pack a whole weight matrix. */
#define SC_SG_MIN_M 6

/* Depth of one packed block: sums over K run in blocks of this many terms. */
#define SC_SG_KC 256

/* Non-zero when this CPU runs sc_sg_gemm (AVX2 and FMA). Callers fall back
 * to BLAS otherwise. */
int sc_sg_available(void);

/* C = A · op(B) + bias + beta · C as above. lda >= K; ldb >= K (NK
 * layouts) or >= N (KN); ldc >= N. beta 0 overwrites C (NaNs in C do not
 * propagate); bias may be NULL. M, N >= 0, K >= 0 (K = 0 gives bias +
 * beta · C). C must not overlap A or B. Returns SC_ERR_NOMEM when the
 * packing scratch (about 1.2 MiB per thread) cannot be had, SC_ERR_ARG
 * when !sc_sg_available(); 0 otherwise. */
int sc_sg_gemm(float *C, int64_t ldc, const float *A, int64_t lda, const void *B, int64_t ldb,
               sc_sg_layout layout, const float *bias, float beta, int64_t M, int64_t N, int64_t K);

#endif
