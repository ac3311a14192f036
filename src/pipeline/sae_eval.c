/* sae_eval.c: the sae-eval stage (see sae_eval.h). */
#include "pipeline/sae_eval.h"

#include <math.h>
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
#include "model/tokenizer.h"
#include "model/vision.h"
#include "pipeline/train.h"
#include "sae/sae_io.h"
#include "sae/sae_metrics.h"
#include "store/manifest.h"
#include "store/samples.h"

static const char *const SPLITS[] = {"train", "val", "test", "all"};

/* ==== Reconstruction metrics ==== */

static int rows_metrics(const sae *s, store_reader *r, int64_t max_rows, sae_metrics *out) {
  int64_t d = s->cfg.d, N = store_reader_n_rows(r);
  if (max_rows > 0 && N > max_rows) N = max_rows;
  int64_t B = SC_SAE_EVAL_BATCH;
  float *x = malloc((size_t)(B * d) * sizeof *x), *xh = malloc((size_t)(B * d) * sizeof *xh);
  sae_metrics_acc *acc = NULL;
  sae_codes c;
  int rc = sae_codes_init(&c);
  if (!rc && (!x || !xh)) rc = sc_error_setc(SC_ERR_NOMEM, "sae-eval: out of memory");
  if (!rc) rc = sae_metrics_create(&acc, d, s->cfg.n, SC_SAE_EVAL_DENSE);
  for (int64_t i = 0; !rc && i < N; i += B) {
    int64_t b = N - i < B ? N - i : B;
    rc = store_reader_read(r, i, i + b, x, NULL);
    if (!rc) rc = sae_encode(s, x, b, &c);
    if (!rc) {
      sae_decode(s, &c, xh);
      rc = sae_metrics_add(acc, x, xh, &c);
    }
  }
  memset(out, 0, sizeof *out);
  if (!rc) sae_metrics_result(acc, out);
  sae_metrics_free(acc);
  sae_codes_release(&c);
  free(x), free(xh);
  return rc;
}

/* ==== CE loss recovered ==== */

enum { CE_CLEAN = 0, CE_SAE, CE_ZERO, CE_N };
static const char *const CE_NAMES[CE_N] = {"clean", "sae", "zero"};

typedef struct ce_model {
  g3_model *m;
  g3_vision *v;
  tok_tokenizer *tok;
  sc_json *samples;     /* samples.jsonl lines (array of objects), for image_path */
  float *pixels, *image;
  char *image_path;     /* of image */
} ce_model;

static void ce_model_free(ce_model *c) {
  g3_vision_free(c->v);
  g3_model_free(c->m);
  tok_free(c->tok);
  sc_json_free(c->samples);
  free(c->pixels), free(c->image), free(c->image_path);
  memset(c, 0, sizeof *c);
}

/* Each non-blank line of a JSONL file, parsed, into an array. */
static int jsonl_load(const char *path, sc_json **out) {
  char *buf = NULL;
  size_t len = 0;
  *out = NULL;
  int rc = sc_read_file(path, (size_t)1 << 30, &buf, &len);
  sc_json *arr = rc ? NULL : sc_json_new_array();
  if (!rc && !arr) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int64_t line = 0;
  for (size_t at = 0; !rc && at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    line++;
    if (strspn(buf + at, " \t\r") < end - at) {
      sc_json *j = NULL;
      rc = sc_json_parse(buf + at, end - at, path, &j);
      if (!rc && !sc_json_is_object(j)) {
        sc_json_free(j);
        rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: not a JSON object", path, (long long)line);
      }
      if (!rc) sc_json_add(arr, NULL, j);
    }
    at = end + 1;
  }
  free(buf);
  if (rc) sc_json_free(arr);
  else *out = arr;
  return rc;
}

