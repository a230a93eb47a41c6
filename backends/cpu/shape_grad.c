/* CPU kernels of the shape family's gradient ops (ir/ops/shape_grad.def): SplitGrad, SliceGrad,
 * PadGrad, TileGrad, GatherGrad, GatherElementsGrad, DepthToSpaceGrad (ReshapeGrad and
 * ConcatGrad run the forward copy and Split kernels).
 *
 * SliceGrad, PadGrad, TileGrad and GatherGrad share the fold of backends/shape_grad.h: each
 * says, per dim, how dY coordinates map to dX coordinates (identity, broadcast or a map it
 * fills); the fold inverts the maps into lists and computes every dX element as the sum, in
 * double and in increasing dY order, of the dY elements that map to it. Each dX element is
 * written by one thread from its own lists, so repeated indices need no atomics and the result
 * does not depend on the thread count. */
#include <stdbool.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/shape_grad.h"

/* Below this many elements a thread team costs more than it saves. */
#define PAR_MIN_WORK ((int64_t)1 << 15)
/* dX elements one task sums at a time (a row of dX is cut into chunks of this many): long
 * enough that the dY rows are read in long contiguous runs. */
#define CHUNK 1024

static bool is_index(const amp_tensor *t) { return t && (t->dtype == AMP_I64 || t->dtype == AMP_I32); }

/* ---- the fold ---------------------------------------------------------------------------------- */

/* How a dim of dY maps to the same dim of dX: through a map (and its inverse lists), as the
 * identity, or all onto coordinate 0 (dX's dim is 1). Identity and broadcast dims need no
 * lists, and neighbours of the same kind merge, so that a bias gradient reads long contiguous
 * runs of dY. */
enum { DIM_MAP, DIM_IDENT, DIM_BCAST };

/* SliceGrad, PadGrad, TileGrad and GatherGrad: the fold's maps and inverse lists over the op's
 * own dims (amp_gs_fold_ws_bytes; the kernel merges dims and may use less). dX has X's shape. */
amp_status amp_cpu_ws_fold_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *dy = k->in[0], *dx = k->out[0];
    int64_t xv[AMP_MAX_RANK], yv[AMP_MAX_RANK];
    switch (k->n->op) {
    case AMP_OP_TILE_GRAD: {
        /* X's dims aligned to dY's rank with leading ones */
        const int lead = dy->rank - dx->rank;
        if (lead < 0) return amp_kernel_fail(k, AMP_ERR_SHAPE, "the gradient has a lower rank than the input");
        for (int d = 0; d < dy->rank; d++) xv[d] = d < lead ? 1 : dx->dims[d - lead];
        *bytes = amp_gs_fold_ws_bytes(dy->rank, xv, dy->dims);
        return AMP_OK;
    }
    case AMP_OP_GATHER_GRAD: {
        /* the index dims seen as one */
        const int r = dx->rank;
        const int64_t a = amp_attr_int(k->n, "axis", 0);
        if (r < 1 || a < -r || a >= r) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis out of range");
        memcpy(yv, dx->dims, sizeof(int64_t) * (size_t)r);
        yv[a < 0 ? a + r : a] = k->in[2]->numel;
        *bytes = amp_gs_fold_ws_bytes(r, dx->dims, yv);
        return AMP_OK;
    }
    default: /* SliceGrad, PadGrad: dY has the op's rank */
        if (dy->rank != dx->rank) return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY and dX differ in rank");
        *bytes = amp_gs_fold_ws_bytes(dx->rank, dx->dims, dy->dims);
        return AMP_OK;
    }
}

/* GatherElementsGrad: 16-bit gradients add up in an f32 copy of dX. */
amp_status amp_cpu_ws_gather_elements_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *dx = k->out[0];
    *bytes = 0;
    if (dx->dtype != AMP_F16 && dx->dtype != AMP_BF16) return AMP_OK;
    return amp_cpu_ws_elems(k, dx->numel, sizeof(float), bytes);
}

