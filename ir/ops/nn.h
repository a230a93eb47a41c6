/* Shape-inference helpers of the nn family that the norm family (ir/ops/norm.c), split off
 * from it, shares: included by ir/ops/nn.c and ir/ops/norm.c. */
#ifndef AMP_IR_OPS_NN_H
#define AMP_IR_OPS_NN_H

#include <string.h>

#include "ir/ir.h"

static inline void set_out(amp_infer *c, int i, amp_dtype dt, int rank, const int64_t *dims) {
    amp_tinfo *o = c->out[i];
    o->dtype = dt;
    o->rank = rank;
    if (rank > 0) memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
    o->value = NULL;
}

/* A per-channel parameter: float dtype (it may differ from X's: autocast keeps parameters in
 * f32 beside 16-bit activations, and opset 15 allows it) and 1-D of length ch. */
static inline amp_status check_param(amp_infer *c, int i, const char *what, int64_t ch) {
    const amp_tinfo *p = c->in[i];
    amp_status s = amp_infer_dtype_in(c, p->dtype, amp_dt_float);
    if (s) return s;
    if (p->rank != 1 || p->dims[0] != ch)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must be 1-D of length %lld (the channel count)", what,
                              (long long)ch);
    return AMP_OK;
}

#endif
