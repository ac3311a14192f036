/* test_report.c: `saecap report` and report/{buf,results,html}. Results
 * fixtures come from tests/reference/svg_report.py (written from the
 * results schemas); the same script traces every summary number of the
 * page back to the JSON and reads the RQ1 series back from the SVGs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report/buf.h"
#include "report/html.h"
#include "report/results.h"
#include "tu.h"

/* The demo report must stay under this (issue 10). */
#define REPORT_MAX_BYTES (5u << 20)

static char *g_script;

/* A fresh output folder with a config pointing at it; fixture args (NULL:
 * no results at all). Returns the folder; *cfg gets the config path. */
static char *setup(const char *name, const char *fixture_args, char **cfg) {
  char *dir = tu_tmpdir(name), *out = tu_join(dir, "out");
  *cfg = tu_join(dir, "c.yaml");
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "output_dir: %s\nseed: 1\nmodel:\n  path: %s/model\ndata:\n  captions_csv: x.csv\n  images_dir: i\n"
           "report:\n  title: \"Test <report> & co\"\n  feature_cards: 2\n",
           out, dir);
  tu_write_str(*cfg, yaml);
  if (fixture_args) {
    char *err = NULL;
    int st = tu_run(NULL, &err, "/usr/bin/python3 %s fixture %s %s", g_script, out, fixture_args);
    if (st) fprintf(stderr, "fixture: %s\n", err);
    assert_int_equal(st, 0);
    free(err);
  }
  free(dir);
  return out;
}

static void run_report(const char *cfg) {
  char *err = NULL;
  int st = tu_run(NULL, &err, "%s -q report --config %s", tu_bin(), cfg);
  if (st) fprintf(stderr, "report: %s\n", err);
  assert_int_equal(st, 0);
  free(err);
}

static char *read_html(const char *out, size_t *len) {
  char *p = tu_join(out, "report/report.html"), *html = tu_read(p, len);
  assert_non_null(html);
  free(p);
  return html;
}

static void script_ok(const char *what, const char *a1, const char *a2) {
  char *o = NULL, *e = NULL;
  int st = tu_run(&o, &e, "/usr/bin/python3 %s %s %s %s", g_script, what, a1, a2);
  if (st) fprintf(stderr, "svg_report.py %s: %s%s\n", what, o, e);
  assert_int_equal(st, 0);
  free(o);
  free(e);
}

static void test_full_report(void **state) {
  (void)state;
  char *cfg, *out = setup("report_full", "", &cfg);
  run_report(cfg);
  size_t len;
  char *html = read_html(out, &len);
  assert_true(len < REPORT_MAX_BYTES);
  char *rep = tu_join(out, "report/report.html"), *vis = tu_join(out, "visualizations");
  script_ok("trace", rep, out);  /* every summary number is the JSON's */
  script_ok("rq1", vis, out);    /* RQ1 series read back from the SVGs */
  script_ok("rq3", vis, out);    /* RQ3 bars read back */
  /* self-contained: no external reference of any kind */
  assert_null(strstr(html, "http://"));
  assert_null(strstr(html, "https://"));
  assert_null(strstr(html, "<script"));
  assert_null(strstr(html, "<link"));
  /* provenance and the escaped title */
  assert_non_null(strstr(html, "Test &lt;report&gt; &amp; co"));
  assert_non_null(strstr(html, "fnv1a64:"));
  assert_non_null(strstr(html, "saecap version"));
  assert_non_null(strstr(html, "href=\"../results/feature_analysis.json\""));
  /* Arabic cards right to left, the activating token marked */
  assert_non_null(strstr(html, "dir=\"rtl\" lang=\"ar\""));
  assert_non_null(strstr(html, "<mark>"));
  /* two cards per language and layer (report.feature_cards: 2), 3 layers */
  int cards = 0;
  for (const char *p = html; (p = strstr(p, "<div class=\"card\">")); p++) cards++;
  assert_int_equal(cards, 2 * 2 * 3);
  assert_false(tu_has_tmp_files(out));
  free(html), free(rep), free(vis), free(cfg), free(out);
}

