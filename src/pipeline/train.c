/* train.c: the train stage (see train.h). */
#include "pipeline/train.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/json.h"
#include "model/g3_config.h"
#include "pipeline/prepare.h"
#include "sae/sae_io.h"
#include "sae/sae_store_source.h"
#include "sae/sae_train.h"
#include "store/manifest.h"
#include "store/samples.h"

static const char *const LANGS[SC_TRAIN_MAX_LANGS] = {"en", "ar"};
static const char *const SEGMENTS[STORE_N_SEGMENTS] = {"image", "prompt", "caption"};

/* ==== The plan ==== */

typedef struct plan_parse {
  const sc_config *cfg;
  sc_train_plan *p;
  unsigned char seen[SC_TRAIN_MAX_LAYERS];
} plan_parse;

static int add_lang(void *user, const char *item) {
  plan_parse *pp = user;
  for (int l = 0; l < SC_TRAIN_MAX_LANGS; l++) {
    if (strcmp(item, LANGS[l])) continue;
    for (int i = 0; i < pp->p->n_langs; i++)
      if (!strcmp(pp->p->lang[i], item))
        return sc_error_setc(SC_ERR_ARG, "%s: train.languages: '%s' is repeated", pp->cfg->source, item);
    pp->p->lang[pp->p->n_langs++] = LANGS[l];
    return 0;
  }
  return sc_error_setc(SC_ERR_ARG, "%s: train.languages: '%s' is not en or ar", pp->cfg->source, item);
}

static int add_segment(void *user, const char *item) {
  plan_parse *pp = user;
  for (int s = 0; s < STORE_N_SEGMENTS; s++)
    if (!strcmp(item, SEGMENTS[s])) {
      pp->p->segments |= 1u << s;
      return 0;
    }
  return sc_error_setc(SC_ERR_ARG, "%s: train.segments: '%s' is not image, prompt or caption",
                       pp->cfg->source, item);
}

static int add_layer(void *user, const char *item) {
  plan_parse *pp = user;
  char *end = NULL;
  long l = strtol(item, &end, 10);
  if (!*item || *end || l < 0 || l >= SC_TRAIN_MAX_LAYERS)
    return sc_error_setc(SC_ERR_ARG, "%s: train.layers: '%s' is not a layer number (0..%d) or all",
                         pp->cfg->source, item, SC_TRAIN_MAX_LAYERS - 1);
  pp->seen[l] = 1;
  return 0;
}

/* "all": every layer_<L> folder with a manifest under activations/<lang>. */
static int scan_layers(plan_parse *pp, const char *lang) {
  char *dir = sc_path_join(pp->p->acts_dir, lang);
  if (!dir) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  DIR *d = opendir(dir);
  if (!d) {
    int rc = sc_error_setc(SC_ERR_MISSING, "%s: no activations (run `saecap extract` first)", dir);
    free(dir);
    return rc;
  }
  for (struct dirent *e; (e = readdir(d));) {
    char *end = NULL;
    if (strncmp(e->d_name, "layer_", 6)) continue;
    long l = strtol(e->d_name + 6, &end, 10);
    if (!e->d_name[6] || *end || l < 0 || l >= SC_TRAIN_MAX_LAYERS) continue;
    char *sub = sc_path_join(dir, e->d_name), *man = sub ? sc_path_join(sub, STORE_MANIFEST_NAME) : NULL;
    if (man && sc_is_file(man)) pp->seen[l] = 1;
    free(sub), free(man);
  }
  closedir(d);
  free(dir);
  return 0;
}

static int check_dirs(const sc_train_plan *p) {
  for (int j = 0; j < p->n_layers; j++)
    for (int li = 0; li < p->n_langs; li++) {
      char sub[64];
      snprintf(sub, sizeof sub, "%s/layer_%d", p->lang[li], p->layer[j]);
      char *ld = sc_path_join(p->acts_dir, sub), *man = ld ? sc_path_join(ld, STORE_MANIFEST_NAME) : NULL;
      int ok = man && sc_is_file(man);
      int rc = ok ? 0
               : !ld || !man ? sc_error_setc(SC_ERR_NOMEM, "out of memory")
                            : sc_error_setc(SC_ERR_MISSING,
                                            "%s: no activations for layer %d (run `saecap extract` with %d in "
                                            "extract.layers and %s in extract.languages)",
                                            ld, p->layer[j], p->layer[j], p->lang[li]);
      free(ld), free(man);
      if (rc) return rc;
    }
  return 0;
}

