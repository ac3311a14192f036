/* tiny.c: the tiny random Gemma-3 checkpoint writer (see tiny.h).
 *
 * Tensor names and shapes follow research/gemma3_spec.md §2: torch Linear
 * weights are [out, in], the patch conv is [out, in, kh, kw], and the one
 * exception, mm_input_projection_weight, is [vision_hidden, text_hidden]
 * (used as x·W). No lm_head: embeddings are tied.
 */
#include "model/tiny.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/rng.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "tensor/dtype.h"

/* Scales of the random weights. Linear/conv weights use 1/sqrt(fan_in) so
 * activations stay O(1) at these tiny widths (HF's 0.02 would make every
 * softmax nearly uniform and every greedy pick a near-tie). RMSNorm weights
 * are zero-centred (the model multiplies by 1 + w), so they get a small
 * spread around 0 that still exercises the "+1"; LayerNorm weights sit
 * around 1. The embedding spread gives logits a std of about 2, so argmax
 * gaps are far above bf16 rounding. */
#define TINY_STD_EMBED 0.25
#define TINY_STD_POS 0.5
#define TINY_STD_RMS_W 0.1
#define TINY_STD_LN_W 0.1
#define TINY_STD_BIAS 0.05
#define TINY_MAX_TOKENIZER_BYTES (256u * 1024u * 1024u)

/* ==== The tiny config ==== */

void g3_tiny_opts_init(g3_tiny_opts *o) {
  memset(o, 0, sizeof *o);
  o->n_layers = G3_TINY_DEFAULT_LAYERS;
  o->layout = G3_CONFIG_FORM_OLD;
  o->dtype = SC_DTYPE_BF16;
}

static void tiny_text(g3_text_config *t, int n_layers) {
  t->vocab_size = 262208; /* the real vocabulary: the real tokenizer is used */
  t->hidden_size = 64;
  t->intermediate_size = 128;
  t->num_hidden_layers = n_layers;
  t->num_attention_heads = 4;
  t->num_key_value_heads = 2;
  t->head_dim = 32;
  t->query_pre_attn_scalar = 24.0;
  t->rms_norm_eps = 1e-6;
  t->rope_global = (g3_rope){G3_ROPE_LINEAR, 1e6, 8.0};
  t->rope_local = (g3_rope){G3_ROPE_DEFAULT, 1e4, 1.0};
  t->sliding_window = 8; /* shorter than the test prompts, so the window matters */
  for (int i = 0; i < n_layers; i++) t->is_sliding[i] = (i + 1) % 2 != 0;
  t->max_position_embeddings = 131072;
  t->tie_word_embeddings = 1;
  t->bos_token_id = 2;
  t->pad_token_id = 0;
  t->n_eos = 2;
  t->eos_token_ids[0] = 1;
  t->eos_token_ids[1] = 106;
}

static void tiny_vision(g3_vision_config *v) {
  v->hidden_size = 32;
  v->intermediate_size = 64;
  v->num_hidden_layers = 2;
  v->num_attention_heads = 2;
  v->num_channels = 3;
  v->image_size = 64;
  v->patch_size = 8;
  v->layer_norm_eps = 1e-6;
  v->patches_per_side = 8;
}

int g3_tiny_config(const g3_tiny_opts *o, g3_config *c) {
  if (o->n_layers < 1 || o->n_layers > G3_TINY_MAX_LAYERS)
    return sc_error_setc(SC_ERR_ARG, "tiny-model: --layers %d is out of range [1, %d]", o->n_layers,
                         G3_TINY_MAX_LAYERS);
  if (o->dtype != SC_DTYPE_BF16 && o->dtype != SC_DTYPE_F32)
    return sc_error_setc(SC_ERR_ARG, "tiny-model: weight dtype %s is not BF16 or F32",
                         sc_dtype_name(o->dtype));
  memset(c, 0, sizeof *c);
  strcpy(c->model_type, "gemma3");
  strcpy(c->dtype, o->dtype == SC_DTYPE_F32 ? "float32" : "bfloat16");
  c->has_vision = 1;
  tiny_text(&c->text, o->n_layers);
  tiny_vision(&c->vision);
  c->mm_tokens_per_image = 16;
  c->mm_tokens_per_side = 4;
  c->mm_pool_kernel = 2;
  c->boi_token_id = 255999;
  c->eoi_token_id = 256000;
  c->image_token_id = 262144;
  return 0;
}

