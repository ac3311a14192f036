/* analyze.c: the analysis stage (see analyze.h). */
#include "pipeline/analyze.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/crossling.h"
#include "analysis/features.h"
#include "analysis/lexicon.h"
#include "analysis/morphology.h"
#include "analysis/pool.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/version.h"
#include "io/json.h"
#include "model/tokenizer.h"
#include "pipeline/prepare.h"
#include "sae/sae_io.h"
#include "store/manifest.h"
#include "store/samples.h"

#define AZ_MAX_LANGS 2
#define AZ_MAX_LAYERS 256
#define AZ_JSONL_MAX ((size_t)1 << 31)

static int oom(void) { return sc_error_setc(SC_ERR_NOMEM, "out of memory"); }

/* ==== captions jsonl ==== */

void sc_caption_rows_free(sc_caption_row *rows, int64_t n) {
  for (int64_t i = 0; rows && i < n; i++) free(rows[i].prompt), free(rows[i].caption), free(rows[i].ids);
  free(rows);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s ? s : "");
  char *d = malloc(n + 1);
  if (d) memcpy(d, s ? s : "", n + 1);
  return d;
}

static int parse_caption_line(const sc_json *j, const char *name, int64_t line, sc_caption_row *r) {
  const sc_json *si = sc_json_get(j, "sample_index"), *p = sc_json_get(j, "prompt");
  const sc_json *c = sc_json_get(j, "caption"), *ids = sc_json_get(j, "caption_ids");
  if (!sc_json_is_object(j))
    return sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: not a JSON object", name, (long long)line);
  if (!si || !p || !c || !ids)
    return sc_error_setc(SC_ERR_MISSING, "%s: line %lld: missing %s", name, (long long)line,
                         !si  ? "sample_index"
                         : !p ? "prompt"
                         : !c ? "caption"
                              : "caption_ids");
  if (sc_json_i64(si, &r->sample_index) || r->sample_index < 0)
    return sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: sample_index is not a non-negative integer", name,
                         (long long)line);
  if (!sc_json_is_string(p) || !sc_json_is_string(c) || !sc_json_is_array(ids))
    return sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: %s has the wrong type", name, (long long)line,
                         !sc_json_is_string(p)   ? "prompt"
                         : !sc_json_is_string(c) ? "caption"
                                                 : "caption_ids");
  r->n_ids = sc_json_size(ids);
  r->ids = malloc((size_t)(r->n_ids ? r->n_ids : 1) * sizeof *r->ids);
  r->prompt = dup_str(sc_json_str(p));
  r->caption = dup_str(sc_json_str(c));
  if (!r->ids || !r->prompt || !r->caption) return oom();
  int k = 0;
  for (const sc_json *e = sc_json_first(ids); e; e = sc_json_next(e), k++) {
    int64_t v;
    if (sc_json_i64(e, &v) || v < 0 || v > INT32_MAX)
      return sc_error_setc(SC_ERR_RANGE, "%s: line %lld: caption_ids[%d] is not a token id", name, (long long)line, k);
    r->ids[k] = (int32_t)v;
  }
  return 0;
}

int sc_caption_rows_parse(const char *buf, size_t len, const char *name, sc_caption_row **rows, int64_t *n) {
  *rows = NULL;
  *n = 0;
  int64_t cap = 0, line = 0;
  int rc = 0;
  for (size_t at = 0; !rc && at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    line++;
    size_t b = at;
    while (b < end && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\r')) b++;
    if (b < end) {
      if (*n == cap) {
        int64_t nc = cap ? cap * 2 : 64;
        sc_caption_row *g = realloc(*rows, (size_t)nc * sizeof *g);
        if (!g) {
          rc = oom();
          break;
        }
        *rows = g, cap = nc;
      }
      sc_caption_row *r = &(*rows)[*n];
      memset(r, 0, sizeof *r);
      (*n)++;
      sc_json *j = NULL;
      char lname[512];
      snprintf(lname, sizeof lname, "%s: line %lld", name, (long long)line);
      rc = sc_json_parse(buf + at, end - at, lname, &j);
      if (!rc) rc = parse_caption_line(j, name, line, r);
      if (!rc && *n > 1 && r->sample_index <= (*rows)[*n - 2].sample_index)
        rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: sample_index %lld does not increase", name, (long long)line,
                           (long long)r->sample_index);
      sc_json_free(j);
    }
    at = end + 1;
  }
  if (rc) {
    sc_caption_rows_free(*rows, *n);
    *rows = NULL;
    *n = 0;
  }
  return rc;
}

/* ==== the run ==== */

typedef struct az_lang {
  const char *name; /* "en" / "ar" */
  an_lang lang;
  char **prompt;              /* (n) what the model saw, borrowed from rows or samples */
  const sc_caption_row **cap; /* (n) caption row of each sample or NULL */
  sc_caption_row *rows;
  int64_t n_rows;
  uint8_t *leak; /* (n) prompt has a gendered word */
} az_lang;

typedef struct az_run {
  const sc_config *cfg;
  const char *out;
  char *samples_path;
  store_samples smp;
  int64_t n;
  char **sp[AZ_MAX_LANGS]; /* samples.jsonl english_prompt / arabic_prompt */
  int n_langs;
  az_lang lang[AZ_MAX_LANGS];
  int n_layers;
  int layers[AZ_MAX_LAYERS];
  int n_segs;
  int seg[STORE_N_SEGMENTS]; /* STORE_SEG_* in config order, [0] primary */
  unsigned seg_bits;
  uint8_t *leaky;   /* (n) either prompt leaks */
  int *labels;      /* (n) labels of the statistics (excluded rows: unknown) */
  int *smp_labels;  /* (n) labels as in samples.jsonl */
  int *feat_labels; /* (n) labels of RQ2: as labels, unknown outside analyze.feature_split */
  uint8_t *exclude; /* (n) left out of the statistics (leaky prompt, when excluded) */
  uint64_t *groups; /* (n) image id hash */
  tok_tokenizer *tok;
  an_pooled *means; /* [layer][lang][segment] */
  char hash[32];
  sc_json *leak_json; /* the shared "leakage" object (copied into each file) */
  sc_json *dataset_json;
} az_run;

static const char *seg_name(int s) {
  return s == STORE_SEG_IMAGE ? "image" : s == STORE_SEG_PROMPT ? "prompt" : "caption";
}

/* The pooled means of (layer index, language index, segment). */
static an_pooled *mean_at(az_run *r, int layer_i, int lang_i, int seg) {
  return &r->means[((size_t)layer_i * AZ_MAX_LANGS + (size_t)lang_i) * STORE_N_SEGMENTS + (size_t)seg];
}

