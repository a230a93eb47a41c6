/* amprt's own CUDA kernels as an op family (cuda_backend.h), data movement: Gather and
 * GatherGrad, Transpose, Expand, Tile and TileGrad, Pad (constant, edge) and PadGrad (constant),
 * Resize and ResizeGrad (last two axes), Slice and SliceGrad, Concat, ConcatGrad, Split and
 * SplitGrad. Kernels: backends/cuda/k_data.cu through kernels_data.h.
 *
 * As in op_kernels.c: why_not() says why a node cannot run here, supports() asks it and
 * prepare() fails with its answer naming the node; prepare reads the attributes and the
 * geometry once and keeps the launch parameters in the step's state; run only enqueues on
 * cu->stream. The copies move elements of 1, 2, 4 or 8 bytes, whatever their dtype. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_util.h"
#include "backends/cuda/kernels_data.h"
#include "base/elem.h"
#include "ir/ops/resize.h"
#include "ir/ops/shape.h"

/* ---- shared ----------------------------------------------------------------------------------- */

static bool movable(const amp_tensor *t) {
    size_t es = t ? amp_dtype_size(t->dtype) : 0;
    return es == 1 || es == 2 || es == 4 || es == 8;
}

static bool is_index(const amp_tensor *t) { return t && (t->dtype == AMP_I64 || t->dtype == AMP_I32); }

/* ---- Gather, GatherGrad ----------------------------------------------------------------------- */

typedef struct gather_state {
    amp_k_gather g;
    amp_k_dtype dt;
} gather_state;

/* The axis of a node over data of rank r, normalised, or -1. */
static int axis_of(const amp_kernel *k, int r) {
    int64_t a = amp_attr_int(k->n, "axis", 0);
    if (a < -r || a >= r) return -1;
    return (int)(a < 0 ? a + r : a);
}

/* x: the gathered-from tensor (Gather's X, GatherGrad's dX) */
static void gather_geom(const amp_tensor *x, const amp_tensor *ind, int axis, amp_k_gather *g) {
    g->outer = g->inner = 1;
    for (int d = 0; d < axis; d++) g->outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++) g->inner *= x->dims[d];
    g->len = x->dims[axis];
    g->nidx = ind->numel;
    g->es = (int)amp_dtype_size(x->dtype);
    g->ind64 = ind->dtype == AMP_I64;
}

static const char *why_gather(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->nin > 1 ? k->in[1] : NULL, *y = k->out[0];
    if (!ind || !is_index(ind)) return "needs int32 or int64 indices";
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    int axis = axis_of(k, x->rank);
    if (axis < 0) return "has an axis out of range";
    amp_k_gather g;
    gather_geom(x, ind, axis, &g);
    if (g.outer * g.nidx * g.inner != y->numel) return "has an output size that does not match";
    return NULL;
}

static const char *why_gather_grad(const amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->nin > 2 ? k->in[2] : NULL, *dx = k->out[0];
    amp_k_dtype dt;
    if (!ind || !is_index(ind)) return "needs int32 or int64 indices";
    if (!kdtype(dx->dtype, &dt) || dy->dtype != dx->dtype) return "sums f32, f16 and bf16 only";
    int axis = axis_of(k, dx->rank);
    if (axis < 0) return "has an axis out of range";
    amp_k_gather g;
    gather_geom(dx, ind, axis, &g);
    if (g.outer * g.nidx * g.inner != dy->numel) return "has a gradient whose size does not match";
    return NULL;
}

static amp_status prepare_gather_common(const amp_kernel *k, bool grad, void **state) {
    gather_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    const amp_tensor *x = grad ? k->out[0] : k->in[0], *ind = k->in[grad ? 2 : 1];
    gather_geom(x, ind, axis_of(k, x->rank), &st->g);
    kdtype(x->dtype, &st->dt);
    return AMP_OK;
}

static amp_status run_gather(amp_cuda *cu, const amp_kernel *k, void *state) {
    const gather_state *st = state;
    return LAUNCH(k, amp_k_gather_fwd(cu->stream, &st->g, k->in[0]->data, k->in[1]->data, k->out[0]->data));
}

static amp_status run_gather_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const gather_state *st = state;
    return LAUNCH(k, amp_k_gather_grad(cu->stream, st->dt, &st->g, k->in[0]->data, k->in[2]->data, k->out[0]->data));
}

/* ---- Transpose -------------------------------------------------------------------------------- */

