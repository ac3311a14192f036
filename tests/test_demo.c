/* test_demo.c: the demo study (configs/demo.yaml, bundled data, tiny model)
 * end to end through `saecap run`, as `make demo` runs it but into a
 * scratch folder: every stage's outputs exist, a second run skips all seven
 * stages, and the demo's report passes the browser check (headless
 * Chromium: under 5 MB, loads in under 2 s, no console errors, no network
 * requests, every figure drawn) when Chromium is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu.h"

static void test_demo_study(void **state) {
  (void)state;
  char *dir = tu_tmpdir("demo"), *model = tu_join(dir, "model"), *out = tu_join(dir, "out"),
       *cfg = tu_join(dir, "demo.yaml");
  tu_tiny_model(model, "--seed 1234");
  /* demo.yaml with its two demo-out paths moved here and the data found
   * from any working folder */
  int st = tu_run(NULL, NULL,
                  "sed -e 's#^output_dir: demo-out#output_dir: %s#' -e 's#path: demo-out/tiny-model#path: %s#' "
                  "-e 's#data/demo/#%s/data/demo/#g' %s/configs/demo.yaml > %s",
                  out, model, tu_src(), tu_src(), cfg);
  assert_int_equal(st, 0);

  char *o = NULL, *e = NULL;
  st = tu_run(&o, &e, "%s run --config %s", tu_bin(), cfg);
  if (st) fprintf(stderr, "%s%s", o, e);
  assert_int_equal(st, 0);
  assert_non_null(strstr(e, "7 stages ran, 0 up to date"));
  free(o), free(e);

  static const char *const outputs[] = {
      "data/processed/samples.jsonl",        "captions/en.jsonl",
      "captions/ar.jsonl",                   "activations/en/layer_0/manifest.json",
      "activations/ar/layer_3/manifest.json", "saes/layer_0/cfg.json",
      "saes/layer_3/sae_weights.safetensors", "results/sae_metrics.json",
      "results/cross_lingual_analysis.json", "results/feature_analysis.json",
      "results/morphology_analysis.json",    "results/steering_experiments.json",
      "report/report.html",                  "visualizations/rq1_direction_cosine.svg",
      "visualizations/rq1_direction_cosine.png"};
  for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) {
    char *p = tu_join(out, outputs[i]);
    if (!tu_exists(p)) fprintf(stderr, "missing demo output %s\n", p);
    assert_true(tu_exists(p));
    free(p);
  }
  assert_false(tu_has_tmp_files(out));

  st = tu_run(NULL, &e, "%s run --config %s", tu_bin(), cfg);
  assert_int_equal(st, 0);
  assert_non_null(strstr(e, "0 stages ran, 7 up to date"));
  free(e);

  if (access("/usr/bin/chromium", X_OK) || access("/usr/bin/chromedriver", X_OK)) {
    fprintf(stderr, "test_demo: chromium or chromedriver not installed: browser check skipped\n");
  } else {
    char *check = tu_src_path("tests/browser/report_check.py");
    st = tu_run(&o, &e, "/usr/bin/python3 %s %s/report/report.html --screenshot %s/demo-report.png", check, out,
                dir);
    fprintf(stderr, "report_check (demo): %s%s", o, e);
    assert_int_equal(st, 0);
    free(o), free(e), free(check);
  }
  free(dir), free(model), free(out), free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_demo_study)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
