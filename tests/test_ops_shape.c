/* Shape and data-movement ops: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split,
 * Slice, Expand, Tile, Shape, Size, Constant, ConstantOfShape and the shared copy kernel.
 * These ops move bytes, so results are compared byte for byte against references built here
 * with plain index loops. Shapes and attribute variants follow the ONNX node tests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(shape, .init = setup, .fini = teardown);

static const amp_dtype ALL[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
#define NDT ((int)(sizeof ALL / sizeof ALL[0]))
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- helpers -------------------------------------------------------------------------------- */

static amp_tensor *mk(amp_dtype dt, int r, const int64_t *dims) {
    amp_tensor *t = NULL;
    cr_assert_eq(amp_tensor_create(ctx, dt, r, dims, &t), AMP_OK);
    return t;
}

/* Random non-zero-ish data in a range the dtype holds. */
static amp_tensor *rnd(amp_dtype dt, int r, const int64_t *dims, uint64_t seed) {
    double lo = -100, hi = 100;
    if (dt == AMP_BOOL) lo = 0, hi = 2;
    if (dt == AMP_U8) lo = 1, hi = 250;
    amp_tensor *t = tt_rand(ctx, dt, r, dims, lo, hi, seed);
    cr_assert(t);
    return t;
}

static amp_tensor *ints(int n, const int64_t *v) {
    int64_t d = n;
    amp_tensor *t = mk(AMP_I64, 1, &d);
    if (n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}
static amp_tensor *ints32(int n, const int64_t *v) {
    int64_t d = n;
    amp_tensor *t = mk(AMP_I32, 1, &d);
    for (int i = 0; i < n; i++) ((int32_t *)t->data)[i] = (int32_t)v[i];
    return t;
}

static void unravel(int64_t i, int r, const int64_t *dims, int64_t *idx) {
    for (int d = r - 1; d >= 0; d--) {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
}
static int64_t ravel(int r, const int64_t *dims, const int64_t *idx) {
    int64_t o = 0;
    for (int d = 0; d < r; d++) o = o * dims[d] + idx[d];
    return o;
}
static void cp(amp_tensor *dst, int64_t di, const amp_tensor *src, int64_t si) {
    size_t es = amp_dtype_size(dst->dtype);
    memcpy((char *)dst->data + di * (int64_t)es, (const char *)src->data + si * (int64_t)es, es);
}

/* Same dtype, shape and bytes. */
static void assert_same(const amp_tensor *a, const amp_tensor *b, const char *what) {
    cr_assert(a && b, "%s: missing tensor", what);
    cr_assert_eq(a->dtype, b->dtype, "%s: dtype %d vs %d", what, a->dtype, b->dtype);
    cr_assert_eq(a->rank, b->rank, "%s: rank %d vs %d", what, a->rank, b->rank);
    for (int d = 0; d < a->rank; d++)
        cr_assert_eq(a->dims[d], b->dims[d], "%s: dim %d is %lld, want %lld", what, d, (long long)a->dims[d],
                     (long long)b->dims[d]);
    cr_assert_eq(a->nbytes, b->nbytes, "%s", what);
    if (a->nbytes) cr_assert(memcmp(a->data, b->data, a->nbytes) == 0, "%s: data differs", what);
}

static void assert_dims(const amp_tensor *t, int r, const int64_t *dims, const char *what) {
    cr_assert(t, "%s: no output", what);
    cr_assert_eq(t->rank, r, "%s: rank %d, want %d", what, t->rank, r);
    for (int d = 0; d < r; d++)
        cr_assert_eq(t->dims[d], dims[d], "%s: dim %d is %lld, want %lld", what, d, (long long)t->dims[d],
                     (long long)dims[d]);
}

/* Run a node with one output; returns the status and sets *out (NULL on failure). */
static amp_status run1(amp_test_node *t, int nin, amp_tensor *const *in, amp_tensor **out) {
    return tn_run(t, nin, in, 1, out);
}

static void freeall(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* ---- Reshape -------------------------------------------------------------------------------- */

Test(shape, reshape_onnx_cases) {
    struct {
        int n;
        int64_t shape[4];
        int ro;
        int64_t want[4];
    } cases[] = {
        {4, {2, 3, 2, 2}, 4, {2, 3, 2, 2}}, {3, {2, -1, 2}, 3, {2, 6, 2}}, {4, {-1, 2, 3, 4}, 4, {1, 2, 3, 4}},
        {1, {24}, 1, {24}},                 {2, {2, 12}, 2, {2, 12}},      {3, {4, 2, 3}, 3, {4, 2, 3}},
        {3, {2, 4, 3}, 3, {2, 4, 3}},       {4, {2, 0, 1, -1}, 4, {2, 3, 1, 4}}, {4, {2, 0, 4, 1}, 4, {2, 3, 4, 1}},
    };
    int64_t xd[] = {2, 3, 4};
    for (int i = 0; i < N(cases); i++) {
        amp_test_node *t = tn_new(ctx, "Reshape");
        t->opset = 14;
        amp_tensor *in[2] = {rnd(AMP_F32, 3, xd, 10 + i), ints(cases[i].n, cases[i].shape)}, *y;
        cr_assert_eq(run1(t, 2, in, &y), AMP_OK, "case %d: %s", i, amp_context_last_error(ctx));
        assert_dims(y, cases[i].ro, cases[i].want, "reshape");
        cr_assert(memcmp(y->data, in[0]->data, in[0]->nbytes) == 0);
        freeall(2, in);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

Test(shape, reshape_allowzero) {
    int64_t xd[] = {0, 3, 4}, sh[] = {3, 4, 0}, want[] = {3, 4, 0};
    amp_tensor *in[2] = {mk(AMP_F32, 3, xd), ints(3, sh)}, *y;
    amp_test_node *t = tn_new(ctx, "Reshape");
    t->opset = 14;
    tn_int(t, "allowzero", 1);
    cr_assert_eq(run1(t, 2, in, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    assert_dims(y, 3, want, "allowzero");
    amp_tensor_destroy(y);
    tn_free(t);
    /* without allowzero the 0 copies input dim 2 (4): 48 elements from 0 */
    t = tn_new(ctx, "Reshape");
    t->opset = 14;
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_SHAPE);
    tn_free(t);
    /* allowzero before opset 14 is ignored: same failure */
    t = tn_new(ctx, "Reshape");
    t->opset = 13;
    tn_int(t, "allowzero", 1);
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_SHAPE);
    tn_free(t);
    freeall(2, in);
}

Test(shape, reshape_to_scalar_and_back) {
    int64_t xd[] = {1, 1, 1};
    amp_tensor *in[2] = {rnd(AMP_F64, 3, xd, 3), ints(0, NULL)}, *y, *z;
    amp_test_node *t = tn_new(ctx, "Reshape");
    cr_assert_eq(run1(t, 2, in, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->rank, 0);
    cr_assert_eq(memcmp(y->data, in[0]->data, 8), 0);
    int64_t sh[] = {-1, 1};
    amp_tensor *in2[2] = {y, ints(2, sh)};
    cr_assert_eq(run1(t, 2, in2, &z), AMP_OK);
    int64_t want[] = {1, 1};
    assert_dims(z, 2, want, "scalar to 2-D");
    freeall(2, in);
    freeall(2, in2);
    amp_tensor_destroy(z);
    tn_free(t);
}

Test(shape, reshape_opset1_attribute) {
    int64_t xd[] = {2, 3, 4}, sh[] = {6, -1}, want[] = {6, 4};
    amp_tensor *x = rnd(AMP_F32, 3, xd, 5), *y;
    amp_test_node *t = tn_new(ctx, "Reshape");
    t->opset = 4;
    tn_ints(t, "shape", 2, sh);
    cr_assert_eq(run1(t, 1, &x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    assert_dims(y, 2, want, "opset 4");
    cr_assert_eq(memcmp(y->data, x->data, x->nbytes), 0);
    amp_tensor_destroy(y);
    tn_free(t);
    /* opset 4 without the attribute */
    t = tn_new(ctx, "Reshape");
    t->opset = 4;
    cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
}

Test(shape, reshape_every_dtype_and_int32_shape) {
    int64_t xd[] = {3, 5, 7}, sh[] = {-1, 7};
    for (int i = 0; i < NDT; i++) {
        amp_tensor *in[2] = {rnd(ALL[i], 3, xd, 20 + i), ints32(2, sh)}, *y;
        amp_test_node *t = tn_new(ctx, "Reshape");
        cr_assert_eq(run1(t, 2, in, &y), AMP_OK, "%s: %s", amp_dtype_name(ALL[i]), amp_context_last_error(ctx));
        int64_t want[] = {15, 7};
        assert_dims(y, 2, want, amp_dtype_name(ALL[i]));
        cr_assert_eq(y->dtype, ALL[i]);
        cr_assert_eq(memcmp(y->data, in[0]->data, in[0]->nbytes), 0);
        freeall(2, in);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

Test(shape, reshape_bad_inputs) {
    int64_t xd[] = {2, 3, 4};
    struct {
        int n;
        int64_t shape[9];
        int allowzero;
        amp_status want;
    } cases[] = {
        {2, {5, 5}, 0, AMP_ERR_SHAPE},                     /* wrong element count */
        {3, {-1, -1, 4}, 0, AMP_ERR_INVALID_GRAPH},        /* two -1 */
        {2, {-2, 12}, 0, AMP_ERR_INVALID_GRAPH},           /* below -1 */
        {2, {-1, 5}, 0, AMP_ERR_SHAPE},                    /* 24 not divisible by 5 */
        {3, {0, -1, 4}, 1, AMP_ERR_INVALID_GRAPH},         /* allowzero with 0 and -1 */
        {4, {2, 3, 4, 0}, 0, AMP_ERR_INVALID_GRAPH},       /* 0 copies a dim the input lacks */
        {9, {1, 1, 1, 1, 1, 2, 3, 4, 1}, 0, AMP_ERR_UNSUPPORTED}, /* rank 9 */
        {2, {4, 0}, 1, AMP_ERR_SHAPE},                     /* allowzero: 0 elements from 24 */
    };
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *in[2] = {rnd(AMP_F32, 3, xd, 1), ints(cases[i].n, cases[i].shape)}, *y = NULL;
        amp_test_node *t = tn_new(ctx, "Reshape");
        if (cases[i].allowzero) tn_int(t, "allowzero", 1);
        cr_assert_eq(run1(t, 2, in, &y), cases[i].want, "case %d", i);
        cr_assert_null(y);
        cr_assert(strlen(amp_context_last_error(ctx)) > 0);
        freeall(2, in);
        tn_free(t);
    }
    /* -1 beside a zero dim (copied from the input) cannot be inferred */
    int64_t zd[] = {0, 3}, sh[] = {0, -1};
    amp_tensor *in[2] = {mk(AMP_F32, 2, zd), ints(2, sh)}, *y;
    amp_test_node *t = tn_new(ctx, "Reshape");
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_SHAPE);
    freeall(2, in);
    tn_free(t);
    /* missing shape input from opset 5 */
    amp_tensor *x = rnd(AMP_F32, 3, xd, 2);
    t = tn_new(ctx, "Reshape");
    cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH);
    amp_tensor_destroy(x);
    tn_free(t);
}

/* ---- Flatten -------------------------------------------------------------------------------- */

Test(shape, flatten_every_axis) {
    int64_t xd[] = {2, 3, 4, 5};
    for (int axis = -4; axis <= 4; axis++) {
        int a = axis < 0 ? axis + 4 : axis;
        int64_t want[2] = {1, 1};
        for (int d = 0; d < 4; d++) want[d < a ? 0 : 1] *= xd[d];
        amp_tensor *x = rnd(AMP_BF16, 4, xd, 7 + axis), *y;
        amp_test_node *t = tn_new(ctx, "Flatten");
        tn_int(t, "axis", axis);
        cr_assert_eq(run1(t, 1, &x, &y), AMP_OK, "axis %d: %s", axis, amp_context_last_error(ctx));
        assert_dims(y, 2, want, "flatten");
        cr_assert_eq(memcmp(y->data, x->data, x->nbytes), 0);
        amp_tensor_destroy(x);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

Test(shape, flatten_default_scalar_and_bad_axis) {
    int64_t xd[] = {2, 3, 4, 5}, want[] = {2, 60}, one[] = {1, 1};
    amp_tensor *x = rnd(AMP_I8, 4, xd, 1), *s = rnd(AMP_F32, 0, NULL, 2), *y;
    amp_test_node *t = tn_new(ctx, "Flatten");
    cr_assert_eq(run1(t, 1, &x, &y), AMP_OK);
    assert_dims(y, 2, want, "default axis");
    amp_tensor_destroy(y);
    tn_free(t);
    t = tn_new(ctx, "Flatten");
    tn_int(t, "axis", 0);
    cr_assert_eq(run1(t, 1, &s, &y), AMP_OK);
    assert_dims(y, 2, one, "scalar");
    amp_tensor_destroy(y);
    tn_free(t);
    int64_t bad[] = {5, -5};
    for (int i = 0; i < 2; i++) {
        t = tn_new(ctx, "Flatten");
        tn_int(t, "axis", bad[i]);
        cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH);
        tn_free(t);
    }
    /* negative axes arrived in opset 11 */
    t = tn_new(ctx, "Flatten");
    t->opset = 9;
    tn_int(t, "axis", -1);
    cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(s);
}

/* ---- Squeeze, Unsqueeze --------------------------------------------------------------------- */

Test(shape, squeeze_variants) {
    struct {
        int64_t opset;
        int r;
        int64_t xd[5];
        int na; /* -1: no axes */
        int64_t axes[3];
        int ro;
        int64_t want[5];
    } cases[] = {
        {13, 4, {1, 3, 4, 5}, 1, {0}, 3, {3, 4, 5}},
        {13, 4, {1, 3, 1, 5}, 1, {-2}, 3, {1, 3, 5}},
        {13, 4, {1, 3, 1, 5}, -1, {0}, 2, {3, 5}},
        {13, 4, {1, 3, 1, 5}, 0, {0}, 2, {3, 5}}, /* an empty axes list squeezes every 1 */
        {11, 5, {1, 3, 1, 5, 1}, 2, {0, -1}, 3, {3, 1, 5}},
        {11, 4, {1, 3, 1, 5}, -1, {0}, 2, {3, 5}},
        {13, 3, {1, 1, 1}, -1, {0}, 0, {0}},
        {13, 3, {0, 1, 2}, 1, {1}, 2, {0, 2}},
    };
    for (int i = 0; i < N(cases); i++) {
        amp_dtype dt = ALL[i % NDT];
        amp_tensor *in[2] = {rnd(dt, cases[i].r, cases[i].xd, 40 + i), NULL}, *y;
        amp_test_node *t = tn_new(ctx, "Squeeze");
        t->opset = cases[i].opset;
        int nin = 1;
        if (cases[i].na >= 0) {
            if (cases[i].opset >= 13) in[1] = ints(cases[i].na, cases[i].axes), nin = 2;
            else tn_ints(t, "axes", cases[i].na, cases[i].axes);
        }
        cr_assert_eq(run1(t, nin, in, &y), AMP_OK, "case %d: %s", i, amp_context_last_error(ctx));
        assert_dims(y, cases[i].ro, cases[i].want, "squeeze");
        cr_assert_eq(memcmp(y->data, in[0]->data, in[0]->nbytes), 0);
        freeall(2, in);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

Test(shape, squeeze_bad_axes) {
    int64_t xd[] = {1, 3, 1, 5};
    struct {
        int n;
        int64_t axes[2];
        amp_status want;
    } cases[] = {
        {1, {1}, AMP_ERR_SHAPE},           /* size 3 */
        {2, {0, -4}, AMP_ERR_INVALID_GRAPH}, /* listed twice */
        {1, {4}, AMP_ERR_INVALID_GRAPH},
        {1, {-5}, AMP_ERR_INVALID_GRAPH},
    };
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *in[2] = {rnd(AMP_F32, 4, xd, 1), ints(cases[i].n, cases[i].axes)}, *y;
        amp_test_node *t = tn_new(ctx, "Squeeze");
        cr_assert_eq(run1(t, 2, in, &y), cases[i].want, "case %d", i);
        freeall(2, in);
        tn_free(t);
    }
}

Test(shape, unsqueeze_variants) {
    struct {
        int64_t opset;
        int r;
        int64_t xd[4];
        int na;
        int64_t axes[3];
        int ro;
        int64_t want[6];
    } cases[] = {
        {13, 3, {3, 4, 5}, 1, {0}, 4, {1, 3, 4, 5}},
        {13, 3, {3, 4, 5}, 1, {1}, 4, {3, 1, 4, 5}},
        {13, 3, {3, 4, 5}, 1, {2}, 4, {3, 4, 1, 5}},
        {11, 3, {3, 4, 5}, 1, {3}, 4, {3, 4, 5, 1}},
        {13, 4, {1, 3, 1, 5}, 1, {-2}, 5, {1, 3, 1, 1, 5}},
        {13, 3, {3, 4, 5}, 3, {2, 4, 5}, 6, {3, 4, 1, 5, 1, 1}},
        {13, 3, {3, 4, 5}, 2, {1, 4}, 5, {3, 1, 4, 5, 1}},
        {13, 3, {3, 4, 5}, 3, {5, 4, 2}, 6, {3, 4, 1, 5, 1, 1}},
        {13, 0, {0}, 2, {0, -1}, 2, {1, 1}},
        {1, 2, {0, 7}, 1, {1}, 3, {0, 1, 7}},
    };
    for (int i = 0; i < N(cases); i++) {
        amp_dtype dt = ALL[(i + 3) % NDT];
        amp_tensor *in[2] = {rnd(dt, cases[i].r, cases[i].xd, 60 + i), NULL}, *y;
        amp_test_node *t = tn_new(ctx, "Unsqueeze");
        t->opset = cases[i].opset;
        int nin = 1;
        if (cases[i].opset >= 13) in[1] = ints(cases[i].na, cases[i].axes), nin = 2;
        else tn_ints(t, "axes", cases[i].na, cases[i].axes);
        cr_assert_eq(run1(t, nin, in, &y), AMP_OK, "case %d: %s", i, amp_context_last_error(ctx));
        assert_dims(y, cases[i].ro, cases[i].want, "unsqueeze");
        if (in[0]->nbytes) cr_assert_eq(memcmp(y->data, in[0]->data, in[0]->nbytes), 0);
        freeall(2, in);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

Test(shape, unsqueeze_bad) {
    int64_t xd[] = {3, 4, 5}, dup[] = {1, -4}, far[] = {4}, many[] = {0, 1, 2, 3, 4, 5};
    amp_tensor *x = rnd(AMP_F32, 3, xd, 1), *y;
    struct {
        int n;
        const int64_t *axes;
        amp_status want;
    } cases[] = {{2, dup, AMP_ERR_INVALID_GRAPH}, {1, far, AMP_ERR_INVALID_GRAPH}, {6, many, AMP_ERR_UNSUPPORTED}};
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *in[2] = {x, ints(cases[i].n, cases[i].axes)};
        amp_test_node *t = tn_new(ctx, "Unsqueeze");
        cr_assert_eq(run1(t, 2, in, &y), cases[i].want, "case %d", i);
        amp_tensor_destroy(in[1]);
        tn_free(t);
    }
    /* axes are required: input from opset 13, attribute before */
    amp_test_node *t = tn_new(ctx, "Unsqueeze");
    cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "Unsqueeze");
    t->opset = 11;
    cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
}

/* ---- Transpose ------------------------------------------------------------------------------ */

static amp_tensor *ref_transpose(const amp_tensor *x, const int64_t *perm) {
    int r = x->rank;
    int64_t od[AMP_MAX_RANK], oi[AMP_MAX_RANK], ii[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) od[d] = x->dims[perm[d]];
    amp_tensor *y = mk(x->dtype, r, od);
    for (int64_t i = 0; i < y->numel; i++) {
        unravel(i, r, od, oi);
        for (int d = 0; d < r; d++) ii[perm[d]] = oi[d];
        cp(y, i, x, ravel(r, x->dims, ii));
    }
    return y;
}

static void check_transpose(amp_dtype dt, int r, const int64_t *xd, const int64_t *perm, uint64_t seed) {
    amp_tensor *x = rnd(dt, r, xd, seed), *y;
    amp_test_node *t = tn_new(ctx, "Transpose");
    if (perm) tn_ints(t, "perm", r, perm);
    int64_t rev[AMP_MAX_RANK] = {0};
    for (int d = 0; d < r; d++) rev[d] = r - 1 - d;
    cr_assert_eq(run1(t, 1, &x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *want = ref_transpose(x, perm ? perm : rev);
    char what[128];
    snprintf(what, sizeof what, "transpose %s rank %d perm %lld..", amp_dtype_name(dt), r,
             (long long)(perm && r ? perm[0] : -1));
    assert_same(y, want, what);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(want);
    tn_free(t);
}

/* Heap's algorithm: every permutation of n axes. */
static void each_perm(int n, int64_t *p, int k, void (*fn)(const int64_t *, int, void *), void *u) {
    if (k == 1) {
        fn(p, n, u);
        return;
    }
    for (int i = 0; i < k; i++) {
        each_perm(n, p, k - 1, fn, u);
        int j = k % 2 ? 0 : i;
        int64_t tmp = p[j];
        p[j] = p[k - 1];
        p[k - 1] = tmp;
    }
}

struct perm_case {
    amp_dtype dt;
    const int64_t *xd;
    int count;
};
static void perm_fn(const int64_t *p, int n, void *u) {
    struct perm_case *c = u;
    check_transpose(c->dt, n, c->xd, p, 100 + (uint64_t)c->count++);
}

Test(shape, transpose_all_permutations_every_dtype) {
    int64_t xd3[] = {2, 3, 4}, xd4[] = {3, 1, 5, 2}, xd4b[] = {2, 3, 4, 5};
    for (int i = 0; i < NDT; i++) {
        int64_t p3[] = {0, 1, 2}, p4[] = {0, 1, 2, 3};
        struct perm_case c3 = {ALL[i], xd3, 0}, c4 = {ALL[i], xd4, 0}, c4b = {ALL[i], xd4b, 0};
        each_perm(3, p3, 3, perm_fn, &c3);
        cr_assert_eq(c3.count, 6);
        each_perm(4, p4, 4, perm_fn, &c4);
        cr_assert_eq(c4.count, 24);
        int64_t p4b[] = {0, 1, 2, 3};
        each_perm(4, p4b, 4, perm_fn, &c4b);
    }
}

Test(shape, transpose_default_perm_and_small_ranks) {
    int64_t xd[] = {2, 3, 4};
    check_transpose(AMP_F32, 3, xd, NULL, 1);
    int64_t xd1[] = {7}, p1[] = {0};
    check_transpose(AMP_I64, 1, xd1, p1, 2);
    check_transpose(AMP_F16, 0, NULL, NULL, 3);
    int64_t xd2[] = {5, 3}, p2[] = {1, 0};
    for (int i = 0; i < NDT; i++) check_transpose(ALL[i], 2, xd2, p2, 4 + (uint64_t)i);
}

Test(shape, transpose_random_ranks_up_to_8) {
    uint64_t s = 12345;
    for (int iter = 0; iter < 120; iter++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int r = 1 + (int)((s >> 33) % AMP_MAX_RANK);
        int64_t xd[AMP_MAX_RANK], perm[AMP_MAX_RANK];
        int64_t total = 1;
        for (int d = 0; d < r; d++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            xd[d] = 1 + (int64_t)((s >> 35) % (r > 5 ? 3 : 5));
            total *= xd[d];
            perm[d] = d;
        }
        for (int d = r - 1; d > 0; d--) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((s >> 33) % (uint64_t)(d + 1));
            int64_t tmp = perm[d];
            perm[d] = perm[j];
            perm[j] = tmp;
        }
        cr_assert(total < 100000);
        check_transpose(ALL[iter % NDT], r, xd, perm, (uint64_t)iter);
    }
}

Test(shape, transpose_large_paths) {
    /* big enough to take the threaded branches of every path */
    int64_t d2[] = {257, 263}, p2[] = {1, 0};
    check_transpose(AMP_F32, 2, d2, p2, 1);
    check_transpose(AMP_F16, 2, d2, p2, 2);
    int64_t d3[] = {3, 67, 129}, p3[] = {0, 2, 1};
    check_transpose(AMP_F64, 3, d3, p3, 3);
    int64_t nchw[] = {2, 3, 17, 19}, to_nhwc[] = {0, 2, 3, 1};
    check_transpose(AMP_U8, 4, nchw, to_nhwc, 4);
    int64_t dg[] = {16, 33, 65, 9}, pg[] = {2, 0, 3, 1};
    check_transpose(AMP_F32, 4, dg, pg, 5);
    int64_t dk[] = {40, 50, 60}, pk[] = {1, 0, 2}; /* last dim kept: row copies */
    check_transpose(AMP_I32, 3, dk, pk, 6);
}

Test(shape, transpose_zero_sized_and_bad_perm) {
    int64_t xd[] = {2, 0, 3}, p[] = {2, 0, 1}, want[] = {3, 2, 0};
    amp_tensor *x = mk(AMP_F32, 3, xd), *y;
    amp_test_node *t = tn_new(ctx, "Transpose");
    tn_ints(t, "perm", 3, p);
    cr_assert_eq(run1(t, 1, &x, &y), AMP_OK);
    assert_dims(y, 3, want, "zero-sized");
    amp_tensor_destroy(y);
    tn_free(t);
    int64_t dupl[] = {0, 0, 1}, neg[] = {0, -1, 1}, short_[] = {1, 0};
    const int64_t *bad[] = {dupl, neg, short_};
    int nbad[] = {3, 3, 2};
    for (int i = 0; i < 3; i++) {
        t = tn_new(ctx, "Transpose");
        tn_ints(t, "perm", nbad[i], bad[i]);
        cr_assert_eq(run1(t, 1, &x, &y), AMP_ERR_INVALID_GRAPH, "bad perm %d", i);
        tn_free(t);
    }
    amp_tensor_destroy(x);
}

/* ---- Concat --------------------------------------------------------------------------------- */

static amp_tensor *ref_concat(int n, amp_tensor *const *xs, int axis) {
    int r = xs[0]->rank;
    int64_t od[AMP_MAX_RANK], idx[AMP_MAX_RANK];
    memcpy(od, xs[0]->dims, sizeof od);
    od[axis] = 0;
    for (int i = 0; i < n; i++) od[axis] += xs[i]->dims[axis];
    amp_tensor *y = mk(xs[0]->dtype, r, od);
    for (int64_t o = 0; o < y->numel; o++) {
        unravel(o, r, od, idx);
        int i = 0;
        while (idx[axis] >= xs[i]->dims[axis]) idx[axis] -= xs[i++]->dims[axis];
        cp(y, o, xs[i], ravel(r, xs[i]->dims, idx));
    }
    return y;
}

static void check_concat(amp_dtype dt, int r, const int64_t *base, int n, const int64_t *sizes, int axis,
                         uint64_t seed) {
    amp_tensor *xs[8], *y;
    int a = axis < 0 ? axis + r : axis;
    for (int i = 0; i < n; i++) {
        int64_t d[AMP_MAX_RANK];
        memcpy(d, base, sizeof(int64_t) * (size_t)r);
        d[a] = sizes[i];
        xs[i] = rnd(dt, r, d, seed + (uint64_t)i);
    }
    amp_test_node *t = tn_new(ctx, "Concat");
    tn_int(t, "axis", axis);
    cr_assert_eq(run1(t, n, xs, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *want = ref_concat(n, xs, a);
    assert_same(y, want, "concat");
    freeall(n, xs);
    amp_tensor_destroy(y);
    amp_tensor_destroy(want);
    tn_free(t);
}

Test(shape, concat_every_rank_axis_dtype) {
    int64_t base[] = {3, 2, 5, 7}, sizes[] = {2, 1, 3};
    for (int r = 1; r <= 4; r++)
        for (int axis = -r; axis < r; axis++)
            for (int i = 0; i < NDT; i++) check_concat(ALL[i], r, base, 3, sizes, axis, (uint64_t)(r * 100 + i));
}

Test(shape, concat_zero_sized_single_and_large) {
    int64_t base[] = {3, 4, 5}, sz[] = {2, 0, 3};
    check_concat(AMP_F32, 3, base, 3, sz, 1, 1);
    int64_t one[] = {4};
    check_concat(AMP_I8, 3, base, 1, one, 2, 2);
    int64_t zb[] = {0, 4}, zs[] = {1, 2};
    check_concat(AMP_F16, 2, zb, 2, zs, 1, 3);
    int64_t big[] = {64, 100, 33}, bs[] = {50, 70};
    check_concat(AMP_F32, 3, big, 2, bs, 1, 4);
    /* opset 1: axis defaults to 1 */
    int64_t d[] = {2, 3};
    amp_tensor *xs[2] = {rnd(AMP_F32, 2, d, 1), rnd(AMP_F32, 2, d, 2)}, *y;
    amp_test_node *t = tn_new(ctx, "Concat");
    t->opset = 1;
    cr_assert_eq(run1(t, 2, xs, &y), AMP_OK);
    amp_tensor *want = ref_concat(2, xs, 1);
    assert_same(y, want, "opset 1 default axis");
    freeall(2, xs);
    amp_tensor_destroy(y);
    amp_tensor_destroy(want);
    tn_free(t);
}

Test(shape, concat_bad_inputs) {
    int64_t a[] = {2, 3}, b[] = {3, 3}, c3[] = {2, 3, 1};
    amp_tensor *x = rnd(AMP_F32, 2, a, 1), *xb = rnd(AMP_F32, 2, b, 2), *xr = rnd(AMP_F32, 3, c3, 3),
               *xi = rnd(AMP_I32, 2, a, 4), *y;
    struct {
        amp_tensor *second;
        int64_t axis;
        amp_status want;
    } cases[] = {
        {xb, 1, AMP_ERR_SHAPE},          /* dim 0 differs */
        {xr, 0, AMP_ERR_SHAPE},          /* rank differs */
        {xi, 0, AMP_ERR_SHAPE},          /* dtype differs */
        {x, 2, AMP_ERR_INVALID_GRAPH},   /* axis out of range */
        {x, -3, AMP_ERR_INVALID_GRAPH},
    };
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *in[2] = {x, cases[i].second};
        amp_test_node *t = tn_new(ctx, "Concat");
        tn_int(t, "axis", cases[i].axis);
        cr_assert_eq(run1(t, 2, in, &y), cases[i].want, "case %d", i);
        tn_free(t);
    }
    amp_tensor *in[2] = {x, x};
    amp_test_node *t = tn_new(ctx, "Concat"); /* axis required from opset 4 */
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor *s[2] = {rnd(AMP_F32, 0, NULL, 1), rnd(AMP_F32, 0, NULL, 2)};
    t = tn_new(ctx, "Concat");
    tn_int(t, "axis", 0);
    cr_assert_eq(run1(t, 2, s, &y), AMP_ERR_INVALID_GRAPH, "scalars do not concatenate");
    tn_free(t);
    freeall(2, s);
    amp_tensor_destroy(x);
    amp_tensor_destroy(xb);
    amp_tensor_destroy(xr);
    amp_tensor_destroy(xi);
}

/* ---- Split ---------------------------------------------------------------------------------- */

/* Runs Split and checks each output against a slice of x along axis. */
static void check_split(amp_test_node *t, amp_tensor *const *in, int nin, int nout, int axis,
                        const int64_t *want_sizes) {
    amp_tensor *ys[16];
    const amp_tensor *x = in[0];
    int r = x->rank;
    int a = axis < 0 ? axis + r : axis;
    cr_assert_eq(tn_run(t, nin, in, nout, ys), AMP_OK, "%s", amp_context_last_error(ctx));
    int64_t off = 0, idx[AMP_MAX_RANK];
    for (int o = 0; o < nout; o++) {
        int64_t d[AMP_MAX_RANK];
        memcpy(d, x->dims, sizeof d);
        d[a] = want_sizes[o];
        assert_dims(ys[o], r, d, "split output");
        amp_tensor *want = mk(x->dtype, r, d);
        for (int64_t i = 0; i < want->numel; i++) {
            unravel(i, r, d, idx);
            idx[a] += off;
            cp(want, i, x, ravel(r, x->dims, idx));
        }
        assert_same(ys[o], want, "split");
        amp_tensor_destroy(want);
        off += want_sizes[o];
    }
    freeall(nout, ys);
}

Test(shape, split_equal_and_variable) {
    int64_t d1[] = {6}, d2[] = {2, 6};
    amp_tensor *x1 = rnd(AMP_F32, 1, d1, 1), *x2 = rnd(AMP_F32, 2, d2, 2);
    int64_t eq3[] = {2, 2, 2}, eq2[] = {3, 3}, var[] = {2, 4};
    amp_test_node *t = tn_new(ctx, "Split");
    tn_int(t, "axis", 0);
    check_split(t, &x1, 1, 3, 0, eq3);
    tn_free(t);
    t = tn_new(ctx, "Split");
    tn_int(t, "axis", 1);
    check_split(t, &x2, 1, 2, 1, eq2);
    tn_free(t);
    t = tn_new(ctx, "Split"); /* default axis 0 */
    check_split(t, &x1, 1, 3, 0, eq3);
    tn_free(t);
    /* sizes from the input (opset 13) */
    amp_tensor *in[2] = {x2, ints(2, var)};
    t = tn_new(ctx, "Split");
    tn_int(t, "axis", -1);
    check_split(t, in, 2, 2, 1, var);
    tn_free(t);
    amp_tensor_destroy(in[1]);
    /* sizes from the attribute (opset 11) */
    t = tn_new(ctx, "Split");
    t->opset = 11;
    tn_ints(t, "split", 2, var);
    check_split(t, &x1, 1, 2, 0, var);
    tn_free(t);
    amp_tensor_destroy(x1);
    amp_tensor_destroy(x2);
}

Test(shape, split_zero_size_and_num_outputs) {
    int64_t d0[] = {0}, zeros[] = {0, 0, 0};
    amp_tensor *in[2] = {mk(AMP_F32, 1, d0), ints(3, zeros)};
    amp_test_node *t = tn_new(ctx, "Split");
    check_split(t, in, 2, 3, 0, zeros);
    tn_free(t);
    freeall(2, in);
    /* opset 18 num_outputs: chunks of ceil(dim / n), the last smaller */
    int64_t d7[] = {3, 7}, s7[] = {3, 3, 1}, d10[] = {10, 2}, s10[] = {4, 4, 2};
    amp_tensor *x7 = rnd(AMP_I64, 2, d7, 1), *x10 = rnd(AMP_BF16, 2, d10, 2), *ys[3];
    t = tn_new(ctx, "Split");
    t->opset = 18;
    tn_int(t, "axis", 1);
    tn_int(t, "num_outputs", 3);
    check_split(t, &x7, 1, 3, 1, s7);
    tn_free(t);
    t = tn_new(ctx, "Split");
    t->opset = 18;
    tn_int(t, "num_outputs", 3);
    check_split(t, &x10, 1, 3, 0, s10);
    tn_free(t);
    /* num_outputs must match the outputs */
    t = tn_new(ctx, "Split");
    t->opset = 18;
    tn_int(t, "num_outputs", 2);
    cr_assert_eq(tn_run(t, 1, &x10, 3, ys), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x7);
    amp_tensor_destroy(x10);
}

Test(shape, split_every_dtype_and_axis) {
    int64_t xd[] = {5, 3, 7, 2}, eqs[][3] = {{2, 0, 3}, {1, 1, 1}, {2, 4, 1}, {1, 0, 1}};
    for (int i = 0; i < NDT; i++) {
        amp_tensor *x = rnd(ALL[i], 4, xd, (uint64_t)i);
        for (int a = 0; a < 4; a++) {
            amp_tensor *in[2] = {x, ints(3, eqs[a])};
            amp_test_node *t = tn_new(ctx, "Split");
            tn_int(t, "axis", a - 4);
            check_split(t, in, 2, 3, a - 4, eqs[a]);
            tn_free(t);
            amp_tensor_destroy(in[1]);
        }
        amp_tensor_destroy(x);
    }
    /* large, for the threaded path */
    int64_t bd[] = {300, 200, 3}, bs[] = {120, 80};
    amp_tensor *in[2] = {rnd(AMP_F32, 3, bd, 9), ints(2, bs)};
    amp_test_node *t = tn_new(ctx, "Split");
    tn_int(t, "axis", 1);
    check_split(t, in, 2, 2, 1, bs);
    tn_free(t);
    freeall(2, in);
}

Test(shape, split_bad_inputs) {
    int64_t xd[] = {2, 6}, bad_sum[] = {2, 3}, neg[] = {7, -1}, three[] = {2, 2, 2};
    amp_tensor *x = rnd(AMP_F32, 2, xd, 1), *ys[4];
    struct {
        int n;
        const int64_t *split;
        int nout;
        amp_status want;
    } cases[] = {
        {2, bad_sum, 2, AMP_ERR_SHAPE},
        {2, neg, 2, AMP_ERR_INVALID_GRAPH},
        {3, three, 2, AMP_ERR_INVALID_GRAPH}, /* 3 sizes for 2 outputs */
    };
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *in[2] = {x, ints(cases[i].n, cases[i].split)};
        amp_test_node *t = tn_new(ctx, "Split");
        tn_int(t, "axis", 1);
        cr_assert_eq(tn_run(t, 2, in, cases[i].nout, ys), cases[i].want, "case %d", i);
        amp_tensor_destroy(in[1]);
        tn_free(t);
    }
    amp_test_node *t = tn_new(ctx, "Split");
    tn_int(t, "axis", 1);
    cr_assert_eq(tn_run(t, 1, &x, 4, ys), AMP_ERR_SHAPE, "6 into 4 equal parts");
    tn_free(t);
    t = tn_new(ctx, "Split");
    tn_int(t, "axis", 2);
    cr_assert_eq(tn_run(t, 1, &x, 2, ys), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "Split"); /* attribute with the wrong count */
    t->opset = 11;
    tn_ints(t, "split", 3, three);
    cr_assert_eq(tn_run(t, 1, &x, 2, ys), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
}

/* ---- Slice ---------------------------------------------------------------------------------- */

/* The indices a slice reads on one axis, by the ONNX rules written out plainly: negatives count
 * from the end, then starts clamp to [0, dim] (forward) or [0, dim-1] (backward) and ends to
 * [0, dim] or [-1, dim-1]. */
static int64_t ref_axis(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *out, int64_t cap) {
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    int64_t lo_s = 0, hi_s = step > 0 ? dim : dim - 1, lo_e = step > 0 ? 0 : -1, hi_e = step > 0 ? dim : dim - 1;
    if (s < lo_s) s = lo_s;
    if (s > hi_s) s = hi_s;
    if (e < lo_e) e = lo_e;
    if (e > hi_e) e = hi_e;
    int64_t n = 0;
    for (int64_t i = s; step > 0 ? i < e : i > e; i += step) {
        if (i < 0 || i >= dim) break;
        cr_assert(n < cap);
        out[n++] = i;
        if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
    }
    return n;
}

static amp_tensor *ref_slice(const amp_tensor *x, int n, const int64_t *starts, const int64_t *ends,
                             const int64_t *axes, const int64_t *steps) {
    int r = x->rank;
    static int64_t pick[AMP_MAX_RANK][512];
    int64_t od[AMP_MAX_RANK], oi[AMP_MAX_RANK], ii[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) {
        od[d] = x->dims[d];
        for (int64_t i = 0; i < x->dims[d]; i++) pick[d][i] = i;
    }
    for (int i = 0; i < n; i++) {
        int a = (int)(axes ? (axes[i] < 0 ? axes[i] + r : axes[i]) : i);
        od[a] = ref_axis(x->dims[a], starts[i], ends[i], steps ? steps[i] : 1, pick[a], 512);
    }
    amp_tensor *y = mk(x->dtype, r, od);
    for (int64_t o = 0; o < y->numel; o++) {
        unravel(o, r, od, oi);
        for (int d = 0; d < r; d++) ii[d] = pick[d][oi[d]];
        cp(y, o, x, ravel(r, x->dims, ii));
    }
    return y;
}

/* Slice through the opset 13 inputs; returns the status; checks against the reference. */
static amp_status check_slice(amp_dtype dt, int r, const int64_t *xd, int n, const int64_t *starts,
                              const int64_t *ends, const int64_t *axes, const int64_t *steps, const int64_t *want_dims) {
    amp_tensor *in[5] = {rnd(dt, r, xd, 7), ints(n, starts), ints(n, ends), axes ? ints(n, axes) : NULL,
                         steps ? ints(n, steps) : NULL},
               *y;
    int nin = steps ? 5 : axes ? 4 : 3;
    amp_test_node *t = tn_new(ctx, "Slice");
    amp_status s = run1(t, nin, in, &y);
    if (s == AMP_OK) {
        amp_tensor *want = ref_slice(in[0], n, starts, ends, axes, steps);
        if (want_dims) assert_dims(y, r, want_dims, "slice dims");
        assert_same(y, want, "slice");
        amp_tensor_destroy(want);
        amp_tensor_destroy(y);
    }
    freeall(5, in);
    tn_free(t);
    return s;
}

Test(shape, slice_onnx_cases) {
    int64_t xd[] = {20, 10, 5};
    {
        int64_t s[] = {0, 0}, e[] = {3, 10}, a[] = {0, 1}, st[] = {1, 1}, w[] = {3, 10, 5};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 2, s, e, a, st, w), AMP_OK);
    }
    {
        int64_t s[] = {0, 0, 3}, e[] = {20, 10, 4}, w[] = {20, 10, 1};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 3, s, e, NULL, NULL, w), AMP_OK);
        int64_t a[] = {0, 1, 2};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 3, s, e, a, NULL, w), AMP_OK);
        int64_t an[] = {0, -2, -1};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 3, s, e, an, NULL, w), AMP_OK);
    }
    {
        int64_t s[] = {1}, e[] = {1000}, a[] = {1}, st[] = {1}, w[] = {20, 9, 5};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 1, s, e, a, st, w), AMP_OK);
        int64_t s2[] = {0}, e2[] = {-1};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 1, s2, e2, a, st, w), AMP_OK);
        int64_t s3[] = {1000}, w3[] = {20, 0, 5};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 1, s3, e, a, st, w3), AMP_OK);
    }
    {
        int64_t s[] = {20, 10, 4}, e[] = {0, 0, 1}, a[] = {0, 1, 2}, st[] = {-1, -3, -2}, w[] = {19, 3, 2};
        cr_assert_eq(check_slice(AMP_F32, 3, xd, 3, s, e, a, st, w), AMP_OK);
    }
}

