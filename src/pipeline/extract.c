/* extract.c: the extraction stage (see extract.h): samples.jsonl -> captions
 * and resid_post rows in the activation store.
 *
 * Capture rides on the decoder's edit hook: it is called after every layer
 * of every forward (the prefill and each cached decode step) with the new
 * rows and their positions, and leaving the rows unchanged makes it a pure
 * observer, so one forward per step fills every configured layer. With
 * feed_last, g3_generate also runs the last generated id, so every caption
 * token has its rows. */
#include "pipeline/extract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/version.h"
#include "io/json.h"
#include "model/caption.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/vision.h"
#include "pipeline/prepare.h"
#include "store/captions.h"
#include "store/manifest.h"
#include "store/samples.h"
#include "store/writer.h"

#define EX_CONFIG_JSON_MAX ((size_t)1 << 20)

static const char *const LANG_NAMES[SC_EXTRACT_MAX_LANGS] = {"en", "ar"};
static const char *const PROMPT_FIELDS[SC_EXTRACT_MAX_LANGS] = {"english_prompt", "arabic_prompt"};
static const char *const SEGMENT_NAMES[STORE_N_SEGMENTS] = {"image", "prompt", "caption"};

/* ==== Samples ==== */

/* What the stage reads of one samples.jsonl row (strings owned). */
typedef struct ex_sample {
  int64_t sample_index;
  int64_t image_index;              /* rows on one image share it */
  char *image_id, *image_path, *split, *gender;
  char *prompt[SC_EXTRACT_MAX_LANGS]; /* english_prompt, arabic_prompt ("" allowed) */
} ex_sample;

typedef struct ex_samples {
  int64_t n;
  ex_sample *rows; /* (n) */
} ex_samples;

static void samples_free(ex_samples *s) {
  for (int64_t i = 0; s->rows && i < s->n; i++) {
    ex_sample *r = &s->rows[i];
    free(r->image_id), free(r->image_path), free(r->split), free(r->gender);
    for (int l = 0; l < SC_EXTRACT_MAX_LANGS; l++) free(r->prompt[l]);
  }
  free(s->rows);
  memset(s, 0, sizeof *s);
}

static int dup_field(const sc_json *o, const char *key, const char *path, int64_t line, char **out) {
  const char *v = sc_json_str(sc_json_get(o, key));
  if (!v) return sc_error_setc(SC_ERR_MISSING, "%s: line %lld: missing string '%s'", path, (long long)line, key);
  *out = strdup(v);
  return *out ? 0 : sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", path);
}

/* The fields beyond store_samples' (which has validated the line). */
static int sample_from_json(const sc_json *o, const char *path, int64_t line, ex_sample *r) {
  int rc = sc_json_i64(sc_json_get(o, "sample_index"), &r->sample_index);
  if (!rc && (sc_json_i64(sc_json_get(o, "image_index"), &r->image_index) || r->image_index < 0))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: missing or bad 'image_index'", path, (long long)line);
  if (!rc) rc = dup_field(o, "image_id", path, line, &r->image_id);
  if (!rc) rc = dup_field(o, "image_path", path, line, &r->image_path);
  if (!rc) rc = dup_field(o, "split", path, line, &r->split);
  if (!rc) rc = dup_field(o, "ground_truth_gender", path, line, &r->gender);
  for (int l = 0; !rc && l < SC_EXTRACT_MAX_LANGS; l++) rc = dup_field(o, PROMPT_FIELDS[l], path, line, &r->prompt[l]);
  return rc;
}

static int parse_rows(const char *buf, size_t len, const char *path, ex_samples *s) {
  int64_t line = 0;
  int rc = 0;
  for (size_t at = 0; at < len && !rc;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    sc_json *j = NULL;
    line++;
    if (strspn(buf + at, " \t\r") < end - at) {
      rc = sc_json_parse(buf + at, end - at, path, &j);
      if (!rc) rc = sample_from_json(j, path, line, &s->rows[s->n++]);
      sc_json_free(j);
    }
    at = end + 1;
  }
  return rc;
}

/* store_samples validates order, split, label and image_id; this reads the
 * rest of each row. */
