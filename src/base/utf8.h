/* utf8.h: UTF-8 validation (utf8proc behind the seam). */
#ifndef SC_UTF8_H
#define SC_UTF8_H

#include <stddef.h>

/* 1 if buf[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF);
 * else 0 and *bad_offset (if not NULL) is the byte offset of the first bad
 * sequence. */
int sc_utf8_valid(const char *buf, size_t n, size_t *bad_offset);

#endif
