/* The emulator's fake CUDA runtime: what tests and the launch shim ask it besides the CUDA API.
 *
 * backends/cuda/emu/fake_runtime.cc defines the CUDA runtime functions amprt calls (cudaMalloc,
 * cudaMemcpy*, streams, ...) over host memory. Device memory is a registry of regions: every
 * pointer cudaMalloc returned, and nothing else, is device memory; freed regions leave the
 * registry at once. New regions are filled with 0xFF bytes (NaN in every float type), since
 * cudaMalloc promises nothing about their contents. Operations on a stream run when they are
 * enqueued, in order, on the calling thread. */
#ifndef AMP_CUDA_EMU_FAKE_RUNTIME_H
#define AMP_CUDA_EMU_FAKE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* [p, p + bytes) lies inside one live device region. */
bool amp_emu_is_device(const void *p, size_t bytes);
/* Device bytes allocated and not freed, and live regions. */
size_t amp_emu_device_bytes(void);
size_t amp_emu_device_regions(void);
/* Limit later cudaMalloc calls to `bytes` of device memory in all (0: no limit beyond the
 * host's); returns the old limit. Out-of-memory tests use it. */
size_t amp_emu_set_device_limit(size_t bytes);

#ifdef __cplusplus
}

#include <cuda_runtime_api.h>

#include <functional>

/* Enqueues work on a stream: the emulator's interposed library calls (cublasLtMatmul,
 * cudnnBackendExecute) and launches go through it, so that they keep stream order and, while
 * the stream is capturing, become part of the graph instead of running. `what` names the work
 * in error messages. Returns what the work returned when it ran now, cudaSuccess when it was
 * recorded. */
cudaError_t amp_emu_enqueue(cudaStream_t stream, const char *what, std::function<cudaError_t()> work);
#endif

#endif
