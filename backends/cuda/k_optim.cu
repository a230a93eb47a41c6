/* The optimizer and loss-scaling kernels (kernels_optim.h): UnscaleCheck, SGD, AdamW,
 * LossScaleUpdate, with the per-element math of backends/optim.h.
 *
 * Multi-tensor launches: a by-value argument struct (batch) holds up to AMP_CUDA_OPTIM_BATCH
 * tensors; every block takes one chunk of AMP_OPTIM_CHUNK elements of one tensor, found from the
 * batch's running block counts. Nothing is read on the host: a step's scalars (lr, step,
 * found_inf, scale) are read by a one-thread prologue that writes a control block in the
 * workspace, which the later launches of the step read in stream order.
 *
 * The global norm is the CPU backend's, bit for bit: per chunk, the squares (double, exact for
 * an f32 operand) of the unscaled gradient go to shared memory, four threads add the elements
 * j = 0, 1, 2, 3 (mod 4) in order, and (s0 + s1) + (s2 + s3) is the chunk's sum; one thread then
 * adds the chunks in order. Chunks start at multiples of AMP_OPTIM_CHUNK in each tensor, as on
 * the CPU. A contracted multiply-add cannot change a square's sum either: the square is exact. */
#include "backends/cuda/launch.h"

#include <math.h>

#include "backends/cuda/kernels_optim.h"
#include "backends/optim.h"
#ifndef __CUDACC__
#include "backends/cuda/emu/fake_runtime.h" /* amp_emu_is_device */
#endif

#define OPT_THREADS 256
#define OPT_PER_THREAD (AMP_OPTIM_CHUNK / OPT_THREADS)

/* what the prologue reads and derives, for the step's other launches */
struct optim_ctrl {
  int skip;    /* found_inf: the step writes nothing */
  int first;   /* SGD: step was 0, the momentum buffer starts as the gradient */
  float inv;   /* 1 / scale */
  float clip;  /* clip_grad_norm_'s factor, 1 without clipping */
  double norm; /* the global norm, once known */
  amp_sgd_hp sgd;
  amp_adamw_hp adam;
};
/* the control block comes first in the workspace */
static_assert(sizeof(optim_ctrl) <= AMP_CUDA_OPTIM_PART_OFFSET, "the control block outgrew its slot");

struct optim_tensor {
  void *w;
  const void *g;
  void *m, *v;
  int64_t numel;
  int64_t part0; /* the tensor's first chunk in the step's chunk numbering */
  int32_t wt, gt, mt, vt;
};

struct optim_batch {
  int count;
  int64_t block0[AMP_CUDA_OPTIM_BATCH + 1]; /* tensor j has blocks [block0[j], block0[j + 1]) */
  optim_tensor t[AMP_CUDA_OPTIM_BATCH];
};

static int64_t n_chunks(int64_t numel) { return (numel + AMP_OPTIM_CHUNK - 1) / AMP_OPTIM_CHUNK; }

/* the batch's tensor of this block (count is small: a scan) */
static __device__ int block_tensor(const optim_batch &b, int64_t blk) {
  int j = 0;
  while (j + 1 < b.count && blk >= b.block0[j + 1]) j++;
  return j;
}

static __device__ float inv_scale(const float *scale) {
  return scale ? (float)(1.0 / (double)scale[0]) : 1.0f; /* GradScaler's: reciprocal in double */
}

/* ---- UnscaleCheck --------------------------------------------------------------------------- */

static __device__ double ld_double(amp_dtype t, const void *p, int64_t i) {
  return t == AMP_F64 ? ((const double *)p)[i] : (double)amp_cuda_ldf(t, p, i);
}

