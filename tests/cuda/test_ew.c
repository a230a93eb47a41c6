/* The "more elementwise ops" CUDA family (backends/cuda/op_ew.c, k_ew.cu) and the unary math
 * ops added beside the activations (op_kernels.c, k_unary.cu) on the emulator against the CPU
 * backend: every op through its family entry (supports, prepare, run, release) on device memory,
 * the same node on the CPU (tests/cuda/cuda_optest.h), f32, f16 and bf16, odd and empty shapes,
 * broadcasting, the attribute variants the models use, and refusals.
 *
 * Bit for bit where the device computes the CPU's formula with operations a GPU rounds the same
 * way (IEEE add, multiply, divide, sqrt, comparisons, moves): Neg, Abs, Sqrt, Reciprocal, Clip,
 * ClipGrad, Where, Sum, Mean, Min, Max, Pow's x^2, ConstantOfShape. The rest call expf, logf,
 * erff, powf or may be contracted into FMAs by nvcc, so they are compared by relative L2 error
 * with the thresholds of a real GPU (f32 1e-6, f16 1e-3, bf16 8e-3; see test_kernels.c); on the
 * emulator most of them agree exactly. */
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels_ew.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_optest.h"

/* random bools (about half true), for Where's condition */
static amp_tensor *bools(int rank, const int64_t *dims, uint64_t seed) {
    amp_tensor *t = tens(AMP_BOOL, rank, dims);
    uint64_t s = seed * 2654435761u + 3;
    for (int64_t i = 0; t && i < t->numel; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ((uint8_t *)t->data)[i] = (uint8_t)((s >> 40) & 1u);
    }
    return t;
}

/* a bool scalar (Dropout's training_mode) */
static amp_tensor *flag(bool v) {
    amp_tensor *t = tens(AMP_BOOL, 0, NULL);
    if (t) ((uint8_t *)t->data)[0] = v;
    return t;
}

/* A refusal: the family says no, and prepare's message says why (checked through prepare on
 * plan-time views, as the planner calls it). */
static bool refused_with_reason(tnode *t, int nin, amp_tensor *const *in, const char *needle) {
    amp_tensor *ref[2], *got[2];
    amp_status s = run_both(t, nin, in, 1, ref, got);
    if (s == AMP_OK) {
        free_all(ref, 1);
        free_all(got, 1);
        return false;
    }
    if (s != AMP_ERR_UNSUPPORTED) return false;
    /* prepare names the reason */
    const amp_cuda_op *e = entry_of(t->n.op);
    if (!e) return false;
    amp_kernel k = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = 1, .in = in, .out = got};
    amp_tensor *y = tens(AMP_F32, 1, (const int64_t[]){1});
    got[0] = y;
    void *state = NULL;
    size_t ws = 0;
    s = e->prepare(&cu, &k, &state, &ws);
    amp_tensor_destroy(y);
    if (e->release) e->release(&cu, state);
    const char *msg = amp_context_last_error(ctx);
    return s == AMP_ERR_UNSUPPORTED && strstr(msg, "on CUDA") && strstr(msg, needle);
}

/* Runs t's family entry alone on device copies of in[] (up to 32 inputs) into out[] (host
 * tensors the caller shaped). At plan time an input carries its host value only where known[i]
 * (NULL: none does), so values must be read on the device. capture: the run is captured into a
 * CUDA graph, which is launched twice (run enqueues only, and a replay gives the same bits).
 * *wsb: the workspace prepare asked for. */
#define RD_MAX 32

/* the node's input and output value ids (0.. in order) */
static void bind_ids(tnode *t, int nin, int nout) {
    static int ids[RD_MAX];
    for (int i = 0; i < RD_MAX; i++) ids[i] = i;
    t->n.inputs = ids;
    t->n.n_inputs = nin;
    t->n.outputs = ids + nin;
    t->n.n_outputs = nout;
}

static amp_status run_device(tnode *t, int nin, amp_tensor *const *in, const bool *known, int nout, amp_tensor **out,
                             bool capture, size_t *wsb) {
    amp_tensor dv[RD_MAX], pv[RD_MAX], *din[RD_MAX], *pin[RD_MAX];
    const int nt = nin + nout;
    amp_status s = nt <= RD_MAX ? AMP_OK : AMP_ERR_INVALID_ARG;
    int made = 0;
    for (int i = 0; !s && i < nt; i++, made++) {
        const amp_tensor *src = i < nin ? in[i] : out[i - nin];
        din[i] = pin[i] = NULL;
        if (!src) continue;
        dv[i] = *src;
        dv[i].owns = 0;
        dv[i].data = NULL;
        if (src->nbytes && cudaMalloc(&dv[i].data, src->nbytes) != cudaSuccess) s = AMP_ERR_BACKEND;
        if (!s && i < nin && src->nbytes) cudaMemcpy(dv[i].data, src->data, src->nbytes, cudaMemcpyHostToDevice);
        pv[i] = dv[i];
        pv[i].data = i < nin && known && known[i] ? src->data : NULL;
        din[i] = &dv[i];
        pin[i] = &pv[i];
    }
    bind_ids(t, nin, nout);
    const amp_cuda_op *e = entry_of(t->n.op);
    amp_kernel kp = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = pin, .out = pin + nin};
    amp_kernel kd = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = din, .out = din + nin};
    void *state = NULL, *ws = NULL;
    *wsb = 0;
    if (!s) s = e && e->supports(&cu, &kp) ? e->prepare(&cu, &kp, &state, wsb) : AMP_ERR_UNSUPPORTED;
    if (!s && *wsb && cudaMalloc(&ws, *wsb) != cudaSuccess) s = AMP_ERR_BACKEND;
    kd.ws = ws;
    kd.ws_bytes = *wsb;
    if (!s && capture) {
        cudaGraph_t graph = NULL;
        cudaGraphExec_t exec = NULL;
        if (cudaStreamBeginCapture(cu.stream, cudaStreamCaptureModeGlobal) != cudaSuccess) s = AMP_ERR_BACKEND;
        if (!s) {
            amp_status rs = e->run(&cu, &kd, state);
            if (cudaStreamEndCapture(cu.stream, &graph) != cudaSuccess || rs) s = rs ? rs : AMP_ERR_BACKEND;
        }
        if (!s && cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) s = AMP_ERR_BACKEND;
        for (int r = 0; !s && r < 2; r++)
            if (cudaGraphLaunch(exec, cu.stream) != cudaSuccess) s = AMP_ERR_BACKEND;
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
    } else if (!s) {
        s = e->run(&cu, &kd, state);
    }
    if (!s && cudaStreamSynchronize(cu.stream) != cudaSuccess) s = AMP_ERR_BACKEND;
    for (int i = 0; !s && i < nout; i++)
        if (out[i]->nbytes && cudaMemcpy(out[i]->data, dv[nin + i].data, out[i]->nbytes, cudaMemcpyDeviceToHost))
            s = AMP_ERR_BACKEND;
    if (e && e->release) e->release(&cu, state);
    cudaFree(ws);
    for (int i = 0; i < made; i++)
        if (din[i]) cudaFree(dv[i].data);
    return s;
}

