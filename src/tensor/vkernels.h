/* vkernels.h: the extra CPU kernels of the SigLIP vision tower and the
 * Gemma-3 multimodal projector (research/gemma3_spec.md §4.2-4.4), in
 * both precisions (kernels.h's sc_precision). They follow kernels.h's conventions: plain row-major
 * float arrays, output first, sizes last, one job each; kernels.h's
 * sc_linear, sc_rmsnorm and sc_add are reused for everything else.
 *
 * tensor/ is the only caller of BLAS: sc_mha_full and sc_matmul_nn multiply
 * through blas.h's sc_sgemm (sgemm.h where the CPU has AVX2).
 */
#ifndef SC_VKERNELS_H
#define SC_VKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/kernels.h"

/* y[n, d] = (x − mean) / sqrt(var + eps) · w + b per row (torch LayerNorm:
 * biased variance; mean and variance are accumulated in double). y may
 * equal x. */
void sc_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
                  float eps);

/* x[n, d] += b[d] on every row (the bias of an nn.Linear). */
void sc_add_bias(float *x, const float *b, int64_t n, int64_t d);

/* x[n] = gelu_tanh(x) = 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))
 * (gelu_pytorch_tanh, SigLIP's MLP activation). */
void sc_gelu_tanh(float *x, int64_t n);

/* x[n] = bf16(x[n]) in place: bit for bit kernels.h's sc_round_bf16, with
 * the rounding inline so the loop vectorises (the vision tower rounds
 * q, k, v and 16 × 4096² probabilities per layer in bf16 mode). */
void sc_round_bf16_v(float *x, int64_t n);

/* Floats of scratch sc_mha_full needs. */
size_t sc_mha_full_scratch(int64_t n, int head_dim);

/* Multi-head attention without a mask (every query sees every key, SigLIP):
 * out[n, heads·head_dim] = softmax(q_h·k_hᵀ·scale)·v_h per head h, for q, k,
 * v [n, heads·head_dim] (head h = columns h·head_dim ..). Scores are
 * formed with sgemm, softmaxed in f32 with the maximum subtracted (sums in
 * double). scratch: sc_mha_full_scratch floats. out must not overlap the
 * inputs. */
void sc_mha_full(float *out, const float *q, const float *k, const float *v, int64_t n, int heads,
                 int head_dim, float scale, float *scratch);

/* sc_mha_full in precision p. F32: exactly sc_mha_full. BF16 (as
 * sc_attention's bf16 mode, decoder.h): q, k and v must already hold bf16
 * values (the caller rounds them with sc_round_bf16), scores q·kᵀ and the
 * softmax stay f32, and the normalised probabilities are rounded to bf16
 * before P·v, so both products are bf16 x bf16 with f32 accumulation (f32
 * sgemm on bf16 values: every product is exact in f32). */
void sc_mha_full_prec(float *out, const float *q, const float *k, const float *v, int64_t n,
                      int heads, int head_dim, float scale, sc_precision p, float *scratch);

/* 2-D average pooling of a square grid stored position-major, channels
 * last: x[side·side, c] (position r·side + col) -> out[(side/k)², c], cell
 * (R, C) = mean of positions rows k·R .. k·R+k−1 × cols k·C .. k·C+k−1
 * (torch AvgPool2d, kernel = stride = k, floor mode: rows/cols beyond
 * (side/k)·k are dropped). */
void sc_avgpool2d(float *out, const float *x, int64_t side, int64_t c, int64_t k);

/* Floats of scratch sc_matmul_nn needs for w. */
size_t sc_matmul_nn_scratch(const sc_mat *w);

/* y[n, w->cols] = x[n, w->rows] · W, W used as stored [in, out] (NOT the
 * nn.Linear transpose: Gemma-3's mm_input_projection_weight is [vision
 * hidden, text hidden], spec §2). W is widened to f32 into scratch
 * (sc_matmul_nn_scratch floats; unused for F32 weights). Returns 0, or
 * SC_ERR_ARG for a precision or dtype it cannot multiply. */
int sc_matmul_nn(float *y, const float *x, const sc_mat *w, int64_t n, sc_precision p,
                 float *scratch);

#endif
