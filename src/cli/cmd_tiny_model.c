/* cmd_tiny_model.c: placeholder until its module lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_tiny_model(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "saecap: tiny_model: not built yet\n");
  return 1;
}
