/* One node on the CUDA backend's op families against the CPU backend, for the tests of the
 * families (tests/cuda/test_kernels.c, test_ew.c, test_norm.c, ...): build a node (tn_*), make
 * fresh non-zero inputs (rnd, labels, ints1), and CHECK_NODE runs it through the CPU backend
 * (amp_backend_run_once) and through the op's entry in the family tables (supports, prepare,
 * run, release) on device memory, then compares every output bit for bit or by relative L2
 * error. run_both is the same without the comparison (for refusals). Under the emulator a run
 * that leaves a device region behind fails: a step allocates nothing.
 *
 * Include once per test program, after cuda_test.h's includes; everything is static. */
#ifndef AMP_TESTS_CUDA_CUDA_OPTEST_H
#define AMP_TESTS_CUDA_CUDA_OPTEST_H

#include <stdbool.h>
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_test.h"

/* the most inputs, and the most outputs, of one node run here (BatchNormalizationGrad has 9) */
#define OT_MAX_IO 16

static amp_context *ctx;
static amp_backend *cpu;
static amp_cuda cu;

static int setup(void) {
    if (cpu) return 1;
    if (amp_context_create(NULL, &ctx) != AMP_OK) return 0;
    if (amp_backend_cpu_create(ctx, 1, &cpu) != AMP_OK) return 0;
    memset(&cu, 0, sizeof cu);
    cu.ctx = ctx;
    return cudaStreamCreate(&cu.stream) == cudaSuccess;
}

/* setup, and the cuBLASLt handle of the families that plan GEMMs (op_gemm, op_rnn, op_fused) */
static inline int setup_lt(void) {
    if (!setup()) return 0;
    return cu.lt || cublasLtCreate(&cu.lt) == CUBLAS_STATUS_SUCCESS;
}

/* The harness's handles released (after any the test made itself). */
static inline void ot_teardown(void) {
    if (cu.lt) cublasLtDestroy(cu.lt);
    if (cpu) amp_backend_destroy(cpu);
    if (cu.stream) cudaStreamDestroy(cu.stream);
    amp_context_destroy(ctx);
}

/* ct_main over cases, then ot_teardown: a test program's main. */
static inline int ot_main(int argc, char **argv, const ct_case *cases) {
    int rc = ct_main(argc, argv, cases);
    ot_teardown();
    return rc;
}

static const amp_dtype kfloats[] = {AMP_F32, AMP_F16, AMP_BF16};

static double tol_of(amp_dtype t) { return t == AMP_F32 ? 1e-6 : t == AMP_F16 ? 1e-3 : 8e-3; }

/* ---- nodes ------------------------------------------------------------------------------------ */

typedef struct tnode {
    amp_node n;
    amp_attr a[16];
    int64_t ints[16][8];
    int64_t opset;
} tnode;

static void tn_init(tnode *t, const char *op_type, bool training) {
    memset(t, 0, sizeof *t);
    t->n.name = "kt";
    t->n.op_type = (char *)op_type;
    t->n.domain = training ? AMP_TRAIN_DOMAIN : "";
    t->n.op = amp_op_lookup(op_type, t->n.domain);
    t->n.attrs = t->a;
    t->opset = training ? 1 : 17;
}

static amp_attr *tn_add(tnode *t, const char *name, amp_attr_kind kind) {
    amp_attr *a = &t->a[t->n.n_attrs++];
    a->name = (char *)name;
    a->kind = kind;
    return a;
}
static void tn_i(tnode *t, const char *name, int64_t v) { tn_add(t, name, AMP_ATTR_INT)->i = v; }
static void tn_f(tnode *t, const char *name, float v) { tn_add(t, name, AMP_ATTR_FLOAT)->f = v; }
static void tn_s(tnode *t, const char *name, const char *v) {
    amp_attr *a = tn_add(t, name, AMP_ATTR_STRING);
    a->s = (char *)v;
    a->slen = strlen(v);
}
static void tn_is(tnode *t, const char *name, int n, const int64_t *v) {
    int slot = t->n.n_attrs;
    amp_attr *a = tn_add(t, name, AMP_ATTR_INTS);
    memcpy(t->ints[slot], v, sizeof(int64_t) * (size_t)n);
    a->ints = t->ints[slot];
    a->n = n;
}

