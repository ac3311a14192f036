/* test_tokenizer.c: the Gemma 3 tokenizer, the IT chat prompt and
 * `saecap tokenize`, against
 *   - tests/fixtures/tokenizer/expected.jsonl: ids and decodes of every
 *     corpus.jsonl line from transformers.js (tests/reference/
 *     tok_expected.mjs); regenerated and compared when node is installed,
 *   - the ids verified in research/gemma3_spec.md §1.3, §5.1 and §6,
 *   - tokenizers' (Rust) documented semantics on tiny hand-made files
 *     (unk fusion, byte-fallback runs, Split behaviours, decoders),
 *   - every error a user can reach, each with its message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "io/json.h"
#include "model/chat.h"
#include "model/tokenizer.h"
#include "tu.h"

static tok_tokenizer *g_tok; /* the real Gemma 3 tokenizer, loaded once */

static int setup(void **state) {
  (void)state;
  char *path = tu_tokenizer_json();
  int rc = tok_load(&g_tok, path);
  if (rc) fprintf(stderr, "cannot load %s: %s\n", path, sc_error_get());
  free(path);
  return rc ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  tok_free(g_tok);
  return 0;
}

/* ==== Helpers ============================================================== */

/* Asserts ids[0..n) == want[0..nw), printing the first difference. */
static void assert_ids(const char *what, const int32_t *ids, size_t n, const int32_t *want, size_t nw) {
  size_t i = 0;
  while (i < n && i < nw && ids[i] == want[i]) i++;
  if (i == n && n == nw) return;
  print_error("%s: ids differ at index %zu (got %zu ids, want %zu): got %d, want %d\n", what, i, n,
              nw, i < n ? (int)ids[i] : -1, i < nw ? (int)want[i] : -1);
  fail();
}

static void check_encode(const char *text, int add_bos, const int32_t *want, size_t nw) {
  int32_t *ids;
  size_t n;
  assert_int_equal(tok_encode(g_tok, text, strlen(text), add_bos, &ids, &n), 0);
  assert_ids(text, ids, n, want, nw);
  free(ids);
}

