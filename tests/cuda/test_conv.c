/* Conv, ConvGrad, ConvTranspose and ConvTransposeGrad on CUDA (cuDNN's graph API, backends/cuda/op_conv.c and conv.c) against the
 * CPU backend on the same node: forward, backward-data, backward-filter and the bias gradient in
 * f32, f16 and bf16, groups, dilations, strides, asymmetric pads, auto_pad, odd and empty shapes,
 * LeNet's own convolutions; the forward plan with its epilogue (conv -> bias -> relu, conv -> relu)
 * fused in cuDNN's graph and through the fallback kernel (planted: no engine fuses), against the
 * CPU's Conv and relu on the host; the plans (heuristics, workspace, the cache) and planted bugs (a
 * descriptor with wrong strides, a workspace smaller than the plan's, a host pointer, a scaled relu).
 *
 * Tolerances on the relative L2 error: both sides compute in f32 from the same rounded inputs,
 * in different orders, and round the output once; f32 1e-5 (sums of up to a few thousand terms,
 * ~1e-6 in practice), f16 2e-3 and bf16 1.5e-2 (about 4 units in the last place of the output
 * type: what a device whose engines cannot fuse the bias gives, the bias then added to a rounded
 * convolution; the emulator, fused, stays below 1e-4 in both). */
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/conv.h"
#include "backends/cuda/conv_bias.h"
#include "backends/cuda/emu/fake_runtime.h"
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_test.h"

static amp_context *ctx;
static amp_backend *cpu;
static amp_cuda cu;

static double tolerance(amp_dtype dt) { return dt == AMP_F32 ? 1e-5 : dt == AMP_F16 ? 2e-3 : 1.5e-2; }

/* the largest error seen per dtype (f32, f16, bf16), printed at the end */
static double worst[3];
static void note_error(amp_dtype dt, double e) {
    int i = dt == AMP_F32 ? 0 : dt == AMP_F16 ? 1 : 2;
    if (e > worst[i]) worst[i] = e;
}

/* ---- nodes --------------------------------------------------------------------------------- */

typedef struct tnode {
    amp_node node;
    amp_attr attrs[8];
    int64_t ints[8][6];
    int ids_in[4], ids_out[4];
} tnode;

static void tn_ints(tnode *t, const char *name, int n, const int64_t *v) {
    amp_attr *a = &t->attrs[t->node.n_attrs];
    memset(a, 0, sizeof *a);
    a->name = (char *)name;
    a->kind = AMP_ATTR_INTS;
    memcpy(t->ints[t->node.n_attrs], v, sizeof(int64_t) * (size_t)n);
    a->ints = t->ints[t->node.n_attrs];
    a->n = n;
    t->node.n_attrs++;
}

static void tn_int(tnode *t, const char *name, int64_t v) {
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = (char *)name;
    a->kind = AMP_ATTR_INT;
    a->i = v;
}

static void tn_str(tnode *t, const char *name, const char *v) {
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = (char *)name;
    a->kind = AMP_ATTR_STRING;
    a->s = (char *)v;
    a->slen = strlen(v);
}

/* A convolution: nsp spatial dims, N images, C input and M output channels. */
typedef struct conv_case {
    amp_dtype dt;
    int nsp;
    int64_t N, C, M, group;
    int64_t in[3], k[3], stride[3], dil[3], pads[6]; /* pads: begins, then ends */
    const char *auto_pad;                            /* NULL: NOTSET with pads */
    int bias;
    int64_t opad[3]; /* ConvTranspose's output_padding (0: not given) */
} conv_case;

static void conv_attrs(tnode *t, const conv_case *c) {
    int64_t one[3] = {1, 1, 1};
    tn_ints(t, "kernel_shape", c->nsp, c->k);
    tn_ints(t, "strides", c->nsp, c->stride[0] ? c->stride : one);
    tn_ints(t, "dilations", c->nsp, c->dil[0] ? c->dil : one);
    tn_int(t, "group", c->group ? c->group : 1);
    if (c->auto_pad)
        tn_str(t, "auto_pad", c->auto_pad);
    else
        tn_ints(t, "pads", 2 * c->nsp, c->pads);
    for (int i = 0; i < c->nsp; i++)
        if (c->opad[i]) {
            tn_ints(t, "output_padding", c->nsp, c->opad);
            break;
        }
}

static void tn_init(tnode *t, const char *op, const char *domain, int nin, int nout) {
    memset(t, 0, sizeof *t);
    t->node.name = "conv_test";
    t->node.op_type = (char *)op;
    t->node.domain = (char *)domain;
    t->node.op = amp_op_lookup(op, domain);
    t->node.attrs = t->attrs;
    for (int i = 0; i < nin; i++)
        t->ids_in[i] = i;
    for (int i = 0; i < nout; i++)
        t->ids_out[i] = i;
    t->node.inputs = t->ids_in;
    t->node.n_inputs = nin;
    t->node.outputs = t->ids_out;
    t->node.n_outputs = nout;
}

/* ---- tensors ------------------------------------------------------------------------------- */

/* A host tensor of random non-zero values (rounded to dt). */
static amp_tensor *host_rand(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    amp_tensor *t = NULL;
    if (amp_tensor_create(ctx, dt, rank, dims, &t)) return NULL;
    float *v = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (!v) {
        amp_tensor_destroy(t);
        return NULL;
    }
    ct_fill(v, (size_t)t->numel, seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < t->numel; i++)
        amp_st(dt, t->data, i, v[i]);
    free(v);
    return t;
}

static float *as_floats(const amp_tensor *t) {
    float *v = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    for (int64_t i = 0; v && i < t->numel; i++)
        v[i] = (float)amp_ld(t->dtype, t->data, i);
    return v;
}

/* A device copy of a host tensor (or an uninitialised one: NaN bytes) and its view. */
typedef struct dev_tensor {
    amp_tensor view;
    void *mem;
} dev_tensor;

static int dev_make(dev_tensor *d, const amp_tensor *like, int upload) {
    memset(d, 0, sizeof *d);
    if (like->nbytes && cudaMalloc(&d->mem, like->nbytes) != cudaSuccess) return 0;
    if (upload && like->nbytes && cudaMemcpy(d->mem, like->data, like->nbytes, cudaMemcpyHostToDevice) != cudaSuccess)
        return 0;
    amp_tensor_view(&d->view, like->dtype, like->rank, like->dims, d->mem);
    return 1;
}

static void dev_free(dev_tensor *d) {
    if (d->mem) cudaFree(d->mem);
    d->mem = NULL;
}

/* ---- running a node on both backends ------------------------------------------------------ */

enum { MAXT = 3 };

typedef struct run_result {
    amp_status status;
    double err[MAXT]; /* relative L2 error of each output against the CPU */
    int outputs;
    size_t ws;
    char msg[512];
} run_result;

/* The CUDA family entry for op. */
static const amp_cuda_op *entry(amp_op op) {
    for (const amp_cuda_op *e = amp_cuda_ops_conv; e->run; e++)
        if (e->op == op) return e;
    return NULL;
}

/* Infers the outputs of node t over inputs in, runs it on the CPU and on CUDA, and compares.
 * want[i] = 0 omits output i (ConvGrad). */
