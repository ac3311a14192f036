/* test_dtype.c: dtype sizes and names; f32 <-> bf16 / f16 conversions on
 * hand-picked edge cases, exhaustively over all 16-bit patterns, and against
 * the independent numpy reference (tests/reference/st_reference.py) over a
 * large sample of f32 bit patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/rng.h"
#include "tensor/dtype.h"
#include "tu.h"

/* Random f32 patterns cross-checked against numpy (plus structured ones). */
#define N_RANDOM_PATTERNS 1000000

static float f_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

static uint32_t bits_f(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static int f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }
static int bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu); }
static int f32_is_nan(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

static void test_sizes_names(void **state) {
  (void)state;
  static const char *names[] = {"F32", "F16", "BF16", "F64", "I8", "I16", "I32",
                                "I64", "U8",  "U16", "U32",  "U64", "BOOL"};
  static const size_t sizes[] = {4, 2, 2, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1};
  assert_int_equal(SC_DTYPE_COUNT, 13);
  for (int i = 0; i < SC_DTYPE_COUNT; i++) {
    assert_string_equal(sc_dtype_name((sc_dtype)i), names[i]);
    assert_int_equal(sc_dtype_size((sc_dtype)i), sizes[i]);
    sc_dtype t;
    assert_int_equal(sc_dtype_from_name(names[i], &t), 0);
    assert_int_equal(t, i);
  }
  sc_dtype t;
  assert_int_equal(sc_dtype_from_name("f32", &t), -1); /* names are case-sensitive */
  assert_int_equal(sc_dtype_from_name("F8_E4M3", &t), -1);
  assert_int_equal(sc_dtype_from_name("", &t), -1);
  assert_int_equal(sc_dtype_size(SC_DTYPE_COUNT), 0);
}

static void test_bf16_edges(void **state) {
  (void)state;
  static const uint32_t in[][2] = {
      {0x3f800000u, 0x3f80u}, /* 1.0 */
      {0x3f808000u, 0x3f80u}, /* tie, kept part even: down */
      {0x3f818000u, 0x3f82u}, /* tie, kept part odd: up */
      {0xbf818000u, 0xbf82u}, /* same, negative */
      {0x3f808001u, 0x3f81u}, /* just above the tie */
      {0x3f807fffu, 0x3f80u}, /* just below */
      {0x7f7fffffu, 0x7f80u}, /* largest finite f32 rounds to inf */
      {0xff7fffffu, 0xff80u},
      {0x7f7f7fffu, 0x7f7fu}, /* stays at the largest finite bf16 */
      {0x7f7f8000u, 0x7f80u}, /* tie above the largest bf16 (odd): inf */
      {0x00000000u, 0x0000u}, {0x80000000u, 0x8000u},
      {0x7f800000u, 0x7f80u}, {0xff800000u, 0xff80u},
      {0x00000001u, 0x0000u}, /* smallest f32 subnormal */
      {0x00008000u, 0x0000u}, /* subnormal tie, even: down */
      {0x00018000u, 0x0002u}, /* subnormal tie, odd: up */
      {0x007fffffu, 0x0080u}, /* largest subnormal rounds to the smallest normal */
      {0x7fc00000u, 0x7fc0u}, /* quiet NaN */
      {0xffc00000u, 0xffc0u}, /* negative NaN keeps its sign */
      {0x7f800001u, 0x7fc0u}, /* payload only in the low bits: NaN, not inf */
      {0x7fa00000u, 0x7fe0u}, /* signalling NaN: made quiet, payload kept */
  };
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    uint16_t got = sc_bf16_from_f32(f_bits(in[i][0]));
    if (got != in[i][1]) fail_msg("bf16(0x%08x) = 0x%04x, expected 0x%04x", in[i][0], got, (unsigned)in[i][1]);
  }
  assert_int_equal(bits_f(sc_f32_from_bf16(0x3f80u)), 0x3f800000u);
  assert_int_equal(bits_f(sc_f32_from_bf16(0x0001u)), 0x00010000u); /* subnormal */
  assert_int_equal(bits_f(sc_f32_from_bf16(0xff80u)), 0xff800000u);
  assert_int_equal(bits_f(sc_f32_from_bf16(0x8000u)), 0x80000000u);
  assert_true(f32_is_nan(bits_f(sc_f32_from_bf16(0x7fc1u))));
}

static void test_f16_edges(void **state) {
  (void)state;
  static const uint32_t in[][2] = {
      {0x3f800000u, 0x3c00u}, /* 1.0 */
      {0x477fe000u, 0x7bffu}, /* 65504, the largest finite */
      {0x477fefffu, 0x7bffu}, /* just below the overflow tie */
      {0x477ff000u, 0x7c00u}, /* 65520: tie with an odd mantissa -> inf */
      {0xc77ff000u, 0xfc00u},
      {0x47800000u, 0x7c00u}, /* 65536 */
      {0x7f7fffffu, 0x7c00u},
      {0x3f801000u, 0x3c00u}, /* 1 + 2^-11: tie, even: down */
      {0x3f803000u, 0x3c02u}, /* 1 + 3*2^-11: tie, odd: up */
      {0x38800000u, 0x0400u}, /* 2^-14, the smallest normal */
      {0x387fe000u, 0x0400u}, /* 1023.5 * 2^-24: tie -> the smallest normal (even) */
      {0x387fc000u, 0x03ffu}, /* 1023 * 2^-24, the largest subnormal */
      {0x33800000u, 0x0001u}, /* 2^-24, the smallest subnormal */
      {0x33000000u, 0x0000u}, /* 2^-25: tie between 0 and 2^-24 -> 0 */
      {0x33000001u, 0x0001u}, /* just above: 2^-24 */
      {0xb3000001u, 0x8001u},
      {0x32ffffffu, 0x0000u}, /* underflow to 0 */
      {0xb2ffffffu, 0x8000u}, /* ... keeping the sign */
      {0x33c00000u, 0x0002u}, /* 1.5 * 2^-24: tie, odd: up */
      {0x34200000u, 0x0002u}, /* 2.5 * 2^-24: tie, even: down */
      {0x00000001u, 0x0000u}, /* f32 subnormal */
      {0x00000000u, 0x0000u}, {0x80000000u, 0x8000u},
      {0x7f800000u, 0x7c00u}, {0xff800000u, 0xfc00u},
      {0x7fc00000u, 0x7e00u}, {0xffc00000u, 0xfe00u},
      {0x7f800001u, 0x7e00u}, /* low payload: NaN, not inf */
      {0x7fa00000u, 0x7f00u}, /* signalling: quiet, payload kept */
  };
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    uint16_t got = sc_f16_from_f32(f_bits(in[i][0]));
    if (got != in[i][1]) fail_msg("f16(0x%08x) = 0x%04x, expected 0x%04x", in[i][0], got, (unsigned)in[i][1]);
  }
  assert_int_equal(bits_f(sc_f32_from_f16(0x0001u)), 0x33800000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x03ffu)), 0x387fc000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x0400u)), 0x38800000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x7bffu)), 0x477fe000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x7c00u)), 0x7f800000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0xfc00u)), 0xff800000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x8000u)), 0x80000000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x7e00u)), 0x7fc00000u);
  assert_int_equal(bits_f(sc_f32_from_f16(0x7d00u)), 0x7fe00000u); /* signalling -> quiet */
}

/* Every 16-bit pattern that is not NaN survives widen + narrow unchanged;
 * NaNs stay NaN with their sign. */
static void test_exhaustive_roundtrip(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 65536; h++) {
    uint16_t b = sc_bf16_from_f32(sc_f32_from_bf16((uint16_t)h));
    uint16_t f = sc_f16_from_f32(sc_f32_from_f16((uint16_t)h));
    if (bf16_is_nan((uint16_t)h)) assert_true(bf16_is_nan(b) && (b & 0x8000u) == (h & 0x8000u));
    else if (b != h) fail_msg("bf16 0x%04x -> 0x%04x", h, b);
    if (f16_is_nan((uint16_t)h)) assert_true(f16_is_nan(f) && (f & 0x8000u) == (h & 0x8000u));
    else if (f != h) fail_msg("f16 0x%04x -> 0x%04x", h, f);
  }
}

