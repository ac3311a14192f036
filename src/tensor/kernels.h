/* kernels.h: the CPU kernels of the model runtime.
 *
 * Every kernel works on plain row-major float arrays, takes its output
 * first and its sizes last, and does one thing. Activations are always
 * f32; weight matrices stay in their stored dtype (sc_mat) and are widened
 * to f32 a panel at a time inside sc_linear, never copied whole.
 *
 * sc_linear / sc_linear_gemm are the GEMM seam: tensor/ is the only caller
 * of BLAS and oneDNN. SC_PRECISION_F32 runs sgemm.h's AVX2 GEMM, which
 * widens bf16 weights while packing them (no AVX2: weights widened a panel
 * at a time into OpenBLAS cblas_sgemm); SC_PRECISION_BF16 rounds the input rows to bf16 and runs
 * bf16 x bf16 with f32 accumulation on an sc_gemm (gemm.h: oneDNN, or the
 * exact widening fallback on CPUs without AVX-512 bf16).
 *
 * Threads: loops use OpenMP and GEMMs OpenBLAS's own threads; set both with
 * sc_kernels_set_threads (the CLI does, from --threads).
 *
 * Numerics follow Hugging Face's Gemma 3 (research/gemma3_spec.md §3, §7):
 * RMSNorm with (1 + w), rotate-half RoPE with float32 angles, softmax over
 * float32 scores, tanh-approximated GELU.
 */
#ifndef SC_KERNELS_H
#define SC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/dtype.h"
#include "tensor/gemm.h"

typedef enum sc_precision {
  SC_PRECISION_F32 = 0, /* weights widened to f32, f32 GEMM (reference mode) */
  SC_PRECISION_BF16 = 1 /* GEMM inputs rounded to bf16, bf16 x bf16 -> f32 (sc_gemm) */
} sc_precision;

/* "f32" or "bf16" into *out; SC_ERR_ARG "precision 'x' is not f32 or bf16"
 * otherwise (the CLI and the config key spell it this way). */
int sc_precision_parse(const char *name, sc_precision *out);
/* "f32", "bf16", or "?" for a value outside the enum. */
const char *sc_precision_name(sc_precision p);

/* A weight matrix W [rows, cols] as stored: row r is output feature r, as
 * in torch.nn.Linear ([out, in]). */
typedef struct sc_mat {
  const void *data; /* (rows, cols) elements of dtype; borrowed (usually the mmap) */
  sc_dtype dtype;   /* SC_DTYPE_F32, SC_DTYPE_BF16 or SC_DTYPE_F16 */
  int64_t rows, cols;
} sc_mat;

/* Sets the OpenMP and OpenBLAS thread counts; n <= 0 keeps the defaults. */
void sc_kernels_set_threads(int n);
/* Threads the kernels will use (OpenMP's maximum). */
int sc_kernels_threads(void);

/* Floats of scratch sc_linear needs for a matrix with `cols` columns. */
size_t sc_linear_scratch(int64_t cols);

/* y[n, w->rows] = x[n, w->cols] · Wᵀ, accumulated in f32. scratch holds
 * sc_linear_scratch(w->cols) floats (64-byte aligned), unused for F32
 * weights. y must not overlap x. Same as sc_linear_gemm with g = NULL, so
 * SC_PRECISION_BF16 is an error here. */
int sc_linear(float *y, const float *x, const sc_mat *w, int64_t n, sc_precision p, float *scratch);

/* sc_linear with the GEMM context of the bf16 mode. F32: as above, g
 * unused (may be NULL). BF16: y = bf16(x) · bf16(W)ᵀ with f32 products and
 * sums on g (sc_gemm_bf16 for BF16 weights, read in place;
 * sc_gemm_bf16_f32w for F32 weights, which keeps a rounded copy in g);
 * scratch unused. Errors: SC_ERR_ARG "precision bf16 needs a GEMM context"
 * (g NULL), "precision bf16 cannot multiply F16 weights (use f32)", "cannot
 * multiply X weights", "GEMM of [..]: too large"; those of sc_gemm_bf16. */
int sc_linear_gemm(float *y, const float *x, const sc_mat *w, int64_t n, sc_precision p,
                   float *scratch, sc_gemm *g);

/* x[n] = bf16(x[n]) in place (round to nearest even, as sc_bf16_from_f32):
 * what a bf16 GEMM does to an input operand. */
