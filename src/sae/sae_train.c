/* sae_train.c: the SAE trainer (see sae_train.h): loss and sparse backward,
 * initialisation, the optimiser step, and trainer_state.safetensors. */
#include "sae/sae_train.h"

#include <inttypes.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"
#include "io/safetensors.h"
#include "sae/sae_kernels.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"

/* ==== Configuration ==== */

void sae_train_cfg_default(sae_train_cfg *c, sae_arch arch, int64_t d, int64_t n, int k) {
  memset(c, 0, sizeof *c);
  c->arch = arch, c->d = d, c->n = n, c->k = k;
  c->batch = 4096, c->steps = 10000;
  c->beta1 = 0.9, c->beta2 = 0.999, c->adam_eps = 1e-8;
  c->warmup_steps = 1000, c->decay_frac = 0.2, c->clip_norm = 1.0;
  c->l1_coeff = 1.0, c->l1_warmup_steps = 500; /* λ: a starting point, not an anchor value */
  c->aux_coeff = arch == SAE_ARCH_RELU ? 0.0 : 1.0;
  c->dead_tokens = 10000000;
  c->norm_rows = 65536, c->median_rows = 4096;
  c->unit_norm_decoder = arch != SAE_ARCH_RELU;
}

int sae_train_cfg_check(const sae_train_cfg *c) {
  if (c->arch == SAE_ARCH_JUMPRELU)
    return sc_error_setc(SC_ERR_ARG, "train: jumprelu training is not implemented (train batchtopk)");
  sae_cfg mc = {.arch = c->arch, .d = c->d, .n = c->n, .k = c->k};
  int rc = sae_cfg_check(&mc, "train");
  if (rc) return rc;
  if (c->batch < 1 || c->batch > (1 << 22))
    return sc_error_setc(SC_ERR_RANGE, "train: batch %lld is outside 1..4194304", (long long)c->batch);
  if (c->steps < 1) return sc_error_setc(SC_ERR_RANGE, "train: steps must be >= 1");
  if (c->warmup_steps < 0 || c->l1_warmup_steps < 0 || c->dead_tokens < 1 ||
      c->checkpoint_every < 0 || c->stop_at_step < 0)
    return sc_error_setc(SC_ERR_RANGE, "train: a step count is negative");
  if (!(c->decay_frac >= 0 && c->decay_frac <= 1) || !(c->beta1 >= 0 && c->beta1 < 1) ||
      !(c->beta2 >= 0 && c->beta2 < 1) || !(c->adam_eps > 0))
    return sc_error_setc(SC_ERR_RANGE, "train: decay_frac, betas or eps out of range");
  if (c->norm_rows < 1 || c->median_rows < 1 || c->norm_rows > (1 << 24) || c->median_rows > (1 << 24))
    return sc_error_setc(SC_ERR_RANGE, "train: norm_rows and median_rows must be in 1..16777216");
  if (c->k_aux < 0 || c->k_aux > c->n)
    return sc_error_setc(SC_ERR_RANGE, "train: k_aux %d is outside 0..d_sae", c->k_aux);
  return 0;
}

double sae_train_base_lr(const sae_train_cfg *c) {
  /* 2e-4 / sqrt(n / 2^14): OpenAI, dictionary_learning and sparsify. */
  return c->lr > 0 ? c->lr : 2e-4 / sqrt((double)c->n / 16384.0);
}

double sae_train_lr_factor(const sae_train_cfg *c, int64_t step) {
  int64_t decay_start = c->steps - (int64_t)llround(c->decay_frac * (double)c->steps);
  double f = 1.0;
  if (c->warmup_steps > 0 && step < c->warmup_steps)
    f = (double)(step + 1) / (double)c->warmup_steps;
  if (step >= decay_start && c->steps > decay_start) {
    double g = (double)(c->steps - step) / (double)(c->steps - decay_start);
    if (g < f) f = g;
  }
  return f;
}

/* ==== Loss and sparse backward ==== */

typedef struct lg_work {
  float *xc;     /* (B, d) encoder input: x − b_dec, or x itself (borrowed) */
  float *h;      /* (T, n) pre-activation tile */
  int32_t *ci;   /* (B, m) per-row candidates (TOPK, BATCHTOPK) */
  float *cv;
  int32_t *ai;   /* (B, ka) AuxK candidates */
  float *av;
  float *diff;   /* (B, d) x̂ − x, then ∂L/∂x̂ */
  float *adiff;  /* (B, d) AuxK residual, then its gradient */
  float *dval;   /* (nnz) ∂L/∂f of main entries */
  float *dz;     /* (nnz_aux) ∂L/∂z of AuxK entries */
  int64_t *col_ptr, *perm;
  int32_t *row_of;
  int m, ka;
  int own_xc;
  int fresh_dec, fresh_enc; /* the W_dec / W_enc gradient not yet written this call */
  int kept;                 /* xc, h, diff, adiff belong to an lg_keep */
} lg_work;

/* The batch-sized buffers of sae_loss_grad kept by a trainer across steps:
 * fresh ones would cost page faults and zeroing of ~100 MB every step. */
typedef struct {
  float *xc, *h, *diff, *adiff;
  int64_t B, T;
  /* Set by the trainer: the final scatter also projects the decoder-gradient
   * rows off proj (when not NULL) and leaves the squared norms of the W_enc
   * and W_dec gradient rows in rowsq [2n]; rows_done tells it happened. */
  const float *proj;
  double *rowsq;
  int rows_done;
} lg_keep;

static void lg_keep_free(lg_keep *k) {
  free(k->xc), free(k->h), free(k->diff), free(k->adiff);
  k->xc = k->h = k->diff = k->adiff = NULL;
  k->B = k->T = 0;
}

static void lg_free(lg_work *w) {
  if (!w->kept) {
    if (w->own_xc) free(w->xc);
    free(w->h), free(w->diff), free(w->adiff);
  }
  free(w->ci), free(w->cv), free(w->ai), free(w->av), free(w->dval), free(w->dz);
  free(w->col_ptr), free(w->perm), free(w->row_of);
}

