/* g3_config.c: config.json -> g3_config with the transformers defaults, and
 * back (see g3_config.h).
 *
 * Defaults are the keyword defaults of transformers' Gemma3TextConfig,
 * SiglipVisionConfig and Gemma3Config (research/gemma3_spec.md §1.1-1.2);
 * the old/new RoPE merge follows Gemma3TextConfig.convert_rope_params_to_dict
 * (rope_scaling updates full_attention; a sub-dict's rope_theta wins over the
 * flat rope_theta / rope_local_base_freq keys).
 */
#include "model/g3_config.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"

/* ==== Parsing context and typed getters ==== */

/* Where we are: the file name for messages and the dotted section
 * ("text_config." or "") that prefixes every key. */
typedef struct pctx {
  const char *name;
  const char *sect;
} pctx;

static int fail(const pctx *p, int code, const char *key, const char *problem) {
  return sc_error_setc(code, "%s: %s%s: %s", p->name, p->sect, key, problem);
}

/* The member, or NULL when absent or JSON null (both mean "use the default"). */
static const sc_json *member(const sc_json *o, const char *key) {
  const sc_json *v = sc_json_get(o, key);
  return (v && !sc_json_is_null(v)) ? v : NULL;
}

static int get_int(const pctx *p, const sc_json *o, const char *key, int dflt, int lo, int hi,
                   int *dst) {
  const sc_json *v = member(o, key);
  int64_t x;
  char msg[128];
  if (!v) {
    *dst = dflt;
    return 0;
  }
  if (sc_json_i64(v, &x)) return fail(p, SC_ERR_FORMAT, key, "expected an integer");
  if (x < lo || x > hi) {
    snprintf(msg, sizeof msg, "%lld is out of range [%d, %d]", (long long)x, lo, hi);
    return fail(p, SC_ERR_RANGE, key, msg);
  }
  *dst = (int)x;
  return 0;
}

/* A finite number in (0, hi]. */
static int get_pos(const pctx *p, const sc_json *o, const char *key, double dflt, double hi,
                   double *dst) {
  const sc_json *v = member(o, key);
  char msg[128];
  if (!v) {
    *dst = dflt;
    return 0;
  }
  if (!sc_json_is_number(v)) return fail(p, SC_ERR_FORMAT, key, "expected a number");
  double x = sc_json_num(v);
  if (!(x > 0.0 && x <= hi)) {
    snprintf(msg, sizeof msg, "%g is out of range (0, %g]", x, hi);
    return fail(p, SC_ERR_RANGE, key, msg);
  }
  *dst = x;
  return 0;
}

static int get_bool(const pctx *p, const sc_json *o, const char *key, int dflt, int *dst) {
  const sc_json *v = member(o, key);
  if (!v) {
    *dst = dflt;
    return 0;
  }
  if (sc_json_bool(v, dst)) return fail(p, SC_ERR_FORMAT, key, "expected true or false");
  return 0;
}

/* String member or NULL when absent; a non-string is an error. */
static int get_str(const pctx *p, const sc_json *o, const char *key, const char **dst) {
  const sc_json *v = member(o, key);
  *dst = NULL;
  if (!v) return 0;
  if (!sc_json_is_string(v)) return fail(p, SC_ERR_FORMAT, key, "expected a string");
  *dst = sc_json_str(v);
  return 0;
}

/* An optional string that, when present, must equal `want`. */
static int expect_str(const pctx *p, const sc_json *o, const char *key, const char *want) {
  const char *s;
  char msg[256];
  int rc = get_str(p, o, key, &s);
  if (rc || !s || !strcmp(s, want)) return rc;
  snprintf(msg, sizeof msg, "'%.64s' is not supported (expected \"%s\")", s, want);
  return fail(p, SC_ERR_FORMAT, key, msg);
}

/* An optional flag that saecap does not implement: it must be false. */
static int expect_false(const pctx *p, const sc_json *o, const char *key) {
  int b;
  int rc = get_bool(p, o, key, 0, &b);
  if (rc) return rc;
  return b ? fail(p, SC_ERR_FORMAT, key, "true is not supported (expected false)") : 0;
}