static int ce_model_load(const sc_config *cfg, ce_model *c) {
  if (!cfg->model.path) return sc_error_setc(SC_ERR_ARG, "%s: model.path is required by train.ce_loss", cfg->source);
  char *tp = sc_path_join(cfg->model.path, "tokenizer.json");
  char *sp = sc_path_join(cfg->output_dir, "data/processed/samples.jsonl");
  int rc = tp && sp ? g3_model_load(&c->m, cfg->model.path) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = g3_vision_load(&c->v, c->m->ckpt, &c->m->cfg, cfg->model.path);
  if (!rc) rc = tok_load(&c->tok, tp);
  if (!rc) rc = jsonl_load(sp, &c->samples);
  if (!rc) {
    c->m->precision = cfg->extract.precision == SC_CONFIG_BF16 ? SC_PRECISION_BF16 : SC_PRECISION_F32;
    c->v->precision = c->m->precision;
    c->pixels = malloc(g3_vision_pixels_floats(c->v) * sizeof(float));
    c->image = malloc(g3_vision_embeds_floats(c->v) * sizeof(float));
    if (!c->pixels || !c->image) rc = sc_error_setc(SC_ERR_NOMEM, "sae-eval: out of memory");
  }
  free(tp), free(sp);
  if (rc) ce_model_free(c);
  return rc;
}

static const char *image_path_of(const ce_model *c, int64_t sample) {
  for (sc_json *j = sc_json_first(c->samples); j; j = sc_json_next(j)) {
    int64_t si;
    if (!sc_json_i64(sc_json_get(j, "sample_index"), &si) && si == sample)
      return sc_json_str(sc_json_get(j, "image_path"));
  }
  return NULL;
}

static int ensure_image(const sc_config *cfg, ce_model *c, const char *path) {
  if (c->image_path && !strcmp(c->image_path, path)) return 0;
  free(c->image_path);
  c->image_path = NULL;
  int rc = g3_image_pixels(c->v, cfg->model.path, path, c->pixels);
  if (!rc) rc = g3_vision_forward(c->v, c->pixels, NULL, c->image);
  if (!rc && !(c->image_path = strdup(path))) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  return rc;
}

/* The edit hook's view of one sequence. */
typedef struct ce_edit {
  const sae *s;
  int layer, mode;
  const int32_t *seq;        /* (n_seq) prompt + caption ids */
  int64_t n_prompt;
  unsigned segments;
  const int32_t *special;
  int n_special;
  int32_t image_token;
  float *buf, *rec;          /* (rows, d) scratch */
  int64_t cap;
  sae_codes codes;
} ce_edit;

static int spliced(const ce_edit *e, int32_t pos) {
  int32_t id = e->seq[pos];
  for (int i = 0; i < e->n_special; i++)
    if (e->special[i] == id) return 0;
  int seg = pos >= e->n_prompt ? STORE_SEG_CAPTION : id == e->image_token ? STORE_SEG_IMAGE : STORE_SEG_PROMPT;
  return (e->segments >> seg) & 1u;
}

static int ce_hook(void *user, int layer, float *resid, const int32_t *pos, int64_t n, int hidden) {
  ce_edit *e = user;
  if (layer != e->layer || e->mode == CE_CLEAN) return 0;
  if (e->mode == CE_ZERO) {
    for (int64_t t = 0; t < n; t++)
      if (spliced(e, pos[t])) memset(resid + t * hidden, 0, (size_t)hidden * sizeof *resid);
    return 0;
  }
  if (n > e->cap) {
    float *b = realloc(e->buf, (size_t)(n * hidden) * sizeof *b), *r = b ? realloc(e->rec, (size_t)(n * hidden) * sizeof *r) : NULL;
    if (b) e->buf = b;
    if (r) e->rec = r;
    if (!b || !r) return sc_error_setc(SC_ERR_NOMEM, "sae-eval: out of memory");
    e->cap = n;
  }
  int64_t m = 0;
  for (int64_t t = 0; t < n; t++)
    if (spliced(e, pos[t])) memcpy(e->buf + m++ * hidden, resid + t * hidden, (size_t)hidden * sizeof *resid);
  if (!m) return 0;
  int rc = sae_encode(e->s, e->buf, m, &e->codes);
  if (rc) return rc;
  sae_decode(e->s, &e->codes, e->rec);
  m = 0;
  for (int64_t t = 0; t < n; t++)
    if (spliced(e, pos[t])) memcpy(resid + t * hidden, e->rec + m++ * hidden, (size_t)hidden * sizeof *resid);
  return 0;
}

/* −log softmax(logits)[target]: exponentials in f32 (each term is in
 * (0, 1] and the vocabulary is large, so this is the hot loop), the sum and
 * the log in f64. */
static double nll(const float *logits, int64_t V, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < V; i++)
    if (logits[i] > mx) mx = logits[i];
  double s = 0.0;
  for (int64_t i0 = 0; i0 < V; i0 += 256) {
    float part = 0.0f;
    int64_t i1 = i0 + 256 < V ? i0 + 256 : V;
    for (int64_t i = i0; i < i1; i++) part += expf(logits[i] - mx);
    s += part;
  }
  return log(s) + (double)mx - (double)logits[target];
}

