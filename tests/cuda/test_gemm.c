/* The GEMM family of the CUDA backend (backends/cuda/op_gemm.c, gemm.c) against the CPU backend:
 * Gemm, MatMul and MatMulGrad nodes run through amp_cuda_ops_gemm on device memory and through
 * amp_backend_run_once on the CPU with the same host tensors, compared by relative L2 error.
 *
 * Thresholds: both sides multiply the same rounded operands and accumulate in f32 or better
 * (OpenBLAS in f32, the emulated cuBLASLt in double), then round once to the output dtype. What
 * differs is the order of the f32 sums (about K * 2^-24 relative: K <= 400 here) and, in 16-bit
 * outputs, a rounding that falls the other way where the two sums straddle a rounding boundary
 * (one ulp on few elements: 2^-11 for f16, 2^-8 for bf16). So f32 1e-5, f16 2e-3, bf16 1.5e-2
 * hold with room; the measured errors are printed with -v.
 *
 * The same program runs on a GPU (built without AMP_CUDA_EMULATED): the cases that ask the
 * emulator what it saw (refusals, counters, device regions) are the emulator's only. */
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stdlib.h>

#include "backends/backend.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_cublaslt.h"
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "backends/cuda/gemm.h"
#include "backends/elementwise.h"
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_test.h"

static amp_context *g_ctx;
static amp_backend *g_cpu;
static amp_cuda g_cu;
static int g_verbose;
static double g_worst[3]; /* f32, f16, bf16: the largest error seen */

static const amp_dtype DTYPES[3] = {AMP_F32, AMP_F16, AMP_BF16};

static int dt_index(amp_dtype dt) { return dt == AMP_F32 ? 0 : dt == AMP_F16 ? 1 : 2; }

static double threshold(amp_dtype dt) { return dt == AMP_F32 ? 1e-5 : dt == AMP_F16 ? 2e-3 : 1.5e-2; }

/* ---- nodes ---------------------------------------------------------------------------------- */

typedef struct tnode {
    amp_node n;
    amp_attr attrs[8];
    int64_t opset;
} tnode;

static void tn_init(tnode *t, const char *op, const char *domain, int64_t opset) {
    memset(t, 0, sizeof *t);
    t->n.name = (char *)"gemm_test";
    t->n.op_type = (char *)op;
    t->n.domain = (char *)domain;
    t->n.op = amp_op_lookup(op, domain);
    t->n.attrs = t->attrs;
    t->opset = opset;
}

static void tn_int(tnode *t, const char *name, int64_t v) {
    amp_attr *a = &t->attrs[t->n.n_attrs++];
    a->name = (char *)name;
    a->kind = AMP_ATTR_INT;
    a->i = v;
}

static void tn_float(tnode *t, const char *name, float v) {
    amp_attr *a = &t->attrs[t->n.n_attrs++];
    a->name = (char *)name;
    a->kind = AMP_ATTR_FLOAT;
    a->f = v;
}

static const amp_cuda_op *family_entry(amp_op op) {
    for (const amp_cuda_op *e = amp_cuda_ops_gemm; e->run; e++)
        if (e->op == op) return e;
    return NULL;
}

/* a host tensor of dt with fresh non-zero values in [-1, 1) */
static amp_tensor *rand_tensor(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    amp_tensor *t = NULL;
    if (amp_tensor_create(g_ctx, dt, rank, dims, &t)) return NULL;
    float *v = malloc(sizeof(float) * (size_t)(t->numel + 1));
    if (!v) {
        amp_tensor_destroy(t);
        return NULL;
    }
    ct_fill(v, (size_t)t->numel, seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < t->numel; i++) amp_st(dt, t->data, i, v[i]);
    free(v);
    return t;
}

static float *to_f32(const amp_tensor *t) {
    float *v = malloc(sizeof(float) * (size_t)(t->numel + 1));
    if (v)
        for (int64_t i = 0; i < t->numel; i++) v[i] = (float)amp_ld(t->dtype, t->data, i);
    return v;
}

/* ---- one node on both backends -------------------------------------------------------------- */

typedef struct outcome {
    amp_status cpu, cuda;   /* statuses; cuda is AMP_ERR_UNSUPPORTED when supports() said no */
    double err;             /* rel L2 of CUDA against the CPU; INFINITY on a non-finite value */
    bool zeros;             /* both outputs are all zero */
    size_t ws;              /* the workspace prepare asked for */
} outcome;

/* Device tensors start SHIFT bytes into their allocation: 16-byte aligned, as the family
 * assumes, and no more (the arena's 256 would hide a plan that counts on more). */
#define SHIFT 16

/* Runs n on the CPU and through amp_cuda_ops_gemm with the same inputs (in[i] may be NULL for an
 * omitted input); the output is y of dt with yrank dims. */
static outcome run_both(const tnode *t, int nin, amp_tensor **in, amp_dtype dt, int yrank, const int64_t *ydims) {
    outcome o = {.cpu = AMP_ERR_INTERNAL, .cuda = AMP_ERR_INTERNAL, .err = INFINITY};
    amp_tensor *ycpu = NULL, *ydev_host = NULL;
    amp_tensor dv[4], dy;
    amp_tensor *dvp[4] = {NULL, NULL, NULL, NULL};
    void *dmem[4] = {NULL, NULL, NULL, NULL}, *ymem = NULL, *ws = NULL, *state = NULL;
    float *a = NULL, *b = NULL;
    const amp_cuda_op *e = family_entry(t->n.op);
    if (!e || amp_tensor_create(g_ctx, dt, yrank, ydims, &ycpu) ||
        amp_tensor_create(g_ctx, dt, yrank, ydims, &ydev_host))
        goto done;
    amp_tensor *yout[1] = {ycpu};
    amp_kernel kc = {.ctx = g_ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = 1, .in = in, .out = yout,
                     .threads = 1};
    o.cpu = amp_backend_run_once(g_cpu, &kc);
    if (o.cpu) goto done;

    for (int i = 0; i < nin; i++) {
        if (!in[i]) continue;
        if (cudaMalloc(&dmem[i], in[i]->nbytes + SHIFT) ||
            cudaMemcpy((char *)dmem[i] + SHIFT, in[i]->data, in[i]->nbytes, cudaMemcpyHostToDevice))
            goto done;
        amp_tensor_view(&dv[i], in[i]->dtype, in[i]->rank, in[i]->dims, (char *)dmem[i] + SHIFT);
        dvp[i] = &dv[i];
    }
    if (cudaMalloc(&ymem, ycpu->nbytes + SHIFT)) goto done; /* the fake fills it with NaN */
    amp_tensor_view(&dy, dt, yrank, ydims, (char *)ymem + SHIFT);
    amp_tensor *dout[1] = {&dy};
    amp_kernel kd = {.ctx = g_ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = 1, .in = dvp, .out = dout,
                     .threads = 1};
    if (!e->supports(&g_cu, &kd)) {
        o.cuda = AMP_ERR_UNSUPPORTED;
        goto done;
    }
    size_t wsb = 0;
    if ((o.cuda = e->prepare(&g_cu, &kd, &state, &wsb))) goto done;
    o.ws = wsb;
    if (wsb && cudaMalloc(&ws, wsb)) goto done;
    kd.ws = ws;
    kd.ws_bytes = wsb;
    if ((o.cuda = e->run(&g_cu, &kd, state))) goto done;
    o.cuda = AMP_CUDA_RT(g_ctx, cudaStreamSynchronize(g_cu.stream));
    if (!o.cuda)
        o.cuda = AMP_CUDA_RT(g_ctx, cudaMemcpy(ydev_host->data, (char *)ymem + SHIFT, ycpu->nbytes,
                                               cudaMemcpyDeviceToHost));
    if (o.cuda) goto done;
    a = to_f32(ydev_host);
    b = to_f32(ycpu);
    if (!a || !b) goto done;
    o.zeros = true;
    for (int64_t i = 0; i < ycpu->numel; i++) o.zeros = o.zeros && a[i] == 0.0f && b[i] == 0.0f;
    o.err = ct_max_abs(a, b, (size_t)ycpu->numel) == INFINITY ? INFINITY : ct_rel_l2(a, b, (size_t)ycpu->numel);
done:
    if (state) e->release(&g_cu, state);
    cudaFree(ws);
    cudaFree(ymem);
    for (int i = 0; i < 4; i++) cudaFree(dmem[i]);
    free(a);
    free(b);
    amp_tensor_destroy(ycpu);
    amp_tensor_destroy(ydev_host);
    return o;
}