typedef struct fold {
    int r;
    int64_t xd[AMP_MAX_RANK], yd[AMP_MAX_RANK];
    int kind[AMP_MAX_RANK];
    int src[AMP_MAX_RANK];      /* the op's dim a view dim starts at */
    int64_t *map[AMP_MAX_RANK]; /* DIM_MAP: [yd] dX coordinate of each dY coordinate, or -1 */
    int64_t *off[AMP_MAX_RANK]; /* DIM_MAP: [xd + 1] where each dX coordinate's list starts */
    int64_t *lst[AMP_MAX_RANK]; /* DIM_MAP: [yd] dY coordinates grouped by their dX coordinate */
    int64_t shift;              /* last dim: every dX coordinate x reads just x + shift (-1: no) */
    bool runs;                  /* last dim: every list is a run of consecutive dY coordinates */
} fold;

/* The view of the op's dims (kind per dim), with the maps and lists carved out of the
 * workspace; the caller then fills map[] of the DIM_MAP dims and calls fold_index. */
static amp_status fold_init(amp_kernel *k, fold *f, int r, const int64_t *xd, const int64_t *yd, const int *kind) {
    memset(f, 0, sizeof *f);
    int v = 0;
    for (int d = 0; d < r; d++) {
        if (v > 0 && kind[d] != DIM_MAP && kind[d] == f->kind[v - 1]) {
            f->xd[v - 1] *= xd[d];
            f->yd[v - 1] *= yd[d];
            continue;
        }
        f->xd[v] = xd[d];
        f->yd[v] = yd[d];
        f->kind[v] = kind[d];
        f->src[v] = d;
        v++;
    }
    f->r = v;
    size_t need = 0;
    for (int d = 0; d < v; d++)
        if (f->kind[d] == DIM_MAP) need += (size_t)(2 * f->yd[d] + f->xd[d] + 1) * sizeof(int64_t);
    if (need > k->ws_bytes || (need && !k->ws))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace of %zu bytes, needs %zu", k->ws_bytes, need);
    int64_t *p = k->ws;
    for (int d = 0; d < v; d++) {
        if (f->kind[d] != DIM_MAP) continue;
        f->map[d] = p;
        p += f->yd[d];
        f->off[d] = p;
        p += f->xd[d] + 1;
        f->lst[d] = p;
        p += f->yd[d];
    }
    return AMP_OK;
}

/* Counting sort of each map: lists in increasing dY coordinate, so sums run in a fixed order. */
static void fold_index(fold *f) {
    for (int d = 0; d < f->r; d++) {
        if (f->kind[d] != DIM_MAP) continue;
        int64_t *off = f->off[d], *lst = f->lst[d], *map = f->map[d], xd = f->xd[d];
        memset(off, 0, sizeof(int64_t) * (size_t)(xd + 1));
        for (int64_t c = 0; c < f->yd[d]; c++)
            if (map[c] >= 0) off[map[c] + 1]++;
        for (int64_t x = 0; x < xd; x++) off[x + 1] += off[x];
        /* fill with off[x] as the cursor, which leaves off[x] at the end of x's list ... */
        for (int64_t c = 0; c < f->yd[d]; c++)
            if (map[c] >= 0) lst[off[map[c]]++] = c;
        /* ... that is, the start of x + 1's */
        for (int64_t x = xd; x > 0; x--) off[x] = off[x - 1];
        off[0] = 0;
    }
    f->shift = -1;
    f->runs = false;
    int L = f->r - 1;
    if (L < 0 || f->kind[L] != DIM_MAP) return;
    const int64_t *off = f->off[L], *lst = f->lst[L];
    int64_t XL = f->xd[L];
    bool one = off[XL] == XL && XL > 0;
    for (int64_t x = 0; one && x < XL; x++) one = off[x] == x && lst[x] == lst[0] + x;
    if (one) f->shift = lst[0];
    f->runs = true;
    for (int64_t x = 0; f->runs && x < XL; x++)
        for (int64_t e = off[x] + 1; f->runs && e < off[x + 1]; e++) f->runs = lst[e] == lst[e - 1] + 1;
}

