/* test_crossling.c: RQ1 (an_crossling) on planted signals: a gender
 * direction shared by EN and AR at layers 0-2 and a different AR direction
 * from layer 3 on must give a high cosine and transfer at 0-2, a low cosine
 * and a transfer drop at exactly 3-5, divergence layer 3; a label-shuffled
 * control finds nothing. Per-layer norms, cosines and CKA against numpy
 * (tests/reference/stats_reference.py xl); skips and bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/crossling.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/json.h"
#include "pipeline/config.h"
#include "pipeline/prepare.h"
#include "tu.h"
#include "an_ref.h"

enum { NL = 6, D = 16, MAXN = 400 };

typedef struct {
  size_t n;
  int labels[MAXN];      /* SC_LABEL_* */
  uint64_t groups[MAXN];
  float *en[NL], *ar[NL];
  int layers[NL];
} planted;

/* Images of 1-2 samples; every 13th sample neutral (ignored by RQ1). Each
 * image has a random vector shared by both languages (so random labels give
 * correlated EN/AR directions: the permutation null must handle it). EN
 * carries gender along e0 at every layer; AR along e0 at layers 0-2 and
 * along e1 (orthogonal) at layers 3-5. */
static void make_planted(planted *p, uint64_t seed, int shuffle_labels) {
  memset(p, 0, sizeof *p);
  sc_rng r;
  sc_rng_seed(&r, seed);
  size_t i = 0, img = 0;
  static double shared[MAXN][D];
  int img_lab[MAXN];
  while (i < 260) {
    size_t sz = 1 + (size_t)sc_rng_below(&r, 2);
    int lab = sc_rng_uniform(&r) < 0.5 ? SC_LABEL_FEMALE : SC_LABEL_MALE;
    img_lab[img] = lab;
    for (size_t k = 0; k < sz; k++, i++) {
      p->groups[i] = 900 + img * 3;
      p->labels[i] = i % 13 == 12 ? SC_LABEL_NEUTRAL : lab;
    }
    img++;
  }
  p->n = i;
  for (size_t g = 0; g < img; g++)
    for (size_t j = 0; j < D; j++) shared[g][j] = 1.5 * sc_rng_normal(&r);
  for (int l = 0; l < NL; l++) {
    p->layers[l] = l;
    p->en[l] = malloc(p->n * D * sizeof(float));
    p->ar[l] = malloc(p->n * D * sizeof(float));
    for (size_t s = 0; s < p->n; s++) {
      size_t g = (p->groups[s] - 900) / 3;
      double a = p->labels[s] == SC_LABEL_FEMALE ? 1 : (p->labels[s] == SC_LABEL_MALE ? -1 : 0);
      for (size_t j = 0; j < D; j++) {
        double base = shared[g][j] + 5.0 * (double)l; /* a large common offset per layer */
        double en = base + 0.7 * sc_rng_normal(&r) + (j == 0 ? 2.5 * a : 0);
        double ar = base + 0.7 * sc_rng_normal(&r) + (l < 3 ? (j == 0 ? 2.5 * a : 0) : (j == 1 ? 2.5 * a : 0));
        p->en[l][s * D + j] = (float)en;
        p->ar[l][s * D + j] = (float)ar;
      }
    }
  }
  if (shuffle_labels) {
    /* Whole images get a random label: the activations no longer match. */
    sc_rng_shuffle(&r, img_lab, img, sizeof *img_lab);
    for (size_t s = 0; s < p->n; s++)
      if (p->labels[s] != SC_LABEL_NEUTRAL) p->labels[s] = img_lab[(p->groups[s] - 900) / 3];
  }
}

static void free_planted(planted *p) {
  for (int l = 0; l < NL; l++) {
    free(p->en[l]);
    free(p->ar[l]);
  }
}

static sc_config_analyze test_cfg(void) {
  sc_config_analyze c;
  memset(&c, 0, sizeof c);
  c.bootstrap = 200;
  c.permutations = 200;
  c.folds = 5;
  c.probe_c = 1.0;
  c.fdr = 0.05;
  c.ci = 0.95;
  c.min_per_label = 5;
  return c;
}

static an_crossling_input input_of(const planted *p, size_t nl) {
  an_crossling_input in = {p->n, D, nl, p->layers, (const float *const *)p->en,
                           (const float *const *)p->ar, p->labels, p->groups, "caption"};
  return in;
}

static sc_json *layer_at(const sc_json *seg, int l) { return sc_json_at(sc_json_get(seg, "layers"), l); }
static double get_num(const sc_json *o, const char *a, const char *b, const char *c) {
  const sc_json *x = sc_json_get(o, a);
  if (b) x = sc_json_get(x, b);
  if (c) x = sc_json_get(x, c);
  assert_non_null(x);
  return sc_json_num(x);
}
static double ci_at(const sc_json *o, const char *a, const char *b, int i) {
  const sc_json *x = sc_json_get(sc_json_get(o, a), b);
  assert_non_null(x);
  return num_at(x, i);
}

