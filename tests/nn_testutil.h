/* Helpers of the nn and norm families' op tests (tests/test_ops_nn.c, tests/test_ops_norm.c):
 * the float dtypes, tolerances, element reads and comparison against a double reference. The
 * including file defines `static amp_context *ctx` first. */
#ifndef AMP_TESTS_NN_TESTUTIL_H
#define AMP_TESTS_NN_TESTUTIL_H

#include <stdlib.h>

#include "testutil.h"

static const amp_dtype FLOATS[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
#define N_FLOATS 4

/* normalised squared error allowed for an output stored in dt */
static inline double tol(amp_dtype dt) {
    switch (dt) {
    case AMP_F64: return 1e-22;
    case AMP_F32: return 1e-12;
    case AMP_F16: return 1e-6;
    default: return 3e-5; /* bf16: 8 significant bits */
    }
}

static inline int64_t numel_of(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}

/* the tensor's elements as doubles (the values the kernel sees) */
static inline double *vals(const amp_tensor *t) {
    int64_t n = amp_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = tt_get(t, i);
    return v;
}

static inline void expect_close(const amp_tensor *got, amp_dtype dt, int rank, const int64_t *dims, const double *ref,
                         const char *what) {
    cr_assert_not_null(got, "%s: no output", what);
    cr_assert_eq(amp_tensor_dtype(got), dt, "%s: dtype %s", what, amp_dtype_name(amp_tensor_dtype(got)));
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

static inline amp_tensor *param(amp_dtype dt, int64_t ch, double lo, double hi, uint64_t seed) {
    return tt_rand(ctx, dt, 1, &ch, lo, hi, seed);
}

#endif
