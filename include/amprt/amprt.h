/*
 * amprt — an embeddable C11 runtime for ONNX models, in mixed precision.
 *
 * This header is the specification of the public API.
 *
 * Conventions
 *  - Every call that can fail returns amp_status. AMP_OK is 0. On failure the detailed message
 *    is read from the object or the context (amp_context_last_error), never from a global, and
 *    out-parameters are left untouched.
 *  - Constructors are amp_*_create / amp_*_load; each has a destructor amp_*_destroy that
 *    returns void and accepts NULL. An object borrows the one it was made from (a tensor or
 *    model its context, a session its model): destroy the borrower first.
 *  - Accessors that return a value (counts, dtype, rank, ...) return 0, NULL or AMP_UNDEFINED
 *    for a NULL object; calls that return amp_status return AMP_ERR_INVALID_ARG for a NULL
 *    object or a NULL required pointer (with no object there may be no message to read).
 *  - Option structs start with their own size (set it with sizeof, or leave the whole struct
 *    zeroed): zero in any field means "the default", so new fields never break callers. Where
 *    0 is itself a value one may ask for and differs from the default (AdamW's weight_decay
 *    0.01, beta1 0.9, ...), the struct has an `unsigned set` mask: the field's AMP_*_SET_* bit
 *    says "use this value, 0 included". Fields without a bit have no useful 0 besides the
 *    default: a thread count, a limit, an initial loss scale (and a range limit of 0 would
 *    keep every node that sees a nonzero value in FP32).
 *  - Output structs the library fills (amp_value_info, amp_plan_stats, amp_autocast_report,
 *    amp_trainer_state) start with their size too, which the caller must set:
 *        amp_plan_stats ps = {.struct_size = sizeof ps};
 *    The library writes only the fields that fit in that size (a program built against an
 *    older header gets its older, shorter struct filled and nothing past it), never changes
 *    struct_size, and leaves fields it does not know (a newer header's) as the caller set them.
 *    A struct_size smaller than sizeof(size_t) (0, say) fails with AMP_ERR_INVALID_ARG.
 *  - Ownership is stated per function: "owned by the caller" means the caller destroys it;
 *    "borrowed" means it lives as long as the object it came from.
 *  - There is no mutable global state: two contexts in two threads never touch each other.
 *    One context, model or session must not be used by two threads at once; a model may be
 *    shared by several sessions in several threads once loaded (it is read-only after load).
 */
#ifndef AMPRT_AMPRT_H
#define AMPRT_AMPRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(AMPRT_SHARED_BUILD)
#define AMP_API __declspec(dllexport)
#elif defined(__GNUC__)
#define AMP_API __attribute__((visibility("default")))
#else
#define AMP_API
#endif

/* The version of this header. Versions follow semantic versioning (README, "Versions and
 * ABI"): before 1.0 a minor release may change the API and the ABI, and says so in CHANGELOG.md;
 * a patch release changes neither. The shared library's soname carries the major version. */
#define AMP_VERSION_MAJOR 0
#define AMP_VERSION_MINOR 1
#define AMP_VERSION_PATCH 0
/* The version as one number, major * 10000 + minor * 100 + patch (for #if). */
#define AMP_VERSION_NUMBER (AMP_VERSION_MAJOR * 10000 + AMP_VERSION_MINOR * 100 + AMP_VERSION_PATCH)

/* ---------------------------------------------------------------------------------------- */
/* Status codes: names and messages come from one table (amp_status_name, amp_status_str).   */

#define AMP_STATUS_LIST(X)                                                                 \
    X(AMP_OK, 0, "ok")                                                                     \
    X(AMP_ERR_INVALID_ARG, 1, "invalid argument")                                         \
    X(AMP_ERR_NO_MEMORY, 2, "out of memory")                                               \
    X(AMP_ERR_IO, 3, "file input/output error")                                           \
    X(AMP_ERR_PARSE, 4, "malformed model or tensor file")                                 \
    X(AMP_ERR_INVALID_GRAPH, 5, "invalid graph")                                          \
    X(AMP_ERR_UNSUPPORTED, 6, "unsupported operator, dtype or feature")                   \
    X(AMP_ERR_SHAPE, 7, "shape or dtype mismatch")                                        \
    X(AMP_ERR_OVERFLOW, 8, "size overflow")                                               \
    X(AMP_ERR_LIMIT, 9, "limit exceeded")                                                 \
    X(AMP_ERR_NOT_FOUND, 10, "not found")                                                 \
    X(AMP_ERR_BACKEND, 11, "backend error")                                               \
    X(AMP_ERR_NO_DEVICE, 12, "no such device")                                            \
    X(AMP_ERR_INTERNAL, 13, "internal error")

typedef enum amp_status {
#define AMP_X_(name, value, msg) name = value,
    AMP_STATUS_LIST(AMP_X_)
#undef AMP_X_
    AMP_STATUS_COUNT
} amp_status;

/* "AMP_ERR_PARSE" for AMP_ERR_PARSE; "unknown" for a value outside the table. Static string. */
/* The version of the library linked at run time, "MAJOR.MINOR.PATCH" (static string): compare
 * with AMP_VERSION_* to catch a program built against another header. */
AMP_API const char *amp_version(void);
/* The same as one number, as AMP_VERSION_NUMBER. */
AMP_API int amp_version_number(void);
/* How the library was built, one line per item ("compiler: GNU 14.2.0", "build type: Release",
 * "BLAS: OpenBLAS 0.3.29", "OpenMP: ...", "CUDA: ...", "sanitizers: off"); static string. */
AMP_API const char *amp_build_info(void);

AMP_API const char *amp_status_name(amp_status s);
/* A short human-readable description of the code. Static string. */
AMP_API const char *amp_status_str(amp_status s);

/* ---------------------------------------------------------------------------------------- */
/* Element types. The values are ONNX's TensorProto.DataType numbers.                        */

typedef enum amp_dtype {
    AMP_UNDEFINED = 0,
    AMP_F32 = 1,
    AMP_U8 = 2,
    AMP_I8 = 3,
    AMP_U16 = 4,
    AMP_I16 = 5,
    AMP_I32 = 6,
    AMP_I64 = 7,
    AMP_BOOL = 9,
    AMP_F16 = 10,
    AMP_F64 = 11,
    AMP_U32 = 12,
    AMP_U64 = 13,
    AMP_BF16 = 16
} amp_dtype;

/* Bytes per element (0 for a dtype amprt does not hold). */
AMP_API size_t amp_dtype_size(amp_dtype t);
/* "float32", "float16", ...; "undefined" for unknown values. Static string. */
AMP_API const char *amp_dtype_name(amp_dtype t);

#define AMP_MAX_RANK 8

/* ---------------------------------------------------------------------------------------- */
/* Context: allocator and log hooks, limits, the last error message.                         */

typedef struct amp_allocator {
    /* All three receive user_data. NULL functions mean the C library's malloc family.
     * alloc may return NULL: amprt turns that into AMP_ERR_NO_MEMORY and frees what it made. */
    void *(*alloc)(void *user_data, size_t size);
    void *(*realloc)(void *user_data, void *ptr, size_t size);
    void (*free)(void *user_data, void *ptr);
    void *user_data;
} amp_allocator;

typedef enum amp_log_level { AMP_LOG_ERROR = 0, AMP_LOG_WARN = 1, AMP_LOG_INFO = 2, AMP_LOG_DEBUG = 3 } amp_log_level;

typedef void (*amp_log_fn)(void *user_data, amp_log_level level, const char *message);

typedef struct amp_context_desc {
    size_t struct_size;       /* sizeof(amp_context_desc), or 0 */
    amp_allocator allocator;  /* zero: malloc/realloc/free */
    amp_log_fn log;           /* NULL: no logging */
    void *log_user_data;
    amp_log_level log_level;  /* messages at or below this level go to log (default ERROR) */
    /* Limits (0 means the default given in brackets). */
    int64_t max_tensor_elements;  /* [2^31] elements in any one tensor */
    int64_t max_file_bytes;       /* [2 GiB] model file and each external-data file */
    int64_t max_nodes;            /* [1,000,000] nodes in a graph */
    int64_t max_memory_bytes;     /* [8 GiB] bytes one plan may hold: its arena and the constants
                                     it folds; checked before any of it is allocated */
} amp_context_desc;

typedef struct amp_context amp_context;

/* Constructor. desc may be NULL (all defaults); it is copied, so it may be freed after the
 * call. *out is owned by the caller; on failure (AMP_ERR_NO_MEMORY when the allocator refuses)
 * *out is untouched and no message exists, as there is no context to hold it. */
AMP_API amp_status amp_context_create(const amp_context_desc *desc, amp_context **out);
/* Destructor. Everything made from the context (tensors, models, sessions, trainers) must be
 * destroyed first. NULL-safe. */
AMP_API void amp_context_destroy(amp_context *ctx);
/* The message of the last failing call made through ctx (or one of its objects).
 * Borrowed: valid until the next call through ctx. Never NULL ("" when none). */
AMP_API const char *amp_context_last_error(const amp_context *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Tensors.                                                                                  */

typedef struct amp_tensor amp_tensor;

/* Constructor: a new tensor with zeroed storage. dims (rank entries) is copied and may be NULL
 * when rank is 0. *out is owned by the caller and borrows ctx; on failure *out is untouched
 * and the message is on ctx. */
AMP_API amp_status amp_tensor_create(amp_context *ctx, amp_dtype dtype, int rank, const int64_t *dims,
                                     amp_tensor **out);
/* Constructor: a tensor over the caller's memory (nbytes must equal the tensor's size).
 * amprt never frees data; it must outlive the tensor. *out is owned by the caller and borrows
 * ctx; on failure *out is untouched and the message is on ctx. */
AMP_API amp_status amp_tensor_wrap(amp_context *ctx, amp_dtype dtype, int rank, const int64_t *dims, void *data,
                                   size_t nbytes, amp_tensor **out);
/* Constructor: read an ONNX TensorProto (.pb) file. *out is owned by the caller and borrows
 * ctx; if name is not NULL, *name receives the tensor's name (owned by the caller, free with
 * amp_free(ctx, *name)). On failure *out is untouched, *name is untouched or NULL (nothing to
 * free), and the message is on ctx. */
AMP_API amp_status amp_tensor_load_pb(amp_context *ctx, const char *path, amp_tensor **out, char **name);
/* Method: write t as an ONNX TensorProto (.pb) file whose name field is name (NULL: an empty
 * name; ONNX test data names it after the graph input or output it feeds). t is only read.
 * The file is written to a temporary name, then renamed: on failure an existing file at path
 * is left as it was, and the message is on ctx. */
AMP_API amp_status amp_tensor_save_pb(amp_context *ctx, const amp_tensor *t, const char *name, const char *path);
/* Destructor: the tensor and, unless it wraps the caller's memory, its storage. NULL-safe. */
AMP_API void amp_tensor_destroy(amp_tensor *t);

/* 16-bit floats for callers: a model converted to FP16 or BF16 with 16-bit inputs and outputs
 * takes and gives uint16_t arrays. From f32 the values round to nearest even, NaN stays NaN and
 * values beyond the 16-bit range become infinities, exactly as amprt's own Cast does; to f32
 * the conversion is exact. dtype is AMP_F16 or AMP_BF16; AMP_ERR_INVALID_ARG for another dtype
 * or a NULL array with n > 0. */
AMP_API amp_status amp_convert_from_f32(amp_dtype dtype, const float *src, void *dst, size_t n);
AMP_API amp_status amp_convert_to_f32(amp_dtype dtype, const void *src, float *dst, size_t n);
/* Constructor: a copy of t in dtype, between f32, f16 and bf16 (and f64 to or from f32), with
 * the rounding above; the same dtype gives a plain copy. *out is owned by the caller; on failure
 * it is untouched and the message is on ctx (AMP_ERR_UNSUPPORTED for other dtype pairs). */
AMP_API amp_status amp_tensor_convert(amp_context *ctx, const amp_tensor *t, amp_dtype dtype, amp_tensor **out);

/* Element type (AMP_UNDEFINED for NULL). */
AMP_API amp_dtype amp_tensor_dtype(const amp_tensor *t);
/* Number of dims, 0 for a scalar (and for NULL). */
AMP_API int amp_tensor_rank(const amp_tensor *t);
/* Borrowed array of rank dims, valid as long as t (NULL for NULL). */
AMP_API const int64_t *amp_tensor_dims(const amp_tensor *t);
/* Number of elements: the product of the dims, 1 for a scalar (0 for NULL). */
AMP_API int64_t amp_tensor_numel(const amp_tensor *t);
/* Bytes of storage: numel * amp_dtype_size(dtype) (0 for NULL). */
AMP_API size_t amp_tensor_nbytes(const amp_tensor *t);
/* Borrowed pointer to the elements (row-major, dtype's layout; f16/bf16 as uint16 bits), valid
 * as long as t; writing through it changes the tensor. NULL for NULL. */
AMP_API void *amp_tensor_data(amp_tensor *t);

/* Frees memory amprt handed to the caller (strings such as amp_tensor_load_pb's name); ctx is
 * the context of the call that returned it. NULL-safe (either argument). */
AMP_API void amp_free(amp_context *ctx, void *p);

/* ---------------------------------------------------------------------------------------- */
/* Models.                                                                                   */

typedef struct amp_model amp_model;

/* Constructor: load an ONNX file. External data files are read relative to the file's folder
 * and must stay inside it. *out is owned by the caller; it borrows ctx. On failure *out is
 * untouched and the message is on ctx. */
AMP_API amp_status amp_model_load(amp_context *ctx, const char *path, amp_model **out);
/* Constructor: load from bytes in memory (copied; the buffer may be freed after the call).
 * base_dir is where external data is looked for; NULL refuses external data. *out is owned by
 * the caller and borrows ctx; on failure *out is untouched and the message is on ctx. */
AMP_API amp_status amp_model_load_buffer(amp_context *ctx, const void *data, size_t size, const char *base_dir,
                                         amp_model **out);
/* Method: write the model as ONNX (temporary name, then rename: on failure an existing file at
 * path is left as it was). The model is only read; the message is on its context. */
AMP_API amp_status amp_model_save(amp_model *model, const char *path);
/* Destructor. Sessions made from the model must be destroyed first; models made from it by
 * amp_model_autocast and trainers made from it are independent copies. NULL-safe. */
AMP_API void amp_model_destroy(amp_model *model);

typedef struct amp_value_info {
    size_t struct_size;               /* set by the caller: sizeof(amp_value_info) */
    const char *name;                 /* borrowed from the model */
    amp_dtype dtype;
    int rank;                         /* -1 when the model does not say */
    int64_t dims[AMP_MAX_RANK];       /* -1 for a symbolic or unknown dim */
    const char *dim_names[AMP_MAX_RANK]; /* symbolic name of dim i or NULL; borrowed */
} amp_value_info;

/* Graph inputs a run must be given: those without an initializer (0 for NULL). */
AMP_API int amp_model_input_count(const amp_model *model);
/* Graph outputs (0 for NULL). */
AMP_API int amp_model_output_count(const amp_model *model);
/* Fill *info (struct_size set by the caller) for input i (0-based, as counted by
 * amp_model_input_count) or output i. The strings in it are borrowed from the model: valid until
 * amp_model_destroy. On failure (an index out of range, a bad struct_size) *info is untouched
 * and the message is on the model's context. */
AMP_API amp_status amp_model_input_info(const amp_model *model, int i, amp_value_info *info);
AMP_API amp_status amp_model_output_info(const amp_model *model, int i, amp_value_info *info);
/* The opset of the default ONNX domain (0 for NULL). */
AMP_API int64_t amp_model_opset(const amp_model *model);

/* ---------------------------------------------------------------------------------------- */
/* Sessions: a model compiled for a backend, with its memory plan.                           */

typedef struct amp_dim_binding {
    const char *name; /* symbolic dim name */
    int64_t value;
} amp_dim_binding;

typedef struct amp_session_options {
    size_t struct_size;          /* sizeof(amp_session_options), or 0 */
    /* The backend, by name: "cpu"; "cuda"; "auto" or NULL: CUDA when a device is present, the
     * build has the CUDA backend and it supports every node, else the CPU; "cpu-check": the CPU
     * backend wrapped so that every kernel's memory mistakes fail (NaN-filled outputs and
     * workspaces, poisoned dead arena bytes; for tests). Borrowed during amp_session_create. */
    const char *backend;
    int threads;                 /* 0: one per core */
    /* Fused kernels: 0, the fusions the backend asks for (CUDA: bias and activation into the
     * GEMM and the convolution, Add + LayerNormalization, attention around one softmax, GELU,
     * the weights' casts in one launch; the CPU: GELU, bias and activation into the GEMM and
     * the convolution); -1: none; 1: all of them, on any backend. A
     * fused graph whose shapes do not fit is planned unfused. */
    int fusion;
} amp_session_options;

typedef struct amp_session amp_session;

/* Constructor. opts may be NULL (all defaults); it is copied. The session borrows model:
 * destroy the session first. *out is owned by the caller; on failure (an unknown op, a backend
 * that is not there) *out is untouched and the message is on the model's context. */
AMP_API amp_status amp_session_create(amp_model *model, const amp_session_options *opts, amp_session **out);
/* Destructor: the session's plans and arena. Output tensors its runs created belong to the
 * caller and stay valid. NULL-safe. */
AMP_API void amp_session_destroy(amp_session *s);
/* The message of the last failing call on this session (each session has its own, so sessions
 * of one model may run in different threads). Borrowed: valid until the next call on s.
 * Never NULL ("" when none, and for NULL). */
AMP_API const char *amp_session_last_error(const amp_session *s);
/* The name of the backend the session runs on ("cpu", "cuda", ...; what "auto" chose).
 * Static string; NULL when s is NULL. */
AMP_API const char *amp_session_backend(const amp_session *s);
/* Why that backend: "as asked" when one was named; for "auto", which it picked and why (the
 * CUDA module or device that is missing, or the first node CUDA has no kernel for). Borrowed,
 * valid while s lives; "" for NULL. */
AMP_API const char *amp_session_backend_note(const amp_session *s);
/* The backends this build knows by name, i = 0, 1, ... ("auto", "cpu", ...); NULL past the last.
 * A name listed may still fail to create (no CUDA module or no device). */
AMP_API const char *amp_backend_name(int i);

/* Run once. inputs[i] is bound to the graph input named input_names[i] (every graph input that
 * has no initializer must be given). outputs[i] receives the graph output named output_names[i]:
 *  - if outputs[i] is NULL on entry, a new tensor is created (owned by the caller);
 *  - otherwise it must have the output's dtype and shape, and is filled in place.
 * The inputs are only read and may be freed after the call; created outputs borrow the model's
 * context. On failure outputs[] that were NULL stay NULL, and the message is on s. */
AMP_API amp_status amp_session_run(amp_session *s, int n_inputs, const char *const *input_names,
                                   const amp_tensor *const *inputs, int n_outputs, const char *const *output_names,
                                   amp_tensor **outputs);

typedef struct amp_plan_stats {
    size_t struct_size;        /* set by the caller: sizeof(amp_plan_stats) */
    size_t arena_bytes;        /* one arena holding every intermediate of a run */
    size_t lower_bound_bytes;  /* max over steps of live bytes: no plan can be smaller */
    size_t persistent_bytes;   /* weights and constants */
    size_t naive_bytes;        /* one buffer per intermediate */
    int nodes_run;             /* nodes executed per run (after folding) */
    int nodes_folded;          /* constant nodes computed once at plan time */
    int inplace;               /* outputs written over an input */
    const char *strategy;      /* heuristic that won; static string */
    size_t workspace_bytes;    /* the nodes' workspaces (cuBLASLt, cuDNN, reductions), summed; each is a
                                  one-node buffer inside the arena, so arena_bytes includes them */
} amp_plan_stats;

/* Method: plan for the given input shapes without running (bindings for symbolic dims; n may be
 * 0 when the model's shapes are all concrete). The plan is kept for later runs of those shapes.
 * Fills *stats (struct_size set by the caller; stats may be NULL). On failure *stats is
 * untouched and the message is on s. */
AMP_API amp_status amp_session_plan(amp_session *s, int n_bindings, const amp_dim_binding *bindings,
                                    amp_plan_stats *stats);
/* Stats of the plan of the last run or amp_session_plan into *stats (struct_size set by the
 * caller): AMP_ERR_NOT_FOUND when there is none yet. On failure *stats is untouched. */
AMP_API amp_status amp_session_last_plan(const amp_session *s, amp_plan_stats *stats);

/* ---------------------------------------------------------------------------------------- */
/* Autocast: FP32 -> mixed precision (FP16 or BF16 where safe, FP32 where numerics demand).   */

typedef enum amp_round_mode {
    AMP_ROUND_NEAREST_EVEN = 0, /* default, what IEEE casts and tensor cores do */
    AMP_ROUND_TOWARD_ZERO = 1   /* truncation, to compare the two methods */
} amp_round_mode;

typedef enum amp_autocast_reason {
    AMP_REASON_DENY_CLASS = 1,   /* the op's class computes in FP32 (Exp, Log, Pow, reductions, ...);
                                    after a max_error search that tried it in 16 bits: value = the
                                    output error measured with it in 16 bits, limit = max_error */
    AMP_REASON_RANGE = 2,        /* calibration or a constant: value = max |x| seen, limit = the limit */
    AMP_REASON_UNDERFLOW = 3,    /* calibration: value = max |x| seen, limit = the underflow threshold */
    AMP_REASON_BLOCKED = 4,      /* block_ops / block_nodes */
    AMP_REASON_OPSET = 5,        /* the 16-bit type is not valid ONNX for the op at the model's opset */
    AMP_REASON_ERROR_TARGET = 6, /* max_error search: value = the output error keeping it FP32 removed */
    AMP_REASON_NEIGHBOURS = 7,   /* infer/clear op coloured FP32 by its FP32 producers or consumers
                                    (after a max_error search that tried it in 16 bits: value and
                                    limit as for AMP_REASON_DENY_CLASS) */
    AMP_REASON_NOT_AUTOCAST = 8  /* an op autocast leaves as the file has it (a Constant, the
                                    model's own Cast to float), whose output is FP32 */
} amp_autocast_reason;

typedef struct amp_autocast_decision {
    const char *node;            /* node name (may be "" when the file has none) */
    const char *op_type;         /* ONNX op type */
    amp_autocast_reason reason;
    double value;                /* see the reason; 0 where it has none */
    double limit;                /* see the reason; 0 where it has none */
} amp_autocast_decision;

typedef struct amp_autocast_options {
    size_t struct_size;             /* sizeof(amp_autocast_options), or 0 */
    amp_dtype dtype;                /* AMP_F16 (default) or AMP_BF16 */
    int io_16bit;                   /* nonzero: graph inputs and outputs become 16-bit too (0, the
                                       default: they stay FP32, what callers feeding FP32 expect) */
    const char *const *block_ops;   /* op types kept in FP32 (e.g. "Add") */
    int n_block_ops;
    const char *const *block_nodes; /* node names kept in FP32 */
    int n_block_nodes;
    amp_round_mode round;           /* rounding of converted constants and inserted casts */
    /* Range-aware mode: calibration runs of the FP32 graph. calib_inputs holds n_calib sets of
     * n_calib_names tensors, set-major (set s, input i at s * n_calib_names + i). */
    int n_calib;
    int n_calib_names;
    const char *const *calib_names;
    const amp_tensor *const *calib_inputs;
    /* A node stays FP32 when max |x| over calibration of any of its float inputs or outputs
     * exceeds this (finite values only: an infinity or NaN the FP32 model computes, such as a
     * -inf attention mask, is the same in 16 bits). 0: the default, the largest finite 16-bit
     * value / 16 (4094 for FP16). */
    double range_limit;
    /* nonzero: ops that have no 16-bit type in the ONNX schema at the model's opset (Conv and
     * pooling in BF16 before opset 22, ...) may still run in 16 bits. amprt's own runs and
     * training handle them; the result is not a valid ONNX file for other runtimes. */
    int allow_nonstandard_types;
    /* Called after each calibration run with the runs done and their total (NULL: not called);
     * a long calibration can show its progress this way. */
    void (*progress)(void *user_data, int done, int total);
    void *progress_user_data;
    /* Called once per node left computing in FP32, with the reason, in node order, before
     * amp_model_autocast returns (NULL: not called). The strings live for the call only. */
    void (*explain)(void *user_data, const amp_autocast_decision *d);
    void *explain_user_data;
    /* Error-targeted conversion (needs calibration sets): > 0 finds a conversion whose outputs
     * on the calibration sets stay within this relative L2 error of FP32, keeping as many
     * MatMul/Conv/Gemm FLOPs in 16 bits as it can; fails with AMP_ERR_LIMIT when none does.
     * The error: for each float graph output o, over all sets concatenated,
     *   e_o = sqrt(sum (y - y_fp32)^2 / sum y_fp32^2)   (sqrt(sum (y - y_fp32)^2) when the
     * FP32 output is all zeros; infinity when y holds a NaN or inf where y_fp32 is finite), and
     * the error is the largest e_o. y_fp32 comes from the FP32 model, y from the converted one,
     * both run by amprt's CPU backend unfused (fusion -1: every op rounded to its type, as
     * 16-bit hardware computes it). The search runs the calibration sets through candidate
     * conversions: at most 100 passes over the sets, calibration and the FP32 reference
     * included (amp_autocast_report.error_passes). Nodes it keeps FP32 are explained with
     * AMP_REASON_ERROR_TARGET. */
    double max_error;
    /* With calibration: a node stays FP32 when some float value it reads or writes (constants
     * aside) is nonzero but max |x| over calibration is below this, so that even the value's
     * largest element lies below the 16-bit type's normal range and every element would keep
     * fewer significant bits than the type has (all of them, down to zero, 2^-24 for FP16).
     * 0: the default, the smallest normal 16-bit value (2^-14 = 6.1e-5 for FP16, 2^-126 for
     * BF16, whose range is FP32's); negative: no underflow guard. All-zero values (an unused
     * bias, a dead ReLU) are exact in 16 bits and keep nothing FP32. */
    double underflow_limit;
    /* > 0: first raise the model's default-domain opset to this (amp_pass_convert_opset: nodes
     * whose signature changed are rewritten with the same meaning), so that more ops have a 16-bit
     * type in the ONNX schema (BF16 mostly arrives at 13, Conv and pooling at 22). A node that
     * cannot be carried, or a target below the model's opset, fails with AMP_ERR_UNSUPPORTED
     * naming it. 0: keep the file's opset. */
    int target_opset;
    /* Node names computed in 16 bits whatever their op class (the deny ops: Softmax,
     * LayerNormalization, Reduce*, Exp, ...) or their FP32 neighbours would say: the caller has
     * measured that the 16-bit version is good enough. Blocking, calibration ranges (checked for
     * these nodes as for any other) and the opset still keep such a node FP32. The max_error
     * search adds its own. */
    const char *const *allow_nodes;
    int n_allow_nodes;
    /* With max_error: nonzero keeps in FP32 every node the op classes put there (deny-class
     * nodes and the neighbours that follow them into FP32), as the plain conversion does. 0
     * (the default): the search also tries those nodes in 16 bits, all at once and then by
     * halves, and moves each one whose 16-bit version keeps the error within max_error
     * (amp_autocast_report.nodes_relaxed); an explicit error target measured on the caller's
     * own data is the contract, the op classes only a prior. Nodes kept FP32 by ranges, the
     * opset or the caller's block lists are not tried. */
    int keep_op_classes;
} amp_autocast_options;

typedef struct amp_autocast_report {
    size_t struct_size;     /* set by the caller: sizeof(amp_autocast_report) */
    int nodes_16bit;        /* nodes computing in the 16-bit type (inserted casts not counted) */
    int nodes_fp32;         /* nodes computing on FP32 tensors */
    int nodes_other;        /* integer, bool, f64 and shape nodes */
    int casts_inserted;     /* Cast nodes added (after cleanup) */
    int casts_removed;      /* Cast nodes cleanup removed (the pass's own and redundant ones) */
    int inits_converted;    /* initializers stored in 16 bits */
    int inits_duplicated;   /* initializers kept in FP32 and added in 16 bits (mixed consumers) */
    int values_clamped;     /* constant elements clamped to the 16-bit range or its smallest
                               subnormal */
    int nodes_range_kept;   /* nodes kept FP32 by calibration ranges */
    int nodes_blocked;      /* nodes kept FP32 by block_ops / block_nodes */
    int already_16bit;      /* 1: the model had no FP32 compute; it was left as it is */
    double error;           /* max_error: the final relative L2 over the calibration sets (as
                               amp_autocast_options.max_error defines it); -1 when not measured */
    double flops16_share;   /* max_error: the fraction of MatMul/Gemm/Conv/ConvTranspose FLOPs
                               computed in 16 bits (0..1, at the calibration shapes); -1 when not
                               measured */
    int nodes_error_kept;   /* nodes the max_error search kept FP32 */
    int nodes_underflow_kept; /* nodes kept FP32 by calibration underflow */
    int error_passes;       /* max_error: passes over the calibration sets (calibration, the FP32
                               reference and each candidate measured) */
    int nodes_opset_kept;   /* nodes kept FP32 because the op has no 16-bit type in the ONNX
                               schema at the (converted) model's opset (AMP_REASON_OPSET) */
    int opset_from, opset_to; /* the model's default-domain opset before and after conversion
                               (equal without target_opset) */
    int nodes_opset_rewritten; /* nodes target_opset rewrote */
    int nodes_relaxed;      /* max_error: nodes the op classes keep FP32 (deny-class, neighbours)
                               that the search measured and moved to 16 bits (0 with
                               keep_op_classes) */
} amp_autocast_report;

/* Constructor: a converted copy of model. opts may be NULL (FP16, FP32 inputs and outputs). The pass
 * colours tensors over op classes, inserts one Cast per (tensor, dtype), converts initializers,
 * cleans up casts and checks types again; a type error fails the call. *out is owned by the
 * caller and borrows model's context, not model (which may be destroyed first). report may be
 * NULL; else its struct_size is set by the caller and it is filled on success. On failure *out
 * and *report are untouched and the message is on the context. */
AMP_API amp_status amp_model_autocast(const amp_model *model, const amp_autocast_options *opts, amp_model **out,
                                      amp_autocast_report *report);

/* Constructor: a copy of model whose default-domain opset is raised to target, every node whose
 * signature changed on the way rewritten with the same meaning (attributes that became inputs,
 * Upsample -> Resize, ...); the precision is untouched. target equal to the model's opset: a
 * plain copy. AMP_ERR_UNSUPPORTED (naming the node, its op and both opsets) for a node that
 * cannot be carried, a target below the model's opset or above what amprt handles; *out is then
 * untouched. rewritten (may be NULL) receives the count of nodes changed. */
AMP_API amp_status amp_model_convert_opset(const amp_model *model, int target, amp_model **out, int *rewritten);

/* ---------------------------------------------------------------------------------------- */
/* Training and fine-tuning.                                                                 */

typedef enum amp_train_precision {
    AMP_TRAIN_FP32 = 0,      /* everything in FP32 */
    AMP_TRAIN_FP16 = 1,      /* autocast FP16, FP32 master weights, dynamic loss scaling */
    AMP_TRAIN_BF16 = 2,      /* autocast BF16, FP32 master weights, no loss scaling */
    AMP_TRAIN_FP16_PURE = 3  /* the naive scheme of model.half(): weights, gradients, updates
                                and optimizer state all FP16, no loss scaling (to compare) */
} amp_train_precision;

typedef enum amp_optimizer { AMP_OPTIM_SGD = 0, AMP_OPTIM_ADAMW = 1 } amp_optimizer;
typedef enum amp_lr_schedule { AMP_LR_CONSTANT = 0, AMP_LR_STEP = 1, AMP_LR_COSINE = 2 } amp_lr_schedule;
typedef enum amp_loss_kind {
    AMP_LOSS_CROSS_ENTROPY = 0, /* SoftmaxCrossEntropyLoss(output, labels), mean over the batch; labels
                                   int64 N for an N x C output, N x d1 x ... for N x C x d1 x ... */
    AMP_LOSS_MSE = 1,           /* mean squared error between output and labels */
    AMP_LOSS_MODEL = 2          /* the model computes its loss: `output` names it */
} amp_loss_kind;

/* Bits of amp_trainer_options.set: the fields whose 0 is a valid value other than the default. */
enum {
    AMP_TRAIN_SET_LR = 1u << 0,           /* lr 0: parameters stay as they are */
    AMP_TRAIN_SET_WEIGHT_DECAY = 1u << 1, /* weight_decay 0: AdamW without decay */
    AMP_TRAIN_SET_BETA1 = 1u << 2,        /* beta1 0: no first-moment averaging */
    AMP_TRAIN_SET_BETA2 = 1u << 3,        /* beta2 0: the second moment is the last g^2 */
    AMP_TRAIN_SET_EPSILON = 1u << 4,      /* epsilon 0 (as torch allows) */
    AMP_TRAIN_SET_GAMMA = 1u << 5         /* gamma 0: the step schedule drops lr to 0 */
};
/* Every bit above; amp_trainer_create refuses others (a newer header's) rather than ignore them. */
#define AMP_TRAIN_SET_ALL 0x3fu

typedef struct amp_trainer_options {
    size_t struct_size;            /* sizeof(amp_trainer_options), or 0 */
    amp_train_precision precision; /* [FP32] */
    amp_optimizer optimizer;       /* [SGD] */
    double lr;                     /* [0.01 for SGD, 0.001 for AdamW]; bit AMP_TRAIN_SET_LR */
    double momentum;               /* SGD [0] */
    int nesterov;                  /* SGD [0] */
    double weight_decay;           /* [0 for SGD, 0.01 for AdamW (decoupled)]; AMP_TRAIN_SET_WEIGHT_DECAY */
    double beta1, beta2;           /* AdamW [0.9, 0.999], each in [0, 1); AMP_TRAIN_SET_BETA1, _BETA2 */
    double epsilon;                /* AdamW [1e-8]; AMP_TRAIN_SET_EPSILON */
    double max_grad_norm;          /* clip the global gradient norm; 0: no clipping */
    amp_lr_schedule schedule;      /* [CONSTANT] */
    int64_t step_size;             /* STEP: multiply by gamma every step_size steps */
    double gamma;                  /* STEP [0.1]; AMP_TRAIN_SET_GAMMA */
    int64_t warmup_steps;          /* linear warm-up from lr/warmup to lr (any schedule) [0] */
    int64_t total_steps;           /* COSINE: steps from the end of warm-up down to min_lr */
    double min_lr;                 /* COSINE [0] */
    amp_loss_kind loss;            /* [CROSS_ENTROPY] */
    const char *output;            /* the model output the loss reads (or is) [the first] */
    const char *const *freeze;     /* glob patterns (fnmatch) of initializers kept fixed */
    int n_freeze;
    double init_loss_scale;        /* FP16 [65536] */
    int64_t growth_interval;       /* FP16: clean steps before the scale doubles [2000] */
    int threads;                   /* [one per core] */
    /* AMP_TRAIN_SET_* bits of the fields above whose value is meant as given even when it is 0
     * (weight_decay 0 for AdamW, beta1 0, ...). A field whose bit is clear keeps the rule of
     * every option struct: nonzero is taken as given, 0 means the default in brackets. */
    unsigned set;
    const char *backend;           /* as amp_session_options.backend [auto] */
    int fusion;                    /* as amp_session_options.fusion [0: the backend's choice] */
} amp_trainer_options;

typedef struct amp_trainer amp_trainer;

typedef struct amp_trainer_state {
    size_t struct_size;     /* set by the caller: sizeof(amp_trainer_state) */
    int64_t steps;          /* amp_trainer_step calls */
    int64_t steps_skipped;  /* of which skipped for inf/NaN gradients (FP16) */
    double lr;              /* of the last step */
    double loss_scale;      /* current (1 when there is no loss scaling) */
    double last_loss;
    double last_grad_norm;  /* global norm of the unscaled gradients (+inf when skipped) */
    int last_skipped;
} amp_trainer_state;

/* Constructor: build the training step of model (which is only read; the trainer keeps its own
 * copy): trainable parameters are the FP32 initializers not matched by opts->freeze; the loss,
 * autocast, backward and optimizer nodes form one graph planned as one step. opts may be NULL
 * (all defaults); it is copied, and its strings need only live during the call. *out is owned
 * by the caller and borrows model's context, not model (which may be destroyed first). On
 * failure *out is untouched and the message is on the context. */
AMP_API amp_status amp_trainer_create(const amp_model *model, const amp_trainer_options *opts, amp_trainer **out);
/* Destructor: the trainer's parameters, optimizer state and sessions (tensors from
 * amp_trainer_param die with it; tensors its predictions created belong to the caller).
 * NULL-safe. */
AMP_API void amp_trainer_destroy(amp_trainer *t);
/* The message of the last failing call on this trainer (also written to its context).
 * Borrowed: valid until the next call on t. Never NULL ("" when none, and for NULL). */
AMP_API const char *amp_trainer_last_error(const amp_trainer *t);
/* The backend the trainer's steps and predictions run on (static string; NULL for NULL), and
 * in *note (may be NULL) why, as amp_session_backend_note. */
AMP_API const char *amp_trainer_backend(const amp_trainer *t, const char **note);
/* One optimizer step on a batch. inputs are bound to the model's inputs by name; labels are
 * int64 class indices [N] (cross entropy), a tensor shaped like the output (MSE), or NULL
 * (AMP_LOSS_MODEL). Inputs and labels are only read. *loss (may be NULL) receives the batch
 * loss, unscaled. On failure the message is on t (a step skipped for inf/NaN gradients under
 * FP16 loss scaling is not a failure: see amp_trainer_state). */
AMP_API amp_status amp_trainer_step(amp_trainer *t, int n_inputs, const char *const *names,
                                    const amp_tensor *const *inputs, const amp_tensor *labels, double *loss);
/* Run the model with the current parameters, in the training precision, without training.
 * output_name NULL means the model's first output. *output: as amp_session_run (NULL on entry:
 * created, owned by the caller; on failure it stays NULL). The message is on t. */
AMP_API amp_status amp_trainer_predict(amp_trainer *t, int n_inputs, const char *const *names,
                                       const amp_tensor *const *inputs, const char *output_name, amp_tensor **output);
/* Fill *state (struct_size set by the caller). On failure *state is untouched. */
AMP_API amp_status amp_trainer_get_state(const amp_trainer *t, amp_trainer_state *state);
/* Number of trainable parameters (0 for NULL). */
AMP_API int amp_trainer_param_count(const amp_trainer *t);
/* Parameter i (0-based): its name and its tensor, both borrowed until amp_trainer_destroy;
 * writing into the tensor changes the parameter. name or value may be NULL. On failure (i out
 * of range) they are untouched. */
AMP_API amp_status amp_trainer_param(amp_trainer *t, int i, const char **name, amp_tensor **value);
/* Memory plan of the whole step (forward, loss, backward, optimizer) of the last step into
 * *stats (struct_size set by the caller): AMP_ERR_NOT_FOUND before the first step. On failure
 * *stats is untouched and the message is on t. */
AMP_API amp_status amp_trainer_last_plan(const amp_trainer *t, amp_plan_stats *stats);
/* Checkpoints hold parameters, optimizer state, step count, loss scale and two caller values
 * (e.g. epoch and batch), written to a temporary name, then renamed; loading checks names,
 * shapes and a checksum, and changes nothing on failure (the trainer's state, *user_a and
 * *user_b stay as they were; either pointer may be NULL). Messages are on t. Saving (and
 * amp_trainer_export) fails with AMP_ERR_INVALID_ARG and writes nothing when a parameter is
 * inf or NaN: a diverged run leaves no file that would carry the NaN on. */
AMP_API amp_status amp_trainer_save_checkpoint(amp_trainer *t, const char *path, int64_t user_a, int64_t user_b);
AMP_API amp_status amp_trainer_load_checkpoint(amp_trainer *t, const char *path, int64_t *user_a, int64_t *user_b);
/* Write the trained model as ONNX: dtype AMP_F32 (the original graph with the new weights), or
 * AMP_F16 / AMP_BF16 (converted by autocast, inputs and outputs kept FP32). Temporary name,
 * then rename: on failure an existing file at path is left as it was; the message is on t. */
AMP_API amp_status amp_trainer_export(amp_trainer *t, const char *path, amp_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif /* AMPRT_AMPRT_H */
