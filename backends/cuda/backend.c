/* The CUDA backend: an amp_backend (backends/backend.h) over one device, one stream, one
 * cuBLASLt and one cuDNN handle.
 *
 * Memory: the session asks for ONE arena and ONE persistent block (weights, master weights,
 * optimizer state), each a single cudaMalloc; cuBLASLt and cuDNN workspaces are planned buffers
 * in the arena. Uploads go through a pinned staging buffer (the host bytes are copied there, then
 * an asynchronous copy is queued), so an upload returns before the copy is done and the steps
 * queue behind it; the staging buffer is reused after the next synchronisation. Downloads are
 * synchronous. Nothing is allocated and nothing synchronises inside a step.
 *
 * Steps: each op family (cuda_backend.h) prepares a step at plan time and enqueues it at run
 * time. CUDA graphs: a plan's first run is eager (lazy module loading, cuDNN's first-use work
 * happen then), its second run is captured into a graph and launched, later runs launch the
 * graph; a capture is keyed by the plan and the arena's address, so a new arena records anew.
 * AMPRT_CUDA_GRAPHS=0 in the environment turns graphs off (results are the same bits).
 *
 * Built as its own module (libamprt_cuda.so; libamprt_cuda_emu.so on the emulator) that
 * libamprt opens at run time: amp_cuda_module_create below is its entry point. */
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/conv.h"
#include "backends/cuda/cuda_backend.h"
#include "passes/passes.h"

#if defined(AMP_CUDA_EMULATED)
#include "backends/cuda/emu/fake_runtime.h"
#endif

static const amp_cuda_op *const families[] = {amp_cuda_ops_gemm,   amp_cuda_ops_conv, amp_cuda_ops_kernels,
                                             amp_cuda_ops_optim,  amp_cuda_ops_ew,   amp_cuda_ops_norm,
                                             amp_cuda_ops_reduce, amp_cuda_ops_data, amp_cuda_ops_rnn,
                                             amp_cuda_ops_fused};

typedef struct recorded {
    uint64_t plan_id;
    const void *arena;
    int eager_runs;        /* runs before a capture */
    cudaGraphExec_t exec;  /* NULL until captured */
} recorded;

typedef struct pending_copy {
    void *dst;
    size_t off, bytes; /* in dstage */
} pending_copy;

typedef struct cuda_state {
    amp_cuda cu;
    unsigned char *staging; /* pinned: uploads in flight */
    size_t staging_bytes, staging_used;
    /* pinned: downloads in flight, copied out to their destinations at synchronize */
    unsigned char *dstage;
    size_t dstage_bytes, dstage_used;
    pending_copy *pend;
    int npend, cappend;
    bool graphs;            /* CUDA graphs allowed */
    recorded *rec;
    int nrec, caprec;
    int capturing;          /* index into rec of the capture in progress, or -1 */
} cuda_state;

typedef struct step_state {
    const amp_cuda_op *op;
    void *state;            /* the family's */
} step_state;

static cuda_state *cst(amp_backend *b) { return b->state; }

static const amp_cuda_op *find_op(amp_op op) {
    for (size_t f = 0; f < sizeof families / sizeof *families; f++)
        for (const amp_cuda_op *e = families[f]; e->run; e++)
            if (e->op == op) return e;
    return NULL;
}

static bool cuda_has_op(amp_backend *b, amp_op op) {
    (void)b;
    return find_op(op) != NULL;
}

static bool cuda_supports(amp_backend *b, const amp_kernel *k) {
    const amp_cuda_op *e = find_op(k->n->op);
    return e && (!e->supports || e->supports(&cst(b)->cu, k));
}

static amp_status cuda_prepare(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes) {
    const amp_cuda_op *e = find_op(k->n->op);
    if (!e) return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "the CUDA backend has no kernel for %s", k->n->op_type);
    step_state *ss = amp_calloc(b->ctx, 1, sizeof *ss);
    if (!ss) return amp_seterr(b->ctx, AMP_ERR_NO_MEMORY, "out of memory preparing a CUDA step");
    ss->op = e;
    *ws_bytes = 0;
    if (e->prepare) {
        amp_status s = e->prepare(&cst(b)->cu, k, &ss->state, ws_bytes);
        if (s) {
            amp_dealloc(b->ctx, ss);
            return s;
        }
    }
    *state = ss;
    return AMP_OK;
}

