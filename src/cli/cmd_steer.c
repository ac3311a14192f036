/* cmd_steer.c: `saecap steer --config FILE`: the steering experiment. */
#include <stdio.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/steer.h"

static const char *const usage =
    "usage: saecap steer --config FILE\n\n"
    "Research question 3: does suppressing the gender features reduce gendered words in\n"
    "captions, and what does it cost? Per language of steer.languages, layer of\n"
    "steer.layers and k of steer.k, the images of steer.split are captioned (greedy, the\n"
    "prompts extract uses) under: no edit (baseline); the language's top-k gender features\n"
    "of results/feature_analysis.json edited with steer.mode (ablate | scale:A | clamp:V,\n"
    "error-preserving, or add:C) at every position; steer.random_controls random sets of\n"
    "k features matched to their firing frequency; the other language's top-k features.\n"
    "Per caption: male/female word counts (whole-word lexicon), neutral, length, and\n"
    "against the baseline caption: KL of the next-token distributions (teacher-forced),\n"
    "change of its log-likelihood, chrF. Writes:\n"
    "  results/steering_captions/<condition>.jsonl   one line per image\n"
    "  results/steering_experiments.json             paired differences vs baseline with\n"
    "                                                bootstrap CIs, targeted vs random tests\n"
    "A rerun skips conditions already written for the same config.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML): model.path, steer.*, extract.default_prompt_*\n"
    "  -h, --help      this text\n";

int cmd_steer(int argc, char **argv) {
  sc_config cfg;
  int st = cli_stage_config(argc, argv, "steer", usage, &cfg);
  if (st >= 0) return st;
  sc_steer_summary sum;
  int rc = sc_steer_run(&cfg, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  sc_info("steer: %d conditions x %lld images (%d computed, %d already written); wrote %s", sum.n_conditions,
          (long long)sum.n_samples, sum.n_run, sum.n_skipped, sum.results_path);
  sc_steer_summary_free(&sum);
  return 0;
}
