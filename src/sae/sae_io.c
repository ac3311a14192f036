/* sae_io.c: SAELens v6 and Gemma Scope 2 folders (see sae_io.h). */
#include "sae/sae_io.h"
#include "sae/sae_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"
#include "io/safetensors.h"

#define SAELENS_VERSION_WRITTEN "6.0.0"
#define SAECAP_VERSION_WRITTEN "0.1.0"

/* ==== Small JSON readers (each names the file and the key) ==== */

static int get_int(const sc_json *o, const char *name, const char *key, int required,
                   int64_t lo, int64_t hi, int64_t *out) {
  const sc_json *j = sc_json_get(o, key);
  if (!j || sc_json_is_null(j)) {
    if (required) return sc_error_setc(SC_ERR_MISSING, "%s: key '%s' is missing", name, key);
    return 0;
  }
  int64_t v;
  if (sc_json_i64(j, &v))
    return sc_error_setc(SC_ERR_FORMAT, "%s: key '%s' is not an integer", name, key);
  if (v < lo || v > hi)
    return sc_error_setc(SC_ERR_RANGE, "%s: key '%s' = %lld is outside %lld..%lld", name, key,
                         (long long)v, (long long)lo, (long long)hi);
  *out = v;
  return 0;
}

static int get_bool(const sc_json *o, const char *name, const char *key, int *out) {
  const sc_json *j = sc_json_get(o, key);
  if (!j || sc_json_is_null(j)) return 0;
  if (sc_json_bool(j, out)) return sc_error_setc(SC_ERR_FORMAT, "%s: key '%s' is not a boolean", name, key);
  return 0;
}

/* String value (NULL when absent or null). */
static int get_str(const sc_json *o, const char *name, const char *key, const char **out) {
  const sc_json *j = sc_json_get(o, key);
  *out = NULL;
  if (!j || sc_json_is_null(j)) return 0;
  if (!sc_json_is_string(j)) return sc_error_setc(SC_ERR_FORMAT, "%s: key '%s' is not a string", name, key);
  *out = sc_json_str(j);
  return 0;
}

static int copy_name(char *dst, const char *src, const char *name, const char *key) {
  if (!src) return 0;
  if (strlen(src) >= SAE_NAME_MAX)
    return sc_error_setc(SC_ERR_RANGE, "%s: key '%s' is longer than %d bytes", name, key, SAE_NAME_MAX - 1);
  strcpy(dst, src);
  return 0;
}

/* A string option that must be absent, null or "none". */
static int want_none(const sc_json *o, const char *name, const char *key) {
  const char *v;
  int rc = get_str(o, name, key, &v);
  if (!rc && v && strcmp(v, "none"))
    rc = sc_error_setc(SC_ERR_ARG, "%s: %s '%s' is not supported (only 'none')", name, key, v);
  return rc;
}

/* ==== SAELens cfg.json ==== */

static int saelens_arch(const sc_json *root, const char *name, sae_cfg *c) {
  const char *a;
  int rc = get_str(root, name, "architecture", &a);
  if (rc) return rc;
  if (!a) return sc_error_setc(SC_ERR_MISSING, "%s: key 'architecture' is missing", name);
  if (!strcmp(a, "standard")) c->arch = SAE_ARCH_RELU;
  else if (!strcmp(a, "topk")) c->arch = SAE_ARCH_TOPK;
  else if (!strcmp(a, "jumprelu")) c->arch = SAE_ARCH_JUMPRELU;
  else
    return sc_error_setc(SC_ERR_ARG, "%s: architecture '%s' is not supported (standard, topk, jumprelu)",
                         name, a);
  return 0;
}

static int saelens_metadata(const sc_json *root, const char *name, sae_cfg *c) {
  const sc_json *m = sc_json_get(root, "metadata");
  if (!m || sc_json_is_null(m)) return 0;
  if (!sc_json_is_object(m)) return sc_error_setc(SC_ERR_FORMAT, "%s: key 'metadata' is not an object", name);
  const char *model, *hook;
  int64_t k = c->k;
  int rc = get_str(m, name, "model_name", &model);
  if (!rc) rc = get_str(m, name, "hook_name", &hook);
  if (!rc) rc = copy_name(c->model_name, model, name, "metadata.model_name");
  if (!rc) rc = copy_name(c->hook_name, hook, name, "metadata.hook_name");
  if (!rc && c->arch == SAE_ARCH_JUMPRELU) rc = get_int(m, name, "saecap_k", 0, 0, c->n, &k);
  c->k = (int)k;
  return rc;
}

