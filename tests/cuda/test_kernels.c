/* amprt's own CUDA kernels (backends/cuda/op_kernels.c, k_*.cu) on the emulator against the CPU
 * backend: every op of the family through its amp_cuda_ops_kernels entry (supports, prepare,
 * run, release) on device memory of the fake runtime, the same node run by the CPU backend
 * (amp_backend_run_once), every dtype, odd shapes; Cast, the activations' Relu, MaxPool and
 * MaxPoolGrad and the copies bit for bit, the rest by relative L2 error with a threshold per
 * dtype. The barrier kernels (the loss) run in every thread and block order the emulator has, and
 * must give the same bits. A planted bug (the loss's row reduction without its barriers,
 * tests/cuda/test_kernels_planted.cu) must be caught.
 *
 * Thresholds are set for a real GPU, whose expf/tanhf/erff differ from the host's by an ulp or
 * two (on the emulator the math is the host's and most results are identical): f32 1e-6 (a few
 * f32 ulps), f16 1e-3 and bf16 8e-3 (one rounding flipped by such an ulp moves a value by one
 * 16-bit ulp: 2^-11 and 2^-8 relative). The loss computes in double on both sides, so its f32
 * threshold is 1e-6 too. */
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_optest.h"

/* tests/cuda/test_kernels_planted.cu (on a GPU the order switch does nothing) */
cudaError_t kt_row_lse(int planted, const float *x, int64_t rows, int64_t c, unsigned threads, double *out);
int kt_set_order(int flags);
enum { KT_REVERSE_THREADS = 1, KT_REVERSE_BLOCKS = 2 }; /* cuda_emu.h's AMP_EMU_REVERSE_* */

/* ---- Cast ---------------------------------------------------------------------------------------- */

/* values that exercise rounding: ties, overflow to inf in f16, subnormals, NaN with a payload */
static void put_specials(amp_tensor *x) {
    if (x->dtype != AMP_F32) return;
    const uint32_t sp[] = {0x7f800000u, 0xff800000u, 0x7fc12345u, 0xffa00001u, 0x477ff000u, 0x477fefffu,
                           0x33000000u, 0x33000001u, 0x387fc000u, 0x00000001u, 0x80000000u, 0x3f808000u,
                           0x3f818000u, 0x3f800fffu, 0x7f7fffffu, 0xc77fffffu};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0] && (int64_t)i < x->numel; i++)
        memcpy((float *)x->data + i, &sp[i], 4);
}

static void t_cast(void) {
    CT_CHECK(setup(), "setup");
    const int64_t sizes[] = {1, 7, 33, 1000};
    for (int rtz = 0; rtz < 2; rtz++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                for (int z = 0; z < 4; z++) {
                    tnode t;
                    tn_init(&t, "Cast", false);
                    tn_i(&t, "to", (int64_t)kfloats[b] /* amp_dtype is the ONNX code */);
                    if (rtz) t.n.flags |= AMP_NODE_CAST_RTZ;
                    int64_t dims[2] = {sizes[z], 1};
                    amp_tensor *x = rnd(kfloats[a], 2, dims, 11 + (uint64_t)z, -70000.0f, 70000.0f);
                    put_specials(x);
                    CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Cast %s -> %s rtz %d n %lld", amp_dtype_name(kfloats[a]),
                               amp_dtype_name(kfloats[b]), rtz, (long long)sizes[z]);
                    amp_tensor_destroy(x);
                }
}

static void t_cast_like_and_empty(void) {
    CT_CHECK(setup(), "setup");
    int64_t d0[2] = {0, 3}, d1[1] = {1};
    amp_tensor *in[2] = {rnd(AMP_F32, 2, d0, 3, -1, 1), rnd(AMP_BF16, 1, d1, 4, -1, 1)};
    tnode t;
    tn_init(&t, "CastLike", false);
    CHECK_NODE(&t, 2, in, 1, true, 0.0, "CastLike f32 -> bf16, empty");
    amp_tensor_destroy(in[0]);
    int64_t d2[3] = {3, 5, 7};
    in[0] = rnd(AMP_F32, 3, d2, 5, -3, 3);
    CHECK_NODE(&t, 2, in, 1, true, 0.0, "CastLike f32 -> bf16");
    free_all(in, 2);
}

static void t_cast_refused(void) {
    CT_CHECK(setup(), "setup");
    tnode t;
    tn_init(&t, "Cast", false);
    tn_i(&t, "to", (int64_t)AMP_I32);
    int64_t d = 5;
    amp_tensor *x = rnd(AMP_F32, 1, &d, 1, -3, 3), *ref[1], *got[1];
    amp_status s = run_both(&t, 1, &x, 1, ref, got);
    amp_tensor_destroy(x);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "Cast to int32 is refused, got %s", amp_status_name(s));
    /* prepare explains the refusal */
    amp_tensor xv, yv;
    amp_tensor_view(&xv, AMP_F32, 1, &d, NULL);
    amp_tensor_view(&yv, AMP_I32, 1, &d, NULL);
    amp_tensor *pi[1] = {&xv}, *po[1] = {&yv};
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 17, .nin = 1, .nout = 1, .in = pi, .out = po};
    void *state = NULL;
    size_t ws = 0;
    const amp_cuda_op *e = entry_of(AMP_OP_CAST);
    s = e->prepare(&cu, &k, &state, &ws);
    const char *m = amp_context_last_error(ctx);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED && strstr(m, "Cast") && strstr(m, "f32, f16 and bf16"), "message: %s", m);
}

