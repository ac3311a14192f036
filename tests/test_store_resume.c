/* test_store_resume.c: the activation store's resume rule. An interrupted
 * run (writer dropped without finish, leftovers planted, a real SIGKILL in
 * a child at several points) that is resumed must leave byte-identical
 * files to an uninterrupted run; a full disk (RLIMIT_FSIZE) gives one line
 * naming the file and leaves what was committed valid; a directory written
 * with other settings or missing a listed shard is refused. The captions
 * file follows the same rule. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/fs.h"
#include "store/captions.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "store/writer.h"
#include "tu.h"

#define D 16
#define ROWS_PER_SHARD 12
#define N_SAMPLES 40
#define BIG_SAMPLE 9
#define CAPTION_COMMIT 5
#define MAX_ROWS (4 * ROWS_PER_SHARD + 5)
#define FSIZE_LIMIT 2500 /* bytes: above small shards and the manifest, below the big shard */

/* ==== one "extraction": two layers and the captions of one language ====== */

static int n_rows_of(int64_t s) {
  if (s == BIG_SAMPLE) return MAX_ROWS;
  if (s % 7 == 6) return 0;
  return 2 + (int)(s * 5 % 7);
}

static float value_of(int layer, int64_t s, int r, int j) {
  uint32_t h = (uint32_t)(layer * 7919 + s * 104729 + r * 131 + j) * 2654435761U;
  h ^= h >> 13;
  return (float)(h & 0xfffff) / 1024.0f - 512.0f;
}

static const int layers[2] = {1, 4};

typedef struct run {
  store_writer *w[2];  /* layers 1 and 4 */
  store_captions *cap;
} run;

static store_writer_config config_for(const char *root, int layer, char *dir_out[2], int i) {
  store_writer_config c = store_writer_config_default();
  dir_out[i] = store_layer_dir(root, "en", layer);
  c.dir = dir_out[i];
  c.language = "en";
  c.layer = layer;
  c.d = D;
  c.rows_per_shard = ROWS_PER_SHARD;
  c.config_hash = "h1";
  c.model_path = "m";
  c.prompt = "p";
  c.saecap_version = "0.1.0";
  return c;
}

/* Opens everything; returns the sample to restart from (the smallest
 * resume point, as the extraction stage will do). */
static int open_run(const char *root, run *r) {
  char *dirs[2];
  int64_t from = INT64_MAX;
  for (int i = 0; i < 2; i++) {
    store_writer_config c = config_for(root, layers[i], dirs, i);
    int rc = store_writer_open(&r->w[i], &c);
    free(dirs[i]);
    if (rc) return rc;
    int64_t s = store_writer_resume_sample(r->w[i]);
    if (s < from) from = s;
  }
  char *cdir = tu_join(root, "captions");
  int rc = store_captions_open(&r->cap, cdir, "en", CAPTION_COMMIT);
  free(cdir);
  if (rc) return rc;
  int64_t s = store_captions_resume_sample(r->cap);
  return (int)(s < from ? s : from);
}

static void close_run(run *r) {
  store_writer_free(r->w[0]);
  store_writer_free(r->w[1]);
  store_captions_free(r->cap);
  memset(r, 0, sizeof *r);
}

/* Sample s of layer writer i. */
static int feed_layer(run *r, int i, int64_t s) {
  float acts[MAX_ROWS * D];
  int32_t pos[MAX_ROWS], tok[MAX_ROWS];
  uint8_t seg[MAX_ROWS];
  int n = n_rows_of(s);
  for (int k = 0; k < n; k++) {
    pos[k] = k;
    tok[k] = (int32_t)(s + k);
    seg[k] = (uint8_t)(k % 3);
  }
  for (int k = 0; k < n * D; k++) acts[k] = value_of(layers[i], s, k / D, k % D);
  int rc = store_writer_begin_sample(r->w[i], s);
  if (!rc) rc = store_writer_append(r->w[i], acts, n, pos, tok, seg);
  if (!rc) rc = store_writer_end_sample(r->w[i]);
  return rc;
}

