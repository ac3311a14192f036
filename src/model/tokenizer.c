/* tokenizer.c: tokenizer.json loader, BPE encoder and decoder with the
 * semantics of Hugging Face `tokenizers` (Rust). Facts taken from its
 * sources (no code): models/bpe/model.rs merge_word (char -> vocab id, else
 * <0xHH> byte tokens if all exist, else <unk>, fused when fuse_unk; a pending
 * unk is only flushed by the next in-vocab char), models/bpe/word.rs
 * merge_all (min-heap on (rank, pos); an entry is skipped when its symbol was
 * merged away, has no right neighbour, or the pair now there does not merge
 * into the same new id), added_vocabulary.rs (leftmost-longest match of the
 * added tokens before normalization), decoders/byte_fallback.rs (a run of
 * byte tokens that is not valid UTF-8 becomes one U+FFFD per byte), and
 * Tokenizer::decode (no decoder: tokens joined with " ").
 */
#include "model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/utf8.h"
#include "io/json.h"

/* ==== Growable arrays ==================================================== */

typedef struct ivec {
  int32_t *v; /* (cap) */
  size_t n, cap;
} ivec;

typedef struct bbuf {
  char *p; /* (cap) bytes */
  size_t n, cap;
} bbuf;

static int nomem(void) { return sc_error_setc(SC_ERR_NOMEM, "out of memory"); }

/* Grows *p (elements of size sz) to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > (SIZE_MAX / 2) / sz) return nomem();
    c *= 2;
  }
  void *q = realloc(*p, c * sz);
  if (!q) return nomem();
  *p = q;
  *cap = c;
  return 0;
}

static int ivec_push(ivec *a, int32_t x) {
  if (a->n == a->cap && grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v)) return SC_ERR_NOMEM;
  a->v[a->n++] = x;
  return 0;
}

static int bbuf_put(bbuf *b, const char *s, size_t n) {
  if (n > SIZE_MAX - b->n - 1) return nomem();
  if (grow((void **)&b->p, &b->cap, b->n + n + 1, 1)) return SC_ERR_NOMEM;
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}

/* ==== Hash tables ======================================================== */

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  return mix64(h ^ n);
}

/* Smallest power of two >= 2n (load factor <= 1/2). */
static size_t table_cap(size_t n) {
  size_t c = 16;
  while (c < 2 * n) c *= 2;
  return c;
}

#define U64_EMPTY UINT64_MAX

/* Open addressing u64 -> u64; keys never equal U64_EMPTY. */
typedef struct u64map {
  uint64_t *keys, *vals; /* (cap) */
  size_t cap, n;
} u64map;

static int u64map_init(u64map *m, size_t n_max) {
  m->cap = table_cap(n_max);
  m->n = 0;
  m->keys = malloc(m->cap * sizeof *m->keys);
  m->vals = malloc(m->cap * sizeof *m->vals);
  if (!m->keys || !m->vals) return nomem();
  memset(m->keys, 0xff, m->cap * sizeof *m->keys);
  return 0;
}

static void u64map_free(u64map *m) {
  free(m->keys);
  free(m->vals);
}

/* Inserts or overwrites. The caller sized the table for every key. */
static void u64map_put(u64map *m, uint64_t k, uint64_t v) {
  size_t i = (size_t)mix64(k) & (m->cap - 1);
  while (m->keys[i] != U64_EMPTY && m->keys[i] != k) i = (i + 1) & (m->cap - 1);
  if (m->keys[i] == U64_EMPTY) m->n++;
  m->keys[i] = k;
  m->vals[i] = v;
}

static int u64map_get(const u64map *m, uint64_t k, uint64_t *v) {
  if (!m->cap) return 0;
  size_t i = (size_t)mix64(k) & (m->cap - 1);
  while (m->keys[i] != U64_EMPTY) {
    if (m->keys[i] == k) {
      *v = m->vals[i];
      return 1;
    }
    i = (i + 1) & (m->cap - 1);
  }
  return 0;
}

/* ==== The tokenizer ====================================================== */

/* A trie over added-token contents; node 0 is the root. */
typedef struct tok_trie {
  int32_t *term;   /* (n_nodes) id of the token ending here, or -1 */
  size_t n_nodes, cap;
  u64map edges;    /* (node << 8 | byte) -> child */
  uint32_t root[256]; /* root's children (0 = none): the hot first step */
} tok_trie;

enum { NORM_REPLACE, NORM_PREPEND };
typedef struct norm_step {
  int kind;
  char *pat, *content; /* NUL-terminated; pat NULL for Prepend */
  size_t pat_len, content_len;
} norm_step;

/* tokenizers' SplitDelimiterBehavior. */
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
typedef struct split_step {
  char *pat;
  size_t pat_len;
  int behavior;
} split_step;

enum { DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP };
typedef struct dec_step {
  int kind;
  char *pat, *content; /* Replace; Strip uses content (one char) */
  size_t pat_len, content_len;
  size_t start, stop; /* Strip: chars to strip at each end, at most */
} dec_step;

struct tok_tokenizer {
  char *name;              /* file name for messages */
  int32_t n_ids;           /* max id + 1 over vocab and added tokens */
  char *pool;              /* every vocab and added-token string */
  const char **vocab_s;    /* (n_ids) model vocab string or NULL */
  uint32_t *vocab_len;     /* (n_ids) */
  const char **added_s;    /* (n_ids) added-token content or NULL */
  uint32_t *added_len;     /* (n_ids) */
  unsigned char *special;  /* (n_ids) 1 = special added token */
  uint64_t *vmap;          /* (vmap_cap) vocab string -> hash tag, id + 1 */
  size_t vmap_cap;
  u64map merges;           /* (left << 32 | right) -> (rank << 32 | new id) */
  int byte_fallback, fuse_unk, ignore_merges;
  int has_unk;             /* unk_token given */
  int32_t unk_id;          /* its vocab id, or -1 (then an unk is an error) */
  char *unk_token;
  int32_t byte_id[256];    /* <0xHH> ids, -1 if absent */
  tok_trie raw_trie, norm_trie; /* added tokens normalized:false / true */
  norm_step *norm;
  int n_norm;
  split_step *split;
  int n_split;
  dec_step *dec;
  int n_dec, has_decoder;
  int32_t *prefix, *suffix; /* ids the post-processor adds around A */
  int n_prefix, n_suffix;
};

/* ==== Vocab string map ==================================================== */

/* A slot holds (hash >> 32) << 32 | (id + 1), 0 when empty: the hash tag
 * spares most string compares (and their cache misses). */
static int32_t vmap_find(const tok_tokenizer *t, const char *s, size_t n) {
  uint64_t h = hash_bytes(s, n), tag = h >> 32;
  size_t i = (size_t)h & (t->vmap_cap - 1);
  for (uint64_t e; (e = t->vmap[i]) != 0; i = (i + 1) & (t->vmap_cap - 1)) {
    int32_t id = (int32_t)(uint32_t)e - 1;
    if (e >> 32 == tag && t->vocab_len[id] == n && !memcmp(t->vocab_s[id], s, n)) return id;
  }
  return -1;
}

