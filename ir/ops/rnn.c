/* Shape inference for the recurrent ops RNN, GRU and LSTM (ONNX opsets 7 to 28; the layout
 * attribute from opset 14), the resolution of their activation functions and the element count of
 * the forward kernel's workspace (for backends/cpu/rnn.c's sizing). The kernels
 * (backends/cpu/rnn.c, rnn_grad.c) and the gradient builder (ir/ops/rnn_grad.c) call the amp_rnn_*
 * functions below through their own prototypes. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ir/ops/rnn.h"

/* The activation functions ONNX lists for the recurrent ops, numbered in the order of the
 * operator documentation (the kernels use the same numbers). alpha and beta default to the
 * values of the ONNX op of the same name; Affine and ScaledTanh, retired ops, default to the
 * identity-like 1, 0 and 1, 1. */
typedef struct act_info {
    const char *name;
    bool alpha, beta; /* whether the function consumes an activation_alpha / activation_beta */
    float da, db;
} act_info;

static const act_info act_table[] = {
    {"Relu", false, false, 0.0f, 0.0f},       {"Tanh", false, false, 0.0f, 0.0f},
    {"Sigmoid", false, false, 0.0f, 0.0f},    {"Affine", true, true, 1.0f, 0.0f},
    {"LeakyRelu", true, false, 0.01f, 0.0f},  {"ThresholdedRelu", true, false, 1.0f, 0.0f},
    {"ScaledTanh", true, true, 1.0f, 1.0f},   {"HardSigmoid", true, true, 0.2f, 0.5f},
    {"Elu", true, false, 1.0f, 0.0f},         {"Softsign", false, false, 0.0f, 0.0f},
    {"Softplus", false, false, 0.0f, 0.0f},
};
enum { N_ACTS = (int)(sizeof act_table / sizeof act_table[0]) };
enum { ACT_TANH = 1, ACT_SIGMOID = 2 };

/* Gate blocks of W and R per direction (RNN 1, GRU 3 (z r h), LSTM 4 (i o f c)); 0 otherwise. */
int amp_rnn_ngates(amp_op op) {
    return op == AMP_OP_RNN ? 1 : op == AMP_OP_GRU ? 3 : op == AMP_OP_LSTM ? 4 : 0;
}

/* Activation functions per direction (RNN f; GRU f g; LSTM f g h). */
int amp_rnn_nacts(amp_op op) {
    return op == AMP_OP_RNN ? 1 : op == AMP_OP_GRU ? 2 : op == AMP_OP_LSTM ? 3 : 0;
}

/* Directions of node n: 1 or 2, or 0 for an unknown direction string. */
int amp_rnn_directions(const amp_node *n) {
    const char *d = amp_attr_str(n, "direction", "forward");
    if (strcmp(d, "forward") == 0 || strcmp(d, "reverse") == 0) return 1;
    if (strcmp(d, "bidirectional") == 0) return 2;
    return 0;
}

/* Resolve the activations of recurrent node n (op RNN, GRU or LSTM) with nd directions into
 * kind[i], alpha[i], beta[i] for i < nd * amp_rnn_nacts(op): the attribute (all functions of the
 * forward direction, then those of the reverse one) or ONNX's defaults. activation_alpha and
 * activation_beta are consumed in order by the functions that take a value, the way
 * onnxruntime reads them; a list that runs short leaves the defaults, extra values are unused.
 * Names match without regard to case (onnxruntime lowers them). false, with a message in why,
 * for an unknown name or a list of the wrong length. */
bool amp_rnn_activations(const amp_node *n, int nd, int *kind, float *alpha, float *beta, char *why, size_t cap) {
    const int nf = amp_rnn_nacts(n->op), total = nf * nd;
    const amp_attr *a = amp_node_attr_of(n, "activations", AMP_ATTR_STRINGS);
    if (!a) {
        for (int i = 0; i < total; i++) {
            /* RNN: Tanh; GRU: Sigmoid, Tanh; LSTM: Sigmoid, Tanh, Tanh */
            int f = i % nf;
            kind[i] = n->op == AMP_OP_RNN || f > 0 ? ACT_TANH : ACT_SIGMOID;
            alpha[i] = beta[i] = 0.0f;
        }
        return true;
    }
    if (a->kind != AMP_ATTR_STRINGS || a->n != total || !a->strings) {
        snprintf(why, cap, "activations must list %d functions (%d per direction), has %d", total, nf,
                 a->kind == AMP_ATTR_STRINGS ? a->n : -1);
        return false;
    }
    const float *al = NULL, *be = NULL;
    int nal = amp_attr_floats(n, "activation_alpha", &al), nbe = amp_attr_floats(n, "activation_beta", &be);
    int ia = 0, ib = 0;
    for (int i = 0; i < total; i++) {
        const char *name = a->strings[i] ? a->strings[i] : "";
        int k = -1;
        for (int j = 0; j < N_ACTS && k < 0; j++)
            if (strcasecmp(name, act_table[j].name) == 0) k = j;
        if (k < 0) {
            snprintf(why, cap, "unknown activation function '%.64s'", name);
            return false;
        }
        kind[i] = k;
        alpha[i] = act_table[k].da;
        beta[i] = act_table[k].db;
        if (act_table[k].alpha && ia < nal) alpha[i] = al[ia++];
        if (act_table[k].beta && ib < nbe) beta[i] = be[ib++];
    }
    return true;
}

