/* decoder.c: the Gemma-3 text decoder: weight loading and checking, the KV
 * cache, and the forward pass (see decoder.h; research/gemma3_spec.md §2,
 * §3 and §7 give the formulas with their Hugging Face sources). */
#include "model/decoder.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/error.h"

/* ==== Weight table ==== */

/* Dimensions a tensor's shape is checked against. */
enum { DIM_NONE = 0, DIM_HIDDEN, DIM_Q, DIM_KV, DIM_FF, DIM_HEAD };

typedef struct layer_tensor {
  const char *suffix; /* after "<prefix>layers.N." */
  int rows, cols;     /* DIM_*; cols DIM_NONE = a norm vector */
  size_t off;         /* of its sc_mat or float* in g3_layer */
} layer_tensor;

static const layer_tensor LAYER_TENSORS[] = {
    {"input_layernorm.weight", DIM_HIDDEN, DIM_NONE, offsetof(g3_layer, input_norm)},
    {"self_attn.q_proj.weight", DIM_Q, DIM_HIDDEN, offsetof(g3_layer, q_proj)},
    {"self_attn.k_proj.weight", DIM_KV, DIM_HIDDEN, offsetof(g3_layer, k_proj)},
    {"self_attn.v_proj.weight", DIM_KV, DIM_HIDDEN, offsetof(g3_layer, v_proj)},
    {"self_attn.o_proj.weight", DIM_HIDDEN, DIM_Q, offsetof(g3_layer, o_proj)},
    {"self_attn.q_norm.weight", DIM_HEAD, DIM_NONE, offsetof(g3_layer, q_norm)},
    {"self_attn.k_norm.weight", DIM_HEAD, DIM_NONE, offsetof(g3_layer, k_norm)},
    {"post_attention_layernorm.weight", DIM_HIDDEN, DIM_NONE, offsetof(g3_layer, post_attn_norm)},
    {"pre_feedforward_layernorm.weight", DIM_HIDDEN, DIM_NONE, offsetof(g3_layer, pre_ff_norm)},
    {"mlp.gate_proj.weight", DIM_FF, DIM_HIDDEN, offsetof(g3_layer, gate_proj)},
    {"mlp.up_proj.weight", DIM_FF, DIM_HIDDEN, offsetof(g3_layer, up_proj)},
    {"mlp.down_proj.weight", DIM_HIDDEN, DIM_FF, offsetof(g3_layer, down_proj)},
    {"post_feedforward_layernorm.weight", DIM_HIDDEN, DIM_NONE, offsetof(g3_layer, post_ff_norm)},
};
#define N_LAYER_TENSORS (sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0])

/* "model." is the prefix of text-only Gemma3ForCausalLM files; it is only
 * tried when neither multimodal prefix holds an embedding. */
static const char *const TEXT_PREFIXES[] = {G3_PREFIX_TEXT_OLD, G3_PREFIX_TEXT_NEW, "model."};
static const char *const LM_HEAD_NAMES[] = {"lm_head.weight", "language_model.lm_head.weight"};

static int64_t dim_value(const g3_text_config *t, int dim) {
  switch (dim) {
  case DIM_HIDDEN: return t->hidden_size;
  case DIM_Q: return (int64_t)t->num_attention_heads * t->head_dim;
  case DIM_KV: return (int64_t)t->num_key_value_heads * t->head_dim;
  case DIM_FF: return t->intermediate_size;
  case DIM_HEAD: return t->head_dim;
  default: return 0;
  }
}

/* ==== Loading ==== */

static const char *shard_path(const g3_model *m, const st_tensor *t) {
  return st_file_path(st_checkpoint_file(m->ckpt, t->shard));
}

/* Finds `name` and checks its dtype and shape [rows] (cols == 0) or
 * [rows, cols]. */
static int find_checked(const g3_model *m, const char *dir, const char *name, int64_t rows,
                        int64_t cols, const st_tensor **out) {
  const st_tensor *t = st_checkpoint_find(m->ckpt, name);
  if (!t) return sc_error_setc(SC_ERR_MISSING, "%s: tensor '%s' is missing", dir, name);
  if (t->dtype != SC_DTYPE_BF16 && t->dtype != SC_DTYPE_F16 && t->dtype != SC_DTYPE_F32)
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected BF16, F16 or F32",
                         shard_path(m, t), name, sc_dtype_name(t->dtype));
  int64_t want[2] = {rows, cols};
  int n_dims = cols ? 2 : 1;
  if (t->n_dims != n_dims || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
    char got[128], exp[64];
    st_shape_str(got, sizeof got, t->n_dims, t->shape);
    st_shape_str(exp, sizeof exp, n_dims, want);
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                         shard_path(m, t), name, got, exp);
  }
  *out = t;
  return 0;
}

