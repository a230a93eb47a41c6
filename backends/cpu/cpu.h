/* Helpers shared by the CPU kernels: element access in every dtype, index arithmetic. */
#ifndef AMP_BACKENDS_CPU_CPU_H
#define AMP_BACKENDS_CPU_CPU_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ir/half.h"
#include "ir/ir.h"

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
    case AMP_BOOL: ((uint8_t *)p)[i] = v != 0.0; break;
    default: break;
    }
}

/* Exact integer access (no double round trip) for i64 and smaller ints, bool. */
static inline int64_t amp_ldi(amp_dtype t, const void *p, int64_t i) {
    switch (t) {
    case AMP_I64: return ((const int64_t *)p)[i];
    case AMP_I32: return ((const int32_t *)p)[i];
    case AMP_I8: return ((const int8_t *)p)[i];
    case AMP_U8: return ((const uint8_t *)p)[i];
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
    case AMP_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: amp_st(t, p, i, (double)v); break;
    }
}

/* Row-major strides of dims (elements). */
static inline void amp_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

/* f16/bf16 buffer <-> f32 buffer, for kernels that compute 16-bit tensors in f32 scratch. */
static inline void amp_widen16(amp_dtype dt, const void *src, float *dst, int64_t n) {
    const uint16_t *p = src;
    if (dt == AMP_F16)
        for (int64_t i = 0; i < n; i++) dst[i] = amp_f16_to_f32(p[i]);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = amp_bf16_to_f32(p[i]);
}

static inline void amp_narrow16(amp_dtype dt, const float *src, void *dst, int64_t n) {
    uint16_t *p = dst;
    if (dt == AMP_F16)
        for (int64_t i = 0; i < n; i++) p[i] = amp_f32_to_f16(src[i]);
    else
        for (int64_t i = 0; i < n; i++) p[i] = amp_f32_to_bf16(src[i]);
}

#endif
