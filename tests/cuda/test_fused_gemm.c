/* FusedGemm (ir/ops/fused.def) on the CUDA backend's GEMM family (backends/cuda/op_gemm.c)
 * against the CPU kernel amp_cpu_fused_gemm: every activation x f32/f16/bf16 x with and
 * without bias x with and without Z x trans_b 0/1 x rank-2 and rank-3 A, odd shapes, N both a
 * multiple of 8 (GeluTanh with Z in cuBLASLt's GELU_AUX_BIAS epilogue) and not (BIAS into Z,
 * then the kernel); the path each configuration takes (launches counted by the emulator);
 * empty products; refusals with their reasons.
 *
 * Tolerances (cuda_optest.h's): f32 1e-6, f16 1e-3, bf16 8e-3 relative L2 on every output. f32
 * is not bit-exact: the CPU's sgemm and cuBLASLt (the emulator sums in double) add the K
 * products in different orders; in f16/bf16 a sum that lands near a rounding boundary rounds
 * the other way, and "Gelu" (erf, our kernel after the BIAS epilogue) reads the rounded Z where
 * the CPU reads the f32 value. The worst errors are printed by the report case. */
#include <cublasLt.h>

#include "tests/cuda/cuda_optest.h"

/* cuda_optest.h's setup, and the cuBLASLt handle the GEMM family needs */
static const char *const ACTS[4] = {"", "Relu", "Gelu", "GeluTanh"};

/* a FusedGemm node; A [batch.., M, K] (a3: rank 3 with a leading 2), B [K, N] or [N, K] */
static void fused_node(tnode *t, const char *act, int trans_b, float alpha) {
    tn_init(t, "FusedGemm", false);
    t->n.domain = "ai.amprt.fused";
    t->n.op = AMP_OP_FUSED_GEMM;
    t->opset = 1;
    if (act[0]) tn_s(t, "activation", act);
    if (trans_b) tn_i(t, "trans_b", 1);
    if (alpha != 1.0f) tn_f(t, "alpha", alpha);
}

/* inputs A, B, bias (in[2] NULL without) of dt */
static void fused_inputs(amp_dtype dt, bool a3, int64_t M, int64_t K, int64_t N, int trans_b, bool bias,
                         uint64_t seed, amp_tensor **in) {
    const int64_t ad3[3] = {2, M, K}, ad2[2] = {M, K}, bd[2] = {trans_b ? N : K, trans_b ? K : N};
    in[0] = a3 ? rnd(dt, 3, ad3, seed, -1, 1) : rnd(dt, 2, ad2, seed, -1, 1);
    in[1] = rnd(dt, 2, bd, seed + 1, -1, 1);
    in[2] = bias ? rnd(dt, 1, &N, seed + 2, -1, 1) : NULL;
}

static void fused_suite(amp_dtype dt) {
    CT_CHECK(setup_lt(), "setup");
    /* M, K, N: N 16 and 8 take the aux epilogue for GeluTanh with Z, 7 and 33 the kernel */
    static const int64_t shapes[][3] = {{7, 33, 16}, {1, 65, 7}, {33, 1, 8}, {5, 7, 33}};
    uint64_t seed = 1000;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int a = 0; a < 4; a++)
            for (int v = 0; v < 16; v++) {
                const bool bias = v & 1, z = v & 2, a3 = v & 8;
                const int tb = (v >> 2) & 1;
                const int64_t M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
                tnode t;
                fused_node(&t, ACTS[a], tb, si == 3 ? -0.75f : 1.0f);
                amp_tensor *in[3];
                fused_inputs(dt, a3, M, K, N, tb, bias, seed += 5, in);
                CHECK_NODE(&t, bias ? 3 : 2, in, z ? 2 : 1, false, tol_of(dt),
                           "FusedGemm \"%s\" %s A %s[%lld,%lld] N %lld%s%s%s", ACTS[a], amp_dtype_name(dt),
                           a3 ? "[2]" : "", (long long)M, (long long)K, (long long)N, tb ? " trans_b" : "",
                           bias ? " bias" : "", z ? " Z" : "");
                free_all(in, 3);
            }
}

static void t_fused_f32(void) { fused_suite(AMP_F32); }
static void t_fused_f16(void) { fused_suite(AMP_F16); }
static void t_fused_bf16(void) { fused_suite(AMP_BF16); }

