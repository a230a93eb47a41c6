/* CPU kernels of the fused family (ir/ops/fused.def): the reference the CUDA kernels are tested
 * against, and what a fused graph runs on the CPU in the tests that compare fused and unfused
 * graphs. Where a fused op is an existing op plus a step (FusedConv, AddLayerNorm, CastMulti) the
 * existing kernel does the shared part, so the results are bit for bit the unfused ones. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/vmath.h"
#include "backends/elementwise.h"

static bool is16(amp_dtype t) { return t == AMP_F16 || t == AMP_BF16; }

/* f32 value v rounded to 16-bit dtype t and back (what storing it in t keeps). */
static float round16(amp_dtype t, float v) {
    return t == AMP_F16 ? amp_f16_to_f32(amp_f32_to_f16(v)) : amp_bf16_to_f32(amp_f32_to_bf16(v));
}

/* A view of the same dtype and dims as t over other memory. */
static amp_tensor view_at(const amp_tensor *t, void *data) {
    amp_tensor v = *t;
    v.data = data;
    return v;
}

/* ---- FusedGemm ---------------------------------------------------------------------------- */

typedef enum act_kind { ACT_NONE, ACT_RELU, ACT_GELU, ACT_GELU_TANH } act_kind;

static act_kind act_of(const amp_node *n) {
    const char *a = amp_attr_str(n, "activation", "");
    if (!strcmp(a, "Relu")) return ACT_RELU;
    if (!strcmp(a, "Gelu")) return ACT_GELU;
    if (!strcmp(a, "GeluTanh")) return ACT_GELU_TANH;
    return ACT_NONE;
}

static double act_d(act_kind a, double v) {
    switch (a) {
    case ACT_RELU: return amp_relu_d(v);
    case ACT_GELU: return amp_gelu_d(v);
    case ACT_GELU_TANH: return amp_gelu_tanh_d(v);
    default: return v;
    }
}

/* The f32 epilogue y = act(v) over n values (y may be v): the GELUs through the vector functions
 * of backends/cpu/vmath.c. */
static void act_f32(act_kind act, const float *v, float *y, int64_t n) {
    if (act == ACT_GELU) amp_vgeluf(v, y, n);
    else if (act == ACT_GELU_TANH) amp_vgelu_tanhf(v, y, n);
    else if (act == ACT_RELU)
        for (int64_t i = 0; i < n; i++) y[i] = amp_relu_f(v[i]);
    else if (y != v) memcpy(y, v, sizeof(float) * (size_t)n);
}

/* 16-bit: A, B and v widened to f32 in the workspace. */
amp_status amp_cpu_ws_fused_gemm(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *A = k->in[0], *B = k->in[1], *Y = k->out[0];
    *bytes = 0;
    if (!is16(A->dtype)) return AMP_OK;
    int64_t t;
    if (__builtin_add_overflow(A->numel, B->numel, &t) || __builtin_add_overflow(t, Y->numel, &t))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return amp_cpu_ws_elems(k, t, sizeof(float), bytes);
}

amp_status amp_cpu_fused_gemm(amp_kernel *k) {
    const amp_tensor *A = k->in[0], *B = k->in[1], *bias = k->nin > 2 ? k->in[2] : NULL;
    amp_tensor *Y = k->out[0], *Z = k->nout > 1 ? k->out[1] : NULL;
    const int tb = amp_attr_int(k->n, "trans_b", 0) != 0;
    const double alpha = amp_attr_float(k->n, "alpha", 1.0f);
    const act_kind act = act_of(k->n);
    const int64_t K = A->dims[A->rank - 1], N = Y->dims[Y->rank - 1], M = K ? A->numel / K : Y->numel / (N ? N : 1);
    if (M * N == 0) return AMP_OK;
    const amp_dtype dt = A->dtype;
    if (dt == AMP_F64) {
        double *v = Z ? Z->data : Y->data, *y = Y->data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) v[m * N + n] = bias ? ((const double *)bias->data)[n] : 0.0;
        if (K) amp_cpu_dgemm(amp_cpu_threads(k), 0, tb, M, N, K, alpha, A->data, K, B->data, tb ? K : N, 1.0, v, N);
        for (int64_t i = 0; i < M * N; i++) y[i] = act_d(act, v[i]);
        return AMP_OK;
    }
    if (dt != AMP_F32 && !is16(dt))
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(dt));
    float *a = A->data, *b = B->data, *v = Z ? Z->data : Y->data;
    if (is16(dt)) {
        size_t need = sizeof(float) * (size_t)(A->numel + B->numel + Y->numel);
        if (!k->ws || k->ws_bytes < need) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        a = k->ws;
        b = a + A->numel;
        v = b + B->numel;
        amp_widen16(dt, A->data, a, A->numel);
        amp_widen16(dt, B->data, b, B->numel);
    }
    /* the bias first and the product added onto it, as the CPU's Gemm adds its C */
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) v[m * N + n] = bias ? (float)amp_ld(dt, bias->data, n) : 0.0f;
    if (K) amp_cpu_sgemm(amp_cpu_threads(k), 0, tb, M, N, K, (float)alpha, a, K, b, tb ? K : N, 1.0f, v, N);
    if (is16(dt)) {
        if (Z) amp_narrow16(dt, v, Z->data, Z->numel);
        act_f32(act, v, v, M * N);
        amp_narrow16(dt, v, Y->data, Y->numel);
    } else {
        act_f32(act, v, Y->data, M * N);
    }
    return AMP_OK;
}

