/* Graph passes: one file each. Every pass takes a linked graph (ir/graph.c) and leaves it
 * linked, in topological order. */
#ifndef AMP_PASSES_PASSES_H
#define AMP_PASSES_PASSES_H

#include "ir/ir.h"

/* ---- types (passes/typecheck.c) ----------------------------------------------------------- */

/* The type rule of node n (amp_type_rule in ir/ir.h): the op table's, or for an op outside the
 * table one of typecheck.c's short list of ops autocast still converts. */
void amp_node_type_rule(const amp_graph *g, const amp_node *n, amp_type_rule *r);

/* The precision a node computes in: its T (the dtype of its first T input), else its first
 * float output's dtype; undefined for integer, bool and shape nodes. */
amp_dtype amp_node_precision(const amp_graph *g, const amp_node *n);

/* Compute the dtype of every value from the graph inputs and initializers through the type
 * rules; fill values whose dtype is undefined. With strict, a node whose T inputs disagree or a
 * computed dtype that contradicts a declared one fails with AMP_ERR_SHAPE naming the node. */
amp_status amp_pass_typecheck(amp_graph *g, bool strict);

/* ---- autocast (passes/autocast.c) and cast cleanup (passes/cast_cleanup.c) ---------------- */

/* Colouring and cast insertion only, on a graph whose dtypes a strict amp_pass_typecheck has
 * just computed: every node of the op classes gets FP32 or the 16-bit type, one Cast per
 * (value, dtype) its consumers need is inserted, constants are converted; fills the pass's
 * counts in *r (zeroed first). It neither fuses, cleans up nor checks types: amp_passes_convert
 * runs those around it. value_absmax: per value max |x| over calibration runs (NULL: no data),
 * filled by the caller. */
amp_status amp_pass_autocast(amp_graph *g, const amp_autocast_options *o, const double *value_absmax,
                             amp_autocast_report *r);
/* With all16, every float node runs in 16 bits, numerically sensitive ones too (the naive
 * "model.half()" scheme, for comparison in training). */
amp_status amp_pass_autocast_ex(amp_graph *g, const amp_autocast_options *o, const double *value_absmax, bool all16,
                                amp_autocast_report *r);
/* AMP_ERR_INVALID_ARG (message on ctx) unless o names a 16-bit dtype (0: float16) and a
 * rounding mode; *lo receives the 16-bit dtype. */
amp_status amp_autocast_check_options(amp_context *ctx, const amp_autocast_options *o, amp_dtype *lo);
/* Does some node of the autocast classes compute in FP32 (its T is float32)? False for a graph
 * that is already 16-bit or mixed throughout. Needs the dtypes of a type check. */
bool amp_autocast_has_fp32_compute(const amp_graph *g);
/* Count nodes per precision (a node's precision is its T, or its first float output; nodes the
 * pass inserted are not counted) into r->nodes_16bit / nodes_fp32 / nodes_other. */
void amp_autocast_census(const amp_graph *g, amp_dtype lo, amp_autocast_report *r);
/* Remove redundant casts (AUTOCAST.md, cleanup rules). *removed counts the Cast nodes gone. */
amp_status amp_pass_cast_cleanup(amp_graph *g, int *removed);

/* Fuse decomposed layer normalization into LayerNormalization (opset >= 17; no-op before).
 * *fused counts the patterns replaced. (passes/fuse_layernorm.c) */
amp_status amp_pass_fuse_layernorm(amp_graph *g, int *fused);

/* Fusion for a backend (passes/fuse.c): chains of nodes become one node of the fused family
 * (ir/ops/fused.def). which: the AMP_FUSE_* chains to fuse; *r counts each kind fused (zeroed
 * first). Structural only: a fused node whose activation shapes do not fit fails the plan's
 * inference, and the session then plans the graph unfused (runtime/session.c). */
enum {
    AMP_FUSE_GELU = 1u << 0,      /* erf GELU written out -> Gelu */
    AMP_FUSE_GEMM = 1u << 1,      /* MatMul/Gemm + bias + Relu/Gelu -> FusedGemm */
    AMP_FUSE_CONV = 1u << 2,      /* Conv + Relu -> FusedConv */
    AMP_FUSE_LAYERNORM = 1u << 3, /* Add + LayerNormalization -> AddLayerNorm */
    AMP_FUSE_ATTENTION = 1u << 4, /* MatMul, scale, mask, Softmax, MatMul -> Attention */
    AMP_FUSE_CASTS = 1u << 5,     /* Casts of the weights, Casts into one node -> CastMulti */
    AMP_FUSE_ALL = (1u << 6) - 1
};
typedef struct amp_fuse_report {
    int gelu, gemm, conv, layernorm, attention, casts;
} amp_fuse_report;
amp_status amp_pass_fuse(amp_graph *g, unsigned which, amp_fuse_report *r);

/* Reverse-mode autodiff (passes/autodiff.c): append the backward nodes from loss (seeded with
 * the gradient value seed, of loss's shape) to every value in wrt; grads[i] receives the
 * gradient value of wrt[i], or -1 when the loss does not depend on it. */
amp_status amp_pass_autodiff(amp_graph *g, int loss, int seed, int n_wrt, const int *wrt, int *grads);

/* Raise the default domain's opset of g to target (passes/opset.c), rewriting every node whose
 * signature changed between the two opsets so that its results stay the same: attributes that
 * became inputs (Split/Squeeze/Unsqueeze/ReduceSum axes @13, the other Reduce* @18, Pad @11,
 * Clip @11, Slice @10, Dropout @12, TopK @10) become int64 (or T) initializers with unique
 * names; BatchNormalization loses spatial=1 and unused training outputs; Softmax, LogSoftmax and
 * Hardmax over the last axis get it written out (@13). target == g->opset: no-op. Refused with
 * AMP_ERR_UNSUPPORTED (the graph left as it is: every node is checked before any is rewritten)
 * for a target below the graph's opset or above what amprt handles, and for a node whose
 * meaning cannot be carried (named with its op and both opsets). *rewritten (may be NULL)
 * counts the nodes changed. An allocation failure mid-rewrite can leave g partly rewritten:
 * callers convert a copy. */
amp_status amp_pass_convert_opset(amp_graph *g, int target, int *rewritten);
/* The highest default-domain opset amprt's op table handles. */
int amp_opset_max(void);

/* ---- the pass driver (passes/pipeline.c): the one place where the order of passes is written */

/* Conversion to mixed precision (amp_model_autocast, amprt convert, --autocast, the trainer's
 * graphs): strict type check -> LayerNorm fusion -> colouring and casts (amp_pass_autocast) ->
 * cast cleanup -> strict type check -> census and the metadata entry amprt.autocast. A graph
 * with no FP32 compute, or one amprt converted before, is left as it is (r->already_16bit).
 * value_absmax as for amp_pass_autocast; *r is filled (zeroed first). */
amp_status amp_passes_convert(amp_graph *g, const amp_autocast_options *o, const double *value_absmax,
                              amp_autocast_report *r);
/* The same with all16: see amp_pass_autocast_ex. */
amp_status amp_passes_convert_ex(amp_graph *g, const amp_autocast_options *o, const double *value_absmax, bool all16,
                                 amp_autocast_report *r);

/* The trainer's own graph builders (runtime/trainer.c), called by amp_passes_training at their
 * places in the order; user is handed back to each. */
typedef struct amp_training_steps {
    void *user;
    int n_params;
    /* Parameters become dynamic inputs, ops get their training mode, and the loss is attached
     * as graph output 0; the graph is left linked. */
    amp_status (*forward)(void *user, amp_graph *g);
    /* After autocast and a type check: the state inputs, the gradient seed of loss (*seed) and
     * the value of each parameter (params[n_params]). */
    amp_status (*seed)(void *user, amp_graph *g, int loss, int *seed, int *params);
    /* After autodiff (grads[i]: the gradient of params[i], -1 when the loss does not depend on
     * it): the optimizer and loss-scaling nodes and the step's outputs. */
    amp_status (*optimizer)(void *user, amp_graph *g, int loss, const int *params, const int *grads);
    const amp_autocast_options *autocast; /* NULL: the step computes in FP32 */
    bool all16;                           /* see amp_pass_autocast_ex */
} amp_training_steps;

/* One training step's graph, built in place from a copy of the model: forward and loss -> written-out GELU as Gelu (amp_pass_fuse) ->
 * autocast (amp_passes_convert_ex) -> type check -> seed -> autodiff -> optimizer -> verify
 * (amp_graph_link). Autocast runs before autodiff, so each backward node inherits its forward
 * node's precision and a weight's gradient comes back through its Cast in FP32. */
amp_status amp_passes_training(amp_graph *g, const amp_training_steps *steps);

/* Graph editing helpers shared by passes (passes/edit.c). */
/* A fresh value name "<base><suffix>" (with a counter when taken); id or -1. */
int amp_edit_new_value(amp_graph *g, const char *base, const char *suffix);
/* Drop nodes marked dead[i] (their arrays freed) and relink. */
amp_status amp_edit_remove_nodes(amp_graph *g, const bool *dead);
/* Count consumers of every value (graph outputs count as one each); *out owned by the caller. */
amp_status amp_edit_use_counts(amp_graph *g, int **out);
/* The constant value of v: a (non-input) initializer's tensor or a Constant node's `value`;
 * NULL for anything else (and for v < 0). */
const amp_tensor *amp_edit_const_tensor(const amp_graph *g, int v);
/* The input of binary node n other than v (-1 when n has not two inputs or v is neither). */
int amp_edit_other_input(const amp_node *n, int v);

#endif
