/* Planned GEMMs on cuBLASLt (gemm.h): descriptors, layouts and the algorithm at plan time, one
 * cublasLtMatmul at run time. */
#include "backends/cuda/gemm.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_cublaslt.h"
#endif

struct amp_cuda_gemm {
    amp_context *ctx; /* allocated the plan */
    amp_cuda_gemm_desc d;
    cublasLtMatmulDesc_t op;
    /* cuBLASLt's operands: la is our B, lb our A (row-major by operand order) */
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulAlgo_t algo;
    size_t ws_bytes;
    size_t d_bytes; /* bytes of D over the batch, for k == 0 */
    bool zero_only; /* k == 0: D = 0, no matmul */
};

static cudaDataType_t lt_type(amp_dtype t) {
    switch (t) {
    case AMP_F16: return CUDA_R_16F;
    case AMP_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

/* cuBLASLt's status as an amp status; the emulator adds why its cublasLt refused */
static amp_status lt_check(amp_context *ctx, cublasStatus_t e, const char *call, const char *file, int line) {
    amp_status s = amp_cuda_lt_status(ctx, e, call, file, line);
#ifdef AMP_CUDA_EMULATED
    const char *why = amp_emu_cublaslt_error();
    if (s && why[0]) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", amp_context_last_error(ctx));
        s = amp_seterr(ctx, s, "%s (emulator: %s)", msg, why);
    }
#endif
    return s;
}
#ifdef AMP_CUDA_EMULATED
#define LT(ctx, call) (amp_emu_cublaslt_clear(), lt_check((ctx), (call), #call, __FILE__, __LINE__))
#else
#define LT(ctx, call) lt_check((ctx), (call), #call, __FILE__, __LINE__)
#endif

unsigned amp_cuda_gemm_align(unsigned align, int n, const int64_t *byte_offsets) {
    for (int i = 0; i < n; i++)
        while (align > 1 && byte_offsets[i] % (int64_t)align != 0) align /= 2;
    return align;
}

/* a column-major layout of rows x cols, ld = rows, batched */
static cublasStatus_t layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows, int64_t cols, int32_t batch,
                             int64_t stride) {
    cublasStatus_t e = cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, rows > 0 ? rows : 1);
    if (e != CUBLAS_STATUS_SUCCESS || batch <= 1) return e;
    e = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch);
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
    return e;
}

static amp_status check_desc(amp_context *ctx, const amp_cuda_gemm_desc *d) {
    if (!amp_cuda_float_dtype(d->dtype))
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "cuBLASLt GEMM: dtype %s is not supported (f32, f16, bf16)",
                          amp_dtype_name(d->dtype));
    const int64_t lim = INT32_MAX;
    if (d->m < 0 || d->n < 0 || d->k < 0 || d->m > lim || d->n > lim || d->k > lim || d->batch < 0 || d->batch > lim)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "cuBLASLt GEMM: m %lld, n %lld, k %lld, batch %lld out of range",
                          (long long)d->m, (long long)d->n, (long long)d->k, (long long)d->batch);
    if (!d->has_c && d->beta != 0.0f)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "cuBLASLt GEMM: beta %g without C", (double)d->beta);
    if (d->stride_a < 0 || d->stride_b < 0 || d->stride_c < 0 || d->stride_d < 0 ||
        (d->batch > 1 && d->stride_d < d->m * d->n))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "cuBLASLt GEMM: batch strides overlap D or are negative");
    if (d->align & (d->align - 1) || d->align > 256)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "cuBLASLt GEMM: alignment %u is not a power of 2 up to 256",
                          d->align);
    if (d->act != AMP_CUDA_GEMM_ACT_NONE && d->act != AMP_CUDA_GEMM_ACT_RELU && d->act != AMP_CUDA_GEMM_ACT_GELU_TANH)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "cuBLASLt GEMM: activation %d is not one of none, relu, gelu_tanh",
                          (int)d->act);
    if (d->aux && d->act == AMP_CUDA_GEMM_ACT_NONE)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG,
                          "cuBLASLt GEMM: an aux output without an activation (the pre-activation is D itself)");
    if (d->aux && d->act == AMP_CUDA_GEMM_ACT_RELU)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED,
                          "cuBLASLt GEMM: relu with an aux output is not supported (cuBLASLt's RELU_AUX stores a "
                          "bit mask, not the pre-activation)");
    /* cuBLASLt: the GELU aux leading dimension (D's rows in its column-major view: our n) and
     * batch stride are multiples of 8 elements */
    if (d->aux && (d->n % 8 || (d->batch > 1 && d->stride_d % 8)))
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED,
                          "cuBLASLt GEMM: the GELU aux matrix needs n (%lld) and D's batch stride (%lld) to be "
                          "multiples of 8",
                          (long long)d->n, (long long)d->stride_d);
    if (d->k == 0 && (d->has_c || d->bias))
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "cuBLASLt GEMM: k == 0 with C or bias is not supported");
    if (d->k == 0 && d->batch > 1 && d->stride_d != d->m * d->n)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "cuBLASLt GEMM: k == 0 with a padded D batch is not supported");
    return AMP_OK;
}

