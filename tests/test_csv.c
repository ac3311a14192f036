/* test_csv.c: the RFC 4180 reader (io/csv.h), every accepted form and every
 * error with its exact message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "io/csv.h"
#include "tu.h"

static sc_csv *parse_ok(const char *text, size_t len) {
  sc_csv *t = NULL;
  int rc = sc_csv_parse(text, len, "t.csv", &t);
  if (rc) fail_msg("unexpected error: %s", sc_error_get());
  assert_non_null(t);
  return t;
}

/* Parses text, expects SC_ERR_FORMAT with exactly `msg`, and no table. */
static void parse_fails(const char *text, size_t len, const char *msg) {
  sc_csv *t = (sc_csv *)&t; /* must be reset to NULL */
  assert_int_equal(sc_csv_parse(text, len, "captions.csv", &t), SC_ERR_FORMAT);
  assert_null(t);
  assert_string_equal(sc_error_get(), msg);
}

#define PARSE_FAILS(lit, msg) parse_fails(lit, sizeof(lit) - 1, msg)

static void test_rfc4180_forms(void **state) {
  (void)state;
  static const char text[] = "\xEF\xBB\xBF id , caption ,gender\r\n"
                             "1,\"a, b\",f\r\n"
                             "\r\n"
                             "2,\"say \"\"hi\"\"\",m\r\n"
                             "3,\"two\r\nlines\nthree\",\r\n"
                             "\n"
                             "4,,\"\"";
  sc_csv *t = parse_ok(text, sizeof text - 1);
  assert_int_equal(t->n_cols, 3);
  assert_string_equal(t->header[0], "id"); /* BOM skipped, spaces trimmed */
  assert_string_equal(t->header[1], "caption");
  assert_string_equal(t->header[2], "gender");
  assert_int_equal(t->n_rows, 4);
  assert_string_equal(t->rows[0].fields[1], "a, b");
  assert_int_equal(t->rows[0].line, 2);
  assert_string_equal(t->rows[1].fields[1], "say \"hi\"");
  assert_int_equal(t->rows[1].line, 4); /* the blank line 3 was skipped */
  assert_string_equal(t->rows[2].fields[1], "two\r\nlines\nthree");
  assert_string_equal(t->rows[2].fields[2], "");
  assert_int_equal(t->rows[2].line, 5);
  /* Row 3 spans lines 5-7, line 8 is blank: the last record (no line end)
   * starts on line 9. */
  assert_int_equal(t->rows[3].line, 9);
  assert_string_equal(t->rows[3].fields[0], "4");
  assert_string_equal(t->rows[3].fields[1], "");
  assert_string_equal(t->rows[3].fields[2], "");
  assert_int_equal(sc_csv_col(t, "CAPTION"), 1);
  assert_int_equal(sc_csv_col(t, "gender"), 2);
  assert_int_equal(sc_csv_col(t, "nope"), -1);
  sc_csv_free(t);
  sc_csv_free(NULL);
}

static void test_header_only_and_blank_edges(void **state) {
  (void)state;
  sc_csv *t = parse_ok("\n\na,b\n\n\n", 8);
  assert_int_equal(t->n_cols, 2);
  assert_int_equal(t->n_rows, 0);
  sc_csv_free(t);
  /* Fields keep inner and outer spaces (only header names are trimmed),
   * and a trailing comma is an empty last field. */
  t = parse_ok("x,y\n a ,\n", 9);
  assert_int_equal(t->n_rows, 1);
  assert_string_equal(t->rows[0].fields[0], " a ");
  assert_string_equal(t->rows[0].fields[1], "");
  assert_int_equal(t->rows[0].line, 2);
  sc_csv_free(t);
  /* UTF-8 (Arabic) passes through unchanged. */
  static const char ar[] = "lang,text\nar,\"\xD9\x82\xD8\xB7\xD8\xA9, \xD9\x88\"\n";
  t = parse_ok(ar, sizeof ar - 1);
  assert_string_equal(t->rows[0].fields[1], "\xD9\x82\xD8\xB7\xD8\xA9, \xD9\x88");
  sc_csv_free(t);
}

static void test_field_count(void **state) {
  (void)state;
  PARSE_FAILS("a,b,c,d\n1,2,3,4\n\n5,6,7,8\n9,10,11,12,13\n",
              "captions.csv: row 3 (line 5): expected 4 fields, found 5");
  PARSE_FAILS("a,b,c\n1,2\n", "captions.csv: row 1 (line 2): expected 3 fields, found 2");
  /* The line of a record after a multi-line field is still right. */
  PARSE_FAILS("a,b\n1,\"x\n\ny\"\n2\n", "captions.csv: row 2 (line 5): expected 2 fields, found 1");
}

