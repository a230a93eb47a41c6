/* amprt's own CUDA kernels as an op family (cuda_backend.h): Softmax and LogSoftmax with their
 * gradients SoftmaxGrad and LogSoftmaxGrad, Hardmax; LayerNormalization, InstanceNormalization,
 * GroupNormalization, BatchNormalization (training and inference), LRN and
 * MeanVarianceNormalization with theirs. Kernels: backends/cuda/k_norm.cu through kernels_norm.h; semantics are the CPU
 * kernels' (backends/cpu/nn_softmax.c, nn_grad.c, norm_layer.c, norm_grad.c).
 *
 * One function says why a node cannot run here (why_not); supports() asks it and prepare()
 * fails with its answer, naming the node, so a refusal is always explained. Prepare reads the
 * attributes and the geometry once per step and keeps the launch parameters in the step's
 * state; run only enqueues on cu->stream: no allocation, no synchronisation, no host read of
 * device memory. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_util.h"
#include "backends/cuda/kernels_norm.h"

/* ---- shared ----------------------------------------------------------------------------------- */

/* The kernel dtype of t (f32 for an absent or unsupported one: why_not has refused those). */
static amp_k_dtype kd(const amp_tensor *t) {
    amp_k_dtype d = AMP_K_F32;
    if (t) kdtype(t->dtype, &d);
    return d;
}

static const void *data_opt(const amp_tensor *t) { return t ? t->data : NULL; }
static void *odata_opt(amp_tensor *t) { return t ? t->data : NULL; }

/* absent, or f32/f16/bf16 */
static bool opt_kfloat(const amp_tensor *t) { return !t || is_kfloat(t); }

/* ---- Softmax, LogSoftmax, Hardmax, SoftmaxGrad, LogSoftmaxGrad ---------------------------------
 * Rows as the CPU kernels see them: from opset 13 the one dim at `axis` (default -1); before,
 * the 2-D coercion at `axis` (default 1), the product of dims[axis:]. The gradients carry the
 * forward's opset as fwd_opset. */

static bool softmax_geom(const amp_tensor *x, int64_t opset, const amp_node *n, amp_k_softmax *p) {
    const int rank = x->rank;
    int64_t axis = amp_attr_int(n, "axis", opset >= 13 ? -1 : 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank || (opset >= 13 && axis == rank)) return false;
    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < rank; d++) {
        if (d < axis) outer *= x->dims[d];
        else if (d == axis || opset < 13) len *= x->dims[d];
        else inner *= x->dims[d];
    }
    p->rows = outer * inner;
    p->len = len;
    p->inner = inner;
    return true;
}

static int64_t softmax_opset(const amp_kernel *k, bool grad) {
    return grad ? amp_attr_int(k->n, "fwd_opset", 13) : k->opset;
}

static const char *why_softmax(const amp_kernel *k, bool grad) {
    const amp_tensor *y = grad ? in_opt(k, 1) : k->out[0], *x = k->in[0];
    amp_k_softmax p;
    if (grad && (k->nin != 2 || !y)) return "needs dY and Y";
    if (!is_kfloat(x) || !is_kfloat(y) || !is_kfloat(k->out[0])) return "runs f32, f16 and bf16 only";
    if (x->numel != y->numel || k->out[0]->numel != y->numel) return "inputs and output differ in size";
    if (!softmax_geom(y, softmax_opset(k, grad), k->n, &p)) return "has its axis out of range";
    return NULL;
}

static amp_status prepare_softmax(const amp_kernel *k, bool grad, void **state) {
    amp_k_softmax *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    const amp_tensor *y = grad ? k->in[1] : k->out[0];
    softmax_geom(y, softmax_opset(k, grad), k->n, p);
    p->log = k->n->op == AMP_OP_LOG_SOFTMAX || k->n->op == AMP_OP_LOG_SOFTMAX_GRAD;
    /* forward: X, Y; gradient: Y, dX, and dY */
    p->xt = kd(grad ? y : k->in[0]);
    p->yt = kd(k->out[0]);
    p->dyt = kd(grad ? k->in[0] : NULL);
    return AMP_OK;
}

static amp_status run_softmax(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_softmax_fwd(cu->stream, state, k->in[0]->data, k->out[0]->data));
}

