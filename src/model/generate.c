/* generate.c: prompt ids, sampling and the generation loop (see
 * generate.h). */
#include "model/generate.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"
#include "model/chat.h"

#define GEN_CONFIG_MAX_BYTES ((size_t)1 << 20)
#define GEN_DEFAULT_MAX_NEW 64

/* ==== Options ==== */

void g3_gen_opts_init(g3_gen_opts *o, const g3_model *m) {
  const g3_text_config *t = &m->cfg.text;
  memset(o, 0, sizeof *o);
  o->max_new_tokens = GEN_DEFAULT_MAX_NEW;
  o->top_p = 1.0;
  o->n_eos = t->n_eos;
  for (int i = 0; i < t->n_eos; i++) o->eos[i] = t->eos_token_ids[i];
  o->vocab_limit = t->vocab_size;
  if (m->cfg.image_token_id > 0 && m->cfg.image_token_id < t->vocab_size)
    o->vocab_limit = m->cfg.image_token_id;
}

static int eos_value(g3_gen_opts *o, const sc_json *v, const char *path) {
  int n = sc_json_is_array(v) ? sc_json_size(v) : 1;
  if (!sc_json_is_array(v) && !sc_json_is_number(v))
    return sc_error_set("%s: eos_token_id: expected a number or a list of numbers", path);
  if (n < 1 || n > G3_MAX_EOS)
    return sc_error_setc(SC_ERR_RANGE, "%s: eos_token_id: %d ids, expected 1 to %d", path, n,
                         G3_MAX_EOS);
  for (int i = 0; i < n; i++) {
    int64_t id;
    const sc_json *e = sc_json_is_array(v) ? sc_json_at(v, i) : v;
    if (sc_json_i64(e, &id) || id < 0 || id > INT32_MAX)
      return sc_error_set("%s: eos_token_id: entry %d is not a token id", path, i);
    o->eos[i] = (int32_t)id;
  }
  o->n_eos = n;
  return 0;
}

int g3_gen_eos_load(g3_gen_opts *o, const char *dir) {
  char *path = sc_path_join(dir, "generation_config.json");
  sc_json *j = NULL;
  int rc = 0;
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", dir);
  if (sc_is_file(path)) rc = sc_json_load(path, GEN_CONFIG_MAX_BYTES, &j);
  if (!rc && j) {
    const sc_json *v = sc_json_get(j, "eos_token_id");
    if (!sc_json_is_object(j)) rc = sc_error_set("%s: expected a JSON object", path);
    else if (v && !sc_json_is_null(v)) rc = eos_value(o, v, path);
  }
  sc_json_free(j);
  free(path);
  return rc;
}

int g3_gen_opts_check(const g3_gen_opts *o, const g3_model *m) {
  if (o->max_new_tokens < 0 || o->max_new_tokens > G3_MAX_NEW_TOKENS)
    return sc_error_setc(SC_ERR_ARG, "generate: max_new_tokens %d is out of range [0, %d]",
                         o->max_new_tokens, G3_MAX_NEW_TOKENS);
  if (!(o->temperature >= 0.0) || !isfinite(o->temperature))
    return sc_error_setc(SC_ERR_ARG, "generate: temperature must be >= 0");
  if (o->top_k < 0) return sc_error_setc(SC_ERR_ARG, "generate: top_k must be >= 0");
  if (!(o->top_p > 0.0 && o->top_p <= 1.0))
    return sc_error_setc(SC_ERR_ARG, "generate: top_p must be in (0, 1]");
  if (o->vocab_limit < 1 || o->vocab_limit > m->cfg.text.vocab_size)
    return sc_error_setc(SC_ERR_ARG, "generate: vocab_limit %d is out of range [1, %d]",
                         (int)o->vocab_limit, m->cfg.text.vocab_size);
  return 0;
}

/* ==== Sampling ==== */

typedef struct cand {
  float logit;
  int32_t id;
} cand;

