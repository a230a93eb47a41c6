/* The GEMM family of the CUDA backend (cuda_backend.h): Gemm, MatMul, MatMulGrad and the fused
 * FusedGemm on cuBLASLt through the planned GEMMs of gemm.h.
 *
 * Each node becomes a short list of GEMM calls built at plan time, all with the same one or two
 * plans: usually one call (one product, a strided batch, or a batch folded into the rows of one
 * product); numpy broadcasting that no single stride describes splits into one strided batch
 * per outer index; a MatMulGrad whose operand was broadcast sums into its slice with a second,
 * accumulating plan (beta 1), one call per batch of dY.
 *
 * Gemm's C (ONNX broadcasting to [M, N]): a full [M, N] C goes through beta with C's own
 * layout; a row [N] or [1, N] with beta 1 (the bias of a fully connected layer) is cuBLASLt's
 * bias epilogue; beta 0 ignores C. Other broadcasts (a scalar, a column [M, 1], a row with beta
 * other than 1 or 0) would need C expanded first, and are refused with that reason.
 *
 * FusedGemm(A, B, [bias]) -> Y, [Z] (ir/ops/fused.def): one product of A's rows [M, K] and
 * op(B), the bias and the activation in cuBLASLt's epilogue where it has one: "" (BIAS; Z a copy
 * of Y), "Relu" (RELU_BIAS; with Z: BIAS into Z and relu Z -> Y, bit-exact since relu commutes
 * with rounding), "GeluTanh" (GELU_BIAS; with Z: GELU_AUX_BIAS writing Z as the aux matrix when
 * N is a multiple of 8, as cuBLASLt asks, else BIAS into Z and gelu_tanh Z -> Y), "Gelu" (erf:
 * cuBLASLt has none: BIAS into Z, or into Y, then erf-GELU from the rounded value: one rounding
 * away from the CPU's definition in f16/bf16). The elementwise step is kernels.h's unary
 * launcher, which computes backends/elementwise.h's amp_relu_f / amp_gelu_f / amp_gelu_tanh_f.
 *
 * Alignment: every tensor a step sees is taken to start 16-byte aligned (the arena's buffers
 * are 256-byte aligned; the persistent region must keep 16), which is what cuBLASLt's fastest
 * Hopper kernels need; batch offsets lower it where they must. A pointer that breaks it fails
 * the run with a message rather than a fault. */
#include <stdio.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels.h"

/* the alignment of every tensor's first byte that the plans count on */
#define TENSOR_ALIGN 16u

typedef struct gemm_call {
    int plan;       /* 0: writes D, 1: adds to D (beta 1, C = D) */
    int64_t off[3]; /* element offsets of the GEMM's A, B and D */
} gemm_call;

/* FusedGemm's step after the GEMM: none, Z = Y, or Y = post_op(out[d_out]) */
typedef enum { POST_NONE, POST_COPY, POST_UNARY } post_kind;

typedef struct gemm_state {
    amp_cuda_gemm *plan[2];
    int a_in, b_in; /* the kernel inputs that are the GEMM's A and B */
    int c_in;       /* Gemm's full C, or -1 */
    int bias_in;    /* Gemm's C as the bias epilogue's vector, or -1 */
    bool zero;      /* nothing to multiply (k or the batch is 0): the outputs are zeroed */
    int d_out;      /* the output D is (FusedGemm: 1 when Z takes the pre-activation) */
    int aux_out;    /* the output the aux epilogue writes, or -1 */
    post_kind post; /* after the GEMM (FusedGemm) */
    amp_k_unary post_op;
    int ncalls;
    gemm_call *calls;
} gemm_state;

/* A failure of the GEMM layer, on the node: its message is copied first (the contexts may be
 * the same, and the new message is written where the old one is). */
static amp_status fail_on_node(amp_cuda *cu, const amp_kernel *k, amp_status s) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", amp_context_last_error(cu->ctx));
    return amp_kernel_fail(k, s, "%s", msg);
}

/* ---- what the family runs ------------------------------------------------------------------- */

