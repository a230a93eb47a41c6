/* Backend selection by name and the wrappers that give optional slots their defaults. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"

typedef amp_status (*cuda_module_create_fn)(const char *abi, amp_context *ctx, int threads, amp_backend **out);

/* The CUDA backend module's entry point, or NULL with the reason in why. The module stays
 * loaded for the life of the process (its code may be running in any session). */
static cuda_module_create_fn open_cuda_module(char *why, size_t cap) {
    char path[4096];
    const char *env = getenv("AMPRT_CUDA_MODULE");
    void *h = NULL;
    if (env && env[0]) {
        h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!h) snprintf(why, cap, "%s", dlerror());
    } else {
        /* beside the object that holds this code: libamprt.so, or a program linked statically */
        Dl_info info;
        if (dladdr((void *)open_cuda_module, &info) && info.dli_fname) {
            const char *slash = strrchr(info.dli_fname, '/');
            if (slash && (size_t)(slash - info.dli_fname) + sizeof "/libamprt_cuda.so" < sizeof path) {
                snprintf(path, sizeof path, "%.*s/libamprt_cuda.so", (int)(slash - info.dli_fname), info.dli_fname);
                h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            }
        }
        if (!h) h = dlopen("libamprt_cuda.so", RTLD_NOW | RTLD_LOCAL);
        if (!h) snprintf(why, cap, "%s", dlerror());
    }
    if (!h) return NULL;
    cuda_module_create_fn fn;
    void *sym = dlsym(h, "amp_cuda_module_create");
    memcpy(&fn, &sym, sizeof fn);
    if (!fn) snprintf(why, cap, "the module has no entry point amp_cuda_module_create");
    return fn;
}

static amp_status cuda_create(amp_context *ctx, int threads, amp_backend **out) {
    char why[1024] = "";
    cuda_module_create_fn fn = open_cuda_module(why, sizeof why);
    if (!fn)
        return amp_seterr(ctx, AMP_ERR_NO_DEVICE, "backend 'cuda': the CUDA backend module cannot be loaded: %s", why);
    return fn(AMP_BACKEND_ABI, ctx, threads, out);
}

const char *const amp_backend_names[] = {"auto", "cpu", "cpu-check", "cpu-device", "cuda", NULL};

const char *amp_backend_name(int i) {
    return i >= 0 && i < (int)(sizeof amp_backend_names / sizeof amp_backend_names[0]) ? amp_backend_names[i] : NULL;
}

amp_status amp_backend_create(amp_context *ctx, const char *name, int threads, amp_backend **out) {
    return amp_backend_create_noted(ctx, name, threads, out, NULL, 0);
}

amp_status amp_backend_create_noted(amp_context *ctx, const char *name, int threads, amp_backend **out, char *note,
                                    size_t cap) {
    if (!ctx || !out) return AMP_ERR_INVALID_ARG;
    if (threads < 1) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "a backend needs at least one thread");
    char why[256];
    if (!note || !cap) {
        note = why;
        cap = sizeof why;
    }
    snprintf(note, cap, "as asked");
    if (!name || strcmp(name, "auto") == 0) {
        if (cuda_create(ctx, threads, out) == AMP_OK) {
            snprintf(note, cap, "auto: a CUDA device, every node has a kernel");
            return AMP_OK;
        }
        snprintf(note, cap, "auto: the CPU, since %.220s", ctx->err);
        amp_log(ctx, AMP_LOG_INFO, "backend %s", note);
        ctx->err[0] = '\0';
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
    if (strcmp(name, "cuda") == 0) return cuda_create(ctx, threads, out);
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

amp_status amp_backend_download_async(amp_backend *b, void *dst, const void *src, size_t bytes) {
    return b->i.download_async ? b->i.download_async(b, dst, src, bytes) : b->i.download(b, dst, src, bytes);
}

bool amp_backend_has_op(amp_backend *b, amp_op op) { return b->i.has_op ? b->i.has_op(b, op) : true; }

amp_status amp_backend_run_begin(amp_backend *b, const amp_backend_plan_run *r, bool *replay) {
    *replay = false;
    return b->i.run_begin ? b->i.run_begin(b, r, replay) : AMP_OK;
}

amp_status amp_backend_run_end(amp_backend *b, const amp_backend_plan_run *r) {
    return b->i.run_end ? b->i.run_end(b, r) : AMP_OK;
}

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
