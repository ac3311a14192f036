/* sae.c: the SAE model, architectures, CSR codes, encode and decode. */
#include "sae/sae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "sae/sae_kernels.h"

/* ==== Names and limits ==== */

const char *sae_arch_name(sae_arch a) {
  switch (a) {
    case SAE_ARCH_RELU: return "standard";
    case SAE_ARCH_TOPK: return "topk";
    case SAE_ARCH_BATCHTOPK: return "batchtopk";
    case SAE_ARCH_JUMPRELU: return "jumprelu";
  }
  return "?";
}

int sae_arch_parse(const char *name, sae_arch *out) {
  if (!name) name = "";
  if (!strcmp(name, "relu") || !strcmp(name, "standard")) *out = SAE_ARCH_RELU;
  else if (!strcmp(name, "topk")) *out = SAE_ARCH_TOPK;
  else if (!strcmp(name, "batchtopk")) *out = SAE_ARCH_BATCHTOPK;
  else if (!strcmp(name, "jumprelu")) *out = SAE_ARCH_JUMPRELU;
  else
    return sc_error_setc(SC_ERR_ARG, "architecture '%s' is not one of relu, topk, batchtopk, jumprelu",
                         name);
  return 0;
}

int sae_cfg_check(const sae_cfg *cfg, const char *what) {
  if (cfg->arch < SAE_ARCH_RELU || cfg->arch > SAE_ARCH_JUMPRELU)
    return sc_error_setc(SC_ERR_RANGE, "%s: unknown architecture %d", what, (int)cfg->arch);
  if (cfg->d < 1 || cfg->d > SAE_MAX_D)
    return sc_error_setc(SC_ERR_RANGE, "%s: d_in %lld is outside 1..%d", what, (long long)cfg->d,
                         SAE_MAX_D);
  if (cfg->n < 1 || cfg->n > SAE_MAX_N)
    return sc_error_setc(SC_ERR_RANGE, "%s: d_sae %lld is outside 1..%d", what, (long long)cfg->n,
                         SAE_MAX_N);
  if (cfg->d * cfg->n > SAE_MAX_PARAMS)
    return sc_error_setc(SC_ERR_RANGE, "%s: d_in x d_sae = %lld is too large", what,
                         (long long)(cfg->d * cfg->n));
  int needs_k = cfg->arch == SAE_ARCH_TOPK || cfg->arch == SAE_ARCH_BATCHTOPK;
  if (needs_k && (cfg->k < 1 || cfg->k > cfg->n))
    return sc_error_setc(SC_ERR_RANGE, "%s: k %d is outside 1..d_sae (%lld)", what, cfg->k,
                         (long long)cfg->n);
  if (!needs_k && (cfg->k < 0 || cfg->k > cfg->n))
    return sc_error_setc(SC_ERR_RANGE, "%s: k %d is outside 0..d_sae (%lld)", what, cfg->k,
                         (long long)cfg->n);
  return 0;
}

/* ==== Lifetime ==== */

int sae_create(sae **out, const sae_cfg *cfg) {
  *out = NULL;
  int rc = sae_cfg_check(cfg, "sae");
  if (rc) return rc;
  sae *s = calloc(1, sizeof *s);
  if (!s) return sc_error_setc(SC_ERR_NOMEM, "sae: out of memory");
  s->cfg = *cfg;
  size_t nd = (size_t)(cfg->n * cfg->d);
  s->W_enc = calloc(nd, sizeof(float));
  s->W_dec = calloc(nd, sizeof(float));
  s->b_enc = calloc((size_t)cfg->n, sizeof(float));
  s->b_dec = calloc((size_t)cfg->d, sizeof(float));
  s->threshold = calloc((size_t)cfg->n, sizeof(float));
  if (!s->W_enc || !s->W_dec || !s->b_enc || !s->b_dec || !s->threshold) {
    sae_free(s);
    return sc_error_setc(SC_ERR_NOMEM, "sae: out of memory for %lld x %lld weights",
                         (long long)cfg->n, (long long)cfg->d);
  }
  *out = s;
  return 0;
}

int sae_clone(sae **out, const sae *s) {
  int rc = sae_create(out, &s->cfg);
  if (rc) return rc;
  size_t nd = (size_t)(s->cfg.n * s->cfg.d), n = (size_t)s->cfg.n, d = (size_t)s->cfg.d;
  memcpy((*out)->W_enc, s->W_enc, nd * sizeof(float));
  memcpy((*out)->W_dec, s->W_dec, nd * sizeof(float));
  memcpy((*out)->b_enc, s->b_enc, n * sizeof(float));
  memcpy((*out)->b_dec, s->b_dec, d * sizeof(float));
  memcpy((*out)->threshold, s->threshold, n * sizeof(float));
  return 0;
}