static int load_mat(const g3_model *m, const char *dir, const char *name, int64_t rows,
                    int64_t cols, sc_mat *out) {
  const st_tensor *t;
  int rc = find_checked(m, dir, name, rows, cols, &t);
  if (rc) return rc;
  *out = (sc_mat){t->data, t->dtype, rows, cols};
  return 0;
}

/* A norm vector, widened to a malloc'd f32 array. */
static int load_vec(const g3_model *m, const char *dir, const char *name, int64_t n, float **out) {
  const st_tensor *t;
  int rc = find_checked(m, dir, name, n, 0, &t);
  if (rc) return rc;
  if (!(*out = malloc((size_t)n * sizeof **out)))
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  sc_mat row = {t->data, t->dtype, 1, n};
  sc_mat_row(*out, &row, 0);
  return 0;
}

static int load_layer(g3_model *m, const char *dir, int i) {
  const g3_text_config *t = &m->cfg.text;
  char name[256];
  for (size_t k = 0; k < N_LAYER_TENSORS; k++) {
    const layer_tensor *lt = &LAYER_TENSORS[k];
    void *dst = (char *)&m->layers[i] + lt->off;
    int64_t rows = dim_value(t, lt->rows), cols = dim_value(t, lt->cols);
    snprintf(name, sizeof name, "%slayers.%d.%s", m->prefix, i, lt->suffix);
    int rc = cols ? load_mat(m, dir, name, rows, cols, dst) : load_vec(m, dir, name, rows, dst);
    if (rc) return rc;
  }
  return 0;
}

/* The text prefix whose embedding exists; both multimodal ones is an error. */
static int pick_prefix(g3_model *m, const char *dir) {
  char name[128];
  int found = -1;
  for (int i = 0; i < 3 && found < 2; i++) {
    snprintf(name, sizeof name, "%sembed_tokens.weight", TEXT_PREFIXES[i]);
    if (!st_checkpoint_find(m->ckpt, name)) continue;
    if (found >= 0)
      return sc_error_setc(SC_ERR_FORMAT, "%s: both text prefixes '%s' and '%s' are present", dir,
                           TEXT_PREFIXES[found], TEXT_PREFIXES[i]);
    found = i;
  }
  if (found < 0)
    return sc_error_setc(SC_ERR_MISSING, "%s: tensor '%sembed_tokens.weight' is missing", dir,
                         G3_PREFIX_TEXT_OLD);
  m->prefix = TEXT_PREFIXES[found];
  return 0;
}

/* 1 if rest (a name after the text prefix) is a tensor the decoder uses. */
static int known_suffix(const g3_text_config *t, const char *rest) {
  if (!strcmp(rest, "embed_tokens.weight") || !strcmp(rest, "norm.weight")) return 1;
  if (strncmp(rest, "layers.", 7) || rest[7] < '0' || rest[7] > '9') return 0;
  char *end;
  long i = strtol(rest + 7, &end, 10);
  if (end == rest + 7 || *end != '.' || i < 0 || i >= t->num_hidden_layers) return 0;
  if (rest[7] == '0' && end != rest + 8) return 0; /* "layers.01." */
  for (size_t k = 0; k < N_LAYER_TENSORS; k++)
    if (!strcmp(end + 1, LAYER_TENSORS[k].suffix)) return 1;
  return 0;
}

static int check_unknown(const g3_model *m) {
  size_t plen = strlen(m->prefix);
  for (int i = 0; i < st_checkpoint_n_tensors(m->ckpt); i++) {
    const st_tensor *t = st_checkpoint_tensor(m->ckpt, i);
    if (strncmp(t->name, m->prefix, plen) || known_suffix(&m->cfg.text, t->name + plen)) continue;
    /* "model." also starts the multimodal parts of transformers >= 4.52 saves. */
    if (!strncmp(t->name, G3_PREFIX_VISION_NEW, strlen(G3_PREFIX_VISION_NEW)) ||
        !strncmp(t->name, G3_PREFIX_PROJ_NEW, strlen(G3_PREFIX_PROJ_NEW)))
      continue;
    return sc_error_setc(SC_ERR_FORMAT, "%s: unknown tensor '%s' under the text prefix '%s'",
                         shard_path(m, t), t->name, m->prefix);
  }
  return 0;
}

