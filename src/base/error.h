/* error.h: saecap's error convention.
 *
 * Library functions return int: 0 on success, a negative SC_ERR_* code on
 * failure, after calling sc_error_set() with one line that names the file,
 * tensor or row at fault ("captions.csv: row 7: unknown label 'x'"). The
 * message is thread-local; the CLI prints it as "saecap: <message>".
 * Nothing in the library prints or exits.
 */
#ifndef SC_ERROR_H
#define SC_ERROR_H

enum sc_status {
  SC_OK = 0,
  SC_ERR_IO = -1,      /* a file could not be opened, read, written or renamed */
  SC_ERR_FORMAT = -2,  /* a file's contents are malformed */
  SC_ERR_NOMEM = -3,   /* an allocation failed */
  SC_ERR_ARG = -4,     /* a bad argument or option from the user */
  SC_ERR_RANGE = -5,   /* a value is outside its allowed range */
  SC_ERR_MISSING = -6, /* something required is absent (tensor, column, key) */
  SC_ERR_INTERNAL = -7 /* a broken invariant inside saecap */
};

/* Sets this thread's message (printf format, truncated at 1 KiB) and returns
 * SC_ERR_FORMAT, so a parser can write `return sc_error_set(...)`. */
int sc_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Same, returning the given code. */
int sc_error_setc(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the current message (adds context on the way up,
 * e.g. a file name to a parser's "line 3: ..."). Returns code. */
int sc_error_prefix(int code, const char *prefix);

/* This thread's last message; "" if none. Valid until the next set. */
const char *sc_error_get(void);

void sc_error_clear(void);

/* Short name of a status code ("I/O error", ...). */
const char *sc_status_str(int code);

#endif
