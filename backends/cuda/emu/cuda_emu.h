/* The CUDA kernel emulator's thread model: a shim that lets a .cu kernel file compile with the
 * host C++ compiler and run its grid on the CPU.
 *
 * Blocks run one after another on the launching thread (optionally in reverse order); within a
 * block every thread is a fiber (ucontext, 64 KiB stacks allocated once and reused) that runs
 * until it reaches __syncthreads (or __syncthreads_count/_and/_or, which must then be what every
 * thread of the block waits at) or a warp primitive, then the next fiber runs. Warp primitives
 * synchronise only the 32 lanes of their warp and check their mask. A launch that deadlocks
 * (a barrier some threads exited before, a barrier only some warps reach, a warp primitive whose
 * mask names lanes that do not take part) fails with a message instead of hanging. The mask
 * rule is strict: every lane a mask names must exist and post the same primitive with the same
 * mask, so a full mask in a partly filled last warp is an error, and a shuffle may only read
 * lanes its mask names. A kernel with no barrier and no warp primitive can be launched with
 * AMP_EMU_LAUNCH_PLAIN instead: its threads then run as plain calls, with no fiber at all.
 *
 * The __shared__ rule: write `__shared__ T name[N];` at function scope of a kernel or device
 * function, with no initialiser and not `extern`; dynamic shared memory (`extern __shared__`) is
 * written AMP_DYNAMIC_SHARED(T, name) (backends/cuda/launch.h), which the emulator gives a
 * buffer of the launch's shmem bytes, 0xFF-filled before each block.
 * Such an array is static storage, so every fiber of a block sees one copy; blocks run one after
 * another and launches are serialised, so each block has it to itself. Its contents are
 * undefined at block start: before each block the emulator fills every shared array of a
 * non-template kernel with 0xFF bytes (NaN for floats, -1 for integers). GCC places the static
 * locals of function templates outside the poisoned section, so template kernels get one copy per
 * block too but no poisoning.
 *
 * Test-only for now: not compiled into libamprt. */
#ifndef AMP_CUDA_EMU_H
#define AMP_CUDA_EMU_H

#ifdef __CUDACC__
#error "cuda_emu.h is for the host compiler; nvcc compiles the kernels as they are"
#endif

/* The CUDA spellings, defined before the toolkit's headers so that they keep these meanings
 * (crt/host_defines.h defines each only when it is not defined yet). */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
#define __shared__ __attribute__((section("amp_emu_shared"))) static
#define __launch_bounds__(...)

#include <math.h> /* device code has the C math functions in the global namespace */

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <utility>

/* dim3, uint3, cudaStream_t and cudaError_t are the toolkit's own (host-side headers only) */
#include <cuda_runtime_api.h>

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
static constexpr int warpSize = 32;

/* ---- launch status ---------------------------------------------------------------------- */
enum amp_emu_status {
  AMP_EMU_OK = 0,
  AMP_EMU_ERR_CONFIG,    /* bad grid or block dimensions */
  AMP_EMU_ERR_DEADLOCK,  /* a barrier that cannot complete */
  AMP_EMU_ERR_WARP,      /* a warp primitive whose mask, width or lanes are wrong */
  AMP_EMU_ERR_PLAIN      /* a barrier or warp primitive in a kernel launched as a plain loop */
};

/* thread order inside a block and block order inside a grid */
enum { AMP_EMU_REVERSE_THREADS = 1, AMP_EMU_REVERSE_BLOCKS = 2 };

/* Sets the order flags for later launches of this process; returns the old flags. */
int amp_emu_set_order(int flags);
/* The message of the last failed launch or fake-runtime call on this thread ("" after a
 * successful launch); a barrier or warp primitive called outside a kernel leaves its message here
 * too, until the next launch. */
const char *amp_emu_last_error(void);
/* Replaces the last error message (the fake runtime's failures name what they refused). */
void amp_emu_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether a launch of `kernel` with these dimensions is valid; false with the message set. */
bool amp_emu_check_config(const char *kernel, dim3 grid, dim3 block);
/* Fiber switches done by launches so far (for measurements). */
unsigned long long amp_emu_switch_count(void);

/* Runs body(ctx) once per thread of the grid, on fibers or (plain) as plain calls; the launch
 * macros below are the way in. */
