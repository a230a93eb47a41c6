/* The emulator's fake CUDA runtime (backends/cuda/emu/fake_runtime.h) and the launch shim
 * (backends/cuda/launch.h): device and pinned memory registries, copies, launches through
 * streams with their pointer check, events, stream capture and graph replay, the rules of
 * capture, the device's description, dynamic shared memory. The planted bugs (a host, pinned or
 * freed pointer reaching a kernel, a synchronising call during capture, an allocation past the
 * device limit) must be caught. Emulator-only: it asks the emulator what a GPU cannot tell. */
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/launch.h"
#include "tests/cuda/cuda_test.h"

/* ---- kernels ---------------------------------------------------------------------------------- */

__global__ void scale(float *y, const float *x, float a, int n) {
  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = a * x[i] + 0.5f;
}

/* bias may be NULL (then 1 is added) */
__global__ void add_bias(float *y, const float *bias, int n) {
  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] += bias ? bias[i] : 1.0f;
}

/* per-block sums through static shared memory and barriers (blockDim 256) */
__global__ void block_sums(const float *x, float *out, int n) {
  __shared__ float s[256];
  unsigned t = threadIdx.x;
  int i = (int)(blockIdx.x * blockDim.x + t);
  s[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (unsigned stride = 128; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

/* reverses each block's part of x through dynamic shared memory (blockDim floats) */
__global__ void reverse_dyn(const float *x, float *y, int n) {
  AMP_DYNAMIC_SHARED(float, buf);
  unsigned t = threadIdx.x, base = blockIdx.x * blockDim.x;
  buf[t] = (int)(base + t) < n ? x[base + t] : -1.0f;
  __syncthreads();
  unsigned j = base + blockDim.x - 1 - t;
  if ((int)j < n) y[j] = buf[t];
}

/* per block: were all nbytes of dynamic shared memory 0xFF at the start, and do two views of it
 * share one address; then dirties it for the next block */
__global__ void dyn_poison(unsigned *seen, int nbytes) {
  AMP_DYNAMIC_SHARED(unsigned char, bytes);
  AMP_DYNAMIC_SHARED(float, floats);
  if (threadIdx.x == 0) {
    unsigned ok = 1;
    for (int k = 0; k < nbytes; k++) ok &= bytes[k] == 0xffu;
    seen[2 * blockIdx.x] = ok;
    seen[2 * blockIdx.x + 1] = (void *)bytes == (void *)floats;
  }
  __syncthreads();
  bytes[threadIdx.x % (unsigned)nbytes] = 0;
}

__global__ void big_shared(float *out) {
  AMP_DYNAMIC_SHARED(float, buf);
  buf[threadIdx.x] = (float)threadIdx.x;
  if (threadIdx.x == 0) out[0] = buf[0] + 1.0f;
}

/* a table in constant memory */
__constant__ float c_table[4];

__global__ void from_table(float *y, int n) {
  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = c_table[i % 4];
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static bool has(const char *fragment) { return std::strstr(amp_emu_last_error(), fragment) != nullptr; }

static bool all_ff(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0xff) return false;
  return true;
}

static void count_up(void *p) { ++*(int *)p; }

static void sleep_20ms(void *) { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

/* ---- memory ------------------------------------------------------------------------------------ */

static void t_registry(void) {
  size_t regions0 = amp_emu_device_regions(), bytes0 = amp_emu_device_bytes();
  void *p = nullptr;
  CT_CHECK(cudaMalloc(&p, 1000) == cudaSuccess && p, "cudaMalloc: %s", amp_emu_last_error());
  CT_CHECK(amp_emu_device_regions() == regions0 + 1 && amp_emu_device_bytes() == bytes0 + 1000, "accounting");
  CT_CHECK(((uintptr_t)p & 255) == 0, "256-byte alignment: %p", p);
  CT_CHECK(amp_emu_is_device(p, 1000) && amp_emu_is_device((char *)p + 999, 1), "in bounds");
  CT_CHECK(!amp_emu_is_device(p, 1001) && !amp_emu_is_device((char *)p + 1000, 1) && !amp_emu_is_device((char *)p - 1, 1),
           "out of bounds");
  CT_CHECK(all_ff(p, 1000), "a new region is 0xFF bytes");
  CT_CHECK(!std::strcmp(amp_emu_pointer_kind(p), "device memory"), "kind %s", amp_emu_pointer_kind(p));
  CT_CHECK(cudaFree((char *)p + 8) == cudaErrorInvalidDevicePointer && has("not its start"), "interior free: %s",
           amp_emu_last_error());
  int host = 0;
  CT_CHECK(cudaFree(&host) == cudaErrorInvalidDevicePointer && has("not a pointer cudaMalloc returned"),
           "host free: %s", amp_emu_last_error());
  CT_CHECK(cudaFree(p) == cudaSuccess, "free");
  CT_CHECK(!amp_emu_is_device(p, 1) && amp_emu_device_regions() == regions0 && amp_emu_device_bytes() == bytes0,
           "a freed region leaves the registry");
  CT_CHECK(has("") && std::strstr(amp_emu_pointer_kind(p), "freed earlier"), "kind %s", amp_emu_pointer_kind(p));
  CT_CHECK(cudaFree(p) == cudaErrorInvalidDevicePointer && has("double free"), "double free: %s", amp_emu_last_error());
  CT_CHECK(cudaGetLastError() == cudaErrorInvalidDevicePointer && cudaGetLastError() == cudaSuccess,
           "cudaGetLastError returns the last failure once");
  void *z = &host;
  CT_CHECK(cudaMalloc(&z, 0) == cudaSuccess && z == nullptr, "cudaMalloc(0) gives NULL");
  CT_CHECK(cudaFree(nullptr) == cudaSuccess, "cudaFree(NULL)");
  CT_CHECK(cudaMalloc(nullptr, 16) == cudaErrorInvalidValue, "NULL result pointer");
}

/* PLANTED BUG: more device memory than the limit */
static void t_device_limit(void) {
  size_t in_use = amp_emu_device_bytes();
  size_t old = amp_emu_set_device_limit(in_use + (1u << 20));
  void *a = nullptr, *b = &a;
  cudaError_t ea = cudaMalloc(&a, 600u << 10);
  cudaError_t eb = cudaMalloc(&b, 600u << 10);
  std::string msg = amp_emu_last_error();
  size_t free_b = 0, total = 0;
  cudaMemGetInfo(&free_b, &total);
  cudaFree(a);
  amp_emu_set_device_limit(old);
  CT_CHECK(ea == cudaSuccess, "the first allocation fits: %d", (int)ea);
  CT_CHECK(eb == cudaErrorMemoryAllocation && b == nullptr, "past the limit: %d (%s)", (int)eb, msg.c_str());
  CT_CHECK(msg.find("the device limit is") != std::string::npos, "message: %s", msg.c_str());
  CT_CHECK(total == in_use + (1u << 20) && free_b == total - in_use - (600u << 10), "cudaMemGetInfo %zu / %zu", free_b,
           total);
  CT_CHECK(amp_emu_device_bytes() == in_use, "nothing leaked");
}

static void t_pinned(void) {
  size_t n0 = amp_emu_pinned_regions();
  float *h = nullptr, *h2 = nullptr;
  CT_CHECK(cudaMallocHost((void **)&h, 400) == cudaSuccess && h, "cudaMallocHost");
  CT_CHECK(cudaHostAlloc((void **)&h2, 40, cudaHostAllocPortable) == cudaSuccess && h2, "cudaHostAlloc");
  CT_CHECK(amp_emu_pinned_regions() == n0 + 2, "two pinned regions");
  CT_CHECK(amp_emu_is_pinned(h, 400) && !amp_emu_is_pinned(h, 401) && !amp_emu_is_device(h, 1), "pinned is host memory");
  CT_CHECK(all_ff(h, 400), "pinned memory starts as 0xFF bytes");
  CT_CHECK(std::strstr(amp_emu_pointer_kind(h), "pinned host memory"), "kind %s", amp_emu_pointer_kind(h));
  void *h3 = &n0;
  CT_CHECK(cudaHostAlloc(&h3, 40, 0x80) == cudaErrorInvalidValue && h3 == nullptr, "unknown flags");
  void *plain = std::malloc(16), *dev = nullptr;
  cudaError_t e1 = cudaFreeHost(plain);
  bool m1 = has("not a pointer cudaMallocHost");
  std::free(plain);
  CT_CHECK(e1 == cudaErrorInvalidValue && m1, "cudaFreeHost of malloc'd memory: %s", amp_emu_last_error());
  CT_CHECK(cudaMalloc(&dev, 64) == cudaSuccess, "cudaMalloc");
  cudaError_t e2 = cudaFreeHost(dev);
  bool m2 = has("free it with cudaFree");
  cudaFree(dev);
  CT_CHECK(e2 == cudaErrorInvalidValue && m2, "cudaFreeHost of device memory: %s", amp_emu_last_error());
  CT_CHECK(cudaFreeHost(h) == cudaSuccess && cudaFreeHost(h2) == cudaSuccess, "cudaFreeHost");
  CT_CHECK(cudaFreeHost(h) == cudaErrorInvalidValue, "cudaFreeHost twice");
  CT_CHECK(amp_emu_pinned_regions() == n0 && !amp_emu_is_pinned(h, 1), "pinned regions freed");
}

static void t_poison(void) {
  unsigned char *d = nullptr;
  CT_CHECK(cudaMalloc((void **)&d, 300) == cudaSuccess, "cudaMalloc");
  CT_CHECK(cudaMemset(d, 0, 300) == cudaSuccess, "memset");
  bool ok = amp_emu_poison(d + 100, 50);
  bool range = all_ff(d + 100, 50) && d[99] == 0 && d[150] == 0;
  bool past = !amp_emu_poison(d + 290, 20) && d[290] == 0;
  int host[4] = {1, 2, 3, 4};
  bool on_host = !amp_emu_poison(host, sizeof host) && host[0] == 1;
  cudaFree(d);
  CT_CHECK(ok && range, "poisons exactly the range");
  CT_CHECK(past, "a range past the region is refused, nothing written");
  CT_CHECK(on_host, "host memory is refused");
  float f;
  std::memset(&f, 0xff, sizeof f);
  CT_CHECK(std::isnan(f), "0xFF bytes are NaN in f32");
}

static void t_copies(void) {
  const size_t n = 1001;
  std::vector<float> h(n), back(n, 0.0f), h2(n, 0.0f);
  ct_fill(h.data(), n, 11, -2.0f, 3.0f);
  float *d = nullptr, *d2 = nullptr;
  CT_CHECK(cudaMalloc((void **)&d, n * 4) == cudaSuccess && cudaMalloc((void **)&d2, n * 4) == cudaSuccess, "cudaMalloc");
  CT_CHECK(cudaMemcpy(d, h.data(), n * 4, cudaMemcpyHostToDevice) == cudaSuccess, "H2D: %s", amp_emu_last_error());
  CT_CHECK(cudaMemcpy(d2, d, n * 4, cudaMemcpyDeviceToDevice) == cudaSuccess, "D2D");
  CT_CHECK(cudaMemcpy(back.data(), d2, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess, "D2H");
  CT_CHECK(!std::memcmp(back.data(), h.data(), n * 4), "round trip");
  CT_CHECK(cudaMemcpy(h2.data(), back.data(), n * 4, cudaMemcpyHostToHost) == cudaSuccess && h2 == h, "H2H");
  std::fill(back.begin(), back.end(), 0.0f);
  CT_CHECK(cudaMemcpy(back.data(), d, n * 4, cudaMemcpyDefault) == cudaSuccess && back == h, "Default");
  /* wrong directions are refused and write nothing */
  std::fill(back.begin(), back.end(), 7.0f);
  CT_CHECK(cudaMemcpy(back.data(), h.data(), n * 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue &&
               has("destination") && has("host memory"),
           "H2D to host: %s", amp_emu_last_error());
  CT_CHECK(cudaMemcpy(back.data(), h.data(), n * 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue && has("source"),
           "D2H from host: %s", amp_emu_last_error());
  CT_CHECK(cudaMemcpy(d, h.data(), n * 4, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue, "D2D from host");
  CT_CHECK(cudaMemcpy(d, back.data(), n * 4, cudaMemcpyHostToHost) == cudaErrorInvalidValue && has("not host memory"),
           "H2H to device: %s", amp_emu_last_error());
  CT_CHECK(cudaMemcpy(back.data(), d, n * 4, (cudaMemcpyKind)7) == cudaErrorInvalidMemcpyDirection, "bad kind");
  CT_CHECK(back[0] == 7.0f && back[n - 1] == 7.0f, "refused copies wrote nothing");
  /* out of bounds: one byte past the region */
  CT_CHECK(cudaMemcpy(d, h.data(), n * 4 + 1, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "past the region");
  CT_CHECK(cudaMemcpy(d + 1, h.data(), n * 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "offset past the region");
  /* async copies on a stream, a 2-D copy (3 rows of 5 floats out of rows of 7) */
  cudaStream_t s;
  CT_CHECK(cudaStreamCreate(&s) == cudaSuccess, "stream");
  CT_CHECK(cudaMemsetAsync(d2, 0, n * 4, s) == cudaSuccess, "memset async");
  CT_CHECK(cudaMemcpy2DAsync(d2, 5 * 4, h.data(), 7 * 4, 5 * 4, 3, cudaMemcpyHostToDevice, s) == cudaSuccess,
           "2-D: %s", amp_emu_last_error());
  CT_CHECK(cudaMemcpyAsync(back.data(), d2, n * 4, cudaMemcpyDeviceToHost, s) == cudaSuccess, "D2H async");
  CT_CHECK(cudaStreamSynchronize(s) == cudaSuccess, "sync");
  int bad = 0;
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 5; c++) bad += back[(size_t)(r * 5 + c)] != h[(size_t)(r * 7 + c)];
  CT_CHECK(bad == 0 && back[15] == 0.0f, "2-D copy: %d wrong", bad);
  CT_CHECK(cudaMemcpy2DAsync(d2, 4, h.data(), 28, 20, 3, cudaMemcpyHostToDevice, s) == cudaErrorInvalidPitchValue,
           "pitch below width");
  CT_CHECK(cudaMemsetAsync(back.data(), 0, 16, s) == cudaErrorInvalidValue && has("host memory"), "memset on host: %s",
           amp_emu_last_error());
  CT_CHECK(cudaMemset(d, 0, n * 4 + 4) == cudaErrorInvalidValue && has("past the end"), "memset past the end: %s",
           amp_emu_last_error());
  /* pinned-only async copies: a pageable host side is refused, a pinned one taken */
  float *pin = nullptr;
  CT_CHECK(cudaMallocHost((void **)&pin, n * 4) == cudaSuccess, "pinned");
  bool old = amp_emu_set_pinned_only(true);
  cudaError_t e_page = cudaMemcpyAsync(d, h.data(), n * 4, cudaMemcpyHostToDevice, s);
  bool m_page = has("pageable host memory");
  cudaError_t e_pin = cudaMemcpyAsync(pin, d, n * 4, cudaMemcpyDeviceToHost, s);
  cudaError_t e_sync = cudaMemcpy(back.data(), d, n * 4, cudaMemcpyDeviceToHost);
  amp_emu_set_pinned_only(old);
  cudaFreeHost(pin);
  CT_CHECK(e_page == cudaErrorInvalidValue && m_page, "pageable async copy: %d", (int)e_page);
  CT_CHECK(e_pin == cudaSuccess && e_sync == cudaSuccess, "pinned async copy %d, sync copy %d", (int)e_pin, (int)e_sync);
  cudaStreamDestroy(s);
  cudaFree(d);
  cudaFree(d2);
}

/* ---- launches ---------------------------------------------------------------------------------- */

static void t_launch(void) {
  const int n = 777;
  std::vector<float> hx(n), hy(n);
  ct_fill(hx.data(), n, 3, -1.0f, 1.0f);
  float *x = nullptr, *y = nullptr;
  CT_CHECK(cudaMalloc((void **)&x, n * 4) == cudaSuccess && cudaMalloc((void **)&y, n * 4) == cudaSuccess, "alloc");
  cudaStream_t s;
  CT_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "stream");
  cudaMemcpyAsync(x, hx.data(), n * 4, cudaMemcpyHostToDevice, s);
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(scale, (n + 127) / 128, 128, 0, s, y, x, 2.0f, n) == cudaSuccess, "scale: %s",
           amp_emu_last_error());
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(add_bias, (n + 127) / 128, 128, 0, s, y, (const float *)nullptr, n) == cudaSuccess,
           "a NULL pointer argument is allowed: %s", amp_emu_last_error());
  CT_CHECK(AMP_CUDA_LAUNCH(add_bias, (n + 127) / 128, 128, 0, s, y, x, n) == cudaSuccess, "fibers: %s",
           amp_emu_last_error());
  cudaMemcpyAsync(hy.data(), y, n * 4, cudaMemcpyDeviceToHost, s);
  cudaStreamSynchronize(s);
  std::vector<float> ref(n);
  for (int i = 0; i < n; i++) ref[(size_t)i] = (2.0f * hx[(size_t)i] + 0.5f + 1.0f) + hx[(size_t)i];
  CT_CHECK(ct_max_abs(hy.data(), ref.data(), n) == 0.0, "launch results: max abs %g", ct_max_abs(hy.data(), ref.data(), n));
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(scale, 0, 128, 0, s, y, x, 2.0f, n) == cudaErrorInvalidConfiguration &&
               has("gridDim (0,1,1)"),
           "bad grid: %s", amp_emu_last_error());
  cudaStream_t dead;
  cudaStreamCreate(&dead);
  cudaStreamDestroy(dead);
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(scale, 1, 128, 0, dead, y, x, 2.0f, n) == cudaErrorInvalidResourceHandle,
           "a destroyed stream: %s", amp_emu_last_error());
  CT_CHECK(cudaStreamDestroy(dead) == cudaErrorInvalidResourceHandle, "stream destroyed twice");
  cudaStreamDestroy(s);
  cudaFree(x);
  cudaFree(y);
}

/* PLANTED BUGS: host, pinned and freed pointers reaching a kernel; the launch fails before any
 * thread runs, naming the kernel and the argument. */
static void t_bad_pointers(void) {
  const int n = 64;
  float *y = nullptr, *gone = nullptr, *pinned = nullptr;
  std::vector<float> host(n, 1.0f), hy(n);
  CT_CHECK(cudaMalloc((void **)&y, n * 4) == cudaSuccess && cudaMalloc((void **)&gone, n * 4) == cudaSuccess, "alloc");
  CT_CHECK(cudaMallocHost((void **)&pinned, n * 4) == cudaSuccess, "pinned");
  cudaFree(gone);
  cudaMemset(y, 0, n * 4);
  cudaError_t e = AMP_CUDA_LAUNCH_PLAIN(scale, 1, n, 0, nullptr, y, host.data(), 2.0f, n);
  std::string m_host = amp_emu_last_error();
  cudaError_t e_pin = AMP_CUDA_LAUNCH_PLAIN(scale, 1, n, 0, nullptr, y, (const float *)pinned, 2.0f, n);
  std::string m_pin = amp_emu_last_error();
  cudaError_t e_gone = AMP_CUDA_LAUNCH(add_bias, 1, n, 0, nullptr, y, (const float *)gone, n);
  std::string m_gone = amp_emu_last_error();
  cudaError_t e_out = AMP_CUDA_LAUNCH_PLAIN(scale, 1, n, 0, nullptr, host.data(), (const float *)y, 2.0f, n);
  std::string m_out = amp_emu_last_error();
  cudaMemcpy(hy.data(), y, n * 4, cudaMemcpyDeviceToHost);
  cudaFree(y);
  cudaFreeHost(pinned);
  std::printf("planted bug: host pointer   -> %s\n", m_host.c_str());
  std::printf("planted bug: pinned pointer -> %s\n", m_pin.c_str());
  std::printf("planted bug: freed pointer  -> %s\n", m_gone.c_str());
  CT_CHECK(e == cudaErrorInvalidDevicePointer && m_host.find("scale: argument 1") != std::string::npos &&
               m_host.find("not device memory") != std::string::npos,
           "host pointer: %d %s", (int)e, m_host.c_str());
  CT_CHECK(e_pin == cudaErrorInvalidDevicePointer && m_pin.find("pinned host memory") != std::string::npos,
           "pinned pointer: %s", m_pin.c_str());
  CT_CHECK(e_gone == cudaErrorInvalidDevicePointer && m_gone.find("add_bias: argument 1") != std::string::npos &&
               m_gone.find("freed earlier") != std::string::npos,
           "freed pointer: %s", m_gone.c_str());
  CT_CHECK(e_out == cudaErrorInvalidDevicePointer && m_out.find("argument 0") != std::string::npos, "output: %s",
           m_out.c_str());
  bool untouched = true;
  for (int i = 0; i < n; i++) untouched &= hy[(size_t)i] == 0.0f && host[(size_t)i] == 1.0f;
  CT_CHECK(untouched, "no thread ran: no partial output");
}

static void t_dynamic_shared(void) {
  const int n = 1000, block = 97, grid = (n + block - 1) / block;
  std::vector<float> hx(n), hy(n, 0.0f), ref(n, 0.0f);
  ct_fill(hx.data(), n, 5, 0.5f, 2.0f);
  for (int b = 0; b < grid; b++)
    for (int t = 0; t < block; t++) {
      int j = b * block + block - 1 - t, i = b * block + t;
      if (j < n) ref[(size_t)j] = i < n ? hx[(size_t)i] : -1.0f;
    }
  float *x = nullptr, *y = nullptr;
  unsigned *seen = nullptr;
  CT_CHECK(cudaMalloc((void **)&x, n * 4) == cudaSuccess && cudaMalloc((void **)&y, n * 4) == cudaSuccess &&
               cudaMalloc((void **)&seen, 2 * 5 * 4) == cudaSuccess,
           "alloc");
  cudaMemcpy(x, hx.data(), n * 4, cudaMemcpyHostToDevice);
  int old = amp_emu_set_order(AMP_EMU_REVERSE_THREADS | AMP_EMU_REVERSE_BLOCKS);
  cudaError_t e = AMP_CUDA_LAUNCH(reverse_dyn, grid, block, block * sizeof(float), nullptr, x, y, n);
  amp_emu_set_order(old);
  cudaMemcpy(hy.data(), y, n * 4, cudaMemcpyDeviceToHost);
  CT_CHECK(e == cudaSuccess, "reverse_dyn: %s", amp_emu_last_error());
  CT_CHECK(hy == ref, "reversal through dynamic shared memory (block 97, n 1000, reverse order)");
  /* poisoned before every block, and two views alias */
  std::vector<unsigned> hs(10, 7);
  e = AMP_CUDA_LAUNCH(dyn_poison, 5, 64, 37, nullptr, seen, 37);
  cudaMemcpy(hs.data(), seen, 10 * 4, cudaMemcpyDeviceToHost);
  CT_CHECK(e == cudaSuccess, "dyn_poison: %s", amp_emu_last_error());
  for (int b = 0; b < 5; b++) {
    CT_CHECK(hs[(size_t)(2 * b)] == 1, "block %d saw dynamic shared memory that was not 0xFF", b);
    CT_CHECK(hs[(size_t)(2 * b + 1)] == 1, "block %d: two AMP_DYNAMIC_SHARED views differ", b);
  }
  /* above 48 KiB only after cudaFuncSetAttribute; above 227 KiB never */
  e = AMP_CUDA_LAUNCH_PLAIN(big_shared, 1, 32, 64 * 1024, nullptr, y);
  bool said = has("cudaFuncAttributeMaxDynamicSharedMemorySize");
  CT_CHECK(e == cudaErrorInvalidValue && said, "64 KiB without the attribute: %d %s", (int)e, amp_emu_last_error());
  CT_CHECK(cudaFuncSetAttribute(big_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess,
           "cudaFuncSetAttribute");
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(big_shared, 1, 32, 64 * 1024, nullptr, y) == cudaSuccess, "64 KiB with it: %s",
           amp_emu_last_error());
  float one = 0;
  cudaMemcpy(&one, y, 4, cudaMemcpyDeviceToHost);
  CT_CHECK(one == 1.0f, "big_shared wrote %g", (double)one);
  CT_CHECK(cudaFuncSetAttribute(big_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 300000) ==
               cudaErrorInvalidValue,
           "300000 bytes is more than an H100 has");
  cudaFree(x);
  cudaFree(y);
  cudaFree(seen);
}

static void t_symbols(void) {
  const float tab[4] = {1.5f, -2.0f, 3.25f, 0.125f};
  float *y = nullptr, back[6] = {0}, check[4] = {0};
  CT_CHECK(cudaMalloc((void **)&y, 6 * 4) == 0, "alloc");
  CT_CHECK(cudaMemcpyToSymbol(c_table, tab, sizeof tab) == cudaSuccess, "to symbol: %s", amp_emu_last_error());
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(from_table, 1, 32, 0, nullptr, y, 6) == cudaSuccess, "launch: %s", amp_emu_last_error());
  cudaMemcpy(back, y, sizeof back, cudaMemcpyDeviceToHost);
  CT_CHECK(back[0] == 1.5f && back[3] == 0.125f && back[5] == -2.0f, "the kernel read the table");
  CT_CHECK(cudaMemcpyFromSymbol(check, c_table, sizeof check) == cudaSuccess && !std::memcmp(check, tab, sizeof tab),
           "from symbol");
  CT_CHECK(cudaMemcpyToSymbol(c_table, y, 8, 8, cudaMemcpyDeviceToDevice) == cudaSuccess, "device to symbol, offset");
  CT_CHECK(cudaMemcpyFromSymbol(check, c_table, sizeof check) == 0 && check[2] == 1.5f && check[3] == -2.0f, "offset");
  CT_CHECK(cudaMemcpyToSymbol(c_table, tab, 8, 0, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue,
           "a host source is no device source");
  CT_CHECK(cudaMemcpyToSymbol(c_table, tab, 8, 0, cudaMemcpyDeviceToHost) == cudaErrorInvalidMemcpyDirection,
           "no copy from a symbol to it");
  cudaStream_t s;
  cudaStreamCreate(&s);
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "begin");
  CT_CHECK(cudaMemcpyToSymbolAsync(c_table, tab, sizeof tab, 0, cudaMemcpyHostToDevice, s) == 0, "captured");
  cudaGraph_t g;
  CT_CHECK(cudaStreamEndCapture(s, &g) == 0, "end");
  CT_CHECK(cudaMemcpyFromSymbol(check, c_table, sizeof check) == 0 && check[2] == 1.5f, "not run by the capture");
  cudaGraphExec_t x;
  CT_CHECK(cudaGraphInstantiate(&x, g, 0) == 0 && cudaGraphLaunch(x, s) == 0, "replay");
  CT_CHECK(cudaMemcpyFromSymbol(check, c_table, sizeof check) == 0 && !std::memcmp(check, tab, sizeof tab),
           "run by the replay");
  /* the host address of a __constant__ variable is no device pointer */
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(scale, 1, 4, 0, nullptr, y, (const float *)c_table, 1.0f, 4) ==
               cudaErrorInvalidDevicePointer,
           "a symbol's host address passed to a kernel");
  cudaGraphExecDestroy(x);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  cudaFree(y);
}

/* ---- streams and events ------------------------------------------------------------------------ */

static void t_events(void) {
  cudaStream_t s;
  cudaEvent_t a, b, notime, never;
  CT_CHECK(cudaStreamCreate(&s) == cudaSuccess, "stream");
  CT_CHECK(cudaEventCreate(&a) == cudaSuccess && cudaEventCreateWithFlags(&b, cudaEventBlockingSync) == cudaSuccess,
           "events");
  CT_CHECK(cudaEventCreateWithFlags(&notime, cudaEventDisableTiming) == cudaSuccess && cudaEventCreate(&never) == 0,
           "events");
  CT_CHECK(cudaEventCreateWithFlags(&never, cudaEventInterprocess) == cudaErrorInvalidValue,
           "interprocess needs DisableTiming");
  int counter = 0;
  CT_CHECK(cudaEventRecord(a, s) == cudaSuccess, "record");
  CT_CHECK(cudaLaunchHostFunc(s, sleep_20ms, nullptr) == cudaSuccess, "host func");
  CT_CHECK(cudaLaunchHostFunc(s, count_up, &counter) == cudaSuccess && counter == 1, "host funcs run in order");
  CT_CHECK(cudaEventRecord(b, s) == cudaSuccess && cudaEventRecord(notime, s) == cudaSuccess, "record");
  CT_CHECK(cudaEventQuery(b) == cudaSuccess && cudaEventSynchronize(b) == cudaSuccess, "query, synchronize");
  CT_CHECK(cudaStreamQuery(s) == cudaSuccess, "stream query");
  CT_CHECK(cudaStreamWaitEvent(s, a, 0) == cudaSuccess, "wait event");
  float ms = -1;
  CT_CHECK(cudaEventElapsedTime(&ms, a, b) == cudaSuccess, "elapsed: %s", amp_emu_last_error());
  std::printf("elapsed over a 20 ms host function: %.3f ms\n", (double)ms);
  CT_CHECK(ms >= 19.0f && ms < 2000.0f, "elapsed %g ms over a 20 ms sleep", (double)ms);
  CT_CHECK(cudaEventElapsedTime(&ms, a, notime) == cudaErrorInvalidResourceHandle && has("DisableTiming"),
           "timing disabled: %s", amp_emu_last_error());
  CT_CHECK(cudaEventElapsedTime(&ms, a, never) == cudaErrorInvalidResourceHandle && has("never recorded"),
           "never recorded: %s", amp_emu_last_error());
  CT_CHECK(cudaEventRecord(a, nullptr) == cudaSuccess, "record on the legacy stream");
  unsigned flags = 99;
  CT_CHECK(cudaStreamGetFlags(s, &flags) == cudaSuccess && flags == cudaStreamDefault, "flags %u", flags);
  cudaStream_t nb;
  cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking);
  CT_CHECK(cudaStreamGetFlags(nb, &flags) == cudaSuccess && flags == cudaStreamNonBlocking, "flags %u", flags);
  cudaStreamDestroy(nb);
  CT_CHECK(cudaEventDestroy(a) == 0 && cudaEventDestroy(b) == 0 && cudaEventDestroy(notime) == 0 &&
               cudaEventDestroy(never) == 0,
           "destroy");
  CT_CHECK(cudaEventDestroy(a) == cudaErrorInvalidResourceHandle, "event destroyed twice");
  CT_CHECK(cudaEventRecord(a, s) == cudaErrorInvalidResourceHandle, "record a destroyed event");
  cudaStreamDestroy(s);
}

/* ---- capture and graphs ------------------------------------------------------------------------ */

enum { CHAIN_N = 1000, CHAIN_BLOCK = 256, CHAIN_GRID = (CHAIN_N + CHAIN_BLOCK - 1) / CHAIN_BLOCK };

struct chain {
  float *hin, *hout; /* pinned */
  float *x, *y, *sums;
  int host_calls;
};

/* copy in, two kernels (one with barriers), copy out, a host function */
static cudaError_t enqueue_chain(chain *c, cudaStream_t s, float a) {
  cudaError_t e = cudaMemcpyAsync(c->x, c->hin, CHAIN_N * 4, cudaMemcpyHostToDevice, s);
  if (!e) e = AMP_CUDA_LAUNCH_PLAIN(scale, CHAIN_GRID, CHAIN_BLOCK, 0, s, c->y, (const float *)c->x, a, (int)CHAIN_N);
  if (!e) e = AMP_CUDA_LAUNCH(block_sums, CHAIN_GRID, CHAIN_BLOCK, 0, s, (const float *)c->y, c->sums, (int)CHAIN_N);
  if (!e) e = cudaMemcpyAsync(c->hout, c->sums, CHAIN_GRID * 4, cudaMemcpyDeviceToHost, s);
  if (!e) e = cudaLaunchHostFunc(s, count_up, &c->host_calls);
  return e;
}

static bool chain_alloc(chain *c) {
  std::memset(c, 0, sizeof *c);
  return cudaMallocHost((void **)&c->hin, CHAIN_N * 4) == 0 && cudaMallocHost((void **)&c->hout, CHAIN_GRID * 4) == 0 &&
         cudaMalloc((void **)&c->x, CHAIN_N * 4) == 0 && cudaMalloc((void **)&c->y, CHAIN_N * 4) == 0 &&
         cudaMalloc((void **)&c->sums, CHAIN_GRID * 4) == 0;
}

static void chain_free(chain *c) {
  cudaFreeHost(c->hin);
  cudaFreeHost(c->hout);
  cudaFree(c->x);
  cudaFree(c->y);
  cudaFree(c->sums);
}

static void t_capture_replay(void) {
  chain c;
  CT_CHECK(chain_alloc(&c), "alloc: %s", amp_emu_last_error());
  cudaStream_t s, other;
  CT_CHECK(cudaStreamCreate(&s) == 0 && cudaStreamCreate(&other) == 0, "streams");
  /* eager results for three inputs */
  float eager[3][CHAIN_GRID];
  for (int k = 0; k < 3; k++) {
    ct_fill(c.hin, CHAIN_N, 100 + (uint64_t)k, -1.0f, 2.0f);
    CT_CHECK(enqueue_chain(&c, s, 1.5f) == cudaSuccess, "eager: %s", amp_emu_last_error());
    CT_CHECK(cudaStreamSynchronize(s) == cudaSuccess, "sync");
    std::memcpy(eager[k], c.hout, sizeof eager[k]);
    double ref[CHAIN_GRID] = {0};
    for (int i = 0; i < CHAIN_N; i++) ref[i / CHAIN_BLOCK] += 1.5 * c.hin[i] + 0.5;
    float reff[CHAIN_GRID];
    for (int b = 0; b < CHAIN_GRID; b++) reff[b] = (float)ref[b];
    CT_CHECK(ct_rel_l2(eager[k], reff, CHAIN_GRID) < 1e-5, "eager against the host: %g",
             ct_rel_l2(eager[k], reff, CHAIN_GRID));
  }
  CT_CHECK(c.host_calls == 3, "host calls %d", c.host_calls);
  /* capture: nothing runs; the launch keeps the value of `a` it was given */
  for (int b = 0; b < CHAIN_GRID; b++) c.hout[b] = -42.0f;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin: %s", amp_emu_last_error());
  CT_CHECK(cudaStreamIsCapturing(s, &cs) == 0 && cs == cudaStreamCaptureStatusActive, "capturing");
  float a = 1.5f;
  CT_CHECK(enqueue_chain(&c, s, a) == cudaSuccess, "captured: %s", amp_emu_last_error());
  a = 100.0f;
  /* work on another stream is not captured: it runs now */
  int other_calls = 0;
  CT_CHECK(cudaLaunchHostFunc(other, count_up, &other_calls) == cudaSuccess && other_calls == 1,
           "another stream runs during the capture");
  unsigned long long id = 0;
  CT_CHECK(cudaStreamGetCaptureInfo(s, &cs, &id) == 0 && cs == cudaStreamCaptureStatusActive && id != 0, "info");
  cudaGraph_t graph = nullptr;
  CT_CHECK(cudaStreamEndCapture(s, &graph) == cudaSuccess && graph, "end: %s", amp_emu_last_error());
  CT_CHECK(cudaStreamIsCapturing(s, &cs) == 0 && cs == cudaStreamCaptureStatusNone, "capture over");
  CT_CHECK(c.host_calls == 3 && c.hout[0] == -42.0f && c.hout[CHAIN_GRID - 1] == -42.0f,
           "nothing ran during the capture");
  size_t nodes = 0;
  CT_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes) == 0 && nodes == 5, "5 nodes, got %zu", nodes);
  cudaGraphExec_t exec = nullptr;
  CT_CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess && exec, "instantiate");
  CT_CHECK(cudaGraphDestroy(graph) == cudaSuccess, "the executable outlives its graph");
  /* replayed three times, on new inputs, on the capture stream and on another: the eager bits */
  for (int k = 0; k < 3; k++) {
    ct_fill(c.hin, CHAIN_N, 100 + (uint64_t)k, -1.0f, 2.0f);
    for (int b = 0; b < CHAIN_GRID; b++) c.hout[b] = -42.0f;
    CT_CHECK(cudaGraphLaunch(exec, k == 1 ? other : s) == cudaSuccess, "replay %d: %s", k, amp_emu_last_error());
    CT_CHECK(cudaStreamSynchronize(s) == cudaSuccess, "sync");
    CT_CHECK(!std::memcmp(c.hout, eager[k], sizeof eager[k]), "replay %d differs from the eager run (%.9g vs %.9g)", k,
             (double)c.hout[0], (double)eager[k][0]);
  }
  CT_CHECK(c.host_calls == 6, "host function replayed: %d", c.host_calls);
  /* a graph launched inside a capture replays as one node */
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == 0, "begin");
  CT_CHECK(cudaGraphLaunch(exec, s) == 0 && cudaGraphLaunch(exec, s) == 0, "graph launches captured");
  CT_CHECK(cudaStreamEndCapture(s, &graph) == 0, "end");
  CT_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes) == 0 && nodes == 2 && c.host_calls == 6, "2 nodes, none ran");
  cudaGraphExec_t outer;
  CT_CHECK(cudaGraphInstantiateWithFlags(&outer, graph, 0) == 0 && cudaGraphLaunch(outer, s) == 0, "outer: %s",
           amp_emu_last_error());
  CT_CHECK(c.host_calls == 8 && !std::memcmp(c.hout, eager[2], sizeof eager[2]), "outer graph replays both");
  CT_CHECK(cudaGraphExecDestroy(outer) == 0 && cudaGraphDestroy(graph) == 0, "destroy");
  CT_CHECK(cudaGraphExecDestroy(outer) == cudaErrorInvalidValue && cudaGraphDestroy(graph) == cudaErrorInvalidValue,
           "destroyed twice");
  CT_CHECK(cudaGraphLaunch(outer, s) == cudaErrorInvalidResourceHandle, "a destroyed executable");
  /* a recorded launch keeps its own copy of the arguments; an external event record is a node */
  float scale_a = 3.0f;
  int n1 = 1;
  cudaEvent_t ext;
  CT_CHECK(cudaEventCreate(&ext) == 0, "event");
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "begin");
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(scale, 1, 32, 0, s, c.sums, (const float *)c.x, scale_a, n1) == 0, "captured");
  CT_CHECK(cudaEventRecordWithFlags(ext, s, cudaEventRecordExternal) == 0, "external record");
  CT_CHECK(cudaStreamEndCapture(s, &graph) == 0, "end");
  scale_a = 100.0f;
  n1 = 0;
  float ms = 0;
  CT_CHECK(cudaEventElapsedTime(&ms, ext, ext) == cudaErrorInvalidResourceHandle, "not recorded before the replay");
  cudaGraphExec_t small;
  CT_CHECK(cudaGraphInstantiate(&small, graph, 0) == 0 && cudaGraphLaunch(small, s) == 0, "replay: %s",
           amp_emu_last_error());
  float got = 0, x0 = 0;
  cudaMemcpy(&got, c.sums, 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(&x0, c.x, 4, cudaMemcpyDeviceToHost);
  CT_CHECK(got == 3.0f * x0 + 0.5f, "the replay used a = %g (expected 3)", (double)((got - 0.5f) / x0));
  CT_CHECK(cudaEventElapsedTime(&ms, ext, ext) == cudaSuccess && ms == 0.0f, "the replay recorded the event");
  cudaGraphExecDestroy(small);
  cudaGraphDestroy(graph);
  cudaEventDestroy(ext);
  /* PLANTED BUG: a pointer the graph holds is freed before a replay */
  cudaFree(c.y);
  cudaError_t e = cudaGraphLaunch(exec, s);
  std::string msg = amp_emu_last_error();
  std::printf("planted bug: freed pointer in a replay -> %s\n", msg.c_str());
  CT_CHECK(cudaMalloc((void **)&c.y, CHAIN_N * 4) == 0, "realloc");
  CT_CHECK(e == cudaErrorInvalidDevicePointer && msg.find("graph node 1 of 5 (scale)") != std::string::npos &&
               msg.find("freed earlier") != std::string::npos,
           "replay with a freed pointer: %d %s", (int)e, msg.c_str());
  cudaGraphExecDestroy(exec);
  cudaStreamDestroy(s);
  cudaStreamDestroy(other);
  chain_free(&c);
}

