/* writer.c: activation shard writer with atomic shards, manifest and resume
 * (see writer.h for the shard rule and docs/store.md for the format). */
#include "store/writer.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/safetensors.h"

struct store_writer {
  char *dir;               /* owned */
  char *manifest_path;     /* owned: dir/manifest.json */
  store_manifest m;        /* what is committed on disk */
  size_t esz;              /* bytes per stored element (2 or 4) */
  size_t max_buffer_bytes;
  int checksum;
  unsigned keep_segments;
  int32_t *drop;           /* (n_drop) token ids dropped at write time */
  int n_drop;
  /* row buffer, (cap) rows each */
  void *acts;              /* (cap, d) in m.dtype */
  int64_t *sample;         /* (cap) */
  int32_t *pos, *tok;      /* (cap) */
  uint8_t *seg;            /* (cap) */
  int64_t n_buf, cap;
  /* sample state */
  int64_t last_begun;      /* -1 before the first sample */
  int64_t last_ended;      /* last sample ended (not skipped); -1 if none */
  int in_sample, skip;
  char *fail_msg;          /* set once a write failed; owned */
  store_writer_stats stats;
};

store_writer_config store_writer_config_default(void) {
  store_writer_config c;
  memset(&c, 0, sizeof c);
  c.dtype = SC_DTYPE_BF16;
  c.rows_per_shard = STORE_DEFAULT_ROWS_PER_SHARD;
  c.max_buffer_bytes = STORE_DEFAULT_MAX_BUFFER_BYTES;
  c.checksum = 1;
  c.keep_segments = (1u << STORE_N_SEGMENTS) - 1;
  return c;
}

/* ==== failure state ===================================================== */

/* Records the current message: the writer refuses further work. */
static int fail(store_writer *w, int rc) {
  if (!w->fail_msg) w->fail_msg = strdup(sc_error_get());
  return rc;
}

static int check_failed(const store_writer *w) {
  if (!w->fail_msg) return 0;
  return sc_error_setc(SC_ERR_IO, "%s", w->fail_msg);
}

/* ==== opening ============================================================ */

static const char *or_empty(const char *s) { return s ? s : ""; }

static int check_config(const store_writer_config *c) {
  if (!c->dir || !*c->dir) return sc_error_setc(SC_ERR_ARG, "store: no output directory");
  if (!c->language || !*c->language)
    return sc_error_setc(SC_ERR_ARG, "%s: no language given", c->dir);
  if (c->layer < 0 || c->layer > STORE_MAX_LAYER)
    return sc_error_setc(SC_ERR_ARG, "%s: layer %d out of range", c->dir, c->layer);
  if (c->d < 1 || c->d > STORE_MAX_D)
    return sc_error_setc(SC_ERR_ARG, "%s: row width %d out of range", c->dir, c->d);
  if (c->dtype != SC_DTYPE_BF16 && c->dtype != SC_DTYPE_F32)
    return sc_error_setc(SC_ERR_ARG, "%s: dtype must be BF16 or F32", c->dir);
  if (c->rows_per_shard < 1 || c->rows_per_shard > INT32_MAX)
    return sc_error_setc(SC_ERR_ARG, "%s: rows_per_shard %" PRId64 " out of range", c->dir,
                         c->rows_per_shard);
  if (c->n_drop_tokens < 0 || (c->n_drop_tokens && !c->drop_tokens))
    return sc_error_setc(SC_ERR_ARG, "%s: bad drop_tokens list", c->dir);
  return 0;
}

static int dup_str(char **dst, const char *s) {
  *dst = strdup(or_empty(s));
  return *dst ? 0 : sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
}

/* A fresh manifest from the config. */
static int manifest_from_config(store_manifest *m, const store_writer_config *c) {
  memset(m, 0, sizeof *m);
  m->layer = c->layer;
  m->d = c->d;
  m->dtype = c->dtype;
  m->rows_per_shard = c->rows_per_shard;
  int rc = dup_str(&m->saecap_version, c->saecap_version);
  if (!rc) rc = dup_str(&m->language, c->language);
  if (!rc) rc = dup_str(&m->model_path, c->model_path);
  if (!rc) rc = dup_str(&m->config_hash, c->config_hash);
  if (!rc) rc = dup_str(&m->prompt, c->prompt);
  return rc;
}