amp_emu_status amp_emu_run(const char *kernel, dim3 grid, dim3 block, size_t shmem, void *stream, bool plain,
                           void (*body)(void *), void *ctx);

namespace amp_emu_detail {
template <class F> void call(void *p) { (*static_cast<F *>(p))(); }

/* The running launch's dynamic shared memory: shmem bytes, 16-byte aligned, 0xFF-filled before
 * each block; NULL when the launch asked for none. */
extern char *dynamic_shared;

template <class... P, class... A>
amp_emu_status launch(const char *name, dim3 grid, dim3 block, size_t shmem, void *stream, bool plain,
                      void (*kernel)(P...), A &&...args) {
  /* the arguments are evaluated once, like a real launch, and each thread gets its own copy */
  std::tuple<typename std::decay<P>::type...> params(std::forward<A>(args)...);
  auto body = [&]() { std::apply(kernel, params); };
  return amp_emu_run(name, grid, block, shmem, stream, plain, &call<decltype(body)>, &body);
}

enum barrier_kind { BAR_SYNC, BAR_COUNT, BAR_AND, BAR_OR };
/* Waits at a block barrier; returns the block's answer for the reducing kinds. */
int barrier(barrier_kind kind, int pred);

enum op_kind { OP_SYNCWARP, OP_SHFL, OP_SHFL_UP, OP_SHFL_DOWN, OP_SHFL_XOR, OP_BALLOT, OP_ANY, OP_ALL };
/* Posts this lane's part of a warp primitive and waits for the warp; returns the lane's result. */
uint64_t warp_op(op_kind kind, const char *name, unsigned mask, uint64_t value, int arg, int width);

template <class T> uint64_t bits(T v) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T> T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
}  // namespace amp_emu_detail

/* AMP_EMU_LAUNCH(kernel, grid, block, shmem, stream, args...) runs kernel<<<grid, block, shmem,
 * stream>>>(args...) and returns its amp_emu_status. */
#define AMP_EMU_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  amp_emu_detail::launch(#kernel, dim3(grid), dim3(block), (shmem), (stream), false, (kernel), __VA_ARGS__)
/* The same for a kernel with no barrier and no warp primitive: its threads run as plain calls,
 * one after another, with no fiber switch; a barrier or warp primitive fails the launch with
 * AMP_EMU_ERR_PLAIN. */
