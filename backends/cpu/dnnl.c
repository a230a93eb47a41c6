/* oneDNN primitives for MatMul, Gemm, FusedGemm, Conv and FusedConv (see dnnl.h).
 *
 * Each step describes its tensors to oneDNN twice: as amprt holds them (row-major, strides for
 * a transposed Gemm operand) and as the primitive wants them. Matrix products keep amprt's
 * layouts except for a constant B, which oneDNN may block; convolutions let oneDNN pick every
 * layout (its fast kernels want channel-blocked tensors) and reorder X in and Y out around the
 * primitive in the workspace. Constant inputs are reordered once here at prepare and kept in
 * the state. oneDNN runs on OpenMP: the calling thread's OpenMP thread count is set to the
 * step's (one for a product under PAR_MIN multiply-adds) for prepare (oneDNN splits the work
 * when it creates a primitive) and for every run, and put back after. */
#include "backends/cpu/dnnl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"

#ifdef AMP_HAVE_DNNL

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>
#include <pthread.h>

#include "ir/ops/conv.h"

#define DNNL_ALIGN 64
#define MAX_ARGS 4
/* Below this many multiply-adds a primitive runs on one thread: a parallel region costs more
 * than it saves there (the threshold of the reference GEMM, backends/cpu/gemm.c). */
#define PAR_MIN ((int64_t)1 << 18)

static _Atomic uint64_t dnnl_runs;

/* One process-wide CPU engine, made on first use; NULL when oneDNN has none. */
static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

bool amp_cpu_dnnl_wanted(void) {
    const char *e = getenv("AMPRT_CPU_DNNL");
    if (e && (!strcmp(e, "0") || !strcmp(e, "off") || !strcmp(e, "no"))) return false;
    pthread_once(&engine_once, engine_init);
    return engine != NULL;
}

uint64_t amp_cpu_dnnl_runs(void) { return atomic_load(&dnnl_runs); }

/* A primitive argument: the amprt tensor it reads or writes and, where the primitive wants
 * another layout, a copy in that layout with the reorder between the two. */
typedef struct dnnl_arg {
    int arg;                  /* DNNL_ARG_* */
    int tensor;               /* input index, or output index when out */
    bool out;
    dnnl_memory_t user;       /* over the amprt tensor */
    dnnl_memory_t prim;       /* the primitive's layout; NULL: user is passed as it is */
    dnnl_primitive_t reorder; /* user -> prim for inputs, prim -> user for outputs; NULL for a constant */
    size_t off;               /* prim's bytes in the workspace (after the scratchpad) */
    void *owned, *owned_raw;  /* a constant input's copy in prim's layout (aligned, raw block) */
} dnnl_arg;

struct amp_dnnl_step {
    amp_context *ctx;
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_memory_t scratch; /* NULL when the primitive needs none */
    int threads;           /* what oneDNN split the work for when it made the primitive */
    int nargs;
    dnnl_arg a[MAX_ARGS];
};

void amp_cpu_dnnl_release(amp_dnnl_step *s) {
    if (!s) return;
    for (int i = 0; i < s->nargs; i++) {
        dnnl_arg *a = &s->a[i];
        if (a->reorder) dnnl_primitive_destroy(a->reorder);
        if (a->prim) dnnl_memory_destroy(a->prim);
        if (a->user) dnnl_memory_destroy(a->user);
        amp_dealloc(s->ctx, a->owned_raw);
    }
    if (s->scratch) dnnl_memory_destroy(s->scratch);
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->stream) dnnl_stream_destroy(s->stream);
    amp_dealloc(s->ctx, s);
}

static size_t align_up(size_t v) { return (v + DNNL_ALIGN - 1) & ~(size_t)(DNNL_ALIGN - 1); }

static bool dnnl_dtype(amp_dtype t, dnnl_data_type_t *out) {
    switch (t) {
    case AMP_F32: *out = dnnl_f32; return true;
    case AMP_BF16: *out = dnnl_bf16; return true;
    default: return false;
    }
}

/* A row-major (dense) descriptor of nd dims. */
static bool plain_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims, dnnl_data_type_t dt) {
    dnnl_dims_t d, st;
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        d[i] = dims[i];
        st[i] = s;
        s *= dims[i];
    }
    return dnnl_memory_desc_init_by_strides(md, nd, d, dt, st) == dnnl_success;
}

