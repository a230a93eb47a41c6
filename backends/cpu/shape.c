/* CPU kernels for the shape and data-movement ops. They move bytes without interpreting them,
 * so one code path serves every dtype; inner loops are specialised on the element size
 * (1, 2, 4, 8 bytes) so that each element moves as a single load and store. */
#include <stdbool.h>
#include <string.h>

#include "ir/ops/shape.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

#if defined(__GNUC__)
#else
#define AMP_CPU_INLINE static inline
#endif

/* Below this many bytes, a thread team costs more than it saves. */
#define PAR_BYTES ((int64_t)1 << 18)

/* dst[j] = src[j * stride] for j < n, elements of es bytes (stride in elements, any sign).
 * Called with a constant es, memcpy becomes one load and store, and stays free of aliasing
 * trouble whatever the dtype. */
AMP_CPU_INLINE void gather_es(uint8_t *dst, const uint8_t *src, int64_t n, int64_t stride, size_t es) {
    for (int64_t j = 0; j < n; j++) memcpy(dst + j * (int64_t)es, src + j * stride * (int64_t)es, es);
}
static void gather(uint8_t *dst, const uint8_t *src, int64_t n, int64_t stride, size_t es) {
    switch (es) {
    case 1: gather_es(dst, src, n, stride, 1); break;
    case 2: gather_es(dst, src, n, stride, 2); break;
    case 4: gather_es(dst, src, n, stride, 4); break;
    case 8: gather_es(dst, src, n, stride, 8); break;
    default: gather_es(dst, src, n, stride, es); break;
    }
}

/* Fill n elements of es bytes at dst with the element at v, doubling the filled prefix. */
static void fill_pattern(uint8_t *dst, const uint8_t *v, int64_t n, size_t es) {
    if (n <= 0) return;
    size_t total = (size_t)n * es, done = es;
    memcpy(dst, v, es);
    while (done < total) {
        size_t c = done < total - done ? done : total - done;
        memcpy(dst + done, dst, c);
        done += c;
    }
}

/* Element offset (in the source) of the first element of output row `row`, where rows are the
 * last output dim and the source walks stride[d] per step of output dim d; dims[d] < r-1 only. */
static int64_t row_offset(int64_t row, int r, const int64_t *dims, const int64_t *stride) {
    int64_t off = 0;
    for (int d = r - 2; d >= 0; d--) {
        int64_t i = row % dims[d];
        row /= dims[d];
        off += i * stride[d];
    }
    return off;
}

/* ---- Identity, Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------ */

static void par_copy(const amp_kernel *k, void *dst, const void *src, size_t n) {
    if (!n) return;
    if ((int64_t)n < 8 * PAR_BYTES || amp_cpu_threads(k) == 1) {
        memcpy(dst, src, n);
        return;
    }
    int64_t chunks = amp_cpu_threads(k) * 4, per = ((int64_t)n + chunks - 1) / chunks;
#pragma omp parallel for num_threads(amp_cpu_threads(k))
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * per, hi = lo + per < (int64_t)n ? lo + per : (int64_t)n;
        if (lo < hi) memcpy((uint8_t *)dst + lo, (const uint8_t *)src + lo, (size_t)(hi - lo));
    }
}

amp_status amp_cpu_copy(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (x->nbytes != y->nbytes || x->dtype != y->dtype)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output of %zu bytes for an input of %zu", y->nbytes, x->nbytes);
    /* the planner aliases output and input when the reshape is free */
    if (y->data != x->data) par_copy(k, y->data, x->data, x->nbytes);
    return AMP_OK;
}

/* ---- Transpose ------------------------------------------------------------------------------ */

#define TILE 32

/* Tile (bi, br, bc) of a batch of R x C matrices into C x R. */
AMP_CPU_INLINE void transpose_tile(uint8_t *dst, const uint8_t *src, int64_t R, int64_t C, int64_t r0, int64_t c0,
                               size_t es) {
    int64_t r1 = r0 + TILE < R ? r0 + TILE : R, c1 = c0 + TILE < C ? c0 + TILE : C;
    for (int64_t cc = c0; cc < c1; cc++)
        for (int64_t rr = r0; rr < r1; rr++)
            memcpy(dst + (cc * R + rr) * (int64_t)es, src + (rr * C + cc) * (int64_t)es, es);
}