/* records the error and whether it is within the dtype's threshold */
static bool good(const outcome *o, amp_dtype dt, const char *what) {
    if (o->cpu || o->cuda) return false;
    double *w = &g_worst[dt_index(dt)];
    if (o->err > *w) *w = o->err;
    if (g_verbose) printf("    %-40s %-4s rel L2 %.3g\n", what, amp_dtype_name(dt), o->err);
    return o->err <= threshold(dt);
}

#define CHECK_OUTCOME(o, dt, ...)                                                                          \
    do {                                                                                                   \
        char what_[200];                                                                                   \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                        \
        CT_CHECK(good(&(o), (dt), what_), "%s (%s): cpu %s, cuda %s (%s), rel L2 %g > %g", what_,         \
                 amp_dtype_name(dt), amp_status_name((o).cpu), amp_status_name((o).cuda),                  \
                 amp_context_last_error(g_ctx), (o).err, threshold(dt));                                   \
    } while (0)

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* ---- Gemm ----------------------------------------------------------------------------------- */

enum { GC_NONE, GC_VEC, GC_ROW, GC_FULL, GC_FULL_BETA1, GC_COUNT };
static const char *const GC_NAMES[GC_COUNT] = {"no C", "C [N]", "C [1,N]", "C [M,N] beta -1.5", "C [M,N] beta 1"};

static outcome run_gemm(amp_dtype dt, int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha, float beta,
                        int crank, const int64_t *cdims, int64_t opset, uint64_t seed) {
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N}, yd[2] = {M, N};
    amp_tensor *in[3] = {rand_tensor(dt, 2, ad, seed), rand_tensor(dt, 2, bd, seed + 1),
                         crank >= 0 ? rand_tensor(dt, crank, cdims, seed + 2) : NULL};
    tnode t;
    tn_init(&t, "Gemm", "", opset);
    if (ta) tn_int(&t, "transA", 1);
    if (tb) tn_int(&t, "transB", 1);
    if (alpha != 1.0f) tn_float(&t, "alpha", alpha);
    if (beta != 1.0f) tn_float(&t, "beta", beta);
    outcome o = run_both(&t, crank >= 0 ? 3 : 2, in, dt, 2, yd);
    free_all(in, 3);
    return o;
}

static void gemm_suite(amp_dtype dt) {
    static const int64_t sizes[][3] = {{7, 33, 127}, {1, 1, 1}, {33, 7, 1}, {127, 1, 33}, {5, 3, 7}};
    uint64_t seed = 100;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int tr = 0; tr < 4; tr++)
            for (int c = 0; c < GC_COUNT; c++) {
                const int64_t M = sizes[si][0], N = sizes[si][1], K = sizes[si][2];
                int64_t cd[2] = {c == GC_VEC ? N : c == GC_ROW ? 1 : M, N};
                int crank = c == GC_NONE ? -1 : c == GC_VEC ? 1 : 2;
                float alpha = c == GC_FULL ? 0.5f : 1.0f, beta = c == GC_FULL ? -1.5f : 1.0f;
                if (c == GC_VEC) cd[0] = N;
                outcome o = run_gemm(dt, M, N, K, tr & 1, tr >> 1, alpha, beta, crank, cd, 13, seed += 3);
                CHECK_OUTCOME(o, dt, "gemm M %lld N %lld K %lld transA %d transB %d %s", (long long)M, (long long)N,
                              (long long)K, tr & 1, tr >> 1, GC_NAMES[c]);
            }
}

static void t_gemm_f32(void) { gemm_suite(AMP_F32); }
static void t_gemm_f16(void) { gemm_suite(AMP_F16); }
static void t_gemm_bf16(void) { gemm_suite(AMP_BF16); }

/* the fully connected layers of LeNet, forward and the two gradient Gemms amp_grad_matmul builds */
static void t_gemm_lenet_shapes(void) {
    for (int di = 0; di < 3; di++) {
        amp_dtype dt = DTYPES[di];
        int64_t bias[1] = {120};
        outcome o = run_gemm(dt, 64, 120, 400, 0, 1, 1.0f, 1.0f, 1, bias, 13, 7);
        CHECK_OUTCOME(o, dt, "fc forward x W^T + b");
        o = run_gemm(dt, 64, 400, 120, 0, 0, 1.0f, 0.0f, -1, NULL, 13, 8);
        CHECK_OUTCOME(o, dt, "fc dX = dY W");
        o = run_gemm(dt, 120, 400, 64, 1, 0, 1.0f, 0.0f, -1, NULL, 13, 9);
        CHECK_OUTCOME(o, dt, "fc dW = dY^T X");
    }
}

/* C broadcasts that the family refuses, with a reason; beta 0 ignores C; opset 9's zero C */
static void t_gemm_c_broadcasts(void) {
    int64_t col[2] = {7, 1}, row[1] = {5}, one[1] = {1};
    outcome o = run_gemm(AMP_F32, 7, 5, 3, 0, 0, 1.0f, 1.0f, 2, col, 13, 20);
    CT_CHECK(o.cpu == AMP_OK && o.cuda == AMP_ERR_UNSUPPORTED, "C [M,1] refused: %s", amp_status_name(o.cuda));
    o = run_gemm(AMP_F32, 7, 5, 3, 0, 0, 1.0f, 1.0f, 0, NULL, 13, 21);
    CT_CHECK(o.cuda == AMP_ERR_UNSUPPORTED, "scalar C refused: %s", amp_status_name(o.cuda));
    o = run_gemm(AMP_F16, 7, 5, 3, 0, 0, 1.0f, 0.5f, 1, row, 13, 22);
    CT_CHECK(o.cuda == AMP_ERR_UNSUPPORTED, "row C with beta 0.5 refused: %s", amp_status_name(o.cuda));
    o = run_gemm(AMP_BF16, 7, 5, 3, 1, 1, 2.0f, 0.0f, 2, col, 13, 23);
    CHECK_OUTCOME(o, AMP_BF16, "C [M,1] with beta 0 is ignored");
    o = run_gemm(AMP_F32, 7, 5, 3, 0, 1, 1.0f, 0.0f, 1, one, 9, 24);
    CHECK_OUTCOME(o, AMP_F32, "opset 9: zero C [1] with beta 0");
    o = run_gemm(AMP_F16, 1, 5, 3, 0, 0, 1.0f, -2.0f, 1, row, 13, 25);
    CHECK_OUTCOME(o, AMP_F16, "M 1: C [N] is the full C, beta -2");

    /* the reason names the shape and what is supported */
    int64_t ad[2] = {7, 3}, bd[2] = {3, 5};
    amp_tensor *in[3] = {rand_tensor(AMP_F32, 2, ad, 1), rand_tensor(AMP_F32, 2, bd, 2),
                         rand_tensor(AMP_F32, 2, col, 3)};
    amp_tensor *y = NULL;
    int64_t yd[2] = {7, 5};
    amp_tensor_create(g_ctx, AMP_F32, 2, yd, &y);
    tnode t;
    tn_init(&t, "Gemm", "", 13);
    amp_kernel k = {.ctx = g_ctx, .n = &t.n, .opset = 13, .nin = 3, .nout = 1, .in = in, .out = &y};
    char why[256];
    const char *w = amp_cuda_gemm_why(&k, why, sizeof why);
    bool ok = w && strstr(w, "[7,1]") && strstr(w, "beta 1");
    /* mixed operand dtypes are refused too */
    amp_tensor *b16 = rand_tensor(AMP_F16, 2, bd, 4);
    amp_tensor *mixed[2] = {in[0], b16};
    k.nin = 2;
    k.in = mixed;
    const char *w2 = amp_cuda_gemm_why(&k, why, sizeof why);
    bool ok2 = w2 && strstr(w2, "mixed");
    free_all(in, 3);
    amp_tensor_destroy(b16);
    amp_tensor_destroy(y);
    CT_CHECK(ok, "why: %s", w ? w : "(none)");
    CT_CHECK(ok2, "why mixed: %s", w2 ? w2 : "(none)");
}