static bool any_md(dnnl_memory_desc_t *md, int nd, const int64_t *dims, dnnl_data_type_t dt) {
    dnnl_dims_t d;
    for (int i = 0; i < nd; i++) d[i] = dims[i];
    return dnnl_memory_desc_init_by_tag(md, nd, d, dt, dnnl_format_tag_any) == dnnl_success;
}

/* The thread count oneDNN sees on this thread, set for a scope and put back. */
static int threads_enter(int n) {
    int old = omp_get_max_threads();
    if (n < 1) n = 1;
    if (n != old) omp_set_num_threads(n);
    return old;
}

static void threads_leave(int old) {
    if (omp_get_max_threads() != old) omp_set_num_threads(old);
}

static void *tensor_data(const amp_kernel *k, const dnnl_arg *a) {
    return a->out ? k->out[a->tensor]->data : k->in[a->tensor]->data;
}

/* Add argument arg of the primitive: the tensor as amprt holds it (user) and as the primitive
 * wants it (want). *ws grows by what a non-constant copy needs. false: oneDNN refused a
 * reorder (the node then runs on the reference) or memory ran out (*oom). */
static bool add_arg(amp_dnnl_step *s, const amp_kernel *k, int arg, int tensor, bool out, const dnnl_memory_desc_t *user,
                    const dnnl_memory_desc_t *want, size_t *ws, bool *oom) {
    dnnl_arg *a = &s->a[s->nargs++];
    a->arg = arg;
    a->tensor = tensor;
    a->out = out;
    if (dnnl_memory_create(&a->user, user, engine, DNNL_MEMORY_NONE) != dnnl_success) return false;
    if (dnnl_memory_desc_equal(user, want)) return true;
    if (dnnl_memory_create(&a->prim, want, engine, DNNL_MEMORY_NONE) != dnnl_success) return false;
    dnnl_primitive_desc_t rpd;
    if (dnnl_reorder_primitive_desc_create(&rpd, out ? want : user, engine, out ? user : want, engine, NULL) !=
        dnnl_success)
        return false;
    dnnl_status_t st = dnnl_primitive_create(&a->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) {
        a->reorder = NULL;
        return false;
    }
    size_t bytes = dnnl_memory_desc_get_size(want);
    const void *known = out ? NULL : k->in[tensor]->data;
    if (!known) {
        a->off = *ws;
        *ws = align_up(*ws + bytes);
        return true;
    }
    /* a constant: reordered now, once */
    a->owned_raw = amp_alloc(s->ctx, bytes + DNNL_ALIGN);
    if (!a->owned_raw) {
        *oom = true;
        return false;
    }
    a->owned = (void *)(((uintptr_t)a->owned_raw + DNNL_ALIGN - 1) & ~(uintptr_t)(DNNL_ALIGN - 1));
    dnnl_memory_set_data_handle(a->user, (void *)known);
    dnnl_memory_set_data_handle(a->prim, a->owned);
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->prim}};
    st = dnnl_primitive_execute(a->reorder, s->stream, 2, ra);
    if (st == dnnl_success) st = dnnl_stream_wait(s->stream);
    dnnl_primitive_destroy(a->reorder);
    a->reorder = NULL;
    return st == dnnl_success;
}

/* ---- what oneDNN takes ---------------------------------------------------------------------- */

/* A node in oneDNN's terms: an op descriptor plus attributes, and the tensors in both forms. */
typedef struct plan {
    union {
        dnnl_matmul_desc_t mm;
        dnnl_convolution_desc_t conv;
    } d;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    int n;                                /* arguments */
    int arg[MAX_ARGS], tensor[MAX_ARGS];
    bool out[MAX_ARGS];
    dnnl_memory_desc_t user[MAX_ARGS], want[MAX_ARGS]; /* want: format any where oneDNN picks */
    bool pick[MAX_ARGS];                  /* want is format any: query the primitive for it */
    int64_t work;                         /* multiply-adds */
} plan;

static void plan_arg(plan *p, int arg, int tensor, bool out, const dnnl_memory_desc_t *user,
                     const dnnl_memory_desc_t *want) {
    p->arg[p->n] = arg;
    p->tensor[p->n] = tensor;
    p->out[p->n] = out;
    p->user[p->n] = *user;
    p->want[p->n] = want ? *want : *user;
    p->pick[p->n] = want != NULL;
    p->n++;
}

