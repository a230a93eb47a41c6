/* The CUDA backend's reductions, optimizers and loss scaling (backends/cuda/k_reduce.cu,
 * k_optim.cu, op_optim.c) against references: the per-channel reduction against sums in double
 * over the same (rounded) inputs, the ops against the CPU backend on the same nodes. */
#include <stdlib.h>

#include "backends/cuda/kernels_optim.h"
#include "base/half.h"
#include "tests/cuda/cuda_test.h"

/* ---- device buffers ------------------------------------------------------------------------- */

static size_t dt_size(amp_dtype t) { return t == AMP_F32 ? 4 : 2; }

/* n floats rounded to dtype t, into host bytes (malloc'd) */
static void *to_dtype(amp_dtype t, const float *v, size_t n) {
    void *p = malloc(n * dt_size(t) + 1);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (t == AMP_F32) ((float *)p)[i] = v[i];
        else if (t == AMP_F16) ((uint16_t *)p)[i] = amp_f32_to_f16(v[i]);
        else ((uint16_t *)p)[i] = amp_f32_to_bf16(v[i]);
    }
    return p;
}

static float from_dtype(amp_dtype t, const void *p, size_t i) {
    if (t == AMP_F32) return ((const float *)p)[i];
    if (t == AMP_F16) return amp_f16_to_f32(((const uint16_t *)p)[i]);
    return amp_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* v rounded to t and back (what the device holds) */
static void round_to(amp_dtype t, float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (t == AMP_F16) v[i] = amp_f16_to_f32(amp_f32_to_f16(v[i]));
        else if (t == AMP_BF16) v[i] = amp_bf16_to_f32(amp_f32_to_bf16(v[i]));
    }
}

/* a device copy of v in dtype t (NULL on failure; n 0 gives a 1-byte region) */
static void *dev_upload(amp_dtype t, const float *v, size_t n) {
    void *h = to_dtype(t, v, n), *d = NULL;
    if (!h) return NULL;
    if (cudaMalloc(&d, n * dt_size(t) + 1) != cudaSuccess) d = NULL;
    if (d && n && cudaMemcpy(d, h, n * dt_size(t), cudaMemcpyHostToDevice) != cudaSuccess) {
        cudaFree(d);
        d = NULL;
    }
    free(h);
    return d;
}

/* the device array d (dtype t, n elements) as floats into out; false on a failed copy */
static bool dev_download(amp_dtype t, const void *d, size_t n, float *out) {
    void *h = malloc(n * dt_size(t) + 1);
    if (!h) return false;
    bool ok = !n || cudaMemcpy(h, d, n * dt_size(t), cudaMemcpyDeviceToHost) == cudaSuccess;
    for (size_t i = 0; ok && i < n; i++) out[i] = from_dtype(t, h, i);
    free(h);
    return ok;
}

static const amp_dtype float_types[] = {AMP_F32, AMP_F16, AMP_BF16};

/* Error allowed on a result stored in dtype t after an f32 computation: the store's rounding
 * (half an ulp: 2^-11 relative for f16, 2^-8 for bf16) with room for the f32 sums' own error
 * (~1e-7 relative per add); f32 results only carry the sums' error (a few 1e-7 over 4097
 * terms, in another order than the double reference). */
static double tol_store(amp_dtype t) { return t == AMP_F32 ? 1e-5 : t == AMP_F16 ? 1e-3 : 8e-3; }

/* ---- amp_cuda_reduce_channels -------------------------------------------------------------- */

typedef struct red_shape {
    int64_t outer, channels, inner;
} red_shape;

/* Runs one reduction (flags: planted bugs) and returns its relative L2 error against the double
 * reference, or -1 on a failed launch or copy; *same_again tells whether a second run gave the
 * same bits. */
static double red_case(red_shape sh, amp_dtype xt, amp_dtype yt, float alpha, float beta, unsigned flags,
                       uint64_t seed, bool *same_again) {
    const size_t nx = (size_t)(sh.outer * sh.channels * sh.inner), ny = (size_t)sh.channels;
    float *x = malloc((nx + 1) * sizeof *x), *y0 = malloc((ny + 1) * sizeof *y0);
    float *got = malloc((ny + 1) * sizeof *got), *got2 = malloc((ny + 1) * sizeof *got2);
    double *ref = malloc((ny + 1) * sizeof *ref);
    float *reff = malloc((ny + 1) * sizeof *reff);
    void *dx = NULL, *dy = NULL;
    double err = -1;
    if (!x || !y0 || !got || !got2 || !ref || !reff) goto done;
    ct_fill(x, nx, seed, -1.0f, 1.0f);
    ct_fill(y0, ny, seed + 1, 0.5f, 2.0f);
    round_to(xt, x, nx);
    round_to(yt, y0, ny);
    for (size_t c = 0; c < ny; c++) {
        double s = 0;
        for (int64_t o = 0; o < sh.outer; o++)
            for (int64_t i = 0; i < sh.inner; i++) s += x[(o * sh.channels + (int64_t)c) * sh.inner + i];
        ref[c] = alpha * s + (beta != 0 ? beta * (double)y0[c] : 0.0);
        reff[c] = (float)ref[c];
    }
    dx = dev_upload(xt, x, nx);
    /* beta 0: y starts as NaN, which must not be read */
    if (beta == 0)
        for (size_t c = 0; c < ny; c++) y0[c] = NAN;
    dy = dev_upload(yt, y0, ny);
    if (!dx || !dy) goto done;
    for (int run = 0; run < 2; run++) {
        void *h = to_dtype(yt, y0, ny);
        if (!h) goto done;
        cudaError_t e = ny ? cudaMemcpy(dy, h, ny * dt_size(yt), cudaMemcpyHostToDevice) : cudaSuccess;
        free(h);
        if (e != cudaSuccess) goto done;
        e = amp_cuda_reduce_channels_flags(NULL, xt, dx, yt, dy, sh.outer, sh.channels, sh.inner, alpha, beta, flags);
        if (e != cudaSuccess || !dev_download(yt, dy, ny, run ? got2 : got)) goto done;
    }
    *same_again = memcmp(got, got2, ny * sizeof *got) == 0;
    /* a NaN anywhere makes the largest difference infinite */
    err = !isfinite(ct_max_abs(got, reff, ny)) ? INFINITY : ny ? ct_rel_l2(got, reff, ny) : 0.0;
done:
    cudaFree(dx);
    cudaFree(dy);
    free(x);
    free(y0);
    free(got);
    free(got2);
    free(ref);
    free(reff);
    return err;
}

