/* Shape inference of the sample family: GridSample (opsets 16 and 20), AffineGrid (20) and
 * RoiAlign (10 and 16). Kernels in backends/cpu/sample.c; the training ops' inference, which
 * reruns these on the forward's inputs, in ir/ops/sample_grad.c. */
#include <math.h>
#include <string.h>

#include "ir/ir.h"

/* RoiAlign's sampling_ratio beyond this is refused: each output element reads up to its square
 * of samples, and a corrupt value would otherwise make a run take days. */
#define ROI_MAX_SAMPLING_RATIO 1024

static amp_status str_attr(amp_infer *c, const char *name, const char *def, const char **v) {
    const amp_attr *a = amp_node_attr(c->n, name);
    if (!a) {
        *v = def;
        return AMP_OK;
    }
    if (a->kind != AMP_ATTR_STRING || !a->s)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute %s must be a string", name);
    *v = a->s;
    return AMP_OK;
}

static amp_status align_attr(amp_infer *c) {
    int64_t ac = 0;
    amp_status s = amp_infer_int_attr(c, "align_corners", 0, &ac);
    if (s) return s;
    if (ac != 0 && ac != 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "align_corners must be 0 or 1, is %lld", (long long)ac);
    return AMP_OK;
}

/* ---- GridSample ------------------------------------------------------------------------------ */

/* GridSample's attributes as the node's opset names them: opset 16 says bilinear and bicubic,
 * opset 20 linear and cubic (and lifts the 4-D limit). */
static amp_status grid_sample_attrs(amp_infer *c) {
    bool v20 = c->opset >= 20;
    const char *mode = "", *pad = "";
    amp_status s;
    if ((s = str_attr(c, "mode", v20 ? "linear" : "bilinear", &mode)) ||
        (s = str_attr(c, "padding_mode", "zeros", &pad)) || (s = align_attr(c)))
        return s;
    bool ok = !strcmp(mode, "nearest") || !strcmp(mode, v20 ? "linear" : "bilinear") ||
              !strcmp(mode, v20 ? "cubic" : "bicubic");
    if (!ok) {
        bool other = !strcmp(mode, v20 ? "bilinear" : "linear") || !strcmp(mode, v20 ? "bicubic" : "cubic");
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "mode '%s' is not a mode of GridSample-%d%s", mode,
                              v20 ? 20 : 16,
                              other ? (v20 ? " (opset 20 renamed the modes linear and cubic)"
                                           : " (opsets 16 to 19 name the modes bilinear and bicubic)")
                                    : "");
    }
    if (strcmp(pad, "zeros") && strcmp(pad, "border") && strcmp(pad, "reflection"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "padding_mode '%s' is not zeros, border or reflection", pad);
    return AMP_OK;
}

amp_status amp_infer_grid_sample(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *g = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, g->dtype, amp_dt_float))) return s;
    if ((s = grid_sample_attrs(c))) return s;
    int r = x->rank - 2;
    if (c->opset < 20) {
        if (x->rank != 4)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "X must be 4-D (N, C, H, W) at opset %lld, has rank %d",
                                  (long long)c->opset, x->rank);
    } else if (r < 1) {
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X must be (N, C, D1, ...), has rank %d", x->rank);
    } else if (r > 3) {
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "%d spatial dims: amprt samples 1 to 3", r);
    }
    if (g->rank != x->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "grid must have the rank of X (%d), has %d", x->rank, g->rank);
    if (g->dims[g->rank - 1] != r)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "grid's last dim must be %d (one coordinate per spatial dim), is %lld",
                              r, (long long)g->dims[g->rank - 1]);
    if (g->dims[0] != x->dims[0])
        return amp_infer_fail(c, AMP_ERR_SHAPE, "grid has batch %lld, X %lld", (long long)g->dims[0],
                              (long long)x->dims[0]);
    int64_t dims[AMP_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    bool empty = dims[0] == 0 || dims[1] == 0;
    for (int d = 0; d < r; d++) {
        dims[2 + d] = g->dims[1 + d];
        empty |= dims[2 + d] == 0;
    }
    /* border and reflection read some pixel of X for every output: there must be one */
    const char *pad = amp_attr_str(c->n, "padding_mode", "zeros");
    if (strcmp(pad, "zeros") != 0 && !empty)
        for (int d = 0; d < r; d++)
            if (x->dims[2 + d] == 0)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "X's spatial dim %d is empty: padding_mode %s has no pixel",
                                      d, pad);
    return amp_infer_set_out(c, 0, x->dtype, x->rank, dims);
}

/* ---- AffineGrid ------------------------------------------------------------------------------ */