static void transpose_batched_2d(const amp_kernel *k, uint8_t *dst, const uint8_t *src, int64_t B, int64_t R,
                                 int64_t C, size_t es) {
    int64_t tr = (R + TILE - 1) / TILE, tc = (C + TILE - 1) / TILE, tiles = B * tr * tc;
    bool big = (int64_t)(B * R * C * (int64_t)es) >= PAR_BYTES;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t t = 0; t < tiles; t++) {
        int64_t b = t / (tr * tc), rem = t % (tr * tc);
        int64_t r0 = rem / tc * TILE, c0 = rem % tc * TILE;
        uint8_t *d = dst + b * R * C * (int64_t)es;
        const uint8_t *s = src + b * R * C * (int64_t)es;
        switch (es) {
        case 1: transpose_tile(d, s, R, C, r0, c0, 1); break;
        case 2: transpose_tile(d, s, R, C, r0, c0, 2); break;
        case 4: transpose_tile(d, s, R, C, r0, c0, 4); break;
        case 8: transpose_tile(d, s, R, C, r0, c0, 8); break;
        default: transpose_tile(d, s, R, C, r0, c0, es); break;
        }
    });
}

/* Any permutation: one output row at a time, reading the source with the permuted strides;
 * when the last dim stays last the row is one contiguous copy. */
static void strided_rows(const amp_kernel *k, uint8_t *dst, const uint8_t *src, int r, const int64_t *odims,
                         const int64_t *istride, int64_t numel, size_t es) {
    int64_t L = odims[r - 1], rows = numel / L;
    bool big = numel * (int64_t)es >= PAR_BYTES;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = row_offset(row, r, odims, istride);
        uint8_t *d = dst + row * L * (int64_t)es;
        const uint8_t *s = src + off * (int64_t)es;
        if (istride[r - 1] == 1) memcpy(d, s, (size_t)L * es);
        else gather(d, s, L, istride[r - 1], es);
    });
}

amp_status amp_cpu_transpose(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int r = x->rank;
    int64_t perm[AMP_MAX_RANK];
    const int64_t *p;
    if (amp_attr_ints(k->n, "perm", &p) == r) {
        memcpy(perm, p, sizeof(int64_t) * (size_t)r);
    } else {
        for (int d = 0; d < r; d++) perm[d] = r - 1 - d;
    }
    for (int d = 0; d < r; d++)
        if (perm[d] < 0 || perm[d] >= r || y->dims[d] != x->dims[perm[d]])
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output shape does not match perm");
    if (y->numel == 0) return AMP_OK;
    size_t es = amp_dtype_size(x->dtype);

    /* Canonical form: dims of size 1 dropped, then input axes that stay neighbours in the
     * output merged, so NCHW->NHWC becomes a batched 2-D transpose and many perms a copy. */
    int newax[AMP_MAX_RANK], n1 = 0;
    int64_t d1[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) {
        newax[d] = x->dims[d] == 1 ? -1 : n1;
        if (x->dims[d] != 1) d1[n1++] = x->dims[d];
    }
    int p1[AMP_MAX_RANK], m = 0;
    for (int d = 0; d < r; d++)
        if (newax[perm[d]] >= 0) p1[m++] = newax[perm[d]];
    /* groups of output positions whose input axes are consecutive */
    int gstart[AMP_MAX_RANK], glen[AMP_MAX_RANK], ng = 0;
    for (int j = 0; j < m; j++) {
        if (j > 0 && p1[j] == p1[j - 1] + 1) {
            glen[ng - 1]++;
        } else {
            gstart[ng] = p1[j];
            glen[ng] = 1;
            ng++;
        }
    }
    /* input order of the groups: rank of each group's first input axis */
    int64_t gdim[AMP_MAX_RANK];
    int gperm[AMP_MAX_RANK];
    for (int g = 0; g < ng; g++) {
        int rank_in = 0;
        for (int h = 0; h < ng; h++) rank_in += gstart[h] < gstart[g];
        gperm[g] = rank_in;
        gdim[rank_in] = 1;
    }
    for (int g = 0; g < ng; g++)
        for (int a = gstart[g]; a < gstart[g] + glen[g]; a++) gdim[gperm[g]] *= d1[a];

    bool identity = true;
    for (int g = 0; g < ng; g++) identity = identity && gperm[g] == g;
    if (identity) {
        par_copy(k, y->data, x->data, x->nbytes);
        return AMP_OK;
    }
    if (ng == 2) {
        transpose_batched_2d(k, y->data, x->data, 1, gdim[0], gdim[1], es);
        return AMP_OK;
    }
    if (ng == 3 && gperm[0] == 0 && gperm[1] == 2 && gperm[2] == 1) {
        transpose_batched_2d(k, y->data, x->data, gdim[0], gdim[1], gdim[2], es);
        return AMP_OK;
    }
    int64_t istr[AMP_MAX_RANK], odims[AMP_MAX_RANK], ostr[AMP_MAX_RANK];
    amp_strides(ng, gdim, istr);
    for (int g = 0; g < ng; g++) {
        odims[g] = gdim[gperm[g]];
        ostr[g] = istr[gperm[g]];
    }
    strided_rows(k, y->data, x->data, ng, odims, ostr, y->numel, es);
    return AMP_OK;
}

