/* The convolution family on CUDA: Conv, FusedConv, ConvGrad, ConvTranspose and ConvTransposeGrad
 * through cuDNN's graph API (conv.h).
 *
 * Conv runs one forward plan (amp_cuda_conv_fwd_get); its bias B, when given, is a pointwise ADD
 * in the same graph, on the FP32 sum (one rounding of the output, as on the CPU). Should no
 * engine finalise the fused graph, the plan is the convolution alone and a kernel of our own
 * (conv_bias.cu) adds B after it (f16 and bf16 outputs are then rounded twice).
 * FusedConv (ai.amprt.fused: Conv + Relu, activation "Relu" only) runs exactly as Conv does, with
 * a RELU_FWD after the bias in the same graph. Where that graph does not finalise, the relu moves
 * to the kernel, applied on store: after the plan with the bias (cuDNN 9.19 has no engine for
 * conv -> relu without a bias, so a FusedConv without B always takes this), else after the plain
 * plan with the bias. Relu commutes with rounding: FusedConv is bit for bit relu of what Conv
 * computes with the same plan, except where the kernel adds the bias to a rounded f16/bf16 sum.
 * ConvGrad (ir/ops/conv_grad.def: (dY, X, W) -> (dX, dW, dB), each output optional) runs a
 * backward-data plan for dX and a backward-filter plan for dW, one after the other on the
 * stream, so they share one workspace of the larger size; dB is the per-channel sum of dY
 * (amp_cuda_reduce_channels, deterministic).
 * ConvTranspose is the data gradient of the convolution that maps its output Y back to its input
 * X with the same W, strides, dilations, pads and groups (the "transposed" descriptor: conv input
 * Y-shaped, conv output X-shaped): one backward-data plan, then B by conv_bias.cu's kernel (f16
 * and bf16 outputs rounded twice where there is a bias). Its gradient ConvTransposeGrad is that
 * convolution's forward (dX from dY) and backward-filter (dW from dY and X) plans, dB the
 * per-channel sum of dY. ConvTranspose whose pads come out negative (an output_shape larger than
 * the natural output) or whose output_padding reaches the stride has no such convolution and is
 * refused.
 * An empty operand (no images, no channels) makes the outputs zeros (and Conv's output its bias)
 * with no plan. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/conv.h"
#include "backends/cuda/conv_bias.h"
#include "backends/cuda/kernels_optim.h"
#include "ir/ops/conv.h"

typedef struct conv_state {
    amp_cuda_conv_fwd fwd;                          /* Conv: the plan and its epilogue */
    const amp_cuda_conv_plan *bwd_data, *bwd_filter; /* borrowed from the plan cache */
    bool empty;                                     /* an operand has no elements: no plan */
    bool relu;                                      /* the activation after the bias */
    const amp_cuda_conv_plan *fwd_plain;            /* ConvTransposeGrad's dX */
    amp_cuda_conv_pack pack[2];                     /* Conv: [0]; ConvGrad: dX [0], dW [1] */
    int64_t N, M, S;                                       /* images, output channels, output positions */
} conv_state;

static bool wanted(const amp_kernel *k, int i) {
    return i < k->nout && k->out[i] && (!k->n->outputs || (i < k->n->n_outputs && k->n->outputs[i] >= 0));
}

static bool refuse(amp_cuda *cu, const amp_kernel *k, const char *fmt, const char *detail) {
    char msg[320];
    snprintf(msg, sizeof msg, fmt, detail);
    amp_seterr(cu->ctx, AMP_ERR_UNSUPPORTED, "CUDA %s node '%s': %s", k->n->op_type, k->n->name ? k->n->name : "",
               msg);
    return false;
}

static bool is_transpose(const amp_kernel *k) {
    return k->n->op == AMP_OP_CONV_TRANSPOSE || k->n->op == AMP_OP_CONV_TRANSPOSE_GRAD;
}

static bool is_grad(const amp_kernel *k) {
    return k->n->op == AMP_OP_CONV_GRAD || k->n->op == AMP_OP_CONV_TRANSPOSE_GRAD;
}