static int saelens_fields(const sc_json *root, const char *name, sae_cfg *c) {
  int64_t d = 0, n = 0, k = 0, d_out = -1;
  int rc = saelens_arch(root, name, c);
  if (!rc) rc = get_int(root, name, "d_in", 1, 1, SAE_MAX_D, &d);
  if (!rc) rc = get_int(root, name, "d_sae", 1, 1, SAE_MAX_N, &n);
  if (!rc) rc = get_int(root, name, "k", c->arch == SAE_ARCH_TOPK, 1, n, &k);
  if (!rc) rc = get_int(root, name, "d_out", 0, 1, SAE_MAX_D, &d_out);
  if (!rc && d_out >= 0 && d_out != d)
    rc = sc_error_setc(SC_ERR_ARG, "%s: d_out %lld differs from d_in (transcoders are not supported)",
                       name, (long long)d_out);
  c->d = d, c->n = n, c->k = c->arch == SAE_ARCH_TOPK ? (int)k : 0;
  c->apply_b_dec_to_input = 1; /* SAELens's default */
  if (!rc) rc = get_bool(root, name, "apply_b_dec_to_input", &c->apply_b_dec_to_input);
  if (!rc) rc = get_bool(root, name, "rescale_acts_by_decoder_norm", &c->rescale_acts);
  if (!rc) rc = want_none(root, name, "normalize_activations");
  if (!rc) rc = want_none(root, name, "reshape_activations");
  if (!rc) rc = saelens_metadata(root, name, c);
  return rc;
}

int sae_cfg_parse_saelens(const char *buf, size_t len, const char *name, sae_cfg *out) {
  memset(out, 0, sizeof *out);
  sc_json *root;
  int rc = sc_json_parse(buf, len, name, &root);
  if (rc) return rc;
  if (!sc_json_is_object(root)) rc = sc_error_setc(SC_ERR_FORMAT, "%s: not a JSON object", name);
  if (!rc) rc = saelens_fields(root, name, out);
  if (!rc) rc = sae_cfg_check(out, name);
  if (!rc) strcpy(out->source_format, "saelens");
  sc_json_free(root);
  return rc;
}

/* ==== Gemma Scope 2 config.json ==== */

static int gemmascope_fields(const sc_json *root, const char *name, sae_cfg *c) {
  const char *arch, *type, *hook, *model;
  int affine = 0;
  int64_t width = 0;
  int rc = get_str(root, name, "architecture", &arch);
  if (!rc && arch && strcmp(arch, "jump_relu"))
    rc = sc_error_setc(SC_ERR_ARG, "%s: architecture '%s' is not supported (jump_relu)", name, arch);
  if (!rc) rc = get_str(root, name, "type", &type);
  if (!rc && type && strcmp(type, "sae"))
    rc = sc_error_setc(SC_ERR_ARG, "%s: type '%s' is not supported (sae)", name, type);
  if (!rc) rc = get_bool(root, name, "affine_connection", &affine);
  if (!rc && affine)
    rc = sc_error_setc(SC_ERR_ARG, "%s: affine_connection (skip transcoders) is not supported", name);
  if (!rc) rc = get_int(root, name, "width", 0, 1, SAE_MAX_N, &width);
  if (!rc) rc = get_str(root, name, "hf_hook_point_in", &hook);
  if (!rc) rc = get_str(root, name, "model_name", &model);
  if (!rc) rc = copy_name(c->hook_name, hook, name, "hf_hook_point_in");
  if (!rc) rc = copy_name(c->model_name, model, name, "model_name");
  c->arch = SAE_ARCH_JUMPRELU, c->n = width, c->apply_b_dec_to_input = 0;
  return rc;
}

int sae_cfg_parse_gemmascope(const char *buf, size_t len, const char *name, sae_cfg *out) {
  memset(out, 0, sizeof *out);
  sc_json *root;
  int rc = sc_json_parse(buf, len, name, &root);
  if (rc) return rc;
  if (!sc_json_is_object(root)) rc = sc_error_setc(SC_ERR_FORMAT, "%s: not a JSON object", name);
  if (!rc) rc = gemmascope_fields(root, name, out);
  if (!rc) strcpy(out->source_format, "gemmascope2");
  sc_json_free(root);
  return rc;
}