/* A changed JSON value changes the report (nothing is hard-wired). */
static void test_json_edit_changes_report(void **state) {
  (void)state;
  char *cfg, *out = setup("report_edit",
                          "--set cross_lingual_analysis:segments.caption.layers.0.direction.cosine=0.4321 "
                          "--set feature_analysis:layers.1.cross_language.counts.ar_only=987 "
                          "--set sae_metrics:saes.0.languages.ar.fvu=0.7654321 "
                          "--set steering_experiments:tests.0.targeted_effect=-0.777 "
                          "--set morphology_analysis:layers.0.languages.ar.classification.both=41",
                          &cfg);
  run_report(cfg);
  size_t len;
  char *html = read_html(out, &len);
  assert_non_null(strstr(html, "direction.cosine\" data-dec=\"3\">0.432</span>"));
  assert_non_null(strstr(html, "counts.ar_only\" data-dec=\"0\">987</span>"));
  assert_non_null(strstr(html, ">0.7654</span>"));
  assert_non_null(strstr(html, "tests.0.targeted_effect\" data-dec=\"3\">-0.777</span>"));
  assert_non_null(strstr(html, "classification.both\" data-dec=\"0\">41</span>"));
  char *rep = tu_join(out, "report/report.html"), *vis = tu_join(out, "visualizations");
  script_ok("trace", rep, out);
  script_ok("rq1", vis, out);
  free(html), free(rep), free(vis), free(cfg), free(out);
}

static void assert_message_fig(const char *vis, const char *stem, const char *needle) {
  char *o = NULL;
  int st = tu_run(&o, NULL, "/usr/bin/python3 %s/tests/reference/svg_data.py dump %s/%s.svg", tu_src(), vis, stem);
  assert_int_equal(st, 0);
  if (!strstr(o, needle)) fprintf(stderr, "%s: %s\n", stem, o);
  assert_non_null(strstr(o, needle));
  free(o);
}

static void test_no_results(void **state) {
  (void)state;
  char *cfg, *out = setup("report_none", NULL, &cfg);
  run_report(cfg);
  size_t len;
  char *html = read_html(out, &len);
  assert_non_null(strstr(html, "results/steering_experiments.json not found: `saecap steer` did not run"));
  assert_non_null(strstr(html, "results/feature_analysis.json not found: `saecap analyze` did not run"));
  assert_non_null(strstr(html, "prepare_report.json not found"));
  char *vis = tu_join(out, "visualizations"), *rep = tu_join(out, "report/report.html");
  assert_message_fig(vis, "rq1_direction_cosine", "cross_lingual_analysis.json not found");
  assert_message_fig(vis, "sae_fvu", "sae_metrics.json not found");
  script_ok("trace", rep, out);
  free(html), free(vis), free(rep), free(cfg), free(out);
}

