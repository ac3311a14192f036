/* arena.c: bump allocator (see arena.h). */
#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int sc_arena_init(sc_arena *a, size_t cap) {
  memset(a, 0, sizeof *a);
  /* Round up so aligned_alloc's size-multiple rule holds. */
  size_t sz = (cap + 4095) & ~(size_t)4095;
  if (sz < cap) return sc_error_setc(SC_ERR_NOMEM, "arena of %zu bytes is too large", cap);
  a->base = sz ? aligned_alloc(4096, sz) : NULL;
  if (sz && !a->base) return sc_error_setc(SC_ERR_NOMEM, "out of memory for a %zu-byte arena", cap);
  a->cap = sz;
  return 0;
}

void *sc_arena_alloc(sc_arena *a, size_t n, size_t align) {
  if (align == 0 || (align & (align - 1)) || align > 4096) align = 64;
  size_t start = (a->used + align - 1) & ~(align - 1);
  if (start < a->used || start > a->cap || n > a->cap - start) {
    sc_error_setc(SC_ERR_NOMEM, "scratch arena full: %zu of %zu bytes used, %zu more asked", a->used,
                  a->cap, n);
    return NULL;
  }
  a->used = start + n;
  if (a->used > a->peak) a->peak = a->used;
  return a->base + start;
}

float *sc_arena_floats(sc_arena *a, size_t n) {
  if (n > SIZE_MAX / sizeof(float)) return NULL;
  return sc_arena_alloc(a, n * sizeof(float), 64);
}

void sc_arena_reset(sc_arena *a) { a->used = 0; }

void sc_arena_free(sc_arena *a) {
  if (!a) return;
  free(a->base);
  memset(a, 0, sizeof *a);
}