static int lg_alloc(lg_work *w, const sae *s, const float *x, int64_t B, int64_t T,
                    lg_keep *keep) {
  int64_t d = s->cfg.d, n = s->cfg.n;
  w->own_xc = s->cfg.apply_b_dec_to_input;
  if (keep) {
    if (keep->B != B || keep->T != T) lg_keep_free(keep);
    keep->B = B, keep->T = T;
    if (!keep->xc) keep->xc = malloc((size_t)(B * d) * sizeof(float));
    if (!keep->h) keep->h = malloc((size_t)(T * n) * sizeof(float));
    if (!keep->diff) keep->diff = malloc((size_t)(B * d) * sizeof(float));
    if (w->ka > 0 && !keep->adiff) keep->adiff = malloc((size_t)(B * d) * sizeof(float));
    w->kept = 1;
    w->xc = w->own_xc ? keep->xc : (float *)x;
    w->h = keep->h, w->diff = keep->diff, w->adiff = w->ka > 0 ? keep->adiff : NULL;
  } else {
    w->xc = w->own_xc ? malloc((size_t)(B * d) * sizeof(float)) : (float *)x;
    w->h = malloc((size_t)(T * n) * sizeof(float));
    w->diff = malloc((size_t)(B * d) * sizeof(float));
    w->adiff = w->ka > 0 ? malloc((size_t)(B * d) * sizeof(float)) : NULL;
  }
  w->col_ptr = malloc((size_t)(n + 1) * sizeof(int64_t));
  size_t cm = (size_t)(B * (w->m > 0 ? w->m : 1)), ca = (size_t)(B * (w->ka > 0 ? w->ka : 1));
  w->ci = malloc(cm * sizeof(int32_t)), w->cv = malloc(cm * sizeof(float));
  w->ai = malloc(ca * sizeof(int32_t)), w->av = malloc(ca * sizeof(float));
  if (!w->xc || !w->h || !w->diff || !w->col_ptr || !w->ci || !w->cv || !w->ai || !w->av ||
      (w->ka > 0 && !w->adiff))
    return sc_error_setc(SC_ERR_NOMEM, "train: out of memory for a batch of %lld rows", (long long)B);
  if (w->own_xc) {
#pragma omp parallel for schedule(static) SAE_PAR(B * d)
    for (int64_t r = 0; r < B; r++)
      for (int64_t j = 0; j < d; j++) w->xc[r * d + j] = x[r * d + j] - s->b_dec[j];
  }
  return 0;
}

/* Batch-wide top-(k·B) over the positive candidates; returns the cut. */
static int batch_cut(const lg_work *w, int64_t B, int k, float *cut) {
  int64_t total = B * w->m, P = 0;
  float *tmp = malloc((size_t)total * sizeof *tmp);
  if (!tmp) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory for batch top-k");
  for (int64_t e = 0; e < total; e++)
    if (w->cv[e] > 0.0f) tmp[P++] = w->cv[e];
  int64_t want = B * (int64_t)k;
  *cut = 0.0f;
  if (P > want) *cut = sae_kth_largest(tmp, P, want);
  free(tmp);
  return 0;
}

static float min_val(const sae_codes *c) {
  int64_t nnz = c->row_ptr[c->rows];
  float m = nnz ? c->val[0] : 0.0f;
  for (int64_t e = 1; e < nnz; e++)
    if (c->val[e] < m) m = c->val[e];
  return m;
}

/* Encoder tiles, selection of active (and AuxK) latents. */
static int lg_forward(const sae *s, const sae_loss_cfg *lc, int64_t B, int64_t T, lg_work *w,
                      sae_codes *codes, sae_codes *aux) {
  int64_t n = s->cfg.n, d = s->cfg.d;
  int rc = 0;
  for (int64_t r = 0; !rc && r < B; r += T) {
    int64_t t = B - r < T ? B - r : T;
    if (lc->gemm && lc->W_enc_bf16) {
      rc = sc_gemm_bf16(lc->gemm, w->h, w->xc + r * d, lc->W_enc_bf16, s->b_enc, (int)t, (int)n, (int)d, 0);
      if (rc) break;
    } else {
      sae_encode_tile(w->h, NULL, w->xc + r * d, NULL, s->W_enc, s->b_enc, t, d, n);
    }
    if (w->m > 0) sae_topk_rows(w->ci + r * w->m, w->cv + r * w->m, w->h, t, n, n, w->m);
    else rc = sae_codes_append_threshold(codes, w->h, NULL, t, n, n);
    if (w->ka > 0)
      sae_topk_rows_masked(w->ai + r * w->ka, w->av + r * w->ka, w->h, lc->dead, t, n, n, w->ka);
  }
  float cut = 0.0f;
  if (!rc && s->cfg.arch == SAE_ARCH_BATCHTOPK) rc = batch_cut(w, B, s->cfg.k, &cut);
  if (!rc && w->m > 0) rc = sae_codes_append_fixed(codes, w->ci, w->cv, B, w->m, cut);
  if (!rc && w->ka > 0) rc = sae_codes_append_fixed(aux, w->ai, w->av, B, w->ka, 0.0f);
  return rc;
}

/* Σ over rows of v[r] in row order (f64). */
static double ordered_sum(const double *v, int64_t B) {
  double s = 0.0;
  for (int64_t r = 0; r < B; r++) s += v[r];
  return s;
}

/* diff = x̂ − x (or x̂_aux + diff); returns Σ‖diff‖² in f64, fixed order. */
static int sq_residual(float *out, const float *x, int64_t B, int64_t d, int sign,
                       double *sum) {
  double *rs = malloc((size_t)B * sizeof *rs);
  if (!rs) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
#pragma omp parallel for schedule(static) SAE_PAR(B * d)
  for (int64_t r = 0; r < B; r++) {
    double a = 0.0;
    for (int64_t j = 0; j < d; j++) {
      float v = out[r * d + j] + (float)sign * x[r * d + j];
      out[r * d + j] = v;
      a += (double)v * v;
    }
    rs[r] = a;
  }
  *sum = ordered_sum(rs, B);
  free(rs);
  return 0;
}

static void scale_n(float *v, int64_t n, float a) {
#pragma omp parallel for schedule(static) SAE_PAR(n)
  for (int64_t i = 0; i < n; i++) v[i] *= a;
}

/* Latent-major order of c's entries into w (col_ptr, perm, row_of). */
static int csc_prepare(const sae_codes *c, lg_work *w, int64_t n) {
  int64_t nnz = c->row_ptr[c->rows];
  free(w->perm), free(w->row_of);
  w->perm = malloc((size_t)(nnz ? nnz : 1) * sizeof(int64_t));
  w->row_of = malloc((size_t)(nnz ? nnz : 1) * sizeof(int32_t));
  if (!w->perm || !w->row_of) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  sae_csc_build(w->col_ptr, w->perm, w->row_of, c, n);
  return 0;
}

/* Weight gradients of one set of entries (CSC prepared): coef_dec on W_dec
 * rows with r_dec, coef_enc on W_enc rows (with the encoder input) and b_enc. */
/* keep: the last scatter of a trainer step (see lg_keep), else NULL. */
static void entry_scatter(sae *g, const float *coef_dec, const float *r_dec,
                          const float *coef_enc, lg_work *w, int64_t n, int64_t d,
                          lg_keep *keep) {
  double *rq = keep ? keep->rowsq : NULL;
  const float *proj = keep ? keep->proj : NULL;
  sae_scatter_rows(g->W_dec, w->col_ptr, w->perm, w->row_of, coef_dec, r_dec, n, d, w->fresh_dec,
                   proj, rq ? rq + n : NULL);
  sae_scatter_rows(g->W_enc, w->col_ptr, w->perm, w->row_of, coef_enc, w->xc, n, d, w->fresh_enc,
                   NULL, rq);
  if (rq) keep->rows_done = 1;
  w->fresh_dec = w->fresh_enc = 0;
  sae_sum_latents(g->b_enc, w->col_ptr, w->perm, coef_enc, n);
}

/* RELU: λ/B·Σ f_i‖d_i‖ into the loss, ∂f and ∂W_dec. */
static int l1_terms(const sae *s, sae *g, const sae_codes *c, lg_work *w, double lam, int64_t B,
                    double *l1) {
  int64_t n = s->cfg.n, d = s->cfg.d, nnz = c->row_ptr[c->rows];
  float *nrm = malloc((size_t)n * sizeof *nrm), *fsum = calloc((size_t)n, sizeof *fsum);
  if (!nrm || !fsum) {
    free(nrm), free(fsum);
    return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  }
#pragma omp parallel for schedule(static) SAE_PAR(n * d)
  for (int64_t i = 0; i < n; i++) {
    double a = 0.0;
    for (int64_t j = 0; j < d; j++) a += (double)s->W_dec[i * d + j] * s->W_dec[i * d + j];
    nrm[i] = (float)sqrt(a);
  }
  double acc = 0.0;
  for (int64_t e = 0; e < nnz; e++) {
    acc += (double)c->val[e] * nrm[c->idx[e]];
    w->dval[e] += (float)(lam / (double)B) * nrm[c->idx[e]];
  }
  *l1 = lam * acc / (double)B;
  if (w->fresh_dec) memset(g->W_dec, 0, (size_t)(n * d) * sizeof(float));
  w->fresh_dec = 0;
  sae_sum_latents(fsum, w->col_ptr, w->perm, c->val, n);
#pragma omp parallel for schedule(static) SAE_PAR(B * d)
  for (int64_t i = 0; i < n; i++) {
    if (nrm[i] <= 0.0f) continue;
    float a = (float)(lam / (double)B) * fsum[i] / nrm[i];
    for (int64_t j = 0; j < d; j++) g->W_dec[i * d + j] += a * s->W_dec[i * d + j];
  }
  free(nrm), free(fsum);
  return 0;
}

/* ∂b_dec: Σ_b ∂x̂_b, minus the encoder path when b_dec is subtracted. */
static void b_dec_grad(const sae *s, sae *g, const lg_work *w, int64_t B) {
  int64_t d = s->cfg.d;
  double *acc = calloc((size_t)d, sizeof *acc);
  if (!acc) return; /* d doubles: cannot fail in practice; gradient left zero */
  /* Column sums in row order, 16 columns at a time so rows stream. */
  int64_t nb = (d + 15) / 16;
#pragma omp parallel for schedule(static) SAE_PAR(B * d)
  for (int64_t b = 0; b < nb; b++) {
    int64_t j0 = b * 16, m = d - j0 < 16 ? d - j0 : 16;
    double a[16] = {0};
    for (int64_t r = 0; r < B; r++)
      for (int64_t j = 0; j < m; j++) a[j] += w->diff[r * d + j0 + j];
    for (int64_t j = 0; j < m; j++) acc[j0 + j] = a[j];
  }
  if (s->cfg.apply_b_dec_to_input) {
    /* Σ_e ∂z_e · W_enc[idx_e] over main and AuxK entries = Σ_i ∂b_enc[i] · W_enc[i]. */
    double *part = malloc((size_t)sae_rows_combine_scratch(s->cfg.n, d) * sizeof *part);
    if (part) sae_rows_combine(acc, g->b_enc, s->W_enc, s->cfg.n, d, -1.0, part);
    free(part);
  }
  for (int64_t j = 0; j < d; j++) g->b_dec[j] = (float)acc[j];
  free(acc);
}

static int64_t count_dead(const uint8_t *dead, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; dead && i < n; i++) c += dead[i] != 0;
  return c;
}

/* The weight matrices are zeroed by their first scatter (lg_work.fresh_*). */
static void zero_grads(sae *g) {
  memset(g->b_enc, 0, (size_t)g->cfg.n * sizeof(float));
  memset(g->b_dec, 0, (size_t)g->cfg.d * sizeof(float));
}

/* AuxK: residual, loss and gradients of its entries. */
static int aux_terms(const sae *s, sae *g, const sae_codes *aux, lg_work *w, double coef,
                     int64_t B, double *loss) {
  int64_t d = s->cfg.d, n = s->cfg.n, nnz = aux->row_ptr[aux->rows];
  sae_decode_csr(w->adiff, aux, s->W_dec, NULL, d);
  double sum = 0.0;
  int rc = sq_residual(w->adiff, w->diff, B, d, 1, &sum);
  if (rc) return rc;
  *loss = coef * sum / (double)B;
  scale_n(w->adiff, B * d, (float)(2.0 * coef / (double)B));
  w->dz = malloc((size_t)(nnz ? nnz : 1) * sizeof(float));
  if (!w->dz) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  sae_entry_dots(w->dz, aux, s->W_dec, w->adiff, d);
  rc = csc_prepare(aux, w, n);
  if (!rc) entry_scatter(g, aux->val, w->adiff, w->dz, w, n, d, NULL);
  return rc;
}

