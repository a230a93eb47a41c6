/* Shape inference of the index family: GatherND, ScatterND, Scatter (opsets 9-10), TopK,
 * ReverseSequence and MaxUnpool. Kernels in backends/cpu/index.c. */
#include <string.h>

#include "ir/ir.h"

/* ONNX types indices as int64; int32 is taken as well, as Gather and ScatterElements do. */
static const amp_dtype index_types[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};

/* ---- GatherND, ScatterND -------------------------------------------------------------------- */

amp_status amp_infer_gather_nd(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *ind = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    int64_t b = 0;
    if ((s = amp_infer_int_attr(c, "batch_dims", 0, &b))) return s;
    if (b != 0 && c->opset < 12)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "batch_dims arrived at opset 12 (node at opset %lld)",
                              (long long)c->opset);
    int r = x->rank, q = ind->rank;
    if (r < 1 || q < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "data and indices need rank >= 1 (have %d, %d)", r, q);
    if (b < 0 || b >= r || b >= q)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "batch_dims %lld must be in [0, min(%d, %d))", (long long)b,
                              r, q);
    for (int d = 0; d < b; d++)
        if (ind->dims[d] != x->dims[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "batch dim %d: indices have %lld, data %lld", d,
                                  (long long)ind->dims[d], (long long)x->dims[d]);
    int64_t k = ind->dims[q - 1];
    if (k > r - b)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "index tuples of %lld values for %lld non-batch dims of data",
                              (long long)k, (long long)(r - b));
    /* indices' leading dims, then the data dims the tuples leave unindexed */
    int64_t dims[2 * AMP_MAX_RANK];
    int o = 0;
    for (int d = 0; d < q - 1; d++) dims[o++] = ind->dims[d];
    for (int d = (int)(b + k); d < r; d++) dims[o++] = x->dims[d];
    return amp_infer_set_out(c, 0, x->dtype, o, dims);
}

/* The reductions each opset of ScatterND allows. */
static amp_status check_reduction(amp_infer *c) {
    const amp_attr *a = amp_node_attr(c->n, "reduction");
    if (!a) return AMP_OK;
    if (a->kind != AMP_ATTR_STRING) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "reduction must be a string");
    const char *r = a->s ? a->s : "";
    bool basic = !strcmp(r, "none") || !strcmp(r, "add") || !strcmp(r, "mul");
    bool minmax = !strcmp(r, "max") || !strcmp(r, "min");
    if (!basic && !minmax) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown reduction '%s'", r);
    if (c->opset < 16)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "the reduction attribute arrived at opset 16 (node at %lld)",
                              (long long)c->opset);
    if (minmax && c->opset < 18)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "reduction '%s' arrived at opset 18 (node at %lld)", r,
                              (long long)c->opset);
    return AMP_OK;
}

amp_status amp_infer_scatter_nd(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *ind = c->in[1], *upd = c->in[2];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    if (upd->dtype != x->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "updates are %s, data %s", amp_dtype_name(upd->dtype),
                              amp_dtype_name(x->dtype));
    if ((s = check_reduction(c))) return s;
    int r = x->rank, q = ind->rank;
    if (r < 1 || q < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "data and indices need rank >= 1 (have %d, %d)", r, q);
    int64_t k = ind->dims[q - 1];
    if (k > r)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "index tuples of %lld values for data of rank %d", (long long)k, r);
    /* updates: indices.shape[:-1] ++ data.shape[k:] */
    int want = q - 1 + r - (int)k;
    bool ok = upd->rank == want;
    for (int d = 0; ok && d < q - 1; d++) ok = upd->dims[d] == ind->dims[d];
    for (int d = (int)k; ok && d < r; d++) ok = upd->dims[q - 1 + d - k] == x->dims[d];
    if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "updates must have shape indices.shape[:-1] + data.shape[%lld:]",
                                   (long long)k);
    return amp_infer_set_out(c, 0, x->dtype, r, x->dims);
}

