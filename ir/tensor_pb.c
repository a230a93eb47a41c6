/* ONNX TensorProto <-> amp_tensor, external data, file I/O, and the public .pb tensor calls. */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/onnx_pb.h"

static void *pb_alloc(void *u, size_t n) { return amp_alloc(u, n); }
static void pb_free(void *u, void *p) { amp_dealloc(u, p); }

void amp_pb_allocator(amp_context *ctx, ProtobufCAllocator *a) {
    a->alloc = pb_alloc;
    a->free = pb_free;
    a->allocator_data = ctx;
}

amp_status amp_read_file(amp_context *ctx, const char *path, int64_t max_bytes, void **data, size_t *size) {
    int fd;
    uint64_t n;
    amp_status s = amp_open_regular(ctx, path, "file", max_bytes, &fd, &n);
    if (s) return s;
    void *buf = n < SIZE_MAX ? amp_alloc(ctx, (size_t)n + 1) : NULL;
    if (!buf) s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory reading '%s'", path);
    else if (!amp_pread_all(fd, buf, (size_t)n, 0)) s = amp_seterr(ctx, AMP_ERR_IO, "short read on '%s'", path);
    close(fd);
    if (s) {
        amp_dealloc(ctx, buf);
        return s;
    }
    *data = buf;
    *size = (size_t)n;
    return AMP_OK;
}

amp_status amp_write_file_atomic(amp_context *ctx, const char *path, const void *data, size_t size) {
    size_t n = strlen(path);
    char *tmp = amp_alloc(ctx, n + 32);
    if (!tmp) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    snprintf(tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    amp_status s = AMP_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        s = amp_seterr(ctx, AMP_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        goto done;
    }
    if ((size && fwrite(data, 1, size, f) != size) || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        remove(tmp);
        s = amp_seterr(ctx, AMP_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        goto done;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        s = amp_seterr(ctx, AMP_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto done;
    }
done:
    amp_dealloc(ctx, tmp);
    return s;
}

static bool held_dtype(int t) {
    return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16 || t == AMP_F64 || t == AMP_I64 || t == AMP_I32 ||
           t == AMP_I8 || t == AMP_U8 || t == AMP_BOOL || t == AMP_I16 || t == AMP_U16 || t == AMP_U32 ||
           t == AMP_U64;
}

const char *amp_onnx_type_name(int t) {
    static const char *const names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16", "int32",
                                        "int64", "string", "bool", "float16", "double", "uint32", "uint64",
                                        "complex64", "complex128", "bfloat16", "float8e4m3fn", "float8e4m3fnuz",
                                        "float8e5m2", "float8e5m2fnuz", "uint4", "int4"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* A strict decimal integer in [0, INT64_MAX]: no sign, no spaces, nothing after. */
static bool parse_u63(const char *v, int64_t *out) {
    if (!v[0]) return false;
    int64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || x > (INT64_MAX - (*p - '0')) / 10) return false;
        x = x * 10 + (*p - '0');
    }
    *out = x;
    return true;
}

/* A location stays in the model's folder when it is relative and no component is "..". */
static bool location_inside(const char *loc) {
    if (loc[0] == '/' || strchr(loc, '\\')) return false;
    for (const char *p = loc; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return false;
        p += n;
        if (*p) p++;
    }
    return true;
}

/* Find, check and open a tensor's external data before anything is allocated for it: the
 * location confined to base_dir (after resolving symlinks), a regular file that holds
 * nbytes at the offset. On success *fd is open and *offset set. */
static amp_status open_external(amp_context *ctx, const Onnx__TensorProto *tp, const char *base_dir, size_t nbytes,
                                const char *what, int *fd, int64_t *offset_out) {
    const char *loc = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value) continue;
        bool is_off = strcmp(e->key, "offset") == 0, is_len = strcmp(e->key, "length") == 0;
        if (strcmp(e->key, "location") == 0) loc = e->value;
        else if ((is_off || is_len) && !parse_u63(e->value, is_off ? &offset : &length))
            return amp_seterr(ctx, AMP_ERR_PARSE, "tensor '%s': external data %s '%s' is not a non-negative integer",
                              what, e->key, e->value);
    }
    if (!loc || !loc[0]) return amp_seterr(ctx, AMP_ERR_PARSE, "%s: external data without a location", what);
    if (!base_dir)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "%s: external data '%s' but the model has no folder", what, loc);
    if (!location_inside(loc))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "%s: external data path '%s' leaves the model's folder", what, loc);
    if (length >= 0 && (uint64_t)length != nbytes)
        return amp_seterr(ctx, AMP_ERR_PARSE, "%s: external data length %lld does not match %zu bytes", what,
                          (long long)length, nbytes);
    amp_status s = AMP_OK;
    char *path = NULL, *rbase = NULL, *rpath = NULL;
    size_t n = strlen(base_dir) + strlen(loc) + 2;
    path = amp_alloc(ctx, n);
    if (!path) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    snprintf(path, n, "%s/%s", base_dir, loc);
    rbase = realpath(base_dir, NULL);
    rpath = realpath(path, NULL);
    if (!rpath) {
        s = amp_seterr(ctx, AMP_ERR_IO, "%s: external data file '%s' is missing: %s", what, path, strerror(errno));
        goto done;
    }
    size_t bl = rbase ? strlen(rbase) : 0;
    if (!rbase || strncmp(rbase, rpath, bl) != 0 || (bl > 1 && rpath[bl] != '/' && rpath[bl] != 0)) {
        s = amp_seterr(ctx, AMP_ERR_INVALID_ARG, "%s: external data '%s' resolves outside the model's folder", what, loc);
        goto done;
    }
    uint64_t size;
    if ((s = amp_open_regular(ctx, rpath, "external data file", ctx->max_file_bytes, fd, &size))) {
        char msg[sizeof ctx->err];
        snprintf(msg, sizeof msg, "%s", ctx->err);
        amp_seterr(ctx, s, "%s: %s", what, msg);
        goto done;
    }
    if ((uint64_t)offset > size || size - (uint64_t)offset < nbytes) {
        close(*fd);
        s = amp_seterr(ctx, AMP_ERR_PARSE, "%s: external data file '%s' is too short (%llu bytes, need %zu at %lld)",
                       what, path, (unsigned long long)size, nbytes, (long long)offset);
        goto done;
    }
    *offset_out = offset;