static int mismatch_s(const char *path, const char *field, const char *old, const char *now) {
  return sc_error_setc(SC_ERR_ARG, "%s: was written with %s '%s', this run has '%s'", path, field,
                       old, now);
}

static int mismatch_i(const char *path, const char *field, int64_t old, int64_t now) {
  return sc_error_setc(SC_ERR_ARG, "%s: was written with %s %" PRId64 ", this run has %" PRId64,
                       path, field, old, now);
}

/* A resumed directory must have been written by the same settings, or the
 * shards would not line up with what this run produces. */
static int check_same(const char *path, const store_manifest *a, const store_manifest *b) {
  if (strcmp(a->language, b->language)) return mismatch_s(path, "language", a->language, b->language);
  if (a->layer != b->layer) return mismatch_i(path, "layer", a->layer, b->layer);
  if (a->d != b->d) return mismatch_i(path, "d", a->d, b->d);
  if (a->dtype != b->dtype)
    return mismatch_s(path, "dtype", sc_dtype_name(a->dtype), sc_dtype_name(b->dtype));
  if (a->rows_per_shard != b->rows_per_shard)
    return mismatch_i(path, "rows_per_shard", a->rows_per_shard, b->rows_per_shard);
  if (strcmp(a->config_hash, b->config_hash))
    return mismatch_s(path, "config_hash", a->config_hash, b->config_hash);
  if (strcmp(a->model_path, b->model_path))
    return mismatch_s(path, "model_path", a->model_path, b->model_path);
  if (strcmp(a->prompt, b->prompt)) return mismatch_s(path, "prompt", a->prompt, b->prompt);
  return 0;
}

/* Every listed shard must still be there with the size it was written with. */
static int check_listed(const store_writer *w) {
  for (int k = 0; k < w->m.n_shards; k++) {
    const store_shard_info *s = &w->m.shards[k];
    char *p = sc_path_join(w->dir, s->file);
    if (!p) return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
    struct stat st;
    int bad = stat(p, &st) != 0 || (int64_t)st.st_size != s->bytes;
    if (bad)
      sc_error_setc(SC_ERR_FORMAT, "%s: listed in %s but %s", p, STORE_MANIFEST_NAME,
                    access(p, F_OK) ? "missing" : "has the wrong size");
    free(p);
    if (bad) return SC_ERR_FORMAT;
  }
  return 0;
}

static int is_listed(const store_manifest *m, const char *name) {
  for (int k = 0; k < m->n_shards; k++)
    if (!strcmp(m->shards[k].file, name)) return 1;
  return 0;
}

static int ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && !strcmp(s + n - k, suf);
}

/* Leftovers of an interrupted run: temporaries and shards never listed. */
static int is_stray(const store_manifest *m, const char *name) {
  if (ends_with(name, ".tmp")) return 1;
  return !strncmp(name, "shard_", 6) && ends_with(name, ".safetensors") && !is_listed(m, name);
}

static int remove_strays(const store_writer *w) {
  DIR *dp = opendir(w->dir);
  if (!dp) return sc_error_setc(SC_ERR_IO, "%s: cannot list: %s", w->dir, strerror(errno));
  int rc = 0;
  struct dirent *e;
  while (!rc && (e = readdir(dp))) {
    if (!is_stray(&w->m, e->d_name)) continue;
    char *p = sc_path_join(w->dir, e->d_name);
    if (!p) rc = sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
    else if (unlink(p) && errno != ENOENT)
      rc = sc_error_setc(SC_ERR_IO, "%s: cannot delete leftover file: %s", p, strerror(errno));
    free(p);
  }
  closedir(dp);
  return rc;
}

static int write_manifest(store_writer *w) {
  char *text = store_manifest_print(&w->m);
  if (!text) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", w->manifest_path);
  int rc = sc_write_file_atomic(w->manifest_path, text, strlen(text));
  free(text);
  return rc;
}

