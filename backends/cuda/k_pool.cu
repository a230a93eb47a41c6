/* 2-D MaxPool and MaxPoolGrad (kernels.h: amp_k_max_pool2d, amp_k_max_pool2d_grad).
 *
 * The window rules are backends/conv_grad.h's, shared with the CPU kernels (backends/cpu/
 * conv_pool.c, conv_grad.c): the taps inside the input (amp_pool_taps), visited in row-major
 * order, and for the gradient the winner amp_pool_max_takes_f picks (the first of equal values; a
 * NaN wins). The forward stores the winning value itself (exact in every dtype), -inf for a
 * window that holds no input, and C's NaN when the window holds one (the CPU stores that NaN for
 * windows inside the input; at a padded border it keeps the NaN's payload). */
#include "backends/conv_grad.h"
#include "backends/cuda/kernels_dev.h"

/* One thread per output element. */
template <int T>
__global__ void amp_k_max_pool2d_kernel(amp_k_pool2d g, const void *__restrict__ x, void *__restrict__ y) {
    const int64_t total = g.planes * g.oh * g.ow;
    AMP_K_FOR(i, total) {
        const int64_t ow = i % g.ow, t = i / g.ow, oh = t % g.oh, p = t / g.oh;
        const int64_t hb = oh * g.sh - g.ph, wb = ow * g.sw - g.pw;
        int64_t hlo, hhi, wlo, whi;
        amp_pool_taps(hb, g.dh, g.kh, g.h, &hlo, &hhi);
        amp_pool_taps(wb, g.dw, g.kw, g.w, &wlo, &whi);
        const int64_t base = p * g.h * g.w + wb;
        float best = -INFINITY;
        int nan = 0;
        for (int64_t kh = hlo; kh < hhi; kh++) {
            const int64_t row = base + (hb + kh * g.dh) * g.w;
            for (int64_t kw = wlo; kw < whi; kw++) {
                const float v = amp_k_ld(x, T, row + kw * g.dw);
                nan |= v != v;
                best = v > best ? v : best;
            }
        }
        amp_k_st(y, T, i, nan ? amp_k_nan() : best);
    }
}

/* Along one dim: the windows [*lo, *hi) that can hold input index x (o * s - pad + t * d == x for
 * a tap t in [0, k)), and whether window o does. */
__device__ __forceinline__ void amp_k_windows(int64_t x, int64_t k, int64_t s, int64_t d, int64_t pad, int64_t nout,
                                              int64_t *lo, int64_t *hi) {
    const int64_t num = x + pad - (k - 1) * d, last = (x + pad) / s;
    *lo = num <= 0 ? 0 : (num + s - 1) / s;
    *hi = last < nout ? last + 1 : nout;
}
__device__ __forceinline__ bool amp_k_holds(int64_t x, int64_t o, int64_t k, int64_t s, int64_t d, int64_t pad) {
    const int64_t r = x + pad - o * s;
    return r % d == 0 && r / d < k;
}

/* One thread per input element: it visits, in output order, every window that holds it, finds
 * each window's winner as the CPU does, and sums dY of the windows it wins. The CPU adds the same
 * values in the same order (output positions row-major) into a zeroed f32 plane, so f32 results
 * agree bit for bit and 16-bit ones round the same f32 sum. No atomics: the result is the same
 * every run. */
template <int T>
__global__ void amp_k_max_pool2d_grad_kernel(amp_k_pool2d g, const void *__restrict__ dy, const void *__restrict__ x,
                                             void *__restrict__ dx) {
    const int64_t total = g.planes * g.h * g.w, plane = g.h * g.w;
    AMP_K_FOR(i, total) {
        const int64_t w = i % g.w, t = i / g.w, h = t % g.h, p = t / g.h;
        const int64_t xbase = p * plane, ybase = p * g.oh * g.ow, self = h * g.w + w;
        int64_t oh0, oh1, ow0, ow1;
        amp_k_windows(h, g.kh, g.sh, g.dh, g.ph, g.oh, &oh0, &oh1);
        amp_k_windows(w, g.kw, g.sw, g.dw, g.pw, g.ow, &ow0, &ow1);
        float acc = 0.0f;
        for (int64_t oh = oh0; oh < oh1; oh++) {
            if (!amp_k_holds(h, oh, g.kh, g.sh, g.dh, g.ph)) continue;
            const int64_t hb = oh * g.sh - g.ph;
            int64_t hlo, hhi;
            amp_pool_taps(hb, g.dh, g.kh, g.h, &hlo, &hhi);
            for (int64_t ow = ow0; ow < ow1; ow++) {
                if (!amp_k_holds(w, ow, g.kw, g.sw, g.dw, g.pw)) continue;
                const int64_t wb = ow * g.sw - g.pw;
                int64_t wlo, whi;
                amp_pool_taps(wb, g.dw, g.kw, g.w, &wlo, &whi);
                int64_t bi = -1;
                float best = 0.0f;
                for (int64_t kh = hlo; kh < hhi; kh++) {
                    const int64_t row = (hb + kh * g.dh) * g.w + wb;
                    for (int64_t kw = wlo; kw < whi; kw++) {
                        const float v = amp_k_ld(x, T, xbase + row + kw * g.dw);
                        if (bi < 0 || amp_pool_max_takes_f(v, best)) {
                            best = v;
                            bi = row + kw * g.dw;
                        }
                    }
                }
                if (bi == self) acc += amp_k_ld(dy, T, ybase + oh * g.ow + ow);
            }
        }
        amp_k_st(dx, T, i, acc);
    }
}

extern "C" cudaError_t amp_k_max_pool2d(cudaStream_t stream, amp_k_dtype dt, const amp_k_pool2d *g, const void *x,
                                        void *y) {
    typedef void (*fn_t)(amp_k_pool2d, const void *, void *);
    static const fn_t fns[AMP_K_DTYPE_COUNT] = {amp_k_max_pool2d_kernel<AMP_K_F32>, amp_k_max_pool2d_kernel<AMP_K_F16>,
                                                amp_k_max_pool2d_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    const int64_t n = g->planes * g->oh * g->ow;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, x, y);
}

extern "C" cudaError_t amp_k_max_pool2d_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_pool2d *g,
                                             const void *dy, const void *x, void *dx) {
    typedef void (*fn_t)(amp_k_pool2d, const void *, const void *, void *);
    static const fn_t fns[AMP_K_DTYPE_COUNT] = {amp_k_max_pool2d_grad_kernel<AMP_K_F32>,
                                                amp_k_max_pool2d_grad_kernel<AMP_K_F16>,
                                                amp_k_max_pool2d_grad_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    const int64_t n = g->planes * g->h * g->w;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, dy, x, dx);
}
