/* FusedConv (ai.amprt.fused: Conv + Relu) on CUDA (backends/cuda/op_conv.c: Conv's forward plan
 * with the relu in cuDNN's graph, or conv_bias.cu's kernel after the plain plan) against the CPU's
 * amp_cpu_fused_conv on the same node: f32, f16, bf16, with and without bias, 1-D and 2-D,
 * groups and depthwise, strides, dilations, pads, auto_pad, odd shapes, LeNet's convolutions at
 * batch 8, no images; a refused activation.
 *
 * Two checks per case: against the CPU within the family's thresholds (both sides sum in f32 in
 * different orders and round once: f32 1e-6, f16 1e-3, bf16 8e-3), and bit for bit against
 * Conv on CUDA followed by relu on the host (relu commutes with rounding, so FusedConv is
 * exactly Conv's result with the negatives replaced by 0 wherever the two run the same sum). A
 * single-product convolution (one input channel, a 1x1 kernel, no bias) is bit-exact against the
 * CPU too. */
#include "tests/cuda/cuda_optest.h"

#include "backends/cuda/conv.h"

#define FUSED_DOMAIN "ai.amprt.fused"

/* one convolution: nsp spatial dims, N images, C input and M output channels */
typedef struct fc_case {
    const char *label;
    int nsp;
    int64_t N, C, M, group;
    int64_t in[2], k[2], stride[2], dil[2], pads[4]; /* pads: begins, then ends */
    const char *auto_pad;                            /* NULL: NOTSET with pads */
} fc_case;

static int dnn_setup(void) {
    if (!setup()) return 0;
    if (cu.dnn) return 1;
    return cudnnCreate(&cu.dnn) == CUDNN_STATUS_SUCCESS && cudnnSetStream(cu.dnn, cu.stream) == CUDNN_STATUS_SUCCESS &&
           amp_cuda_devprop_create(&cu) == AMP_OK;
}

/* The node: "FusedConv" with activation act (NULL: none given), or "Conv" */
static void fc_node(tnode *t, bool fused, const char *act, const fc_case *c) {
    int64_t one[2] = {1, 1};
    tn_init(t, fused ? "FusedConv" : "Conv", false);
    if (fused) {
        t->n.domain = FUSED_DOMAIN;
        t->n.op = amp_op_lookup("FusedConv", FUSED_DOMAIN);
        t->opset = 1;
        if (act) tn_s(t, "activation", act);
    }
    /* Conv's attributes (test_conv.c's conv_attrs, with cuda_optest.h's node) */
    static const char *const names[] = {"kernel_shape", "strides", "dilations"};
    const int64_t *vals[] = {c->k, c->stride[0] ? c->stride : one, c->dil[0] ? c->dil : one};
    for (int i = 0; i < 3; i++) tn_is(t, names[i], c->nsp, vals[i]);
    tn_i(t, "group", c->group ? c->group : 1);
    if (c->auto_pad) tn_s(t, "auto_pad", c->auto_pad);
    else tn_is(t, "pads", 2 * c->nsp, c->pads);
}

/* X, W and (bias) B of case c in dt */
static int fc_inputs(const fc_case *c, amp_dtype dt, bool bias, uint64_t seed, amp_tensor **in) {
    int64_t xd[4] = {c->N, c->C}, wd[4] = {c->M, c->C / (c->group ? c->group : 1)}, bd[1] = {c->M};
    for (int i = 0; i < c->nsp; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
    }
    in[0] = rnd(dt, c->nsp + 2, xd, seed, -1.0f, 1.0f);
    in[1] = rnd(dt, c->nsp + 2, wd, seed + 1, -1.0f, 1.0f);
    in[2] = bias ? rnd(dt, 1, bd, seed + 2, -1.0f, 1.0f) : NULL;
    return in[0] && in[1] && (!bias || in[2]);
}

/* relu on the host, as the CPU's Relu (x < 0 ? 0 : x) */
static void host_relu(amp_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++)
        if (amp_ld(t->dtype, t->data, i) < 0) amp_st(t->dtype, t->data, i, 0.0);
}

