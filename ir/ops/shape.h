/* Slice geometry shared by shape inference (ir/ops/shape.c), the CPU kernel
 * (backends/cpu/shape.c) and the gradient kernels (backends/shape_grad.h); C and CUDA. */
#ifndef AMP_IR_OPS_SHAPE_H
#define AMP_IR_OPS_SHAPE_H

#include <stdint.h>

#include "base/half.h"

/* ONNX Slice on one axis: clamp start and end as the spec says for the sign of step; returns
 * the element count, *first the first index read. */
AMP_HD int64_t amp_slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first) {
    *first = 0;
    if (dim == 0) return 0;
    if (start < 0) start += dim; /* a negative plus a non-negative never overflows */
    if (end < 0) end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
        *first = start;
        return end > start ? (end - start - 1) / step + 1 : 0;
    }
    start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
    end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    *first = start;
    int64_t mag = step == INT64_MIN ? INT64_MAX : -step;
    return start > end ? (start - end - 1) / mag + 1 : 0;
}

#endif
