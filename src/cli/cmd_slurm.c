/* cmd_slurm.c: `saecap slurm --config FILE --out DIR [--submit]`. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/check.h"
#include "pipeline/config.h"
#include "pipeline/slurm.h"

static const char *const usage =
    "usage: saecap slurm --config FILE --out DIR [--submit]\n\n"
    "Checks the config (as 'saecap config --check') and writes sbatch scripts for the study\n"
    "from its slurm: section (partition, account, time, mem, cpus, gpus, extract_shards):\n"
    "  01_prepare  02_extract (job array over --shard I/N)  03_merge (merge-shards)\n"
    "  04_train (job array, one task per layer)  05_sae_eval  06_analyze  07_steer  08_report\n"
    "and DIR/submit.sh, which submits them in order with --dependency=afterok and prints\n"
    "'<stage> <job id>' lines. Job output goes to DIR/logs/. Jobs run in the current folder.\n"
    "A failed array task can be resubmitted alone ('sbatch --array=K DIR/02_extract.sbatch')\n"
    "and resumes; then 'DIR/submit.sh --from merge --after <its job id>' submits the rest.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML)\n"
    "  --out DIR       folder for the scripts (created)\n"
    "  --submit        also run DIR/submit.sh (needs sbatch) and print the job ids\n"
    "  -h, --help      this text\n";

int cmd_slurm(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *config_path = NULL, *out = NULL;
  int submit = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--submit")) submit = 1;
    else return cli_usage_error("slurm", "unexpected argument '%s'", argv[i]);
  }
  if (!config_path) return cli_usage_error("slurm", "--config FILE is required");
  if (!out) return cli_usage_error("slurm", "--out DIR is required");
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    sc_error_setc(SC_ERR_IO, "slurm: cannot find the saecap binary (/proc/self/exe); set slurm.saecap");
    return cli_fail();
  }
  exe[n] = 0;
  sc_config cfg;
  if (sc_config_load(config_path, &cfg)) return cli_fail();
  sc_slurm_opts o = {config_path, out, exe, cli_has_command};
  sc_slurm_summary sum = {0};
  int rc = sc_config_check(&cfg);
  if (!rc) rc = sc_slurm_write(&cfg, &o, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  sc_info("slurm: wrote %d job scripts and %s (train array: %d layers)", sum.n_jobs, sum.submit_path,
          sum.n_train_layers);
  if (sum.left_out[0]) sc_warn("slurm: not in this saecap build, left out of the chain: %s", sum.left_out);
  if (submit) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/bash", "bash", sum.submit_path, (char *)NULL);
      _exit(127);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws)) {
      sc_error_setc(SC_ERR_IO, "slurm: %s failed (its message is above; is sbatch on PATH and SLURM up?)",
                    sum.submit_path);
      rc = SC_ERR_IO;
    }
  }
  sc_slurm_summary_free(&sum);
  return rc ? cli_fail() : 0;
}
