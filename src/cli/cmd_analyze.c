/* cmd_analyze.c: `saecap analyze --config FILE [--force]`. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/analyze.h"
#include "pipeline/config.h"
#include "tensor/kernels.h"

static const char *const usage =
    "usage: saecap analyze --config FILE [--force]\n\n"
    "The gender analysis of the stored activations (issue 8), per layer of analyze.layers and\n"
    "language of extract.languages, on per-sample mean-pooled activations over analyze.segments\n"
    "(the first is primary) and the shared EN+AR SAE of the layer (saes/layer_<L>/):\n"
    "  results/cross_lingual_analysis.json  RQ1: gender directions, EN/AR cosine, probes, CKA\n"
    "  results/feature_analysis.json        RQ2: per-feature Cohen's d, Mann-Whitney, BH q,\n"
    "                                       language-specific features, top-k overlap vs a\n"
    "                                       permutation null, feature cards\n"
    "  results/morphology_analysis.json     RQ4: grammatical vs semantic gender features\n"
    "Samples whose prompt names a gender are listed and, by default\n"
    "(analyze.exclude_leaky_prompts), left out of every statistic. A rerun with the same\n"
    "config and inputs does nothing.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML): output_dir, seed, model.path (tokenizer),\n"
    "                  extract.languages, the analyze.* keys\n"
    "  --force         recompute even when the results are up to date\n"
    "  -h, --help      this text\n";

int cmd_analyze(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *config_path = NULL;
  sc_analyze_opts o = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc)
      config_path = argv[++i];
    else if (!strcmp(argv[i], "--force"))
      o.force = 1;
    else
      return cli_usage_error("analyze", "unexpected argument '%s'", argv[i]);
  }
  if (!config_path) return cli_usage_error("analyze", "--config FILE is required");
  sc_kernels_set_threads(cli_threads());
  sc_config cfg;
  if (sc_config_load(config_path, &cfg)) return cli_fail();
  sc_analyze_summary sum;
  int rc = sc_analyze_run(&cfg, &o, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  if (sum.up_to_date)
    sc_info("analyze: results in %s are up to date (same config and inputs)", sum.results_dir);
  else
    sc_info("analyze: %lld samples (%lld with a gendered prompt, %lld excluded), %d layers x %d languages; wrote %s",
            (long long)sum.n_samples, (long long)sum.n_leaky, (long long)sum.n_excluded, sum.n_layers, sum.n_langs,
            sum.results_dir);
  sc_analyze_summary_free(&sum);
  return 0;
}
