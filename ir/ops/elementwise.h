/* Broadcasting rules of the elementwise family that shape inference (ir/ops/elementwise_grad.c)
 * and the gradient kernels (backends/cpu/elementwise_grad.c, later CUDA) must agree on; C and
 * CUDA. */
#ifndef AMP_IR_OPS_ELEMENTWISE_H
#define AMP_IR_OPS_ELEMENTWISE_H

#include <stdint.h>

#include "base/half.h"

/* Where BinaryGrad's B starts among the output's dims, by the forward's broadcasting rule:
 * trailing dims; at `axis` for the legacy broadcast of opsets < 7 (axis_given, axis normalised
 * against A's rank); a 1-D PRelu slope of C values on axis 1 before opset 7. */
AMP_HD int amp_binary_grad_b_offset(int64_t fwd_opset, int prelu, int legacy_bcast, int axis_given, int64_t axis,
                                    int out_rank, int a_rank, int b_rank, int64_t b_dim0, int64_t a_dim1) {
    if (fwd_opset < 7) {
        if (prelu) {
            if (b_rank == 1 && a_rank >= 2 && b_dim0 != 1 && b_dim0 == a_dim1) return 1;
        } else if (legacy_bcast && axis_given) {
            return (int)(axis < 0 ? axis + a_rank : axis);
        }
    }
    return out_rank - b_rank;
}

#endif
