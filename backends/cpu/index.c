/* CPU kernels of the index family: GatherND, ScatterND, TopK, ReverseSequence and MaxUnpool
 * (Scatter of opsets 9-10 runs on ScatterElements' kernel, backends/cpu/gather.c). Index
 * values are checked before anything is read or written through them; data movement copies
 * raw elements, so every dtype goes the same way. */
#include <stdbool.h>
#include <string.h>

#include "backends/cpu/index.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"

#define PAR_MIN_WORK (1 << 15)

static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es) {
    switch (es) {
    case 1: ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]; break;
    case 2: ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]; break;
    case 4: ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]; break;
    default: ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]; break;
    }
}

static int64_t prod(int from, int to, const int64_t *dims) {
    int64_t n = 1;
    for (int d = from; d < to; d++) n *= dims[d];
    return n;
}

/* ---- GatherND, ScatterND -------------------------------------------------------------------- */

/* The addressing of GatherND and ScatterND: the tuples of `indices` (kk values each, the last
 * dim) address data dims [b, b + kk); each tuple picks a slice of `slice` elements. */
typedef struct nd_geom {
    int b, kk;
    int64_t batches;       /* product of the b batch dims */
    int64_t per_batch;     /* tuples per batch */
    int64_t batch_stride;  /* data elements per batch */
    int64_t slice;         /* elements per tuple */
    int64_t len[AMP_MAX_RANK], stride[AMP_MAX_RANK]; /* of the indexed dims */
} nd_geom;

static amp_status nd_setup(amp_kernel *k, int rank, const int64_t *xdims, const amp_tensor *ind, int64_t b,
                           nd_geom *g) {
    int q = ind->rank;
    if (rank < 1 || q < 1 || b < 0 || b >= rank || b >= q)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "ranks %d and %d do not fit batch_dims %lld", rank, q, (long long)b);
    int64_t kk = ind->dims[q - 1];
    if (kk > rank - b) return amp_kernel_fail(k, AMP_ERR_SHAPE, "index tuples are longer than the data's rank");
    for (int d = 0; d < b; d++)
        if (ind->dims[d] != xdims[d]) return amp_kernel_fail(k, AMP_ERR_SHAPE, "batch dim %d differs", d);
    int64_t xst[AMP_MAX_RANK];
    amp_strides(rank, xdims, xst);
    g->b = (int)b;
    g->kk = (int)kk;
    g->batches = prod(0, g->b, xdims);
    g->per_batch = prod(g->b, q - 1, ind->dims);
    g->batch_stride = prod(g->b, rank, xdims);
    g->slice = prod(g->b + g->kk, rank, xdims);
    for (int j = 0; j < g->kk; j++) {
        g->len[j] = xdims[g->b + j];
        g->stride[j] = xst[g->b + j];
    }
    /* every index within [-len, len) of its dim */
    const int64_t tuples = g->batches * g->per_batch;
    for (int64_t t = 0; t < tuples; t++)
        for (int j = 0; j < g->kk; j++) {
            int64_t v = amp_ldi(ind->dtype, ind->data, t * g->kk + j);
            if (v < -g->len[j] || v >= g->len[j])
                return amp_kernel_fail(k, AMP_ERR_INVALID_ARG,
                                       "index %lld at position %lld is out of range [%lld, %lld) of data dim %d",
                                       (long long)v, (long long)(t * g->kk + j), (long long)-g->len[j],
                                       (long long)g->len[j], g->b + j);
        }
    return AMP_OK;
}

/* Data offset (elements) of the slice tuple t addresses; indices already checked. */
static inline int64_t nd_offset(const nd_geom *g, const amp_tensor *ind, int64_t t) {
    int64_t off = (t / g->per_batch) * g->batch_stride;
    for (int j = 0; j < g->kk; j++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, t * g->kk + j);
        off += (v < 0 ? v + g->len[j] : v) * g->stride[j];
    }
    return off;
}