/* a transformer's shapes: [batch, seq, hidden] x [hidden, 4 hidden] with GeluTanh and Gelu */
static void t_fused_mlp_shapes(void) {
    CT_CHECK(setup_lt(), "setup");
    for (int di = 0; di < 3; di++)
        for (int a = 2; a < 4; a++) {
            const amp_dtype dt = kfloats[di];
            const int64_t ad[3] = {2, 17, 64}, bd[2] = {256, 64}, n = 256;
            amp_tensor *in[3] = {rnd(dt, 3, ad, 70 + a, -1, 1), rnd(dt, 2, bd, 80 + a, -0.2f, 0.2f),
                                 rnd(dt, 1, &n, 90 + a, -0.5f, 0.5f)};
            tnode t;
            fused_node(&t, ACTS[a], 1, 1.0f);
            CHECK_NODE(&t, 3, in, 2, false, tol_of(dt), "MLP up-projection \"%s\" %s", ACTS[a], amp_dtype_name(dt));
            free_all(in, 3);
        }
}

/* Empty products: M 0 (nothing to do), K 0 without a bias (Y and Z are zeros, act(0) = 0). */
static void t_fused_empty(void) {
    CT_CHECK(setup_lt(), "setup");
    for (int di = 0; di < 3; di++)
        for (int a = 0; a < 4; a++) {
            const amp_dtype dt = kfloats[di];
            const int64_t a0[2] = {0, 5}, b0[2] = {5, 3}, ak[2] = {4, 0}, bk[2] = {0, 3};
            tnode t;
            fused_node(&t, ACTS[a], 0, 1.0f);
            amp_tensor *in[2] = {rnd(dt, 2, a0, 1, -1, 1), rnd(dt, 2, b0, 2, -1, 1)};
            CHECK_NODE(&t, 2, in, 2, true, 0.0, "M 0 \"%s\" %s", ACTS[a], amp_dtype_name(dt));
            free_all(in, 2);
            in[0] = rnd(dt, 2, ak, 3, -1, 1);
            in[1] = rnd(dt, 2, bk, 4, -1, 1);
            CHECK_NODE(&t, 2, in, 2, true, 0.0, "K 0 \"%s\" %s", ACTS[a], amp_dtype_name(dt));
            free_all(in, 2);
        }
}

#ifdef AMP_CUDA_EMULATED
/* The path of each configuration, counted by the emulator: one cuBLASLt call always; our
 * elementwise kernel only where the epilogue cannot give both Y and Z (Relu with Z, GeluTanh
 * with Z and N not a multiple of 8, Gelu); a copy for Z without an activation. */