static int loss_grad(const sae *s, const sae_loss_cfg *lc, const float *x, int64_t B, sae *grads,
                     sae_loss *out, sae_codes *codes_out, lg_keep *keep) {
  int64_t n = s->cfg.n, d = s->cfg.d, T = sae_tile_rows(n);
  if (s->cfg.arch == SAE_ARCH_JUMPRELU)
    return sc_error_setc(SC_ERR_ARG, "train: jumprelu training is not implemented (train batchtopk)");
  if (T > B) T = B;
  memset(out, 0, sizeof *out);
  lg_work w = {.fresh_dec = 1, .fresh_enc = 1};
  int k = s->cfg.k, topish = s->cfg.arch != SAE_ARCH_RELU;
  w.m = !topish ? 0 : s->cfg.arch == SAE_ARCH_TOPK ? k
        : (int)(SAE_BATCHTOPK_CAP * (int64_t)k < n ? SAE_BATCHTOPK_CAP * k : n);
  out->n_dead = count_dead(lc->dead, n);
  int64_t kaux = lc->k_aux < out->n_dead ? lc->k_aux : out->n_dead;
  w.ka = (topish && lc->aux_coeff > 0 && kaux > 0) ? (int)kaux : 0;
  sae_codes own, aux;
  sae_codes *c = codes_out ? codes_out : &own;
  int rc = (!codes_out ? sae_codes_init(&own) : 0);
  if (rc) return rc;
  rc = sae_codes_init(&aux);
  c->rows = 0, c->row_ptr[0] = 0;
  if (keep) keep->rows_done = 0;
  if (!rc) rc = lg_alloc(&w, s, x, B, T, keep);
  if (!rc) rc = lg_forward(s, lc, B, T, &w, c, &aux);
  int64_t nnz = rc ? 0 : c->row_ptr[c->rows];
  if (!rc) w.dval = malloc((size_t)(nnz ? nnz : 1) * sizeof(float));
  if (!rc && !w.dval) rc = sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  double sum = 0.0;
  float gscale = (float)(2.0 / (double)B);
  if (!rc) {
    double *rs = malloc((size_t)B * sizeof *rs);
    if (!rs) rc = sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
    if (!rc) sae_decode_residual_dots(w.diff, rs, w.dval, c, s->W_dec, s->b_dec, x, gscale, d);
    if (!rc) sum = ordered_sum(rs, B);
    free(rs);
  }
  if (!rc) {
    out->mse = sum / (double)B;
    out->l0 = (double)nnz / (double)B;
    out->min_active = min_val(c);
    zero_grads(grads);
    if (w.ka > 0) {
      double sc = (double)out->n_dead / (double)lc->k_aux;
      rc = aux_terms(s, grads, &aux, &w, lc->aux_coeff * (sc < 1.0 ? sc : 1.0), B, &out->aux);
    }
  }
  if (!rc) {
    scale_n(w.diff, B * d, gscale);
    rc = csc_prepare(c, &w, n);
    if (!rc && s->cfg.arch == SAE_ARCH_RELU && lc->l1_coeff > 0)
      rc = l1_terms(s, grads, c, &w, lc->l1_coeff, B, &out->l1);
    if (!rc) entry_scatter(grads, c->val, w.diff, w.dval, &w, n, d, keep && keep->rowsq ? keep : NULL);
  }
  if (!rc) b_dec_grad(s, grads, &w, B);
  out->total = out->mse + out->l1 + out->aux;
  lg_free(&w);
  sae_codes_release(&aux);
  if (!codes_out) sae_codes_release(&own);
  return rc;
}

int sae_loss_grad(const sae *s, const sae_loss_cfg *lc, const float *x, int64_t B, sae *grads,
                  sae_loss *out, sae_codes *codes_out) {
  return loss_grad(s, lc, x, B, grads, out, codes_out, NULL);
}

/* ==== Trainer ==== */

struct sae_trainer {
  sae_train_cfg cfg;
  sae_source *src;        /* borrowed */
  sae *model;             /* training units */
  sae *grad;              /* same shapes */
  sae *m, *v;             /* Adam moments */
  int64_t step;           /* steps done */
  sc_rng rng;
  double scale;           /* input scale s */
  double theta;           /* BATCHTOPK threshold (< 0: not yet set) */
  int64_t *since_fired;   /* (n) tokens since each latent last fired */
  int64_t *fire_count;    /* (n) tokens each latent fired on */
  int64_t tokens_seen;
  uint8_t *dead;          /* (n) scratch mask */
  float *x;               /* (batch, d) scratch */
  double *rowsq;          /* (2n) per-row squared gradient norms, scratch */
  lg_keep keep;           /* loss_grad's batch buffers */
  sae_codes codes;
  sc_gemm *gemm;          /* bf16_encoder: the GEMM context */
  uint16_t *W_enc_bf16;   /* bf16_encoder: (n, d) copy rounded each step */
};

void sae_trainer_free(sae_trainer *t) {
  if (!t) return;
  sae_free(t->model), sae_free(t->grad), sae_free(t->m), sae_free(t->v);
  free(t->since_fired), free(t->fire_count), free(t->dead), free(t->x), free(t->rowsq);
  lg_keep_free(&t->keep);
  sae_codes_release(&t->codes);
  sc_gemm_free(t->gemm);
  free(t->W_enc_bf16);
  free(t);
}

static int trainer_alloc(sae_trainer **out, const sae_train_cfg *cfg, sae_source *src) {
  *out = NULL;
  int rc = sae_train_cfg_check(cfg);
  if (rc) return rc;
  if (!src || src->d != cfg->d)
    return sc_error_setc(SC_ERR_ARG, "train: the data rows have width %lld, the SAE expects d = %lld",
                         src ? (long long)src->d : -1LL, (long long)cfg->d);
  sae_trainer *t = calloc(1, sizeof *t);
  if (!t) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  t->cfg = *cfg, t->src = src, t->theta = -1.0, t->scale = 1.0;
  sae_cfg mc = {.arch = cfg->arch, .d = cfg->d, .n = cfg->n, .k = cfg->k, .apply_b_dec_to_input = 1};
  rc = sae_create(&t->model, &mc);
  if (!rc) rc = sae_create(&t->grad, &mc);
  if (!rc) rc = sae_create(&t->m, &mc);
  if (!rc) rc = sae_create(&t->v, &mc);
  if (!rc) rc = sae_codes_init(&t->codes);
  size_t n = (size_t)cfg->n;
  t->since_fired = calloc(n, sizeof(int64_t));
  t->fire_count = calloc(n, sizeof(int64_t));
  t->dead = calloc(n, 1);
  t->x = malloc((size_t)(cfg->batch * cfg->d) * sizeof(float));
  t->rowsq = malloc(2 * n * sizeof(double));
  if (!rc && (!t->since_fired || !t->fire_count || !t->dead || !t->x || !t->rowsq))
    rc = sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  if (!rc && cfg->bf16_encoder) {
    rc = sc_gemm_create(&t->gemm, SC_GEMM_BACKEND_AUTO, 0);
    t->W_enc_bf16 = malloc((size_t)(cfg->n * cfg->d) * sizeof *t->W_enc_bf16);
    if (!rc && !t->W_enc_bf16) rc = sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  }
  if (rc) {
    sae_trainer_free(t);
    return rc;
  }
  sc_rng_seed(&t->rng, cfg->seed);
  *out = t;
  return 0;
}

/* Weiszfeld's iteration for the geometric median of rows [N, d] (f64),
 * from the mean, 100 iterations, tolerance 1e-5 (dictionary_learning). */
static int geometric_median(float *out, const float *rows, int64_t N, int64_t d) {
  double *y = calloc((size_t)d, sizeof *y), *ny = calloc((size_t)d, sizeof *ny);
  if (!y || !ny) {
    free(y), free(ny);
    return sc_error_setc(SC_ERR_NOMEM, "train: out of memory");
  }
  for (int64_t r = 0; r < N; r++)
    for (int64_t j = 0; j < d; j++) y[j] += rows[r * d + j] / (double)N;
  for (int it = 0; it < 100; it++) {
    double wsum = 0.0, delta = 0.0;
    memset(ny, 0, (size_t)d * sizeof *ny);
    for (int64_t r = 0; r < N; r++) {
      double dist = 0.0;
      for (int64_t j = 0; j < d; j++) dist += (rows[r * d + j] - y[j]) * (rows[r * d + j] - y[j]);
      double wt = 1.0 / fmax(sqrt(dist), 1e-12);
      wsum += wt;
      for (int64_t j = 0; j < d; j++) ny[j] += wt * rows[r * d + j];
    }
    for (int64_t j = 0; j < d; j++) {
      ny[j] /= wsum;
      delta += (ny[j] - y[j]) * (ny[j] - y[j]);
      y[j] = ny[j];
    }
    if (sqrt(delta) < 1e-5) break;
  }
  for (int64_t j = 0; j < d; j++) out[j] = (float)y[j];
  free(y), free(ny);
  return 0;
}

/* Random decoder rows of norm `norm`, encoder = decoderᵀ. */
static void init_weights(sae_trainer *t, float norm) {
  sae *s = t->model;
  int64_t n = s->cfg.n, d = s->cfg.d;
  for (int64_t i = 0; i < n; i++) {
    float *w = s->W_dec + i * d;
    double a = 0.0;
    for (int64_t j = 0; j < d; j++) w[j] = (float)sc_rng_normal(&t->rng), a += (double)w[j] * w[j];
    float f = (float)(norm / sqrt(a > 0 ? a : 1.0));
    for (int64_t j = 0; j < d; j++) w[j] *= f;
  }
  memcpy(s->W_enc, s->W_dec, (size_t)(n * d) * sizeof(float));
}

/* Reads a sample from the source's current position and rewinds it:
 * scale = √d / mean‖x‖, b_dec = geometric median of the scaled sample. */
static int init_from_sample(sae_trainer *t) {
  int64_t d = t->cfg.d, N = t->cfg.norm_rows > t->cfg.median_rows ? t->cfg.norm_rows : t->cfg.median_rows;
  uint64_t start = sae_source_tell(t->src);
  float *rows = malloc((size_t)(N * d) * sizeof *rows);
  if (!rows) return sc_error_setc(SC_ERR_NOMEM, "train: out of memory for %lld sample rows", (long long)N);
  int rc = sae_source_next(t->src, rows, N);
  if (!rc) rc = sae_source_seek(t->src, start);
  double norm_sum = 0.0;
  for (int64_t r = 0; !rc && r < t->cfg.norm_rows; r++) {
    double a = 0.0;
    for (int64_t j = 0; j < d; j++) a += (double)rows[r * d + j] * rows[r * d + j];
    norm_sum += sqrt(a);
  }
  if (!rc && !(norm_sum > 0) )
    rc = sc_error_setc(SC_ERR_RANGE, "train: the sample rows are all zero; cannot normalise");
  if (!rc) {
    t->scale = sqrt((double)d) / (norm_sum / (double)t->cfg.norm_rows);
    for (int64_t e = 0; e < t->cfg.median_rows * d; e++) rows[e] *= (float)t->scale;
    rc = geometric_median(t->model->b_dec, rows, t->cfg.median_rows, d);
  }
  free(rows);
  return rc;
}