/* ==== The tensor list ==== */

typedef struct tiny_tensor {
  char name[192];      /* full name, with the layout's prefix */
  char key[192];       /* layout-independent name: seeds the values */
  int n_dims;
  int64_t shape[4];
  double mean, std;    /* of the normal the values are drawn from */
  int shard;           /* 0-based */
} tiny_tensor;

typedef struct tiny_list {
  tiny_tensor *t;
  int n, cap;
  const char *prefix[3]; /* text, vision, projector */
  int shard;             /* shard of the tensors being added */
  int bad;               /* allocation failed */
} tiny_list;

enum { SEC_TEXT = 0, SEC_VISION = 1, SEC_PROJ = 2 };
static const char *SEC_TAG[3] = {"text.", "vision.", "proj."};

/* Appends one tensor; std < 0 means 1/sqrt(fan_in) with fan_in = the
 * product of all dims but the first (Linear [out,in], conv [out,c,kh,kw]). */
static void push(tiny_list *l, int sec, const char *suffix, double mean, double std, int n_dims,
                 int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  if (l->bad) return;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 256;
    tiny_tensor *t = realloc(l->t, (size_t)cap * sizeof *t);
    if (!t) {
      l->bad = 1;
      return;
    }
    l->t = t;
    l->cap = cap;
  }
  tiny_tensor *t = &l->t[l->n++];
  snprintf(t->name, sizeof t->name, "%s%s", l->prefix[sec], suffix);
  snprintf(t->key, sizeof t->key, "%s%s", SEC_TAG[sec], suffix);
  t->n_dims = n_dims;
  int64_t d[4] = {d0, d1, d2, d3};
  int64_t fan_in = 1;
  for (int i = 0; i < 4; i++) t->shape[i] = d[i];
  for (int i = 1; i < n_dims; i++) fan_in *= d[i];
  t->mean = mean;
  t->std = std >= 0.0 ? std : 1.0 / sqrt((double)fan_in);
  t->shard = l->shard;
}

#define LINEAR(l, sec, name, out, in) push(l, sec, name, 0.0, -1.0, 2, out, in, 0, 0)
#define VEC(l, sec, name, n, mean, std) push(l, sec, name, mean, std, 1, n, 0, 0, 0)

static void push_text_layer(tiny_list *l, const g3_text_config *t, int i) {
  char s[128];
  int64_t h = t->hidden_size, f = t->intermediate_size, hd = t->head_dim;
  int64_t q = t->num_attention_heads * hd, kv = t->num_key_value_heads * hd;
#define NAME(suffix) (snprintf(s, sizeof s, "layers.%d." suffix, i), s)
  VEC(l, SEC_TEXT, NAME("input_layernorm.weight"), h, 0.0, TINY_STD_RMS_W);
  LINEAR(l, SEC_TEXT, NAME("self_attn.q_proj.weight"), q, h);
  LINEAR(l, SEC_TEXT, NAME("self_attn.k_proj.weight"), kv, h);
  LINEAR(l, SEC_TEXT, NAME("self_attn.v_proj.weight"), kv, h);
  LINEAR(l, SEC_TEXT, NAME("self_attn.o_proj.weight"), h, q);
  VEC(l, SEC_TEXT, NAME("self_attn.q_norm.weight"), hd, 0.0, TINY_STD_RMS_W);
  VEC(l, SEC_TEXT, NAME("self_attn.k_norm.weight"), hd, 0.0, TINY_STD_RMS_W);
  VEC(l, SEC_TEXT, NAME("post_attention_layernorm.weight"), h, 0.0, TINY_STD_RMS_W);
  VEC(l, SEC_TEXT, NAME("pre_feedforward_layernorm.weight"), h, 0.0, TINY_STD_RMS_W);
  LINEAR(l, SEC_TEXT, NAME("mlp.gate_proj.weight"), f, h);
  LINEAR(l, SEC_TEXT, NAME("mlp.up_proj.weight"), f, h);
  LINEAR(l, SEC_TEXT, NAME("mlp.down_proj.weight"), h, f);
  VEC(l, SEC_TEXT, NAME("post_feedforward_layernorm.weight"), h, 0.0, TINY_STD_RMS_W);
#undef NAME
}

/* LayerNorm weight (around 1) and bias. */
static void push_ln(tiny_list *l, const char *base, int64_t n) {
  char s[128];
  snprintf(s, sizeof s, "%s.weight", base);
  VEC(l, SEC_VISION, s, n, 1.0, TINY_STD_LN_W);
  snprintf(s, sizeof s, "%s.bias", base);
  VEC(l, SEC_VISION, s, n, 0.0, TINY_STD_BIAS);
}

/* Linear weight [out, in] and bias [out]. */
static void push_linear_b(tiny_list *l, const char *base, int64_t out, int64_t in) {
  char s[128];
  snprintf(s, sizeof s, "%s.weight", base);
  LINEAR(l, SEC_VISION, s, out, in);
  snprintf(s, sizeof s, "%s.bias", base);
  VEC(l, SEC_VISION, s, out, 0.0, TINY_STD_BIAS);
}

static void push_vision_layer(tiny_list *l, const g3_vision_config *v, int i) {
  static const char *attn[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  char s[96];
  int64_t h = v->hidden_size, f = v->intermediate_size;
  snprintf(s, sizeof s, "encoder.layers.%d.layer_norm1", i);
  push_ln(l, s, h);
  for (int k = 0; k < 4; k++) {
    snprintf(s, sizeof s, "encoder.layers.%d.self_attn.%s", i, attn[k]);
    push_linear_b(l, s, h, h);
  }
  snprintf(s, sizeof s, "encoder.layers.%d.layer_norm2", i);
  push_ln(l, s, h);
  snprintf(s, sizeof s, "encoder.layers.%d.mlp.fc1", i);
  push_linear_b(l, s, f, h);
  snprintf(s, sizeof s, "encoder.layers.%d.mlp.fc2", i);
  push_linear_b(l, s, h, f);
}

static void push_vision(tiny_list *l, const g3_config *c) {
  const g3_vision_config *v = &c->vision;
  int64_t h = v->hidden_size, p = v->patch_size;
  int64_t n_patches = (int64_t)v->patches_per_side * v->patches_per_side;
  push(l, SEC_VISION, "embeddings.patch_embedding.weight", 0.0, -1.0, 4, h, v->num_channels, p, p);
  VEC(l, SEC_VISION, "embeddings.patch_embedding.bias", h, 0.0, TINY_STD_BIAS);
  push(l, SEC_VISION, "embeddings.position_embedding.weight", 0.0, TINY_STD_POS, 2, n_patches, h,
       0, 0);
  for (int i = 0; i < v->num_hidden_layers; i++) push_vision_layer(l, v, i);
  push_ln(l, "post_layernorm", h);
  /* [in, out], used as x·W: fan_in is the first dim here. */
  push(l, SEC_PROJ, "mm_input_projection_weight", 0.0, 1.0 / sqrt((double)h), 2, h,
       c->text.hidden_size, 0, 0);
  VEC(l, SEC_PROJ, "mm_soft_emb_norm.weight", h, 0.0, TINY_STD_RMS_W);
}

/* Shard 0: the embedding and the first half of the decoder layers; shard 1:
 * the rest, so a loader must follow the index across files. */
static int build_list(tiny_list *l, const g3_config *c, g3_config_form layout) {
  const g3_text_config *t = &c->text;
  int neu = layout == G3_CONFIG_FORM_NEW;
  l->prefix[SEC_TEXT] = neu ? G3_PREFIX_TEXT_NEW : G3_PREFIX_TEXT_OLD;
  l->prefix[SEC_VISION] = neu ? G3_PREFIX_VISION_NEW : G3_PREFIX_VISION_OLD;
  l->prefix[SEC_PROJ] = neu ? G3_PREFIX_PROJ_NEW : G3_PREFIX_PROJ_OLD;
  l->shard = 0;
  push(l, SEC_TEXT, "embed_tokens.weight", 0.0, TINY_STD_EMBED, 2, t->vocab_size, t->hidden_size,
       0, 0);
  for (int i = 0; i < t->num_hidden_layers; i++) {
    l->shard = i < t->num_hidden_layers / 2 ? 0 : 1;
    push_text_layer(l, t, i);
  }
  l->shard = 1;
  VEC(l, SEC_TEXT, "norm.weight", t->hidden_size, 0.0, TINY_STD_RMS_W);
  push_vision(l, c);
  return l->bad ? sc_error_setc(SC_ERR_NOMEM, "tiny-model: out of memory") : 0;
}

/* ==== Values and shards ==== */

static uint64_t fnv1a64(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static size_t n_elements(const tiny_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->n_dims; i++) n *= (size_t)t->shape[i];
  return n;
}

/* Values of one tensor in dtype (BF16 or F32), seeded by (seed,
 * layout-independent key). */
static void *make_values(const tiny_tensor *t, uint64_t seed, sc_dtype dtype) {
  size_t n = n_elements(t);
  unsigned char *out = malloc(n * sc_dtype_size(dtype));
  float chunk[1024];
  sc_rng r;
  if (!out) return NULL;
  sc_rng_seed(&r, seed ^ fnv1a64(t->key));
  for (size_t at = 0; at < n; at += 1024) {
    size_t k = n - at < 1024 ? n - at : 1024;
    for (size_t i = 0; i < k; i++) chunk[i] = (float)(t->mean + t->std * sc_rng_normal(&r));
    if (dtype == SC_DTYPE_F32)
      memcpy(out + at * sizeof(float), chunk, k * sizeof(float));
    else
      sc_bf16_from_f32_n((uint16_t *)(void *)out + at, chunk, k);
  }
  return out;
}

static void shard_name(char *buf, size_t n, int shard) {
  snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, G3_TINY_N_SHARDS);
}

/* Fills, adds and writes the tensors of one shard; the values live only
 * until the writer has written them. */
static int write_shard(const char *dir, const tiny_list *l, int shard, uint64_t seed, sc_dtype dtype) {
  st_writer *w = NULL;
  void **vals = calloc((size_t)l->n, sizeof *vals);
  char leaf[64], *path = NULL;
  int rc = vals ? st_writer_create(&w) : SC_ERR_NOMEM;
  if (!rc) rc = st_writer_add_meta(w, "format", "pt");
  for (int i = 0; i < l->n && !rc; i++) {
    const tiny_tensor *t = &l->t[i];
    if (t->shard != shard) continue;
    if (!(vals[i] = make_values(t, seed, dtype))) rc = SC_ERR_NOMEM;
    else
      rc = st_writer_add(w, t->name, dtype, t->n_dims, t->shape, vals[i],
                         n_elements(t) * sc_dtype_size(dtype));
  }
  shard_name(leaf, sizeof leaf, shard);
  if (!rc && !(path = sc_path_join(dir, leaf))) rc = SC_ERR_NOMEM;
  if (!rc) rc = st_writer_write(w, path);
  if (rc == SC_ERR_NOMEM) sc_error_setc(rc, "%s: out of memory", leaf);
  st_writer_free(w);
  for (int i = 0; vals && i < l->n; i++) free(vals[i]);
  free(vals);
  free(path);
  return rc;
}

/* ==== JSON side files ==== */

/* Writes text plus a final newline to dir/leaf atomically. */
static int write_text(const char *dir, const char *leaf, const char *text) {
  char *path = sc_path_join(dir, leaf);
  size_t n = strlen(text);
  char *buf = malloc(n + 1);
  int rc = SC_ERR_NOMEM;
  if (path && buf) {
    memcpy(buf, text, n);
    buf[n] = '\n';
    rc = sc_write_file_atomic(path, buf, n + 1);
  } else {
    sc_error_setc(rc, "%s: out of memory", leaf);
  }
  free(buf);
  free(path);
  return rc;
}