/* ---- FusedConv ---------------------------------------------------------------------------- */

amp_status amp_cpu_fused_conv(amp_kernel *k) {
    amp_status s = amp_cpu_conv(k);
    if (s) return s;
    amp_tensor *Y = k->out[0];
    for (int64_t i = 0; i < Y->numel; i++)
        if (amp_ld(Y->dtype, Y->data, i) < 0) amp_st(Y->dtype, Y->data, i, 0.0);
    return AMP_OK;
}

/* ---- AddLayerNorm ------------------------------------------------------------------------- */

/* S lives in the workspace when the node does not output it. */
amp_status amp_cpu_ws_add_layer_norm(const amp_kernel *k, size_t *bytes) {
    *bytes = k->nout > 1 && k->out[1] ? 0 : k->out[0]->nbytes;
    return AMP_OK;
}

/* Element strides of t, numpy-broadcast to rank dims (its dims aligned to the last ones), over
 * those dims: 0 along the dims t broadcasts. */
static void bcast_strides(const amp_tensor *t, int rank, int64_t *st) {
    int64_t ed[AMP_MAX_RANK];
    for (int d = 0; d < rank; d++) ed[d] = d < rank - t->rank ? 1 : t->dims[d - (rank - t->rank)];
    amp_strides(rank, ed, st);
    for (int d = 0; d < rank; d++)
        if (ed[d] == 1) st[d] = 0;
}

amp_status amp_cpu_add_layer_norm(amp_kernel *k) {
    const amp_tensor *X = k->in[0], *R = k->in[1];
    amp_tensor *S = k->nout > 1 ? k->out[1] : NULL, s_ws;
    if (k->out[0]->numel == 0) return AMP_OK;
    if (!S) {
        if (!k->ws || k->ws_bytes < k->out[0]->nbytes) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        s_ws = view_at(k->out[0], k->ws);
        S = &s_ws;
    }
    const amp_dtype dt = X->dtype;
    const int rank = S->rank;
    const int64_t n = S->numel;
    int64_t sx[AMP_MAX_RANK], sr[AMP_MAX_RANK];
    bcast_strides(X, rank, sx);
    bcast_strides(R, rank, sr);
    if (dt != AMP_F64 && dt != AMP_F32 && !is16(dt))
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(dt));
    /* S = X + R as Add computes it: f64 in f64, everything else in f32, rounded once; X and R
     * of S's own dims (the residual of a transformer block) without the index arithmetic */
    bool same = X->numel == n && R->numel == n;
    if (same && dt == AMP_F32) {
        const float *x = X->data, *r = R->data;
        float *s = S->data;
        for (int64_t i = 0; i < n; i++) s[i] = x[i] + r[i];
    } else if (same && dt == AMP_F64) {
        const double *x = X->data, *r = R->data;
        double *s = S->data;
        for (int64_t i = 0; i < n; i++) s[i] = x[i] + r[i];
    } else {
        for (int64_t i = 0; i < n; i++) {
            int64_t ix = 0, ir = 0, rem = i;
            for (int d = rank - 1; d >= 0; d--) {
                int64_t c = rem % S->dims[d];
                rem /= S->dims[d];
                ix += c * sx[d];
                ir += c * sr[d];
            }
            if (dt == AMP_F64) ((double *)S->data)[i] = ((const double *)X->data)[ix] + ((const double *)R->data)[ir];
            else if (dt == AMP_F32) ((float *)S->data)[i] = ((const float *)X->data)[ix] + ((const float *)R->data)[ir];
            else amp_st(dt, S->data, i, (float)amp_ld(dt, X->data, ix) + (float)amp_ld(dt, R->data, ir));
        }
    }
    /* then LayerNormalization's own kernel over (S, Scale, B) -> (Y, Mean, InvStdDev) */
    amp_tensor *in[3] = {S, k->in[2], k->nin > 3 ? k->in[3] : NULL};
    amp_tensor *out[3] = {k->out[0], k->nout > 2 ? k->out[2] : NULL, k->nout > 3 ? k->out[3] : NULL};
    amp_kernel ln = *k;
    ln.nin = k->nin - 1;
    ln.nout = k->nout > 2 ? k->nout - 1 : 1;
    ln.in = in;
    ln.out = out;
    ln.ws = NULL;
    ln.ws_bytes = 0;
    return amp_cpu_layer_norm(&ln);
}

