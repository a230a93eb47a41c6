/* Shape inference for the shape and data-movement ops: Reshape, Flatten, Squeeze, Unsqueeze,
 * Transpose, Concat, Split, Slice, Expand, Tile, Shape, Size, Constant, ConstantOfShape.
 * These ops move bytes without looking at them, so every dtype amprt holds is accepted. */
#include <string.h>

#include "ir/ops/shape.h"
#include "ir/ir.h"

/* Lists that name dims or axes are read with this much room: more than AMP_MAX_RANK so that a
 * list that is too long is reported as such rather than as a read failure. */
#define LIST_CAP 64

/* The data input (0) with its dtype checked. */
static amp_status data_input(amp_infer *c, int lo, int hi, const amp_tinfo **x) {
    *x = NULL;
    amp_status s = amp_infer_need_inputs(c, lo, hi);
    if (s) return s;
    if (!c->in[0]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input 0 is required");
    s = amp_infer_dtype_in(c, c->in[0]->dtype, amp_dt_all);
    if (s) return s;
    if (c->in[0]->rank < 0 || c->in[0]->rank > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input 0 has unknown or unsupported rank %d", c->in[0]->rank);
    *x = c->in[0];
    return AMP_OK;
}

/* An integer list that lives in attribute `attr` (before opset `since`) or in input `input`
 * (from opset `since`). *present is false when neither holds it. */
static amp_status int_list(amp_infer *c, const char *attr, int input, int64_t since, int64_t *v, int *n,
                           bool *present) {
    *present = false;
    *n = 0;
    if (c->opset < since) {
        const int64_t *a;
        int na = amp_attr_ints(c->n, attr, &a);
        if (na < 0) return AMP_OK;
        if (na > LIST_CAP) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "attribute %s has %d values", attr, na);
        memcpy(v, a, sizeof(int64_t) * (size_t)na);
        *n = na;
        *present = true;
        return AMP_OK;
    }
    if (input >= c->nin || !c->in[input]) return AMP_OK;
    *present = true;
    return amp_infer_const_ints(c, input, v, LIST_CAP, n);
}

/* Normalise an axis against rank; rank 0 has no axes at all (amp_infer_axis admits 0 there). */
static amp_status norm_axis(amp_infer *c, int64_t axis, int rank, int *out) {
    if (rank == 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld given for a scalar", (long long)axis);
    return amp_infer_axis(c, axis, rank, out);
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------------- */

amp_status amp_infer_reshape(amp_infer *c) {
    const amp_tinfo *x = NULL;
    int64_t shape[LIST_CAP];
    int n = 0;
    bool present;
    bool old = c->opset < 5; /* the target shape was an attribute before opset 5 */
    amp_status s = data_input(c, old ? 1 : 2, old ? 1 : 2, &x);
    if (s) return s;
    s = int_list(c, "shape", 1, 5, shape, &n, &present);
    if (s) return s;
    if (!present) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "the target shape is missing");
    if (n > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "target rank %d exceeds the maximum of %d", n, AMP_MAX_RANK);
    bool allowzero = c->opset >= 14 && amp_attr_int(c->n, "allowzero", 0) != 0;

    int64_t out[AMP_MAX_RANK];
    int infer_at = -1;
    bool has_zero = false;
    int64_t known = 1; /* product of every dim but the -1 */
    for (int i = 0; i < n; i++) {
        int64_t v = shape[i];
        if (v == -1) {
            if (infer_at >= 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "more than one -1 in the target shape");
            infer_at = i;
            out[i] = -1;
            continue;
        }
        if (v < -1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "target dim %d is %lld", i, (long long)v);
        if (v == 0) {
            has_zero = true;
            if (!allowzero) {
                if (i >= x->rank)
                    return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH,
                                          "target dim %d is 0 (copy) but the input has rank %d", i, x->rank);
                v = x->dims[i];
            }
        }
        if (v != 0 && known > INT64_MAX / v) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "target shape overflows");
        known *= v;
        out[i] = v;
    }
    if (allowzero && has_zero && infer_at >= 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "allowzero=1 with both 0 and -1 in the target shape");
    int64_t total = amp_tinfo_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || total % known != 0)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "cannot infer the -1 dim: %lld elements into a product of %lld",
                                  (long long)total, (long long)known);
        out[infer_at] = total / known;
    } else if (known != total) {
        return amp_infer_fail(c, AMP_ERR_SHAPE, "cannot reshape %lld elements into %lld", (long long)total,
                              (long long)known);
    }
    return amp_infer_set_out(c, 0, x->dtype, n, out);
}

