/* test_morphology.c: RQ4 (analysis/morphology.h) on synthetic Arabic
 * captions with planted features: feature 0 fires on feminine inanimate
 * nouns (grammatical), feature 1 on every token of images of women
 * (semantic), feature 2 on both; the rest are noise, a constant and an
 * all-zero one. Every d, p and q is checked against
 * tests/reference/morphology_reference.py (numpy/scipy), which is told the
 * observations by the caption builder here, not by saecap's tagger. Also:
 * callback = dense, the skip paths (no NaN), the English pronoun analogue,
 * bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/morphology.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/json.h"
#include "pipeline/prepare.h"
#include "tu.h"

#define NF 12
#define MAX_TOK 8192

/* A synthetic dataset: token pieces, their samples, groups, activations. */
typedef struct synth {
  size_t n_samples, n_tok;
  int label[128];
  uint8_t exclude[128];
  int64_t sample[MAX_TOK];
  char *text[MAX_TOK];
  char group[MAX_TOK];  /* 'f' / 'm' on the last piece of a grammatical word, '-' else */
  uint8_t fem_word[MAX_TOK]; /* piece belongs to a feminine grammatical word */
  float *acts;          /* (n_tok, NF) */
} synth;

static void add_piece(synth *s, int64_t smp, const char *p, size_t len, char grp, int fem) {
  assert_true(s->n_tok < MAX_TOK);
  s->sample[s->n_tok] = smp;
  s->text[s->n_tok] = strndup(p, len);
  s->group[s->n_tok] = grp;
  s->fem_word[s->n_tok] = (uint8_t)fem;
  s->n_tok++;
}

/* Adds " word" (no space when first) cut into 1..3 pieces at random byte
 * positions (a UTF-8 sequence may be split); grp marks the last piece. */
static void add_word(synth *s, sc_rng *r, int64_t smp, const char *w, int first, char grp) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s%s", first ? "" : " ", w);
  size_t len = strlen(buf), cuts = 1 + sc_rng_below(r, 3), pos = 0;
  int fem = grp == 'f';
  for (size_t c = 1; c < cuts && pos + 1 < len; c++) {
    size_t at = pos + 1 + sc_rng_below(r, len - pos - 1);
    add_piece(s, smp, buf + pos, at - pos, '-', fem);
    pos = at;
  }
  add_piece(s, smp, buf + pos, len - pos, grp, fem);
}

static void build_arabic_n(synth *s, uint64_t seed, size_t n_labelled) {
  static const char *fem_inan[] = {"طاولة", "سيارة", "شجرة", "الغرفة", "بالسيارة", "حقيبة"};
  static const char *mas_inan[] = {"كتاب", "الباب", "قلم", "كرسي", "بالكتاب", "للقلم"};
  static const char *filler[] = {"في", "على", "مع", "قرب", "يوجد", "أمام"};
  sc_rng r;
  sc_rng_seed(&r, seed);
  memset(s, 0, sizeof *s);
  s->n_samples = n_labelled + 6;
  for (size_t i = 0; i < s->n_samples; i++) {
    s->label[i] = i < n_labelled ? (int)(i % 2) : SC_LABEL_NEUTRAL; /* half male, half female, 6 neutral */
    s->exclude[i] = i == 5 || i == 6;
    int female = s->label[i] == SC_LABEL_FEMALE;
    add_word(s, &r, (int64_t)i, s->label[i] == SC_LABEL_NEUTRAL ? "شخص" : female ? "امرأة" : "رجل", 1, '-');
    add_word(s, &r, (int64_t)i, female ? "تجلس" : "يجلس", 0, '-');
    for (int k = 0; k < 3; k++) {
      add_word(s, &r, (int64_t)i, filler[sc_rng_below(&r, 6)], 0, '-');
      int f = (int)sc_rng_below(&r, 2);
      add_word(s, &r, (int64_t)i, f ? fem_inan[sc_rng_below(&r, 6)] : mas_inan[sc_rng_below(&r, 6)], 0, f ? 'f' : 'm');
    }
    add_piece(s, (int64_t)i, ".", 1, '-', 0);
  }
  s->acts = malloc(s->n_tok * NF * sizeof(float));
  for (size_t t = 0; t < s->n_tok; t++) {
    int female = s->label[s->sample[t]] == SC_LABEL_FEMALE;
    for (int f = 0; f < NF; f++) {
      double z = 0.6 * sc_rng_normal(&r);
      if ((f == 0 || f == 2) && s->fem_word[t]) z += 1.5;
      if ((f == 1 || f == 2) && female) z += 0.9;
      float x = z > 0 ? (float)z : 0.0f;
      if (f == 9) x = (float)(round(2 * z) / 2); /* negatives, zeros and ties */
      if (f == 10) x = 0.5f; /* constant: zero variance, all ties */
      if (f == 11) x = 0.0f; /* never fires: not tested */
      s->acts[t * NF + f] = x;
    }
  }
}

