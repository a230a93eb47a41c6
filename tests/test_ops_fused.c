/* The fused family's CPU kernels (ir/ops/fused.def) against their definitions written here in
 * double, in f32, f16, bf16 and f64, with the variants no model of models/ reaches (GeluTanh, a
 * broadcast attention mask, K not transposed, a broadcast residual, round-toward-zero casts),
 * and the shape errors their inference must give. Whole models fused against unfused, on the
 * CPU and on CUDA, are in tests/cuda/test_models.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/elementwise.h"
#include "base/elem.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(fused, .init = setup, .fini = teardown, .timeout = 60);

static const amp_dtype types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};

static double tol_of(amp_dtype dt) { return dt == AMP_F64 ? 1e-12 : dt == AMP_F32 ? 2e-6 : dt == AMP_F16 ? 2e-3 : 1.6e-2; }

static uint64_t seed = 11;

static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi) {
    return tt_rand(ctx, dt, rank, dims, lo, hi, seed++);
}

static amp_test_node *fused_node(const char *op) {
    amp_test_node *t = tn_new(ctx, op);
    t->node.domain = "ai.amprt.fused";
    t->node.op = amp_op_lookup(op, "ai.amprt.fused");
    t->opset = 1;
    cr_assert_neq(t->node.op, AMP_OP_UNKNOWN, "%s is not in the op table", op);
    return t;
}

static amp_tensor *f64_of(int rank, const int64_t *dims) {
    amp_tensor *o;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, rank, dims, &o), AMP_OK);
    return o;
}

static void expect_near(const amp_tensor *y, const amp_tensor *ref, double tol, const char *what) {
    double e = sqrt(tt_nse(y, ref));
    cr_assert(e < tol, "%s (%s): relative L2 error %g over %g", what, amp_dtype_name(y->dtype), e, tol);
}

/* ---- FusedGemm ---------------------------------------------------------------------------- */

static double act_ref(const char *act, double v) {
    if (!strcmp(act, "Relu")) return v < 0 ? 0 : v;
    if (!strcmp(act, "Gelu")) return amp_gelu_d(v);
    if (!strcmp(act, "GeluTanh")) return amp_gelu_tanh_d(v);
    return v;
}

Test(fused, gemm_every_activation_and_layout) {
    static const char *acts[] = {"", "Relu", "Gelu", "GeluTanh"};
    for (int ti = 0; ti < 4; ti++)
        for (int ai = 0; ai < 4; ai++)
            for (int tb = 0; tb < 2; tb++) {
                amp_dtype dt = types[ti];
                const int64_t B0 = 2, M = 7, K = 33, N = 5;
                int64_t ad[3] = {B0, M, K}, bd[2] = {tb ? N : K, tb ? K : N}, nd = N, yd[3] = {B0, M, N};
                amp_tensor *in[3] = {rnd(dt, 3, ad, -1, 1), rnd(dt, 2, bd, -1, 1), rnd(dt, 1, &nd, -0.5, 0.5)};
                amp_test_node *t = fused_node("FusedGemm");
                tn_int(t, "trans_b", tb);
                tn_float(t, "alpha", 0.75f);
                tn_str(t, "activation", acts[ai]);
                amp_tensor *out[2] = {NULL, NULL};
                cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_OK, "%s", amp_context_last_error(ctx));
                amp_tensor *ry = f64_of(3, yd), *rz = f64_of(3, yd);
                for (int64_t m = 0; m < B0 * M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double acc = 0;
                        for (int64_t k = 0; k < K; k++)
                            acc += tt_get(in[0], m * K + k) * tt_get(in[1], tb ? n * K + k : k * N + n);
                        double v = (double)0.75f * acc + tt_get(in[2], n);
                        ((double *)rz->data)[m * N + n] = v;
                        ((double *)ry->data)[m * N + n] = act_ref(acts[ai], v);
                    }
                char what[64];
                snprintf(what, sizeof what, "FusedGemm '%s' trans_b %d", acts[ai], tb);
                expect_near(out[0], ry, tol_of(dt), what);
                expect_near(out[1], rz, tol_of(dt), what);
                for (int i = 0; i < 3; i++) amp_tensor_destroy(in[i]);
                for (int i = 0; i < 2; i++) amp_tensor_destroy(out[i]);
                amp_tensor_destroy(ry);
                amp_tensor_destroy(rz);
                tn_free(t);
            }
}

