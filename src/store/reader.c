/* reader.c: validated, filtered, memory-mapped reading of activation
 * directories (see reader.h). */
#include "store/reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/safetensors.h"

#define STORE_MAX_DIRS 64

typedef struct rd_shard {
  st_file *f;
  const void *acts;        /* (rows, d) in dtype, into the mmap */
  const int64_t *sample;   /* (rows) */
  const int32_t *pos, *tok;/* (rows) */
  const uint8_t *seg;      /* (rows) */
  sc_dtype dtype;
  int64_t rows;
  uint32_t *keep;          /* (n_keep) kept local rows; NULL = all kept */
  int64_t n_keep;
  int64_t first;           /* global index of its first kept row */
  int dir;
} rd_shard;

struct store_reader {
  int d;
  int n_dirs;
  store_manifest *man;     /* (n_dirs) */
  int n_shards;
  rd_shard *sh;            /* (n_shards) */
  int64_t n_rows;
  int64_t cursor;
};

store_filter store_filter_default(void) {
  store_filter f;
  memset(&f, 0, sizeof f);
  return f;
}

void store_reader_free(store_reader *r) {
  if (!r) return;
  for (int i = 0; i < r->n_shards; i++) {
    st_file_free(r->sh[i].f);
    free(r->sh[i].keep);
  }
  free(r->sh);
  for (int i = 0; i < r->n_dirs; i++) store_manifest_free(&r->man[i]);
  free(r->man);
  free(r);
}

/* ==== shard validation =================================================== */

/* Tensor `name` must exist with dtype t and shape (rows) or (rows, d). */
static const void *want_tensor(const st_file *f, const char *name, sc_dtype t, int64_t rows,
                               int64_t d, int *rc) {
  const st_tensor *x = st_file_find(f, name);
  const char *path = st_file_path(f);
  int dims = d ? 2 : 1;
  if (!x) *rc = sc_error_setc(SC_ERR_FORMAT, "%s: no tensor '%s'", path, name);
  else if (x->dtype != t)
    *rc = sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' is %s, the manifest says %s", path, name,
                        sc_dtype_name(x->dtype), sc_dtype_name(t));
  else if (x->n_dims != dims || x->shape[0] != rows || (d && x->shape[1] != d))
    *rc = sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' shape disagrees with the manifest "
                        "(%" PRId64 " rows, d %" PRId64 ")", path, name, rows, d);
  else return x->data;
  return NULL;
}

static int check_meta(const st_file *f, const store_manifest *m) {
  const char *lang = st_file_meta_get(f, "language"), *layer = st_file_meta_get(f, "layer");
  char want[16];
  snprintf(want, sizeof want, "%d", m->layer);
  if (!lang || strcmp(lang, m->language) || !layer || strcmp(layer, want))
    return sc_error_setc(SC_ERR_FORMAT, "%s: metadata language/layer disagree with the manifest "
                         "(%s, layer %d)", st_file_path(f), m->language, m->layer);
  return 0;
}

/* Rows in sample order, inside the manifest's range, known segments. */
static int check_rows(const rd_shard *s, const store_shard_info *info) {
  const char *path = st_file_path(s->f);
  if (s->sample[0] != info->first_sample || s->sample[s->rows - 1] != info->last_sample)
    return sc_error_setc(SC_ERR_FORMAT, "%s: sample range %" PRId64 "..%" PRId64
                         " disagrees with the manifest (%" PRId64 "..%" PRId64 ")", path,
                         s->sample[0], s->sample[s->rows - 1], info->first_sample, info->last_sample);
  for (int64_t i = 0; i < s->rows; i++) {
    if (i > 0 && s->sample[i] < s->sample[i - 1])
      return sc_error_setc(SC_ERR_FORMAT, "%s: row %" PRId64 ": sample_index goes backwards", path, i);
    if (s->seg[i] >= STORE_N_SEGMENTS)
      return sc_error_setc(SC_ERR_FORMAT, "%s: row %" PRId64 ": unknown segment %u", path, i,
                           s->seg[i]);
  }
  return 0;
}

static int check_size(const char *path, const store_shard_info *info) {
  struct stat st;
  if (stat(path, &st)) return sc_error_setc(SC_ERR_IO, "%s: cannot stat", path);
  if ((int64_t)st.st_size != info->bytes)
    return sc_error_setc(SC_ERR_FORMAT, "%s: %" PRId64 " bytes, the manifest says %" PRId64, path,
                         (int64_t)st.st_size, info->bytes);
  return 0;
}

