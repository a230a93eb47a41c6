/* The CUDA backend's reductions, optimizers and loss scaling (backends/cuda/k_reduce.cu,
 * k_optim.cu, op_optim.c) against references: the per-channel reduction against sums in double
 * over the same (rounded) inputs, the ops against the CPU backend on the same nodes. */
#include <float.h>
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cpu/kernels.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels_optim.h"
#include "backends/optim.h"
#include "base/half.h"
#include "ir/grad.h"
#include "ir/ir.h"
#include "tests/cuda/cuda_test.h"

/* ---- device buffers ------------------------------------------------------------------------- */

static size_t dt_size(amp_dtype t) { return amp_dtype_size(t); }

/* n floats rounded to dtype t, into host bytes (malloc'd) */
static void *to_dtype(amp_dtype t, const float *v, size_t n) {
    void *p = malloc(n * dt_size(t) + 1);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (t == AMP_F32) ((float *)p)[i] = v[i];
        else if (t == AMP_F16) ((uint16_t *)p)[i] = amp_f32_to_f16(v[i]);
        else if (t == AMP_BF16) ((uint16_t *)p)[i] = amp_f32_to_bf16(v[i]);
        else if (t == AMP_F64) ((double *)p)[i] = v[i];
        else ((uint8_t *)p)[i] = v[i] != 0;
    }
    return p;
}

static float from_dtype(amp_dtype t, const void *p, size_t i) {
    if (t == AMP_F32) return ((const float *)p)[i];
    if (t == AMP_F16) return amp_f16_to_f32(((const uint16_t *)p)[i]);
    if (t == AMP_BF16) return amp_bf16_to_f32(((const uint16_t *)p)[i]);
    if (t == AMP_F64) return (float)((const double *)p)[i];
    return ((const uint8_t *)p)[i];
}

/* v rounded to t and back (what the device holds) */
static void round_to(amp_dtype t, float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (t == AMP_F16) v[i] = amp_f16_to_f32(amp_f32_to_f16(v[i]));
        else if (t == AMP_BF16) v[i] = amp_bf16_to_f32(amp_f32_to_bf16(v[i]));
    }
}

/* a device copy of v in dtype t (NULL on failure; n 0 gives a 1-byte region) */
static void *dev_upload(amp_dtype t, const float *v, size_t n) {
    void *h = to_dtype(t, v, n), *d = NULL;
    if (!h) return NULL;
    if (cudaMalloc(&d, n * dt_size(t) + 1) != cudaSuccess) d = NULL;
    if (d && n && cudaMemcpy(d, h, n * dt_size(t), cudaMemcpyHostToDevice) != cudaSuccess) {
        cudaFree(d);
        d = NULL;
    }
    free(h);
    return d;
}

/* the device array d (dtype t, n elements) as floats into out; false on a failed copy */
static bool dev_download(amp_dtype t, const void *d, size_t n, float *out) {
    void *h = malloc(n * dt_size(t) + 1);
    if (!h) return false;
    bool ok = !n || cudaMemcpy(h, d, n * dt_size(t), cudaMemcpyDeviceToHost) == cudaSuccess;
    for (size_t i = 0; ok && i < n; i++) out[i] = from_dtype(t, h, i);
    free(h);
    return ok;
}

static const amp_dtype float_types[] = {AMP_F32, AMP_F16, AMP_BF16};

/* Error allowed on a result stored in dtype t after an f32 computation: the store's rounding
 * (half an ulp: 2^-11 relative for f16, 2^-8 for bf16) with room for the f32 sums' own error
 * (~1e-7 relative per add); f32 results only carry the sums' error (a few 1e-7 over 4097
 * terms, in another order than the double reference). */
static double tol_store(amp_dtype t) { return t == AMP_F32 ? 1e-5 : t == AMP_F16 ? 1e-3 : 8e-3; }

/* ---- amp_cuda_reduce_channels -------------------------------------------------------------- */

typedef struct red_shape {
    int64_t outer, channels, inner;
} red_shape;

/* Runs one reduction (flags: planted bugs) and returns its relative L2 error against the double
 * reference, or -1 on a failed launch or copy; *same_again tells whether a second run gave the
 * same bits. */
static double red_case(red_shape sh, amp_dtype xt, amp_dtype yt, float alpha, float beta, unsigned flags,
                       uint64_t seed, bool *same_again) {
    const size_t nx = (size_t)(sh.outer * sh.channels * sh.inner), ny = (size_t)sh.channels;
    float *x = malloc((nx + 1) * sizeof *x), *y0 = malloc((ny + 1) * sizeof *y0);
    float *got = malloc((ny + 1) * sizeof *got), *got2 = malloc((ny + 1) * sizeof *got2);
    double *ref = malloc((ny + 1) * sizeof *ref);
    float *reff = malloc((ny + 1) * sizeof *reff);
    void *dx = NULL, *dy = NULL;
    double err = -1;
    if (!x || !y0 || !got || !got2 || !ref || !reff) goto done;
    ct_fill(x, nx, seed, -1.0f, 1.0f);
    ct_fill(y0, ny, seed + 1, 0.5f, 2.0f);
    round_to(xt, x, nx);
    round_to(yt, y0, ny);
    for (size_t c = 0; c < ny; c++) {
        double s = 0;
        for (int64_t o = 0; o < sh.outer; o++)
            for (int64_t i = 0; i < sh.inner; i++) s += x[(o * sh.channels + (int64_t)c) * sh.inner + i];
        ref[c] = alpha * s + (beta != 0 ? beta * (double)y0[c] : 0.0);
        reff[c] = (float)ref[c];
    }
    dx = dev_upload(xt, x, nx);
    /* beta 0: y starts as NaN, which must not be read */
    if (beta == 0)
        for (size_t c = 0; c < ny; c++) y0[c] = NAN;
    dy = dev_upload(yt, y0, ny);
    if (!dx || !dy) goto done;
    for (int run = 0; run < 2; run++) {
        void *h = to_dtype(yt, y0, ny);
        if (!h) goto done;
        cudaError_t e = ny ? cudaMemcpy(dy, h, ny * dt_size(yt), cudaMemcpyHostToDevice) : cudaSuccess;
        free(h);
        if (e != cudaSuccess) goto done;
        e = amp_cuda_reduce_channels_flags(NULL, xt, dx, yt, dy, sh.outer, sh.channels, sh.inner, alpha, beta, flags);
        if (e != cudaSuccess || !dev_download(yt, dy, ny, run ? got2 : got)) goto done;
    }
    *same_again = memcmp(got, got2, ny * sizeof *got) == 0;
    /* a NaN anywhere makes the largest difference infinite */
    err = !isfinite(ct_max_abs(got, reff, ny)) ? INFINITY : ny ? ct_rel_l2(got, reff, ny) : 0.0;
done:
    cudaFree(dx);
    cudaFree(dy);
    free(x);
    free(y0);
    free(got);
    free(got2);
    free(ref);
    free(reff);
    return err;
}

static const red_shape red_shapes[] = {
    {1, 1, 1}, {2, 3, 1}, {64, 10, 1}, {7, 5, 33}, {3, 1, 4097}, {5, 7, 31}, {4, 16, 576}, {1, 300, 1}, {2, 3, 64},
};