/* ---- activations -------------------------------------------------------------------------------- */

typedef struct act_case {
    const char *op;
    const char *approximate; /* Gelu */
    bool reads_y;           /* UnaryGrad's V is the forward output */
    bool exact;
} act_case;

static const act_case acts[] = {
    {"Relu", NULL, true, true},      {"LeakyRelu", NULL, false, true}, {"Sigmoid", NULL, true, false},
    {"Tanh", NULL, true, false},     {"Gelu", "none", false, false},   {"Gelu", "tanh", false, false},
};

static void act_attrs(tnode *t, const act_case *a) {
    if (strcmp(a->op, "LeakyRelu") == 0) tn_f(t, "alpha", 0.13f);
    if (a->approximate) tn_s(t, "approximate", a->approximate);
}

static void t_unary(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 1}, {3, 11, 1}, {2, 5, 100}};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
        for (int d = 0; d < 3; d++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, acts[a].op, false);
                act_attrs(&t, &acts[a]);
                amp_tensor *x = rnd(kfloats[d], 3, shapes[z], 100 + (uint64_t)z, -4.0f, 4.0f);
                CHECK_NODE(&t, 1, &x, 1, acts[a].exact, acts[a].exact ? 0.0 : tol_of(kfloats[d]), "%s %s %s",
                           acts[a].op, acts[a].approximate ? acts[a].approximate : "", amp_dtype_name(kfloats[d]));
                amp_tensor_destroy(x);
            }
    worst_print();
}

static void t_unary_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const int64_t shapes[][2] = {{1, 1}, {7, 1}, {33, 1}, {10, 100}};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
        for (int d = 0; d < 3; d++)
            for (int z = 0; z < 4; z++) {
                tnode t;
                tn_init(&t, "UnaryGrad", true);
                tn_s(&t, "op", acts[a].op);
                act_attrs(&t, &acts[a]);
                amp_tensor *in[2] = {rnd(kfloats[d], 2, shapes[z], 200 + (uint64_t)z, -2.0f, 2.0f), NULL};
                /* Y of Sigmoid lies in (0, 1), of Tanh in (-1, 1); Relu's Y has zeros */
                float lo = acts[a].reads_y && strcmp(acts[a].op, "Relu") != 0 ? -0.99f : -4.0f;
                in[1] = rnd(kfloats[d], 2, shapes[z], 300 + (uint64_t)z, strcmp(acts[a].op, "Sigmoid") == 0 ? 0.01f : lo,
                            acts[a].reads_y && strcmp(acts[a].op, "Relu") != 0 ? 0.99f : 4.0f);
                if (strcmp(acts[a].op, "Relu") == 0 && in[1]->numel > 3) amp_st(kfloats[d], in[1]->data, 3, 0.0);
                CHECK_NODE(&t, 2, in, 1, acts[a].exact, acts[a].exact ? 0.0 : tol_of(kfloats[d]), "UnaryGrad %s %s %s",
                           acts[a].op, acts[a].approximate ? acts[a].approximate : "", amp_dtype_name(kfloats[d]));
                free_all(in, 2);
            }
    worst_print();
}

static void t_unary_edges(void) {
    CT_CHECK(setup(), "setup");
    /* empty: nothing launched, nothing fails */
    int64_t d0[2] = {0, 5};
    amp_tensor *x = rnd(AMP_F16, 2, d0, 1, -1, 1);
    tnode t;
    tn_init(&t, "Relu", false);
    CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Relu of an empty tensor");
    amp_tensor_destroy(x);
    /* refusals: f64, a gradient of an op without a kernel here */
    int64_t d1 = 4;
    x = rnd(AMP_F64, 1, &d1, 1, -1, 1);
    amp_tensor *ref[1], *got[1];
    amp_status s = run_both(&t, 1, &x, 1, ref, got);
    amp_tensor_destroy(x);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "Relu f64 refused, got %s", amp_status_name(s));
    tn_init(&t, "UnaryGrad", true);
    tn_s(&t, "op", "Tan");
    amp_tensor *in[2] = {rnd(AMP_F32, 1, &d1, 1, -1, 1), rnd(AMP_F32, 1, &d1, 2, 0.1f, 1)};
    s = run_both(&t, 2, in, 1, ref, got);
    free_all(in, 2);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "UnaryGrad of Tan refused, got %s", amp_status_name(s));
}

/* The elementwise kernels move four elements at once on aligned buffers and one at a time
 * otherwise: the same data one element off its alignment (a view into a buffer) must give the
 * same bits as aligned. Buffers hold n + 1 elements; the misaligned run starts at element 1. */
static bool kt_upload(const amp_tensor *x, void **aligned, void **mis) {
    size_t es = amp_dtype_size(x->dtype);
    if (cudaMalloc(aligned, x->nbytes) || cudaMalloc(mis, x->nbytes + es)) return false;
    return !cudaMemcpy(*aligned, x->data, x->nbytes, cudaMemcpyHostToDevice) &&
           !cudaMemcpy((char *)*mis + es, x->data, x->nbytes, cudaMemcpyHostToDevice);
}

