/* Shape inference of Resize (opsets 10 to 28) and Upsample (7 to 9), and the geometry they share
 * with their gradient and kernels (ir/ops/resize.h): attribute and value checks, output dims,
 * per-axis scales, the workspace plan and the sampling tables.
 *
 * Semantics follow the ONNX operator text and its reference implementation: the output dim is
 * floor(in * scale) computed exactly (in double), the coordinate transform divides by the scale
 * as given (not by out / in), taps beyond the input read the edge pixel unless exclude_outside,
 * and antialias (opset 18) widens the linear/cubic filter by 1 / scale when shrinking. Resize-10
 * and Upsample have no coordinate or rounding attributes; they sample asymmetrically and round
 * as onnxruntime does (ceil when an axis shrinks, floor otherwise). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/half.h"
#include "ir/ops/resize.h"

#define ALIGN 64

static amp_status bad(char *why, size_t n, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static amp_status bad(char *why, size_t n, amp_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (why && n) vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return s;
}

void amp_resize_forward_slots(const amp_node *n, int64_t opset, amp_resize_slots *s) {
    s->upsample = n->op == AMP_OP_UPSAMPLE;
    s->opset = opset;
    s->roi = s->scales = s->sizes = -1;
    if (s->upsample) {
        if (opset >= 9) s->scales = 1; /* Upsample-7 holds its scales in an attribute */
    } else if (opset < 11) {
        s->scales = 1;
    } else {
        s->roi = 1;
        s->scales = 2;
        s->sizes = 3;
    }
}

static double float_at(const amp_tensor *t, int64_t i) {
    switch (t->dtype) {
    case AMP_F32: return ((const float *)t->data)[i];
    case AMP_F64: return ((const double *)t->data)[i];
    case AMP_F16: return amp_f16_to_f32(((const uint16_t *)t->data)[i]);
    case AMP_BF16: return amp_bf16_to_f32(((const uint16_t *)t->data)[i]);
    default: return NAN;
    }
}

static bool is_float(amp_dtype t) { return t == AMP_F32 || t == AMP_F64 || t == AMP_F16 || t == AMP_BF16; }

/* Attributes each version defines; anything else on the node is an error (a later version's
 * attribute on an earlier opset would otherwise be silently ignored). */
static const char *const attrs_legacy[] = {"mode", NULL};
static const char *const attrs_upsample7[] = {"mode", "scales", NULL};
static const char *const attrs_11[] = {"mode", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
                                       "extrapolation_value", "nearest_mode", NULL};
static const char *const attrs_18[] = {"mode", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
                                       "extrapolation_value", "nearest_mode", "antialias", "axes",
                                       "keep_aspect_ratio_policy", NULL};