static void test_planted(void **state) {
  (void)state;
  planted p;
  make_planted(&p, 2024, 0);
  sc_config_analyze cfg = test_cfg();
  an_crossling_input in = input_of(&p, NL);
  sc_json *seg;
  assert_int_equal(an_crossling_run(&in, &cfg, 17, &seg), 0);
  assert_string_equal(sc_json_str(sc_json_get(seg, "status")), "ok");
  size_t neutral = 0;
  for (size_t s = 0; s < p.n; s++) neutral += p.labels[s] == SC_LABEL_NEUTRAL;
  assert_int_equal((int)sc_json_num(sc_json_get(seg, "n_samples")), (int)(p.n - neutral));
  assert_string_equal(sc_json_str(sc_json_get(seg, "permutation_unit")), "image");
  for (int l = 0; l < NL; l++) {
    sc_json *L = layer_at(seg, l);
    assert_int_equal((int)sc_json_num(sc_json_get(L, "layer")), l);
    double cosv = get_num(L, "direction", "cosine", NULL);
    double q = get_num(L, "direction", "perm_q", NULL);
    double en = get_num(L, "probe", "en", "acc"), ar = get_num(L, "probe", "ar", "acc");
    double e2a = get_num(L, "probe", "en_to_ar", "acc"), a2e = get_num(L, "probe", "ar_to_en", "acc");
    print_message("layer %d: cos %.3f [%.3f, %.3f] q %.3f  en %.3f ar %.3f en>ar %.3f ar>en %.3f cka %.3f\n",
                  l, cosv, ci_at(L, "direction", "cosine_ci", 0), ci_at(L, "direction", "cosine_ci", 1),
                  q, en, ar, e2a, a2e, get_num(L, "cka", "value", NULL));
    /* Gender is decodable in both languages at every layer. */
    assert_true(en > 0.85 && ar > 0.85);
    assert_true(ci_at(sc_json_get(L, "probe"), "en", "ci", 0) > 0.5);
    if (l < 3) { /* shared direction */
      assert_true(cosv > 0.8);
      assert_true(ci_at(L, "direction", "cosine_ci", 0) > 0.6);
      assert_true(q < 0.05);
      assert_true(e2a > 0.85 && a2e > 0.85);
    } else { /* diverged */
      assert_true(fabs(cosv) < 0.3);
      assert_true(q > 0.05);
      assert_true(e2a < 0.7 && a2e < 0.7);
      assert_true(get_num(L, "probe", "transfer_gap", NULL) > 0.2);
    }
  }
  sc_json *dv = sc_json_get(seg, "divergence");
  for (int m = 0; m < 2; m++) {
    sc_json *o = sc_json_get(dv, m ? "probe_transfer" : "direction_cosine");
    assert_string_equal(sc_json_str(sc_json_get(o, "status")), "ok");
    assert_int_equal((int)sc_json_num(sc_json_get(o, "layer")), 3);
    assert_int_equal((int)sc_json_num(sc_json_get(o, "from_layer")), 2);
    assert_int_equal((int)num_at(sc_json_get(o, "layer_ci"), 0), 3);
    assert_int_equal((int)num_at(sc_json_get(o, "layer_ci"), 1), 3);
    assert_true(sc_json_num(sc_json_get(o, "layer_support")) > 0.95);
    assert_true(num_at(sc_json_get(o, "drop_ci"), 0) > 0.2);
  }
  /* Model layer numbers that are not 0..5: the divergence names them. */
  {
    planted q = p;
    for (int l = 0; l < NL; l++) q.layers[l] = 2 + 3 * l;
    an_crossling_input iq = input_of(&q, NL);
    sc_json *sq;
    assert_int_equal(an_crossling_run(&iq, &cfg, 17, &sq), 0);
    sc_json *o = sc_json_get(sc_json_get(sq, "divergence"), "direction_cosine");
    assert_int_equal((int)sc_json_num(sc_json_get(o, "layer")), 11);
    assert_int_equal((int)sc_json_num(sc_json_get(o, "from_layer")), 8);
    assert_int_equal((int)num_at(sc_json_get(o, "layer_ci"), 1), 11);
    assert_int_equal((int)sc_json_num(sc_json_get(layer_at(sq, 5), "layer")), 17);
    sc_json_free(sq);
  }
  /* No NaN (cJSON prints it as null) and byte-identical on a rerun. */
  char *t1 = sc_json_print(seg, 0);
  assert_null(strstr(t1, ":null"));
  sc_json *seg2;
  assert_int_equal(an_crossling_run(&in, &cfg, 17, &seg2), 0);
  char *t2 = sc_json_print(seg2, 0);
  assert_string_equal(t1, t2);
  free(t1);
  free(t2);
  sc_json_free(seg2);

  /* Per-layer norms, cosine and CKA against numpy (male/female rows only). */
  sc_json *ref_in = sc_json_new_object(), *ls = sc_json_new_array();
  int y01[MAXN];
  uint64_t gsel[MAXN];
  size_t m = 0;
  static float en_sel[MAXN * D], ar_sel[MAXN * D];
  for (int l = 0; l < NL; l++) {
    m = 0;
    for (size_t s = 0; s < p.n; s++) {
      if (p.labels[s] == SC_LABEL_NEUTRAL) continue;
      y01[m] = p.labels[s] == SC_LABEL_FEMALE;
      gsel[m] = p.groups[s];
      memcpy(en_sel + m * D, p.en[l] + s * D, D * sizeof(float));
      memcpy(ar_sel + m * D, p.ar[l] + s * D, D * sizeof(float));
      m++;
    }
    sc_json *o = sc_json_new_object();
    sc_json_add(o, "en", mat_f(en_sel, m, D));
    sc_json_add(o, "ar", mat_f(ar_sel, m, D));
    sc_json_add(ls, NULL, o);
  }
  sc_json_add(ref_in, "layers", ls);
  sc_json_add(ref_in, "y", arr_i(y01, m));
  sc_json_add(ref_in, "groups", arr_u(gsel, m));
  sc_json_add_num(ref_in, "seed", 17);
  sc_json_add_num(ref_in, "n_boot", (double)cfg.bootstrap);
  sc_json_add_num(ref_in, "ci", cfg.ci);
  sc_json *ref = run_ref("xl", ref_in);
  for (int l = 0; l < NL; l++) {
    sc_json *L = layer_at(seg, l), *R = sc_json_at(sc_json_get(ref, "layers"), l);
    near(get_num(L, "direction", "en_norm", NULL), sc_json_num(sc_json_get(R, "en_norm")), 1e-9, "en_norm");
    near(get_num(L, "direction", "ar_norm", NULL), sc_json_num(sc_json_get(R, "ar_norm")), 1e-9, "ar_norm");
    near(get_num(L, "direction", "cosine", NULL), sc_json_num(sc_json_get(R, "cosine")), 1e-9, "cosine");
    near(get_num(L, "cka", "value", NULL), sc_json_num(sc_json_get(R, "cka")), 1e-4, "cka");
    /* Same image resamples as the reference (f32 GEMM inside: 1e-5). */
    near(ci_at(L, "direction", "cosine_ci", 0), num_at(sc_json_get(R, "cosine_ci"), 0), 1e-5, "cos ci lo");
    near(ci_at(L, "direction", "cosine_ci", 1), num_at(sc_json_get(R, "cosine_ci"), 1), 1e-5, "cos ci hi");
    assert_int_equal((int)get_num(L, "direction", "bootstrap_valid", NULL),
                     (int)sc_json_num(sc_json_get(R, "bootstrap_valid")));
  }
  sc_json_free(ref);
  sc_json_free(seg);
  free_planted(&p);
}

