/* fuzz_caption_rows.c: libFuzzer target for the analyze stage's reader of
 * captions/<lang>.jsonl (pipeline/analyze.h sc_caption_rows_parse). On
 * success every row is read back, so a bad pointer or length shows up. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pipeline/analyze.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sc_caption_row *rows = NULL;
  int64_t n = 0;
  if (sc_caption_rows_parse((const char *)data, size, "fuzz.jsonl", &rows, &n) != 0) {
    if (rows || n) __builtin_trap(); /* an error leaves nothing owned */
    return 0;
  }
  size_t total = 0;
  for (int64_t i = 0; i < n; i++) {
    total += strlen(rows[i].prompt) + strlen(rows[i].caption);
    for (int k = 0; k < rows[i].n_ids; k++)
      if (rows[i].ids[k] < 0) __builtin_trap();
    if (i && rows[i].sample_index <= rows[i - 1].sample_index) __builtin_trap();
  }
  (void)total;
  sc_caption_rows_free(rows, n);
  return 0;
}
