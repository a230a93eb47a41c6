/* Gradient checks: one forward node (built with tn_new / tn_* from tests/testutil.h), the loss
 * L = sum_k sum(Y_k * R_k) with fixed random weights R_k, the autodiff pass (passes/autodiff.c)
 * run over that graph, and the analytic gradient compared with central finite differences of L
 * computed by running the forward node alone. Use f64 inputs for tight checks. */
#ifndef AMP_TESTS_GRADCHECK_H
#define AMP_TESTS_GRADCHECK_H

#include "tests/testutil.h"

typedef struct gc_result {
    double max_rel;       /* max over checked inputs of ||g - fd|| / max(||fd||, 1e-12) */
    int worst_input;
    int checked;          /* inputs compared */
    char why[512];        /* set when the check could not run (status != AMP_OK) */
} gc_result;

/* in[i] NULL for an omitted optional input; wrt[i] true for inputs whose gradient is checked
 * (float inputs only); nout forward outputs take part in the loss (use the node's count, or
 * fewer to leave trailing outputs out). eps is the finite-difference step (1e-6 for f64). */
amp_status gc_check(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout, double eps,
                    gc_result *r);

/* gc_check over the inputs marked in wrt (NULL: every present float input) and the first nout
 * outputs, with eps 1e-6: true when it ran, checked every marked input and stayed below tol;
 * otherwise msg says what went wrong. */
bool gc_passes(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout, double tol, char *msg,
               size_t cap);

#endif
