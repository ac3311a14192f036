/* csv.h: RFC 4180 CSV, read whole into memory.
 *
 * Accepts: a UTF-8 BOM at the start (skipped), CRLF or LF line ends, quoted
 * fields holding commas, doubled quotes ("") and line breaks, a final record
 * with or without a line end. The first record is the header. Every record
 * must have as many fields as the header; blank lines (no characters at
 * all) between records are skipped.
 * Errors (all SC_ERR_FORMAT, message "<name>: row R (line L): <problem>"):
 * invalid UTF-8, a field count that differs from the header's, an
 * unterminated quoted field, a quote inside an unquoted field or text after
 * a closing quote, an empty file or empty header name, duplicate header
 * names, a NUL byte, a CR not followed by LF. R counts data records from 1
 * (the header is row 0); L is the 1-based line on which the record starts,
 * except for invalid UTF-8, where it is the line of the bad byte.
 */
#ifndef SC_CSV_H
#define SC_CSV_H

#include <stddef.h>

#define SC_CSV_MAX_BYTES ((size_t)1 << 30)

typedef struct sc_csv_row {
  char **fields; /* (n_cols) NUL-terminated UTF-8, owned by the table */
  int line;      /* line where the record starts (1-based) */
} sc_csv_row;

typedef struct sc_csv {
  int n_cols;
  char **header;    /* (n_cols) column names, surrounding spaces trimmed */
  int n_rows;       /* data records, header excluded */
  sc_csv_row *rows; /* (n_rows) */
} sc_csv;

/* Parses buf[0..len); `name` is used in messages. On success *out is owned
 * by the caller (sc_csv_free). */
int sc_csv_parse(const char *buf, size_t len, const char *name, sc_csv **out);
/* Reads and parses a file. */
int sc_csv_load(const char *path, sc_csv **out);
void sc_csv_free(sc_csv *t);
/* Index of the column named `name` (case-insensitive), or -1. */
int sc_csv_col(const sc_csv *t, const char *name);

#endif
