/* prepare.c: the `prepare` stage (see prepare.h). */
#include "pipeline/prepare.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/rng.h"
#include "io/csv.h"
#include "io/image.h"
#include "io/json.h"

static const char *const label_names[SC_N_LABELS] = {"male", "female", "neutral", "unknown"};
static const char *const split_names[SC_N_SPLITS] = {"train", "val", "test"};
static const char *const image_exts[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};

/* Stream id mixed into the seed so the split does not share a stream with
 * any other stage seeded from the same config seed. */
#define PREP_SPLIT_STREAM 0x73706c6974ULL /* "split" */

typedef struct prep_image {
  char *path;        /* resolved file path (owned) */
  int width, height; /* decoded size */
  int label;         /* label of the image's first kept row */
  int split;         /* SC_SPLIT_* */
} prep_image;

typedef struct prep_row {
  int csv_row; /* index into csv->rows */
  int image;   /* index into images */
  int label;   /* SC_LABEL_* */
} prep_row;

typedef struct prep_reject {
  int row, line;   /* CSV row (1-based) and line */
  char *image_id;  /* owned */
  char *reason;    /* owned */
} prep_reject;

typedef struct prep_state {
  const sc_config *cfg;
  sc_csv *csv;
  int col_id, col_en, col_ar, col_label; /* column indices */
  prep_row *rows;                        /* (csv->n_rows) kept rows */
  int n_rows;
  prep_image *images; /* (csv->n_rows) distinct images */
  int n_images;
  int *slots;         /* (n_slots) hash of image path -> index, -1 empty */
  size_t n_slots;
  prep_reject *rejects; /* (csv->n_rows) */
  int n_rejects;
} prep_state;

int sc_label_parse(const char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) n--;
  for (int i = 0; i < SC_N_LABELS; i++)
    if (strlen(label_names[i]) == n && !strncasecmp(s, label_names[i], n)) return i;
  return -1;
}

const char *sc_label_name(int label) {
  return label >= 0 && label < SC_N_LABELS ? label_names[label] : "?";
}

const char *sc_split_name(int split) {
  return split >= 0 && split < SC_N_SPLITS ? split_names[split] : "?";
}

static int is_blank(const char *s) {
  for (; *s; s++)
    if (!isspace((unsigned char)*s)) return 0;
  return 1;
}

/* ==== bad rows ========================================================== */

/* Reports a row that failed validation: an error under on_bad_row: error,
 * a recorded rejection under skip. Returns 0 when the row is skipped. */
