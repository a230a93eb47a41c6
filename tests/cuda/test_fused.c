/* The fused family's CUDA ops (backends/cuda/op_fused.c, k_fused.cu) on the emulator against the
 * CPU backend's reference kernels (backends/cpu/fused.c): AddLayerNorm, CastMulti and Attention
 * through their amp_cuda_ops_fused entries (supports, prepare, run, release) on device memory,
 * in f32, f16 and bf16, odd shapes, optional inputs and outputs, broadcasting; every output
 * compared.
 *
 * Bit for bit: AddLayerNorm's every output (S the f32 sum rounded once, as the CPU's; Y and the
 * statistics the norm family's layer norm, whose double row sums in a block tree round to the
 * CPU's bits on these data) with its launch count (one where X or R repeats over S's rows, else
 * Add then LayerNormalization), and CastMulti (Cast's conversions). Within f32 1e-6, f16 1e-3,
 * bf16 8e-3 relative L2: Attention (the GEMMs' f32 accumulation order and the softmax's row sums
 * differ from the CPU's; on a GPU exp differs by an ulp too). */
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "backends/cuda/kernels_fused.h"
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_test.h"

#include "tests/cuda/cuda_optest.h"

/* Runs the node on both backends; output o compared bit for bit when bit o of exact is set,
 * else within the dtype's tolerance (its worst error noted). False with a message in why. */
static bool compare_node(tnode *t, int nin, amp_tensor *const *in, int nout, unsigned exact, char *why, size_t len) {
    amp_tensor *ref[OT_MAX_IO], *got[OT_MAX_IO];
    amp_status s = run_both(t, nin, in, nout, ref, got);
    if (s) {
        snprintf(why, len, "%s: %s", amp_status_name(s), amp_context_last_error(ctx));
        return false;
    }
    bool ok = true;
    for (int o = 0; ok && o < nout; o++) {
        const bool bits = (exact >> o) & 1u;
        const double e = bits ? (bits_equal(got[o], ref[o]) ? 0.0 : INFINITY) : rel_err(got[o], ref[o]);
        const double tol = bits ? 0.0 : tol_of(ref[o]->dtype);
        worst_note(ref[o]->dtype, e);
        if (e > tol) {
            const int64_t at = first_diff(got[o], ref[o]);
            snprintf(why, len, "output %d (%s): error %g > %g (first difference at %lld: %.9g vs CPU %.9g)", o,
                     amp_dtype_name(ref[o]->dtype), e, tol, (long long)at,
                     at >= 0 ? amp_ld(got[o]->dtype, got[o]->data, at) : 0.0,
                     at >= 0 ? amp_ld(ref[o]->dtype, ref[o]->data, at) : 0.0);
            ok = false;
        }
    }
    free_all(ref, nout);
    free_all(got, nout);
    return ok;
}

#define CHECK_FUSED(t, nin, in, nout, exact, ...)                                               \
    do {                                                                                        \
        char what_[200], why_[512];                                                             \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                             \
        bool ok_ = compare_node((t), (nin), (in), (nout), (exact), why_, sizeof why_);          \
        CT_CHECK(ok_, "%s: %s", what_, why_);                                                   \
    } while (0)

/* A refusal: supports() says no (run_both answers AMP_ERR_UNSUPPORTED) and prepare fails with
 * AMP_ERR_UNSUPPORTED and a message containing `says`. */
static bool refused(tnode *t, int nin, amp_tensor *const *in, int nout, const char *says, char *why, size_t len) {
    amp_tensor *ref[OT_MAX_IO], *got[OT_MAX_IO], *out[OT_MAX_IO];
    amp_status s = run_both(t, nin, in, nout, ref, got);
    if (s != AMP_ERR_UNSUPPORTED) {
        if (!s) free_all(ref, nout), free_all(got, nout);
        snprintf(why, len, "run_both gives %s", amp_status_name(s));
        return false;
    }
    if ((s = infer_outputs(t, nin, in, nout, out))) {
        snprintf(why, len, "inference: %s", amp_status_name(s));
        return false;
    }
    amp_kernel k = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = in, .out = out};
    const amp_cuda_op *e = entry_of(t->n.op);
    void *state = NULL;
    size_t ws = 0;
    s = e ? e->prepare(&cu, &k, &state, &ws) : AMP_ERR_INTERNAL;
    if (!s && e->release) e->release(&cu, state);
    free_all(out, nout);
    snprintf(why, len, "prepare gives %s: %s", amp_status_name(s), amp_context_last_error(ctx));
    return s == AMP_ERR_UNSUPPORTED && strstr(amp_context_last_error(ctx), says);
}