static void t_gemm_empty(void) {
    for (int di = 0; di < 3; di++) {
        outcome o = run_gemm(DTYPES[di], 0, 5, 3, 0, 0, 1.0f, 1.0f, -1, NULL, 13, 30);
        CT_CHECK(o.cpu == AMP_OK && o.cuda == AMP_OK, "M 0: %s", amp_context_last_error(g_ctx));
        o = run_gemm(DTYPES[di], 4, 5, 0, 1, 0, 1.0f, 1.0f, -1, NULL, 13, 31);
        CT_CHECK(o.cpu == AMP_OK && o.cuda == AMP_OK && o.zeros, "K 0: zeros (%s)", amp_context_last_error(g_ctx));
    }
}

/* ---- MatMul and MatMulGrad ------------------------------------------------------------------ */

typedef struct mm_case {
    int ra;
    int64_t a[4];
    int rb;
    int64_t b[4];
} mm_case;

static const mm_case MM_CASES[] = {
    {2, {7, 33}, 2, {33, 5}},           /* one product */
    {3, {3, 7, 33}, 2, {33, 5}},        /* A's batch stacks into rows */
    {1, {33}, 2, {33, 5}},              /* 1-D A */
    {2, {7, 33}, 1, {33}},              /* 1-D B */
    {1, {33}, 1, {33}},                 /* a dot product: a scalar */
    {1, {1}, 1, {1}},                   /* one element */
    {3, {3, 7, 5}, 3, {3, 5, 4}},       /* strided batch */
    {2, {7, 5}, 3, {4, 5, 6}},          /* A broadcast: stride 0 */
    {3, {1, 7, 5}, 3, {4, 5, 6}},       /* A broadcast by a 1 */
    {4, {2, 1, 7, 5}, 3, {3, 5, 4}},    /* both broadcast: split into strided batches */
    {4, {2, 3, 7, 5}, 4, {2, 1, 5, 4}}, /* B broadcast on an inner dim */
    {4, {2, 1, 1, 1}, 4, {1, 3, 1, 1}}, /* 1x1 matrices, broadcast batch */
    {2, {127, 33}, 2, {33, 127}},       /* odd sizes */
    {2, {0, 5}, 2, {5, 3}},             /* empty output */
    {2, {3, 0}, 2, {0, 4}},             /* K 0: zeros */
    {3, {2, 3, 0}, 2, {0, 4}},          /* K 0, batched */
};

/* numpy's MatMul output shape */
static int mm_ydims(const mm_case *c, int64_t *y) {
    int ra = c->ra > 2 ? c->ra - 2 : 0, rb = c->rb > 2 ? c->rb - 2 : 0, r = ra > rb ? ra : rb, n = 0;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - ra), ib = i - (r - rb);
        int64_t da = ia >= 0 ? c->a[ia] : 1, db = ib >= 0 ? c->b[ib] : 1;
        y[n++] = da == 1 ? db : da;
    }
    if (c->ra > 1) y[n++] = c->a[c->ra - 2];
    if (c->rb > 1) y[n++] = c->b[c->rb - 1];
    return n;
}

static void matmul_suite(amp_dtype dt) {
    for (size_t i = 0; i < sizeof MM_CASES / sizeof MM_CASES[0]; i++) {
        const mm_case *c = &MM_CASES[i];
        int64_t yd[6];
        int ry = mm_ydims(c, yd);
        amp_tensor *in[2] = {rand_tensor(dt, c->ra, c->a, 40 + i), rand_tensor(dt, c->rb, c->b, 60 + i)};
        tnode t;
        tn_init(&t, "MatMul", "", 13);
        outcome o = run_both(&t, 2, in, dt, ry, yd);
        free_all(in, 2);
        CHECK_OUTCOME(o, dt, "matmul case %zu", i);
    }
}

static void t_matmul_f32(void) { matmul_suite(AMP_F32); }
static void t_matmul_f16(void) { matmul_suite(AMP_F16); }
static void t_matmul_bf16(void) { matmul_suite(AMP_BF16); }

static void matmul_grad_suite(amp_dtype dt) {
    for (size_t i = 0; i < sizeof MM_CASES / sizeof MM_CASES[0]; i++)
        for (int wrt = 0; wrt < 2; wrt++) {
            const mm_case *c = &MM_CASES[i];
            int64_t yd[6];
            int ry = mm_ydims(c, yd);
            amp_tensor *in[3] = {rand_tensor(dt, ry, yd, 80 + i), rand_tensor(dt, c->ra, c->a, 40 + i),
                                 rand_tensor(dt, c->rb, c->b, 60 + i)};
            tnode t;
            tn_init(&t, "MatMulGrad", AMP_TRAIN_DOMAIN, 1);
            tn_int(&t, "wrt", wrt);
            const amp_tensor *o_shape = wrt ? in[2] : in[1];
            outcome o = run_both(&t, 3, in, dt, o_shape->rank, o_shape->dims);
            free_all(in, 3);
            CHECK_OUTCOME(o, dt, "matmul grad case %zu wrt %d", i, wrt);
        }
}

static void t_matmul_grad_f32(void) { matmul_grad_suite(AMP_F32); }
static void t_matmul_grad_f16(void) { matmul_grad_suite(AMP_F16); }
static void t_matmul_grad_bf16(void) { matmul_grad_suite(AMP_BF16); }

/* ---- the plan's choices, and planted bugs --------------------------------------------------- */

/* TF32 only when asked: the fake rounds operands to TF32 when the descriptor's compute type
 * (read back) says so, which makes the f32 error visible */
static void t_tf32_only_when_asked(void) {
    g_cu.allow_tf32 = true;
    outcome on = run_gemm(AMP_F32, 33, 17, 127, 0, 0, 1.0f, 1.0f, -1, NULL, 13, 50);
    g_cu.allow_tf32 = false;
    outcome off = run_gemm(AMP_F32, 33, 17, 127, 0, 0, 1.0f, 1.0f, -1, NULL, 13, 50);
    CT_CHECK(on.cuda == AMP_OK && off.cuda == AMP_OK, "runs: %s", amp_context_last_error(g_ctx));
    CT_CHECK(off.err < 1e-6, "full FP32 by default: rel L2 %g", off.err);
    CT_CHECK(on.err > 1e-5 && on.err < 5e-3, "TF32 when allowed: rel L2 %g", on.err);
}

typedef struct dbuf {
    void *p;
    size_t bytes;
} dbuf;

/* frees the three operands, the workspace and the host tensors of a hand-made GEMM */
static void free_gemm_bufs(dbuf *a, dbuf *b, dbuf *d, void *ws, amp_tensor *A, amp_tensor *B) {
    cudaFree(a->p);
    cudaFree(b->p);
    cudaFree(d->p);
    cudaFree(ws);
    amp_tensor_destroy(A);
    amp_tensor_destroy(B);
}