/* y (aligned) and y one element on (misaligned) hold the same bytes */
static bool kt_same_out(void *ya, void *ym, size_t bytes, size_t es) {
    unsigned char *a = malloc(bytes), *b = malloc(bytes);
    bool ok = a && b && !cudaMemcpy(a, ya, bytes, cudaMemcpyDeviceToHost) &&
              !cudaMemcpy(b, (char *)ym + es, bytes, cudaMemcpyDeviceToHost) && memcmp(a, b, bytes) == 0;
    free(a);
    free(b);
    return ok;
}

static void t_misaligned(void) {
    CT_CHECK(setup(), "setup");
    const int64_t n = 37;
    int fails = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            amp_tensor *x = rnd(kfloats[a], 1, &n, 31, -3.0f, 3.0f);
            size_t eo = amp_dtype_size(kfloats[b]), ob = eo * (size_t)n;
            void *xa = NULL, *xm = NULL, *ya = NULL, *ym = NULL, *va = NULL, *vm = NULL;
            bool ok = kt_upload(x, &xa, &xm) && kt_upload(x, &va, &vm) && !cudaMalloc(&ya, ob) &&
                      !cudaMalloc(&ym, ob + eo);
            size_t ei = amp_dtype_size(kfloats[a]);
            amp_k_dtype s = (amp_k_dtype)a, d = (amp_k_dtype)b;
            if (ok && a != b) { /* Cast, both roundings */
                for (int rtz = 0; rtz < 2; rtz++) {
                    ok &= !amp_k_cast(cu.stream, s, d, rtz, xa, ya, n) &&
                          !amp_k_cast(cu.stream, s, d, rtz, (char *)xm + ei, (char *)ym + eo, n);
                    ok &= kt_same_out(ya, ym, ob, eo);
                }
            }
            if (ok && a == b) /* every activation and its gradient */
                for (int op = 0; op < AMP_K_UNARY_COUNT; op++) {
                    ok &= !amp_k_unary_fwd(cu.stream, (amp_k_unary)op, s, 0.2f, xa, ya, n) &&
                          !amp_k_unary_fwd(cu.stream, (amp_k_unary)op, s, 0.2f, (char *)xm + ei, (char *)ym + ei, n);
                    ok &= kt_same_out(ya, ym, ob, eo);
                    ok &= !amp_k_unary_grad(cu.stream, (amp_k_unary)op, s, 0.2f, xa, va, ya, n) &&
                          !amp_k_unary_grad(cu.stream, (amp_k_unary)op, s, 0.2f, (char *)xm + ei, (char *)vm + ei,
                                            (char *)ym + ei, n);
                    ok &= kt_same_out(ya, ym, ob, eo);
                }
            fails += !ok;
            cudaFree(xa), cudaFree(xm), cudaFree(ya), cudaFree(ym), cudaFree(va), cudaFree(vm);
            amp_tensor_destroy(x);
        }
    CT_CHECK(fails == 0, "%d dtype pairs differ between the aligned and the misaligned run", fails);
}

/* ---- MaxPool, MaxPoolGrad -------------------------------------------------------------------------- */

typedef struct pool_case {
    int rank;
    int64_t dims[4];
    int64_t k[2], s[2], d[2], pads[4];
    int ceil;
} pool_case;

static const pool_case pools[] = {
    {4, {3, 5, 7, 9}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 0},   /* LeNet's, odd planes */
    {4, {2, 3, 11, 13}, {3, 3}, {2, 2}, {1, 1}, {1, 0, 2, 1}, 1}, /* asymmetric pads, ceil_mode */
    {4, {1, 2, 9, 10}, {3, 2}, {1, 2}, {2, 1}, {2, 1, 2, 0}, 0},  /* dilation, overlapping rows */
    {4, {2, 1, 7, 7}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1},   /* ceil_mode: a last window half out */
    {4, {1, 1, 1, 1}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 0},   /* one element */
    {3, {2, 3, 33, 0}, {3, 0}, {2, 0}, {1, 0}, {1, 1, 0, 0}, 0},  /* one spatial dim */
    {4, {1, 33, 32, 33}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 0}, /* many overlapping windows */
};

static void pool_attrs(tnode *t, const pool_case *p) {
    int nsp = p->rank - 2;
    int64_t pads[4] = {p->pads[0], p->pads[2], 0, 0};
    tn_is(t, "kernel_shape", nsp, p->k);
    tn_is(t, "strides", nsp, p->s);
    tn_is(t, "dilations", nsp, p->d);
    if (nsp == 2) tn_is(t, "pads", 4, p->pads);
    else tn_is(t, "pads", 2, pads);
    if (p->ceil) tn_i(t, "ceil_mode", 1);
}

/* ties: values from a few levels, so windows hold equal maxima */
static amp_tensor *pool_input(amp_dtype dt, const pool_case *p, uint64_t seed, bool ties) {
    amp_tensor *x = rnd(dt, p->rank, p->dims, seed, -3.0f, 3.0f);
    if (ties)
        for (int64_t i = 0; i < x->numel; i++) amp_st(dt, x->data, i, floor(amp_ld(dt, x->data, i)));
    return x;
}