/* Embedding, final norm and LM head (a separate one if the file has it,
 * else tied to the embedding, spec §2 loader rule). */
static int load_globals(g3_model *m, const char *dir) {
  const g3_text_config *t = &m->cfg.text;
  char name[128];
  snprintf(name, sizeof name, "%sembed_tokens.weight", m->prefix);
  int rc = load_mat(m, dir, name, t->vocab_size, t->hidden_size, &m->embed);
  snprintf(name, sizeof name, "%snorm.weight", m->prefix);
  if (!rc) rc = load_vec(m, dir, name, t->hidden_size, &m->final_norm);
  m->lm_head = m->embed;
  for (int i = 0; i < 2 && !rc; i++)
    if (st_checkpoint_find(m->ckpt, LM_HEAD_NAMES[i]))
      return load_mat(m, dir, LM_HEAD_NAMES[i], t->vocab_size, t->hidden_size, &m->lm_head);
  if (!rc && !t->tie_word_embeddings)
    return sc_error_setc(SC_ERR_MISSING, "%s: tensor 'lm_head.weight' is missing (embeddings are not tied)", dir);
  return rc;
}

/* HF Gemma3TextScaledWordEmbedding: sqrt(hidden) as a float32 tensor, cast
 * to the weight dtype before multiplying (bf16: 50.596 -> 50.5 at 2560). */
static float embed_scale(sc_dtype weight_dtype, int hidden) {
  float s = sqrtf((float)hidden);
  if (weight_dtype == SC_DTYPE_BF16) return sc_f32_from_bf16(sc_bf16_from_f32(s));
  if (weight_dtype == SC_DTYPE_F16) return sc_f32_from_f16(sc_f16_from_f32(s));
  return s;
}

static int init_rope(g3_model *m) {
  const g3_text_config *t = &m->cfg.text;
  int half = t->head_dim / 2;
  m->inv_freq_local = malloc((size_t)half * sizeof(float));
  m->inv_freq_global = malloc((size_t)half * sizeof(float));
  if (!m->inv_freq_local || !m->inv_freq_global)
    return sc_error_setc(SC_ERR_NOMEM, "rope tables: out of memory");
  const g3_rope *l = &t->rope_local, *g = &t->rope_global;
  sc_rope_inv_freq(m->inv_freq_local, half, l->theta, l->type == G3_ROPE_LINEAR ? l->factor : 1.0);
  sc_rope_inv_freq(m->inv_freq_global, half, g->theta, g->type == G3_ROPE_LINEAR ? g->factor : 1.0);
  return 0;
}

int g3_model_load(g3_model **out, const char *dir) {
  *out = NULL;
  g3_model *m = calloc(1, sizeof *m);
  if (!m) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  int rc = g3_config_load(dir, &m->cfg);
  if (!rc) rc = st_checkpoint_open(&m->ckpt, dir);
  if (!rc) rc = pick_prefix(m, dir);
  if (!rc && !(m->layers = calloc((size_t)m->cfg.text.num_hidden_layers, sizeof *m->layers)))
    rc = sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  if (!rc) rc = load_globals(m, dir);
  for (int i = 0; !rc && i < m->cfg.text.num_hidden_layers; i++) rc = load_layer(m, dir, i);
  if (!rc) rc = check_unknown(m);
  if (!rc) rc = init_rope(m);
  if (rc) {
    g3_model_free(m);
    return rc;
  }
  m->embed_scale = embed_scale(m->embed.dtype, m->cfg.text.hidden_size);
  m->precision = SC_PRECISION_F32;
  *out = m;
  return 0;
}

void g3_model_free(g3_model *m) {
  if (!m) return;
  for (int i = 0; m->layers && i < m->cfg.text.num_hidden_layers; i++) {
    g3_layer *l = &m->layers[i];
    free(l->input_norm);
    free(l->q_norm);
    free(l->k_norm);
    free(l->post_attn_norm);
    free(l->pre_ff_norm);
    free(l->post_ff_norm);
  }
  free(m->layers);
  free(m->final_norm);
  free(m->inv_freq_local);
  free(m->inv_freq_global);
  st_checkpoint_free(m->ckpt);
  free(m);
}

