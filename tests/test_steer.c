/* test_steer.c: SAE steering (analysis/steer.h, caption --steer-*) and the
 * steering experiment (pipeline/steer.h, `saecap steer`) on a 4-layer
 * `saecap tiny-model`, checked against tests/reference/steer_reference.py
 * (numpy, built on g3_reference.py; written from the issue and
 * research/sae_anchors.md §3, not from src/):
 *  - scale:1 at every feature gives byte-identical captions to no edit
 *    (ReLU, JumpReLU and TopK SAEs, one and two layers);
 *  - ablating every feature leaves the error term (x − x̂ + b_dec) at the
 *    SAE's layer, and every later residual and the logits follow the
 *    reference forward with that edit (JumpReLU and TopK);
 *  - scale at layer 1 + clamp at layer 2, and add:C, match the reference;
 *    the order of the options does not matter (layer order composes);
 *  - chrF, KL and log-probabilities match the reference's fixed cases, and
 *    the stage's teacher-forced kl / delta_loglik of a caption match the
 *    numpy forward along the baseline caption with the same edit;
 *  - planted model: feature 0 of the layer-3 SAE carries the direction that
 *    makes " man" the argmax; the experiment's targeted condition removes
 *    " man" from the captions, the random controls and the other language's
 *    features do not; a rerun skips everything, and a deleted condition is
 *    recomputed to the same bytes;
 *  - bad input: one-line errors, no output left behind. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/steer.h"
#include "analysis/textmetrics.h"
#include "io/json.h"
#include "tu.h"

#define N_LAT 48
#define MAN_ID 880 /* "▁man" in the Gemma 3 tokenizer */

typedef struct fixture {
  char *root, *model, *image, *ref, *s_relu1, *s_jump2, *s_topk1, *ids;
} fixture;

static fixture F;

static char all_features[512];

static void py(const char *fmt_args) {
  char *err = NULL;
  int rc = tu_run(NULL, &err, "/usr/bin/python3 '%s' %s", F.ref, fmt_args);
  if (rc) fprintf(stderr, "steer_reference.py %s: %s\n", fmt_args, err);
  assert_int_equal(rc, 0);
  free(err);
}

static char *make_sae(const char *name, const char *args) {
  char *dir = tu_join(F.root, name), cmd[1024];
  snprintf(cmd, sizeof cmd, "make-sae '%s' %s", dir, args);
  py(cmd);
  return dir;
}

/* caption --json with extra options; returns stdout (asserts success). */
static char *caption(const char *extra) {
  char *out = NULL, *err = NULL;
  int rc = tu_run(&out, &err, "'%s' -q caption --model '%s' --image '%s' --max-new-tokens 6 --json %s", tu_bin(),
                  F.model, F.image, extra);
  if (rc) fprintf(stderr, "caption %s: %s\n", extra, err);
  assert_int_equal(rc, 0);
  free(err);
  return out;
}

static int setup(void **state) {
  (void)state;
  F.root = tu_tmpdir("steer");
  F.model = tu_join(F.root, "model");
  F.image = tu_src_path("data/demo/images/img_000.png");
  F.ref = tu_src_path("tests/reference/steer_reference.py");
  tu_tiny_model(F.model, "--seed 3");
  F.s_relu1 = make_sae("relu1", "--d 64 --n 48 --layer 1 --arch relu --seed 1");
  F.s_jump2 = make_sae("jump2", "--d 64 --n 48 --layer 2 --arch jumprelu --seed 2");
  F.s_topk1 = make_sae("topk1", "--d 64 --n 48 --layer 1 --arch topk --k 6 --seed 3");
  size_t at = 0;
  for (int i = 0; i < N_LAT; i++) at += (size_t)snprintf(all_features + at, sizeof all_features - at, i ? ",%d" : "%d", i);
  /* The prompt ids, for the reference forward. */
  char *j = caption(""), ids[4096];
  sc_json *o = NULL;
  assert_int_equal(sc_json_parse(j, strlen(j), "caption", &o), 0);
  const sc_json *p = sc_json_get(o, "prompt_ids");
  at = 0;
  for (int i = 0; i < sc_json_size(p); i++)
    at += (size_t)snprintf(ids + at, sizeof ids - at, i ? " %d" : "%d", (int)sc_json_num(sc_json_at(p, i)));
  F.ids = strdup(ids);
  sc_json_free(o);
  free(j);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(F.root), free(F.model), free(F.image), free(F.ref), free(F.s_relu1), free(F.s_jump2), free(F.s_topk1);
  free(F.ids);
  return 0;
}