static void t_max_pool(void) {
    CT_CHECK(setup(), "setup");
    for (size_t c = 0; c < sizeof pools / sizeof pools[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int ties = 0; ties < 2; ties++) {
                tnode t;
                tn_init(&t, "MaxPool", false);
                pool_attrs(&t, &pools[c]);
                amp_tensor *x = pool_input(kfloats[d], &pools[c], 40 + c, ties);
                CHECK_NODE(&t, 1, &x, 1, true, 0.0, "MaxPool case %zu %s ties %d", c, amp_dtype_name(kfloats[d]), ties);
                amp_tensor_destroy(x);
            }
}

/* auto_pad: the geometry's own pads (SAME_UPPER puts the odd one at the end, SAME_LOWER first) */
static void t_max_pool_auto_pad(void) {
    CT_CHECK(setup(), "setup");
    const char *modes[] = {"SAME_UPPER", "SAME_LOWER", "VALID"};
    const pool_case p = {4, {1, 2, 8, 9}, {3, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 0};
    for (int m = 0; m < 3; m++)
        for (int d = 0; d < 3; d++) {
            tnode t;
            tn_init(&t, "MaxPool", false);
            tn_is(&t, "kernel_shape", 2, p.k);
            tn_is(&t, "strides", 2, p.s);
            tn_s(&t, "auto_pad", modes[m]);
            amp_tensor *x = pool_input(kfloats[d], &p, 7, false);
            CHECK_NODE(&t, 1, &x, 1, true, 0.0, "MaxPool auto_pad %s %s", modes[m], amp_dtype_name(kfloats[d]));
            amp_tensor_destroy(x);
        }
}

static void t_max_pool_grad(void) {
    CT_CHECK(setup(), "setup");
    for (size_t c = 0; c < sizeof pools / sizeof pools[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int ties = 0; ties < 2; ties++) {
                /* dY has the forward output's shape */
                tnode f;
                tn_init(&f, "MaxPool", false);
                pool_attrs(&f, &pools[c]);
                amp_tensor *x = pool_input(kfloats[d], &pools[c], 60 + c, ties), *y[1];
                amp_status s = infer_outputs(&f, 1, &x, 1, y);
                if (s) amp_tensor_destroy(x);
                CT_CHECK(s == AMP_OK, "MaxPool inference: %s", amp_context_last_error(ctx));
                amp_tensor *in[2] = {rnd(kfloats[d], y[0]->rank, y[0]->dims, 80 + c, -2.0f, 2.0f), x};
                amp_tensor_destroy(y[0]);
                tnode t;
                tn_init(&t, "MaxPoolGrad", true);
                pool_attrs(&t, &pools[c]);
                /* the sums of a winner's gradients are in the CPU's order: bit-exact, 16-bit too */
                CHECK_NODE(&t, 2, in, 1, true, 0.0, "MaxPoolGrad case %zu %s ties %d", c, amp_dtype_name(kfloats[d]),
                           ties);
                free_all(in, 2);
            }
}

static void t_max_pool_refused(void) {
    CT_CHECK(setup(), "setup");
    tnode t;
    tn_init(&t, "MaxPool", false);
    pool_attrs(&t, &pools[0]);
    amp_tensor *x = pool_input(AMP_F32, &pools[0], 1, false), *ref[2], *got[2];
    amp_status s = run_both(&t, 1, &x, 2, ref, got);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "MaxPool with Indices refused, got %s", amp_status_name(s));
    const pool_case p3 = {4, {1, 1, 4, 4}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 0};
    amp_tensor_destroy(x);
    x = pool_input(AMP_F64, &p3, 1, false);
    tn_init(&t, "MaxPool", false);
    pool_attrs(&t, &p3);
    s = run_both(&t, 1, &x, 1, ref, got);
    amp_tensor_destroy(x);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "MaxPool f64 refused, got %s", amp_status_name(s));
}

/* ---- the copies, Shape ------------------------------------------------------------------------- */

static void t_copies(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[4] = {3, 1, 5, 7}, shape[2] = {5, 21}, axes[1] = {1};
    for (int d = 0; d < 3; d++) {
        amp_tensor *x = rnd(kfloats[d], 4, dims, 9, -3, 3), *in[2] = {x, ints1(shape, 2)};
        tnode t;
        tn_init(&t, "Reshape", false);
        CHECK_NODE(&t, 2, in, 1, true, 0.0, "Reshape %s", amp_dtype_name(kfloats[d]));
        tn_init(&t, "ReshapeGrad", true);
        CHECK_NODE(&t, 2, in, 1, true, 0.0, "ReshapeGrad %s", amp_dtype_name(kfloats[d]));
        tn_init(&t, "Flatten", false);
        tn_i(&t, "axis", 2);
        CHECK_NODE(&t, 1, in, 1, true, 0.0, "Flatten %s", amp_dtype_name(kfloats[d]));
        tn_init(&t, "Identity", false);
        CHECK_NODE(&t, 1, in, 1, true, 0.0, "Identity %s", amp_dtype_name(kfloats[d]));
        amp_tensor_destroy(in[1]);
        in[1] = ints1(axes, 1);
        tn_init(&t, "Squeeze", false);
        CHECK_NODE(&t, 2, in, 1, true, 0.0, "Squeeze %s", amp_dtype_name(kfloats[d]));
        tn_init(&t, "Unsqueeze", false);
        CHECK_NODE(&t, 2, in, 1, true, 0.0, "Unsqueeze %s", amp_dtype_name(kfloats[d]));
        free_all(in, 2);
    }
    /* in place (the planner aliased the output): nothing to do, the data stays */
    int64_t n = 33;
    amp_tensor *x = rnd(AMP_F32, 1, &n, 5, -1, 1);
    void *dev = NULL;
    CT_CHECK(cudaMalloc(&dev, x->nbytes) == cudaSuccess, "cudaMalloc");
    cudaMemcpy(dev, x->data, x->nbytes, cudaMemcpyHostToDevice);
    amp_tensor v;
    amp_tensor_view(&v, AMP_F32, 1, &n, dev);
    amp_tensor *io[1] = {&v};
    tnode t;
    tn_init(&t, "Identity", false);
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 17, .nin = 1, .nout = 1, .in = io, .out = io};
    amp_status s = entry_of(AMP_OP_IDENTITY)->run(&cu, &k, NULL);
    float back[33];
    cudaMemcpy(back, dev, sizeof back, cudaMemcpyDeviceToHost);
    cudaFree(dev);
    bool same = memcmp(back, x->data, sizeof back) == 0;
    amp_tensor_destroy(x);
    CT_CHECK(s == AMP_OK && same, "in-place Identity: %s", amp_status_name(s));
}