amp_status amp_infer_affine_grid(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *th = c->in[0], *sz = c->in[1];
    if ((s = amp_infer_dtype_in(c, th->dtype, amp_dt_float))) return s;
    if (sz->dtype != AMP_I64 && sz->dtype != AMP_I32)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "size must be int64, is %s", amp_dtype_name(sz->dtype));
    if ((s = align_attr(c))) return s;
    if (sz->rank != 1 || (sz->dims[0] != 4 && sz->dims[0] != 5))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "size must hold 4 values (N, C, H, W) or 5 (N, C, D, H, W)");
    if (!sz->value)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "data-dependent shape: size must be known before running");
    int64_t v[5];
    int nv = 0;
    if ((s = amp_infer_const_ints(c, 1, v, 5, &nv))) return s;
    int k = nv - 2; /* spatial dims: 2 or 3 */
    if (th->rank != 3 || th->dims[1] != k || th->dims[2] != k + 1)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "theta must be (N, %d, %d) for a %d-D size", k, k + 1, nv);
    for (int i = 0; i < nv; i++)
        if (v[i] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "size[%d] is negative (%lld)", i, (long long)v[i]);
    if (v[0] != th->dims[0])
        return amp_infer_fail(c, AMP_ERR_SHAPE, "size says N = %lld, theta has %lld matrices", (long long)v[0],
                              (long long)th->dims[0]);
    int64_t dims[5];
    dims[0] = v[0];
    for (int i = 0; i < k; i++) dims[1 + i] = v[2 + i];
    dims[1 + k] = k;
    return amp_infer_set_out(c, 0, th->dtype, k + 2, dims);
}

/* ---- RoiAlign -------------------------------------------------------------------------------- */

amp_status amp_infer_roi_align(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *rois = c->in[1], *bi = c->in[2];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (rois->dtype != x->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "rois are %s, X %s", amp_dtype_name(rois->dtype),
                              amp_dtype_name(x->dtype));
    if (bi->dtype != AMP_I64 && bi->dtype != AMP_I32)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "batch_indices must be int64, are %s", amp_dtype_name(bi->dtype));
    if (x->rank != 4) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must be 4-D (N, C, H, W), has rank %d", x->rank);
    if (rois->rank != 2 || rois->dims[1] != 4)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "rois must be (num_rois, 4)");
    if (bi->rank != 1 || bi->dims[0] != rois->dims[0])
        return amp_infer_fail(c, AMP_ERR_SHAPE, "batch_indices must be (%lld), one per roi", (long long)rois->dims[0]);
    const char *mode = "", *ctm = "";
    int64_t oh = 0, ow = 0, sr = 0;
    if ((s = str_attr(c, "mode", "avg", &mode)) || (s = amp_infer_int_attr(c, "output_height", 1, &oh)) ||
        (s = amp_infer_int_attr(c, "output_width", 1, &ow)) || (s = amp_infer_int_attr(c, "sampling_ratio", 0, &sr)))
        return s;
    if (strcmp(mode, "avg") && strcmp(mode, "max"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "mode '%s' is not avg or max", mode);
    if (oh < 1 || ow < 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "output_height and output_width must be >= 1 (%lld, %lld)",
                              (long long)oh, (long long)ow);
    if (sr < 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "sampling_ratio must be >= 0, is %lld", (long long)sr);
    if (sr > ROI_MAX_SAMPLING_RATIO)
        return amp_infer_fail(c, AMP_ERR_LIMIT, "sampling_ratio %lld is over amprt's limit of %d", (long long)sr,
                              ROI_MAX_SAMPLING_RATIO);
    const amp_attr *sc = amp_node_attr(c->n, "spatial_scale");
    if (sc && (sc->kind != AMP_ATTR_FLOAT || !isfinite(sc->f)))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "spatial_scale must be a finite float");
    if (c->opset < 16) {
        if (amp_node_attr(c->n, "coordinate_transformation_mode"))
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH,
                                  "coordinate_transformation_mode arrived at opset 16 (node at opset %lld)",
                                  (long long)c->opset);
    } else {
        if ((s = str_attr(c, "coordinate_transformation_mode", "half_pixel", &ctm))) return s;
        if (strcmp(ctm, "half_pixel") && strcmp(ctm, "output_half_pixel"))
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH,
                                  "coordinate_transformation_mode '%s' is not half_pixel or output_half_pixel", ctm);
    }
    int64_t dims[4] = {rois->dims[0], x->dims[1], oh, ow};
    return amp_infer_set_out(c, 0, x->dtype, 4, dims);
}
