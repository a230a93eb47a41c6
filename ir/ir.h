/* The graph IR: values, nodes, attributes, the op table, and the contracts of shape
 * inference functions and CPU kernels. Internal to amprt; nothing here sees protobuf. */
#ifndef AMP_IR_IR_H
#define AMP_IR_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amprt/amprt.h"

/* ---- context internals (runtime/context.c) ---------------------------------------------- */

struct amp_context {
    amp_allocator a;
    amp_log_fn log;
    void *log_user_data;
    amp_log_level log_level;
    int64_t max_tensor_elements;
    int64_t max_file_bytes;
    int64_t max_nodes;
    unsigned long alloc_failures; /* allocations refused so far (tells out-of-memory from a bad
                                     file when a library reports only failure) */
    char err[1024];
};

void *amp_alloc(amp_context *ctx, size_t size);          /* NULL on failure */
void *amp_calloc(amp_context *ctx, size_t n, size_t size); /* zeroed; NULL on failure or overflow */
void *amp_realloc(amp_context *ctx, void *p, size_t size);
void amp_dealloc(amp_context *ctx, void *p);
char *amp_strdup(amp_context *ctx, const char *s);
/* Copy a caller's options struct (which starts with its size; 0 means ours) into a zeroed dst
 * of dst_size bytes: fields a caller built against an older header stay at their defaults. */
void amp_copy_options(void *dst, size_t dst_size, const void *src);
/* Grow *arr (element size elt) so that it holds at least need elements; *cap tracks capacity. */
amp_status amp_grow(amp_context *ctx, void **arr, int *cap, int need, size_t elt);
/* Record a message on ctx (and log it). Returns s, so `return amp_seterr(...)` reads well. */
amp_status amp_seterr(amp_context *ctx, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
amp_status amp_vseterr(amp_context *ctx, amp_status s, const char *fmt, va_list ap);
void amp_log(amp_context *ctx, amp_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- tensors (runtime/tensor.c) ---------------------------------------------------------- */

struct amp_tensor {
    amp_dtype dtype;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    int64_t numel;
    size_t nbytes;
    void *data;
    amp_context *ctx; /* allocator of data when owns */
    int owns;
};

/* numel of dims with overflow and limit checks; AMP_ERR_OVERFLOW when the product or bytes
 * overflow. */
amp_status amp_shape_numel(int rank, const int64_t *dims, amp_dtype dtype, int64_t *numel, size_t *nbytes);
/* Fill a view (no ownership) over data. */
void amp_tensor_view(amp_tensor *t, amp_dtype dtype, int rank, const int64_t *dims, void *data);
/* Deep copy. */
amp_status amp_tensor_clone(amp_context *ctx, const amp_tensor *src, amp_tensor **out);

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
#define OP(id, name, domain, lo, hi, cls, grad, inplace, infer, cpu) AMP_OP_##id,
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

struct amp_infer;
typedef amp_status (*amp_infer_fn)(struct amp_infer *c);

typedef struct amp_op_info {
    const char *name;
    const char *domain;
    int opset_lo, opset_hi;
    amp_cast_class cast_class;
    bool has_grad;
    bool inplace;
    amp_infer_fn infer;
} amp_op_info;

extern const amp_op_info amp_op_table[AMP_OP_COUNT];
/* Look up by ONNX name and domain ("" and "ai.onnx" are the default domain). */
amp_op amp_op_lookup(const char *name, const char *domain);

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
/* A 64-bit hash of the graph's structure (ops, edges, attributes, dtypes). */
uint64_t amp_graph_hash(const amp_graph *g);
/* Free a node's arrays and attributes (not the node struct itself). */
void amp_node_free(amp_context *ctx, amp_node *n);
/* Append a value named name (the caller makes the name unique); its id or -1. */
int amp_graph_new_value(amp_graph *g, const char *name);

/* Attribute lookups (NULL/def when absent). */
const amp_attr *amp_node_attr(const amp_node *n, const char *name);
int64_t amp_attr_int(const amp_node *n, const char *name, int64_t def);
float amp_attr_float(const amp_node *n, const char *name, float def);
const char *amp_attr_str(const amp_node *n, const char *name, const char *def);
/* Returns the count and sets *v, or -1 when absent. */
int amp_attr_ints(const amp_node *n, const char *name, const int64_t **v);
int amp_attr_floats(const amp_node *n, const char *name, const float **v);
const amp_tensor *amp_attr_tensor(const amp_node *n, const char *name);

/* ---- ONNX files (ir/onnx_import.c, ir/onnx_export.c, ir/tensor_pb.c) -------------------- */

amp_status amp_onnx_import(amp_context *ctx, const void *data, size_t size, const char *base_dir, amp_graph **out);
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
bool amp_dtype_is_float(amp_dtype t);
bool amp_dtype_is_int(amp_dtype t);

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

#define OP(id, name, domain, lo, hi, cls, grad, inplace, infer, cpu) \
    amp_status infer(amp_infer *c);                                 \
    amp_status cpu(amp_kernel *k);
#include "ir/ops.def"
#undef OP

#endif
