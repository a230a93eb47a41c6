/* Convolution plans through cuDNN's graph API, cached by shape (conv.h). */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/conv.h"
#include "backends/cuda/conv_bias.h"

/* UID_CONV: the virtual sum the convolution writes when a bias or an activation follows;
 * UID_BIASED: the virtual sum plus bias when an activation follows */
enum { UID_X = 1, UID_W = 2, UID_Y = 3, UID_CONV = 4, UID_B = 5, UID_BIASED = 6 };
enum { T_X, T_W, T_Y, T_CONV, T_B, T_BIASED, T_COUNT };

struct amp_cuda_conv_plan {
    amp_cuda_conv_desc d;
    /* the descriptors the plan was built from live as long as the plan */
    /* t: T_*; pw, pw_op: the bias ADD; act, act_op: the activation */
    cudnnBackendDescriptor_t t[T_COUNT], conv, op, pw, pw_op, act, act_op, graph, cfg, plan;
    size_t ws;
    int configs, used;
    unsigned notes; /* 1 << cudnnBackendNumericalNote_t of the engine in use */
    struct amp_cuda_conv_plan *next;
};

static const char *const kind_names[] = {"forward", "backward-data", "backward-filter"};
static const char *const act_names[] = {"", "+relu"};

static cudnnDataType_t dnn_dtype(amp_dtype t) {
    switch (t) {
    case AMP_F16: return CUDNN_DATA_HALF;
    case AMP_BF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
    }
}

/* "conv forward f16 X[1,3,7,7] W[5,3,3,3] Y[1,5,5,5]": names the plan in messages */
static void describe(const amp_cuda_conv_desc *d, char *buf, size_t cap) {
    int n = d->nsp + 2, len;
    len = snprintf(buf, cap, "conv %s%s%s %s", kind_names[d->kind], d->bias ? "+bias" : "",
                   (unsigned)d->act < 2 ? act_names[d->act] : "+?", amp_dtype_name(d->dtype));
    const int64_t *dims[3] = {d->x, d->w, d->y};
    const char *names = "XWY";
    for (int t = 0; t < 3 && len > 0 && (size_t)len < cap; t++) {
        len += snprintf(buf + len, cap - (size_t)len, " %c[", names[t]);
        for (int i = 0; i < n && (size_t)len < cap; i++)
            len += snprintf(buf + len, cap - (size_t)len, "%s%lld", i ? "," : "", (long long)dims[t][i]);
        if ((size_t)len < cap) len += snprintf(buf + len, cap - (size_t)len, "]");
    }
}

/* A tensor descriptor of rank n over dims, packed NCHW unless planted; virtual: an intermediate
 * of the graph that never reaches memory. */
static amp_status tensor_desc(amp_cuda *cu, int64_t uid, cudnnDataType_t dt, int n, const int64_t *dims, bool plant,
                              bool virt, cudnnBackendDescriptor_t *out) {
    int64_t strides[5], align = 16;
    strides[n - 1] = 1;
    for (int i = n - 2; i >= 0; i--)
        strides[i] = strides[i + 1] * dims[i + 1];
    if (plant) { /* the last two spatial dims swapped: a wrong layout that is still a valid descriptor */
        strides[n - 1] = dims[n - 2];
        strides[n - 2] = 1;
    }
    cudnnBackendDescriptor_t t = NULL;
    amp_status s = AMP_CUDA_DNN(cu->ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t));
    if (!s) s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    if (!s) s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, n, dims));
    if (!s) s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, n, strides));
    if (!s) s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    if (!s)
        s = AMP_CUDA_DNN(cu->ctx,
                         cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
    if (!s && virt)
        s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt));
    if (!s) s = AMP_CUDA_DNN(cu->ctx, cudnnBackendFinalize(t));
    if (s) {
        if (t) cudnnBackendDestroyDescriptor(t);
        return s;
    }
    *out = t;
    return AMP_OK;
}

