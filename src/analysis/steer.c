/* steer.c: SAE feature interventions through the edit hook (steer.h). */
#include "analysis/steer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"

/* ==== Parsers ==== */

static int parse_number(const char *s, float *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || end == s || *end || errno == ERANGE || !isfinite(v) || fabs(v) > 3.0e38) return -1;
  *out = (float)v;
  return 0;
}

int an_steer_mode_parse(const char *text, an_steer_op *out) {
  static const struct {
    const char *name;
    an_steer_mode mode;
  } modes[] = {{"scale:", AN_STEER_SCALE}, {"clamp:", AN_STEER_CLAMP}, {"add:", AN_STEER_ADD}};
  memset(out, 0, sizeof *out);
  if (!text) return sc_error_setc(SC_ERR_ARG, "--steer-mode: missing value");
  if (!strcmp(text, "ablate")) {
    out->mode = AN_STEER_ABLATE;
    return 0;
  }
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    size_t k = strlen(modes[i].name);
    if (strncmp(text, modes[i].name, k)) continue;
    out->mode = modes[i].mode;
    if (parse_number(text + k, &out->value))
      return sc_error_setc(SC_ERR_ARG, "--steer-mode: '%.64s': '%.64s' is not a finite number", text, text + k);
    return 0;
  }
  return sc_error_setc(SC_ERR_ARG, "--steer-mode: '%.64s' is not ablate, scale:A, clamp:V or add:C", text);
}

void an_steer_mode_str(const an_steer_op *op, char *buf, int cap) {
  static const char *const names[] = {"ablate", "scale", "clamp", "add"};
  if (op->mode == AN_STEER_ABLATE) snprintf(buf, (size_t)cap, "ablate");
  else snprintf(buf, (size_t)cap, "%s:%g", names[op->mode], (double)op->value);
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Index items are plain decimal digits (no sign, no spaces): a feature list
 * is typed or generated, and anything else is more likely a mistake. */
static int parse_index(const char *p, size_t len, int32_t *out) {
  if (len == 0 || len > 9) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  if (v >= AN_STEER_MAX_FEATURES) return -1;
  *out = (int32_t)v;
  return 0;
}

int an_steer_features_parse(const char *text, int32_t **out, int *n_out) {
  *out = NULL;
  *n_out = 0;
  if (!text || !*text) return sc_error_setc(SC_ERR_ARG, "--steer-features: no feature given");
  size_t items = 1;
  for (const char *p = text; *p; p++) items += *p == ',';
  if (items > AN_STEER_MAX_FEATURES)
    return sc_error_setc(SC_ERR_ARG, "--steer-features: more than %d features", AN_STEER_MAX_FEATURES);
  int32_t *f = malloc(items * sizeof *f), *sorted = malloc(items * sizeof *sorted);
  if (!f || !sorted) {
    free(f), free(sorted);
    return sc_error_setc(SC_ERR_NOMEM, "--steer-features: out of memory");
  }
  int n = 0, rc = 0;
  for (const char *p = text;; p++) {
    size_t len = strcspn(p, ",");
    if (parse_index(p, len, &f[n])) {
      rc = sc_error_setc(SC_ERR_ARG, "--steer-features: '%.*s' is not a feature index", (int)(len < 32 ? len : 32), p);
      break;
    }
    n++;
    p += len;
    if (!*p) break;
  }
  if (!rc) {
    memcpy(sorted, f, (size_t)n * sizeof *f);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_i32);
    for (int i = 1; i < n && !rc; i++)
      if (sorted[i] == sorted[i - 1])
        rc = sc_error_setc(SC_ERR_ARG, "--steer-features: feature %d is repeated", (int)sorted[i]);
  }
  free(sorted);
  if (rc) {
    free(f);
    return rc;
  }
  *out = f;
  *n_out = n;
  return 0;
}

/* "blocks.<L>.hook_resid_post" or a Gemma Scope "…layers.<L>.output". */
int an_sae_hook_layer(const sae *s, const char *what, int *layer) {
  const char *h = s->cfg.hook_name, *num = NULL, *tail = NULL;
  if (!strncmp(h, "blocks.", 7)) num = h + 7, tail = ".hook_resid_post";
  else if ((num = strstr(h, "layers."))) num += 7, tail = ".output";
  if (num && *num >= '0' && *num <= '9') {
    char *end = NULL;
    long l = strtol(num, &end, 10);
    if (l >= 0 && l < 100000 && !strcmp(end, tail)) {
      *layer = (int)l;
      return 0;
    }
  }
  return sc_error_setc(SC_ERR_ARG, "%s: hook '%.200s' is not a resid_post hook with a layer (blocks.<L>.hook_resid_post)",
                       what, h);
}

