/* fuzz_manifest.c: libFuzzer target for the store's two parsers of files a
 * user can hand it: manifest.json (store/manifest.h) and samples.jsonl
 * (store/samples.h). A first byte 'S' picks samples.jsonl, any other the manifest. A manifest that
 * parses must print and parse back to the same text (the writer relies on
 * equal manifests printing to equal bytes), and a samples file must yield a
 * split table whose entries agree with its rows. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/manifest.h"
#include "store/samples.h"

static void fuzz_manifest(const char *buf, size_t len) {
  store_manifest m, again;
  if (store_manifest_parse(buf, len, "fuzz.json", &m) != 0) return;
  char *text = store_manifest_print(&m);
  if (text) {
    if (store_manifest_parse(text, strlen(text), "again.json", &again) != 0) __builtin_trap();
    char *text2 = store_manifest_print(&again);
    if (text2 && strcmp(text, text2)) __builtin_trap();
    free(text2);
    store_manifest_free(&again);
  }
  free(text);
  store_manifest_free(&m);
}

static void fuzz_samples(const char *buf, size_t len) {
  store_samples s;
  if (store_samples_parse(buf, len, "fuzz.jsonl", &s) != 0) return;
  int8_t *split;
  int64_t n;
  if (store_samples_split_of(&s, &split, &n) == 0) {
    for (int64_t i = 0; i < s.n; i++)
      if (split[s.rows[i].sample_index] != s.rows[i].split) __builtin_trap();
    free(split);
  }
  store_samples_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if (data[0] == 'S') fuzz_samples((const char *)data + 1, size - 1);
  else fuzz_manifest((const char *)data + 1, size - 1);
  return 0;
}
