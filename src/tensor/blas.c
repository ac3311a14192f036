/* blas.c: the strided f32 GEMM seam (see blas.h): saecap's own AVX2 GEMM
 * (sgemm.h) where it applies, OpenBLAS otherwise. */
#include "tensor/blas.h"

#include <cblas.h>

#include "base/error.h"
#include "tensor/sgemm.h"

void sc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  /* alpha != 1 (attention's scale) is applied after the sums, as HF does,
   * which needs beta 0. */
  if (!trans_a && (alpha == 1.0f || beta == 0.0f) && M >= SC_SG_MIN_M && sc_sg_available()) {
    int rc = sc_sg_gemm(C, ldc, A, lda, B, ldb, trans_b ? SC_SG_NK_F32 : SC_SG_KN_F32, NULL,
                        beta, M, N, K);
    if (rc == 0) {
      if (alpha != 1.0f)
        for (int64_t m = 0; m < M; m++)
          for (int64_t n = 0; n < N; n++) C[m * ldc + n] *= alpha;
      return;
    }
    sc_error_clear(); /* out of memory for its scratch: OpenBLAS needs none of ours */
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha, A,
              (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

const char *sc_blas_describe(void) { return openblas_get_config(); }
