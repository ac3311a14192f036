/* fuzz_turn_ids.c: libFuzzer target for sc_train_turn_ids (pipeline/train.h):
 * the bracket scan that cuts tokenizer.json's added_tokens array out of a
 * user's model folder and the lookup of the turn markers in it. Any bytes
 * must give 0 with at most two non-negative ids, or an error with a message;
 * never a crash, a read past the buffer, a leak or undefined behaviour. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "pipeline/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, so ASan sees any read past the end. */
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  int32_t ids[2] = {-1, -1};
  int n = -1;
  int rc = sc_train_turn_ids(buf, size, "tokenizer.json", ids, &n);
  free(buf);
  if (rc) {
    if (!sc_error_get()[0]) abort();
    return 0;
  }
  if (n < 0 || n > 2) abort();
  for (int i = 0; i < n; i++)
    if (ids[i] < 0) abort();
  return 0;
}