/* ---- Attention ---------------------------------------------------------------------------- */

typedef struct att_dims {
    int64_t batch, sq, sk, d, dv;
    bool tk;
} att_dims;

static att_dims att_dims_of(const amp_kernel *k) {
    const amp_tensor *Q = k->in[0], *V = k->in[2];
    const int r = Q->rank;
    att_dims a = {.sq = Q->dims[r - 2], .d = Q->dims[r - 1], .sk = V->dims[r - 2], .dv = V->dims[r - 1],
                  .tk = amp_attr_int(k->n, "trans_k", 0) != 0, .batch = 1};
    for (int i = 0; i < r - 2; i++) a.batch *= Q->dims[i];
    return a;
}

/* Workspace in 8-byte elements: one row of scores and one of probabilities as doubles, the
 * scores of one batch (f32; f64 for f64), and for 16-bit the widened Q, K, V of one batch and its
 * f32 output. */
static int64_t att_ws_elems(const att_dims *a, amp_dtype dt) {
    int64_t e = a->sq * a->sk;
    if (is16(dt)) e += a->sq * a->d + a->sk * a->d + a->sk * a->dv + a->sq * a->dv;
    return 2 * (a->sk + 1) + (dt == AMP_F64 ? e : (e + 1) / 2);
}

amp_status amp_cpu_ws_attention(const amp_kernel *k, size_t *bytes) {
    att_dims a = att_dims_of(k);
    return amp_cpu_ws_elems(k, att_ws_elems(&a, k->in[0]->dtype), 8, bytes);
}

/* Softmax of row z[0..n) as the CPU's Softmax: maximum first (NaN wins), exp and sum in double;
 * p receives the result rounded to dt (as doubles). */
static void softmax_row(amp_dtype dt, const double *z, int64_t n, double *p) {
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        if (z[j] > mx || isnan(z[j])) mx = z[j];
        if (isnan(mx)) break;
    }
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += exp(z[j] - mx);
    const double inv = 1.0 / sum;
    for (int64_t j = 0; j < n; j++) {
        double v = exp(z[j] - mx) * inv;
        p[j] = dt == AMP_F64 ? v : dt == AMP_F32 ? (double)(float)v : (double)round16(dt, (float)v);
    }
}

amp_status amp_cpu_attention(amp_kernel *k) {
    const amp_tensor *Q = k->in[0], *Kt = k->in[1], *V = k->in[2], *mask = k->nin > 3 ? k->in[3] : NULL;
    amp_tensor *O = k->out[0], *P = k->nout > 1 ? k->out[1] : NULL;
    const amp_dtype dt = Q->dtype;
    if (dt != AMP_F32 && dt != AMP_F64 && !is16(dt))
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(dt));
    const att_dims a = att_dims_of(k);
    const float scale = amp_attr_float(k->n, "scale", 1.0f);
    const int r = Q->rank;
    if (!k->ws || (size_t)att_ws_elems(&a, dt) * 8 > k->ws_bytes)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    if (O->numel == 0 && (!P || P->numel == 0)) return AMP_OK;
    int64_t pdims[AMP_MAX_RANK], mst[AMP_MAX_RANK] = {0};
    memcpy(pdims, Q->dims, sizeof pdims);
    pdims[r - 1] = a.sk;
    if (mask) bcast_strides(mask, r, mst);
    const int th = amp_cpu_threads(k);
    /* per row: the scores as doubles (S rounded to dt, plus the mask), then the probabilities */
    double *row = k->ws, *prow = row + a.sk + 1;
    void *scores = prow + a.sk + 1;
    for (int64_t b = 0; b < a.batch; b++) {
        /* the batch's mask offset from its leading coordinates */
        int64_t moff = 0, rem = b;
        for (int d = r - 3; d >= 0; d--) {
            moff += (rem % Q->dims[d]) * mst[d];
            rem /= Q->dims[d];
        }
        const int64_t qo = b * a.sq * a.d, ko = b * a.sk * a.d, vo = b * a.sk * a.dv, oo = b * a.sq * a.dv,
                      po = b * a.sq * a.sk;
        if (dt == AMP_F64) {
            double *s = scores;
            const double *q = (const double *)Q->data + qo, *kk = (const double *)Kt->data + ko,
                         *v = (const double *)V->data + vo;
            if (a.d) amp_cpu_dgemm(th, 0, !a.tk, a.sq, a.sk, a.d, scale, q, a.d, kk, a.tk ? a.sk : a.d, 0.0, s, a.sk);
            else memset(s, 0, sizeof(double) * (size_t)(a.sq * a.sk));
            for (int64_t i = 0; i < a.sq; i++) {
                for (int64_t j = 0; j < a.sk; j++)
                    row[j] = s[i * a.sk + j] + (mask ? amp_ld(dt, mask->data, moff + i * mst[r - 2] + j * mst[r - 1]) : 0.0);
                softmax_row(dt, row, a.sk, prow);
                memcpy(s + i * a.sk, prow, sizeof(double) * (size_t)a.sk);
            }
            if (P) memcpy((double *)P->data + po, s, sizeof(double) * (size_t)(a.sq * a.sk));
            if (a.sk) amp_cpu_dgemm(th, 0, 0, a.sq, a.dv, a.sk, 1.0, s, a.sk, v, a.dv, 0.0, (double *)O->data + oo, a.dv);
            else memset((double *)O->data + oo, 0, sizeof(double) * (size_t)(a.sq * a.dv));
            continue;
        }
        float *s = scores, *q, *kk, *v, *o;
        if (is16(dt)) {
            q = s + a.sq * a.sk;
            kk = q + a.sq * a.d;
            v = kk + a.sk * a.d;
            o = v + a.sk * a.dv;
            amp_widen16(dt, (const uint16_t *)Q->data + qo, q, a.sq * a.d);
            amp_widen16(dt, (const uint16_t *)Kt->data + ko, kk, a.sk * a.d);
            amp_widen16(dt, (const uint16_t *)V->data + vo, v, a.sk * a.dv);
        } else {
            q = (float *)Q->data + qo;
            kk = (float *)Kt->data + ko;
            v = (float *)V->data + vo;
            o = (float *)O->data + oo;
        }
        if (a.d) amp_cpu_sgemm(th, 0, !a.tk, a.sq, a.sk, a.d, scale, q, a.d, kk, a.tk ? a.sk : a.d, 0.0f, s, a.sk);
        else memset(s, 0, sizeof(float) * (size_t)(a.sq * a.sk));
        for (int64_t i = 0; i < a.sq; i++) {
            for (int64_t j = 0; j < a.sk; j++) {
                float sv = s[i * a.sk + j];
                if (is16(dt)) sv = round16(dt, sv);
                row[j] = (double)sv + (mask ? amp_ld(dt, mask->data, moff + i * mst[r - 2] + j * mst[r - 1]) : 0.0);
            }
            softmax_row(dt, row, a.sk, prow);
            for (int64_t j = 0; j < a.sk; j++) s[i * a.sk + j] = (float)prow[j];
        }
        if (P) {
            if (is16(dt)) amp_narrow16(dt, s, (uint16_t *)P->data + po, a.sq * a.sk);
            else memcpy((float *)P->data + po, s, sizeof(float) * (size_t)(a.sq * a.sk));
        }
        if (a.sk) amp_cpu_sgemm(th, 0, 0, a.sq, a.dv, a.sk, 1.0f, s, a.sk, v, a.dv, 0.0f, o, a.dv);
        else memset(o, 0, sizeof(float) * (size_t)(a.sq * a.dv));
        if (is16(dt)) amp_narrow16(dt, o, (uint16_t *)O->data + oo, a.sq * a.dv);
    }
    return AMP_OK;
}

/* ---- CastMulti ---------------------------------------------------------------------------- */

amp_status amp_cpu_cast_multi(amp_kernel *k) {
    for (int i = 0; i < k->nin; i++) {
        amp_kernel one = *k;
        one.nin = one.nout = 1;
        one.in = k->in + i;
        one.out = k->out + i;
        amp_status s = amp_cpu_cast(&one);
        if (s) return s;
    }
    return AMP_OK;
}