void sc_round_bf16(float *x, int64_t n);

/* Row i of W widened to f32: out[w->cols]. */
void sc_mat_row(float *out, const sc_mat *w, int64_t i);

/* y[n, d] = x / sqrt(mean(x²) + eps) · (1 + w), per row of d (Gemma3RMSNorm:
 * the stored weight is zero-centred). y may equal x. */
void sc_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps);

/* x[n, d] += r[n, d]. */
void sc_add(float *x, const float *r, int64_t n, int64_t d);

/* g[n] = gelu_tanh(g) · u (the gated MLP: gelu_pytorch_tanh(gate) * up);
 * u NULL: g = gelu_tanh(g). With AVX2 it computes g / (1 + e^(−2z)) with a
 * vector exp on the calling thread (within ~2e-7 of float64), else
 * 0.5·g·(1 + tanhf(z)) on OpenMP threads. */
void sc_gelu_tanh_mul(float *g, const float *u, int64_t n);

/* inv[half] = 1 / theta^(2j / (2·half)) / factor, each step rounded to
 * float32 as Hugging Face computes it (compute_default_rope_parameters,
 * linear scaling divides by factor). factor 1 = no scaling. */
void sc_rope_inv_freq(float *inv, int half, double theta, double factor);

/* cos/sin tables [n, half] of the float32 angle pos[t] · inv[j]. */
void sc_rope_table(float *cos_t, float *sin_t, const int32_t *pos, int64_t n, const float *inv,
                   int half);

/* Rotate-half RoPE in place on x[n, heads, 2·half]: for j < half,
 * x'[j] = x[j]·c − x[j+half]·s, x'[j+half] = x[j+half]·c + x[j]·s with the
 * position's (c, s) from the tables above. */
void sc_rope(float *x, const float *cos_t, const float *sin_t, int64_t n, int heads, int half);

/* In-place softmax of x[n] (max subtracted first). */
void sc_softmax(float *x, int64_t n);

/* Where the keys of one attention call come from and which ones a query
 * may see. Keys are the cached past positions [past_lo, pos0) followed by
 * the n new positions [pos0, pos0 + n). Query t (position pos0 + t) sees
 * key position k iff k <= pos0 + t and, when window > 0, k > pos0 + t −
 * window (HF causal + sliding_window_overlay); or both are new positions
 * in the same image group (group[t] >= 0, HF's bidirectional image block,
 * OR-ed on). */
typedef struct sc_attn {
  int n_heads;       /* query heads */
  int n_kv_heads;    /* divides n_heads: query head h uses kv head h / (n_heads / n_kv_heads) */
  int head_dim;
  float scale;       /* scores are q·k · scale */
  int window;        /* 0 = causal only */
  int64_t pos0;      /* position of the first new token */
  const float *past_k, *past_v; /* (past_cap, n_kv_heads, head_dim) ring: position p in slot p % past_cap */
  int64_t past_cap;  /* slots in the ring (0 = no past) */
  int64_t past_lo;   /* first past position held; pos0 − past_lo <= past_cap */
  const int32_t *group; /* (n) image group per new position, −1 = text; NULL = all text */
  sc_precision precision; /* F32 (0); BF16: q·kᵀ and P·v as bf16 GEMMs (see sc_attention) */
} sc_attn;

/* Floats of scratch sc_attention needs for n new tokens. */
size_t sc_attention_scratch(const sc_attn *a, int64_t n);

/* out[n, n_heads·head_dim] = softmax(q·kᵀ·scale + mask) · v per head, for
 * q[n, n_heads·head_dim] and the new k, v[n, n_kv_heads·head_dim] plus the
 * past ring in *a. scratch: sc_attention_scratch floats. Products and sums
 * are f32 in both precisions; with a->precision BF16 the normalised
 * probabilities P are rounded to bf16 before P·v, and q, k, v (new and
 * past) must already hold bf16 values (the caller rounds them once with
 * sc_round_bf16, so the cache is rounded too), which makes both products
 * bf16 x bf16 GEMMs with f32 accumulation. Calls of 8 or more new tokens
 * compute both products with sgemm per head and query block (OpenBLAS's
 * threads); shorter ones (decode) loop per query on OpenMP threads. */
void sc_attention(float *out, const float *q, const float *k, const float *v, int64_t n,
                  const sc_attn *a, float *scratch);

#endif
