/* Training data: the IDX reader (gzip or raw), image-classification datasets and the batcher. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/data.h"

/* ---- a byte stream over a raw or gzip-compressed file ------------------------------------- */

#define IDX_CHUNK 65536

typedef struct idx_stream {
    amp_context *ctx;
    const char *path;
    FILE *f;
    unsigned char *buf;   /* IDX_CHUNK bytes of file input; zs.next_in/avail_in is the cursor */
    z_stream zs;
    bool gz;
    bool zinit;
    bool zend;            /* the last gzip member ended and nothing follows it */
    bool eof;             /* the file has no more bytes */
    uint64_t file_bytes;  /* bytes read from the file so far */
} idx_stream;

/* Move what is left of the buffer to its start and read more behind it. Reading stops at the
 * byte limit too, because a gzip stream can consume input forever (empty stored blocks)
 * without producing anything the output limit would catch. */
static amp_status stream_fill(idx_stream *s) {
    if (s->eof) return AMP_OK;
    size_t keep = s->zs.avail_in;
    if (keep && s->zs.next_in != s->buf) memmove(s->buf, s->zs.next_in, keep);
    s->zs.next_in = s->buf;
    size_t got = fread(s->buf + keep, 1, IDX_CHUNK - keep, s->f);
    if (got < IDX_CHUNK - keep) {
        if (ferror(s->f)) return amp_seterr(s->ctx, AMP_ERR_IO, "'%s': read error: %s", s->path, strerror(errno));
        s->eof = true;
    }
    s->zs.avail_in = (uInt)(keep + got);
    s->file_bytes += got;
    if (s->file_bytes > (uint64_t)s->ctx->max_file_bytes)
        return amp_seterr(s->ctx, AMP_ERR_LIMIT, "'%s': more than the limit of %lld bytes", s->path,
                          (long long)s->ctx->max_file_bytes);
    return AMP_OK;
}

static amp_status stream_open(amp_context *ctx, const char *path, idx_stream *s) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->path = path;
    /* O_NONBLOCK: a FIFO or device is refused instead of waiting for a writer (a folder opens
     * and fails on its first read, a file over the limit while it is read) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return amp_seterr(ctx, AMP_ERR_IO, "'%s': cannot open: %s", path, strerror(errno));
    struct stat fs;
    if (fstat(fd, &fs) == 0 && !S_ISREG(fs.st_mode) && !S_ISDIR(fs.st_mode)) {
        close(fd);
        return amp_seterr(ctx, AMP_ERR_IO, "IDX file '%s' is %s, not a regular file", path,
                          S_ISFIFO(fs.st_mode) ? "a FIFO" : "a device or socket");
    }
    s->f = fdopen(fd, "rb");
    if (!s->f) {
        close(fd);
        return amp_seterr(ctx, AMP_ERR_IO, "'%s': cannot open: %s", path, strerror(errno));
    }
    s->buf = amp_alloc(ctx, IDX_CHUNK);
    if (!s->buf) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "'%s': out of memory", path);
    s->zs.next_in = s->buf;
    amp_status st = stream_fill(s);
    if (st) return st;
    /* An IDX file starts with two zero bytes, so the gzip magic cannot be mistaken for one. */
    s->gz = s->zs.avail_in >= 2 && s->buf[0] == 0x1f && s->buf[1] == 0x8b;
    if (s->gz) {
        /* 16 + MAX_WBITS: gzip wrapper only, with its CRC and length checked at member end. */
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
            return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "'%s': cannot start gzip decompression", path);
        s->zinit = true;
    }
    return AMP_OK;
}

static void stream_close(idx_stream *s) {
    if (s->zinit) inflateEnd(&s->zs);
    if (s->buf) amp_dealloc(s->ctx, s->buf);
    if (s->f) fclose(s->f);
}

/* After a gzip member ends: another member may follow (concatenated gzip files are one
 * stream); anything else is not part of the file's data. */