static void t_shape(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[4] = {2, 3, 5, 7};
    amp_tensor *x = rnd(AMP_BF16, 4, dims, 1, -1, 1);
    tnode t;
    tn_init(&t, "Shape", false);
    CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Shape");
    tn_init(&t, "Shape", false);
    tn_i(&t, "start", 1);
    tn_i(&t, "end", -1);
    CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Shape start 1 end -1");
    amp_tensor_destroy(x);
    x = rnd(AMP_F32, 0, NULL, 1, -1, 1);
    tn_init(&t, "Shape", false);
    CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Shape of a scalar");
    amp_tensor_destroy(x);
}

/* ---- SoftmaxCrossEntropyLoss ------------------------------------------------------------------------ */

typedef struct sce_case {
    int rank;
    int64_t dims[3]; /* N, C, D (rank 3) */
    const char *red;
    bool weight, ii, logp, t32;
} sce_case;

static const sce_case sces[] = {
    {2, {64, 10, 0}, "mean", false, false, true, false}, /* LeNet's */
    {2, {7, 10, 0}, "mean", true, true, false, false},
    {2, {1, 1000, 0}, "sum", false, false, true, true},  /* batch of one, long row */
    {2, {33, 33, 0}, "none", true, false, true, false},
    {3, {5, 7, 3}, "mean", false, true, true, true},     /* spatial positions: class stride 3 */
    {3, {2, 300, 5}, "none", false, true, false, false},
    {2, {1, 1, 0}, "mean", false, false, false, false},  /* one class */
};

/* Inputs of case c in dtype dt: scores, labels (with the ignored value planted), weights. */
static void sce_inputs(const sce_case *c, amp_dtype dt, uint64_t seed, amp_tensor **in) {
    int64_t tdims[2] = {c->dims[0], c->dims[2]};
    in[0] = rnd(dt, c->rank, c->dims, seed, -5.0f, 5.0f);
    in[1] = labels(c->t32 ? AMP_I32 : AMP_I64, c->rank - 1, tdims, c->dims[1], seed + 1);
    if (c->ii && in[1]->numel > 1) amp_sti(in[1]->dtype, in[1]->data, 1, -100); /* hit */
    in[2] = c->weight ? rnd(dt == AMP_BF16 ? AMP_F16 : AMP_F32, 1, &c->dims[1], seed + 2, 0.1f, 2.0f) : NULL;
}

static void sce_attrs(tnode *t, const sce_case *c) {
    tn_s(t, "reduction", c->red);
    if (c->ii) tn_i(t, "ignore_index", -100);
}

static void t_sce(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof sces / sizeof sces[0]; c++)
        for (int d = 0; d < 3; d++) {
            amp_tensor *in[3];
            sce_inputs(&sces[c], kfloats[d], 500 + c, in);
            tnode t;
            tn_init(&t, "SoftmaxCrossEntropyLoss", false);
            sce_attrs(&t, &sces[c]);
            int nin = sces[c].weight ? 3 : 2;
            CHECK_NODE(&t, nin, in, sces[c].logp ? 2 : 1, false, tol_of(kfloats[d]), "SCE case %zu %s", c,
                       amp_dtype_name(kfloats[d]));
            free_all(in, 3);
        }
    worst_print();
}

static void t_sce_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof sces / sizeof sces[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int v = 0; v < 3; v++) { /* 0: dY, 1: dY and dLogProb, 2: dLogProb only */
                amp_tensor *in[5] = {NULL};
                sce_inputs(&sces[c], kfloats[d], 700 + c, in + 1);
                int64_t tdims[2] = {sces[c].dims[0], sces[c].dims[2]};
                bool none = strcmp(sces[c].red, "none") == 0;
                if (v < 2) in[0] = rnd(kfloats[d], none ? sces[c].rank - 1 : 0, tdims, 900 + c, 0.5f, 2.0f);
                if (v > 0) in[4] = rnd(kfloats[d], sces[c].rank, sces[c].dims, 950 + c, -1.0f, 1.0f);
                tnode t;
                tn_init(&t, "SoftmaxCrossEntropyLossGrad", true);
                sce_attrs(&t, &sces[c]);
                CHECK_NODE(&t, 5, in, 1, false, tol_of(kfloats[d]), "SCE grad case %zu %s variant %d", c,
                           amp_dtype_name(kfloats[d]), v);
                free_all(in, 5);
            }
    worst_print();
}