static void cuda_release(amp_backend *b, void *state) {
    step_state *ss = state;
    if (!ss) return;
    if (ss->op->release && ss->state) ss->op->release(&cst(b)->cu, ss->state);
    amp_dealloc(b->ctx, ss);
}

static amp_status cuda_run(amp_backend *b, amp_backend_step *st) {
    step_state *ss = st->state;
    if (!ss) return amp_kernel_fail(&st->k, AMP_ERR_INTERNAL, "a CUDA step run without being prepared");
#if defined(AMP_CUDA_EMULATED)
    /* on the emulator, a workspace holds NaN before every step: a kernel that reads what it did
     * not write computes NaN */
    if (st->k.ws_bytes) {
        amp_status s = AMP_CUDA_RT(b->ctx, cudaMemsetAsync(st->k.ws, 0xFF, st->k.ws_bytes, cst(b)->cu.stream));
        if (s) return s;
    }
#endif
    return ss->op->run(&cst(b)->cu, &st->k, ss->state);
}

static amp_status cuda_mem_alloc(amp_backend *b, amp_mem_kind kind, size_t bytes, void **ptr) {
    (void)kind;
    void *p = NULL;
    amp_status s = AMP_CUDA_RT(b->ctx, cudaMalloc(&p, bytes ? bytes : 1));
    if (s) return s;
    *ptr = p;
    return AMP_OK;
}

static void cuda_mem_free(amp_backend *b, amp_mem_kind kind, void *ptr) {
    (void)kind;
    (void)b;
    if (ptr) cudaFree(ptr);
}

static amp_status cuda_synchronize(amp_backend *b) {
    cuda_state *c = cst(b);
    amp_status s = AMP_CUDA_RT(b->ctx, cudaStreamSynchronize(c->cu.stream));
    if (!s) {
        c->staging_used = 0;
        for (int i = 0; i < c->npend; i++) memcpy(c->pend[i].dst, c->dstage + c->pend[i].off, c->pend[i].bytes);
    }
    c->npend = 0;
    c->dstage_used = 0;
    return s;
}

static size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

/* Room for `bytes` more in a pinned buffer of which `used` are in flight: after what is in flight
 * in either buffer has landed, the buffer grows to hold all of it (twice its size at least), so
 * that the next run with the same copies fits without a wait; only the first runs of a shape
 * ever grow one. */
static amp_status grow_pinned(amp_backend *b, unsigned char **buf, size_t *have, size_t used, size_t bytes) {
    size_t need = align_up(used) + bytes;
    amp_status s = cuda_synchronize(b);
    if (s || *have >= need) return s;
    size_t want = align_up(need > 2 * *have ? need : 2 * *have);
    void *p = NULL;
    s = AMP_CUDA_RT(b->ctx, cudaMallocHost(&p, want));
    if (s) return s;
    if (*buf) cudaFreeHost(*buf);
    *buf = p;
    *have = want;
    return AMP_OK;
}

static amp_status cuda_upload(amp_backend *b, void *dst, const void *src, size_t bytes) {
    cuda_state *c = cst(b);
    if (!bytes) return AMP_OK;
    if (c->staging_bytes - c->staging_used < bytes) {
        /* the staging bytes in flight must land before they are reused or freed */
        amp_status s = grow_pinned(b, &c->staging, &c->staging_bytes, c->staging_used, bytes);
        if (s) return s;
    }
    unsigned char *stage = c->staging + c->staging_used;
    memcpy(stage, src, bytes);
    c->staging_used += align_up(bytes);
    if (c->staging_used > c->staging_bytes) c->staging_used = c->staging_bytes;
    return AMP_CUDA_RT(b->ctx, cudaMemcpyAsync(dst, stage, bytes, cudaMemcpyHostToDevice, c->cu.stream));
}

