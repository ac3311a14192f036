/* test_pool.c: analysis/pool.h against the numpy reference
 * (tests/reference/pool_reference.py, which reads the same shards with
 * st_numpy.py): per-sample segment means and the sparse SAE reduction over
 * bf16 and f32 stores cut into several shards, samples without rows, the
 * per-token callback, and bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/pool.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/safetensors.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "store/samples.h"
#include "store/writer.h"
#include "tu.h"

#define D 8
#define NF 12
#define N_SAMPLES 9

/* samples.jsonl indices (gaps on purpose) and rows per sample */
static const int64_t sample_index[N_SAMPLES] = {0, 1, 2, 4, 5, 7, 8, 10, 11};

static void write_samples(const char *path) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  for (int i = 0; i < N_SAMPLES; i++)
    fprintf(fp, "{\"sample_index\":%lld,\"image_id\":\"img%d\",\"split\":\"train\",\"ground_truth_gender\":\"%s\"}\n",
            (long long)sample_index[i], i / 2, i % 2 ? "female" : "male");
  fclose(fp);
}

/* Rows of sample i: image, prompt, caption counts (sample 3 has no caption,
 * sample 6 stores no rows at all). */
static void seg_counts(int i, int c[3]) {
  c[0] = 3 + i % 2;
  c[1] = 2 + i % 3;
  c[2] = i == 3 ? 0 : 4 + (i * 5) % 7;
  if (i == 6) c[0] = c[1] = c[2] = 0;
}

static void write_store(const char *dir, sc_dtype t, uint64_t seed) {
  store_writer_config c = store_writer_config_default();
  c.dir = dir, c.language = "en", c.layer = 2, c.d = D, c.dtype = t, c.rows_per_shard = 13;
  c.model_path = "m", c.config_hash = "h", c.prompt = "p", c.saecap_version = "0";
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), 0);
  sc_rng r;
  sc_rng_seed(&r, seed);
  for (int i = 0; i < N_SAMPLES; i++) {
    int cnt[3];
    seg_counts(i, cnt);
    int n = cnt[0] + cnt[1] + cnt[2];
    float acts[64 * D];
    int32_t pos[64], tok[64];
    uint8_t seg[64];
    for (int k = 0; k < n; k++) {
      for (int j = 0; j < D; j++) acts[k * D + j] = (float)(sc_rng_normal(&r) * 1.3);
      pos[k] = k;
      seg[k] = (uint8_t)(k < cnt[0] ? 0 : k < cnt[0] + cnt[1] ? 1 : 2);
      tok[k] = 200 + (int32_t)sc_rng_below(&r, 50);
    }
    assert_int_equal(store_writer_begin_sample(w, sample_index[i]), 0);
    if (n) assert_int_equal(store_writer_append(w, acts, n, pos, tok, seg), 0);
    assert_int_equal(store_writer_end_sample(w), 0);
  }
  assert_int_equal(store_writer_finish(w), 0);
  assert_true(store_writer_n_shards(w) >= 3);
  store_writer_free(w);
}

static void write_sae(const char *dir) {
  sae_cfg c;
  memset(&c, 0, sizeof c);
  c.arch = SAE_ARCH_RELU, c.d = D, c.n = NF, c.apply_b_dec_to_input = 1;
  sae *s;
  assert_int_equal(sae_create(&s, &c), 0);
  sc_rng r;
  sc_rng_seed(&r, 77);
  for (int k = 0; k < NF * D; k++) s->W_enc[k] = (float)(sc_rng_normal(&r) * 0.5), s->W_dec[k] = s->W_enc[k];
  for (int k = 0; k < NF; k++) s->b_enc[k] = (float)(-0.6 + 0.1 * (k % 4));
  for (int k = 0; k < D; k++) s->b_dec[k] = (float)(0.05 * k);
  assert_int_equal(sae_save_saelens(s, NULL, dir), 0);
  sae_free(s);
}

