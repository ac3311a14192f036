/* gemm.h: the bf16 GEMM of saecap's bf16 precision mode.
 *
 *   y[M,N] (f32) = bf16(x)[M,K] · W[N,K]ᵀ (+ bias[N]) (+ y when accumulating)
 *
 * x is f32 and rounded to bf16 (round to nearest even, sc_bf16_from_f32)
 * before the product; W is bf16 in PyTorch nn.Linear layout [N, K] row-major,
 * used where it lies (an mmapped checkpoint, read-only, never copied whole);
 * products and sums are f32. This is what a bf16 run of the Hugging Face
 * reference computes (DESIGN.md, Numerics).
 *
 * Two backends compute the same thing:
 *   ONEDNN  oneDNN's matmul primitive, bf16 x bf16 -> f32. W is handed to it
 *           as the [K, N] matrix with strides {1, K} (format "ba"), so no copy.
 *           oneDNN implements bf16 only on CPUs with AVX-512 (native
 *           AVX512-BF16/AMX, or emulated on AVX512-core); Debian 12's oneDNN
 *           2.6 returns "unimplemented" on an AVX2-only CPU such as Zen 3.
 *   WIDEN   bf16(x) widened to f32 and multiplied with W through sgemm.h's
 *           AVX2 GEMM, which widens W while packing it ("sg-avx2"; without
 *           AVX2: W widened one panel at a time into OpenBLAS sgemm,
 *           "panel-sgemm"), or for M < SC_GEMM_SMALL_M a bf16 GEMV-style kernel that
 *           reads W directly (decode is bound by the bytes of W). A product of
 *           two bf16 values is exact in f32, so this equals bf16 x bf16 with
 *           f32 accumulation up to the order of the f32 sums.
 * SC_GEMM_BACKEND_AUTO picks ONEDNN when oneDNN has a bf16 matmul for this
 * CPU, else WIDEN; sc_gemm_describe() says which ran.
 *
 * Typical use: one sc_gemm per decoder, created once, then sc_gemm_bf16()
 * for every linear layer. oneDNN primitives are built per (M, N, K, bias,
 * accumulate) on first use and cached (building one JIT-compiles code, far
 * slower than a decode-sized product); prefill T and decode M = 1 therefore
 * each cost one build per weight shape. Not thread-safe: one caller at a
 * time per sc_gemm (the product itself is multi-threaded inside).
 *
 * Threads: n_threads > 0 runs each product on that many threads (OpenMP for
 * oneDNN and the GEMV kernel, OpenBLAS's own threads for sgemm; the previous
 * counts are restored afterwards); n_threads <= 0 follows the process-wide
 * counts (sc_kernels_set_threads, i.e. --threads).
 */
#ifndef SC_GEMM_H
#define SC_GEMM_H

#include <stdint.h>

typedef struct sc_gemm sc_gemm;

typedef enum sc_gemm_backend {
  SC_GEMM_BACKEND_AUTO = 0, /* ONEDNN where oneDNN supports bf16 here, else WIDEN */
  SC_GEMM_BACKEND_ONEDNN,   /* oneDNN matmul, bf16 x bf16 -> f32 */
  SC_GEMM_BACKEND_WIDEN     /* bf16 widened to f32 (exact), sgemm / GEMV kernel */
} sc_gemm_backend;

/* WIDEN runs products with fewer rows than this on its own GEMV kernel. */
#define SC_GEMM_SMALL_M 8

/* Largest M, N or K accepted (keeps every index product far from overflow). */
#define SC_GEMM_MAX_DIM (1 << 24)

/* Creates a GEMM context. backend AUTO never fails for lack of oneDNN bf16
 * support; asking for ONEDNN where oneDNN has no bf16 matmul for this CPU
 * returns SC_ERR_MISSING ("gemm: oneDNN <ver> has no bf16 matmul on this CPU
 * (ISA <isa>)"). Other errors: SC_ERR_ARG (bad backend), SC_ERR_NOMEM,
 * SC_ERR_INTERNAL (oneDNN failed to create its engine). *out is NULL on
 * failure. Free with sc_gemm_free. */
int sc_gemm_create(sc_gemm **out, sc_gemm_backend backend, int n_threads);

/* Frees g and every cached primitive and buffer; NULL is a no-op. */
void sc_gemm_free(sc_gemm *g);

/* The backend g runs (never AUTO). */
sc_gemm_backend sc_gemm_backend_of(const sc_gemm *g);

/* One line naming the backend, the oneDNN version and ISA, and the kernel
 * of the last product ("onednn 2.6.3 isa=avx512_core_bf16
 * impl=brg:avx512_core_bf16", "widen (oneDNN 2.6.3 has no bf16 matmul at
 * isa=avx2) impl=sgemm"). Owned by g, valid until its next call. */
const char *sc_gemm_describe(sc_gemm *g);

/* y[M,N] = bf16(x)[M,K] · w[N,K]ᵀ (+ bias[N] when bias is not NULL), added
 * to the y already there when accumulate is non-zero (y must then hold
 * values; it is overwritten otherwise). x, w, bias: row-major, contiguous;
 * y must not overlap x, w or bias. Errors: SC_ERR_ARG (NULL x, w or y;
 * M, N or K < 1 or > SC_GEMM_MAX_DIM), SC_ERR_NOMEM, SC_ERR_INTERNAL (oneDNN
 * refused a shape or failed to run); y is unspecified after an error. */
int sc_gemm_bf16(sc_gemm *g, float *y, const float *x, const uint16_t *w, const float *bias,
                 int M, int N, int K, int accumulate);

/* Same, with W given as f32 (an f32 checkpoint run in bf16 mode, tests):
 * W is rounded to bf16 into a scratch copy first (N·K·2 bytes, kept in g),
 * so the result equals sc_gemm_bf16 on the rounded weights. Same errors. */
int sc_gemm_bf16_f32w(sc_gemm *g, float *y, const float *x, const float *w, const float *bias,
                      int M, int N, int K, int accumulate);

/* y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias) (+ y) all in f32, no rounding, through
 * the same oneDNN matmul code as the ONEDNN backend (W read in place as
 * [K, N] with strides {1, K}, cached primitives, bias, sum post-op). oneDNN
 * has f32 kernels on every x86-64 CPU, so this is how that code is tested
 * where the CPU has no bf16 kernel; also an f32 GEMM on [N, K] weights. g
 * must come from backend AUTO or ONEDNN (even if AUTO settled on WIDEN), else
 * SC_ERR_ARG; otherwise the errors of sc_gemm_bf16. */
int sc_gemm_f32_onednn(sc_gemm *g, float *y, const float *x, const float *w, const float *bias,
                       int M, int N, int K, int accumulate);

#endif