int sae_trainer_create(sae_trainer **out, const sae_train_cfg *cfg, sae_source *src) {
  sae_trainer *t;
  int rc = trainer_alloc(&t, cfg, src);
  if (rc) return rc;
  init_weights(t, cfg->arch == SAE_ARCH_RELU ? 0.1f : 1.0f);
  rc = init_from_sample(t);
  if (rc) {
    sae_trainer_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* ==== The optimiser step ==== */

/* The optimiser step is two threaded passes over the latent rows (each
 * 2·d floats of weights, gradients and moments): the first projects each
 * decoder-row gradient off its (unit) row and takes the squared norms of the
 * gradient rows (done by loss_grad's last scatter while each row is in
 * cache, see lg_keep); the second, with the clip factor known, runs Adam on the
 * encoder and decoder row and renormalises the decoder row while it is in
 * cache. Per-row sums are added in row order: the same bits for any thread
 * count. */


static void renorm_row(float *w, int64_t d) {
  double a = 0.0;
  for (int64_t j = 0; j < d; j++) a += (double)w[j] * w[j];
  if (a <= 0) return;
  float f = (float)(1.0 / sqrt(a));
  for (int64_t j = 0; j < d; j++) w[j] *= f;
}

typedef struct {
  float b1, b2, c1, c2, lr, eps, gs; /* gs: gradient scale (the clip factor, else 1) */
} adam_k;

/* Adam on 8 values at a time: the scalar loop's operations in its order
 * (multiplies and adds never fused, IEEE sqrt and divide), so both give the
 * same bits; the scalar loop's sqrtf and divide were ~3x slower than
 * memory. Returns how many values it did (a multiple of 8). */
__attribute__((target("avx2"))) static int64_t adam_span_avx2(float *restrict p,
                                                              const float *restrict g,
                                                              float *restrict m,
                                                              float *restrict v, int64_t len,
                                                              const adam_k *k) {
  const __m256 b1 = _mm256_set1_ps(k->b1), b2 = _mm256_set1_ps(k->b2);
  const __m256 o1 = _mm256_set1_ps(1.0f - k->b1), o2 = _mm256_set1_ps(1.0f - k->b2);
  const __m256 c1 = _mm256_set1_ps(k->c1), c2 = _mm256_set1_ps(k->c2), lr = _mm256_set1_ps(k->lr);
  const __m256 eps = _mm256_set1_ps(k->eps), gs = _mm256_set1_ps(k->gs);
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) {
    __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), gs);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(o1, gi));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                              _mm256_mul_ps(_mm256_mul_ps(o2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 num = _mm256_mul_ps(lr, _mm256_mul_ps(mi, c1));
    __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, c2)), eps);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(num, den)));
  }
  return i;
}

static void adam_span(float *restrict p, const float *restrict g, float *restrict m,
                      float *restrict v, int64_t len, const adam_k *k) {
  const float b1 = k->b1, b2 = k->b2, c1 = k->c1, c2 = k->c2, lr = k->lr, eps = k->eps, gs = k->gs;
  int64_t i = __builtin_cpu_supports("avx2") ? adam_span_avx2(p, g, m, v, len, k) : 0;
  for (; i < len; i++) {
    float gi = g[i] * gs;
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    p[i] -= lr * (m[i] * c1) / (sqrtf(v[i] * c2) + eps);
  }
}

#define SUM_BLOCK 16384

/* Σ v² in f64 over fixed blocks, then the blocks in order: the same for
 * any thread count. */
static double sum_sq(const float *v, int64_t len) {
  int64_t nb = (len + SUM_BLOCK - 1) / SUM_BLOCK;
  double *part = malloc((size_t)(nb ? nb : 1) * sizeof *part), s = 0.0;
  if (!part) { /* fall back to one thread, same order */
    for (int64_t i = 0; i < len; i++) s += (double)v[i] * v[i];
    return s;
  }
#pragma omp parallel for schedule(static) SAE_PAR(len)
  for (int64_t b = 0; b < nb; b++) {
    double a = 0.0;
    int64_t e = (b + 1) * SUM_BLOCK < len ? (b + 1) * SUM_BLOCK : len;
    for (int64_t i = b * SUM_BLOCK; i < e; i++) a += (double)v[i] * v[i];
    part[b] = a;
  }
  for (int64_t b = 0; b < nb; b++) s += part[b];
  free(part);
  return s;
}

/* The four parameter arrays of an sae, with their lengths. */
static int params_of(sae *s, float **p, int64_t *len) {
  int64_t nd = s->cfg.n * s->cfg.d;
  p[0] = s->W_enc, len[0] = nd, p[1] = s->W_dec, len[1] = nd;
  p[2] = s->b_enc, len[2] = s->cfg.n, p[3] = s->b_dec, len[3] = s->cfg.d;
  return 4;
}

/* Projects the decoder gradient rows (unit_norm_decoder) and returns the
 * clip factor of the global gradient norm (1 when no clipping applies). */
static float project_and_clip(sae_trainer *t) {
  const sae *s = t->model;
  sae *g = t->grad;
  int64_t n = s->cfg.n, d = s->cfg.d;
  int project = t->cfg.unit_norm_decoder;
  double *rq = t->rowsq;
  if (!t->keep.rows_done) { /* done by the last scatter of loss_grad, normally */
#pragma omp parallel for schedule(static) SAE_PAR(n * d)
    for (int64_t i = 0; i < n; i++) {
      rq[i] = sae_row_project_sq(g->W_enc + i * d, NULL, d);
      rq[n + i] = sae_row_project_sq(g->W_dec + i * d, project ? s->W_dec + i * d : NULL, d);
    }
  }
  double sq = 0.0;
  for (int64_t i = 0; i < 2 * n; i++) sq += rq[i];
  sq += sum_sq(g->b_enc, n) + sum_sq(g->b_dec, d);
  double norm = sqrt(sq), max_norm = t->cfg.clip_norm;
  if (max_norm <= 0 || !(norm > max_norm)) return 1.0f;
  return (float)(max_norm / (norm + 1e-6));
}

static void adam_update(sae_trainer *t, double lr, float gs) {
  sae *p = t->model, *g = t->grad, *m = t->m, *v = t->v;
  int64_t n = p->cfg.n, d = p->cfg.d;
  double b1 = t->cfg.beta1, b2 = t->cfg.beta2, tt = (double)(t->step + 1);
  adam_k k = {.b1 = (float)b1, .b2 = (float)b2, .c1 = (float)(1.0 / (1.0 - pow(b1, tt))),
              .c2 = (float)(1.0 / (1.0 - pow(b2, tt))), .lr = (float)lr,
              .eps = (float)t->cfg.adam_eps, .gs = gs};
  int renorm = t->cfg.unit_norm_decoder;
#pragma omp parallel for schedule(static) SAE_PAR(n * d)
  for (int64_t i = 0; i < n; i++) {
    int64_t o = i * d;
    adam_span(p->W_enc + o, g->W_enc + o, m->W_enc + o, v->W_enc + o, d, &k);
    adam_span(p->W_dec + o, g->W_dec + o, m->W_dec + o, v->W_dec + o, d, &k);
    if (renorm) renorm_row(p->W_dec + o, d);
  }
  adam_span(p->b_enc, g->b_enc, m->b_enc, v->b_enc, n, &k);
  adam_span(p->b_dec, g->b_dec, m->b_dec, v->b_dec, d, &k);
}

static void update_dead(sae_trainer *t, int64_t B) {
  const sae_codes *c = &t->codes;
  int64_t n = t->cfg.n;
  for (int64_t i = 0; i < n; i++) t->since_fired[i] += B;
  for (int64_t e = 0; e < c->row_ptr[c->rows]; e++) {
    t->since_fired[c->idx[e]] = 0;
    t->fire_count[c->idx[e]]++;
  }
  t->tokens_seen += B;
}

int sae_trainer_step(sae_trainer *t, sae_loss *stats) {
  const sae_train_cfg *c = &t->cfg;
  int64_t B = c->batch, d = c->d;
  int rc = sae_source_next(t->src, t->x, B);
  if (rc) return rc;
  scale_n(t->x, B * d, (float)t->scale);
  for (int64_t i = 0; i < c->n; i++) t->dead[i] = t->since_fired[i] >= c->dead_tokens;
  sae_loss_cfg lc = {.aux_coeff = c->aux_coeff, .dead = t->dead};
  if (t->gemm) {
    sc_bf16_from_f32_n(t->W_enc_bf16, t->model->W_enc, (size_t)(c->n * d));
    lc.gemm = t->gemm, lc.W_enc_bf16 = t->W_enc_bf16;
  }
  lc.k_aux = c->k_aux > 0 ? c->k_aux : (int)(d / 2 > 0 ? d / 2 : 1);
  if (lc.k_aux > c->n) lc.k_aux = (int)c->n;
  double warm = c->l1_warmup_steps > 0 ? (double)(t->step + 1) / (double)c->l1_warmup_steps : 1.0;
  lc.l1_coeff = c->l1_coeff * (warm < 1.0 ? warm : 1.0);
  sae_loss loss;
  t->keep.rowsq = t->rowsq, t->keep.proj = c->unit_norm_decoder ? t->model->W_dec : NULL;
  rc = loss_grad(t->model, &lc, t->x, B, t->grad, &loss, &t->codes, &t->keep);
  if (rc) return rc;
  update_dead(t, B);
  float gs = project_and_clip(t);
  adam_update(t, sae_train_base_lr(c) * sae_train_lr_factor(c, t->step), gs);
  if (c->arch == SAE_ARCH_BATCHTOPK && loss.l0 > 0)
    t->theta = t->theta < 0 ? loss.min_active : 0.99 * t->theta + 0.01 * loss.min_active;
  t->step++;
  if (stats) *stats = loss;
  return 0;
}

int sae_trainer_run(sae_trainer *t, const char *state_path) {
  int64_t end = t->cfg.steps;
  if (t->cfg.stop_at_step > 0 && t->cfg.stop_at_step < end) end = t->cfg.stop_at_step;
  while (t->step < end) {
    int rc = sae_trainer_step(t, NULL);
    if (rc) return rc;
    int ckpt = t->cfg.checkpoint_every > 0 && t->step % t->cfg.checkpoint_every == 0;
    if (state_path && (ckpt || t->step == end)) {
      rc = sae_trainer_save_state(t, state_path);
      if (rc) return rc;
    }
  }
  return 0;
}

int64_t sae_trainer_step_count(const sae_trainer *t) { return t->step; }

double sae_trainer_dead_fraction(const sae_trainer *t) {
  int64_t dead = 0;
  for (int64_t i = 0; i < t->cfg.n; i++) dead += t->since_fired[i] >= t->cfg.dead_tokens;
  return (double)dead / (double)t->cfg.n;
}
int sae_trainer_done(const sae_trainer *t) { return t->step >= t->cfg.steps; }
const sae *sae_trainer_model(const sae_trainer *t) { return t->model; }
double sae_trainer_scale(const sae_trainer *t) { return t->scale; }

int sae_trainer_export(const sae_trainer *t, sae **out) {
  int rc = sae_clone(out, t->model);
  if (rc) return rc;
  sae *s = *out;
  int64_t nd = s->cfg.n * s->cfg.d;
  float sc = (float)t->scale, inv = (float)(1.0 / t->scale);
  for (int64_t e = 0; e < nd; e++) s->W_enc[e] *= sc, s->W_dec[e] *= inv;
  for (int64_t j = 0; j < s->cfg.d; j++) s->b_dec[j] *= inv;
  if (s->cfg.arch == SAE_ARCH_BATCHTOPK) {
    s->cfg.arch = SAE_ARCH_JUMPRELU;
    for (int64_t i = 0; i < s->cfg.n; i++) s->threshold[i] = t->theta > 0 ? (float)t->theta : 0.0f;
  }
  return 0;
}

void sae_trainer_log_density(const sae_trainer *t, float *out) {
  double tok = t->tokens_seen > 0 ? (double)t->tokens_seen : 1.0;
  for (int64_t i = 0; i < t->cfg.n; i++)
    out[i] = (float)log10((double)t->fire_count[i] / tok + 1e-10);
}

/* ==== trainer_state.safetensors ==== */

#define STATE_FORMAT "saecap.sae_trainer_state.1"

/* Every setting that changes what a step computes, as "key=value ..." (the
 * resume check compares these; checkpoint_every and stop_at_step may differ). */
static void cfg_string(const sae_train_cfg *c, char *buf, size_t cap) {
  snprintf(buf, cap,
           "arch=%s d=%" PRId64 " n=%" PRId64 " k=%d batch=%" PRId64 " steps=%" PRId64
           " lr=%.17g beta1=%.17g beta2=%.17g eps=%.17g warmup=%" PRId64 " decay=%.17g"
           " clip=%.17g l1=%.17g l1_warmup=%" PRId64 " aux=%.17g k_aux=%d dead_tokens=%" PRId64
           " norm_rows=%" PRId64 " median_rows=%" PRId64 " unit_norm=%d seed=%" PRIu64 " bf16_encoder=%d",
           sae_arch_name(c->arch), c->d, c->n, c->k, c->batch, c->steps, c->lr, c->beta1, c->beta2,
           c->adam_eps, c->warmup_steps, c->decay_frac, c->clip_norm, c->l1_coeff,
           c->l1_warmup_steps, c->aux_coeff, c->k_aux, c->dead_tokens, c->norm_rows,
           c->median_rows, c->unit_norm_decoder, c->seed, c->bf16_encoder);
  if (c->data_tag[0]) {
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, " data=%.47s", c->data_tag);
  }
}

