/* amprt's own CUDA kernels as an op family (cuda_backend.h): ReduceSum and ReduceMean (axes as
 * the attribute or, from opset 13 for ReduceSum and 18 for the others, a plan-time input;
 * keepdims, noop_with_empty_axes, negative and non-adjacent axes). Kernels: k_reduce_ops.cu
 * through kernels_reduce.h. Average pooling and the gradients are still to come.
 *
 * Like op_kernels.c: why_not() explains every refusal, supports() asks it, prepare() fails with
 * its answer naming the node, reads the axes and the geometry once and keeps the launch
 * parameters in the step's state; run only enqueues on cu->stream. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels_reduce.h"

/* ---- shared ----------------------------------------------------------------------------------- */

static bool kdtype(amp_dtype t, amp_k_dtype *out) {
    switch (t) {
    case AMP_F32: *out = AMP_K_F32; return true;
    case AMP_F16: *out = AMP_K_F16; return true;
    case AMP_BF16: *out = AMP_K_BF16; return true;
    default: return false;
    }
}

static const amp_tensor *in_opt(const amp_kernel *k, int i) { return i < k->nin ? k->in[i] : NULL; }

/* A launch's status, with what the emulator saw, naming the node. */
static amp_status launched(const amp_kernel *k, amp_status s) {
    if (!s) return AMP_OK;
    char msg[512];
    const char *detail = amp_k_launch_detail();
    snprintf(msg, sizeof msg, "%s%s%s", amp_context_last_error(k->ctx), detail[0] ? ": " : "", detail);
    return amp_kernel_fail(k, s, "%s", msg);
}
#define LAUNCH(k, call) launched((k), AMP_CUDA_RT((k)->ctx, call))

static void release_state(amp_cuda *cu, void *state) { amp_free(cu->ctx, state); }

/* ---- ReduceSum, ReduceMean -------------------------------------------------------------------- */

typedef struct reduce_state {
    amp_k_dtype dt;
    bool copy;      /* noop_with_empty_axes with no axes: y = x */
    bool zero;      /* a sum over nothing: +0 */
    double div;     /* 1 for a sum, the count for a mean */
    amp_k_s2s g;
} reduce_state;

static bool axes_is_input(const amp_kernel *k) {
    return k->n->op == AMP_OP_REDUCE_SUM ? k->opset >= 13 : k->opset >= 18;
}

/* The reduced dims of x (red) and whether the node is a no-op, the CPU's reading of the axes
 * (amp_cpu_reduce_axes); NULL or why not. An axes input whose values are not known yet (the
 * supports() query before planning) is accepted: prepare reads it. */
static const char *reduce_axes(const amp_kernel *k, bool *red, bool *noop) {
    const int rank = k->in[0]->rank;
    int64_t axes[2 * AMP_MAX_RANK];
    int naxes = 0;
    bool from_input = axes_is_input(k);
    if (from_input) {
        const amp_tensor *a = in_opt(k, 1);
        if (a) {
            if (a->dtype != AMP_I64 && a->dtype != AMP_I32) return "needs int64 or int32 axes";
            if (a->numel > 2 * AMP_MAX_RANK) return "has too many axes";
            if (a->numel > 0 && !a->data) return "needs its axes known while planning";
            naxes = (int)a->numel;
            for (int i = 0; i < naxes; i++)
                axes[i] = a->dtype == AMP_I64 ? ((const int64_t *)a->data)[i] : ((const int32_t *)a->data)[i];
        }
    } else {
        const int64_t *a = NULL;
        int na = amp_attr_ints(k->n, "axes", &a);
        if (na > 2 * AMP_MAX_RANK) return "has too many axes";
        for (int i = 0; i < na; i++) axes[i] = a[i];
        naxes = na > 0 ? na : 0;
    }
    for (int d = 0; d < rank; d++) red[d] = naxes == 0;
    *noop = naxes == 0 && from_input && amp_attr_int(k->n, "noop_with_empty_axes", 0) != 0;
    bool seen[AMP_MAX_RANK] = {false};
    for (int i = 0; i < naxes; i++) {
        if (axes[i] < -rank || axes[i] >= rank) return "has an axis out of range";
        int a = (int)(axes[i] < 0 ? axes[i] + rank : axes[i]);
        if (seen[a]) return "has a repeated axis";
        seen[a] = red[a] = true;
    }
    return NULL;
}

/* The geometry: the kept shape in x's frame (1 where reduced). */
static const char *reduce_plan(const amp_kernel *k, reduce_state *p) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    bool red[AMP_MAX_RANK], noop;
    if (!kdtype(x->dtype, &p->dt) || y->dtype != x->dtype) return "runs f32, f16 and bf16 of one dtype";
    if (x->rank > AMP_K_BC_RANK) return "runs ranks up to 8";
    const char *why = reduce_axes(k, red, &noop);
    if (why) return why;
    if (noop) {
        if (y->nbytes != x->nbytes) return "has an output whose size differs from the input's";
        p->copy = true;
        return NULL;
    }
    int64_t td[AMP_MAX_RANK], nout = 1, count = 1;
    for (int d = 0; d < x->rank; d++) {
        td[d] = red[d] ? 1 : x->dims[d];
        if (red[d]) count *= x->dims[d];
        else nout *= x->dims[d];
    }
    if (nout != y->numel) return "has an output whose size does not match the reduction";
    if (x->rank == 0) {
        p->copy = true; /* a scalar reduced over nothing: itself */
        return NULL;
    }
    if (!amp_k_s2s_plan(x->rank, x->dims, td, &p->g)) return "has a geometry the kernels cannot collapse";
    p->div = k->n->op == AMP_OP_REDUCE_MEAN ? (double)count : 1.0;
    p->zero = count == 0 && k->n->op == AMP_OP_REDUCE_SUM;
    return NULL;
}

static const char *why_reduce(const amp_kernel *k) {
    reduce_state p;
    memset(&p, 0, sizeof p);
    return reduce_plan(k, &p);
}

static amp_status run_reduce(amp_cuda *cu, const amp_kernel *k, void *state) {
    const reduce_state *p = state;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (p->copy) {
        if (y->data == x->data || !y->nbytes) return AMP_OK;
        return AMP_CUDA_RT(k->ctx, cudaMemcpyAsync(y->data, x->data, y->nbytes, cudaMemcpyDeviceToDevice, cu->stream));
    }
    if (p->zero) /* sums over nothing: +0, all-zero bits in every float dtype */
        return y->nbytes ? AMP_CUDA_RT(k->ctx, cudaMemsetAsync(y->data, 0, y->nbytes, cu->stream)) : AMP_OK;
    return LAUNCH(k, amp_k_reduce_sum(cu->stream, p->dt, &p->g, x->data, y->data, p->div));
}

/* ---- the family ------------------------------------------------------------------------------- */

static const char *why_not(const amp_kernel *k) {
    if (k->nout < 1 || !k->out[0]) return "needs its first output";
    if (k->nin < 1 || !k->in[0]) return "needs its first input";
    switch (k->n->op) {
    case AMP_OP_REDUCE_SUM:
    case AMP_OP_REDUCE_MEAN: return why_reduce(k);
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
        const amp_tensor *x = in_opt(k, 0);
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s (input dtype %s)", k->n->op_type, why,
                               x ? amp_dtype_name(x->dtype) : "none");
    }
    reduce_state *p = amp_calloc(k->ctx, 1, sizeof *p);
    if (!p) return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
    reduce_plan(k, p);
    *state = p;
    return AMP_OK;
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_reduce[] = {
    ENTRY(REDUCE_SUM, run_reduce),
    ENTRY(REDUCE_MEAN, run_reduce),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
