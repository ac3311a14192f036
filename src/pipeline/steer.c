/* steer.c: the steering experiment (steer.h). */
#include "pipeline/steer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/lexicon.h"
#include "analysis/steer.h"
#include "analysis/textmetrics.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/version.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/caption.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/vision.h"
#include "pipeline/prepare.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "store/manifest.h"
#include "store/samples.h"

#define SP_MAX_K 64
#define SP_BIN_WIDTH 0.5          /* decades of firing density per matching bin */
#define SP_CACHE_BYTES ((size_t)1 << 30)
#define SP_JSON_MAX ((size_t)1 << 30)
#define SP_CI 0.95

static const char *const LANGS[2] = {"en", "ar"};
static const char *const PROMPT_KEYS[2] = {"english_prompt", "arabic_prompt"};
enum { K_BASELINE, K_TARGETED, K_OTHER, K_RANDOM };
static const char *const KIND_NAMES[] = {"baseline", "targeted", "other_language", "random"};
/* Per-caption measures, in file and statistics order. */
enum { M_MALE, M_FEMALE, M_GENDERED, M_NEUTRAL, M_LENGTH, M_KL, M_DLL, M_CHRF, M_N };
static const char *const MEASURES[M_N] = {"male", "female", "gendered", "neutral", "length", "kl", "delta_loglik", "chrf"};
/* Measures that are already relative to the baseline (no paired difference). */
static int relative_measure(int m) { return m >= M_KL; }

/* ==== Inputs ==== */

typedef struct sp_sample {
  int64_t sample_index, image_index;
  int image_slot;                    /* index into the distinct images of the run */
  char *image_id, *image_path, *gender, *prompt[2];
} sp_sample;

typedef struct sp_layer {
  int layer;
  char *sae_dir;
  sae *s;
  float *logd;                       /* (n) log10 firing density */
  int32_t *rank[2];                  /* ranked features per language (NULL: none) */
  int n_rank[2];
} sp_layer;

typedef struct sp_cond {
  char name[96];
  int lang, kind, k, rep, source_lang;
  int li;                            /* index into layers; -1 for the baseline */
  int32_t *feat;
  int n_feat;
  char hash[32];
} sp_cond;

/* One condition's per-sample measures, read back from its file. */
typedef struct sp_vals {
  double *v[M_N];                    /* (n_samples) each */
} sp_vals;

typedef struct sp_run {
  const sc_config *cfg;
  sc_steer_summary *sum;
  sp_sample *smp;
  int64_t n_smp;
  int n_images;
  g3_model *m;
  g3_vision *v;
  tok_tokenizer *tok;
  g3_gen_opts gen;
  an_lexicon *lex[2];
  an_steer_op op;
  int n_langs, langs[2];
  int n_k, ks[SP_MAX_K];
  sp_layer *layers;
  int n_layers;
  sp_cond *conds;
  int n_conds;
  uint64_t base_hash;
  char *cap_dir, *results_dir;
  float **img_cache;                 /* (n_images): cached projector rows or NULL */
  int cache_all;
  float *pixels, *img_one;
  int img_one_slot;
  float *lg_base, *lg_steer;         /* (max_new, vocab_size) teacher-forced logits */
  int32_t **base_ids[2];             /* [lang][sample] baseline caption ids (from its file) */
  int64_t *base_n[2];
  char **base_text[2];
  sp_vals *vals;                     /* (n_conds) */
  sc_progress *prog;
} sp_run;

static void run_free(sp_run *r) {
  for (int64_t i = 0; r->smp && i < r->n_smp; i++) {
    sp_sample *s = &r->smp[i];
    free(s->image_id), free(s->image_path), free(s->gender), free(s->prompt[0]), free(s->prompt[1]);
  }
  free(r->smp);
  for (int i = 0; r->layers && i < r->n_layers; i++) {
    sp_layer *l = &r->layers[i];
    free(l->sae_dir), sae_free(l->s), free(l->logd), free(l->rank[0]), free(l->rank[1]);
  }
  free(r->layers);
  for (int i = 0; r->conds && i < r->n_conds; i++) free(r->conds[i].feat);
  free(r->conds);
  for (int i = 0; r->vals && i < r->n_conds; i++)
    for (int m = 0; m < M_N; m++) free(r->vals[i].v[m]);
  free(r->vals);
  for (int l = 0; l < 2; l++) {
    for (int64_t i = 0; r->base_ids[l] && i < r->n_smp; i++) free(r->base_ids[l][i]), free(r->base_text[l][i]);
    free(r->base_ids[l]), free(r->base_n[l]), free(r->base_text[l]);
    an_lexicon_free(r->lex[l]);
  }
  for (int i = 0; r->img_cache && i < r->n_images; i++) free(r->img_cache[i]);
  free(r->img_cache);
  free(r->pixels), free(r->img_one), free(r->lg_base), free(r->lg_steer);
  free(r->cap_dir), free(r->results_dir);
  g3_vision_free(r->v);
  g3_model_free(r->m);
  tok_free(r->tok);
}

static int oom(void) { return sc_error_setc(SC_ERR_NOMEM, "steer: out of memory"); }

static int dup_str(const sc_json *o, const char *key, const char *path, int64_t line, char **out) {
  const char *v = sc_json_str(sc_json_get(o, key));
  if (!v) return sc_error_setc(SC_ERR_MISSING, "%s: line %lld: missing string '%s'", path, (long long)line, key);
  return (*out = strdup(v)) ? 0 : oom();
}

static int split_wanted(const sc_config *cfg, const char *split) {
  static const char *const names[] = {"train", "val", "test"};
  sc_split_cfg want = cfg->steer.split;
  return want == SC_CFG_SPLIT_ALL || !strcmp(split, names[want]);
}

/* One samples.jsonl row of the configured split into r->smp (store_samples
 * has validated the file). */
static int sample_row(sp_run *r, const sc_json *o, const char *path, int64_t line) {
  const char *split = sc_json_str(sc_json_get(o, "split"));
  if (!split || !split_wanted(r->cfg, split)) return 0;
  uint64_t max = r->cfg->steer.max_samples;
  if (max && (uint64_t)r->n_smp >= max) return 0;
  sp_sample *s = &r->smp[r->n_smp];
  memset(s, 0, sizeof *s);
  r->n_smp++;
  int rc = sc_json_i64(sc_json_get(o, "sample_index"), &s->sample_index);
  if (!rc && sc_json_i64(sc_json_get(o, "image_index"), &s->image_index))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: missing or bad 'image_index'", path, (long long)line);
  if (!rc) rc = dup_str(o, "image_id", path, line, &s->image_id);
  if (!rc) rc = dup_str(o, "image_path", path, line, &s->image_path);
  if (!rc) rc = dup_str(o, "ground_truth_gender", path, line, &s->gender);
  for (int l = 0; !rc && l < 2; l++) rc = dup_str(o, PROMPT_KEYS[l], path, line, &s->prompt[l]);
  return rc;
}

