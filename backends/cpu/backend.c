/* The CPU backend: the reference every other backend is tested against. Memory is host memory
 * from the context's allocator, run calls the kernel of the op table's CPU column, and prepare
 * answers the kernel's workspace bytes. MatMul, Gemm and Conv (and their fused forms) run as
 * oneDNN primitives where this build has oneDNN and the primitive can express the node
 * (backends/cpu/dnnl.c): prepare builds the primitive as the step's state and sizes its
 * scratchpad as the workspace; $AMPRT_CPU_DNNL=0 at backend creation keeps every node on the
 * reference kernels. */
#include <stdint.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/cpu/dnnl.h"
#include "backends/cpu/kernels.h"
#include "passes/passes.h"

#define CPU_ALIGN 256

/* The backend's own state (b->state). */
typedef struct cpu_state {
    bool dnnl; /* oneDNN primitives for the nodes they take */
} cpu_state;

static bool cpu_supports(amp_backend *b, const amp_kernel *k) {
    (void)b;
    return amp_cpu_has_kernel(k->n->op);
}

/* A oneDNN primitive as the step's state where it takes the node; otherwise no state
 * (amp_backend_prepare has set *state to NULL) and the reference kernel's scratch. The
 * reference's sizing runs first either way, so a bad node fails with the same message. */
static amp_status cpu_prepare(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes) {
    amp_status s = amp_cpu_workspace(k, ws_bytes);
    if (s || !((cpu_state *)b->state)->dnnl) return s;
    amp_dnnl_step *d = NULL;
    if ((s = amp_cpu_dnnl_prepare(k, &d, ws_bytes))) return s;
    *state = d;
    return AMP_OK;
}

static void cpu_release(amp_backend *b, void *state) {
    (void)b;
    amp_cpu_dnnl_release(state);
}

static amp_status cpu_run(amp_backend *b, amp_backend_step *st) {
    (void)b;
    if (st->state) return amp_cpu_dnnl_run(st->state, &st->k);
    return amp_cpu_dispatch(&st->k);
}

/* Aligned blocks from the context's allocator: the raw pointer is kept just below the block. */
static amp_status cpu_mem_alloc(amp_backend *b, amp_mem_kind kind, size_t bytes, void **ptr) {
    (void)kind;
    if (bytes > SIZE_MAX - CPU_ALIGN - sizeof(void *))
        return amp_seterr(b->ctx, AMP_ERR_OVERFLOW, "a block of %zu bytes is too large", bytes);
    unsigned char *raw = amp_alloc(b->ctx, bytes + CPU_ALIGN + sizeof(void *));
    if (!raw) return amp_seterr(b->ctx, AMP_ERR_NO_MEMORY, "cannot allocate %zu bytes", bytes);
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + CPU_ALIGN - 1) & ~(uintptr_t)(CPU_ALIGN - 1);
    memcpy((unsigned char *)p - sizeof(void *), &raw, sizeof raw);
    *ptr = (void *)p;
    return AMP_OK;
}

static void cpu_mem_free(amp_backend *b, amp_mem_kind kind, void *ptr) {
    (void)kind;
    if (!ptr) return;
    void *raw;
    memcpy(&raw, (unsigned char *)ptr - sizeof(void *), sizeof raw);
    amp_dealloc(b->ctx, raw);
}

static amp_status cpu_copy(amp_backend *b, void *dst, const void *src, size_t bytes) {
    (void)b;
    if (bytes) memcpy(dst, src, bytes);
    return AMP_OK;
}

static void cpu_destroy(amp_backend *b) {
    amp_dealloc(b->ctx, b->state);
    amp_dealloc(b->ctx, b);
}

static bool cpu_has_op(amp_backend *b, amp_op op) {
    (void)b;
    return amp_cpu_has_kernel(op);
}

static const amp_backend_i cpu_iface = {
    .name = "cpu",
    .host_memory = true,
    .supports = cpu_supports,
    .prepare = cpu_prepare,
    .release = cpu_release,
    .run = cpu_run,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = NULL,
    .destroy = cpu_destroy,
    .has_op = cpu_has_op,
    /* measured (docs/benchmarks.md, "CPU fusion by default"): the written-out GELU and the
     * GEMM's bias and activation (oneDNN post-ops) take 9 to 19% off the transformer and MLP
     * models, Conv + Relu saves a node; Add + LayerNorm gained nothing on the encoder and cost
     * gpt_block at batch 8 a fifth, and the Attention kernel (its softmax is a double loop) is
     * slower than its pieces, so neither is asked for; CastMulti is not measured */
    .fusions = AMP_FUSE_GELU | AMP_FUSE_GEMM | AMP_FUSE_CONV,
};

amp_status amp_backend_cpu_create(amp_context *ctx, int threads, amp_backend **out) {
    amp_backend *b = amp_calloc(ctx, 1, sizeof *b);
    if (!b) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating the CPU backend");
    cpu_state *cs = amp_calloc(ctx, 1, sizeof *cs);
    if (!cs) {
        amp_dealloc(ctx, b);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating the CPU backend");
    }
    cs->dnnl = amp_cpu_dnnl_wanted();
    b->i = cpu_iface;
    b->state = cs;
    b->ctx = ctx;
    b->threads = threads;
    *out = b;
    return AMP_OK;
}
