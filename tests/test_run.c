/* test_run.c: `saecap run` (pipeline/run.h, pipeline/stage.h) on 12 rows of
 * the demo data with a 2-layer `saecap tiny-model`.
 *
 * Checked, running the real stage commands (whichever of train, sae-eval,
 * analyze, steer and report this build has; the run stops before the
 * first missing one):
 *  - one run produces every stage's outputs and a "complete" record each;
 *    a second run skips every stage and changes no byte;
 *  - kill -9 of the run during extract, and during train, then a rerun
 *    (both to sae-eval): byte-identical output trees to the uninterrupted
 *    run at that point (the killed
 *    record says "running"; no stage process survives the run);
 *  - config changes rerun exactly the affected stages: slurm.mem none,
 *    train.steps train and below, extract.layers extract and below with
 *    the dropped layer's activations removed; --force reruns from --from;
 *  - a missing stage command and bad --from/--to are one-line errors.
 * Every run uses --threads 1 (extract's floats depend on the thread count;
 * the reference is a run with the same count). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu.h"

#define N_ROWS 8
/* Stages in order and whether this build has them (filled in setup). */
static const char *const STAGES[] = {"prepare", "extract", "train", "sae-eval", "analyze", "steer", "report"};
#define N_STAGES 7

typedef struct fixture {
  char *root, *model, *csv, *images;
  int n_avail;        /* stages [0, n_avail) exist in this build */
  char *ref_out, *ref_digest; /* the uninterrupted run */
  char *ref_partial;          /* its tree after prepare .. sae-eval (the kill tests' range) */
} fixture;

static fixture F;

typedef struct params {
  const char *layers;  /* extract.layers */
  int steps;           /* train.steps */
  const char *mem;     /* slurm.mem */
} params;

static const params BASE = {"[0, 1]", 400, "500M"};

static char *write_config(const char *name, const char *out_dir, const params *p) {
  char *path = tu_join(F.root, name), text[2048];
  snprintf(text, sizeof text,
           "output_dir: %s\nseed: 7\nmodel:\n  path: %s\n"
           "data:\n  captions_csv: %s\n  images_dir: %s\n  split: {train: 0.5, val: 0.25, test: 0.25}\n"
           "extract:\n  layers: %s\n  max_new_tokens: 4\n  rows_per_shard: 256\n"
           "train:\n  d_sae: 64\n  k: 4\n  steps: %d\n  batch_size: 64\n  warmup_steps: 3\n"
           "  shuffle_buffer: 512\n  checkpoint_every: 25\n  eval_max_rows: 256\n  ce_loss: false\n"
           "analyze:\n  bootstrap: 20\n  permutations: 20\n  folds: 2\n  min_per_label: 1\n"
           "steer:\n  layers: [1]\n  k: [2]\n  random_controls: 1\n  max_samples: 2\n  max_new_tokens: 3\n"
           "  bootstrap: 20\n  permutations: 20\n"
           "report:\n  feature_cards: 1\n"
           "slurm:\n  time: \"00:10:00\"\n  mem: %s\n  cpus: 1\n  extract_shards: 3\n",
           out_dir, F.model, F.csv, F.images, p->layers, p->steps, p->mem);
  tu_write_str(path, text);
  return path;
}

/* sha256 of every file under dir (relative names, sorted), the run lock
 * left out: equal digests = byte-identical trees. */
static char *tree_digest(const char *dir) {
  /* Text outputs may name their own folder (the report names output_dir
   * and the config <output_dir>.yaml): that path reads as OUT. */
  char *out = NULL;
  int st = tu_run(&out, NULL,
                  "cd '%s' && find . -type f ! -name .lock -print0 | LC_ALL=C sort -z | "
                  "while IFS= read -r -d '' f; do case $f in "
                  "*.html|*.json|*.jsonl|*.svg|*.md) h=$(sed 's#%s#OUT#g' \"$f\" | sha256sum) ;; "
                  "*) h=$(sha256sum < \"$f\") ;; esac; echo \"${h%%%% *} $f\"; done",
                  dir, dir);
  assert_int_equal(st, 0);
  return out;
}

