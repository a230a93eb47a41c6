/* The backend interface: a table of functions held by value plus the backend's own state.
 *
 * A backend runs planned steps. The runtime (runtime/plan.c, runtime/session.c) owns the plan:
 * shapes come from inference (ir/), the order of passes from passes/, and every answer only a
 * backend can give comes from here:
 *
 *   supports  may this backend run the node with these dtypes (false: the session says why);
 *   prepare   at plan time, once per step: check the node, choose an algorithm, build per-step
 *             state, and say how many workspace bytes the step needs; the planner places the
 *             workspace in the arena like any other buffer;
 *   run       enqueue one step: no allocation and no synchronisation inside;
 *   mem_*     the arena (one allocation per session, sized for its largest plan) and the
 *             persistent region (weights, optimizer state) in the backend's memory;
 *   upload / download / synchronize   move bytes between host and backend memory (an upload
 *             may still be in flight when it returns, from a staging copy of src; a download is
 *             complete when it returns; download_async, where a backend has it, completes at the
 *             next synchronize, so a run's outputs cost one wait);
 *   has_op    does the backend have the op at all (asked at session creation, before dtypes
 *             are known, so that a model the backend cannot run is refused by name at once);
 *   run_begin / run_end   bracket the steps of one run of a plan, so a backend can capture them
 *             once (a CUDA graph) and replay them in later runs, telling the executor to skip
 *             the steps.
 *
 * Optional slots may be NULL; the wrappers below supply the default (supports: every op with a
 * kernel; prepare: no state, no workspace; release: nothing; synchronize: nothing). The CPU
 * backend (backends/cpu/backend.c) is the reference; the checking backend (backends/check.c)
 * wraps another backend and poisons memory around every step; the CUDA backend plugs in here.
 *
 * Steps see the kernel contract of ir/ir.h (amp_kernel): the node, its opset, tensor views whose
 * data pointers are backend memory, the workspace, the thread count. At prepare time the views
 * carry dtype and dims; data is set only for inputs whose values are known while planning
 * (initializers, constants, folded values), NULL otherwise. */
#ifndef AMP_BACKENDS_BACKEND_H
#define AMP_BACKENDS_BACKEND_H

#include "ir/ir.h"
#include "passes/memplan.h"

typedef struct amp_backend amp_backend;

typedef enum amp_mem_kind {
    AMP_MEM_ARENA = 0,      /* the planned intermediates of a step (reused every run) */
    AMP_MEM_PERSISTENT = 1  /* weights, constants, optimizer state: live as long as the session */
} amp_mem_kind;

/* The memory layout of one plan, as the executor hands it to run: which arena buffers exist and
 * during which steps each is live. Backends that only compute ignore it; the checking backend
 * poisons every arena byte outside the buffers live at the step. */
typedef struct amp_backend_layout {
    unsigned char *arena;    /* backend memory */
    size_t arena_bytes;
    int nbufs;
    const amp_membuf *bufs;  /* first/last step of each buffer */
    const size_t *offsets;   /* byte offset of each buffer in the arena */
    const size_t *bytes;     /* exact bytes of each buffer (bufs[i].size is aligned up) */
} amp_backend_layout;

/* One step as run sees it. */
typedef struct amp_backend_step {
    amp_kernel k;                     /* node, opset, views over backend memory, workspace */
    void *state;                      /* what prepare built for this step, or NULL */
    int index;                        /* the step's position in its plan */
    const amp_backend_layout *layout; /* NULL when the step runs outside a plan (folding, tests) */
} amp_backend_step;

/* One run of a plan, as run_begin and run_end see it. */
typedef struct amp_backend_plan_run {
    uint64_t plan_id;       /* unique per plan for the process's lifetime */
    const void *arena;      /* the arena the plan runs in now: a capture holds its addresses */
    int nsteps;
    bool aborted;           /* run_end only: a step failed; drop whatever was being recorded */
} amp_backend_plan_run;

typedef struct amp_backend_i {
    const char *name;
    /* Device pointers are host pointers: initializers and caller tensors are used in place, no
     * upload or download is needed. */
    bool host_memory;
    bool (*supports)(amp_backend *b, const amp_kernel *k);
    amp_status (*prepare)(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes);
    void (*release)(amp_backend *b, void *state);
    amp_status (*run)(amp_backend *b, amp_backend_step *st);
    amp_status (*mem_alloc)(amp_backend *b, amp_mem_kind kind, size_t bytes, void **ptr);
    void (*mem_free)(amp_backend *b, amp_mem_kind kind, void *ptr);
    amp_status (*upload)(amp_backend *b, void *dst, const void *src, size_t bytes);
    amp_status (*download)(amp_backend *b, void *dst, const void *src, size_t bytes);
    amp_status (*synchronize)(amp_backend *b);
    void (*destroy)(amp_backend *b);
    bool (*has_op)(amp_backend *b, amp_op op);
    /* *replay set: the backend ran the whole plan itself (a recorded graph); the executor skips
     * the steps and calls run_end */
    amp_status (*run_begin)(amp_backend *b, const amp_backend_plan_run *r, bool *replay);
    amp_status (*run_end)(amp_backend *b, const amp_backend_plan_run *r);
    /* Optional: enqueue a download that the next synchronize completes (dst must stay valid
     * until then; on a failed synchronize its bytes are undefined). A run reads all its outputs
     * with one wait this way. NULL: the executor calls download for each. */
    amp_status (*download_async)(amp_backend *b, void *dst, const void *src, size_t bytes);
    /* The chains the session should fuse before planning (AMP_FUSE_* of passes/passes.h; 0:
     * none): a backend asks only for kinds whose fused ops it runs faster than the pieces. */
    unsigned fusions;
} amp_backend_i;

