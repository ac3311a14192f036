/* test_base.c: errors, atomic writes, arena, RNG, UTF-8, progress format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/utf8.h"
#include "tu.h"

static void test_error_one_line(void **state) {
  (void)state;
  int rc = sc_error_set("bad\nname: %d", 7);
  assert_int_equal(rc, SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "bad name: 7");
  assert_int_equal(sc_error_prefix(SC_ERR_IO, "f.csv"), SC_ERR_IO);
  assert_string_equal(sc_error_get(), "f.csv: bad name: 7");
  sc_error_clear();
  assert_string_equal(sc_error_get(), "");
  assert_string_equal(sc_status_str(SC_ERR_NOMEM), "out of memory");
}

static void test_atomic_write(void **state) {
  (void)state;
  char *dir = tu_tmpdir("base_atomic");
  char *path = tu_join(dir, "out.txt");
  assert_int_equal(sc_write_file_atomic(path, "hello", 5), 0);
  size_t n;
  char *s = tu_read(path, &n);
  assert_int_equal(n, 5);
  assert_memory_equal(s, "hello", 5);
  free(s);
  /* An aborted write leaves the old file and no temporary. */
  sc_afile f;
  assert_int_equal(sc_afile_open(&f, path), 0);
  assert_int_equal(sc_afile_printf(&f, "%s", "partial"), 0);
  sc_afile_abort(&f);
  s = tu_read(path, &n);
  assert_memory_equal(s, "hello", 5);
  free(s);
  assert_false(tu_has_tmp_files(dir));
  /* A folder that doesn't exist: error names the path. */
  char *bad = tu_join(dir, "nope/x.txt");
  assert_int_equal(sc_write_file_atomic(bad, "x", 1), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "nope/x.txt"));
  free(bad);
  free(path);
  free(dir);
}

static void test_read_file_limit(void **state) {
  (void)state;
  char *dir = tu_tmpdir("base_read");
  char *path = tu_join(dir, "big");
  tu_write_str(path, "0123456789");
  char *buf;
  size_t n;
  assert_int_equal(sc_read_file(path, 5, &buf, &n), SC_ERR_RANGE);
  assert_int_equal(sc_read_file(path, 10, &buf, &n), 0);
  assert_int_equal(n, 10);
  assert_int_equal(buf[10], '\0');
  free(buf);
  char *sub = tu_join(dir, "a/b/c");
  assert_int_equal(sc_mkdirs(sub), 0);
  assert_true(sc_is_dir(sub));
  assert_int_equal(sc_mkdirs(path), SC_ERR_IO);
  free(sub);
  free(path);
  free(dir);
}

static void test_arena(void **state) {
  (void)state;
  sc_arena a;
  assert_int_equal(sc_arena_init(&a, 1000), 0);
  unsigned char *p = sc_arena_alloc(&a, 3, 1);
  float *f = sc_arena_floats(&a, 10);
  assert_non_null(p);
  assert_non_null(f);
  assert_int_equal((uintptr_t)f % 64, 0);
  assert_null(sc_arena_alloc(&a, a.cap, 64));
  assert_non_null(strstr(sc_error_get(), "arena full"));
  sc_arena_reset(&a);
  assert_ptr_equal(sc_arena_alloc(&a, 1, 1), a.base);
  sc_arena_free(&a);
  sc_arena_free(&a);
}

static void test_rng(void **state) {
  (void)state;
  sc_rng a, b, c;
  sc_rng_seed(&a, 42);
  sc_rng_seed(&b, 42);
  sc_rng_seed(&c, 43);
  int same_c = 1;
  for (int i = 0; i < 100; i++) {
    uint64_t x = sc_rng_u64(&a);
    assert_true(x == sc_rng_u64(&b));
    if (x != sc_rng_u64(&c)) same_c = 0;
  }
  assert_false(same_c);
  /* Moments of uniform and normal draws (loose, 100k samples). */
  double su = 0, sn = 0, sn2 = 0;
  int below[7] = {0};
  for (int i = 0; i < 100000; i++) {
    double u = sc_rng_uniform(&a);
    assert_true(u >= 0 && u < 1);
    su += u;
    double z = sc_rng_normal(&a);
    sn += z;
    sn2 += z * z;
    below[sc_rng_below(&a, 7)]++;
  }
  assert_true(su / 1e5 > 0.49 && su / 1e5 < 0.51);
  assert_true(sn / 1e5 > -0.02 && sn / 1e5 < 0.02);
  assert_true(sn2 / 1e5 > 0.98 && sn2 / 1e5 < 1.02);
  for (int k = 0; k < 7; k++) assert_true(below[k] > 13500 && below[k] < 15100);
  int v[50], seen[50] = {0};
  for (int i = 0; i < 50; i++) v[i] = i;
  sc_rng_shuffle(&a, v, 50, sizeof v[0]);
  int moved = 0;
  for (int i = 0; i < 50; i++) {
    seen[v[i]]++;
    moved += v[i] != i;
  }
  for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
  assert_true(moved > 25);
}

static void test_utf8(void **state) {
  (void)state;
  size_t off = 99;
  assert_true(sc_utf8_valid("abc", 3, &off));
  assert_true(sc_utf8_valid("\xd8\xb5\xd9\x81 \xf0\x9f\x98\x80", 9, &off)); /* Arabic + emoji */
  assert_false(sc_utf8_valid("ab\xc0\xafz", 5, &off));                    /* overlong '/' */
  assert_int_equal(off, 2);
  assert_false(sc_utf8_valid("\xed\xa0\x80", 3, &off)); /* surrogate */
  assert_int_equal(off, 0);
  assert_false(sc_utf8_valid("x\xf4\x90\x80\x80", 5, &off)); /* > U+10FFFF */
  assert_int_equal(off, 1);
  assert_false(sc_utf8_valid("xy\xd8", 3, &off)); /* truncated */
  assert_int_equal(off, 2);
  assert_false(sc_utf8_valid("\x80", 1, &off)); /* lone continuation */
}

static void test_progress_format(void **state) {
  (void)state;
  char buf[256];
  sc_progress_format(buf, sizeof buf, "extract", 50, 200, "img", 10.0, 10);
  assert_non_null(strstr(buf, " 25%"));
  assert_non_null(strstr(buf, "|##........|"));
  assert_non_null(strstr(buf, "50/200 img"));
  assert_non_null(strstr(buf, "00:10<00:30"));
  assert_non_null(strstr(buf, "5.00 img/s"));
  sc_progress_format(buf, sizeof buf, "scan", 7, 0, "rows", 0.0, 10);
  assert_non_null(strstr(buf, "7 rows"));
  sc_progress *p = sc_progress_create("x", 3, "it");
  sc_log_set_level(SC_LOG_QUIET);
  sc_progress_add(p, 3);
  sc_progress_finish(p);
  sc_progress_finish(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_one_line), cmocka_unit_test(test_atomic_write),
      cmocka_unit_test(test_read_file_limit), cmocka_unit_test(test_arena),
      cmocka_unit_test(test_rng),           cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_progress_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