static int open_shard(rd_shard *s, const char *dir, const store_manifest *m, int k) {
  const store_shard_info *info = &m->shards[k];
  char *path = sc_path_join(dir, info->file);
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  int rc = check_size(path, info);
  if (!rc) rc = st_file_open(&s->f, path);
  free(path);
  if (rc) return rc;
  s->rows = info->rows;
  s->dtype = m->dtype;
  s->acts = want_tensor(s->f, "acts", m->dtype, s->rows, m->d, &rc);
  if (!rc) s->sample = want_tensor(s->f, "sample_index", SC_DTYPE_I64, s->rows, 0, &rc);
  if (!rc) s->pos = want_tensor(s->f, "position", SC_DTYPE_I32, s->rows, 0, &rc);
  if (!rc) s->tok = want_tensor(s->f, "token_id", SC_DTYPE_I32, s->rows, 0, &rc);
  if (!rc) s->seg = want_tensor(s->f, "segment", SC_DTYPE_U8, s->rows, 0, &rc);
  if (!rc) rc = check_meta(s->f, m);
  if (!rc) rc = check_rows(s, info);
  return rc;
}

/* ==== filtering ========================================================== */

static int keeps(const store_filter *f, const rd_shard *s, int64_t i) {
  if (f->segments && !(f->segments & (1u << s->seg[i]))) return 0;
  for (int t = 0; t < f->n_exclude_tokens; t++)
    if (s->tok[i] == f->exclude_tokens[t]) return 0;
  if (f->split_of) {
    int sp = f->split_of[s->sample[i]];
    if (sp < 0 || sp > 30 || !(f->splits & (1u << sp))) return 0;
  }
  return 1;
}

static int check_splits(const store_filter *f, const rd_shard *s) {
  if (!f->split_of) return 0;
  int64_t last = s->sample[s->rows - 1];
  if (last >= f->n_split_of)
    return sc_error_setc(SC_ERR_RANGE, "%s: sample_index %" PRId64 " has no split (%" PRId64
                         " samples known)", st_file_path(s->f), last, f->n_split_of);
  return 0;
}

/* Builds s->keep when the filter drops any row of the shard. */
static int apply_filter(rd_shard *s, const store_filter *f) {
  int rc = check_splits(f, s);
  if (rc) return rc;
  int64_t n = 0;
  for (int64_t i = 0; i < s->rows; i++) n += keeps(f, s, i);
  s->n_keep = n;
  if (n == s->rows) return 0;
  s->keep = malloc((size_t)(n ? n : 1) * sizeof *s->keep);
  if (!s->keep) return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  n = 0;
  for (int64_t i = 0; i < s->rows; i++)
    if (keeps(f, s, i)) s->keep[n++] = (uint32_t)i;
  return 0;
}

/* ==== opening ============================================================ */

static int check_dir(store_reader *r, int i, const char *dir, const store_filter *f) {
  const store_manifest *m = &r->man[i];
  if (!m->complete && !f->allow_incomplete)
    return sc_error_setc(SC_ERR_ARG, "%s/%s: the run that wrote it has not finished (rerun extract)",
                         dir, STORE_MANIFEST_NAME);
  if (i > 0 && m->d != r->d)
    return sc_error_setc(SC_ERR_ARG, "%s/%s: d is %d, but %d in the first directory", dir,
                         STORE_MANIFEST_NAME, m->d, r->d);
  for (int k = 0; k < m->n_shards; k++)
    if (m->shards[k].rows > UINT32_MAX)
      return sc_error_setc(SC_ERR_RANGE, "%s: shard %s too large", dir, m->shards[k].file);
  r->d = m->d;
  return 0;
}

static int open_dir(store_reader *r, int i, const char *dir, const store_filter *f) {
  int rc = store_manifest_load(dir, &r->man[i]);
  if (!rc) rc = check_dir(r, i, dir, f);
  if (rc) return rc;
  const store_manifest *m = &r->man[i];
  rd_shard *v = realloc(r->sh, ((size_t)r->n_shards + (size_t)m->n_shards + 1) * sizeof *v);
  if (!v) return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  r->sh = v;
  for (int k = 0; k < m->n_shards && !rc; k++) {
    rd_shard *s = &r->sh[r->n_shards++];
    memset(s, 0, sizeof *s);
    s->dir = i;
    rc = open_shard(s, dir, m, k);
    if (!rc) rc = apply_filter(s, f);
    s->first = r->n_rows;
    r->n_rows += s->n_keep;
  }
  return rc;
}