/* The CPU's outputs of t (amp_backend_run_once; any input count) into ref[] (shaped by the caller). */
static amp_status run_cpu(tnode *t, int nin, amp_tensor *const *in, int nout, amp_tensor **ref) {
    bind_ids(t, nin, nout);
    amp_kernel k = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = in, .out = ref,
                    .threads = 1};
    return amp_backend_run_once(cpu, &k);
}

static bool same_bits(const amp_tensor *a, const amp_tensor *b) {
    return a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
}

/* ---- unary math and UnaryGrad ---------------------------------------------------------------------- */

typedef struct math_case {
    const char *op;
    float lo, hi;  /* inputs (X) */
    bool exact;    /* forward bit for bit */
    int grad;      /* 0: no UnaryGrad; 1: V = X; 2: V = Y */
    float ylo, yhi; /* Y's range when V = Y */
} math_case;

static const math_case maths[] = {
    {"Erf", -3, 3, false, 1, 0, 0},        {"Sqrt", 0.01f, 50, true, 2, 0.1f, 7},
    {"Neg", -5, 5, true, 0, 0, 0},         {"Exp", -8, 8, false, 2, 0.001f, 3000},
    {"Log", 0.01f, 100, false, 1, 0, 0},   {"Abs", -5, 5, true, 1, 0, 0},
    {"Reciprocal", 0.1f, 9, true, 2, 0.1f, 9}, {"Softplus", -20, 20, false, 1, 0, 0},
    {"Elu", -6, 4, false, 1, 0, 0},        {"HardSwish", -5, 5, false, 1, 0, 0},
    {"HardSigmoid", -5, 5, false, 1, 0, 0},
};

static void math_attrs(tnode *t, const char *op) {
    if (strcmp(op, "Elu") == 0) tn_f(t, "alpha", 0.7f);
    if (strcmp(op, "HardSigmoid") == 0) { /* PyTorch's hardsigmoid, not ONNX's defaults */
        tn_f(t, "alpha", 1.0f / 6.0f);
        tn_f(t, "beta", 0.5f);
    }
}

static void t_unary_math(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const int64_t shapes[][4] = {{1, 1, 1, 1}, {1, 7, 1, 1}, {3, 11, 1, 1}, {2, 5, 3, 33}};
    for (size_t a = 0; a < sizeof maths / sizeof maths[0]; a++)
        for (int d = 0; d < 3; d++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, maths[a].op, false);
                math_attrs(&t, maths[a].op);
                amp_tensor *x = rnd(kfloats[d], 1 + z, shapes[z], 100 + (uint64_t)z, maths[a].lo, maths[a].hi);
                if (!maths[a].exact || strcmp(maths[a].op, "Sqrt") != 0) {
                    if (x->numel > 2) amp_st(kfloats[d], x->data, 2, NAN); /* NaN passes through */
                }
                CHECK_NODE(&t, 1, &x, 1, maths[a].exact, maths[a].exact ? 0.0 : tol_of(kfloats[d]), "%s %s rank %d",
                           maths[a].op, amp_dtype_name(kfloats[d]), 1 + z);
                amp_tensor_destroy(x);
            }
    worst_print();
    /* empty */
    const int64_t d0[2] = {0, 5};
    amp_tensor *x = rnd(AMP_BF16, 2, d0, 1, -1, 1);
    tnode t;
    tn_init(&t, "Erf", false);
    CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Erf of an empty tensor");
    amp_tensor_destroy(x);
}

static void t_unary_math_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const int64_t shapes[][2] = {{1, 1}, {7, 1}, {33, 1}, {10, 101}};
    for (size_t a = 0; a < sizeof maths / sizeof maths[0]; a++) {
        if (!maths[a].grad) continue;
        for (int d = 0; d < 3; d++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, "UnaryGrad", true);
                tn_s(&t, "op", maths[a].op);
                math_attrs(&t, maths[a].op);
                const bool y = maths[a].grad == 2;
                amp_tensor *in[2] = {rnd(kfloats[d], 2, shapes[z], 200 + (uint64_t)z, -2.0f, 2.0f),
                                     rnd(kfloats[d], 2, shapes[z], 300 + (uint64_t)z, y ? maths[a].ylo : maths[a].lo,
                                         y ? maths[a].yhi : maths[a].hi)};
                /* the derivative's branch points: Abs at 0, Elu at 0, HardSwish at +-3 */
                if (in[1]->numel > 4 && maths[a].lo < 0) {
                    amp_st(kfloats[d], in[1]->data, 3, 0.0);
                    amp_st(kfloats[d], in[1]->data, 4, -3.0);
                }
                CHECK_NODE(&t, 2, in, 1, false, tol_of(kfloats[d]), "UnaryGrad %s %s %lldx%lld", maths[a].op,
                           amp_dtype_name(kfloats[d]), (long long)shapes[z][0], (long long)shapes[z][1]);
                free_all(in, 2);
            }
    }
    worst_print();
}

static void t_unary_math_refused(void) {
    CT_CHECK(setup(), "setup");
    const int64_t d1 = 5;
    /* Neg's gradient is a Neg node; UnaryGrad of Neg exists nowhere */
    tnode t;
    tn_init(&t, "UnaryGrad", true);
    tn_s(&t, "op", "Neg");
    amp_tensor *in[2] = {rnd(AMP_F32, 1, &d1, 1, -1, 1), rnd(AMP_F32, 1, &d1, 2, -1, 1)};
    amp_tensor *ref[1], *got[1];
    amp_status s = run_both(&t, 2, in, 1, ref, got);
    free_all(in, 2);
    if (s == AMP_OK) {
        free_all(ref, 1);
        free_all(got, 1);
    }
    CT_CHECK(s != AMP_OK, "UnaryGrad of Neg refused");
    /* integer Neg runs on the CPU only */
    tn_init(&t, "Neg", false);
    amp_tensor *xi = tens(AMP_I32, 1, &d1);
    for (int i = 0; i < 5; i++) ((int32_t *)xi->data)[i] = i - 2;
    s = run_both(&t, 1, &xi, 1, ref, got);
    amp_tensor_destroy(xi);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "Neg of int32 refused, got %s", amp_status_name(s));
}

/* ---- Pow and its BinaryGrad ------------------------------------------------------------------------ */

typedef struct bshape {
    int ar, br;
    int64_t a[4], b[4];
} bshape;

static const bshape pow_shapes[] = {
    {2, 2, {7, 9}, {7, 9}},             /* flat */
    {3, 0, {2, 3, 33}, {0}},            /* scalar exponent */
    {3, 1, {2, 3, 33}, {33}},           /* a row */
    {4, 4, {2, 3, 1, 5}, {1, 3, 4, 1}}, /* two-sided */
    {1, 1, {1}, {1}},
    {2, 2, {0, 3}, {1, 3}},             /* empty */
};

