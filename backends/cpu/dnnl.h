/* oneDNN primitives for the CPU backend's heavy ops (backends/cpu/dnnl.c): MatMul, Gemm,
 * FusedGemm, Conv and FusedConv in f32 and bf16 (bf16 in and out, f32 accumulation).
 *
 * The CPU backend asks amp_cpu_dnnl_prepare at plan time; a node oneDNN cannot express (other
 * dtypes, attributes, shapes) gets no state and runs on the reference kernels, which stay the
 * definition the oneDNN path is tested against (tests/test_cpu_dnnl.c). A step's state holds the
 * primitive, the reorders between amprt's row-major tensors and the layouts the primitive
 * chose, and constant inputs (initializers) reordered once; its workspace holds the primitive's
 * scratchpad and the reordered copies of the other tensors. Built without oneDNN
 * (AMP_HAVE_DNNL undefined) prepare gives no state and every node runs on the reference. */
#ifndef AMP_BACKENDS_CPU_DNNL_H
#define AMP_BACKENDS_CPU_DNNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

typedef struct amp_dnnl_step amp_dnnl_step;

/* Whether this build has oneDNN and $AMPRT_CPU_DNNL does not turn it off ("0", "off", "no"). */
bool amp_cpu_dnnl_wanted(void);

/* At plan time (the contract of the backend's prepare): *out NULL and *ws_bytes untouched when
 * oneDNN does not take the node; else the step's state and its workspace bytes. Fails only for
 * want of memory (a message through k->ctx). */
amp_status amp_cpu_dnnl_prepare(const amp_kernel *k, amp_dnnl_step **out, size_t *ws_bytes);
/* Run the step on the views of k (data and workspace placed). */
amp_status amp_cpu_dnnl_run(amp_dnnl_step *s, amp_kernel *k);
/* NULL is harmless. */
void amp_cpu_dnnl_release(amp_dnnl_step *s);

/* Primitive executions so far in this process (the tests check that oneDNN ran). */
uint64_t amp_cpu_dnnl_runs(void);

#endif
