/* error.c: thread-local error message (see error.h). */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SC_ERROR_MAX 1024

static _Thread_local char sc_msg[SC_ERROR_MAX];

static void error_vset(const char *fmt, va_list ap) {
  vsnprintf(sc_msg, sizeof sc_msg, fmt, ap);
  /* One line only: a user-supplied name with a newline must not split it. */
  for (char *p = sc_msg; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
}

int sc_error_set(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vset(fmt, ap);
  va_end(ap);
  return SC_ERR_FORMAT;
}

int sc_error_setc(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vset(fmt, ap);
  va_end(ap);
  return code;
}

int sc_error_prefix(int code, const char *prefix) {
  char old[SC_ERROR_MAX];
  memcpy(old, sc_msg, sizeof old);
  size_t np = strlen(prefix);
  if (np > SC_ERROR_MAX / 2) np = SC_ERROR_MAX / 2;
  memcpy(sc_msg, prefix, np);
  memcpy(sc_msg + np, ": ", 2);
  size_t room = SC_ERROR_MAX - np - 3, no = strlen(old);
  if (no > room) no = room;
  memcpy(sc_msg + np + 2, old, no);
  sc_msg[np + 2 + no] = '\0';
  return code;
}

const char *sc_error_get(void) { return sc_msg; }

void sc_error_clear(void) { sc_msg[0] = '\0'; }

const char *sc_status_str(int code) {
  switch (code) {
  case SC_OK: return "ok";
  case SC_ERR_IO: return "I/O error";
  case SC_ERR_FORMAT: return "malformed input";
  case SC_ERR_NOMEM: return "out of memory";
  case SC_ERR_ARG: return "bad argument";
  case SC_ERR_RANGE: return "value out of range";
  case SC_ERR_MISSING: return "missing item";
  case SC_ERR_INTERNAL: return "internal error";
  default: return "unknown error";
  }
}
