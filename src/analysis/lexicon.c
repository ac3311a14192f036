/* lexicon.c: the compiled-in gender lexicons and the whole-word matcher
 * (contract in lexicon.h). Entries are normalised at load time with the same
 * function as the text, so the two can never disagree about ة, ى or hamza. */
#include "analysis/lexicon.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/lexicon_data.h"
#include "base/error.h"
#include "base/utf8.h"

/* Arabic letters the clitic rules test. */
enum {
  AR_ALEF = 0x0627, AR_BEH = 0x0628, AR_TEH_MARBUTA = 0x0629, AR_TEH = 0x062A, AR_FEH = 0x0641,
  AR_KAF = 0x0643, AR_LAM = 0x0644, AR_MEEM = 0x0645, AR_NOON = 0x0646, AR_HEH = 0x0647,
  AR_WAW = 0x0648, AR_YEH = 0x064A
};

typedef struct lex_key {
  char *key;    /* normalised form, UTF-8, NUL-terminated */
  uint32_t idx; /* index into the entry table */
} lex_key;

struct an_lexicon {
  an_lang lang;
  const an_lexicon_entry *ent; /* (n) compiled-in entries */
  size_t n;
  lex_key *keys;               /* (n) sorted by key */
  size_t n_conflicts;          /* forms that normalise onto another form */
};

/* ==== normalisation ==================================================== */

/* One code point after compatibility folding: the Arabic unifications that
 * Unicode does not do itself. Returns 0 to drop the code point. */
static int32_t ar_unify(int32_t c) {
  switch (c) {
    case 0x0671: return AR_ALEF;          /* alef wasla */
    case 0x0649: return AR_YEH;           /* alef maqsura */
    case 0x06CC: return AR_YEH;           /* Farsi yeh */
    case 0x06A9: return AR_KAF;           /* keheh */
    case 0x0640: case 0x200C: case 0x200D: return 0; /* tatweel, ZWNJ, ZWJ */
    default: return c;
  }
}

size_t an_lexicon_normalize(const char *s, size_t len, int32_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    int32_t cp, tmp[18];
    int k = sc_utf8_next(s + i, len - i, &cp);
    if (k < 0) { i++; continue; }
    i += (size_t)k;
    int m = sc_utf8_fold_char(cp, 1, tmp, sizeof tmp / sizeof tmp[0]);
    if (m < 0 || m > (int)(sizeof tmp / sizeof tmp[0])) continue;
    for (int j = 0; j < m; j++) {
      int32_t c = ar_unify(tmp[j]);
      if (!c) continue;
      if (n == cap) return (size_t)-1;
      out[n++] = c;
    }
  }
  return n;
}

/* Code points to a NUL-terminated UTF-8 key in buf (4*n+1 bytes room). */
static void encode_key(const int32_t *c, size_t n, char *buf) {
  size_t b = 0;
  for (size_t i = 0; i < n; i++) b += (size_t)sc_utf8_encode(c[i], buf + b);
  buf[b] = 0;
}

/* ==== loading ========================================================== */

