/* buf.c: rep_buf (buf.h). */
#include "report/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static int grow(rep_buf *b, size_t need) {
  if (b->oom) return -1;
  if (b->len + need + 1 <= b->cap && b->p) return 0;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + need + 1) {
    if (cap > SIZE_MAX / 2) {
      b->oom = 1;
      return -1;
    }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void rep_buf_put(rep_buf *b, const void *data, size_t n) {
  if (grow(b, n)) return;
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = 0;
}

void rep_buf_puts(rep_buf *b, const char *s) { rep_buf_put(b, s ? s : "", s ? strlen(s) : 0); }

void rep_buf_printf(rep_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || grow(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (!len || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
  for (size_t i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3F);
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void rep_buf_html_n(rep_buf *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (s && i < n) {
    unsigned c = u[i];
    const char *rep = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;"
                    : c == '\'' ? "&#39;" : NULL;
    if (rep) {
      rep_buf_puts(b, rep);
      i++;
    } else if (c < 0x20 && c != '\t' && c != '\n') {
      i++;
    } else {
      size_t l = utf8_len(u + i, n - i);
      if (l) rep_buf_put(b, u + i, l);
      else rep_buf_puts(b, "\xEF\xBF\xBD");
      i += l ? l : 1;
    }
  }
}

void rep_buf_html(rep_buf *b, const char *s) { rep_buf_html_n(b, s, s ? strlen(s) : 0); }

void rep_buf_base64(rep_buf *b, const void *data, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *d = data;
  if (grow(b, (n + 2) / 3 * 4)) return;
  char *o = b->p + b->len;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
    *o++ = tab[v >> 18];
    *o++ = tab[v >> 12 & 63];
    *o++ = tab[v >> 6 & 63];
    *o++ = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
    *o++ = tab[v >> 18];
    *o++ = tab[v >> 12 & 63];
    *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
    *o++ = '=';
  }
  b->len = (size_t)(o - b->p);
  b->p[b->len] = 0;
}

int rep_buf_ok(const rep_buf *b) {
  return b->oom ? sc_error_setc(SC_ERR_NOMEM, "report: out of memory building text") : 0;
}

void rep_buf_free(rep_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}
