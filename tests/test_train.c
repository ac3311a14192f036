/* test_train.c: `saecap train` and `saecap sae-eval` (pipeline/train.h,
 * pipeline/sae_eval.h) on a store written by `saecap extract` with a
 * 2-layer `saecap tiny-model` (8 demo images, EN + AR, 4 new tokens).
 *
 * Checked:
 *  - train writes per layer the SAELens folder (hook name, languages,
 *    segments, config hash), sparsity, trainer state and a training log
 *    with one line per step; a rerun skips finished layers;
 *  - kill -9 at several points and a rerun give byte-identical SAE folders
 *    (weights, sparsity, cfg.json, state, log) to the uninterrupted run;
 *  - sae-eval's metrics equal tests/reference/sae_eval_reference.py (numpy,
 *    its own row filter) on the val split; CE losses (clean, SAE-spliced,
 *    zero-ablated) equal tests/reference/sae_ce_reference.py (the numpy
 *    Gemma 3 of g3_reference.py with the same splice); one clean loss per
 *    language whatever the layer, recovered = (zero − sae)/(zero − clean),
 *    and zero-ablating the last layer gives log(vocab) exactly (the final
 *    norm of a zero row is zero, so the logits are uniform);
 *  - per-language SAEs;
 *  - bad input (missing layer, width mismatch between languages or between
 *    SAE and store, no trained SAE, bad language, a finished SAE of another
 *    config): one-line errors, no half-written outputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/json.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "store/writer.h"
#include "tu.h"

#define N_SAMPLES 8
#define STEPS 200

typedef struct fixture {
  char *root, *model, *base, *ref;
} fixture;

static fixture F;

static void write_samples(const char *out_dir) {
  char *dir = tu_join(out_dir, "data/processed");
  tu_run(NULL, NULL, "mkdir -p '%s'", dir);
  static const char *const split[N_SAMPLES] = {"train", "val", "train", "train", "test", "train", "val", "train"};
  static const char *const img[N_SAMPLES] = {"img_000.png", "img_001.png", "img_003.png", "img_004.png",
                                             "img_006.png", "img_007.png", "img_009.png", "img_010.png"};
  char *text = calloc(1, 16384), *p = text;
  for (int i = 0; i < N_SAMPLES; i++)
    p += sprintf(p,
                 "{\"sample_index\":%d,\"image_id\":\"%s\",\"image_path\":\"%s/data/demo/images/%s\","
                 "\"image_index\":%d,\"english_prompt\":\"Describe the person.\",\"arabic_prompt\":\"صف الصورة.\","
                 "\"ground_truth_gender\":\"%s\",\"split\":\"%s\"}\n",
                 i, img[i], tu_src(), img[i], i, i % 2 ? "female" : "male", split[i]);
  char *path = tu_join(dir, "samples.jsonl");
  tu_write_str(path, text);
  free(path), free(text), free(dir);
}

/* Config for output_dir out; `train` is the train section's body. */
static char *write_config(const char *name, const char *out, const char *train) {
  char *path = tu_join(F.root, name);
  char text[4096];
  snprintf(text, sizeof text,
           "output_dir: %s\nseed: 7\nmodel:\n  path: %s\ndata:\n  captions_csv: unused.csv\n  images_dir: unused\n"
           "extract:\n  max_new_tokens: 4\n  rows_per_shard: 64\n  layers: [0, 1]\n"
           "train:\n  d_sae: 128\n  k: 4\n  batch_size: 64\n  steps: %d\n  warmup_steps: 10\n"
           "  shuffle_buffer: 128\n  checkpoint_every: 20\n  eval_split: val\n%s",
           out, F.model, STEPS, train ? train : "");
  tu_write_str(path, text);
  return path;
}

/* A copy of the extracted store (activations, captions, samples) at name. */
static char *copy_base(const char *name) {
  char *dst = tu_join(F.root, name);
  assert_int_equal(tu_run(NULL, NULL, "rm -rf '%s' && cp -r '%s' '%s'", dst, F.base, dst), 0);
  return dst;
}

static int run(const char *cmd, const char *cfg, const char *args, char **err) {
  return tu_run(NULL, err, "'%s' %s --config '%s' %s", tu_bin(), cmd, cfg, args ? args : "");
}

