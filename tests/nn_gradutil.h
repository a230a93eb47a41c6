/* Helpers of the nn and norm families' gradient tests (tests/test_grad_nn.c,
 * tests/test_grad_norm.c): random f64 inputs, the finite-difference check and the 16-bit
 * comparison of a training op against its f64 result. The including file defines
 * `static amp_context *ctx` first. */
#ifndef AMP_TESTS_NN_GRADUTIL_H
#define AMP_TESTS_NN_GRADUTIL_H

#include <math.h>

#include "gradcheck.h"
#include "testutil.h"

#define GC_TOL 1e-5
#define MAXIN 9

static uint64_t seed_next = 1;

static inline amp_tensor *rnd(int rank, const int64_t *dims, double lo, double hi) {
    return tt_rand(ctx, AMP_F64, rank, dims, lo, hi, seed_next++);
}

/* An int64 tensor with the given values. */
static inline amp_tensor *ints(int rank, const int64_t *dims, const double *v) {
    return tt_make(ctx, AMP_I64, rank, dims, v);
}

static inline void free_in(amp_tensor **in, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(in[i]);
        in[i] = NULL;
    }
}

/* Finite-difference check of the float inputs marked in wrt (all float inputs when wrt is
 * NULL), with nout forward outputs in the loss. */
static inline void gc_ok(amp_test_node *t, int nin, amp_tensor **in, const bool *wrt, int nout, const char *what) {
    char msg[640];
    cr_assert(gc_passes(t, nin, in, wrt, nout, GC_TOL, msg, sizeof msg), "%s: %s", what, msg);
}

/* ---- running the training ops directly -------------------------------------------------------- */

/* Run t in f16, bf16 and f32 (inputs marked in narrow converted, the rest as given) and in
 * f64 on the same rounded values; every output must agree with the f64 one within relative L2
 * 1e-2 (16-bit) or 1e-5 (f32, which takes the kernels' plain-float loops). */
static inline void cmp_narrow(amp_test_node *t, int nin, amp_tensor **in64, const bool *narrow, int nout,
                              const char *what) {
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {1e-2, 1e-2, 1e-5};
    for (int k = 0; k < 3; k++) {
        amp_tensor *lo[MAXIN] = {0}, *hi[MAXIN] = {0}, *olo[8] = {0}, *ohi[8] = {0};
        for (int i = 0; i < nin; i++) {
            if (!in64[i]) continue;
            if (narrow[i]) {
                lo[i] = tt_convert(ctx, in64[i], dts[k]);
                hi[i] = tt_convert(ctx, lo[i], AMP_F64);
            } else {
                lo[i] = tt_convert(ctx, in64[i], in64[i]->dtype);
                hi[i] = tt_convert(ctx, in64[i], in64[i]->dtype);
            }
        }
        amp_status s = tn_run(t, nin, lo, nout, olo);
        cr_assert_eq(s, AMP_OK, "%s (%s): %s", what, amp_dtype_name(dts[k]), amp_context_last_error(ctx));
        s = tn_run(t, nin, hi, nout, ohi);
        cr_assert_eq(s, AMP_OK, "%s (f64): %s", what, amp_context_last_error(ctx));
        for (int o = 0; o < nout; o++) {
            double e = tt_nse(olo[o], ohi[o]);
            cr_assert(sqrt(e) < tols[k], "%s (%s): output %d rel L2 %g", what, amp_dtype_name(dts[k]), o, sqrt(e));
        }
        free_in(lo, nin);
        free_in(hi, nin);
        free_in(olo, nout);
        free_in(ohi, nout);
    }
}

#endif
