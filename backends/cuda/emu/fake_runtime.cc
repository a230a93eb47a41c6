/* The emulator's fake CUDA runtime (fake_runtime.h): device memory as a registry of host
 * regions, copies, streams that run their work when it is enqueued. */
#include "backends/cuda/emu/fake_runtime.h"

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace {

struct registry {
  std::mutex mu;
  std::map<uintptr_t, size_t> regions; /* start -> bytes */
  size_t bytes = 0;
  size_t limit = 0;
};

registry &reg() {
  static registry r;
  return r;
}

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

/* the region holding [p, p + n), or regions.end() */
std::map<uintptr_t, size_t>::iterator find_region(registry &r, const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p;
  auto it = r.regions.upper_bound(a);
  if (it == r.regions.begin()) return r.regions.end();
  --it;
  if (a - it->first > it->second || n > it->second - (a - it->first)) return r.regions.end();
  return it;
}

bool is_device(const void *p, size_t n) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  return find_region(r, p, n) != r.regions.end();
}

struct fake_stream {
  unsigned flags;
};

}  // namespace

extern "C" {

bool amp_emu_is_device(const void *p, size_t bytes) { return is_device(p, bytes); }

size_t amp_emu_device_bytes(void) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  return r.bytes;
}

size_t amp_emu_device_regions(void) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  return r.regions.size();
}

size_t amp_emu_set_device_limit(size_t bytes) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  size_t old = r.limit;
  r.limit = bytes;
  return old;
}

/* ---- errors ------------------------------------------------------------------------------- */

cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

#define AMP_EMU_ERRORS(X)                                                   \
  X(cudaSuccess, "no error")                                                \
  X(cudaErrorInvalidValue, "invalid argument")                              \
  X(cudaErrorMemoryAllocation, "out of memory")                             \
  X(cudaErrorInitializationError, "initialization error")                   \
  X(cudaErrorInvalidConfiguration, "invalid configuration argument")        \
  X(cudaErrorInvalidDevicePointer, "invalid device pointer")                \
  X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")   \
  X(cudaErrorInsufficientDriver, "CUDA driver version is insufficient for CUDA runtime version") \
  X(cudaErrorNoDevice, "no CUDA-capable device is detected")                \
  X(cudaErrorInvalidDevice, "invalid device ordinal")                       \
  X(cudaErrorInvalidResourceHandle, "invalid resource handle")              \
  X(cudaErrorNotReady, "device not ready")                                  \
  X(cudaErrorIllegalAddress, "an illegal memory access was encountered")    \
  X(cudaErrorLaunchFailure, "unspecified launch failure")                   \
  X(cudaErrorNotSupported, "operation not supported")                       \
  X(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing") \
  X(cudaErrorStreamCaptureInvalidated, "operation failed due to a previous error during capture") \
  X(cudaErrorStreamCaptureImplicit, "operation would make the legacy stream depend on a capturing blocking stream") \
  X(cudaErrorStreamCaptureWrongThread, "attempt to terminate a thread-local capture sequence from another thread")

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define X(code, text) \
  case code: return #code;
    AMP_EMU_ERRORS(X)
#undef X
    default: return "cudaErrorUnknown";
  }
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
#define X(code, text) \
  case code: return text;
    AMP_EMU_ERRORS(X)
#undef X
    default: return "unknown error";
  }
}

/* ---- the device ----------------------------------------------------------------------------- */

cudaError_t cudaGetDeviceCount(int *count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaDriverGetVersion(int *v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

/* ---- memory --------------------------------------------------------------------------------- */

cudaError_t cudaMalloc(void **p, size_t bytes) {
  if (!p) return fail(cudaErrorInvalidValue);
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  registry &r = reg();
  {
    std::lock_guard<std::mutex> g(r.mu);
    if (r.limit && (bytes > r.limit || r.bytes > r.limit - bytes)) return fail(cudaErrorMemoryAllocation);
  }
  size_t rounded = (bytes + 255) / 256 * 256;
  if (rounded < bytes) return fail(cudaErrorMemoryAllocation);
  void *mem = std::aligned_alloc(256, rounded);
  if (!mem) return fail(cudaErrorMemoryAllocation);
  std::memset(mem, 0xFF, rounded);
  std::lock_guard<std::mutex> g(r.mu);
  r.regions[(uintptr_t)mem] = bytes;
  r.bytes += bytes;
  *p = mem;
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.regions.find((uintptr_t)p);
  if (it == r.regions.end()) return fail(cudaErrorInvalidDevicePointer);
  r.bytes -= it->second;
  r.regions.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes) {
  if (!p) return fail(cudaErrorInvalidValue);
  *p = bytes ? std::malloc(bytes) : nullptr;
  return bytes && !*p ? fail(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
  (void)flags;
  return cudaMallocHost(p, bytes);
}

cudaError_t cudaFreeHost(void *p) {
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  size_t lim = r.limit ? r.limit : (size_t)80 << 30;
  if (free_bytes) *free_bytes = lim > r.bytes ? lim - r.bytes : 0;
  if (total) *total = lim;
  return cudaSuccess;
}

/* a copy whose device sides must lie in device regions and whose host sides must not */
static cudaError_t copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  bool dd = is_device(dst, n), sd = is_device(src, n);
  switch (kind) {
    case cudaMemcpyHostToDevice:
      if (!dd || sd) return fail(cudaErrorInvalidValue);
      break;
    case cudaMemcpyDeviceToHost:
      if (dd || !sd) return fail(cudaErrorInvalidValue);
      break;
    case cudaMemcpyDeviceToDevice:
      if (!dd || !sd) return fail(cudaErrorInvalidValue);
      break;
    case cudaMemcpyHostToHost:
      if (dd || sd) return fail(cudaErrorInvalidValue);
      break;
    case cudaMemcpyDefault: break;
    default: return fail(cudaErrorInvalidMemcpyDirection);
  }
  std::memmove(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) { return copy(dst, src, n, kind); }

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  (void)s;
  return copy(dst, src, n, kind);
}

cudaError_t cudaMemset(void *p, int value, size_t n) {
  if (n == 0) return cudaSuccess;
  if (!is_device(p, n)) return fail(cudaErrorInvalidValue);
  std::memset(p, value, n);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s) {
  (void)s;
  return cudaMemset(p, value, n);
}

/* ---- streams -------------------------------------------------------------------------------- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  if (!s) return fail(cudaErrorInvalidValue);
  fake_stream *f = new (std::nothrow) fake_stream{flags};
  if (!f) return fail(cudaErrorMemoryAllocation);
  *s = reinterpret_cast<cudaStream_t>(f);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  delete reinterpret_cast<fake_stream *>(s);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  (void)s;
  return cudaSuccess;
}

}  // extern "C"

/* no capture yet: everything runs when it is enqueued */
cudaError_t amp_emu_enqueue(cudaStream_t stream, const char *what, std::function<cudaError_t()> work) {
  (void)stream;
  (void)what;
  cudaError_t e = work();
  return e == cudaSuccess ? e : fail(e);
}
