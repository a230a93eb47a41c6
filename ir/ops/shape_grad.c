/* Gradients of the shape and data-movement ops (ir/grad.h): the builder amp_grad_shape and the
 * shape inference of the training-domain ops it uses (ir/ops/shape_grad.def).
 *
 * Only the data input of each op gets a gradient (plus Pad's constant_value in constant mode):
 * shapes, axes, indices, pads and repeats are integers. Where the backward op needs a forward
 * shape it reads it from a Shape node; the planner folds Shape nodes, so the backward pass does
 * not keep forward tensors alive for their shapes. Transpose, Trilu, DepthToSpace (DCR),
 * SpaceToDepth and Split (when every output has a gradient) differentiate into ONNX ops; the
 * rest into training-domain ops, whose inference below checks dY against the forward shapes.
 * Gradients of Pad's constant_value and of the data come from one PadGrad node; the constant
 * gets none outside constant mode, where it is never read, nor before opset 11, where it is an
 * attribute. */
#include <string.h>

#include "ir/ops/shape.h"
#include "ir/grad.h"

/* Room for integer lists: the most a node can hold is 64 shapes of AMP_MAX_RANK dims. */
#define LIST_CAP (64 * AMP_MAX_RANK)

/* ---- inference helpers ------------------------------------------------------------------------ */

/* A shape held by a known int tensor (the output of a Shape node). */
static amp_status known_shape(amp_infer *c, int input, const char *what, int64_t *dims, int *rank) {
    int64_t v[AMP_MAX_RANK + 1];
    int n = 0;
    amp_status s = amp_infer_const_ints(c, input, v, AMP_MAX_RANK + 1, &n);
    if (s) return s;
    if (n > AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "%s has rank %d, over %d", what, n, AMP_MAX_RANK);
    for (int d = 0; d < n; d++) {
        if (v[d] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "%s has dim %d = %lld", what, d, (long long)v[d]);
        dims[d] = v[d];
    }
    *rank = n;
    return AMP_OK;
}

/* dY (input i) must have exactly these dims. */
static amp_status expect_dims(amp_infer *c, int i, int r, const int64_t *dims) {
    const amp_tinfo *t = c->in[i];
    if (t->rank != r) return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has rank %d, expected %d", i, t->rank, r);
    for (int d = 0; d < r; d++)
        if (t->dims[d] != dims[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has dim %d = %lld, expected %lld", i, d,
                                  (long long)t->dims[d], (long long)dims[d]);
    return AMP_OK;
}

static amp_status need_float(amp_infer *c, int i) { return amp_infer_dtype_in(c, c->in[i]->dtype, amp_dt_float); }

static amp_status required_axis(amp_infer *c, int rank, int *axis) {
    const amp_attr *a = amp_node_attr(c->n, "axis");
    if (!a || a->kind != AMP_ATTR_INT) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute axis is required");
    if (rank == 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "axis given for a scalar");
    return amp_infer_axis(c, a->i, rank, axis);
}

/* ---- ReshapeGrad, ConcatGrad, SplitGrad --------------------------------------------------------- */

amp_status amp_infer_reshape_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_all))) return s;
    int64_t dims[AMP_MAX_RANK];
    int r;
    if ((s = known_shape(c, 1, "the shape", dims, &r))) return s;
    int64_t n;
    if ((s = amp_shape_numel(r, dims, dy->dtype, &n, NULL)))
        return amp_infer_fail(c, s, "the target shape overflows");
    if (n != amp_tinfo_numel(dy))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "cannot give %lld elements a shape of %lld",
                              (long long)amp_tinfo_numel(dy), (long long)n);
    return amp_infer_set_out(c, 0, dy->dtype, r, dims);
}

/* n shapes of rank r concatenated in one list; *r from the list's length. */
static amp_status shape_list(amp_infer *c, int input, int n, int r, int64_t *v) {
    int len = 0;
    amp_status s = amp_infer_const_ints(c, input, v, LIST_CAP, &len);
    if (s) return s;
    if (len != n * r)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "the shapes hold %d values for %d tensors of rank %d", len, n, r);
    for (int i = 0; i < len; i++)
        if (v[i] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "shape value %d is %lld", i, (long long)v[i]);
    return AMP_OK;
}