amp_status amp_infer_flatten(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 1, 1, &x);
    if (s) return s;
    int r = x->rank;
    int64_t axis = amp_attr_int(c->n, "axis", 1);
    int64_t lo = c->opset >= 11 ? -r : 0; /* negative axes arrived in opset 11 */
    if (axis < lo || axis > r)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d", (long long)axis, r);
    if (axis < 0) axis += r;
    int64_t out[2] = {1, 1};
    for (int d = 0; d < r; d++) out[d < axis ? 0 : 1] *= x->dims[d];
    return amp_infer_set_out(c, 0, x->dtype, 2, out);
}

amp_status amp_infer_squeeze(amp_infer *c) {
    const amp_tinfo *x = NULL;
    int64_t axes[LIST_CAP];
    int n = 0;
    bool present;
    amp_status s = data_input(c, 1, c->opset >= 13 ? 2 : 1, &x);
    if (s) return s;
    s = int_list(c, "axes", 1, 13, axes, &n, &present);
    if (s) return s;
    int r = x->rank;
    bool drop[AMP_MAX_RANK] = {false};
    if (n > 0) {
        for (int i = 0; i < n; i++) {
            int a;
            s = norm_axis(c, axes[i], r, &a);
            if (s) return s;
            if (drop[a]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %d is listed twice", a);
            if (x->dims[a] != 1)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "cannot squeeze axis %d of size %lld", a, (long long)x->dims[a]);
            drop[a] = true;
        }
    } else {
        /* no axes (or an empty list): drop every dim of size 1 */
        for (int d = 0; d < r; d++) drop[d] = x->dims[d] == 1;
    }
    int64_t out[AMP_MAX_RANK];
    int ro = 0;
    for (int d = 0; d < r; d++)
        if (!drop[d]) out[ro++] = x->dims[d];
    return amp_infer_set_out(c, 0, x->dtype, ro, out);
}

amp_status amp_infer_unsqueeze(amp_infer *c) {
    const amp_tinfo *x = NULL;
    int64_t axes[LIST_CAP];
    int n = 0;
    bool present;
    int nin = c->opset >= 13 ? 2 : 1;
    amp_status s = data_input(c, nin, nin, &x);
    if (s) return s;
    s = int_list(c, "axes", 1, 13, axes, &n, &present);
    if (s) return s;
    if (!present) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axes are required");
    int ro = x->rank + n;
    if (ro > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "output rank %d exceeds the maximum of %d", ro, AMP_MAX_RANK);
    bool ins[AMP_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        int a;
        /* axes count in the output's rank */
        s = amp_infer_axis(c, axes[i], ro, &a);
        if (s) return s;
        if (ins[a]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %d is listed twice", a);
        ins[a] = true;
    }
    int64_t out[AMP_MAX_RANK];
    for (int d = 0, j = 0; d < ro; d++) out[d] = ins[d] ? 1 : x->dims[j++];
    return amp_infer_set_out(c, 0, x->dtype, ro, out);
}

/* ---- Transpose, Concat, Split -------------------------------------------------------------- */

amp_status amp_infer_transpose(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 1, 1, &x);
    if (s) return s;
    int r = x->rank;
    const int64_t *perm;
    int np = amp_attr_ints(c->n, "perm", &perm);
    int64_t out[AMP_MAX_RANK];
    if (np < 0) {
        for (int d = 0; d < r; d++) out[d] = x->dims[r - 1 - d];
        return amp_infer_set_out(c, 0, x->dtype, r, out);
    }
    if (np != r) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "perm has %d values for rank %d", np, r);
    bool seen[AMP_MAX_RANK] = {false};
    for (int d = 0; d < r; d++) {
        int64_t p = perm[d];
        if (p < 0 || p >= r || seen[p])
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "perm is not a permutation of 0..%d", r - 1);
        seen[p] = true;
        out[d] = x->dims[p];
    }
    return amp_infer_set_out(c, 0, x->dtype, r, out);
}