/* t on the device, followed by pad zero bytes */
static bool dput(dbuf *d, const amp_tensor *t, size_t pad) {
    d->bytes = t->nbytes + pad;
    if (cudaMalloc(&d->p, d->bytes) || cudaMemset(d->p, 0, d->bytes)) return false;
    return cudaMemcpy(d->p, t->data, t->nbytes, cudaMemcpyHostToDevice) == cudaSuccess;
}

/* A plan whose layouts swap m and n computes something else: the comparison must notice (the
 * buffers are padded so the wrong GEMM stays inside device memory and runs). */
static void t_planted_swapped_mn(void) {
    const int64_t M = 7, N = 5, K = 3, ad[2] = {M, K}, bd[2] = {K, N};
    amp_tensor *A = rand_tensor(AMP_F32, 2, ad, 70), *B = rand_tensor(AMP_F32, 2, bd, 71);
    dbuf a = {0}, b = {0}, d = {0};
    float ref[35], got[35];
    amp_cuda_gemm *good_plan = NULL, *bad_plan = NULL;
    size_t ws1 = 0, ws2 = 0;
    void *ws = NULL;
    bool ok = dput(&a, A, 256) && dput(&b, B, 256) && cudaMalloc(&d.p, 35 * 4 + 256) == cudaSuccess &&
              cudaMalloc(&ws, AMP_CUDA_GEMM_WS_DEFAULT) == cudaSuccess;
    amp_cuda_gemm_desc gd = {.dtype = AMP_F32, .m = M, .n = N, .k = K, .alpha = 1.0f};
    amp_cuda_gemm_desc bdsc = gd;
    bdsc.m = N;
    bdsc.n = M;
    amp_status s1 = ok ? amp_cuda_gemm_plan(&g_cu, &gd, &good_plan, &ws1) : AMP_ERR_INTERNAL;
    amp_status s2 = ok ? amp_cuda_gemm_plan(&g_cu, &bdsc, &bad_plan, &ws2) : AMP_ERR_INTERNAL;
    amp_status r1 = s1 ? s1 : amp_cuda_gemm_run(&g_cu, good_plan, a.p, b.p, NULL, d.p, NULL, ws);
    if (!r1) r1 = AMP_CUDA_RT(g_ctx, cudaMemcpy(ref, d.p, sizeof ref, cudaMemcpyDeviceToHost));
    amp_status r2 = s2 ? s2 : amp_cuda_gemm_run(&g_cu, bad_plan, a.p, b.p, NULL, d.p, NULL, ws);
    if (!r2) r2 = AMP_CUDA_RT(g_ctx, cudaMemcpy(got, d.p, sizeof got, cudaMemcpyDeviceToHost));
    /* the CPU's answer, to know the good plan is right */
    float cpu[35];
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t q = 0; q < K; q++)
                acc += amp_ld(AMP_F32, A->data, m * K + q) * amp_ld(AMP_F32, B->data, q * N + n);
            cpu[m * N + n] = (float)acc;
        }
    amp_cuda_gemm_free(good_plan);
    amp_cuda_gemm_free(bad_plan);
    free_gemm_bufs(&a, &b, &d, ws, A, B);
    CT_CHECK(ok && !r1 && !r2, "runs: %s", amp_context_last_error(g_ctx));
    CT_CHECK(ct_rel_l2(ref, cpu, 35) < 1e-6, "the right plan: rel L2 %g", ct_rel_l2(ref, cpu, 35));
    CT_CHECK(ct_rel_l2(got, cpu, 35) > 0.1, "swapped m and n must differ: rel L2 %g", ct_rel_l2(got, cpu, 35));
}

#ifdef AMP_CUDA_EMULATED
/* A host pointer as A must fail (the fake checks every operand is device memory) with a message;
 * so must a missing workspace and an operand that breaks the plan's alignment. */
static void t_planted_bad_pointers(void) {
    const int64_t ad[2] = {7, 3}, bd[2] = {3, 5};
    amp_tensor *A = rand_tensor(AMP_F16, 2, ad, 72), *B = rand_tensor(AMP_F16, 2, bd, 73);
    dbuf a = {0}, b = {0}, d = {0};
    void *ws = NULL;
    amp_cuda_gemm *g = NULL;
    size_t wsb = 0;
    bool ok = dput(&a, A, 64) && dput(&b, B, 0) && cudaMalloc(&d.p, 35 * 2 + 64) == cudaSuccess;
    amp_cuda_gemm_desc gd = {.dtype = AMP_F16, .m = 7, .n = 5, .k = 3, .alpha = 1.0f};
    amp_status sp = ok ? amp_cuda_gemm_plan(&g_cu, &gd, &g, &wsb) : AMP_ERR_INTERNAL;
    if (!sp && wsb) ok = cudaMalloc(&ws, wsb) == cudaSuccess;
    char m_host[512] = "", m_ws[512] = "", m_align[512] = "";
    amp_status s_host = AMP_OK, s_ws = AMP_OK, s_align = AMP_OK, s_good = AMP_ERR_INTERNAL;
    if (!sp && ok) {
        void *host = aligned_alloc(256, 256); /* aligned, so that only where it lives is wrong */
        if (host) memcpy(host, A->data, A->nbytes);
        s_host = amp_cuda_gemm_run(&g_cu, g, host, b.p, NULL, d.p, NULL, ws);
        free(host);
        snprintf(m_host, sizeof m_host, "%s", amp_context_last_error(g_ctx));
        s_ws = amp_cuda_gemm_run(&g_cu, g, a.p, b.p, NULL, d.p, NULL, NULL);
        snprintf(m_ws, sizeof m_ws, "%s", amp_context_last_error(g_ctx));
        s_align = amp_cuda_gemm_run(&g_cu, g, (char *)a.p + 2, b.p, NULL, d.p, NULL, ws);
        snprintf(m_align, sizeof m_align, "%s", amp_context_last_error(g_ctx));
        s_good = amp_cuda_gemm_run(&g_cu, g, a.p, b.p, NULL, d.p, NULL, ws);
    }
    amp_cuda_gemm_free(g);
    free_gemm_bufs(&a, &b, &d, ws, A, B);
    CT_CHECK(ok && !sp, "plan: %s", amp_context_last_error(g_ctx));
    CT_CHECK(wsb > 0, "the emulated heuristic asks for a workspace");
    CT_CHECK(s_host == AMP_ERR_BACKEND && strstr(m_host, "not device memory") && strstr(m_host, "cublasLtMatmul"),
             "host A: %s: %s", amp_status_name(s_host), m_host);
    CT_CHECK(s_ws == AMP_ERR_BACKEND && strstr(m_ws, "workspace"), "no workspace: %s: %s", amp_status_name(s_ws), m_ws);
    CT_CHECK(s_align != AMP_OK && strstr(m_align, "aligned"), "misaligned A: %s: %s", amp_status_name(s_align),
             m_align);
    CT_CHECK(s_good == AMP_OK, "the right call still runs: %s", amp_context_last_error(g_ctx));
}

/* The fake refuses what it does not emulate instead of computing something else: a row-major
 * layout, device pointer mode, an algorithm that no heuristic returned, epilogues it does not
 * emulate (RELU_AUX's bit mask, DGELU), a GELU aux ld that breaks cuBLASLt's rule (multiple of 8). */
