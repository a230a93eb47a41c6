/* The graph IR: values, nodes, attributes, the op table, and the contracts of shape
 * inference functions and CPU kernels. Internal to amprt; nothing here sees protobuf. */
#ifndef AMP_IR_IR_H
#define AMP_IR_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amprt/amprt.h"
#include "base/base.h"

/* ---- attributes --------------------------------------------------------------------------- */

typedef enum amp_attr_kind {
    AMP_ATTR_UNDEFINED = 0,
    AMP_ATTR_FLOAT = 1,
    AMP_ATTR_INT = 2,
    AMP_ATTR_STRING = 3,
    AMP_ATTR_TENSOR = 4,
    AMP_ATTR_GRAPH = 5,
    AMP_ATTR_FLOATS = 6,
    AMP_ATTR_INTS = 7,
    AMP_ATTR_STRINGS = 8,
    AMP_ATTR_TENSORS = 9,
    AMP_ATTR_GRAPHS = 10,
    AMP_ATTR_SPARSE_TENSOR = 11,
    AMP_ATTR_SPARSE_TENSORS = 12,
    AMP_ATTR_TYPE_PROTO = 13,
    AMP_ATTR_TYPE_PROTOS = 14
} amp_attr_kind;

typedef struct amp_attr {
    char *name;
    amp_attr_kind kind;
    float f;
    int64_t i;
    char *s;          /* STRING: bytes, NUL-terminated; slen excludes the NUL */
    size_t slen;
    float *floats;    /* FLOATS */
    int64_t *ints;    /* INTS */
    char **strings;   /* STRINGS */
    int n;            /* element count of floats/ints/strings/tensors */
    amp_tensor *t;    /* TENSOR */
    amp_tensor **tensors; /* TENSORS */
    char *ref_attr_name; /* attribute reference inside functions (kept for export) */
    char *doc;
} amp_attr;

/* ---- the op table (ir/ops.def) ------------------------------------------------------------ */

typedef enum amp_op {
    AMP_OP_UNKNOWN = 0,
#define OP(id, name, domain, lo, hi, cls, bf16, types, grad, inplace, infer, cpu) AMP_OP_##id,
#include "ir/ops.def"
#undef OP
    AMP_OP_COUNT
} amp_op;

typedef enum amp_cast_class {
    AMP_CLASS_NONE = 0,
    AMP_CLASS_ALLOW,
    AMP_CLASS_DENY,
    AMP_CLASS_INFER,
    AMP_CLASS_CLEAR,
    AMP_CLASS_PERINPUT
} amp_cast_class;

/* The type constraints of one node, as the ONNX schemas state them: which inputs and outputs
 * share the node's main type T, and the dtype of every other output. The op table holds one per
 * op (ir/ops.def, TYPES); passes/typecheck.c reads them. */
typedef struct amp_type_rule {
    bool known;          /* false: an op amprt has no rule for; its types are left as declared */
    uint32_t tin;        /* bit i: input i has type T */
    uint32_t tout;       /* bit k: output k has type T */
    /* outputs not in tout: > 0 a fixed dtype; < 0 the dtype of input (-x - 1); 0 unknown */
    int out_rule[8];
    uint32_t agnostic;   /* inputs whose dtype does not change what the node computes
                            (Shape's input, Cast's input, EyeLike's input with a dtype) */
} amp_type_rule;

/* Every input (or output) in a type rule's or a value-input mask; only the node's real ones count. */
#define AMP_TYPES_ALL 0xffffffffu
#define AMP_VALUE_ALL 0xffffffffu

struct amp_infer;
struct amp_node;
struct amp_grad_ctx;
typedef amp_status (*amp_infer_fn)(struct amp_infer *c);
/* A type rule that depends on the node's attributes or opset (Cast's `to`, BatchNormalization
 * before and after opset 15); fills r, which arrives as the op's static rule. */
typedef void (*amp_types_fn)(const struct amp_node *n, int64_t opset, amp_type_rule *r);
/* A family's gradient builder (contract in ir/grad.h). */
typedef amp_status (*amp_grad_fn)(struct amp_grad_ctx *c);

typedef struct amp_op_info {
    const char *name;
    const char *domain;
    int opset_lo, opset_hi;
    amp_cast_class cast_class;
    int bf16_opset;          /* first opset whose ONNX schema gives T tensor(bfloat16); 0: none */
    amp_type_rule types;     /* static rule; .known false: none (listed as TYPES_NONE) */
    amp_types_fn types_fn;   /* NULL unless the rule reads attributes or the opset */
    bool has_grad;
    amp_grad_fn grad_builder; /* non-NULL exactly when has_grad */
    bool inplace;
    amp_infer_fn infer;
} amp_op_info;