/* Inserts id (whose vocab_s is set); -1 if the string is already there. */
static int vmap_insert(tok_tokenizer *t, int32_t id) {
  const char *s = t->vocab_s[id];
  size_t n = t->vocab_len[id];
  if (vmap_find(t, s, n) >= 0) return -1;
  uint64_t h = hash_bytes(s, n);
  size_t i = (size_t)h & (t->vmap_cap - 1);
  while (t->vmap[i]) i = (i + 1) & (t->vmap_cap - 1);
  t->vmap[i] = (h >> 32) << 32 | ((uint64_t)id + 1);
  return 0;
}

/* ==== Trie ================================================================ */

static int trie_init(tok_trie *tr, size_t max_nodes) {
  memset(tr->root, 0, sizeof tr->root);
  tr->n_nodes = 1;
  tr->cap = max_nodes + 1;
  tr->term = malloc(tr->cap * sizeof *tr->term);
  if (!tr->term) return nomem();
  tr->term[0] = -1;
  return u64map_init(&tr->edges, max_nodes);
}

static void trie_free(tok_trie *tr) {
  free(tr->term);
  u64map_free(&tr->edges);
}

static uint32_t trie_child(const tok_trie *tr, uint32_t node, unsigned char c) {
  if (node == 0) return tr->root[c];
  uint64_t v;
  return u64map_get(&tr->edges, (uint64_t)node << 8 | c, &v) ? (uint32_t)v : 0;
}

/* Adds s -> id; the caller sized the trie for the total content length. A
 * repeated content keeps the later id, as a later map insert would. */
static void trie_add(tok_trie *tr, const char *s, size_t n, int32_t id) {
  uint32_t node = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    uint32_t ch = trie_child(tr, node, c);
    if (!ch) {
      ch = (uint32_t)tr->n_nodes++;
      tr->term[ch] = -1;
      if (node == 0)
        tr->root[c] = ch;
      else
        u64map_put(&tr->edges, (uint64_t)node << 8 | c, ch);
    }
    node = ch;
  }
  tr->term[node] = id;
}

/* Longest token starting at s[0]; its length in *mlen, or 0 if none. */
static int32_t trie_longest(const tok_trie *tr, const char *s, size_t n, size_t *mlen) {
  int32_t best = -1;
  *mlen = 0;
  uint32_t node = 0;
  for (size_t i = 0; i < n; i++) {
    node = trie_child(tr, node, (unsigned char)s[i]);
    if (!node) break;
    if (tr->term[node] >= 0) {
      best = tr->term[node];
      *mlen = i + 1;
    }
  }
  return best;
}

/* ==== Loading: JSON helpers ================================================ */

static const char *json_type(const sc_json *o) {
  return sc_json_is_object(o) ? sc_json_str(sc_json_get(o, "type")) : NULL;
}

/* Optional bool member: missing or null -> dflt. */
static int opt_bool(const tok_tokenizer *t, const sc_json *o, const char *what, const char *key,
                    int dflt, int *out) {
  const sc_json *j = sc_json_get(o, key);
  *out = dflt;
  if (!j || sc_json_is_null(j)) return 0;
  if (sc_json_bool(j, out)) return sc_error_set("%s: %s.%s is not a boolean", t->name, what, key);
  return 0;
}