/* ---- tensors ---------------------------------------------------------------------------------- */

static amp_tensor *tens(amp_dtype dt, int rank, const int64_t *dims) {
    amp_tensor *t = NULL;
    return amp_tensor_create(ctx, dt, rank, dims, &t) == AMP_OK ? t : NULL;
}

/* fresh uniform values in [lo, hi), never zero, stored with the dtype's rounding */
static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed, float lo, float hi) {
    amp_tensor *t = tens(dt, rank, dims);
    if (!t || t->numel == 0) return t;
    float *v = malloc(sizeof(float) * (size_t)t->numel);
    ct_fill(v, (size_t)t->numel, seed, lo, hi);
    for (int64_t i = 0; i < t->numel; i++) amp_st(dt, t->data, i, v[i]);
    free(v);
    return t;
}

/* integer labels in [0, c) (some replaced by ignore when ignore >= 0 ... given by the caller) */
static amp_tensor *labels(amp_dtype dt, int rank, const int64_t *dims, int64_t c, uint64_t seed) {
    amp_tensor *t = tens(dt, rank, dims);
    uint64_t s = seed * 2654435761u + 7;
    for (int64_t i = 0; t && i < t->numel; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        amp_sti(dt, t->data, i, (int64_t)((s >> 33) % (uint64_t)c));
    }
    return t;
}

static amp_tensor *ints1(const int64_t *v, int64_t n) {
    amp_tensor *t = tens(AMP_I64, 1, &n);
    if (t && n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

/* ---- running one node on both backends --------------------------------------------------------- */

/* The op's entry in the family tables, in the backend's order (backends/cuda/backend.c). */
static const amp_cuda_op *entry_of(amp_op op) {
    static const amp_cuda_op *const tables[] = {amp_cuda_ops_gemm,   amp_cuda_ops_conv, amp_cuda_ops_kernels,
                                                amp_cuda_ops_optim,  amp_cuda_ops_ew,   amp_cuda_ops_norm,
                                                amp_cuda_ops_reduce, amp_cuda_ops_data, amp_cuda_ops_rnn,
                                                amp_cuda_ops_fused};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const amp_cuda_op *e = tables[t]; e->run; e++)
            if (e->op == op) return e;
    return NULL;
}

/* Shapes of the outputs by the op's own inference; out[i] created (host), poisoned. */
static amp_status infer_outputs(tnode *t, int nin, amp_tensor *const *in, int nout, amp_tensor **out) {
    amp_tinfo ti[OT_MAX_IO], to[OT_MAX_IO];
    const amp_tinfo *pin[OT_MAX_IO];
    amp_tinfo *pout[OT_MAX_IO];
    static int ids_in[OT_MAX_IO], ids_out[OT_MAX_IO];
    memset(ti, 0, sizeof ti);
    memset(to, 0, sizeof to);
    for (int i = 0; i < nin; i++) {
        ids_in[i] = in[i] ? i : -1;
        pin[i] = NULL;
        if (!in[i]) continue;
        ti[i].dtype = in[i]->dtype;
        ti[i].rank = in[i]->rank;
        memcpy(ti[i].dims, in[i]->dims, sizeof ti[i].dims);
        ti[i].value = in[i];
        pin[i] = &ti[i];
    }
    for (int i = 0; i < nout; i++) {
        ids_out[i] = i;
        pout[i] = &to[i];
        out[i] = NULL;
    }
    t->n.inputs = ids_in;
    t->n.n_inputs = nin;
    t->n.outputs = ids_out;
    t->n.n_outputs = nout;
    amp_infer c = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = pin, .out = pout};
    amp_status s = amp_op_table[t->n.op].infer(&c);
    for (int i = 0; !s && i < nout; i++) {
        out[i] = tens(to[i].dtype, to[i].rank, to[i].dims);
        if (!out[i]) s = AMP_ERR_NO_MEMORY;
        else if (out[i]->nbytes) memset(out[i]->data, 0x7f, out[i]->nbytes);
    }
    if (s) free_all(out, nout);
    return s;
}

/* Runs the node on the CPU backend into ref[] and through its CUDA family entry on
 * device memory into got[] (host copies); both created here. Returns the CUDA side's status
 * (AMP_ERR_UNSUPPORTED when supports() says no) and leaves nothing allocated on failure. */
