/* cmd_config.c: being written. */
#include "cli/cli.h"

int cmd_config(int argc, char **argv) {
  (void)argc, (void)argv;
  return cli_usage_error("config", "not implemented yet");
}