static const char *last_stage(void) { return STAGES[F.n_avail - 1]; }
/* The kill tests stop after sae-eval: the stages they interrupt and the
 * ones reading them, without the slower analysis stages. */
static const char *partial_stage(void) { return STAGES[F.n_avail < 4 ? F.n_avail - 1 : 3]; }

/* Runs `saecap --threads 1 run --config CFG --to <last> ARGS`; stderr kept. */
static int run(const char *cfg, const char *args, char **err) {
  return tu_run(NULL, err, "'%s' --threads 1 run --config '%s' --to %s %s", tu_bin(), cfg, last_stage(),
                args ? args : "");
}

/* The stage ran (a "done in" line) or was skipped ("up to date"). */
static int ran(const char *err, const char *stage) {
  char needle[64];
  snprintf(needle, sizeof needle, "run: %s: done in", stage);
  return strstr(err, needle) != NULL;
}
static int skipped(const char *err, const char *stage) {
  char needle[64];
  snprintf(needle, sizeof needle, "run: %s: up to date", stage);
  return strstr(err, needle) != NULL;
}

static char *record(const char *out, const char *stage) {
  char rel[64];
  snprintf(rel, sizeof rel, "stages/%s.json", stage);
  char *p = tu_join(out, rel), *s = tu_read(p, NULL);
  free(p);
  return s;
}

static int setup(void **state) {
  (void)state;
  F.root = tu_tmpdir("run");
  F.model = tu_join(F.root, "model");
  tu_tiny_model(F.model, "--seed 5");
  /* N_ROWS rows of the demo CSV, half male, half female. */
  F.csv = tu_join(F.root, "captions.csv");
  char *demo = tu_src_path("data/demo/captions.csv");
  int st = tu_run(NULL, NULL, "{ head -n 1 '%s'; grep -i ',male,' '%s' | head -n %d; grep -i ',female,' '%s' | head -n %d; } > '%s'",
                  demo, demo, N_ROWS / 2, demo, N_ROWS / 2, F.csv);
  free(demo);
  if (st) return -1;
  F.images = tu_src_path("data/demo/images");
  for (F.n_avail = 0; F.n_avail < N_STAGES; F.n_avail++)
    if (tu_run(NULL, NULL, "'%s' %s --help", tu_bin(), STAGES[F.n_avail])) break;
  if (F.n_avail < 2) return -1;
  fprintf(stderr, "test_run: stages in this build: prepare .. %s\n", last_stage());
  F.ref_out = tu_join(F.root, "ref");
  char *cfg = write_config("ref.yaml", F.ref_out, &BASE), *err = NULL, to[64];
  snprintf(to, sizeof to, "--to %s", partial_stage());
  st = tu_run(NULL, &err, "'%s' --threads 1 run --config '%s' %s", tu_bin(), cfg, to);
  if (!st) F.ref_partial = tree_digest(F.ref_out);
  free(err);
  err = NULL;
  if (!st) st = run(cfg, NULL, &err);
  if (st) fprintf(stderr, "reference run failed:\n%s\n", err);
  free(err);
  free(cfg);
  if (st) return -1;
  F.ref_digest = tree_digest(F.ref_out);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(F.root), free(F.model), free(F.csv), free(F.images), free(F.ref_out), free(F.ref_digest), free(F.ref_partial);
  return 0;
}

static void test_every_output_then_skip(void **state) {
  (void)state;
  static const char *const outputs[] = {"data/processed/samples.jsonl", "data/processed/prepare_report.json",
                                        "activations/en/layer_0/manifest.json", "activations/ar/layer_1/manifest.json",
                                        "captions/en.jsonl", "captions/ar.jsonl",
                                        "saes/layer_0/sae_weights.safetensors", "saes/layer_1/cfg.json",
                                        "results/sae_metrics.json", "results/feature_analysis.json",
                                        "results/steering_experiments.json", "report/report.html"};
  static const int stage_of[] = {0, 0, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6};
  for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) {
    if (stage_of[i] >= F.n_avail) continue;
    char *p = tu_join(F.ref_out, outputs[i]);
    if (!tu_exists(p)) fail_msg("missing output %s", p);
    free(p);
  }
  for (int s = 0; s < F.n_avail; s++) {
    char *r = record(F.ref_out, STAGES[s]);
    assert_non_null(r);
    assert_non_null(strstr(r, "\"status\": \"complete\""));
    free(r);
  }
  assert_false(tu_has_tmp_files(F.ref_out));
  /* Second run: every stage skipped, not one byte changed. */
  char *cfg = tu_join(F.root, "ref.yaml"), *err = NULL;
  assert_int_equal(run(cfg, NULL, &err), 0);
  for (int s = 0; s < F.n_avail; s++) {
    if (!skipped(err, STAGES[s])) fail_msg("%s not skipped:\n%s", STAGES[s], err);
    assert_false(ran(err, STAGES[s]));
  }
  assert_non_null(strstr(err, "0 stages ran"));
  char *d = tree_digest(F.ref_out);
  assert_string_equal(d, F.ref_digest);
  free(d), free(err), free(cfg);
}

/* Kills the run with SIGKILL once `marker` exists under out, then reruns
 * until it succeeds; the tree must equal the reference's at that stage. */
static void kill_and_resume(const char *name, const char *marker, const char *killed_stage) {
  char *out = tu_join(F.root, name), yaml[64];
  snprintf(yaml, sizeof yaml, "%s.yaml", name);
  char *cfg = write_config(yaml, out, &BASE), *mark = tu_join(out, marker);
  int st = tu_run(NULL, NULL,
                  "'%s' -q --threads 1 run --config '%s' --to %s & p=$!; "
                  "for i in $(seq 3000); do [ -e '%s' ] && break; kill -0 $p 2>/dev/null || break; sleep 0.01; done; "
                  "kill -9 $p; wait $p; exit 0",
                  tu_bin(), cfg, partial_stage(), mark);
  assert_int_equal(st, 0);
  char *r = record(out, killed_stage);
  if (!r || !strstr(r, "\"status\": \"running\"")) fail_msg("the run was not killed during %s: %s", killed_stage, r ? r : "(no record)");
  free(r);
  /* No stage outlives its run (PR_SET_PDEATHSIG + the inherited lock): the
   * rerun may have to wait a moment for the lock, never longer. */
  char *err = NULL;
  for (int tries = 0; tries < 50; tries++) {
    free(err);
    err = NULL;
    st = tu_run(NULL, &err, "'%s' --threads 1 run --config '%s' --to %s", tu_bin(), cfg, partial_stage());
    if (!st || !strstr(err, "another saecap run")) break;
    usleep(100000);
  }
  if (st) fail_msg("rerun failed:\n%s", err);
  assert_non_null(strstr(err, "resuming an interrupted run"));
  char *d = tree_digest(out);
  assert_string_equal(d, F.ref_partial);
  free(d), free(err), free(mark), free(cfg), free(out);
}

static void test_kill_during_extract(void **state) {
  (void)state;
  /* The first committed shard of layer 1: extract is midway. */
  kill_and_resume("kill_extract", "activations/ar/layer_1/shard_00000.safetensors", "extract");
}

static void test_kill_during_train(void **state) {
  (void)state;
  if (F.n_avail < 3) skip();
  kill_and_resume("kill_train", "saes/layer_0/trainer_state.safetensors", "train");
}

static char *copy_ref(const char *name) {
  char *out = tu_join(F.root, name);
  assert_int_equal(tu_run(NULL, NULL, "rm -rf '%s' && cp -a '%s' '%s'", out, F.ref_out, out), 0);
  return out;
}

static void test_config_change_reruns_affected(void **state) {
  (void)state;
  char *out = copy_ref("change"), *err = NULL;
  /* slurm: no stage reads it. */
  params p = BASE;
  p.mem = "2G";
  char *cfg = write_config("change.yaml", out, &p);
  assert_int_equal(run(cfg, NULL, &err), 0);
  for (int s = 0; s < F.n_avail; s++) assert_true(skipped(err, STAGES[s]));
  free(err), free(cfg);
  /* train.steps: train and what reads it. */
  if (F.n_avail > 2) {
    p.steps = 300;
    cfg = write_config("change.yaml", out, &p);
    assert_int_equal(run(cfg, NULL, &err), 0);
    assert_true(skipped(err, "prepare") && skipped(err, "extract"));
    for (int s = 2; s < F.n_avail; s++)
      if (!ran(err, STAGES[s])) fail_msg("%s did not rerun:\n%s", STAGES[s], err);
    if (F.n_avail > 3) assert_true(ran(err, "sae-eval"));
    char *log = tu_join(out, "saes/layer_0/training_log.jsonl"), *text = tu_read(log, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "\"step\":400")); /* the old run's log was removed, not continued */
    free(text), free(log), free(err), free(cfg);
  }
  /* extract.layers: extract and below; layer 0's stale activations go. */
  p.layers = "[1]";
  cfg = write_config("change.yaml", out, &p);
  assert_int_equal(run(cfg, NULL, &err), 0);
  assert_true(skipped(err, "prepare"));
  for (int s = 1; s < F.n_avail; s++)
    if (!ran(err, STAGES[s])) fail_msg("%s did not rerun:\n%s", STAGES[s], err);
  char *l0 = tu_join(out, "activations/en/layer_0"), *l1 = tu_join(out, "activations/en/layer_1/manifest.json");
  assert_false(tu_exists(l0));
  assert_true(tu_exists(l1));
  free(l0), free(l1), free(err);
  /* --force from extract: extract and below rerun, prepare is skipped. */
  char *cmd_err = NULL;
  assert_int_equal(tu_run(NULL, &cmd_err, "'%s' --threads 1 run --config '%s' --from extract --to extract --force",
                          tu_bin(), cfg), 0);
  assert_true(ran(cmd_err, "extract"));
  assert_false(ran(cmd_err, "prepare") || skipped(cmd_err, "prepare"));
  free(cmd_err), free(cfg), free(out);
}

static void test_bad_usage(void **state) {
  (void)state;
  char *cfg = tu_join(F.root, "ref.yaml"), *err = NULL;
  int st = tu_run(NULL, &err, "'%s' run --config '%s' --from nope", tu_bin(), cfg);
  assert_int_equal(st, 2);
  tu_assert_one_line_error(st, err, "--from", "'nope' is not a stage", NULL);
  free(err);
  st = tu_run(NULL, &err, "'%s' run --config '%s' --from train --to extract", tu_bin(), cfg);
  tu_assert_one_line_error(st, err, "--from train comes after --to extract", NULL);
  free(err);
  /* Another run holding the output folder's lock. */
  st = tu_run(NULL, &err, "flock '%s/stages/.lock' sleep 3 & sleep 0.5; '%s' run --config '%s'; s=$?; wait; exit $s",
              F.ref_out, tu_bin(), cfg);
  tu_assert_one_line_error(st, err, "stages/.lock", "another saecap run is using", NULL);
  free(err);
  if (F.n_avail < N_STAGES) {
    /* Up to date stages are skipped; the first missing command is refused
     * before anything runs. */
    st = tu_run(NULL, &err, "'%s' run --config '%s'", tu_bin(), cfg);
    tu_assert_one_line_error(st, err, "is not in this saecap build", STAGES[F.n_avail], NULL);
    free(err);
  }
  free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_output_then_skip),
      cmocka_unit_test(test_kill_during_extract),
      cmocka_unit_test(test_kill_during_train),
      cmocka_unit_test(test_config_change_reruns_affected),
      cmocka_unit_test(test_bad_usage),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