/* ==== The intervention ==== */

typedef struct st_op {
  const sae *s;
  int layer;
  an_steer_op op;
  int n;           /* |S| */
  int32_t *feat;   /* (n) */
  float *add;      /* ADD: (d) C·Σ d_i */
  float *coef;     /* (n) f'_i − f_i of one row */
  double *xc;      /* (d) x − b_dec of one row */
  int32_t *slot;   /* TOPK: (n_latents) position of latent in feat, -1 if not in S */
  sae_codes codes; /* TOPK: the codes of one forward's rows */
} st_op;

struct an_steer {
  int n_layers, hidden, n_ops;
  st_op ops[AN_STEER_MAX_OPS];
  double seconds;
};

int an_steer_create(an_steer **out, int n_layers, int hidden) {
  *out = NULL;
  if (n_layers < 1 || hidden < 1) return sc_error_setc(SC_ERR_ARG, "steer: bad model shape");
  an_steer *st = calloc(1, sizeof *st);
  if (!st) return sc_error_setc(SC_ERR_NOMEM, "steer: out of memory");
  st->n_layers = n_layers;
  st->hidden = hidden;
  *out = st;
  return 0;
}

static void op_free(st_op *o) {
  free(o->feat), free(o->add), free(o->coef), free(o->xc), free(o->slot);
  sae_codes_release(&o->codes);
}

void an_steer_free(an_steer *st) {
  if (!st) return;
  for (int i = 0; i < st->n_ops; i++) op_free(&st->ops[i]);
  free(st);
}

int an_steer_n_ops(const an_steer *st) { return st->n_ops; }
double an_steer_seconds(const an_steer *st) { return st->seconds; }
void an_steer_reset_seconds(an_steer *st) { st->seconds = 0; }

static int check_add(const an_steer *st, const sae *s, const char *what, int layer, const int32_t *feat,
                     int n_feat) {
  if (st->n_ops >= AN_STEER_MAX_OPS)
    return sc_error_setc(SC_ERR_ARG, "too many steering operations (max %d)", AN_STEER_MAX_OPS);
  if (s->cfg.d != st->hidden)
    return sc_error_setc(SC_ERR_ARG, "%s: SAE input width d_in %lld does not match the model's hidden size %d", what,
                         (long long)s->cfg.d, st->hidden);
  if (layer < 0 || layer >= st->n_layers)
    return sc_error_setc(SC_ERR_ARG, "%s: layer %d is out of range: the model has layers 0..%d", what, layer,
                         st->n_layers - 1);
  if (n_feat < 1) return sc_error_setc(SC_ERR_ARG, "%s: no feature given", what);
  for (int i = 0; i < n_feat; i++)
    if (feat[i] < 0 || feat[i] >= s->cfg.n)
      return sc_error_setc(SC_ERR_ARG, "%s: feature %d is out of range [0, %lld)", what, (int)feat[i],
                           (long long)s->cfg.n);
  return 0;
}

static int op_init(st_op *o, const sae *s, int layer, const int32_t *feat, int n_feat, an_steer_op op) {
  size_t d = (size_t)s->cfg.d;
  memset(o, 0, sizeof *o);
  o->s = s, o->layer = layer, o->op = op, o->n = n_feat;
  int ok = (o->feat = malloc((size_t)n_feat * sizeof *o->feat)) != NULL;
  if (ok) memcpy(o->feat, feat, (size_t)n_feat * sizeof *feat);
  if (ok && op.mode == AN_STEER_ADD) {
    double *acc = calloc(d, sizeof *acc);
    ok = acc && (o->add = malloc(d * sizeof *o->add));
    for (int i = 0; ok && i < n_feat; i++) {
      const float *di = s->W_dec + (size_t)feat[i] * d;
      for (size_t j = 0; j < d; j++) acc[j] += di[j];
    }
    for (size_t j = 0; ok && j < d; j++) o->add[j] = (float)((double)op.value * acc[j]);
    free(acc);
    return ok ? 0 : sc_error_setc(SC_ERR_NOMEM, "steer: out of memory");
  }
  ok = ok && (o->coef = malloc((size_t)n_feat * sizeof *o->coef)) && (o->xc = malloc(d * sizeof *o->xc));
  if (ok && s->cfg.arch == SAE_ARCH_TOPK) {
    ok = (o->slot = malloc((size_t)s->cfg.n * sizeof *o->slot)) != NULL && !sae_codes_init(&o->codes);
    for (int64_t i = 0; ok && i < s->cfg.n; i++) o->slot[i] = -1;
    for (int i = 0; ok && i < n_feat; i++) o->slot[feat[i]] = i;
  }
  return ok ? 0 : sc_error_setc(SC_ERR_NOMEM, "steer: out of memory");
}

