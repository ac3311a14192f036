/* test_report_browser.c: a report opened in headless Chromium
 * (tests/browser/report_check.py over chromedriver's WebDriver API): loads
 * from disk in < 2 s, no console errors, no network requests, every image
 * has a size, Arabic captions right to left in the DOM and in the pixels,
 * screenshot saved under the build's testtmp. Skipped only when Chromium
 * or chromedriver is not installed. A tampered copy with left-aligned
 * Arabic must fail the pixel test (the check can fail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu.h"

#define CHROMIUM "/usr/bin/chromium"
#define CHROMEDRIVER "/usr/bin/chromedriver"

static void test_report_in_chromium(void **state) {
  (void)state;
  if (access(CHROMIUM, X_OK) || access(CHROMEDRIVER, X_OK)) {
    fprintf(stderr, "test_report_browser: %s or %s not installed (scripts/install-deps.sh): skipped\n",
            CHROMIUM, CHROMEDRIVER);
    skip();
  }
  char *dir = tu_tmpdir("report_browser"), *out = tu_join(dir, "out"), *cfg = tu_join(dir, "c.yaml");
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "output_dir: %s\nseed: 1\nmodel:\n  path: %s/model\ndata:\n  captions_csv: x.csv\n  images_dir: i\n",
           out, dir);
  tu_write_str(cfg, yaml);
  char *fixture = tu_src_path("tests/reference/svg_report.py"), *check = tu_src_path("tests/browser/report_check.py");
  char *o = NULL, *e = NULL;
  int st = tu_run(NULL, &e, "/usr/bin/python3 %s fixture %s", fixture, out);
  assert_int_equal(st, 0);
  free(e);
  st = tu_run(NULL, &e, "%s -q report --config %s", tu_bin(), cfg);
  assert_int_equal(st, 0);
  free(e);

  st = tu_run(&o, &e, "/usr/bin/python3 %s %s/report/report.html --screenshot %s/report.png", check, out, dir);
  fprintf(stderr, "report_check: %s%s", o, e);
  assert_int_equal(st, 0);
  free(o), free(e);
  char *shot = tu_join(dir, "report.png"), *shot_ar = tu_join(dir, "report-arabic.png");
  assert_true(tu_exists(shot));
  assert_true(tu_exists(shot_ar));

  /* negative control: the same page with its Arabic captions left-aligned */
  st = tu_run(NULL, NULL,
              "sed 's/<\\/style>/.cap{text-align:left !important}<\\/style>/' %s/report/report.html > %s/left.html",
              out, dir);
  assert_int_equal(st, 0);
  st = tu_run(&o, &e, "/usr/bin/python3 %s %s/left.html --screenshot %s/left.png", check, dir, dir);
  assert_int_not_equal(st, 0);
  assert_non_null(strstr(e, "before the right edge"));
  free(o), free(e);
  free(shot), free(shot_ar), free(fixture), free(check), free(cfg), free(out), free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_report_in_chromium)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
