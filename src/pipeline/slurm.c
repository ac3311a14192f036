/* slurm.c: sbatch scripts for the study (see slurm.h). */
#include "pipeline/slurm.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/version.h"
#include "model/g3_config.h"
#include "pipeline/check.h"

#define SLURM_SCRIPT_MAX 8192

/* One job of the chain. after: indices of the jobs it waits for, -1-ended. */
typedef struct slurm_job {
  const char *stage;   /* saecap command */
  const char *file;    /* script name */
  const char *var;     /* shell variable of its job id in submit.sh */
  int gpus;            /* requests slurm.gpus */
  int after[4];
} slurm_job;

enum { J_PREPARE, J_EXTRACT, J_MERGE, J_TRAIN, J_SAE_EVAL, J_ANALYZE, J_STEER, J_REPORT, N_JOBS };

static const slurm_job JOBS[N_JOBS] = {
    {"prepare", "01_prepare.sbatch", "prepare", 0, {-1}},
    {"extract", "02_extract.sbatch", "extract", 1, {J_PREPARE, -1}},
    {"merge-shards", "03_merge.sbatch", "merge", 0, {J_EXTRACT, -1}},
    {"train", "04_train.sbatch", "train", 0, {J_MERGE, -1}},
    {"sae-eval", "05_sae_eval.sbatch", "sae_eval", 0, {J_TRAIN, -1}},
    {"analyze", "06_analyze.sbatch", "analyze", 0, {J_TRAIN, -1}},
    {"steer", "07_steer.sbatch", "steer", 1, {J_ANALYZE, -1}},
    {"report", "08_report.sbatch", "report", 0, {J_SAE_EVAL, J_ANALYZE, J_STEER, -1}},
};

/* A growing text; failed stays set after an allocation failure. */
typedef struct sbuf {
  char *s;
  size_t len, cap;
  int failed;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(sbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if (b->s && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 1024;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->failed = 1;
      return;
    }
    b->s = s, b->cap = cap;
  }
}

/* The text as one single-quoted shell word ('a'\''b'). */
static void sb_quote(sbuf *b, const char *s) {
  sb_add(b, "'");
  for (; *s; s++) {
    if (*s == '\'') sb_add(b, "'\\''");
    else sb_add(b, "%c", *s);
  }
  sb_add(b, "'");
}

static int write_text(const char *dir, const char *name, sbuf *b, int exec) {
  if (b->failed) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  char *path = sc_path_join(dir, name);
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int rc = sc_write_file_atomic(path, b->s, b->len);
  if (!rc && exec && chmod(path, 0755)) rc = sc_error_setc(SC_ERR_IO, "%s: cannot make it executable", path);
  free(path);
  return rc;
}

/* The layers the train array covers: train.layers, "all" = the extracted ones. */
static int train_layers(const sc_config *cfg, int *layers, int *n) {
  g3_config g;
  int rc = g3_config_load(cfg->model.path, &g);
  if (rc) return rc;
  const char *list = strcmp(cfg->train.layers, "all") ? cfg->train.layers : cfg->extract.layers;
  const char *key = strcmp(cfg->train.layers, "all") ? "train.layers" : "extract.layers";
  return sc_config_layer_list(list, g.text.num_hidden_layers, key, layers, G3_MAX_LAYERS, n);
}

typedef struct slurm_ctx {
  const sc_config *cfg;
  const char *out_dir;   /* absolute */
  const char *config;    /* absolute */
  const char *saecap;    /* absolute */
  const char *cwd;
  int layers[G3_MAX_LAYERS], n_layers;
} slurm_ctx;

