/* test_sae.c: SAE model, kernels, SAELens / Gemma Scope 2 files, metrics
 * and `saecap sae-encode`, against the numpy reference
 * (tests/reference/sae_reference.py). */
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
#include "io/json.h"
#include "io/safetensors.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "sae/sae_kernels.h"
#include "sae/sae_metrics.h"
#include "tu.h"

/* f32 encode/decode vs the f64 numpy reference on O(1) values. */
#define ENCODE_TOL 2e-5
/* Metrics: f64 accumulation on both sides. */
#define METRIC_TOL 1e-9

/* ==== Helpers ==== */

static char *g_fix; /* fixture folder written once by the numpy reference */

static int setup_fixtures(void **state) {
  (void)state;
  g_fix = tu_tmpdir("sae_fixtures");
  char *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 %s/tests/reference/sae_reference.py fixtures %s && "
                  "/usr/bin/python3 %s/tests/reference/sae_reference.py metrics %s",
                  tu_src(), g_fix, tu_src(), g_fix);
  if (st) fprintf(stderr, "sae_reference.py failed: %s\n", err ? err : "");
  free(err);
  return st;
}

static int teardown_fixtures(void **state) {
  (void)state;
  free(g_fix);
  return 0;
}

static const st_tensor *need(const st_file *f, const char *name) {
  const st_tensor *t = st_file_find(f, name);
  if (!t) print_error("tensor %s missing\n", name);
  assert_non_null(t);
  return t;
}

static void close_to(const char *what, const float *got, const float *want, int64_t len, double tol) {
  double worst = 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < len; i++)
    if (fabs((double)got[i] - want[i]) > worst) worst = fabs((double)got[i] - want[i]), bad = i;
  if (worst > tol) {
    print_error("%s: max abs diff %g at %lld (got %g, want %g)\n", what, worst, (long long)bad,
                got[bad], want[bad]);
    fail();
  }
}

static sae *random_sae(sae_arch arch, int64_t d, int64_t n, int k, uint64_t seed) {
  sae_cfg c = {.arch = arch, .d = d, .n = n, .k = k, .apply_b_dec_to_input = 1};
  strcpy(c.hook_name, "blocks.17.hook_resid_post");
  strcpy(c.model_name, "google/gemma-3-4b-it");
  sae *s;
  assert_int_equal(sae_create(&s, &c), 0);
  sc_rng r;
  sc_rng_seed(&r, seed);
  for (int64_t e = 0; e < n * d; e++)
    s->W_enc[e] = (float)sc_rng_normal(&r), s->W_dec[e] = (float)sc_rng_normal(&r);
  for (int64_t i = 0; i < n; i++)
    s->b_enc[i] = (float)sc_rng_normal(&r), s->threshold[i] = (float)sc_rng_uniform(&r);
  for (int64_t j = 0; j < d; j++) s->b_dec[j] = (float)sc_rng_normal(&r);
  return s;
}

/* ==== Kernels ==== */

static void test_topk_rows(void **state) {
  (void)state;
  float h[2 * 6] = {1, 5, 3, 5, -2, 0, /* tie at 5: index 1 first */
                    -1, -3, -2, -5, -4, -6};
  int32_t idx[2 * 3];
  float val[2 * 3];
  sae_topk_rows(idx, val, h, 2, 6, 6, 3);
  int32_t want_i[6] = {1, 3, 2, 0, 2, 1};
  float want_v[6] = {5, 5, 3, -1, -2, -3};
  assert_memory_equal(idx, want_i, sizeof want_i);
  assert_memory_equal(val, want_v, sizeof want_v);
  uint8_t mask[6] = {1, 0, 0, 0, 1, 1};
  sae_topk_rows_masked(idx, val, h, mask, 1, 6, 6, 3);
  assert_int_equal(idx[0], 0), assert_int_equal(idx[1], 5), assert_int_equal(idx[2], 4);
  float v[7] = {3, 9, 1, 7, 7, 2, 8};
  assert_true(sae_kth_largest(v, 7, 1) == 9.0f);
  float w[7] = {3, 9, 1, 7, 7, 2, 8};
  assert_true(sae_kth_largest(w, 7, 4) == 7.0f);
  float u[7] = {3, 9, 1, 7, 7, 2, 8};
  assert_true(sae_kth_largest(u, 7, 7) == 1.0f);
}

