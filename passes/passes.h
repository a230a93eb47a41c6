/* Graph passes: one file each. Every pass takes a linked graph (ir/graph.c) and leaves it
 * linked, in topological order. */
#ifndef AMP_PASSES_PASSES_H
#define AMP_PASSES_PASSES_H

#include "ir/ir.h"

/* ---- types (passes/typecheck.c) ----------------------------------------------------------- */

/* The type rule of node n (amp_type_rule in ir/ir.h): the op table's, or for an op outside the
 * table one of typecheck.c's short list of ops autocast still converts. */
void amp_node_type_rule(const amp_graph *g, const amp_node *n, amp_type_rule *r);
/* The opset of a node's domain. */
int64_t amp_node_opset(const amp_graph *g, const amp_node *n);

/* The precision a node computes in: its T (the dtype of its first T input), else its first
 * float output's dtype; undefined for integer, bool and shape nodes. */
amp_dtype amp_node_precision(const amp_graph *g, const amp_node *n);

/* Compute the dtype of every value from the graph inputs and initializers through the type
 * rules; fill values whose dtype is undefined. With strict, a node whose T inputs disagree or a
 * computed dtype that contradicts a declared one fails with AMP_ERR_SHAPE naming the node. */
amp_status amp_pass_typecheck(amp_graph *g, bool strict);

/* ---- autocast (passes/autocast.c) and cast cleanup (passes/cast_cleanup.c) ---------------- */

/* Per value max |x| over calibration runs (NULL entries: no data); filled by the caller. */
amp_status amp_pass_autocast(amp_graph *g, const amp_autocast_options *o, const double *value_absmax,
                             amp_autocast_report *r);
/* With all16, every float node runs in 16 bits, numerically sensitive ones too (the naive
 * "model.half()" scheme, for comparison in training). */
amp_status amp_pass_autocast_ex(amp_graph *g, const amp_autocast_options *o, const double *value_absmax, bool all16,
                                amp_autocast_report *r);
/* Count nodes per precision (a node's precision is its T, or its first float output; nodes the
 * pass inserted are not counted) into r->nodes_16bit / nodes_fp32 / nodes_other. */
void amp_autocast_census(const amp_graph *g, amp_dtype lo, amp_autocast_report *r);
/* Remove redundant casts (AUTOCAST.md, cleanup rules). *removed counts the Cast nodes gone. */
amp_status amp_pass_cast_cleanup(amp_graph *g, int *removed);

/* Fuse decomposed layer normalization into LayerNormalization (opset >= 17; no-op before).
 * *fused counts the patterns replaced. (passes/fuse_layernorm.c) */
amp_status amp_pass_fuse_layernorm(amp_graph *g, int *fused);

/* Reverse-mode autodiff (passes/autodiff.c): append the backward nodes from loss (seeded with
 * the gradient value seed, of loss's shape) to every value in wrt; grads[i] receives the
 * gradient value of wrt[i], or -1 when the loss does not depend on it. */
amp_status amp_pass_autodiff(amp_graph *g, int loss, int seed, int n_wrt, const int *wrt, int *grads);

/* Graph editing helpers shared by passes (passes/edit.c). */
/* A fresh value name "<base><suffix>" (with a counter when taken); id or -1. */
int amp_edit_new_value(amp_graph *g, const char *base, const char *suffix);
/* Drop nodes marked dead[i] (their arrays freed) and relink. */
amp_status amp_edit_remove_nodes(amp_graph *g, const bool *dead);
/* Count consumers of every value (graph outputs count as one each); *out owned by the caller. */
amp_status amp_edit_use_counts(amp_graph *g, int **out);

#endif