#define CHECK_REFUSED(t, nin, in, nout, says, what)                                      \
    do {                                                                                 \
        char why_[512];                                                                  \
        bool ok_ = refused((t), (nin), (in), (nout), (says), why_, sizeof why_);          \
        CT_CHECK(ok_, "%s: %s", (what), why_);                                           \
    } while (0)

/* t as a node of the fused domain (opset 1) */
static void fused_node(tnode *t, const char *op) {
    tn_init(t, op, false);
    t->n.domain = "ai.amprt.fused";
    t->n.op = amp_op_lookup(op, t->n.domain);
    t->opset = 1;
}

/* ---- AddLayerNorm ------------------------------------------------------------------------------- */

typedef struct aln_case {
    int xr;
    int64_t xd[4];
    int rr;
    int64_t rd[4];
    int64_t axis;
    int launches; /* 1: X or R has S's dims, the other repeats over S's rows; 2: Add, then LayerNorm */
} aln_case;

static const aln_case aln_cases[] = {
    {2, {1, 1}, 2, {1, 1}, -1, 1},         {2, {7, 7}, 2, {7, 7}, -1, 1},
    {2, {33, 64}, 2, {33, 64}, -1, 1},     {3, {2, 7, 65}, 2, {7, 65}, -1, 1},
    {3, {3, 5, 64}, 3, {1, 5, 64}, -1, 1}, {3, {2, 3, 33}, 3, {2, 3, 33}, 1, 1},
    {2, {7, 65}, 3, {2, 7, 65}, -1, 1},    {1, {7}, 1, {7}, 0, 1},
    {2, {0, 5}, 2, {0, 5}, -1, 0},         {3, {4, 1, 7}, 3, {4, 33, 7}, -2, 2},
    {3, {2, 3, 5}, 3, {2, 1, 5}, -1, 2},   {3, {3, 4, 5}, 1, {5}, -2, 2},
    {3, {3, 4, 5}, 2, {4, 5}, 0, 2},       {3, {3, 1, 5}, 2, {1, 5}, 1, 1},
};

#ifdef AMP_CUDA_EMULATED
static unsigned long long kernels_ran(void) {
    unsigned long long c[4];
    amp_emu_ran_counts(c);
    return c[0];
}
#else
static unsigned long long kernels_ran(void) { return 0; }
#endif

/* S's dims (the broadcast of X's and R's) into sd; its rank */
static int aln_s_dims(const aln_case *ac, int64_t *sd) {
    const int sr = ac->xr > ac->rr ? ac->xr : ac->rr;
    for (int i = 0; i < sr; i++) {
        const int xi = i - (sr - ac->xr), ri = i - (sr - ac->rr);
        const int64_t a = xi >= 0 ? ac->xd[xi] : 1, b = ri >= 0 ? ac->rd[ri] : 1;
        sd[i] = a == 1 ? b : a;
    }
    return sr;
}

/* Variants: 0 Y alone, no B; 1 Y and S with B; 2 all four outputs with B; 3 as 2 with f32 Scale
 * and B. Every output bit for bit against the CPU (the LayerNormalization kernel's double sums
 * round to the CPU's bits on these data), and the launches the emulator counts. */
