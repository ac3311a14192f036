/* buf.h: a growable text buffer for the report, with HTML escaping and
 * base64 (data URIs).
 *
 * Append functions never fail visibly: an allocation failure sets `oom`
 * and later appends do nothing, so a builder checks once at the end
 * (rep_buf_ok). rep_buf_free releases the text; rep_buf_take hands it over.
 */
#ifndef SC_REP_BUF_H
#define SC_REP_BUF_H

#include <stddef.h>

typedef struct rep_buf {
  char *p;     /* NUL-terminated text (NULL while empty) */
  size_t len;  /* bytes before the NUL */
  size_t cap;
  int oom;     /* an append failed */
} rep_buf;

void rep_buf_put(rep_buf *b, const void *data, size_t n);
void rep_buf_puts(rep_buf *b, const char *s);
void rep_buf_printf(rep_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (NULL = "") with & < > " ' escaped for HTML text and attribute values;
 * bytes that are not valid UTF-8 become U+FFFD; control characters other
 * than tab and newline are dropped. */
void rep_buf_html(rep_buf *b, const char *s);
/* Same for the n bytes at s. */
void rep_buf_html_n(rep_buf *b, const char *s, size_t n);
/* Standard base64 (RFC 4648, with padding) of data[0..n). */
void rep_buf_base64(rep_buf *b, const void *data, size_t n);
/* 0, or SC_ERR_NOMEM with a message when an append failed. */
int rep_buf_ok(const rep_buf *b);
void rep_buf_free(rep_buf *b);

#endif
