/* csv.c: RFC 4180 CSV reader (see csv.h).
 *
 * One pass over the bytes. Field contents, unquoted and NUL-terminated, are
 * appended to one growing text buffer; the parser records each kept field's
 * offset in that buffer. At the end the offsets become pointers in one cell
 * array ((n_rows + 1) * n_cols, header first). So a table is four blocks
 * (struct, text, cells, rows) and sc_csv_free is four free() calls.
 *
 * Line counting: every LF consumed (record ends and LFs inside quoted
 * fields) advances the line, so a record's line stays right after
 * multi-line fields.
 */
#include "io/csv.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/utf8.h"

/* More columns than this is taken for a malformed or hostile file. */
#define CSV_MAX_COLS 4096

/* The public struct plus the blocks its pointers live in. */
typedef struct csv_impl {
  sc_csv pub;  /* first, so an sc_csv * is a csv_impl * */
  char *text;  /* all field strings, NUL-terminated */
  char **cells; /* ((n_rows + 1) * n_cols): header, then rows */
} csv_impl;

typedef enum field_end { END_COMMA, END_RECORD, END_EOF } field_end;

typedef struct csv_parser {
  const char *p, *end; /* unread input */
  const char *name;    /* for messages */
  int line;            /* line of the byte at p (1-based) */
  int rec_line;        /* line where the current record starts */
  int n_rec;           /* records completed, header included (= row of the current one) */
  int n_cols;          /* header width; 0 while reading the header */
  char *text;          /* (text_len) of (text_cap) */
  size_t text_len, text_cap;
  size_t *offs;        /* (n_offs) start of each kept field in text */
  size_t n_offs, offs_cap;
  int *lines;          /* (n_rec) start line of each record */
  size_t lines_cap;
} csv_parser;

/* ==== growable buffers ==== */

/* Makes room for `more` elements of `elem` bytes; capacities double. */
static int grow(void **buf, size_t *cap, size_t used, size_t more, size_t elem) {
  if (more <= *cap - used) return 0;
  size_t want = *cap ? *cap : 64;
  while (want - used < more) {
    if (want > SIZE_MAX / 2 / elem) return SC_ERR_NOMEM;
    want *= 2;
  }
  void *nb = realloc(*buf, want * elem);
  if (!nb) return SC_ERR_NOMEM; /* sc_csv_parse names the file */
  *buf = nb;
  *cap = want;
  return 0;
}

static int text_put(csv_parser *ps, const char *s, size_t n) {
  int rc = grow((void **)&ps->text, &ps->text_cap, ps->text_len, n, 1);
  if (rc) return rc;
  memcpy(ps->text + ps->text_len, s, n);
  ps->text_len += n;
  return 0;
}

/* ==== errors ==== */

static int fail_at(const csv_parser *ps, int line, const char *problem) {
  return sc_error_setc(SC_ERR_FORMAT, "%s: row %d (line %d): %s", ps->name, ps->n_rec, line,
                       problem);
}

static int fail(const csv_parser *ps, const char *problem) {
  return fail_at(ps, ps->rec_line, problem);
}

/* ==== fields ==== */

/* After a field: consumes the separator or line end at p. */
static int field_sep(csv_parser *ps, field_end *end, const char *bad) {
  if (ps->p == ps->end) {
    *end = END_EOF;
    return 0;
  }
  char c = *ps->p;
  if (c == ',') {
    ps->p++;
    *end = END_COMMA;
    return 0;
  }
  if (c == '\r' && ps->end - ps->p >= 2 && ps->p[1] == '\n') ps->p++;
  if (*ps->p == '\n') {
    ps->p++;
    ps->line++;
    *end = END_RECORD;
    return 0;
  }
  if (c == '\r') return fail(ps, "carriage return not followed by a line feed");
  return fail(ps, bad);
}

