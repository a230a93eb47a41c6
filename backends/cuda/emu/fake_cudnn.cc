/* The emulator's cuDNN: the calls that need a device, computed on the CPU.
 *
 * Everything else is the real libcudnn: descriptors, heuristics, plan finalisation (given a
 * device-property descriptor, backends/cuda/devprop.c). Interposed here, because they need a
 * device or because the real library does not let us read back what we need:
 *
 *   cudnnCreate / cudnnDestroy / cudnnSetStream / cudnnGetStream: a handle is a stream holder
 *     (the real cudnnCreate fails with no driver); plans need no handle (cuDNN 9 deprecates
 *     the graph and plan HANDLE attributes: heuristics and finalisation run on the device
 *     property descriptor).
 *   cudnnBackendExecute: reads the plan back through the real getters (its workspace size and
 *     CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION, cuDNN's own serialisation of the operation
 *     graph it finalised: tensors with dims, strides, data type, uid, alignment, virtuality; the
 *     convolution with its mode, compute type, alpha, beta, paddings, strides, dilations, groups;
 *     a forward convolution may be followed by a pointwise ADD of a bias to its virtual sum and
 *     then a pointwise RELU_FWD (or the RELU_FWD alone), intermediates virtual FP32; the
 *     engine it names must be the one plan -> engine config -> engine gives), checks
 *     every pointer and the workspace, poisons the workspace and the output, and computes the
 *     convolution in FP32 on the CPU, through amp_emu_enqueue on the handle's stream. cuDNN 9.19
 *     answers NOT_SUPPORTED for CUDNN_ATTR_OPERATIONGRAPH_OPS, so the plan's JSON is the one
 *     read-back of the graph there is.
 *   cudnnBackendSetAttribute / cudnnBackendDestroyDescriptor: forwarded to the real library;
 *     the variant pack's uids and data pointers are recorded on the way, because the real
 *     getters answer NOT_SUPPORTED for them (its workspace pointer is read back through the
 *     real getter).
 *   cudnnGetLastErrorString: the message of the interposer's last refusal, else the library's.
 *
 * Anything in the plan this file does not understand (another operation or fusion, a by-value
 * tensor, a virtual one that is not an intermediate of the chain, a clipped or leaky relu,
 * vectorised or reordered layouts, another convolution mode or compute type, data types that differ) is
 * CUDNN_STATUS_NOT_SUPPORTED with a message, never a guess. */
#include <cudnn.h>
#include <dlfcn.h>

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cuda/emu/fake_runtime.h"
#include "base/half.h"

namespace {

/* ---- messages --------------------------------------------------------------------------------- */

thread_local std::string last_message;

cudnnStatus_t refuse(cudnnStatus_t s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudnnStatus_t refuse(cudnnStatus_t s, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  last_message = std::string("emulated cudnnBackendExecute: ") + buf;
  return s;
}

/* ---- the real library's functions we forward to -------------------------------------------- */

template <class F> F real(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  return reinterpret_cast<F>(p);
}

using set_fn = cudnnStatus_t (*)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t, cudnnBackendAttributeType_t,
                                 int64_t, const void *);
using destroy_fn = cudnnStatus_t (*)(cudnnBackendDescriptor_t);
using lasterr_fn = void (*)(char *, size_t);

/* ---- variant packs ------------------------------------------------------------------------- */

struct pack_record {
  std::vector<int64_t> uids;
  std::vector<void *> ptrs;
};

struct pack_registry {
  std::mutex mu;
  std::map<cudnnBackendDescriptor_t, pack_record> packs;
};

pack_registry &packs() {
  static pack_registry r;
  return r;
}

/* ---- handles ------------------------------------------------------------------------------- */

struct fake_handle {
  unsigned magic;
  cudaStream_t stream;
};
constexpr unsigned kHandleMagic = 0xC0DD17u;

fake_handle *handle_of(cudnnHandle_t h) {
  auto *f = reinterpret_cast<fake_handle *>(h);
  return f && f->magic == kHandleMagic ? f : nullptr;
}

/* ---- a small JSON reader (the plan's serialisation) ------------------------------------------ */

struct jv {
  enum kind { NUL, BOOL, NUM, STR, ARR, OBJ } k = NUL;
  double num = 0;
  std::string str;
  std::vector<jv> arr;
  std::vector<std::pair<std::string, jv>> obj;

  const jv *get(const char *key) const {
    for (auto &kv : obj)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
};

struct json_reader {
  const char *p, *end;
  bool ok = true;

