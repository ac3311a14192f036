/* vision.c: SigLIP vision tower + Gemma-3 multimodal projector (see
 * vision.h; research/gemma3_spec.md §4.2-4.4, HF modeling_siglip.py
 * SiglipVisionEmbeddings / SiglipEncoderLayer / SiglipAttention and
 * modeling_gemma3.py Gemma3MultiModalProjector). */
#include "model/vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/vkernels.h"

/* Activations of one image are refused beyond this many floats per buffer
 * (16 GiB): far above the real model (4096 × 4304), far below overflow. */
#define VISION_MAX_FLOATS ((size_t)1 << 32)
/* Sub-buffers start on 64-byte boundaries (sc_linear's scratch contract). */
#define VISION_ALIGN_FLOATS 16

static const char *const VISION_PREFIXES[] = {G3_PREFIX_VISION_OLD, G3_PREFIX_VISION_NEW};
static const char *const PROJ_PREFIXES[] = {G3_PREFIX_PROJ_OLD, G3_PREFIX_PROJ_NEW};

/* ==== Tensor lookup ==== */

typedef struct loader {
  const st_checkpoint *ck;
  const char *dir;
  g3_vision *v;
} loader;

static const char *shard_path(const loader *l, const st_tensor *t) {
  return st_file_path(st_checkpoint_file(l->ck, t->shard));
}

/* Finds prefix+name and checks its dtype and shape want[n_dims]. */
static int find_checked(const loader *l, const char *prefix, const char *name, int n_dims,
                        const int64_t *want, const st_tensor **out) {
  char full[256];
  snprintf(full, sizeof full, "%s%s", prefix, name);
  const st_tensor *t = st_checkpoint_find(l->ck, full);
  if (!t) return sc_error_setc(SC_ERR_MISSING, "%s: tensor '%s' is missing", l->dir, full);
  if (t->dtype != SC_DTYPE_BF16 && t->dtype != SC_DTYPE_F16 && t->dtype != SC_DTYPE_F32)
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected BF16, F16 or F32",
                         shard_path(l, t), full, sc_dtype_name(t->dtype));
  int ok = t->n_dims == n_dims;
  for (int i = 0; ok && i < n_dims; i++) ok = t->shape[i] == want[i];
  if (!ok) {
    char got[160], exp[160];
    st_shape_str(got, sizeof got, t->n_dims, t->shape);
    st_shape_str(exp, sizeof exp, n_dims, want);
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                         shard_path(l, t), full, got, exp);
  }
  *out = t;
  return 0;
}

/* A matrix view [rows, cols] of a tensor of shape want[n_dims] (a 4-D
 * Conv2d weight is viewed as [out, in·kh·kw]: its memory order). */
static int load_mat(const loader *l, const char *prefix, const char *name, int n_dims,
                    const int64_t *want, sc_mat *out) {
  const st_tensor *t;
  int rc = find_checked(l, prefix, name, n_dims, want, &t);
  if (rc) return rc;
  *out = (sc_mat){t->data, t->dtype, want[0], t->n_elements / want[0]};
  return 0;
}

static int load_mat2(const loader *l, const char *prefix, const char *name, int64_t rows,
                     int64_t cols, sc_mat *out) {
  int64_t want[2] = {rows, cols};
  return load_mat(l, prefix, name, 2, want, out);
}

/* A vector [n] widened to a malloc'd f32 array. */
static int load_vec(const loader *l, const char *prefix, const char *name, int64_t n, float **out) {
  const st_tensor *t;
  int rc = find_checked(l, prefix, name, 1, &n, &t);
  if (rc) return rc;
  if (!(*out = malloc((size_t)n * sizeof **out)))
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  sc_mat row = {t->data, t->dtype, 1, n};
  sc_mat_row(*out, &row, 0);
  return 0;
}

/* ==== Prefixes and unknown tensors ==== */

/* The prefix p[0] or p[1] under which `probe` exists; both is an error;
 * neither reports the old-prefix name as missing. */
