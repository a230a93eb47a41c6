/* CPU kernels of the norm family: BatchNormalization, InstanceNormalization, LayerNormalization
 * (GroupNormalization, LRN and MeanVarianceNormalization are in backends/cpu/norm.c).
 * Statistics accumulate in double with two passes (mean, then squared deviations), so
 * 16-bit storage of large values (|x| ~ 3e4 in f16) never overflows or cancels. */
#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define NORM_PAR_MIN 32768

/* ---- BatchNormalization ------------------------------------------------------------------ */

/* Training mode, decided the same way as amp_infer_batch_norm: opset >= 14 by the
 * training_mode attribute; before that by asking for the running-statistics outputs (opsets
 * 1-6 also by is_test=0). */
static bool bn_training(const amp_kernel *k) {
    if (k->opset >= 14) return amp_attr_int(k->n, "training_mode", 0) != 0;
    if (k->nout < 2 || !k->out[1]) return false;
    return k->opset >= 7 || amp_attr_int(k->n, "is_test", 0) == 0;
}

amp_status amp_cpu_batch_norm(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *sc = k->in[1], *bi = k->in[2], *mn = k->in[3], *vr = k->in[4];
    amp_tensor *y = k->out[0];
    const double eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    const double mom = amp_attr_float(k->n, "momentum", 0.9f);
    /* Channels: dim 1 (1 for a 1-D input); with opset < 9 spatial=0 the parameters cover every
     * activation C x D1 x ..., which is the same loop with a spatial size of 1. */
    int64_t n = x->dims[0], ch, sp = 1;
    if (sc->rank > 1) {
        ch = sc->numel;
    } else {
        ch = x->rank > 1 ? x->dims[1] : 1;
        for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    }
    const amp_dtype xt = x->dtype, yt = y->dtype;
    const bool big = x->numel >= NORM_PAR_MIN;

    if (!bn_training(k)) {
        AMP_PAR_FOR(big, num_threads(k->threads),
        for (int64_t nc = 0; nc < n * ch; nc++) {
            int64_t c = nc % ch;
            double a = amp_ld(sc->dtype, sc->data, c) / sqrt(amp_ld(vr->dtype, vr->data, c) + eps);
            double b = amp_ld(bi->dtype, bi->data, c) - amp_ld(mn->dtype, mn->data, c) * a;
            const int64_t base = nc * sp;
            for (int64_t s = 0; s < sp; s++) amp_st(yt, y->data, base + s, amp_ld(xt, x->data, base + s) * a + b);
        });
        return AMP_OK;
    }

    /* Training: normalise with the batch statistics (population variance, as the ONNX
     * reference does) and update the running ones: running = stored*momentum + batch*(1-momentum). */
    amp_tensor *rmean = k->nout > 1 ? k->out[1] : NULL, *rvar = k->nout > 2 ? k->out[2] : NULL;
    amp_tensor *smean = k->nout > 3 ? k->out[3] : NULL, *sinv = k->nout > 4 ? k->out[4] : NULL;
    const double cnt = (double)(n * sp);
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t c = 0; c < ch; c++) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) sum += amp_ld(xt, x->data, (i * ch + c) * sp + s);
        const double mean = sum / cnt;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                double dv = amp_ld(xt, x->data, (i * ch + c) * sp + s) - mean;
                sq += dv * dv;
            }
        const double var = sq / cnt, inv = 1.0 / sqrt(var + eps);
        const double a = amp_ld(sc->dtype, sc->data, c) * inv;
        const double b = amp_ld(bi->dtype, bi->data, c) - mean * a;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                int64_t at = (i * ch + c) * sp + s;
                amp_st(yt, y->data, at, amp_ld(xt, x->data, at) * a + b);
            }
        if (rmean) amp_st(rmean->dtype, rmean->data, c, amp_ld(mn->dtype, mn->data, c) * mom + mean * (1 - mom));
        if (rvar) amp_st(rvar->dtype, rvar->data, c, amp_ld(vr->dtype, vr->data, c) * mom + var * (1 - mom));
        /* Opsets 7-13: saved_mean is the batch mean and saved_var the inverse standard deviation,
         * what onnxruntime's training kernel stores for the backward pass. */
        if (smean) amp_st(smean->dtype, smean->data, c, mean);
        if (sinv) amp_st(sinv->dtype, sinv->data, c, inv);
    });
    return AMP_OK;
}

/* ---- InstanceNormalization --------------------------------------------------------------- */

amp_status amp_cpu_instance_norm(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *sc = k->in[1], *bi = k->in[2];
    amp_tensor *y = k->out[0];
    const double eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    const int64_t ch = x->dims[1], n = x->dims[0];
    int64_t sp = 1;
    for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    const amp_dtype xt = x->dtype, yt = y->dtype;
    const bool big = x->numel >= NORM_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t nc = 0; nc < n * ch; nc++) {
        const int64_t base = nc * sp, c = nc % ch;
        double sum = 0, sq = 0;
        for (int64_t s = 0; s < sp; s++) sum += amp_ld(xt, x->data, base + s);
        const double mean = sum / (double)sp;
        for (int64_t s = 0; s < sp; s++) {
            double dv = amp_ld(xt, x->data, base + s) - mean;
            sq += dv * dv;
        }
        const double a = amp_ld(sc->dtype, sc->data, c) / sqrt(sq / (double)sp + eps);
        const double b = amp_ld(bi->dtype, bi->data, c) - mean * a;
        for (int64_t s = 0; s < sp; s++) amp_st(yt, y->data, base + s, amp_ld(xt, x->data, base + s) * a + b);
    });
    return AMP_OK;
}

/* ---- LayerNormalization ------------------------------------------------------------------ */

/* Where Scale or B sits for an element of X under one-way broadcasting. The usual case (the
 * parameter spans exactly the normalised dims) indexes by the column; a parameter that is all
 * ones indexes 0; anything else walks X's index. */
typedef struct bparam {
    const amp_tensor *t;
    enum { BP_COLUMN, BP_SCALAR, BP_GENERAL } mode;
    int64_t st[AMP_MAX_RANK]; /* stride of the parameter along each X dim (0 when broadcast) */
} bparam;

static void bparam_init(bparam *p, const amp_tensor *t, const amp_tensor *x, int axis) {
    p->t = t;
    if (!t) return;
    int off = x->rank - t->rank;
    int64_t pst[AMP_MAX_RANK];
    amp_strides(t->rank, t->dims, pst);
    bool all_one = true, column = true;
    for (int d = 0; d < x->rank; d++) {
        int64_t pd = d >= off ? t->dims[d - off] : 1;
        p->st[d] = pd == 1 ? 0 : pst[d - off];
        if (pd != 1) all_one = false;
        if (d < axis ? pd != 1 : pd != x->dims[d]) column = false;
    }
    p->mode = all_one ? BP_SCALAR : column ? BP_COLUMN : BP_GENERAL;
}

static inline double bparam_ld(const bparam *p, const amp_tensor *x, int64_t flat, int64_t col) {
    switch (p->mode) {
    case BP_COLUMN: return amp_ld(p->t->dtype, p->t->data, col);
    case BP_SCALAR: return amp_ld(p->t->dtype, p->t->data, 0);
    default: {
        int64_t at = 0;
        for (int d = x->rank - 1; d >= 0; d--) {
            at += (flat % x->dims[d]) * p->st[d];
            flat /= x->dims[d];
        }
        return amp_ld(p->t->dtype, p->t->data, at);
    }
    }
}

amp_status amp_cpu_layer_norm(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    amp_tensor *omean = k->nout > 1 ? k->out[1] : NULL, *oinv = k->nout > 2 ? k->out[2] : NULL;
    const double eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    int64_t axis = amp_attr_int(k->n, "axis", -1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    int64_t rows = 1, cols = 1;
    for (int d = 0; d < x->rank; d++) *(d < axis ? &rows : &cols) *= x->dims[d];
    bparam ps, pb;
    bparam_init(&ps, k->in[1], x, (int)axis);
    bparam_init(&pb, k->nin > 2 ? k->in[2] : NULL, x, (int)axis);
    const amp_dtype xt = x->dtype, yt = y->dtype;
    const bool big = x->numel >= NORM_PAR_MIN;
    if (xt == AMP_F32 && yt == AMP_F32 && ps.mode == BP_COLUMN && ps.t->dtype == AMP_F32 &&
        (!pb.t || (pb.mode == BP_COLUMN && pb.t->dtype == AMP_F32))) {
        /* the common case (f32, per-column scale and bias): no per-element dtype dispatch */
        const float *xs = x->data, *sc = ps.t->data, *bi = pb.t ? pb.t->data : NULL;
        float *ys = y->data;
        AMP_PAR_FOR(big, num_threads(k->threads),
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = xs + r * cols;
            float *yr = ys + r * cols;
            double sum = 0, sq = 0;
            for (int64_t j = 0; j < cols; j++) sum += xr[j];
            const double mean = sum / (double)cols;
            for (int64_t j = 0; j < cols; j++) sq += ((double)xr[j] - mean) * ((double)xr[j] - mean);
            const double inv = 1.0 / sqrt(sq / (double)cols + eps);
            const float fm = (float)mean, fi = (float)inv;
            if (bi)
                for (int64_t j = 0; j < cols; j++) yr[j] = (xr[j] - fm) * fi * sc[j] + bi[j];
            else
                for (int64_t j = 0; j < cols; j++) yr[j] = (xr[j] - fm) * fi * sc[j];
            if (omean) amp_st(omean->dtype, omean->data, r, mean);
            if (oinv) amp_st(oinv->dtype, oinv->data, r, inv);
        });
        return AMP_OK;
    }
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = r * cols;
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < cols; j++) sum += amp_ld(xt, x->data, base + j);
        const double mean = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++) {
            double dv = amp_ld(xt, x->data, base + j) - mean;
            sq += dv * dv;
        }
        const double inv = 1.0 / sqrt(sq / (double)cols + eps);
        for (int64_t j = 0; j < cols; j++) {
            double v = (amp_ld(xt, x->data, base + j) - mean) * inv * bparam_ld(&ps, x, base + j, j);
            if (pb.t) v += bparam_ld(&pb, x, base + j, j);
            amp_st(yt, y->data, base + j, v);
        }
        /* Mean and InvStdDev are stored in stash_type (f32 by default), whatever X's dtype. */
        if (omean) amp_st(omean->dtype, omean->data, r, mean);
        if (oinv) amp_st(oinv->dtype, oinv->data, r, inv);
    });
    return AMP_OK;
}
