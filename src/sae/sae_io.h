/* sae_io.h: SAE folders: SAELens v6 (read/write) and Gemma Scope 2 (read).
 *
 * SAELens v6 (research/sae_anchors.md §1.10): cfg.json (d_in, d_sae, dtype,
 * device, apply_b_dec_to_input, normalize_activations, reshape_activations,
 * architecture "standard" | "topk" (+ k, rescale_acts_by_decoder_norm) |
 * "jumprelu", metadata {sae_lens_version, model_name, hook_name, ...}) and
 * sae_weights.safetensors (W_enc [d_in, d_sae], W_dec [d_sae, d_in],
 * b_enc [d_sae], b_dec [d_in], threshold [d_sae] for jumprelu), plus
 * sparsity.safetensors {sparsity: log10(density + 1e-10) [d_sae]}.
 * saecap writes metadata.sae_lens_version "6.0.0" (older values make
 * SAELens run its pre-6 converter) and its own keys under metadata
 * (saecap_version, saecap_k: the k a BATCHTOPK SAE was trained with).
 *
 * Gemma Scope 2: config.json (architecture "jump_relu", width, l0,
 * hf_hook_point_in, model_name, type "sae", affine_connection) and
 * params.safetensors (w_enc [d, n], w_dec [n, d], b_enc, b_dec, threshold),
 * read with apply_b_dec_to_input = false, as SAELens's loader does.
 *
 * Tensors may be F32, BF16 or F16 (widened to f32). Every value read is
 * checked; messages name the file and the key or tensor.
 */
#ifndef SC_SAE_IO_H
#define SC_SAE_IO_H

#include <stddef.h>

#include "sae/sae.h"

/* Largest cfg.json / config.json read. */
#define SAE_CFG_MAX_BYTES (1u << 20)

/* Parses a SAELens cfg.json held in buf[0..len) (name used in messages).
 * Errors: SC_ERR_FORMAT (malformed JSON, a key of the wrong type),
 * SC_ERR_MISSING (d_in, d_sae, architecture, k for topk), SC_ERR_ARG (an
 * architecture or option saecap does not support), SC_ERR_RANGE (widths). */
int sae_cfg_parse_saelens(const char *buf, size_t len, const char *name, sae_cfg *out);
/* Parses a Gemma Scope 2 config.json. d is left 0 (it comes from the
 * tensors) and n is the width when given (0 otherwise). Same errors. */
int sae_cfg_parse_gemmascope(const char *buf, size_t len, const char *name, sae_cfg *out);

/* Loads an SAE folder: SAELens (cfg.json + sae_weights.safetensors) or
 * Gemma Scope 2 (config.json + params.safetensors), whichever it holds.
 * Errors: SC_ERR_MISSING "<dir>: no cfg.json + sae_weights.safetensors
 * (SAELens) or config.json + params.safetensors (Gemma Scope 2)", or the
 * parse / tensor errors ("<file>: tensor 'W_enc' has shape [a, b],
 * expected [d, n]"). */
int sae_load(sae **out, const char *dir);

/* Writes dir/cfg.json, dir/sae_weights.safetensors and, when log_density
 * is not NULL, dir/sparsity.safetensors (log_density [n]); creates dir.
 * RELU is written as "standard", TOPK as "topk", JUMPRELU (and BATCHTOPK,
 * with its thresholds) as "jumprelu". Each file is written atomically,
 * cfg.json last. */
int sae_save_saelens(const sae *s, const float *log_density, const char *dir);

/* An extra key under cfg.json's metadata; value is owned by the callee. */
typedef struct sae_meta_kv {
  const char *key;
  struct cJSON *value;
} sae_meta_kv;

/* sae_save_saelens plus extra metadata keys (after saecap's own), e.g. the
 * languages and segments an SAE was trained on. Takes ownership of every
 * value, also on error. */
int sae_save_saelens_meta(const sae *s, const float *log_density, const char *dir,
                          const sae_meta_kv *extra, int n_extra);

#endif