static bool same_dtypes(const amp_kernel *k, int nin) {
    amp_dtype dt = k->in[0]->dtype;
    for (int i = 1; i < nin && i < k->nin; i++)
        if (k->in[i] && k->in[i]->dtype != dt) return false;
    return k->out[0]->dtype == dt;
}

static bool any_empty(const amp_kernel *k) {
    for (int i = 0; i < k->nin; i++)
        if (k->in[i] && k->in[i]->numel == 0) return true;
    return k->out[0]->numel == 0;
}

/* Post-op for FusedGemm's activation; false for one oneDNN lacks. */
static bool act_post_op(plan *p, const char *act) {
    dnnl_alg_kind_t alg;
    if (!strcmp(act, "")) return true;
    if (!strcmp(act, "Relu")) alg = dnnl_eltwise_relu;
    else if (!strcmp(act, "Gelu")) alg = dnnl_eltwise_gelu_erf;
    else if (!strcmp(act, "GeluTanh")) alg = dnnl_eltwise_gelu_tanh;
    else return false;
    return dnnl_post_ops_append_eltwise(p->po, 1.0f, alg, 0.0f, 0.0f) == dnnl_success;
}

/* Matrix products: src [.., M, K] x weights [.., K, N] (+ bias broadcast) -> dst [.., M, N]. */
static bool plan_matmul(const amp_kernel *k, plan *p) {
    const amp_tensor *A = k->in[0], *B = k->in[1], *Y = k->out[0], *bias = NULL;
    dnnl_data_type_t dt;
    if (!dnnl_dtype(A->dtype, &dt)) return false;
    int64_t ad[DNNL_MAX_NDIMS], bd[DNNL_MAX_NDIMS], yd[DNNL_MAX_NDIMS], cd[2] = {1, 1};
    dnnl_dims_t ast, bst;
    int nd = 2;
    bool ta = false, tb = false;
    float alpha = 1.0f;
    int64_t M, N, K;
    const amp_op op = k->n->op;
    if (op == AMP_OP_MAT_MUL) {
        if (!same_dtypes(k, 2)) return false;
        amp_mm_shape s;
        amp_mm_shape_init(A, B, Y, &s);
        M = s.M, N = s.N, K = s.K;
        nd = s.rb + 2;
        if (nd > DNNL_MAX_NDIMS) return false;
        int ra = A->rank > 2 ? A->rank - 2 : 0, rbb = B->rank > 2 ? B->rank - 2 : 0;
        for (int i = 0; i < s.rb; i++) {
            int ia = i - (s.rb - ra), ib = i - (s.rb - rbb);
            ad[i] = ia >= 0 ? A->dims[ia] : 1;
            bd[i] = ib >= 0 ? B->dims[ib] : 1;
            yd[i] = s.ydims[i];
        }
    } else if (op == AMP_OP_GEMM) {
        if (!same_dtypes(k, 2)) return false;
        ta = amp_attr_int(k->n, "transA", 0) != 0;
        tb = amp_attr_int(k->n, "transB", 0) != 0;
        alpha = amp_attr_float(k->n, "alpha", 1.0f);
        float beta = amp_attr_float(k->n, "beta", 1.0f);
        M = Y->dims[0], N = Y->dims[1], K = A->dims[ta ? 0 : 1];
        const amp_tensor *C = in_opt(k, 2);
        if (C && beta != 0.0f) {
            /* C as oneDNN's bias, which it adds unscaled after the product */
            if (beta != 1.0f || alpha != 1.0f || (C->dtype != A->dtype && C->dtype != AMP_F32)) return false;
            bias = C;
            cd[0] = C->rank == 2 ? C->dims[0] : 1;
            cd[1] = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
        }
    } else { /* FusedGemm */
        if (k->nout > 1 || !same_dtypes(k, 3)) return false;
        tb = amp_attr_int(k->n, "trans_b", 0) != 0;
        alpha = amp_attr_float(k->n, "alpha", 1.0f);
        K = A->dims[A->rank - 1], N = Y->dims[Y->rank - 1];
        if (K == 0) return false;
        M = A->numel / K;
        bias = in_opt(k, 2);
        if (bias && alpha != 1.0f) return false;
        cd[1] = N;
        if (!act_post_op(p, amp_attr_str(k->n, "activation", ""))) return false;
    }
    if (M <= 0 || N <= 0 || K <= 0) return false;
    p->work = Y->numel * K;
    /* one B for every batch and A not broadcast: A's matrices stack into one [batch * M, K]
     * operand, a single product that oneDNN blocks well (a batch of M = 1 products it does not) */
    bool stack = nd > 2;
    for (int i = 0; stack && i < nd - 2; i++) stack = bd[i] == 1 && ad[i] == yd[i];
    if (stack) {
        M = Y->numel / N;
        nd = 2;
    }
    int b0 = nd - 2;
    ad[b0] = M, ad[b0 + 1] = K;
    bd[b0] = K, bd[b0 + 1] = N;
    yd[b0] = M, yd[b0 + 1] = N;
    /* row-major strides, then the transposed operands' last two */
    dnnl_dims_t yst;
    int64_t sa = 1, sb = 1, sy = 1;
    for (int i = nd - 1; i >= 0; i--) {
        ast[i] = sa, bst[i] = sb, yst[i] = sy;
        sa *= ad[i], sb *= bd[i], sy *= yd[i];
    }
    if (ta) ast[b0] = 1, ast[b0 + 1] = M;
    if (tb) bst[b0] = 1, bst[b0 + 1] = K;
    dnnl_memory_desc_t amd, bmd, ymd, cmd, bwant;
    dnnl_dims_t dd;
    for (int i = 0; i < nd; i++) dd[i] = ad[i];
    if (dnnl_memory_desc_init_by_strides(&amd, nd, dd, dt, ast) != dnnl_success) return false;
    for (int i = 0; i < nd; i++) dd[i] = bd[i];
    if (dnnl_memory_desc_init_by_strides(&bmd, nd, dd, dt, bst) != dnnl_success) return false;
    for (int i = 0; i < nd; i++) dd[i] = yd[i];
    if (dnnl_memory_desc_init_by_strides(&ymd, nd, dd, dt, yst) != dnnl_success) return false;
    /* a constant 2-D B in the layout the primitive likes best */
    bool bpick = B->data && nd == 2 && any_md(&bwant, nd, bd, dt);
    if (bias) {
        int64_t cdims[DNNL_MAX_NDIMS];
        for (int i = 0; i < nd; i++) cdims[i] = 1;
        cdims[b0] = cd[0], cdims[b0 + 1] = cd[1];
        dnnl_data_type_t ct;
        if (!dnnl_dtype(bias->dtype, &ct) || !plain_md(&cmd, nd, cdims, ct)) return false;
    }
    if (alpha != 1.0f && dnnl_primitive_attr_set_output_scales(p->attr, 1, 0, &alpha) != dnnl_success) return false;
    if (dnnl_matmul_desc_init(&p->d.mm, &amd, bpick ? &bwant : &bmd, bias ? &cmd : NULL, &ymd) != dnnl_success)
        return false;
    plan_arg(p, DNNL_ARG_SRC, 0, false, &amd, NULL);
    plan_arg(p, DNNL_ARG_WEIGHTS, 1, false, &bmd, bpick ? &bwant : NULL);
    if (bias) plan_arg(p, DNNL_ARG_BIAS, 2, false, &cmd, NULL);
    plan_arg(p, DNNL_ARG_DST, 0, true, &ymd, NULL);
    return true;
}