static void t_fake_refuses(void) {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t l = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int found = -1;
    float one = 1.0f, zero = 0.0f;
    void *m = NULL;
    bool made = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
                cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4) == CUBLAS_STATUS_SUCCESS &&
                cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
                cudaMalloc(&m, 64) == cudaSuccess;
    cublasStatus_t plain = made ? cublasLtMatmulAlgoGetHeuristic(g_cu.lt, op, l, l, l, l, pref, 1, &res, &found)
                                : CUBLAS_STATUS_INTERNAL_ERROR;
    int found_plain = found;
    char why_plain[256];
    snprintf(why_plain, sizeof why_plain, "%s", amp_emu_cublaslt_error());
    cublasLtMatmulAlgo_t forged;
    memset(&forged, 0, sizeof forged);
    cublasStatus_t st_forged = cublasLtMatmul(g_cu.lt, op, &one, m, l, m, l, &zero, m, l, m, l, &forged, NULL, 0,
                                              g_cu.stream);
    int32_t row = CUBLASLT_ORDER_ROW;
    cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &row, sizeof row);
    cublasStatus_t st_row = cublasLtMatmulAlgoGetHeuristic(g_cu.lt, op, l, l, l, l, pref, 1, &res, &found);
    char why_row[256];
    snprintf(why_row, sizeof why_row, "%s", amp_emu_cublaslt_error());
    int32_t col = CUBLASLT_ORDER_COL, dev = CUBLASLT_POINTER_MODE_DEVICE;
    cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &col, sizeof col);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &dev, sizeof dev);
    cublasStatus_t st_dev = cublasLtMatmulAlgoGetHeuristic(g_cu.lt, op, l, l, l, l, pref, 1, &res, &found);
    int32_t host = CUBLASLT_POINTER_MODE_HOST;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &host, sizeof host);
    cublasStatus_t st_ep[3];
    char why_ep[3][256];
    const cublasLtEpilogue_t eps[3] = {CUBLASLT_EPILOGUE_RELU_AUX, CUBLASLT_EPILOGUE_DGELU, CUBLASLT_EPILOGUE_GELU_AUX};
    int64_t aux_ld = 4; /* D's 4 rows: enough, but not a multiple of 8 */
    for (int i = 0; i < 3; i++) {
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &eps[i], sizeof eps[i]);
        if (i == 2) cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld);
        st_ep[i] = cublasLtMatmulAlgoGetHeuristic(g_cu.lt, op, l, l, l, l, pref, 1, &res, &found);
        snprintf(why_ep[i], sizeof why_ep[i], "%s", amp_emu_cublaslt_error());
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(op);
    cudaFree(m);
    CT_CHECK(made && plain == CUBLAS_STATUS_SUCCESS && found_plain == 1, "a plain heuristic: %d %s", (int)plain,
             why_plain);
    CT_CHECK(st_forged == CUBLAS_STATUS_NOT_SUPPORTED, "a forged algorithm: %d", (int)st_forged);
    CT_CHECK(st_row == CUBLAS_STATUS_NOT_SUPPORTED && strstr(why_row, "order"), "row order: %d %s", (int)st_row,
             why_row);
    CT_CHECK(st_dev == CUBLAS_STATUS_NOT_SUPPORTED, "device pointer mode: %d", (int)st_dev);
    for (int i = 0; i < 2; i++)
        CT_CHECK(st_ep[i] == CUBLAS_STATUS_NOT_SUPPORTED && strstr(why_ep[i], "not emulated"), "epilogue %d: %d %s",
                 (int)eps[i], (int)st_ep[i], why_ep[i]);
    CT_CHECK(st_ep[2] == CUBLAS_STATUS_INVALID_VALUE && strstr(why_ep[2], "multiple of 8"), "aux ld 4: %d %s",
             (int)st_ep[2], why_ep[2]);
}

#endif

/* The algorithm is chosen once, at plan time; runs only enqueue (no heuristic, no device
 * allocation), and each run gives the same bits. */
static void t_plan_once_run_many(void) {
    const int64_t ad[3] = {2, 33, 7}, bd[2] = {7, 17}, yd[3] = {2, 33, 17};
    amp_tensor *A = rand_tensor(AMP_BF16, 3, ad, 90), *B = rand_tensor(AMP_BF16, 2, bd, 91);
    dbuf a = {0}, b = {0}, d = {0};
    void *ws = NULL, *state = NULL;
    uint16_t first[2 * 33 * 17], again[2 * 33 * 17];
    bool ok = dput(&a, A, 0) && dput(&b, B, 0) && cudaMalloc(&d.p, sizeof first) == cudaSuccess;
    amp_tensor da, db, dd;
    amp_tensor_view(&da, AMP_BF16, 3, ad, a.p);
    amp_tensor_view(&db, AMP_BF16, 2, bd, b.p);
    amp_tensor_view(&dd, AMP_BF16, 3, yd, d.p);
    amp_tensor *in[2] = {&da, &db}, *out[1] = {&dd};
    tnode t;
    tn_init(&t, "MatMul", "", 13);
    amp_kernel k = {.ctx = g_ctx, .n = &t.n, .opset = 13, .nin = 2, .nout = 1, .in = in, .out = out, .threads = 1};
    const amp_cuda_op *e = family_entry(AMP_OP_MAT_MUL);
#ifdef AMP_CUDA_EMULATED
    unsigned long long h0 = amp_emu_cublaslt_heuristics(), m0 = amp_emu_cublaslt_matmuls();
#endif
    size_t wsb = 0;
    amp_status s = ok ? e->prepare(&g_cu, &k, &state, &wsb) : AMP_ERR_INTERNAL;
#ifdef AMP_CUDA_EMULATED
    unsigned long long h1 = amp_emu_cublaslt_heuristics();
#endif
    if (!s && wsb && cudaMalloc(&ws, wsb)) s = AMP_ERR_NO_MEMORY;
    k.ws = ws;
    k.ws_bytes = wsb;
#ifdef AMP_CUDA_EMULATED
    size_t regions = amp_emu_device_regions();
#endif
    bool same = true;
    for (int r = 0; r < 3 && !s; r++) {
        s = e->run(&g_cu, &k, state);
        if (!s) s = AMP_CUDA_RT(g_ctx, cudaMemcpy(r ? again : first, d.p, sizeof first, cudaMemcpyDeviceToHost));
        if (r && memcmp(first, again, sizeof first)) same = false;
    }
#ifdef AMP_CUDA_EMULATED
    bool no_alloc = amp_emu_device_regions() == regions;
    unsigned long long h2 = amp_emu_cublaslt_heuristics(), m2 = amp_emu_cublaslt_matmuls();
#endif
    if (state) e->release(&g_cu, state);
    free_gemm_bufs(&a, &b, &d, ws, A, B);
    CT_CHECK(!s, "runs: %s", amp_context_last_error(g_ctx));
    CT_CHECK(same, "runs repeat their bits");
#ifdef AMP_CUDA_EMULATED
    CT_CHECK(h1 - h0 == 1 && h2 == h1, "one heuristic query, at plan time: %llu, then %llu", h1 - h0, h2 - h1);
    CT_CHECK(m2 - m0 == 3, "one matmul per run (A's batch stacks into rows): %llu", m2 - m0);
    CT_CHECK(no_alloc, "runs allocate no device memory");
#endif
}

/* ---- epilogues of the planned GEMM (gemm.h: act, aux) -------------------------------------- */

/* One planned GEMM with an epilogue against a host reference that computes what gemm.h
 * promises: v = alpha sum_q op(A) op(B) (double sum, rounded to f32) + beta C + bias in f32,
 * D = round(act(v)), aux = round(v). The emulated cuBLASLt sums in the same order, so under the
 * emulator both must agree bit for bit; on a GPU the dtype's threshold applies. */
typedef struct ep_outcome {
    amp_status plan, run;
    double err_d, err_aux; /* rel L2 of D and aux; aux 0 without one */
    int64_t diff_d, diff_aux; /* elements whose bits differ from the reference */
    int64_t neg_v;            /* negative pre-activations (so relu had something to do) */
} ep_outcome;