static void t_pow(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t z = 0; z < sizeof pow_shapes / sizeof pow_shapes[0]; z++)
        for (int d = 0; d < 3; d++)
            for (int e = 0; e < 3; e++) { /* exponent: random, 2 (the square), 3 */
                const bshape *g = &pow_shapes[z];
                tnode t;
                tn_init(&t, "Pow", false);
                amp_tensor *in[2] = {rnd(kfloats[d], g->ar, g->a, 10 + z, 0.1f, 3.0f),
                                     rnd(kfloats[d], g->br, g->b, 20 + z, -2.5f, 2.5f)};
                if (e > 0)
                    for (int64_t i = 0; i < in[1]->numel; i++) amp_st(kfloats[d], in[1]->data, i, e == 1 ? 2.0 : 3.0);
                /* integer exponents of negative bases are defined */
                if (e > 0 && in[0]->numel > 1) amp_st(kfloats[d], in[0]->data, 1, -1.75);
                const bool exact = e == 1 && in[1]->numel == 1; /* the CPU's x * x */
                CHECK_NODE(&t, 2, in, 1, exact, exact ? 0.0 : tol_of(kfloats[d]), "Pow %s shape %zu exponent %d",
                           amp_dtype_name(kfloats[d]), z, e);
                free_all(in, 2);
            }
    /* an exponent of another type (opset 12): in double, rounded once */
    const int64_t ad[3] = {3, 5, 7};
    const amp_dtype et[] = {AMP_F32, AMP_F16, AMP_I32, AMP_I64};
    for (int d = 0; d < 3; d++)
        for (int e = 0; e < 4; e++) {
            if (et[e] == kfloats[d]) continue;
            tnode t;
            tn_init(&t, "Pow", false);
            amp_tensor *in[2] = {rnd(kfloats[d], 3, ad, 7, -3.0f, 3.0f), NULL};
            in[1] = et[e] == AMP_I32 || et[e] == AMP_I64 ? labels(et[e], 1, &ad[2], 5, 8)
                                                          : rnd(et[e], 1, &ad[2], 8, -2.0f, 2.0f);
            CHECK_NODE(&t, 2, in, 1, false, tol_of(kfloats[d]), "Pow %s ^ %s", amp_dtype_name(kfloats[d]),
                       amp_dtype_name(et[e]));
            free_all(in, 2);
        }
    /* opset 6's limited broadcast: B at `axis` (also negative) of A */
    const int64_t la[3] = {2, 3, 4}, lb = 3;
    const int64_t axes[2] = {1, -2};
    for (int d = 0; d < 3; d++)
        for (int x = 0; x < 2; x++) {
            tnode t;
            tn_init(&t, "Pow", false);
            t.opset = 6;
            tn_i(&t, "broadcast", 1);
            tn_i(&t, "axis", axes[x]);
            amp_tensor *in[2] = {rnd(kfloats[d], 3, la, 9, 0.2f, 3.0f), rnd(kfloats[d], 1, &lb, 10, -2.0f, 2.0f)};
            CHECK_NODE(&t, 2, in, 1, false, tol_of(kfloats[d]), "Pow opset 6 axis %lld %s", (long long)axes[x],
                       amp_dtype_name(kfloats[d]));
            tnode gt;
            tn_init(&gt, "BinaryGrad", true);
            tn_s(&gt, "op", "Pow");
            tn_i(&gt, "fwd_opset", 6);
            tn_i(&gt, "broadcast", 1);
            tn_i(&gt, "axis", axes[x]);
            for (int wrt = 0; wrt < 2; wrt++) {
                gt.n.n_attrs = 4;
                tn_i(&gt, "wrt", wrt);
                amp_tensor *gin[3] = {rnd(kfloats[d], 3, la, 11, -1, 1), in[0], in[1]};
                CHECK_NODE(&gt, 3, gin, 1, false, tol_of(kfloats[d]), "BinaryGrad Pow opset 6 axis %lld wrt %d %s",
                           (long long)axes[x], wrt, amp_dtype_name(kfloats[d]));
                amp_tensor_destroy(gin[0]);
            }
            free_all(in, 2);
        }
    worst_print();
}

static void t_binary_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const char *ops[] = {"Pow", "PRelu"};
    for (int o = 0; o < 2; o++)
        for (int wrt = 0; wrt < 2; wrt++)
            for (size_t z = 0; z < sizeof pow_shapes / sizeof pow_shapes[0]; z++)
                for (int d = 0; d < 3; d++) {
                    const bshape *g = &pow_shapes[z];
                    if (o == 1 && z == 3) continue; /* PRelu's slope broadcasts to X, never X to the slope */
                    int64_t yd[4];
                    for (int i = 0; i < g->ar; i++) {
                        const int bi = i - (g->ar - g->br);
                        yd[i] = bi >= 0 && g->b[bi] != 1 ? g->b[bi] : g->a[i];
                    }
                    tnode t;
                    tn_init(&t, "BinaryGrad", true);
                    tn_s(&t, "op", ops[o]);
                    tn_i(&t, "wrt", wrt);
                    tn_i(&t, "fwd_opset", 17);
                    amp_tensor *in[3] = {rnd(kfloats[d], g->ar, yd, 30 + z, -1.0f, 1.0f),
                                         rnd(kfloats[d], g->ar, g->a, 40 + z, o ? -2.0f : 0.2f, 2.0f),
                                         rnd(kfloats[d], g->br, g->b, 50 + z, o ? 0.05f : -2.0f, o ? 0.5f : 2.0f)};
                    CHECK_NODE(&t, 3, in, 1, false, tol_of(kfloats[d]), "BinaryGrad %s wrt %d %s shape %zu", ops[o],
                               wrt, amp_dtype_name(kfloats[d]), z);
                    free_all(in, 3);
                }
    worst_print();
    /* the exponent in f32 under an f16 base (autocast keeps constants in f32) */
    const int64_t ad[2] = {5, 7}, one = 1;
    tnode t;
    tn_init(&t, "BinaryGrad", true);
    tn_s(&t, "op", "Pow");
    tn_i(&t, "wrt", 0);
    amp_tensor *in[3] = {rnd(AMP_F16, 2, ad, 1, -1, 1), rnd(AMP_F16, 2, ad, 2, 0.2f, 2), rnd(AMP_F32, 1, &one, 3, 2, 2.5f)};
    CHECK_NODE(&t, 3, in, 1, false, tol_of(AMP_F16), "BinaryGrad Pow f16 base, f32 exponent");
    free_all(in, 3);
    /* integer exponents: in double, as the CPU */
    for (int dd = 0; dd < 3; dd++)
        for (int it = 0; it < 2; it++) {
            amp_tensor *ii[3] = {rnd(kfloats[dd], 2, ad, 4, -1, 1), rnd(kfloats[dd], 2, ad, 5, -2, 2),
                                 labels(it ? AMP_I64 : AMP_I32, 1, &ad[1], 4, 6)};
            CHECK_NODE(&t, 3, ii, 1, false, tol_of(kfloats[dd]), "BinaryGrad Pow %s base, %s exponent",
                       amp_dtype_name(kfloats[dd]), it ? "int64" : "int32");
            free_all(ii, 3);
        }
}

/* ---- Clip, ClipGrad -------------------------------------------------------------------------------- */

static amp_tensor *scalar_of(amp_dtype dt, double v) {
    amp_tensor *t = tens(dt, 0, NULL);
    if (t) amp_st(dt, t->data, 0, v);
    return t;
}

/* x with the bounds themselves, NaN and values beyond */
static void clip_specials(amp_tensor *x, double lo, double hi) {
    const double v[] = {lo, hi, NAN, -INFINITY, INFINITY, lo - 1, hi + 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0] && (int64_t)i < x->numel; i++) amp_st(x->dtype, x->data, (int64_t)i, v[i]);
}

static void t_clip(void) {
    CT_CHECK(setup(), "setup");
    const int64_t shapes[][3] = {{1, 1, 1}, {7, 1, 1}, {4, 33, 1}, {2, 3, 37}};
    /* bounds: both, min only, max only, none, lo > hi (all become hi) */
    const double bl[] = {-0.5, -0.25, NAN, NAN, 0.75}, bh[] = {0.625, NAN, 0.3, NAN, -0.5};
    for (int d = 0; d < 3; d++)
        for (int b = 0; b < 5; b++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, "Clip", false);
                amp_tensor *in[3] = {rnd(kfloats[d], 3, shapes[z], 60 + (uint64_t)z, -2, 2), NULL, NULL};
                clip_specials(in[0], isnan(bl[b]) ? -1 : bl[b], isnan(bh[b]) ? 1 : bh[b]);
                if (!isnan(bl[b])) in[1] = scalar_of(kfloats[d], bl[b]);
                if (!isnan(bh[b])) in[2] = scalar_of(kfloats[d], bh[b]);
                const int nin = in[2] ? 3 : in[1] ? 2 : 1;
                CHECK_NODE(&t, nin, in, 1, true, 0.0, "Clip opset 13 %s bounds %d shape %d", amp_dtype_name(kfloats[d]),
                           b, z);
                /* opset 6: float attributes (not representable in 16 bits: rounded on store) */
                tnode o;
                tn_init(&o, "Clip", false);
                o.opset = 6;
                if (!isnan(bl[b])) tn_f(&o, "min", (float)bl[b] + 0.001f);
                if (!isnan(bh[b])) tn_f(&o, "max", (float)bh[b] - 0.001f);
                CHECK_NODE(&o, 1, in, 1, true, 0.0, "Clip opset 6 %s bounds %d shape %d", amp_dtype_name(kfloats[d]), b,
                           z);
                free_all(in, 3);
            }
    /* empty; an empty bound counts as none (MobileNetV2's ReLU6 is Clip(x, 0, 6)) */
    const int64_t d0[2] = {0, 4}, d6[4] = {2, 8, 5, 5};
    tnode t;
    tn_init(&t, "Clip", false);
    amp_tensor *in[3] = {rnd(AMP_F16, 2, d0, 1, -1, 1), scalar_of(AMP_F16, 0), scalar_of(AMP_F16, 6)};
    CHECK_NODE(&t, 3, in, 1, true, 0.0, "Clip of an empty tensor");
    amp_tensor_destroy(in[0]);
    in[0] = rnd(AMP_F32, 4, d6, 2, -9, 9);
    amp_tensor_destroy(in[1]);
    amp_tensor_destroy(in[2]);
    in[1] = scalar_of(AMP_F32, 0);
    in[2] = scalar_of(AMP_F32, 6);
    CHECK_NODE(&t, 3, in, 1, true, 0.0, "Clip ReLU6");
    amp_tensor_destroy(in[1]);
    in[1] = NULL; /* an absent min before a given max */
    CHECK_NODE(&t, 3, in, 1, true, 0.0, "Clip without min, with max");
    free_all(in, 3);
}

static void t_clip_grad(void) {
    CT_CHECK(setup(), "setup");
    const int64_t shapes[][2] = {{1, 1}, {7, 1}, {33, 3}, {10, 101}};
    const double bl[] = {-0.5, -0.25, NAN, NAN}, bh[] = {0.625, NAN, 0.3, NAN};
    for (int d = 0; d < 3; d++)
        for (int b = 0; b < 4; b++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, "ClipGrad", true);
                tn_i(&t, "fwd_opset", 13);
                amp_tensor *in[4] = {rnd(kfloats[d], 2, shapes[z], 70 + (uint64_t)z, -1, 1),
                                     rnd(kfloats[d], 2, shapes[z], 80 + (uint64_t)z, -2, 2), NULL, NULL};
                clip_specials(in[1], isnan(bl[b]) ? -1 : bl[b], isnan(bh[b]) ? 1 : bh[b]);
                if (!isnan(bl[b])) in[2] = scalar_of(kfloats[d], bl[b]);
                if (!isnan(bh[b])) in[3] = scalar_of(kfloats[d], bh[b]);
                const int nin = in[3] ? 4 : in[2] ? 3 : 2;
                CHECK_NODE(&t, nin, in, 1, true, 0.0, "ClipGrad %s bounds %d shape %d", amp_dtype_name(kfloats[d]), b,
                           z);
                tnode o;
                tn_init(&o, "ClipGrad", true);
                tn_i(&o, "fwd_opset", 6);
                if (!isnan(bl[b])) tn_f(&o, "min", (float)bl[b]);
                if (!isnan(bh[b])) tn_f(&o, "max", (float)bh[b]);
                CHECK_NODE(&o, 2, in, 1, true, 0.0, "ClipGrad fwd_opset 6 %s bounds %d shape %d",
                           amp_dtype_name(kfloats[d]), b, z);
                free_all(in, 4);
            }
}

/* Bounds computed on the device (not known while planning): prepare sees no data, run reads
 * them from device memory; Clip and ClipGrad give the CPU's bits. */
