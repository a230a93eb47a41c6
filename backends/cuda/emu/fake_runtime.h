/* The emulator's fake CUDA runtime: what tests and the launch shim ask it besides the CUDA API.
 *
 * backends/cuda/emu/fake_runtime.cc defines the CUDA runtime functions amprt calls over host
 * memory (what follows is what they model; anything else is not defined and fails to link).
 *
 * Device memory is a registry of regions: every pointer cudaMalloc returned, and nothing else,
 * is device memory; a freed region leaves the registry at once (its memory goes back to the host
 * allocator), so a freed pointer is no device pointer any more. A region is 256-byte aligned and
 * exactly as long as asked, so that ASan reports a kernel that runs past its end. New regions are
 * filled with 0xFF bytes (NaN in every float type), since cudaMalloc promises nothing about their
 * contents.
 * Pinned host memory (cudaMallocHost, cudaHostAlloc) is a registry of its own, 0xFF-filled too:
 * it is host memory, never device memory (amprt maps no host memory into kernels), and
 * cudaFreeHost takes only its pointers. amp_emu_set_device_limit caps cudaMalloc. __constant__ and
 * __device__ variables are host globals: cudaMemcpyToSymbol(Async) and cudaMemcpyFromSymbol copy
 * to and from them, and their address is no device pointer (as a host-side address is not on a
 * GPU).
 *
 * Streams run their work when it is enqueued, in order, on the calling thread, unless the stream
 * captures: then the work (kernel launches with a copy of their arguments, async copies and
 * memsets, host functions, the interposed library calls) is recorded, and cudaGraphLaunch
 * replays it, in order, on the launch stream. As on a GPU, a synchronising call while a capture
 * is under way (cudaStreamSynchronize, cudaStreamQuery or cudaEventSynchronize/Query on what the
 * capture owns, cudaDeviceSynchronize; cudaMalloc, cudaFree, cudaMallocHost and cudaFreeHost when
 * the capture mode forbids unsafe calls) fails with cudaErrorStreamCaptureUnsupported and
 * invalidates the capture: cudaStreamEndCapture then fails with cudaErrorStreamCaptureInvalidated
 * and returns no graph. Work on the legacy default stream (cudaMemcpy and cudaMemset without
 * Async are such work) while a blocking stream captures fails with cudaErrorStreamCaptureImplicit
 * and invalidates that capture, whichever thread does it; cudaMemcpy and cudaMemset beside a
 * non-blocking stream's capture are refused as unsafe calls (stricter than the driver). Work on
 * another stream is not captured. A call refused before it is recorded (a bad launch
 * configuration, a copy in the wrong direction) returns its error and leaves the capture as it
 * was. Not modelled: a second stream joining a capture through an event (cudaStreamWaitEvent on a
 * captured event from outside the capture fails with cudaErrorNotSupported), and sticky errors (a
 * failed launch does not poison the context). cudaEventElapsedTime measures the host clock
 * between the points where the two records ran.
 *
 * Every failure leaves a message naming the call and what it refused in amp_emu_last_error()
 * (cuda_emu.h). With AMP_EMU_NO_DEVICE=1 in the environment the runtime has no device:
 * cudaGetDeviceCount and the calls that need the device fail with cudaErrorNoDevice. */
#ifndef AMP_CUDA_EMU_FAKE_RUNTIME_H
#define AMP_CUDA_EMU_FAKE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* [p, p + bytes) lies inside one live device region (bytes 0: p lies in one or at its end). */
bool amp_emu_is_device(const void *p, size_t bytes);
/* [p, p + bytes) lies inside one live pinned host region. */
bool amp_emu_is_pinned(const void *p, size_t bytes);
/* What p is, for messages: "device memory", or why it is not (pinned host memory, device memory
 * freed earlier, host memory). The string is static. */
const char *amp_emu_pointer_kind(const void *p);
/* Device bytes allocated and not freed, and live regions. */
size_t amp_emu_device_bytes(void);
/* cudaGraphLaunch calls so far (a module's own copy of the runtime counts its own: find it with
 * dlsym on the module). */
unsigned long long amp_emu_graph_launches(void);
size_t amp_emu_device_regions(void);
/* Calls so far that allocate (cudaMalloc, cudaMallocAsync, cudaMallocHost, cudaHostAlloc) and
 * that make the host wait for the device (cudaDeviceSynchronize, cudaStreamSynchronize,
 * cudaEventSynchronize, cudaMemcpy, cudaMemset): a step in steady state makes none of the first
 * and as few of the second as it has outputs to read. Either pointer may be NULL. */
void amp_emu_call_counts(unsigned long long *allocs, unsigned long long *syncs);
/* Stream work that has run so far, eagerly or as a node of a graph launch (a step's device work,
 * counted): counts[0] kernel launches, [1] cuBLASLt and cuDNN calls, [2] async copies, [3] async
 * memsets. AMP_EMU_TRACE=1 prints each to stderr as it runs. */
void amp_emu_ran_counts(unsigned long long counts[4]);
/* Live pinned host regions. */
size_t amp_emu_pinned_regions(void);
/* Limit later cudaMalloc calls to `bytes` of device memory in all (0: no limit beyond the
 * host's); returns the old limit. Out-of-memory tests use it. */
size_t amp_emu_set_device_limit(size_t bytes);
/* When on, async copies (cudaMemcpyAsync, cudaMemcpy2DAsync) refuse pageable host memory: their
 * host side must be pinned, as amprt stages a step's inputs and outputs; returns the old value.
 * Off by default (CUDA itself accepts pageable memory there). */
bool amp_emu_set_pinned_only(bool on);
/* Fills [p, p + n) with 0xFF bytes (NaN in f32, f16 and bf16) now, outside any stream; false,
 * with nothing written, when the range is not inside one device region. For stream order (or
 * under capture) use cudaMemsetAsync(p, 0xff, n, stream). */
bool amp_emu_poison(void *p, size_t n);

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

/* The dynamic shared memory the launch shim allows `kernel` (cudaFuncSetAttribute's
 * cudaFuncAttributeMaxDynamicSharedMemorySize; 48 KiB when it was never set). */
size_t amp_emu_max_dynamic_shared(const void *kernel);
#endif

#endif
