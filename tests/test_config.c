/* test_config.c: the typed study config (pipeline/config.h): defaults, every
 * key, and every error with its exact message. Runs under ASan's leak check
 * in the sanitizer build, so failure paths that leak fail the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "pipeline/config.h"
#include "tu.h"

/* Defaults are short decimal literals; this only absorbs binary rounding. */
#define DEFAULT_TOL 1e-12

/* cmocka 1.1 has no assert_double_equal. */
static void near(double got, double want, double tol, const char *what) {
  if (!(got >= want - tol && got <= want + tol))
    fail_msg("%s: got %.17g, want %.17g (tolerance %g)", what, got, want, tol);
}
#define assert_double_equal(got, want, tol) near(got, want, tol, #got)

static void parse_ok(const char *text, sc_config *c) {
  if (sc_config_parse(text, strlen(text), "c.yaml", c)) fail_msg("unexpected: %s", sc_error_get());
}

/* Parses text, expects `code` and exactly `msg`, and a config left empty. */
static void parse_fails(const char *text, int code, const char *msg) {
  sc_config c;
  assert_int_equal(sc_config_parse(text, strlen(text), "c.yaml", &c), code);
  assert_string_equal(sc_error_get(), msg);
  assert_null(c.source);
  assert_null(c.output_dir);
  assert_null(c.data.captions_csv);
}

static void test_defaults(void **state) {
  (void)state;
  sc_config c;
  sc_config_defaults(&c);
  assert_string_equal(c.output_dir, "saecap-out");
  assert_int_equal(c.seed, 1234);
  assert_null(c.model.path);
  assert_null(c.data.captions_csv);
  assert_null(c.data.images_dir);
  assert_int_equal(c.data.on_bad_row, SC_BAD_ROW_ERROR);
  assert_double_equal(c.data.split_train, 0.8, DEFAULT_TOL);
  assert_double_equal(c.data.split_val, 0.1, DEFAULT_TOL);
  assert_double_equal(c.data.split_test, 0.1, DEFAULT_TOL);
  sc_config_free(&c);
  assert_null(c.output_dir);
  sc_config_free(&c); /* twice is harmless */
  sc_config_free(NULL);
}

static void test_full_config(void **state) {
  (void)state;
  sc_config c;
  parse_ok("output_dir: runs/a\n"
           "seed: 18446744073709551615\n"
           "model:\n"
           "  path: /models/gemma-3-4b-it\n"
           "data:\n"
           "  captions_csv: data/captions.csv\n"
           "  images_dir: \"data/images\"\n"
           "  on_bad_row: skip\n"
           "  split: {train: 0.7, val: .2, test: 1e-1}\n",
           &c);
  assert_string_equal(c.source, "c.yaml");
  assert_string_equal(c.output_dir, "runs/a");
  assert_true(c.seed == UINT64_MAX);
  assert_string_equal(c.model.path, "/models/gemma-3-4b-it");
  assert_string_equal(c.data.captions_csv, "data/captions.csv");
  assert_string_equal(c.data.images_dir, "data/images");
  assert_int_equal(c.data.on_bad_row, SC_BAD_ROW_SKIP);
  assert_double_equal(c.data.split_train, 0.7, DEFAULT_TOL);
  assert_double_equal(c.data.split_val, 0.2, DEFAULT_TOL);
  assert_double_equal(c.data.split_test, 0.1, DEFAULT_TOL);
  sc_config_free(&c);
}

static void test_nulls_and_spellings(void **state) {
  (void)state;
  sc_config c;
  /* null, ~ and nothing leave defaults; an empty section is fine; a dotted
   * key is the same key as its nested spelling; a plain number is a fine
   * string for a path key; integers are numbers. */
  parse_ok("output_dir: ~\nseed: +7\nmodel:\ndata:\n  on_bad_row: 'error'\n"
           "  split: {train: NULL, val: null, test: }\n"
           "data.images_dir: 2024\n",
           &c);
  assert_string_equal(c.output_dir, "saecap-out");
  assert_int_equal(c.seed, 7);
  assert_null(c.model.path);
  assert_string_equal(c.data.images_dir, "2024");
  assert_double_equal(c.data.split_train, 0.8, DEFAULT_TOL);
  sc_config_free(&c);
  parse_ok("data: {split: {train: 1, val: 0, test: 0}}\n", &c);
  assert_double_equal(c.data.split_train, 1.0, 0.0);
  sc_config_free(&c);
  static const char *const empties[] = {"", "# nothing\n", "~\n", "---\n"};
  for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
    parse_ok(empties[i], &c);
    assert_int_equal(c.seed, 1234);
    sc_config_free(&c);
  }
}