static amp_status run_hardmax(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_hardmax(cu->stream, state, k->in[0]->data, k->out[0]->data));
}

static amp_status run_softmax_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_softmax_grad(cu->stream, state, k->in[0]->data, k->in[1]->data, k->out[0]->data));
}

/* ---- LayerNormalization, LayerNormalizationGrad ----------------------------------------------- */

/* A statistic's kernel dtype: f64 too (stash_type double). */
static bool stat_ok(const amp_tensor *t) { return !t || is_kfloat(t) || t->dtype == AMP_F64; }
static amp_k_dtype stat_kd(const amp_tensor *t) { return t && t->dtype == AMP_F64 ? AMP_K_STAT_F64 : kd(t); }

static bool ln_axis(const amp_kernel *k, const amp_tensor *x, int *axis) {
    int64_t a = amp_attr_int(k->n, "axis", -1);
    if (a < 0) a += x->rank;
    if (a < 0 || a >= x->rank) return false;
    *axis = (int)a;
    return true;
}

/* Parameter t broadcast one way onto X (numpy rules, X's shape wins): its stride along each of
 * X's dims (0 where broadcast) into st, and whether it spans exactly the normalised dims (X's
 * from axis on, ones before), which the CPU indexes by the column. False when it does not
 * broadcast. */
static bool ln_param(const amp_tensor *t, const amp_tensor *x, int axis, int64_t *st, bool *column) {
    int off = x->rank - t->rank;
    if (off < 0) return false;
    int64_t s = 1;
    *column = true;
    for (int d = x->rank - 1; d >= 0; d--) {
        int64_t pd = d >= off ? t->dims[d - off] : 1;
        if (pd != 1 && pd != x->dims[d]) return false;
        st[d] = pd == 1 ? 0 : s;
        s *= pd;
        if (d < axis ? pd != 1 : pd != x->dims[d]) *column = false;
    }
    return true;
}

/* The parameter's dims in X's frame (1 where it broadcasts), for SumToShape's plan. */
static bool ln_param_plan(const amp_tensor *t, const amp_tensor *x, amp_k_s2s *g) {
    int64_t td[AMP_MAX_RANK];
    int off = x->rank - t->rank;
    for (int d = 0; d < x->rank; d++) td[d] = d >= off ? t->dims[d - off] : 1;
    return amp_k_s2s_plan(x->rank, x->dims, td, g);
}

static void ln_rows_cols(const amp_tensor *x, int axis, amp_k_ln *p) {
    p->rows = p->cols = 1;
    for (int d = 0; d < x->rank; d++) *(d < axis ? &p->rows : &p->cols) *= x->dims[d];
}

/* Forward: (X, Scale, B?) -> (Y, Mean?, InvStdDev?). Gradient: (dY?, X, Scale, B?, Mean?,
 * InvStdDev?, dMean?, dInvStdDev?) -> (dX, dScale, dB?). */
static const char *why_ln(const amp_kernel *k, bool grad) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = in_opt(k, o), *sc = in_opt(k, o + 1), *b = in_opt(k, o + 2);
    int axis;
    if (!x || !sc) return "needs X and Scale";
    if (!is_kfloat(x) || !is_kfloat(sc) || !opt_kfloat(b) || !is_kfloat(k->out[0])) return "runs f32, f16 and bf16 only";
    if (grad && !opt_kfloat(k->in[0])) return "takes f32, f16 and bf16 gradients only";
    for (int i = 4; grad && i < 8; i++)
        if (!stat_ok(in_opt(k, i))) return "takes f32, f16, bf16 and f64 statistics only";
    for (int i = 1; i < k->nout; i++)
        if (grad ? !opt_kfloat(k->out[i]) : !stat_ok(k->out[i]))
            return grad ? "writes f32, f16 and bf16 gradients only" : "writes f32, f16, bf16 and f64 statistics only";
    if (!ln_axis(k, x, &axis)) return "has its axis out of range";
    int64_t st[AMP_MAX_RANK];
    bool col;
    amp_k_s2s g;
    if (x->rank > AMP_K_BC_RANK || !ln_param(sc, x, axis, st, &col) || (b && !ln_param(b, x, axis, st, &col)))
        return "has Scale or B that does not broadcast to X";
    if (grad && (!ln_param_plan(sc, x, &g) || (b && !ln_param_plan(b, x, &g))))
        return "has Scale or B that does not broadcast to X";
    if (k->out[0]->numel != x->numel || (grad && k->in[0] && k->in[0]->numel != x->numel))
        return "inputs and output differ in size";
    if (grad) {
        amp_k_ln p;
        ln_rows_cols(x, axis, &p);
        for (int i = 4; i < 8; i++)
            if (in_opt(k, i) && in_opt(k, i)->numel != p.rows) return "has statistics not one per row";
    }
    return NULL;
}

/* The state is the amp_k_ln itself: the fused family's AddLayerNorm (op_fused.c) launches
 * amp_k_add_layer_norm with the forward's. */
static amp_status prepare_ln(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = k->in[o], *sc = k->in[o + 1], *b = in_opt(k, o + 2);
    amp_k_ln *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    int axis = 0;
    ln_axis(k, x, &axis);
    ln_rows_cols(x, axis, p);
    p->eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    p->rank = x->rank;
    for (int d = 0; d < x->rank; d++) p->xd[d] = x->dims[d];
    ln_param(sc, x, axis, p->sst, &p->scol);
    if (b) ln_param(b, x, axis, p->bst, &p->bcol);
    p->xt = kd(x);
    p->yt = kd(k->out[0]);
    p->st = kd(sc);
    p->bt = kd(b);
    if (!grad) {
        p->mt = stat_kd(out_opt(k, 1));
        p->it = stat_kd(out_opt(k, 2));
        /* the CPU's f32 loop: every big tensor f32, Scale and B by the column (not a single
         * value, which the CPU reads through its scalar path in double) */
        p->fast = x->dtype == AMP_F32 && k->out[0]->dtype == AMP_F32 && sc->dtype == AMP_F32 && p->scol &&
                  sc->numel != 1 && (!b || (b->dtype == AMP_F32 && p->bcol && b->numel != 1));
        return AMP_OK;
    }
    p->dyt = kd(k->in[0]);
    p->mt = stat_kd(in_opt(k, 4));
    p->it = stat_kd(in_opt(k, 5));
    p->gmt = stat_kd(in_opt(k, 6));
    p->git = stat_kd(in_opt(k, 7));
    p->dst = kd(out_opt(k, 1));
    p->dbt = kd(out_opt(k, 2));
    ln_param_plan(sc, x, &p->sg);
    if (b) ln_param_plan(b, x, &p->bg);
    *ws_bytes = amp_k_layer_norm_grad_ws(p);
    return AMP_OK;
}

static amp_status run_ln(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_layer_norm(cu->stream, state, k->in[0]->data, k->in[1]->data, data_opt(in_opt(k, 2)),
                                      k->out[0]->data, odata_opt(out_opt(k, 1)), odata_opt(out_opt(k, 2))));
}

static amp_status run_ln_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const amp_tensor *sm = in_opt(k, 4), *si = in_opt(k, 5);
    /* the saved statistics are read only when both are there, as on the CPU */
    if (!sm || !si) sm = si = NULL;
    return LAUNCH(k, amp_k_layer_norm_grad(cu->stream, state, data_opt(k->in[0]), k->in[1]->data, k->in[2]->data,
                                           data_opt(sm), data_opt(si), data_opt(in_opt(k, 6)),
                                           data_opt(in_opt(k, 7)), k->out[0]->data, odata_opt(out_opt(k, 1)),
                                           odata_opt(out_opt(k, 2)), k->ws));
}

/* ---- InstanceNormalization, InstanceNormalizationGrad ------------------------------------------
 * Forward: (X, scale, B) -> Y. Gradient: (dY, X, scale, B) -> (dX, dscale?, dB?). */

static const char *why_in(const amp_kernel *k, bool grad) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = in_opt(k, o), *sc = in_opt(k, o + 1), *b = in_opt(k, o + 2);
    if (!x || !sc || !b || (grad && !k->in[0])) return grad ? "needs dY, X, scale and B" : "needs X, scale and B";
    if (!is_kfloat(x) || !is_kfloat(sc) || !is_kfloat(b) || !is_kfloat(k->out[0]) || (grad && !is_kfloat(k->in[0])))
        return "runs f32, f16 and bf16 only";
    for (int i = 1; i < k->nout; i++)
        if (!opt_kfloat(k->out[i])) return "writes f32, f16 and bf16 gradients only";
    if (x->rank < 3) return "needs X of rank 3 or more (N x C x D1 ...)";
    if (sc->numel != x->dims[1] || b->numel != x->dims[1]) return "needs scale and B of one value per channel";
    if (k->out[0]->numel != x->numel || (grad && k->in[0]->numel != x->numel)) return "inputs and output differ in size";
    return NULL;
}

static amp_status prepare_in(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = k->in[o];
    amp_k_inorm *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    p->n = x->dims[0];
    p->c = x->dims[1];
    p->sp = 1;
    for (int d = 2; d < x->rank; d++) p->sp *= x->dims[d];
    p->eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    p->xt = kd(x);
    p->yt = kd(k->out[0]);
    p->st = kd(k->in[o + 1]);
    p->bt = kd(k->in[o + 2]);
    if (grad) {
        p->dyt = kd(k->in[0]);
        p->dst = kd(out_opt(k, 1));
        p->dbt = kd(out_opt(k, 2));
        *ws_bytes = amp_k_instance_norm_grad_ws(p);
    }
    return AMP_OK;
}

static amp_status run_in(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_instance_norm(cu->stream, state, k->in[0]->data, k->in[1]->data, k->in[2]->data,
                                         k->out[0]->data));
}

static amp_status run_in_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_instance_norm_grad(cu->stream, state, k->in[0]->data, k->in[1]->data, k->in[2]->data,
                                              k->out[0]->data, odata_opt(out_opt(k, 1)), odata_opt(out_opt(k, 2)),
                                              k->ws));
}

/* ---- GroupNormalization, GroupNormalizationGrad -------------------------------------------------
 * Forward: (X, scale, bias) -> Y. Gradient: (dY, X, scale, bias) -> (dX, dscale?, dbias?), bias
 * read for its dtype only. Parameters per channel from opset 21, per group before (the
 * gradient carries the forward's opset as fwd_opset). */

static bool gn_per_channel(const amp_kernel *k, bool grad) {
    return (grad ? amp_attr_int(k->n, "fwd_opset", 21) : k->opset) >= 21;
}

static const char *why_gn(const amp_kernel *k, bool grad) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = in_opt(k, o), *sc = in_opt(k, o + 1), *b = in_opt(k, o + 2);
    if (!x || !sc || !b || (grad && !k->in[0])) return grad ? "needs dY, X, scale and bias" : "needs X, scale and bias";
    if (!is_kfloat(x) || !is_kfloat(sc) || !is_kfloat(b) || !is_kfloat(k->out[0]) || (grad && !is_kfloat(k->in[0])))
        return "runs f32, f16 and bf16 only";
    for (int i = 1; i < k->nout; i++)
        if (!opt_kfloat(k->out[i])) return "writes f32, f16 and bf16 gradients only";
    if (x->rank < 2) return "needs X of rank 2 or more (N x C x D1 ...)";
    const int64_t groups = amp_attr_int(k->n, "num_groups", 0), ch = x->dims[1];
    if (groups < 1 || ch % groups != 0) return "has num_groups that does not divide the channels";
    const int64_t plen = gn_per_channel(k, grad) ? ch : groups;
    if (sc->numel != plen || b->numel != plen) return "has scale or bias not one value per channel (or group)";
    if (k->out[0]->numel != x->numel || (grad && k->in[0]->numel != x->numel)) return "inputs and output differ in size";
    return NULL;
}

