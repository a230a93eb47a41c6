/* Gradients of the shape and data-movement ops (ir/ops/shape_grad.c, backends/cpu/shape_grad.c).
 *
 * Every op and attribute/opset variant goes through gc_check (tests/gradcheck.h): autodiff and
 * the CPU executor against central differences of the forward op, in f64. These ops are linear
 * in their data input, so the differences are exact up to rounding and max_rel must stay under
 * 1e-5. The training-domain kernels also run in f16 and bf16 against their own f64 result
 * (relative L2 under 1e-2), a few against references written here with plain loops, and bad
 * shapes and attributes must give an error status. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "testutil.h"

#define TRAIN_DOMAIN "ai.amprt.training"
#define MAX_REL 1e-5

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_shape, .init = setup, .fini = teardown);

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- helpers -------------------------------------------------------------------------------- */

static amp_tensor *rnd(int r, const int64_t *dims, uint64_t seed) {
    amp_tensor *t = tt_rand(ctx, AMP_F64, r, dims, -1.0, 1.0, seed);
    cr_assert(t);
    return t;
}

static amp_tensor *ints(int n, const int64_t *v) {
    int64_t d = n;
    amp_tensor *t = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, &d, &t), AMP_OK);
    if (n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

static amp_tensor *ints32(int n, const int64_t *v) {
    int64_t d = n;
    amp_tensor *t = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I32, 1, &d, &t), AMP_OK);
    for (int i = 0; i < n; i++) ((int32_t *)t->data)[i] = (int32_t)v[i];
    return t;
}

/* An int64 tensor of any shape. */
static amp_tensor *ints_nd(int r, const int64_t *dims, const int64_t *v) {
    amp_tensor *t = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, r, dims, &t), AMP_OK);
    if (t->numel) memcpy(t->data, v, sizeof(int64_t) * (size_t)t->numel);
    return t;
}

static void free_all(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* gc_check of the float inputs flagged in wrt (NULL: input 0 only); consumes t and in. */
static void check(const char *what, amp_test_node *t, int nin, amp_tensor **in, const bool *wrt, int nout) {
    bool only0[16] = {true};
    if (!wrt) wrt = only0;
    gc_result r;
    amp_status s = gc_check(t, nin, in, wrt, nout, 1e-6, &r);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, r.why);
    int want = 0;
    for (int i = 0; i < nin; i++) want += wrt[i] && in[i];
    cr_assert_eq(r.checked, want, "%s: %d inputs checked, expected %d", what, r.checked, want);
    cr_assert(r.max_rel < MAX_REL, "%s: max_rel %g on input %d", what, r.max_rel, r.worst_input);
    free_all(nin, in);
    tn_free(t);
}

