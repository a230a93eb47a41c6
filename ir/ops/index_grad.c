/* Gradients of the index family (ir/grad.h): the builder amp_grad_index and the shape inference
 * of its training-domain ops (ir/ops/index_grad.def; kernels in backends/cpu/index_grad.c).
 *
 *  GatherND         dX = GatherNDGrad(dY, Shape(X), indices): dY's slices added into zeros.
 *  ScatterND        none: dData = ScatterNDDataGrad(dY, indices) (dY with the written slices
 *                   zeroed); add: dData = dY. dUpdates = GatherND(dY, indices) for both.
 *                   mul, max and min are not differentiated.
 *  TopK             dX = GatherElementsGrad(dValues, Shape(X), Indices) along the axis: the shape
 *                   family's scatter-add into zeros (TopK's indices never repeat within a row).
 *  ReverseSequence  dX = ReverseSequence(dY, sequence_lens): the reversal is its own inverse.
 *  MaxUnpool        dX = MaxUnpoolGrad(dY, I): dY read where each X element landed (zero for an
 *                   element a later one with the same index overwrote).
 * Integer inputs (indices, lengths, K, output_shape) get no gradient. Scatter (opsets 9-10)
 * has none either. */
#include <string.h>

#include "ir/grad.h"

static const amp_dtype index_types[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};

static const char *label(const amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    return f->name && f->name[0] ? f->name : f->op_type;
}

/* ---- inference of the training ops ---------------------------------------------------------- */

static amp_status set_out(amp_infer *c, amp_dtype dt, int rank, const int64_t *dims) {
    amp_status s = amp_shape_numel(rank, dims, dt, NULL, NULL);
    if (s) return amp_infer_fail(c, s, "output size overflows or is invalid");
    amp_tinfo *o = c->out[0];
    o->dtype = dt;
    o->rank = rank;
    memset(o->dims, 0, sizeof o->dims);
    for (int d = 0; d < rank; d++) o->dims[d] = dims[d];
    return AMP_OK;
}

static amp_status expect_dims(amp_infer *c, const amp_tinfo *t, const char *what, int r, const int64_t *dims) {
    bool ok = t->rank == r;
    for (int d = 0; ok && d < r; d++) ok = t->dims[d] == dims[d];
    if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "%s does not have the shape the forward op gives", what);
    return AMP_OK;
}

/* GatherNDGrad(dY, shape, indices) -> dX, attribute batch_dims. dY must be what GatherND of a
 * tensor of `shape` gives: the forward inference checks that, run on a stand-in for X. */
amp_status amp_infer_gather_nd_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    int64_t v[AMP_MAX_RANK + 1];
    int r = 0;
    if ((s = amp_infer_const_ints(c, 1, v, AMP_MAX_RANK + 1, &r))) return s;
    if (r > AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "shape of rank %d", r);
    amp_tinfo x = {.dtype = dy->dtype, .rank = r};
    for (int d = 0; d < r; d++) {
        if (v[d] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "shape dim %d is %lld", d, (long long)v[d]);
        x.dims[d] = v[d];
    }
    amp_tinfo y = {0};
    const amp_tinfo *fin[2] = {&x, c->in[2]};
    amp_tinfo *fout[1] = {&y};
    /* batch_dims is valid from opset 12 on */
    amp_infer f = {.ctx = c->ctx, .g = c->g, .n = c->n, .opset = 13, .nin = 2, .nout = 1, .in = fin, .out = fout};
    if ((s = amp_infer_gather_nd(&f))) return s;
    if ((s = expect_dims(c, dy, "dY", y.rank, y.dims))) return s;
    return set_out(c, dy->dtype, r, x.dims);
}

/* ScatterNDDataGrad(dY, indices) -> dX: dY with the slices the index tuples address zeroed. */
amp_status amp_infer_scatter_nd_data_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *dy = c->in[0], *ind = c->in[1];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    if (dy->rank < 1 || ind->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY and indices need rank >= 1");
    if (ind->dims[ind->rank - 1] > dy->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "index tuples of %lld values for rank %d",
                              (long long)ind->dims[ind->rank - 1], dy->rank);
    return set_out(c, dy->dtype, dy->rank, dy->dims);
}

/* MaxUnpoolGrad(dY, I) -> dX, MaxUnpool's attributes: dX has I's shape; dY the forward
 * output's (the unpooled shape, or a larger output_shape). */
amp_status amp_infer_max_unpool_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *dy = c->in[0], *ind = c->in[1];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    amp_tinfo x = {.dtype = dy->dtype, .rank = ind->rank};
    memcpy(x.dims, ind->dims, sizeof x.dims);
    amp_tinfo y = {0};
    const amp_tinfo *fin[2] = {&x, ind};
    amp_tinfo *fout[1] = {&y};
    amp_infer f = {.ctx = c->ctx, .g = c->g, .n = c->n, .opset = 11, .nin = 2, .nout = 1, .in = fin, .out = fout};
    if ((s = amp_infer_max_unpool(&f))) return s;
    bool ok = dy->rank == y.rank;
    for (int d = 0; ok && d < y.rank; d++) ok = dy->dims[d] >= y.dims[d];
    if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY is smaller than the unpooled shape");
    return set_out(c, dy->dtype, ind->rank, ind->dims);
}

/* ---- the builder ------------------------------------------------------------------------------ */

static amp_status shape_of(amp_grad_ctx *c, int v, int *out) {
    return amp_grad_node(c, "Shape", "", 1, &v, 1, out, NULL);
}

static amp_status grad_gather_nd(amp_grad_ctx *c) {
    int ins[3] = {c->dy[0], -1, amp_grad_in(c, 1)};
    amp_status s = shape_of(c, amp_grad_in(c, 0), &ins[1]);
    if (s) return s;
    amp_node *n;
    if ((s = amp_grad_node(c, "GatherNDGrad", AMP_TRAIN_DOMAIN, 3, ins, 1, &c->dx[0], &n))) return s;
    return amp_grad_attr_int(c, n, "batch_dims", amp_attr_int(amp_grad_fwd(c), "batch_dims", 0));
}

static amp_status grad_scatter_nd(amp_grad_ctx *c) {
    const char *red = amp_attr_str(amp_grad_fwd(c), "reduction", "none");
    bool add = strcmp(red, "add") == 0;
    if (!add && strcmp(red, "none") != 0)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': ScatterND with reduction '%s' has no gradient",
                          label(c), red);
    int ind = amp_grad_in(c, 1);
    amp_status s;
    if (c->need[0]) {
        if (add) {
            /* data passes through; the updates add on top */
            c->dx[0] = c->dy[0];
        } else {
            int ins[2] = {c->dy[0], ind};
            if ((s = amp_grad_node(c, "ScatterNDDataGrad", AMP_TRAIN_DOMAIN, 2, ins, 1, &c->dx[0], NULL))) return s;
        }
    }
    if (c->nin > 2 && c->need[2]) {
        int ins[2] = {c->dy[0], ind};
        if ((s = amp_grad_node(c, "GatherND", "", 2, ins, 1, &c->dx[2], NULL))) return s;
    }
    return AMP_OK;
}

static amp_status grad_top_k(amp_grad_ctx *c) {
    if (c->dy[0] < 0) return AMP_OK; /* only Values carries a gradient */
    int idx = amp_grad_out(c, 1);
    if (idx < 0)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': TopK's gradient needs its Indices output",
                          label(c));
    int ins[3] = {c->dy[0], -1, idx};
    amp_status s = shape_of(c, amp_grad_in(c, 0), &ins[1]);
    if (s) return s;
    amp_node *n;
    if ((s = amp_grad_node(c, "GatherElementsGrad", AMP_TRAIN_DOMAIN, 3, ins, 1, &c->dx[0], &n))) return s;
    return amp_grad_attr_int(c, n, "axis", amp_attr_int(amp_grad_fwd(c), "axis", -1));
}

static amp_status grad_reverse_sequence(amp_grad_ctx *c) {
    int ins[2] = {c->dy[0], amp_grad_in(c, 1)};
    amp_node *n;
    amp_status s = amp_grad_node(c, "ReverseSequence", "", 2, ins, 1, &c->dx[0], &n);
    return s ? s : amp_grad_copy_attrs(c, n);
}

static amp_status grad_max_unpool(amp_grad_ctx *c) {
    int ins[2] = {c->dy[0], amp_grad_in(c, 1)};
    amp_node *n;
    amp_status s = amp_grad_node(c, "MaxUnpoolGrad", AMP_TRAIN_DOMAIN, 2, ins, 1, &c->dx[0], &n);
    return s ? s : amp_grad_copy_attrs(c, n);
}

amp_status amp_grad_index(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_GATHER_ND: return c->need[0] ? grad_gather_nd(c) : AMP_OK;
    case AMP_OP_SCATTER_ND: return grad_scatter_nd(c);
    case AMP_OP_TOP_K: return c->need[0] ? grad_top_k(c) : AMP_OK;
    case AMP_OP_REVERSE_SEQUENCE: return c->need[0] ? grad_reverse_sequence(c) : AMP_OK;
    case AMP_OP_MAX_UNPOOL: return c->need[0] ? grad_max_unpool(c) : AMP_OK;
    default: return AMP_ERR_NOT_FOUND;
    }
}