static int load_samples(sp_run *r) {
  char *path = sc_path_join(r->cfg->output_dir, "data/processed/samples.jsonl"), *buf = NULL;
  size_t len = 0;
  store_samples base = {0};
  if (!path) return oom();
  int rc = sc_is_file(path) ? store_samples_load(path, &base)
                            : sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap prepare` first", path);
  if (!rc) rc = sc_read_file(path, STORE_MAX_SAMPLES_BYTES, &buf, &len);
  if (!rc && !(r->smp = calloc((size_t)(base.n ? base.n : 1), sizeof *r->smp))) rc = oom();
  int64_t line = 0;
  for (size_t at = 0; !rc && at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    line++;
    if (strspn(buf + at, " \t\r") < end - at) {
      sc_json *j = NULL;
      rc = sc_json_parse(buf + at, end - at, path, &j);
      if (!rc) rc = sample_row(r, j, path, line);
      sc_json_free(j);
    }
    at = end + 1;
  }
  if (!rc && r->n_smp == 0)
    rc = sc_error_setc(SC_ERR_ARG, "%s: steer.split: no sample of that split in %s", r->cfg->source, path);
  /* Distinct images, so the tower runs once per image. */
  for (int64_t i = 0; !rc && i < r->n_smp; i++) {
    r->smp[i].image_slot = -1;
    for (int64_t j = 0; j < i && r->smp[i].image_slot < 0; j++)
      if (r->smp[j].image_index == r->smp[i].image_index) r->smp[i].image_slot = r->smp[j].image_slot;
    if (r->smp[i].image_slot < 0) r->smp[i].image_slot = r->n_images++;
  }
  store_samples_free(&base);
  free(buf);
  free(path);
  return rc;
}

/* ==== Settings ==== */

static int next_item(const char **p, char *item, size_t cap) {
  if (!**p) return 0;
  size_t n = strcspn(*p, ",");
  snprintf(item, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), *p);
  *p += n + ((*p)[n] == ',');
  return 1;
}

static int parse_settings(sp_run *r) {
  const sc_config *c = r->cfg;
  char item[64];
  int rc = 0;
  for (const char *p = c->steer.languages; !rc && next_item(&p, item, sizeof item);) {
    int l = !strcmp(item, "en") ? 0 : !strcmp(item, "ar") ? 1 : -1;
    if (l < 0 || (r->n_langs == 1 && r->langs[0] == l))
      rc = sc_error_setc(SC_ERR_ARG, "%s: steer.languages: '%s' is not en or ar (or is repeated)", c->source, item);
    else r->langs[r->n_langs++] = l;
  }
  if (!rc && !r->n_langs) rc = sc_error_setc(SC_ERR_ARG, "%s: steer.languages: no language given", c->source);
  for (const char *p = c->steer.k; !rc && next_item(&p, item, sizeof item);) {
    char *end = NULL;
    long k = strtol(item, &end, 10);
    if (!*item || *end || k < 1 || k > AN_STEER_MAX_FEATURES || r->n_k >= SP_MAX_K)
      rc = sc_error_setc(SC_ERR_ARG, "%s: steer.k: '%s' is not a positive integer", c->source, item);
    else r->ks[r->n_k++] = (int)k;
  }
  if (!rc && !r->n_k) rc = sc_error_setc(SC_ERR_ARG, "%s: steer.k: no size given", c->source);
  if (!rc && an_steer_mode_parse(c->steer.mode, &r->op))
    rc = sc_error_prefix(SC_ERR_ARG, c->source);
  if (!rc && !c->model.path) rc = sc_error_setc(SC_ERR_ARG, "%s: model.path is required by steer", c->source);
  return rc;
}

/* ==== Model ==== */

static int load_model(sp_run *r) {
  const char *dir = r->cfg->model.path;
  char *tp = sc_path_join(dir, "tokenizer.json");
  int rc = tp ? g3_model_load(&r->m, dir) : oom();
  if (!rc) rc = g3_vision_load(&r->v, r->m->ckpt, &r->m->cfg, dir);
  if (!rc) rc = tok_load(&r->tok, tp);
  free(tp);
  if (!rc) {
    r->m->precision = r->cfg->steer.precision == SC_CONFIG_BF16 ? SC_PRECISION_BF16 : SC_PRECISION_F32;
    r->v->precision = r->m->precision;
    g3_gen_opts_init(&r->gen, r->m);
    r->gen.max_new_tokens = (int)r->cfg->steer.max_new_tokens;
    rc = g3_gen_eos_load(&r->gen, dir);
  }
  for (int l = 0; !rc && l < 2; l++) rc = an_lexicon_load(l == 0 ? AN_LANG_EN : AN_LANG_AR, &r->lex[l]);
  size_t img = g3_vision_embeds_floats(r->v) * sizeof(float);
  r->cache_all = (size_t)r->n_images * img <= SP_CACHE_BYTES;
  r->img_one_slot = -1;
  size_t tv = (size_t)(r->gen.max_new_tokens ? r->gen.max_new_tokens : 1) * (size_t)r->m->cfg.text.vocab_size;
  if (!rc && (!(r->img_cache = calloc((size_t)r->n_images, sizeof *r->img_cache)) ||
              !(r->pixels = malloc(g3_vision_pixels_floats(r->v) * sizeof(float))) ||
              !(r->lg_base = malloc(tv * sizeof(float))) || !(r->lg_steer = malloc(tv * sizeof(float)))))
    rc = oom();
  return rc;
}

/* FNV-1a of what changes every caption: model config, decoding settings,
 * default prompts. */
static int make_base_hash(sp_run *r) {
  char *path = sc_path_join(r->cfg->model.path, "config.json"), *buf = NULL, set[256];
  size_t len = 0;
  int rc = path ? sc_read_file(path, (size_t)1 << 20, &buf, &len) : oom();
  uint64_t h = store_fnv1a64(STORE_FNV_INIT, buf, rc ? 0 : len);
  char mode[64];
  an_steer_mode_str(&r->op, mode, sizeof mode);
  snprintf(set, sizeof set, "|max_new=%d|precision=%d|split=%d|max_samples=%llu|mode=%s|", r->gen.max_new_tokens,
           (int)r->cfg->steer.precision, (int)r->cfg->steer.split, (unsigned long long)r->cfg->steer.max_samples, mode);
  h = store_fnv1a64(h, set, strlen(set));
  h = store_fnv1a64(h, r->gen.eos, (size_t)r->gen.n_eos * sizeof r->gen.eos[0]);
  h = store_fnv1a64(h, r->cfg->extract.default_prompt_en, strlen(r->cfg->extract.default_prompt_en) + 1);
  h = store_fnv1a64(h, r->cfg->extract.default_prompt_ar, strlen(r->cfg->extract.default_prompt_ar) + 1);
  r->base_hash = h;
  free(path);
  free(buf);
  return rc;
}

/* ==== feature_analysis.json and the SAEs ==== */

static int read_ranking(const sc_json *lang, const char *path, int layer, sp_layer *l, int li) {
  const sc_json *rk = sc_json_get(lang, "ranking");
  if (!sc_json_is_array(rk)) return sc_error_setc(SC_ERR_FORMAT, "%s: layer %d: %s: missing array 'ranking'", path, layer, LANGS[li]);
  int n = sc_json_size(rk);
  if (!(l->rank[li] = malloc((size_t)(n ? n : 1) * sizeof(int32_t)))) return oom();
  for (int i = 0; i < n; i++) {
    int64_t f;
    if (sc_json_i64(sc_json_get(sc_json_at(rk, i), "feature"), &f) || f < 0 || f >= l->s->cfg.n)
      return sc_error_setc(SC_ERR_FORMAT, "%s: layer %d: %s: ranking[%d]: missing or bad 'feature' (SAE has %lld)", path,
                           layer, LANGS[li], i, (long long)l->s->cfg.n);
    l->rank[li][i] = (int32_t)f;
  }
  l->n_rank[li] = n;
  return 0;
}

static int load_sparsity(sp_layer *l) {
  char *path = sc_path_join(l->sae_dir, "sparsity.safetensors");
  st_file *f = NULL;
  if (!path) return oom();
  int rc = st_file_open(&f, path);
  const st_tensor *t = rc ? NULL : st_file_find(f, "sparsity");
  if (!rc && (!t || t->dtype != SC_DTYPE_F32 || t->n_elements != l->s->cfg.n))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: expected an F32 tensor 'sparsity' of %lld values", path, (long long)l->s->cfg.n);
  if (!rc && !(l->logd = malloc((size_t)l->s->cfg.n * sizeof(float)))) rc = oom();
  if (!rc) memcpy(l->logd, t->data, (size_t)l->s->cfg.n * sizeof(float));
  for (int64_t i = 0; !rc && i < l->s->cfg.n; i++)
    if (!isfinite(l->logd[i])) rc = sc_error_setc(SC_ERR_FORMAT, "%s: sparsity[%lld] is not finite", path, (long long)i);
  st_file_free(f);
  free(path);
  return rc;
}

static int layer_wanted(const sc_config *c, int layer) {
  if (!strcmp(c->steer.layers, "all")) return 1;
  char item[64];
  for (const char *p = c->steer.layers; next_item(&p, item, sizeof item);)
    if (atoi(item) == layer && *item) return 1;
  return 0;
}

/* Each configured layer must be in the file. */
static int check_layers_listed(const sp_run *r, const char *path) {
  if (!strcmp(r->cfg->steer.layers, "all")) return 0;
  char item[64];
  for (const char *p = r->cfg->steer.layers; next_item(&p, item, sizeof item);) {
    char *end = NULL;
    long L = strtol(item, &end, 10);
    int found = 0;
    for (int i = 0; i < r->n_layers; i++) found |= r->layers[i].layer == L;
    if (!*item || *end || !found)
      return sc_error_setc(SC_ERR_ARG, "%s: steer.layers: layer '%s' is not in %s", r->cfg->source, item, path);
  }
  return 0;
}

static int load_layer(sp_run *r, const sc_json *e, const char *path, sp_layer *l) {
  int64_t L;
  const char *dir = sc_json_str(sc_json_get(e, "sae"));
  if (sc_json_i64(sc_json_get(e, "layer"), &L) || L < 0 || L > 100000 || !dir)
    return sc_error_setc(SC_ERR_FORMAT, "%s: a layer entry lacks 'layer' or 'sae'", path);
  l->layer = (int)L;
  l->sae_dir = dir[0] == '/' ? strdup(dir) : sc_path_join(r->cfg->output_dir, dir); /* relative: to output_dir */
  if (!l->sae_dir) return oom();
  int hook = 0;
  int rc = sae_load(&l->s, l->sae_dir);
  if (!rc) rc = an_sae_hook_layer(l->s, l->sae_dir, &hook);
  if (!rc && hook != l->layer)
    rc = sc_error_setc(SC_ERR_ARG, "%s: hook names layer %d, %s says %d", l->sae_dir, hook, path, l->layer);
  const g3_text_config *t = &r->m->cfg.text;
  if (!rc && l->s->cfg.d != t->hidden_size)
    rc = sc_error_setc(SC_ERR_ARG, "%s: SAE input width d_in %lld does not match the model's hidden size %d",
                       l->sae_dir, (long long)l->s->cfg.d, t->hidden_size);
  if (!rc && l->layer >= t->num_hidden_layers)
    rc = sc_error_setc(SC_ERR_ARG, "%s: layer %d is out of range: the model has layers 0..%d", l->sae_dir, l->layer,
                       t->num_hidden_layers - 1);
  if (!rc) rc = load_sparsity(l);
  const sc_json *langs = sc_json_get(e, "languages");
  for (int li = 0; !rc && li < 2; li++) {
    const sc_json *lj = sc_json_get(langs, LANGS[li]);
    if (lj) rc = read_ranking(lj, path, l->layer, l, li);
  }
  return rc;
}

static int load_analysis(sp_run *r) {
  char *path = sc_path_join(r->cfg->output_dir, "results/feature_analysis.json");
  sc_json *j = NULL;
  if (!path) return oom();
  int rc = sc_is_file(path) ? sc_json_load(path, SP_JSON_MAX, &j)
                            : sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap analyze` first", path);
  const sc_json *layers = rc ? NULL : sc_json_get(j, "layers");
  if (!rc && !sc_json_is_array(layers)) rc = sc_error_setc(SC_ERR_FORMAT, "%s: missing array 'layers'", path);
  int n = rc ? 0 : sc_json_size(layers);
  if (!rc && !(r->layers = calloc((size_t)(n ? n : 1), sizeof *r->layers))) rc = oom();
  for (int i = 0; !rc && i < n; i++) {
    const sc_json *e = sc_json_at(layers, i);
    int64_t L;
    if (sc_json_i64(sc_json_get(e, "layer"), &L)) rc = sc_error_setc(SC_ERR_FORMAT, "%s: layers[%d]: missing 'layer'", path, i);
    else if (layer_wanted(r->cfg, (int)L)) rc = load_layer(r, e, path, &r->layers[r->n_layers++]);
  }
  if (!rc) rc = check_layers_listed(r, path);
  if (!rc && !r->n_layers) rc = sc_error_setc(SC_ERR_ARG, "%s: steer.layers: no layer of %s to steer", r->cfg->source, path);
  sc_json_free(j);
  free(path);
  return rc;
}