/* Descending by logit, then ascending id (a deterministic order). */
static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

static int32_t argmax(const float *x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

/* Candidates after temperature and top-k, sorted; returns how many. HF
 * TopKLogitsWarper keeps every logit >= the k-th largest (ties kept). */
static int32_t top_k_cands(const float *logits, const g3_gen_opts *o, cand *c) {
  int32_t n = o->vocab_limit;
  float inv_t = (float)(1.0 / o->temperature);
  for (int32_t i = 0; i < n; i++) c[i] = (cand){logits[i] * inv_t, i};
  qsort(c, (size_t)n, sizeof *c, cand_cmp);
  if (o->top_k <= 0 || o->top_k >= n) return n;
  int32_t k = o->top_k;
  while (k < n && c[k].logit == c[o->top_k - 1].logit) k++;
  return k;
}

/* Softmax of the sorted candidates into p (their order); then HF
 * TopPLogitsWarper: keep the top tokens while the mass before them is
 * below top_p (at least one). Returns the count kept and their mass. */
static int32_t top_p_cut(const cand *c, int32_t n, double top_p, float *p, double *mass) {
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) sum += (p[i] = expf(c[i].logit - c[0].logit));
  double before = 0.0;
  int32_t kept = 0;
  while (kept < n && (kept == 0 || top_p >= 1.0 || before / sum < top_p)) before += p[kept++];
  *mass = before;
  return kept;
}

int32_t g3_sample(const float *logits, const g3_gen_opts *o, sc_rng *rng, float *work) {
  if (o->temperature == 0.0) return argmax(logits, o->vocab_limit);
  cand *c = (cand *)(void *)work;
  float *p = work + 2 * (size_t)o->vocab_limit; /* after the candidates */
  int32_t n = top_k_cands(logits, o, c);
  double mass;
  int32_t kept = top_p_cut(c, n, o->top_p, p, &mass);
  double u = sc_rng_uniform(rng) * mass, acc = 0.0;
  for (int32_t i = 0; i < kept; i++)
    if ((acc += p[i]) > u) return c[i].id;
  return c[kept - 1].id;
}

/* ==== The generation loop ==== */

static int is_eos(const g3_gen_opts *o, int32_t id) {
  for (int i = 0; i < o->n_eos; i++)
    if (o->eos[i] == id) return 1;
  return 0;
}

/* Samples until eos or max_new_tokens, one cached decode step per id
 * after the first (whose logits the prefill left in logits). */
static int decode_loop(const g3_model *m, g3_state *s, const g3_gen_opts *o, float *logits,
                       int32_t *ids, int64_t *n_out) {
  float *work = malloc(3 * (size_t)o->vocab_limit * sizeof *work);
  if (!work) return sc_error_setc(SC_ERR_NOMEM, "generate: out of memory");
  sc_rng rng;
  sc_rng_seed(&rng, o->seed);
  g3_forward_io io = {.n = 1, .logits = logits, .logits_last = 1, .edit = o->edit,
                      .edit_user = o->edit_user};
  int64_t n = 0;
  int rc = 0;
  while (!rc && n < o->max_new_tokens) {
    ids[n] = g3_sample(logits, o, &rng, work);
    int stop = is_eos(o, ids[n++]) || n == o->max_new_tokens;
    if (stop && !o->feed_last) break;
    io.ids = &ids[n - 1];
    rc = g3_forward(m, s, &io);
    if (stop) break;
  }
  free(work);
  *n_out = n;
  return rc;
}

