/* test_inspect.c: `saecap inspect` run as a program: the JSON and table
 * outputs on a file and on a sharded checkpoint, --help, and one-line
 * errors for malformed files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "tu.h"

/* Two tensors and a metadata pair; returns the file's path (malloc'd). */
static char *write_small(const char *dir, const char *leaf, const char *t1, const char *t2) {
  static const uint16_t w[6] = {1, 2, 3, 4, 5, 6};
  static const float b[3] = {0.5f, 1.5f, 2.5f};
  int64_t ws[2] = {2, 3}, bs[1] = {3};
  st_writer *wr;
  assert_int_equal(st_writer_create(&wr), 0);
  assert_int_equal(st_writer_add(wr, t1, SC_DTYPE_BF16, 2, ws, w, sizeof w), 0);
  assert_int_equal(st_writer_add(wr, t2, SC_DTYPE_F32, 1, bs, b, sizeof b), 0);
  assert_int_equal(st_writer_add_meta(wr, "format", "pt"), 0);
  char *p = tu_join(dir, leaf);
  assert_int_equal(st_writer_write(wr, p), 0);
  st_writer_free(wr);
  return p;
}

static sc_json *run_json(const char *path) {
  char *out = NULL, *err = NULL;
  int st = tu_run(&out, &err, "'%s' inspect '%s' --json", tu_bin(), path);
  if (st) fail_msg("inspect failed (%d): %s", st, err);
  assert_string_equal(err, "");
  sc_json *j;
  if (sc_json_parse(out, strlen(out), "stdout", &j)) fail_msg("bad JSON: %s\n%s", sc_error_get(), out);
  free(out);
  free(err);
  return j;
}

static int64_t num(const sc_json *j, const char *key) {
  int64_t v;
  if (sc_json_i64(sc_json_get(j, key), &v)) fail_msg("no integer '%s'", key);
  return v;
}

static void check_tensor(const sc_json *t, const char *name, const char *dtype, int64_t d0, int64_t bytes,
                         const char *file_leaf) {
  assert_string_equal(sc_json_str(sc_json_get(t, "name")), name);
  assert_string_equal(sc_json_str(sc_json_get(t, "dtype")), dtype);
  const sc_json *shape = sc_json_get(t, "shape");
  int64_t v;
  assert_int_equal(sc_json_i64(sc_json_at(shape, 0), &v), 0);
  assert_int_equal(v, d0);
  assert_int_equal(num(t, "bytes"), bytes);
  assert_non_null(strstr(sc_json_str(sc_json_get(t, "file")), file_leaf));
}

static void test_json_file(void **state) {
  (void)state;
  char *dir = tu_tmpdir("inspect_file");
  char *p = write_small(dir, "one.safetensors", "w", "b");
  sc_json *j = run_json(p);
  assert_string_equal(sc_json_str(sc_json_get(j, "path")), p);
  const sc_json *files = sc_json_get(j, "files");
  assert_int_equal(sc_json_size(files), 1);
  assert_string_equal(sc_json_str(sc_json_at(files, 0)), p);
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(j, "metadata"), "format")), "pt");
  const sc_json *ts = sc_json_get(j, "tensors");
  assert_int_equal(sc_json_size(ts), 2);
  check_tensor(sc_json_at(ts, 0), "b", "F32", 3, 12, "one.safetensors"); /* sorted by name */
  check_tensor(sc_json_at(ts, 1), "w", "BF16", 2, 12, "one.safetensors");
  assert_int_equal(sc_json_size(sc_json_get(sc_json_at(ts, 1), "shape")), 2);
  assert_int_equal(num(j, "n_tensors"), 2);
  assert_int_equal(num(j, "total_bytes"), 24);
  assert_int_equal(num(j, "n_parameters"), 9);
  sc_json_free(j);
  free(p);
  free(dir);
}

