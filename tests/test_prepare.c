/* test_prepare.c: the prepare stage through the CLI: good data, every kind
 * of bad row and bad file, skip policy, determinism of the split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tu.h"

/* A scratch dataset: 6 demo images + a config pointing at csv_text. */
typedef struct fixture {
  char *dir, *images, *csv, *config, *out;
} fixture;

static void fixture_make(fixture *fx, const char *name, const char *csv_text, const char *extra_yaml) {
  fx->dir = tu_tmpdir(name);
  fx->images = tu_join(fx->dir, "images");
  fx->csv = tu_join(fx->dir, "captions.csv");
  fx->config = tu_join(fx->dir, "config.yaml");
  fx->out = tu_join(fx->dir, "out");
  char *demo = tu_src_path("data/demo/images");
  int rc = tu_run(NULL, NULL, "mkdir -p '%s' && cp '%s'/img_00[0-5].* '%s'/", fx->images, demo,
                  fx->images);
  assert_int_equal(rc, 0);
  free(demo);
  tu_write_str(fx->csv, csv_text);
  char yaml[4096];
  snprintf(yaml, sizeof yaml,
           "output_dir: %s\nseed: 7\ndata:\n  captions_csv: %s\n  images_dir: %s\n%s", fx->out,
           fx->csv, fx->images, extra_yaml ? extra_yaml : "");
  tu_write_str(fx->config, yaml);
}

static void fixture_free(fixture *fx) {
  free(fx->dir);
  free(fx->images);
  free(fx->csv);
  free(fx->config);
  free(fx->out);
}

static int run_prepare(const fixture *fx, char **out, char **err) {
  return tu_run(out, err, "'%s' prepare --config '%s'", tu_bin(), fx->config);
}

/* Runs prepare expecting failure: one error line with the needles, and no
 * output files at all. */
static void expect_failure(const char *name, const char *csv_text, const char *yaml,
                           const char *needle1, const char *needle2) {
  fixture fx;
  fixture_make(&fx, name, csv_text, yaml);
  char *err;
  int st = run_prepare(&fx, NULL, &err);
  tu_assert_one_line_error(st, err, needle1, needle2, NULL);
  assert_true(tu_count_files(fx.out) <= 0);
  free(err);
  fixture_free(&fx);
}

#define HEADER "image_id,english_prompt,arabic_prompt,ground_truth_gender\n"

static const char *good_csv =
    "ground_truth_gender,arabic_prompt,image_id,english_prompt,note\r\n"
    "Male,\"صف الشخص, من فضلك\",img_000.png,\"Describe the \"\"person\"\".\",a\r\n"
    "female,صف,img_001,Describe,b\r\n"
    "FEMALE,صف,img_002.jpg,\"Describe\nover two lines\",c\r\n"
    "neutral,صف,img_003,Describe,d\r\n"
    "unknown,صف,img_004.png,Describe,e\r\n"
    "male,صف,img_005,Describe,f\r\n"
    "male,صف الصورة,img_000.png,Describe the image.,g\r\n";

