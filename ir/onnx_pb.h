/* Internal: the protobuf-c view of ONNX, for the importer, exporter and tensor files only. */
#ifndef AMP_IR_ONNX_PB_H
#define AMP_IR_ONNX_PB_H

#include "ir/ir.h"
#include "onnx.pb-c.h"

void amp_pb_allocator(amp_context *ctx, ProtobufCAllocator *a);
amp_status amp_tensor_from_proto(amp_context *ctx, const Onnx__TensorProto *tp, const char *base_dir, amp_tensor **out);
void amp_tensor_to_proto(const amp_tensor *t, const char *name, Onnx__TensorProto *tp, int64_t *dims_buf);
const char *amp_onnx_type_name(int t);

#endif
