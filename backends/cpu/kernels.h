/* The CPU backend's per-node entry points: running a node (amp_cpu_dispatch) and, at plan time,
 * the scratch memory its kernel needs (amp_cpu_workspace). Scratch is the backend's answer, not
 * inference's: a CUDA kernel of the same op needs other scratch, so the sizes live next to the
 * CPU kernels that use them and are listed in backends/cpu/workspace.def. */
#ifndef AMP_BACKENDS_CPU_KERNELS_H
#define AMP_BACKENDS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

/* The CPU column of the op table: one kernel per op (a line naming a kernel that does not exist
 * fails to link). */
#define OP(id, name, domain, lo, hi, cls, bf16, types, grad, inplace, infer, cpu) amp_status cpu(amp_kernel *k);
#include "ir/ops.def"
#undef OP

/* Run node k->n on the CPU. The views, data and workspace (k->ws, k->ws_bytes from
 * amp_cpu_workspace) are set by the caller. AMP_ERR_UNSUPPORTED when the op has no kernel. */
amp_status amp_cpu_dispatch(amp_kernel *k);
/* Whether the op table gives op a CPU kernel (the CPU backend's supports). */
bool amp_cpu_has_kernel(amp_op op);

/* The workspace bytes the CPU kernel of k->n needs, for the views in k as they will be at run
 * time: n, opset, nin/nout, threads, and dtype, rank and dims of every present input and output;
 * data is set only for inputs whose values are known at plan time (NULL otherwise); ws is NULL.
 * Sets *bytes (0 for an op without an entry in workspace.def); on a bad node or a size that
 * overflows returns a status with a message (amp_kernel_fail) and leaves *bytes untouched. */
amp_status amp_cpu_workspace(const amp_kernel *k, size_t *bytes);

/* One sizing function per kernel that needs scratch (same contract as amp_cpu_workspace; each
 * defined in the backends/cpu/<family>.c of its kernel). */
#define CPU_WS(op, fn) amp_status fn(const amp_kernel *k, size_t *bytes);
#include "backends/cpu/workspace.def"
#undef CPU_WS

/* *bytes = n elements of esize bytes, failing with AMP_ERR_OVERFLOW when n is negative or the
 * total passes SIZE_MAX / 4 (room for the planner's alignment and offsets). */
amp_status amp_cpu_ws_elems(const amp_kernel *k, int64_t n, size_t esize, size_t *bytes);

/* How many per-item slots of slot_bytes a kernel with `items` independent work items gets: one
 * per processor at most (the kernel then uses up to that many threads without scratch that grows
 * with the batch), fewer past 64 MiB of slots (the kernel splits each item over the threads
 * instead). 0 only when items is 0. */
int64_t amp_cpu_ws_slots(int64_t items, int64_t slot_bytes);

#endif
