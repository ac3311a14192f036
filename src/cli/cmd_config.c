/* cmd_config.c: `saecap config --check FILE`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"
#include "pipeline/check.h"
#include "pipeline/config.h"

static const char *const usage =
    "usage: saecap config --check FILE\n\n"
    "Validates a study config: the schema (unknown keys, types, ranges; see README), then\n"
    "what the stages will need: model.path is a checkpoint folder with config.json and every\n"
    "layer list fits it, data.captions_csv and data.images_dir exist, language, layer and\n"
    "segment lists, steer.k and steer.mode (ablate | scale:A | clamp:V | add:C), and the\n"
    "SLURM resources (time [D-]HH:MM:SS, mem like 32G, cpus >= 1, extract_shards >= 1).\n"
    "On success prints every key with its resolved value (defaults filled) as YAML on\n"
    "stdout; on failure one line naming the file, the line and the key.\n\n"
    "options:\n"
    "  --check FILE    the config to check\n"
    "  -h, --help      this text\n";

int cmd_config(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--check") && i + 1 < argc) path = argv[++i];
    else return cli_usage_error("config", "unexpected argument '%s'", argv[i]);
  }
  if (!path) return cli_usage_error("config", "--check FILE is required");
  sc_config cfg;
  if (sc_config_load(path, &cfg)) return cli_fail();
  int rc = sc_config_check(&cfg);
  char *yaml = rc ? NULL : sc_config_yaml(&cfg, NULL);
  if (!rc && !yaml) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) printf("# %s: resolved config (every key, defaults filled)\n%s", path, yaml);
  free(yaml);
  sc_config_free(&cfg);
  return rc ? cli_fail() : 0;
}