static amp_status stream_next_member(idx_stream *s) {
    if (s->zs.avail_in < 2) {
        amp_status st = stream_fill(s);
        if (st) return st;
    }
    if (s->zs.avail_in == 0) {
        s->zend = true;
        return AMP_OK;
    }
    if (s->zs.avail_in >= 2 && s->zs.next_in[0] == 0x1f && s->zs.next_in[1] == 0x8b) {
        if (inflateReset(&s->zs) != Z_OK)
            return amp_seterr(s->ctx, AMP_ERR_INTERNAL, "'%s': cannot restart gzip decompression", s->path);
        return AMP_OK;
    }
    return amp_seterr(s->ctx, AMP_ERR_PARSE, "'%s': trailing bytes after the gzip stream", s->path);
}

/* Read up to n bytes; *got < n only at the end of the data. */
static amp_status stream_read(idx_stream *s, void *dst, size_t n, size_t *got) {
    unsigned char *out = dst;
    size_t left = n;
    amp_status st = AMP_OK;
    if (!s->gz) {
        while (left > 0) {
            if (s->zs.avail_in == 0) {
                if ((st = stream_fill(s))) return st;
                if (s->zs.avail_in == 0) break;
            }
            size_t k = left < s->zs.avail_in ? left : s->zs.avail_in;
            memcpy(out, s->zs.next_in, k);
            s->zs.next_in += k;
            s->zs.avail_in -= (uInt)k;
            out += k;
            left -= k;
        }
        *got = n - left;
        return AMP_OK;
    }
    while (left > 0 && !s->zend) {
        if (s->zs.avail_in == 0) {
            if ((st = stream_fill(s))) return st;
            if (s->zs.avail_in == 0) break; /* input over before the stream's end: truncated */
        }
        uInt chunk = left > (size_t)UINT_MAX ? UINT_MAX : (uInt)left;
        s->zs.next_out = out;
        s->zs.avail_out = chunk;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        size_t made = chunk - s->zs.avail_out;
        out += made;
        left -= made;
        if (r == Z_STREAM_END) {
            if ((st = stream_next_member(s))) return st;
        } else if (r == Z_BUF_ERROR) {
            /* no progress: only possible when the input buffer is empty; refilled above */
            if (s->zs.avail_in != 0)
                return amp_seterr(s->ctx, AMP_ERR_INTERNAL, "'%s': gzip decompression stalled", s->path);
        } else if (r == Z_MEM_ERROR) {
            return amp_seterr(s->ctx, AMP_ERR_NO_MEMORY, "'%s': out of memory decompressing", s->path);
        } else if (r != Z_OK) {
            return amp_seterr(s->ctx, AMP_ERR_PARSE, "'%s': corrupt gzip data (%s)", s->path,
                              s->zs.msg ? s->zs.msg : "inflate failed");
        }
    }
    *got = n - left;
    return AMP_OK;
}

/* A short read: say whether the file or the compressed stream ended early. */
static amp_status stream_truncated(idx_stream *s, const char *what, size_t got, size_t want) {
    return amp_seterr(s->ctx, AMP_ERR_PARSE, "'%s': truncated %s: %zu of %zu bytes%s", s->path, what, got, want,
                      s->gz && !s->zend ? " (the gzip stream is cut short)" : "");
}

/* The data must end exactly after the last element; reading to the end also makes zlib check
 * the CRC and length of the last gzip member. */
static amp_status stream_expect_end(idx_stream *s) {
    unsigned char extra;
    size_t got = 0;
    amp_status st = stream_read(s, &extra, 1, &got);
    if (st) return st;
    if (got) return amp_seterr(s->ctx, AMP_ERR_PARSE, "'%s': trailing bytes after the IDX data", s->path);
    if (s->gz && !s->zend)
        return amp_seterr(s->ctx, AMP_ERR_PARSE, "'%s': the gzip stream is cut short (truncated file)", s->path);
    return AMP_OK;
}

/* ---- IDX ------------------------------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* File element type -> (bytes in the file, dtype held). */
static bool idx_type(unsigned code, size_t *esize, amp_dtype *dt) {
    switch (code) {
    case 0x08: *esize = 1; *dt = AMP_U8; return true;
    case 0x09: *esize = 1; *dt = AMP_I8; return true;
    case 0x0B: *esize = 2; *dt = AMP_I32; return true;
    case 0x0C: *esize = 4; *dt = AMP_I32; return true;
    case 0x0D: *esize = 4; *dt = AMP_F32; return true;
    case 0x0E: *esize = 8; *dt = AMP_F64; return true;
    default: return false;
    }
}

