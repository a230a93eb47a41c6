/* Quantization layouts shared by inference (ir/ops/quant.c) and the CPU kernels
 * (backends/cpu/quant.c). */
#ifndef AMP_IR_OPS_QUANT_H
#define AMP_IR_OPS_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

/* How x's elements find their scale (per tensor, per axis from opset 13, blocked from 21): x read
 * as [outer, len, inner]; element (o, a, i) uses scale element o*q[4] + (a / q[3])*q[5] + i*q[6];
 * q[0..2] are outer, len, inner. A message into msg when the scale fits no layout. */
amp_status amp_quant_layout(const amp_node *n, int64_t opset, int xrank, const int64_t *xdims, int srank,
                            const int64_t *sdims, int64_t *q, char *msg, size_t cap);
/* A zero point or scale of a matmul operand (side 0: A, per row; side 1: B, per column) as
 * strides over the operand's dims (pst[orank], 0 where broadcast); false when it fits none. */
bool amp_quant_mm_param(int side, int prank, const int64_t *pdims, int orank, const int64_t *odims, int64_t *pst);

#endif