struct amp_backend {
    amp_backend_i i;     /* held by value (ggml's backend interface does the same) */
    void *state;         /* the backend's own */
    amp_context *ctx;    /* messages and host allocations; borrowed from the creator */
    int threads;         /* CPU threads for kernels (>= 1) */
};

/* The interface version a backend module must be built for (bump with every change to the
 * structs above or to amp_kernel / amp_context): the CUDA module (backends/cuda/backend.c)
 * refuses to run under another. */
#define AMP_BACKEND_ABI "amprt 0.1.0 backend interface 4"

/* Constructor. name: "cpu", "cpu-check" (the CPU backend wrapped by the checking backend),
 * "cpu-device" (the CPU behind a device-memory boundary: devsim.c), "cuda", or "auto" / NULL
 * (CUDA when its module loads and a device is present, else the CPU). The CUDA backend is a
 * module opened at run time: $AMPRT_CUDA_MODULE when set (a path), else libamprt_cuda.so beside
 * the library (or program) holding amprt, else wherever the dynamic loader finds it; a missing
 * module, driver or device is AMP_ERR_NO_DEVICE with the loader's words. threads >= 1. On
 * failure *out is untouched and ctx holds the message. The backend borrows ctx: destroy the
 * backend first. */
amp_status amp_backend_create(amp_context *ctx, const char *name, int threads, amp_backend **out);
/* The same, with why this backend in note[0, cap) (NULL: not wanted): "as asked" for a named
 * one; for "auto", which it took and, for the CPU, the CUDA module's or device's failure. */
amp_status amp_backend_create_noted(amp_context *ctx, const char *name, int threads, amp_backend **out, char *note,
                                    size_t cap);
/* Destructor; NULL is harmless. */
void amp_backend_destroy(amp_backend *b);
/* The names amp_backend_create accepts, NULL-terminated (for help texts and errors). */
extern const char *const amp_backend_names[];

/* Wrappers that supply the defaults of optional slots. */
bool amp_backend_supports(amp_backend *b, const amp_kernel *k);
amp_status amp_backend_prepare(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes);
void amp_backend_release(amp_backend *b, void *state);
amp_status amp_backend_run(amp_backend *b, amp_backend_step *st);
amp_status amp_backend_synchronize(amp_backend *b);
/* download_async, or download (complete at once) where the backend has no download_async. */
amp_status amp_backend_download_async(amp_backend *b, void *dst, const void *src, size_t bytes);
bool amp_backend_has_op(amp_backend *b, amp_op op);
amp_status amp_backend_run_begin(amp_backend *b, const amp_backend_plan_run *r, bool *replay);
amp_status amp_backend_run_end(amp_backend *b, const amp_backend_plan_run *r);

/* Run one node now with its own workspace (prepare, allocate, run, release): folding at plan
 * time and the op tests. Host-memory backends only. */
amp_status amp_backend_run_once(amp_backend *b, amp_kernel *k);

/* The CPU backend (backends/cpu/backend.c). */
amp_status amp_backend_cpu_create(amp_context *ctx, int threads, amp_backend **out);
/* The checking backend (backends/check.c): wraps inner (and owns it from then on, also on
 * failure). Before each step it fills every output (except one that aliases an input: in-place
 * ops) and the workspace with NaN bytes, and every arena byte outside the buffers live at the
 * step with the same poison; after the step it checks that the bytes outside live buffers are
 * still poison, so a kernel that reads what it did not write computes NaN and one that writes
 * past its buffer fails with AMP_ERR_INTERNAL naming the node. */
amp_status amp_backend_check_create(amp_backend *inner, amp_backend **out);

/* The device-memory stand-in (backends/devsim.c, name "cpu-device"): wraps inner (owned from
 * then on, also on failure), says its memory is its own (host_memory false) and checks that
 * every pointer a step gets, every upload and every download respects that boundary. Runs the
 * inner backend's kernels, so results equal inner's. Tests the session's device path without a
 * device. */
amp_status amp_backend_devsim_create(amp_backend *inner, amp_backend **out);

/* The byte every checked buffer is filled with: 0xFF is NaN in f16, bf16, f32 and f64. */
#define AMP_POISON_BYTE 0xFF

#endif