/* Big-endian file values to host values, in place. i16 widens to i32 from the back, so each
 * element is read before the wider store reaches its bytes. */
static void idx_convert(unsigned code, void *data, int64_t n) {
    unsigned char *b = data;
    if (code == 0x0B) {
        int32_t *o = data;
        for (int64_t i = n - 1; i >= 0; i--) {
            uint16_t u = (uint16_t)((unsigned)b[2 * i] << 8 | b[2 * i + 1]);
            int16_t v;
            memcpy(&v, &u, 2);
            o[i] = v;
        }
    } else if (code == 0x0C || code == 0x0D) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = be32(b + 4 * i);
            memcpy(b + 4 * i, &u, 4);
        }
    } else if (code == 0x0E) {
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = be64(b + 8 * i);
            memcpy(b + 8 * i, &u, 8);
        }
    }
}

/* The payload goes into a buffer that grows with what the stream yields, doubling from 1 MiB up
 * to the declared size: a header that declares more than the file holds costs memory for the
 * bytes that are there, not for the declaration. The buffer ends at tensor_bytes (i16 data
 * widens to i32 in place). */
#define IDX_FIRST_ALLOC ((size_t)1 << 20)

static amp_status read_payload(idx_stream *s, size_t data_bytes, size_t tensor_bytes, unsigned char **out) {
    size_t cap = tensor_bytes < IDX_FIRST_ALLOC ? tensor_bytes : IDX_FIRST_ALLOC, have = 0;
    unsigned char *buf = amp_alloc(s->ctx, cap ? cap : 1);
    if (!buf) return amp_seterr(s->ctx, AMP_ERR_NO_MEMORY, "'%s': out of memory for %zu bytes", s->path, cap);
    while (have < data_bytes) {
        if (have == cap) {
            size_t grown = cap > tensor_bytes / 2 ? tensor_bytes : 2 * cap;
            unsigned char *nb = amp_realloc(s->ctx, buf, grown);
            if (!nb) {
                amp_dealloc(s->ctx, buf);
                return amp_seterr(s->ctx, AMP_ERR_NO_MEMORY, "'%s': out of memory for %zu bytes", s->path, grown);
            }
            buf = nb;
            cap = grown;
        }
        size_t want = (cap < data_bytes ? cap : data_bytes) - have, got = 0;
        amp_status st = stream_read(s, buf + have, want, &got);
        have += got;
        if (!st && got < want) st = stream_truncated(s, "data", have, data_bytes);
        if (st) {
            amp_dealloc(s->ctx, buf);
            return st;
        }
    }
    if (cap < tensor_bytes) {
        unsigned char *nb = amp_realloc(s->ctx, buf, tensor_bytes);
        if (!nb) {
            amp_dealloc(s->ctx, buf);
            return amp_seterr(s->ctx, AMP_ERR_NO_MEMORY, "'%s': out of memory for %zu bytes", s->path, tensor_bytes);
        }
        buf = nb;
    }
    *out = buf;
    return AMP_OK;
}

