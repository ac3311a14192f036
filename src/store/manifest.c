/* manifest.c: manifest.json of an activation directory (see manifest.h). */
#include "store/manifest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"

uint64_t store_fnv1a64(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

void store_manifest_free(store_manifest *m) {
  if (!m) return;
  free(m->saecap_version);
  free(m->language);
  free(m->model_path);
  free(m->config_hash);
  free(m->prompt);
  for (int i = 0; i < m->n_shards && m->shards; i++) free(m->shards[i].file);
  free(m->shards);
  memset(m, 0, sizeof *m);
}

/* ==== parsing =========================================================== */

/* Copies string member `key` into *out. */
static int get_str(const sc_json *o, const char *key, const char *name, char **out) {
  const char *s = sc_json_str(sc_json_get(o, key));
  if (!s) return sc_error_setc(SC_ERR_MISSING, "%s: missing string '%s'", name, key);
  *out = strdup(s);
  if (!*out) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  return 0;
}

/* Integer member `key` within [lo, hi]. */
static int get_int(const sc_json *o, const char *key, int64_t lo, int64_t hi, const char *name,
                   int64_t *out) {
  const sc_json *j = sc_json_get(o, key);
  if (!j) return sc_error_setc(SC_ERR_MISSING, "%s: missing '%s'", name, key);
  if (sc_json_i64(j, out))
    return sc_error_setc(SC_ERR_FORMAT, "%s: '%s' is not an integer", name, key);
  if (*out < lo || *out > hi)
    return sc_error_setc(SC_ERR_RANGE, "%s: '%s' = %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
                         name, key, *out, lo, hi);
  return 0;
}

/* A shard file name: "shard_" + digits + ".safetensors", nothing else. */
static int shard_name_ok(const char *s) {
  size_t n = strlen(s), pre = strlen("shard_"), suf = strlen(".safetensors");
  if (n <= pre + suf || n > 64 || strncmp(s, "shard_", pre) || strcmp(s + n - suf, ".safetensors"))
    return 0;
  for (size_t i = pre; i < n - suf; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

static int parse_checksum(const sc_json *o, const char *name, int k, store_shard_info *s) {
  const sc_json *j = sc_json_get(o, "checksum");
  if (!j || sc_json_is_null(j)) return 0;
  const char *t = sc_json_str(j);
  const char *pre = "fnv1a64:";
  size_t np = strlen(pre);
  if (!t || strncmp(t, pre, np) || strlen(t) != np + 16 ||
      strspn(t + np, "0123456789abcdef") != 16)
    return sc_error_setc(SC_ERR_FORMAT, "%s: shards[%d]: checksum is not 'fnv1a64:<16 hex digits>'",
                         name, k);
  s->checksum = strtoull(t + np, NULL, 16);
  s->has_checksum = 1;
  return 0;
}

static int parse_shard(const sc_json *o, const char *name, int k, store_shard_info *s) {
  char where[64 + 1024];
  snprintf(where, sizeof where, "%s: shards[%d]", name, k);
  if (!sc_json_is_object(o)) return sc_error_set("%s is not an object", where);
  int rc = get_str(o, "file", where, &s->file);
  if (!rc && !shard_name_ok(s->file))
    rc = sc_error_set("%s: file '%s' is not shard_<k>.safetensors", where, s->file);
  if (!rc) rc = get_int(o, "rows", 1, INT64_MAX / 2, where, &s->rows);
  if (!rc) rc = get_int(o, "first_sample", 0, STORE_MAX_SAMPLE, where, &s->first_sample);
  if (!rc) rc = get_int(o, "last_sample", s->first_sample, STORE_MAX_SAMPLE, where, &s->last_sample);
  if (!rc) rc = get_int(o, "end_sample", s->last_sample + 1, STORE_MAX_SAMPLE, where, &s->end_sample);
  if (!rc) rc = get_int(o, "bytes", 1, INT64_MAX / 2, where, &s->bytes);
  if (!rc) rc = parse_checksum(o, name, k, s);
  return rc;
}

/* Shards in order: sample ranges increase, names are unique, rows add up. */
static int check_shards(const store_manifest *m, const char *name) {
  int64_t total = 0;
  for (int k = 0; k < m->n_shards; k++) {
    const store_shard_info *s = &m->shards[k];
    if (k > 0 && s->first_sample < m->shards[k - 1].end_sample)
      return sc_error_set("%s: shards[%d] starts at sample %" PRId64 ", before the end of shards[%d]",
                          name, k, s->first_sample, k - 1);
    for (int j = 0; j < k; j++)
      if (!strcmp(m->shards[j].file, s->file))
        return sc_error_set("%s: shard file '%s' is listed twice", name, s->file);
    total += s->rows;
    if (total > INT64_MAX / 4) return sc_error_setc(SC_ERR_RANGE, "%s: too many rows", name);
  }
  if (total != m->total_rows)
    return sc_error_set("%s: total_rows is %" PRId64 " but the shards hold %" PRId64, name,
                        m->total_rows, total);
  if (m->n_shards && m->next_sample < m->shards[m->n_shards - 1].end_sample)
    return sc_error_set("%s: next_sample %" PRId64 " is before the end of the last shard", name,
                        m->next_sample);
  return 0;
}

static int parse_dtype(const sc_json *o, const char *name, sc_dtype *out) {
  const char *s = sc_json_str(sc_json_get(o, "dtype"));
  if (!s) return sc_error_setc(SC_ERR_MISSING, "%s: missing string 'dtype'", name);
  if (!strcmp(s, "BF16")) *out = SC_DTYPE_BF16;
  else if (!strcmp(s, "F32")) *out = SC_DTYPE_F32;
  else return sc_error_set("%s: dtype '%s' is not BF16 or F32", name, s);
  return 0;
}

static int parse_header(const sc_json *o, const char *name, store_manifest *m) {
  const char *fmt = sc_json_str(sc_json_get(o, "format"));
  if (!fmt || strcmp(fmt, STORE_FORMAT))
    return sc_error_set("%s: 'format' is not \"%s\"", name, STORE_FORMAT);
  int64_t v = 0, layer = 0, d = 0;
  int rc = get_int(o, "format_version", STORE_FORMAT_VERSION, STORE_FORMAT_VERSION, name, &v);
  if (!rc) rc = get_str(o, "saecap_version", name, &m->saecap_version);
  if (!rc) rc = get_str(o, "language", name, &m->language);
  if (!rc) rc = get_int(o, "layer", 0, STORE_MAX_LAYER, name, &layer);
  if (!rc) rc = get_int(o, "d", 1, STORE_MAX_D, name, &d);
  if (!rc) rc = parse_dtype(o, name, &m->dtype);
  if (!rc) rc = get_str(o, "model_path", name, &m->model_path);
  if (!rc) rc = get_str(o, "config_hash", name, &m->config_hash);
  if (!rc) rc = get_str(o, "prompt", name, &m->prompt);
  if (!rc) rc = get_int(o, "rows_per_shard", 1, INT32_MAX, name, &m->rows_per_shard);
  if (!rc) rc = get_int(o, "total_rows", 0, INT64_MAX / 4, name, &m->total_rows);
  if (!rc) rc = get_int(o, "next_sample", 0, STORE_MAX_SAMPLE, name, &m->next_sample);
  if (!rc && sc_json_bool(sc_json_get(o, "complete"), &m->complete))
    rc = sc_error_setc(SC_ERR_MISSING, "%s: missing boolean 'complete'", name);
  m->layer = (int)layer;
  m->d = (int)d;
  return rc;
}

static int parse_root(const sc_json *o, const char *name, store_manifest *m) {
  if (!sc_json_is_object(o)) return sc_error_set("%s: not a JSON object", name);
  int rc = parse_header(o, name, m);
  if (rc) return rc;
  const sc_json *arr = sc_json_get(o, "shards");
  if (!sc_json_is_array(arr)) return sc_error_setc(SC_ERR_MISSING, "%s: missing array 'shards'", name);
  int n = sc_json_size(arr);
  if (n > STORE_MAX_SHARDS) return sc_error_setc(SC_ERR_RANGE, "%s: too many shards (%d)", name, n);
  m->shards = calloc((size_t)n + 1, sizeof *m->shards);
  if (!m->shards) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  m->n_shards = n;
  int k = 0;
  for (const sc_json *s = sc_json_first(arr); s && !rc; s = sc_json_next(s), k++)
    rc = parse_shard(s, name, k, &m->shards[k]);
  return rc ? rc : check_shards(m, name);
}

int store_manifest_parse(const char *buf, size_t len, const char *name, store_manifest *out) {
  memset(out, 0, sizeof *out);
  sc_json *root;
  int rc = sc_json_parse(buf, len, name, &root);
  if (rc) return rc;
  rc = parse_root(root, name, out);
  sc_json_free(root);
  if (rc) store_manifest_free(out);
  return rc;
}

int store_manifest_load(const char *dir, store_manifest *out) {
  memset(out, 0, sizeof *out);
  char *path = sc_path_join(dir, STORE_MANIFEST_NAME);
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  char *buf;
  size_t len;
  int rc = sc_read_file(path, STORE_MAX_MANIFEST_BYTES, &buf, &len);
  if (!rc) {
    rc = store_manifest_parse(buf, len, path, out);
    free(buf);
  }
  free(path);
  return rc;
}

/* ==== printing ========================================================== */

static sc_json *shard_json(const store_shard_info *s) {
  sc_json *o = sc_json_new_object();
  if (!o) return NULL;
  char sum[32];
  snprintf(sum, sizeof sum, "fnv1a64:%016" PRIx64, s->checksum);
  int ok = sc_json_add_str(o, "file", s->file) && sc_json_add_num(o, "rows", (double)s->rows) &&
           sc_json_add_num(o, "first_sample", (double)s->first_sample) &&
           sc_json_add_num(o, "last_sample", (double)s->last_sample) &&
           sc_json_add_num(o, "end_sample", (double)s->end_sample) &&
           sc_json_add_num(o, "bytes", (double)s->bytes) &&
           (s->has_checksum ? sc_json_add_str(o, "checksum", sum) != NULL
                            : sc_json_add(o, "checksum", sc_json_new_null()) != NULL);
  if (!ok) {
    sc_json_free(o);
    return NULL;
  }
  return o;
}

static int add_header(sc_json *o, const store_manifest *m) {
  return sc_json_add_str(o, "format", STORE_FORMAT) &&
         sc_json_add_num(o, "format_version", STORE_FORMAT_VERSION) &&
         sc_json_add_str(o, "saecap_version", m->saecap_version) &&
         sc_json_add_str(o, "language", m->language) && sc_json_add_num(o, "layer", m->layer) &&
         sc_json_add_num(o, "d", m->d) && sc_json_add_str(o, "dtype", sc_dtype_name(m->dtype)) &&
         sc_json_add_str(o, "model_path", m->model_path) &&
         sc_json_add_str(o, "config_hash", m->config_hash) &&
         sc_json_add_str(o, "prompt", m->prompt) &&
         sc_json_add_num(o, "rows_per_shard", (double)m->rows_per_shard) &&
         sc_json_add_num(o, "total_rows", (double)m->total_rows) &&
         sc_json_add_num(o, "next_sample", (double)m->next_sample) &&
         sc_json_add_bool(o, "complete", m->complete);
}

char *store_manifest_print(const store_manifest *m) {
  sc_json *o = sc_json_new_object();
  if (!o) return NULL;
  char *text = NULL;
  sc_json *arr = NULL;
  if (add_header(o, m)) arr = sc_json_add(o, "shards", sc_json_new_array());
  int ok = arr != NULL;
  for (int k = 0; ok && k < m->n_shards; k++) {
    sc_json *s = shard_json(&m->shards[k]);
    ok = s && sc_json_add(arr, NULL, s);
  }
  if (ok) text = sc_json_print(o, 1);
  sc_json_free(o);
  return text;
}
