/* safetensors.c: validating reader (single files and Hugging Face sharded
 * checkpoints) and atomic writer for the safetensors format (see
 * safetensors.h for the format and the contract).
 *
 * The reader trusts nothing in the file: every number in the header is
 * range-checked with overflow-safe arithmetic before a tensor pointer into
 * the mapping is handed out, and every failure sets one message
 * "<path>: <problem>" naming the tensor where there is one.
 */
#include "io/safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/utf8.h"
#include "io/json.h"

/* The index is a small JSON file; anything past this is not an index. */
#define ST_MAX_INDEX_BYTES (64u * 1024u * 1024u)
/* cJSON prints integers below 1e15 exactly; larger offsets or dims would
 * come out in exponent form, which safetensors readers refuse. */
#define ST_MAX_WRITE_VALUE 999999999999999LL

struct st_file {
  char *path;                 /* name used in messages (owned) */
  sc_mmap map;                /* the mapping when opened from a file */
  const unsigned char *buf;   /* whole file (len bytes) */
  size_t len;
  int n_tensors;
  st_tensor *tensors;         /* (n_tensors) in data-offset order */
  int *by_name;               /* (n_tensors) indices into tensors, by name */
  int n_meta;
  char **meta;                /* (n_meta, 2) key, value */
};