  void ws() {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  }
  bool lit(const char *s) {
    size_t n = std::strlen(s);
    if ((size_t)(end - p) < n || std::memcmp(p, s, n)) return false;
    p += n;
    return true;
  }
  std::string string() {
    std::string out;
    p++; /* the opening quote */
    while (p < end && *p != '"') {
      if (*p == '\\') {
        if (++p >= end) break;
        char c = *p;
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c; /* the plan's JSON has no \u escapes we need */
      } else {
        out += *p;
      }
      p++;
    }
    if (p >= end) ok = false;
    p++;
    return out;
  }
  jv value(int depth) {
    jv v;
    ws();
    if (p >= end || depth > 32) {
      ok = false;
      return v;
    }
    if (*p == '{') {
      v.k = jv::OBJ;
      p++;
      ws();
      if (p < end && *p == '}') {
        p++;
        return v;
      }
      while (ok) {
        ws();
        if (p >= end || *p != '"') {
          ok = false;
          break;
        }
        std::string key = string();
        ws();
        if (p >= end || *p != ':') {
          ok = false;
          break;
        }
        p++;
        v.obj.emplace_back(key, value(depth + 1));
        ws();
        if (p < end && *p == ',') {
          p++;
          continue;
        }
        if (p < end && *p == '}') {
          p++;
          break;
        }
        ok = false;
      }
    } else if (*p == '[') {
      v.k = jv::ARR;
      p++;
      ws();
      if (p < end && *p == ']') {
        p++;
        return v;
      }
      while (ok) {
        v.arr.push_back(value(depth + 1));
        ws();
        if (p < end && *p == ',') {
          p++;
          continue;
        }
        if (p < end && *p == ']') {
          p++;
          break;
        }
        ok = false;
      }
    } else if (*p == '"') {
      v.k = jv::STR;
      v.str = string();
    } else if (lit("true")) {
      v.k = jv::BOOL;
      v.num = 1;
    } else if (lit("false")) {
      v.k = jv::BOOL;
    } else if (lit("null")) {
      v.k = jv::NUL;
    } else {
      char *e = nullptr;
      std::string tok(p, (size_t)std::min<ptrdiff_t>(end - p, 64));
      v.num = std::strtod(tok.c_str(), &e);
      if (e == tok.c_str()) {
        ok = false;
        return v;
      }
      v.k = jv::NUM;
      p += e - tok.c_str();
    }
    return v;
  }
};

/* ---- the convolution the plan describes -------------------------------------------------- */

enum elem { E_F32, E_F16, E_BF16 };
constexpr int kMaxRank = 5;

struct tensor {
  int64_t uid = -1;
  elem type = E_F32;
  int rank = 0;
  int64_t dim[kMaxRank] = {0}, stride[kMaxRank] = {0};
  int64_t align = 0;
  bool virt = false; /* an intermediate of the graph: FP32, never in memory */
  void *ptr = nullptr;
};

enum op_kind { OP_FWD, OP_BWD_DATA, OP_BWD_FILTER };

struct conv_job {
  op_kind op = OP_FWD;
  tensor x, w, y;  /* X (dX), W (dW), Y (dY); Y virtual when a pointwise op follows */
  bool fused = false; /* forward + pointwise ops: they write out, Y is the virtual sum */
  bool bias = false; /* pointwise ADD: alpha1 * Y + alpha2 * B (B broadcast) */
  bool relu = false; /* then (or alone) pointwise RELU_FWD: x < 0 ? 0 : x */
  tensor b, out;
  float alpha1 = 1, alpha2 = 1;
  int nsp = 0;     /* spatial dims of the tensors */
  int64_t pre[3] = {0}, stride[3] = {1, 1, 1}, dil[3] = {1, 1, 1}, groups = 1;
  float alpha = 1, beta = 0;
  void *ws = nullptr;
  size_t ws_bytes = 0;
};

size_t elem_size(elem e) { return e == E_F32 ? 4 : 2; }

float load(const tensor &t, int64_t off) {
  switch (t.type) {
    case E_F16: return amp_f16_to_f32(static_cast<const uint16_t *>(t.ptr)[off]);
    case E_BF16: return amp_bf16_to_f32(static_cast<const uint16_t *>(t.ptr)[off]);
    default: return static_cast<const float *>(t.ptr)[off];
  }
}

void store(const tensor &t, int64_t off, float v) {
  switch (t.type) {
    case E_F16: static_cast<uint16_t *>(t.ptr)[off] = amp_f32_to_f16(v); break;
    case E_BF16: static_cast<uint16_t *>(t.ptr)[off] = amp_f32_to_bf16(v); break;
    default: static_cast<float *>(t.ptr)[off] = v;
  }
}

/* bytes from the tensor's pointer to one past its last element (0 when it has none) */
size_t extent(const tensor &t) {
  int64_t last = 0;
  for (int i = 0; i < t.rank; i++) {
    if (t.dim[i] == 0) return 0;
    last += (t.dim[i] - 1) * t.stride[i];
  }
  return (size_t)(last + 1) * elem_size(t.type);
}

/* The tensors' dims with the spatial ones padded to three (leading 1s); offsets through the
 * descriptor's strides, so a descriptor that says another layout than the data reads it wrong. */
struct view {
  int64_t d[5], s[5];
  explicit view(const tensor &t, int nsp) {
    d[0] = t.dim[0], d[1] = t.dim[1], s[0] = t.stride[0], s[1] = t.stride[1];
    for (int i = 0; i < 3; i++) {
      int j = i - (3 - nsp);
      d[2 + i] = j < 0 ? 1 : t.dim[2 + j];
      s[2 + i] = j < 0 ? 0 : t.stride[2 + j];
    }
  }
  int64_t off(int64_t n, int64_t c, const int64_t *sp) const {
    return n * s[0] + c * s[1] + sp[0] * s[2] + sp[1] * s[3] + sp[2] * s[4];
  }
};

/* the conv geometry padded to three spatial dims */
struct geom {
  int64_t pre[3], st[3], dil[3];
  explicit geom(const conv_job &j) {
    for (int i = 0; i < 3; i++) {
      int k = i - (3 - j.nsp);
      pre[i] = k < 0 ? 0 : j.pre[k];
      st[i] = k < 0 ? 1 : j.stride[k];
      dil[i] = k < 0 ? 1 : j.dil[k];
    }
  }
};

/* The taps of one group as a column matrix: entry (ck, o), ck = (c, kd, kh, kw) of the group's
 * kernel, o the output position, is the row-major index of the input element it reads within
 * the group's dense [Cg, D, H, W] slab of X (o * stride - pre + k * dilation), or -1 where
 * that falls in the padding. */
std::vector<int64_t> tap_map(const conv_job &j, const view &X, const view &W, const view &Y) {
  geom g(j);
  const int64_t ID = X.d[2], IH = X.d[3], IW = X.d[4];
  const int64_t Cg = W.d[1], KD = W.d[2], KH = W.d[3], KW = W.d[4];
  const int64_t OD = Y.d[2], OH = Y.d[3], OW = Y.d[4], O = OD * OH * OW;
  std::vector<int64_t> idx((size_t)(Cg * KD * KH * KW * O));
  size_t t = 0;
  for (int64_t c = 0; c < Cg; c++)
    for (int64_t kd = 0; kd < KD; kd++)
      for (int64_t kh = 0; kh < KH; kh++)
        for (int64_t kw = 0; kw < KW; kw++)
          for (int64_t od = 0; od < OD; od++)
            for (int64_t oh = 0; oh < OH; oh++)
              for (int64_t ow = 0; ow < OW; ow++) {
                int64_t id = od * g.st[0] - g.pre[0] + kd * g.dil[0];
                int64_t ih = oh * g.st[1] - g.pre[1] + kh * g.dil[1];
                int64_t iw = ow * g.st[2] - g.pre[2] + kw * g.dil[2];
                bool in = id >= 0 && id < ID && ih >= 0 && ih < IH && iw >= 0 && iw < IW;
                idx[t++] = in ? ((c * ID + id) * IH + ih) * IW + iw : -1;
              }
  return idx;
}

/* Calls fn(a, b, sp, flat) over every element of a view's dims, flat its row-major index. */
template <class F> void for_each_elem(const view &v, F fn) {
  int64_t sp[3], flat = 0;
  for (int64_t a = 0; a < v.d[0]; a++)
    for (int64_t b = 0; b < v.d[1]; b++)
      for (sp[0] = 0; sp[0] < v.d[2]; sp[0]++)
        for (sp[1] = 0; sp[1] < v.d[3]; sp[1]++)
          for (sp[2] = 0; sp[2] < v.d[4]; sp[2]++) fn(a, b, sp, flat++);
}

int64_t elems(const view &v) { return v.d[0] * v.d[1] * v.d[2] * v.d[3] * v.d[4]; }

/* A dense FP32 copy of a tensor, read through its descriptor's strides. */
std::vector<float> gather(const tensor &t, const view &v) {
  std::vector<float> out((size_t)elems(v));
  for_each_elem(v, [&](int64_t a, int64_t b, const int64_t *sp, int64_t f) { out[(size_t)f] = load(t, v.off(a, b, sp)); });
  return out;
}

/* The convolution in FP32 on the CPU: sums into an FP32 buffer of the output's size, then
 * out = alpha * sum + beta * out (then + the bias, then relu), rounded once to the output type. */
cudaError_t compute(const conv_job &j) {
  view X(j.x, j.nsp), W(j.w, j.nsp), Y(j.y, j.nsp);
  const tensor &out = j.op == OP_FWD ? (j.fused ? j.out : j.y) : j.op == OP_BWD_DATA ? j.x : j.w;
  view Out(out, j.nsp), Bv(j.bias ? j.b : out, j.nsp);
  const view &O = j.op == OP_FWD ? Y : j.op == OP_BWD_DATA ? X : W; /* the sum's dims */
  for (int i = 0; i < 5; i++) Bv.s[i] = Bv.d[i] == 1 ? 0 : Bv.s[i]; /* the bias broadcasts */
  std::vector<float> acc((size_t)elems(O), 0.0f), old;
  /* the output's old values first (beta), then poison: what the sum does not write stays NaN */
  if (j.beta != 0) old = gather(out, Out);
  for_each_elem(Out, [&](int64_t a, int64_t b, const int64_t *sp, int64_t) {
    if (out.type == E_F32)
      store(out, Out.off(a, b, sp), NAN);
    else
      static_cast<uint16_t *>(out.ptr)[Out.off(a, b, sp)] = 0xFFFFu;
  });
  /* per batch item and group, the taps as a column matrix (im2col) and one FP32 GEMM (OpenBLAS):
   * forward Y_g = W_g cols, backward-data cols = W_g^T dY_g scattered back, backward-filter
   * dW_g += dY_g cols^T */
  const int64_t N = X.d[0], C = X.d[1], M = W.d[0], G = j.groups, Cg = C / G, Mg = M / G;
  const int64_t XS = X.d[2] * X.d[3] * X.d[4], P = Y.d[2] * Y.d[3] * Y.d[4];
  const int64_t CK = W.d[1] * W.d[2] * W.d[3] * W.d[4];
  std::vector<int64_t> idx = tap_map(j, X, W, Y);
  std::vector<float> cols((size_t)(CK * P));
  switch (j.op) {
    case OP_FWD: {
      std::vector<float> xf = gather(j.x, X), wf = gather(j.w, W);
      for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
          const float *xs = xf.data() + (n * C + g * Cg) * XS;
          for (size_t t = 0; t < idx.size(); t++) cols[t] = idx[t] < 0 ? 0.0f : xs[idx[t]];
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Mg, (int)P, (int)CK, 1.0f,
                      wf.data() + g * Mg * CK, (int)CK, cols.data(), (int)P, 0.0f, acc.data() + (n * M + g * Mg) * P,
                      (int)P);
        }
      break;
    }
    case OP_BWD_DATA: {
      std::vector<float> yf = gather(j.y, Y), wf = gather(j.w, W);
      for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)CK, (int)P, (int)Mg, 1.0f, wf.data() + g * Mg * CK,
                      (int)CK, yf.data() + (n * M + g * Mg) * P, (int)P, 0.0f, cols.data(), (int)P);
          float *xs = acc.data() + (n * C + g * Cg) * XS;
          for (size_t t = 0; t < idx.size(); t++)
            if (idx[t] >= 0) xs[idx[t]] += cols[t];
        }
      break;
    }
    case OP_BWD_FILTER: {
      std::vector<float> yf = gather(j.y, Y), xf = gather(j.x, X);
      for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
          const float *xs = xf.data() + (n * C + g * Cg) * XS;
          for (size_t t = 0; t < idx.size(); t++) cols[t] = idx[t] < 0 ? 0.0f : xs[idx[t]];
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Mg, (int)CK, (int)P, 1.0f,
                      yf.data() + (n * M + g * Mg) * P, (int)P, cols.data(), (int)P, 1.0f, acc.data() + g * Mg * CK,
                      (int)CK);
        }
      break;
    }
  }
  for_each_elem(Out, [&](int64_t a, int64_t b, const int64_t *sp, int64_t f) {
    float v = j.alpha * acc[(size_t)f];
    if (j.beta != 0) v += j.beta * old[(size_t)f];
    if (j.bias) v = j.alpha1 * v + j.alpha2 * load(j.b, Bv.off(a, b, sp)); /* the virtual sum stays FP32 */
    if (j.relu) v = v < 0.0f ? 0.0f : v; /* NaN passes, -0 stays: cuDNN's max(x, lowerClip 0) is assumed so */
    store(out, Out.off(a, b, sp), v);
  });
  return cudaSuccess;
}