static void test_json_sharded(void **state) {
  (void)state;
  char *dir = tu_tmpdir("inspect_sharded");
  char *p1 = write_small(dir, "model-00001-of-00002.safetensors", "a.w", "a.b");
  char *p2 = write_small(dir, "model-00002-of-00002.safetensors", "z.w", "z.b");
  char *idx = tu_join(dir, "model.safetensors.index.json");
  tu_write_str(idx, "{\"weight_map\":{\"a.w\":\"model-00001-of-00002.safetensors\","
                    "\"a.b\":\"model-00001-of-00002.safetensors\",\"z.w\":\"model-00002-of-00002.safetensors\","
                    "\"z.b\":\"model-00002-of-00002.safetensors\"}}");
  sc_json *j = run_json(dir);
  assert_int_equal(sc_json_size(sc_json_get(j, "files")), 2);
  const sc_json *ts = sc_json_get(j, "tensors");
  assert_int_equal(sc_json_size(ts), 4);
  check_tensor(sc_json_at(ts, 0), "a.b", "F32", 3, 12, "model-00001-of-00002.safetensors");
  check_tensor(sc_json_at(ts, 3), "z.w", "BF16", 2, 12, "model-00002-of-00002.safetensors");
  assert_int_equal(num(j, "total_bytes"), 48);
  assert_int_equal(num(j, "n_parameters"), 18);
  sc_json_free(j);
  /* The table names every tensor, its shard and the totals. */
  char *out = NULL;
  assert_int_equal(tu_run(&out, NULL, "'%s' inspect '%s'", tu_bin(), dir), 0);
  assert_non_null(strstr(out, "z.w"));
  assert_non_null(strstr(out, "BF16"));
  assert_non_null(strstr(out, "[2, 3]"));
  assert_non_null(strstr(out, "model-00002-of-00002.safetensors"));
  assert_non_null(strstr(out, "metadata format = pt"));
  assert_non_null(strstr(out, "tensors: 4  total bytes: 48"));
  assert_non_null(strstr(out, "parameters: 18"));
  free(out);
  free(idx);
  free(p1);
  free(p2);
  free(dir);
}

static void test_help_and_usage(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  assert_int_equal(tu_run(&out, NULL, "'%s' inspect --help", tu_bin()), 0);
  assert_non_null(strstr(out, "usage: saecap inspect PATH [--json]"));
  assert_non_null(strstr(out, "n_parameters"));
  free(out);
  int st = tu_run(NULL, &err, "'%s' inspect", tu_bin());
  assert_int_equal(st, 2);
  assert_non_null(strstr(err, "missing PATH"));
  free(err);
  st = tu_run(NULL, &err, "'%s' inspect x --frobnicate", tu_bin());
  assert_int_equal(st, 2);
  assert_non_null(strstr(err, "unknown option '--frobnicate'"));
  free(err);
}

/* Runs inspect on a file holding header + ndata bytes; expects one line. */
static void expect_error(const char *dir, const char *leaf, const char *header, size_t ndata, size_t cut,
                         const char *problem) {
  size_t h = strlen(header), len = 8 + h + ndata;
  unsigned char *b = calloc(1, len);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(b + 8, header, h);
  char *p = tu_join(dir, leaf);
  tu_write(p, b, len - cut);
  char *err = NULL;
  int st = tu_run(NULL, &err, "'%s' inspect '%s'", tu_bin(), p);
  char prefix[512];
  snprintf(prefix, sizeof prefix, "saecap: %s: ", p);
  tu_assert_one_line_error(st, err, prefix, problem, NULL);
  assert_int_equal(st, 1);
  free(err);
  free(p);
  free(b);
}

static void test_bad_files(void **state) {
  (void)state;
  char *dir = tu_tmpdir("inspect_bad");
  const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_error(dir, "truncated.safetensors", good, 8, 3,
               "tensor 'a' has data range [0,8) outside the data section (5 bytes)");
  expect_error(dir, "short.safetensors", good, 8, 30, "is larger than the");
  expect_error(dir, "overlap.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, 0, "tensors 'a' [0,8) and 'b' [4,12) have overlapping data ranges");
  expect_error(dir, "dtype.safetensors", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
               "tensor 'a' has unknown dtype 'Q4'");
  expect_error(dir, "size.safetensors", "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}", 10, 0,
               "tensor 'x' has shape [2,3] (12 bytes as BF16) but its data range is 10 bytes");
  expect_error(dir, "json.safetensors", "{\"a\":", 0, 0, "malformed JSON");
  char *err = NULL, *missing = tu_join(dir, "missing.safetensors");
  int st = tu_run(NULL, &err, "'%s' inspect '%s'", tu_bin(), missing);
  tu_assert_one_line_error(st, err, "missing.safetensors: no such file or folder", NULL);
  free(err);
  /* A sharded checkpoint whose index names a shard that is not there. */
  char *idx = tu_join(dir, "model.safetensors.index.json");
  tu_write_str(idx, "{\"weight_map\":{\"a\":\"model-00001-of-00009.safetensors\"}}");
  st = tu_run(NULL, &err, "'%s' inspect '%s'", tu_bin(), dir);
  tu_assert_one_line_error(st, err, "model.safetensors.index.json: weight_map names shard 'model-00001-of-00009.safetensors'",
                           "does not exist", NULL);
  free(err);
  free(idx);
  free(missing);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_file),
      cmocka_unit_test(test_json_sharded),
      cmocka_unit_test(test_help_and_usage),
      cmocka_unit_test(test_bad_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