static int key_cmp(const void *a, const void *b) {
  const lex_key *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

int an_lexicon_load(an_lang lang, an_lexicon **out) {
  *out = NULL;
  if (lang != AN_LANG_EN && lang != AN_LANG_AR) return sc_error_setc(SC_ERR_ARG, "lexicon: unknown language %d", (int)lang);
  an_lexicon *lex = calloc(1, sizeof *lex);
  if (!lex) return sc_error_setc(SC_ERR_NOMEM, "lexicon: out of memory");
  lex->lang = lang;
  lex->ent = lang == AN_LANG_EN ? an_lexicon_data_en : an_lexicon_data_ar;
  lex->n = lang == AN_LANG_EN ? an_lexicon_data_en_n : an_lexicon_data_ar_n;
  lex->keys = calloc(lex->n ? lex->n : 1, sizeof *lex->keys);
  if (!lex->keys) goto nomem;
  for (size_t i = 0; i < lex->n; i++) {
    int32_t cps[AN_LEXICON_MAX_CPS];
    size_t m = an_lexicon_normalize(lex->ent[i].form, strlen(lex->ent[i].form), cps, AN_LEXICON_MAX_CPS);
    if (m == (size_t)-1) m = 0; /* cannot happen for the shipped lists; the entry then never matches */
    lex->keys[i].key = malloc(4 * m + 1);
    if (!lex->keys[i].key) goto nomem;
    encode_key(cps, m, lex->keys[i].key);
    lex->keys[i].idx = (uint32_t)i;
  }
  qsort(lex->keys, lex->n, sizeof *lex->keys, key_cmp);
  /* On a clash the entry listed first in the .tsv wins (bsearch below finds the
   * lowest idx); the count is reported by an_lexicon_conflicts for the test. */
  for (size_t i = 1; i < lex->n; i++)
    if (!strcmp(lex->keys[i].key, lex->keys[i - 1].key)) lex->n_conflicts++;
  *out = lex;
  return 0;
nomem:
  an_lexicon_free(lex);
  return sc_error_setc(SC_ERR_NOMEM, "lexicon: out of memory");
}

void an_lexicon_free(an_lexicon *lex) {
  if (!lex) return;
  if (lex->keys)
    for (size_t i = 0; i < lex->n; i++) free(lex->keys[i].key);
  free(lex->keys);
  free(lex);
}

an_lang an_lexicon_lang(const an_lexicon *lex) { return lex->lang; }
size_t an_lexicon_size(const an_lexicon *lex) { return lex->n; }
size_t an_lexicon_conflicts(const an_lexicon *lex) { return lex->n_conflicts; }

/* ==== names ============================================================ */

int an_lang_parse(const char *s, an_lang *out) {
  if (s && !strcmp(s, "en")) *out = AN_LANG_EN;
  else if (s && !strcmp(s, "ar")) *out = AN_LANG_AR;
  else return sc_error_setc(SC_ERR_ARG, "unknown language '%.40s' (expected en or ar)", s ? s : "");
  return 0;
}

const char *an_lang_name(an_lang lang) { return lang == AN_LANG_AR ? "ar" : "en"; }

const char *an_gender_name(an_gender g) {
  return g == AN_GENDER_MALE ? "male" : g == AN_GENDER_FEMALE ? "female" : "none";
}

const char *an_wclass_name(an_wclass c) {
  static const char *names[AN_WC_COUNT_] = {"noun", "kin", "title", "pronoun", "adj",
                                            "verb", "demonstrative", "relative", "inanimate"};
  return (unsigned)c < AN_WC_COUNT_ ? names[c] : "unknown";
}

/* ==== lookup =========================================================== */

/* Entry index of the exact normalised code points, or -1. */
static long find_cps(const an_lexicon *lex, const int32_t *c, size_t n) {
  char key[4 * AN_LEXICON_MAX_CPS + 1];
  if (n == 0 || n > AN_LEXICON_MAX_CPS) return -1;
  encode_key(c, n, key);
  size_t lo = 0, hi = lex->n;
  while (lo < hi) { /* lower bound: the first (lowest idx) of equal keys */
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(lex->keys[mid].key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo < lex->n && !strcmp(lex->keys[lo].key, key) ? (long)lex->keys[lo].idx : -1;
}

static int is_person(an_wclass c) { return c == AN_WC_NOUN || c == AN_WC_KIN || c == AN_WC_TITLE; }

/* What the stripped prefixes allow: no pronoun, verb, demonstrative or
 * relative after the article; a pronoun only bare or after و/ف, and then
 * only هو/هي (وهم، فهم are as often "illusion", "understanding"); no verb
 * after ب or ك. */
typedef struct ar_prefix { int conj, prep, art; } ar_prefix;

static int ar_allowed(const an_lexicon_entry *e, const int32_t *stem, size_t m, ar_prefix p) {
  an_wclass c = e->wclass;
  if (p.art && (c == AN_WC_PRONOUN || c == AN_WC_VERB || c == AN_WC_DEMONSTRATIVE || c == AN_WC_RELATIVE))
    return 0;
  if (c == AN_WC_PRONOUN && (p.conj || p.prep))
    return !p.prep && m == 2 && stem[0] == AR_HEH && (stem[1] == AR_WAW || stem[1] == AR_YEH);
  if (c == AN_WC_VERB && (p.prep == AR_BEH || p.prep == AR_KAF)) return 0;
  return 1;
}

/* Possessive suffixes, longest first. */
static const int32_t AR_ENCLITICS[][3] = {
    {AR_HEH, AR_MEEM, AR_ALEF}, {AR_HEH, AR_ALEF, 0}, {AR_HEH, AR_MEEM, 0}, {AR_HEH, AR_NOON, 0},
    {AR_KAF, AR_MEEM, 0},       {AR_NOON, AR_ALEF, 0}, {AR_HEH, 0, 0},      {AR_KAF, 0, 0},
    {AR_YEH, 0, 0}};

/* A person noun under one possessive suffix (ة written ت before it). */
static long ar_find_enclitic(const an_lexicon *lex, const int32_t *stem, size_t m) {
  for (size_t s = 0; s < sizeof AR_ENCLITICS / sizeof AR_ENCLITICS[0]; s++) {
    size_t k = AR_ENCLITICS[s][2] ? 3 : AR_ENCLITICS[s][1] ? 2 : 1;
    if (m < k + 2 || memcmp(stem + m - k, AR_ENCLITICS[s], k * sizeof(int32_t))) continue;
    int32_t base[AN_LEXICON_MAX_CPS];
    size_t b = m - k;
    memcpy(base, stem, b * sizeof *base);
    long e = find_cps(lex, base, b);
    if (e < 0 && base[b - 1] == AR_TEH) {
      base[b - 1] = AR_TEH_MARBUTA;
      e = find_cps(lex, base, b);
    }
    if (e >= 0 && is_person(lex->ent[e].wclass)) return e;
  }
  return -1;
}

static long ar_find_stem(const an_lexicon *lex, const int32_t *stem, size_t m, ar_prefix p) {
  long e = find_cps(lex, stem, m);
  if (e >= 0 && ar_allowed(&lex->ent[e], stem, m, p)) return e;
  if (!p.art && (e = ar_find_enclitic(lex, stem, m)) >= 0) return e;
  if (stem[m - 1] == AR_HEH) { /* ة written as ه */
    int32_t v[AN_LEXICON_MAX_CPS];
    memcpy(v, stem, m * sizeof *v);
    v[m - 1] = AR_TEH_MARBUTA;
    e = find_cps(lex, v, m);
    if (e >= 0 && ar_allowed(&lex->ent[e], v, m, p)) return e;
  }
  /* the alef of the indefinite accusative (رجلاً، جميلاً، قميصاً); stems of
   * 3+ letters only, so جدا ("very"), أما, عما stay unmatched */
  if (m >= 4 && stem[m - 1] == AR_ALEF && (e = find_cps(lex, stem, m - 1)) >= 0) {
    an_wclass c = lex->ent[e].wclass;
    if (is_person(c) || c == AN_WC_ADJ || c == AN_WC_INANIMATE) return e;
  }
  return -1;
}

/* Tries the word with no prefix first, then every legal combination of
 * conjunction (و ف), preposition (ب ك ل) and article (ال; لل after ل). */
static long ar_find(const an_lexicon *lex, const int32_t *c, size_t n) {
  static const int32_t conjs[] = {0, AR_WAW, AR_FEH}, preps[] = {0, AR_BEH, AR_KAF, AR_LAM};
  for (int ci = 0; ci < 3; ci++) {
    size_t p1 = 0;
    if (conjs[ci]) {
      if (n < 1 || c[0] != conjs[ci]) continue;
      p1 = 1;
    }
    for (int pi = 0; pi < 4; pi++) {
      size_t p2 = p1;
      if (preps[pi]) {
        if (p2 >= n || c[p2] != preps[pi]) continue;
        p2++;
      }
      for (int art = 0; art < 2; art++) {
        size_t p3 = p2;
        if (art) {
          if (preps[pi] == AR_LAM) { /* لل = ل + ال with the alef elided */
            if (p3 >= n || c[p3] != AR_LAM) continue;
            p3 += 1;
          } else {
            if (p3 + 1 >= n || c[p3] != AR_ALEF || c[p3 + 1] != AR_LAM) continue;
            p3 += 2;
          }
        }
        if (n - p3 < 2) continue;
        ar_prefix p = {conjs[ci], preps[pi], art};
        long e = ar_find_stem(lex, c + p3, n - p3, p);
        if (e >= 0) return e;
      }
    }
  }
  return -1;
}

static long find_word(const an_lexicon *lex, const char *s, size_t len) {
  int32_t c[AN_LEXICON_MAX_CPS];
  size_t n = an_lexicon_normalize(s, len, c, AN_LEXICON_MAX_CPS);
  if (n == (size_t)-1 || n == 0) return -1;
  return lex->lang == AN_LANG_AR ? ar_find(lex, c, n) : find_cps(lex, c, n);
}

static void fill_match(const an_lexicon *lex, long e, size_t b, size_t end, an_match *m) {
  m->begin = b, m->end = end;
  m->gender = lex->ent[e].gender;
  m->wclass = lex->ent[e].wclass;
  m->lemma = lex->ent[e].lemma;
  m->form = lex->ent[e].form;
}

int an_lexicon_lookup(const an_lexicon *lex, const char *word, size_t len, an_match *out) {
  long e = find_word(lex, word, len);
  if (e < 0) return 0;
  fill_match(lex, e, 0, len, out);
  return 1;
}

/* ==== words and matches =============================================== */

int an_words(const char *text, size_t len, int (*fn)(void *user, size_t begin, size_t end), void *user) {
  size_t i = 0;
  while (i < len) {
    int32_t cp;
    int k = sc_utf8_next(text + i, len - i, &cp);
    if (k < 0 || !sc_utf8_is_word_char(cp)) {
      i += k < 0 ? 1 : (size_t)k;
      continue;
    }
    size_t b = i;
    i += (size_t)k;
    while (i < len && (k = sc_utf8_next(text + i, len - i, &cp)) > 0 && sc_utf8_is_word_char(cp))
      i += (size_t)k;
    int rc = fn(user, b, i);
    if (rc) return rc;
  }
  return 0;
}

/* Entries that are another word before a given next word: "queen size bed",
 * "king-sized", زوج من الأحذية ("a pair of shoes"). */
typedef struct ambiguity {
  an_lang lang;
  const char *form;    /* the entry's form as in the .tsv */
  const char *next[5]; /* NULL-terminated next words (compared normalised) */
} ambiguity;

static const ambiguity AMBIGUITIES[] = {
    {AN_LANG_EN, "king", {"size", "sized", "bed", "beds", NULL}},
    {AN_LANG_EN, "queen", {"size", "sized", "bed", "beds", NULL}},
    {AN_LANG_AR, "\u0632\u0648\u062c", {"\u0645\u0646", NULL}}, /* زوج + من */
};

static int first_word(void *user, size_t b, size_t e) {
  size_t *span = user;
  span[0] = b, span[1] = e;
  return 1;
}

/* 1 when the word after text[end] (if any) turns entry k into another word. */
static int ambiguous(const an_lexicon *lex, long k, const char *text, size_t len, size_t end) {
  for (size_t a = 0; a < sizeof AMBIGUITIES / sizeof AMBIGUITIES[0]; a++) {
    const ambiguity *am = &AMBIGUITIES[a];
    if (am->lang != lex->lang || strcmp(am->form, lex->ent[k].form)) continue;
    size_t span[2];
    if (!an_words(text + end, len - end, first_word, span)) return 0;
    for (size_t i = end; i < end + span[0]; i++) /* only spaces or a hyphen between */
      if (text[i] != ' ' && text[i] != '-') return 0;
    int32_t w[AN_LEXICON_MAX_CPS], x[AN_LEXICON_MAX_CPS];
    size_t nw = an_lexicon_normalize(text + end + span[0], span[1] - span[0], w, AN_LEXICON_MAX_CPS);
    for (int j = 0; am->next[j] && nw != (size_t)-1; j++) {
      size_t nx = an_lexicon_normalize(am->next[j], strlen(am->next[j]), x, AN_LEXICON_MAX_CPS);
      if (nx == nw && !memcmp(w, x, nw * sizeof *w)) return 1;
    }
  }
  return 0;
}

int an_lexicon_lookup_at(const an_lexicon *lex, const char *text, size_t len, size_t b, size_t e, an_match *out) {
  long k = find_word(lex, text + b, e - b);
  if (k < 0 || ambiguous(lex, k, text, len, e)) return 0;
  fill_match(lex, k, b, e, out);
  return 1;
}

typedef struct match_ctx {
  const an_lexicon *lex;
  const char *text;
  size_t len;
  unsigned mask;
  int male, female;
  an_match *v; /* NULL when only counting */
  size_t n, cap;
  int collect;
} match_ctx;

static int on_word(void *user, size_t b, size_t e) {
  match_ctx *c = user;
  long k = find_word(c->lex, c->text + b, e - b);
  if (k < 0 || !(c->mask & AN_WC_BIT(c->lex->ent[k].wclass))) return 0;
  if (ambiguous(c->lex, k, c->text, c->len, e)) return 0;
  if (c->lex->ent[k].gender == AN_GENDER_MALE) c->male++;
  else c->female++;
  if (!c->collect) return 0;
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 8;
    an_match *g = realloc(c->v, cap * sizeof *g);
    if (!g) return SC_ERR_NOMEM;
    c->v = g, c->cap = cap;
  }
  fill_match(c->lex, k, b, e, &c->v[c->n++]);
  return 0;
}

int an_lexicon_count(const an_lexicon *lex, const char *text, size_t len, int *male, int *female) {
  match_ctx c = {.lex = lex, .text = text, .len = len, .mask = AN_WC_COUNTED};
  an_words(text, len, on_word, &c);
  if (male) *male = c.male;
  if (female) *female = c.female;
  return 0;
}

int an_lexicon_match(const an_lexicon *lex, const char *text, size_t len, unsigned class_mask,
                     an_match **out, size_t *n_out) {
  match_ctx c = {.lex = lex, .text = text, .len = len, .mask = class_mask, .collect = 1};
  *out = NULL, *n_out = 0;
  if (an_words(text, len, on_word, &c)) {
    free(c.v);
    return sc_error_setc(SC_ERR_NOMEM, "lexicon: out of memory");
  }
  *out = c.v, *n_out = c.n;
  return 0;
}

int an_lexicon_scan_leaks(const an_lexicon *lex, const char *const *prompts, size_t n,
                          unsigned char *leaks) {
  unsigned mask = lex->lang == AN_LANG_AR ? AN_WC_LEAK_AR : AN_WC_LEAK_EN;
  for (size_t i = 0; i < n; i++) {
    match_ctx c = {.lex = lex, .text = prompts[i], .len = prompts[i] ? strlen(prompts[i]) : 0, .mask = mask};
    if (prompts[i]) an_words(prompts[i], c.len, on_word, &c);
    leaks[i] = c.male + c.female > 0;
  }
  return 0;
}