static void check_decode(const int32_t *ids, size_t n, int skip, const char *want, size_t want_len) {
  char *s;
  size_t len;
  assert_int_equal(tok_decode(g_tok, ids, n, skip, &s, &len), 0);
  if (len != want_len || memcmp(s, want, len)) {
    print_error("decode: got '%s' (%zu bytes), want '%.*s' (%zu bytes)\n", s, len, (int)want_len,
                want, want_len);
    fail();
  }
  free(s);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ==== Spec examples ========================================================== */

static void test_spec_examples(void **state) {
  (void)state;
  static const int32_t e1[] = {82858, 672, 2471, 236761};
  static const int32_t e2[] = {20545, 20175, 236248, 39570, 7130, 237049, 116248, 236761};
  static const int32_t e3[] = {138, 13498, 138, 35220, 139, 624, 45330, 236743};
  static const int32_t e4[] = {464, 429, 429};
  static const int32_t e1_bos[] = {2, 82858, 672, 2471, 236761};
  check_encode("Describe this image.", 0, e1, N_OF(e1));
  check_encode("Describe this image.", 1, e1_bos, N_OF(e1_bos));
  check_encode("صف هذه الصورة بجملة واحدة.", 0, e2, N_OF(e2));
  check_encode("  two  spaces   and trailing ", 0, e3, N_OF(e3));
  check_encode("\xE2\xBF\xBF", 0, e4, N_OF(e4)); /* U+2FFF: byte fallback E2 BF BF */
  static const int32_t bos_only[] = {2};
  check_encode("", 1, bos_only, 1);
  check_encode("", 0, NULL, 0);
}

static void test_spec_special_ids(void **state) {
  (void)state;
  static const struct { const char *s; int32_t id; int special; } tab[] = {
      {"<pad>", 0, 1}, {"<eos>", 1, 1}, {"<bos>", 2, 1}, {"<unk>", 3, 1}, {"<mask>", 4, 0},
      {"[multimodal]", 5, 0}, {"<unused0>", 6, 0}, {"<start_of_turn>", 105, 1},
      {"<end_of_turn>", 106, 1}, {"\n", 107, 0}, {"\n\n", 108, 0}, {"\n\n\n", 109, 0},
      {"\xE2\x96\x81\xE2\x96\x81", 138, 0}, {"<table>", 168, 0}, {"<0x00>", 238, 0},
      {"<0xFF>", 493, 0}, {"\xE2\x96\x81", 236743, 0}, {"user", 2364, 0}, {"model", 4368, 0},
      {"<start_of_image>", 255999, 1}, {"<end_of_image>", 256000, 1},
      {"<image_soft_token>", 262144, 1}};
  for (size_t i = 0; i < N_OF(tab); i++) {
    assert_int_equal(tok_token_id(g_tok, tab[i].s, strlen(tab[i].s)), tab[i].id);
    assert_int_equal(tok_is_special(g_tok, tab[i].id), tab[i].special);
  }
  int n_special = 0;
  for (int32_t id = 0; id < tok_n_ids(g_tok); id++) n_special += tok_is_special(g_tok, id);
  assert_int_equal(n_special, 9); /* spec §1.3: exactly 9 special ids */
  assert_int_equal(tok_n_ids(g_tok), 262145);
  size_t len;
  const char *s = tok_token_str(g_tok, 262144, &len);
  assert_non_null(s);
  assert_int_equal(len, strlen("<image_soft_token>"));
  assert_null(tok_token_str(g_tok, 262145, &len));
  assert_int_equal(tok_token_id(g_tok, "no such token!", 14), -1);
}

/* ==== Corpus against transformers.js ====================================== */

/* Splits a file into lines in place; returns the count. */
static size_t split_lines(char *buf, char ***lines) {
  size_t n = 0, cap = 512;
  *lines = malloc(cap * sizeof **lines);
  for (char *p = buf, *nl; *p; p = nl + 1) {
    nl = strchr(p, '\n');
    if (n == cap) *lines = realloc(*lines, (cap *= 2) * sizeof **lines);
    (*lines)[n++] = p;
    if (!nl) break;
    *nl = 0;
  }
  return n;
}

static int32_t *json_ids(const sc_json *arr, size_t *n) {
  *n = (size_t)sc_json_size(arr);
  int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
  size_t i = 0;
  for (const sc_json *e = sc_json_first(arr); e; e = sc_json_next(e)) ids[i++] = (int32_t)sc_json_num(e);
  return ids;
}

/* One corpus line: encode with and without BOS, decode both ways. */
static void check_corpus_line(size_t line, const char *text, const sc_json *exp) {
  size_t nw, n;
  int32_t *want = json_ids(sc_json_get(exp, "ids"), &nw), *ids;
  char what[64];
  snprintf(what, sizeof what, "corpus line %zu", line);
  assert_int_equal(tok_encode(g_tok, text, strlen(text), 0, &ids, &n), 0);
  assert_ids(what, ids, n, want, nw);
  free(ids);
  assert_int_equal(tok_encode(g_tok, text, strlen(text), 1, &ids, &n), 0);
  assert_true(n == nw + 1 && ids[0] == 2);
  assert_ids(what, ids + 1, n - 1, want, nw);
  free(ids);
  const char *d = sc_json_str(sc_json_get(exp, "decoded"));
  const char *ds = sc_json_str(sc_json_get(exp, "decoded_skip"));
  check_decode(want, nw, 0, d, strlen(d));
  check_decode(want, nw, 1, ds, strlen(ds));
  free(want);
}

static void check_corpus_files(const char *corpus_path, const char *expected_path) {
  char *corpus = tu_read(corpus_path, NULL), *expected = tu_read(expected_path, NULL);
  assert_non_null(corpus);
  assert_non_null(expected);
  char **cl, **el;
  size_t nc = split_lines(corpus, &cl), ne = split_lines(expected, &el);
  while (nc && !*cl[nc - 1]) nc--;
  while (ne && !*el[ne - 1]) ne--;
  assert_int_equal(nc, ne);
  assert_true(nc >= 250);
  for (size_t i = 0; i < nc; i++) {
    sc_json *c, *e;
    assert_int_equal(sc_json_parse(cl[i], strlen(cl[i]), "corpus.jsonl", &c), 0);
    assert_int_equal(sc_json_parse(el[i], strlen(el[i]), "expected.jsonl", &e), 0);
    check_corpus_line(i + 1, sc_json_str(sc_json_get(c, "text")), e);
    sc_json_free(c);
    sc_json_free(e);
  }
  free(cl);
  free(el);
  free(corpus);
  free(expected);
}

static void test_corpus(void **state) {
  (void)state;
  char *c = tu_src_path("tests/fixtures/tokenizer/corpus.jsonl");
  char *e = tu_src_path("tests/fixtures/tokenizer/expected.jsonl");
  check_corpus_files(c, e);
  free(c);
  free(e);
}

/* With node installed, the committed expected file must still be what the
 * reference produces (catches a stale fixture after a corpus edit). */
static void test_corpus_regenerated(void **state) {
  (void)state;
  if (tu_run(NULL, NULL, "command -v node") != 0) {
    print_message("node not installed: regeneration skipped\n");
    return;
  }
  char *dir = tu_tmpdir("tok_regen"), *out = tu_join(dir, "expected.jsonl");
  char *script = tu_src_path("tests/reference/tok_expected.mjs");
  char *corpus = tu_src_path("tests/fixtures/tokenizer/corpus.jsonl");
  char *committed = tu_src_path("tests/fixtures/tokenizer/expected.jsonl");
  assert_int_equal(tu_run(NULL, NULL, "node '%s' '%s' > '%s'", script, corpus, out), 0);
  char *a = tu_read(out, NULL), *b = tu_read(committed, NULL);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a, b);
  free(a), free(b), free(dir), free(out), free(script), free(corpus), free(committed);
}

