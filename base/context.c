/* Context: allocator, logger, limits and the last error message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static void *default_alloc(void *u, size_t n) { (void)u; return malloc(n ? n : 1); }
static void *default_realloc(void *u, void *p, size_t n) { (void)u; return realloc(p, n ? n : 1); }
static void default_free(void *u, void *p) { (void)u; free(p); }

static const char *const status_names[] = {
#define AMP_X_(name, value, msg) [value] = #name,
    AMP_STATUS_LIST(AMP_X_)
#undef AMP_X_
};
static const char *const status_msgs[] = {
#define AMP_X_(name, value, msg) [value] = msg,
    AMP_STATUS_LIST(AMP_X_)
#undef AMP_X_
};
_Static_assert(sizeof(status_names) / sizeof(status_names[0]) == AMP_STATUS_COUNT, "status table");

const char *amp_status_name(amp_status s) {
    return (unsigned)s < AMP_STATUS_COUNT ? status_names[s] : "unknown";
}
const char *amp_status_str(amp_status s) {
    return (unsigned)s < AMP_STATUS_COUNT ? status_msgs[s] : "unknown status";
}

amp_status amp_context_create(const amp_context_desc *desc, amp_context **out) {
    amp_context_desc d;
    memset(&d, 0, sizeof d);
    if (desc) {
        size_t n = desc->struct_size ? desc->struct_size : sizeof d;
        if (n > sizeof d) n = sizeof d;
        memcpy(&d, desc, n);
    }
    if (!out) return AMP_ERR_INVALID_ARG;
    amp_allocator a = d.allocator;
    if (!a.alloc || !a.free) {
        a.alloc = default_alloc;
        a.realloc = default_realloc;
        a.free = default_free;
        a.user_data = NULL;
    }
    amp_context *c = a.alloc(a.user_data, sizeof *c);
    if (!c) return AMP_ERR_NO_MEMORY;
    memset(c, 0, sizeof *c);
    c->a = a;
    c->log = d.log;
    c->log_user_data = d.log_user_data;
    c->log_level = d.log_level;
    c->max_tensor_elements = d.max_tensor_elements > 0 ? d.max_tensor_elements : ((int64_t)1 << 31);
    c->max_file_bytes = d.max_file_bytes > 0 ? d.max_file_bytes : ((int64_t)2 << 30);
    c->max_nodes = d.max_nodes > 0 ? d.max_nodes : 1000000;
    c->max_memory_bytes = d.max_memory_bytes > 0 ? d.max_memory_bytes : ((int64_t)8 << 30);
    *out = c;
    return AMP_OK;
}

void amp_context_destroy(amp_context *ctx) {
    if (!ctx) return;
    ctx->a.free(ctx->a.user_data, ctx);
}

const char *amp_context_last_error(const amp_context *ctx) { return ctx ? ctx->err : ""; }

void *amp_alloc(amp_context *ctx, size_t size) {
    void *p = ctx->a.alloc(ctx->a.user_data, size ? size : 1);
    if (!p) ctx->alloc_failures++;
    return p;
}

void *amp_calloc(amp_context *ctx, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = amp_alloc(ctx, n * size);
    if (p) {
        size_t total = n * size;
        memset(p, 0, total > 0 ? total : 1);
    }
    return p;
}

void *amp_realloc(amp_context *ctx, void *p, size_t size) {
    void *q = ctx->a.realloc ? ctx->a.realloc(ctx->a.user_data, p, size ? size : 1) : NULL;
    if (!q) ctx->alloc_failures++;
    return q;
}

void amp_dealloc(amp_context *ctx, void *p) {
    if (p) ctx->a.free(ctx->a.user_data, p);
}

void amp_free(amp_context *ctx, void *p) {
    if (ctx && p) amp_dealloc(ctx, p);
}

char *amp_strdup(amp_context *ctx, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = amp_alloc(ctx, n);
    if (d) memcpy(d, s, n);
    return d;
}

amp_status amp_grow(amp_context *ctx, void **arr, int *cap, int need, size_t elt) {
    if (need <= *cap) return AMP_OK;
    int nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > (1 << 29)) return AMP_ERR_LIMIT;
        nc *= 2;
    }
    void *p = amp_calloc(ctx, (size_t)nc, elt);
    if (!p) return AMP_ERR_NO_MEMORY;
    if (*arr) {
        memcpy(p, *arr, (size_t)*cap * elt);
        amp_dealloc(ctx, *arr);
    }
    *arr = p;
    *cap = nc;
    return AMP_OK;
}

amp_status amp_vseterr(amp_context *ctx, amp_status s, const char *fmt, va_list ap) {
    if (!ctx) return s;
    /* through a copy: callers wrap the message already there ("...: %s", ctx->err), and
     * vsnprintf into the buffer it reads from is undefined */
    char buf[sizeof ctx->err];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(ctx->err, buf, sizeof buf);
    if (ctx->log && ctx->log_level >= AMP_LOG_ERROR) ctx->log(ctx->log_user_data, AMP_LOG_ERROR, ctx->err);
    return s;
}

amp_status amp_seterr(amp_context *ctx, amp_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    amp_vseterr(ctx, s, fmt, ap);
    va_end(ap);
    return s;
}

void amp_log(amp_context *ctx, amp_log_level level, const char *fmt, ...) {
    if (!ctx || !ctx->log || level > ctx->log_level) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user_data, level, buf);
}

void amp_copy_options(void *dst, size_t dst_size, const void *src) {
    memset(dst, 0, dst_size);
    if (!src) return;
    size_t n;
    memcpy(&n, src, sizeof n);
    if (n == 0 || n > dst_size) n = dst_size;
    memcpy(dst, src, n);
}

amp_status amp_copy_output(amp_context *ctx, void *dst, const void *src, size_t src_size, const char *what) {
    size_t n;
    memcpy(&n, dst, sizeof n);
    if (n < sizeof n)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "%s: struct_size is %zu; set it to sizeof the struct", what, n);
    if (!src) return AMP_OK;
    /* the caller's struct_size stays as it is: only the fields after it are written, and only
     * those its header knows (a caller built against a newer header keeps its extra fields) */
    if (n > src_size) n = src_size;
    memcpy((char *)dst + sizeof n, (const char *)src + sizeof n, n - sizeof n);
    return AMP_OK;
}