amp_status amp_infer_concat_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_all))) return s;
    int r = dy->rank, axis, n = c->nout;
    if (n < 1 || n > 64) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs 1 to 64 outputs, has %d", n);
    if ((s = required_axis(c, r, &axis))) return s;
    int64_t v[LIST_CAP];
    if ((s = shape_list(c, 1, n, r, v))) return s;
    int64_t sum = 0;
    for (int k = 0; k < n; k++) {
        const int64_t *dk = v + (size_t)k * (size_t)r;
        for (int d = 0; d < r; d++)
            if (d != axis && dk[d] != dy->dims[d])
                return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has dim %d = %lld, the gradient %lld", k, d,
                                      (long long)dk[d], (long long)dy->dims[d]);
        if (sum > INT64_MAX - dk[axis]) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "concatenated dim overflows");
        sum += dk[axis];
    }
    if (sum != dy->dims[axis])
        return amp_infer_fail(c, AMP_ERR_SHAPE, "the inputs fill %lld of axis %d, the gradient has %lld", (long long)sum,
                              axis, (long long)dy->dims[axis]);
    for (int k = 0; k < n; k++)
        if ((s = amp_infer_set_out(c, k, dy->dtype, r, v + (size_t)k * (size_t)r))) return s;
    return AMP_OK;
}

amp_status amp_infer_split_grad(amp_infer *c) {
    int n = c->nin - 1;
    if (n < 1 || !c->in[0]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs the shapes and at least one gradient");
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has one output, not %d", c->nout);
    const amp_tinfo *first = NULL;
    for (int k = 0; k < n && !first; k++) first = c->in[1 + k];
    if (!first) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "every gradient is omitted");
    amp_status s = amp_infer_dtype_in(c, first->dtype, amp_dt_all);
    if (s) return s;
    int r = first->rank, axis;
    if ((s = required_axis(c, r, &axis))) return s;
    int64_t v[LIST_CAP];
    if ((s = shape_list(c, 0, n, r, v))) return s;
    int64_t out[AMP_MAX_RANK];
    memcpy(out, v, sizeof(int64_t) * (size_t)r);
    out[axis] = 0;
    for (int k = 0; k < n; k++) {
        const int64_t *dk = v + (size_t)k * (size_t)r;
        const amp_tinfo *g = c->in[1 + k];
        if (g && g->dtype != first->dtype)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "gradient %d is %s, others %s", k, amp_dtype_name(g->dtype),
                                  amp_dtype_name(first->dtype));
        if (g && (s = expect_dims(c, 1 + k, r, dk))) return s;
        for (int d = 0; d < r; d++)
            if (d != axis && dk[d] != v[d])
                return amp_infer_fail(c, AMP_ERR_SHAPE, "output %d has dim %d = %lld, output 0 %lld", k, d,
                                      (long long)dk[d], (long long)v[d]);
        if (out[axis] > INT64_MAX - dk[axis]) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "concatenated dim overflows");
        out[axis] += dk[axis];
    }
    return amp_infer_set_out(c, 0, first->dtype, r, out);
}

/* ---- SliceGrad, PadGrad, TileGrad, GatherGrad: the fold ops ------------------------------------- */

amp_status amp_infer_slice_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 4, 6);
    if (s) return s;
    if ((s = need_float(c, 0))) return s;
    int64_t x[AMP_MAX_RANK], y[AMP_MAX_RANK];
    int r;
    if ((s = known_shape(c, 1, "the input shape", x, &r))) return s;
    int64_t starts[LIST_CAP], ends[LIST_CAP], axes[LIST_CAP], steps[LIST_CAP];
    int ns = 0, ne = 0, na = 0, nst = 0;
    bool has_a = c->nin > 4 && c->in[4], has_st = c->nin > 5 && c->in[5];
    if ((s = amp_infer_const_ints(c, 2, starts, LIST_CAP, &ns))) return s;
    if ((s = amp_infer_const_ints(c, 3, ends, LIST_CAP, &ne))) return s;
    if (has_a && (s = amp_infer_const_ints(c, 4, axes, LIST_CAP, &na))) return s;
    if (has_st && (s = amp_infer_const_ints(c, 5, steps, LIST_CAP, &nst))) return s;
    if (ns != ne) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d starts but %d ends", ns, ne);
    if (has_a && na != ns) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d axes for %d starts", na, ns);
    if (has_st && nst != ns) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d steps for %d starts", nst, ns);
    if (ns > r) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d starts for rank %d", ns, r);
    memcpy(y, x, sizeof(int64_t) * (size_t)r);
    bool seen[AMP_MAX_RANK] = {false};
    for (int i = 0; i < ns; i++) {
        int a;
        if ((s = amp_infer_axis(c, has_a ? axes[i] : i, r, &a))) return s;
        if (seen[a]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %d is listed twice", a);
        seen[a] = true;
        int64_t step = has_st ? steps[i] : 1, first;
        if (step == 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "step %d is 0", i);
        y[a] = amp_slice_axis(x[a], starts[i], ends[i], step, &first);
    }
    if ((s = expect_dims(c, 0, r, y))) return s;
    return amp_infer_set_out(c, 0, c->in[0]->dtype, r, x);
}