static int setup(void **state) {
  (void)state;
  char *tok = tu_tokenizer_json();
  F.root = tu_tmpdir("train");
  F.model = tu_join(F.root, "model");
  F.base = tu_join(F.root, "base");
  int rc = tu_run(NULL, NULL, "'%s' -q tiny-model '%s' --seed 5 --layers 2 --tokenizer '%s'", tu_bin(), F.model, tok);
  assert_int_equal(rc, 0);
  free(tok);
  write_samples(F.base);
  char *cfg = write_config("base.yaml", F.base, NULL), *err = NULL;
  rc = run("-q extract", cfg, NULL, &err);
  if (rc) print_error("extract: %s\n", err);
  assert_int_equal(rc, 0);
  free(err), free(cfg);
  /* the uninterrupted reference run */
  F.ref = copy_base("ref");
  cfg = write_config("ref.yaml", F.ref, "  ce_loss: true\n");
  rc = run("train", cfg, NULL, &err);
  if (rc) print_error("train: %s\n", err);
  assert_int_equal(rc, 0);
  free(err), free(cfg);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_run(NULL, NULL, "rm -rf '%s'", F.root);
  free(F.root), free(F.model), free(F.base), free(F.ref);
  return 0;
}

static sc_json *load_json(const char *path) {
  sc_json *j = NULL;
  if (sc_json_load(path, (size_t)1 << 26, &j)) fail_msg("cannot read %s", path);
  return j;
}

static char *sae_file(const char *out, int layer, const char *file) {
  char rel[128];
  snprintf(rel, sizeof rel, "saes/layer_%d/%s", layer, file);
  return tu_join(out, rel);
}

/* ==== train ==== */

static void test_outputs(void **state) {
  (void)state;
  for (int layer = 0; layer < 2; layer++) {
    static const char *const files[] = {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors",
                                        "trainer_state.safetensors", "training_log.jsonl"};
    for (int i = 0; i < 5; i++) {
      char *p = sae_file(F.ref, layer, files[i]);
      assert_true(tu_exists(p));
      free(p);
    }
    char *cp = sae_file(F.ref, layer, "cfg.json"), hook[64];
    sc_json *c = load_json(cp), *m = sc_json_get(c, "metadata");
    snprintf(hook, sizeof hook, "blocks.%d.hook_resid_post", layer);
    assert_string_equal(sc_json_str(sc_json_get(m, "hook_name")), hook);
    assert_string_equal(sc_json_str(sc_json_get(c, "architecture")), "topk");
    assert_int_equal((int)sc_json_num(sc_json_get(c, "k")), 4);
    assert_int_equal((int)sc_json_num(sc_json_get(c, "d_sae")), 128);
    assert_int_equal((int)sc_json_num(sc_json_get(c, "d_in")), 64);
    sc_json *langs = sc_json_get(m, "saecap_languages");
    assert_int_equal(sc_json_size(langs), 2);
    assert_string_equal(sc_json_str(sc_json_at(langs, 0)), "en");
    assert_string_equal(sc_json_str(sc_json_at(langs, 1)), "ar");
    assert_int_equal(sc_json_size(sc_json_get(m, "saecap_segments")), 3);
    assert_non_null(strstr(sc_json_str(sc_json_get(m, "saecap_config_hash")), "fnv1a64:"));
    sc_json_free(c);
    free(cp);
    /* the log: one line per step, in order, the loss falling */
    char *lp = sae_file(F.ref, layer, "training_log.jsonl");
    char *log = tu_read(lp, NULL);
    assert_int_equal(tu_count_lines(log), STEPS);
    double first = -1, last = -1;
    int step = 0;
    for (char *l = log; *l; l = strchr(l, '\n') + 1) {
      sc_json *j = NULL;
      assert_int_equal(sc_json_parse(l, strcspn(l, "\n"), "log", &j), 0);
      assert_int_equal((int)sc_json_num(sc_json_get(j, "step")), ++step);
      assert_non_null(sc_json_get(j, "dead_fraction"));
      assert_non_null(sc_json_get(j, "lr"));
      if (step == 1) first = sc_json_num(sc_json_get(j, "mse"));
      last = sc_json_num(sc_json_get(j, "mse"));
      sc_json_free(j);
    }
    assert_true(last < 0.5 * first);
    free(log), free(lp);
  }
  /* a rerun skips both layers and changes nothing */
  char *cfg = write_config("ref.yaml", F.ref, "  ce_loss: true\n"), *err = NULL;
  char *wp = sae_file(F.ref, 1, "sae_weights.safetensors");
  size_t n0 = 0, n1 = 0;
  char *before = tu_read(wp, &n0);
  assert_int_equal(run("train", cfg, NULL, &err), 0);
  assert_non_null(strstr(err, "0 trained"));
  assert_non_null(strstr(err, "2 already finished"));
  char *after = tu_read(wp, &n1);
  assert_int_equal(n0, n1);
  assert_memory_equal(before, after, n0);
  free(before), free(after), free(wp), free(err), free(cfg);
}

