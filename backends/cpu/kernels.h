/* The CPU kernels as the CPU backend calls them: dispatch through the op table's CPU column and
 * the scratch each kernel needs. */
#ifndef AMP_BACKENDS_CPU_KERNELS_H
#define AMP_BACKENDS_CPU_KERNELS_H

#include "ir/ir.h"

/* Run the CPU kernel of k->n->op. */
amp_status amp_cpu_dispatch(amp_kernel *k);
/* Whether the op table gives op a CPU kernel. */
bool amp_cpu_has_kernel(amp_op op);
/* Scratch bytes the kernel needs for the shapes of k's views (data NULL except known inputs). */
amp_status amp_cpu_workspace(const amp_kernel *k, size_t *bytes);

#endif
