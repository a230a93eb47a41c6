/* The emulator's scheduler: one fiber per thread of a block, switched at barriers and warp
 * primitives (cuda_emu.h says what it models). */
#include "backends/cuda/emu/cuda_emu.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define AMP_EMU_ASAN 1
#else
#define AMP_EMU_ASAN 0
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;
char *amp_emu_detail::dynamic_shared = nullptr;

extern "C" char __start_amp_emu_shared[] __attribute__((weak));
extern "C" char __stop_amp_emu_shared[] __attribute__((weak));

namespace {

const size_t kStack = 64 * 1024;
const unsigned kMaxThreads = 1024;

enum fiber_state { READY, AT_BARRIER, AT_WARP, DONE };

#if defined(__x86_64__)
/* The switch between fibers: the callee-saved registers, the SSE and x87 control words and the
 * stack pointer; unlike swapcontext it leaves the signal mask alone, so it makes no system call
 * (about ten times faster). A new fiber's stack is laid out as if it had switched away just
 * before entering fiber_entry. */
extern "C" void amp_emu_switch(void **save_sp, void *load_sp);
asm(".text\n"
    ".globl amp_emu_switch\n"
    ".type amp_emu_switch,@function\n"
    "amp_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size amp_emu_switch, .-amp_emu_switch\n");
#define AMP_EMU_OWN_SWITCH 1
#else
#define AMP_EMU_OWN_SWITCH 0
#endif

struct fiber {
#if AMP_EMU_OWN_SWITCH
  void *sp = nullptr;
#else
  ucontext_t ctx;
#endif
  char *stack = nullptr; /* usable part, above the guard page */
  fiber_state state = READY;
  uint3 tid{0, 0, 0};
  /* the pending warp primitive */
  amp_emu_detail::op_kind kind = amp_emu_detail::OP_SYNCWARP;
  const char *op_name = "";
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
  void *fake_stack = nullptr;
  /* the pending barrier: which one, this thread's predicate, and (released) the block's answer */
  amp_emu_detail::barrier_kind barrier = amp_emu_detail::BAR_SYNC;
  int pred = 0, answer = 0;
};

/* one launch at a time in the process: shared arrays are process-wide static storage */
std::mutex g_launch_lock;
int g_order = 0;
unsigned long long g_switches = 0;
thread_local char t_error[512];
thread_local bool t_launching; /* this OS thread runs a launch (holds g_launch_lock) */

struct launch_state {
  const char *kernel = "(no kernel)";
  void (*body)(void *) = nullptr;
  void *ctx = nullptr;
  std::vector<fiber> fibers; /* reused across launches; stacks never freed */
  unsigned n = 0;            /* threads of the block being run */
  int current = -1;          /* the running fiber, -1 for the scheduler */
#if AMP_EMU_OWN_SWITCH
  void *sched_sp = nullptr;
#else
  ucontext_t sched;
#endif
  const void *sched_bottom = nullptr;
  size_t sched_size = 0;
  bool plain = false; /* threads run as plain calls: the kernel promised no barrier */
};
launch_state g;

void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *fmt, ...) {
  if (t_error[0]) return; /* keep the first error */
  int k = t_launching ? snprintf(t_error, sizeof t_error, "%s block (%u,%u,%u): ", g.kernel, blockIdx.x, blockIdx.y,
                                 blockIdx.z)
                      : snprintf(t_error, sizeof t_error, "%s: ", g.kernel);
  if (k < 0 || (size_t)k >= sizeof t_error) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_error + k, sizeof t_error - (size_t)k, fmt, ap);
  va_end(ap);
}

/* Fills every non-template kernel's __shared__ arrays with 0xFF bytes. Byte by byte and outside
 * ASan's view: the section may hold the redzones ASan put between the arrays. */
__attribute__((no_sanitize("address"))) void poison_shared() {
  if (!__start_amp_emu_shared || !__stop_amp_emu_shared) return;
  for (volatile char *p = __start_amp_emu_shared; p < (volatile char *)__stop_amp_emu_shared; p++) *p = (char)0xff;
}

