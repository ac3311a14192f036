/* test_features.c: RQ2 (analysis/features.h) on in-memory per-sample SAE
 * features: statistics vs the scipy reference (tests/reference/
 * features_reference.py), planted language-specific features found with at
 * most the FDR level of false ones, a label-shuffled control, the top-k
 * overlap permutation null, skips, cards and the ranking contract. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/features.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/json.h"
#include "pipeline/prepare.h"
#include "tu.h"

/* ==== synthetic data ==== */

#define NL 2

typedef struct synth {
  int64_t n, nf;
  int *labels;
  uint64_t *groups;
  double *x[NL]; /* dense (n, nf) per-sample mean activations */
  uint8_t *use[NL];
  an_sae_pooled f[NL];
} synth;

/* planted[l][j]: 1 when feature j is more active on female samples in language l */
static void synth_make(synth *s, int64_t n, int64_t nf, const uint8_t *planted[NL], uint64_t seed, double base_rate) {
  memset(s, 0, sizeof *s);
  s->n = n, s->nf = nf;
  s->labels = malloc((size_t)n * sizeof *s->labels);
  s->groups = malloc((size_t)n * sizeof *s->groups);
  sc_rng r;
  sc_rng_seed(&r, seed);
  for (int64_t i = 0; i < n; i++) {
    s->labels[i] = i % 2 ? SC_LABEL_FEMALE : SC_LABEL_MALE;
    s->groups[i] = 1000 + (uint64_t)i;
  }
  for (int l = 0; l < NL; l++) {
    s->x[l] = calloc((size_t)(n * nf), sizeof(double));
    s->use[l] = malloc((size_t)n);
    memset(s->use[l], 1, (size_t)n);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < nf; j++) {
        int sig = planted && planted[l] && planted[l][j] && s->labels[i] == SC_LABEL_FEMALE;
        double pr = sig ? 0.85 : base_rate;
        double u = sc_rng_uniform(&r), e = -log(1.0 - sc_rng_uniform(&r));
        if (u < pr) s->x[l][i * nf + j] = (sig ? 2.0 : 0.3) + e;
      }
  }
}

/* CSR from the dense matrix: max = 1.5·mean, position 10 + j % 7, token 100 + j. */
static void synth_pool(synth *s) {
  for (int l = 0; l < NL; l++) {
    an_sae_pooled *p = &s->f[l];
    an_sae_pooled_free(p);
    p->n = s->n, p->n_features = s->nf;
    int64_t nnz = 0;
    for (int64_t k = 0; k < s->n * s->nf; k++) nnz += s->x[l][k] > 0;
    p->row_ptr = calloc((size_t)s->n + 1, sizeof *p->row_ptr);
    p->feature = malloc((size_t)(nnz + 1) * sizeof *p->feature);
    p->mean = malloc((size_t)(nnz + 1) * sizeof *p->mean);
    p->max = malloc((size_t)(nnz + 1) * sizeof *p->max);
    p->max_pos = malloc((size_t)(nnz + 1) * sizeof *p->max_pos);
    p->max_token = malloc((size_t)(nnz + 1) * sizeof *p->max_token);
    p->count = malloc((size_t)s->n * sizeof *p->count);
    p->first_pos = malloc((size_t)s->n * sizeof *p->first_pos);
    for (int64_t i = 0; i < s->n; i++) {
      for (int64_t j = 0; j < s->nf; j++) {
        double v = (double)(float)s->x[l][i * s->nf + j];
        if (!(v > 0)) continue;
        int64_t e = p->nnz++;
        p->feature[e] = (int32_t)j;
        p->mean[e] = (float)v;
        p->max[e] = (float)(1.5 * v);
        p->max_pos[e] = (int32_t)(10 + j % 7);
        p->max_token[e] = (int32_t)(100 + j);
      }
      p->row_ptr[i + 1] = p->nnz;
      p->count[i] = 5;
      p->first_pos[i] = 10;
    }
    /* the statistics see float means: keep the dense copy equal */
    for (int64_t k = 0; k < s->n * s->nf; k++) s->x[l][k] = (double)(float)s->x[l][k];
  }
}

static void synth_free(synth *s) {
  free(s->labels), free(s->groups);
  for (int l = 0; l < NL; l++) free(s->x[l]), free(s->use[l]), an_sae_pooled_free(&s->f[l]);
}

static an_feat_opts opts(uint64_t top_k, uint64_t perms) {
  an_feat_opts o;
  memset(&o, 0, sizeof o);
  o.fdr = 0.05;
  o.top_k = top_k;
  o.permutations = perms;
  o.card_examples = 3;
  o.min_per_label = 5;
  o.seed = 42;
  return o;
}

static void inputs(synth *s, an_feat_lang_in in[NL]) {
  in[0] = (an_feat_lang_in){"en", &s->f[0], s->use[0]};
  in[1] = (an_feat_lang_in){"ar", &s->f[1], s->use[1]};
}

/* ==== vs the scipy reference ==== */

static void json_doubles(FILE *fp, const double *x, int64_t n) {
  fputc('[', fp);
  for (int64_t i = 0; i < n; i++) fprintf(fp, "%s%.17g", i ? "," : "", x[i]);
  fputc(']', fp);
}

static double jnum(const sc_json *o, const char *key, int64_t j) {
  return sc_json_num(sc_json_at(sc_json_get(o, key), (int)j));
}

static void near(const char *what, int64_t j, double got, double want, double tol) {
  if (fabs(got - want) > tol * (1 + fabs(want)))
    fail_msg("%s[%lld]: got %.17g, want %.17g", what, (long long)j, got, want);
}

static void test_vs_reference(void **state) {
  (void)state;
  const int64_t n = 40, nf = 14;
  uint8_t pe[14] = {0}, pa[14] = {0};
  pe[2] = 1, pa[5] = 1, pe[8] = pa[8] = 1;
  const uint8_t *planted[NL] = {pe, pa};
  synth s;
  synth_make(&s, n, nf, planted, 7, 0.3);
  /* untested features: 11 never fires; 12 fires only on unused samples */
  for (int l = 0; l < NL; l++)
    for (int64_t i = 0; i < n; i++) s.x[l][i * nf + 11] = 0, s.x[l][i * nf + 12] = 0;
  s.labels[3] = SC_LABEL_NEUTRAL, s.labels[6] = SC_LABEL_UNKNOWN;
  s.x[0][3 * nf + 12] = 1.0;
  s.use[1][9] = 0, s.use[0][14] = 0;
  s.x[1][9 * nf + 12] = 2.0;
  synth_pool(&s);
  char *dir = tu_tmpdir("features_ref"), *in_path = tu_join(dir, "in.json"), *out_path = tu_join(dir, "out.json");
  FILE *fp = fopen(in_path, "w");
  assert_non_null(fp);
  fprintf(fp, "{\"n\":%lld,\"n_features\":%lld,\"top_k\":5,\"labels\":[", (long long)n, (long long)nf);
  for (int64_t i = 0; i < n; i++)
    fprintf(fp, "%s%d", i ? "," : "", s.labels[i] == SC_LABEL_MALE ? 0 : s.labels[i] == SC_LABEL_FEMALE ? 1 : 2);
  fprintf(fp, "],\"langs\":[");
  for (int l = 0; l < NL; l++) {
    fprintf(fp, "%s{\"name\":\"%s\",\"use\":[", l ? "," : "", l ? "ar" : "en");
    for (int64_t i = 0; i < n; i++) fprintf(fp, "%s%d", i ? "," : "", s.use[l][i]);
    fprintf(fp, "],\"x\":[");
    for (int64_t i = 0; i < n; i++) {
      if (i) fputc(',', fp);
      json_doubles(fp, s.x[l] + i * nf, nf);
    }
    fprintf(fp, "]}");
  }
  fprintf(fp, "]}\n");
  fclose(fp);
  char *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 %s/tests/reference/features_reference.py %s %s", tu_src(), in_path,
                  out_path);
  if (st) fail_msg("features_reference.py failed: %s", err ? err : "");
  free(err);
  sc_json *ref = NULL;
  assert_int_equal(sc_json_load(out_path, 1 << 24, &ref), 0);

  an_feat_lang_in in[NL];
  inputs(&s, in);
  an_feat_opts o = opts(5, 0);
  an_feat_result r;
  assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, n, &o, &r), 0);
  for (int l = 0; l < NL; l++) {
    const an_feat_lang *L = &r.lang[l];
    const sc_json *R = sc_json_get(ref, l ? "ar" : "en");
    assert_non_null(R);
    assert_int_equal(L->skipped, 0);
    for (int64_t j = 0; j < nf; j++) {
      near("rate", j, L->rate[j], jnum(R, "rate", j), 1e-12);
      near("rate_male", j, L->rate_male[j], jnum(R, "rate_male", j), 1e-12);
      near("rate_female", j, L->rate_female[j], jnum(R, "rate_female", j), 1e-12);
      near("mean_male", j, L->mean_male[j], jnum(R, "mean_male", j), 1e-9);
      near("mean_female", j, L->mean_female[j], jnum(R, "mean_female", j), 1e-9);
      near("d", j, L->d[j], jnum(R, "d", j), 1e-9);
      near("p", j, L->p[j], jnum(R, "p", j), 1e-7);
      near("q", j, L->q[j], jnum(R, "q", j), 1e-7);
      int t;
      assert_int_equal(sc_json_bool(sc_json_at(sc_json_get(R, "tested"), (int)j), &t), 0);
      assert_int_equal(L->tested[j], t);
    }
    assert_false(L->tested[11]);
    assert_false(L->tested[12]); /* fired only on unused samples */
    const sc_json *rk = sc_json_get(R, "ranking");
    assert_int_equal(L->n_ranking, sc_json_size(rk));
    for (int64_t k = 0; k < L->n_ranking; k++)
      assert_int_equal(L->ranking[k], (int)sc_json_num(sc_json_at(rk, (int)k)));
  }
  sc_json_free(ref);
  an_feat_result_free(&r);
  synth_free(&s);
  free(dir), free(in_path), free(out_path);
}

/* ==== planted signal and the shuffled control ==== */

#define PN 160
#define PF 150

static const int en_only[] = {3, 17, 40, 80, 120};
static const int ar_only[] = {5, 22, 60, 99, 140};
static const int both[] = {9, 30, 70};

static void plant(uint8_t pe[PF], uint8_t pa[PF]) {
  memset(pe, 0, PF), memset(pa, 0, PF);
  for (size_t i = 0; i < sizeof en_only / sizeof *en_only; i++) pe[en_only[i]] = 1;
  for (size_t i = 0; i < sizeof ar_only / sizeof *ar_only; i++) pa[ar_only[i]] = 1;
  for (size_t i = 0; i < sizeof both / sizeof *both; i++) pe[both[i]] = pa[both[i]] = 1;
}

static void test_planted(void **state) {
  (void)state;
  uint8_t pe[PF], pa[PF];
  plant(pe, pa);
  const uint8_t *planted[NL] = {pe, pa};
  int64_t disc = 0, false_disc = 0;
  for (uint64_t rep = 0; rep < 10; rep++) {
    synth s;
    synth_make(&s, PN, PF, planted, 100 + rep, 0.25);
    synth_pool(&s);
    an_feat_lang_in in[NL];
    inputs(&s, in);
    an_feat_opts o = opts(8, 0);
    an_feat_result r;
    assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, PN, &o, &r), 0);
    assert_int_equal(r.cross, 1);
    for (int64_t j = 0; j < PF; j++) {
      int se = r.lang[0].q[j] <= o.fdr, sa = r.lang[1].q[j] <= o.fdr;
      /* every planted feature is found where it was planted; a planted
       * feature that is also significant in the other language is a false
       * discovery there and counted below */
      if (pe[j] && !se) fail_msg("rep %llu: EN feature %lld not found", (unsigned long long)rep, (long long)j);
      if (pa[j] && !sa) fail_msg("rep %llu: AR feature %lld not found", (unsigned long long)rep, (long long)j);
      if (pe[j] && r.lang[0].d[j] <= 0)
        fail_msg("feature %lld: d %g is not positive (female)", (long long)j, r.lang[0].d[j]);
      disc += se + sa;
      false_disc += (se && !pe[j]) + (sa && !pa[j]);
    }
    assert_int_equal(r.n_en_only + r.n_ar_only + r.n_both >= 13, 1);
    an_feat_result_free(&r);
    synth_free(&s);
  }
  double fdp = (double)false_disc / (double)disc;
  print_message("planted: %lld discoveries, %lld false (%.3f)\n", (long long)disc, (long long)false_disc, fdp);
  assert_true(fdp <= 0.05 + 0.03);
}

static void test_shuffled_control(void **state) {
  (void)state;
  uint8_t pe[PF], pa[PF];
  plant(pe, pa);
  const uint8_t *planted[NL] = {pe, pa};
  int reps_with_discovery = 0;
  for (uint64_t rep = 0; rep < 10; rep++) {
    synth s;
    synth_make(&s, PN, PF, planted, 200 + rep, 0.25);
    synth_pool(&s);
    /* shuffle the labels the statistics see: the planted structure follows
     * the original labels, so no feature carries the new ones */
    sc_rng rng;
    sc_rng_seed(&rng, 900 + rep);
    sc_rng_shuffle(&rng, s.labels, (uint64_t)PN, sizeof *s.labels);
    an_feat_lang_in in[NL];
    inputs(&s, in);
    an_feat_opts o = opts(8, 0);
    an_feat_result r;
    assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, PN, &o, &r), 0);
    reps_with_discovery += r.n_en_only + r.n_ar_only + r.n_both > 0;
    an_feat_result_free(&r);
    synth_free(&s);
  }
  print_message("shuffled: %d of 10 replicates with any discovery\n", reps_with_discovery);
  /* BH under the complete null: P(any discovery) <= 0.05 per replicate */
  assert_true(reps_with_discovery <= 2);
}

/* ==== the top-k overlap null ==== */

static void overlap_case(int shared, double *p, int64_t *overlap, double *null_mean) {
  uint8_t pe[PF] = {0}, pa[PF] = {0};
  for (int j = 0; j < 8; j++) {
    pe[10 + j] = 1;
    pa[(shared ? 10 : 60) + j] = 1;
  }
  const uint8_t *planted[NL] = {pe, pa};
  synth s;
  synth_make(&s, PN, PF, planted, 5, 0.25);
  synth_pool(&s);
  an_feat_lang_in in[NL];
  inputs(&s, in);
  an_feat_opts o = opts(8, 99);
  an_feat_result r;
  assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, PN, &o, &r), 0);
  assert_int_equal(r.k, 8);
  assert_int_equal(r.n_perm, 99);
  *p = r.p_overlap, *overlap = r.overlap, *null_mean = r.null_mean;
  assert_true(r.null_lo <= r.null_mean && r.null_mean <= r.null_hi);
  assert_true(fabs(r.jaccard - (double)r.overlap / (16.0 - (double)r.overlap)) < 1e-12);
  an_feat_result_free(&r);
  synth_free(&s);
}

static void test_overlap_null(void **state) {
  (void)state;
  double p, m;
  int64_t ov;
  overlap_case(1, &p, &ov, &m);
  assert_int_equal(ov, 8);
  assert_true(p <= 0.02); /* nothing in 99 label permutations reaches 8 */
  assert_true(m < 2);
  overlap_case(0, &p, &ov, &m);
  assert_true(ov <= 1);
  assert_true(p > 0.2);
}

/* ==== skips, JSON, cards, determinism ==== */

static void test_skip_too_few(void **state) {
  (void)state;
  synth s;
  synth_make(&s, 30, 10, NULL, 3, 0.4);
  for (int64_t i = 0; i < 30; i++)
    if (s.labels[i] == SC_LABEL_FEMALE && i > 8) s.use[1][i] = 0; /* AR keeps 4 female */
  synth_pool(&s);
  an_feat_lang_in in[NL];
  inputs(&s, in);
  an_feat_opts o = opts(5, 10);
  an_feat_result r;
  assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, 30, &o, &r), 0);
  assert_int_equal(r.lang[0].skipped, 0);
  assert_int_equal(r.lang[1].skipped, 1);
  assert_int_equal(r.cross, 0);
  sc_json *langs, *cross;
  assert_int_equal(an_features_json(&r, in, s.labels, &o, &langs, &cross), 0);
  char *a = sc_json_print(langs, 0), *b = sc_json_print(cross, 0);
  assert_null(strstr(a, "nan"));
  assert_null(strstr(a, "inf"));
  assert_non_null(strstr(a, "\"ar\":{\"status\":\"skipped\",\"skip_reason\":\"15 male and 4 female samples"));
  assert_non_null(strstr(b, "\"status\":\"skipped\""));
  free(a), free(b);
  sc_json_free(langs), sc_json_free(cross);
  an_feat_result_free(&r);
  synth_free(&s);
}

static void test_json_contract_and_cards(void **state) {
  (void)state;
  uint8_t pe[PF], pa[PF];
  plant(pe, pa);
  const uint8_t *planted[NL] = {pe, pa};
  synth s;
  synth_make(&s, PN, PF, planted, 11, 0.25);
  synth_pool(&s);
  an_feat_lang_in in[NL];
  inputs(&s, in);
  an_feat_opts o = opts(6, 20);
  an_feat_result r;
  assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, PN, &o, &r), 0);
  sc_json *langs, *cross;
  assert_int_equal(an_features_json(&r, in, s.labels, &o, &langs, &cross), 0);
  for (int l = 0; l < NL; l++) {
    const sc_json *L = sc_json_get(langs, l ? "ar" : "en");
    const sc_json *rk = sc_json_get(L, "ranking");
    int64_t fired = 0;
    for (int64_t j = 0; j < PF; j++) fired += r.lang[l].tested[j];
    assert_int_equal(sc_json_size(rk), fired < 1000 ? fired : 1000);
    double prev = INFINITY;
    int prev_f = -1;
    for (int k = 0; k < sc_json_size(rk); k++) {
      const sc_json *e = sc_json_at(rk, k);
      /* exactly the contract's keys, in this order */
      assert_int_equal(sc_json_size(e), 4);
      assert_string_equal(sc_json_key(sc_json_at(e, 0)), "feature");
      assert_string_equal(sc_json_key(sc_json_at(e, 1)), "cohens_d");
      assert_string_equal(sc_json_key(sc_json_at(e, 2)), "q");
      assert_string_equal(sc_json_key(sc_json_at(e, 3)), "firing_rate");
      int f = (int)sc_json_num(sc_json_get(e, "feature"));
      double a = fabs(sc_json_num(sc_json_get(e, "cohens_d")));
      assert_true(a < prev || (a == prev && f > prev_f));
      assert_true(a <= prev);
      prev = a, prev_f = f;
      assert_true(sc_json_num(sc_json_get(e, "firing_rate")) > 0);
    }
    /* cards: top_k of them; examples by max activation, then sample */
    const sc_json *cards = sc_json_get(L, "cards");
    assert_int_equal(sc_json_size(cards), 6);
    for (int c = 0; c < 6; c++) {
      const sc_json *card = sc_json_at(cards, c);
      int f = (int)sc_json_num(sc_json_get(card, "feature"));
      assert_int_equal(f, r.lang[l].ranking[c]);
      const sc_json *ex = sc_json_get(card, "examples");
      assert_int_equal(sc_json_size(ex), 3);
      /* the reference: the 3 largest 1.5·x over all samples, ties by sample */
      int64_t best[3] = {-1, -1, -1};
      for (int t = 0; t < 3; t++) {
        float bv = 0;
        for (int64_t i = 0; i < PN; i++) {
          double v = s.x[l][i * PF + f];
          float m = (float)(1.5 * v);
          if (!(v > 0) || i == best[0] || i == best[1]) continue;
          if (best[t] < 0 || m > bv) best[t] = i, bv = m;
        }
      }
      for (int t = 0; t < 3; t++) {
        const sc_json *e = sc_json_at(ex, t);
        assert_int_equal((int64_t)sc_json_num(sc_json_get(e, "sample")), best[t]);
        assert_int_equal((int)sc_json_num(sc_json_get(e, "position")), 10 + f % 7);
        assert_int_equal((int)sc_json_num(sc_json_get(e, "token_id")), 100 + f);
      }
    }
  }
  const sc_json *ov = sc_json_get(cross, "top_k_overlap");
  assert_non_null(ov);
  assert_int_equal((int)sc_json_num(sc_json_get(ov, "k")), 6);
  assert_int_equal((int)sc_json_num(sc_json_get(ov, "permutations")), 20);
  const sc_json *sig = sc_json_get(cross, "significant");
  assert_non_null(sc_json_get(sig, "en_only"));
  assert_non_null(sc_json_get(sig, "ar_only"));
  assert_non_null(sc_json_get(sig, "both"));
  /* determinism: a second run prints the same bytes */
  an_feat_result r2;
  sc_json *langs2, *cross2;
  assert_int_equal(an_features_compute(in, NL, s.labels, s.groups, PN, &o, &r2), 0);
  assert_int_equal(an_features_json(&r2, in, s.labels, &o, &langs2, &cross2), 0);
  char *a = sc_json_print(langs, 0), *b = sc_json_print(langs2, 0), *c = sc_json_print(cross, 0),
       *d = sc_json_print(cross2, 0);
  assert_string_equal(a, b);
  assert_string_equal(c, d);
  free(a), free(b), free(c), free(d);
  sc_json_free(langs), sc_json_free(cross), sc_json_free(langs2), sc_json_free(cross2);
  an_feat_result_free(&r), an_feat_result_free(&r2);
  synth_free(&s);
}

static void test_bad_args(void **state) {
  (void)state;
  synth s;
  synth_make(&s, 20, 6, NULL, 1, 0.4);
  synth_pool(&s);
  an_feat_lang_in in[NL];
  inputs(&s, in);
  an_feat_opts o = opts(5, 0);
  an_feat_result r;
  assert_true(an_features_compute(in, NL, s.labels, s.groups, 21, &o, &r) < 0);
  assert_non_null(strstr(sc_error_get(), "do not hold 21 samples"));
  s.f[1].n_features = 7;
  assert_true(an_features_compute(in, NL, s.labels, s.groups, 20, &o, &r) < 0);
  assert_non_null(strstr(sc_error_get(), "different widths"));
  s.f[1].n_features = 6;
  synth_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vs_reference),     cmocka_unit_test(test_planted),
      cmocka_unit_test(test_shuffled_control), cmocka_unit_test(test_overlap_null),
      cmocka_unit_test(test_skip_too_few),     cmocka_unit_test(test_json_contract_and_cards),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
