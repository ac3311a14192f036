/* test_store.c: activation store round trip (bf16/f32), shard rule, reader
 * filters, random access and cursor, several directories, write-time
 * filters, samples.jsonl, and the error messages for bad manifests, shards
 * and calls. Resume, SIGKILL and disk-full tests are in test_store_resume.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/safetensors.h"
#include "pipeline/prepare.h"
#include "store/manifest.h"
#include "store/reader.h"
#include "store/samples.h"
#include "store/writer.h"
#include "tensor/dtype.h"
#include "tu.h"

#define D 24
#define ROWS_PER_SHARD 10
#define N_SAMPLES 30
#define BOS 2
#define BIG_SAMPLE 7  /* this sample has more rows than a shard */

/* ==== deterministic test data ============================================ */

static int n_rows_of(int64_t s) {
  if (s == BIG_SAMPLE) return 3 * ROWS_PER_SHARD - 3;
  if (s % 11 == 10) return 0;  /* a sample with no rows */
  return 1 + (int)(s * 7 % 9);
}

static uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  return x ^ (x >> 16);
}

/* A value with a full 23-bit mantissa, so bf16 rounding matters. */
static float value_of(int64_t s, int r, int j) {
  uint32_t h = mix((uint32_t)(s * 1000003 + r * 1009 + j));
  return ((float)(h & 0xffffff) / (float)(1 << 23) - 1.0f) * 3.7f;
}

static uint8_t seg_of(int r, int n) { return (uint8_t)(r * 3 / (n ? n : 1)); }
static int32_t tok_of(int64_t s, int r) { return r == 0 ? BOS : (int32_t)((s * 31 + r) % 50 + 3); }

/* Feeds samples [from, to) to w. */
static void feed(store_writer *w, int64_t from, int64_t to) {
  float acts[3 * ROWS_PER_SHARD * D];
  int32_t pos[3 * ROWS_PER_SHARD], tok[3 * ROWS_PER_SHARD];
  uint8_t seg[3 * ROWS_PER_SHARD];
  for (int64_t s = from; s < to; s++) {
    int n = n_rows_of(s);
    for (int r = 0; r < n; r++) {
      for (int j = 0; j < D; j++) acts[r * D + j] = value_of(s, r, j);
      pos[r] = r;
      tok[r] = tok_of(s, r);
      seg[r] = seg_of(r, n);
    }
    assert_int_equal(store_writer_begin_sample(w, s), 0);
    /* two appends per sample: a sample may arrive in pieces */
    int half = n / 2;
    assert_int_equal(store_writer_append(w, acts, half, pos, tok, seg), 0);
    assert_int_equal(store_writer_append(w, acts + half * D, n - half, pos + half, tok + half,
                                         seg + half), 0);
    assert_int_equal(store_writer_end_sample(w), 0);
  }
}

static store_writer_config config_for(const char *dir, const char *lang, sc_dtype t) {
  store_writer_config c = store_writer_config_default();
  c.dir = dir;
  c.language = lang;
  c.layer = 3;
  c.d = D;
  c.dtype = t;
  c.rows_per_shard = ROWS_PER_SHARD;
  c.model_path = "models/tiny";
  c.config_hash = "abc123";
  c.prompt = "Describe the person in this image.";
  c.saecap_version = "0.1.0";
  return c;
}

static void write_all(const char *dir, const char *lang, sc_dtype t) {
  store_writer_config c = config_for(dir, lang, t);
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), 0);
  assert_int_equal(store_writer_resume_sample(w), 0);
  feed(w, 0, N_SAMPLES);
  assert_int_equal(store_writer_finish(w), 0);
  assert_true(store_writer_is_complete(w));
  store_writer_free(w);
}

static int64_t expected_rows(void) {
  int64_t n = 0;
  for (int64_t s = 0; s < N_SAMPLES; s++) n += n_rows_of(s);
  return n;
}

static store_reader *open1(const char *dir, const store_filter *f) {
  store_reader *r;
  int rc = store_reader_open(&r, &dir, 1, f);
  if (rc) fail_msg("store_reader_open: %s", sc_error_get());
  return r;
}

/* Compares every row of r (no filter) with the generator; bf16 rows must
 * equal the generator's value rounded by sc_bf16_from_f32, exactly. */