/* Starts train in the background, waits until the shell test `until`
 * holds, then kills it with SIGKILL. Returns 1 if it was still running. */
static int kill_when(const char *cfg, const char *until) {
  char *out = NULL;
  tu_run(&out, NULL,
         "'%s' -q train --config '%s' & pid=$!; "
         "while ! { %s; } && kill -0 $pid 2>/dev/null; do sleep 0.002; done; "
         "if kill -9 $pid 2>/dev/null; then echo killed; fi; wait $pid",
         tu_bin(), cfg, until);
  int killed = out && strstr(out, "killed") != NULL;
  print_message("kill when '%s': %s\n", until, killed ? "killed" : "had finished");
  free(out);
  return killed;
}

static void cmp_tree(const char *a, const char *b) {
  char *out = NULL;
  int rc = tu_run(&out, NULL, "diff -r '%s' '%s'", a, b);
  if (rc) print_error("%s\n", out ? out : "");
  assert_int_equal(rc, 0);
  free(out);
}

static void test_kill_and_resume(void **state) {
  (void)state;
  char *out = copy_base("killed");
  char *cfg = write_config("killed.yaml", out, "  ce_loss: true\n");
  char until[4][512];
  snprintf(until[0], sizeof until[0], "test -f '%s/saes/layer_0/trainer_state.safetensors'", out);
  snprintf(until[1], sizeof until[1], "test $(cat '%s/saes/layer_0/training_log.jsonl' 2>/dev/null | wc -l) -ge 100", out);
  snprintf(until[2], sizeof until[2], "test -f '%s/saes/layer_1/trainer_state.safetensors'", out);
  snprintf(until[3], sizeof until[3], "test $(cat '%s/saes/layer_1/training_log.jsonl' 2>/dev/null | wc -l) -ge 140", out);
  int killed = 0;
  for (int i = 0; i < 4; i++) killed += kill_when(cfg, until[i]);
  assert_true(killed >= 2); /* the test is about interrupted runs */
  char *err = NULL;
  int rc = run("train", cfg, NULL, &err);
  if (rc) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  assert_false(tu_has_tmp_files(out));
  char *a = tu_join(out, "saes"), *b = tu_join(F.ref, "saes");
  cmp_tree(a, b);
  free(a), free(b), free(err), free(cfg), free(out);
}

static void test_layer_option_and_per_language(void **state) {
  (void)state;
  char *out = copy_base("perlang");
  char *cfg = write_config("perlang.yaml", out, "  per_language: true\n  ce_loss: false\n"), *err = NULL;
  assert_int_equal(run("train", cfg, "--layer 1", &err), 0);
  free(err);
  char *en = tu_join(out, "saes/en/layer_1/cfg.json"), *ar = tu_join(out, "saes/ar/layer_1/cfg.json");
  char *l0 = tu_join(out, "saes/en/layer_0");
  assert_true(tu_exists(en) && tu_exists(ar));
  assert_false(tu_exists(l0));
  sc_json *c = load_json(ar);
  sc_json *langs = sc_json_get(sc_json_get(c, "metadata"), "saecap_languages");
  assert_int_equal(sc_json_size(langs), 1);
  assert_string_equal(sc_json_str(sc_json_at(langs, 0)), "ar");
  sc_json_free(c);
  /* sae-eval needs every configured layer: train the rest, then evaluate */
  assert_int_equal(run("-q train", cfg, NULL, NULL), 0);
  assert_int_equal(run("-q sae-eval", cfg, NULL, &err), 0);
  free(err);
  char *rp = tu_join(out, "results/sae_metrics.json");
  sc_json *r = load_json(rp), *saes = sc_json_get(r, "saes");
  assert_int_equal(sc_json_size(saes), 4);
  for (int i = 0; i < 4; i++) {
    sc_json *s = sc_json_at(saes, i), *l = sc_json_get(s, "languages");
    assert_int_equal(sc_json_size(l), 1);
    assert_non_null(sc_json_get(l, i % 2 ? "ar" : "en"));
    assert_true(sc_json_is_null(sc_json_get(sc_json_get(l, i % 2 ? "ar" : "en"), "ce_loss")));
  }
  sc_json_free(r);
  free(rp), free(en), free(ar), free(l0), free(cfg), free(out);
}