/* Optional string member: missing or null -> NULL. */
static int opt_str(const tok_tokenizer *t, const sc_json *o, const char *what, const char *key,
                   const char **out) {
  const sc_json *j = sc_json_get(o, key);
  *out = NULL;
  if (!j || sc_json_is_null(j)) return 0;
  if (!sc_json_is_string(j)) return sc_error_set("%s: %s.%s is not a string", t->name, what, key);
  *out = sc_json_str(j);
  return 0;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

/* A {"String": "..."} pattern; a Regex pattern is refused. */
static int string_pattern(const tok_tokenizer *t, const sc_json *o, const char *what,
                          char **pat, size_t *len) {
  const char *s = sc_json_str(sc_json_get(sc_json_get(o, "pattern"), "String"));
  if (!s) return sc_error_set("%s: unsupported %s pattern (only {\"String\": ...})", t->name, what);
  if (!*s) return sc_error_set("%s: %s has an empty pattern", t->name, what);
  if (!(*pat = dupstr(s))) return nomem();
  *len = strlen(s);
  return 0;
}

/* A token id from a file: integral, in [0, TOK_MAX_ID). */
static int read_id(const tok_tokenizer *t, const sc_json *j, const char *what, int32_t *out) {
  int64_t v;
  if (sc_json_i64(j, &v) || v < 0 || v >= TOK_MAX_ID)
    return sc_error_set("%s: %s has an invalid id (need an integer in [0, %lld))", t->name, what,
                        (long long)TOK_MAX_ID);
  *out = (int32_t)v;
  return 0;
}

/* ==== Loading: vocab and added tokens ====================================== */

/* First pass: sizes (max id, string bytes) for the arrays and the pool. */
static int scan_sizes(tok_tokenizer *t, const sc_json *vocab, const sc_json *added,
                      size_t *pool_bytes) {
  int32_t max_id = -1;
  size_t bytes = 0;
  for (const sc_json *e = sc_json_first(vocab); e; e = sc_json_next(e)) {
    int32_t id = 0;
    char what[96];
    snprintf(what, sizeof what, "model.vocab['%.60s']", sc_json_key(e));
    if (read_id(t, e, what, &id)) return SC_ERR_FORMAT;
    if (id > max_id) max_id = id;
    bytes += strlen(sc_json_key(e)) + 1;
  }
  int i = 0;
  for (const sc_json *a = sc_json_first(added); a; a = sc_json_next(a), i++) {
    int32_t id = 0;
    char what[64];
    snprintf(what, sizeof what, "added_tokens[%d]", i);
    const char *c = sc_json_str(sc_json_get(a, "content"));
    if (!c) return sc_error_set("%s: %s has no string \"content\"", t->name, what);
    if (read_id(t, sc_json_get(a, "id"), what, &id)) return SC_ERR_FORMAT;
    if (id > max_id) max_id = id;
    bytes += strlen(c) + 1;
  }
  if (max_id < 0) return sc_error_set("%s: model.vocab is empty", t->name);
  t->n_ids = max_id + 1;
  *pool_bytes = bytes;
  return 0;
}

static int alloc_tables(tok_tokenizer *t, size_t pool_bytes, size_t n_vocab) {
  size_t n = (size_t)t->n_ids;
  t->pool = malloc(pool_bytes ? pool_bytes : 1);
  t->vocab_s = calloc(n, sizeof *t->vocab_s);
  t->vocab_len = calloc(n, sizeof *t->vocab_len);
  t->added_s = calloc(n, sizeof *t->added_s);
  t->added_len = calloc(n, sizeof *t->added_len);
  t->special = calloc(n, 1);
  t->vmap_cap = table_cap(n_vocab);
  t->vmap = calloc(t->vmap_cap, sizeof *t->vmap);
  if (!t->pool || !t->vocab_s || !t->vocab_len || !t->added_s || !t->added_len || !t->special ||
      !t->vmap)
    return nomem();
  return 0;
}

static const char *pool_add(char **cursor, const char *s, size_t n) {
  char *p = *cursor;
  memcpy(p, s, n);
  p[n] = 0;
  *cursor += n + 1;
  return p;
}

static int load_vocab(tok_tokenizer *t, const sc_json *vocab, char **cursor) {
  for (const sc_json *e = sc_json_first(vocab); e; e = sc_json_next(e)) {
    const char *k = sc_json_key(e);
    int32_t id = (int32_t)sc_json_num(e); /* range-checked in scan_sizes */
    if (t->vocab_s[id])
      return sc_error_set("%s: model.vocab: id %d is used by two tokens", t->name, (int)id);
    size_t n = strlen(k);
    if (n > UINT32_MAX) return sc_error_set("%s: model.vocab: token too long", t->name);
    t->vocab_s[id] = pool_add(cursor, k, n);
    t->vocab_len[id] = (uint32_t)n;
    if (vmap_insert(t, id))
      return sc_error_set("%s: model.vocab: token '%.60s' appears twice", t->name, k);
  }
  return 0;
}

/* Checks the flags of added token i that this implementation supports. */
static int added_flags(tok_tokenizer *t, const sc_json *a, const char *what, int *special,
                       int *normalized) {
  int lstrip, rstrip, single;
  if (opt_bool(t, a, what, "special", 0, special) ||
      opt_bool(t, a, what, "normalized", 0, normalized) ||
      opt_bool(t, a, what, "lstrip", 0, &lstrip) || opt_bool(t, a, what, "rstrip", 0, &rstrip) ||
      opt_bool(t, a, what, "single_word", 0, &single))
    return SC_ERR_FORMAT;
  if (lstrip || rstrip || single)
    return sc_error_set("%s: %s: unsupported added-token option (lstrip/rstrip/single_word)",
                        t->name, what);
  return 0;
}

/* tokenizers' AddedToken: "normalized" defaults to !special. */
static int added_is_normalized(const sc_json *a) {
  int v = 0;
  if (!sc_json_bool(sc_json_get(a, "normalized"), &v)) return v;
  if (!sc_json_bool(sc_json_get(a, "special"), &v)) return !v;
  return 1;
}

static int load_added(tok_tokenizer *t, const sc_json *added, char **cursor) {
  size_t raw_bytes = 0, norm_bytes = 0;
  for (const sc_json *a = sc_json_first(added); a; a = sc_json_next(a))
    *(added_is_normalized(a) ? &norm_bytes : &raw_bytes) +=
        strlen(sc_json_str(sc_json_get(a, "content"))); /* checked in scan_sizes */
  if (trie_init(&t->raw_trie, raw_bytes) || trie_init(&t->norm_trie, norm_bytes))
    return SC_ERR_NOMEM;
  int i = 0;
  for (const sc_json *a = sc_json_first(added); a; a = sc_json_next(a), i++) {
    char what[64];
    snprintf(what, sizeof what, "added_tokens[%d]", i);
    const char *c = sc_json_str(sc_json_get(a, "content"));
    int32_t id = (int32_t)sc_json_num(sc_json_get(a, "id"));
    int special, normalized;
    if (added_flags(t, a, what, &special, &normalized)) return SC_ERR_FORMAT;
    normalized = added_is_normalized(a);
    size_t n = strlen(c);
    if (!n) return sc_error_set("%s: %s has an empty content", t->name, what);
    t->added_s[id] = pool_add(cursor, c, n);
    t->added_len[id] = (uint32_t)n;
    t->special[id] = (unsigned char)special;
    trie_add(normalized ? &t->norm_trie : &t->raw_trie, c, n, id);
  }
  return 0;
}

/* ==== Loading: the BPE model ================================================ */

/* Splits merge i into its two token strings; "a b" splits at the first
 * space. */
static int merge_parts(const tok_tokenizer *t, const sc_json *m, int i, const char **a,
                       size_t *na, const char **b, size_t *nb) {
  if (sc_json_is_array(m) && sc_json_size(m) == 2 && sc_json_is_string(sc_json_at(m, 0)) &&
      sc_json_is_string(sc_json_at(m, 1))) {
    *a = sc_json_str(sc_json_at(m, 0));
    *b = sc_json_str(sc_json_at(m, 1));
    *na = strlen(*a);
    *nb = strlen(*b);
    return 0;
  }
  const char *s = sc_json_str(m);
  const char *sp = s ? strchr(s, ' ') : NULL;
  if (!sp)
    return sc_error_set("%s: model.merges[%d] is neither [\"a\", \"b\"] nor \"a b\"", t->name, i);
  *a = s;
  *na = (size_t)(sp - s);
  *b = sp + 1;
  *nb = strlen(*b);
  return 0;
}

static int merge_token(const tok_tokenizer *t, int i, const char *s, size_t n, int32_t *id) {
  *id = vmap_find(t, s, n);
  if (*id < 0)
    return sc_error_set("%s: model.merges[%d]: token '%.*s' is not in the vocab", t->name, i,
                        (int)(n > 60 ? 60 : n), s);
  return 0;
}

static int load_merges(tok_tokenizer *t, const sc_json *merges) {
  if (!sc_json_is_array(merges)) return sc_error_set("%s: model.merges is not an array", t->name);
  int n = sc_json_size(merges);
  if (u64map_init(&t->merges, (size_t)n)) return SC_ERR_NOMEM;
  bbuf cat = {0};
  int rc = 0, i = 0;
  for (const sc_json *m = sc_json_first(merges); m && !rc; m = sc_json_next(m), i++) {
    const char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int32_t ia = 0, ib = 0, inew = 0;
    cat.n = 0;
    rc = merge_parts(t, m, i, &a, &na, &b, &nb);
    if (!rc) rc = bbuf_put(&cat, a, na);
    if (!rc) rc = bbuf_put(&cat, b, nb);
    if (!rc) rc = merge_token(t, i, a, na, &ia);
    if (!rc) rc = merge_token(t, i, b, nb, &ib);
    if (!rc) rc = merge_token(t, i, cat.p, cat.n, &inew);
    /* A repeated pair keeps the later rank, as tokenizers' map collect. */
    if (!rc) u64map_put(&t->merges, (uint64_t)ia << 32 | (uint32_t)ib, (uint64_t)i << 32 | (uint32_t)inew);
  }
  free(cat.p);
  return rc;
}

static int check_model_options(tok_tokenizer *t, const sc_json *model) {
  const char *type = json_type(model), *s;
  if (!type) return sc_error_set("%s: model has no \"type\"", t->name);
  if (strcmp(type, "BPE")) return sc_error_set("%s: unsupported model '%s'", t->name, type);
  const sc_json *d = sc_json_get(model, "dropout");
  if (d && !sc_json_is_null(d) && !(sc_json_is_number(d) && sc_json_num(d) == 0.0))
    return sc_error_set("%s: unsupported model option 'dropout'", t->name);
  if (opt_str(t, model, "model", "continuing_subword_prefix", &s)) return SC_ERR_FORMAT;
  if (s && *s) return sc_error_set("%s: unsupported model option 'continuing_subword_prefix'", t->name);
  if (opt_str(t, model, "model", "end_of_word_suffix", &s)) return SC_ERR_FORMAT;
  if (s && *s) return sc_error_set("%s: unsupported model option 'end_of_word_suffix'", t->name);
  if (opt_bool(t, model, "model", "byte_fallback", 0, &t->byte_fallback) ||
      opt_bool(t, model, "model", "fuse_unk", 0, &t->fuse_unk) ||
      opt_bool(t, model, "model", "ignore_merges", 0, &t->ignore_merges))
    return SC_ERR_FORMAT;
  return 0;
}

static int load_unk_and_bytes(tok_tokenizer *t, const sc_json *model) {
  const char *unk;
  if (opt_str(t, model, "model", "unk_token", &unk)) return SC_ERR_FORMAT;
  t->has_unk = unk != NULL;
  t->unk_id = unk ? vmap_find(t, unk, strlen(unk)) : -1;
  if (unk && !(t->unk_token = dupstr(unk))) return nomem();
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    t->byte_id[b] = vmap_find(t, name, 6);
  }
  return 0;
}