/* acc[i] += the dY elements at yoff + (last-dim coordinates that map to x0 + i). */
#define DEF_ACC(NAME, T, LD)                                                                                  \
    static void NAME(const fold *f, double *acc, int64_t n, const void *base, int64_t yoff, int64_t x0) {    \
        int L = f->r - 1;                                                                                     \
        const T *y = (const T *)base + yoff;                                                                  \
        const int64_t *off = f->off[L], *lst = f->lst[L];                                                     \
        if (f->kind[L] == DIM_IDENT || f->shift >= 0) {                                                       \
            y += x0 + (f->kind[L] == DIM_IDENT ? 0 : f->shift);                                               \
            for (int64_t i = 0; i < n; i++) acc[i] += LD(y[i]);                                               \
        } else if (f->kind[L] == DIM_BCAST) { /* dX's last dim is 1, n is 1: four chains hide latency */    \
            double s[4] = {0.0, 0.0, 0.0, 0.0};                                                               \
            int64_t c = 0, YL = f->yd[L];                                                                     \
            for (; c + 4 <= YL; c += 4)                                                                       \
                for (int j = 0; j < 4; j++) s[j] += LD(y[c + j]);                                             \
            for (; c < YL; c++) s[0] += LD(y[c]);                                                             \
            acc[0] += (s[0] + s[1]) + (s[2] + s[3]);                                                          \
        } else if (f->runs) {                                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                                 \
                int64_t e0 = off[x0 + i], len = off[x0 + i + 1] - e0;                                        \
                if (len > 0)                                                                                  \
                    for (int64_t j = 0, c = lst[e0]; j < len; j++) acc[i] += LD(y[c + j]);                    \
            }                                                                                                 \
        } else {                                                                                              \
            for (int64_t i = 0; i < n; i++)                                                                   \
                for (int64_t e = off[x0 + i]; e < off[x0 + i + 1]; e++) acc[i] += LD(y[lst[e]]);              \
        }                                                                                                     \
    }
#define LD_PLAIN(v) ((double)(v))
#define LD_F16(v) ((double)amp_f16_to_f32(v))
#define LD_BF16(v) ((double)amp_bf16_to_f32(v))
DEF_ACC(acc_f32, float, LD_PLAIN)
DEF_ACC(acc_f64, double, LD_PLAIN)
DEF_ACC(acc_f16, uint16_t, LD_F16)
DEF_ACC(acc_bf16, uint16_t, LD_BF16)

static void store_acc(amp_dtype dt, void *dst, int64_t at, const double *acc, int64_t n) {
    switch (dt) {
    case AMP_F32:
        for (int64_t i = 0; i < n; i++) ((float *)dst)[at + i] = (float)acc[i];
        break;
    case AMP_F64: memcpy((double *)dst + at, acc, sizeof(double) * (size_t)n); break;
    case AMP_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[at + i] = amp_f32_to_f16((float)acc[i]);
        break;
    default:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[at + i] = amp_f32_to_bf16((float)acc[i]);
        break;
    }
}

/* The dY coordinate at position pos of a leading dim's list. */
static inline int64_t fold_coord(const fold *f, int d, int64_t pos) {
    return f->kind[d] == DIM_MAP ? f->lst[d][pos] : pos;
}

/* One task: CHUNK elements (or fewer) of one dX row. The dY rows that feed it are the product
 * of the lists of the leading dims, walked like an odometer. */