static int do_sample(run *r, int64_t s) {
  int rc = feed_layer(r, 0, s);
  if (!rc) rc = feed_layer(r, 1, s);
  char caption[64];
  snprintf(caption, sizeof caption, "caption %lld \"quoted\" \xd9\x87\xd9\x88", (long long)s);
  int32_t ids[4];
  int n = n_rows_of(s) < 4 ? n_rows_of(s) : 4;
  for (int k = 0; k < n; k++) ids[k] = (int32_t)(s + k);
  store_caption row = {s, "img", "train", "male", "Describe.", caption, ids, n};
  return rc ? rc : store_captions_add(r->cap, &row);
}

/* Runs samples [from, to); finishes when to == N_SAMPLES. */
static int run_range(run *r, int64_t from, int64_t to) {
  int rc = 0;
  for (int64_t s = from; s < to && !rc; s++) rc = do_sample(r, s);
  if (!rc && to == N_SAMPLES) {
    for (int i = 0; i < 2 && !rc; i++) rc = store_writer_finish(r->w[i]);
    if (!rc) rc = store_captions_finish(r->cap);
  }
  return rc;
}

static void full_run(const char *root) {
  run r;
  assert_int_equal(open_run(root, &r), 0);
  assert_int_equal(run_range(&r, 0, N_SAMPLES), 0);
  close_run(&r);
}

/* Every file under a, by relative name, equals the one under b, and the
 * file lists agree. */
static void assert_same_tree(const char *a, const char *b) {
  char *la, *lb;
  assert_int_equal(tu_run(&la, NULL, "cd '%s' && find . -type f | sort", a), 0);
  assert_int_equal(tu_run(&lb, NULL, "cd '%s' && find . -type f | sort", b), 0);
  assert_string_equal(la, lb);
  assert_true(tu_count_lines(la) >= 8);
  char *out;
  int rc = tu_run(&out, NULL, "diff -r '%s' '%s' && echo same", a, b);
  if (rc) fail_msg("trees differ: %s", out);
  free(out);
  free(la);
  free(lb);
}

/* ==== interruption by dropping the writers ================================ */

static void plant_leftovers(const char *root) {
  char *dir = store_layer_dir(root, "en", 4);
  char *p = tu_join(dir, "shard_00077.safetensors");
  tu_write_str(p, "half a shard");
  free(p);
  p = tu_join(dir, "shard_00001.safetensors.tmp");
  tu_write_str(p, "junk");
  free(p);
  p = tu_join(dir, "manifest.json.tmp");
  tu_write_str(p, "{");
  free(p);
  free(dir);
}

static void test_resume_points(void **state) {
  (void)state;
  char *ref = tu_tmpdir("store_ref");
  full_run(ref);
  /* Cut after these many samples: before the first shard, right after a
   * shard, inside the big sample's shard, near the end, at the end. */
  static const int cuts[] = {0, 3, 5, 10, 11, 23, 39, 40};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "store_cut%d", cuts[i]);
    char *root = tu_tmpdir(name);
    run r;
    assert_int_equal(open_run(root, &r), 0);
    assert_int_equal(run_range(&r, 0, cuts[i]), 0);
    /* Layer 1 runs ahead of layer 4 and the captions (it may commit a
     * shard they don't have): the restart point is the smallest. */
    for (int64_t s = cuts[i]; s < cuts[i] + 8 && s < N_SAMPLES; s++)
      assert_int_equal(feed_layer(&r, 0, s), 0);
    close_run(&r);
    plant_leftovers(root);
    int64_t from = open_run(root, &r);
    assert_true(from >= 0 && from <= cuts[i]);
    assert_int_equal(run_range(&r, from, N_SAMPLES), 0);
    close_run(&r);
    assert_false(tu_has_tmp_files(root));
    assert_same_tree(ref, root);
    free(root);
  }
  free(ref);
}

/* ==== interruption by SIGKILL ============================================= */

/* Child: runs to the end, killing itself with SIGKILL after `kill_after`
 * samples (a real kill -9: no destructors, no flush). */
static void child_run(const char *root, int kill_after) {
  run r;
  int64_t from = open_run(root, &r);
  if (from < 0) _exit(3);
  for (int64_t s = from; s < N_SAMPLES; s++) {
    if (s == kill_after) raise(SIGKILL);
    if (do_sample(&r, s)) _exit(4);
  }
  _exit(run_range(&r, N_SAMPLES, N_SAMPLES) ? 5 : 0);
}

static int fork_run(const char *root, int kill_after) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_run(root, kill_after);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void test_sigkill(void **state) {
  (void)state;
  char *ref = tu_tmpdir("store_kref");
  full_run(ref);
  char *root = tu_tmpdir("store_kill");
  /* Killed three times, each resume getting further, then finished. */
  assert_int_equal(fork_run(root, 4), 128 + SIGKILL);
  assert_int_equal(fork_run(root, 17), 128 + SIGKILL);
  assert_int_equal(fork_run(root, 18), 128 + SIGKILL);
  assert_int_equal(fork_run(root, 33), 128 + SIGKILL);
  assert_int_equal(fork_run(root, -1), 0);
  assert_same_tree(ref, root);
  /* A finished directory: resuming does nothing and changes nothing. */
  assert_int_equal(fork_run(root, -1), 0);
  assert_same_tree(ref, root);
  free(root);
  free(ref);
}

/* Kills a full run from outside after delay_us, wherever it is (possibly
 * inside a shard or manifest write); returns how the child ended. */
static int fork_run_killed_after(const char *root, useconds_t delay_us) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_run(root, -1);
  usleep(delay_us);
  kill(pid, SIGKILL);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void test_sigkill_from_outside(void **state) {
  (void)state;
  char *ref = tu_tmpdir("store_oref");
  full_run(ref);
  char *root = tu_tmpdir("store_okill");
  /* Fixed delays; where each lands varies from run to run, the outcome
   * must not. A child that finished before the kill is fine too. */
  static const useconds_t delays[] = {3000, 9000, 1000, 20000, 5000};
  for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
    int rc = fork_run_killed_after(root, delays[i]);
    assert_true(rc == 128 + SIGKILL || rc == 0);
  }
  assert_int_equal(fork_run(root, -1), 0);
  assert_same_tree(ref, root);
  free(root);
  free(ref);
}

/* ==== disk full =========================================================== */

/* Child: file size limit that the manifest and the small shards fit under
 * but the big sample's shard does not. Exit 0 when the error was right. */
static void child_disk_full(const char *root, rlim_t limit) {
  signal(SIGXFSZ, SIG_IGN);
  run r;
  int64_t from = open_run(root, &r);
  if (from < 0) _exit(3);
  struct rlimit rl = {limit, limit};
  if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(6);
  int rc = run_range(&r, 0, N_SAMPLES);
  const char *msg = sc_error_get();
  int ok = rc == SC_ERR_IO && strstr(msg, "layer_1/shard_0000") && strstr(msg, "File too large") &&
           !strchr(msg, '\n');
  if (!ok) fprintf(stderr, "rc %d: %s\n", rc, msg);
  /* The writer stays failed with the same message. */
  ok = ok && store_writer_end_sample(r.w[0]) == SC_ERR_IO && !strcmp(msg, sc_error_get());
  _exit(ok ? 0 : 7);
}