static run_result run_both(tnode *t, int64_t opset, int nin, amp_tensor **in, int nout, const int *want) {
    run_result r;
    memset(&r, 0, sizeof r);
    amp_tinfo ti[MAXT], to[MAXT];
    const amp_tinfo *pin[MAXT];
    amp_tinfo *pout[MAXT];
    amp_tensor *host_out[MAXT] = {NULL}, *outv[MAXT] = {NULL};
    dev_tensor din[MAXT], dout[MAXT];
    memset(din, 0, sizeof din);
    memset(dout, 0, sizeof dout);
    memset(ti, 0, sizeof ti);
    memset(to, 0, sizeof to);
    for (int i = 0; i < nin; i++) {
        t->ids_in[i] = in[i] ? i : -1;
        pin[i] = NULL;
        if (!in[i]) continue;
        ti[i].dtype = in[i]->dtype;
        ti[i].rank = in[i]->rank;
        memcpy(ti[i].dims, in[i]->dims, sizeof ti[i].dims);
        pin[i] = &ti[i];
    }
    for (int i = 0; i < nout; i++) {
        pout[i] = &to[i];
        t->ids_out[i] = want && !want[i] ? -1 : i;
    }
    amp_infer ic = {.ctx = ctx, .g = NULL, .n = &t->node, .opset = opset, .nin = nin, .nout = nout, .in = pin, .out = pout};
    void *state = NULL, *ws = NULL;
    size_t ws_bytes = 0;
    const amp_cuda_op *e = entry(t->node.op);
    r.status = amp_op_table[t->node.op].infer(&ic);
    if (r.status) goto done;
    for (int i = 0; i < nout; i++) {
        if (want && !want[i]) continue;
        if ((r.status = amp_tensor_create(ctx, to[i].dtype, to[i].rank, to[i].dims, &host_out[i]))) goto done;
    }
    amp_kernel kc = {.ctx = ctx, .n = &t->node, .opset = opset, .nin = nin, .nout = nout, .in = in, .out = host_out,
                     .threads = 1};
    if ((r.status = amp_backend_run_once(cpu, &kc))) goto done;
    /* CUDA: device copies of the inputs, NaN-filled outputs */
    amp_tensor *dinv[MAXT] = {NULL};
    for (int i = 0; i < nin; i++) {
        if (!in[i]) continue;
        if (!dev_make(&din[i], in[i], 1)) {
            r.status = AMP_ERR_NO_MEMORY;
            goto done;
        }
        dinv[i] = &din[i].view;
    }
    for (int i = 0; i < nout; i++) {
        if (!host_out[i]) continue;
        if (!dev_make(&dout[i], host_out[i], 0)) {
            r.status = AMP_ERR_NO_MEMORY;
            goto done;
        }
        outv[i] = &dout[i].view;
    }
    amp_kernel kd = {.ctx = ctx, .n = &t->node, .opset = opset, .nin = nin, .nout = nout, .in = dinv, .out = outv,
                     .threads = 1};
    if (!e || !e->supports(&cu, &kd)) {
        r.status = AMP_ERR_UNSUPPORTED;
        goto done;
    }
    if ((r.status = e->prepare(&cu, &kd, &state, &ws_bytes))) goto done;
    r.ws = ws_bytes;
    if (ws_bytes && cudaMalloc(&ws, ws_bytes) != cudaSuccess) {
        r.status = AMP_ERR_NO_MEMORY;
        goto done;
    }
    kd.ws = ws;
    kd.ws_bytes = ws_bytes;
    if ((r.status = e->run(&cu, &kd, state))) goto done;
    for (int i = 0; i < nout; i++) {
        if (!host_out[i]) continue;
        amp_tensor *got = NULL;
        if ((r.status = amp_tensor_create(ctx, host_out[i]->dtype, host_out[i]->rank, host_out[i]->dims, &got))) goto done;
        if (got->nbytes) cudaMemcpy(got->data, dout[i].mem, got->nbytes, cudaMemcpyDeviceToHost);
        float *a = as_floats(got), *b = as_floats(host_out[i]);
        r.err[i] = host_out[i]->numel ? ct_rel_l2(a, b, (size_t)got->numel) : 0;
        /* NaN anywhere fails (ct_rel_l2 would pass a NaN-free sum only) */
        for (int64_t j = 0; j < got->numel; j++)
            if (a[j] != a[j]) r.err[i] = INFINITY;
        free(a);
        free(b);
        amp_tensor_destroy(got);
        r.outputs++;
    }
done:
    if (r.status) snprintf(r.msg, sizeof r.msg, "%s", amp_context_last_error(ctx));
    if (state && e && e->release) e->release(&cu, state);
    if (ws) cudaFree(ws);
    for (int i = 0; i < MAXT; i++) {
        dev_free(&din[i]);
        dev_free(&dout[i]);
        amp_tensor_destroy(host_out[i]);
    }
    return r;
}

static void conv_dims(const conv_case *c, int64_t *xd, int64_t *wd) {
    int64_t g = c->group ? c->group : 1;
    xd[0] = c->N;
    xd[1] = c->C;
    wd[0] = c->M;
    wd[1] = c->C / g;
    for (int i = 0; i < c->nsp; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
    }
}

/* Conv forward on both backends; returns the result (the inputs freed). */
static run_result conv_forward(const conv_case *c, uint64_t seed) {
    tnode t;
    tn_init(&t, "Conv", "", c->bias ? 3 : 2, 1);
    conv_attrs(&t, c);
    int64_t xd[5], wd[5], bd[1] = {c->M};
    conv_dims(c, xd, wd);
    amp_tensor *in[3] = {host_rand(c->dt, c->nsp + 2, xd, seed), host_rand(c->dt, c->nsp + 2, wd, seed + 1),
                         c->bias ? host_rand(c->dt, 1, bd, seed + 2) : NULL};
    run_result r = run_both(&t, 17, c->bias ? 3 : 2, in, 1, NULL);
    for (int i = 0; i < 3; i++)
        amp_tensor_destroy(in[i]);
    return r;
}

/* ConvGrad on both backends with the outputs in want (dX, dW, dB). */
static run_result conv_backward(const conv_case *c, const int *want, uint64_t seed) {
    /* dY's shape from the forward inference */
    tnode f;
    tn_init(&f, "Conv", "", 2, 1);
    conv_attrs(&f, c);
    int64_t xd[5], wd[5];
    conv_dims(c, xd, wd);
    amp_tinfo tx = {.dtype = c->dt, .rank = c->nsp + 2}, tw = tx, ty;
    memcpy(tx.dims, xd, sizeof xd);
    memcpy(tw.dims, wd, sizeof wd);
    const amp_tinfo *fin[2] = {&tx, &tw};
    amp_tinfo *fout[1] = {&ty};
    amp_infer fc = {.ctx = ctx, .n = &f.node, .opset = 17, .nin = 2, .nout = 1, .in = fin, .out = fout};
    run_result r;
    memset(&r, 0, sizeof r);
    if ((r.status = amp_infer_conv(&fc))) {
        snprintf(r.msg, sizeof r.msg, "%s", amp_context_last_error(ctx));
        return r;
    }
    tnode t;
    tn_init(&t, "ConvGrad", AMP_TRAIN_DOMAIN, 3, 3);
    conv_attrs(&t, c);
    amp_tensor *in[3] = {host_rand(c->dt, ty.rank, ty.dims, seed + 7), host_rand(c->dt, c->nsp + 2, xd, seed),
                         host_rand(c->dt, c->nsp + 2, wd, seed + 1)};
    r = run_both(&t, 1, 3, in, 3, want);
    for (int i = 0; i < 3; i++)
        amp_tensor_destroy(in[i]);
    return r;
}

static const int all_outputs[3] = {1, 1, 1};

/* ConvTranspose (C input, M output channels: W is C x M/group x k) and ConvTransposeGrad on both
 * backends, all outputs; the forward's result in *rf, the gradient's in *rb. */
static void convt_both(const conv_case *c, uint64_t seed, run_result *rf, run_result *rb) {
    int64_t g = c->group ? c->group : 1, xd[5] = {c->N, c->C}, wd[5] = {c->C, c->M / g}, bd[1] = {c->M};
    for (int i = 0; i < c->nsp; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
    }
    tnode f;
    tn_init(&f, "ConvTranspose", "", c->bias ? 3 : 2, 1);
    conv_attrs(&f, c);
    amp_tinfo tx = {.dtype = c->dt, .rank = c->nsp + 2}, tw = tx, tb = {.dtype = c->dt, .rank = 1, .dims = {c->M}}, ty;
    memcpy(tx.dims, xd, sizeof xd);
    memcpy(tw.dims, wd, sizeof wd);
    const amp_tinfo *fin[3] = {&tx, &tw, &tb};
    amp_tinfo *fout[1] = {&ty};
    amp_infer fc = {.ctx = ctx, .n = &f.node, .opset = 17, .nin = c->bias ? 3 : 2, .nout = 1, .in = fin, .out = fout};
    memset(rf, 0, sizeof *rf);
    memset(rb, 0, sizeof *rb);
    if ((rf->status = rb->status = amp_infer_conv_transpose(&fc))) {
        snprintf(rf->msg, sizeof rf->msg, "%s", amp_context_last_error(ctx));
        snprintf(rb->msg, sizeof rb->msg, "%s", rf->msg);
        return;
    }
    amp_tensor *in[3] = {host_rand(c->dt, c->nsp + 2, xd, seed), host_rand(c->dt, c->nsp + 2, wd, seed + 1),
                         c->bias ? host_rand(c->dt, 1, bd, seed + 2) : NULL};
    *rf = run_both(&f, 17, c->bias ? 3 : 2, in, 1, NULL);
    tnode t;
    tn_init(&t, "ConvTransposeGrad", AMP_TRAIN_DOMAIN, 3, 3);
    conv_attrs(&t, c);
    amp_tensor *gin[3] = {host_rand(c->dt, ty.rank, ty.dims, seed + 7), in[0], in[1]};
    *rb = run_both(&t, 1, 3, gin, 3, all_outputs);
    amp_tensor_destroy(gin[0]);
    for (int i = 0; i < 3; i++)
        amp_tensor_destroy(in[i]);
}

#define CHECK_RUN(r, c, what)                                                                                         \
    do {                                                                                                               \
        CT_CHECK((r).status == AMP_OK, "%s %s: %s (%s)", what, amp_dtype_name((c)->dt), amp_status_name((r).status),   \
                 (r).msg);                                                                                             \
        for (int i_ = 0; i_ < MAXT; i_++) {                                                                            \
            note_error((c)->dt, (r).err[i_]);                                                                          \
            CT_CHECK((r).err[i_] <= tolerance((c)->dt), "%s %s output %d: rel L2 %g > %g", what,                      \
                     amp_dtype_name((c)->dt), i_, (r).err[i_], tolerance((c)->dt));                                    \
        }                                                                                                              \
    } while (0)

static const amp_dtype dtypes[] = {AMP_F32, AMP_F16, AMP_BF16};
static const int all3[3] = {1, 1, 1};