static amp_status prepare_gn(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = k->in[o], *sc = k->in[o + 1], *b = k->in[o + 2];
    amp_k_gnorm *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    p->n = x->dims[0];
    p->c = x->dims[1];
    p->sp = 1;
    for (int d = 2; d < x->rank; d++) p->sp *= x->dims[d];
    p->groups = amp_attr_int(k->n, "num_groups", 1);
    p->cpg = p->c / p->groups;
    p->eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    p->per_channel = gn_per_channel(k, grad);
    p->xt = kd(x);
    p->yt = kd(k->out[0]);
    p->st = kd(sc);
    p->bt = kd(b);
    if (grad) {
        p->dyt = kd(k->in[0]);
        p->dst = kd(out_opt(k, 1));
        p->dbt = kd(out_opt(k, 2));
        *ws_bytes = amp_k_group_norm_grad_ws(p);
        return AMP_OK;
    }
    /* the CPU's f32 loop, unless a double stash asks for the first stage in double */
    const bool stash64 = p->per_channel && amp_attr_int(k->n, "stash_type", AMP_F32) == AMP_F64;
    p->fast = !stash64 && x->dtype == AMP_F32 && k->out[0]->dtype == AMP_F32 && sc->dtype == AMP_F32 &&
              b->dtype == AMP_F32;
    return AMP_OK;
}

static amp_status run_gn(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_group_norm(cu->stream, state, k->in[0]->data, k->in[1]->data, k->in[2]->data,
                                      k->out[0]->data));
}

static amp_status run_gn_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_group_norm_grad(cu->stream, state, k->in[0]->data, k->in[1]->data, k->in[2]->data,
                                           k->out[0]->data, odata_opt(out_opt(k, 1)), odata_opt(out_opt(k, 2)),
                                           k->ws));
}

/* ---- BatchNormalization, BatchNormalizationGrad ------------------------------------------------
 * Forward: (X, scale, B, mean, var) -> (Y, running_mean?, running_var?, saved_mean?,
 * saved_inv_std?). Gradient: (dY?, X, scale, mean, var, dRunningMean?, dRunningVar?,
 * dSavedMean?, dSavedInvStd?) -> (dX, dscale?, dB?, dmean?, dvar?), its mode in "training".
 * Channels: dim 1 (1 for a 1-D X); opset < 9 spatial=0 parameters cover C x D1 x ..., the same
 * loop with a spatial size of 1. */

/* Training mode, decided as the CPU kernel decides it (backends/cpu/norm_layer.c). */
static bool bn_training(const amp_kernel *k) {
    if (k->opset >= 14) return amp_attr_int(k->n, "training_mode", 0) != 0;
    if (k->nout < 2 || !k->out[1]) return false;
    return k->opset >= 7 || amp_attr_int(k->n, "is_test", 0) == 0;
}

static void bn_geom(const amp_tensor *x, const amp_tensor *sc, amp_k_bnorm *p) {
    p->n = x->dims[0];
    p->sp = 1;
    if (sc->rank > 1) {
        p->ch = sc->numel;
    } else {
        p->ch = x->rank > 1 ? x->dims[1] : 1;
        for (int d = 2; d < x->rank; d++) p->sp *= x->dims[d];
    }
}

static const char *why_bn(const amp_kernel *k, bool grad) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = in_opt(k, o), *sc = in_opt(k, o + 1);
    /* mean and var are inputs 3 and 4 of both; the gradient has no B (scale stands in for the checks) */
    const amp_tensor *mn = in_opt(k, 3), *vr = in_opt(k, 4), *b = grad ? sc : in_opt(k, 2);
    if (!x || !sc || !b || !mn || !vr) return "needs X, scale, B, mean and var";
    if (!is_kfloat(x) || !is_kfloat(sc) || !is_kfloat(b) || !is_kfloat(mn) || !is_kfloat(vr) || !is_kfloat(k->out[0]))
        return "runs f32, f16 and bf16 only";
    for (int i = 0; i < k->nin; i++)
        if (!opt_kfloat(k->in[i])) return "takes f32, f16 and bf16 gradients only";
    for (int i = 1; i < k->nout; i++)
        if (!opt_kfloat(k->out[i])) return "writes f32, f16 and bf16 statistics and gradients only";
    if (x->rank < 1) return "needs X of rank 1 or more";
    amp_k_bnorm p;
    bn_geom(x, sc, &p);
    if (sc->numel != p.ch || b->numel != p.ch || mn->numel != p.ch || vr->numel != p.ch)
        return "has parameters not one value per channel";
    for (int i = 5; grad && i < k->nin; i++)
        if (k->in[i] && k->in[i]->numel != p.ch) return "has statistics gradients not one value per channel";
    if (k->out[0]->numel != x->numel || (grad && k->in[0] && k->in[0]->numel != x->numel))
        return "inputs and output differ in size";
    return NULL;
}