int store_reader_open(store_reader **out, const char *const *dirs, int n_dirs,
                      const store_filter *filter) {
  *out = NULL;
  if (n_dirs < 1 || n_dirs > STORE_MAX_DIRS)
    return sc_error_setc(SC_ERR_ARG, "store: %d directories (1..%d)", n_dirs, STORE_MAX_DIRS);
  store_filter none = store_filter_default();
  const store_filter *f = filter ? filter : &none;
  if (f->n_exclude_tokens < 0 || f->n_split_of < 0)
    return sc_error_setc(SC_ERR_ARG, "store: bad filter");
  store_reader *r = calloc(1, sizeof *r);
  if (!r || !(r->man = calloc((size_t)n_dirs, sizeof *r->man))) {
    free(r);
    return sc_error_setc(SC_ERR_NOMEM, "store: out of memory");
  }
  r->n_dirs = n_dirs;
  int rc = 0;
  for (int i = 0; i < n_dirs && !rc; i++) rc = open_dir(r, i, dirs[i], f);
  if (rc) {
    store_reader_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

/* ==== reading ============================================================ */

int64_t store_reader_n_rows(const store_reader *r) { return r->n_rows; }
int store_reader_d(const store_reader *r) { return r->d; }
const store_manifest *store_reader_manifest(const store_reader *r, int i) {
  return i >= 0 && i < r->n_dirs ? &r->man[i] : NULL;
}

/* Shard holding global row g (0 <= g < n_rows): the last with first <= g
 * and a kept row. */
static const rd_shard *find_shard(const store_reader *r, int64_t g) {
  int lo = 0, hi = r->n_shards - 1;
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    if (r->sh[mid].first <= g) lo = mid;
    else hi = mid - 1;
  }
  while (g - r->sh[lo].first >= r->sh[lo].n_keep) lo++;  /* skip fully filtered shards */
  return &r->sh[lo];
}

static void copy_row(const store_reader *r, const rd_shard *s, int64_t g, float *out,
                     store_row_meta *meta) {
  int64_t j = g - s->first;
  size_t i = s->keep ? s->keep[j] : (size_t)j, d = (size_t)r->d;
  if (s->dtype == SC_DTYPE_BF16) sc_f32_from_bf16_n(out, (const uint16_t *)s->acts + i * d, d);
  else memcpy(out, (const float *)s->acts + i * d, d * sizeof(float));
  if (!meta) return;
  meta->sample_index = s->sample[i];
  meta->position = s->pos[i];
  meta->token_id = s->tok[i];
  meta->segment = s->seg[i];
  meta->dir = (int16_t)s->dir;
}

int store_reader_read(store_reader *r, int64_t i0, int64_t i1, float *out, store_row_meta *meta) {
  if (i0 < 0 || i1 < i0 || i1 > r->n_rows)
    return sc_error_setc(SC_ERR_RANGE, "store: rows [%" PRId64 ", %" PRId64 ") outside 0..%" PRId64,
                         i0, i1, r->n_rows);
  const rd_shard *s = i1 > i0 ? find_shard(r, i0) : NULL;
  for (int64_t g = i0; g < i1; g++) {
    while (g - s->first >= s->n_keep) s++;
    copy_row(r, s, g, out + (size_t)(g - i0) * (size_t)r->d, meta ? meta + (g - i0) : NULL);
  }
  return 0;
}

int store_reader_gather(store_reader *r, const int64_t *idx, int64_t n, float *out,
                        store_row_meta *meta) {
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= r->n_rows)
      return sc_error_setc(SC_ERR_RANGE, "store: row %" PRId64 " outside 0..%" PRId64, idx[k],
                           r->n_rows);
  for (int64_t k = 0; k < n; k++)
    copy_row(r, find_shard(r, idx[k]), idx[k], out + (size_t)k * (size_t)r->d,
             meta ? meta + k : NULL);
  return 0;
}

int store_reader_next(store_reader *r, float *out, store_row_meta *meta, int64_t max, int64_t *got) {
  int64_t n = r->n_rows - r->cursor;
  if (max < 0) return sc_error_setc(SC_ERR_ARG, "store: negative batch size");
  if (n > max) n = max;
  int rc = store_reader_read(r, r->cursor, r->cursor + n, out, meta);
  if (rc) return rc;
  r->cursor += n;
  *got = n;
  return 0;
}

int64_t store_reader_tell(const store_reader *r) { return r->cursor; }

int store_reader_seek(store_reader *r, int64_t pos) {
  if (pos < 0 || pos > r->n_rows)
    return sc_error_setc(SC_ERR_RANGE, "store: cursor %" PRId64 " outside 0..%" PRId64, pos,
                         r->n_rows);
  r->cursor = pos;
  return 0;
}

int store_reader_verify(store_reader *r) {
  int k = 0;
  for (int i = 0; i < r->n_dirs; i++) {
    for (int j = 0; j < r->man[i].n_shards; j++, k++) {
      const store_shard_info *info = &r->man[i].shards[j];
      if (!info->has_checksum) continue;
      sc_mmap mm;
      int rc = sc_mmap_open(&mm, st_file_path(r->sh[k].f));
      if (rc) return rc;
      uint64_t h = store_fnv1a64(STORE_FNV_INIT, mm.data, mm.size);
      sc_mmap_close(&mm);
      if (h != info->checksum)
        return sc_error_setc(SC_ERR_FORMAT, "%s: checksum mismatch (file changed after it was written)",
                             st_file_path(r->sh[k].f));
    }
  }
  return 0;
}

char *store_layer_dir(const char *root, const char *language, int layer) {
  size_t n = strlen(root) + strlen(language) + 64;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/activations/%s/layer_%d", root, language, layer);
  return p;
}
