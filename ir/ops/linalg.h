/* Einsum planning and Det workspace helpers shared by inference (ir/ops/linalg.c), the
 * gradient builders (ir/ops/linalg_grad.c) and the CPU kernels (backends/cpu/linalg.c,
 * linalg_grad.c). */
#ifndef AMP_IR_OPS_LINALG_H
#define AMP_IR_OPS_LINALG_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"

/* Labels of every operand dim (lab[i][d]) and of the output (olab, *orank) for an equation over
 * nin operands of ranks ranks[]; *ell_dims: the dims of the broadcast ellipsis. A message into
 * msg on failure (AMP_ERR_INVALID_GRAPH for a bad equation, AMP_ERR_SHAPE for ranks that do not
 * fit it). */
amp_status amp_einsum_parse(const char *eq, int nin, const int *ranks, int8_t (*lab)[AMP_MAX_RANK], int8_t *olab,
                            int *orank, int *ell_dims, char *msg, size_t cap);
/* Size of every label (ldim[0..63], -1 for labels not used) from the operands' dims. */
amp_status amp_einsum_sizes(int nin, const int *ranks, const int64_t (*dims)[AMP_MAX_RANK],
                            const int8_t (*lab)[AMP_MAX_RANK], int64_t *ldim, char *msg, size_t cap);
/* Pairwise contraction order and workspace offsets; the total workspace in elements, or -1 when
 * a size overflows. */
int64_t amp_einsum_plan(int nin, const uint64_t *mask, uint64_t omask, const int64_t *ldim, int (*pair)[2],
                        uint64_t *keep, int64_t *res_off, int64_t *pack_off);

/* Det: matrices factored at once of a batch of nb and doubles per slot (the CPU kernels' workspace
 * layout, backends/cpu/linalg.c). */
int64_t amp_det_slots(int64_t nb);
int64_t amp_det_slot_doubles(int64_t n, bool grad);

#endif