/* one ConvTranspose case in every dtype, forward and all gradients */
#define EVERY_DTYPE_T(base, label)                                                                                     \
    for (int d_ = 0; d_ < 3; d_++) {                                                                                   \
        conv_case c_ = (base);                                                                                         \
        c_.dt = dtypes[d_];                                                                                            \
        run_result rf, rb;                                                                                             \
        convt_both(&c_, 31 + (uint64_t)d_, &rf, &rb);                                                                  \
        CHECK_RUN(rf, &c_, label " ConvTranspose");                                                                    \
        CT_CHECK(rf.outputs == 1, "ConvTranspose: %d outputs compared", rf.outputs);                                  \
        CHECK_RUN(rb, &c_, label " ConvTransposeGrad");                                                                \
        CT_CHECK(rb.outputs == 3, "ConvTransposeGrad: %d outputs compared", rb.outputs);                              \
    }

/* one case in every dtype, forward and all gradients */
#define EVERY_DTYPE(base, label)                                                                                       \
    for (int d_ = 0; d_ < 3; d_++) {                                                                                   \
        conv_case c_ = (base);                                                                                         \
        c_.dt = dtypes[d_];                                                                                            \
        run_result rf = conv_forward(&c_, 11 + (uint64_t)d_);                                                          \
        CHECK_RUN(rf, &c_, label " forward");                                                                          \
        CT_CHECK(rf.outputs == 1, "forward: %d outputs compared", rf.outputs);                                        \
        run_result rb = conv_backward(&c_, all3, 23 + (uint64_t)d_);                                                   \
        CHECK_RUN(rb, &c_, label " ConvGrad");                                                                         \
        CT_CHECK(rb.outputs == 3, "ConvGrad: %d outputs compared", rb.outputs);                                       \
    }

/* ---- cases --------------------------------------------------------------------------------- */

static void t_basic(void) {
    conv_case c = {.nsp = 2, .N = 2, .C = 3, .M = 5, .in = {13, 13}, .k = {3, 3}, .bias = 1};
    EVERY_DTYPE(c, "3x3");
}

static void t_odd(void) {
    /* N = 1, C = 3, H = W = 7, 1x1 and 5x5 kernels */
    conv_case c1 = {.nsp = 2, .N = 1, .C = 3, .M = 7, .in = {7, 7}, .k = {1, 1}, .bias = 1};
    EVERY_DTYPE(c1, "1x1");
    conv_case c5 = {.nsp = 2, .N = 1, .C = 3, .M = 4, .in = {7, 13}, .k = {5, 5}, .pads = {2, 2, 2, 2}};
    EVERY_DTYPE(c5, "5x5 padded");
    conv_case one = {.nsp = 2, .N = 1, .C = 1, .M = 1, .in = {1, 1}, .k = {1, 1}, .bias = 1};
    EVERY_DTYPE(one, "one element");
}

static void t_groups(void) {
    conv_case g2 = {.nsp = 2, .N = 2, .C = 4, .M = 6, .group = 2, .in = {9, 11}, .k = {3, 3}, .bias = 1};
    EVERY_DTYPE(g2, "group 2");
    conv_case dw = {.nsp = 2, .N = 2, .C = 5, .M = 5, .group = 5, .in = {13, 7}, .k = {3, 3}, .pads = {1, 1, 1, 1}};
    EVERY_DTYPE(dw, "depthwise");
}

static void t_geometry(void) {
    conv_case st = {.nsp = 2, .N = 2, .C = 3, .M = 4, .in = {13, 12}, .k = {3, 5}, .stride = {2, 3}, .dil = {1, 1}};
    EVERY_DTYPE(st, "strides 2x3");
    conv_case dil = {.nsp = 2, .N = 1, .C = 2, .M = 3, .in = {13, 13}, .k = {3, 3}, .stride = {1, 1}, .dil = {2, 3}};
    EVERY_DTYPE(dil, "dilations 2x3");
    conv_case asym = {.nsp = 2, .N = 2, .C = 3, .M = 2, .in = {7, 9}, .k = {3, 3}, .stride = {2, 1},
                      .pads = {1, 0, 0, 2}};
    EVERY_DTYPE(asym, "asymmetric pads");
    conv_case all = {.nsp = 2, .N = 1, .C = 4, .M = 4, .group = 2, .in = {13, 11}, .k = {3, 2}, .stride = {2, 2},
                     .dil = {2, 1}, .pads = {2, 1, 0, 1}, .bias = 1};
    EVERY_DTYPE(all, "everything at once");
}

static void t_auto_pad(void) {
    const char *modes[] = {"SAME_UPPER", "SAME_LOWER", "VALID"};
    for (int m = 0; m < 3; m++) {
        conv_case c = {.nsp = 2, .N = 1, .C = 2, .M = 3, .in = {8, 7}, .k = {4, 3}, .stride = {3, 2},
                       .auto_pad = modes[m], .bias = 1};
        EVERY_DTYPE(c, "auto_pad");
    }
}

static void t_conv1d(void) {
    conv_case c = {.nsp = 1, .N = 3, .C = 4, .M = 6, .in = {29}, .k = {5}, .stride = {2}, .dil = {1},
                   .pads = {2, 1}, .bias = 1};
    EVERY_DTYPE(c, "1-D");
}

static void t_conv3d(void) {
    conv_case c = {.nsp = 3, .N = 1, .C = 2, .M = 3, .in = {5, 6, 7}, .k = {3, 2, 3}, .stride = {1, 2, 1},
                   .dil = {1, 1, 2}, .pads = {1, 0, 0, 0, 1, 1}, .bias = 1};
    EVERY_DTYPE(c, "3-D");
}

/* ConvTranspose and its gradient as the transposed descriptor's backward-data, forward and
 * backward-filter plans: strides with output_padding, groups, dilations, pads, 1-D and 3-D */
static void t_transpose(void) {
    conv_case up = {.nsp = 2, .N = 2, .C = 3, .M = 5, .in = {7, 6}, .k = {2, 2}, .stride = {2, 2}, .bias = 1};
    EVERY_DTYPE_T(up, "x2 upsampling");
    conv_case op = {.nsp = 2, .N = 1, .C = 4, .M = 6, .group = 2, .in = {5, 7}, .k = {3, 3}, .stride = {2, 3},
                    .dil = {1, 2}, .pads = {1, 0, 0, 2}, .opad = {1, 2}, .bias = 1};
    EVERY_DTYPE_T(op, "groups, dilations, pads, output_padding");
    conv_case one = {.nsp = 2, .N = 1, .C = 1, .M = 1, .in = {1, 1}, .k = {1, 1}};
    EVERY_DTYPE_T(one, "one element");
    conv_case d1 = {.nsp = 1, .N = 3, .C = 2, .M = 3, .in = {11}, .k = {4}, .stride = {3}, .dil = {1}, .pads = {1, 2}};
    EVERY_DTYPE_T(d1, "1-D");
    conv_case d3 = {.nsp = 3, .N = 1, .C = 2, .M = 2, .in = {3, 4, 5}, .k = {2, 3, 2}, .stride = {2, 1, 2},
                    .dil = {1, 1, 1}, .pads = {0, 1, 0, 0, 1, 0}, .bias = 1};
    EVERY_DTYPE_T(d3, "3-D");
    /* an output_shape larger than the natural output needs negative pads: refused, not wrong */
    tnode t;
    tn_init(&t, "ConvTranspose", "", 2, 1);
    conv_case c = {.nsp = 2, .k = {3, 3}};
    conv_attrs(&t, &c);
    int64_t oshape[2] = {9, 9};
    tn_ints(&t, "output_shape", 2, oshape);
    int64_t xd[4] = {1, 2, 3, 3}, wd[4] = {2, 2, 3, 3}, yd[4] = {1, 2, 9, 9};
    amp_tensor x, w, y;
    amp_tensor_view(&x, AMP_F32, 4, xd, NULL);
    amp_tensor_view(&w, AMP_F32, 4, wd, NULL);
    amp_tensor_view(&y, AMP_F32, 4, yd, NULL);
    amp_tensor *in[2] = {&x, &w}, *out[1] = {&y};
    amp_kernel k = {.ctx = ctx, .n = &t.node, .opset = 17, .nin = 2, .nout = 1, .in = in, .out = out};
    CT_CHECK(!entry(AMP_OP_CONV_TRANSPOSE)->supports(&cu, &k), "ConvTranspose with negative pads is taken");
    CT_CHECK(strstr(amp_context_last_error(ctx), "negative pads") != NULL, "the refusal says why: %s",
             amp_context_last_error(ctx));
}

static void t_lenet(void) {
    conv_case c1 = {.nsp = 2, .N = 4, .C = 1, .M = 20, .in = {28, 28}, .k = {5, 5}, .bias = 1};
    EVERY_DTYPE(c1, "LeNet conv1");
    conv_case c2 = {.nsp = 2, .N = 4, .C = 20, .M = 50, .in = {12, 12}, .k = {5, 5}, .bias = 1};
    EVERY_DTYPE(c2, "LeNet conv2");
}