/* Case c in dt with/without bias: FusedConv against the CPU (CHECK_NODE), and FusedConv on CUDA
 * against Conv on CUDA then relu, bit for bit. */
static void check_case(const fc_case *c, amp_dtype dt, bool bias, uint64_t seed) {
    amp_tensor *in[3] = {NULL};
    CT_CHECK(fc_inputs(c, dt, bias, seed, in), "inputs");
    int nin = bias ? 3 : 2;
    tnode f, p;
    fc_node(&f, true, "Relu", c);
    CHECK_NODE(&f, nin, in, 1, false, tol_of(dt), "FusedConv %s %s%s", c->label, amp_dtype_name(dt),
               bias ? " +bias" : "");
    fc_node(&p, false, NULL, c);
    amp_tensor *fref[1], *fgot[1], *pref[1], *pgot[1];
    amp_status s = run_both(&f, nin, in, 1, fref, fgot);
    amp_status s2 = s ? s : run_both(&p, nin, in, 1, pref, pgot);
    free_all(in, 3);
    CT_CHECK(s == AMP_OK && s2 == AMP_OK, "%s %s: %s", c->label, amp_dtype_name(dt), amp_context_last_error(ctx));
    host_relu(pgot[0]);
    int64_t at = first_diff(fgot[0], pgot[0]), zeros = 0, n = fgot[0]->numel;
    bool same = bits_equal(fgot[0], pgot[0]);
    double a = at >= 0 ? amp_ld(dt, fgot[0]->data, at) : 0, b = at >= 0 ? amp_ld(dt, pgot[0]->data, at) : 0;
    for (int64_t i = 0; i < n; i++)
        zeros += amp_ld(dt, fgot[0]->data, i) == 0;
    free_all(fref, 1);
    free_all(fgot, 1);
    free_all(pref, 1);
    free_all(pgot, 1);
    CT_CHECK(same, "%s %s%s: FusedConv differs from relu(Conv) on CUDA at %lld: %.9g vs %.9g", c->label,
             amp_dtype_name(dt), bias ? " +bias" : "", (long long)at, a, b);
    /* random data: about half the sums are negative, and the relu must have clipped them */
    CT_CHECK(n < 20 || zeros * 5 >= n, "%s %s: %lld zeros of %lld", c->label, amp_dtype_name(dt), (long long)zeros,
             (long long)n);
}

static void check_all(const fc_case *cases, size_t n) {
    CT_CHECK(dnn_setup(), "CUDA setup: %s", amp_context_last_error(ctx));
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 3; d++)
            for (int b = 0; b < 2; b++) {
                check_case(&cases[i], kfloats[d], b, 100 + 7 * (uint64_t)i + (uint64_t)d);
                if (ct_st.failed) return;
            }
}

static void t_conv2d(void) {
    static const fc_case cases[] = {
        {.label = "3x3", .nsp = 2, .N = 2, .C = 3, .M = 5, .in = {13, 13}, .k = {3, 3}},
        {.label = "1x1", .nsp = 2, .N = 1, .C = 3, .M = 7, .in = {7, 9}, .k = {1, 1}},
        {.label = "one element", .nsp = 2, .N = 1, .C = 1, .M = 1, .in = {1, 1}, .k = {1, 1}},
        {.label = "5x5 padded", .nsp = 2, .N = 1, .C = 3, .M = 4, .in = {7, 13}, .k = {5, 5}, .pads = {2, 2, 2, 2}},
        {.label = "33 wide", .nsp = 2, .N = 1, .C = 2, .M = 3, .in = {3, 33}, .k = {3, 3}, .pads = {1, 1, 1, 1}},
    };
    check_all(cases, sizeof cases / sizeof cases[0]);
}