/* ==== Conditions ==== */

static int bin_of(float logd) { return (int)floor((double)logd / SP_BIN_WIDTH); }

/* k latents matched to targ[0..k) by firing-density bin (steer.h). */
static int draw_random(const sp_layer *l, const int32_t *targ, int k, uint64_t seed, int32_t *out) {
  int64_t n = l->s->cfg.n;
  unsigned char *used = calloc((size_t)n, 1);
  int64_t *cand = malloc((size_t)n * sizeof *cand);
  if (!used || !cand) {
    free(used), free(cand);
    return oom();
  }
  for (int i = 0; i < k; i++) used[targ[i]] = 1;
  sc_rng rng;
  sc_rng_seed(&rng, seed);
  int rc = 0;
  for (int i = 0; i < k && !rc; i++) {
    int b = bin_of(l->logd[targ[i]]);
    int64_t nc = 0;
    for (int w = 0; nc == 0 && w <= 64; w++)
      for (int64_t j = 0; j < n; j++) {
        int bj = bin_of(l->logd[j]);
        if (!used[j] && (bj == b - w || bj == b + w)) cand[nc++] = j;
      }
    if (nc == 0) {
      rc = sc_error_setc(SC_ERR_ARG, "%s: cannot draw %d random features besides the %d targeted ones (d_sae %lld)",
                         l->sae_dir, k, k, (long long)n);
      break;
    }
    int64_t pick = cand[sc_rng_below(&rng, (uint64_t)nc)];
    used[pick] = 1;
    out[i] = (int32_t)pick;
  }
  free(used), free(cand);
  return rc;
}

