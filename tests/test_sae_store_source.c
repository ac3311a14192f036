/* test_sae_store_source.c: the shuffled store-backed SAE source
 * (sae/sae_store_source.h) over a synthetic store written with
 * store/writer.h: 2 languages x 24 samples x 20 rows, d = 8, each row
 * carrying (sample, position, language, token, segment) in its first five
 * values so a row read back names itself. Checked: the reader filters
 * (segments, special tokens, split) keep exactly the rows this test
 * expects; one epoch is a permutation of the kept rows; buffers mix both
 * languages; same seed -> same stream, other seed -> another; tell/seek
 * resumes mid-buffer and across epochs exactly; bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "sae/sae_store_source.h"
#include "store/reader.h"
#include "store/writer.h"
#include "tu.h"

#define D 8
#define N_SAMPLES 24
#define ROWS 20
#define IMAGE_TOKEN 262144

static char *g_root;
static char *g_dirs[2];
static const int32_t SPECIAL[] = {2, 105, 106, 1};

/* Token of (sample, position): 0 <bos>, 1 <start_of_turn>, 2..7 image soft
 * tokens, caption from 14 on, ending with 106 for odd samples. */
static int32_t token_of(int s, int p) {
  if (p == 0) return 2;
  if (p == 1) return 105;
  if (p < 8) return IMAGE_TOKEN;
  if (p == ROWS - 1 && s % 2) return 106;
  return 1000 + s * 31 + p;
}
static uint8_t segment_of(int p) { return p >= 2 && p < 8 ? 0 : p < 14 ? 1 : 2; }
/* Split per sample: 0 train, 1 val, 2 test. */
static int split_of_sample(int s) { return s % 6 == 4 ? 1 : s % 6 == 5 ? 2 : 0; }

static void write_dir(const char *dir, const char *lang, int li) {
  store_writer_config c = store_writer_config_default();
  c.dir = dir, c.language = lang, c.layer = 0, c.d = D, c.dtype = SC_DTYPE_F32, c.rows_per_shard = 50;
  c.model_path = "m", c.config_hash = "h", c.prompt = "p", c.saecap_version = "t";
  store_writer *w = NULL;
  assert_int_equal(store_writer_open(&w, &c), 0);
  float acts[ROWS * D];
  int32_t pos[ROWS], tok[ROWS];
  uint8_t seg[ROWS];
  for (int s = 0; s < N_SAMPLES; s++) {
    for (int p = 0; p < ROWS; p++) {
      pos[p] = p, tok[p] = token_of(s, p), seg[p] = segment_of(p);
      float *a = acts + p * D;
      a[0] = (float)s, a[1] = (float)p, a[2] = (float)li, a[3] = (float)tok[p], a[4] = seg[p];
      a[5] = 1.0f, a[6] = (float)(s * p % 7), a[7] = -2.0f;
    }
    assert_int_equal(store_writer_begin_sample(w, s), 0);
    assert_int_equal(store_writer_append(w, acts, ROWS, pos, tok, seg), 0);
    assert_int_equal(store_writer_end_sample(w), 0);
  }
  assert_int_equal(store_writer_finish(w), 0);
  store_writer_free(w);
}

