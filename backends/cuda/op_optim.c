/* The CUDA backend's reductions, optimizers and loss scaling (cuda_backend.h: amp_cuda_ops_optim):
 * GemmCGrad, UnscaleCheck, SGD, AdamW, LossScaleUpdate on amprt's own kernels (k_reduce.cu,
 * k_optim.cu). ir/ops/optim.def and ir/ops/matmul_grad.def give the semantics; inference has
 * checked shapes, counts and dtypes. One function says why a node cannot run here (why_not,
 * with the input it is about); supports() asks it and prepare() fails with its answer, naming
 * the node, the input and its dtype. Each run only enqueues launches: the step's scalars (lr,
 * step, scale, found_inf, tracker) stay in device memory and are read there. */
#include <stdio.h>

#include "ir/ir.h"

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels_optim.h"

/* a failed launch as the node's error, with the runtime's words */
static amp_status launch_status(amp_cuda *cu, const amp_kernel *k, cudaError_t e, const char *what) {
    amp_status s = amp_cuda_rt_status(cu->ctx, e, what, __FILE__, __LINE__);
    if (!s) return AMP_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", amp_context_last_error(cu->ctx));
    return amp_kernel_fail(k, s, "%s", msg);
}

static const void *data_or_null(const amp_tensor *t) { return t ? t->data : NULL; }

/* ---- GemmCGrad: dC = beta * dY summed over the dims C broadcasts along ---------------------- */

/* dY [M, N] as amp_cuda_reduce_channels' [outer, channels, inner], dC as its [channels] */
static void c_grad_shape(const amp_kernel *k, int64_t *outer, int64_t *channels, int64_t *inner) {
    const amp_tensor *dy = k->in[0], *c = k->in[1];
    const int64_t M = dy->dims[0], N = dy->dims[1];
    const int64_t cr = c->rank == 2 ? c->dims[0] : 1, cc = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    *outer = 1, *channels = M * N, *inner = 1; /* C as large as dY: a scaled copy */
    if (cr == 1 && cc == N) { /* a bias row: sums over rows */
        *outer = M;
        *channels = N;
    } else if (cc == 1 && cr == M) { /* a column: sums over columns */
        *channels = M;
        *inner = N;
    } else if (cr == 1 && cc == 1) {
        *channels = 1;
        *inner = M * N;
    }
}

static const char *why_gemm_c_grad(const amp_kernel *k, int *at) {
    if (k->nin != 2 || k->nout != 1 || !k->in[0] || !k->in[1]) return "takes dY and C and gives dC";
    *at = 0;
    if (!amp_cuda_float_dtype(k->in[0]->dtype)) return "sums f32, f16 or bf16 gradients only";
    if (k->in[0]->rank != 2) return "takes a 2-D dY only";
    *at = 1;
    if (k->in[1]->rank > 2) return "takes a C of rank 2 at most";
    if (!amp_cuda_float_dtype(k->out[0]->dtype)) return "writes an f32, f16 or bf16 dC only";
    int64_t outer, channels, inner;
    c_grad_shape(k, &outer, &channels, &inner);
    if (channels > 0x7fffffff) return "writes at most 2^31-1 elements of dC";
    return NULL;
}

static amp_status gemm_c_grad_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    (void)state;
    const amp_tensor *dy = k->in[0];
    amp_tensor *dc = k->out[0];
    if (dc->numel == 0) return AMP_OK;
    int64_t outer, channels, inner;
    c_grad_shape(k, &outer, &channels, &inner);
    const float beta = amp_attr_float(k->n, "beta", 1.0f);
    cudaError_t e = amp_cuda_reduce_channels(cu->stream, dy->dtype, dy->data, dc->dtype, dc->data, outer, channels,
                                             inner, beta, 0.0f);
    return launch_status(cu, k, e, "amp_cuda_reduce_channels");
}

/* ---- UnscaleCheck ------------------------------------------------------------------------------ */

static const char *why_unscale_check(const amp_kernel *k, int *at) {
    if (k->nin < 2 || k->nout != 1 || !k->in[0]) return "takes a scale and at least one gradient";
    *at = 0;
    if (k->in[0]->dtype != AMP_F32 || k->in[0]->numel != 1) return "takes an f32 scale of one element";
    for (int i = 1; i < k->nin; i++) {
        *at = i;
        if (!k->in[i]) return "takes no omitted gradient";
        if (!amp_cuda_float_dtype(k->in[i]->dtype) && k->in[i]->dtype != AMP_F64)
            return "checks f32, f16, bf16 or f64 gradients only";
    }
    return NULL;
}