/* First occurrence of the NUL-free needle in buf[0..len), or NULL. */
static const char *find_bytes(const char *buf, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; n <= len && i <= len - n; i++)
    if (buf[i] == needle[0] && !memcmp(buf + i, needle, n)) return buf + i;
  return NULL;
}

int sc_train_turn_ids(const char *buf, size_t len, const char *name, int32_t out[2], int *n) {
  *n = 0;
  const char *k = find_bytes(buf, len, "\"added_tokens\""), *end = buf + len, *a = NULL, *e = NULL;
  for (const char *q = k; q && q < end && !a; q++)
    if (*q == '[') a = q;
  int depth = 0, in_str = 0;
  for (const char *q = a; q && q < end && !e; q++) {
    if (in_str) {
      if (*q == '\\') q++;
      else if (*q == '"') in_str = 0;
    } else if (*q == '"') in_str = 1;
    else if (*q == '[' || *q == '{') depth++;
    else if ((*q == ']' || *q == '}') && --depth == 0) e = q + 1;
  }
  if (!e) return sc_error_setc(SC_ERR_FORMAT, "%s: no added_tokens array", name);
  sc_json *arr = NULL;
  int rc = sc_json_parse(a, (size_t)(e - a), name, &arr);
  if (rc) return rc;
  static const char *const turn[] = {"<start_of_turn>", "<end_of_turn>"};
  int found[2] = {0, 0};
  int32_t id_of[2] = {0, 0};
  for (sc_json *t = sc_json_is_array(arr) ? sc_json_first(arr) : NULL; t; t = sc_json_next(t)) {
    const char *content = sc_json_str(sc_json_get(t, "content"));
    int64_t id;
    for (int i = 0; content && i < 2; i++)
      if (!found[i] && !strcmp(content, turn[i]) && !sc_json_i64(sc_json_get(t, "id"), &id) && id >= 0 &&
          id <= INT32_MAX)
        found[i] = 1, id_of[i] = (int32_t)id;
  }
  for (int i = 0; i < 2; i++)
    if (found[i]) out[(*n)++] = id_of[i];
  sc_json_free(arr);
  return 0;
}

/* The turn markers of a tokenizer.json file. Only added_tokens is parsed
 * (the whole file is ~33 MB of vocabulary and merges not needed here). */
static int turn_ids(const char *path, int32_t *cand, int *c) {
  char *buf = NULL;
  size_t len = 0;
  int32_t ids[2];
  int n = 0;
  int rc = sc_read_file(path, (size_t)1 << 30, &buf, &len);
  if (!rc) rc = sc_train_turn_ids(buf, len, path, ids, &n);
  for (int i = 0; !rc && i < n; i++) cand[(*c)++] = ids[i];
  free(buf);
  return rc;
}

int sc_train_special_tokens(const sc_config *cfg, int32_t *ids, int *n) {
  *n = 0;
  if (!cfg->model.path) {
    static const int32_t g3[] = {0, 1, 2, 105, 106, 255999, 256000};
    for (size_t i = 0; i < sizeof g3 / sizeof g3[0]; i++) ids[(*n)++] = g3[i];
    return 0;
  }
  g3_config mc;
  int rc = g3_config_load(cfg->model.path, &mc);
  if (rc) return rc;
  int32_t cand[SC_TRAIN_MAX_SPECIAL];
  int c = 0;
  cand[c++] = mc.text.bos_token_id, cand[c++] = mc.text.pad_token_id;
  for (int i = 0; i < mc.text.n_eos && c < SC_TRAIN_MAX_SPECIAL - 4; i++) cand[c++] = mc.text.eos_token_ids[i];
  if (mc.has_vision) cand[c++] = mc.boi_token_id, cand[c++] = mc.eoi_token_id;
  char *tp = sc_path_join(cfg->model.path, "tokenizer.json");
  if (tp && sc_is_file(tp)) rc = turn_ids(tp, cand, &c);
  free(tp);
  if (rc) return rc;
  for (int i = 0; i < c; i++) { /* unique, in order */
    int dup = cand[i] < 0;
    for (int j = 0; j < *n && !dup; j++) dup = ids[j] == cand[i];
    if (!dup) ids[(*n)++] = cand[i];
  }
  return 0;
}

static int load_split(const sc_config *cfg, sc_train_plan *p) {
  char *sp = sc_path_join(cfg->output_dir, "data/processed/samples.jsonl");
  if (!sp) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  store_samples s = {0};
  int rc = sc_is_file(sp) ? store_samples_load(sp, &s)
                          : sc_error_setc(SC_ERR_MISSING, "%s: missing; run `saecap prepare` first", sp);
  if (!rc) rc = store_samples_split_of(&s, &p->split_of, &p->n_split_of);
  store_samples_free(&s);
  free(sp);
  return rc;
}

int sc_train_plan_make(const sc_config *cfg, int only_layer, sc_train_plan *out) {
  memset(out, 0, sizeof *out);
  plan_parse pp = {.cfg = cfg, .p = out};
  out->acts_dir = sc_path_join(cfg->output_dir, "activations");
  out->saes_dir = sc_path_join(cfg->output_dir, "saes");
  int rc = out->acts_dir && out->saes_dir ? 0 : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = sc_config_list_each(cfg->train.languages, add_lang, &pp);
  if (!rc && out->n_langs == 0) rc = sc_error_setc(SC_ERR_ARG, "%s: train.languages: no language given", cfg->source);
  if (!rc) rc = sc_config_list_each(cfg->train.segments, add_segment, &pp);
  if (!rc && !out->segments) rc = sc_error_setc(SC_ERR_ARG, "%s: train.segments: no segment given", cfg->source);
  if (!rc && only_layer >= 0) {
    if (only_layer >= SC_TRAIN_MAX_LAYERS) rc = sc_error_setc(SC_ERR_ARG, "train: --layer %d is out of range", only_layer);
    else pp.seen[only_layer] = 1;
  } else if (!rc && cfg->train.layers && !strcmp(cfg->train.layers, "all")) {
    rc = scan_layers(&pp, out->lang[0]);
  } else if (!rc) {
    rc = sc_config_list_each(cfg->train.layers, add_layer, &pp);
  }
  for (int l = 0; !rc && l < SC_TRAIN_MAX_LAYERS; l++)
    if (pp.seen[l]) out->layer[out->n_layers++] = l;
  if (!rc && out->n_layers == 0)
    rc = sc_error_setc(SC_ERR_MISSING, "%s: train.layers: no layer to train (no activations extracted?)", cfg->source);
  if (!rc) rc = check_dirs(out);
  if (!rc) rc = sc_train_special_tokens(cfg, out->special, &out->n_special);
  if (!rc) rc = load_split(cfg, out);
  if (rc) sc_train_plan_free(out);
  return rc;
}

void sc_train_plan_free(sc_train_plan *p) {
  if (!p) return;
  free(p->split_of), free(p->acts_dir), free(p->saes_dir);
  memset(p, 0, sizeof *p);
}

static char *layer_dir(const sc_train_plan *p, const char *lang, int layer) {
  char sub[64];
  snprintf(sub, sizeof sub, "%s/layer_%d", lang, layer);
  return sc_path_join(p->acts_dir, sub);
}

int sc_train_open_reader(const sc_train_plan *p, int layer, int lang0, int n_lang, int split,
                         store_reader **out) {
  char *dirs[SC_TRAIN_MAX_LANGS] = {0};
  int rc = 0;
  for (int i = 0; !rc && i < n_lang; i++)
    if (!(dirs[i] = layer_dir(p, p->lang[lang0 + i], layer))) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  store_filter f = store_filter_default();
  f.segments = p->segments;
  f.exclude_tokens = p->special, f.n_exclude_tokens = p->n_special;
  if (split >= 0) {
    f.split_of = p->split_of, f.n_split_of = p->n_split_of;
    f.splits = 1u << split;
  }
  if (!rc) rc = store_reader_open(out, (const char *const *)dirs, n_lang, &f);
  for (int i = 0; i < n_lang; i++) free(dirs[i]);
  return rc;
}

char *sc_train_sae_dir(const sc_train_plan *p, const char *lang, int layer) {
  char sub[64];
  if (lang) snprintf(sub, sizeof sub, "%s/layer_%d", lang, layer);
  else snprintf(sub, sizeof sub, "layer_%d", layer);
  return sc_path_join(p->saes_dir, sub);
}