/* ==== scale:1 == no edit ==== */

static void test_scale_one_is_identity(void **state) {
  (void)state;
  char *base = caption(""), opt[2048];
  const char *saes[] = {F.s_relu1, F.s_jump2, F.s_topk1};
  for (int i = 0; i < 3; i++) {
    snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features %s --steer-mode scale:1", saes[i], all_features);
    char *s = caption(opt);
    assert_string_equal(base, s);
    free(s);
  }
  snprintf(opt, sizeof opt,
           "--steer-sae '%s' --steer-features %s --steer-sae '%s' --steer-features 0,5,9 --steer-mode scale:1",
           F.s_topk1, all_features, F.s_jump2);
  char *s = caption(opt);
  assert_string_equal(base, s);
  free(s);
  /* The edit is live: ablating everything changes the caption's forward. */
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features %s", F.s_jump2, all_features);
  s = caption(opt);
  assert_string_not_equal(base, s);
  free(s);
  free(base);
}

/* ==== Against the numpy reference ==== */

/* caption --dump with the steering options, then the reference check. */
static void check_dump(const char *name, const char *steer_opts, const char *edits_json) {
  char *dump = tu_join(F.root, name), *edits = tu_join(F.root, "edits.json"), cmd[4096];
  snprintf(cmd, sizeof cmd, "--dump '%s' %s", dump, steer_opts);
  free(caption(cmd));
  tu_write_str(edits, edits_json);
  snprintf(cmd, sizeof cmd, "check-dump --model '%s' --dump '%s' --ids '%s' --edits '%s' --rtol 1e-4", F.model, dump,
           F.ids, edits);
  py(cmd);
  free(dump), free(edits);
}

static void test_ablate_all_leaves_error_term(void **state) {
  (void)state;
  char opt[1024], js[1024];
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features %s", F.s_jump2, all_features);
  snprintf(js, sizeof js, "[{\"sae\": \"%s\", \"features\": \"all\", \"mode\": \"ablate\"}]", F.s_jump2);
  check_dump("ablate_jump.safetensors", opt, js);
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features %s --steer-mode ablate", F.s_topk1, all_features);
  snprintf(js, sizeof js, "[{\"sae\": \"%s\", \"features\": \"all\", \"mode\": \"ablate\"}]", F.s_topk1);
  check_dump("ablate_topk.safetensors", opt, js);
}

static void test_layers_compose(void **state) {
  (void)state;
  char opt[1024], js[1024];
  snprintf(opt, sizeof opt,
           "--steer-sae '%s' --steer-features 1,5,7,20 --steer-mode scale:0.5 "
           "--steer-sae '%s' --steer-features 3,4,40 --steer-mode clamp:2.5",
           F.s_relu1, F.s_jump2);
  snprintf(js, sizeof js,
           "[{\"sae\": \"%s\", \"features\": [1,5,7,20], \"mode\": \"scale\", \"value\": 0.5},"
           " {\"sae\": \"%s\", \"features\": [3,4,40], \"mode\": \"clamp\", \"value\": 2.5}]",
           F.s_relu1, F.s_jump2);
  check_dump("compose.safetensors", opt, js);
  /* The later layer given first: the same forward. */
  snprintf(opt, sizeof opt,
           "--dump '%s/compose_swapped.safetensors' --steer-sae '%s' --steer-features 3,4,40 --steer-mode clamp:2.5 "
           "--steer-sae '%s' --steer-features 1,5,7,20 --steer-mode scale:0.5",
           F.root, F.s_jump2, F.s_relu1);
  free(caption(opt));
  char *a = tu_join(F.root, "compose.safetensors"), *b = tu_join(F.root, "compose_swapped.safetensors");
  assert_int_equal(tu_run(NULL, NULL, "cmp -s '%s' '%s'", a, b), 0);
  free(a), free(b);
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 2,9 --steer-mode add:1.5", F.s_jump2);
  snprintf(js, sizeof js, "[{\"sae\": \"%s\", \"features\": [2,9], \"mode\": \"add\", \"value\": 1.5}]", F.s_jump2);
  check_dump("add.safetensors", opt, js);
}

