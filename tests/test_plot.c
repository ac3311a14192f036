/* test_plot.c: report/plot (rep_fig). Every figure is written to disk and
 * read back by tests/reference/svg_data.py (XML parse of the SVG, the
 * <desc id="saecap-data"> record, PIL for the PNG). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "report/plot.h"
#include "tu.h"

static char *g_dir;

static void check_expect(const char *stem, const char *expect_json) {
  char *svg = malloc(strlen(g_dir) + strlen(stem) + 8), *png = malloc(strlen(g_dir) + strlen(stem) + 8);
  sprintf(svg, "%s/%s.svg", g_dir, stem);
  sprintf(png, "%s/%s.png", g_dir, stem);
  char *exp = tu_join(g_dir, "expect.json");
  tu_write_str(exp, expect_json);
  char *script = tu_src_path("tests/reference/svg_data.py"), *out = NULL, *err = NULL;
  int st = tu_run(&out, &err, "/usr/bin/python3 %s expect %s %s", script, svg, exp);
  if (st) fprintf(stderr, "svg_data.py: %s%s\n", out, err);
  assert_int_equal(st, 0);
  free(out);
  free(err);
  st = tu_run(&out, &err, "/usr/bin/python3 %s png %s %d %d", script, png, 2 * REP_FIG_W, 2 * REP_FIG_H);
  if (st) fprintf(stderr, "svg_data.py png: %s%s\n", out, err);
  assert_int_equal(st, 0);
  free(out);
  free(err);
  free(script);
  free(exp);
  free(svg);
  free(png);
}

/* JSON array of v[0..n) with NaN as null, exactly (%.17g). */
static void jarr(char *buf, size_t cap, const double *v, int n) {
  size_t o = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < n; i++)
    o += (size_t)(isfinite(v[i]) ? snprintf(buf + o, cap - o, "%s%.17g", i ? "," : "", v[i])
                                 : snprintf(buf + o, cap - o, "%snull", i ? "," : ""));
  snprintf(buf + o, cap - o, "]");
}

static void test_line_band_roundtrip(void **state) {
  (void)state;
  double x[] = {0, 1, 2, 3, 4}, y[] = {0.91, 0.82, 0.5 / 3, NAN, 0.12345678901234567};
  double lo[] = {0.8, 0.7, 0.1, NAN, 0.0}, hi[] = {0.95, 0.9, 0.3, NAN, 0.2};
  double sy[] = {0.5, 0.6};
  rep_fig *f = rep_fig_create("EN/AR cosine", "layer", "cosine (unitless)");
  assert_non_null(f);
  assert_int_equal(rep_fig_line(f, "cosine", 5, x, y, lo, hi, REP_BLUE, 0), 0);
  assert_int_equal(rep_fig_scatter(f, "pts", 2, x, sy, REP_AUTO, 0), 0);
  assert_int_equal(rep_fig_vline(f, 2, "divergence layer"), 0);
  rep_fig_set_xinteger(f, 1);
  assert_null(rep_fig_message(f));
  assert_int_equal(rep_fig_write(f, g_dir, "line"), 0);
  rep_fig_free(f);
  char ax[256], ay[256], alo[256], ahi[256], asy[128], ex[1400];
  jarr(ax, sizeof ax, x, 5);
  jarr(ay, sizeof ay, y, 5);
  jarr(alo, sizeof alo, lo, 5);
  jarr(ahi, sizeof ahi, hi, 5);
  jarr(asy, sizeof asy, sy, 2);
  snprintf(ex, sizeof ex,
           "{\"message\": null, \"series\": [{\"label\": \"cosine\", \"kind\": \"line\", \"x\": %s, "
           "\"y\": %s, \"lo\": %s, \"hi\": %s}, {\"label\": \"pts\", \"kind\": \"scatter\", "
           "\"y\": %s, \"lo\": null}], \"vlines\": [{\"x\": 2, \"label\": \"divergence layer\"}]}",
           ax, ay, alo, ahi, asy);
  check_expect("line", ex);
  assert_false(tu_has_tmp_files(g_dir));
}