int sc_train_config_hash(const sc_config *cfg, const sc_train_plan *p, int layer, int lang0, int n_lang,
                         char out[40]) {
  const sc_config_train *t = &cfg->train;
  char set[768];
  snprintf(set, sizeof set,
           "arch=%d d_sae=%llu k=%llu l1=%.17g lr=%.17g batch=%llu steps=%llu warmup=%llu buffer=%llu "
           "precision=%d seed=%llu layer=%d segments=%u",
           (int)t->architecture, (unsigned long long)t->d_sae, (unsigned long long)t->k, t->l1_coefficient,
           t->lr, (unsigned long long)t->batch_size, (unsigned long long)t->steps,
           (unsigned long long)t->warmup_steps, (unsigned long long)t->shuffle_buffer, (int)t->precision,
           (unsigned long long)cfg->seed, layer, p->segments);
  uint64_t h = store_fnv1a64(STORE_FNV_INIT, set, strlen(set));
  h = store_fnv1a64(h, p->special, (size_t)p->n_special * sizeof p->special[0]);
  h = store_fnv1a64(h, p->split_of, (size_t)p->n_split_of);
  for (int i = 0; i < n_lang; i++) {
    char *dir = layer_dir(p, p->lang[lang0 + i], layer);
    store_manifest m;
    int rc = dir ? store_manifest_load(dir, &m) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
    free(dir);
    if (rc) return rc;
    h = store_fnv1a64(h, p->lang[lang0 + i], strlen(p->lang[lang0 + i]) + 1);
    h = store_fnv1a64(h, m.config_hash, strlen(m.config_hash) + 1);
    h = store_fnv1a64(h, &m.total_rows, sizeof m.total_rows);
    store_manifest_free(&m);
  }
  snprintf(out, 40, "fnv1a64:%016" PRIx64, h);
  return 0;
}

/* ==== Training one SAE ==== */

typedef struct unit {
  const sc_config *cfg;
  const sc_train_plan *p;
  int layer, lang0, n_lang;
  const char *lang_dir;   /* NULL (shared) or the language of a per-language SAE */
  char *dir, *state_path, *log_path;
  char hash[40];
  char *log;              /* training_log.jsonl text held in memory */
  size_t log_len, log_cap;
  sc_train_summary *sum;
} unit;

static int log_append(unit *u, const char *line) {
  size_t n = strlen(line);
  if (u->log_len + n + 1 > u->log_cap) {
    size_t cap = (u->log_cap ? u->log_cap * 2 : 4096) + n;
    char *p = realloc(u->log, cap);
    if (!p) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
    u->log = p, u->log_cap = cap;
  }
  memcpy(u->log + u->log_len, line, n + 1);
  u->log_len += n;
  return 0;
}

/* The lines of an existing log up to step `upto` (an interrupted run may have
 * logged past its last state). */
static int log_reload(unit *u, int64_t upto) {
  char *buf = NULL;
  size_t len = 0;
  if (!sc_is_file(u->log_path)) return 0;
  int rc = sc_read_file(u->log_path, (size_t)1 << 30, &buf, &len);
  for (size_t at = 0; !rc && at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    if (!nl) break; /* a cut line is dropped */
    size_t end = (size_t)(nl - buf);
    long long step = -1;
    if (sscanf(buf + at, "{\"step\":%lld", &step) == 1 && step <= upto) {
      buf[end] = 0;
      rc = log_append(u, buf + at);
      if (!rc) rc = log_append(u, "\n");
    }
    at = end + 1;
  }
  free(buf);
  return rc;
}

static int log_step(unit *u, const sae_trainer *t, const sae_loss *l, double lr) {
  char line[512];
  snprintf(line, sizeof line,
           "{\"step\":%" PRId64 ",\"loss\":%.9g,\"mse\":%.9g,\"aux\":%.9g,\"l1\":%.9g,\"l0\":%.9g,"
           "\"dead_fraction\":%.9g,\"lr\":%.9g}\n",
           sae_trainer_step_count(t), l->total, l->mse, l->aux, l->l1, l->l0, sae_trainer_dead_fraction(t), lr);
  return log_append(u, line);
}

static int checkpoint(unit *u, const sae_trainer *t) {
  int rc = sc_write_file_atomic(u->log_path, u->log ? u->log : "", u->log_len);
  if (!rc) rc = sae_trainer_save_state(t, u->state_path);
  return rc;
}

static void train_cfg(const unit *u, int64_t d, int64_t rows, sae_train_cfg *c) {
  const sc_config_train *t = &u->cfg->train;
  sae_arch arch = t->architecture == SC_ARCH_BATCHTOPK ? SAE_ARCH_BATCHTOPK
                  : t->architecture == SC_ARCH_RELU    ? SAE_ARCH_RELU
                                                       : SAE_ARCH_TOPK;
  sae_train_cfg_default(c, arch, d, (int64_t)t->d_sae, arch == SAE_ARCH_RELU ? 0 : (int)t->k);
  c->batch = (int64_t)t->batch_size, c->steps = (int64_t)t->steps, c->lr = t->lr;
  c->warmup_steps = (int64_t)t->warmup_steps, c->l1_coeff = t->l1_coefficient;
  c->seed = u->cfg->seed ^ ((uint64_t)u->layer * 0x9E3779B97F4A7C15ULL);
  c->checkpoint_every = (int64_t)t->checkpoint_every;
  c->bf16_encoder = t->precision == SC_CONFIG_BF16;
  snprintf(c->data_tag, sizeof c->data_tag, "%s", u->hash); /* a state of other data is refused */
  /* A small store is not read several times over for the statistics. */
  if (c->norm_rows > rows) c->norm_rows = rows;
  if (c->median_rows > rows) c->median_rows = rows;
}

/* cfg.json present: finished with this hash (1), or refuse another. */
static int finished(const unit *u, int *done) {
  char *cp = sc_path_join(u->dir, "cfg.json");
  *done = 0;
  if (!cp) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!sc_is_file(cp)) {
    free(cp);
    return 0;
  }
  sc_json *j = NULL;
  int rc = sc_json_load(cp, SAE_CFG_MAX_BYTES, &j);
  const char *h = rc ? NULL : sc_json_str(sc_json_get(sc_json_get(j, "metadata"), "saecap_config_hash"));
  if (!rc && (!h || strcmp(h, u->hash)))
    rc = sc_error_setc(SC_ERR_ARG, "%s: trained with config_hash '%s', this run has '%s' (remove the folder to retrain)",
                       cp, h ? h : "", u->hash);
  *done = !rc;
  sc_json_free(j);
  free(cp);
  return rc;
}

static sc_json *str_list(const char *const *items, int n) {
  sc_json *a = sc_json_new_array();
  for (int i = 0; a && i < n; i++) sc_json_add(a, NULL, sc_json_new_str(items[i]));
  return a;
}