amp_status amp_infer_concat(amp_infer *c) {
    if (c->nin < 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs at least one input");
    for (int i = 0; i < c->nin; i++)
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is missing", i);
    const amp_tinfo *x0 = c->in[0];
    amp_status s = amp_infer_dtype_in(c, x0->dtype, amp_dt_all);
    if (s) return s;
    int r = x0->rank;
    if (r < 1 || r > AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "cannot concatenate rank %d", r);
    const amp_attr *aa = amp_node_attr(c->n, "axis");
    if (!aa && c->opset >= 4) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute axis is required");
    int axis;
    s = amp_infer_axis(c, aa ? amp_attr_int(c->n, "axis", 1) : 1, r, &axis);
    if (s) return s;
    int64_t out[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) out[d] = x0->dims[d];
    for (int i = 1; i < c->nin; i++) {
        const amp_tinfo *xi = c->in[i];
        if (xi->dtype != x0->dtype)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d is %s, input 0 is %s", i, amp_dtype_name(xi->dtype),
                                  amp_dtype_name(x0->dtype));
        if (xi->rank != r) return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has rank %d, input 0 has %d", i, xi->rank, r);
        for (int d = 0; d < r; d++) {
            if (d == axis) continue;
            if (xi->dims[d] != x0->dims[d])
                return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has dim %d = %lld, input 0 has %lld", i, d,
                                      (long long)xi->dims[d], (long long)x0->dims[d]);
        }
        if (out[axis] > INT64_MAX - xi->dims[axis]) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "concatenated dim overflows");
        out[axis] += xi->dims[axis];
    }
    return amp_infer_set_out(c, 0, x0->dtype, r, out);
}

amp_status amp_infer_split(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 1, 2, &x);
    if (s) return s;
    int nout = c->nout;
    if (nout < 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs at least one output");
    int axis;
    s = norm_axis(c, amp_attr_int(c->n, "axis", 0), x->rank, &axis);
    if (s) return s;
    int64_t dim = x->dims[axis];

    /* Where the sizes live: opset 1 took an optional input or an attribute, opsets 2-12 an
     * attribute, 13 on an optional input; 18 added num_outputs for equal chunks. */
    bool from_input = c->nin >= 2 && c->in[1];
    if (from_input && c->opset >= 2 && c->opset < 13)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "split is an attribute in opset %lld", (long long)c->opset);
    const int64_t *attr_split = NULL;
    int n_attr = c->opset < 13 ? amp_attr_ints(c->n, "split", &attr_split) : -1;

    int64_t *sizes = amp_calloc(c->ctx, (size_t)nout, sizeof *sizes);
    if (!sizes) return amp_infer_fail(c, AMP_ERR_NO_MEMORY, "out of memory");
    if (from_input || n_attr >= 0) {
        int n = n_attr;
        if (from_input) {
            const amp_tensor *v = c->in[1]->value;
            if (v && v->numel != nout) {
                s = amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "split has %lld values for %d outputs", (long long)v->numel,
                                   nout);
                goto done;
            }
            s = amp_infer_const_ints(c, 1, sizes, nout, &n);
            if (s) goto done;
        } else if (n_attr == nout) {
            memcpy(sizes, attr_split, sizeof(int64_t) * (size_t)nout);
        }
        if (n != nout) {
            s = amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "split has %d values for %d outputs", n, nout);
            goto done;
        }
        int64_t sum = 0;
        for (int i = 0; i < nout; i++) {
            if (sizes[i] < 0 || sum > INT64_MAX - sizes[i]) {
                s = amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "split value %d is %lld", i, (long long)sizes[i]);
                goto done;
            }
            sum += sizes[i];
        }
        if (sum != dim) {
            s = amp_infer_fail(c, AMP_ERR_SHAPE, "split sums to %lld, axis %d has %lld", (long long)sum, axis,
                               (long long)dim);
            goto done;
        }
    } else if (c->opset >= 18 && amp_node_attr(c->n, "num_outputs")) {
        int64_t k = amp_attr_int(c->n, "num_outputs", 0);
        if (k != nout) {
            s = amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "num_outputs is %lld but the node has %d outputs",
                               (long long)k, nout);
            goto done;
        }
        /* chunks of ceil(dim / k); the last one takes what is left */
        int64_t chunk = dim / k + (dim % k != 0);
        int64_t last = dim - chunk * (k - 1);
        if (last < 0) {
            s = amp_infer_fail(c, AMP_ERR_SHAPE, "cannot split %lld into %lld chunks of %lld", (long long)dim,
                               (long long)k, (long long)chunk);
            goto done;
        }
        for (int i = 0; i < nout; i++) sizes[i] = i == nout - 1 ? last : chunk;
    } else {
        if (dim % nout != 0) {
            s = amp_infer_fail(c, AMP_ERR_SHAPE, "axis %d of size %lld does not split into %d equal parts", axis,
                               (long long)dim, nout);
            goto done;
        }
        for (int i = 0; i < nout; i++) sizes[i] = dim / nout;
    }
    for (int i = 0; i < nout; i++) {
        int64_t od[AMP_MAX_RANK];
        memcpy(od, x->dims, sizeof(int64_t) * (size_t)x->rank);
        od[axis] = sizes[i];
        s = amp_infer_set_out(c, i, x->dtype, x->rank, od);
        if (s) goto done;
    }
    s = AMP_OK;
done:
    amp_dealloc(c->ctx, sizes);
    return s;
}

/* ---- Slice --------------------------------------------------------------------------------- */


amp_status amp_infer_slice(amp_infer *c) {
    const amp_tinfo *x = NULL;
    bool old = c->opset < 10; /* starts/ends/axes were attributes before opset 10 */
    amp_status s = data_input(c, old ? 1 : 3, old ? 1 : 5, &x);
    if (s) return s;
    int64_t starts[LIST_CAP], ends[LIST_CAP], axes[LIST_CAP], steps[LIST_CAP];
    int ns, ne, na, nst;
    bool has_s, has_e, has_a, has_st;
    if ((s = int_list(c, "starts", 1, 10, starts, &ns, &has_s))) return s;
    if ((s = int_list(c, "ends", 2, 10, ends, &ne, &has_e))) return s;
    if ((s = int_list(c, "axes", 3, 10, axes, &na, &has_a))) return s;
    if (old) has_st = false, nst = 0;
    else if ((s = int_list(c, "steps", 4, 10, steps, &nst, &has_st))) return s;
    if (!has_s || !has_e) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "starts and ends are required");
    if (ns != ne) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d starts but %d ends", ns, ne);
    if (has_a && na != ns) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d axes for %d starts", na, ns);
    if (has_st && nst != ns) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d steps for %d starts", nst, ns);
    int r = x->rank;
    if (ns > r) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d starts for rank %d", ns, r);
    int64_t out[AMP_MAX_RANK];
    memcpy(out, x->dims, sizeof(int64_t) * (size_t)r);
    bool seen[AMP_MAX_RANK] = {false};
    for (int i = 0; i < ns; i++) {
        int a;
        s = norm_axis(c, has_a ? axes[i] : i, r, &a);
        if (s) return s;
        if (seen[a]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %d is listed twice", a);
        seen[a] = true;
        int64_t step = has_st ? steps[i] : 1;
        if (step == 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "step %d is 0", i);
        int64_t first;
        out[a] = amp_slice_axis(x->dims[a], starts[i], ends[i], step, &first);
    }
    return amp_infer_set_out(c, 0, x->dtype, r, out);
}

/* ---- Expand, Tile -------------------------------------------------------------------------- */

amp_status amp_infer_expand(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 2, 2, &x);
    if (s) return s;
    int64_t shape[LIST_CAP];
    int n;
    if ((s = amp_infer_const_ints(c, 1, shape, LIST_CAP, &n))) return s;
    if (n > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "target rank %d exceeds the maximum of %d", n, AMP_MAX_RANK);
    for (int i = 0; i < n; i++)
        if (shape[i] < 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "shape value %d is %lld", i, (long long)shape[i]);
    int64_t out[AMP_MAX_RANK];
    int ro;
    if ((s = amp_broadcast_shape(c, x->rank, x->dims, n, shape, &ro, out))) return s;
    return amp_infer_set_out(c, 0, x->dtype, ro, out);
}

