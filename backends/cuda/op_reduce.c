/* amprt's own CUDA kernels as an op family (cuda_backend.h): the reductions ReduceSum, ReduceMean,
 * ReduceL1, ReduceSumSquare, ReduceL2, ReduceLogSum, ReduceMax, ReduceMin, ReduceProd and
 * ReduceLogSumExp (axes as the attribute or, from opset 13 for ReduceSum and 18 for the others, a
 * plan-time input; keepdims, noop_with_empty_axes, negative and non-adjacent axes),
 * GlobalAveragePool, GlobalMaxPool, ArgMax and ArgMin, ReduceGrad of every one of those
 * reductions, AveragePool (1 or 2 spatial dims) and AveragePoolGrad (and its global form).
 * Kernels: k_reduce_ops.cu and k_reduce_pool.cu through kernels_reduce.h.
 *
 * Like op_kernels.c: plan() explains every refusal, supports() asks it, prepare() fails with
 * its answer naming the node, reads the axes and the geometry once and keeps the launch
 * parameters in the step's state; run only enqueues on cu->stream. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_util.h"
#include "backends/cuda/kernels_reduce.h"
#include "backends/reduce_grad.h"
#include "ir/ops/conv.h"

/* ---- ReduceSum, ReduceMean, ReduceL1, ReduceSumSquare, ReduceL2, ReduceLogSum; GlobalAveragePool */

typedef struct reduce_state {
    amp_k_dtype dt;
    amp_k_rsum op;
    bool ext;        /* a reduction of amp_k_reduce_ext: rx */
    amp_k_rext rx;
    bool copy;  /* noop_with_empty_axes with no axes: y = x (dX = dY for the gradient) */
    bool zero;  /* a sum over nothing: +0 */
    double div; /* the count for a mean, else 1 */
    double count;
    int mode;   /* ReduceGrad: AMP_RG_* */
    amp_k_s2s g;
    amp_k_bcast bg; /* ReduceGrad: dY (a) and X (b) over X's shape */
    amp_k_avgpool ag; /* AveragePool, AveragePoolGrad */
    size_t ws;                 /* ReduceGrad: the statistics' workspace bytes */
    int64_t outer, len, inner; /* ArgMax, ArgMin */
    bool argmax, last;
    char msg[200];    /* the geometry's own message when it fails */
} reduce_state;

static bool rsum_of(amp_op op, amp_k_rsum *r) {
    switch (op) {
    case AMP_OP_REDUCE_SUM:
    case AMP_OP_REDUCE_MEAN:
    case AMP_OP_GLOBAL_AVERAGE_POOL: *r = AMP_K_RS_SUM; return true;
    case AMP_OP_REDUCE_L1: *r = AMP_K_RS_L1; return true;
    case AMP_OP_REDUCE_SUM_SQUARE: *r = AMP_K_RS_SUM_SQUARE; return true;
    case AMP_OP_REDUCE_L2: *r = AMP_K_RS_L2; return true;
    case AMP_OP_REDUCE_LOG_SUM: *r = AMP_K_RS_LOG_SUM; return true;
    default: return false;
    }
}

static bool rext_of(amp_op op, amp_k_rext *r) {
    switch (op) {
    case AMP_OP_REDUCE_MAX: *r = AMP_K_RX_MAX; return true;
    case AMP_OP_REDUCE_MIN: *r = AMP_K_RX_MIN; return true;
    case AMP_OP_REDUCE_PROD: *r = AMP_K_RX_PROD; return true;
    case AMP_OP_REDUCE_LOG_SUM_EXP: *r = AMP_K_RX_LSE; return true;
    default: return false;
    }
}

/* The reduced dims of a rank-`rank` X (red) and whether the node is a no-op, the CPU's reading
 * of the axes (amp_cpu_reduce_axes): from the input axes_in when from_input, else the "axes"
 * attribute; NULL or why not. An axes input whose values are not known yet is refused: the
 * planner gives them to prepare as host memory. */