typedef enum { C_NONE, C_FULL, C_BIAS, C_REFUSED } c_mode;

static c_mode gemm_c(const amp_kernel *k, int64_t M, int64_t N) {
    const amp_tensor *C = k->nin > 2 ? k->in[2] : NULL;
    float beta = amp_attr_float(k->n, "beta", 1.0f);
    if (!C || beta == 0.0f) return C_NONE;
    /* a C that broadcasts to [M, N] and has M * N elements has D's layout */
    if (C->numel == M * N) return C_FULL;
    bool row = (C->rank == 1 && C->dims[0] == N) || (C->rank == 2 && C->dims[0] == 1 && C->dims[1] == N);
    return row && beta == 1.0f ? C_BIAS : C_REFUSED;
}

static void gemm_mnk(const amp_kernel *k, int64_t *M, int64_t *N, int64_t *K) {
    int ta = amp_attr_int(k->n, "transA", 0) != 0;
    *M = k->out[0]->dims[0];
    *N = k->out[0]->dims[1];
    *K = k->in[0]->dims[ta ? 0 : 1];
}

static void dims_str(const amp_tensor *t, char *buf, size_t n) {
    size_t w = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->rank && w < n; i++)
        w += (size_t)snprintf(buf + w, n - w, i ? ",%lld" : "%lld", (long long)t->dims[i]);
    if (w < n) snprintf(buf + w, n - w, "]");
}

/* FusedGemm's activation attribute */
typedef enum { FACT_NONE, FACT_RELU, FACT_GELU, FACT_GELU_TANH, FACT_UNKNOWN } fused_act;

static fused_act fused_act_of(const amp_node *n) {
    const char *a = amp_attr_str(n, "activation", "");
    if (!a[0]) return FACT_NONE;
    if (!strcmp(a, "Relu")) return FACT_RELU;
    if (!strcmp(a, "Gelu")) return FACT_GELU;
    if (!strcmp(a, "GeluTanh")) return FACT_GELU_TANH;
    return FACT_UNKNOWN;
}

/* FusedGemm's M, N, K: every leading dim of A is a row */
static void fused_mnk(const amp_kernel *k, int64_t *M, int64_t *N, int64_t *K) {
    const amp_tensor *A = k->in[0], *Y = k->out[0];
    *K = A->rank ? A->dims[A->rank - 1] : 1;
    *N = Y->rank ? Y->dims[Y->rank - 1] : 1;
    *M = *N ? Y->numel / *N : 0;
}

/* FusedGemm's Z output (the pre-activation), or NULL */
static amp_tensor *fused_z(const amp_kernel *k) { return k->nout > 1 ? k->out[1] : NULL; }

static const char *fused_why(const amp_kernel *k, char *why, size_t why_len) {
    const amp_tensor *A = k->in[0], *B = k->in[1], *bias = in_opt(k, 2);
    if (fused_act_of(k->n) == FACT_UNKNOWN)
        return snprintf(why, why_len, "FusedGemm: activation \"%s\" is not supported (\"\", Relu, Gelu, GeluTanh)",
                        amp_attr_str(k->n, "activation", "")),
               why;
    if (A->rank < 2 || B->rank != 2 || (bias && bias->rank != 1))
        return snprintf(why, why_len, "FusedGemm: A of rank %d, B of rank %d, bias of rank %d (expects >= 2, 2, 1)",
                        A->rank, B->rank, bias ? bias->rank : 1),
               why;
    int64_t M, N, K;
    fused_mnk(k, &M, &N, &K);
    if (K == 0 && bias && M * N > 0)
        return snprintf(why, why_len, "FusedGemm: an empty inner dimension with a bias is not supported"), why;
    return NULL;
}