static int pick_prefix(const loader *l, const char *const *p, const char *probe, const char *what,
                       const char **out) {
  char a[256], b[256];
  snprintf(a, sizeof a, "%s%s", p[0], probe);
  snprintf(b, sizeof b, "%s%s", p[1], probe);
  int has_a = st_checkpoint_find(l->ck, a) != NULL, has_b = st_checkpoint_find(l->ck, b) != NULL;
  if (has_a && has_b)
    return sc_error_setc(SC_ERR_FORMAT, "%s: both %s prefixes '%s' and '%s' are present", l->dir,
                         what, p[0], p[1]);
  if (!has_a && !has_b) return sc_error_setc(SC_ERR_MISSING, "%s: tensor '%s' is missing", l->dir, a);
  *out = has_a ? p[0] : p[1];
  return 0;
}

static const char *const LAYER_SUFFIXES[] = {
    "layer_norm1.weight",      "layer_norm1.bias",      "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",   "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "layer_norm2.weight",    "layer_norm2.bias",
    "mlp.fc1.weight",          "mlp.fc1.bias",          "mlp.fc2.weight",
    "mlp.fc2.bias"};
static const char *const TOP_NAMES[] = {
    "embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias",
    "embeddings.position_embedding.weight", "post_layernorm.weight", "post_layernorm.bias"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *s, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(s, list[i])) return 1;
  return 0;
}

/* 1 if rest (the name after the vision prefix) is a tower tensor. */
static int known_vision(const char *rest, int n_layers) {
  if (in_list(rest, TOP_NAMES, N_OF(TOP_NAMES))) return 1;
  if (strncmp(rest, "encoder.layers.", 15)) return 0;
  const char *p = rest + 15;
  if (*p < '0' || *p > '9') return 0;
  char *end;
  long i = strtol(p, &end, 10);
  if (*end != '.' || i >= n_layers || (p[0] == '0' && end - p > 1)) return 0;
  return in_list(end + 1, LAYER_SUFFIXES, N_OF(LAYER_SUFFIXES));
}

static int check_unknown(const loader *l) {
  const g3_vision *v = l->v;
  size_t np = strlen(v->prefix), pp = strlen(v->proj_prefix);
  for (int i = 0; i < st_checkpoint_n_tensors(l->ck); i++) {
    const st_tensor *t = st_checkpoint_tensor(l->ck, i);
    int bad = 0;
    const char *kind = NULL, *pre = NULL;
    if (!strncmp(t->name, v->prefix, np)) {
      bad = !known_vision(t->name + np, v->cfg.vision.num_hidden_layers);
      kind = "vision", pre = v->prefix;
    } else if (!strncmp(t->name, v->proj_prefix, pp)) {
      bad = strcmp(t->name + pp, "mm_input_projection_weight") && strcmp(t->name + pp, "mm_soft_emb_norm.weight");
      kind = "projector", pre = v->proj_prefix;
    }
    if (bad)
      return sc_error_setc(SC_ERR_FORMAT, "%s: unknown tensor '%s' under the %s prefix '%s'",
                           shard_path(l, t), t->name, kind, pre);
  }
  return 0;
}

/* ==== Loading ==== */

static int load_layer(const loader *l, int i) {
  const g3_vision_config *c = &l->v->cfg.vision;
  g3_vision_layer *w = &l->v->layers[i];
  int64_t h = c->hidden_size, f = c->intermediate_size;
  char p[160];
  snprintf(p, sizeof p, "%sencoder.layers.%d.", l->v->prefix, i);
  int rc = load_vec(l, p, "layer_norm1.weight", h, &w->ln1_w);
  if (!rc) rc = load_vec(l, p, "layer_norm1.bias", h, &w->ln1_b);
  if (!rc) rc = load_mat2(l, p, "self_attn.q_proj.weight", h, h, &w->q_proj);
  if (!rc) rc = load_vec(l, p, "self_attn.q_proj.bias", h, &w->q_bias);
  if (!rc) rc = load_mat2(l, p, "self_attn.k_proj.weight", h, h, &w->k_proj);
  if (!rc) rc = load_vec(l, p, "self_attn.k_proj.bias", h, &w->k_bias);
  if (!rc) rc = load_mat2(l, p, "self_attn.v_proj.weight", h, h, &w->v_proj);
  if (!rc) rc = load_vec(l, p, "self_attn.v_proj.bias", h, &w->v_bias);
  if (!rc) rc = load_mat2(l, p, "self_attn.out_proj.weight", h, h, &w->out_proj);
  if (!rc) rc = load_vec(l, p, "self_attn.out_proj.bias", h, &w->out_bias);
  if (!rc) rc = load_vec(l, p, "layer_norm2.weight", h, &w->ln2_w);
  if (!rc) rc = load_vec(l, p, "layer_norm2.bias", h, &w->ln2_b);
  if (!rc) rc = load_mat2(l, p, "mlp.fc1.weight", f, h, &w->fc1);
  if (!rc) rc = load_vec(l, p, "mlp.fc1.bias", f, &w->fc1_bias);
  if (!rc) rc = load_mat2(l, p, "mlp.fc2.weight", h, f, &w->fc2);
  if (!rc) rc = load_vec(l, p, "mlp.fc2.bias", h, &w->fc2_bias);
  return rc;
}

