/* Reverse-mode automatic differentiation: the contract between the autodiff pass
 * (passes/autodiff.c) and the gradient builders of each op family (ir/ops/<family>_grad.c).
 *
 * The pass visits forward nodes in reverse order. For each node with at least one output
 * gradient it calls the builder the op table names for the op (amp_op_info.grad_builder); the
 * builder appends backward nodes with amp_grad_node and stores in c->dx[i] the value holding
 * the gradient of forward input i, for every i with c->need[i]. A builder returns
 * AMP_ERR_NOT_FOUND for ops it does not handle (the pass reports the table error),
 * AMP_ERR_UNSUPPORTED for an op it handles but cannot differentiate in this configuration
 * (with a message).
 *
 * Rules for builders:
 *  - c->dy[k] is the gradient of forward output k, or -1 when none flows (treat as zero; when
 *    every needed output gradient is -1 the builder is not called).
 *  - Gradients have the dtype and shape of the value they belong to. A builder may use any
 *    forward value (inputs and outputs of the forward node) as an input of backward nodes.
 *  - New ops of the training domain (AMP_TRAIN_DOMAIN) are listed in ir/ops/<family>_grad.def and
 *    have shape inference and CPU kernels like any op; they run at opset 1, so a builder copies
 *    the forward attributes it needs (amp_grad_copy_attrs) and adds "fwd_opset" where the
 *    forward semantics depend on the opset.
 *  - Nodes of the default domain (Mul, ReduceSum, Transpose, Gemm, ...) may be used freely.
 *  - Backward nodes run in the precision of the forward node: 16-bit dY and inputs give
 *    16-bit backward computation, with f32 accumulation inside kernels. */
#ifndef AMP_IR_GRAD_H
#define AMP_IR_GRAD_H

#include "ir/ir.h"

#define AMP_TRAIN_DOMAIN "ai.amprt.training"

typedef struct amp_grad_ctx {
    amp_context *ctx;
    amp_graph *g;
    int node;           /* forward node index (nodes may move in memory: use amp_grad_fwd) */
    int nin, nout;      /* of the forward node */
    const int *dy;      /* [nout] gradient value per forward output, -1 when none */
    int *dx;            /* [nin] out: gradient value per forward input, -1 when none */
    const bool *need;   /* [nin] which input gradients are wanted */
} amp_grad_ctx;

/* The forward node (re-read after every amp_grad_node: the node array may grow). */
const amp_node *amp_grad_fwd(const amp_grad_ctx *c);
/* Value id of forward input i / output k (-1 when omitted). */
int amp_grad_in(const amp_grad_ctx *c, int i);
int amp_grad_out(const amp_grad_ctx *c, int k);

/* Append a backward node: op in domain ("" for ONNX ops, AMP_TRAIN_DOMAIN for training ops),
 * reading ins[nin] (-1 for an omitted optional input), writing nout fresh values whose ids go
 * to outs[] (outs may be NULL when nout is 0). *made (may be NULL) points at the node until the
 * next append. */
amp_status amp_grad_node(amp_grad_ctx *c, const char *op, const char *domain, int nin, const int *ins, int nout,
                         int *outs, amp_node **made);
/* A training-domain node with nslots output positions of which only want[k] are produced; the
 * rest are omitted (-1), so the kernel skips their work. outs[k] gets the value ids (-1 for the
 * omitted); *made points at the node until the next append. At most 16 slots. */
amp_status amp_grad_sparse_node(amp_grad_ctx *c, const char *op, int nin, const int *ins, int nslots,
                                const bool *want, int *outs, amp_node **made);
/* Copy every attribute of the forward node onto n. */
amp_status amp_grad_copy_attrs(amp_grad_ctx *c, amp_node *n);
/* Set (add or replace) one attribute of n. */
amp_status amp_grad_attr_int(amp_grad_ctx *c, amp_node *n, const char *name, int64_t v);
amp_status amp_grad_attr_float(amp_grad_ctx *c, amp_node *n, const char *name, float v);
amp_status amp_grad_attr_ints(amp_grad_ctx *c, amp_node *n, const char *name, int count, const int64_t *v);
amp_status amp_grad_attr_str(amp_grad_ctx *c, amp_node *n, const char *name, const char *v);
/* A Constant node holding a scalar of dtype dt (rank 0), or a 1-D int64 tensor; the value id,
 * or -1 on allocation failure (the context has the message). */
int amp_grad_const_scalar(amp_grad_ctx *c, amp_dtype dt, double v);
int amp_grad_const_ints(amp_grad_ctx *c, int n, const int64_t *v);
/* Sum gradient grad over broadcast dimensions back to the shape of value like (a SumToShape
 * node reading Shape(like); no node when the shapes are provably equal). *out: the result. */
amp_status amp_grad_sum_to_shape(amp_grad_ctx *c, int grad, int like, int *out);
/* The forward opset of the node's domain. */
int64_t amp_grad_opset(const amp_grad_ctx *c);

/* Family builders (ir/ops/<family>_grad.c) are named per op in the op table (ir/ops.def,
 * GRAD(amp_grad_<family>)), which declares them; each switches on the forward op and returns
 * AMP_ERR_NOT_FOUND for an op it does not handle. */

#endif