static void t_clip_device_bounds(void) {
    CT_CHECK(setup(), "setup");
    const int64_t dims[2] = {9, 13};
    for (int d = 0; d < 3; d++)
        for (int grad = 0; grad < 2; grad++)
            for (int which = 0; which < 3; which++) { /* both bounds on the device, only min, only max */
                tnode t;
                tn_init(&t, grad ? "ClipGrad" : "Clip", grad);
                if (grad) tn_i(&t, "fwd_opset", 13);
                amp_tensor *in[4] = {rnd(kfloats[d], 2, dims, 90, -1, 1), rnd(kfloats[d], 2, dims, 91, -2, 2),
                                     scalar_of(kfloats[d], -0.75), scalar_of(kfloats[d], 1.25)};
                amp_tensor *const *x = grad ? in : in + 1; /* Clip: X, min, max */
                const int nin = grad ? 4 : 3;
                const bool known[4] = {false, false, which == 2, which == 1};
                const bool *kn = grad ? known : known + 1;
                amp_tensor *ref = tens(kfloats[d], 2, dims), *got = tens(kfloats[d], 2, dims);
                size_t wsb;
                amp_status sc = run_cpu(&t, nin, x, 1, &ref), sd = run_device(&t, nin, x, kn, 1, &got, false, &wsb);
                const bool same = !sc && !sd && same_bits(got, ref);
                amp_tensor_destroy(ref);
                amp_tensor_destroy(got);
                free_all(in, 4);
                CT_CHECK(same, "%s %s with device bounds (%d): CPU %s, CUDA %s, CPU's bits", grad ? "ClipGrad" : "Clip",
                         amp_dtype_name(kfloats[d]), which, amp_status_name(sc), amp_status_name(sd));
            }
}

/* A step's nodes are captured into a CUDA graph: run enqueues only (no synchronisation, no
 * allocation), and the graph's replays give the eager bits. */
static void t_graph_capture(void) {
    CT_CHECK(setup(), "setup");
    const int64_t dims[2] = {33, 17}, row = 17;
    for (int d = 0; d < 3; d++) {
        /* Sum of 9 (two launches and, in 16 bits, the workspace), Dropout (the seed kernel and its
         * workspace), the seeded Dropout (the barrier kernel), Where, Pow */
        for (int c = 0; c < 5; c++) {
            tnode t;
            amp_tensor *in[9] = {NULL};
            int nin = 0, nout = 1;
            amp_tensor *ref[2] = {tens(kfloats[d], 2, dims), tens(AMP_BOOL, 2, dims)};
            amp_tensor *got[2] = {tens(kfloats[d], 2, dims), tens(AMP_BOOL, 2, dims)};
            if (c == 0) {
                tn_init(&t, "Sum", false);
                nin = 9;
                for (int i = 0; i < nin; i++) in[i] = rnd(kfloats[d], i % 2 ? 1 : 2, i % 2 ? &row : dims, 20 + (uint64_t)i, -2, 2);
            } else if (c <= 2) {
                tn_init(&t, "Dropout", false);
                if (c == 2) tn_i(&t, "seed", 5);
                nin = 3;
                nout = 2;
                in[0] = rnd(kfloats[d], 2, dims, 30, -2, 2);
                in[1] = scalar_of(AMP_F32, 0.4);
                in[2] = flag(true);
            } else if (c == 3) {
                tn_init(&t, "Where", false);
                nin = 3;
                in[0] = bools(1, &row, 31);
                in[1] = rnd(kfloats[d], 2, dims, 32, -2, 2);
                in[2] = rnd(kfloats[d], 0, NULL, 33, -2, 2);
            } else {
                tn_init(&t, "Pow", false);
                nin = 2;
                in[0] = rnd(kfloats[d], 2, dims, 34, 0.1f, 2);
                in[1] = rnd(kfloats[d], 1, &row, 35, -2, 2);
            }
            const bool known[3] = {false, true, true}; /* Dropout's ratio and training_mode */
            size_t wsb;
            amp_status sc = run_cpu(&t, nin, in, nout, ref);
            amp_status sd = run_device(&t, nin, in, c == 1 || c == 2 ? known : NULL, nout, got, true, &wsb);
            bool same = !sc && !sd;
            for (int o = 0; same && o < nout; o++) same = same_bits(got[o], ref[o]);
            free_all(ref, 2);
            free_all(got, 2);
            free_all(in, nin);
            CT_CHECK(same, "case %d %s captured: CPU %s, CUDA %s (%s), CPU's bits", c, amp_dtype_name(kfloats[d]),
                     amp_status_name(sc), amp_status_name(sd), amp_context_last_error(ctx));
        }
    }
}

/* ---- Where --------------------------------------------------------------------------------------- */

static void t_where(void) {
    CT_CHECK(setup(), "setup");
    typedef struct wshape {
        int r;
        int64_t c[5], a[5], b[5], cr, ar, br;
    } wshape;
    const wshape shapes[] = {
        {2, {7, 9}, {7, 9}, {7, 9}, 2, 2, 2},
        {3, {1, 1, 33}, {2, 3, 33}, {1}, 3, 3, 1},            /* the causal mask shape: c broadcast, b scalar */
        {4, {2, 1, 4, 4}, {2, 3, 1, 4}, {1, 3, 4, 1}, 4, 4, 4}, /* three ways */
        {1, {1}, {1}, {1}, 1, 1, 1},
        {2, {0, 5}, {0, 5}, {5}, 2, 2, 1},
        {5, {2, 1, 3, 1, 5}, {1, 4, 3, 1, 1}, {5}, 5, 5, 1}, /* rank 5 */
        {5, {3, 1, 5}, {2, 4, 3, 7, 5}, {2, 1, 1, 7, 1}, 3, 5, 5},
    };
    const amp_dtype types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_I64, AMP_BOOL};
    for (size_t z = 0; z < sizeof shapes / sizeof shapes[0]; z++)
        for (size_t d = 0; d < sizeof types / sizeof types[0]; d++) {
            const wshape *w = &shapes[z];
            tnode t;
            tn_init(&t, "Where", false);
            amp_tensor *in[3] = {bools((int)w->cr, w->c, 5 + z), NULL, NULL};
            if (types[d] == AMP_BOOL) {
                in[1] = bools((int)w->ar, w->a, 6 + z);
                in[2] = bools((int)w->br, w->b, 7 + z);
            } else if (types[d] == AMP_I64) {
                in[1] = labels(AMP_I64, (int)w->ar, w->a, 1000, 8 + z);
                in[2] = labels(AMP_I64, (int)w->br, w->b, 1000, 9 + z);
            } else {
                in[1] = rnd(types[d], (int)w->ar, w->a, 8 + z, -3, 3);
                in[2] = rnd(types[d], (int)w->br, w->b, 9 + z, -1e4f, -1e3f);
            }
            CHECK_NODE(&t, 3, in, 1, true, 0.0, "Where %s shape %zu", amp_dtype_name(types[d]), z);
            free_all(in, 3);
        }
}

/* ---- Sum, Mean, Min, Max --------------------------------------------------------------------------- */