static void check_all_rows(store_reader *r, int bf16) {
  assert_int_equal(store_reader_n_rows(r), expected_rows());
  float row[D];
  store_row_meta m;
  int64_t g = 0;
  for (int64_t s = 0; s < N_SAMPLES; s++) {
    for (int k = 0; k < n_rows_of(s); k++, g++) {
      assert_int_equal(store_reader_read(r, g, g + 1, row, &m), 0);
      assert_int_equal(m.sample_index, s);
      assert_int_equal(m.position, k);
      assert_int_equal(m.token_id, tok_of(s, k));
      assert_int_equal(m.segment, seg_of(k, n_rows_of(s)));
      for (int j = 0; j < D; j++) {
        float want = value_of(s, k, j);
        if (bf16) want = sc_f32_from_bf16(sc_bf16_from_f32(want));
        if (row[j] != want)
          fail_msg("row %lld col %d: got %.9g want %.9g", (long long)g, j, row[j], want);
      }
    }
  }
}

/* ==== round trip and shard rule ========================================== */

static void test_roundtrip_bf16(void **state) {
  (void)state;
  char *root = tu_tmpdir("store_rt");
  char *dir = tu_join(root, "en");
  write_all(dir, "en", SC_DTYPE_BF16);
  store_reader *r = open1(dir, NULL);
  assert_int_equal(store_reader_d(r), D);
  check_all_rows(r, 1);
  assert_int_equal(store_reader_verify(r), 0);
  /* Shards end at sample boundaries and each holds >= rows_per_shard rows
   * except the last; the big sample is whole in one shard. */
  const store_manifest *m = store_reader_manifest(r, 0);
  assert_true(m->complete);
  assert_int_equal(m->dtype, SC_DTYPE_BF16);
  assert_int_equal(m->total_rows, expected_rows());
  assert_int_equal(m->next_sample, N_SAMPLES);
  assert_string_equal(m->prompt, "Describe the person in this image.");
  assert_true(m->n_shards >= 3);
  int big_seen = 0;
  for (int k = 0; k < m->n_shards; k++) {
    const store_shard_info *s = &m->shards[k];
    if (k + 1 < m->n_shards) {
      assert_true(s->rows >= ROWS_PER_SHARD);
      assert_true(s->last_sample < m->shards[k + 1].first_sample);
    }
    if (s->first_sample <= BIG_SAMPLE && BIG_SAMPLE <= s->last_sample) big_seen++;
    assert_true(s->has_checksum);
  }
  assert_int_equal(big_seen, 1);
  assert_null(store_reader_manifest(r, 1));
  store_reader_free(r);
  free(dir);
  free(root);
}

static void test_roundtrip_f32_and_meta(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_f32");
  write_all(dir, "ar", SC_DTYPE_F32);
  store_reader *r = open1(dir, NULL);
  check_all_rows(r, 0);
  store_reader_free(r);
  /* Shard metadata and tensor dtypes as documented. */
  char *p = tu_join(dir, "shard_00000.safetensors");
  st_file *f;
  assert_int_equal(st_file_open(&f, p), 0);
  assert_string_equal(st_file_meta_get(f, "language"), "ar");
  assert_string_equal(st_file_meta_get(f, "layer"), "3");
  assert_string_equal(st_file_meta_get(f, "dtype"), "F32");
  assert_int_equal(st_file_find(f, "acts")->dtype, SC_DTYPE_F32);
  assert_int_equal(st_file_find(f, "sample_index")->dtype, SC_DTYPE_I64);
  assert_int_equal(st_file_find(f, "position")->dtype, SC_DTYPE_I32);
  assert_int_equal(st_file_find(f, "token_id")->dtype, SC_DTYPE_I32);
  assert_int_equal(st_file_find(f, "segment")->dtype, SC_DTYPE_U8);
  st_file_free(f);
  free(p);
  free(dir);
}

/* ==== reader: filters, gather, cursor, several directories =============== */

static void test_filters(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_filter");
  write_all(dir, "en", SC_DTYPE_BF16);
  /* Split per sample: s % 3 (train, val, test); sample 4 has none. */
  int8_t split[N_SAMPLES];
  for (int s = 0; s < N_SAMPLES; s++) split[s] = (int8_t)(s % 3);
  split[4] = -1;
  int32_t excl[] = {BOS, 17};
  store_filter f = store_filter_default();
  f.segments = (1u << STORE_SEG_PROMPT) | (1u << STORE_SEG_CAPTION);
  f.exclude_tokens = excl;
  f.n_exclude_tokens = 2;
  f.split_of = split;
  f.n_split_of = N_SAMPLES;
  f.splits = (1u << SC_SPLIT_TRAIN) | (1u << SC_SPLIT_TEST);
  store_reader *all = open1(dir, NULL), *r = open1(dir, &f);
  /* Brute force over the unfiltered rows. */
  int64_t n_all = store_reader_n_rows(all), k = 0;
  float a[D], b[D];
  store_row_meta ma, mb;
  for (int64_t g = 0; g < n_all; g++) {
    assert_int_equal(store_reader_read(all, g, g + 1, a, &ma), 0);
    int sp = split[ma.sample_index];
    int keep = ma.segment != STORE_SEG_IMAGE && ma.token_id != BOS && ma.token_id != 17 && sp >= 0 &&
               sp != SC_SPLIT_VAL;
    if (!keep) continue;
    assert_int_equal(store_reader_read(r, k, k + 1, b, &mb), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ma.sample_index, mb.sample_index);
    assert_int_equal(ma.position, mb.position);
    assert_int_equal(ma.token_id, mb.token_id);
    assert_int_equal(ma.segment, mb.segment);
    k++;
  }
  assert_int_equal(store_reader_n_rows(r), k);
  assert_true(k > 10 && k < n_all);
  /* Gather in any order equals single reads. */
  int64_t idx[] = {k - 1, 0, 5, 5, 2};
  float buf[5 * D];
  store_row_meta mm[5];
  assert_int_equal(store_reader_gather(r, idx, 5, buf, mm), 0);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(store_reader_read(r, idx[i], idx[i] + 1, a, &ma), 0);
    assert_memory_equal(buf + i * D, a, sizeof a);
    assert_int_equal(mm[i].sample_index, ma.sample_index);
  }
  int64_t bad = k;
  assert_int_equal(store_reader_gather(r, &bad, 1, buf, NULL), SC_ERR_RANGE);
  assert_int_equal(store_reader_read(r, 3, 2, buf, NULL), SC_ERR_RANGE);
  /* A split table too short for the data. */
  f.n_split_of = 10;
  store_reader *x;
  assert_int_equal(store_reader_open(&x, (const char *const *)&dir, 1, &f), SC_ERR_RANGE);
  assert_non_null(strstr(sc_error_get(), "has no split"));
  store_reader_free(r);
  store_reader_free(all);
  free(dir);
}

static void test_cursor(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_cursor");
  write_all(dir, "en", SC_DTYPE_BF16);
  store_reader *r = open1(dir, NULL);
  int64_t n = store_reader_n_rows(r), got, total = 0;
  float *all = malloc((size_t)n * D * sizeof(float)), *batch = malloc(7 * D * sizeof(float));
  assert_int_equal(store_reader_read(r, 0, n, all, NULL), 0);
  int64_t saved = -1;
  float after_saved[7 * D];
  while (!store_reader_next(r, batch, NULL, 7, &got) && got > 0) {
    assert_memory_equal(batch, all + total * D, (size_t)got * D * sizeof(float));
    total += got;
    if (saved < 0 && total > n / 2) {
      saved = store_reader_tell(r);
      assert_int_equal(store_reader_next(r, after_saved, NULL, 7, &got), 0);
      assert_int_equal(store_reader_seek(r, saved), 0);
    }
  }
  assert_int_equal(total, n);
  /* Restoring a saved cursor gives the same rows again. */
  assert_int_equal(store_reader_seek(r, saved), 0);
  assert_int_equal(store_reader_next(r, batch, NULL, 7, &got), 0);
  assert_memory_equal(batch, after_saved, (size_t)got * D * sizeof(float));
  assert_int_equal(store_reader_seek(r, n + 1), SC_ERR_RANGE);
  store_reader_free(r);
  free(all);
  free(batch);
  free(dir);
}

static void test_two_languages(void **state) {
  (void)state;
  char *root = tu_tmpdir("store_two");
  char *en = store_layer_dir(root, "en", 3), *ar = store_layer_dir(root, "ar", 3);
  assert_non_null(strstr(en, "/activations/en/layer_3"));
  write_all(en, "en", SC_DTYPE_BF16);
  write_all(ar, "ar", SC_DTYPE_F32);
  const char *dirs[] = {en, ar};
  store_reader *r;
  assert_int_equal(store_reader_open(&r, dirs, 2, NULL), 0);
  int64_t n = expected_rows();
  assert_int_equal(store_reader_n_rows(r), 2 * n);
  float a[D], b[D];
  store_row_meta m;
  assert_int_equal(store_reader_read(r, n - 1, n, a, &m), 0);
  assert_int_equal(m.dir, 0);
  assert_int_equal(store_reader_read(r, n, n + 1, b, &m), 0);
  assert_int_equal(m.dir, 1);
  assert_int_equal(m.sample_index, 0);
  /* The f32 directory holds the unrounded value. */
  assert_true(b[1] == value_of(0, 0, 1));
  assert_string_equal(store_reader_manifest(r, 1)->language, "ar");
  store_reader_free(r);
  /* A directory with another d cannot be read together. */
  char *other = tu_join(root, "d8");
  store_writer_config c = config_for(other, "en", SC_DTYPE_BF16);
  c.d = 8;
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), 0);
  assert_int_equal(store_writer_finish(w), 0);
  store_writer_free(w);
  const char *dirs2[] = {en, other};
  assert_int_equal(store_reader_open(&r, dirs2, 2, NULL), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "d8/manifest.json: d is 8, but 24"));
  free(other);
  free(en);
  free(ar);
  free(root);
}

/* ==== writer options, bounds and misuse =================================== */

static void test_write_filter(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_wfilter");
  store_writer_config c = config_for(dir, "en", SC_DTYPE_BF16);
  int32_t drop[] = {BOS};
  c.keep_segments = (1u << STORE_SEG_CAPTION) | (1u << STORE_SEG_PROMPT);
  c.drop_tokens = drop;
  c.n_drop_tokens = 1;
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), 0);
  feed(w, 0, N_SAMPLES);
  assert_int_equal(store_writer_finish(w), 0);
  store_writer_free(w);
  store_filter f = store_filter_default();
  f.segments = c.keep_segments;
  f.exclude_tokens = drop;
  f.n_exclude_tokens = 1;
  char *all_dir = tu_tmpdir("store_wfilter_all");
  write_all(all_dir, "en", SC_DTYPE_BF16);
  store_reader *a = open1(dir, NULL), *b = open1(all_dir, &f);
  int64_t n = store_reader_n_rows(a);
  assert_int_equal(n, store_reader_n_rows(b));
  float *x = malloc((size_t)n * D * 4), *y = malloc((size_t)n * D * 4);
  assert_int_equal(store_reader_read(a, 0, n, x, NULL), 0);
  assert_int_equal(store_reader_read(b, 0, n, y, NULL), 0);
  assert_memory_equal(x, y, (size_t)n * D * 4);
  free(x);
  free(y);
  store_reader_free(a);
  store_reader_free(b);
  free(all_dir);
  free(dir);
}

static void test_memory_bound(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_mem");
  store_writer_config c = config_for(dir, "en", SC_DTYPE_BF16);
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), 0);
  feed(w, 0, N_SAMPLES);
  size_t after_first = store_writer_buffer_bytes(w);
  /* Many more samples (none larger than the first batch's largest) leave
   * the buffer where it was. */
  for (int64_t base = 100; base < 2000; base += 100) {
    for (int64_t s = base; s < base + 30; s++) {
      feed(w, s, s + 1);
    }
  }
  assert_int_equal(store_writer_buffer_bytes(w), after_first);
  size_t row = D * 2 + 8 + 4 + 4 + 1;
  assert_true(after_first <= (size_t)(ROWS_PER_SHARD + 3 * ROWS_PER_SHARD) * 2 * row + 1024 * row);
  assert_int_equal(store_writer_finish(w), 0);
  store_writer_free(w);
  /* A sample bigger than max_buffer_bytes is refused, naming it. */
  char *dir2 = tu_tmpdir("store_mem2");
  c = config_for(dir2, "en", SC_DTYPE_BF16);
  c.max_buffer_bytes = 5 * row;
  assert_int_equal(store_writer_open(&w, &c), 0);
  float acts[6 * D] = {0};
  int32_t z[6] = {0};
  uint8_t sg[6] = {0};
  assert_int_equal(store_writer_begin_sample(w, 9), 0);
  assert_int_equal(store_writer_append(w, acts, 6, z, z, sg), SC_ERR_RANGE);
  assert_non_null(strstr(sc_error_get(), "sample 9 needs more than the"));
  store_writer_free(w);
  free(dir2);
  free(dir);
}

