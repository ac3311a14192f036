/* vision.h: the Gemma-3 image encoder: the SigLIP vision tower and the
 * multimodal projector (research/gemma3_spec.md §1.2, §2, §4.2-4.4).
 *
 *   pixel_values [C, S, S]                       (preprocess.h)
 *   -> patch embedding: a GEMM over the [n_patches, C·p·p] patch vectors,
 *      u[c·p·p + ky·p + kx] = pixel[c][p·py + ky][p·px + kx], patch n =
 *      py·g + px (g = S/p), with the Conv2d weight viewed as [hidden, C·p·p]
 *      (its stored (c, ky, kx) order), + bias, + position_embedding[n]
 *   -> num_hidden_layers pre-LN encoder layers: x += out_proj(MHA(LN1(x)))
 *      (biases everywhere, no mask, scale head_dim^-1/2, softmax in f32);
 *      x += fc2(gelu_tanh(fc1(LN2(x))))
 *   -> post_layernorm                            = "vision_out" [n_patches, hidden]
 *   -> projector: average pool of the g×g grid with kernel = stride =
 *      mm_pool_kernel to mm_tokens_per_image tokens (token R·side + C),
 *      (1 + w) RMSNorm with the vision layer_norm_eps, then · W with
 *      mm_input_projection_weight [vision hidden, text hidden] used as
 *      stored (no transpose)                     = "image_embeds" [M, text hidden]
 * Every size comes from the config; nothing of the real 896 px / 14 px /
 * 27 layers / 256 tokens model is a constant here.
 *
 * Precision (v->precision, set after g3_vision_load, before a forward;
 * the same choices as decoder.h). SC_PRECISION_F32, the reference mode:
 * weights widened to f32, f32 GEMMs and attention. SC_PRECISION_BF16,
 * what a bf16 Hugging Face run computes in its products: every GEMM input
 * is rounded to bf16 and multiplied bf16 x bf16 with f32 products and sums
 * on an sc_gemm (gemm.h; one is created per g3_vision_forward call, so a
 * g3_vision stays read-only during forwards): the patch embedding, q/k/v/
 * out, fc1/fc2 and the projector matmul; in attention q, k and v are
 * rounded to bf16 after their biases and the softmax probabilities before
 * P·v, while the scores and the softmax stay f32 (sc_mha_full_prec).
 * LayerNorm, GELU, pooling, the RMSNorm, the position embeddings, biases
 * and the residual stream stay f32 in both modes, and GEMM outputs are not
 * rounded, so bf16 differs from f32 only by the rounding of GEMM operands.
 * sc_gemm wants W as [N, K] (nn.Linear), but mm_input_projection_weight is
 * [K = vision hidden, N = text hidden]; so g3_vision_load keeps a transposed
 * bf16 copy, mm_proj_t (text hidden x vision hidden x 2 bytes: 5.9 MB for
 * the real model), rounded from F32 weights as sc_gemm_bf16_f32w would.
 * F16 weights have no such copy: bf16 refuses them, as sc_linear_gemm does.
 *
 * The image embeddings replace the embeddings at <image_soft_token>
 * positions UNscaled (no sqrt(hidden)); caption.h does that merge.
 *
 * Weights are views into the checkpoint mapping in their stored dtype
 * (BF16, F16 or F32: re-exports may carry F32 vision tensors, spec §2);
 * biases and norm vectors are widened to f32 at load. Tensor names:
 * "<V>embeddings.patch_embedding.weight" ... with V = G3_PREFIX_VISION_OLD
 * or G3_PREFIX_VISION_NEW, and "<P>mm_input_projection_weight",
 * "<P>mm_soft_emb_norm.weight" with P = G3_PREFIX_PROJ_OLD or _NEW. A
 * tensor under the vision prefix that is not part of the tower (e.g. a
 * pooling head, vision_use_head) is an error, as in decoder.h.
 *
 * Typical use (vision once per image, reused for every prompt on it):
 *   g3_vision *v;
 *   g3_vision_load(&v, model->ckpt, &model->cfg, dir);   // borrows the checkpoint
 *   float *emb = malloc(g3_vision_embeds_floats(v) * sizeof *emb);
 *   g3_vision_forward(v, pixels, NULL, emb);
 *   g3_vision_free(v);
 */
#ifndef SC_VISION_H
#define SC_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "model/g3_config.h"
#include "tensor/kernels.h"

/* One SigLIP encoder layer. */
typedef struct g3_vision_layer {
  sc_mat q_proj, k_proj, v_proj, out_proj; /* (hidden, hidden) each */
  sc_mat fc1;                              /* (intermediate, hidden) */
  sc_mat fc2;                              /* (hidden, intermediate) */
  float *q_bias, *k_bias, *v_bias, *out_bias; /* (hidden) */
  float *fc1_bias;                         /* (intermediate) */
  float *fc2_bias;                         /* (hidden) */
  float *ln1_w, *ln1_b, *ln2_w, *ln2_b;    /* (hidden) */
} g3_vision_layer;

typedef struct g3_vision {
  g3_config cfg;             /* copy of the model config (has_vision = 1) */
  const char *prefix;        /* vision tensor-name prefix found */
  const char *proj_prefix;   /* projector tensor-name prefix found */
  sc_mat patch;              /* (hidden, channels·patch·patch): the Conv2d weight flattened */
  float *patch_bias;         /* (hidden) */
  sc_mat pos;                /* (n_patches, hidden) learned position embeddings */
  g3_vision_layer *layers;   /* (num_hidden_layers) */
  float *post_w, *post_b;    /* (hidden) post_layernorm */
  float *mm_norm;            /* (hidden) zero-centred: the norm multiplies by 1 + w */
  sc_mat mm_proj;            /* (vision hidden, text hidden), used as x·W */
  uint16_t *mm_proj_t;       /* (text hidden, vision hidden) bf16(mm_proj)ᵀ for the bf16 mode;
                                NULL when mm_proj is F16 */
  sc_precision precision;    /* of the next forwards: SC_PRECISION_F32 after load, or BF16 */
} g3_vision;

/* Finds and checks every vision and projector tensor of ck against cfg.
 * ck is borrowed and must outlive *out; dir names the model in messages.
 * Errors (one message each):
 *   SC_ERR_MISSING "<dir>: the model has no vision tower (config model_type
 *                  gemma3_text)", "<dir>: tensor '<name>' is missing";
 *   SC_ERR_FORMAT  "<shard>: tensor '<name>' has shape [a,b], expected [c,d]",
 *                  "<shard>: tensor '<name>' has dtype X, expected BF16, F16 or F32",
 *                  "<shard>: unknown tensor '<name>' under the vision prefix '<V>'",
 *                  "<dir>: both vision prefixes '<old>' and '<new>' are present";
 *   SC_ERR_NOMEM. *out is NULL on failure. */
int g3_vision_load(g3_vision **out, const st_checkpoint *ck, const g3_config *cfg, const char *dir);
/* NULL is a no-op. */
void g3_vision_free(g3_vision *v);

/* Sizes of the arrays g3_vision_forward reads and writes. */
size_t g3_vision_pixels_floats(const g3_vision *v); /* channels · image_size² */
size_t g3_vision_out_floats(const g3_vision *v);    /* n_patches · vision hidden */
size_t g3_vision_embeds_floats(const g3_vision *v); /* mm_tokens_per_image · text hidden */

/* pixels (channels, image_size, image_size) -> vision_out (n_patches,
 * vision hidden) when not NULL, and image_embeds (mm_tokens_per_image,
 * text hidden) when not NULL, in v->precision. Scratch (and in BF16 the
 * sc_gemm) is allocated per call. Errors: SC_ERR_NOMEM, SC_ERR_RANGE
 * "vision: activations of one image are too large" (a buffer over 2^32
 * floats), SC_ERR_ARG "vision: unknown precision N", SC_ERR_ARG
 * (sc_linear_gemm refusing a dtype, e.g. "precision bf16 cannot multiply
 * F16 weights (use f32)"), those of sc_gemm_create and sc_gemm_bf16. */
int g3_vision_forward(const g3_vision *v, const float *pixels, float *vision_out,
                      float *image_embeds);

/* Called after encoder layer `layer` (0-based) with the residual stream
 * x[n_patches, hidden] (read-only); a non-zero return stops the forward and
 * is returned by g3_vision_forward_hook as is (set the error message
 * yourself). For per-layer timing (bench/bench_vision.c) and inspection. */
typedef int (*g3_vision_hook)(void *user, int layer, const float *x, int64_t n_patches, int hidden);

/* g3_vision_forward with hook (NULL: none) called after every layer. */
int g3_vision_forward_hook(const g3_vision *v, const float *pixels, float *vision_out,
                           float *image_embeds, g3_vision_hook hook, void *user);

#endif