/* Summed NLL of the caption tokens of one sample under edit mode e->mode. */
static int ce_sample(ce_model *c, ce_edit *e, const int32_t *prompt, int64_t n, const int32_t *cap, int64_t m,
                     double *sum) {
  int64_t V = c->m->cfg.text.vocab_size;
  float *lg = malloc((size_t)(m > 1 ? m - 1 : 1) * (size_t)V * sizeof *lg), *l0 = malloc((size_t)V * sizeof *l0);
  g3_state *st = NULL;
  int rc = lg && l0 ? g3_state_create(&st, c->m, n + m) : sc_error_setc(SC_ERR_NOMEM, "sae-eval: out of memory");
  g3_forward_io io = {.ids = prompt, .n = n, .logits = l0, .logits_last = 1, .edit = ce_hook, .edit_user = e};
  if (!rc) rc = g3_forward_image(c->m, st, &io, c->image, 1);
  *sum = 0.0;
  if (!rc) *sum += nll(l0, V, cap[0]);
  if (!rc && m > 1) {
    g3_forward_io io2 = {.ids = cap, .n = m - 1, .logits = lg, .edit = ce_hook, .edit_user = e};
    rc = g3_forward(c->m, st, &io2);
    for (int64_t t = 1; !rc && t < m; t++) *sum += nll(lg + (t - 1) * V, V, cap[t]);
  }
  g3_state_free(st);
  free(lg), free(l0);
  return rc;
}

typedef struct ce_result {
  int64_t samples, tokens;
  double loss[CE_N];
} ce_result;

static int ids_of(const sc_json *a, const char *path, int32_t **out, int64_t *n) {
  int len = sc_json_is_array(a) ? sc_json_size(a) : -1;
  if (len < 0) return sc_error_setc(SC_ERR_FORMAT, "%s: 'caption_ids' is not an array", path);
  *out = malloc((size_t)(len ? len : 1) * sizeof **out);
  if (!*out) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  for (int i = 0; i < len; i++) {
    int64_t v;
    if (sc_json_i64(sc_json_at(a, i), &v) || v < 0 || v > INT32_MAX)
      return sc_error_setc(SC_ERR_FORMAT, "%s: 'caption_ids' holds a bad token id", path);
    (*out)[i] = (int32_t)v;
  }
  *n = len;
  return 0;
}

/* One SAE of the run and what was measured for it. */
typedef struct ev_entry {
  int layer, lang0, n_lang;
  const char *lang_dir;
  sae *s;
  sc_json *obj, *langs;               /* the SAE's JSON object and its "languages" */
  sc_json *lang_obj[SC_TRAIN_MAX_LANGS]; /* by plan language, NULL if not covered */
  ce_result ce[SC_TRAIN_MAX_LANGS];
} ev_entry;

/* CE losses of every entry covering plan language li: per sample the image
 * and the clean pass once, the zero-ablated pass once per layer, the
 * spliced pass once per SAE. */