static void test_unknown_keys(void **state) {
  (void)state;
  parse_fails("seed: 1\noutptu_dir: x\n", SC_ERR_FORMAT, "c.yaml: line 2: unknown key 'outptu_dir'");
  parse_fails("data:\n  captions_csv: a.csv\n  splt:\n    train: 0.5\n", SC_ERR_FORMAT,
              "c.yaml: line 3: unknown key 'data.splt'");
  parse_fails("data: {split: {train: 0.8, vall: 0.1}}\n", SC_ERR_FORMAT,
              "c.yaml: line 1: unknown key 'data.split.vall'");
  parse_fails("data:\n  split:\n    train:\n      deeper: 1\n", SC_ERR_FORMAT,
              "c.yaml: line 4: data.split.train: expected a number, got a mapping");
  char longkey[400];
  memset(longkey, 'k', 300);
  memcpy(longkey + 300, ": 1\n", 5);
  sc_config c;
  assert_int_equal(sc_config_parse(longkey, strlen(longkey), "c.yaml", &c), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "c.yaml: line 1: unknown key 'kkkk"));
}

static void test_wrong_types(void **state) {
  (void)state;
  parse_fails("data:\n  split:\n    train: abc\n", SC_ERR_FORMAT,
              "c.yaml: line 3: data.split.train: expected a number, got 'abc'");
  parse_fails("data: {split: {train: \"0.5\"}}\n", SC_ERR_FORMAT,
              "c.yaml: line 1: data.split.train: expected a number, got '0.5' (quoted, so a string)");
  parse_fails("seed: {a: 1}\n", SC_ERR_FORMAT,
              "c.yaml: line 1: seed: expected a non-negative integer, got a mapping");
  parse_fails("seed: true\n", SC_ERR_FORMAT,
              "c.yaml: line 1: seed: expected a non-negative integer, got 'true'");
  parse_fails("seed: 1.5\n", SC_ERR_FORMAT,
              "c.yaml: line 1: seed: expected a non-negative integer, got '1.5'");
  parse_fails("seed: '12'\n", SC_ERR_FORMAT,
              "c.yaml: line 1: seed: expected a non-negative integer, got '12' (quoted, so a string)");
  parse_fails("\noutput_dir:\n  - a\n", SC_ERR_FORMAT,
              "c.yaml: line 3: output_dir: expected a string, got a sequence");
  parse_fails("data: [1]\n", SC_ERR_FORMAT, "c.yaml: line 1: data: expected a mapping, got a sequence");
  parse_fails("data: 5\n", SC_ERR_FORMAT, "c.yaml: line 1: data: expected a mapping, got '5'");
  parse_fails("- seed\n", SC_ERR_FORMAT, "c.yaml: line 1: expected a mapping of keys, got a sequence");
  parse_fails("data: {on_bad_row: [error]}\n", SC_ERR_FORMAT,
              "c.yaml: line 1: data.on_bad_row: expected one of error, skip, got a sequence");
  static const char *const not_numbers[] = {"1.2.3", "e5", ".", "1e", "0x10", ".inf", ".nan", "1_000", "+-1"};
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
    char text[64], msg[160];
    snprintf(text, sizeof text, "data: {split: {val: %s}}", not_numbers[i]);
    sc_config c;
    assert_int_equal(sc_config_parse(text, strlen(text), "c.yaml", &c), SC_ERR_FORMAT);
    snprintf(msg, sizeof msg, "data.split.val: expected a number, got '%s'", not_numbers[i]);
    if (!strstr(sc_error_get(), msg)) fail_msg("%s: got %s", not_numbers[i], sc_error_get());
  }
}

static void test_ranges_and_choices(void **state) {
  (void)state;
  parse_fails("data:\n  on_bad_row: abort\n", SC_ERR_RANGE,
              "c.yaml: line 2: data.on_bad_row: 'abort' is not allowed, expected one of error, skip");
  parse_fails("data: {split: {train: 1.5}}\n", SC_ERR_RANGE,
              "c.yaml: line 1: data.split.train: 1.5 is out of range [0, 1]");
  parse_fails("data: {split: {test: -0.1}}\n", SC_ERR_RANGE,
              "c.yaml: line 1: data.split.test: -0.1 is out of range [0, 1]");
  parse_fails("data: {split: {test: 1e999}}\n", SC_ERR_RANGE,
              "c.yaml: line 1: data.split.test: 1e999 is out of range [0, 1]");
  parse_fails("seed: -1\n", SC_ERR_RANGE,
              "c.yaml: line 1: seed: -1 is out of range [0, 18446744073709551615]");
  parse_fails("seed: 18446744073709551616\n", SC_ERR_RANGE,
              "c.yaml: line 1: seed: 18446744073709551616 is out of range [0, 18446744073709551615]");
  sc_config c;
  parse_ok("seed: -0\n", &c); /* zero with a sign is still zero */
  assert_int_equal(c.seed, 0);
  sc_config_free(&c);
}

static void test_split_sum(void **state) {
  (void)state;
  parse_fails("seed: 3\ndata:\n  split:\n    train: 0.5\n", SC_ERR_RANGE,
              "c.yaml: line 4: data.split: train + val + test must sum to 1, got 0.7");
  parse_fails("data: {split: {train: 0.8, val: 0.1, test: 0.100002}}", SC_ERR_RANGE,
              "c.yaml: line 1: data.split: train + val + test must sum to 1, got 1.000002");
  /* Inside the 1e-6 tolerance. */
  sc_config c;
  parse_ok("data: {split: {train: 0.3333333, val: 0.3333333, test: 0.3333334}}", &c);
  sc_config_free(&c);
  parse_ok("data: {split: {train: 0.7, val: 0.2, test: 0.1000005}}", &c);
  sc_config_free(&c);
}

static void test_duplicates_and_yaml_errors(void **state) {
  (void)state;
  parse_fails("seed: 1\nseed: 2\n", SC_ERR_FORMAT, "c.yaml: line 2: duplicate key 'seed'");
  parse_fails("data:\n  images_dir: a\ndata.images_dir: b\n", SC_ERR_FORMAT,
              "c.yaml: line 3: duplicate key 'data.images_dir' (first set on line 2)");
  parse_fails("seed: [1\n", SC_ERR_FORMAT, "c.yaml: line 2: did not find expected ',' or ']'");
  parse_fails("output_dir: &d out\n", SC_ERR_FORMAT, "c.yaml: line 1: anchors are not supported");
}

static void test_load(void **state) {
  (void)state;
  char *dir = tu_tmpdir("config_load");
  char *path = tu_join(dir, "study.yaml");
  char want[1024];
  sc_config c;
  tu_write_str(path, "data:\n  captions_csv: c.csv\n  images_dir: img\n");
  assert_int_equal(sc_config_load(path, &c), 0);
  assert_string_equal(c.source, path);
  assert_string_equal(c.data.captions_csv, "c.csv");
  assert_string_equal(c.output_dir, "saecap-out");
  sc_config_free(&c);
  tu_write_str(path, "data:\n  images_dir: img\n");
  assert_int_equal(sc_config_load(path, &c), SC_ERR_MISSING);
  snprintf(want, sizeof want, "%s: missing required key 'data.captions_csv'", path);
  assert_string_equal(sc_error_get(), want);
  assert_null(c.source);
  assert_null(c.data.images_dir);
  tu_write_str(path, "data:\n  captions_csv: c.csv\n  images_dir: ~\n");
  assert_int_equal(sc_config_load(path, &c), SC_ERR_MISSING);
  snprintf(want, sizeof want, "%s: missing required key 'data.images_dir'", path);
  assert_string_equal(sc_error_get(), want);
  tu_write_str(path, "data:\n  splt: 1\n");
  assert_int_equal(sc_config_load(path, &c), SC_ERR_FORMAT);
  snprintf(want, sizeof want, "%s: line 2: unknown key 'data.splt'", path);
  assert_string_equal(sc_error_get(), want);
  char *missing = tu_join(dir, "nope.yaml");
  assert_int_equal(sc_config_load(missing, &c), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), missing));
  assert_null(c.output_dir);
  free(missing);
  free(path);
  free(dir);
}

/* The extract section: defaults, lists as sequences or strings, enums,
 * ranges, and list items that are not scalars. */