/* Scatter (opsets 9 and 10) is ScatterElements without a reduction. */
amp_status amp_infer_scatter(amp_infer *c) {
    if (amp_node_attr(c->n, "reduction"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "Scatter has no reduction attribute (ScatterElements has)");
    return amp_infer_scatter_elements(c);
}

/* ---- TopK ----------------------------------------------------------------------------------- */

amp_status amp_infer_top_k(amp_infer *c) {
    bool k_attr = c->opset < 10;
    amp_status s = amp_infer_need_inputs(c, k_attr ? 1 : 2, k_attr ? 1 : 2);
    if (s) return s;
    if (c->nout < 1 || c->nout > 2) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has 2 outputs, not %d", c->nout);
    const amp_tinfo *x = c->in[0];
    /* integer inputs arrived at opset 11 */
    if ((s = amp_infer_dtype_in(c, x->dtype, c->opset < 11 ? amp_dt_float : amp_dt_numeric))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 1");
    if (c->opset < 11 && (amp_node_attr(c->n, "largest") || amp_node_attr(c->n, "sorted")))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "largest and sorted arrived at opset 11 (node at %lld)",
                              (long long)c->opset);
    int64_t axis_v = -1, flag = 1;
    if ((s = amp_infer_int_attr(c, "axis", -1, &axis_v))) return s;
    if ((s = amp_infer_int_attr(c, "largest", 1, &flag)) || (s = amp_infer_int_attr(c, "sorted", 1, &flag))) return s;
    int axis;
    if ((s = amp_infer_axis(c, axis_v, x->rank, &axis))) return s;
    int64_t k, n = x->dims[axis];
    if (k_attr) {
        const amp_attr *a = amp_node_attr(c->n, "k");
        if (!a || a->kind != AMP_ATTR_INT) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute k is required");
        k = a->i;
        if (k < 0 || k > n)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "k = %lld is outside [0, %lld]", (long long)k,
                                  (long long)n);
    } else {
        if (amp_node_attr(c->n, "k"))
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "k is an input from opset 10, not an attribute");
        const amp_tinfo *kt = c->in[1];
        if (kt->dtype != AMP_I64 && kt->dtype != AMP_I32)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "K must be int64, is %s", amp_dtype_name(kt->dtype));
        int64_t v[1];
        int nv = 0;
        if (kt->rank > 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "K must be 1-D, has rank %d", kt->rank);
        if (!kt->value)
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "data-dependent shape: K must be known before running");
        if (kt->value->numel != 1)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "K must hold one value, holds %lld", (long long)kt->value->numel);
        if ((s = amp_infer_const_ints(c, 1, v, 1, &nv))) return s;
        k = v[0];
        if (k < 0 || k > n)
            return amp_infer_fail(c, AMP_ERR_INVALID_ARG, "K = %lld is outside [0, %lld]", (long long)k, (long long)n);
    }
    int64_t dims[AMP_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = k;
    if ((s = amp_infer_set_out(c, 0, x->dtype, x->rank, dims))) return s;
    if (c->nout > 1 && (s = amp_infer_set_out(c, 1, AMP_I64, x->rank, dims))) return s;
    return AMP_OK;
}

/* ---- ReverseSequence ------------------------------------------------------------------------ */

amp_status amp_infer_reverse_sequence(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *len = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, len->dtype, index_types))) return s;
    if (x->rank < 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 2, has %d", x->rank);
    int64_t ba = 1, ta = 0;
    if ((s = amp_infer_int_attr(c, "batch_axis", 1, &ba)) || (s = amp_infer_int_attr(c, "time_axis", 0, &ta))) return s;
    if ((ba != 0 && ba != 1) || (ta != 0 && ta != 1) || ba == ta)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "batch_axis (%lld) and time_axis (%lld) must be 0 and 1",
                              (long long)ba, (long long)ta);
    if (len->rank != 1 || len->dims[0] != x->dims[ba])
        return amp_infer_fail(c, AMP_ERR_SHAPE, "sequence_lens must have shape [%lld]", (long long)x->dims[ba]);
    return amp_infer_set_out(c, 0, x->dtype, x->rank, x->dims);
}

