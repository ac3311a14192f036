/* cmd_merge_shards.c: being written. */
#include "cli/cli.h"

int cmd_merge_shards(int argc, char **argv) {
  (void)argc, (void)argv;
  return cli_usage_error("merge_shards", "not implemented yet");
}