static amp_status prepare_bn(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    const int o = grad ? 1 : 0;
    const amp_tensor *x = k->in[o], *sc = k->in[o + 1];
    amp_k_bnorm *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    bn_geom(x, sc, p);
    p->eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    p->mom = amp_attr_float(k->n, "momentum", 0.9f);
    p->xt = kd(x);
    p->yt = kd(k->out[0]);
    p->st = kd(sc);
    p->mt = kd(k->in[3]);
    p->vt = kd(k->in[4]);
    if (!grad) {
        p->training = bn_training(k);
        p->bt = kd(k->in[2]);
        p->rmt = kd(out_opt(k, 1));
        p->rvt = kd(out_opt(k, 2));
        p->smt = kd(out_opt(k, 3));
        p->sit = kd(out_opt(k, 4));
        *ws_bytes = amp_k_batch_norm_ws(p);
        return AMP_OK;
    }
    p->training = amp_attr_int(k->n, "training", 0) != 0;
    p->dyt = kd(k->in[0]);
    p->rmt = kd(in_opt(k, 5));
    p->rvt = kd(in_opt(k, 6));
    p->smt = kd(in_opt(k, 7));
    p->sit = kd(in_opt(k, 8));
    p->dst = kd(out_opt(k, 1));
    p->dbt = kd(out_opt(k, 2));
    p->dmt = kd(out_opt(k, 3));
    p->dvt = kd(out_opt(k, 4));
    return AMP_OK;
}

static amp_status run_bn(amp_cuda *cu, const amp_kernel *k, void *state) {
    const amp_k_bnorm *p = state;
    /* inference writes Y alone, whatever other outputs the node has */
    amp_tensor *o[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; p->training && i < 4; i++) o[i] = out_opt(k, i + 1);
    return LAUNCH(k, amp_k_batch_norm(cu->stream, p, k->in[0]->data, k->in[1]->data, k->in[2]->data, k->in[3]->data,
                                      k->in[4]->data, k->out[0]->data, odata_opt(o[0]), odata_opt(o[1]),
                                      odata_opt(o[2]), odata_opt(o[3]), k->ws));
}

static amp_status run_bn_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_batch_norm_grad(cu->stream, state, data_opt(k->in[0]), k->in[1]->data, k->in[2]->data,
                                           k->in[3]->data, k->in[4]->data, data_opt(in_opt(k, 5)),
                                           data_opt(in_opt(k, 6)), data_opt(in_opt(k, 7)), data_opt(in_opt(k, 8)),
                                           k->out[0]->data, odata_opt(out_opt(k, 1)), odata_opt(out_opt(k, 2)),
                                           odata_opt(out_opt(k, 3)), odata_opt(out_opt(k, 4))));
}

/* ---- LRN, LRNGrad -------------------------------------------------------------------------------
 * Forward: X -> Y. Gradient: (dY, X) -> dX. */

static const char *why_lrn(const amp_kernel *k, bool grad) {
    const amp_tensor *x = in_opt(k, grad ? 1 : 0);
    if (!x || (grad && !k->in[0])) return grad ? "needs dY and X" : "needs X";
    if (!is_kfloat(x) || !is_kfloat(k->out[0]) || (grad && !is_kfloat(k->in[0]))) return "runs f32, f16 and bf16 only";
    if (x->rank < 2) return "needs X of rank 2 or more (N x C x D1 ...)";
    if (amp_attr_int(k->n, "size", 0) < 1) return "needs a size of 1 or more";
    if (k->out[0]->numel != x->numel || (grad && k->in[0]->numel != x->numel)) return "inputs and output differ in size";
    return NULL;
}

static amp_status prepare_lrn(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    const amp_tensor *x = k->in[grad ? 1 : 0];
    amp_k_lrn *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    const int64_t size = amp_attr_int(k->n, "size", 1);
    p->n = x->dims[0];
    p->ch = x->dims[1];
    p->sp = 1;
    for (int d = 2; d < x->rank; d++) p->sp *= x->dims[d];
    p->lo = (size - 1) / 2;
    p->hi = size / 2;
    p->bias = amp_attr_float(k->n, "bias", 1.0f);
    p->scale = amp_attr_float(k->n, "alpha", 1e-4f) / (double)size;
    p->beta = amp_attr_float(k->n, "beta", 0.75f);
    p->xt = kd(x);
    p->yt = kd(k->out[0]);
    if (grad) {
        p->dyt = kd(k->in[0]);
        *ws_bytes = amp_k_lrn_grad_ws(p);
    } else {
        p->fast = x->dtype == AMP_F32 && k->out[0]->dtype == AMP_F32;
    }
    return AMP_OK;
}

static amp_status run_lrn(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_lrn_fwd(cu->stream, state, k->in[0]->data, k->out[0]->data));
}

static amp_status run_lrn_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return LAUNCH(k, amp_k_lrn_grad(cu->stream, state, k->in[0]->data, k->in[1]->data, k->out[0]->data, k->ws));
}

/* ---- MeanVarianceNormalization, MeanVarianceNormalizationGrad -----------------------------------
 * Forward: X -> Y. Gradient: (dY, X) -> dX. Axes as the CPU reads them: default 0, 2, 3; an
 * empty list reduces every axis. The geometry is SumToShape's (kernels.h). */

typedef struct mvn_state {
    amp_k_s2s g;
    amp_k_dtype dyt, xt, yt;
} mvn_state;

static bool mvn_geom(const amp_kernel *k, const amp_tensor *x, amp_k_s2s *g) {
    static const int64_t def_axes[3] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int n = amp_attr_ints(k->n, "axes", &axes);
    if (n < 0) {
        axes = def_axes;
        n = 3;
    }
    int64_t td[AMP_MAX_RANK];
    for (int d = 0; d < x->rank; d++) td[d] = n == 0 ? 1 : x->dims[d];
    for (int i = 0; i < n; i++) {
        if (axes[i] < -x->rank || axes[i] >= x->rank) return false;
        td[axes[i] < 0 ? axes[i] + x->rank : axes[i]] = 1;
    }
    return amp_k_s2s_plan(x->rank, x->dims, td, g);
}

static const char *why_mvn(const amp_kernel *k, bool grad) {
    const amp_tensor *x = in_opt(k, grad ? 1 : 0);
    amp_k_s2s g;
    if (!x || (grad && !k->in[0])) return grad ? "needs dY and X" : "needs X";
    if (!is_kfloat(x) || !is_kfloat(k->out[0]) || (grad && !is_kfloat(k->in[0]))) return "runs f32, f16 and bf16 only";
    if (k->out[0]->numel != x->numel || (grad && k->in[0]->numel != x->numel)) return "inputs and output differ in size";
    if (!mvn_geom(k, x, &g)) return "has axes out of range or X of rank above 8";
    return NULL;
}

static amp_status prepare_mvn(const amp_kernel *k, bool grad, void **state) {
    const amp_tensor *x = k->in[grad ? 1 : 0];
    mvn_state *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    mvn_geom(k, x, &p->g);
    p->xt = kd(x);
    p->yt = kd(k->out[0]);
    p->dyt = kd(grad ? k->in[0] : NULL);
    return AMP_OK;
}

static amp_status run_mvn(amp_cuda *cu, const amp_kernel *k, void *state) {
    const mvn_state *p = state;
    return LAUNCH(k, amp_k_mvn(cu->stream, &p->g, p->xt, p->yt, k->in[0]->data, k->out[0]->data));
}

static amp_status run_mvn_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const mvn_state *p = state;
    return LAUNCH(k, amp_k_mvn_grad(cu->stream, &p->g, p->dyt, p->xt, p->yt, k->in[0]->data, k->in[1]->data,
                                    k->out[0]->data));
}

/* ---- the family ------------------------------------------------------------------------------- */

static bool dy_optional(amp_op op) { return op == AMP_OP_LAYER_NORM_GRAD || op == AMP_OP_BATCH_NORM_GRAD; }

/* Why this family cannot run k (NULL: it can). */
static const char *why_not(const amp_kernel *k) {
    if (k->nout < 1 || !k->out[0]) return "needs its first output";
    /* the dY of LayerNormalizationGrad and BatchNormalizationGrad is optional; every other op
     * here reads input 0 */
    if (!dy_optional(k->n->op) && (k->nin < 1 || !k->in[0])) return "needs its first input";
    switch (k->n->op) {
    case AMP_OP_SOFTMAX:
    case AMP_OP_LOG_SOFTMAX:
    case AMP_OP_HARDMAX: return why_softmax(k, false);
    case AMP_OP_SOFTMAX_GRAD:
    case AMP_OP_LOG_SOFTMAX_GRAD: return why_softmax(k, true);
    case AMP_OP_LAYER_NORM: return why_ln(k, false);
    case AMP_OP_LAYER_NORM_GRAD: return why_ln(k, true);
    case AMP_OP_INSTANCE_NORM: return why_in(k, false);
    case AMP_OP_INSTANCE_NORM_GRAD: return why_in(k, true);
    case AMP_OP_GROUP_NORM: return why_gn(k, false);
    case AMP_OP_GROUP_NORM_GRAD: return why_gn(k, true);
    case AMP_OP_BATCH_NORM: return why_bn(k, false);
    case AMP_OP_BATCH_NORM_GRAD: return why_bn(k, true);
    case AMP_OP_LRN: return why_lrn(k, false);
    case AMP_OP_LRN_GRAD: return why_lrn(k, true);
    case AMP_OP_MEAN_VARIANCE_NORM: return why_mvn(k, false);
    case AMP_OP_MEAN_VARIANCE_NORM_GRAD: return why_mvn(k, true);
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
        return refuse(k, in_opt(k, dy_optional(k->n->op) ? 1 : 0), why);
    }
    switch (k->n->op) {
    case AMP_OP_SOFTMAX:
    case AMP_OP_LOG_SOFTMAX:
    case AMP_OP_HARDMAX: return prepare_softmax(k, false, state);
    case AMP_OP_SOFTMAX_GRAD:
    case AMP_OP_LOG_SOFTMAX_GRAD: return prepare_softmax(k, true, state);
    case AMP_OP_LAYER_NORM: return prepare_ln(k, false, state, ws_bytes);
    case AMP_OP_LAYER_NORM_GRAD: return prepare_ln(k, true, state, ws_bytes);
    case AMP_OP_INSTANCE_NORM: return prepare_in(k, false, state, ws_bytes);
    case AMP_OP_INSTANCE_NORM_GRAD: return prepare_in(k, true, state, ws_bytes);
    case AMP_OP_GROUP_NORM: return prepare_gn(k, false, state, ws_bytes);
    case AMP_OP_GROUP_NORM_GRAD: return prepare_gn(k, true, state, ws_bytes);
    case AMP_OP_BATCH_NORM: return prepare_bn(k, false, state, ws_bytes);
    case AMP_OP_BATCH_NORM_GRAD: return prepare_bn(k, true, state, ws_bytes);
    case AMP_OP_LRN: return prepare_lrn(k, false, state, ws_bytes);
    case AMP_OP_LRN_GRAD: return prepare_lrn(k, true, state, ws_bytes);
    case AMP_OP_MEAN_VARIANCE_NORM: return prepare_mvn(k, false, state);
    case AMP_OP_MEAN_VARIANCE_NORM_GRAD: return prepare_mvn(k, true, state);
    default: return AMP_OK;
    }
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_norm[] = {
    ENTRY(SOFTMAX, run_softmax),
    ENTRY(LOG_SOFTMAX, run_softmax),
    ENTRY(HARDMAX, run_hardmax),
    ENTRY(SOFTMAX_GRAD, run_softmax_grad),
    ENTRY(LOG_SOFTMAX_GRAD, run_softmax_grad),
    ENTRY(LAYER_NORM, run_ln),
    ENTRY(LAYER_NORM_GRAD, run_ln_grad),
    ENTRY(INSTANCE_NORM, run_in),
    ENTRY(INSTANCE_NORM_GRAD, run_in_grad),
    ENTRY(GROUP_NORM, run_gn),
    ENTRY(GROUP_NORM_GRAD, run_gn_grad),
    ENTRY(BATCH_NORM, run_bn),
    ENTRY(BATCH_NORM_GRAD, run_bn_grad),
    ENTRY(LRN, run_lrn),
    ENTRY(LRN_GRAD, run_lrn_grad),
    ENTRY(MEAN_VARIANCE_NORM, run_mvn),
    ENTRY(MEAN_VARIANCE_NORM_GRAD, run_mvn_grad),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