/* the epilogue of bias, activation and aux (check_desc refused what has none) */
static cublasLtEpilogue_t epilogue(const amp_cuda_gemm_desc *d) {
    switch (d->act) {
    case AMP_CUDA_GEMM_ACT_RELU: return d->bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case AMP_CUDA_GEMM_ACT_GELU_TANH:
        if (d->aux) return d->bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
        return d->bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    default: return d->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    }
}

static amp_status build(amp_cuda *cu, amp_cuda_gemm *g) {
    amp_context *ctx = cu->ctx;
    const amp_cuda_gemm_desc *d = &g->d;
    const cudaDataType_t t = lt_type(d->dtype);
    const int32_t batch = d->batch > 1 ? (int32_t)d->batch : 1;
    cublasComputeType_t ct = d->dtype == AMP_F32 && cu->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cublasOperation_t opa = d->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opb = d->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    amp_status s;
    if ((s = LT(ctx, cublasLtMatmulDescCreate(&g->op, ct, CUDA_R_32F))) ||
        (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa))) ||
        (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb))))
        return s;
    cublasLtEpilogue_t ep = epilogue(d);
    if (ep != CUBLASLT_EPILOGUE_DEFAULT &&
        (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep))))
        return s;
    /* The heuristic reads the bias and aux pointers' alignment from their values: until run sets
     * the real ones, a stand-in that has exactly the promised alignment. */
    const void *stand_in = (const void *)(uintptr_t)(d->align ? d->align : 256);
    int32_t dt32 = (int32_t)t;
    if (d->bias &&
        ((s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dt32, sizeof dt32))) ||
         (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &stand_in,
                                                     sizeof stand_in)))))
        return s;
    if (d->aux) {
        /* D's layout: ld n, D's batch stride */
        int64_t aux_ld = d->n, aux_stride = batch > 1 ? d->stride_d : 0;
        if ((s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &dt32,
                                                        sizeof dt32))) ||
            (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                        sizeof aux_ld))) ||
            (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE,
                                                        &aux_stride, sizeof aux_stride))) ||
            (s = LT(ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &stand_in,
                                                        sizeof stand_in))))
            return s;
    }
    /* column-major views: our B^T is cuBLASLt's A (n x k after its op), our A^T its B, D^T its D */
    if ((s = LT(ctx, layout(&g->la, t, d->trans_b ? d->k : d->n, d->trans_b ? d->n : d->k, batch, d->stride_b))) ||
        (s = LT(ctx, layout(&g->lb, t, d->trans_a ? d->m : d->k, d->trans_a ? d->k : d->m, batch, d->stride_a))) ||
        (s = LT(ctx, layout(&g->lc, t, d->n, d->m, batch, d->has_c ? d->stride_c : d->stride_d))) ||
        (s = LT(ctx, layout(&g->ld, t, d->n, d->m, batch, d->stride_d))))
        return s;

    cublasLtMatmulPreference_t pref = NULL;
    size_t limit = d->ws_limit ? d->ws_limit : AMP_CUDA_GEMM_WS_DEFAULT;
    uint32_t align = d->align ? d->align : 256;
    if ((s = LT(ctx, cublasLtMatmulPreferenceCreate(&pref)))) return s;
    static const cublasLtMatmulPreferenceAttributes_t aligns[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    s = LT(ctx, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit,
                                                     sizeof limit));
    for (int i = 0; i < 4 && !s; i++)
        s = LT(ctx, cublasLtMatmulPreferenceSetAttribute(pref, aligns[i], &align, sizeof align));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!s)
        s = LT(ctx, cublasLtMatmulAlgoGetHeuristic(cu->lt, g->op, g->la, g->lb, g->lc, g->ld, pref, 1, &res, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (s) return s;
    if (found < 1)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED,
                          "cuBLASLt has no algorithm for a %s GEMM m %lld n %lld k %lld batch %d%s%s within %zu "
                          "workspace bytes and %u-byte alignment",
                          amp_dtype_name(d->dtype), (long long)d->m, (long long)d->n, (long long)d->k, batch,
                          d->trans_a ? " transA" : "", d->trans_b ? " transB" : "", limit, align);
    g->algo = res.algo;
    g->ws_bytes = res.workspaceSize;
    return AMP_OK;
}

