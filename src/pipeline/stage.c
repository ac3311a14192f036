/* stage.c: stage names, hashes, records and outputs (see stage.h). */
#include "pipeline/stage.h"

#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/version.h"
#include "io/json.h"
#include "store/manifest.h"

#define STAGE_RECORD_SCHEMA "saecap.stages/1"
#define STAGE_RECORD_MAX_BYTES ((size_t)1 << 16)

static const char *const NAMES[SC_N_STAGES] = {"prepare", "extract", "train",  "sae-eval",
                                               "analyze", "steer",   "report"};

/* Config sections each stage reads (NULL-terminated). */
static const char *const SECTIONS[SC_N_STAGES][3] = {
    {"seed", "data", NULL}, {"model", "extract", NULL}, {"train", NULL}, {"train", NULL},
    {"analyze", NULL},      {"steer", NULL},            {"report", NULL}};

/* Stages each stage reads from, -1-terminated. */
static const int UPSTREAM[SC_N_STAGES][4] = {
    {-1},
    {SC_STAGE_PREPARE, -1},
    {SC_STAGE_EXTRACT, -1},
    {SC_STAGE_TRAIN, -1},
    {SC_STAGE_TRAIN, -1},
    {SC_STAGE_ANALYZE, -1},
    {SC_STAGE_SAE_EVAL, SC_STAGE_ANALYZE, SC_STAGE_STEER, -1}};

/* What each stage writes under output_dir; removed when its config changed. */
static const char *const OUT_PREPARE[] = {"data/processed", NULL};
static const char *const OUT_EXTRACT[] = {"activations", "captions", "activations.part-*",
                                          "captions.part-*", NULL};
static const char *const OUT_TRAIN[] = {"saes", NULL};
static const char *const OUT_SAE_EVAL[] = {"results/sae_metrics.json", NULL};
static const char *const OUT_ANALYZE[] = {"results/cross_lingual_analysis.json",
                                          "results/feature_analysis.json",
                                          "results/morphology_analysis.json", NULL};
static const char *const OUT_STEER[] = {"results/steering_experiments.json",
                                        "results/steering_captions", NULL};
static const char *const OUT_REPORT[] = {"visualizations", "report", NULL};
static const char *const *const OUTPUTS[SC_N_STAGES] = {
    OUT_PREPARE, OUT_EXTRACT, OUT_TRAIN, OUT_SAE_EVAL, OUT_ANALYZE, OUT_STEER, OUT_REPORT};

const char *sc_stage_name(int stage) {
  return stage >= 0 && stage < SC_N_STAGES ? NAMES[stage] : "?";
}

int sc_stage_parse(const char *name) {
  for (int i = 0; i < SC_N_STAGES; i++)
    if (name && !strcmp(name, NAMES[i])) return i;
  return -1;
}

const char *const *sc_stage_outputs(int stage) {
  static const char *const none[] = {NULL};
  return stage >= 0 && stage < SC_N_STAGES ? OUTPUTS[stage] : none;
}

/* Recursion is bounded by the stage graph's depth (7). */
static int hash_of(const sc_config *c, int stage, uint64_t *out) {
  char head[128];
  snprintf(head, sizeof head, "saecap %s\nstage %s\n", SAECAP_VERSION, NAMES[stage]);
  uint64_t h = store_fnv1a64(STORE_FNV_INIT, head, strlen(head));
  for (int i = 0; SECTIONS[stage][i]; i++) {
    char *y = sc_config_yaml(c, SECTIONS[stage][i]);
    if (!y) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
    h = store_fnv1a64(h, y, strlen(y) + 1);
    free(y);
  }
  for (int i = 0; UPSTREAM[stage][i] >= 0; i++) {
    uint64_t u;
    int rc = hash_of(c, UPSTREAM[stage][i], &u);
    if (rc) return rc;
    h = store_fnv1a64(h, &u, sizeof u);
  }
  *out = h;
  return 0;
}

int sc_stage_hash(const sc_config *c, int stage, char out[SC_STAGE_HASH_LEN]) {
  uint64_t h;
  int rc = hash_of(c, stage, &h);
  if (!rc) snprintf(out, SC_STAGE_HASH_LEN, "fnv1a64:%016llx", (unsigned long long)h);
  return rc;
}