static void build_arabic(synth *s, uint64_t seed) { build_arabic_n(s, seed, 64); }

static void synth_free(synth *s) {
  for (size_t t = 0; t < s->n_tok; t++) free(s->text[t]);
  free(s->acts);
}

static an_morphology_input input_of(const synth *s, an_lang lang) {
  return (an_morphology_input){.lang = lang, .n_samples = s->n_samples, .label = s->label,
                               .exclude = s->exclude, .n_tokens = s->n_tok, .token_sample = s->sample,
                               .token_text = (const char *const *)s->text, .n_features = NF,
                               .acts = s->acts, .top_k = NF};
}

static an_lexicon *load(an_lang lang) {
  an_lexicon *lex = NULL;
  if (an_lexicon_load(lang, &lex)) fail_msg("load: %s", sc_error_get());
  return lex;
}

/* Every number finite; null only where a skipped test leaves one. */
static void assert_no_nan(const sc_json *j, const char *key) {
  if (sc_json_is_number(j) && !isfinite(sc_json_num(j))) fail_msg("%s: non-finite", key ? key : "?");
  if (sc_json_is_null(j) && (!key || (strcmp(key, "skip_reason") && strcmp(key, "grammatical") &&
                                      strcmp(key, "semantic"))))
    fail_msg("%s: null (a NaN printed by cJSON?)", key ? key : "array element");
  for (sc_json *c = sc_json_first(j); c; c = sc_json_next(c))
    assert_no_nan(c, sc_json_is_object(j) ? sc_json_key(c) : NULL);
}

static sc_json *run_ok(const an_lexicon *lex, const an_morphology_input *in) {
  sc_json *o = NULL;
  if (an_morphology_run(lex, in, &o)) fail_msg("morphology: %s", sc_error_get());
  assert_no_nan(o, NULL);
  return o;
}

/* ---- reference ---------------------------------------------------------- */

static void write_meta(const synth *s, const char *dir) {
  char *p = tu_join(dir, "meta.json");
  FILE *fp = fopen(p, "w");
  fprintf(fp, "{\"n_tokens\": %zu, \"n_features\": %d, \"n_samples\": %zu, \"fdr\": 0.05, \"labels\": [",
          s->n_tok, NF, s->n_samples);
  for (size_t i = 0; i < s->n_samples; i++) fprintf(fp, "%s%d", i ? "," : "", s->label[i]);
  fprintf(fp, "], \"exclude\": [");
  for (size_t i = 0; i < s->n_samples; i++) fprintf(fp, "%s%d", i ? "," : "", s->exclude[i]);
  fprintf(fp, "], \"token_sample\": [");
  for (size_t t = 0; t < s->n_tok; t++) fprintf(fp, "%s%lld", t ? "," : "", (long long)s->sample[t]);
  fprintf(fp, "], \"token_group\": [");
  for (size_t t = 0; t < s->n_tok; t++) fprintf(fp, "%s\"%c\"", t ? "," : "", s->group[t]);
  fprintf(fp, "]}\n");
  fclose(fp);
  free(p);
  p = tu_join(dir, "acts.f32");
  tu_write(p, s->acts, s->n_tok * NF * sizeof(float));
  free(p);
}

static sc_json *run_reference(const synth *s) {
  char *dir = tu_tmpdir("morphology_ref");
  write_meta(s, dir);
  char *out = tu_join(dir, "ref.json"), *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 '%s/tests/reference/morphology_reference.py' '%s' '%s'",
                  tu_src(), dir, out);
  if (st) fail_msg("morphology_reference.py: %s", err);
  sc_json *j;
  assert_int_equal(sc_json_load(out, 1 << 24, &j), 0);
  free(err), free(out), free(dir);
  return j;
}