/* The convolution descriptor: 1-D as 2-D (H = 1). */
static amp_status conv_desc(amp_cuda *cu, const amp_cuda_conv_desc *d, int nsp, cudnnBackendDescriptor_t *out) {
    int64_t st[3], dil[3], pre[3], post[3], n = nsp;
    int off = nsp - d->nsp; /* 1 for 1-D */
    for (int i = 0; i < nsp; i++) {
        int j = i - off;
        st[i] = j < 0 ? 1 : d->stride[j];
        dil[i] = j < 0 ? 1 : d->dilation[j];
        pre[i] = j < 0 ? 0 : d->pre[j];
        post[i] = j < 0 ? 0 : d->post[j];
    }
    cudnnDataType_t ct = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = d->plant & AMP_CUDA_CONV_PLANT_CONV_MODE ? CUDNN_CONVOLUTION : CUDNN_CROSS_CORRELATION;
    cudnnBackendDescriptor_t c = NULL;
    amp_context *ctx = cu->ctx;
    amp_status s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &c));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &n));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &ct));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1,
                                                       &mode));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, n, dil));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, n, st));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, n, pre));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(c, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, n, post));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(c));
    if (s) {
        if (c) cudnnBackendDestroyDescriptor(c);
        return s;
    }
    *out = c;
    return AMP_OK;
}

/* One pointwise operation of the graph in FP32 math: y = x + b (ADD, B broadcast over images and
 * positions) or y = relu(x) (RELU_FWD, no b: lower clip 0, cuDNN's default); *pw and *op get
 * the descriptors (the plan frees them). */
static amp_status pointwise_op(amp_cuda *cu, cudnnPointwiseMode_t mode, bool scaled, cudnnBackendDescriptor_t *x,
                               cudnnBackendDescriptor_t *b, cudnnBackendDescriptor_t *y, cudnnBackendDescriptor_t *pw,
                               cudnnBackendDescriptor_t *op) {
    amp_context *ctx = cu->ctx;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    float two = 2.0f;
    amp_status s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, pw));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(*pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(*pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(*pw));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op));
    struct {
        cudnnBackendAttributeName_t name;
        cudnnBackendDescriptor_t *d;
    } attrs[] = {{CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw},
                 {CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x},
                 {CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b},
                 {CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y}};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0] && !s; i++)
        if (attrs[i].d)
            s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(*op, attrs[i].name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, attrs[i].d));
    if (!s && scaled) /* planted (AMP_CUDA_CONV_PLANT_RELU_SCALED) */
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &two));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(*op));
    return s;
}

/* The operation: alpha 1, beta 0; its attributes come in the same order for the three kinds
 * (alpha, beta, conv, then W / W / dW, X / dX / X, Y / dY / dY). */
static amp_status op_desc(amp_cuda *cu, amp_cuda_conv_plan *p) {
    static const cudnnBackendDescriptorType_t types[] = {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                                                         CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                                                         CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
    static const cudnnBackendAttributeName_t base[] = {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
                                                       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
                                                       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA};
    amp_context *ctx = cu->ctx;
    float alpha = 1.0f, beta = 0.0f;
    cudnnBackendAttributeName_t b = base[p->d.kind];
    amp_status s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(types[p->d.kind], &p->op));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(p->op, b, CUDNN_TYPE_FLOAT, 1, &alpha));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(p->op, (cudnnBackendAttributeName_t)(b + 1), CUDNN_TYPE_FLOAT, 1,
                                                       &beta));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(p->op, (cudnnBackendAttributeName_t)(b + 2),
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->conv));
    bool bias = p->d.bias != 0, act = p->d.act != AMP_CUDA_CONV_ACT_NONE;
    for (int i = 0; i < 3 && !s; i++) {
        int t = i == 0 ? T_W : i == 1 ? T_X : bias || act ? T_CONV : T_Y; /* Y: the virtual sum when an op follows */
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(p->op, (cudnnBackendAttributeName_t)(b + 3 + i),
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->t[t]));
    }
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(p->op));
    /* conv -> [ADD B] -> [RELU_FWD]: every intermediate virtual FP32, the last op writes Y */
    if (!s && bias)
        s = pointwise_op(cu, CUDNN_POINTWISE_ADD, false, &p->t[T_CONV], &p->t[T_B], &p->t[act ? T_BIASED : T_Y], &p->pw,
                         &p->pw_op);
    if (!s && act)
        s = pointwise_op(cu, CUDNN_POINTWISE_RELU_FWD, (p->d.plant & AMP_CUDA_CONV_PLANT_RELU_SCALED) != 0,
                         &p->t[bias ? T_BIASED : T_CONV], NULL, &p->t[T_Y], &p->act, &p->act_op);
    cudnnBackendDescriptor_t ops[3] = {p->op};
    int nops = 1;
    if (bias) ops[nops++] = p->pw_op;
    if (act) ops[nops++] = p->act_op;
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &p->graph));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(p->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(p->graph));
    return s;
}