/* host data of dt rounded from fresh values in [-1, 1): f[i] is what the device reads */
static bool ep_host(amp_dtype dt, int64_t n, uint64_t seed, void **raw, float **f) {
    *raw = malloc((size_t)(n + 1) * amp_dtype_size(dt));
    *f = malloc(sizeof(float) * (size_t)(n + 1));
    if (!*raw || !*f) return false;
    ct_fill(*f, (size_t)n, seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++) {
        amp_st(dt, *raw, i, (*f)[i]);
        (*f)[i] = (float)amp_ld(dt, *raw, i);
    }
    return true;
}

/* v rounded to dt */
static float round_dt(amp_dtype dt, float v) {
    double cell = 0; /* room for any dtype amp_st knows */
    amp_st(dt, &cell, 0, v);
    return (float)amp_ld(dt, &cell, 0);
}

static float ep_act(amp_cuda_gemm_act act, float v) {
    return act == AMP_CUDA_GEMM_ACT_RELU ? amp_relu_f(v) : act == AMP_CUDA_GEMM_ACT_GELU_TANH ? amp_gelu_tanh_f(v) : v;
}

static ep_outcome run_epilogue(const amp_cuda_gemm_desc *gd, uint64_t seed) {
    ep_outcome o = {.plan = AMP_ERR_INTERNAL, .run = AMP_ERR_INTERNAL, .err_d = INFINITY, .err_aux = INFINITY};
    const amp_dtype dt = gd->dtype;
    const size_t es = amp_dtype_size(dt);
    const int64_t m = gd->m, n = gd->n, k = gd->k, nb = gd->batch > 1 ? gd->batch : 1;
    const int64_t sa = nb > 1 ? gd->stride_a : 0, sb = nb > 1 ? gd->stride_b : 0, sc = nb > 1 ? gd->stride_c : 0,
                  sd = nb > 1 ? gd->stride_d : m * n;
    const int64_t na = (nb - 1) * sa + m * k, nbb = (nb - 1) * sb + k * n, nc = (nb - 1) * sc + m * n,
                  nd = (nb - 1) * sd + m * n;
    void *ha = NULL, *hb = NULL, *hc = NULL, *hbias = NULL;
    float *fa = NULL, *fb = NULL, *fc = NULL, *fbias = NULL, *ref_d = NULL, *ref_aux = NULL, *got_d = NULL,
          *got_aux = NULL;
    void *da = NULL, *db = NULL, *dc = NULL, *dd = NULL, *dbias = NULL, *daux = NULL, *ws = NULL, *hd = NULL,
         *haux = NULL;
    amp_cuda_gemm *g = NULL;
    size_t wsb = 0;
    const size_t cnt = (size_t)(nb * m * n);
    bool ok = ep_host(dt, na, seed, &ha, &fa) && ep_host(dt, nbb, seed + 1, &hb, &fb) &&
              ep_host(dt, nc, seed + 2, &hc, &fc) && ep_host(dt, n, seed + 3, &hbias, &fbias);
    ref_d = malloc(sizeof(float) * (cnt + 1));
    ref_aux = malloc(sizeof(float) * (cnt + 1));
    got_d = malloc(sizeof(float) * (cnt + 1));
    got_aux = malloc(sizeof(float) * (cnt + 1));
    hd = malloc((size_t)(nd + 1) * es);
    haux = malloc((size_t)(nd + 1) * es);
    ok = ok && ref_d && ref_aux && got_d && got_aux && hd && haux;
    ok = ok && !cudaMalloc(&da, (size_t)na * es + 16) && !cudaMalloc(&db, (size_t)nbb * es + 16) &&
         !cudaMalloc(&dc, (size_t)nc * es + 16) && !cudaMalloc(&dd, (size_t)nd * es + 16) &&
         !cudaMalloc(&dbias, (size_t)n * es + 16) && !cudaMalloc(&daux, (size_t)nd * es + 16);
    ok = ok && !cudaMemcpy(da, ha, (size_t)na * es, cudaMemcpyHostToDevice) &&
         !cudaMemcpy(db, hb, (size_t)nbb * es, cudaMemcpyHostToDevice) &&
         !cudaMemcpy(dc, hc, (size_t)nc * es, cudaMemcpyHostToDevice) &&
         !cudaMemcpy(dbias, hbias, (size_t)n * es, cudaMemcpyHostToDevice);
    if (!ok) goto done;
    if ((o.plan = amp_cuda_gemm_plan(&g_cu, gd, &g, &wsb))) goto done;
    if (wsb && cudaMalloc(&ws, wsb)) goto done;
    o.run = amp_cuda_gemm_run_aux(&g_cu, g, da, db, gd->has_c ? dc : NULL, dd, gd->bias ? dbias : NULL,
                                  gd->aux ? daux : NULL, ws);
    if (!o.run) o.run = AMP_CUDA_RT(g_ctx, cudaStreamSynchronize(g_cu.stream));
    if (!o.run) o.run = AMP_CUDA_RT(g_ctx, cudaMemcpy(hd, dd, (size_t)nd * es, cudaMemcpyDeviceToHost));
    if (!o.run) o.run = AMP_CUDA_RT(g_ctx, cudaMemcpy(haux, daux, (size_t)nd * es, cudaMemcpyDeviceToHost));
    if (o.run) goto done;
    o.diff_d = o.diff_aux = 0;
    for (int64_t bt = 0; bt < nb; bt++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t q = 0; q < k; q++) {
                    float x = fa[bt * sa + (gd->trans_a ? q * m + i : i * k + q)];
                    float y = fb[bt * sb + (gd->trans_b ? j * k + q : q * n + j)];
                    acc += (double)x * y;
                }
                float v = gd->alpha * (float)acc;
                if (gd->beta != 0.0f) v += gd->beta * fc[bt * sc + i * n + j];
                if (gd->bias) v += fbias[j];
                o.neg_v += v < 0.0f;
                const size_t r = (size_t)((bt * m + i) * n + j);
                const int64_t at = bt * sd + i * n + j;
                float t[2] = {ep_act(gd->act, v), v};
                for (int w = 0; w < 2; w++) t[w] = round_dt(dt, t[w]);
                ref_d[r] = t[0];
                ref_aux[r] = t[1];
                got_d[r] = (float)amp_ld(dt, hd, at);
                got_aux[r] = gd->aux ? (float)amp_ld(dt, haux, at) : t[1];
                o.diff_d += !(got_d[r] == ref_d[r]);
                o.diff_aux += !(got_aux[r] == ref_aux[r]);
            }
    o.err_d = ct_max_abs(got_d, ref_d, cnt) == INFINITY ? INFINITY : ct_rel_l2(got_d, ref_d, cnt);
    o.err_aux = ct_max_abs(got_aux, ref_aux, cnt) == INFINITY ? INFINITY : ct_rel_l2(got_aux, ref_aux, cnt);
done:
    amp_cuda_gemm_free(g);
    void *dev[] = {da, db, dc, dd, dbias, daux, ws};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
    void *host[] = {ha, hb, hc, hbias, fa, fb, fc, fbias, ref_d, ref_aux, got_d, got_aux, hd, haux};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    return o;
}

typedef struct ep_kind {
    amp_cuda_gemm_act act;
    bool bias, aux;
    const char *name; /* cuBLASLt's epilogue */
} ep_kind;