void fiber_entry();

inline void to_fiber(fiber &f) {
#if AMP_EMU_OWN_SWITCH
  amp_emu_switch(&g.sched_sp, f.sp);
#else
  swapcontext(&g.sched, &f.ctx);
#endif
}

inline void to_scheduler(fiber &f) {
#if AMP_EMU_OWN_SWITCH
  amp_emu_switch(&f.sp, g.sched_sp);
#else
  swapcontext(&f.ctx, &g.sched);
#endif
}

/* Switches from the scheduler to fiber i until it yields. */
void resume(unsigned i) {
  fiber &f = g.fibers[i];
  threadIdx = f.tid;
  g.current = (int)i;
  g_switches++;
#if AMP_EMU_ASAN
  void *fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, kStack);
  to_fiber(f);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  to_fiber(f);
#endif
  g.current = -1;
}

/* Switches from the running fiber back to the scheduler; `dying` when the fiber has ended. */
void yield(bool dying) {
  fiber &f = g.fibers[(unsigned)g.current];
  g_switches++;
#if AMP_EMU_ASAN
  __sanitizer_start_switch_fiber(dying ? nullptr : &f.fake_stack, g.sched_bottom, g.sched_size);
  to_scheduler(f);
  __sanitizer_finish_switch_fiber(f.fake_stack, &g.sched_bottom, &g.sched_size);
#else
  (void)dying;
  to_scheduler(f);
#endif
  threadIdx = f.tid; /* the scheduler set it already; kept for clarity of ownership */
}

void fiber_entry() {
#if AMP_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g.sched_bottom, &g.sched_size);
#endif
  g.body(g.ctx);
  g.fibers[(unsigned)g.current].state = DONE;
  yield(true);
  __builtin_unreachable(); /* a finished fiber is never resumed */
}

bool grow_pool(unsigned n) {
  long page = sysconf(_SC_PAGESIZE);
  while (g.fibers.size() < n) {
    size_t total = kStack + (size_t)page;
    void *m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return false;
    mprotect(m, (size_t)page, PROT_NONE); /* an overflowing kernel faults instead of corrupting */
    g.fibers.emplace_back();
    g.fibers.back().stack = (char *)m + page;
  }
  return true;
}

const char *state_name(fiber_state s) {
  switch (s) {
    case READY: return "running";
    case AT_BARRIER: return "waiting at __syncthreads";
    case AT_WARP: return "waiting at a warp primitive";
    case DONE: return "exited";
  }
  return "?";
}

/* Completes the warp primitives whose lanes have all arrived; false (with the error set) when a
 * pending one can never complete. *progress is set when some lanes may go on. */
bool resolve_warps(bool *progress) {
  using namespace amp_emu_detail;
  unsigned nwarps = (g.n + 31) / 32;
  for (unsigned w = 0; w < nwarps; w++) {
    unsigned base = w * 32, lanes = g.n - base < 32 ? g.n - base : 32;
    for (unsigned l = 0; l < lanes; l++) {
      fiber &f = g.fibers[base + l];
      if (f.state != AT_WARP) continue;
      unsigned m = f.mask;
      if (!((m >> l) & 1u)) {
        fail("thread %u (warp %u lane %u) calls %s with mask 0x%08x, which does not name its own lane", base + l, w, l,
             f.op_name, m);
        return false;
      }
      for (unsigned j = 0; j < 32; j++) {
        if (!((m >> j) & 1u)) continue;
        if (j >= lanes) {
          fail("thread %u (warp %u lane %u) calls %s with mask 0x%08x, which names lane %u; the block has %u threads, "
               "so that lane does not exist",
               base + l, w, l, f.op_name, m, j, g.n);
          return false;
        }
        fiber &o = g.fibers[base + j];
        if (o.state != AT_WARP) {
          fail("deadlock: thread %u (warp %u lane %u) waits in %s with mask 0x%08x, but lane %u (thread %u) is %s",
               base + l, w, l, f.op_name, m, j, base + j, state_name(o.state));
          return false;
        }
        if (o.mask != m || o.kind != f.kind) {
          fail("warp %u: lane %u calls %s with mask 0x%08x while lane %u calls %s with mask 0x%08x", w, l, f.op_name, m,
               j, o.op_name, o.mask);
          return false;
        }
      }
      /* every named lane is here: compute the results */
      uint64_t votes = 0;
      for (unsigned j = 0; j < 32; j++)
        if (((m >> j) & 1u) && g.fibers[base + j].value) votes |= 1ull << j;
      for (unsigned j = 0; j < 32; j++) {
        if (!((m >> j) & 1u)) continue;
        fiber &o = g.fibers[base + j];
        int width = o.width;
        if (f.kind >= OP_SHFL && f.kind <= OP_SHFL_XOR && (width < 1 || width > 32 || (width & (width - 1)))) {
          fail("thread %u calls %s with width %d; it must be a power of two from 1 to 32", base + j, o.op_name, width);
          return false;
        }
        int lane = (int)j, seg = lane & ~(width - 1), src = lane;
        switch (f.kind) {
          case OP_SYNCWARP: o.result = 0; break;
          case OP_BALLOT: o.result = votes; break;
          case OP_ANY: o.result = votes != 0; break;
          case OP_ALL: o.result = votes == (uint64_t)m; break;
          case OP_SHFL: src = seg + (o.arg % width + width) % width; break;
          case OP_SHFL_UP: src = (lane - seg) >= o.arg ? lane - o.arg : lane; break;
          case OP_SHFL_DOWN: src = (lane - seg) + o.arg < width ? lane + o.arg : lane; break;
          case OP_SHFL_XOR: {
            int s = lane ^ o.arg;
            src = (s >= seg && s < seg + width) ? s : lane;
            break;
          }
        }
        if (f.kind >= OP_SHFL && f.kind <= OP_SHFL_XOR) {
          if (!((m >> src) & 1u)) {
            fail("thread %u (warp %u lane %u) reads lane %d through %s, but mask 0x%08x does not name that lane, so the "
                 "value is undefined",
                 base + j, w, j, src, o.op_name, m);
            return false;
          }
          o.result = g.fibers[base + (unsigned)src].value;
        }
      }
      for (unsigned j = 0; j < 32; j++)
        if ((m >> j) & 1u) g.fibers[base + j].state = READY;
      *progress = true;
    }
  }
  return true;
}

/* Points f at the start of the kernel on its own stack. Apart, because getcontext returns twice
 * and the caller's loop variables would be clobbered. */
__attribute__((noinline)) void start_fiber(fiber *f) {
#if AMP_EMU_OWN_SWITCH
  /* from the top: a zero return address for fiber_entry (it never returns), fiber_entry as the
   * address the switch returns to, six callee-saved registers, and the control words */
  uintptr_t top = ((uintptr_t)f->stack + kStack) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  *--sp = 0;
  *--sp = (uint64_t)(uintptr_t)&fiber_entry;
  for (int r = 0; r < 6; r++) *--sp = 0;
  --sp;
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  std::memcpy((char *)sp, &mxcsr, 4);
  std::memcpy((char *)sp + 4, &fpucw, 2);
  f->sp = sp;
#else
  getcontext(&f->ctx);
  f->ctx.uc_stack.ss_sp = f->stack;
  f->ctx.uc_stack.ss_size = kStack;
  f->ctx.uc_link = nullptr;
  makecontext(&f->ctx, fiber_entry, 0);
#endif
}

const char *barrier_name(amp_emu_detail::barrier_kind k) {
  switch (k) {
    case amp_emu_detail::BAR_SYNC: return "__syncthreads";
    case amp_emu_detail::BAR_COUNT: return "__syncthreads_count";
    case amp_emu_detail::BAR_AND: return "__syncthreads_and";
    case amp_emu_detail::BAR_OR: return "__syncthreads_or";
  }
  return "?";
}