/* ==== Decoding semantics ===================================================== */

static void test_decode_semantics(void **state) {
  (void)state;
  /* tokenizers' ByteFallback: an invalid run gives one U+FFFD per byte, even
   * for its valid bytes (transformers.js's TextDecoder would keep 'A'). */
  static const int32_t bad[] = {238 + 0x41, 238 + 0xFF, 238 + 0x42};
  check_decode(bad, 3, 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 9);
  static const int32_t mixed[] = {236746, 238 + 0xE2, 238 + 0x8F, 236746, 238 + 0xE2, 238 + 0xBF,
                                  238 + 0xBF};
  check_decode(mixed, N_OF(mixed), 0, "a\xEF\xBF\xBD\xEF\xBF\xBD" "a\xE2\xBF\xBF", 11);
  static const int32_t specials[] = {2, 105, 2364, 107, 236743, 106};
  check_decode(specials, N_OF(specials), 0, "<bos><start_of_turn>user\n <end_of_turn>", 39);
  check_decode(specials, N_OF(specials), 1, "user\n ", 6);
  check_decode(NULL, 0, 0, "", 0);
}

static void test_decode_errors(void **state) {
  (void)state;
  char *s = (char *)1;
  static const int32_t big[] = {2, 262145}, neg[] = {-7};
  assert_int_equal(tok_decode(g_tok, big, 2, 0, &s, NULL), SC_ERR_RANGE);
  assert_string_equal(sc_error_get(), "token id 262145 is out of range [0, 262145)");
  assert_null(s);
  assert_int_equal(tok_decode(g_tok, neg, 1, 0, &s, NULL), SC_ERR_RANGE);
  assert_string_equal(sc_error_get(), "token id -7 is out of range [0, 262145)");
}

