/* CPU kernels of the optimizer and loss-scaling ops: UnscaleCheck, SGD, AdamW,
 * LossScaleUpdate. ir/ops/optim.def documents their semantics; inference has checked every
 * dtype, shape and count. These kernels write their state INPUTS in place (parameters,
 * moments, step, loss scale, tracker): the one sanctioned exception to read-only inputs.
 *
 * Determinism: the global gradient norm is a sum of per-chunk sums of squares (double,
 * AMP_OPTIM_CHUNK elements each) added in chunk order, and every element update is
 * independent, so results do not depend on the thread count. */
#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/optim.h"

#define OPTIM_PAR_MIN 32768 /* elements below which a loop stays on one thread */

/* f32/f16/bf16 element access in f32 (inference admits no other dtype for W, G, M, V) */
static inline float ldf(amp_dtype t, const void *p, int64_t i) {
    switch (t) {
    case AMP_F16: return amp_f16_to_f32(((const uint16_t *)p)[i]);
    case AMP_BF16: return amp_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static inline void stf(amp_dtype t, void *p, int64_t i, float v) {
    switch (t) {
    case AMP_F16: ((uint16_t *)p)[i] = amp_f32_to_f16(v); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

static float scalar_f32(const amp_tensor *t, float def) { return t ? ((const float *)t->data)[0] : def; }
static bool scalar_bool(const amp_tensor *t) { return t && ((const uint8_t *)t->data)[0] != 0; }

/* 1/scale as GradScaler forms it: reciprocal in double, rounded to f32 */
static float inv_scale_of(const amp_tensor *scale) {
    return scale ? (float)(1.0 / (double)((const float *)scale->data)[0]) : 1.0f;
}

static int64_t n_chunks(int64_t numel) { return (numel + AMP_OPTIM_CHUNK - 1) / AMP_OPTIM_CHUNK; }

amp_status amp_cpu_unscale_check(amp_kernel *k) {
    const float inv = inv_scale_of(k->in[0]);
    int bad = 0;
    for (int i = 1; i < k->nin && !bad; i++) {
        const amp_tensor *g = k->in[i];
        const amp_dtype dt = g->dtype;
        const void *p = g->data;
        const int64_t n = g->numel;
        int found = 0;
        AMP_PAR_FOR(n >= OPTIM_PAR_MIN, num_threads(k->threads) reduction(| : found),
        for (int64_t j = 0; j < n; j++) found |= amp_unscale_bad(amp_ld(dt, p, j), inv););
        bad = found;
    }
    ((uint8_t *)k->out[0]->data)[0] = bad ? 1 : 0;
    return AMP_OK;
}

/* Chunk [lo, lo + len) of a gradient, unscaled, into g[] (f32); returns its sum of squares.
 * Four partial sums in a fixed pattern keep the adds independent (the loop is otherwise bound
 * by the latency of one double add) and still give the same bits for any thread count. */
static double load_unscaled(amp_dtype dt, const void *p, int64_t lo, int64_t len, float inv, float *g) {
    if (dt == AMP_F32) memcpy(g, (const float *)p + lo, sizeof(float) * (size_t)len);
    else amp_widen16(dt, (const uint16_t *)p + lo, g, len);
    double s[4] = {0, 0, 0, 0};
    for (int64_t j = 0; j < len; j++) {
        g[j] *= inv;
        s[j & 3] += (double)g[j] * g[j];
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Per-chunk sums of squares of one unscaled gradient into part[0..n_chunks). */
static void chunk_sumsq(const amp_tensor *g, float inv, double *part, int threads) {
    const amp_dtype dt = g->dtype;
    const void *p = g->data;
    const int64_t n = g->numel, nch = n_chunks(n);
    AMP_PAR_FOR(n >= OPTIM_PAR_MIN, num_threads(threads),
    for (int64_t c = 0; c < nch; c++) {
        float buf[AMP_OPTIM_CHUNK];
        const int64_t lo = c * AMP_OPTIM_CHUNK, len = n - lo < AMP_OPTIM_CHUNK ? n - lo : AMP_OPTIM_CHUNK;
        part[c] = load_unscaled(dt, p, lo, len, inv, buf);
    });
}

static double sum_in_order(const double *part, int64_t count) {
    double s = 0;
    for (int64_t c = 0; c < count; c++) s += part[c];
    return s;
}

enum { OPT_SGD, OPT_ADAMW };

/* What SGD and AdamW share: inputs lr, step, found_inf, scale, W[n], G[n], then the state
 * groups; output grad_norm. */
typedef struct optim_args {
    amp_kernel *k;
    int kind;
    int n;
    float lr, step, inv;
    float clip_max; /* max_grad_norm, 0 when off */
    double *part;   /* workspace: one double per chunk of every gradient */
} optim_args;

static amp_tensor *in_w(const optim_args *a, int i) { return a->k->in[4 + i]; }
static amp_tensor *in_g(const optim_args *a, int i) { return a->k->in[4 + a->n + i]; }
static amp_tensor *in_state(const optim_args *a, int group, int i) { return a->k->in[4 + (2 + group) * a->n + i]; }

/* Update parameter i over its chunks; when part is not NULL, also store the chunks' sums of
 * squares of the unscaled gradient (the norm comes for free when there is no clipping). */
static void update_param(const optim_args *a, int i, float clip, const amp_sgd_hp *sgd, bool first,
                         const amp_adamw_hp *adam, double *part) {
    amp_tensor *w = in_w(a, i);
    const amp_tensor *g = in_g(a, i);
    amp_tensor *m = NULL, *v = NULL;
    if (a->kind == OPT_ADAMW) {
        m = in_state(a, 0, i);
        v = in_state(a, 1, i);
    } else if (sgd->momentum != 0.0f) {
        m = in_state(a, 0, i);
    }
    const amp_dtype wt = w->dtype, gt = g->dtype, mt = m ? m->dtype : AMP_F32, vt = v ? v->dtype : AMP_F32;
    void *wp = w->data, *mp = m ? m->data : NULL, *vp = v ? v->data : NULL;
    const void *gp = g->data;
    /* master weights with f32 state, the common case: straight f32 loops */
    const bool all_f32 = wt == AMP_F32 && mt == AMP_F32 && vt == AMP_F32;
    const float inv = a->inv;
    const int64_t n = w->numel, nch = n_chunks(n);
    const int kind = a->kind;
    AMP_PAR_FOR(n >= OPTIM_PAR_MIN, num_threads(a->k->threads),
    for (int64_t c = 0; c < nch; c++) {
        float gb[AMP_OPTIM_CHUNK];
        const int64_t lo = c * AMP_OPTIM_CHUNK, len = n - lo < AMP_OPTIM_CHUNK ? n - lo : AMP_OPTIM_CHUNK;
        const double s = load_unscaled(gt, gp, lo, len, inv, gb);
        if (part) part[c] = s;
        if (clip != 1.0f)
            for (int64_t j = 0; j < len; j++) gb[j] *= clip;
        if (all_f32) {
            float *wf = (float *)wp + lo, *mf = mp ? (float *)mp + lo : NULL, *vf = vp ? (float *)vp + lo : NULL;
            if (kind == OPT_ADAMW) {
                for (int64_t j = 0; j < len; j++) wf[j] = amp_adamw_elem(wf[j], gb[j], &mf[j], &vf[j], adam);
            } else if (mf) {
                for (int64_t j = 0; j < len; j++) wf[j] = amp_sgd_elem(wf[j], gb[j], &mf[j], first, sgd);
            } else {
                for (int64_t j = 0; j < len; j++) {
                    float unused = 0.0f;
                    wf[j] = amp_sgd_elem(wf[j], gb[j], &unused, first, sgd);
                }
            }
            continue;
        }
        for (int64_t j = 0; j < len; j++) {
            const int64_t e = lo + j;
            float wj = ldf(wt, wp, e);
            float mj = mp ? ldf(mt, mp, e) : 0.0f;
            if (kind == OPT_ADAMW) {
                float vj = ldf(vt, vp, e);
                wj = amp_adamw_elem(wj, gb[j], &mj, &vj, adam);
                stf(vt, vp, e, vj);
            } else {
                wj = amp_sgd_elem(wj, gb[j], &mj, first, sgd);
            }
            stf(wt, wp, e, wj);
            if (mp) stf(mt, mp, e, mj);
        }
    });
}

/* SGD and AdamW: one double per chunk of every gradient, the partial sums of squares of the global
 * norm. Inputs: lr, step, found_inf, scale, then the n parameters. */
amp_status amp_cpu_ws_optim(const amp_kernel *k, size_t *bytes) {
    const int64_t n = amp_attr_int(k->n, "n", 0);
    if (n < 0 || n > k->nin - 4)
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "attribute n does not fit the inputs");
    int64_t chunks = 0;
    for (int64_t i = 0; i < n; i++) {
        const amp_tensor *w = k->in[4 + i];
        if (!w) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "parameter %lld is missing", (long long)i);
        chunks += n_chunks(w->numel);
    }
    return amp_cpu_ws_elems(k, chunks, sizeof(double), bytes);
}

static amp_status optim_run(amp_kernel *k, int kind) {
    const amp_node *node = k->n;
    optim_args a = {.k = k, .kind = kind, .n = (int)amp_attr_int(node, "n", 0)};
    float *step = k->in[1]->data;
    float *out = k->out[0]->data;
    if (scalar_bool(k->in[2])) {
        /* skipped step: nothing is read or written but the output */
        out[0] = INFINITY;
        return AMP_OK;
    }
    a.lr = scalar_f32(k->in[0], 0.0f);
    a.step = step[0];
    a.inv = inv_scale_of(k->in[3]);
    a.clip_max = amp_attr_float(node, "max_grad_norm", 0.0f);

    int64_t total_chunks = 0;
    for (int i = 0; i < a.n; i++) total_chunks += n_chunks(in_w(&a, i)->numel);
    if (k->ws_bytes < (size_t)total_chunks * sizeof(double))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace of %zu bytes is smaller than the %lld the norm needs",
                               k->ws_bytes, (long long)total_chunks * (long long)sizeof(double));
    a.part = k->ws;

    amp_sgd_hp sgd = {0};
    amp_adamw_hp adam = {0};
    bool first = false;
    float new_step = a.step + 1.0f;
    if (kind == OPT_SGD) {
        sgd.lr = a.lr;
        sgd.momentum = amp_attr_float(node, "momentum", 0.0f);
        sgd.dampening = amp_attr_float(node, "dampening", 0.0f);
        sgd.weight_decay = amp_attr_float(node, "weight_decay", 0.0f);
        sgd.nesterov = amp_attr_int(node, "nesterov", 0) != 0;
        first = a.step <= 0.0f;
    } else {
        const double b1 = amp_attr_float(node, "beta1", 0.9f), b2 = amp_attr_float(node, "beta2", 0.999f);
        const double wd = amp_attr_float(node, "weight_decay", 0.01f);
        adam.beta1 = (float)b1;
        adam.beta2 = (float)b2;
        adam.eps = amp_attr_float(node, "epsilon", 1e-8f);
        adam.decay = (float)(1.0 - (double)a.lr * wd);
        /* bias corrections use the incremented step, in double as torch's Python floats */
        adam.step_size = (float)((double)a.lr / (1.0 - pow(b1, new_step)));
        adam.bc2_sqrt = (float)sqrt(1.0 - pow(b2, new_step));
    }

    /* with clipping the norm is needed before any update: one pass for it, one to update;
     * without, the update pass records the chunk sums on the way */
    const bool clipping = a.clip_max > 0.0f;
    double total_norm = 0;
    if (clipping) {
        int64_t off = 0;
        for (int i = 0; i < a.n; i++) {
            const amp_tensor *g = in_g(&a, i);
            chunk_sumsq(g, a.inv, a.part + off, k->threads);
            off += n_chunks(g->numel);
        }
        total_norm = sqrt(sum_in_order(a.part, total_chunks));
    }
    const float clip = clipping ? amp_clip_coef(total_norm, a.clip_max) : 1.0f;
    int64_t off = 0;
    for (int i = 0; i < a.n; i++) {
        update_param(&a, i, clip, &sgd, first, &adam, clipping ? NULL : a.part + off);
        off += n_chunks(in_w(&a, i)->numel);
    }
    if (!clipping) total_norm = sqrt(sum_in_order(a.part, total_chunks));

    step[0] = new_step;
    out[0] = (float)total_norm;
    return AMP_OK;
}

amp_status amp_cpu_optim_sgd(amp_kernel *k) { return optim_run(k, OPT_SGD); }

amp_status amp_cpu_optim_adamw(amp_kernel *k) { return optim_run(k, OPT_ADAMW); }

amp_status amp_cpu_loss_scale_update(amp_kernel *k) {
    float *scale = k->in[0]->data, *tracker = k->in[1]->data;
    const float interval = (float)amp_attr_int(k->n, "growth_interval", 2000);
    amp_loss_scale_step(scale, tracker, scalar_bool(k->in[2]), interval, amp_attr_float(k->n, "growth_factor", 2.0f),
                        amp_attr_float(k->n, "backoff_factor", 0.5f));
    ((float *)k->out[0]->data)[0] = scale[0];
    return AMP_OK;
}