static int ce_language(const sc_config *cfg, ce_model *c, const sc_train_plan *p, int li, ev_entry *ent, int n_ent) {
  char sub[32];
  snprintf(sub, sizeof sub, "captions/%s.jsonl", p->lang[li]);
  char *path = sc_path_join(cfg->output_dir, sub);
  sc_json *lines = NULL;
  int rc = !path ? sc_error_setc(SC_ERR_NOMEM, "out of memory")
           : !sc_is_file(path) ? sc_error_setc(SC_ERR_MISSING, "%s: missing; run `saecap extract` first", path)
                               : jsonl_load(path, &lines);
  ce_edit e = {.segments = p->segments, .special = p->special, .n_special = p->n_special};
  if (!rc) rc = sae_codes_init(&e.codes);
  if (!rc) e.image_token = c->m->cfg.image_token_id;
  const char *want = SPLITS[cfg->train.eval_split];
  int all = cfg->train.eval_split == SC_CFG_SPLIT_ALL;
  for (sc_json *j = rc ? NULL : sc_json_first(lines); !rc && j; j = sc_json_next(j)) {
    const char *split = sc_json_str(sc_json_get(j, "split")), *text = sc_json_str(sc_json_get(j, "prompt"));
    int64_t si = -1;
    if (!split || !text || sc_json_i64(sc_json_get(j, "sample_index"), &si)) {
      rc = sc_error_setc(SC_ERR_FORMAT, "%s: a line lacks sample_index, split or prompt", path);
      break;
    }
    if (!all && strcmp(split, want)) continue;
    int32_t *cap = NULL, *prompt = NULL, *seq = NULL;
    int64_t m = 0, n = 0;
    rc = ids_of(sc_json_get(j, "caption_ids"), path, &cap, &m);
    const char *img = rc ? NULL : image_path_of(c, si);
    if (!rc && !img)
      rc = sc_error_setc(SC_ERR_MISSING, "%s: sample %lld is not in samples.jsonl", path, (long long)si);
    if (!rc && m > 0) {
      rc = ensure_image(cfg, c, img);
      if (!rc) rc = g3_caption_prompt(c->tok, &c->m->cfg, text, &prompt, &n);
      if (!rc && !(seq = malloc((size_t)(n + m) * sizeof *seq))) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
      if (!rc) {
        memcpy(seq, prompt, (size_t)n * sizeof *seq);
        memcpy(seq + n, cap, (size_t)m * sizeof *seq);
        e.seq = seq, e.n_prompt = n;
      }
      double clean = 0.0, zero_of[SC_TRAIN_MAX_LAYERS];
      unsigned char zero_done[SC_TRAIN_MAX_LAYERS] = {0};
      e.mode = CE_CLEAN, e.layer = -1;
      if (!rc) rc = ce_sample(c, &e, prompt, n, cap, m, &clean);
      for (int a = 0; !rc && a < n_ent; a++) {
        if (!ent[a].lang_obj[li]) continue;
        double sae_l = 0.0;
        int L = ent[a].layer;
        e.layer = L;
        if (!zero_done[L]) { /* per_language SAEs of one layer share it */
          e.mode = CE_ZERO;
          rc = ce_sample(c, &e, prompt, n, cap, m, &zero_of[L]);
          zero_done[L] = 1;
        }
        double zero = zero_of[L];
        e.mode = CE_SAE, e.s = ent[a].s;
        if (!rc) rc = ce_sample(c, &e, prompt, n, cap, m, &sae_l);
        if (!rc) {
          ce_result *r = &ent[a].ce[li];
          r->loss[CE_CLEAN] += clean, r->loss[CE_ZERO] += zero, r->loss[CE_SAE] += sae_l;
          r->samples++, r->tokens += m;
        }
      }
    }
    free(cap), free(prompt), free(seq);
  }
  for (int a = 0; a < n_ent; a++)
    for (int mode = 0; mode < CE_N && ent[a].ce[li].tokens > 0; mode++)
      ent[a].ce[li].loss[mode] /= (double)ent[a].ce[li].tokens;
  sae_codes_release(&e.codes);
  free(e.buf), free(e.rec);
  sc_json_free(lines);
  free(path);
  return rc;
}

/* ==== The JSON ==== */

static sc_json *metrics_json(const sae_metrics *m) {
  sc_json *o = sc_json_new_object();
  sc_json_add_num(o, "tokens", (double)m->tokens);
  sc_json_add_num(o, "mse", m->mse);
  sc_json_add_num(o, "fvu", m->fvu);
  sc_json_add_num(o, "explained_variance", m->explained_variance);
  sc_json_add_num(o, "explained_variance_legacy", m->explained_variance_legacy);
  sc_json_add_num(o, "l0", m->l0);
  sc_json_add_num(o, "dead_fraction", m->dead_fraction);
  sc_json_add_num(o, "dense_fraction", m->dense_fraction);
  sc_json_add_num(o, "cosine", m->cosine);
  sc_json_add_num(o, "l2_ratio", m->l2_ratio);
  return o;
}

static sc_json *ce_json(const ce_result *r) {
  sc_json *o = sc_json_new_object();
  sc_json_add_num(o, "samples", (double)r->samples);
  sc_json_add_num(o, "tokens", (double)r->tokens);
  for (int i = 0; i < CE_N; i++)
    sc_json_add(o, CE_NAMES[i], r->tokens ? sc_json_new_num(r->loss[i]) : sc_json_new_null());
  double den = r->loss[CE_ZERO] - r->loss[CE_CLEAN];
  sc_json_add(o, "recovered",
              r->tokens && den != 0.0 ? sc_json_new_num((r->loss[CE_ZERO] - r->loss[CE_SAE]) / den) : sc_json_new_null());
  return o;
}

/* {"log": path, "logged_steps": n, "first": {...}, "last": {...}} */
static sc_json *training_json(const char *dir, const char *rel) {
  char *path = sc_path_join(dir, "training_log.jsonl");
  sc_json *o = sc_json_new_object(), *lines = NULL;
  char lp[512];
  snprintf(lp, sizeof lp, "%s/training_log.jsonl", rel);
  sc_json_add_str(o, "log", lp);
  if (path && sc_is_file(path) && !jsonl_load(path, &lines) && sc_json_size(lines) > 0) {
    int n = sc_json_size(lines);
    sc_json_add_num(o, "logged_steps", n);
    char *a = sc_json_print(sc_json_at(lines, 0), 0), *b = sc_json_print(sc_json_at(lines, n - 1), 0);
    sc_json *ja = NULL, *jb = NULL;
    if (a && !sc_json_parse(a, strlen(a), "log", &ja)) sc_json_add(o, "first", ja);
    if (b && !sc_json_parse(b, strlen(b), "log", &jb)) sc_json_add(o, "last", jb);
    free(a), free(b);
  } else {
    sc_error_clear();
    sc_json_add_num(o, "logged_steps", 0);
  }
  sc_json_free(lines);
  free(path);
  return o;
}

static sc_json *str_array(const char *const *s, int n) {
  sc_json *a = sc_json_new_array();
  for (int i = 0; i < n; i++) sc_json_add(a, NULL, sc_json_new_str(s[i]));
  return a;
}

/* ==== The stage ==== */

/* Loads the SAE of entry e and measures it on each of its languages. */
static int eval_sae(const sc_config *cfg, const sc_train_plan *p, ev_entry *e, sc_sae_eval_summary *out) {
  char *dir = sc_train_sae_dir(p, e->lang_dir, e->layer), rel[96];
  if (e->lang_dir) snprintf(rel, sizeof rel, "saes/%s/layer_%d", e->lang_dir, e->layer);
  else snprintf(rel, sizeof rel, "saes/layer_%d", e->layer);
  char *cp = dir ? sc_path_join(dir, "cfg.json") : NULL;
  if (!cp) {
    free(dir);
    return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  }
  int rc = sc_is_file(cp) ? sae_load(&e->s, dir)
                          : sc_error_setc(SC_ERR_MISSING, "%s: no trained SAE (run `saecap train` first)", dir);
  if (!rc) {
    sc_json *o = e->obj = sc_json_new_object();
    sc_json_add_num(o, "layer", e->layer);
    sc_json_add_str(o, "sae", rel);
    sc_json_add(o, "languages_trained", str_array(p->lang + e->lang0, e->n_lang));
    sc_json_add_str(o, "architecture", sae_arch_name(e->s->cfg.arch));
    sc_json_add_num(o, "d_in", (double)e->s->cfg.d);
    sc_json_add_num(o, "d_sae", (double)e->s->cfg.n);
    sc_json_add_num(o, "k", e->s->cfg.k);
    sc_json_add(o, "training", training_json(dir, rel));
    e->langs = sc_json_add(o, "languages", sc_json_new_object());
  }
  for (int li = e->lang0; !rc && li < e->lang0 + e->n_lang; li++) {
    store_reader *r = NULL;
    int split = cfg->train.eval_split == SC_CFG_SPLIT_ALL ? -1 : (int)cfg->train.eval_split;
    rc = sc_train_open_reader(p, e->layer, li, 1, split, &r);
    if (!rc && store_reader_d(r) != e->s->cfg.d)
      rc = sc_error_setc(SC_ERR_ARG, "%s: d_in %lld, the activations of layer %d have d %d", cp,
                         (long long)e->s->cfg.d, e->layer, store_reader_d(r));
    sae_metrics m;
    if (!rc) rc = rows_metrics(e->s, r, (int64_t)cfg->train.eval_max_rows, &m);
    store_reader_free(r);
    if (!rc) {
      e->lang_obj[li] = sc_json_add(e->langs, p->lang[li], metrics_json(&m));
      out->n_entries++;
      sc_info("sae-eval: layer %d %s: fvu %.4f, l0 %.2f, dead %.3f", e->layer, p->lang[li], m.fvu, m.l0,
              m.dead_fraction);
    }
  }
  free(cp), free(dir);
  return rc;
}