extern const amp_op_info amp_op_table[AMP_OP_COUNT];
/* Look up by ONNX name and domain ("" and "ai.onnx" are the default domain). */
amp_op amp_op_lookup(const char *name, const char *domain);
/* True for the default ONNX domain: NULL, "" or "ai.onnx" (ir/graph.c). */
bool amp_domain_is_default(const char *domain);

/* ---- the graph ---------------------------------------------------------------------------- */

typedef struct amp_dim {
    int64_t value;   /* >= 0 when concrete, -1 when symbolic or unknown */
    int sym;         /* index into graph->syms, or -1 */
} amp_dim;

typedef struct amp_value {
    char *name;
    amp_dtype dtype;     /* AMP_UNDEFINED when not declared and not yet inferred */
    int elem_onnx_type;  /* ONNX element type as declared (for types amprt does not hold) */
    int rank;            /* -1 when unknown */
    amp_dim dims[AMP_MAX_RANK];
    int producer;        /* node index, or -1 for graph inputs and initializers */
    int producer_slot;
    amp_tensor *init;    /* initializer data, owned by the graph; NULL otherwise */
    bool is_input;       /* a graph input (not an initializer) */
    bool is_output;
    bool declared;       /* has a value_info/input/output entry */
    bool dynamic;        /* an input never known while planning (training data and state):
                            small integer inputs and scalars are otherwise planned by value */
    char *doc;
} amp_value;

typedef struct amp_node {
    char *name;
    char *op_type;
    char *domain;
    amp_op op;            /* AMP_OP_UNKNOWN when not in the table */
    int *inputs;          /* value ids; -1 for an omitted optional input */
    int n_inputs;
    int *outputs;         /* value ids; -1 for an omitted optional output */
    int n_outputs;
    amp_attr *attrs;
    int n_attrs;
    char *doc;
    unsigned flags;       /* AMP_NODE_* (amprt's own; not written to ONNX) */
    /* The first attribute a typed getter found with another kind (index + 1; 0: none) and the
     * kind it wanted. The getters record it so that no reader can take a default for a wrong
     * type: plan building fails the node (amp_node_attr_check) after inference, folding and
     * every kernel run. Written only when a graph is wrong, so valid graphs stay read-only. */
    int attr_misread;
    amp_attr_kind attr_wanted;
} amp_node;

enum {
    AMP_NODE_INSERTED = 1u, /* added by a pass (autocast casts); cleanup may remove it */
    AMP_NODE_CAST_RTZ = 2u  /* Cast to f16/bf16 truncates (round toward zero) */
};

typedef struct amp_opset {
    char *domain;
    int64_t version;
} amp_opset;

typedef struct amp_graph {
    amp_context *ctx;
    char *name;
    char *doc;
    int64_t ir_version;
    char *producer_name, *producer_version, *model_domain;
    int64_t model_version;
    amp_opset *opsets;
    int n_opsets;
    int64_t opset;        /* default domain version */

    amp_value *values;
    int n_values, cap_values;
    amp_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs;          /* graph inputs in declared order (may include initializers) */
    int n_inputs;
    int *outputs;
    int n_outputs;
    int *inits;           /* initializer values in file order */
    int n_inits;
    char **syms;          /* symbolic dim names */
    int n_syms;
    char **meta_keys, **meta_values;
    int n_meta;
} amp_graph;

amp_status amp_graph_create(amp_context *ctx, amp_graph **out);
void amp_graph_destroy(amp_graph *g);
/* Find a value by name; -1 when absent. */
int amp_graph_find_value(const amp_graph *g, const char *name);
/* Find or add a value; returns its id or -1 on allocation failure. */
int amp_graph_value(amp_graph *g, const char *name);
/* Intern a symbolic dim name; its index or -1 on allocation failure. */
int amp_graph_sym(amp_graph *g, const char *name);
/* Append a node (fields copied as given; the graph takes ownership of the arrays). */
amp_status amp_graph_add_node(amp_graph *g, amp_node *node);
/* Fill producers; check one producer per value, inputs defined before use (topological
 * order, sorting the nodes when needed), no cycle, no undefined input. */