/* One analysed layer: the RQ1 plots draw one point each, no divergence. */
static void test_single_layer(void **state) {
  (void)state;
  char *cfg, *out = setup("report_one", "--layers 1", &cfg);
  run_report(cfg);
  char *vis = tu_join(out, "visualizations"), *rep = tu_join(out, "report/report.html");
  script_ok("rq1", vis, out);
  assert_message_fig(vis, "rq1_direction_cosine", "\"message\": null");
  size_t len;
  char *html = read_html(out, &len);
  assert_non_null(strstr(html, "not determined"));
  script_ok("trace", rep, out);
  /* the same inputs give the same bytes */
  run_report(cfg);
  size_t len2;
  char *again = read_html(out, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(html, again, len);
  free(again);
  free(html), free(vis), free(rep), free(cfg), free(out);
}

/* A malformed file and hostile strings: the report says so, escapes all. */
static void test_bad_and_hostile_input(void **state) {
  (void)state;
  char *cfg, *out = setup("report_bad",
                          "--set 'feature_analysis:layers.0.languages.ar.cards.0.examples.0.caption=\"<script>x</script> \\\"q\\\" &amp;\"' "
                          "--set 'cross_lingual_analysis:segments.caption.divergence.probe_transfer={\"status\": \"skipped\", \"skip_reason\": \"<b>bold</b>\"}'",
                          &cfg);
  char *mp = tu_join(out, "results/morphology_analysis.json");
  tu_write_str(mp, "{\"schema\": \"saecap.morphology_analysis/1\", ");
  char *sp = tu_join(out, "results/steering_experiments.json");
  tu_write_str(sp, "{\"schema\": \"saecap.something_else/1\"}");
  char *err = NULL;
  int st = tu_run(NULL, &err, "%s report --config %s", tu_bin(), cfg);
  assert_int_equal(st, 0);
  assert_non_null(strstr(err, "morphology_analysis.json"));
  free(err);
  size_t len;
  char *html = read_html(out, &len);
  assert_non_null(strstr(html, "results/morphology_analysis.json could not be read"));
  assert_non_null(strstr(html, "schema &#39;saecap.something_else/1&#39;"));
  assert_null(strstr(html, "<script"));
  assert_non_null(strstr(html, "x&lt;/script&gt; &quot;q&quot; &amp;amp;"));
  assert_null(strstr(html, "<b>bold"));
  assert_non_null(strstr(html, "&lt;b&gt;bold&lt;/b&gt;"));
  char *rep = tu_join(out, "report/report.html");
  script_ok("trace", rep, out);
  free(html), free(rep), free(mp), free(sp), free(cfg), free(out);
}

static void test_cli_errors(void **state) {
  (void)state;
  char *err = NULL;
  int st = tu_run(NULL, &err, "%s report", tu_bin());
  assert_int_equal(st, 2);
  free(err);
  char *out_help = NULL;
  st = tu_run(&out_help, NULL, "%s report --help", tu_bin());
  assert_int_equal(st, 0);
  assert_non_null(strstr(out_help, "report.html"));
  free(out_help);
  /* output_dir/report is a file: the page cannot be written */
  char *cfg, *out = setup("report_err", "", &cfg);
  char *blocker = tu_join(out, "report");
  tu_write_str(blocker, "not a folder");
  st = tu_run(NULL, &err, "%s report --config %s", tu_bin(), cfg);
  tu_assert_one_line_error(st, err, "report", NULL);
  assert_false(tu_has_tmp_files(out));
  free(err), free(blocker), free(cfg), free(out);
}

/* ==== library units ==== */

static void test_buf_escape_and_base64(void **state) {
  (void)state;
  rep_buf b = {0};
  rep_buf_html(&b, "<a href=\"x\">'&'</a>\x01\xff\xd8\xa7");
  assert_string_equal(b.p, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\xEF\xBF\xBD\xd8\xa7");
  rep_buf_free(&b);
  /* RFC 4648 section 10 test vectors */
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    rep_buf_base64(&b, in[i], strlen(in[i]));
    assert_string_equal(b.p ? b.p : "", want[i]);
    rep_buf_free(&b);
  }
  assert_int_equal(rep_buf_ok(&b), 0);
}

static void test_results_paths(void **state) {
  (void)state;
  rep_results r;
  memset(&r, 0, sizeof r);
  const char *j = "{\"schema\": \"saecap.feature_analysis/1\", \"layers\": [{\"layer\": 3, \"x\": {\"y\": [1.5, \"s\"]}}]}";
  assert_int_equal(rep_results_parse(&r, REP_FEATURES, j, strlen(j)), 0);
  assert_int_equal(r.r[REP_FEATURES].state, REP_RES_OK);
  const sc_json *root = r.r[REP_FEATURES].root;
  assert_true(rep_jnum(root, "layers.0.layer") == 3);
  assert_true(rep_jnum(root, "layers.0.x.y.0") == 1.5);
  assert_string_equal(rep_jstr(root, "layers.0.x.y.1"), "s");
  assert_true(rep_jnum(root, "layers.0.x.y.1") != rep_jnum(root, "layers.0.x.y.1")); /* NaN */
  assert_null(rep_j(root, "layers.1"));
  assert_null(rep_j(root, "layers.-1"));
  assert_null(rep_j(root, "layers.0.layer.z"));
  assert_int_equal(rep_jlen(root, "layers"), 1);
  assert_int_equal(rep_results_parse(&r, REP_STEERING, "[1,", 3), 0);
  assert_int_equal(r.r[REP_STEERING].state, REP_RES_BAD);
  assert_non_null(strstr(r.r[REP_STEERING].why, "malformed JSON"));
  rep_results_free(&r);
}

int main(void) {
  g_script = tu_src_path("tests/reference/svg_report.py");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf_escape_and_base64),
      cmocka_unit_test(test_results_paths),
      cmocka_unit_test(test_full_report),
      cmocka_unit_test(test_json_edit_changes_report),
      cmocka_unit_test(test_no_results),
      cmocka_unit_test(test_single_layer),
      cmocka_unit_test(test_bad_and_hostile_input),
      cmocka_unit_test(test_cli_errors),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  free(g_script);
  return rc;
}
