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
