/* fuzz_json_config.c: libFuzzer target for the Gemma-3 config.json reader.
 * Any bytes must give 0 or an error with a message, never a crash, a leak or
 * undefined behaviour; an accepted config must survive the writer and parse
 * back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/g3_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g3_config c, d;
  if (g3_config_parse((const char *)data, size, "fuzz.json", &c)) {
    if (!sc_error_get()[0]) abort(); /* every failure sets a message */
    return 0;
  }
  for (int form = 0; form < 2; form++) {
    char *text = g3_config_to_json(&c, (g3_config_form)form);
    if (!text) continue; /* out of memory */
    if (g3_config_parse(text, strlen(text), "fuzz.json", &d)) abort();
    if (d.text.num_hidden_layers != c.text.num_hidden_layers ||
        memcmp(d.text.is_sliding, c.text.is_sliding, (size_t)c.text.num_hidden_layers) != 0 ||
        d.text.rope_global.type != c.text.rope_global.type ||
        d.text.rope_global.factor != c.text.rope_global.factor ||
        d.mm_pool_kernel != c.mm_pool_kernel)
      abort();
    free(text);
  }
  return 0;
}