/* perm of the node (reversed dims when absent, as the CPU reads it), or false. */
static bool perm_of(const amp_kernel *k, int r, int64_t *perm) {
    const int64_t *p;
    if (amp_attr_ints(k->n, "perm", &p) == r) memcpy(perm, p, sizeof(int64_t) * (size_t)r);
    else
        for (int d = 0; d < r; d++) perm[d] = r - 1 - d;
    bool seen[AMP_MAX_RANK] = {false};
    for (int d = 0; d < r; d++) {
        if (perm[d] < 0 || perm[d] >= r || seen[perm[d]]) return false;
        seen[perm[d]] = true;
    }
    return true;
}

/* The launch geometry of a strided copy: the dense side's dims with the strided side's strides,
 * dims of size 1 dropped and neighbours that stay neighbours (stride of one = size times stride
 * of the next) merged. */
static void strided_geom(int r, const int64_t *dims, const int64_t *str, size_t es, amp_k_perm *p) {
    p->rank = 0;
    p->es = (int)es;
    for (int d = 0; d < r; d++) {
        int64_t n = dims[d], s = str[d];
        if (n == 1) continue;
        int m = p->rank;
        if (m > 0 && p->istride[m - 1] == n * s) {
            p->odims[m - 1] *= n;
            p->istride[m - 1] = s;
        } else {
            p->odims[m] = n;
            p->istride[m] = s;
            p->rank++;
        }
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->odims[0] = 1;
        p->istride[0] = 1;
    }
}

/* x's row-major element strides */
static void strides_of(const amp_tensor *x, int64_t *xs) {
    int64_t st = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        xs[d] = st;
        st *= x->dims[d];
    }
}

/* Transpose: output dim d reads input dim perm[d] */
static void perm_geom(const amp_tensor *x, const int64_t *perm, amp_k_perm *p) {
    int64_t xs[AMP_MAX_RANK], dims[AMP_MAX_RANK], str[AMP_MAX_RANK];
    strides_of(x, xs);
    for (int d = 0; d < x->rank; d++) {
        dims[d] = x->dims[perm[d]];
        str[d] = xs[perm[d]];
    }
    strided_geom(x->rank, dims, str, amp_dtype_size(x->dtype), p);
}

static const char *why_transpose(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    int64_t perm[AMP_MAX_RANK];
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (x->rank > AMP_K_DATA_MAX_RANK) return "runs rank 8 at most";
    if (!perm_of(k, x->rank, perm)) return "has a perm that is not a permutation of the dims";
    for (int d = 0; d < x->rank; d++)
        if (y->dims[d] != x->dims[perm[d]]) return "has an output shape that does not match perm";
    return NULL;
}

static amp_status prepare_transpose(const amp_kernel *k, void **state) {
    amp_k_perm *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    int64_t perm[AMP_MAX_RANK];
    perm_of(k, k->in[0]->rank, perm);
    perm_geom(k->in[0], perm, st);
    return AMP_OK;
}

static bool is_identity(const amp_k_perm *p) { return p->rank == 1 && p->istride[0] == 1; }

static amp_status run_transpose(amp_cuda *cu, const amp_kernel *k, void *state) {
    const amp_k_perm *st = state;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (is_identity(st)) return copy_bytes(cu, k, y->data, x->data, y->nbytes);
    return LAUNCH(k, amp_k_strided(cu->stream, st, false, x->data, y->data, y->numel));
}

/* ---- Expand ----------------------------------------------------------------------------------- */

/* y's dims read from x aligned to the right, stride 0 along a broadcast dim */
static const char *expand_geom(const amp_kernel *k, amp_k_perm *p) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    int r = y->rank, off = y->rank - x->rank;
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (off < 0 || r > AMP_K_DATA_MAX_RANK) return "expands to rank 8 at most, not below the input's";
    int64_t xs[AMP_MAX_RANK], str[AMP_MAX_RANK];
    strides_of(x, xs);
    for (int d = 0; d < r; d++) {
        int64_t xd = d < off ? 1 : x->dims[d - off];
        if (xd != 1 && xd != y->dims[d]) return "has an output shape that is not a broadcast of the input";
        str[d] = d < off || xd == 1 ? 0 : xs[d - off];
    }
    strided_geom(r, y->dims, str, amp_dtype_size(x->dtype), p);
    return NULL;
}

static const char *why_expand(const amp_kernel *k) {
    amp_k_perm p;
    return expand_geom(k, &p);
}

static amp_status prepare_expand(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(amp_k_perm), state);
    if (!s) expand_geom(k, *state);
    return s;
}

/* ---- Tile --------------------------------------------------------------------------------------- */

