/* amprt's own CUDA kernels as an op family (cuda_backend.h), data movement: Gather and
 * GatherGrad, Transpose. Kernels: backends/cuda/k_data.cu through kernels_data.h.
 *
 * As in op_kernels.c: why_not() says why a node cannot run here, supports() asks it and
 * prepare() fails with its answer naming the node; prepare reads the attributes and the
 * geometry once and keeps the launch parameters in the step's state; run only enqueues on
 * cu->stream. The copies move elements of 1, 2, 4 or 8 bytes, whatever their dtype. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels_data.h"

/* ---- shared ----------------------------------------------------------------------------------- */

static bool kdtype(amp_dtype t, amp_k_dtype *out) {
    switch (t) {
    case AMP_F32: *out = AMP_K_F32; return true;
    case AMP_F16: *out = AMP_K_F16; return true;
    case AMP_BF16: *out = AMP_K_BF16; return true;
    default: return false;
    }
}

static bool movable(const amp_tensor *t) {
    size_t es = t ? amp_dtype_size(t->dtype) : 0;
    return es == 1 || es == 2 || es == 4 || es == 8;
}

static bool is_index(const amp_tensor *t) { return t && (t->dtype == AMP_I64 || t->dtype == AMP_I32); }

static amp_status launched(const amp_kernel *k, amp_status s) {
    if (!s) return AMP_OK;
    char msg[512];
    const char *detail = amp_k_launch_detail();
    snprintf(msg, sizeof msg, "%s%s%s", amp_context_last_error(k->ctx), detail[0] ? ": " : "", detail);
    return amp_kernel_fail(k, s, "%s", msg);
}
#define LAUNCH(k, call) launched((k), AMP_CUDA_RT((k)->ctx, call))

static amp_status new_state(const amp_kernel *k, size_t bytes, void **state) {
    *state = amp_calloc(k->ctx, 1, bytes);
    return *state ? AMP_OK : amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
}

static void release_state(amp_cuda *cu, void *state) { amp_free(cu->ctx, state); }

/* ---- Gather, GatherGrad ----------------------------------------------------------------------- */

typedef struct gather_state {
    amp_k_gather g;
    amp_k_dtype dt;
} gather_state;

/* The axis of a node over data of rank r, normalised, or -1. */
static int axis_of(const amp_kernel *k, int r) {
    int64_t a = amp_attr_int(k->n, "axis", 0);
    if (a < -r || a >= r) return -1;
    return (int)(a < 0 ? a + r : a);
}

/* x: the gathered-from tensor (Gather's X, GatherGrad's dX) */
static void gather_geom(const amp_tensor *x, const amp_tensor *ind, int axis, amp_k_gather *g) {
    g->outer = g->inner = 1;
    for (int d = 0; d < axis; d++) g->outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++) g->inner *= x->dims[d];
    g->len = x->dims[axis];
    g->nidx = ind->numel;
    g->es = (int)amp_dtype_size(x->dtype);
    g->ind64 = ind->dtype == AMP_I64;
}

static const char *why_gather(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->nin > 1 ? k->in[1] : NULL, *y = k->out[0];
    if (!ind || !is_index(ind)) return "needs int32 or int64 indices";
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    int axis = axis_of(k, x->rank);
    if (axis < 0) return "has an axis out of range";
    amp_k_gather g;
    gather_geom(x, ind, axis, &g);
    if (g.outer * g.nidx * g.inner != y->numel) return "has an output size that does not match";
    return NULL;
}

static const char *why_gather_grad(const amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->nin > 2 ? k->in[2] : NULL, *dx = k->out[0];
    amp_k_dtype dt;
    if (!ind || !is_index(ind)) return "needs int32 or int64 indices";
    if (!kdtype(dx->dtype, &dt) || dy->dtype != dx->dtype) return "sums f32, f16 and bf16 only";
    int axis = axis_of(k, dx->rank);
    if (axis < 0) return "has an axis out of range";
    amp_k_gather g;
    gather_geom(dx, ind, axis, &g);
    if (g.outer * g.nidx * g.inner != dy->numel) return "has a gradient whose size does not match";
    return NULL;
}

static amp_status prepare_gather_common(const amp_kernel *k, bool grad, void **state) {
    gather_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    const amp_tensor *x = grad ? k->out[0] : k->in[0], *ind = k->in[grad ? 2 : 1];
    gather_geom(x, ind, axis_of(k, x->rank), &st->g);
    kdtype(x->dtype, &st->dt);
    return AMP_OK;
}

static amp_status run_gather(amp_cuda *cu, const amp_kernel *k, void *state) {
    const gather_state *st = state;
    return LAUNCH(k, amp_k_gather_fwd(cu->stream, &st->g, k->in[0]->data, k->in[1]->data, k->out[0]->data));
}

