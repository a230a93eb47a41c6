/* Kernel launches written once for nvcc and for the emulator.
 *
 *   cudaError_t e = AMP_CUDA_LAUNCH(kernel, grid, block, shmem, stream, args...);
 *
 * Under nvcc it is kernel<<<grid, block, shmem, stream>>>(args...) followed by
 * cudaGetLastError(). Under the host compiler (the emulator, backends/cuda/emu/) the launch goes
 * through the fake runtime's stream (amp_emu_enqueue): it runs on the CPU in stream order, or,
 * while the stream captures, is recorded with its own copy of the arguments and runs when the
 * graph is launched. A launch that fails comes back as a cudaError_t with its message in
 * amp_emu_last_error():
 *   - cudaErrorInvalidConfiguration: bad grid or block dimensions (checked when it is enqueued);
 *   - cudaErrorInvalidValue: more than 48 KiB of dynamic shared memory without
 *     cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), or more
 *     than the H100's 227 KiB (checked when it is enqueued);
 *   - cudaErrorInvalidDevicePointer: an argument of pointer type that is neither NULL nor inside
 *     a live device region (host memory, pinned host memory, freed device memory), checked when
 *     the launch runs; the message names the kernel and the argument (counted from 0). Pointers
 *     inside arguments passed by value (a struct holding pointers) are out of the check's reach:
 *     pass device pointers as plain arguments where you can;
 *   - cudaErrorLaunchFailure: a deadlock, a wrong warp mask, a barrier in a plain launch.
 * AMP_CUDA_LAUNCH_PLAIN is for kernels with no barrier and no warp primitive: the emulator runs
 * their threads as plain calls; nvcc launches them as usual.
 *
 * Dynamic shared memory: inside a kernel or device function write
 *
 *   AMP_DYNAMIC_SHARED(float, buf);   // buf: float *, the launch's shmem bytes
 *
 * Under nvcc it is one `extern __shared__` byte array (16-byte aligned) seen as T *, so every
 * use in a translation unit aliases the same memory, as CUDA's dynamic shared memory does; on the
 * emulator it is a buffer of exactly the launch's shmem bytes (ASan sees reads past them),
 * filled with 0xFF bytes before each block. */
#ifndef AMP_BACKENDS_CUDA_LAUNCH_H
#define AMP_BACKENDS_CUDA_LAUNCH_H

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define AMP_CUDA_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  ((kernel)<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__), cudaGetLastError())
#define AMP_CUDA_LAUNCH_PLAIN AMP_CUDA_LAUNCH
#define AMP_DYNAMIC_SHARED(T, name)                          \
  extern __shared__ __align__(16) unsigned char amp_dynamic_shared_[]; \
  T *name = reinterpret_cast<T *>(amp_dynamic_shared_)
#else
#include <tuple>
#include <type_traits>
#include <utility>

#include "backends/cuda/emu/cuda_emu.h"
#include "backends/cuda/emu/fake_runtime.h"

#define AMP_DYNAMIC_SHARED(T, name) T *const name = reinterpret_cast<T *>(amp_emu_detail::dynamic_shared)

inline cudaError_t amp_emu_cuda_error(amp_emu_status s) {
  switch (s) {
    case AMP_EMU_OK: return cudaSuccess;
    case AMP_EMU_ERR_CONFIG: return cudaErrorInvalidConfiguration;
    default: return cudaErrorLaunchFailure;
  }
}

/* cuda_runtime.h's C++ overload, which takes the kernel itself */
template <class... P> cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), attr, value);
}

namespace amp_emu_detail {

template <class T> constexpr bool is_data_pointer() {
  return std::is_pointer<T>::value && !std::is_function<typename std::remove_pointer<T>::type>::value;
}

/* The first argument of pointer type that is neither NULL nor device memory (-1: none). */
template <class Tuple, size_t... I> int first_bad_pointer(const Tuple &t, const void **bad, std::index_sequence<I...>) {
  int found = -1;
  auto visit = [&](size_t i, const auto &v) {
    using V = typename std::decay<decltype(v)>::type;
    if constexpr (is_data_pointer<V>()) {
      const void *p = (const void *)v;
      if (found < 0 && p && !amp_emu_is_device(p, 0)) {
        found = (int)i;
        *bad = p;
      }
    } else {
      (void)v;
    }
  };
  (visit(I, std::get<I>(t)), ...);
  (void)visit;
  return found;
}

template <class... P, class... A>
cudaError_t cuda_launch(const char *name, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream, bool plain,
                        void (*kernel)(P...), A &&...args) {
  if (!amp_emu_check_config(name, grid, block)) return cudaErrorInvalidConfiguration;
  size_t allowed = amp_emu_max_dynamic_shared(reinterpret_cast<const void *>(kernel));
  if (shmem > allowed) {
    amp_emu_set_error("%s: asks for %zu bytes of dynamic shared memory; %zu are allowed (above 48 KiB it needs "
                      "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), at most "
                      "232448 on an H100) (cudaErrorInvalidValue)",
                      name, shmem, allowed);
    return cudaErrorInvalidValue;
  }
  /* the arguments are evaluated once, now, like a real launch's; the recorded launch keeps this copy */
  std::tuple<typename std::decay<P>::type...> params(std::forward<A>(args)...);
  return amp_emu_enqueue(stream, name, [=]() -> cudaError_t {
    const void *bad = nullptr;
    int i = first_bad_pointer(params, &bad, std::index_sequence_for<P...>{});
    if (i >= 0) {
      amp_emu_set_error("%s: argument %d (counting from 0) is %p, %s; a kernel takes NULL or device pointers only "
                        "(cudaErrorInvalidDevicePointer)",
                        name, i, bad, amp_emu_pointer_kind(bad));
      return cudaErrorInvalidDevicePointer;
    }
    amp_emu_status s = std::apply(
        [&](const auto &...a) { return launch(name, grid, block, shmem, (void *)stream, plain, kernel, a...); },
        params);
    return amp_emu_cuda_error(s);
  });
}

}  // namespace amp_emu_detail

#define AMP_CUDA_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  amp_emu_detail::cuda_launch(#kernel, dim3(grid), dim3(block), (shmem), (stream), false, (kernel), __VA_ARGS__)
#define AMP_CUDA_LAUNCH_PLAIN(kernel, grid, block, shmem, stream, ...) \
  amp_emu_detail::cuda_launch(#kernel, dim3(grid), dim3(block), (shmem), (stream), true, (kernel), __VA_ARGS__)
#endif

#endif