/* A tensor while the header is parsed: its range is needed for sorting. */
typedef struct st_entry {
  st_tensor t;
  int64_t begin, end; /* data_offsets, relative to the data section */
} st_entry;

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static int oom(const char *path) { return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", path); }

/* "[2,3]" into buf (truncated to cap). */
void st_shape_str(char *buf, size_t cap, int n, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < n && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? "," : "", shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Element count of a shape, or -1 when it overflows int64. Dims >= 0. */
static int64_t shape_elements(int n, const int64_t *shape) {
  int64_t e = 1;
  for (int i = 0; i < n; i++) {
    if (shape[i] != 0 && e > INT64_MAX / shape[i]) return -1;
    e *= shape[i];
  }
  return e;
}

/* Byte size of n elements of dtype, or -1 on overflow. */
static int64_t elements_bytes(int64_t n, sc_dtype dt) {
  int64_t sz = (int64_t)sc_dtype_size(dt);
  if (n < 0 || n > INT64_MAX / sz) return -1;
  return n * sz;
}

/* ==== header parsing ==== */

static uint64_t read_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Checks the 8-byte length prefix; *hlen is the JSON header's size. */
static int parse_header_len(const st_file *f, size_t *hlen) {
  if (f->len < 8)
    return sc_error_set("%s: file is %zu bytes, too short for the 8-byte header length (truncated?)",
                        f->path, f->len);
  uint64_t n = read_le64(f->buf);
  if (n < 2) return sc_error_set("%s: header length %" PRIu64 " is too small", f->path, n);
  if (n > ST_MAX_HEADER)
    return sc_error_set("%s: header length %" PRIu64 " exceeds the limit of %u bytes", f->path, n,
                        ST_MAX_HEADER);
  if (n > f->len - 8)
    return sc_error_set("%s: header length %" PRIu64 " is larger than the %zu bytes after it (truncated?)",
                        f->path, n, f->len - 8);
  size_t bad;
  if (!sc_utf8_valid((const char *)f->buf + 8, (size_t)n, &bad))
    return sc_error_set("%s: header is not valid UTF-8 (byte %zu of the header)", f->path, bad);
  *hlen = (size_t)n;
  return 0;
}

static int parse_meta(st_file *f, const sc_json *node) {
  if (f->meta) return sc_error_set("%s: duplicate entry '__metadata__'", f->path);
  if (!sc_json_is_object(node)) return sc_error_set("%s: __metadata__ is not an object", f->path);
  int n = sc_json_size(node);
  f->meta = calloc((size_t)n * 2 + 1, sizeof *f->meta);
  if (!f->meta) return oom(f->path);
  for (const sc_json *m = sc_json_first(node); m; m = sc_json_next(m)) {
    const char *v = sc_json_str(m);
    if (!v)
      return sc_error_set("%s: __metadata__ value of '%s' is not a string", f->path, sc_json_key(m));
    char *k = dup_str(sc_json_key(m)), *vv = dup_str(v);
    f->meta[2 * f->n_meta] = k;
    f->meta[2 * f->n_meta + 1] = vv;
    f->n_meta++;
    if (!k || !vv) return oom(f->path);
  }
  return 0;
}

static int parse_shape(const st_file *f, const char *name, const sc_json *node, st_tensor *t) {
  if (!sc_json_is_array(node)) return sc_error_set("%s: tensor '%s' has no \"shape\" array", f->path, name);
  int n = sc_json_size(node);
  if (n > ST_MAX_DIMS)
    return sc_error_set("%s: tensor '%s' has %d dims, more than the limit of %d", f->path, name, n,
                        ST_MAX_DIMS);
  t->n_dims = n;
  for (int i = 0; i < n; i++) {
    if (sc_json_i64(sc_json_at(node, i), &t->shape[i]) || t->shape[i] < 0)
      return sc_error_set("%s: tensor '%s' has shape entry %d that is not a non-negative integer",
                          f->path, name, i);
  }
  t->n_elements = shape_elements(n, t->shape);
  if (t->n_elements < 0) {
    char s[256];
    st_shape_str(s, sizeof s, n, t->shape);
    return sc_error_set("%s: tensor '%s' has shape %s whose element count overflows", f->path, name, s);
  }
  return 0;
}

static int parse_offsets(const st_file *f, const char *name, const sc_json *node, st_entry *e) {
  if (!sc_json_is_array(node) || sc_json_size(node) != 2 || sc_json_i64(sc_json_at(node, 0), &e->begin) ||
      sc_json_i64(sc_json_at(node, 1), &e->end))
    return sc_error_set("%s: tensor '%s' has no \"data_offsets\" array of 2 integers", f->path, name);
  if (e->begin < 0 || e->end < 0)
    return sc_error_set("%s: tensor '%s' has negative data_offsets [%" PRId64 ",%" PRId64 "]", f->path,
                        name, e->begin, e->end);
  if (e->begin > e->end)
    return sc_error_set("%s: tensor '%s' has data_offsets [%" PRId64 ",%" PRId64 "] with begin after end",
                        f->path, name, e->begin, e->end);
  return 0;
}

/* Checks the byte size the shape implies against the data range. */
static int check_extent(const st_file *f, st_entry *e, size_t data_len) {
  st_tensor *t = &e->t;
  char s[256];
  if ((uint64_t)e->end > data_len)
    return sc_error_set("%s: tensor '%s' has data range [%" PRId64 ",%" PRId64
                        ") outside the data section (%zu bytes)",
                        f->path, t->name, e->begin, e->end, data_len);
  int64_t want = elements_bytes(t->n_elements, t->dtype);
  st_shape_str(s, sizeof s, t->n_dims, t->shape);
  if (want < 0)
    return sc_error_set("%s: tensor '%s' has shape %s whose byte size overflows", f->path, t->name, s);
  if (want != e->end - e->begin)
    return sc_error_set("%s: tensor '%s' has shape %s (%" PRId64 " bytes as %s) but its data range is %" PRId64
                        " bytes",
                        f->path, t->name, s, want, sc_dtype_name(t->dtype), e->end - e->begin);
  t->nbytes = (size_t)want;
  return 0;
}

static int parse_entry(st_file *f, const sc_json *node, st_entry *e, size_t data_len) {
  const char *name = sc_json_key(node);
  if (!sc_json_is_object(node)) return sc_error_set("%s: tensor '%s' is not an object", f->path, name);
  e->t.name = dup_str(name);
  if (!e->t.name) return oom(f->path);
  const char *dt = sc_json_str(sc_json_get(node, "dtype"));
  if (!dt) return sc_error_set("%s: tensor '%s' has no \"dtype\" string", f->path, name);
  if (sc_dtype_from_name(dt, &e->t.dtype))
    return sc_error_set("%s: tensor '%s' has unknown dtype '%s'", f->path, name, dt);
  int rc = parse_shape(f, name, sc_json_get(node, "shape"), &e->t);
  if (!rc) rc = parse_offsets(f, name, sc_json_get(node, "data_offsets"), e);
  if (!rc) rc = check_extent(f, e, data_len);
  return rc;
}

static int cmp_entry_offset(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->t.name, y->t.name);
}

/* Entries sorted by offset: a non-empty range starting before the furthest
 * end seen so far overlaps an earlier one. Empty ranges overlap nothing. */
static int check_overlaps(const st_file *f, const st_entry *e, int n) {
  int last = -1;
  for (int i = 0; i < n; i++) {
    if (e[i].begin == e[i].end) continue;
    if (last >= 0 && e[i].begin < e[last].end)
      return sc_error_set("%s: tensors '%s' [%" PRId64 ",%" PRId64 ") and '%s' [%" PRId64 ",%" PRId64
                          ") have overlapping data ranges",
                          f->path, e[last].t.name, e[last].begin, e[last].end, e[i].t.name, e[i].begin,
                          e[i].end);
    if (last < 0 || e[i].end > e[last].end) last = i;
  }
  return 0;
}

/* qsort has no context argument; the name index sorts pairs instead. */
typedef struct name_ref {
  const char *name;
  int idx;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
  return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

static int build_name_index(st_file *f) {
  size_t n = (size_t)f->n_tensors;
  name_ref *refs = malloc((n ? n : 1) * sizeof *refs);
  f->by_name = malloc((n ? n : 1) * sizeof *f->by_name);
  if (!refs || !f->by_name) {
    free(refs);
    return oom(f->path);
  }
  for (size_t i = 0; i < n; i++) refs[i] = (name_ref){f->tensors[i].name, (int)i};
  qsort(refs, n, sizeof *refs, cmp_name_ref);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && !strcmp(refs[i].name, refs[i - 1].name)) {
      rc = sc_error_set("%s: duplicate tensor name '%s'", f->path, refs[i].name);
      break;
    }
    f->by_name[i] = refs[i].idx;
  }
  free(refs);
  return rc;
}