static int setup(void **state) {
  (void)state;
  g_root = tu_tmpdir("sae_store_source");
  g_dirs[0] = tu_join(g_root, "en");
  g_dirs[1] = tu_join(g_root, "ar");
  write_dir(g_dirs[0], "en", 0);
  write_dir(g_dirs[1], "ar", 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_run(NULL, NULL, "rm -rf '%s'", g_root);
  free(g_root), free(g_dirs[0]), free(g_dirs[1]);
  return 0;
}

static int8_t g_split[N_SAMPLES];

/* Reader over both languages: caption + image rows, no specials, train split. */
static store_reader *open_filtered(unsigned segments) {
  for (int s = 0; s < N_SAMPLES; s++) g_split[s] = (int8_t)split_of_sample(s);
  store_filter f = store_filter_default();
  f.segments = segments;
  f.exclude_tokens = SPECIAL, f.n_exclude_tokens = 4;
  f.split_of = g_split, f.n_split_of = N_SAMPLES, f.splits = 1u;
  store_reader *r = NULL;
  assert_int_equal(store_reader_open(&r, (const char *const *)g_dirs, 2, &f), 0);
  return r;
}

/* Index of a row by its content: (lang, sample, position). */
static int row_key(const float *a) { return ((int)a[2] * N_SAMPLES + (int)a[0]) * ROWS + (int)a[1]; }

static int expected_kept(unsigned segments, unsigned char *want) {
  int n = 0;
  memset(want, 0, 2 * N_SAMPLES * ROWS);
  for (int l = 0; l < 2; l++)
    for (int s = 0; s < N_SAMPLES; s++)
      for (int p = 0; p < ROWS; p++) {
        int32_t t = token_of(s, p);
        int special = t == 2 || t == 105 || t == 106 || t == 1;
        if (split_of_sample(s) == 0 && !special && ((segments >> segment_of(p)) & 1u)) {
          want[(l * N_SAMPLES + s) * ROWS + p] = 1;
          n++;
        }
      }
  return n;
}

static float *read_n(sae_source *src, int64_t n) {
  float *x = malloc((size_t)n * D * sizeof *x);
  assert_int_equal(sae_source_next(src, x, n), 0);
  return x;
}

static void test_epoch_is_filtered_permutation(void **state) {
  (void)state;
  unsigned segs = (1u << STORE_SEG_IMAGE) | (1u << STORE_SEG_CAPTION);
  unsigned char want[2 * N_SAMPLES * ROWS], seen[2 * N_SAMPLES * ROWS] = {0};
  int n = expected_kept(segs, want);
  sae_source *src = NULL;
  assert_int_equal(sae_source_store(&src, open_filtered(segs), 64, 7), 0);
  assert_int_equal(sae_source_store_rows(src), n);
  assert_int_equal(src->d, D);
  float *x = read_n(src, n);
  int in_order = 1;
  for (int i = 0; i < n; i++) {
    const float *a = x + i * D;
    int k = row_key(a);
    assert_true(want[k]);         /* only rows the filter keeps */
    assert_int_equal(seen[k], 0); /* each once per epoch */
    seen[k] = 1;
    assert_true(a[4] != 1.0f);    /* no prompt rows */
    assert_true(a[3] != 2.0f && a[3] != 105.0f && a[3] != 106.0f);
    if (i && row_key(a) < row_key(a - D)) in_order = 0;
  }
  assert_false(in_order); /* shuffled */
  /* The first buffer (64 rows) mixes both languages. */
  int lang_seen[2] = {0, 0};
  for (int i = 0; i < 64; i++) lang_seen[(int)x[i * D + 2]]++;
  assert_true(lang_seen[0] > 8 && lang_seen[1] > 8);
  free(x);
  sae_source_free(src);
}

static void test_seed_determinism(void **state) {
  (void)state;
  unsigned segs = 7u;
  sae_source *a = NULL, *b = NULL, *c = NULL;
  assert_int_equal(sae_source_store(&a, open_filtered(segs), 100, 3), 0);
  assert_int_equal(sae_source_store(&b, open_filtered(segs), 100, 3), 0);
  assert_int_equal(sae_source_store(&c, open_filtered(segs), 100, 4), 0);
  int64_t n = 3 * sae_source_store_rows(a) + 17; /* several epochs */
  float *xa = read_n(a, n), *xb = read_n(b, n), *xc = read_n(c, n);
  assert_memory_equal(xa, xb, (size_t)n * D * sizeof *xa);
  assert_true(memcmp(xa, xc, (size_t)n * D * sizeof *xa) != 0);
  /* Epochs differ in order. */
  int64_t N = sae_source_store_rows(a);
  assert_true(memcmp(xa, xa + N * D, (size_t)N * D * sizeof *xa) != 0);
  free(xa), free(xb), free(xc);
  sae_source_free(a), sae_source_free(b), sae_source_free(c);
}

static void test_cursor_resume(void **state) {
  (void)state;
  unsigned segs = 7u;
  sae_source *a = NULL;
  assert_int_equal(sae_source_store(&a, open_filtered(segs), 50, 11), 0);
  int64_t N = sae_source_store_rows(a);
  int64_t cuts[] = {0, 1, 37, 50, N - 3, N, N + 49, 2 * N + 5};
  int64_t span = 3 * N;
  float *all = read_n(a, 3 * N + span);
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    sae_source *b = NULL;
    assert_int_equal(sae_source_store(&b, open_filtered(segs), 50, 11), 0);
    /* a fresh source reads some, then jumps: as a resumed trainer does */
    float *junk = read_n(b, 13);
    free(junk);
    assert_int_equal(sae_source_seek(b, (uint64_t)cuts[i]), 0);
    assert_int_equal(sae_source_tell(b), (uint64_t)cuts[i]);
    float *x = read_n(b, span);
    assert_memory_equal(x, all + cuts[i] * D, (size_t)span * D * sizeof *x);
    assert_int_equal(sae_source_tell(b), (uint64_t)(cuts[i] + span));
    free(x);
    sae_source_free(b);
  }
  int64_t row;
  assert_int_equal(sae_source_store_row_at(a, 5, &row), 0);
  assert_true(row >= 0 && row < N);
  free(all);
  sae_source_free(a);
}

static void test_buffer_larger_than_store(void **state) {
  (void)state;
  sae_source *a = NULL;
  assert_int_equal(sae_source_store(&a, open_filtered(7u), 1 << 20, 1), 0);
  int64_t N = sae_source_store_rows(a);
  float *x = read_n(a, 2 * N);
  unsigned char seen[2 * N_SAMPLES * ROWS] = {0};
  for (int64_t i = 0; i < N; i++) seen[row_key(x + i * D)]++;
  for (int64_t i = 0; i < N; i++) assert_int_equal(seen[row_key(x + i * D)], 1);
  free(x);
  sae_source_free(a);
}

static void test_bad_input(void **state) {
  (void)state;
  /* every row filtered away */
  for (int s = 0; s < N_SAMPLES; s++) g_split[s] = 1;
  store_filter f = store_filter_default();
  f.split_of = g_split, f.n_split_of = N_SAMPLES, f.splits = 1u << 2;
  store_reader *r = NULL;
  assert_int_equal(store_reader_open(&r, (const char *const *)g_dirs, 2, &f), 0);
  sae_source *src = NULL;
  assert_int_equal(sae_source_store(&src, r, 64, 1), SC_ERR_ARG);
  assert_null(src);
  assert_non_null(strstr(sc_error_get(), "no rows left"));
  r = NULL;
  assert_int_equal(store_reader_open(&r, (const char *const *)g_dirs, 1, NULL), 0);
  assert_int_equal(sae_source_store(&src, r, 0, 1), SC_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_epoch_is_filtered_permutation),
      cmocka_unit_test(test_seed_determinism),
      cmocka_unit_test(test_cursor_resume),
      cmocka_unit_test(test_buffer_larger_than_store),
      cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
