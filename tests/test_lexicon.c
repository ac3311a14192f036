/* test_lexicon.c: the gender lexicons and the an_lexicon matcher: the
 * generated lexicon_data.c is in sync with data/lexicons, 100+ hand-counted
 * English and Arabic sentences (tests/fixtures/gender_words_{en,ar}.tsv)
 * through the library and through `saecap gender-words`, the whole-word and
 * clitic traps with their spans, the leakage scan, invalid UTF-8, bad usage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/lexicon.h"
#include "analysis/lexicon_data.h"
#include "base/error.h"
#include "io/json.h"
#include "tu.h"

static an_lexicon *load(an_lang lang) {
  an_lexicon *lex = NULL;
  if (an_lexicon_load(lang, &lex)) fail_msg("load: %s", sc_error_get());
  return lex;
}

static void count(const an_lexicon *lex, const char *s, int *m, int *f) {
  assert_int_equal(an_lexicon_count(lex, s, strlen(s), m, f), 0);
}

#define ASSERT_COUNT(lex, s, em, ef)                                              \
  do {                                                                            \
    int m_, f_;                                                                   \
    count(lex, s, &m_, &f_);                                                      \
    if (m_ != (em) || f_ != (ef))                                                 \
      fail_msg("'%s': got %d %d, expected %d %d", s, m_, f_, (int)(em), (int)(ef)); \
  } while (0)

/* ---- generated data ---------------------------------------------------- */

static void test_generated_in_sync(void **state) {
  (void)state;
  char *dir = tu_tmpdir("lexicon_gen");
  char *out = tu_join(dir, "lexicon_data.c");
  char *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 '%s/scripts/gen-lexicon.py' --out '%s'", tu_src(), out);
  if (st) fail_msg("gen-lexicon.py failed: %s", err);
  size_t n_new, n_old;
  char *fresh = tu_read(out, &n_new);
  char *path = tu_src_path("src/analysis/lexicon_data.c");
  char *committed = tu_read(path, &n_old);
  assert_non_null(fresh);
  assert_non_null(committed);
  if (n_new != n_old || memcmp(fresh, committed, n_new))
    fail_msg("src/analysis/lexicon_data.c is out of date: run /usr/bin/python3 scripts/gen-lexicon.py");
  free(fresh), free(committed), free(path), free(err), free(out), free(dir);
}

static void test_gen_rejects_bad_tsv(void **state) {
  (void)state;
  char *dir = tu_tmpdir("lexicon_badtsv");
  char *err = NULL;
  int st = tu_run(NULL, &err,
                  "mkdir -p '%s/data/lexicons' && printf 'man\\tm\\tnoun\\tman\\n' > '%s/data/lexicons/en.tsv' && "
                  "printf 'x\\tq\\tnoun\\tx\\n' > '%s/data/lexicons/ar.tsv' && "
                  "/usr/bin/python3 '%s/scripts/gen-lexicon.py' --root '%s' --out '%s/o.c'",
                  dir, dir, dir, tu_src(), dir, dir);
  assert_int_not_equal(st, 0);
  assert_non_null(strstr(err, "ar.tsv:1: gender must be m or f"));
  free(err), free(dir);
}

/* Every form finds itself; no two forms collapse to one key. */
static void test_entries_round_trip(void **state) {
  (void)state;
  for (int l = 0; l < 2; l++) {
    an_lexicon *lex = load((an_lang)l);
    const an_lexicon_entry *e = l ? an_lexicon_data_ar : an_lexicon_data_en;
    size_t n = l ? an_lexicon_data_ar_n : an_lexicon_data_en_n;
    assert_int_equal(an_lexicon_size(lex), n);
    assert_true(n >= 250);
    assert_int_equal(an_lexicon_conflicts(lex), 0);
    for (size_t i = 0; i < n; i++) {
      an_match m;
      if (!an_lexicon_lookup(lex, e[i].form, strlen(e[i].form), &m)) fail_msg("'%s' not found", e[i].form);
      if (strcmp(m.form, e[i].form)) fail_msg("'%s' found as '%s'", e[i].form, m.form);
      assert_int_equal(m.gender, e[i].gender);
      assert_int_equal(m.wclass, e[i].wclass);
    }
    an_lexicon_free(lex);
  }
}

/* ---- hand-counted fixtures --------------------------------------------- */

