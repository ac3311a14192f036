/* cmd_sae_eval.c: `saecap sae-eval --config FILE`. */
#include <stdio.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/sae_eval.h"

static const char *const usage =
    "usage: saecap sae-eval --config FILE\n\n"
    "Measures every SAE `saecap train` wrote for the config on the held-out split\n"
    "(train.eval_split, at most train.eval_max_rows rows per language; 0 = all), per SAE\n"
    "and per language: MSE, FVU (about the mean), explained variance (and SAEBench's\n"
    "legacy one), L0, dead and dense fractions, cosine, l2 ratio; with train.ce_loss the\n"
    "model is run teacher-forced over each sample's prompt + caption clean, with the SAE\n"
    "reconstruction spliced in at the layer, and zero-ablated: CE loss recovered.\n"
    "Writes results/sae_metrics.json (docs/results/sae_metrics.md).\n\n"
    "options:\n"
    "  --config FILE   study config (YAML); the train.* keys\n"
    "  -h, --help      this text\n";

int cmd_sae_eval(int argc, char **argv) {
  sc_config cfg;
  int st = cli_stage_config(argc, argv, "sae-eval", usage, &cfg);
  if (st >= 0) return st;
  sc_sae_eval_summary sum;
  int rc = sc_sae_eval_run(&cfg, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  sc_info("sae-eval: %d SAEs, %d (SAE, language) pairs; wrote %s", sum.n_saes, sum.n_entries, sum.path);
  sc_sae_eval_summary_free(&sum);
  return 0;
}