/* ConvGrad with some outputs omitted, and with no images at all */
static void t_partial_and_empty(void) {
    conv_case c = {.nsp = 2, .N = 2, .C = 3, .M = 4, .in = {9, 9}, .k = {3, 3}, .dt = AMP_F16};
    static const int wants[][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 1, 1}};
    for (int w = 0; w < 4; w++) {
        run_result r = conv_backward(&c, wants[w], 5);
        CHECK_RUN(r, &c, "ConvGrad, some outputs");
        CT_CHECK(r.outputs == wants[w][0] + wants[w][1] + wants[w][2], "%d outputs compared", r.outputs);
    }
    conv_case e = {.nsp = 2, .N = 0, .C = 3, .M = 4, .in = {9, 9}, .k = {3, 3}, .dt = AMP_F32, .bias = 1};
    run_result rf = conv_forward(&e, 3);
    CHECK_RUN(rf, &e, "Conv, no images");
    /* no images: dX is empty, dW and dB are zeros on both sides */
    tnode t;
    tn_init(&t, "ConvGrad", AMP_TRAIN_DOMAIN, 3, 3);
    conv_attrs(&t, &e);
    int64_t yd[4] = {0, 4, 7, 7}, xd[4] = {0, 3, 9, 9}, wd[4] = {4, 3, 3, 3};
    amp_tensor *in[3] = {host_rand(AMP_F32, 4, yd, 1), host_rand(AMP_F32, 4, xd, 2), host_rand(AMP_F32, 4, wd, 3)};
    run_result rb = run_both(&t, 1, 3, in, 3, all3);
    for (int i = 0; i < 3; i++)
        amp_tensor_destroy(in[i]);
    CT_CHECK(rb.status == AMP_OK && rb.outputs == 3, "ConvGrad, no images: %s (%s)", amp_status_name(rb.status),
             rb.msg);
    for (int i = 0; i < 3; i++)
        CT_CHECK(rb.err[i] == 0, "ConvGrad, no images: output %d differs (%g)", i, rb.err[i]);
}

/* f64 and integer convolutions are the CPU's: supports() says no, with the dtype in the reason */
static void t_refuses(void) {
    tnode t;
    conv_case c = {.nsp = 2, .N = 1, .C = 1, .M = 1, .in = {3, 3}, .k = {1, 1}};
    tn_init(&t, "Conv", "", 2, 1);
    conv_attrs(&t, &c);
    int64_t xd[4] = {1, 1, 3, 3}, wd[4] = {1, 1, 1, 1}, yd[4] = {1, 1, 3, 3};
    amp_tensor x, w, y;
    amp_tensor_view(&x, AMP_F64, 4, xd, NULL);
    amp_tensor_view(&w, AMP_F64, 4, wd, NULL);
    amp_tensor_view(&y, AMP_F64, 4, yd, NULL);
    amp_tensor *in[2] = {&x, &w}, *out[1] = {&y};
    amp_kernel k = {.ctx = ctx, .n = &t.node, .opset = 17, .nin = 2, .nout = 1, .in = in, .out = out};
    bool ok = entry(AMP_OP_CONV)->supports(&cu, &k);
    CT_CHECK(!ok, "f64 Conv is supported");
    CT_CHECK(strstr(amp_context_last_error(ctx), "float64") != NULL, "reason: %s", amp_context_last_error(ctx));
}

/* ---- the forward plan with its epilogue (bias, relu) --------------------------------------- */

static amp_cuda_conv_desc plan_desc(amp_cuda_conv_kind kind, amp_dtype dt);
static amp_cuda_conv_desc plan_desc_fwd(amp_dtype dt) { return plan_desc(AMP_CUDA_CONV_FWD, dt); }

/* The forward desc of case c (explicit pads; no auto_pad). */
static amp_cuda_conv_desc case_desc(const conv_case *c, amp_cuda_conv_act act, unsigned plant) {
    amp_cuda_conv_desc d;
    memset(&d, 0, sizeof d);
    d.kind = AMP_CUDA_CONV_FWD;
    d.dtype = c->dt;
    d.nsp = c->nsp;
    conv_dims(c, d.x, d.w);
    d.y[0] = c->N;
    d.y[1] = c->M;
    for (int i = 0; i < c->nsp; i++) {
        d.stride[i] = c->stride[i] ? c->stride[i] : 1;
        d.dilation[i] = c->dil[i] ? c->dil[i] : 1;
        d.pre[i] = c->pads[i];
        d.post[i] = c->pads[c->nsp + i];
        d.y[2 + i] = (c->in[i] + d.pre[i] + d.post[i] - d.dilation[i] * (c->k[i] - 1) - 1) / d.stride[i] + 1;
    }
    d.bias = c->bias;
    d.act = act;
    d.plant = plant;
    return d;
}

typedef struct fwd_result {
    amp_status status;
    double err;          /* rel L2 against relu(the CPU's Conv) */
    int64_t negatives;   /* values below 0 in a relu output (must be none) */
    int64_t zeros, n;    /* zeros in the output, of n values */
    bool bias_kernel, act_kernel; /* the bias, the activation ran as conv_bias.cu's kernel */
    char msg[512];
} fwd_result;

/* Case c through amp_cuda_conv_fwd_get/run with activation act against the CPU's Conv (with c's
 * bias) followed by the activation on the host (relu commutes with rounding). keep, when not
 * NULL, gets the CUDA output (the caller destroys it). */
static fwd_result fwd_epilogue(const conv_case *c, amp_cuda_conv_act act, unsigned plant, uint64_t seed,
                               amp_tensor **keep) {
    fwd_result r;
    memset(&r, 0, sizeof r);
    amp_cuda_conv_desc d = case_desc(c, act, plant);
    int rank = c->nsp + 2;
    int64_t bd[1] = {c->M};
    amp_tensor *in[3] = {host_rand(c->dt, rank, d.x, seed), host_rand(c->dt, rank, d.w, seed + 1),
                         c->bias ? host_rand(c->dt, 1, bd, seed + 2) : NULL};
    amp_tensor *ycpu = NULL, *ygot = NULL;
    amp_tensor_create(ctx, c->dt, rank, d.y, &ycpu);
    amp_tensor_create(ctx, c->dt, rank, d.y, &ygot);
    tnode t;
    tn_init(&t, "Conv", "", c->bias ? 3 : 2, 1);
    conv_attrs(&t, c);
    amp_tensor *out[1] = {ycpu};
    amp_kernel k = {.ctx = ctx, .n = &t.node, .opset = 17, .nin = c->bias ? 3 : 2, .nout = 1, .in = in, .out = out,
                    .threads = 1};
    dev_tensor dv[3], dy;
    memset(dv, 0, sizeof dv);
    memset(&dy, 0, sizeof dy);
    void *ws = NULL;
    amp_cuda_conv_fwd f;
    r.status = amp_backend_run_once(cpu, &k);
    for (int i = 0; i < 3 && !r.status; i++)
        if (in[i] && !dev_make(&dv[i], in[i], 1)) r.status = AMP_ERR_NO_MEMORY;
    if (!r.status && !dev_make(&dy, ycpu, 0)) r.status = AMP_ERR_NO_MEMORY;
    if (!r.status) r.status = amp_cuda_conv_fwd_get(&cu, &d, &f);
    size_t wsb = r.status ? 0 : amp_cuda_conv_plan_workspace(f.plan);
    if (!r.status && wsb && cudaMalloc(&ws, wsb) != cudaSuccess) r.status = AMP_ERR_NO_MEMORY;
    if (!r.status) r.status = amp_cuda_conv_fwd_run(&cu, &f, NULL, dv[0].mem, dv[1].mem, dy.mem, dv[2].mem, ws, wsb);
    if (!r.status && cudaMemcpy(ygot->data, dy.mem, ygot->nbytes, cudaMemcpyDeviceToHost) != cudaSuccess)
        r.status = AMP_ERR_INTERNAL;
    if (!r.status) {
        r.bias_kernel = f.bias_kernel;
        r.act_kernel = f.act_kernel;
        float *a = as_floats(ygot), *b = as_floats(ycpu);
        r.n = ygot->numel;
        for (int64_t i = 0; i < r.n; i++) {
            if (act == AMP_CUDA_CONV_ACT_RELU) b[i] = b[i] < 0 ? 0.0f : b[i];
            r.negatives += a[i] < 0;
            r.zeros += a[i] == 0;
        }
        r.err = ct_rel_l2(a, b, (size_t)r.n);
        for (int64_t i = 0; i < r.n; i++)
            if (a[i] != a[i]) r.err = INFINITY;
        free(a);
        free(b);
    }
    if (r.status) snprintf(r.msg, sizeof r.msg, "%s", amp_context_last_error(ctx));
    if (ws) cudaFree(ws);
    for (int i = 0; i < 3; i++) {
        dev_free(&dv[i]);
        amp_tensor_destroy(in[i]);
    }
    dev_free(&dy);
    amp_tensor_destroy(ycpu);
    if (keep && !r.status)
        *keep = ygot;
    else
        amp_tensor_destroy(ygot);
    return r;
}

