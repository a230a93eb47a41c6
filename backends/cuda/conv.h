/* Convolutions through cuDNN's graph ("backend") C API: forward, backward-data and
 * backward-filter, one execution plan per shape, and the device properties the heuristics and
 * plans are built for.
 *
 * A plan is built at plan time (op_conv.c's prepare): NCHW tensor descriptors with packed
 * strides, 16-byte alignment and one uid each (X 1, W 2, Y 3), a convolution descriptor
 * (cross-correlation, FP32 compute for f32, f16 and bf16; dilations, strides, pre and post
 * paddings; groups follow from the channel dims), one operation, the operation graph, engine
 * heuristics in mode A, and the first configuration whose plan finalises. A forward plan may
 * add Conv's bias in the same graph (a pointwise ADD on the FP32 sum, a virtual tensor) and then
 * an activation (a pointwise RELU_FWD on the FP32 value: only the last operation writes Y, so Y is
 * rounded once). amp_cuda_conv_fwd_get falls back to conv_bias.cu's kernel for the activation,
 * then for the bias too, when no engine finalises the fused graph. f32 skips engines that use
 * tensor cores (TF32) unless cu->allow_tf32; every dtype prefers deterministic engines
 * (a run is bit-identical to the last, which CUDA graph replay relies on) and takes a
 * nondeterministic one only when nothing else finalises. 1-D convolutions run as 2-D with H = 1.
 *
 * Plans are cached on the amp_cuda by everything that defines them (kind, dtype, dims,
 * geometry, bias, activation, TF32 choice), so the same convolution in two steps, or in two
 * plans of one session, is built once. The cache owns its plans until amp_cuda_conv_cache_free. */
#ifndef AMP_BACKENDS_CUDA_CONV_H
#define AMP_BACKENDS_CUDA_CONV_H

#include "backends/cuda/cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device properties (devprop.c) ------------------------------------------------------------ */

/* Sets cu->devprop (a finalised CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR): on the emulator from the
 * committed H100 description (backends/cuda/emu/h100-device-properties.json), on a device from
 * cu->dnn and cu->device. Leaves cu->devprop NULL on failure (message on cu->ctx). */
amp_status amp_cuda_devprop_create(amp_cuda *cu);
/* Destroys cu->devprop and sets it NULL; harmless when it is NULL. */
void amp_cuda_devprop_destroy(amp_cuda *cu);
/* cuDNN's JSON of cu->devprop, NUL-terminated, allocated on cu->ctx (free with amp_dealloc). */
amp_status amp_cuda_devprop_json(amp_cuda *cu, char **json);
/* The embedded H100 description (emulator builds only; a generated source defines it). */
extern const unsigned char amp_cuda_h100_devprop[];
extern const unsigned long amp_cuda_h100_devprop_len;

/* ---- convolution plans ------------------------------------------------------------------------- */

typedef enum amp_cuda_conv_kind {
    AMP_CUDA_CONV_FWD = 0,  /* Y = conv(X, W) */
    AMP_CUDA_CONV_BWD_DATA, /* dX = conv_bwd_data(dY, W): X is the output */
    AMP_CUDA_CONV_BWD_FILTER /* dW = conv_bwd_filter(X, dY): W is the output */
} amp_cuda_conv_kind;

/* Test-only changes to a plan (they make it wrong on purpose; 0 in amprt's own use). */
enum {
    AMP_CUDA_CONV_PLANT_X_STRIDES = 1u, /* X's descriptor says NCWH strides while the data is NCHW */
    AMP_CUDA_CONV_PLANT_CONV_MODE = 2u, /* CUDNN_CONVOLUTION (a flipped kernel) in place of cross-correlation */
    AMP_CUDA_CONV_PLANT_FAIL_FIRST = 4u, /* the first configuration that finalises counts as failed */
    AMP_CUDA_CONV_PLANT_NO_FUSION = 8u,  /* a graph with a bias or an activation finalises no plan (as where no
                                            engine fuses them): amp_cuda_conv_fwd_get then takes the fallback */
    AMP_CUDA_CONV_PLANT_RELU_SCALED = 16u, /* the relu's alpha1 is 2 (y = 2 relu(x)): the emulator must refuse it */
    AMP_CUDA_CONV_PLANT_NO_ACT_FUSION = 32u /* a graph with an activation finalises no plan (a bias alone does) */
};

/* The activation after a forward convolution (and its bias). */
typedef enum amp_cuda_conv_act {
    AMP_CUDA_CONV_ACT_NONE = 0,
    AMP_CUDA_CONV_ACT_RELU /* y = x < 0 ? 0 : x on the FP32 value (amp_relu_f: NaN passes through) */
} amp_cuda_conv_act;

/* What defines a plan. Zero it (memset) before filling: it is the cache key, compared bytewise. */
typedef struct amp_cuda_conv_desc {
    amp_cuda_conv_kind kind;
    amp_dtype dtype;     /* of X, W and Y alike: f32, f16, bf16 */
    int nsp;             /* spatial dims: 1 or 2 (1 runs as 2 with H = 1) or 3 */
    int64_t x[5], w[5], y[5]; /* N C spatial..., M C/G k..., N M out... (nsp + 2 each) */
    int64_t stride[3], dilation[3], pre[3], post[3];
    int bias;            /* FWD only: Y = conv + B[c] in the same graph (a pointwise ADD on the FP32 sum) */
    amp_cuda_conv_act act; /* FWD only: Y = act(conv [+ B]) in the same graph (a pointwise op on the FP32 value) */
    unsigned plant;      /* AMP_CUDA_CONV_PLANT_* */
    int tf32;            /* filled by amp_cuda_conv_plan_get from cu->allow_tf32 */
} amp_cuda_conv_desc;

typedef struct amp_cuda_conv_plan amp_cuda_conv_plan;

/* The cached plan of d, built now when there is none. *out is borrowed from the cache. */
amp_status amp_cuda_conv_plan_get(amp_cuda *cu, const amp_cuda_conv_desc *d, const amp_cuda_conv_plan **out);
/* Workspace bytes the plan needs (what cuDNN reported when it finalised the plan). */
size_t amp_cuda_conv_plan_workspace(const amp_cuda_conv_plan *p);
/* Engine configurations the heuristics returned, and the index of the one in use. */
int amp_cuda_conv_plan_configs(const amp_cuda_conv_plan *p);
int amp_cuda_conv_plan_config_used(const amp_cuda_conv_plan *p);
/* The numerical notes of the engine in use, bit 1 << n for cudnnBackendNumericalNote_t n. */
unsigned amp_cuda_conv_plan_notes(const amp_cuda_conv_plan *p);
/* Plans in cu's cache. */
int amp_cuda_conv_cache_count(const amp_cuda *cu);
/* Frees every cached plan; harmless on an empty cache. */
void amp_cuda_conv_cache_free(amp_cuda *cu);

/* The variant pack of one step, kept between its runs and rebuilt only when a pointer changes
 * (the arena's pointers stay put from step to step). Zero it before its first use. */
typedef struct amp_cuda_conv_pack {
    cudnnBackendDescriptor_t vp;
    const amp_cuda_conv_plan *plan;
    void *ptrs[4], *ws;
    int builds; /* variant packs built so far (tests) */
} amp_cuda_conv_pack;
/* Destroys the variant pack (builds is kept); harmless on a zeroed or freed one. */
void amp_cuda_conv_pack_free(amp_cuda_conv_pack *pk);

/* Enqueues the plan on cu->stream. x, w, y are device pointers to the tensors of d (the output
 * is y for FWD, x for BWD_DATA, w for BWD_FILTER; it is overwritten), b the bias (plans with
 * d.bias; NULL otherwise), ws a device workspace of ws_bytes, at least the plan's workspace (may
 * be NULL when that is 0). pk keeps the variant pack for the next run (NULL: built for this run
 * and destroyed). */
amp_status amp_cuda_conv_run(amp_cuda *cu, const amp_cuda_conv_plan *p, amp_cuda_conv_pack *pk, void *x, void *w,
                             void *y, const void *b, void *ws, size_t ws_bytes);

/* A forward convolution with its epilogue (d->bias, d->act): the fused plan where one finalises;
 * else the plan with the bias alone and the activation by conv_bias.cu's kernel after it (relu
 * commutes with rounding: the same bits); else the plan of the convolution alone and the bias and
 * the activation by the kernel (f16 and bf16 outputs are then rounded twice when there is a bias). */
typedef struct amp_cuda_conv_fwd {
    const amp_cuda_conv_plan *plan; /* borrowed from the cache */
    bool bias_kernel, act_kernel;   /* the bias, the activation by conv_bias.cu, not in the plan */
    int bias;
    amp_cuda_conv_act act;
    int64_t N, M, S; /* images, output channels, output positions (the kernel's geometry) */
} amp_cuda_conv_fwd;

/* Fills *f for the forward desc d (kind FWD). A d whose fused graph no engine finalises takes
 * the fallback; any other failure is returned (message on cu->ctx). */
amp_status amp_cuda_conv_fwd_get(amp_cuda *cu, const amp_cuda_conv_desc *d, amp_cuda_conv_fwd *f);
/* Enqueues f on cu->stream: the plan, then the kernel when f->bias_kernel or f->act_kernel. b:
 * the bias when f->bias, else NULL. As amp_cuda_conv_run otherwise. */
amp_status amp_cuda_conv_fwd_run(amp_cuda *cu, const amp_cuda_conv_fwd *f, amp_cuda_conv_pack *pk, void *x, void *w,
                                 void *y, const void *b, void *ws, size_t ws_bytes);

#ifdef __cplusplus
}
#endif

#endif