static bool listed(const char *const *list, const char *name) {
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

/* A string attribute (def when absent); *ok false when present with another kind. */
static const char *str_attr(const amp_node *n, const char *name, const char *def, bool *ok) {
    const amp_attr *a = amp_node_attr(n, name);
    if (!a) return def;
    if (a->kind != AMP_ATTR_STRING || !a->s) {
        *ok = false;
        return def;
    }
    return a->s;
}

static int parse(const char *s, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* Source taps per output index of a non-identity axis (see sample_axis). */
static double taps_of(const amp_resize_geom *g, int d) {
    if (g->mode == AMP_RZ_NEAREST) return 1;
    double support = g->mode == AMP_RZ_LINEAR ? 1 : 2;
    if (!g->antialias) return 2 * support;
    double s = g->scale[d] < 1 ? g->scale[d] : 1;
    double start = floor(-support / s) + 1;
    return 2 - 2 * start;
}

amp_status amp_resize_geometry(const amp_node *n, const amp_resize_slots *sl, int rank, const int64_t *xdims,
                               const amp_tensor *roi, bool roi_present, const amp_tensor *scales,
                               const amp_tensor *sizes, amp_resize_geom *g, char *why, size_t wl) {
    memset(g, 0, sizeof *g);
    const bool legacy = sl->upsample || sl->opset < 11;
    const int64_t opset = sl->opset;
    const char *op = sl->upsample ? "Upsample" : "Resize";
    if (rank < 1 || rank > AMP_MAX_RANK)
        return bad(why, wl, AMP_ERR_SHAPE, "X must have rank 1 to %d, has %d", AMP_MAX_RANK, rank);
    g->rank = rank;
    for (int d = 0; d < rank; d++) {
        if (xdims[d] < 0) return bad(why, wl, AMP_ERR_SHAPE, "X has a negative dim");
        g->in[d] = g->out[d] = xdims[d];
        g->scale[d] = 1;
        g->roi_lo[d] = 0;
        g->roi_hi[d] = 1;
    }

    /* attributes */
    const char *const *allowed = sl->upsample && opset < 9 ? attrs_upsample7
                                 : legacy                  ? attrs_legacy
                                 : opset < 18              ? attrs_11
                                                           : attrs_18;
    bool train = n->domain && n->domain[0]; /* ResizeGrad carries the forward's attributes and its own */
    for (int i = 0; i < n->n_attrs; i++) {
        const char *an = n->attrs[i].name;
        if (train && (strcmp(an, "fwd_op") == 0 || strcmp(an, "fwd_opset") == 0)) continue;
        if (!listed(allowed, an))
            return bad(why, wl, AMP_ERR_INVALID_GRAPH, "attribute '%s' is not defined for %s at opset %lld", an, op,
                       (long long)opset);
    }
    bool ok = true;
    static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
    const char *ms = str_attr(n, "mode", "nearest", &ok);
    g->mode = parse(ms, modes);
    if (!ok || g->mode < 0 || (legacy && g->mode == AMP_RZ_CUBIC))
        return bad(why, wl, AMP_ERR_INVALID_GRAPH, "mode '%s' is not defined for %s at opset %lld", ms, op,
                   (long long)opset);
    g->cubic_a = -0.75;
    if (legacy) {
        g->ctm = AMP_RZ_ASYMMETRIC;
        g->nearest = AMP_RZ_SIMPLE;
    } else {
        static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                           "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize", NULL};
        const char *cs = str_attr(n, "coordinate_transformation_mode", "half_pixel", &ok);
        g->ctm = parse(cs, ctms);
        /* half_pixel_symmetric arrived at opset 19; tf_half_pixel_for_nn left after 11 */
        if (!ok || g->ctm < 0 || (g->ctm == AMP_RZ_HALF_PIXEL_SYMMETRIC && opset < 19) ||
            (g->ctm == AMP_RZ_TF_HALF_PIXEL_FOR_NN && opset >= 13))
            return bad(why, wl, AMP_ERR_INVALID_GRAPH,
                       "coordinate_transformation_mode '%s' is not defined at opset %lld", cs, (long long)opset);
        static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", NULL};
        const char *ns = str_attr(n, "nearest_mode", "round_prefer_floor", &ok);
        g->nearest = parse(ns, nms);
        if (!ok || g->nearest < 0) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "unknown nearest_mode '%s'", ns);
        g->cubic_a = amp_attr_float(n, "cubic_coeff_a", -0.75f);
        if (!isfinite(g->cubic_a)) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "cubic_coeff_a is not finite");
        int64_t eo = amp_attr_int(n, "exclude_outside", 0);
        if (eo != 0 && eo != 1) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "exclude_outside must be 0 or 1");
        g->exclude_outside = eo == 1;
        g->extrapolation = amp_attr_float(n, "extrapolation_value", 0.0f);
        int64_t aa = amp_attr_int(n, "antialias", 0);
        if (aa != 0 && aa != 1) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "antialias must be 0 or 1");
        /* the spec widens only the linear and cubic filters */
        g->antialias = aa == 1 && g->mode != AMP_RZ_NEAREST;
    }

    /* axes that roi, scales and sizes refer to (opset 18) */
    int axes[AMP_MAX_RANK], na = rank;
    for (int d = 0; d < rank; d++) axes[d] = d;
    const int64_t *av = NULL;
    int nav = amp_attr_ints(n, "axes", &av);
    if (amp_node_attr(n, "axes") && nav < 0) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "axes must be a list of ints");
    if (nav >= 0) {
        if (nav < 1 || nav > rank)
            return bad(why, wl, AMP_ERR_INVALID_GRAPH, "axes has %d entries for rank %d", nav, rank);
        bool seen[AMP_MAX_RANK] = {false};
        for (int i = 0; i < nav; i++) {
            int64_t a = av[i];
            if (a < -rank || a >= rank)
                return bad(why, wl, AMP_ERR_INVALID_GRAPH, "axis %lld is out of range for rank %d", (long long)a, rank);
            if (a < 0) a += rank;
            if (seen[a]) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "axis %lld repeats", (long long)a);
            seen[a] = true;
            axes[i] = (int)a;
        }
        na = nav;
    }

    /* scales or sizes */
    double sv[AMP_MAX_RANK];
    int ns = -1;
    if (sl->upsample && opset < 9) {
        const float *fv = NULL;
        int nf = amp_attr_floats(n, "scales", &fv);
        if (nf < 0) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "the scales attribute is required");
        if (nf != rank) return bad(why, wl, AMP_ERR_SHAPE, "scales has %d values for rank %d", nf, rank);
        for (int i = 0; i < nf; i++) sv[i] = fv[i];
        ns = nf;
    } else if (scales) {
        if (!is_float(scales->dtype)) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "scales must be a float tensor");
        if (scales->rank != 1) return bad(why, wl, AMP_ERR_SHAPE, "scales must be 1-D");
        if (scales->numel != na)
            return bad(why, wl, AMP_ERR_SHAPE, "scales has %lld values, expected %d", (long long)scales->numel, na);
        for (int i = 0; i < na; i++) sv[i] = float_at(scales, i);
        ns = na;
    }
    if (ns >= 0 && sizes) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "scales and sizes are both given");
    if (ns < 0 && !sizes)
        return bad(why, wl, AMP_ERR_INVALID_GRAPH, "%s",
                   legacy ? "scales is required" : "one of scales and sizes is required");
    if (ns >= 0) {
        for (int i = 0; i < ns; i++) {
            int d = axes[i];
            if (!(sv[i] > 0) || !isfinite(sv[i]))
                return bad(why, wl, AMP_ERR_INVALID_GRAPH, "scale %g of axis %d must be positive and finite", sv[i], d);
            if (sl->upsample && sv[i] < 1)
                return bad(why, wl, AMP_ERR_INVALID_GRAPH, "Upsample scale %g of axis %d is below 1", sv[i], d);
            double o = floor((double)g->in[d] * sv[i]);
            if (!(o < 4.0e18)) return bad(why, wl, AMP_ERR_OVERFLOW, "output dim %d overflows", d);
            g->scale[d] = sv[i];
            g->out[d] = (int64_t)o;
        }
    } else {
        if (sizes->dtype != AMP_I64 && sizes->dtype != AMP_I32)
            return bad(why, wl, AMP_ERR_INVALID_GRAPH, "sizes must be an int64 tensor");
        if (sizes->rank != 1) return bad(why, wl, AMP_ERR_SHAPE, "sizes must be 1-D");
        if (sizes->numel != na)
            return bad(why, wl, AMP_ERR_SHAPE, "sizes has %lld values, expected %d", (long long)sizes->numel, na);
        int64_t zv[AMP_MAX_RANK];
        for (int i = 0; i < na; i++) {
            zv[i] = sizes->dtype == AMP_I64 ? ((const int64_t *)sizes->data)[i] : ((const int32_t *)sizes->data)[i];
            if (zv[i] < 0) return bad(why, wl, AMP_ERR_SHAPE, "size %lld is negative", (long long)zv[i]);
        }
        static const char *const pols[] = {"stretch", "not_larger", "not_smaller", NULL};
        const char *ps = str_attr(n, "keep_aspect_ratio_policy", "stretch", &ok);
        int pol = parse(ps, pols);
        if (!ok || pol < 0) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "unknown keep_aspect_ratio_policy '%s'", ps);
        if (pol == 0) {
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                if (g->in[d] == 0 && zv[i] > 0)
                    return bad(why, wl, AMP_ERR_SHAPE, "cannot resize empty axis %d to %lld", d, (long long)zv[i]);
                g->out[d] = zv[i];
                g->scale[d] = g->in[d] > 0 ? (double)zv[i] / (double)g->in[d] : 1;
            }
        } else {
            /* one scale for every axis listed, so the aspect ratio is kept */
            double s = pol == 1 ? INFINITY : 0;
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                if (g->in[d] == 0)
                    return bad(why, wl, AMP_ERR_SHAPE, "cannot keep the aspect ratio of empty axis %d", d);
                double r = (double)zv[i] / (double)g->in[d];
                s = pol == 1 ? (r < s ? r : s) : (r > s ? r : s);
            }
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                double o = floor(s * (double)g->in[d] + 0.5); /* round_int: halves round up */
                if (!(o < 4.0e18)) return bad(why, wl, AMP_ERR_OVERFLOW, "output dim %d overflows", d);
                g->scale[d] = s;
                g->out[d] = (int64_t)o;
            }
        }
    }

    /* roi: read only by tf_crop_and_resize */
    g->roi_known = true;
    if (g->ctm == AMP_RZ_TF_CROP_AND_RESIZE) {
        if (!roi_present) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "tf_crop_and_resize needs the roi input");
        if (!roi) {
            g->roi_known = false;
        } else {
            if (!is_float(roi->dtype)) return bad(why, wl, AMP_ERR_INVALID_GRAPH, "roi must be a float tensor");
            if (roi->rank != 1 || roi->numel != 2 * na)
                return bad(why, wl, AMP_ERR_SHAPE, "roi has %lld values, expected %d", (long long)roi->numel, 2 * na);
            for (int i = 0; i < na; i++) {
                double lo = float_at(roi, i), hi = float_at(roi, na + i);
                if (!isfinite(lo) || !isfinite(hi) || fabs(lo) > 1e9 || fabs(hi) > 1e9)
                    return bad(why, wl, AMP_ERR_INVALID_ARG, "roi of axis %d is not finite or out of range", axes[i]);
                g->roi_lo[axes[i]] = lo;
                g->roi_hi[axes[i]] = hi;
            }
        }
    }

    /* taps; identity axes are exact copies in every mode (x_original = x_resized) */
    for (int d = 0; d < rank; d++) {
        g->identity[d] = g->in[d] == g->out[d] && g->scale[d] == 1 && g->ctm != AMP_RZ_TF_CROP_AND_RESIZE &&
                         g->ctm != AMP_RZ_TF_HALF_PIXEL_FOR_NN;
        if (g->identity[d] || g->out[d] == 0) continue;
        if (g->in[d] == 0)
            return bad(why, wl, AMP_ERR_SHAPE, "cannot resize empty axis %d to %lld", d, (long long)g->out[d]);
        double k = taps_of(g, d);
        if (!(k <= 1 << 30)) return bad(why, wl, AMP_ERR_LIMIT, "the filter of axis %d is too wide", d);
        g->taps[d] = (int64_t)k;
    }
    return AMP_OK;
}

