/* cmd_prepare.c: placeholder until its module lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_prepare(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "saecap: prepare: not built yet\n");
  return 1;
}