static void close_to(double got, double want, const char *what, int f) {
  double tol = 1e-9 + 1e-7 * fabs(want);
  if (fabs(got - want) > tol) fail_msg("feature %d %s: %.12g vs reference %.12g", f, what, got, want);
}

/* Every tested feature of one test against the reference. */
static void compare_test(const sc_json *mine, const sc_json *ref, const char *nf, const char *nm) {
  assert_int_equal((int)sc_json_num(sc_json_get(mine, nf)), (int)sc_json_num(sc_json_get(ref, "n_f")));
  assert_int_equal((int)sc_json_num(sc_json_get(mine, nm)), (int)sc_json_num(sc_json_get(ref, "n_m")));
  assert_string_equal(sc_json_str(sc_json_get(mine, "status")), "ok");
  sc_json *top = sc_json_get(mine, "top"), *tested = sc_json_get(ref, "tested");
  int n_tested = 0;
  for (int f = 0; f < NF; f++) {
    int v = 0;
    assert_int_equal(sc_json_bool(sc_json_at(tested, f), &v), 0);
    n_tested += v;
  }
  assert_int_equal(sc_json_size(top), n_tested);
  assert_int_equal((int)sc_json_num(sc_json_get(mine, "n_tested")), n_tested);
  for (int i = 0; i < sc_json_size(top); i++) {
    sc_json *e = sc_json_at(top, i);
    int f = (int)sc_json_num(sc_json_get(e, "feature"));
    close_to(sc_json_num(sc_json_get(e, "cohens_d")), sc_json_num(sc_json_at(sc_json_get(ref, "d"), f)), "d", f);
    close_to(sc_json_num(sc_json_get(e, "p")), sc_json_num(sc_json_at(sc_json_get(ref, "p"), f)), "p", f);
    close_to(sc_json_num(sc_json_get(e, "q")), sc_json_num(sc_json_at(sc_json_get(ref, "q"), f)), "q", f);
    if (i) { /* ordered by |d| */
      double prev = fabs(sc_json_num(sc_json_get(sc_json_at(top, i - 1), "cohens_d")));
      assert_true(prev >= fabs(sc_json_num(sc_json_get(e, "cohens_d"))));
    }
  }
}

static const char *class_of(const sc_json *mine, int f) {
  sc_json *list = sc_json_get(mine, "features");
  for (int i = 0; i < sc_json_size(list); i++)
    if ((int)sc_json_num(sc_json_get(sc_json_at(list, i), "feature")) == f)
      return sc_json_str(sc_json_get(sc_json_at(list, i), "class"));
  return "neither";
}

static void test_planted_vs_reference(void **state) {
  (void)state;
  static synth s;
  build_arabic(&s, 20261126);
  an_lexicon *lex = load(AN_LANG_AR);
  an_morphology_input in = input_of(&s, AN_LANG_AR);
  sc_json *mine = run_ok(lex, &in), *ref = run_reference(&s);
  compare_test(sc_json_get(mine, "grammatical"), sc_json_get(ref, "grammatical"), "n_feminine", "n_masculine");
  compare_test(sc_json_get(mine, "semantic"), sc_json_get(ref, "semantic"), "n_female", "n_male");
  for (int f = 0; f < NF; f++) {
    const char *want = sc_json_str(sc_json_at(sc_json_get(ref, "classes"), f));
    if (strcmp(class_of(mine, f), want)) fail_msg("feature %d: class %s, reference %s", f, class_of(mine, f), want);
  }
  /* the planted structure itself */
  assert_string_equal(class_of(mine, 0), "grammatical");
  assert_string_equal(class_of(mine, 1), "semantic");
  assert_string_equal(class_of(mine, 2), "both");
  sc_json *cls = sc_json_get(mine, "classification");
  assert_string_equal(sc_json_str(sc_json_get(cls, "status")), "ok");
  assert_int_equal((int)sc_json_num(sc_json_get(cls, "both")), 1);
  assert_int_equal((int)sc_json_num(sc_json_get(cls, "both_same_direction")), 1);
  /* samples 5, 6 excluded; 64 labelled minus those two in the semantic test */
  sc_json *tag = sc_json_get(mine, "tagging");
  assert_int_equal((int)sc_json_num(sc_json_get(tag, "n_samples_excluded")), 2);
  assert_int_equal((int)sc_json_num(sc_json_get(tag, "n_samples")), 68);
  sc_json *sem = sc_json_get(mine, "semantic");
  assert_int_equal((int)(sc_json_num(sc_json_get(sem, "n_female")) + sc_json_num(sc_json_get(sem, "n_male"))), 62);
  /* constant and silent features */
  sc_json *top = sc_json_get(sc_json_get(mine, "grammatical"), "top");
  int saw10 = 0;
  for (int i = 0; i < sc_json_size(top); i++) {
    sc_json *e = sc_json_at(top, i);
    int f = (int)sc_json_num(sc_json_get(e, "feature"));
    assert_int_not_equal(f, 11);
    if (f == 10) {
      saw10 = 1;
      assert_string_equal(sc_json_str(sc_json_get(e, "status")), "all_ties");
      assert_true(sc_json_num(sc_json_get(e, "p")) == 1.0);
    }
  }
  assert_true(saw10);
  sc_json_free(mine), sc_json_free(ref);
  an_lexicon_free(lex);
  synth_free(&s);
}

