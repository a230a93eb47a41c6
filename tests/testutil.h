/* Test helpers: run one node through its shape inference and CPU kernel, make tensors,
 * compare with relative measures. */
#ifndef AMP_TESTS_TESTUTIL_H
#define AMP_TESTS_TESTUTIL_H

#include "ir/ir.h"

typedef struct amp_test_node {
    amp_context *ctx;
    amp_node node;
    amp_attr attrs[32];
    int64_t opset;
    int threads;
} amp_test_node;

/* The backend the tests run nodes and sessions on: $AMP_TEST_BACKEND, else "cpu". CTest runs
 * the op and gradient suites a second time with "cpu-check" (backends/check.c). */
const char *tu_backend(void);

/* A node of op_type (default domain, opset 17). Destroy with tn_free. */
amp_test_node *tn_new(amp_context *ctx, const char *op_type);
void tn_free(amp_test_node *t);
void tn_int(amp_test_node *t, const char *name, int64_t v);
void tn_float(amp_test_node *t, const char *name, float v);
void tn_str(amp_test_node *t, const char *name, const char *v);
void tn_ints(amp_test_node *t, const char *name, int n, const int64_t *v);
void tn_floats(amp_test_node *t, const char *name, int n, const float *v);
void tn_tensor(amp_test_node *t, const char *name, const amp_tensor *v); /* cloned */
/* Infer, allocate outputs (owned by the caller), run the node on tu_backend() (its prepare sizes
 * the workspace). in[i] may be NULL for an
 * omitted optional input. Every input's data is visible to inference as a known value. */
amp_status tn_run(amp_test_node *t, int nin, amp_tensor *const *in, int nout, amp_tensor **out);

/* Run a kernel set up by hand (views, data) once on tu_backend(), which sizes and allocates its
 * workspace. */
amp_status tn_run_kernel(amp_kernel *k);

/* A node of a training-domain op (ai.amprt.training, opset 1); node.op is AMP_OP_UNKNOWN when the
 * op table has no such op (running it then fails). Destroy with tn_free. */
amp_test_node *tn_train(amp_context *ctx, const char *op_type);

/* A model of the source tree (path relative to its root), loaded with ctx or the test fails. */
amp_model *tt_load(amp_context *ctx, const char *rel);
/* A copy of t in dtype dt (each value stored with the dtype's rounding). */
amp_tensor *tt_convert(amp_context *ctx, const amp_tensor *t, amp_dtype dt);
/* A tensor of dtype filled from doubles (converted with the dtype's rounding). */
amp_tensor *tt_make(amp_context *ctx, amp_dtype dt, int rank, const int64_t *dims, const double *vals);
/* A tensor of dtype filled with seeded uniform values in [lo, hi). */
amp_tensor *tt_rand(amp_context *ctx, amp_dtype dt, int rank, const int64_t *dims, double lo, double hi,
                    uint64_t seed);
double tt_get(const amp_tensor *t, int64_t i);
/* Normalised squared error sum((a-b)^2) / sum(b^2) over all elements, b the reference;
 * returns +inf when a NaN or a one-sided inf appears or shapes differ. */
double tt_nse(const amp_tensor *a, const amp_tensor *ref);
/* 1 when dtypes, shapes and every element agree exactly (NaN matches NaN). */
int tt_equal(const amp_tensor *a, const amp_tensor *b);

#endif