/* Last logged mse of a training log. */
static double last_mse(const char *out, int layer) {
  char *lp = sae_file(out, layer, "training_log.jsonl"), *log = tu_read(lp, NULL);
  assert_non_null(log);
  char *last = log;
  for (char *l = log; *l; l = strchr(l, '\n') + 1) last = l;
  sc_json *j = NULL;
  assert_int_equal(sc_json_parse(last, strcspn(last, "\n"), "log", &j), 0);
  double v = sc_json_num(sc_json_get(j, "mse"));
  sc_json_free(j);
  free(log), free(lp);
  return v;
}

/* train.precision bf16: the encoder GEMM in bf16 (tensor/gemm.h) trains
 * as well as f32 (final mse within 10%), and says so in cfg.json. */
static void test_bf16_encoder(void **state) {
  (void)state;
  char *out = copy_base("bf16");
  char *cfg = write_config("bf16.yaml", out, "  precision: bf16\n  ce_loss: false\n"), *err = NULL;
  int rc = run("train", cfg, "--layer 1", &err);
  if (rc) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  double got = last_mse(out, 1), want = last_mse(F.ref, 1);
  print_message("final mse: bf16 encoder %.6g, f32 %.6g\n", got, want);
  assert_true(fabs(got - want) <= 0.1 * want);
  char *cp = sae_file(out, 1, "cfg.json");
  sc_json *c = load_json(cp);
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(c, "metadata"), "saecap_precision")), "bf16");
  sc_json_free(c);
  free(cp), free(err), free(cfg), free(out);
}

/* ==== sae-eval ==== */

static double num(const sc_json *o, const char *k) {
  const sc_json *v = sc_json_get(o, k);
  if (!sc_json_is_number(v)) fail_msg("key '%s' is not a number", k);
  return sc_json_num(v);
}

static void assert_close(double got, double want, double tol, const char *what) {
  if (!(fabs(got - want) <= tol * (1.0 + fabs(want)))) fail_msg("%s: got %.12g, want %.12g", what, got, want);
}

/* Caption tokens of the val samples of captions/<lang>.jsonl. */
static int64_t val_caption_tokens(const char *out, const char *lang) {
  char rel[64];
  snprintf(rel, sizeof rel, "captions/%s.jsonl", lang);
  char *p = tu_join(out, rel), *text = tu_read(p, NULL);
  int64_t n = 0;
  for (char *l = text; l && *l; l = strchr(l, '\n') + 1) {
    sc_json *j = NULL;
    assert_int_equal(sc_json_parse(l, strcspn(l, "\n"), "captions", &j), 0);
    if (!strcmp(sc_json_str(sc_json_get(j, "split")), "val")) n += sc_json_size(sc_json_get(j, "caption_ids"));
    sc_json_free(j);
  }
  free(text), free(p);
  return n;
}

