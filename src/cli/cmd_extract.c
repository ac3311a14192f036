/* cmd_extract.c: `saecap extract --config FILE [--shard I/N]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/extract.h"
#include "tensor/kernels.h"

static const char *const usage =
    "usage: saecap extract --config FILE [--shard I/N]\n\n"
    "For every sample of <output_dir>/data/processed/samples.jsonl (written by prepare):\n"
    "runs the image through the vision tower once, then per language of extract.languages\n"
    "captions it greedily from the IT chat prompt with the image and the row's instruction\n"
    "(never a caption), capturing resid_post at every layer of extract.layers over the\n"
    "prompt and the caption in one pass. Writes (docs/store.md):\n"
    "  activations/<lang>/layer_<L>/shard_*.safetensors + manifest.json\n"
    "  captions/<lang>.jsonl (+ <lang>.state.json)\n"
    "A rerun after an interruption (even kill -9) resumes and ends with the same bytes.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML); model.path and the extract.* keys\n"
    "  --shard I/N     only the I-th of N contiguous slices of the samples (SLURM arrays),\n"
    "                  written to activations.part-I-of-N/ and captions.part-I-of-N/\n"
    "  -h, --help      this text\n";

/* "I/N" with 1 <= I <= N <= 100000; 0 or -1. */
static int parse_shard(const char *s, sc_extract_opts *o) {
  const char *slash = strchr(s, '/');
  char buf[16];
  long long i, n;
  if (!slash || (size_t)(slash - s) >= sizeof buf) return -1;
  snprintf(buf, sizeof buf, "%.*s", (int)(slash - s), s);
  if (cli_parse_int(buf, 1, 100000, &i) || cli_parse_int(slash + 1, 1, 100000, &n) || i > n) return -1;
  o->shard = (int)i;
  o->n_shards = (int)n;
  return 0;
}

int cmd_extract(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *config_path = NULL;
  sc_extract_opts o = {1, 1};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
    else if (!strcmp(argv[i], "--shard") && i + 1 < argc) {
      if (parse_shard(argv[++i], &o))
        return cli_usage_error("extract", "--shard: '%s' is not I/N with 1 <= I <= N", argv[i]);
    } else return cli_usage_error("extract", "unexpected argument '%s'", argv[i]);
  }
  if (!config_path) return cli_usage_error("extract", "--config FILE is required");
  sc_kernels_set_threads(cli_threads());
  sc_config cfg;
  if (sc_config_load(config_path, &cfg)) return cli_fail();
  sc_extract_summary sum;
  int rc = sc_extract_run(&cfg, &o, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  sc_info("extract: vision tower ran %lld times for %lld samples (%lld computed by this run)",
          (long long)sum.vision_runs, (long long)sum.n_samples, (long long)sum.n_run);
  sc_info("extract: %lld rows for %d languages x %d layers; wrote %s and %s", (long long)sum.rows,
          sum.n_langs, sum.n_layers, sum.activations_dir, sum.captions_dir);
  sc_extract_summary_free(&sum);
  return 0;
}
