/* rng.c: xoshiro256** (Blackman & Vigna, 2018) seeded with splitmix64. */
#include "base/rng.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void sc_rng_seed(sc_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sc_rng_u64(sc_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t sc_rng_below(sc_rng *r, uint64_t n) {
  /* Rejection sampling: drop the top partial block so every value is equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = sc_rng_u64(r);
  while (x >= limit);
  return x % n;
}

double sc_rng_uniform(sc_rng *r) { return (double)(sc_rng_u64(r) >> 11) * 0x1.0p-53; }

double sc_rng_normal(sc_rng *r) {
  double u1 = 1.0 - sc_rng_uniform(r); /* (0, 1]: log is finite */
  double u2 = sc_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void sc_rng_shuffle(sc_rng *r, void *items, uint64_t n, uint64_t size) {
  unsigned char tmp[256], *b = items;
  if (size > sizeof tmp) return;
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = sc_rng_below(r, i);
    memcpy(tmp, b + (i - 1) * size, size);
    memcpy(b + (i - 1) * size, b + j * size, size);
    memcpy(b + j * size, tmp, size);
  }
}