static int samples_load(const char *path, ex_samples *s) {
  store_samples base;
  char *buf = NULL;
  size_t len = 0;
  memset(s, 0, sizeof *s);
  int rc = store_samples_load(path, &base);
  if (rc) return rc;
  int64_t n = base.n;
  store_samples_free(&base);
  rc = sc_read_file(path, STORE_MAX_SAMPLES_BYTES, &buf, &len);
  if (!rc && !(s->rows = calloc((size_t)(n ? n : 1), sizeof *s->rows)))
    rc = sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", path);
  if (!rc) rc = parse_rows(buf, len, path, s);
  free(buf);
  if (rc) samples_free(s);
  return rc;
}

/* ==== Settings from the config ==== */

typedef struct ex_settings {
  int n_langs;
  int lang[SC_EXTRACT_MAX_LANGS];  /* (n_langs) indices into LANG_NAMES */
  int n_layers;
  int layer[G3_MAX_LAYERS];        /* (n_layers) increasing */
  unsigned keep_segments;          /* bits 1 << STORE_SEG_* */
} ex_settings;

typedef struct ex_parse {
  const sc_config *cfg;
  ex_settings *set;
  int n_model_layers;
  unsigned char seen[G3_MAX_LAYERS];
} ex_parse;

static int add_lang(void *user, const char *item) {
  ex_parse *p = user;
  for (int l = 0; l < SC_EXTRACT_MAX_LANGS; l++) {
    if (strcmp(item, LANG_NAMES[l])) continue;
    for (int i = 0; i < p->set->n_langs; i++)
      if (p->set->lang[i] == l)
        return sc_error_setc(SC_ERR_ARG, "%s: extract.languages: '%s' is repeated", p->cfg->source, item);
    p->set->lang[p->set->n_langs++] = l;
    return 0;
  }
  return sc_error_setc(SC_ERR_ARG, "%s: extract.languages: '%s' is not en or ar", p->cfg->source, item);
}

static int add_layer(void *user, const char *item) {
  ex_parse *p = user;
  char *end = NULL;
  long l = strtol(item, &end, 10);
  if (!*item || *end || l < 0 || l >= p->n_model_layers)
    return sc_error_setc(SC_ERR_ARG, "%s: extract.layers: layer '%s' is out of range [0, %d]",
                         p->cfg->source, item, p->n_model_layers - 1);
  p->seen[l] = 1;
  return 0;
}

static int drop_segment(void *user, const char *item) {
  ex_parse *p = user;
  for (int s = 0; s < STORE_N_SEGMENTS; s++)
    if (!strcmp(item, SEGMENT_NAMES[s])) {
      p->set->keep_segments &= ~(1u << s);
      return 0;
    }
  return sc_error_setc(SC_ERR_ARG, "%s: extract.drop_segments: '%s' is not image, prompt or caption",
                       p->cfg->source, item);
}

static int settings_parse(const sc_config *cfg, int n_model_layers, ex_settings *set) {
  ex_parse p = {.cfg = cfg, .set = set, .n_model_layers = n_model_layers};
  memset(set, 0, sizeof *set);
  set->keep_segments = (1u << STORE_N_SEGMENTS) - 1;
  int rc = sc_config_list_each(cfg->extract.languages, add_lang, &p);
  if (!rc && set->n_langs == 0)
    rc = sc_error_setc(SC_ERR_ARG, "%s: extract.languages: no language given", cfg->source);
  int all = !strcmp(cfg->extract.layers, "all");
  if (!rc && all) memset(p.seen, 1, (size_t)n_model_layers);
  if (!rc && !all) rc = sc_config_list_each(cfg->extract.layers, add_layer, &p);
  for (int l = 0; !rc && l < n_model_layers; l++)
    if (p.seen[l]) set->layer[set->n_layers++] = l;
  if (!rc && set->n_layers == 0)
    rc = sc_error_setc(SC_ERR_ARG, "%s: extract.layers: no layer given", cfg->source);
  if (!rc) rc = sc_config_list_each(cfg->extract.drop_segments, drop_segment, &p);
  if (!rc && cfg->extract.rows_per_shard < 1)
    rc = sc_error_setc(SC_ERR_ARG, "%s: extract.rows_per_shard must be >= 1", cfg->source);
  return rc;
}

/* ==== The run ==== */