static int row_bad(prep_state *st, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int row_bad(prep_state *st, int r, const char *fmt, ...) {
  char reason[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  const sc_csv_row *row = &st->csv->rows[r];
  if (st->cfg->data.on_bad_row == SC_BAD_ROW_ERROR)
    return sc_error_set("%s: row %d (line %d): %s", st->cfg->data.captions_csv, r + 1, row->line,
                        reason);
  prep_reject *rj = &st->rejects[st->n_rejects];
  rj->row = r + 1;
  rj->line = row->line;
  rj->image_id = strdup(row->fields[st->col_id]);
  rj->reason = strdup(reason);
  if (!rj->image_id || !rj->reason) {
    free(rj->image_id);
    free(rj->reason);
    return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  }
  st->n_rejects++;
  sc_warn("%s: row %d (line %d): skipped: %s", st->cfg->data.captions_csv, r + 1, row->line, reason);
  return 0;
}

/* ==== image lookup ====================================================== */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* Slot of `path` in the hash: holds its index, or -1 where it would go. */
static size_t image_slot(const prep_state *st, const char *path) {
  size_t i = hash_str(path) & (st->n_slots - 1);
  while (st->slots[i] >= 0 && strcmp(st->images[st->slots[i]].path, path) != 0)
    i = (i + 1) & (st->n_slots - 1);
  return i;
}

/* An image_id must name a file inside the images folder. */
static int id_escapes(const char *id) {
  if (id[0] == '/') return 1;
  for (const char *p = id; (p = strstr(p, "..")); p += 2)
    if ((p == id || p[-1] == '/') && (p[2] == '\0' || p[2] == '/')) return 1;
  return 0;
}

/* malloc'd path of the image file for id, or NULL if none exists. */
static char *resolve_image(const char *dir, const char *id) {
  char *p = sc_path_join(dir, id);
  if (!p || sc_is_file(p)) return p;
  size_t n = strlen(p);
  for (size_t e = 0; e < sizeof image_exts / sizeof image_exts[0]; e++) {
    char *q = malloc(n + strlen(image_exts[e]) + 1);
    if (!q) break;
    memcpy(q, p, n);
    strcpy(q + n, image_exts[e]);
    if (sc_is_file(q)) {
      free(p);
      return q;
    }
    free(q);
  }
  free(p);
  return NULL;
}

/* Index of the (decoded) image for row r in st->images, adding it on first
 * sight; -1 if the row was rejected, or an error code. */
static int row_image(prep_state *st, int r, int label, int *index) {
  const char *id = st->csv->rows[r].fields[st->col_id];
  *index = -1;
  if (id_escapes(id)) return row_bad(st, r, "image_id '%s' points outside the images folder", id);
  char *path = resolve_image(st->cfg->data.images_dir, id);
  if (!path)
    return row_bad(st, r, "image '%s' not found in %s", id, st->cfg->data.images_dir);
  size_t slot = image_slot(st, path);
  if (st->slots[slot] >= 0) {
    free(path);
    *index = st->slots[slot];
    return 0;
  }
  img_rgb8 im = {0};
  int rc = img_load(path, &im);
  if (rc) {
    free(path);
    if (rc == SC_ERR_NOMEM) return rc;
    return row_bad(st, r, "%s", sc_error_get());
  }
  prep_image *pi = &st->images[st->n_images];
  pi->path = path;
  pi->width = im.width;
  pi->height = im.height;
  pi->label = label;
  img_free(&im);
  st->slots[slot] = st->n_images;
  *index = st->n_images++;
  return 0;
}

/* ==== validation ======================================================== */

static int find_columns(prep_state *st) {
  static const char *const need[] = {"image_id", "english_prompt", "arabic_prompt",
                                     "ground_truth_gender"};
  int *cols[] = {&st->col_id, &st->col_en, &st->col_ar, &st->col_label};
  for (int i = 0; i < 4; i++) {
    *cols[i] = sc_csv_col(st->csv, need[i]);
    if (*cols[i] < 0)
      return sc_error_setc(SC_ERR_MISSING, "%s: missing column '%s'", st->cfg->data.captions_csv,
                           need[i]);
  }
  return 0;
}

static int check_row(prep_state *st, int r) {
  char **f = st->csv->rows[r].fields;
  if (is_blank(f[st->col_id])) return row_bad(st, r, "empty image_id");
  if (is_blank(f[st->col_en])) return row_bad(st, r, "empty english_prompt");
  if (is_blank(f[st->col_ar])) return row_bad(st, r, "empty arabic_prompt");
  int label = sc_label_parse(f[st->col_label]);
  if (label < 0)
    return row_bad(st, r, "unknown label '%s' (expected male, female, neutral or unknown)",
                   f[st->col_label]);
  int image, rc = row_image(st, r, label, &image);
  if (rc || image < 0) return rc;
  prep_row *pr = &st->rows[st->n_rows++];
  pr->csv_row = r;
  pr->image = image;
  pr->label = label;
  return 0;
}

static int validate_rows(prep_state *st) {
  sc_progress *bar = sc_progress_create("prepare", st->csv->n_rows, "rows");
  int rc = 0;
  for (int r = 0; r < st->csv->n_rows && !rc; r++) {
    rc = check_row(st, r);
    sc_progress_set(bar, r + 1);
  }
  if (rc) sc_progress_abort(bar);
  else sc_progress_finish(bar);
  if (!rc && st->n_rows == 0)
    rc = sc_error_set("%s: no usable rows", st->cfg->data.captions_csv);
  return rc;
}

/* ==== split ============================================================= */

/* Number of the n images of one label that go to train and val: rounded
 * cumulative cut points, so the three counts always add up to n. */
static void split_cuts(const sc_config_data *d, int n, int *n_train, int *n_val) {
  *n_train = (int)(d->split_train * n + 0.5);
  int upto_val = (int)((d->split_train + d->split_val) * n + 0.5);
  if (upto_val > n) upto_val = n;
  if (*n_train > upto_val) *n_train = upto_val;
  *n_val = upto_val - *n_train;
}

static int assign_splits(prep_state *st) {
  int *order = malloc(sizeof(int) * (size_t)(st->n_images ? st->n_images : 1));
  if (!order) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  sc_rng rng;
  sc_rng_seed(&rng, st->cfg->seed ^ PREP_SPLIT_STREAM);
  for (int label = 0; label < SC_N_LABELS; label++) {
    int n = 0;
    for (int i = 0; i < st->n_images; i++)
      if (st->images[i].label == label) order[n++] = i;
    sc_rng_shuffle(&rng, order, (uint64_t)n, sizeof order[0]);
    int n_train, n_val;
    split_cuts(&st->cfg->data, n, &n_train, &n_val);
    for (int k = 0; k < n; k++)
      st->images[order[k]].split =
          k < n_train ? SC_SPLIT_TRAIN : k < n_train + n_val ? SC_SPLIT_VAL : SC_SPLIT_TEST;
  }
  free(order);
  return 0;
}

/* ==== outputs =========================================================== */

static sc_json *sample_json(const prep_state *st, int i) {
  const prep_row *pr = &st->rows[i];
  const prep_image *im = &st->images[pr->image];
  char **f = st->csv->rows[pr->csv_row].fields;
  sc_json *o = sc_json_new_object();
  sc_json_add_num(o, "sample_index", i);
  sc_json_add_str(o, "image_id", f[st->col_id]);
  sc_json_add_str(o, "image_path", im->path);
  sc_json_add_num(o, "image_index", pr->image);
  sc_json_add_num(o, "width", im->width);
  sc_json_add_num(o, "height", im->height);
  sc_json_add_str(o, "english_prompt", f[st->col_en]);
  sc_json_add_str(o, "arabic_prompt", f[st->col_ar]);
  sc_json_add_str(o, "ground_truth_gender", label_names[pr->label]);
  sc_json_add_str(o, "split", split_names[im->split]);
  sc_json_add_num(o, "csv_row", pr->csv_row + 1);
  sc_json *extra = sc_json_add(o, "extra", sc_json_new_object());
  for (int c = 0; c < st->csv->n_cols; c++)
    if (c != st->col_id && c != st->col_en && c != st->col_ar && c != st->col_label)
      sc_json_add_str(extra, st->csv->header[c], f[c]);
  return o;
}

/* Prints one JSON value as a line of f; frees the value. */
static int write_json_line(sc_afile *f, sc_json *j) {
  char *text = j ? sc_json_print(j, 0) : NULL;
  sc_json_free(j);
  if (!text) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", f->path);
  int rc = sc_afile_printf(f, "%s\n", text);
  free(text);
  return rc;
}

static int write_samples(const prep_state *st, const char *path) {
  sc_afile f;
  int rc = sc_afile_open(&f, path);
  for (int i = 0; !rc && i < st->n_rows; i++) rc = write_json_line(&f, sample_json(st, i));
  if (rc) {
    sc_afile_abort(&f);
    return rc;
  }
  return sc_afile_commit(&f);
}

static void add_counts(sc_json *o, const prep_state *st) {
  int by_label[SC_N_LABELS] = {0}, by_split[SC_N_SPLITS] = {0};
  int cross[SC_N_SPLITS][SC_N_LABELS] = {{0}}, images[SC_N_SPLITS] = {0};
  for (int i = 0; i < st->n_rows; i++) {
    int s = st->images[st->rows[i].image].split, l = st->rows[i].label;
    by_label[l]++;
    by_split[s]++;
    cross[s][l]++;
  }
  for (int i = 0; i < st->n_images; i++) images[st->images[i].split]++;
  sc_json *jl = sc_json_add(o, "samples_per_label", sc_json_new_object());
  for (int l = 0; l < SC_N_LABELS; l++) sc_json_add_num(jl, label_names[l], by_label[l]);
  sc_json *js = sc_json_add(o, "samples_per_split", sc_json_new_object());
  sc_json *ji = sc_json_add(o, "images_per_split", sc_json_new_object());
  sc_json *jx = sc_json_add(o, "samples_per_split_label", sc_json_new_object());
  for (int s = 0; s < SC_N_SPLITS; s++) {
    sc_json_add_num(js, split_names[s], by_split[s]);
    sc_json_add_num(ji, split_names[s], images[s]);
    sc_json *row = sc_json_add(jx, split_names[s], sc_json_new_object());
    for (int l = 0; l < SC_N_LABELS; l++) sc_json_add_num(row, label_names[l], cross[s][l]);
  }
}

static sc_json *report_json(const prep_state *st) {
  const sc_config *c = st->cfg;
  sc_json *o = sc_json_new_object();
  sc_json_add_str(o, "captions_csv", c->data.captions_csv);
  sc_json_add_str(o, "images_dir", c->data.images_dir);
  sc_json_add_num(o, "seed", (double)c->seed);
  sc_json_add_str(o, "on_bad_row", c->data.on_bad_row == SC_BAD_ROW_SKIP ? "skip" : "error");
  sc_json *fr = sc_json_add(o, "split_fractions", sc_json_new_object());
  sc_json_add_num(fr, "train", c->data.split_train);
  sc_json_add_num(fr, "val", c->data.split_val);
  sc_json_add_num(fr, "test", c->data.split_test);
  sc_json_add_num(o, "n_rows", st->csv->n_rows);
  sc_json_add_num(o, "n_samples", st->n_rows);
  sc_json_add_num(o, "n_images", st->n_images);
  sc_json_add_num(o, "n_rejected", st->n_rejects);
  add_counts(o, st);
  sc_json *rj = sc_json_add(o, "rejected", sc_json_new_array());
  for (int i = 0; i < st->n_rejects; i++) {
    sc_json *e = sc_json_add(rj, NULL, sc_json_new_object());
    sc_json_add_num(e, "row", st->rejects[i].row);
    sc_json_add_num(e, "line", st->rejects[i].line);
    sc_json_add_str(e, "image_id", st->rejects[i].image_id);
    sc_json_add_str(e, "reason", st->rejects[i].reason);
  }
  return o;
}

static int write_report(const prep_state *st, const char *path) {
  sc_json *j = report_json(st);
  char *text = j ? sc_json_print(j, 1) : NULL;
  sc_json_free(j);
  if (!text) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", path);
  size_t n = strlen(text);
  text[n] = '\n'; /* replace the NUL: the file ends in a newline */
  int rc = sc_write_file_atomic(path, text, n + 1);
  free(text);
  return rc;
}

/* ==== stage ============================================================= */

static int state_init(prep_state *st, const sc_config *cfg) {
  memset(st, 0, sizeof *st);
  st->cfg = cfg;
  if (!cfg->data.captions_csv || !cfg->data.images_dir)
    return sc_error_setc(SC_ERR_MISSING, "%s: data.captions_csv and data.images_dir are required",
                         cfg->source ? cfg->source : "config");
  if (!sc_is_dir(cfg->data.images_dir))
    return sc_error_setc(SC_ERR_IO, "%s: images folder not found", cfg->data.images_dir);
  int rc = sc_csv_load(cfg->data.captions_csv, &st->csv);
  if (rc) return rc;
  rc = find_columns(st);
  if (rc) return rc;
  size_t n = (size_t)st->csv->n_rows + 1;
  for (st->n_slots = 16; st->n_slots < 2 * n; st->n_slots *= 2) {}
  st->rows = calloc(n, sizeof *st->rows);
  st->images = calloc(n, sizeof *st->images);
  st->rejects = calloc(n, sizeof *st->rejects);
  st->slots = malloc(st->n_slots * sizeof *st->slots);
  if (!st->rows || !st->images || !st->rejects || !st->slots)
    return sc_error_setc(SC_ERR_NOMEM, "out of memory for %d rows", st->csv->n_rows);
  memset(st->slots, 0xff, st->n_slots * sizeof *st->slots);
  return 0;
}

static void state_free(prep_state *st) {
  for (int i = 0; i < st->n_images; i++) free(st->images[i].path);
  for (int i = 0; i < st->n_rejects; i++) {
    free(st->rejects[i].image_id);
    free(st->rejects[i].reason);
  }
  free(st->images);
  free(st->rows);
  free(st->rejects);
  free(st->slots);
  sc_csv_free(st->csv);
}

static void fill_summary(const prep_state *st, sc_prepare_summary *out) {
  out->n_rows = st->csv->n_rows;
  out->n_samples = st->n_rows;
  out->n_images = st->n_images;
  out->n_rejected = st->n_rejects;
  for (int i = 0; i < st->n_rows; i++) {
    out->label_counts[st->rows[i].label]++;
    out->split_counts[st->images[st->rows[i].image].split]++;
  }
}

static int write_outputs(const prep_state *st, sc_prepare_summary *out) {
  char *dir = sc_path_join(st->cfg->output_dir, "data/processed");
  if (!dir) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int rc = sc_mkdirs(dir);
  out->samples_path = sc_path_join(dir, "samples.jsonl");
  out->report_path = sc_path_join(dir, "prepare_report.json");
  free(dir);
  if (!rc && (!out->samples_path || !out->report_path))
    rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = write_samples(st, out->samples_path);
  if (!rc) {
    rc = write_report(st, out->report_path);
    if (rc) remove(out->samples_path); /* the pair is the output: never one alone */
  }
  return rc;
}

int sc_prepare_run(const sc_config *cfg, sc_prepare_summary *out) {
  memset(out, 0, sizeof *out);
  prep_state st;
  int rc = state_init(&st, cfg);
  if (!rc) rc = validate_rows(&st);
  if (!rc) rc = assign_splits(&st);
  if (!rc) rc = write_outputs(&st, out);
  if (!rc) fill_summary(&st, out);
  else sc_prepare_summary_free(out);
  state_free(&st);
  return rc;
}

void sc_prepare_summary_free(sc_prepare_summary *s) {
  if (!s) return;
  free(s->samples_path);
  free(s->report_path);
  memset(s, 0, sizeof *s);
}