static amp_status run_both(tnode *t, int nin, amp_tensor *const *in, int nout, amp_tensor **ref, amp_tensor **got) {
    amp_status s = infer_outputs(t, nin, in, nout, ref);
    if (s) return s;
    amp_kernel k = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = in, .out = ref,
                    .threads = 1};
    if ((s = amp_backend_run_once(cpu, &k))) {
        free_all(ref, nout);
        return s;
    }
    amp_tensor dvin[OT_MAX_IO], dvout[OT_MAX_IO], pvin[OT_MAX_IO], pvout[OT_MAX_IO];
    amp_tensor *din[OT_MAX_IO], *dout[OT_MAX_IO], *pin[OT_MAX_IO], *pout[OT_MAX_IO];
    void *ws = NULL, *state = NULL;
    size_t ws_bytes = 0;
    const amp_cuda_op *e = entry_of(t->n.op);
    for (int i = 0; i < nout; i++) got[i] = NULL;
    for (int i = 0; i < nin; i++) {
        din[i] = pin[i] = NULL;
        if (!in[i]) continue;
        dvin[i] = *in[i];
        dvin[i].owns = 0;
        dvin[i].data = NULL;
        if (in[i]->nbytes && (cudaMalloc(&dvin[i].data, in[i]->nbytes) != cudaSuccess ||
                              cudaMemcpy(dvin[i].data, in[i]->data, in[i]->nbytes, cudaMemcpyHostToDevice)))
            s = AMP_ERR_BACKEND;
        din[i] = &dvin[i];
        /* at plan time only values known while planning are there (host memory) */
        pvin[i] = *in[i];
        pvin[i].owns = 0;
        if (!amp_op_value_input(t->n.op, i)) pvin[i].data = NULL;
        pin[i] = &pvin[i];
    }
    for (int i = 0; i < nout; i++) {
        dvout[i] = *ref[i];
        dvout[i].owns = 0;
        dvout[i].data = NULL;
        if (ref[i]->nbytes && cudaMalloc(&dvout[i].data, ref[i]->nbytes) != cudaSuccess) s = AMP_ERR_BACKEND;
        dout[i] = &dvout[i];
        pvout[i] = dvout[i];
        pvout[i].data = NULL;
        pout[i] = &pvout[i];
    }
    amp_kernel kp = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = pin, .out = pout};
    amp_kernel kd = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = nin, .nout = nout, .in = din, .out = dout};
    if (!s && (!e || !e->supports(&cu, &kp))) s = AMP_ERR_UNSUPPORTED;
    if (!s) s = e->prepare(&cu, &kp, &state, &ws_bytes);
    if (!s && ws_bytes && cudaMalloc(&ws, ws_bytes) != cudaSuccess) s = AMP_ERR_BACKEND;
    kd.ws = ws;
    kd.ws_bytes = ws_bytes;
#ifdef AMP_CUDA_EMULATED
    size_t regions = amp_emu_device_regions();
#endif
    if (!s) s = e->run(&cu, &kd, state);
#ifdef AMP_CUDA_EMULATED
    /* a step allocates nothing */
    if (!s && amp_emu_device_regions() != regions)
        s = amp_seterr(ctx, AMP_ERR_INTERNAL, "run left %zu device regions, had %zu", amp_emu_device_regions(), regions);
#endif
    if (!s && cudaStreamSynchronize(cu.stream) != cudaSuccess) s = AMP_ERR_BACKEND;
    for (int i = 0; !s && i < nout; i++) {
        got[i] = tens(ref[i]->dtype, ref[i]->rank, ref[i]->dims);
        if (!got[i] || (got[i]->nbytes && cudaMemcpy(got[i]->data, dvout[i].data, got[i]->nbytes,
                                                     cudaMemcpyDeviceToHost) != cudaSuccess))
            s = AMP_ERR_BACKEND;
    }
    if (e && e->release) e->release(&cu, state);
    cudaFree(ws);
    for (int i = 0; i < nin; i++)
        if (din[i]) cudaFree(dvin[i].data);
    for (int i = 0; i < nout; i++) cudaFree(dvout[i].data);
    if (s) {
        free_all(ref, nout);
        free_all(got, nout);
    }
    return s;
}

/* ---- comparisons -------------------------------------------------------------------------------- */