/* Everything one run holds; zeroed so one free path works. */
typedef struct ex_run {
  const sc_config *cfg;
  ex_settings set;
  ex_samples smp;
  int64_t lo, hi;                      /* the slice: rows [lo, hi) of smp */
  g3_model *m;
  g3_vision *v;
  tok_tokenizer *tok;
  g3_gen_opts gen;
  char *config_hash;                   /* "fnv1a64:<hex>" of model config + settings */
  store_writer *w[SC_EXTRACT_MAX_LANGS][G3_MAX_LAYERS]; /* [lang slot][layer slot] */
  store_captions *cap[SC_EXTRACT_MAX_LANGS];
  float *pixels, *image;               /* (3,S,S), (M, hidden) of image img_index */
  int64_t img_index;                   /* image_index held in image, -1 none */
  float *act[G3_MAX_LAYERS];           /* by model layer: (cap_rows, hidden) or NULL */
  int32_t *pos, *ids;                  /* (cap_rows) row metadata */
  uint8_t *seg;                        /* (cap_rows) */
  int64_t cap_rows;
  sc_extract_summary *sum;
} ex_run;

static void run_free(ex_run *r) {
  for (int l = 0; l < SC_EXTRACT_MAX_LANGS; l++) {
    for (int j = 0; j < G3_MAX_LAYERS; j++) store_writer_free(r->w[l][j]);
    store_captions_free(r->cap[l]);
  }
  for (int j = 0; j < G3_MAX_LAYERS; j++) free(r->act[j]);
  g3_vision_free(r->v);
  g3_model_free(r->m);
  tok_free(r->tok);
  samples_free(&r->smp);
  free(r->config_hash), free(r->pixels), free(r->image), free(r->pos), free(r->ids), free(r->seg);
}

/* FNV-1a of the model's config.json and every setting that changes rows or
 * captions, so a rerun with another model or settings is refused by the
 * writers instead of mixing rows. */
static int make_config_hash(ex_run *r) {
  const sc_config_extract *e = &r->cfg->extract;
  char *path = sc_path_join(r->cfg->model.path, "config.json"), *buf = NULL, set[256];
  size_t len = 0;
  int rc = path ? sc_read_file(path, EX_CONFIG_JSON_MAX, &buf, &len) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  uint64_t h = store_fnv1a64(STORE_FNV_INIT, buf, rc ? 0 : len);
  snprintf(set, sizeof set, "|max_new=%llu|precision=%d|drop=%s|bos=%d|eos=", (unsigned long long)e->max_new_tokens,
           (int)e->precision, e->drop_segments, e->drop_bos);
  h = store_fnv1a64(h, set, strlen(set));
  h = store_fnv1a64(h, r->gen.eos, (size_t)r->gen.n_eos * sizeof r->gen.eos[0]);
  h = store_fnv1a64(h, e->default_prompt_en, strlen(e->default_prompt_en) + 1);
  h = store_fnv1a64(h, e->default_prompt_ar, strlen(e->default_prompt_ar) + 1);
  r->config_hash = rc ? NULL : malloc(32);
  if (!rc && !r->config_hash) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) snprintf(r->config_hash, 32, "fnv1a64:%016llx", (unsigned long long)h);
  free(path);
  free(buf);
  return rc;
}

/* Model, tower, tokenizer, generation options; checks that only read. */
static int load_model(ex_run *r) {
  const char *dir = r->cfg->model.path;
  char *tp = sc_path_join(dir, "tokenizer.json");
  int rc = tp ? g3_model_load(&r->m, dir) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = g3_vision_load(&r->v, r->m->ckpt, &r->m->cfg, dir);
  if (!rc) rc = tok_load(&r->tok, tp);
  free(tp);
  if (!rc) {
    r->m->precision = r->cfg->extract.precision == SC_CONFIG_BF16 ? SC_PRECISION_BF16 : SC_PRECISION_F32;
    r->v->precision = r->m->precision;
    g3_gen_opts_init(&r->gen, r->m);
    r->gen.max_new_tokens = (int)r->cfg->extract.max_new_tokens;
    r->gen.feed_last = 1;
    rc = g3_gen_eos_load(&r->gen, dir);
  }
  if (!rc) rc = settings_parse(r->cfg, r->m->cfg.text.num_hidden_layers, &r->set);
  if (!rc) rc = make_config_hash(r);
  return rc;
}

static const char *default_prompt(const ex_run *r, int lang) {
  return lang == 0 ? r->cfg->extract.default_prompt_en : r->cfg->extract.default_prompt_ar;
}