static void test_encode_invalid_utf8(void **state) {
  (void)state;
  int32_t *ids = (int32_t *)1;
  size_t n = 5;
  assert_int_equal(tok_encode(g_tok, "abc\xC0\xAF", 5, 0, &ids, &n), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "input: invalid UTF-8 at byte 3");
  assert_null(ids);
  assert_int_equal(n, 0);
  assert_int_equal(tok_encode(g_tok, "\xED\xA0\x80", 3, 0, &ids, &n), SC_ERR_FORMAT); /* surrogate */
  /* NUL is valid UTF-8: byte fallback <0x00>. */
  static const int32_t nul[] = {236746, 238, 236763};
  assert_int_equal(tok_encode(g_tok, "a\0b", 3, 0, &ids, &n), 0);
  assert_ids("a NUL b", ids, n, nul, 3);
  free(ids);
}

/* Round trip on long repetitive input exercises the merge heap. */
static void test_long_roundtrip(void **state) {
  (void)state;
  const char *unit = "صورة لرجل وامرأة. A photo of a man and a woman!  ";
  size_t ul = strlen(unit), reps = 2000, len = ul * reps;
  char *text = malloc(len + 1);
  for (size_t i = 0; i < reps; i++) memcpy(text + i * ul, unit, ul);
  text[len] = 0;
  int32_t *ids;
  size_t n;
  assert_int_equal(tok_encode(g_tok, text, len, 0, &ids, &n), 0);
  assert_true(n > reps * 10 && n < len);
  check_decode(ids, n, 0, text, len);
  free(ids);
  free(text);
}

/* ==== Chat template ========================================================== */

static void test_chat_spec(void **state) {
  (void)state;
  int32_t want[272], *ids;
  size_t k = 0, n;
  static const int32_t head[] = {2, 105, 2364, 109, 255999};
  static const int32_t tail[] = {256000, 108, 82858, 672, 2471, 236761, 106, 107, 105, 4368, 107};
  for (size_t i = 0; i < N_OF(head); i++) want[k++] = head[i];
  for (int i = 0; i < 256; i++) want[k++] = 262144;
  for (size_t i = 0; i < N_OF(tail); i++) want[k++] = tail[i];
  assert_int_equal(k, 272);
  const char *text = "Describe this image.";
  assert_int_equal(g3_chat_encode(g_tok, text, strlen(text), 256, &ids, &n), 0);
  assert_ids("spec 5.1 prompt", ids, n, want, 272);
  free(ids);
  /* Trimmed text, no image: Python str.strip() whitespace incl. U+3000 and \x1c. */
  const char *padded = " \t\xE3\x80\x80\x1c" "Describe this image.\n \xC2\x85";
  static const int32_t text_only[] = {2, 105, 2364, 107, 82858, 672, 2471, 236761, 106, 107, 105, 4368, 107};
  assert_int_equal(g3_chat_encode(g_tok, padded, strlen(padded), 0, &ids, &n), 0);
  assert_ids("text-only prompt", ids, n, text_only, N_OF(text_only));
  free(ids);
}

static void test_chat_render(void **state) {
  (void)state;
  char *s;
  size_t len;
  assert_int_equal(g3_chat_render("  hi ", 5, 2, &s, &len), 0);
  const char *want =
      "<bos><start_of_turn>user\n\n\n<start_of_image><image_soft_token><image_soft_token>"
      "<end_of_image>\n\nhi<end_of_turn>\n<start_of_turn>model\n";
  assert_string_equal(s, want);
  assert_int_equal(len, strlen(want));
  free(s);
  assert_int_equal(g3_chat_render("", 0, 0, &s, NULL), 0);
  assert_string_equal(s, "<bos><start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n");
  free(s);
  size_t a, b;
  g3_chat_trim("\xE2\x80\x83x y\xE2\x80\xA8", 9, &a, &b); /* U+2003 ... U+2028 */
  assert_int_equal(a, 3);
  assert_int_equal(b, 6);
  g3_chat_trim("\xE2\x80\x8Bx", 4, &a, &b); /* U+200B is not whitespace in Python */
  assert_int_equal(a, 0);
}

