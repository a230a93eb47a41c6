// CUDA device discovery. The CUDA backend proper grows in this folder; this file makes sure
// the build compiles CUDA whenever the toolkit is present.
#include <cuda_runtime.h>

extern "C" int amp_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}