static amp_test_node *node(const char *op, int64_t opset) {
    amp_test_node *t = tn_new(ctx, op);
    t->opset = opset;
    return t;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---------------------------------------------------- */

Test(grad_shape, reshape) {
    {
        const int64_t xd[] = {2, 3, 4}, shp[] = {0, -1, 2};
        amp_tensor *in[] = {rnd(3, xd, 1), ints(3, shp)};
        check("reshape 0 and -1", node("Reshape", 17), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 0, 3}, shp[] = {0, 4};
        amp_test_node *t = node("Reshape", 14);
        tn_int(t, "allowzero", 1);
        amp_tensor *in[] = {rnd(3, xd, 2), ints(2, shp)};
        check("reshape zero-size allowzero", t, 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 3, 4}, shp[] = {6, 4};
        amp_test_node *t = node("Reshape", 4);
        tn_ints(t, "shape", 2, shp);
        amp_tensor *in[] = {rnd(3, xd, 3)};
        check("reshape opset 4 attribute", t, 1, in, NULL, 1);
    }
}

Test(grad_shape, flatten) {
    const int64_t xd[] = {2, 3, 4, 5};
    const int64_t axes[] = {0, 2, 4, -1};
    for (int i = 0; i < N(axes); i++) {
        amp_test_node *t = node("Flatten", 13);
        tn_int(t, "axis", axes[i]);
        amp_tensor *in[] = {rnd(4, xd, 10 + (uint64_t)i)};
        check("flatten", t, 1, in, NULL, 1);
    }
    amp_tensor *in[] = {rnd(4, xd, 19)};
    check("flatten opset 9 default axis", node("Flatten", 9), 1, in, NULL, 1);
}

Test(grad_shape, squeeze_unsqueeze) {
    const int64_t xd[] = {2, 1, 3, 1};
    {
        const int64_t ax[] = {1, 3};
        amp_test_node *t = node("Squeeze", 11);
        tn_ints(t, "axes", 2, ax);
        amp_tensor *in[] = {rnd(4, xd, 20)};
        check("squeeze opset 11", t, 1, in, NULL, 1);
    }
    {
        const int64_t ax[] = {-1};
        amp_tensor *in[] = {rnd(4, xd, 21), ints(1, ax)};
        check("squeeze opset 13 input", node("Squeeze", 13), 2, in, NULL, 1);
    }
    {
        amp_tensor *in[] = {rnd(4, xd, 22)};
        check("squeeze all ones", node("Squeeze", 13), 1, in, NULL, 1);
    }
    const int64_t ud[] = {3, 4};
    {
        const int64_t ax[] = {0, 3};
        amp_test_node *t = node("Unsqueeze", 11);
        tn_ints(t, "axes", 2, ax);
        amp_tensor *in[] = {rnd(2, ud, 23)};
        check("unsqueeze opset 11", t, 1, in, NULL, 1);
    }
    {
        const int64_t ax[] = {-1, 1};
        amp_tensor *in[] = {rnd(2, ud, 24), ints(2, ax)};
        check("unsqueeze opset 13 input", node("Unsqueeze", 13), 2, in, NULL, 1);
    }
}

/* ---- Transpose, Concat, Split ---------------------------------------------------------------------- */

Test(grad_shape, transpose) {
    {
        const int64_t xd[] = {2, 3, 4};
        amp_tensor *in[] = {rnd(3, xd, 30)};
        check("transpose default perm", node("Transpose", 17), 1, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 3, 4, 5}, perm[] = {2, 0, 3, 1};
        amp_test_node *t = node("Transpose", 13);
        tn_ints(t, "perm", 4, perm);
        amp_tensor *in[] = {rnd(4, xd, 31)};
        check("transpose perm", t, 1, in, NULL, 1);
    }
    {
        const int64_t xd[] = {7}, perm[] = {0};
        amp_test_node *t = node("Transpose", 13);
        tn_ints(t, "perm", 1, perm);
        amp_tensor *in[] = {rnd(1, xd, 32)};
        check("transpose rank 1", t, 1, in, NULL, 1);
    }
}

Test(grad_shape, concat) {
    {
        const int64_t a[] = {2, 1, 3}, b[] = {2, 4, 3}, c[] = {2, 2, 3};
        amp_test_node *t = node("Concat", 13);
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(3, a, 40), rnd(3, b, 41), rnd(3, c, 42)};
        const bool wrt[] = {true, true, true};
        check("concat axis 1", t, 3, in, wrt, 1);
    }
    {
        const int64_t a[] = {2, 3, 1}, b[] = {2, 3, 2}, c[] = {2, 3, 3};
        amp_test_node *t = node("Concat", 13);
        tn_int(t, "axis", -1);
        amp_tensor *in[] = {rnd(3, a, 43), rnd(3, b, 44), rnd(3, c, 45)};
        const bool wrt[] = {true, false, true};
        check("concat axis -1, middle input not differentiated", t, 3, in, wrt, 1);
    }
    {
        const int64_t a[] = {2, 2}, b[] = {2, 3};
        amp_tensor *in[] = {rnd(2, a, 46), rnd(2, b, 47)};
        const bool wrt[] = {true, true};
        check("concat opset 3 default axis", node("Concat", 3), 2, in, wrt, 1);
    }
    {
        const int64_t a[] = {2, 0, 3}, b[] = {2, 2, 3};
        amp_test_node *t = node("Concat", 13);
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(3, a, 48), rnd(3, b, 49)};
        const bool wrt[] = {true, true};
        check("concat with an empty input", t, 2, in, wrt, 1);
    }
    {
        const int64_t a[] = {5};
        amp_test_node *t = node("Concat", 13);
        tn_int(t, "axis", 0);
        amp_tensor *in[] = {rnd(1, a, 50)};
        check("concat of one input", t, 1, in, NULL, 1);
    }
}

Test(grad_shape, split) {
    const int64_t xd[] = {2, 6, 3};
    {
        amp_test_node *t = node("Split", 11);
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(3, xd, 60)};
        check("split equal parts", t, 1, in, NULL, 3);
    }
    {
        const int64_t sp[] = {1, 3, 2};
        amp_test_node *t = node("Split", 11);
        tn_int(t, "axis", -2);
        tn_ints(t, "split", 3, sp);
        amp_tensor *in[] = {rnd(3, xd, 61)};
        check("split attribute", t, 1, in, NULL, 3);
    }
    {
        const int64_t sp[] = {0, 4, 2};
        amp_test_node *t = node("Split", 11);
        tn_int(t, "axis", 1);
        tn_ints(t, "split", 3, sp);
        amp_tensor *in[] = {rnd(3, xd, 62)};
        check("split with an empty part", t, 1, in, NULL, 3);
    }
    {
        const int64_t sp[] = {1, 1};
        amp_tensor *in[] = {rnd(3, xd, 63), ints(2, sp)};
        check("split opset 13 input", node("Split", 13), 2, in, NULL, 2);
    }
    {
        /* the last output takes no part in the loss: its gradient is zeros */
        const int64_t sp[] = {2, 1, 3};
        amp_test_node *t = node("Split", 13);
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(3, xd, 64), ints(3, sp)};
        amp_tensor *y[3];
        cr_assert_eq(tn_run(t, 2, in, 3, y), AMP_OK); /* fixes the node's output count at 3 */
        free_all(3, y);
        check("split with an output without gradient", t, 2, in, NULL, 2);
    }
}

/* ---- Slice ------------------------------------------------------------------------------------------ */