static int load_model(tok_tokenizer *t, const sc_json *root) {
  const sc_json *model = sc_json_get(root, "model");
  if (!sc_json_is_object(model)) return sc_error_set("%s: no \"model\" object", t->name);
  if (check_model_options(t, model)) return SC_ERR_FORMAT;
  const sc_json *vocab = sc_json_get(model, "vocab");
  if (!sc_json_is_object(vocab)) return sc_error_set("%s: model.vocab is not an object", t->name);
  const sc_json *added = sc_json_get(root, "added_tokens");
  if (added && !sc_json_is_null(added) && !sc_json_is_array(added))
    return sc_error_set("%s: added_tokens is not an array", t->name);
  size_t pool_bytes = 0;
  int rc = scan_sizes(t, vocab, added, &pool_bytes);
  if (!rc) rc = alloc_tables(t, pool_bytes, (size_t)sc_json_size(vocab));
  char *cursor = t->pool;
  if (!rc) rc = load_vocab(t, vocab, &cursor);
  if (!rc) rc = load_added(t, added, &cursor);
  if (!rc) rc = load_merges(t, sc_json_get(model, "merges"));
  if (!rc) rc = load_unk_and_bytes(t, model);
  return rc;
}

/* ==== Loading: normalizer, pre-tokenizer, post-processor, decoder ========== */

static int add_norm(tok_tokenizer *t, const sc_json *n) {
  const char *type = json_type(n);
  if (!type) return sc_error_set("%s: normalizer has no \"type\"", t->name);
  if (!strcmp(type, "Sequence")) {
    const sc_json *list = sc_json_get(n, "normalizers");
    if (!sc_json_is_array(list)) return sc_error_set("%s: normalizer Sequence has no list", t->name);
    for (const sc_json *e = sc_json_first(list); e; e = sc_json_next(e))
      if (add_norm(t, e)) return SC_ERR_FORMAT;
    return 0;
  }
  norm_step st = {0};
  const char *content = NULL;
  if (!strcmp(type, "Replace")) {
    st.kind = NORM_REPLACE;
    if (string_pattern(t, n, "normalizer Replace", &st.pat, &st.pat_len)) return SC_ERR_FORMAT;
    content = sc_json_str(sc_json_get(n, "content"));
  } else if (!strcmp(type, "Prepend")) {
    st.kind = NORM_PREPEND;
    content = sc_json_str(sc_json_get(n, "prepend"));
  } else {
    return sc_error_set("%s: unsupported normalizer '%s'", t->name, type);
  }
  if (!content) {
    free(st.pat);
    return sc_error_set("%s: normalizer %s has no string content", t->name, type);
  }
  norm_step *grown = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *grown);
  if (grown) t->norm = grown;
  if (!grown || !(st.content = dupstr(content))) {
    free(st.pat);
    return nomem();
  }
  st.content_len = strlen(content);
  t->norm[t->n_norm++] = st;
  return 0;
}

static int split_behavior(const tok_tokenizer *t, const char *b, int *out) {
  static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                "Contiguous"};
  for (int i = 0; b && i < 5; i++)
    if (!strcmp(b, names[i])) {
      *out = i;
      return 0;
    }
  return sc_error_set("%s: unsupported pre_tokenizer Split behavior '%s'", t->name, b ? b : "(none)");
}

static int add_split(tok_tokenizer *t, const sc_json *p) {
  const char *type = json_type(p);
  if (!type) return sc_error_set("%s: pre_tokenizer has no \"type\"", t->name);
  if (!strcmp(type, "Sequence")) {
    const sc_json *list = sc_json_get(p, "pretokenizers");
    if (!sc_json_is_array(list)) return sc_error_set("%s: pre_tokenizer Sequence has no list", t->name);
    for (const sc_json *e = sc_json_first(list); e; e = sc_json_next(e))
      if (add_split(t, e)) return SC_ERR_FORMAT;
    return 0;
  }
  if (strcmp(type, "Split")) return sc_error_set("%s: unsupported pre_tokenizer '%s'", t->name, type);
  int invert;
  split_step st = {0};
  if (opt_bool(t, p, "pre_tokenizer", "invert", 0, &invert)) return SC_ERR_FORMAT;
  if (invert) return sc_error_set("%s: unsupported pre_tokenizer option 'invert'", t->name);
  if (split_behavior(t, sc_json_str(sc_json_get(p, "behavior")), &st.behavior)) return SC_ERR_FORMAT;
  if (string_pattern(t, p, "pre_tokenizer Split", &st.pat, &st.pat_len)) return SC_ERR_FORMAT;
  split_step *grown = realloc(t->split, (size_t)(t->n_split + 1) * sizeof *grown);
  if (!grown) {
    free(st.pat);
    return nomem();
  }
  t->split = grown;
  t->split[t->n_split++] = st;
  return 0;
}

static int push_dec(tok_tokenizer *t, dec_step st) {
  dec_step *grown = realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *grown);
  if (!grown) {
    free(st.pat);
    free(st.content);
    return nomem();
  }
  t->dec = grown;
  t->dec[t->n_dec++] = st;
  return 0;
}

static int strip_params(tok_tokenizer *t, const sc_json *d, dec_step *st) {
  const char *c = sc_json_str(sc_json_get(d, "content"));
  int64_t a, b;
  if (!c || !*c || sc_json_i64(sc_json_get(d, "start"), &a) || sc_json_i64(sc_json_get(d, "stop"), &b) ||
      a < 0 || b < 0)
    return sc_error_set("%s: decoder Strip needs content, start and stop", t->name);
  if (!(st->content = dupstr(c))) return nomem();
  st->content_len = strlen(c);
  st->start = (size_t)a;
  st->stop = (size_t)b;
  return 0;
}

static int add_dec(tok_tokenizer *t, const sc_json *d) {
  const char *type = json_type(d);
  if (!type) return sc_error_set("%s: decoder has no \"type\"", t->name);
  dec_step st = {0};
  if (!strcmp(type, "Sequence")) {
    const sc_json *list = sc_json_get(d, "decoders");
    if (!sc_json_is_array(list)) return sc_error_set("%s: decoder Sequence has no list", t->name);
    for (const sc_json *e = sc_json_first(list); e; e = sc_json_next(e))
      if (add_dec(t, e)) return SC_ERR_FORMAT;
    return 0;
  } else if (!strcmp(type, "Replace")) {
    const char *c = sc_json_str(sc_json_get(d, "content"));
    st.kind = DEC_REPLACE;
    if (!c) return sc_error_set("%s: decoder Replace has no string content", t->name);
    if (string_pattern(t, d, "decoder Replace", &st.pat, &st.pat_len)) return SC_ERR_FORMAT;
    if (!(st.content = dupstr(c))) {
      free(st.pat);
      return nomem();
    }
    st.content_len = strlen(c);
  } else if (!strcmp(type, "ByteFallback")) {
    st.kind = DEC_BYTE_FALLBACK;
  } else if (!strcmp(type, "Fuse")) {
    st.kind = DEC_FUSE;
  } else if (!strcmp(type, "Strip")) {
    st.kind = DEC_STRIP;
    if (strip_params(t, d, &st)) return SC_ERR_FORMAT;
  } else {
    return sc_error_set("%s: unsupported decoder '%s'", t->name, type);
  }
  return push_dec(t, st);
}