static void t_variadic(void) {
    CT_CHECK(setup(), "setup");
    const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    const int counts[] = {1, 2, 3, 4, 5, 8}; /* more: t_variadic_many (the harness runs 8 inputs at most) */
    const int64_t flat[3] = {3, 5, 37}, row[1] = {37}, col[3] = {3, 1, 1}, one = 1;
    for (int o = 0; o < 4; o++)
        for (int d = 0; d < 3; d++)
            for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
                for (int bc = 0; bc < 2; bc++) { /* every input of the output's shape; a mix of broadcasts */
                    const int n = counts[c];
                    amp_tensor *in[8];
                    for (int i = 0; i < n; i++) {
                        const int kind = bc && i > 0 ? i % 4 : 0;
                        const int rank = kind == 1 ? 1 : kind == 3 ? 0 : 3;
                        const int64_t *dims = kind == 1 ? row : kind == 2 ? col : kind == 3 ? &one : flat;
                        in[i] = rnd(kfloats[d], rank, dims, 100 + (uint64_t)(i * 7 + c), -4, 4);
                    }
                    if (n > 1 && in[1]->numel > 5) amp_st(kfloats[d], in[1]->data, 5, NAN);
                    tnode t;
                    tn_init(&t, ops[o], false);
                    CHECK_NODE(&t, n, in, 1, true, 0.0, "%s of %d %s%s", ops[o], n, amp_dtype_name(kfloats[d]),
                               bc ? " broadcast" : "");
                    free_all(in, n);
                }
    /* rank 5, every input broadcast somewhere */
    const int64_t r5[3][5] = {{2, 1, 3, 4, 5}, {1, 6, 3, 1, 5}, {2, 6, 1, 4, 1}};
    for (int o = 0; o < 4; o++)
        for (int d = 0; d < 3; d++) {
            amp_tensor *in[3];
            for (int i = 0; i < 3; i++) in[i] = rnd(kfloats[d], 5, r5[i], 300 + (uint64_t)i, -4, 4);
            tnode t;
            tn_init(&t, ops[o], false);
            CHECK_NODE(&t, 3, in, 1, true, 0.0, "%s rank 5 %s", ops[o], amp_dtype_name(kfloats[d]));
            free_all(in, 3);
        }
    /* empty */
    const int64_t d0[2] = {0, 3};
    amp_tensor *in[3] = {rnd(AMP_F16, 2, d0, 1, -1, 1), rnd(AMP_F16, 2, d0, 2, -1, 1), rnd(AMP_F16, 1, &d0[1], 3, -1, 1)};
    tnode t;
    tn_init(&t, "Sum", false);
    CHECK_NODE(&t, 3, in, 1, true, 0.0, "Sum of empty tensors");
    free_all(in, 3);
}

/* More inputs than one launch folds (8): the running value carried between launches (y
 * itself in f32, the f32 workspace in 16 bits). Input 0 has the output's shape, the others
 * some broadcast. */
static void t_variadic_many(void) {
    CT_CHECK(setup(), "setup");
    const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    const int counts[] = {9, 15, 16, 17, 30};
    const int64_t full[2] = {5, 37}, row[1] = {37}, col[2] = {5, 1};
    for (int o = 0; o < 4; o++)
        for (int d = 0; d < 3; d++)
            for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
                for (int bc = 0; bc < 2; bc++) {
                    const int n = counts[c];
                    amp_tensor *in[30], *ref = tens(kfloats[d], 2, full), *got = tens(kfloats[d], 2, full);
                    for (int i = 0; i < n; i++) {
                        const int kind = bc && i > 0 ? i % 3 : 0;
                        in[i] = rnd(kfloats[d], kind == 1 ? 1 : 2, kind == 1 ? row : kind == 2 ? col : full,
                                    500 + (uint64_t)(i * 3 + c), -4, 4);
                    }
                    tnode t;
                    tn_init(&t, ops[o], false);
                    size_t wsb = 0;
                    amp_status sc = run_cpu(&t, n, in, 1, &ref), sd = run_device(&t, n, in, NULL, 1, &got, false, &wsb);
                    const bool same = !sc && !sd && same_bits(got, ref) && (wsb > 0) == (kfloats[d] != AMP_F32);
                    free_all(in, n);
                    amp_tensor_destroy(ref);
                    amp_tensor_destroy(got);
                    CT_CHECK(same, "%s of %d %s%s: CPU %s, CUDA %s, CPU's bits, workspace %zu", ops[o], n,
                             amp_dtype_name(kfloats[d]), bc ? " broadcast" : "", amp_status_name(sc),
                             amp_status_name(sd), wsb);
                }
}

/* The same flat Sum from buffers one element off their alignment (the scalar loop) gives the
 * bits of the four-at-once loop. */
static void t_variadic_misaligned(void) {
    CT_CHECK(setup(), "setup");
    for (int d = 0; d < 3; d++) {
        const int64_t n = 1003;
        const size_t es = amp_dtype_size(kfloats[d]);
        amp_tensor *x[3];
        void *a[3], *m[3], *ya = NULL, *ym = NULL;
        for (int i = 0; i < 3; i++) {
            x[i] = rnd(kfloats[d], 1, &n, 7 + (uint64_t)i, -3, 3);
            CT_CHECK(cudaMalloc(&a[i], x[i]->nbytes + es) == cudaSuccess && cudaMalloc(&m[i], x[i]->nbytes + es) == cudaSuccess, "alloc");
            cudaMemcpy(a[i], x[i]->data, x[i]->nbytes, cudaMemcpyHostToDevice);
            cudaMemcpy((char *)m[i] + es, x[i]->data, x[i]->nbytes, cudaMemcpyHostToDevice);
        }
        CT_CHECK(cudaMalloc(&ya, x[0]->nbytes) == cudaSuccess && cudaMalloc(&ym, x[0]->nbytes + es) == cudaSuccess, "alloc");
        amp_k_nbc g[1];
        const int ranks[3] = {1, 1, 1};
        const int64_t *dims[3] = {&n, &n, &n};
        CT_CHECK(amp_k_variadic_plan(1, &n, 3, ranks, dims, g) && g[0].flat, "plan");
        const void *pa[3] = {a[0], a[1], a[2]}, *pm[3] = {(char *)m[0] + es, (char *)m[1] + es, (char *)m[2] + es};
        amp_k_dtype kd = d == 0 ? AMP_K_F32 : d == 1 ? AMP_K_F16 : AMP_K_BF16;
        cudaError_t e1 = amp_k_variadic(cu.stream, AMP_K_VMEAN, kd, g, 3, pa, NULL, ya);
        cudaError_t e2 = amp_k_variadic(cu.stream, AMP_K_VMEAN, kd, g, 3, pm, NULL, (char *)ym + es);
        cudaStreamSynchronize(cu.stream);
        unsigned char *ha = malloc(x[0]->nbytes), *hm = malloc(x[0]->nbytes);
        cudaMemcpy(ha, ya, x[0]->nbytes, cudaMemcpyDeviceToHost);
        cudaMemcpy(hm, (char *)ym + es, x[0]->nbytes, cudaMemcpyDeviceToHost);
        const bool same = e1 == cudaSuccess && e2 == cudaSuccess && memcmp(ha, hm, x[0]->nbytes) == 0;
        free(ha);
        free(hm);
        for (int i = 0; i < 3; i++) {
            cudaFree(a[i]);
            cudaFree(m[i]);
        }
        cudaFree(ya);
        cudaFree(ym);
        free_all(x, 3);
        CT_CHECK(same, "Mean %s misaligned gives the aligned bits", amp_dtype_name(kfloats[d]));
    }
}