static const st_tensor *need(const st_file *f, const char *name) {
  const st_tensor *t = st_file_find(f, name);
  if (!t) fail_msg("reference tensor %s missing", name);
  return t;
}

typedef struct tok_log {
  int64_t calls, entries;
  int64_t last_sample;
  int order_ok;
} tok_log;

static int on_token(void *user, int64_t sample, const store_row_meta *m, const int32_t *f, const float *v, int n) {
  tok_log *t = user;
  (void)f;
  if (sample < t->last_sample || m->segment != 2) t->order_ok = 0;
  for (int k = 0; k < n; k++)
    if (!(v[k] > 0)) t->order_ok = 0;
  t->last_sample = sample;
  t->calls++;
  t->entries += n;
  return 0;
}

static void check_store(sc_dtype dt, int64_t chunk) {
  char *dir = tu_tmpdir(dt == SC_DTYPE_BF16 ? "pool_bf16" : "pool_f32");
  char *store = tu_join(dir, "layer_2"), *samples = tu_join(dir, "samples.jsonl"), *sd = tu_join(dir, "sae");
  char *ref = tu_join(dir, "ref.safetensors");
  write_samples(samples);
  write_store(store, dt, 5);
  write_sae(sd);
  char *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 %s/tests/reference/pool_reference.py %s %s %s %s 0,1,2 2", tu_src(),
                  store, samples, sd, ref);
  if (st) fail_msg("pool_reference.py failed: %s", err ? err : "");
  free(err);

  store_samples smp;
  assert_int_equal(store_samples_load(samples, &smp), 0);
  sae *s;
  assert_int_equal(sae_load(&s, sd), 0);
  an_pool_opts o = an_pool_opts_default();
  o.mean_segments = 7u;
  o.sae_segments = 1u << STORE_SEG_CAPTION;
  o.chunk_rows = chunk;
  tok_log tl = {0, 0, -1, 1};
  o.per_token = on_token;
  o.user = &tl;
  an_pooled means[STORE_N_SEGMENTS];
  an_sae_pooled f;
  const char *dirs[1] = {store};
  assert_int_equal(an_pool(dirs, 1, &smp, &o, s, means, &f), 0);

  st_file *rf;
  assert_int_equal(st_file_open(&rf, ref), 0);
  for (int sg = 0; sg < 3; sg++) {
    char name[16];
    snprintf(name, sizeof name, "mean_%d", sg);
    const double *m = need(rf, name)->data;
    snprintf(name, sizeof name, "count_%d", sg);
    const int64_t *c = need(rf, name)->data;
    assert_int_equal(means[sg].n, N_SAMPLES);
    assert_int_equal(means[sg].d, D);
    for (int i = 0; i < N_SAMPLES; i++) {
      assert_int_equal(means[sg].count[i], c[i]);
      for (int j = 0; j < D; j++)
        if (fabs(means[sg].x[i * D + j] - m[i * D + j]) > 1e-6 * (1 + fabs(m[i * D + j])))
          fail_msg("mean seg %d sample %d dim %d: %.9g vs %.9g", sg, i, j, means[sg].x[i * D + j], m[i * D + j]);
    }
    an_pooled_free(&means[sg]);
  }
  const double *fm = need(rf, "f_mean")->data, *fx = need(rf, "f_max")->data;
  const int64_t *fp = need(rf, "f_pos")->data, *ft = need(rf, "f_tok")->data;
  const int64_t *fc = need(rf, "f_count")->data, *fpos = need(rf, "first_pos")->data;
  assert_int_equal(f.n, N_SAMPLES);
  assert_int_equal(f.n_features, NF);
  int64_t ref_nnz = 0, tok_rows = 0;
  for (int i = 0; i < N_SAMPLES; i++) {
    assert_int_equal(f.count[i], fc[i]);
    assert_int_equal(f.first_pos[i], fpos[i]);
    tok_rows += fc[i];
    int64_t e = f.row_ptr[i];
    for (int j = 0; j < NF; j++) {
      double want = fm[i * NF + j];
      if (!(fx[i * NF + j] > 0)) continue;
      ref_nnz++;
      if (e >= f.row_ptr[i + 1] || f.feature[e] != j)
        fail_msg("sample %d: feature %d fired in the reference only", i, j);
      if (fabs(f.mean[e] - want) > 1e-5 || fabs(f.max[e] - fx[i * NF + j]) > 1e-5)
        fail_msg("sample %d feature %d: mean %.8g/%.8g max %.8g/%.8g", i, j, f.mean[e], want, f.max[e], fx[i * NF + j]);
      assert_int_equal(f.max_pos[e], fp[i * NF + j]);
      assert_int_equal(f.max_token[e], ft[i * NF + j]);
      e++;
    }
    assert_int_equal(e, f.row_ptr[i + 1]);
  }
  assert_int_equal(f.nnz, ref_nnz);
  assert_true(ref_nnz > 20); /* the SAE fires enough to test something */
  assert_int_equal(tl.calls, tok_rows);
  assert_true(tl.order_ok);
  assert_int_equal(f.count[3], 0); /* no caption rows */
  assert_int_equal(f.first_pos[6], -1);
  assert_int_equal(f.row_ptr[4] - f.row_ptr[3], 0);
  st_file_free(rf);
  an_sae_pooled_free(&f);
  sae_free(s);
  store_samples_free(&smp);
  free(dir), free(store), free(samples), free(sd), free(ref);
}