static void fold_task(const fold *f, amp_dtype dt, const void *dy, void *dx, const int64_t *ystr, int64_t t,
                      int64_t nch) {
    int L = f->r - 1;
    int64_t XL = f->xd[L], row = t / nch, x0 = t % nch * CHUNK;
    int64_t n = XL - x0 < CHUNK ? XL - x0 : CHUNK;
    int64_t beg[AMP_MAX_RANK], end[AMP_MAX_RANK], pos[AMP_MAX_RANK];
    bool empty = f->kind[L] == DIM_BCAST && f->yd[L] == 0;
    int64_t rem = row;
    for (int d = L - 1; d >= 0; d--) {
        int64_t xc = rem % f->xd[d];
        rem /= f->xd[d];
        switch (f->kind[d]) {
        case DIM_IDENT: beg[d] = xc, end[d] = xc + 1; break;
        case DIM_BCAST: beg[d] = 0, end[d] = f->yd[d]; break;
        default: beg[d] = f->off[d][xc], end[d] = f->off[d][xc + 1]; break;
        }
        pos[d] = beg[d];
        empty |= beg[d] == end[d];
    }
    if (empty) { /* nothing reads these elements: all-zero bits are +0.0 in every float dtype */
        memset((uint8_t *)dx + (size_t)(row * XL + x0) * amp_dtype_size(dt), 0, (size_t)n * amp_dtype_size(dt));
        return;
    }
    double acc[CHUNK];
    memset(acc, 0, sizeof(double) * (size_t)n);
    for (;;) {
        int64_t yoff = 0;
        for (int d = 0; d < L; d++) yoff += fold_coord(f, d, pos[d]) * ystr[d];
        switch (dt) {
        case AMP_F32: acc_f32(f, acc, n, dy, yoff, x0); break;
        case AMP_F64: acc_f64(f, acc, n, dy, yoff, x0); break;
        case AMP_F16: acc_f16(f, acc, n, dy, yoff, x0); break;
        default: acc_bf16(f, acc, n, dy, yoff, x0); break;
        }
        int d = L - 1;
        while (d >= 0 && ++pos[d] == end[d]) {
            pos[d] = beg[d];
            d--;
        }
        if (d < 0) break;
    }
    store_acc(dt, dx, row * XL + x0, acc, n);
}

/* dX from dY through the view (fold_index already run). */
static void fold_run(const amp_kernel *k, const fold *f, amp_dtype dt, const void *dy, void *dx) {
    int r = f->r;
    int64_t nx = amp_dims_numel(r, f->xd), ny = amp_dims_numel(r, f->yd);
    if (nx == 0) return;
    if (r == 0) {
        memcpy(dx, dy, amp_dtype_size(dt));
        return;
    }
    int64_t ystr[AMP_MAX_RANK];
    amp_strides(r, f->yd, ystr);
    int64_t XL = f->xd[r - 1], rows = nx / XL, nch = (XL + CHUNK - 1) / CHUNK, tasks = rows * nch;
    bool big = nx + ny >= PAR_MIN_WORK && tasks > 1;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t t = 0; t < tasks; t++) fold_task(f, dt, dy, dx, ystr, t, nch););
}

/* Sum of the dY elements that map to no dX element (Pad's constant), in double. */
static double fold_unmapped_sum(const fold *f, amp_dtype dt, const void *dy) {
    int r = f->r;
    int64_t ny = amp_dims_numel(r, f->yd);
    if (r == 0 || ny == 0) return 0.0;
    int L = r - 1;
    int64_t YL = f->yd[L], rows = ny / YL;
    double s = 0.0;
    for (int64_t row = 0; row < rows; row++) {
        bool outside = false;
        int64_t rem = row;
        for (int d = L - 1; d >= 0; d--) {
            if (f->kind[d] == DIM_MAP) outside |= f->map[d][rem % f->yd[d]] < 0;
            rem /= f->yd[d];
        }
        for (int64_t j = 0; j < YL; j++)
            if (outside || (f->kind[L] == DIM_MAP && f->map[L][j] < 0)) s += amp_ld(dt, dy, row * YL + j);
    }
    return s;
}

/* ---- SliceGrad ------------------------------------------------------------------------------------ */

amp_status amp_cpu_slice_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *st = k->in[2], *en = k->in[3];
    const amp_tensor *ax = k->nin > 4 ? k->in[4] : NULL, *sp = k->nin > 5 ? k->in[5] : NULL;
    amp_tensor *dx = k->out[0];
    int r = dx->rank;
    if (dy->rank != r || dy->dtype != dx->dtype) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient does not match");
    if (!is_index(st) || !is_index(en) || (ax && !is_index(ax)) || (sp && !is_index(sp)))
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "slice parameters must be int64 or int32");
    int64_t ns = st->numel;
    if (en->numel != ns || (ax && ax->numel != ns) || (sp && sp->numel != ns) || ns > r)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "slice parameters disagree in length");
    int64_t first[AMP_MAX_RANK] = {0}, step[AMP_MAX_RANK], cnt[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) {
        step[d] = 1;
        cnt[d] = dx->dims[d];
    }
    for (int64_t i = 0; i < ns; i++) {
        int64_t a = ax ? amp_ldi(ax->dtype, ax->data, i) : i;
        if (a < 0) a += r;
        if (a < 0 || a >= r) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis out of range");
        int64_t s = sp ? amp_ldi(sp->dtype, sp->data, i) : 1;
        if (s == 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "step is 0");
        step[a] = s;
        cnt[a] = amp_slice_axis(dx->dims[a], amp_ldi(st->dtype, st->data, i), amp_ldi(en->dtype, en->data, i), s,
                                   &first[a]);
    }
    for (int d = 0; d < r; d++)
        if (cnt[d] != dy->dims[d])
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient dim %d does not match the slice", d);
    int kind[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) kind[d] = first[d] == 0 && step[d] == 1 && cnt[d] == dx->dims[d] ? DIM_IDENT : DIM_MAP;
    fold f;
    amp_status s = fold_init(k, &f, r, dx->dims, dy->dims, kind);
    if (s) return s;
    for (int v = 0; v < f.r; v++) {
        int d = f.src[v];
        if (f.kind[v] == DIM_MAP)
            for (int64_t c = 0; c < f.yd[v]; c++) f.map[v][c] = first[d] + c * step[d];
    }
    fold_index(&f);
    fold_run(k, &f, dx->dtype, dy->data, dx->data);
    return AMP_OK;
}

/* ---- PadGrad ---------------------------------------------------------------------------------------- */

amp_status amp_cpu_pad_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *pt = k->in[2], *at = k->nin > 3 ? k->in[3] : NULL;
    amp_tensor *dx = k->out[0];
    int r = dx->rank;
    const char *ms = amp_attr_str(k->n, "mode", "constant");
    int mode = !strcmp(ms, "constant") ? AMP_GS_PAD_CONSTANT
               : !strcmp(ms, "reflect") ? AMP_GS_PAD_REFLECT
               : !strcmp(ms, "edge")    ? AMP_GS_PAD_EDGE
               : !strcmp(ms, "wrap")    ? AMP_GS_PAD_WRAP
                                        : -1;
    if (mode < 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unknown mode '%s'", ms);
    if (dy->rank != r || dy->dtype != dx->dtype) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient does not match");
    if (!is_index(pt) || (at && !is_index(at)))
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "pads and axes must be int64 or int32");
    int na = r, axes[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) axes[d] = d;
    if (at) {
        if (at->numel > r) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "more axes than dims");
        na = (int)at->numel;
        for (int i = 0; i < na; i++) {
            int64_t a = amp_ldi(at->dtype, at->data, i);
            if (a < -r || a >= r) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range", (long long)a);
            axes[i] = (int)(a < 0 ? a + r : a);
        }
    }
    if (pt->numel != 2 * na)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "pads has %lld values, expected %d", (long long)pt->numel, 2 * na);
    int64_t pb[AMP_MAX_RANK] = {0};
    for (int i = 0; i < na; i++) pb[axes[i]] = amp_ldi(pt->dtype, pt->data, i);
    for (int i = 0; i < na; i++) {
        int d = axes[i];
        int64_t want;
        if (__builtin_add_overflow(dx->dims[d], pb[d], &want) ||
            __builtin_add_overflow(want, amp_ldi(pt->dtype, pt->data, i + na), &want) || want != dy->dims[d])
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient dim %d does not match the pads", d);
    }
    int kind[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) kind[d] = pb[d] == 0 && dy->dims[d] == dx->dims[d] ? DIM_IDENT : DIM_MAP;
    fold f;
    amp_status s = fold_init(k, &f, r, dx->dims, dy->dims, kind);
    if (s) return s;
    for (int v = 0; v < f.r; v++) {
        int d = f.src[v];
        if (f.kind[v] == DIM_MAP)
            for (int64_t c = 0; c < f.yd[v]; c++) f.map[v][c] = amp_gs_pad_map(c - pb[d], dx->dims[d], mode);
    }
    fold_index(&f);
    fold_run(k, &f, dx->dtype, dy->data, dx->data);
    if (k->nout > 1 && k->out[1]) {
        double v = mode == AMP_GS_PAD_CONSTANT ? fold_unmapped_sum(&f, dy->dtype, dy->data) : 0.0;
        amp_st(k->out[1]->dtype, k->out[1]->data, 0, v);
    }
    return AMP_OK;
}

