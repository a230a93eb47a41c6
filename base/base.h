/* The base layer: context internals (allocator, log, limits, last error), tensors and dtypes.
 * Every other layer (ir, passes, backends, runtime, tools) may include this header; it
 * includes nothing of amprt but the public header. Internal to amprt. */
#ifndef AMP_BASE_BASE_H
#define AMP_BASE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amprt/amprt.h"

/* ---- context internals (base/context.c) ------------------------------------------------- */

struct amp_context {
    amp_allocator a;
    amp_log_fn log;
    void *log_user_data;
    amp_log_level log_level;
    int64_t max_tensor_elements;
    int64_t max_file_bytes;
    int64_t max_nodes;
    int64_t max_memory_bytes;
    unsigned long alloc_failures; /* allocations refused so far (tells out-of-memory from a bad
                                     file when a library reports only failure) */
    char err[1024];
};

void *amp_alloc(amp_context *ctx, size_t size);          /* NULL on failure */
void *amp_calloc(amp_context *ctx, size_t n, size_t size); /* zeroed; NULL on failure or overflow */
void *amp_realloc(amp_context *ctx, void *p, size_t size);
void amp_dealloc(amp_context *ctx, void *p);
char *amp_strdup(amp_context *ctx, const char *s);
/* Copy a caller's options struct (which starts with its size; 0 means ours) into a zeroed dst
 * of dst_size bytes: fields a caller built against an older header stay at their defaults. */
void amp_copy_options(void *dst, size_t dst_size, const void *src);
/* Hand an output struct the library filled (src, src_size bytes, starting with struct_size) to
 * the caller's dst, whose struct_size the caller set: writes the fields that fit in both, never
 * dst's struct_size, nothing past it. A dst size smaller than the size field fails with
 * AMP_ERR_INVALID_ARG and a message on ctx naming what, dst untouched. src NULL only checks
 * (call it so before work whose result must not be lost to a bad size). */
amp_status amp_copy_output(amp_context *ctx, void *dst, const void *src, size_t src_size, const char *what);
/* Grow *arr (element size elt) so that it holds at least need elements; *cap tracks capacity. */
amp_status amp_grow(amp_context *ctx, void **arr, int *cap, int need, size_t elt);
/* Record a message on ctx (and log it). Returns s, so `return amp_seterr(...)` reads well. */
amp_status amp_seterr(amp_context *ctx, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
amp_status amp_vseterr(amp_context *ctx, amp_status s, const char *fmt, va_list ap);
void amp_log(amp_context *ctx, amp_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- tensors (base/tensor.c) ----------------------------------------------------------- */

struct amp_tensor {
    amp_dtype dtype;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    int64_t numel;
    size_t nbytes;
    void *data;
    amp_context *ctx; /* allocator of data when owns */
    int owns;
};

/* numel of dims with overflow and limit checks; AMP_ERR_OVERFLOW when the product or bytes
 * overflow. */
amp_status amp_shape_numel(int rank, const int64_t *dims, amp_dtype dtype, int64_t *numel, size_t *nbytes);
/* Fill a view (no ownership) over data. */
void amp_tensor_view(amp_tensor *t, amp_dtype dtype, int rank, const int64_t *dims, void *data);
/* Deep copy. */
amp_status amp_tensor_clone(amp_context *ctx, const amp_tensor *src, amp_tensor **out);

/* The product of rank dims, unchecked: for dims whose element count was already checked
 * (amp_shape_numel, shape inference's amp_infer_set_out, a held tensor). 1 for rank 0. */
static inline int64_t amp_dims_numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= dims[d];
    return n;
}

/* Whether two shapes have the same rank and the same dims. */
static inline bool amp_dims_equal(int ra, const int64_t *a, int rb, const int64_t *b) {
    if (ra != rb) return false;
    for (int d = 0; d < ra; d++)
        if (a[d] != b[d]) return false;
    return true;
}

/* True for f32, f16, bf16 and f64. */
bool amp_dtype_is_float(amp_dtype t);
/* True for the signed and unsigned integer dtypes (not bool). */
bool amp_dtype_is_int(amp_dtype t);

#endif