/* Output dim d as (repeat, x's dim d): stride 0 then x's stride; x of rank 4 at most. */
static const char *tile_geom(const amp_kernel *k, amp_k_perm *p) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    int r = x->rank;
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (2 * r > AMP_K_DATA_MAX_RANK || y->rank != r) return "tiles rank 4 at most";
    int64_t xs[AMP_MAX_RANK], dims[2 * AMP_MAX_RANK], str[2 * AMP_MAX_RANK];
    strides_of(x, xs);
    for (int d = 0; d < r; d++) {
        if (x->dims[d] == 0 ? y->dims[d] != 0 : y->dims[d] % x->dims[d] != 0)
            return "has an output shape that is not a tiling of the input";
        dims[2 * d] = x->dims[d] ? y->dims[d] / x->dims[d] : 0;
        str[2 * d] = 0;
        dims[2 * d + 1] = x->dims[d];
        str[2 * d + 1] = xs[d];
    }
    strided_geom(2 * r, dims, str, amp_dtype_size(x->dtype), p);
    return NULL;
}

static const char *why_tile(const amp_kernel *k) {
    amp_k_perm p;
    return tile_geom(k, &p);
}

static amp_status prepare_tile(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(amp_k_perm), state);
    if (!s) tile_geom(k, *state);
    return s;
}

/* ---- TileGrad --------------------------------------------------------------------------------- */

typedef struct tile_grad_state {
    amp_k_tile_grad g;
    amp_k_dtype dt;
} tile_grad_state;

/* dX seen with dY's rank (leading dims of 1), as the CPU does */
static const char *tile_grad_geom(const amp_kernel *k, tile_grad_state *st) {
    const amp_tensor *dy = k->in[0], *dx = k->out[0];
    int ry = dy->rank, lead = ry - dx->rank;
    if (!kdtype(dx->dtype, &st->dt) || dy->dtype != dx->dtype) return "sums f32, f16 and bf16 only";
    if (lead < 0 || ry > AMP_K_DATA_MAX_RANK) return "sums rank 8 at most, dY not below dX";
    amp_k_tile_grad *g = &st->g;
    memset(g, 0, sizeof *g);
    g->rank = ry > 0 ? ry : 1;
    g->xd[0] = g->rep[0] = g->ys[0] = 1;
    strides_of(dy, g->ys);
    g->nrep = 1;
    for (int d = 0; d < ry; d++) {
        g->xd[d] = d < lead ? 1 : dx->dims[d - lead];
        if (g->xd[d] == 0 ? dy->dims[d] != 0 : dy->dims[d] % g->xd[d] != 0)
            return "has dY dims that are not whole tiles";
        g->rep[d] = g->xd[d] ? dy->dims[d] / g->xd[d] : 0;
        g->nrep *= g->rep[d];
    }
    return NULL;
}

static const char *why_tile_grad(const amp_kernel *k) {
    tile_grad_state st;
    return tile_grad_geom(k, &st);
}

static amp_status prepare_tile_grad(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(tile_grad_state), state);
    if (!s) tile_grad_geom(k, *state);
    return s;
}

static amp_status run_tile_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const tile_grad_state *st = state;
    return LAUNCH(k, amp_k_tile_grad_run(cu->stream, st->dt, &st->g, k->in[0]->data, k->out[0]->data,
                                         k->out[0]->numel));
}

/* ---- Pad, PadGrad ------------------------------------------------------------------------------ */

/* pb of every dim from the plan-time pads (and axes) inputs at pslot, as the CPU reads them:
 * x is the unpadded tensor, y the padded one */
