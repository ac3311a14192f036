/* stage.h: the study's stages, what each depends on, and its completion
 * record (used by `saecap run`, pipeline/run.h).
 *
 * Stages in order: prepare, extract, train, sae-eval, analyze, steer,
 * report. Each stage's hash is an FNV-1a 64 of the config sections it reads
 * (sc_config_yaml text), saecap's version and the hashes of the stages it
 * reads from, so a change anywhere upstream changes every hash below it:
 *
 *   stage     sections                upstream
 *   prepare   seed, data              -
 *   extract   model, extract          prepare
 *   train     train                   extract
 *   sae-eval  train                   train
 *   analyze   analyze                 train
 *   steer     steer                   analyze
 *   report    report                  sae-eval, analyze, steer
 *
 * output_dir and slurm change no hash (records live under output_dir).
 * The record <output_dir>/stages/<stage>.json (docs/results/stages.md) holds
 * the hash and "running" or "complete"; it is written atomically.
 */
#ifndef SC_STAGE_H
#define SC_STAGE_H

#include "pipeline/config.h"

typedef enum sc_stage_id {
  SC_STAGE_PREPARE,
  SC_STAGE_EXTRACT,
  SC_STAGE_TRAIN,
  SC_STAGE_SAE_EVAL,
  SC_STAGE_ANALYZE,
  SC_STAGE_STEER,
  SC_STAGE_REPORT,
  SC_N_STAGES
} sc_stage_id;

/* What a stage's record says. */
typedef enum sc_stage_state {
  SC_STAGE_NONE = 0,     /* no record */
  SC_STAGE_RUNNING = 1,  /* started, not finished (killed or failed) */
  SC_STAGE_COMPLETE = 2  /* its command exited 0 */
} sc_stage_state;

#define SC_STAGE_HASH_LEN 32 /* "fnv1a64:" + 16 hex + NUL, rounded up */

/* "prepare", "extract", "train", "sae-eval", "analyze", "steer", "report";
 * the CLI command of the stage has the same name. */
const char *sc_stage_name(int stage);
/* Stage id of a name, or -1. */
int sc_stage_parse(const char *name);

/* "fnv1a64:<16 hex>" into out. SC_ERR_NOMEM. */
int sc_stage_hash(const sc_config *c, int stage, char out[SC_STAGE_HASH_LEN]);

/* Reads <output_dir>/stages/<stage>.json. A missing file is SC_STAGE_NONE
 * (hash ""); a malformed one is SC_ERR_FORMAT naming it. */
int sc_stage_record_read(const sc_config *c, int stage, sc_stage_state *state,
                         char hash[SC_STAGE_HASH_LEN]);
/* Writes the record atomically (creates stages/). SC_ERR_IO names the file. */
int sc_stage_record_write(const sc_config *c, int stage, sc_stage_state state, const char *hash);

/* The stage's outputs, relative to output_dir, NULL-terminated; entries
 * may be glob patterns (activations.part-*). */
const char *const *sc_stage_outputs(int stage);
/* Removes every output of the stage (files and folders, recursively) and
 * its record. SC_ERR_IO names what could not be removed. */
int sc_stage_clean(const sc_config *c, int stage);

#endif