/* PLANTED BUGS: a synchronising call during capture fails and invalidates the capture; the
 * capture then ends with no graph. */
static void t_capture_sync_refused(void) {
  chain c;
  CT_CHECK(chain_alloc(&c), "alloc");
  cudaStream_t s;
  cudaEvent_t ev;
  CT_CHECK(cudaStreamCreate(&s) == 0 && cudaEventCreate(&ev) == 0, "stream, event");
  void *tmp = nullptr;
  float host = 0;
  const char *names[] = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemset", "cudaMalloc",
                         "cudaFree", "cudaEventSynchronize", "cudaStreamQuery", "cudaMallocHost", "cudaEventQuery"};
  for (int k = 0; k < 10; k++) {
    CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "begin %d", k);
    CT_CHECK(enqueue_chain(&c, s, 1.0f) == cudaSuccess, "captured");
    CT_CHECK(cudaEventRecord(ev, s) == 0, "record in the capture");
    cudaError_t e = cudaSuccess;
    switch (k) {
      case 0: e = cudaStreamSynchronize(s); break;
      case 1: e = cudaDeviceSynchronize(); break;
      case 2: e = cudaMemcpy(&host, c.sums, 4, cudaMemcpyDeviceToHost); break;
      case 3: e = cudaMemset(c.sums, 0, 4); break;
      case 4: e = cudaMalloc(&tmp, 64); break;
      case 5: e = cudaFree(c.sums); break;
      case 6: e = cudaEventSynchronize(ev); break;
      case 7: e = cudaStreamQuery(s); break;
      case 8: e = cudaMallocHost(&tmp, 64); break;
      case 9: e = cudaEventQuery(ev); break;
    }
    std::string msg = amp_emu_last_error();
    if (k == 0) std::printf("planted bug: sync during capture -> %s\n", msg.c_str());
    /* a copy or memset without Async is work on the legacy stream, which waits for the blocking s */
    cudaError_t want = k == 2 || k == 3 ? cudaErrorStreamCaptureImplicit : cudaErrorStreamCaptureUnsupported;
    CT_CHECK(e == want && msg.find(names[k]) != std::string::npos, "%s: %d %s", names[k], (int)e, msg.c_str());
    cudaStreamCaptureStatus cs;
    CT_CHECK(cudaStreamIsCapturing(s, &cs) == 0 && cs == cudaStreamCaptureStatusInvalidated, "%s: status %d",
             names[k], (int)cs);
    CT_CHECK(cudaMemsetAsync(c.sums, 0, 4, s) == cudaErrorStreamCaptureInvalidated, "%s: work after invalidation",
             names[k]);
    cudaGraph_t g = (cudaGraph_t)&host;
    e = cudaStreamEndCapture(s, &g);
    CT_CHECK(e == cudaErrorStreamCaptureInvalidated && g == nullptr && has(names[k]), "%s: end %d (%s)", names[k],
             (int)e, amp_emu_last_error());
    CT_CHECK(c.host_calls == 0, "%s: nothing of the capture ran", names[k]);
  }
  CT_CHECK(amp_emu_is_device(c.sums, 4) && tmp == nullptr, "the refused free and allocations did nothing");
  /* relaxed mode permits allocations; the capture stays valid */
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == 0, "relaxed");
  CT_CHECK(cudaMalloc(&tmp, 64) == cudaSuccess && cudaFree(tmp) == cudaSuccess, "relaxed allows cudaMalloc: %s",
           amp_emu_last_error());
  cudaGraph_t g = nullptr;
  CT_CHECK(cudaStreamEndCapture(s, &g) == 0 && g, "relaxed end");
  cudaGraphDestroy(g);
  /* so does a thread that exchanged its mode for relaxed */
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "global");
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  CT_CHECK(cudaThreadExchangeStreamCaptureMode(&mode) == 0 && mode == cudaStreamCaptureModeGlobal, "exchange");
  CT_CHECK(cudaMalloc(&tmp, 64) == cudaSuccess && cudaFree(tmp) == cudaSuccess, "exchanged mode: %s",
           amp_emu_last_error());
  cudaThreadExchangeStreamCaptureMode(&mode);
  CT_CHECK(cudaStreamEndCapture(s, &g) == 0 && g, "end");
  cudaGraphDestroy(g);
  cudaEventDestroy(ev);
  cudaStreamDestroy(s);
  chain_free(&c);
}

static void t_capture_rules(void) {
  cudaStream_t s, nb;
  CT_CHECK(cudaStreamCreate(&s) == 0 && cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking) == 0, "streams");
  float *d = nullptr;
  CT_CHECK(cudaMalloc((void **)&d, 64) == 0, "alloc");
  CT_CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal) == cudaErrorStreamCaptureUnsupported,
           "the legacy stream cannot capture");
  CT_CHECK(cudaStreamBeginCapture(s, (cudaStreamCaptureMode)9) == cudaErrorInvalidValue, "bad mode");
  cudaGraph_t g = nullptr;
  CT_CHECK(cudaStreamEndCapture(s, &g) == cudaErrorIllegalState && g == nullptr, "end without a capture");
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "begin");
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaErrorIllegalState, "begin twice");
  CT_CHECK(cudaStreamDestroy(s) == cudaErrorIllegalState, "a capturing stream is not destroyed");
  /* ending a global-mode capture from another thread */
  cudaError_t other = cudaSuccess;
  std::thread t([&]() {
    cudaGraph_t g2 = nullptr;
    other = cudaStreamEndCapture(s, &g2);
  });
  t.join();
  CT_CHECK(other == cudaErrorStreamCaptureWrongThread, "another thread: %d", (int)other);
  /* a global-mode capture forbids unsafe calls on every thread */
  void *m = nullptr;
  cudaError_t other_malloc = cudaSuccess;
  std::thread t2([&]() { other_malloc = cudaMalloc(&m, 16); });
  t2.join();
  CT_CHECK(other_malloc == cudaErrorStreamCaptureUnsupported && m == nullptr, "cudaMalloc on another thread: %d",
           (int)other_malloc);
  CT_CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated, "invalidated from another thread");
  /* a thread-local one only on its own thread */
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == 0, "begin thread-local");
  std::thread t3([&]() {
    other_malloc = cudaMalloc(&m, 16);
    if (other_malloc == cudaSuccess) other_malloc = cudaFree(m);
  });
  t3.join();
  CT_CHECK(other_malloc == cudaSuccess, "cudaMalloc on another thread beside a thread-local capture: %d",
           (int)other_malloc);
  CT_CHECK(cudaStreamEndCapture(s, &g) == 0 && g, "thread-local capture still valid");
  cudaGraphDestroy(g);
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "begin");
  /* the legacy stream waits for blocking streams: work on it invalidates their capture */
  CT_CHECK(cudaMemsetAsync(d, 0, 64, nullptr) == cudaErrorStreamCaptureImplicit, "legacy stream: %s",
           amp_emu_last_error());
  CT_CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && g == nullptr, "invalidated");
  /* a non-blocking stream's capture does not mind the legacy stream */
  CT_CHECK(cudaStreamBeginCapture(nb, cudaStreamCaptureModeThreadLocal) == 0, "begin non-blocking");
  CT_CHECK(cudaMemsetAsync(d, 0, 64, nullptr) == cudaSuccess, "legacy stream beside a non-blocking capture: %s",
           amp_emu_last_error());
  cudaStreamCaptureMode relaxed = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&relaxed);
  CT_CHECK(cudaMemset(d, 0, 64) == cudaSuccess, "cudaMemset beside a non-blocking capture, relaxed thread: %s",
           amp_emu_last_error());
  cudaThreadExchangeStreamCaptureMode(&relaxed);
  cudaEvent_t ev;
  cudaEventCreate(&ev);
  CT_CHECK(cudaEventRecord(ev, nb) == 0, "record in the capture");
  CT_CHECK(cudaStreamWaitEvent(nb, ev, 0) == cudaSuccess, "a wait inside the capture");
  CT_CHECK(cudaStreamWaitEvent(s, ev, 0) == cudaErrorNotSupported && has("joining"), "a join: %s", amp_emu_last_error());
  float ms;
  CT_CHECK(cudaEventElapsedTime(&ms, ev, ev) == cudaErrorStreamCaptureUnsupported, "elapsed on a captured event");
  CT_CHECK(cudaStreamEndCapture(nb, &g) == 0 && g, "end: %s", amp_emu_last_error());
  size_t n = 9;
  CT_CHECK(cudaGraphGetNodes(g, nullptr, &n) == 0 && n == 0, "a plain event record adds no node: %zu", n);
  cudaGraphDestroy(g);
  CT_CHECK(cudaEventQuery(ev) == cudaSuccess, "after the capture, the event blocks nothing");
  /* a launch refused while capturing leaves the capture valid (its error is the caller's) */
  CT_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == 0, "begin");
  CT_CHECK(AMP_CUDA_LAUNCH_PLAIN(scale, 1, 2048, 0, s, d, (const float *)d, 1.0f, 16) ==
               cudaErrorInvalidConfiguration,
           "bad block");
  CT_CHECK(cudaStreamEndCapture(s, &g) == 0 && g, "end");
  CT_CHECK(cudaGraphGetNodes(g, nullptr, &n) == 0 && n == 0, "the refused launch was not recorded");
  cudaGraphDestroy(g);
  /* cudaStreamPerThread captures; a thread that ends mid-capture takes its capture with it */
  CT_CHECK(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal) == 0, "per-thread stream");
  CT_CHECK(cudaMemsetAsync(d, 0, 64, cudaStreamPerThread) == 0, "captured");
  CT_CHECK(cudaStreamEndCapture(cudaStreamPerThread, &g) == 0 && g, "end");
  cudaGraphExec_t x;
  CT_CHECK(cudaGraphInstantiate(&x, g, 0) == 0 && cudaGraphUpload(x, s) == 0 && cudaGraphLaunch(x, s) == 0, "launch");
  cudaGraphExecDestroy(x);
  cudaGraphDestroy(g);
  std::thread t4([]() { cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal); });
  t4.join();
  void *after = nullptr;
  CT_CHECK(cudaMalloc(&after, 16) == cudaSuccess && cudaFree(after) == cudaSuccess,
           "a capture whose thread ended forbids nothing: %s", amp_emu_last_error());
  cudaEventDestroy(ev);
  cudaFree(d);
  CT_CHECK(cudaStreamDestroy(s) == 0 && cudaStreamDestroy(nb) == 0, "destroy");
}

