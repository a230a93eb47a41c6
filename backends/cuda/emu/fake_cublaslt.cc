/* The emulator's cuBLASLt: the calls that need a device, defined here so that they win over the
 * real library's at link time, and computed on the CPU (fake_cublaslt.h).
 *
 * Everything cublasLtMatmul is to compute is read back through the real library's getters
 * (cublasLtMatmulDescGetAttribute, cublasLtMatrixLayoutGetAttribute,
 * cublasLtMatmulPreferenceGetAttribute): a test then checks what cuBLASLt understood from the
 * descriptors, not what the caller meant. What this emulation supports is what amprt asks for:
 * column-major layouts, FP32/FP16/BF16 operands with FP32 compute (TF32 rounding when asked),
 * host alpha and beta, the epilogues DEFAULT, BIAS, RELU, RELU_BIAS, GELU, GELU_BIAS, GELU_AUX and
 * GELU_AUX_BIAS (GELU is the tanh approximation, as backends/elementwise.h's amp_gelu_tanh_f:
 * v = alpha acc + beta C + bias in f32, the activation on v, one rounding into D; the aux matrix
 * gets round(v)). Any other attribute value fails with
 * CUBLAS_STATUS_NOT_SUPPORTED and a message (amp_emu_cublaslt_error); nothing is silently
 * computed some other way.
 *
 * The heuristic returns one algorithm that records the alignment and workspace it was chosen
 * for; the matmul refuses pointers that break them (a GPU would fault or refuse). Which engine a
 * real GPU picks, and whether it accepts the configuration at run time, is only checked on one. */
#include "backends/cuda/emu/fake_cublaslt.h"

/* before cublasLt.h: its cuda_fp16.h declares a global `half` that a local of half.h would
 * shadow (-Wshadow) */
#include "base/half.h"

#include <cublasLt.h>

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "backends/cuda/emu/fake_runtime.h"
#include "backends/elementwise.h"

namespace {

thread_local char t_error[512];
std::atomic<unsigned long long> g_matmuls{0}, g_heuristics{0};

constexpr uint64_t HANDLE_MAGIC = 0x414d50454d554c54ull; /* "AMPEMULT" */
constexpr uint64_t ALGO_MAGIC = 0x414d50454d55414cull;   /* "AMPEMUAL" */
/* what the fake heuristic asks for: always some workspace, so that the planner's is exercised */
constexpr size_t FAKE_WS = 64 << 10;

struct fake_handle {
  uint64_t magic;
};

/* the algo's opaque words: what the heuristic chose it for */
enum { ALGO_TAG, ALGO_ALIGN_A, ALGO_ALIGN_B, ALGO_ALIGN_C, ALGO_ALIGN_D, ALGO_ALIGN_BIAS, ALGO_ALIGN_AUX, ALGO_WS };
static_assert(ALGO_WS < 8, "cublasLtMatmulAlgo_t holds 8 words");

cublasStatus_t refuse(cublasStatus_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cublasStatus_t refuse(cublasStatus_t st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_error, sizeof t_error, fmt, ap);
  va_end(ap);
  return st;
}

bool handle_ok(cublasLtHandle_t h) {
  return h && reinterpret_cast<const fake_handle *>(h)->magic == HANDLE_MAGIC;
}

size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

bool float_type(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

/* the real getters, one name for the three kinds of descriptor */
cublasStatus_t get_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, void *v, size_t n, size_t *w) {
  return cublasLtMatmulDescGetAttribute(d, a, v, n, w);
}
cublasStatus_t get_attr(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, void *v, size_t n, size_t *w) {
  return cublasLtMatrixLayoutGetAttribute(l, a, v, n, w);
}
cublasStatus_t get_attr(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, void *v, size_t n,
                        size_t *w) {
  return cublasLtMatmulPreferenceGetAttribute(p, a, v, n, w);
}

/* one attribute through the real getter, which must write exactly sizeof(T) bytes */
template <typename Obj, typename Attr, typename T>
cublasStatus_t get(Obj obj, Attr a, T *v, const char *name) {
  size_t w = 0;
  cublasStatus_t st = get_attr(obj, a, v, sizeof *v, &w);
  if (st != CUBLAS_STATUS_SUCCESS) return refuse(st, "cannot read %s", name);
  if (w != sizeof *v) return refuse(CUBLAS_STATUS_INTERNAL_ERROR, "%s has %zu bytes", name, w);
  return st;
}

#define GET(obj, attr, v) \
  do { \
    cublasStatus_t st_ = get((obj), (attr), (v), #attr); \
    if (st_ != CUBLAS_STATUS_SUCCESS) return st_; \
  } while (0)

struct mat {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch;
  int64_t stride;
  /* elements from the first to one past the last one the matrix covers, over the batch */
  uint64_t extent() const {
    if (rows == 0 || cols == 0) return 0;
    return (uint64_t)(batch > 1 ? (batch - 1) * stride : 0) + (cols - 1) * (uint64_t)ld + rows;
  }
};

cublasStatus_t read_layout(cublasLtMatrixLayout_t l, const char *name, mat *m) {
  if (!l) return refuse(CUBLAS_STATUS_INVALID_VALUE, "layout %s is NULL", name);
  uint32_t type;
  int32_t order;
  int64_t plane;
  GET(l, CUBLASLT_MATRIX_LAYOUT_TYPE, &type);
  GET(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &order);
  GET(l, CUBLASLT_MATRIX_LAYOUT_ROWS, &m->rows);
  GET(l, CUBLASLT_MATRIX_LAYOUT_COLS, &m->cols);
  GET(l, CUBLASLT_MATRIX_LAYOUT_LD, &m->ld);
  GET(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &m->batch);
  GET(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &m->stride);
  GET(l, CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET, &plane);
  m->type = (cudaDataType_t)type;
  if (!float_type(m->type))
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "layout %s: data type %u is not emulated", name, type);
  if (order != CUBLASLT_ORDER_COL)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "layout %s: order %d is not emulated (column-major only)", name, order);
  if (plane != 0) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "layout %s: planar complex", name);
  if (m->rows > INT32_MAX || m->cols > INT32_MAX)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "layout %s: %llu x %llu exceeds int32", name,
                  (unsigned long long)m->rows, (unsigned long long)m->cols);
  if (m->ld < (int64_t)(m->rows > 0 ? m->rows : 1))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "layout %s: ld %lld is below its %llu rows", name, (long long)m->ld,
                  (unsigned long long)m->rows);
  if (m->batch < 1 || m->stride < 0)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "layout %s: batch %d, stride %lld", name, m->batch,
                  (long long)m->stride);
  return CUBLAS_STATUS_SUCCESS;
}

/* a matmul as the descriptors describe it */
struct problem {
  int32_t compute, scale, pmode, ta, tb;
  uint32_t epilogue;
  const void *bias;
  cudaDataType_t bias_type;
  int64_t bias_stride;
  bool has_bias, relu, gelu, has_aux; /* what the epilogue does */
  void *aux;                           /* the pre-activation, D's rows x cols with aux_ld */
  cudaDataType_t aux_type;
  int64_t aux_ld, aux_stride;
  mat a, b, c, d;
  uint64_t m, n, k;
};

cublasStatus_t read_problem(cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                            cublasLtMatrixLayout_t lc, cublasLtMatrixLayout_t ld, problem *p) {
  if (!op) return refuse(CUBLAS_STATUS_INVALID_VALUE, "matmul descriptor is NULL");
  int32_t tc, bias_type;
  GET(op, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE, &p->compute);
  GET(op, CUBLASLT_MATMUL_DESC_SCALE_TYPE, &p->scale);
  GET(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &p->pmode);
  GET(op, CUBLASLT_MATMUL_DESC_TRANSA, &p->ta);
  GET(op, CUBLASLT_MATMUL_DESC_TRANSB, &p->tb);
  GET(op, CUBLASLT_MATMUL_DESC_TRANSC, &tc);
  GET(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &p->epilogue);
  GET(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p->bias);
  GET(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type);
  GET(op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &p->bias_stride);
  static const struct {
    cublasLtMatmulDescAttributes_t attr;
    const char *name;
  } unused[] = {{CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, "A scale"},
                {CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, "B scale"},
                {CUBLASLT_MATMUL_DESC_C_SCALE_POINTER, "C scale"},
                {CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, "D scale"},
                {CUBLASLT_MATMUL_DESC_AMAX_D_POINTER, "amax D"},
                {CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_POINTER, "epilogue aux scale"},
                {CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_AMAX_POINTER, "epilogue aux amax"}};
  for (const auto &u : unused) {
    const void *ptr;
    GET(op, u.attr, &ptr);
    if (ptr) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "the %s pointer is set: not emulated", u.name);
  }
  if (p->compute != CUBLAS_COMPUTE_32F && p->compute != CUBLAS_COMPUTE_32F_FAST_TF32)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d is not emulated (32F, 32F_FAST_TF32)", p->compute);
  if (p->scale != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "scale type %d with FP32 compute is not emulated", p->scale);
  if (p->pmode != CUBLASLT_POINTER_MODE_HOST)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "pointer mode %d is not emulated (host alpha and beta)", p->pmode);
  if (tc != CUBLAS_OP_N) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "TRANSC %d (cuBLASLt supports N only)", tc);
  for (int32_t t : {p->ta, p->tb})
    if (t != CUBLAS_OP_N && t != CUBLAS_OP_T)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "operation %d is not emulated (N, T)", t);
  switch (p->epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: case CUBLASLT_EPILOGUE_BIAS: case CUBLASLT_EPILOGUE_RELU:
    case CUBLASLT_EPILOGUE_RELU_BIAS: case CUBLASLT_EPILOGUE_GELU: case CUBLASLT_EPILOGUE_GELU_BIAS:
    case CUBLASLT_EPILOGUE_GELU_AUX: case CUBLASLT_EPILOGUE_GELU_AUX_BIAS: break;
    default:
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                    "epilogue %u is not emulated (DEFAULT, BIAS, RELU, RELU_BIAS, GELU, GELU_BIAS, GELU_AUX, "
                    "GELU_AUX_BIAS)", p->epilogue);
  }
  p->has_bias = p->epilogue & CUBLASLT_EPILOGUE_BIAS;
  p->relu = p->epilogue & CUBLASLT_EPILOGUE_RELU;
  p->gelu = p->epilogue & CUBLASLT_EPILOGUE_GELU;
  p->has_aux = p->epilogue & 128; /* the _AUX bit */
  int32_t aux_type;
  GET(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p->aux);
  GET(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &p->aux_ld);
  GET(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, &p->aux_stride);
  GET(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type);
  if (p->aux && !p->has_aux)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "the epilogue aux pointer is set for epilogue %u, which has no aux",
                  p->epilogue);

  cublasStatus_t st;
  if ((st = read_layout(la, "A", &p->a)) != CUBLAS_STATUS_SUCCESS ||
      (st = read_layout(lb, "B", &p->b)) != CUBLAS_STATUS_SUCCESS ||
      (st = read_layout(lc, "C", &p->c)) != CUBLAS_STATUS_SUCCESS ||
      (st = read_layout(ld, "D", &p->d)) != CUBLAS_STATUS_SUCCESS)
    return st;
  if (p->a.type != p->b.type)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "A type %d and B type %d differ", p->a.type, p->b.type);
  if (p->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && p->a.type != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "TF32 compute needs FP32 operands, has type %d", p->a.type);
  if (p->c.type != p->d.type) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "C and D types differ");
  if (p->d.type != p->a.type && p->d.type != CUDA_R_32F)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "D type %d with operands of type %d", p->d.type, p->a.type);
  p->bias_type = bias_type == -1 ? p->d.type : (cudaDataType_t)bias_type;
  if (p->has_bias && p->bias_type != p->d.type)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "bias type %d differs from D's %d", p->bias_type, p->d.type);
  p->aux_type = aux_type == -1 ? p->d.type : (cudaDataType_t)aux_type;
  if (p->has_aux) {
    /* cuBLASLt: the GELU input matrix has D's element type, its ld and batch stride are
     * multiples of 8 and the ld covers D's rows */
    if (p->aux_type != p->d.type)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "aux type %d differs from D's %d", p->aux_type, p->d.type);
    if (p->aux_ld % 8 || p->aux_ld < (int64_t)p->d.rows)
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "aux ld %lld: must be a multiple of 8 and at least D's %llu rows",
                    (long long)p->aux_ld, (unsigned long long)p->d.rows);
    if (p->d.batch > 1 &&
        (p->aux_stride % 8 || p->aux_stride < 0 ||
         (p->d.cols > 0 && (uint64_t)p->aux_stride < (p->d.cols - 1) * (uint64_t)p->aux_ld + p->d.rows)))
      return refuse(CUBLAS_STATUS_INVALID_VALUE,
                    "aux batch stride %lld: must be a multiple of 8 and not overlap its matrices",
                    (long long)p->aux_stride);
  }

  /* D is m x n; op(A) m x k; op(B) k x n */
  p->m = p->d.rows;
  p->n = p->d.cols;
  uint64_t am = p->ta == CUBLAS_OP_N ? p->a.rows : p->a.cols, ak = p->ta == CUBLAS_OP_N ? p->a.cols : p->a.rows;
  uint64_t bk = p->tb == CUBLAS_OP_N ? p->b.rows : p->b.cols, bn = p->tb == CUBLAS_OP_N ? p->b.cols : p->b.rows;
  p->k = ak;
  if (p->c.rows != p->m || p->c.cols != p->n || am != p->m || bn != p->n || bk != ak)
    return refuse(CUBLAS_STATUS_INVALID_VALUE,
                  "shapes do not chain: op(A) %llu x %llu, op(B) %llu x %llu, C %llu x %llu, D %llu x %llu",
                  (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn,
                  (unsigned long long)p->c.rows, (unsigned long long)p->c.cols, (unsigned long long)p->m,
                  (unsigned long long)p->n);
  if (p->a.batch != p->d.batch || p->b.batch != p->d.batch || p->c.batch != p->d.batch)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "batch counts differ: A %d, B %d, C %d, D %d", p->a.batch, p->b.batch,
                  p->c.batch, p->d.batch);
  if (p->d.batch > 1 && (uint64_t)p->d.stride < (p->n - 1) * (uint64_t)p->d.ld + p->m)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "D's batch stride %lld overlaps its matrices", (long long)p->d.stride);
  if (p->k == 0)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "k == 0 is not emulated (amprt zeroes D itself)");
  return CUBLAS_STATUS_SUCCESS;
}

unsigned lowest_bit(uintptr_t v) {
  unsigned a = 1;
  while (a < 256 && !(v & a)) a <<= 1;
  return a;
}

/* an operand's pointer and batch stride keep the alignment the algorithm was chosen for */
bool keeps_align(const void *ptr, const mat &m, uint64_t align) {
  if (align <= 1) return true;
  if ((uintptr_t)ptr % align) return false;
  return m.batch <= 1 || ((uint64_t)m.stride * type_size(m.type)) % align == 0;
}

float load(cudaDataType_t t, const void *p, uint64_t i) {
  switch (t) {
    case CUDA_R_16F: return amp_f16_to_f32(static_cast<const uint16_t *>(p)[i]);
    case CUDA_R_16BF: return amp_bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
    default: return static_cast<const float *>(p)[i];
  }
}

void store(cudaDataType_t t, void *p, uint64_t i, float v) {
  switch (t) {
    case CUDA_R_16F: static_cast<uint16_t *>(p)[i] = amp_f32_to_f16(v); break;
    case CUDA_R_16BF: static_cast<uint16_t *>(p)[i] = amp_f32_to_bf16(v); break;
    default: static_cast<float *>(p)[i] = v;
  }
}

/* TF32: 10 explicit mantissa bits, rounded to nearest even (NaN and inf pass) */
float to_tf32(float x) {
  uint32_t u = amp_f32_bits(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0xfffu + ((u >> 13) & 1u);
  return amp_bits_f32(u & ~0x1fffu);
}

/* D = alpha op(A) op(B) + beta C (+ bias), all read as the problem says */
cudaError_t compute(const problem &p, float alpha, float beta, const void *A, const void *B, const void *C, void *D,
                    void *ws, size_t ws_bytes) {
  /* a workspace holds garbage for whoever reads it next */
  if (ws && ws_bytes) std::memset(ws, 0xFF, ws_bytes);
  const bool tf32 = p.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  const uint64_t m = p.m, n = p.n, k = p.k;
  std::vector<float> aw, bw;
  std::vector<double> acc;
  try {
    aw.resize(m * k);
    bw.resize(k * n);
    acc.resize(m);
  } catch (const std::bad_alloc &) {
    return cudaErrorMemoryAllocation;
  }
  const size_t ea = type_size(p.a.type), eb = type_size(p.b.type), ec = type_size(p.c.type),
               ed = type_size(p.d.type), ebias = type_size(p.bias_type);
  for (int32_t bt = 0; bt < p.d.batch; bt++) {
    const char *a = static_cast<const char *>(A) + (size_t)bt * p.a.stride * ea;
    const char *b = static_cast<const char *>(B) + (size_t)bt * p.b.stride * eb;
    const char *c = static_cast<const char *>(C) + (size_t)bt * p.c.stride * ec;
    char *d = static_cast<char *>(D) + (size_t)bt * p.d.stride * ed;
    const char *bias =
        p.has_bias ? static_cast<const char *>(p.bias) + (size_t)bt * p.bias_stride * ebias : nullptr;
    char *aux = p.has_aux ? static_cast<char *>(p.aux) + (size_t)bt * p.aux_stride * ed : nullptr;
    /* op(A) as aw[i + q m], op(B) as bw[q + j k] */
    for (uint64_t q = 0; q < k; q++)
      for (uint64_t i = 0; i < m; i++) {
        float v = load(p.a.type, a, p.ta == CUBLAS_OP_N ? i + q * p.a.ld : q + i * p.a.ld);
        aw[i + q * m] = tf32 ? to_tf32(v) : v;
      }
    for (uint64_t j = 0; j < n; j++)
      for (uint64_t q = 0; q < k; q++) {
        float v = load(p.b.type, b, p.tb == CUBLAS_OP_N ? q + j * p.b.ld : j + q * p.b.ld);
        bw[q + j * k] = tf32 ? to_tf32(v) : v;
      }
    for (uint64_t j = 0; j < n; j++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (uint64_t q = 0; q < k; q++) {
        const double bv = bw[q + j * k];
        const float *ac = &aw[q * m];
        for (uint64_t i = 0; i < m; i++) acc[i] += (double)ac[i] * bv;
      }
      for (uint64_t i = 0; i < m; i++) {
        float r = alpha * (float)acc[i];
        if (beta != 0.0f) r += beta * load(p.c.type, c, i + j * p.c.ld); /* beta 0: C is not read */
        if (bias) r += load(p.bias_type, bias, i);
        if (aux) store(p.aux_type, aux, i + j * p.aux_ld, r); /* the pre-activation */
        if (p.relu) r = amp_relu_f(r);
        if (p.gelu) r = amp_gelu_tanh_f(r);
        store(p.d.type, d, i + j * p.d.ld, r);
      }
    }
  }
  return cudaSuccess;
}

}  // namespace

extern "C" {

const char *amp_emu_cublaslt_error(void) { return t_error; }

void amp_emu_cublaslt_clear(void) { t_error[0] = 0; }

unsigned long long amp_emu_cublaslt_matmuls(void) { return g_matmuls.load(); }

unsigned long long amp_emu_cublaslt_heuristics(void) { return g_heuristics.load(); }

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
  t_error[0] = 0;
  if (!handle) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate: handle is NULL");
  fake_handle *h = new (std::nothrow) fake_handle{HANDLE_MAGIC};
  if (!h) return refuse(CUBLAS_STATUS_ALLOC_FAILED, "cublasLtCreate: out of memory");
  *handle = reinterpret_cast<cublasLtHandle_t>(h);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  t_error[0] = 0;
  if (!handle_ok(handle)) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy: not a handle");
  fake_handle *h = reinterpret_cast<fake_handle *>(handle);
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t op,
                                              cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                                              cublasLtMatrixLayout_t lc, cublasLtMatrixLayout_t ld,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *count) {
  t_error[0] = 0;
  if (!handle_ok(handle)) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "heuristic: not a handle");
  if (!pref || !count || requested < 1 || !results)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "heuristic: no preference, no result space");
  *count = 0;
  problem p;
  cublasStatus_t st = read_problem(op, la, lb, lc, ld, &p);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  uint64_t ws_limit;
  uint32_t al[4];
  GET(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_limit);
  GET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0]);
  GET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1]);
  GET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2]);
  GET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[3]);
  std::memset(&results[0], 0, sizeof results[0]);
  uint64_t *w = results[0].algo.data;
  w[ALGO_TAG] = ALGO_MAGIC;
  for (int i = 0; i < 4; i++) w[ALGO_ALIGN_A + i] = al[i] ? al[i] : 1;
  /* cuBLASLt takes the bias pointer's alignment from its value (NULL: any) */
  w[ALGO_ALIGN_BIAS] = p.bias ? lowest_bit((uintptr_t)p.bias) : 256;
  w[ALGO_ALIGN_AUX] = p.aux ? lowest_bit((uintptr_t)p.aux) : 256;
  w[ALGO_WS] = ws_limit < FAKE_WS ? ws_limit : FAKE_WS;
  results[0].workspaceSize = w[ALGO_WS];
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *count = 1;
  g_heuristics++;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t stream) {
  t_error[0] = 0;
  if (!handle_ok(handle)) return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtMatmul: not a handle");
  problem p;
  cublasStatus_t st = read_problem(op, la, lb, lc, ld, &p);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (!alpha || !beta) return refuse(CUBLAS_STATUS_INVALID_VALUE, "alpha or beta is NULL");
  /* host pointer mode, FP32 scale type: read now, as cuBLASLt does */
  const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
  uint64_t need_ws = 0, align[6] = {1, 1, 1, 1, 1, 1};
  if (algo) {
    if (algo->data[ALGO_TAG] != ALGO_MAGIC)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "the algorithm did not come from cublasLtMatmulAlgoGetHeuristic");
    for (int i = 0; i < 6; i++) align[i] = algo->data[ALGO_ALIGN_A + i];
    need_ws = algo->data[ALGO_WS];
  }
  if (ws_bytes < need_ws)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "workspace of %zu bytes, the algorithm needs %llu", ws_bytes,
                  (unsigned long long)need_ws);
  if (ws_bytes && !amp_emu_is_device(ws, ws_bytes))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "the workspace (%p, %zu bytes) is not device memory", ws, ws_bytes);
  if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool has_bias = p.has_bias, reads_c = be != 0.0f;
  const struct {
    const char *name;
    const void *ptr;
    const mat *m;
    bool used;
  } ops[4] = {{"A", A, &p.a, true}, {"B", B, &p.b, true}, {"C", C, &p.c, reads_c}, {"D", D, &p.d, true}};
  for (int i = 0; i < 4; i++) {
    if (!ops[i].used) continue;
    size_t bytes = ops[i].m->extent() * type_size(ops[i].m->type);
    if (!ops[i].ptr || !amp_emu_is_device(ops[i].ptr, bytes))
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s (%p, %zu bytes) is not device memory", ops[i].name,
                    ops[i].ptr, bytes);
    if (!keeps_align(ops[i].ptr, *ops[i].m, align[i]))
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s (%p, batch stride %lld) breaks the %llu-byte alignment the "
                    "algorithm was chosen for", ops[i].name, ops[i].ptr, (long long)ops[i].m->stride,
                    (unsigned long long)align[i]);
  }
  if (C == D && (p.c.ld != p.d.ld || (p.d.batch > 1 && p.c.stride != p.d.stride)))
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "in place (C == D) with different C and D layouts");
  if (has_bias) {
    size_t bytes = ((size_t)(p.d.batch - 1) * p.bias_stride + p.m) * type_size(p.bias_type);
    if (!p.bias || !amp_emu_is_device(p.bias, bytes))
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "the bias (%p, %zu bytes) is not device memory", p.bias, bytes);
    if ((uintptr_t)p.bias % align[4])
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "the bias %p breaks the %llu-byte alignment the algorithm was "
                    "chosen for", p.bias, (unsigned long long)align[4]);
  }
  if (p.has_aux) {
    const uint64_t ext = (uint64_t)(p.d.batch > 1 ? (p.d.batch - 1) * p.aux_stride : 0) +
                         (p.n - 1) * (uint64_t)p.aux_ld + p.m;
    const size_t bytes = ext * type_size(p.aux_type);
    if (!p.aux || !amp_emu_is_device(p.aux, bytes))
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "the aux matrix (%p, %zu bytes) is not device memory", p.aux, bytes);
    if ((uintptr_t)p.aux % align[5])
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "the aux matrix %p breaks the %llu-byte alignment the algorithm "
                    "was chosen for", p.aux, (unsigned long long)align[5]);
    const char *ax = static_cast<const char *>(p.aux), *dx = static_cast<const char *>(D);
    const size_t d_bytes = p.d.extent() * type_size(p.d.type);
    if (ax < dx + d_bytes && dx < ax + bytes)
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "the aux matrix overlaps D");
  }
  g_matmuls++;
  cudaError_t e = amp_emu_enqueue(stream, "cublasLtMatmul", [p, al, be, A, B, C, D, ws, ws_bytes]() {
    return compute(p, al, be, A, B, C, D, ws, ws_bytes);
  });
  if (e == cudaErrorMemoryAllocation) return refuse(CUBLAS_STATUS_ALLOC_FAILED, "out of host memory");
  if (e != cudaSuccess) return refuse(CUBLAS_STATUS_EXECUTION_FAILED, "the stream refused the matmul (%d)", (int)e);
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
