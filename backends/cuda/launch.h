/* Kernel launches written once for nvcc and for the emulator.
 *
 *   cudaError_t e = AMP_CUDA_LAUNCH(kernel, grid, block, shmem, stream, args...);
 *
 * Under nvcc it is kernel<<<grid, block, shmem, stream>>>(args...) followed by
 * cudaGetLastError(); under the host compiler (the emulator, backends/cuda/emu/) the same kernel
 * runs on the CPU and a failed launch (bad configuration, deadlock, a wrong warp mask, a pointer
 * that is not device memory) comes back as a cudaError_t with its message in
 * amp_emu_last_error(). AMP_CUDA_LAUNCH_PLAIN is for kernels with no barrier and no warp
 * primitive: the emulator runs their threads as plain calls; nvcc launches them as usual. */
#ifndef AMP_BACKENDS_CUDA_LAUNCH_H
#define AMP_BACKENDS_CUDA_LAUNCH_H

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define AMP_CUDA_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  ((kernel)<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__), cudaGetLastError())
#define AMP_CUDA_LAUNCH_PLAIN AMP_CUDA_LAUNCH
#else
#include "backends/cuda/emu/cuda_emu.h"
inline cudaError_t amp_emu_cuda_error(amp_emu_status s) {
  switch (s) {
    case AMP_EMU_OK: return cudaSuccess;
    case AMP_EMU_ERR_CONFIG: return cudaErrorInvalidConfiguration;
    default: return cudaErrorLaunchFailure;
  }
}
#define AMP_CUDA_LAUNCH(...) amp_emu_cuda_error(AMP_EMU_LAUNCH(__VA_ARGS__))
#define AMP_CUDA_LAUNCH_PLAIN(...) amp_emu_cuda_error(AMP_EMU_LAUNCH_PLAIN(__VA_ARGS__))
#endif

#endif