int an_steer_add(an_steer *st, const sae *s, const char *what, int layer, const int32_t *feat, int n_feat,
                 an_steer_op op) {
  int rc = check_add(st, s, what, layer, feat, n_feat);
  if (rc) return rc;
  st_op *o = &st->ops[st->n_ops];
  rc = op_init(o, s, layer, feat, n_feat, op);
  if (rc) {
    op_free(o);
    return rc;
  }
  st->n_ops++;
  return 0;
}

/* f'_i from f_i. */
static float target(const an_steer_op *op, float f) {
  switch (op->mode) {
    case AN_STEER_SCALE: return op->value * f;
    case AN_STEER_CLAMP: return op->value;
    default: return 0.0f;
  }
}

/* f_i of the independent-latent architectures, from the pre-activation. */
static float activation(const sae *s, int32_t i, const double *xc) {
  size_t d = (size_t)s->cfg.d;
  const float *w = s->W_enc + (size_t)i * d;
  double acc = 0;
  for (size_t j = 0; j < d; j++) acc += xc[j] * (double)w[j];
  float h = (float)(acc + (double)s->b_enc[i]);
  if (!(h > 0.0f)) return 0.0f;
  if (s->cfg.arch != SAE_ARCH_RELU && !(h > s->threshold[i])) return 0.0f;
  return h;
}

/* Coefficients f'_i − f_i of row r (codes filled for TOPK). */
static void row_coefs(st_op *o, const float *x, int64_t r) {
  const sae *s = o->s;
  size_t d = (size_t)s->cfg.d;
  if (s->cfg.arch == SAE_ARCH_TOPK) {
    for (int i = 0; i < o->n; i++) o->coef[i] = target(&o->op, 0.0f); /* f_i = 0 unless in the codes */
    for (int64_t e = o->codes.row_ptr[r]; e < o->codes.row_ptr[r + 1]; e++) {
      int32_t k = o->slot[o->codes.idx[e]];
      if (k >= 0) o->coef[k] = target(&o->op, o->codes.val[e]) - o->codes.val[e];
    }
    return;
  }
  for (size_t j = 0; j < d; j++) o->xc[j] = (double)x[j] - (s->cfg.apply_b_dec_to_input ? (double)s->b_dec[j] : 0.0);
  for (int i = 0; i < o->n; i++) {
    float f = activation(s, o->feat[i], o->xc);
    o->coef[i] = target(&o->op, f) - f;
  }
}

static int apply_op(st_op *o, float *resid, int64_t n, int hidden) {
  size_t d = (size_t)hidden;
  if (o->op.mode == AN_STEER_ADD) {
    for (int64_t r = 0; r < n; r++)
      for (size_t j = 0; j < d; j++) resid[(size_t)r * d + j] += o->add[j];
    return 0;
  }
  if (o->s->cfg.arch == SAE_ARCH_TOPK) {
    int rc = sae_encode(o->s, resid, n, &o->codes);
    if (rc) return rc;
  }
  /* Every coefficient of a row comes from the row as it was, then the
   * decoder rows are added: the features of S see the same x. */
  for (int64_t r = 0; r < n; r++) {
    float *x = resid + (size_t)r * d;
    row_coefs(o, x, r);
    for (int i = 0; i < o->n; i++) {
      float c = o->coef[i];
      if (c == 0.0f) continue;
      const float *di = o->s->W_dec + (size_t)o->feat[i] * d;
      for (size_t j = 0; j < d; j++) x[j] += c * di[j];
    }
  }
  return 0;
}

int an_steer_edit(void *user, int layer, float *resid, const int32_t *pos, int64_t n, int hidden) {
  (void)pos;
  an_steer *st = user;
  if (hidden != st->hidden)
    return sc_error_setc(SC_ERR_ARG, "steer: residual width %d, the intervention was built for %d", hidden, st->hidden);
  double t0 = sc_time_now();
  int rc = 0;
  for (int i = 0; i < st->n_ops && !rc; i++)
    if (st->ops[i].layer == layer) rc = apply_op(&st->ops[i], resid, n, hidden);
  st->seconds += sc_time_now() - t0;
  return rc;
}
