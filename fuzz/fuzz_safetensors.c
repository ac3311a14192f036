/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. Feeds
 * the input to st_file_from_memory and, when it is accepted, reads every
 * byte of every tensor and every metadata string, so that ASan catches any
 * range the validation let through. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps the reads from being optimized away. */
static volatile unsigned fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file *f;
  if (st_file_from_memory(&f, data, size, "fuzz.safetensors")) return 0;
  unsigned sum = 0;
  for (int i = 0; i < st_file_n_tensors(f); i++) {
    const st_tensor *t = st_file_tensor(f, i);
    const unsigned char *p = t->data;
    for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
    sum += (unsigned)strlen(t->name) + (unsigned)sc_dtype_size(t->dtype);
    if (st_file_find(f, t->name) == NULL) __builtin_trap(); /* every name must be findable */
  }
  for (int i = 0; i < st_file_n_meta(f); i++) {
    const char *k, *v;
    st_file_meta(f, i, &k, &v);
    sum += (unsigned)strlen(k) + (unsigned)strlen(v);
    if (st_file_meta_get(f, k) == NULL) __builtin_trap();
  }
  fuzz_sink = sum;
  st_file_free(f);
  return 0;
}
