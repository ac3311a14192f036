/* test_sae_train.c: SAE training: the sparse backward against a dense f64
 * reference and finite differences for every trainable architecture,
 * dictionary recovery on synthetic data, kill-and-resume byte identity. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/rng.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "sae/sae_metrics.h"
#include "sae/sae_source.h"
#include "sae/sae_train.h"
#include "tu.h"


/* Sparse f32 gradient vs dense f64 reference: |a − b| <= TOL · (1 + max|b|). */
#define GRAD_TOL 2e-5
/* Dense analytic gradient vs central differences (f64 throughout). */
#define FD_TOL 1e-6
#define FD_EPS 1e-6
#define LOSS_TOL 1e-5
#define RECOVERY_MIN_COS 0.9

/* ==== Dense f64 reference of the training loss ==== */

typedef struct ref_case {
  sae_arch arch;
  int64_t d, n, B;
  int k, apply;
  double lam, aux_coeff;
  int k_aux;
  const uint8_t *dead;
  const float *x; /* (B, d) */
} ref_case;

/* Flattened parameters: W_enc (n,d) | W_dec (n,d) | b_enc (n) | b_dec (d). */
typedef struct ref_params {
  double *p, *W_enc, *W_dec, *b_enc, *b_dec;
  int64_t len;
} ref_params;

static void params_view(ref_params *v, double *p, int64_t n, int64_t d) {
  v->p = p, v->W_enc = p, v->W_dec = p + n * d, v->b_enc = p + 2 * n * d, v->b_dec = v->b_enc + n;
  v->len = 2 * n * d + n + d;
}

/* Rank of h[r][i] within its row (0 = largest; ties: lower index first). */
static int64_t row_rank(const double *h, int64_t n, int64_t i, const uint8_t *mask) {
  int64_t rk = 0;
  for (int64_t j = 0; j < n; j++)
    if ((!mask || mask[j]) && (h[j] > h[i] || (h[j] == h[i] && j < i))) rk++;
  return rk;
}

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* sel[b][i] = 1 where latent i is active in row b. */
static void ref_select(const ref_case *c, const double *h, uint8_t *sel) {
  int64_t n = c->n, m = c->arch == SAE_ARCH_BATCHTOPK ? (4 * c->k < n ? 4 * c->k : n) : c->k;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t i = 0; i < n; i++) {
      const double *hr = h + b * n;
      sel[b * n + i] = c->arch == SAE_ARCH_RELU ? hr[i] > 0 : (hr[i] > 0 && row_rank(hr, n, i, NULL) < m);
    }
  if (c->arch != SAE_ARCH_BATCHTOPK) return;
  double *v = malloc((size_t)(c->B * n) * sizeof *v);
  int64_t P = 0, want = c->B * c->k;
  for (int64_t e = 0; e < c->B * n; e++)
    if (sel[e]) v[P++] = h[e];
  qsort(v, (size_t)P, sizeof *v, cmp_desc);
  double cut = P > want ? v[want - 1] : 0.0;
  for (int64_t e = 0; e < c->B * n; e++) sel[e] = sel[e] && h[e] >= cut;
  free(v);
}

static double dot(const double *a, const double *b, int64_t d) {
  double s = 0;
  for (int64_t j = 0; j < d; j++) s += a[j] * b[j];
  return s;
}

/* Loss at params P; gradient into G when not NULL. e_fix (B,d): the AuxK
 * target x − x̂ taken as a constant (the implementation detaches it); when
 * e_out is given it receives x − x̂ at P. */
static double ref_loss(const ref_case *c, const ref_params *P, ref_params *G, const double *e_fix,
                       double *e_out) {
  int64_t n = c->n, d = c->d, B = c->B;
  double *xc = calloc((size_t)(B * d), sizeof *xc), *h = calloc((size_t)(B * n), sizeof *h);
  double *r = calloc((size_t)(B * d), sizeof *r), *ra = calloc((size_t)(B * d), sizeof *ra);
  double *dh = calloc((size_t)(B * n), sizeof *dh), *nrm = malloc((size_t)n * sizeof *nrm);
  uint8_t *sel = malloc((size_t)(B * n)), *asel = calloc((size_t)(B * n), 1);
  for (int64_t e = 0; e < B * d; e++) xc[e] = c->x[e] - (c->apply ? P->b_dec[e % d] : 0.0);
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < n; i++) h[b * n + i] = dot(xc + b * d, P->W_enc + i * d, d) + P->b_enc[i];
  for (int64_t i = 0; i < n; i++) nrm[i] = sqrt(dot(P->W_dec + i * d, P->W_dec + i * d, d));
  ref_select(c, h, sel);
  double mse = 0, l1 = 0, aux = 0;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t j = 0; j < d; j++) r[b * d + j] = P->b_dec[j] - c->x[b * d + j];
    for (int64_t i = 0; i < n; i++)
      if (sel[b * n + i]) {
        for (int64_t j = 0; j < d; j++) r[b * d + j] += h[b * n + i] * P->W_dec[i * d + j];
        l1 += c->lam * h[b * n + i] * nrm[i] / (double)B;
      }
    mse += dot(r + b * d, r + b * d, d) / (double)B;
  }
  if (e_out)
    for (int64_t e = 0; e < B * d; e++) e_out[e] = -r[e];
  int64_t n_dead = 0;
  for (int64_t i = 0; c->dead && i < n; i++) n_dead += c->dead[i];
  double asc = 0;
  if (c->dead && n_dead > 0 && c->aux_coeff > 0 && c->arch != SAE_ARCH_RELU) {
    int64_t ka = c->k_aux < n_dead ? c->k_aux : n_dead;
    asc = c->aux_coeff * fmin((double)n_dead / c->k_aux, 1.0);
    for (int64_t b = 0; b < B; b++) {
      for (int64_t i = 0; i < n; i++)
        asel[b * n + i] = c->dead[i] && h[b * n + i] > 0 && row_rank(h + b * n, n, i, c->dead) < ka;
      for (int64_t j = 0; j < d; j++) ra[b * d + j] = -(e_fix ? e_fix : e_out)[b * d + j];
      for (int64_t i = 0; i < n; i++)
        if (asel[b * n + i])
          for (int64_t j = 0; j < d; j++) ra[b * d + j] += h[b * n + i] * P->W_dec[i * d + j];
      aux += asc * dot(ra + b * d, ra + b * d, d) / (double)B;
    }
  }
  if (G) {
    memset(G->p, 0, (size_t)G->len * sizeof *G->p);
    for (int64_t b = 0; b < B; b++) {
      double *g = r + b * d, *ga = ra + b * d;
      for (int64_t j = 0; j < d; j++) g[j] *= 2.0 / (double)B, ga[j] *= 2.0 * asc / (double)B;
      for (int64_t j = 0; j < d; j++) G->b_dec[j] += g[j];
      for (int64_t i = 0; i < n; i++) {
        double hv = h[b * n + i], *gw = G->W_dec + i * d;
        const double *w = P->W_dec + i * d;
        if (sel[b * n + i]) {
          dh[b * n + i] += dot(g, w, d) + c->lam * nrm[i] / (double)B;
          for (int64_t j = 0; j < d; j++) gw[j] += hv * g[j] + c->lam / (double)B * hv * w[j] / nrm[i];
        }
        if (asel[b * n + i]) {
          dh[b * n + i] += dot(ga, w, d);
          for (int64_t j = 0; j < d; j++) gw[j] += hv * ga[j];
        }
        for (int64_t j = 0; j < d; j++) {
          G->W_enc[i * d + j] += dh[b * n + i] * xc[b * d + j];
          if (c->apply) G->b_dec[j] -= dh[b * n + i] * P->W_enc[i * d + j];
        }
        G->b_enc[i] += dh[b * n + i];
      }
    }
  }
  free(xc), free(h), free(r), free(ra), free(dh), free(nrm), free(sel), free(asel);
  return mse + l1 + aux;
}

/* ==== Gradient checks ==== */

static void fill(float *v, int64_t len, sc_rng *r, double scale) {
  for (int64_t i = 0; i < len; i++) v[i] = (float)(sc_rng_normal(r) * scale);
}