/* Ids of the special token `name` in TemplateProcessing's special_tokens. */
static int template_ids(tok_tokenizer *t, const sc_json *pp, const char *name, int32_t **ids,
                        int *n) {
  const sc_json *ids_j = sc_json_get(sc_json_get(sc_json_get(pp, "special_tokens"), name), "ids");
  if (!sc_json_is_array(ids_j))
    return sc_error_set("%s: post_processor: special token '%s' has no ids", t->name, name);
  for (const sc_json *e = sc_json_first(ids_j); e; e = sc_json_next(e)) {
    int32_t id = 0;
    if (read_id(t, e, "post_processor special token", &id)) return SC_ERR_FORMAT;
    if (id >= t->n_ids) return sc_error_set("%s: post_processor: id %d is not a token", t->name, (int)id);
    int32_t *g = realloc(*ids, (size_t)(*n + 1) * sizeof *g);
    if (!g) return nomem();
    *ids = g;
    g[(*n)++] = id;
  }
  return 0;
}

static int load_post(tok_tokenizer *t, const sc_json *pp) {
  if (!pp || sc_json_is_null(pp)) return 0;
  const char *type = json_type(pp);
  if (!type || strcmp(type, "TemplateProcessing"))
    return sc_error_set("%s: unsupported post_processor '%s'", t->name, type ? type : "(no type)");
  const sc_json *single = sc_json_get(pp, "single");
  if (!sc_json_is_array(single)) return sc_error_set("%s: post_processor has no single template", t->name);
  int seen_a = 0;
  for (const sc_json *e = sc_json_first(single); e; e = sc_json_next(e)) {
    const sc_json *sp = sc_json_get(e, "SpecialToken"), *seq = sc_json_get(e, "Sequence");
    const char *id = sc_json_str(sc_json_get(sp ? sp : seq, "id"));
    if (!id) return sc_error_set("%s: post_processor: malformed template item", t->name);
    if (seq) {
      if (strcmp(id, "A") || seen_a)
        return sc_error_set("%s: post_processor: single template must use $A once", t->name);
      seen_a = 1;
    } else if (template_ids(t, pp, id, seen_a ? &t->suffix : &t->prefix,
                            seen_a ? &t->n_suffix : &t->n_prefix)) {
      return SC_ERR_FORMAT;
    }
  }
  if (!seen_a) return sc_error_set("%s: post_processor: single template must use $A once", t->name);
  return 0;
}

static int load_pipeline(tok_tokenizer *t, const sc_json *root) {
  const sc_json *n = sc_json_get(root, "normalizer"), *p = sc_json_get(root, "pre_tokenizer");
  const sc_json *d = sc_json_get(root, "decoder");
  if (n && !sc_json_is_null(n) && add_norm(t, n)) return SC_ERR_FORMAT;
  if (p && !sc_json_is_null(p) && add_split(t, p)) return SC_ERR_FORMAT;
  t->has_decoder = d && !sc_json_is_null(d);
  if (t->has_decoder && add_dec(t, d)) return SC_ERR_FORMAT;
  return load_post(t, sc_json_get(root, "post_processor"));
}