/* ---- reading the plan back ------------------------------------------------------------------ */

bool ints(const jv *v, int max, int64_t *out, int *n) {
  if (!v || v->k != jv::ARR || (int)v->arr.size() > max) return false;
  for (size_t i = 0; i < v->arr.size(); i++) {
    if (v->arr[i].k != jv::NUM || v->arr[i].num != std::floor(v->arr[i].num)) return false;
    out[i] = (int64_t)v->arr[i].num;
  }
  *n = (int)v->arr.size();
  return true;
}

cudnnStatus_t read_tensor(const jv &t, tensor *out) {
  static const char *const known[] = {"name",      "dataType", "dim",          "stride",     "isVirtual", "isByValue",
                                      "vectCount", "vectDim",  "ptrAlignment", "reordering"};
  for (auto &kv : t.obj) {
    bool k = false;
    for (const char *name : known) k |= kv.first == name;
    if (!k) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor attribute \"%s\" is not understood", kv.first.c_str());
  }
  const jv *name = t.get("name"), *type = t.get("dataType"), *virt = t.get("isVirtual"), *byval = t.get("isByValue"),
           *vect = t.get("vectCount"), *reord = t.get("reordering"), *align = t.get("ptrAlignment");
  if (!name || name->k != jv::STR || !type || type->k != jv::STR)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "a tensor without a name or data type");
  char *e = nullptr;
  out->uid = std::strtoll(name->str.c_str(), &e, 10);
  if (!e || *e) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor name \"%s\" is not a uid", name->str.c_str());
  if (type->str == "CUDNN_DATA_FLOAT")
    out->type = E_F32;
  else if (type->str == "CUDNN_DATA_HALF")
    out->type = E_F16;
  else if (type->str == "CUDNN_DATA_BFLOAT16")
    out->type = E_BF16;
  else
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor %lld: data type %s", (long long)out->uid, type->str.c_str());
  if (byval && byval->num != 0)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor %lld is by value", (long long)out->uid);
  out->virt = virt && virt->num != 0;
  if ((vect && vect->num != 1) || (reord && reord->str != "CUDNN_TENSOR_REORDERING_NONE"))
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor %lld is vectorised or reordered", (long long)out->uid);
  int nd = 0, ns = 0;
  if (!ints(t.get("dim"), kMaxRank, out->dim, &nd) || !ints(t.get("stride"), kMaxRank, out->stride, &ns) || nd != ns ||
      nd < 4)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor %lld: dims and strides of rank 4 or 5 expected",
                  (long long)out->uid);
  out->rank = nd;
  for (int i = 0; i < nd; i++)
    if (out->dim[i] < 0 || out->stride[i] < 0)
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor %lld: negative dim or stride", (long long)out->uid);
  out->align = align && align->k == jv::NUM ? (int64_t)align->num : 1;
  return CUDNN_STATUS_SUCCESS;
}

/* One pointwise node after a forward convolution, reading in (the chain's value so far, virtual)
 * and writing *out: ADD (out = alpha1 * in + alpha2 * B, B broadcast; first in the chain) or
 * RELU_FWD (out = relu(in): lower clip 0, no slope, no upper clip, alpha1 1; last in the chain). */
template <class F> cudnnStatus_t read_pointwise(const jv &node, F find, conv_job *j, const tensor &in, tensor *out) {
  static const char *const known[] = {"operation", "pointwiseMode", "mathPrec",  "alpha1",        "alpha2", "X",
                                      "B",         "Y",             "lowerClip", "lowerClipSlope", "upperClip"};
  for (auto &kv : node.obj) {
    bool k = false;
    for (const char *name : known) k |= kv.first == name;
    if (!k) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "pointwise attribute \"%s\" is not understood", kv.first.c_str());
  }
  const jv *op = node.get("operation"), *mode = node.get("pointwiseMode"), *prec = node.get("mathPrec");
  if (!op || op->str != "CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR" || j->op != OP_FWD)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "%s after a convolution (pointwise ops after a forward one expected)",
                  op ? op->str.c_str() : "(none)");
  if (!prec || prec->str != "CUDNN_DATA_FLOAT")
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "pointwise compute type %s", prec ? prec->str.c_str() : "(none)");
  const jv *a1 = node.get("alpha1"), *a2 = node.get("alpha2");
  float alpha1 = a1 && a1->k == jv::NUM ? (float)a1->num : 1.0f, alpha2 = a2 && a2->k == jv::NUM ? (float)a2->num : 1.0f;
  if (!find(node.get("X"), nullptr) || !find(node.get("Y"), out))
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "the pointwise node's X or Y is not one of the graph's tensors");
  const jv *xref = node.get("X");
  if (xref->str != std::to_string(in.uid) || !in.virt)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "pointwise node reads tensor %s, not the virtual %lld before it",
                  xref->str.c_str(), (long long)in.uid);
  if (mode && mode->str == "CUDNN_POINTWISE_ADD") {
    if (j->bias || j->relu)
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "an ADD after %s (one bias, before the activation, expected)",
                    j->relu ? "the activation" : "the bias");
    if (!find(node.get("B"), &j->b) || j->b.virt)
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "the ADD's B is not a tensor in memory");
    j->alpha1 = alpha1;
    j->alpha2 = alpha2;
    j->bias = true;
  } else if (mode && mode->str == "CUDNN_POINTWISE_RELU_FWD") {
    const jv *lo = node.get("lowerClip"), *slope = node.get("lowerClipSlope"), *hi = node.get("upperClip");
    if (j->relu) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "a second RELU_FWD");
    if (node.get("B")) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "a RELU_FWD with a B operand");
    if ((lo && (lo->k != jv::NUM || lo->num != 0)) || (slope && (slope->k != jv::NUM || slope->num != 0)) ||
        (hi && (hi->k != jv::NUM || hi->num < 3.4028234663852886e38)) || alpha1 != 1.0f)
      return refuse(CUDNN_STATUS_NOT_SUPPORTED,
                    "a clipped, leaky or scaled relu (lower clip %g, slope %g, upper clip %g, alpha1 %g)",
                    lo && lo->k == jv::NUM ? lo->num : 0.0, slope && slope->k == jv::NUM ? slope->num : 0.0,
                    hi && hi->k == jv::NUM ? hi->num : INFINITY, (double)alpha1);
    j->relu = true;
  } else {
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "pointwise mode %s (ADD and RELU_FWD only)",
                  mode ? mode->str.c_str() : "(none)");
  }
  return CUDNN_STATUS_SUCCESS;
}

/* The global index of the plan's engine, read through plan -> engine config -> engine. */
cudnnStatus_t plan_engine(cudnnBackendDescriptor_t plan, int64_t *id) {
  cudnnBackendDescriptor_t cfg = nullptr, eng = nullptr;
  int64_t n = 0;
  cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg);
  if (!s) s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng);
  if (!s) s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &cfg);
  if (!s) s = cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng);
  if (!s) s = cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, id);
  if (eng) cudnnBackendDestroyDescriptor(eng);
  if (cfg) cudnnBackendDestroyDescriptor(cfg);
  return s ? refuse(s, "the plan's engine cannot be read back") : CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t read_plan(cudnnBackendDescriptor_t plan, conv_job *j, int64_t *ws_size) {
  int64_t n = 0;
  cudnnStatus_t s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                             ws_size);
  if (s) return refuse(s, "the plan's workspace size cannot be read (is the plan finalised?)");
  int64_t len = 0;
  s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, 0, &len, nullptr);
  if (s || len <= 0) return refuse(s ? s : CUDNN_STATUS_BAD_PARAM, "the plan's JSON cannot be read");
  std::string text((size_t)len, '\0');
  s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, len, &n, &text[0]);
  if (s) return refuse(s, "the plan's JSON cannot be read");
  json_reader r{text.data(), text.data() + std::min<int64_t>(n, len)};
  jv root = r.value(0);
  if (!r.ok || root.k != jv::OBJ) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "the plan's JSON does not parse");
  /* the JSON must describe this plan's engine: plan -> engine config -> engine through the getters */
  int64_t engine_id = -1;
  if ((s = plan_engine(plan, &engine_id))) return s;
  const jv *engine = root.get("engine"), *eid = engine ? engine->get("engineId") : nullptr;
  if (!eid || eid->k != jv::NUM || (int64_t)eid->num != engine_id)
    return refuse(CUDNN_STATUS_BAD_PARAM, "the plan's JSON names engine %lld, its engine config engine %lld",
                  eid && eid->k == jv::NUM ? (long long)eid->num : -1LL, (long long)engine_id);
  const jv *graph = root.get("operationGraph");
  const jv *tensors = graph ? graph->get("tensors") : nullptr, *nodes = graph ? graph->get("nodes") : nullptr;
  if (!tensors || tensors->k != jv::ARR || !nodes || nodes->k != jv::ARR)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "the plan's JSON has no operation graph");
  size_t nt = tensors->arr.size(), nn = nodes->arr.size();
  if (nn < 1 || nn > 3 || nt < 3 || nt > 6)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED,
                  "a graph of %zu operations and %zu tensors (a convolution, then a bias and a relu after a forward "
                  "one, expected)",
                  nn, nt);
  std::vector<tensor> ts(nt);
  for (size_t i = 0; i < nt; i++)
    if ((s = read_tensor(tensors->arr[i], &ts[i]))) return s;
  auto find = [&](const jv *ref, tensor *out) {
    for (auto &t : ts)
      if (ref && ref->k == jv::STR && std::to_string(t.uid) == ref->str) {
        if (out) *out = t;
        return true;
      }
    return false;
  };
  const jv &node = nodes->arr[0];
  const jv *opname = node.get("operation");
  const char *xn, *wn, *yn;
  if (opname && opname->str == "CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR") {
    j->op = OP_FWD, xn = "X", wn = "W", yn = "Y";
  } else if (opname && opname->str == "CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR") {
    j->op = OP_BWD_DATA, xn = "dX", wn = "W", yn = "dY";
  } else if (opname && opname->str == "CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR") {
    j->op = OP_BWD_FILTER, xn = "X", wn = "dW", yn = "dY";
  } else {
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "operation %s is not emulated", opname ? opname->str.c_str() : "(none)");
  }
  const char *known[] = {"operation", "mode", "mathPrec", "alpha", "beta",  "pad", "pad_upper", "pad_lower",
                         "stride",    "dilation", "groupCount", xn, wn, yn};
  for (auto &kv : node.obj) {
    bool k = false;
    for (const char *name : known) k |= kv.first == name;
    if (!k) return refuse(CUDNN_STATUS_NOT_SUPPORTED, "convolution attribute \"%s\" is not understood", kv.first.c_str());
  }
  const jv *mode = node.get("mode"), *prec = node.get("mathPrec"), *alpha = node.get("alpha"), *beta = node.get("beta");
  if (!mode || mode->str != "CUDNN_CROSS_CORRELATION")
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "convolution mode %s", mode ? mode->str.c_str() : "(none)");
  if (!prec || prec->str != "CUDNN_DATA_FLOAT")
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "compute type %s (FP32 expected)", prec ? prec->str.c_str() : "(none)");
  j->alpha = alpha && alpha->k == jv::NUM ? (float)alpha->num : 1.0f;
  j->beta = beta && beta->k == jv::NUM ? (float)beta->num : 0.0f;
  tensor *slots[3] = {&j->x, &j->w, &j->y};
  const char *names[3] = {xn, wn, yn};
  for (int i = 0; i < 3; i++)
    if (!find(node.get(names[i]), slots[i]))
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "the convolution's %s is not one of the graph's tensors", names[i]);
  /* the pointwise nodes, followed from the convolution's output whatever their order in the JSON:
   * each reads the value before it, every intermediate is virtual FP32, the last writes memory */
  std::vector<int64_t> inter; /* the intermediates' uids */
  std::vector<bool> used(nn, false);
  tensor cur = j->y;
  j->fused = nn > 1;
  for (size_t step = 1; step < nn; step++) {
    if (!cur.virt || cur.type != E_F32)
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensor %lld feeds a pointwise node but is not virtual FP32",
                    (long long)cur.uid);
    inter.push_back(cur.uid);
    size_t k = 0;
    for (k = 1; k < nn; k++) {
      const jv *x = nodes->arr[k].get("X");
      if (!used[k] && x && x->k == jv::STR && x->str == std::to_string(cur.uid)) break;
    }
    if (k == nn)
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "no pointwise node reads tensor %lld", (long long)cur.uid);
    used[k] = true;
    tensor next;
    if ((s = read_pointwise(nodes->arr[k], find, j, cur, &next))) return s;
    cur = next;
  }
  if (j->fused) j->out = cur;
  if (nt != 3 + inter.size() + (j->bias ? 1 : 0))
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "%zu tensors in a graph of %zu operations%s", nt, nn,
                  j->bias ? " with a bias" : "");
  for (const tensor &t : ts)
    if (t.virt && std::find(inter.begin(), inter.end(), t.uid) == inter.end())
      return refuse(CUDNN_STATUS_NOT_SUPPORTED, "virtual tensor %lld is not an intermediate of the graph",
                    (long long)t.uid);
  if (j->fused && (j->out.virt || j->out.type != j->x.type || j->out.rank != j->x.rank ||
                   (j->bias && (j->b.type != j->x.type || j->b.rank != j->x.rank))))
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "the bias or the output differs from X in data type or rank, or the "
                                              "output is virtual");
  for (int i = 0; j->fused && i < j->out.rank; i++)
    if (j->out.dim[i] != j->y.dim[i] || (j->bias && j->b.dim[i] != 1 && j->b.dim[i] != j->y.dim[i]))
      return refuse(CUDNN_STATUS_BAD_PARAM, "dim %d: sum %lld, bias %lld, output %lld do not broadcast", i,
                    (long long)j->y.dim[i], j->bias ? (long long)j->b.dim[i] : 1LL, (long long)j->out.dim[i]);
  if (j->x.type != j->w.type || (j->fused ? j->y.type != E_F32 : j->x.type != j->y.type))
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensors of different data types");
  if (j->x.rank != j->w.rank || j->x.rank != j->y.rank)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "tensors of different ranks");
  j->nsp = j->x.rank - 2;
  int np = 0, nq = 0, ns = 0, nd = 0;
  int64_t lower[3], upper[3];
  bool pads;
  if (node.get("pad")) { /* symmetric paddings come as one list */
    pads = ints(node.get("pad"), 3, lower, &np);
    std::memcpy(upper, lower, sizeof lower);
    nq = np;
  } else {
    pads = ints(node.get("pad_lower"), 3, lower, &np) && ints(node.get("pad_upper"), 3, upper, &nq);
  }
  if (!pads || !ints(node.get("stride"), 3, j->stride, &ns) || !ints(node.get("dilation"), 3, j->dil, &nd) ||
      np != j->nsp || nq != j->nsp || ns != j->nsp || nd != j->nsp)
    return refuse(CUDNN_STATUS_NOT_SUPPORTED, "paddings, strides or dilations of the wrong length");
  std::memcpy(j->pre, lower, sizeof lower);
  const jv *groups = node.get("groupCount");
  j->groups = groups && groups->k == jv::NUM ? (int64_t)groups->num : 1;
  /* the shapes must agree with the geometry, as cuDNN checked when it finalised */
  const tensor &x = j->x, &w = j->w, &y = j->y;
  if (j->groups < 1 || x.dim[0] != y.dim[0] || x.dim[1] != w.dim[1] * j->groups || w.dim[0] != y.dim[1] ||
      w.dim[0] % j->groups)
    return refuse(CUDNN_STATUS_BAD_PARAM, "channels of X, W, Y and %lld groups disagree", (long long)j->groups);
  for (int i = 0; i < j->nsp; i++) {
    if (j->stride[i] < 1 || j->dil[i] < 1)
      return refuse(CUDNN_STATUS_BAD_PARAM, "stride or dilation below 1");
    int64_t span = x.dim[2 + i] + lower[i] + upper[i] - j->dil[i] * (w.dim[2 + i] - 1) - 1;
    int64_t want = span < 0 ? 0 : span / j->stride[i] + 1;
    if (y.dim[2 + i] != want)
      return refuse(CUDNN_STATUS_BAD_PARAM, "spatial dim %d of Y is %lld, the geometry gives %lld", i,
                    (long long)y.dim[2 + i], (long long)want);
  }
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
  /* cuDNN loads NVRTC while it finds engines and unloads it again; NVRTC carries its own C++
   * runtime, whose allocations then belong to no module and LeakSanitizer reports them. Kept
   * loaded (never closed), they stay reachable. Without NVRTC nothing needs doing. */
  static void *nvrtc = dlopen("libnvrtc.so.13", RTLD_LAZY | RTLD_NODELETE);
  (void)nvrtc;
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  fake_handle *f = new (std::nothrow) fake_handle{kHandleMagic, nullptr};
  if (!f) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
  *handle = reinterpret_cast<cudnnHandle_t>(f);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  fake_handle *f = handle_of(handle);
  if (!f) return CUDNN_STATUS_BAD_PARAM;
  f->magic = 0;
  delete f;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  fake_handle *f = handle_of(handle);
  if (!f) return CUDNN_STATUS_BAD_PARAM;
  f->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *stream) {
  fake_handle *f = handle_of(handle);
  if (!f || !stream) return CUDNN_STATUS_BAD_PARAM;
  *stream = f->stream;
  return CUDNN_STATUS_SUCCESS;
}

void cudnnGetLastErrorString(char *message, size_t max_size) {
  if (!message || !max_size) return;
  if (!last_message.empty()) {
    std::snprintf(message, max_size, "%s", last_message.c_str());
    last_message.clear();
    return;
  }
  static lasterr_fn next = real<lasterr_fn>("cudnnGetLastErrorString");
  if (next)
    next(message, max_size);
  else
    message[0] = '\0';
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count, const void *values) {
  static set_fn next = real<set_fn>("cudnnBackendSetAttribute");
  if (!next) return CUDNN_STATUS_NOT_INITIALIZED;
  cudnnStatus_t s = next(d, name, type, count, values);
  if (s == CUDNN_STATUS_SUCCESS && count >= 0 && values &&
      ((name == CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS && type == CUDNN_TYPE_INT64) ||
       (name == CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS && type == CUDNN_TYPE_VOID_PTR))) {
    pack_registry &r = packs();
    std::lock_guard<std::mutex> g(r.mu);
    pack_record &rec = r.packs[d];
    if (name == CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS) {
      auto *v = static_cast<const int64_t *>(values);
      rec.uids.assign(v, v + count);
    } else {
      auto *v = static_cast<void *const *>(values);
      rec.ptrs.assign(v, v + count);
    }
  }
  return s;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t d) {
  static destroy_fn next = real<destroy_fn>("cudnnBackendDestroyDescriptor");
  {
    pack_registry &r = packs();
    std::lock_guard<std::mutex> g(r.mu);
    r.packs.erase(d);
  }
  return next ? next(d) : CUDNN_STATUS_NOT_INITIALIZED;
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack) {
  last_message.clear();
  fake_handle *h = handle_of(handle);
  if (!h) return refuse(CUDNN_STATUS_BAD_PARAM, "not a handle from cudnnCreate");
  if (!plan || !pack) return refuse(CUDNN_STATUS_BAD_PARAM, "no plan or no variant pack");
  conv_job j;
  int64_t ws_size = 0;
  cudnnStatus_t s = read_plan(plan, &j, &ws_size);
  if (s) return s;
  pack_record rec;
  {
    pack_registry &r = packs();
    std::lock_guard<std::mutex> g(r.mu);
    auto it = r.packs.find(pack);
    if (it == r.packs.end()) return refuse(CUDNN_STATUS_BAD_PARAM, "the variant pack has no uids or pointers");
    rec = it->second;
  }
  if (rec.uids.size() != rec.ptrs.size())
    return refuse(CUDNN_STATUS_BAD_PARAM, "the variant pack has %zu uids and %zu pointers", rec.uids.size(),
                  rec.ptrs.size());
  int64_t n = 0;
  void *ws = nullptr;
  s = cudnnBackendGetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &n, &ws);
  if (s) return refuse(s, "the variant pack's workspace cannot be read");
  tensor *ts[5] = {&j.x, &j.w, j.fused ? &j.out : &j.y, &j.b, nullptr};
  for (tensor *t : ts) {
    if (!t || (t == &j.b && !j.bias)) continue;
    for (size_t i = 0; i < rec.uids.size(); i++)
      if (rec.uids[i] == t->uid) t->ptr = rec.ptrs[i];
    size_t bytes = extent(*t);
    if (bytes == 0) continue;
    if (!t->ptr) return refuse(CUDNN_STATUS_BAD_PARAM, "tensor %lld has no pointer in the variant pack", (long long)t->uid);
    if (!amp_emu_is_device(t->ptr, bytes))
      return refuse(CUDNN_STATUS_BAD_PARAM, "tensor %lld at %p (%zu bytes) is not device memory", (long long)t->uid,
                    t->ptr, bytes);
    if (t->align > 1 && (uintptr_t)t->ptr % (uintptr_t)t->align)
      return refuse(CUDNN_STATUS_BAD_PARAM, "tensor %lld at %p is not %lld-byte aligned", (long long)t->uid, t->ptr,
                    (long long)t->align);
  }
  if (ws_size > 0 && (!ws || !amp_emu_is_device(ws, (size_t)ws_size)))
    return refuse(CUDNN_STATUS_BAD_PARAM, "the workspace at %p is not %lld bytes of device memory", ws,
                  (long long)ws_size);
  j.ws = ws;
  j.ws_bytes = (size_t)ws_size;
  cudaError_t e = amp_emu_enqueue(h->stream, "cudnnBackendExecute", [j]() {
    if (j.ws_bytes) std::memset(j.ws, 0xFF, j.ws_bytes); /* no engine may expect anything in it */
    return compute(j);
  });
  if (e != cudaSuccess) return refuse(CUDNN_STATUS_EXECUTION_FAILED, "the stream refused the work: %s", cudaGetErrorString(e));
  return CUDNN_STATUS_SUCCESS;
}

}  // extern "C"