static void aln_check(const aln_case *ac, size_t c, amp_dtype xt, int v, uint64_t seed) {
    const amp_dtype pt = v == 3 ? AMP_F32 : xt;
    int64_t sd[4];
    const int sr = aln_s_dims(ac, sd);
    const int ax = (int)(ac->axis < 0 ? ac->axis + sr : ac->axis);
    tnode t;
    fused_node(&t, "AddLayerNorm");
    tn_i(&t, "axis", ac->axis);
    tn_f(&t, "epsilon", c % 2 ? 1e-5f : 1e-3f);
    const bool has_b = v > 0;
    const int nout = v == 0 ? 1 : v == 1 ? 2 : 4;
    amp_tensor *in[4] = {rnd(xt, ac->xr, ac->xd, seed + 11, -3.0f, 5.0f),
                         rnd(xt, ac->rr, ac->rd, seed + 21, -2.0f, 2.0f),
                         rnd(pt, sr - ax, sd + ax, seed + 31, 0.5f, 1.5f),
                         has_b ? rnd(pt, sr - ax, sd + ax, seed + 41, -1.0f, 1.0f) : NULL};
    const unsigned long long k0 = kernels_ran();
    CHECK_FUSED(&t, has_b ? 4 : 3, in, nout, ~0u, "AddLayerNorm %s params %s case %zu variant %d", amp_dtype_name(xt),
                amp_dtype_name(pt), c, v);
#ifdef AMP_CUDA_EMULATED
    const unsigned long long ran = kernels_ran() - k0;
    CT_CHECK(ran == (unsigned long long)ac->launches, "AddLayerNorm %s case %zu variant %d: %llu launches, expected %d",
             amp_dtype_name(xt), c, v, ran, ac->launches);
#else
    (void)k0;
#endif
    free_all(in, 4);
}

static void t_add_layer_norm(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof aln_cases / sizeof aln_cases[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int v = 0; v < 4; v++) {
                /* the CPU kernel fails an empty S in the workspace (it asks for 0 bytes and
                 * then finds no workspace): empty X only with S an output */
                if (aln_cases[c].xd[0] == 0 && v == 0) continue;
                aln_check(&aln_cases[c], c, kfloats[d], v, c);
            }
    worst_print();
}

/* The one-launch path over widths 1, 7, 64, 65, 1000 and rows 1, 7, 33: R with X's dims, R
 * repeating over the rows ([1, rows, w] onto [3, rows, w], [w] onto [rows, w]), and X the
 * repeating one ([rows, w] onto R's [2, rows, w]: the kernel swaps them). */
static void t_add_layer_norm_widths(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    static const int64_t widths[] = {1, 7, 64, 65, 1000}, rows[] = {1, 7, 33};
    size_t c = 0;
    for (int wi = 0; wi < 5; wi++)
        for (int ri = 0; ri < 3; ri++)
            for (int m = 0; m < 4; m++, c++) {
                const int64_t w = widths[wi], n = rows[ri];
                aln_case ac = {.axis = -1, .launches = 1};
                if (m == 0) ac = (aln_case){2, {n, w}, 2, {n, w}, -1, 1};
                if (m == 1) ac = (aln_case){3, {3, n, w}, 3, {1, n, w}, -1, 1};
                if (m == 2) ac = (aln_case){2, {n, w}, 1, {w}, -1, 1};
                if (m == 3) ac = (aln_case){2, {n, w}, 3, {2, n, w}, -1, 1};
                for (int d = 0; d < 3; d++) aln_check(&ac, c, kfloats[d], (int)(c + (size_t)d) % 4, 100 + c);
            }
    worst_print();
}

/* Y, Mean and InvStdDev with S's output slot empty, through the family entry directly (the
 * harness fills every slot): one launch, no workspace, the same bits as the CPU with all four. */