static void test_chat_errors(void **state) {
  (void)state;
  char *s;
  assert_int_equal(g3_chat_render("a<start_of_image>", 17, 256, &s, NULL), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "prompt: text contains '<start_of_image>'"));
  assert_int_equal(g3_chat_render("a", 1, -1, &s, NULL), SC_ERR_RANGE);
  assert_string_equal(sc_error_get(), "prompt: image token count -1 is outside [0, 65536]");
  assert_int_equal(g3_chat_render("\xFF", 1, 0, &s, NULL), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "prompt: invalid UTF-8 at byte 0");
  /* Without an image the marker is ordinary text (HF passes it through). */
  assert_int_equal(g3_chat_render("a<start_of_image>", 17, 0, &s, NULL), 0);
  free(s);
}

/* ==== Small hand-made tokenizer.json files ================================== */

/* A JSON file from a template: model fields, normalizer, pre_tokenizer,
 * decoder and post_processor spliced in. */
static char *mini_json(const char *model_extra, const char *merges, const char *norm,
                       const char *pre, const char *dec, const char *post) {
  char *buf = malloc(8192);
  snprintf(buf, 8192,
           "{\"version\":\"1.0\",\"added_tokens\":["
           "{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false,\"lstrip\":false,"
           "\"rstrip\":false,\"single_word\":false},"
           "{\"id\":9,\"content\":\"<sep>\",\"special\":true},"
           "{\"id\":10,\"content\":\"<se\",\"special\":false,\"normalized\":false}],"
           "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":%s,\"decoder\":%s,"
           "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\"%s,\"vocab\":{\"<unk>\":0,\"a\":1,"
           "\"b\":2,\"ab\":3,\"c\":4,\"abc\":5,\"_\":6,\"<0x41>\":7,\"<0x78>\":8,\"bc\":11},"
           "\"merges\":%s}}",
           norm, pre, post, dec, model_extra, merges);
  return buf;
}

static tok_tokenizer *mini_load(const char *json) {
  tok_tokenizer *t = NULL;
  int rc = tok_from_memory(json, strlen(json), "mini.json", &t);
  if (rc) print_error("mini.json: %s\n", sc_error_get());
  assert_int_equal(rc, 0);
  return t;
}

static void mini_check(tok_tokenizer *t, const char *text, const int32_t *want, size_t nw) {
  int32_t *ids;
  size_t n;
  assert_int_equal(tok_encode(t, text, strlen(text), 0, &ids, &n), 0);
  assert_ids(text, ids, n, want, nw);
  free(ids);
}

static void test_mini_unk_and_merges(void **state) {
  (void)state;
  /* fuse_unk: consecutive unknown chars become one <unk>; "a b" merges. */
  char *j = mini_json(",\"fuse_unk\":true", "[\"a b\",[\"ab\",\"c\"]]", "null", "null", "null", "null");
  tok_tokenizer *t = mini_load(j);
  static const int32_t w1[] = {5, 0, 3}; /* abc, <unk>(xyz), ab */
  mini_check(t, "abcxyzab", w1, 3);
  static const int32_t w2[] = {3, 9, 2, 4}; /* added <sep> wins over "<se" (longest) */
  mini_check(t, "ab<sep>bc", w2, 4);
  static const int32_t w3[] = {1, 10, 0}; /* "<se" alone, then <unk> for "x" */
  mini_check(t, "a<sex", w3, 3);
  tok_free(t);
  free(j);
  /* Without fuse_unk each unknown char is its own <unk>; byte fallback
   * applies only when every byte has a token (x has, y has not). Bytes are
   * emitted before a pending unk, as tokenizers does. */
  j = mini_json(",\"byte_fallback\":true", "[]", "null", "null", "null", "null");
  t = mini_load(j);
  static const int32_t w4[] = {0, 0, 1};
  mini_check(t, "yya", w4, 3);
  static const int32_t w5[] = {8, 0, 1};
  mini_check(t, "yxa", w5, 3);
  tok_free(t);
  free(j);
  /* ignore_merges: a whole word in the vocab is taken as is. */
  j = mini_json(",\"ignore_merges\":true", "[[\"b\",\"c\"]]", "null", "null", "null", "null");
  t = mini_load(j);
  static const int32_t w6[] = {5};
  mini_check(t, "abc", w6, 1);
  tok_free(t);
  free(j);
}