/* Every thread waits at a barrier: they must all wait at the same kind; the reducing kinds give
 * each thread the block's answer. False with the error set when the kinds differ. */
bool release_barrier() {
  using namespace amp_emu_detail;
  barrier_kind k = g.fibers[0].barrier;
  int count = 0;
  for (unsigned i = 0; i < g.n; i++) {
    if (g.fibers[i].barrier != k) {
      fail("deadlock: thread 0 waits at %s while thread %u waits at %s; a block's threads must reach the same barrier",
           barrier_name(k), i, barrier_name(g.fibers[i].barrier));
      return false;
    }
    count += g.fibers[i].pred != 0;
  }
  int answer = k == BAR_COUNT ? count : k == BAR_AND ? count == (int)g.n : k == BAR_OR ? count != 0 : 0;
  for (unsigned i = 0; i < g.n; i++) {
    g.fibers[i].answer = answer;
    g.fibers[i].state = READY;
  }
  return true;
}

/* Runs one block to its end; false with the error set when it cannot finish. */
bool run_block() {
  unsigned n = g.n;
  if (g.plain) {
    bool rev = (g_order & AMP_EMU_REVERSE_THREADS) != 0;
    for (unsigned k = 0; k < n; k++) {
      unsigned i = rev ? n - 1 - k : k;
      threadIdx = uint3{i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
      g.body(g.ctx);
    }
    return t_error[0] == 0;
  }
  for (unsigned i = 0; i < n; i++) {
    fiber &f = g.fibers[i];
    f.state = READY;
    f.tid = uint3{i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
    f.fake_stack = nullptr;
#if AMP_EMU_ASAN
    /* a fiber abandoned by a failed launch leaves poisoned frames behind */
    __asan_unpoison_memory_region(f.stack, kStack);
#endif
    start_fiber(&f);
  }
  poison_shared();
  bool reverse = (g_order & AMP_EMU_REVERSE_THREADS) != 0;
  for (;;) {
    for (unsigned k = 0; k < n; k++) {
      unsigned i = reverse ? n - 1 - k : k;
      if (g.fibers[i].state == READY) resume(i);
    }
    bool progress = false;
    if (!resolve_warps(&progress)) return false;
    if (progress) continue;
    unsigned at_barrier = 0, done = 0, first_done = n, first_waiting = n;
    for (unsigned i = 0; i < n; i++) {
      if (g.fibers[i].state == AT_BARRIER) {
        at_barrier++;
        if (first_waiting == n) first_waiting = i;
      } else if (g.fibers[i].state == DONE) {
        done++;
        if (first_done == n) first_done = i;
      }
    }
    if (done == n) return true;
    if (at_barrier == n) {
      if (!release_barrier()) return false;
      continue;
    }
    /* some threads wait at __syncthreads and the others exited (warp waits failed above) */
    unsigned wmin = first_waiting / 32, wmax = wmin;
    for (unsigned i = 0; i < n; i++)
      if (g.fibers[i].state == AT_BARRIER) wmax = i / 32;
    fail("deadlock: __syncthreads reached by %u of %u threads (first thread %u, warps %u..%u); %u threads exited "
         "without reaching it (first thread %u)",
         at_barrier, n, first_waiting, wmin, wmax, done, first_done);
    return false;
  }
}

}  // namespace

int amp_emu_set_order(int flags) {
  std::lock_guard<std::mutex> lock(g_launch_lock);
  int old = g_order;
  g_order = flags;
  return old;
}

const char *amp_emu_last_error(void) { return t_error; }

void amp_emu_set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_error, sizeof t_error, fmt, ap);
  va_end(ap);
}

bool amp_emu_check_config(const char *kernel, dim3 grid, dim3 block) {
  unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64) {
    amp_emu_set_error("%s: blockDim (%u,%u,%u) is invalid: 1 to %u threads per block, z at most 64", kernel, block.x,
                      block.y, block.z, kMaxThreads);
    return false;
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    amp_emu_set_error("%s: gridDim (%u,%u,%u) is invalid: x 1 to 2^31-1, y and z 1 to 65535", kernel, grid.x, grid.y,
                      grid.z);
    return false;
  }
  return true;
}

unsigned long long amp_emu_switch_count(void) {
  std::lock_guard<std::mutex> lock(g_launch_lock);
  return g_switches;
}

/* A primitive in a kernel launched as a plain loop cannot wait: the launch fails. */
static bool plain_misuse(const char *name) {
  if (!t_launching || !g.plain) return false;
  fail("thread (%u,%u,%u) calls %s, but the kernel was launched with AMP_EMU_LAUNCH_PLAIN (no barriers or "
       "warp primitives); launch it with AMP_EMU_LAUNCH",
       threadIdx.x, threadIdx.y, threadIdx.z, name);
  return true;
}

int amp_emu_detail::barrier(barrier_kind kind, int pred) {
  const char *name = barrier_name(kind);
  if (plain_misuse(name)) return 0;
  if (!t_launching || g.current < 0) {
    fail("%s called outside a kernel", name);
    return 0;
  }
  fiber &f = g.fibers[(unsigned)g.current];
  f.state = AT_BARRIER;
  f.barrier = kind;
  f.pred = pred;
  yield(false);
  return f.answer;
}

uint64_t amp_emu_detail::warp_op(op_kind kind, const char *name, unsigned mask, uint64_t value, int arg, int width) {
  if (plain_misuse(name)) return value;
  if (!t_launching || g.current < 0) {
    fail("%s called outside a kernel", name);
    return value;
  }
  fiber &f = g.fibers[(unsigned)g.current];
  f.state = AT_WARP;
  f.kind = kind;
  f.op_name = name;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  yield(false);
  return f.result;
}

amp_emu_status amp_emu_run(const char *kernel, dim3 grid, dim3 block, size_t shmem, void *stream, bool plain,
                           void (*body)(void *), void *ctx) {
  (void)stream;
  std::lock_guard<std::mutex> lock(g_launch_lock);
  t_error[0] = 0;
  g.kernel = kernel;
  blockIdx = uint3{0, 0, 0};
  if (!amp_emu_check_config(kernel, grid, block)) return AMP_EMU_ERR_CONFIG;
  unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (!plain && !grow_pool((unsigned)threads)) {
    fail("cannot map %llu fiber stacks of %zu bytes", threads, kStack);
    return AMP_EMU_ERR_CONFIG;
  }
  /* exactly shmem bytes, so that ASan sees a kernel reading past the size it was launched with */
  void *dyn = nullptr;
  if (shmem && posix_memalign(&dyn, 16, shmem) != 0) {
    fail("cannot allocate %zu bytes of dynamic shared memory", shmem);
    return AMP_EMU_ERR_CONFIG;
  }
  amp_emu_detail::dynamic_shared = (char *)dyn;
  blockDim = block;
  gridDim = grid;
  g.body = body;
  g.ctx = ctx;
  g.n = (unsigned)threads;
  g.plain = plain;
  t_launching = true;
  unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
  bool reverse = (g_order & AMP_EMU_REVERSE_BLOCKS) != 0;
  amp_emu_status st = AMP_EMU_OK;
  for (unsigned long long k = 0; k < nblocks; k++) {
    unsigned long long b = reverse ? nblocks - 1 - k : k;
    blockIdx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((unsigned long long)grid.x * grid.y))};
    if (dyn) std::memset(dyn, 0xff, shmem);
    if (!run_block()) {
      /* classify by the message's first word: the checks above name what they found */
      st = plain ? AMP_EMU_ERR_PLAIN : strstr(t_error, "deadlock") ? AMP_EMU_ERR_DEADLOCK : AMP_EMU_ERR_WARP;
      break;
    }
  }
  t_launching = false;
  g.current = -1;
  g.kernel = "(no kernel)";
  amp_emu_detail::dynamic_shared = nullptr;
  std::free(dyn);
  return st;
}