static void t_add_layer_norm_no_s(void) {
    CT_CHECK(setup(), "setup");
    const int64_t xd[2] = {33, 65}, w = 65;
    for (int d = 0; d < 3; d++) {
        const amp_dtype xt = kfloats[d];
        tnode t;
        fused_node(&t, "AddLayerNorm");
        amp_tensor *in[4] = {rnd(xt, 2, xd, 1, -3.0f, 5.0f), rnd(xt, 1, &w, 2, -2.0f, 2.0f),
                             rnd(xt, 1, &w, 3, 0.5f, 1.5f), rnd(xt, 1, &w, 4, -1.0f, 1.0f)};
        amp_tensor *ref[4], *got[4];
        amp_status s = run_both(&t, 4, in, 4, ref, got);
        CT_CHECK(s == AMP_OK, "AddLayerNorm %s with S: %s", amp_dtype_name(xt), amp_status_name(s));
        if (s) {
            free_all(in, 4);
            continue;
        }
        amp_tensor dv[8], *din[4], *dout[4];
        bool ok = true;
        for (int i = 0; i < 8; i++) {
            const amp_tensor *h = i < 4 ? in[i] : ref[i - 4];
            dv[i] = *h;
            dv[i].owns = 0;
            dv[i].data = NULL;
            if (i == 5) continue; /* S: no slot */
            ok &= cudaMalloc(&dv[i].data, h->nbytes) == cudaSuccess;
            if (i < 4) ok &= ok && cudaMemcpy(dv[i].data, h->data, h->nbytes, cudaMemcpyHostToDevice) == cudaSuccess;
        }
        for (int i = 0; i < 4; i++) din[i] = &dv[i], dout[i] = i == 1 ? NULL : &dv[4 + i];
        amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 1, .nin = 4, .nout = 4, .in = din, .out = dout};
        const amp_cuda_op *e = entry_of(AMP_OP_ADD_LAYER_NORM);
        void *state = NULL;
        size_t ws = 1;
        s = ok ? AMP_OK : AMP_ERR_BACKEND;
        if (!s) s = e && e->supports(&cu, &k) ? e->prepare(&cu, &k, &state, &ws) : AMP_ERR_UNSUPPORTED;
        const unsigned long long k0 = kernels_ran();
        if (!s) s = e->run(&cu, &k, state);
        if (!s && cudaStreamSynchronize(cu.stream) != cudaSuccess) s = AMP_ERR_BACKEND;
        const unsigned long long ran = kernels_ran() - k0;
        int bad = -1;
        for (int o = 0; o < 4; o++) {
            if (o == 1) continue;
            if (!s && cudaMemcpy(got[o]->data, dv[4 + o].data, got[o]->nbytes, cudaMemcpyDeviceToHost) != cudaSuccess)
                s = AMP_ERR_BACKEND;
            if (!s && bad < 0 && !bits_equal(got[o], ref[o])) bad = o;
        }
        if (e && e->release) e->release(&cu, state);
        for (int i = 0; i < 8; i++) cudaFree(dv[i].data);
        CT_CHECK(s == AMP_OK, "AddLayerNorm %s without S: %s: %s", amp_dtype_name(xt), amp_status_name(s),
                 amp_context_last_error(ctx));
        CT_CHECK(ws == 0 && bad < 0, "AddLayerNorm %s without S: workspace %zu, output %d differs", amp_dtype_name(xt),
                 ws, bad);
#ifdef AMP_CUDA_EMULATED
        CT_CHECK(ran == 1, "AddLayerNorm %s without S: %llu launches", amp_dtype_name(xt), ran);
#else
        (void)ran;
#endif
        free_all(in, 4);
        free_all(ref, 4);
        free_all(got, 4);
    }
}

/* ---- CastMulti ---------------------------------------------------------------------------------- */

/* n inputs of every source dtype, sizes 1 to 65 and one empty pair (n > 2), values past f16's
 * range too */
static void cm_inputs(int n, amp_tensor **in) {
    for (int i = 0; i < n; i++) {
        int64_t dims[2] = {i % 4 + 1, i == 2 ? 0 : (int64_t)(i * 13 % 65 + 1)};
        in[i] = rnd(kfloats[i % 3], 2, dims, 100 + (uint64_t)i, -1e5f, 1e5f);
    }
}

static void cm_node(tnode *t, int to, int rtz) {
    fused_node(t, "CastMulti");
    tn_i(t, "to", (int64_t)kfloats[to] /* amp_dtype is the ONNX code */);
    if (rtz) t->n.flags |= AMP_NODE_CAST_RTZ;
}

/* n up to the harness's OT_MAX_IO pairs: one launch */
static void t_cast_multi(void) {
    CT_CHECK(setup(), "setup");
    static const int counts[] = {1, 3, OT_MAX_IO};
    for (int ci = 0; ci < 3; ci++)
        for (int to = 0; to < 3; to++)
            for (int rtz = 0; rtz < 2; rtz++) {
                const int n = counts[ci];
                tnode t;
                cm_node(&t, to, rtz);
                amp_tensor *in[OT_MAX_IO];
                cm_inputs(n, in);
                CHECK_FUSED(&t, n, in, n, ~0u, "CastMulti n %d to %s rtz %d", n, amp_dtype_name(kfloats[to]), rtz);
                free_all(in, n);
            }
}