/* ---- Concat, Split ---------------------------------------------------------------------------- */

/* Both ops see the big tensor as outer x (axis dim * inner) and each piece as outer x (its
 * axis dim * inner): the pieces interleave along rows. */
static int64_t outer_of(const amp_tensor *t, int axis) {
    int64_t o = 1;
    for (int d = 0; d < axis; d++) o *= t->dims[d];
    return o;
}
static int64_t inner_of(const amp_tensor *t, int axis) {
    int64_t o = 1;
    for (int d = axis + 1; d < t->rank; d++) o *= t->dims[d];
    return o;
}

static int kernel_axis(const amp_kernel *k, int64_t def, int rank) {
    int64_t a = amp_attr_int(k->n, "axis", def);
    return (int)(a < 0 ? a + rank : a);
}

amp_status amp_cpu_concat(amp_kernel *k) {
    amp_tensor *y = k->out[0];
    int r = y->rank;
    int axis = kernel_axis(k, 1, r);
    if (axis < 0 || axis >= r) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "axis out of range");
    if (y->numel == 0) return AMP_OK;
    size_t es = amp_dtype_size(y->dtype);
    int64_t outer = outer_of(y, axis), inner = inner_of(y, axis);
    int64_t yrow = y->dims[axis] * inner * (int64_t)es, off = 0;
    for (int i = 0; i < k->nin; i++) {
        const amp_tensor *x = k->in[i];
        int64_t xrow = x->dims[axis] * inner * (int64_t)es;
        if (off + xrow > yrow) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "inputs exceed the output");
        if (xrow > 0) {
            uint8_t *dst = (uint8_t *)y->data + off;
            const uint8_t *src = x->data;
            bool big = outer * xrow >= PAR_BYTES && outer > 1;
            AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
            for (int64_t o = 0; o < outer; o++) memcpy(dst + o * yrow, src + o * xrow, (size_t)xrow););
        }
        off += xrow;
    }
    if (off != yrow) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "inputs do not fill the output");
    return AMP_OK;
}

amp_status amp_cpu_split(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    int r = x->rank;
    int axis = kernel_axis(k, 0, r);
    if (axis < 0 || axis >= r) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "axis out of range");
    size_t es = amp_dtype_size(x->dtype);
    int64_t outer = outer_of(x, axis), inner = inner_of(x, axis);
    int64_t xrow = x->dims[axis] * inner * (int64_t)es, off = 0;
    for (int i = 0; i < k->nout; i++) {
        amp_tensor *y = k->out[i];
        if (!y) continue;
        int64_t yrow = y->dims[axis] * inner * (int64_t)es;
        if (off + yrow > xrow) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "outputs exceed the input");
        if (yrow > 0 && outer > 0) {
            uint8_t *dst = y->data;
            const uint8_t *src = (const uint8_t *)x->data + off;
            bool big = outer * yrow >= PAR_BYTES && outer > 1;
            AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
            for (int64_t o = 0; o < outer; o++) memcpy(dst + o * yrow, src + o * xrow, (size_t)yrow););
        }
        off += yrow;
    }
    return AMP_OK;
}

/* ---- Slice ------------------------------------------------------------------------------------ */

/* Values i of a slice parameter: attribute before opset 10, input from 10; def when absent. */
static int64_t slice_param(const amp_kernel *k, const char *attr, int input, int i, int64_t def, bool *present) {
    if (k->opset < 10) {
        const int64_t *v;
        int n = amp_attr_ints(k->n, attr, &v);
        *present = n >= 0;
        return i < n ? v[i] : def;
    }
    const amp_tensor *t = input < k->nin ? k->in[input] : NULL;
    *present = t != NULL;
    return t && i < t->numel ? amp_ldi(t->dtype, t->data, i) : def;
}

amp_status amp_cpu_slice(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int r = x->rank;
    int64_t first[AMP_MAX_RANK] = {0}, step[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) step[d] = 1;
    for (int d = 0; d < r; d++)
        if (y->dims[d] > x->dims[d]) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output larger than the input");
    bool present;
    int64_t ns = 0;
    if (k->opset < 10) {
        const int64_t *v;
        ns = amp_attr_ints(k->n, "starts", &v);
    } else if (k->nin > 1 && k->in[1]) {
        ns = k->in[1]->numel;
    }
    for (int i = 0; i < ns; i++) {
        int64_t a = slice_param(k, "axes", 3, i, i, &present);
        if (a < 0) a += r;
        if (a < 0 || a >= r) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "axis out of range");
        int64_t st = slice_param(k, "steps", 4, i, 1, &present);
        if (k->opset < 10) st = 1;
        if (st == 0) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "step is 0");
        int64_t b = slice_param(k, "starts", 1, i, 0, &present);
        int64_t e = slice_param(k, "ends", 2, i, 0, &present);
        int64_t cnt = amp_slice_axis(x->dims[a], b, e, st, &first[a]);
        if (cnt != y->dims[a]) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output shape does not match the slice");
        step[a] = st;
    }
    if (y->numel == 0) return AMP_OK;
    size_t es = amp_dtype_size(x->dtype);
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return AMP_OK;
    }
    int64_t istr[AMP_MAX_RANK], estr[AMP_MAX_RANK], base = 0;
    amp_strides(r, x->dims, istr);
    for (int d = 0; d < r; d++) {
        base += first[d] * istr[d];
        estr[d] = step[d] * istr[d];
    }
    strided_rows(k, y->data, (const uint8_t *)x->data + base * (int64_t)es, r, y->dims, estr, y->numel, es);
    return AMP_OK;
}

/* ---- Expand, Tile ----------------------------------------------------------------------------- */

amp_status amp_cpu_expand(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int r = y->rank, lead = r - x->rank;
    if (lead < 0) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output rank below input rank");
    if (y->numel == 0) return AMP_OK;
    size_t es = amp_dtype_size(x->dtype);
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return AMP_OK;
    }
    int64_t xstr[AMP_MAX_RANK], str[AMP_MAX_RANK];
    amp_strides(x->rank, x->dims, xstr);
    for (int d = 0; d < r; d++) {
        int64_t xd = d >= lead ? x->dims[d - lead] : 1;
        if (xd != y->dims[d] && xd != 1) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output does not broadcast");
        /* a broadcast dim reads the same source again: stride 0 */
        str[d] = d >= lead && xd != 1 ? xstr[d - lead] : 0;
    }
    int64_t L = y->dims[r - 1], rows = y->numel / L;
    const uint8_t *src = x->data;
    uint8_t *dst = y->data;
    bool big = y->numel * (int64_t)es >= PAR_BYTES;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t row = 0; row < rows; row++) {
        const uint8_t *s = src + row_offset(row, r, y->dims, str) * (int64_t)es;
        uint8_t *d = dst + row * L * (int64_t)es;
        if (str[r - 1] == 0) fill_pattern(d, s, L, es);
        else memcpy(d, s, (size_t)L * es);
    });
    return AMP_OK;
}

amp_status amp_cpu_tile(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int r = x->rank;
    if (y->rank != r) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output rank differs from input rank");
    if (y->numel == 0) return AMP_OK;
    size_t es = amp_dtype_size(x->dtype);
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return AMP_OK;
    }
    for (int d = 0; d < r; d++)
        if (x->dims[d] == 0 || y->dims[d] % x->dims[d] != 0)
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output dim %d is not a multiple of the input's", d);
    int64_t xstr[AMP_MAX_RANK];
    amp_strides(r, x->dims, xstr);
    int64_t L = y->dims[r - 1], Lx = x->dims[r - 1], rows = y->numel / L;
    const uint8_t *src = x->data;
    uint8_t *dst = y->data;
    bool big = y->numel * (int64_t)es >= PAR_BYTES;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t row = 0; row < rows; row++) {
        /* output index i reads input index i mod dim: decompose the row with that wrap */
        int64_t rem = row, off = 0;
        for (int d = r - 2; d >= 0; d--) {
            off += (rem % y->dims[d]) % x->dims[d] * xstr[d];
            rem /= y->dims[d];
        }
        uint8_t *d = dst + row * L * (int64_t)es;
        memcpy(d, src + off * (int64_t)es, (size_t)Lx * es);
        /* the row is the input row repeated: double the filled prefix */
        size_t total = (size_t)L * es, done = (size_t)Lx * es;
        while (done < total) {
            size_t c = done < total - done ? done : total - done;
            memcpy(d + done, d, c);
            done += c;
        }
    });
    return AMP_OK;
}