/* ==== Tensors ==== */

static int shape_error(const char *file, const st_tensor *t, int64_t a, int64_t b, int dims) {
  char got[96] = "[";
  size_t k = 1;
  for (int i = 0; i < t->n_dims && k < sizeof got; i++)
    k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (k < sizeof got) snprintf(got + k, sizeof got - k, "]");
  if (dims == 1)
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld]", file, t->name,
                         got, (long long)a);
  return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld, %lld]", file,
                       t->name, got, (long long)a, (long long)b);
}

/* Widens a tensor of shape [a] (b = 0) or [a, b] into dst (f32). */
static int read_tensor(float *dst, const st_file *f, const char *file, const char *key, int64_t a,
                       int64_t b) {
  const st_tensor *t = st_file_find(f, key);
  if (!t) return sc_error_setc(SC_ERR_MISSING, "%s: tensor '%s' is missing", file, key);
  int dims = b ? 2 : 1;
  if (t->n_dims != dims || t->shape[0] != a || (dims == 2 && t->shape[1] != b))
    return shape_error(file, t, a, b, dims);
  size_t cnt = (size_t)t->n_elements;
  if (t->dtype == SC_DTYPE_F32) memcpy(dst, t->data, cnt * sizeof *dst);
  else if (t->dtype == SC_DTYPE_BF16) sc_f32_from_bf16_n(dst, t->data, cnt);
  else if (t->dtype == SC_DTYPE_F16) sc_f32_from_f16_n(dst, t->data, cnt);
  else
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32, BF16 or F16",
                         file, key, sc_dtype_name(t->dtype));
  for (size_t i = 0; i < cnt; i++)
    if (!isfinite(dst[i]))
      return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at %zu", file, key, i);
  return 0;
}

#define TRANSPOSE_BLOCK 64

/* dst [cols, rows] = src [rows, cols]ᵀ, blocked for the cache. */
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) SAE_PAR(rows * cols)
  for (int64_t r0 = 0; r0 < rows; r0 += TRANSPOSE_BLOCK)
    for (int64_t c0 = 0; c0 < cols; c0 += TRANSPOSE_BLOCK)
      for (int64_t r = r0; r < rows && r < r0 + TRANSPOSE_BLOCK; r++)
        for (int64_t c = c0; c < cols && c < c0 + TRANSPOSE_BLOCK; c++)
          dst[c * rows + r] = src[r * cols + c];
}

typedef struct weight_names {
  const char *w_enc, *w_dec, *b_enc, *b_dec, *threshold;
} weight_names;

static int read_weights(sae *s, const st_file *f, const char *file, const weight_names *nm) {
  int64_t d = s->cfg.d, n = s->cfg.n;
  float *tmp = malloc((size_t)(d * n) * sizeof *tmp);
  if (!tmp) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", file);
  int rc = read_tensor(tmp, f, file, nm->w_enc, d, n);
  if (!rc) transpose(s->W_enc, tmp, d, n);
  free(tmp);
  if (!rc) rc = read_tensor(s->W_dec, f, file, nm->w_dec, n, d);
  if (!rc) rc = read_tensor(s->b_enc, f, file, nm->b_enc, n, 0);
  if (!rc) rc = read_tensor(s->b_dec, f, file, nm->b_dec, d, 0);
  if (!rc && s->cfg.arch == SAE_ARCH_JUMPRELU)
    rc = read_tensor(s->threshold, f, file, nm->threshold, n, 0);
  return rc;
}

/* SAELens topk with rescale_acts_by_decoder_norm: top-k of h_i·‖d_i‖ and
 * decoding f_i/‖d_i‖ equals a plain topk SAE with W_enc row i and b_enc_i
 * times ‖d_i‖ and W_dec row i divided by it (the fold SAELens does at save). */
static void fold_decoder_norms(sae *s) {
  int64_t n = s->cfg.n, d = s->cfg.d;
  for (int64_t i = 0; i < n; i++) {
    double a = 0.0;
    for (int64_t j = 0; j < d; j++) a += (double)s->W_dec[i * d + j] * s->W_dec[i * d + j];
    float nr = (float)sqrt(a);
    if (nr <= 0.0f) continue;
    for (int64_t j = 0; j < d; j++) s->W_enc[i * d + j] *= nr, s->W_dec[i * d + j] /= nr;
    s->b_enc[i] *= nr;
  }
  s->cfg.rescale_acts = 0;
}

