/* Helpers of the conv family's op tests that the matmul family (tests/test_ops_matmul.c), split
 * off from it, shares: per-dtype tolerances on the normalised squared error against a double
 * reference, multi-index stepping, and freeing outputs. The including file defines
 * `static amp_context *ctx` first. */
#ifndef AMP_TESTS_CONV_TESTUTIL_H
#define AMP_TESTS_CONV_TESTUTIL_H

#include <criterion/criterion.h>

#include "testutil.h"

static inline double tol(amp_dtype dt) {
    switch (dt) {
    case AMP_F64: return 1e-24;
    case AMP_F32: return 1e-11;
    case AMP_F16: return 2e-6;
    case AMP_BF16: return 1e-4;
    default: return 0; /* integers: exact */
    }
}

static inline int64_t prod(int n, const int64_t *v) {
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= v[i];
    return p;
}

/* Next multi-index below lim (row-major); 0 after the last. */
static inline int step(int n, int64_t *idx, const int64_t *lim) {
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < lim[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

static inline void expect_close(amp_tensor *got, amp_dtype dt, int rank, const int64_t *dims, const double *ref,
                         const char *what) {
    cr_assert_not_null(got, "%s: no output", what);
    cr_assert_eq(got->dtype, dt, "%s: dtype %s", what, amp_dtype_name(got->dtype));
    cr_assert_eq(got->rank, rank, "%s: rank %d, want %d", what, got->rank, rank);
    for (int i = 0; i < rank; i++)
        cr_assert_eq(got->dims[i], dims[i], "%s: dim %d is %lld, want %lld", what, i, (long long)got->dims[i],
                     (long long)dims[i]);
    if (amp_dtype_is_int(dt)) {
        for (int64_t i = 0; i < got->numel; i++)
            cr_assert_eq((int64_t)tt_get(got, i), (int64_t)ref[i], "%s: element %lld is %g, want %g", what,
                         (long long)i, tt_get(got, i), ref[i]);
        return;
    }
    amp_tensor *r = tt_make(ctx, AMP_F64, rank, dims, ref);
    double e = tt_nse(got, r);
    cr_assert(e <= tol(dt), "%s (%s): nse %g > %g", what, amp_dtype_name(dt), e, tol(dt));
    amp_tensor_destroy(r);
}

static inline void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

#endif