static char *record_path(const sc_config *c, int stage) {
  char rel[64];
  snprintf(rel, sizeof rel, "stages/%s.json", NAMES[stage]);
  char *p = sc_path_join(c->output_dir, rel);
  if (!p) sc_error_setc(SC_ERR_NOMEM, "out of memory");
  return p;
}

int sc_stage_record_read(const sc_config *c, int stage, sc_stage_state *state,
                         char hash[SC_STAGE_HASH_LEN]) {
  *state = SC_STAGE_NONE;
  hash[0] = 0;
  char *path = record_path(c, stage);
  if (!path) return SC_ERR_NOMEM;
  if (!sc_is_file(path)) {
    free(path);
    return 0;
  }
  sc_json *j = NULL;
  int rc = sc_json_load(path, STAGE_RECORD_MAX_BYTES, &j);
  const char *st = NULL, *h = NULL, *schema = NULL;
  if (!rc) {
    schema = sc_json_str(sc_json_get(j, "schema"));
    st = sc_json_str(sc_json_get(j, "status"));
    h = sc_json_str(sc_json_get(j, "hash"));
    if (!schema || strcmp(schema, STAGE_RECORD_SCHEMA) || !st || !h || strlen(h) >= SC_STAGE_HASH_LEN ||
        (strcmp(st, "running") && strcmp(st, "complete")))
      rc = sc_error_setc(SC_ERR_FORMAT,
                         "%s: not a stage record (schema %s with status running|complete and a hash); "
                         "delete it to rerun the stage",
                         path, STAGE_RECORD_SCHEMA);
  }
  if (!rc) {
    *state = !strcmp(st, "complete") ? SC_STAGE_COMPLETE : SC_STAGE_RUNNING;
    snprintf(hash, SC_STAGE_HASH_LEN, "%s", h);
  }
  sc_json_free(j);
  free(path);
  return rc;
}

int sc_stage_record_write(const sc_config *c, int stage, sc_stage_state state, const char *hash) {
  char *path = record_path(c, stage);
  if (!path) return SC_ERR_NOMEM;
  char *dir = sc_path_join(c->output_dir, "stages");
  int rc = dir ? sc_mkdirs(dir) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  free(dir);
  char text[512];
  /* No time stamps: equal runs leave equal records. */
  int n = snprintf(text, sizeof text,
                   "{\n  \"schema\": \"%s\",\n  \"stage\": \"%s\",\n  \"status\": \"%s\",\n"
                   "  \"hash\": \"%s\",\n  \"saecap_version\": \"%s\"\n}\n",
                   STAGE_RECORD_SCHEMA, NAMES[stage],
                   state == SC_STAGE_COMPLETE ? "complete" : "running", hash, SAECAP_VERSION);
  if (!rc) rc = sc_write_file_atomic(path, text, (size_t)n);
  free(path);
  return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
  if (r && errno != ENOENT) {
    sc_error_setc(SC_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return 1; /* stops nftw */
  }
  return 0;
}

/* rm -rf path (a missing path is fine). */
static int remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st)) return 0;
  if (!S_ISDIR(st.st_mode)) return rm_entry(path, &st, FTW_F, NULL) ? SC_ERR_IO : 0;
  int r = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (r > 0) return SC_ERR_IO; /* rm_entry set the message */
  if (r < 0) return sc_error_setc(SC_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
  return 0;
}

int sc_stage_clean(const sc_config *c, int stage) {
  int rc = 0;
  for (const char *const *o = OUTPUTS[stage]; !rc && *o; o++) {
    char *pat = sc_path_join(c->output_dir, *o);
    if (!pat) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
    glob_t g;
    int gr = glob(pat, GLOB_NOSORT, NULL, &g);
    if (gr == 0)
      for (size_t i = 0; !rc && i < g.gl_pathc; i++) rc = remove_tree(g.gl_pathv[i]);
    else if (gr == GLOB_NOSPACE) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
    if (gr == 0) globfree(&g);
    free(pat);
  }
  char *rec = rc ? NULL : record_path(c, stage);
  if (!rc && !rec) rc = SC_ERR_NOMEM;
  if (!rc) rc = remove_tree(rec);
  free(rec);
  return rc;
}
