/* fuzz_csv.c: libFuzzer target for the CSV reader (io/csv.h). On success
 * every field is read, so a pointer past the text block shows up in ASan. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sc_csv *t = NULL;
  if (sc_csv_parse((const char *)data, size, "fuzz.csv", &t) != 0) return 0;
  size_t total = 0;
  for (int c = 0; c < t->n_cols; c++) total += strlen(t->header[c]);
  for (int r = 0; r < t->n_rows; r++)
    for (int c = 0; c < t->n_cols; c++) total += strlen(t->rows[r].fields[c]);
  /* The unquoted text can never be longer than the input. */
  if (total > size) __builtin_trap();
  if (t->n_cols > 0 && sc_csv_col(t, t->header[0]) != 0) __builtin_trap();
  sc_csv_free(t);
  return 0;
}