/* Groups of at most 8 samples: the semantic test takes the dense path
 * (an_mannwhitney, exact p when nothing is tied). */
static void test_small_groups_vs_reference(void **state) {
  (void)state;
  static synth s;
  build_arabic_n(&s, 99, 12);
  an_lexicon *lex = load(AN_LANG_AR);
  an_morphology_input in = input_of(&s, AN_LANG_AR);
  in.min_samples = 2;
  sc_json *mine = run_ok(lex, &in), *ref = run_reference(&s);
  compare_test(sc_json_get(mine, "grammatical"), sc_json_get(ref, "grammatical"), "n_feminine", "n_masculine");
  compare_test(sc_json_get(mine, "semantic"), sc_json_get(ref, "semantic"), "n_female", "n_male");
  assert_true(sc_json_num(sc_json_get(sc_json_get(mine, "semantic"), "n_female")) <= 8);
  sc_json_free(mine), sc_json_free(ref);
  an_lexicon_free(lex);
  synth_free(&s);
}

/* ---- callback, skips ---------------------------------------------------- */

static int rows_cb(void *user, size_t tok0, size_t n, float *out) {
  const synth *s = user;
  memcpy(out, s->acts + tok0 * NF, n * NF * sizeof(float));
  return 0;
}

static int rows_fail(void *user, size_t tok0, size_t n, float *out) {
  (void)user, (void)out, (void)n;
  return sc_error_setc(SC_ERR_IO, "store: row %zu unreadable", tok0);
}

static void test_callback_and_skips(void **state) {
  (void)state;
  static synth s;
  build_arabic(&s, 7);
  an_lexicon *lex = load(AN_LANG_AR);
  an_morphology_input in = input_of(&s, AN_LANG_AR);
  sc_json *a = run_ok(lex, &in);
  in.acts = NULL, in.rows = rows_cb, in.user = &s;
  sc_json *b = run_ok(lex, &in);
  char *ta = sc_json_print(a, 0), *tb = sc_json_print(b, 0);
  assert_string_equal(ta, tb);
  free(ta), free(tb), sc_json_free(a), sc_json_free(b);
  /* too few samples per label: semantic skipped, classes untested */
  in.min_samples = 1000;
  sc_json *c = run_ok(lex, &in);
  sc_json *sem = sc_json_get(c, "semantic");
  assert_string_equal(sc_json_str(sc_json_get(sem, "status")), "skipped");
  assert_non_null(strstr(sc_json_str(sc_json_get(sem, "skip_reason")), "too few samples"));
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(c, "classification"), "status")), "skipped");
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_get(c, "classification"), "untested")), NF);
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(c, "grammatical"), "status")), "ok");
  sc_json_free(c);
  /* no tokens at all: both skipped, still valid JSON */
  in.min_samples = 0, in.n_tokens = 0;
  c = run_ok(lex, &in);
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(c, "grammatical"), "status")), "skipped");
  sc_json_free(c);
  /* the callback's error is passed on */
  in.n_tokens = s.n_tok, in.rows = rows_fail;
  sc_json *d = (sc_json *)&d;
  assert_int_equal(an_morphology_run(lex, &in, &d), SC_ERR_IO);
  assert_null(d);
  assert_string_equal(sc_error_get(), "store: row 0 unreadable");
  an_lexicon_free(lex);
  synth_free(&s);
}