Test(grad_shape, slice) {
    const int64_t xd[] = {4, 3, 5};
    {
        const int64_t st[] = {1, 0}, en[] = {3, 10}, ax[] = {0, 2};
        amp_test_node *t = node("Slice", 9);
        tn_ints(t, "starts", 2, st);
        tn_ints(t, "ends", 2, en);
        tn_ints(t, "axes", 2, ax);
        amp_tensor *in[] = {rnd(3, xd, 70)};
        check("slice opset 9 attributes", t, 1, in, NULL, 1);
    }
    {
        const int64_t st[] = {1}, en[] = {-1};
        amp_test_node *t = node("Slice", 1);
        tn_ints(t, "starts", 1, st);
        tn_ints(t, "ends", 1, en);
        amp_tensor *in[] = {rnd(3, xd, 71)};
        check("slice opset 1 without axes", t, 1, in, NULL, 1);
    }
    {
        /* negative steps with clamping: axis 1 from the last down past the start */
        const int64_t yd[] = {3, 6, 5}, st[] = {-1, 0}, en[] = {-100, 5}, ax[] = {1, 2}, sp[] = {-2, 2};
        amp_tensor *in[] = {rnd(3, yd, 72), ints(2, st), ints(2, en), ints(2, ax), ints(2, sp)};
        check("slice negative steps", node("Slice", 13), 5, in, NULL, 1);
    }
    {
        const int64_t st[] = {-3, 1}, en[] = {INT64_MAX, -1}, ax[] = {-1, 0};
        amp_tensor *in[] = {rnd(3, xd, 73), ints32(2, st), ints(2, en), ints32(2, ax)};
        check("slice int32 starts and axes, no steps", node("Slice", 13), 4, in, NULL, 1);
    }
    {
        const int64_t st[] = {0, 4}, en[] = {4, -10}, sp[] = {3, -1};
        const int64_t ax[] = {0, 2};
        amp_tensor *in[] = {rnd(3, xd, 74), ints(2, st), ints(2, en), ints(2, ax), ints(2, sp)};
        check("slice step 3 and reversal", node("Slice", 11), 5, in, NULL, 1);
    }
    {
        const int64_t st[] = {3}, en[] = {1};
        amp_tensor *in[] = {rnd(3, xd, 75), ints(1, st), ints(1, en)};
        check("slice to nothing", node("Slice", 13), 3, in, NULL, 1);
    }
}

/* ---- Gather, GatherElements --------------------------------------------------------------------------- */