static void test_sae_eval(void **state) {
  (void)state;
  char *cfg = write_config("ref.yaml", F.ref, "  ce_loss: true\n"), *err = NULL, *ref_out = NULL;
  int rc = run("sae-eval", cfg, NULL, &err);
  if (rc) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  rc = tu_run(&ref_out, NULL, "/usr/bin/python3 '%s/tests/reference/sae_eval_reference.py' '%s' '%s' val 0,1",
              tu_src(), F.ref, F.model);
  assert_int_equal(rc, 0);
  sc_json *want = NULL;
  assert_int_equal(sc_json_parse(ref_out, strlen(ref_out), "reference", &want), 0);
  char *rp = tu_join(F.ref, "results/sae_metrics.json");
  sc_json *r = load_json(rp), *saes = sc_json_get(r, "saes");
  assert_string_equal(sc_json_str(sc_json_get(r, "schema")), "saecap.sae_metrics/1");
  assert_string_equal(sc_json_str(sc_json_get(r, "eval_split")), "val");
  assert_int_equal(sc_json_size(saes), 2);
  char *mc = tu_join(F.model, "config.json");
  sc_json *mcfg = load_json(mc);
  sc_json *tc = sc_json_get(mcfg, "text_config");
  double V = num(tc ? tc : mcfg, "vocab_size");
  double clean[2] = {0, 0};
  static const char *const metrics[] = {"tokens", "mse", "fvu", "explained_variance", "explained_variance_legacy",
                                        "l0", "dead_fraction", "dense_fraction", "cosine", "l2_ratio"};
  static const char *const langs[] = {"en", "ar"};
  for (int layer = 0; layer < 2; layer++) {
    sc_json *s = sc_json_at(saes, layer);
    char key[8];
    snprintf(key, sizeof key, "%d", layer);
    assert_int_equal((int)num(s, "layer"), layer);
    assert_int_equal((int)num(sc_json_get(s, "training"), "logged_steps"), STEPS);
    for (int li = 0; li < 2; li++) {
      sc_json *got = sc_json_get(sc_json_get(s, "languages"), langs[li]);
      sc_json *exp = sc_json_get(sc_json_get(want, key), langs[li]);
      assert_non_null(got);
      assert_non_null(exp);
      assert_true(num(got, "tokens") > 20);
      for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
        char what[64];
        snprintf(what, sizeof what, "layer %d %s %s", layer, langs[li], metrics[m]);
        assert_close(num(got, metrics[m]), num(exp, metrics[m]), 1e-5, what);
      }
      sc_json *ce = sc_json_get(got, "ce_loss");
      assert_int_equal((int)num(ce, "samples"), 2);
      assert_int_equal((int64_t)num(ce, "tokens"), val_caption_tokens(F.ref, langs[li]));
      double c = num(ce, "clean"), z = num(ce, "zero"), sl = num(ce, "sae");
      if (layer == 0) clean[li] = c;
      else assert_true(c == clean[li]);
      assert_close(num(ce, "recovered"), (z - sl) / (z - c), 1e-12, "recovered");
      assert_true(c > 0 && z > c && sl > 0);
      if (layer == 1) assert_close(z, log(V), 1e-6, "zero-ablated last layer = log(vocab)");
    }
  }
  /* CE losses of layer 0, Arabic, against the numpy Gemma 3 (g3_reference.py) with the same
   * splice (tests/reference/sae_ce_reference.py). */
  char *ce_out = NULL;
  rc = tu_run(&ce_out, NULL, "/usr/bin/python3 '%s/tests/reference/sae_ce_reference.py' '%s' '%s' 0 ar val",
              tu_src(), F.ref, F.model);
  assert_int_equal(rc, 0);
  sc_json *ce_want = NULL;
  assert_int_equal(sc_json_parse(ce_out, strlen(ce_out), "ce reference", &ce_want), 0);
  sc_json *ce_got = sc_json_get(sc_json_get(sc_json_get(sc_json_at(saes, 0), "languages"), "ar"), "ce_loss");
  static const char *const ce_keys[] = {"samples", "tokens", "clean", "sae", "zero"};
  for (int i = 0; i < 5; i++) assert_close(num(ce_got, ce_keys[i]), num(ce_want, ce_keys[i]), 1e-5, ce_keys[i]);
  sc_json_free(ce_want);
  sc_json_free(mcfg), sc_json_free(want), sc_json_free(r);
  free(ce_out), free(mc), free(rp), free(ref_out), free(err), free(cfg);
}

/* ==== bad input ==== */

static void expect_error(const char *cmd, const char *cfg, const char *args, const char *needle) {
  char *err = NULL;
  int rc = run(cmd, cfg, args, &err);
  tu_assert_one_line_error(rc, err, needle, NULL);
  free(err);
}