/* Runs each "male\tfemale\tsentence" line of the fixture through the
 * library; returns the sentences (one per line) for the CLI check. */
static char *check_fixture(an_lang lang, const char *rel, int *n_out, char **expected) {
  char *path = tu_src_path(rel);
  size_t len;
  char *text = tu_read(path, &len);
  assert_non_null(text);
  an_lexicon *lex = load(lang);
  char *sentences = calloc(1, len + 1), *exp = calloc(1, len + 1);
  size_t ns = 0, ne = 0;
  int n = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    int em, ef, off = 0;
    if (sscanf(line, "%d\t%d\t%n", &em, &ef, &off) != 2 || !off) fail_msg("%s: bad line '%s'", rel, line);
    const char *s = line + off;
    ASSERT_COUNT(lex, s, em, ef);
    ns += (size_t)sprintf(sentences + ns, "%s\n", s);
    ne += (size_t)sprintf(exp + ne, "%d %d\n", em, ef);
    n++;
  }
  an_lexicon_free(lex);
  free(text), free(path);
  *n_out = n;
  *expected = exp;
  return sentences;
}

static void fixture_through_cli(const char *lang, const char *sentences, const char *expected) {
  char *dir = tu_tmpdir("lexicon_cli");
  char *in = tu_join(dir, "in.txt");
  tu_write_str(in, sentences);
  char *out = NULL, *err = NULL;
  int st = tu_run(&out, &err, "'%s' gender-words --lang %s < '%s'", tu_bin(), lang, in);
  if (st) fail_msg("gender-words failed: %s", err);
  assert_string_equal(out, expected);
  free(out), free(err), free(in), free(dir);
}

static void test_fixture_en(void **state) {
  (void)state;
  int n;
  char *exp, *s = check_fixture(AN_LANG_EN, "tests/fixtures/gender_words_en.tsv", &n, &exp);
  assert_true(n >= 100);
  fixture_through_cli("en", s, exp);
  free(s), free(exp);
}

static void test_fixture_ar(void **state) {
  (void)state;
  int n;
  char *exp, *s = check_fixture(AN_LANG_AR, "tests/fixtures/gender_words_ar.tsv", &n, &exp);
  assert_true(n >= 100);
  fixture_through_cli("ar", s, exp);
  free(s), free(exp);
}

/* ---- the traps, with spans and lemmas --------------------------- */