static bool same_shape(const amp_tensor *a, const amp_tensor *b) {
    return a->dtype == b->dtype && amp_dims_equal(a->rank, a->dims, b->rank, b->dims);
}

static bool bits_equal(const amp_tensor *a, const amp_tensor *b) {
    return same_shape(a, b) && (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

/* Relative L2 error of got against ref as f32 values; +inf when shapes differ, a NaN or an inf
 * appears on one side only. NaN on both sides at the same element counts as equal. */
static double rel_err(const amp_tensor *got, const amp_tensor *ref) {
    if (!same_shape(got, ref)) return INFINITY;
    size_t n = (size_t)ref->numel;
    if (n == 0) return 0;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    bool apart = false;
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)amp_ld(got->dtype, got->data, (int64_t)i);
        b[i] = (float)amp_ld(ref->dtype, ref->data, (int64_t)i);
        if (isnan(a[i]) || isnan(b[i]) || isinf(a[i]) || isinf(b[i])) {
            /* the same NaN-ness and the same infinity count as equal; anything else fails */
            bool same = (isnan(a[i]) && isnan(b[i])) || a[i] == b[i];
            apart |= !same;
            a[i] = b[i] = 1.0f;
        }
    }
    double e = apart ? INFINITY : ct_rel_l2(a, b, n);
    free(a);
    free(b);
    return e;
}

/* The worst error each float dtype reached in the running case (printed by the cases that
 * compare within a threshold, for the record). */
static double worst[3];
static void worst_note(amp_dtype t, double e) {
    int i = t == AMP_F32 ? 0 : t == AMP_F16 ? 1 : t == AMP_BF16 ? 2 : -1;
    if (i >= 0 && e > worst[i]) worst[i] = e;
}
static void worst_reset(void) { worst[0] = worst[1] = worst[2] = 0; }
static void worst_print(void) { printf("  worst rel L2 error: f32 %.3g, f16 %.3g, bf16 %.3g\n", worst[0], worst[1], worst[2]); }

/* the first element whose bits differ (for messages), -1 when none */
static int64_t first_diff(const amp_tensor *a, const amp_tensor *b) {
    size_t es = amp_dtype_size(a->dtype);
    for (int64_t i = 0; i < a->numel && i < b->numel; i++)
        if (memcmp((const char *)a->data + (size_t)i * es, (const char *)b->data + (size_t)i * es, es)) return i;
    return -1;
}

/* One node on both backends; every output compared, bit for bit (exact) or within tol. */
#define CHECK_NODE(t, nin, in, nout, exact, tol, ...)                                                              \
    do {                                                                                                           \
        amp_tensor *ref_[OT_MAX_IO], *got_[OT_MAX_IO];                                                                           \
        char what_[200];                                                                                           \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                                \
        amp_status s_ = run_both((t), (nin), (in), (nout), ref_, got_);                                           \
        CT_CHECK(s_ == AMP_OK, "%s: %s: %s", what_, amp_status_name(s_), amp_context_last_error(ctx));            \
        for (int o_ = 0; o_ < (nout); o_++) {                                                                      \
            double e_ = (exact) ? (bits_equal(got_[o_], ref_[o_]) ? 0.0 : INFINITY) : rel_err(got_[o_], ref_[o_]); \
            int64_t at_ = first_diff(got_[o_], ref_[o_]);                                                          \
            double gv_ = at_ >= 0 ? amp_ld(got_[o_]->dtype, got_[o_]->data, at_) : 0;                              \
            double rv_ = at_ >= 0 ? amp_ld(ref_[o_]->dtype, ref_[o_]->data, at_) : 0;                              \
            bool ok_ = e_ <= (tol);                                                                                \
            worst_note(ref_[o_]->dtype, e_);                                                                       \
            if (!ok_) {                                                                                            \
                free_all(ref_, (nout));                                                                            \
                free_all(got_, (nout));                                                                            \
            }                                                                                                      \
            CT_CHECK(ok_, "%s: output %d: error %g > %g (first difference at %lld: %.9g vs CPU %.9g)", what_, o_, e_, \
                     (double)(tol), (long long)at_, gv_, rv_);                                                     \
        }                                                                                                          \
        free_all(ref_, (nout));                                                                                    \
        free_all(got_, (nout));                                                                                    \
    } while (0)

#endif
