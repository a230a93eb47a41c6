/* The emulator's fake CUDA runtime (fake_runtime.h): device and pinned memory as registries of
 * host regions, copies, streams that run their work when it is enqueued or record it while they
 * capture, events, graphs, the device's properties. */
/* the emulator's spellings first: the toolkit's headers keep them */
#include "backends/cuda/emu/cuda_emu.h"
#include "backends/cuda/emu/fake_runtime.h"

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

/* ---- memory registries ---------------------------------------------------------------------- */

using region_map = std::map<uintptr_t, size_t>; /* start -> bytes */

struct registry {
  std::mutex mu;
  region_map regions; /* live device memory */
  region_map freed;   /* device memory freed earlier, for messages only (no memory behind it) */
  region_map pinned;  /* live pinned host memory */
  size_t bytes = 0;
  size_t limit = 0;
};

registry &reg() {
  static registry r;
  return r;
}

thread_local cudaError_t last_error = cudaSuccess;

/* Fails a call: the status for cudaGetLastError, the message for amp_emu_last_error. */
cudaError_t fail(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t fail(cudaError_t e, const char *fmt, ...) {
  last_error = e;
  char msg[480];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  amp_emu_set_error("%s (%s)", msg, cudaGetErrorName(e));
  return e;
}

/* the region holding [p, p + n), or m.end() */
region_map::iterator find_region(region_map &m, const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p;
  auto it = m.upper_bound(a);
  if (it == m.begin()) return m.end();
  --it;
  if (a - it->first > it->second || n > it->second - (a - it->first)) return m.end();
  return it;
}

bool in_map(region_map &m, const void *p, size_t n) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  return find_region(m, p, n) != m.end();
}

bool is_device(const void *p, size_t n) { return in_map(reg().regions, p, n); }

/* Forgets freed ranges that [a, a + n) reuses, so that a message never calls live memory freed. */
void forget_freed(registry &r, uintptr_t a, size_t n) {
  auto it = r.freed.lower_bound(a);
  if (it != r.freed.begin() && std::prev(it)->first + std::prev(it)->second > a) --it;
  while (it != r.freed.end() && it->first < a + n) it = r.freed.erase(it);
}

bool no_device() {
  const char *v = std::getenv("AMP_EMU_NO_DEVICE");
  return v && v[0] && std::strcmp(v, "0") != 0;
}

#define AMP_EMU_NEED_DEVICE(call)                                                                       \
  do {                                                                                                  \
    if (no_device()) return fail(cudaErrorNoDevice, "%s: no device (AMP_EMU_NO_DEVICE is set)", call); \
  } while (0)

/* ---- streams, captures, events, graphs -------------------------------------------------------- */

struct node {
  std::string what;
  std::function<cudaError_t()> work;
};
using node_list = std::vector<node>;

struct capture {
  unsigned long long id;
  cudaStreamCaptureMode mode;
  std::thread::id thread;
  bool invalidated = false;
  std::string why; /* the call that invalidated it */
  node_list nodes;
};

struct fake_stream {
  unsigned flags = cudaStreamDefault;
  int priority = 0;
  bool legacy = false;
  std::unique_ptr<capture> cap; /* while capturing */
  ~fake_stream();               /* a thread's cudaStreamPerThread may end while it captures */
};

struct fake_event {
  unsigned flags = cudaEventDefault;
  bool recorded = false;
  std::chrono::steady_clock::time_point when;
  unsigned long long capture_id = 0; /* last recorded inside this capture (0: outside any) */
};

struct fake_graph {
  node_list nodes;
};

struct fake_exec {
  std::shared_ptr<const node_list> nodes;
};

struct state {
  std::mutex mu;
  fake_stream legacy;
  std::set<fake_stream *> streams; /* created ones */
  std::set<fake_event *> events;
  std::set<fake_graph *> graphs;
  std::set<fake_exec *> execs;
  std::set<capture *> captures; /* under way */
  unsigned long long next_capture = 1;
  std::map<const void *, int> max_dynamic_shared; /* cudaFuncSetAttribute */
  state() { legacy.legacy = true; }
};

state &st() {
  static state s;
  return s;
}

/* cudaStreamDestroy refuses a capturing stream, so only a thread's own cudaStreamPerThread
 * gets here with a capture, when the thread ends (st().mu is not held then) */
fake_stream::~fake_stream() {
  if (!cap) return;
  std::lock_guard<std::mutex> g(st().mu);
  st().captures.erase(cap.get());
}

thread_local fake_stream t_per_thread; /* cudaStreamPerThread */
thread_local cudaStreamCaptureMode t_mode = cudaStreamCaptureModeGlobal;

/* the stream behind a handle (0 and cudaStreamLegacy: the legacy stream), or NULL; st().mu held */
fake_stream *lookup_stream(cudaStream_t h) {
  state &s = st();
  if (h == nullptr || h == cudaStreamLegacy) return &s.legacy;
  if (h == cudaStreamPerThread) return &t_per_thread;
  fake_stream *f = reinterpret_cast<fake_stream *>(h);
  return s.streams.count(f) ? f : nullptr;
}

fake_event *lookup_event(cudaEvent_t h) {
  fake_event *e = reinterpret_cast<fake_event *>(h);
  return st().events.count(e) ? e : nullptr;
}

/* f, e: the stream or event behind handle h, or the call fails naming it; st().mu held */
#define AMP_EMU_LIVE_STREAM(f, h, call)                                                                   \
  fake_stream *f = lookup_stream(h);                                                                      \
  if (!f) return fail(cudaErrorInvalidResourceHandle, "%s: %p is not a live stream", call, (void *)(h))
#define AMP_EMU_LIVE_EVENT(e, h, call)                                                                    \
  fake_event *e = lookup_event(h);                                                                        \
  if (!e) return fail(cudaErrorInvalidResourceHandle, "%s: %p is not a live event", call, (void *)(h))

bool capture_live(unsigned long long id) {
  for (capture *c : st().captures)
    if (c->id == id) return true;
  return false;
}

capture *capture_by_id(unsigned long long id) {
  for (capture *c : st().captures)
    if (c->id == id) return c;
  return nullptr;
}

void invalidate(capture *c, const char *call) {
  if (c->invalidated) return;
  c->invalidated = true;
  c->why = call;
}

const char *mode_name(cudaStreamCaptureMode m) {
  switch (m) {
    case cudaStreamCaptureModeGlobal: return "global";
    case cudaStreamCaptureModeThreadLocal: return "thread-local";
    case cudaStreamCaptureModeRelaxed: return "relaxed";
  }
  return "?";
}

/* A potentially unsafe call (one that allocates, frees or synchronises outside stream order):
 * refused, with the captures it conflicts with invalidated, when this thread's mode and the
 * captures' modes forbid it (cudaThreadExchangeStreamCaptureMode's rules). st().mu held. */
cudaError_t check_unsafe(const char *call) {
  if (t_mode == cudaStreamCaptureModeRelaxed) return cudaSuccess;
  std::thread::id self = std::this_thread::get_id();
  capture *hit = nullptr;
  for (capture *c : st().captures) {
    bool local = c->thread == self && c->mode != cudaStreamCaptureModeRelaxed;
    bool other = t_mode == cudaStreamCaptureModeGlobal && c->thread != self && c->mode == cudaStreamCaptureModeGlobal;
    if (local || other) {
      invalidate(c, call);
      if (!hit) hit = c;
    }
  }
  if (!hit)
    return cudaSuccess;
  return fail(cudaErrorStreamCaptureUnsupported,
              "%s while a stream captures (capture %llu, %s mode): not permitted, and the capture is invalidated",
              call, hit->id, mode_name(hit->mode));
}

/* check_unsafe, taking the lock */
cudaError_t unsafe_call(const char *call) {
  std::lock_guard<std::mutex> g(st().mu);
  return check_unsafe(call);
}

/* Work on the legacy stream waits for every blocking stream: refused, with their captures
 * invalidated, while one of them captures. st().mu held. */
cudaError_t check_legacy(fake_stream *f, const char *call) {
  if (!f->legacy) return cudaSuccess;
  capture *hit = nullptr;
  auto visit = [&](fake_stream *o) {
    if (o->cap && !(o->flags & cudaStreamNonBlocking)) {
      invalidate(o->cap.get(), call);
      if (!hit) hit = o->cap.get();
    }
  };
  for (fake_stream *o : st().streams) visit(o);
  visit(&t_per_thread);
  if (!hit) return cudaSuccess;
  return fail(cudaErrorStreamCaptureImplicit,
              "%s on the legacy default stream while a blocking stream captures (capture %llu): the capture is "
              "invalidated",
              call, hit->id);
}

/* A copy or memset without Async: work on the legacy stream that it waits for (the driver's
 * cudaErrorStreamCaptureImplicit while a blocking stream captures), and refused as unsafe beside
 * other captures too, which is stricter than the driver. */
std::atomic<unsigned long long> g_alloc_calls{0}, g_sync_calls{0};
/* stream work that ran, eagerly or as a graph node: kernels, library calls, copies, memsets (a
 * graph launch itself is not counted: its nodes are) */
std::atomic<unsigned long long> g_ran[4];

void count_ran(const char *what) {
  if (std::strcmp(what, "cudaGraphLaunch") == 0) return;
  int kind = 0;
  if (std::strncmp(what, "cublas", 6) == 0 || std::strncmp(what, "cudnn", 5) == 0) kind = 1;
  else if (std::strncmp(what, "cudaMemcpy", 10) == 0) kind = 2;
  else if (std::strncmp(what, "cudaMemset", 10) == 0) kind = 3;
  g_ran[kind]++;
  static const bool trace = [] {
    const char *v = std::getenv("AMP_EMU_TRACE");
    return v && v[0] && std::strcmp(v, "0") != 0;
  }();
  if (trace) std::fprintf(stderr, "amp-emu: ran %s\n", what);
}

cudaError_t sync_call(const char *call) {
  g_sync_calls++;
  std::lock_guard<std::mutex> g(st().mu);
  cudaError_t e = check_legacy(&st().legacy, call);
  return e != cudaSuccess ? e : check_unsafe(call);
}

/* Runs a graph's nodes in order; the first failure stops it. No lock held. */
cudaError_t replay(const node_list &nodes) {
  for (size_t i = 0; i < nodes.size(); i++) {
    count_ran(nodes[i].what.c_str());
    cudaError_t e = nodes[i].work();
    if (e != cudaSuccess) {
      std::string inner = amp_emu_last_error(); /* names the status already */
      last_error = e;
      amp_emu_set_error("graph node %zu of %zu (%s) failed: %s", i, nodes.size(), nodes[i].what.c_str(), inner.c_str());
      return e;
    }
  }
  return cudaSuccess;
}

/* Where the next piece of work on a stream goes. */
enum submit_kind { SUBMIT_RUN, SUBMIT_RECORDED, SUBMIT_FAILED };

/* Records work on a capturing stream, or says it must run now; st().mu held. */
submit_kind submit(fake_stream *f, const char *what, std::function<cudaError_t()> &work, cudaError_t *err) {
  if (f->cap) {
    if (f->cap->invalidated) {
      *err = fail(cudaErrorStreamCaptureInvalidated, "%s on a stream whose capture was invalidated by %s", what,
                  f->cap->why.c_str());
      return SUBMIT_FAILED;
    }
    f->cap->nodes.push_back(node{what, std::move(work)});
    return SUBMIT_RECORDED;
  }
  *err = check_legacy(f, what);
  return *err == cudaSuccess ? SUBMIT_RUN : SUBMIT_FAILED;
}

cudaError_t enqueue(cudaStream_t stream, const char *what, std::function<cudaError_t()> work) {
  {
    std::lock_guard<std::mutex> g(st().mu);
    AMP_EMU_LIVE_STREAM(f, stream, what);
    cudaError_t e = cudaSuccess;
    switch (submit(f, what, work, &e)) {
      case SUBMIT_RECORDED: return cudaSuccess;
      case SUBMIT_FAILED: return e;
      case SUBMIT_RUN: break;
    }
  }
  count_ran(what);
  cudaError_t e = work();
  if (e != cudaSuccess) last_error = e;
  return e;
}

const char *kind_name(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    case cudaMemcpyDefault: return "Default";
  }
  return "?";
}

/* The rows of a (possibly 2-D) copy: `height` rows of `width` bytes, `pitch` apart. */
struct span2d {
  const void *p;
  size_t pitch;
};

/* Why p (the start of a range that is not inside one device region) is not device memory. */
const char *why_not_device(const void *p) {
  return is_device(p, 0) ? "past the end of its device region" : amp_emu_pointer_kind(p);
}

std::atomic<bool> g_pinned_only{false};

/* Whether the device or host sides of a copy are what its kind says; with amp_emu_set_pinned_only,
 * the host sides of an async copy must be pinned. */
cudaError_t check_copy(const char *call, span2d dst, span2d src, size_t width, size_t height, cudaMemcpyKind kind,
                       bool async) {
  if (width == 0 || height == 0) return cudaSuccess;
  if (!dst.p || !src.p) return fail(cudaErrorInvalidValue, "%s: NULL %s", call, dst.p ? "source" : "destination");
  size_t dn = dst.pitch * (height - 1) + width, sn = src.pitch * (height - 1) + width;
  bool dd = is_device(dst.p, dn), sd = is_device(src.p, sn);
  bool want_dd, want_sd;
  switch (kind) {
    case cudaMemcpyHostToDevice: want_dd = true, want_sd = false; break;
    case cudaMemcpyDeviceToHost: want_dd = false, want_sd = true; break;
    case cudaMemcpyDeviceToDevice: want_dd = want_sd = true; break;
    case cudaMemcpyHostToHost: want_dd = want_sd = false; break;
    case cudaMemcpyDefault: want_dd = dd, want_sd = sd; break;
    default: return fail(cudaErrorInvalidMemcpyDirection, "%s: copy kind %d is none of cudaMemcpyKind's", call, (int)kind);
  }
  if (dd != want_dd)
    return fail(cudaErrorInvalidValue, "%s(%s): destination %p (%zu bytes) is %s", call, kind_name(kind), dst.p, dn,
                want_dd ? why_not_device(dst.p) : "device memory, not host memory");
  if (sd != want_sd)
    return fail(cudaErrorInvalidValue, "%s(%s): source %p (%zu bytes) is %s", call, kind_name(kind), src.p, sn,
                want_sd ? why_not_device(src.p) : "device memory, not host memory");
  if (async && g_pinned_only.load()) {
    registry &r = reg();
    if (!dd && !in_map(r.pinned, dst.p, dn))
      return fail(cudaErrorInvalidValue, "%s(%s): destination %p (%zu bytes) is pageable host memory; async copies "
                  "take pinned host memory only (amp_emu_set_pinned_only)", call, kind_name(kind), dst.p, dn);
    if (!sd && !in_map(r.pinned, src.p, sn))
      return fail(cudaErrorInvalidValue, "%s(%s): source %p (%zu bytes) is pageable host memory; async copies "
                  "take pinned host memory only (amp_emu_set_pinned_only)", call, kind_name(kind), src.p, sn);
  }
  return cudaSuccess;
}

cudaError_t copy2d(const char *call, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                   size_t height, cudaMemcpyKind kind, bool async) {
  cudaError_t e = check_copy(call, span2d{dst, dpitch}, span2d{src, spitch}, width, height, kind, async);
  if (e != cudaSuccess) return e;
  for (size_t r = 0; r < height && width; r++) std::memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
  return cudaSuccess;
}

cudaError_t memset_checked(const char *call, void *p, int value, size_t n) {
  if (n == 0) return cudaSuccess;
  if (!is_device(p, n))
    return fail(cudaErrorInvalidValue, "%s: %p (%zu bytes) is %s", call, p, n,
                why_not_device(p));
  std::memset(p, value, n);
  return cudaSuccess;
}

void fill_properties(cudaDeviceProp *p) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "NVIDIA H100 80GB HBM3");
  p->totalGlobalMem = 85029158912ull;
  p->sharedMemPerBlock = 48 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->memPitch = 2147483647;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
  p->totalConstMem = 65536;
  p->major = 9;
  p->minor = 0;
  p->textureAlignment = 512;
  p->texturePitchAlignment = 32;
  p->multiProcessorCount = 132;
  p->canMapHostMemory = 1;
  p->concurrentKernels = 1;
  p->ECCEnabled = 1;
  p->asyncEngineCount = 3;
  p->unifiedAddressing = 1;
  p->memoryBusWidth = 5120;
  p->l2CacheSize = 52428800;
  p->persistingL2CacheMaxSize = 32505856;
  p->maxThreadsPerMultiProcessor = 2048;
  p->streamPrioritiesSupported = 1;
  p->globalL1CacheSupported = 1;
  p->localL1CacheSupported = 1;
  p->sharedMemPerMultiprocessor = 233472;
  p->regsPerMultiprocessor = 65536;
  p->managedMemory = 1;
  p->computePreemptionSupported = 1;
  p->cooperativeLaunch = 1;
  p->sharedMemPerBlockOptin = 232448;
  p->maxBlocksPerMultiProcessor = 32;
  p->accessPolicyMaxWindowSize = 134213632;
  p->reservedSharedMemPerBlock = 1024;
  p->hostRegisterSupported = 1;
  p->memoryPoolsSupported = 1;
  p->clusterLaunch = 1;
  p->unifiedFunctionPointers = 1;
  p->hostNumaId = -1;
  p->deviceNumaId = -1;
}

const int kClockKHz = 1980000, kMemClockKHz = 2619000;

}  // namespace

extern "C" {

bool amp_emu_is_device(const void *p, size_t bytes) { return is_device(p, bytes); }

bool amp_emu_is_pinned(const void *p, size_t bytes) { return in_map(reg().pinned, p, bytes); }

const char *amp_emu_pointer_kind(const void *p) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  if (find_region(r.regions, p, 0) != r.regions.end()) return "device memory";
  if (find_region(r.pinned, p, 0) != r.pinned.end()) return "pinned host memory (cudaMallocHost), not device memory";
  if (find_region(r.freed, p, 0) != r.freed.end())
    return "not device memory: device memory freed earlier (cudaFree), or host memory now at a freed address";
  return "host memory, not device memory";
}

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

size_t amp_emu_pinned_regions(void) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  return r.pinned.size();
}

bool amp_emu_set_pinned_only(bool on) { return g_pinned_only.exchange(on); }

size_t amp_emu_set_device_limit(size_t bytes) {
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  size_t old = r.limit;
  r.limit = bytes;
  return old;
}

bool amp_emu_poison(void *p, size_t n) {
  if (n == 0) return is_device(p, 0);
  if (!is_device(p, n)) return false;
  std::memset(p, 0xff, n);
  return true;
}

/* ---- errors ------------------------------------------------------------------------------- */

cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

#define AMP_EMU_ERRORS(X)                                                                                          \
  X(cudaSuccess, "no error")                                                                                       \
  X(cudaErrorInvalidValue, "invalid argument")                                                                     \
  X(cudaErrorMemoryAllocation, "out of memory")                                                                    \
  X(cudaErrorInitializationError, "initialization error")                                                          \
  X(cudaErrorInvalidConfiguration, "invalid configuration argument")                                               \
  X(cudaErrorLaunchOutOfResources, "too many resources requested for launch")                                      \
  X(cudaErrorInvalidDeviceFunction, "invalid device function")                                                     \
  X(cudaErrorDevicesUnavailable, "CUDA-capable device(s) is/are busy or unavailable")                              \
  X(cudaErrorStubLibrary, "CUDA driver is a stub library")                                                         \
  X(cudaErrorInvalidPitchValue, "invalid pitch argument")                                                          \
  X(cudaErrorInvalidSymbol, "invalid device symbol")                                                               \
  X(cudaErrorInvalidDevicePointer, "invalid device pointer")                                                       \
  X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                                          \
  X(cudaErrorInsufficientDriver, "CUDA driver version is insufficient for CUDA runtime version")                  \
  X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                                       \
  X(cudaErrorInvalidDevice, "invalid device ordinal")                                                              \
  X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                                     \
  X(cudaErrorIllegalState, "the operation cannot be performed in the present state")                               \
  X(cudaErrorNotReady, "device not ready")                                                                         \
  X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                                           \
  X(cudaErrorLaunchFailure, "unspecified launch failure")                                                          \
  X(cudaErrorNotSupported, "operation not supported")                                                              \
  X(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing")                         \
  X(cudaErrorStreamCaptureInvalidated, "operation failed due to a previous error during capture")                  \
  X(cudaErrorStreamCaptureUnmatched, "capture was not initiated in this stream")                                   \
  X(cudaErrorStreamCaptureImplicit,                                                                                \
    "operation would make the legacy stream depend on a capturing blocking stream")                                \
  X(cudaErrorStreamCaptureWrongThread, "attempt to terminate a thread-local capture sequence from another thread") \
  X(cudaErrorCapturedEvent, "operation not permitted on an event last recorded in a capturing stream")

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
  if (!count) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: NULL count");
  *count = 0;
  AMP_EMU_NEED_DEVICE("cudaGetDeviceCount");
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  AMP_EMU_NEED_DEVICE("cudaSetDevice");
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "cudaSetDevice(%d): the emulator has device 0 only", device);
}

cudaError_t cudaGetDevice(int *device) {
  if (!device) return fail(cudaErrorInvalidValue, "cudaGetDevice: NULL device");
  AMP_EMU_NEED_DEVICE("cudaGetDevice");
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  if (!prop) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: NULL prop");
  AMP_EMU_NEED_DEVICE("cudaGetDeviceProperties");
  if (device != 0) return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d): device 0 only", device);
  fill_properties(prop);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
  if (!value) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: NULL value");
  AMP_EMU_NEED_DEVICE("cudaDeviceGetAttribute");
  if (device != 0) return fail(cudaErrorInvalidDevice, "cudaDeviceGetAttribute(%d): device 0 only", device);
  cudaDeviceProp p;
  fill_properties(&p);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = (int)p.sharedMemPerMultiprocessor; break;
    case cudaDevAttrReservedSharedMemoryPerBlock: *value = (int)p.reservedSharedMemPerBlock; break;
    case cudaDevAttrTotalConstantMemory: *value = (int)p.totalConstMem; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMaxRegistersPerBlock: *value = p.regsPerBlock; break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *value = p.regsPerMultiprocessor; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = p.maxBlocksPerMultiProcessor; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = p.memoryBusWidth; break;
    case cudaDevAttrClockRate: *value = kClockKHz; break;
    case cudaDevAttrMemoryClockRate: *value = kMemClockKHz; break;
    case cudaDevAttrConcurrentKernels: *value = p.concurrentKernels; break;
    case cudaDevAttrAsyncEngineCount: *value = p.asyncEngineCount; break;
    case cudaDevAttrUnifiedAddressing: *value = p.unifiedAddressing; break;
    case cudaDevAttrIntegrated: *value = p.integrated; break;
    case cudaDevAttrCanMapHostMemory: *value = p.canMapHostMemory; break;
    case cudaDevAttrEccEnabled: *value = p.ECCEnabled; break;
    case cudaDevAttrCooperativeLaunch: *value = p.cooperativeLaunch; break;
    case cudaDevAttrStreamPrioritiesSupported: *value = p.streamPrioritiesSupported; break;
    case cudaDevAttrMemoryPoolsSupported: *value = p.memoryPoolsSupported; break;
    case cudaDevAttrComputePreemptionSupported: *value = p.computePreemptionSupported; break;
    default:
      return fail(cudaErrorInvalidValue,
                  "cudaDeviceGetAttribute: attribute %d is not modelled by the emulator (fake_runtime.cc lists those "
                  "it knows)",
                  (int)attr);
  }
  return cudaSuccess;
}

cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest) {
  AMP_EMU_NEED_DEVICE("cudaDeviceGetStreamPriorityRange");
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
  if (!func) return fail(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: NULL function");
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 232448)
      return fail(cudaErrorInvalidValue,
                  "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize, %d): 0 to 232448 bytes on an "
                  "H100",
                  value);
    std::lock_guard<std::mutex> g(st().mu);
    st().max_dynamic_shared[func] = value;
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout && (value < -1 || value > 100))
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute(cudaFuncAttributePreferredSharedMemoryCarveout, %d): -1 "
                "to 100", value);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  g_sync_calls++;
  std::lock_guard<std::mutex> g(st().mu);
  if (!st().captures.empty()) {
    capture *c = *st().captures.begin();
    for (capture *o : st().captures) invalidate(o, "cudaDeviceSynchronize");
    return fail(cudaErrorStreamCaptureUnsupported,
                "cudaDeviceSynchronize while a stream captures (capture %llu): not permitted, and the capture is "
                "invalidated",
                c->id);
  }
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v) {
  if (!v) return fail(cudaErrorInvalidValue, "cudaDriverGetVersion: NULL version");
  *v = no_device() ? 0 : 13000;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) {
  if (!v) return fail(cudaErrorInvalidValue, "cudaRuntimeGetVersion: NULL version");
  *v = CUDART_VERSION;
  return cudaSuccess;
}

/* ---- memory --------------------------------------------------------------------------------- */

cudaError_t cudaMalloc(void **p, size_t bytes) {
  g_alloc_calls++;
  if (!p) return fail(cudaErrorInvalidValue, "cudaMalloc: NULL result pointer");
  *p = nullptr;
  AMP_EMU_NEED_DEVICE("cudaMalloc");
  if (cudaError_t e = unsafe_call("cudaMalloc")) return e;
  if (bytes == 0) return cudaSuccess;
  registry &r = reg();
  {
    std::lock_guard<std::mutex> g(r.mu);
    if (r.limit && (bytes > r.limit || r.bytes > r.limit - bytes))
      return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): the device limit is %zu bytes and %zu are in use",
                  bytes, r.limit, r.bytes);
  }
  /* 256-byte aligned like CUDA's, but exactly `bytes` long: ASan sees a kernel running past it */
  void *mem = nullptr;
  if (posix_memalign(&mem, 256, bytes) != 0 || !mem)
    return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): the host has no memory for it", bytes);
  std::memset(mem, 0xFF, bytes);
  std::lock_guard<std::mutex> g(r.mu);
  r.regions[(uintptr_t)mem] = bytes;
  forget_freed(r, (uintptr_t)mem, bytes);
  r.bytes += bytes;
  *p = mem;
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  if (cudaError_t e = unsafe_call("cudaFree")) return e;
  if (!p) return cudaSuccess;
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.regions.find((uintptr_t)p);
  if (it == r.regions.end()) {
    bool freed = find_region(r.freed, p, 0) != r.freed.end();
    bool inside = find_region(r.regions, p, 0) != r.regions.end();
    return fail(cudaErrorInvalidDevicePointer, "cudaFree(%p): %s", p,
                freed    ? "freed already (a double free)"
                : inside ? "inside a device region but not its start"
                         : "not a pointer cudaMalloc returned");
  }
  size_t bytes = it->second;
  r.bytes -= bytes;
  r.regions.erase(it);
  forget_freed(r, (uintptr_t)p, bytes);
  r.freed[(uintptr_t)p] = bytes;
  std::free(p);
  return cudaSuccess;
}

static cudaError_t host_alloc(const char *call, void **p, size_t bytes, unsigned int flags) {
  g_alloc_calls++;
  if (!p) return fail(cudaErrorInvalidValue, "%s: NULL result pointer", call);
  *p = nullptr;
  if (flags & ~(unsigned)(cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined))
    return fail(cudaErrorInvalidValue, "%s: unknown flags 0x%x", call, flags);
  if (cudaError_t e = unsafe_call(call)) return e;
  if (bytes == 0) return cudaSuccess;
  void *mem = std::malloc(bytes);
  if (!mem) return fail(cudaErrorMemoryAllocation, "%s(%zu): the host has no memory for it", call, bytes);
  std::memset(mem, 0xFF, bytes);
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  r.pinned[(uintptr_t)mem] = bytes;
  *p = mem;
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) { return host_alloc("cudaHostAlloc", p, bytes, flags); }

cudaError_t cudaMallocHost(void **p, size_t bytes) { return host_alloc("cudaMallocHost", p, bytes, 0); }

cudaError_t cudaFreeHost(void *p) {
  if (cudaError_t e = unsafe_call("cudaFreeHost")) return e;
  if (!p) return cudaSuccess;
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.pinned.find((uintptr_t)p);
  if (it == r.pinned.end()) {
    bool dev = find_region(r.regions, p, 0) != r.regions.end();
    return fail(cudaErrorInvalidValue, "cudaFreeHost(%p): %s", p,
                dev ? "device memory (free it with cudaFree)" : "not a pointer cudaMallocHost or cudaHostAlloc returned");
  }
  r.pinned.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  AMP_EMU_NEED_DEVICE("cudaMemGetInfo");
  registry &r = reg();
  std::lock_guard<std::mutex> g(r.mu);
  size_t lim = r.limit ? r.limit : (size_t)85029158912ull;
  if (free_bytes) *free_bytes = lim > r.bytes ? lim - r.bytes : 0;
  if (total) *total = lim;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  if (cudaError_t e = sync_call("cudaMemcpy")) return e;
  return copy2d("cudaMemcpy", dst, n, src, n, n, 1, kind, false);
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
  if (height > 1 && (dpitch < width || spitch < width))
    return fail(cudaErrorInvalidPitchValue, "cudaMemcpy2DAsync: pitches %zu and %zu must be at least the width %zu",
                dpitch, spitch, width);
  /* checked now, as the real call does, and again when it runs (the memory may be gone by then) */
  cudaError_t e =
      check_copy("cudaMemcpy2DAsync", span2d{dst, dpitch}, span2d{src, spitch}, width, height, kind, true);
  if (e != cudaSuccess) return e;
  return enqueue(s, "cudaMemcpy2DAsync", [=]() {
    return copy2d("cudaMemcpy2DAsync", dst, dpitch, src, spitch, width, height, kind, true);
  });
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  cudaError_t e = check_copy("cudaMemcpyAsync", span2d{dst, n}, span2d{src, n}, n, 1, kind, true);
  if (e != cudaSuccess) return e;
  return enqueue(s, "cudaMemcpyAsync", [=]() { return copy2d("cudaMemcpyAsync", dst, n, src, n, n, 1, kind, true); });
}

cudaError_t cudaMemset(void *p, int value, size_t n) {
  if (cudaError_t e = sync_call("cudaMemset")) return e;
  return memset_checked("cudaMemset", p, value, n);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s) {
  if (n && !is_device(p, n)) return memset_checked("cudaMemsetAsync", p, value, n);
  return enqueue(s, "cudaMemsetAsync", [=]() { return memset_checked("cudaMemsetAsync", p, value, n); });
}

/* __constant__ and __device__ variables are host globals on the emulator: a symbol is the
 * variable's own address (ASan sees a copy running past it); the other side is checked. */
static cudaError_t symbol_copy(const char *call, void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                               bool to_symbol, bool copy_now = true) {
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidSymbol, "%s: NULL %s", call, dst ? "source" : "destination");
  const void *other = to_symbol ? src : dst;
  bool dev = is_device(other, n);
  bool want_dev = kind == cudaMemcpyDeviceToDevice || kind == cudaMemcpyDefault ? dev
                  : to_symbol ? kind == cudaMemcpyDeviceToHost
                              : kind == cudaMemcpyHostToDevice;
  bool kind_ok = kind == cudaMemcpyDefault || kind == cudaMemcpyDeviceToDevice ||
                 kind == (to_symbol ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost);
  if (!kind_ok)
    return fail(cudaErrorInvalidMemcpyDirection, "%s: kind %s does not copy %s a symbol", call, kind_name(kind),
                to_symbol ? "to" : "from");
  if (kind == cudaMemcpyDeviceToDevice && !dev)
    return fail(cudaErrorInvalidValue, "%s(DeviceToDevice): %s %p (%zu bytes) is %s", call,
                to_symbol ? "source" : "destination", other, n, why_not_device(other));
  if (dev != want_dev)
    return fail(cudaErrorInvalidValue, "%s(%s): %s %p is device memory, not host memory", call, kind_name(kind),
                to_symbol ? "source" : "destination", other);
  if (copy_now) std::memmove(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t n, size_t offset, cudaMemcpyKind kind) {
  if (cudaError_t e = sync_call("cudaMemcpyToSymbol")) return e;
  return symbol_copy("cudaMemcpyToSymbol", (char *)symbol + offset, src, n, kind, true);
}

cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t n, size_t offset, cudaMemcpyKind kind) {
  if (cudaError_t e = sync_call("cudaMemcpyFromSymbol")) return e;
  return symbol_copy("cudaMemcpyFromSymbol", dst, (const char *)symbol + offset, n, kind, false);
}

cudaError_t cudaMemcpyToSymbolAsync(const void *symbol, const void *src, size_t n, size_t offset, cudaMemcpyKind kind,
                                    cudaStream_t s) {
  void *dst = (char *)symbol + offset;
  if (cudaError_t e = symbol_copy("cudaMemcpyToSymbolAsync", dst, src, n, kind, true, false)) return e;
  return enqueue(s, "cudaMemcpyToSymbolAsync",
                 [=]() { return symbol_copy("cudaMemcpyToSymbolAsync", dst, src, n, kind, true); });
}

/* ---- streams -------------------------------------------------------------------------------- */

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned int flags, int priority) {
  if (!s) return fail(cudaErrorInvalidValue, "cudaStreamCreate: NULL stream");
  AMP_EMU_NEED_DEVICE("cudaStreamCreate");
  if (flags & ~(unsigned)cudaStreamNonBlocking) return fail(cudaErrorInvalidValue, "cudaStreamCreate: flags 0x%x", flags);
  fake_stream *f = new (std::nothrow) fake_stream;
  if (!f) return fail(cudaErrorMemoryAllocation, "cudaStreamCreate: no host memory");
  f->flags = flags;
  f->priority = priority > 0 ? 0 : priority < -5 ? -5 : priority; /* clamped to the range, as CUDA does */
  std::lock_guard<std::mutex> g(st().mu);
  st().streams.insert(f);
  *s = reinterpret_cast<cudaStream_t>(f);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  return cudaStreamCreateWithPriority(s, flags, 0);
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithPriority(s, cudaStreamDefault, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::mutex> g(st().mu);
  fake_stream *f = reinterpret_cast<fake_stream *>(s);
  if (!s || !st().streams.count(f))
    return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(%p): not a stream cudaStreamCreate made, or "
                "destroyed already", (void *)s);
  if (f->cap)
    return fail(cudaErrorIllegalState, "cudaStreamDestroy: the stream captures (capture %llu); end the capture first",
                f->cap->id);
  st().streams.erase(f);
  delete f;
  return cudaSuccess;
}

cudaError_t cudaStreamGetFlags(cudaStream_t s, unsigned int *flags) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamGetFlags");
  if (!flags) return fail(cudaErrorInvalidValue, "cudaStreamGetFlags: NULL flags");
  *flags = f->flags;
  return cudaSuccess;
}

cudaError_t cudaStreamGetPriority(cudaStream_t s, int *priority) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamGetPriority");
  if (!priority) return fail(cudaErrorInvalidValue, "cudaStreamGetPriority: NULL priority");
  *priority = f->priority;
  return cudaSuccess;
}

/* Synchronising on a stream: nothing to wait for (work ran when it was enqueued), but refused
 * while the stream captures, or for the legacy stream while a blocking stream does. */
static cudaError_t stream_sync(cudaStream_t s, const char *call) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, call);
  if (f->cap) {
    invalidate(f->cap.get(), call);
    return fail(cudaErrorStreamCaptureUnsupported,
                "%s on a capturing stream (capture %llu): not permitted, and the capture is invalidated", call,
                f->cap->id);
  }
  return check_legacy(f, call);
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  g_sync_calls++;
  return stream_sync(s, "cudaStreamSynchronize");
}

cudaError_t cudaStreamQuery(cudaStream_t s) { return stream_sync(s, "cudaStreamQuery"); }

cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void *user_data) {
  if (!fn) return fail(cudaErrorInvalidValue, "cudaLaunchHostFunc: NULL function");
  return enqueue(s, "cudaLaunchHostFunc", [=]() {
    fn(user_data);
    return cudaSuccess;
  });
}

/* ---- capture and graphs ---------------------------------------------------------------------- */

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamBeginCapture");
  if (f->legacy)
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy default stream cannot capture");
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return fail(cudaErrorInvalidValue, "cudaStreamBeginCapture: mode %d is none of cudaStreamCaptureMode's", (int)mode);
  if (f->cap)
    return fail(cudaErrorIllegalState, "cudaStreamBeginCapture: the stream captures already (capture %llu)",
                f->cap->id);
  std::unique_ptr<capture> c(new (std::nothrow) capture);
  if (!c) return fail(cudaErrorMemoryAllocation, "cudaStreamBeginCapture: no host memory");
  c->id = st().next_capture++;
  c->mode = mode;
  c->thread = std::this_thread::get_id();
  st().captures.insert(c.get());
  f->cap = std::move(c);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamEndCapture");
  if (!graph) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: NULL graph");
  *graph = nullptr;
  if (!f->cap) return fail(cudaErrorIllegalState, "cudaStreamEndCapture: the stream does not capture");
  capture *c = f->cap.get();
  if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id())
    return fail(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture: capture %llu (%s mode) began on another "
                "thread", c->id, mode_name(c->mode));
  std::unique_ptr<capture> done = std::move(f->cap);
  st().captures.erase(c);
  if (done->invalidated)
    return fail(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture: capture %llu was invalidated by %s; no graph",
                done->id, done->why.c_str());
  fake_graph *gr = new (std::nothrow) fake_graph;
  if (!gr) return fail(cudaErrorMemoryAllocation, "cudaStreamEndCapture: no host memory");
  gr->nodes = std::move(done->nodes);
  st().graphs.insert(gr);
  *graph = reinterpret_cast<cudaGraph_t>(gr);
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamIsCapturing");
  if (!status) return fail(cudaErrorInvalidValue, "cudaStreamIsCapturing: NULL status");
  *status = !f->cap ? cudaStreamCaptureStatusNone
            : f->cap->invalidated ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

/* Status and id only: the graph under construction and its dependencies are not modelled (NULL). */
cudaError_t cudaStreamGetCaptureInfo(cudaStream_t s, cudaStreamCaptureStatus *status, unsigned long long *id,
                                     cudaGraph_t *graph, const cudaGraphNode_t **deps, const cudaGraphEdgeData **edges,
                                     size_t *ndeps) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamGetCaptureInfo");
  if (!status) return fail(cudaErrorInvalidValue, "cudaStreamGetCaptureInfo: NULL status");
  *status = !f->cap ? cudaStreamCaptureStatusNone
            : f->cap->invalidated ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
  if (id) *id = f->cap ? f->cap->id : 0;
  if (graph) *graph = nullptr;
  if (deps) *deps = nullptr;
  if (edges) *edges = nullptr;
  if (ndeps) *ndeps = 0;
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode *mode) {
  if (!mode) return fail(cudaErrorInvalidValue, "cudaThreadExchangeStreamCaptureMode: NULL mode");
  cudaStreamCaptureMode old = t_mode;
  t_mode = *mode;
  *mode = old;
  return cudaSuccess;
}

/* Only the count: nodes must be NULL. */
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count) {
  std::lock_guard<std::mutex> g(st().mu);
  fake_graph *gr = reinterpret_cast<fake_graph *>(graph);
  if (!st().graphs.count(gr)) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: %p is not a live graph", (void *)graph);
  if (!count) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: NULL count");
  if (nodes) return fail(cudaErrorNotSupported, "cudaGraphGetNodes: the emulator gives the node count only");
  *count = gr->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
  if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: NULL exec");
  *exec = nullptr;
  std::lock_guard<std::mutex> g(st().mu);
  fake_graph *gr = reinterpret_cast<fake_graph *>(graph);
  if (!st().graphs.count(gr))
    return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: %p is not a live graph", (void *)graph);
  const unsigned long long known = cudaGraphInstantiateFlagAutoFreeOnLaunch | cudaGraphInstantiateFlagUpload |
                                   cudaGraphInstantiateFlagDeviceLaunch | cudaGraphInstantiateFlagUseNodePriority;
  if (flags & ~known) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: unknown flags 0x%llx", flags);
  /* a snapshot: later changes to the graph (or its destruction) do not reach the executable */
  std::shared_ptr<node_list> nodes = std::make_shared<node_list>(gr->nodes);
  fake_exec *x = new (std::nothrow) fake_exec;
  if (!x) return fail(cudaErrorMemoryAllocation, "cudaGraphInstantiate: no host memory");
  x->nodes = std::move(nodes);
  st().execs.insert(x);
  *exec = reinterpret_cast<cudaGraphExec_t>(x);
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
  return cudaGraphInstantiateWithFlags(exec, graph, flags);
}

static std::atomic<unsigned long long> g_graph_launches{0};

unsigned long long amp_emu_graph_launches(void) { return g_graph_launches.load(); }

void amp_emu_ran_counts(unsigned long long counts[4]) {
  for (int i = 0; i < 4; i++) counts[i] = g_ran[i].load();
}

void amp_emu_call_counts(unsigned long long *allocs, unsigned long long *syncs) {
  if (allocs) *allocs = g_alloc_calls.load();
  if (syncs) *syncs = g_sync_calls.load();
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  std::shared_ptr<const node_list> nodes;
  g_graph_launches++;
  {
    std::lock_guard<std::mutex> g(st().mu);
    fake_exec *x = reinterpret_cast<fake_exec *>(exec);
    if (!st().execs.count(x))
      return fail(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: %p is not a live executable graph", (void *)exec);
    nodes = x->nodes;
  }
  return enqueue(s, "cudaGraphLaunch", [nodes]() { return replay(*nodes); });
}

/* Nothing to upload: the nodes run on the host. */
cudaError_t cudaGraphUpload(cudaGraphExec_t exec, cudaStream_t s) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaGraphUpload");
  (void)f;
  if (!st().execs.count(reinterpret_cast<fake_exec *>(exec)))
    return fail(cudaErrorInvalidResourceHandle, "cudaGraphUpload: %p is not a live executable graph", (void *)exec);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  std::lock_guard<std::mutex> g(st().mu);
  fake_exec *x = reinterpret_cast<fake_exec *>(exec);
  if (!st().execs.erase(x))
    return fail(cudaErrorInvalidValue, "cudaGraphExecDestroy: %p is not a live executable graph", (void *)exec);
  delete x;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  std::lock_guard<std::mutex> g(st().mu);
  fake_graph *gr = reinterpret_cast<fake_graph *>(graph);
  if (!st().graphs.erase(gr)) return fail(cudaErrorInvalidValue, "cudaGraphDestroy: %p is not a live graph", (void *)graph);
  delete gr;
  return cudaSuccess;
}

/* ---- events --------------------------------------------------------------------------------- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned int flags) {
  if (!ev) return fail(cudaErrorInvalidValue, "cudaEventCreate: NULL event");
  AMP_EMU_NEED_DEVICE("cudaEventCreate");
  const unsigned known = cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;
  if ((flags & ~known) || ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming)))
    return fail(cudaErrorInvalidValue, "cudaEventCreateWithFlags: flags 0x%x", flags);
  fake_event *e = new (std::nothrow) fake_event;
  if (!e) return fail(cudaErrorMemoryAllocation, "cudaEventCreate: no host memory");
  e->flags = flags;
  std::lock_guard<std::mutex> g(st().mu);
  st().events.insert(e);
  *ev = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *ev) { return cudaEventCreateWithFlags(ev, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t ev) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_EVENT(e, ev, "cudaEventDestroy");
  st().events.erase(e);
  delete e;
  return cudaSuccess;
}

/* Outside a capture the record runs now (the host clock of that moment); inside one the event
 * belongs to the capture (a plain record adds no node), or with cudaEventRecordExternal becomes a
 * node that records when the graph runs. */
cudaError_t cudaEventRecordWithFlags(cudaEvent_t ev, cudaStream_t s, unsigned int flags) {
  if (flags & ~(unsigned)cudaEventRecordExternal)
    return fail(cudaErrorInvalidValue, "cudaEventRecordWithFlags: flags 0x%x", flags);
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_EVENT(e, ev, "cudaEventRecord");
  AMP_EMU_LIVE_STREAM(f, s, "cudaEventRecord");
  if (f->cap && !(flags & cudaEventRecordExternal)) {
    if (f->cap->invalidated)
      return fail(cudaErrorStreamCaptureInvalidated, "cudaEventRecord on a stream whose capture was invalidated by %s",
                  f->cap->why.c_str());
    e->capture_id = f->cap->id;
    return cudaSuccess;
  }
  std::function<cudaError_t()> work = [ev]() {
    std::lock_guard<std::mutex> lock(st().mu);
    fake_event *x = lookup_event(ev);
    if (!x) return fail(cudaErrorInvalidResourceHandle, "event record: the event %p was destroyed", (void *)ev);
    x->recorded = true;
    x->capture_id = 0;
    x->when = std::chrono::steady_clock::now();
    return cudaSuccess;
  };
  cudaError_t err = cudaSuccess;
  switch (submit(f, "cudaEventRecord", work, &err)) {
    case SUBMIT_RECORDED: return cudaSuccess;
    case SUBMIT_FAILED: return err;
    case SUBMIT_RUN: break;
  }
  e->recorded = true;
  e->capture_id = 0;
  e->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t s) { return cudaEventRecordWithFlags(ev, s, 0); }

/* Waiting on an event: it has completed (work ran when enqueued), unless a capture owns it. */
static cudaError_t event_wait(cudaEvent_t ev, const char *call) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_EVENT(e, ev, call);
  if (capture *c = capture_by_id(e->capture_id)) {
    invalidate(c, call);
    return fail(cudaErrorStreamCaptureUnsupported,
                "%s on an event recorded in a capturing stream (capture %llu): not permitted, and the capture is "
                "invalidated",
                call, c->id);
  }
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
  g_sync_calls++;
  return event_wait(ev, "cudaEventSynchronize");
}

cudaError_t cudaEventQuery(cudaEvent_t ev) { return event_wait(ev, "cudaEventQuery"); }

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: NULL ms");
  std::lock_guard<std::mutex> g(st().mu);
  fake_event *a = lookup_event(start), *b = lookup_event(end);
  if (!a || !b)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: %s event %p is not a live event",
                a ? "end" : "start", (void *)(a ? end : start));
  if ((a->flags | b->flags) & cudaEventDisableTiming)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was created with "
                "cudaEventDisableTiming");
  if (capture_live(a->capture_id) || capture_live(b->capture_id))
    return fail(cudaErrorStreamCaptureUnsupported, "cudaEventElapsedTime: an event was recorded in a capture under way");
  if (!a->recorded || !b->recorded)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: the %s event was never recorded",
                a->recorded ? "end" : "start");
  *ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t ev, unsigned int flags) {
  std::lock_guard<std::mutex> g(st().mu);
  AMP_EMU_LIVE_STREAM(f, s, "cudaStreamWaitEvent");
  AMP_EMU_LIVE_EVENT(e, ev, "cudaStreamWaitEvent");
  if (flags & ~(unsigned)cudaEventWaitExternal)
    return fail(cudaErrorInvalidValue, "cudaStreamWaitEvent: flags 0x%x", flags);
  if (f->cap && f->cap->invalidated)
    return fail(cudaErrorStreamCaptureInvalidated, "cudaStreamWaitEvent on a stream whose capture was invalidated by %s",
                f->cap->why.c_str());
  capture *c = capture_by_id(e->capture_id);
  if (c && (!f->cap || f->cap.get() != c))
    return fail(cudaErrorNotSupported,
                "cudaStreamWaitEvent: the event belongs to capture %llu and the stream is outside it; the emulator does "
                "not model streams joining a capture",
                c->id);
  return check_legacy(f, "cudaStreamWaitEvent");
}

}  // extern "C"

cudaError_t amp_emu_enqueue(cudaStream_t stream, const char *what, std::function<cudaError_t()> work) {
  return enqueue(stream, what, std::move(work));
}

size_t amp_emu_max_dynamic_shared(const void *kernel) {
  std::lock_guard<std::mutex> g(st().mu);
  auto it = st().max_dynamic_shared.find(kernel);
  return it == st().max_dynamic_shared.end() ? (size_t)48 * 1024 : (size_t)it->second;
}