void sae_free(sae *s) {
  if (!s) return;
  free(s->W_enc);
  free(s->W_dec);
  free(s->b_enc);
  free(s->b_dec);
  free(s->threshold);
  free(s);
}

/* ==== Codes ==== */

int sae_codes_init(sae_codes *c) {
  memset(c, 0, sizeof *c);
  return sae_codes_reserve(c, 0, 0);
}

static int grow(void **p, int64_t *cap, int64_t want, size_t elem) {
  if (want <= *cap && *p) return 0;
  int64_t nc = *cap > 16 ? *cap : 16;
  while (nc < want) nc *= 2;
  void *q = realloc(*p, (size_t)nc * elem);
  if (!q) return sc_error_setc(SC_ERR_NOMEM, "sae: out of memory for %lld codes", (long long)nc);
  *p = q;
  *cap = nc;
  return 0;
}

int sae_codes_reserve(sae_codes *c, int64_t rows, int64_t entries) {
  int64_t rcap = c->rows_cap ? c->rows_cap + 1 : 0, ecap = c->cap, ecap2 = ecap;
  int had = c->row_ptr != NULL;
  int rc = grow((void **)&c->row_ptr, &rcap, rows + 1, sizeof *c->row_ptr);
  if (rc) return rc;
  if (!had) c->row_ptr[0] = 0;
  c->rows_cap = rcap - 1;
  rc = grow((void **)&c->idx, &ecap, entries, sizeof *c->idx);
  if (rc) return rc;
  rc = grow((void **)&c->val, &ecap2, entries, sizeof *c->val);
  if (rc) return rc;
  c->cap = ecap < ecap2 ? ecap : ecap2;
  return 0;
}

void sae_codes_release(sae_codes *c) {
  if (!c) return;
  free(c->row_ptr);
  free(c->idx);
  free(c->val);
  memset(c, 0, sizeof *c);
}

/* ==== Encode / decode ==== */

int64_t sae_tile_rows(int64_t n) {
  int64_t t = ((int64_t)32 << 20) / n;
  return t < 1 ? 1 : t;
}

/* Selects the active latents of one tile of pre-activations. */
static int select_tile(const sae *s, sae_codes *c, const float *h, int64_t T, int32_t *ti,
                       float *tv) {
  int64_t n = s->cfg.n;
  switch (s->cfg.arch) {
    case SAE_ARCH_TOPK:
      sae_topk_rows(ti, tv, h, T, n, n, s->cfg.k);
      return sae_codes_append_fixed(c, ti, tv, T, s->cfg.k, 0.0f);
    case SAE_ARCH_RELU: return sae_codes_append_threshold(c, h, NULL, T, n, n);
    default: return sae_codes_append_threshold(c, h, s->threshold, T, n, n);
  }
}

int sae_encode(const sae *s, const float *x, int64_t B, sae_codes *codes) {
  int64_t n = s->cfg.n, d = s->cfg.d, T = sae_tile_rows(n);
  if (T > B) T = B;
  codes->rows = 0;
  codes->row_ptr[0] = 0;
  if (B <= 0) return 0;
  int k = s->cfg.arch == SAE_ARCH_TOPK ? s->cfg.k : 1;
  float *h = malloc((size_t)(T * n) * sizeof *h);
  float *xc = malloc((size_t)(T * d) * sizeof *xc);
  int32_t *ti = malloc((size_t)(T * k) * sizeof *ti);
  float *tv = malloc((size_t)(T * k) * sizeof *tv);
  int rc = (h && xc && ti && tv) ? 0 : sc_error_setc(SC_ERR_NOMEM, "sae: out of memory encoding");
  const float *sub = s->cfg.apply_b_dec_to_input ? s->b_dec : NULL;
  for (int64_t r = 0; !rc && r < B; r += T) {
    int64_t t = B - r < T ? B - r : T;
    sae_encode_tile(h, xc, x + r * d, sub, s->W_enc, s->b_enc, t, d, n);
    rc = select_tile(s, codes, h, t, ti, tv);
  }
  free(h);
  free(xc);
  free(ti);
  free(tv);
  return rc;
}

void sae_decode(const sae *s, const sae_codes *codes, float *xhat) {
  sae_decode_csr(xhat, codes, s->W_dec, s->b_dec, s->cfg.d);
}