/* every target ignored: mean is 0 / 0 = NaN on both backends, sum is 0 */
static void t_sce_all_ignored(void) {
    CT_CHECK(setup(), "setup");
    const sce_case c = {2, {4, 6, 0}, "mean", false, true, false, false};
    amp_tensor *in[3];
    sce_inputs(&c, AMP_F32, 3, in);
    for (int64_t i = 0; i < in[1]->numel; i++) amp_sti(in[1]->dtype, in[1]->data, i, -100);
    tnode t;
    tn_init(&t, "SoftmaxCrossEntropyLoss", false);
    sce_attrs(&t, &c);
    amp_tensor *ref[1], *got[1];
    amp_status s = run_both(&t, 2, in, 1, ref, got);
    free_all(in, 3);
    CT_CHECK(s == AMP_OK, "%s", amp_context_last_error(ctx));
    float g = *(float *)got[0]->data, r = *(float *)ref[0]->data;
    free_all(ref, 1);
    free_all(got, 1);
    CT_CHECK(isnan(g) && isnan(r), "all ignored: CUDA %g, CPU %g", g, r);
}

/* The loss kernels (the barrier kernels of this family) in every order the emulator has: the
 * same bits as the default order, and the same bits every run. */
static void t_sce_orders(void) {
    CT_CHECK(setup(), "setup");
    const sce_case c = {3, {9, 70, 3}, "mean", true, true, true, false};
    amp_tensor *in[5] = {NULL}, *first[2] = {NULL, NULL}, *firstg = NULL;
    sce_inputs(&c, AMP_F32, 77, in + 1);
    in[0] = rnd(AMP_F32, 0, NULL, 78, 0.5f, 2.0f);
    int bad = -1;
    for (int order = 0; order < 4 && bad < 0; order++) {
        int old = kt_set_order(order);
        for (int rep = 0; rep < 2 && bad < 0; rep++) {
            tnode t;
            tn_init(&t, "SoftmaxCrossEntropyLoss", false);
            sce_attrs(&t, &c);
            amp_tensor *ref[2], *got[2], *gref[1], *ggot[1];
            amp_status s = run_both(&t, 3, in + 1, 2, ref, got);
            tn_init(&t, "SoftmaxCrossEntropyLossGrad", true);
            sce_attrs(&t, &c);
            if (!s) s = run_both(&t, 4, in, 1, gref, ggot);
            if (s) {
                bad = order;
                break;
            }
            if (!first[0]) {
                first[0] = got[0];
                first[1] = got[1];
                firstg = ggot[0];
                got[0] = got[1] = ggot[0] = NULL;
            } else if (!bits_equal(got[0], first[0]) || !bits_equal(got[1], first[1]) || !bits_equal(ggot[0], firstg)) {
                bad = order;
            }
            free_all(ref, 2);
            free_all(got, 2);
            free_all(gref, 1);
            free_all(ggot, 1);
        }
        kt_set_order(old);
    }
    free_all(in, 5);
    free_all(first, 2);
    amp_tensor_destroy(firstg);
    CT_CHECK(bad < 0, "order %d changed the loss or its gradient (or failed: %s)", bad, amp_context_last_error(ctx));
}

/* A target outside [0, C): the CPU fails the step, the device cannot and gives NaN. */
static void t_sce_bad_target(void) {
    CT_CHECK(setup(), "setup");
    const sce_case c = {2, {3, 4, 0}, "none", false, false, false, false};
    amp_tensor *in[3];
    sce_inputs(&c, AMP_F32, 5, in);
    amp_sti(in[1]->dtype, in[1]->data, 2, 4);
    tnode t;
    tn_init(&t, "SoftmaxCrossEntropyLoss", false);
    sce_attrs(&t, &c);
    amp_tensor *y[1];
    amp_status s = infer_outputs(&t, 2, in, 1, y);
    CT_CHECK(s == AMP_OK, "inference");
    amp_tensor xv = *in[0], tv = *in[1], yv = *y[0];
    void *dx = NULL, *dt = NULL, *dy = NULL;
    cudaMalloc(&dx, xv.nbytes);
    cudaMalloc(&dt, tv.nbytes);
    cudaMalloc(&dy, yv.nbytes);
    cudaMemcpy(dx, in[0]->data, xv.nbytes, cudaMemcpyHostToDevice);
    cudaMemcpy(dt, in[1]->data, tv.nbytes, cudaMemcpyHostToDevice);
    xv.data = dx, tv.data = dt, yv.data = dy;
    xv.owns = tv.owns = yv.owns = 0;
    amp_tensor *ki[2] = {&xv, &tv}, *ko[1] = {&yv};
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 17, .nin = 2, .nout = 1, .in = ki, .out = ko};
    const amp_cuda_op *e = entry_of(AMP_OP_SOFTMAX_CE_LOSS);
    void *state = NULL;
    size_t ws = 0;
    s = e->prepare(&cu, &k, &state, &ws);
    if (!s) s = e->run(&cu, &k, state);
    e->release(&cu, state);
    float loss[3];
    cudaMemcpy(loss, dy, sizeof loss, cudaMemcpyDeviceToHost);
    cudaFree(dx);
    cudaFree(dt);
    cudaFree(dy);
    free_all(in, 3);
    free_all(y, 1);
    CT_CHECK(s == AMP_OK && !isnan(loss[0]) && !isnan(loss[1]) && isnan(loss[2]), "losses %g %g %g", loss[0], loss[1],
             loss[2]);
}

