/* GatherND, ScatterND, Scatter (opset 10), TopK, ReverseSequence and MaxUnpool against
 * reference loops written here: every dtype the op takes, odd shapes, attribute and opset
 * variants, and bad inputs that must fail with the right status. Data movement must be exact
 * (tt_equal); so must TopK, whose values are copies. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(gather_nd, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(scatter_nd, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(scatter, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(top_k, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(reverse_sequence, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(max_unpool, .init = setup, .fini = teardown, .timeout = 60);

static const amp_dtype all_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I16,
                                      AMP_I8,  AMP_U64, AMP_U32,  AMP_U16, AMP_U8,  AMP_BOOL};
#define N_ALL (sizeof all_types / sizeof all_types[0])
static const amp_dtype float_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};

/* Random data of dtype dt, never all zero: small integers for integer types. */
static amp_tensor *rand_of(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    amp_tensor *t;
    if (dt == AMP_BOOL) t = tt_rand(ctx, dt, rank, dims, 0, 2, seed);
    else if (dt == AMP_U8 || dt == AMP_U16 || dt == AMP_U32 || dt == AMP_U64)
        t = tt_rand(ctx, dt, rank, dims, 1, 250, seed);
    else if (amp_dtype_is_int(dt)) t = tt_rand(ctx, dt, rank, dims, -100, 100, seed);
    else t = tt_rand(ctx, dt, rank, dims, -5, 5, seed);
    cr_assert(t);
    return t;
}

static amp_tensor *new_like(amp_dtype dt, int rank, const int64_t *dims) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank, dims, &t), AMP_OK);
    return t;
}

static amp_tensor *clone(const amp_tensor *x) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_clone(ctx, x, &t), AMP_OK);
    return t;
}

static void cp(amp_tensor *dst, int64_t di, const amp_tensor *src, int64_t si) {
    size_t es = amp_dtype_size(src->dtype);
    memcpy((char *)dst->data + (size_t)di * es, (const char *)src->data + (size_t)si * es, es);
}

static amp_tensor *ints_of(amp_dtype dt, int rank, const int64_t *dims, const int64_t *v) {
    amp_tensor *t = new_like(dt, rank, dims);
    for (int64_t i = 0; i < t->numel; i++) amp_sti(dt, t->data, i, v[i]);
    return t;
}

static void unravel(int rank, const int64_t *dims, int64_t i, int64_t *c) {
    for (int d = rank - 1; d >= 0; d--) {
        c[d] = dims[d] ? i % dims[d] : 0;
        i = dims[d] ? i / dims[d] : 0;
    }
}
static int64_t ravel(int rank, const int64_t *dims, const int64_t *c) {
    int64_t o = 0;
    for (int d = 0; d < rank; d++) o = o * dims[d] + c[d];
    return o;
}
static int64_t numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= dims[d];
    return n;
}

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Index tuples of k values for dims lens[0..k), each in [-len, len) (negative half the time). */
static int64_t *rand_tuples(int64_t tuples, int k, const int64_t *lens, uint64_t seed) {
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(tuples * k + 1));
    for (int64_t t = 0; t < tuples; t++)
        for (int j = 0; j < k; j++) {
            uint64_t h = mix(seed * 7919 + (uint64_t)(t * k + j));
            v[t * k + j] = (int64_t)(h % (uint64_t)(2 * lens[j])) - lens[j];
        }
    return v;
}

static void destroy(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* ---- GatherND ----------------------------------------------------------------------------------- */

static amp_tensor *ref_gather_nd(const amp_tensor *x, const amp_tensor *ind, const int64_t *iv, int b) {
    int r = x->rank, q = ind->rank, k = (int)ind->dims[q - 1];
    int64_t od[2 * AMP_MAX_RANK];
    int orank = 0;
    for (int d = 0; d < q - 1; d++) od[orank++] = ind->dims[d];
    for (int d = b + k; d < r; d++) od[orank++] = x->dims[d];
    amp_tensor *y = new_like(x->dtype, orank, od);
    for (int64_t o = 0; o < y->numel; o++) {
        int64_t oc[2 * AMP_MAX_RANK], xc[AMP_MAX_RANK];
        unravel(orank, od, o, oc);
        int64_t t = ravel(q - 1, ind->dims, oc);
        for (int d = 0; d < b; d++) xc[d] = oc[d];
        for (int j = 0; j < k; j++) {
            int64_t v = iv[t * k + j];
            xc[b + j] = v < 0 ? v + x->dims[b + j] : v;
        }
        for (int d = b + k; d < r; d++) xc[d] = oc[q - 1 + d - b - k];
        cp(y, o, x, ravel(r, x->dims, xc));
    }
    return y;
}

static void check_gather_nd(amp_dtype dt, amp_dtype it, int r, const int64_t *xd, int q, const int64_t *id, int b,
                            int threads, uint64_t seed) {
    amp_tensor *x = rand_of(dt, r, xd, seed);
    int k = (int)id[q - 1];
    int64_t tuples = numel(q - 1, id);
    int64_t *iv = rand_tuples(tuples, k, xd + b, seed);
    amp_tensor *ind = ints_of(it, q, id, iv), *y = NULL;
    amp_test_node *t = tn_new(ctx, "GatherND");
    t->opset = b ? 13 : 11;
    t->threads = threads;
    if (b) tn_int(t, "batch_dims", b);
    amp_tensor *in[2] = {x, ind};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref = ref_gather_nd(x, ind, iv, b);
    cr_assert(tt_equal(y, ref), "GatherND %s r %d q %d k %d b %d", amp_dtype_name(dt), r, q, k, b);
    tn_free(t);
    free(iv);
    amp_tensor *all[] = {x, ind, y, ref};
    destroy(4, all);
}

Test(gather_nd, every_dtype_shape_and_batch_dims) {
    const int64_t x3[3] = {4, 5, 3}, x4[4] = {2, 3, 4, 5};
    const int64_t i_k1[2] = {6, 1}, i_k2[3] = {2, 3, 2}, i_k3[2] = {7, 3}, i_k0[2] = {3, 0};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++) {
        amp_dtype dt = all_types[ti];
        check_gather_nd(dt, AMP_I64, 3, x3, 2, i_k1, 0, 2, seed++);
        check_gather_nd(dt, AMP_I32, 3, x3, 3, i_k2, 0, 2, seed++);
        check_gather_nd(dt, AMP_I64, 3, x3, 2, i_k3, 0, 2, seed++);
    }
    /* k = 0 copies the whole data per (empty) tuple */
    check_gather_nd(AMP_F32, AMP_I64, 3, x3, 2, i_k0, 0, 2, seed++);
    /* batch_dims 1 and 2 */
    const int64_t b1[3] = {2, 3, 1}, b1b[4] = {2, 4, 2, 2}, b2[3] = {2, 3, 2}, b2b[4] = {2, 3, 3, 1};
    check_gather_nd(AMP_F64, AMP_I64, 4, x4, 3, b1, 1, 2, seed++);
    check_gather_nd(AMP_I8, AMP_I32, 4, x4, 4, b1b, 1, 2, seed++);
    check_gather_nd(AMP_BF16, AMP_I64, 4, x4, 3, b2, 2, 2, seed++);
    check_gather_nd(AMP_U16, AMP_I64, 4, x4, 4, b2b, 2, 2, seed++);
    /* rank 1 data, many tuples (the threaded paths: scalar and slice copies) */
    const int64_t x1[1] = {37}, many[2] = {70001, 1}, xw[2] = {300, 129}, manyw[2] = {600, 1};
    check_gather_nd(AMP_F32, AMP_I64, 1, x1, 2, many, 0, 4, seed++);
    check_gather_nd(AMP_F16, AMP_I64, 2, xw, 2, manyw, 0, 4, seed++);
    check_gather_nd(AMP_F16, AMP_I64, 2, xw, 2, manyw, 0, 1, seed++);
}

Test(gather_nd, onnx_examples) {
    /* Example 5 of the operator's documentation: batch_dims 1 */
    const int64_t xd[3] = {2, 2, 2}, id[2] = {2, 1}, iv[2] = {1, 0};
    const double xv[8] = {0, 1, 2, 3, 4, 5, 6, 7}, want[4] = {2, 3, 4, 5};
    amp_tensor *x = tt_make(ctx, AMP_I32, 3, xd, xv), *ind = ints_of(AMP_I64, 2, id, iv), *y = NULL;
    amp_test_node *t = tn_new(ctx, "GatherND");
    tn_int(t, "batch_dims", 1);
    amp_tensor *in[2] = {x, ind};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(y->rank == 2 && y->dims[0] == 2 && y->dims[1] == 2);
    for (int i = 0; i < 4; i++) cr_assert_eq(tt_get(y, i), want[i]);
    tn_free(t);
    amp_tensor *all[] = {x, ind, y};
    destroy(3, all);
}

Test(gather_nd, bad_inputs) {
    const int64_t xd[3] = {3, 4, 5}, id[2] = {2, 2};
    amp_tensor *x = rand_of(AMP_F32, 3, xd, 1), *y = NULL;
    const int64_t hi[4] = {0, 1, 2, 4}, lo[4] = {-4, 0, 0, 0};
    amp_tensor *ind = ints_of(AMP_I64, 2, id, hi);
    amp_tensor *in[2] = {x, ind};
    amp_test_node *t = tn_new(ctx, "GatherND");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    cr_assert(strstr(amp_context_last_error(ctx), "index 4"), "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(ind);
    in[1] = ind = ints_of(AMP_I32, 2, id, lo);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    amp_tensor_destroy(ind);
    /* tuples longer than the rank */
    const int64_t id4[2] = {1, 4}, v4[4] = {0, 0, 0, 0};
    in[1] = ind = ints_of(AMP_I64, 2, id4, v4);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    /* batch_dims: out of range, mismatched batch dims, before opset 12 */
    t = tn_new(ctx, "GatherND");
    tn_int(t, "batch_dims", 2);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(ind);
    const int64_t idb[2] = {2, 1}, vb[2] = {0, 1};
    in[1] = ind = ints_of(AMP_I64, 2, idb, vb);
    t = tn_new(ctx, "GatherND");
    tn_int(t, "batch_dims", 1);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    t->opset = 11;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(ind);
    /* float indices */
    in[1] = ind = rand_of(AMP_F32, 2, id, 3);
    t = tn_new(ctx, "GatherND");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(x);
    cr_assert_null(y);
}

/* ---- ScatterND ---------------------------------------------------------------------------------- */

enum { R_NONE, R_ADD, R_MUL, R_MAX, R_MIN };
static const char *const red_names[] = {"none", "add", "mul", "max", "min"};

static void ref_reduce(amp_tensor *y, int64_t o, const amp_tensor *u, int64_t p, int red) {
    amp_dtype dt = y->dtype;
    if (red == R_NONE) {
        cp(y, o, u, p);
    } else if (amp_dtype_is_float(dt)) {
        double a = tt_get(y, o), b = tt_get(u, p), r;
        if (red == R_ADD) r = a + b;
        else if (red == R_MUL) r = a * b;
        else if (isnan(a) || isnan(b)) r = NAN;
        else r = red == R_MAX ? fmax(a, b) : fmin(a, b);
        amp_st(dt, y->data, o, r);
    } else {
        int64_t a = amp_ldi(dt, y->data, o), b = amp_ldi(dt, u->data, p), r;
        bool gt = dt == AMP_U64 ? (uint64_t)a > (uint64_t)b : a > b;
        if (red == R_ADD) r = (int64_t)((uint64_t)a + (uint64_t)b);
        else if (red == R_MUL) r = (int64_t)((uint64_t)a * (uint64_t)b);
        else r = (red == R_MAX) == gt ? a : b;
        amp_sti(dt, y->data, o, r);
    }
}

static amp_tensor *ref_scatter_nd(const amp_tensor *x, const amp_tensor *ind, const int64_t *iv, const amp_tensor *u,
                                  int red) {
    amp_tensor *y = clone(x);
    int r = x->rank, q = ind->rank, k = (int)ind->dims[q - 1];
    int64_t tuples = numel(q - 1, ind->dims), slice = numel(r - k, x->dims + k);
    for (int64_t t = 0; t < tuples; t++)
        for (int64_t e = 0; e < slice; e++) {
            int64_t xc[AMP_MAX_RANK];
            for (int j = 0; j < k; j++) xc[j] = iv[t * k + j] < 0 ? iv[t * k + j] + x->dims[j] : iv[t * k + j];
            unravel(r - k, x->dims + k, e, xc + k);
            ref_reduce(y, ravel(r, x->dims, xc), u, t * slice + e, red);
        }
    return y;
}

static void check_scatter_nd(amp_dtype dt, int r, const int64_t *xd, int q, const int64_t *id, int red, int threads,
                             uint64_t seed) {
    amp_tensor *x = rand_of(dt, r, xd, seed);
    int k = (int)id[q - 1];
    int64_t tuples = numel(q - 1, id);
    int64_t *iv = rand_tuples(tuples, k, xd, seed);
    if (red == R_NONE) {
        /* distinct tuples: the spec leaves repeated ones undefined without a reduction */
        for (int64_t t = 0; t < tuples; t++) {
            int64_t c = t;
            for (int j = k - 1; j >= 0; j--) {
                iv[t * k + j] = c % xd[j] - ((t & 1) ? xd[j] : 0);
                c /= xd[j];
            }
        }
    }
    int64_t ud[2 * AMP_MAX_RANK];
    int ur = 0;
    for (int d = 0; d < q - 1; d++) ud[ur++] = id[d];
    for (int d = k; d < r; d++) ud[ur++] = xd[d];
    amp_tensor *ind = ints_of(q & 1 ? AMP_I64 : AMP_I32, q, id, iv), *u = rand_of(dt, ur, ud, seed + 99), *y = NULL;
    amp_test_node *t = tn_new(ctx, "ScatterND");
    t->opset = red >= R_MAX ? 18 : red || (seed & 1) ? 16 : 13;
    t->threads = threads;
    if (red || (seed & 1)) tn_str(t, "reduction", red_names[red]);
    amp_tensor *in[3] = {x, ind, u};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref = ref_scatter_nd(x, ind, iv, u, red);
    cr_assert(tt_equal(y, ref), "ScatterND %s %s r %d q %d k %d", amp_dtype_name(dt), red_names[red], r, q, k);
    tn_free(t);
    free(iv);
    amp_tensor *all[] = {x, ind, u, y, ref};
    destroy(5, all);
}

Test(scatter_nd, every_dtype_shape_and_reduction) {
    const int64_t x3[3] = {4, 5, 3};
    const int64_t i1[2] = {3, 1}, i2[3] = {2, 2, 2}, i3[2] = {5, 3}, i0[2] = {1, 0};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int red = R_NONE; red <= R_MIN; red++) {
            check_scatter_nd(all_types[ti], 3, x3, 2, i1, red, 2, seed++);
            check_scatter_nd(all_types[ti], 3, x3, 3, i2, red, 2, seed++);
            check_scatter_nd(all_types[ti], 3, x3, 2, i3, red, 2, seed++);
        }
    check_scatter_nd(AMP_F32, 3, x3, 2, i0, R_NONE, 2, seed++);
    check_scatter_nd(AMP_F64, 3, x3, 2, i0, R_ADD, 2, seed++);
    /* repeated tuples under add and mul accumulate in order */
    const int64_t x1[1] = {6}, many[2] = {40, 1};
    check_scatter_nd(AMP_F32, 1, x1, 2, many, R_ADD, 2, seed++);
    check_scatter_nd(AMP_I32, 1, x1, 2, many, R_MUL, 2, seed++);
    check_scatter_nd(AMP_BF16, 1, x1, 2, many, R_MAX, 2, seed++);
    /* one large slice: the threaded reduction */
    const int64_t big[2] = {3, 40000}, ib[2] = {4, 1};
    check_scatter_nd(AMP_F32, 2, big, 2, ib, R_ADD, 4, seed++);
    check_scatter_nd(AMP_F16, 2, big, 2, ib, R_MIN, 4, seed++);
}

Test(scatter_nd, onnx_example_and_special_values) {
    const int64_t xd[1] = {8}, id[2] = {4, 1}, iv[4] = {4, 3, 1, 7}, ud[1] = {4};
    const double xv[8] = {1, 2, 3, 4, 5, 6, 7, 8}, uv[4] = {9, 10, 11, 12}, want[8] = {1, 11, 3, 10, 9, 6, 7, 12};
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, xd, xv), *ind = ints_of(AMP_I64, 2, id, iv);
    amp_tensor *u = tt_make(ctx, AMP_F32, 1, ud, uv), *y = NULL;
    amp_test_node *t = tn_new(ctx, "ScatterND");
    amp_tensor *in[3] = {x, ind, u};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 8; i++) cr_assert_eq(tt_get(y, i), want[i]);
    tn_free(t);
    amp_tensor_destroy(y);
    /* max propagates NaN from either side */
    const double xn[8] = {NAN, 2, 3, 4, 5, 6, 7, 8}, un[4] = {NAN, 1, 11, 1};
    amp_tensor *x2 = tt_make(ctx, AMP_F32, 1, xd, xn), *u2 = tt_make(ctx, AMP_F32, 1, ud, un);
    const int64_t iv2[4] = {3, 0, 1, 2};
    amp_tensor *ind2 = ints_of(AMP_I64, 2, id, iv2);
    t = tn_new(ctx, "ScatterND");
    t->opset = 18;
    tn_str(t, "reduction", "max");
    amp_tensor *in2[3] = {x2, ind2, u2};
    cr_assert_eq(tn_run(t, 3, in2, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(isnan(tt_get(y, 0)) && isnan(tt_get(y, 3)));
    cr_assert(tt_get(y, 1) == 11 && tt_get(y, 2) == 3 && tt_get(y, 4) == 5);
    tn_free(t);
    amp_tensor_destroy(y);
    /* u64 compares unsigned: 2^63 + 5 is the larger */
    const int64_t ud1[1] = {1}, id1[2] = {1, 1}, iv1[1] = {0};
    amp_tensor *xu = new_like(AMP_U64, 1, ud1), *uu = new_like(AMP_U64, 1, ud1), *i1 = ints_of(AMP_I64, 2, id1, iv1);
    ((uint64_t *)xu->data)[0] = 7;
    ((uint64_t *)uu->data)[0] = (1ull << 63) + 5;
    t = tn_new(ctx, "ScatterND");
    t->opset = 18;
    tn_str(t, "reduction", "max");
    amp_tensor *in3[3] = {xu, i1, uu};
    cr_assert_eq(tn_run(t, 3, in3, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(((uint64_t *)y->data)[0], (1ull << 63) + 5);
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *all[] = {x, ind, u, x2, u2, ind2, xu, uu, i1};
    destroy(9, all);
}

Test(scatter_nd, in_place) {
    /* the planner may give the output the data's buffer */
    const int64_t xd[2] = {5, 4}, id[2] = {2, 1}, iv[2] = {3, -5}, ud[2] = {2, 4};
    amp_tensor *x = rand_of(AMP_F32, 2, xd, 4), *ind = ints_of(AMP_I64, 2, id, iv), *u = rand_of(AMP_F32, 2, ud, 5);
    amp_tensor *ref = ref_scatter_nd(x, ind, iv, u, R_ADD);
    amp_test_node *t = tn_new(ctx, "ScatterND");
    tn_str(t, "reduction", "add");
    int ids_in[3] = {0, 1, 2}, ids_out[1] = {3};
    t->node.inputs = ids_in;
    t->node.n_inputs = 3;
    t->node.outputs = ids_out;
    t->node.n_outputs = 1;
    amp_tensor *in[3] = {x, ind, u}, *out[1] = {x};
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 3, .nout = 1, .in = in, .out = out, .threads = 2};
    cr_assert_eq(amp_cpu_scatter_nd(&k), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(x, ref));
    tn_free(t);
    amp_tensor *all[] = {x, ind, u, ref};
    destroy(4, all);
}

Test(scatter_nd, bad_inputs) {
    const int64_t xd[2] = {3, 4}, id[2] = {2, 1}, ud[2] = {2, 4}, bad_ud[2] = {2, 3};
    const int64_t ok_v[2] = {0, 2}, hi_v[2] = {0, 3}, lo_v[2] = {-4, 0};
    amp_tensor *x = rand_of(AMP_F32, 2, xd, 1), *u = rand_of(AMP_F32, 2, ud, 2), *y = NULL;
    amp_tensor *ind = ints_of(AMP_I64, 2, id, hi_v);
    amp_tensor *in[3] = {x, ind, u};
    amp_test_node *t = tn_new(ctx, "ScatterND");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_ARG);
    cr_assert(strstr(amp_context_last_error(ctx), "index 3"), "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(ind);
    in[1] = ind = ints_of(AMP_I64, 2, id, lo_v);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_ARG);
    amp_tensor_destroy(ind);
    in[1] = ind = ints_of(AMP_I64, 2, id, ok_v);
    /* updates of the wrong shape or dtype */
    amp_tensor *ub = rand_of(AMP_F32, 2, bad_ud, 3), *uf = rand_of(AMP_F64, 2, ud, 3);
    in[2] = ub;
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    in[2] = uf;
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    in[2] = u;
    tn_free(t);
    /* reductions before their opsets, and unknown ones */
    const char *cases[][2] = {{"add", "13"}, {"max", "16"}, {"min", "17"}, {"sum", "18"}};
    for (int i = 0; i < 4; i++) {
        t = tn_new(ctx, "ScatterND");
        t->opset = atoi(cases[i][1]);
        tn_str(t, "reduction", cases[i][0]);
        cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_GRAPH, "%s at %s", cases[i][0], cases[i][1]);
        tn_free(t);
    }
    /* tuples longer than the rank */
    const int64_t id3[2] = {1, 3}, v3[3] = {0, 0, 0};
    amp_tensor *i3 = ints_of(AMP_I64, 2, id3, v3);
    in[1] = i3;
    t = tn_new(ctx, "ScatterND");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    cr_assert_null(y);
    amp_tensor *all[] = {x, u, ind, ub, uf, i3};
    destroy(6, all);
}

/* ---- Scatter (opsets 9 and 10) ------------------------------------------------------------------ */

static void check_scatter(amp_dtype dt, int r, const int64_t *xd, const int64_t *id, int axis, uint64_t seed) {
    amp_tensor *x = rand_of(dt, r, xd, seed), *y = NULL;
    int a = axis < 0 ? axis + r : axis;
    int64_t n = numel(r, id);
    int64_t *iv = calloc((size_t)(n + 1), sizeof(int64_t));
    /* distinct targets per line along the axis: a rotation of positions */
    for (int64_t p = 0; p < n; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(r, id, p, c);
        iv[p] = (c[a] + (int64_t)seed) % xd[a] - ((p & 1) ? xd[a] : 0);
    }
    amp_tensor *ind = ints_of(seed & 1 ? AMP_I64 : AMP_I32, r, id, iv), *u = rand_of(dt, r, id, seed + 7);
    amp_tensor *ref = clone(x);
    for (int64_t p = 0; p < n; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(r, id, p, c);
        c[a] = iv[p] < 0 ? iv[p] + xd[a] : iv[p];
        cp(ref, ravel(r, xd, c), u, p);
    }
    amp_test_node *t = tn_new(ctx, "Scatter");
    t->opset = seed & 2 ? 9 : 10;
    if (axis || (seed & 1)) tn_int(t, "axis", axis);
    amp_tensor *in[3] = {x, ind, u};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(y, ref), "Scatter %s axis %d", amp_dtype_name(dt), axis);
    tn_free(t);
    free(iv);
    amp_tensor *all[] = {x, ind, u, y, ref};
    destroy(5, all);
}

Test(scatter, every_dtype_and_axis) {
    const int64_t xd[3] = {4, 5, 3}, id[3] = {2, 5, 2};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int axis = -3; axis < 3; axis++) check_scatter(all_types[ti], 3, xd, id, axis, seed++);
    const int64_t x1[1] = {7}, i1[1] = {4};
    check_scatter(AMP_F16, 1, x1, i1, 0, seed++);
}

Test(scatter, onnx_example_and_bad_inputs) {
    /* test_scatter_with_axis: data [[1,2,3,4,5]], indices [[1,3]], updates [[1.1,2.1]], axis 1 */
    const int64_t xd[2] = {1, 5}, id[2] = {1, 2}, iv[2] = {1, 3};
    const double xv[5] = {1, 2, 3, 4, 5}, uv[2] = {1.1, 2.1};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, xd, xv), *ind = ints_of(AMP_I64, 2, id, iv);
    amp_tensor *u = tt_make(ctx, AMP_F32, 2, id, uv), *y = NULL;
    amp_test_node *t = tn_new(ctx, "Scatter");
    t->opset = 10;
    tn_int(t, "axis", 1);
    amp_tensor *in[3] = {x, ind, u};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const float want[5] = {1.0f, 1.1f, 3.0f, 2.1f, 5.0f};
    for (int i = 0; i < 5; i++) cr_assert_eq(((float *)y->data)[i], want[i]);
    amp_tensor_destroy(y);
    y = NULL;
    tn_free(t);
    /* no reduction attribute at these opsets */
    t = tn_new(ctx, "Scatter");
    t->opset = 10;
    tn_int(t, "axis", 1);
    tn_str(t, "reduction", "add");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* out of range */
    const int64_t bad[2] = {1, 5};
    amp_tensor *ib = ints_of(AMP_I64, 2, id, bad);
    in[1] = ib;
    t = tn_new(ctx, "Scatter");
    t->opset = 10;
    tn_int(t, "axis", 1);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_ARG);
    tn_free(t);
    cr_assert_null(y);
    amp_tensor *all[] = {x, ind, u, ib};
    destroy(4, all);
}

/* ---- TopK --------------------------------------------------------------------------------------- */

typedef struct kv {
    double v;
    int64_t i;
    int nan;
} kv;
static int g_largest;

/* better first: NaN above everything (numpy's sort order), ties by the lower index */
static int kv_cmp(const void *pa, const void *pb) {
    const kv *a = pa, *b = pb;
    if (a->nan != b->nan) return (a->nan ? -1 : 1) * (g_largest ? 1 : -1);
    if (!a->nan && a->v != b->v) return (a->v > b->v ? -1 : 1) * (g_largest ? 1 : -1);
    return a->i < b->i ? -1 : a->i > b->i;
}

static void ref_top_k(const amp_tensor *x, int axis, int64_t k, int largest, amp_tensor **vals, amp_tensor **idx) {
    int64_t od[AMP_MAX_RANK];
    memcpy(od, x->dims, sizeof od);
    od[axis] = k;
    *vals = new_like(x->dtype, x->rank, od);
    *idx = new_like(AMP_I64, x->rank, od);
    int64_t n = x->dims[axis], outer = numel(axis, x->dims), inner = numel(x->rank - axis - 1, x->dims + axis + 1);
    kv *row = malloc(sizeof(kv) * (size_t)(n + 1));
    g_largest = largest;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t j = 0; j < n; j++) {
                double v = tt_get(x, (o * n + j) * inner + i);
                row[j] = (kv){v, j, isnan(v)};
            }
            qsort(row, (size_t)n, sizeof(kv), kv_cmp);
            for (int64_t j = 0; j < k; j++) {
                int64_t dst = (o * k + j) * inner + i;
                cp(*vals, dst, x, (o * n + row[j].i) * inner + i);
                ((int64_t *)(*idx)->data)[dst] = row[j].i;
            }
        }
    free(row);
}

static amp_tensor *k_input(int64_t k) {
    const int64_t one[1] = {1};
    return ints_of(AMP_I64, 1, one, &k);
}

/* TopK at opset (1: k attribute, 10: K input, 11: largest/sorted) */
static void check_top_k(const amp_tensor *x, int axis, int64_t k, int largest, int64_t opset, int threads) {
    amp_test_node *t = tn_new(ctx, "TopK");
    t->opset = opset;
    t->threads = threads;
    if (axis != -1 || opset == 10) tn_int(t, "axis", axis);
    if (opset >= 11 && (!largest || (k & 1))) tn_int(t, "largest", largest);
    if (opset >= 11 && (k & 2)) tn_int(t, "sorted", 1);
    amp_tensor *kt = opset >= 10 ? k_input(k) : NULL, *in[2] = {(amp_tensor *)x, kt}, *y[2] = {NULL, NULL};
    if (opset < 10) tn_int(t, "k", k);
    cr_assert_eq(tn_run(t, opset >= 10 ? 2 : 1, in, 2, y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *rv, *ri;
    int a = axis < 0 ? axis + x->rank : axis;
    ref_top_k(x, a, k, largest, &rv, &ri);
    cr_assert(tt_equal(y[0], rv), "TopK values %s axis %d k %lld largest %d", amp_dtype_name(x->dtype), axis,
              (long long)k, largest);
    cr_assert(tt_equal(y[1], ri), "TopK indices %s axis %d k %lld largest %d", amp_dtype_name(x->dtype), axis,
              (long long)k, largest);
    /* Values alone (the kernel then keeps its selection in scratch) */
    amp_tensor *v1 = NULL;
    cr_assert_eq(tn_run(t, opset >= 10 ? 2 : 1, in, 1, &v1), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(v1, rv));
    tn_free(t);
    amp_tensor *all[] = {kt, y[0], y[1], rv, ri, v1};
    destroy(6, all);
}

static const amp_dtype topk_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32,
                                       AMP_I16, AMP_I8,  AMP_U64,  AMP_U32, AMP_U16, AMP_U8};

Test(top_k, every_dtype_axis_and_k) {
    const int64_t d3[3] = {3, 7, 5};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < sizeof topk_types / sizeof topk_types[0]; ti++) {
        amp_tensor *x = rand_of(topk_types[ti], 3, d3, seed++);
        for (int axis = -3; axis < 3; axis++) {
            int64_t n = d3[axis < 0 ? axis + 3 : axis];
            const int64_t ks[4] = {0, 1, 2, n};
            for (int i = 0; i < 4; i++)
                for (int largest = 0; largest < 2; largest++) check_top_k(x, axis, ks[i], largest, 11, 2);
        }
        amp_tensor_destroy(x);
    }
    /* the float types at opsets 1 and 10 */
    for (int fi = 0; fi < 4; fi++) {
        amp_tensor *x = rand_of(float_types[fi], 3, d3, seed++);
        check_top_k(x, -1, 3, 1, 1, 2);
        check_top_k(x, 1, 4, 1, 1, 2);
        check_top_k(x, 0, 2, 1, 10, 2);
        check_top_k(x, -2, 7, 1, 10, 2);
        amp_tensor_destroy(x);
    }
}

Test(top_k, ties_nan_and_signed_zero) {
    /* ties resolve to the lower index; NaN is the largest; -0 equals +0 */
    const int64_t d[1] = {10};
    const double v[10] = {1, NAN, -0.0, 3, 1, INFINITY, 0.0, NAN, -INFINITY, 3};
    for (int fi = 0; fi < 4; fi++) {
        amp_tensor *x = tt_make(ctx, float_types[fi], 1, d, v);
        for (int64_t k = 0; k <= 10; k++) {
            check_top_k(x, 0, k, 1, 11, 1);
            check_top_k(x, 0, k, 0, 11, 1);
        }
        amp_tensor_destroy(x);
    }
    /* explicit: largest 3 of the row are NaN (1), NaN (7), inf (5); smallest 3: -inf, -0, 0 */
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, d, v), *kt = k_input(3), *y[2];
    amp_tensor *in[2] = {x, kt};
    amp_test_node *t = tn_new(ctx, "TopK");
    t->opset = 11;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_OK);
    const int64_t *ix = y[1]->data;
    cr_assert(ix[0] == 1 && ix[1] == 7 && ix[2] == 5);
    destroy(2, y);
    tn_int(t, "largest", 0);
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_OK);
    ix = y[1]->data;
    cr_assert(ix[0] == 8 && ix[1] == 2 && ix[2] == 6, "%lld %lld %lld", (long long)ix[0], (long long)ix[1],
              (long long)ix[2]);
    destroy(2, y);
    tn_free(t);
    amp_tensor_destroy(x);
    /* many ties: small integers */
    const int64_t dd[2] = {4, 50};
    amp_tensor *xi = tt_rand(ctx, AMP_I32, 2, dd, 0, 3, 5);
    for (int64_t k = 1; k <= 50; k += 7) {
        check_top_k(xi, 1, k, 1, 11, 2);
        check_top_k(xi, 1, k, 0, 11, 2);
    }
    /* u64 beyond 2^63 orders unsigned */
    const int64_t d3[1] = {3};
    amp_tensor *xu = new_like(AMP_U64, 1, d3);
    ((uint64_t *)xu->data)[0] = 5;
    ((uint64_t *)xu->data)[1] = (1ull << 63) + 1;
    ((uint64_t *)xu->data)[2] = UINT64_MAX;
    amp_tensor *k1 = k_input(2), *in2[2] = {xu, k1};
    t = tn_new(ctx, "TopK");
    t->opset = 11;
    cr_assert_eq(tn_run(t, 2, in2, 2, y), AMP_OK);
    ix = y[1]->data;
    cr_assert(ix[0] == 2 && ix[1] == 1);
    destroy(2, y);
    tn_free(t);
    amp_tensor *all[] = {kt, xi, xu, k1};
    destroy(4, all);
}

Test(top_k, long_rows_and_threads) {
    /* k much smaller than the row (the heap path), rows split over threads */
    const int64_t d[2] = {40, 5003}, dt[3] = {7, 3001, 3};
    amp_tensor *x = rand_of(AMP_F32, 2, d, 11), *xb = rand_of(AMP_BF16, 3, dt, 12), *xh = rand_of(AMP_F16, 2, d, 13);
    check_top_k(x, 1, 5, 1, 11, 4);
    check_top_k(x, 1, 5, 0, 11, 1);
    check_top_k(x, 0, 40, 1, 11, 4);
    check_top_k(xb, 1, 17, 1, 11, 4);
    check_top_k(xb, 1, 3001, 0, 11, 3);
    check_top_k(xh, -1, 300, 1, 10, 4);
    amp_tensor *all[] = {x, xb, xh};
    destroy(3, all);
}

/* Inference alone, with K not known before running. */
static amp_status infer_unknown_k(amp_tensor *x) {
    amp_test_node *t = tn_new(ctx, "TopK");
    int ids_in[2] = {0, 1}, ids_out[2] = {2, 3};
    t->node.inputs = ids_in;
    t->node.n_inputs = 2;
    t->node.outputs = ids_out;
    t->node.n_outputs = 2;
    amp_tinfo tx = {.dtype = x->dtype, .rank = x->rank, .value = NULL}, tk = {.dtype = AMP_I64, .rank = 1}, o0, o1;
    memcpy(tx.dims, x->dims, sizeof tx.dims);
    tk.dims[0] = 1;
    const amp_tinfo *in[2] = {&tx, &tk};
    amp_tinfo *out[2] = {&o0, &o1};
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = 11, .nin = 2, .nout = 2, .in = in, .out = out};
    amp_status s = amp_infer_top_k(&c);
    tn_free(t);
    return s;
}

Test(top_k, bad_inputs) {
    const int64_t d[2] = {3, 4};
    amp_tensor *x = rand_of(AMP_F32, 2, d, 1), *xi = rand_of(AMP_I32, 2, d, 2), *y[2] = {NULL, NULL};
    amp_tensor *k5 = k_input(5), *kn = k_input(-1), *k2 = k_input(2);
    const int64_t two[1] = {2}, kv2[2] = {1, 2};
    amp_tensor *kk = ints_of(AMP_I64, 1, two, kv2);
    amp_tensor *in[2] = {x, k5};
    amp_test_node *t = tn_new(ctx, "TopK");
    t->opset = 11;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_INVALID_ARG);
    in[1] = kn;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_INVALID_ARG);
    in[1] = kk;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_SHAPE);
    tn_free(t);
    /* axis out of range */
    in[1] = k2;
    t = tn_new(ctx, "TopK");
    tn_int(t, "axis", 2);
    t->opset = 11;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* integers before opset 11; largest before 11; k attribute missing at opset 1 or given at 10 */
    in[0] = xi;
    t = tn_new(ctx, "TopK");
    t->opset = 10;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_UNSUPPORTED);
    in[0] = x;
    tn_int(t, "largest", 0);
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "TopK");
    t->opset = 10;
    tn_int(t, "k", 2);
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "TopK");
    t->opset = 1;
    cr_assert_eq(tn_run(t, 1, in, 2, y), AMP_ERR_INVALID_GRAPH);
    tn_int(t, "k", 9);
    cr_assert_eq(tn_run(t, 1, in, 2, y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* bool is not a TopK type; K unknown while planning */
    amp_tensor *xb = rand_of(AMP_BOOL, 2, d, 3);
    in[0] = xb;
    t = tn_new(ctx, "TopK");
    t->opset = 11;
    cr_assert_eq(tn_run(t, 2, in, 2, y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    cr_assert_eq(infer_unknown_k(x), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "data-dependent"));
    cr_assert(!y[0] && !y[1]);
    amp_tensor *all[] = {x, xi, k5, kn, k2, kk, xb};
    destroy(7, all);
}

/* ---- ReverseSequence ---------------------------------------------------------------------------- */

static void check_reverse_sequence(amp_dtype dt, int r, const int64_t *xd, int ba, int ta, uint64_t seed) {
    amp_tensor *x = rand_of(dt, r, xd, seed), *y = NULL;
    int64_t B = xd[ba], T = xd[ta];
    int64_t *lens = malloc(sizeof(int64_t) * (size_t)(B + 1));
    for (int64_t b = 0; b < B; b++) lens[b] = (int64_t)(mix(seed + (uint64_t)b) % (uint64_t)(T + 1));
    if (B > 1) lens[0] = T, lens[1] = 0;
    amp_tensor *sl = ints_of(seed & 1 ? AMP_I64 : AMP_I32, 1, &B, lens);
    amp_tensor *ref = new_like(dt, r, xd);
    for (int64_t p = 0; p < x->numel; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(r, xd, p, c);
        int64_t len = lens[c[ba]];
        if (c[ta] < len) c[ta] = len - 1 - c[ta];
        cp(ref, p, x, ravel(r, xd, c));
    }
    amp_test_node *t = tn_new(ctx, "ReverseSequence");
    t->opset = 10;
    if (ba != 1 || (seed & 2)) tn_int(t, "batch_axis", ba);
    if (ta != 0 || (seed & 2)) tn_int(t, "time_axis", ta);
    amp_tensor *in[2] = {x, sl};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(y, ref), "ReverseSequence %s rank %d batch_axis %d", amp_dtype_name(dt), r, ba);
    tn_free(t);
    free(lens);
    amp_tensor *all[] = {x, sl, y, ref};
    destroy(4, all);
}

Test(reverse_sequence, every_dtype_and_layout) {
    const int64_t d2[2] = {5, 4}, d3[3] = {6, 3, 5}, d4[4] = {3, 7, 2, 3};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int ba = 0; ba < 2; ba++) {
            check_reverse_sequence(all_types[ti], 2, d2, ba, 1 - ba, seed++);
            check_reverse_sequence(all_types[ti], 3, d3, ba, 1 - ba, seed++);
        }
    check_reverse_sequence(AMP_F32, 4, d4, 0, 1, seed++);
    check_reverse_sequence(AMP_F16, 4, d4, 1, 0, seed++);
    const int64_t big[3] = {300, 64, 4};
    check_reverse_sequence(AMP_F32, 3, big, 1, 0, seed++);
}

Test(reverse_sequence, onnx_example_and_bad_inputs) {
    /* Example 1 of the documentation: time_axis 0, batch_axis 1 */
    const int64_t d[2] = {4, 4}, ld[1] = {4}, lv[4] = {4, 3, 2, 1};
    const double xv[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
    const double want[16] = {3, 6, 9, 12, 2, 5, 8, 13, 1, 4, 10, 14, 0, 7, 11, 15};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, d, xv), *sl = ints_of(AMP_I64, 1, ld, lv), *y = NULL;
    amp_tensor *in[2] = {x, sl};
    amp_test_node *t = tn_new(ctx, "ReverseSequence");
    t->opset = 10;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 16; i++) cr_assert_eq(tt_get(y, i), want[i]);
    amp_tensor_destroy(y);
    y = NULL;
    /* lengths beyond the time dim or negative */
    const int64_t l5[4] = {5, 1, 1, 1}, lneg[4] = {1, -1, 1, 1}, l3d[1] = {3};
    amp_tensor *s5 = ints_of(AMP_I64, 1, ld, l5), *sn = ints_of(AMP_I64, 1, ld, lneg);
    amp_tensor *s3 = ints_of(AMP_I64, 1, l3d, l5);
    in[1] = s5;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    in[1] = sn;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    in[1] = s3;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    /* equal or invalid axes, rank 1 */
    in[1] = sl;
    t = tn_new(ctx, "ReverseSequence");
    tn_int(t, "batch_axis", 0);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "ReverseSequence");
    tn_int(t, "time_axis", 2);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor *x1 = rand_of(AMP_F32, 1, ld, 3);
    in[0] = x1;
    t = tn_new(ctx, "ReverseSequence");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    cr_assert_null(y);
    amp_tensor *all[] = {x, sl, s5, sn, s3, x1};
    destroy(6, all);
}

/* ---- MaxUnpool ---------------------------------------------------------------------------------- */

/* Reference: zeros of the unpooled dims ud, X written at its flat indices in order, the result
 * placed at the origin of od. */
static amp_tensor *ref_unpool(const amp_tensor *x, const int64_t *iv, int r, const int64_t *ud, const int64_t *od) {
    amp_tensor *y = new_like(x->dtype, r, od);
    memset(y->data, 0, y->nbytes);
    for (int64_t p = 0; p < x->numel; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(r, ud, iv[p], c);
        cp(y, ravel(r, od, c), x, p);
    }
    return y;
}