static int load_embeddings(const loader *l) {
  g3_vision *v = l->v;
  const g3_vision_config *c = &v->cfg.vision;
  int64_t h = c->hidden_size, p = c->patch_size, g = c->patches_per_side;
  int64_t conv[4] = {h, c->num_channels, p, p};
  int rc = load_mat(l, v->prefix, "embeddings.patch_embedding.weight", 4, conv, &v->patch);
  if (!rc) rc = load_vec(l, v->prefix, "embeddings.patch_embedding.bias", h, &v->patch_bias);
  if (!rc) rc = load_mat2(l, v->prefix, "embeddings.position_embedding.weight", g * g, h, &v->pos);
  if (!rc) rc = load_vec(l, v->prefix, "post_layernorm.weight", h, &v->post_w);
  if (!rc) rc = load_vec(l, v->prefix, "post_layernorm.bias", h, &v->post_b);
  return rc;
}

static int load_projector(const loader *l) {
  g3_vision *v = l->v;
  int64_t h = v->cfg.vision.hidden_size, d = v->cfg.text.hidden_size;
  int rc = load_vec(l, v->proj_prefix, "mm_soft_emb_norm.weight", h, &v->mm_norm);
  if (!rc) rc = load_mat2(l, v->proj_prefix, "mm_input_projection_weight", h, d, &v->mm_proj);
  return rc;
}

/* mm_proj_t[j, i] = bf16(mm_proj[i, j]): the [N, K] layout sc_gemm wants
 * (vision.h, Precision). F16 weights get none (bf16 refuses them). */
static int transpose_projector(g3_vision *v, const char *dir) {
  const sc_mat *w = &v->mm_proj;
  if (w->dtype == SC_DTYPE_F16) return 0;
  size_t rows = (size_t)w->rows, cols = (size_t)w->cols; /* config sizes: far below overflow */
  if (!(v->mm_proj_t = malloc(rows * cols * sizeof *v->mm_proj_t)))
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory for the transposed projector", dir);
  const uint16_t *b = w->data;
  const float *f = w->data;
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      v->mm_proj_t[j * rows + i] = w->dtype == SC_DTYPE_BF16 ? b[i * cols + j] : sc_bf16_from_f32(f[i * cols + j]);
  return 0;
}

static int load_all(const loader *l) {
  g3_vision *v = l->v;
  int rc = pick_prefix(l, VISION_PREFIXES, "embeddings.patch_embedding.weight", "vision", &v->prefix);
  if (!rc) rc = pick_prefix(l, PROJ_PREFIXES, "mm_input_projection_weight", "projector", &v->proj_prefix);
  if (!rc) rc = check_unknown(l);
  if (!rc) rc = load_embeddings(l);
  for (int i = 0; !rc && i < v->cfg.vision.num_hidden_layers; i++) rc = load_layer(l, i);
  if (!rc) rc = load_projector(l);
  if (!rc) rc = transpose_projector(v, l->dir);
  return rc;
}

int g3_vision_load(g3_vision **out, const st_checkpoint *ck, const g3_config *cfg, const char *dir) {
  *out = NULL;
  if (!cfg->has_vision)
    return sc_error_setc(SC_ERR_MISSING, "%s: the model has no vision tower (config model_type %s)",
                         dir, cfg->model_type);
  g3_vision *v = calloc(1, sizeof *v);
  if (v) v->layers = calloc((size_t)cfg->vision.num_hidden_layers, sizeof *v->layers);
  if (!v || !v->layers) {
    g3_vision_free(v);
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory loading the vision tower", dir);
  }
  v->cfg = *cfg;
  v->precision = SC_PRECISION_F32;
  loader l = {ck, dir, v};
  int rc = load_all(&l);
  if (rc) {
    g3_vision_free(v);
    return rc;
  }
  *out = v;
  return 0;
}