/* The checks of nd_setup on a tensor of dims[rank] (declared in backends/cpu/index.h). */
amp_status amp_cpu_nd_check(amp_kernel *k, int rank, const int64_t *dims, const amp_tensor *ind, int64_t batch_dims,
                            int64_t *tuples, int64_t *slice) {
    nd_geom g;
    amp_status s = nd_setup(k, rank, dims, ind, batch_dims, &g);
    if (s) return s;
    *tuples = g.batches * g.per_batch;
    *slice = g.slice;
    return AMP_OK;
}

int64_t amp_cpu_nd_offset(int rank, const int64_t *dims, const amp_tensor *ind, int64_t batch_dims, int64_t t) {
    int b = (int)batch_dims, q = ind->rank;
    int64_t kk = ind->dims[q - 1], per_batch = prod(b, q - 1, ind->dims), st[AMP_MAX_RANK];
    amp_strides(rank, dims, st);
    int64_t off = b > 0 ? (t / per_batch) * st[b - 1] : 0;
    for (int64_t j = 0; j < kk; j++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, t * kk + j);
        off += (v < 0 ? v + dims[b + j] : v) * st[b + j];
    }
    return off;
}

amp_status amp_cpu_gather_nd(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->in[1];
    amp_tensor *y = k->out[0];
    nd_geom g;
    amp_status s = nd_setup(k, x->rank, x->dims, ind, amp_attr_int(k->n, "batch_dims", 0), &g);
    if (s) return s;
    int64_t tuples = g.batches * g.per_batch;
    if (y->dtype != x->dtype || y->numel != tuples * g.slice)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "output does not match");
    size_t es = amp_dtype_size(x->dtype), chunk = (size_t)g.slice * es;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    if (g.slice == 1) {
        AMP_PAR_FOR(tuples >= PAR_MIN_WORK, num_threads(k->threads),
        for (int64_t t = 0; t < tuples; t++) copy_elem(yd, t, xd, nd_offset(&g, ind, t), es););
    } else {
        AMP_PAR_FOR(y->numel >= PAR_MIN_WORK && tuples > 1, num_threads(k->threads),
        for (int64_t t = 0; t < tuples; t++)
            memcpy(yd + (size_t)t * chunk, xd + (size_t)nd_offset(&g, ind, t) * es, chunk););
    }
    return AMP_OK;
}

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static int parse_reduction(const char *r) {
    return !strcmp(r, "none") ? RED_NONE
           : !strcmp(r, "add") ? RED_ADD
           : !strcmp(r, "mul") ? RED_MUL
           : !strcmp(r, "max") ? RED_MAX
           : !strcmp(r, "min") ? RED_MIN
                               : -1;
}

/* y[o + i] = f(y[o + i], u[p + i]) for i < n. Floats compute in double and round once on
 * store (exact for f16/bf16/f32 sums and products); integers wrap as two's complement; u64
 * compares unsigned. max/min propagate NaN as numpy's maximum/minimum do. */
static void reduce_slice(amp_dtype dt, int red, void *y, int64_t o, const void *u, int64_t p, int64_t n) {
    if (dt == AMP_F32) {
        float *yy = (float *)y + o;
        const float *uu = (const float *)u + p;
        for (int64_t i = 0; i < n; i++) {
            float a = yy[i], b = uu[i];
            switch (red) {
            case RED_ADD: yy[i] = a + b; break;
            case RED_MUL: yy[i] = a * b; break;
            case RED_MAX: yy[i] = a != a || b != b ? a + b : (a > b ? a : b); break;
            default: yy[i] = a != a || b != b ? a + b : (a < b ? a : b); break;
            }
        }
    } else if (amp_dtype_is_float(dt)) {
        for (int64_t i = 0; i < n; i++) {
            double a = amp_ld(dt, y, o + i), b = amp_ld(dt, u, p + i), r;
            switch (red) {
            case RED_ADD: r = a + b; break;
            case RED_MUL: r = a * b; break;
            case RED_MAX: r = a != a || b != b ? a + b : (a > b ? a : b); break;
            default: r = a != a || b != b ? a + b : (a < b ? a : b); break;
            }
            amp_st(dt, y, o + i, r);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            int64_t a = amp_ldi(dt, y, o + i), b = amp_ldi(dt, u, p + i), r;
            bool a_gt = dt == AMP_U64 ? (uint64_t)a > (uint64_t)b : a > b;
            switch (red) {
            case RED_ADD: r = (int64_t)((uint64_t)a + (uint64_t)b); break;
            case RED_MUL: r = (int64_t)((uint64_t)a * (uint64_t)b); break;
            case RED_MAX: r = a_gt ? a : b; break;
            default: r = a_gt ? b : a; break;
            }
            amp_sti(dt, y, o + i, r);
        }
    }
}

amp_status amp_cpu_scatter_nd(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->in[1], *upd = k->in[2];
    amp_tensor *y = k->out[0];
    int red = parse_reduction(amp_attr_str(k->n, "reduction", "none"));
    if (red < 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unknown reduction");
    nd_geom g;
    amp_status s = nd_setup(k, x->rank, x->dims, ind, 0, &g);
    if (s) return s;
    int64_t tuples = g.per_batch;
    if (upd->dtype != x->dtype || y->dtype != x->dtype || y->numel != x->numel || upd->numel != tuples * g.slice)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "updates or output do not match");
    /* in place when the planner gave the output data's buffer */
    if (y->data != x->data && x->nbytes) memcpy(y->data, x->data, x->nbytes);
    size_t es = amp_dtype_size(x->dtype);
    /* tuples in order, so repeated indices resolve as the spec's loop does */
    for (int64_t t = 0; t < tuples; t++) {
        int64_t o = nd_offset(&g, ind, t), p = t * g.slice;
        if (red == RED_NONE) {
            memcpy((uint8_t *)y->data + (size_t)o * es, (const uint8_t *)upd->data + (size_t)p * es,
                   (size_t)g.slice * es);
        } else if (g.slice >= PAR_MIN_WORK && k->threads > 1) {
            /* one large slice: split it, the elements are independent */
            int nt = k->threads;
            int64_t part = (g.slice + nt - 1) / nt;
#pragma omp parallel for num_threads(nt)
            for (int w = 0; w < nt; w++) {
                int64_t lo = (int64_t)w * part, n = g.slice - lo < part ? g.slice - lo : part;
                if (n > 0) reduce_slice(x->dtype, red, y->data, o + lo, upd->data, p + lo, n);
            }
        } else {
            reduce_slice(x->dtype, red, y->data, o, upd->data, p, g.slice);
        }
    }
    return AMP_OK;
}

/* ---- TopK ----------------------------------------------------------------------------------- */

/* An unsigned key whose order is the value order of every dtype: floats by sign and magnitude
 * (-0 equal to +0, NaN above +inf, as numpy's sort places it), signed integers offset by
 * 2^63. */
static inline uint64_t f32_key(uint32_t b) {
    if ((b & 0x7fffffffu) > 0x7f800000u) return UINT64_MAX;
    if (b == 0x80000000u) b = 0;
    return b & 0x80000000u ? (uint64_t)(~b & 0xffffffffu) : (uint64_t)(b | 0x80000000u);
}

static inline uint64_t half_key(uint16_t b, uint16_t inf) {
    if ((b & 0x7fffu) > inf) return UINT64_MAX;
    if (b == 0x8000u) b = 0;
    return b & 0x8000u ? (uint64_t)(uint16_t)~b : (uint64_t)(b | 0x8000u);
}

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE uint64_t order_key(amp_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case AMP_F32: {
        uint32_t b;
        memcpy(&b, (const float *)p + i, 4);
        return f32_key(b);
    }
    case AMP_F64: {
        uint64_t b;
        memcpy(&b, (const double *)p + i, 8);
        if ((b & 0x7fffffffffffffffull) > 0x7ff0000000000000ull) return UINT64_MAX;
        if (b == 0x8000000000000000ull) b = 0;
        return b >> 63 ? ~b : b | 0x8000000000000000ull;
    }
    case AMP_F16: return half_key(((const uint16_t *)p)[i], 0x7c00u);
    case AMP_BF16: return half_key(((const uint16_t *)p)[i], 0x7f80u);
    case AMP_U64: return ((const uint64_t *)p)[i];
    case AMP_U32: return ((const uint32_t *)p)[i];
    case AMP_U16: return ((const uint16_t *)p)[i];
    case AMP_U8: return ((const uint8_t *)p)[i];
    default: return (uint64_t)amp_ldi(dt, p, i) ^ 0x8000000000000000ull;
    }
}

/* One row of TopK: n elements at x[base + j * step]; the k winners' positions go to
 * idx[i * istep], best first. "Better" is a larger key (for smallest, the complement) and, on
 * equal keys, the lower position. The selection is a heap of k positions with the worst at its
 * root: an element costs one comparison with the root unless it enters, O(n log k) in all,
 * then a heapsort of the k winners. Keys are recomputed from x (a load and a few bit
 * operations), so the kernel needs no scratch beyond Indices itself. */
typedef struct topk_row {
    amp_dtype dt;
    const void *x;
    int64_t base, step, n, k;
    uint64_t flip; /* 0 for largest, all ones for smallest */
    int64_t *idx;
    int64_t istep;
} topk_row;

/* dt is a constant where it matters (the f32 instance below), so the switch folds away */
static ALWAYS_INLINE uint64_t row_key(const topk_row *r, amp_dtype dt, int64_t j) {
    return order_key(dt, r->x, r->base + j * r->step) ^ r->flip;
}

/* position a (key ka) is worse than position b (key kb) */
static inline bool worse(uint64_t ka, int64_t a, uint64_t kb, int64_t b) { return ka < kb || (ka == kb && a > b); }

static ALWAYS_INLINE void sift_down(const topk_row *r, amp_dtype dt, int64_t m, int64_t i) {
    int64_t *h = r->idx, st = r->istep;
    int64_t hi = h[i * st];
    uint64_t ki = row_key(r, dt, hi);
    for (;;) {
        int64_t l = 2 * i + 1;
        if (l >= m) break;
        int64_t c = l, hc = h[l * st];
        uint64_t kc = row_key(r, dt, hc);
        if (l + 1 < m) {
            int64_t h2 = h[(l + 1) * st];
            uint64_t k2 = row_key(r, dt, h2);
            if (worse(k2, h2, kc, hc)) c = l + 1, hc = h2, kc = k2;
        }
        if (!worse(kc, hc, ki, hi)) break;
        h[i * st] = hc;
        i = c;
    }
    h[i * st] = hi;
}

static ALWAYS_INLINE void topk_select(const topk_row *r, amp_dtype dt) {
    int64_t k = r->k, *h = r->idx, st = r->istep;
    if (k == 0) return;
    for (int64_t j = 0; j < k; j++) h[j * st] = j;
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(r, dt, k, i);
    uint64_t root = row_key(r, dt, h[0]);
    for (int64_t j = k; j < r->n; j++) {
        uint64_t kj = row_key(r, dt, j);
        /* j follows every heap member, so it enters only on a strictly larger key */
        if (kj <= root) continue;
        h[0] = j;
        sift_down(r, dt, k, 0);
        root = row_key(r, dt, h[0]);
    }
    /* heapsort: the worst goes last, so the row ends best first */
    for (int64_t m = k - 1; m > 0; m--) {
        int64_t t = h[0];
        h[0] = h[m * st];
        h[m * st] = t;
        sift_down(r, dt, m, 0);
    }
}

static void topk_select_f32(const topk_row *r) { topk_select(r, AMP_F32); }
static void topk_select_any(const topk_row *r) { topk_select(r, r->dt); }

/* The kernel keeps its selection in Indices; without that output it needs room of its own, one
 * int64 per output element. */
amp_status amp_cpu_ws_top_k(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *vals = k->out[0];
    bool have_ind = k->nout > 1 && k->n->outputs && k->n->outputs[1] >= 0;
    *bytes = 0;
    if (have_ind || !vals) return AMP_OK;
    return amp_cpu_ws_elems(k, vals->numel, sizeof(int64_t), bytes);
}

amp_status amp_cpu_top_k(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *vals = k->out[0], *ind = k->nout > 1 ? k->out[1] : NULL;
    const amp_tensor *shape = vals ? vals : ind;
    if (!shape) return AMP_OK;
    int64_t a = amp_attr_int(k->n, "axis", -1);
    if (a < -x->rank || a >= x->rank) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis out of range");
    int axis = (int)(a < 0 ? a + x->rank : a);
    int64_t kk = shape->dims[axis], n = x->dims[axis];
    if (shape->rank != x->rank || kk > n) return amp_kernel_fail(k, AMP_ERR_SHAPE, "outputs do not match");
    if (k->nin > 1 && k->in[1]) {
        const amp_tensor *kt = k->in[1];
        if (kt->numel != 1 || amp_ldi(kt->dtype, kt->data, 0) != kk)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "K differs from the value the plan was built for");
    }
    int64_t outer = prod(0, axis, x->dims), inner = prod(axis + 1, x->rank, x->dims);
    int64_t rows = outer * inner;
    if (kk == 0 || rows == 0) return AMP_OK;
    int64_t *idx_all = ind ? ind->data : k->ws;
    if (!ind && (!k->ws || k->ws_bytes < (size_t)(rows * kk) * sizeof(int64_t)))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    uint64_t flip = amp_attr_int(k->n, "largest", 1) ? 0 : UINT64_MAX;
    size_t es = amp_dtype_size(x->dtype);
    AMP_PAR_FOR(rows > 1 && rows * n >= PAR_MIN_WORK, num_threads(k->threads),
    for (int64_t rw = 0; rw < rows; rw++) {
        int64_t o = rw / inner, i = rw % inner;
        topk_row r = {.dt = x->dtype, .x = x->data, .base = o * n * inner + i, .step = inner, .n = n, .k = kk,
                      .flip = flip, .idx = idx_all + o * kk * inner + i, .istep = inner};
        if (x->dtype == AMP_F32) topk_select_f32(&r);
        else topk_select_any(&r);
        if (vals)
            for (int64_t j = 0; j < kk; j++)
                copy_elem(vals->data, o * kk * inner + j * inner + i, x->data, r.base + r.idx[j * inner] * inner, es);
    });
    return AMP_OK;
}

/* ---- ReverseSequence ------------------------------------------------------------------------ */

amp_status amp_cpu_reverse_sequence(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *sl = k->in[1];
    amp_tensor *y = k->out[0];
    int ba = (int)amp_attr_int(k->n, "batch_axis", 1), ta = (int)amp_attr_int(k->n, "time_axis", 0);
    if (x->rank < 2 || ba == ta || (ba != 0 && ba != 1) || (ta != 0 && ta != 1) || y->numel != x->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "shapes or axes do not match");
    int64_t d0 = x->dims[0], d1 = x->dims[1], T = x->dims[ta], B = x->dims[ba];
    if (sl->numel != B) return amp_kernel_fail(k, AMP_ERR_SHAPE, "sequence_lens has %lld values for batch %lld",
                                               (long long)sl->numel, (long long)B);
    for (int64_t b = 0; b < B; b++) {
        int64_t v = amp_ldi(sl->dtype, sl->data, b);
        if (v < 0 || v > T)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "sequence length %lld of batch %lld is outside [0, %lld]",
                                   (long long)v, (long long)b, (long long)T);
    }
    int64_t inner = prod(2, x->rank, x->dims);
    size_t es = amp_dtype_size(x->dtype), chunk = (size_t)inner * es;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    AMP_PAR_FOR(x->numel >= PAR_MIN_WORK && d0 * d1 > 1, num_threads(k->threads),
    for (int64_t p = 0; p < d0 * d1; p++) {
        int64_t i0 = p / d1, i1 = p % d1;
        int64_t b = ba == 0 ? i0 : i1, t = ta == 0 ? i0 : i1;
        int64_t len = amp_ldi(sl->dtype, sl->data, b);
        int64_t ts = t < len ? len - 1 - t : t;
        int64_t src = ta == 0 ? ts * d1 + i1 : i0 * d1 + ts;
        memcpy(yd + (size_t)p * chunk, xd + (size_t)src * chunk, chunk);
    });
    return AMP_OK;
}

/* ---- MaxUnpool ------------------------------------------------------------------------------ */

/* The unpooled dims of X, or of I, which has X's shape (inference checked the attributes);
 * MaxUnpoolGrad's kernel uses it too. */
amp_status amp_cpu_unpooled_dims(const amp_kernel *k, const amp_tensor *x, int64_t *dims) {
    int sp = x->rank - 2;
    const int64_t *ks = NULL, *st = NULL, *pd = NULL;
    int nk = amp_attr_ints(k->n, "kernel_shape", &ks), ns = amp_attr_ints(k->n, "strides", &st);
    int np = amp_attr_ints(k->n, "pads", &pd);
    if (sp < 1 || nk != sp || (ns >= 0 && ns != sp) || (np >= 0 && np != 2 * sp))
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "kernel_shape, strides or pads do not fit rank %d", x->rank);
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int d = 0; d < sp; d++) {
        int64_t s = ns >= 0 ? st[d] : 1, p = np >= 0 ? pd[d] + pd[d + sp] : 0;
        dims[2 + d] = (x->dims[2 + d] - 1) * s - p + ks[d];
        if (dims[2 + d] < 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unpooled dim %d is negative", d);
    }
    return AMP_OK;
}

/* Offset in a tensor of dims `out` of flat position i of a tensor of dims `in` placed at its
 * origin (in[d] <= out[d]). */
static inline int64_t corner_offset(int rank, const int64_t *in, const int64_t *ost, int64_t i) {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        off += (i % in[d]) * ost[d];
        i /= in[d];
    }
    return off;
}

amp_status amp_cpu_max_unpool(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->in[1];
    amp_tensor *y = k->out[0];
    int64_t ud[AMP_MAX_RANK];
    amp_status s = amp_cpu_unpooled_dims(k, x, ud);
    if (s) return s;
    bool same = y->rank == x->rank, corner = false;
    for (int d = 0; same && d < x->rank; d++) {
        if (y->dims[d] < ud[d]) same = false;
        corner |= y->dims[d] != ud[d];
    }
    if (!same || ind->numel != x->numel || y->dtype != x->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "output or indices do not match");
    int64_t total = prod(0, x->rank, ud);
    for (int64_t p = 0; p < ind->numel; p++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, p);
        if (v < 0 || v >= total)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "index %lld at position %lld is out of range [0, %lld)",
                                   (long long)v, (long long)p, (long long)total);
    }
    if (y->nbytes) memset(y->data, 0, y->nbytes); /* zero bits are 0.0 in every float dtype */
    size_t es = amp_dtype_size(x->dtype);
    int64_t yst[AMP_MAX_RANK];
    amp_strides(y->rank, y->dims, yst);
    /* in order, so that a repeated index keeps the last value, as the reference does */
    for (int64_t p = 0; p < x->numel; p++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, p);
        copy_elem(y->data, corner ? corner_offset(x->rank, ud, yst, v) : v, x->data, p, es);
    }
    return AMP_OK;
}
