/* cmd_inspect.c: placeholder until its module lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_inspect(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "saecap: inspect: not built yet\n");
  return 1;
}