static const char *pad_geom(const amp_kernel *k, const amp_tensor *x, const amp_tensor *y, int pslot, amp_k_pad *g) {
    const amp_tensor *pt = in_opt(k, pslot), *at = in_opt(k, 3); /* axes: input 3 of both */
    int r = x->rank;
    const char *ms = amp_attr_str(k->n, "mode", "constant");
    bool grad = k->n->op == AMP_OP_PAD_GRAD;
    if (strcmp(ms, "constant") != 0 && (grad || strcmp(ms, "edge") != 0))
        return grad ? "runs constant mode only" : "runs constant and edge modes only";
    if (k->opset < 11 && !grad) return "reads pads from inputs only (opset 11 on)";
    if (!is_index(pt) || (at && !is_index(at))) return "needs int32 or int64 pads and axes";
    if (!pt->data || (at && !at->data)) return "needs pads and axes known when the step is planned";
    if (r < 1 || r > AMP_K_DATA_MAX_RANK || y->rank != r) return "pads rank 1 to 8";
    int na = r, axes[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) axes[d] = d;
    if (at) {
        if (at->numel > r) return "has more axes than dims";
        na = (int)at->numel;
        for (int i = 0; i < na; i++) {
            int64_t a = amp_ldi(at->dtype, at->data, i);
            if (a < -r || a >= r) return "has an axis out of range";
            axes[i] = (int)(a < 0 ? a + r : a);
        }
    }
    if (pt->numel != 2 * na) return "has pads whose count does not match the axes";
    memset(g, 0, sizeof *g);
    g->rank = r;
    g->es = (int)amp_dtype_size(x->dtype);
    g->edge = strcmp(ms, "edge") == 0;
    for (int i = 0; i < na; i++) g->pb[axes[i]] = amp_ldi(pt->dtype, pt->data, i);
    for (int d = 0; d < r; d++) {
        int64_t e = 0;
        for (int i = 0; i < na; i++)
            if (axes[i] == d) e = amp_ldi(pt->dtype, pt->data, i + na);
        if (x->dims[d] + g->pb[d] + e != y->dims[d]) return "has an output shape that does not match the pads";
        if (g->edge && x->dims[d] == 0 && y->dims[d] > 0) return "pads an empty axis in edge mode";
        g->yd[d] = y->dims[d];
        g->xd[d] = x->dims[d];
    }
    return NULL;
}

static const char *why_pad(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0], *cv = in_opt(k, 2);
    amp_k_pad g;
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (cv && cv->numel >= 1 && !cv->data) return "needs the constant known when the step is planned";
    return pad_geom(k, x, y, 1, &g);
}

static const char *why_pad_grad(const amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *dx = k->out[0];
    amp_k_pad g;
    amp_k_dtype dt;
    if (!kdtype(dx->dtype, &dt) || dy->dtype != dx->dtype) return "sums f32, f16 and bf16 only";
    if (k->nout > 1 && k->out[1]) return "does not write the constant's gradient";
    return pad_geom(k, dx, dy, 2, &g);
}

static amp_status prepare_pad(const amp_kernel *k, void **state) {
    amp_k_pad *g;
    amp_status s = new_state(k, sizeof *g, state);
    if (s) return s;
    g = *state;
    if (k->n->op == AMP_OP_PAD_GRAD) {
        /* dX reads dY at c + pb; outside dY (cropping pads) a zero */
        pad_geom(k, k->out[0], k->in[0], 2, g);
        for (int d = 0; d < g->rank; d++) {
            int64_t t = g->xd[d];
            g->xd[d] = g->yd[d];
            g->yd[d] = t;
            g->pb[d] = -g->pb[d];
        }
        return AMP_OK;
    }
    pad_geom(k, k->in[0], k->out[0], 1, g);
    const amp_tensor *cv = in_opt(k, 2);
    if (cv && cv->numel >= 1 && cv->dtype == k->in[0]->dtype) memcpy(&g->cval, cv->data, (size_t)g->es);
    return AMP_OK;
}

static amp_status run_pad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_pad_run(cu->stream, state, k->in[0]->data, k->out[0]->data, k->out[0]->numel));
}

/* ---- Slice, SliceGrad ------------------------------------------------------------------------- */

/* Plan-time geometry: the strided side's first element (base, elements) and strides. */
typedef struct slice_state {
    amp_k_perm g;
    int64_t base;
} slice_state;

/* The slice of x (the sliced tensor: Slice's X, SliceGrad's dX) whose result has y's dims, read
 * from the parameter inputs at p0 (starts, ends, axes?, steps?) as the CPU reads them; NULL or
 * why not. */
