/* Shape inference for matrix multiplication: Gemm and MatMul (ir/ops/matmul.def). The kernels
 * (backends/cpu/matmul.c) hand the products to BLAS, whose dims are ints: inference refuses
 * larger ones. */
#include <limits.h>

#include "ir/ir.h"

static const amp_dtype dt_mm[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_UNDEFINED};

static int blas_dims_ok(int64_t a, int64_t b, int64_t k) { return a < INT_MAX && b < INT_MAX && k < INT_MAX; }

amp_status amp_infer_gemm(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, c->opset < 11 ? 3 : 2, 3))) return s;
    const amp_tinfo *a = c->in[0], *b = c->in[1], *cc = c->nin > 2 ? c->in[2] : NULL;
    if ((s = amp_infer_dtype_in(c, a->dtype, dt_mm)) || (s = amp_infer_same_dtype(c, 1)) || (cc && (s = amp_infer_same_dtype(c, 2))))
        return s;
    if (a->rank != 2 || b->rank != 2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "A and B must be 2-D, have rank %d and %d", a->rank, b->rank);
    int ta = amp_attr_int(c->n, "transA", 0) != 0, tb = amp_attr_int(c->n, "transB", 0) != 0;
    int64_t M = a->dims[ta], K = a->dims[!ta], K2 = b->dims[tb], N = b->dims[!tb];
    if (K != K2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "inner dims differ: A gives %lld, B gives %lld", (long long)K,
                              (long long)K2);
    if (!blas_dims_ok(M, N, K)) return amp_infer_fail(c, AMP_ERR_LIMIT, "matrix dims exceed the BLAS int range");
    if (cc) {
        /* C broadcasts to [M, N] one way only */
        if (cc->rank > 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "C must have rank <= 2, has %d", cc->rank);
        int64_t want[2] = {M, N};
        for (int i = 0; i < cc->rank; i++) {
            int64_t d = cc->dims[i], t = want[2 - cc->rank + i];
            if (d != t && d != 1)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "C dim %d is %lld, cannot broadcast to %lld", i, (long long)d,
                                      (long long)t);
        }
    }
    amp_tinfo *y = c->out[0];
    y->dtype = a->dtype;
    y->rank = 2;
    y->dims[0] = M;
    y->dims[1] = N;
    int64_t ny;
    if (__builtin_mul_overflow(M, N, &ny)) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output size overflows");
    return AMP_OK;
}

amp_status amp_infer_matmul(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2))) return s;
    const amp_tinfo *a = c->in[0], *b = c->in[1];
    if ((s = amp_infer_dtype_in(c, a->dtype, dt_mm)) || (s = amp_infer_same_dtype(c, 1))) return s;
    if (a->rank < 1 || b->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "MatMul operands must have rank >= 1");
    int64_t M = a->rank == 1 ? 1 : a->dims[a->rank - 2], K = a->dims[a->rank - 1];
    int64_t K2 = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2], N = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (K != K2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "inner dims differ: %lld and %lld", (long long)K, (long long)K2);
    if (!blas_dims_ok(M, N, K)) return amp_infer_fail(c, AMP_ERR_LIMIT, "matrix dims exceed the BLAS int range");
    int ra = a->rank > 2 ? a->rank - 2 : 0, rb = b->rank > 2 ? b->rank - 2 : 0, rbat;
    int64_t bat[AMP_MAX_RANK];
    if ((s = amp_broadcast_shape(c, ra, a->dims, rb, b->dims, &rbat, bat))) return s;
    amp_tinfo *y = c->out[0];
    y->dtype = a->dtype;
    y->rank = 0;
    for (int i = 0; i < rbat; i++)
        y->dims[y->rank++] = bat[i];
    if (a->rank > 1) y->dims[y->rank++] = M;
    if (b->rank > 1) y->dims[y->rank++] = N;
    int64_t nbat = 1, ny, na = 1, nb = 1;
    for (int i = 0; i < rbat; i++)
        if (__builtin_mul_overflow(nbat, bat[i], &nbat))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output size overflows");
    if (__builtin_mul_overflow(nbat, M, &ny) || __builtin_mul_overflow(ny, N, &ny))
        return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output size overflows");
    for (int i = 0; i < a->rank; i++)
        if (__builtin_mul_overflow(na, a->dims[i], &na)) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "A size overflows");
    for (int i = 0; i < b->rank; i++)
        if (__builtin_mul_overflow(nb, b->dims[i], &nb)) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "B size overflows");
    return AMP_OK;
}