static void check_max_unpool(amp_dtype dt, int r, const int64_t *xd, const int64_t *ks, const int64_t *st,
                             const int64_t *pads, const int64_t *extra, bool repeats, uint64_t seed) {
    int sp = r - 2;
    int64_t ud[AMP_MAX_RANK], od[AMP_MAX_RANK];
    ud[0] = xd[0];
    ud[1] = xd[1];
    for (int d = 0; d < sp; d++)
        ud[2 + d] = (xd[2 + d] - 1) * (st ? st[d] : 1) - (pads ? pads[d] + pads[d + sp] : 0) + ks[d];
    for (int d = 0; d < r; d++) od[d] = ud[d] + (extra ? extra[d] : 0);
    int64_t total = numel(r, ud), n = numel(r, xd);
    cr_assert(repeats || n <= total);
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n + 1));
    /* distinct positions (a stride through the unpooled tensor), or repeats when asked */
    for (int64_t p = 0; p < n; p++)
        iv[p] = repeats ? (int64_t)(mix(seed + (uint64_t)p) % (uint64_t)(n / 2 + 1)) : (p * 7919) % total;
    if (!repeats)
        for (int64_t p = 0; p < n; p++)
            for (int64_t q = 0; q < p; q++) cr_assert_neq(iv[p], iv[q], "test setup: repeated index");
    amp_tensor *x = rand_of(dt, r, xd, seed), *ind = ints_of(AMP_I64, r, xd, iv), *y = NULL, *os = NULL;
    amp_test_node *t = tn_new(ctx, "MaxUnpool");
    t->opset = seed & 1 ? 9 : 11;
    tn_ints(t, "kernel_shape", sp, ks);
    if (st) tn_ints(t, "strides", sp, st);
    if (pads) tn_ints(t, "pads", 2 * sp, pads);
    int64_t rr = r;
    if (extra) os = ints_of(AMP_I64, 1, &rr, od);
    amp_tensor *in[3] = {x, ind, os};
    cr_assert_eq(tn_run(t, extra ? 3 : 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref = ref_unpool(x, iv, r, ud, od);
    cr_assert(tt_equal(y, ref), "MaxUnpool %s rank %d", amp_dtype_name(dt), r);
    tn_free(t);
    free(iv);
    amp_tensor *all[] = {x, ind, y, os, ref};
    destroy(5, all);
}

Test(max_unpool, dtypes_ranks_and_attributes) {
    const int64_t x4[4] = {2, 3, 3, 4}, k22[2] = {2, 2}, s22[2] = {2, 2}, k32[2] = {3, 2}, s12[2] = {1, 2};
    const int64_t p4[4] = {1, 0, 0, 1}, ex4[4] = {0, 0, 2, 1};
    uint64_t seed = 1;
    for (int fi = 0; fi < 4; fi++) {
        amp_dtype dt = float_types[fi];
        check_max_unpool(dt, 4, x4, k22, s22, NULL, NULL, false, seed++);
        check_max_unpool(dt, 4, x4, k32, s12, p4, NULL, false, seed++);
        check_max_unpool(dt, 4, x4, k22, s22, NULL, ex4, false, seed++);
        check_max_unpool(dt, 4, x4, k22, NULL, NULL, NULL, true, seed++);
    }
    const int64_t x3[3] = {1, 2, 7}, k3[1] = {3}, s3[1] = {2}, p3[2] = {1, 1}, e3[3] = {1, 0, 3};
    check_max_unpool(AMP_F32, 3, x3, k3, s3, p3, NULL, false, seed++);
    check_max_unpool(AMP_F64, 3, x3, k3, s3, NULL, e3, false, seed++);
    const int64_t x5[5] = {1, 2, 2, 3, 2}, k5[3] = {2, 2, 2}, s5[3] = {2, 2, 2};
    check_max_unpool(AMP_F16, 5, x5, k5, s5, NULL, NULL, false, seed++);
}

Test(max_unpool, onnx_example_with_output_shape) {
    /* test_maxunpool_export_with_output_shape: the 4x4 unpooled result at the origin of 5x5 */
    const int64_t xd[4] = {1, 1, 2, 2}, iv[4] = {5, 7, 13, 15}, k[2] = {2, 2}, s[2] = {2, 2}, r4[1] = {4},
                  osv[4] = {1, 1, 5, 5};
    const double xv[4] = {5, 6, 7, 8};
    amp_tensor *x = tt_make(ctx, AMP_F32, 4, xd, xv), *ind = ints_of(AMP_I64, 4, xd, iv);
    amp_tensor *os = ints_of(AMP_I64, 1, r4, osv);
    amp_tensor *y = NULL, *in[3] = {x, ind, os};
    amp_test_node *t = tn_new(ctx, "MaxUnpool");
    t->opset = 11;
    tn_ints(t, "kernel_shape", 2, k);
    tn_ints(t, "strides", 2, s);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(y->dims[2] == 5 && y->dims[3] == 5);
    for (int64_t i = 0; i < 25; i++) {
        double want = i == 6 ? 5 : i == 8 ? 6 : i == 16 ? 7 : i == 18 ? 8 : 0;
        cr_assert_eq(tt_get(y, i), want, "element %lld", (long long)i);
    }
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *all[] = {x, ind, os};
    destroy(3, all);
}

Test(max_unpool, bad_inputs) {
    const int64_t xd[4] = {1, 1, 2, 2}, k[2] = {2, 2}, s[2] = {2, 2}, r4[1] = {4}, small[4] = {1, 1, 3, 4};
    const int64_t hi[4] = {0, 1, 2, 16}, neg[4] = {0, -1, 2, 3}, okv[4] = {0, 1, 2, 3}, id3[3] = {1, 1, 4};
    amp_tensor *x = rand_of(AMP_F32, 4, xd, 1), *ih = ints_of(AMP_I64, 4, xd, hi), *in_ = ints_of(AMP_I64, 4, xd, neg);
    amp_tensor *iok = ints_of(AMP_I64, 4, xd, okv), *os = ints_of(AMP_I64, 1, r4, small);
    amp_tensor *i3 = ints_of(AMP_I64, 3, id3, okv);
    amp_tensor *xi = rand_of(AMP_I32, 4, xd, 2), *y = NULL;
    amp_test_node *t = tn_new(ctx, "MaxUnpool");
    t->opset = 11;
    tn_ints(t, "kernel_shape", 2, k);
    tn_ints(t, "strides", 2, s);
    amp_tensor *in[3] = {x, ih, NULL};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    cr_assert(strstr(amp_context_last_error(ctx), "index 16"), "%s", amp_context_last_error(ctx));
    in[1] = in_;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    in[1] = iok;
    in[2] = os;
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    in[1] = i3;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    in[0] = xi;
    in[1] = iok;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    in[0] = x;
    t = tn_new(ctx, "MaxUnpool");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_ints(t, "kernel_shape", 1, k);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    cr_assert_null(y);
    amp_tensor *all[] = {x, ih, in_, iok, os, i3, xi};
    destroy(7, all);
}