static void test_english_traps(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_EN);
  ASSERT_COUNT(lex, "the there this person season many other", 0, 0);
  ASSERT_COUNT(lex, "The There This Person Season Many Other", 0, 0);
  ASSERT_COUNT(lex, "women", 0, 1);
  ASSERT_COUNT(lex, "WOMEN", 0, 1);
  ASSERT_COUNT(lex, "he's", 1, 0);
  ASSERT_COUNT(lex, "her.", 0, 1);
  ASSERT_COUNT(lex, "she\xe2\x80\x99s", 0, 1); /* she’s */
  /* entries that are another word before a given next word */
  ASSERT_COUNT(lex, "a queen size bed, a King-Sized bed, queen beds", 0, 0);
  ASSERT_COUNT(lex, "the queen, the king. Size matters", 1, 1);
  an_match *m;
  size_t n;
  const char *s = "Women, he's with her.";
  assert_int_equal(an_lexicon_match(lex, s, strlen(s), AN_WC_ALL, &m, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(m[0].begin, 0), assert_int_equal(m[0].end, 5);
  assert_int_equal(m[0].gender, AN_GENDER_FEMALE);
  assert_string_equal(m[0].lemma, "woman");
  assert_int_equal(m[0].wclass, AN_WC_NOUN);
  assert_int_equal(m[1].begin, 7), assert_int_equal(m[1].end, 9);
  assert_int_equal(m[1].gender, AN_GENDER_MALE);
  assert_int_equal(m[1].wclass, AN_WC_PRONOUN);
  assert_int_equal(m[2].begin, 17), assert_int_equal(m[2].end, 20);
  free(m);
  /* class mask: only pronouns */
  assert_int_equal(an_lexicon_match(lex, s, strlen(s), AN_WC_BIT(AN_WC_PRONOUN), &m, &n), 0);
  assert_int_equal(n, 2);
  free(m);
  an_lexicon_free(lex);
}

/* UTF-8 of one match's word. */
static void assert_match(const char *text, const an_match *m, const char *word, an_gender g, const char *lemma) {
  if (strlen(word) != m->end - m->begin || memcmp(text + m->begin, word, m->end - m->begin))
    fail_msg("span [%zu,%zu) is not '%s'", m->begin, m->end, word);
  assert_int_equal(m->gender, g);
  assert_string_equal(m->lemma, lemma);
}

static void test_arabic_traps(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_AR);
  /* أب / أم / هو / هي inside other words */
  ASSERT_COUNT(lex, "أمام أبيض هواء مهيب هوية أمل أمس الأمم أبواب هيئة", 0, 0);
  ASSERT_COUNT(lex, "بهو لهو بهي", 0, 0);
  /* clitic combinations */
  ASSERT_COUNT(lex, "والرجل بالرجل فالرجل للرجل وللرجل كالرجل وبالرجل", 7, 0);
  ASSERT_COUNT(lex, "والمرأة بالمرأة فالمرأة للمرأة", 0, 4);
  /* harakat, tatweel, alef forms, ى/ي, ة/ه */
  ASSERT_COUNT(lex, "رَجُلٌ رجــل إمرأة آمرأة ٱمرأة امرأه", 2, 4);
  ASSERT_COUNT(lex, "أنثى انثي", 0, 2);
  const char *s = "وللمرأة أمام والرجل";
  an_match *m;
  size_t n;
  assert_int_equal(an_lexicon_match(lex, s, strlen(s), AN_WC_ALL, &m, &n), 0);
  assert_int_equal(n, 2);
  assert_match(s, &m[0], "وللمرأة", AN_GENDER_FEMALE, "امرأة");
  assert_match(s, &m[1], "والرجل", AN_GENDER_MALE, "رجل");
  assert_int_equal(m[0].wclass, AN_WC_NOUN);
  free(m);
  /* possessive suffixes on kinship terms, ة written ت before them */
  const char *k = "أمها ابنته أبوه";
  assert_int_equal(an_lexicon_match(lex, k, strlen(k), AN_WC_ALL, &m, &n), 0);
  assert_int_equal(n, 3);
  assert_match(k, &m[0], "أمها", AN_GENDER_FEMALE, "أم");
  assert_match(k, &m[1], "ابنته", AN_GENDER_FEMALE, "ابن");
  assert_match(k, &m[2], "أبوه", AN_GENDER_MALE, "أب");
  free(m);
  /* demonstratives, relatives and inanimate nouns are matched but not counted */
  const char *d = "هذه السيارة التي";
  ASSERT_COUNT(lex, d, 0, 0);
  assert_int_equal(an_lexicon_match(lex, d, strlen(d), AN_WC_ALL, &m, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(m[0].wclass, AN_WC_DEMONSTRATIVE);
  assert_int_equal(m[1].wclass, AN_WC_INANIMATE);
  assert_int_equal(m[2].wclass, AN_WC_RELATIVE);
  free(m);
  /* a pronoun only bare or after و/ف; no verb after the article */
  ASSERT_COUNT(lex, "وهو فهي", 1, 1);
  ASSERT_COUNT(lex, "الهو التلعب", 0, 0);
  ASSERT_COUNT(lex, "زوج من الأحذية", 0, 0); /* a pair of shoes */
  ASSERT_COUNT(lex, "زوج", 1, 0);
  /* indefinite accusative alef on 3+ letter stems only */
  ASSERT_COUNT(lex, "رجلاً جميلاً ولدا", 3, 0);
  ASSERT_COUNT(lex, "جدا أما عما هما", 0, 0);
  an_lexicon_free(lex);
}

static void test_invalid_utf8_and_edges(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_EN);
  static const char bad[] = "\xff he \xc3 she\xe2\x82 \xf0\x9f her";
  int m, f;
  assert_int_equal(an_lexicon_count(lex, bad, sizeof bad - 1, &m, &f), 0);
  assert_int_equal(m, 1), assert_int_equal(f, 2);
  assert_int_equal(an_lexicon_count(lex, "", 0, &m, &f), 0);
  assert_int_equal(m + f, 0);
  /* a NUL inside the text separates words */
  assert_int_equal(an_lexicon_count(lex, "he\0she", 6, &m, &f), 0);
  assert_int_equal(m, 1), assert_int_equal(f, 1);
  /* a very long word is simply not an entry */
  char *longw = malloc(10001);
  memset(longw, 'a', 10000), longw[10000] = 0;
  assert_int_equal(an_lexicon_count(lex, longw, 10000, &m, &f), 0);
  assert_int_equal(m + f, 0);
  free(longw);
  an_lexicon_free(lex);
  an_lang l;
  assert_int_equal(an_lang_parse("fr", &l), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "fr"));
  assert_int_equal(an_lexicon_load((an_lang)7, &lex), SC_ERR_ARG);
  assert_null(lex);
}

