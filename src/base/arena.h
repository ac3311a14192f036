/* arena.h: bump allocator for per-call scratch.
 *
 * One malloc'd block; sc_arena_alloc hands out aligned slices and returns
 * NULL (with a message) when the block is full; sc_arena_reset makes the
 * whole block free again. Forward passes reset their arena on each call.
 */
#ifndef SC_ARENA_H
#define SC_ARENA_H

#include <stddef.h>

typedef struct sc_arena {
  unsigned char *base; /* (cap) bytes */
  size_t cap;          /* size of the block */
  size_t used;         /* bytes handed out so far */
  size_t peak;         /* most bytes ever in use */
} sc_arena;

/* Allocates the block. Returns SC_ERR_NOMEM on failure. */
int sc_arena_init(sc_arena *a, size_t cap);
/* Aligned slice of n bytes (align a power of two <= 4096), or NULL. */
void *sc_arena_alloc(sc_arena *a, size_t n, size_t align);
/* Slice of n floats, 64-byte aligned. */
float *sc_arena_floats(sc_arena *a, size_t n);
void sc_arena_reset(sc_arena *a);
/* Frees the block; safe on a zeroed arena. */
void sc_arena_free(sc_arena *a);

#endif