amp_status amp_infer_pad_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 4);
    if (s) return s;
    if ((s = need_float(c, 0))) return s;
    if (c->nout < 1 || c->nout > 2) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has 1 or 2 outputs, not %d", c->nout);
    const char *mode = amp_attr_str(c->n, "mode", "constant");
    bool constant = strcmp(mode, "constant") == 0;
    if (!constant && strcmp(mode, "reflect") && strcmp(mode, "edge") && strcmp(mode, "wrap"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown mode '%s'", mode);
    int64_t x[AMP_MAX_RANK], y[AMP_MAX_RANK];
    int r;
    if ((s = known_shape(c, 1, "the input shape", x, &r))) return s;
    int64_t pads[LIST_CAP];
    int np = 0, na = r;
    int axes[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) axes[d] = d;
    if ((s = amp_infer_const_ints(c, 2, pads, LIST_CAP, &np))) return s;
    if (c->nin > 3 && c->in[3]) {
        int64_t a[LIST_CAP];
        if ((s = amp_infer_const_ints(c, 3, a, LIST_CAP, &na))) return s;
        if (na > r) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d axes for rank %d", na, r);
        bool seen[AMP_MAX_RANK] = {false};
        for (int i = 0; i < na; i++) {
            if ((s = amp_infer_axis(c, a[i], r, &axes[i]))) return s;
            if (r == 0 || seen[axes[i]]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axes repeat or are invalid");
            seen[axes[i]] = true;
        }
    }
    if (np != 2 * na) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "pads has %d values, expected %d", np, 2 * na);
    memcpy(y, x, sizeof(int64_t) * (size_t)r);
    for (int i = 0; i < na; i++) {
        int d = axes[i];
        int64_t n;
        if (__builtin_add_overflow(x[d], pads[i], &n) || __builtin_add_overflow(n, pads[i + na], &n))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "padded dim %d overflows", d);
        if (n < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "pads remove more than dim %d holds", d);
        if (!constant && x[d] == 0 && n > 0)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "cannot pad empty dim %d in %s mode", d, mode);
        y[d] = n;
    }
    if ((s = expect_dims(c, 0, r, y))) return s;
    if (c->nout == 2 && (s = amp_infer_set_out(c, 1, c->in[0]->dtype, 0, NULL))) return s;
    return amp_infer_set_out(c, 0, c->in[0]->dtype, r, x);
}

amp_status amp_infer_tile_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    if ((s = need_float(c, 0))) return s;
    const amp_tinfo *dy = c->in[0];
    int64_t x[AMP_MAX_RANK], xv[AMP_MAX_RANK];
    int rx;
    if ((s = known_shape(c, 1, "the input shape", x, &rx))) return s;
    int ry = dy->rank, lead = ry - rx;
    if (lead < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "the gradient has rank %d, below the input's %d", ry, rx);
    for (int d = 0; d < ry; d++) {
        xv[d] = d < lead ? 1 : x[d - lead];
        bool ok = xv[d] > 0 ? dy->dims[d] % xv[d] == 0 : dy->dims[d] == 0;
        if (!ok)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "gradient dim %d (%lld) is not a whole number of input dims (%lld)",
                                  d, (long long)dy->dims[d], (long long)xv[d]);
    }
    return amp_infer_set_out(c, 0, dy->dtype, rx, x);
}

static const amp_dtype index_types[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};

amp_status amp_infer_gather_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    if ((s = need_float(c, 0))) return s;
    const amp_tinfo *ind = c->in[2];
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    int64_t x[AMP_MAX_RANK], y[AMP_MAX_RANK];
    int rx, axis;
    if ((s = known_shape(c, 1, "the input shape", x, &rx))) return s;
    if (rx < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "data must have rank >= 1");
    if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", 0), rx, &axis))) return s;
    int ry = rx + ind->rank - 1;
    if (ry > AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "gradient rank %d exceeds %d", ry, AMP_MAX_RANK);
    int o = 0;
    for (int d = 0; d < axis; d++) y[o++] = x[d];
    for (int d = 0; d < ind->rank; d++) y[o++] = ind->dims[d];
    for (int d = axis + 1; d < rx; d++) y[o++] = x[d];
    if ((s = expect_dims(c, 0, ry, y))) return s;
    return amp_infer_set_out(c, 0, c->in[0]->dtype, rx, x);
}