/* Rows long enough for the vector top-k (block maxima, candidates): it must
 * give exactly what the plain heap gives (sae_topk_rows_masked with every
 * latent allowed) and a sort by (value desc, index asc): continuous values,
 * heavy ties, all equal (too many candidates: falls back), negative only,
 * infinities, and NaN (falls back, so still equal to the plain path). */
typedef struct {
  float v;
  int32_t i;
} ranked;

static int ranked_cmp(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

static void test_topk_long_rows(void **state) {
  (void)state;
  enum { ROWS = 7, N = 4100, K = 32 };
  float *h = malloc(sizeof(float) * ROWS * N);
  uint8_t *all = malloc(N);
  memset(all, 1, N);
  sc_rng r;
  sc_rng_seed(&r, 99);
  for (int j = 0; j < N; j++) {
    h[0 * N + j] = (float)sc_rng_normal(&r);
    h[1 * N + j] = (float)(sc_rng_below(&r, 20)); /* ties everywhere */
    h[2 * N + j] = 1.5f;                          /* all equal */
    h[3 * N + j] = -1.0f - (float)sc_rng_uniform(&r);
    h[4 * N + j] = (float)sc_rng_normal(&r);
    h[5 * N + j] = (float)sc_rng_normal(&r);
    h[6 * N + j] = (float)(sc_rng_below(&r, 3000));
  }
  h[4 * N + 17] = INFINITY, h[4 * N + 4000] = -INFINITY, h[4 * N + 4099] = INFINITY;
  h[5 * N + 123] = NAN;
  int32_t fi[ROWS * K], pi[ROWS * K];
  float fv[ROWS * K], pv[ROWS * K];
  sae_topk_rows(fi, fv, h, ROWS, N, N, K);
  sae_topk_rows_masked(pi, pv, h, all, ROWS, N, N, K);
  assert_memory_equal(fi, pi, sizeof fi);
  assert_memory_equal(fv, pv, sizeof fv);
  ranked *ref = malloc(sizeof(ranked) * N);
  for (int row = 0; row < ROWS; row++) {
    if (row == 5) continue; /* NaN: no total order to sort by */
    for (int j = 0; j < N; j++) ref[j] = (ranked){h[row * N + j], j};
    qsort(ref, N, sizeof *ref, ranked_cmp);
    for (int t = 0; t < K; t++) {
      assert_int_equal(fi[row * K + t], ref[t].i);
      assert_true(fv[row * K + t] == ref[t].v);
    }
  }
  free(ref), free(h), free(all);
}

/* sae_encode / sae_decode vs a dense loop over every architecture. */
static void test_encode_dense(void **state) {
  (void)state;
  for (int a = SAE_ARCH_RELU; a <= SAE_ARCH_JUMPRELU; a++) {
    sae *s = random_sae((sae_arch)a, 5, 9, 3, 40 + (uint64_t)a);
    float x[4 * 5], h[9], xhat[4 * 5];
    sc_rng r;
    sc_rng_seed(&r, 7);
    for (int e = 0; e < 20; e++) x[e] = (float)sc_rng_normal(&r);
    sae_codes c;
    assert_int_equal(sae_codes_init(&c), 0);
    assert_int_equal(sae_encode(s, x, 4, &c), 0);
    sae_decode(s, &c, xhat);
    for (int b = 0; b < 4; b++) {
      float f[9] = {0}, rec[5];
      for (int i = 0; i < 9; i++) {
        double acc = s->b_enc[i];
        for (int j = 0; j < 5; j++) acc += (x[b * 5 + j] - s->b_dec[j]) * s->W_enc[i * 5 + j];
        h[i] = (float)acc;
      }
      for (int i = 0; i < 9; i++) {
        int on = h[i] > 0;
        if (a == SAE_ARCH_TOPK) {
          int rank = 0;
          for (int j = 0; j < 9; j++) rank += h[j] > h[i];
          on = on && rank < 3;
        } else if (a != SAE_ARCH_RELU) {
          on = on && h[i] > s->threshold[i];
        }
        f[i] = on ? h[i] : 0.0f;
      }
      float got[9] = {0};
      for (int64_t e = c.row_ptr[b]; e < c.row_ptr[b + 1]; e++) got[c.idx[e]] = c.val[e];
      close_to("codes", got, f, 9, ENCODE_TOL);
      for (int j = 0; j < 5; j++) {
        double acc = s->b_dec[j];
        for (int i = 0; i < 9; i++) acc += f[i] * s->W_dec[i * 5 + j];
        rec[j] = (float)acc;
      }
      close_to("recon", xhat + b * 5, rec, 5, ENCODE_TOL * 10);
    }
    sae_codes_release(&c);
    sae_free(s);
  }
}

/* ==== SAELens files ==== */

static void assert_same_sae(const sae *a, const sae *b) {
  int64_t nd = a->cfg.n * a->cfg.d;
  assert_int_equal(a->cfg.arch, b->cfg.arch);
  assert_int_equal(a->cfg.d, b->cfg.d), assert_int_equal(a->cfg.n, b->cfg.n);
  assert_int_equal(a->cfg.k, b->cfg.k);
  assert_int_equal(a->cfg.apply_b_dec_to_input, b->cfg.apply_b_dec_to_input);
  assert_string_equal(a->cfg.hook_name, b->cfg.hook_name);
  assert_string_equal(a->cfg.model_name, b->cfg.model_name);
  assert_memory_equal(a->W_enc, b->W_enc, (size_t)nd * 4);
  assert_memory_equal(a->W_dec, b->W_dec, (size_t)nd * 4);
  assert_memory_equal(a->b_enc, b->b_enc, (size_t)a->cfg.n * 4);
  assert_memory_equal(a->b_dec, b->b_dec, (size_t)a->cfg.d * 4);
  if (a->cfg.arch == SAE_ARCH_JUMPRELU)
    assert_memory_equal(a->threshold, b->threshold, (size_t)a->cfg.n * 4);
}

static void test_saelens_round_trip(void **state) {
  (void)state;
  char *dir = tu_tmpdir("sae_roundtrip");
  sae_arch archs[3] = {SAE_ARCH_TOPK, SAE_ARCH_JUMPRELU, SAE_ARCH_RELU};
  for (int a = 0; a < 3; a++) {
    sae *s = random_sae(archs[a], 7, 11, archs[a] == SAE_ARCH_RELU ? 0 : 4, 3 + (uint64_t)a), *t;
    float dens[11];
    for (int i = 0; i < 11; i++) dens[i] = -(float)i;
    assert_int_equal(sae_save_saelens(s, dens, dir), 0);
    assert_int_equal(sae_load(&t, dir), 0);
    assert_same_sae(s, t);
    assert_string_equal(t->cfg.source_format, "saelens");
    sae_free(s), sae_free(t);
  }
  char *p = tu_join(dir, "cfg.json");
  sc_json *j;
  assert_int_equal(sc_json_load(p, 1 << 20, &j), 0);
  assert_string_equal(sc_json_str(sc_json_get(j, "architecture")), "standard");
  sc_json *m = sc_json_get(j, "metadata");
  assert_string_equal(sc_json_str(sc_json_get(m, "sae_lens_version")), "6.0.0");
  assert_string_equal(sc_json_str(sc_json_get(m, "hook_name")), "blocks.17.hook_resid_post");
  sc_json_free(j);
  free(p);
  char *sp = tu_join(dir, "sparsity.safetensors");
  st_file *f;
  assert_int_equal(st_file_open(&f, sp), 0);
  assert_true(((const float *)need(f, "sparsity")->data)[3] == -3.0f);
  st_file_free(f);
  assert_false(tu_has_tmp_files(dir));
  free(sp), free(dir);
}

/* SAELens topk with rescale_acts_by_decoder_norm: loading folds the norms. */
static void test_saelens_rescale_fold(void **state) {
  (void)state;
  char *dir = tu_tmpdir("sae_rescale");
  sae *s = random_sae(SAE_ARCH_TOPK, 6, 10, 3, 77), *t;
  assert_int_equal(sae_save_saelens(s, NULL, dir), 0);
  char *p = tu_join(dir, "cfg.json");
  char *txt = tu_read(p, NULL), *at = strstr(txt, "\"rescale_acts_by_decoder_norm\":\tfalse");
  assert_non_null(at);
  memcpy(at + strlen("\"rescale_acts_by_decoder_norm\":\t"), "true ", 5);
  tu_write_str(p, txt);
  assert_int_equal(sae_load(&t, dir), 0);
  float x[6] = {0.3f, -1, 2, 0.5f, -0.2f, 1.1f}, xs[6], xt[6];
  sae_codes cs, ct;
  sae_codes_init(&cs), sae_codes_init(&ct);
  /* reference: topk on h·‖d_i‖, decode f/‖d_i‖ through the original weights */
  for (int i = 0; i < 10; i++) {
    double nr = 0;
    for (int j = 0; j < 6; j++) nr += (double)s->W_dec[i * 6 + j] * s->W_dec[i * 6 + j];
    nr = sqrt(nr);
    for (int j = 0; j < 6; j++) s->W_enc[i * 6 + j] *= (float)nr, s->W_dec[i * 6 + j] /= (float)nr;
    s->b_enc[i] *= (float)nr;
  }
  assert_int_equal(sae_encode(s, x, 1, &cs), 0), assert_int_equal(sae_encode(t, x, 1, &ct), 0);
  sae_decode(s, &cs, xs), sae_decode(t, &ct, xt);
  assert_int_equal(cs.row_ptr[1], ct.row_ptr[1]);
  assert_memory_equal(cs.idx, ct.idx, (size_t)cs.row_ptr[1] * 4);
  close_to("rescaled recon", xt, xs, 6, ENCODE_TOL);
  sae_codes_release(&cs), sae_codes_release(&ct);
  sae_free(s), sae_free(t);
  free(txt), free(p), free(dir);
}

static void expect_cfg_error(const char *json, int code, const char *msg) {
  sae_cfg c;
  assert_int_equal(sae_cfg_parse_saelens(json, strlen(json), "cfg.json", &c), code);
  assert_string_equal(sc_error_get(), msg);
}

static void test_saelens_cfg_errors(void **state) {
  (void)state;
  expect_cfg_error("{\"d_in\":4,\"d_sae\":8}", SC_ERR_MISSING, "cfg.json: key 'architecture' is missing");
  expect_cfg_error("{\"architecture\":\"gated\",\"d_in\":4,\"d_sae\":8}", SC_ERR_ARG,
                   "cfg.json: architecture 'gated' is not supported (standard, topk, jumprelu)");
  expect_cfg_error("{\"architecture\":\"topk\",\"d_in\":4,\"d_sae\":8}", SC_ERR_MISSING,
                   "cfg.json: key 'k' is missing");
  expect_cfg_error("{\"architecture\":\"topk\",\"d_in\":4,\"d_sae\":8,\"k\":9}", SC_ERR_RANGE,
                   "cfg.json: key 'k' = 9 is outside 1..8");
  expect_cfg_error("{\"architecture\":\"jumprelu\",\"d_in\":4.5,\"d_sae\":8}", SC_ERR_FORMAT,
                   "cfg.json: key 'd_in' is not an integer");
  expect_cfg_error("{\"architecture\":\"jumprelu\",\"d_in\":0,\"d_sae\":8}", SC_ERR_RANGE,
                   "cfg.json: key 'd_in' = 0 is outside 1..65536");
  expect_cfg_error("{\"architecture\":\"jumprelu\",\"d_in\":4,\"d_sae\":8,"
                   "\"normalize_activations\":\"layer_norm\"}", SC_ERR_ARG,
                   "cfg.json: normalize_activations 'layer_norm' is not supported (only 'none')");
  expect_cfg_error("{\"architecture\":\"jumprelu\",\"d_in\":4,\"d_sae\":8,\"d_out\":6}", SC_ERR_ARG,
                   "cfg.json: d_out 6 differs from d_in (transcoders are not supported)");
  expect_cfg_error("{\"architecture\":\"jumprelu\",\"d_in\":4,\"d_sae\":8,\"metadata\":3}",
                   SC_ERR_FORMAT, "cfg.json: key 'metadata' is not an object");
  expect_cfg_error("[1]", SC_ERR_FORMAT, "cfg.json: not a JSON object");
  sae_cfg c;
  const char *gs = "{\"architecture\":\"jump_relu\",\"type\":\"transcoder\"}";
  assert_int_equal(sae_cfg_parse_gemmascope(gs, strlen(gs), "config.json", &c), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "config.json: type 'transcoder' is not supported (sae)");
}

static void test_load_errors(void **state) {
  (void)state;
  char *dir = tu_tmpdir("sae_load_err");
  sae *s = random_sae(SAE_ARCH_JUMPRELU, 4, 6, 0, 5), *t = NULL;
  assert_int_equal(sae_load(&t, dir), SC_ERR_MISSING);
  assert_non_null(strstr(sc_error_get(), "no cfg.json + sae_weights.safetensors (SAELens) or config.json"));
  assert_int_equal(sae_save_saelens(s, NULL, dir), 0);
  /* a cfg.json that disagrees with the tensors */
  char *p = tu_join(dir, "cfg.json");
  tu_write_str(p, "{\"architecture\":\"jumprelu\",\"d_in\":4,\"d_sae\":7}");
  assert_int_equal(sae_load(&t, dir), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "sae_weights.safetensors: tensor 'W_enc' has shape [4, 6], expected [4, 7]"));
  assert_null(t);
  tu_write_str(p, "{\"architecture\":\"jumprelu\",\"d_in\":4,\"d_sae\":6");
  assert_int_equal(sae_load(&t, dir), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "cfg.json: malformed JSON"));
  sae_free(s);
  free(p), free(dir);
}

