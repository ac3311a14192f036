/* test_vision_bf16.c: the bf16 precision of the vision tower and projector
 * (vision.h, Precision; issue 5 "the vision path honours --precision").
 *
 * On tiny checkpoints (seeds 7 and 8 with BF16 weights, seeds 7 and 9 with
 * F32 weights) the same pixels run through g3_vision_forward in F32 and in
 * BF16; vision_out and image_embeds must agree to a normalised squared
 * error NMSE = Σ(a−b)² / Σb² of at most BF16_NMSE_MAX (bf16 rounding of
 * every GEMM operand) and at least BF16_NMSE_MIN, so a BF16 mode that
 * silently runs f32 fails. Also: F32 results are bit-identical before and
 * after a BF16 forward on the same g3_vision, BF16 is deterministic, the
 * bf16 attention kernel rounds the probabilities (against float64 loops),
 * an unknown precision is refused, the per-layer hook, and `saecap caption
 * --precision`. */
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
#include "model/decoder.h"
#include "model/tiny.h"
#include "model/vision.h"
#include "tensor/dtype.h"
#include "tensor/vkernels.h"
#include "tu.h"

/* bf16 has 8 significant bits (relative rounding error <= 2^-9 per
 * operand); through 2 tiny layers NMSE lands around 1e-5. */
#define BF16_NMSE_MAX 1e-3
/* Below this bf16 rounding cannot have happened (f32 reordering alone is
 * ~1e-14). */
#define BF16_NMSE_MIN 1e-9
/* sc_mha_full_prec against float64 loops, relative to max|ref| (measured
 * 4e-8); allows a few softmax values that round to the other bf16
 * neighbour in f32 than in float64 (each moves an output by ~2^-8 · P · |v|),
 * while staying 4x below the effect of not rounding P at all (2e-3). */
#define MHA_BF16_TOL 5e-4
/* The unrounded reference must be further away than this (relative). */
#define MHA_BF16_MIN_EFFECT 1e-3

typedef struct fixture {
  char *root, *tok;
} fixture;

static fixture F;

static int setup(void **state) {
  (void)state;
  F.root = tu_tmpdir("vision_bf16");
  F.tok = tu_tokenizer_json();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_run(NULL, NULL, "rm -rf '%s'", F.root);
  free(F.root);
  free(F.tok);
  return 0;
}

/* Writes (once) and loads the tiny model of this seed and dtype. */
static void load_tiny(uint64_t seed, sc_dtype dt, g3_model **m, g3_vision **v) {
  char name[64];
  snprintf(name, sizeof name, "m%llu_%s", (unsigned long long)seed, sc_dtype_name(dt));
  char *dir = tu_join(F.root, name);
  g3_tiny_opts o;
  g3_tiny_opts_init(&o);
  o.seed = seed;
  o.dtype = dt;
  o.layout = G3_CONFIG_FORM_NEW;
  o.tokenizer_json = F.tok;
  if (!tu_exists(dir)) assert_int_equal(g3_tiny_write(dir, &o), 0);
  int rc = g3_model_load(m, dir);
  if (!rc) rc = g3_vision_load(v, (*m)->ckpt, &(*m)->cfg, dir);
  if (rc) print_error("%s\n", sc_error_get());
  assert_int_equal(rc, 0);
  free(dir);
}

/* Pixels uniform in [-1, 1) (what preprocessing produces), seeded. */
static float *random_pixels(const g3_vision *v, uint64_t seed) {
  size_t n = g3_vision_pixels_floats(v);
  float *px = malloc(n * sizeof *px);
  assert_non_null(px);
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    z = z * 6364136223846793005ull + 1442695040888963407ull;
    px[i] = (float)(z >> 40) / 8388608.0f - 1.0f;
  }
  return px;
}

static double nmse(const float *a, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return num / den;
}

typedef struct outs {
  float *vis, *emb;
} outs;

static outs forward(g3_vision *v, const float *px, sc_precision p) {
  outs o = {malloc(g3_vision_out_floats(v) * sizeof(float)), malloc(g3_vision_embeds_floats(v) * sizeof(float))};
  assert_true(o.vis && o.emb);
  v->precision = p;
  int rc = g3_vision_forward(v, px, o.vis, o.emb);
  if (rc) print_error("%s\n", sc_error_get());
  assert_int_equal(rc, 0);
  return o;
}