amp_status amp_idx_load(amp_context *ctx, const char *path, amp_tensor **out) {
    if (!ctx || !path || !out) return AMP_ERR_INVALID_ARG;
    idx_stream s;
    amp_tensor *t = NULL;
    unsigned char *payload = NULL;
    amp_status st = stream_open(ctx, path, &s);
    if (st) goto done;

    unsigned char head[4 + 4 * AMP_MAX_RANK];
    size_t got = 0;
    if ((st = stream_read(&s, head, 4, &got))) goto done;
    if (got < 4) {
        st = stream_truncated(&s, "header", got, 4);
        goto done;
    }
    if (head[0] != 0 || head[1] != 0) {
        st = amp_seterr(ctx, AMP_ERR_PARSE, "'%s': bad magic %02x %02x %02x %02x (not an IDX file)", path, head[0],
                        head[1], head[2], head[3]);
        goto done;
    }
    unsigned code = head[2];
    size_t esize = 0;
    amp_dtype dt = AMP_UNDEFINED;
    if (!idx_type(code, &esize, &dt)) {
        st = amp_seterr(ctx, AMP_ERR_PARSE, "'%s': unknown IDX element type 0x%02x", path, code);
        goto done;
    }
    int nd = head[3];
    if (nd < 1 || nd > AMP_MAX_RANK) {
        st = amp_seterr(ctx, AMP_ERR_PARSE, "'%s': %d dimensions (1 to %d supported)", path, nd,
                        AMP_MAX_RANK);
        goto done;
    }
    size_t dim_bytes = 4 * (size_t)nd;
    if ((st = stream_read(&s, head + 4, dim_bytes, &got))) goto done;
    if (got < dim_bytes) {
        st = stream_truncated(&s, "header", 4 + got, 4 + dim_bytes);
        goto done;
    }
    int64_t dims[AMP_MAX_RANK];
    bool has_zero = false;
    for (int i = 0; i < nd; i++) {
        dims[i] = be32(head + 4 + 4 * i);
        has_zero |= dims[i] == 0;
    }
    /* a zero dimension makes the tensor empty however large the others are */
    uint64_t numel = has_zero ? 0 : 1;
    for (int i = 0; i < nd && !has_zero; i++) {
        if (numel > UINT64_MAX / (uint64_t)dims[i]) {
            st = amp_seterr(ctx, AMP_ERR_OVERFLOW, "'%s': the product of the dimensions overflows", path);
            goto done;
        }
        numel *= (uint64_t)dims[i];
    }
    if (numel > (uint64_t)ctx->max_tensor_elements) {
        st = amp_seterr(ctx, AMP_ERR_LIMIT, "'%s': %llu elements exceed the limit of %lld", path,
                        (unsigned long long)numel, (long long)ctx->max_tensor_elements);
        goto done;
    }
    uint64_t hdr = 4 + dim_bytes;
    if (numel > (UINT64_MAX - hdr) / esize || numel * esize > SIZE_MAX) {
        st = amp_seterr(ctx, AMP_ERR_OVERFLOW, "'%s': the data size overflows", path);
        goto done;
    }
    uint64_t data_bytes = numel * esize;
    if (hdr + data_bytes > (uint64_t)ctx->max_file_bytes) {
        st = amp_seterr(ctx, AMP_ERR_LIMIT, "'%s': %llu bytes of IDX data exceed the limit of %lld", path,
                        (unsigned long long)(hdr + data_bytes), (long long)ctx->max_file_bytes);
        goto done;
    }
    int64_t n64;
    size_t tensor_bytes;
    if ((st = amp_shape_numel(nd, dims, dt, &n64, &tensor_bytes))) {
        st = amp_seterr(ctx, AMP_ERR_OVERFLOW, "'%s': the tensor size overflows", path);
        goto done;
    }
    if ((st = read_payload(&s, (size_t)data_bytes, tensor_bytes, &payload))) goto done;
    if ((st = stream_expect_end(&s))) goto done;
    idx_convert(code, payload, (int64_t)numel);
    if (!(t = amp_calloc(ctx, 1, sizeof *t))) {
        st = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "'%s': out of memory", path);
        goto done;
    }
    t->dtype = dt;
    t->rank = nd;
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)nd);
    t->numel = n64;
    t->nbytes = tensor_bytes;
    t->data = payload;
    t->ctx = ctx;
    t->owns = 1;
    payload = NULL;
    *out = t;
done:
    amp_dealloc(ctx, payload);
    stream_close(&s);
    return st;
}

/* ---- datasets ------------------------------------------------------------------------------- */

static int64_t label_at(const amp_tensor *t, int64_t i) {
    switch (t->dtype) {
    case AMP_U8: return ((const uint8_t *)t->data)[i];
    case AMP_I8: return ((const int8_t *)t->data)[i];
    case AMP_I32: return ((const int32_t *)t->data)[i];
    default: return ((const int64_t *)t->data)[i];
    }
}

