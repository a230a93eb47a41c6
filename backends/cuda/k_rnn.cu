/* The LSTM's own kernels (kernels_rnn.h): initial state, one step's gate arithmetic, outputs.
 *
 * The gate math is backends/cpu/rnn.c's f32 path, operation for operation: the same sigmoid and
 * tanh (e^x by range reduction and a degree-7 polynomial, tanh's series near zero), the same
 * order of the additions (hr + ((xw + Wb) + Rb)), peepholes added before the clip. nvcc would
 * contract a * b + c into one fused multiply-add, which the CPU does not do, so the products and
 * sums go through the _rn intrinsics there (exactly rounded, never contracted). The GEMMs that
 * feed xw and hr sum in another order than the CPU's, so the outputs agree to rounding, not bits. */
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_rnn.h"

/* ---- exactly rounded f32 arithmetic, never contracted ------------------------------------------ */

__device__ __forceinline__ float rnn_mul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

__device__ __forceinline__ float rnn_add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

__device__ __forceinline__ float rnn_sub(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

/* a * b + c, rounded twice as the CPU does */
__device__ __forceinline__ float rnn_mad(float a, float b, float c) { return rnn_add(rnn_mul(a, b), c); }

/* ---- the CPU's sigmoid and tanh (backends/cpu/rnn.c: exp_f32, amp_cpu_rnn_sigmoid_f32, _tanh_f32) */

/* e^x for x in [-87.3, 88.3] */
__device__ __forceinline__ float rnn_exp(float x) {
    const float tm = rnn_mad(x, 1.44269504088896341f, 12582912.0f), n = rnn_sub(tm, 12582912.0f);
    const float r = rnn_sub(rnn_sub(x, rnn_mul(n, 0.693359375f)), rnn_mul(n, -2.12194440e-4f));
    float p = 1.0f / 5040;
    p = rnn_mad(p, r, 1.0f / 720);
    p = rnn_mad(p, r, 1.0f / 120);
    p = rnn_mad(p, r, 1.0f / 24);
    p = rnn_mad(p, r, 1.0f / 6);
    p = rnn_mad(p, r, 0.5f);
    p = rnn_mad(p, r, 1.0f);
    p = rnn_mad(p, r, 1.0f);
    const uint32_t u = (amp_f32_bits(tm) + 127u) << 23; /* the exponent field of 2^n */
    return rnn_mul(p, amp_bits_f32(u));
}

__device__ __forceinline__ float rnn_sigmoid(float v) {
    const float x = v < -87.0f ? -87.0f : v > 87.0f ? 87.0f : v; /* NaN stays NaN */
    return 1.0f / rnn_add(1.0f, rnn_exp(-x));
}

__device__ __forceinline__ float rnn_tanh(float x) {
    const float ax = fabsf(x), x2 = rnn_mul(x, x);
    const float e = rnn_exp(rnn_mul(2.0f, ax > 9.0f ? 9.0f : ax));
    const float big = rnn_sub(1.0f, 2.0f / rnn_add(e, 1.0f));
    float q = rnn_mad(x2, 62.0f / 2835, -17.0f / 315);
    q = rnn_mad(x2, q, 2.0f / 15);
    q = rnn_mad(x2, q, -1.0f / 3);
    const float small = rnn_add(x, rnn_mul(rnn_mul(x, x2), q));
    return ax < 0.25f ? small : copysignf(big, x);
}

__device__ __forceinline__ float rnn_clip(const amp_k_lstm_geom &g, float v) {
    if (!g.has_clip) return v;
    return v > g.clip ? g.clip : v < -g.clip ? -g.clip : v;
}

/* ---- offsets (backends/cpu/rnn.c: x_row, y_off, h_off) ---------------------------------------- */

__device__ __forceinline__ int64_t rnn_x_row(const amp_k_lstm_geom &g, int64_t t, int64_t b) {
    return g.layout ? b * g.S + t : t * g.B + b;
}
__device__ __forceinline__ int64_t rnn_y_off(const amp_k_lstm_geom &g, int64_t t, int64_t b) {
    return (g.layout ? (b * g.S + t) * g.D + g.d : (t * g.D + g.d) * g.B + b) * g.H;
}
__device__ __forceinline__ int64_t rnn_h_off(const amp_k_lstm_geom &g, int64_t b) {
    return (g.layout ? b * g.D + g.d : g.d * g.B + b) * g.H;
}

/* Row b's length: sequence_lens[b] (all S without it). A value outside [0, S] (the CPU refuses
 * it; a device value cannot be checked without a sync) is clamped so no access leaves the tensors. */
__device__ __forceinline__ int64_t rnn_len(const amp_k_lstm_geom &g, const int32_t *lens, int64_t b) {
    if (!lens) return g.S;
    const int64_t v = lens[b];
    return v < 0 ? 0 : v > g.S ? g.S : v;
}

/* The four gate pre-activations of hidden unit i from x (X*W^T) and a (H*R^T) and the biases
 * (zero when absent), in the order the CPU adds them: the forward op a + ((x + Wb) + Rb), its
 * recompute in the gradient ((x + a) + Wb) + Rb. */
template <int DT, bool GRAD>
__device__ __forceinline__ void rnn_gates(const amp_k_lstm_geom &g, const void *bias, int64_t i, const float *x,
                                          const float *a, float v[4]) {
    const int64_t H = g.H, GH = 4 * H;
#ifdef __CUDACC__
#pragma unroll
#endif
    for (int q = 0; q < 4; q++) {
        const int64_t j = q * H + i;
        const float wb = bias ? amp_k_ld(bias, DT, g.d * 2 * GH + j) : 0.0f;
        const float rb = bias ? amp_k_ld(bias, DT, g.d * 2 * GH + GH + j) : 0.0f;
        v[q] = GRAD ? rnn_add(rnn_add(rnn_add(x[j], a[j]), wb), rb) : rnn_add(a[j], rnn_add(rnn_add(x[j], wb), rb));
    }
}

/* ---- kernels ------------------------------------------------------------------------------------ */

template <int DT>
__global__ void amp_k_lstm_init_kernel(amp_k_lstm_geom g, const void *__restrict__ h0, const void *__restrict__ c0,
                                       float *__restrict__ h, float *__restrict__ c) {
    AMP_K_FOR(idx, g.B * g.H) {
        const int64_t b = idx / g.H, i = idx - b * g.H;
        h[idx] = h0 ? amp_k_ld(h0, DT, rnn_h_off(g, b) + i) : 0.0f;
        c[idx] = c0 ? amp_k_ld(c0, DT, rnn_h_off(g, b) + i) : 0.0f;
    }
}

/* One thread per (row, hidden unit): the four gates of that unit, then its c and h. */
template <int DT>
__global__ void amp_k_lstm_step_kernel(amp_k_lstm_geom g, int64_t step, const float *__restrict__ xw,
                                       const float *__restrict__ hr, const void *__restrict__ bias,
                                       const void *__restrict__ p, const int32_t *__restrict__ lens,
                                       float *__restrict__ h, float *__restrict__ c, void *__restrict__ y) {
    const int64_t H = g.H, GH = 4 * H;
    AMP_K_FOR(idx, g.B * H) {
        const int64_t b = idx / H, i = idx - b * H;
        const int64_t len = rnn_len(g, lens, b);
        if (step >= len) continue;
        const int64_t t = g.fwd ? step : len - 1 - step;
        const float *x = xw + rnn_x_row(g, t, b) * GH, *a = hr + b * GH;
        float v[4]; /* i, o, f, c: ONNX's gate order */
        rnn_gates<DT, false>(g, bias, i, x, a, v);
        const float cp = c[idx];
        const int64_t po = g.d * 3 * H + i;
        if (p) {
            v[0] = rnn_add(v[0], rnn_mul(amp_k_ld(p, DT, po), cp));
            v[2] = rnn_add(v[2], rnn_mul(amp_k_ld(p, DT, po + 2 * H), cp));
        }
        const float gi = rnn_sigmoid(rnn_clip(g, v[0]));
        const float gf = g.coupled ? rnn_sub(1.0f, gi) : rnn_sigmoid(rnn_clip(g, v[2]));
        const float gc = rnn_tanh(rnn_clip(g, v[3]));
        const float cn = rnn_add(rnn_mul(gf, cp), rnn_mul(gi, gc));
        float vo = v[1];
        if (p) vo = rnn_add(vo, rnn_mul(amp_k_ld(p, DT, po + H), cn));
        const float go = rnn_sigmoid(rnn_clip(g, vo));
        const float hn = rnn_mul(go, rnn_tanh(cn));
        c[idx] = cn;
        h[idx] = hn;
        if (y) amp_k_st(y, DT, rnn_y_off(g, t, b) + i, hn);
    }
}

template <int DT>
__global__ void amp_k_lstm_finish_kernel(amp_k_lstm_geom g, const int32_t *__restrict__ lens,
                                         const float *__restrict__ h, const float *__restrict__ c,
                                         void *__restrict__ y, void *__restrict__ yh, void *__restrict__ yc) {
    const int64_t BH = g.B * g.H, S1 = g.S > 0 ? g.S : 1;
    AMP_K_FOR(idx, S1 * BH) {
        const int64_t t = idx / BH, r = idx - t * BH, b = r / g.H, i = r - b * g.H;
        const int64_t len = rnn_len(g, lens, b);
        if (y && t < g.S && t >= len) amp_k_st(y, DT, rnn_y_off(g, t, b) + i, 0.0f);
        if (t != 0) continue;
        if (yh) amp_k_st(yh, DT, rnn_h_off(g, b) + i, len > 0 ? h[r] : 0.0f);
        if (yc) amp_k_st(yc, DT, rnn_h_off(g, b) + i, len > 0 ? c[r] : 0.0f);
    }
}


/* ---- LSTMGrad kernels (backends/cpu/rnn_grad.c: forward, backward, direction) ------------------- */

__device__ __forceinline__ bool rnn_active(const amp_k_lstm_geom &g, const int32_t *lens, int64_t step, int64_t b,
                                           int64_t *t) {
    const int64_t len = rnn_len(g, lens, b);
    if (step >= len) return false;
    *t = g.fwd ? step : len - 1 - step;
    return true;
}

__global__ void amp_k_lstm_gather_kernel(amp_k_lstm_geom g, const float *__restrict__ x,
                                         const int32_t *__restrict__ lens, float *__restrict__ xs) {
    AMP_K_FOR(idx, g.S * g.B * g.I) {
        const int64_t row = idx / g.I, k = idx - row * g.I, step = row / g.B, b = row - step * g.B;
        int64_t t;
        xs[idx] = rnn_active(g, lens, step, b, &t) ? x[rnn_x_row(g, t, b) * g.I + k] : 0.0f;
    }
}

template <int DT>
__global__ void amp_k_lstm_fwd_step_kernel(amp_k_lstm_geom g, int64_t step, const float *__restrict__ a,
                                           const float *__restrict__ hr, const void *__restrict__ bias,
                                           const void *__restrict__ p, const int32_t *__restrict__ lens,
                                           float *__restrict__ hs, float *__restrict__ cs, float *__restrict__ gt) {
    const int64_t H = g.H, GH = 4 * H, BH = g.B * H;
    AMP_K_FOR(idx, BH) {
        const int64_t b = idx / H, i = idx - b * H, row = step * g.B + b;
        const float *hp = hs + step * BH, *cp = cs + step * BH;
        float *hn = hs + (step + 1) * BH, *cn = cs + (step + 1) * BH, *gs = gt + row * GH;
        int64_t t;
        if (!rnn_active(g, lens, step, b, &t)) {
            hn[idx] = hp[idx];
            cn[idx] = cp[idx];
            gs[i] = gs[H + i] = gs[2 * H + i] = gs[3 * H + i] = 0.0f;
            continue;
        }
        const float *xa = a + row * GH, *ar = hr + b * GH;
        float v[4]; /* i, o, f, c */
        rnn_gates<DT, true>(g, bias, i, xa, ar, v);
        const float c0 = cp[idx];
        const int64_t po = g.d * 3 * H + i;
        if (p) {
            v[0] = rnn_add(v[0], rnn_mul(amp_k_ld(p, DT, po), c0));
            v[2] = rnn_add(v[2], rnn_mul(amp_k_ld(p, DT, po + 2 * H), c0));
        }
        const float gi = rnn_sigmoid(v[0]);
        const float gf = g.coupled ? rnn_sub(1.0f, gi) : rnn_sigmoid(v[2]);
        const float gc = rnn_tanh(v[3]);
        const float c1 = rnn_add(rnn_mul(gf, c0), rnn_mul(gi, gc));
        const float go = rnn_sigmoid(rnn_add(v[1], p ? rnn_mul(amp_k_ld(p, DT, po + H), c1) : 0.0f));
        cn[idx] = c1;
        hn[idx] = rnn_mul(go, rnn_tanh(c1));
        gs[i] = gi, gs[H + i] = go, gs[2 * H + i] = gf, gs[3 * H + i] = gc;
    }
}

template <int DT>
__global__ void amp_k_lstm_bwd_init_kernel(amp_k_lstm_geom g, const int32_t *__restrict__ lens,
                                           const void *__restrict__ dyh, const void *__restrict__ dyc,
                                           float *__restrict__ dh, float *__restrict__ dc) {
    AMP_K_FOR(idx, g.B * g.H) {
        const int64_t b = idx / g.H, i = idx - b * g.H;
        const bool runs = rnn_len(g, lens, b) > 0; /* Y_h is zero for an empty row */
        dh[idx] = runs && dyh ? amp_k_ld(dyh, DT, rnn_h_off(g, b) + i) : 0.0f;
        dc[idx] = runs && dyc ? amp_k_ld(dyc, DT, rnn_h_off(g, b) + i) : 0.0f;
    }
}

template <int DT>
__global__ void amp_k_lstm_bwd_step_kernel(amp_k_lstm_geom g, int64_t step, const float *__restrict__ gt,
                                           const float *__restrict__ cs, const void *__restrict__ dy,
                                           const void *__restrict__ p, const int32_t *__restrict__ lens,
                                           float *__restrict__ dh, float *__restrict__ dc, float *__restrict__ da,
                                           float *__restrict__ dhp, float *__restrict__ pc) {
    const int64_t H = g.H, GH = 4 * H, BH = g.B * H;
    AMP_K_FOR(idx, BH) {
        const int64_t b = idx / H, i = idx - b * H, row = step * g.B + b;
        float *d = da + row * GH, *pr = pc + row * 3 * H;
        int64_t t;
        if (!rnn_active(g, lens, step, b, &t)) {
            d[i] = d[H + i] = d[2 * H + i] = d[3 * H + i] = 0.0f;
            pr[i] = pr[H + i] = pr[2 * H + i] = 0.0f;
            dhp[idx] = 0.0f;
            continue;
        }
        float dhv = dh[idx];
        if (dy) dhv = rnn_add(dhv, amp_k_ld(dy, DT, rnn_y_off(g, t, b) + i));
        dh[idx] = dhv;
        const float *gs = gt + row * GH;
        const float gi = gs[i], go = gs[H + i], gf = gs[2 * H + i], gc = gs[3 * H + i];
        const float c0 = cs[step * BH + idx], c1 = cs[(step + 1) * BH + idx];
        const int64_t po = g.d * 3 * H + i;
        const float pi = p ? amp_k_ld(p, DT, po) : 0.0f, pO = p ? amp_k_ld(p, DT, po + H) : 0.0f;
        const float pf = p ? amp_k_ld(p, DT, po + 2 * H) : 0.0f;
        const float tc = rnn_tanh(c1);
        const float dao = rnn_mul(rnn_mul(rnn_mul(dhv, tc), go), rnn_sub(1.0f, go));
        const float dct = rnn_add(rnn_add(dc[idx], rnn_mul(rnn_mul(dhv, go), rnn_sub(1.0f, rnn_mul(tc, tc)))),
                                  p ? rnn_mul(dao, pO) : 0.0f);
        float di = rnn_mul(dct, gc), daf = 0.0f;
        const float df = rnn_mul(dct, c0);
        if (g.coupled) di = rnn_sub(di, df); /* f = 1 - i */
        else daf = rnn_mul(rnn_mul(df, gf), rnn_sub(1.0f, gf));
        const float dai = rnn_mul(rnn_mul(di, gi), rnn_sub(1.0f, gi));
        const float dac = rnn_mul(rnn_mul(dct, gi), rnn_sub(1.0f, rnn_mul(gc, gc)));
        dc[idx] = rnn_add(rnn_mul(dct, gf), p ? rnn_add(rnn_mul(dai, pi), rnn_mul(daf, pf)) : 0.0f);
        pr[i] = rnn_mul(dai, c0), pr[H + i] = rnn_mul(dao, c1), pr[2 * H + i] = rnn_mul(daf, c0);
        d[i] = dai, d[H + i] = dao, d[2 * H + i] = daf, d[3 * H + i] = dac;
    }
}

__global__ void amp_k_lstm_bwd_commit_kernel(amp_k_lstm_geom g, int64_t step, const int32_t *__restrict__ lens,
                                             const float *__restrict__ dhp, float *__restrict__ dh) {
    AMP_K_FOR(idx, g.B * g.H) {
        int64_t t;
        if (rnn_active(g, lens, step, idx / g.H, &t)) dh[idx] = dhp[idx];
    }
}

__global__ void amp_k_lstm_scatter_kernel(amp_k_lstm_geom g, const int32_t *__restrict__ lens,
                                          const float *__restrict__ xs, float *__restrict__ gx) {
    AMP_K_FOR(idx, g.S * g.B * g.I) {
        const int64_t row = idx / g.I, k = idx - row * g.I, step = row / g.B, b = row - step * g.B;
        int64_t t;
        if (rnn_active(g, lens, step, b, &t)) {
            float *dst = gx + rnn_x_row(g, t, b) * g.I + k;
            *dst = rnn_add(*dst, xs[idx]);
        }
    }
}

/* One thread per column, summing in the CPU's order (no atomics: the same bits every run). */
__global__ void amp_k_lstm_sums_kernel(amp_k_lstm_geom g, const float *__restrict__ da, const float *__restrict__ pc,
                                       float *__restrict__ gb, float *__restrict__ gp) {
    const int64_t H = g.H, GH = 4 * H, SB = g.S * g.B;
    AMP_K_FOR(j, GH + (gp ? 3 * H : 0)) {
        float s = 0.0f;
        if (j < GH) {
            for (int64_t row = 0; row < SB; row++) s = rnn_add(s, da[row * GH + j]);
            gb[j] = s;
            gb[GH + j] = s;
        } else {
            const int64_t jj = j - GH;
            for (int64_t step = g.S - 1; step >= 0; step--)
                for (int64_t b = 0; b < g.B; b++) s = rnn_add(s, pc[(step * g.B + b) * 3 * H + jj]);
            gp[jj] = s;
        }
    }
}

template <int DT>
__global__ void amp_k_lstm_put_state_kernel(amp_k_lstm_geom g, const float *__restrict__ dh,
                                            const float *__restrict__ dc, void *__restrict__ dh0,
                                            void *__restrict__ dc0) {
    AMP_K_FOR(idx, g.B * g.H) {
        const int64_t b = idx / g.H, i = idx - b * g.H;
        if (dh0) amp_k_st(dh0, DT, rnn_h_off(g, b) + i, dh[idx]);
        if (dc0) amp_k_st(dc0, DT, rnn_h_off(g, b) + i, dc[idx]);
    }
}

/* ---- launchers ---------------------------------------------------------------------------------- */

#define RNN_BY_DT(k) {k<AMP_K_F32>, k<AMP_K_F16>, k<AMP_K_BF16>}

typedef void (*init_fn)(amp_k_lstm_geom, const void *, const void *, float *, float *);
typedef void (*step_fn)(amp_k_lstm_geom, int64_t, const float *, const float *, const void *, const void *,
                        const int32_t *, float *, float *, void *);
typedef void (*finish_fn)(amp_k_lstm_geom, const int32_t *, const float *, const float *, void *, void *, void *);
static const init_fn init_fns[3] = RNN_BY_DT(amp_k_lstm_init_kernel);
static const step_fn step_fns[3] = RNN_BY_DT(amp_k_lstm_step_kernel);
static const finish_fn finish_fns[3] = RNN_BY_DT(amp_k_lstm_finish_kernel);

static bool geom_ok(const amp_k_lstm_geom &g) {
    return (unsigned)g.dt < 3u && g.S >= 0 && g.B >= 0 && g.H >= 0 && (g.D == 1 || g.D == 2) && g.d >= 0 && g.d < g.D;
}

extern "C" cudaError_t amp_k_lstm_init(cudaStream_t s, amp_k_lstm_geom g, const void *h0, const void *c0, float *h,
                                       float *c) {
    if (!geom_ok(g)) return cudaErrorInvalidValue;
    const int64_t n = g.B * g.H;
    if (n == 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(init_fns[g.dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, s, g, h0, c0, h, c);
}

extern "C" cudaError_t amp_k_lstm_step(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const float *xw,
                                       const float *hr, const void *bias, const void *p, const int32_t *lens, float *h,
                                       float *c, void *y) {
    if (!geom_ok(g)) return cudaErrorInvalidValue;
    const int64_t n = g.B * g.H;
    if (n == 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(step_fns[g.dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, s, g, step, xw, hr,
                                 bias, p, lens, h, c, y);
}

extern "C" cudaError_t amp_k_lstm_finish(cudaStream_t s, amp_k_lstm_geom g, const int32_t *lens, const float *h,
                                         const float *c, void *y, void *yh, void *yc) {
    if (!geom_ok(g)) return cudaErrorInvalidValue;
    const int64_t n = (g.S > 0 ? g.S : 1) * g.B * g.H;
    if (n == 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(finish_fns[g.dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, s, g, lens, h, c,
                                 y, yh, yc);
}

typedef void (*fwd_step_fn)(amp_k_lstm_geom, int64_t, const float *, const float *, const void *, const void *,
                            const int32_t *, float *, float *, float *);
typedef void (*bwd_init_fn)(amp_k_lstm_geom, const int32_t *, const void *, const void *, float *, float *);
typedef void (*bwd_step_fn)(amp_k_lstm_geom, int64_t, const float *, const float *, const void *, const void *,
                            const int32_t *, float *, float *, float *, float *, float *);
typedef void (*put_state_fn)(amp_k_lstm_geom, const float *, const float *, void *, void *);
static const fwd_step_fn fwd_step_fns[3] = RNN_BY_DT(amp_k_lstm_fwd_step_kernel);
static const bwd_init_fn bwd_init_fns[3] = RNN_BY_DT(amp_k_lstm_bwd_init_kernel);
static const bwd_step_fn bwd_step_fns[3] = RNN_BY_DT(amp_k_lstm_bwd_step_kernel);
static const put_state_fn put_state_fns[3] = RNN_BY_DT(amp_k_lstm_put_state_kernel);

/* Blocks for n > 0 items; 0 items launch nothing. */
#define RNN_GO(n, kernel, ...)                                                                                   \
    do {                                                                                                     \
        if (!geom_ok(g) || g.I < 0) return cudaErrorInvalidValue;                                            \
        const int64_t n_ = (n);                                                                              \
        if (n_ == 0) return cudaSuccess;                                                                     \
        return AMP_CUDA_LAUNCH_PLAIN(kernel, amp_k_blocks(n_, AMP_K_THREADS), AMP_K_THREADS, 0, s, __VA_ARGS__); \
    } while (0)

extern "C" cudaError_t amp_k_lstm_gather(cudaStream_t s, amp_k_lstm_geom g, const float *x, const int32_t *lens,
                                         float *xs) {
    RNN_GO(g.S * g.B * g.I, amp_k_lstm_gather_kernel, g, x, lens, xs);
}

extern "C" cudaError_t amp_k_lstm_fwd_step(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const float *a,
                                           const float *hr, const void *bias, const void *p, const int32_t *lens,
                                           float *hs, float *cs, float *gt) {
    RNN_GO(g.B * g.H, fwd_step_fns[g.dt], g, step, a, hr, bias, p, lens, hs, cs, gt);
}

extern "C" cudaError_t amp_k_lstm_bwd_init(cudaStream_t s, amp_k_lstm_geom g, const int32_t *lens, const void *dyh,
                                           const void *dyc, float *dh, float *dc) {
    RNN_GO(g.B * g.H, bwd_init_fns[g.dt], g, lens, dyh, dyc, dh, dc);
}

extern "C" cudaError_t amp_k_lstm_bwd_step(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const float *gt,
                                           const float *cs, const void *dy, const void *p, const int32_t *lens,
                                           float *dh, float *dc, float *da, float *dhp, float *pc) {
    RNN_GO(g.B * g.H, bwd_step_fns[g.dt], g, step, gt, cs, dy, p, lens, dh, dc, da, dhp, pc);
}

extern "C" cudaError_t amp_k_lstm_bwd_commit(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const int32_t *lens,
                                             const float *dhp, float *dh) {
    RNN_GO(g.B * g.H, amp_k_lstm_bwd_commit_kernel, g, step, lens, dhp, dh);
}

extern "C" cudaError_t amp_k_lstm_scatter(cudaStream_t s, amp_k_lstm_geom g, const int32_t *lens, const float *xs,
                                          float *gx) {
    RNN_GO(g.S * g.B * g.I, amp_k_lstm_scatter_kernel, g, lens, xs, gx);
}

extern "C" cudaError_t amp_k_lstm_sums(cudaStream_t s, amp_k_lstm_geom g, const float *da, const float *pc, float *gb,
                                       float *gp) {
    RNN_GO(4 * g.H + (gp ? 3 * g.H : 0), amp_k_lstm_sums_kernel, g, da, pc, gb, gp);
}

extern "C" cudaError_t amp_k_lstm_put_state(cudaStream_t s, amp_k_lstm_geom g, const float *dh, const float *dc,
                                            void *dh0, void *dc0) {
    RNN_GO(g.B * g.H, put_state_fns[g.dt], g, dh, dc, dh0, dc0);
}