const char *amp_cuda_gemm_why(const amp_kernel *k, char *why, size_t why_len) {
    const char *op = k->n->op_type;
    int nin = k->n->op == AMP_OP_MATMUL_GRAD ? 3 : 2;
    if (k->nin < nin || k->nout < 1 || !k->out[0])
        return snprintf(why, why_len, "%s: expects %d inputs and one output", op, nin), why;
    const amp_dtype dt = k->out[0]->dtype;
    if (!amp_cuda_float_dtype(dt))
        return snprintf(why, why_len, "%s of %s: cuBLASLt runs f32, f16 and bf16 only", op, amp_dtype_name(dt)), why;
    for (int i = 0; i < k->nin; i++)
        if (k->in[i] && k->in[i]->dtype != dt)
            return snprintf(why, why_len, "%s: input %d is %s, the output %s (mixed dtypes are not supported)", op, i,
                            amp_dtype_name(k->in[i]->dtype), amp_dtype_name(dt)),
                   why;
    for (int i = 1; i < k->nout; i++)
        if (k->out[i] && k->out[i]->dtype != dt)
            return snprintf(why, why_len, "%s: output %d is %s, output 0 %s (mixed dtypes are not supported)", op, i,
                            amp_dtype_name(k->out[i]->dtype), amp_dtype_name(dt)),
                   why;
    if (k->n->op == AMP_OP_FUSED_GEMM) return fused_why(k, why, why_len);
    if (k->n->op == AMP_OP_GEMM) {
        int64_t M, N, K;
        gemm_mnk(k, &M, &N, &K);
        c_mode c = M * N == 0 ? C_NONE : gemm_c(k, M, N);
        if (c == C_REFUSED) {
            char d[64];
            dims_str(k->in[2], d, sizeof d);
            return snprintf(why, why_len,
                            "Gemm: C of shape %s with beta %g broadcasts to [%lld,%lld] in a way cuBLASLt does not "
                            "(supported: C [M,N], or C [N] or [1,N] with beta 1, or beta 0)",
                            d, (double)amp_attr_float(k->n, "beta", 1.0f), (long long)M, (long long)N),
                   why;
        }
        if (K == 0 && c != C_NONE && M * N > 0)
            return snprintf(why, why_len, "Gemm: an empty inner dimension with C is not supported"), why;
    }
    return NULL;
}

static bool gemm_supports(amp_cuda *cu, const amp_kernel *k) {
    (void)cu;
    char why[256];
    return amp_cuda_gemm_why(k, why, sizeof why) == NULL;
}

/* ---- plans ---------------------------------------------------------------------------------- */

static void release(amp_cuda *cu, void *state) {
    gemm_state *st = state;
    if (!st) return;
    amp_cuda_gemm_free(st->plan[0]);
    amp_cuda_gemm_free(st->plan[1]);
    amp_dealloc(cu->ctx, st->calls);
    amp_dealloc(cu->ctx, st);
}

static amp_status new_gemm_state(amp_cuda *cu, const amp_kernel *k, int ncalls, gemm_state **out) {
    char why[256];
    if (amp_cuda_gemm_why(k, why, sizeof why)) return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s", why);
    gemm_state *st = amp_calloc(cu->ctx, 1, sizeof *st);
    if (st && ncalls) st->calls = amp_calloc(cu->ctx, (size_t)ncalls, sizeof *st->calls);
    if (!st || (ncalls && !st->calls)) {
        release(cu, st);
        return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "out of memory for %d GEMM calls", ncalls);
    }
    st->ncalls = ncalls;
    st->c_in = st->bias_in = st->aux_out = -1;
    *out = st;
    return AMP_OK;
}

/* Plans d (and, with accumulate, its beta-1 twin that adds into D) for every call of st: the
 * alignment is what TENSOR_ALIGN-aligned tensors keep at every call's offsets and strides. */