static void test_good_dataset(void **state) {
  (void)state;
  fixture fx;
  fixture_make(&fx, "prep_good", good_csv, "  split: {train: 0.5, val: 0.25, test: 0.25}\n");
  char *err;
  int st = run_prepare(&fx, NULL, &err);
  if (st) print_error("%s", err);
  assert_int_equal(st, 0);
  free(err);
  char *samples_path = tu_join(fx.out, "data/processed/samples.jsonl");
  char *report_path = tu_join(fx.out, "data/processed/prepare_report.json");
  char *samples = tu_read(samples_path, NULL);
  char *report = tu_read(report_path, NULL);
  assert_non_null(samples);
  assert_non_null(report);
  assert_int_equal(tu_count_lines(samples), 7);
  /* Quoting, embedded newline, label normalisation, extra columns kept. */
  assert_non_null(strstr(samples, "\"english_prompt\":\"Describe the \\\"person\\\".\""));
  assert_non_null(strstr(samples, "\"arabic_prompt\":\"صف الشخص, من فضلك\""));
  assert_non_null(strstr(samples, "Describe\\nover two lines"));
  assert_non_null(strstr(samples, "\"ground_truth_gender\":\"female\""));
  assert_null(strstr(samples, "FEMALE"));
  assert_non_null(strstr(samples, "\"extra\":{\"note\":\"g\"}"));
  assert_non_null(strstr(samples, "img_005.jpg\""));
  assert_non_null(strstr(report, "\"n_samples\":\t7"));
  assert_non_null(strstr(report, "\"n_images\":\t6"));
  assert_false(tu_has_tmp_files(fx.out));
  /* Same seed: byte-identical outputs. */
  assert_int_equal(run_prepare(&fx, NULL, NULL), 0);
  char *again = tu_read(samples_path, NULL);
  assert_string_equal(samples, again);
  free(again);
  /* Same image twice: both rows in the same split (python checks every image). */
  int rc = tu_run(NULL, &err,
                  "/usr/bin/python3 -c \"import json,sys\n"
                  "rows=[json.loads(l) for l in open(sys.argv[1])]\n"
                  "s={}\n"
                  "[s.setdefault(r['image_path'],set()).add(r['split']) for r in rows]\n"
                  "assert all(len(v)==1 for v in s.values()), s\n"
                  "assert [r['sample_index'] for r in rows]==list(range(len(rows)))\n\" '%s'",
                  samples_path);
  if (rc) print_error("%s", err);
  assert_int_equal(rc, 0);
  free(err);
  free(samples);
  free(report);
  free(samples_path);
  free(report_path);
  fixture_free(&fx);
}

static void test_split_seeded(void **state) {
  (void)state;
  /* 36 demo images: splits are stratified, seed-dependent, disjoint. */
  char *dir = tu_tmpdir("prep_demo");
  char *csv = tu_src_path("data/demo/captions.csv");
  char *imgs = tu_src_path("data/demo/images");
  char *out_a[2];
  for (int k = 0; k < 2; k++) {
    char name[32], yaml[2048];
    snprintf(name, sizeof name, "c%d.yaml", k);
    char *cfg = tu_join(dir, name);
    snprintf(yaml, sizeof yaml,
             "output_dir: %s/o%d\nseed: %d\ndata: {captions_csv: %s, images_dir: %s,"
             " split: {train: 0.5, val: 0.25, test: 0.25}}\n",
             dir, k, 11 + k, csv, imgs);
    tu_write_str(cfg, yaml);
    char *err;
    int st = tu_run(NULL, &err, "'%s' --quiet prepare --config '%s'", tu_bin(), cfg);
    if (st) print_error("%s", err);
    assert_int_equal(st, 0);
    assert_string_equal(err, ""); /* --quiet */
    free(err);
    snprintf(name, sizeof name, "o%d/data/processed/samples.jsonl", k);
    char *p = tu_join(dir, name);
    out_a[k] = tu_read(p, NULL);
    assert_non_null(out_a[k]);
    free(p);
    free(cfg);
  }
  assert_int_equal(tu_count_lines(out_a[0]), 36);
  assert_string_not_equal(out_a[0], out_a[1]);
  char *rep = tu_join(dir, "o0/data/processed/prepare_report.json");
  char *report = tu_read(rep, NULL);
  /* 12 male images -> 6/3/3 at 0.5/0.25/0.25. */
  assert_non_null(strstr(report, "\"train\":\t{\n\t\t\t\"male\":\t6,\n\t\t\t\"female\":\t6"));
  free(report);
  free(rep);
  free(out_a[0]);
  free(out_a[1]);
  free(csv);
  free(imgs);
  free(dir);
}

static void test_bad_rows(void **state) {
  (void)state;
  expect_failure("prep_label", HEADER "img_000.png,d,a,male\nimg_001,d,a,woman\n", NULL,
                 "row 2 (line 3)", "unknown label 'woman'");
  expect_failure("prep_missing", HEADER "img_000.png,d,a,male\nimg_999,d,a,male\n", NULL,
                 "row 2 (line 3)", "image 'img_999' not found");
  expect_failure("prep_empty", HEADER "img_000.png,,a,male\n", NULL, "row 1 (line 2)",
                 "empty english_prompt");
  expect_failure("prep_escape", HEADER "../images/img_000.png,d,a,male\n", NULL, "row 1",
                 "outside the images folder");
}

