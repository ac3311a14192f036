/* samples.c: samples.jsonl loader (see samples.h). */
#include "store/samples.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"
#include "pipeline/prepare.h"
#include "store/manifest.h"

void store_samples_free(store_samples *s) {
  if (!s) return;
  for (int64_t i = 0; i < s->n && s->rows; i++) free(s->rows[i].image_id);
  free(s->rows);
  s->rows = NULL;
  s->n = 0;
}

static int parse_split(const char *s) {
  for (int i = 0; s && i < SC_N_SPLITS; i++)
    if (!strcmp(s, sc_split_name(i))) return i;
  return -1;
}

static int str_field(const sc_json *o, const char *key, const char *name, int64_t line,
                     const char **out) {
  *out = sc_json_str(sc_json_get(o, key));
  if (!*out)
    return sc_error_setc(SC_ERR_MISSING, "%s: line %" PRId64 ": missing string '%s'", name, line, key);
  return 0;
}

static int row_from_json(const sc_json *o, const char *name, int64_t line, int64_t prev,
                         store_sample *r) {
  if (!sc_json_is_object(o)) return sc_error_set("%s: line %" PRId64 ": not a JSON object", name, line);
  const sc_json *ji = sc_json_get(o, "sample_index");
  if (!ji) return sc_error_setc(SC_ERR_MISSING, "%s: line %" PRId64 ": missing 'sample_index'", name, line);
  if (sc_json_i64(ji, &r->sample_index) || r->sample_index < 0 || r->sample_index > STORE_MAX_SAMPLE)
    return sc_error_setc(SC_ERR_RANGE, "%s: line %" PRId64 ": bad sample_index", name, line);
  if (r->sample_index <= prev)
    return sc_error_set("%s: line %" PRId64 ": sample_index %" PRId64 " not above %" PRId64, name,
                        line, r->sample_index, prev);
  const char *split, *label, *id;
  int rc = str_field(o, "split", name, line, &split);
  if (!rc) rc = str_field(o, "ground_truth_gender", name, line, &label);
  if (!rc) rc = str_field(o, "image_id", name, line, &id);
  if (rc) return rc;
  if ((r->split = parse_split(split)) < 0)
    return sc_error_set("%s: line %" PRId64 ": unknown split '%s'", name, line, split);
  if ((r->label = sc_label_parse(label)) < 0)
    return sc_error_set("%s: line %" PRId64 ": unknown label '%s'", name, line, label);
  r->image_id = strdup(id);
  return r->image_id ? 0 : sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
}

static int is_blank(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
  return 1;
}

static int64_t count_lines(const char *buf, size_t len) {
  int64_t n = 1;
  for (size_t i = 0; i < len; i++) n += buf[i] == '\n';
  return n;
}

static int parse_line(const char *p, size_t n, const char *name, int64_t line, store_samples *out) {
  char where[1100];
  snprintf(where, sizeof where, "%s: line %" PRId64, name, line);
  sc_json *j;
  int rc = sc_json_parse(p, n, where, &j);
  if (rc) return rc;
  int64_t prev = out->n ? out->rows[out->n - 1].sample_index : -1;
  rc = row_from_json(j, name, line, prev, &out->rows[out->n]);
  sc_json_free(j);
  if (!rc) out->n++;
  return rc;
}

int store_samples_parse(const char *buf, size_t len, const char *name, store_samples *out) {
  memset(out, 0, sizeof *out);
  out->rows = calloc((size_t)count_lines(buf, len), sizeof *out->rows);
  if (!out->rows) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  int rc = 0;
  int64_t line = 0;
  for (size_t at = 0; at < len && !rc;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - buf) : len;
    line++;
    if (!is_blank(buf + at, end - at)) rc = parse_line(buf + at, end - at, name, line, out);
    at = end + 1;
  }
  if (rc) store_samples_free(out);
  return rc;
}

int store_samples_load(const char *path, store_samples *out) {
  memset(out, 0, sizeof *out);
  char *buf;
  size_t len;
  int rc = sc_read_file(path, STORE_MAX_SAMPLES_BYTES, &buf, &len);
  if (rc) return rc;
  rc = store_samples_parse(buf, len, path, out);
  free(buf);
  return rc;
}

int store_samples_split_of(const store_samples *s, int8_t **out, int64_t *n) {
  *out = NULL;
  *n = s->n ? s->rows[s->n - 1].sample_index + 1 : 0;
  if (*n > STORE_MAX_SPLIT_OF)
    return sc_error_setc(SC_ERR_RANGE, "samples: sample_index %" PRId64 " too large", *n - 1);
  *out = malloc((size_t)(*n ? *n : 1));
  if (!*out) return sc_error_setc(SC_ERR_NOMEM, "samples: out of memory");
  memset(*out, -1, (size_t)*n);
  for (int64_t i = 0; i < s->n; i++) (*out)[s->rows[i].sample_index] = (int8_t)s->rows[i].split;
  return 0;
}
