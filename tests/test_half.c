#include <criterion/criterion.h>
#include <math.h>

#include "base/half.h"

Test(half, f16_round_trip_every_value) {
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = amp_f16_to_f32((uint16_t)h);
        uint16_t back = amp_f32_to_f16(f);
        if (isnan(f)) cr_assert(isnan(amp_f16_to_f32(back)), "nan %04x", h);
        else cr_assert_eq(back, h, "h=%04x f=%g back=%04x", h, f, back);
    }
}

Test(half, f16_rounds_to_nearest_even) {
    /* 1 + 2^-11 is halfway between 1 and 1+2^-10: ties to even (1.0) */
    cr_assert_eq(amp_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    /* 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even (1+2^-9) */
    cr_assert_eq(amp_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    cr_assert_eq(amp_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(amp_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(amp_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(amp_f32_to_f16(0x1p-24f), 0x0001);
    cr_assert_eq(amp_f32_to_f16(0x1p-25f), 0x0000);
    cr_assert_eq(amp_f32_to_f16(0x1.8p-25f), 0x0001);
    cr_assert_eq(amp_f32_to_f16(-0.0f), 0x8000);
}

Test(half, f16_truncation_mode) {
    cr_assert_eq(amp_f32_to_f16_mode(1.0f + 0x1.8p-11f, 1), 0x3c00);
    cr_assert_eq(amp_f32_to_f16_mode(1.0f + 0x1.8p-11f, 0), 0x3c01);
    cr_assert_eq(amp_f32_to_f16_mode(1e6f, 1), 0x7bff);
    cr_assert_eq(amp_f32_to_f16_mode(INFINITY, 1), 0x7c00);
}

Test(half, bf16) {
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = amp_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        cr_assert_eq(amp_f32_to_bf16(f), h);
    }
    cr_assert_eq(amp_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie to even */
    cr_assert_eq(amp_f32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
    cr_assert_eq(amp_f32_to_bf16_mode(1.0f + 0x1.8p-8f, 1), 0x3f80);
    cr_assert(isnan(amp_bf16_to_f32(amp_f32_to_bf16(NAN))));
}