static amp_status make_plans(amp_cuda *cu, const amp_kernel *k, gemm_state *st, amp_cuda_gemm_desc d, bool accumulate,
                             size_t *ws_bytes) {
    const int64_t es = (int64_t)amp_dtype_size(d.dtype);
    int64_t strides[4] = {d.stride_a * es, d.stride_b * es, d.stride_c * es, d.stride_d * es};
    unsigned align = amp_cuda_gemm_align(TENSOR_ALIGN, 4, strides);
    for (int i = 0; i < st->ncalls; i++) {
        int64_t off[3] = {st->calls[i].off[0] * es, st->calls[i].off[1] * es, st->calls[i].off[2] * es};
        align = amp_cuda_gemm_align(align, 3, off);
    }
    d.align = align;
    size_t ws[2] = {0, 0};
    amp_status s = amp_cuda_gemm_plan(cu, &d, &st->plan[0], &ws[0]);
    if (!s && accumulate) {
        d.beta = 1.0f;
        d.has_c = true;
        d.stride_c = d.stride_d;
        s = amp_cuda_gemm_plan(cu, &d, &st->plan[1], &ws[1]);
    }
    if (s) return fail_on_node(cu, k, s);
    *ws_bytes = ws[0] > ws[1] ? ws[0] : ws[1];
    return AMP_OK;
}

static amp_status gemm_prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    int64_t M, N, K;
    gemm_mnk(k, &M, &N, &K);
    gemm_state *st;
    amp_status s = new_gemm_state(cu, k, M * N > 0 && K > 0 ? 1 : 0, &st);
    if (s) return s;
    st->a_in = 0;
    st->b_in = 1;
    st->zero = M * N > 0 && K == 0;
    size_t ws = 0;
    if (st->ncalls) {
        amp_cuda_gemm_desc d = {.dtype = k->out[0]->dtype, .m = M, .n = N, .k = K,
                                .trans_a = amp_attr_int(k->n, "transA", 0) != 0,
                                .trans_b = amp_attr_int(k->n, "transB", 0) != 0,
                                .alpha = amp_attr_float(k->n, "alpha", 1.0f)};
        switch (gemm_c(k, M, N)) {
        case C_FULL:
            d.has_c = true;
            d.beta = amp_attr_float(k->n, "beta", 1.0f);
            st->c_in = 2;
            break;
        case C_BIAS:
            d.bias = true;
            st->bias_in = 2;
            break;
        default: break;
        }
        s = make_plans(cu, k, st, d, false, &ws);
    }
    if (s) {
        release(cu, st);
        return s;
    }
    *state = st;
    *ws_bytes = ws;
    return AMP_OK;
}

/* Element strides per batch dim of Y of a row-major [batch..., rows, cols] operand that is not
 * broadcast (Y itself, dY). */
static void packed_strides(const amp_mm_shape *s, int64_t mat, int64_t *st) {
    for (int i = s->rb - 1; i >= 0; i--) {
        st[i] = mat;
        mat *= s->ydims[i];
    }
}

/* The offset of batch b of Y in an operand with per-dim strides st. */
static int64_t batch_offset(const amp_mm_shape *s, const int64_t *st, int64_t b) {
    int64_t off = 0;
    for (int i = s->rb - 1; i >= 0; i--) {
        off += (b % s->ydims[i]) * st[i];
        b /= s->ydims[i];
    }
    return off;
}

/* Whether batch dims [from, rb) of an operand are one stride *t apart in the flat batch index. */
static bool linear_from(const amp_mm_shape *s, const int64_t *st, int from, int64_t *t) {
    int64_t inner = 1;
    bool found = false;
    *t = 0;
    for (int i = s->rb - 1; i >= from; i--) {
        if (s->ydims[i] != 1) {
            if (!found) {
                if (st[i] % inner) return false;
                *t = st[i] / inner;
                found = true;
            } else if (st[i] != *t * inner) {
                return false;
            }
        }
        inner *= s->ydims[i];
    }
    return true;
}

static bool broadcast_any(const amp_mm_shape *s, const int64_t *st) {
    for (int i = 0; i < s->rb; i++)
        if (s->ydims[i] != 1 && st[i] == 0) return true;
    return false;
}

/* The calls of a batched product over Y's batch: op strides x (the GEMM's A), w (its B), o (D).
 * An output with no broadcast: one strided batch per outer index, over the longest run of inner
 * batch dims that single strides describe. A broadcast output: one call per batch, the first
 * one to reach each slice writes it, the rest add (plan 1). */