/* Every thread that finds a bad element stores 1: the same value, so the race is benign. */
__global__ void unscale_check_kernel(optim_batch b, const float *scale, uint8_t *found) {
  const int64_t blk = blockIdx.x;
  const int j = block_tensor(b, blk);
  const optim_tensor &t = b.t[j];
  const int64_t lo = (blk - b.block0[j]) * AMP_OPTIM_CHUNK;
  const float inv = inv_scale(scale);
  const amp_dtype gt = (amp_dtype)t.gt;
  bool bad = false;
  for (int r = 0; r < OPT_PER_THREAD; r++) {
    const int64_t e = lo + r * OPT_THREADS + threadIdx.x;
    if (e < t.numel) bad = bad || amp_unscale_bad(ld_double(gt, t.g, e), inv);
  }
  if (bad) found[0] = 1;
}

/* ---- SGD and AdamW ---------------------------------------------------------------------------- */

/* found_inf and scale may be NULL (false and 1) */
__global__ void optim_prologue(amp_cuda_optim_attrs a, const float *lr_p, const float *step_p,
                               const uint8_t *found_inf, const float *scale, optim_ctrl *c) {
  c->skip = found_inf && found_inf[0] != 0;
  if (c->skip) return;
  const float lr = lr_p[0], step = step_p[0], new_step = step + 1.0f;
  c->inv = inv_scale(scale);
  c->clip = 1.0f;
  c->norm = 0.0;
  c->first = step <= 0.0f;
  c->sgd.lr = lr;
  c->sgd.momentum = a.momentum;
  c->sgd.dampening = a.dampening;
  c->sgd.weight_decay = a.weight_decay;
  c->sgd.nesterov = a.nesterov;
  /* the bias corrections use the incremented step, in double as torch's Python floats */
  const double b1 = a.beta1, b2 = a.beta2;
  c->adam.beta1 = a.beta1;
  c->adam.beta2 = a.beta2;
  c->adam.eps = a.eps;
  c->adam.decay = (float)(1.0 - (double)lr * (double)a.weight_decay);
  c->adam.step_size = (float)((double)lr / (1.0 - pow(b1, (double)new_step)));
  c->adam.bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)new_step));
}

static __device__ double sum_parts(const double *part, int64_t count) {
  double s = 0;
  for (int64_t i = 0; i < count; i++) s += part[i];
  return s;
}

/* clip 1: the norm of the chunk sums and the clipping factor (before the update);
 * clip 0: the end of the step: the norm unless clipping computed it, grad_norm and step */
__global__ void optim_norm(optim_ctrl *c, const double *part, int64_t count, float max_norm, int clip, float *step,
                           float *grad_norm) {
  if (clip) {
    if (c->skip) return;
    c->norm = sqrt(sum_parts(part, count));
    c->clip = amp_clip_coef(c->norm, max_norm);
    return;
  }
  if (c->skip) {
    grad_norm[0] = INFINITY;
    return;
  }
  if (max_norm <= 0.0f) c->norm = sqrt(sum_parts(part, count));
  grad_norm[0] = (float)c->norm;
  step[0] = step[0] + 1.0f;
}

/* After sq[0..len) holds a chunk's squares: its sum in the CPU's order, into *out (thread 0). */
static __device__ void chunk_sum(const double *sq, int64_t len, double *out) {
  __shared__ double lane[4];
  const unsigned t = threadIdx.x;
  __syncthreads();
  if (t < 4) {
    double s = 0;
    for (int64_t j = t; j < len; j += 4) s += sq[j];
    lane[t] = s;
  }
  __syncthreads();
  if (t == 0) *out = (lane[0] + lane[1]) + (lane[2] + lane[3]);
}

/* the chunk sums of squares of the unscaled gradients alone (clipping needs the norm first) */
__global__ void optim_sumsq(optim_batch b, const optim_ctrl *c, double *part) {
  __shared__ double sq[AMP_OPTIM_CHUNK];
  if (c->skip) return; /* every thread of the block leaves, before any barrier */
  const int64_t blk = blockIdx.x;
  const int j = block_tensor(b, blk);
  const optim_tensor &t = b.t[j];
  const int64_t chunk = blk - b.block0[j], lo = chunk * AMP_OPTIM_CHUNK;
  const int64_t len = t.numel - lo < AMP_OPTIM_CHUNK ? t.numel - lo : AMP_OPTIM_CHUNK;
  const float inv = c->inv;
  for (int r = 0; r < OPT_PER_THREAD; r++) {
    const int64_t k = r * OPT_THREADS + threadIdx.x;
    if (k >= len) break;
    const float g = amp_cuda_ldf((amp_dtype)t.gt, t.g, lo + k) * inv;
    sq[k] = (double)g * g;
  }
  chunk_sum(sq, len, &part[t.part0 + chunk]);
}

/* The update of one chunk; with part (no clipping) also its sum of squares, as the CPU records
 * it on the way. */
__global__ void optim_update(optim_batch b, const optim_ctrl *c, int kind, double *part) {
  __shared__ double sq[AMP_OPTIM_CHUNK];
  if (c->skip) return;
  const int64_t blk = blockIdx.x;
  const int j = block_tensor(b, blk);
  const optim_tensor &t = b.t[j];
  const int64_t chunk = blk - b.block0[j], lo = chunk * AMP_OPTIM_CHUNK;
  const int64_t len = t.numel - lo < AMP_OPTIM_CHUNK ? t.numel - lo : AMP_OPTIM_CHUNK;
  const float inv = c->inv, clip = c->clip;
  const bool first = c->first != 0;
  const amp_sgd_hp sgd = c->sgd;
  const amp_adamw_hp adam = c->adam;
  const amp_dtype wt = (amp_dtype)t.wt, gt = (amp_dtype)t.gt, mt = (amp_dtype)t.mt, vt = (amp_dtype)t.vt;
  for (int r = 0; r < OPT_PER_THREAD; r++) {
    const int64_t k = r * OPT_THREADS + threadIdx.x, e = lo + k;
    if (k >= len) break;
    float g = amp_cuda_ldf(gt, t.g, e) * inv;
    if (part) sq[k] = (double)g * g;
    if (clip != 1.0f) g *= clip;
    float w = amp_cuda_ldf(wt, t.w, e);
    float m = t.m ? amp_cuda_ldf(mt, t.m, e) : 0.0f;
    if (kind == AMP_CUDA_ADAMW) {
      float v = amp_cuda_ldf(vt, t.v, e);
      w = amp_adamw_elem(w, g, &m, &v, &adam);
      amp_cuda_stf(vt, t.v, e, v);
    } else {
      w = amp_sgd_elem(w, g, &m, first, &sgd);
    }
    amp_cuda_stf(wt, t.w, e, w);
    if (t.m) amp_cuda_stf(mt, t.m, e, m);
  }
  if (part) chunk_sum(sq, len, &part[t.part0 + chunk]);
}

/* ---- launchers ----------------------------------------------------------------------------- */

static bool float16_or_32(amp_dtype t) { return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16; }

/* Whether a tensor's bytes are device memory. The emulator checks the pointer arguments of a
 * launch, but not the pointers inside a by-value batch, so the launchers check those here,
 * before the first launch (a host pointer fails the call with nothing written). */
static bool on_device(const amp_tensor *t) {
#ifdef __CUDACC__
  (void)t;
  return true;
#else
  const size_t bytes = (size_t)t->numel * (t->dtype == AMP_F64 ? 8 : t->dtype == AMP_F32 ? 4 : 2);
  return bytes == 0 || amp_emu_is_device(t->data, bytes);
#endif
}

/* Groups tensors into batches of at most AMP_CUDA_OPTIM_BATCH non-empty tensors and launches
 * launch(batch, blocks) for each; tensor(i, &t) fills tensor i (its part0 is set here). */
template <class Tensor, class Launch>
static cudaError_t for_batches(int n, Tensor tensor, Launch launch) {
  optim_batch b;
  b.count = 0;
  b.block0[0] = 0;
  int64_t part0 = 0;
  for (int i = 0; i < n; i++) {
    optim_tensor t;
    tensor(i, &t);
    const int64_t ch = n_chunks(t.numel);
    if (ch == 0) continue;
    if (ch > 0x7fffffff - b.block0[b.count]) return cudaErrorInvalidValue;
    t.part0 = part0;
    part0 += ch;
    b.t[b.count] = t;
    b.block0[b.count + 1] = b.block0[b.count] + ch;
    b.count++;
    if (b.count == AMP_CUDA_OPTIM_BATCH) {
      cudaError_t e = launch(b, (unsigned)b.block0[b.count]);
      if (e != cudaSuccess) return e;
      b.count = 0;
    }
  }
  return b.count ? launch(b, (unsigned)b.block0[b.count]) : cudaSuccess;
}

extern "C" cudaError_t amp_cuda_unscale_check(cudaStream_t s, const float *scale, int n, const amp_tensor *const *g,
                                              uint8_t *found_inf) {
  if (n < 0 || !found_inf || !scale) return cudaErrorInvalidValue;
  for (int i = 0; i < n; i++) {
    if (!g[i] || (!float16_or_32(g[i]->dtype) && g[i]->dtype != AMP_F64)) return cudaErrorInvalidValue;
    if (!on_device(g[i])) return cudaErrorInvalidDevicePointer;
  }
  cudaError_t e = cudaMemsetAsync(found_inf, 0, 1, s);
  if (e != cudaSuccess) return e;
  return for_batches(
      n,
      [&](int i, optim_tensor *t) {
        *t = optim_tensor{};
        t->g = g[i]->data;
        t->gt = g[i]->dtype;
        t->numel = g[i]->numel;
      },
      [&](const optim_batch &b, unsigned blocks) {
        return AMP_CUDA_LAUNCH_PLAIN(unscale_check_kernel, dim3(blocks), dim3(OPT_THREADS), 0, s, b, scale, found_inf);
      });
}

static int64_t total_chunks(const amp_cuda_optim_tensors *t) {
  int64_t c = 0;
  for (int i = 0; i < t->n; i++) c += n_chunks(t->w[i]->numel);
  return c;
}

extern "C" size_t amp_cuda_optim_ws_bytes(const amp_cuda_optim_tensors *t) {
  return AMP_CUDA_OPTIM_PART_OFFSET + (size_t)total_chunks(t) * sizeof(double);
}

/* the tensors and dtypes the step takes: cudaSuccess, cudaErrorInvalidValue or (a tensor that
 * is not device memory) cudaErrorInvalidDevicePointer */
static cudaError_t optim_tensors_ok(const amp_cuda_optim_attrs *a, const amp_cuda_optim_tensors *t) {
  const bool need_m = a->kind == AMP_CUDA_ADAMW || a->momentum != 0.0f, need_v = a->kind == AMP_CUDA_ADAMW;
  if (t->n < 0 || !t->w || !t->g || (need_m && !t->m) || (need_v && !t->v)) return cudaErrorInvalidValue;
  for (int i = 0; i < t->n; i++) {
    const amp_tensor *w = t->w[i], *g = t->g[i], *m = need_m ? t->m[i] : nullptr, *v = need_v ? t->v[i] : nullptr;
    if (!w || !g || !float16_or_32(w->dtype) || !float16_or_32(g->dtype) || g->numel != w->numel)
      return cudaErrorInvalidValue;
    if (need_m && (!m || m->numel != w->numel || (m->dtype != w->dtype && m->dtype != AMP_F32)))
      return cudaErrorInvalidValue;
    if (need_v && (!v || v->numel != w->numel || (v->dtype != w->dtype && v->dtype != AMP_F32)))
      return cudaErrorInvalidValue;
    if (!on_device(w) || !on_device(g) || (m && !on_device(m)) || (v && !on_device(v)))
      return cudaErrorInvalidDevicePointer;
  }
  return cudaSuccess;
}

extern "C" cudaError_t amp_cuda_optim_step(cudaStream_t s, const amp_cuda_optim_attrs *a, const float *lr, float *step,
                                           const uint8_t *found_inf, const float *scale,
                                           const amp_cuda_optim_tensors *ts, void *ws, size_t ws_bytes,
                                           float *grad_norm) {
  if (!a || (a->kind != AMP_CUDA_SGD && a->kind != AMP_CUDA_ADAMW) || !ts || !lr || !step || !grad_norm || !ws)
    return cudaErrorInvalidValue;
  cudaError_t e = optim_tensors_ok(a, ts);
  if (e != cudaSuccess) return e;
  if (ws_bytes < amp_cuda_optim_ws_bytes(ts)) return cudaErrorInvalidValue;
  optim_ctrl *ctrl = (optim_ctrl *)ws;
  double *part = (double *)((char *)ws + AMP_CUDA_OPTIM_PART_OFFSET);
  const int64_t chunks = total_chunks(ts);
  const bool clipping = a->max_grad_norm > 0.0f;
  const bool need_m = a->kind == AMP_CUDA_ADAMW || a->momentum != 0.0f, need_v = a->kind == AMP_CUDA_ADAMW;
  auto tensor = [&](int i, optim_tensor *t) {
    *t = optim_tensor{};
    t->w = ts->w[i]->data;
    t->g = ts->g[i]->data;
    t->m = need_m ? ts->m[i]->data : nullptr;
    t->v = need_v ? ts->v[i]->data : nullptr;
    t->numel = ts->w[i]->numel;
    t->wt = ts->w[i]->dtype;
    t->gt = ts->g[i]->dtype;
    t->mt = need_m ? ts->m[i]->dtype : AMP_F32;
    t->vt = need_v ? ts->v[i]->dtype : AMP_F32;
  };
  e = AMP_CUDA_LAUNCH_PLAIN(optim_prologue, dim3(1), dim3(1), 0, s, *a, lr, (const float *)step, found_inf,
                                        scale, ctrl);
  if (e == cudaSuccess && clipping) {
    e = for_batches(ts->n, tensor, [&](const optim_batch &b, unsigned blocks) {
      return AMP_CUDA_LAUNCH(optim_sumsq, dim3(blocks), dim3(OPT_THREADS), 0, s, b, (const optim_ctrl *)ctrl, part);
    });
    if (e == cudaSuccess)
      e = AMP_CUDA_LAUNCH_PLAIN(optim_norm, dim3(1), dim3(1), 0, s, ctrl, (const double *)part, chunks,
                                a->max_grad_norm, 1, step, grad_norm);
  }
  if (e == cudaSuccess)
    e = for_batches(ts->n, tensor, [&](const optim_batch &b, unsigned blocks) {
      return AMP_CUDA_LAUNCH(optim_update, dim3(blocks), dim3(OPT_THREADS), 0, s, b, (const optim_ctrl *)ctrl,
                             a->kind, clipping ? nullptr : part);
    });
  if (e == cudaSuccess)
    e = AMP_CUDA_LAUNCH_PLAIN(optim_norm, dim3(1), dim3(1), 0, s, ctrl, (const double *)part, chunks,
                              a->max_grad_norm, 0, step, grad_norm);
  return e;
}

/* ---- LossScaleUpdate ------------------------------------------------------------------------ */

__global__ void loss_scale_kernel(float *scale, float *tracker, const uint8_t *found_inf, float interval, float growth,
                                  float backoff, float *out) {
  amp_loss_scale_step(scale, tracker, found_inf[0] != 0, interval, growth, backoff);
  out[0] = scale[0];
}

extern "C" cudaError_t amp_cuda_loss_scale_update(cudaStream_t s, float *scale, float *tracker,
                                                  const uint8_t *found_inf, float growth_interval, float growth_factor,
                                                  float backoff_factor, float *new_scale) {
  if (!scale || !tracker || !found_inf || !new_scale) return cudaErrorInvalidValue;
  return AMP_CUDA_LAUNCH_PLAIN(loss_scale_kernel, dim3(1), dim3(1), 0, s, scale, tracker, found_inf, growth_interval,
                               growth_factor, backoff_factor, new_scale);
}