static int64_t up16(int64_t n) { return (n + 15) / 16 * 16; }

/* Compute-type elements of the forward kernel's workspace, each part rounded up to 16 elements
 * (backends/cpu/rnn.c carves it in this order): X*W^T of all steps, the per-step H*R^T, the
 * hidden state, the cell state, GRU's r (.) H, one direction's biases, and for 16-bit inputs f32
 * copies of X, W, R and P. -1 when the count overflows. */

int64_t amp_rnn_fwd_ws_elems(amp_op op, bool wide16, int64_t S, int64_t B, int64_t I, int64_t H, int64_t D) {
    const int64_t G = amp_rnn_ngates(op);
    /* every factor is below 2^31 (inference checks); the estimate in double catches overflow
       before the int64 arithmetic */
    double est = (double)S * B * G * H + (double)S * B * I + (double)D * G * H * ((double)I + H) + 8.0 * D * B * H;
    if (S < 0 || B < 0 || I < 0 || H < 0 || D < 0 || est > 4.0e18) return -1;
    int64_t n = up16(S * B * G * H) + up16(B * G * H) + 3 * up16(B * H) + up16(2 * G * H);
    if (wide16) n += up16(S * B * I) + up16(D * G * H * I) + up16(D * G * H * H) + up16(D * 3 * H);
    return n;
}

static amp_status same_dtype(amp_infer *c, int i, amp_dtype dt) {
    if (c->in[i]->dtype != dt)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d is %s but X is %s", i, amp_dtype_name(c->in[i]->dtype),
                              amp_dtype_name(dt));
    return AMP_OK;
}

static bool dims_are(const amp_tinfo *t, int rank, const int64_t *d) {
    if (t->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != d[i]) return false;
    return true;
}

static amp_status want_dims(amp_infer *c, int i, const char *what, int rank, const int64_t *d) {
    if (dims_are(c->in[i], rank, d)) return AMP_OK;
    char got[160] = "", exp[160] = "";
    size_t o = 0;
    for (int k = 0; k < c->in[i]->rank && o < sizeof got - 24; k++)
        o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", k ? "," : "", (long long)c->in[i]->dims[k]);
    o = 0;
    for (int k = 0; k < rank; k++)
        o += (size_t)snprintf(exp + o, sizeof exp - o, "%s%lld", k ? "," : "", (long long)d[k]);
    return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must have shape [%s], has [%s]", what, exp, got);
}

static amp_status check_out(amp_infer *c, int i) {
    amp_status s = amp_shape_numel(c->out[i]->rank, c->out[i]->dims, c->out[i]->dtype, NULL, NULL);
    if (s) return amp_infer_fail(c, s, "output %d shape overflows or is invalid", i);
    return AMP_OK;
}

/* RNN, GRU and LSTM: inputs X, W, R, B, sequence_lens, initial_h (, initial_c, P); outputs Y,
 * Y_h (, Y_c). */
static amp_status infer_recurrent(amp_infer *c) {
    const amp_op op = c->n->op;
    const bool lstm = op == AMP_OP_LSTM;
    const int G = amp_rnn_ngates(op), maxin = lstm ? 8 : 6, maxout = lstm ? 3 : 2;
    if (G == 0) return amp_infer_fail(c, AMP_ERR_INTERNAL, "not a recurrent op");
    amp_status s = amp_infer_need_inputs(c, 3, maxin);
    if (s) return s;
    if (c->nout > maxout)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, at most %d", c->nout, maxout);
    const amp_tinfo *x = c->in[0];
    const amp_dtype dt = x->dtype;
    if ((s = amp_infer_dtype_in(c, dt, amp_dt_float))) return s;
    for (int i = 1; i < c->nin; i++)
        if (i != 4 && c->in[i] && (s = same_dtype(c, i, dt))) return s;

    /* attributes */
    const int64_t layout = amp_attr_int(c->n, "layout", 0);
    if (c->opset < 14 && amp_node_attr(c->n, "layout"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "the layout attribute needs opset 14, model has %lld",
                              (long long)c->opset);
    if (layout != 0 && layout != 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "layout must be 0 or 1, is %lld", (long long)layout);
    const int D = amp_rnn_directions(c->n);
    if (D == 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown direction '%.64s'",
                              amp_attr_str(c->n, "direction", ""));
    int kind[6];
    float al[6], be[6];
    char why[160];
    if (!amp_rnn_activations(c->n, D, kind, al, be, why, sizeof why))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "%s", why);
    const amp_attr *clip = amp_node_attr_of(c->n, "clip", AMP_ATTR_FLOAT);
    if (clip && !(clip->f > 0.0f))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "clip must be positive, is %g", (double)clip->f);
    if (op != AMP_OP_GRU && amp_node_attr(c->n, "linear_before_reset"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "linear_before_reset is a GRU attribute");
    if (!lstm && amp_node_attr(c->n, "input_forget"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input_forget is an LSTM attribute");

    /* shapes */
    if (x->rank != 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank 3, has %d", x->rank);
    const int64_t S = layout ? x->dims[1] : x->dims[0], B = layout ? x->dims[0] : x->dims[1], I = x->dims[2];
    const amp_tinfo *r = c->in[2];
    if (r->rank != 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "R must have rank 3, has %d", r->rank);
    const amp_attr *hs = amp_node_attr_of(c->n, "hidden_size", AMP_ATTR_INT);
    const int64_t H = hs ? hs->i : r->dims[2];
    /* BLAS takes int sizes: keep every GEMM dim and leading dim below 2^31 */
    if (H < 1 || H > INT_MAX / 8)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "hidden_size %lld is out of range", (long long)H);
    if (I > INT_MAX || S > INT_MAX || B > INT_MAX || S * B > INT_MAX)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "X of [%lld, %lld, %lld] is too large for the GEMMs",
                              (long long)x->dims[0], (long long)x->dims[1], (long long)I);
    const int64_t wd[3] = {D, G * H, I}, rd[3] = {D, G * H, H}, bd[2] = {D, 2 * G * H}, pd[2] = {D, 3 * H};
    const int64_t hd[3] = {layout ? B : D, layout ? D : B, H};
    if ((s = want_dims(c, 1, "W", 3, wd)) || (s = want_dims(c, 2, "R", 3, rd))) return s;
    if (c->nin > 3 && c->in[3] && (s = want_dims(c, 3, "B", 2, bd))) return s;
    if (c->nin > 4 && c->in[4]) {
        const amp_tinfo *sl = c->in[4];
        if (sl->dtype != AMP_I32)
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "sequence_lens must be int32, is %s",
                                  amp_dtype_name(sl->dtype));
        if ((s = want_dims(c, 4, "sequence_lens", 1, &B))) return s;
        if (sl->value)
            for (int64_t b = 0; b < B; b++) {
                int32_t v = ((const int32_t *)sl->value->data)[b];
                if (v < 0 || v > S)
                    return amp_infer_fail(c, AMP_ERR_INVALID_ARG, "sequence_lens[%lld] = %d is outside [0, %lld]",
                                          (long long)b, (int)v, (long long)S);
            }
    }
    if (c->nin > 5 && c->in[5] && (s = want_dims(c, 5, "initial_h", 3, hd))) return s;
    if (c->nin > 6 && c->in[6] && (s = want_dims(c, 6, "initial_c", 3, hd))) return s;
    if (c->nin > 7 && c->in[7] && (s = want_dims(c, 7, "P", 2, pd))) return s;

    /* outputs: Y [S, D, B, H] (layout 1: [B, S, D, H]); Y_h, Y_c like initial_h */
    for (int k = 0; k < c->nout; k++) {
        amp_tinfo *o = c->out[k];
        o->dtype = dt;
        if (k == 0) {
            o->rank = 4;
            int64_t yd[4] = {layout ? B : S, layout ? S : D, layout ? D : B, H};
            memcpy(o->dims, yd, sizeof yd);
        } else {
            o->rank = 3;
            memcpy(o->dims, hd, sizeof hd);
        }
        if ((s = check_out(c, k))) return s;
    }
    return AMP_OK;
}

amp_status amp_infer_rnn(amp_infer *c) { return infer_recurrent(c); }
amp_status amp_infer_gru(amp_infer *c) { return infer_recurrent(c); }
amp_status amp_infer_lstm(amp_infer *c) { return infer_recurrent(c); }