Test(shape, slice_int64_extremes_and_reverse) {
    int64_t xd[] = {4, 6};
    int64_t s[] = {-1}, e[] = {INT64_MIN}, a[] = {1}, st[] = {-1}, w[] = {4, 6};
    cr_assert_eq(check_slice(AMP_I32, 2, xd, 1, s, e, a, st, w), AMP_OK);
    int64_t s2[] = {1}, e2[] = {INT64_MAX}, st2[] = {2}, w2[] = {4, 3};
    cr_assert_eq(check_slice(AMP_F16, 2, xd, 1, s2, e2, a, st2, w2), AMP_OK);
    int64_t s3[] = {INT64_MAX}, e3[] = {INT64_MIN}, st3[] = {INT64_MIN}, w3[] = {4, 1};
    cr_assert_eq(check_slice(AMP_F64, 2, xd, 1, s3, e3, a, st3, w3), AMP_OK);
    int64_t s4[] = {INT64_MIN}, e4[] = {INT64_MAX}, st4[] = {INT64_MAX}, w4[] = {4, 1};
    cr_assert_eq(check_slice(AMP_U8, 2, xd, 1, s4, e4, a, st4, w4), AMP_OK);
    /* a backward start far below zero clamps to 0 (the spec's [0, dim-1]) */
    int64_t s5[] = {-100}, e5[] = {-200}, w5[] = {4, 1};
    cr_assert_eq(check_slice(AMP_BOOL, 2, xd, 1, s5, e5, a, st, w5), AMP_OK);
    /* reverse every axis of a zero-sized tensor */
    int64_t zd[] = {0, 3}, zs[] = {-1, -1}, ze[] = {INT64_MIN, INT64_MIN}, za[] = {0, 1}, zst[] = {-1, -1},
            zw[] = {0, 3};
    cr_assert_eq(check_slice(AMP_F32, 2, zd, 2, zs, ze, za, zst, zw), AMP_OK);
}

Test(shape, slice_every_dtype_random) {
    uint64_t seed = 99;
    int64_t xd[] = {7, 1, 9, 4};
    for (int iter = 0; iter < 200; iter++) {
        int64_t s[4], e[4], a[4], st[4];
        int n = 0;
        for (int d = 0; d < 4; d++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            if ((seed >> 60) & 1) continue;
            int64_t dim = xd[d];
            a[n] = (seed >> 40) & 1 ? d - 4 : d;
            s[n] = (int64_t)((seed >> 20) % (uint64_t)(3 * dim + 3)) - dim - 1;
            e[n] = (int64_t)((seed >> 30) % (uint64_t)(3 * dim + 3)) - dim - 1;
            st[n] = (int64_t)((seed >> 50) % 7) - 3;
            if (st[n] == 0) st[n] = 2;
            n++;
        }
        cr_assert_eq(check_slice(ALL[iter % NDT], 4, xd, n, s, e, a, st, NULL), AMP_OK, "iter %d", iter);
    }
    /* big enough for the threaded path, with a strided last axis */
    int64_t bd[] = {200, 300}, bs[] = {10, 299}, be[] = {190, 0}, bst[] = {1, -2}, ba[] = {0, 1};
    cr_assert_eq(check_slice(AMP_F32, 2, bd, 2, bs, be, ba, bst, NULL), AMP_OK);
}

Test(shape, slice_opset9_attributes_and_int32_inputs) {
    int64_t xd[] = {5, 6}, s[] = {1, -4}, e[] = {4, 100}, a[] = {0, -1};
    amp_tensor *x = rnd(AMP_F32, 2, xd, 3), *y;
    amp_test_node *t = tn_new(ctx, "Slice");
    t->opset = 9;
    tn_ints(t, "starts", 2, s);
    tn_ints(t, "ends", 2, e);
    tn_ints(t, "axes", 2, a);
    cr_assert_eq(run1(t, 1, &x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *want = ref_slice(x, 2, s, e, a, NULL);
    int64_t w[] = {3, 4};
    assert_dims(y, 2, w, "opset 9");
    assert_same(y, want, "opset 9");
    amp_tensor_destroy(y);
    tn_free(t);
    /* the same through int32 inputs at opset 13 */
    amp_tensor *in[4] = {x, ints32(2, s), ints32(2, e), ints32(2, a)};
    t = tn_new(ctx, "Slice");
    cr_assert_eq(run1(t, 4, in, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    assert_same(y, want, "int32 params");
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor_destroy(want);
    freeall(4, in);
}

Test(shape, slice_bad_inputs) {
    int64_t xd[] = {4, 6};
    int64_t s[] = {0}, e[] = {3}, a[] = {1}, zero[] = {0};
    cr_assert_eq(check_slice(AMP_F32, 2, xd, 1, s, e, a, zero, NULL), AMP_ERR_INVALID_GRAPH, "step 0");
    int64_t s2[] = {0, 0}, e2[] = {1, 1}, dup[] = {1, -1};
    cr_assert_eq(check_slice(AMP_F32, 2, xd, 2, s2, e2, dup, NULL, NULL), AMP_ERR_INVALID_GRAPH, "duplicate axis");
    int64_t far[] = {2};
    cr_assert_eq(check_slice(AMP_F32, 2, xd, 1, s, e, far, NULL, NULL), AMP_ERR_INVALID_GRAPH, "axis out of range");
    /* starts and ends of different lengths */
    amp_tensor *in[3] = {rnd(AMP_F32, 2, xd, 1), ints(2, s2), ints(1, e)}, *y;
    amp_test_node *t = tn_new(ctx, "Slice");
    cr_assert_eq(run1(t, 3, in, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    freeall(3, in);
}

/* ---- Expand, Tile --------------------------------------------------------------------------- */

static amp_tensor *ref_expand(const amp_tensor *x, int r, const int64_t *od) {
    amp_tensor *y = mk(x->dtype, r, od);
    int lead = r - x->rank;
    int64_t oi[AMP_MAX_RANK] = {0}, ii[AMP_MAX_RANK] = {0};
    for (int64_t o = 0; o < y->numel; o++) {
        unravel(o, r, od, oi);
        for (int d = 0; d < x->rank; d++) ii[d] = x->dims[d] == 1 ? 0 : oi[d + lead];
        cp(y, o, x, ravel(x->rank, x->dims, ii));
    }
    return y;
}

static void check_expand(amp_dtype dt, int r, const int64_t *xd, int n, const int64_t *shape, int ro,
                         const int64_t *want_dims) {
    amp_tensor *in[2] = {rnd(dt, r, xd, 5), ints(n, shape)}, *y;
    amp_test_node *t = tn_new(ctx, "Expand");
    cr_assert_eq(run1(t, 2, in, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    assert_dims(y, ro, want_dims, "expand dims");
    amp_tensor *want = ref_expand(in[0], ro, want_dims);
    assert_same(y, want, "expand");
    freeall(2, in);
    amp_tensor_destroy(y);
    amp_tensor_destroy(want);
    tn_free(t);
}

Test(shape, expand_cases_every_dtype) {
    for (int i = 0; i < NDT; i++) {
        int64_t xd[] = {3, 1}, s1[] = {2, 1, 6}, w1[] = {2, 3, 6}, s2[] = {3, 4}, w2[] = {3, 4};
        check_expand(ALL[i], 2, xd, 3, s1, 3, w1);
        check_expand(ALL[i], 2, xd, 2, s2, 2, w2);
        int64_t xd3[] = {2, 3, 1}, s3[] = {1, 5}, w3[] = {2, 3, 5};
        check_expand(ALL[i], 3, xd3, 2, s3, 3, w3);
        int64_t xd4[] = {1, 3, 1, 5}, s4[] = {4, 1, 1, 2, 1}, w4[] = {4, 1, 3, 2, 5};
        check_expand(ALL[i], 4, xd4, 5, s4, 5, w4);
    }
    int64_t xz[] = {1, 3}, sz[] = {0, 3}, wz[] = {0, 3};
    check_expand(AMP_F32, 2, xz, 2, sz, 2, wz);
    check_expand(AMP_F32, 0, NULL, 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 3, 4});
    check_expand(AMP_F32, 0, NULL, 0, NULL, 0, NULL);
    int64_t xb[] = {1, 300, 1}, sb[] = {250, 1, 7}, wb[] = {250, 300, 7};
    check_expand(AMP_F16, 3, xb, 3, sb, 3, wb);
}

Test(shape, expand_bad_inputs) {
    int64_t xd[] = {2, 3}, bad[] = {4, 3}, neg[] = {-1, 3};
    amp_tensor *in[2] = {rnd(AMP_F32, 2, xd, 1), ints(2, bad)}, *y;
    amp_test_node *t = tn_new(ctx, "Expand");
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_SHAPE);
    amp_tensor_destroy(in[1]);
    in[1] = ints(2, neg);
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_INVALID_GRAPH);
    freeall(2, in);
    tn_free(t);
}

static amp_tensor *ref_tile(const amp_tensor *x, const int64_t *rep) {
    int r = x->rank;
    int64_t od[AMP_MAX_RANK], oi[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) od[d] = x->dims[d] * rep[d];
    amp_tensor *y = mk(x->dtype, r, od);
    for (int64_t o = 0; o < y->numel; o++) {
        unravel(o, r, od, oi);
        for (int d = 0; d < r; d++) oi[d] %= x->dims[d];
        cp(y, o, x, ravel(r, x->dims, oi));
    }
    return y;
}

static void check_tile(amp_dtype dt, int r, const int64_t *xd, const int64_t *rep) {
    amp_tensor *in[2] = {rnd(dt, r, xd, 11), ints(r, rep)}, *y;
    amp_test_node *t = tn_new(ctx, "Tile");
    cr_assert_eq(run1(t, 2, in, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *want = ref_tile(in[0], rep);
    assert_same(y, want, "tile");
    freeall(2, in);
    amp_tensor_destroy(y);
    amp_tensor_destroy(want);
    tn_free(t);
}

Test(shape, tile_cases) {
    /* test_tile_precomputed */
    int64_t d[] = {2, 2}, rep[] = {2, 2};
    double v[] = {0, 1, 2, 3}, w[] = {0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3};
    int64_t wd[] = {4, 4};
    amp_tensor *in[2] = {tt_make(ctx, AMP_F32, 2, d, v), ints(2, rep)}, *y, *want = tt_make(ctx, AMP_F32, 2, wd, w);
    amp_test_node *t = tn_new(ctx, "Tile");
    cr_assert_eq(run1(t, 2, in, &y), AMP_OK);
    assert_same(y, want, "tile precomputed");
    freeall(2, in);
    amp_tensor_destroy(y);
    amp_tensor_destroy(want);
    tn_free(t);
    int64_t xd[] = {2, 3, 4, 5}, r4[] = {7, 6, 4, 2};
    check_tile(AMP_F32, 4, xd, r4);
    for (int i = 0; i < NDT; i++) {
        int64_t xd3[] = {3, 1, 5}, r3[] = {2, 3, 1}, r3b[] = {1, 1, 3};
        check_tile(ALL[i], 3, xd3, r3);
        check_tile(ALL[i], 3, xd3, r3b);
    }
    int64_t x1[] = {1}, r1[] = {1000};
    check_tile(AMP_I64, 1, x1, r1);
    int64_t zr[] = {2, 0, 1, 1};
    check_tile(AMP_F32, 4, xd, zr);
    check_tile(AMP_F32, 0, NULL, NULL);
    int64_t xb[] = {130, 7, 11}, rb[] = {2, 3, 5};
    check_tile(AMP_F32, 3, xb, rb);
}

Test(shape, tile_bad_inputs) {
    int64_t xd[] = {2, 3}, short_[] = {2}, neg[] = {2, -1};
    amp_tensor *in[2] = {rnd(AMP_F32, 2, xd, 1), ints(1, short_)}, *y;
    amp_test_node *t = tn_new(ctx, "Tile");
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_INVALID_GRAPH);
    amp_tensor_destroy(in[1]);
    in[1] = ints(2, neg);
    cr_assert_eq(run1(t, 2, in, &y), AMP_ERR_INVALID_GRAPH);
    freeall(2, in);
    tn_free(t);
}

/* ---- Shape, Size ---------------------------------------------------------------------------- */

Test(shape, shape_start_end) {
    int64_t xd[] = {3, 4, 5};
    amp_tensor *x = rnd(AMP_F32, 3, xd, 1), *y;
    struct {
        bool has_s, has_e;
        int64_t s, e;
        int n;
        int64_t want[3];
    } cases[] = {
        {false, false, 0, 0, 3, {3, 4, 5}}, {false, true, 0, 10, 3, {3, 4, 5}}, {true, false, -10, 0, 3, {3, 4, 5}},
        {false, true, 0, 1, 1, {3}},        {false, true, 0, -1, 2, {3, 4}},    {true, false, 1, 0, 2, {4, 5}},
        {true, true, 1, 2, 1, {4}},         {true, true, 1, -1, 1, {4}},        {true, false, -1, 0, 1, {5}},
        {true, true, 2, 1, 0, {0}},
    };
    for (int i = 0; i < N(cases); i++) {
        amp_test_node *t = tn_new(ctx, "Shape");
        t->opset = 15;
        if (cases[i].has_s) tn_int(t, "start", cases[i].s);
        if (cases[i].has_e) tn_int(t, "end", cases[i].e);
        cr_assert_eq(run1(t, 1, &x, &y), AMP_OK, "case %d", i);
        cr_assert_eq(y->dtype, AMP_I64);
        int64_t n = cases[i].n;
        assert_dims(y, 1, &n, "shape");
        for (int j = 0; j < cases[i].n; j++) cr_assert_eq(((int64_t *)y->data)[j], cases[i].want[j], "case %d", i);
        amp_tensor_destroy(y);
        tn_free(t);
    }
    /* before opset 15 there is no start/end */
    amp_test_node *t = tn_new(ctx, "Shape");
    t->opset = 13;
    tn_int(t, "start", 1);
    cr_assert_eq(run1(t, 1, &x, &y), AMP_OK);
    cr_assert_eq(y->dims[0], 3);
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor_destroy(x);
    /* every dtype, zero-sized dims, and a scalar */
    for (int i = 0; i < NDT; i++) {
        int64_t zd[] = {2, 0, 7};
        amp_tensor *z = mk(ALL[i], 3, zd);
        t = tn_new(ctx, "Shape");
        cr_assert_eq(run1(t, 1, &z, &y), AMP_OK);
        for (int j = 0; j < 3; j++) cr_assert_eq(((int64_t *)y->data)[j], zd[j]);
        amp_tensor_destroy(y);
        amp_tensor_destroy(z);
        tn_free(t);
    }
    amp_tensor *s = rnd(AMP_F32, 0, NULL, 1);
    t = tn_new(ctx, "Shape");
    cr_assert_eq(run1(t, 1, &s, &y), AMP_OK);
    cr_assert_eq(y->rank, 1);
    cr_assert_eq(y->dims[0], 0);
    amp_tensor_destroy(y);
    amp_tensor_destroy(s);
    tn_free(t);
}

Test(shape, size_cases) {
    struct {
        int r;
        int64_t d[3];
        int64_t want;
    } cases[] = {{3, {3, 4, 5}, 60}, {2, {2, 3}, 6}, {3, {2, 0, 5}, 0}, {0, {0}, 1}};
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *x = mk(ALL[i * 2 % NDT], cases[i].r, cases[i].d), *y;
        amp_test_node *t = tn_new(ctx, "Size");
        cr_assert_eq(run1(t, 1, &x, &y), AMP_OK);
        cr_assert_eq(y->dtype, AMP_I64);
        cr_assert_eq(y->rank, 0);
        cr_assert_eq(*(int64_t *)y->data, cases[i].want);
        amp_tensor_destroy(x);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

/* ---- Constant, ConstantOfShape -------------------------------------------------------------- */

Test(shape, constant_tensor_every_dtype) {
    int64_t d[] = {5, 5};
    for (int i = 0; i < NDT; i++) {
        amp_tensor *v = rnd(ALL[i], 2, d, (uint64_t)i), *y;
        amp_test_node *t = tn_new(ctx, "Constant");
        t->opset = 13;
        tn_tensor(t, "value", v);
        cr_assert_eq(run1(t, 0, NULL, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        assert_same(y, v, "constant");
        amp_tensor_destroy(v);
        amp_tensor_destroy(y);
        tn_free(t);
    }
    amp_tensor *z = mk(AMP_I32, 1, (int64_t[]){0}), *y;
    amp_test_node *t = tn_new(ctx, "Constant");
    tn_tensor(t, "value", z);
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_OK);
    assert_same(y, z, "empty constant");
    amp_tensor_destroy(z);
    amp_tensor_destroy(y);
    tn_free(t);
}

Test(shape, constant_scalar_and_list_attributes) {
    amp_tensor *y;
    amp_test_node *t = tn_new(ctx, "Constant");
    tn_float(t, "value_float", 2.5f);
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_OK);
    cr_assert_eq(y->dtype, AMP_F32);
    cr_assert_eq(y->rank, 0);
    cr_assert_eq(*(float *)y->data, 2.5f);
    amp_tensor_destroy(y);
    tn_free(t);

    float fs[] = {1.5f, -2.0f, 3.25f};
    t = tn_new(ctx, "Constant");
    tn_floats(t, "value_floats", 3, fs);
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_OK);
    cr_assert_eq(y->dtype, AMP_F32);
    cr_assert_eq(y->rank, 1);
    cr_assert_eq(y->dims[0], 3);
    cr_assert_eq(memcmp(y->data, fs, sizeof fs), 0);
    amp_tensor_destroy(y);
    tn_free(t);

    t = tn_new(ctx, "Constant");
    tn_int(t, "value_int", -7);
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_OK);
    cr_assert_eq(y->dtype, AMP_I64);
    cr_assert_eq(y->rank, 0);
    cr_assert_eq(*(int64_t *)y->data, -7);
    amp_tensor_destroy(y);
    tn_free(t);

    int64_t is[] = {4, INT64_MAX, -1, 0};
    t = tn_new(ctx, "Constant");
    tn_ints(t, "value_ints", 4, is);
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_OK);
    cr_assert_eq(y->dtype, AMP_I64);
    cr_assert_eq(y->dims[0], 4);
    cr_assert_eq(memcmp(y->data, is, sizeof is), 0);
    amp_tensor_destroy(y);
    tn_free(t);
}

Test(shape, constant_bad_attributes) {
    amp_tensor *y;
    amp_test_node *t = tn_new(ctx, "Constant");
    tn_str(t, "value_string", "abc");
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);

    t = tn_new(ctx, "Constant");
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = "sparse_value";
    a->kind = AMP_ATTR_SPARSE_TENSOR;
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);

    t = tn_new(ctx, "Constant");
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_ERR_INVALID_GRAPH, "no value");
    tn_free(t);

    t = tn_new(ctx, "Constant");
    tn_int(t, "value_int", 1);
    tn_float(t, "value_float", 1);
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_ERR_INVALID_GRAPH, "two values");
    tn_free(t);

    t = tn_new(ctx, "Constant");
    tn_float(t, "value_int", 1); /* wrong kind */
    cr_assert_eq(run1(t, 0, NULL, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
}

Test(shape, constant_of_shape_cases) {
    struct {
        amp_dtype dt; /* AMP_UNDEFINED: no value attribute */
        double v;
        int n;
        int64_t shape[3];
    } cases[] = {
        {AMP_F32, 1, 3, {4, 3, 2}}, {AMP_I32, 0, 2, {10, 6}}, {AMP_I32, 5, 1, {0}},    {AMP_UNDEFINED, 0, 2, {3, 5}},
        {AMP_F16, -2.5, 1, {7}},    {AMP_BF16, 3, 2, {2, 9}}, {AMP_F64, 0.1, 0, {0}}, {AMP_I64, -9, 2, {3, 3}},
        {AMP_I8, -3, 1, {5}},       {AMP_U8, 200, 1, {5}},    {AMP_BOOL, 1, 3, {2, 1, 3}},
        {AMP_F32, 1.25, 3, {160, 160, 40}},
    };
    for (int i = 0; i < N(cases); i++) {
        amp_tensor *shape = ints(cases[i].n, cases[i].shape), *y, *v = NULL;
        amp_test_node *t = tn_new(ctx, "ConstantOfShape");
        amp_dtype want_dt = cases[i].dt == AMP_UNDEFINED ? AMP_F32 : cases[i].dt;
        if (cases[i].dt != AMP_UNDEFINED) {
            v = tt_make(ctx, cases[i].dt, 1, (int64_t[]){1}, &cases[i].v);
            tn_tensor(t, "value", v);
        }
        cr_assert_eq(run1(t, 1, &shape, &y), AMP_OK, "case %d: %s", i, amp_context_last_error(ctx));
        assert_dims(y, cases[i].n, cases[i].shape, "constant of shape");
        cr_assert_eq(y->dtype, want_dt);
        size_t es = amp_dtype_size(want_dt);
        for (int64_t j = 0; j < y->numel; j++) {
            if (v) cr_assert_eq(memcmp((char *)y->data + j * (int64_t)es, v->data, es), 0, "case %d elt %lld", i, (long long)j);
            else cr_assert_eq(((float *)y->data)[j], 0.0f);
        }
        amp_tensor_destroy(shape);
        amp_tensor_destroy(v);
        amp_tensor_destroy(y);
        tn_free(t);
    }
}

Test(shape, constant_of_shape_bad_inputs) {
    int64_t sh[] = {2, 3}, neg[] = {2, -3};
    amp_tensor *shape = ints(2, sh), *nshape = ints(2, neg), *y;
    amp_tensor *two = tt_make(ctx, AMP_F32, 1, (int64_t[]){2}, (double[]){1, 2});
    amp_test_node *t = tn_new(ctx, "ConstantOfShape");
    tn_tensor(t, "value", two);
    cr_assert_eq(run1(t, 1, &shape, &y), AMP_ERR_INVALID_GRAPH, "value of two elements");
    tn_free(t);
    t = tn_new(ctx, "ConstantOfShape");
    cr_assert_eq(run1(t, 1, &nshape, &y), AMP_ERR_INVALID_GRAPH, "negative dim");
    tn_free(t);
    amp_tensor *fshape = tt_make(ctx, AMP_F32, 1, (int64_t[]){2}, (double[]){2, 3});
    t = tn_new(ctx, "ConstantOfShape");
    cr_assert_eq(run1(t, 1, &fshape, &y), AMP_ERR_INVALID_GRAPH, "float shape");
    tn_free(t);
    amp_tensor_destroy(shape);
    amp_tensor_destroy(nshape);
    amp_tensor_destroy(two);
    amp_tensor_destroy(fshape);
}

/* ---- the shared copy kernel (Identity and the reshaping ops) -------------------------------- */

Test(shape, copy_kernel_aliased_and_not) {
    int64_t d[] = {3, 7};
    for (int i = 0; i < NDT; i++) {
        amp_tensor *x = rnd(ALL[i], 2, d, (uint64_t)i), *y = mk(ALL[i], 2, d), *keep;
        cr_assert_eq(amp_tensor_clone(ctx, x, &keep), AMP_OK);
        amp_test_node *t = tn_new(ctx, "Identity");
        amp_tensor *in[1] = {x}, *out[1] = {y};
        amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 1, .nout = 1, .in = in, .out = out, .threads = 2};
        cr_assert_eq(amp_cpu_copy(&k), AMP_OK);
        assert_same(y, x, "copy");
        /* aliased: the planner placed output on input's bytes; nothing may change */
        out[0] = x;
        cr_assert_eq(amp_cpu_copy(&k), AMP_OK);
        assert_same(x, keep, "aliased copy");
        amp_tensor_destroy(x);
        amp_tensor_destroy(y);
        amp_tensor_destroy(keep);
        tn_free(t);
    }
    /* large, for the threaded copy */
    int64_t bd[] = {1 << 20};
    amp_tensor *x = rnd(AMP_F32, 1, bd, 1), *y = mk(AMP_F32, 1, bd);
    amp_test_node *t = tn_new(ctx, "Reshape");
    amp_tensor *in[1] = {x}, *out[1] = {y};
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 1, .nout = 1, .in = in, .out = out, .threads = 4};
    cr_assert_eq(amp_cpu_copy(&k), AMP_OK);
    assert_same(y, x, "large copy");
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    tn_free(t);
}