/* ==== State: KV cache + scratch ==== */

struct g3_state {
  int n_layers;
  int64_t cap;      /* tokens the sequence may hold */
  int64_t n_pos;    /* tokens cached so far */
  int incomplete;   /* a forward stopped early or failed: reset first */
  int64_t kv_width; /* n_kv_heads · head_dim */
  int64_t *slots;   /* (n_layers) cached positions: cap, or sliding_window on sliding layers */
  float **k, **v;   /* (n_layers) each (slots, kv_width); position p in slot p % slots */
  sc_arena arena;   /* per-forward scratch, grown on demand */
  sc_precision precision; /* GEMM mode of this state's forwards */
  sc_gemm *gemm;    /* bf16 GEMM context, created when BF16 is first set; NULL before */
};

int g3_state_create(g3_state **out, const g3_model *m, int64_t max_tokens) {
  const g3_text_config *t = &m->cfg.text;
  *out = NULL;
  if (max_tokens < 1 || max_tokens > G3_MAX_TOKENS)
    return sc_error_setc(SC_ERR_ARG, "state: %lld tokens is out of range [1, %d]",
                         (long long)max_tokens, G3_MAX_TOKENS);
  g3_state *s = calloc(1, sizeof *s);
  int n = t->num_hidden_layers, ok = s != NULL;
  if (ok) {
    s->n_layers = n;
    s->cap = max_tokens;
    s->kv_width = (int64_t)t->num_key_value_heads * t->head_dim;
    s->slots = calloc((size_t)n, sizeof *s->slots);
    s->k = calloc((size_t)n, sizeof *s->k);
    s->v = calloc((size_t)n, sizeof *s->v);
    ok = s->slots && s->k && s->v;
  }
  for (int i = 0; ok && i < n; i++) {
    int64_t slots = t->is_sliding[i] && t->sliding_window < max_tokens ? t->sliding_window : max_tokens;
    size_t bytes = (size_t)slots * (size_t)s->kv_width * sizeof(float);
    s->slots[i] = slots;
    ok = (s->k[i] = malloc(bytes)) && (s->v[i] = malloc(bytes));
  }
  if (!ok) {
    g3_state_free(s);
    return sc_error_setc(SC_ERR_NOMEM, "state: out of memory for a %lld-token KV cache",
                         (long long)max_tokens);
  }
  int rc = g3_state_set_precision(s, m->precision);
  if (rc) {
    g3_state_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int g3_state_set_precision(g3_state *s, sc_precision p) {
  if (p != SC_PRECISION_F32 && p != SC_PRECISION_BF16)
    return sc_error_setc(SC_ERR_ARG, "state: unknown precision %d", (int)p);
  /* Threads 0: the GEMM follows --threads (sc_kernels_set_threads). */
  if (p == SC_PRECISION_BF16 && !s->gemm) {
    int rc = sc_gemm_create(&s->gemm, SC_GEMM_BACKEND_AUTO, 0);
    if (rc) return rc;
  }
  s->precision = p;
  return 0;
}

sc_precision g3_state_precision(const g3_state *s) { return s->precision; }

sc_gemm *g3_state_gemm(g3_state *s) { return s->gemm; }

void g3_state_reset(g3_state *s) {
  s->n_pos = 0;
  s->incomplete = 0;
}

int64_t g3_state_n_pos(const g3_state *s) { return s->n_pos; }

void g3_state_free(g3_state *s) {
  if (!s) return;
  for (int i = 0; i < s->n_layers; i++) {
    if (s->k) free(s->k[i]);
    if (s->v) free(s->v[i]);
  }
  free(s->k);
  free(s->v);
  free(s->slots);
  sc_arena_free(&s->arena);
  sc_gemm_free(s->gemm);
  free(s);
}

/* Appends the n new rows of layer i; a ring keeps only its last slots. */
static void kv_append(g3_state *s, int i, const float *k, const float *v, int64_t n) {
  int64_t slots = s->slots[i], first = n > slots ? n - slots : 0;
  size_t row = (size_t)s->kv_width * sizeof(float);
  for (int64_t t = first; t < n; t++) {
    size_t slot = (size_t)((s->n_pos + t) % slots);
    memcpy(s->k[i] + slot * (size_t)s->kv_width, k + (size_t)t * (size_t)s->kv_width, row);
    memcpy(s->v[i] + slot * (size_t)s->kv_width, v + (size_t)t * (size_t)s->kv_width, row);
  }
}

/* ==== Forward ==== */

/* Per-forward scratch, carved from the state's arena. */
typedef struct fwd_bufs {
  float *x;     /* (n, hidden) the residual stream */
  float *a;     /* (n, hidden) normed input of a block */
  float *br;    /* (n, hidden) a branch output */
  float *q, *o; /* (n, n_heads·head_dim) queries, attention output */
  float *k, *v; /* (n, kv_width) new keys and values */
  float *gate, *up;            /* (n, intermediate) */
  float *cos_t[2], *sin_t[2];  /* [global, sliding] (n, head_dim/2) */
  int32_t *pos;                /* (n) positions */
  float *attn_scratch;         /* sc_attention_scratch */
  float *gemm_scratch;         /* the largest sc_linear_scratch of the matrices */
} fwd_bufs;

/* Floats of each buffer, in fwd_bufs order (the pos array counts as n). */
static void buf_sizes(const g3_model *m, const g3_state *s, int64_t n, size_t sz[12]) {
  const g3_text_config *t = &m->cfg.text;
  size_t d = (size_t)t->hidden_size, qw = (size_t)dim_value(t, DIM_Q), un = (size_t)n;
  /* The GEMM scratch must fit every matrix's panel: panel rows are rounded
   * per column count, so the widest matrix is not always the largest
   * (4B: 400 x 2560 > 96 x 10240 floats). */
  size_t gemm = sc_linear_scratch(t->hidden_size);
  if (sc_linear_scratch((int64_t)qw) > gemm) gemm = sc_linear_scratch((int64_t)qw);
  if (sc_linear_scratch(t->intermediate_size) > gemm) gemm = sc_linear_scratch(t->intermediate_size);
  sz[0] = sz[1] = sz[2] = un * d;
  sz[3] = sz[4] = un * qw;
  sz[5] = sz[6] = un * (size_t)s->kv_width;
  sz[7] = sz[8] = un * (size_t)t->intermediate_size;
  sz[9] = 4 * un * (size_t)(t->head_dim / 2) + un; /* 4 rope tables + positions */
  /* The most keys any layer sees: every past position (global layers). */
  sc_attn widest = {.n_heads = t->num_attention_heads, .n_kv_heads = t->num_key_value_heads,
                    .head_dim = t->head_dim, .pos0 = s->n_pos, .past_lo = 0};
  sz[10] = sc_attention_scratch(&widest, n);
  sz[11] = gemm;
}

static int alloc_bufs(const g3_model *m, g3_state *s, int64_t n, fwd_bufs *b) {
  size_t sz[12], total = 0, half = (size_t)n * (size_t)(m->cfg.text.head_dim / 2);
  buf_sizes(m, s, n, sz);
  for (int i = 0; i < 12; i++) total += sz[i] * sizeof(float) + 64;
  if (total > s->arena.cap) {
    sc_arena_free(&s->arena);
    if (sc_arena_init(&s->arena, total))
      return sc_error_setc(SC_ERR_NOMEM, "forward: out of memory for %zu bytes of scratch", total);
  }
  sc_arena_reset(&s->arena);
  float *p[12];
  for (int i = 0; i < 12; i++)
    if (!(p[i] = sc_arena_floats(&s->arena, sz[i]))) return SC_ERR_NOMEM; /* message set */
  *b = (fwd_bufs){p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                  {p[9], p[9] + half}, {p[9] + 2 * half, p[9] + 3 * half}, (int32_t *)(p[9] + 4 * half),
                  p[10], p[11]};
  return 0;
}

/* h0[t] = E[id_t] · s (spec §3.1), or, at image positions when the caller
 * gives input embeddings, that row unscaled (HF Gemma3Model.forward
 * masked_scatter puts the projector output in after the scaled lookup). */
static void embed_tokens(const g3_model *m, const g3_forward_io *io, float *x) {
  int64_t d = m->cfg.text.hidden_size;
  for (int64_t t = 0; t < io->n; t++) {
    float *row = x + t * d;
    if (io->embeds_in && io->image_group && io->image_group[t] >= 0) {
      memcpy(row, io->embeds_in + t * d, (size_t)d * sizeof *row);
      continue;
    }
    sc_mat_row(row, &m->embed, io->ids[t]);
    for (int64_t i = 0; i < d; i++) row[i] *= m->embed_scale;
  }
}

static void rope_tables(const g3_model *m, const g3_state *s, int64_t n, fwd_bufs *b) {
  int half = m->cfg.text.head_dim / 2;
  for (int64_t t = 0; t < n; t++) b->pos[t] = (int32_t)(s->n_pos + t);
  sc_rope_table(b->cos_t[0], b->sin_t[0], b->pos, n, m->inv_freq_global, half);
  sc_rope_table(b->cos_t[1], b->sin_t[1], b->pos, n, m->inv_freq_local, half);
}

/* Attention geometry of layer i for this call: the ring of past keys and,
 * on sliding layers, the window (spec §3.3). */
static sc_attn attn_args(const g3_model *m, const g3_state *s, int i, const int32_t *group) {
  const g3_text_config *t = &m->cfg.text;
  int64_t lo = s->n_pos - s->slots[i];
  sc_attn a = {t->num_attention_heads, t->num_key_value_heads, t->head_dim,
               (float)(1.0 / sqrt(t->query_pre_attn_scalar)), t->is_sliding[i] ? t->sliding_window : 0,
               s->n_pos, s->k[i], s->v[i], s->slots[i], lo > 0 ? lo : 0, group, s->precision};
  return a;
}

#define TRY(call)         \
  do {                    \
    int rc_ = (call);     \
    if (rc_) return rc_;  \
  } while (0)

/* y = x · Wᵀ in the state's precision. */
static int linear(g3_state *s, float *y, const float *x, const sc_mat *w, int64_t n, fwd_bufs *b) {
  return sc_linear_gemm(y, x, w, n, s->precision, b->gemm_scratch, s->gemm);
}

/* bf16 mode: q, k and v are operands of the q·kᵀ and P·v GEMMs; rounding
 * them here (after the norms and RoPE, which stay f32) also rounds what
 * the cache keeps, as HF's bf16 cache does. */
static void round_qkv(const g3_model *m, fwd_bufs *b, int64_t n, int64_t kv_width) {
  sc_round_bf16(b->q, n * m->cfg.text.num_attention_heads * m->cfg.text.head_dim);
  sc_round_bf16(b->k, n * kv_width);
  sc_round_bf16(b->v, n * kv_width);
}

/* Self-attention block: b->x += RMS(o_proj(attn(RMS(x)))) (spec §3.2 1-7). */
static int attention_block(const g3_model *m, g3_state *s, int i, fwd_bufs *b, int64_t n,
                           const int32_t *group) {
  const g3_text_config *t = &m->cfg.text;
  const g3_layer *w = &m->layers[i];
  int64_t d = t->hidden_size, hd = t->head_dim;
  int sl = t->is_sliding[i] != 0;
  float eps = (float)t->rms_norm_eps;
  sc_rmsnorm(b->a, b->x, w->input_norm, n, d, eps);
  TRY(linear(s, b->q, b->a, &w->q_proj, n, b));
  TRY(linear(s, b->k, b->a, &w->k_proj, n, b));
  TRY(linear(s, b->v, b->a, &w->v_proj, n, b));
  sc_rmsnorm(b->q, b->q, w->q_norm, n * t->num_attention_heads, hd, eps);
  sc_rmsnorm(b->k, b->k, w->k_norm, n * t->num_key_value_heads, hd, eps);
  sc_rope(b->q, b->cos_t[sl], b->sin_t[sl], n, t->num_attention_heads, (int)hd / 2);
  sc_rope(b->k, b->cos_t[sl], b->sin_t[sl], n, t->num_key_value_heads, (int)hd / 2);
  if (s->precision == SC_PRECISION_BF16) round_qkv(m, b, n, s->kv_width);
  sc_attn a = attn_args(m, s, i, group);
  sc_attention(b->o, b->q, b->k, b->v, n, &a, b->attn_scratch);
  kv_append(s, i, b->k, b->v, n);
  TRY(linear(s, b->br, b->o, &w->o_proj, n, b));
  sc_rmsnorm(b->br, b->br, w->post_attn_norm, n, d, eps);
  sc_add(b->x, b->br, n, d);
  return 0;
}

/* Gated MLP block: b->x += RMS(down(gelu(gate(m)) · up(m))), m = RMS(x)
 * (spec §3.2 8-9). */
static int mlp_block(const g3_model *m, g3_state *s, int i, fwd_bufs *b, int64_t n) {
  const g3_text_config *t = &m->cfg.text;
  const g3_layer *w = &m->layers[i];
  int64_t d = t->hidden_size;
  float eps = (float)t->rms_norm_eps;
  sc_rmsnorm(b->a, b->x, w->pre_ff_norm, n, d, eps);
  TRY(linear(s, b->gate, b->a, &w->gate_proj, n, b));
  TRY(linear(s, b->up, b->a, &w->up_proj, n, b));
  sc_gelu_tanh_mul(b->gate, b->up, n * t->intermediate_size);
  TRY(linear(s, b->br, b->gate, &w->down_proj, n, b));
  sc_rmsnorm(b->br, b->br, w->post_ff_norm, n, d, eps);
  sc_add(b->x, b->br, n, d);
  return 0;
}

static int check_io(const g3_model *m, const g3_state *s, const g3_forward_io *io) {
  int32_t v = m->cfg.text.vocab_size;
  if (s->incomplete)
    return sc_error_setc(SC_ERR_ARG, "forward: the state is incomplete (an earlier forward stopped "
                                     "early or failed); reset it first");
  if (io->n < 1) return sc_error_setc(SC_ERR_ARG, "forward: no tokens given");
  if (io->n > s->cap - s->n_pos)
    return sc_error_setc(SC_ERR_RANGE, "forward: %lld + %lld tokens exceed the state's capacity %lld",
                         (long long)s->n_pos, (long long)io->n, (long long)s->cap);
  for (int64_t t = 0; t < io->n; t++)
    if (io->ids[t] < 0 || io->ids[t] >= v)
      return sc_error_setc(SC_ERR_RANGE, "forward: token id %ld at position %lld is out of range [0, %d)",
                           (long)io->ids[t], (long long)(s->n_pos + t), (int)v);
  return 0;
}

/* Last layer to run: all of them when the final norm or logits are wanted,
 * else the deepest captured one (-1: embeddings only). */
static int last_layer(const g3_model *m, const g3_forward_io *io) {
  int n = m->cfg.text.num_hidden_layers;
  if (io->final_norm || io->logits) return n - 1;
  int last = -1;
  for (int i = 0; io->resid_post && i < n; i++)
    if (io->resid_post[i]) last = i;
  return last;
}

/* Final norm and the logits of the wanted rows. */
static int head(const g3_model *m, g3_state *s, const g3_forward_io *io, fwd_bufs *b) {
  int64_t d = m->cfg.text.hidden_size, n = io->n;
  sc_rmsnorm(b->a, b->x, m->final_norm, n, d, (float)m->cfg.text.rms_norm_eps);
  if (io->final_norm) memcpy(io->final_norm, b->a, (size_t)(n * d) * sizeof(float));
  if (!io->logits) return 0;
  const float *y = io->logits_last ? b->a + (n - 1) * d : b->a;
  return linear(s, io->logits, y, &m->lm_head, io->logits_last ? 1 : n, b);
}

static int run_layers(const g3_model *m, g3_state *s, const g3_forward_io *io, fwd_bufs *b, int last) {
  int64_t n = io->n, d = m->cfg.text.hidden_size;
  for (int i = 0; i <= last; i++) {
    TRY(attention_block(m, s, i, b, n, io->image_group));
    TRY(mlp_block(m, s, i, b, n));
    if (io->edit) TRY(io->edit(io->edit_user, i, b->x, b->pos, n, (int)d));
    if (io->resid_post && io->resid_post[i])
      memcpy(io->resid_post[i], b->x, (size_t)(n * d) * sizeof(float));
  }
  return 0;
}

int g3_forward(const g3_model *m, g3_state *s, const g3_forward_io *io) {
  int64_t n = io->n, d = m->cfg.text.hidden_size;
  fwd_bufs b = {0};
  TRY(check_io(m, s, io));
  int last = last_layer(m, io);
  s->incomplete = 1; /* until the whole call has succeeded */
  TRY(alloc_bufs(m, s, n, &b));
  embed_tokens(m, io, b.x);
  if (io->embeds) memcpy(io->embeds, b.x, (size_t)(n * d) * sizeof(float));
  rope_tables(m, s, n, &b);
  TRY(run_layers(m, s, io, &b, last));
  if (last < m->cfg.text.num_hidden_layers - 1) return 0; /* stopped early: stays incomplete */
  TRY(head(m, s, io, &b));
  s->n_pos += n;
  s->incomplete = 0;
  return 0;
}