Test(fused, gemm_refuses_mismatched_operands) {
    int64_t ad[2] = {3, 4}, bd[2] = {5, 6}, nd = 6;
    amp_tensor *in[3] = {rnd(AMP_F32, 2, ad, -1, 1), rnd(AMP_F32, 2, bd, -1, 1), rnd(AMP_F32, 1, &nd, -1, 1)};
    amp_test_node *t = fused_node("FusedGemm");
    amp_tensor *out[1] = {NULL};
    cr_assert_eq(tn_run(t, 3, in, 1, out), AMP_ERR_SHAPE);
    cr_assert_null(out[0]);
    tn_str(t, "activation", "Swish");
    bd[0] = 4;
    amp_tensor_destroy(in[1]);
    in[1] = rnd(AMP_F32, 2, bd, -1, 1);
    cr_assert_eq(tn_run(t, 3, in, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "Swish"), "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 3; i++) amp_tensor_destroy(in[i]);
    tn_free(t);
}

/* ---- AddLayerNorm ------------------------------------------------------------------------- */

Test(fused, add_layer_norm_broadcast_residual) {
    for (int ti = 0; ti < 4; ti++) {
        amp_dtype dt = types[ti];
        const int64_t N = 3, T = 5, C = 33;
        int64_t xd[3] = {N, T, C}, rd[2] = {T, C}, cd = C, md[3] = {N, T, 1};
        amp_tensor *in[4] = {rnd(dt, 3, xd, -2, 2), rnd(dt, 2, rd, -1, 1), rnd(dt, 1, &cd, 0.5, 1.5),
                             rnd(dt, 1, &cd, -0.5, 0.5)};
        amp_test_node *t = fused_node("AddLayerNorm");
        tn_float(t, "epsilon", 1e-5f);
        amp_tensor *out[4] = {0};
        cr_assert_eq(tn_run(t, 4, in, 4, out), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_eq(out[1]->rank, 3);
        cr_assert_eq(out[2]->dims[2], 1);
        amp_tensor *ry = f64_of(3, xd), *rs = f64_of(3, xd), *rm = f64_of(3, md), *ri = f64_of(3, md);
        for (int64_t r = 0; r < N * T; r++) {
            double sum = 0, sq = 0, s[64];
            for (int64_t c = 0; c < C; c++) {
                /* S is stored in the dtype: the statistics are of the rounded sum */
                double one[1] = {0};
                amp_st(dt, one, 0, tt_get(in[0], r * C + c) + tt_get(in[1], (r % T) * C + c));
                s[c] = amp_ld(dt, one, 0);
                sum += s[c];
            }
            double mean = sum / C;
            for (int64_t c = 0; c < C; c++) sq += (s[c] - mean) * (s[c] - mean);
            double inv = 1 / sqrt(sq / C + 1e-5);
            for (int64_t c = 0; c < C; c++) {
                ((double *)rs->data)[r * C + c] = s[c];
                ((double *)ry->data)[r * C + c] = (s[c] - mean) * inv * tt_get(in[2], c) + tt_get(in[3], c);
            }
            ((double *)rm->data)[r] = mean;
            ((double *)ri->data)[r] = inv;
        }
        expect_near(out[0], ry, tol_of(dt), "AddLayerNorm Y");
        expect_near(out[2], rm, tol_of(AMP_F32), "AddLayerNorm Mean");
        expect_near(out[3], ri, tol_of(AMP_F32), "AddLayerNorm InvStdDev");
        for (int64_t i = 0; i < N * T * C; i++)
            cr_assert_eq(tt_get(out[1], i), ((double *)rs->data)[i], "S[%lld]", (long long)i);
        for (int i = 0; i < 4; i++) {
            amp_tensor_destroy(in[i]);
            amp_tensor_destroy(out[i]);
        }
        amp_tensor_destroy(ry);
        amp_tensor_destroy(rs);
        amp_tensor_destroy(rm);
        amp_tensor_destroy(ri);
        tn_free(t);
    }
}

/* ---- Attention ---------------------------------------------------------------------------- */

Test(fused, attention_mask_and_layouts) {
    for (int ti = 0; ti < 4; ti++)
        for (int tk = 0; tk < 2; tk++)
            for (int with_mask = 0; with_mask < 2; with_mask++) {
                amp_dtype dt = types[ti];
                const int64_t B = 2, H = 3, Sq = 7, Sk = 9, D = 5, Dv = 6;
                int64_t qd[4] = {B, H, Sq, D}, kd[4] = {B, H, tk ? D : Sk, tk ? Sk : D}, vd[4] = {B, H, Sk, Dv},
                        mdims[2] = {Sq, Sk}, od[4] = {B, H, Sq, Dv}, pd[4] = {B, H, Sq, Sk};
                amp_tensor *in[4] = {rnd(dt, 4, qd, -1, 1), rnd(dt, 4, kd, -1, 1), rnd(dt, 4, vd, -1, 1),
                                     with_mask ? rnd(dt, 2, mdims, -3, 0) : NULL};
                amp_test_node *t = fused_node("Attention");
                tn_float(t, "scale", 0.45f);
                tn_int(t, "trans_k", tk);
                amp_tensor *out[2] = {NULL, NULL};
                cr_assert_eq(tn_run(t, with_mask ? 4 : 3, in, 2, out), AMP_OK, "%s", amp_context_last_error(ctx));
                amp_tensor *ro = f64_of(4, od), *rp = f64_of(4, pd);
                for (int64_t b = 0; b < B * H; b++)
                    for (int64_t i = 0; i < Sq; i++) {
                        double z[16], mx = -INFINITY, sum = 0;
                        for (int64_t j = 0; j < Sk; j++) {
                            double acc = 0;
                            for (int64_t d = 0; d < D; d++)
                                acc += tt_get(in[0], (b * Sq + i) * D + d) *
                                       tt_get(in[1], tk ? (b * D + d) * Sk + j : (b * Sk + j) * D + d);
                            z[j] = (double)0.45f * acc + (with_mask ? tt_get(in[3], i * Sk + j) : 0);
                            if (z[j] > mx) mx = z[j];
                        }
                        for (int64_t j = 0; j < Sk; j++) sum += exp(z[j] - mx);
                        for (int64_t j = 0; j < Sk; j++) ((double *)rp->data)[(b * Sq + i) * Sk + j] = exp(z[j] - mx) / sum;
                        for (int64_t e = 0; e < Dv; e++) {
                            double acc = 0;
                            for (int64_t j = 0; j < Sk; j++)
                                acc += ((double *)rp->data)[(b * Sq + i) * Sk + j] * tt_get(in[2], (b * Sk + j) * Dv + e);
                            ((double *)ro->data)[(b * Sq + i) * Dv + e] = acc;
                        }
                    }
                char what[64];
                snprintf(what, sizeof what, "Attention trans_k %d mask %d", tk, with_mask);
                expect_near(out[0], ro, tol_of(dt), what);
                expect_near(out[1], rp, tol_of(dt), what);
                for (int i = 0; i < 4; i++) amp_tensor_destroy(in[i]);
                for (int i = 0; i < 2; i++) amp_tensor_destroy(out[i]);
                amp_tensor_destroy(ro);
                amp_tensor_destroy(rp);
                tn_free(t);
            }
}

Test(fused, attention_refuses_unequal_batches) {
    int64_t qd[3] = {2, 4, 8}, kd[3] = {3, 4, 8};
    amp_tensor *in[3] = {rnd(AMP_F32, 3, qd, -1, 1), rnd(AMP_F32, 3, kd, -1, 1), rnd(AMP_F32, 3, kd, -1, 1)};
    amp_test_node *t = fused_node("Attention");
    amp_tensor *out[1] = {NULL};
    cr_assert_eq(tn_run(t, 3, in, 1, out), AMP_ERR_SHAPE);
    cr_assert_null(out[0]);
    for (int i = 0; i < 3; i++) amp_tensor_destroy(in[i]);
    tn_free(t);
}

/* ---- CastMulti ---------------------------------------------------------------------------- */

Test(fused, cast_multi_is_each_cast) {
    for (int rtz = 0; rtz < 2; rtz++) {
        int64_t d0[2] = {3, 7}, d1 = 33, d2[3] = {2, 1, 5};
        amp_tensor *in[3] = {rnd(AMP_F32, 2, d0, -100, 100), rnd(AMP_F32, 1, &d1, -1, 1), rnd(AMP_F32, 3, d2, -1e-3, 1e-3)};
        amp_test_node *t = fused_node("CastMulti");
        tn_int(t, "to", AMP_F16);
        if (rtz) t->node.flags |= AMP_NODE_CAST_RTZ;
        amp_tensor *out[3] = {0};
        cr_assert_eq(tn_run(t, 3, in, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
        for (int i = 0; i < 3; i++) {
            amp_test_node *c = tn_new(ctx, "Cast");
            tn_int(c, "to", AMP_F16);
            if (rtz) c->node.flags |= AMP_NODE_CAST_RTZ;
            amp_tensor *want = NULL;
            cr_assert_eq(tn_run(c, 1, &in[i], 1, &want), AMP_OK);
            cr_assert(tt_equal(out[i], want), "pair %d differs from Cast (rtz %d)", i, rtz);
            amp_tensor_destroy(want);
            tn_free(c);
        }
        for (int i = 0; i < 3; i++) {
            amp_tensor_destroy(in[i]);
            amp_tensor_destroy(out[i]);
        }
        tn_free(t);
    }
}