static void run_free(az_run *r) {
  store_samples_free(&r->smp);
  for (int l = 0; l < AZ_MAX_LANGS; l++) {
    for (int64_t i = 0; r->sp[l] && i < r->n; i++) free(r->sp[l][i]);
    free(r->sp[l]);
    free(r->lang[l].prompt), free(r->lang[l].cap), free(r->lang[l].leak);
    sc_caption_rows_free(r->lang[l].rows, r->lang[l].n_rows);
  }
  for (int i = 0; r->means && i < r->n_layers * AZ_MAX_LANGS * STORE_N_SEGMENTS; i++) an_pooled_free(&r->means[i]);
  free(r->means), free(r->samples_path), free(r->leaky), free(r->labels), free(r->feat_labels), free(r->groups), free(r->smp_labels),
      free(r->exclude);
  tok_free(r->tok);
  sc_json_free(r->leak_json), sc_json_free(r->dataset_json);
}

/* ---- configuration ---- */

/* Calls fn on each comma-separated item of list (spaces trimmed). */
static int each_item(const char *list, int (*fn)(az_run *, const char *), az_run *r) {
  const char *s = list ? list : "";
  while (*s) {
    const char *e = strchr(s, ',');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    char item[64];
    while (n && (*s == ' ')) s++, n--;
    while (n && s[n - 1] == ' ') n--;
    if (n >= sizeof item) n = sizeof item - 1;
    memcpy(item, s, n);
    item[n] = 0;
    if (n) {
      int rc = fn(r, item);
      if (rc) return rc;
    }
    s = e ? e + 1 : s + strlen(s);
  }
  return 0;
}

static int add_lang(az_run *r, const char *item) {
  an_lang l;
  if ((strcmp(item, "en") && strcmp(item, "ar")) || an_lang_parse(item, &l))
    return sc_error_setc(SC_ERR_ARG, "%s: extract.languages: '%s' is not en or ar", r->cfg->source, item);
  for (int i = 0; i < r->n_langs; i++)
    if (r->lang[i].lang == l)
      return sc_error_setc(SC_ERR_ARG, "%s: extract.languages: '%s' is repeated", r->cfg->source, item);
  if (r->n_langs == AZ_MAX_LANGS) return sc_error_setc(SC_ERR_ARG, "%s: extract.languages: too many", r->cfg->source);
  r->lang[r->n_langs].lang = l;
  r->lang[r->n_langs++].name = l == AN_LANG_EN ? "en" : "ar";
  return 0;
}

static int add_seg(az_run *r, const char *item) {
  int s = !strcmp(item, "image")     ? STORE_SEG_IMAGE
          : !strcmp(item, "prompt")  ? STORE_SEG_PROMPT
          : !strcmp(item, "caption") ? STORE_SEG_CAPTION
                                     : -1;
  if (s < 0)
    return sc_error_setc(SC_ERR_ARG, "%s: analyze.segments: '%s' is not caption, image or prompt", r->cfg->source,
                         item);
  if (r->seg_bits >> s & 1u)
    return sc_error_setc(SC_ERR_ARG, "%s: analyze.segments: '%s' is repeated", r->cfg->source, item);
  r->seg_bits |= 1u << s;
  r->seg[r->n_segs++] = s;
  return 0;
}