/* ==== Gemma Scope 2 and TopK fixtures from the numpy reference ==== */

static void fixture_encode(const char *sae_name, const char *acts_name, const char *prefix) {
  char *sdir = tu_join(g_fix, sae_name), *ap = tu_join(g_fix, acts_name);
  char *ep = tu_join(g_fix, "expected.safetensors"), key[96];
  sae *s;
  st_file *af, *ef;
  assert_int_equal(sae_load(&s, sdir), 0);
  assert_int_equal(st_file_open(&af, ap), 0), assert_int_equal(st_file_open(&ef, ep), 0);
  const st_tensor *acts = need(af, "acts");
  int64_t N = acts->shape[0], d = s->cfg.d, n = s->cfg.n;
  float *x = malloc((size_t)(N * d) * 4), *f = calloc((size_t)(N * n), 4), *rec = malloc((size_t)(N * d) * 4);
  if (acts->dtype == SC_DTYPE_BF16) sc_f32_from_bf16_n(x, acts->data, (size_t)(N * d));
  else memcpy(x, acts->data, (size_t)(N * d) * 4);
  sae_codes c;
  sae_codes_init(&c);
  assert_int_equal(sae_encode(s, x, N, &c), 0);
  sae_decode(s, &c, rec);
  for (int64_t r = 0; r < N; r++)
    for (int64_t e = c.row_ptr[r]; e < c.row_ptr[r + 1]; e++) f[r * n + c.idx[e]] = c.val[e];
  snprintf(key, sizeof key, "%s.f", prefix);
  close_to(key, f, need(ef, key)->data, N * n, ENCODE_TOL);
  snprintf(key, sizeof key, "%s.recon", prefix);
  close_to(key, rec, need(ef, key)->data, N * d, ENCODE_TOL * 10);
  sae_codes_release(&c);
  free(x), free(f), free(rec);
  st_file_free(af), st_file_free(ef);
  sae_free(s);
  free(sdir), free(ap), free(ep);
}

static void test_gemmascope_fixture(void **state) {
  (void)state;
  char *sdir = tu_join(g_fix, "gs2");
  sae *s;
  assert_int_equal(sae_load(&s, sdir), 0);
  assert_int_equal(s->cfg.arch, SAE_ARCH_JUMPRELU);
  assert_int_equal(s->cfg.apply_b_dec_to_input, 0);
  assert_string_equal(s->cfg.source_format, "gemmascope2");
  assert_string_equal(s->cfg.hook_name, "model.layers.17.output");
  sae_free(s);
  free(sdir);
  fixture_encode("gs2", "acts.safetensors", "gs2.f32");
  fixture_encode("gs2", "acts_bf16.safetensors", "gs2.bf16");
}

static void test_topk_fixture(void **state) {
  (void)state;
  fixture_encode("topk", "acts.safetensors", "topk.f32");
  fixture_encode("topk", "acts_bf16.safetensors", "topk.bf16");
}

/* ==== Metrics ==== */

static double jnum(const sc_json *j, const char *k) {
  const sc_json *v = sc_json_get(j, k);
  assert_non_null(v);
  return sc_json_num(v);
}

static void test_metrics_numpy(void **state) {
  (void)state;
  char *cp = tu_join(g_fix, "metrics_case.safetensors"), *jp = tu_join(g_fix, "metrics_expected.json");
  st_file *f;
  sc_json *j;
  assert_int_equal(st_file_open(&f, cp), 0);
  assert_int_equal(sc_json_load(jp, 1 << 20, &j), 0);
  const st_tensor *tx = need(f, "x"), *tf = need(f, "f");
  const float *x = tx->data, *xh = need(f, "xhat")->data, *fd = tf->data;
  int64_t N = tx->shape[0], d = tx->shape[1], n = tf->shape[1], B = (int64_t)jnum(j, "batch");
  sae_metrics_acc *acc;
  assert_int_equal(sae_metrics_create(&acc, d, n, jnum(j, "dense_threshold")), 0);
  sae_codes c;
  sae_codes_init(&c);
  for (int64_t r0 = 0; r0 < N; r0 += B) {
    int64_t rows = N - r0 < B ? N - r0 : B;
    c.rows = 0;
    assert_int_equal(sae_codes_append_threshold(&c, fd + r0 * n, NULL, rows, n, n), 0);
    assert_int_equal(sae_metrics_add(acc, x + r0 * d, xh + r0 * d, &c), 0);
  }
  sae_metrics m;
  sae_metrics_result(acc, &m);
  assert_int_equal(m.tokens, N);
  struct { const char *k; double v; } want[] = {
      {"mse", m.mse}, {"fvu", m.fvu}, {"explained_variance", m.explained_variance},
      {"explained_variance_legacy", m.explained_variance_legacy}, {"l0", m.l0},
      {"dead_fraction", m.dead_fraction}, {"dense_fraction", m.dense_fraction},
      {"cosine", m.cosine}, {"l2_ratio", m.l2_ratio}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    double e = jnum(j, want[i].k);
    if (fabs(e - want[i].v) > METRIC_TOL * (1 + fabs(e))) {
      print_error("%s: got %.12g, numpy %.12g\n", want[i].k, want[i].v, e);
      fail();
    }
  }
  assert_true(m.dead_fraction > 0 && m.dense_fraction > 0); /* the case exercises both */
  sae_codes_release(&c);
  sae_metrics_free(acc);
  sc_json_free(j);
  st_file_free(f);
  free(cp), free(jp);
}

static void test_mean_max_cosine(void **state) {
  (void)state;
  float A[2 * 3] = {1, 0, 0, 0, 2, 0}, B[3 * 3] = {0, 0, 5, 0.6f, 0.8f, 0, -3, 0, 0};
  /* row 0: best 0.6 (B1); row 1: best 0.8 (B1) */
  assert_true(fabs(sae_mean_max_cosine(A, 2, B, 3, 3) - 0.7) < 1e-6);
}

/* ==== saecap sae-encode ==== */

static void cli_case(const char *sae_name, const char *acts, const char *prefix) {
  char *dir = tu_tmpdir("sae_cli"), *out = tu_join(dir, "codes.safetensors");
  char *err = NULL, *stdo = NULL, key[96];
  int st = tu_run(&stdo, &err, "%s sae-encode --sae %s/%s --acts %s/%s --out %s --top 8 --recon",
                  tu_bin(), g_fix, sae_name, g_fix, acts, out);
  if (st) print_error("%s\n", err);
  assert_int_equal(st, 0);
  assert_non_null(strstr(stdo, "48 rows, top 8 of 96 latents"));
  char *ep = tu_join(g_fix, "expected.safetensors");
  st_file *o, *e;
  assert_int_equal(st_file_open(&o, out), 0), assert_int_equal(st_file_open(&e, ep), 0);
  const st_tensor *ti = need(o, "top_indices"), *tv = need(o, "top_values"), *tr = need(o, "recon");
  assert_int_equal(ti->dtype, SC_DTYPE_I32), assert_int_equal(tv->dtype, SC_DTYPE_F32);
  assert_int_equal(ti->shape[0], 48), assert_int_equal(ti->shape[1], 8);
  snprintf(key, sizeof key, "%s.top_indices", prefix);
  assert_memory_equal(ti->data, need(e, key)->data, ti->nbytes);
  snprintf(key, sizeof key, "%s.top_values", prefix);
  close_to(key, tv->data, need(e, key)->data, 48 * 8, ENCODE_TOL);
  snprintf(key, sizeof key, "%s.recon", prefix);
  close_to(key, tr->data, need(e, key)->data, 48 * 32, ENCODE_TOL * 10);
  st_file_free(o), st_file_free(e);
  free(ep), free(stdo), free(err), free(out), free(dir);
}