static const ep_kind EP_KINDS[] = {
    {AMP_CUDA_GEMM_ACT_NONE, true, false, "BIAS"},          {AMP_CUDA_GEMM_ACT_RELU, false, false, "RELU"},
    {AMP_CUDA_GEMM_ACT_RELU, true, false, "RELU_BIAS"},     {AMP_CUDA_GEMM_ACT_GELU_TANH, false, false, "GELU"},
    {AMP_CUDA_GEMM_ACT_GELU_TANH, true, false, "GELU_BIAS"}, {AMP_CUDA_GEMM_ACT_GELU_TANH, false, true, "GELU_AUX"},
    {AMP_CUDA_GEMM_ACT_GELU_TANH, true, true, "GELU_AUX_BIAS"},
};

#define CHECK_EP(o, dt, ...)                                                                                     \
    do {                                                                                                         \
        char w_[200];                                                                                            \
        snprintf(w_, sizeof w_, __VA_ARGS__);                                                                    \
        CT_CHECK(!(o).plan && !(o).run, "%s %s: plan %s run %s: %s", w_, amp_dtype_name(dt),                     \
                 amp_status_name((o).plan), amp_status_name((o).run), amp_context_last_error(g_ctx));            \
        double e_ = (o).err_d > (o).err_aux ? (o).err_d : (o).err_aux;                                           \
        if (e_ > g_worst[dt_index(dt)]) g_worst[dt_index(dt)] = e_;                                              \
        if (g_verbose) printf("    %-52s %-4s rel L2 D %.3g aux %.3g\n", w_, amp_dtype_name(dt), (o).err_d,       \
                              (o).err_aux);                                                                      \
        CT_CHECK((o).err_d <= threshold(dt) && (o).err_aux <= threshold(dt), "%s %s: rel L2 D %g aux %g", w_,    \
                 amp_dtype_name(dt), (o).err_d, (o).err_aux);                                                    \
        CT_CHECK(!EMU_EXACT || ((o).diff_d == 0 && (o).diff_aux == 0), "%s %s: %lld D and %lld aux elements "   \
                 "differ from the reference in the emulator", w_, amp_dtype_name(dt), (long long)(o).diff_d,     \
                 (long long)(o).diff_aux);                                                                       \
    } while (0)

#ifdef AMP_CUDA_EMULATED
#define EMU_EXACT 1
#else
#define EMU_EXACT 0
#endif

/* every epilogue in every dtype, odd shapes (aux: n a multiple of 8, as cuBLASLt asks), both
 * transposes, with and without C */
static void epilogue_suite(amp_dtype dt) {
    static const int64_t odd[][3] = {{1, 7, 1}, {7, 33, 65}, {65, 1, 33}, {33, 7, 7}};
    static const int64_t aux8[][3] = {{1, 8, 1}, {7, 16, 65}, {65, 8, 33}, {33, 24, 7}};
    uint64_t seed = 500;
    int64_t negatives = 0;
    for (size_t ki = 0; ki < sizeof EP_KINDS / sizeof EP_KINDS[0]; ki++)
        for (size_t si = 0; si < 4; si++)
            for (int v = 0; v < 3; v++) {
                const ep_kind *e = &EP_KINDS[ki];
                const int64_t *sh = e->aux ? aux8[si] : odd[si];
                amp_cuda_gemm_desc gd = {.dtype = dt, .m = sh[0], .n = sh[1], .k = sh[2], .act = e->act,
                                         .bias = e->bias, .aux = e->aux, .trans_a = v == 1, .trans_b = v >= 1,
                                         .alpha = v == 2 ? 0.75f : 1.0f, .has_c = v == 2, .beta = v == 2 ? -0.5f : 0};
                ep_outcome o = run_epilogue(&gd, seed += 7);
                negatives += o.neg_v;
                CHECK_EP(o, dt, "%s m %lld n %lld k %lld%s%s%s", e->name, (long long)gd.m, (long long)gd.n,
                         (long long)gd.k, gd.trans_a ? " transA" : "", gd.trans_b ? " transB" : "",
                         gd.has_c ? " alpha 0.75 C beta -0.5" : "");
            }
    CT_CHECK(negatives > 100, "the data has negative pre-activations: %lld", (long long)negatives);
}

static void t_epilogue_f32(void) { epilogue_suite(AMP_F32); }
static void t_epilogue_f16(void) { epilogue_suite(AMP_F16); }
static void t_epilogue_bf16(void) { epilogue_suite(AMP_BF16); }

/* strided batches: A per batch, B broadcast (stride 0) or per batch, D (and aux) padded */
static void t_epilogue_batched(void) {
    uint64_t seed = 900;
    for (int di = 0; di < 3; di++)
        for (size_t ki = 0; ki < sizeof EP_KINDS / sizeof EP_KINDS[0]; ki++)
            for (int bcast = 0; bcast < 2; bcast++) {
                const ep_kind *e = &EP_KINDS[ki];
                const int64_t m = 7, n = e->aux ? 16 : 33, k = 33;
                amp_cuda_gemm_desc gd = {.dtype = DTYPES[di], .m = m, .n = n, .k = k, .act = e->act,
                                         .bias = e->bias, .aux = e->aux, .alpha = 1.0f, .batch = 3,
                                         .stride_a = m * k, .stride_b = bcast ? 0 : k * n,
                                         .stride_d = m * n + 8, .trans_b = bcast == 1};
                const int64_t es = (int64_t)amp_dtype_size(gd.dtype);
                const int64_t bytes[3] = {gd.stride_a * es, gd.stride_b * es, gd.stride_d * es};
                gd.align = amp_cuda_gemm_align(256, 3, bytes);
                ep_outcome o = run_epilogue(&gd, seed += 5);
                CHECK_EP(o, DTYPES[di], "%s batch 3 m %lld n %lld k %lld%s", e->name, (long long)m, (long long)n,
                         (long long)k, bcast ? " B broadcast transB" : "");
            }
}

/* what cuBLASLt does not offer is refused at plan time, with the reason */
static void t_epilogue_refusals(void) {
    amp_cuda_gemm *g = NULL;
    size_t wsb = 0;
    amp_cuda_gemm_desc relu_aux = {.dtype = AMP_F16, .m = 8, .n = 8, .k = 8, .alpha = 1.0f,
                                   .act = AMP_CUDA_GEMM_ACT_RELU, .aux = true};
    amp_status s1 = amp_cuda_gemm_plan(&g_cu, &relu_aux, &g, &wsb);
    char m1[512];
    snprintf(m1, sizeof m1, "%s", amp_context_last_error(g_ctx));
    amp_cuda_gemm_desc no_act = relu_aux;
    no_act.act = AMP_CUDA_GEMM_ACT_NONE;
    amp_status s2 = amp_cuda_gemm_plan(&g_cu, &no_act, &g, &wsb);
    amp_cuda_gemm_desc odd_n = relu_aux;
    odd_n.act = AMP_CUDA_GEMM_ACT_GELU_TANH;
    odd_n.n = 7;
    amp_status s3 = amp_cuda_gemm_plan(&g_cu, &odd_n, &g, &wsb);
    char m3[512];
    snprintf(m3, sizeof m3, "%s", amp_context_last_error(g_ctx));
    amp_cuda_gemm_desc odd_stride = odd_n;
    odd_stride.n = 8;
    odd_stride.batch = 2;
    odd_stride.stride_a = 64;
    odd_stride.stride_b = 64;
    odd_stride.stride_d = 68;
    amp_status s4 = amp_cuda_gemm_plan(&g_cu, &odd_stride, &g, &wsb);
    amp_cuda_gemm_desc bad_act = no_act;
    bad_act.act = (amp_cuda_gemm_act)7;
    bad_act.aux = false;
    amp_status s5 = amp_cuda_gemm_plan(&g_cu, &bad_act, &g, &wsb);
    /* a plan with aux run without one (and one without, given one) */
    amp_cuda_gemm_desc good = odd_n;
    good.n = 8;
    amp_cuda_gemm *ga = NULL, *gn = NULL;
    amp_status p1 = amp_cuda_gemm_plan(&g_cu, &good, &ga, &wsb);
    good.aux = false;
    amp_status p2 = amp_cuda_gemm_plan(&g_cu, &good, &gn, &wsb);
    void *m = NULL;
    amp_status r1 = AMP_OK, r2 = AMP_OK;
    if (!p1 && !p2 && !cudaMalloc(&m, 1024)) {
        r1 = amp_cuda_gemm_run(&g_cu, ga, m, m, NULL, m, NULL, NULL);
        r2 = amp_cuda_gemm_run_aux(&g_cu, gn, m, m, NULL, m, NULL, m, NULL);
    }
    cudaFree(m);
    amp_cuda_gemm_free(ga);
    amp_cuda_gemm_free(gn);
    CT_CHECK(s1 == AMP_ERR_UNSUPPORTED && strstr(m1, "bit mask"), "relu with aux: %s: %s", amp_status_name(s1), m1);
    CT_CHECK(s2 == AMP_ERR_INVALID_ARG, "aux without activation: %s", amp_status_name(s2));
    CT_CHECK(s3 == AMP_ERR_UNSUPPORTED && strstr(m3, "multiples of 8"), "aux with n 7: %s: %s", amp_status_name(s3),
             m3);
    CT_CHECK(s4 == AMP_ERR_UNSUPPORTED, "aux with a batch stride of 68: %s", amp_status_name(s4));
    CT_CHECK(s5 == AMP_ERR_INVALID_ARG, "activation 7: %s", amp_status_name(s5));
    CT_CHECK(!p1 && !p2, "plans: %s", amp_context_last_error(g_ctx));
    CT_CHECK(r1 == AMP_ERR_INTERNAL && r2 == AMP_ERR_INTERNAL, "aux given where the plan has none, or missing: %s %s",
             amp_status_name(r1), amp_status_name(r2));
}