/* ---- GatherElementsGrad, DepthToSpaceGrad ------------------------------------------------------- */

amp_status amp_infer_gather_elements_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    if ((s = need_float(c, 0))) return s;
    const amp_tinfo *ind = c->in[2];
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    int64_t x[AMP_MAX_RANK];
    int rx, axis;
    if ((s = known_shape(c, 1, "the input shape", x, &rx))) return s;
    if (rx < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "data must have rank >= 1");
    if (ind->rank != rx)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "indices rank %d differs from data rank %d", ind->rank, rx);
    if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", 0), rx, &axis))) return s;
    for (int d = 0; d < rx; d++)
        if (d != axis && ind->dims[d] > x[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "indices dim %d (%lld) exceeds data dim (%lld)", d,
                                  (long long)ind->dims[d], (long long)x[d]);
    if ((s = expect_dims(c, 0, rx, ind->dims))) return s;
    return amp_infer_set_out(c, 0, c->in[0]->dtype, rx, x);
}

amp_status amp_infer_depth_to_space_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_all))) return s;
    if (dy->rank != 4) return amp_infer_fail(c, AMP_ERR_SHAPE, "the gradient must have rank 4, has %d", dy->rank);
    const amp_attr *ba = amp_node_attr(c->n, "blocksize");
    if (!ba || ba->kind != AMP_ATTR_INT) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "blocksize is required");
    int64_t b = ba->i;
    if (b < 1 || b > (int64_t)1 << 31)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "blocksize %lld is invalid", (long long)b);
    const char *mode = amp_attr_str(c->n, "mode", "DCR");
    if (strcmp(mode, "DCR") && strcmp(mode, "CRD"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown mode '%s'", mode);
    if (dy->dims[2] % b || dy->dims[3] % b)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "gradient height and width are not multiples of blocksize %lld",
                              (long long)b);
    int64_t out[4] = {dy->dims[0], 0, dy->dims[2] / b, dy->dims[3] / b};
    if (__builtin_mul_overflow(dy->dims[1], b * b, &out[1]))
        return amp_infer_fail(c, AMP_ERR_OVERFLOW, "input channels overflow");
    return amp_infer_set_out(c, 0, dy->dtype, 4, out);
}

/* ---- the builder ------------------------------------------------------------------------------- */

static const char *label(const amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    return f->name && f->name[0] ? f->name : f->op_type;
}

static amp_status shape_of(amp_grad_ctx *c, int v, int *out) {
    return amp_grad_node(c, "Shape", "", 1, &v, 1, out, NULL);
}

/* The shapes of values v[0..n) as one int64 list (a Concat of Shape nodes). */
static amp_status shapes_of(amp_grad_ctx *c, int n, const int *v, int *out) {
    int sh[64];
    if (n < 1 || n > 64)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': %d tensors, expected 1 to 64", label(c), n);
    for (int k = 0; k < n; k++) {
        if (v[k] < 0) return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': value %d is omitted", label(c), k);
        amp_status s = shape_of(c, v[k], &sh[k]);
        if (s) return s;
    }
    if (n == 1) {
        *out = sh[0];
        return AMP_OK;
    }
    amp_node *cat;
    amp_status s = amp_grad_node(c, "Concat", "", n, sh, 1, out, &cat);
    if (!s) s = amp_grad_attr_int(c, cat, "axis", 0);
    return s;
}

/* dX of the forward data input by a training op reading (dY, Shape(X), extra...). */
static amp_status by_shape(amp_grad_ctx *c, const char *op, int nextra, const int *extra, bool copy_attrs) {
    int ins[8] = {c->dy[0], -1};
    amp_status s = shape_of(c, amp_grad_in(c, 0), &ins[1]);
    if (s) return s;
    for (int i = 0; i < nextra; i++) ins[2 + i] = extra[i];
    amp_node *n;
    if ((s = amp_grad_node(c, op, AMP_TRAIN_DOMAIN, 2 + nextra, ins, 1, &c->dx[0], &n))) return s;
    return copy_attrs ? amp_grad_copy_attrs(c, n) : AMP_OK;
}

