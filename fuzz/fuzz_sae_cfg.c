/* fuzz_sae_cfg.c: libFuzzer target for the SAE folder configs: SAELens
 * cfg.json and Gemma Scope 2 config.json (sae_io.h). The first byte picks
 * the parser (even: SAELens, odd: Gemma Scope 2), the rest is the file.
 * Any bytes must give 0 or an error with a message, never a crash, a leak or
 * undefined behaviour; an accepted config must be within the limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "sae/sae_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int gemmascope = data[0] & 1;
  const char *buf = (const char *)data + 1;
  sae_cfg c;
  int rc = gemmascope ? sae_cfg_parse_gemmascope(buf, size - 1, "config.json", &c)
                      : sae_cfg_parse_saelens(buf, size - 1, "cfg.json", &c);
  if (rc) {
    if (!sc_error_get()[0]) abort(); /* every failure sets a message */
    return 0;
  }
  if (strlen(c.hook_name) >= SAE_NAME_MAX || strlen(c.model_name) >= SAE_NAME_MAX) abort();
  if (gemmascope) {
    if (c.arch != SAE_ARCH_JUMPRELU || c.n < 0 || c.n > SAE_MAX_N || c.apply_b_dec_to_input) abort();
  } else if (sae_cfg_check(&c, "cfg.json")) {
    abort(); /* the parser must only accept configs within the limits */
  }
  return 0;
}