#ifdef AMP_CUDA_EMULATED
/* The emulated cuBLASLt checks the aux matrix as it checks the operands: a host pointer, one
 * that overlaps D and one off the plan's alignment fail with a reason; the right one runs. */
static void t_planted_bad_aux(void) {
    amp_cuda_gemm_desc gd = {.dtype = AMP_F32, .m = 8, .n = 8, .k = 8, .alpha = 1.0f,
                             .act = AMP_CUDA_GEMM_ACT_GELU_TANH, .aux = true, .align = 16};
    amp_cuda_gemm *g = NULL;
    size_t wsb = 0;
    void *m = NULL, *ws = NULL, *host = aligned_alloc(256, 512);
    amp_status sp = amp_cuda_gemm_plan(&g_cu, &gd, &g, &wsb);
    bool ok = !sp && host && !cudaMalloc(&m, 4 * 256 + 64) && !cudaMemset(m, 0, 4 * 256 + 64) &&
              (!wsb || !cudaMalloc(&ws, wsb));
    char *a = m, *b = a + 256, *d = b + 256, *aux = d + 256;
    amp_status st[4] = {AMP_OK, AMP_OK, AMP_OK, AMP_ERR_INTERNAL};
    char why[3][512] = {"", "", ""};
    if (ok) {
        void *bad[3] = {host, d + 128, aux + 4};
        for (int i = 0; i < 3; i++) {
            st[i] = amp_cuda_gemm_run_aux(&g_cu, g, a, b, NULL, d, NULL, bad[i], ws);
            snprintf(why[i], sizeof why[i], "%s", amp_context_last_error(g_ctx));
        }
        st[3] = amp_cuda_gemm_run_aux(&g_cu, g, a, b, NULL, d, NULL, aux, ws);
        if (!st[3]) st[3] = AMP_CUDA_RT(g_ctx, cudaStreamSynchronize(g_cu.stream));
    }
    amp_cuda_gemm_free(g);
    cudaFree(m);
    cudaFree(ws);
    free(host);
    CT_CHECK(ok, "plan: %s", amp_context_last_error(g_ctx));
    CT_CHECK(st[0] == AMP_ERR_BACKEND && strstr(why[0], "aux matrix") && strstr(why[0], "not device memory"),
             "host aux: %s: %s", amp_status_name(st[0]), why[0]);
    CT_CHECK(st[1] == AMP_ERR_BACKEND && strstr(why[1], "overlaps D"), "aux over D: %s: %s", amp_status_name(st[1]),
             why[1]);
    CT_CHECK(st[2] != AMP_OK && strstr(why[2], "aligned"), "misaligned aux: %s: %s", amp_status_name(st[2]), why[2]);
    CT_CHECK(st[3] == AMP_OK, "the right aux runs: %s", amp_context_last_error(g_ctx));
}
#endif

static void t_report(void) {
    printf("  worst rel L2: f32 %.3g, f16 %.3g, bf16 %.3g\n", g_worst[0], g_worst[1], g_worst[2]);
#ifdef AMP_CUDA_EMULATED
    printf("  cublasLtMatmul calls: %llu\n", amp_emu_cublaslt_matmuls());
    CT_CHECK(amp_emu_device_regions() == 0, "device regions leaked: %zu", amp_emu_device_regions());
#else
    CT_CHECK(g_worst[0] <= threshold(AMP_F32), "f32 within its threshold");
#endif
}

static const ct_case cases[] = {
    {"gemm_f32", t_gemm_f32},
    {"gemm_f16", t_gemm_f16},
    {"gemm_bf16", t_gemm_bf16},
    {"gemm_lenet_shapes", t_gemm_lenet_shapes},
    {"gemm_c_broadcasts", t_gemm_c_broadcasts},
    {"gemm_empty", t_gemm_empty},
    {"matmul_f32", t_matmul_f32},
    {"matmul_f16", t_matmul_f16},
    {"matmul_bf16", t_matmul_bf16},
    {"matmul_grad_f32", t_matmul_grad_f32},
    {"matmul_grad_f16", t_matmul_grad_f16},
    {"matmul_grad_bf16", t_matmul_grad_bf16},
    {"tf32_only_when_asked", t_tf32_only_when_asked},
    {"planted_swapped_mn", t_planted_swapped_mn},
#ifdef AMP_CUDA_EMULATED
    {"planted_bad_pointers", t_planted_bad_pointers},
    {"fake_refuses", t_fake_refuses},
#endif
    {"plan_once_run_many", t_plan_once_run_many},
    {"epilogue_f32", t_epilogue_f32},
    {"epilogue_f16", t_epilogue_f16},
    {"epilogue_bf16", t_epilogue_bf16},
    {"epilogue_batched", t_epilogue_batched},
    {"epilogue_refusals", t_epilogue_refusals},
#ifdef AMP_CUDA_EMULATED
    {"planted_bad_aux", t_planted_bad_aux},
#endif
    {"report", t_report},
    {NULL, NULL},
};

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "-v")) {
        g_verbose = 1;
        argc--;
        argv++;
    }
    if (!ct_have_device()) return ct_main(argc, argv, cases);
    if (amp_context_create(NULL, &g_ctx) || amp_backend_cpu_create(g_ctx, 1, &g_cpu)) return 1;
    g_cu.ctx = g_ctx;
    if (AMP_CUDA_RT(g_ctx, cudaStreamCreate(&g_cu.stream)) || AMP_CUDA_LT(g_ctx, cublasLtCreate(&g_cu.lt))) {
        fprintf(stderr, "setup: %s\n", amp_context_last_error(g_ctx));
        return 1;
    }
    int r = ct_main(argc, argv, cases);
    cublasLtDestroy(g_cu.lt);
    cudaStreamDestroy(g_cu.stream);
    amp_backend_destroy(g_cpu);
    amp_context_destroy(g_ctx);
    return r;
}