/* One writer per (language, layer), then one captions file per language. */
static int open_outputs(ex_run *r) {
  char sub[64];
  int rc = 0;
  for (int li = 0; !rc && li < r->set.n_langs; li++) {
    const char *lang = LANG_NAMES[r->set.lang[li]];
    for (int j = 0; !rc && j < r->set.n_layers; j++) {
      store_writer_config c = store_writer_config_default();
      int32_t bos = r->m->cfg.text.bos_token_id;
      snprintf(sub, sizeof sub, "%s/layer_%d", lang, r->set.layer[j]);
      char *dir = sc_path_join(r->sum->activations_dir, sub);
      if (!dir) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
      c.dir = dir, c.language = lang, c.layer = r->set.layer[j], c.d = r->m->cfg.text.hidden_size;
      c.dtype = r->cfg->extract.dtype == SC_STORE_F32 ? SC_DTYPE_F32 : SC_DTYPE_BF16;
      c.rows_per_shard = (int64_t)r->cfg->extract.rows_per_shard;
      c.model_path = r->cfg->model.path, c.config_hash = r->config_hash;
      c.prompt = default_prompt(r, r->set.lang[li]), c.saecap_version = SAECAP_VERSION;
      c.keep_segments = r->set.keep_segments;
      c.drop_tokens = r->cfg->extract.drop_bos ? &bos : NULL, c.n_drop_tokens = r->cfg->extract.drop_bos;
      rc = store_writer_open(&r->w[li][j], &c);
      free(dir);
    }
  }
  /* Commit every caption: a sample costs far more than an fsync, and the
   * captions' resume point then never holds the shard writers back. */
  for (int li = 0; !rc && li < r->set.n_langs; li++)
    rc = store_captions_open(&r->cap[li], r->sum->captions_dir, LANG_NAMES[r->set.lang[li]], 1);
  return rc;
}

/* The smallest resume point of the language's outputs. */
static int64_t lang_resume(const ex_run *r, int li) {
  int64_t from = store_captions_is_complete(r->cap[li]) ? INT64_MAX : store_captions_resume_sample(r->cap[li]);
  for (int j = 0; j < r->set.n_layers; j++) {
    const store_writer *w = r->w[li][j];
    int64_t f = store_writer_is_complete(w) ? INT64_MAX : store_writer_resume_sample(w);
    if (f < from) from = f;
  }
  return from;
}

/* ==== One sample ==== */

/* The projector rows of the sample's image; the tower runs only when the
 * image differs from the previous sample's. */
static int ensure_image(ex_run *r, const ex_sample *s) {
  if (s->image_index == r->img_index) return 0;
  if (!r->pixels) {
    r->pixels = malloc(g3_vision_pixels_floats(r->v) * sizeof(float));
    r->image = malloc(g3_vision_embeds_floats(r->v) * sizeof(float));
    if (!r->pixels || !r->image) return sc_error_setc(SC_ERR_NOMEM, "extract: out of memory");
  }
  r->img_index = -1;
  int rc = g3_image_pixels(r->v, r->cfg->model.path, s->image_path, r->pixels);
  if (!rc) rc = g3_vision_forward(r->v, r->pixels, NULL, r->image);
  if (rc) return rc;
  r->img_index = s->image_index;
  r->sum->vision_runs++;
  return 0;
}

/* Room for rows rows of capture and metadata. */
static int ensure_rows(ex_run *r, int64_t rows) {
  if (rows <= r->cap_rows) return 0;
  size_t d = (size_t)r->m->cfg.text.hidden_size, n = (size_t)rows;
  for (int j = 0; j < r->set.n_layers; j++) {
    float **a = &r->act[r->set.layer[j]], *p = realloc(*a, n * d * sizeof **a);
    if (!p) return sc_error_setc(SC_ERR_NOMEM, "extract: out of memory for %lld rows", (long long)rows);
    *a = p;
  }
  int32_t *pos = realloc(r->pos, n * sizeof *pos);
  if (pos) r->pos = pos;
  int32_t *ids = realloc(r->ids, n * sizeof *ids);
  if (ids) r->ids = ids;
  uint8_t *seg = realloc(r->seg, n);
  if (seg) r->seg = seg;
  if (!pos || !ids || !seg) return sc_error_setc(SC_ERR_NOMEM, "extract: out of memory");
  r->cap_rows = rows;
  return 0;
}

