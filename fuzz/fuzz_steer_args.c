/* fuzz_steer_args.c: libFuzzer target for the `--steer-features` and
 * `--steer-mode` parsers (analysis/steer.h). The input is split at the
 * first NUL byte (or used whole for both): on success every feature index
 * is in range and unique, and the mode round-trips through its canonical
 * spelling; chrF (textmetrics.h) of the two halves lies in [0, 100] and is
 * 100 for a text against itself unless that has no n-gram. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/steer.h"
#include "analysis/textmetrics.h"

static void check_features(const char *s) {
  int32_t *f = NULL;
  int n = 0;
  if (an_steer_features_parse(s, &f, &n) == 0) {
    if (n < 1) __builtin_trap();
    for (int i = 0; i < n; i++) {
      if (f[i] < 0 || f[i] >= AN_STEER_MAX_FEATURES) __builtin_trap();
      for (int j = 0; j < i; j++)
        if (f[i] == f[j]) __builtin_trap();
    }
  }
  free(f);
}

static void check_mode(const char *s) {
  an_steer_op op, back;
  char buf[64];
  if (an_steer_mode_parse(s, &op) != 0) return;
  if (!isfinite(op.value)) __builtin_trap();
  an_steer_mode_str(&op, buf, sizeof buf);
  if (an_steer_mode_parse(buf, &back) != 0 || back.mode != op.mode) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *a = malloc(size + 1);
  if (!a) return 0;
  memcpy(a, data, size);
  a[size] = 0;
  size_t la = strlen(a);
  const char *b = la < size ? a + la + 1 : a;
  check_features(a);
  check_mode(b);
  double c = 0, self = 0;
  if (an_chrf(a, la, b, strlen(b), &c) == 0 && (c < 0 || c > 100.0000001 || isnan(c))) __builtin_trap();
  if (an_chrf(a, la, a, la, &self) == 0 && self != 0 && fabs(self - 100) > 1e-9) __builtin_trap();
  free(a);
  return 0;
}