done:
    free(rbase);
    free(rpath);
    amp_dealloc(ctx, path);
    return s;
}

/* A FLOAT or DOUBLE tensor's typed field from a compact copy: the pieces protobuf-c holds and
 * the packed pieces the walk marked, read from the file in the order the file has them. */
static amp_status read_typed(amp_context *ctx, const Onnx__TensorProto *tp, const amp_pb_source *src, uint32_t field,
                             uint8_t *dst, const char *what) {
    size_t elem = field == 4 ? 4 : 8, n_inline = field == 4 ? tp->n_float_data : tp->n_double_data, k = 0;
    const uint8_t *inl = field == 4 ? (const uint8_t *)tp->float_data : (const uint8_t *)tp->double_data;
    uint64_t off, len, before;
    amp_status s;
    for (size_t c = 0; amp_pb_marked_typed(tp, &c, field, &off, &len, &before);) {
        if (before < k || before > n_inline) /* a message given twice (protobuf-c merges them) */
            return amp_seterr(ctx, AMP_ERR_PARSE, "tensor '%s': its %s is given in pieces that cannot be ordered", what,
                              field == 4 ? "float_data" : "double_data");
        if (before > k) memcpy(dst, inl + k * elem, (size_t)(before - k) * elem);
        dst += (size_t)(before - k) * elem;
        k = (size_t)before;
        if ((s = amp_pb_read(ctx, src, off, dst, (size_t)len, what))) return s;
        dst += len;
    }
    if (n_inline > k) memcpy(dst, inl + k * elem, (n_inline - k) * elem);
    return AMP_OK;
}

