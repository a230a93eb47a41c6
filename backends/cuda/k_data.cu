/* Data movement (kernels_data.h): Gather, GatherGrad, Transpose. The copies move raw elements,
 * so their bits are the CPU's for every dtype (backends/cpu/gather.c, shape.c). GatherGrad is
 * gather-form: one thread per dX element scans the indices in order and adds the dY elements
 * that came from it in double, then rounds once, as the CPU's fold does (shape_grad.c): no
 * atomics, the same bits every run. */
#include "backends/cuda/kernels_dev.h"

#include "backends/cuda/kernels_data.h"

template <int ES> struct amp_k_elem;
template <> struct amp_k_elem<1> { typedef uint8_t t; };
template <> struct amp_k_elem<2> { typedef uint16_t t; };
template <> struct amp_k_elem<4> { typedef uint32_t t; };
template <> struct amp_k_elem<8> { typedef uint64_t t; };

__device__ __forceinline__ int64_t amp_k_index(const void *ind, bool i64, int64_t j) {
    return i64 ? ((const int64_t *)ind)[j] : (int64_t)((const int32_t *)ind)[j];
}

template <int ES>
__global__ void amp_k_gather_kernel(amp_k_gather g, const void *__restrict__ x, const void *__restrict__ ind,
                                    void *__restrict__ y, int64_t n) {
    typedef typename amp_k_elem<ES>::t T;
    AMP_K_FOR(e, n) {
        const int64_t i = e % g.inner, oj = e / g.inner, j = oj % g.nidx, o = oj / g.nidx;
        int64_t v = amp_k_index(ind, g.ind64, j);
        if (v < 0) v += g.len;
        ((T *)y)[e] = v >= 0 && v < g.len ? ((const T *)x)[(o * g.len + v) * g.inner + i] : (T)0;
    }
}

typedef void (*amp_k_gather_fn)(amp_k_gather, const void *, const void *, void *, int64_t);

static int amp_k_es_slot(int es) { return es == 1 ? 0 : es == 2 ? 1 : es == 4 ? 2 : es == 8 ? 3 : -1; }

extern "C" cudaError_t amp_k_gather_fwd(cudaStream_t stream, const amp_k_gather *g, const void *x, const void *ind,
                                        void *y) {
    static const amp_k_gather_fn fns[4] = {amp_k_gather_kernel<1>, amp_k_gather_kernel<2>, amp_k_gather_kernel<4>,
                                           amp_k_gather_kernel<8>};
    const int s = amp_k_es_slot(g->es);
    if (s < 0) return cudaErrorInvalidValue;
    const int64_t n = g->outer * g->nidx * g->inner;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[s], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, x, ind, y, n);
}

template <int DT>
__global__ void amp_k_gather_grad_kernel(amp_k_gather g, const void *__restrict__ dy, const void *__restrict__ ind,
                                         void *__restrict__ dx, int64_t n) {
    AMP_K_FOR(e, n) {
        const int64_t i = e % g.inner, ov = e / g.inner, v = ov % g.len, o = ov / g.len;
        const int64_t base = o * g.nidx * g.inner + i;
        double s = 0.0;
        for (int64_t j = 0; j < g.nidx; j++) {
            int64_t w = amp_k_index(ind, g.ind64, j);
            if (w < 0) w += g.len;
            if (w == v) s += (double)amp_k_ld(dy, DT, base + j * g.inner);
        }
        amp_k_st(dx, DT, e, (float)s);
    }
}

typedef void (*amp_k_gather_grad_fn)(amp_k_gather, const void *, const void *, void *, int64_t);

extern "C" cudaError_t amp_k_gather_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_gather *g, const void *dy,
                                         const void *ind, void *dx) {
    static const amp_k_gather_grad_fn fns[3] = {amp_k_gather_grad_kernel<AMP_K_F32>,
                                                amp_k_gather_grad_kernel<AMP_K_F16>,
                                                amp_k_gather_grad_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= 3u) return cudaErrorInvalidValue;
    const int64_t n = g->outer * g->len * g->inner;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, dy, ind, dx,
                                 n);
}

/* One thread per element of the dense side (odims, row-major); the strided side's offset from
 * its coordinates, innermost dim first (the loop runs over the constant maximum rank so nothing
 * is indexed at run time). SCATTER writes the dense side into the strided one (SliceGrad). */
template <int ES, bool SCATTER>
__global__ void amp_k_strided_kernel(amp_k_perm p, const void *__restrict__ x, void *__restrict__ y, int64_t n) {
    typedef typename amp_k_elem<ES>::t T;
    AMP_K_FOR(e, n) {
        int64_t rem = e, off = 0;
#ifdef __CUDACC__
#pragma unroll
#endif
        for (int d = AMP_K_DATA_MAX_RANK - 1; d >= 0; d--) {
            if (d < p.rank) {
                const int64_t c = rem % p.odims[d];
                rem /= p.odims[d];
                off += c * p.istride[d];
            }
        }
        if (SCATTER) ((T *)y)[off] = ((const T *)x)[e];
        else ((T *)y)[e] = ((const T *)x)[off];
    }
}