static void test_mini_pipeline(void **state) {
  (void)state;
  /* Prepend + Replace normalizers, Split Isolated on "_", post-processor
   * "<unk> $A <sep>", decoder Replace + Strip. */
  char *j = mini_json(
      "", "[[\"a\",\"b\"]]",
      "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"_\"},"
      "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"_\"}]}",
      "{\"type\":\"Split\",\"pattern\":{\"String\":\"_\"},\"behavior\":\"Isolated\",\"invert\":false}",
      "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"_\"},"
      "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\","
      "\"content\":\" \",\"start\":1,\"stop\":0}]}",
      "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<unk>\"}},"
      "{\"Sequence\":{\"id\":\"A\"}},{\"SpecialToken\":{\"id\":\"<sep>\"}}],\"special_tokens\":{"
      "\"<unk>\":{\"ids\":[0]},\"<sep>\":{\"ids\":[9]}}}");
  tok_tokenizer *t = mini_load(j);
  static const int32_t w[] = {6, 3, 6, 4};
  mini_check(t, "ab c", w, 4);
  int32_t *ids;
  size_t n;
  assert_int_equal(tok_encode(t, "ab c", 4, 1, &ids, &n), 0);
  static const int32_t wb[] = {0, 6, 3, 6, 4, 9};
  assert_ids("with template", ids, n, wb, 6);
  char *s;
  assert_int_equal(tok_decode(t, ids + 1, 4, 0, &s, NULL), 0);
  assert_string_equal(s, "ab c");
  free(s);
  assert_int_equal(tok_decode(t, ids, n, 1, &s, NULL), 0);
  assert_string_equal(s, "ab c");
  free(s);
  free(ids);
  tok_free(t);
  free(j);
  /* MergedWithPrevious and Removed; no decoder joins tokens with spaces. */
  j = mini_json("", "[[\"a\",\"b\"]]", "null",
                "{\"type\":\"Split\",\"pattern\":{\"String\":\"_\"},\"behavior\":\"Removed\"}",
                "null", "null");
  t = mini_load(j);
  static const int32_t w2[] = {3, 3}; /* "ab_ab" -> ab | ab */
  mini_check(t, "ab_ab", w2, 2);
  assert_int_equal(tok_decode(t, w2, 2, 0, &s, NULL), 0);
  assert_string_equal(s, "ab ab");
  free(s);
  tok_free(t);
  free(j);
  j = mini_json("", "[]", "null",
                "{\"type\":\"Split\",\"pattern\":{\"String\":\"_\"},\"behavior\":\"MergedWithPrevious\"}",
                "null", "null");
  t = mini_load(j);
  static const int32_t w3[] = {1, 2, 6, 6, 1}; /* "ab_" | "_" | "a", no merges */
  mini_check(t, "ab__a", w3, 5);
  tok_free(t);
  free(j);
  /* Splitting on "b" with merges a+b and b+c tells the behaviours apart. */
  static const struct { const char *behavior; int32_t ids[3]; size_t n; } beh[] = {
      {"MergedWithPrevious", {3, 4}, 2}, /* ab | c */
      {"MergedWithNext", {1, 11}, 2},    /* a | bc */
      {"Isolated", {1, 2, 4}, 3},        /* a | b | c */
      {"Removed", {1, 4}, 2},            /* a | c */
  };
  for (size_t i = 0; i < N_OF(beh); i++) {
    char pre[160];
    snprintf(pre, sizeof pre,
             "{\"type\":\"Split\",\"pattern\":{\"String\":\"b\"},\"behavior\":\"%s\"}",
             beh[i].behavior);
    j = mini_json("", "[[\"a\",\"b\"],[\"b\",\"c\"]]", "null", pre, "null", "null");
    t = mini_load(j);
    mini_check(t, "abc", beh[i].ids, beh[i].n);
    tok_free(t);
    free(j);
  }
}

/* ==== Load errors ============================================================ */

static void expect_load_error(const char *json, int code, const char *msg) {
  tok_tokenizer *t = (tok_tokenizer *)1;
  assert_int_equal(tok_from_memory(json, strlen(json), "bad.json", &t), code);
  assert_null(t);
  if (!strstr(sc_error_get(), msg)) {
    print_error("message '%s' lacks '%s'\n", sc_error_get(), msg);
    fail();
  }
}