static void test_shuffled_control(void **state) {
  (void)state;
  planted p;
  make_planted(&p, 2024, 1);
  sc_config_analyze cfg = test_cfg();
  /* "Nothing significant" over 6 layers x 4 probes: Bonferroni-level CIs. */
  cfg.ci = 1 - 0.05 / 24;
  cfg.bootstrap = 2000;
  an_crossling_input in = input_of(&p, NL);
  sc_json *seg;
  assert_int_equal(an_crossling_run(&in, &cfg, 17, &seg), 0);
  for (int l = 0; l < NL; l++) {
    sc_json *L = layer_at(seg, l), *P = sc_json_get(L, "probe");
    double q = get_num(L, "direction", "perm_q", NULL);
    print_message("control layer %d: cos %.3f q %.3f en %.3f [%.3f %.3f] en>ar %.3f\n", l,
                  get_num(L, "direction", "cosine", NULL), q, get_num(L, "probe", "en", "acc"),
                  ci_at(P, "en", "ci", 0), ci_at(P, "en", "ci", 1), get_num(L, "probe", "en_to_ar", "acc"));
    assert_true(q > 0.05);
    /* No probe is better than chance: every accuracy CI reaches down to 0.5. */
    static const char *keys[4] = {"en", "ar", "en_to_ar", "ar_to_en"};
    for (int k = 0; k < 4; k++) assert_true(ci_at(P, keys[k], "ci", 0) <= 0.5);
  }
  sc_json *dv = sc_json_get(sc_json_get(seg, "divergence"), "direction_cosine");
  print_message("control divergence: layer %d support %.3f drop %.3f [%.3f %.3f]\n",
                (int)sc_json_num(sc_json_get(dv, "layer")), sc_json_num(sc_json_get(dv, "layer_support")),
                sc_json_num(sc_json_get(dv, "drop")), num_at(sc_json_get(dv, "drop_ci"), 0),
                num_at(sc_json_get(dv, "drop_ci"), 1));
  /* No reliable divergence either: the drop's CI reaches 0 and the layer is unstable. */
  assert_true(num_at(sc_json_get(dv, "drop_ci"), 0) <= 0);
  assert_true(sc_json_num(sc_json_get(dv, "layer_support")) < 0.8);
  sc_json_free(seg);
  free_planted(&p);
}

