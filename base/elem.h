/* Element access in every dtype: load and store one element of a buffer as double, or exactly
 * as int64 for the integer types. Base-level, because the CPU kernels, the runtime and the
 * command-line tool (printing and comparing outputs) all read tensors element by element. */
#ifndef AMP_BASE_ELEM_H
#define AMP_BASE_ELEM_H

#include <stdint.h>

#include "amprt/amprt.h"
#include "base/half.h"

/* Load element i of a buffer of dtype t as double / float (bool and ints exact up to 2^53). */
static inline double amp_ld(amp_dtype t, const void *p, int64_t i) {
    switch (t) {
    case AMP_F32: return ((const float *)p)[i];
    case AMP_F64: return ((const double *)p)[i];
    case AMP_F16: return amp_f16_to_f32(((const uint16_t *)p)[i]);
    case AMP_BF16: return amp_bf16_to_f32(((const uint16_t *)p)[i]);
    case AMP_I64: return (double)((const int64_t *)p)[i];
    case AMP_I32: return ((const int32_t *)p)[i];
    case AMP_I8: return ((const int8_t *)p)[i];
    case AMP_U8: return ((const uint8_t *)p)[i];
    case AMP_I16: return ((const int16_t *)p)[i];
    case AMP_U16: return ((const uint16_t *)p)[i];
    case AMP_U32: return ((const uint32_t *)p)[i];
    case AMP_U64: return (double)((const uint64_t *)p)[i];
    case AMP_BOOL: return ((const uint8_t *)p)[i] ? 1.0 : 0.0;
    default: return 0.0;
    }
}

/* Store v into element i; 16-bit floats round to nearest even; integers convert as C does
 * (callers clamp or round first where ONNX says so). */
static inline void amp_st(amp_dtype t, void *p, int64_t i, double v) {
    switch (t) {
    case AMP_F32: ((float *)p)[i] = (float)v; break;
    case AMP_F64: ((double *)p)[i] = v; break;
    case AMP_F16: ((uint16_t *)p)[i] = amp_f32_to_f16((float)v); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f32_to_bf16((float)v); break;
    case AMP_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case AMP_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case AMP_I8: ((int8_t *)p)[i] = (int8_t)(int64_t)v; break;
    case AMP_U8: ((uint8_t *)p)[i] = (uint8_t)(int64_t)v; break;
    case AMP_I16: ((int16_t *)p)[i] = (int16_t)(int64_t)v; break;
    case AMP_U16: ((uint16_t *)p)[i] = (uint16_t)(int64_t)v; break;
    case AMP_U32: ((uint32_t *)p)[i] = (uint32_t)(int64_t)v; break;
    case AMP_U64: ((uint64_t *)p)[i] = v >= 9223372036854775808.0 ? (uint64_t)v : (uint64_t)(int64_t)v; break;
    case AMP_BOOL: ((uint8_t *)p)[i] = v != 0.0; break;
    default: break;
    }
}

/* Exact integer access (no double round trip) for i64 and smaller ints, bool. uint64 comes back
 * as its two's-complement bit pattern (values above INT64_MAX are negative here): kernels that
 * order or divide uint64 values use their own unsigned paths. */
static inline int64_t amp_ldi(amp_dtype t, const void *p, int64_t i) {
    switch (t) {
    case AMP_I64: return ((const int64_t *)p)[i];
    case AMP_I32: return ((const int32_t *)p)[i];
    case AMP_I8: return ((const int8_t *)p)[i];
    case AMP_U8: return ((const uint8_t *)p)[i];
    case AMP_I16: return ((const int16_t *)p)[i];
    case AMP_U16: return ((const uint16_t *)p)[i];
    case AMP_U32: return ((const uint32_t *)p)[i];
    case AMP_U64: return (int64_t)((const uint64_t *)p)[i];
    case AMP_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return (int64_t)amp_ld(t, p, i);
    }
}
static inline void amp_sti(amp_dtype t, void *p, int64_t i, int64_t v) {
    switch (t) {
    case AMP_I64: ((int64_t *)p)[i] = v; break;
    case AMP_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case AMP_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case AMP_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case AMP_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case AMP_U16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case AMP_U32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case AMP_U64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    case AMP_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: amp_st(t, p, i, (double)v); break;
    }
}

#endif