/* ==== Table-driven integer keys ==== */

typedef struct int_key {
  const char *key;
  size_t off; /* offset of the int field */
  int dflt, lo, hi;
} int_key;

#define MAX_VOCAB (1 << 22)
#define MAX_WIDTH 65536
#define MAX_FFN (1 << 20)
#define MAX_HEADS 1024
#define MAX_POS (1 << 30)
#define MAX_IMAGE 16384

/* Gemma3TextConfig keyword defaults. */
static const int_key text_ints[] = {
    {"vocab_size", offsetof(g3_text_config, vocab_size), 262208, 1, MAX_VOCAB},
    {"hidden_size", offsetof(g3_text_config, hidden_size), 2304, 1, MAX_WIDTH},
    {"intermediate_size", offsetof(g3_text_config, intermediate_size), 9216, 1, MAX_FFN},
    {"num_hidden_layers", offsetof(g3_text_config, num_hidden_layers), 26, 1, G3_MAX_LAYERS},
    {"num_attention_heads", offsetof(g3_text_config, num_attention_heads), 8, 1, MAX_HEADS},
    {"num_key_value_heads", offsetof(g3_text_config, num_key_value_heads), 4, 1, MAX_HEADS},
    {"head_dim", offsetof(g3_text_config, head_dim), 256, 2, MAX_HEADS},
    {"sliding_window", offsetof(g3_text_config, sliding_window), 4096, 1, MAX_POS},
    {"max_position_embeddings", offsetof(g3_text_config, max_position_embeddings), 131072, 1,
     MAX_POS},
    {"bos_token_id", offsetof(g3_text_config, bos_token_id), 2, 0, MAX_VOCAB},
    {"pad_token_id", offsetof(g3_text_config, pad_token_id), 0, 0, MAX_VOCAB},
};

/* SiglipVisionConfig keyword defaults. */
static const int_key vision_ints[] = {
    {"hidden_size", offsetof(g3_vision_config, hidden_size), 768, 1, MAX_WIDTH},
    {"intermediate_size", offsetof(g3_vision_config, intermediate_size), 3072, 1, MAX_FFN},
    {"num_hidden_layers", offsetof(g3_vision_config, num_hidden_layers), 12, 1, G3_MAX_LAYERS},
    {"num_attention_heads", offsetof(g3_vision_config, num_attention_heads), 12, 1, MAX_HEADS},
    {"num_channels", offsetof(g3_vision_config, num_channels), 3, 1, 16},
    {"image_size", offsetof(g3_vision_config, image_size), 224, 1, MAX_IMAGE},
    {"patch_size", offsetof(g3_vision_config, patch_size), 16, 1, MAX_IMAGE},
};

static int get_ints(const pctx *p, const sc_json *o, const int_key *keys, size_t n, void *base) {
  for (size_t i = 0; i < n; i++) {
    int *dst = (int *)((char *)base + keys[i].off);
    int rc = get_int(p, o, keys[i].key, keys[i].dflt, keys[i].lo, keys[i].hi, dst);
    if (rc) return rc;
  }
  return 0;
}

/* ==== Text config ==== */

/* eos_token_id: an integer or a list of 1..G3_MAX_EOS integers. */
static int get_eos(const pctx *p, const sc_json *o, g3_text_config *t) {
  const sc_json *v = member(o, "eos_token_id");
  int64_t x;
  if (!v) return 0;
  if (sc_json_is_number(v)) {
    if (sc_json_i64(v, &x) || x < 0 || x >= MAX_VOCAB)
      return fail(p, SC_ERR_FORMAT, "eos_token_id", "expected a token id");
    t->n_eos = 1;
    t->eos_token_ids[0] = (int)x;
    return 0;
  }
  int n = sc_json_size(v);
  if (!sc_json_is_array(v) || n < 1 || n > G3_MAX_EOS)
    return fail(p, SC_ERR_FORMAT, "eos_token_id", "expected a token id or a list of 1 to 8 ids");
  for (int i = 0; i < n; i++) {
    if (sc_json_i64(sc_json_at(v, i), &x) || x < 0 || x >= MAX_VOCAB)
      return fail(p, SC_ERR_FORMAT, "eos_token_id", "expected a list of token ids");
    t->eos_token_ids[i] = (int)x;
  }
  t->n_eos = n;
  return 0;
}

static int parse_rope_type(const pctx *p, const char *key, const char *s, g3_rope_type *out) {
  char msg[256];
  if (!strcmp(s, "default")) {
    *out = G3_ROPE_DEFAULT;
  } else if (!strcmp(s, "linear")) {
    *out = G3_ROPE_LINEAR;
  } else {
    snprintf(msg, sizeof msg, "unsupported RoPE type '%.64s' (saecap implements default and linear)",
             s);
    return fail(p, SC_ERR_FORMAT, key, msg);
  }
  return 0;
}

/* Merges one RoPE object ({rope_type|type, factor, rope_theta}) at dotted
 * path `path` (relative to p->sect) over *r. A linear result needs a factor. */
static int merge_rope(const pctx *p, const sc_json *o, const char *path, g3_rope *r) {
  if (!sc_json_is_object(o)) return fail(p, SC_ERR_FORMAT, path, "expected an object");
  pctx sub = {p->name, NULL};
  char sect[160];
  snprintf(sect, sizeof sect, "%s%s.", p->sect, path);
  sub.sect = sect;
  const char *type;
  int rc = get_str(&sub, o, "rope_type", &type);
  const char *tkey = "rope_type";
  if (!rc && !type) rc = get_str(&sub, o, (tkey = "type"), &type);
  if (!rc && type) rc = parse_rope_type(&sub, tkey, type, &r->type);
  if (!rc) rc = get_pos(&sub, o, "rope_theta", r->theta, 1e12, &r->theta);
  if (!rc) rc = get_pos(&sub, o, "factor", r->factor, 1e6, &r->factor);
  if (!rc && r->type == G3_ROPE_LINEAR && r->factor <= 0.0)
    rc = fail(&sub, SC_ERR_MISSING, "factor", "missing (linear RoPE needs a scaling factor)");
  return rc;
}

/* rope_parameters {full_attention, sliding_attention}, then rope_scaling
 * over full_attention. Flat keys supply the thetas a sub-dict lacks. */
static int parse_rope(const pctx *p, const sc_json *o, g3_text_config *t) {
  g3_rope g = {G3_ROPE_DEFAULT, 0.0, 0.0}, l = {G3_ROPE_DEFAULT, 0.0, 0.0};
  int rc = get_pos(p, o, "rope_theta", 1e6, 1e12, &g.theta);
  if (!rc) rc = get_pos(p, o, "rope_local_base_freq", 1e4, 1e12, &l.theta);
  const sc_json *rp = member(o, "rope_parameters");
  if (!rc && rp) {
    if (!sc_json_is_object(rp)) return fail(p, SC_ERR_FORMAT, "rope_parameters", "expected an object");
    for (const sc_json *e = sc_json_first(rp); e && !rc; e = sc_json_next(e)) {
      const char *k = sc_json_key(e);
      if (!strcmp(k, "full_attention")) rc = merge_rope(p, e, "rope_parameters.full_attention", &g);
      else if (!strcmp(k, "sliding_attention"))
        rc = merge_rope(p, e, "rope_parameters.sliding_attention", &l);
      else
        rc = fail(p, SC_ERR_FORMAT, "rope_parameters",
                  "expected only 'full_attention' and 'sliding_attention' entries");
    }
  }
  const sc_json *rs = member(o, "rope_scaling");
  if (!rc && rs) rc = merge_rope(p, rs, "rope_scaling", &g);
  if (rc) return rc;
  if (g.type == G3_ROPE_DEFAULT) g.factor = 1.0;
  if (l.type == G3_ROPE_DEFAULT) l.factor = 1.0;
  t->rope_global = g;
  t->rope_local = l;
  return 0;
}

/* layer_types (wins) or sliding_window_pattern (default 6): layer i is
 * global iff (i+1) % pattern == 0. */
static int parse_layer_types(const pctx *p, const sc_json *o, g3_text_config *t) {
  const sc_json *lt = member(o, "layer_types");
  int n = t->num_hidden_layers, pattern;
  char msg[160];
  if (!lt) {
    int rc = get_int(p, o, "sliding_window_pattern", 6, 1, 1 << 20, &pattern);
    for (int i = 0; i < n && !rc; i++) t->is_sliding[i] = ((i + 1) % pattern) != 0;
    return rc;
  }
  if (!sc_json_is_array(lt)) return fail(p, SC_ERR_FORMAT, "layer_types", "expected a list");
  if (sc_json_size(lt) != n) {
    snprintf(msg, sizeof msg, "has %d entries, expected num_hidden_layers = %d", sc_json_size(lt), n);
    return fail(p, SC_ERR_FORMAT, "layer_types", msg);
  }
  for (int i = 0; i < n; i++) {
    const char *s = sc_json_str(sc_json_at(lt, i));
    if (s && !strcmp(s, "sliding_attention")) t->is_sliding[i] = 1;
    else if (s && !strcmp(s, "full_attention")) t->is_sliding[i] = 0;
    else {
      snprintf(msg, sizeof msg,
               "entry %d is not \"sliding_attention\" or \"full_attention\"", i);
      return fail(p, SC_ERR_FORMAT, "layer_types", msg);
    }
  }
  return 0;
}

static int parse_text_flags(const pctx *p, const sc_json *o, g3_text_config *t) {
  int rc = get_pos(p, o, "query_pre_attn_scalar", 256.0, 1e9, &t->query_pre_attn_scalar);
  if (!rc) rc = get_pos(p, o, "rms_norm_eps", 1e-6, 0.5, &t->rms_norm_eps);
  if (!rc) rc = get_pos(p, o, "final_logit_softcapping", 0.0, 1e9, &t->final_logit_softcapping);
  if (!rc) rc = get_pos(p, o, "attn_logit_softcapping", 0.0, 1e9, &t->attn_logit_softcapping);
  if (!rc) rc = get_bool(p, o, "tie_word_embeddings", 1, &t->tie_word_embeddings);
  if (!rc) rc = expect_false(p, o, "attention_bias");
  if (!rc) rc = expect_false(p, o, "use_bidirectional_attention");
  if (!rc) rc = expect_str(p, o, "hidden_activation", "gelu_pytorch_tanh");
  return rc;
}

static int check_text(const pctx *p, const g3_text_config *t) {
  char msg[160];
  if (t->num_attention_heads % t->num_key_value_heads) {
    snprintf(msg, sizeof msg, "%d does not divide num_attention_heads = %d",
             t->num_key_value_heads, t->num_attention_heads);
    return fail(p, SC_ERR_FORMAT, "num_key_value_heads", msg);
  }
  if (t->head_dim % 2) return fail(p, SC_ERR_FORMAT, "head_dim", "must be even (rotate-half RoPE)");
  const char *bad = t->bos_token_id >= t->vocab_size ? "bos_token_id"
                    : t->pad_token_id >= t->vocab_size ? "pad_token_id" : NULL;
  for (int i = 0; i < t->n_eos && !bad; i++)
    if (t->eos_token_ids[i] >= t->vocab_size) bad = "eos_token_id";
  if (bad) {
    snprintf(msg, sizeof msg, "id is not below vocab_size = %d", t->vocab_size);
    return fail(p, SC_ERR_RANGE, bad, msg);
  }
  return 0;
}

static int parse_text(const pctx *p, const sc_json *o, g3_text_config *t) {
  int rc = get_ints(p, o, text_ints, sizeof text_ints / sizeof text_ints[0], t);
  t->n_eos = 1;
  t->eos_token_ids[0] = 1;
  if (!rc) rc = get_eos(p, o, t);
  if (!rc) rc = parse_text_flags(p, o, t);
  if (!rc) rc = parse_rope(p, o, t);
  if (!rc) rc = parse_layer_types(p, o, t);
  return rc;
}

/* ==== Vision config and the top level ==== */

static int parse_vision(const pctx *p, const sc_json *o, g3_vision_config *v) {
  int rc = get_ints(p, o, vision_ints, sizeof vision_ints / sizeof vision_ints[0], v);
  if (!rc) rc = get_pos(p, o, "layer_norm_eps", 1e-6, 0.5, &v->layer_norm_eps);
  if (!rc) rc = expect_str(p, o, "hidden_act", "gelu_pytorch_tanh");
  if (!rc) rc = expect_str(p, o, "model_type", "siglip_vision_model");
  if (rc) return rc;
  char msg[160];
  if (v->hidden_size % v->num_attention_heads) {
    snprintf(msg, sizeof msg, "%d does not divide hidden_size = %d", v->num_attention_heads,
             v->hidden_size);
    return fail(p, SC_ERR_FORMAT, "num_attention_heads", msg);
  }
  if (v->num_channels != 3) return fail(p, SC_ERR_FORMAT, "num_channels", "must be 3 (RGB)");
  if (v->image_size % v->patch_size) {
    snprintf(msg, sizeof msg, "%d does not divide image_size = %d", v->patch_size, v->image_size);
    return fail(p, SC_ERR_FORMAT, "patch_size", msg);
  }
  v->patches_per_side = v->image_size / v->patch_size;
  return 0;
}

/* <what>_token_index, or its alias <what>_token_id; both must agree. */
static int get_token_alias(const pctx *p, const sc_json *o, const char *what, int dflt, int *dst) {
  char k1[64], k2[64], msg[160];
  int a = -1, b = -1;
  snprintf(k1, sizeof k1, "%s_token_index", what);
  snprintf(k2, sizeof k2, "%s_token_id", what);
  int rc = get_int(p, o, k1, -1, 0, MAX_VOCAB, &a);
  if (!rc) rc = get_int(p, o, k2, -1, 0, MAX_VOCAB, &b);
  if (rc) return rc;
  if (a >= 0 && b >= 0 && a != b) {
    snprintf(msg, sizeof msg, "%d disagrees with %s = %d", a, k2, b);
    return fail(p, SC_ERR_FORMAT, k1, msg);
  }
  *dst = a >= 0 ? a : b >= 0 ? b : dflt;
  return 0;
}

/* mm_tokens_per_image must be a square whose side divides the patch grid,
 * since the projector average-pools the grid down to it (spec §4.4). */
static int check_mm(const pctx *p, g3_config *c) {
  char msg[192];
  int side = (int)lround(sqrt((double)c->mm_tokens_per_image));
  if (side * side != c->mm_tokens_per_image)
    return fail(p, SC_ERR_FORMAT, "mm_tokens_per_image", "must be a perfect square");
  if (c->vision.patches_per_side % side) {
    snprintf(msg, sizeof msg, "side %d does not divide the %d patches per side of vision_config",
             side, c->vision.patches_per_side);
    return fail(p, SC_ERR_FORMAT, "mm_tokens_per_image", msg);
  }
  c->mm_tokens_per_side = side;
  c->mm_pool_kernel = c->vision.patches_per_side / side;
  const char *bad = c->boi_token_id >= c->text.vocab_size    ? "boi_token_index"
                    : c->eoi_token_id >= c->text.vocab_size   ? "eoi_token_index"
                    : c->image_token_id >= c->text.vocab_size ? "image_token_index" : NULL;
  if (bad) {
    snprintf(msg, sizeof msg, "id is not below text_config.vocab_size = %d", c->text.vocab_size);
    return fail(p, SC_ERR_RANGE, bad, msg);
  }
  return 0;
}

static int parse_top(const pctx *p, const sc_json *root, g3_config *c) {
  int rc = get_int(p, root, "mm_tokens_per_image", 256, 1, 1 << 16, &c->mm_tokens_per_image);
  if (!rc) rc = get_token_alias(p, root, "boi", 255999, &c->boi_token_id);
  if (!rc) rc = get_token_alias(p, root, "eoi", 256000, &c->eoi_token_id);
  if (!rc) rc = get_token_alias(p, root, "image", 262144, &c->image_token_id);
  if (!rc) rc = get_eos(p, root, &c->text); /* the top-level list overrides text_config's */
  return rc;
}

/* A sub-config object into *dst: absent/null means all defaults (`empty`). */
static int sub_config(const pctx *p, const sc_json *root, const char *key, const sc_json *empty,
                      const sc_json **dst) {
  const sc_json *v = member(root, key);
  *dst = v ? v : empty;
  return sc_json_is_object(*dst) ? 0 : fail(p, SC_ERR_FORMAT, key, "expected an object");
}

static int parse_dtype(const pctx *p, const sc_json *o, g3_config *c) {
  const char *s = NULL;
  const char *key = "torch_dtype";
  int rc = get_str(p, o, key, &s);
  if (!rc && !s) rc = get_str(p, o, (key = "dtype"), &s);
  if (rc || !s) return rc;
  if (strlen(s) >= sizeof c->dtype) return fail(p, SC_ERR_FORMAT, key, "unknown dtype");
  strcpy(c->dtype, s);
  return 0;
}

static int parse_multimodal(const pctx *p, const sc_json *root, g3_config *c) {
  sc_json *empty = sc_json_new_object();
  if (!empty) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", p->name);
  pctx tp = {p->name, "text_config."}, vp = {p->name, "vision_config."};
  const sc_json *to, *vo;
  int rc = sub_config(p, root, "text_config", empty, &to);
  if (!rc) rc = sub_config(p, root, "vision_config", empty, &vo);
  if (!rc) rc = parse_text(&tp, to, &c->text);
  if (!rc) rc = expect_str(&tp, to, "model_type", "gemma3_text");
  if (!rc) rc = check_text(&tp, &c->text);
  if (!rc) rc = parse_vision(&vp, vo, &c->vision);
  if (!rc) rc = parse_top(p, root, c);
  if (!rc) rc = check_text(&tp, &c->text); /* again: the top-level eos may have changed */
  if (!rc) rc = check_mm(p, c);
  if (!rc) rc = parse_dtype(p, root, c);
  if (!rc && !c->dtype[0]) rc = parse_dtype(&tp, to, c);
  sc_json_free(empty);
  return rc;
}

static int parse_root(const pctx *p, const sc_json *root, g3_config *c) {
  const char *mt;
  if (!sc_json_is_object(root))
    return sc_error_setc(SC_ERR_FORMAT, "%s: expected a JSON object", p->name);
  int rc = get_str(p, root, "model_type", &mt);
  if (rc) return rc;
  if (!mt) return fail(p, SC_ERR_MISSING, "model_type", "missing (expected \"gemma3\")");
  if (!strcmp(mt, "gemma3")) {
    strcpy(c->model_type, "gemma3");
    c->has_vision = 1;
    return parse_multimodal(p, root, c);
  }
  if (!strcmp(mt, "gemma3_text")) {
    strcpy(c->model_type, "gemma3_text");
    rc = parse_text(p, root, &c->text);
    if (!rc) rc = check_text(p, &c->text);
    if (!rc) rc = parse_dtype(p, root, c);
    return rc;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "'%.64s' is not a Gemma 3 model (expected \"gemma3\")", mt);
  return fail(p, SC_ERR_FORMAT, "model_type", msg);
}

int g3_config_parse(const char *buf, size_t len, const char *name, g3_config *out) {
  sc_json *root;
  memset(out, 0, sizeof *out);
  int rc = sc_json_parse(buf, len, name, &root);
  if (rc) return rc;
  pctx p = {name, ""};
  rc = parse_root(&p, root, out);
  sc_json_free(root);
  return rc;
}

int g3_config_load(const char *model_dir, g3_config *out) {
  char *path = sc_path_join(model_dir, "config.json");
  char *buf;
  size_t len;
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", model_dir);
  int rc = sc_read_file(path, G3_CONFIG_MAX_BYTES, &buf, &len);
  if (!rc) {
    rc = g3_config_parse(buf, len, path, out);
    free(buf);
  }
  free(path);
  return rc;
}

int g3_config_n_global(const g3_text_config *t) {
  int n = 0;
  for (int i = 0; i < t->num_hidden_layers && i < G3_MAX_LAYERS; i++) n += !t->is_sliding[i];
  return n;
}

/* ==== Writing ==== */

/* Builder that remembers any allocation failure instead of checking each add. */
typedef struct jb {
  int bad;
} jb;

static sc_json *add(jb *b, sc_json *o, const char *k, sc_json *v) {
  sc_json *r = sc_json_add(o, k, v);
  if (!r) b->bad = 1;
  return r;
}
static void add_num(jb *b, sc_json *o, const char *k, double v) { add(b, o, k, sc_json_new_num(v)); }
static void add_str(jb *b, sc_json *o, const char *k, const char *s) {
  add(b, o, k, sc_json_new_str(s));
}
static void add_bool(jb *b, sc_json *o, const char *k, int v) { add(b, o, k, sc_json_new_bool(v)); }
/* A number, or null for 0 ("none"). */
static void add_num_or_null(jb *b, sc_json *o, const char *k, double v) {
  add(b, o, k, v > 0.0 ? sc_json_new_num(v) : sc_json_new_null());
}

static sc_json *rope_json(jb *b, const g3_rope *r, int with_theta) {
  sc_json *o = sc_json_new_object();
  if (!o) b->bad = 1;
  add_str(b, o, "rope_type", r->type == G3_ROPE_LINEAR ? "linear" : "default");
  if (r->type == G3_ROPE_LINEAR) add_num(b, o, "factor", r->factor);
  if (with_theta) add_num(b, o, "rope_theta", r->theta);
  return o;
}

static void add_eos(jb *b, sc_json *o, const g3_text_config *t) {
  if (t->n_eos == 1) {
    add_num(b, o, "eos_token_id", t->eos_token_ids[0]);
    return;
  }
  sc_json *a = add(b, o, "eos_token_id", sc_json_new_array());
  for (int i = 0; i < t->n_eos; i++) add(b, a, NULL, sc_json_new_num(t->eos_token_ids[i]));
}

/* The sliding_window_pattern that reproduces is_sliding, or 0 if none. */
static int find_pattern(const g3_text_config *t) {
  int n = t->num_hidden_layers;
  for (int pat = 1; pat <= n + 1; pat++) {
    int ok = 1;
    for (int i = 0; i < n && ok; i++) ok = t->is_sliding[i] == (((i + 1) % pat) != 0);
    if (ok) return pat;
  }
  return 0;
}

static void add_layer_types(jb *b, sc_json *o, const g3_text_config *t) {
  sc_json *a = add(b, o, "layer_types", sc_json_new_array());
  for (int i = 0; i < t->num_hidden_layers; i++)
    add(b, a, NULL, sc_json_new_str(t->is_sliding[i] ? "sliding_attention" : "full_attention"));
}

static void add_rope_and_layers(jb *b, sc_json *o, const g3_text_config *t, g3_config_form form) {
  int pat = find_pattern(t);
  if (form == G3_CONFIG_FORM_NEW || t->rope_local.type != G3_ROPE_DEFAULT) {
    sc_json *rp = add(b, o, "rope_parameters", sc_json_new_object());
    add(b, rp, "full_attention", rope_json(b, &t->rope_global, 1));
    add(b, rp, "sliding_attention", rope_json(b, &t->rope_local, 1));
  } else {
    add_num(b, o, "rope_theta", t->rope_global.theta);
    add_num(b, o, "rope_local_base_freq", t->rope_local.theta);
    add(b, o, "rope_scaling", t->rope_global.type == G3_ROPE_LINEAR
                                  ? rope_json(b, &t->rope_global, 0)
                                  : sc_json_new_null());
  }
  if (form == G3_CONFIG_FORM_NEW || !pat) add_layer_types(b, o, t);
  else add_num(b, o, "sliding_window_pattern", pat);
}