static amp_status unscale_check_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    (void)state;
    cudaError_t e = amp_cuda_unscale_check(cu->stream, k->in[0]->data, k->nin - 1, (const amp_tensor *const *)k->in + 1,
                                           k->out[0]->data);
    return launch_status(cu, k, e, "amp_cuda_unscale_check");
}

/* ---- SGD and AdamW --------------------------------------------------------------------------- */

/* inputs: lr, step, found_inf?, scale?, W[n], G[n], then M[n] (SGD with momentum, AdamW), V[n] (AdamW) */
static int optim_n(const amp_kernel *k) { return (int)amp_attr_int(k->n, "n", 0); }

static int optim_states(const amp_kernel *k) {
    if (k->n->op == AMP_OP_OPTIM_ADAMW) return 2;
    return amp_attr_float(k->n, "momentum", 0.0f) != 0.0f ? 1 : 0;
}

static amp_cuda_optim_attrs optim_attrs(const amp_kernel *k) {
    const amp_node *n = k->n;
    const bool adamw = n->op == AMP_OP_OPTIM_ADAMW;
    amp_cuda_optim_attrs a = {.kind = adamw ? AMP_CUDA_ADAMW : AMP_CUDA_SGD};
    a.weight_decay = amp_attr_float(n, "weight_decay", adamw ? 0.01f : 0.0f);
    a.max_grad_norm = amp_attr_float(n, "max_grad_norm", 0.0f);
    if (adamw) {
        a.beta1 = amp_attr_float(n, "beta1", 0.9f);
        a.beta2 = amp_attr_float(n, "beta2", 0.999f);
        a.eps = amp_attr_float(n, "epsilon", 1e-8f);
    } else {
        a.momentum = amp_attr_float(n, "momentum", 0.0f);
        a.dampening = amp_attr_float(n, "dampening", 0.0f);
        a.nesterov = amp_attr_int(n, "nesterov", 0) != 0;
    }
    return a;
}

/* the node's W, G, M, V groups as they lie among its inputs */
static amp_cuda_optim_tensors optim_tensors(const amp_kernel *k) {
    const int n = optim_n(k), ns = optim_states(k);
    const amp_tensor *const *in = (const amp_tensor *const *)k->in;
    amp_cuda_optim_tensors t = {.n = n, .w = in + 4, .g = in + 4 + n};
    t.m = ns >= 1 ? in + 4 + 2 * n : NULL;
    t.v = ns >= 2 ? in + 4 + 3 * n : NULL;
    return t;
}

static const char *why_optim(const amp_kernel *k, int *at) {
    const int n = optim_n(k), ns = optim_states(k);
    if (n < 1 || k->nin != 4 + (2 + ns) * n || k->nout != 1) return "needs n parameters, gradients and states";
    const char *scalar[4] = {"takes an f32 lr of one element", "takes an f32 step of one element",
                             "takes a bool found_inf of one element", "takes an f32 scale of one element"};
    const amp_dtype sdt[4] = {AMP_F32, AMP_F32, AMP_BOOL, AMP_F32};
    for (int i = 0; i < 4; i++) {
        *at = i;
        const amp_tensor *x = k->in[i];
        if (i < 2 && !x) return scalar[i];
        if (x && (x->dtype != sdt[i] || x->numel != 1)) return scalar[i];
    }
    for (int i = 0; i < n; i++) {
        const amp_tensor *w = k->in[4 + i];
        *at = 4 + i;
        if (!w || !amp_cuda_float_dtype(w->dtype)) return "updates f32, f16 or bf16 parameters only";
        for (int g = 1; g < 2 + ns; g++) {
            const amp_tensor *x = k->in[4 + g * n + i];
            *at = 4 + g * n + i;
            if (!x || x->numel != w->numel) return "needs a gradient and states of the parameter's size";
            if (g == 1 && !amp_cuda_float_dtype(x->dtype)) return "takes f32, f16 or bf16 gradients only";
            if (g >= 2 && x->dtype != w->dtype && x->dtype != AMP_F32)
                return "keeps optimizer state in f32 or the parameter's dtype only";
        }
    }
    return NULL;
}

static amp_status refuse(const amp_kernel *k);

static amp_status optim_prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    (void)cu;
    amp_status s = refuse(k);
    if (s) return s;
    const amp_cuda_optim_tensors t = optim_tensors(k);
    *state = NULL;
    *ws_bytes = amp_cuda_optim_ws_bytes(&t);
    return AMP_OK;
}

static amp_status optim_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    (void)state;
    const amp_cuda_optim_attrs a = optim_attrs(k);
    const amp_cuda_optim_tensors t = optim_tensors(k);
    const size_t need = amp_cuda_optim_ws_bytes(&t);
    if (k->ws_bytes < need)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace of %zu bytes is smaller than the %zu the step needs",
                               k->ws_bytes, need);
    cudaError_t e = amp_cuda_optim_step(cu->stream, &a, k->in[0]->data, k->in[1]->data, data_or_null(k->in[2]),
                                        data_or_null(k->in[3]), &t, k->ws, k->ws_bytes, k->out[0]->data);
    return launch_status(cu, k, e, a.kind == AMP_CUDA_ADAMW ? "amp_cuda_optim_step (AdamW)" : "amp_cuda_optim_step (SGD)");
}

/* ---- LossScaleUpdate --------------------------------------------------------------------------- */

static const char *why_loss_scale(const amp_kernel *k, int *at) {
    if (k->nin < 3 || k->nout != 1) return "takes scale, tracker and found_inf";
    for (int i = 0; i < 3; i++) {
        *at = i;
        const amp_tensor *x = k->in[i];
        const amp_dtype want = i == 2 ? AMP_BOOL : AMP_F32;
        if (!x || x->dtype != want || x->numel != 1)
            return i == 2 ? "takes a bool found_inf of one element" : "takes an f32 scale and tracker of one element";
    }
    return NULL;
}

static amp_status loss_scale_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    (void)state;
    const float interval = (float)amp_attr_int(k->n, "growth_interval", 2000);
    cudaError_t e = amp_cuda_loss_scale_update(cu->stream, k->in[0]->data, k->in[1]->data, k->in[2]->data, interval,
                                               amp_attr_float(k->n, "growth_factor", 2.0f),
                                               amp_attr_float(k->n, "backoff_factor", 0.5f), k->out[0]->data);
    return launch_status(cu, k, e, "amp_cuda_loss_scale_update");
}

/* ---- the family ---------------------------------------------------------------------------- */

static const char *why_not(const amp_kernel *k, int *at) {
    *at = -1;
    switch (k->n->op) {
    case AMP_OP_GEMM_C_GRAD: return why_gemm_c_grad(k, at);
    case AMP_OP_UNSCALE_CHECK: return why_unscale_check(k, at);
    case AMP_OP_OPTIM_SGD:
    case AMP_OP_OPTIM_ADAMW: return why_optim(k, at);
    case AMP_OP_LOSS_SCALE_UPDATE: return why_loss_scale(k, at);
    default: return "is not an op of this family";
    }
}

static bool supports(amp_cuda *cu, const amp_kernel *k) {
    (void)cu;
    int at;
    return why_not(k, &at) == NULL;
}

/* the refusal as the node's error: AMP_ERR_UNSUPPORTED naming the input and its dtype */
static amp_status refuse(const amp_kernel *k) {
    int at;
    const char *why = why_not(k, &at);
    if (!why) return AMP_OK;
    const amp_tensor *x = at >= 0 && at < k->nin ? k->in[at] : NULL;
    if (x)
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s (input %d is %s)", k->n->op_type, why, at,
                               amp_dtype_name(x->dtype));
    return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s", k->n->op_type, why);
}

/* no state and no workspace: only the check */
static amp_status prepare_plain(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    (void)cu;
    *state = NULL;
    *ws_bytes = 0;
    return refuse(k);
}

const amp_cuda_op amp_cuda_ops_optim[] = {
    {AMP_OP_GEMM_C_GRAD, supports, prepare_plain, NULL, gemm_c_grad_run},
    {AMP_OP_UNSCALE_CHECK, supports, prepare_plain, NULL, unscale_check_run},
    {AMP_OP_OPTIM_SGD, supports, optim_prepare, NULL, optim_run},
    {AMP_OP_OPTIM_ADAMW, supports, optim_prepare, NULL, optim_run},
    {AMP_OP_LOSS_SCALE_UPDATE, supports, prepare_plain, NULL, loss_scale_run},
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