amp_status amp_graph_link(amp_graph *g);
/* Deep copy of src into *out (owned by the caller, freed with amp_graph_destroy): values with
 * their shapes, flags and initializer data, nodes with every attribute and flag, opsets,
 * metadata, inputs, outputs, initializers and symbol names; value and node ids are kept. On
 * failure (AMP_ERR_NO_MEMORY, message on src's context) nothing is left allocated and *out is
 * untouched. */
amp_status amp_graph_clone(const amp_graph *src, amp_graph **out);
/* A 64-bit hash of the graph's structure (ops, edges, attributes, dtypes). */
uint64_t amp_graph_hash(const amp_graph *g);
/* The opset version the graph imports for a node's domain (the default domain's is g->opset;
 * 1 for a domain the graph does not import). */
int64_t amp_node_opset(const amp_graph *g, const amp_node *n);
/* Free an attribute's arrays (not the struct itself). */
void amp_attr_free(amp_context *ctx, amp_attr *a);
/* n's attribute named name, emptied (kind and payload zeroed; the caller fills them), or a new
 * one appended; NULL when out of memory (n unchanged). Pointers into n->attrs may move. */
amp_attr *amp_node_attr_set(amp_context *ctx, amp_node *n, const char *name);
/* Free a node's arrays and attributes (not the node struct itself). */
void amp_node_free(amp_context *ctx, amp_node *n);
/* Append a value named name (the caller makes the name unique); its id or -1. */
int amp_graph_new_value(amp_graph *g, const char *name);

/* Attribute lookups: the value, or NULL/def/-1 when absent. An attribute present with another
 * kind is never read as absent silently: the getter returns def (or NULL/-1) and records the
 * mismatch on the node (attr_misread), which amp_node_attr_check turns into an error. INT is not
 * taken for FLOAT (onnx.checker and onnxruntime reject it too). amp_node_attr is the untyped
 * lookup and records nothing. */
const amp_attr *amp_node_attr(const amp_node *n, const char *name);
int64_t amp_attr_int(const amp_node *n, const char *name, int64_t def);
float amp_attr_float(const amp_node *n, const char *name, float def);
const char *amp_attr_str(const amp_node *n, const char *name, const char *def);
/* Returns the count and sets *v, or -1 when absent. */
int amp_attr_ints(const amp_node *n, const char *name, const int64_t **v);
int amp_attr_floats(const amp_node *n, const char *name, const float **v);
const amp_tensor *amp_attr_tensor(const amp_node *n, const char *name);
/* The attribute of kind kind named name; NULL when absent, NULL and recorded when of another
 * kind (the typed lookup under every getter above). */
const amp_attr *amp_node_attr_of(const amp_node *n, const char *name, amp_attr_kind kind);
/* AMP_ERR_INVALID_GRAPH naming the node, the attribute, the kind found and the kind wanted when a
 * getter recorded a mismatch on n; AMP_OK otherwise. */
amp_status amp_node_attr_check(amp_context *ctx, const amp_node *n);
/* "INT", "FLOATS", ... as ONNX spells the kinds. Static string. */
const char *amp_attr_kind_name(amp_attr_kind kind);

/* ---- ONNX files (ir/onnx_import.c, ir/onnx_export.c, ir/tensor_pb.c) -------------------- */

amp_status amp_onnx_import(amp_context *ctx, const void *data, size_t size, const char *base_dir, amp_graph **out);
/* The same from a file, read in order and never held whole: peak memory is the tensors. */
amp_status amp_onnx_import_file(amp_context *ctx, const char *path, const char *base_dir, amp_graph **out);
amp_status amp_onnx_export(const amp_graph *g, void **data, size_t *size);
/* Write bytes to path atomically (temporary name in the same folder, then rename). */
amp_status amp_write_file_atomic(amp_context *ctx, const char *path, const void *data, size_t size);
amp_status amp_read_file(amp_context *ctx, const char *path, int64_t max_bytes, void **data, size_t *size);

/* ---- shape inference contract ------------------------------------------------------------ */

/* What inference knows of one value: concrete dtype and dims, and its contents when known at
 * plan time (initializers, constants, folded nodes, shapes). */
typedef struct amp_tinfo {
    amp_dtype dtype;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    const amp_tensor *value; /* NULL when not known before running */
} amp_tinfo;

/* Element count of a value inference knows (its dims were checked when they were set). */
static inline int64_t amp_tinfo_numel(const amp_tinfo *t) { return amp_dims_numel(t->rank, t->dims); }
/* Whether two values have the same shape. */
static inline bool amp_tinfo_same_shape(const amp_tinfo *a, const amp_tinfo *b) {
    return amp_dims_equal(a->rank, a->dims, b->rank, b->dims);
}

