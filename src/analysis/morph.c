/* morph.c: grammatical gender + animacy of words and caption tokens
 * (contract in morph.h). The rules follow the feminine markers of Modern
 * Standard Arabic (Wright, A Grammar of the Arabic Language §§289-297;
 * Ryding, A Reference Grammar of MSA ch. 6): final ة, the sound feminine
 * plural ـات, the imperfect prefixes ي- (3rd masc. sg.) and ت- (3rd fem.
 * sg.), and the perfect suffix ـت (3rd fem. sg.). Each rule is guarded so
 * that the common nouns with the same shapes do not fire it. */
#include "analysis/morph.h"

#include <stdlib.h>
#include <string.h>

#include "analysis/lexicon_data.h"
#include "base/error.h"

enum {
  AR_ALEF = 0x0627, AR_BEH = 0x0628, AR_TEH_MARBUTA = 0x0629, AR_TEH = 0x062A, AR_FEH = 0x0641,
  AR_KAF = 0x0643, AR_LAM = 0x0644, AR_WAW = 0x0648, AR_YEH = 0x064A
};

const char *an_animacy_name(an_animacy a) {
  return a == AN_ANIM_ANIMATE ? "animate" : a == AN_ANIM_INANIMATE ? "inanimate" : "unknown";
}

const char *an_morph_src_name(an_morph_src s) {
  static const char *names[] = {"none", "lexicon", "ta_marbuta", "fem_plural", "verb_prefix", "verb_suffix"};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "none";
}

static an_animacy animacy_of(an_lang lang, an_wclass c) {
  switch (c) {
    case AN_WC_NOUN: case AN_WC_KIN: case AN_WC_TITLE: return AN_ANIM_ANIMATE;
    /* English he/she name people; Arabic هو/هي also stand for things */
    case AN_WC_PRONOUN: return lang == AN_LANG_EN ? AN_ANIM_ANIMATE : AN_ANIM_UNKNOWN;
    case AN_WC_INANIMATE: return AN_ANIM_INANIMATE;
    default: return AN_ANIM_UNKNOWN;
  }
}

/* Strips the conjunction and the nominal prefixes (ال، لل، ب/ك/ل + ال).
 * Sets *nominal when the word carries the article (so it is no verb) and
 * returns the offset of the stem. */
static size_t ar_stem(const int32_t *c, size_t n, int *nominal) {
  size_t p = 0;
  *nominal = 0;
  if (n >= 4 && (c[0] == AR_WAW || c[0] == AR_FEH)) p = 1;
  if (n - p >= 4 && c[p] == AR_ALEF && c[p + 1] == AR_LAM) {
    *nominal = 1;
    return p + 2;
  }
  if (n - p >= 4 && c[p] == AR_LAM && c[p + 1] == AR_LAM) {
    *nominal = 1;
    return p + 2;
  }
  if (n - p >= 5 && (c[p] == AR_BEH || c[p] == AR_KAF || c[p] == AR_LAM) && c[p + 1] == AR_ALEF &&
      c[p + 2] == AR_LAM) {
    *nominal = 1;
    return p + 3;
  }
  return p;
}

static void ar_rules(const int32_t *c, size_t n, an_morph_tag *out) {
  int nominal;
  size_t p = ar_stem(c, n, &nominal);
  const int32_t *s = c + p;
  size_t m = n - p;
  int ends_at = m >= 4 && s[m - 2] == AR_ALEF && s[m - 1] == AR_TEH;
  an_gender g = AN_GENDER_NONE;
  an_morph_src src = AN_MSRC_NONE;
  if (m >= 3 && s[m - 1] == AR_TEH_MARBUTA) g = AN_GENDER_FEMALE, src = AN_MSRC_TA_MARBUTA;
  else if (ends_at) g = AN_GENDER_FEMALE, src = AN_MSRC_FEM_PLURAL;
  else if (!nominal && (s[0] == AR_TEH || s[0] == AR_YEH) && m >= 4 && m <= 6 &&
           /* the verbal nouns تفعيل / تفعال (تصميم، تمثال) share the shape */
           !(m == 5 && (s[3] == AR_YEH || s[3] == AR_ALEF)))
    g = s[0] == AR_TEH ? AN_GENDER_FEMALE : AN_GENDER_MALE, src = AN_MSRC_VERB_PREFIX;
  else if (!nominal && m >= 4 && m <= 5 && s[m - 1] == AR_TEH && s[m - 2] != AR_ALEF &&
           s[m - 2] != AR_WAW && s[m - 2] != AR_YEH) /* not بيوت، ياقوت */
    g = AN_GENDER_FEMALE, src = AN_MSRC_VERB_SUFFIX;
  out->gender = g;
  out->src = src;
}