static const char *reduce_axes(const amp_kernel *k, bool from_input, const amp_tensor *axes_in, int rank, bool *red,
                               bool *noop) {
    int64_t axes[2 * AMP_MAX_RANK];
    int naxes = 0;
    if (from_input) {
        const amp_tensor *a = axes_in;
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

/* The geometry over X (dims xd) reduced along red: the kept shape in X's frame (1 where reduced),
 * the groups' count and the number of outputs. */
static void reduce_frame(int rank, const int64_t *xd, const bool *red, int64_t *td, int64_t *count, int64_t *nout) {
    *count = *nout = 1;
    for (int d = 0; d < rank; d++) {
        td[d] = red[d] ? 1 : xd[d];
        if (red[d]) *count *= xd[d];
        else *nout *= xd[d];
    }
}

static const char *reduce_plan(const amp_kernel *k, reduce_state *p) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    bool red[AMP_MAX_RANK], noop = false;
    const amp_op op = k->n->op;
    if (!kdtype(x->dtype, &p->dt) || y->dtype != x->dtype) return "runs f32, f16 and bf16 of one dtype";
    if (x->rank > AMP_K_BC_RANK) return "runs ranks up to 8";
    rsum_of(op, &p->op);
    p->ext = rext_of(op, &p->rx);
    if (op == AMP_OP_GLOBAL_MAX_POOL) {
        p->ext = true;
        p->rx = AMP_K_RX_MAX;
    }
    if (op == AMP_OP_GLOBAL_AVERAGE_POOL || op == AMP_OP_GLOBAL_MAX_POOL) {
        if (x->rank < 2) return "needs N and C";
        if (op == AMP_OP_GLOBAL_MAX_POOL && x->numel == 0 && x->dims[0] * x->dims[1] > 0)
            return "has an empty spatial extent to take the maximum of";
        for (int d = 0; d < x->rank; d++) red[d] = d >= 2;
    } else {
        const bool from_input = op == AMP_OP_REDUCE_SUM ? k->opset >= 13 : k->opset >= 18;
        const char *why = reduce_axes(k, from_input, in_opt(k, 1), x->rank, red, &noop);
        if (why) return why;
    }
    if (noop || x->rank == 0) { /* a scalar reduced over nothing is itself */
        if (y->nbytes != x->nbytes) return "has an output whose size differs from the input's";
        p->copy = noop || (!p->ext && p->op == AMP_K_RS_SUM);
        if (p->copy) return NULL;
    }
    int64_t td[AMP_MAX_RANK], nout, count;
    reduce_frame(x->rank, x->dims, red, td, &count, &nout);
    if (nout != y->numel) return "has an output whose size does not match the reduction";
    if (x->rank == 0) { /* a rank-0 view as rank 1 of one element */
        const int64_t one = 1;
        amp_k_s2s_plan(1, &one, &one, &p->g);
    } else if (!amp_k_s2s_plan(x->rank, x->dims, td, &p->g)) {
        return "has a geometry the kernels cannot collapse";
    }
    p->div = op == AMP_OP_REDUCE_MEAN || op == AMP_OP_GLOBAL_AVERAGE_POOL ? (double)count : 1.0;
    p->zero = count == 0 && (op == AMP_OP_REDUCE_SUM || op == AMP_OP_REDUCE_L1 || op == AMP_OP_REDUCE_SUM_SQUARE ||
                             op == AMP_OP_REDUCE_L2);
    return NULL;
}

static amp_status run_reduce(amp_cuda *cu, const amp_kernel *k, void *state) {
    const reduce_state *p = state;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (p->copy) return copy_bytes(cu, k, y->data, x->data, y->nbytes);
    if (p->zero) /* sums over nothing: +0, all-zero bits in every float dtype */
        return y->nbytes ? AMP_CUDA_RT(k->ctx, cudaMemsetAsync(y->data, 0, y->nbytes, cu->stream)) : AMP_OK;
    if (p->ext) return LAUNCH(k, amp_k_reduce_ext(cu->stream, p->rx, p->dt, &p->g, x->data, y->data));
    return LAUNCH(k, amp_k_reduce_sum(cu->stream, p->op, p->dt, &p->g, x->data, y->data, p->div));
}

/* ---- ReduceGrad (dY, X, axes?) -> dX ---------------------------------------------------------- */

static int grad_mode(const char *op) {
    static const struct {
        const char *name;
        int mode;
    } m[] = {{"ReduceSum", AMP_RG_SUM},      {"ReduceMean", AMP_RG_MEAN},   {"ReduceSumSquare", AMP_RG_SUM_SQUARE},
             {"ReduceL1", AMP_RG_L1},        {"ReduceL2", AMP_RG_L2},       {"ReduceLogSum", AMP_RG_LOG_SUM},
             {"ReduceLogSumExp", AMP_RG_LSE}, {"ReduceMax", AMP_RG_MAX},    {"ReduceMin", AMP_RG_MIN},
             {"ReduceProd", AMP_RG_PROD}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(op, m[i].name) == 0) return m[i].mode;
    return -1;
}

static const char *reduce_grad_plan(const amp_kernel *k, reduce_state *p) {
    const amp_tensor *dy = in_opt(k, 0), *x = in_opt(k, 1), *dx = k->out[0];
    if (!dy || !x) return "needs dY and X";
    if (!kdtype(x->dtype, &p->dt) || dy->dtype != x->dtype || dx->dtype != x->dtype)
        return "runs f32, f16 and bf16 of one dtype";
    if (x->rank > AMP_K_BC_RANK) return "runs ranks up to 8";
    const char *op = amp_attr_str(k->n, "fwd_op", "");
    if ((p->mode = grad_mode(op)) < 0) return "has a fwd_op that is not a reduction";
    const int64_t opset = amp_attr_int(k->n, "fwd_opset", 18);
    const bool from_input = strcmp(op, "ReduceSum") == 0 ? opset >= 13 : opset >= 18;
    bool red[AMP_MAX_RANK], noop;
    const char *why = reduce_axes(k, from_input, in_opt(k, 2), x->rank, red, &noop);
    if (why) return why;
    if (dx->numel != x->numel) return "has dX of another size than X";
    if (noop) {
        if (dy->numel != x->numel) return "has dY of another size than X";
        p->copy = true;
        return NULL;
    }
    int64_t td[AMP_MAX_RANK], nout, count;
    reduce_frame(x->rank, x->dims, red, td, &count, &nout);
    if (dy->numel != nout) return "has dY whose size does not match the reduction";
    p->count = (double)count;
    if (!amp_k_bcast_plan(x->rank, x->dims, x->rank, td, x->rank, x->dims, &p->bg))
        return "has a geometry the kernels cannot collapse";
    /* the statistics' pass: the forward's geometry, two doubles per output element in ws */
    if (p->mode >= AMP_RG_L2 && x->numel > 0) {
        if (!amp_k_s2s_plan(x->rank, x->dims, td, &p->g)) return "has a geometry the kernels cannot collapse";
        p->ws = 2 * sizeof(double) * (size_t)nout;
    }
    return NULL;
}

static amp_status run_reduce_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const reduce_state *p = state;
    const amp_tensor *dy = k->in[0];
    amp_tensor *dx = k->out[0];
    if (p->copy) return copy_bytes(cu, k, dx->data, dy->data, dx->nbytes);
    return LAUNCH(k, amp_k_reduce_grad(cu->stream, p->dt, p->mode, &p->bg, &p->g, dy->data, k->in[1]->data,
                                       dx->data, p->count, p->ws ? k->ws : NULL));
}

/* ---- ArgMax, ArgMin ---------------------------------------------------------------------------- */

static const char *arg_plan(const amp_kernel *k, reduce_state *p) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    if (!kdtype(x->dtype, &p->dt)) return "runs f32, f16 and bf16 inputs only";
    if (y->dtype != AMP_I64) return "writes int64 indices only";
    int64_t axis = amp_attr_int(k->n, "axis", 0);
    if (x->rank < 1 || axis < -x->rank || axis >= x->rank) return "has an axis out of range";
    if (axis < 0) axis += x->rank;
    p->outer = p->inner = 1;
    p->len = x->dims[axis];
    for (int d = 0; d < x->rank; d++)
        if (d < axis) p->outer *= x->dims[d];
        else if (d > axis) p->inner *= x->dims[d];
    if (p->outer * p->inner != y->numel) return "has an output whose size does not match";
    if (p->len == 0 && y->numel > 0) return "has an axis with no elements to choose from";
    p->argmax = k->n->op == AMP_OP_ARG_MAX;
    p->last = amp_attr_int(k->n, "select_last_index", 0) != 0;
    return NULL;
}

static amp_status run_arg(amp_cuda *cu, const amp_kernel *k, void *state) {
    const reduce_state *p = state;
    if (k->out[0]->numel == 0) return AMP_OK;
    return LAUNCH(k, amp_k_argminmax(cu->stream, p->dt, p->argmax, p->last, p->outer, p->len, p->inner,
                                     k->in[0]->data, k->out[0]->data));
}