static void test_empty_and_nan_give_message(void **state) {
  (void)state;
  double x[] = {1, 2}, y[] = {NAN, NAN};
  rep_fig *f = rep_fig_create("empty", "layer", "value");
  assert_int_equal(rep_fig_line(f, "nothing", 0, NULL, NULL, NULL, NULL, REP_AUTO, 0), 0);
  assert_non_null(rep_fig_message(f));
  assert_int_equal(rep_fig_write(f, g_dir, "empty"), 0);
  rep_fig_free(f);
  check_expect("empty", "{\"message\": \"no data\"}");

  f = rep_fig_create("all NaN", "layer", "value");
  assert_int_equal(rep_fig_line(f, "nan", 2, x, y, y, y, REP_AUTO, 1), 0);
  assert_int_equal(rep_fig_write(f, g_dir, "nan"), 0);
  rep_fig_free(f);
  check_expect("nan", "{\"message\": \"no data\", \"series\": [{\"label\": \"nan\", \"y\": [null, null]}]}");

  f = rep_fig_create("no series at all", "", "");
  assert_int_equal(rep_fig_write(f, g_dir, "none"), 0);
  rep_fig_free(f);
  check_expect("none", "{\"message\": \"no data\"}");

  f = rep_fig_create("stage missing", "x", "y");
  rep_fig_line(f, "a", 2, x, x, NULL, NULL, REP_AUTO, 0);
  assert_int_equal(rep_fig_set_message(f, "steering did not run <yet> & more"), 0);
  assert_int_equal(rep_fig_write(f, g_dir, "msg"), 0);
  rep_fig_free(f);
  check_expect("msg", "{\"message\": \"steering did not run <yet> & more\"}");
}

static void test_single_point_draws(void **state) {
  (void)state;
  double x[] = {7}, y[] = {0.25}, lo[] = {0.2}, hi[] = {0.3};
  rep_fig *f = rep_fig_create("one layer", "layer", "cosine");
  assert_int_equal(rep_fig_line(f, "one", 1, x, y, lo, hi, REP_VERMILLION, 0), 0);
  assert_int_equal(rep_fig_hline(f, 0.25, "same"), 0);
  assert_null(rep_fig_message(f));
  assert_int_equal(rep_fig_write(f, g_dir, "single"), 0);
  rep_fig_free(f);
  check_expect("single", "{\"message\": null, \"series\": [{\"label\": \"one\", \"x\": [7], \"y\": [0.25], "
                         "\"lo\": [0.2], \"hi\": [0.3]}], \"hlines\": [{\"y\": 0.25, \"label\": \"same\"}]}");
}

static void test_bars_and_heatmap(void **state) {
  (void)state;
  const char *names[] = {"baseline", "targeted k=10", "random k=10"};
  double y[] = {0.4, 0.1, 0.38}, lo[] = {0.35, 0.05, NAN}, hi[] = {0.45, 0.15, NAN};
  int col[] = {REP_GREY, REP_BLUE, REP_ORANGE};
  rep_fig *f = rep_fig_create("bars", "condition", "rate (fraction of captions)");
  assert_int_equal(rep_fig_bars(f, 3, names, y, lo, hi, col), 0);
  assert_int_equal(rep_fig_write(f, g_dir, "bars"), 0);
  rep_fig_free(f);
  check_expect("bars", "{\"message\": null, \"series\": [{\"label\": \"\", \"kind\": \"bars\", \"labels\": "
                       "[\"baseline\", \"targeted k=10\", \"random k=10\"], \"y\": [0.4, 0.1, 0.38], "
                       "\"lo\": [0.35, 0.05, null]}]}");

  const char *rows[] = {"k=10", "k=50"}, *cols[] = {"0", "1", "2"};
  double v[] = {0.1, 0.2, NAN, 0.5, 0.6, 1};
  f = rep_fig_create("overlap", "layer", "k");
  assert_int_equal(rep_fig_heatmap(f, 2, 3, v, rows, cols, "Jaccard overlap", 0, 1, 2), 0);
  assert_int_equal(rep_fig_write(f, g_dir, "heat"), 0);
  rep_fig_free(f);
  check_expect("heat", "{\"message\": null, \"series\": [{\"label\": \"Jaccard overlap\", \"kind\": \"heatmap\", "
                       "\"rows\": [\"k=10\", \"k=50\"], \"cols\": [\"0\", \"1\", \"2\"], "
                       "\"values\": [0.1, 0.2, null, 0.5, 0.6, 1]}]}");
}