amp_status amp_infer_tile(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 2, 2, &x);
    if (s) return s;
    int64_t rep[LIST_CAP];
    int n;
    if ((s = amp_infer_const_ints(c, 1, rep, LIST_CAP, &n))) return s;
    if (n != x->rank) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%d repeats for rank %d", n, x->rank);
    int64_t out[AMP_MAX_RANK];
    for (int d = 0; d < n; d++) {
        if (rep[d] < 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "repeat %d is %lld", d, (long long)rep[d]);
        if (rep[d] != 0 && x->dims[d] > INT64_MAX / rep[d]) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output dim %d overflows", d);
        out[d] = x->dims[d] * rep[d];
    }
    return amp_infer_set_out(c, 0, x->dtype, n, out);
}

/* ---- Shape, Size --------------------------------------------------------------------------- */

amp_status amp_infer_shape(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 1, 1, &x);
    if (s) return s;
    int64_t r = x->rank, start = 0, end = r;
    if (c->opset >= 15) { /* start/end arrived in opset 15; both clamp to [0, rank] */
        start = amp_attr_int(c->n, "start", 0);
        end = amp_attr_int(c->n, "end", r);
        if (start < 0) start += r;
        if (end < 0) end += r;
        start = start < 0 ? 0 : start > r ? r : start;
        end = end < 0 ? 0 : end > r ? r : end;
    }
    int64_t len = end > start ? end - start : 0;
    return amp_infer_set_out(c, 0, AMP_I64, 1, &len);
}

amp_status amp_infer_size(amp_infer *c) {
    const amp_tinfo *x = NULL;
    amp_status s = data_input(c, 1, 1, &x);
    if (s) return s;
    return amp_infer_set_out(c, 0, AMP_I64, 0, NULL);
}

/* ---- Constant, ConstantOfShape ------------------------------------------------------------- */

amp_status amp_infer_constant(amp_infer *c) {
    static const char *const names[] = {"value",        "value_float",  "value_floats",  "value_int",
                                        "value_ints",   "value_string", "value_strings", "sparse_value"};
    if (c->nin != 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "takes no inputs, has %d", c->nin);
    const amp_attr *a = NULL;
    int count = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const amp_attr *ai = amp_node_attr(c->n, names[i]);
        if (ai) a = ai, count++;
    }
    if (count != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs exactly one value attribute, has %d", count);
    if (a->kind == AMP_ATTR_SPARSE_TENSOR)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "sparse constants are not supported");
    if (!strcmp(a->name, "value_string") || !strcmp(a->name, "value_strings"))
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "string constants are not supported");
    if (!strcmp(a->name, "value")) {
        if (a->kind != AMP_ATTR_TENSOR) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "value is not a tensor");
        if (!a->t) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "value holds a tensor type amprt does not hold");
        amp_status s = amp_infer_dtype_in(c, a->t->dtype, amp_dt_all);
        if (s) return s;
        return amp_infer_set_out(c, 0, a->t->dtype, a->t->rank, a->t->dims);
    }
    bool is_float = !strncmp(a->name, "value_float", 11);
    bool is_list = a->name[strlen(a->name) - 1] == 's';
    amp_attr_kind want = is_float ? (is_list ? AMP_ATTR_FLOATS : AMP_ATTR_FLOAT) : (is_list ? AMP_ATTR_INTS : AMP_ATTR_INT);
    if (a->kind != want) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute %s has the wrong kind", a->name);
    int64_t n = a->n;
    return amp_infer_set_out(c, 0, is_float ? AMP_F32 : AMP_I64, is_list ? 1 : 0, &n);
}

amp_status amp_infer_constant_of_shape(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s) return s;
    int64_t shape[LIST_CAP];
    int n;
    if ((s = amp_infer_const_ints(c, 0, shape, LIST_CAP, &n))) return s;
    if (n > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "output rank %d exceeds the maximum of %d", n, AMP_MAX_RANK);
    for (int i = 0; i < n; i++)
        if (shape[i] < 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "shape value %d is %lld", i, (long long)shape[i]);
    amp_dtype dt = AMP_F32;
    const amp_attr *a = amp_node_attr(c->n, "value");
    if (a) {
        if (a->kind != AMP_ATTR_TENSOR) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "value is not a tensor");
        if (!a->t) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "value holds a tensor type amprt does not hold");
        if (a->t->numel != 1)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "value must hold one element, holds %lld", (long long)a->t->numel);
        if ((s = amp_infer_dtype_in(c, a->t->dtype, amp_dt_all))) return s;
        dt = a->t->dtype;
    }
    return amp_infer_set_out(c, 0, dt, n, shape);
}