static const char *slice_geom(const amp_kernel *k, const amp_tensor *x, const amp_tensor *y, int p0, slice_state *st) {
    const amp_tensor *sv = in_opt(k, p0), *ev = in_opt(k, p0 + 1), *av = in_opt(k, p0 + 2), *pv = in_opt(k, p0 + 3);
    int r = x->rank;
    if (k->opset < 10 && k->n->op == AMP_OP_SLICE) return "reads starts and ends from inputs only (opset 10 on)";
    if (!is_index(sv) || !is_index(ev) || (av && !is_index(av)) || (pv && !is_index(pv)))
        return "needs int32 or int64 slice parameters";
    if (!sv->data || !ev->data || (av && !av->data) || (pv && !pv->data))
        return "needs slice parameters known when the step is planned";
    int64_t ns = sv->numel;
    if (ev->numel != ns || (av && av->numel != ns) || (pv && pv->numel != ns) || ns > r || y->rank != r)
        return "has slice parameters that disagree in length";
    if (r > AMP_K_DATA_MAX_RANK) return "runs rank 8 at most";
    int64_t first[AMP_MAX_RANK] = {0}, step[AMP_MAX_RANK], cnt[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) {
        step[d] = 1;
        cnt[d] = x->dims[d];
    }
    for (int64_t i = 0; i < ns; i++) {
        int64_t a = av ? amp_ldi(av->dtype, av->data, i) : i;
        if (a < 0) a += r;
        if (a < 0 || a >= r) return "has an axis out of range";
        int64_t sp = pv ? amp_ldi(pv->dtype, pv->data, i) : 1;
        if (sp == 0) return "has a step of 0";
        step[a] = sp;
        cnt[a] = amp_slice_axis(x->dims[a], amp_ldi(sv->dtype, sv->data, i), amp_ldi(ev->dtype, ev->data, i), sp,
                                &first[a]);
    }
    for (int d = 0; d < r; d++)
        if (cnt[d] != y->dims[d]) return "has a result shape that does not match the slice";
    int64_t xs[AMP_MAX_RANK], str[AMP_MAX_RANK];
    strides_of(x, xs);
    st->base = 0;
    for (int d = 0; d < r; d++) {
        st->base += first[d] * xs[d];
        str[d] = step[d] * xs[d];
    }
    strided_geom(r, y->dims, str, amp_dtype_size(x->dtype), &st->g);
    return NULL;
}

static const char *why_slice(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    slice_state st;
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    return slice_geom(k, x, y, 1, &st);
}

static const char *why_slice_grad(const amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *dx = k->out[0];
    slice_state st;
    if (!movable(dx) || dy->dtype != dx->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    return slice_geom(k, dx, dy, 2, &st);
}

static amp_status prepare_slice_common(const amp_kernel *k, bool grad, void **state) {
    slice_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    if (grad) slice_geom(k, k->out[0], k->in[0], 2, st);
    else slice_geom(k, k->in[0], k->out[0], 1, st);
    return AMP_OK;
}

static amp_status run_slice(amp_cuda *cu, const amp_kernel *k, void *state) {
    const slice_state *st = state;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (y->numel == 0) return AMP_OK;
    const uint8_t *src = (const uint8_t *)x->data + st->base * st->g.es;
    if (is_identity(&st->g)) return copy_bytes(cu, k, y->data, src, y->nbytes);
    return LAUNCH(k, amp_k_strided(cu->stream, &st->g, false, src, y->data, y->numel));
}

/* dX is zeros with dY written where the slice read (each element at most once: no sums) */
static amp_status run_slice_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const slice_state *st = state;
    const amp_tensor *dy = k->in[0];
    amp_tensor *dx = k->out[0];
    if (dx->nbytes == 0) return AMP_OK;
    if (dy->nbytes == dx->nbytes) return copy_bytes(cu, k, dx->data, dy->data, dx->nbytes);
    amp_status s = AMP_CUDA_RT(k->ctx, cudaMemsetAsync(dx->data, 0, dx->nbytes, cu->stream));
    if (s || dy->numel == 0) return s;
    uint8_t *dst = (uint8_t *)dx->data + st->base * st->g.es;
    return LAUNCH(k, amp_k_strided(cu->stream, &st->g, true, dy->data, dst, dy->numel));
}

/* ---- Concat, ConcatGrad, Split, SplitGrad ----------------------------------------------------- */

/* One side is whole (Concat's Y, Split's X), the parts are slabs of it along the axis: each
 * part is `outer` rows of part_row bytes at byte offset off[i] of the whole's rows of row bytes
 * (a strided 2-D copy). */
#define CAT_MAX_PARTS 64
typedef struct cat_state {
    int n;
    int64_t outer, row;
    int64_t part_row[CAT_MAX_PARTS], off[CAT_MAX_PARTS];
} cat_state;

/* The whole and the part tensors of the node (a part may be NULL: an absent gradient). */
static const amp_tensor *cat_whole(const amp_kernel *k) {
    switch (k->n->op) {
    case AMP_OP_CONCAT:
    case AMP_OP_SPLIT_GRAD: return k->out[0];
    default: return k->in[0];
    }
}
static int cat_nparts(const amp_kernel *k) {
    switch (k->n->op) {
    case AMP_OP_CONCAT: return k->nin;
    case AMP_OP_SPLIT_GRAD: return k->nin - 1;
    default: return k->nout;
    }
}
static const amp_tensor *cat_part(const amp_kernel *k, int i) {
    switch (k->n->op) {
    case AMP_OP_CONCAT: return k->in[i];
    case AMP_OP_SPLIT_GRAD: return k->in[1 + i];
    default: return k->out[i];
    }
}

/* A part's length along the axis: SplitGrad's from its shapes input (plan-time; a gradient may
 * be absent), else the part's dims. */
static const char *cat_geom(const amp_kernel *k, cat_state *st) {
    const amp_tensor *w = cat_whole(k);
    int r = w->rank, n = cat_nparts(k);
    int64_t a = amp_attr_int(k->n, "axis", k->n->op == AMP_OP_CONCAT ? 1 : 0);
    if (a < -r || a >= r) return "has an axis out of range";
    int axis = (int)(a < 0 ? a + r : a);
    if (!movable(w)) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (n < 1 || n > CAT_MAX_PARTS) return "moves 1 to 64 parts";
    const amp_tensor *shapes = k->n->op == AMP_OP_SPLIT_GRAD ? k->in[0] : NULL;
    if (shapes && (!is_index(shapes) || !shapes->data || shapes->numel != (int64_t)n * r))
        return "needs the parts' shapes known when the step is planned";
    int64_t es = (int64_t)amp_dtype_size(w->dtype), inner = es;
    st->n = n;
    st->outer = 1;
    for (int d = 0; d < axis; d++) st->outer *= w->dims[d];
    for (int d = axis + 1; d < r; d++) inner *= w->dims[d];
    st->row = w->dims[axis] * inner;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const amp_tensor *p = cat_part(k, i);
        int64_t len = shapes ? amp_ldi(shapes->dtype, shapes->data, (int64_t)i * r + axis) : p ? p->dims[axis] : -1;
        if (p && (p->dtype != w->dtype || p->rank != r || p->numel != st->outer * len * (inner / es)))
            return "has parts that do not match the whole";
        if (len < 0) return "has a part without a shape";
        st->part_row[i] = len * inner;
        st->off[i] = off;
        off += len * inner;
    }
    if (off > st->row || (k->n->op != AMP_OP_SPLIT && k->n->op != AMP_OP_CONCAT_GRAD && off != st->row))
        return "has parts that do not fill the whole";
    return NULL;
}

static const char *why_cat(const amp_kernel *k) {
    cat_state st;
    return cat_geom(k, &st);
}

static amp_status prepare_cat(const amp_kernel *k, void **state) {
    cat_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    cat_geom(k, st);
    return AMP_OK;
}

static amp_status run_cat(amp_cuda *cu, const amp_kernel *k, void *state) {
    const cat_state *st = state;
    bool into_whole = k->n->op == AMP_OP_CONCAT || k->n->op == AMP_OP_SPLIT_GRAD;
    amp_tensor *wt = (amp_tensor *)cat_whole(k);
    uint8_t *w = wt->data;
    if (st->outer == 0 || st->row == 0) return AMP_OK;
    /* an absent gradient (SplitGrad) contributes zeros: all-zero bits in every dtype */
    for (int i = 0; into_whole && i < st->n; i++)
        if (!cat_part(k, i)) {
            amp_status s = AMP_CUDA_RT(k->ctx, cudaMemsetAsync(w, 0, wt->nbytes, cu->stream));
            if (s) return s;
            break;
        }
    for (int i = 0; i < st->n; i++) {
        const amp_tensor *p = cat_part(k, i);
        size_t pr = (size_t)st->part_row[i], row = (size_t)st->row, h = (size_t)st->outer;
        if (!p || pr == 0) continue;
        amp_status s = into_whole ? AMP_CUDA_RT(k->ctx, cudaMemcpy2DAsync(w + st->off[i], row, p->data, pr, pr, h,
                                                                          cudaMemcpyDeviceToDevice, cu->stream))
                                  : AMP_CUDA_RT(k->ctx, cudaMemcpy2DAsync(p->data, pr, w + st->off[i], row, pr, h,
                                                                          cudaMemcpyDeviceToDevice, cu->stream));
        if (s) return s;
    }
    return AMP_OK;
}

/* ---- Resize, ResizeGrad ----------------------------------------------------------------------- */

typedef struct resize_state {
    amp_k_resize2d g;
    amp_k_dtype dt;
    bool copy; /* nothing resized */
} resize_state;

/* The geometry of a Resize (x -> y) or ResizeGrad (dX's shape) node as the CPU reads it, its
 * tables built on the host and kept by value when only the last two axes are resized with 1
 * or 2 taps and at most AMP_K_RESIZE_TAB table entries per axis; NULL or why not. */