static void test_disk_full(void **state) {
  (void)state;
  char *root = tu_tmpdir("store_full");
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_disk_full(root, FSIZE_LIMIT);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  /* What was committed reads back; nothing half-written is left. */
  assert_false(tu_has_tmp_files(root));
  char *dir = store_layer_dir(root, "en", 1);
  store_filter f = store_filter_default();
  f.allow_incomplete = 1;
  store_reader *rd;
  assert_int_equal(store_reader_open(&rd, (const char *const *)&dir, 1, &f), 0);
  assert_true(store_reader_n_rows(rd) >= ROWS_PER_SHARD);
  assert_int_equal(store_reader_verify(rd), 0);
  assert_false(store_reader_manifest(rd, 0)->complete);
  store_reader_free(rd);
  /* With space again the run resumes and ends like an uninterrupted one. */
  run r;
  int64_t from = open_run(root, &r);
  assert_true(from > 0 && from <= BIG_SAMPLE);
  assert_int_equal(run_range(&r, from, N_SAMPLES), 0);
  close_run(&r);
  char *ref = tu_tmpdir("store_full_ref");
  full_run(ref);
  assert_same_tree(ref, root);
  free(ref);
  free(dir);
  free(root);
}

/* ==== refusals on resume ================================================== */

static void test_resume_refusals(void **state) {
  (void)state;
  char *root = tu_tmpdir("store_refuse");
  run r;
  assert_int_equal(open_run(root, &r), 0);
  assert_int_equal(run_range(&r, 0, 20), 0);
  close_run(&r);
  char *dirs[2];
  store_writer_config c = config_for(root, 1, dirs, 0);
  c.config_hash = "h2";
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "layer_1/manifest.json: was written with config_hash 'h1', "
                                         "this run has 'h2'"));
  c.config_hash = "h1";
  c.dtype = SC_DTYPE_F32;
  assert_int_equal(store_writer_open(&w, &c), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "dtype 'BF16', this run has 'F32'"));
  c.dtype = SC_DTYPE_BF16;
  c.rows_per_shard = 99;
  assert_int_equal(store_writer_open(&w, &c), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "rows_per_shard 12, this run has 99"));
  c.rows_per_shard = ROWS_PER_SHARD;
  char *s1 = tu_join(dirs[0], "shard_00001.safetensors");
  assert_int_equal(remove(s1), 0);
  assert_int_equal(store_writer_open(&w, &c), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "shard_00001.safetensors: listed in manifest.json but missing"));
  /* Nothing was touched by the refusals: the other shards are still there. */
  char *s0 = tu_join(dirs[0], "shard_00000.safetensors");
  assert_true(tu_exists(s0));
  /* Captions: a jsonl shorter than its committed length. */
  char *cj = tu_join(root, "captions/en.jsonl");
  tu_write_str(cj, "{}\n");
  store_captions *cap;
  char *cdir = tu_join(root, "captions");
  assert_int_equal(store_captions_open(&cap, cdir, "en", 0), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "captions/en.jsonl: shorter than the"));
  free(cdir);
  free(cj);
  free(s0);
  free(s1);
  free(dirs[0]);
  free(root);
}

static void test_captions_content(void **state) {
  (void)state;
  char *root = tu_tmpdir("store_capc");
  full_run(root);
  char *p = tu_join(root, "captions/en.jsonl");
  size_t n;
  char *s = tu_read(p, &n);
  assert_int_equal(tu_count_lines(s), N_SAMPLES);
  assert_non_null(strstr(s, "{\"sample_index\":0,\"image_id\":\"img\",\"split\":\"train\","
                            "\"ground_truth_gender\":\"male\",\"prompt\":\"Describe.\","
                            "\"caption\":\"caption 0 \\\"quoted\\\" \xd9\x87\xd9\x88\","
                            "\"caption_ids\":[0,1]}\n"));
  free(s);
  free(p);
  p = tu_join(root, "captions/en.state.json");
  s = tu_read(p, &n);
  assert_non_null(strstr(s, "\"complete\":\ttrue"));
  free(s);
  free(p);
  free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_points),   cmocka_unit_test(test_sigkill),
      cmocka_unit_test(test_sigkill_from_outside),
      cmocka_unit_test(test_disk_full),       cmocka_unit_test(test_resume_refusals),
      cmocka_unit_test(test_captions_content),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