amp_status amp_tensor_from_proto(amp_context *ctx, const Onnx__TensorProto *tp, const amp_pb_source *src,
                                 const char *base_dir, amp_tensor **out) {
    const char *what = tp->name && tp->name[0] ? tp->name : "<unnamed tensor>";
    int dt = tp->has_data_type ? tp->data_type : 0;
    if (!held_dtype(dt))
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "tensor '%s': dtype %s is not supported", what, amp_onnx_type_name(dt));
    if (tp->segment) return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "tensor '%s': segmented tensors are not supported", what);
    if (tp->n_dims > AMP_MAX_RANK)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "tensor '%s': rank %zu exceeds %d", what, tp->n_dims, AMP_MAX_RANK);
    for (size_t i = 0; i < tp->n_dims; i++)
        if (tp->dims[i] < 0) return amp_seterr(ctx, AMP_ERR_PARSE, "tensor '%s': negative dimension", what);
    int64_t numel;
    size_t nbytes;
    amp_status s = amp_shape_numel((int)tp->n_dims, tp->dims, (amp_dtype)dt, &numel, &nbytes);
    if (s) return amp_seterr(ctx, s, "tensor '%s': size overflows", what);
    if (numel > ctx->max_tensor_elements)
        return amp_seterr(ctx, AMP_ERR_LIMIT, "tensor '%s': %lld elements exceed the limit", what, (long long)numel);
    bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    uint64_t raw_off = 0, raw_len = 0;
    bool marked = !external && src && amp_pb_marked_raw(tp, &raw_off, &raw_len);
    /* packed float_data / double_data left in the file by the walk (only for the dtype that
     * field holds: another dtype reads its own field, as without markers) */
    uint32_t typed_field = dt == AMP_F32 ? 4 : dt == AMP_F64 ? 10 : 0;
    uint64_t typed_bytes = 0, t_off, t_len, t_before;
    bool typed_marked = false;
    if (src && typed_field)
        for (size_t c = 0; amp_pb_marked_typed(tp, &c, typed_field, &t_off, &t_len, &t_before);) {
            typed_bytes += t_len;
            typed_marked = true;
        }
    /* check that the payload exists and has the declared size before allocating, so a tiny
     * file cannot ask for a huge tensor */
    uint64_t have = 0;
    int fd = -1;
    int64_t ext_off = 0;
    if (external) {
        if ((s = open_external(ctx, tp, base_dir, nbytes, what, &fd, &ext_off))) return s;
        have = nbytes;
    } else if (marked) have = raw_len;
    else if (tp->has_raw_data) have = tp->raw_data.len;
    else {
        switch (dt) {
        case AMP_F32: have = tp->n_float_data * 4 + typed_bytes; break;
        case AMP_F64: have = tp->n_double_data * 8 + typed_bytes; break;
        case AMP_I64: have = tp->n_int64_data * 8; break;
        case AMP_U32: case AMP_U64: have = tp->n_uint64_data * amp_dtype_size((amp_dtype)dt); break;
        default: have = tp->n_int32_data * amp_dtype_size((amp_dtype)dt); break;
        }
    }
    if (have != nbytes)
        return amp_seterr(ctx, AMP_ERR_PARSE, "tensor '%s': %llu bytes of data for %lld elements of %s", what,
                          (unsigned long long)have, (long long)numel, amp_dtype_name((amp_dtype)dt));
    amp_tensor *t;
    if ((s = amp_tensor_create(ctx, (amp_dtype)dt, (int)tp->n_dims, tp->dims, &t))) {
        if (fd >= 0) close(fd);
        return s;
    }
    if (external) {
        if (nbytes && !amp_pread_all(fd, t->data, nbytes, (uint64_t)ext_off))
            s = amp_seterr(ctx, AMP_ERR_IO, "%s: cannot read external data: %s", what, strerror(errno));
        close(fd);
    } else if (marked) {
        s = amp_pb_read(ctx, src, raw_off, t->data, nbytes, what);
    } else if (tp->has_raw_data) {
        if (nbytes) memcpy(t->data, tp->raw_data.data, nbytes);
    } else if (typed_marked) {
        s = read_typed(ctx, tp, src, typed_field, t->data, what);
    } else {
        for (int64_t i = 0; i < numel; i++) {
            switch (dt) {
            case AMP_F32: ((float *)t->data)[i] = tp->float_data[i]; break;
            case AMP_F64: ((double *)t->data)[i] = tp->double_data[i]; break;
            case AMP_I64: ((int64_t *)t->data)[i] = tp->int64_data[i]; break;
            case AMP_I32: ((int32_t *)t->data)[i] = tp->int32_data[i]; break;
            case AMP_I8: ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i]; break;
            case AMP_U8: ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i]; break;
            case AMP_I16: ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i]; break;
            case AMP_U16: ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
            case AMP_U32: ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i]; break;
            case AMP_U64: ((uint64_t *)t->data)[i] = tp->uint64_data[i]; break;
            case AMP_BOOL: ((uint8_t *)t->data)[i] = tp->int32_data[i] != 0; break;
            case AMP_F16: case AMP_BF16: ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i]; break;
            default: break;
            }
        }
    }
    if (s) {
        amp_tensor_destroy(t);
        return s;
    }
    if (dt == AMP_BOOL)
        for (int64_t i = 0; i < numel; i++) ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    *out = t;
    return AMP_OK;
}