/* ---- TileGrad (Tile and Expand) --------------------------------------------------------------------- */

amp_status amp_cpu_tile_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0];
    amp_tensor *dx = k->out[0];
    int rx = dx->rank, ry = dy->rank, lead = ry - rx;
    if (lead < 0 || dy->dtype != dx->dtype) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient does not match");
    if (dx->numel == 0) return AMP_OK;
    /* dX seen with dY's rank: leading dims of size 1 take whole dY dims */
    int64_t xv[AMP_MAX_RANK] = {0};
    for (int d = 0; d < ry; d++) {
        xv[d] = d < lead ? 1 : dx->dims[d - lead];
        if (dy->dims[d] % xv[d]) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient dim %d is not whole tiles", d);
    }
    int kind[AMP_MAX_RANK];
    for (int d = 0; d < ry; d++) kind[d] = xv[d] == dy->dims[d] ? DIM_IDENT : xv[d] == 1 ? DIM_BCAST : DIM_MAP;
    fold f;
    amp_status s = fold_init(k, &f, ry, xv, dy->dims, kind);
    if (s) return s;
    for (int v = 0; v < f.r; v++)
        if (f.kind[v] == DIM_MAP)
            for (int64_t c = 0; c < f.yd[v]; c++) f.map[v][c] = c % f.xd[v];
    fold_index(&f);
    fold_run(k, &f, dx->dtype, dy->data, dx->data);
    return AMP_OK;
}

/* ---- GatherGrad, GatherElementsGrad ---------------------------------------------------------------- */

amp_status amp_cpu_gather_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->in[2];
    amp_tensor *dx = k->out[0];
    int r = dx->rank;
    int64_t axis = amp_attr_int(k->n, "axis", 0);
    if (axis < -r || axis >= r) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range", (long long)axis);
    if (axis < 0) axis += r;
    if (!is_index(ind)) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "indices must be int64 or int32");
    int64_t len = dx->dims[axis], nidx = ind->numel, outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= dx->dims[d];
    for (int d = (int)axis + 1; d < r; d++) inner *= dx->dims[d];
    if (dy->dtype != dx->dtype || dy->numel != outer * nidx * inner)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient does not match");
    amp_status s = amp_cpu_check_indices(k, ind, len);
    if (s) return s;
    /* dY seen as dX's dims with the axis replaced by the flattened indices */
    int64_t yv[AMP_MAX_RANK];
    memcpy(yv, dx->dims, sizeof(int64_t) * (size_t)r);
    yv[axis] = nidx;
    int kind[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) kind[d] = d == axis ? DIM_MAP : DIM_IDENT;
    fold f;
    if ((s = fold_init(k, &f, r, dx->dims, yv, kind))) return s;
    for (int v = 0; v < f.r; v++)
        if (f.kind[v] == DIM_MAP)
            for (int64_t c = 0; c < nidx; c++) {
                int64_t i = amp_ldi(ind->dtype, ind->data, c);
                f.map[v][c] = i < 0 ? i + len : i;
            }
    fold_index(&f);
    fold_run(k, &f, dx->dtype, dy->data, dx->data);
    return AMP_OK;
}

/* Scatter-add of one line of indices (every coordinate but the axis fixed) into acc. */
#define DEF_SCATTER_LINE(NAME, ACC_T, SRC_T, LD)                                                               \
    static void NAME(ACC_T *acc, const void *dyv, const amp_tensor *ind, int64_t p0, int64_t A, int64_t inner, \
                     int64_t xbase, int64_t xstep, int64_t len) {                                              \
        const SRC_T *dy = dyv;                                                                                 \
        for (int64_t a = 0; a < A; a++) {                                                                      \
            int64_t p = p0 + a * inner, v = amp_ldi(ind->dtype, ind->data, p);                                 \
            if (v < 0) v += len;                                                                               \
            acc[xbase + v * xstep] += LD(dy[p]);                                                               \
        }                                                                                                      \
    }
#define LD_F32(v) (v)
#define LD_F16F(v) amp_f16_to_f32(v)
#define LD_BF16F(v) amp_bf16_to_f32(v)
DEF_SCATTER_LINE(scatter_f32, float, float, LD_F32)
DEF_SCATTER_LINE(scatter_f64, double, double, LD_F32)
DEF_SCATTER_LINE(scatter_f16, float, uint16_t, LD_F16F)
DEF_SCATTER_LINE(scatter_bf16, float, uint16_t, LD_BF16F)

amp_status amp_cpu_gather_elements_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->in[2];
    amp_tensor *dx = k->out[0];
    int r = dx->rank;
    int64_t a64 = amp_attr_int(k->n, "axis", 0);
    if (r < 1 || a64 < -r || a64 >= r)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range", (long long)a64);
    int axis = (int)(a64 < 0 ? a64 + r : a64);
    if (!is_index(ind)) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "indices must be int64 or int32");
    if (ind->rank != r || dy->numel != ind->numel || dy->dtype != dx->dtype)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient or indices do not match");
    for (int d = 0; d < r; d++)
        if (d != axis && ind->dims[d] > dx->dims[d])
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "indices dim %d exceeds data dim", d);
    int64_t len = dx->dims[axis];
    amp_status s = amp_cpu_check_indices(k, ind, len);
    if (s) return s;
    amp_dtype dt = dx->dtype;
    bool half = dt == AMP_F16 || dt == AMP_BF16;
    void *acc = dx->data;
    if (half) {
        if (k->ws_bytes < (size_t)dx->numel * sizeof(float) || (dx->numel && !k->ws))
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        acc = k->ws;
    }
    size_t acc_es = dt == AMP_F64 ? sizeof(double) : sizeof(float);
    if (dx->numel) memset(acc, 0, (size_t)dx->numel * acc_es); /* all-zero bits are +0.0 */
    int64_t xst[AMP_MAX_RANK];
    amp_strides(r, dx->dims, xst);
    int64_t A = ind->dims[axis], inner = 1;
    for (int d = axis + 1; d < r; d++) inner *= ind->dims[d];
    int64_t lines = A ? ind->numel / A : 0;
    /* lines differ in a coordinate other than the axis, so they write disjoint lines of dX */
    AMP_PAR_FOR(ind->numel >= PAR_MIN_WORK && lines > 1, num_threads(amp_cpu_threads(k)),
    for (int64_t l = 0; l < lines; l++) {
        int64_t o = l / inner, i = l % inner, xbase = 0, rem = i;
        for (int d = r - 1; d > axis; d--) {
            xbase += rem % ind->dims[d] * xst[d];
            rem /= ind->dims[d];
        }
        rem = o;
        for (int d = axis - 1; d >= 0; d--) {
            xbase += rem % ind->dims[d] * xst[d];
            rem /= ind->dims[d];
        }
        int64_t p0 = o * A * inner + i;
        switch (dt) {
        case AMP_F32: scatter_f32(acc, dy->data, ind, p0, A, inner, xbase, xst[axis], len); break;
        case AMP_F64: scatter_f64(acc, dy->data, ind, p0, A, inner, xbase, xst[axis], len); break;
        case AMP_F16: scatter_f16(acc, dy->data, ind, p0, A, inner, xbase, xst[axis], len); break;
        default: scatter_bf16(acc, dy->data, ind, p0, A, inner, xbase, xst[axis], len); break;
        }
    });
    if (half) amp_narrow16(dt, acc, dx->data, dx->numel);
    return AMP_OK;
}

/* ---- SplitGrad, DepthToSpaceGrad ----------------------------------------------------------------- */

amp_status amp_cpu_split_grad(amp_kernel *k) {
    const amp_tensor *shapes = k->in[0];
    amp_tensor *dx = k->out[0];
    int r = dx->rank, n = k->nin - 1;
    int64_t a = amp_attr_int(k->n, "axis", 0);
    if (r < 1 || a < -r || a >= r) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range", (long long)a);
    int axis = (int)(a < 0 ? a + r : a);
    if (!is_index(shapes) || shapes->numel != (int64_t)n * r)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "shapes do not match the gradients");
    size_t es = amp_dtype_size(dx->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= dx->dims[d];
    for (int d = axis + 1; d < r; d++) inner *= dx->dims[d];
    int64_t xrow = dx->dims[axis] * inner * (int64_t)es, off = 0;
    for (int kk = 0; kk < n; kk++) {
        const amp_tensor *g = k->in[1 + kk];
        int64_t len = amp_ldi(shapes->dtype, shapes->data, (int64_t)kk * r + axis);
        int64_t yrow = len * inner * (int64_t)es;
        if (len < 0 || off + yrow > xrow || (g && (g->dtype != dx->dtype || g->numel != outer * len * inner)))
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradient %d does not match its shape", kk);
        if (yrow > 0 && outer > 0) {
            uint8_t *dst = (uint8_t *)dx->data + off;
            const uint8_t *src = g ? g->data : NULL;
            bool big = outer * yrow >= PAR_MIN_WORK * 8 && outer > 1;
            AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
            for (int64_t o = 0; o < outer; o++) {
                /* an output without a gradient contributes zeros (all-zero bits in every dtype) */
                if (src) memcpy(dst + o * xrow, src + o * yrow, (size_t)yrow);
                else memset(dst + o * xrow, 0, (size_t)yrow);
            });
        }
        off += yrow;
    }
    if (off != xrow) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "gradients do not fill the output");
    return AMP_OK;
}

static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es) {
    switch (es) {
    case 1: ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]; break;
    case 2: ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]; break;
    case 4: ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]; break;
    default: ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]; break;
    }
}

amp_status amp_cpu_depth_to_space_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0];
    amp_tensor *dx = k->out[0];
    int64_t b = amp_attr_int(k->n, "blocksize", 0);
    if (dy->rank != 4 || dx->rank != 4 || b < 1 || dy->numel != dx->numel || dy->dtype != dx->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "shapes or blocksize do not match");
    bool crd = !strcmp(amp_attr_str(k->n, "mode", "DCR"), "CRD");
    int64_t C = dx->dims[1], H = dx->dims[2], W = dx->dims[3];
    int64_t OC = dy->dims[1], OH = dy->dims[2], OW = dy->dims[3];
    if (C != OC * b * b || OH != H * b || OW != W * b) return amp_kernel_fail(k, AMP_ERR_SHAPE, "shapes do not match");
    size_t es = amp_dtype_size(dx->dtype);
    int64_t planes = dx->dims[0] * C;
    AMP_PAR_FOR(dx->numel >= PAR_MIN_WORK && planes > 1, num_threads(amp_cpu_threads(k)),
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t n = pl / C, ic = pl % C;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int64_t oc, oh, ow;
                amp_gs_d2s_grad_src(ic, h, w, b, OC, crd, &oc, &oh, &ow);
                copy_elem(dx->data, (pl * H + h) * W + w, dy->data, ((n * OC + oc) * OH + oh) * OW + ow, es);
            }
    });
    return AMP_OK;
}