typedef void (*amp_k_strided_fn)(amp_k_perm, const void *, void *, int64_t);

extern "C" cudaError_t amp_k_strided(cudaStream_t stream, const amp_k_perm *p, bool scatter, const void *x, void *y,
                                     int64_t n) {
    static const amp_k_strided_fn fns[2][4] = {
        {amp_k_strided_kernel<1, false>, amp_k_strided_kernel<2, false>, amp_k_strided_kernel<4, false>,
         amp_k_strided_kernel<8, false>},
        {amp_k_strided_kernel<1, true>, amp_k_strided_kernel<2, true>, amp_k_strided_kernel<4, true>,
         amp_k_strided_kernel<8, true>}};
    const int s = amp_k_es_slot(p->es);
    if (s < 0 || p->rank < 1 || p->rank > AMP_K_DATA_MAX_RANK) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[scatter][s], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *p, x, y,
                                 n);
}

/* Resize, last two axes: nearest copies raw elements; interpolation blends along the width
 * first, then the height, in f32, as the CPU's direct path does (backends/cpu/resize.c). */
template <int ES>
__global__ void amp_k_resize_nearest_kernel(amp_k_resize2d g, const void *__restrict__ x, void *__restrict__ y,
                                            int64_t n) {
    typedef typename amp_k_elem<ES>::t T;
    AMP_K_FOR(e, n) {
        const int64_t i = e % g.wo, j = e / g.wo % g.ho, p = e / (g.wo * g.ho);
        ((T *)y)[e] = ((const T *)x)[(p * g.h + g.ih[j * g.kh]) * g.w + g.iw[i * g.kw]];
    }
}

template <int DT>
__global__ void amp_k_resize_linear_kernel(amp_k_resize2d g, const void *__restrict__ x, void *__restrict__ y,
                                           int64_t n) {
    AMP_K_FOR(e, n) {
        const int64_t i = e % g.wo, j = e / g.wo % g.ho, p = e / (g.wo * g.ho);
        float acc = 0.0f;
        for (int a = 0; a < g.kh; a++) {
            const int64_t row = (p * g.h + g.ih[j * g.kh + a]) * g.w;
            float h = 0.0f;
            if (g.kw == 2)
                h = g.ww[2 * i] * amp_k_ld(x, DT, row + g.iw[2 * i]) +
                    g.ww[2 * i + 1] * amp_k_ld(x, DT, row + g.iw[2 * i + 1]);
            else
                for (int b = 0; b < g.kw; b++) h += g.ww[i * g.kw + b] * amp_k_ld(x, DT, row + g.iw[i * g.kw + b]);
            acc = a == 0 ? g.wh[j * g.kh] * h : acc + g.wh[j * g.kh + a] * h;
        }
        amp_k_st(y, DT, e, acc);
    }
}

typedef void (*amp_k_resize_fn)(amp_k_resize2d, const void *, void *, int64_t);

extern "C" cudaError_t amp_k_resize2d_fwd(cudaStream_t stream, amp_k_dtype dt, const amp_k_resize2d *g, const void *x,
                                          void *y) {
    static const amp_k_resize_fn nearest[4] = {amp_k_resize_nearest_kernel<1>, amp_k_resize_nearest_kernel<2>,
                                               amp_k_resize_nearest_kernel<4>, amp_k_resize_nearest_kernel<8>};
    static const amp_k_resize_fn linear[3] = {amp_k_resize_linear_kernel<AMP_K_F32>,
                                              amp_k_resize_linear_kernel<AMP_K_F16>,
                                              amp_k_resize_linear_kernel<AMP_K_BF16>};
    const int s = amp_k_es_slot(g->es);
    if ((g->es && s < 0) || (!g->es && (unsigned)dt >= 3u)) return cudaErrorInvalidValue;
    const int64_t n = g->planes * g->ho * g->wo;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(g->es ? nearest[s] : linear[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0,
                                 stream, *g, x, y, n);
}

/* Gather form of the transpose: each dX element scans the output rows that read its row, and
 * in them the columns that read its column. */
template <int DT>
__global__ void amp_k_resize_grad_kernel(amp_k_resize2d g, const void *__restrict__ dy, void *__restrict__ dx,
                                         int64_t n) {
    AMP_K_FOR(e, n) {
        const int64_t w = e % g.w, h = e / g.w % g.h, p = e / (g.w * g.h);
        double s = 0.0;
        for (int64_t j = 0; j < g.ho; j++)
            for (int a = 0; a < g.kh; a++) {
                if (g.ih[j * g.kh + a] != h) continue;
                const double wa = g.wh[j * g.kh + a];
                for (int64_t i = 0; i < g.wo; i++)
                    for (int b = 0; b < g.kw; b++)
                        if (g.iw[i * g.kw + b] == w)
                            s += wa * (double)g.ww[i * g.kw + b] *
                                 (double)amp_k_ld(dy, DT, (p * g.ho + j) * g.wo + i);
            }
        amp_k_st(dx, DT, e, (float)s);
    }
}

extern "C" cudaError_t amp_k_resize2d_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_resize2d *g,
                                           const void *dy, void *dx) {
    static const amp_k_resize_fn fns[3] = {amp_k_resize_grad_kernel<AMP_K_F32>, amp_k_resize_grad_kernel<AMP_K_F16>,
                                           amp_k_resize_grad_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= 3u) return cudaErrorInvalidValue;
    const int64_t n = g->planes * g->h * g->w;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, dy, dx, n);
}

