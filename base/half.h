/* IEEE half and bfloat16 conversions, shared by the C backends and CUDA device code.
 * f32 -> 16 bit rounds to nearest even by default; *_rtz variants truncate toward zero.
 * NaN stays NaN (quiet), infinities stay infinite, subnormals are kept. */
#ifndef AMP_BASE_HALF_H
#define AMP_BASE_HALF_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define AMP_HD static inline __host__ __device__
#else
#define AMP_HD static inline
#endif

AMP_HD uint32_t amp_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
AMP_HD float amp_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

AMP_HD float amp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t out;
    if (exp == 0x1f) {
        out = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0u);
    } else if (exp != 0) {
        out = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        out = sign;
    } else {
        /* subnormal: value = man * 2^-24 */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400u) == 0);
        out = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    return amp_bits_f32(out);
}

/* round_mode 0: nearest even; 1: toward zero */
AMP_HD uint16_t amp_f32_to_f16_mode(float f, int round_mode) {
    uint32_t x = amp_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
    }
    if (ax >= 0x477ff000u) { /* >= 65520: rounds to inf (nearest) */
        if (round_mode == 1 && ax < 0x7f800000u) return (uint16_t)(sign | 0x7bffu);
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax >= 0x38800000u) { /* normal half range: >= 2^-14 */
        uint32_t mant = ax & 0x7fffffu;
        uint32_t exp = (ax >> 23) - 112u;
        uint32_t h = (exp << 10) | (mant >> 13);
        uint32_t rest = mant & 0x1fffu;
        /* branch-free nearest-even: data-dependent branches mispredict on real tensors */
        h += (uint32_t)(round_mode == 0) & ((uint32_t)(rest > 0x1000u) | ((uint32_t)(rest == 0x1000u) & h));
        return (uint16_t)(sign | h);
    }
    if (ax < 0x33000000u) { /* < 2^-25: rounds to zero (2^-25 exactly ties to even: 0) */
        return sign;
    }
    /* subnormal half */
    {
        uint32_t e = ax >> 23;
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t h = mant >> shift;
        uint32_t rest = mant & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (round_mode == 0 && (rest > half || (rest == half && (h & 1u)))) h++;
        return (uint16_t)(sign | h);
    }
}

AMP_HD uint16_t amp_f32_to_f16(float f) { return amp_f32_to_f16_mode(f, 0); }

AMP_HD float amp_bf16_to_f32(uint16_t b) { return amp_bits_f32((uint32_t)b << 16); }

AMP_HD uint16_t amp_f32_to_bf16_mode(float f, int round_mode) {
    uint32_t x = amp_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    if (round_mode == 0) x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

AMP_HD uint16_t amp_f32_to_bf16(float f) { return amp_f32_to_bf16_mode(f, 0); }

#endif