static void test_load_errors(void **state) {
  (void)state;
  expect_load_error("{\"model\": ", SC_ERR_FORMAT, "bad.json: malformed JSON at line 1");
  expect_load_error("[1]", SC_ERR_FORMAT, "bad.json: not a JSON object");
  expect_load_error("{}", SC_ERR_FORMAT, "bad.json: no \"model\" object");
  expect_load_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", SC_ERR_FORMAT,
                    "bad.json: unsupported model 'WordPiece'");
  char *j = mini_json("", "[]", "{\"type\":\"NFKC\"}", "null", "null", "null");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: unsupported normalizer 'NFKC'");
  free(j);
  j = mini_json("", "[]", "null", "{\"type\":\"ByteLevel\"}", "null", "null");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: unsupported pre_tokenizer 'ByteLevel'");
  free(j);
  j = mini_json("", "[]", "null", "null", "{\"type\":\"Metaspace\"}", "null");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: unsupported decoder 'Metaspace'");
  free(j);
  j = mini_json("", "[]", "null", "null", "null", "{\"type\":\"RobertaProcessing\"}");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: unsupported post_processor 'RobertaProcessing'");
  free(j);
  j = mini_json("", "[[\"a\",\"z\"]]", "null", "null", "null", "null");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: model.merges[0]: token 'z' is not in the vocab");
  free(j);
  j = mini_json("", "[\"abc\"]", "null", "null", "null", "null");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: model.merges[0] is neither");
  free(j);
  j = mini_json(",\"dropout\":0.1", "[]", "null", "null", "null", "null");
  expect_load_error(j, SC_ERR_FORMAT, "bad.json: unsupported model option 'dropout'");
  free(j);
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", SC_ERR_FORMAT,
                    "bad.json: model.vocab['a'] has an invalid id");
  expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}",
                    SC_ERR_FORMAT, "bad.json: model.vocab: id 0 is used by two tokens");
  expect_load_error("{\"added_tokens\":[{\"id\":1,\"content\":\"x\",\"lstrip\":true}],\"model\":{"
                    "\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                    SC_ERR_FORMAT, "bad.json: added_tokens[0]: unsupported added-token option");
  tok_tokenizer *t = (tok_tokenizer *)1;
  assert_int_equal(tok_load(&t, "/nonexistent/tokenizer.json"), SC_ERR_IO);
  assert_null(t);
  assert_non_null(strstr(sc_error_get(), "/nonexistent/tokenizer.json: cannot open"));
  tok_free(NULL);
}

static void test_unk_missing(void **state) {
  (void)state;
  const char *json = "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"a\":0},"
                     "\"merges\":[]}}";
  tok_tokenizer *t = mini_load(json);
  int32_t *ids;
  size_t n;
  assert_int_equal(tok_encode(t, "ab", 2, 0, &ids, &n), SC_ERR_MISSING);
  assert_string_equal(sc_error_get(), "mini.json: unk_token '<unk>' is not in the vocab");
  tok_free(t);
}

/* ==== CLI ==================================================================== */

static char *model_dir(void) {
  char *p = tu_tokenizer_json();
  *strrchr(p, '/') = 0;
  return p;
}