static uint64_t name_seed(uint64_t seed, const char *name) {
  return store_fnv1a64(STORE_FNV_INIT ^ seed, name, strlen(name));
}

static int add_cond(sp_run *r, int lang, int li, int kind, int k, int rep, int src, const int32_t *feat, int n_feat) {
  sp_cond *c = &r->conds[r->n_conds++];
  memset(c, 0, sizeof *c);
  c->lang = lang, c->li = li, c->kind = kind, c->k = k, c->rep = rep, c->source_lang = src;
  if (kind == K_BASELINE) snprintf(c->name, sizeof c->name, "%s_baseline", LANGS[lang]);
  else if (kind == K_RANDOM)
    snprintf(c->name, sizeof c->name, "%s_L%d_random%d_k%d", LANGS[lang], r->layers[li].layer, rep, k);
  else
    snprintf(c->name, sizeof c->name, "%s_L%d_%s_k%d", LANGS[lang], r->layers[li].layer,
             kind == K_TARGETED ? "targeted" : "other", k);
  if (n_feat) {
    if (!(c->feat = malloc((size_t)n_feat * sizeof *c->feat))) return oom();
    c->n_feat = n_feat;
    if (feat) memcpy(c->feat, feat, (size_t)n_feat * sizeof *feat);
    else {
      const sp_cond *t = c - 1 - (rep - 1); /* the targeted condition of this (lang, layer, k) */
      int rc = draw_random(&r->layers[li], t->feat, n_feat, name_seed(r->cfg->seed, c->name), c->feat);
      if (rc) return rc;
    }
  }
  uint64_t h = store_fnv1a64(r->base_hash, c->name, strlen(c->name) + 1);
  h = store_fnv1a64(h, c->feat, (size_t)c->n_feat * sizeof *c->feat);
  snprintf(c->hash, sizeof c->hash, "fnv1a64:%016llx", (unsigned long long)h);
  return 0;
}

static int min_int(int a, int b) { return a < b ? a : b; }

static int plan_conditions(sp_run *r) {
  int R = (int)r->cfg->steer.random_controls;
  size_t max = (size_t)r->n_langs * (1 + (size_t)r->n_layers * (size_t)r->n_k * (size_t)(2 + R));
  if (!(r->conds = calloc(max, sizeof *r->conds))) return oom();
  int rc = 0;
  for (int i = 0; !rc && i < r->n_langs; i++) rc = add_cond(r, r->langs[i], -1, K_BASELINE, 0, 0, -1, NULL, 0);
  for (int i = 0; !rc && i < r->n_langs; i++) {
    int lang = r->langs[i], other = 1 - lang;
    for (int li = 0; !rc && li < r->n_layers; li++) {
      const sp_layer *l = &r->layers[li];
      for (int ki = 0; !rc && ki < r->n_k; ki++) {
        int k = min_int(r->ks[ki], l->n_rank[lang]);
        if (k < 1) {
          rc = sc_error_setc(SC_ERR_ARG, "%s: layer %d has no ranked %s feature to steer", r->cfg->source, l->layer,
                             LANGS[lang]);
          break;
        }
        rc = add_cond(r, lang, li, K_TARGETED, r->ks[ki], 0, lang, l->rank[lang], k);
        for (int j = 1; !rc && j <= R; j++) rc = add_cond(r, lang, li, K_RANDOM, r->ks[ki], j, lang, NULL, k);
        int ko = min_int(r->ks[ki], l->n_rank[other]);
        if (!rc && ko > 0) rc = add_cond(r, lang, li, K_OTHER, r->ks[ki], 0, other, l->rank[other], ko);
      }
    }
  }
  r->sum->n_conditions = r->n_conds;
  return rc;
}

/* ==== Running one caption ==== */

