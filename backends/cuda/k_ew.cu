/* Kernels of the "more elementwise ops" family (kernels_ew.h): Pow, Clip and ClipGrad, Where,
 * the variadic Sum/Mean/Min/Max, Pow's BinaryGrad and the fill of ConstantOfShape, with the
 * host-side plan that collapses the broadcast of several inputs.
 *
 * Each op has a flat launch (every input of the output's shape; four elements at once where
 * the pointers allow) and a broadcasting one that decomposes the output index over the
 * collapsed dims. The math is the CPU kernels' (backends/elementwise.h, elementwise_grad.h),
 * in f32, rounded once on store. */
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_ew.h"
#include "backends/elementwise.h"
#include "backends/elementwise_grad.h"

#include <string.h>

/* loops over a constant count unrolled on the device, so the small arrays they index stay in
 * registers (the host compiler of the emulator knows no such pragma) */
#ifdef __CUDACC__
#define AMP_K_EW_UNROLL _Pragma("unroll")
#else
#define AMP_K_EW_UNROLL
#endif

/* ---- plan (host) ----------------------------------------------------------------------------- */

extern "C" bool amp_k_nbc_plan(int r, const int64_t *out, int nin, const int *ranks, const int64_t *const *dims,
                               amp_k_nbc *g) {
    memset(g, 0, sizeof *g);
    if (r < 0 || nin < 1 || nin > AMP_K_NBC_IN) return false;
    for (int i = 0; i < nin; i++)
        if (ranks[i] < 0 || ranks[i] > r) return false;
    bool f[AMP_K_NBC_IN][AMP_K_BC_RANK];
    int64_t n = 1;
    int cr = 0;
    for (int d = 0; d < r; d++) {
        const int64_t o = out[d];
        if (o < 0) return false;
        bool kept[AMP_K_NBC_IN];
        for (int i = 0; i < nin; i++) {
            const int at = d - (r - ranks[i]);
            const int64_t a = at >= 0 ? dims[i][at] : 1;
            if (a != o && a != 1) return false;
            kept[i] = a == o;
        }
        n *= o;
        if (o == 1) continue; /* no index runs along it */
        bool alike = cr > 0;
        for (int i = 0; i < nin; i++) alike = alike && f[i][cr - 1] == kept[i];
        if (alike) {
            g->dims[cr - 1] *= o;
        } else {
            if (cr == AMP_K_BC_RANK) return false;
            g->dims[cr] = o;
            for (int i = 0; i < nin; i++) f[i][cr] = kept[i];
            cr++;
        }
    }
    g->n = n;
    g->nin = nin;
    if (n == 0) return true; /* rank 0: nothing to launch */
    if (cr == 0) {
        g->dims[0] = 1;
        for (int i = 0; i < nin; i++) f[i][0] = true;
        cr = 1;
    }
    g->rank = cr;
    g->flat = true;
    for (int i = 0; i < nin; i++) {
        int64_t s = 1;
        for (int d = cr - 1; d >= 0; d--) {
            g->st[i][d] = f[i][d] ? s : 0;
            if (f[i][d]) s *= g->dims[d];
            g->flat = g->flat && f[i][d];
        }
    }
    return true;
}

/* ---- shared device helpers ------------------------------------------------------------------- */

/* The element offsets of output element i in the first NIN inputs (j >= nin left alone). */
template <int NIN>
__device__ __forceinline__ void amp_k_nbc_offs(const amp_k_nbc &g, int64_t i, int nin, int64_t (&off)[NIN]) {
AMP_K_EW_UNROLL
    for (int j = 0; j < NIN; j++) off[j] = 0;
    for (int d = g.rank - 1; d >= 0; d--) {
        const int64_t q = i / g.dims[d], c = i - q * g.dims[d];
        i = q;
AMP_K_EW_UNROLL
        for (int j = 0; j < NIN; j++)
            if (j < nin) off[j] += c * g.st[j][d];
    }
}

/* ---- Pow ------------------------------------------------------------------------------------- */

/* sq: b is one element, so b == 2 means the CPU squares (backends/cpu/elementwise_binary.c) */
__device__ __forceinline__ float amp_k_powf(float a, float b, bool sq) { return sq && b == 2.0f ? a * a : powf(a, b); }

