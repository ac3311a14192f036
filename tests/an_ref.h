/* an_ref.h: plumbing shared by test_stats, test_probe and test_crossling:
 * build a JSON input, run tests/reference/stats_reference.py on it, read its
 * JSON output, compare numbers. Include after <cmocka.h>, io/json.h, tu.h. */
#ifndef AN_REF_H
#define AN_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char *g_dir; /* scratch folder of the test program */

static inline int setup(void **state) {
  (void)state;
  g_dir = tu_tmpdir("anref");
  return 0;
}

static inline int teardown(void **state) {
  (void)state;
  free(g_dir);
  return 0;
}

static inline sc_json *arr_d(const double *x, size_t n) {
  sc_json *a = sc_json_new_array();
  for (size_t i = 0; i < n; i++) sc_json_add(a, NULL, sc_json_new_num(x[i]));
  return a;
}

/* Rows of a row-major f32 matrix [n, d] as an array of arrays. */
static inline sc_json *mat_f(const float *X, size_t n, size_t d) {
  sc_json *a = sc_json_new_array();
  for (size_t i = 0; i < n; i++) {
    sc_json *r = sc_json_new_array();
    for (size_t j = 0; j < d; j++) sc_json_add(r, NULL, sc_json_new_num(X[i * d + j]));
    sc_json_add(a, NULL, r);
  }
  return a;
}

static inline sc_json *arr_u(const uint64_t *x, size_t n) {
  sc_json *a = sc_json_new_array();
  for (size_t i = 0; i < n; i++) sc_json_add(a, NULL, sc_json_new_num((double)x[i]));
  return a;
}

static inline sc_json *arr_i(const int *x, size_t n) {
  sc_json *a = sc_json_new_array();
  for (size_t i = 0; i < n; i++) sc_json_add(a, NULL, sc_json_new_num(x[i]));
  return a;
}

/* Runs stats_reference.py CMD on `in` (freed) and returns its output. */
static inline sc_json *run_ref(const char *cmd, sc_json *in) {
  char *ip = tu_join(g_dir, "in.json"), *op = tu_join(g_dir, "out.json");
  char *text = sc_json_print(in, 0);
  assert_non_null(text);
  tu_write_str(ip, text);
  free(text);
  sc_json_free(in);
  char *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 %s/tests/reference/stats_reference.py %s %s %s",
                  tu_src(), cmd, ip, op);
  if (st) fprintf(stderr, "stats_reference.py %s failed: %s\n", cmd, err ? err : "");
  free(err);
  assert_int_equal(st, 0);
  sc_json *out = NULL;
  assert_int_equal(sc_json_load(op, 1 << 26, &out), 0);
  free(ip);
  free(op);
  return out;
}

static inline double num_at(const sc_json *arr, int i) { return sc_json_num(sc_json_at(arr, i)); }

static inline void near(double got, double want, double tol, const char *what) {
  if (!(fabs(got - want) <= tol * fmax(1.0, fabs(want)))) {
    print_error("%s: got %.17g want %.17g\n", what, got, want);
    fail();
  }
}

#endif