static void test_bulk(void **state) {
  (void)state;
  float src[5] = {1.0f, -2.5f, 65520.0f, 1e-8f, 3.0f};
  uint16_t b[5], h[5];
  float back[5];
  sc_bf16_from_f32_n(b, src, 5);
  sc_f16_from_f32_n(h, src, 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(b[i], sc_bf16_from_f32(src[i]));
    assert_int_equal(h[i], sc_f16_from_f32(src[i]));
  }
  sc_f32_from_bf16_n(back, b, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(bits_f(back[i]), bits_f(sc_f32_from_bf16(b[i])));
  sc_f32_from_f16_n(back, h, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(bits_f(back[i]), bits_f(sc_f32_from_f16(h[i])));
}

/* Structured patterns: every sign and exponent with low mantissa bits at
 * and around both rounding points (bit 13 for f16, bit 16 for bf16). */
static size_t structured_patterns(uint32_t *out) {
  static const uint32_t lows[] = {0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000,
                                  0x7fff, 0x8000, 0x8001, 0xffff, 0x18000, 0x17fff};
  static const uint32_t highs[] = {0, 0x10000, 0x7e0000, 0x7f0000, 0x400000, 0x7fe000, 0x002000};
  size_t n = 0;
  for (uint32_t s = 0; s < 2; s++)
    for (uint32_t e = 0; e < 256; e++)
      for (size_t h = 0; h < sizeof highs / sizeof highs[0]; h++)
        for (size_t l = 0; l < sizeof lows / sizeof lows[0]; l++)
          out[n++] = (s << 31) | (e << 23) | ((highs[h] | lows[l]) & 0x7fffffu);
  return n;
}

static void write_u32(const char *path, const uint32_t *v, size_t n) {
  unsigned char *buf = malloc(n * 4);
  assert_non_null(buf);
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 4; k++) buf[4 * i + k] = (unsigned char)(v[i] >> (8 * k));
  tu_write(path, buf, n * 4);
  free(buf);
}

static uint32_t le(const unsigned char *p, int bytes) {
  uint32_t v = 0;
  for (int k = bytes - 1; k >= 0; k--) v = (v << 8) | p[k];
  return v;
}

/* Compares a narrowed value: NaN inputs must give a NaN of the same sign
 * (payload conventions differ between numpy builds), the rest bit-exact. */
static int narrow_ok(uint32_t in, uint16_t got, uint16_t want, int f16) {
  if (f32_is_nan(in))
    return (f16 ? f16_is_nan(got) : bf16_is_nan(got)) && (got & 0x8000u) == (in >> 16 & 0x8000u);
  return got == want;
}

static void check_narrowing(const uint32_t *in, size_t n, const unsigned char *ref) {
  size_t bad_bf = 0, bad_f16 = 0;
  for (size_t i = 0; i < n; i++) {
    uint16_t b = sc_bf16_from_f32(f_bits(in[i])), h = sc_f16_from_f32(f_bits(in[i]));
    uint16_t wb = (uint16_t)le(ref + 2 * i, 2), wh = (uint16_t)le(ref + 2 * (n + i), 2);
    if (!narrow_ok(in[i], b, wb, 0) && bad_bf++ == 0)
      print_error("first bf16 mismatch: index %zu, 0x%08x -> 0x%04x, numpy 0x%04x\n", i, in[i], b, wb);
    if (!narrow_ok(in[i], h, wh, 1) && bad_f16++ == 0)
      print_error("first f16 mismatch: index %zu, 0x%08x -> 0x%04x, numpy 0x%04x\n", i, in[i], h, wh);
  }
  if (bad_bf || bad_f16) fail_msg("%zu bf16 and %zu f16 mismatches out of %zu", bad_bf, bad_f16, n);
}

static void check_widening(const unsigned char *ref) {
  size_t bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    uint32_t want_h = le(ref + 4 * h, 4), want_b = le(ref + 4 * (65536 + h), 4);
    uint32_t got_h = bits_f(sc_f32_from_f16((uint16_t)h)), got_b = bits_f(sc_f32_from_bf16((uint16_t)h));
    int ok_h = f16_is_nan((uint16_t)h) ? f32_is_nan(got_h) && (got_h >> 31) == (h >> 15) : got_h == want_h;
    if ((!ok_h || got_b != want_b) && bad++ == 0)
      print_error("first widening mismatch at 0x%04x: f16 0x%08x (numpy 0x%08x), bf16 0x%08x (numpy 0x%08x)\n",
                  h, got_h, want_h, got_b, want_b);
  }
  if (bad) fail_msg("%zu widening mismatches", bad);
}

static void test_numpy_reference(void **state) {
  (void)state;
  size_t cap = N_RANDOM_PATTERNS + 2 * 256 * 7 * 14;
  uint32_t *in = malloc(cap * sizeof *in);
  assert_non_null(in);
  size_t n = structured_patterns(in);
  sc_rng rng;
  sc_rng_seed(&rng, 20240601);
  for (size_t i = 0; i < N_RANDOM_PATTERNS; i++) in[n++] = (uint32_t)sc_rng_u64(&rng);
  char *dir = tu_tmpdir("dtype_numpy");
  char *inp = tu_join(dir, "in.u32"), *outp = tu_join(dir, "out.bin");
  char *script = tu_src_path("tests/reference/st_reference.py");
  write_u32(inp, in, n);
  char *err = NULL;
  int st = tu_run(NULL, &err, "/usr/bin/python3 '%s' convert '%s' '%s'", script, inp, outp);
  if (st) fail_msg("st_reference.py convert failed (%d): %s", st, err);
  size_t len;
  unsigned char *ref = (unsigned char *)tu_read(outp, &len);
  assert_non_null(ref);
  assert_int_equal(len, 4 * n + 8 * 65536);
  check_narrowing(in, n, ref);
  check_widening(ref + 4 * n);
  free(ref);
  free(err);
  free(script);
  free(inp);
  free(outp);
  free(dir);
  free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sizes_names),        cmocka_unit_test(test_bf16_edges),
      cmocka_unit_test(test_f16_edges),          cmocka_unit_test(test_exhaustive_roundtrip),
      cmocka_unit_test(test_bulk),               cmocka_unit_test(test_numpy_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