static amp_status run_gather_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const gather_state *st = state;
    return LAUNCH(k, amp_k_gather_grad(cu->stream, st->dt, &st->g, k->in[0]->data, k->in[2]->data, k->out[0]->data));
}

/* ---- Transpose -------------------------------------------------------------------------------- */

/* perm of the node (reversed dims when absent, as the CPU reads it), or false. */
static bool perm_of(const amp_kernel *k, int r, int64_t *perm) {
    const int64_t *p;
    if (amp_attr_ints(k->n, "perm", &p) == r) memcpy(perm, p, sizeof(int64_t) * (size_t)r);
    else
        for (int d = 0; d < r; d++) perm[d] = r - 1 - d;
    bool seen[AMP_MAX_RANK] = {false};
    for (int d = 0; d < r; d++) {
        if (perm[d] < 0 || perm[d] >= r || seen[perm[d]]) return false;
        seen[perm[d]] = true;
    }
    return true;
}

/* The launch geometry: output dims with the input strides they read, dims of size 1 dropped
 * and neighbours that stay neighbours (stride of one = size times stride of the next) merged. */
static void perm_geom(const amp_tensor *x, const int64_t *perm, amp_k_perm *p) {
    int r = x->rank;
    int64_t xs[AMP_MAX_RANK], st = 1;
    for (int d = r - 1; d >= 0; d--) {
        xs[d] = st;
        st *= x->dims[d];
    }
    p->rank = 0;
    p->es = (int)amp_dtype_size(x->dtype);
    for (int d = 0; d < r; d++) {
        int64_t n = x->dims[perm[d]], s = xs[perm[d]];
        if (n == 1) continue;
        int m = p->rank;
        if (m > 0 && p->istride[m - 1] == n * s) {
            p->odims[m - 1] *= n;
            p->istride[m - 1] = s;
        } else {
            p->odims[m] = n;
            p->istride[m] = s;
            p->rank++;
        }
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->odims[0] = 1;
        p->istride[0] = 1;
    }
}

static const char *why_transpose(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    int64_t perm[AMP_MAX_RANK];
    if (!movable(x) || y->dtype != x->dtype) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (x->rank > AMP_K_DATA_MAX_RANK) return "runs rank 8 at most";
    if (!perm_of(k, x->rank, perm)) return "has a perm that is not a permutation of the dims";
    for (int d = 0; d < x->rank; d++)
        if (y->dims[d] != x->dims[perm[d]]) return "has an output shape that does not match perm";
    return NULL;
}

static amp_status prepare_transpose(const amp_kernel *k, void **state) {
    amp_k_perm *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    int64_t perm[AMP_MAX_RANK];
    perm_of(k, k->in[0]->rank, perm);
    perm_geom(k->in[0], perm, st);
    return AMP_OK;
}

static amp_status run_transpose(amp_cuda *cu, const amp_kernel *k, void *state) {
    const amp_k_perm *st = state;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (st->rank == 1 && st->istride[0] == 1) /* the identity after merging */
        return y->data == x->data || !y->nbytes
                   ? AMP_OK
                   : AMP_CUDA_RT(k->ctx, cudaMemcpyAsync(y->data, x->data, y->nbytes, cudaMemcpyDeviceToDevice,
                                                         cu->stream));
    return LAUNCH(k, amp_k_transpose(cu->stream, st, x->data, y->data, y->numel));
}

/* ---- the table -------------------------------------------------------------------------------- */

static const char *why_not(const amp_kernel *k) {
    if (k->nin < 1 || k->nout < 1 || !k->in[0] || !k->out[0]) return "needs its input and output";
    switch (k->n->op) {
    case AMP_OP_GATHER: return why_gather(k);
    case AMP_OP_GATHER_GRAD: return why_gather_grad(k);
    case AMP_OP_TRANSPOSE: return why_transpose(k);
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
        const amp_tensor *x = k->nin > 0 ? k->in[0] : NULL;
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s (input dtype %s)", k->n->op_type, why,
                               x ? amp_dtype_name(x->dtype) : "none");
    }
    switch (k->n->op) {
    case AMP_OP_GATHER: return prepare_gather_common(k, false, state);
    case AMP_OP_GATHER_GRAD: return prepare_gather_common(k, true, state);
    case AMP_OP_TRANSPOSE: return prepare_transpose(k, state);
    default: return AMP_OK;
    }
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_data[] = {
    ENTRY(GATHER, run_gather),
    ENTRY(GATHER_GRAD, run_gather_grad),
    ENTRY(TRANSPOSE, run_transpose),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
