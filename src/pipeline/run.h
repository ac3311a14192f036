/* run.h: `saecap run`: the stages prepare -> extract -> train -> sae-eval ->
 * analyze -> steer -> report in order, each as its own process
 * (`<exe> [global args] <stage> --config FILE`), skipping those already done
 * for this config.
 *
 * A stage is up to date when its record (pipeline/stage.h) is "complete"
 * with the stage's current hash; it is then skipped with a log line. A
 * stage whose record holds another hash (its config sections or an
 * upstream stage changed) has its outputs removed before it runs, so a
 * resume never mixes two configs; a "running" record with the current
 * hash (an interrupted run) is resumed as is, the stage's own resume doing
 * the rest. The decision uses only the records and the stage's exit status
 * (0 = outputs complete), never the stages' internals.
 *
 * A lock (<output_dir>/stages/.lock, flock, inherited by the running
 * stage) keeps two runs off one output_dir. Each child dies with the run (PR_SET_PDEATHSIG), so killing
 * the run never leaves a stage writing behind a later one.
 */
#ifndef SC_RUN_H
#define SC_RUN_H

#include "pipeline/config.h"
#include "pipeline/stage.h"

typedef struct sc_run_opts {
  int from, to;                    /* first and last stage, inclusive */
  int force;                       /* rerun [from, to] even if up to date (outputs removed first) */
  const char *config_path;         /* handed to each stage command */
  const char *exe;                 /* the saecap binary, e.g. "/proc/self/exe" */
  const char *const *global_args;  /* NULL-terminated options put before the stage name, or NULL */
  int (*has_command)(const char *name); /* 1 if exe has the command; NULL: assume yes */
} sc_run_opts;

typedef struct sc_run_summary {
  int ran[SC_N_STAGES];        /* 1: the stage's command ran (and exited 0) */
  int skipped[SC_N_STAGES];    /* 1: up to date, not run */
  double seconds[SC_N_STAGES]; /* wall time of the stages that ran */
} sc_run_summary;

/* Runs the stages. Errors (one line): SC_ERR_ARG "run: stage 'S' is not in
 * this saecap build (no 'saecap S' command); ..." (checked before anything
 * runs), "run: --from S comes after --to T"; SC_ERR_IO "<lock>: another
 * saecap run is using <output_dir>", "run: stage S failed: 'saecap S'
 * exited with status N (its message is above); rerun to resume", stage
 * record and output-removal errors naming the file. *sum is zeroed first. */
int sc_run(const sc_config *cfg, const sc_run_opts *o, sc_run_summary *sum);

#endif
