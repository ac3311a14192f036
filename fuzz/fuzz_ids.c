/* fuzz_ids.c: libFuzzer target for the token-id list parser behind
 * `forward --ids` / `generate --ids` (model/generate.h). On success every id
 * must lie inside the vocabulary it was checked against. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/generate.h"

#define FUZZ_VOCAB 262208

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int32_t *ids = NULL;
  int64_t n = 0;
  if (g3_ids_parse((const char *)data, size, "fuzz.ids", FUZZ_VOCAB, &ids, &n) == 0) {
    for (int64_t i = 0; i < n; i++)
      if (ids[i] < 0 || ids[i] >= FUZZ_VOCAB) __builtin_trap();
  }
  free(ids);
  return 0;
}