typedef struct amp_infer {
    amp_context *ctx;
    const amp_graph *g;
    const amp_node *n;
    int64_t opset;           /* of the node's domain */
    int nin, nout;
    const amp_tinfo *const *in; /* in[i] NULL for an omitted optional input */
    amp_tinfo *const *out;      /* out[i] always writable (scratch for omitted outputs) */
} amp_infer;

/* Set a message naming the node, return s. */
amp_status amp_infer_fail(amp_infer *c, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Common checks. */
amp_status amp_infer_need_inputs(amp_infer *c, int lo, int hi); /* lo..hi present inputs */
/* AMP_ERR_UNSUPPORTED unless dt is one of the listed dtypes (list ends with AMP_UNDEFINED). */
amp_status amp_infer_dtype_in(amp_infer *c, amp_dtype dt, const amp_dtype *allowed);
/* Input i, when present, has input 0's dtype (AMP_ERR_SHAPE naming both otherwise). */
amp_status amp_infer_same_dtype(amp_infer *c, int i);
/* Read a known int64/int32 1-D (or scalar) input as int64 values into v[cap]; sets *n.
 * AMP_ERR_UNSUPPORTED with "data-dependent" when the value is not known at plan time. */
amp_status amp_infer_const_ints(amp_infer *c, int input, int64_t *v, int cap, int *n);
/* Numpy broadcasting of two shapes. */
amp_status amp_broadcast_shape(amp_infer *c, int ra, const int64_t *a, int rb, const int64_t *b, int *rout,
                               int64_t *out);

/* dtype lists used by inference */
extern const amp_dtype amp_dt_float[];    /* f32 f16 bf16 f64 */
extern const amp_dtype amp_dt_numeric[];  /* float + i64 i32 i8 u8 */
extern const amp_dtype amp_dt_signed[];   /* float + i64 i32 i8 */
extern const amp_dtype amp_dt_all[];      /* numeric + bool */

/* Set output i (ignored when the node has fewer outputs) to dtype dt and dims[rank], after
 * checking the rank, every dim and the element count (AMP_ERR_UNSUPPORTED, AMP_ERR_SHAPE,
 * AMP_ERR_OVERFLOW with a message naming the output). */
amp_status amp_infer_set_out(amp_infer *c, int i, amp_dtype dt, int rank, const int64_t *dims);
/* An INT attribute: def when absent, AMP_ERR_INVALID_GRAPH when of another kind. */
amp_status amp_infer_int_attr(amp_infer *c, const char *name, int64_t def, int64_t *v);

/* Normalise a possibly negative axis against rank; AMP_ERR_INVALID_GRAPH when out of range. */
amp_status amp_infer_axis(amp_infer *c, int64_t axis, int rank, int *out);

/* ---- CPU kernel contract ------------------------------------------------------------------ */

typedef struct amp_kernel {
    amp_context *ctx;
    const amp_node *n;
    int64_t opset;
    int nin, nout;
    amp_tensor *const *in;   /* in[i] NULL for an omitted optional input; read-only */
    amp_tensor *const *out;  /* shapes and dtypes already set from inference; data placed */
    void *ws;                /* workspace of ws_bytes (as the backend sized it, backends/cpu/workspace.def) */
    size_t ws_bytes;
    int threads;
} amp_kernel;

typedef amp_status (*amp_cpu_kernel_fn)(amp_kernel *k);

amp_status amp_kernel_fail(const amp_kernel *k, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prototypes of every function the table names: a line naming one that does not exist fails to
 * compile or link. */
#define TYPES_ALL
#define TYPES_NONE
#define TYPES(...)
#define TYPES_FN(fn) void fn(const amp_node *n, int64_t opset, amp_type_rule *r);
#define NOGRAD
#define GRAD(fn) amp_status fn(struct amp_grad_ctx *c);
#define OP(id, name, domain, lo, hi, cls, bf16, types, grad, inplace, infer, cpu) \
    types grad                                                                    \
    amp_status infer(amp_infer *c);
#include "ir/ops.def"
#undef OP

/* Whether shape inference of op reads the value of its input k (OP_VALUE_INPUTS in
 * ir/ops.def); false for AMP_OP_UNKNOWN. */
bool amp_op_value_input(amp_op op, int k);
/* Whether op's outputs depend on its inputs' dims and dtypes only, never on their values
 * (OP_DIMS_ONLY in ir/ops.def: Shape, Size, EyeLike). */
bool amp_op_dims_only(amp_op op);

#endif