/* TileGrad in gather form: one thread per dX element, the repeats in row-major order. */
template <int DT>
__global__ void amp_k_tile_grad_kernel(amp_k_tile_grad g, const void *__restrict__ dy, void *__restrict__ dx,
                                       int64_t n) {
    AMP_K_FOR(e, n) {
        int64_t rem = e, base = 0;
#ifdef __CUDACC__
#pragma unroll
#endif
        for (int d = AMP_K_DATA_MAX_RANK - 1; d >= 0; d--) {
            if (d < g.rank) {
                base += rem % g.xd[d] * g.ys[d];
                rem /= g.xd[d];
            }
        }
        double s = 0.0;
        for (int64_t t = 0; t < g.nrep; t++) {
            int64_t tr = t, off = base;
#ifdef __CUDACC__
#pragma unroll
#endif
            for (int d = AMP_K_DATA_MAX_RANK - 1; d >= 0; d--) {
                if (d < g.rank) {
                    off += tr % g.rep[d] * g.xd[d] * g.ys[d];
                    tr /= g.rep[d];
                }
            }
            s += (double)amp_k_ld(dy, DT, off);
        }
        amp_k_st(dx, DT, e, (float)s);
    }
}

typedef void (*amp_k_tile_grad_fn)(amp_k_tile_grad, const void *, void *, int64_t);

extern "C" cudaError_t amp_k_tile_grad_run(cudaStream_t stream, amp_k_dtype dt, const amp_k_tile_grad *g,
                                           const void *dy, void *dx, int64_t n) {
    static const amp_k_tile_grad_fn fns[3] = {amp_k_tile_grad_kernel<AMP_K_F32>, amp_k_tile_grad_kernel<AMP_K_F16>,
                                              amp_k_tile_grad_kernel<AMP_K_BF16>};
    if ((unsigned)dt >= 3u || g->rank < 1 || g->rank > AMP_K_DATA_MAX_RANK) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, dy, dx, n);
}

/* Pad: one thread per output element; x's strides built innermost first alongside. */
template <int ES>
__global__ void amp_k_pad_kernel(amp_k_pad g, const void *__restrict__ x, void *__restrict__ y, int64_t n) {
    typedef typename amp_k_elem<ES>::t T;
    AMP_K_FOR(e, n) {
        int64_t rem = e, off = 0, st = 1;
        bool inside = true;
#ifdef __CUDACC__
#pragma unroll
#endif
        for (int d = AMP_K_DATA_MAX_RANK - 1; d >= 0; d--) {
            if (d < g.rank) {
                int64_t c = rem % g.yd[d] - g.pb[d];
                rem /= g.yd[d];
                if (g.edge) c = c < 0 ? 0 : c >= g.xd[d] ? g.xd[d] - 1 : c;
                inside = inside && c >= 0 && c < g.xd[d];
                off += c * st;
                st *= g.xd[d];
            }
        }
        ((T *)y)[e] = inside ? ((const T *)x)[off] : (T)g.cval;
    }
}

typedef void (*amp_k_pad_fn)(amp_k_pad, const void *, void *, int64_t);

extern "C" cudaError_t amp_k_pad_run(cudaStream_t stream, const amp_k_pad *g, const void *x, void *y, int64_t n) {
    static const amp_k_pad_fn fns[4] = {amp_k_pad_kernel<1>, amp_k_pad_kernel<2>, amp_k_pad_kernel<4>,
                                        amp_k_pad_kernel<8>};
    const int s = amp_k_es_slot(g->es);
    if (s < 0 || g->rank < 1 || g->rank > AMP_K_DATA_MAX_RANK) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(fns[s], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g, x, y, n);
}