/* ==== Metrics ==== */

static void test_metrics_match_reference(void **state) {
  (void)state;
  char *path = tu_join(F.root, "metrics.json"), cmd[1024];
  snprintf(cmd, sizeof cmd, "metrics '%s' --seed 5", path);
  py(cmd);
  sc_json *j = NULL;
  assert_int_equal(sc_json_load(path, 1 << 24, &j), 0);
  const sc_json *cases = sc_json_get(j, "chrf");
  assert_true(sc_json_size(cases) >= 10);
  for (int i = 0; i < sc_json_size(cases); i++) {
    const sc_json *c = sc_json_at(cases, i);
    const char *h = sc_json_str(sc_json_get(c, "hyp")), *r = sc_json_str(sc_json_get(c, "ref"));
    double got = -1, want = sc_json_num(sc_json_get(c, "score"));
    assert_int_equal(an_chrf(h, strlen(h), r, strlen(r), &got), 0);
    if (fabs(got - want) > 1e-9) fprintf(stderr, "chrF('%s', '%s') = %.12g, reference %.12g\n", h, r, got, want);
    assert_true(fabs(got - want) <= 1e-9);
  }
  const sc_json *lg = sc_json_get(j, "logits");
  for (int i = 0; i < sc_json_size(lg); i++) {
    const sc_json *c = sc_json_at(lg, i), *p = sc_json_get(c, "p"), *q = sc_json_get(c, "q");
    int V = sc_json_size(p);
    float *pv = malloc((size_t)V * sizeof *pv), *qv = malloc((size_t)V * sizeof *qv);
    for (int v = 0; v < V; v++) pv[v] = (float)sc_json_num(sc_json_at(p, v)), qv[v] = (float)sc_json_num(sc_json_at(q, v));
    double kl = an_kl_logits(pv, qv, V), want = sc_json_num(sc_json_get(c, "kl"));
    assert_true(fabs(kl - want) <= 1e-9 * (1 + fabs(want)));
    double lp = an_logprob(pv, V, (int32_t)sc_json_num(sc_json_get(c, "id")));
    assert_true(fabs(lp - sc_json_num(sc_json_get(c, "logprob_p"))) <= 1e-9 * (1 + fabs(lp)));
    free(pv), free(qv);
  }
  sc_json_free(j);
  free(path);
}

/* ==== The planted experiment ==== */

typedef struct planted {
  char *dir, *cfg, *model;
} planted;

static void write_planted_inputs(planted *p) {
  p->dir = tu_join(F.root, "planted");
  p->model = tu_join(p->dir, "model");
  tu_tiny_model(p->model, "--seed 5");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "plant '%s' '%s/saes/layer_3' --token %d --layer 3 --n 16 --seed 7", p->model, p->dir, MAN_ID);
  py(cmd);
  assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s/data/processed' '%s/results'", p->dir, p->dir), 0);
  static const char *const imgs[] = {"img_000.png", "img_001.png", "img_002.jpg", "img_003.png"};
  char rows[4096];
  size_t at = 0;
  for (int i = 0; i < 4; i++) {
    char *img = tu_src_path("data/demo/images/"), line[1024];
    snprintf(line, sizeof line,
             "{\"sample_index\": %d, \"image_index\": %d, \"image_id\": \"img%d\", \"image_path\": \"%s%s\", "
             "\"split\": \"%s\", \"ground_truth_gender\": \"%s\", \"english_prompt\": \"\", \"arabic_prompt\": \"\"}\n",
             i, i, i, img, imgs[i], "test", i % 2 ? "female" : "male");
    at += (size_t)snprintf(rows + at, sizeof rows - at, "%s", line);
    free(img);
  }
  /* A train row the experiment must not caption. */
  snprintf(rows + at, sizeof rows - at,
           "{\"sample_index\": 9, \"image_index\": 9, \"image_id\": \"img9\", \"image_path\": \"nowhere.png\", "
           "\"split\": \"train\", \"ground_truth_gender\": \"male\", \"english_prompt\": \"\", \"arabic_prompt\": \"\"}\n");
  char *sp = tu_join(p->dir, "data/processed/samples.jsonl"), *fa = tu_join(p->dir, "results/feature_analysis.json");
  tu_write_str(sp, rows);
  tu_write_str(fa,
               "{\"schema\": \"saecap.feature_analysis/1\", \"layers\": [{\"layer\": 3, \"sae\": \"saes/layer_3\", "
               "\"d_sae\": 16, \"languages\": {\"en\": {\"ranking\": [{\"feature\": 0, \"cohens_d\": 2.0}]}, "
               "\"ar\": {\"ranking\": [{\"feature\": 5}, {\"feature\": 6}]}}}]}\n");
  p->cfg = tu_join(p->dir, "steer.yaml");
  char y[2048];
  snprintf(y, sizeof y,
           "output_dir: %s\nseed: 11\ndata:\n  captions_csv: none.csv\n  images_dir: .\nmodel:\n  path: %s\n"
           "steer:\n  languages: [en]\n  layers: [3]\n  k: [1]\n  random_controls: 3\n  split: test\n"
           "  max_new_tokens: 6\n  bootstrap: 200\n  permutations: 100\n",
           p->dir, p->model);
  tu_write_str(p->cfg, y);
  free(sp), free(fa);
}

static char *run_steer(const char *cfg, int *rc) {
  char *err = NULL;
  *rc = tu_run(NULL, &err, "'%s' -q steer --config '%s'", tu_bin(), cfg);
  return err;
}

static const sc_json *find_cond(const sc_json *res, const char *name) {
  const sc_json *c = sc_json_get(res, "conditions");
  for (int i = 0; i < sc_json_size(c); i++)
    if (!strcmp(sc_json_str(sc_json_get(sc_json_at(c, i), "name")), name)) return sc_json_at(c, i);
  fail_msg("condition %s missing", name);
  return NULL;
}

static double diff_of(const sc_json *res, const char *cond, const char *measure) {
  return sc_json_num(sc_json_get(sc_json_get(sc_json_get(find_cond(res, cond), "vs_baseline"), measure), "mean_diff"));
}

/* First line of a JSONL file, parsed. */
static sc_json *first_line(const char *path) {
  char *text = tu_read(path, NULL);
  assert_non_null(text);
  sc_json *j = NULL;
  assert_int_equal(sc_json_parse(text, strcspn(text, "\n"), path, &j), 0);
  free(text);
  return j;
}

static void ids_str(const sc_json *arr, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; i < sc_json_size(arr) && at < cap; i++)
    at += (size_t)snprintf(buf + at, cap - at, i ? " %d" : "%d", (int)sc_json_num(sc_json_at(arr, i)));
}

/* The targeted condition's kl and delta_loglik of the first image against
 * the numpy teacher-forced forward with the same edit. */
static void check_cost_vs_reference(const planted *p) {
  char *dump = tu_join(p->dir, "img0.safetensors"), *out = NULL, *err = NULL;
  char *img = tu_src_path("data/demo/images/img_000.png");
  int rc = tu_run(&out, &err, "'%s' -q caption --model '%s' --image '%s' --max-new-tokens 1 --json --dump '%s'", tu_bin(),
                  p->model, img, dump);
  assert_int_equal(rc, 0);
  sc_json *cj = NULL;
  assert_int_equal(sc_json_parse(out, strlen(out), "caption", &cj), 0);
  char *bp = tu_join(p->dir, "results/steering_captions/en_baseline.jsonl");
  char *tp = tu_join(p->dir, "results/steering_captions/en_L3_targeted_k1.jsonl");
  sc_json *base = first_line(bp), *targ = first_line(tp);
  static char ids[8192], bids[2048], cmd[16384];
  ids_str(sc_json_get(cj, "prompt_ids"), ids, sizeof ids);
  ids_str(sc_json_get(base, "caption_ids"), bids, sizeof bids);
  char *edits = tu_join(p->dir, "edits.json"), js[1024];
  snprintf(js, sizeof js, "[{\"sae\": \"%s/saes/layer_3\", \"features\": [0], \"mode\": \"ablate\"}]", p->dir);
  tu_write_str(edits, js);
  snprintf(cmd, sizeof cmd, "check-tf --model '%s' --dump '%s' --ids '%s' --base-ids '%s' --edits '%s' --kl %.17g --dll %.17g",
           p->model, dump, ids, bids, edits, sc_json_num(sc_json_get(targ, "kl")),
           sc_json_num(sc_json_get(targ, "delta_loglik")));
  py(cmd);
  sc_json_free(cj), sc_json_free(base), sc_json_free(targ);
  free(dump), free(out), free(err), free(img), free(bp), free(tp), free(edits);
}

static void test_planted_experiment(void **state) {
  (void)state;
  planted p;
  write_planted_inputs(&p);
  int rc;
  char *err = run_steer(p.cfg, &rc);
  if (rc) fprintf(stderr, "steer: %s\n", err);
  assert_int_equal(rc, 0);
  free(err);
  char *rp = tu_join(p.dir, "results/steering_experiments.json");
  sc_json *res = NULL;
  assert_int_equal(sc_json_load(rp, 1 << 24, &res), 0);
  assert_string_equal(sc_json_str(sc_json_get(res, "schema")), "saecap.steering_experiments/1");
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_get(res, "settings"), "n_samples")), 4);
  /* Baseline: " man" every token. */
  double base_male = sc_json_num(sc_json_get(sc_json_get(find_cond(res, "en_baseline"), "means"), "male"));
  assert_true(base_male >= 5.0);
  /* Targeted removes it; controls and the other language's features do not. */
  assert_true(diff_of(res, "en_L3_targeted_k1", "male") <= -5.0);
  assert_true(diff_of(res, "en_L3_targeted_k1", "kl") > 1.0);
  assert_true(diff_of(res, "en_L3_targeted_k1", "delta_loglik") < -5.0);
  const char *controls[] = {"en_L3_random1_k1", "en_L3_random2_k1", "en_L3_random3_k1", "en_L3_other_k1"};
  for (int i = 0; i < 4; i++) {
    assert_true(fabs(diff_of(res, controls[i], "male")) <= 1.0);
    assert_true(diff_of(res, controls[i], "kl") < 0.1);
  }
  const sc_json *t = sc_json_at(sc_json_get(res, "tests"), 0);
  assert_true(fabs(sc_json_num(sc_json_get(t, "p_rank")) - 0.25) < 1e-12);
  /* Random sets avoid the targeted feature and are drawn without repeats. */
  for (int i = 0; i < 3; i++) {
    const sc_json *f = sc_json_get(find_cond(res, controls[i]), "features");
    assert_int_equal(sc_json_size(f), 1);
    assert_int_not_equal((int)sc_json_num(sc_json_at(f, 0)), 0);
  }
  check_cost_vs_reference(&p);
  /* Captions file: one line per test-split sample. */
  char *cap = tu_join(p.dir, "results/steering_captions/en_L3_targeted_k1.jsonl");
  char *text = tu_read(cap, NULL);
  assert_int_equal(tu_count_lines(text), 4);
  free(text);
  /* Rerun: nothing recomputed, same bytes; a deleted condition comes back identical. */
  char *before = tu_read(rp, NULL), *rnd = tu_join(p.dir, "results/steering_captions/en_L3_random2_k1.jsonl");
  char *rnd_before = tu_read(rnd, NULL);
  char *out = NULL;
  assert_int_equal(tu_run(&out, NULL, "'%s' steer --config '%s' 2>&1", tu_bin(), p.cfg), 0);
  assert_non_null(strstr(out, "(0 computed, 6 already written)"));
  free(out);
  remove(rnd);
  assert_int_equal(tu_run(&out, NULL, "'%s' steer --config '%s' 2>&1", tu_bin(), p.cfg), 0);
  assert_non_null(strstr(out, "(1 computed, 5 already written)"));
  free(out);
  char *after = tu_read(rp, NULL), *rnd_after = tu_read(rnd, NULL);
  assert_string_equal(before, after);
  assert_string_equal(rnd_before, rnd_after);
  assert_false(tu_has_tmp_files(p.dir));
  free(before), free(after), free(rnd_before), free(rnd_after), free(rnd), free(cap), free(rp);
  sc_json_free(res);
  free(p.dir), free(p.cfg), free(p.model);
}

/* ==== Bad input ==== */

static void caption_fails(const char *extra, const char *needle) {
  char *err = NULL;
  int rc = tu_run(NULL, &err, "'%s' -q caption --model '%s' --image '%s' --max-new-tokens 2 %s", tu_bin(), F.model,
                  F.image, extra);
  tu_assert_one_line_error(rc, err, needle, NULL);
  free(err);
}

static void test_bad_input(void **state) {
  (void)state;
  char opt[1024];
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 0,48", F.s_jump2);
  caption_fails(opt, "feature 48 is out of range [0, 48)");
  char *narrow = make_sae("narrow", "--d 32 --n 8 --layer 1 --arch relu");
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 0", narrow);
  caption_fails(opt, "SAE input width d_in 32 does not match the model's hidden size 64");
  char *deep = make_sae("deep", "--d 64 --n 8 --layer 9 --arch relu");
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 0", deep);
  caption_fails(opt, "layer 9 is out of range: the model has layers 0..3");
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 1,x", F.s_jump2);
  caption_fails(opt, "--steer-features: 'x' is not a feature index");
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 4,2,4", F.s_jump2);
  caption_fails(opt, "feature 4 is repeated");
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 1 --steer-mode scale:abc", F.s_jump2);
  caption_fails(opt, "'abc' is not a finite number");
  snprintf(opt, sizeof opt, "--steer-sae '%s' --steer-features 1 --steer-mode zero", F.s_jump2);
  caption_fails(opt, "is not ablate, scale:A, clamp:V or add:C");
  snprintf(opt, sizeof opt, "--steer-sae '%s'", F.s_jump2);
  caption_fails(opt, "one --steer-features per --steer-sae");
  snprintf(opt, sizeof opt, "--steer-sae '%s/none' --steer-features 1", F.root);
  caption_fails(opt, "none");
  /* The stage: no analysis, a layer it does not list; nothing written. */
  char *dir = tu_join(F.root, "bad"), *cfg = tu_join(dir, "c.yaml"), y[1024];
  assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s/data/processed'", dir), 0);
  char *sp = tu_join(dir, "data/processed/samples.jsonl");
  char *img = F.image;
  char row[1024];
  snprintf(row, sizeof row,
           "{\"sample_index\": 0, \"image_index\": 0, \"image_id\": \"a\", \"image_path\": \"%s\", \"split\": \"test\", "
           "\"ground_truth_gender\": \"male\", \"english_prompt\": \"\", \"arabic_prompt\": \"\"}\n",
           img);
  tu_write_str(sp, row);
  snprintf(y, sizeof y,
           "output_dir: %s\ndata:\n  captions_csv: none.csv\n  images_dir: .\nmodel:\n  path: %s\nsteer:\n  layers: [2]\n"
           "  languages: [en]\n  k: [1]\n",
           dir, F.model);
  tu_write_str(cfg, y);
  int rc;
  char *err = run_steer(cfg, &rc);
  tu_assert_one_line_error(rc, err, "feature_analysis.json: missing; run `saecap analyze` first", NULL);
  free(err);
  char *fa = tu_join(dir, "results/feature_analysis.json");
  assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s/results'", dir), 0);
  char js[1024];
  snprintf(js, sizeof js,
           "{\"layers\": [{\"layer\": 1, \"sae\": \"../relu1\", \"languages\": {\"en\": {\"ranking\": "
           "[{\"feature\": 3}]}}}]}\n");
  tu_write_str(fa, js);
  err = run_steer(cfg, &rc);
  tu_assert_one_line_error(rc, err, "steer.layers: layer '2' is not in", NULL);
  free(err);
  snprintf(y, sizeof y,
           "output_dir: %s\ndata:\n  captions_csv: none.csv\n  images_dir: .\nmodel:\n  path: %s\nsteer:\n  layers: [1]\n"
           "  languages: [en]\n  k: [1]\n  mode: shrink\n",
           dir, F.model);
  tu_write_str(cfg, y);
  err = run_steer(cfg, &rc);
  tu_assert_one_line_error(rc, err, "'shrink' is not ablate, scale:A, clamp:V or add:C", NULL);
  free(err);
  char *res = tu_join(dir, "results/steering_experiments.json");
  assert_false(tu_exists(res));
  assert_false(tu_has_tmp_files(dir));
  free(narrow), free(deep), free(dir), free(cfg), free(sp), free(fa), free(res);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scale_one_is_identity),
      cmocka_unit_test(test_ablate_all_leaves_error_term),
      cmocka_unit_test(test_layers_compose),
      cmocka_unit_test(test_metrics_match_reference),
      cmocka_unit_test(test_planted_experiment),
      cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
