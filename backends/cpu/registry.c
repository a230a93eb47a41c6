/* CPU kernel dispatch, expanded from ir/ops.def, and the workspace table, expanded from
 * backends/cpu/workspace.def. */
#include <stdint.h>

#include <omp.h>

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

typedef amp_status (*cpu_ws_fn)(const amp_kernel *k, size_t *bytes);

/* Ops without an entry need no scratch. */
static const cpu_ws_fn cpu_ws[AMP_OP_COUNT] = {
#define CPU_WS(op, fn) [AMP_OP_##op] = fn,
#include "backends/cpu/workspace.def"
#undef CPU_WS
};

amp_status amp_cpu_workspace(const amp_kernel *k, size_t *bytes) {
    amp_op op = k->n->op;
    if (op <= AMP_OP_UNKNOWN || op >= AMP_OP_COUNT) return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "unknown op");
    if (!cpu_ws[op]) {
        *bytes = 0;
        return AMP_OK;
    }
    return cpu_ws[op](k, bytes);
}

amp_status amp_cpu_ws_elems(const amp_kernel *k, int64_t n, size_t esize, size_t *bytes) {
    if (n < 0 || (uint64_t)n > (uint64_t)(SIZE_MAX / 4) / esize)
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    *bytes = (size_t)n * esize;
    return AMP_OK;
}

#define WS_SLOTS_CAP ((int64_t)64 << 20)

int64_t amp_cpu_ws_slots(int64_t items, int64_t slot_bytes) {
    int64_t p = omp_get_num_procs();
    if (p < 1) p = 1;
    if (p > 256) p = 256;
    int64_t n = items < p ? items : p;
    if (n > 1 && slot_bytes > 0) {
        int64_t cap = WS_SLOTS_CAP / slot_bytes;
        if (cap < 1) cap = 1;
        if (n > cap) n = cap;
    }
    return n;
}