static amp_status grad_transpose(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    const int64_t *perm;
    int np = amp_attr_ints(f, "perm", &perm);
    int64_t inv[AMP_MAX_RANK];
    if (np > AMP_MAX_RANK) return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': perm of %d values", label(c), np);
    bool seen[AMP_MAX_RANK] = {false};
    for (int d = 0; d < np; d++) {
        if (perm[d] < 0 || perm[d] >= np || seen[perm[d]])
            return amp_seterr(c->ctx, AMP_ERR_INVALID_GRAPH, "node '%s': perm is not a permutation", label(c));
        seen[perm[d]] = true;
        inv[perm[d]] = d;
    }
    amp_node *n;
    amp_status s = amp_grad_node(c, "Transpose", "", 1, &c->dy[0], 1, &c->dx[0], &n);
    /* no perm reverses the dims, its own inverse */
    if (!s && np >= 0) s = amp_grad_attr_ints(c, n, "perm", np, inv);
    return s;
}

static amp_status grad_concat(amp_grad_ctx *c) {
    int n = c->nin, ins[2] = {c->dy[0], -1}, outs[64], x[64];
    if (n > 64) return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': Concat of %d inputs", label(c), n);
    int64_t axis = amp_attr_int(amp_grad_fwd(c), "axis", 1); /* optional before opset 4, default 1 */
    for (int i = 0; i < n; i++) x[i] = amp_grad_in(c, i);
    amp_status s = shapes_of(c, n, x, &ins[1]);
    if (s) return s;
    amp_node *node;
    if ((s = amp_grad_node(c, "ConcatGrad", AMP_TRAIN_DOMAIN, 2, ins, n, outs, &node))) return s;
    if ((s = amp_grad_attr_int(c, node, "axis", axis))) return s;
    for (int i = 0; i < n; i++) c->dx[i] = c->need[i] ? outs[i] : -1;
    return AMP_OK;
}

static amp_status grad_split(amp_grad_ctx *c) {
    int n = c->nout;
    int64_t axis = amp_attr_int(amp_grad_fwd(c), "axis", 0);
    if (!c->need[0]) return AMP_OK;
    if (n > 63) return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': Split into %d outputs", label(c), n);
    bool all = true;
    for (int k = 0; k < n; k++) all = all && c->dy[k] >= 0;
    amp_node *node;
    amp_status s;
    if (all) {
        s = amp_grad_node(c, "Concat", "", n, c->dy, 1, &c->dx[0], &node);
    } else {
        /* outputs without a gradient contribute zeros: SplitGrad needs their shapes */
        int ins[64], y[64];
        for (int k = 0; k < n; k++) y[k] = amp_grad_out(c, k);
        if ((s = shapes_of(c, n, y, &ins[0]))) return s;
        for (int k = 0; k < n; k++) ins[1 + k] = c->dy[k];
        s = amp_grad_node(c, "SplitGrad", AMP_TRAIN_DOMAIN, n + 1, ins, 1, &c->dx[0], &node);
    }
    if (!s) s = amp_grad_attr_int(c, node, "axis", axis);
    return s;
}

/* An int list attribute of the forward node as a Constant (opsets that held Slice and Pad
 * parameters in attributes); -1 when absent and not required. */
static amp_status attr_const(amp_grad_ctx *c, const char *name, bool required, int *out) {
    const amp_node *f = amp_grad_fwd(c);
    const int64_t *v;
    int n = amp_attr_ints(f, name, &v);
    *out = -1;
    if (n < 0) {
        if (!required) return AMP_OK;
        return amp_seterr(c->ctx, AMP_ERR_INVALID_GRAPH, "node '%s': attribute %s is required", label(c), name);
    }
    *out = amp_grad_const_ints(c, n, v);
    return *out < 0 ? AMP_ERR_NO_MEMORY : AMP_OK;
}

static amp_status grad_slice(amp_grad_ctx *c) {
    int p[4] = {-1, -1, -1, -1}; /* starts, ends, axes, steps */
    amp_status s;
    if (amp_grad_opset(c) < 10) {
        if ((s = attr_const(c, "starts", true, &p[0])) || (s = attr_const(c, "ends", true, &p[1])) ||
            (s = attr_const(c, "axes", false, &p[2])))
            return s;
    } else {
        for (int i = 0; i < 4; i++) p[i] = amp_grad_in(c, 1 + i);
    }
    return by_shape(c, "SliceGrad", 4, p, false);
}