/* Loads an existing manifest (resume) or writes a fresh one. */
static int load_or_create(store_writer *w, const store_writer_config *c) {
  store_manifest want;
  int rc = manifest_from_config(&want, c);
  if (!rc && sc_is_file(w->manifest_path)) {
    rc = store_manifest_load(w->dir, &w->m);
    if (!rc) rc = check_same(w->manifest_path, &w->m, &want);
    if (!rc) rc = check_listed(w);
    store_manifest_free(&want);
  } else if (!rc) {
    w->m = want;
    rc = write_manifest(w);
  } else {
    store_manifest_free(&want);
  }
  return rc ? rc : remove_strays(w);
}

static int copy_filter(store_writer *w, const store_writer_config *c) {
  w->keep_segments = c->keep_segments;
  w->n_drop = c->n_drop_tokens;
  if (!w->n_drop) return 0;
  w->drop = malloc((size_t)w->n_drop * sizeof *w->drop);
  if (!w->drop) return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  memcpy(w->drop, c->drop_tokens, (size_t)w->n_drop * sizeof *w->drop);
  return 0;
}

int store_writer_open(store_writer **out, const store_writer_config *c) {
  *out = NULL;
  int rc = check_config(c);
  if (rc) return rc;
  store_writer *w = calloc(1, sizeof *w);
  if (!w) return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  w->last_begun = w->last_ended = -1;
  w->esz = sc_dtype_size(c->dtype);
  w->max_buffer_bytes = c->max_buffer_bytes;
  w->checksum = c->checksum;
  w->dir = strdup(c->dir);
  w->manifest_path = sc_path_join(c->dir, STORE_MANIFEST_NAME);
  if (!w->dir || !w->manifest_path) rc = sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  if (!rc) rc = copy_filter(w, c);
  if (!rc) rc = sc_mkdirs(c->dir);
  if (!rc) rc = load_or_create(w, c);
  if (rc) {
    store_writer_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

void store_writer_free(store_writer *w) {
  if (!w) return;
  store_manifest_free(&w->m);
  free(w->dir);
  free(w->manifest_path);
  free(w->drop);
  free(w->acts);
  free(w->sample);
  free(w->pos);
  free(w->tok);
  free(w->seg);
  free(w->fail_msg);
  free(w);
}

/* ==== queries ============================================================ */

int64_t store_writer_resume_sample(const store_writer *w) { return w->m.next_sample; }
int store_writer_is_complete(const store_writer *w) { return w->m.complete; }
int64_t store_writer_rows_written(const store_writer *w) { return w->m.total_rows; }
int64_t store_writer_rows_buffered(const store_writer *w) { return w->n_buf; }
int store_writer_n_shards(const store_writer *w) { return w->m.n_shards; }

static size_t row_bytes(const store_writer *w) {
  return (size_t)w->m.d * w->esz + sizeof(int64_t) + 2 * sizeof(int32_t) + 1;
}

size_t store_writer_buffer_bytes(const store_writer *w) { return (size_t)w->cap * row_bytes(w); }
store_writer_stats store_writer_get_stats(const store_writer *w) { return w->stats; }

/* ==== buffering ========================================================== */

static int grow_one(void **p, size_t n) {
  void *q = realloc(*p, n ? n : 1);
  if (!q) return -1;
  *p = q;
  return 0;
}

/* Room for `need` rows. Doubling up to one shard, then 25% steps, so an
 * oversized sample costs little more than itself. */
static int reserve(store_writer *w, int64_t need) {
  if (need <= w->cap) return 0;
  int64_t cap = w->cap < 1024 ? 1024 : w->cap * 2;
  if (cap > w->m.rows_per_shard) cap = w->m.rows_per_shard;
  if (cap < need) cap = need + need / 4;
  size_t rb = row_bytes(w);
  if ((uint64_t)cap > SIZE_MAX / rb || (size_t)cap * rb > w->max_buffer_bytes) {
    if ((uint64_t)need <= SIZE_MAX / rb && (size_t)need * rb <= w->max_buffer_bytes) cap = need;
    else
      return sc_error_setc(SC_ERR_RANGE, "%s: sample %" PRId64 " needs more than the %zu-byte row buffer",
                           w->dir, w->last_begun, w->max_buffer_bytes);
  }
  size_t n = (size_t)cap;
  if (grow_one(&w->acts, n * (size_t)w->m.d * w->esz) || grow_one((void **)&w->sample, n * 8) ||
      grow_one((void **)&w->pos, n * 4) || grow_one((void **)&w->tok, n * 4) ||
      grow_one((void **)&w->seg, n))
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory for the row buffer", w->dir);
  w->cap = cap;
  return 0;
}

static int dropped(const store_writer *w, int32_t tok, uint8_t seg) {
  if (!(w->keep_segments & (1u << seg))) return 1;
  for (int i = 0; i < w->n_drop; i++)
    if (w->drop[i] == tok) return 1;
  return 0;
}

static void put_row(store_writer *w, const float *row, int32_t pos, int32_t tok, uint8_t seg) {
  int64_t r = w->n_buf++;
  size_t d = (size_t)w->m.d;
  if (w->m.dtype == SC_DTYPE_BF16) sc_bf16_from_f32_n((uint16_t *)w->acts + (size_t)r * d, row, d);
  else memcpy((float *)w->acts + (size_t)r * d, row, d * sizeof(float));
  w->sample[r] = w->last_begun;
  w->pos[r] = pos;
  w->tok[r] = tok;
  w->seg[r] = seg;
}

int store_writer_begin_sample(store_writer *w, int64_t s) {
  int rc = check_failed(w);
  if (rc) return rc;
  if (w->in_sample)
    return sc_error_setc(SC_ERR_ARG, "%s: sample %" PRId64 " begun before sample %" PRId64 " ended",
                         w->dir, s, w->last_begun);
  if (s < 0 || s > STORE_MAX_SAMPLE || s <= w->last_begun)
    return sc_error_setc(SC_ERR_ARG, "%s: sample %" PRId64 " out of order (after %" PRId64 ")",
                         w->dir, s, w->last_begun);
  w->last_begun = s;
  w->in_sample = 1;
  w->skip = w->m.complete || s < w->m.next_sample;
  return 0;
}

int store_writer_append(store_writer *w, const float *acts, int64_t n, const int32_t *position,
                        const int32_t *token_id, const uint8_t *segment) {
  int rc = check_failed(w);
  if (rc) return rc;
  if (!w->in_sample) return sc_error_setc(SC_ERR_ARG, "%s: rows appended outside a sample", w->dir);
  if (n < 0) return sc_error_setc(SC_ERR_ARG, "%s: negative row count", w->dir);
  if (w->skip || n == 0) return 0;
  for (int64_t i = 0; i < n; i++)
    if (segment[i] >= STORE_N_SEGMENTS)
      return sc_error_setc(SC_ERR_ARG, "%s: sample %" PRId64 " row %" PRId64 ": segment %u unknown",
                           w->dir, w->last_begun, i, segment[i]);
  double t0 = sc_time_now();
  rc = reserve(w, w->n_buf + n);
  if (rc) return rc;
  for (int64_t i = 0; i < n; i++)
    if (!dropped(w, token_id[i], segment[i]))
      put_row(w, acts + (size_t)i * (size_t)w->m.d, position[i], token_id[i], segment[i]);
  w->stats.append_s += sc_time_now() - t0;
  return 0;
}

/* ==== cutting a shard ==================================================== */

static int add_meta(st_writer *sw, const store_writer *w, int k) {
  char layer[16], d[16], shard[16];
  snprintf(layer, sizeof layer, "%d", w->m.layer);
  snprintf(d, sizeof d, "%d", w->m.d);
  snprintf(shard, sizeof shard, "%d", k);
  int rc = st_writer_add_meta(sw, "format", STORE_FORMAT);
  if (!rc) rc = st_writer_add_meta(sw, "language", w->m.language);
  if (!rc) rc = st_writer_add_meta(sw, "layer", layer);
  if (!rc) rc = st_writer_add_meta(sw, "d", d);
  if (!rc) rc = st_writer_add_meta(sw, "dtype", sc_dtype_name(w->m.dtype));
  if (!rc) rc = st_writer_add_meta(sw, "shard", shard);
  return rc;
}

static int add_tensors(st_writer *sw, const store_writer *w) {
  int64_t n = w->n_buf, shape[2] = {n, w->m.d};
  size_t un = (size_t)n;
  int rc = st_writer_add(sw, "acts", w->m.dtype, 2, shape, w->acts, un * (size_t)w->m.d * w->esz);
  if (!rc) rc = st_writer_add(sw, "sample_index", SC_DTYPE_I64, 1, &n, w->sample, un * 8);
  if (!rc) rc = st_writer_add(sw, "position", SC_DTYPE_I32, 1, &n, w->pos, un * 4);
  if (!rc) rc = st_writer_add(sw, "token_id", SC_DTYPE_I32, 1, &n, w->tok, un * 4);
  if (!rc) rc = st_writer_add(sw, "segment", SC_DTYPE_U8, 1, &n, w->seg, un);
  return rc;
}

/* Size and checksum of the file just written. */
static int file_facts(const char *path, int want_sum, store_shard_info *s) {
  sc_mmap mm;
  int rc = sc_mmap_open(&mm, path);
  if (rc) return rc;
  s->bytes = (int64_t)mm.size;
  s->has_checksum = want_sum;
  if (want_sum) s->checksum = store_fnv1a64(STORE_FNV_INIT, mm.data, mm.size);
  sc_mmap_close(&mm);
  return 0;
}

static int write_shard_file(store_writer *w, int k, char **path_out) {
  char name[40];
  snprintf(name, sizeof name, "shard_%05d.safetensors", k);
  *path_out = sc_path_join(w->dir, name);
  st_writer *sw = NULL;
  int rc = *path_out ? st_writer_create(&sw) : sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  if (!rc) rc = add_meta(sw, w, k);
  if (!rc) rc = add_tensors(sw, w);
  if (!rc) rc = st_writer_write(sw, *path_out);
  st_writer_free(sw);
  return rc;
}

/* Lists a written shard in the in-memory manifest. */
static int list_shard(store_writer *w, const char *path) {
  store_shard_info s = {0};
  int rc = file_facts(path, w->checksum, &s);
  if (rc) return rc;
  store_shard_info *v = realloc(w->m.shards, ((size_t)w->m.n_shards + 1) * sizeof *v);
  s.file = strdup(sc_path_base(path));
  if (v) w->m.shards = v;
  if (!v || !s.file) {
    free(s.file);
    return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  }
  s.rows = w->n_buf;
  s.first_sample = w->sample[0];
  s.last_sample = w->sample[w->n_buf - 1];
  s.end_sample = w->last_ended + 1;
  w->m.shards[w->m.n_shards++] = s;
  w->m.total_rows += s.rows;
  return 0;
}

/* Buffer -> shard file -> manifest, in that order; the manifest is the
 * commit point. */
static int cut_shard(store_writer *w) {
  char *path = NULL;
  double t0 = sc_time_now();
  int rc = write_shard_file(w, w->m.n_shards, &path);
  if (!rc) rc = list_shard(w, path);
  free(path);
  if (rc) return fail(w, rc);
  w->m.next_sample = w->last_ended + 1;
  rc = write_manifest(w);
  if (rc) return fail(w, rc);
  w->n_buf = 0;
  w->stats.shard_s += sc_time_now() - t0;
  w->stats.shard_bytes += w->m.shards[w->m.n_shards - 1].bytes;
  w->stats.shards++;
  return 0;
}

int store_writer_end_sample(store_writer *w) {
  int rc = check_failed(w);
  if (rc) return rc;
  if (!w->in_sample) return sc_error_setc(SC_ERR_ARG, "%s: end_sample without begin_sample", w->dir);
  w->in_sample = 0;
  if (w->skip) return 0;
  w->last_ended = w->last_begun;
  return w->n_buf >= w->m.rows_per_shard ? cut_shard(w) : 0;
}

int store_writer_finish(store_writer *w) {
  int rc = check_failed(w);
  if (rc) return rc;
  if (w->in_sample)
    return sc_error_setc(SC_ERR_ARG, "%s: finish with sample %" PRId64 " still open", w->dir,
                         w->last_begun);
  if (w->m.complete) return 0;
  if (w->n_buf > 0 && (rc = cut_shard(w))) return rc;
  if (w->last_ended + 1 > w->m.next_sample) w->m.next_sample = w->last_ended + 1;
  w->m.complete = 1;
  double t0 = sc_time_now();
  rc = write_manifest(w);
  w->stats.shard_s += sc_time_now() - t0;
  if (rc) {
    w->m.complete = 0;
    return fail(w, rc);
  }
  return 0;
}
