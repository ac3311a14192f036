/* fuzz_config_check.c: libFuzzer target for the semantic config checks
 * (pipeline/check.h: SLURM time and mem syntax, steer.mode, layer and
 * language lists) and for sc_config_yaml. A config that parses must print
 * to YAML that parses back and prints the same text (the printer and the
 * parser agree on every value), whatever the checks say. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/check.h"
#include "pipeline/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sc_config c;
  if (sc_config_parse((const char *)data, size, "/nonexistent/fuzz.yaml", &c)) return 0;
  (void)sc_config_check(&c);
  char *y = sc_config_yaml(&c, NULL);
  if (y) {
    sc_config c2;
    if (sc_config_parse(y, strlen(y), "printed.yaml", &c2)) abort(); /* printed text must parse */
    char *y2 = sc_config_yaml(&c2, NULL);
    if (y2 && strcmp(y, y2)) abort();
    free(y2);
    sc_config_free(&c2);
  }
  free(y);
  sc_config_free(&c);
  return 0;
}