/* 40 pairs, past the harness's limit and the kernel's AMP_K_CAST_PAIRS (two launches): the
 * CPU backend and the family entry run here directly, every output compared bit for bit. */
#define CM_MANY 40
static void t_cast_multi_many(void) {
    CT_CHECK(setup(), "setup");
    for (int to = 0; to < 3; to++)
        for (int rtz = 0; rtz < 2; rtz++) {
            tnode t;
            cm_node(&t, to, rtz);
            amp_tensor *in[CM_MANY], *ref[CM_MANY], *got[CM_MANY], dvin[CM_MANY], dvout[CM_MANY];
            amp_tensor *din[CM_MANY], *dout[CM_MANY];
            void *base[CM_MANY];
            static int ids[CM_MANY];
            cm_inputs(CM_MANY, in);
            bool ok = true;
            for (int i = 0; i < CM_MANY; i++) {
                ids[i] = i;
                ref[i] = tens(kfloats[to], in[i]->rank, in[i]->dims);
                got[i] = tens(kfloats[to], in[i]->rank, in[i]->dims);
                dvin[i] = *in[i];
                dvout[i] = *ref[i];
                dvin[i].owns = dvout[i].owns = 0;
                dvin[i].data = dvout[i].data = base[i] = NULL;
                /* every third pair's input one element into its buffer: too little alignment for
                 * four at once, the scalar loop */
                const size_t shift = i % 3 == 1 ? amp_dtype_size(in[i]->dtype) : 0;
                if (in[i]->nbytes) {
                    ok &= cudaMalloc(&base[i], in[i]->nbytes + shift) == cudaSuccess;
                    dvin[i].data = ok ? (char *)base[i] + shift : NULL;
                    ok &= ok && cudaMemcpy(dvin[i].data, in[i]->data, in[i]->nbytes, cudaMemcpyHostToDevice) == cudaSuccess &&
                          cudaMalloc(&dvout[i].data, ref[i]->nbytes) == cudaSuccess;
                }
                din[i] = &dvin[i];
                dout[i] = &dvout[i];
            }
            t.n.inputs = t.n.outputs = ids;
            t.n.n_inputs = t.n.n_outputs = CM_MANY;
            amp_kernel kc = {.ctx = ctx, .n = &t.n, .opset = 1, .nin = CM_MANY, .nout = CM_MANY, .in = in, .out = ref,
                             .threads = 1};
            amp_kernel kg = {.ctx = ctx, .n = &t.n, .opset = 1, .nin = CM_MANY, .nout = CM_MANY, .in = din, .out = dout};
            amp_status s = ok ? amp_backend_run_once(cpu, &kc) : AMP_ERR_BACKEND;
            const amp_cuda_op *e = entry_of(AMP_OP_CAST_MULTI);
            void *state = NULL;
            size_t ws = 0;
            if (!s) s = e && e->supports(&cu, &kg) ? e->prepare(&cu, &kg, &state, &ws) : AMP_ERR_UNSUPPORTED;
            if (!s) s = e->run(&cu, &kg, state);
            if (!s && cudaStreamSynchronize(cu.stream) != cudaSuccess) s = AMP_ERR_BACKEND;
            int bad = -1;
            for (int i = 0; i < CM_MANY; i++) {
                if (!s && got[i]->nbytes &&
                    cudaMemcpy(got[i]->data, dvout[i].data, got[i]->nbytes, cudaMemcpyDeviceToHost) != cudaSuccess)
                    s = AMP_ERR_BACKEND;
                if (!s && bad < 0 && !bits_equal(got[i], ref[i])) bad = i;
                cudaFree(base[i]);
                cudaFree(dvout[i].data);
            }
            if (e && e->release) e->release(&cu, state);
            free_all(in, CM_MANY);
            free_all(ref, CM_MANY);
            free_all(got, CM_MANY);
            CT_CHECK(s == AMP_OK, "CastMulti 40 to %s: %s: %s", amp_dtype_name(kfloats[to]), amp_status_name(s),
                     amp_context_last_error(ctx));
            CT_CHECK(ws == 0 && bad < 0, "CastMulti 40 to %s rtz %d: pair %d differs", amp_dtype_name(kfloats[to]), rtz,
                     bad);
        }
}

#ifdef AMP_CUDA_EMULATED
/* The launcher checks the pointers the emulator cannot see inside the struct: a host buffer is
 * refused when the launch is enqueued. */
static void t_cast_multi_pointers(void) {
    CT_CHECK(setup(), "setup");
    float host[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    void *dev = NULL;
    CT_CHECK(cudaMalloc(&dev, sizeof host) == cudaSuccess, "cudaMalloc");
    amp_k_cast_multi p;
    memset(&p, 0, sizeof p);
    p.pairs = 2;
    p.x[0] = dev, p.y[0] = dev, p.n[0] = 4, p.src[0] = AMP_K_F32, p.dst[0] = AMP_K_F16;
    p.x[1] = host, p.y[1] = dev, p.n[1] = 8, p.src[1] = AMP_K_F32, p.dst[1] = AMP_K_F16;
    cudaError_t e = amp_k_cast_multi_run(cu.stream, &p);
    const bool said = strstr(amp_k_launch_detail(), "pair 1") != NULL;
    p.x[1] = dev, p.n[1] = 9; /* past the end of the buffer's 16 bytes of f16 */
    cudaError_t e2 = amp_k_cast_multi_run(cu.stream, &p);
    cudaStreamSynchronize(cu.stream);
    cudaFree(dev);
    CT_CHECK(e == cudaErrorInvalidDevicePointer && said, "a host input is refused: %s (%s)", cudaGetErrorString(e),
             amp_k_launch_detail());
    CT_CHECK(e2 == cudaErrorInvalidDevicePointer, "a range past the buffer is refused: %s", cudaGetErrorString(e2));
}
#endif

/* ---- Attention ----------------------------------------------------------------------------------- */

typedef struct att_case {
    int nlead;
    int64_t lead[2];
    int64_t sq, sk, d, dv;
    int mrank;          /* 0: no mask */
    int64_t md[4];      /* the mask's dims; -1 stands for sq, -2 for sk */
} att_case;

static const att_case att_cases[] = {
    {0, {0}, 1, 1, 1, 1, 0, {0}},
    {1, {2}, 7, 7, 7, 7, 3, {2, -1, -2}},
    {2, {2, 3}, 33, 65, 64, 7, 4, {1, 1, -1, -2}},
    {0, {0}, 33, 64, 65, 1, 1, {-2}},
    {2, {2, 3}, 7, 33, 1, 64, 4, {2, 1, 1, -2}},
    {1, {3}, 65, 7, 33, 65, 0, {0}},
    {1, {0}, 7, 7, 7, 7, 0, {0}},
    {1, {2}, 7, 5, 0, 7, 2, {1, -2}}, /* depth 0: S = 0, uniform rows */
    {1, {2}, 7, 0, 5, 7, 0, {0}},     /* no keys: O = 0 (compared bit for bit) */
};

static void t_attention(void) {
    CT_CHECK(setup_lt(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof att_cases / sizeof att_cases[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int v = 0; v < 4; v++) {
                const att_case *ac = &att_cases[c];
                const amp_dtype t16 = kfloats[d];
                const bool tk = v & 1, with_p = v & 2;
                const int r = ac->nlead + 2;
                int64_t qd[4], kdm[4], vd[4], md[4];
                for (int i = 0; i < ac->nlead; i++) qd[i] = kdm[i] = vd[i] = ac->lead[i];
                qd[r - 2] = ac->sq, qd[r - 1] = ac->d;
                kdm[r - 2] = tk ? ac->d : ac->sk, kdm[r - 1] = tk ? ac->sk : ac->d;
                vd[r - 2] = ac->sk, vd[r - 1] = ac->dv;
                for (int i = 0; i < ac->mrank; i++) md[i] = ac->md[i] == -1 ? ac->sq : ac->md[i] == -2 ? ac->sk : ac->md[i];
                tnode t;
                fused_node(&t, "Attention");
                tn_f(&t, "scale", 1.0f / sqrtf((float)ac->d));
                tn_i(&t, "trans_k", tk);
                amp_tensor *in[4] = {rnd(t16, r, qd, 51 + c, -2.0f, 2.0f), rnd(t16, r, kdm, 61 + c, -2.0f, 2.0f),
                                     rnd(t16, r, vd, 71 + c, -1.0f, 1.0f),
                                     ac->mrank ? rnd(t16, ac->mrank, md, 81 + c, -3.0f, 1.0f) : NULL};
                CHECK_FUSED(&t, ac->mrank ? 4 : 3, in, with_p ? 2 : 1, ac->sk ? 0u : 3u, "Attention %s case %zu trans_k %d P %d",
                            amp_dtype_name(t16), c, tk, with_p);
                free_all(in, 4);
            }
    worst_print();
}

/* a causal mask of -inf above the diagonal, and one row of -inf everywhere (NaN out, as the
 * CPU's Softmax gives) */
static void t_attention_causal(void) {
    CT_CHECK(setup_lt(), "setup");
    for (int d = 0; d < 3; d++) {
        const amp_dtype t16 = kfloats[d];
        int64_t qd[3] = {2, 9, 16}, vd[3] = {2, 9, 5}, md[2] = {9, 9};
        tnode t;
        fused_node(&t, "Attention");
        tn_f(&t, "scale", 0.25f);
        amp_tensor *in[4] = {rnd(t16, 3, qd, 5, -2.0f, 2.0f), rnd(t16, 3, qd, 6, -2.0f, 2.0f),
                             rnd(t16, 3, vd, 7, -1.0f, 1.0f), rnd(t16, 2, md, 8, -1.0f, 1.0f)};
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 9; j++)
                if (j > i || i == 4) amp_st(t16, in[3]->data, i * 9 + j, -INFINITY);
        CHECK_FUSED(&t, 4, in, 2, 0u, "Attention causal %s", amp_dtype_name(t16));
        free_all(in, 4);
    }
}

/* ---- refusals --------------------------------------------------------------------------------------- */

static void t_refused(void) {
    CT_CHECK(setup_lt(), "setup");
    int64_t dims[2] = {3, 5}, five = 5;
    /* AddLayerNorm in f64 */
    tnode t;
    fused_node(&t, "AddLayerNorm");
    amp_tensor *in[4] = {rnd(AMP_F64, 2, dims, 1, -1, 1), rnd(AMP_F64, 2, dims, 2, -1, 1), rnd(AMP_F64, 1, &five, 3, 1, 2),
                         NULL};
    CHECK_REFUSED(&t, 3, in, 1, "runs f32, f16 and bf16", "AddLayerNorm f64");
    free_all(in, 4);
    /* CastMulti to int32 */
    fused_node(&t, "CastMulti");
    tn_i(&t, "to", (int64_t)AMP_I32);
    in[0] = rnd(AMP_F32, 2, dims, 4, -9, 9);
    in[1] = rnd(AMP_F16, 1, &five, 5, -9, 9);
    CHECK_REFUSED(&t, 2, in, 2, "casts only between f32, f16 and bf16", "CastMulti to int32");
    free_all(in, 2);
    /* Attention in f64 */
    fused_node(&t, "Attention");
    for (int i = 0; i < 3; i++) in[i] = rnd(AMP_F64, 2, dims, 6 + (uint64_t)i, -1, 1);
    int64_t kd5[2] = {5, 5};
    amp_tensor_destroy(in[1]);
    in[1] = rnd(AMP_F64, 2, kd5, 9, -1, 1);
    amp_tensor_destroy(in[2]);
    in[2] = rnd(AMP_F64, 2, kd5, 10, -1, 1);
    CHECK_REFUSED(&t, 3, in, 1, "runs f32, f16 and bf16", "Attention f64");
    free_all(in, 3);
}

static const ct_case cases[] = {
    {"add_layer_norm", t_add_layer_norm},
    {"add_layer_norm_widths", t_add_layer_norm_widths},
    {"add_layer_norm_no_s", t_add_layer_norm_no_s},
    {"cast_multi", t_cast_multi},
    {"cast_multi_many", t_cast_multi_many},
#ifdef AMP_CUDA_EMULATED
    {"cast_multi_pointers", t_cast_multi_pointers},
#endif
    {"attention", t_attention},
    {"attention_causal", t_attention_causal},
    {"refused", t_refused},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }
