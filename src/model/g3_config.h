/* g3_config.h: the Gemma-3 configuration (config.json) as a plain struct.
 *
 * A Hugging Face config.json names only a few keys; every missing key takes
 * the transformers class default (Gemma3TextConfig, SiglipVisionConfig,
 * Gemma3Config; research/gemma3_spec.md §1.1-1.2), so the struct is always
 * complete after a successful parse. Both config generations are accepted:
 *   old (transformers 4.50-4.5x): rope_theta, rope_local_base_freq,
 *       rope_scaling {rope_type|type, factor} (global layers only),
 *       sliding_window_pattern (layer i is global iff (i+1) % pattern == 0);
 *   new: rope_parameters {full_attention:{...}, sliding_attention:{...}} and
 *       layer_types ["sliding_attention" | "full_attention", ...].
 * When both are present the new keys win, except that rope_scaling is merged
 * over rope_parameters.full_attention, as transformers does. A JSON null is
 * treated as an absent key.
 *
 * The top-level model_type must be "gemma3" (text + vision), or
 * "gemma3_text" (text only: the whole file is the text config and
 * has_vision is 0).
 *
 * Typical use:
 *   g3_config c;
 *   if (g3_config_load(model_dir, &c)) return cli_fail();
 *   ... c.text.hidden_size, c.text.is_sliding[i], c.vision.patch_size ...
 *
 * Errors: every function returns 0 or a negative SC_ERR_* after setting one
 * message "<path>: <key>: <problem>", where key is the dotted JSON path
 * ("text_config.num_key_value_heads").
 */
#ifndef SC_G3_CONFIG_H
#define SC_G3_CONFIG_H

#include <stddef.h>

#define G3_MAX_LAYERS 256
#define G3_MAX_EOS 8
/* config.json files larger than this are refused (the real one is ~1 KiB). */
#define G3_CONFIG_MAX_BYTES (4u * 1024u * 1024u)

/* Tensor-name prefixes of the two checkpoint layouts (spec §2): the
 * original 4.50-era files and saves by transformers >= 4.52. */
#define G3_PREFIX_TEXT_OLD "language_model.model."
#define G3_PREFIX_TEXT_NEW "model.language_model."
#define G3_PREFIX_VISION_OLD "vision_tower.vision_model."
#define G3_PREFIX_VISION_NEW "model.vision_tower.vision_model."
#define G3_PREFIX_PROJ_OLD "multi_modal_projector."
#define G3_PREFIX_PROJ_NEW "model.multi_modal_projector."

typedef enum g3_rope_type {
  G3_ROPE_DEFAULT = 0, /* inv_freq[j] = theta^(-2j/head_dim) */
  G3_ROPE_LINEAR = 1   /* the same divided by factor (positions / factor) */
} g3_rope_type;

/* RoPE parameters of one layer kind. */
typedef struct g3_rope {
  g3_rope_type type;
  double theta;  /* base period */
  double factor; /* linear scaling factor; 1 for G3_ROPE_DEFAULT */
} g3_rope;

typedef struct g3_text_config {
  int vocab_size;             /* embedding rows (262208 for Gemma 3) */
  int hidden_size;            /* d_model */
  int intermediate_size;      /* MLP width */
  int num_hidden_layers;      /* <= G3_MAX_LAYERS */
  int num_attention_heads;    /* query heads */
  int num_key_value_heads;    /* divides num_attention_heads */
  int head_dim;               /* even (rotate-half RoPE) */
  double query_pre_attn_scalar; /* scores are scaled by its -1/2 power */
  double rms_norm_eps;
  g3_rope rope_global;        /* full-attention layers */
  g3_rope rope_local;         /* sliding-window layers */
  int sliding_window;         /* local layers see the last sliding_window keys incl. self */
  unsigned char is_sliding[G3_MAX_LAYERS]; /* (num_hidden_layers) 1 = local, 0 = global */
  int max_position_embeddings;
  double final_logit_softcapping; /* 0 = none */
  double attn_logit_softcapping;  /* 0 = none */
  int tie_word_embeddings;    /* 1: lm_head = embed_tokens */
  int bos_token_id;
  int pad_token_id;
  int n_eos;                  /* 1..G3_MAX_EOS */
  int eos_token_ids[G3_MAX_EOS]; /* (n_eos) top-level eos_token_id if given, else text_config's */
} g3_text_config;

/* SigLIP vision tower (no pooling head). */
typedef struct g3_vision_config {
  int hidden_size;
  int intermediate_size;
  int num_hidden_layers;     /* <= G3_MAX_LAYERS */
  int num_attention_heads;   /* divides hidden_size */
  int num_channels;          /* 3 (RGB) */
  int image_size;            /* square input side in pixels */
  int patch_size;            /* divides image_size */
  double layer_norm_eps;     /* also the eps of the projector's RMSNorm */
  int patches_per_side;      /* derived: image_size / patch_size */
} g3_vision_config;

typedef struct g3_config {
  char model_type[16];       /* "gemma3" or "gemma3_text" */
  char dtype[16];            /* torch_dtype / dtype as written ("bfloat16"), "" if absent */
  int has_vision;            /* 0 for a gemma3_text config: vision and mm fields unused */
  g3_text_config text;
  g3_vision_config vision;
  int mm_tokens_per_image;   /* a perfect square */
  int mm_tokens_per_side;    /* derived: sqrt(mm_tokens_per_image) */
  int mm_pool_kernel;        /* derived: patches_per_side / mm_tokens_per_side */
  int boi_token_id;          /* <start_of_image> (boi_token_index or boi_token_id) */
  int eoi_token_id;          /* <end_of_image> */
  int image_token_id;        /* <image_soft_token> placeholder */
} g3_config;

/* Parses config.json bytes buf[0..len) into *out (defaults applied,
 * everything validated). `name` is the path used in messages. On error *out
 * is unspecified. */
int g3_config_parse(const char *buf, size_t len, const char *name, g3_config *out);

/* Reads <model_dir>/config.json and parses it. */
int g3_config_load(const char *model_dir, g3_config *out);

/* Which key generation g3_config_to_json writes (see the overview). */
typedef enum g3_config_form { G3_CONFIG_FORM_OLD = 0, G3_CONFIG_FORM_NEW = 1 } g3_config_form;

/* A complete config.json for c (every key written explicitly, pretty
 * printed, fixed key order), malloc'd; the caller frees it. The old form
 * writes sliding_window_pattern when one reproduces is_sliding (else
 * layer_types). Parsing the text gives back c. Returns NULL and sets a
 * message when out of memory. */
char *g3_config_to_json(const g3_config *c, g3_config_form form);

/* Number of global (full-attention) layers. */
int g3_config_n_global(const g3_text_config *t);

#endif
