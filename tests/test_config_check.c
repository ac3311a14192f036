/* test_config_check.c: `saecap config --check` (pipeline/check.h) and
 * sc_config_yaml (pipeline/config.h).
 *
 * A valid config prints every schema key with its resolved value; the
 * printed YAML checks again to the same text (round trip), and Python's
 * yaml module (an independent parser) reads the same values. Each bad
 * config gives one line naming the file, the line and the key: unknown
 * key, missing/empty model path, model folder without config.json, data
 * files, languages, layers out of the model's range or not extracted,
 * steer.mode, steer.k, train.k > d_sae, and SLURM resources (time
 * 99:99:99, 1-25:00:00, 0:00:00, mem 32X, cpus 0, extract_shards 0,
 * partition with a space). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "pipeline/config.h"
#include "tu.h"

static char *g_root, *g_model, *g_csv, *g_images;

static int setup(void **state) {
  (void)state;
  g_root = tu_tmpdir("config_check");
  g_model = tu_join(g_root, "model");
  tu_tiny_model(g_model, "--seed 3 --layers 2");
  g_csv = tu_src_path("data/demo/captions.csv");
  g_images = tu_src_path("data/demo/images");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(g_root), free(g_model), free(g_csv), free(g_images);
  return 0;
}

/* A valid config with `extra` appended (sections it names replace none of
 * the base's: the base sets only output_dir, model and data). */
static char *config_with(const char *name, const char *model, const char *extra) {
  char *path = tu_join(g_root, name), text[4096];
  snprintf(text, sizeof text,
           "output_dir: out\nmodel:\n  path: %s\ndata:\n  captions_csv: %s\n  images_dir: %s\n%s", model,
           g_csv, g_images, extra);
  tu_write_str(path, text);
  return path;
}

static int check(const char *cfg, char **out, char **err) {
  return tu_run(out, err, "'%s' config --check '%s'", tu_bin(), cfg);
}

static void test_valid_prints_every_key(void **state) {
  (void)state;
  char *cfg = config_with("ok.yaml", g_model,
                          "extract:\n  layers: [0, 1]\n  default_prompt_ar: \"صف \\\"هذه\\\" الصورة\"\n"
                          "train:\n  layers: [1]\n  lr: 0.000125\nsteer:\n  mode: \"scale:0.5\"\n"
                          "slurm:\n  time: 1-02:03:04\n  mem: 500M\n  partition: gpu-a100\n");
  char *out = NULL, *err = NULL;
  int st = check(cfg, &out, &err);
  if (st) fail_msg("config --check failed: %s", err);
  /* A few resolved values, defaults included. */
  assert_non_null(strstr(out, "\n  d_sae: 16384\n"));
  assert_non_null(strstr(out, "\n  layers: [0, 1]\n"));
  assert_non_null(strstr(out, "\n  lr: 0.000125\n"));
  assert_non_null(strstr(out, "\n  mode: \"scale:0.5\"\n"));
  assert_non_null(strstr(out, "\n  time: \"1-02:03:04\"\n"));
  assert_non_null(strstr(out, "\n  split:\n    train: 0.8\n"));
  /* Round trip: the printed YAML is a config that prints the same. */
  char *again = tu_join(g_root, "again.yaml"), *out2 = NULL;
  tu_write_str(again, out);
  assert_int_equal(check(again, &out2, NULL), 0);
  assert_string_equal(strchr(out, '\n'), strchr(out2, '\n')); /* first line names the file */
  /* An independent parser reads every key the schema has, with the values. */
  char *py = NULL;
  st = tu_run(&py, NULL,
              "/usr/bin/python3 -c 'import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); "
              "print(d[\"train\"][\"d_sae\"], d[\"extract\"][\"layers\"], d[\"slurm\"][\"time\"], "
              "d[\"extract\"][\"default_prompt_ar\"], d[\"data\"][\"split\"][\"val\"], "
              "len(d), sum(len(v) if isinstance(v, dict) else 1 for v in d.values()))' '%s'",
              again);
  if (st == 0) {
    /* 10 top-level entries: output_dir, seed and eight sections. */
    if (!strstr(py, "16384 [0, 1] 1-02:03:04 صف \"هذه\" الصورة 0.1 10 ")) fail_msg("python read: %s", py);
  } else {
    fprintf(stderr, "test_config_check: python3 yaml not available, independent parse skipped\n");
  }
  free(py), free(out2), free(again), free(out), free(err), free(cfg);
}

/* Each case: config body, then the needles of the one-line error. */
typedef struct bad_case {
  const char *name, *extra, *n1, *n2;
  int bad_model; /* 1: model.path missing, 2: folder without config.json, 3: not set */
} bad_case;

