/* test_slurm.c: `saecap slurm` (pipeline/slurm.h) and `merge-shards`
 * (pipeline/merge.h), on a real single-node SLURM cluster.
 *
 *  - scripts: resources, the extract array over --shard 1..3/3 (1-based,
 *    as extract wants), the train array over the layers, logs/; every
 *    script passes `bash -n`; submit.sh against a stub sbatch submits the
 *    chain with the right --dependency=afterok ids, and --from/--after
 *    submits the rest after a resubmitted task;
 *  - merge-shards with a part missing: one line naming it, nothing merged;
 *  - cluster: tests/slurm/cluster.sh starts munged, slurmctld and slurmd
 *    on localhost in a temp folder (skipped, with its reason, only where
 *    they cannot start: not root, packages missing); `saecap slurm
 *    --submit` runs the demo study (8 rows: 4 male, 4 female) with 3 extraction shards and
 *    one training task per layer; every job completes; the output tree is
 *    byte-identical to a local `saecap run` of the same config (its stage
 *    records aside); the daemons are stopped at the end, and by the
 *    script's watchdog if this test dies.
 * Both the jobs (slurm.cpus 1 -> --threads 1) and the local run use one
 * thread: extract's floats depend on the thread count. */
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
#define WAIT_SECONDS 400

static char *g_root, *g_model, *g_csv, *g_images;

static char *write_config(const char *name, const char *out_dir, const char *slurm_extra) {
  char *path = tu_join(g_root, name), text[2048];
  snprintf(text, sizeof text,
           "output_dir: %s\nseed: 11\nmodel:\n  path: %s\n"
           "data:\n  captions_csv: %s\n  images_dir: %s\n  split: {train: 0.5, val: 0.25, test: 0.25}\n"
           "extract:\n  layers: [0, 1]\n  max_new_tokens: 4\n  rows_per_shard: 200\n"
           "train:\n  d_sae: 64\n  k: 4\n  steps: 40\n  batch_size: 64\n  warmup_steps: 3\n"
           "  shuffle_buffer: 512\n  checkpoint_every: 10\n  eval_max_rows: 256\n  ce_loss: false\n"
           "analyze:\n  bootstrap: 20\n  permutations: 20\n  folds: 2\n  min_per_label: 1\n"
           "steer:\n  layers: [1]\n  k: [2]\n  random_controls: 1\n  max_samples: 2\n  max_new_tokens: 3\n"
           "  bootstrap: 20\n  permutations: 20\n"
           "report:\n  feature_cards: 1\n"
           "slurm:\n  time: \"00:10:00\"\n  mem: 500M\n  cpus: 1\n  extract_shards: 3\n%s",
           out_dir, g_model, g_csv, g_images, slurm_extra);
  tu_write_str(path, text);
  return path;
}

static int setup(void **state) {
  (void)state;
  g_root = tu_tmpdir("slurm");
  g_model = tu_join(g_root, "model");
  tu_tiny_model(g_model, "--seed 9 --layers 2");
  g_csv = tu_join(g_root, "captions.csv");
  char *demo = tu_src_path("data/demo/captions.csv");
  int st = tu_run(NULL, NULL, "{ head -n 1 '%s'; grep -i ',male,' '%s' | head -n %d; grep -i ',female,' '%s' | head -n %d; } > '%s'",
                  demo, demo, N_ROWS / 2, demo, N_ROWS / 2, g_csv);
  free(demo);
  g_images = tu_src_path("data/demo/images");
  return st ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  free(g_root), free(g_model), free(g_csv), free(g_images);
  return 0;
}

static char *read_in(const char *dir, const char *name) {
  char *p = tu_join(dir, name), *s = tu_read(p, NULL);
  if (!s) fail_msg("missing %s", p);
  free(p);
  return s;
}