static void write_odd_width_dir(const char *dir) {
  tu_run(NULL, NULL, "rm -rf '%s'", dir);
  store_writer_config c = store_writer_config_default();
  c.dir = dir, c.language = "ar", c.layer = 0, c.d = 8, c.model_path = "m", c.config_hash = "h", c.prompt = "p";
  c.saecap_version = "t";
  store_writer *w = NULL;
  assert_int_equal(store_writer_open(&w, &c), 0);
  float acts[8 * 3] = {0};
  int32_t pos[3] = {0, 1, 2}, tok[3] = {5000, 5001, 5002};
  uint8_t seg[3] = {1, 1, 2};
  for (int s = 0; s < N_SAMPLES; s++) {
    acts[0] = (float)s + 1;
    assert_int_equal(store_writer_begin_sample(w, s), 0);
    assert_int_equal(store_writer_append(w, acts, 3, pos, tok, seg), 0);
    assert_int_equal(store_writer_end_sample(w), 0);
  }
  assert_int_equal(store_writer_finish(w), 0);
  store_writer_free(w);
}

static void test_bad_input(void **state) {
  (void)state;
  char *out = copy_base("bad");
  char *saes = tu_join(out, "saes"), *res = tu_join(out, "results");
  char *cfg = write_config("bad1.yaml", out, "  layers: [5]\n");
  expect_error("train", cfg, NULL, "layer_5");
  expect_error("sae-eval", cfg, NULL, "layer_5");
  free(cfg);
  cfg = write_config("bad2.yaml", out, "  languages: [en, fr]\n");
  expect_error("train", cfg, NULL, "'fr' is not en or ar");
  free(cfg);
  cfg = write_config("bad3.yaml", out, "  ce_loss: false\n");
  expect_error("sae-eval", cfg, NULL, "no trained SAE");
  assert_false(tu_exists(res));
  assert_false(tu_exists(saes));
  /* a finished SAE with another config hash is refused, not overwritten */
  assert_int_equal(run("-q train", cfg, "--layer 1", NULL), 0);
  char *cfg4 = write_config("bad4.yaml", out, "  ce_loss: false\n  architecture: batchtopk\n");
  expect_error("train", cfg4, "--layer 1", "trained with config_hash");
  free(cfg4);
  /* an interrupted SAE (state, no cfg.json) whose store changed since is refused, not mixed */
  char *c1 = tu_join(out, "saes/layer_1/cfg.json"), *man = tu_join(out, "activations/en/layer_1/manifest.json");
  assert_int_equal(tu_run(NULL, NULL, "rm '%s' && sed -i '/config_hash/s/fnv1a64:/fnv1a64:x/' '%s'", c1, man), 0);
  expect_error("train", cfg, "--layer 1", "trainer_state.safetensors: saved by a run with data=");
  free(c1), free(man);
  /* an SAE whose width is not the store's */
  assert_int_equal(run("-q train", cfg, "--layer 0", NULL), 0);
  sae_cfg sc = {.arch = SAE_ARCH_TOPK, .d = 8, .n = 16, .k = 2, .apply_b_dec_to_input = 1};
  sae *s = NULL;
  assert_int_equal(sae_create(&s, &sc), 0);
  char *l0 = tu_join(out, "saes/layer_0");
  assert_int_equal(sae_save_saelens(s, NULL, l0), 0);
  sae_free(s);
  expect_error("sae-eval", cfg, NULL, "d_in 8");
  assert_false(tu_exists(res));
  /* languages of different widths */
  char *ar0 = tu_join(out, "activations/ar/layer_0");
  write_odd_width_dir(ar0);
  tu_run(NULL, NULL, "rm -rf '%s'", l0);
  expect_error("train", cfg, "--layer 0", "d is 8, but 64");
  assert_false(tu_has_tmp_files(out));
  expect_error("train", cfg, "--layer x", "--layer");
  free(ar0), free(l0), free(cfg), free(saes), free(res), free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outputs),
      cmocka_unit_test(test_kill_and_resume),
      cmocka_unit_test(test_bf16_encoder),
      cmocka_unit_test(test_sae_eval),
      cmocka_unit_test(test_layer_option_and_per_language),
      cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
