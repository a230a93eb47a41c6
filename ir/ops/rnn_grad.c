/* Gradients of the recurrent ops: the builder amp_grad_rnn (RNN, GRU, LSTM) and the shape
 * inference of their training-domain ops RNNGrad, GRUGrad and LSTMGrad (ir/ops/rnn_grad.def;
 * kernels in backends/cpu/rnn_grad.c).
 *
 * One fused node per forward node: backpropagation through time needs every step's gates, and
 * the kernel recomputes them from X, W, R and B (one more forward pass) rather than having the
 * forward op keep them, so the forward op and its memory stay as they are. The node reads the
 * forward inputs (padded to the op's full list) and the output gradients dY, dY_h (, dY_c), and
 * writes dX, dW, dR, dB, dinitial_h (, dinitial_c, dP). Only the default activations (Sigmoid
 * and Tanh) without clip are differentiated. */
#include <limits.h>
#include <string.h>

#include "ir/grad.h"
#include "ir/ops/rnn.h"

enum { ACT_TANH = 1, ACT_SIGMOID = 2 }; /* numbers of ir/ops/rnn.c */

/* Forward inputs and outputs per op: RNN and GRU 6 and 2, LSTM 8 and 3. */
static int fwd_inputs(amp_op op) { return op == AMP_OP_LSTM ? 8 : 6; }
static int fwd_outputs(amp_op op) { return op == AMP_OP_LSTM ? 3 : 2; }

/* NULL when forward node n (RNN, GRU or LSTM) has a gradient here, else why not. */
static const char *why_no_grad(const amp_node *n) {
    const int D = amp_rnn_directions(n);
    int kind[6];
    float al[6], be[6];
    char why[160];
    if (D < 1 || !amp_rnn_activations(n, D, kind, al, be, why, sizeof why)) return "invalid attributes";
    const int nf = amp_rnn_nacts(n->op);
    for (int i = 0; i < D * nf; i++) {
        const int want = n->op == AMP_OP_RNN || i % nf > 0 ? ACT_TANH : ACT_SIGMOID;
        if (kind[i] != want) return "only the default activations (Sigmoid for gates, Tanh otherwise) have a gradient";
    }
    if (amp_node_attr(n, "clip")) return "clip has no gradient";
    return NULL;
}

/* ---- the builder ---------------------------------------------------------------------------- */

amp_status amp_grad_rnn(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    const char *op;
    switch (f->op) {
    case AMP_OP_RNN: op = "RNNGrad"; break;
    case AMP_OP_GRU: op = "GRUGrad"; break;
    case AMP_OP_LSTM: op = "LSTMGrad"; break;
    default: return AMP_ERR_NOT_FOUND;
    }
    const char *why = why_no_grad(f);
    if (why)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': %s gradient: %s", f->name ? f->name : "",
                          f->op_type, why);
    const int nfi = fwd_inputs(f->op), nfo = fwd_outputs(f->op), nout = f->op == AMP_OP_LSTM ? 7 : 5;
    int ins[11], outs[7];
    for (int i = 0; i < nfi; i++) ins[i] = i < c->nin ? amp_grad_in(c, i) : -1;
    for (int k = 0; k < nfo; k++) ins[nfi + k] = k < c->nout ? c->dy[k] : -1;
    amp_node *n;
    const int64_t opset = amp_grad_opset(c);
    amp_status s = amp_grad_node(c, op, AMP_TRAIN_DOMAIN, nfi + nfo, ins, nout, outs, &n);
    if (!s) s = amp_grad_copy_attrs(c, n);
    if (!s) s = amp_grad_attr_int(c, n, "fwd_opset", opset);
    if (s) return s;
    /* outputs dX dW dR dB dh0 (dc0 dP) answer forward inputs 0 1 2 3 5 (6 7) */
    static const int input_of[7] = {0, 1, 2, 3, 5, 6, 7};
    for (int k = 0; k < nout; k++) {
        const int i = input_of[k];
        if (i < c->nin && c->need[i]) c->dx[i] = outs[k];
    }
    return AMP_OK;
}

/* ---- shape inference of the training ops ---------------------------------------------------- */

static int64_t up16(int64_t n) { return (n + 15) / 16 * 16; }

/* Compute-type elements of the gradient kernel's workspace, each part rounded up to 16
 * elements, in the order backends/cpu/rnn_grad.c carves it: the step-ordered X, the gates'
 * pre-activations from X (then their gradients), the hidden and cell state of every step, the
 * saved gates, the per-step H*R^T, four B x H rows (dh, dc, dh_prev, scratch), one direction's
 * biases; for 16-bit tensors f32 copies of X, W, R, P and f32 accumulators of dX, dW, dR, dB
 * and dP. -1 when the count overflows. */
int64_t amp_rnn_grad_ws_elems(amp_op op, bool wide16, int64_t S, int64_t B, int64_t I, int64_t H, int64_t D) {
    const int64_t G = amp_rnn_ngates(op), GH = G * H;
    const double est = (double)S * B * (2.0 * I + 2.0 * G * H + 3.0 * H) + 2.0 * (double)D * G * H * ((double)I + H) +
                       8.0 * B * H;
    if (S < 0 || B < 0 || I < 0 || H < 0 || D < 0 || est > 1.0e18) return -1;
    const bool lstm = op == AMP_OP_LSTM;
    int64_t n = up16(S * B * I) + up16(S * B * GH) + up16((S + 1) * B * H) + (lstm ? up16((S + 1) * B * H) : 0) +
                (G > 1 ? up16(S * B * 4 * H) : 0) + up16(B * GH) + 4 * up16(B * H) + up16(2 * GH);
    if (wide16)
        n += 2 * (up16(S * B * I) + up16(D * GH * I) + up16(D * GH * H) + up16(D * 3 * H)) + up16(D * 2 * GH);
    return n;
}

static void set_out(amp_infer *c, int k, amp_dtype dt, int rank, const int64_t *dims) {
    amp_tinfo *o = c->out[k];
    o->dtype = dt;
    o->rank = rank;
    memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
}

/* Inputs: the forward inputs (RNN, GRU: 6; LSTM: 8; omitted ones absent), then dY, dY_h (,
 * dY_c). Outputs: dX, dW, dR, dB, dinitial_h (, dinitial_c, dP), each shaped like the forward
 * input it answers (dB and dP also when B or P was omitted). */
amp_status amp_infer_rnn_grad(amp_infer *c) {
    const amp_op op = c->n->op;
    const amp_op fop = op == AMP_OP_RNN_GRAD ? AMP_OP_RNN : op == AMP_OP_GRU_GRAD ? AMP_OP_GRU : AMP_OP_LSTM;
    const int nfi = fwd_inputs(fop), nfo = fwd_outputs(fop), nout = fop == AMP_OP_LSTM ? 7 : 5;
    if (c->nin != nfi + nfo)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects %d inputs, has %d", nfi + nfo, c->nin);
    if (c->nout != nout) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects %d outputs, has %d", nout, c->nout);
    for (int i = 0; i < 3; i++)
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is required", i);

    /* the forward node's own inference checks the forward inputs and gives Y's shapes */
    amp_node fn = *c->n;
    fn.op = fop;
    fn.n_inputs = nfi;
    fn.n_outputs = nfo;
    amp_tinfo ys[3];
    memset(ys, 0, sizeof ys);
    amp_tinfo *yp[3] = {&ys[0], &ys[1], &ys[2]};
    amp_infer fc = {.ctx = c->ctx, .g = c->g, .n = &fn, .opset = amp_attr_int(c->n, "fwd_opset", 14), .nin = nfi,
                    .nout = nfo, .in = c->in, .out = yp};
    amp_status s = amp_op_table[fop].infer(&fc);
    if (s) return s;
    const char *why = why_no_grad(&fn);
    if (why) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "%s", why);
    const amp_tinfo *x = c->in[0];
    for (int k = 0; k < nfo; k++) {
        const amp_tinfo *dy = c->in[nfi + k];
        if (dy && (dy->dtype != x->dtype || !amp_tinfo_same_shape(dy, &ys[k])))
            return amp_infer_fail(c, AMP_ERR_SHAPE, "gradient %d must have the dtype and shape of forward output %d", k,
                                  k);
    }
    const int layout = (int)amp_attr_int(c->n, "layout", 0);
    const int64_t S = x->dims[layout ? 1 : 0], B = x->dims[layout ? 0 : 1], I = x->dims[2];
    const int64_t H = c->in[2]->dims[2], D = c->in[1]->dims[0], G = amp_rnn_ngates(fop);
    const int64_t bd[2] = {D, 2 * G * H}, pd[2] = {D, 3 * H};
    set_out(c, 0, x->dtype, 3, x->dims);
    set_out(c, 1, x->dtype, 3, c->in[1]->dims);
    set_out(c, 2, x->dtype, 3, c->in[2]->dims);
    set_out(c, 3, x->dtype, 2, bd);
    set_out(c, 4, x->dtype, 3, ys[1].dims);
    if (fop == AMP_OP_LSTM) {
        set_out(c, 5, x->dtype, 3, ys[1].dims);
        set_out(c, 6, x->dtype, 2, pd);
    }
    /* the step-ordered copies hold S * B rows as one GEMM operand */
    if (I > INT_MAX / 4 || H > INT_MAX / 8 || (S + 1) * B > INT_MAX)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "too large for the gradient's GEMMs");
    return AMP_OK;
}
