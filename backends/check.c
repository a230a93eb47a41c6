/* The checking backend: a wrapper that makes memory mistakes of the wrapped backend's kernels
 * fail their tests. Around every step it
 *   - fills each output (except one that aliases an input: an in-place op) and the workspace
 *     with AMP_POISON_BYTE, NaN in every float dtype, so a kernel that reads what it did not
 *     write produces NaN;
 *   - fills every arena byte outside the buffers live at this step (dead buffers, the padding
 *     behind each live buffer's exact bytes, the arena's tail) with the same byte, so reading a
 *     dead or out-of-range value produces NaN;
 *   - checks after the step that those bytes are still poison, so a kernel that writes past its
 *     buffer fails with AMP_ERR_INTERNAL naming the node and the offset.
 * Host-memory backends only (the poison is written with memset). */
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"

typedef struct range {
    size_t lo, hi;
} range;

typedef struct check_state {
    amp_backend *inner;
    range *live; /* scratch for the ranges live at a step; grown on first use per plan size */
    int cap;
} check_state;

static check_state *cs(amp_backend *b) { return b->state; }

static bool check_supports(amp_backend *b, const amp_kernel *k) { return amp_backend_supports(cs(b)->inner, k); }

static amp_status check_prepare(amp_backend *b, const amp_kernel *k, void **state, size_t *ws_bytes) {
    return amp_backend_prepare(cs(b)->inner, k, state, ws_bytes);
}

static void check_release(amp_backend *b, void *state) { amp_backend_release(cs(b)->inner, state); }

static bool check_has_op(amp_backend *b, amp_op op) { return amp_backend_has_op(cs(b)->inner, op); }

static int by_lo(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The arena ranges live at step si, sorted and merged; their count or -1 without memory. */
static int live_ranges(amp_backend *b, const amp_backend_layout *l, int si) {
    check_state *c = cs(b);
    if (amp_grow(b->ctx, (void **)&c->live, &c->cap, l->nbufs + 1, sizeof(range))) return -1;
    int n = 0;
    for (int i = 0; i < l->nbufs; i++)
        if (l->bufs[i].first <= si && si <= l->bufs[i].last && l->bytes[i])
            c->live[n++] = (range){l->offsets[i], l->offsets[i] + l->bytes[i]};
    qsort(c->live, (size_t)n, sizeof(range), by_lo);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && c->live[i].lo <= c->live[m - 1].hi) {
            if (c->live[i].hi > c->live[m - 1].hi) c->live[m - 1].hi = c->live[i].hi;
        } else {
            c->live[m++] = c->live[i];
        }
    }
    return m;
}

/* Fill (check == false) or verify (check == true) the bytes outside the live ranges. Returns the
 * offset of the first byte that is not poison, or SIZE_MAX. */
static size_t dead_bytes(const amp_backend_layout *l, const range *live, int n, bool check) {
    size_t at = 0;
    for (int i = 0; i <= n; i++) {
        size_t end = i < n ? live[i].lo : l->arena_bytes;
        if (end > at) {
            if (!check) {
                memset(l->arena + at, AMP_POISON_BYTE, end - at);
            } else {
                for (size_t p = at; p < end; p++)
                    if (l->arena[p] != AMP_POISON_BYTE) return p;
            }
        }
        if (i < n && live[i].hi > at) at = live[i].hi;
    }
    return SIZE_MAX;
}

static bool aliases_input(const amp_kernel *k, const amp_tensor *t) {
    for (int i = 0; i < k->nin; i++)
        if (k->in[i] && k->in[i]->data == t->data) return true;
    return false;
}

static amp_status check_run(amp_backend *b, amp_backend_step *st) {
    amp_kernel *k = &st->k;
    const amp_backend_layout *l = st->layout;
    int n = 0;
    if (l && l->arena) {
        n = live_ranges(b, l, st->index);
        if (n < 0) return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "out of memory in the checking backend");
        dead_bytes(l, cs(b)->live, n, false);
    }
    for (int o = 0; o < k->nout; o++) {
        amp_tensor *t = k->out[o];
        if (t && t->data && t->nbytes && !aliases_input(k, t)) memset(t->data, AMP_POISON_BYTE, t->nbytes);
    }
    if (k->ws && k->ws_bytes) memset(k->ws, AMP_POISON_BYTE, k->ws_bytes);
    amp_status s = amp_backend_run(cs(b)->inner, st);
    if (s) return s;
    s = amp_backend_synchronize(cs(b)->inner);
    if (s) return s;
    if (l && l->arena) {
        size_t bad = dead_bytes(l, cs(b)->live, n, true);
        if (bad != SIZE_MAX)
            return amp_kernel_fail(k, AMP_ERR_INTERNAL,
                                   "wrote outside its buffers: arena byte %zu (of %zu) is not live at step %d", bad,
                                   l->arena_bytes, st->index);
    }
    return AMP_OK;
}

static amp_status check_mem_alloc(amp_backend *b, amp_mem_kind kind, size_t bytes, void **ptr) {
    amp_backend *in = cs(b)->inner;
    amp_status s = in->i.mem_alloc(in, kind, bytes, ptr);
    if (!s && bytes) memset(*ptr, AMP_POISON_BYTE, bytes);
    return s;
}

static void check_mem_free(amp_backend *b, amp_mem_kind kind, void *ptr) {
    amp_backend *in = cs(b)->inner;
    in->i.mem_free(in, kind, ptr);
}

static amp_status check_upload(amp_backend *b, void *dst, const void *src, size_t bytes) {
    amp_backend *in = cs(b)->inner;
    return in->i.upload(in, dst, src, bytes);
}

static amp_status check_download(amp_backend *b, void *dst, const void *src, size_t bytes) {
    amp_backend *in = cs(b)->inner;
    return in->i.download(in, dst, src, bytes);
}

static amp_status check_synchronize(amp_backend *b) { return amp_backend_synchronize(cs(b)->inner); }

static void check_destroy(amp_backend *b) {
    check_state *c = cs(b);
    amp_backend_destroy(c->inner);
    amp_dealloc(b->ctx, c->live);
    amp_dealloc(b->ctx, c);
    amp_dealloc(b->ctx, b);
}

amp_status amp_backend_check_create(amp_backend *inner, amp_backend **out) {
    if (!inner) return AMP_ERR_INVALID_ARG;
    amp_context *ctx = inner->ctx;
    if (!inner->i.host_memory) {
        amp_backend_destroy(inner);
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "the checking backend wraps host-memory backends only");
    }
    amp_backend *b = amp_calloc(ctx, 1, sizeof *b);
    check_state *c = amp_calloc(ctx, 1, sizeof *c);
    if (!b || !c) {
        amp_dealloc(ctx, b);
        amp_dealloc(ctx, c);
        amp_backend_destroy(inner);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating the checking backend");
    }
    c->inner = inner;
    b->i = (amp_backend_i){
        .name = "cpu-check",
        .host_memory = true,
        .supports = check_supports,
        .prepare = check_prepare,
        .release = check_release,
        .run = check_run,
        .mem_alloc = check_mem_alloc,
        .mem_free = check_mem_free,
        .upload = check_upload,
        .download = check_download,
        .synchronize = check_synchronize,
        .destroy = check_destroy,
        .has_op = check_has_op,
        .fusions = inner->i.fusions, /* the same graph as the backend it checks */
    };
    b->state = c;
    b->ctx = ctx;
    b->threads = inner->threads;
    *out = b;
    return AMP_OK;
}