static int add_layer(az_run *r, const char *item) {
  char *end;
  long v = strtol(item, &end, 10);
  if (*end || end == item || v < 0 || v > STORE_MAX_LAYER)
    return sc_error_setc(SC_ERR_ARG, "%s: analyze.layers: '%s' is not a layer number", r->cfg->source, item);
  for (int i = 0; i < r->n_layers; i++)
    if (r->layers[i] == v)
      return sc_error_setc(SC_ERR_ARG, "%s: analyze.layers: layer %ld is repeated", r->cfg->source, v);
  if (r->n_layers == AZ_MAX_LAYERS)
    return sc_error_setc(SC_ERR_ARG, "%s: analyze.layers: too many layers", r->cfg->source);
  r->layers[r->n_layers++] = (int)v;
  return 0;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* "all": the layer_<L> folders of the first language's activations that
 * every language has. */
static int all_layers(az_run *r) {
  char *base = sc_path_join(r->out, "activations"), *dir = base ? sc_path_join(base, r->lang[0].name) : NULL;
  free(base);
  if (!dir) return oom();
  DIR *d = opendir(dir);
  if (!d) {
    int rc = sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap extract` first", dir);
    free(dir);
    return rc;
  }
  int rc = 0;
  for (struct dirent *e; !rc && (e = readdir(d));) {
    int L;
    char tail;
    if (sscanf(e->d_name, "layer_%d%c", &L, &tail) != 1 || L < 0 || L > STORE_MAX_LAYER) continue;
    int all = 1;
    for (int li = 0; all && li < r->n_langs; li++) {
      char *ld = store_layer_dir(r->out, r->lang[li].name, L), *mf = ld ? sc_path_join(ld, "manifest.json") : NULL;
      if (!mf) rc = oom();
      all = mf && sc_is_file(mf);
      free(ld), free(mf);
    }
    if (!rc && all && r->n_layers < AZ_MAX_LAYERS) r->layers[r->n_layers++] = L;
  }
  closedir(d);
  if (!rc && !r->n_layers)
    rc = sc_error_setc(SC_ERR_IO, "%s: no layer_<L> folder with a manifest.json; run `saecap extract` first", dir);
  free(dir);
  qsort(r->layers, (size_t)r->n_layers, sizeof r->layers[0], cmp_int);
  return rc;
}

static int read_config(az_run *r) {
  const sc_config *c = r->cfg;
  int rc = each_item(c->extract.languages ? c->extract.languages : "en,ar", add_lang, r);
  if (!rc && !r->n_langs) rc = sc_error_setc(SC_ERR_ARG, "%s: extract.languages is empty", c->source);
  if (!rc) rc = each_item(c->analyze.segments ? c->analyze.segments : "caption", add_seg, r);
  if (!rc && !r->n_segs) rc = sc_error_setc(SC_ERR_ARG, "%s: analyze.segments is empty", c->source);
  const char *layers = c->analyze.layers ? c->analyze.layers : "all";
  if (!rc && !strcmp(layers, "all"))
    rc = all_layers(r);
  else if (!rc)
    rc = each_item(layers, add_layer, r);
  if (!rc && !r->n_layers) rc = sc_error_setc(SC_ERR_ARG, "%s: analyze.layers is empty", c->source);
  return rc;
}

/* ---- inputs ---- */

/* english_prompt / arabic_prompt of every line of samples.jsonl (already
 * validated by store_samples_load, so only the prompts are checked). */
static int load_prompts(az_run *r) {
  char *buf = NULL;
  size_t len = 0;
  int rc = sc_read_file(r->samples_path, STORE_MAX_SAMPLES_BYTES, &buf, &len);
  for (int l = 0; !rc && l < AZ_MAX_LANGS; l++)
    if (!(r->sp[l] = calloc((size_t)(r->n ? r->n : 1), sizeof(char *)))) rc = oom();
  int64_t row = 0, line = 0;
  for (size_t at = 0; !rc && at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    line++;
    size_t b = at;
    while (b < end && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\r')) b++;
    if (b < end && row < r->n) {
      sc_json *j = NULL;
      rc = sc_json_parse(buf + at, end - at, r->samples_path, &j);
      static const char *const key[AZ_MAX_LANGS] = {"english_prompt", "arabic_prompt"};
      for (int l = 0; !rc && l < AZ_MAX_LANGS; l++) {
        const sc_json *p = sc_json_get(j, key[l]);
        if (p && !sc_json_is_string(p))
          rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %lld: %s is not a string", r->samples_path, (long long)line,
                             key[l]);
        else if (!(r->sp[l][row] = dup_str(p ? sc_json_str(p) : "")))
          rc = oom();
      }
      sc_json_free(j);
      row++;
    }
    at = end + 1;
  }
  free(buf);
  return rc;
}

static int load_captions(az_run *r, az_lang *L) {
  char *dir = sc_path_join(r->out, "captions"), name[16], *path = NULL, *buf = NULL;
  snprintf(name, sizeof name, "%s.jsonl", L->name);
  path = dir ? sc_path_join(dir, name) : NULL;
  free(dir);
  if (!path) return oom();
  size_t len = 0;
  int rc = sc_is_file(path) ? sc_read_file(path, AZ_JSONL_MAX, &buf, &len)
                            : sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap extract` first", path);
  if (!rc) rc = sc_caption_rows_parse(buf, len, path, &L->rows, &L->n_rows);
  free(buf);
  L->cap = calloc((size_t)(r->n ? r->n : 1), sizeof *L->cap);
  L->prompt = calloc((size_t)(r->n ? r->n : 1), sizeof *L->prompt);
  L->leak = calloc((size_t)(r->n ? r->n : 1), 1);
  if (!rc && (!L->cap || !L->prompt || !L->leak)) rc = oom();
  for (int64_t k = 0; !rc && k < L->n_rows; k++) {
    int64_t i = an_sample_row(&r->smp, L->rows[k].sample_index);
    if (i < 0)
      rc = sc_error_setc(SC_ERR_FORMAT, "%s: sample_index %lld is not in samples.jsonl", path,
                         (long long)L->rows[k].sample_index);
    else
      L->cap[i] = &L->rows[k];
  }
  /* the prompt the model saw: samples.jsonl's, or the captions' when empty */
  for (int64_t i = 0; !rc && i < r->n; i++) {
    char *s = r->sp[L->lang][i];
    L->prompt[i] = *s || !L->cap[i] ? s : L->cap[i]->prompt;
  }
  free(path);
  return rc;
}

/* Names of sc_split_cfg values, as in the config. */
static const char *const SPLIT_NAMES[] = {"train", "val", "test", "all"};

static uint64_t fnv_str(const char *s) { return store_fnv1a64(STORE_FNV_INIT, s, strlen(s)); }

/* Leakage scan of both prompts of every sample; labels and groups. */
static int scan_leaks(az_run *r) {
  r->leaky = calloc((size_t)(r->n ? r->n : 1), 1);
  r->labels = malloc((size_t)(r->n ? r->n : 1) * sizeof *r->labels);
  r->groups = malloc((size_t)(r->n ? r->n : 1) * sizeof *r->groups);
  r->smp_labels = malloc((size_t)(r->n ? r->n : 1) * sizeof *r->smp_labels);
  r->exclude = calloc((size_t)(r->n ? r->n : 1), 1);
  r->feat_labels = malloc((size_t)(r->n ? r->n : 1) * sizeof *r->feat_labels);
  if (!r->leaky || !r->labels || !r->groups || !r->smp_labels || !r->exclude || !r->feat_labels) return oom();
  int rc = 0;
  an_lexicon *lex[AZ_MAX_LANGS] = {NULL, NULL};
  for (int l = 0; !rc && l < AZ_MAX_LANGS; l++) rc = an_lexicon_load((an_lang)l, &lex[l]);
  /* both prompts of the row, whether or not the language is analysed */
  const char **pr = malloc((size_t)(r->n ? r->n : 1) * sizeof *pr);
  uint8_t *lk[AZ_MAX_LANGS] = {calloc((size_t)(r->n ? r->n : 1), 1), calloc((size_t)(r->n ? r->n : 1), 1)};
  if (!rc && (!pr || !lk[0] || !lk[1])) rc = oom();
  for (int l = 0; !rc && l < AZ_MAX_LANGS; l++) {
    az_lang *L = NULL;
    for (int li = 0; li < r->n_langs; li++)
      if ((int)r->lang[li].lang == l) L = &r->lang[li];
    for (int64_t i = 0; i < r->n; i++) pr[i] = L ? L->prompt[i] : r->sp[l][i];
    rc = an_lexicon_scan_leaks(lex[l], pr, (size_t)r->n, lk[l]);
  }
  sc_json *lj = rc ? NULL : sc_json_new_object();
  sc_json *rows = lj ? sc_json_new_array() : NULL;
  if (!rc && !rows) rc = oom();
  int64_t n_leaky = 0, n_field[AZ_MAX_LANGS] = {0, 0};
  static const char *const field[AZ_MAX_LANGS] = {"english_prompt", "arabic_prompt"};
  static const unsigned mask[AZ_MAX_LANGS] = {AN_WC_LEAK_EN, AN_WC_LEAK_AR};
  for (int64_t i = 0; !rc && i < r->n; i++) {
    r->leaky[i] = lk[0][i] || lk[1][i];
    for (int li = 0; li < r->n_langs; li++) r->lang[li].leak[i] = lk[r->lang[li].lang][i];
    r->groups[i] = fnv_str(r->smp.rows[i].image_id);
    int excl = r->leaky[i] && r->cfg->analyze.exclude_leaky_prompts;
    r->labels[i] = excl ? SC_LABEL_UNKNOWN : r->smp.rows[i].label;
    /* Features ranked on the images steering later edits would be chosen
     * and judged on the same data, so RQ2 keeps to its own split. */
    int in_split = r->cfg->analyze.feature_split == SC_CFG_SPLIT_ALL ||
                   r->smp.rows[i].split == (int)r->cfg->analyze.feature_split;
    r->feat_labels[i] = in_split ? r->labels[i] : SC_LABEL_UNKNOWN;
    r->smp_labels[i] = r->smp.rows[i].label;
    r->exclude[i] = (uint8_t)excl;
    if (!r->leaky[i]) continue;
    n_leaky++;
    sc_json *o = sc_json_add(rows, NULL, sc_json_new_object());
    sc_json *fl = o ? sc_json_new_array() : NULL, *words = fl ? sc_json_new_array() : NULL;
    if (!o || !fl || !words || !sc_json_add_num(o, "sample_index", (double)r->smp.rows[i].sample_index) ||
        !sc_json_add_str(o, "image_id", r->smp.rows[i].image_id) ||
        !sc_json_add_str(o, "label", sc_label_name(r->smp.rows[i].label))) {
      sc_json_free(fl), sc_json_free(words);
      rc = oom();
      break;
    }
    for (int l = 0; !rc && l < AZ_MAX_LANGS; l++) {
      if (!lk[l][i]) continue;
      n_field[l]++;
      an_match *m = NULL;
      size_t nm = 0;
      const char *text = NULL;
      for (int li = 0; li < r->n_langs; li++)
        if ((int)r->lang[li].lang == l) text = r->lang[li].prompt[i];
      if (!text) text = r->sp[l][i];
      if (!rc) rc = an_lexicon_match(lex[l], text, strlen(text), mask[l], &m, &nm);
      if (!rc && !sc_json_add(fl, NULL, sc_json_new_str(field[l]))) rc = oom();
      for (size_t k = 0; !rc && k < nm; k++) {
        char w[256];
        size_t wl = m[k].end - m[k].begin < sizeof w - 1 ? m[k].end - m[k].begin : sizeof w - 1;
        memcpy(w, text + m[k].begin, wl);
        w[wl] = 0;
        if (!sc_json_add(words, NULL, sc_json_new_str(w))) rc = oom();
      }
      free(m);
    }
    if (!sc_json_add(o, "prompts", fl)) rc = rc ? rc : oom();
    if (!sc_json_add(o, "words", words)) rc = rc ? rc : oom();
  }
  if (!rc) {
    rc = !sc_json_add_num(lj, "n_leaky", (double)n_leaky) ||
                 !sc_json_add_num(lj, "n_english_prompt", (double)n_field[0]) ||
                 !sc_json_add_num(lj, "n_arabic_prompt", (double)n_field[1]) ||
                 !sc_json_add_bool(lj, "excluded", r->cfg->analyze.exclude_leaky_prompts) ||
                 !sc_json_add(lj, "rows", rows)
             ? oom()
             : 0;
    rows = NULL;
  }
  sc_json_free(rows);
  if (!rc)
    r->leak_json = lj;
  else
    sc_json_free(lj);
  free(pr), free(lk[0]), free(lk[1]);
  an_lexicon_free(lex[0]), an_lexicon_free(lex[1]);
  return rc;
}

static int dataset_counts(az_run *r) {
  sc_json *d = sc_json_new_object(), *lab = d ? sc_json_add(d, "labels", sc_json_new_object()) : NULL;
  int64_t cnt[SC_N_LABELS] = {0}, excl = 0, used = 0;
  for (int64_t i = 0; i < r->n; i++) {
    cnt[r->smp.rows[i].label]++;
    excl += r->leaky[i] && r->cfg->analyze.exclude_leaky_prompts;
    used += r->labels[i] == SC_LABEL_MALE || r->labels[i] == SC_LABEL_FEMALE;
  }
  int rc = lab ? 0 : oom();
  for (int k = 0; !rc && k < SC_N_LABELS; k++)
    if (!sc_json_add_num(lab, sc_label_name(k), (double)cnt[k])) rc = oom();
  if (!rc && (!sc_json_add_num(d, "n_samples", (double)r->n) || !sc_json_add_num(d, "n_excluded_leaky", (double)excl) ||
              !sc_json_add_num(d, "n_male_female_used", (double)used)))
    rc = oom();
  sc_json *cap = rc ? NULL : sc_json_add(d, "captions", sc_json_new_object());
  if (!rc && !cap) rc = oom();
  for (int li = 0; !rc && li < r->n_langs; li++)
    if (!sc_json_add_num(cap, r->lang[li].name, (double)r->lang[li].n_rows)) rc = oom();
  if (!rc)
    r->dataset_json = d;
  else
    sc_json_free(d);
  return rc;
}

/* Checks every configured layer's inputs before any work. */
static int check_layers(az_run *r) {
  for (int l = 0; l < r->n_layers; l++) {
    for (int li = 0; li < r->n_langs; li++) {
      char *ld = store_layer_dir(r->out, r->lang[li].name, r->layers[l]);
      char *mf = ld ? sc_path_join(ld, "manifest.json") : NULL;
      int ok = mf && sc_is_file(mf);
      int rc = !mf  ? oom()
               : ok ? 0
                    : sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap extract` first (analyze.layers has layer %d)",
                                    ld, r->layers[l]);
      free(ld), free(mf);
      if (rc) return rc;
    }
    char sub[32], *base = sc_path_join(r->out, "saes"), *sd;
    snprintf(sub, sizeof sub, "layer_%d", r->layers[l]);
    sd = base ? sc_path_join(base, sub) : NULL;
    free(base);
    if (!sd) return oom();
    int rc =
        sc_is_dir(sd) ? 0
        : r->cfg->train.per_language
            ? sc_error_setc(
                  SC_ERR_IO,
                  "%s: missing; analyze compares the languages in one shared EN+AR SAE (train.per_language is set)", sd)
            : sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap train` first (analyze.layers has layer %d)", sd,
                            r->layers[l]);
    free(sd);
    if (rc) return rc;
  }
  return 0;
}

/* ---- config hash ---- */

static int hash_file(uint64_t *h, const char *path) {
  sc_mmap m;
  int rc = sc_mmap_open(&m, path);
  if (rc) return rc;
  *h = store_fnv1a64(*h, m.data ? (const void *)m.data : "", m.size);
  sc_mmap_close(&m);
  return 0;
}

static int make_hash(az_run *r) {
  const sc_config_analyze *a = &r->cfg->analyze;
  char set[512];
  snprintf(
      set, sizeof set,
      "v=%s|seed=%llu|boot=%llu|perm=%llu|folds=%llu|c=%.17g|fdr=%.17g|k=%llu|min=%llu|leak=%d|cards=%llu|ci=%.17g|"
      "fsplit=%d|",
      SAECAP_VERSION, (unsigned long long)r->cfg->seed, (unsigned long long)a->bootstrap,
      (unsigned long long)a->permutations, (unsigned long long)a->folds, a->probe_c, a->fdr,
      (unsigned long long)a->top_k, (unsigned long long)a->min_per_label, a->exclude_leaky_prompts,
      (unsigned long long)a->card_examples, a->ci, (int)a->feature_split);
  uint64_t h = store_fnv1a64(STORE_FNV_INIT, set, strlen(set));
  for (int s = 0; s < r->n_segs; s++) h = store_fnv1a64(h, seg_name(r->seg[s]), strlen(seg_name(r->seg[s])) + 1);
  for (int li = 0; li < r->n_langs; li++) h = store_fnv1a64(h, r->lang[li].name, 3);
  int rc = hash_file(&h, r->samples_path);
  /* token texts in the cards and RQ4 come from the tokenizer */
  char *tp = r->cfg->model.path ? sc_path_join(r->cfg->model.path, "tokenizer.json") : NULL;
  if (!rc && tp && sc_is_file(tp)) rc = hash_file(&h, tp);
  free(tp);
  for (int li = 0; !rc && li < r->n_langs; li++) {
    char *dir = sc_path_join(r->out, "captions"), name[16], *p;
    snprintf(name, sizeof name, "%s.jsonl", r->lang[li].name);
    p = dir ? sc_path_join(dir, name) : NULL;
    rc = p ? hash_file(&h, p) : oom();
    free(dir), free(p);
  }
  for (int l = 0; !rc && l < r->n_layers; l++) {
    h = store_fnv1a64(h, &r->layers[l], sizeof r->layers[l]);
    for (int li = 0; !rc && li < r->n_langs; li++) {
      char *ld = store_layer_dir(r->out, r->lang[li].name, r->layers[l]);
      char *mf = ld ? sc_path_join(ld, "manifest.json") : NULL;
      rc = mf ? hash_file(&h, mf) : oom();
      free(ld), free(mf);
    }
    char sub[32], *base = sc_path_join(r->out, "saes"), *sd, *f1, *f2;
    snprintf(sub, sizeof sub, "layer_%d", r->layers[l]);
    sd = base ? sc_path_join(base, sub) : NULL;
    f1 = sd ? sc_path_join(sd, "cfg.json") : NULL;
    f2 = sd ? sc_path_join(sd, "sae_weights.safetensors") : NULL;
    if (!rc && (!f1 || !f2)) rc = oom();
    /* a Gemma Scope folder has other names: hash what is there */
    if (!rc && sc_is_file(f1)) rc = hash_file(&h, f1);
    if (!rc && sc_is_file(f2)) rc = hash_file(&h, f2);
    free(base), free(sd), free(f1), free(f2);
  }
  snprintf(r->hash, sizeof r->hash, "fnv1a64:%016llx", (unsigned long long)h);
  return rc;
}

/* ---- token texts ---- */

/* The bytes one token stands for in a decoded caption: the token string
 * with "▁" as a space and <0xHH> as the byte HH; special tokens are empty
 * (the captions were decoded skipping them). */
static size_t token_piece(const tok_tokenizer *t, int32_t id, char *buf, size_t cap) {
  size_t len = 0, n = 0;
  const char *s = t ? tok_token_str(t, id, &len) : NULL;
  if (!s || tok_is_special(t, id)) return 0;
  unsigned hx;
  if (len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && sscanf(s + 3, "%2x", &hx) == 1) {
    if (cap) buf[n++] = (char)hx;
    return n;
  }
  for (size_t i = 0; i < len && n + 3 < cap;) {
    if (i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
        (unsigned char)s[i + 2] == 0x81) {
      buf[n++] = ' ';
      i += 3;
    } else
      buf[n++] = s[i++];
  }
  return n;
}

/* ---- per-token features of the caption tokens (RQ4) ---- */

/* The caption tokens of one language and layer in row order, their texts
 * and their active features (sparse): what RQ4 reads through its rows
 * callback, never a dense [tokens, d_sae] matrix. */
typedef struct tok_store {
  const az_run *r;
  int64_t n, cap;
  int64_t *sample;
  size_t *text_at, *text_len;
  char *text;
  size_t text_used, text_cap;
  int64_t *ptr; /* (n + 1) */
  int32_t *feat;
  float *val;
  int64_t nnz, ecap;
  int64_t n_features;
} tok_store;

static void tok_store_free(tok_store *t) {
  free(t->sample), free(t->text_at), free(t->text_len), free(t->text), free(t->ptr), free(t->feat), free(t->val);
  memset(t, 0, sizeof *t);
}

static int tok_store_add(void *user, int64_t sample, const store_row_meta *meta, const int32_t *feature,
                         const float *value, int n_active) {
  tok_store *t = user;
  if (meta->segment != STORE_SEG_CAPTION) return 0;
  if (t->n + 1 >= t->cap) {
    int64_t nc = t->cap ? t->cap * 2 : 1024;
    int64_t *s = realloc(t->sample, (size_t)nc * sizeof *s);
    if (s) t->sample = s;
    size_t *a = s ? realloc(t->text_at, (size_t)nc * sizeof *a) : NULL;
    if (a) t->text_at = a;
    size_t *l = a ? realloc(t->text_len, (size_t)nc * sizeof *l) : NULL;
    if (l) t->text_len = l;
    int64_t *p = l ? realloc(t->ptr, (size_t)(nc + 1) * sizeof *p) : NULL;
    if (p) t->ptr = p;
    if (!p) return oom();
    if (!t->cap) t->ptr[0] = 0;
    t->cap = nc;
  }
  if (t->nnz + n_active > t->ecap) {
    int64_t nc = t->ecap ? t->ecap : 4096;
    while (nc < t->nnz + n_active) nc *= 2;
    int32_t *f = realloc(t->feat, (size_t)nc * sizeof *f);
    if (f) t->feat = f;
    float *v = f ? realloc(t->val, (size_t)nc * sizeof *v) : NULL;
    if (v) t->val = v;
    if (!v) return oom();
    t->ecap = nc;
  }
  char piece[256];
  size_t pl = token_piece(t->r->tok, meta->token_id, piece, sizeof piece);
  if (t->text_used + pl + 1 > t->text_cap) {
    size_t nc = t->text_cap ? t->text_cap * 2 : 65536;
    while (nc < t->text_used + pl + 1) nc *= 2;
    char *x = realloc(t->text, nc);
    if (!x) return oom();
    t->text = x, t->text_cap = nc;
  }
  memcpy(t->text + t->text_used, piece, pl);
  t->text[t->text_used + pl] = 0;
  t->text_at[t->n] = t->text_used;
  t->text_len[t->n] = pl;
  t->text_used += pl + 1;
  t->sample[t->n] = sample;
  if (n_active > 0) {
    memcpy(t->feat + t->nnz, feature, (size_t)n_active * sizeof *feature);
    memcpy(t->val + t->nnz, value, (size_t)n_active * sizeof *value);
  }
  t->nnz += n_active;
  t->ptr[++t->n] = t->nnz;
  return 0;
}

static int tok_store_rows(void *user, size_t tok0, size_t n_tok, float *out) {
  const tok_store *t = user;
  memset(out, 0, n_tok * (size_t)t->n_features * sizeof *out);
  for (size_t k = 0; k < n_tok; k++) {
    int64_t i = (int64_t)(tok0 + k);
    if (i >= t->n)
      return sc_error_setc(SC_ERR_INTERNAL, "morphology rows: token %lld of %lld", (long long)i, (long long)t->n);
    for (int64_t e = t->ptr[i]; e < t->ptr[i + 1]; e++) out[k * (size_t)t->n_features + (size_t)t->feat[e]] = t->val[e];
  }
  return 0;
}

/* RQ4 of one language on the stored caption tokens. */
static int rq4_lang(const az_run *r, int li, tok_store *ts, const uint8_t *exclude, sc_json **out) {
  an_lexicon *lex = NULL;
  const char **text = malloc((size_t)(ts->n ? ts->n : 1) * sizeof *text);
  int rc = text ? an_lexicon_load(r->lang[li].lang, &lex) : oom();
  for (int64_t i = 0; !rc && i < ts->n; i++) text[i] = ts->text + ts->text_at[i];
  if (!rc) {
    an_morphology_input in;
    memset(&in, 0, sizeof in);
    in.lang = r->lang[li].lang;
    in.n_samples = (size_t)r->n;
    in.label = r->smp_labels;
    in.exclude = exclude;
    in.n_tokens = (size_t)ts->n;
    in.token_sample = ts->sample;
    in.token_text = text;
    in.token_len = ts->text_len;
    in.n_features = (size_t)ts->n_features;
    in.rows = tok_store_rows;
    in.user = ts;
    in.fdr = r->cfg->analyze.fdr;
    in.min_samples = (size_t)r->cfg->analyze.min_per_label;
    in.top_k = (size_t)r->cfg->analyze.top_k;
    rc = an_morphology_run(lex, &in, out);
  }
  an_lexicon_free(lex);
  free(text);
  return rc;
}

/* ---- feature cards ---- */

typedef struct card_ctx {
  az_run *r;
  const az_lang *lang[AN_FEAT_MAX_LANGS];
  const an_sae_pooled *f[AN_FEAT_MAX_LANGS];
  int primary;
} card_ctx;

static int card_fn(void *user, int li, int64_t sample, int32_t position, int32_t token_id, sc_json *ex) {
  card_ctx *c = user;
  const az_lang *L = c->lang[li];
  const sc_caption_row *cr = L->cap[sample];
  char piece[256];
  size_t pl = token_piece(c->r->tok, token_id, piece, sizeof piece);
  piece[pl] = 0;
  /* a special token (an image soft token, <start_of_turn>) has no text in a
   * decoded caption: show its name instead */
  size_t sl = 0;
  const char *raw = pl ? NULL : tok_token_str(c->r->tok, token_id, &sl);
  char named[256];
  if (raw) snprintf(named, sizeof named, "%.*s", (int)(sl < 255 ? sl : 255), raw);
  int rc = !sc_json_add_num(ex, "sample_index", (double)c->r->smp.rows[sample].sample_index) ||
                   !sc_json_add_str(ex, "image_id", c->r->smp.rows[sample].image_id) ||
                   !sc_json_add_str(ex, "token", raw ? named : piece) || !sc_json_add_str(ex, "caption", cr ? cr->caption : "")
               ? oom()
               : 0;
  /* caption tokens: the token's index in caption_ids and its byte span */
  if (!rc && c->primary == STORE_SEG_CAPTION && cr) {
    int32_t first = c->f[li]->first_pos[sample];
    int64_t t = (int64_t)position - first;
    if (first >= 0 && t >= 0 && t < cr->n_ids && cr->ids[t] == token_id) {
      size_t at = 0, end = 0;
      int ok = 1;
      char buf[256];
      /* the pieces up to t must spell the caption's start */
      for (int64_t k = 0; k <= t && ok; k++) {
        size_t n = token_piece(c->r->tok, cr->ids[k], buf, sizeof buf);
        if (at + n > strlen(cr->caption) || memcmp(cr->caption + at, buf, n)) ok = 0;
        if (k == t)
          end = at + n;
        else
          at += n;
      }
      if (!sc_json_add_num(ex, "token_index", (double)t)) rc = oom();
      if (!rc && ok) {
        size_t b = end - pl;
        rc = !sc_json_add_num(ex, "byte_start", (double)b) || !sc_json_add_num(ex, "byte_end", (double)end) ? oom() : 0;
      }
    }
  }
  return rc;
}

/* ---- output ---- */

static int add_common(az_run *r, sc_json *root, int with_schema, const char *schema) {
  if (with_schema && !sc_json_add_str(root, "schema", schema)) return oom();
  if (!sc_json_get(root, "saecap_version") && !sc_json_add_str(root, "saecap_version", SAECAP_VERSION)) return oom();
  char *d = sc_json_print(r->dataset_json, 0), *l = sc_json_print(r->leak_json, 0);
  sc_json *dj = NULL, *lj = NULL;
  int rc = d && l ? 0 : oom();
  if (!rc) rc = sc_json_parse(d, strlen(d), "dataset", &dj);
  if (!rc) rc = sc_json_parse(l, strlen(l), "leakage", &lj);
  free(d), free(l);
  if (!rc && (!sc_json_add_str(root, "config_hash", r->hash) || !sc_json_add(root, "dataset", dj)))
    rc = oom();
  else
    dj = NULL;
  if (!rc && !sc_json_add(root, "leakage", lj))
    rc = oom();
  else
    lj = NULL;
  sc_json_free(dj), sc_json_free(lj);
  return rc;
}

static int write_json(const char *path, const sc_json *j) {
  char *txt = sc_json_print(j, 1);
  if (!txt) return oom();
  size_t n = strlen(txt);
  txt[n] = '\n'; /* replaces the NUL; the length below counts it */
  int rc = sc_write_file_atomic(path, txt, n + 1);
  free(txt);
  return rc;
}

/* 1 when path holds a JSON object whose config_hash is r->hash. */
static int up_to_date(const az_run *r, const char *path) {
  sc_json *j = NULL;
  if (!sc_is_file(path) || sc_json_load(path, (size_t)1 << 30, &j)) {
    sc_error_clear();
    return 0;
  }
  const char *h = sc_json_str(sc_json_get(j, "config_hash"));
  int ok = h && !strcmp(h, r->hash);
  sc_json_free(j);
  return ok;
}

/* ---- the stage ---- */

static int feature_opts(const az_run *r, an_feat_opts *fo) {
  const sc_config_analyze *a = &r->cfg->analyze;
  memset(fo, 0, sizeof *fo);
  fo->fdr = a->fdr;
  fo->top_k = a->top_k;
  fo->permutations = a->permutations;
  fo->card_examples = a->card_examples;
  fo->min_per_label = a->min_per_label;
  fo->seed = r->cfg->seed;
  return 0;
}

static int do_layer(az_run *r, int l, sc_json *layers_json, sc_json *morph_layers) {
  int L = r->layers[l], rc = 0;
  char sub[32], *base = sc_path_join(r->out, "saes"), *sd;
  snprintf(sub, sizeof sub, "layer_%d", L);
  sd = base ? sc_path_join(base, sub) : NULL;
  free(base);
  if (!sd) return oom();
  sae *s = NULL;
  rc = sae_load(&s, sd);
  an_sae_pooled fp[AZ_MAX_LANGS];
  uint8_t *use[AZ_MAX_LANGS] = {NULL, NULL};
  memset(fp, 0, sizeof fp);
  /* RQ4 reads the caption tokens: only when the primary segment is the caption */
  int rq4 = r->seg[0] == STORE_SEG_CAPTION;
  sc_json *ml = rq4 ? NULL : sc_json_new_object(), *mlangs = NULL;
  for (int li = 0; !rc && li < r->n_langs; li++) {
    char *ld = store_layer_dir(r->out, r->lang[li].name, L), label[64];
    if (!ld) {
      rc = oom();
      break;
    }
    snprintf(label, sizeof label, "analyze layer %d %s", L, r->lang[li].name);
    an_pool_opts po = an_pool_opts_default();
    po.mean_segments = r->seg_bits;
    po.sae_segments = 1u << r->seg[0];
    po.label = label;
    tok_store ts;
    memset(&ts, 0, sizeof ts);
    ts.r = r;
    ts.n_features = s->cfg.n;
    if (rq4) po.per_token = tok_store_add, po.user = &ts;
    const char *dirs[1] = {ld};
    an_pooled tmp[STORE_N_SEGMENTS];
    memset(tmp, 0, sizeof tmp);
    rc = an_pool(dirs, 1, &r->smp, &po, s, tmp, &fp[li]);
    free(ld);
    for (int sg = 0; !rc && sg < STORE_N_SEGMENTS; sg++)
      if (r->seg_bits >> sg & 1u) *mean_at(r, l, li, sg) = tmp[sg];
    if (!rc && !(use[li] = malloc((size_t)(r->n ? r->n : 1)))) rc = oom();
    for (int64_t i = 0; !rc && i < r->n; i++) use[li][i] = fp[li].count[i] > 0;
    if (!rc && rq4) {
      sc_json *obj = NULL;
      rc = rq4_lang(r, li, &ts, r->exclude, &obj);
      if (!rc && !mlangs) {
        char rel[48];
        snprintf(rel, sizeof rel, "saes/layer_%d", L);
        ml = sc_json_new_object();
        if (!ml || !sc_json_add_num(ml, "layer", L) || !sc_json_add_str(ml, "sae", rel) ||
            !(mlangs = sc_json_add(ml, "languages", sc_json_new_object())))
          rc = oom();
      }
      if (!rc && !sc_json_add(mlangs, r->lang[li].name, obj))
        rc = oom();
      else if (rc)
        sc_json_free(obj);
    }
    tok_store_free(&ts);
  }
  if (!rc && !rq4 &&
      (!sc_json_add_num(ml, "layer", L) || !sc_json_add_str(ml, "status", "skipped") ||
       !sc_json_add_str(ml, "skip_reason",
                        "RQ4 reads caption tokens; the primary segment (first of analyze.segments) is not caption")))
    rc = oom();
  if (!rc && ml) {
    if (!sc_json_add(morph_layers, NULL, ml)) rc = oom();
    ml = NULL;
  }
  sc_json_free(ml);
  an_feat_result res;
  memset(&res, 0, sizeof res);
  an_feat_lang_in in[AZ_MAX_LANGS];
  an_feat_opts fo;
  feature_opts(r, &fo);
  card_ctx cc;
  memset(&cc, 0, sizeof cc);
  cc.r = r;
  cc.primary = r->seg[0];
  for (int li = 0; li < r->n_langs; li++) {
    in[li] = (an_feat_lang_in){r->lang[li].name, &fp[li], use[li]};
    cc.lang[li] = &r->lang[li];
    cc.f[li] = &fp[li];
  }
  fo.card = card_fn;
  fo.user = &cc;
  if (!rc) rc = an_features_compute(in, r->n_langs, r->feat_labels, r->groups, r->n, &fo, &res);
  sc_json *langs = NULL, *cross = NULL;
  if (!rc) rc = an_features_json(&res, in, r->feat_labels, &fo, &langs, &cross);
  sc_json *lj = rc ? NULL : sc_json_add(layers_json, NULL, sc_json_new_object());
  if (!rc && !lj) rc = oom();
  if (!rc) {
    char rel[48];
    snprintf(rel, sizeof rel, "saes/layer_%d", L);
    rc = !sc_json_add_num(lj, "layer", L) || !sc_json_add_str(lj, "sae", rel) ||
                 !sc_json_add_num(lj, "d_sae", (double)s->cfg.n) ||
                 !sc_json_add_str(lj, "architecture", sae_arch_name(s->cfg.arch)) ||
                 !sc_json_add(lj, "languages", langs)
             ? oom()
             : 0;
    langs = NULL;
    if (!rc && !sc_json_add(lj, "cross_language", cross)) rc = oom();
    cross = NULL;
  }
  if (!rc)
    sc_info("analyze: layer %d: %lld features tested, top-%llu overlap %lld", L, (long long)res.n_tests,
            (unsigned long long)r->cfg->analyze.top_k, (long long)res.overlap);
  sc_json_free(langs), sc_json_free(cross);
  an_feat_result_free(&res);
  for (int li = 0; li < AZ_MAX_LANGS; li++) an_sae_pooled_free(&fp[li]), free(use[li]);
  sae_free(s);
  free(sd);
  return rc;
}

static int rq1(az_run *r, sc_json **out) {
  int rc = an_crossling_root(&r->cfg->analyze, r->cfg->seed, out);
  int en = -1, ar = -1;
  for (int li = 0; li < r->n_langs; li++) {
    if (r->lang[li].lang == AN_LANG_EN)
      en = li;
    else
      ar = li;
  }
  if (!rc && (en < 0 || ar < 0)) {
    rc = sc_json_add_str(*out, "status", "skipped") &&
                 sc_json_add_str(*out, "skip_reason", "RQ1 compares English and Arabic; extract.languages has one")
             ? 0
             : oom();
    return rc;
  }
  const float **pe = malloc((size_t)r->n_layers * sizeof *pe), **pa = malloc((size_t)r->n_layers * sizeof *pa);
  if (!rc && (!pe || !pa)) rc = oom();
  for (int s = 0; !rc && s < r->n_segs; s++) {
    int sg = r->seg[s];
    for (int l = 0; l < r->n_layers; l++) pe[l] = mean_at(r, l, en, sg)->x, pa[l] = mean_at(r, l, ar, sg)->x;
    an_crossling_input ci = {
        (size_t)r->n, (size_t)mean_at(r, 0, en, sg)->d, (size_t)r->n_layers, r->layers, pe, pa, r->labels, r->groups,
        seg_name(sg)};
    sc_json *seg = NULL;
    rc = an_crossling_run(&ci, &r->cfg->analyze, r->cfg->seed, &seg);
    if (!rc) rc = an_crossling_add_segment(*out, seg_name(sg), seg);
  }
  free(pe), free(pa);
  return rc;
}

int sc_analyze_run(const sc_config *cfg, const sc_analyze_opts *o, sc_analyze_summary *out) {
  memset(out, 0, sizeof *out);
  az_run r;
  memset(&r, 0, sizeof r);
  r.cfg = cfg;
  r.out = cfg->output_dir;
  char *proc = sc_path_join(cfg->output_dir, "data/processed");
  r.samples_path = proc ? sc_path_join(proc, "samples.jsonl") : NULL;
  free(proc);
  char *res_dir = sc_path_join(cfg->output_dir, "results");
  char *p_cross = res_dir ? sc_path_join(res_dir, "cross_lingual_analysis.json") : NULL;
  char *p_feat = res_dir ? sc_path_join(res_dir, "feature_analysis.json") : NULL;
  char *p_morph = res_dir ? sc_path_join(res_dir, "morphology_analysis.json") : NULL;
  int rc = r.samples_path && p_cross && p_feat && p_morph ? 0 : oom();
  if (!rc && !sc_is_file(r.samples_path))
    rc = sc_error_setc(SC_ERR_IO, "%s: missing; run `saecap prepare` first", r.samples_path);
  if (!rc) rc = store_samples_load(r.samples_path, &r.smp);
  r.n = r.smp.n;
  if (!rc) rc = read_config(&r);
  if (!rc) rc = check_layers(&r);
  if (!rc) rc = make_hash(&r);
  if (!rc && !o->force && up_to_date(&r, p_cross) && up_to_date(&r, p_feat) && up_to_date(&r, p_morph)) {
    out->up_to_date = 1;
  } else if (!rc) {
    if (!cfg->model.path)
      rc = sc_error_setc(SC_ERR_ARG, "%s: model.path is required by analyze (its tokenizer)", cfg->source);
    char *tp = rc ? NULL : sc_path_join(cfg->model.path, "tokenizer.json");
    if (!rc && !tp) rc = oom();
    if (!rc && !sc_is_file(tp)) rc = sc_error_setc(SC_ERR_IO, "%s: missing (model.path's tokenizer)", tp);
    if (!rc) rc = tok_load(&r.tok, tp);
    free(tp);
    if (!rc) rc = load_prompts(&r);
    for (int li = 0; !rc && li < r.n_langs; li++) rc = load_captions(&r, &r.lang[li]);
    if (!rc) rc = scan_leaks(&r);
    if (!rc) rc = dataset_counts(&r);
    if (!rc && !(r.means = calloc((size_t)r.n_layers * AZ_MAX_LANGS * STORE_N_SEGMENTS, sizeof *r.means))) rc = oom();
    sc_json *feat = rc ? NULL : sc_json_new_object(), *layers = NULL, *cross = NULL, *morph = NULL;
    if (!rc && !feat) rc = oom();
    if (!rc) rc = add_common(&r, feat, 1, SC_FEATURE_ANALYSIS_SCHEMA);
    if (!rc) {
      const sc_config_analyze *a = &cfg->analyze;
      sc_json *c = sc_json_add(feat, "config", sc_json_new_object());
      rc = !c || !sc_json_add_num(c, "seed", (double)cfg->seed) || !sc_json_add_num(c, "fdr", a->fdr) ||
                   !sc_json_add_num(c, "top_k", (double)a->top_k) ||
                   !sc_json_add_num(c, "permutations", (double)a->permutations) ||
                   !sc_json_add_num(c, "card_examples", (double)a->card_examples) ||
                   !sc_json_add_num(c, "min_per_label", (double)a->min_per_label) ||
                   !sc_json_add_bool(c, "exclude_leaky_prompts", a->exclude_leaky_prompts) ||
                   !sc_json_add_str(c, "feature_split", SPLIT_NAMES[a->feature_split]) ||
                   !sc_json_add_str(feat, "segment", seg_name(r.seg[0])) ||
                   !(layers = sc_json_add(feat, "layers", sc_json_new_array()))
               ? oom()
               : 0;
    }
    sc_json *mlayers = NULL;
    if (!rc) {
      morph = sc_json_new_object();
      rc = morph && sc_json_add_str(morph, "schema", "saecap.morphology_analysis/1") ? 0 : oom();
      if (!rc) rc = add_common(&r, morph, 0, NULL);
      if (!rc && (!sc_json_add_str(morph, "segment", seg_name(r.seg[0])) ||
                  !(mlayers = sc_json_add(morph, "layers", sc_json_new_array()))))
        rc = oom();
    }
    for (int l = 0; !rc && l < r.n_layers; l++) rc = do_layer(&r, l, layers, mlayers);
    if (!rc) rc = rq1(&r, &cross);
    if (!rc) rc = add_common(&r, cross, 0, NULL);
    if (!rc) rc = sc_mkdirs(res_dir);
    /* all computed: now the files, each atomic */
    if (!rc) rc = write_json(p_cross, cross);
    if (!rc) rc = write_json(p_feat, feat);
    if (!rc) rc = write_json(p_morph, morph);
    sc_json_free(feat), sc_json_free(cross), sc_json_free(morph);
  }
  if (!rc) {
    out->n_layers = r.n_layers;
    out->n_langs = r.n_langs;
    out->n_samples = r.n;
    for (int64_t i = 0; r.leaky && i < r.n; i++) out->n_leaky += r.leaky[i];
    out->n_excluded = cfg->analyze.exclude_leaky_prompts ? out->n_leaky : 0;
    out->results_dir = res_dir;
    res_dir = NULL;
  }
  free(res_dir), free(p_cross), free(p_feat), free(p_morph);
  run_free(&r);
  return rc;
}

void sc_analyze_summary_free(sc_analyze_summary *s) {
  if (!s) return;
  free(s->results_dir);
  memset(s, 0, sizeof *s);
}
