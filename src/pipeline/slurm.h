/* slurm.h: sbatch scripts for the study (`saecap slurm`).
 *
 * Writes into out_dir, from the config's slurm: section:
 *   01_prepare.sbatch     saecap prepare
 *   02_extract.sbatch     job array 0..N-1 (N = slurm.extract_shards):
 *                         saecap extract --shard $((SLURM_ARRAY_TASK_ID+1))/N
 *   03_merge.sbatch       saecap merge-shards --shards N --remove-parts
 *   04_train.sbatch       job array over the training layers: saecap train --layer L
 *   05_sae_eval.sbatch, 06_analyze.sbatch, 07_steer.sbatch, 08_report.sbatch
 *   submit.sh             submits them in order with --dependency=afterok:<ids>
 *                         and prints "<stage> <job id>" lines; `submit.sh --from
 *                         STAGE [--after JOBID]` submits from STAGE onward (to
 *                         continue after resubmitting failed array tasks alone)
 *   logs/                 every job's output, <stage>-<job>[_<task>].out
 * Every job requests slurm.time, slurm.mem and slurm.cpus (passed on as
 * --threads); extract and steer also slurm.gpus (when > 0). Jobs run in the
 * folder `saecap slurm` ran in, so the config's relative paths mean the same,
 * with the config by its absolute path. Stages the binary lacks (has_command)
 * are left out of the chain and listed in the summary.
 */
#ifndef SC_SLURM_H
#define SC_SLURM_H

#include "pipeline/config.h"

#define SC_SLURM_MAX_JOBS 8

typedef struct sc_slurm_opts {
  const char *config_path;             /* the config file (made absolute) */
  const char *out_dir;                 /* where the scripts go (created) */
  const char *saecap;                  /* binary the jobs run (absolute); slurm.saecap wins if set */
  int (*has_command)(const char *name); /* NULL: every stage is there */
} sc_slurm_opts;

typedef struct sc_slurm_summary {
  int n_jobs;                          /* scripts in the chain */
  int n_train_layers;                  /* size of the train array */
  char left_out[128];                  /* stages left out ("analyze, steer"), "" if none */
  char *submit_path;                   /* owned: <out_dir>/submit.sh */
} sc_slurm_summary;

/* Writes the scripts (atomically each). The config should have passed
 * sc_config_check (model.path gives the layer count). Errors name the file
 * or key. */
int sc_slurm_write(const sc_config *cfg, const sc_slurm_opts *o, sc_slurm_summary *out);
void sc_slurm_summary_free(sc_slurm_summary *s);

#endif