/* Whether an engine's numerical notes allow it in this pass: f32 without TF32 takes no tensor-core
 * or down-converting engine; the first pass takes deterministic engines only. Notes that cannot
 * be read count as disallowing (the engine is skipped, never guessed at). *mask gets the notes. */
static bool engine_allowed(cudnnBackendDescriptor_t cfg, const amp_cuda_conv_desc *d, bool deterministic_only,
                           unsigned *mask) {
    cudnnBackendDescriptor_t eng = NULL;
    bool ok = false;
    int64_t n = 0;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT + 4];
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng)) return false;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ||
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 (int64_t)(sizeof notes / sizeof notes[0]), &n, notes))
        goto done;
    ok = true;
    *mask = 0;
    for (int64_t i = 0; i < n; i++) {
        if ((unsigned)notes[i] < 32) *mask |= 1u << notes[i];
        if (d->dtype == AMP_F32 && !d->tf32 &&
            (notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE || notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS))
            ok = false;
        if (deterministic_only && notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) ok = false;
    }
done:
    cudnnBackendDestroyDescriptor(eng);
    return ok;
}

/* Heuristics (mode A) and the first configuration whose plan finalises. */
static amp_status choose_plan(amp_cuda *cu, amp_cuda_conv_plan *p, const char *what) {
    amp_context *ctx = cu->ctx;
    cudnnBackendDescriptor_t heur = NULL, *cfgs = NULL;
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    int64_t count = 0, got = 0;
    amp_status s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->graph));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    if (!s && cu->devprop)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP,
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cu->devprop));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(heur));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL));
    if (s) goto done;
    if (count <= 0) {
        s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "%s: cuDNN's heuristics found no engine", what);
        goto done;
    }
    cfgs = amp_calloc(ctx, (size_t)count, sizeof *cfgs);
    if (!cfgs) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "%s: %lld engine configurations", what, (long long)count);
        goto done;
    }
    for (int64_t i = 0; i < count && !s; i++)
        s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs));
    if (s) goto done;
    if (got > count) got = count;
    p->configs = (int)got;
    if (got <= 0) { /* counted, then none given: conv -> relu without a bias in cuDNN 9.19, for one */
        s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "%s: cuDNN's heuristics found no engine", what);
        goto done;
    }
    bool fail_one = (p->d.plant & AMP_CUDA_CONV_PLANT_FAIL_FIRST) != 0;
    bool fail_all = ((p->d.plant & AMP_CUDA_CONV_PLANT_NO_FUSION) && (p->d.bias || p->d.act)) ||
                    ((p->d.plant & AMP_CUDA_CONV_PLANT_NO_ACT_FUSION) && p->d.act);
    for (int pass = 0; pass < 2 && !p->plan; pass++) {
        for (int64_t i = 0; i < got && !p->plan; i++) {
            unsigned notes = 0;
            if (!engine_allowed(cfgs[i], &p->d, pass == 0, &notes)) continue;
            cudnnBackendDescriptor_t plan = NULL;
            int64_t ws = 0, n = 0;
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan)) continue;
            /* a configuration that does not finalise (or reports no size) is skipped: the next one is tried */
            if (cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &cfgs[i]) ||
                (cu->devprop && cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP,
                                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cu->devprop)) ||
                cudnnBackendFinalize(plan) ||
                cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws) ||
                ws < 0 || fail_one || fail_all) {
                fail_one = false;
                cudnnBackendDestroyDescriptor(plan);
                continue;
            }
            p->plan = plan;
            p->ws = (size_t)ws;
            p->used = (int)i;
            p->notes = notes;
            p->cfg = cfgs[i];
            cfgs[i] = NULL;
        }
    }
    if (!p->plan)
        s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "%s: none of cuDNN's %d engine configurations finalised a plan%s",
                       what, p->configs, p->d.dtype == AMP_F32 && !p->d.tf32 ? " without TF32" : "");