amp_status amp_cuda_gemm_plan(amp_cuda *cu, const amp_cuda_gemm_desc *d, amp_cuda_gemm **out, size_t *ws_bytes) {
    amp_status s = check_desc(cu->ctx, d);
    if (s) return s;
    amp_cuda_gemm *g = amp_calloc(cu->ctx, 1, sizeof *g);
    if (!g) return amp_seterr(cu->ctx, AMP_ERR_NO_MEMORY, "out of memory for a GEMM plan");
    g->ctx = cu->ctx;
    g->d = *d;
    if (g->d.batch < 1) g->d.batch = 1;
    if (!g->d.align) g->d.align = 256;
    g->zero_only = d->k == 0;
    g->d_bytes = (size_t)(g->d.batch * d->m * d->n) * amp_dtype_size(d->dtype);
    if (!g->zero_only && d->m > 0 && d->n > 0 && (s = build(cu, g))) {
        amp_cuda_gemm_free(g);
        return s;
    }
    *out = g;
    *ws_bytes = g->ws_bytes;
    return AMP_OK;
}

static bool aligned(const void *p, unsigned align) { return ((uintptr_t)p & (align - 1)) == 0; }

amp_status amp_cuda_gemm_run_aux(amp_cuda *cu, const amp_cuda_gemm *g, const void *a, const void *b, const void *c,
                                 void *d, const void *bias, void *aux, void *ws) {
    const amp_cuda_gemm_desc *gd = &g->d;
    if (gd->aux != (aux != NULL))
        return amp_seterr(cu->ctx, AMP_ERR_INTERNAL, "cuBLASLt GEMM: %s",
                          gd->aux ? "the plan writes an aux matrix, run was given none"
                                  : "the plan has no aux matrix, run was given one");
    if (gd->m == 0 || gd->n == 0) return AMP_OK;
    if (g->zero_only) {
        amp_status s = AMP_CUDA_RT(cu->ctx, cudaMemsetAsync(d, 0, g->d_bytes, cu->stream));
        if (!s && aux) s = AMP_CUDA_RT(cu->ctx, cudaMemsetAsync(aux, 0, g->d_bytes, cu->stream));
        return s;
    }
    if (!gd->has_c) c = d;
    if (!aligned(a, gd->align) || !aligned(b, gd->align) || !aligned(c, gd->align) || !aligned(d, gd->align) ||
        (gd->bias && !aligned(bias, gd->align)) || (aux && !aligned(aux, gd->align)))
        return amp_seterr(cu->ctx, AMP_ERR_INTERNAL,
                          "cuBLASLt GEMM: an operand is not %u-byte aligned as its plan was told (a %p, b %p, c %p, "
                          "d %p, bias %p, aux %p)",
                          gd->align, a, b, c, d, bias, aux);
    amp_status s;
    if (gd->bias &&
        (s = LT(cu->ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias))))
        return s;
    if (aux && (s = LT(cu->ctx, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                                               sizeof aux))))
        return s;
    return LT(cu->ctx, cublasLtMatmul(cu->lt, g->op, &gd->alpha, b, g->la, a, g->lb, &gd->beta, c, g->lc, d, g->ld,
                                      &g->algo, ws, g->ws_bytes, cu->stream));
}

amp_status amp_cuda_gemm_run(amp_cuda *cu, const amp_cuda_gemm *g, const void *a, const void *b, const void *c,
                             void *d, const void *bias, void *ws) {
    return amp_cuda_gemm_run_aux(cu, g, a, b, c, d, bias, NULL, ws);
}

void amp_cuda_gemm_free(amp_cuda_gemm *g) {
    if (!g) return;
    if (g->ld) cublasLtMatrixLayoutDestroy(g->ld);
    if (g->lc) cublasLtMatrixLayoutDestroy(g->lc);
    if (g->lb) cublasLtMatrixLayoutDestroy(g->lb);
    if (g->la) cublasLtMatrixLayoutDestroy(g->la);
    if (g->op) cublasLtMatmulDescDestroy(g->op);
    amp_dealloc(g->ctx, g);
}