static void test_quote_errors(void **state) {
  (void)state;
  PARSE_FAILS("a,b\n1,\"open\n2,3\n",
              "captions.csv: row 1 (line 2): unterminated quoted field");
  PARSE_FAILS("a,b\n1,x\"y\n", "captions.csv: row 1 (line 2): quote inside an unquoted field");
  PARSE_FAILS("a,b\n1,\"x\"y\n", "captions.csv: row 1 (line 2): text after a closing quote");
  PARSE_FAILS("a,b\n1,\"x\" \n", "captions.csv: row 1 (line 2): text after a closing quote");
  PARSE_FAILS("a,b\r1,2\n",
              "captions.csv: row 0 (line 1): carriage return not followed by a line feed");
}

static void test_bad_bytes(void **state) {
  (void)state;
  /* The bad byte sits on line 4, inside a record that starts on line 3. */
  PARSE_FAILS("a,b\n1,2\n3,\"ok\n\xC3\x28\"\n",
              "captions.csv: row 2 (line 4): invalid UTF-8");
  PARSE_FAILS("a,b\n1,\xFF\n", "captions.csv: row 1 (line 2): invalid UTF-8");
  PARSE_FAILS("a\xED\xA0\x80,b\n", "captions.csv: row 0 (line 1): invalid UTF-8"); /* surrogate */
  static const char nul[] = "a,b\n1,x\0y\n";
  parse_fails(nul, sizeof nul - 1, "captions.csv: row 1 (line 2): NUL byte");
}

static void test_header_errors(void **state) {
  (void)state;
  PARSE_FAILS("", "captions.csv: row 0 (line 1): empty file, expected a header");
  PARSE_FAILS("\xEF\xBB\xBF\r\n\n", "captions.csv: row 0 (line 3): empty file, expected a header");
  PARSE_FAILS("\na, ,c\n", "captions.csv: row 0 (line 2): empty column name (column 2)");
  PARSE_FAILS("id,Caption,caption \n",
              "captions.csv: row 0 (line 1): duplicate column name 'caption' (columns 2 and 3)");
  sc_csv *t = NULL;
  assert_int_equal(sc_csv_parse(NULL, 0, "n.csv", &t), SC_ERR_FORMAT);
  assert_null(t);
}

static void test_column_limit(void **state) {
  (void)state;
  enum { N_OK = 4096 };
  size_t cap = (N_OK + 1) * 8 + 16, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (int i = 0; i < N_OK; i++) n += (size_t)snprintf(buf + n, cap - n, "%sc%d", i ? "," : "", i);
  sc_csv *t = parse_ok(buf, n);
  assert_int_equal(t->n_cols, N_OK);
  assert_string_equal(t->header[N_OK - 1], "c4095");
  sc_csv_free(t);
  n += (size_t)snprintf(buf + n, cap - n, ",c%d\n", N_OK);
  parse_fails(buf, n, "captions.csv: row 0 (line 1): more than 4096 columns");
  free(buf);
}

static void test_load(void **state) {
  (void)state;
  char *dir = tu_tmpdir("csv_load");
  char *path = tu_join(dir, "captions.csv");
  tu_write_str(path, "image,caption\nimg1.jpg,\"a cat\"\n");
  sc_csv *t = NULL;
  assert_int_equal(sc_csv_load(path, &t), 0);
  assert_int_equal(t->n_rows, 1);
  assert_string_equal(t->rows[0].fields[1], "a cat");
  sc_csv_free(t);
  /* Messages name the path as given. */
  tu_write_str(path, "image,caption\nimg1.jpg\n");
  assert_int_equal(sc_csv_load(path, &t), SC_ERR_FORMAT);
  assert_null(t);
  char want[1024];
  snprintf(want, sizeof want, "%s: row 1 (line 2): expected 2 fields, found 1", path);
  assert_string_equal(sc_error_get(), want);
  char *missing = tu_join(dir, "nope.csv");
  assert_int_equal(sc_csv_load(missing, &t), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), missing));
  free(missing);
  free(path);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4180_forms), cmocka_unit_test(test_header_only_and_blank_edges),
      cmocka_unit_test(test_field_count),   cmocka_unit_test(test_quote_errors),
      cmocka_unit_test(test_bad_bytes),     cmocka_unit_test(test_header_errors),
      cmocka_unit_test(test_column_limit),  cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