static void test_skips(void **state) {
  (void)state;
  planted p;
  make_planted(&p, 5, 0);
  sc_config_analyze cfg = test_cfg();
  /* Too few of a label: a documented skip, not an error. */
  cfg.min_per_label = 1000;
  an_crossling_input in = input_of(&p, NL);
  sc_json *seg;
  assert_int_equal(an_crossling_run(&in, &cfg, 1, &seg), 0);
  assert_string_equal(sc_json_str(sc_json_get(seg, "status")), "skipped");
  assert_non_null(strstr(sc_json_str(sc_json_get(seg, "skip_reason")), "too_few_samples"));
  assert_int_equal(sc_json_size(sc_json_get(seg, "layers")), 0);
  assert_string_equal(
      sc_json_str(sc_json_get(sc_json_get(sc_json_get(seg, "divergence"), "direction_cosine"), "status")),
      "skipped");
  sc_json_free(seg);
  /* One layer: no divergence; more folds than images: probes skipped. */
  cfg = test_cfg();
  cfg.folds = 100;
  in = input_of(&p, 1);
  planted small = p;
  in.n = 40; /* about 27 images */
  (void)small;
  assert_int_equal(an_crossling_run(&in, &cfg, 1, &seg), 0);
  assert_string_equal(sc_json_str(sc_json_get(seg, "status")), "ok");
  sc_json *L = layer_at(seg, 0);
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(L, "probe"), "status")), "skipped");
  sc_json *dv = sc_json_get(seg, "divergence");
  assert_non_null(strstr(sc_json_str(sc_json_get(sc_json_get(dv, "direction_cosine"), "skip_reason")),
                         "too_few_layers"));
  assert_non_null(strstr(sc_json_str(sc_json_get(sc_json_get(dv, "probe_transfer"), "skip_reason")),
                         "too_few"));
  char *t = sc_json_print(seg, 0);
  assert_null(strstr(t, ":null"));
  free(t);
  sc_json_free(seg);
  /* A NaN activation is an error naming layer, language and row. */
  cfg = test_cfg();
  in = input_of(&p, NL);
  p.ar[4][7 * D + 3] = NAN;
  assert_int_equal(an_crossling_run(&in, &cfg, 1, &seg), SC_ERR_ARG);
  assert_null(seg);
  assert_non_null(strstr(sc_error_get(), "layer 4 ar row 7 column 3"));
  /* Missing matrices. */
  p.ar[4][7 * D + 3] = 0;
  float *keep = p.en[2];
  p.en[2] = NULL;
  assert_int_equal(an_crossling_run(&in, &cfg, 1, &seg), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "layer 2 has no en activations"));
  p.en[2] = keep;
  free_planted(&p);
}

static void test_root(void **state) {
  (void)state;
  sc_config_analyze cfg = test_cfg();
  sc_json *root, *a = sc_json_new_object(), *b = sc_json_new_object();
  assert_int_equal(an_crossling_root(&cfg, 42, &root), 0);
  assert_int_equal(an_crossling_add_segment(root, "caption", a), 0);
  assert_int_equal(an_crossling_add_segment(root, "image", b), 0);
  assert_string_equal(sc_json_str(sc_json_get(root, "schema")), "saecap.cross_lingual_analysis/1");
  assert_string_equal(sc_json_str(sc_json_get(root, "primary_segment")), "caption");
  assert_string_equal(sc_json_str(sc_json_get(root, "seed")), "42");
  assert_int_equal(sc_json_size(sc_json_get(root, "segments")), 2);
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_get(root, "config"), "folds")), 5);
  sc_json_free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_planted),
      cmocka_unit_test(test_shuffled_control),
      cmocka_unit_test(test_skips),
      cmocka_unit_test(test_root),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