typedef struct state_item {
  const char *name;
  sc_dtype dtype;
  int64_t len;  /* elements (1-D tensor) */
  void *data;
} state_item;

/* The tensors of the state, in one table for both save and load. */
static int state_items(sae_trainer *t, state_item *it, uint64_t *cursor) {
  static const char *pn[4] = {"W_enc", "W_dec", "b_enc", "b_dec"};
  static const char *mn[4] = {"adam_m.W_enc", "adam_m.W_dec", "adam_m.b_enc", "adam_m.b_dec"};
  static const char *vn[4] = {"adam_v.W_enc", "adam_v.W_dec", "adam_v.b_enc", "adam_v.b_dec"};
  float *p[4], *m[4], *v[4];
  int64_t len[4];
  int k = 0;
  params_of(t->model, p, len), params_of(t->m, m, len), params_of(t->v, v, len);
  for (int a = 0; a < 4; a++) {
    it[k++] = (state_item){pn[a], SC_DTYPE_F32, len[a], p[a]};
    it[k++] = (state_item){mn[a], SC_DTYPE_F32, len[a], m[a]};
    it[k++] = (state_item){vn[a], SC_DTYPE_F32, len[a], v[a]};
  }
  it[k++] = (state_item){"step", SC_DTYPE_I64, 1, &t->step};
  it[k++] = (state_item){"rng", SC_DTYPE_U64, 4, t->rng.s};
  it[k++] = (state_item){"cursor", SC_DTYPE_U64, 1, cursor};
  it[k++] = (state_item){"scale", SC_DTYPE_F64, 1, &t->scale};
  it[k++] = (state_item){"theta", SC_DTYPE_F64, 1, &t->theta};
  it[k++] = (state_item){"since_fired", SC_DTYPE_I64, t->cfg.n, t->since_fired};
  it[k++] = (state_item){"fire_count", SC_DTYPE_I64, t->cfg.n, t->fire_count};
  it[k++] = (state_item){"tokens_seen", SC_DTYPE_I64, 1, &t->tokens_seen};
  return k;
}

#define STATE_MAX_ITEMS 24

int sae_trainer_save_state(const sae_trainer *tc, const char *path) {
  sae_trainer *t = (sae_trainer *)tc; /* the table takes non-const pointers; nothing is written */
  uint64_t cursor = sae_source_tell(t->src);
  state_item it[STATE_MAX_ITEMS];
  int k = state_items(t, it, &cursor);
  char cfg[1024];
  cfg_string(&t->cfg, cfg, sizeof cfg);
  st_writer *w;
  int rc = st_writer_create(&w);
  if (rc) return rc;
  rc = st_writer_add_meta(w, "format", STATE_FORMAT);
  if (!rc) rc = st_writer_add_meta(w, "config", cfg);
  for (int i = 0; !rc && i < k; i++)
    rc = st_writer_add(w, it[i].name, it[i].dtype, 1, &it[i].len, it[i].data,
                       (size_t)it[i].len * sc_dtype_size(it[i].dtype));
  if (!rc) rc = st_writer_write(w, path);
  st_writer_free(w);
  return rc;
}

/* Names the first "key=value" word that differs between two config strings. */
static int config_mismatch(const char *path, const char *want, const char *got) {
  const char *a = want, *b = got;
  while (*a && *b) {
    size_t la = strcspn(a, " "), lb = strcspn(b, " ");
    if (la != lb || memcmp(a, b, la))
      return sc_error_setc(SC_ERR_ARG, "%s: saved by a run with %.*s, this run has %.*s", path,
                           (int)lb, b, (int)la, a);
    a += la + (a[la] == ' '), b += lb + (b[lb] == ' ');
  }
  return sc_error_setc(SC_ERR_ARG, "%s: saved by a run with a different configuration", path);
}

static int load_item(const st_file *f, const char *path, const state_item *it) {
  const st_tensor *ten = st_file_find(f, it->name);
  if (!ten) return sc_error_setc(SC_ERR_MISSING, "%s: tensor '%s' is missing", path, it->name);
  if (ten->dtype != it->dtype || ten->n_dims != 1 || ten->shape[0] != it->len)
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor '%s' is not %s [%lld]", path, it->name,
                         sc_dtype_name(it->dtype), (long long)it->len);
  memcpy(it->data, ten->data, ten->nbytes);
  return 0;
}

static int state_check(const st_file *f, const char *path, const sae_train_cfg *cfg) {
  const char *fmt = st_file_meta_get(f, "format"), *got = st_file_meta_get(f, "config");
  if (!fmt || strcmp(fmt, STATE_FORMAT) || !got)
    return sc_error_setc(SC_ERR_FORMAT, "%s: not a saecap trainer state (format '%s')", path,
                         fmt ? fmt : "");
  char want[1024];
  cfg_string(cfg, want, sizeof want);
  return strcmp(want, got) ? config_mismatch(path, want, got) : 0;
}

int sae_trainer_resume(sae_trainer **out, const sae_train_cfg *cfg, sae_source *src,
                       const char *state_path) {
  sae_trainer *t;
  int rc = trainer_alloc(&t, cfg, src);
  if (rc) return rc;
  st_file *f = NULL;
  rc = st_file_open(&f, state_path);
  if (!rc) rc = state_check(f, state_path, cfg);
  uint64_t cursor = 0;
  state_item it[STATE_MAX_ITEMS];
  int k = state_items(t, it, &cursor);
  for (int i = 0; !rc && i < k; i++) rc = load_item(f, state_path, &it[i]);
  if (!rc && (t->step < 0 || t->step > cfg->steps || !(t->scale > 0) || t->tokens_seen < 0))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: step, scale or token count out of range", state_path);
  if (!rc) rc = sae_source_seek(src, cursor);
  st_file_free(f);
  if (rc) {
    sae_trainer_free(t);
    return rc;
  }
  *out = t;
  return 0;
}
