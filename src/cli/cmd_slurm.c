/* cmd_slurm.c: being written. */
#include "cli/cli.h"

int cmd_slurm(int argc, char **argv) {
  (void)argc, (void)argv;
  return cli_usage_error("slurm", "not implemented yet");
}
