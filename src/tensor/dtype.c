/* dtype.c: element sizes, safetensors names and the f32 <-> bf16 / f16
 * conversions (see dtype.h).
 *
 * All conversions work on the IEEE 754 bit patterns with integer arithmetic,
 * so the result does not depend on the FPU rounding mode or on -ffast-math.
 */
#include "tensor/dtype.h"

#include <string.h>

static const struct {
  const char *name;
  size_t size;
} dtype_info[SC_DTYPE_COUNT] = {
    [SC_DTYPE_F32] = {"F32", 4},  [SC_DTYPE_F16] = {"F16", 2},  [SC_DTYPE_BF16] = {"BF16", 2},
    [SC_DTYPE_F64] = {"F64", 8},  [SC_DTYPE_I8] = {"I8", 1},    [SC_DTYPE_I16] = {"I16", 2},
    [SC_DTYPE_I32] = {"I32", 4},  [SC_DTYPE_I64] = {"I64", 8},  [SC_DTYPE_U8] = {"U8", 1},
    [SC_DTYPE_U16] = {"U16", 2},  [SC_DTYPE_U32] = {"U32", 4},  [SC_DTYPE_U64] = {"U64", 8},
    [SC_DTYPE_BOOL] = {"BOOL", 1},
};

size_t sc_dtype_size(sc_dtype t) {
  if ((unsigned)t >= SC_DTYPE_COUNT) return 0;
  return dtype_info[t].size;
}

const char *sc_dtype_name(sc_dtype t) {
  if ((unsigned)t >= SC_DTYPE_COUNT) return "?";
  return dtype_info[t].name;
}

int sc_dtype_from_name(const char *name, sc_dtype *out) {
  if (!name) return -1;
  for (int i = 0; i < SC_DTYPE_COUNT; i++) {
    if (!strcmp(name, dtype_info[i].name)) {
      *out = (sc_dtype)i;
      return 0;
    }
  }
  return -1;
}

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static float f32_from_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* ==== bf16: the top half of an f32 ==== */

uint16_t sc_bf16_from_f32(float x) {
  uint32_t u = f32_bits(x);
  /* NaN: keep sign and the top payload bits and set the quiet bit, so a NaN
   * whose payload lives only in the low 16 bits does not turn into inf (what
   * the AVX512-BF16 / Arm BFCVT instructions do). */
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
  /* Round to nearest even: add just under half an ulp, plus one when the
   * kept part is odd, so exact ties go to the even neighbour. Overflow
   * carries into the exponent and ends at inf, as it should. */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float sc_f32_from_bf16(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* ==== f16: IEEE 754 binary16 ==== */

/* Rounds m >> shift to nearest even (1 <= shift <= 31). */
static uint32_t shift_rne(uint32_t m, unsigned shift) {
  uint32_t r = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (r & 1u))) r++;
  return r;
}

uint16_t sc_f16_from_f32(float x) {
  uint32_t u = f32_bits(x);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* quiet NaN */
  /* 65520 = 0x477ff000 is halfway between the largest finite f16 (65504,
   * odd mantissa) and 2^16, so it and everything above round to inf. */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (a >= 0x38800000u) /* >= 2^-14: normal; rebias 127 -> 15, carry may bump the exponent */
    return (uint16_t)(sign | shift_rne(a - 0x38000000u, 13));
  /* 2^-25 is the tie between 0 and the smallest subnormal 2^-24: goes to 0. */
  if (a <= 0x33000000u) return sign;
  /* Subnormal: value = m * 2^(e-150); in units of 2^-24 that is
   * m >> (126 - e), with 14 <= 126 - e <= 24. Rounding up to 0x400 gives
   * the smallest normal, whose encoding is exactly that. */
  uint32_t e = a >> 23;
  uint32_t m = (a & 0x7fffffu) | 0x800000u;
  return (uint16_t)(sign | shift_rne(m, 126u - e));
}

float sc_f32_from_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0x1f) /* inf, or NaN made quiet with its payload kept */
    return f32_from_bits(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0u));
  if (e != 0) return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
  if (m == 0) return f32_from_bits(sign);
  /* Subnormal m * 2^-24: normalize so the leading 1 moves to bit 10. */
  int p = 31 - __builtin_clz(m); /* 0..9 */
  uint32_t mant = (m << (23 - p)) & 0x7fffffu;
  return f32_from_bits(sign | ((uint32_t)(p + 103) << 23) | mant);
}

/* ==== bulk ==== */

void sc_bf16_from_f32_n(uint16_t *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sc_bf16_from_f32(src[i]);
}

void sc_f32_from_bf16_n(float *dst, const uint16_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sc_f32_from_bf16(src[i]);
}

void sc_f16_from_f32_n(uint16_t *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sc_f16_from_f32(src[i]);
}

void sc_f32_from_f16_n(float *dst, const uint16_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = sc_f32_from_f16(src[i]);
}