/* ---- MinMaxGrad ------------------------------------------------------------------------------------ */

/* small integers, so inputs tie often */
static amp_tensor *ties(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    amp_tensor *t = tens(dt, rank, dims);
    uint64_t s = seed * 2654435761u + 11;
    for (int64_t i = 0; t && i < t->numel; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        amp_st(dt, t->data, i, (double)((s >> 33) % 4) - 1.5);
    }
    return t;
}

static void t_min_max_grad(void) {
    CT_CHECK(setup(), "setup");
    const char *ops[] = {"Min", "Max"};
    const int counts[] = {1, 2, 3, 6};
    const int64_t full[2] = {7, 33}, row[1] = {33};
    for (int o = 0; o < 2; o++)
        for (int d = 0; d < 3; d++)
            for (int c = 0; c < 4; c++)
                for (int bc = 0; bc < 2; bc++) {
                    const int m = counts[c];
                    amp_tensor *x[6];
                    for (int j = 0; j < m; j++)
                        x[j] = bc && j == 1 ? ties(kfloats[d], 1, row, 80 + (uint64_t)j) : ties(kfloats[d], 2, full, 80 + (uint64_t)j);
                    amp_st(kfloats[d], x[0]->data, 0, NAN); /* a NaN wins: Y is NaN there */
                    if (m > 1) amp_st(kfloats[d], x[m - 1]->data, 0, NAN);
                    tnode f;
                    tn_init(&f, ops[o], false);
                    amp_tensor *ref[1], *got[1];
                    amp_status s = run_both(&f, m, x, 1, ref, got);
                    CT_CHECK(s == AMP_OK, "%s forward: %s", ops[o], amp_status_name(s));
                    amp_tensor_destroy(got[0]);
                    amp_tensor *in[8] = {rnd(kfloats[d], 2, full, 90, -1, 1), ref[0]};
                    for (int j = 0; j < m; j++) in[2 + j] = x[j];
                    for (int index = 0; index < m; index++) {
                        tnode t;
                        tn_init(&t, "MinMaxGrad", true);
                        tn_i(&t, "index", index);
                        CHECK_NODE(&t, 2 + m, in, 1, true, 0.0, "MinMaxGrad of %s, %d inputs, index %d %s%s", ops[o], m,
                                   index, amp_dtype_name(kfloats[d]), bc ? " broadcast" : "");
                    }
                    free_all(in, 2 + m);
                }
}

/* ---- ConstantOfShape ------------------------------------------------------------------------------- */

static void t_constant_of_shape(void) {
    CT_CHECK(setup(), "setup");
    const amp_dtype types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_I64, AMP_I32, AMP_BOOL, AMP_F64, AMP_U8};
    const int64_t shapes[][3] = {{3, 5, 7}, {1, 1, 1}, {2, 0, 4}, {1, 1, 1001}};
    const double vals[] = {1.5, 0.0, 7.0};
    for (size_t d = 0; d < sizeof types / sizeof types[0]; d++)
        for (int v = 0; v < 3; v++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, "ConstantOfShape", false);
                amp_tensor *val = tens(types[d], 1, (const int64_t[]){1});
                amp_st(types[d], val->data, 0, vals[v]);
                tn_add(&t, "value", AMP_ATTR_TENSOR)->t = val;
                amp_tensor *shape = ints1(shapes[z], 3);
                CHECK_NODE(&t, 1, &shape, 1, true, 0.0, "ConstantOfShape %s value %g shape %d", amp_dtype_name(types[d]),
                           vals[v], z);
                amp_tensor_destroy(shape);
                amp_tensor_destroy(val);
            }
    /* no value: f32 zeros */
    tnode t;
    tn_init(&t, "ConstantOfShape", false);
    amp_tensor *shape = ints1(shapes[0], 2);
    CHECK_NODE(&t, 1, &shape, 1, true, 0.0, "ConstantOfShape without a value");
    amp_tensor_destroy(shape);
}

/* ---- Dropout, DropoutGrad ------------------------------------------------------------------------- */

static void t_dropout(void) {
    CT_CHECK(setup(), "setup");
    const int64_t sizes[] = {1, 7, 333, 1000};
    const double ratios[] = {0.3, 0.0, 1.0, 0.75, 0.4};
    for (int d = 0; d < 3; d++)
        for (int seeded = 0; seeded < 2; seeded++)
            for (int r = 0; r < 5; r++)
                for (int train = 0; train < 2; train++)
                    for (int z = 0; z < 4; z++) {
                        tnode t;
                        tn_init(&t, "Dropout", false);
                        t.opset = 13;
                        if (seeded) tn_i(&t, "seed", 1234 + z);
                        const int64_t dims[2] = {sizes[z], 3};
                        amp_tensor *in[3] = {rnd(kfloats[d], 2, dims, 40 + (uint64_t)z, -3, 3),
                                             scalar_of(AMP_F32, ratios[r]), flag(train)};
                        CHECK_NODE(&t, 3, in, 2, true, 0.0, "Dropout %s seeded %d ratio %g training %d n %lld",
                                   amp_dtype_name(kfloats[d]), seeded, ratios[r], train, (long long)dims[0] * 3);
                        free_all(in, 3);
                    }
    /* before opset 12 an identity, whose mask is all ones (X's dtype before opset 10) */
    const int64_t dims[3] = {2, 3, 5};
    const int64_t opsets[] = {7, 10};
    for (int o = 0; o < 2; o++) {
        tnode t;
        tn_init(&t, "Dropout", false);
        t.opset = opsets[o];
        tn_f(&t, "ratio", 0.4f);
        amp_tensor *x = rnd(AMP_BF16, 3, dims, 3, -1, 1);
        CHECK_NODE(&t, 1, &x, 2, true, 0.0, "Dropout opset %lld", (long long)opsets[o]);
        amp_tensor_destroy(x);
    }
    /* ratio unknown while planning: refused, with the reason */
    tnode t;
    tn_init(&t, "Dropout", false);
    amp_tensor *in[3] = {rnd(AMP_F32, 3, dims, 3, -1, 1), rnd(AMP_F32, 1, dims, 4, 0.1f, 0.2f), flag(true)};
    in[1]->dims[0] = 1;
    in[1]->numel = 1;
    void *kept = in[1]->data;
    in[1]->data = NULL; /* no value while planning (the buffer is put back before it is freed) */
    amp_tensor *got[1];
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 17, .nin = 3, .nout = 1, .in = in, .out = got};
    got[0] = tens(AMP_F32, 3, dims);
    const amp_cuda_op *e = entry_of(AMP_OP_DROPOUT);
    void *state = NULL;
    size_t ws = 0;
    bool sup = e->supports(&cu, &k);
    amp_status s = e->prepare(&cu, &k, &state, &ws);
    amp_tensor_destroy(got[0]);
    in[1]->data = kept;
    free_all(in, 3);
    CT_CHECK(!sup && s == AMP_ERR_UNSUPPORTED && strstr(amp_context_last_error(ctx), "known while planning"),
             "Dropout with an unknown ratio refused: %s", amp_context_last_error(ctx));
}

static void t_dropout_grad(void) {
    CT_CHECK(setup(), "setup");
    const int64_t sizes[] = {1, 7, 333, 1000};
    for (int d = 0; d < 3; d++)
        for (int how = 0; how < 3; how++) /* the forward's mask; drawn again from X; seeded, from X */
            for (int train = 0; train < 2; train++)
                for (int z = 0; z < 4; z++) {
                    tnode t;
                    tn_init(&t, "DropoutGrad", true);
                    if (how == 2) tn_i(&t, "seed", 99 + z);
                    const int64_t dims[2] = {3, sizes[z]};
                    amp_tensor *in[5] = {rnd(kfloats[d], 2, dims, 50 + (uint64_t)z, -1, 1),
                                         how == 0 ? bools(2, dims, 60 + (uint64_t)z) : NULL,
                                         rnd(kfloats[d], 2, dims, 70 + (uint64_t)z, -3, 3), scalar_of(AMP_F32, 0.35),
                                         flag(train)};
                    CHECK_NODE(&t, 5, in, 1, true, 0.0, "DropoutGrad %s how %d training %d n %lld",
                               amp_dtype_name(kfloats[d]), how, train, (long long)dims[1] * 3);
                    free_all(in, 5);
                }
}

/* The recomputed mask is the forward's: DropoutGrad without a mask drops what Dropout dropped
 * (the CPU's promise, kept on the device). */
static void t_dropout_roundtrip(void) {
    CT_CHECK(setup(), "setup");
    const int64_t dims[2] = {17, 31};
    tnode f, g;
    tn_init(&f, "Dropout", false);
    amp_tensor *in[3] = {rnd(AMP_F32, 2, dims, 5, -3, 3), scalar_of(AMP_F32, 0.5), flag(true)};
    amp_tensor *ref[2], *got[2];
    amp_status s = run_both(&f, 3, in, 2, ref, got);
    CT_CHECK(s == AMP_OK, "Dropout: %s", amp_status_name(s));
    tn_init(&g, "DropoutGrad", true);
    amp_tensor *gin[5] = {in[0], NULL, in[0], in[1], in[2]}; /* dY = X: dX must equal Y */
    amp_tensor *gref[1], *ggot[1];
    s = run_both(&g, 5, gin, 1, gref, ggot);
    bool same = s == AMP_OK && memcmp(ggot[0]->data, got[0]->data, got[0]->nbytes) == 0;
    int64_t dropped = 0;
    for (int64_t i = 0; i < got[1]->numel; i++) dropped += ((uint8_t *)got[1]->data)[i] == 0;
    if (s == AMP_OK) {
        free_all(gref, 1);
        free_all(ggot, 1);
    }
    free_all(ref, 2);
    free_all(got, 2);
    free_all(in, 3);
    CT_CHECK(same, "DropoutGrad's recomputed mask is the forward's: %s", amp_status_name(s));
    CT_CHECK(dropped > 200 && dropped < 327, "about half dropped: %lld of 527", (long long)dropped);
}

/* ---- refusals -------------------------------------------------------------------------------------- */

static void t_refused(void) {
    CT_CHECK(setup(), "setup");
    const int64_t d[2] = {3, 4};
    tnode t;
    tn_init(&t, "Pow", false);
    amp_tensor *in[3] = {rnd(AMP_F64, 2, d, 1, 0.5f, 2), rnd(AMP_F64, 2, d, 2, -1, 1), NULL};
    CT_CHECK(refused_with_reason(&t, 2, in, "f32, f16 and bf16"), "Pow f64 refused with a reason: %s",
             amp_context_last_error(ctx));
    free_all(in, 2);
    tn_init(&t, "Sum", false);
    in[0] = labels(AMP_I32, 2, d, 9, 1);
    in[1] = labels(AMP_I32, 2, d, 9, 2);
    CT_CHECK(refused_with_reason(&t, 2, in, "f32, f16 and bf16"), "Sum int32 refused with a reason: %s",
             amp_context_last_error(ctx));
    free_all(in, 2);
    /* the gradient of an integer exponent would be an integer */
    tn_init(&t, "BinaryGrad", true);
    tn_s(&t, "op", "Pow");
    tn_i(&t, "wrt", 1);
    in[0] = rnd(AMP_F32, 2, d, 1, -1, 1);
    in[1] = rnd(AMP_F32, 2, d, 2, 0.5f, 2);
    in[2] = labels(AMP_I64, 0, NULL, 3, 3);
    bool r = refused_with_reason(&t, 3, in, "does not match the forward");
    CT_CHECK(r, "BinaryGrad wrt an int64 exponent refused: %s", amp_context_last_error(ctx));
    free_all(in, 3);
    /* the plan refuses what does not broadcast */
    amp_k_nbc g;
    const int64_t y[2] = {3, 4}, b[2] = {2, 4};
    const int ranks[2] = {2, 2};
    const int64_t *dims[2] = {y, b};
    CT_CHECK(!amp_k_nbc_plan(2, y, 2, ranks, dims, &g), "[2,4] does not broadcast to [3,4]");
    const int64_t y3[3] = {2, 3, 4}, c3[3] = {2, 1, 4};
    const int r3[3] = {3, 3, 1};
    const int64_t *d3[3] = {y3, c3, &y3[2]};
    CT_CHECK(amp_k_nbc_plan(3, y3, 3, r3, d3, &g) && g.rank == 3 && !g.flat && g.st[1][1] == 0 && g.st[2][0] == 0,
             "three-way plan: rank %d", g.rank);
}

static const ct_case cases[] = {
    {"unary_math", t_unary_math},
    {"unary_math_grad", t_unary_math_grad},
    {"unary_math_refused", t_unary_math_refused},
    {"pow", t_pow},
    {"binary_grad", t_binary_grad},
    {"clip", t_clip},
    {"clip_grad", t_clip_grad},
    {"clip_device_bounds", t_clip_device_bounds},
    {"graph_capture", t_graph_capture},
    {"where", t_where},
    {"variadic", t_variadic},
    {"variadic_many", t_variadic_many},
    {"variadic_misaligned", t_variadic_misaligned},
    {"constant_of_shape", t_constant_of_shape},
    {"min_max_grad", t_min_max_grad},
    {"dropout", t_dropout},
    {"dropout_grad", t_dropout_grad},
    {"dropout_roundtrip", t_dropout_roundtrip},
    {"refused", t_refused},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }
