/* Broadcasting binary arithmetic and SumToShape, the gradient of a broadcast (kernels.h:
 * amp_k_binary, amp_k_sum_to_shape), with the host-side plans that collapse their geometry.
 *
 * Binary ops compute in f32 and round once on store, as the CPU kernels do, so f32, f16 and
 * bf16 results are the CPU's bit for bit. The common launches are flat (both operands of the
 * output's shape, four elements at once when aligned); the rest decompose the output index over
 * at most AMP_K_BC_RANK collapsed dims.
 *
 * SumToShape sums in double in a fixed order: one thread per output element when few elements
 * are summed into each, one block per output element (amp_k_block_reduce) when many are (a
 * bias gradient: a few channels, each summed over N * H * W). */
#include "backends/cuda/kernels_dev.h"

#include <string.h>

/* ---- plans (host) ---------------------------------------------------------------------------- */

extern "C" bool amp_k_bcast_plan(int r, const int64_t *out, int ar, const int64_t *ad, int br, const int64_t *bd,
                                 amp_k_bcast *g) {
    memset(g, 0, sizeof *g);
    if (r < 0 || r > AMP_K_BC_RANK || ar < 0 || br < 0 || ar > r || br > r) return false;
    bool fa[AMP_K_BC_RANK], fb[AMP_K_BC_RANK];
    int64_t n = 1;
    int cr = 0;
    for (int d = 0; d < r; d++) {
        const int64_t o = out[d];
        const int64_t a = d - (r - ar) >= 0 ? ad[d - (r - ar)] : 1, b = d - (r - br) >= 0 ? bd[d - (r - br)] : 1;
        if ((a != o && a != 1) || (b != o && b != 1) || o < 0) return false;
        n *= o;
        if (o == 1) continue; /* no index runs along it */
        const bool ka = a == o, kb = b == o;
        if (cr > 0 && fa[cr - 1] == ka && fb[cr - 1] == kb) {
            g->dims[cr - 1] *= o; /* broadcast alike: one dim */
        } else {
            g->dims[cr] = o;
            fa[cr] = ka;
            fb[cr] = kb;
            cr++;
        }
    }
    g->n = n;
    if (n == 0) return true; /* rank 0: nothing to launch */
    if (cr == 0) {
        g->dims[0] = 1;
        fa[0] = fb[0] = true;
        cr = 1;
    }
    g->rank = cr;
    int64_t sa = 1, sb = 1;
    g->flat = true;
    for (int d = cr - 1; d >= 0; d--) {
        g->sa[d] = fa[d] ? sa : 0;
        g->sb[d] = fb[d] ? sb : 0;
        if (fa[d]) sa *= g->dims[d];
        if (fb[d]) sb *= g->dims[d];
        g->flat = g->flat && fa[d] && fb[d];
    }
    return true;
}

extern "C" bool amp_k_s2s_plan(int rank, const int64_t *xd, const int64_t *td, amp_k_s2s *g) {
    memset(g, 0, sizeof *g);
    if (rank < 0 || rank > AMP_K_BC_RANK) return false;
    int64_t st[AMP_K_BC_RANK], s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= xd[d];
    }
    int last = -1; /* kind of the previous dim that runs: 0 kept, 1 reduced */
    for (int d = 0; d < rank; d++) {
        if (xd[d] == 1) continue;
        int kind;
        if (td[d] == xd[d]) kind = 0;
        else if (td[d] == 1) kind = 1;
        else return false;
        int64_t *dims = kind ? g->rd : g->kd, *str = kind ? g->rs : g->ks;
        int *cnt = kind ? &g->nr : &g->nk;
        if (kind == last) { /* adjacent in x: one dim, the inner stride */
            dims[*cnt - 1] *= xd[d];
            str[*cnt - 1] = st[d];
        } else {
            dims[*cnt] = xd[d];
            str[*cnt] = st[d];
            (*cnt)++;
        }
        last = kind;
    }
    g->m = 1;
    g->r = 1;
    for (int i = 0; i < g->nk; i++) g->m *= g->kd[i];
    for (int i = 0; i < g->nr; i++) g->r *= g->rd[i];
    return true;
}

/* ---- binary ---------------------------------------------------------------------------------- */

template <int OP>
__device__ __forceinline__ float amp_k_bin(float a, float b) {
    switch (OP) {
    case AMP_K_ADD: return a + b;
    case AMP_K_SUB: return a - b;
    case AMP_K_MUL: return a * b;
    default: return a / b;
    }
}

/* a, b and y may alias (each output element reads only its own position when they do) */
template <int OP, int T, bool VEC>
__global__ void amp_k_binary_flat(const void *a, const void *b, void *y, int64_t n) {
    if (VEC) {
        AMP_K_FOR(q, n >> 2) {
            float u[4], v[4];
            amp_k_ld4(a, T, q, u);
            amp_k_ld4(b, T, q, v);
            for (int j = 0; j < 4; j++) u[j] = amp_k_bin<OP>(u[j], v[j]);
            amp_k_st4(y, T, q, u);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(y, T, i, amp_k_bin<OP>(amp_k_ld(a, T, i), amp_k_ld(b, T, i)));
    } else {
        AMP_K_FOR(i, n) amp_k_st(y, T, i, amp_k_bin<OP>(amp_k_ld(a, T, i), amp_k_ld(b, T, i)));
    }
}

template <int OP, int T>
__global__ void amp_k_binary_bcast(amp_k_bcast g, const void *a, const void *b, void *y) {
    AMP_K_FOR(i, g.n) {
        int64_t rem = i, oa = 0, ob = 0;
        for (int d = g.rank - 1; d >= 0; d--) {
            const int64_t q = rem / g.dims[d], c = rem - q * g.dims[d];
            rem = q;
            oa += c * g.sa[d];
            ob += c * g.sb[d];
        }
        amp_k_st(y, T, i, amp_k_bin<OP>(amp_k_ld(a, T, oa), amp_k_ld(b, T, ob)));
    }
}

typedef void (*amp_k_flat_fn)(const void *, const void *, void *, int64_t);
typedef void (*amp_k_bcast_fn)(amp_k_bcast, const void *, const void *, void *);

#define AMP_K_BIN_DT(K, OP, ...) {K<OP, AMP_K_F32 __VA_ARGS__>, K<OP, AMP_K_F16 __VA_ARGS__>, K<OP, AMP_K_BF16 __VA_ARGS__>}
#define AMP_K_BIN_OPS(K, ...)                                                                          \
    {AMP_K_BIN_DT(K, AMP_K_ADD, __VA_ARGS__), AMP_K_BIN_DT(K, AMP_K_SUB, __VA_ARGS__),                  \
     AMP_K_BIN_DT(K, AMP_K_MUL, __VA_ARGS__), AMP_K_BIN_DT(K, AMP_K_DIV, __VA_ARGS__)}

/* [four at once][op][dtype] and [op][dtype] */
static const amp_k_flat_fn amp_k_flat_table[2][AMP_K_BINOP_COUNT][AMP_K_DTYPE_COUNT] = {
    AMP_K_BIN_OPS(amp_k_binary_flat, , false), AMP_K_BIN_OPS(amp_k_binary_flat, , true)};
static const amp_k_bcast_fn amp_k_bcast_table[AMP_K_BINOP_COUNT][AMP_K_DTYPE_COUNT] = AMP_K_BIN_OPS(amp_k_binary_bcast, );

extern "C" cudaError_t amp_k_binary(cudaStream_t stream, amp_k_binop op, amp_k_dtype dt, const amp_k_bcast *g,
                                    const void *a, const void *b, void *y) {
    if ((unsigned)op >= AMP_K_BINOP_COUNT || (unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    if (g->flat) {
        const bool vec = amp_k_aligned4(a, dt) && amp_k_aligned4(b, dt) && amp_k_aligned4(y, dt);
        return AMP_CUDA_LAUNCH_PLAIN(amp_k_flat_table[vec][op][dt], amp_k_blocks4(g->n, vec), AMP_K_THREADS, 0, stream,
                                     a, b, y, g->n);
    }
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_bcast_table[op][dt], amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *g, a, b, y);
}

/* ---- SumToShape ------------------------------------------------------------------------------ */

/* x's offset of output element j (kept dims) and of reduced position t (reduced dims) */
__device__ __forceinline__ int64_t amp_k_s2s_off(const int64_t *dims, const int64_t *str, int nd, int64_t j) {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        const int64_t q = j / dims[d];
        off += (j - q * dims[d]) * str[d];
        j = q;
    }
    return off;
}

/* one thread per output element, the reduced positions in order */
template <int T>
__global__ void amp_k_s2s_thread(amp_k_s2s g, const void *x, void *r) {
    AMP_K_FOR(j, g.m) {
        const int64_t base = amp_k_s2s_off(g.kd, g.ks, g.nk, j);
        double s = 0.0;
        for (int64_t t = 0; t < g.r; t++) s += (double)amp_k_ld(x, T, base + amp_k_s2s_off(g.rd, g.rs, g.nr, t));
        amp_k_st(r, T, j, (float)s);
    }
}

/* one block per output element: its threads stride over the reduced positions, then reduce */
template <int T>
__global__ void amp_k_s2s_block(amp_k_s2s g, const void *x, void *r) {
    __shared__ double sh[32];
    for (int64_t j = blockIdx.x; j < g.m; j += gridDim.x) {
        const int64_t base = amp_k_s2s_off(g.kd, g.ks, g.nk, j);
        double s = 0.0;
        for (int64_t t = threadIdx.x; t < g.r; t += blockDim.x)
            s += (double)amp_k_ld(x, T, base + amp_k_s2s_off(g.rd, g.rs, g.nr, t));
        s = amp_k_block_reduce<amp_k_sum_op>(s, sh);
        if (threadIdx.x == 0) amp_k_st(r, T, j, (float)s);
    }
}

typedef void (*amp_k_s2s_fn)(amp_k_s2s, const void *, void *);
static const amp_k_s2s_fn amp_k_s2s_threads[AMP_K_DTYPE_COUNT] = {amp_k_s2s_thread<AMP_K_F32>,
                                                                  amp_k_s2s_thread<AMP_K_F16>,
                                                                  amp_k_s2s_thread<AMP_K_BF16>};
static const amp_k_s2s_fn amp_k_s2s_blocks[AMP_K_DTYPE_COUNT] = {amp_k_s2s_block<AMP_K_F32>, amp_k_s2s_block<AMP_K_F16>,
                                                                 amp_k_s2s_block<AMP_K_BF16>};

extern "C" cudaError_t amp_k_sum_to_shape(cudaStream_t stream, amp_k_dtype dt, const amp_k_s2s *g, const void *x,
                                          void *r) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    if (g->m <= 0) return cudaSuccess;
    /* a block per element once an element sums a warp's worth or more, and there are too few
     * elements to fill the device thread by thread */
    if (g->r >= 32 && g->m < 64 * 1024) {
        const unsigned threads = amp_k_row_threads(g->r);
        return AMP_CUDA_LAUNCH(amp_k_s2s_blocks[dt], amp_k_blocks(g->m, 1), threads, 0, stream, *g, x, r);
    }
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_s2s_threads[dt], amp_k_blocks(g->m, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *g,
                                 x, r);
}
