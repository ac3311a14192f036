/* test_yaml.c: the YAML tree (io/yaml.h): shapes, positions, quoting, and
 * every refusal with its exact message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "io/yaml.h"

static sc_yaml_node *parse_ok(const char *text) {
  sc_yaml_node *n = NULL;
  if (sc_yaml_parse(text, strlen(text), "c.yaml", &n)) fail_msg("unexpected: %s", sc_error_get());
  assert_non_null(n);
  return n;
}

static void parse_fails(const char *text, size_t len, const char *msg) {
  sc_yaml_node *n = (sc_yaml_node *)&n; /* must be reset to NULL */
  assert_int_equal(sc_yaml_parse(text, len, "c.yaml", &n), SC_ERR_FORMAT);
  assert_null(n);
  assert_string_equal(sc_error_get(), msg);
}

#define PARSE_FAILS(lit, msg) parse_fails(lit, sizeof(lit) - 1, msg)

static void test_tree_shape(void **state) {
  (void)state;
  sc_yaml_node *root = parse_ok("# study\n"
                                "name: demo\n"
                                "data:\n"
                                "  split: {train: 0.8, val: '0.1'}\n"
                                "  langs:\n"
                                "    - en\n"
                                "    - \"ar\"\n");
  assert_int_equal(root->kind, SC_YAML_MAP);
  assert_int_equal(root->n, 2);
  assert_string_equal(root->keys[0], "name");
  assert_int_equal(root->key_lines[0], 2);
  const sc_yaml_node *name = sc_yaml_get(root, "name");
  assert_int_equal(name->kind, SC_YAML_SCALAR);
  assert_string_equal(name->scalar, "demo");
  assert_false(name->quoted);
  assert_int_equal(name->line, 2);
  assert_int_equal(name->col, 7);
  const sc_yaml_node *data = sc_yaml_get(root, "data");
  assert_int_equal(data->kind, SC_YAML_MAP);
  assert_int_equal(data->key_lines[1], 5);
  const sc_yaml_node *split = sc_yaml_get(data, "split");
  assert_int_equal(split->kind, SC_YAML_MAP);
  assert_int_equal(split->line, 4);
  assert_int_equal(split->col, 10);
  assert_false(sc_yaml_get(split, "train")->quoted);
  assert_true(sc_yaml_get(split, "val")->quoted);
  assert_string_equal(sc_yaml_get(split, "val")->scalar, "0.1");
  const sc_yaml_node *langs = sc_yaml_get(data, "langs");
  assert_int_equal(langs->kind, SC_YAML_SEQ);
  assert_int_equal(langs->n, 2);
  assert_string_equal(langs->vals[0]->scalar, "en");
  assert_false(langs->vals[0]->quoted);
  assert_true(langs->vals[1]->quoted);
  assert_int_equal(langs->vals[1]->line, 7);
  assert_int_equal(langs->vals[1]->col, 7);
  assert_null(sc_yaml_get(root, "missing"));
  assert_null(sc_yaml_get(name, "x")); /* not a map */
  sc_yaml_free(root);
  sc_yaml_free(NULL);
}

static void test_scalars_and_tags(void **state) {
  (void)state;
  sc_yaml_node *root = parse_ok("a: !!str 12\nb: !!int 12\nc: |\n  two\n  lines\nd:\ne: ''\n");
  assert_true(sc_yaml_get(root, "a")->quoted); /* !!str is a string, like quotes */
  assert_false(sc_yaml_get(root, "b")->quoted);
  assert_string_equal(sc_yaml_get(root, "c")->scalar, "two\nlines\n");
  assert_true(sc_yaml_get(root, "c")->quoted); /* block scalars are strings */
  assert_string_equal(sc_yaml_get(root, "d")->scalar, "");
  assert_false(sc_yaml_get(root, "d")->quoted);
  assert_true(sc_yaml_get(root, "e")->quoted);
  sc_yaml_free(root);
}

static void test_empty_documents(void **state) {
  (void)state;
  static const char *const empties[] = {"", "# only a comment\n", "---\n", "---\n...\n"};
  for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
    sc_yaml_node *root = parse_ok(empties[i]);
    assert_int_equal(root->kind, SC_YAML_MAP);
    assert_int_equal(root->n, 0);
    sc_yaml_free(root);
  }
  sc_yaml_node *root = parse_ok("- 1\n- 2\n"); /* other roots are the caller's business */
  assert_int_equal(root->kind, SC_YAML_SEQ);
  sc_yaml_free(root);
  root = NULL;
  assert_int_equal(sc_yaml_parse(NULL, 0, "c.yaml", &root), 0);
  assert_int_equal(root->kind, SC_YAML_MAP);
  sc_yaml_free(root);
}

static void test_refusals(void **state) {
  (void)state;
  PARSE_FAILS("a: 1\nb: 2\na: 3\n", "c.yaml: line 3: duplicate key 'a'");
  PARSE_FAILS("x:\n  k: 1\n  k: 2\n", "c.yaml: line 3: duplicate key 'k'");
  PARSE_FAILS("a: &x 1\nb: 2\n", "c.yaml: line 1: anchors are not supported");
  PARSE_FAILS("base: &b {k: 1}\n", "c.yaml: line 1: anchors are not supported");
  PARSE_FAILS("a: 1\nb: *x\n", "c.yaml: line 2: aliases are not supported");
  PARSE_FAILS("a: 1\n? [x, y]\n: 2\n",
              "c.yaml: line 2: complex (non-scalar) keys are not supported");
  PARSE_FAILS("{a: 1, {b: 2}: 3}", "c.yaml: line 1: complex (non-scalar) keys are not supported");
  PARSE_FAILS("a: 1\n---\nb: 2\n", "c.yaml: line 2: multiple documents are not supported");
  PARSE_FAILS("a: 1\nb: !custom 2\n", "c.yaml: line 2: unsupported tag '!custom'");
  PARSE_FAILS("a: !!seq {k: 1}\n", "c.yaml: line 1: unsupported tag '!!seq'");
  PARSE_FAILS("a: \"x\\0y\"\n", "c.yaml: line 1: NUL character in a scalar");
}

static void test_libyaml_errors(void **state) {
  (void)state;
  PARSE_FAILS("a: 1\nb: c: d\n",
              "c.yaml: line 2: mapping values are not allowed in this context");
  PARSE_FAILS("a: 1\nb: [1, 2\n", "c.yaml: line 3: did not find expected ',' or ']'");
  PARSE_FAILS("a: 1\n\tb: 2\n", "c.yaml: line 2: found a tab character that violates indentation");
  PARSE_FAILS("a: 1\nb: 2\nc: \xFF\n", "c.yaml: line 3: invalid leading UTF-8 octet");
}

static void test_depth_limit(void **state) {
  (void)state;
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  parse_fails(deep, sizeof deep, "c.yaml: line 1: nesting deeper than 64 levels");
  sc_yaml_node *root = parse_ok("[[[[[[[[[[1]]]]]]]]]]");
  assert_int_equal(root->kind, SC_YAML_SEQ);
  sc_yaml_free(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tree_shape),      cmocka_unit_test(test_scalars_and_tags),
      cmocka_unit_test(test_empty_documents), cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_libyaml_errors),  cmocka_unit_test(test_depth_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