/* Pretty-prints j (freed here; NULL or bad = out of memory) to dir/leaf. */
static int write_json(const char *dir, const char *leaf, sc_json *j, int bad) {
  char *text = (bad || !j) ? NULL : sc_json_print(j, 1);
  sc_json_free(j);
  if (!text) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", leaf);
  int rc = write_text(dir, leaf, text);
  free(text);
  return rc;
}

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp((*(const tiny_tensor *const *)a)->name, (*(const tiny_tensor *const *)b)->name);
}

/* {"metadata":{"total_size":bytes},"weight_map":{name: shard file}} with
 * names sorted, as transformers writes it. */
static int write_index(const char *dir, const tiny_list *l, sc_dtype dtype) {
  const tiny_tensor **sorted = malloc((size_t)l->n * sizeof *sorted);
  sc_json *root = sc_json_new_object();
  double total = 0.0; /* exact: far below 2^53 */
  char leaf[64];
  int ok = sorted != NULL;
  for (int i = 0; i < l->n && ok; i++) {
    sorted[i] = &l->t[i];
    total += (double)(n_elements(&l->t[i]) * sc_dtype_size(dtype));
  }
  if (ok) qsort(sorted, (size_t)l->n, sizeof *sorted, cmp_tensor_name);
  sc_json *meta = sc_json_add(root, "metadata", sc_json_new_object());
  ok = ok && meta && sc_json_add_num(meta, "total_size", total);
  sc_json *map = sc_json_add(root, "weight_map", sc_json_new_object());
  for (int i = 0; i < l->n && ok && map; i++) {
    shard_name(leaf, sizeof leaf, sorted[i]->shard);
    ok = sc_json_add_str(map, sorted[i]->name, leaf) != NULL;
  }
  free(sorted);
  return write_json(dir, "model.safetensors.index.json", root, !ok || !map);
}

static sc_json *num_array(int n, const double *v, int *bad) {
  sc_json *a = sc_json_new_array();
  for (int i = 0; i < n; i++)
    if (!sc_json_add(a, NULL, sc_json_new_num(v[i]))) *bad = 1;
  if (!a) *bad = 1;
  return a;
}

/* Gemma3ImageProcessor settings of the real checkpoint (spec §1.4), sized
 * for the tiny vision tower. */
static int write_preprocessor(const char *dir, const g3_config *c) {
  static const double half[3] = {0.5, 0.5, 0.5};
  static const char *nulls[] = {"do_convert_rgb", "do_pan_and_scan", "pan_and_scan_max_num_crops",
                                "pan_and_scan_min_crop_size", "pan_and_scan_min_ratio_to_activate"};
  int bad = 0;
  sc_json *o = sc_json_new_object(), *size;
  for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
    if (!sc_json_add(o, nulls[i], sc_json_new_null())) bad = 1;
  bad |= !sc_json_add_bool(o, "do_normalize", 1) || !sc_json_add_bool(o, "do_rescale", 1);
  bad |= !sc_json_add_bool(o, "do_resize", 1);
  bad |= !sc_json_add(o, "image_mean", num_array(3, half, &bad));
  bad |= !sc_json_add_str(o, "image_processor_type", "Gemma3ImageProcessor");
  bad |= !sc_json_add_num(o, "image_seq_length", c->mm_tokens_per_image);
  bad |= !sc_json_add(o, "image_std", num_array(3, half, &bad));
  bad |= !sc_json_add_str(o, "processor_class", "Gemma3Processor");
  bad |= !sc_json_add_num(o, "resample", 2); /* PIL BILINEAR */
  bad |= !sc_json_add_num(o, "rescale_factor", 1.0 / 255.0);
  bad |= !(size = sc_json_add(o, "size", sc_json_new_object()));
  bad |= !sc_json_add_num(size, "height", c->vision.image_size);
  bad |= !sc_json_add_num(size, "width", c->vision.image_size);
  return write_json(dir, "preprocessor_config.json", o, bad);
}