done:
    for (int64_t i = 0; cfgs && i < count; i++)
        if (cfgs[i]) cudnnBackendDestroyDescriptor(cfgs[i]);
    amp_dealloc(ctx, cfgs);
    if (heur) cudnnBackendDestroyDescriptor(heur);
    return s;
}

static void plan_free(amp_cuda_conv_plan *p) {
    cudnnBackendDescriptor_t all[] = {p->plan, p->cfg, p->graph, p->act_op, p->act, p->pw_op, p->pw, p->op, p->conv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) cudnnBackendDestroyDescriptor(all[i]);
    for (int i = 0; i < T_COUNT; i++)
        if (p->t[i]) cudnnBackendDestroyDescriptor(p->t[i]);
}

static amp_status plan_build(amp_cuda *cu, const amp_cuda_conv_desc *d, amp_cuda_conv_plan **out) {
    char what[256];
    describe(d, what, sizeof what);
    if (d->nsp < 1 || d->nsp > 3 || !amp_cuda_float_dtype(d->dtype) || (unsigned)d->kind > AMP_CUDA_CONV_BWD_FILTER ||
        (unsigned)d->act > AMP_CUDA_CONV_ACT_RELU || ((d->bias || d->act) && d->kind != AMP_CUDA_CONV_FWD))
        return amp_seterr(cu->ctx, AMP_ERR_UNSUPPORTED, "%s: not a convolution cuDNN runs here", what);
    amp_cuda_conv_plan *p = amp_calloc(cu->ctx, 1, sizeof *p);
    if (!p) return amp_seterr(cu->ctx, AMP_ERR_NO_MEMORY, "%s: no memory for the plan", what);
    p->d = *d;
    /* 1-D runs as 2-D: H = 1 before W */
    int nsp = d->nsp == 1 ? 2 : d->nsp, rank = nsp + 2;
    int64_t dims[3][5];
    const int64_t *src[3] = {d->x, d->w, d->y};
    for (int t = 0; t < 3; t++) {
        dims[t][0] = src[t][0];
        dims[t][1] = src[t][1];
        for (int i = 0; i < nsp; i++)
            dims[t][2 + i] = d->nsp == 1 ? (i == 0 ? 1 : src[t][2]) : src[t][2 + i];
    }
    cudnnDataType_t dt = dnn_dtype(d->dtype);
    amp_status s = AMP_OK;
    for (int t = 0; t < 3 && !s; t++)
        s = tensor_desc(cu, UID_X + t, dt, rank, dims[t], t == 0 && (d->plant & AMP_CUDA_CONV_PLANT_X_STRIDES), false,
                        &p->t[t]);
    /* the sum stays FP32 through the bias and the activation: one rounding, as on the CPU */
    if (!s && (d->bias || d->act)) s = tensor_desc(cu, UID_CONV, CUDNN_DATA_FLOAT, rank, dims[2], false, true, &p->t[T_CONV]);
    if (!s && d->bias) {
        int64_t bdims[5] = {1, dims[2][1], 1, 1, 1};
        s = tensor_desc(cu, UID_B, dt, rank, bdims, false, false, &p->t[T_B]);
    }
    if (!s && d->bias && d->act)
        s = tensor_desc(cu, UID_BIASED, CUDNN_DATA_FLOAT, rank, dims[2], false, true, &p->t[T_BIASED]);
    if (!s) s = conv_desc(cu, d, nsp, &p->conv);
    if (!s) s = op_desc(cu, p);
    if (!s) s = choose_plan(cu, p, what);
    if (s) {
        /* keep the library's words, name the convolution */
        char lib[512];
        snprintf(lib, sizeof lib, "%s", amp_context_last_error(cu->ctx));
        if (!strstr(lib, "conv ")) amp_seterr(cu->ctx, s, "%s: %s", what, lib);
        plan_free(p);
        amp_dealloc(cu->ctx, p);
        return s;
    }
    *out = p;
    return AMP_OK;
}