/* from_tensors with the file names (or NULL) to put in messages. */
static amp_status dataset_build(amp_context *ctx, const amp_tensor *images, const amp_tensor *labels,
                                const amp_dataset_options *opts, const char *ipath, const char *lpath,
                                amp_image_dataset **out) {
    amp_dataset_options o;
    memset(&o, 0, sizeof o);
    if (opts) {
        size_t n = opts->struct_size ? opts->struct_size : sizeof o;
        memcpy(&o, opts, n < sizeof o ? n : sizeof o);
    }
    const char *in = ipath ? ipath : "images";
    const char *ln = lpath ? lpath : "labels";
    double stdv = o.std == 0 ? 1.0 : o.std;
    if (!isfinite(o.mean) || !isfinite(stdv) || stdv < 0)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "normalisation mean %g and std %g: std must be positive", o.mean,
                          o.std);
    int n_classes = o.n_classes ? o.n_classes : 10;
    if (n_classes < 1) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "%d classes", n_classes);

    if (images->dtype != AMP_U8)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "'%s': images are %s; 8-bit unsigned pixels expected", in,
                          amp_dtype_name(images->dtype));
    bool r3 = images->rank == 3, r4 = images->rank == 4 && images->dims[1] == 1;
    if (!r3 && !r4)
        return amp_seterr(ctx, AMP_ERR_SHAPE, "'%s': images of rank %d; [N, H, W] or [N, 1, H, W] expected", in,
                          images->rank);
    int64_t n = images->dims[0], h = images->dims[images->rank - 2], w = images->dims[images->rank - 1];
    if (n <= 0 || h <= 0 || w <= 0)
        return amp_seterr(ctx, AMP_ERR_SHAPE, "'%s': %lld images of %lldx%lld pixels; none may be zero", in,
                          (long long)n, (long long)h, (long long)w);
    if (labels->dtype != AMP_U8 && labels->dtype != AMP_I8 && labels->dtype != AMP_I32 && labels->dtype != AMP_I64)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "'%s': labels are %s; integers expected", ln,
                          amp_dtype_name(labels->dtype));
    if (labels->rank != 1)
        return amp_seterr(ctx, AMP_ERR_SHAPE, "'%s': labels of rank %d; [N] expected", ln, labels->rank);
    if (labels->dims[0] != n)
        return amp_seterr(ctx, AMP_ERR_SHAPE, "'%s' holds %lld images but '%s' holds %lld labels", in, (long long)n,
                          ln, (long long)labels->dims[0]);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = label_at(labels, i);
        if (v < 0 || v >= n_classes)
            return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "'%s': label %lld of sample %lld is outside 0..%d", ln,
                              (long long)v, (long long)i, n_classes - 1);
    }

    amp_status st = AMP_OK;
    amp_image_dataset *d = amp_calloc(ctx, 1, sizeof *d);
    if (!d) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory for a dataset");
    d->ctx = ctx;
    d->n = n;
    d->h = h;
    d->w = w;
    d->n_classes = n_classes;
    int64_t idims[4] = {n, 1, h, w};
    if ((st = amp_tensor_create(ctx, AMP_F32, 4, idims, &d->images))) goto fail;
    if ((st = amp_tensor_create(ctx, AMP_I64, 1, &n, &d->labels))) goto fail;
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (float)(((double)v / 255.0 - o.mean) / stdv);
    const uint8_t *src = images->data;
    float *dst = d->images->data;
    for (int64_t i = 0; i < images->numel; i++) dst[i] = lut[src[i]];
    int64_t *lab = d->labels->data;
    for (int64_t i = 0; i < n; i++) lab[i] = label_at(labels, i);
    *out = d;
    return AMP_OK;
fail:
    amp_image_dataset_destroy(d);
    return st;
}

amp_status amp_image_dataset_from_tensors(amp_context *ctx, const amp_tensor *images, const amp_tensor *labels,
                                          const amp_dataset_options *opts, amp_image_dataset **out) {
    if (!ctx || !images || !labels || !out) return AMP_ERR_INVALID_ARG;
    return dataset_build(ctx, images, labels, opts, NULL, NULL, out);
}

amp_status amp_image_dataset_load(amp_context *ctx, const char *images_path, const char *labels_path,
                                  const amp_dataset_options *opts, amp_image_dataset **out) {
    if (!ctx || !images_path || !labels_path || !out) return AMP_ERR_INVALID_ARG;
    amp_tensor *img = NULL, *lab = NULL;
    amp_status st = amp_idx_load(ctx, images_path, &img);
    if (!st) st = amp_idx_load(ctx, labels_path, &lab);
    if (!st) st = dataset_build(ctx, img, lab, opts, images_path, labels_path, out);
    amp_tensor_destroy(img);
    amp_tensor_destroy(lab);
    return st;
}