/* ---- workspace plan ---------------------------------------------------------------------- */

static size_t up(size_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

/* bytes of one axis's tables: idx, wf, wd, outside */
static size_t tab_bytes(int64_t out, int64_t taps) {
    size_t n = (size_t)out * (size_t)taps;
    return up(n * sizeof(int64_t)) + up(n * sizeof(float)) + up(n * sizeof(double)) + up((size_t)out);
}

amp_status amp_resize_plan_make(const amp_resize_geom *g, amp_dtype dt, bool grad, int64_t limit,
                                amp_resize_plan *p, char *why, size_t wl) {
    memset(p, 0, sizeof *p);
    p->ct = dt == AMP_F32 || dt == AMP_F16 || dt == AMP_BF16 ? AMP_F32 : AMP_F64;
    int r = g->rank;
    for (int d = 0; d < r; d++)
        if (g->out[d] == 0 || g->in[d] == 0) return AMP_OK; /* nothing to read or write: no tables */
    double ratio[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) {
        if (g->identity[d]) continue;
        ratio[d] = (double)g->out[d] / (double)g->in[d];
        /* forward: shrinking axes first, so later passes see less data; gradient: the reverse
         * (its passes go from dY's shape to X's) */
        int i = p->npass++;
        while (i > 0 && (grad ? ratio[p->axes[i - 1]] < ratio[d] : ratio[p->axes[i - 1]] > ratio[d])) {
            p->axes[i] = p->axes[i - 1];
            i--;
        }
        p->axes[i] = d;
    }
    size_t off = 0;
    for (int i = 0; i < p->npass; i++) {
        int d = p->axes[i];
        if ((double)g->out[d] * (double)g->taps[d] > (double)limit)
            return bad(why, wl, AMP_ERR_LIMIT, "the sampling table of axis %d exceeds the element limit", d);
        p->tab[d] = off;
        off += tab_bytes(g->out[d], g->taps[d]);
    }
    bool sep = grad || g->mode != AMP_RZ_NEAREST; /* nearest gathers in one pass */
    if (!grad && g->mode != AMP_RZ_NEAREST && dt == AMP_F32 && p->npass == 2 && r >= 2 && !g->identity[r - 2] &&
        !g->identity[r - 1] && g->taps[r - 2] <= 4 && g->taps[r - 1] <= 4) {
        p->direct2d = true;
        sep = false;
    }
    size_t es = amp_dtype_size(p->ct), bsz[2] = {0, 0};
    if (sep && p->npass >= 2) {
        int64_t cur[AMP_MAX_RANK];
        for (int d = 0; d < r; d++) cur[d] = grad ? g->out[d] : g->in[d];
        for (int i = 0; i + 1 < p->npass; i++) {
            int d = p->axes[i];
            cur[d] = grad ? g->in[d] : g->out[d];
            double n = 1;
            for (int e = 0; e < r; e++) n *= (double)cur[e];
            if (n > (double)limit)
                return bad(why, wl, AMP_ERR_LIMIT, "an intermediate result exceeds the element limit");
            size_t b = (size_t)n * es;
            if (b > bsz[i % 2]) bsz[i % 2] = b;
        }
    }
    p->buf[0] = off;
    off += up(bsz[0]);
    p->buf[1] = off;
    off += up(bsz[1]);
    p->acc = off;
    if (grad && p->npass >= 1 && dt != p->ct) {
        double n = 1;
        for (int d = 0; d < r; d++) n *= (double)g->in[d];
        if (n > (double)limit) return bad(why, wl, AMP_ERR_LIMIT, "the gradient exceeds the element limit");
        off += up((size_t)n * es);
    }
    p->bytes = off;
    return AMP_OK;
}

/* ---- sampling tables ------------------------------------------------------------------------ */

/* x_original of output index j on axis d */
static double src_coord(const amp_resize_geom *g, int d, int64_t j) {
    double y = (double)j, in = (double)g->in[d], s = g->scale[d];
    /* the output length before flooring: fractional when a scale is given, as the reference
     * implementation uses it for align_corners and tf_crop_and_resize */
    double ow = s * in;
    switch (g->ctm) {
    case AMP_RZ_HALF_PIXEL: return (y + 0.5) / s - 0.5;
    case AMP_RZ_HALF_PIXEL_SYMMETRIC: {
        double adj = (double)g->out[d] / ow, off = in / 2 * (1 - adj);
        return off + (y + 0.5) / s - 0.5;
    }
    case AMP_RZ_PYTORCH_HALF_PIXEL: return g->out[d] > 1 ? (y + 0.5) / s - 0.5 : 0.0;
    case AMP_RZ_ALIGN_CORNERS: return ow == 1 ? 0.0 : y * (in - 1) / (ow - 1);
    case AMP_RZ_ASYMMETRIC: return y / s;
    case AMP_RZ_TF_HALF_PIXEL_FOR_NN: return (y + 0.5) / s;
    default: {
        double lo = g->roi_lo[d], hi = g->roi_hi[d];
        if (ow == 1) return (hi - lo) * (in - 1) / 2 + lo * (in - 1);
        return y * (hi - lo) * (in - 1) / (ow - 1) + lo * (in - 1);
    }
    }
}

static double cubic_w(double a, double t) {
    t = fabs(t);
    if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
}

/* Taps of output j on axis d: K indices (clamped into the input: edge padding) and weights. */
static void sample_axis(const amp_resize_geom *g, int d, int64_t j, int64_t *idx, double *w, uint8_t *outside) {
    int64_t K = g->taps[d], in = g->in[d];
    double x = src_coord(g, d, j);
    *outside = g->ctm == AMP_RZ_TF_CROP_AND_RESIZE && (x < 0 || x > (double)(in - 1));
    /* far outside, every tap reads the edge pixel; keep the integer conversions in range */
    double lim = (double)in + (double)K + 2;
    if (x > lim) x = lim;
    if (x < -lim) x = -lim;
    if (g->mode == AMP_RZ_NEAREST) {
        double f = floor(x), fr = x - f, v;
        switch (g->nearest) {
        case AMP_RZ_ROUND_PREFER_FLOOR: v = fr <= 0.5 ? f : f + 1; break;
        case AMP_RZ_ROUND_PREFER_CEIL: v = fr < 0.5 ? f : f + 1; break;
        case AMP_RZ_FLOOR: v = f; break;
        case AMP_RZ_CEIL: v = ceil(x); break;
        default: v = g->scale[d] < 1 ? ceil(x) : f; break;
        }
        if (v < 0) v = 0;
        if (v > (double)(in - 1)) v = (double)(in - 1);
        idx[0] = (int64_t)v;
        w[0] = 1;
        return;
    }
    double f = floor(x), r = x - f;
    int64_t x0 = (int64_t)f, start;
    if (!g->antialias) {
        start = g->mode == AMP_RZ_LINEAR ? 0 : -1;
        if (g->mode == AMP_RZ_LINEAR) {
            w[0] = 1 - r;
            w[1] = r;
        } else if (r == 0) { /* exact, so an integer coordinate copies its pixel */
            w[0] = w[2] = w[3] = 0;
            w[1] = 1;
        } else {
            double a = g->cubic_a;
            w[0] = cubic_w(a, r + 1);
            w[1] = cubic_w(a, r);
            w[2] = cubic_w(a, 1 - r);
            w[3] = cubic_w(a, 2 - r);
        }
    } else {
        /* the filter stretched by 1 / scale when shrinking, normalised to sum 1 */
        double s = g->scale[d] < 1 ? g->scale[d] : 1, sum = 0;
        start = 1 - K / 2;
        for (int64_t k = 0; k < K; k++) {
            double t = ((double)(start + k) - r) * s;
            double v = g->mode == AMP_RZ_LINEAR ? (fabs(t) < 1 ? 1 - fabs(t) : 0) : cubic_w(g->cubic_a, t);
            w[k] = v;
            sum += v;
        }
        if (sum != 0)
            for (int64_t k = 0; k < K; k++) w[k] /= sum;
    }
    if (g->exclude_outside) {
        double sum = 0;
        for (int64_t k = 0; k < K; k++) {
            int64_t i = x0 + start + k;
            if (i < 0 || i >= in) w[k] = 0;
            sum += w[k];
        }
        if (sum != 0)
            for (int64_t k = 0; k < K; k++) w[k] /= sum;
    }
    for (int64_t k = 0; k < K; k++) {
        int64_t i = x0 + start + k;
        idx[k] = i < 0 ? 0 : i >= in ? in - 1 : i;
    }
}

void amp_resize_tables(const amp_resize_geom *g, const amp_resize_plan *p, void *ws, amp_resize_tab *tab) {
    memset(tab, 0, sizeof(amp_resize_tab) * AMP_MAX_RANK);
    for (int i = 0; i < p->npass; i++) {
        int d = p->axes[i];
        int64_t out = g->out[d], K = g->taps[d];
        size_t n = (size_t)out * (size_t)K;
        char *b = (char *)ws + p->tab[d];
        int64_t *idx = (int64_t *)b;
        float *wf = (float *)(b + up(n * sizeof(int64_t)));
        double *wd = (double *)(b + up(n * sizeof(int64_t)) + up(n * sizeof(float)));
        uint8_t *outside = (uint8_t *)(b + up(n * sizeof(int64_t)) + up(n * sizeof(float)) + up(n * sizeof(double)));
        for (int64_t j = 0; j < out; j++) {
            sample_axis(g, d, j, idx + j * K, wd + j * K, outside + j);
            for (int64_t k = 0; k < K; k++) wf[j * K + k] = (float)wd[j * K + k];
        }
        tab[d].idx = idx;
        tab[d].wf = wf;
        tab[d].wd = wd;
        tab[d].outside = g->ctm == AMP_RZ_TF_CROP_AND_RESIZE ? outside : NULL;
    }
}

/* ---- shape inference ------------------------------------------------------------------------ */

/* Resize and Upsample share this; ResizeGrad (ir/ops/resize_grad.c) reads the same geometry. */
amp_status amp_infer_resize(amp_infer *c) {
    amp_resize_slots sl;
    amp_resize_forward_slots(c->n, c->opset, &sl);
    int lo, hi;
    if (sl.upsample) lo = hi = c->opset >= 9 ? 2 : 1;
    else if (c->opset < 11) lo = hi = 2;
    else if (c->opset < 13) lo = 3, hi = 4; /* roi and scales required (either may be empty) */
    else lo = 1, hi = 4;
    amp_status s = amp_infer_need_inputs(c, lo, hi);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    bool roi_p, sc_p, sz_p;
    const amp_tensor *roi = amp_resize_infer_input(c, sl.roi, &roi_p);
    const amp_tensor *scales = amp_resize_infer_input(c, sl.scales, &sc_p);
    const amp_tensor *sizes = amp_resize_infer_input(c, sl.sizes, &sz_p);
    if ((sc_p && !scales) || (sz_p && !sizes))
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "data-dependent shape: %s must be known before running",
                              sc_p && !scales ? "scales" : "sizes");
    amp_resize_geom g;
    char why[256];
    if ((s = amp_resize_geometry(c->n, &sl, x->rank, x->dims, roi, roi_p, scales, sizes, &g, why, sizeof why)))
        return amp_infer_fail(c, s, "%s", why);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, g.out, sizeof(int64_t) * (size_t)x->rank);
    if ((s = amp_shape_numel(y->rank, y->dims, y->dtype, NULL, NULL)))
        return amp_infer_fail(c, s, "output shape overflows or is invalid");
    return AMP_OK;
}