/* one case, relu after it, in every dtype, by the three paths of amp_cuda_conv_fwd_get: fused
 * (the emulator's cuDNN finalises conv -> bias -> relu), the relu refused (planted: the bias in
 * the plan, the relu by the kernel) and every fusion refused (planted: both by the kernel).
 * Against the CPU within tolerance, and bit for bit against relu of the same convolution on CUDA
 * without the activation wherever both run one sum rounded once. */
static double worst_path[3][3]; /* [path][dtype] */

static void check_relu_case(conv_case base, const char *label) {
    static const unsigned plants[3] = {0, AMP_CUDA_CONV_PLANT_NO_ACT_FUSION, AMP_CUDA_CONV_PLANT_NO_FUSION};
    static const char *const hows[3] = {"fused", "relu refused", "fusion refused"};
    for (int pl = 0; pl < 3; pl++)
        for (int d = 0; d < 3; d++) {
            conv_case c = base;
            c.dt = dtypes[d];
            const char *how = hows[pl];
            amp_tensor *y = NULL, *plain = NULL;
            fwd_result r = fwd_epilogue(&c, AMP_CUDA_CONV_ACT_RELU, plants[pl], 31 + (uint64_t)d, &y);
            fwd_result q = fwd_epilogue(&c, AMP_CUDA_CONV_ACT_NONE, 0, 31 + (uint64_t)d, &plain);
            bool same = false;
            if (!r.status && !q.status) {
                for (int64_t i = 0; i < plain->numel; i++)
                    if (amp_ld(c.dt, plain->data, i) < 0) amp_st(c.dt, plain->data, i, 0.0);
                same = !memcmp(y->data, plain->data, y->nbytes);
            }
            amp_tensor_destroy(y);
            amp_tensor_destroy(plain);
            CT_CHECK(r.status == AMP_OK && q.status == AMP_OK, "%s%s relu %s %s: %s (%s)", label,
                     c.bias ? "+bias" : "", how, amp_dtype_name(c.dt), amp_status_name(r.status ? r.status : q.status),
                     r.status ? r.msg : q.msg);
            note_error(c.dt, r.err);
            if (r.err > worst_path[pl][d]) worst_path[pl][d] = r.err;
            CT_CHECK(r.err <= tolerance(c.dt), "%s%s relu %s %s: rel L2 %g > %g", label, c.bias ? "+bias" : "", how,
                     amp_dtype_name(c.dt), r.err, tolerance(c.dt));
            CT_CHECK(r.negatives == 0, "%s relu %s %s: %lld negative values", label, how, amp_dtype_name(c.dt),
                     (long long)r.negatives);
            /* random weights and data: about half the sums are negative; relu must have clipped them */
            CT_CHECK(r.n < 20 || r.zeros * 5 >= r.n, "%s relu %s %s: only %lld zeros of %lld", label, how,
                     amp_dtype_name(c.dt), (long long)r.zeros, (long long)r.n);
            /* the path taken: cuDNN 9.19's heuristics give no engine for conv -> relu without a
             * bias, so the relu is the kernel's there whatever the plant */
            bool act_kernel = pl > 0 || !c.bias, bias_kernel = pl == 2 && c.bias;
            /* the same plan as the plain run's (the relu by the kernel, the bias not) gives the
             * same bits on any device; the emulator's fused graph too; a bias added by the kernel
             * to a rounded f16/bf16 sum does not */
            bool exact = !bias_kernel || c.dt == AMP_F32;
#if !defined(AMP_CUDA_EMULATED)
            act_kernel = pl > 0 || r.act_kernel; /* a device's engines decide where nothing is planted */
            bias_kernel = c.bias && (pl == 2 || r.bias_kernel);
            exact = r.act_kernel && !r.bias_kernel;
#endif
            CT_CHECK(r.act_kernel == act_kernel && r.bias_kernel == bias_kernel,
                     "%s%s relu %s %s: the kernel took the relu %d (%d expected), the bias %d (%d)", label,
                     c.bias ? "+bias" : "", how, amp_dtype_name(c.dt), r.act_kernel, act_kernel, r.bias_kernel,
                     bias_kernel);
            CT_CHECK(!exact || same, "%s%s relu %s %s: not relu(the convolution on CUDA) bit for bit", label,
                     c.bias ? "+bias" : "", how, amp_dtype_name(c.dt));
        }
}

static void t_relu(void) {
    const conv_case cases_[] = {
        {.nsp = 2, .N = 2, .C = 3, .M = 5, .in = {13, 13}, .k = {3, 3}},
        {.nsp = 2, .N = 1, .C = 3, .M = 7, .in = {7, 9}, .k = {1, 1}},
        {.nsp = 2, .N = 1, .C = 1, .M = 1, .in = {1, 1}, .k = {1, 1}},
        {.nsp = 2, .N = 2, .C = 4, .M = 6, .group = 2, .in = {9, 11}, .k = {3, 3}},
        {.nsp = 2, .N = 2, .C = 5, .M = 5, .group = 5, .in = {13, 7}, .k = {3, 3}, .pads = {1, 1, 1, 1}},
        {.nsp = 2, .N = 2, .C = 3, .M = 4, .in = {13, 12}, .k = {3, 5}, .stride = {2, 3}, .pads = {1, 0, 0, 2}},
        {.nsp = 2, .N = 1, .C = 4, .M = 4, .group = 2, .in = {13, 11}, .k = {3, 2}, .stride = {2, 2}, .dil = {2, 1},
         .pads = {2, 1, 0, 1}},
        {.nsp = 1, .N = 3, .C = 4, .M = 6, .in = {29}, .k = {5}, .stride = {2}, .pads = {2, 1}},
        {.nsp = 3, .N = 1, .C = 2, .M = 3, .in = {5, 6, 7}, .k = {3, 2, 3}, .stride = {1, 2, 1}, .dil = {1, 1, 2},
         .pads = {1, 0, 0, 0, 1, 1}},
        {.nsp = 2, .N = 8, .C = 1, .M = 6, .in = {28, 28}, .k = {5, 5}},  /* LeNet's conv1 */
        {.nsp = 2, .N = 8, .C = 6, .M = 16, .in = {12, 12}, .k = {5, 5}}, /* LeNet's conv2 */
    };
    static const char *const labels[] = {"3x3", "1x1", "one element", "group 2", "depthwise", "strides+pads",
                                         "everything", "1-D", "3-D", "LeNet conv1", "LeNet conv2"};
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++)
        for (int b = 0; b < 2; b++) {
            conv_case c = cases_[i];
            c.bias = b;
            check_relu_case(c, labels[i]);
        }
    static const char *const paths[3] = {"fused", "bias in the plan, relu by the kernel", "both by the kernel"};
    for (int p = 0; p < 3; p++)
        printf("  relu, %s: worst rel L2 f32 %.3g, f16 %.3g, bf16 %.3g\n", paths[p], worst_path[p][0], worst_path[p][1],
               worst_path[p][2]);
}

/* a bias without an activation through the planted fallback: the bias kernel after the plain plan */
static void t_bias_fallback(void) {
    conv_case base = {.nsp = 2, .N = 2, .C = 4, .M = 6, .group = 2, .in = {9, 11}, .k = {3, 3}, .bias = 1};
    for (int d = 0; d < 3; d++) {
        conv_case c = base;
        c.dt = dtypes[d];
        fwd_result r = fwd_epilogue(&c, AMP_CUDA_CONV_ACT_NONE, AMP_CUDA_CONV_PLANT_NO_FUSION, 51, NULL);
        CT_CHECK(r.status == AMP_OK && r.bias_kernel && !r.act_kernel, "bias fallback %s: %s, kernel %d %d (%s)",
                 amp_dtype_name(c.dt), amp_status_name(r.status), r.bias_kernel, r.act_kernel, r.msg);
        note_error(c.dt, r.err);
        CT_CHECK(r.err <= tolerance(c.dt), "bias fallback %s: rel L2 %g", amp_dtype_name(c.dt), r.err);
        CT_CHECK(r.negatives > 0, "bias fallback %s: no negative values without relu", amp_dtype_name(c.dt));
    }
}