/* Edit hook used as an observer: copies layer's new rows to their positions. */
static int capture(void *user, int layer, float *resid, const int32_t *pos, int64_t n, int hidden) {
  ex_run *r = user;
  float *a = r->act[layer];
  if (!a) return 0;
  if (pos[0] < 0 || pos[0] + n > r->cap_rows)
    return sc_error_setc(SC_ERR_INTERNAL, "extract: capture of positions past the buffer");
  memcpy(a + (size_t)pos[0] * (size_t)hidden, resid, (size_t)n * (size_t)hidden * sizeof *a);
  return 0;
}

/* Caption the prompt with capture; out ids appended after the prompt. */
static int run_prompt(ex_run *r, const int32_t *prompt, int64_t n, int32_t **out, int64_t *n_out) {
  if (r->gen.max_new_tokens > 0) {
    g3_gen_opts o = r->gen;
    o.edit = capture;
    o.edit_user = r;
    return g3_caption_generate(r->m, prompt, n, r->image, 1, &o, out, n_out);
  }
  /* No caption: one forward of the prompt captures it. */
  g3_state *s = NULL;
  g3_forward_io io = {.ids = prompt, .n = n, .resid_post = r->act};
  int rc = g3_state_create(&s, r->m, n);
  if (!rc) rc = g3_forward_image(r->m, s, &io, r->image, 1);
  g3_state_free(s);
  *out = NULL;
  *n_out = 0;
  return rc;
}

/* Row metadata of prompt + caption: position, token, segment. */
static void fill_meta(ex_run *r, const int32_t *prompt, int64_t n, const int32_t *out, int64_t n_out) {
  for (int64_t t = 0; t < n + n_out; t++) {
    int32_t id = t < n ? prompt[t] : out[t - n];
    r->pos[t] = (int32_t)t;
    r->ids[t] = id;
    r->seg[t] = t >= n ? STORE_SEG_CAPTION : id == r->m->cfg.image_token_id ? STORE_SEG_IMAGE : STORE_SEG_PROMPT;
  }
}

static int write_rows(ex_run *r, int li, int64_t sample, int64_t rows) {
  int rc = 0;
  for (int j = 0; !rc && j < r->set.n_layers; j++) {
    store_writer *w = r->w[li][j];
    rc = store_writer_begin_sample(w, sample);
    if (!rc) rc = store_writer_append(w, r->act[r->set.layer[j]], rows, r->pos, r->ids, r->seg);
    if (!rc) rc = store_writer_end_sample(w);
  }
  r->sum->rows += rc ? 0 : rows * r->set.n_layers;
  return rc;
}

static int write_caption(ex_run *r, int li, const ex_sample *s, const char *prompt, const int32_t *out,
                         int64_t n_out) {
  char *text = NULL;
  double t0 = sc_time_now();
  int rc = tok_decode(r->tok, out, (size_t)n_out, 1, &text, NULL);
  store_caption c = {s->sample_index, s->image_id, s->split, s->gender, prompt, text, out, (int)n_out};
  if (!rc) rc = store_captions_add(r->cap[li], &c);
  free(text);
  r->sum->captions_s += sc_time_now() - t0;
  return rc;
}

static int do_lang(ex_run *r, const ex_sample *s, int li) {
  int lang = r->set.lang[li];
  const char *text = *s->prompt[lang] ? s->prompt[lang] : default_prompt(r, lang);
  int32_t *prompt = NULL, *out = NULL;
  int64_t n = 0, n_out = 0;
  int rc = g3_caption_prompt(r->tok, &r->m->cfg, text, &prompt, &n);
  if (!rc) rc = ensure_rows(r, n + r->gen.max_new_tokens);
  if (!rc) rc = run_prompt(r, prompt, n, &out, &n_out);
  if (!rc) fill_meta(r, prompt, n, out, n_out);
  if (!rc) rc = write_rows(r, li, s->sample_index, n + n_out);
  if (!rc) rc = write_caption(r, li, s, text, out, n_out);
  free(prompt);
  free(out);
  return rc;
}

static int do_sample(ex_run *r, const ex_sample *s) {
  for (int li = 0; li < r->set.n_langs; li++) {
    if (lang_resume(r, li) > s->sample_index) continue; /* stored already */
    int rc = ensure_image(r, s);
    if (!rc) rc = do_lang(r, s, li);
    if (rc) return rc;
  }
  r->sum->n_run++;
  return 0;
}

/* ==== The stage ==== */

static int64_t slice_resume(const ex_run *r) {
  int64_t from = INT64_MAX;
  for (int li = 0; li < r->set.n_langs; li++) {
    int64_t f = lang_resume(r, li);
    if (f < from) from = f;
  }
  return from;
}

