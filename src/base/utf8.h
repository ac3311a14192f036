/* utf8.h: UTF-8 validation (utf8proc behind the seam). */
#ifndef SC_UTF8_H
#define SC_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* 1 if buf[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF);
 * else 0 and *bad_offset (if not NULL) is the byte offset of the first bad
 * sequence. */
int sc_utf8_valid(const char *buf, size_t n, size_t *bad_offset);

/* Decodes the code point at buf[0..n) into *cp and returns its byte length
 * (1..4), or -1 for an invalid or truncated sequence (n == 0 included). */
int sc_utf8_next(const char *buf, size_t n, int32_t *cp);

/* Writes cp as UTF-8 into out (4 bytes room); returns the byte count, 0 for
 * an invalid code point. */
int sc_utf8_encode(int32_t cp, char *out);

/* 1 if cp belongs inside a word: a letter, a combining mark or a number
 * (Unicode general categories L*, M*, N*), or ZWNJ/ZWJ. */
int sc_utf8_is_word_char(int32_t cp);

/* Compatibility decomposition of cp with combining marks removed and, if
 * casefold, case folded (utf8proc COMPAT | STRIPMARK [| CASEFOLD]): writes at
 * most cap code points to dst and returns how many (0 when cp is a mark; may
 * exceed cap, then nothing useful was written), or -1 for an invalid cp. */
int sc_utf8_fold_char(int32_t cp, int casefold, int32_t *dst, size_t cap);

#endif