/* Exists at all: what kind of file it is, the reader checks (opening a FIFO here would block). */
static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* dir/stem.gz when it exists, else dir/stem when it exists; NULL with a status otherwise. */
static amp_status find_file(amp_context *ctx, const char *dir, const char *stem, char **out) {
    size_t n = strlen(dir) + strlen(stem) + 8;
    char *p = amp_alloc(ctx, n);
    if (!p) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    snprintf(p, n, "%s/%s.gz", dir, stem);
    if (file_exists(p)) {
        *out = p;
        return AMP_OK;
    }
    snprintf(p, n, "%s/%s", dir, stem);
    if (file_exists(p)) {
        *out = p;
        return AMP_OK;
    }
    amp_dealloc(ctx, p);
    return amp_seterr(ctx, AMP_ERR_NOT_FOUND, "'%s': neither %s.gz nor %s is there", dir, stem, stem);
}

amp_status amp_image_dataset_load_dir(amp_context *ctx, const char *dir, amp_data_split split,
                                      const amp_dataset_options *opts, amp_image_dataset **out) {
    if (!ctx || !dir || !out) return AMP_ERR_INVALID_ARG;
    if (split != AMP_SPLIT_TRAIN && split != AMP_SPLIT_TEST)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "unknown dataset split %d", (int)split);
    const char *prefix = split == AMP_SPLIT_TRAIN ? "train" : "t10k";
    char istem[32], lstem[32];
    snprintf(istem, sizeof istem, "%s-images-idx3-ubyte", prefix);
    snprintf(lstem, sizeof lstem, "%s-labels-idx1-ubyte", prefix);
    char *ipath = NULL, *lpath = NULL;
    amp_status st = find_file(ctx, dir, istem, &ipath);
    if (!st) st = find_file(ctx, dir, lstem, &lpath);
    if (!st) st = amp_image_dataset_load(ctx, ipath, lpath, opts, out);
    amp_dealloc(ctx, ipath);
    amp_dealloc(ctx, lpath);
    return st;
}

void amp_image_dataset_destroy(amp_image_dataset *d) {
    if (!d) return;
    amp_tensor_destroy(d->images);
    amp_tensor_destroy(d->labels);
    amp_dealloc(d->ctx, d);
}

/* ---- the batcher ---------------------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood) seeds xoshiro256** (Blackman, Vigna). Integer arithmetic
 * only, so an order is the same on every machine and compiler. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

typedef struct xoshiro { uint64_t s[4]; } xoshiro;

static uint64_t xoshiro_next(xoshiro *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, bound) without modulo bias: reject the low values that make the top range
 * uneven. */
static uint64_t xoshiro_below(xoshiro *r, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t v = xoshiro_next(r);
        if (v >= threshold) return v % bound;
    }
}

struct amp_batcher {
    amp_context *ctx;
    const amp_image_dataset *d;
    amp_batcher_options o;
    int64_t per_epoch;
    int64_t epoch, batch;  /* the next batch to return */
    int64_t *perm;         /* the order of perm_epoch */
    int64_t perm_epoch;    /* -1: perm not computed yet */
};

/* The order of an epoch is a function of (seed, epoch) alone, never of the previous epoch's
 * order, so a run resumed at any epoch sees what an uninterrupted run would have seen. */
static void batcher_order_for(amp_batcher *b, int64_t epoch) {
    if (b->perm_epoch == epoch) return;
    int64_t n = b->d->n;
    for (int64_t i = 0; i < n; i++) b->perm[i] = i;
    if (!b->o.sequential) {
        uint64_t k = (uint64_t)epoch;
        uint64_t x = b->o.seed ^ splitmix64(&k);
        xoshiro r;
        for (int i = 0; i < 4; i++) r.s[i] = splitmix64(&x);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)xoshiro_below(&r, (uint64_t)i + 1);
            int64_t tmp = b->perm[i];
            b->perm[i] = b->perm[j];
            b->perm[j] = tmp;
        }
    }
    b->perm_epoch = epoch;
}

amp_status amp_batcher_create(amp_context *ctx, const amp_image_dataset *d, const amp_batcher_options *opts,
                              amp_batcher **out) {
    if (!ctx || !d || !opts || !out) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "batcher: no dataset or options");
    amp_batcher_options o;
    memset(&o, 0, sizeof o);
    size_t n = opts->struct_size ? opts->struct_size : sizeof o;
    memcpy(&o, opts, n < sizeof o ? n : sizeof o);
    if (o.batch <= 0) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "batch size %lld is not positive", (long long)o.batch);
    int64_t per = o.drop_last ? d->n / o.batch : d->n / o.batch + (d->n % o.batch != 0);
    if (per == 0)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "batch size %lld with drop_last leaves no batch of %lld samples",
                          (long long)o.batch, (long long)d->n);
    amp_batcher *b = amp_calloc(ctx, 1, sizeof *b);
    if (!b) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory for a batcher");
    b->perm = amp_calloc(ctx, (size_t)d->n, sizeof *b->perm);
    if (!b->perm) {
        amp_dealloc(ctx, b);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory for a batcher of %lld samples", (long long)d->n);
    }
    b->ctx = ctx;
    b->d = d;
    b->o = o;
    b->per_epoch = per;
    b->perm_epoch = -1;
    *out = b;
    return AMP_OK;
}

void amp_batcher_destroy(amp_batcher *b) {
    if (!b) return;
    amp_dealloc(b->ctx, b->perm);
    amp_dealloc(b->ctx, b);
}

int64_t amp_batcher_batches_per_epoch(const amp_batcher *b) { return b ? b->per_epoch : 0; }

amp_status amp_batcher_seek(amp_batcher *b, int64_t epoch, int64_t batch) {
    if (!b) return AMP_ERR_INVALID_ARG;
    if (epoch < 0 || batch < 0 || batch > b->per_epoch)
        return amp_seterr(b->ctx, AMP_ERR_INVALID_ARG, "batch position (epoch %lld, batch %lld) is outside 0..%lld",
                          (long long)epoch, (long long)batch, (long long)b->per_epoch);
    b->epoch = epoch;
    b->batch = batch;
    return AMP_OK;
}

void amp_batcher_position(const amp_batcher *b, int64_t *epoch, int64_t *batch) {
    if (epoch) *epoch = b ? b->epoch : 0;
    if (batch) *batch = b ? b->batch : 0;
}

int64_t amp_batcher_order(amp_batcher *b, int64_t epoch, int64_t i) {
    if (!b || epoch < 0 || i < 0 || i >= b->d->n) return -1;
    batcher_order_for(b, epoch);
    return b->perm[i];
}

amp_status amp_batcher_next(amp_batcher *b, amp_tensor *images, amp_tensor *labels, int64_t *count) {
    if (!b || !images || !labels || !count) return AMP_ERR_INVALID_ARG;
    const amp_image_dataset *d = b->d;
    int64_t bs = b->o.batch;
    if (images->dtype != AMP_F32 || images->rank != 4 || images->dims[0] != bs || images->dims[1] != 1 ||
        images->dims[2] != d->h || images->dims[3] != d->w)
        return amp_seterr(b->ctx, AMP_ERR_SHAPE, "batch images must be float32 [%lld, 1, %lld, %lld]", (long long)bs,
                          (long long)d->h, (long long)d->w);
    if (labels->dtype != AMP_I64 || labels->rank != 1 || labels->dims[0] != bs)
        return amp_seterr(b->ctx, AMP_ERR_SHAPE, "batch labels must be int64 [%lld]", (long long)bs);
    if (b->batch >= b->per_epoch) {
        *count = 0;
        return AMP_OK;
    }
    batcher_order_for(b, b->epoch);
    int64_t start = b->batch * bs;
    int64_t cnt = d->n - start < bs ? d->n - start : bs;
    size_t row = (size_t)(d->h * d->w);
    const float *src = d->images->data;
    const int64_t *lsrc = d->labels->data;
    float *dst = images->data;
    int64_t *ldst = labels->data;
    for (int64_t i = 0; i < cnt; i++) {
        int64_t k = b->perm[start + i];
        memcpy(dst + (size_t)i * row, src + (size_t)k * row, row * sizeof *dst);
        ldst[i] = lsrc[k];
    }
    if (cnt < bs) {
        memset(dst + (size_t)cnt * row, 0, (size_t)(bs - cnt) * row * sizeof *dst);
        memset(ldst + cnt, 0, (size_t)(bs - cnt) * sizeof *ldst);
    }
    b->batch++;
    *count = cnt;
    return AMP_OK;
}