static void test_arabic_and_escaping(void **state) {
  (void)state;
  double x[] = {0, 1}, y[] = {1, 2};
  rep_fig *f = rep_fig_create("رجل يركب دراجة </desc> & \"q\"", "x <b>", "y");
  rep_fig_scatter(f, "امرأة", 2, x, y, REP_VERMILLION, 4);
  assert_int_equal(rep_fig_write(f, g_dir, "arabic"), 0);
  rep_fig_free(f);
  check_expect("arabic", "{\"title\": \"رجل يركب دراجة </desc> & \\\"q\\\"\", \"series\": "
                         "[{\"label\": \"امرأة\", \"y\": [1, 2]}]}");
}

/* Values whose spacing is below their resolution, and values too large for
 * axis arithmetic: a figure (or a message), never a hang. */
static void test_extreme_values(void **state) {
  (void)state;
  double x[] = {0, 1}, y[] = {1e17, 1e17 + 32}, big[] = {-1e300, 1e300};
  rep_fig *f = rep_fig_create("close values", "x", "y");
  rep_fig_line(f, "a", 2, x, y, NULL, NULL, REP_AUTO, 0);
  assert_null(rep_fig_message(f));
  assert_int_equal(rep_fig_write(f, g_dir, "close"), 0);
  rep_fig_free(f);
  f = rep_fig_create("huge values", "x", "y");
  rep_fig_scatter(f, "a", 2, x, big, REP_AUTO, 0);
  rep_fig_vline(f, 1e300, "far");
  assert_int_equal(rep_fig_write(f, g_dir, "huge"), 0);
  rep_fig_free(f);
  check_expect("huge", "{\"message\": \"too large\"}");
}

static void test_bad_args(void **state) {
  (void)state;
  rep_fig *f = rep_fig_create("t", "x", "y");
  assert_int_equal(rep_fig_line(f, "a", -1, NULL, NULL, NULL, NULL, REP_AUTO, 0), SC_ERR_ARG);
  assert_int_equal(rep_fig_scatter(f, "a", 3, NULL, NULL, REP_AUTO, 0), SC_ERR_ARG);
  assert_int_equal(rep_fig_heatmap(f, -2, 3, NULL, NULL, NULL, "", 0, 1, 1), SC_ERR_ARG);
  char *file = tu_join(g_dir, "a_file");
  tu_write_str(file, "x");
  char *sub = tu_join(file, "sub");
  assert_int_not_equal(rep_fig_write(f, sub, "x"), 0);
  assert_non_null(strstr(sc_error_get(), "a_file"));
  rep_fig_free(f);
  rep_fig_free(NULL);
  free(sub);
  free(file);
}

int main(void) {
  g_dir = tu_tmpdir("plot");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_band_roundtrip), cmocka_unit_test(test_empty_and_nan_give_message),
      cmocka_unit_test(test_single_point_draws),  cmocka_unit_test(test_bars_and_heatmap),
      cmocka_unit_test(test_arabic_and_escaping), cmocka_unit_test(test_extreme_values),
      cmocka_unit_test(test_bad_args),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  rep_plot_release_fonts();
  free(g_dir);
  return rc;
}
