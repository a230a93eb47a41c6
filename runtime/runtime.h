/* Internal: models, sessions and plans. */
#ifndef AMP_RUNTIME_RUNTIME_H
#define AMP_RUNTIME_RUNTIME_H

#include <stdio.h>

#include "backends/backend.h"
#include "ir/ir.h"
#include "passes/memplan.h"

struct amp_model {
    amp_context *ctx;
    amp_graph *g;
    uint64_t hash;
};

int amp_model_input_value(const amp_model *m, int i);
/* A model holding g (taken over on success; left to the caller on failure), its hash computed. */
amp_status amp_model_wrap(amp_context *ctx, amp_graph *g, amp_model **out);

typedef enum amp_slot_kind { AMP_SLOT_NONE = 0, AMP_SLOT_INPUT, AMP_SLOT_CONST, AMP_SLOT_ARENA } amp_slot_kind;

typedef struct amp_slot {
    amp_tinfo ti;          /* dtype, dims; ti.value for constants */
    amp_slot_kind kind;
    amp_tensor *owned;     /* folded constant owned by the plan */
    int buf;               /* arena buffer, for AMP_SLOT_ARENA */
    int first_use, last_use;
    size_t nbytes;
    /* Backends with memory of their own (host_memory false): the value's backend copy for
     * constants read by steps and for resident inputs; staged inputs (the caller's tensors,
     * uploaded at the start of each run) have an arena buffer in buf instead. */
    void *dev;
    bool staged;
} amp_slot;

typedef struct amp_step {
    int node;
    int64_t opset;         /* of the node's domain, looked up once at plan time */
    int nin, nout;
    amp_tensor *views;     /* nin + nout views; data set before each run */
    amp_tensor **pin, **pout;
    int ws_buf;            /* -1 when no workspace */
    size_t ws_bytes;       /* as the backend's prepare answered */
    void *state;           /* the backend's per-step state (released with the plan) */
} amp_step;

typedef struct amp_plan {
    uint64_t id;           /* unique in the process (backends key recorded runs by it) */
    int64_t *key;
    int key_len;
    amp_slot *slots;       /* one per graph value */
    amp_step *steps;
    int nsteps;
    amp_membuf *bufs;
    size_t *offsets;
    size_t *buf_bytes;     /* exact bytes of each buffer (bufs[i].size is aligned) */
    int nbufs;
    void *dev_consts;      /* backend memory (persistent) for the constants this plan made or was
                              given by value; NULL for host-memory backends */
    amp_plan_stats stats;
} amp_plan;

/* Where a session's resident inputs are newest (backends with memory of their own). */
typedef enum amp_resident_state {
    AMP_RESIDENT_SYNCED = 0,
    AMP_RESIDENT_DEVICE_NEWER, /* a run may have updated them in place (optimizer state) */
    AMP_RESIDENT_HOST_NEWER    /* the caller may have written the host tensors */
} amp_resident_state;

struct amp_session {
    amp_model *model;      /* the graph planned: the caller's, or fused below */
    amp_model *user_model; /* the caller's (borrowed) */
    amp_model *fused;      /* the session's own copy with the backend's fusions (passes/fuse.c),
                              its initializers borrowed from user_model; NULL when nothing fused */
    amp_context ctx;       /* the model's hooks, with this session's own error buffer */
    amp_session_options opts;
    amp_plan **plans;
    int n_plans, cap_plans;
    amp_plan *last;
    amp_backend *be;       /* runs the steps; owns the arena */
    char backend_note[512];/* why this backend (amp_session_backend_note) */
    amp_backend *host;     /* folds constants at plan time: be when its memory is host memory,
                              else a CPU backend of the session's own */
    /* Backends with memory of their own: ONE persistent block, made at the first plan, holds
     * every initializer and every resident input (amp_session_set_resident); dev[v] is value
     * v's copy there, res_host[v] the host tensor of a resident input. */
    void *persist;
    size_t persist_bytes;
    void **dev;
    amp_tensor **res_host;
    int n_resident;
    amp_resident_state res_state;
    unsigned char *arena;  /* backend memory, 256-byte aligned */
    size_t arena_bytes;
    double *profile_ms;    /* per node, accumulated over runs when not NULL (amprt bench --profile) */
    int *in_ids;           /* per graph input: value id (fixed), and the caller's tensor of the run */
    const amp_tensor **in_t;
    const amp_tensor **by_value; /* per value: the caller's tensor bound to it in this run */
    bool *shape_input;     /* per graph input: its values may decide shapes (planned by value) */
    int *out_ids;          /* per requested output of a run (at most the graph's output count) */
    amp_tensor **out_made; /* outputs a run allocated, until all are made */
    /* called after each step for every output it wrote (calibration); NULL when unused */
    void (*observe)(void *user, int value, const amp_tensor *t);
    void *observe_user;
};

/* Declare graph inputs resident: their tensors live in the backend's persistent region from
 * the first plan on, runs update them in place there (optimizer state), and the caller's
 * tensors are copies synchronised by amp_session_resident_sync. Each name must be a graph input;
 * runs must bind the same tensors (or none) to these names. Call before the first plan. On
 * host-memory backends the tensors are used in place, as every input is: nothing to do. */
amp_status amp_session_set_resident(amp_session *s, int n, const char *const *names, amp_tensor *const *tensors);
/* amp_session_create, which on a backend with memory of its own uploads the weights at once;
 * with upload_now false that waits for amp_session_upload_persistent (or the first plan), so
 * that resident inputs can be declared first (the trainer). */
amp_status amp_session_create_ex(amp_model *model, const amp_session_options *opts, bool upload_now,
                                 amp_session **out);
/* Allocate the persistent block and upload the weights and resident inputs now (nothing on a
 * host-memory backend, or when done already). */
amp_status amp_session_upload_persistent(amp_session *s);
/* Bring the host copies of resident inputs up to date (a download when a run may have changed
 * them); with host_will_write, the next run uploads them first. */
amp_status amp_session_resident_sync(amp_session *s, bool host_will_write);

/* Start accumulating per-node run time (milliseconds) into a zeroed array of n_nodes. */
amp_status amp_session_profile(amp_session *s, bool on);

/* Bind shapes (and small integer input values) and build a plan (runtime/plan.c): inference,
 * folding, the backend's prepare of every step, lifetimes, in-place decisions, offsets.
 * in_ti[i] describes graph value in_ids[i]. */
amp_status amp_plan_build(amp_session *s, int n, const int *in_ids, const amp_tinfo *in_ti, amp_plan **out);
/* Which values every plan folds, whatever the inputs: initializers no input overrides and what
 * foldable nodes make of them alone (constant[n_values]). Sessions ask backends only about the
 * other nodes. */
bool amp_plan_always_folded(const amp_graph *g, bool *constant);
/* Release the steps' backend state (b) and everything the plan holds; NULL is harmless. */
void amp_plan_destroy(amp_backend *b, amp_context *ctx, amp_plan *p);
/* Print the per-step schedule (for inspect). */
void amp_plan_dump(const amp_session *s, const amp_plan *p, FILE *f);

/* FLOPs of a MatMul, Gemm, Conv or ConvTranspose node of g at plan p's shapes (0 for other ops),
 * and the sum over g of those FLOPs, in all and where the node's first input is 16-bit. */
double amp_node_flops(const amp_plan *p, const amp_graph *g, int node);
void amp_plan_flops(const amp_plan *p, const amp_graph *g, double *total, double *in16);
/* MatMul/Gemm/Conv FLOPs of one calibration set from which the max_error search runs its
 * sessions on every core: below it (most calibration batches) one thread is faster, since each
 * op's fork and join costs more than its work, and far faster on a loaded machine, where the
 * OpenMP threads of a parallel op wait spinning for cores other processes hold. */
#define AMP_SEARCH_PARALLEL_FLOPS 1e9
/* What a calibration pass keeps besides the ranges (the max_error search's FP32 reference):
 * the outputs named, set-major (set s, output k at s * nout + k; created by the run, owned by
 * the caller), each node's MatMul/Gemm/Conv FLOPs summed over the sets (may be NULL), and the
 * session threads the search should use (set by the pass: 1, or 0 for every core when the
 * first set reaches AMP_SEARCH_PARALLEL_FLOPS, from which set on the pass uses them too). */
typedef struct amp_calib_keep {
    int nout;
    const char *const *names;
    amp_tensor **outputs;
    double *node_flops;
    int threads;
} amp_calib_keep;
/* One pass of o's calibration sets through model in FP32 on the CPU backend, unfused: max |x|
 * per value into absmax (initializers included; zeroed by the caller), o->progress told after
 * each set; keep (may be NULL: every core) receives what it asks for (runtime/autocast.c). */
amp_status amp_autocast_calibrate(const amp_model *model, const amp_autocast_options *o, double *absmax,
                                  amp_calib_keep *keep);
/* The max_error conversion of amp_model_autocast (runtime/autocast_search.c): o has been checked
 * and has calibration sets, which the search calibrates on itself. *out: the converted graph
 * (owned by the caller); *report filled. */
amp_status amp_autocast_search(const amp_model *model, const amp_autocast_options *o, amp_graph **out,
                               amp_autocast_report *report);

#endif
