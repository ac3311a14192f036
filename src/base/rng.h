/* rng.h: seeded random numbers (xoshiro256**, seeded through splitmix64).
 *
 * State lives in the caller's struct, never in a global, so that the same
 * seed gives the same stream on every machine and thread count.
 */
#ifndef SC_RNG_H
#define SC_RNG_H

#include <stdint.h>

typedef struct sc_rng {
  uint64_t s[4];
} sc_rng;

void sc_rng_seed(sc_rng *r, uint64_t seed);
uint64_t sc_rng_u64(sc_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t sc_rng_below(sc_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double sc_rng_uniform(sc_rng *r);
/* Standard normal (Box-Muller; one value per call). */
double sc_rng_normal(sc_rng *r);
/* Fisher-Yates shuffle of n items of `size` bytes each (size <= 256). */
void sc_rng_shuffle(sc_rng *r, void *items, uint64_t n, uint64_t size);

#endif