/* The geometry of the node over X and W; a message on cu->ctx when it is invalid. */
static amp_status geometry(amp_cuda *cu, const amp_kernel *k, const amp_tensor *X, const amp_tensor *W,
                           amp_conv_geom *g) {
    char msg[256];
    amp_status s = amp_conv_geom_init(k->n, is_transpose(k) ? AMP_GEOM_CONV_T : AMP_GEOM_CONV, X->rank, X->dims,
                                      W->dims, g, msg, sizeof msg);
    if (s) return amp_seterr(cu->ctx, s, "CUDA %s node '%s': %s", k->n->op_type, k->n->name ? k->n->name : "", msg);
    return AMP_OK;
}

/* Whether cuDNN can take the node: float dtypes alike, 1 to 3 spatial dims, a valid geometry;
 * FusedConv's activation Relu. */
static bool conv_supports(amp_cuda *cu, const amp_kernel *k) {
    bool grad = is_grad(k);
    if (k->n->op == AMP_OP_FUSED_CONV) {
        const char *act = amp_attr_str(k->n, "activation", "");
        if (strcmp(act, "Relu")) return refuse(cu, k, "activation '%s' (Relu only)", act);
    }
    const amp_tensor *X = k->nin > (grad ? 1 : 0) ? k->in[grad ? 1 : 0] : NULL;
    const amp_tensor *W = k->nin > (grad ? 2 : 1) ? k->in[grad ? 2 : 1] : NULL;
    if (!X || !W) return refuse(cu, k, "%s", "needs X and W");
    if (!amp_cuda_float_dtype(X->dtype)) return refuse(cu, k, "dtype %s (f32, f16 or bf16 only)", amp_dtype_name(X->dtype));
    for (int i = 0; i < k->nin; i++)
        if (k->in[i] && k->in[i]->dtype != X->dtype) return refuse(cu, k, "%s", "inputs of different dtypes");
    if (X->rank < 3 || X->rank > 5) return refuse(cu, k, "%s", "1, 2 or 3 spatial dims only");
    amp_conv_geom g;
    if (geometry(cu, k, X, W, &g)) return false;
    for (int i = 0; is_transpose(k) && i < g.nsp; i++) {
        int64_t dk = (g.k[i] - 1) * g.d[i] + 1;
        if (g.pb[i] < 0 || g.pe[i] < 0) return refuse(cu, k, "%s", "an output larger than the natural one (negative pads)");
        if (g.in[i] && g.out[i] && (g.out[i] + g.pb[i] + g.pe[i] - dk) / g.s[i] + 1 != g.in[i])
            return refuse(cu, k, "%s", "output_padding reaches the stride");
    }
    return true;
}

static void fill_desc(amp_cuda_conv_desc *d, amp_cuda_conv_kind kind, const amp_tensor *X, const amp_tensor *W,
                      const amp_conv_geom *g) {
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->dtype = X->dtype;
    d->nsp = g->nsp;
    d->x[0] = d->y[0] = X->dims[0];
    d->x[1] = X->dims[1];
    d->w[0] = d->y[1] = W->dims[0];
    d->w[1] = W->dims[1];
    for (int i = 0; i < g->nsp; i++) {
        d->x[2 + i] = X->dims[2 + i];
        d->w[2 + i] = W->dims[2 + i];
        d->y[2 + i] = g->out[i];
        d->stride[i] = g->s[i];
        d->dilation[i] = g->d[i];
        d->pre[i] = g->pb[i];
        d->post[i] = g->pe[i];
    }
}

/* ConvTranspose's convolution: its input has Y's dims (g->out), its output X's. */
static void fill_desc_t(amp_cuda_conv_desc *d, amp_cuda_conv_kind kind, const amp_tensor *X, const amp_tensor *W,
                        int64_t group, const amp_conv_geom *g) {
    fill_desc(d, kind, X, W, g);
    d->x[1] = W->dims[1] * group;
    d->y[1] = X->dims[1];
    for (int i = 0; i < g->nsp; i++) {
        d->x[2 + i] = g->out[i];
        d->y[2 + i] = X->dims[2 + i];
    }
}

static bool desc_empty(const amp_cuda_conv_desc *d) {
    for (int i = 0; i < d->nsp + 2; i++)
        if (!d->x[i] || !d->w[i] || !d->y[i]) return true;
    return false;
}

static amp_status conv_prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    bool grad = is_grad(k);
    const amp_tensor *X = k->in[grad ? 1 : 0], *W = k->in[grad ? 2 : 1];
    amp_conv_geom g;
    amp_status s = geometry(cu, k, X, W, &g);
    if (s) return s;
    conv_state *st = amp_calloc(cu->ctx, 1, sizeof *st);
    if (!st) return amp_seterr(cu->ctx, AMP_ERR_NO_MEMORY, "CUDA %s: no memory for the step", k->n->op_type);
    amp_cuda_conv_desc d;
    bool transpose = is_transpose(k);
    if (transpose) fill_desc_t(&d, AMP_CUDA_CONV_FWD, X, W, amp_attr_int(k->n, "group", 1), &g);
    else fill_desc(&d, AMP_CUDA_CONV_FWD, X, W, &g);
    st->empty = desc_empty(&d);
    st->relu = k->n->op == AMP_OP_FUSED_CONV; /* supports() checked its activation */
    st->N = d.y[0];
    st->M = transpose ? d.x[1] : d.y[1]; /* the channels of Y (of dY for the gradients) */
    st->S = 1;
    for (int i = 0; i < g.nsp; i++)
        st->S *= g.out[i];
    size_t ws = 0;
    if (!st->empty) {
        if (k->n->op == AMP_OP_CONV_TRANSPOSE) {
            d.kind = AMP_CUDA_CONV_BWD_DATA;
            s = amp_cuda_conv_plan_get(cu, &d, &st->bwd_data);
            if (!s) ws = amp_cuda_conv_plan_workspace(st->bwd_data);
        } else if (transpose && wanted(k, 0)) { /* ConvTransposeGrad's dX: the forward */
            s = amp_cuda_conv_plan_get(cu, &d, &st->fwd_plain);
            if (!s) ws = amp_cuda_conv_plan_workspace(st->fwd_plain);
        } else if (!grad) {
            d.bias = k->nin > 2 && k->in[2];
            d.act = st->relu ? AMP_CUDA_CONV_ACT_RELU : AMP_CUDA_CONV_ACT_NONE;
            s = amp_cuda_conv_fwd_get(cu, &d, &st->fwd);
            if (!s) ws = amp_cuda_conv_plan_workspace(st->fwd.plan);
            d.bias = 0;
            d.act = AMP_CUDA_CONV_ACT_NONE;
        }
        if (grad && !transpose && wanted(k, 0)) {
            d.kind = AMP_CUDA_CONV_BWD_DATA;
            s = amp_cuda_conv_plan_get(cu, &d, &st->bwd_data);
            if (!s) ws = amp_cuda_conv_plan_workspace(st->bwd_data);
        }
        if (!s && grad && wanted(k, 1)) {
            d.kind = AMP_CUDA_CONV_BWD_FILTER;
            s = amp_cuda_conv_plan_get(cu, &d, &st->bwd_filter);
            if (!s && amp_cuda_conv_plan_workspace(st->bwd_filter) > ws) ws = amp_cuda_conv_plan_workspace(st->bwd_filter);
        }
    }
    if (s) {
        amp_dealloc(cu->ctx, st);
        return s;
    }
    *state = st;
    *ws_bytes = ws;
    return AMP_OK;
}

static void conv_release(amp_cuda *cu, void *state) {
    conv_state *st = state;
    if (!st) return;
    amp_cuda_conv_pack_free(&st->pack[0]);
    amp_cuda_conv_pack_free(&st->pack[1]);
    amp_dealloc(cu->ctx, st);
}