static void test_bf16_small_chunks(void **state) {
  (void)state;
  check_store(SC_DTYPE_BF16, 5); /* tiles cut through samples */
}

static void test_f32_auto_chunk(void **state) {
  (void)state;
  check_store(SC_DTYPE_F32, 0);
}

static void test_means_only_and_errors(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pool_err");
  char *store = tu_join(dir, "layer_2"), *samples = tu_join(dir, "samples.jsonl");
  write_samples(samples);
  write_store(store, SC_DTYPE_F32, 9);
  store_samples smp;
  assert_int_equal(store_samples_load(samples, &smp), 0);
  const char *dirs[1] = {store};
  an_pool_opts o = an_pool_opts_default();
  o.mean_segments = 1u << STORE_SEG_PROMPT;
  an_pooled means[STORE_N_SEGMENTS];
  memset(means, 0, sizeof means);
  assert_int_equal(an_pool(dirs, 1, &smp, &o, NULL, means, NULL), 0);
  assert_non_null(means[STORE_SEG_PROMPT].x);
  assert_null(means[STORE_SEG_CAPTION].x); /* untouched */
  an_pooled_free(&means[STORE_SEG_PROMPT]);

  /* a store row whose sample is not in samples.jsonl */
  smp.rows[3].sample_index = 3; /* 4 -> 3: sample_index 4 is gone */
  assert_int_equal(an_pool(dirs, 1, &smp, &o, NULL, means, NULL), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "layer_2: sample_index 4 is not in samples.jsonl"));
  assert_null(means[STORE_SEG_PROMPT].x);
  smp.rows[3].sample_index = 4;

  /* an SAE of another width */
  sae_cfg c;
  memset(&c, 0, sizeof c);
  c.arch = SAE_ARCH_RELU, c.d = D + 1, c.n = 4;
  sae *s;
  assert_int_equal(sae_create(&s, &c), 0);
  an_sae_pooled f;
  o.sae_segments = 1u << STORE_SEG_CAPTION;
  assert_int_equal(an_pool(dirs, 1, &smp, &o, s, means, &f), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "d is 8, the SAE expects 9"));
  sae_free(s);

  /* a missing store */
  const char *none[1] = {"/nonexistent/layer_9"};
  assert_true(an_pool(none, 1, &smp, &o, NULL, means, NULL) < 0);
  assert_non_null(strstr(sc_error_get(), "/nonexistent/layer_9"));
  store_samples_free(&smp);
  free(dir), free(store), free(samples);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bf16_small_chunks),
      cmocka_unit_test(test_f32_auto_chunk),
      cmocka_unit_test(test_means_only_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