static void test_bad_configs(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {"unknown.yaml", "train:\n  d_sea: 4\n", "line 8", "unknown key 'train.d_sea'", 0},
      {"nomodel.yaml", "", "line 3: model.path", "is not a folder", 1},
      {"noconfigjson.yaml", "", "line 3: model.path", "has no config.json", 2},
      {"unset.yaml", "", "model.path", "not set", 3},
      {"time.yaml", "slurm:\n  time: 99:99:99\n", "line 8: slurm.time", "'99:99:99'", 0},
      {"time2.yaml", "slurm:\n  time: 1-25:00:00\n", "line 8: slurm.time", "hours past 23", 0},
      {"time3.yaml", "slurm:\n  time: \"0:00:00\"\n", "line 8: slurm.time", "is zero", 0},
      {"mem.yaml", "slurm:\n  mem: 32X\n", "line 8: slurm.mem", "not a size", 0},
      {"cpus.yaml", "slurm:\n  cpus: 0\n", "line 8: slurm.cpus", "out of range", 0},
      {"shards.yaml", "slurm:\n  extract_shards: 0\n", "line 8: slurm.extract_shards", "out of range", 0},
      {"part.yaml", "slurm:\n  partition: \"a b\"\n", "line 8: slurm.partition", "only letters", 0},
      {"lang.yaml", "extract:\n  languages: [en, fr]\n", "line 8: extract.languages", "'fr'", 0},
      {"lang2.yaml", "steer:\n  languages: [ar, ar]\n", "line 8: steer.languages", "listed twice", 0},
      {"layer.yaml", "extract:\n  layers: [0, 2]\n", "line 8: extract.layers", "layer 2 is out of range [0, 1]", 0},
      {"layer2.yaml", "extract:\n  layers: [1]\ntrain:\n  layers: [0]\n", "line 10: train.layers",
       "not in extract.layers", 0},
      {"layer3.yaml", "analyze:\n  layers: x\n", "line 8: analyze.layers", "'x'", 0},
      {"mode.yaml", "steer:\n  mode: scale:big\n", "line 8: steer.mode", "not a number", 0},
      {"mode2.yaml", "steer:\n  mode: erase\n", "line 8: steer.mode", "ablate, scale:A", 0},
      {"k.yaml", "steer:\n  k: [10, 0]\n", "line 8: steer.k", "'0'", 0},
      {"tk.yaml", "train:\n  d_sae: 8\n  k: 16\n", "line 9: train.k", "more than train.d_sae", 0},
      {"seg.yaml", "train:\n  segments: [caption, text]\n", "line 8: train.segments", "'text'", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case *c = &cases[i];
    char *model = c->bad_model == 1 ? tu_join(g_root, "no-such-model")
                  : c->bad_model == 2 ? tu_join(g_root, "empty-model")
                  : c->bad_model == 3 ? strdup("\"\"")
                                      : strdup(g_model);
    if (c->bad_model == 2) tu_run(NULL, NULL, "mkdir -p '%s'", model);
    char *cfg = config_with(c->name, model, c->extra), *out = NULL, *err = NULL;
    int st = check(cfg, &out, &err);
    fprintf(stderr, "  %-18s -> %s", c->name, err ? err : "(no stderr)\n");
    tu_assert_one_line_error(st, err, c->name, c->n1, c->n2, NULL);
    assert_string_equal(out, "");
    free(out), free(err), free(cfg), free(model);
  }
}

/* The bundled configs follow the schema (their paths need not exist here). */
static void test_bundled_configs_parse(void **state) {
  (void)state;
  static const char *const files[] = {"configs/config.yaml", "configs/demo.yaml"};
  for (size_t i = 0; i < 2; i++) {
    char *p = tu_src_path(files[i]);
    sc_config c;
    if (sc_config_load(p, &c)) fail_msg("%s: %s", p, sc_error_get());
    if (i == 0) {
      assert_string_equal(c.extract.layers, "5,9,13,17,21,25,29,33");
      assert_int_equal(c.train.d_sae, 16384);
      assert_int_equal(c.train.k, 64);
    }
    sc_config_free(&c);
    free(p);
  }
}

static void test_yaml_sections(void **state) {
  (void)state;
  sc_config c;
  sc_config_defaults(&c);
  char *all = sc_config_yaml(&c, NULL), *slurm = sc_config_yaml(&c, "slurm"), *split = sc_config_yaml(&c, "data.split");
  assert_non_null(all);
  assert_string_equal(split, "data:\n  split:\n    train: 0.8\n    val: 0.1\n    test: 0.1\n");
  assert_non_null(strstr(slurm, "slurm:\n  partition: \"\"\n"));
  assert_null(strstr(slurm, "train:"));
  assert_non_null(strstr(all, slurm)); /* a section is a slice of the whole */
  free(all), free(slurm), free(split);
  sc_config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_prints_every_key),
      cmocka_unit_test(test_bad_configs),
      cmocka_unit_test(test_bundled_configs_parse),
      cmocka_unit_test(test_yaml_sections),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
