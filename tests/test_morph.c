/* test_morph.c: the Arabic grammatical-gender tagger (lexicon + rules),
 * animacy, the English pronoun analogue, and the token -> word mapping of
 * an_morph_tag_tokens. Every expectation is written by hand from the
 * grammar (feminine ة, ـات, ت-/ي- imperfect prefixes, perfect ـت). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/morph.h"
#include "base/error.h"
#include "tu.h"

static an_lexicon *load(an_lang lang) {
  an_lexicon *lex = NULL;
  if (an_lexicon_load(lang, &lex)) fail_msg("load: %s", sc_error_get());
  return lex;
}

typedef struct word_case {
  const char *word;
  an_gender gender;
  an_animacy animacy;
  an_morph_src src;
} word_case;

static void check_words(an_lexicon *lex, const word_case *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    an_morph_tag t;
    an_morph_word(lex, c[i].word, strlen(c[i].word), &t);
    if (t.gender != c[i].gender || t.animacy != c[i].animacy || t.src != c[i].src)
      fail_msg("'%s': got %s/%s/%s, expected %s/%s/%s", c[i].word, an_gender_name(t.gender),
               an_animacy_name(t.animacy), an_morph_src_name(t.src), an_gender_name(c[i].gender),
               an_animacy_name(c[i].animacy), an_morph_src_name(c[i].src));
  }
}

#define M AN_GENDER_MALE
#define F AN_GENDER_FEMALE
#define N AN_GENDER_NONE
#define ANIM AN_ANIM_ANIMATE
#define INAN AN_ANIM_INANIMATE
#define UNK AN_ANIM_UNKNOWN

static void test_arabic_lexicon_words(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_AR);
  static const word_case c[] = {
      {"رجل", M, ANIM, AN_MSRC_LEXICON},       {"امرأة", F, ANIM, AN_MSRC_LEXICON},
      {"والمرأة", F, ANIM, AN_MSRC_LEXICON},   {"ولد", M, ANIM, AN_MSRC_LEXICON},
      {"بنت", F, ANIM, AN_MSRC_LEXICON},       {"طاولة", F, INAN, AN_MSRC_LEXICON},
      {"الطاولة", F, INAN, AN_MSRC_LEXICON},   {"سيارة", F, INAN, AN_MSRC_LEXICON},
      {"شجرة", F, INAN, AN_MSRC_LEXICON},      {"كتاب", M, INAN, AN_MSRC_LEXICON},
      {"باب", M, INAN, AN_MSRC_LEXICON},       {"بالباب", M, INAN, AN_MSRC_LEXICON},
      {"شمس", F, INAN, AN_MSRC_LEXICON},       {"يد", F, INAN, AN_MSRC_LEXICON},
      {"هذا", M, UNK, AN_MSRC_LEXICON},        {"هذه", F, UNK, AN_MSRC_LEXICON},
      {"ذلك", M, UNK, AN_MSRC_LEXICON},        {"تلك", F, UNK, AN_MSRC_LEXICON},
      {"الذي", M, UNK, AN_MSRC_LEXICON},       {"التي", F, UNK, AN_MSRC_LEXICON},
      {"هو", M, UNK, AN_MSRC_LEXICON},         {"هي", F, UNK, AN_MSRC_LEXICON},
      {"يلعب", M, UNK, AN_MSRC_LEXICON},       {"تلعب", F, UNK, AN_MSRC_LEXICON},
      {"جميل", M, UNK, AN_MSRC_LEXICON},       {"جميلة", F, UNK, AN_MSRC_LEXICON},
      {"الملكة", F, ANIM, AN_MSRC_LEXICON},    {"أمها", F, ANIM, AN_MSRC_LEXICON},
  };
  check_words(lex, c, sizeof c / sizeof c[0]);
  an_lexicon_free(lex);
}

static void test_arabic_rules(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_AR);
  static const word_case c[] = {
      /* final ة on words outside the lexicon */
      {"حمراء", N, UNK, AN_MSRC_NONE},          /* فعلاء feminine: no rule, no entry */
      {"خشبية", F, UNK, AN_MSRC_TA_MARBUTA},
      {"الخشبية", F, UNK, AN_MSRC_TA_MARBUTA},
      {"والمظلمة", F, UNK, AN_MSRC_TA_MARBUTA},
      {"مَدِينَةٌ", F, INAN, AN_MSRC_LEXICON},
      {"بحيرةٌ", F, INAN, AN_MSRC_LEXICON},
      {"مكتوبة", F, UNK, AN_MSRC_TA_MARBUTA},
      /* feminine sound plural */
      {"سيارات", F, UNK, AN_MSRC_FEM_PLURAL},
      {"الطاولات", F, UNK, AN_MSRC_FEM_PLURAL},
      /* imperfect prefixes, not after the article */
      {"تشاهد", F, UNK, AN_MSRC_VERB_PREFIX},
      {"وتشاهد", F, UNK, AN_MSRC_VERB_PREFIX},
      {"يشاهد", M, UNK, AN_MSRC_VERB_PREFIX},
      {"التشاهد", N, UNK, AN_MSRC_NONE},
      {"تصميم", N, UNK, AN_MSRC_NONE},          /* تفعيل verbal noun */
      {"تمثال", M, INAN, AN_MSRC_LEXICON},
      {"ترتيب", N, UNK, AN_MSRC_NONE},
      /* perfect ـت */
      {"غسلت", F, UNK, AN_MSRC_VERB_SUFFIX},
      {"بيوت", N, UNK, AN_MSRC_NONE},            /* plural of بيت */
      {"صوت", N, UNK, AN_MSRC_NONE},             /* too short for a verb + ت */
      /* nothing to go on */
      {"قلم", M, INAN, AN_MSRC_LEXICON},
      {"ماء", M, INAN, AN_MSRC_LEXICON},
      {"في", N, UNK, AN_MSRC_NONE},
      {"على", N, UNK, AN_MSRC_NONE},
      {"أمام", N, UNK, AN_MSRC_NONE},
      {"", N, UNK, AN_MSRC_NONE},
  };
  check_words(lex, c, sizeof c / sizeof c[0]);
  an_lexicon_free(lex);
}