/* Fill tp from t (raw_data pointing at t's bytes: tp borrows t, do not free its fields). */
void amp_tensor_to_proto(const amp_tensor *t, const char *name, Onnx__TensorProto *tp, int64_t *dims_buf) {
    onnx__tensor_proto__init(tp);
    tp->name = (char *)(name ? name : "");
    tp->has_data_type = 1;
    tp->data_type = t->dtype;
    tp->n_dims = (size_t)t->rank;
    for (int i = 0; i < t->rank; i++) dims_buf[i] = t->dims[i];
    tp->dims = dims_buf;
    tp->has_raw_data = 1;
    tp->raw_data.data = t->data;
    tp->raw_data.len = t->nbytes;
}

amp_status amp_tensor_load_pb(amp_context *ctx, const char *path, amp_tensor **out, char **name) {
    if (!ctx || !path || !out) return AMP_ERR_INVALID_ARG;
    amp_pb_source src = {.path = path};
    uint64_t size;
    amp_status s = amp_open_regular(ctx, path, "tensor file", ctx->max_file_bytes, &src.fd, &size);
    if (s) return s;
    uint8_t *buf = NULL;
    size_t n = 0;
    char what[64 + 256];
    snprintf(what, sizeof what, "tensor file '%.256s'", path);
    if ((s = amp_pb_compact(ctx, &onnx__tensor_proto__descriptor, &src, size, what, &buf, &n))) {
        close(src.fd);
        return s;
    }
    ProtobufCAllocator pa;
    amp_pb_allocator(ctx, &pa);
    unsigned long failures = ctx->alloc_failures;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&pa, n, buf);
    amp_dealloc(ctx, buf);
    if (!tp) {
        close(src.fd);
        if (ctx->alloc_failures != failures) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory reading '%s'", path);
        return amp_seterr(ctx, AMP_ERR_PARSE, "'%s' is not a valid ONNX TensorProto", path);
    }
    char *dir = NULL;
    const char *slash = strrchr(path, '/');
    if (slash) {
        dir = amp_alloc(ctx, (size_t)(slash - path) + 1);
        if (dir) {
            memcpy(dir, path, (size_t)(slash - path));
            dir[slash - path] = 0;
        }
    }
    amp_tensor *t = NULL;
    s = amp_tensor_from_proto(ctx, tp, &src, dir ? dir : ".", &t);
    close(src.fd);
    if (!s && name) {
        *name = amp_strdup(ctx, tp->name ? tp->name : "");
        if (!*name) {
            amp_tensor_destroy(t);
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        }
    }
    amp_dealloc(ctx, dir);
    onnx__tensor_proto__free_unpacked(tp, &pa);
    if (!s) *out = t;
    return s;
}

amp_status amp_tensor_save_pb(amp_context *ctx, const amp_tensor *t, const char *name, const char *path) {
    if (!ctx || !t || !path) return AMP_ERR_INVALID_ARG;
    Onnx__TensorProto tp;
    int64_t dims[AMP_MAX_RANK];
    amp_tensor_to_proto(t, name, &tp, dims);
    size_t n = onnx__tensor_proto__get_packed_size(&tp);
    uint8_t *buf = amp_alloc(ctx, n);
    if (!buf) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    onnx__tensor_proto__pack(&tp, buf);
    amp_status s = amp_write_file_atomic(ctx, path, buf, n);
    amp_dealloc(ctx, buf);
    return s;
}
