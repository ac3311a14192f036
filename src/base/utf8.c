/* utf8.c: UTF-8 validation through utf8proc_iterate, which rejects
 * overlongs, surrogates and code points past U+10FFFF. */
#include "base/utf8.h"

#include <sys/types.h>
#include <utf8proc.h>

int sc_utf8_valid(const char *buf, size_t n, size_t *bad_offset) {
  size_t i = 0;
  while (i < n) {
    if ((unsigned char)buf[i] < 0x80) {
      i++;
      continue;
    }
    utf8proc_int32_t cp;
    size_t left = n - i;
    utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)buf + i,
                                            left > 4 ? 4 : (utf8proc_ssize_t)left, &cp);
    if (len <= 0 || cp < 0) {
      if (bad_offset) *bad_offset = i;
      return 0;
    }
    i += (size_t)len;
  }
  return 1;
}

int sc_utf8_next(const char *buf, size_t n, int32_t *cp) {
  if (n == 0) return -1;
  utf8proc_int32_t c;
  utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)buf, n > 4 ? 4 : (utf8proc_ssize_t)n, &c);
  if (len <= 0 || c < 0) return -1;
  *cp = c;
  return (int)len;
}

int sc_utf8_encode(int32_t cp, char *out) {
  if (!utf8proc_codepoint_valid(cp)) return 0;
  return (int)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

int sc_utf8_is_word_char(int32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return 1;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return 1;
    default:
      return 0;
  }
}

int sc_utf8_fold_char(int32_t cp, int casefold, int32_t *dst, size_t cap) {
  int last_boundclass = 0;
  utf8proc_option_t opt = UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_STRIPMARK | (casefold ? UTF8PROC_CASEFOLD : 0);
  utf8proc_ssize_t n = utf8proc_decompose_char(cp, dst, (utf8proc_ssize_t)cap, opt, &last_boundclass);
  return n < 0 ? -1 : (int)n;
}