static const red_shape red_shapes[] = {
    {1, 1, 1}, {2, 3, 1}, {64, 10, 1}, {7, 5, 33}, {3, 1, 4097}, {5, 7, 31}, {4, 16, 576}, {1, 300, 1}, {2, 3, 64},
};

static void t_reduce_channels(void) {
    for (size_t s = 0; s < sizeof red_shapes / sizeof red_shapes[0]; s++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                const red_shape sh = red_shapes[s];
                const amp_dtype xt = float_types[a], yt = float_types[b];
                for (int acc = 0; acc < 2; acc++) {
                    bool same = false;
                    const float alpha = acc ? 0.5f : 1.0f, beta = acc ? 1.0f : 0.0f;
                    double e = red_case(sh, xt, yt, alpha, beta, 0, 100 + s, &same);
                    CT_CHECK(e >= 0 && e <= tol_store(yt), "(%lld,%lld,%lld) %s -> %s alpha %g beta %g: rel L2 %g",
                             (long long)sh.outer, (long long)sh.channels, (long long)sh.inner, amp_dtype_name(xt),
                             amp_dtype_name(yt), alpha, beta, e);
                    CT_CHECK(same, "(%lld,%lld,%lld) %s -> %s: two runs differ", (long long)sh.outer,
                             (long long)sh.channels, (long long)sh.inner, amp_dtype_name(xt), amp_dtype_name(yt));
                }
            }
}

/* empty x: y = beta * y, or 0; no channels: nothing to do */
static void t_reduce_empty(void) {
    const red_shape shapes[] = {{0, 3, 5}, {3, 4, 0}, {0, 1, 7}};
    for (size_t s = 0; s < 3; s++)
        for (int acc = 0; acc < 2; acc++) {
            bool same = false;
            double e = red_case(shapes[s], AMP_F32, AMP_F32, 1.0f, acc ? 2.0f : 0.0f, 0, 7, &same);
            CT_CHECK(e == 0, "empty (%lld,%lld,%lld) beta %d: rel L2 %g", (long long)shapes[s].outer,
                     (long long)shapes[s].channels, (long long)shapes[s].inner, acc * 2, e);
        }
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_F32, NULL, AMP_F32, NULL, 4, 0, 4, 1, 0) == cudaSuccess,
             "no channels");
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_I32, NULL, AMP_F32, NULL, 4, 2, 4, 1, 0) == cudaErrorInvalidValue,
             "int32 x is refused");
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_F32, NULL, AMP_F64, NULL, 4, 2, 4, 1, 0) == cudaErrorInvalidValue,
             "f64 y is refused");
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_F32, NULL, AMP_F32, NULL, -1, 2, 4, 1, 0) == cudaErrorInvalidValue,
             "negative size is refused");
}

/* PLANTED BUG: without the barrier after the partial sums, thread 0 adds slots other threads
 * have not written yet (the emulator's poisoned shared memory: NaN), so the result must be
 * wrong. The shape takes the block kernel (inner >= 32). */
static void t_reduce_planted_no_barrier(void) {
    const red_shape sh = {4, 3, 300};
    bool same = false;
    double good = red_case(sh, AMP_F32, AMP_F32, 1.0f, 0.0f, 0, 11, &same);
    CT_CHECK(good >= 0 && good <= tol_store(AMP_F32), "the correct kernel: rel L2 %g", good);
    double bad = red_case(sh, AMP_F32, AMP_F32, 1.0f, 0.0f, AMP_CUDA_REDUCE_PLANT_NO_BARRIER, 11, &same);
    CT_CHECK(bad < 0 || bad > 1e-2, "the kernel without its barrier gave a right answer (rel L2 %g)", bad);
}

static const ct_case cases[] = {
    {"reduce_channels", t_reduce_channels},
    {"reduce_empty", t_reduce_empty},
    {"reduce_planted_no_barrier", t_reduce_planted_no_barrier},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ct_main(argc, argv, cases); }