/* relu plans: their own cache entries, named in messages; the planted refusal says what failed */
static void t_relu_plans(void) {
    for (int d = 0; d < 3; d++) {
        amp_cuda_conv_desc a = plan_desc_fwd(dtypes[d]), b = a, c = a;
        a.bias = 1;
        b.act = AMP_CUDA_CONV_ACT_RELU;
        c.act = AMP_CUDA_CONV_ACT_RELU;
        c.bias = 1;
        const amp_cuda_conv_plan *pa = NULL, *pb = NULL, *pc = NULL;
        CT_CHECK(amp_cuda_conv_plan_get(&cu, &a, &pa) == AMP_OK, "bias plan: %s", amp_context_last_error(ctx));
        CT_CHECK(amp_cuda_conv_plan_get(&cu, &c, &pc) == AMP_OK, "bias+relu plan %s: %s", amp_dtype_name(dtypes[d]),
                 amp_context_last_error(ctx));
        CT_CHECK(pa != pc, "the activation is not in the cache key");
        printf("  bias+relu %s: %d configurations, #%d used, workspace %zu bytes\n", amp_dtype_name(dtypes[d]),
               amp_cuda_conv_plan_configs(pc), amp_cuda_conv_plan_config_used(pc), amp_cuda_conv_plan_workspace(pc));
        /* conv -> relu with no bias: cuDNN 9.19's heuristics offer no engine (amp_cuda_conv_fwd_get
         * then takes the relu kernel); on a device, whatever its library says */
        amp_status sb = amp_cuda_conv_plan_get(&cu, &b, &pb);
#if defined(AMP_CUDA_EMULATED)
        CT_CHECK(sb == AMP_ERR_UNSUPPORTED && strstr(amp_context_last_error(ctx), "forward+relu"),
                 "conv -> relu alone: %s (%s)", amp_status_name(sb), sb ? amp_context_last_error(ctx) : "a plan");
#endif
        CT_CHECK(sb != AMP_OK || (pb != pa && pb != pc), "the activation is not in the cache key");
        c.plant = AMP_CUDA_CONV_PLANT_NO_FUSION;
        amp_status s = amp_cuda_conv_plan_get(&cu, &c, &pc);
        CT_CHECK(s == AMP_ERR_UNSUPPORTED, "a planted refusal of the fusion gave %s", amp_status_name(s));
        CT_CHECK(strstr(amp_context_last_error(ctx), "+bias+relu") && strstr(amp_context_last_error(ctx), "finalised"),
                 "message: %s", amp_context_last_error(ctx));
    }
    /* a backward plan with an activation is not a thing */
    amp_cuda_conv_desc e = plan_desc_fwd(AMP_F32);
    e.kind = AMP_CUDA_CONV_BWD_DATA;
    e.act = AMP_CUDA_CONV_ACT_RELU;
    const amp_cuda_conv_plan *pe = NULL;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &e, &pe) == AMP_ERR_UNSUPPORTED, "a backward plan took an activation");
}

/* PLANTED: a scaled relu (alpha1 2) is a valid cuDNN graph the emulator does not compute: it is
 * refused with the scale named, never run as a plain relu */
static void t_planted_relu_scaled(void) {
#if !defined(AMP_CUDA_EMULATED)
    CT_SKIP("the emulator's refusal (a device computes the scaled relu)");
#endif
    conv_case c = {.dt = AMP_F16, .nsp = 2, .N = 2, .C = 3, .M = 5, .in = {13, 13}, .k = {3, 3}, .bias = 1};
    /* cuDNN finalises the scaled graph (so the fallback is not taken) ... */
    amp_cuda_conv_desc d = case_desc(&c, AMP_CUDA_CONV_ACT_RELU, AMP_CUDA_CONV_PLANT_RELU_SCALED);
    const amp_cuda_conv_plan *p = NULL;
    amp_status s = amp_cuda_conv_plan_get(&cu, &d, &p);
    CT_CHECK(s == AMP_OK, "the scaled relu plan: %s", amp_context_last_error(ctx));
    /* ... and the emulator will not run it */
    fwd_result r = fwd_epilogue(&c, AMP_CUDA_CONV_ACT_RELU, AMP_CUDA_CONV_PLANT_RELU_SCALED, 3, NULL);
    CT_CHECK(r.status == AMP_ERR_UNSUPPORTED, "a scaled relu ran on the emulator (%s)", amp_status_name(r.status));
    CT_CHECK(strstr(r.msg, "scaled relu") && strstr(r.msg, "alpha1 2"), "message: %s", r.msg);
}

/* ---- plans --------------------------------------------------------------------------------- */

static amp_cuda_conv_desc plan_desc(amp_cuda_conv_kind kind, amp_dtype dt) {
    amp_cuda_conv_desc d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    d.dtype = dt;
    d.nsp = 2;
    int64_t x[4] = {2, 3, 13, 11}, w[4] = {5, 3, 3, 3}, y[4] = {2, 5, 11, 9};
    memcpy(d.x, x, sizeof x);
    memcpy(d.w, w, sizeof w);
    memcpy(d.y, y, sizeof y);
    for (int i = 0; i < 2; i++)
        d.stride[i] = d.dilation[i] = 1;
    return d;
}

/* heuristics give several configurations for every kind and dtype; one plan per shape */
static void t_plans(void) {
    int before = amp_cuda_conv_cache_count(&cu);
    for (int k = 0; k < 3; k++)
        for (int d = 0; d < 3; d++) {
            amp_cuda_conv_desc desc = plan_desc((amp_cuda_conv_kind)k, dtypes[d]);
            const amp_cuda_conv_plan *p = NULL, *q = NULL;
            amp_status s = amp_cuda_conv_plan_get(&cu, &desc, &p);
            CT_CHECK(s == AMP_OK, "plan %d %s: %s", k, amp_dtype_name(dtypes[d]), amp_context_last_error(ctx));
            CT_CHECK(amp_cuda_conv_plan_configs(p) > 1, "plan %d %s: %d configurations", k, amp_dtype_name(dtypes[d]),
                     amp_cuda_conv_plan_configs(p));
            printf("  plan %s %s: %d configurations, #%d used, workspace %zu bytes\n",
                   k == 0 ? "fwd" : k == 1 ? "bwd-data" : "bwd-filter", amp_dtype_name(dtypes[d]),
                   amp_cuda_conv_plan_configs(p), amp_cuda_conv_plan_config_used(p), amp_cuda_conv_plan_workspace(p));
            s = amp_cuda_conv_plan_get(&cu, &desc, &q);
            CT_CHECK(s == AMP_OK && q == p, "the same shape twice gives another plan");
        }
    CT_CHECK(amp_cuda_conv_cache_count(&cu) - before <= 9, "cache grew by %d", amp_cuda_conv_cache_count(&cu) - before);
    /* the forward convolution with its bias in the graph */
    for (int d = 0; d < 3; d++) {
        amp_cuda_conv_desc desc = plan_desc(AMP_CUDA_CONV_FWD, dtypes[d]);
        desc.bias = 1;
        const amp_cuda_conv_plan *p = NULL;
        amp_status s = amp_cuda_conv_plan_get(&cu, &desc, &p);
        CT_CHECK(s == AMP_OK, "fused plan %s: %s", amp_dtype_name(dtypes[d]), amp_context_last_error(ctx));
        CT_CHECK(amp_cuda_conv_plan_configs(p) > 1, "fused plan %s: %d configurations", amp_dtype_name(dtypes[d]),
                 amp_cuda_conv_plan_configs(p));
        printf("  plan fwd+bias %s: %d configurations, #%d used, workspace %zu bytes\n", amp_dtype_name(dtypes[d]),
               amp_cuda_conv_plan_configs(p), amp_cuda_conv_plan_config_used(p), amp_cuda_conv_plan_workspace(p));
    }
    /* the op prepares through the cache too: preparing a node twice builds no plan */
    conv_case c = {.nsp = 2, .N = 1, .C = 3, .M = 2, .in = {10, 10}, .k = {3, 3}, .dt = AMP_BF16};
    run_result r1 = conv_backward(&c, all3, 1);
    CHECK_RUN(r1, &c, "first prepare");
    int mid = amp_cuda_conv_cache_count(&cu);
    run_result r2 = conv_backward(&c, all3, 2);
    CHECK_RUN(r2, &c, "second prepare");
    CT_CHECK(amp_cuda_conv_cache_count(&cu) == mid, "the second prepare built %d plans", amp_cuda_conv_cache_count(&cu) - mid);
}

/* engines by their numerical notes: no TF32 for f32 unless allowed (then a plan of its own),
 * deterministic engines for every kind and dtype */
static void t_engines(void) {
    const unsigned tc = 1u << CUDNN_NUMERICAL_NOTE_TENSOR_CORE, down = 1u << CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS,
                   nondet = 1u << CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC;
    for (int k = 0; k < 3; k++)
        for (int d = 0; d < 3; d++) {
            amp_cuda_conv_desc desc = plan_desc((amp_cuda_conv_kind)k, dtypes[d]);
            const amp_cuda_conv_plan *p = NULL;
            CT_CHECK(amp_cuda_conv_plan_get(&cu, &desc, &p) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
            unsigned notes = amp_cuda_conv_plan_notes(p);
            CT_CHECK(!(notes & nondet), "kind %d %s: a nondeterministic engine", k, amp_dtype_name(dtypes[d]));
            if (dtypes[d] == AMP_F32)
                CT_CHECK(!(notes & (tc | down)), "kind %d f32: a TF32 engine (notes 0x%x) without allow_tf32", k, notes);
        }
    amp_cuda_conv_desc desc = plan_desc(AMP_CUDA_CONV_FWD, AMP_F32);
    const amp_cuda_conv_plan *strict = NULL, *tf32 = NULL;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &desc, &strict) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
    cu.allow_tf32 = true;
    amp_status s = amp_cuda_conv_plan_get(&cu, &desc, &tf32);
    cu.allow_tf32 = false;
    CT_CHECK(s == AMP_OK, "TF32 plan: %s", amp_context_last_error(ctx));
    CT_CHECK(tf32 != strict, "allow_tf32 shares the strict FP32 plan");
    printf("  f32 forward: engine #%d (notes 0x%x) in FP32, #%d (notes 0x%x) with TF32 allowed\n",
           amp_cuda_conv_plan_config_used(strict), amp_cuda_conv_plan_notes(strict),
           amp_cuda_conv_plan_config_used(tf32), amp_cuda_conv_plan_notes(tf32));
}

