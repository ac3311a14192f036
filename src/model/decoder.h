/* decoder.h: the Gemma-3 text decoder (research/gemma3_spec.md §2-§3).
 *
 * g3_model holds the config and the weights: matrices are views into the
 * mmapped checkpoint in their stored dtype (BF16, F16 or F32); only the
 * small norm vectors are widened to f32 at load. g3_state holds what one
 * sequence needs: the KV cache and the per-forward scratch arena. A model
 * is read-only after loading, so several states (threads) may share it.
 *
 * Typical use:
 *   g3_model *m;  g3_state *s;
 *   if (g3_model_load(&m, "model_dir")) return cli_fail();
 *   if (g3_state_create(&s, m, max_tokens)) ...
 *   g3_forward_io io = {.ids = ids, .n = n, .logits = buf, .logits_last = 1};
 *   g3_forward(m, s, &io);          // prefill: positions 0..n-1
 *   io.ids = &next; io.n = 1;
 *   g3_forward(m, s, &io);          // decode: position n, reusing the cache
 *   g3_state_free(s); g3_model_free(m);
 *
 * Tensor names: "<P>embed_tokens.weight", "<P>layers.N.…", "<P>norm.weight"
 * with P = G3_PREFIX_TEXT_OLD, G3_PREFIX_TEXT_NEW, or "model." (a text-only
 * Gemma3ForCausalLM file); lm_head.weight / language_model.lm_head.weight
 * when present, else the (tied) embedding. Tensors outside the text prefix
 * (vision tower, projector) are left to their own loaders. A tensor under
 * the text prefix that the decoder does not know is an ERROR, not a
 * warning as in transformers: a checkpoint with extra text weights (biases,
 * another architecture) would otherwise be run silently wrong.
 *
 * Residual-stream sites (spec §3.5): "embeds" = E[id]·s (HF
 * hidden_states[0]); "resid_post.L" = the residual after decoder layer L,
 * un-normed (HF hidden_states[L+1] except the last, which HF final-norms);
 * "final_norm" = RMS(x; norm) (HF last_hidden_state); logits = final_norm ·
 * lm_headᵀ over all vocab_size rows, no softcap (Gemma3ForConditional-
 * Generation never applies one).
 *
 * Precision (DESIGN.md, Numerics). SC_PRECISION_F32, the reference mode:
 * weights widened to f32, f32 GEMMs, f32 attention. SC_PRECISION_BF16, what
 * a bf16 run of the Hugging Face model computes in its products: every
 * GEMM input is rounded to bf16 and multiplied bf16 x bf16 with f32
 * products and sums (sc_gemm: oneDNN where the CPU has AVX-512 bf16, else
 * the exact widening fallback), that is the q/k/v/o, gate/up/down
 * projections and the LM head, and also the two attention products: q, k
 * and v are rounded to bf16 after q/k-norm and RoPE (so the KV cache holds
 * bf16 values, as HF's bf16 cache does), and the softmax probabilities are
 * rounded to bf16 before P·v (HF eager attention casts the f32 softmax back
 * to bf16; PyTorch's CPU flash attention likewise feeds bf16 probabilities
 * to its P·v GEMM), while the scores q·kᵀ and the softmax stay f32. Unlike
 * a bf16 HF run, GEMM outputs are not rounded: the embeddings, norms,
 * RoPE, softmax, GELU and the residual stream stay f32 in both modes, so
 * bf16 mode differs from f32 mode only by the rounding of GEMM operands.
 * Each g3_state carries its own precision and its own sc_gemm (created
 * with the state when it starts in BF16), so states never share one.
 */
#ifndef SC_DECODER_H
#define SC_DECODER_H

#include <stdint.h>

#include "io/safetensors.h"
#include "model/g3_config.h"
#include "tensor/kernels.h"

/* Most tokens one state can hold (positions are int32 in RoPE tables). */
#define G3_MAX_TOKENS (1 << 24)

/* One decoder layer's weights. */
typedef struct g3_layer {
  sc_mat q_proj;         /* (n_heads·head_dim, hidden) */
  sc_mat k_proj;         /* (n_kv_heads·head_dim, hidden) */
  sc_mat v_proj;         /* (n_kv_heads·head_dim, hidden) */
  sc_mat o_proj;         /* (hidden, n_heads·head_dim) */
  sc_mat gate_proj;      /* (intermediate, hidden) */
  sc_mat up_proj;        /* (intermediate, hidden) */
  sc_mat down_proj;      /* (hidden, intermediate) */
  float *input_norm;     /* (hidden) zero-centred: the norm multiplies by 1 + w */
  float *q_norm;         /* (head_dim) */
  float *k_norm;         /* (head_dim) */
  float *post_attn_norm; /* (hidden) */
  float *pre_ff_norm;    /* (hidden) */
  float *post_ff_norm;   /* (hidden) */
} g3_layer;

typedef struct g3_model {
  g3_config cfg;           /* config.json with defaults */
  st_checkpoint *ckpt;     /* owns the mmapped shards */
  const char *prefix;      /* text tensor-name prefix found in the checkpoint */
  sc_mat embed;            /* (vocab_size, hidden) */
  sc_mat lm_head;          /* (vocab_size, hidden): embed when tied */
  float *final_norm;       /* (hidden) */
  float embed_scale;       /* sqrt(hidden) rounded to embed's dtype (spec §3.1) */
  g3_layer *layers;        /* (num_hidden_layers) */
  float *inv_freq_local;   /* (head_dim/2) sliding layers */
  float *inv_freq_global;  /* (head_dim/2) full-attention layers */
  sc_precision precision;  /* precision of the states created from it (F32 after load);
                              set it before g3_state_create, or use g3_state_set_precision */
} g3_model;

/* Loads DIR/config.json and the checkpoint in DIR (index + shards or one
 * model.safetensors) and checks every text tensor against the config.
 * Errors (one message each, naming the file and tensor):
 *   SC_ERR_MISSING "<dir>: tensor '<name>' is missing",
 *   SC_ERR_FORMAT  "<shard>: tensor '<name>' has shape [a,b], expected [c,d]",
 *                  "<shard>: tensor '<name>' has dtype X, expected BF16, F16 or F32",
 *                  "<shard>: unknown tensor '<name>' under the text prefix '<P>'",
 *                  "<dir>: both text prefixes ... present";
 * plus those of g3_config_load and st_checkpoint_open, SC_ERR_NOMEM. */
int g3_model_load(g3_model **out, const char *dir);
/* NULL is a no-op. */
void g3_model_free(g3_model *m);

/* The KV cache and scratch of one sequence. */
typedef struct g3_state g3_state;

/* A state for sequences of up to max_tokens tokens (1..G3_MAX_TOKENS),
 * in m->precision. Full-attention layers cache max_tokens positions,
 * sliding layers only the last sliding_window. SC_ERR_ARG / SC_ERR_NOMEM,
 * and those of g3_state_set_precision. */
int g3_state_create(g3_state **out, const g3_model *m, int64_t max_tokens);
/* Sets the precision of s's next forwards (a cache filled in one precision
 * is used as is by the other). Switching to BF16 creates s's sc_gemm once
 * (backend AUTO, threads from sc_kernels_set_threads). Errors: SC_ERR_ARG
 * "state: unknown precision N"; those of sc_gemm_create. s is unchanged on
 * error. */
int g3_state_set_precision(g3_state *s, sc_precision p);
sc_precision g3_state_precision(const g3_state *s);
/* The state's bf16 GEMM context (for sc_gemm_describe), NULL while it has
 * never been in BF16. Owned by s. */
sc_gemm *g3_state_gemm(g3_state *s);
/* Forgets the sequence: the next forward starts at position 0. */
void g3_state_reset(g3_state *s);
/* Tokens in the cache (the position of the next token). */
int64_t g3_state_n_pos(const g3_state *s);
/* NULL is a no-op. */
void g3_state_free(g3_state *s);

/* Edit hook, called after each decoder layer with the residual stream of
 * the n new tokens, resid[n, hidden] at positions pos[n]; it may change
 * resid in place (steering). What it leaves there is what later layers,
 * the cache and resid_post capture see. Return 0, or a negative SC_ERR_*
 * (message set) to stop the forward with that code. */
typedef int (*g3_edit_fn)(void *user, int layer, float *resid, const int32_t *pos, int64_t n,
                          int hidden);

/* One forward call: inputs and where the outputs go. Every output pointer
 * may be NULL (not wanted); buffers are the caller's. */
typedef struct g3_forward_io {
  const int32_t *ids;         /* (n) new tokens, each in [0, vocab_size) */
  int64_t n;                  /* >= 1 */
  const int32_t *image_group; /* (n) seam for the vision issue: -1 text, >= 0 image group
                                 (bidirectional block within one call); NULL = all text */
  float *embeds;              /* out (n, hidden) */
  float **resid_post;         /* (num_hidden_layers) array of out (n, hidden) or NULL each */
  float *final_norm;          /* out (n, hidden) */
  float *logits;              /* out (n, vocab_size), or (1, vocab_size) with logits_last */
  int logits_last;            /* 1: logits of the last new token only */
  g3_edit_fn edit;            /* NULL = no edit */
  void *edit_user;
  const float *embeds_in;     /* (n, hidden) or NULL: row t replaces E[id_t]*s where
                                 image_group[t] >= 0 (the projector rows of an image
                                 prompt, caption.h); used as is, not scaled; rows of
                                 text tokens are not read */
} g3_forward_io;

/* Runs the n new tokens at positions n_pos .. n_pos+n-1 of state s,
 * appending them to its cache. When neither final_norm nor logits is
 * wanted, layers after the deepest captured one are skipped; the cache is
 * then incomplete and the state must be reset before its next forward.
 * Errors: SC_ERR_RANGE "forward: token id X at position P is out of range
 * [0, V)", "forward: N + n tokens exceed the state's capacity M";
 * SC_ERR_ARG for an incomplete state or n < 1; the edit hook's code;
 * SC_ERR_NOMEM. On error the state must be reset. */
int g3_forward(const g3_model *m, g3_state *s, const g3_forward_io *io);

#endif