static amp_status grad_pad(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    bool constant = strcmp(amp_attr_str(f, "mode", "constant"), "constant") == 0;
    int ins[4] = {c->dy[0], -1, -1, -1}, outs[2];
    amp_status s;
    bool want_value = false;
    if (amp_grad_opset(c) < 11) {
        if ((s = attr_const(c, "pads", true, &ins[2]))) return s;
    } else {
        ins[2] = amp_grad_in(c, 1);
        ins[3] = amp_grad_in(c, 3);
        /* the constant reaches the output only in constant mode */
        want_value = constant && c->nin > 2 && c->need[2] && amp_grad_in(c, 2) >= 0;
    }
    if ((s = shape_of(c, amp_grad_in(c, 0), &ins[1]))) return s;
    amp_node *n;
    if ((s = amp_grad_node(c, "PadGrad", AMP_TRAIN_DOMAIN, 4, ins, want_value ? 2 : 1, outs, &n))) return s;
    if ((s = amp_grad_attr_str(c, n, "mode", amp_attr_str(amp_grad_fwd(c), "mode", "constant")))) return s;
    c->dx[0] = c->need[0] ? outs[0] : -1;
    if (want_value) {
        /* the sum is a scalar; constant_value may be rank 0 or [1] */
        int r[2] = {outs[1], -1};
        if ((s = shape_of(c, amp_grad_in(c, 2), &r[1]))) return s;
        if ((s = amp_grad_node(c, "ReshapeGrad", AMP_TRAIN_DOMAIN, 2, r, 1, &c->dx[2], NULL))) return s;
    }
    return AMP_OK;
}

static amp_status grad_trilu(amp_grad_ctx *c) {
    /* Trilu keeps or zeroes each element: its gradient masks dY the same way */
    int ins[2] = {c->dy[0], amp_grad_in(c, 1)};
    amp_node *n;
    amp_status s = amp_grad_node(c, "Trilu", "", ins[1] >= 0 ? 2 : 1, ins, 1, &c->dx[0], &n);
    return s ? s : amp_grad_copy_attrs(c, n);
}

static amp_status grad_depth_space(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    int64_t b = amp_attr_int(f, "blocksize", 0);
    bool d2s = f->op == AMP_OP_DEPTH_TO_SPACE;
    bool crd = d2s && strcmp(amp_attr_str(f, "mode", "DCR"), "CRD") == 0;
    /* DepthToSpace in DCR order and SpaceToDepth are inverse permutations of each other */
    const char *op = crd ? "DepthToSpaceGrad" : d2s ? "SpaceToDepth" : "DepthToSpace";
    amp_node *n;
    amp_status s = amp_grad_node(c, op, crd ? AMP_TRAIN_DOMAIN : "", 1, &c->dy[0], 1, &c->dx[0], &n);
    if (!s) s = amp_grad_attr_int(c, n, "blocksize", b);
    if (!s && crd) s = amp_grad_attr_str(c, n, "mode", "CRD");
    return s;
}

amp_status amp_grad_shape(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    switch (f->op) {
    case AMP_OP_RESHAPE:
    case AMP_OP_FLATTEN:
    case AMP_OP_SQUEEZE:
    case AMP_OP_UNSQUEEZE:
        return c->need[0] ? by_shape(c, "ReshapeGrad", 0, NULL, false) : AMP_OK;
    case AMP_OP_TRANSPOSE: return c->need[0] ? grad_transpose(c) : AMP_OK;
    case AMP_OP_CONCAT: return grad_concat(c);
    case AMP_OP_SPLIT: return grad_split(c);
    case AMP_OP_SLICE: return c->need[0] ? grad_slice(c) : AMP_OK;
    case AMP_OP_PAD: return grad_pad(c);
    case AMP_OP_EXPAND:
    case AMP_OP_TILE: return c->need[0] ? by_shape(c, "TileGrad", 0, NULL, false) : AMP_OK;
    case AMP_OP_GATHER: {
        int ind = amp_grad_in(c, 1);
        return c->need[0] ? by_shape(c, "GatherGrad", 1, &ind, true) : AMP_OK;
    }
    case AMP_OP_GATHER_ELEMENTS: {
        int ind = amp_grad_in(c, 1);
        return c->need[0] ? by_shape(c, "GatherElementsGrad", 1, &ind, true) : AMP_OK;
    }
    case AMP_OP_TRILU: return c->need[0] ? grad_trilu(c) : AMP_OK;
    case AMP_OP_DEPTH_TO_SPACE:
    case AMP_OP_SPACE_TO_DEPTH: return c->need[0] ? grad_depth_space(c) : AMP_OK;
    default: return AMP_ERR_NOT_FOUND;
    }
}