/* A quoted field, p just past the opening quote. */
static int field_quoted(csv_parser *ps, field_end *end) {
  for (;;) {
    const char *q = memchr(ps->p, '"', (size_t)(ps->end - ps->p));
    if (!q) return fail(ps, "unterminated quoted field");
    for (const char *s = ps->p; s < q; s++) ps->line += *s == '\n';
    int rc = text_put(ps, ps->p, (size_t)(q - ps->p));
    if (rc) return rc;
    ps->p = q + 1;
    if (ps->p < ps->end && *ps->p == '"') { /* "" is one quote */
      if ((rc = text_put(ps, "\"", 1))) return rc;
      ps->p++;
      continue;
    }
    return field_sep(ps, end, "text after a closing quote");
  }
}

static int field_plain(csv_parser *ps, field_end *end) {
  const char *s = ps->p;
  while (s < ps->end && *s != ',' && *s != '\n' && *s != '\r') {
    if (*s == '"') return fail(ps, "quote inside an unquoted field");
    s++;
  }
  int rc = text_put(ps, ps->p, (size_t)(s - ps->p));
  if (rc) return rc;
  ps->p = s;
  return field_sep(ps, end, "quote inside an unquoted field");
}

/* Reads one field; keeps its offset when `keep` (else drops its text). */
static int field_read(csv_parser *ps, int keep, field_end *end) {
  size_t start = ps->text_len;
  int rc;
  if (ps->p < ps->end && *ps->p == '"') {
    ps->p++;
    rc = field_quoted(ps, end);
  } else {
    rc = field_plain(ps, end);
  }
  if (rc) return rc;
  if (!keep) {
    ps->text_len = start;
    return 0;
  }
  if ((rc = text_put(ps, "", 1))) return rc;
  if ((rc = grow((void **)&ps->offs, &ps->offs_cap, ps->n_offs, 1, sizeof *ps->offs))) return rc;
  ps->offs[ps->n_offs++] = start;
  return 0;
}

/* ==== records ==== */

/* Invalid UTF-8 or a NUL byte in the raw record [s, e): names the line of
 * the bad byte, which may be below the record's first line. */
static int record_check_text(const csv_parser *ps, const char *s, const char *e) {
  size_t bad = 0;
  const char *nul = memchr(s, '\0', (size_t)(e - s));
  int ok = sc_utf8_valid(s, (size_t)(e - s), &bad);
  if (ok && !nul) return 0;
  if (nul && (ok || (size_t)(nul - s) < bad)) bad = (size_t)(nul - s);
  int line = ps->rec_line;
  for (const char *c = s; c < s + bad; c++) line += *c == '\n';
  return fail_at(ps, line, (s[bad] == '\0') ? "NUL byte" : "invalid UTF-8");
}

/* Reads one record, which starts at p (not on a blank line). */
static int record_read(csv_parser *ps) {
  const char *raw = ps->p;
  int cap = ps->n_cols ? ps->n_cols : CSV_MAX_COLS;
  long n = 0;
  field_end end = END_COMMA;
  while (end == END_COMMA) {
    if (n == cap && !ps->n_cols) return fail(ps, "more than 4096 columns");
    int rc = field_read(ps, n < cap, &end);
    if (rc) return rc;
    n++;
  }
  int rc = record_check_text(ps, raw, ps->p);
  if (rc) return rc;
  if (ps->n_cols && n != ps->n_cols) {
    char msg[96];
    snprintf(msg, sizeof msg, "expected %d fields, found %ld", ps->n_cols, n);
    return fail(ps, msg);
  }
  if (!ps->n_cols) ps->n_cols = (int)n;
  return 0;
}

/* Skips blank lines; 1 if a record follows, 0 at end of input. */
static int skip_blank(csv_parser *ps) {
  for (;;) {
    if (ps->p == ps->end) return 0;
    if (*ps->p == '\n') {
      ps->p++;
    } else if (*ps->p == '\r' && ps->end - ps->p >= 2 && ps->p[1] == '\n') {
      ps->p += 2;
    } else {
      return 1;
    }
    ps->line++;
  }
}

static int records_read(csv_parser *ps) {
  while (skip_blank(ps)) {
    if (ps->n_rec == INT_MAX) return fail(ps, "too many records");
    ps->rec_line = ps->line;
    int rc = record_read(ps);
    if (rc) return rc;
    rc = grow((void **)&ps->lines, &ps->lines_cap, (size_t)ps->n_rec, 1, sizeof *ps->lines);
    if (rc) return rc;
    ps->lines[ps->n_rec++] = ps->rec_line;
  }
  if (ps->n_rec == 0) {
    ps->rec_line = ps->line;
    return fail(ps, "empty file, expected a header");
  }
  return 0;
}

/* ==== header ==== */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
  return s;
}

static int header_check(const csv_parser *ps, char **h, int n) {
  char msg[160];
  for (int i = 0; i < n; i++) {
    h[i] = trim(h[i]);
    if (!h[i][0]) {
      snprintf(msg, sizeof msg, "empty column name (column %d)", i + 1);
      return fail_at(ps, ps->lines[0], msg);
    }
    for (int j = 0; j < i; j++) {
      if (strcasecmp(h[i], h[j]) != 0) continue;
      snprintf(msg, sizeof msg, "duplicate column name '%.64s' (columns %d and %d)", h[i], j + 1,
               i + 1);
      return fail_at(ps, ps->lines[0], msg);
    }
  }
  return 0;
}

/* ==== building the table ==== */

static int table_build(csv_parser *ps, sc_csv **out) {
  csv_impl *t = calloc(1, sizeof *t);
  size_t n_rec = (size_t)ps->n_rec, n_cols = (size_t)ps->n_cols;
  if (!t) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", ps->name);
  t->cells = malloc(ps->n_offs * sizeof *t->cells);
  t->pub.rows = calloc(n_rec, sizeof *t->pub.rows);
  if (!t->cells || !t->pub.rows) {
    sc_csv_free(&t->pub);
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", ps->name);
  }
  t->text = ps->text;
  ps->text = NULL;
  for (size_t i = 0; i < ps->n_offs; i++) t->cells[i] = t->text + ps->offs[i];
  t->pub.n_cols = ps->n_cols;
  t->pub.header = t->cells;
  t->pub.n_rows = ps->n_rec - 1;
  for (size_t r = 1; r < n_rec; r++) {
    t->pub.rows[r - 1].fields = t->cells + r * n_cols;
    t->pub.rows[r - 1].line = ps->lines[r];
  }
  *out = &t->pub;
  return 0;
}

int sc_csv_parse(const char *buf, size_t len, const char *name, sc_csv **out) {
  *out = NULL;
  if (len > SC_CSV_MAX_BYTES)
    return sc_error_setc(SC_ERR_RANGE, "%s: %zu bytes, more than the CSV limit of %zu", name, len,
                         SC_CSV_MAX_BYTES);
  if (!buf) buf = ""; /* len is 0: keeps pointer arithmetic defined */
  csv_parser ps = {.p = buf, .end = buf + len, .name = name, .line = 1, .rec_line = 1};
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) ps.p += 3;
  sc_csv *t = NULL;
  int rc = records_read(&ps);
  if (!rc) rc = table_build(&ps, &t);
  if (!rc) {
    ps.n_rec = 0; /* header messages say row 0 */
    rc = header_check(&ps, t->header, t->n_cols);
  }
  free(ps.text);
  free(ps.offs);
  free(ps.lines);
  if (rc == SC_ERR_NOMEM) sc_error_setc(rc, "%s: out of memory reading the table", name);
  if (rc) {
    sc_csv_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int sc_csv_load(const char *path, sc_csv **out) {
  char *buf;
  size_t len;
  *out = NULL;
  int rc = sc_read_file(path, SC_CSV_MAX_BYTES, &buf, &len);
  if (rc) return rc;
  rc = sc_csv_parse(buf, len, path, out);
  free(buf);
  return rc;
}

void sc_csv_free(sc_csv *t) {
  if (!t) return;
  csv_impl *impl = (csv_impl *)t;
  free(impl->text);
  free(impl->cells);
  free(t->rows);
  free(impl);
}

int sc_csv_col(const sc_csv *t, const char *name) {
  for (int i = 0; t && i < t->n_cols; i++)
    if (strcasecmp(t->header[i], name) == 0) return i;
  return -1;
}