/* the fallback kernel against the same formula on the host: f32 sum, relu, one rounding (exact);
 * with bias, with bias and relu, relu alone */
static void t_bias_kernel(void) {
    for (int form = 0; form < 3; form++) {
        for (int d = 0; d < 3; d++) {
            amp_dtype dt = dtypes[d];
            bool relu = form > 0, bias = form < 2;
            int64_t yd[3] = {2, 5, 13}, bd[1] = {5};
            amp_tensor *y = host_rand(dt, 3, yd, 70), *b = host_rand(dt, 1, bd, 71), *got = NULL;
            CT_CHECK(y && b && amp_tensor_create(ctx, dt, 3, yd, &got) == AMP_OK, "tensors");
            dev_tensor dy, db;
            int ok = dev_make(&dy, y, 1) && dev_make(&db, b, 1);
            cudaError_t e = ok ? amp_cuda_conv_bias_add(cu.stream, dt, dy.mem, bias ? db.mem : NULL, 2, 5, 13, relu)
                               : cudaErrorMemoryAllocation;
            if (!e) e = cudaMemcpy(got->data, dy.mem, got->nbytes, cudaMemcpyDeviceToHost);
            int64_t bad = 0, zeros = 0;
            for (int64_t i = 0; !e && i < y->numel; i++) {
                float v = (float)amp_ld(dt, y->data, i) + (bias ? (float)amp_ld(dt, b->data, (i / 13) % 5) : 0.0f);
                if (relu) v = v < 0 ? 0.0f : v;
                zeros += amp_ld(dt, got->data, i) == 0;
                double w = dt == AMP_F16 ? amp_f16_to_f32(amp_f32_to_f16(v)) : dt == AMP_BF16 ? amp_bf16_to_f32(amp_f32_to_bf16(v)) : v;
                if (amp_ld(dt, got->data, i) != w) bad++;
            }
            dev_free(&dy);
            dev_free(&db);
            amp_tensor_destroy(y);
            amp_tensor_destroy(b);
            amp_tensor_destroy(got);
            const char *what = form == 0 ? "bias" : form == 1 ? "bias+relu" : "relu";
            CT_CHECK(e == cudaSuccess, "%s kernel %s: %s", what, amp_dtype_name(dt), cudaGetErrorString(e));
            CT_CHECK(bad == 0, "%s kernel %s: %lld of 130 values differ", what, amp_dtype_name(dt), (long long)bad);
            CT_CHECK(relu ? zeros > 20 : zeros == 0, "%s kernel %s: %lld zeros", what, amp_dtype_name(dt), (long long)zeros);
        }
    }
}

/* runs plan p over fresh device buffers of desc d; fills *err with the rel L2 error against the
 * CPU's Conv of the same data (forward only) */
static amp_status run_plan_forward(const amp_cuda_conv_desc *d, const amp_cuda_conv_plan *p, double *err) {
    conv_case c = {.dt = d->dtype, .nsp = 2, .N = d->x[0], .C = d->x[1], .M = d->w[0], .in = {d->x[2], d->x[3]},
                   .k = {d->w[2], d->w[3]}};
    int64_t xd[4], wd[4];
    conv_dims(&c, xd, wd);
    amp_tensor *x = host_rand(d->dtype, 4, xd, 9), *w = host_rand(d->dtype, 4, wd, 10), *ycpu = NULL, *ygot = NULL;
    amp_tensor_create(ctx, d->dtype, 4, d->y, &ycpu);
    amp_tensor_create(ctx, d->dtype, 4, d->y, &ygot);
    tnode t;
    tn_init(&t, "Conv", "", 2, 1);
    conv_attrs(&t, &c);
    amp_tensor *in[2] = {x, w}, *out[1] = {ycpu};
    amp_kernel k = {.ctx = ctx, .n = &t.node, .opset = 17, .nin = 2, .nout = 1, .in = in, .out = out, .threads = 1};
    amp_status s = amp_backend_run_once(cpu, &k);
    dev_tensor dx, dw, dy;
    void *ws = NULL;
    size_t ws_bytes = amp_cuda_conv_plan_workspace(p);
    dev_make(&dx, x, 1);
    dev_make(&dw, w, 1);
    dev_make(&dy, ycpu, 0);
    if (ws_bytes) cudaMalloc(&ws, ws_bytes);
    if (!s) s = amp_cuda_conv_run(&cu, p, NULL, dx.mem, dw.mem, dy.mem, NULL, ws, ws_bytes);
    if (!s) {
        cudaMemcpy(ygot->data, dy.mem, ygot->nbytes, cudaMemcpyDeviceToHost);
        float *a = as_floats(ygot), *b = as_floats(ycpu);
        *err = ct_rel_l2(a, b, (size_t)ygot->numel);
        free(a);
        free(b);
    }
    if (ws) cudaFree(ws);
    dev_free(&dx);
    dev_free(&dw);
    dev_free(&dy);
    amp_tensor_destroy(x);
    amp_tensor_destroy(w);
    amp_tensor_destroy(ycpu);
    amp_tensor_destroy(ygot);
    return s;
}

/* PLANTED: X's descriptor claims NCWH strides over NCHW data; the comparison must fail */
static void t_planted_strides(void) {
    amp_cuda_conv_desc d = plan_desc(AMP_CUDA_CONV_FWD, AMP_F32);
    const amp_cuda_conv_plan *good = NULL, *bad = NULL;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &d, &good) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
    d.plant = AMP_CUDA_CONV_PLANT_X_STRIDES;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &d, &bad) == AMP_OK, "planted plan: %s", amp_context_last_error(ctx));
    CT_CHECK(good != bad, "the planted descriptor shares the good plan");
    double e_good = -1, e_bad = -1;
    amp_status s = run_plan_forward(&d, good, &e_good);
    CT_CHECK(s == AMP_OK && e_good <= 1e-5, "good plan: %s, rel L2 %g", amp_status_name(s), e_good);
    s = run_plan_forward(&d, bad, &e_bad);
    CT_CHECK(s == AMP_OK, "planted plan runs: %s", amp_context_last_error(ctx));
    CT_CHECK(e_bad > 0.3, "wrong strides went unnoticed: rel L2 %g", e_bad);
}

/* runs plan p of d over device buffers of random values, with a workspace of ws_alloc bytes
 * (claimed to be the plan's size) and, when host_x, host memory in place of X */
static amp_status run_plan_raw(const amp_cuda_conv_desc *d, const amp_cuda_conv_plan *p, size_t ws_alloc,
                               int host_x) {
    const int64_t *dims[3] = {d->x, d->w, d->y};
    amp_tensor *h[3] = {NULL};
    dev_tensor dv[3];
    memset(dv, 0, sizeof dv);
    void *ws = NULL, *hx = NULL;
    amp_status s = AMP_OK;
    for (int i = 0; i < 3 && !s; i++) {
        h[i] = host_rand(d->dtype, d->nsp + 2, dims[i], 40 + (uint64_t)i);
        if (!h[i] || !dev_make(&dv[i], h[i], 1)) s = AMP_ERR_NO_MEMORY;
    }
    if (!s && ws_alloc && cudaMalloc(&ws, ws_alloc) != cudaSuccess) s = AMP_ERR_NO_MEMORY;
    if (!s && host_x) {
        hx = aligned_alloc(64, (h[0]->nbytes + 63) / 64 * 64);
        memcpy(hx, h[0]->data, h[0]->nbytes);
    }
    if (!s)
        s = amp_cuda_conv_run(&cu, p, NULL, host_x ? hx : dv[0].mem, dv[1].mem, dv[2].mem, NULL, ws,
                              amp_cuda_conv_plan_workspace(p));
    free(hx);
    if (ws) cudaFree(ws);
    for (int i = 0; i < 3; i++) {
        dev_free(&dv[i]);
        amp_tensor_destroy(h[i]);
    }
    return s;
}

/* a configuration that does not finalise gives way to the next one, which computes the same */
static void t_fallback(void) {
    amp_cuda_conv_desc d = plan_desc(AMP_CUDA_CONV_FWD, AMP_F32);
    const amp_cuda_conv_plan *first = NULL, *next = NULL;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &d, &first) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
    d.plant = AMP_CUDA_CONV_PLANT_FAIL_FIRST;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &d, &next) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
    CT_CHECK(amp_cuda_conv_plan_config_used(next) > amp_cuda_conv_plan_config_used(first),
             "configuration #%d after #%d failed", amp_cuda_conv_plan_config_used(next),
             amp_cuda_conv_plan_config_used(first));
    double err = -1;
    amp_status s = run_plan_forward(&d, next, &err);
    CT_CHECK(s == AMP_OK && err <= tolerance(AMP_F32), "the next configuration: %s, rel L2 %g", amp_status_name(s), err);
}

