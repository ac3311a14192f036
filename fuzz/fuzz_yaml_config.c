/* fuzz_yaml_config.c: libFuzzer target for the YAML tree and the typed
 * config on top of it (pipeline/config.h). Success or failure, nothing may
 * leak or be read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "pipeline/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sc_config c;
  if (sc_config_parse((const char *)data, size, "fuzz.yaml", &c) == 0) sc_config_free(&c);
  /* On error parse has already freed c; a second free must be harmless. */
  sc_config_free(&c);
  return 0;
}