/* Tags text[b..e) of text[0..len) (the lexicon's next-word exceptions apply). */
static void tag_at(const an_lexicon *lex, const char *text, size_t len, size_t b, size_t e, an_morph_tag *out) {
  *out = (an_morph_tag){AN_GENDER_NONE, AN_ANIM_UNKNOWN, AN_MSRC_NONE, -1, NULL};
  an_match m;
  an_lang lang = an_lexicon_lang(lex);
  const char *word = text + b;
  size_t wlen = e - b;
  if (an_lexicon_lookup_at(lex, text, len, b, e, &m)) {
    out->gender = m.gender;
    out->animacy = animacy_of(lang, m.wclass);
    out->src = AN_MSRC_LEXICON;
    out->wclass = (int)m.wclass;
    out->lemma = m.lemma;
    return;
  }
  if (lang != AN_LANG_AR) return;
  int32_t c[AN_LEXICON_MAX_CPS];
  size_t n = an_lexicon_normalize(word, wlen, c, AN_LEXICON_MAX_CPS);
  if (n == (size_t)-1 || n < 2) return;
  ar_rules(c, n, out);
}

void an_morph_word(const an_lexicon *lex, const char *word, size_t len, an_morph_tag *out) {
  tag_at(lex, word, len, 0, len, out);
}

/* ---- caption tokens ----------------------------------------------------- */

typedef struct span_vec {
  size_t (*v)[2];
  size_t n, cap;
} span_vec;

static int push_word(void *user, size_t b, size_t e) {
  span_vec *w = user;
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 32;
    void *g = realloc(w->v, cap * sizeof *w->v);
    if (!g) return SC_ERR_NOMEM;
    w->v = g, w->cap = cap;
  }
  w->v[w->n][0] = b, w->v[w->n][1] = e;
  w->n++;
  return 0;
}

int an_morph_tag_tokens(const an_lexicon *lex, const char *const *piece, const size_t *piece_len,
                        size_t n, an_morph_tag *out, int32_t *word_index) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += piece_len[i];
  char *text = malloc(total ? total : 1);
  span_vec w = {0};
  an_morph_tag *wt = NULL;
  if (!text) goto nomem;
  for (size_t i = 0, o = 0; i < n; o += piece_len[i], i++)
    if (piece_len[i]) memcpy(text + o, piece[i], piece_len[i]);
  if (an_words(text, total, push_word, &w)) goto nomem;
  wt = malloc((w.n ? w.n : 1) * sizeof *wt);
  if (!wt) goto nomem;
  for (size_t k = 0; k < w.n; k++) tag_at(lex, text, total, w.v[k][0], w.v[k][1], &wt[k]);
  size_t j = 0, s = 0;
  for (size_t i = 0; i < n; s += piece_len[i], i++) {
    size_t e = s + piece_len[i];
    while (j < w.n && w.v[j][1] <= s) j++;
    int hit = piece_len[i] && j < w.n && w.v[j][0] < e;
    out[i] = hit ? wt[j] : (an_morph_tag){AN_GENDER_NONE, AN_ANIM_UNKNOWN, AN_MSRC_NONE, -1, NULL};
    if (word_index) word_index[i] = hit ? (int32_t)j : -1;
  }
  free(wt), free(w.v), free(text);
  return 0;
nomem:
  free(wt), free(w.v), free(text);
  return sc_error_setc(SC_ERR_NOMEM, "morph: out of memory");
}