static bool plan_conv(const amp_kernel *k, plan *p) {
    const amp_tensor *X = k->in[0], *W = k->in[1], *B = in_opt(k, 2), *Y = k->out[0];
    dnnl_data_type_t dt, bt = dnnl_f32;
    if (!dnnl_dtype(X->dtype, &dt) || !same_dtypes(k, 2) || X->rank < 3 || X->rank > 5) return false;
    if (B && (B->dtype != X->dtype && B->dtype != AMP_F32)) return false;
    if (B && !dnnl_dtype(B->dtype, &bt)) return false;
    if (k->n->op == AMP_OP_FUSED_CONV) {
        if (strcmp(amp_attr_str(k->n, "activation", ""), "Relu")) return false;
        if (dnnl_post_ops_append_eltwise(p->po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) != dnnl_success) return false;
    }
    amp_conv_geom g;
    char msg[256];
    if (amp_conv_geom_init(k->n, AMP_GEOM_CONV, X->rank, X->dims, W->dims, &g, msg, sizeof msg)) return false;
    int64_t group = amp_attr_int(k->n, "group", 1);
    if (group < 1 || X->dims[1] % group || W->dims[0] % group) return false;
    dnnl_dims_t st, dil, pl, pr;
    for (int i = 0; i < g.nsp; i++) {
        if (g.pb[i] < 0 || g.pe[i] < 0 || g.d[i] < 1 || g.s[i] < 1) return false;
        st[i] = g.s[i];
        dil[i] = g.d[i] - 1; /* oneDNN counts the gaps */
        pl[i] = g.pb[i];
        pr[i] = g.pe[i];
    }
    /* grouped weights as [G, M/G, C/G, k...]: the same bytes as W */
    int64_t wd[DNNL_MAX_NDIMS];
    int wnd = W->rank;
    if (group > 1) {
        wd[0] = group;
        wd[1] = W->dims[0] / group;
        for (int i = 1; i < W->rank; i++) wd[i + 1] = W->dims[i];
        wnd++;
    } else {
        memcpy(wd, W->dims, sizeof(int64_t) * (size_t)W->rank);
    }
    int64_t bd[1] = {Y->dims[1]};
    p->work = Y->numel * (W->numel / W->dims[0]);
    dnnl_memory_desc_t xu, xa, wu, wa, bu, yu, ya;
    if (!plain_md(&xu, X->rank, X->dims, dt) || !any_md(&xa, X->rank, X->dims, dt) || !plain_md(&wu, wnd, wd, dt) ||
        !any_md(&wa, wnd, wd, dt) || !plain_md(&yu, Y->rank, Y->dims, dt) || !any_md(&ya, Y->rank, Y->dims, dt))
        return false;
    if (B && !plain_md(&bu, 1, bd, bt)) return false;
    if (dnnl_dilated_convolution_forward_desc_init(&p->d.conv, dnnl_forward_inference, dnnl_convolution_direct, &xa, &wa,
                                                   B ? &bu : NULL, &ya, st, dil, pl, pr) != dnnl_success)
        return false;
    plan_arg(p, DNNL_ARG_SRC, 0, false, &xu, &xa);
    plan_arg(p, DNNL_ARG_WEIGHTS, 1, false, &wu, &wa);
    if (B) plan_arg(p, DNNL_ARG_BIAS, 2, false, &bu, NULL);
    plan_arg(p, DNNL_ARG_DST, 0, true, &yu, &ya);
    return true;
}