static amp_status batched(amp_cuda *cu, const amp_kernel *k, amp_cuda_gemm_desc d, const amp_mm_shape *s,
                          const int64_t *x, const int64_t *w, const int64_t *o, int64_t out_mat, void **state,
                          size_t *ws_bytes) {
    gemm_state *st = NULL;
    amp_status s_;
    if (broadcast_any(s, o)) {
        if (s->nb > INT32_MAX) return amp_kernel_fail(k, AMP_ERR_LIMIT, "%lld GEMM calls", (long long)s->nb);
        if ((s_ = new_gemm_state(cu, k, (int)s->nb, &st))) return s_;
        const int64_t nslices = k->out[0]->numel / out_mat;
        bool *seen = amp_calloc(cu->ctx, (size_t)nslices, 1);
        if (!seen) {
            release(cu, st);
            return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "out of memory while planning");
        }
        for (int64_t b = 0; b < s->nb; b++) {
            gemm_call *c = &st->calls[b];
            c->off[0] = batch_offset(s, x, b);
            c->off[1] = batch_offset(s, w, b);
            c->off[2] = batch_offset(s, o, b);
            int64_t slice = c->off[2] / out_mat;
            c->plan = seen[slice] ? 1 : 0;
            seen[slice] = true;
        }
        amp_dealloc(cu->ctx, seen);
        s_ = make_plans(cu, k, st, d, true, ws_bytes);
    } else {
        int from = 0;
        int64_t tx = 0, tw = 0, to = 0;
        while (!(linear_from(s, x, from, &tx) && linear_from(s, w, from, &tw) && linear_from(s, o, from, &to)))
            from++;
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < s->rb; i++) *(i < from ? &outer : &inner) *= s->ydims[i];
        if (outer > INT32_MAX) return amp_kernel_fail(k, AMP_ERR_LIMIT, "%lld GEMM calls", (long long)outer);
        if ((s_ = new_gemm_state(cu, k, (int)outer, &st))) return s_;
        for (int64_t t = 0; t < outer; t++) {
            gemm_call *c = &st->calls[t];
            c->off[0] = batch_offset(s, x, t * inner);
            c->off[1] = batch_offset(s, w, t * inner);
            c->off[2] = batch_offset(s, o, t * inner);
        }
        d.batch = inner;
        if (inner > 1) {
            d.stride_a = tx;
            d.stride_b = tw;
            d.stride_d = to;
        }
        s_ = make_plans(cu, k, st, d, false, ws_bytes);
    }
    if (s_) {
        release(cu, st);
        return s_;
    }
    *state = st;
    return AMP_OK;
}

/* One product over the flattened batch (rows of A stacked, B shared), or nothing to multiply. */
static amp_status single(amp_cuda *cu, const amp_kernel *k, const amp_cuda_gemm_desc *d, bool zero, void **state,
                         size_t *ws_bytes) {
    gemm_state *st;
    amp_status s = new_gemm_state(cu, k, zero ? 0 : 1, &st);
    if (s) return s;
    st->zero = zero;
    *ws_bytes = 0;
    if (!zero && (s = make_plans(cu, k, st, *d, false, ws_bytes))) {
        release(cu, st);
        return s;
    }
    *state = st;
    return AMP_OK;
}

/* A's matrices stack into one [nb*M, K] operand: B is the same for every batch, A not broadcast */
static bool stacks(const amp_mm_shape *s) {
    int64_t need = s->M * s->K;
    for (int i = s->rb - 1; i >= 0; i--) {
        if (s->ydims[i] == 1) continue;
        if (s->sb[i] != 0 || s->sa[i] != need) return false;
        need *= s->ydims[i];
    }
    return s->nb * s->M <= INT32_MAX;
}

