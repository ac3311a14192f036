/* results.c: loading the results JSON for the report (results.h). */
#include "report/results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"

static const char *const stems[REP_N_RESULTS] = {"sae_metrics", "cross_lingual_analysis",
                                                 "feature_analysis", "morphology_analysis",
                                                 "steering_experiments"};
static const char *const stages[REP_N_RESULTS] = {"sae-eval", "analyze", "analyze", "analyze", "steer"};

const char *rep_results_stem(rep_res_id id) { return id < REP_N_RESULTS ? stems[id] : "?"; }
const char *rep_results_stage(rep_res_id id) { return id < REP_N_RESULTS ? stages[id] : "?"; }

static void slot_reset(rep_results *r, rep_res_id id) {
  sc_json_free(r->r[id].root);
  memset(&r->r[id], 0, sizeof r->r[id]);
  r->r[id].stem = stems[id];
  r->r[id].stage = stages[id];
}

static void set_bad(rep_result *s, const char *why) {
  s->state = REP_RES_BAD;
  snprintf(s->why, sizeof s->why, "%s", why);
}

/* A parsed file must be an object whose "schema", when present, names it:
 * "saecap.<stem>/<version>". */
static void check_schema(rep_result *s) {
  const char *schema = rep_jstr(s->root, "schema");
  char want[80];
  snprintf(want, sizeof want, "saecap.%s/", s->stem);
  if (!sc_json_is_object(s->root)) set_bad(s, "the file is not a JSON object");
  else if (schema && strncmp(schema, want, strlen(want)) != 0) {
    char why[300];
    snprintf(why, sizeof why, "schema '%.120s' is not %s*", schema, want);
    set_bad(s, why);
  }
  if (s->state == REP_RES_BAD) {
    sc_json_free(s->root);
    s->root = NULL;
  }
}

int rep_results_parse(rep_results *r, rep_res_id id, const char *buf, size_t len) {
  slot_reset(r, id);
  rep_result *s = &r->r[id];
  int rc = sc_json_parse(buf, len, stems[id], &s->root);
  if (rc == SC_ERR_NOMEM) return rc;
  if (rc) {
    set_bad(s, sc_error_get());
    s->root = NULL;
    sc_error_clear();
    return 0;
  }
  s->state = REP_RES_OK;
  check_schema(s);
  return 0;
}

static int load_one(rep_results *r, rep_res_id id, const char *output_dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/results/%s.json", output_dir, stems[id]);
  slot_reset(r, id);
  if (!sc_is_file(path)) return 0; /* REP_RES_MISSING */
  char *buf = NULL;
  size_t len = 0;
  int rc = sc_read_file(path, REP_RESULTS_MAX_BYTES, &buf, &len);
  if (rc == SC_ERR_NOMEM) return rc;
  if (rc) {
    set_bad(&r->r[id], sc_error_get());
    sc_error_clear();
    return 0;
  }
  rc = rep_results_parse(r, id, buf, len);
  free(buf);
  return rc;
}

int rep_results_load(const char *output_dir, rep_results *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < REP_N_RESULTS; i++) slot_reset(out, (rep_res_id)i);
  for (int i = 0; i < REP_N_RESULTS; i++) {
    int rc = load_one(out, (rep_res_id)i, output_dir);
    if (rc) {
      rep_results_free(out);
      return rc;
    }
  }
  return 0;
}

void rep_results_free(rep_results *r) {
  if (!r) return;
  for (int i = 0; i < REP_N_RESULTS; i++) {
    sc_json_free(r->r[i].root);
    r->r[i].root = NULL;
    r->r[i].state = REP_RES_MISSING;
  }
}

/* ==== dotted paths ==== */

const sc_json *rep_j(const sc_json *obj, const char *path) {
  if (!obj || !path) return obj;
  const char *p = path;
  while (*p && obj) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    char key[128];
    if (n >= sizeof key) return NULL;
    memcpy(key, p, n);
    key[n] = 0;
    if (sc_json_is_array(obj)) {
      char *end;
      long i = strtol(key, &end, 10);
      if (!n || *end || i < 0 || i >= sc_json_size(obj)) return NULL;
      obj = sc_json_at(obj, (int)i);
    } else if (sc_json_is_object(obj)) {
      obj = sc_json_get(obj, key);
    } else
      return NULL;
    p = dot ? dot + 1 : p + n;
  }
  return obj;
}

double rep_jnum(const sc_json *obj, const char *path) {
  const sc_json *j = rep_j(obj, path);
  return j && sc_json_is_number(j) ? sc_json_num(j) : NAN;
}

const char *rep_jstr(const sc_json *obj, const char *path) {
  const sc_json *j = rep_j(obj, path);
  return j && sc_json_is_string(j) ? sc_json_str(j) : NULL;
}

int rep_jlen(const sc_json *obj, const char *path) {
  const sc_json *j = rep_j(obj, path);
  return j && (sc_json_is_array(j) || sc_json_is_object(j)) ? sc_json_size(j) : 0;
}