/* ---- MaxUnpool ------------------------------------------------------------------------------ */

/* Reads kernel_shape, strides and pads for sp spatial dims; fills the unpooled ("inferred")
 * dims of an input of dims xd: (in - 1) * stride - pad_begin - pad_end + kernel. */
static amp_status unpool_dims(amp_infer *c, int rank, const int64_t *xd, int64_t *out) {
    int sp = rank - 2;
    const int64_t *ks = NULL, *st = NULL, *pd = NULL;
    int nk = amp_attr_ints(c->n, "kernel_shape", &ks);
    int ns = amp_attr_ints(c->n, "strides", &st);
    int np = amp_attr_ints(c->n, "pads", &pd);
    if (nk < 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute kernel_shape is required");
    if (nk != sp)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "kernel_shape has %d values for %d spatial dims", nk, sp);
    if (ns >= 0 && ns != sp)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "strides has %d values for %d spatial dims", ns, sp);
    if (np >= 0 && np != 2 * sp)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "pads has %d values for %d spatial dims", np, sp);
    out[0] = xd[0];
    out[1] = xd[1];
    for (int d = 0; d < sp; d++) {
        int64_t kk = ks[d], s = ns >= 0 ? st[d] : 1, pb = np >= 0 ? pd[d] : 0, pe = np >= 0 ? pd[d + sp] : 0;
        if (kk < 1 || s < 1 || pb < 0 || pe < 0)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "spatial dim %d: kernel %lld, stride %lld, pads %lld %lld",
                                  d, (long long)kk, (long long)s, (long long)pb, (long long)pe);
        int64_t v;
        if (__builtin_mul_overflow(xd[2 + d] - 1, s, &v) || __builtin_sub_overflow(v, pb, &v) ||
            __builtin_sub_overflow(v, pe, &v) || __builtin_add_overflow(v, kk, &v))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "unpooled dim %d overflows", d);
        if (v < 0)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "the pads leave spatial dim %d negative (%lld)", d, (long long)v);
        out[2 + d] = v;
    }
    return AMP_OK;
}

amp_status amp_infer_max_unpool(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *ind = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    int r = x->rank;
    if (r < 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must be (N, C, D1, ...), has rank %d", r);
    bool same = ind->rank == r;
    for (int d = 0; same && d < r; d++) same = ind->dims[d] == x->dims[d];
    if (!same) return amp_infer_fail(c, AMP_ERR_SHAPE, "I must have the shape of X");
    int64_t dims[AMP_MAX_RANK];
    if ((s = unpool_dims(c, r, x->dims, dims))) return s;
    if ((s = amp_infer_set_out(c, 0, x->dtype, r, dims))) return s;
    if (c->nin > 2 && c->in[2]) {
        int64_t v[AMP_MAX_RANK + 1];
        int n = 0;
        if ((s = amp_infer_const_ints(c, 2, v, AMP_MAX_RANK + 1, &n))) return s;
        if (n != r) return amp_infer_fail(c, AMP_ERR_SHAPE, "output_shape has %d values for rank %d", n, r);
        /* the unpooled tensor sits at the origin of a larger output, zeros around it */
        for (int d = 0; d < r; d++)
            if (v[d] < dims[d])
                return amp_infer_fail(c, AMP_ERR_SHAPE, "output_shape dim %d (%lld) is smaller than the unpooled %lld",
                                      d, (long long)v[d], (long long)dims[d]);
        if ((s = amp_infer_set_out(c, 0, x->dtype, r, v))) return s;
    }
    return AMP_OK;
}