template <int T, bool VEC>
__global__ void amp_k_pow_flat(const void *a, const void *b, void *y, int64_t n, bool sq) {
    if (VEC) {
        AMP_K_FOR(q, n >> 2) {
            float u[4], v[4];
            amp_k_ld4(a, T, q, u);
            amp_k_ld4(b, T, q, v);
AMP_K_EW_UNROLL
            for (int j = 0; j < 4; j++) u[j] = amp_k_powf(u[j], v[j], sq);
            amp_k_st4(y, T, q, u);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(y, T, i, amp_k_powf(amp_k_ld(a, T, i), amp_k_ld(b, T, i), sq));
    } else {
        AMP_K_FOR(i, n) amp_k_st(y, T, i, amp_k_powf(amp_k_ld(a, T, i), amp_k_ld(b, T, i), sq));
    }
}

template <int T>
__global__ void amp_k_pow_bcast(amp_k_nbc g, const void *a, const void *b, void *y, bool sq) {
    AMP_K_FOR(i, g.n) {
        int64_t off[2];
        amp_k_nbc_offs<2>(g, i, 2, off);
        amp_k_st(y, T, i, amp_k_powf(amp_k_ld(a, T, off[0]), amp_k_ld(b, T, off[1]), sq));
    }
}

#define AMP_K_DT3(K, ...) {K<AMP_K_F32 __VA_ARGS__>, K<AMP_K_F16 __VA_ARGS__>, K<AMP_K_BF16 __VA_ARGS__>}

typedef void (*amp_k_pow_flat_fn)(const void *, const void *, void *, int64_t, bool);
typedef void (*amp_k_pow_bcast_fn)(amp_k_nbc, const void *, const void *, void *, bool);
static const amp_k_pow_flat_fn amp_k_pow_flats[2][AMP_K_DTYPE_COUNT] = {AMP_K_DT3(amp_k_pow_flat, , false),
                                                                       AMP_K_DT3(amp_k_pow_flat, , true)};
static const amp_k_pow_bcast_fn amp_k_pow_bcasts[AMP_K_DTYPE_COUNT] = AMP_K_DT3(amp_k_pow_bcast, );

extern "C" cudaError_t amp_k_pow(cudaStream_t stream, amp_k_dtype dt, const amp_k_nbc *g, const void *a,
                                 const void *b, void *y) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !g || g->nin != 2) return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    bool sq = true; /* b broadcast along every dim: a single element */
    for (int d = 0; d < g->rank; d++) sq = sq && (g->st[1][d] == 0 || g->dims[d] == 1);
    if (g->flat) {
        const bool vec = amp_k_aligned4(a, dt) && amp_k_aligned4(b, dt) && amp_k_aligned4(y, dt);
        return AMP_CUDA_LAUNCH_PLAIN(amp_k_pow_flats[vec][dt], amp_k_blocks4(g->n, vec), AMP_K_THREADS, 0, stream, a,
                                     b, y, g->n, sq);
    }
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_pow_bcasts[dt], amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g,
                                 a, b, y, sq);
}

/* element i of an exponent or slope of type t (amp_k_num), exactly, as a double */
__device__ __forceinline__ double amp_k_ld_num(const void *p, int t, int64_t i) {
    if (t == AMP_K_NUM_I32) return (double)((const int32_t *)p)[i];
    if (t == AMP_K_NUM_I64) return (double)((const long long *)p)[i];
    return (double)amp_k_ld(p, t, i);
}

/* v rounded once into dt (16-bit types through round-to-odd f32, as the CPU's st_float) */
__device__ __forceinline__ void amp_k_st_d(void *p, int dt, int64_t i, double v) {
    if (dt == AMP_K_F32) ((float *)p)[i] = (float)v;
    else ((uint16_t *)p)[i] = dt == AMP_K_F16 ? amp_f64_to_f16(v) : amp_f64_to_bf16(v);
}

__global__ void amp_k_pow_mixed_kernel(amp_k_nbc g, int at, int bt, const void *a, const void *b, void *y) {
    AMP_K_FOR(i, g.n) {
        int64_t off[2];
        amp_k_nbc_offs<2>(g, i, 2, off);
        amp_k_st_d(y, at, i, pow((double)amp_k_ld(a, at, off[0]), amp_k_ld_num(b, bt, off[1])));
    }
}

extern "C" cudaError_t amp_k_pow_mixed(cudaStream_t stream, amp_k_dtype dt, amp_k_num bt, const amp_k_nbc *g,
                                       const void *a, const void *b, void *y) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || (unsigned)bt >= AMP_K_NUM_COUNT || !g || g->nin != 2)
        return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_pow_mixed_kernel, amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *g, (int)dt, (int)bt, a, b, y);
}

/* ---- Clip, ClipGrad -------------------------------------------------------------------------- */

/* max(x, lo) then min(., hi), as the CPU: comparisons false for NaN, which passes */
__device__ __forceinline__ float amp_k_clipf(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

template <int T, bool VEC>
__global__ void amp_k_clip_kernel(float lo, float hi, const void *lo_p, const void *hi_p, const void *x, void *y,
                                  int64_t n) {
    if (lo_p) lo = amp_k_ld(lo_p, T, 0);
    if (hi_p) hi = amp_k_ld(hi_p, T, 0);
    if (VEC) {
        AMP_K_FOR(q, n >> 2) {
            float v[4];
            amp_k_ld4(x, T, q, v);
AMP_K_EW_UNROLL
            for (int j = 0; j < 4; j++) v[j] = amp_k_clipf(v[j], lo, hi);
            amp_k_st4(y, T, q, v);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(y, T, i, amp_k_clipf(amp_k_ld(x, T, i), lo, hi));
    } else {
        AMP_K_FOR(i, n) amp_k_st(y, T, i, amp_k_clipf(amp_k_ld(x, T, i), lo, hi));
    }
}

__device__ __forceinline__ float amp_k_clip_gradf(float g, float v, float lo, float hi) {
    return v >= lo && v <= hi ? g : 0.0f;
}

template <int T, bool VEC>
__global__ void amp_k_clip_grad_kernel(float lo, float hi, const void *lo_p, const void *hi_p, const void *dy,
                                       const void *x, void *dx, int64_t n) {
    if (lo_p) lo = amp_k_ld(lo_p, T, 0);
    if (hi_p) hi = amp_k_ld(hi_p, T, 0);
    if (VEC) {
        AMP_K_FOR(q, n >> 2) {
            float g[4], v[4];
            amp_k_ld4(dy, T, q, g);
            amp_k_ld4(x, T, q, v);
AMP_K_EW_UNROLL
            for (int j = 0; j < 4; j++) g[j] = amp_k_clip_gradf(g[j], v[j], lo, hi);
            amp_k_st4(dx, T, q, g);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(dx, T, i, amp_k_clip_gradf(amp_k_ld(dy, T, i), amp_k_ld(x, T, i), lo, hi));
    } else {
        AMP_K_FOR(i, n) amp_k_st(dx, T, i, amp_k_clip_gradf(amp_k_ld(dy, T, i), amp_k_ld(x, T, i), lo, hi));
    }
}

typedef void (*amp_k_clip_fn)(float, float, const void *, const void *, const void *, void *, int64_t);
typedef void (*amp_k_clip_grad_fn)(float, float, const void *, const void *, const void *, const void *, void *,
                                   int64_t);
static const amp_k_clip_fn amp_k_clips[2][AMP_K_DTYPE_COUNT] = {AMP_K_DT3(amp_k_clip_kernel, , false),
                                                               AMP_K_DT3(amp_k_clip_kernel, , true)};
static const amp_k_clip_grad_fn amp_k_clip_grads[2][AMP_K_DTYPE_COUNT] = {AMP_K_DT3(amp_k_clip_grad_kernel, , false),
                                                                         AMP_K_DT3(amp_k_clip_grad_kernel, , true)};

extern "C" cudaError_t amp_k_clip(cudaStream_t stream, amp_k_dtype dt, float lo, float hi, const void *lo_p,
                                  const void *hi_p, const void *x, void *y, int64_t n) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const bool vec = amp_k_aligned4(x, dt) && amp_k_aligned4(y, dt);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_clips[vec][dt], amp_k_blocks4(n, vec), AMP_K_THREADS, 0, stream, lo, hi, lo_p,
                                 hi_p, x, y, n);
}

extern "C" cudaError_t amp_k_clip_grad(cudaStream_t stream, amp_k_dtype dt, float lo, float hi, const void *lo_p,
                                       const void *hi_p, const void *dy, const void *x, void *dx, int64_t n) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const bool vec = amp_k_aligned4(dy, dt) && amp_k_aligned4(x, dt) && amp_k_aligned4(dx, dt);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_clip_grads[vec][dt], amp_k_blocks4(n, vec), AMP_K_THREADS, 0, stream, lo, hi,
                                 lo_p, hi_p, dy, x, dx, n);
}

/* ---- Where ----------------------------------------------------------------------------------- */

template <int ES> struct amp_k_uint;
template <> struct amp_k_uint<1> { typedef uint8_t t; };
template <> struct amp_k_uint<2> { typedef uint16_t t; };
template <> struct amp_k_uint<4> { typedef uint32_t t; };
template <> struct amp_k_uint<8> { typedef unsigned long long t; };

/* the values are moved as bits: any dtype of the element size */
template <int ES, bool FLAT>
__global__ void amp_k_where_kernel(amp_k_nbc g, const void *c, const void *a, const void *b, void *y) {
    typedef typename amp_k_uint<ES>::t U;
    const uint8_t *cc = (const uint8_t *)c;
    const U *aa = (const U *)a, *bb = (const U *)b;
    U *yy = (U *)y;
    AMP_K_FOR(i, g.n) {
        if (FLAT) {
            yy[i] = cc[i] ? aa[i] : bb[i];
        } else {
            int64_t off[3];
            amp_k_nbc_offs<3>(g, i, 3, off);
            yy[i] = cc[off[0]] ? aa[off[1]] : bb[off[2]];
        }
    }
}

typedef void (*amp_k_where_fn)(amp_k_nbc, const void *, const void *, const void *, void *);
static const amp_k_where_fn amp_k_wheres[2][4] = {
    {amp_k_where_kernel<1, false>, amp_k_where_kernel<2, false>, amp_k_where_kernel<4, false>,
     amp_k_where_kernel<8, false>},
    {amp_k_where_kernel<1, true>, amp_k_where_kernel<2, true>, amp_k_where_kernel<4, true>,
     amp_k_where_kernel<8, true>}};

extern "C" cudaError_t amp_k_where(cudaStream_t stream, int es, const amp_k_nbc *g, const void *c, const void *a,
                                   const void *b, void *y) {
    const int e = es == 1 ? 0 : es == 2 ? 1 : es == 4 ? 2 : es == 8 ? 3 : -1;
    if (e < 0 || !g || g->nin != 3) return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_wheres[g->flat][e], amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *g, c, a, b, y);
}

/* ---- Sum, Mean, Min, Max --------------------------------------------------------------------- */

template <int OP>
__device__ __forceinline__ float amp_k_vop(float s, float v) {
    switch (OP) {
    case AMP_K_VMIN: return amp_min_f(s, v);
    case AMP_K_VMAX: return amp_max_f(s, v);
    default: return s + v; /* Sum and Mean */
    }
}

/* One launch folds up to AMP_K_NBC_IN inputs into s, in input order; input 0 is the f32
 * running value of an earlier launch when acc_in (dtype d0), the store is f32 when acc_out.
 * MODE 0: broadcasting; 1: flat; 2: flat, four at once. The pointers are plain arguments (the
 * emulator checks them); the unrolled loops pick them by constant index. */
#define AMP_K_VAR_PARAMS                                                                                           \
    amp_k_nbc g, int nin, int d0, int dout, int scale_on, float scale, const void *p0, const void *p1,           \
        const void *p2, const void *p3, const void *p4, const void *p5, const void *p6, const void *p7, void *y

template <int OP, int T, int MODE>
__global__ void amp_k_var_kernel(AMP_K_VAR_PARAMS) {
    const void *const p[AMP_K_NBC_IN] = {p0, p1, p2, p3, p4, p5, p6, p7};
    if (MODE == 2) {
        AMP_K_FOR(q, g.n >> 2) {
            float s[4];
            amp_k_ld4(p[0], d0, q, s);
AMP_K_EW_UNROLL
            for (int j = 1; j < AMP_K_NBC_IN; j++) {
                if (j >= nin) break;
                float v[4];
                amp_k_ld4(p[j], T, q, v);
AMP_K_EW_UNROLL
                for (int e = 0; e < 4; e++) s[e] = amp_k_vop<OP>(s[e], v[e]);
            }
            if (scale_on) {
AMP_K_EW_UNROLL
                for (int e = 0; e < 4; e++) s[e] *= scale;
            }
            amp_k_st4(y, dout, q, s);
        }
    }
    const int64_t first = MODE == 2 ? amp_k_tail4(g.n) : (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t step = MODE == 2 ? g.n : (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = first; i < g.n; i += step) {
        int64_t off[AMP_K_NBC_IN];
        if (MODE == 0) {
            amp_k_nbc_offs<AMP_K_NBC_IN>(g, i, nin, off);
        } else {
AMP_K_EW_UNROLL
            for (int j = 0; j < AMP_K_NBC_IN; j++) off[j] = i;
        }
        float s = amp_k_ld(p[0], d0, off[0]);
AMP_K_EW_UNROLL
        for (int j = 1; j < AMP_K_NBC_IN; j++) {
            if (j >= nin) break;
            s = amp_k_vop<OP>(s, amp_k_ld(p[j], T, off[j]));
        }
        if (scale_on) s *= scale;
        amp_k_st(y, dout, i, s);
    }
}

typedef void (*amp_k_var_fn)(AMP_K_VAR_PARAMS);
#define AMP_K_VAR_DT(OP, M) {amp_k_var_kernel<OP, AMP_K_F32, M>, amp_k_var_kernel<OP, AMP_K_F16, M>, amp_k_var_kernel<OP, AMP_K_BF16, M>}
#define AMP_K_VAR_OPS(M) {AMP_K_VAR_DT(AMP_K_VSUM, M), AMP_K_VAR_DT(AMP_K_VMEAN, M), AMP_K_VAR_DT(AMP_K_VMIN, M), AMP_K_VAR_DT(AMP_K_VMAX, M)}
/* [mode][op][dtype] */
static const amp_k_var_fn amp_k_vars[3][AMP_K_VAROP_COUNT][AMP_K_DTYPE_COUNT] = {AMP_K_VAR_OPS(0), AMP_K_VAR_OPS(1),
                                                                                AMP_K_VAR_OPS(2)};

extern "C" int amp_k_variadic_launches(int nin) {
    return nin <= AMP_K_NBC_IN ? 1 : 1 + (nin - AMP_K_NBC_IN + AMP_K_NBC_IN - 2) / (AMP_K_NBC_IN - 1);
}

extern "C" bool amp_k_variadic_plan(int orank, const int64_t *out, int nin, const int *ranks,
                                    const int64_t *const *dims, amp_k_nbc *plans) {
    if (nin < 2 || nin > AMP_K_VAR_MAX) return false;
    int r[AMP_K_NBC_IN];
    const int64_t *d[AMP_K_NBC_IN];
    int done = 0;
    for (int l = 0; done < nin; l++) {
        int k = 0;
        if (l > 0) { /* the running value */
            r[k] = orank;
            d[k++] = out;
        }
        for (; k < AMP_K_NBC_IN && done < nin; k++, done++) {
            r[k] = ranks[done];
            d[k] = dims[done];
        }
        if (!amp_k_nbc_plan(orank, out, k, r, d, &plans[l])) return false;
    }
    return true;
}

extern "C" size_t amp_k_variadic_ws(amp_k_dtype dt, int nin, int64_t n) {
    if (dt == AMP_K_F32 || nin <= AMP_K_NBC_IN || n <= 0) return 0;
    return ((size_t)n * sizeof(float) + 7u) & ~(size_t)7u;
}

extern "C" cudaError_t amp_k_variadic(cudaStream_t stream, amp_k_varop op, amp_k_dtype dt, const amp_k_nbc *plans,
                                      int nin, const void *const *in, void *acc, void *y) {
    if ((unsigned)op >= AMP_K_VAROP_COUNT || (unsigned)dt >= AMP_K_DTYPE_COUNT || !plans || nin < 2 ||
        nin > AMP_K_VAR_MAX)
        return cudaErrorInvalidValue;
    if (plans[0].n <= 0) return cudaSuccess;
    if (dt == AMP_K_F32) acc = y; /* the running value is the output's own dtype */
    if (nin > AMP_K_NBC_IN && !acc) return cudaErrorInvalidValue;
    /* Mean's 1/n as the CPU forms it: in double for f32 (scale_out), in float for 16-bit */
    const float scale = dt == AMP_K_F32 ? (float)(1.0 / nin) : 1.0f / (float)nin;
    int done = 0;
    for (int l = 0; done < nin; l++) {
        const amp_k_nbc *g = &plans[l];
        const void *p[AMP_K_NBC_IN] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        int k = 0;
        if (l > 0) p[k++] = acc;
        for (; k < g->nin; k++) p[k] = in[done++];
        const bool last = done == nin;
        void *out = last ? y : acc;
        const int d0 = l == 0 ? (int)dt : (int)AMP_K_F32, dout = last ? (int)dt : (int)AMP_K_F32;
        bool vec = g->flat && amp_k_aligned4(out, dout);
        for (int j = 0; j < k; j++) vec = vec && amp_k_aligned4(p[j], j == 0 ? d0 : (int)dt);
        const int mode = !g->flat ? 0 : vec ? 2 : 1;
        cudaError_t e = AMP_CUDA_LAUNCH_PLAIN(amp_k_vars[mode][op][dt], amp_k_blocks4(g->n, mode == 2), AMP_K_THREADS,
                                              0, stream, *g, k, d0, dout, last && op == AMP_K_VMEAN ? 1 : 0, scale,
                                              p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], out);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

/* ---- BinaryGrad ----------------------------------------------------------------------------- */

template <int OP>
__device__ __forceinline__ float amp_k_bgrad(float g, float a, float b) {
    switch (OP) {
    case AMP_K_POW_GRAD_BASE: return amp_pow_grad_base_f(g, a, b);
    case AMP_K_POW_GRAD_EXP: return amp_pow_grad_exp_f(g, a, b);
    case AMP_K_PRELU_GRAD_X: return amp_prelu_grad_x_f(g, a, b);
    default: return amp_prelu_grad_slope_f(g, a);
    }
}

template <int OP>
__device__ __forceinline__ double amp_k_bgrad_d(double g, double a, double b) {
    switch (OP) {
    case AMP_K_POW_GRAD_BASE: return amp_pow_grad_base_d(g, a, b);
    case AMP_K_POW_GRAD_EXP: return amp_pow_grad_exp_d(g, a, b);
    case AMP_K_PRELU_GRAD_X: return amp_prelu_grad_x_d(g, a, b);
    default: return amp_prelu_grad_slope_d(g, a);
    }
}

/* DBL: b is an integer; everything in double, rounded once (backends/cpu/elementwise_grad.c) */
template <int OP, bool FLAT, bool DBL>
__global__ void amp_k_bgrad_kernel(amp_k_nbc g, int dyt, int at, int bt, int ot, const void *dy, const void *a,
                                   const void *b, void *out) {
    AMP_K_FOR(i, g.n) {
        int64_t off[3] = {i, i, i};
        if (!FLAT) amp_k_nbc_offs<3>(g, i, 3, off);
        if (DBL) {
            const double gv = amp_k_ld(dy, dyt, off[0]), av = amp_k_ld(a, at, off[1]), bv = amp_k_ld_num(b, bt, off[2]);
            amp_k_st_d(out, ot, i, amp_k_bgrad_d<OP>(gv, av, bv));
        } else {
            const float gv = amp_k_ld(dy, dyt, off[0]), av = amp_k_ld(a, at, off[1]), bv = amp_k_ld(b, bt, off[2]);
            amp_k_st(out, ot, i, amp_k_bgrad<OP>(gv, av, bv));
        }
    }
}

typedef void (*amp_k_bgrad_fn)(amp_k_nbc, int, int, int, int, const void *, const void *, const void *, void *);
#define AMP_K_BG(OP, D) {amp_k_bgrad_kernel<OP, false, D>, amp_k_bgrad_kernel<OP, true, D>}
#define AMP_K_BG_OPS(D)                                                                                         \
    {AMP_K_BG(AMP_K_POW_GRAD_BASE, D), AMP_K_BG(AMP_K_POW_GRAD_EXP, D), AMP_K_BG(AMP_K_PRELU_GRAD_X, D),        \
     AMP_K_BG(AMP_K_PRELU_GRAD_SLOPE, D)}
/* [double][op][flat] */
static const amp_k_bgrad_fn amp_k_bgrads[2][AMP_K_BGOP_COUNT][2] = {AMP_K_BG_OPS(false), AMP_K_BG_OPS(true)};

extern "C" cudaError_t amp_k_binary_grad(cudaStream_t stream, amp_k_bgop op, const amp_k_nbc *g, amp_k_dtype dyt,
                                         amp_k_dtype at, amp_k_num bt, amp_k_dtype ot, const void *dy, const void *a,
                                         const void *b, void *out) {
    if ((unsigned)op >= AMP_K_BGOP_COUNT || !g || g->nin != 3 || (unsigned)dyt >= AMP_K_DTYPE_COUNT ||
        (unsigned)at >= AMP_K_DTYPE_COUNT || (unsigned)bt >= AMP_K_NUM_COUNT || (unsigned)ot >= AMP_K_DTYPE_COUNT)
        return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    const bool dbl = bt == AMP_K_NUM_I32 || bt == AMP_K_NUM_I64;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_bgrads[dbl][op][g->flat], amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0,
                                 stream, *g, (int)dyt, (int)at, (int)bt, (int)ot, dy, a, b, out);
}

/* ---- MinMaxGrad ----------------------------------------------------------------------------- */

template <int T, bool FLAT>
__global__ void amp_k_mm_grad_kernel(amp_k_nbc g, int index, const void *p0, const void *p1, const void *p2,
                                     const void *p3, const void *p4, const void *p5, const void *p6, const void *p7,
                                     void *out) {
    const void *const p[AMP_K_NBC_IN] = {p0, p1, p2, p3, p4, p5, p6, p7};
    AMP_K_FOR(i, g.n) {
        int64_t off[AMP_K_NBC_IN];
        if (FLAT) {
            AMP_K_EW_UNROLL
            for (int j = 0; j < AMP_K_NBC_IN; j++) off[j] = i;
        } else {
            amp_k_nbc_offs<AMP_K_NBC_IN>(g, i, g.nin, off);
        }
        const float gv = amp_k_ld(p[0], T, off[0]), y = amp_k_ld(p[1], T, off[1]);
        float cnt = 0.0f, sel = 0.0f;
        AMP_K_EW_UNROLL
        for (int j = 2; j < AMP_K_NBC_IN; j++) {
            if (j >= g.nin) break;
            const float x = amp_k_ld(p[j], T, off[j]);
            const float e = (x == y || (y != y && x != x)) ? 1.0f : 0.0f;
            cnt += e;
            if (j - 2 == index) sel = e;
        }
        amp_k_st(out, T, i, sel != 0.0f ? gv / cnt : 0.0f);
    }
}

typedef void (*amp_k_mm_grad_fn)(amp_k_nbc, int, const void *, const void *, const void *, const void *,
                                 const void *, const void *, const void *, const void *, void *);
static const amp_k_mm_grad_fn amp_k_mm_grads[2][AMP_K_DTYPE_COUNT] = {AMP_K_DT3(amp_k_mm_grad_kernel, , false),
                                                                     AMP_K_DT3(amp_k_mm_grad_kernel, , true)};

extern "C" cudaError_t amp_k_min_max_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_nbc *g, int index,
                                          const void *const *in, void *out) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !g || g->nin < 3 || g->nin > AMP_K_NBC_IN || index < 0 ||
        index >= g->nin - 2)
        return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    const void *p[AMP_K_NBC_IN] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    for (int j = 0; j < g->nin; j++) p[j] = in[j];
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_mm_grads[g->flat][dt], amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0,
                                 stream, *g, index, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], out);
}