static void test_writer_misuse(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_misuse");
  store_writer_config c = config_for(dir, "en", SC_DTYPE_BF16);
  store_writer *w;
  c.dtype = SC_DTYPE_F16;
  assert_int_equal(store_writer_open(&w, &c), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "dtype must be BF16 or F32"));
  c = config_for(dir, "en", SC_DTYPE_BF16);
  c.d = 0;
  assert_int_equal(store_writer_open(&w, &c), SC_ERR_ARG);
  c.d = D;
  assert_int_equal(store_writer_open(&w, &c), 0);
  float acts[D] = {0};
  int32_t z = 0;
  uint8_t bad_seg = 3;
  assert_int_equal(store_writer_append(w, acts, 1, &z, &z, &bad_seg), SC_ERR_ARG);
  assert_int_equal(store_writer_begin_sample(w, 5), 0);
  assert_int_equal(store_writer_append(w, acts, 1, &z, &z, &bad_seg), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "sample 5 row 0: segment 3 unknown"));
  assert_int_equal(store_writer_finish(w), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "still open"));
  assert_int_equal(store_writer_end_sample(w), 0);
  assert_int_equal(store_writer_begin_sample(w, 5), SC_ERR_ARG);
  assert_non_null(strstr(sc_error_get(), "sample 5 out of order (after 5)"));
  store_writer_free(w);
  /* An output folder that cannot be created: one line naming it. */
  char *file = tu_join(dir, "afile");
  tu_write_str(file, "x");
  char *under = tu_join(file, "layer_3");
  c.dir = under;
  assert_true(store_writer_open(&w, &c) < 0);
  assert_non_null(strstr(sc_error_get(), "afile"));
  assert_null(strchr(sc_error_get(), '\n'));
  free(under);
  free(file);
  free(dir);
}

/* ==== bad manifests and shards ============================================ */

static void expect_open_error(const char *dir, int rc, const char *needle) {
  store_reader *r = NULL;
  int got = store_reader_open(&r, &dir, 1, NULL);
  if (got != rc || !strstr(sc_error_get(), needle))
    fail_msg("open %s: got %d '%s', want %d '%s'", dir, got, sc_error_get(), rc, needle);
  assert_null(r);
  assert_null(strchr(sc_error_get(), '\n'));
}

/* Replaces the first occurrence of `from` in dir/manifest.json. */
static void edit_manifest(const char *dir, const char *from, const char *to) {
  char *p = tu_join(dir, "manifest.json");
  size_t n;
  char *s = tu_read(p, &n);
  char *at = strstr(s, from);
  assert_non_null(at);
  size_t out_n = n - strlen(from) + strlen(to);
  char *t = malloc(out_n + 1);
  size_t pre = (size_t)(at - s);
  memcpy(t, s, pre);
  memcpy(t + pre, to, strlen(to));
  memcpy(t + pre + strlen(to), at + strlen(from), n - pre - strlen(from));
  tu_write(p, t, out_n);
  free(t);
  free(s);
  free(p);
}

