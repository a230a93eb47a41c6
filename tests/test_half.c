#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "amprt/amprt.h"
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

/* ---- the public conversions (amp_convert_from_f32, amp_convert_to_f32, amp_tensor_convert) ---- */

Test(half, public_arrays_are_amprts_rounding) {
    /* every f16 and bf16 value through the public API and back, and a set of f32 values against
     * the internal conversions the kernels use */
    static uint16_t h[65536], back[65536];
    static float f[65536];
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    for (int k = 0; k < 2; k++) {
        amp_dtype dt = k ? AMP_BF16 : AMP_F16;
        cr_assert_eq(amp_convert_to_f32(dt, h, f, 65536), AMP_OK);
        cr_assert_eq(amp_convert_from_f32(dt, f, back, 65536), AMP_OK);
        for (uint32_t i = 0; i < 65536; i++) {
            float want = k ? amp_bf16_to_f32(h[i]) : amp_f16_to_f32(h[i]);
            cr_assert(f[i] == want || (isnan(f[i]) && isnan(want)), "%s %04x", amp_dtype_name(dt), i);
            if (!isnan(f[i])) cr_assert_eq(back[i], h[i], "%s %04x came back as %04x", amp_dtype_name(dt), i, back[i]);
        }
    }
    const float vals[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65519.0f, 65520.0f, -1e30f, 0x1p-25f, 0x1.8p-25f, 3.14159f};
    uint16_t a[8], b[8];
    cr_assert_eq(amp_convert_from_f32(AMP_F16, vals, a, 8), AMP_OK);
    cr_assert_eq(amp_convert_from_f32(AMP_BF16, vals, b, 8), AMP_OK);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(a[i], amp_f32_to_f16(vals[i]), "f16 of %a", (double)vals[i]);
        cr_assert_eq(b[i], amp_f32_to_bf16(vals[i]), "bf16 of %a", (double)vals[i]);
    }
    cr_assert_eq(a[3], 0x7c00, "65520 rounds to infinity in f16");
    cr_assert_eq(amp_convert_from_f32(AMP_F32, vals, a, 8), AMP_ERR_INVALID_ARG);
    cr_assert_eq(amp_convert_to_f32(AMP_F16, NULL, f, 1), AMP_ERR_INVALID_ARG);
    cr_assert_eq(amp_convert_to_f32(AMP_F16, NULL, NULL, 0), AMP_OK);
}

Test(half, tensor_convert_pairs) {
    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    int64_t dims[2] = {3, 5};
    amp_tensor *t, *h, *b, *f, *d;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 2, dims, &t), AMP_OK);
    float *x = amp_tensor_data(t);
    for (int i = 0; i < 15; i++) x[i] = (float)(i - 7) * 1.37e3f + 0.3f;
    x[14] = NAN;
    cr_assert_eq(amp_tensor_convert(ctx, t, AMP_F16, &h), AMP_OK);
    cr_assert_eq(amp_tensor_convert(ctx, h, AMP_BF16, &b), AMP_OK);
    cr_assert_eq(amp_tensor_convert(ctx, b, AMP_F32, &f), AMP_OK);
    cr_assert_eq(amp_tensor_convert(ctx, f, AMP_F64, &d), AMP_OK);
    cr_assert_eq(amp_tensor_rank(h), 2);
    cr_assert_eq(amp_tensor_dims(h)[1], 5);
    const uint16_t *hv = amp_tensor_data(h), *bv = amp_tensor_data(b);
    const double *dv = amp_tensor_data(d);
    for (int i = 0; i < 14; i++) {
        cr_assert_eq(hv[i], amp_f32_to_f16(x[i]));
        cr_assert_eq(bv[i], amp_f32_to_bf16(amp_f16_to_f32(hv[i])));
        cr_assert_eq(dv[i], (double)amp_bf16_to_f32(bv[i]));
    }
    cr_assert(isnan(dv[14]), "NaN survives every step");
    amp_tensor *bad = NULL;
    cr_assert_eq(amp_tensor_convert(ctx, d, AMP_F16, &bad), AMP_ERR_UNSUPPORTED);
    cr_assert_null(bad);
    cr_assert(strstr(amp_context_last_error(ctx), "f64") || strstr(amp_context_last_error(ctx), "float64"),
              "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(t);
    amp_tensor_destroy(h);
    amp_tensor_destroy(b);
    amp_tensor_destroy(f);
    amp_tensor_destroy(d);
    amp_context_destroy(ctx);
}