static void t_conv1d(void) {
    static const fc_case cases[] = {
        {.label = "1-D", .nsp = 1, .N = 3, .C = 4, .M = 6,
         .in = {29}, .k = {5}, .stride = {2}, .dil = {1}, .pads = {2, 1}},
        {.label = "1-D dilated", .nsp = 1, .N = 2, .C = 3, .M = 5,
         .in = {33}, .k = {3}, .stride = {1}, .dil = {3}, .pads = {0, 0}},
        {.label = "1-D depthwise", .nsp = 1, .N = 2, .C = 6, .M = 6, .group = 6,
         .in = {17}, .k = {3}, .stride = {1}, .dil = {1}, .pads = {1, 1}},
    };
    check_all(cases, sizeof cases / sizeof cases[0]);
}

static void t_groups(void) {
    static const fc_case cases[] = {
        {.label = "group 2", .nsp = 2, .N = 2, .C = 4, .M = 6, .group = 2, .in = {9, 11}, .k = {3, 3}},
        {.label = "depthwise", .nsp = 2, .N = 2, .C = 5, .M = 5, .group = 5,
         .in = {13, 7}, .k = {3, 3}, .pads = {1, 1, 1, 1}},
        {.label = "depthwise x2", .nsp = 2, .N = 1, .C = 3, .M = 6, .group = 3,
         .in = {7, 7}, .k = {3, 3}, .stride = {2, 2}},
    };
    check_all(cases, sizeof cases / sizeof cases[0]);
}

static void t_geometry(void) {
    static const fc_case cases[] = {
        {.label = "strides 2x3", .nsp = 2, .N = 2, .C = 3, .M = 4, .in = {13, 12}, .k = {3, 5}, .stride = {2, 3}},
        {.label = "dilations 2x3", .nsp = 2, .N = 1, .C = 2, .M = 3,
         .in = {13, 13}, .k = {3, 3}, .stride = {1, 1}, .dil = {2, 3}},
        {.label = "asymmetric pads", .nsp = 2, .N = 2, .C = 3, .M = 2,
         .in = {7, 9}, .k = {3, 3}, .stride = {2, 1}, .dil = {1, 1}, .pads = {1, 0, 0, 2}},
        {.label = "everything", .nsp = 2, .N = 1, .C = 4, .M = 4, .group = 2,
         .in = {13, 11}, .k = {3, 2}, .stride = {2, 2}, .dil = {2, 1}, .pads = {2, 1, 0, 1}},
        {.label = "SAME_UPPER", .nsp = 2, .N = 1, .C = 2, .M = 3,
         .in = {8, 7}, .k = {4, 3}, .stride = {3, 2}, .auto_pad = "SAME_UPPER"},
        {.label = "SAME_LOWER", .nsp = 2, .N = 1, .C = 2, .M = 3,
         .in = {8, 7}, .k = {4, 3}, .stride = {3, 2}, .auto_pad = "SAME_LOWER"},
        {.label = "VALID", .nsp = 2, .N = 1, .C = 2, .M = 3,
         .in = {8, 7}, .k = {4, 3}, .stride = {3, 2}, .auto_pad = "VALID"},
    };
    check_all(cases, sizeof cases / sizeof cases[0]);
}

/* models/lenet: 1 -> 6 and 6 -> 16 channels, 5x5 kernels, batch 8 */
static void t_lenet(void) {
    static const fc_case cases[] = {
        {.label = "LeNet conv1", .nsp = 2, .N = 8, .C = 1, .M = 6, .in = {28, 28}, .k = {5, 5}},
        {.label = "LeNet conv2", .nsp = 2, .N = 8, .C = 6, .M = 16, .in = {12, 12}, .k = {5, 5}},
    };
    check_all(cases, sizeof cases / sizeof cases[0]);
}

/* one product per output (one input channel, a 1x1 kernel, no bias): no summation order to
 * differ in, so CUDA and the CPU agree bit for bit */
static void t_exact(void) {
    CT_CHECK(dnn_setup(), "CUDA setup: %s", amp_context_last_error(ctx));
    const fc_case c = {.label = "single product", .nsp = 2, .N = 3, .C = 1, .M = 5, .in = {7, 9}, .k = {1, 1}};
    for (int d = 0; d < 3; d++) {
        amp_tensor *in[3] = {NULL};
        CT_CHECK(fc_inputs(&c, kfloats[d], false, 5, in), "inputs");
        tnode f;
        fc_node(&f, true, "Relu", &c);
        CHECK_NODE(&f, 2, in, 1, true, 0.0, "FusedConv %s %s", c.label, amp_dtype_name(kfloats[d]));
        free_all(in, 3);
    }
}