static void test_bad_manifest(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_badman");
  write_all(dir, "en", SC_DTYPE_BF16);
  char *man = tu_join(dir, "manifest.json");
  size_t n;
  char *orig = tu_read(man, &n);
  edit_manifest(dir, "\"total_rows\":\t", "\"total_rows\":\t1");
  expect_open_error(dir, SC_ERR_FORMAT, "manifest.json: total_rows is 1");
  tu_write(man, orig, n);
  edit_manifest(dir, "\"BF16\"", "\"F16\"");
  expect_open_error(dir, SC_ERR_FORMAT, "manifest.json: dtype 'F16' is not BF16 or F32");
  tu_write(man, orig, n);
  edit_manifest(dir, "shard_00001.safetensors", "../x.safetensors");
  expect_open_error(dir, SC_ERR_FORMAT, "shards[1]: file '../x.safetensors' is not shard_<k>");
  tu_write(man, orig, n);
  edit_manifest(dir, "\"complete\":\ttrue", "\"complete\":\tfalse");
  expect_open_error(dir, SC_ERR_ARG, "has not finished");
  tu_write(man, orig, n);
  tu_write_str(man, "{\"format\": \"saecap-activations\",");
  expect_open_error(dir, SC_ERR_FORMAT, "manifest.json: malformed JSON");
  tu_write(man, orig, n);
  edit_manifest(dir, "\"format_version\":\t1", "\"format_version\":\t2");
  expect_open_error(dir, SC_ERR_RANGE, "'format_version' = 2 is outside [1, 1]");
  tu_write(man, orig, n);
  remove(man);
  expect_open_error(dir, SC_ERR_IO, "manifest.json");
  tu_write(man, orig, n);
  /* Parsing from memory: the fuzzer's entry point. */
  store_manifest m;
  assert_int_equal(store_manifest_parse(orig, n, "m.json", &m), 0);
  char *again = store_manifest_print(&m);
  assert_string_equal(again, orig);
  free(again);
  store_manifest_free(&m);
  store_manifest_free(&m);
  assert_int_equal(store_manifest_parse("[]", 2, "m.json", &m), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "m.json: not a JSON object");
  free(orig);
  free(man);
  free(dir);
}

static void copy_file(const char *from, const char *to) {
  size_t n;
  char *s = tu_read(from, &n);
  assert_non_null(s);
  tu_write(to, s, n);
  free(s);
}

static void test_bad_shards(void **state) {
  (void)state;
  char *dir = tu_tmpdir("store_badshard");
  write_all(dir, "en", SC_DTYPE_BF16);
  char *s0 = tu_join(dir, "shard_00000.safetensors"), *s1 = tu_join(dir, "shard_00001.safetensors");
  size_t n0, n1;
  char *b0 = tu_read(s0, &n0), *b1 = tu_read(s1, &n1);
  /* Truncated shard. */
  tu_write(s0, b0, n0 - 3);
  expect_open_error(dir, SC_ERR_FORMAT, "shard_00000.safetensors: ");
  assert_non_null(strstr(sc_error_get(), "bytes, the manifest says"));
  /* A shard from elsewhere in the directory (same size by luck or not). */
  tu_write(s0, b1, n1);
  expect_open_error(dir, SC_ERR_FORMAT, "shard_00000.safetensors: ");
  tu_write(s0, b0, n0);
  /* A shard from another language directory, same rows: metadata differs. */
  char *other = tu_tmpdir("store_badshard_ar");
  write_all(other, "ar", SC_DTYPE_BF16);
  char *o0 = tu_join(other, "shard_00000.safetensors");
  copy_file(o0, s0);
  expect_open_error(dir, SC_ERR_FORMAT, "metadata language/layer disagree with the manifest");
  tu_write(s0, b0, n0);
  /* A flipped byte in the data: opens, but verify names the file. */
  st_file *sf;
  assert_int_equal(st_file_from_memory(&sf, b0, n0, "shard0"), 0);
  size_t at = (size_t)((const char *)st_file_find(sf, "acts")->data - b0) + 7;
  st_file_free(sf);
  b0[at] ^= 0x40;
  tu_write(s0, b0, n0);
  store_reader *r = open1(dir, NULL);
  assert_int_equal(store_reader_verify(r), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "shard_00000.safetensors: checksum mismatch"));
  store_reader_free(r);
  /* An f32 shard in a bf16 directory. */
  char *f32 = tu_tmpdir("store_badshard_f32");
  write_all(f32, "en", SC_DTYPE_F32);
  char *f0 = tu_join(f32, "shard_00000.safetensors");
  copy_file(f0, s0);
  store_manifest m;
  assert_int_equal(store_manifest_load(dir, &m), 0);
  size_t nf;
  free(tu_read(f0, &nf));
  char from[64], to[64];
  snprintf(from, sizeof from, "\"bytes\":\t%lld", (long long)m.shards[0].bytes);
  snprintf(to, sizeof to, "\"bytes\":\t%zu", nf);
  store_manifest_free(&m);
  edit_manifest(dir, from, to);
  expect_open_error(dir, SC_ERR_FORMAT, "tensor 'acts' is F32, the manifest says BF16");
  free(f0);
  free(f32);
  free(o0);
  free(other);
  free(b0);
  free(b1);
  free(s0);
  free(s1);
  free(dir);
}

