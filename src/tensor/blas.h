/* blas.h: a plain f32 GEMM on strided row-major matrices, for callers
 * outside tensor/ that need more than sc_linear's y = x·Wᵀ (the SAE trainer:
 * its encoder GEMM on an f32 weight it updates in place every step).
 *
 * tensor/ stays the only caller of BLAS (STYLE.md §12): this is a thin seam
 * over saecap's own GEMM (sgemm.h) and OpenBLAS's cblas_sgemm, so a CUDA or
 * oneDNN backend can later sit behind the same signature.
 */
#ifndef SC_BLAS_H
#define SC_BLAS_H

#include <stdint.h>

/* C[M,N] = alpha · op(A) · op(B) + beta · C, row-major, where op(A) is
 * A[M,K] (trans_a = 0, leading dimension lda >= K) or A[K,M]ᵀ (trans_a = 1,
 * lda >= M), and likewise op(B) is B[K,N] (ldb >= N) or B[N,K]ᵀ (ldb >= K);
 * ldc >= N. beta = 0 overwrites C (NaNs in it do not propagate).
 * Where the CPU has AVX2 and trans_a = 0, M >= SC_SG_MIN_M and alpha = 1 or
 * beta = 0, the product runs on tensor/sgemm.h (OpenMP threads, each element
 * summed in one order for any thread count, alpha applied after the sums);
 * otherwise on OpenBLAS and its own threads (sc_kernels_set_threads sets
 * both). Shapes are the caller's contract (programmer errors are not
 * checked beyond M, N, K >= 0). */
void sc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

/* Name and configuration of the BLAS library ("OpenBLAS 0.3.21 ... Zen"). */
const char *sc_blas_describe(void);

#endif