Test(grad_shape, gather) {
    {
        const int64_t xd[] = {5, 3}, id[] = {3, 2}, iv[] = {0, 4, 4, -1, 2, 0};
        amp_tensor *in[] = {rnd(2, xd, 80), ints_nd(2, id, iv)};
        check("gather axis 0, repeats and negatives", node("Gather", 13), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 4, 3}, iv[] = {3, -4, 1, 3};
        amp_test_node *t = node("Gather", 13);
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(3, xd, 81), ints32(4, iv)};
        check("gather axis 1, int32", t, 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {3, 4}, iv[] = {-2};
        amp_test_node *t = node("Gather", 13);
        tn_int(t, "axis", -1);
        amp_tensor *in[] = {rnd(2, xd, 82), ints_nd(0, NULL, iv)};
        check("gather scalar index", t, 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {4, 3};
        amp_tensor *in[] = {rnd(2, xd, 83), ints(0, NULL)};
        check("gather no index", node("Gather", 13), 2, in, NULL, 1);
    }
    {
        /* more indices than the planner reads by value: the kernel reads them while running */
        const int64_t xd[] = {6, 2};
        int64_t iv[100];
        for (int i = 0; i < 100; i++) iv[i] = (i * 7) % 12 - 6;
        amp_tensor *in[] = {rnd(2, xd, 84), ints(100, iv)};
        check("gather 100 indices", node("Gather", 13), 2, in, NULL, 1);
    }
}

Test(grad_shape, gather_elements) {
    {
        const int64_t xd[] = {3, 4}, id[] = {2, 4}, iv[] = {0, 2, -1, 1, 0, 0, 2, -3};
        amp_tensor *in[] = {rnd(2, xd, 90), ints_nd(2, id, iv)};
        check("gather_elements axis 0", node("GatherElements", 13), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {3, 5}, id[] = {2, 3}, iv[] = {4, -1, 0, 1, 1, -5};
        amp_test_node *t = node("GatherElements", 13);
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(2, xd, 91), ints_nd(2, id, iv)};
        check("gather_elements axis 1, smaller indices", t, 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 3, 4}, id[] = {2, 2, 5};
        int64_t iv[20];
        for (int i = 0; i < 20; i++) iv[i] = (i * 5) % 8 - 4;
        amp_test_node *t = node("GatherElements", 11);
        tn_int(t, "axis", -1);
        amp_tensor *in[] = {rnd(3, xd, 92), ints_nd(3, id, iv)};
        check("gather_elements axis -1, rank 3", t, 2, in, NULL, 1);
    }
}

/* ---- Expand, Tile, Trilu ------------------------------------------------------------------------------ */

Test(grad_shape, expand) {
    {
        const int64_t xd[] = {3, 1}, sh[] = {2, 3, 7};
        amp_tensor *in[] = {rnd(2, xd, 100), ints(3, sh)};
        check("expand [3,1] to [2,3,7]", node("Expand", 13), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {1}, sh[] = {2, 3};
        amp_tensor *in[] = {rnd(1, xd, 101), ints(2, sh)};
        check("expand [1] to [2,3]", node("Expand", 8), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 1, 3}, sh[] = {4, 1};
        amp_tensor *in[] = {rnd(3, xd, 102), ints(2, sh)};
        check("expand to a shorter shape", node("Expand", 13), 2, in, NULL, 1);
    }
    {
        const int64_t sh[] = {3, 2};
        amp_tensor *in[] = {rnd(0, NULL, 103), ints(2, sh)};
        check("expand a scalar", node("Expand", 13), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 1}, sh[] = {2, 0};
        amp_tensor *in[] = {rnd(2, xd, 104), ints(2, sh)};
        check("expand to zero size", node("Expand", 13), 2, in, NULL, 1);
    }
}

Test(grad_shape, tile) {
    {
        const int64_t xd[] = {2, 3}, rep[] = {3, 2};
        amp_tensor *in[] = {rnd(2, xd, 110), ints(2, rep)};
        check("tile", node("Tile", 13), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 1, 3}, rep[] = {1, 4, 2};
        amp_tensor *in[] = {rnd(3, xd, 111), ints(3, rep)};
        check("tile rank 3", node("Tile", 6), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 3}, rep[] = {0, 2};
        amp_tensor *in[] = {rnd(2, xd, 112), ints(2, rep)};
        check("tile zero times", node("Tile", 13), 2, in, NULL, 1);
    }
}

Test(grad_shape, trilu) {
    const int64_t xd[] = {4, 5}, xd3[] = {2, 3, 4};
    {
        amp_tensor *in[] = {rnd(2, xd, 120)};
        check("trilu upper", node("Trilu", 14), 1, in, NULL, 1);
    }
    {
        const int64_t k[] = {-1};
        amp_test_node *t = node("Trilu", 14);
        tn_int(t, "upper", 0);
        amp_tensor *in[] = {rnd(3, xd3, 121), ints_nd(0, NULL, k)};
        check("trilu lower k=-1", t, 2, in, NULL, 1);
    }
    {
        const int64_t k[] = {2};
        amp_tensor *in[] = {rnd(2, xd, 122), ints(1, k)};
        check("trilu upper k=2", node("Trilu", 14), 2, in, NULL, 1);
    }
}

/* ---- Pad -------------------------------------------------------------------------------------------- */

Test(grad_shape, pad_constant) {
    {
        const int64_t xd[] = {2, 3, 4}, p[] = {1, 0, 2, 0, 2, 1};
        amp_tensor *in[] = {rnd(3, xd, 130), ints(6, p), rnd(0, NULL, 131)};
        const bool wrt[] = {true, false, true};
        check("pad constant, data and value", node("Pad", 11), 3, in, wrt, 1);
    }
    {
        const int64_t xd[] = {4, 5}, p[] = {-1, 1, 0, -2}, one = 1;
        amp_tensor *in[] = {rnd(2, xd, 132), ints(4, p), rnd(1, &one, 133)};
        const bool wrt[] = {true, false, true};
        check("pad constant, negative pads, value of shape [1]", node("Pad", 13), 3, in, wrt, 1);
    }
    {
        const int64_t xd[] = {3, 4}, p[] = {1, 1, 1, 1};
        amp_tensor *in[] = {rnd(2, xd, 134), ints(4, p)};
        check("pad constant without value", node("Pad", 11), 2, in, NULL, 1);
    }
    {
        const int64_t xd[] = {3, 4}, p[] = {0, 2, 1, 0};
        amp_test_node *t = node("Pad", 2);
        tn_ints(t, "pads", 4, p);
        tn_float(t, "value", 1.5f);
        amp_tensor *in[] = {rnd(2, xd, 135)};
        check("pad opset 2 attributes", t, 1, in, NULL, 1);
    }
}

Test(grad_shape, pad_modes) {
    const char *modes[] = {"reflect", "edge", "wrap"};
    const int64_t xd[] = {4, 5}, p[] = {2, 1, 3, 4};
    for (int m = 0; m < N(modes); m++) {
        amp_test_node *t = node("Pad", 13);
        tn_str(t, "mode", modes[m]);
        amp_tensor *in[] = {rnd(2, xd, 140 + (uint64_t)m), ints(4, p)};
        check(modes[m], t, 2, in, NULL, 1);
    }
    {
        /* the constant takes no part outside constant mode; only the data gets a gradient */
        const int64_t p2[] = {1, 2, 2, 1};
        amp_test_node *t = node("Pad", 11);
        tn_str(t, "mode", "edge");
        amp_tensor *in[] = {rnd(2, xd, 144), ints(4, p2), rnd(0, NULL, 145)};
        check("edge with a value input", t, 3, in, NULL, 1);
    }
    {
        const int64_t x1[] = {1, 3}, p2[] = {2, 1, 0, 2};
        amp_test_node *t = node("Pad", 13);
        tn_str(t, "mode", "reflect");
        amp_tensor *in[] = {rnd(2, x1, 146), ints(4, p2)};
        check("reflect of a dim of 1", t, 2, in, NULL, 1);
    }
    {
        const int64_t p2[] = {1, 2, 0, 1};
        amp_test_node *t = node("Pad", 2);
        tn_str(t, "mode", "reflect");
        tn_ints(t, "pads", 4, p2);
        amp_tensor *in[] = {rnd(2, xd, 147)};
        check("reflect opset 2", t, 1, in, NULL, 1);
    }
}

/* ---- DepthToSpace, SpaceToDepth ------------------------------------------------------------------------ */

Test(grad_shape, depth_space) {
    {
        const int64_t xd[] = {1, 8, 2, 3};
        amp_test_node *t = node("DepthToSpace", 13);
        tn_int(t, "blocksize", 2);
        amp_tensor *in[] = {rnd(4, xd, 150)};
        check("depth_to_space DCR", t, 1, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 18, 2, 2};
        amp_test_node *t = node("DepthToSpace", 13);
        tn_int(t, "blocksize", 3);
        tn_str(t, "mode", "CRD");
        amp_tensor *in[] = {rnd(4, xd, 151)};
        check("depth_to_space CRD", t, 1, in, NULL, 1);
    }
    {
        const int64_t xd[] = {1, 8, 2, 3};
        amp_test_node *t = node("DepthToSpace", 1);
        tn_int(t, "blocksize", 2);
        amp_tensor *in[] = {rnd(4, xd, 152)};
        check("depth_to_space opset 1", t, 1, in, NULL, 1);
    }
    {
        const int64_t xd[] = {2, 2, 4, 6};
        amp_test_node *t = node("SpaceToDepth", 13);
        tn_int(t, "blocksize", 2);
        amp_tensor *in[] = {rnd(4, xd, 153)};
        check("space_to_depth", t, 1, in, NULL, 1);
    }
}

/* ---- the training-domain kernels in 16 bits ------------------------------------------------------------ */

/* Run t on in (float inputs in f64) and again with every float input rounded to f16 and to bf16;
 * each output must keep the dtype and come within 1e-2 relative L2 of the f64 result. */
static void half_vs_f64(const char *what, amp_test_node *t, int nin, amp_tensor **in, int nout) {
    amp_tensor *ref[4] = {0};
    cr_assert_eq(tn_run(t, nin, in, nout, ref), AMP_OK, "%s f64: %s", what, amp_context_last_error(ctx));
    const amp_dtype dts[] = {AMP_F16, AMP_BF16};
    for (int di = 0; di < 2; di++) {
        amp_tensor *hin[8] = {0}, *out[4] = {0};
        for (int i = 0; i < nin; i++) {
            if (!in[i]) continue;
            if (in[i]->dtype != AMP_F64) {
                cr_assert_eq(amp_tensor_clone(ctx, in[i], &hin[i]), AMP_OK);
                continue;
            }
            double *v = malloc(sizeof(double) * (size_t)(in[i]->numel + 1));
            for (int64_t e = 0; e < in[i]->numel; e++) v[e] = tt_get(in[i], e);
            hin[i] = tt_make(ctx, dts[di], in[i]->rank, in[i]->dims, v);
            free(v);
        }
        cr_assert_eq(tn_run(t, nin, hin, nout, out), AMP_OK, "%s %s: %s", what, amp_dtype_name(dts[di]),
                     amp_context_last_error(ctx));
        for (int k = 0; k < nout; k++) {
            cr_assert_eq(out[k]->dtype, dts[di], "%s: output %d dtype", what, k);
            double rel = sqrt(tt_nse(out[k], ref[k]));
            cr_assert(rel < 1e-2, "%s %s output %d: relative L2 %g", what, amp_dtype_name(dts[di]), k, rel);
        }
        free_all(nin, hin);
        free_all(nout, out);
    }
    free_all(nout, ref);
    free_all(nin, in);
    tn_free(t);
}

Test(grad_shape, kernels_16bit) {
    {
        const int64_t yd[] = {3, 8}, sh[] = {2, 3, 4};
        amp_tensor *in[] = {rnd(2, yd, 200), ints(3, sh)};
        half_vs_f64("ReshapeGrad", tn_train(ctx, "ReshapeGrad"), 2, in, 1);
    }
    {
        const int64_t yd[] = {2, 6, 3}, sh[] = {2, 1, 3, 2, 5, 3};
        amp_test_node *t = tn_train(ctx, "ConcatGrad");
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(3, yd, 201), ints(6, sh)};
        half_vs_f64("ConcatGrad", t, 2, in, 2);
    }
    {
        const int64_t sh[] = {2, 2, 2, 3, 2, 1}, a[] = {2, 2}, c[] = {2, 1};
        amp_test_node *t = tn_train(ctx, "SplitGrad");
        tn_int(t, "axis", -1);
        amp_tensor *in[] = {ints(6, sh), rnd(2, a, 202), NULL, rnd(2, c, 203)};
        half_vs_f64("SplitGrad", t, 4, in, 1);
    }
    {
        const int64_t yd[] = {2, 3}, xs[] = {5, 7}, st[] = {4, 1}, en[] = {0, 7}, ax[] = {0, 1}, sp[] = {-2, 2};
        amp_tensor *in[] = {rnd(2, yd, 204), ints(2, xs), ints(2, st), ints(2, en), ints(2, ax), ints(2, sp)};
        half_vs_f64("SliceGrad", tn_train(ctx, "SliceGrad"), 6, in, 1);
    }
    {
        const int64_t yd[] = {9, 77}, xs[] = {6, 70}, p[] = {2, 3, 1, 4};
        amp_test_node *t = tn_train(ctx, "PadGrad");
        tn_str(t, "mode", "reflect");
        amp_tensor *in[] = {rnd(2, yd, 205), ints(2, xs), ints(4, p), NULL};
        half_vs_f64("PadGrad reflect", t, 4, in, 1);
    }
    {
        const int64_t yd[] = {9, 77}, xs[] = {6, 70}, p[] = {2, 3, 1, 4};
        amp_test_node *t = tn_train(ctx, "PadGrad");
        amp_tensor *in[] = {rnd(2, yd, 206), ints(2, xs), ints(4, p), NULL};
        half_vs_f64("PadGrad constant with value", t, 4, in, 2);
    }
    {
        /* 512 terms per element: an accumulator in 16 bits would be far off */
        const int64_t yd[] = {512, 4}, xs[] = {4};
        amp_tensor *in[] = {tt_rand(ctx, AMP_F64, 2, yd, 0.5, 1.0, 207), ints(1, xs)};
        half_vs_f64("TileGrad broadcast", tn_train(ctx, "TileGrad"), 2, in, 1);
    }
    {
        /* a bias over channels: whole rows of 301 summed, then 7 of those */
        const int64_t yd[] = {7, 5, 301}, xs[] = {5, 1};
        amp_tensor *in[] = {tt_rand(ctx, AMP_F64, 3, yd, 0.5, 1.0, 212), ints(2, xs)};
        half_vs_f64("TileGrad channel bias", tn_train(ctx, "TileGrad"), 2, in, 1);
    }
    {
        const int64_t yd[] = {6, 8}, xs[] = {3, 2};
        amp_tensor *in[] = {rnd(2, yd, 208), ints(2, xs)};
        half_vs_f64("TileGrad tiles", tn_train(ctx, "TileGrad"), 2, in, 1);
    }
    {
        const int64_t yd[] = {600, 8}, xs[] = {10, 8};
        int64_t iv[600];
        for (int i = 0; i < 600; i++) iv[i] = (i * 37) % 20 - 10;
        amp_tensor *in[] = {tt_rand(ctx, AMP_F64, 2, yd, 0.5, 1.0, 209), ints(2, xs), ints(600, iv)};
        half_vs_f64("GatherGrad", tn_train(ctx, "GatherGrad"), 3, in, 1);
    }
    {
        const int64_t yd[] = {6, 200}, xs[] = {6, 50};
        int64_t iv[1200];
        for (int i = 0; i < 1200; i++) iv[i] = (i * 13) % 100 - 50;
        amp_test_node *t = tn_train(ctx, "GatherElementsGrad");
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {tt_rand(ctx, AMP_F64, 2, yd, 0.5, 1.0, 210), ints(2, xs), ints_nd(2, yd, iv)};
        half_vs_f64("GatherElementsGrad", t, 3, in, 1);
    }
    {
        const int64_t yd[] = {1, 2, 4, 6};
        amp_test_node *t = tn_train(ctx, "DepthToSpaceGrad");
        tn_int(t, "blocksize", 2);
        tn_str(t, "mode", "CRD");
        amp_tensor *in[] = {rnd(4, yd, 211)};
        half_vs_f64("DepthToSpaceGrad", t, 1, in, 1);
    }
}

/* ---- kernels against loops written here ----------------------------------------------------------- */

Test(grad_shape, split_grad_zero_fill) {
    /* the middle output has no gradient: its block of dX must be exact zeros */
    const int64_t sh[] = {2, 2, 2, 3, 2, 1}, a[] = {2, 2}, c[] = {2, 1};
    amp_test_node *t = tn_train(ctx, "SplitGrad");
    tn_int(t, "axis", 1);
    amp_tensor *in[] = {ints(6, sh), rnd(2, a, 220), NULL, rnd(2, c, 221)}, *out[1];
    cr_assert_eq(tn_run(t, 4, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(out[0]->rank == 2 && out[0]->dims[0] == 2 && out[0]->dims[1] == 6);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 6; j++) {
            double want = j < 2 ? tt_get(in[1], i * 2 + j) : j < 5 ? 0.0 : tt_get(in[3], i);
            cr_assert_eq(tt_get(out[0], i * 6 + j), want, "dX[%d,%d]", i, j);
        }
    free_all(1, out);
    free_all(4, in);
    tn_free(t);
}

Test(grad_shape, gather_grad_reference_and_threads) {
    /* scatter-add by a plain loop; and the same bits on 1 and 2 threads */
    const int64_t X = 37, D = 1000, n = 900;
    const int64_t yd[] = {n, D}, xs[] = {X, D};
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) iv[i] = (i * 31 + i / 7) % (2 * X) - X;
    amp_tensor *in[] = {rnd(2, yd, 230), ints(2, xs), ints((int)n, iv)}, *o1[1], *o2[1];
    amp_test_node *t = tn_train(ctx, "GatherGrad");
    t->threads = 1;
    cr_assert_eq(tn_run(t, 3, in, 1, o1), AMP_OK, "%s", amp_context_last_error(ctx));
    t->threads = 2;
    cr_assert_eq(tn_run(t, 3, in, 1, o2), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(o1[0], o2[0]), "thread count changes the result");
    double *ref = calloc((size_t)(X * D), sizeof(double));
    for (int64_t j = 0; j < n; j++) {
        int64_t v = iv[j] < 0 ? iv[j] + X : iv[j];
        for (int64_t d = 0; d < D; d++) ref[v * D + d] += tt_get(in[0], j * D + d);
    }
    amp_tensor *rt = tt_make(ctx, AMP_F64, 2, xs, ref);
    cr_assert(tt_nse(o1[0], rt) < 1e-28, "scatter-add differs from the loop: %g", tt_nse(o1[0], rt));
    amp_tensor_destroy(rt);
    free(ref);
    free(iv);
    free_all(1, o1);
    free_all(1, o2);
    free_all(3, in);
    tn_free(t);
}

Test(grad_shape, gather_elements_grad_reference_and_threads) {
    /* f32 adds in f32 straight into dX: compare with a double loop, and 1 against 2 threads */
    const int64_t xs[] = {40, 300}, id[] = {40, 900};
    int64_t *iv = malloc(sizeof(int64_t) * 36000);
    for (int64_t i = 0; i < 36000; i++) iv[i] = (i * 17 + i / 300) % 600 - 300;
    amp_tensor *in[] = {tt_rand(ctx, AMP_F32, 2, id, -1.0, 1.0, 231), ints(2, xs), ints_nd(2, id, iv)}, *o1[1], *o2[1];
    amp_test_node *t = tn_train(ctx, "GatherElementsGrad");
    tn_int(t, "axis", -1);
    t->threads = 1;
    cr_assert_eq(tn_run(t, 3, in, 1, o1), AMP_OK, "%s", amp_context_last_error(ctx));
    t->threads = 2;
    cr_assert_eq(tn_run(t, 3, in, 1, o2), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(o1[0], o2[0]), "thread count changes the result");
    double *ref = calloc(40 * 300, sizeof(double));
    for (int64_t i = 0; i < 40; i++)
        for (int64_t j = 0; j < 900; j++) {
            int64_t v = iv[i * 900 + j];
            ref[i * 300 + (v < 0 ? v + 300 : v)] += tt_get(in[0], i * 900 + j);
        }
    amp_tensor *rt = tt_make(ctx, AMP_F64, 2, xs, ref);
    double rel = sqrt(tt_nse(o1[0], rt));
    cr_assert(rel < 1e-6, "scatter-add differs from the loop: relative L2 %g", rel);
    amp_tensor_destroy(rt);
    free(ref);
    free(iv);
    free_all(1, o1);
    free_all(1, o2);
    free_all(3, in);
    tn_free(t);
}

Test(grad_shape, pad_grad_reference) {
    /* reflect: every dY element added to the dX element the forward Pad read it from */
    const int64_t xd[] = {3, 5}, p[] = {2, 4, 1, 3}, yd[] = {6, 12};
    amp_test_node *t = tn_train(ctx, "PadGrad");
    tn_str(t, "mode", "reflect");
    amp_tensor *in[] = {rnd(2, yd, 240), ints(2, xd), ints(4, p), NULL}, *out[1];
    cr_assert_eq(tn_run(t, 4, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    double ref[15] = {0};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 12; j++) {
            /* numpy's reflect: ... 2 1 | 0 1 2 | 1 0 ... */
            int a = i - 2, b = j - 4;
            while (a < 0 || a > 2) a = a < 0 ? -a : 4 - a;
            while (b < 0 || b > 4) b = b < 0 ? -b : 8 - b;
            ref[a * 5 + b] += tt_get(in[0], i * 12 + j);
        }
    amp_tensor *rt = tt_make(ctx, AMP_F64, 2, xd, ref);
    cr_assert(tt_nse(out[0], rt) < 1e-28, "reflect gradient differs from the loop");
    amp_tensor_destroy(rt);
    free_all(1, out);
    free_all(4, in);
    tn_free(t);
}

Test(grad_shape, pad_grad_axes_input) {
    /* Pad's axes input (opset 18) names the padded dims: the same as full pads with zeros */
    const int64_t xd[] = {3, 4, 5}, yd[] = {3, 7, 5}, p1[] = {1, 2}, ax[] = {-2}, p3[] = {0, 1, 0, 0, 2, 0};
    amp_tensor *dy = rnd(3, yd, 245), *a[1], *b[1];
    amp_test_node *t = tn_train(ctx, "PadGrad");
    tn_str(t, "mode", "edge");
    amp_tensor *in1[] = {dy, ints(3, xd), ints(2, p1), ints(1, ax)};
    cr_assert_eq(tn_run(t, 4, in1, 1, a), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *in3[] = {dy, in1[1], ints(6, p3), NULL};
    cr_assert_eq(tn_run(t, 4, in3, 1, b), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(a[0], b[0]), "axes input and full pads disagree");
    amp_tensor_destroy(a[0]);
    amp_tensor_destroy(b[0]);
    amp_tensor_destroy(in3[2]);
    free_all(4, in1);
    tn_free(t);
}

/* ---- bad input ---------------------------------------------------------------------------------- */

static amp_status run_status(amp_test_node *t, int nin, amp_tensor **in, int nout) {
    amp_tensor *out[4] = {0};
    amp_status s = tn_run(t, nin, in, nout, out);
    free_all(nout, out);
    free_all(nin, in);
    tn_free(t);
    return s;
}

Test(grad_shape, bad_input) {
    {
        const int64_t yd[] = {4, 2}, xs[] = {3, 2}, iv[] = {0, 3, 1, 2};
        amp_tensor *in[] = {rnd(2, yd, 250), ints(2, xs), ints(4, iv)};
        cr_assert_eq(run_status(tn_train(ctx, "GatherGrad"), 3, in, 1), AMP_ERR_INVALID_ARG, "index 3 of 3");
        cr_assert(strstr(amp_context_last_error(ctx), "out of range"), "%s", amp_context_last_error(ctx));
    }
    {
        const int64_t yd[] = {2, 3}, xs[] = {3, 2}, iv[] = {0, -4, 1, 2, 0, 1};
        amp_test_node *t = tn_train(ctx, "GatherElementsGrad");
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(2, yd, 251), ints(2, xs), ints_nd(2, yd, iv)};
        cr_assert_neq(run_status(t, 3, in, 1), AMP_OK, "index -4 of 2 must fail");
    }
    {
        const int64_t yd[] = {3, 8}, sh[] = {5, 5};
        amp_tensor *in[] = {rnd(2, yd, 252), ints(2, sh)};
        cr_assert_eq(run_status(tn_train(ctx, "ReshapeGrad"), 2, in, 1), AMP_ERR_SHAPE);
    }
    {
        const int64_t yd[] = {1, 2, 4, 6};
        amp_test_node *t = tn_train(ctx, "DepthToSpaceGrad");
        tn_int(t, "blocksize", 2);
        tn_str(t, "mode", "RDC");
        amp_tensor *in[] = {rnd(4, yd, 253)};
        cr_assert_eq(run_status(t, 1, in, 1), AMP_ERR_INVALID_GRAPH);
    }
    {
        const int64_t yd[] = {1, 2, 5, 6};
        amp_test_node *t = tn_train(ctx, "DepthToSpaceGrad");
        tn_int(t, "blocksize", 2);
        amp_tensor *in[] = {rnd(4, yd, 254)};
        cr_assert_eq(run_status(t, 1, in, 1), AMP_ERR_SHAPE, "height 5 with blocksize 2");
    }
    {
        const int64_t yd[] = {4, 4}, xs[] = {3, 3}, p[] = {1, 0, 0, 1};
        amp_test_node *t = tn_train(ctx, "PadGrad");
        tn_str(t, "mode", "mirror");
        amp_tensor *in[] = {rnd(2, yd, 255), ints(2, xs), ints(4, p)};
        cr_assert_eq(run_status(t, 3, in, 1), AMP_ERR_INVALID_GRAPH);
    }
    {
        const int64_t yd[] = {5, 4}, xs[] = {3, 3}, p[] = {1, 0, 0, 1};
        amp_tensor *in[] = {rnd(2, yd, 256), ints(2, xs), ints(4, p)};
        cr_assert_eq(run_status(tn_train(ctx, "PadGrad"), 3, in, 1), AMP_ERR_SHAPE, "dY does not match the pads");
    }
    {
        const int64_t yd[] = {7, 4}, xs[] = {3, 4};
        amp_tensor *in[] = {rnd(2, yd, 257), ints(2, xs)};
        cr_assert_eq(run_status(tn_train(ctx, "TileGrad"), 2, in, 1), AMP_ERR_SHAPE, "7 rows are not tiles of 3");
    }
    {
        const int64_t yd[] = {2, 2}, xs[] = {4, 3}, st[] = {1}, en[] = {3};
        amp_tensor *in[] = {rnd(2, yd, 258), ints(2, xs), ints(1, st), ints(1, en)};
        cr_assert_eq(run_status(tn_train(ctx, "SliceGrad"), 4, in, 1), AMP_ERR_SHAPE, "dY [2,2] for a [2,3] slice");
    }
    {
        const int64_t yd[] = {2, 6}, sh[] = {2, 2, 2, 3};
        amp_test_node *t = tn_train(ctx, "ConcatGrad");
        tn_int(t, "axis", 1);
        amp_tensor *in[] = {rnd(2, yd, 259), ints(4, sh)};
        cr_assert_eq(run_status(t, 2, in, 2), AMP_ERR_SHAPE, "pieces of 2 and 3 for 6");
    }
    {
        const int64_t yd[] = {2, 6}, sh[] = {2, 6};
        amp_tensor *in[] = {rnd(2, yd, 260), ints(2, sh)};
        cr_assert_eq(run_status(tn_train(ctx, "ConcatGrad"), 2, in, 1), AMP_ERR_INVALID_GRAPH, "no axis");
    }
    {
        /* integer gradients have no business in the summing kernels */
        const int64_t yd[] = {2, 3}, xs[] = {3};
        amp_tensor *in[] = {ints_nd(2, yd, (const int64_t[]){1, 2, 3, 4, 5, 6}), ints(1, xs)};
        cr_assert_eq(run_status(tn_train(ctx, "TileGrad"), 2, in, 1), AMP_ERR_UNSUPPORTED);
    }
}