/* ==== samples.jsonl ======================================================= */

static void test_samples(void **state) {
  (void)state;
  const char *good =
      "{\"sample_index\":0,\"image_id\":\"a\",\"split\":\"train\",\"ground_truth_gender\":\"male\","
      "\"extra\":{}}\n"
      "\n"
      "{\"sample_index\":2,\"image_id\":\"b\",\"split\":\"test\",\"ground_truth_gender\":\"female\"}\n";
  store_samples s;
  assert_int_equal(store_samples_parse(good, strlen(good), "samples.jsonl", &s), 0);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.rows[1].sample_index, 2);
  assert_int_equal(s.rows[1].split, SC_SPLIT_TEST);
  assert_int_equal(s.rows[0].label, SC_LABEL_MALE);
  assert_string_equal(s.rows[1].image_id, "b");
  int8_t *split;
  int64_t n;
  assert_int_equal(store_samples_split_of(&s, &split, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(split[0], SC_SPLIT_TRAIN);
  assert_int_equal(split[1], -1);
  assert_int_equal(split[2], SC_SPLIT_TEST);
  free(split);
  store_samples_free(&s);
  store_samples_free(&s);
  static const struct {
    const char *text, *msg;
  } bad[] = {
      {"{\"sample_index\":0,\"image_id\":\"a\",\"split\":\"dev\",\"ground_truth_gender\":\"male\"}",
       "samples.jsonl: line 1: unknown split 'dev'"},
      {"\n{\"sample_index\":0,\"image_id\":\"a\",\"split\":\"val\"}",
       "samples.jsonl: line 2: missing string 'ground_truth_gender'"},
      {"{\"sample_index\":1,\"image_id\":\"a\",\"split\":\"val\",\"ground_truth_gender\":\"x\"}",
       "samples.jsonl: line 1: unknown label 'x'"},
      {"{\"sample_index\":-1}", "samples.jsonl: line 1: bad sample_index"},
      {"{\"sample_index\":3,\"image_id\":\"a\",\"split\":\"val\",\"ground_truth_gender\":\"male\"}\n"
       "{\"sample_index\":3,\"image_id\":\"a\",\"split\":\"val\",\"ground_truth_gender\":\"male\"}",
       "samples.jsonl: line 2: sample_index 3 not above 3"},
      {"{\"sample_index\":0,", "samples.jsonl: line 1: malformed JSON"},
      {"[1]", "samples.jsonl: line 1: not a JSON object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = store_samples_parse(bad[i].text, strlen(bad[i].text), "samples.jsonl", &s);
    if (rc >= 0 || strncmp(sc_error_get(), bad[i].msg, strlen(bad[i].msg)))
      fail_msg("case %zu: rc %d '%s'", i, rc, sc_error_get());
    assert_int_equal(s.n, 0);
    assert_null(s.rows);
  }
  char *dir = tu_tmpdir("store_samples");
  char *p = tu_join(dir, "samples.jsonl");
  tu_write_str(p, good);
  assert_int_equal(store_samples_load(p, &s), 0);
  assert_int_equal(s.n, 2);
  store_samples_free(&s);
  free(p);
  p = tu_join(dir, "none.jsonl");
  assert_int_equal(store_samples_load(p, &s), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "none.jsonl"));
  free(p);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_bf16),  cmocka_unit_test(test_roundtrip_f32_and_meta),
      cmocka_unit_test(test_filters),         cmocka_unit_test(test_cursor),
      cmocka_unit_test(test_two_languages),   cmocka_unit_test(test_write_filter),
      cmocka_unit_test(test_memory_bound),    cmocka_unit_test(test_writer_misuse),
      cmocka_unit_test(test_bad_manifest),    cmocka_unit_test(test_bad_shards),
      cmocka_unit_test(test_samples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