static const char *resize_geom(const amp_kernel *k, bool grad, resize_state *st, char *why, size_t whylen) {
    const amp_tensor *x = grad ? k->out[0] : k->in[0];
    amp_resize_slots sl;
    if (grad) {
        const char *op = amp_attr_str(k->n, "fwd_op", "");
        sl = (amp_resize_slots){.upsample = strcmp(op, "Upsample") == 0, .opset = amp_attr_int(k->n, "fwd_opset", 0),
                                .roi = 2, .scales = 3, .sizes = 4};
    } else {
        amp_resize_forward_slots(k->n, k->opset, &sl);
    }
    const amp_tensor *roi = amp_resize_kernel_input(k, sl.roi), *sc = amp_resize_kernel_input(k, sl.scales),
                     *sz = amp_resize_kernel_input(k, sl.sizes);
    if ((roi && !roi->data) || (sc && !sc->data) || (sz && !sz->data))
        return "needs roi, scales and sizes known when the step is planned";
    amp_resize_geom g;
    amp_resize_plan p;
    if (amp_resize_geometry(k->n, &sl, x->rank, x->dims, roi, roi != NULL, sc, sz, &g, why, whylen) ||
        amp_resize_plan_make(&g, x->dtype, grad, INT64_MAX, &p, why, whylen))
        return why;
    if (g.mode != AMP_RZ_NEAREST && g.mode != AMP_RZ_LINEAR) return "resizes nearest and linear only";
    if (g.antialias || g.ctm == AMP_RZ_TF_CROP_AND_RESIZE) return "has no kernel for antialias or tf_crop_and_resize";
    int r = g.rank;
    if (r < 2) return "resizes rank 2 and more";
    for (int d = 0; d < r - 2; d++)
        if (!g.identity[d] && g.in[d] != g.out[d]) return "resizes the last two axes only";
    amp_k_dtype dt = AMP_K_F32;
    if (g.mode == AMP_RZ_LINEAR && !kdtype(x->dtype, &dt)) return "interpolates f32, f16 and bf16 only";
    if (grad && !kdtype(x->dtype, &dt)) return "sums f32, f16 and bf16 only";
    if (!movable(x)) return "moves elements of 1, 2, 4 or 8 bytes only";
    amp_k_resize2d *kg = &st->g;
    memset(kg, 0, sizeof *kg);
    st->dt = dt;
    kg->planes = 1;
    for (int d = 0; d < r - 2; d++) kg->planes *= g.in[d];
    kg->h = g.in[r - 2];
    kg->w = g.in[r - 1];
    kg->ho = g.out[r - 2];
    kg->wo = g.out[r - 1];
    kg->es = g.mode == AMP_RZ_NEAREST && !grad ? (int)amp_dtype_size(x->dtype) : 0;
    st->copy = p.npass == 0;
    int taps[2];
    for (int q = 0; q < 2; q++) {
        int d = r - 2 + q;
        int64_t K = g.identity[d] || g.taps[d] == 0 ? 1 : g.taps[d];
        if (K > 2) return "has more than 2 taps per axis";
        if (g.out[d] * K > AMP_K_RESIZE_TAB) return "has an axis whose tables exceed 128 entries";
        taps[q] = (int)K;
    }
    kg->kh = taps[0];
    kg->kw = taps[1];
    void *ws = p.bytes ? amp_calloc(k->ctx, 1, p.bytes) : NULL;
    if (p.bytes && !ws) return "has no host memory for its tables";
    amp_resize_tab tab[AMP_MAX_RANK];
    if (p.npass) amp_resize_tables(&g, &p, ws, tab);
    for (int q = 0; q < 2; q++) {
        int d = r - 2 + q, K = taps[q];
        int32_t *idx = q ? kg->iw : kg->ih;
        float *wt = q ? kg->ww : kg->wh;
        bool pass = false;
        for (int i = 0; i < p.npass; i++) pass |= p.axes[i] == d;
        for (int64_t j = 0; j < g.out[d] * K; j++) {
            idx[j] = pass ? (int32_t)tab[d].idx[j] : (int32_t)j;
            wt[j] = pass ? tab[d].wf[j] : 1.0f;
        }
    }
    amp_free(k->ctx, ws);
    return NULL;
}

static const char *why_resize(const amp_kernel *k) {
    static _Thread_local char why[256];
    resize_state st;
    bool grad = k->n->op == AMP_OP_RESIZE_GRAD;
    const amp_tensor *a = k->in[0], *b = k->out[0];
    if (a->dtype != b->dtype) return "keeps the dtype";
    return resize_geom(k, grad, &st, why, sizeof why);
}

static amp_status prepare_resize(const amp_kernel *k, void **state) {
    resize_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    char why[256];
    resize_geom(k, k->n->op == AMP_OP_RESIZE_GRAD, st, why, sizeof why);
    return AMP_OK;
}

static amp_status run_resize(amp_cuda *cu, const amp_kernel *k, void *state) {
    const resize_state *st = state;
    if (st->copy) return copy_bytes(cu, k, k->out[0]->data, k->in[0]->data, k->out[0]->nbytes);
    if (k->n->op == AMP_OP_RESIZE_GRAD)
        return LAUNCH(k, amp_k_resize2d_grad(cu->stream, st->dt, &st->g, k->in[0]->data, k->out[0]->data));
    return LAUNCH(k, amp_k_resize2d_fwd(cu->stream, st->dt, &st->g, k->in[0]->data, k->out[0]->data));
}

/* ---- the table -------------------------------------------------------------------------------- */

static const char *why_not(const amp_kernel *k) {
    if (k->nin < 1 || k->nout < 1 || !k->in[0] || !k->out[0]) return "needs its input and output";
    switch (k->n->op) {
    case AMP_OP_GATHER: return why_gather(k);
    case AMP_OP_GATHER_GRAD: return why_gather_grad(k);
    case AMP_OP_TRANSPOSE: return why_transpose(k);
    case AMP_OP_EXPAND: return why_expand(k);
    case AMP_OP_TILE: return why_tile(k);
    case AMP_OP_PAD: return why_pad(k);
    case AMP_OP_PAD_GRAD: return why_pad_grad(k);
    case AMP_OP_TILE_GRAD: return why_tile_grad(k);
    case AMP_OP_RESIZE:
    case AMP_OP_RESIZE_GRAD: return why_resize(k);
    case AMP_OP_SLICE: return why_slice(k);
    case AMP_OP_SLICE_GRAD: return why_slice_grad(k);
    case AMP_OP_CONCAT:
    case AMP_OP_CONCAT_GRAD:
    case AMP_OP_SPLIT:
    case AMP_OP_SPLIT_GRAD: return why_cat(k);
    default: return "is not an op of this family";
    }
}

static bool supports(amp_cuda *cu, const amp_kernel *k) {
    (void)cu;
    return why_not(k) == NULL;
}

static amp_status prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    (void)cu;
    *state = NULL;
    *ws_bytes = 0;
    const char *why = why_not(k);
    if (why) {
        return refuse(k, in_opt(k, 0), why);
    }
    switch (k->n->op) {
    case AMP_OP_GATHER: return prepare_gather_common(k, false, state);
    case AMP_OP_GATHER_GRAD: return prepare_gather_common(k, true, state);
    case AMP_OP_TRANSPOSE: return prepare_transpose(k, state);
    case AMP_OP_EXPAND: return prepare_expand(k, state);
    case AMP_OP_TILE: return prepare_tile(k, state);
    case AMP_OP_PAD:
    case AMP_OP_PAD_GRAD: return prepare_pad(k, state);
    case AMP_OP_TILE_GRAD: return prepare_tile_grad(k, state);
    case AMP_OP_RESIZE:
    case AMP_OP_RESIZE_GRAD: return prepare_resize(k, state);
    case AMP_OP_SLICE: return prepare_slice_common(k, false, state);
    case AMP_OP_SLICE_GRAD: return prepare_slice_common(k, true, state);
    case AMP_OP_CONCAT:
    case AMP_OP_CONCAT_GRAD:
    case AMP_OP_SPLIT:
    case AMP_OP_SPLIT_GRAD: return prepare_cat(k, state);
    default: return AMP_OK;
    }
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_data[] = {
    ENTRY(GATHER, run_gather),
    ENTRY(GATHER_GRAD, run_gather_grad),
    ENTRY(TRANSPOSE, run_transpose),
    ENTRY(EXPAND, run_transpose), /* the same strided read */
    ENTRY(TILE, run_transpose),
    ENTRY(TILE_GRAD, run_tile_grad),
    ENTRY(PAD, run_pad),
    ENTRY(PAD_GRAD, run_pad),
    ENTRY(RESIZE, run_resize),
    ENTRY(RESIZE_GRAD, run_resize),
    ENTRY(SLICE, run_slice),
    ENTRY(SLICE_GRAD, run_slice_grad),
    ENTRY(CONCAT, run_cat),
    ENTRY(CONCAT_GRAD, run_cat),
    ENTRY(SPLIT, run_cat),
    ENTRY(SPLIT_GRAD, run_cat),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