/* ---- AveragePool, AveragePoolGrad (dY, shape of X) -> dX ------------------------------------- */

/* The 2-D launch geometry of g over planes: one spatial dim is lifted to 2-D first (a leading
 * dim of 1 with a kernel of 1), as the CPU kernels do. */
static void avgpool_of(const amp_conv_geom *g0, int64_t planes, int count_pad, amp_k_avgpool *p) {
    amp_conv_geom g = *g0;
    if (g.nsp == 1) {
        g.in[1] = g.in[0], g.k[1] = g.k[0], g.s[1] = g.s[0], g.d[1] = g.d[0];
        g.pb[1] = g.pb[0], g.pe[1] = g.pe[0], g.out[1] = g.out[0];
        g.in[0] = g.k[0] = g.s[0] = g.d[0] = g.out[0] = 1;
        g.pb[0] = g.pe[0] = 0;
    }
    *p = (amp_k_avgpool){.planes = planes, .h = g.in[0], .w = g.in[1], .oh = g.out[0], .ow = g.out[1],
                         .kh = g.k[0], .kw = g.k[1], .sh = g.s[0], .sw = g.s[1], .dh = g.d[0], .dw = g.d[1],
                         .ph = g.pb[0], .pw = g.pb[1], .peh = g.pe[0], .pew = g.pe[1], .count_pad = count_pad};
}

static const char *avgpool_plan(const amp_kernel *k, bool grad, reduce_state *p) {
    const amp_tensor *x = grad ? k->out[0] : k->in[0], *small = grad ? k->in[0] : k->out[0];
    if (grad && (k->nin < 2 || !k->in[1])) return "needs dY and the shape of X";
    if (!kdtype(x->dtype, &p->dt) || small->dtype != x->dtype) return "runs f32, f16 and bf16 of one dtype";
    if (grad && amp_attr_int(k->n, "global", 0) != 0) {
        /* the global pool's gradient: the whole plane is one window; as one flat spatial dim */
        if (x->rank < 3) return "needs N, C and a spatial dim";
        int64_t sz = 1;
        for (int d = 2; d < x->rank; d++) sz *= x->dims[d];
        if (small->numel != x->dims[0] * x->dims[1]) return "has dY whose size is not N * C";
        amp_conv_geom g;
        memset(&g, 0, sizeof g);
        g.nsp = 1;
        g.in[0] = g.k[0] = sz;
        g.s[0] = g.d[0] = g.out[0] = 1;
        avgpool_of(&g, x->dims[0] * x->dims[1], 0, &p->ag);
        return NULL;
    }
    if (x->rank != 3 && x->rank != 4) return "pools 1 or 2 spatial dims only";
    amp_conv_geom g;
    amp_status s = grad ? amp_pool_grad_geom(k->n, x->rank, x->dims, &g, p->msg, sizeof p->msg)
                        : amp_conv_geom_init(k->n, AMP_GEOM_POOL, x->rank, x->dims, NULL, &g, p->msg, sizeof p->msg);
    if (s) return p->msg;
    int64_t outsz = x->dims[0] * x->dims[1];
    for (int i = 0; i < g.nsp; i++) outsz *= g.out[i];
    if (small->numel != outsz) return "has a pooled tensor whose size the windows do not give";
    avgpool_of(&g, x->dims[0] * x->dims[1], amp_attr_int(k->n, "count_include_pad", 0) != 0, &p->ag);
    return NULL;
}