/* Device to pinned staging on the stream; the copy to dst waits for the next synchronize. */
static amp_status cuda_download_async(amp_backend *b, void *dst, const void *src, size_t bytes) {
    cuda_state *c = cst(b);
    if (!bytes) return AMP_OK;
    if (c->dstage_bytes - c->dstage_used < bytes) {
        amp_status s = grow_pinned(b, &c->dstage, &c->dstage_bytes, c->dstage_used, bytes);
        if (s) return s;
    }
    if (c->npend == c->cappend &&
        amp_grow(b->ctx, (void **)&c->pend, &c->cappend, c->npend + 1, sizeof(pending_copy)))
        return amp_seterr(b->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    amp_status s = AMP_CUDA_RT(b->ctx, cudaMemcpyAsync(c->dstage + c->dstage_used, src, bytes, cudaMemcpyDeviceToHost,
                                                       c->cu.stream));
    if (s) return s;
    c->pend[c->npend++] = (pending_copy){.dst = dst, .off = c->dstage_used, .bytes = bytes};
    c->dstage_used += align_up(bytes);
    if (c->dstage_used > c->dstage_bytes) c->dstage_used = c->dstage_bytes;
    return AMP_OK;
}

static amp_status cuda_download(amp_backend *b, void *dst, const void *src, size_t bytes) {
    amp_status s = cuda_download_async(b, dst, src, bytes);
    amp_status s2 = cuda_synchronize(b);
    return s ? s : s2;
}

/* ---- CUDA graphs ---------------------------------------------------------------------------- */

static recorded *find_rec(cuda_state *c, const amp_backend_plan_run *r) {
    for (int i = 0; i < c->nrec; i++)
        if (c->rec[i].plan_id == r->plan_id) return &c->rec[i];
    return NULL;
}

static amp_status cuda_run_begin(amp_backend *b, const amp_backend_plan_run *r, bool *replay) {
    cuda_state *c = cst(b);
    if (!c->graphs || r->nsteps == 0) return AMP_OK;
    recorded *rc = find_rec(c, r);
    if (!rc) {
        if (amp_grow(b->ctx, (void **)&c->rec, &c->caprec, c->nrec + 1, sizeof(recorded)))
            return amp_seterr(b->ctx, AMP_ERR_NO_MEMORY, "out of memory");
        rc = &c->rec[c->nrec++];
        *rc = (recorded){.plan_id = r->plan_id, .arena = r->arena};
    }
    if (rc->exec && rc->arena != r->arena) {
        /* the arena moved: the recording holds the old addresses */
        cudaGraphExecDestroy(rc->exec);
        rc->exec = NULL;
        rc->eager_runs = 0;
        rc->arena = r->arena;
    }
    if (rc->exec) {
        *replay = true;
        return AMP_CUDA_RT(b->ctx, cudaGraphLaunch(rc->exec, c->cu.stream));
    }
    if (rc->eager_runs++ == 0) return AMP_OK; /* the first run is eager */
    amp_status s = AMP_CUDA_RT(b->ctx, cudaStreamBeginCapture(c->cu.stream, cudaStreamCaptureModeThreadLocal));
    if (!s) c->capturing = (int)(rc - c->rec);
    return s;
}

static amp_status cuda_run_end(amp_backend *b, const amp_backend_plan_run *r) {
    cuda_state *c = cst(b);
    if (c->capturing < 0) return AMP_OK;
    recorded *rc = &c->rec[c->capturing];
    c->capturing = -1;
    cudaGraph_t graph = NULL;
    amp_status s = AMP_CUDA_RT(b->ctx, cudaStreamEndCapture(c->cu.stream, &graph));
    if (r->aborted) {
        if (graph) cudaGraphDestroy(graph);
        return s;
    }
    if (!s) s = AMP_CUDA_RT(b->ctx, cudaGraphInstantiate(&rc->exec, graph, 0));
    if (graph) cudaGraphDestroy(graph);
    /* the captured steps have not run yet: this launch runs them */
    if (!s) s = AMP_CUDA_RT(b->ctx, cudaGraphLaunch(rc->exec, c->cu.stream));
    if (s) c->graphs = false; /* a plan that cannot be captured: stay eager from now on */
    return s;
}

/* ---- life --------------------------------------------------------------------------------- */

static void cuda_destroy(amp_backend *b) {
    cuda_state *c = cst(b);
    if (c) {
        if (c->cu.stream) cudaStreamSynchronize(c->cu.stream);
        for (int i = 0; i < c->nrec; i++)
            if (c->rec[i].exec) cudaGraphExecDestroy(c->rec[i].exec);
        amp_dealloc(b->ctx, c->rec);
        if (c->staging) cudaFreeHost(c->staging);
        if (c->dstage) cudaFreeHost(c->dstage);
        amp_dealloc(b->ctx, c->pend);
        amp_cuda_conv_cache_free(&c->cu);
        amp_cuda_devprop_destroy(&c->cu);
        if (c->cu.dnn) cudnnDestroy(c->cu.dnn);
        if (c->cu.lt) cublasLtDestroy(c->cu.lt);
        if (c->cu.stream) cudaStreamDestroy(c->cu.stream);
        amp_dealloc(b->ctx, c);
    }
    amp_dealloc(b->ctx, b);
}

static const amp_backend_i cuda_iface = {
    .name = "cuda",
    .host_memory = false,
    .supports = cuda_supports,
    .prepare = cuda_prepare,
    .release = cuda_release,
    .run = cuda_run,
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .synchronize = cuda_synchronize,
    .destroy = cuda_destroy,
    .has_op = cuda_has_op,
    .run_begin = cuda_run_begin,
    .run_end = cuda_run_end,
    .download_async = cuda_download_async,
    .fusions = AMP_FUSE_ALL,
};

static amp_status cuda_create(amp_context *ctx, int threads, amp_backend **out) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        cudaGetLastError();
        return amp_seterr(ctx, AMP_ERR_NO_DEVICE, "backend 'cuda': no CUDA device is present (%s)",
                          e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
    }
    amp_backend *b = amp_calloc(ctx, 1, sizeof *b);
    cuda_state *c = amp_calloc(ctx, 1, sizeof *c);
    if (!b || !c) {
        amp_dealloc(ctx, b);
        amp_dealloc(ctx, c);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating the CUDA backend");
    }
    b->i = cuda_iface;
    b->state = c;
    b->ctx = ctx;
    b->threads = threads;
    c->capturing = -1;
    const char *g = getenv("AMPRT_CUDA_GRAPHS");
    c->graphs = !(g && strcmp(g, "0") == 0);
    amp_cuda *cu = &c->cu;
    cu->ctx = ctx;
    cu->device = 0;
    amp_status s = AMP_CUDA_RT(ctx, cudaSetDevice(0));
    if (!s) s = AMP_CUDA_RT(ctx, cudaDeviceGetAttribute(&cu->cc_major, cudaDevAttrComputeCapabilityMajor, 0));
    if (!s) s = AMP_CUDA_RT(ctx, cudaDeviceGetAttribute(&cu->cc_minor, cudaDevAttrComputeCapabilityMinor, 0));
    if (!s) s = AMP_CUDA_RT(ctx, cudaDeviceGetAttribute(&cu->sm_count, cudaDevAttrMultiProcessorCount, 0));
    if (!s) s = AMP_CUDA_RT(ctx, cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking));
    if (!s) s = AMP_CUDA_LT(ctx, cublasLtCreate(&cu->lt));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnCreate(&cu->dnn));
    if (!s) s = AMP_CUDA_DNN(ctx, cudnnSetStream(cu->dnn, cu->stream));
    if (!s) s = amp_cuda_devprop_create(cu);
    if (s) {
        cuda_destroy(b);
        return s;
    }
    *out = b;
    return AMP_OK;
}

/* The module's entry point (backends/backend.c opens the module and calls it). abi is the
 * caller's AMP_BACKEND_ABI: a module built from another amprt refuses to run. */
__attribute__((visibility("default"))) amp_status amp_cuda_module_create(const char *abi, amp_context *ctx,
                                                                        int threads, amp_backend **out) {
    if (!abi || strcmp(abi, AMP_BACKEND_ABI) != 0)
        return amp_seterr(ctx, AMP_ERR_NO_DEVICE, "the CUDA backend module was built for another amprt (%s, not %s)",
                          AMP_BACKEND_ABI, abi ? abi : "(none)");
    return cuda_create(ctx, threads, out);
}