static void header(sbuf *b, const slurm_ctx *x, int j, const char *array) {
  const sc_config_slurm *s = &x->cfg->slurm;
  sb_add(b, "#!/bin/bash\n# %s: saecap %s for %s (written by `saecap slurm`, saecap %s)\n", JOBS[j].file,
         JOBS[j].stage, x->config, SAECAP_VERSION);
  sb_add(b, "#SBATCH --job-name=saecap-%s\n", JOBS[j].stage);
  sb_add(b, "#SBATCH --output=%s/logs/%s-%s.out\n", x->out_dir, JOBS[j].stage, array ? "%A_%a" : "%j");
  sb_add(b, "#SBATCH --chdir=%s\n", x->cwd);
  sb_add(b, "#SBATCH --time=%s\n#SBATCH --mem=%s\n#SBATCH --cpus-per-task=%llu\n#SBATCH --ntasks=1\n",
         s->time, s->mem, (unsigned long long)s->cpus);
  if (s->partition && *s->partition) sb_add(b, "#SBATCH --partition=%s\n", s->partition);
  if (s->account && *s->account) sb_add(b, "#SBATCH --account=%s\n", s->account);
  if (JOBS[j].gpus && s->gpus) sb_add(b, "#SBATCH --gres=gpu:%llu\n", (unsigned long long)s->gpus);
  if (array) sb_add(b, "#SBATCH --array=%s\n", array);
  sb_add(b, "set -euo pipefail\nsaecap=");
  sb_quote(b, x->saecap);
  sb_add(b, "\nconfig=");
  sb_quote(b, x->config);
  sb_add(b, "\nthreads=${SLURM_CPUS_PER_TASK:-%llu}\n", (unsigned long long)s->cpus);
}

static int write_job(const slurm_ctx *x, int j) {
  sbuf b = {0};
  char array[32];
  unsigned long long n = x->cfg->slurm.extract_shards;
  switch (j) {
  case J_EXTRACT:
    snprintf(array, sizeof array, "0-%llu", n - 1);
    header(&b, x, j, array);
    sb_add(&b,
           "# One contiguous slice of the samples per task; a failed task can be resubmitted\n"
           "# alone (sbatch --array=K %s) and resumes where it stopped.\n"
           "exec \"$saecap\" --threads \"$threads\" extract --config \"$config\" --shard "
           "$((SLURM_ARRAY_TASK_ID + 1))/%llu\n",
           JOBS[j].file, n);
    break;
  case J_MERGE:
    header(&b, x, j, NULL);
    sb_add(&b, "exec \"$saecap\" --threads \"$threads\" merge-shards --config \"$config\" --shards %llu "
               "--remove-parts\n", n);
    break;
  case J_TRAIN:
    snprintf(array, sizeof array, "0-%d", x->n_layers - 1);
    header(&b, x, j, array);
    sb_add(&b, "layers=(");
    for (int i = 0; i < x->n_layers; i++) sb_add(&b, "%s%d", i ? " " : "", x->layers[i]);
    sb_add(&b, ")\n# One SAE per task; a resubmitted task resumes from its last checkpoint.\n"
               "exec \"$saecap\" --threads \"$threads\" train --config \"$config\" --layer "
               "\"${layers[$SLURM_ARRAY_TASK_ID]}\"\n");
    break;
  default:
    header(&b, x, j, NULL);
    sb_add(&b, "exec \"$saecap\" --threads \"$threads\" %s --config \"$config\"\n", JOBS[j].stage);
  }
  int rc = write_text(x->out_dir, JOBS[j].file, &b, 0);
  free(b.s);
  return rc;
}

static int write_submit(const slurm_ctx *x, const int *in_chain) {
  sbuf b = {0};
  sb_add(&b,
         "#!/bin/bash\n"
         "# submit.sh: submits the study's jobs in order, each after the jobs it reads from\n"
         "# (--dependency=afterok), and prints \"<stage> <job id>\" per job.\n"
         "#   submit.sh                       the whole chain\n"
         "#   submit.sh --from STAGE [--after JOBID]\n"
         "#                                   STAGE and what follows it, the first job after JOBID\n"
         "#                                   (e.g. after resubmitting failed array tasks alone)\n"
         "# Stages: ");
  for (int j = 0; j < N_JOBS; j++)
    if (in_chain[j]) sb_add(&b, "%s ", JOBS[j].var);
  sb_add(&b,
         "\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nfrom=prepare after=\n"
         "while [ $# -gt 0 ]; do\n"
         "  case $1 in\n"
         "    --from) from=$2; shift 2 ;;\n"
         "    --after) after=$2; shift 2 ;;\n"
         "    *) echo \"submit.sh: unknown argument $1\" >&2; exit 2 ;;\n"
         "  esac\n"
         "done\n"
         "case $from in sae-eval) from=sae_eval ;; merge-shards) from=merge ;; esac\n"
         "on=0\n"
         "# sbatch --parsable prints \"id\" or \"id;cluster\".\n"
         "submit() { local out; out=$(sbatch --parsable \"$@\"); echo \"${out%%%%;*}\"; }\n"
         "deps() { local d=\"\" v; for v in \"$@\"; do [ -n \"$v\" ] && d=\"$d:$v\"; done\n"
         "  [ -n \"$after\" ] && d=\"$d:$after\"; [ -n \"$d\" ] && echo \"--dependency=afterok$d\"; }\n");
  for (int j = 0; j < N_JOBS; j++) {
    if (!in_chain[j]) continue;
    sb_add(&b, "%s=\n[ \"$from\" = %s ] && on=1\nif [ $on = 1 ]; then\n  %s=$(submit $(deps", JOBS[j].var,
           JOBS[j].var, JOBS[j].var);
    for (int k = 0; JOBS[j].after[k] >= 0; k++)
      if (in_chain[JOBS[j].after[k]]) sb_add(&b, " \"$%s\"", JOBS[JOBS[j].after[k]].var);
    sb_add(&b, ") %s)\n  echo \"%s $%s\"\nfi\n", JOBS[j].file, JOBS[j].var, JOBS[j].var);
  }
  sb_add(&b, "[ $on = 1 ] || { echo \"submit.sh: --from $from is not a stage of this chain\" >&2; exit 2; }\n");
  int rc = write_text(x->out_dir, "submit.sh", &b, 1);
  free(b.s);
  return rc;
}

int sc_slurm_write(const sc_config *cfg, const sc_slurm_opts *o, sc_slurm_summary *out) {
  memset(out, 0, sizeof *out);
  slurm_ctx x = {.cfg = cfg};
  char cwd[PATH_MAX], *config = NULL, *out_dir = NULL, *logs = NULL;
  int rc = sc_mkdirs(o->out_dir);
  if (!rc && !getcwd(cwd, sizeof cwd)) rc = sc_error_setc(SC_ERR_IO, "cannot read the current folder");
  if (!rc && !(config = realpath(o->config_path, NULL)))
    rc = sc_error_setc(SC_ERR_IO, "%s: cannot resolve its path", o->config_path);
  if (!rc && !(out_dir = realpath(o->out_dir, NULL)))
    rc = sc_error_setc(SC_ERR_IO, "%s: cannot resolve its path", o->out_dir);
  /* #SBATCH lines take no quoting: a path with blanks would be cut. */
  if (!rc && strpbrk(out_dir, " \t\n\"'\\"))
    rc = sc_error_setc(SC_ERR_ARG, "%s: --out: sbatch directives cannot hold a path with blanks or quotes", out_dir);
  if (!rc && strpbrk(cwd, " \t\n\"'\\"))
    rc = sc_error_setc(SC_ERR_ARG, "%s: the jobs' folder (the current one) has blanks or quotes, which "
                       "sbatch directives cannot hold", cwd);
  if (!rc && !(logs = sc_path_join(out_dir, "logs"))) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = sc_mkdirs(logs);
  if (!rc) rc = train_layers(cfg, x.layers, &x.n_layers);
  x.cwd = cwd, x.config = config, x.out_dir = out_dir;
  x.saecap = cfg->slurm.saecap && *cfg->slurm.saecap ? cfg->slurm.saecap : o->saecap;
  int in_chain[N_JOBS];
  for (int j = 0; j < N_JOBS; j++) {
    in_chain[j] = !o->has_command || o->has_command(JOBS[j].stage);
    if (in_chain[j]) continue;
    size_t l = strlen(out->left_out);
    snprintf(out->left_out + l, sizeof out->left_out - l, "%s%s", l ? ", " : "", JOBS[j].stage);
  }
  for (int j = 0; !rc && j < N_JOBS; j++)
    if (in_chain[j]) rc = write_job(&x, j), out->n_jobs++;
  if (!rc) rc = write_submit(&x, in_chain);
  if (!rc && !(out->submit_path = sc_path_join(out_dir, "submit.sh"))) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  out->n_train_layers = x.n_layers;
  free(config), free(out_dir), free(logs);
  if (rc) sc_slurm_summary_free(out);
  return rc;
}

void sc_slurm_summary_free(sc_slurm_summary *s) {
  free(s->submit_path);
  s->submit_path = NULL;
}