static void test_extract_keys(void **state) {
  (void)state;
  sc_config c;
  sc_config_defaults(&c);
  assert_string_equal(c.extract.languages, "en,ar");
  assert_string_equal(c.extract.layers, "all");
  assert_int_equal(c.extract.max_new_tokens, 32);
  assert_int_equal(c.extract.dtype, SC_STORE_BF16);
  assert_int_equal(c.extract.rows_per_shard, 65536);
  assert_string_equal(c.extract.drop_segments, "");
  assert_int_equal(c.extract.drop_bos, 0);
  assert_int_equal(c.extract.precision, SC_CONFIG_F32);
  assert_string_equal(c.extract.default_prompt_en, "Describe this image in one sentence.");
  assert_string_equal(c.extract.default_prompt_ar, "صف هذه الصورة في جملة واحدة.");
  sc_config_free(&c);
  parse_ok("extract:\n  languages: [ar]\n  layers: [3, 1, 12]\n  max_new_tokens: 0\n  dtype: f32\n"
           "  rows_per_shard: 7\n  drop_segments: [image, prompt]\n  drop_bos: true\n"
           "  precision: bf16\n  default_prompt_en: Say it.\n",
           &c);
  assert_string_equal(c.extract.languages, "ar");
  assert_string_equal(c.extract.layers, "3,1,12");
  assert_int_equal(c.extract.max_new_tokens, 0);
  assert_int_equal(c.extract.dtype, SC_STORE_F32);
  assert_int_equal(c.extract.rows_per_shard, 7);
  assert_string_equal(c.extract.drop_segments, "image,prompt");
  assert_int_equal(c.extract.drop_bos, 1);
  assert_int_equal(c.extract.precision, SC_CONFIG_BF16);
  assert_string_equal(c.extract.default_prompt_en, "Say it.");
  sc_config_free(&c);
  parse_ok("extract: {languages: \"en,ar\", layers: all, drop_segments: []}\n", &c);
  assert_string_equal(c.extract.languages, "en,ar");
  assert_string_equal(c.extract.layers, "all");
  assert_string_equal(c.extract.drop_segments, "");
  sc_config_free(&c);
  parse_fails("extract:\n  layers: [[1]]\n", SC_ERR_FORMAT,
              "c.yaml: line 2: extract.layers: expected a list of strings or one string, got a sequence");
  parse_fails("extract:\n  dtype: f16\n", SC_ERR_RANGE,
              "c.yaml: line 2: extract.dtype: 'f16' is not allowed, expected one of bf16, f32");
  parse_fails("extract:\n  max_new_tokens: 2000000\n", SC_ERR_RANGE,
              "c.yaml: line 2: extract.max_new_tokens: 2000000 is out of range [0, 1048576]");
}

/* The later stages' sections: a few defaults, enums, and the lower bounds
 * of integer keys that must be positive. */
static void test_stage_sections(void **state) {
  (void)state;
  sc_config c;
  sc_config_defaults(&c);
  assert_string_equal(c.train.languages, "en,ar");
  assert_int_equal(c.train.per_language, 0);
  assert_string_equal(c.train.segments, "image,prompt,caption");
  assert_int_equal(c.train.architecture, SC_ARCH_TOPK);
  assert_int_equal(c.train.d_sae, 16384);
  assert_int_equal(c.train.k, 64);
  assert_int_equal(c.train.eval_split, SC_CFG_SPLIT_VAL);
  assert_string_equal(c.analyze.segments, "caption");
  assert_int_equal(c.analyze.folds, 5);
  assert_int_equal(c.analyze.exclude_leaky_prompts, 1);
  assert_string_equal(c.steer.k, "10,50,100");
  assert_string_equal(c.steer.mode, "ablate");
  assert_int_equal(c.steer.random_controls, 25);
  assert_int_equal(c.steer.split, SC_CFG_SPLIT_TEST);
  assert_string_equal(c.slurm.time, "04:00:00");
  assert_int_equal(c.slurm.extract_shards, 4);
  sc_config_free(&c);
  parse_ok("train:\n  architecture: batchtopk\n  d_sae: 512\n  eval_split: all\n"
           "analyze: {folds: 2, segments: [caption, image]}\nsteer: {k: [2, 4], mode: 'scale:0.5'}\n",
           &c);
  assert_int_equal(c.train.architecture, SC_ARCH_BATCHTOPK);
  assert_int_equal(c.train.d_sae, 512);
  assert_int_equal(c.train.eval_split, SC_CFG_SPLIT_ALL);
  assert_int_equal(c.analyze.folds, 2);
  assert_string_equal(c.analyze.segments, "caption,image");
  assert_string_equal(c.steer.k, "2,4");
  assert_string_equal(c.steer.mode, "scale:0.5");
  sc_config_free(&c);
  parse_fails("train:\n  d_sae: 0\n", SC_ERR_RANGE,
              "c.yaml: line 2: train.d_sae: 0 is out of range [1, 16777216]");
  parse_fails("analyze:\n  folds: 1\n", SC_ERR_RANGE,
              "c.yaml: line 2: analyze.folds: 1 is out of range [2, 100]");
  parse_fails("train:\n  architecture: jumprelu\n", SC_ERR_RANGE,
              "c.yaml: line 2: train.architecture: 'jumprelu' is not allowed, expected one of topk, "
              "batchtopk, relu");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_extract_keys),
      cmocka_unit_test(test_stage_sections),
      cmocka_unit_test(test_full_config),
      cmocka_unit_test(test_nulls_and_spellings),
      cmocka_unit_test(test_unknown_keys),
      cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_ranges_and_choices),
      cmocka_unit_test(test_split_sum),
      cmocka_unit_test(test_duplicates_and_yaml_errors),
      cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