static void outs_free(outs o) {
  free(o.vis);
  free(o.emb);
}

static void check_nmse(uint64_t seed, sc_dtype dt) {
  g3_model *m = NULL;
  g3_vision *v = NULL;
  load_tiny(seed, dt, &m, &v);
  float *px = random_pixels(v, seed);
  outs f = forward(v, px, SC_PRECISION_F32), b = forward(v, px, SC_PRECISION_BF16);
  double e_vis = nmse(b.vis, f.vis, g3_vision_out_floats(v));
  double e_emb = nmse(b.emb, f.emb, g3_vision_embeds_floats(v));
  print_message("seed %llu %s weights: NMSE bf16 vs f32: vision_out %.3g, image_embeds %.3g\n",
                (unsigned long long)seed, sc_dtype_name(dt), e_vis, e_emb);
  assert_true(e_vis <= BF16_NMSE_MAX && e_vis >= BF16_NMSE_MIN);
  assert_true(e_emb <= BF16_NMSE_MAX && e_emb >= BF16_NMSE_MIN);
  /* A bf16 forward leaves the f32 mode exactly as it was; bf16 repeats. */
  outs f2 = forward(v, px, SC_PRECISION_F32), b2 = forward(v, px, SC_PRECISION_BF16);
  assert_memory_equal(f.vis, f2.vis, g3_vision_out_floats(v) * sizeof(float));
  assert_memory_equal(f.emb, f2.emb, g3_vision_embeds_floats(v) * sizeof(float));
  assert_memory_equal(b.vis, b2.vis, g3_vision_out_floats(v) * sizeof(float));
  assert_memory_equal(b.emb, b2.emb, g3_vision_embeds_floats(v) * sizeof(float));
  outs_free(f), outs_free(b), outs_free(f2), outs_free(b2);
  free(px);
  g3_vision_free(v);
  g3_model_free(m);
}

static void test_nmse_seed7_bf16(void **state) {
  (void)state;
  check_nmse(7, SC_DTYPE_BF16);
}

static void test_nmse_seed8_bf16(void **state) {
  (void)state;
  check_nmse(8, SC_DTYPE_BF16);
}

static void test_nmse_seed7_f32(void **state) {
  (void)state;
  check_nmse(7, SC_DTYPE_F32);
}

static void test_nmse_seed9_f32(void **state) {
  (void)state;
  check_nmse(9, SC_DTYPE_F32);
}

/* The transposed projector copy holds bf16(mm_proj)ᵀ. */
static void test_projector_copy(void **state) {
  (void)state;
  g3_model *m = NULL;
  g3_vision *v = NULL;
  load_tiny(9, SC_DTYPE_F32, &m, &v);
  const sc_mat *w = &v->mm_proj;
  const float *f = w->data;
  assert_non_null(v->mm_proj_t);
  for (int64_t i = 0; i < w->rows; i++)
    for (int64_t j = 0; j < w->cols; j++)
      assert_int_equal(v->mm_proj_t[j * w->rows + i], sc_bf16_from_f32(f[i * w->cols + j]));
  g3_vision_free(v);
  g3_model_free(m);
}

static void test_unknown_precision(void **state) {
  (void)state;
  g3_model *m = NULL;
  g3_vision *v = NULL;
  load_tiny(7, SC_DTYPE_BF16, &m, &v);
  float *px = random_pixels(v, 1);
  float *emb = malloc(g3_vision_embeds_floats(v) * sizeof *emb);
  v->precision = (sc_precision)7;
  assert_int_equal(g3_vision_forward(v, px, NULL, emb), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "vision: unknown precision 7");
  free(emb);
  free(px);
  g3_vision_free(v);
  g3_model_free(m);
}

typedef struct hook_log {
  int calls, last, stop_at;
} hook_log;

static int log_hook(void *user, int layer, const float *x, int64_t n, int hidden) {
  hook_log *h = user;
  assert_non_null(x);
  assert_int_equal(n, 64); /* the tiny 8x8 grid */
  assert_int_equal(hidden, 32);
  assert_int_equal(layer, h->last + 1);
  h->last = layer, h->calls++;
  return layer == h->stop_at ? SC_ERR_IO : 0;
}