static int save_sae(unit *u, const sae_trainer *t, int64_t rows) {
  sae *s = NULL;
  float *dens = malloc((size_t)u->cfg->train.d_sae * sizeof *dens);
  int rc = dens ? sae_trainer_export(t, &s) : sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  if (rc) {
    free(dens);
    return rc;
  }
  sae_trainer_log_density(t, dens);
  snprintf(s->cfg.hook_name, sizeof s->cfg.hook_name, "blocks.%d.hook_resid_post", u->layer);
  if (u->cfg->model.path) { /* the checkpoint folder's name */
    const char *mp = u->cfg->model.path;
    size_t end = strlen(mp);
    while (end > 1 && mp[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && mp[start - 1] != '/') start--;
    snprintf(s->cfg.model_name, sizeof s->cfg.model_name, "%.*s", (int)(end - start), mp + start);
  }
  const char *segs[STORE_N_SEGMENTS];
  int ns = 0;
  for (int i = 0; i < STORE_N_SEGMENTS; i++)
    if (u->p->segments & (1u << i)) segs[ns++] = SEGMENTS[i];
  static const char *const ARCHS[] = {"topk", "batchtopk", "relu"};
  sae_meta_kv kv[] = {
      {"saecap_layer", sc_json_new_num(u->layer)},
      {"saecap_languages", str_list(u->p->lang + u->lang0, u->n_lang)},
      {"saecap_segments", str_list(segs, ns)},
      {"saecap_trained_architecture", sc_json_new_str(ARCHS[u->cfg->train.architecture])},
      {"saecap_steps", sc_json_new_num((double)u->cfg->train.steps)},
      {"saecap_train_rows", sc_json_new_num((double)rows)},
      {"saecap_input_scale", sc_json_new_num(sae_trainer_scale(t))},
      {"saecap_precision", sc_json_new_str(u->cfg->train.precision == SC_CONFIG_BF16 ? "bf16" : "f32")},
      {"saecap_config_hash", sc_json_new_str(u->hash)},
  };
  rc = sae_save_saelens_meta(s, dens, u->dir, kv, (int)(sizeof kv / sizeof kv[0]));
  sae_free(s);
  free(dens);
  return rc;
}

static int run_unit(unit *u) {
  int done = 0;
  int rc = sc_train_config_hash(u->cfg, u->p, u->layer, u->lang0, u->n_lang, u->hash);
  if (!rc) rc = finished(u, &done);
  if (rc || done) {
    if (done) u->sum->n_skipped++;
    return rc;
  }
  store_reader *r = NULL;
  sae_source *src = NULL;
  sae_trainer *t = NULL;
  rc = sc_train_open_reader(u->p, u->layer, u->lang0, u->n_lang, SC_SPLIT_TRAIN, &r);
  int64_t rows = rc ? 0 : store_reader_n_rows(r);
  if (!rc && rows == 0) {
    store_reader_free(r);
    return sc_error_setc(SC_ERR_ARG,
                         "%s/<lang>/layer_%d: no training rows left after the filters (train.segments, "
                         "special tokens, train split of samples.jsonl)", u->p->acts_dir, u->layer);
  }
  if (!rc) rc = sae_source_store(&src, r, (int64_t)u->cfg->train.shuffle_buffer, u->cfg->seed);
  sae_train_cfg tc;
  if (!rc) {
    train_cfg(u, src->d, rows, &tc);
    rc = sc_mkdirs(u->dir);
  }
  int resumed = !rc && sc_is_file(u->state_path);
  if (!rc && resumed) rc = sae_trainer_resume(&t, &tc, src, u->state_path);
  else if (!rc) rc = sae_trainer_create(&t, &tc, src);
  if (!rc) rc = log_reload(u, resumed ? sae_trainer_step_count(t) : 0);
  if (!rc && resumed) u->sum->n_resumed++;
  int64_t log_every = tc.steps / 500 > 1 ? tc.steps / 500 : 1;
  char label[64];
  snprintf(label, sizeof label, "train layer %d%s%s", u->layer, u->lang_dir ? " " : "", u->lang_dir ? u->lang_dir : "");
  sc_progress *pg = rc ? NULL : sc_progress_create(label, tc.steps, "steps");
  if (pg) sc_progress_set(pg, sae_trainer_step_count(t));
  while (!rc && !sae_trainer_done(t)) {
    sae_loss l;
    double lr = sae_train_base_lr(&tc) * sae_train_lr_factor(&tc, sae_trainer_step_count(t));
    rc = sae_trainer_step(t, &l);
    int64_t s = rc ? 0 : sae_trainer_step_count(t);
    if (!rc) u->sum->steps++;
    if (!rc && (s % log_every == 0 || s == tc.steps || s == 1)) rc = log_step(u, t, &l, lr);
    if (!rc && tc.checkpoint_every > 0 && s % tc.checkpoint_every == 0 && s < tc.steps) rc = checkpoint(u, t);
    if (pg) sc_progress_add(pg, 1);
  }
  if (!rc) rc = checkpoint(u, t);
  if (!rc) rc = save_sae(u, t, rows);
  if (pg) {
    if (rc) sc_progress_abort(pg);
    else sc_progress_finish(pg);
  }
  if (!rc) u->sum->n_trained++;
  sae_trainer_free(t);
  sae_source_free(src);
  return rc;
}

int sc_train_run(const sc_config *cfg, const sc_train_opts *o, sc_train_summary *out) {
  memset(out, 0, sizeof *out);
  sc_train_plan p;
  int rc = sc_train_plan_make(cfg, o ? o->layer : -1, &p);
  if (rc) return rc;
  int per = cfg->train.per_language;
  out->n_saes = p.n_layers * (per ? p.n_langs : 1);
  for (int j = 0; !rc && j < p.n_layers; j++)
    for (int li = 0; !rc && li < (per ? p.n_langs : 1); li++) {
      unit u = {.cfg = cfg, .p = &p, .layer = p.layer[j], .lang0 = per ? li : 0, .n_lang = per ? 1 : p.n_langs,
                .lang_dir = per ? p.lang[li] : NULL, .sum = out};
      u.dir = sc_train_sae_dir(&p, u.lang_dir, u.layer);
      u.state_path = u.dir ? sc_path_join(u.dir, "trainer_state.safetensors") : NULL;
      u.log_path = u.dir ? sc_path_join(u.dir, "training_log.jsonl") : NULL;
      rc = u.state_path && u.log_path ? run_unit(&u) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
      free(u.dir), free(u.state_path), free(u.log_path), free(u.log);
    }
  sc_train_plan_free(&p);
  return rc;
}
