/* 2-D AveragePool and AveragePoolGrad (kernels_reduce.h: amp_k_avg_pool2d, amp_k_avg_pool2d_grad).
 *
 * The window rules are backends/conv_grad.h's, shared with the CPU kernels (backends/cpu/
 * conv_pool.c, conv_grad.c): the taps inside the input (amp_pool_taps) and, with
 * count_include_pad, inside the padded extent (amp_pool_taps_padded). Both kernels add in f32 in
 * the CPU's order, so f32 results agree bit for bit and 16-bit ones round the same f32 value.
 * One thread per output element (forward) or per input element (gradient: it gathers the
 * windows that hold it; no atomics). */
#include "backends/conv_grad.h"
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_reduce.h"

#define AMP_K_AVG_CHUNK 256 /* the CPU gradient's column chunk (backends/cpu/conv_grad.c CHUNK) */

/* the divisor of a window starting at b along one dim: its taps inside the input or the pads */
__device__ __forceinline__ int64_t amp_k_avg_taps(int64_t b, int64_t d, int64_t k, int64_t n, int64_t pb, int64_t pe,
                                                  int count_pad, int64_t *lo, int64_t *hi) {
    amp_pool_taps(b, d, k, n, lo, hi);
    return count_pad ? amp_pool_taps_padded(b, d, k, n, pb, pe) : *hi - *lo;
}

template <int T>
__global__ void amp_k_avg_pool2d_kernel(amp_k_avgpool g, const void *__restrict__ x, void *__restrict__ y) {
    const int64_t total = g.planes * g.oh * g.ow;
    AMP_K_FOR(i, total) {
        const int64_t ow = i % g.ow, t = i / g.ow, oh = t % g.oh, p = t / g.oh;
        const int64_t hb = oh * g.sh - g.ph, wb = ow * g.sw - g.pw;
        int64_t hlo, hhi, wlo, whi;
        const int64_t hn = amp_k_avg_taps(hb, g.dh, g.kh, g.h, g.ph, g.peh, g.count_pad, &hlo, &hhi);
        const int64_t wn = amp_k_avg_taps(wb, g.dw, g.kw, g.w, g.pw, g.pew, g.count_pad, &wlo, &whi);
        const int64_t base = p * g.h * g.w + wb;
        float acc = 0.0f;
        for (int64_t kh = hlo; kh < hhi; kh++) {
            const int64_t row = base + (hb + kh * g.dh) * g.w;
            for (int64_t kw = wlo; kw < whi; kw++) acc += amp_k_ld(x, T, row + kw * g.dw);
        }
        const int64_t cnt = hn * wn;
        amp_k_st(y, T, i, cnt > 0 ? acc / (float)cnt : amp_k_nan());
    }
}

/* Along one dim: the windows [*lo, *hi) that can hold input index x. */
__device__ __forceinline__ void amp_k_avg_windows(int64_t x, int64_t k, int64_t s, int64_t d, int64_t pad,
                                                  int64_t nout, int64_t *lo, int64_t *hi) {
    const int64_t num = x + pad - (k - 1) * d, last = (x + pad) / s;
    *lo = num <= 0 ? 0 : (num + s - 1) / s;
    *hi = last < nout ? last + 1 : nout;
}

template <int T>
__global__ void amp_k_avg_pool2d_grad_kernel(amp_k_avgpool g, const void *__restrict__ dy, void *__restrict__ dx) {
    const int64_t total = g.planes * g.h * g.w;
    AMP_K_FOR(i, total) {
        const int64_t w = i % g.w, t = i / g.w, h = t % g.h, p = t / g.h;
        const int64_t ybase = p * g.oh * g.ow;
        int64_t oh0, oh1, ow0, ow1;
        amp_k_avg_windows(h, g.kh, g.sh, g.dh, g.ph, g.oh, &oh0, &oh1);
        amp_k_avg_windows(w, g.kw, g.sw, g.dw, g.pw, g.ow, &ow0, &ow1);
        float acc = 0.0f;
        for (int64_t oh = oh0; oh < oh1; oh++) {
            const int64_t rh = h + g.ph - oh * g.sh;
            if (rh % g.dh != 0 || rh / g.dh >= g.kh) continue; /* window oh does not hold row h */
            int64_t hlo, hhi, wlo, whi;
            const int64_t hn = amp_k_avg_taps(oh * g.sh - g.ph, g.dh, g.kh, g.h, g.ph, g.peh, g.count_pad, &hlo, &hhi);
            /* the CPU: per chunk of output columns, kernel columns in order, each adding to the
             * input column it maps to */
            for (int64_t c0 = ow0 - ow0 % AMP_K_AVG_CHUNK; c0 < ow1; c0 += AMP_K_AVG_CHUNK)
                for (int64_t kw = 0; kw < g.kw; kw++) {
                    const int64_t rw = w + g.pw - kw * g.dw;
                    if (rw < 0 || rw % g.sw != 0) continue;
                    const int64_t ow = rw / g.sw;
                    if (ow < c0 || ow >= c0 + AMP_K_AVG_CHUNK || ow >= g.ow) continue;
                    const int64_t wn =
                        amp_k_avg_taps(ow * g.sw - g.pw, g.dw, g.kw, g.w, g.pw, g.pew, g.count_pad, &wlo, &whi);
                    acc += amp_k_ld(dy, T, ybase + oh * g.ow + ow) / (float)(hn * wn);
                }
        }
        amp_k_st(dx, T, i, acc);
    }
}

extern "C" cudaError_t amp_k_avg_pool2d(cudaStream_t stream, amp_k_dtype dt, const amp_k_avgpool *g, const void *x,
                                        void *y) {
    typedef void (*fn_t)(amp_k_avgpool, const void *, void *);
    static const fn_t fns[AMP_K_DTYPE_COUNT] = {amp_k_avg_pool2d_kernel<AMP_K_F32>, amp_k_avg_pool2d_kernel<AMP_K_F16>,
                                                amp_k_avg_pool2d_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    const int64_t n = g->planes * g->oh * g->ow;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, x, y);
}

extern "C" cudaError_t amp_k_avg_pool2d_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_avgpool *g,
                                             const void *dy, void *dx) {
    typedef void (*fn_t)(amp_k_avgpool, const void *, void *);
    static const fn_t fns[AMP_K_DTYPE_COUNT] = {amp_k_avg_pool2d_grad_kernel<AMP_K_F32>,
                                                amp_k_avg_pool2d_grad_kernel<AMP_K_F16>,
                                                amp_k_avg_pool2d_grad_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    const int64_t n = g->planes * g->h * g->w;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, dy, dx);
}