static int run_samples(ex_run *r) {
  int64_t from = slice_resume(r), i = r->lo;
  while (i < r->hi && r->smp.rows[i].sample_index < from) i++;
  sc_progress *p = sc_progress_create("extract", r->hi - r->lo, "images");
  sc_progress_set(p, i - r->lo);
  int rc = 0;
  for (; !rc && i < r->hi; i++) {
    rc = do_sample(r, &r->smp.rows[i]);
    sc_progress_add(p, 1);
  }
  if (rc) {
    sc_progress_abort(p);
    return rc;
  }
  sc_progress_finish(p);
  return 0;
}

static int finish_outputs(ex_run *r) {
  int rc = 0;
  for (int li = 0; !rc && li < r->set.n_langs; li++) {
    for (int j = 0; !rc && j < r->set.n_layers; j++)
      if (!store_writer_is_complete(r->w[li][j])) rc = store_writer_finish(r->w[li][j]);
    double t0 = sc_time_now();
    if (!rc && !store_captions_is_complete(r->cap[li])) rc = store_captions_finish(r->cap[li]);
    r->sum->captions_s += sc_time_now() - t0;
  }
  return rc;
}

/* The writers' time (bench/bench_extract reports the share of shards). */
static void collect_stats(ex_run *r) {
  for (int li = 0; li < r->set.n_langs; li++)
    for (int j = 0; j < r->set.n_layers; j++) {
      if (!r->w[li][j]) continue;
      store_writer_stats st = store_writer_get_stats(r->w[li][j]);
      r->sum->store_append_s += st.append_s;
      r->sum->store_shard_s += st.shard_s;
      r->sum->shard_bytes += st.shard_bytes;
    }
}

/* Output folders of the slice and the rows it covers. */
static int plan_slice(ex_run *r, const sc_extract_opts *o) {
  char act[96], cap[96];
  int part = o->n_shards > 1;
  if (o->n_shards < 1 || o->shard < 1 || o->shard > o->n_shards)
    return sc_error_setc(SC_ERR_ARG, "extract: --shard %d/%d: expected 1 <= I <= N", o->shard, o->n_shards);
  snprintf(act, sizeof act, part ? "activations.part-%d-of-%d" : "activations", o->shard, o->n_shards);
  snprintf(cap, sizeof cap, part ? "captions.part-%d-of-%d" : "captions", o->shard, o->n_shards);
  r->sum->activations_dir = sc_path_join(r->cfg->output_dir, act);
  r->sum->captions_dir = sc_path_join(r->cfg->output_dir, cap);
  if (!r->sum->activations_dir || !r->sum->captions_dir) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  r->lo = r->smp.n * (o->shard - 1) / o->n_shards;
  r->hi = r->smp.n * o->shard / o->n_shards;
  r->sum->n_samples = r->hi - r->lo;
  return 0;
}

static int load_inputs(ex_run *r) {
  if (!r->cfg->model.path)
    return sc_error_setc(SC_ERR_ARG, "%s: model.path is required by extract", r->cfg->source);
  char *sp = sc_path_join(r->cfg->output_dir, "data/processed/samples.jsonl");
  if (!sp) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int rc = sc_is_file(sp) ? samples_load(sp, &r->smp)
                          : sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap prepare` first", sp);
  free(sp);
  if (!rc) rc = load_model(r);
  return rc;
}

int sc_extract_run(const sc_config *cfg, const sc_extract_opts *o, sc_extract_summary *out) {
  ex_run r = {.cfg = cfg, .img_index = -1, .sum = out};
  memset(out, 0, sizeof *out);
  int rc = load_inputs(&r);
  if (!rc) rc = plan_slice(&r, o);
  if (!rc) {
    out->n_langs = r.set.n_langs;
    out->n_layers = r.set.n_layers;
    rc = open_outputs(&r);
  }
  double t0 = sc_time_now();
  if (!rc) rc = run_samples(&r);
  if (!rc) rc = finish_outputs(&r);
  out->seconds = sc_time_now() - t0;
  collect_stats(&r);
  run_free(&r);
  if (rc) sc_extract_summary_free(out);
  return rc;
}

void sc_extract_summary_free(sc_extract_summary *s) {
  if (!s) return;
  free(s->activations_dir);
  free(s->captions_dir);
  memset(s, 0, sizeof *s);
}