static void test_cli_encode(void **state) {
  (void)state;
  cli_case("gs2", "acts.safetensors", "gs2.f32");
  cli_case("gs2", "acts_bf16.safetensors", "gs2.bf16");
  cli_case("topk", "acts.safetensors", "topk.f32");
}

static void test_cli_encode_errors(void **state) {
  (void)state;
  char *dir = tu_tmpdir("sae_cli_err"), *err = NULL;
  int st = tu_run(NULL, &err, "%s sae-encode --sae %s/gs2 --acts %s/metrics_case.safetensors --out %s/o",
                  tu_bin(), g_fix, g_fix, dir);
  tu_assert_one_line_error(st, err, "metrics_case.safetensors: tensor 'acts' is missing", NULL);
  free(err);
  st = tu_run(NULL, &err, "%s sae-encode --sae %s --acts %s/acts.safetensors --out %s/o", tu_bin(),
              dir, g_fix, dir);
  tu_assert_one_line_error(st, err, "no cfg.json + sae_weights.safetensors", NULL);
  free(err);
  st = tu_run(NULL, &err, "%s sae-encode --sae %s/gs2 --acts %s/acts.safetensors --out %s/o --top 97",
              tu_bin(), g_fix, g_fix, dir);
  tu_assert_one_line_error(st, err, "sae-encode: --top 97 exceeds d_sae 96", NULL);
  free(err);
  st = tu_run(NULL, &err, "%s sae-encode --sae %s/gs2 --out %s/o", tu_bin(), g_fix, dir);
  assert_int_equal(st, 2);
  assert_non_null(strstr(err, "--sae, --acts and --out are required"));
  free(err);
  assert_int_equal(tu_count_files(dir), 0);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_topk_rows), cmocka_unit_test(test_topk_long_rows),
      cmocka_unit_test(test_encode_dense),
      cmocka_unit_test(test_saelens_round_trip),
      cmocka_unit_test(test_saelens_rescale_fold),
      cmocka_unit_test(test_saelens_cfg_errors),
      cmocka_unit_test(test_load_errors),
      cmocka_unit_test(test_gemmascope_fixture),
      cmocka_unit_test(test_topk_fixture),
      cmocka_unit_test(test_metrics_numpy),
      cmocka_unit_test(test_mean_max_cosine),
      cmocka_unit_test(test_cli_encode),
      cmocka_unit_test(test_cli_encode_errors),
  };
  return cmocka_run_group_tests(tests, setup_fixtures, teardown_fixtures);
}