static void t_fused_paths(void) {
    CT_CHECK(setup_lt(), "setup");
    static const struct {
        int act;
        bool z;
        int64_t n;
        unsigned long long kernels, lt, copies;
    } paths[] = {
        {0, false, 7, 0, 1, 0}, {0, true, 7, 0, 1, 1}, {1, false, 7, 0, 1, 0}, {1, true, 7, 1, 1, 0},
        {2, false, 8, 1, 1, 0}, {2, true, 8, 1, 1, 0}, {3, false, 7, 0, 1, 0}, {3, true, 16, 0, 1, 0},
        {3, true, 7, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        amp_tensor *in[3];
        fused_inputs(AMP_F16, true, 5, 9, paths[i].n, 0, true, 300 + i, in);
        tnode t;
        fused_node(&t, ACTS[paths[i].act], 0, 1.0f);
        unsigned long long c0[4], c1[4];
        amp_emu_ran_counts(c0);
        CHECK_NODE(&t, 3, in, paths[i].z ? 2 : 1, false, tol_of(AMP_F16), "path %zu", i);
        amp_emu_ran_counts(c1);
        free_all(in, 3);
        CT_CHECK(c1[0] - c0[0] == paths[i].kernels && c1[1] - c0[1] == paths[i].lt && c1[2] - c0[2] == paths[i].copies,
                 "\"%s\"%s N %lld: %llu kernels, %llu cuBLASLt calls, %llu copies; expected %llu, %llu, %llu",
                 ACTS[paths[i].act], paths[i].z ? " with Z" : "", (long long)paths[i].n, c1[0] - c0[0],
                 c1[1] - c0[1], c1[2] - c0[2], paths[i].kernels, paths[i].lt, paths[i].copies);
    }
}
#endif

/* prepare's answer for a kernel on plan-time views (no data): the status and the message */
static amp_status fused_prepare_msg(tnode *t, amp_dtype dt, int ra, const int64_t *ad, const int64_t *bd, bool bias,
                                    int64_t N, char *msg, size_t len) {
    amp_tensor av, bv, cv, yv;
    int64_t yd[3];
    memcpy(yd, ad, sizeof(int64_t) * (size_t)ra);
    yd[ra - 1] = N;
    amp_tensor_view(&av, dt, ra, ad, NULL);
    amp_tensor_view(&bv, dt, 2, bd, NULL);
    amp_tensor_view(&cv, dt, 1, &N, NULL);
    amp_tensor_view(&yv, dt, ra, yd, NULL);
    amp_tensor *pi[3] = {&av, &bv, &cv}, *po[1] = {&yv};
    amp_kernel k = {.ctx = ctx, .n = &t->n, .opset = 1, .nin = bias ? 3 : 2, .nout = 1, .in = pi, .out = po};
    const amp_cuda_op *e = entry_of(AMP_OP_FUSED_GEMM);
    void *state = NULL;
    size_t ws = 0;
    amp_status s = e ? e->prepare(&cu, &k, &state, &ws) : AMP_ERR_INTERNAL;
    snprintf(msg, len, "%s", amp_context_last_error(ctx));
    if (!s && e) e->release(&cu, state);
    return s;
}

/* An unknown activation, f64, an empty inner dimension with a bias: refused, and prepare says why. */
static void t_fused_refusals(void) {
    CT_CHECK(setup_lt(), "setup");
    const int64_t ad[2] = {7, 5}, bd[2] = {5, 3}, n = 3;
    tnode t;
    fused_node(&t, "Swish", 0, 1.0f);
    amp_tensor *in[3] = {rnd(AMP_F32, 2, ad, 1, -1, 1), rnd(AMP_F32, 2, bd, 2, -1, 1), NULL}, *ref[2], *got[2];
    amp_status s1 = run_both(&t, 2, in, 1, ref, got);
    char m1[512];
    amp_status p1 = fused_prepare_msg(&t, AMP_F32, 2, ad, bd, false, 3, m1, sizeof m1);
    free_all(in, 3);
    CT_CHECK(s1 == AMP_ERR_UNSUPPORTED, "activation Swish refused: %s", amp_status_name(s1));
    CT_CHECK(p1 == AMP_ERR_UNSUPPORTED && strstr(m1, "Swish") && strstr(m1, "GeluTanh"), "why: %s", m1);

    fused_node(&t, "Relu", 0, 1.0f);
    in[0] = rnd(AMP_F64, 2, ad, 3, -1, 1);
    in[1] = rnd(AMP_F64, 2, bd, 4, -1, 1);
    in[2] = rnd(AMP_F64, 1, &n, 5, -1, 1);
    amp_status s2 = run_both(&t, 3, in, 1, ref, got);
    char m2[512];
    amp_status p2 = fused_prepare_msg(&t, AMP_F64, 2, ad, bd, true, 3, m2, sizeof m2);
    free_all(in, 3);
    CT_CHECK(s2 == AMP_ERR_UNSUPPORTED, "f64 refused: %s", amp_status_name(s2));
    CT_CHECK(p2 == AMP_ERR_UNSUPPORTED && strstr(m2, "float64"), "why: %s", m2);

    const int64_t ak[2] = {7, 0}, bk[2] = {0, 3};
    char m3[512];
    amp_status p3 = fused_prepare_msg(&t, AMP_F16, 2, ak, bk, true, 3, m3, sizeof m3);
    CT_CHECK(p3 == AMP_ERR_UNSUPPORTED && strstr(m3, "empty inner dimension"), "K 0 with bias: %s: %s",
             amp_status_name(p3), m3);
}

static void t_report(void) {
    CT_CHECK(setup_lt(), "setup");
    worst_print();
    CT_CHECK(worst[0] <= 1e-6 && worst[1] <= 1e-3 && worst[2] <= 8e-3, "within the tolerances");
#ifdef AMP_CUDA_EMULATED
    CT_CHECK(amp_emu_device_regions() == 0, "device regions leaked: %zu", amp_emu_device_regions());
#endif
}

static const ct_case cases[] = {
    {"fused_f32", t_fused_f32},
    {"fused_f16", t_fused_f16},
    {"fused_bf16", t_fused_bf16},
    {"fused_mlp_shapes", t_fused_mlp_shapes},
    {"fused_empty", t_fused_empty},
#ifdef AMP_CUDA_EMULATED
    {"fused_paths", t_fused_paths},
#endif
    {"fused_refusals", t_fused_refusals},
    {"report", t_report},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }
