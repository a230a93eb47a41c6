/* The emulator's cuBLASLt (fake_cublaslt.cc): what callers may ask it besides the cuBLASLt API.
 *
 * fake_cublaslt.cc defines the cuBLASLt functions that need a device (cublasLtCreate,
 * cublasLtDestroy, cublasLtMatmulAlgoGetHeuristic, cublasLtMatmul); every other cuBLASLt call
 * (descriptors, layouts, preferences and their getters) is the real library's. */
#ifndef AMP_CUDA_EMU_FAKE_CUBLASLT_H
#define AMP_CUDA_EMU_FAKE_CUBLASLT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Why the last interposed call on this thread failed ("" after one that succeeded): cuBLASLt's
 * statuses say little, the emulator says which attribute or pointer it refused. */
const char *amp_emu_cublaslt_error(void);
/* Forgets that message (before a call of the real library, whose failures leave none). */
void amp_emu_cublaslt_clear(void);
/* cublasLtMatmul calls that computed (or were recorded), and heuristic queries that succeeded, so
 * far (tests: an algorithm is chosen once per plan, not per run). */
unsigned long long amp_emu_cublaslt_matmuls(void);
unsigned long long amp_emu_cublaslt_heuristics(void);

#ifdef __cplusplus
}
#endif

#endif
