/* fuzz_lexicon.c: libFuzzer target for the gender-word matcher and the
 * morphology tagger on arbitrary bytes (what `saecap gender-words` reads on
 * stdin, and caption token pieces that may split UTF-8). The first byte picks
 * the language and how the rest is cut into token pieces. Checks: spans lie
 * in the text, in order, on word boundaries; count agrees with match; every
 * token maps to a word it overlaps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/lexicon.h"
#include "analysis/morph.h"

static an_lexicon *g_lex[2];

static void check_matches(const an_lexicon *lex, const char *s, size_t n) {
  an_match *m = NULL;
  size_t k = 0;
  if (an_lexicon_match(lex, s, n, AN_WC_COUNTED, &m, &k)) return;
  int male = -1, female = -1;
  an_lexicon_count(lex, s, n, &male, &female);
  if ((size_t)(male + female) != k) __builtin_trap();
  size_t prev = 0;
  for (size_t i = 0; i < k; i++) {
    if (m[i].begin < prev || m[i].end <= m[i].begin || m[i].end > n) __builtin_trap();
    if (m[i].gender != AN_GENDER_MALE && m[i].gender != AN_GENDER_FEMALE) __builtin_trap();
    if (!m[i].lemma || !m[i].form) __builtin_trap();
    an_match again;
    if (!an_lexicon_lookup(lex, s + m[i].begin, m[i].end - m[i].begin, &again) || again.gender != m[i].gender)
      __builtin_trap();
    prev = m[i].end;
  }
  free(m);
}

static void check_tokens(const an_lexicon *lex, const char *s, size_t n, unsigned step) {
  size_t cap = n / step + 2, np = 0;
  const char **piece = malloc(cap * sizeof *piece);
  size_t *len = malloc(cap * sizeof *len);
  an_morph_tag *tag = malloc(cap * sizeof *tag);
  int32_t *wi = malloc(cap * sizeof *wi);
  if (!piece || !len || !tag || !wi) goto done;
  for (size_t o = 0; o < n; o += step) {
    piece[np] = s + o;
    len[np++] = n - o < step ? n - o : step;
  }
  if (an_morph_tag_tokens(lex, piece, len, np, tag, wi)) goto done;
  int32_t last = -1;
  for (size_t i = 0; i < np; i++) {
    if (wi[i] >= 0 && wi[i] < last) __builtin_trap();
    if (wi[i] >= 0) last = wi[i];
    if (wi[i] < 0 && tag[i].gender != AN_GENDER_NONE) __builtin_trap();
  }
done:
  free(piece), free(len), free(tag), free(wi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  an_lang lang = data[0] & 1 ? AN_LANG_AR : AN_LANG_EN;
  if (!g_lex[lang] && an_lexicon_load(lang, &g_lex[lang])) return 0;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;
  check_matches(g_lex[lang], s, n);
  check_tokens(g_lex[lang], s, n, 1u + (data[0] >> 1) % 7u);
  an_morph_tag t;
  an_morph_word(g_lex[lang], s, n, &t);
  unsigned char leak;
  char *z = malloc(n + 1);
  if (z) {
    memcpy(z, s, n), z[n] = 0;
    const char *p = z;
    an_lexicon_scan_leaks(g_lex[lang], &p, 1, &leak);
    free(z);
  }
  return 0;
}