int tok_from_memory(const char *buf, size_t len, const char *name, tok_tokenizer **out) {
  *out = NULL;
  sc_json *root = NULL;
  tok_tokenizer *t = calloc(1, sizeof *t);
  if (!t || !(t->name = dupstr(name ? name : "tokenizer.json"))) {
    tok_free(t);
    return nomem();
  }
  int rc = sc_json_parse(buf, len, t->name, &root);
  if (!rc && !sc_json_is_object(root)) rc = sc_error_set("%s: not a JSON object", t->name);
  if (!rc) rc = load_model(t, root);
  if (!rc) rc = load_pipeline(t, root);
  sc_json_free(root);
  if (rc) {
    tok_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int tok_load(tok_tokenizer **out, const char *path) {
  char *buf;
  size_t len;
  *out = NULL;
  int rc = sc_read_file(path, TOK_MAX_FILE_BYTES, &buf, &len);
  if (rc) return rc;
  rc = tok_from_memory(buf, len, path, out);
  free(buf);
  return rc;
}

void tok_free(tok_tokenizer *t) {
  if (!t) return;
  for (int i = 0; i < t->n_norm; i++) free(t->norm[i].pat), free(t->norm[i].content);
  for (int i = 0; i < t->n_split; i++) free(t->split[i].pat);
  for (int i = 0; i < t->n_dec; i++) free(t->dec[i].pat), free(t->dec[i].content);
  free(t->norm);
  free(t->split);
  free(t->dec);
  free(t->prefix);
  free(t->suffix);
  trie_free(&t->raw_trie);
  trie_free(&t->norm_trie);
  u64map_free(&t->merges);
  free(t->vmap);
  free(t->vocab_s);
  free(t->vocab_len);
  free(t->added_s);
  free(t->added_len);
  free(t->special);
  free(t->pool);
  free(t->unk_token);
  free(t->name);
  free(t);
}

/* ==== Encoding: scratch ===================================================== */

typedef struct bpe_sym {
  int32_t id;         /* current token id */
  int32_t prev, next; /* neighbours, -1 at the ends */
  uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
} bpe_sym;

typedef struct bpe_merge {
  uint32_t rank, pos; /* heap order: rank, then leftmost */
  int32_t new_id;     /* what the pair merged into when queued */
} bpe_merge;

typedef struct spans {
  size_t *v; /* (2 * n): offset, length */
  size_t n, cap;
} spans;

typedef struct enc_state {
  const tok_tokenizer *t;
  ivec out;           /* ids so far */
  bbuf norm[2];       /* normalizer output, ping-pong */
  spans sp[2];        /* pre-tokenizer pieces, ping-pong */
  size_t *segs;       /* (3 * n_segs) Split scratch: start, end, is_match */
  size_t n_segs, cap_segs;
  bpe_sym *sym;       /* (cap_sym) */
  size_t cap_sym;
  bpe_merge *heap;    /* (cap_heap) */
  size_t n_heap, cap_heap;
} enc_state;

static void enc_free(enc_state *st) {
  free(st->out.v);
  free(st->norm[0].p);
  free(st->norm[1].p);
  free(st->sp[0].v);
  free(st->sp[1].v);
  free(st->segs);
  free(st->sym);
  free(st->heap);
}

static int spans_push(spans *s, size_t off, size_t len) {
  if (grow((void **)&s->v, &s->cap, 2 * s->n + 2, sizeof *s->v)) return SC_ERR_NOMEM;
  s->v[2 * s->n] = off;
  s->v[2 * s->n + 1] = len;
  s->n++;
  return 0;
}

/* ==== Encoding: BPE (models/bpe/word.rs merge_all) ========================== */

static int heap_less(const bpe_merge *a, const bpe_merge *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(enc_state *st, bpe_merge m) {
  if (grow((void **)&st->heap, &st->cap_heap, st->n_heap + 1, sizeof *st->heap)) return SC_ERR_NOMEM;
  size_t i = st->n_heap++;
  while (i > 0 && heap_less(&m, &st->heap[(i - 1) / 2])) {
    st->heap[i] = st->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  st->heap[i] = m;
  return 0;
}

static bpe_merge heap_pop(enc_state *st) {
  bpe_merge top = st->heap[0], last = st->heap[--st->n_heap];
  size_t i = 0, n = st->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_less(&st->heap[c + 1], &st->heap[c])) c++;
    if (!heap_less(&st->heap[c], &last)) break;
    st->heap[i] = st->heap[c];
    i = c;
  }
  if (n) st->heap[i] = last;
  return top;
}

/* Queues the pair starting at symbol pos if the merges know it. */
static int queue_pair(enc_state *st, int32_t pos) {
  const bpe_sym *a = &st->sym[pos];
  uint64_t v;
  if (a->next < 0) return 0;
  uint64_t key = (uint64_t)(uint32_t)a->id << 32 | (uint32_t)st->sym[a->next].id;
  if (!u64map_get(&st->t->merges, key, &v)) return 0;
  bpe_merge m = {(uint32_t)(v >> 32), (uint32_t)pos, (int32_t)(uint32_t)v};
  return heap_push(st, m);
}

/* True if the heap entry still describes the pair at its position. */
static int merge_valid(const enc_state *st, const bpe_merge *m) {
  const bpe_sym *a = &st->sym[m->pos];
  uint64_t v;
  if (a->len == 0 || a->next < 0) return 0;
  uint64_t key = (uint64_t)(uint32_t)a->id << 32 | (uint32_t)st->sym[a->next].id;
  return u64map_get(&st->t->merges, key, &v) && (int32_t)(uint32_t)v == m->new_id;
}

static int merge_all(enc_state *st, size_t n_sym) {
  st->n_heap = 0;
  for (size_t i = 0; i + 1 < n_sym; i++)
    if (queue_pair(st, (int32_t)i)) return SC_ERR_NOMEM;
  while (st->n_heap) {
    bpe_merge m = heap_pop(st);
    if (!merge_valid(st, &m)) continue;
    bpe_sym *a = &st->sym[m.pos], *b = &st->sym[a->next];
    a->id = m.new_id;
    a->len += b->len;
    b->len = 0;
    a->next = b->next;
    if (a->next >= 0) st->sym[a->next].prev = (int32_t)m.pos;
    if (a->prev >= 0 && queue_pair(st, a->prev)) return SC_ERR_NOMEM;
    if (queue_pair(st, (int32_t)m.pos)) return SC_ERR_NOMEM;
  }
  return 0;
}

static int sym_add(enc_state *st, size_t *n, int32_t id, uint32_t len) {
  if (grow((void **)&st->sym, &st->cap_sym, *n + 1, sizeof *st->sym)) return SC_ERR_NOMEM;
  st->sym[*n] = (bpe_sym){id, (int32_t)*n - 1, -1, len};
  if (*n) st->sym[*n - 1].next = (int32_t)*n;
  (*n)++;
  return 0;
}

/* Byte length of the UTF-8 sequence led by c (input is validated). */
static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* A char not in the vocab: its <0xHH> tokens if all exist, else 0. */
static int byte_symbols(enc_state *st, size_t *n, const char *c, size_t clen, int *done) {
  *done = 0;
  if (!st->t->byte_fallback) return 0;
  for (size_t k = 0; k < clen; k++)
    if (st->t->byte_id[(unsigned char)c[k]] < 0) return 0;
  for (size_t k = 0; k < clen; k++)
    if (sym_add(st, n, st->t->byte_id[(unsigned char)c[k]], 1)) return SC_ERR_NOMEM;
  *done = 1;
  return 0;
}

/* An unknown char: starts or extends the pending unk (len 0 = none). */
static int unk_char(enc_state *st, size_t *n, uint32_t *unk_len, size_t clen) {
  const tok_tokenizer *t = st->t;
  if (!t->has_unk) return 0; /* tokenizers drops the char */
  if (t->unk_id < 0)
    return sc_error_setc(SC_ERR_MISSING, "%s: unk_token '%s' is not in the vocab", t->name,
                         t->unk_token);
  if (*unk_len && !t->fuse_unk && sym_add(st, n, t->unk_id, *unk_len)) return SC_ERR_NOMEM;
  *unk_len = (t->fuse_unk ? *unk_len : 0) + (uint32_t)clen;
  return 0;
}

/* Initial symbols of word w (models/bpe/model.rs merge_word). */
static int word_symbols(enc_state *st, const char *w, size_t n, size_t *n_sym) {
  const tok_tokenizer *t = st->t;
  uint32_t unk_len = 0;
  *n_sym = 0;
  for (size_t i = 0; i < n;) {
    size_t clen = utf8_len((unsigned char)w[i]);
    int32_t id = vmap_find(t, w + i, clen);
    int done = 1, rc = 0;
    if (id >= 0) {
      if (unk_len && sym_add(st, n_sym, t->unk_id, unk_len)) return SC_ERR_NOMEM;
      unk_len = 0;
      rc = sym_add(st, n_sym, id, (uint32_t)clen);
    } else {
      rc = byte_symbols(st, n_sym, w + i, clen, &done);
      if (!rc && !done) rc = unk_char(st, n_sym, &unk_len, clen);
    }
    if (rc) return rc;
    i += clen;
  }
  if (unk_len && sym_add(st, n_sym, t->unk_id, unk_len)) return SC_ERR_NOMEM;
  return 0;
}

static int bpe_word(enc_state *st, const char *w, size_t n) {
  size_t n_sym;
  if (n == 0) return 0;
  if (st->t->ignore_merges) {
    int32_t id = vmap_find(st->t, w, n);
    if (id >= 0) return ivec_push(&st->out, id);
  }
  int rc = word_symbols(st, w, n, &n_sym);
  if (!rc) rc = merge_all(st, n_sym);
  if (rc) return rc;
  for (int32_t i = n_sym ? 0 : -1; i >= 0; i = st->sym[i].next)
    if (ivec_push(&st->out, st->sym[i].id)) return SC_ERR_NOMEM;
  return 0;
}

/* ==== Encoding: pre-tokenizer (Split with a literal pattern) =============== */

static int seg_push(enc_state *st, size_t a, size_t b, size_t is_match) {
  if (grow((void **)&st->segs, &st->cap_segs, 3 * st->n_segs + 3, sizeof *st->segs))
    return SC_ERR_NOMEM;
  size_t *g = st->segs + 3 * st->n_segs++;
  g[0] = a, g[1] = b, g[2] = is_match;
  return 0;
}

/* Cuts s[off, off+len) into alternating non-match / match segments. */
static int find_segments(enc_state *st, const char *s, size_t off, size_t len, const split_step *p) {
  size_t end = off + len, prev = off;
  st->n_segs = 0;
  for (size_t i = off; i + p->pat_len <= end;) {
    if (memcmp(s + i, p->pat, p->pat_len)) {
      i++;
      continue;
    }
    if (i > prev && seg_push(st, prev, i, 0)) return SC_ERR_NOMEM;
    if (seg_push(st, i, i + p->pat_len, 1)) return SC_ERR_NOMEM;
    i += p->pat_len;
    prev = i;
  }
  if (end > prev && seg_push(st, prev, end, 0)) return SC_ERR_NOMEM;
  return 0;
}

/* Applies SplitDelimiterBehavior to the segments, appending pieces. */
static int apply_behavior(enc_state *st, int behavior, spans *out) {
  size_t first = out->n;
  int prev_match = 0;
  for (size_t k = 0; k < st->n_segs; k++) {
    size_t j = behavior == SPLIT_MERGED_NEXT ? st->n_segs - 1 - k : k;
    size_t a = st->segs[3 * j], b = st->segs[3 * j + 1], m = st->segs[3 * j + 2];
    int join = out->n > first &&
               ((behavior == SPLIT_MERGED_PREV || behavior == SPLIT_MERGED_NEXT) ? m && !prev_match
                : behavior == SPLIT_CONTIGUOUS                                  ? m && prev_match
                                                                                : 0);
    prev_match = (int)m;
    if (behavior == SPLIT_REMOVED && m) continue;
    if (!join) {
      if (spans_push(out, a, b - a)) return SC_ERR_NOMEM;
      continue;
    }
    size_t *last = out->v + 2 * (out->n - 1);
    if (behavior == SPLIT_MERGED_NEXT) /* extend the later piece leftwards */
      last[1] += last[0] - a, last[0] = a;
    else
      last[1] = b - last[0];
  }
  if (behavior == SPLIT_MERGED_NEXT) /* built right to left */
    for (size_t i = first, j = out->n - 1; i < j; i++, j--)
      for (int q = 0; q < 2; q++) {
        size_t tmp = out->v[2 * i + q];
        out->v[2 * i + q] = out->v[2 * j + q];
        out->v[2 * j + q] = tmp;
      }
  return 0;
}

/* Pre-tokenizes s[0, n) and runs BPE on each piece. */
static int pretokenize_and_bpe(enc_state *st, const char *s, size_t n) {
  spans *cur = &st->sp[0], *nxt = &st->sp[1];
  cur->n = 0;
  if (spans_push(cur, 0, n)) return SC_ERR_NOMEM;
  for (int k = 0; k < st->t->n_split; k++) {
    nxt->n = 0;
    for (size_t i = 0; i < cur->n; i++) {
      if (find_segments(st, s, cur->v[2 * i], cur->v[2 * i + 1], &st->t->split[k]) ||
          apply_behavior(st, st->t->split[k].behavior, nxt))
        return SC_ERR_NOMEM;
    }
    spans *tmp = cur;
    cur = nxt, nxt = tmp;
  }
  for (size_t i = 0; i < cur->n; i++) {
    int rc = bpe_word(st, s + cur->v[2 * i], cur->v[2 * i + 1]);
    if (rc) return rc;
  }
  return 0;
}

/* ==== Encoding: normalizer and added tokens ================================= */

/* Replaces every pat in s[0, n) by rep, into out. */
static int replace_all(bbuf *out, const char *s, size_t n, const char *pat, size_t pn,
                       const char *rep, size_t rn) {
  size_t i = 0, prev = 0;
  out->n = 0;
  while (i + pn <= n) {
    if (memcmp(s + i, pat, pn)) {
      i++;
      continue;
    }
    if (bbuf_put(out, s + prev, i - prev) || bbuf_put(out, rep, rn)) return SC_ERR_NOMEM;
    i += pn;
    prev = i;
  }
  return bbuf_put(out, s + prev, n - prev);
}

static int normalize(enc_state *st, const char *s, size_t n, const char **out, size_t *out_n) {
  int w = 0;
  *out = s, *out_n = n;
  for (int k = 0; k < st->t->n_norm; k++, w ^= 1) {
    const norm_step *p = &st->t->norm[k];
    bbuf *b = &st->norm[w];
    int rc = 0;
    b->n = 0;
    if (p->kind == NORM_REPLACE)
      rc = replace_all(b, *out, *out_n, p->pat, p->pat_len, p->content, p->content_len);
    else if (*out_n) /* Prepend only touches a non-empty string */
      rc = bbuf_put(b, p->content, p->content_len) || bbuf_put(b, *out, *out_n);
    else
      rc = bbuf_put(b, "", 0);
    if (rc) return SC_ERR_NOMEM;
    *out = b->p, *out_n = b->n;
  }
  return 0;
}

static int encode_split(enc_state *st, const tok_trie *tr, int normalized, const char *s, size_t n);

/* A piece between added tokens: normalize, split on the normalized added
 * tokens, pre-tokenize, BPE. */
static int encode_piece(enc_state *st, int normalized, const char *s, size_t n) {
  if (normalized) return pretokenize_and_bpe(st, s, n);
  const char *ns;
  size_t nn;
  if (normalize(st, s, n, &ns, &nn)) return SC_ERR_NOMEM;
  if (st->t->norm_trie.n_nodes > 1) return encode_split(st, &st->t->norm_trie, 1, ns, nn);
  return pretokenize_and_bpe(st, ns, nn);
}

/* Leftmost-longest added-token matches in s; the text between goes to
 * encode_piece. A match can only start on a UTF-8 lead byte, since every
 * content is valid UTF-8. */
static int encode_split(enc_state *st, const tok_trie *tr, int normalized, const char *s, size_t n) {
  size_t seg = 0, i = 0;
  int rc = 0;
  while (i < n && !rc) {
    size_t mlen;
    int32_t id = tr->root[(unsigned char)s[i]] ? trie_longest(tr, s + i, n - i, &mlen) : -1;
    if (id < 0) {
      i++;
      continue;
    }
    if (i > seg) rc = encode_piece(st, normalized, s + seg, i - seg);
    if (!rc) rc = ivec_push(&st->out, id);
    i += mlen;
    seg = i;
  }
  if (!rc && seg < n) rc = encode_piece(st, normalized, s + seg, n - seg);
  return rc;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int add_bos,
               int32_t **ids_out, size_t *n_out) {
  size_t bad;
  *ids_out = NULL;
  *n_out = 0;
  if (len && !sc_utf8_valid(text, len, &bad))
    return sc_error_set("input: invalid UTF-8 at byte %zu", bad);
  enc_state st = {.t = t};
  int rc = 0;
  for (int i = 0; add_bos && i < t->n_prefix && !rc; i++) rc = ivec_push(&st.out, t->prefix[i]);
  if (!rc) rc = encode_split(&st, &t->raw_trie, 0, text, len);
  for (int i = 0; add_bos && i < t->n_suffix && !rc; i++) rc = ivec_push(&st.out, t->suffix[i]);
  if (!rc && st.out.n) {
    *ids_out = st.out.v;
    *n_out = st.out.n;
    st.out.v = NULL;
  }
  enc_free(&st);
  return rc;
}

/* ==== Decoding ============================================================== */

/* A list of strings (the decoder chain's tokens), stored back to back. */
typedef struct plist {
  bbuf b;
  size_t *v; /* (2 * n): offset in b, length */
  size_t n, cap;
} plist;

static void plist_free(plist *l) {
  free(l->b.p);
  free(l->v);
}

static int plist_add(plist *l, const char *s, size_t n) {
  size_t off = l->b.n;
  if (bbuf_put(&l->b, s, n) || grow((void **)&l->v, &l->cap, 2 * l->n + 2, sizeof *l->v))
    return SC_ERR_NOMEM;
  l->v[2 * l->n] = off;
  l->v[2 * l->n + 1] = n;
  l->n++;
  return 0;
}

#define PIECE(l, i) ((l)->b.p + (l)->v[2 * (i)])
#define PIECE_LEN(l, i) ((l)->v[2 * (i) + 1])

/* decoders/byte_fallback.rs: "<0xHH>" (exactly 6 bytes) is a byte. */
static int byte_token(const char *s, size_t n, unsigned char *b) {
  if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
  int v = 0;
  for (int k = 3; k < 5; k++) {
    char c = s[k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return 0;
    v = v * 16 + d;
  }
  *b = (unsigned char)v;
  return 1;
}

/* A byte run: one piece if valid UTF-8, else one U+FFFD per byte. */
static int flush_bytes(plist *out, bbuf *bytes) {
  int rc = 0;
  if (!bytes->n) return 0;
  if (sc_utf8_valid(bytes->p, bytes->n, NULL))
    rc = plist_add(out, bytes->p, bytes->n);
  else
    for (size_t k = 0; k < bytes->n && !rc; k++) rc = plist_add(out, "\xEF\xBF\xBD", 3);
  bytes->n = 0;
  return rc;
}

static int dec_byte_fallback(const plist *in, plist *out) {
  bbuf bytes = {0};
  int rc = 0;
  for (size_t i = 0; i < in->n && !rc; i++) {
    unsigned char b;
    if (byte_token(PIECE(in, i), PIECE_LEN(in, i), &b)) {
      rc = bbuf_put(&bytes, (const char *)&b, 1);
      continue;
    }
    rc = flush_bytes(out, &bytes);
    if (!rc) rc = plist_add(out, PIECE(in, i), PIECE_LEN(in, i));
  }
  if (!rc) rc = flush_bytes(out, &bytes);
  free(bytes.p);
  return rc;
}

/* decoders/strip.rs: drop up to start leading / stop trailing chars equal
 * to content, counted in chars. */
static int dec_strip(const dec_step *d, const char *s, size_t n, plist *out) {
  size_t a = 0, b = n, c = d->content_len;
  for (size_t k = 0; k < d->start && a + c <= n && !memcmp(s + a, d->content, c); k++) a += c;
  for (size_t k = 0; k < d->stop && b >= a + c && !memcmp(s + b - c, d->content, c); k++) b -= c;
  return plist_add(out, s + a, b > a ? b - a : 0);
}

static int dec_apply(const dec_step *d, const plist *in, plist *out) {
  int rc = 0;
  if (d->kind == DEC_BYTE_FALLBACK) return dec_byte_fallback(in, out);
  if (d->kind == DEC_FUSE) {
    rc = plist_add(out, in->b.p ? in->b.p : "", 0);
    out->v[1] = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
      rc = bbuf_put(&out->b, PIECE(in, i), PIECE_LEN(in, i));
      out->v[1] += PIECE_LEN(in, i);
    }
    return rc;
  }
  bbuf tmp = {0};
  for (size_t i = 0; i < in->n && !rc; i++) {
    if (d->kind == DEC_STRIP) {
      rc = dec_strip(d, PIECE(in, i), PIECE_LEN(in, i), out);
      continue;
    }
    rc = replace_all(&tmp, PIECE(in, i), PIECE_LEN(in, i), d->pat, d->pat_len, d->content,
                     d->content_len);
    if (!rc) rc = plist_add(out, tmp.p, tmp.n);
  }
  free(tmp.p);
  return rc;
}

/* The tokens of ids, special ones dropped when skip_special. */
static int id_tokens(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                     plist *out) {
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *s;
    if (ids[i] < 0 || ids[i] >= t->n_ids)
      return sc_error_setc(SC_ERR_RANGE, "token id %lld is out of range [0, %d)",
                           (long long)ids[i], (int)t->n_ids);
    if (!(s = tok_token_str(t, ids[i], &len)))
      return sc_error_setc(SC_ERR_RANGE, "token id %d has no token", (int)ids[i]);
    if (skip_special && t->special[ids[i]]) continue;
    if (plist_add(out, s, len)) return SC_ERR_NOMEM;
  }
  return 0;
}

static int join_pieces(const plist *l, const char *sep, char **text_out, size_t *len_out) {
  bbuf b = {0};
  int rc = bbuf_put(&b, "", 0);
  for (size_t i = 0; i < l->n && !rc; i++) {
    if (i && *sep) rc = bbuf_put(&b, sep, strlen(sep));
    if (!rc) rc = bbuf_put(&b, PIECE(l, i), PIECE_LEN(l, i));
  }
  if (rc) {
    free(b.p);
    return rc;
  }
  *text_out = b.p;
  if (len_out) *len_out = b.n;
  return 0;
}

int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
               char **text_out, size_t *len_out) {
  plist a = {0}, b = {0};
  *text_out = NULL;
  if (len_out) *len_out = 0;
  int rc = id_tokens(t, ids, n, skip_special, &a);
  for (int k = 0; k < t->n_dec && !rc; k++) {
    b.n = 0;
    b.b.n = 0;
    rc = dec_apply(&t->dec[k], &a, &b);
    plist tmp = a;
    a = b, b = tmp;
  }
  /* Tokenizer::decode without a decoder joins the tokens with spaces. */
  if (!rc) rc = join_pieces(&a, t->has_decoder ? "" : " ", text_out, len_out);
  plist_free(&a);
  plist_free(&b);
  return rc;
}