static amp_status run_avgpool(amp_cuda *cu, const amp_kernel *k, void *state) {
    const reduce_state *p = state;
    return LAUNCH(k, amp_k_avg_pool2d(cu->stream, p->dt, &p->ag, k->in[0]->data, k->out[0]->data));
}

static amp_status run_avgpool_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const reduce_state *p = state;
    return LAUNCH(k, amp_k_avg_pool2d_grad(cu->stream, p->dt, &p->ag, k->in[0]->data, k->out[0]->data));
}

/* ---- the family ------------------------------------------------------------------------------- */

/* Why this family cannot run k (NULL: it can); p receives the launch parameters (and may hold the
 * answer: the geometry's message). supports() asks it, prepare() fails with its answer. */
static const char *plan(const amp_kernel *k, reduce_state *p) {
    if (k->nout < 1 || !k->out[0]) return "needs its first output";
    if (k->nin < 1 || !k->in[0]) return "needs its first input";
    switch (k->n->op) {
    case AMP_OP_REDUCE_SUM:
    case AMP_OP_REDUCE_MEAN:
    case AMP_OP_REDUCE_L1:
    case AMP_OP_REDUCE_SUM_SQUARE:
    case AMP_OP_REDUCE_L2:
    case AMP_OP_REDUCE_LOG_SUM:
    case AMP_OP_REDUCE_MAX:
    case AMP_OP_REDUCE_MIN:
    case AMP_OP_REDUCE_PROD:
    case AMP_OP_REDUCE_LOG_SUM_EXP:
    case AMP_OP_GLOBAL_AVERAGE_POOL:
    case AMP_OP_GLOBAL_MAX_POOL: return reduce_plan(k, p);
    case AMP_OP_ARG_MAX:
    case AMP_OP_ARG_MIN: return arg_plan(k, p);
    case AMP_OP_REDUCE_GRAD: return reduce_grad_plan(k, p);
    case AMP_OP_AVERAGE_POOL: return avgpool_plan(k, false, p);
    case AMP_OP_AVERAGE_POOL_GRAD: return avgpool_plan(k, true, p);
    default: return "is not an op of this family";
    }
}

static bool supports(amp_cuda *cu, const amp_kernel *k) {
    (void)cu;
    reduce_state p;
    memset(&p, 0, sizeof p);
    return plan(k, &p) == NULL;
}

static amp_status prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    (void)cu;
    *state = NULL;
    *ws_bytes = 0;
    reduce_state *p = amp_calloc(k->ctx, 1, sizeof *p);
    if (!p) return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
    const char *why = plan(k, p);
    if (why) {
        amp_free(k->ctx, p);
        const amp_tensor *x = in_opt(k, k->n->op == AMP_OP_REDUCE_GRAD ? 1 : 0);
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s (input dtype %s)", k->n->op_type, why,
                               x ? amp_dtype_name(x->dtype) : "none");
    }
    *ws_bytes = p->ws;
    *state = p;
    return AMP_OK;
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_reduce[] = {
    ENTRY(REDUCE_SUM, run_reduce),
    ENTRY(REDUCE_MEAN, run_reduce),
    ENTRY(REDUCE_L1, run_reduce),
    ENTRY(REDUCE_SUM_SQUARE, run_reduce),
    ENTRY(REDUCE_L2, run_reduce),
    ENTRY(REDUCE_LOG_SUM, run_reduce),
    ENTRY(REDUCE_MAX, run_reduce),
    ENTRY(REDUCE_MIN, run_reduce),
    ENTRY(REDUCE_PROD, run_reduce),
    ENTRY(REDUCE_LOG_SUM_EXP, run_reduce),
    ENTRY(GLOBAL_AVERAGE_POOL, run_reduce),
    ENTRY(GLOBAL_MAX_POOL, run_reduce),
    ENTRY(ARG_MAX, run_arg),
    ENTRY(ARG_MIN, run_arg),
    ENTRY(REDUCE_GRAD, run_reduce_grad),
    ENTRY(AVERAGE_POOL, run_avgpool),
    ENTRY(AVERAGE_POOL_GRAD, run_avgpool_grad),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