/* The layer hook runs after every layer in order, leaves the results
 * alone, and a non-zero return stops the forward with that code. */
static void test_layer_hook(void **state) {
  (void)state;
  g3_model *m = NULL;
  g3_vision *v = NULL;
  load_tiny(7, SC_DTYPE_BF16, &m, &v);
  float *px = random_pixels(v, 3);
  outs ref = forward(v, px, SC_PRECISION_F32);
  float *vis = malloc(g3_vision_out_floats(v) * sizeof *vis);
  assert_non_null(vis);
  hook_log h = {0, -1, -1};
  assert_int_equal(g3_vision_forward_hook(v, px, vis, NULL, log_hook, &h), 0);
  assert_int_equal(h.calls, v->cfg.vision.num_hidden_layers);
  assert_memory_equal(vis, ref.vis, g3_vision_out_floats(v) * sizeof *vis);
  h = (hook_log){0, -1, 0};
  assert_int_equal(g3_vision_forward_hook(v, px, vis, NULL, log_hook, &h), SC_ERR_IO);
  assert_int_equal(h.calls, 1);
  free(vis);
  outs_free(ref);
  free(px);
  g3_vision_free(v);
  g3_model_free(m);
}

/* out[n, heads·hd] by float64 loops; P rounded to bf16 when round_p. */
static void mha_ref(double *out, const float *q, const float *k, const float *v, int n, int heads,
                    int hd, double scale, int round_p) {
  int w = heads * hd;
  double *s = malloc((size_t)n * sizeof *s);
  assert_non_null(s);
  for (int h = 0; h < heads; h++)
    for (int t = 0; t < n; t++) {
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < n; j++) {
        double d = 0;
        for (int e = 0; e < hd; e++) d += (double)q[t * w + h * hd + e] * k[j * w + h * hd + e];
        s[j] = d * scale;
        mx = s[j] > mx ? s[j] : mx;
      }
      for (int j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
      for (int j = 0; j < n; j++) {
        float p = (float)(s[j] / sum);
        s[j] = round_p ? sc_f32_from_bf16(sc_bf16_from_f32(p)) : p;
      }
      for (int e = 0; e < hd; e++) {
        double o = 0;
        for (int j = 0; j < n; j++) o += s[j] * v[j * w + h * hd + e];
        out[t * w + h * hd + e] = o;
      }
    }
  free(s);
}

static double rel_dist(const float *a, const double *ref, size_t n) {
  double mx = 0, ref_mx = 0;
  for (size_t i = 0; i < n; i++) {
    mx = fmax(mx, fabs(a[i] - ref[i]));
    ref_mx = fmax(ref_mx, fabs(ref[i]));
  }
  return mx / ref_mx;
}

static void test_mha_bf16_kernel(void **state) {
  (void)state;
  enum { N = 40, HEADS = 3, HD = 16, W = HEADS * HD };
  float *q = malloc(N * W * sizeof *q), *k = malloc(N * W * sizeof *k), *v = malloc(N * W * sizeof *v);
  float *out = malloc(N * W * sizeof *out);
  float *scr = malloc(sc_mha_full_scratch(N, HD) * sizeof *scr);
  double *r_bf = malloc(N * W * sizeof *r_bf), *r_f = malloc(N * W * sizeof *r_f);
  assert_true(q && k && v && out && scr && r_bf && r_f);
  uint64_t z = 5;
  float *arrs[3] = {q, k, v};
  for (int a = 0; a < 3; a++)
    for (int i = 0; i < N * W; i++) {
      z = z * 6364136223846793005ull + 1442695040888963407ull;
      arrs[a][i] = sc_f32_from_bf16(sc_bf16_from_f32(2.0f * ((float)(z >> 40) / 16777216.0f) - 1.0f));
    }
  double scale = 1.0 / sqrt(HD);
  sc_mha_full_prec(out, q, k, v, N, HEADS, HD, (float)scale, SC_PRECISION_BF16, scr);
  mha_ref(r_bf, q, k, v, N, HEADS, HD, scale, 1);
  mha_ref(r_f, q, k, v, N, HEADS, HD, scale, 0);
  double d_bf = rel_dist(out, r_bf, N * W), d_f = rel_dist(out, r_f, N * W);
  print_message("mha bf16: %.3g from the rounded-P reference, %.3g from the f32 one\n", d_bf, d_f);
  assert_true(d_bf <= MHA_BF16_TOL);
  assert_true(d_f >= MHA_BF16_MIN_EFFECT);
  assert_true(d_bf < d_f);
  /* F32 is sc_mha_full exactly. */
  float *out2 = malloc(N * W * sizeof *out2);
  assert_non_null(out2);
  sc_mha_full_prec(out, q, k, v, N, HEADS, HD, (float)scale, SC_PRECISION_F32, scr);
  sc_mha_full(out2, q, k, v, N, HEADS, HD, (float)scale, scr);
  assert_memory_equal(out, out2, N * W * sizeof *out);
  free(q), free(k), free(v), free(out), free(out2), free(scr), free(r_bf), free(r_f);
}

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* sc_round_bf16_v equals sc_round_bf16 bit for bit: ties both ways,
 * overflow to inf, infinities, NaNs with payload only in the low bits,
 * subnormals, and a sweep of bit patterns. */
static void test_round_bf16_v(void **state) {
  (void)state;
  static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu,
                                     0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7f800001u,
                                     0xff800001u, 0x7fc00000u, 0x7fffffffu, 0x00000001u, 0x00008000u,
                                     0x00018000u, 0x807fffffu, 0x3f7f8000u};
  enum { NS = sizeof special / sizeof special[0], NR = 1 << 16 };
  float *a = malloc((NS + NR) * sizeof *a), *b = malloc((NS + NR) * sizeof *b);
  assert_true(a && b);
  for (int i = 0; i < NS; i++) a[i] = from_bits(special[i]);
  uint32_t z = 12345;
  for (int i = 0; i < NR; i++) a[NS + i] = from_bits(z = z * 1664525u + 1013904223u);
  memcpy(b, a, (NS + NR) * sizeof *a);
  sc_round_bf16_v(a, NS + NR);
  sc_round_bf16(b, NS + NR);
  assert_memory_equal(a, b, (NS + NR) * sizeof *a);
  free(a), free(b);
}

/* `saecap caption --precision`: bf16 runs and repeats; a bad value is a
 * one-line usage error. */
static void test_cli_precision(void **state) {
  (void)state;
  g3_model *m = NULL;
  g3_vision *v = NULL;
  load_tiny(8, SC_DTYPE_BF16, &m, &v); /* writes the model */
  g3_vision_free(v);
  g3_model_free(m);
  char *dir = tu_join(F.root, "m8_BF16"), *img = tu_join(F.root, "img.png");
  int rc = tu_run(NULL, NULL,
                  "/usr/bin/python3 -c \"import numpy as np; from PIL import Image; "
                  "r = np.random.default_rng(2); "
                  "Image.fromarray((r.random((40, 90, 3)) * 255).astype(np.uint8)).save('%s')\"", img);
  assert_int_equal(rc, 0);
  char *out[2] = {NULL, NULL}, *err = NULL;
  for (int i = 0; i < 2; i++) {
    rc = tu_run(&out[i], &err, "'%s' caption --model '%s' --image '%s' --max-new-tokens 6 --json --precision bf16",
                tu_bin(), dir, img);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out[i], "\"ids\""));
    free(err);
  }
  assert_string_equal(out[0], out[1]);
  rc = tu_run(NULL, &err, "'%s' caption --model '%s' --image '%s' --precision f16", tu_bin(), dir, img);
  assert_int_equal(rc, 2);
  tu_assert_one_line_error(rc, err, "bad or missing value for --precision", NULL);
  free(err);
  free(out[0]), free(out[1]), free(dir), free(img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nmse_seed7_bf16), cmocka_unit_test(test_nmse_seed8_bf16),
      cmocka_unit_test(test_nmse_seed7_f32),  cmocka_unit_test(test_nmse_seed9_f32),
      cmocka_unit_test(test_projector_copy),  cmocka_unit_test(test_unknown_precision),
      cmocka_unit_test(test_mha_bf16_kernel), cmocka_unit_test(test_layer_hook),
      cmocka_unit_test(test_round_bf16_v),    cmocka_unit_test(test_cli_precision),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