static void free_layer(g3_vision_layer *w) {
  float *p[] = {w->q_bias, w->k_bias,  w->v_bias, w->out_bias, w->fc1_bias,
                w->fc2_bias, w->ln1_w, w->ln1_b,  w->ln2_w,    w->ln2_b};
  for (size_t i = 0; i < N_OF(p); i++) free(p[i]);
}

void g3_vision_free(g3_vision *v) {
  if (!v) return;
  for (int i = 0; v->layers && i < v->cfg.vision.num_hidden_layers; i++) free_layer(&v->layers[i]);
  free(v->layers);
  free(v->patch_bias);
  free(v->post_w);
  free(v->post_b);
  free(v->mm_norm);
  free(v->mm_proj_t);
  free(v);
}

/* ==== Sizes ==== */

static int64_t n_patches(const g3_vision *v) {
  return (int64_t)v->cfg.vision.patches_per_side * v->cfg.vision.patches_per_side;
}

static int64_t patch_dim(const g3_vision *v) {
  const g3_vision_config *c = &v->cfg.vision;
  return (int64_t)c->num_channels * c->patch_size * c->patch_size;
}

size_t g3_vision_pixels_floats(const g3_vision *v) {
  const g3_vision_config *c = &v->cfg.vision;
  return (size_t)c->num_channels * (size_t)c->image_size * (size_t)c->image_size;
}

size_t g3_vision_out_floats(const g3_vision *v) {
  return (size_t)n_patches(v) * (size_t)v->cfg.vision.hidden_size;
}

size_t g3_vision_embeds_floats(const g3_vision *v) {
  return (size_t)v->cfg.mm_tokens_per_image * (size_t)v->cfg.text.hidden_size;
}

/* ==== Forward ==== */

/* Scratch of one forward: one aligned block carved into named buffers. */
typedef struct vis_bufs {
  float *block;
  float *x;      /* (n_patches, hidden) residual stream */
  float *a;      /* (n_patches, hidden) norm output */
  float *q, *k, *v, *o; /* (n_patches, hidden) */
  float *ff;     /* (n_patches, max(intermediate, patch_dim)): MLP hidden; patch vectors */
  float *attn;   /* sc_mha_full_scratch */
  float *gemm;   /* max sc_linear_scratch / sc_matmul_nn_scratch */
  float *pooled; /* (mm_tokens, hidden) */
  sc_gemm *g;    /* BF16 only: the GEMM context of this forward */
} vis_bufs;