static sc_json *root_json(const sc_config *cfg, const sc_train_plan *p) {
  sc_json *root = sc_json_new_object();
  sc_json_add_str(root, "schema", "saecap.sae_metrics/1");
  sc_json_add_str(root, "saecap_version", SAECAP_VERSION);
  sc_json_add_str(root, "eval_split", SPLITS[cfg->train.eval_split]);
  sc_json_add_num(root, "eval_max_rows", (double)cfg->train.eval_max_rows);
  sc_json_add_num(root, "batch_rows", SC_SAE_EVAL_BATCH);
  sc_json_add_num(root, "dense_threshold", SC_SAE_EVAL_DENSE);
  const char *segs[STORE_N_SEGMENTS], *names[] = {"image", "prompt", "caption"};
  int ns = 0;
  for (int i = 0; i < STORE_N_SEGMENTS; i++)
    if (p->segments & (1u << i)) segs[ns++] = names[i];
  sc_json_add(root, "segments", str_array(segs, ns));
  sc_json *sp = sc_json_add(root, "excluded_token_ids", sc_json_new_array());
  for (int i = 0; sp && i < p->n_special; i++) sc_json_add(sp, NULL, sc_json_new_num(p->special[i]));
  sc_json_add_bool(root, "ce_loss", cfg->train.ce_loss);
  return root;
}

static int write_json(const sc_config *cfg, sc_json *root, sc_sae_eval_summary *out) {
  char *dir = sc_path_join(cfg->output_dir, "results");
  out->path = dir ? sc_path_join(dir, "sae_metrics.json") : NULL;
  char *text = sc_json_print(root, 1);
  int rc = dir && out->path && text ? sc_mkdirs(dir) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = sc_write_file_atomic(out->path, text, strlen(text));
  free(text), free(dir);
  return rc;
}

int sc_sae_eval_run(const sc_config *cfg, sc_sae_eval_summary *out) {
  memset(out, 0, sizeof *out);
  sc_train_plan p;
  int rc = sc_train_plan_make(cfg, -1, &p);
  if (rc) return rc;
  int per = cfg->train.per_language, n_ent = p.n_layers * (per ? p.n_langs : 1);
  ev_entry *ent = calloc((size_t)n_ent, sizeof *ent);
  ce_model cm = {0};
  if (!ent) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  for (int j = 0, a = 0; !rc && j < p.n_layers; j++)
    for (int li = 0; !rc && li < (per ? p.n_langs : 1); li++, a++) {
      ev_entry *e = &ent[a];
      e->layer = p.layer[j], e->lang0 = per ? li : 0, e->n_lang = per ? 1 : p.n_langs;
      e->lang_dir = per ? p.lang[li] : NULL;
      rc = eval_sae(cfg, &p, e, out);
    }
  if (!rc && cfg->train.ce_loss) {
    rc = ce_model_load(cfg, &cm);
    for (int li = 0; !rc && li < p.n_langs; li++) rc = ce_language(cfg, &cm, &p, li, ent, n_ent);
  }
  sc_json *root = rc ? NULL : root_json(cfg, &p), *saes = root ? sc_json_add(root, "saes", sc_json_new_array()) : NULL;
  if (!rc && !saes) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  for (int a = 0; !rc && a < n_ent; a++) {
    for (int li = 0; li < p.n_langs; li++)
      if (ent[a].lang_obj[li])
        sc_json_add(ent[a].lang_obj[li], "ce_loss", cfg->train.ce_loss ? ce_json(&ent[a].ce[li]) : sc_json_new_null());
    sc_json_add(saes, NULL, ent[a].obj);
    ent[a].obj = NULL;
    out->n_saes++;
  }
  if (!rc) rc = write_json(cfg, root, out);
  for (int a = 0; ent && a < n_ent; a++) sae_free(ent[a].s), sc_json_free(ent[a].obj);
  free(ent);
  sc_json_free(root);
  ce_model_free(&cm);
  sc_train_plan_free(&p);
  if (rc) sc_sae_eval_summary_free(out);
  return rc;
}

void sc_sae_eval_summary_free(sc_sae_eval_summary *s) {
  if (!s) return;
  free(s->path);
  memset(s, 0, sizeof *s);
}
