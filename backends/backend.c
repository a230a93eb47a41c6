/* Backend selection by name and the wrappers that give optional slots their defaults. */
#include <string.h>

#include "backends/backend.h"

/* the CUDA backend is a module loaded at run time; until it is found, no device is present */
static int amp_cuda_device_count(void) { return 0; }

const char *const amp_backend_names[] = {"auto", "cpu", "cpu-check", "cpu-device", "cuda", NULL};

amp_status amp_backend_create(amp_context *ctx, const char *name, int threads, amp_backend **out) {
    if (!ctx || !out) return AMP_ERR_INVALID_ARG;
    if (threads < 1) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "a backend needs at least one thread");
    if (!name || strcmp(name, "auto") == 0) {
        /* the CUDA backend is not part of this build yet: auto always settles on the CPU */
        return amp_backend_cpu_create(ctx, threads, out);
    }
    if (strcmp(name, "cpu") == 0) return amp_backend_cpu_create(ctx, threads, out);
    if (strcmp(name, "cpu-check") == 0) {
        amp_backend *cpu = NULL;
        amp_status s = amp_backend_cpu_create(ctx, threads, &cpu);
        if (s) return s;
        return amp_backend_check_create(cpu, out);
    }
    if (strcmp(name, "cpu-device") == 0) {
        amp_backend *cpu = NULL;
        amp_status s = amp_backend_cpu_create(ctx, threads, &cpu);
        if (s) return s;
        return amp_backend_devsim_create(cpu, out);
    }
    if (strcmp(name, "cuda") == 0) {
        if (amp_cuda_device_count() <= 0)
            return amp_seterr(ctx, AMP_ERR_NO_DEVICE, "backend 'cuda' was asked for, but no CUDA device is present");
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "the CUDA backend is not available in this build yet");
    }
    return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "unknown backend '%s' (expected auto, cpu, cpu-check, cpu-device or cuda)", name);
}

void amp_backend_destroy(amp_backend *b) {
    if (b) b->i.destroy(b);
}

bool amp_backend_supports(amp_backend *b, const amp_kernel *k) {
    return b->i.supports ? b->i.supports(b, k) : true;
}

amp_status amp_backend_prepare(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes) {
    *state = NULL;
    *ws_bytes = 0;
    return b->i.prepare ? b->i.prepare(b, k, state, ws_bytes) : AMP_OK;
}

void amp_backend_release(amp_backend *b, void *state) {
    if (state && b->i.release) b->i.release(b, state);
}

amp_status amp_backend_run(amp_backend *b, amp_backend_step *st) { return b->i.run(b, st); }

amp_status amp_backend_synchronize(amp_backend *b) { return b->i.synchronize ? b->i.synchronize(b) : AMP_OK; }

amp_status amp_backend_run_once(amp_backend *b, amp_kernel *k) {
    if (!b->i.host_memory)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "backend '%s' cannot run a node on host tensors", b->i.name);
    void *state = NULL;
    size_t ws_bytes = 0;
    amp_status s = amp_backend_prepare(b, k, &state, &ws_bytes);
    if (s) return s;
    void *ws = NULL;
    if (ws_bytes) {
        ws = amp_alloc(k->ctx, ws_bytes);
        if (!ws) {
            amp_backend_release(b, state);
            return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "out of memory for a workspace of %zu bytes", ws_bytes);
        }
    }
    amp_backend_step st = {.k = *k, .state = state, .index = -1, .layout = NULL};
    st.k.ws = ws;
    st.k.ws_bytes = ws_bytes;
    s = amp_backend_run(b, &st);
    if (!s) s = amp_backend_synchronize(b);
    amp_dealloc(k->ctx, ws);
    amp_backend_release(b, state);
    return s;
}