static void to_params(ref_params *p, const sae *s) {
  int64_t n = s->cfg.n, d = s->cfg.d;
  for (int64_t e = 0; e < n * d; e++) p->W_enc[e] = s->W_enc[e], p->W_dec[e] = s->W_dec[e];
  for (int64_t i = 0; i < n; i++) p->b_enc[i] = s->b_enc[i];
  for (int64_t j = 0; j < d; j++) p->b_dec[j] = s->b_dec[j];
}

static void compare(const char *what, const float *got, const double *want, int64_t len) {
  double mx = 0, worst = 0;
  int64_t bad = -1;
  for (int64_t i = 0; i < len; i++) mx = fmax(mx, fabs(want[i]));
  for (int64_t i = 0; i < len; i++) {
    double e = fabs(got[i] - want[i]);
    if (e > worst) worst = e, bad = i;
  }
  if (worst > GRAD_TOL * (1 + mx)) {
    print_error("%s: max abs diff %g at %lld (got %g, want %g, max |want| %g)\n", what, worst,
                (long long)bad, got[bad], want[bad], mx);
    fail();
  }
}

static void grad_check(sae_arch arch, int apply, int with_aux) {
  ref_case c = {.arch = arch, .d = 8, .n = 24, .B = 7, .k = 3, .apply = apply};
  c.lam = arch == SAE_ARCH_RELU ? 0.3 : 0.0;
  uint8_t dead[24] = {0};
  if (with_aux) {
    for (int i = 0; i < 24; i += 3) dead[i] = 1; /* 8 dead latents, k_aux 5 */
    c.dead = dead, c.aux_coeff = 0.7, c.k_aux = 5;
  }
  sc_rng rng;
  sc_rng_seed(&rng, 11 + (uint64_t)arch * 7 + (uint64_t)apply);
  sae_cfg cfg = {.arch = arch, .d = c.d, .n = c.n, .k = c.k, .apply_b_dec_to_input = apply};
  sae *s, *g;
  assert_int_equal(sae_create(&s, &cfg), 0);
  assert_int_equal(sae_create(&g, &cfg), 0);
  fill(s->W_enc, c.n * c.d, &rng, 0.5), fill(s->W_dec, c.n * c.d, &rng, 0.5);
  fill(s->b_enc, c.n, &rng, 0.1), fill(s->b_dec, c.d, &rng, 0.1);
  float x[7 * 8];
  fill(x, c.B * c.d, &rng, 1.0);
  c.x = x;
  sae_loss_cfg lc = {.l1_coeff = c.lam, .aux_coeff = c.aux_coeff, .k_aux = c.k_aux, .dead = c.dead};
  sae_loss loss;
  assert_int_equal(sae_loss_grad(s, &lc, x, c.B, g, &loss, NULL), 0);

  int64_t len = 2 * c.n * c.d + c.n + c.d;
  double *pp = malloc((size_t)len * sizeof *pp), *gg = malloc((size_t)len * sizeof *gg);
  double *e0 = malloc((size_t)(c.B * c.d) * sizeof *e0);
  ref_params P, G;
  params_view(&P, pp, c.n, c.d), params_view(&G, gg, c.n, c.d);
  to_params(&P, s);
  ref_loss(&c, &P, NULL, NULL, e0);
  double L = ref_loss(&c, &P, &G, e0, NULL);
  assert_true(fabs(loss.total - L) <= LOSS_TOL * (1 + fabs(L)));
  compare("W_enc", g->W_enc, G.W_enc, c.n * c.d);
  compare("W_dec", g->W_dec, G.W_dec, c.n * c.d);
  compare("b_enc", g->b_enc, G.b_enc, c.n);
  compare("b_dec", g->b_dec, G.b_dec, c.d);
  for (int64_t i = 0; i < len; i++) { /* the dense gradient vs central differences */
    double keep = pp[i];
    pp[i] = keep + FD_EPS;
    double lp = ref_loss(&c, &P, NULL, e0, NULL);
    pp[i] = keep - FD_EPS;
    double lm = ref_loss(&c, &P, NULL, e0, NULL);
    pp[i] = keep;
    double fd = (lp - lm) / (2 * FD_EPS);
    if (fabs(fd - gg[i]) > FD_TOL * (1 + fabs(gg[i]))) {
      print_error("param %lld: finite difference %.9g, analytic %.9g\n", (long long)i, fd, gg[i]);
      fail();
    }
  }
  if (with_aux) assert_true(loss.aux > 0);
  free(pp), free(gg), free(e0);
  sae_free(s), sae_free(g);
}

static void test_grad_topk(void **state) {
  (void)state;
  grad_check(SAE_ARCH_TOPK, 1, 0);
  grad_check(SAE_ARCH_TOPK, 0, 0);
  grad_check(SAE_ARCH_TOPK, 1, 1);
}

static void test_grad_batchtopk(void **state) {
  (void)state;
  grad_check(SAE_ARCH_BATCHTOPK, 1, 0);
  grad_check(SAE_ARCH_BATCHTOPK, 1, 1);
}

static void test_grad_relu(void **state) {
  (void)state;
  grad_check(SAE_ARCH_RELU, 1, 0);
  grad_check(SAE_ARCH_RELU, 0, 0);
}

static void test_jumprelu_training_refused(void **state) {
  (void)state;
  sae_train_cfg c;
  sae_train_cfg_default(&c, SAE_ARCH_JUMPRELU, 8, 16, 0);
  assert_int_equal(sae_train_cfg_check(&c), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "train: jumprelu training is not implemented (train batchtopk)");
}

/* ==== Feature recovery ==== */

static void recovery(sae_arch arch, double *cos_out) {
  sae_synth_cfg sc = {.d = 64, .n_features = 256, .active = 4, .amp_lo = 0.5f, .amp_hi = 1.5f,
                      .noise = 0.01f, .offset = 0.3f, .seed = 5};
  sae_source *src;
  assert_int_equal(sae_source_synthetic(&src, &sc), 0);
  sae_train_cfg c;
  sae_train_cfg_default(&c, arch, 64, 512, 4);
  c.batch = 512, c.steps = 400, c.warmup_steps = 50, c.lr = 4e-3; /* ~10 s, also fine under ASan */
  c.dead_tokens = 50000, c.norm_rows = 4096, c.median_rows = 1024, c.seed = 3;
  sae_trainer *t;
  assert_int_equal(sae_trainer_create(&t, &c, src), 0);
  assert_int_equal(sae_trainer_run(t, NULL), 0);
  const sae *m = sae_trainer_model(t);
  *cos_out = sae_mean_max_cosine(sae_source_synthetic_dict(src), 256, m->W_dec, 512, 64);
  sae_trainer_free(t);
  sae_source_free(src);
}

static void test_recovery_topk(void **state) {
  (void)state;
  double cs;
  recovery(SAE_ARCH_TOPK, &cs);
  print_message("topk: mean max cosine %.4f\n", cs);
  assert_true(cs >= RECOVERY_MIN_COS);
}

static void test_recovery_batchtopk(void **state) {
  (void)state;
  double cs;
  recovery(SAE_ARCH_BATCHTOPK, &cs);
  print_message("batchtopk: mean max cosine %.4f\n", cs);
  assert_true(cs >= RECOVERY_MIN_COS);
}

/* ==== Kill and resume ==== */

static sae_train_cfg resume_cfg(sae_arch arch) {
  sae_train_cfg c;
  sae_train_cfg_default(&c, arch, 16, 64, 4);
  c.batch = 64, c.steps = 40, c.warmup_steps = 5, c.dead_tokens = 256, c.k_aux = 8;
  c.norm_rows = 256, c.median_rows = 128, c.seed = 9, c.checkpoint_every = 10;
  c.l1_coeff = 0.5, c.l1_warmup_steps = 10;
  return c;
}

static sae_source *resume_source(void) {
  sae_synth_cfg sc = {.d = 16, .n_features = 48, .active = 3, .amp_lo = 0.5f, .amp_hi = 2.0f,
                      .noise = 0.05f, .offset = 1.0f, .seed = 21};
  sae_source *src;
  assert_int_equal(sae_source_synthetic(&src, &sc), 0);
  return src;
}

static char *saved_bytes(sae_trainer *t, const char *dir, size_t *len) {
  sae *e;
  assert_int_equal(sae_trainer_export(t, &e), 0);
  assert_int_equal(sae_save_saelens(e, NULL, dir), 0);
  sae_free(e);
  char *p = tu_join(dir, "sae_weights.safetensors"), *b = tu_read(p, len);
  free(p);
  return b;
}

static void resume_arch(sae_arch arch) {
  char *dir = tu_tmpdir("sae_resume"), *state = tu_join(dir, "trainer_state.safetensors");
  char *d1 = tu_join(dir, "full"), *d2 = tu_join(dir, "resumed");
  sae_train_cfg c = resume_cfg(arch);
  sae_source *src = resume_source();
  sae_trainer *t;
  assert_int_equal(sae_trainer_create(&t, &c, src), 0);
  assert_int_equal(sae_trainer_run(t, NULL), 0);
  size_t l1, l2;
  char *full = saved_bytes(t, d1, &l1);
  sae_trainer_free(t), sae_source_free(src);

  c.stop_at_step = 23; /* "killed" after step 23 (state written at 10, 20, 23) */
  src = resume_source();
  assert_int_equal(sae_trainer_create(&t, &c, src), 0);
  assert_int_equal(sae_trainer_run(t, state), 0);
  assert_int_equal(sae_trainer_step_count(t), 23);
  assert_false(sae_trainer_done(t));
  sae_trainer_free(t), sae_source_free(src);

  c.stop_at_step = 0;
  src = resume_source(); /* a fresh process: the source starts at its beginning */
  assert_int_equal(sae_trainer_resume(&t, &c, src, state), 0);
  assert_int_equal(sae_trainer_step_count(t), 23);
  assert_int_equal(sae_trainer_run(t, state), 0);
  assert_true(sae_trainer_done(t));
  char *resumed = saved_bytes(t, d2, &l2);
  assert_int_equal(l1, l2);
  assert_memory_equal(full, resumed, l1);
  assert_false(tu_has_tmp_files(dir));
  sae_trainer_free(t), sae_source_free(src);

  c.batch = 32; /* a different run must not resume from this state */
  src = resume_source();
  assert_int_equal(sae_trainer_resume(&t, &c, src, state), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "trainer_state.safetensors: saved by a run with batch=64, this run has batch=32"));
  sae_source_free(src);
  free(full), free(resumed), free(dir), free(state), free(d1), free(d2);
}

static void test_resume_identical(void **state) {
  (void)state;
  resume_arch(SAE_ARCH_TOPK);
  resume_arch(SAE_ARCH_BATCHTOPK);
  resume_arch(SAE_ARCH_RELU);
}

static void test_resume_bad_file(void **state) {
  (void)state;
  char *dir = tu_tmpdir("sae_resume_bad"), *p = tu_join(dir, "trainer_state.safetensors");
  tu_write_str(p, "not a safetensors file");
  sae_train_cfg c = resume_cfg(SAE_ARCH_TOPK);
  sae_source *src = resume_source();
  sae_trainer *t;
  assert_int_not_equal(sae_trainer_resume(&t, &c, src, p), 0);
  assert_non_null(strstr(sc_error_get(), "trainer_state.safetensors"));
  sae_source_free(src);
  free(dir), free(p);
}

static void test_lr_schedule(void **state) {
  (void)state;
  sae_train_cfg c;
  sae_train_cfg_default(&c, SAE_ARCH_TOPK, 2560, 16384, 64);
  assert_true(fabs(sae_train_base_lr(&c) - 2e-4) < 1e-12);
  c.n = 65536;
  assert_true(fabs(sae_train_base_lr(&c) - 1e-4) < 1e-12);
  c.steps = 100, c.warmup_steps = 10, c.decay_frac = 0.2;
  assert_true(fabs(sae_train_lr_factor(&c, 0) - 0.1) < 1e-12);
  assert_true(fabs(sae_train_lr_factor(&c, 50) - 1.0) < 1e-12);
  assert_true(fabs(sae_train_lr_factor(&c, 90) - 0.5) < 1e-12);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grad_topk),          cmocka_unit_test(test_grad_batchtopk),
      cmocka_unit_test(test_grad_relu),          cmocka_unit_test(test_jumprelu_training_refused),
      cmocka_unit_test(test_lr_schedule),        cmocka_unit_test(test_resume_identical),
      cmocka_unit_test(test_resume_bad_file),    cmocka_unit_test(test_recovery_topk),
      cmocka_unit_test(test_recovery_batchtopk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