static amp_status matmul_prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    const amp_tensor *A = k->in[0], *B = k->in[1], *Y = k->out[0];
    amp_mm_shape s;
    amp_mm_shape_init(A, B, Y, &s);
    amp_cuda_gemm_desc d = {.dtype = Y->dtype, .m = s.M, .n = s.N, .k = s.K, .alpha = 1.0f};
    amp_status r;
    if (Y->numel == 0 || s.K == 0 || stacks(&s)) {
        d.m = s.nb * s.M;
        r = single(cu, k, &d, Y->numel > 0 && s.K == 0, state, ws_bytes);
    } else {
        int64_t so[AMP_MAX_RANK];
        packed_strides(&s, s.M * s.N, so);
        r = batched(cu, k, d, &s, s.sa, s.sb, so, s.M * s.N, state, ws_bytes);
    }
    if (!r) {
        gemm_state *st = *state;
        st->a_in = 0;
        st->b_in = 1;
    }
    return r;
}

/* MatMulGrad(dY, A, B): wrt 0 is dA = dY B^T, wrt 1 is dB = A^T dY, per batch of dY, summed over
 * the batch dims the operand was broadcast along. */
static amp_status matmul_grad_prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    const amp_tensor *dy = k->in[0], *A = k->in[1], *B = k->in[2], *out = k->out[0];
    const int wrt = amp_attr_int(k->n, "wrt", 0) != 0;
    amp_mm_shape s;
    amp_mm_shape_init(A, B, dy, &s);
    amp_cuda_gemm_desc d = {.dtype = out->dtype, .alpha = 1.0f};
    if (wrt == 0) {
        d.m = s.M;
        d.n = s.K;
        d.k = s.N;
        d.trans_b = true;
    } else {
        d.m = s.K;
        d.n = s.N;
        d.k = s.M;
        d.trans_a = true;
    }
    const bool empty = s.M == 0 || s.N == 0 || s.K == 0 || s.nb == 0;
    amp_status r;
    if (out->numel == 0 || empty || stacks(&s)) {
        if (wrt == 0) d.m = s.nb * s.M;
        else d.k = s.nb * s.M;
        r = single(cu, k, &d, out->numel > 0 && empty, state, ws_bytes);
    } else {
        int64_t sy[AMP_MAX_RANK];
        packed_strides(&s, s.M * s.N, sy);
        if (wrt == 0) r = batched(cu, k, d, &s, sy, s.sb, s.sa, s.M * s.K, state, ws_bytes);
        else r = batched(cu, k, d, &s, s.sa, sy, s.sb, s.K * s.N, state, ws_bytes);
    }
    if (!r) {
        gemm_state *st = *state;
        st->a_in = wrt == 0 ? 0 : 1;
        st->b_in = wrt == 0 ? 2 : 0;
    }
    return r;
}

/* FusedGemm: one product over A's rows, the bias and the activation in the epilogue where
 * cuBLASLt has it, an elementwise step after where it has not (the header says which). */
static amp_status fused_prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    const bool has_z = fused_z(k) != NULL, has_bias = in_opt(k, 2) != NULL;
    int64_t M, N, K;
    gemm_state *st;
    amp_status s;
    fused_mnk(k, &M, &N, &K);
    if ((s = new_gemm_state(cu, k, M * N > 0 && K > 0 ? 1 : 0, &st))) return s;
    st->a_in = 0;
    st->b_in = 1;
    st->bias_in = has_bias ? 2 : -1;
    st->zero = M * N > 0 && K == 0; /* no bias (why refused it): v = 0, and every activation keeps 0 */
    amp_cuda_gemm_desc d = {.dtype = k->out[0]->dtype, .m = M, .n = N, .k = K,
                            .trans_b = amp_attr_int(k->n, "trans_b", 0) != 0,
                            .alpha = amp_attr_float(k->n, "alpha", 1.0f), .bias = has_bias};
    switch (fused_act_of(k->n)) {
    case FACT_RELU:
        if (has_z) {
            st->d_out = 1;
            st->post = POST_UNARY;
            st->post_op = AMP_K_RELU;
        } else {
            d.act = AMP_CUDA_GEMM_ACT_RELU;
        }
        break;
    case FACT_GELU_TANH:
        if (!has_z || N % 8 == 0) {
            d.act = AMP_CUDA_GEMM_ACT_GELU_TANH;
            d.aux = has_z;
            st->aux_out = has_z ? 1 : -1;
        } else {
            st->d_out = 1;
            st->post = POST_UNARY;
            st->post_op = AMP_K_GELU_TANH;
        }
        break;
    case FACT_GELU:
        st->d_out = has_z ? 1 : 0;
        st->post = POST_UNARY;
        st->post_op = AMP_K_GELU;
        break;
    default: st->post = has_z ? POST_COPY : POST_NONE; break;
    }
    size_t ws = 0;
    if (st->ncalls && (s = make_plans(cu, k, st, d, false, &ws))) {
        release(cu, st);
        return s;
    }
    *state = st;
    *ws_bytes = ws;
    return AMP_OK;
}

/* ---- run ------------------------------------------------------------------------------------ */

/* FusedGemm's elementwise step after the GEMM */
static amp_status post_run(amp_cuda *cu, const amp_kernel *k, const gemm_state *st) {
    amp_tensor *Y = k->out[0];
    const amp_k_dtype kt = Y->dtype == AMP_F32 ? AMP_K_F32 : Y->dtype == AMP_F16 ? AMP_K_F16 : AMP_K_BF16;
    amp_status s = AMP_OK;
    if (st->post == POST_COPY)
        s = AMP_CUDA_RT(cu->ctx, cudaMemcpyAsync(fused_z(k)->data, Y->data, Y->nbytes, cudaMemcpyDeviceToDevice,
                                                 cu->stream));
    else if (st->post == POST_UNARY)
        s = AMP_CUDA_RT(cu->ctx, amp_k_unary_fwd(cu->stream, st->post_op, kt, 0.0f, k->out[st->d_out]->data,
                                                 Y->data, Y->numel));
    return s ? fail_on_node(cu, k, s) : AMP_OK;
}

static amp_status gemm_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    const gemm_state *st = state;
    amp_tensor *Y = k->out[st->d_out];
    if (st->zero) {
        amp_status s = AMP_OK;
        for (int i = 0; i < k->nout && !s; i++)
            if (k->out[i]) s = AMP_CUDA_RT(cu->ctx, cudaMemsetAsync(k->out[i]->data, 0, k->out[i]->nbytes, cu->stream));
        return s;
    }
    const size_t es = amp_dtype_size(Y->dtype);
    char *aux = st->aux_out >= 0 ? k->out[st->aux_out]->data : NULL;
    const char *a = k->in[st->a_in]->data, *b = k->in[st->b_in]->data;
    const void *c = st->c_in >= 0 ? k->in[st->c_in]->data : NULL;
    const void *bias = st->bias_in >= 0 ? k->in[st->bias_in]->data : NULL;
    for (int i = 0; i < st->ncalls; i++) {
        const gemm_call *cl = &st->calls[i];
        char *d = (char *)Y->data + (size_t)cl->off[2] * es;
        amp_status s = amp_cuda_gemm_run_aux(cu, st->plan[cl->plan], a + (size_t)cl->off[0] * es,
                                             b + (size_t)cl->off[1] * es, cl->plan ? d : c, d, bias,
                                             aux ? aux + (size_t)cl->off[2] * es : NULL, k->ws);
        if (s) return fail_on_node(cu, k, s);
    }
    return st->ncalls ? post_run(cu, k, st) : AMP_OK;
}

const amp_cuda_op amp_cuda_ops_gemm[] = {
    {AMP_OP_GEMM, gemm_supports, gemm_prepare, release, gemm_run},
    {AMP_OP_MAT_MUL, gemm_supports, matmul_prepare, release, gemm_run},
    {AMP_OP_MATMUL_GRAD, gemm_supports, matmul_grad_prepare, release, gemm_run},
    {AMP_OP_FUSED_GEMM, gemm_supports, fused_prepare, release, gemm_run},
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};
