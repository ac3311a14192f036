/* cmd_merge_shards.c: `saecap merge-shards --config FILE --shards N [--remove-parts]`. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/merge.h"

static const char *const usage =
    "usage: saecap merge-shards --config FILE --shards N [--remove-parts]\n\n"
    "Joins the outputs of 'saecap extract --shard I/N' for I = 1..N\n"
    "(activations.part-I-of-N/, captions.part-I-of-N/) into activations/ and captions/,\n"
    "exactly as one 'saecap extract' run writes them (same shards, manifests and caption\n"
    "files), so training and analysis read one layout. Fails, naming it, when a part is\n"
    "missing or incomplete; a rerun continues an interrupted merge.\n\n"
    "options:\n"
    "  --config FILE    study config (YAML)\n"
    "  --shards N       the N of the extract runs\n"
    "  --remove-parts   delete the part folders once everything is merged\n"
    "  -h, --help       this text\n";

int cmd_merge_shards(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *config_path = NULL;
  long long n = 0;
  int remove = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
    else if (!strcmp(argv[i], "--shards") && i + 1 < argc) {
      if (cli_parse_int(argv[++i], 1, 100000, &n))
        return cli_usage_error("merge-shards", "--shards: '%s' is not a number from 1 to 100000", argv[i]);
    } else if (!strcmp(argv[i], "--remove-parts")) remove = 1;
    else return cli_usage_error("merge-shards", "unexpected argument '%s'", argv[i]);
  }
  if (!config_path) return cli_usage_error("merge-shards", "--config FILE is required");
  if (!n) return cli_usage_error("merge-shards", "--shards N is required");
  sc_config cfg;
  if (sc_config_load(config_path, &cfg)) return cli_fail();
  sc_merge_summary sum;
  int rc = sc_merge_shards(&cfg, (int)n, remove, &sum);
  if (!rc)
    sc_info("merge-shards: %d activation folders (%lld rows) and %lld caption lines merged under %s",
            sum.n_dirs, (long long)sum.rows, (long long)sum.captions, cfg.output_dir);
  sc_config_free(&cfg);
  return rc ? cli_fail() : 0;
}
