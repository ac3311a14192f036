/* dtype.h: element types and conversions between them.
 *
 * bf16 <- f32 rounds to nearest even and keeps NaN a NaN (quiet bit set),
 * as torch's float->bfloat16 cast does; f16 <-> f32 follows IEEE 754
 * binary16 with round to nearest even, subnormals, inf and NaN.
 */
#ifndef SC_DTYPE_H
#define SC_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum sc_dtype {
  SC_DTYPE_F32 = 0,
  SC_DTYPE_F16,
  SC_DTYPE_BF16,
  SC_DTYPE_F64,
  SC_DTYPE_I8,
  SC_DTYPE_I16,
  SC_DTYPE_I32,
  SC_DTYPE_I64,
  SC_DTYPE_U8,
  SC_DTYPE_U16,
  SC_DTYPE_U32,
  SC_DTYPE_U64,
  SC_DTYPE_BOOL,
  SC_DTYPE_COUNT
} sc_dtype;

/* Bytes per element. */
size_t sc_dtype_size(sc_dtype t);
/* The safetensors name ("F32", "BF16", "BOOL", ...). */
const char *sc_dtype_name(sc_dtype t);
/* Parses a safetensors dtype name; 0 ok, -1 unknown. */
int sc_dtype_from_name(const char *name, sc_dtype *out);

uint16_t sc_bf16_from_f32(float x);
float sc_f32_from_bf16(uint16_t h);
uint16_t sc_f16_from_f32(float x);
float sc_f32_from_f16(uint16_t h);

/* Bulk conversions, n elements (dst first). */
void sc_bf16_from_f32_n(uint16_t *dst, const float *src, size_t n);
void sc_f32_from_bf16_n(float *dst, const uint16_t *src, size_t n);
void sc_f16_from_f32_n(uint16_t *dst, const float *src, size_t n);
void sc_f32_from_f16_n(float *dst, const uint16_t *src, size_t n);

#endif