/* What a launch costs on the emulator: directly, through a stream, and replayed from a graph
 * (printed, for the record; the check is that every way computes the same). */
static void t_launch_cost(void) {
  const int n = 32, reps = 20000;
  float *x = nullptr, *y = nullptr;
  CT_CHECK(cudaMalloc((void **)&x, n * 4) == 0 && cudaMalloc((void **)&y, n * 4) == 0, "alloc");
  cudaMemset(x, 0, n * 4);
  cudaStream_t s;
  cudaStreamCreate(&s);
  using clk = std::chrono::steady_clock;
  auto t0 = clk::now();
  int bad = 0;
  for (int r = 0; r < reps; r++) bad += AMP_EMU_LAUNCH_PLAIN(scale, 1, n, 0, nullptr, y, (const float *)x, 1.0f, n) != 0;
  auto t1 = clk::now();
  for (int r = 0; r < reps; r++) bad += AMP_CUDA_LAUNCH_PLAIN(scale, 1, n, 0, s, y, (const float *)x, 1.0f, n) != 0;
  auto t2 = clk::now();
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  for (int r = 0; r < 100; r++) bad += AMP_CUDA_LAUNCH_PLAIN(scale, 1, n, 0, s, y, (const float *)x, 1.0f, n) != 0;
  cudaGraph_t g = nullptr;
  cudaGraphExec_t e = nullptr;
  bad += cudaStreamEndCapture(s, &g) != 0 || cudaGraphInstantiate(&e, g, 0) != 0;
  auto t3 = clk::now();
  for (int r = 0; r < reps / 100; r++) bad += cudaGraphLaunch(e, s) != 0;
  auto t4 = clk::now();
  float out = 0;
  cudaMemcpy(&out, y, 4, cudaMemcpyDeviceToHost);
  cudaGraphExecDestroy(e);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  cudaFree(x);
  cudaFree(y);
  auto us = [](clk::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  std::printf("launch of 32 threads: direct %.2f us, through a stream %.2f us, from a graph %.2f us a node\n",
              us(t1 - t0) / reps, us(t2 - t1) / reps, us(t4 - t3) / reps);
  CT_CHECK(bad == 0 && out == 0.5f, "%d failed launches, y[0] %g", bad, (double)out);
}

/* ---- the device ------------------------------------------------------------------------------ */

static void t_device(void) {
  int count = 0, v = 0;
  CT_CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == 1, "one device");
  cudaDeviceProp p;
  CT_CHECK(cudaGetDeviceProperties(&p, 0) == cudaSuccess, "properties");
  CT_CHECK(!std::strcmp(p.name, "NVIDIA H100 80GB HBM3") && p.major == 9 && p.minor == 0, "%s cc %d.%d", p.name, p.major,
           p.minor);
  CT_CHECK(p.multiProcessorCount == 132 && p.warpSize == 32 && p.sharedMemPerBlock == 49152 &&
               p.sharedMemPerBlockOptin == 232448 && p.totalGlobalMem == 85029158912ull && p.l2CacheSize == 52428800,
           "H100 values");
  CT_CHECK(cudaGetDeviceProperties(&p, 1) == cudaErrorInvalidDevice, "device 1");
  CT_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0) == 0 && v == 132, "SMs %d", v);
  CT_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, 0) == 0 && v == 9, "major %d", v);
  CT_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == 0 && v == 232448, "optin %d", v);
  CT_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, 0) == 0 && v == 1980000, "clock %d", v);
  CT_CHECK(cudaDeviceGetAttribute(&v, (cudaDeviceAttr)9999, 0) == cudaErrorInvalidValue && has("9999"), "unknown");
  int dev = -1;
  CT_CHECK(cudaSetDevice(0) == 0 && cudaGetDevice(&dev) == 0 && dev == 0 && cudaSetDevice(1) == cudaErrorInvalidDevice,
           "device 0 only");
  /* the "no device" path */
  setenv("AMP_EMU_NO_DEVICE", "1", 1);
  count = 5;
  cudaError_t e = cudaGetDeviceCount(&count);
  void *m = nullptr;
  cudaError_t em = cudaMalloc(&m, 16);
  cudaStream_t s;
  cudaError_t es = cudaStreamCreate(&s);
  unsetenv("AMP_EMU_NO_DEVICE");
  CT_CHECK(e == cudaErrorNoDevice && count == 0, "AMP_EMU_NO_DEVICE: %d, count %d", (int)e, count);
  CT_CHECK(em == cudaErrorNoDevice && m == nullptr && es == cudaErrorNoDevice, "no device to allocate on");
  CT_CHECK(cudaGetDeviceCount(&count) == 0 && count == 1, "the device is back");
}

static const ct_case cases[] = {
    {"registry", t_registry},
    {"device_limit", t_device_limit},
    {"pinned", t_pinned},
    {"poison", t_poison},
    {"copies", t_copies},
    {"launch", t_launch},
    {"bad_pointers", t_bad_pointers},
    {"dynamic_shared", t_dynamic_shared},
    {"symbols", t_symbols},
    {"events", t_events},
    {"capture_replay", t_capture_replay},
    {"capture_sync_refused", t_capture_sync_refused},
    {"capture_rules", t_capture_rules},
    {"device", t_device},
    {"launch_cost", t_launch_cost},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ct_main(argc, argv, cases); }