amp_status amp_cuda_conv_plan_get(amp_cuda *cu, const amp_cuda_conv_desc *d, const amp_cuda_conv_plan **out) {
    amp_cuda_conv_desc key;
    memcpy(&key, d, sizeof key); /* padding included: the key is compared bytewise */
    key.tf32 = cu->allow_tf32 ? 1 : 0;
    for (amp_cuda_conv_plan *p = cu->conv_plans; p; p = p->next)
        if (!memcmp(&p->d, &key, sizeof key)) {
            *out = p;
            return AMP_OK;
        }
    amp_cuda_conv_plan *p = NULL;
    amp_status s = plan_build(cu, &key, &p);
    if (s) return s;
    p->next = cu->conv_plans;
    cu->conv_plans = p;
    *out = p;
    return AMP_OK;
}

size_t amp_cuda_conv_plan_workspace(const amp_cuda_conv_plan *p) { return p->ws; }
int amp_cuda_conv_plan_configs(const amp_cuda_conv_plan *p) { return p->configs; }
int amp_cuda_conv_plan_config_used(const amp_cuda_conv_plan *p) { return p->used; }
unsigned amp_cuda_conv_plan_notes(const amp_cuda_conv_plan *p) { return p->notes; }

int amp_cuda_conv_cache_count(const amp_cuda *cu) {
    int n = 0;
    for (const amp_cuda_conv_plan *p = cu->conv_plans; p; p = p->next)
        n++;
    return n;
}

void amp_cuda_conv_cache_free(amp_cuda *cu) {
    if (!cu) return;
    amp_cuda_conv_plan *p = cu->conv_plans;
    while (p) {
        amp_cuda_conv_plan *next = p->next;
        plan_free(p);
        amp_dealloc(cu->ctx, p);
        p = next;
    }
    cu->conv_plans = NULL;
}

void amp_cuda_conv_pack_free(amp_cuda_conv_pack *pk) {
    if (!pk) return;
    if (pk->vp) cudnnBackendDestroyDescriptor(pk->vp);
    int builds = pk->builds;
    memset(pk, 0, sizeof *pk);
    pk->builds = builds;
}

/* A finalised variant pack of n uids and pointers and the workspace. */
static amp_status pack_build(amp_context *ctx, int n, void **ptrs, void *ws, cudnnBackendDescriptor_t *out) {
    static const int64_t uids[4] = {UID_X, UID_W, UID_Y, UID_B};
    cudnnBackendDescriptor_t vp = NULL;
    amp_status s = AMP_CUDA_DNN(ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
    if (!s)
        s = AMP_CUDA_DNN(ctx,
                         cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    if (!s)
        s = AMP_CUDA_DNN(ctx,
                         cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    if (!s)
        s = AMP_CUDA_DNN(ctx, cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendFinalize(vp));
    if (s) {
        if (vp) cudnnBackendDestroyDescriptor(vp);
        return s;
    }
    *out = vp;
    return AMP_OK;
}

amp_status amp_cuda_conv_run(amp_cuda *cu, const amp_cuda_conv_plan *p, amp_cuda_conv_pack *pk, void *x, void *w,
                             void *y, const void *b, void *ws, size_t ws_bytes) {
    char what[256];
    void *ptrs[4] = {x, w, y, (void *)b};
    int n = p->d.bias ? 4 : 3;
    if (!p->d.bias != !b) {
        describe(&p->d, what, sizeof what);
        return amp_seterr(cu->ctx, AMP_ERR_INTERNAL, "%s: a plan %s a bias run %s one", what,
                          p->d.bias ? "with" : "without", b ? "with" : "without");
    }
    if (ws_bytes < p->ws || (p->ws && !ws)) {
        describe(&p->d, what, sizeof what);
        return amp_seterr(cu->ctx, AMP_ERR_INTERNAL, "%s: workspace of %zu bytes, the plan needs %zu", what, ws_bytes,
                          p->ws);
    }
    for (int i = 0; i < n; i++)
        if (!ptrs[i] || (uintptr_t)ptrs[i] % 16) {
            describe(&p->d, what, sizeof what);
            return amp_seterr(cu->ctx, AMP_ERR_INTERNAL, "%s: %c at %p is not 16-byte aligned", what, "XWYB"[i], ptrs[i]);
        }
    amp_context *ctx = cu->ctx;
    cudnnBackendDescriptor_t vp = NULL;
    amp_status s = AMP_CUDA_DNN(ctx, cudnnSetStream(cu->dnn, cu->stream));
    bool same = pk && pk->vp && pk->plan == p && pk->ws == ws && !memcmp(pk->ptrs, ptrs, sizeof ptrs);
    if (!s && same) {
        vp = pk->vp;
    } else if (!s) {
        if (pk) amp_cuda_conv_pack_free(pk);
        s = pack_build(ctx, n, ptrs, ws, &vp);
        if (!s && pk) {
            pk->vp = vp;
            pk->plan = p;
            pk->ws = ws;
            memcpy(pk->ptrs, ptrs, sizeof ptrs);
            pk->builds++;
        }
    }
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnBackendExecute(cu->dnn, p->plan, vp));
    if (vp && !pk) cudnnBackendDestroyDescriptor(vp);
    if (s) {
        describe(&p->d, what, sizeof what);
        char lib[512];
        snprintf(lib, sizeof lib, "%s", amp_context_last_error(ctx));
        amp_seterr(ctx, s, "%s: %s", what, lib);
    }
    return s;
}

amp_status amp_cuda_conv_fwd_get(amp_cuda *cu, const amp_cuda_conv_desc *d, amp_cuda_conv_fwd *f) {
    amp_cuda_conv_fwd r;
    memset(&r, 0, sizeof r);
    r.bias = d->bias;
    r.act = d->act;
    r.N = d->y[0];
    r.M = d->y[1];
    r.S = 1;
    for (int i = 0; i < d->nsp; i++)
        r.S *= d->y[2 + i];
    if (d->kind != AMP_CUDA_CONV_FWD) {
        char what[256];
        describe(d, what, sizeof what);
        return amp_seterr(cu->ctx, AMP_ERR_INTERNAL, "%s: not a forward convolution", what);
    }
    /* the whole epilogue in the graph; else the bias in it and the activation by the kernel (still
     * one rounding: relu commutes with it); else the convolution alone and both by the kernel */
    amp_cuda_conv_desc t = *d;
    amp_status s = amp_cuda_conv_plan_get(cu, &t, &r.plan);
    if (s == AMP_ERR_UNSUPPORTED && t.act && t.bias) {
        t.act = AMP_CUDA_CONV_ACT_NONE;
        r.act_kernel = true;
        s = amp_cuda_conv_plan_get(cu, &t, &r.plan);
    }
    if (s == AMP_ERR_UNSUPPORTED && (t.bias || t.act)) {
        r.bias_kernel = t.bias != 0;
        r.act_kernel = d->act != AMP_CUDA_CONV_ACT_NONE;
        t.bias = 0;
        t.act = AMP_CUDA_CONV_ACT_NONE;
        s = amp_cuda_conv_plan_get(cu, &t, &r.plan);
    }
    if (s) return s;
    *f = r;
    return AMP_OK;
}

amp_status amp_cuda_conv_fwd_run(amp_cuda *cu, const amp_cuda_conv_fwd *f, amp_cuda_conv_pack *pk, void *x, void *w,
                                 void *y, const void *b, void *ws, size_t ws_bytes) {
    amp_status s = amp_cuda_conv_run(cu, f->plan, pk, x, w, y, f->bias && !f->bias_kernel ? b : NULL, ws, ws_bytes);
    if (!s && (f->bias_kernel || f->act_kernel))
        s = AMP_CUDA_RT(cu->ctx, amp_cuda_conv_bias_add(cu->stream, f->plan->d.dtype, y, f->bias_kernel ? b : NULL, f->N,
                                                        f->M, f->S, f->act_kernel && f->act == AMP_CUDA_CONV_ACT_RELU));
    return s;
}