/* ==== Queries =============================================================== */

int32_t tok_n_ids(const tok_tokenizer *t) { return t->n_ids; }

const char *tok_token_str(const tok_tokenizer *t, int32_t id, size_t *len) {
  if (id < 0 || id >= t->n_ids) return NULL;
  if (t->added_s[id]) {
    *len = t->added_len[id];
    return t->added_s[id];
  }
  if (!t->vocab_s[id]) return NULL;
  *len = t->vocab_len[id];
  return t->vocab_s[id];
}

static int32_t trie_exact(const tok_trie *tr, const char *s, size_t n) {
  uint32_t node = 0;
  for (size_t i = 0; i < n; i++)
    if (!(node = trie_child(tr, node, (unsigned char)s[i]))) return -1;
  return n ? tr->term[node] : -1;
}

int32_t tok_token_id(const tok_tokenizer *t, const char *s, size_t len) {
  int32_t id = trie_exact(&t->raw_trie, s, len);
  if (id < 0) id = trie_exact(&t->norm_trie, s, len);
  return id >= 0 ? id : vmap_find(t, s, len);
}

int32_t tok_find_added(const tok_tokenizer *t, const char *text, size_t len, size_t *pos,
                       size_t *mlen) {
  for (size_t i = 0; i < len; i++) {
    int32_t id = t->raw_trie.root[(unsigned char)text[i]] ? trie_longest(&t->raw_trie, text + i, len - i, mlen) : -1;
    if (id >= 0) {
      *pos = i;
      return id;
    }
  }
  return -1;
}

int tok_is_special(const tok_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_ids && t->special[id];
}