static const float *image_rows(sp_run *r, const sp_sample *s, int *rc) {
  float **slot = r->cache_all ? &r->img_cache[s->image_slot] : &r->img_one;
  if (*slot && (r->cache_all || r->img_one_slot == s->image_slot)) return *slot;
  if (!*slot && !(*slot = malloc(g3_vision_embeds_floats(r->v) * sizeof(float)))) {
    *rc = oom();
    return NULL;
  }
  r->img_one_slot = -1;
  *rc = g3_image_pixels(r->v, r->cfg->model.path, s->image_path, r->pixels);
  if (!*rc) *rc = g3_vision_forward(r->v, r->pixels, NULL, *slot);
  if (*rc) {
    free(*slot);
    *slot = NULL;
    return NULL;
  }
  r->img_one_slot = s->image_slot;
  return *slot;
}

/* Teacher-forced logits of the baseline caption b[0..T) under st (NULL =
 * no edit): row t predicts b[t]. */
static int tf_logits(sp_run *r, const int32_t *prompt, int64_t np, const float *img, const int32_t *b, int64_t T,
                     an_steer *st, float *out) {
  if (T < 1) return 0;
  g3_state *s = NULL;
  int rc = g3_state_create(&s, r->m, np + T);
  g3_forward_io io = {.ids = prompt, .n = np, .logits = out, .logits_last = 1, .edit = st ? an_steer_edit : NULL,
                      .edit_user = st};
  if (!rc) rc = g3_forward_image(r->m, s, &io, img, 1);
  if (!rc && T > 1) {
    g3_forward_io io2 = {.ids = b, .n = T - 1, .logits = out + r->m->cfg.text.vocab_size,
                         .edit = st ? an_steer_edit : NULL, .edit_user = st};
    rc = g3_forward(r->m, s, &io2);
  }
  g3_state_free(s);
  return rc;
}

static int64_t content_len(const sp_run *r, const int32_t *ids, int64_t n) {
  if (n > 0)
    for (int e = 0; e < r->gen.n_eos; e++)
      if (ids[n - 1] == r->gen.eos[e]) return n - 1;
  return n;
}

static int add_ids(sc_json *o, const char *key, const int32_t *ids, int64_t n) {
  sc_json *a = sc_json_add(o, key, sc_json_new_array());
  int ok = a != NULL;
  for (int64_t i = 0; ok && i < n; i++) ok = sc_json_add(a, NULL, sc_json_new_num(ids[i])) != NULL;
  return ok;
}

/* The caption line of sample s under condition c. */
static int caption_line(sp_run *r, const sp_cond *c, int64_t si, an_steer *st, sc_afile *f) {
  const sp_sample *s = &r->smp[si];
  const char *text_p = *s->prompt[c->lang] ? s->prompt[c->lang]
                       : c->lang == 0      ? r->cfg->extract.default_prompt_en
                                           : r->cfg->extract.default_prompt_ar;
  int32_t *prompt = NULL, *out = NULL;
  int64_t np = 0, n_out = 0;
  char *text = NULL;
  int rc = 0;
  const float *img = image_rows(r, s, &rc);
  if (!rc) rc = g3_caption_prompt(r->tok, &r->m->cfg, text_p, &prompt, &np);
  g3_gen_opts o = r->gen;
  o.edit = st ? an_steer_edit : NULL, o.edit_user = st;
  if (!rc) rc = g3_caption_generate(r->m, prompt, np, img, 1, &o, &out, &n_out);
  if (!rc) rc = tok_decode(r->tok, out, (size_t)n_out, 1, &text, NULL);
  int male = 0, female = 0;
  if (!rc) rc = an_lexicon_count(r->lex[c->lang], text, strlen(text), &male, &female);
  double kl = 0, dll = 0, chrf = 0;
  if (!rc && c->kind == K_BASELINE) rc = an_chrf(text, strlen(text), text, strlen(text), &chrf);
  if (!rc && c->kind != K_BASELINE) {
    const int32_t *b = r->base_ids[c->lang][si];
    int64_t T = r->base_n[c->lang][si], V = r->m->cfg.text.vocab_size, lim = r->gen.vocab_limit;
    const char *bt = r->base_text[c->lang][si];
    rc = tf_logits(r, prompt, np, img, b, T, NULL, r->lg_base);
    if (!rc) rc = tf_logits(r, prompt, np, img, b, T, st, r->lg_steer);
    for (int64_t t = 0; !rc && t < T; t++) {
      const float *ps = r->lg_steer + t * V, *pb = r->lg_base + t * V;
      kl += an_kl_logits(ps, pb, lim) / (double)T;
      dll += an_logprob(ps, lim, b[t]) - an_logprob(pb, lim, b[t]);
    }
    if (!rc) rc = an_chrf(text, strlen(text), bt, strlen(bt), &chrf);
  }
  sc_json *j = rc ? NULL : sc_json_new_object();
  if (!rc) {
    int ok = j && sc_json_add_num(j, "sample_index", (double)s->sample_index) &&
             sc_json_add_str(j, "image_id", s->image_id) && sc_json_add_str(j, "ground_truth_gender", s->gender) &&
             sc_json_add_str(j, "condition", c->name) && sc_json_add_str(j, "config_hash", c->hash) &&
             sc_json_add_str(j, "caption", text) && add_ids(j, "caption_ids", out, n_out) &&
             sc_json_add_num(j, "male", male) && sc_json_add_num(j, "female", female) &&
             sc_json_add_num(j, "gendered", male + female) && sc_json_add_bool(j, "neutral", male + female == 0) &&
             sc_json_add_num(j, "length", (double)content_len(r, out, n_out)) && sc_json_add_num(j, "kl", kl) &&
             sc_json_add_num(j, "delta_loglik", dll) && sc_json_add_num(j, "chrf", chrf);
    char *line = ok ? sc_json_print(j, 0) : NULL;
    rc = line ? sc_afile_printf(f, "%s\n", line) : oom();
    free(line);
  }
  sc_json_free(j);
  free(prompt), free(out), free(text);
  return rc;
}

/* ==== Condition files ==== */

static char *cond_path(const sp_run *r, const sp_cond *c) {
  char name[128];
  snprintf(name, sizeof name, "%s.jsonl", c->name);
  return sc_path_join(r->cap_dir, name);
}

static int alloc_vals(sp_vals *v, int64_t n) {
  for (int m = 0; m < M_N; m++)
    if (!(v->v[m] = calloc((size_t)(n ? n : 1), sizeof(double)))) return oom();
  return 0;
}

/* Reads one line's measures (and, for a baseline, its caption). 1 = the
 * line does not belong to this run (stale file), 0 ok, < 0 error. */
static int read_line(sp_run *r, const sp_cond *c, int64_t si, const sc_json *j) {
  int64_t idx;
  const char *hash = sc_json_str(sc_json_get(j, "config_hash"));
  if (sc_json_i64(sc_json_get(j, "sample_index"), &idx) || idx != r->smp[si].sample_index || !hash ||
      strcmp(hash, c->hash))
    return 1;
  sp_vals *v = &r->vals[c - r->conds];
  for (int m = 0; m < M_N; m++) {
    const sc_json *x = sc_json_get(j, MEASURES[m]);
    int b;
    if (sc_json_is_number(x)) v->v[m][si] = sc_json_num(x);
    else if (!sc_json_bool(x, &b)) v->v[m][si] = b;
    else return 1;
  }
  if (c->kind != K_BASELINE) return 0;
  const sc_json *ids = sc_json_get(j, "caption_ids");
  const char *text = sc_json_str(sc_json_get(j, "caption"));
  if (!sc_json_is_array(ids) || !text) return 1;
  int n = sc_json_size(ids);
  int32_t *b = malloc((size_t)(n ? n : 1) * sizeof *b);
  if (!b) return oom();
  for (int i = 0; i < n; i++) {
    int64_t id;
    if (sc_json_i64(sc_json_at(ids, i), &id) || id < 0 || id >= r->m->cfg.text.vocab_size || n > r->gen.max_new_tokens) {
      free(b);
      return 1;
    }
    b[i] = (int32_t)id;
  }
  free(r->base_ids[c->lang][si]), free(r->base_text[c->lang][si]);
  r->base_ids[c->lang][si] = b;
  r->base_n[c->lang][si] = n;
  return (r->base_text[c->lang][si] = strdup(text)) ? 0 : oom();
}

/* Loads c's file when it is complete for this run: 1 loaded, 0 absent or
 * stale (to be computed), < 0 error. */
static int load_cond(sp_run *r, const sp_cond *c) {
  char *path = cond_path(r, c), *buf = NULL;
  size_t len = 0;
  if (!path) return oom();
  int rc = sc_is_file(path) ? sc_read_file(path, SP_JSON_MAX, &buf, &len) : 0;
  int64_t si = 0;
  int stale = !buf;
  for (size_t at = 0; !rc && !stale && at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    sc_json *j = NULL;
    if (si >= r->n_smp || sc_json_parse(buf + at, end - at, path, &j)) stale = 1;
    else {
      int x = read_line(r, c, si++, j);
      if (x < 0) rc = x;
      stale |= x > 0;
    }
    sc_json_free(j);
    at = end + 1;
  }
  if (!rc) sc_error_clear(); /* a stale file is recomputed, not an error */
  free(buf);
  free(path);
  if (rc) return rc;
  return !stale && si == r->n_smp;
}

static int run_cond(sp_run *r, const sp_cond *c) {
  an_steer *st = NULL;
  int rc = 0;
  if (c->kind != K_BASELINE) {
    const sp_layer *l = &r->layers[c->li];
    rc = an_steer_create(&st, r->m->cfg.text.num_hidden_layers, r->m->cfg.text.hidden_size);
    if (!rc) rc = an_steer_add(st, l->s, l->sae_dir, l->layer, c->feat, c->n_feat, r->op);
  }
  char *path = cond_path(r, c);
  sc_afile f = {0};
  if (!rc) rc = path ? sc_afile_open(&f, path) : oom();
  for (int64_t si = 0; !rc && si < r->n_smp; si++) {
    rc = caption_line(r, c, si, st, &f);
    sc_progress_add(r->prog, 1);
  }
  if (!rc) rc = sc_afile_commit(&f);
  else sc_afile_abort(&f);
  an_steer_free(st);
  free(path);
  if (!rc) rc = load_cond(r, c) == 1 ? 0 : sc_error_setc(SC_ERR_INTERNAL, "steer: %s: written file does not read back", c->name);
  return rc;
}

static int run_conditions(sp_run *r) {
  int rc = sc_mkdirs(r->cap_dir);
  if (!rc && !(r->vals = calloc((size_t)r->n_conds, sizeof *r->vals))) rc = oom();
  for (int l = 0; !rc && l < 2; l++)
    if (!(r->base_ids[l] = calloc((size_t)r->n_smp, sizeof(int32_t *))) ||
        !(r->base_n[l] = calloc((size_t)r->n_smp, sizeof(int64_t))) ||
        !(r->base_text[l] = calloc((size_t)r->n_smp, sizeof(char *))))
      rc = oom();
  for (int i = 0; !rc && i < r->n_conds; i++) rc = alloc_vals(&r->vals[i], r->n_smp);
  /* Which conditions are on disk already. A baseline recomputed with the
   * same hash gives the same bytes (deterministic), so the steered files
   * measured against it stay valid; any input that changes it changes
   * base_hash and with it every condition's hash. */
  unsigned char *done = rc ? NULL : calloc((size_t)r->n_conds, 1);
  if (!rc && !done) rc = oom();
  int todo = 0;
  for (int i = 0; !rc && i < r->n_conds; i++) {
    int x = load_cond(r, &r->conds[i]);
    if (x < 0) rc = x;
    else done[i] = (unsigned char)x;
  }
  for (int i = 0; !rc && i < r->n_conds; i++) todo += !done[i];
  r->sum->n_skipped = r->n_conds - todo;
  r->prog = rc ? NULL : sc_progress_create("steer", (int64_t)todo * r->n_smp, "captions");
  for (int i = 0; !rc && i < r->n_conds; i++)
    if (!done[i]) {
      rc = run_cond(r, &r->conds[i]);
      r->sum->n_run += !rc;
    }
  if (r->prog) rc ? sc_progress_abort(r->prog) : sc_progress_finish(r->prog);
  free(done);
  return rc;
}

/* ==== Statistics ==== */

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double mean_of(const double *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += x[i];
  return n ? s / (double)n : 0;
}

/* Linear-interpolated quantile of sorted x[0..n). */
static double quantile(const double *x, int64_t n, double q) {
  double at = q * (double)(n - 1);
  int64_t lo = (int64_t)floor(at);
  if (lo >= n - 1) return x[n - 1];
  return x[lo] + (at - (double)lo) * (x[lo + 1] - x[lo]);
}

/* Percentile bootstrap CI of the mean of d over images. */
static int bootstrap_ci(const double *d, int64_t n, uint64_t B, uint64_t seed, double *lo, double *hi) {
  double *means = malloc((size_t)B * sizeof *means);
  if (!means) return oom();
  sc_rng rng;
  sc_rng_seed(&rng, seed);
  for (uint64_t b = 0; b < B; b++) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += d[sc_rng_below(&rng, (uint64_t)n)];
    means[b] = s / (double)n;
  }
  qsort(means, (size_t)B, sizeof *means, cmp_dbl);
  *lo = quantile(means, (int64_t)B, (1 - SP_CI) / 2);
  *hi = quantile(means, (int64_t)B, 1 - (1 - SP_CI) / 2);
  free(means);
  return 0;
}

static int base_index(const sp_run *r, int lang) {
  for (int i = 0; i < r->n_conds; i++)
    if (r->conds[i].kind == K_BASELINE && r->conds[i].lang == lang) return i;
  return -1;
}

/* d[i] = condition − baseline (or the value itself for relative measures). */
static void paired(const sp_run *r, int ci, int m, double *d) {
  const double *x = r->vals[ci].v[m], *b = r->vals[base_index(r, r->conds[ci].lang)].v[m];
  for (int64_t i = 0; i < r->n_smp; i++) d[i] = relative_measure(m) ? x[i] : x[i] - b[i];
}

static int cond_json(sp_run *r, int ci, double *d, sc_json *arr) {
  const sp_cond *c = &r->conds[ci];
  sc_json *o = sc_json_add(arr, NULL, sc_json_new_object());
  char cap[160];
  snprintf(cap, sizeof cap, "steering_captions/%s.jsonl", c->name);
  int ok = o && sc_json_add_str(o, "name", c->name) && sc_json_add_str(o, "language", LANGS[c->lang]) &&
           sc_json_add_str(o, "kind", KIND_NAMES[c->kind]) && sc_json_add_str(o, "captions", cap);
  if (ok && c->kind == K_BASELINE)
    ok = sc_json_add(o, "layer", sc_json_new_null()) && sc_json_add(o, "k", sc_json_new_null()) &&
         sc_json_add(o, "replicate", sc_json_new_null()) && sc_json_add(o, "feature_language", sc_json_new_null());
  else if (ok)
    ok = sc_json_add_num(o, "layer", r->layers[c->li].layer) && sc_json_add_num(o, "k", c->k) &&
         (c->kind == K_RANDOM ? sc_json_add_num(o, "replicate", c->rep) != NULL
                              : sc_json_add(o, "replicate", sc_json_new_null()) != NULL) &&
         sc_json_add_str(o, "feature_language", LANGS[c->source_lang]);
  ok = ok && add_ids(o, "features", c->feat, c->n_feat) && sc_json_add_str(o, "config_hash", c->hash);
  sc_json *means = ok ? sc_json_add(o, "means", sc_json_new_object()) : NULL;
  for (int m = 0; means && m < M_N; m++) ok = ok && sc_json_add_num(means, MEASURES[m], mean_of(r->vals[ci].v[m], r->n_smp));
  if (!ok || !means) return oom();
  if (c->kind == K_BASELINE) return sc_json_add(o, "vs_baseline", sc_json_new_null()) ? 0 : oom();
  sc_json *vs = sc_json_add(o, "vs_baseline", sc_json_new_object());
  for (int m = 0; vs && m < M_N; m++) {
    double lo = 0, hi = 0;
    paired(r, ci, m, d);
    char nm[160];
    snprintf(nm, sizeof nm, "%s|%s", c->name, MEASURES[m]);
    int rc = bootstrap_ci(d, r->n_smp, r->cfg->steer.bootstrap, name_seed(r->cfg->seed, nm), &lo, &hi);
    if (rc) return rc;
    sc_json *e = sc_json_add(vs, MEASURES[m], sc_json_new_object());
    if (!e || !sc_json_add_num(e, "mean_diff", mean_of(d, r->n_smp)) || !sc_json_add_num(e, "ci_low", lo) ||
        !sc_json_add_num(e, "ci_high", hi))
      return oom();
  }
  return vs ? 0 : oom();
}

/* Targeted against its random controls for one (lang, layer, k), measure
 * "gendered": the rank p-value among the controls and a sign-flip test over
 * images of targeted − mean control. */
static int test_json(sp_run *r, int ti, double *d, double *acc, sc_json *arr) {
  const sp_cond *t = &r->conds[ti];
  int n_rand = 0, oi = -1;
  double eff_t, *eff_r = malloc(((size_t)r->cfg->steer.random_controls + 1) * sizeof *eff_r);
  if (!eff_r) return oom();
  paired(r, ti, M_GENDERED, d);
  eff_t = mean_of(d, r->n_smp);
  for (int64_t i = 0; i < r->n_smp; i++) acc[i] = 0;
  for (int j = 0; j < r->n_conds; j++) {
    const sp_cond *c = &r->conds[j];
    if (c->lang != t->lang || c->li != t->li || c->k != t->k) continue;
    if (c->kind == K_OTHER) oi = j;
    if (c->kind != K_RANDOM) continue;
    paired(r, j, M_GENDERED, d);
    eff_r[n_rand++] = mean_of(d, r->n_smp);
    for (int64_t i = 0; i < r->n_smp; i++) acc[i] += d[i];
  }
  sc_json *o = sc_json_add(arr, NULL, sc_json_new_object());
  int ok = o && sc_json_add_str(o, "language", LANGS[t->lang]) && sc_json_add_num(o, "layer", r->layers[t->li].layer) &&
           sc_json_add_num(o, "k", t->k) && sc_json_add_str(o, "measure", "gendered") &&
           sc_json_add_str(o, "targeted", t->name) && sc_json_add_num(o, "targeted_effect", eff_t);
  sc_json *re = ok ? sc_json_add(o, "random_effects", sc_json_new_array()) : NULL;
  int below = 0;
  for (int j = 0; re && j < n_rand; j++) {
    ok = ok && sc_json_add(re, NULL, sc_json_new_num(eff_r[j]));
    below += eff_r[j] <= eff_t;
  }
  if (ok && oi >= 0) {
    paired(r, oi, M_GENDERED, d);
    ok = sc_json_add_num(o, "other_language_effect", mean_of(d, r->n_smp)) != NULL;
  } else if (ok) ok = sc_json_add(o, "other_language_effect", sc_json_new_null()) != NULL;
  if (ok && n_rand) {
    /* D_i = targeted_i − mean control_i; sign flips of D under H0. */
    paired(r, ti, M_GENDERED, d);
    for (int64_t i = 0; i < r->n_smp; i++) d[i] -= acc[i] / n_rand;
    double obs = fabs(mean_of(d, r->n_smp));
    uint64_t P = r->cfg->steer.permutations, ge = 0;
    sc_rng rng;
    char nm[160];
    snprintf(nm, sizeof nm, "%s|signflip", t->name);
    sc_rng_seed(&rng, name_seed(r->cfg->seed, nm));
    for (uint64_t p = 0; p < P; p++) {
      double s = 0;
      for (int64_t i = 0; i < r->n_smp; i++) s += (sc_rng_u64(&rng) >> 63) ? d[i] : -d[i];
      ge += fabs(s / (double)r->n_smp) >= obs - 1e-12;
    }
    ok = sc_json_add_num(o, "random_mean_effect", mean_of(eff_r, n_rand)) &&
         sc_json_add_num(o, "p_rank", (1.0 + below) / (1.0 + n_rand)) &&
         sc_json_add_num(o, "signflip_mean_diff", mean_of(d, r->n_smp)) &&
         sc_json_add_num(o, "signflip_p", (1.0 + (double)ge) / (1.0 + (double)P)) &&
         sc_json_add_num(o, "permutations", (double)P);
  } else if (ok) {
    ok = sc_json_add(o, "random_mean_effect", sc_json_new_null()) && sc_json_add(o, "p_rank", sc_json_new_null()) &&
         sc_json_add(o, "signflip_mean_diff", sc_json_new_null()) && sc_json_add(o, "signflip_p", sc_json_new_null()) &&
         sc_json_add_num(o, "permutations", 0);
  }
  free(eff_r);
  return ok ? 0 : oom();
}

static int add_list(sc_json *o, const char *key, const int *v, int n, int names) {
  sc_json *a = sc_json_add(o, key, sc_json_new_array());
  int ok = a != NULL;
  for (int i = 0; ok && i < n; i++) ok = sc_json_add(a, NULL, names ? sc_json_new_str(LANGS[v[i]]) : sc_json_new_num(v[i])) != NULL;
  return ok;
}

static int settings_json(const sp_run *r, sc_json *root) {
  static const char *const splits[] = {"train", "val", "test", "all"};
  char mode[64];
  int layers[256], nl = 0;
  for (int i = 0; i < r->n_layers && nl < 256; i++) layers[nl++] = r->layers[i].layer;
  an_steer_mode_str(&r->op, mode, sizeof mode);
  sc_json *s = sc_json_add(root, "settings", sc_json_new_object());
  int ok = s && sc_json_add_str(s, "mode", mode) && sc_json_add_str(s, "split", splits[r->cfg->steer.split]) &&
           sc_json_add_num(s, "n_samples", (double)r->n_smp) &&
           sc_json_add_num(s, "max_new_tokens", r->gen.max_new_tokens) &&
           sc_json_add_str(s, "precision", r->cfg->steer.precision == SC_CONFIG_BF16 ? "bf16" : "f32") &&
           add_list(s, "languages", r->langs, r->n_langs, 1) && add_list(s, "layers", layers, nl, 0) &&
           add_list(s, "k", r->ks, r->n_k, 0) &&
           sc_json_add_num(s, "random_controls", (double)r->cfg->steer.random_controls) &&
           sc_json_add_num(s, "bootstrap", (double)r->cfg->steer.bootstrap) &&
           sc_json_add_num(s, "permutations", (double)r->cfg->steer.permutations) &&
           sc_json_add_num(s, "ci", SP_CI) && sc_json_add_num(s, "frequency_bin_width", SP_BIN_WIDTH) &&
           sc_json_add_str(s, "kl", "mean over baseline caption tokens of KL(P_steered || P_baseline), nats") &&
           sc_json_add_str(s, "chrf", "sacrebleu chrF defaults: char order 6, beta 2, whitespace removed");
  return ok ? 0 : oom();
}

static int write_results(sp_run *r) {
  double *d = malloc((size_t)r->n_smp * sizeof *d), *acc = malloc((size_t)r->n_smp * sizeof *acc);
  sc_json *root = sc_json_new_object();
  int rc = d && acc && root ? 0 : oom();
  if (!rc && (!sc_json_add_str(root, "schema", "saecap.steering_experiments/1") ||
              !sc_json_add_str(root, "saecap_version", SAECAP_VERSION) ||
              !sc_json_add_num(root, "seed", (double)r->cfg->seed)))
    rc = oom();
  if (!rc) rc = settings_json(r, root);
  sc_json *conds = rc ? NULL : sc_json_add(root, "conditions", sc_json_new_array());
  if (!rc && !conds) rc = oom();
  for (int i = 0; !rc && i < r->n_conds; i++) rc = cond_json(r, i, d, conds);
  sc_json *tests = rc ? NULL : sc_json_add(root, "tests", sc_json_new_array());
  if (!rc && !tests) rc = oom();
  for (int i = 0; !rc && i < r->n_conds; i++)
    if (r->conds[i].kind == K_TARGETED) rc = test_json(r, i, d, acc, tests);
  char *text = rc ? NULL : sc_json_print(root, 1);
  if (!rc && !text) rc = oom();
  if (!rc) rc = sc_mkdirs(r->results_dir);
  if (!rc) {
    size_t n = strlen(text);
    text[n] = '\n';
    rc = sc_write_file_atomic(r->sum->results_path, text, n + 1);
  }
  free(text), free(d), free(acc);
  sc_json_free(root);
  return rc;
}

/* ==== The stage ==== */

int sc_steer_run(const sc_config *cfg, sc_steer_summary *out) {
  sp_run r = {.cfg = cfg, .sum = out};
  memset(out, 0, sizeof *out);
  int rc = parse_settings(&r);
  if (!rc) rc = load_samples(&r);
  if (!rc) rc = load_model(&r);
  if (!rc) rc = make_base_hash(&r);
  if (!rc) rc = load_analysis(&r);
  if (!rc) rc = plan_conditions(&r);
  if (!rc) {
    r.results_dir = sc_path_join(cfg->output_dir, "results");
    r.cap_dir = r.results_dir ? sc_path_join(r.results_dir, "steering_captions") : NULL;
    out->results_path = r.results_dir ? sc_path_join(r.results_dir, "steering_experiments.json") : NULL;
    out->n_samples = r.n_smp;
    if (!r.cap_dir || !out->results_path) rc = oom();
  }
  if (!rc) rc = run_conditions(&r);
  if (!rc) rc = write_results(&r);
  run_free(&r);
  if (rc) sc_steer_summary_free(out);
  return rc;
}

void sc_steer_summary_free(sc_steer_summary *s) {
  if (!s) return;
  free(s->results_path);
  memset(s, 0, sizeof *s);
}