/* ---- Dropout, DropoutGrad ------------------------------------------------------------------- */

/* x * scale as the CPU rounds it: f32 from the double product; 16-bit from the f32 product, or
 * (DBL16: the seeded forward's amp_st of a double, base/elem.h) from the double product rounded
 * to f32 first, then to 16 bits (twice, as amp_st rounds) */
template <int T, bool DBL16>
__device__ __forceinline__ void amp_k_drop_st(void *y, int64_t i, bool keep, float v, double scale, float fscale) {
    if (T == AMP_K_F32) {
        ((float *)y)[i] = keep ? (float)((double)v * scale) : 0.0f;
    } else if (DBL16) {
        amp_k_st(y, T, i, keep ? (float)((double)v * scale) : 0.0f);
    } else {
        amp_k_st(y, T, i, keep ? v * fscale : 0.0f);
    }
}

template <int T>
__global__ void amp_k_drop_mask_kernel(double scale, float fscale, const uint8_t *mask_in, const void *x, void *y,
                                       int64_t n) {
    AMP_K_FOR(i, n) amp_k_drop_st<T, false>(y, i, mask_in[i] != 0, amp_k_ld(x, T, i), scale, fscale);
}

/* the content seed, once (one thread) */
__global__ void amp_k_drop_seed_kernel(const void *src, int es, int64_t n, unsigned long long *seed) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *seed = amp_dropout_content_seed(src, n, (size_t)es);
}

template <int T>
__global__ void amp_k_drop_counter_kernel(float fr, double scale, float fscale, const unsigned long long *seed,
                                          const void *x, void *y, uint8_t *mask_out, int64_t n) {
    const uint64_t s = *seed;
    AMP_K_FOR(i, n) {
        const bool keep = amp_dropout_u01(s, (uint64_t)i) >= fr;
        amp_k_drop_st<T, false>(y, i, keep, amp_k_ld(x, T, i), scale, fscale);
        if (mask_out) mask_out[i] = keep;
    }
}

/* MT19937 (backends/cpu/random.h) in one block of AMP_K_MT_THREADS: the state in shared memory,
 * each regeneration in three phases whose reads see exactly what the sequential loop sees
 * (k < 227 reads old words only; 227 <= k < 454 reads mt[k - 227], new; k >= 454 reads
 * mt[k - 227], new, and for k = 623 mt[0], new), each phase reading before a barrier and
 * writing after it; then thread t tempers words 2t and 2t + 1 into element base + t's double. */
#define AMP_K_MT_N 624
#define AMP_K_MT_THREADS 320u

__device__ __forceinline__ uint32_t amp_k_mt_twist(const uint32_t *mt, int k) {
    const uint32_t y = (mt[k] & 0x80000000u) | (mt[k + 1 < AMP_K_MT_N ? k + 1 : 0] & 0x7fffffffu);
    return mt[k + 397 < AMP_K_MT_N ? k + 397 : k + 397 - AMP_K_MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
}

__device__ __forceinline__ uint32_t amp_k_mt_temper(uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

template <int T, bool DBL16>
__global__ void amp_k_drop_mt_kernel(uint32_t seed, double ratio, double scale, float fscale, const void *x, void *y,
                                     uint8_t *mask_out, int64_t n) {
    __shared__ uint32_t mt[AMP_K_MT_N];
    const int t = (int)threadIdx.x;
    if (t == 0) {
        mt[0] = seed;
        for (int i = 1; i < AMP_K_MT_N; i++) mt[i] = 1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint32_t)i;
    }
    __syncthreads();
    for (int64_t base = 0; base < n; base += AMP_K_MT_N / 2) {
        const int start[3] = {0, 227, 454}, count[3] = {227, 227, AMP_K_MT_N - 454};
        AMP_K_EW_UNROLL
        for (int ph = 0; ph < 3; ph++) {
            const bool on = t < count[ph];
            const uint32_t v = on ? amp_k_mt_twist(mt, start[ph] + t) : 0u;
            __syncthreads();
            if (on) mt[start[ph] + t] = v;
            __syncthreads();
        }
        const int64_t i = base + t;
        if (t < AMP_K_MT_N / 2 && i < n) {
            const uint32_t a = amp_k_mt_temper(mt[2 * t]) >> 5, b = amp_k_mt_temper(mt[2 * t + 1]) >> 6;
            const double u = ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
            const bool keep = u >= ratio;
            amp_k_drop_st<T, DBL16>(y, i, keep, amp_k_ld(x, T, i), scale, fscale);
            if (mask_out) mask_out[i] = keep;
        }
    }
}

typedef void (*amp_k_drop_mask_fn)(double, float, const uint8_t *, const void *, void *, int64_t);
typedef void (*amp_k_drop_counter_fn)(float, double, float, const unsigned long long *, const void *, void *,
                                      uint8_t *, int64_t);
typedef void (*amp_k_drop_mt_fn)(uint32_t, double, double, float, const void *, void *, uint8_t *, int64_t);
static const amp_k_drop_mask_fn amp_k_drop_masks[AMP_K_DTYPE_COUNT] = AMP_K_DT3(amp_k_drop_mask_kernel, );
static const amp_k_drop_counter_fn amp_k_drop_counters[AMP_K_DTYPE_COUNT] = AMP_K_DT3(amp_k_drop_counter_kernel, );
static const amp_k_drop_mt_fn amp_k_drop_mts[2][AMP_K_DTYPE_COUNT] = {AMP_K_DT3(amp_k_drop_mt_kernel, , false),
                                                                     AMP_K_DT3(amp_k_drop_mt_kernel, , true)};

extern "C" cudaError_t amp_k_dropout_mask(cudaStream_t stream, amp_k_dtype dt, double scale, const uint8_t *mask_in,
                                          const void *x, void *y, int64_t n) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_drop_masks[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream, scale,
                                 (float)scale, mask_in, x, y, n);
}

extern "C" cudaError_t amp_k_dropout_counter(cudaStream_t stream, amp_k_dtype dt, double ratio, double scale,
                                             const void *src, int src_es, int64_t src_n, uint64_t *seed_ws,
                                             const void *x, void *y, uint8_t *mask_out, int64_t n) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !seed_ws) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    unsigned long long *seed = (unsigned long long *)seed_ws;
    cudaError_t e = AMP_CUDA_LAUNCH_PLAIN(amp_k_drop_seed_kernel, 1, 32, 0, stream, src, src_es, src_n, seed);
    if (e != cudaSuccess) return e;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_drop_counters[dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 (float)ratio, scale, (float)scale, (const unsigned long long *)seed, x, y, mask_out, n);
}

extern "C" cudaError_t amp_k_dropout_mt(cudaStream_t stream, amp_k_dtype dt, bool dbl16, uint32_t seed, double ratio,
                                        double scale, const void *x, void *y, uint8_t *mask_out, int64_t n) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_drop_mts[dbl16][dt], 1, AMP_K_MT_THREADS, 0, stream, seed, ratio, scale,
                           (float)scale, x, y, mask_out, n);
}

/* ---- fill ------------------------------------------------------------------------------------ */

template <int ES>
__global__ void amp_k_fill_kernel(void *y, unsigned long long pattern, int64_t n) {
    typedef typename amp_k_uint<ES>::t U;
    const U v = (U)pattern;
    AMP_K_FOR(i, n)((U *)y)[i] = v;
}

extern "C" cudaError_t amp_k_fill(cudaStream_t stream, int es, uint64_t pattern, void *y, int64_t n) {
    if (n <= 0) return cudaSuccess;
    const unsigned blocks = amp_k_blocks(n, AMP_K_THREADS);
    const unsigned long long v = pattern;
    switch (es) {
    case 1: return AMP_CUDA_LAUNCH_PLAIN(amp_k_fill_kernel<1>, blocks, AMP_K_THREADS, 0, stream, y, v, n);
    case 2: return AMP_CUDA_LAUNCH_PLAIN(amp_k_fill_kernel<2>, blocks, AMP_K_THREADS, 0, stream, y, v, n);
    case 4: return AMP_CUDA_LAUNCH_PLAIN(amp_k_fill_kernel<4>, blocks, AMP_K_THREADS, 0, stream, y, v, n);
    case 8: return AMP_CUDA_LAUNCH_PLAIN(amp_k_fill_kernel<8>, blocks, AMP_K_THREADS, 0, stream, y, v, n);
    default: return cudaErrorInvalidValue;
    }
}