/* ==== Loading folders ==== */

static int read_cfg_file(const char *dir, const char *fname, int gemmascope, sae_cfg *cfg) {
  char *path = sc_path_join(dir, fname), *buf = NULL;
  size_t len;
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int rc = sc_read_file(path, SAE_CFG_MAX_BYTES, &buf, &len);
  if (!rc) rc = gemmascope ? sae_cfg_parse_gemmascope(buf, len, path, cfg)
                           : sae_cfg_parse_saelens(buf, len, path, cfg);
  free(buf), free(path);
  return rc;
}

/* Gemma Scope 2 configs carry no d_in: take it from w_enc, check width. */
static int gemmascope_shape(sae_cfg *cfg, const st_file *f, const char *file) {
  const st_tensor *t = st_file_find(f, "w_enc");
  if (!t) return sc_error_setc(SC_ERR_MISSING, "%s: tensor 'w_enc' is missing", file);
  if (t->n_dims != 2) return sc_error_setc(SC_ERR_FORMAT, "%s: tensor 'w_enc' is not 2-D", file);
  if (cfg->n && cfg->n != t->shape[1])
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor 'w_enc' has %lld latents, config.json width is %lld",
                         file, (long long)t->shape[1], (long long)cfg->n);
  cfg->d = t->shape[0], cfg->n = t->shape[1];
  return sae_cfg_check(cfg, file);
}

static int load_layout(sae **out, const char *dir, int gemmascope) {
  static const weight_names lens = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"};
  static const weight_names gs = {"w_enc", "w_dec", "b_enc", "b_dec", "threshold"};
  sae_cfg cfg;
  int rc = read_cfg_file(dir, gemmascope ? "config.json" : "cfg.json", gemmascope, &cfg);
  if (rc) return rc;
  char *wpath = sc_path_join(dir, gemmascope ? "params.safetensors" : "sae_weights.safetensors");
  if (!wpath) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  st_file *f = NULL;
  rc = st_file_open(&f, wpath);
  if (!rc && gemmascope) rc = gemmascope_shape(&cfg, f, wpath);
  if (!rc) rc = sae_create(out, &cfg);
  if (!rc) rc = read_weights(*out, f, wpath, gemmascope ? &gs : &lens);
  if (!rc && (*out)->cfg.rescale_acts) fold_decoder_norms(*out);
  if (rc && *out) sae_free(*out), *out = NULL;
  st_file_free(f);
  free(wpath);
  return rc;
}

static int has_files(const char *dir, const char *a, const char *b) {
  char *pa = sc_path_join(dir, a), *pb = sc_path_join(dir, b);
  int ok = pa && pb && sc_is_file(pa) && sc_is_file(pb);
  free(pa), free(pb);
  return ok;
}

int sae_load(sae **out, const char *dir) {
  *out = NULL;
  if (has_files(dir, "cfg.json", "sae_weights.safetensors")) return load_layout(out, dir, 0);
  if (has_files(dir, "config.json", "params.safetensors")) return load_layout(out, dir, 1);
  return sc_error_setc(SC_ERR_MISSING,
                       "%s: no cfg.json + sae_weights.safetensors (SAELens) or config.json + "
                       "params.safetensors (Gemma Scope 2)", dir);
}

/* ==== Saving (SAELens v6) ==== */

