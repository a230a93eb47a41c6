/* Tensors: owned storage or a view over the caller's memory. */
#include <string.h>

#include "base/base.h"
#include "base/elem.h"
#include "base/half.h"

size_t amp_dtype_size(amp_dtype t) {
    switch (t) {
    case AMP_F32: case AMP_I32: case AMP_U32: return 4;
    case AMP_F64: case AMP_I64: case AMP_U64: return 8;
    case AMP_F16: case AMP_BF16: case AMP_I16: case AMP_U16: return 2;
    case AMP_I8: case AMP_U8: case AMP_BOOL: return 1;
    default: return 0;
    }
}

const char *amp_dtype_name(amp_dtype t) {
    switch (t) {
    case AMP_F32: return "float32";
    case AMP_F16: return "float16";
    case AMP_BF16: return "bfloat16";
    case AMP_F64: return "float64";
    case AMP_I64: return "int64";
    case AMP_I32: return "int32";
    case AMP_I8: return "int8";
    case AMP_U8: return "uint8";
    case AMP_I16: return "int16";
    case AMP_U16: return "uint16";
    case AMP_U32: return "uint32";
    case AMP_U64: return "uint64";
    case AMP_BOOL: return "bool";
    default: return "undefined";
    }
}

amp_status amp_shape_numel(int rank, const int64_t *dims, amp_dtype dtype, int64_t *numel, size_t *nbytes) {
    if (rank < 0 || rank > AMP_MAX_RANK) return AMP_ERR_UNSUPPORTED;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return AMP_ERR_SHAPE;
        if (dims[i] != 0 && n > INT64_MAX / dims[i]) return AMP_ERR_OVERFLOW;
        n *= dims[i];
    }
    size_t es = amp_dtype_size(dtype);
    if (es == 0) return AMP_ERR_UNSUPPORTED;
    if ((uint64_t)n > (uint64_t)(SIZE_MAX / es) || (uint64_t)n > ((uint64_t)INT64_MAX) / es) return AMP_ERR_OVERFLOW;
    if (numel) *numel = n;
    if (nbytes) *nbytes = (size_t)n * es;
    return AMP_OK;
}

void amp_tensor_view(amp_tensor *t, amp_dtype dtype, int rank, const int64_t *dims, void *data) {
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    amp_shape_numel(rank, dims, dtype, &t->numel, &t->nbytes);
    t->data = data;
}

static amp_status check_shape(amp_context *ctx, amp_dtype dtype, int rank, const int64_t *dims, int64_t *numel,
                              size_t *nbytes) {
    if (amp_dtype_size(dtype) == 0) return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "unsupported dtype %d", (int)dtype);
    if (rank < 0 || rank > AMP_MAX_RANK || (rank > 0 && !dims))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "rank %d is not in 0..%d", rank, AMP_MAX_RANK);
    amp_status s = amp_shape_numel(rank, dims, dtype, numel, nbytes);
    if (s == AMP_ERR_SHAPE) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "negative dimension");
    if (s != AMP_OK) return amp_seterr(ctx, s, "tensor size overflows");
    if (*numel > ctx->max_tensor_elements)
        return amp_seterr(ctx, AMP_ERR_LIMIT, "tensor of %lld elements exceeds the limit of %lld", (long long)*numel,
                          (long long)ctx->max_tensor_elements);
    return AMP_OK;
}

amp_status amp_tensor_create(amp_context *ctx, amp_dtype dtype, int rank, const int64_t *dims, amp_tensor **out) {
    if (!ctx || !out) return AMP_ERR_INVALID_ARG;
    int64_t numel = 0;
    size_t nbytes = 0;
    amp_status s = check_shape(ctx, dtype, rank, dims, &numel, &nbytes);
    if (s) return s;
    amp_tensor *t = amp_calloc(ctx, 1, sizeof *t);
    if (!t) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating a tensor");
    t->data = amp_calloc(ctx, 1, nbytes ? nbytes : 1);
    if (!t->data) {
        amp_dealloc(ctx, t);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory for a tensor of %zu bytes", nbytes);
    }
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    t->numel = numel;
    t->nbytes = nbytes;
    t->ctx = ctx;
    t->owns = 1;
    *out = t;
    return AMP_OK;
}

