/* cmd_train.c: `saecap train --config FILE [--layer L]`. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/train.h"
#include "tensor/kernels.h"

static const char *const usage =
    "usage: saecap train --config FILE [--layer L]\n\n"
    "Trains one sparse autoencoder per layer of train.layers ('all': every extracted layer) on\n"
    "the stored resid_post rows of train.languages together (train.per_language: one per\n"
    "language), keeping the rows of train.segments, never special tokens (<bos>, turn\n"
    "markers, <start_of_image>/<end_of_image>, eos/pad), and only samples of the train split,\n"
    "shuffled with a buffer of train.shuffle_buffer rows. Writes, per SAE:\n"
    "  saes/layer_<L>/ (per language: saes/<lang>/layer_<L>/) cfg.json, sae_weights.safetensors\n"
    "  (SAELens v6), sparsity.safetensors, trainer_state.safetensors, training_log.jsonl\n"
    "A finished SAE is skipped on rerun; an interrupted one (even kill -9) resumes from its\n"
    "last state and ends with the same bytes.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML); the train.* keys\n"
    "  --layer L       only layer L\n"
    "  -h, --help      this text\n";

int cmd_train(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *config_path = NULL;
  sc_train_opts o = {-1};
  for (int i = 1; i < argc; i++) {
    long long l;
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
    else if (!strcmp(argv[i], "--layer") && i + 1 < argc) {
      if (cli_parse_int(argv[++i], 0, SC_TRAIN_MAX_LAYERS - 1, &l))
        return cli_usage_error("train", "--layer: '%s' is not a layer number", argv[i]);
      o.layer = (int)l;
    } else return cli_usage_error("train", "unexpected argument '%s'", argv[i]);
  }
  if (!config_path) return cli_usage_error("train", "--config FILE is required");
  sc_kernels_set_threads(cli_threads());
  sc_config cfg;
  if (sc_config_load(config_path, &cfg)) return cli_fail();
  sc_train_summary sum;
  int rc = sc_train_run(&cfg, &o, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  sc_info("train: %d SAEs: %d trained (%d resumed), %d already finished; %lld steps run", sum.n_saes,
          sum.n_trained, sum.n_resumed, sum.n_skipped, (long long)sum.steps);
  return 0;
}