static void test_bad_input(void **state) {
  (void)state;
  static synth s;
  build_arabic(&s, 3);
  an_lexicon *lex = load(AN_LANG_AR), *en = load(AN_LANG_EN);
  an_morphology_input in = input_of(&s, AN_LANG_AR);
  sc_json *o;
  s.acts[5 * NF + 3] = NAN;
  assert_int_equal(an_morphology_run(lex, &in, &o), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "morphology: token 5 feature 3: non-finite activation");
  s.acts[5 * NF + 3] = 0;
  size_t t = 200; /* well inside sample > 0 */
  int64_t keep = s.sample[t];
  assert_true(keep > 0);
  s.sample[t] = 0;
  assert_int_equal(an_morphology_run(lex, &in, &o), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "token 200: sample index 0 after"));
  s.sample[t] = 99;
  assert_int_equal(an_morphology_run(lex, &in, &o), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "token 200: sample index 99 outside [0, 70)"));
  s.sample[t] = keep;
  in.n_features = 0;
  assert_int_equal(an_morphology_run(lex, &in, &o), SC_ERR_ARG);
  in.n_features = NF;
  assert_int_equal(an_morphology_run(en, &in, &o), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "lexicon is en"));
  an_lexicon_free(lex), an_lexicon_free(en);
  synth_free(&s);
}

/* ---- English: the pronoun analogue ---------------------------------------- */

static void test_english_pronouns(void **state) {
  (void)state;
  static synth s;
  memset(&s, 0, sizeof s);
  sc_rng r;
  sc_rng_seed(&r, 11);
  static const char *she[] = {"she", "her", "hers", "herself"}, *he[] = {"he", "him", "his", "himself"};
  s.n_samples = 40;
  size_t n_she = 0, n_he = 0;
  for (size_t i = 0; i < s.n_samples; i++) {
    s.label[i] = (int)(i % 2);
    add_word(&s, &r, (int64_t)i, "A", 1, '-');
    add_word(&s, &r, (int64_t)i, "person", 0, '-');
    for (int k = 0; k < 2; k++) {
      int f = (int)sc_rng_below(&r, 2);
      add_word(&s, &r, (int64_t)i, f ? she[sc_rng_below(&r, 4)] : he[sc_rng_below(&r, 4)], 0, f ? 'f' : 'm');
      *(f ? &n_she : &n_he) += 1;
      add_word(&s, &r, (int64_t)i, "there", 0, '-'); /* contains "he", "her": no observation */
    }
  }
  s.acts = malloc(s.n_tok * NF * sizeof(float));
  for (size_t t = 0; t < s.n_tok; t++)
    for (int f = 0; f < NF; f++) {
      double z = 0.5 * sc_rng_normal(&r) + (f == 0 && s.fem_word[t] ? 2.0 : 0.0);
      s.acts[t * NF + f] = z > 0 ? (float)z : 0.0f;
    }
  an_lexicon *lex = load(AN_LANG_EN);
  an_morphology_input in = input_of(&s, AN_LANG_EN);
  sc_json *o = run_ok(lex, &in), *ref = run_reference(&s);
  sc_json *g = sc_json_get(o, "grammatical");
  assert_int_equal((int)sc_json_num(sc_json_get(g, "n_feminine")), (int)n_she);
  assert_int_equal((int)sc_json_num(sc_json_get(g, "n_masculine")), (int)n_he);
  compare_test(g, sc_json_get(ref, "grammatical"), "n_feminine", "n_masculine");
  assert_string_equal(class_of(o, 0), "grammatical");
  assert_non_null(strstr(sc_json_str(sc_json_get(g, "selection")), "pronouns"));
  sc_json_free(o), sc_json_free(ref);
  an_lexicon_free(lex);
  synth_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_planted_vs_reference),
      cmocka_unit_test(test_small_groups_vs_reference),
      cmocka_unit_test(test_callback_and_skips),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_english_pronouns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