/* ---- the planted bug --------------------------------------------------------------------------- */

/* Row log-sum-exp of [rows, c] by the loss's block reduction, against a double reference; the
 * variant without barriers must be wrong (or fail) in at least one order, the right one never. */
static void t_planted_missing_barrier(void) {
#ifndef AMP_CUDA_EMULATED
    CT_SKIP("the planted bug is the emulator's to catch");
#endif
    CT_CHECK(setup(), "setup");
    const int64_t rows = 5, c = 300;
    size_t n = (size_t)(rows * c);
    float *x = malloc(sizeof(float) * n);
    double ref[5], out[5];
    ct_fill(x, n, 99, -4.0f, 4.0f);
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < c; j++) m = x[r * c + j] > m ? x[r * c + j] : m;
        for (int64_t j = 0; j < c; j++) s += exp(x[r * c + j] - m);
        ref[r] = m + log(s);
    }
    float *dx = NULL;
    double *dout = NULL;
    bool ok = cudaMalloc((void **)&dx, sizeof(float) * n) == cudaSuccess &&
              cudaMalloc((void **)&dout, sizeof out) == cudaSuccess &&
              cudaMemcpy(dx, x, sizeof(float) * n, cudaMemcpyHostToDevice) == cudaSuccess;
    free(x);
    int right_ok = 1, planted_caught = 0;
    for (int order = 0; ok && order < 4; order++) {
        int old = kt_set_order(order);
        for (int planted = 0; planted < 2; planted++) {
            cudaMemset(dout, 0xFF, sizeof out);
            cudaError_t e = kt_row_lse(planted, dx, rows, c, 128, dout);
            cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
            double err = 0;
            for (int r = 0; r < rows; r++) {
                double d = fabs(out[r] - ref[r]) / fabs(ref[r]);
                err = d > err || d != d ? d : err;
            }
            bool good = e == cudaSuccess && err < 1e-12;
            if (planted) {
                planted_caught |= !good;
                printf("  planted, order %d: %s\n", order,
                       e != cudaSuccess ? "launch failed" : good ? "NOT CAUGHT" : "wrong result");
            } else {
                right_ok &= good;
            }
        }
        kt_set_order(old);
    }
    cudaFree(dx);
    cudaFree(dout);
    CT_CHECK(ok, "device memory");
    CT_CHECK(right_ok, "the reduction with its barriers is wrong");
    CT_CHECK(planted_caught, "the reduction without barriers passed in every order");
}

static void t_no_leak(void) {
#ifndef AMP_CUDA_EMULATED
    CT_SKIP("device regions are counted by the emulator's runtime");
#else
    CT_CHECK(setup(), "setup");
    CT_CHECK(amp_emu_device_regions() == 0, "%zu device regions left by the cases", amp_emu_device_regions());
#endif
}

/* ---- Add, Sub, Mul, Div; SumToShape ---------------------------------------------------------- */

/* shapes of A, B (and so of Y): the same, scalars either side, rows, columns, a bias per channel,
 * both sides broadcast, odd sizes, a 1-element and an empty output */
typedef struct bin_case {
    int ra, rb;
    int64_t a[4], b[4];
} bin_case;

static const bin_case bin_cases[] = {
    {2, 2, {7, 33}, {7, 33}},          {3, 0, {2, 3, 5}, {0}},            {0, 3, {0}, {2, 3, 5}},
    {2, 1, {9, 31}, {31}},             {2, 2, {9, 31}, {9, 1}},           {4, 3, {2, 6, 5, 5}, {6, 1, 1}},
    {3, 3, {4, 1, 7}, {1, 5, 1}},      {4, 4, {1, 3, 1, 9}, {2, 1, 4, 1}}, {1, 1, {1}, {1}},
    {2, 2, {0, 5}, {1, 5}},            {1, 1, {1001}, {1001}},
};

static void t_binary(void) {
    CT_CHECK(setup(), "setup");
    const char *ops[] = {"Add", "Sub", "Mul", "Div"};
    for (int o = 0; o < 4; o++)
        for (int d = 0; d < 3; d++)
            for (size_t c = 0; c < sizeof bin_cases / sizeof bin_cases[0]; c++) {
                const bin_case *bc = &bin_cases[c];
                tnode t;
                tn_init(&t, ops[o], false);
                /* divisors kept away from zero; signs mixed */
                amp_tensor *in[2] = {rnd(kfloats[d], bc->ra, bc->a, 500 + c, -3.0f, 3.0f),
                                     rnd(kfloats[d], bc->rb, bc->b, 600 + c, o == 3 ? 0.25f : -3.0f, 3.0f)};
                /* the formula is the CPU's (one IEEE operation, one rounding): the same bits */
                CHECK_NODE(&t, 2, in, 1, true, 0.0, "%s %s case %zu", ops[o], amp_dtype_name(kfloats[d]), c);
                free_all(in, 2);
            }
}

/* mixed dtypes and the old broadcast attributes are refused, with the reason */
static void t_binary_refused(void) {
    CT_CHECK(setup(), "setup");
    const int64_t dims[2] = {3, 4};
    tnode t;
    tn_init(&t, "Add", false);
    amp_tensor *in[2] = {rnd(AMP_F32, 2, dims, 1, -1, 1), rnd(AMP_F16, 2, dims, 2, -1, 1)};
    amp_tensor *ref[1], *got[1];
    amp_status s = run_both(&t, 2, in, 1, ref, got);
    free_all(in, 2);
    if (s == AMP_OK) {
        free_all(ref, 1);
        free_all(got, 1);
    }
    CT_CHECK(s == AMP_ERR_UNSUPPORTED || s == AMP_ERR_SHAPE, "f32 + f16: %s", amp_status_name(s));
    /* the planner's broadcast rules: what does not broadcast is refused by the plan itself */
    amp_k_bcast g;
    const int64_t y[2] = {3, 4}, a[2] = {3, 4}, b[2] = {2, 4};
    CT_CHECK(!amp_k_bcast_plan(2, y, 2, a, 2, b, &g), "[2,4] does not broadcast to [3,4]");
    const int64_t b2[1] = {4};
    CT_CHECK(amp_k_bcast_plan(2, y, 2, a, 1, b2, &g) && g.rank == 2 && g.sb[0] == 0 && g.sb[1] == 1 && !g.flat,
             "a row broadcast: rank %d, b strides %lld %lld", g.rank, (long long)g.sb[0], (long long)g.sb[1]);
    const int64_t y3[3] = {2, 3, 4}, a3[3] = {2, 3, 4};
    CT_CHECK(amp_k_bcast_plan(3, y3, 3, a3, 3, a3, &g) && g.rank == 1 && g.flat && g.dims[0] == 24,
             "same shapes collapse to one flat dim");
}

/* SumToShape as autodiff emits it for the broadcasts above, and with "axis" */
static void t_sum_to_shape(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    typedef struct {
        int rx, rt;
        int64_t x[4], t[4];
        int axis; /* -100: none */
    } s2s_case;
    const s2s_case cases_[] = {
        {4, 1, {2, 6, 5, 5}, {5}, -100},        {4, 3, {2, 6, 5, 5}, {6, 1, 1}, -100}, {2, 1, {9, 31}, {31}, -100},
        {2, 2, {9, 31}, {9, 1}, -100},          {3, 3, {4, 5, 7}, {1, 5, 1}, -100},    {2, 0, {7, 33}, {0}, -100},
        {2, 2, {7, 33}, {7, 33}, -100},         {4, 1, {2, 6, 5, 5}, {6}, 1},          {2, 1, {0, 5}, {5}, -100},
        {3, 1, {64, 20, 24}, {20}, 1},          {1, 0, {1}, {0}, -100},
    };
    for (int d = 0; d < 3; d++)
        for (size_t c = 0; c < sizeof cases_ / sizeof cases_[0]; c++) {
            const s2s_case *sc = &cases_[c];
            tnode t;
            tn_init(&t, "SumToShape", true);
            if (sc->axis != -100) tn_i(&t, "axis", sc->axis);
            amp_tensor *in[2] = {rnd(kfloats[d], sc->rx, sc->x, 700 + c, -2.0f, 2.0f), ints1(sc->t, sc->rt)};
            /* both sides sum in double and round once; the orders differ, so f32 may differ in
             * the last bit, 16-bit results hardly ever */
            CHECK_NODE(&t, 2, in, 1, false, kfloats[d] == AMP_F32 ? 1e-7 : tol_of(kfloats[d]), "SumToShape %s case %zu",
                       amp_dtype_name(kfloats[d]), c);
            free_all(in, 2);
        }
    worst_print();
}

static const ct_case cases[] = {
    {"cast", t_cast},
    {"cast_like_empty", t_cast_like_and_empty},
    {"cast_refused", t_cast_refused},
    {"binary", t_binary},
    {"binary_refused", t_binary_refused},
    {"sum_to_shape", t_sum_to_shape},
    {"unary", t_unary},
    {"unary_grad", t_unary_grad},
    {"unary_edges", t_unary_edges},
    {"misaligned", t_misaligned},
    {"max_pool", t_max_pool},
    {"max_pool_auto_pad", t_max_pool_auto_pad},
    {"max_pool_grad", t_max_pool_grad},
    {"max_pool_refused", t_max_pool_refused},
    {"copies", t_copies},
    {"shape", t_shape},
    {"sce", t_sce},
    {"sce_grad", t_sce_grad},
    {"sce_all_ignored", t_sce_all_ignored},
    {"sce_orders", t_sce_orders},
    {"sce_bad_target", t_sce_bad_target},
    {"planted_missing_barrier", t_planted_missing_barrier},
    {"no_leak", t_no_leak},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }
