/* Kernels for the emulator's tests, written as CUDA (the emulator compiles this file with the
 * host C++ compiler through backends/cuda/emu/cuda_emu.h). The planted bugs are marked. */
#include "backends/cuda/emu/cuda_emu.h"
#include "tests/cuda_emu/kernels.h"

/* Per-block sum of in[0..n): shared-memory tree down to 64 values, then warp 0 with shuffles.
 * Any blockDim from 32 to 1024. */
__global__ void block_sum(const float *in, float *out, int n) {
  __shared__ float s[1024];
  unsigned tid = threadIdx.x;
  for (unsigned i = tid; i < 1024; i += blockDim.x) s[i] = 0.0f;
  __syncthreads();
  float v = 0.0f;
  for (int i = (int)(blockIdx.x * blockDim.x + tid); i < n; i += (int)(gridDim.x * blockDim.x)) v += in[i];
  s[tid] = v;
  __syncthreads();
  for (unsigned stride = 512; stride >= 64; stride /= 2) {
    if (tid < stride) s[tid] += s[tid + stride];
    __syncthreads();
  }
  if (tid < 32) {
    v = s[tid] + s[tid + 32];
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, (unsigned)off);
    if (tid == 0) out[blockIdx.x] = v;
  }
}

/* Exclusive scan of one warp's 32 values per warp, with __shfl_up_sync. */
__global__ void warp_exclusive_scan(const int *in, int *out) {
  unsigned lane = threadIdx.x & 31u;
  int x = in[blockIdx.x * blockDim.x + threadIdx.x], incl = x;
  for (unsigned d = 1; d < 32; d *= 2) {
    int y = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += y;
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = incl - x;
}

/* Per warp: ballot of in[i] > 0, any, all, and the xor-butterfly maximum. */
__global__ void warp_votes(const int *in, unsigned *ballot, int *any, int *all, int *maxv) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x, w = i / 32;
  int p = in[i] > 0;
  unsigned b = __ballot_sync(0xffffffffu, p);
  int a = __any_sync(0xffffffffu, p), l = __all_sync(0xffffffffu, p);
  int m = in[i];
  for (int x = 16; x > 0; x /= 2) {
    int o = __shfl_xor_sync(0xffffffffu, m, x);
    m = o > m ? o : m;
  }
  int first = __shfl_sync(0xffffffffu, m, 0);
  __syncwarp();
  if ((threadIdx.x & 31u) == 0) {
    ballot[w] = b;
    any[w] = a;
    all[w] = l;
    maxv[w] = first;
  }
}

/* Global atomics: sum, maximum, and a float maximum built on atomicCAS. */
__global__ void atomics(const float *in, int n, float *sum, int *count, int *imax, float *fmax) {
  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  atomicAdd(sum, in[i]);
  atomicAdd(count, 1);
  atomicMax(imax, (int)(in[i] * 1000.0f));
  int *addr = (int *)fmax, old = *addr;
  while (__int_as_float(old) < in[i]) {
    int seen = atomicCAS(addr, old, __float_as_int(in[i]));
    if (seen == old) break;
    old = seen;
  }
}

/* Many barriers and nothing else: the fiber switch cost. */
__global__ void barriers(int rounds, int *out) {
  for (int r = 0; r < rounds; r++) __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = rounds;
}

/* PLANTED BUG: threads past n return before the barrier the others wait at. */
__global__ void bug_return_before_barrier(const float *in, float *out, int n) {
  __shared__ float s[256];
  unsigned tid = threadIdx.x;
  if ((int)tid >= n) return;
  s[tid] = in[tid];
  __syncthreads();
  out[tid] = s[(tid + 1) % (unsigned)n];
}

/* PLANTED BUG: only the first half of each warp shuffles, with a full mask. */
__global__ void bug_half_warp_shuffle(const float *in, float *out) {
  unsigned tid = threadIdx.x;
  float v = in[tid];
  if ((tid & 31u) < 16) v += __shfl_down_sync(0xffffffffu, v, 8);
  out[tid] = v;
}

/* PLANTED BUG: a barrier inside a branch only warp 0 takes. */
__global__ void bug_one_warp_barrier(float *out) {
  __shared__ float s[64];
  unsigned tid = threadIdx.x;
  s[tid] = (float)tid;
  if (tid < 32) __syncthreads();
  out[tid] = s[63 - tid];
}

/* PLANTED BUG: s[tid - 1] is read with no barrier after the writes. In forward order the lower
 * thread has already written it; in reverse order it has not (the shared array is poisoned). */
__global__ void bug_missing_barrier(const float *in, float *out) {
  __shared__ float s[256];
  unsigned tid = threadIdx.x;
  s[tid] = in[tid];
  /* __syncthreads(); missing */
  out[tid] = tid > 0 ? s[tid - 1] : 0.0f;
}

/* The same with the barrier: right in both orders. */
__global__ void fixed_missing_barrier(const float *in, float *out) {
  __shared__ float s[256];
  unsigned tid = threadIdx.x;
  s[tid] = in[tid];
  __syncthreads();
  out[tid] = tid > 0 ? s[tid - 1] : 0.0f;
}

int run_block_sum(const float *in, float *out, int n, int grid, int block) {
  return AMP_EMU_LAUNCH(block_sum, grid, block, 0, nullptr, in, out, n);
}
int run_warp_exclusive_scan(const int *in, int *out, int grid, int block) {
  return AMP_EMU_LAUNCH(warp_exclusive_scan, grid, block, 0, nullptr, in, out);
}
int run_warp_votes(const int *in, unsigned *ballot, int *any, int *all, int *maxv, int grid, int block) {
  return AMP_EMU_LAUNCH(warp_votes, grid, block, 0, nullptr, in, ballot, any, all, maxv);
}
int run_atomics(const float *in, int n, float *sum, int *count, int *imax, float *fmax, int grid, int block) {
  return AMP_EMU_LAUNCH(atomics, grid, block, 0, nullptr, in, n, sum, count, imax, fmax);
}
int run_barriers(int rounds, int *out, int grid, int block) {
  return AMP_EMU_LAUNCH(barriers, grid, block, 0, nullptr, rounds, out);
}
int run_bug_return_before_barrier(const float *in, float *out, int n, int block) {
  return AMP_EMU_LAUNCH(bug_return_before_barrier, 1, block, 0, nullptr, in, out, n);
}
int run_bug_half_warp_shuffle(const float *in, float *out, int block) {
  return AMP_EMU_LAUNCH(bug_half_warp_shuffle, 1, block, 0, nullptr, in, out);
}
int run_bug_one_warp_barrier(float *out) {
  return AMP_EMU_LAUNCH(bug_one_warp_barrier, 1, 64, 0, nullptr, out);
}
int run_bug_missing_barrier(const float *in, float *out, int block, int fixed) {
  if (fixed) return AMP_EMU_LAUNCH(fixed_missing_barrier, 1, block, 0, nullptr, in, out);
  return AMP_EMU_LAUNCH(bug_missing_barrier, 1, block, 0, nullptr, in, out);
}

/* A half-warp reduction done right: the lanes that take part name only themselves and stay in
 * a 16-wide segment; `mask_bug` plants the errors the emulator must report. */
__global__ void half_warp_sum(const float *in, float *out, int mask_bug) {
  unsigned tid = threadIdx.x, lane = tid & 31u;
  float v = in[tid];
  if (lane < 16) {
    unsigned mask = 0x0000ffffu;
    int width = 16;
    if (mask_bug == 1) mask = 0x0000fffeu; /* PLANTED BUG: the mask leaves out lane 0 */
    if (mask_bug == 2) width = 32;         /* PLANTED BUG: lane 8 would read lane 16, outside the mask */
    for (int off = 8; off > 0; off /= 2) v += __shfl_down_sync(mask, v, (unsigned)off, width);
  }
  if (lane == 0) out[tid / 32] = v;
}

int run_half_warp_sum(const float *in, float *out, int block, int mask_bug) {
  return AMP_EMU_LAUNCH(half_warp_sum, 1, block, 0, nullptr, in, out, mask_bug);
}

/* Writes each thread's coordinates at its linear position in the grid (3-D grid and block). */
__global__ void coords(unsigned *out) {
  unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned *o = out + 6 * (b * blockDim.x * blockDim.y * blockDim.z + t);
  o[0] = threadIdx.x, o[1] = threadIdx.y, o[2] = threadIdx.z;
  o[3] = blockIdx.x, o[4] = blockIdx.y, o[5] = blockIdx.z;
  __syncthreads();
}

int run_coords(unsigned *out, dim3 grid, dim3 block) {
  return AMP_EMU_LAUNCH(coords, grid, block, 0, nullptr, out);
}

/* y = a * x + y, no barrier: runs as a plain loop. */
__global__ void saxpy(int n, float a, const float *x, float *y) {
  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = a * x[i] + y[i];
}

int run_saxpy(int n, float a, const float *x, float *y, int block, int plain) {
  int grid = (n + block - 1) / block;
  if (plain) return AMP_EMU_LAUNCH_PLAIN(saxpy, grid, block, 0, nullptr, n, a, x, y);
  return AMP_EMU_LAUNCH(saxpy, grid, block, 0, nullptr, n, a, x, y);
}
int run_block_sum_plain(const float *in, float *out, int n, int grid, int block) {
  return AMP_EMU_LAUNCH_PLAIN(block_sum, grid, block, 0, nullptr, in, out, n);
}

/* Device functions nvcc gives kernels without an include, under __launch_bounds__: out[8 * i + k]. */
__constant__ float intrinsics_bias[1] = {0.25f};
__global__ void __launch_bounds__(128) intrinsics(const float *x, const unsigned *u, float *out, unsigned *bits, int n) {
  int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  float v = __ldg(&x[i]);
  out[4 * i + 0] = min(v, 0.5f) + max(i, 2) + intrinsics_bias[0];
  out[4 * i + 1] = rsqrtf(v) + __expf(v) + __logf(v) + __fdividef(v, 3.0f);
  out[4 * i + 2] = __saturatef(v - 0.5f) + fminf(v, 1.0f) + sqrtf(v);
  out[4 * i + 3] = (float)min(i, 7) + (float)max((unsigned)i, 3u);
  unsigned w = __ldg(&u[i]);
  bits[4 * i + 0] = (unsigned)__popc(w);
  bits[4 * i + 1] = (unsigned)__clz((int)w);
  bits[4 * i + 2] = (unsigned)__ffs((int)w);
  bits[4 * i + 3] = __brev(w);
}

int run_intrinsics(const float *x, const unsigned *u, float *out, unsigned *bits, int n) {
  return AMP_EMU_LAUNCH_PLAIN(intrinsics, (n + 127) / 128, 128, 0, nullptr, x, u, out, bits, n);
}

/* Per block: how many of in[] are positive, whether all are, whether any is (block barriers that
 * reduce a predicate); `planted` makes warp 0 wait at a plain __syncthreads instead. */
__global__ void block_votes(const int *in, int *count, int *all, int *any, int planted) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  int p = in[i] > 0;
  int c;
  if (planted && threadIdx.x < 32) {
    __syncthreads(); /* PLANTED BUG: not the barrier the other threads wait at */
    c = -1;
  } else {
    c = __syncthreads_count(p);
  }
  int a = __syncthreads_and(p), o = __syncthreads_or(p);
  if (threadIdx.x == blockDim.x - 1) {
    count[blockIdx.x] = c;
    all[blockIdx.x] = a;
    any[blockIdx.x] = o;
  }
}

int run_block_votes(const int *in, int *count, int *all, int *any, int grid, int block, int planted) {
  return AMP_EMU_LAUNCH(block_votes, grid, block, 0, nullptr, in, count, all, any, planted);
}