static void test_leakage_scan(void **state) {
  (void)state;
  an_lexicon *en = load(AN_LANG_EN), *ar = load(AN_LANG_AR);
  const char *pe[] = {"Describe this image.", "Describe the man in this image.", NULL,
                      "What is she doing?", "Describe the person in one sentence."};
  unsigned char le[5];
  assert_int_equal(an_lexicon_scan_leaks(en, pe, 5, le), 0);
  static const unsigned char ee[5] = {0, 1, 0, 1, 0};
  assert_memory_equal(le, ee, 5);
  const char *pa[] = {"صف هذه الصورة.", "ما هي الأشياء في الصورة؟", "صف المرأة في الصورة",
                      "صف ما يفعله الرجل", "صف الصورة بجملة واحدة"};
  unsigned char la[5];
  assert_int_equal(an_lexicon_scan_leaks(ar, pa, 5, la), 0);
  static const unsigned char ea[5] = {0, 0, 1, 1, 0};
  assert_memory_equal(la, ea, 5);
  an_lexicon_free(en), an_lexicon_free(ar);
}

/* ---- CLI ---------------------------------------------------------------- */

static void test_cli_json(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  int st = tu_run(&out, &err, "printf 'The women.\\nnothing here\\r\\n' | '%s' gender-words --lang en --json", tu_bin());
  if (st) fail_msg("gender-words --json failed: %s", err);
  assert_int_equal(tu_count_lines(out), 2);
  char *nl = strchr(out, '\n');
  sc_json *j;
  assert_int_equal(sc_json_parse(out, (size_t)(nl - out), "line 1", &j), 0);
  assert_int_equal((int)sc_json_num(sc_json_get(j, "male")), 0);
  assert_int_equal((int)sc_json_num(sc_json_get(j, "female")), 1);
  sc_json *m0 = sc_json_at(sc_json_get(j, "matches"), 0);
  assert_string_equal(sc_json_str(sc_json_get(m0, "word")), "women");
  assert_string_equal(sc_json_str(sc_json_get(m0, "gender")), "female");
  assert_string_equal(sc_json_str(sc_json_get(m0, "class")), "noun");
  assert_string_equal(sc_json_str(sc_json_get(m0, "lemma")), "woman");
  assert_int_equal((int)sc_json_num(sc_json_get(m0, "begin")), 4);
  assert_int_equal((int)sc_json_num(sc_json_get(m0, "end")), 9);
  sc_json_free(j);
  assert_string_equal(nl + 1, "{\"male\":0,\"female\":0,\"matches\":[]}\n");
  free(out), free(err);
}

static void test_cli_usage(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  int st = tu_run(&out, &err, "'%s' gender-words < /dev/null", tu_bin());
  assert_int_equal(st, 2);
  tu_assert_one_line_error(st, err, "--lang", NULL);
  free(out), free(err);
  st = tu_run(&out, &err, "'%s' gender-words --lang fr < /dev/null", tu_bin());
  assert_int_equal(st, 2);
  tu_assert_one_line_error(st, err, "fr", NULL);
  assert_string_equal(out, "");
  free(out), free(err);
  st = tu_run(&out, &err, "'%s' gender-words --help", tu_bin());
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, "--lang en|ar"));
  free(out), free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_generated_in_sync), cmocka_unit_test(test_gen_rejects_bad_tsv),
      cmocka_unit_test(test_entries_round_trip), cmocka_unit_test(test_fixture_en),
      cmocka_unit_test(test_fixture_ar),        cmocka_unit_test(test_english_traps),
      cmocka_unit_test(test_arabic_traps),      cmocka_unit_test(test_invalid_utf8_and_edges),
      cmocka_unit_test(test_leakage_scan),      cmocka_unit_test(test_cli_json),
      cmocka_unit_test(test_cli_usage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