/* ---- Shape, Size ------------------------------------------------------------------------------ */

amp_status amp_cpu_shape(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int64_t r = x->rank, start = 0;
    if (k->opset >= 15) {
        start = amp_attr_int(k->n, "start", 0);
        if (start < 0) start += r;
        start = start < 0 ? 0 : start > r ? r : start;
    }
    if (y->dtype != AMP_I64 || y->rank != 1 || start + y->dims[0] > r)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output does not match the input's rank");
    for (int64_t i = 0; i < y->dims[0]; i++) ((int64_t *)y->data)[i] = x->dims[start + i];
    return AMP_OK;
}

amp_status amp_cpu_size(amp_kernel *k) {
    amp_tensor *y = k->out[0];
    if (y->dtype != AMP_I64 || y->numel != 1) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output is not an int64 scalar");
    *(int64_t *)y->data = k->in[0]->numel;
    return AMP_OK;
}

/* ---- Constant, ConstantOfShape ---------------------------------------------------------------- */

amp_status amp_cpu_constant(amp_kernel *k) {
    amp_tensor *y = k->out[0];
    const amp_attr *a;
    if ((a = amp_node_attr(k->n, "value")) && a->kind == AMP_ATTR_TENSOR && a->t) {
        if (a->t->nbytes != y->nbytes || a->t->dtype != y->dtype)
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output does not match the value");
        if (y->nbytes) memcpy(y->data, a->t->data, y->nbytes);
    } else if ((a = amp_node_attr(k->n, "value_float")) && a->kind == AMP_ATTR_FLOAT && y->numel == 1 &&
               y->dtype == AMP_F32) {
        memcpy(y->data, &a->f, sizeof(float));
    } else if ((a = amp_node_attr(k->n, "value_int")) && a->kind == AMP_ATTR_INT && y->numel == 1 &&
               y->dtype == AMP_I64) {
        memcpy(y->data, &a->i, sizeof(int64_t));
    } else if ((a = amp_node_attr(k->n, "value_floats")) && a->kind == AMP_ATTR_FLOATS && y->numel == a->n &&
               y->dtype == AMP_F32) {
        if (a->n) memcpy(y->data, a->floats, sizeof(float) * (size_t)a->n);
    } else if ((a = amp_node_attr(k->n, "value_ints")) && a->kind == AMP_ATTR_INTS && y->numel == a->n &&
               y->dtype == AMP_I64) {
        if (a->n) memcpy(y->data, a->ints, sizeof(int64_t) * (size_t)a->n);
    } else {
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "no value attribute this kernel can hold");
    }
    return AMP_OK;
}

amp_status amp_cpu_constant_of_shape(amp_kernel *k) {
    amp_tensor *y = k->out[0];
    if (y->numel == 0) return AMP_OK;
    const amp_tensor *v = amp_attr_tensor(k->n, "value");
    if (!v) { /* default: float32 zero */
        memset(y->data, 0, y->nbytes);
        return AMP_OK;
    }
    if (v->dtype != y->dtype || v->numel != 1)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "output does not match the value");
    size_t es = amp_dtype_size(y->dtype);
    int64_t per = y->numel, chunks = 1;
    bool big = (int64_t)y->nbytes >= 8 * PAR_BYTES && amp_cpu_threads(k) > 1;
    if (big) {
        chunks = amp_cpu_threads(k);
        per = (y->numel + chunks - 1) / chunks;
    }
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * per, hi = lo + per < y->numel ? lo + per : y->numel;
        if (lo < hi) fill_pattern((uint8_t *)y->data + lo * (int64_t)es, v->data, hi - lo, es);
    });
    return AMP_OK;
}
