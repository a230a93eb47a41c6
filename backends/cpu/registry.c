/* CPU kernel dispatch, expanded from ir/ops.def. */
#include <string.h>

#include "backends/cpu/kernels.h"

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

bool amp_cpu_has_kernel(amp_op op) { return op > AMP_OP_UNKNOWN && op < AMP_OP_COUNT && cpu_kernels[op]; }

/* Scratch sizes still come from the ops' inference functions: run it on the views' shapes. */
amp_status amp_cpu_workspace(const amp_kernel *k, size_t *bytes) {
    *bytes = 0;
    /* inference may write outputs the node omits: every slot gets scratch, at least 8 */
    int nio = (k->nin > k->nout ? k->nin : k->nout) + 8;
    amp_tinfo *ti = amp_calloc(k->ctx, (size_t)nio * 2, sizeof(amp_tinfo));
    const amp_tinfo **pin = amp_calloc(k->ctx, (size_t)nio, sizeof *pin);
    amp_tinfo **pout = amp_calloc(k->ctx, (size_t)nio, sizeof *pout);
    amp_status s;
    if (!ti || !pin || !pout) {
        s = amp_kernel_fail((amp_kernel *)k, AMP_ERR_NO_MEMORY, "out of memory sizing the workspace");
        goto done;
    }
    for (int i = 0; i < k->nin; i++) {
        if (!k->in[i]) continue;
        ti[i].dtype = k->in[i]->dtype;
        ti[i].rank = k->in[i]->rank;
        memcpy(ti[i].dims, k->in[i]->dims, sizeof ti[i].dims);
        ti[i].value = k->in[i]->data ? k->in[i] : NULL;
        pin[i] = &ti[i];
    }
    for (int i = 0; i < nio; i++) pout[i] = &ti[nio + i];
    amp_infer c = {.ctx = k->ctx, .n = k->n, .opset = k->opset, .nin = k->nin, .nout = k->nout, .in = pin, .out = pout};
    s = amp_op_table[k->n->op].infer(&c);
    if (!s) *bytes = c.workspace_bytes;
done:
    amp_dealloc(k->ctx, ti);
    amp_dealloc(k->ctx, pin);
    amp_dealloc(k->ctx, pout);
    return s;
}
