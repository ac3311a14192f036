/* tiny.h: a tiny random Gemma-3 checkpoint in the real Hugging Face layout.
 *
 * The numerics tests need a model that every loader path treats exactly
 * like google/gemma-3-4b-it but that runs in milliseconds: g3_tiny_write
 * writes one into a folder with
 *   config.json                     model_type gemma3, full text_config and
 *                                   vision_config (tiny widths, real vocab 262208)
 *   model-0000k-of-0000n.safetensors  every tensor of spec §2 (text, vision,
 *                                   projector; no lm_head: tied), BF16 (or F32: dtype), n >= 2
 *   model.safetensors.index.json    {"metadata":{"total_size"},"weight_map"}
 *   tokenizer.json, tokenizer_config.json  copies of the real Gemma 3 files
 *   preprocessor_config.json, generation_config.json
 * Weights are seeded normals (see tiny.c for the scales); each tensor's
 * values depend only on the seed and its name without the layout prefix, so
 * the old and new layouts of one seed hold the same numbers. Same options =>
 * byte-identical files. Every file is written atomically (config.json last);
 * a failure can leave earlier complete files but never a partial one.
 *
 * The tiny model (G3_TINY_* below): text hidden 64, MLP 128, 4 query heads
 * of 32 (q width 128 != hidden), 2 KV heads, query_pre_attn_scalar 24
 * (!= head_dim, as in the 27B model), sliding window 8, every 2nd layer
 * global (layers 1, 3, ...), linear RoPE x8 on global layers; vision 64x64
 * pixels in 8x8 patches (8x8 grid), hidden 32, MLP 64, 2 layers, 2 heads;
 * 16 image tokens (4x4, pool kernel 2).
 */
#ifndef SC_TINY_H
#define SC_TINY_H

#include <stdint.h>

#include "model/g3_config.h"
#include "tensor/dtype.h"

#define G3_TINY_DEFAULT_LAYERS 4
#define G3_TINY_MAX_LAYERS 64
/* Shards are named like Hugging Face's: model-00001-of-00002.safetensors. */
#define G3_TINY_N_SHARDS 2

typedef struct g3_tiny_opts {
  uint64_t seed;
  int n_layers;          /* text decoder layers, 1..G3_TINY_MAX_LAYERS */
  g3_config_form layout; /* OLD: language_model.model.* names + old config keys;
                            NEW: model.language_model.* names + layer_types/rope_parameters */
  const char *tokenizer_json;        /* source copied to tokenizer.json (required) */
  const char *tokenizer_config_json; /* source of tokenizer_config.json; NULL = the
                                        tokenizer_config.json beside tokenizer_json */
  sc_dtype dtype;        /* weight dtype: SC_DTYPE_BF16 (default) or SC_DTYPE_F32 (the
                            same normals, not rounded to bf16; config dtype "float32") */
} g3_tiny_opts;

/* Defaults: seed 0, G3_TINY_DEFAULT_LAYERS layers, old layout, BF16, no tokenizer. */
void g3_tiny_opts_init(g3_tiny_opts *o);

/* The config g3_tiny_write writes for these options (no files touched).
 * SC_ERR_ARG for a layer count out of range or a dtype other than BF16/F32. */
int g3_tiny_config(const g3_tiny_opts *o, g3_config *out);

/* Writes the checkpoint into out_dir (created if missing; existing files of
 * the same names are replaced). Checks that the tokenizer sources exist
 * before writing anything. Errors: SC_ERR_ARG (bad options), SC_ERR_IO
 * (a source missing or unreadable, a write failed), SC_ERR_NOMEM; the
 * message names the file. */
int g3_tiny_write(const char *out_dir, const g3_tiny_opts *o);

#endif