#define AMP_EMU_LAUNCH_PLAIN(kernel, grid, block, shmem, stream, ...) \
  amp_emu_detail::launch(#kernel, dim3(grid), dim3(block), (shmem), (stream), true, (kernel), __VA_ARGS__)

/* ---- barriers and warp primitives ------------------------------------------------------- */
inline void __syncthreads(void) { amp_emu_detail::barrier(amp_emu_detail::BAR_SYNC, 0); }
inline int __syncthreads_count(int pred) { return amp_emu_detail::barrier(amp_emu_detail::BAR_COUNT, pred); }
inline int __syncthreads_and(int pred) { return amp_emu_detail::barrier(amp_emu_detail::BAR_AND, pred); }
inline int __syncthreads_or(int pred) { return amp_emu_detail::barrier(amp_emu_detail::BAR_OR, pred); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  amp_emu_detail::warp_op(amp_emu_detail::OP_SYNCWARP, "__syncwarp", mask, 0, 0, 32);
}
template <class T> T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  using namespace amp_emu_detail;
  return from_bits<T>(warp_op(OP_SHFL, "__shfl_sync", mask, bits(var), src_lane, width));
}
template <class T> T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  using namespace amp_emu_detail;
  return from_bits<T>(warp_op(OP_SHFL_UP, "__shfl_up_sync", mask, bits(var), (int)delta, width));
}
template <class T> T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  using namespace amp_emu_detail;
  return from_bits<T>(warp_op(OP_SHFL_DOWN, "__shfl_down_sync", mask, bits(var), (int)delta, width));
}
template <class T> T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  using namespace amp_emu_detail;
  return from_bits<T>(warp_op(OP_SHFL_XOR, "__shfl_xor_sync", mask, bits(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return (unsigned)amp_emu_detail::warp_op(amp_emu_detail::OP_BALLOT, "__ballot_sync", mask, pred != 0, 0, 32);
}
inline int __any_sync(unsigned mask, int pred) {
  return (int)amp_emu_detail::warp_op(amp_emu_detail::OP_ANY, "__any_sync", mask, pred != 0, 0, 32);
}
inline int __all_sync(unsigned mask, int pred) {
  return (int)amp_emu_detail::warp_op(amp_emu_detail::OP_ALL, "__all_sync", mask, pred != 0, 0, 32);
}

/* ---- atomics: fibers switch only at barriers and warp primitives, so a read-modify-write
 * cannot be interleaved; they return the old value as CUDA's do ---------------------------- */
template <class T> T amp_emu_atomic_add(T *p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
inline float atomicAdd(float *p, float v) { return amp_emu_atomic_add(p, v); }
inline double atomicAdd(double *p, double v) { return amp_emu_atomic_add(p, v); }
inline int atomicAdd(int *p, int v) { return (int)amp_emu_atomic_add((unsigned *)p, (unsigned)v); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return amp_emu_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
  return amp_emu_atomic_add(p, v);
}
template <class T> T amp_emu_atomic_max(T *p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}
inline int atomicMax(int *p, int v) { return amp_emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned *p, unsigned v) { return amp_emu_atomic_max(p, v); }
inline long long atomicMax(long long *p, long long v) { return amp_emu_atomic_max(p, v); }
template <class T> T amp_emu_atomic_cas(T *p, T compare, T v) {
  T old = *p;
  if (old == compare) *p = v;
  return old;
}
inline int atomicCAS(int *p, int compare, int v) { return amp_emu_atomic_cas(p, compare, v); }
inline unsigned atomicCAS(unsigned *p, unsigned compare, unsigned v) { return amp_emu_atomic_cas(p, compare, v); }
inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long compare, unsigned long long v) {
  return amp_emu_atomic_cas(p, compare, v);
}

template <class T> T amp_emu_atomic_exch(T *p, T v) {
  T old = *p;
  *p = v;
  return old;
}
inline int atomicExch(int *p, int v) { return amp_emu_atomic_exch(p, v); }
inline unsigned atomicExch(unsigned *p, unsigned v) { return amp_emu_atomic_exch(p, v); }
inline unsigned long long atomicExch(unsigned long long *p, unsigned long long v) { return amp_emu_atomic_exch(p, v); }
inline float atomicExch(float *p, float v) { return amp_emu_atomic_exch(p, v); }
template <class T> T amp_emu_atomic_min(T *p, T v) {
  T old = *p;
  if (v < old) *p = v;
  return old;
}
inline int atomicMin(int *p, int v) { return amp_emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned *p, unsigned v) { return amp_emu_atomic_min(p, v); }
inline long long atomicMin(long long *p, long long v) { return amp_emu_atomic_min(p, v); }
inline int atomicSub(int *p, int v) { return (int)amp_emu_atomic_add((unsigned *)p, 0u - (unsigned)v); }
inline unsigned atomicSub(unsigned *p, unsigned v) { return amp_emu_atomic_add(p, 0u - v); }
inline int atomicOr(int *p, int v) { int old = *p; *p = old | v; return old; }
inline unsigned atomicOr(unsigned *p, unsigned v) { unsigned old = *p; *p = old | v; return old; }
inline int atomicAnd(int *p, int v) { int old = *p; *p = old & v; return old; }
inline unsigned atomicAnd(unsigned *p, unsigned v) { unsigned old = *p; *p = old & v; return old; }

/* ---- device functions: what nvcc gives device code without an include. The fast-math
 * intrinsics (__expf, __logf, __fdividef, rsqrtf) are exact here, so the emulator cannot see
 * their error on a GPU; the integer ones are the GPU's. ------------------------------------- */
inline void __threadfence(void) {}
inline void __threadfence_block(void) {}
template <class T> inline T __ldg(const T *p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; } /* NaN gives 0, as on a GPU */
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}

/* bit casts kernels use for float atomics built on atomicCAS */
inline int __float_as_int(float f) { return amp_emu_detail::from_bits<int>(amp_emu_detail::bits(f)); }
inline unsigned __float_as_uint(float f) { return amp_emu_detail::from_bits<unsigned>(amp_emu_detail::bits(f)); }
inline float __int_as_float(int i) { return amp_emu_detail::from_bits<float>(amp_emu_detail::bits(i)); }
inline float __uint_as_float(unsigned u) { return amp_emu_detail::from_bits<float>(amp_emu_detail::bits(u)); }

#endif