static amp_status zero(amp_cuda *cu, amp_tensor *t) {
    if (!t || !t->nbytes) return AMP_OK;
    return AMP_CUDA_RT(cu->ctx, cudaMemsetAsync(t->data, 0, t->nbytes, cu->stream)); /* 0 bytes are +0.0 */
}

static amp_status conv_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    conv_state *st = state;
    amp_status s = AMP_OK;
    if (k->n->op == AMP_OP_CONV_TRANSPOSE) {
        const amp_tensor *X = k->in[0], *W = k->in[1], *B = k->nin > 2 ? k->in[2] : NULL;
        amp_tensor *Y = k->out[0];
        s = st->empty ? zero(cu, Y)
                      : amp_cuda_conv_run(cu, st->bwd_data, &st->pack[0], Y->data, W->data, X->data, NULL, k->ws,
                                          k->ws_bytes);
        if (!s && B && Y->numel)
            s = AMP_CUDA_RT(cu->ctx, amp_cuda_conv_bias_add(cu->stream, Y->dtype, Y->data, B->data, st->N, st->M, st->S,
                                                            false));
        return s;
    }
    if (!is_grad(k)) { /* Conv, FusedConv */
        const amp_tensor *X = k->in[0], *W = k->in[1], *B = k->nin > 2 ? k->in[2] : NULL;
        amp_tensor *Y = k->out[0];
        if (!st->empty)
            return amp_cuda_conv_fwd_run(cu, &st->fwd, &st->pack[0], X->data, W->data, Y->data, B ? B->data : NULL,
                                         k->ws, k->ws_bytes);
        s = zero(cu, Y); /* no images or no input channels: Y = act(B) */
        if (!s && B && Y->numel)
            s = AMP_CUDA_RT(cu->ctx, amp_cuda_conv_bias_add(cu->stream, Y->dtype, Y->data, B->data, st->N, st->M, st->S,
                                                            st->relu));
        return s;
    }
    const amp_tensor *dY = k->in[0], *X = k->in[1], *W = k->in[2];
    amp_tensor *dX = wanted(k, 0) ? k->out[0] : NULL, *dW = wanted(k, 1) ? k->out[1] : NULL,
               *dB = wanted(k, 2) ? k->out[2] : NULL;
    /* ConvTransposeGrad: dY is its convolution's input and X its output */
    if (dX && st->empty) s = zero(cu, dX);
    else if (dX && is_transpose(k))
        s = amp_cuda_conv_run(cu, st->fwd_plain, &st->pack[0], dY->data, W->data, dX->data, NULL, k->ws, k->ws_bytes);
    else if (dX)
        s = amp_cuda_conv_run(cu, st->bwd_data, &st->pack[0], dX->data, W->data, dY->data, NULL, k->ws, k->ws_bytes);
    if (!s && dW)
        s = st->empty ? zero(cu, dW)
                      : amp_cuda_conv_run(cu, st->bwd_filter, &st->pack[1], is_transpose(k) ? dY->data : X->data,
                                          dW->data, is_transpose(k) ? X->data : dY->data, NULL, k->ws, k->ws_bytes);
    if (!s && dB)
        s = AMP_CUDA_RT(cu->ctx, amp_cuda_reduce_channels(cu->stream, dY->dtype, dY->data, dB->dtype, dB->data, st->N,
                                                          st->M, st->S, 1.0f, 0.0f));
    return s;
}

const amp_cuda_op amp_cuda_ops_conv[] = {
    {AMP_OP_CONV, conv_supports, conv_prepare, conv_release, conv_run},
    {AMP_OP_FUSED_CONV, conv_supports, conv_prepare, conv_release, conv_run},
    {AMP_OP_CONV_GRAD, conv_supports, conv_prepare, conv_release, conv_run},
    {AMP_OP_CONV_TRANSPOSE, conv_supports, conv_prepare, conv_release, conv_run},
    {AMP_OP_CONV_TRANSPOSE_GRAD, conv_supports, conv_prepare, conv_release, conv_run},
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
