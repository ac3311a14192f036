/* json.c: cJSON behind the sc_json seam (see json.h). */
#include "io/json.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "base/fs.h"

static void locate(const char *buf, const char *at, int *line, int *col) {
  *line = 1;
  *col = 1;
  for (const char *p = buf; p < at; p++) {
    if (*p == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

int sc_json_parse(const char *buf, size_t len, const char *name, sc_json **out) {
  *out = NULL;
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
  if (!j) {
    int line, col;
    const char *at = end ? end : buf;
    if (at < buf || at > buf + len) at = buf + len;
    locate(buf, at, &line, &col);
    return sc_error_set("%s: malformed JSON at line %d, column %d", name, line, col);
  }
  const char *e = end ? end : buf + len;
  while (e < buf + len && (*e == ' ' || *e == '\t' || *e == '\n' || *e == '\r')) e++;
  if (e < buf + len && !(*e == '\0' && e == buf + len - 1)) {
    int line, col;
    locate(buf, e, &line, &col);
    cJSON_Delete(j);
    return sc_error_set("%s: malformed JSON at line %d, column %d: unexpected text after the value",
                        name, line, col);
  }
  *out = j;
  return 0;
}

int sc_json_load(const char *path, size_t max_bytes, sc_json **out) {
  char *buf;
  size_t len;
  *out = NULL;
  int rc = sc_read_file(path, max_bytes, &buf, &len);
  if (rc) return rc;
  rc = sc_json_parse(buf, len, path, out);
  free(buf);
  return rc;
}

void sc_json_free(sc_json *j) { cJSON_Delete(j); }

int sc_json_is_object(const sc_json *j) { return cJSON_IsObject(j); }
int sc_json_is_array(const sc_json *j) { return cJSON_IsArray(j); }
int sc_json_is_string(const sc_json *j) { return cJSON_IsString(j); }
int sc_json_is_number(const sc_json *j) { return cJSON_IsNumber(j); }
int sc_json_is_bool(const sc_json *j) { return cJSON_IsBool(j); }
int sc_json_is_null(const sc_json *j) { return cJSON_IsNull(j); }

sc_json *sc_json_get(const sc_json *obj, const char *key) {
  if (!cJSON_IsObject(obj)) return NULL;
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

int sc_json_size(const sc_json *j) {
  if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) return 0;
  return cJSON_GetArraySize(j);
}

sc_json *sc_json_at(const sc_json *j, int i) {
  if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) return NULL;
  return cJSON_GetArrayItem(j, i);
}

sc_json *sc_json_first(const sc_json *j) {
  if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) return NULL;
  return j->child;
}

sc_json *sc_json_next(const sc_json *j) { return j ? j->next : NULL; }
const char *sc_json_key(const sc_json *j) { return j ? j->string : NULL; }

const char *sc_json_str(const sc_json *j) { return cJSON_IsString(j) ? j->valuestring : NULL; }
double sc_json_num(const sc_json *j) { return cJSON_IsNumber(j) ? j->valuedouble : 0.0; }

int sc_json_i64(const sc_json *j, int64_t *out) {
  if (!cJSON_IsNumber(j)) return SC_ERR_FORMAT;
  double v = j->valuedouble;
  if (!isfinite(v) || v != floor(v) || fabs(v) > 9007199254740992.0) return SC_ERR_FORMAT;
  *out = (int64_t)v;
  return 0;
}

int sc_json_bool(const sc_json *j, int *out) {
  if (!cJSON_IsBool(j)) return SC_ERR_FORMAT;
  *out = cJSON_IsTrue(j) ? 1 : 0;
  return 0;
}

sc_json *sc_json_new_object(void) { return cJSON_CreateObject(); }
sc_json *sc_json_new_array(void) { return cJSON_CreateArray(); }
sc_json *sc_json_new_str(const char *s) { return cJSON_CreateString(s); }
sc_json *sc_json_new_num(double v) { return cJSON_CreateNumber(v); }
sc_json *sc_json_new_bool(int v) { return cJSON_CreateBool(v); }
sc_json *sc_json_new_null(void) { return cJSON_CreateNull(); }

sc_json *sc_json_add(sc_json *parent, const char *key, sc_json *child) {
  if (!parent || !child) {
    cJSON_Delete(child);
    return NULL;
  }
  cJSON_bool ok = key ? cJSON_AddItemToObject(parent, key, child)
                      : cJSON_AddItemToArray(parent, child);
  if (!ok) {
    cJSON_Delete(child);
    return NULL;
  }
  return child;
}

sc_json *sc_json_add_str(sc_json *obj, const char *key, const char *s) {
  return sc_json_add(obj, key, cJSON_CreateString(s));
}
sc_json *sc_json_add_num(sc_json *obj, const char *key, double v) {
  return sc_json_add(obj, key, cJSON_CreateNumber(v));
}
sc_json *sc_json_add_bool(sc_json *obj, const char *key, int v) {
  return sc_json_add(obj, key, cJSON_CreateBool(v));
}

char *sc_json_print(const sc_json *j, int pretty) {
  return pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
}
