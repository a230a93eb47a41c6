/* Internal: the protobuf-c view of ONNX, for the importer, exporter and tensor files only. */
#ifndef AMP_IR_ONNX_PB_H
#define AMP_IR_ONNX_PB_H

#include "ir/ir.h"
#include "onnx.pb-c.h"

/* Messages nested deeper than this are refused before protobuf-c (which recurses) sees them.
 * Real models stay far below: a graph attribute costs 3 levels, a tensor type 5. */
#define AMP_PB_MAX_DEPTH 64
/* The field number of the marker that stands in for a TensorProto's raw_data in the compact
 * copy (the largest protobuf allows; dropped wherever a file uses it). */
#define AMP_PB_MARK_FIELD 536870911u
/* A packed TensorProto.float_data or double_data of at least this many bytes gets a marker too
 * (see amp_pb_marked_typed); a smaller one, or one element per tag, stays for protobuf-c. */
#define AMP_PB_TYPED_MARK_MIN 4096u

/* Where a file's bytes are: in memory (mem, the whole file) or an open regular file (fd). */
typedef struct amp_pb_source {
    const uint8_t *mem;
    int fd;
    const char *path; /* for messages; may be NULL */
} amp_pb_source;

void amp_pb_allocator(amp_context *ctx, ProtobufCAllocator *a);
/* Walk the wire format of one message of type desc (size bytes of src) with a depth cap and
 * length checks, and return in *out (the caller frees it with amp_dealloc) a copy for
 * protobuf-c with each TensorProto.raw_data replaced by a marker (see amp_pb_marked_raw).
 * Errors: AMP_ERR_LIMIT (too deep), AMP_ERR_PARSE (malformed), AMP_ERR_NO_MEMORY; what names
 * the file in the message. */
amp_status amp_pb_compact(amp_context *ctx, const ProtobufCMessageDescriptor *desc, const amp_pb_source *src,
                          uint64_t size, const char *what, uint8_t **out, size_t *out_size);
/* True when tp (unpacked from a compact copy) had raw_data: its offset and length in the file. */
bool amp_pb_marked_raw(const Onnx__TensorProto *tp, uint64_t *off, uint64_t *len);
/* The next marker from *cursor (start at 0) that stands for a packed typed field of tp (field:
 * 4 float_data, 10 double_data): its offset and length in the file, and how many elements of
 * that field protobuf-c holds (kept inline) that come before it. False when there is none. */
bool amp_pb_marked_typed(const Onnx__TensorProto *tp, size_t *cursor, uint32_t field, uint64_t *off, uint64_t *len,
                         uint64_t *before);
/* Read n bytes at off of src into dst (the range was checked by the walk). */
amp_status amp_pb_read(amp_context *ctx, const amp_pb_source *src, uint64_t off, void *dst, size_t n,
                       const char *what);
/* Open path for reading when it is a regular file of at most max_bytes (<= 0: no limit); a
 * directory, FIFO or device is refused without blocking. what ("model", "tensor file") starts
 * the message. */
amp_status amp_open_regular(amp_context *ctx, const char *path, const char *what, int64_t max_bytes, int *fd,
                            uint64_t *size);
bool amp_pread_all(int fd, void *dst, size_t n, uint64_t off);
/* src: where the tensor's raw_data (and large packed float_data or double_data) lives when tp
 * came from a compact copy (NULL otherwise). */
amp_status amp_tensor_from_proto(amp_context *ctx, const Onnx__TensorProto *tp, const amp_pb_source *src,
                                 const char *base_dir, amp_tensor **out);
void amp_tensor_to_proto(const amp_tensor *t, const char *name, Onnx__TensorProto *tp, int64_t *dims_buf);
const char *amp_onnx_type_name(int t);

#endif
