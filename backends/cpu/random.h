/* MT19937 with numpy's legacy seeding and 53-bit doubles, so a Dropout with a `seed`
 * attribute draws the same mask as the ONNX reference (numpy.random.seed + uniform). */
#ifndef AMP_BACKENDS_CPU_RANDOM_H
#define AMP_BACKENDS_CPU_RANDOM_H

#include <stdint.h>

typedef struct amp_mt19937 {
    uint32_t mt[624];
    int i;
} amp_mt19937;

static inline void amp_mt_seed(amp_mt19937 *r, uint32_t seed) {
    r->mt[0] = seed;
    for (int i = 1; i < 624; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->i = 624;
}

static inline uint32_t amp_mt_next(amp_mt19937 *r) {
    if (r->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % 624] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->i = 0;
    }
    uint32_t y = r->mt[r->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* uniform double in [0, 1) from two draws, as numpy's random_sample */
static inline double amp_mt_double(amp_mt19937 *r) {
    uint32_t a = amp_mt_next(r) >> 5, b = amp_mt_next(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
}

#endif
