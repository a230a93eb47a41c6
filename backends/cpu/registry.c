/* CPU kernel dispatch, expanded from ir/ops.def. */
#include "ir/ir.h"

static const amp_cpu_kernel_fn cpu_kernels[AMP_OP_COUNT] = {
    [AMP_OP_UNKNOWN] = NULL,
#define OP(id, name, domain, lo, hi, cls, bf16, types, grad, inplace, infer, cpu) [AMP_OP_##id] = cpu,
#include "ir/ops.def"
#undef OP
};

amp_status amp_cpu_dispatch(amp_kernel *k) {
    amp_op op = k->n->op;
    if (op <= AMP_OP_UNKNOWN || op >= AMP_OP_COUNT || !cpu_kernels[op])
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "no CPU kernel");
    return cpu_kernels[op](k);
}
