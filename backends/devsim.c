/* The device-memory stand-in: CPU kernels behind a device-memory boundary ("cpu-device").
 *
 * It tells the session it keeps its own memory (host_memory false), so the session must stage
 * inputs, upload constants and weights into the persistent region, keep resident state there
 * and download outputs, exactly as it must for the CUDA backend; and it checks the session
 * does: every pointer a step receives must lie in a block this backend allocated (live), every
 * upload must go from outside its blocks into one, every download the other way. New blocks are
 * filled with AMP_POISON_BYTE, as nothing promises what fresh device memory holds. The kernels
 * are the CPU backend's, so results must equal the CPU's bit for bit. */
#include <string.h>

#include "backends/backend.h"

typedef struct block {
    unsigned char *p;
    size_t n;
} block;

typedef struct pending {
    void *dst;
    const void *src;
    size_t n;
} pending;

typedef struct devsim_state {
    amp_backend *inner;
    block *blocks;
    int nblocks, cap;
    pending *pend; /* download_async: copied at synchronize */
    int npend, cappend;
} devsim_state;

static devsim_state *ds(amp_backend *b) { return b->state; }

/* [p, p + n) inside one live block */
static bool is_dev(amp_backend *b, const void *p, size_t n) {
    const unsigned char *q = p;
    for (int i = 0; i < ds(b)->nblocks; i++) {
        const block *k = &ds(b)->blocks[i];
        if (q >= k->p && q <= k->p + k->n && n <= (size_t)(k->p + k->n - q)) return true;
    }
    return false;
}

static bool devsim_supports(amp_backend *b, const amp_kernel *k) { return amp_backend_supports(ds(b)->inner, k); }

static amp_status devsim_prepare(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes) {
    return amp_backend_prepare(ds(b)->inner, k, state, ws_bytes);
}

static void devsim_release(amp_backend *b, void *state) { amp_backend_release(ds(b)->inner, state); }

static bool devsim_has_op(amp_backend *b, amp_op op) { return amp_backend_has_op(ds(b)->inner, op); }

static amp_status check_view(amp_backend *b, const amp_kernel *k, const amp_tensor *t, const char *what, int i) {
    if (!t || !t->nbytes) return AMP_OK;
    if (t->data && is_dev(b, t->data, t->nbytes)) return AMP_OK;
    return amp_kernel_fail(k, AMP_ERR_INTERNAL, "%s %d (%zu bytes) is not in %s memory", what, i, t->nbytes, b->i.name);
}

static amp_status devsim_run(amp_backend *b, amp_backend_step *st) {
    const amp_kernel *k = &st->k;
    for (int i = 0; i < k->nin; i++) {
        amp_status s = check_view(b, k, k->in[i], "input", i);
        if (s) return s;
    }
    for (int i = 0; i < k->nout; i++) {
        amp_status s = check_view(b, k, k->out[i], "output", i);
        if (s) return s;
    }
    if (k->ws_bytes && (!k->ws || !is_dev(b, k->ws, k->ws_bytes)))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "the workspace is not in %s memory", b->i.name);
    return amp_backend_run(ds(b)->inner, st);
}

static amp_status devsim_alloc(amp_backend *b, amp_mem_kind kind, size_t bytes, void **ptr) {
    devsim_state *d = ds(b);
    if (amp_grow(b->ctx, (void **)&d->blocks, &d->cap, d->nblocks + 1, sizeof(block)))
        return amp_seterr(b->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    void *p = NULL;
    amp_status s = d->inner->i.mem_alloc(d->inner, kind, bytes, &p);
    if (s) return s;
    memset(p, AMP_POISON_BYTE, bytes);
    d->blocks[d->nblocks++] = (block){p, bytes};
    *ptr = p;
    return AMP_OK;
}

static void devsim_free(amp_backend *b, amp_mem_kind kind, void *ptr) {
    devsim_state *d = ds(b);
    if (!ptr) return;
    for (int i = 0; i < d->nblocks; i++)
        if (d->blocks[i].p == ptr) {
            d->blocks[i] = d->blocks[--d->nblocks];
            break;
        }
    d->inner->i.mem_free(d->inner, kind, ptr);
}

static amp_status devsim_upload(amp_backend *b, void *dst, const void *src, size_t bytes) {
    if (!bytes) return AMP_OK;
    if (!is_dev(b, dst, bytes) || is_dev(b, src, 1))
        return amp_seterr(b->ctx, AMP_ERR_INTERNAL, "%s: an upload of %zu bytes is not host to device memory", b->i.name,
                          bytes);
    memcpy(dst, src, bytes);
    return AMP_OK;
}

static amp_status devsim_download(amp_backend *b, void *dst, const void *src, size_t bytes) {
    if (!bytes) return AMP_OK;
    if (!is_dev(b, src, bytes) || is_dev(b, dst, 1))
        return amp_seterr(b->ctx, AMP_ERR_INTERNAL, "%s: a download of %zu bytes is not device to host memory",
                          b->i.name, bytes);
    memcpy(dst, src, bytes);
    return AMP_OK;
}

/* Like a device's: the bytes arrive at the next synchronize, and until then dst holds poison,
 * so a session that reads an output before it waits reads NaN. */
static amp_status devsim_download_async(amp_backend *b, void *dst, const void *src, size_t bytes) {
    devsim_state *d = ds(b);
    if (!bytes) return AMP_OK;
    if (!is_dev(b, src, bytes) || is_dev(b, dst, 1))
        return amp_seterr(b->ctx, AMP_ERR_INTERNAL, "%s: a download of %zu bytes is not device to host memory",
                          b->i.name, bytes);
    if (amp_grow(b->ctx, (void **)&d->pend, &d->cappend, d->npend + 1, sizeof(pending)))
        return amp_seterr(b->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    memset(dst, AMP_POISON_BYTE, bytes);
    d->pend[d->npend++] = (pending){dst, src, bytes};
    return AMP_OK;
}

static amp_status devsim_synchronize(amp_backend *b) {
    devsim_state *d = ds(b);
    for (int i = 0; i < d->npend; i++) {
        /* the source must still be device memory when the copy happens */
        if (!is_dev(b, d->pend[i].src, d->pend[i].n)) {
            d->npend = 0;
            return amp_seterr(b->ctx, AMP_ERR_INTERNAL, "%s: a download's source was freed before it landed", b->i.name);
        }
        memcpy(d->pend[i].dst, d->pend[i].src, d->pend[i].n);
    }
    d->npend = 0;
    return AMP_OK;
}

static void devsim_destroy(amp_backend *b) {
    devsim_state *d = ds(b);
    amp_backend_destroy(d->inner);
    amp_dealloc(b->ctx, d->pend);
    amp_dealloc(b->ctx, d->blocks);
    amp_dealloc(b->ctx, d);
    amp_dealloc(b->ctx, b);
}

static const amp_backend_i devsim_iface = {
    .name = "cpu-device",
    .host_memory = false,
    .supports = devsim_supports,
    .prepare = devsim_prepare,
    .release = devsim_release,
    .run = devsim_run,
    .mem_alloc = devsim_alloc,
    .mem_free = devsim_free,
    .upload = devsim_upload,
    .download = devsim_download,
    .synchronize = devsim_synchronize,
    .destroy = devsim_destroy,
    .has_op = devsim_has_op,
    .download_async = devsim_download_async,
};

amp_status amp_backend_devsim_create(amp_backend *inner, amp_backend **out) {
    amp_context *ctx = inner->ctx;
    amp_backend *b = amp_calloc(ctx, 1, sizeof *b);
    devsim_state *d = amp_calloc(ctx, 1, sizeof *d);
    if (!b || !d) {
        amp_dealloc(ctx, b);
        amp_dealloc(ctx, d);
        amp_backend_destroy(inner);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating the cpu-device backend");
    }
    d->inner = inner;
    b->i = devsim_iface;
    b->i.fusions = inner->i.fusions; /* the same graph as the backend it wraps */
    b->state = d;
    b->ctx = ctx;
    b->threads = inner->threads;
    *out = b;
    return AMP_OK;
}