static void test_bad_csv(void **state) {
  (void)state;
  expect_failure("prep_col", "image_id,english_prompt,ground_truth_gender\nimg_000.png,d,male\n",
                 NULL, "captions.csv", "missing column 'arabic_prompt'");
  expect_failure("prep_fields", HEADER "img_000.png,d,a,male,extra\n", NULL, "captions.csv",
                 "row 1");
  expect_failure("prep_utf8", HEADER "img_000.png,d,a\xff\xfe,male\n", NULL, "captions.csv",
                 "UTF-8");
  expect_failure("prep_quote", HEADER "img_000.png,\"d,a,male\n", NULL, "captions.csv",
                 "row 1");
}

static void test_bad_config(void **state) {
  (void)state;
  expect_failure("prep_key", HEADER "img_000.png,d,a,male\n", "  on_bad_rows: skip\n",
                 "config.yaml", "unknown key");
  expect_failure("prep_type", HEADER "img_000.png,d,a,male\n", "  split: {train: abc}\n",
                 "config.yaml", "data.split.train");
}

static void corrupt_image(const char *name, const char *file, const char *needle) {
  fixture fx;
  fixture_make(&fx, name, HEADER "img_000.png,d,a,male\nimg_002.jpg,d,a,female\n", NULL);
  char *path = tu_join(fx.images, file);
  size_t n;
  char *data = tu_read(path, &n);
  tu_write(path, data, n / 2); /* truncated */
  free(data);
  char *err;
  int st = run_prepare(&fx, NULL, &err);
  tu_assert_one_line_error(st, err, file, needle, NULL);
  assert_true(tu_count_files(fx.out) <= 0);
  free(err);
  free(path);
  fixture_free(&fx);
}

static void test_corrupt_images(void **state) {
  (void)state;
  corrupt_image("prep_png", "img_000.png", "PNG");
  corrupt_image("prep_jpg", "img_002.jpg", "JPEG");
}

static void test_skip_policy(void **state) {
  (void)state;
  fixture fx;
  fixture_make(&fx, "prep_skip",
               HEADER "img_000.png,d,a,male\nimg_999,d,a,male\nimg_001,d,a,robot\nimg_003,d,a,neutral\n",
               "  on_bad_row: skip\n");
  char *err;
  int st = run_prepare(&fx, NULL, &err);
  assert_int_equal(st, 0);
  assert_non_null(strstr(err, "skipped"));
  free(err);
  char *rp = tu_join(fx.out, "data/processed/prepare_report.json");
  char *report = tu_read(rp, NULL);
  assert_non_null(report);
  assert_non_null(strstr(report, "\"n_rejected\":\t2"));
  assert_non_null(strstr(report, "image 'img_999' not found"));
  assert_non_null(strstr(report, "unknown label 'robot'"));
  free(report);
  free(rp);
  fixture_free(&fx);
}

static void test_help(void **state) {
  (void)state;
  char *out;
  assert_int_equal(tu_run(&out, NULL, "'%s' prepare --help", tu_bin()), 0);
  assert_non_null(strstr(out, "usage: saecap prepare --config FILE"));
  free(out);
  char *err;
  int st = tu_run(NULL, &err, "'%s' prepare", tu_bin());
  assert_int_equal(st, 2);
  assert_non_null(strstr(err, "--config FILE is required"));
  free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_dataset), cmocka_unit_test(test_split_seeded),
      cmocka_unit_test(test_bad_rows),     cmocka_unit_test(test_bad_csv),
      cmocka_unit_test(test_bad_config),   cmocka_unit_test(test_corrupt_images),
      cmocka_unit_test(test_skip_policy),  cmocka_unit_test(test_help),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