static void t_reduce_channels(void) {
    for (size_t s = 0; s < sizeof red_shapes / sizeof red_shapes[0]; s++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                const red_shape sh = red_shapes[s];
                const amp_dtype xt = float_types[a], yt = float_types[b];
                for (int acc = 0; acc < 2; acc++) {
                    bool same = false;
                    const float alpha = acc ? 0.5f : 1.0f, beta = acc ? 1.0f : 0.0f;
                    double e = red_case(sh, xt, yt, alpha, beta, 0, 100 + s, &same);
                    CT_CHECK(e >= 0 && e <= tol_store(yt), "(%lld,%lld,%lld) %s -> %s alpha %g beta %g: rel L2 %g",
                             (long long)sh.outer, (long long)sh.channels, (long long)sh.inner, amp_dtype_name(xt),
                             amp_dtype_name(yt), alpha, beta, e);
                    CT_CHECK(same, "(%lld,%lld,%lld) %s -> %s: two runs differ", (long long)sh.outer,
                             (long long)sh.channels, (long long)sh.inner, amp_dtype_name(xt), amp_dtype_name(yt));
                }
            }
}

/* empty x: y = beta * y, or 0; no channels: nothing to do */
static void t_reduce_empty(void) {
    const red_shape shapes[] = {{0, 3, 5}, {3, 4, 0}, {0, 1, 7}};
    for (size_t s = 0; s < 3; s++)
        for (int acc = 0; acc < 2; acc++) {
            bool same = false;
            double e = red_case(shapes[s], AMP_F32, AMP_F32, 1.0f, acc ? 2.0f : 0.0f, 0, 7, &same);
            CT_CHECK(e == 0, "empty (%lld,%lld,%lld) beta %d: rel L2 %g", (long long)shapes[s].outer,
                     (long long)shapes[s].channels, (long long)shapes[s].inner, acc * 2, e);
        }
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_F32, NULL, AMP_F32, NULL, 4, 0, 4, 1, 0) == cudaSuccess,
             "no channels");
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_I32, NULL, AMP_F32, NULL, 4, 2, 4, 1, 0) == cudaErrorInvalidValue,
             "int32 x is refused");
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_F32, NULL, AMP_F64, NULL, 4, 2, 4, 1, 0) == cudaErrorInvalidValue,
             "f64 y is refused");
    CT_CHECK(amp_cuda_reduce_channels(NULL, AMP_F32, NULL, AMP_F32, NULL, -1, 2, 4, 1, 0) == cudaErrorInvalidValue,
             "negative size is refused");
}

/* PLANTED BUG: without the barrier after the partial sums, thread 0 adds slots other threads
 * have not written yet (the emulator's poisoned shared memory: NaN), so the result must be
 * wrong. The shape takes the block kernel (inner >= 32). */
static void t_reduce_planted_no_barrier(void) {
    const red_shape sh = {4, 3, 300};
    bool same = false;
    double good = red_case(sh, AMP_F32, AMP_F32, 1.0f, 0.0f, 0, 11, &same);
    CT_CHECK(good >= 0 && good <= tol_store(AMP_F32), "the correct kernel: rel L2 %g", good);
    double bad = red_case(sh, AMP_F32, AMP_F32, 1.0f, 0.0f, AMP_CUDA_REDUCE_PLANT_NO_BARRIER, 11, &same);
    CT_CHECK(bad < 0 || bad > 1e-2, "the kernel without its barrier gave a right answer (rel L2 %g)", bad);
}

/* ---- nodes on both backends ---------------------------------------------------------------- */

#define TN_MAX_IN 96

/* a node of the training domain with its attributes */
typedef struct tnode {
    amp_node node;
    amp_attr attrs[16];
    int ids_in[TN_MAX_IN], ids_out[1];
} tnode;

static void tn_init(tnode *t, const char *op) {
    memset(t, 0, sizeof *t);
    t->node.name = "test";
    t->node.op_type = (char *)op;
    t->node.domain = AMP_TRAIN_DOMAIN;
    t->node.op = amp_op_lookup(op, AMP_TRAIN_DOMAIN);
    t->node.attrs = t->attrs;
}

static void tn_i(tnode *t, const char *name, int64_t v) {
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    a->name = (char *)name;
    a->kind = AMP_ATTR_INT;
    a->i = v;
}

static void tn_f(tnode *t, const char *name, float v) {
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    a->name = (char *)name;
    a->kind = AMP_ATTR_FLOAT;
    a->f = v;
}

/* A host tensor and its device copy (d: a view over device memory with the same dtype and shape). */
typedef struct pair {
    amp_tensor *h;
    amp_tensor d;
} pair;

static amp_context *g_ctx;

/* values v (rounded to dtype) on the host and the device; v NULL: zeros */
static bool pair_new(pair *p, amp_dtype t, int rank, const int64_t *dims, const float *v) {
    memset(p, 0, sizeof *p);
    if (amp_tensor_create(g_ctx, t, rank, dims, &p->h) != AMP_OK) return false;
    const size_t n = (size_t)p->h->numel;
    if (v) {
        void *b = to_dtype(t, v, n);
        if (!b) return false;
        memcpy(p->h->data, b, p->h->nbytes);
        free(b);
    } else {
        memset(p->h->data, 0, p->h->nbytes);
    }
    void *d = NULL;
    if (cudaMalloc(&d, p->h->nbytes + 1) != cudaSuccess) return false;
    amp_tensor_view(&p->d, t, rank, dims, d);
    return !n || cudaMemcpy(d, p->h->data, p->h->nbytes, cudaMemcpyHostToDevice) == cudaSuccess;
}

/* host values into both copies */
static bool pair_set(pair *p, const float *v) {
    void *b = to_dtype(p->h->dtype, v, (size_t)p->h->numel);
    if (!b) return false;
    memcpy(p->h->data, b, p->h->nbytes);
    free(b);
    return !p->h->numel || cudaMemcpy(p->d.data, p->h->data, p->h->nbytes, cudaMemcpyHostToDevice) == cudaSuccess;
}

static void pair_free(pair *p) {
    if (!p) return;
    cudaFree(p->d.data);
    amp_tensor_destroy(p->h);
    memset(p, 0, sizeof *p);
}

/* the device bytes of p (malloc'd), NULL on failure */
static void *pair_device_bytes(const pair *p) {
    void *b = malloc(p->h->nbytes + 1);
    if (b && p->h->nbytes && cudaMemcpy(b, p->d.data, p->h->nbytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(b);
        b = NULL;
    }
    return b;
}

/* The device copy against the host copy (the CPU's result): the same bytes on the emulator
 * (same formulas, same order, and the host compiler contracts no multiply-add: no -march), else
 * a relative L2 error up to tol (a real GPU fuses multiply-adds). Returns the error, -1 for a
 * failed copy; *exact_out tells whether the bytes agree. */
static double pair_diff(const pair *p, bool *exact_out) {
    void *b = pair_device_bytes(p);
    if (!b) return -1;
    const size_t n = (size_t)p->h->numel;
    *exact_out = memcmp(b, p->h->data, p->h->nbytes) == 0;
    float *got = malloc((n + 1) * sizeof *got), *ref = malloc((n + 1) * sizeof *ref);
    double e = -1;
    if (got && ref) {
        for (size_t i = 0; i < n; i++) {
            got[i] = from_dtype(p->h->dtype, b, i);
            ref[i] = from_dtype(p->h->dtype, p->h->data, i);
        }
        e = *exact_out || !n ? 0.0 : ct_rel_l2(got, ref, n);
        if (!*exact_out && !isfinite(ct_max_abs(got, ref, n))) e = INFINITY;
    }
    free(got);
    free(ref);
    free(b);
    return e;
}

#ifdef AMP_CUDA_EMULATED
#define CT_SAME(p, tol, ...)                                                     \
    do {                                                                         \
        bool same_ = false;                                                      \
        double e_ = pair_diff((p), &same_);                                      \
        CT_CHECK(e_ >= 0 && same_, __VA_ARGS__);                                 \
        (void)(tol);                                                             \
    } while (0)
#else
#define CT_SAME(p, tol, ...)                                                     \
    do {                                                                         \
        bool same_ = false;                                                      \
        double e_ = pair_diff((p), &same_);                                      \
        CT_CHECK(e_ >= 0 && (same_ || e_ <= (tol)), __VA_ARGS__);                \
    } while (0)
#endif

/* The output of node t for inputs in (host tensors, NULL where omitted): inference as a plan
 * would run it, then a host tensor for it. */
static amp_status infer_out(tnode *t, int nin, amp_tensor *const *in, amp_tensor **out) {
    amp_tinfo ti[TN_MAX_IN], to;
    const amp_tinfo *pin[TN_MAX_IN];
    amp_tinfo *pout[1] = {&to};
    memset(&to, 0, sizeof to);
    for (int i = 0; i < nin; i++) {
        t->ids_in[i] = in[i] ? i : -1;
        pin[i] = NULL;
        if (!in[i]) continue;
        memset(&ti[i], 0, sizeof ti[i]);
        ti[i].dtype = in[i]->dtype;
        ti[i].rank = in[i]->rank;
        memcpy(ti[i].dims, in[i]->dims, sizeof ti[i].dims);
        pin[i] = &ti[i];
    }
    t->ids_out[0] = nin;
    t->node.inputs = t->ids_in;
    t->node.n_inputs = nin;
    t->node.outputs = t->ids_out;
    t->node.n_outputs = 1;
    amp_infer c = {.ctx = g_ctx, .n = &t->node, .opset = 1, .nin = nin, .nout = 1, .in = pin, .out = pout};
    amp_status s = amp_op_table[t->node.op].infer(&c);
    return s ? s : amp_tensor_create(g_ctx, to.dtype, to.rank, to.dims, out);
}

static amp_status cpu_run(tnode *t, int nin, amp_tensor *const *in, amp_tensor *out) {
    amp_backend *b = NULL;
    amp_status s = amp_backend_cpu_create(g_ctx, 2, &b);
    amp_tensor *outs[1] = {out};
    amp_kernel k = {.ctx = g_ctx, .n = &t->node, .opset = 1, .nin = nin, .nout = 1, .in = in, .out = outs,
                    .threads = 2};
    if (!s) s = amp_backend_run_once(b, &k);
    amp_backend_destroy(b);
    return s;
}

/* SGD and AdamW on the CPU backend's kernel itself, with a workspace of ours: one double per
 * chunk, the chunk sums of the norm, which part receives (amp_backend_run_once would free it) */
static amp_status cpu_optim_run(tnode *t, int nin, amp_tensor *const *in, amp_tensor *out, double *part,
                                size_t part_bytes) {
    amp_tensor *outs[1] = {out};
    amp_kernel k = {.ctx = g_ctx, .n = &t->node, .opset = 1, .nin = nin, .nout = 1, .in = in, .out = outs,
                    .ws = part, .ws_bytes = part_bytes, .threads = 2};
    return t->node.op == AMP_OP_OPTIM_ADAMW ? amp_cpu_optim_adamw(&k) : amp_cpu_optim_sgd(&k);
}

static const amp_cuda_op *cuda_entry(amp_op op) {
    for (const amp_cuda_op *e = amp_cuda_ops_optim; e->run; e++)
        if (e->op == op) return e;
    return NULL;
}

/* the kernel of node t over device views */
static amp_kernel dev_kernel(tnode *t, int nin, amp_tensor *const *din, amp_tensor *const *dout) {
    amp_kernel k = {.ctx = g_ctx, .n = &t->node, .opset = 1, .nin = nin, .nout = 1, .in = din, .out = dout,
                    .threads = 1};
    return k;
}

/* the workspace of the last cuda_run, copied back (the optimizers' chunk sums) */
static void *g_ws_kept;

/* What the backend does with a node: supports, prepare (views with no data, as at plan time), a
 * NaN-poisoned workspace of the size prepare asked for, run, then the stream's end. */
static amp_status cuda_run(amp_cuda *cu, tnode *t, int nin, amp_tensor *const *din, amp_tensor *dout) {
    const amp_cuda_op *e = cuda_entry(t->node.op);
    if (!e) return amp_seterr(g_ctx, AMP_ERR_UNSUPPORTED, "no CUDA entry for %s", t->node.op_type);
    amp_tensor *outs[1] = {dout};
    amp_kernel k = dev_kernel(t, nin, din, outs);
    if (!e->supports(cu, &k)) return amp_seterr(g_ctx, AMP_ERR_UNSUPPORTED, "%s: not supported", t->node.op_type);
    /* plan time: views without data */
    amp_tensor pv[TN_MAX_IN], po;
    amp_tensor *pin[TN_MAX_IN], *pout[1] = {&po};
    for (int i = 0; i < nin; i++) {
        pin[i] = NULL;
        if (!din[i]) continue;
        pv[i] = *din[i];
        pv[i].data = NULL;
        pin[i] = &pv[i];
    }
    po = *dout;
    po.data = NULL;
    amp_kernel pk = dev_kernel(t, nin, pin, pout);
    void *state = NULL, *ws = NULL;
    size_t ws_bytes = 0;
    amp_status s = e->prepare ? e->prepare(cu, &pk, &state, &ws_bytes) : AMP_OK;
    if (s) return s;
    if (ws_bytes) {
        s = AMP_CUDA_RT(g_ctx, cudaMalloc(&ws, ws_bytes));
        if (!s) s = AMP_CUDA_RT(g_ctx, cudaMemset(ws, 0xFF, ws_bytes));
    }
    k.ws = ws;
    k.ws_bytes = ws_bytes;
    if (!s) s = e->run(cu, &k, state);
    if (!s) s = AMP_CUDA_RT(g_ctx, cudaStreamSynchronize(cu->stream));
    free(g_ws_kept);
    g_ws_kept = NULL;
    if (!s && ws_bytes && (g_ws_kept = malloc(ws_bytes)))
        s = AMP_CUDA_RT(g_ctx, cudaMemcpy(g_ws_kept, ws, ws_bytes, cudaMemcpyDeviceToHost));
    if (e->release) e->release(cu, state);
    cudaFree(ws);
    return s;
}

static bool cuda_setup(amp_cuda *cu) {
    memset(cu, 0, sizeof *cu);
    if (!g_ctx && amp_context_create(NULL, &g_ctx) != AMP_OK) return false;
    cu->ctx = g_ctx;
    cu->cc_major = 9;
    return cudaStreamCreate(&cu->stream) == cudaSuccess;
}

static void cuda_teardown(amp_cuda *cu) {
    if (cu->stream) cudaStreamDestroy(cu->stream);
    cu->stream = NULL;
}

/* n random values in [lo, hi) */
static float *rnd(size_t n, uint64_t seed, float lo, float hi) {
    float *v = malloc((n + 1) * sizeof *v);
    if (v) ct_fill(v, n, seed, lo, hi);
    return v;
}

/* ---- GemmCGrad --------------------------------------------------------------------------------- */

static void t_gemm_c_grad(void) {
    amp_cuda cu;
    CT_CHECK(cuda_setup(&cu), "stream");
    const int64_t mn[][2] = {{1, 1}, {7, 33}, {64, 10}, {5, 4097}, {3, 1}, {1, 300}};
    for (size_t s = 0; s < sizeof mn / sizeof mn[0]; s++) {
        const int64_t M = mn[s][0], N = mn[s][1];
        /* C's shapes that broadcast to [M, N]: rank 0, [N], [1], [1, N], [M, 1], [M, N], [1, 1] */
        const int64_t cshape[7][3] = {{0, 0, 0}, {1, N, 0}, {1, 1, 0}, {2, 1, N}, {2, M, 1}, {2, M, N}, {2, 1, 1}};
        for (int ci = 0; ci < 7; ci++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    const amp_dtype yt = float_types[a], ct = float_types[b];
                    const float beta = (ci + a + b) % 2 ? 0.5f : 1.0f;
                    const int crank = (int)cshape[ci][0];
                    const int64_t *cdims = &cshape[ci][1], ydims[2] = {M, N};
                    int64_t cn = 1;
                    for (int i = 0; i < crank; i++) cn *= cdims[i];
                    float *vy = rnd((size_t)(M * N), 300 + s * 7 + (uint64_t)ci, -1, 1), *vc = rnd((size_t)cn, 9, -1, 1);
                    pair dy, c, dc;
                    memset(&dc, 0, sizeof dc);
                    bool ok = vy && vc && pair_new(&dy, yt, 2, ydims, vy) && pair_new(&c, ct, crank, cdims, vc);
                    free(vy);
                    free(vc);
                    CT_CHECK(ok, "inputs");
                    tnode t;
                    tn_init(&t, "GemmCGrad");
                    tn_f(&t, "beta", beta);
                    amp_tensor *hin[2] = {dy.h, c.h}, *din[2] = {&dy.d, &c.d};
                    amp_status st = infer_out(&t, 2, hin, &dc.h);
                    void *dd = NULL;
                    if (!st) st = AMP_CUDA_RT(g_ctx, cudaMalloc(&dd, dc.h->nbytes + 1));
                    if (!st) {
                        amp_tensor_view(&dc.d, dc.h->dtype, dc.h->rank, dc.h->dims, dd);
                        st = AMP_CUDA_RT(g_ctx, cudaMemset(dd, 0xFF, dc.h->nbytes + 1));
                    }
                    if (!st) st = cpu_run(&t, 2, hin, dc.h);
                    if (!st) st = cuda_run(&cu, &t, 2, din, &dc.d);
                    bool same = false;
                    double e = st ? -1 : pair_diff(&dc, &same);
                    pair_free(&dy);
                    pair_free(&c);
                    pair_free(&dc);
                    CT_CHECK(!st, "GemmCGrad [%lld,%lld] C shape %d: %s", (long long)M, (long long)N, ci,
                             amp_context_last_error(g_ctx));
                    /* the CPU sums in double, the device in f32: the store's rounding dominates */
                    CT_CHECK(e >= 0 && e <= tol_store(ct), "GemmCGrad [%lld,%lld] C shape %d %s -> %s beta %g: rel L2 %g",
                             (long long)M, (long long)N, ci, amp_dtype_name(yt), amp_dtype_name(ct), beta, e);
                }
    }
    cuda_teardown(&cu);
}

/* ---- UnscaleCheck ---------------------------------------------------------------------------- */

/* n gradients of sizes sz[] and dtypes dt[]; bad_at >= 0 plants value bad in gradient bad_at at
 * element bad_el; the CPU's and the device's found_inf must agree, and be want */
static void unscale_case(amp_cuda *cu, int n, const int64_t *sz, const amp_dtype *dt, float scale, int bad_at,
                         int64_t bad_el, float bad, int want, const char *what) {
    pair sc, g[24], out;
    memset(g, 0, sizeof g);
    memset(&out, 0, sizeof out);
    const int64_t one = 1;
    bool ok = pair_new(&sc, AMP_F32, 1, &one, &scale);
    for (int i = 0; ok && i < n; i++) {
        float *v = rnd((size_t)sz[i], 40 + (uint64_t)i, -4, 4);
        if (v && i == bad_at) v[bad_el] = bad;
        ok = v && pair_new(&g[i], dt[i], 1, &sz[i], v);
        /* an f64 value beyond the f32 range: set directly, floats cannot hold it */
        if (ok && i == bad_at && dt[i] == AMP_F64 && bad == 0.0f) {
            ((double *)g[i].h->data)[bad_el] = 1e39;
            ok = cudaMemcpy(g[i].d.data, g[i].h->data, g[i].h->nbytes, cudaMemcpyHostToDevice) == cudaSuccess;
        }
        free(v);
    }
    tnode t;
    tn_init(&t, "UnscaleCheck");
    amp_tensor *hin[25], *din[25];
    hin[0] = sc.h;
    din[0] = &sc.d;
    for (int i = 0; i < n; i++) {
        hin[1 + i] = g[i].h;
        din[1 + i] = &g[i].d;
    }
    amp_status st = ok ? infer_out(&t, n + 1, hin, &out.h) : AMP_ERR_INTERNAL;
    void *dd = NULL;
    if (!st) st = AMP_CUDA_RT(g_ctx, cudaMalloc(&dd, 1));
    if (!st) {
        amp_tensor_view(&out.d, AMP_BOOL, out.h->rank, out.h->dims, dd);
        st = AMP_CUDA_RT(g_ctx, cudaMemset(dd, 0x7F, 1));
    }
    if (!st) st = cpu_run(&t, n + 1, hin, out.h);
    if (!st) st = cuda_run(cu, &t, n + 1, din, &out.d);
    uint8_t got = 0xAA;
    if (!st) cudaMemcpy(&got, out.d.data, 1, cudaMemcpyDeviceToHost);
    const uint8_t cpu = st ? 0xAA : ((uint8_t *)out.h->data)[0];
    pair_free(&sc);
    for (int i = 0; i < n; i++) pair_free(&g[i]);
    pair_free(&out);
    CT_CHECK(!st, "%s: %s", what, amp_context_last_error(g_ctx));
    CT_CHECK(cpu == want, "%s: the CPU says %d, expected %d", what, cpu, want);
    CT_CHECK(got == cpu, "%s: found_inf %d on CUDA, %d on the CPU", what, got, cpu);
}

static void t_unscale_check(void) {
    amp_cuda cu;
    CT_CHECK(cuda_setup(&cu), "stream");
    enum { N = 20 }; /* more than AMP_CUDA_OPTIM_BATCH: two launches */
    int64_t sz[N];
    amp_dtype dt[N];
    const amp_dtype all4[4] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
    const int64_t sizes[] = {1, 7, 1000, 4097, 33, 8193, 2, 300};
    for (int i = 0; i < N; i++) {
        sz[i] = sizes[i % 8];
        dt[i] = all4[i % 4];
    }
    int before = ct_st.checks;
    unscale_case(&cu, N, sz, dt, 1024.0f, -1, 0, 0, 0, "all finite");
    if (ct_st.failed) return;
    unscale_case(&cu, N, sz, dt, 1024.0f, 3, 4096, INFINITY, 1, "inf at the last element of a 4097-element f64");
    if (ct_st.failed) return;
    unscale_case(&cu, N, sz, dt, 1024.0f, 18, 999, NAN, 1, "NaN in bf16 gradient 18 (the second launch)");
    if (ct_st.failed) return;
    unscale_case(&cu, N, sz, dt, 1024.0f, 5, 8192, -INFINITY, 1, "-inf in f16 at element 8192");
    if (ct_st.failed) return;
    unscale_case(&cu, N, sz, dt, 1.0f, 7, 299, 0.0f, 1, "f64 1e39: beyond f32");
    if (ct_st.failed) return;
    unscale_case(&cu, N, sz, dt, 0.5f, 0, 0, 3e38f, 1, "f32 3e38 unscaled by 0.5 overflows");
    if (ct_st.failed) return;
    unscale_case(&cu, N, sz, dt, 2.0f, 0, 0, 3e38f, 0, "f32 3e38 unscaled by 2 stays finite");
    if (ct_st.failed) return;
    unscale_case(&cu, 1, sz, dt, 1.0f, -1, 0, 0, 0, "one 1-element gradient");
    cuda_teardown(&cu);
    CT_CHECK(ct_st.checks > before, "cases ran");
}

/* ---- LossScaleUpdate ----------------------------------------------------------------------------- */

static void t_loss_scale_update(void) {
    amp_cuda cu;
    CT_CHECK(cuda_setup(&cu), "stream");
    const float starts[] = {65536.0f, 3e38f}; /* the second cannot grow: the scale stays */
    for (int k = 0; k < 2; k++) {
        const int64_t one = 1;
        const float zero = 0.0f;
        pair sc, tr, fi, after, out;
        memset(&out, 0, sizeof out);
        bool ok = pair_new(&sc, AMP_F32, 1, &one, &starts[k]) && pair_new(&tr, AMP_F32, 1, &one, &zero) &&
                  pair_new(&fi, AMP_BOOL, 1, &one, &zero) && pair_new(&after, AMP_F32, 1, &one, &zero);
        CT_CHECK(ok, "inputs");
        tnode t;
        tn_init(&t, "LossScaleUpdate");
        tn_i(&t, "growth_interval", 3);
        tn_f(&t, "growth_factor", 2.0f);
        tn_f(&t, "backoff_factor", 0.25f);
        amp_tensor *hin[4] = {sc.h, tr.h, fi.h, after.h}, *din[4] = {&sc.d, &tr.d, &fi.d, &after.d};
        amp_status st = infer_out(&t, 4, hin, &out.h);
        void *dd = NULL;
        if (!st) st = AMP_CUDA_RT(g_ctx, cudaMalloc(&dd, 4));
        if (!st) amp_tensor_view(&out.d, AMP_F32, out.h->rank, out.h->dims, dd);
        /* overflow, then 4 good steps (growth at the third), overflow, 3 good */
        const int pattern[] = {1, 0, 0, 0, 0, 1, 0, 0, 0};
        for (size_t i = 0; !st && i < sizeof pattern / sizeof pattern[0]; i++) {
            const float f = (float)pattern[i];
            if (!pair_set(&fi, &f)) st = AMP_ERR_INTERNAL;
            if (!st) st = cpu_run(&t, 4, hin, out.h);
            if (!st) st = cuda_run(&cu, &t, 4, din, &out.d);
            if (st) break;
            CT_SAME(&sc, 0.0, "scale after step %zu (start %g)", i, starts[k]);
            CT_SAME(&tr, 0.0, "tracker after step %zu", i);
            CT_SAME(&out, 0.0, "new_scale after step %zu", i);
        }
        CT_CHECK(!st, "LossScaleUpdate: %s", amp_context_last_error(g_ctx));
        /* the sequence itself: / 4 at an overflow, x 2 at every third good step in a row */
        if (k == 0) CT_CHECK(((float *)sc.h->data)[0] == 65536.0f * 0.25f * 2.0f * 0.25f * 2.0f, "scale %g", ((float *)sc.h->data)[0]);
        pair_free(&sc);
        pair_free(&tr);
        pair_free(&fi);
        pair_free(&after);
        pair_free(&out);
    }
    cuda_teardown(&cu);
}

/* ---- SGD and AdamW ----------------------------------------------------------------------------- */

enum { MAXP = 20 };

typedef struct ocase {
    const char *name;
    bool adamw;
    float lr, momentum, dampening, wd, max_norm, beta1, beta2, eps;
    int nesterov;
    bool defaults;     /* set only n (and AdamW's lr input): attribute defaults */
    int np;
    int64_t size[MAXP];
    amp_dtype wt[MAXP], gt[MAXP], mt[MAXP];
    float scale;       /* 0: found_inf and scale omitted */
    float start_step;  /* resume: random moments */
    int steps;
    int skip_at;       /* 1-based step with an inf gradient and found_inf set; 0: none */
} ocase;

/* Tolerances on a GPU, where multiply-adds fuse (the emulator demands the CPU's bytes): a
 * parameter of dtype t after a few steps differs by rounding flips of its stored value (half an
 * ulp on a few elements) and f32 rounding in the update: f32 1e-6, f16 1e-3, bf16 8e-3. */
static double tol_state(amp_dtype t) { return t == AMP_F32 ? 1e-6 : t == AMP_F16 ? 1e-3 : 8e-3; }

static void optim_case(amp_cuda *cu, const ocase *c) {
    const int n = c->np, ns = c->adamw ? 2 : c->momentum != 0 ? 1 : 0;
    const int nin = 4 + (2 + ns) * n;
    const int64_t one = 1;
    pair lr, step, fi, sc, out, w[MAXP], g[MAXP], st[2][MAXP];
    memset(w, 0, sizeof w);
    memset(g, 0, sizeof g);
    memset(st, 0, sizeof st);
    memset(&fi, 0, sizeof fi);
    memset(&sc, 0, sizeof sc);
    memset(&out, 0, sizeof out);
    const float zero = 0.0f;
    bool ok = pair_new(&lr, AMP_F32, 1, &one, &c->lr) && pair_new(&step, AMP_F32, 1, &one, &c->start_step);
    if (ok && c->scale != 0)
        ok = pair_new(&fi, AMP_BOOL, 1, &one, &zero) && pair_new(&sc, AMP_F32, 1, &one, &c->scale);
    for (int i = 0; ok && i < n; i++) {
        const int64_t *d = &c->size[i];
        float *vw = rnd((size_t)*d, 500 + (uint64_t)i, -1, 1);
        ok = vw && pair_new(&w[i], c->wt[i], 1, d, vw) && pair_new(&g[i], c->gt[i], 1, d, NULL);
        free(vw);
        for (int k = 0; ok && k < ns; k++) {
            float *vm = c->start_step > 0 ? rnd((size_t)*d, 600 + (uint64_t)(i * 2 + k), k ? 1e-4f : -0.1f, 0.1f) : NULL;
            ok = pair_new(&st[k][i], c->mt[i], 1, d, vm);
            free(vm);
        }
    }
    amp_tensor *hin[TN_MAX_IN], *din[TN_MAX_IN];
    hin[0] = lr.h, din[0] = &lr.d;
    hin[1] = step.h, din[1] = &step.d;
    hin[2] = fi.h, din[2] = fi.h ? &fi.d : NULL;
    hin[3] = sc.h, din[3] = sc.h ? &sc.d : NULL;
    for (int i = 0; ok && i < n; i++) {
        hin[4 + i] = w[i].h, din[4 + i] = &w[i].d;
        hin[4 + n + i] = g[i].h, din[4 + n + i] = &g[i].d;
        for (int k = 0; k < ns; k++) hin[4 + (2 + k) * n + i] = st[k][i].h, din[4 + (2 + k) * n + i] = &st[k][i].d;
    }
    tnode t;
    tn_init(&t, c->adamw ? "AdamW" : "SGD");
    tn_i(&t, "n", n);
    if (!c->defaults) {
        tn_f(&t, "weight_decay", c->wd);
        tn_f(&t, "max_grad_norm", c->max_norm);
        if (c->adamw) {
            tn_f(&t, "beta1", c->beta1);
            tn_f(&t, "beta2", c->beta2);
            tn_f(&t, "epsilon", c->eps);
        } else {
            tn_f(&t, "momentum", c->momentum);
            tn_f(&t, "dampening", c->dampening);
            tn_i(&t, "nesterov", c->nesterov);
        }
    }
    amp_status s = ok ? infer_out(&t, nin, hin, &out.h) : AMP_ERR_INTERNAL;
    void *dd = NULL;
    if (!s) s = AMP_CUDA_RT(g_ctx, cudaMalloc(&dd, 4));
    if (!s) amp_tensor_view(&out.d, AMP_F32, out.h->rank, out.h->dims, dd);
    const float gscale = c->scale != 0 ? c->scale : 1.0f;
    size_t part_bytes = 0;
    for (int i = 0; i < n; i++) part_bytes += (size_t)((c->size[i] + AMP_OPTIM_CHUNK - 1) / AMP_OPTIM_CHUNK) * sizeof(double);
    double *part = malloc(part_bytes + sizeof(double));
    if (!part) s = AMP_ERR_NO_MEMORY;
    for (int it = 1; !s && it <= c->steps; it++) {
        const bool skip = it == c->skip_at;
        /* fresh scaled gradients every step; the skipped step's hold an inf */
        for (int i = 0; !s && i < n; i++) {
            float *v = rnd((size_t)c->size[i], 700 + (uint64_t)(it * 31 + i), -gscale, gscale);
            if (v && skip && i == n - 1) v[c->size[i] - 1] = INFINITY;
            if (!v || !pair_set(&g[i], v)) s = AMP_ERR_INTERNAL;
            free(v);
        }
        if (!s && fi.h) {
            const float f = skip ? 1.0f : 0.0f;
            if (!pair_set(&fi, &f)) s = AMP_ERR_INTERNAL;
        }
        /* the device state before a skipped step, to compare every byte after it */
        void *before[1 + 3 * MAXP];
        int nb = 0;
        if (skip) {
            before[nb++] = pair_device_bytes(&step);
            for (int i = 0; i < n; i++) {
                before[nb++] = pair_device_bytes(&w[i]);
                for (int k = 0; k < ns; k++) before[nb++] = pair_device_bytes(&st[k][i]);
            }
        }
        if (!s) s = cpu_optim_run(&t, nin, hin, out.h, part, part_bytes);
        if (!s) s = cuda_run(cu, &t, nin, din, &out.d);
        /* the chunk sums of the norm, double for double (a skipped step computes none) */
        if (!s && !skip)
            CT_CHECK(g_ws_kept && memcmp((char *)g_ws_kept + AMP_CUDA_OPTIM_PART_OFFSET, part, part_bytes) == 0,
                     "%s step %d: the norm's chunk sums differ from the CPU's", c->name, it);
        if (skip) {
            bool same = !s;
            int j = 0;
            const pair *order[1 + 3 * MAXP];
            order[j++] = &step;
            for (int i = 0; i < n; i++) {
                order[j++] = &w[i];
                for (int k = 0; k < ns; k++) order[j++] = &st[k][i];
            }
            for (j = 0; j < nb; j++) {
                void *after = pair_device_bytes(order[j]);
                same = same && before[j] && after && memcmp(before[j], after, order[j]->h->nbytes) == 0;
                free(after);
                free(before[j]);
            }
            if (!s) CT_CHECK(same, "%s: the skipped step %d wrote state", c->name, it);
        }
        if (s) break;
        float norm_dev = 0, norm_cpu = ((float *)out.h->data)[0];
        CT_CHECK(cudaMemcpy(&norm_dev, out.d.data, 4, cudaMemcpyDeviceToHost) == cudaSuccess, "copy");
        /* the norm: the CPU's bits (same chunking, same order of double adds), also on a GPU */
        CT_CHECK(memcmp(&norm_dev, &norm_cpu, 4) == 0, "%s step %d: grad_norm %.9g on CUDA, %.9g on the CPU", c->name,
                 it, norm_dev, norm_cpu);
        CT_CHECK(!skip || (isinf(norm_dev) && norm_dev > 0), "%s: skipped step's grad_norm is %g", c->name, norm_dev);
        CT_SAME(&step, 0.0, "%s step %d: step count", c->name, it);
        for (int i = 0; i < n; i++) {
            CT_SAME(&w[i], tol_state(c->wt[i]), "%s step %d: W%d (%s, %lld elements)", c->name, it, i,
                    amp_dtype_name(c->wt[i]), (long long)c->size[i]);
            for (int k = 0; k < ns; k++)
                CT_SAME(&st[k][i], tol_state(c->mt[i]), "%s step %d: %s%d (%s)", c->name, it, k ? "V" : "M", i,
                        amp_dtype_name(c->mt[i]));
        }
    }
    free(part);
    CT_CHECK(!s, "%s: %s", c->name, amp_context_last_error(g_ctx));
    pair_free(&lr);
    pair_free(&step);
    pair_free(&fi);
    pair_free(&sc);
    pair_free(&out);
    for (int i = 0; i < n; i++) {
        pair_free(&w[i]);
        pair_free(&g[i]);
        for (int k = 0; k < 2; k++) pair_free(&st[k][i]);
    }
}

/* sizes 1, 7, 1000, 4097 (odd, one element, more than one chunk), one dtype for W, G and M */
static ocase small_case(const char *name, bool adamw, amp_dtype wt, amp_dtype gt, amp_dtype mt) {
    ocase c = {.name = name, .adamw = adamw, .lr = adamw ? 1e-3f : 0.05f, .beta1 = 0.9f, .beta2 = 0.999f,
               .eps = 1e-8f, .np = 4, .steps = 3};
    const int64_t sz[4] = {1, 7, 1000, 4097};
    for (int i = 0; i < 4; i++) {
        c.size[i] = sz[i];
        c.wt[i] = wt;
        c.gt[i] = gt;
        c.mt[i] = mt;
    }
    return c;
}

/* 19 parameters (more than one launch's AMP_CUDA_OPTIM_BATCH), odd sizes up to three chunks,
 * every W dtype with gradients of every dtype and state in W's dtype or f32 */
static ocase many_case(const char *name, bool adamw) {
    ocase c = small_case(name, adamw, AMP_F32, AMP_F32, AMP_F32);
    const int64_t sz[19] = {1, 7, 1000, 4097, 33, 4096, 8193, 2, 300, 5, 17, 64, 129, 3, 999, 1, 250, 4095, 12};
    c.np = 19;
    for (int i = 0; i < 19; i++) {
        c.size[i] = sz[i];
        c.wt[i] = float_types[i % 3];
        c.gt[i] = float_types[(i / 3) % 3];
        c.mt[i] = i % 2 ? AMP_F32 : c.wt[i];
    }
    return c;
}

static void run_cases(ocase *cs, int count) {
    amp_cuda cu;
    CT_CHECK(cuda_setup(&cu), "stream");
    for (int i = 0; i < count; i++) {
        optim_case(&cu, &cs[i]);
        if (ct_st.failed) break;
    }
    cuda_teardown(&cu);
}

static void t_sgd(void) {
    ocase cs[6];
    cs[0] = small_case("sgd plain f32, no scale", false, AMP_F32, AMP_F32, AMP_F32);
    cs[1] = small_case("sgd nesterov, clipping, f16 gradients, skip", false, AMP_F32, AMP_F16, AMP_F32);
    cs[1].momentum = 0.9f, cs[1].nesterov = 1, cs[1].wd = 1e-2f, cs[1].max_norm = 0.5f, cs[1].scale = 1024.0f;
    cs[1].steps = 4, cs[1].skip_at = 2;
    cs[2] = small_case("sgd dampening, pure f16, skip last", false, AMP_F16, AMP_F16, AMP_F16);
    cs[2].momentum = 0.9f, cs[2].dampening = 0.1f, cs[2].scale = 256.0f, cs[2].skip_at = 3;
    cs[3] = small_case("sgd pure bf16, f32 gradients, clipping that does not bind", false, AMP_BF16, AMP_F32, AMP_F32);
    cs[3].momentum = 0.5f, cs[3].max_norm = 1e6f, cs[3].wd = 1e-3f;
    cs[4] = many_case("sgd 19 parameters, momentum", false);
    cs[4].momentum = 0.9f, cs[4].scale = 32768.0f, cs[4].skip_at = 2; /* f16 gradients up to 32768 */
    cs[5] = many_case("sgd 19 parameters, no momentum, clipping", false);
    cs[5].max_norm = 0.25f, cs[5].scale = 8.0f, cs[5].steps = 2;
    run_cases(cs, 6);
}

static void t_adamw(void) {
    ocase cs[5];
    cs[0] = small_case("adamw defaults f32", true, AMP_F32, AMP_F32, AMP_F32);
    cs[0].defaults = true;
    cs[1] = small_case("adamw clipping, bf16 gradients, first step skipped", true, AMP_F32, AMP_BF16, AMP_F32);
    cs[1].beta1 = 0.8f, cs[1].beta2 = 0.99f, cs[1].eps = 1e-6f, cs[1].wd = 0.05f, cs[1].max_norm = 1.0f;
    cs[1].scale = 4096.0f, cs[1].steps = 4, cs[1].skip_at = 1;
    cs[2] = small_case("adamw resumed at step 10, pure bf16", true, AMP_BF16, AMP_BF16, AMP_BF16);
    cs[2].start_step = 10.0f, cs[2].wd = 0.01f, cs[2].steps = 2;
    cs[3] = many_case("adamw 19 parameters, clipping, skip", true);
    cs[3].wd = 0.01f, cs[3].max_norm = 0.5f, cs[3].scale = 1024.0f, cs[3].skip_at = 2;
    cs[4] = many_case("adamw 19 parameters, f16 state resumed", true);
    cs[4].wd = 0.1f, cs[4].start_step = 3.0f, cs[4].scale = 2.0f, cs[4].steps = 2;
    run_cases(cs, 5);
}

/* ---- refusals and failures ------------------------------------------------------------------ */

/* a kernel over views without data (plan time) of the given dtypes, all of shape dims */
typedef struct vkernel {
    tnode t;
    amp_tensor v[8], o;
    amp_tensor *in[8], *out[1];
    amp_kernel k;
} vkernel;

static void vk_init(vkernel *vk, const char *op, int nin, const amp_dtype *dt, amp_dtype out_dt) {
    memset(vk, 0, sizeof *vk);
    tn_init(&vk->t, op);
    const int64_t one = 1, mat[2] = {3, 5};
    for (int i = 0; i < nin; i++) {
        const bool gemm = vk->t.node.op == AMP_OP_GEMM_C_GRAD;
        amp_tensor_view(&vk->v[i], dt[i], gemm && i == 0 ? 2 : 1, gemm && i == 0 ? mat : gemm ? &mat[1] : &one, NULL);
        vk->in[i] = &vk->v[i];
    }
    amp_tensor_view(&vk->o, out_dt, 1, &one, NULL);
    vk->out[0] = &vk->o;
    vk->k = dev_kernel(&vk->t, nin, vk->in, vk->out);
}

/* supports() says no and prepare() fails naming the op, the input and its dtype */
static bool refused(amp_cuda *cu, vkernel *vk, const char *dtype_name, char *msg, size_t cap) {
    const amp_cuda_op *e = cuda_entry(vk->t.node.op);
    void *state = NULL;
    size_t ws = 0;
    if (!e || e->supports(cu, &vk->k)) return snprintf(msg, cap, "supported"), false;
    amp_status s = e->prepare(cu, &vk->k, &state, &ws);
    snprintf(msg, cap, "%s", amp_context_last_error(g_ctx));
    return s == AMP_ERR_UNSUPPORTED && strstr(msg, vk->t.node.op_type) && strstr(msg, dtype_name) &&
           strstr(msg, "test");
}

static void t_refusals(void) {
    amp_cuda cu;
    CT_CHECK(cuda_setup(&cu), "stream");
    char msg[512];
    vkernel vk;
    const amp_dtype f32 = AMP_F32, f64 = AMP_F64, f16 = AMP_F16, bf16 = AMP_BF16, i32 = AMP_I32, b = AMP_BOOL;

    vk_init(&vk, "GemmCGrad", 2, (amp_dtype[]){f32, f32}, f32);
    CT_CHECK(cuda_entry(vk.t.node.op)->supports(&cu, &vk.k), "GemmCGrad f32 is supported");
    vk_init(&vk, "GemmCGrad", 2, (amp_dtype[]){f64, f64}, f64);
    CT_CHECK(refused(&cu, &vk, "float64", msg, sizeof msg), "GemmCGrad f64: %s", msg);

    vk_init(&vk, "UnscaleCheck", 3, (amp_dtype[]){f32, f64, bf16}, b);
    CT_CHECK(cuda_entry(vk.t.node.op)->supports(&cu, &vk.k), "UnscaleCheck f64 and bf16 are supported");
    vk_init(&vk, "UnscaleCheck", 3, (amp_dtype[]){f32, f16, i32}, b);
    CT_CHECK(refused(&cu, &vk, "int32", msg, sizeof msg), "UnscaleCheck int32: %s", msg);
    vk_init(&vk, "UnscaleCheck", 2, (amp_dtype[]){f16, f16}, b);
    CT_CHECK(refused(&cu, &vk, "float16", msg, sizeof msg), "UnscaleCheck f16 scale: %s", msg);

    /* SGD n 1 with momentum: lr, step, found_inf, scale, W, G, M */
    vk_init(&vk, "SGD", 7, (amp_dtype[]){f32, f32, b, f32, bf16, f16, f32}, f32);
    tn_i(&vk.t, "n", 1);
    tn_f(&vk.t, "momentum", 0.9f);
    CT_CHECK(cuda_entry(vk.t.node.op)->supports(&cu, &vk.k), "SGD bf16 W, f16 G, f32 M is supported");
    vk.v[6].dtype = f16;
    CT_CHECK(refused(&cu, &vk, "float16", msg, sizeof msg), "SGD f16 M for a bf16 W: %s", msg);
    vk.v[6].dtype = f32;
    vk.v[4].dtype = f64;
    CT_CHECK(refused(&cu, &vk, "float64", msg, sizeof msg), "SGD f64 W: %s", msg);
    vk.v[4].dtype = f32;
    vk.v[0].dtype = f16;
    CT_CHECK(refused(&cu, &vk, "float16", msg, sizeof msg), "SGD f16 lr: %s", msg);

    vk_init(&vk, "AdamW", 8, (amp_dtype[]){f32, f32, b, f32, f32, i32, f32, f32}, f32);
    tn_i(&vk.t, "n", 1);
    CT_CHECK(refused(&cu, &vk, "int32", msg, sizeof msg), "AdamW int32 G: %s", msg);

    vk_init(&vk, "LossScaleUpdate", 3, (amp_dtype[]){f32, f32, b}, f32);
    CT_CHECK(cuda_entry(vk.t.node.op)->supports(&cu, &vk.k), "LossScaleUpdate is supported");
    vk_init(&vk, "LossScaleUpdate", 3, (amp_dtype[]){f32, f32, f32}, f32);
    CT_CHECK(refused(&cu, &vk, "float32", msg, sizeof msg), "LossScaleUpdate f32 found_inf: %s", msg);
    cuda_teardown(&cu);
}

/* A host pointer among an optimizer's tensors (beyond the first launch's batch), and a short
 * workspace: the step fails naming the node, and no device byte changes. */
static void t_optim_failures(void) {
    amp_cuda cu;
    CT_CHECK(cuda_setup(&cu), "stream");
    enum { NP = 18 };
    const int64_t one = 1, sz = 5;
    const float lr_v = 0.1f, zero = 0.0f;
    pair lr, step, w[NP], g[NP];
    bool ok = pair_new(&lr, AMP_F32, 1, &one, &lr_v) && pair_new(&step, AMP_F32, 1, &one, &zero);
    float *v = rnd((size_t)sz, 3, -1, 1);
    for (int i = 0; i < NP; i++) ok = ok && v && pair_new(&w[i], AMP_F32, 1, &sz, v) && pair_new(&g[i], AMP_F32, 1, &sz, v);
    free(v);
    CT_CHECK(ok, "inputs");
    tnode t;
    tn_init(&t, "SGD");
    tn_i(&t, "n", NP);
    amp_tensor host_w, out, *din[4 + 2 * NP] = {&lr.d, &step.d, NULL, NULL};
    for (int i = 0; i < NP; i++) {
        din[4 + i] = &w[i].d;
        din[4 + NP + i] = &g[i].d;
    }
    void *dout = NULL;
    CT_CHECK(cudaMalloc(&dout, 4) == cudaSuccess, "output");
    amp_tensor_view(&out, AMP_F32, 1, &one, dout);
    void *w0 = pair_device_bytes(&w[0]), *s0 = pair_device_bytes(&step);

    /* W 17 in host memory */
    amp_tensor_view(&host_w, AMP_F32, 1, &sz, w[17].h->data);
    din[4 + 17] = &host_w;
    amp_status st = cuda_run(&cu, &t, 4 + 2 * NP, din, &out);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", amp_context_last_error(g_ctx));
    din[4 + 17] = &w[17].d;
    void *w0b = pair_device_bytes(&w[0]), *s0b = pair_device_bytes(&step);
    const bool unchanged = w0 && s0 && w0b && s0b && !memcmp(w0, w0b, 20) && !memcmp(s0, s0b, 4);
    free(w0b);
    free(s0b);

    /* a workspace one byte short of what prepare asked for */
    const amp_cuda_op *e = cuda_entry(t.node.op);
    amp_tensor *outs[1] = {&out};
    amp_kernel k = dev_kernel(&t, 4 + 2 * NP, din, outs);
    void *state = NULL, *ws = NULL;
    size_t ws_bytes = 0;
    amp_status s2 = e->prepare(&cu, &k, &state, &ws_bytes);
    if (!s2) s2 = AMP_CUDA_RT(g_ctx, cudaMalloc(&ws, ws_bytes));
    k.ws = ws;
    k.ws_bytes = ws_bytes - 1;
    if (!s2) s2 = e->run(&cu, &k, state);
    char msg2[512];
    snprintf(msg2, sizeof msg2, "%s", amp_context_last_error(g_ctx));
    cudaFree(ws);
    void *w0c = pair_device_bytes(&w[0]);
    const bool unchanged2 = w0 && w0c && !memcmp(w0, w0c, 20);
    free(w0c);
    free(w0);
    free(s0);
    cudaFree(dout);
    pair_free(&lr);
    pair_free(&step);
    for (int i = 0; i < NP; i++) {
        pair_free(&w[i]);
        pair_free(&g[i]);
    }
    cuda_teardown(&cu);
    CT_CHECK(st == AMP_ERR_BACKEND && strstr(msg, "invalid device pointer") && strstr(msg, "test"),
             "host W: status %d, %s", st, msg);
    CT_CHECK(unchanged, "a refused step wrote device state");
    CT_CHECK(s2 == AMP_ERR_INTERNAL && strstr(msg2, "workspace"), "short workspace: status %d, %s", s2, msg2);
    CT_CHECK(unchanged2, "a step with a short workspace wrote device state");
}

static const ct_case cases[] = {
    {"reduce_channels", t_reduce_channels},
    {"reduce_empty", t_reduce_empty},
    {"reduce_planted_no_barrier", t_reduce_planted_no_barrier},
    {"gemm_c_grad", t_gemm_c_grad},
    {"unscale_check", t_unscale_check},
    {"loss_scale_update", t_loss_scale_update},
    {"sgd", t_sgd},
    {"adamw", t_adamw},
    {"refusals", t_refusals},
    {"optim_failures", t_optim_failures},
    {NULL, NULL},
};

int main(int argc, char **argv) {
    int rc = ct_main(argc, argv, cases);
    free(g_ws_kept);
    amp_context_destroy(g_ctx);
    return rc;
}