static bool dnnl_op(amp_op op) {
    return op == AMP_OP_MAT_MUL || op == AMP_OP_GEMM || op == AMP_OP_FUSED_GEMM || op == AMP_OP_CONV ||
           op == AMP_OP_FUSED_CONV;
}

static dnnl_query_t md_query(int arg) {
    switch (arg) {
    case DNNL_ARG_SRC: return dnnl_query_src_md;
    case DNNL_ARG_WEIGHTS: return dnnl_query_weights_md;
    default: return dnnl_query_dst_md;
    }
}

amp_status amp_cpu_dnnl_prepare(const amp_kernel *k, amp_dnnl_step **out, size_t *ws_bytes) {
    *out = NULL;
    if (!dnnl_op(k->n->op) || k->nout < 1 || !k->out[0] || k->nin < 2 || !k->in[0] || !k->in[1] || any_empty(k))
        return AMP_OK;
    plan p;
    memset(&p, 0, sizeof p);
    if (dnnl_primitive_attr_create(&p.attr) != dnnl_success) return AMP_OK;
    if (dnnl_post_ops_create(&p.po) != dnnl_success) {
        dnnl_primitive_attr_destroy(p.attr);
        return AMP_OK;
    }
    amp_status rc = AMP_OK;
    amp_dnnl_step *s = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool conv = k->n->op == AMP_OP_CONV || k->n->op == AMP_OP_FUSED_CONV;
    bool ok = conv ? plan_conv(k, &p) : plan_matmul(k, &p);
    int threads = p.work < PAR_MIN ? 1 : amp_cpu_threads(k);
    int old = threads_enter(threads);
    ok = ok && dnnl_primitive_attr_set_scratchpad_mode(p.attr, dnnl_scratchpad_mode_user) == dnnl_success &&
         dnnl_primitive_attr_set_post_ops(p.attr, p.po) == dnnl_success &&
         dnnl_primitive_desc_create(&pd, &p.d, p.attr, engine, NULL) == dnnl_success;
    if (!ok) goto done;
    s = amp_calloc(k->ctx, 1, sizeof *s);
    if (!s) {
        rc = amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "out of memory preparing a oneDNN primitive");
        goto done;
    }
    s->ctx = k->ctx;
    s->threads = threads;
    if (dnnl_stream_create(&s->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        s->stream = NULL;
        ok = false;
        goto done;
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t ws = smd ? align_up(dnnl_memory_desc_get_size(smd)) : 0;
    if (ws && dnnl_memory_create(&s->scratch, smd, engine, DNNL_MEMORY_NONE) != dnnl_success) {
        s->scratch = NULL;
        ok = false;
        goto done;
    }
    bool oom = false;
    for (int i = 0; ok && i < p.n; i++) {
        const dnnl_memory_desc_t *want = &p.want[i];
        if (p.pick[i]) want = dnnl_primitive_desc_query_md(pd, md_query(p.arg[i]), 0);
        ok = want && add_arg(s, k, p.arg[i], p.tensor[i], p.out[i], &p.user[i], want, &ws, &oom);
    }
    if (oom) rc = amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "out of memory reordering a constant for oneDNN");
    ok = ok && !oom && dnnl_primitive_create(&s->prim, pd) == dnnl_success;
    if (ok) {
        *out = s;
        *ws_bytes = ws;
        s = NULL;
    }
done:
    threads_leave(old);
    if (s && !ok) {
        amp_cpu_dnnl_release(s);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(p.po);
    dnnl_primitive_attr_destroy(p.attr);
    return rc;
}

static amp_status exec(amp_kernel *k, dnnl_primitive_t prim, dnnl_stream_t stream, int n, const dnnl_exec_arg_t *args) {
    dnnl_status_t st = dnnl_primitive_execute(prim, stream, n, args);
    if (st != dnnl_success)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "oneDNN primitive failed: %s", dnnl_status2str(st));
    return AMP_OK;
}

amp_status amp_cpu_dnnl_run(amp_dnnl_step *s, amp_kernel *k) {
    unsigned char *ws = k->ws;
    dnnl_exec_arg_t args[MAX_ARGS + 1];
    int n = 0;
    amp_status rc = AMP_OK;
    int old = threads_enter(s->threads);
    for (int i = 0; i < s->nargs; i++) {
        dnnl_arg *a = &s->a[i];
        dnnl_memory_set_data_handle(a->user, tensor_data(k, a));
        if (a->prim && !a->owned) dnnl_memory_set_data_handle(a->prim, ws + a->off);
        if (!rc && !a->out && a->reorder) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->prim}};
            rc = exec(k, a->reorder, s->stream, 2, ra);
        }
        args[n++] = (dnnl_exec_arg_t){a->arg, a->prim ? a->prim : a->user};
    }
    if (s->scratch) {
        dnnl_memory_set_data_handle(s->scratch, ws);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    }
    if (!rc) rc = exec(k, s->prim, s->stream, n, args);
    for (int i = 0; !rc && i < s->nargs; i++) {
        dnnl_arg *a = &s->a[i];
        if (!a->out || !a->reorder) continue;
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->prim}, {DNNL_ARG_TO, a->user}};
        rc = exec(k, a->reorder, s->stream, 2, ra);
    }
    if (!rc && dnnl_stream_wait(s->stream) != dnnl_success)
        rc = amp_kernel_fail(k, AMP_ERR_INTERNAL, "oneDNN stream wait failed");
    threads_leave(old);
    if (!rc) atomic_fetch_add(&dnnl_runs, 1);
    return rc;
}

#else /* no oneDNN in this build: every node runs on the reference kernels */

bool amp_cpu_dnnl_wanted(void) { return false; }

amp_status amp_cpu_dnnl_prepare(const amp_kernel *k, amp_dnnl_step **out, size_t *ws_bytes) {
    (void)k;
    (void)ws_bytes;
    *out = NULL;
    return AMP_OK;
}

amp_status amp_cpu_dnnl_run(amp_dnnl_step *s, amp_kernel *k) {
    (void)s;
    return amp_kernel_fail(k, AMP_ERR_INTERNAL, "amprt was built without oneDNN");
}

void amp_cpu_dnnl_release(amp_dnnl_step *s) { (void)s; }

uint64_t amp_cpu_dnnl_runs(void) { return 0; }

#endif