/* no images (Y empty), and no input channels (Y = relu(B), no plan: zeros, then the kernel) */
static void t_empty(void) {
    CT_CHECK(dnn_setup(), "CUDA setup: %s", amp_context_last_error(ctx));
    const fc_case cs[] = {{.label = "no images", .nsp = 2, .N = 0, .C = 3, .M = 4, .in = {9, 9}, .k = {3, 3}},
                          {.label = "no input channels", .nsp = 2, .N = 2, .C = 0, .M = 7, .in = {5, 5}, .k = {3, 3}}};
    for (int i = 0; i < 2; i++)
        for (int d = 0; d < 3; d++)
            for (int b = 0; b < 2; b++) {
                amp_tensor *in[3] = {NULL};
                CT_CHECK(fc_inputs(&cs[i], kfloats[d], b, 9, in), "inputs");
                tnode f;
                fc_node(&f, true, "Relu", &cs[i]);
                CHECK_NODE(&f, b ? 3 : 2, in, 1, true, 0.0, "FusedConv %s %s%s", cs[i].label,
                           amp_dtype_name(kfloats[d]), b ? " +bias" : "");
                free_all(in, 3);
            }
}

/* an activation other than Relu: supports() says no and names it (the op's inference refuses it
 * too, so this asks the family entry directly); f64 is the CPU's */
static void t_refuses(void) {
    CT_CHECK(dnn_setup(), "CUDA setup: %s", amp_context_last_error(ctx));
    const fc_case c = {.label = "refused", .nsp = 2, .N = 1, .C = 1, .M = 1, .in = {3, 3}, .k = {1, 1}};
    const char *acts[] = {"Gelu", "", NULL};
    const amp_cuda_op *e = entry_of(amp_op_lookup("FusedConv", FUSED_DOMAIN));
    CT_CHECK(e != NULL, "FusedConv has no CUDA entry");
    int64_t xd[4] = {1, 1, 3, 3}, wd[4] = {1, 1, 1, 1}, yd[4] = {1, 1, 3, 3};
    for (int i = 0; i < 4; i++) {
        tnode t;
        fc_node(&t, true, i < 3 ? acts[i] : "Relu", &c);
        amp_dtype dt = i < 3 ? AMP_F32 : AMP_F64;
        amp_tensor x, w, y;
        amp_tensor_view(&x, dt, 4, xd, NULL);
        amp_tensor_view(&w, dt, 4, wd, NULL);
        amp_tensor_view(&y, dt, 4, yd, NULL);
        amp_tensor *kin[2] = {&x, &w}, *kout[1] = {&y};
        amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 1, .nin = 2, .nout = 1, .in = kin, .out = kout};
        bool ok = e->supports(&cu, &k);
        const char *msg = amp_context_last_error(ctx);
        CT_CHECK(!ok, "FusedConv case %d is supported", i);
        if (i < 3)
            CT_CHECK(strstr(msg, "activation") && strstr(msg, "Relu only") && strstr(msg, "FusedConv"), "reason: %s",
                     msg);
        else
            CT_CHECK(strstr(msg, "float64") != NULL, "reason: %s", msg);
    }
}

static const ct_case cases[] = {
    {"conv2d", t_conv2d}, {"conv1d", t_conv1d}, {"groups", t_groups}, {"geometry", t_geometry},
    {"lenet", t_lenet},   {"exact", t_exact},   {"empty", t_empty},   {"refuses", t_refuses},
    {NULL, NULL},
};

int main(int argc, char **argv) {
    int rc = ct_main(argc, argv, cases);
    worst_print(); /* over every case run */
    amp_cuda_conv_cache_free(&cu);
    amp_cuda_devprop_destroy(&cu);
    if (cu.dnn) cudnnDestroy(cu.dnn);
    ot_teardown();
    return rc;
}