static void test_scripts_and_chain(void **state) {
  (void)state;
  char *out = tu_join(g_root, "gen-out"), *jobs = tu_join(g_root, "gen-jobs");
  char *cfg = write_config("gen.yaml", out, "  partition: short\n  account: lab-1\n  gpus: 2\n"), *err = NULL;
  int st = tu_run(NULL, &err, "cd '%s' && '%s' slurm --config gen.yaml --out '%s'", g_root, tu_bin(), jobs);
  if (st) fail_msg("saecap slurm failed: %s", err);
  free(err);
  err = NULL;
  char *ex = read_in(jobs, "02_extract.sbatch"), *tr = read_in(jobs, "04_train.sbatch");
  char *pre = read_in(jobs, "01_prepare.sbatch"), *mg = read_in(jobs, "03_merge.sbatch");
  assert_non_null(strstr(ex, "#SBATCH --array=0-2\n"));
  assert_non_null(strstr(ex, "extract --config \"$config\" --shard $((SLURM_ARRAY_TASK_ID + 1))/3\n"));
  assert_non_null(strstr(ex, "#SBATCH --gres=gpu:2\n"));
  assert_null(strstr(pre, "--gres")); /* GPUs only where the model runs on them */
  assert_non_null(strstr(mg, "merge-shards --config \"$config\" --shards 3 --remove-parts\n"));
  assert_non_null(strstr(tr, "#SBATCH --array=0-1\n"));
  assert_non_null(strstr(tr, "layers=(0 1)\n"));
  assert_non_null(strstr(tr, "--layer \"${layers[$SLURM_ARRAY_TASK_ID]}\""));
  for (const char *s = pre; s; s = NULL) {
    assert_non_null(strstr(s, "#SBATCH --time=00:10:00\n#SBATCH --mem=500M\n#SBATCH --cpus-per-task=1\n"));
    assert_non_null(strstr(s, "#SBATCH --partition=short\n#SBATCH --account=lab-1\n"));
    assert_non_null(strstr(s, "/logs/prepare-%j.out\n"));
  }
  assert_non_null(strstr(ex, "/logs/extract-%A_%a.out\n"));
  char *logs = tu_join(jobs, "logs");
  assert_true(tu_exists(logs));
  assert_int_equal(tu_run(NULL, NULL, "cd '%s' && for f in *.sbatch submit.sh; do bash -n \"$f\" || exit 1; done", jobs), 0);
  /* A stub sbatch: logs its arguments, answers "<id>;cluster" like --parsable. */
  char *bin = tu_join(g_root, "stub-bin");
  assert_int_equal(tu_run(NULL, NULL,
                          "mkdir -p '%s' && cat > '%s/sbatch' <<'EOF'\n#!/bin/sh\n"
                          "n=$(($(cat \"$STUB_LOG\" 2>/dev/null | wc -l) + 1))\n"
                          "echo \"$n $*\" >> \"$STUB_LOG\"\necho \"$n;testcluster\"\nEOF\nchmod +x '%s/sbatch'",
                          bin, bin, bin),
                   0);
  char *ids = NULL, *log_path = tu_join(g_root, "stub.log");
  st = tu_run(&ids, &err, "rm -f '%s'; STUB_LOG='%s' PATH='%s':$PATH bash '%s/submit.sh'", log_path, log_path, bin, jobs);
  if (st) fail_msg("submit.sh failed: %s", err);
  assert_non_null(strstr(ids, "prepare 1\nextract 2\nmerge 3\ntrain 4\nsae_eval 5\n"));
  char *log = tu_read(log_path, NULL);
  assert_non_null(strstr(log, "1 --parsable 01_prepare.sbatch\n"));
  assert_non_null(strstr(log, "2 --parsable --dependency=afterok:1 02_extract.sbatch\n"));
  assert_non_null(strstr(log, "3 --parsable --dependency=afterok:2 03_merge.sbatch\n"));
  assert_non_null(strstr(log, "4 --parsable --dependency=afterok:3 04_train.sbatch\n"));
  assert_non_null(strstr(log, "5 --parsable --dependency=afterok:4 05_sae_eval.sbatch\n"));
  /* analyze, steer, report follow train, analyze, and all three (when built). */
  if (strstr(ids, "analyze 6\n")) assert_non_null(strstr(log, "6 --parsable --dependency=afterok:4 06_analyze.sbatch\n"));
  if (strstr(ids, "report 8\n"))
    assert_non_null(strstr(log, "8 --parsable --dependency=afterok:5:6:7 08_report.sbatch\n"));
  free(ids), free(log), free(err);
  /* After resubmitting a failed extract task alone (job 77): the rest. */
  st = tu_run(&ids, &err, "rm -f '%s'; STUB_LOG='%s' PATH='%s':$PATH bash '%s/submit.sh' --from merge --after 77",
              log_path, log_path, bin, jobs);
  assert_int_equal(st, 0);
  log = tu_read(log_path, NULL);
  assert_non_null(strstr(log, "1 --parsable --dependency=afterok:77 03_merge.sbatch\n"));
  assert_non_null(strstr(log, "2 --parsable --dependency=afterok:1:77 04_train.sbatch\n"));
  assert_null(strstr(log, "01_prepare"));
  free(ids), free(log), free(err), free(log_path), free(bin), free(logs);
  free(ex), free(tr), free(pre), free(mg), free(cfg), free(out), free(jobs);
}

/* Bad input: one line, no scripts. */
static void test_slurm_bad_input(void **state) {
  (void)state;
  char *out = tu_join(g_root, "bad-out"), *cfg = write_config("bad.yaml", out, "  partition: \"x y\"\n"), *err = NULL;
  char *jobs = tu_join(g_root, "bad-jobs");
  int st = tu_run(NULL, &err, "'%s' slurm --config '%s' --out '%s'", tu_bin(), cfg, jobs);
  tu_assert_one_line_error(st, err, "bad.yaml", "slurm.partition", "'x y'", NULL);
  assert_false(tu_exists(jobs));
  free(err), free(cfg);
  cfg = write_config("good.yaml", out, "");
  char *spaced = tu_join(g_root, "a b");
  st = tu_run(NULL, &err, "'%s' slurm --config '%s' --out '%s'", tu_bin(), cfg, spaced);
  tu_assert_one_line_error(st, err, "blanks or quotes", NULL);
  free(err);
  st = tu_run(NULL, &err, "'%s' slurm --config '%s'", tu_bin(), cfg);
  tu_assert_one_line_error(st, err, "--out DIR is required", NULL);
  free(err), free(spaced), free(cfg), free(jobs), free(out);
}

/* merge-shards with a part missing: one line naming it, nothing merged. */
static void test_merge_missing_part(void **state) {
  (void)state;
  char *out = tu_join(g_root, "miss-out"), *cfg = write_config("miss-out.yaml", out, ""), *err = NULL;
  assert_int_equal(tu_run(NULL, &err, "'%s' -q prepare --config '%s' && '%s' -q --threads 1 extract --config '%s' --shard 1/2",
                          tu_bin(), cfg, tu_bin(), cfg), 0);
  free(err);
  int st = tu_run(NULL, &err, "'%s' merge-shards --config '%s' --shards 2", tu_bin(), cfg);
  tu_assert_one_line_error(st, err, "activations.part-2-of-2", "missing", "--shard 2/2", NULL);
  char *acts = tu_join(out, "activations"), *caps = tu_join(out, "captions");
  assert_false(tu_exists(acts));
  assert_false(tu_exists(caps));
  free(err);
  st = tu_run(NULL, &err, "'%s' merge-shards --config '%s'", tu_bin(), cfg);
  tu_assert_one_line_error(st, err, "--shards N is required", NULL);
  free(err), free(acts), free(caps), free(cfg), free(out);
}

static char *tree_digest(const char *dir) {
  /* Text outputs may name their own folder (the report names output_dir
   * and the config <output_dir>.yaml): that path reads as OUT. */
  char *out = NULL;
  int st = tu_run(&out, NULL,
                  "cd '%s' && find . -type f ! -path './stages/*' -print0 | LC_ALL=C sort -z | "
                  "while IFS= read -r -d '' f; do case $f in "
                  "*.html|*.json|*.jsonl|*.svg|*.md) h=$(sed 's#%s#OUT#g' \"$f\" | sha256sum) ;; "
                  "*) h=$(sha256sum < \"$f\") ;; esac; echo \"${h%%%% *} $f\"; done",
                  dir, dir);
  assert_int_equal(st, 0);
  return out;
}

static void test_real_cluster(void **state) {
  (void)state;
  char *cl = tu_join(g_root, "cluster"), *conf = NULL, *err = NULL;
  tu_run(NULL, NULL, "mkdir -p '%s'", cl);
  char *script = tu_src_path("tests/slurm/cluster.sh");
  int st = tu_run(&conf, &err, "'%s' start '%s' %d", script, cl, (int)getpid());
  if (st == 77) {
    fprintf(stderr, "test_slurm: SKIPPED the real-cluster test: %s", err);
    free(conf), free(err), free(script), free(cl);
    skip();
  }
  if (st) fail_msg("cluster.sh start failed (%d): %s", st, err);
  free(err);
  err = NULL;
  char *slurm_conf = tu_join(cl, "slurm.conf");
  setenv("SLURM_CONF", slurm_conf, 1);
  char *out = tu_join(g_root, "cl-out"), *jobs = tu_join(g_root, "cl-jobs");
  char *cfg = write_config("cl-out.yaml", out, ""), *ids = NULL;
  st = tu_run(&ids, &err, "cd '%s' && '%s' slurm --config cl-out.yaml --out '%s' --submit", g_root, tu_bin(), jobs);
  if (st) fail_msg("saecap slurm --submit failed: %s", err);
  fprintf(stderr, "test_slurm: submitted:\n%s", ids);
  assert_non_null(strstr(ids, "extract "));
  /* Wait for the chain; a failed job leaves its dependents pending forever. */
  char *q = NULL;
  int done = 0;
  for (int i = 0; i < WAIT_SECONDS * 2 && !done; i++) {
    free(q);
    q = NULL;
    tu_run(&q, NULL, "squeue -h -o '%%i %%T %%r'");
    if (!*q) done = 1;
    else if (strstr(q, "DependencyNeverSatisfied")) break;
    else usleep(500000);
  }
  char *logs = NULL;
  tu_run(&logs, NULL, "tail -n 5 '%s'/logs/*.out", jobs);
  if (!done) fail_msg("the chain did not finish: squeue:\n%s\nlogs:\n%s", q, logs);
  /* Every job and array task completed. */
  char *states = NULL;
  tu_run(&states, NULL, "for j in $(awk '{print $2}' <<'EOF'\n%sEOF\n); do scontrol -o show job $j; done | "
                        "grep -o 'JobState=[A-Z_]*' | sort | uniq -c", ids);
  fprintf(stderr, "test_slurm: job states:\n%s", states);
  if (!strstr(states, "JobState=COMPLETED") || strstr(states, "FAILED") || strstr(states, "CANCELLED") ||
      strstr(states, "TIMEOUT"))
    fail_msg("not every job completed:\n%s\nlogs:\n%s", states, logs);
  /* 3 extract tasks + one train task per layer ran. */
  assert_int_equal(tu_run(NULL, NULL, "ls '%s'/logs/extract-*_0.out '%s'/logs/extract-*_2.out '%s'/logs/train-*_1.out",
                          jobs, jobs, jobs), 0);
  assert_int_equal(tu_run(NULL, NULL, "cd '%s' && ! ls -d activations.part-* 2>/dev/null", out), 0);
  tu_run(NULL, NULL, "'%s' stop '%s'", script, cl);
  /* The same config run locally, into another folder. */
  char *local = tu_join(g_root, "local-out"), *lcfg = write_config("local-out.yaml", local, ""), *last = NULL;
  tu_run(&last, NULL, "for s in train sae-eval analyze steer report; do '%s' $s --help >/dev/null 2>&1 || break; p=$s; done; "
                      "echo ${p:-extract}", tu_bin());
  last[strcspn(last, "\n")] = 0;
  free(err);
  err = NULL;
  st = tu_run(NULL, &err, "'%s' -q --threads 1 run --config '%s' --to %s", tu_bin(), lcfg, last);
  if (st) fail_msg("local run failed: %s", err);
  char *a = tree_digest(out), *b = tree_digest(local);
  if (strcmp(a, b)) fail_msg("SLURM and local outputs differ:\nslurm:\n%s\nlocal:\n%s", a, b);
  fprintf(stderr, "test_slurm: %d files byte-identical to the local run (up to %s)\n", tu_count_lines(a), last);
  free(a), free(b), free(local), free(lcfg), free(last), free(states), free(logs), free(q), free(ids), free(cfg);
  free(out), free(jobs), free(slurm_conf), free(conf), free(err), free(script), free(cl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scripts_and_chain),
      cmocka_unit_test(test_slurm_bad_input),
      cmocka_unit_test(test_merge_missing_part),
      cmocka_unit_test(test_real_cluster),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