/* a step's variant pack is built once and rebuilt when a pointer moves; results are the same */
static void t_variant_pack(void) {
    amp_cuda_conv_desc d = plan_desc(AMP_CUDA_CONV_FWD, AMP_F16);
    const amp_cuda_conv_plan *p = NULL;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &d, &p) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
    amp_tensor *x = host_rand(AMP_F16, 4, d.x, 80), *w = host_rand(AMP_F16, 4, d.w, 81), *y = NULL, *a = NULL, *b = NULL;
    amp_tensor_create(ctx, AMP_F16, 4, d.y, &y);
    amp_tensor_create(ctx, AMP_F16, 4, d.y, &a);
    amp_tensor_create(ctx, AMP_F16, 4, d.y, &b);
    dev_tensor dx, dw, dy1, dy2;
    int ok = x && w && y && a && b && dev_make(&dx, x, 1) && dev_make(&dw, w, 1) && dev_make(&dy1, y, 0) &&
             dev_make(&dy2, y, 0);
    void *ws = NULL;
    size_t wsb = amp_cuda_conv_plan_workspace(p);
    if (ok && wsb) ok = cudaMalloc(&ws, wsb) == cudaSuccess;
    amp_cuda_conv_pack pk;
    memset(&pk, 0, sizeof pk);
    amp_status s = ok ? AMP_OK : AMP_ERR_NO_MEMORY;
    for (int i = 0; i < 2 && !s; i++)
        s = amp_cuda_conv_run(&cu, p, &pk, dx.mem, dw.mem, dy1.mem, NULL, ws, wsb);
    int after_two = pk.builds;
    if (!s) s = amp_cuda_conv_run(&cu, p, &pk, dx.mem, dw.mem, dy2.mem, NULL, ws, wsb);
    if (!s) cudaMemcpy(a->data, dy1.mem, a->nbytes, cudaMemcpyDeviceToHost);
    if (!s) cudaMemcpy(b->data, dy2.mem, b->nbytes, cudaMemcpyDeviceToHost);
    int same = !s && !memcmp(a->data, b->data, a->nbytes);
    amp_cuda_conv_pack_free(&pk);
    if (ws) cudaFree(ws);
    dev_free(&dx);
    dev_free(&dw);
    dev_free(&dy1);
    dev_free(&dy2);
    amp_tensor_destroy(x);
    amp_tensor_destroy(w);
    amp_tensor_destroy(y);
    amp_tensor_destroy(a);
    amp_tensor_destroy(b);
    CT_CHECK(s == AMP_OK, "runs: %s", amp_context_last_error(ctx));
    CT_CHECK(after_two == 1, "two runs with the same pointers built %d variant packs", after_two);
    CT_CHECK(pk.builds == 2, "a moved output built %d variant packs in all (2 expected)", pk.builds);
    CT_CHECK(same, "the rebuilt variant pack computes something else");
}

/* PLANTED: a workspace smaller than the plan's is refused by the interposer; a host pointer too */
static void t_planted_memory(void) {
#if !defined(AMP_CUDA_EMULATED)
    CT_SKIP("the interposer's checks (a real device faults instead)");
#endif
    /* a plan that needs workspace: look through the kinds and dtypes for one */
    const amp_cuda_conv_plan *p = NULL;
    amp_cuda_conv_desc d;
    for (int k = 0; k < 3 && !p; k++)
        for (int t = 0; t < 3 && !p; t++) {
            d = plan_desc((amp_cuda_conv_kind)k, dtypes[t]);
            const amp_cuda_conv_plan *q = NULL;
            if (amp_cuda_conv_plan_get(&cu, &d, &q) == AMP_OK && amp_cuda_conv_plan_workspace(q) > 0) p = q;
        }
    CT_CHECK(p != NULL, "no plan of the test shape needs a workspace");
    size_t need = amp_cuda_conv_plan_workspace(p);
    amp_status s = run_plan_raw(&d, p, need, 0);
    CT_CHECK(s == AMP_OK, "exact workspace: %s", amp_context_last_error(ctx));
    s = run_plan_raw(&d, p, need - 1, 0);
    CT_CHECK(s != AMP_OK, "a workspace one byte short of %zu ran", need);
    CT_CHECK(strstr(amp_context_last_error(ctx), "workspace") != NULL, "message: %s", amp_context_last_error(ctx));
    s = run_plan_raw(&d, p, need, 1);
    CT_CHECK(s != AMP_OK, "a host pointer for X ran");
    CT_CHECK(strstr(amp_context_last_error(ctx), "not device memory") != NULL, "message: %s",
             amp_context_last_error(ctx));
}

/* PLANTED: a convolution mode the emulator does not compute is refused, never guessed at */
static void t_planted_mode(void) {
#if !defined(AMP_CUDA_EMULATED)
    CT_SKIP("the emulator's refusal (a device computes the flipped convolution)");
#endif
    amp_cuda_conv_desc d = plan_desc(AMP_CUDA_CONV_FWD, AMP_F16);
    d.plant = AMP_CUDA_CONV_PLANT_CONV_MODE;
    const amp_cuda_conv_plan *p = NULL;
    CT_CHECK(amp_cuda_conv_plan_get(&cu, &d, &p) == AMP_OK, "plan: %s", amp_context_last_error(ctx));
    amp_status s = run_plan_raw(&d, p, amp_cuda_conv_plan_workspace(p), 0);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "CUDNN_CONVOLUTION ran on the emulator (%s)", amp_status_name(s));
    CT_CHECK(strstr(amp_context_last_error(ctx), "CUDNN_CONVOLUTION") != NULL, "message: %s",
             amp_context_last_error(ctx));
}

/* the device properties the plans were built for; AMP_DEVPROP_JSON_OUT names a file to save them
 * in (the GPU check keeps the real card's) */
static void t_devprop(void) {
    char *json = NULL;
    amp_status s = amp_cuda_devprop_json(&cu, &json);
    CT_CHECK(s == AMP_OK, "devprop JSON: %s", amp_context_last_error(ctx));
    const char *out = getenv("AMP_DEVPROP_JSON_OUT");
    if (out && out[0]) {
        FILE *f = fopen(out, "w");
        int wrote = f && fputs(json, f) >= 0;
        if (f && fclose(f)) wrote = 0;
        if (!wrote) amp_dealloc(ctx, json);
        CT_CHECK(wrote, "cannot write %s", out);
    }
#if !defined(AMP_CUDA_EMULATED)
    amp_dealloc(ctx, json);
    CT_CHECK(1, "a device's own properties");
    return;
#endif
    int ok = strstr(json, "NVIDIA H100") && strstr(json, "deviceVer");
    if (!ok) fprintf(stderr, "  %s\n", json);
    amp_dealloc(ctx, json);
    CT_CHECK(ok, "the device properties are not the H100's");
}

static const ct_case cases[] = {
    {"devprop", t_devprop},
    {"plans", t_plans},
    {"engines", t_engines},
    {"basic", t_basic},
    {"odd_shapes", t_odd},
    {"groups", t_groups},
    {"geometry", t_geometry},
    {"auto_pad", t_auto_pad},
    {"conv1d", t_conv1d},
    {"conv3d", t_conv3d},
    {"transpose", t_transpose},
    {"lenet", t_lenet},
    {"partial_and_empty", t_partial_and_empty},
    {"refuses", t_refuses},
    {"fallback", t_fallback},
    {"variant_pack", t_variant_pack},
    {"planted_strides", t_planted_strides},
    {"planted_memory", t_planted_memory},
    {"planted_mode", t_planted_mode},
    {"bias_kernel", t_bias_kernel},
    {"relu", t_relu},
    {"bias_fallback", t_bias_fallback},
    {"relu_plans", t_relu_plans},
    {"planted_relu_scaled", t_planted_relu_scaled},
    {NULL, NULL},
};

int main(int argc, char **argv) {
    if (!ct_have_device()) return ct_main(argc, argv, cases);
    if (amp_context_create(NULL, &ctx) || amp_backend_cpu_create(ctx, 1, &cpu)) return 1;
    cu.ctx = ctx;
    int rc = 1;
    if (AMP_CUDA_RT(ctx, cudaStreamCreate(&cu.stream)) || AMP_CUDA_DNN(ctx, cudnnCreate(&cu.dnn)) ||
        AMP_CUDA_DNN(ctx, cudnnSetStream(cu.dnn, cu.stream)) || amp_cuda_devprop_create(&cu)) {
        fprintf(stderr, "CUDA setup: %s\n", amp_context_last_error(ctx));
        goto done;
    }
    rc = ct_main(argc, argv, cases);
    printf("largest rel L2 error against the CPU: f32 %.3g, f16 %.3g, bf16 %.3g\n", worst[0], worst[1], worst[2]);
#if defined(AMP_CUDA_EMULATED)
    if (amp_emu_device_regions() != 0) {
        fprintf(stderr, "%zu device regions leaked\n", amp_emu_device_regions());
        rc = 1;
    }
#endif
done:
    amp_cuda_conv_cache_free(&cu);
    amp_cuda_devprop_destroy(&cu);
    if (cu.dnn) cudnnDestroy(cu.dnn);
    if (cu.stream) cudaStreamDestroy(cu.stream);
    amp_backend_destroy(cpu);
    amp_context_destroy(ctx);
    return rc;
}