amp_status amp_tensor_wrap(amp_context *ctx, amp_dtype dtype, int rank, const int64_t *dims, void *data,
                           size_t nbytes, amp_tensor **out) {
    if (!ctx || !out) return AMP_ERR_INVALID_ARG;
    int64_t numel = 0;
    size_t need = 0;
    amp_status s = check_shape(ctx, dtype, rank, dims, &numel, &need);
    if (s) return s;
    if (need != nbytes)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "buffer of %zu bytes for a tensor of %zu bytes", nbytes, need);
    if (!data && need) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "NULL data");
    amp_tensor *t = amp_calloc(ctx, 1, sizeof *t);
    if (!t) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating a tensor");
    amp_tensor_view(t, dtype, rank, dims, data);
    t->ctx = ctx;
    *out = t;
    return AMP_OK;
}

amp_status amp_tensor_clone(amp_context *ctx, const amp_tensor *src, amp_tensor **out) {
    amp_tensor *t;
    amp_status s = amp_tensor_create(ctx, src->dtype, src->rank, src->dims, &t);
    if (s) return s;
    if (src->nbytes) memcpy(t->data, src->data, src->nbytes);
    *out = t;
    return AMP_OK;
}

void amp_tensor_destroy(amp_tensor *t) {
    if (!t) return;
    amp_context *ctx = t->ctx;
    if (t->owns) amp_dealloc(ctx, t->data);
    amp_dealloc(ctx, t);
}

amp_dtype amp_tensor_dtype(const amp_tensor *t) { return t ? t->dtype : AMP_UNDEFINED; }
int amp_tensor_rank(const amp_tensor *t) { return t ? t->rank : 0; }
const int64_t *amp_tensor_dims(const amp_tensor *t) { return t ? t->dims : NULL; }
int64_t amp_tensor_numel(const amp_tensor *t) { return t ? t->numel : 0; }
size_t amp_tensor_nbytes(const amp_tensor *t) { return t ? t->nbytes : 0; }
void *amp_tensor_data(amp_tensor *t) { return t ? t->data : NULL; }

bool amp_dtype_is_float(amp_dtype t) { return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16 || t == AMP_F64; }
bool amp_dtype_is_int(amp_dtype t) {
    switch (t) {
    case AMP_I64: case AMP_I32: case AMP_I16: case AMP_I8: case AMP_U64: case AMP_U32: case AMP_U16: case AMP_U8:
        return true;
    default:
        return false;
    }
}

/* ---- 16-bit conversion for callers ------------------------------------------------------------ */

amp_status amp_convert_from_f32(amp_dtype dtype, const float *src, void *dst, size_t n) {
    if ((dtype != AMP_F16 && dtype != AMP_BF16) || (n && (!src || !dst))) return AMP_ERR_INVALID_ARG;
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = dtype == AMP_F16 ? amp_f32_to_f16(src[i]) : amp_f32_to_bf16(src[i]);
    return AMP_OK;
}

amp_status amp_convert_to_f32(amp_dtype dtype, const void *src, float *dst, size_t n) {
    if ((dtype != AMP_F16 && dtype != AMP_BF16) || (n && (!src || !dst))) return AMP_ERR_INVALID_ARG;
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i++) dst[i] = dtype == AMP_F16 ? amp_f16_to_f32(s[i]) : amp_bf16_to_f32(s[i]);
    return AMP_OK;
}

/* The pairs amp_tensor_convert rounds exactly once: among f32, f16 and bf16, and f64 with f32. */
static bool convertible(amp_dtype a, amp_dtype b) {
    bool small_a = a == AMP_F32 || a == AMP_F16 || a == AMP_BF16, small_b = b == AMP_F32 || b == AMP_F16 || b == AMP_BF16;
    return a == b || (small_a && small_b) || (a == AMP_F64 && b == AMP_F32) || (a == AMP_F32 && b == AMP_F64);
}

amp_status amp_tensor_convert(amp_context *ctx, const amp_tensor *t, amp_dtype dtype, amp_tensor **out) {
    if (!ctx || !t || !out) return AMP_ERR_INVALID_ARG;
    if (!convertible(t->dtype, dtype))
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED,
                          "amp_tensor_convert: %s to %s is not supported (f32, f16, bf16 among themselves; f64 with "
                          "f32)",
                          amp_dtype_name(t->dtype), amp_dtype_name(dtype));
    amp_tensor *o = NULL;
    amp_status s = amp_tensor_create(ctx, dtype, t->rank, t->dims, &o);
    if (s) return s;
    if (dtype == t->dtype) {
        if (t->nbytes) memcpy(o->data, t->data, t->nbytes);
    } else {
        /* every source value is exact as a double, and amp_st rounds an f32 value once */
        for (int64_t i = 0; i < t->numel; i++) amp_st(dtype, o->data, i, amp_ld(t->dtype, t->data, i));
    }
    *out = o;
    return AMP_OK;
}