int g3_generate(const g3_model *m, const int32_t *prompt, int64_t n_prompt, const g3_gen_opts *o,
                int32_t **out, int64_t *n_out) {
  *out = NULL;
  *n_out = 0;
  int rc = g3_gen_opts_check(o, m);
  if (rc) return rc;
  g3_state *s = NULL;
  int64_t n = 0;
  float *logits = malloc((size_t)m->cfg.text.vocab_size * sizeof *logits);
  int32_t *ids = malloc(((size_t)o->max_new_tokens + 1) * sizeof *ids);
  if (!logits || !ids) rc = sc_error_setc(SC_ERR_NOMEM, "generate: out of memory");
  if (!rc) rc = g3_state_create(&s, m, n_prompt + o->max_new_tokens);
  g3_forward_io io = {.ids = prompt, .n = n_prompt, .logits = logits, .logits_last = 1,
                      .edit = o->edit, .edit_user = o->edit_user,
                      .image_group = o->prefill_image_group, .embeds_in = o->prefill_embeds};
  if (!rc && o->max_new_tokens > 0) rc = g3_forward(m, s, &io);
  if (!rc && o->max_new_tokens > 0) rc = decode_loop(m, s, o, logits, ids, &n);
  g3_state_free(s);
  free(logits);
  if (rc) {
    free(ids);
    return rc;
  }
  *out = ids;
  *n_out = n;
  return 0;
}

/* ==== Prompt input ==== */

static int ids_grow(int32_t **ids, int64_t *cap, int64_t n, const char *name) {
  if (n < *cap) return 0;
  int64_t c = *cap ? 2 * *cap : 256;
  int32_t *p = realloc(*ids, (size_t)c * sizeof *p);
  if (!p) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  *ids = p;
  *cap = c;
  return 0;
}

/* One whitespace-free word w[0..len) as an id in [0, vocab). */
static int parse_id(const char *w, size_t len, const char *name, int32_t vocab, int32_t *out) {
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (w[i] < '0' || w[i] > '9')
      return sc_error_set("%s: '%.*s' is not a token id", name, (int)(len > 32 ? 32 : len), w);
    if (v <= INT32_MAX) v = v * 10 + (w[i] - '0');
  }
  if (v >= vocab)
    return sc_error_setc(SC_ERR_RANGE, "%s: token id %s%.*s is out of range [0, %d)", name,
                         len > 18 ? "..." : "", (int)(len > 18 ? 18 : len), w + (len > 18 ? len - 18 : 0),
                         (int)vocab);
  *out = (int32_t)v;
  return 0;
}

int g3_ids_parse(const char *buf, size_t len, const char *name, int32_t vocab_size, int32_t **ids,
                 int64_t *n) {
  int32_t *a = NULL;
  int64_t cap = 0, k = 0;
  int rc = 0;
  for (size_t i = 0; i < len && !rc;) {
    if (isspace((unsigned char)buf[i])) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < len && !isspace((unsigned char)buf[j])) j++;
    rc = ids_grow(&a, &cap, k, name);
    if (!rc) rc = parse_id(buf + i, j - i, name, vocab_size, &a[k++]);
    i = j;
  }
  if (!rc && k == 0) rc = sc_error_set("%s: no token ids", name);
  if (rc) {
    free(a);
    return rc;
  }
  *ids = a;
  *n = k;
  return 0;
}

int g3_ids_load(const char *path, int32_t vocab_size, int32_t **ids, int64_t *n) {
  char *buf;
  size_t len;
  int rc = sc_read_file(path, G3_IDS_MAX_BYTES, &buf, &len);
  if (rc) return rc;
  rc = g3_ids_parse(buf, len, path, vocab_size, ids, n);
  free(buf);
  return rc;
}

int g3_prompt_encode(const tok_tokenizer *tok, const char *text, int chat, int32_t **ids,
                     int64_t *n) {
  size_t k = 0, len = strlen(text);
  int rc = chat ? g3_chat_encode(tok, text, len, 0, ids, &k) : tok_encode(tok, text, len, 1, ids, &k);
  if (rc) return rc;
  if (k == 0) {
    free(*ids);
    return sc_error_setc(SC_ERR_ARG, "prompt: empty");
  }
  *n = (int64_t)k;
  return 0;
}