static void test_cli(void **state) {
  (void)state;
  char *dir = model_dir(), *tmp = tu_tmpdir("tok_cli"), *in = tu_join(tmp, "in.txt");
  char *out, *err;
  tu_write_str(in, "Describe this image.");
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' < '%s'", tu_bin(), dir, in), 0);
  assert_string_equal(out, "82858 672 2471 236761\n");
  free(out);
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' --bos < '%s'", tu_bin(), dir, in), 0);
  assert_string_equal(out, "2 82858 672 2471 236761\n");
  free(out);
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' --chat --image-tokens 256 < '%s' | wc -w",
                          tu_bin(), dir, in), 0);
  assert_int_equal(atoi(out), 272);
  free(out);
  tu_write_str(in, "");
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' < '%s'", tu_bin(), dir, in), 0);
  assert_string_equal(out, "\n");
  free(out);
  tu_write_str(in, " 2 105\n2364 107\t236743  106 ");
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' --decode < '%s'", tu_bin(), dir, in), 0);
  assert_string_equal(out, "<bos><start_of_turn>user\n <end_of_turn>");
  free(out);
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' --decode --skip-special < '%s'",
                          tu_bin(), dir, in), 0);
  assert_string_equal(out, "user\n ");
  free(out);
  /* Round trip through a pipe reproduces the input byte for byte. */
  tu_write_str(in, "  مرحبا\tworld 👨‍👩‍👧\n\n");
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --model '%s' < '%s' | '%s' tokenize --model '%s' --decode",
                          tu_bin(), dir, in, tu_bin(), dir), 0);
  assert_string_equal(out, "  مرحبا\tworld 👨‍👩‍👧\n\n");
  free(out);
  assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --help", tu_bin()), 0);
  assert_non_null(strstr(out, "usage: saecap tokenize"));
  free(out);
  (void)err;
  free(in), free(tmp), free(dir);
}

static void test_cli_errors(void **state) {
  (void)state;
  char *dir = model_dir(), *tmp = tu_tmpdir("tok_cli_err"), *in = tu_join(tmp, "in.txt");
  char *err;
  int st;
  tu_write(in, "ok\xFF", 3);
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' < '%s'", tu_bin(), dir, in);
  tu_assert_one_line_error(st, err, "saecap: stdin: invalid UTF-8 at byte 2", NULL);
  free(err);
  tu_write_str(in, "2 262145");
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' --decode < '%s'", tu_bin(), dir, in);
  tu_assert_one_line_error(st, err, "saecap: stdin: token id 262145 is out of range [0, 262145)", NULL);
  free(err);
  tu_write_str(in, "2 x7");
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' --decode < '%s'", tu_bin(), dir, in);
  tu_assert_one_line_error(st, err, "saecap: stdin: 'x7' is not a token id", NULL);
  free(err);
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' < '%s'", tu_bin(), tmp, in);
  tu_assert_one_line_error(st, err, "tokenizer.json: cannot open", NULL);
  assert_int_equal(st, 1);
  free(err);
  char *bad = tu_join(tmp, "tokenizer.json");
  tu_write_str(bad, "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}");
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' < '%s'", tu_bin(), tmp, in);
  tu_assert_one_line_error(st, err, "tokenizer.json: unsupported model 'Unigram'", NULL);
  free(err);
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' --bos --chat < '%s'", tu_bin(), dir, in);
  assert_int_equal(st, 2);
  tu_assert_one_line_error(st, err, "--bos and --chat", NULL);
  free(err);
  st = tu_run(NULL, &err, "'%s' tokenize < '%s'", tu_bin(), in);
  assert_int_equal(st, 2);
  tu_assert_one_line_error(st, err, "--model DIR is required", NULL);
  free(err);
  st = tu_run(NULL, &err, "'%s' tokenize --model '%s' --image-tokens 4 < '%s'", tu_bin(), dir, in);
  tu_assert_one_line_error(st, err, "--image-tokens needs --chat", NULL);
  free(err);
  free(bad), free(in), free(tmp), free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_examples),
      cmocka_unit_test(test_spec_special_ids),
      cmocka_unit_test(test_corpus),
      cmocka_unit_test(test_corpus_regenerated),
      cmocka_unit_test(test_decode_semantics),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_encode_invalid_utf8),
      cmocka_unit_test(test_long_roundtrip),
      cmocka_unit_test(test_chat_spec),
      cmocka_unit_test(test_chat_render),
      cmocka_unit_test(test_chat_errors),
      cmocka_unit_test(test_mini_unk_and_merges),
      cmocka_unit_test(test_mini_pipeline),
      cmocka_unit_test(test_load_errors),
      cmocka_unit_test(test_unk_missing),
      cmocka_unit_test(test_cli),
      cmocka_unit_test(test_cli_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