/* n·m floats with an overflow check against VISION_MAX_FLOATS. */
static int checked_floats(size_t n, size_t m, size_t *out) {
  *out = 0;
  if (n && m > VISION_MAX_FLOATS / n) return -1;
  *out = (n * m + VISION_ALIGN_FLOATS - 1) / VISION_ALIGN_FLOATS * VISION_ALIGN_FLOATS;
  return 0;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Floats of each buffer, rounded up to the alignment; -1 if too large. */
static int buf_sizes(const g3_vision *v, size_t sz[10]) {
  const g3_vision_config *c = &v->cfg.vision;
  size_t n = (size_t)n_patches(v), h = (size_t)c->hidden_size;
  int hd = c->hidden_size / c->num_attention_heads;
  size_t wide = max_sz((size_t)c->intermediate_size, (size_t)patch_dim(v));
  size_t lin = max_sz(max_sz(sc_linear_scratch(patch_dim(v)), sc_linear_scratch(c->intermediate_size)),
                      max_sz(sc_linear_scratch((int64_t)h), sc_matmul_nn_scratch(&v->mm_proj)));
  int bad = checked_floats(n, h, &sz[0]);
  for (int i = 1; i < 6; i++) sz[i] = sz[0];
  bad |= checked_floats(n, wide, &sz[6]);
  bad |= checked_floats(1, sc_mha_full_scratch((int64_t)n, hd), &sz[7]);
  bad |= checked_floats(1, lin, &sz[8]);
  bad |= checked_floats((size_t)v->cfg.mm_tokens_per_image, h, &sz[9]);
  return bad;
}

static int alloc_bufs(const g3_vision *v, vis_bufs *b) {
  size_t sz[10], total = 0;
  if (buf_sizes(v, sz)) return sc_error_setc(SC_ERR_RANGE, "vision: activations of one image are too large");
  for (int i = 0; i < 10; i++) total += sz[i]; /* each <= 2^32: no overflow */
  b->block = aligned_alloc(64, total * sizeof(float));
  if (!b->block) return sc_error_setc(SC_ERR_NOMEM, "vision: out of memory for %zu floats of scratch", total);
  float **dst[10] = {&b->x, &b->a, &b->q, &b->k, &b->v, &b->o, &b->ff, &b->attn, &b->gemm, &b->pooled};
  float *p = b->block;
  for (int i = 0; i < 10; i++) {
    *dst[i] = p;
    p += sz[i];
  }
  return 0;
}

/* u[n, C·p·p]: patch (py, px) = row py·g + px, element c·p·p + ky·p + kx
 * = pixel[c][p·py + ky][p·px + kx] (the Conv2d weight's (c, ky, kx) order). */
static void gather_patches(float *u, const float *px, const g3_vision_config *c) {
  int64_t p = c->patch_size, g = c->patches_per_side, s = c->image_size, ch = c->num_channels;
  int64_t dim = ch * p * p;
  for (int64_t py = 0; py < g; py++)
    for (int64_t qx = 0; qx < g; qx++) {
      float *row = u + (py * g + qx) * dim;
      for (int64_t cc = 0; cc < ch; cc++)
        for (int64_t ky = 0; ky < p; ky++)
          memcpy(row + (cc * p + ky) * p, px + (cc * s + py * p + ky) * s + qx * p,
                 (size_t)p * sizeof *row);
    }
}

#define TRY(call)         \
  do {                    \
    int rc_ = (call);     \
    if (rc_) return rc_;  \
  } while (0)

/* x = patches · Wᵀ + b + position_embedding (spec §4.2). */
static int embed_patches(const g3_vision *v, const float *pixels, vis_bufs *b) {
  int64_t n = n_patches(v), h = v->cfg.vision.hidden_size;
  gather_patches(b->ff, pixels, &v->cfg.vision);
  TRY(sc_linear_gemm(b->x, b->ff, &v->patch, n, v->precision, b->gemm, b->g));
  sc_add_bias(b->x, v->patch_bias, n, h);
  for (int64_t t = 0; t < n; t++) {
    sc_mat_row(b->a, &v->pos, t);
    sc_add(b->x + t * h, b->a, 1, h);
  }
  return 0;
}

/* y[n, w->rows] = x · Wᵀ + bias. */
static int linear_b(float *y, const float *x, const sc_mat *w, const float *bias, int64_t n,
                    const g3_vision *v, vis_bufs *b) {
  TRY(sc_linear_gemm(y, x, w, n, v->precision, b->gemm, b->g));
  sc_add_bias(y, bias, n, w->rows);
  return 0;
}

/* x += out_proj(MHA(LN1(x))) (spec §4.3). */
static int attention_block(const g3_vision *v, const g3_vision_layer *w, vis_bufs *b) {
  const g3_vision_config *c = &v->cfg.vision;
  int64_t n = n_patches(v), h = c->hidden_size;
  int hd = c->hidden_size / c->num_attention_heads;
  sc_layernorm(b->a, b->x, w->ln1_w, w->ln1_b, n, h, (float)c->layer_norm_eps);
  TRY(linear_b(b->q, b->a, &w->q_proj, w->q_bias, n, v, b));
  TRY(linear_b(b->k, b->a, &w->k_proj, w->k_bias, n, v, b));
  TRY(linear_b(b->v, b->a, &w->v_proj, w->v_bias, n, v, b));
  if (v->precision == SC_PRECISION_BF16) { /* the operands of q·kᵀ and P·v (vision.h) */
    sc_round_bf16_v(b->q, n * h);
    sc_round_bf16_v(b->k, n * h);
    sc_round_bf16_v(b->v, n * h);
  }
  sc_mha_full_prec(b->o, b->q, b->k, b->v, n, c->num_attention_heads, hd, (float)(1.0 / sqrt(hd)),
                   v->precision, b->attn);
  TRY(linear_b(b->a, b->o, &w->out_proj, w->out_bias, n, v, b));
  sc_add(b->x, b->a, n, h);
  return 0;
}

/* x += fc2(gelu_tanh(fc1(LN2(x)))) (spec §4.3). */
static int mlp_block(const g3_vision *v, const g3_vision_layer *w, vis_bufs *b) {
  const g3_vision_config *c = &v->cfg.vision;
  int64_t n = n_patches(v), h = c->hidden_size;
  sc_layernorm(b->a, b->x, w->ln2_w, w->ln2_b, n, h, (float)c->layer_norm_eps);
  TRY(linear_b(b->ff, b->a, &w->fc1, w->fc1_bias, n, v, b));
  sc_gelu_tanh(b->ff, n * c->intermediate_size);
  TRY(linear_b(b->a, b->ff, &w->fc2, w->fc2_bias, n, v, b));
  sc_add(b->x, b->a, n, h);
  return 0;
}

/* Pool, (1 + w) RMSNorm with the vision eps, · W un-transposed (spec §4.4). */
static int project(const g3_vision *v, const float *vis, float *out, vis_bufs *b) {
  const g3_vision_config *c = &v->cfg.vision;
  int64_t m = v->cfg.mm_tokens_per_image, h = c->hidden_size;
  sc_avgpool2d(b->pooled, vis, c->patches_per_side, h, v->cfg.mm_pool_kernel);
  sc_rmsnorm(b->pooled, b->pooled, v->mm_norm, m, h, (float)c->layer_norm_eps);
  if (v->precision == SC_PRECISION_F32) return sc_matmul_nn(out, b->pooled, &v->mm_proj, m, v->precision, b->gemm);
  if (!v->mm_proj_t)
    return sc_error_setc(SC_ERR_ARG, "precision bf16 cannot multiply %s weights (use f32)",
                         sc_dtype_name(v->mm_proj.dtype));
  return sc_gemm_bf16(b->g, out, b->pooled, v->mm_proj_t, NULL, (int)m, (int)v->mm_proj.cols, (int)h, 0);
}

static int run_tower(const g3_vision *v, const float *pixels, vis_bufs *b, g3_vision_hook hook,
                     void *user) {
  const g3_vision_config *c = &v->cfg.vision;
  TRY(embed_patches(v, pixels, b));
  for (int i = 0; i < c->num_hidden_layers; i++) {
    TRY(attention_block(v, &v->layers[i], b));
    TRY(mlp_block(v, &v->layers[i], b));
    if (hook) TRY(hook(user, i, b->x, n_patches(v), c->hidden_size));
  }
  sc_layernorm(b->x, b->x, v->post_w, v->post_b, n_patches(v), c->hidden_size, (float)c->layer_norm_eps);
  return 0;
}

int g3_vision_forward(const g3_vision *v, const float *pixels, float *vision_out,
                      float *image_embeds) {
  return g3_vision_forward_hook(v, pixels, vision_out, image_embeds, NULL, NULL);
}

int g3_vision_forward_hook(const g3_vision *v, const float *pixels, float *vision_out,
                           float *image_embeds, g3_vision_hook hook, void *user) {
  vis_bufs b = {0};
  if (v->precision != SC_PRECISION_F32 && v->precision != SC_PRECISION_BF16)
    return sc_error_setc(SC_ERR_ARG, "vision: unknown precision %d", (int)v->precision);
  int rc = v->precision == SC_PRECISION_BF16 ? sc_gemm_create(&b.g, SC_GEMM_BACKEND_AUTO, 0) : 0;
  if (!rc) rc = alloc_bufs(v, &b);
  if (!rc) rc = run_tower(v, pixels, &b, hook, user);
  if (!rc && vision_out) memcpy(vision_out, b.x, g3_vision_out_floats(v) * sizeof(float));
  if (!rc && image_embeds) rc = project(v, b.x, image_embeds, &b);
  free(b.block);
  sc_gemm_free(b.g);
  return rc;
}