static void add_text_keys(jb *b, sc_json *o, const g3_text_config *t, g3_config_form form) {
  for (size_t i = 0; i < sizeof text_ints / sizeof text_ints[0]; i++)
    add_num(b, o, text_ints[i].key, *(const int *)((const char *)t + text_ints[i].off));
  add_eos(b, o, t);
  add_num(b, o, "query_pre_attn_scalar", t->query_pre_attn_scalar);
  add_num(b, o, "rms_norm_eps", t->rms_norm_eps);
  add_str(b, o, "hidden_activation", "gelu_pytorch_tanh");
  add_bool(b, o, "attention_bias", 0);
  add_num_or_null(b, o, "attn_logit_softcapping", t->attn_logit_softcapping);
  add_num_or_null(b, o, "final_logit_softcapping", t->final_logit_softcapping);
  add_bool(b, o, "tie_word_embeddings", t->tie_word_embeddings);
  add_rope_and_layers(b, o, t, form);
}

static sc_json *vision_json(jb *b, const g3_vision_config *v) {
  sc_json *o = sc_json_new_object();
  if (!o) b->bad = 1;
  add_str(b, o, "model_type", "siglip_vision_model");
  for (size_t i = 0; i < sizeof vision_ints / sizeof vision_ints[0]; i++)
    add_num(b, o, vision_ints[i].key, *(const int *)((const char *)v + vision_ints[i].off));
  add_str(b, o, "hidden_act", "gelu_pytorch_tanh");
  add_num(b, o, "layer_norm_eps", v->layer_norm_eps);
  add_num(b, o, "attention_dropout", 0.0);
  add_bool(b, o, "vision_use_head", 0);
  return o;
}

static void add_arch(jb *b, sc_json *o, const char *arch) {
  sc_json *a = add(b, o, "architectures", sc_json_new_array());
  add(b, a, NULL, sc_json_new_str(arch));
}

static void build_multimodal(jb *b, sc_json *root, const g3_config *c, g3_config_form form) {
  add_arch(b, root, "Gemma3ForConditionalGeneration");
  add_str(b, root, "model_type", "gemma3");
  add_num(b, root, "boi_token_index", c->boi_token_id);
  add_num(b, root, "eoi_token_index", c->eoi_token_id);
  add_num(b, root, "image_token_index", c->image_token_id);
  add_num(b, root, "mm_tokens_per_image", c->mm_tokens_per_image);
  add_eos(b, root, &c->text);
  sc_json *t = add(b, root, "text_config", sc_json_new_object());
  add_str(b, t, "model_type", "gemma3_text");
  g3_text_config one = c->text; /* text_config keeps the first eos; the list is top level */
  one.n_eos = 1;
  add_text_keys(b, t, &one, form);
  add(b, root, "vision_config", vision_json(b, &c->vision));
}

char *g3_config_to_json(const g3_config *c, g3_config_form form) {
  jb b = {0};
  sc_json *root = sc_json_new_object();
  if (!root) b.bad = 1;
  if (c->has_vision) {
    build_multimodal(&b, root, c, form);
  } else {
    add_arch(&b, root, "Gemma3ForCausalLM");
    add_str(&b, root, "model_type", "gemma3_text");
    add_text_keys(&b, root, &c->text, form);
  }
  if (c->dtype[0]) add_str(&b, root, "torch_dtype", c->dtype);
  char *text = b.bad ? NULL : sc_json_print(root, 1);
  sc_json_free(root);
  if (!text) sc_error_setc(SC_ERR_NOMEM, "config.json: out of memory");
  return text;
}
