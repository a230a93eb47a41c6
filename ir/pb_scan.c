/* A bounded walk of the protobuf wire format ahead of protobuf-c's unpack.
 *
 * protobuf-c recurses once per nested message and copies every bytes field, so a small file
 * that nests deeply overflows the stack, and a model's weights are held three times (file,
 * unpacked raw_data, tensors). The walk reads the file in order through a small buffer, guided
 * by the message descriptors, with an explicit stack capped at AMP_PB_MAX_DEPTH, and writes a
 * compact copy for protobuf-c: every TensorProto.raw_data, and every large packed float_data or
 * double_data (little-endian IEEE, the same bytes as raw_data), is replaced by a marker field
 * holding its offset and length in the file, and the tensor's bytes are later read straight
 * into the tensor. Small or unpacked typed fields stay for protobuf-c. The marker's field
 * number is dropped wherever the file itself uses it, so a file cannot forge one. */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/onnx_pb.h"

enum { RD_BUF = 1 << 18, LEN_SLOT = 5 };

typedef struct reader {
    const amp_pb_source *src;
    uint64_t size;  /* bytes in the file */
    uint64_t pos;   /* next byte to read */
    uint8_t *buf;   /* for a file source: bytes [buf_at, buf_at + buf_len) */
    uint64_t buf_at;
    size_t buf_len;
} reader;

typedef struct writer {
    amp_context *ctx;
    uint8_t *data;
    size_t len, cap;
    bool failed; /* an allocation was refused */
} writer;

bool amp_pread_all(int fd, void *dst, size_t n, uint64_t off) {
    uint8_t *p = dst;
    while (n) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return true;
}

amp_status amp_open_regular(amp_context *ctx, const char *path, const char *what, int64_t max_bytes, int *fd_out,
                            uint64_t *size_out) {
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return amp_seterr(ctx, AMP_ERR_IO, "cannot open %s '%s': %s", what, path, strerror(errno));
    struct stat st;
    amp_status s = AMP_OK;
    if (fstat(fd, &st) != 0) s = amp_seterr(ctx, AMP_ERR_IO, "cannot stat %s '%s': %s", what, path, strerror(errno));
    else if (S_ISDIR(st.st_mode)) s = amp_seterr(ctx, AMP_ERR_IO, "%s '%s' is a directory", what, path);
    else if (!S_ISREG(st.st_mode))
        s = amp_seterr(ctx, AMP_ERR_IO, "%s '%s' is %s, not a regular file", what, path,
                       S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket");
    else if (max_bytes > 0 && st.st_size > max_bytes)
        s = amp_seterr(ctx, AMP_ERR_LIMIT, "%s '%s' is %lld bytes, over the limit of %lld", what, path,
                       (long long)st.st_size, (long long)max_bytes);
    if (s) {
        close(fd);
        return s;
    }
    *fd_out = fd;
    *size_out = (uint64_t)st.st_size;
    return AMP_OK;
}

amp_status amp_pb_read(amp_context *ctx, const amp_pb_source *src, uint64_t off, void *dst, size_t n,
                       const char *what) {
    if (!n) return AMP_OK;
    if (src->mem) {
        memcpy(dst, src->mem + off, n);
        return AMP_OK;
    }
    if (!amp_pread_all(src->fd, dst, n, off))
        return amp_seterr(ctx, AMP_ERR_IO, "tensor '%s': cannot read %zu bytes at %llu of '%s'", what, n,
                          (unsigned long long)off, src->path ? src->path : "the model");
    return AMP_OK;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t x = 0;
    for (int b = 7; b >= 0; b--) x = x << 8 | p[b];
    return x;
}

bool amp_pb_marked_typed(const Onnx__TensorProto *tp, size_t *cursor, uint32_t field, uint64_t *off, uint64_t *len,
                         uint64_t *before) {
    for (; *cursor < tp->base.n_unknown_fields; (*cursor)++) {
        const ProtobufCMessageUnknownField *u = &tp->base.unknown_fields[*cursor];
        /* a typed marker: prefix 25, the field number, offset, length, inline elements before it */
        if (u->tag != AMP_PB_MARK_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || u->len != 26 ||
            u->data[0] != 25 || u->data[1] != field)
            continue;
        *off = le64(u->data + 2);
        *len = le64(u->data + 10);
        *before = le64(u->data + 18);
        (*cursor)++;
        return true;
    }
    return false;
}

bool amp_pb_marked_raw(const Onnx__TensorProto *tp, uint64_t *off, uint64_t *len) {
    bool found = false;
    for (size_t i = 0; i < tp->base.n_unknown_fields; i++) { /* the last one wins, as for raw_data */
        const ProtobufCMessageUnknownField *u = &tp->base.unknown_fields[i];
        /* protobuf-c keeps a length-prefixed unknown field with its prefix (one byte: 16) */
        if (u->tag != AMP_PB_MARK_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || u->len != 17 ||
            u->data[0] != 16)
            continue;
        *off = le64(u->data + 1);
        *len = le64(u->data + 9);
        found = true;
    }
    return found;
}

/* The next byte, bounded by end (the enclosing message's end). */
static bool rd_byte(reader *r, uint64_t end, uint8_t *b) {
    if (r->pos >= end) return false;
    if (r->src->mem) {
        *b = r->src->mem[r->pos++];
        return true;
    }
    if (r->pos < r->buf_at || r->pos >= r->buf_at + r->buf_len) {
        uint64_t left = r->size - r->pos;
        size_t n = left < RD_BUF ? (size_t)left : RD_BUF;
        if (!amp_pread_all(r->src->fd, r->buf, n, r->pos)) return false;
        r->buf_at = r->pos;
        r->buf_len = n;
    }
    *b = r->buf[r->pos++ - r->buf_at];
    return true;
}

static bool rd_varint(reader *r, uint64_t end, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        uint8_t b;
        if (!rd_byte(r, end, &b)) return false;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool wr_reserve(writer *w, size_t n) {
    if (w->cap - w->len >= n) return true;
    size_t nc = w->cap ? w->cap : 4096;
    while (nc - w->len < n) nc *= 2;
    uint8_t *d = amp_realloc(w->ctx, w->data, nc);
    if (!d) {
        w->failed = true;
        return false;
    }
    w->data = d;
    w->cap = nc;
    return true;
}

static bool wr_varint(writer *w, uint64_t v) {
    if (!wr_reserve(w, 10)) return false;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        w->data[w->len++] = b | (v ? 0x80 : 0);
    } while (v);
    return true;
}

/* Copy n bytes of the file (bounded by end) to the output. */
static bool copy_bytes(reader *r, writer *w, uint64_t end, uint64_t n) {
    if (n > end - r->pos || !wr_reserve(w, (size_t)n)) return false;
    if (r->src->mem) {
        memcpy(w->data + w->len, r->src->mem + r->pos, (size_t)n);
        w->len += (size_t)n;
        r->pos += n;
        return true;
    }
    while (n) { /* a byte through rd_byte (which refills the buffer), then what the buffer holds */
        if (!rd_byte(r, end, &w->data[w->len++])) return false;
        n--;
        size_t k = (size_t)(r->buf_at + r->buf_len - r->pos);
        if (k > n) k = (size_t)n;
        memcpy(w->data + w->len, r->buf + (r->pos - r->buf_at), k);
        w->len += k;
        r->pos += k;
        n -= k;
    }
    return true;
}

/* A marker standing for n bytes at off of the file: raw_data (kind 0: offset, length) or a
 * packed typed field (kind: its field number; then the elements of that field kept inline
 * before it, so the importer can put the pieces back in order). */
static bool wr_mark(writer *w, uint8_t kind, uint64_t off, uint64_t n, uint64_t before) {
    size_t k = kind ? 25 : 16;
    if (!wr_varint(w, (uint64_t)AMP_PB_MARK_FIELD << 3 | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) || !wr_varint(w, k) ||
        !wr_reserve(w, k))
        return false;
    uint8_t *p = w->data + w->len;
    if (kind) *p++ = kind;
    for (int b = 0; b < 8; b++) {
        p[b] = (uint8_t)(off >> (8 * b));
        p[8 + b] = (uint8_t)(n >> (8 * b));
        if (kind) p[16 + b] = (uint8_t)(before >> (8 * b));
    }
    w->len += k;
    return true;
}

typedef struct frame {
    const ProtobufCMessageDescriptor *desc;
    uint64_t end;    /* file offset where the message ends */
    size_t len_slot; /* output offset of its length, written as LEN_SLOT varint bytes */
    uint64_t inl[2]; /* a TensorProto's float_data and double_data elements kept inline so far */
} frame;

/* Which of a TensorProto's typed fields fd is (0: float_data, 1: double_data, -1: neither). */
static int typed_slot(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *fd) {
    if (desc != &onnx__tensor_proto__descriptor || !fd || fd->label != PROTOBUF_C_LABEL_REPEATED) return -1;
    return fd->type == PROTOBUF_C_TYPE_FLOAT ? 0 : fd->type == PROTOBUF_C_TYPE_DOUBLE ? 1 : -1;
}

amp_status amp_pb_compact(amp_context *ctx, const ProtobufCMessageDescriptor *desc, const amp_pb_source *src,
                          uint64_t size, const char *what, uint8_t **out, size_t *out_size) {
    reader r = {.src = src, .size = size};
    writer w = {.ctx = ctx};
    frame st[AMP_PB_MAX_DEPTH + 1];
    int top = 0;
    amp_status s = AMP_OK;
    if (!src->mem && !(r.buf = amp_alloc(ctx, RD_BUF))) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    st[0] = (frame){.desc = desc, .end = size};
    for (;;) {
        while (r.pos == st[top].end && top > 0) { /* close finished messages: fill in their length */
            size_t at = st[top].len_slot, n = w.len - at - LEN_SLOT;
            for (int i = 0; i < LEN_SLOT; i++, n >>= 7) w.data[at + i] = (uint8_t)((n & 0x7f) | (i < LEN_SLOT - 1 ? 0x80 : 0));
            top--;
        }
        if (r.pos == st[0].end) break;
        uint64_t end = st[top].end, tag, v;
        if (!rd_varint(&r, end, &tag)) goto bad;
        uint32_t field = (uint32_t)(tag >> 3);
        int wt = (int)(tag & 7);
        if (tag >> 32 || field == 0) goto bad;
        bool drop = field == AMP_PB_MARK_FIELD;
        switch (wt) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            if (!rd_varint(&r, end, &v)) goto bad;
            if (!drop && (!wr_varint(&w, tag) || !wr_varint(&w, v))) goto oom;
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
        case PROTOBUF_C_WIRE_TYPE_32BIT: {
            uint64_t n = wt == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
            if (n > end - r.pos) goto bad;
            int slot = typed_slot(st[top].desc, protobuf_c_message_descriptor_get_field(st[top].desc, field));
            if (slot >= 0 && n == (slot ? 8u : 4u)) st[top].inl[slot]++; /* one unpacked element */
            if (drop) r.pos += n;
            else if (!wr_varint(&w, tag) || !copy_bytes(&r, &w, end, n)) goto oom;
            break;
        }
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            if (!rd_varint(&r, end, &v) || v > end - r.pos) goto bad;
            const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(st[top].desc, field);
            int slot = typed_slot(st[top].desc, fd);
            uint64_t elem = slot ? 8 : 4;
            if (drop) {
                r.pos += v;
            } else if (st[top].desc == &onnx__tensor_proto__descriptor && fd && fd->type == PROTOBUF_C_TYPE_BYTES &&
                       strcmp(fd->name, "raw_data") == 0) {
                if (!wr_mark(&w, 0, r.pos, v, 0)) goto oom;
                r.pos += v;
            } else if (slot >= 0 && v >= AMP_PB_TYPED_MARK_MIN && v % elem == 0) { /* a large packed field */
                if (!wr_mark(&w, (uint8_t)fd->id, r.pos, v, st[top].inl[slot])) goto oom;
                r.pos += v;
            } else if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (top == AMP_PB_MAX_DEPTH) {
                    s = amp_seterr(ctx, AMP_ERR_LIMIT, "%s nests messages deeper than %d levels (at byte %llu)", what,
                                   AMP_PB_MAX_DEPTH, (unsigned long long)r.pos);
                    goto done;
                }
                if (!wr_varint(&w, tag) || !wr_reserve(&w, LEN_SLOT)) goto oom;
                st[++top] = (frame){.desc = fd->descriptor, .end = r.pos + v, .len_slot = w.len};
                w.len += LEN_SLOT;
            } else {
                if (slot >= 0) st[top].inl[slot] += v / elem; /* a small packed field (unpack refuses a ragged one) */
                if (!wr_varint(&w, tag) || !wr_varint(&w, v) || !copy_bytes(&r, &w, end, v)) goto oom;
            }
            break;
        }
        default: /* groups (3, 4) are not in ONNX; 6 and 7 do not exist */
            goto bad;
        }
    }
    *out = w.data;
    *out_size = w.len;
    w.data = NULL;
    goto done;
oom:
    if (!w.failed) goto bad; /* a read failed or ran past the message, not an allocation */
    s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory reading %s", what);
    goto done;
bad:
    s = amp_seterr(ctx, AMP_ERR_PARSE, "%s is not a valid protobuf file (bad field at byte %llu: truncated or not ONNX)",
                   what, (unsigned long long)r.pos);
done:
    amp_dealloc(ctx, w.data);
    amp_dealloc(ctx, r.buf);
    return s;
}