/* generation_config.json of the IT checkpoint (spec §1.4). */
static int write_generation(const char *dir, const g3_config *c) {
  double eos[G3_MAX_EOS];
  int bad = 0;
  for (int i = 0; i < c->text.n_eos; i++) eos[i] = c->text.eos_token_ids[i];
  sc_json *o = sc_json_new_object();
  bad |= !sc_json_add_num(o, "bos_token_id", c->text.bos_token_id);
  bad |= !sc_json_add_str(o, "cache_implementation", "hybrid");
  bad |= !sc_json_add_bool(o, "do_sample", 1);
  bad |= !sc_json_add(o, "eos_token_id", num_array(c->text.n_eos, eos, &bad));
  bad |= !sc_json_add_num(o, "pad_token_id", c->text.pad_token_id);
  bad |= !sc_json_add_num(o, "top_k", 64);
  bad |= !sc_json_add_num(o, "top_p", 0.95);
  return write_json(dir, "generation_config.json", o, bad);
}

/* ==== Tokenizer copies and the whole folder ==== */

/* The tokenizer_config.json source: given, or beside tokenizer.json.
 * malloc'd. */
static char *tokenizer_config_src(const g3_tiny_opts *o) {
  if (o->tokenizer_config_json) return strdup(o->tokenizer_config_json);
  size_t n = (size_t)(sc_path_base(o->tokenizer_json) - o->tokenizer_json);
  char *dir = strndup(o->tokenizer_json, n); /* "" when there is no folder part */
  char *p = dir ? sc_path_join(n ? dir : ".", "tokenizer_config.json") : NULL;
  free(dir);
  return p;
}

static int copy_file(const char *src, const char *dir, const char *leaf) {
  char *buf, *path = sc_path_join(dir, leaf);
  size_t n;
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", leaf);
  int rc = sc_read_file(src, TINY_MAX_TOKENIZER_BYTES, &buf, &n);
  if (!rc) {
    rc = sc_write_file_atomic(path, buf, n);
    free(buf);
  }
  free(path);
  return rc;
}

static int check_sources(const char *tok, const char *tok_cfg) {
  if (!tok) return sc_error_setc(SC_ERR_ARG, "tiny-model: no tokenizer.json source given");
  if (!sc_is_file(tok)) return sc_error_setc(SC_ERR_IO, "%s: no such file (tokenizer.json source)", tok);
  if (!sc_is_file(tok_cfg))
    return sc_error_setc(SC_ERR_IO, "%s: no such file (tokenizer_config.json source)", tok_cfg);
  return 0;
}

static int write_weights(const char *dir, const g3_config *c, const g3_tiny_opts *o) {
  tiny_list l = {0};
  int rc = build_list(&l, c, o->layout);
  for (int s = 0; s < G3_TINY_N_SHARDS && !rc; s++) rc = write_shard(dir, &l, s, o->seed, o->dtype);
  if (!rc) rc = write_index(dir, &l, o->dtype);
  free(l.t);
  return rc;
}

int g3_tiny_write(const char *out_dir, const g3_tiny_opts *o) {
  g3_config c;
  int rc = g3_tiny_config(o, &c);
  char *tok_cfg = NULL, *cfg_text = NULL;
  if (!rc && !(tok_cfg = tokenizer_config_src(o))) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = check_sources(o->tokenizer_json, tok_cfg);
  if (!rc) rc = sc_mkdirs(out_dir);
  if (!rc) rc = copy_file(o->tokenizer_json, out_dir, "tokenizer.json");
  if (!rc) rc = copy_file(tok_cfg, out_dir, "tokenizer_config.json");
  if (!rc) rc = write_preprocessor(out_dir, &c);
  if (!rc) rc = write_generation(out_dir, &c);
  if (!rc) rc = write_weights(out_dir, &c, o);
  /* config.json last: its presence marks a complete folder. */
  if (!rc && !(cfg_text = g3_config_to_json(&c, o->layout))) rc = SC_ERR_NOMEM;
  if (!rc) rc = write_text(out_dir, "config.json", cfg_text);
  free(cfg_text);
  free(tok_cfg);
  return rc;
}