static void test_english_pronouns(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_EN);
  static const word_case c[] = {
      {"he", M, ANIM, AN_MSRC_LEXICON},    {"Him", M, ANIM, AN_MSRC_LEXICON},
      {"his", M, ANIM, AN_MSRC_LEXICON},   {"himself", M, ANIM, AN_MSRC_LEXICON},
      {"she", F, ANIM, AN_MSRC_LEXICON},   {"HER", F, ANIM, AN_MSRC_LEXICON},
      {"hers", F, ANIM, AN_MSRC_LEXICON},  {"herself", F, ANIM, AN_MSRC_LEXICON},
      {"man", M, ANIM, AN_MSRC_LEXICON},   {"table", N, UNK, AN_MSRC_NONE},
      {"there", N, UNK, AN_MSRC_NONE},     {"tables", N, UNK, AN_MSRC_NONE},
  };
  check_words(lex, c, sizeof c / sizeof c[0]);
  an_morph_tag t;
  an_morph_word(lex, "she", 3, &t);
  assert_int_equal(t.wclass, AN_WC_PRONOUN);
  assert_string_equal(t.lemma, "she");
  an_lexicon_free(lex);
}

/* Token pieces as a tokenizer would cut them: words split inside, a UTF-8
 * sequence split across two pieces, leading spaces, punctuation alone. */
static void test_tag_tokens_arabic(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_AR);
  /* "امرأة تجلس على الطاولة." with الطاولة cut as "الط" "\xd8" "\xa7ولة" */
  const char *p[] = {"امر", "أة", " تجلس", " على", " الط", "\xd8", "\xa7ولة", ".", ""};
  size_t n = sizeof p / sizeof p[0], len[9];
  for (size_t i = 0; i < n; i++) len[i] = strlen(p[i]);
  an_morph_tag t[9];
  int32_t wi[9];
  assert_int_equal(an_morph_tag_tokens(lex, p, len, n, t, wi), 0);
  static const int32_t ew[9] = {0, 0, 1, 2, 3, 3, 3, -1, -1};
  static const an_gender eg[9] = {F, F, F, N, F, F, F, N, N};
  static const an_animacy ea[9] = {ANIM, ANIM, UNK, UNK, INAN, INAN, INAN, UNK, UNK};
  for (size_t i = 0; i < n; i++) {
    if (wi[i] != ew[i] || t[i].gender != eg[i] || t[i].animacy != ea[i])
      fail_msg("token %zu '%s': word %d %s %s", i, p[i], wi[i], an_gender_name(t[i].gender),
               an_animacy_name(t[i].animacy));
  }
  assert_int_equal(t[2].src, AN_MSRC_LEXICON);
  assert_string_equal(t[4].lemma, "طاولة");
  /* word_index may be NULL; no tokens at all */
  assert_int_equal(an_morph_tag_tokens(lex, p, len, n, t, NULL), 0);
  assert_int_equal(an_morph_tag_tokens(lex, NULL, NULL, 0, t, wi), 0);
  an_lexicon_free(lex);
}

static void test_tag_tokens_english(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_EN);
  const char *p[] = {"She", "'s", " holding", " his", " um", "brella", ",", " the", "re"};
  size_t n = sizeof p / sizeof p[0], len[9];
  for (size_t i = 0; i < n; i++) len[i] = strlen(p[i]);
  an_morph_tag t[9];
  int32_t wi[9];
  assert_int_equal(an_morph_tag_tokens(lex, p, len, n, t, wi), 0);
  /* words: She, s, holding, his, umbrella, there */
  static const int32_t ew[9] = {0, 1, 2, 3, 4, 4, -1, 5, 5};
  static const an_gender eg[9] = {F, N, N, M, N, N, N, N, N};
  for (size_t i = 0; i < n; i++)
    if (wi[i] != ew[i] || t[i].gender != eg[i])
      fail_msg("token %zu '%s': word %d %s", i, p[i], wi[i], an_gender_name(t[i].gender));
  an_lexicon_free(lex);
}

/* The lexicon's next-word exceptions hold in captions too. */
static void test_tag_tokens_context(void **state) {
  (void)state;
  an_lexicon *lex = load(AN_LANG_EN);
  const char *p[] = {"a", " queen", " size", " bed", " and", " a", " queen"};
  size_t n = 7, len[7];
  for (size_t i = 0; i < n; i++) len[i] = strlen(p[i]);
  an_morph_tag t[7];
  assert_int_equal(an_morph_tag_tokens(lex, p, len, n, t, NULL), 0);
  assert_int_equal(t[1].gender, N);
  assert_int_equal(t[6].gender, F);
  an_lexicon_free(lex);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_arabic_lexicon_words), cmocka_unit_test(test_arabic_rules),
      cmocka_unit_test(test_english_pronouns),     cmocka_unit_test(test_tag_tokens_arabic),
      cmocka_unit_test(test_tag_tokens_english),   cmocka_unit_test(test_tag_tokens_context),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
