/* results.h: the report's view of <output_dir>/results/ JSON files, tolerant by
 * design.
 *
 * Each results file is either present and parsed (REP_RES_OK), absent
 * (REP_RES_MISSING: the stage did not run) or unreadable (REP_RES_BAD: too
 * large, malformed, or a schema this report does not know; `why` says
 * which). None of these is an error: the report shows the state. Getters
 * take a dotted path ("layers.0.languages.en.ranking") where a number
 * component indexes an array; a missing key or a value of another type
 * gives NaN / NULL, never a failure.
 */
#ifndef SC_REP_RESULTS_H
#define SC_REP_RESULTS_H

#include <stddef.h>

#include "io/json.h"

typedef enum rep_res_id {
  REP_SAE_METRICS = 0,   /* results/sae_metrics.json (train / sae-eval) */
  REP_CROSSLING,         /* results/cross_lingual_analysis.json (analyze, RQ1) */
  REP_FEATURES,          /* results/feature_analysis.json (analyze, RQ2) */
  REP_MORPHOLOGY,        /* results/morphology_analysis.json (analyze, RQ4) */
  REP_STEERING,          /* results/steering_experiments.json (steer, RQ3) */
  REP_N_RESULTS
} rep_res_id;

typedef enum rep_res_state { REP_RES_MISSING = 0, REP_RES_OK = 1, REP_RES_BAD = 2 } rep_res_state;

typedef struct rep_result {
  const char *stem;   /* "sae_metrics", ... (static) */
  const char *stage;  /* the command that writes it (static) */
  rep_res_state state;
  char why[400];      /* REP_RES_BAD: the reason (one line) */
  sc_json *root;      /* REP_RES_OK: the parsed file (owned) */
} rep_result;

typedef struct rep_results {
  rep_result r[REP_N_RESULTS];
} rep_results;

/* Largest results file read (bigger ones are REP_RES_BAD). */
#define REP_RESULTS_MAX_BYTES ((size_t)256 << 20)

/* Reads every file under <output_dir>/results/. Only SC_ERR_NOMEM fails. */
int rep_results_load(const char *output_dir, rep_results *out);
/* Parses one file's bytes into slot id (replacing what it held): the
 * memory form of the loader, for tests and fuzzers. SC_ERR_NOMEM only. */
int rep_results_parse(rep_results *r, rep_res_id id, const char *buf, size_t len);
void rep_results_free(rep_results *r);

/* Static names of a slot. */
const char *rep_results_stem(rep_res_id id);
const char *rep_results_stage(rep_res_id id);

/* Tolerant getters over a dotted path (NULL obj or path "" = obj itself). */
const sc_json *rep_j(const sc_json *obj, const char *path);
double rep_jnum(const sc_json *obj, const char *path);      /* NaN unless a number */
const char *rep_jstr(const sc_json *obj, const char *path); /* NULL unless a string */
int rep_jlen(const sc_json *obj, const char *path);         /* array/object size, else 0 */

#endif