/* Parses every member of the header object into entries (n of them). */
static int parse_members(st_file *f, const sc_json *root, st_entry *entries, int *n, size_t data_len) {
  int rc = 0;
  *n = 0;
  for (const sc_json *m = sc_json_first(root); m && !rc; m = sc_json_next(m)) {
    if (!strcmp(sc_json_key(m), "__metadata__")) rc = parse_meta(f, m);
    else rc = parse_entry(f, m, &entries[(*n)++], data_len);
  }
  return rc;
}

static int parse_tensors(st_file *f, const sc_json *root, size_t data_len, const unsigned char *data) {
  int cap = sc_json_size(root);
  st_entry *e = calloc((size_t)cap + 1, sizeof *e);
  if (!e) return oom(f->path);
  int n = 0;
  int rc = parse_members(f, root, e, &n, data_len);
  if (!rc) {
    qsort(e, (size_t)n, sizeof *e, cmp_entry_offset);
    rc = check_overlaps(f, e, n);
  }
  f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
  if (!f->tensors) rc = rc ? rc : oom(f->path);
  for (int i = 0; f->tensors && i < n; i++) { /* names move to f even on failure, to be freed once */
    f->tensors[i] = e[i].t;
    if (!rc && e[i].t.nbytes) f->tensors[i].data = data + e[i].begin;
  }
  if (f->tensors) f->n_tensors = n;
  else
    for (int i = 0; i < n; i++) free((char *)e[i].t.name);
  free(e);
  if (!rc) rc = build_name_index(f);
  return rc;
}

static int parse_file(st_file *f) {
  size_t hlen = 0;
  int rc = parse_header_len(f, &hlen);
  if (rc) return rc;
  sc_json *root;
  rc = sc_json_parse((const char *)f->buf + 8, hlen, f->path, &root);
  if (rc) return rc;
  if (!sc_json_is_object(root)) rc = sc_error_set("%s: header is not a JSON object", f->path);
  if (!rc) rc = parse_tensors(f, root, f->len - 8 - hlen, f->buf + 8 + hlen);
  sc_json_free(root);
  return rc;
}

/* ==== st_file ==== */

static st_file *file_new(const char *name) {
  st_file *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->path = dup_str(name ? name : "(memory)");
  if (!f->path) {
    free(f);
    return NULL;
  }
  return f;
}

void st_file_free(st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
  for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
  free(f->meta);
  free(f->tensors);
  free(f->by_name);
  sc_mmap_close(&f->map);
  free(f->path);
  free(f);
}

int st_file_from_memory(st_file **out, const void *buf, size_t len, const char *name) {
  *out = NULL;
  st_file *f = file_new(name);
  if (!f) return oom(name ? name : "(memory)");
  f->buf = buf;
  f->len = len;
  int rc = parse_file(f);
  if (rc) {
    st_file_free(f);
    return rc;
  }
  *out = f;
  return 0;
}

int st_file_open(st_file **out, const char *path) {
  *out = NULL;
  st_file *f = file_new(path);
  if (!f) return oom(path);
  int rc = sc_mmap_open(&f->map, path);
  if (!rc) {
    f->buf = f->map.data;
    f->len = f->map.size;
    rc = parse_file(f);
  }
  if (rc) {
    st_file_free(f);
    return rc;
  }
  *out = f;
  return 0;
}

int st_file_n_tensors(const st_file *f) { return f->n_tensors; }

const st_tensor *st_file_tensor(const st_file *f, int i) {
  return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const st_tensor *st_file_find(const st_file *f, const char *name) {
  int lo = 0, hi = f->n_tensors;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    const st_tensor *t = &f->tensors[f->by_name[mid]];
    int c = strcmp(name, t->name);
    if (!c) return t;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

int st_file_n_meta(const st_file *f) { return f->n_meta; }

void st_file_meta(const st_file *f, int i, const char **key, const char **value) {
  int ok = i >= 0 && i < f->n_meta;
  if (key) *key = ok ? f->meta[2 * i] : NULL;
  if (value) *value = ok ? f->meta[2 * i + 1] : NULL;
}

const char *st_file_meta_get(const st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
  return NULL;
}

const char *st_file_path(const st_file *f) { return f->path; }

/* ==== st_checkpoint ==== */

struct st_checkpoint {
  char *path;          /* what was opened (owned) */
  int n_files;
  st_file **files;     /* (n_files) */
  int n_tensors;
  st_tensor *tensors;  /* (n_tensors) copies, sorted by name, shard set */
};

/* One weight_map line of the index: tensor name -> shard number. */
typedef struct st_wm_entry {
  const char *name;  /* inside the index JSON */
  int shard;
} st_wm_entry;

static int cmp_wm(const void *a, const void *b) {
  return strcmp(((const st_wm_entry *)a)->name, ((const st_wm_entry *)b)->name);
}

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

void st_checkpoint_free(st_checkpoint *c) {
  if (!c) return;
  for (int i = 0; i < c->n_files; i++) st_file_free(c->files[i]);
  free(c->files);
  free(c->tensors);
  free(c->path);
  free(c);
}

/* Shard file names come from the index: a '/' or ".." could point outside
 * the checkpoint folder. */
static int check_shard_name(const char *index, const char *tensor, const char *shard) {
  if (!shard) return sc_error_set("%s: weight_map entry '%s' is not a string", index, tensor);
  if (!shard[0] || strchr(shard, '/') || strstr(shard, ".."))
    return sc_error_set("%s: weight_map entry '%s' names shard '%s', which is not a plain file name",
                        index, tensor, shard);
  return 0;
}

/* Opens the shard named s once (files are looked up by name); *shard is its
 * number. */
static int open_shard(st_checkpoint *c, const char *dir, const char *index, const char *s, int *shard) {
  for (int i = 0; i < c->n_files; i++) {
    if (!strcmp(sc_path_base(st_file_path(c->files[i])), s)) {
      *shard = i;
      return 0;
    }
  }
  char *p = sc_path_join(dir, s);
  if (!p) return oom(index);
  int rc = 0;
  if (!sc_is_file(p)) rc = sc_error_setc(SC_ERR_MISSING, "%s: weight_map names shard '%s', but %s does not exist", index, s, p);
  if (!rc) rc = st_file_open(&c->files[c->n_files], p);
  free(p);
  if (rc) return rc;
  *shard = c->n_files++;
  return 0;
}

/* Reads weight_map into wm (sorted by name) and opens every shard it names. */
static int read_weight_map(st_checkpoint *c, const char *dir, const char *index, const sc_json *root,
                           st_wm_entry *wm) {
  const sc_json *map = sc_json_get(root, "weight_map");
  int n = sc_json_size(map);
  int i = 0, rc = 0;
  for (const sc_json *m = sc_json_first(map); m && !rc; m = sc_json_next(m), i++) {
    wm[i].name = sc_json_key(m);
    rc = check_shard_name(index, wm[i].name, sc_json_str(m));
    if (!rc) rc = open_shard(c, dir, index, sc_json_str(m), &wm[i].shard);
  }
  if (rc) return rc;
  qsort(wm, (size_t)n, sizeof *wm, cmp_wm);
  for (i = 1; i < n; i++)
    if (!strcmp(wm[i].name, wm[i - 1].name))
      return sc_error_set("%s: weight_map lists tensor '%s' twice", index, wm[i].name);
  return 0;
}

static const st_wm_entry *wm_find(const st_wm_entry *wm, int n, const char *name) {
  st_wm_entry key = {name, 0};
  return bsearch(&key, wm, (size_t)n, sizeof *wm, cmp_wm);
}

/* Every index line must be in its shard and every shard tensor in the
 * index, under that shard; then the name-sorted index is the tensor list. */
static int match_index(st_checkpoint *c, const char *index, const st_wm_entry *wm, int n) {
  for (int i = 0; i < n; i++) {
    const st_file *f = c->files[wm[i].shard];
    const st_tensor *t = st_file_find(f, wm[i].name);
    if (!t)
      return sc_error_setc(SC_ERR_MISSING, "%s: the index maps tensor '%s' to %s, which has no such tensor",
                           index, wm[i].name, st_file_path(f));
    c->tensors[i] = *t;
    c->tensors[i].shard = wm[i].shard;
  }
  for (int s = 0; s < c->n_files; s++) {
    const st_file *f = c->files[s];
    for (int k = 0; k < f->n_tensors; k++) {
      const st_wm_entry *e = wm_find(wm, n, f->tensors[k].name);
      if (!e)
        return sc_error_set("%s: tensor '%s' is not listed in the index %s", f->path, f->tensors[k].name, index);
      if (e->shard != s)
        return sc_error_set("%s: has tensor '%s', which the index %s maps to %s", f->path,
                            f->tensors[k].name, index, c->files[e->shard]->path);
    }
  }
  c->n_tensors = n;
  return 0;
}

static int open_index(st_checkpoint *c, const char *dir, const char *index) {
  sc_json *root;
  int rc = sc_json_load(index, ST_MAX_INDEX_BYTES, &root);
  if (rc) return rc;
  const sc_json *map = sc_json_get(root, "weight_map");
  if (!sc_json_is_object(map)) {
    sc_json_free(root);
    return sc_error_set("%s: no \"weight_map\" object", index);
  }
  int n = sc_json_size(map);
  st_wm_entry *wm = calloc((size_t)n + 1, sizeof *wm);
  c->files = calloc((size_t)n + 1, sizeof *c->files);
  c->tensors = calloc((size_t)n + 1, sizeof *c->tensors);
  if (!wm || !c->files || !c->tensors) rc = oom(index);
  if (!rc) rc = read_weight_map(c, dir, index, root, wm);
  if (!rc) rc = match_index(c, index, wm, n);
  free(wm);
  sc_json_free(root);
  return rc;
}

static int open_single(st_checkpoint *c, const char *path) {
  c->files = calloc(1, sizeof *c->files);
  if (!c->files) return oom(path);
  int rc = st_file_open(&c->files[0], path);
  if (rc) return rc;
  c->n_files = 1;
  const st_file *f = c->files[0];
  c->tensors = calloc((size_t)f->n_tensors + 1, sizeof *c->tensors);
  if (!c->tensors) return oom(path);
  for (int i = 0; i < f->n_tensors; i++) c->tensors[i] = f->tensors[f->by_name[i]];
  c->n_tensors = f->n_tensors;
  return 0;
}

static int open_folder(st_checkpoint *c, const char *dir) {
  char *index = sc_path_join(dir, "model.safetensors.index.json");
  char *single = sc_path_join(dir, "model.safetensors");
  int rc;
  if (!index || !single) rc = oom(dir);
  else if (sc_is_file(index)) rc = open_index(c, dir, index);
  else if (sc_is_file(single)) rc = open_single(c, single);
  else
    rc = sc_error_setc(SC_ERR_MISSING, "%s: no model.safetensors.index.json or model.safetensors in this folder",
                       dir);
  free(index);
  free(single);
  return rc;
}

int st_checkpoint_open(st_checkpoint **out, const char *path) {
  *out = NULL;
  st_checkpoint *c = calloc(1, sizeof *c);
  if (!c || !(c->path = dup_str(path))) {
    free(c);
    return oom(path);
  }
  int rc;
  if (sc_is_dir(path)) rc = open_folder(c, path);
  else if (sc_is_file(path)) rc = open_single(c, path);
  else rc = sc_error_setc(SC_ERR_IO, "%s: no such file or folder", path);
  if (rc) {
    st_checkpoint_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int st_checkpoint_n_tensors(const st_checkpoint *c) { return c->n_tensors; }

const st_tensor *st_checkpoint_tensor(const st_checkpoint *c, int i) {
  return i >= 0 && i < c->n_tensors ? &c->tensors[i] : NULL;
}

const st_tensor *st_checkpoint_find(const st_checkpoint *c, const char *name) {
  st_tensor key;
  key.name = name;
  return bsearch(&key, c->tensors, (size_t)c->n_tensors, sizeof *c->tensors, cmp_tensor_name);
}

int st_checkpoint_n_files(const st_checkpoint *c) { return c->n_files; }

const st_file *st_checkpoint_file(const st_checkpoint *c, int i) {
  return i >= 0 && i < c->n_files ? c->files[i] : NULL;
}

/* ==== st_writer ==== */

typedef struct st_wtensor {
  char *name;                  /* owned */
  sc_dtype dtype;
  int n_dims;
  int64_t shape[ST_MAX_DIMS];  /* (n_dims) */
  const void *data;            /* borrowed */
  size_t nbytes;
} st_wtensor;

struct st_writer {
  int n, cap;
  st_wtensor *t;     /* (n) in the order added */
  int n_meta, cap_meta;
  char **meta;       /* (n_meta, 2) key, value */
  size_t data_bytes;
};

int st_writer_create(st_writer **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : sc_error_setc(SC_ERR_NOMEM, "safetensors writer: out of memory");
}

void st_writer_free(st_writer *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) free(w->t[i].name);
  for (int i = 0; i < 2 * w->n_meta; i++) free(w->meta[i]);
  free(w->t);
  free(w->meta);
  free(w);
}

/* Makes room for one more element in a growable array: *arr holds *cap
 * elements of `size` bytes, n are used. Returns the (possibly moved) array
 * or NULL when out of memory, leaving *cap and the old array untouched. */
static void *grow(void *arr, int *cap, int n, size_t size) {
  if (n < *cap) return arr;
  int nc = *cap ? *cap * 2 : 16;
  void *p = realloc(arr, (size_t)nc * size);
  if (p) *cap = nc;
  return p;
}

static int check_text(const char *what, const char *s) {
  if (!s) return sc_error_setc(SC_ERR_ARG, "safetensors writer: %s is NULL", what);
  if (!sc_utf8_valid(s, strlen(s), NULL))
    return sc_error_setc(SC_ERR_ARG, "safetensors writer: %s '%s' is not valid UTF-8", what, s);
  return 0;
}

int st_writer_add_meta(st_writer *w, const char *key, const char *value) {
  int rc = check_text("metadata key", key);
  if (!rc) rc = check_text("metadata value", value);
  if (rc) return rc;
  for (int i = 0; i < w->n_meta; i++)
    if (!strcmp(w->meta[2 * i], key))
      return sc_error_setc(SC_ERR_ARG, "safetensors writer: duplicate metadata key '%s'", key);
  char **meta = grow(w->meta, &w->cap_meta, 2 * w->n_meta + 1, sizeof *w->meta);
  if (meta) w->meta = meta;
  char *k = dup_str(key), *v = dup_str(value);
  if (!meta || !k || !v) {
    free(k);
    free(v);
    return sc_error_setc(SC_ERR_NOMEM, "safetensors writer: out of memory");
  }
  w->meta[2 * w->n_meta] = k;
  w->meta[2 * w->n_meta + 1] = v;
  w->n_meta++;
  return 0;
}

static int check_tensor_args(const st_writer *w, const char *name, sc_dtype dtype, int n_dims,
                             const int64_t *shape, const void *data, size_t nbytes) {
  int rc = check_text("tensor name", name);
  if (rc) return rc;
  if (!strcmp(name, "__metadata__"))
    return sc_error_setc(SC_ERR_ARG, "safetensors writer: '__metadata__' is reserved, not a tensor name");
  if ((unsigned)dtype >= SC_DTYPE_COUNT)
    return sc_error_setc(SC_ERR_ARG, "safetensors writer: tensor '%s' has an invalid dtype %d", name, (int)dtype);
  if (n_dims < 0 || n_dims > ST_MAX_DIMS || (n_dims && !shape))
    return sc_error_setc(SC_ERR_ARG, "safetensors writer: tensor '%s' has %d dims (0 to %d allowed)", name,
                         n_dims, ST_MAX_DIMS);
  for (int i = 0; i < n_dims; i++)
    if (shape[i] < 0 || shape[i] > ST_MAX_WRITE_VALUE)
      return sc_error_setc(SC_ERR_ARG, "safetensors writer: tensor '%s' has dim %d = %" PRId64 " out of range",
                           name, i, shape[i]);
  char s[256];
  st_shape_str(s, sizeof s, n_dims, shape);
  int64_t want = elements_bytes(shape_elements(n_dims, shape), dtype);
  if (want < 0 || (uint64_t)want != nbytes)
    return sc_error_setc(SC_ERR_ARG, "safetensors writer: tensor '%s' has shape %s as %s but %zu bytes were given",
                         name, s, sc_dtype_name(dtype), nbytes);
  if (nbytes && !data) return sc_error_setc(SC_ERR_ARG, "safetensors writer: tensor '%s' has no data", name);
  if (w->data_bytes > (size_t)ST_MAX_WRITE_VALUE - nbytes)
    return sc_error_setc(SC_ERR_RANGE, "safetensors writer: tensor '%s' makes the file too large", name);
  for (int i = 0; i < w->n; i++)
    if (!strcmp(w->t[i].name, name))
      return sc_error_setc(SC_ERR_ARG, "safetensors writer: duplicate tensor name '%s'", name);
  return 0;
}

int st_writer_add(st_writer *w, const char *name, sc_dtype dtype, int n_dims, const int64_t *shape,
                  const void *data, size_t nbytes) {
  int rc = check_tensor_args(w, name, dtype, n_dims, shape, data, nbytes);
  if (rc) return rc;
  st_wtensor *arr = grow(w->t, &w->cap, w->n, sizeof *w->t);
  if (!arr) return sc_error_setc(SC_ERR_NOMEM, "safetensors writer: out of memory");
  w->t = arr;
  st_wtensor *t = &w->t[w->n];
  memset(t, 0, sizeof *t);
  t->name = dup_str(name);
  if (!t->name) return sc_error_setc(SC_ERR_NOMEM, "safetensors writer: out of memory");
  t->dtype = dtype;
  t->n_dims = n_dims;
  if (n_dims) memcpy(t->shape, shape, (size_t)n_dims * sizeof *shape);
  t->data = data;
  t->nbytes = nbytes;
  w->data_bytes += nbytes;
  w->n++;
  return 0;
}

size_t st_writer_data_bytes(const st_writer *w) { return w->data_bytes; }

/* Layout order: larger elements first so every tensor starts aligned to its
 * element size (the data section starts 8-aligned), then by name. */
static int cmp_layout(const void *a, const void *b) {
  const st_wtensor *x = *(const st_wtensor *const *)a, *y = *(const st_wtensor *const *)b;
  size_t sx = sc_dtype_size(x->dtype), sy = sc_dtype_size(y->dtype);
  if (sx != sy) return sx > sy ? -1 : 1;
  return strcmp(x->name, y->name);
}

static sc_json *tensor_json(const st_wtensor *t, size_t begin) {
  sc_json *o = sc_json_new_object();
  int ok = sc_json_add_str(o, "dtype", sc_dtype_name(t->dtype)) != NULL;
  sc_json *shape = sc_json_add(o, "shape", sc_json_new_array());
  sc_json *offs = sc_json_add(o, "data_offsets", sc_json_new_array());
  ok = ok && shape && offs;
  for (int i = 0; ok && i < t->n_dims; i++) ok = sc_json_add(shape, NULL, sc_json_new_num((double)t->shape[i])) != NULL;
  ok = ok && sc_json_add(offs, NULL, sc_json_new_num((double)begin));
  ok = ok && sc_json_add(offs, NULL, sc_json_new_num((double)(begin + t->nbytes)));
  if (!ok) {
    sc_json_free(o);
    return NULL;
  }
  return o;
}

/* The header JSON (compact), __metadata__ first, tensors in layout order. */
static char *header_text(const st_writer *w, st_wtensor **order) {
  sc_json *root = sc_json_new_object();
  int ok = root != NULL;
  if (ok && w->n_meta) {
    sc_json *m = sc_json_add(root, "__metadata__", sc_json_new_object());
    ok = m != NULL;
    for (int i = 0; ok && i < w->n_meta; i++) ok = sc_json_add_str(m, w->meta[2 * i], w->meta[2 * i + 1]) != NULL;
  }
  size_t off = 0;
  for (int i = 0; ok && i < w->n; i++) {
    ok = sc_json_add(root, order[i]->name, tensor_json(order[i], off)) != NULL;
    off += order[i]->nbytes;
  }
  char *text = ok ? sc_json_print(root, 0) : NULL;
  sc_json_free(root);
  return text;
}

static int write_body(sc_afile *af, const char *text, st_wtensor **order, int n) {
  size_t len = strlen(text);
  size_t padded = (len + 7) / 8 * 8;
  unsigned char lenbuf[8];
  for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  static const char spaces[8] = "        ";
  int rc = sc_afile_write(af, lenbuf, 8);
  if (!rc) rc = sc_afile_write(af, text, len);
  if (!rc) rc = sc_afile_write(af, spaces, padded - len);
  for (int i = 0; !rc && i < n; i++) rc = sc_afile_write(af, order[i]->data, order[i]->nbytes);
  return rc;
}

int st_writer_write(st_writer *w, const char *path) {
  st_wtensor **order = malloc(((size_t)w->n + 1) * sizeof *order);
  if (!order) return oom(path);
  for (int i = 0; i < w->n; i++) order[i] = &w->t[i];
  qsort(order, (size_t)w->n, sizeof *order, cmp_layout);
  char *text = header_text(w, order);
  if (!text) {
    free(order);
    return oom(path);
  }
  sc_afile af;
  int rc = sc_afile_open(&af, path);
  if (!rc) rc = write_body(&af, text, order, w->n);
  if (!rc) rc = sc_afile_commit(&af);
  else sc_afile_abort(&af);
  free(text);
  free(order);
  return rc;
}