static sc_json *saelens_cfg_json(const sae *s, const sae_meta_kv *extra, int n_extra) {
  const sae_cfg *c = &s->cfg;
  int jump = c->arch == SAE_ARCH_JUMPRELU || c->arch == SAE_ARCH_BATCHTOPK;
  sc_json *root = sc_json_new_object(), *meta = sc_json_new_object();
  sc_json_add_num(root, "d_in", (double)c->d);
  sc_json_add_num(root, "d_sae", (double)c->n);
  sc_json_add_str(root, "dtype", "float32");
  sc_json_add_str(root, "device", "cpu");
  sc_json_add_bool(root, "apply_b_dec_to_input", c->apply_b_dec_to_input);
  sc_json_add_str(root, "normalize_activations", "none");
  sc_json_add_str(root, "reshape_activations", "none");
  sc_json_add_str(root, "architecture", jump ? "jumprelu" : sae_arch_name(c->arch));
  if (c->arch == SAE_ARCH_TOPK) {
    sc_json_add_num(root, "k", c->k);
    sc_json_add_bool(root, "rescale_acts_by_decoder_norm", 0);
  }
  sc_json_add_str(meta, "sae_lens_version", SAELENS_VERSION_WRITTEN);
  sc_json_add(meta, "model_name", c->model_name[0] ? sc_json_new_str(c->model_name) : sc_json_new_null());
  sc_json_add(meta, "hook_name", c->hook_name[0] ? sc_json_new_str(c->hook_name) : sc_json_new_null());
  sc_json_add(meta, "hook_head_index", sc_json_new_null());
  sc_json_add_str(meta, "saecap_version", SAECAP_VERSION_WRITTEN);
  if (jump && c->k > 0) sc_json_add_num(meta, "saecap_k", c->k);
  for (int i = 0; i < n_extra; i++) sc_json_add(meta, extra[i].key, extra[i].value);
  sc_json_add(root, "metadata", meta);
  return root;
}

static int write_cfg(const sae *s, const char *dir, const sae_meta_kv *extra, int n_extra) {
  sc_json *root = saelens_cfg_json(s, extra, n_extra);
  char *text = root ? sc_json_print(root, 1) : NULL, *path = sc_path_join(dir, "cfg.json");
  int rc = text && path ? sc_write_file_atomic(path, text, strlen(text))
                        : sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  sc_json_free(root), free(text), free(path);
  return rc;
}

static int write_weights(const sae *s, const char *dir) {
  int64_t d = s->cfg.d, n = s->cfg.n, sh_enc[2] = {d, n}, sh_dec[2] = {n, d};
  int jump = s->cfg.arch == SAE_ARCH_JUMPRELU || s->cfg.arch == SAE_ARCH_BATCHTOPK;
  float *enc = malloc((size_t)(d * n) * sizeof *enc);
  char *path = sc_path_join(dir, "sae_weights.safetensors");
  st_writer *w = NULL;
  int rc = enc && path ? st_writer_create(&w) : sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  if (!rc) {
    transpose(enc, s->W_enc, n, d);
    size_t nd = (size_t)(n * d) * sizeof(float);
    rc = st_writer_add(w, "W_enc", SC_DTYPE_F32, 2, sh_enc, enc, nd);
    if (!rc) rc = st_writer_add(w, "W_dec", SC_DTYPE_F32, 2, sh_dec, s->W_dec, nd);
    if (!rc) rc = st_writer_add(w, "b_enc", SC_DTYPE_F32, 1, &n, s->b_enc, (size_t)n * sizeof(float));
    if (!rc) rc = st_writer_add(w, "b_dec", SC_DTYPE_F32, 1, &d, s->b_dec, (size_t)d * sizeof(float));
    if (!rc && jump)
      rc = st_writer_add(w, "threshold", SC_DTYPE_F32, 1, &n, s->threshold, (size_t)n * sizeof(float));
    if (!rc) rc = st_writer_write(w, path);
  }
  st_writer_free(w), free(enc), free(path);
  return rc;
}

static int write_sparsity(const float *log_density, int64_t n, const char *dir) {
  char *path = sc_path_join(dir, "sparsity.safetensors");
  st_writer *w = NULL;
  int rc = path ? st_writer_create(&w) : sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  if (!rc) rc = st_writer_add(w, "sparsity", SC_DTYPE_F32, 1, &n, log_density, (size_t)n * sizeof(float));
  if (!rc) rc = st_writer_write(w, path);
  st_writer_free(w), free(path);
  return rc;
}

int sae_save_saelens_meta(const sae *s, const float *log_density, const char *dir,
                          const sae_meta_kv *extra, int n_extra) {
  int rc = sc_mkdirs(dir);
  if (!rc) rc = write_weights(s, dir);
  if (!rc && log_density) rc = write_sparsity(log_density, s->cfg.n, dir);
  if (!rc) return write_cfg(s, dir, extra, n_extra);
  for (int i = 0; i < n_extra; i++) sc_json_free(extra[i].value);
  return rc;
}

int sae_save_saelens(const sae *s, const float *log_density, const char *dir) {
  return sae_save_saelens_meta(s, log_density, dir, NULL, 0);
}
