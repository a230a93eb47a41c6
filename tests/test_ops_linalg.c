/* Einsum, Det, HannWindow, HammingWindow and BlackmanWindow against reference loops written
 * here: Einsum by summing the product of the operands over every assignment of the subscripts
 * (its own small equation reader, independent of ir/ops/linalg.c), Det by Laplace expansion,
 * the windows from their formulas and from values of the ONNX node tests. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(einsum, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(det, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(window, .init = setup, .fini = teardown, .timeout = 60);

static const amp_dtype ein_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8};
#define N_EIN (sizeof ein_types / sizeof ein_types[0])

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

/* Random data of dtype dt, never all zero: small integers for integer types. */
static amp_tensor *rand_of(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    if (dt == AMP_U8) return tt_rand(ctx, dt, rank, dims, 1, 6, seed);
    if (amp_dtype_is_int(dt)) return tt_rand(ctx, dt, rank, dims, -5, 6, seed);
    return tt_rand(ctx, dt, rank, dims, -2, 2, seed);
}

/* ---- Einsum reference ------------------------------------------------------------------------ */

/* Subscripts: letters by their character, the ellipsis dims as 200 + position in the broadcast
 * ellipsis. */
typedef struct ref_eq {
    int nin;
    int lab[16][8], rank[16];
    int olab[8], orank;
} ref_eq;

static void ref_parse(const char *eq, int nin, amp_tensor *const *in, ref_eq *r) {
    char buf[256];
    int n = 0;
    for (const char *p = eq; *p; p++)
        if (*p != ' ') buf[n++] = *p;
    buf[n] = '\0';
    char *arrow = strstr(buf, "->");
    char *rhs = NULL;
    if (arrow) {
        *arrow = '\0';
        rhs = arrow + 2;
    }
    char terms[16][64];
    int nt = 0, len = 0;
    for (char *p = buf;; p++) {
        if (*p == ',' || *p == '\0') {
            terms[nt][len] = '\0';
            nt++;
            len = 0;
            if (*p == '\0') break;
        } else {
            terms[nt][len++] = *p;
        }
    }
    cr_assert_eq(nt, nin, "reference: %d terms for %d inputs", nt, nin);
    r->nin = nin;
    int ell = 0;
    bool any_ell = false;
    for (int i = 0; i < nin; i++) {
        const char *t = terms[i];
        int letters = 0;
        for (const char *p = t; *p; p++) letters += *p != '.';
        if (strstr(t, "...")) {
            any_ell = true;
            if (in[i]->rank - letters > ell) ell = in[i]->rank - letters;
        }
    }
    int count[128] = {0};
    for (int i = 0; i < nin; i++) {
        const char *t = terms[i];
        int letters = 0;
        for (const char *p = t; *p; p++) letters += *p != '.';
        int e = in[i]->rank - letters, d = 0;
        for (const char *p = t; *p; p++) {
            if (*p == '.') {
                for (int q = 0; q < e; q++) r->lab[i][d++] = 200 + ell - e + q;
                p += 2;
            } else {
                r->lab[i][d++] = *p;
                count[(int)*p]++;
            }
        }
        r->rank[i] = d;
    }
    r->orank = 0;
    if (rhs) {
        for (const char *p = rhs; *p; p++) {
            if (*p == '.') {
                for (int q = 0; q < ell; q++) r->olab[r->orank++] = 200 + q;
                p += 2;
            } else {
                r->olab[r->orank++] = *p;
            }
        }
    } else {
        if (any_ell)
            for (int q = 0; q < ell; q++) r->olab[r->orank++] = 200 + q;
        for (int ch = 0; ch < 128; ch++)
            if (count[ch] == 1) r->olab[r->orank++] = ch;
    }
}

/* Sum over every assignment of the subscripts of the product of the operands (dims of size 1
 * broadcast), in double for floats and in wrapping 64-bit integers for integer types. */
static amp_tensor *ref_einsum(const char *eq, int nin, amp_tensor *const *in) {
    ref_eq r;
    ref_parse(eq, nin, in, &r);
    int64_t size[256];
    for (int l = 0; l < 256; l++) size[l] = -1;
    int all[64], nall = 0;
    for (int i = 0; i < nin; i++)
        for (int d = 0; d < r.rank[i]; d++) {
            int l = r.lab[i][d];
            if (size[l] < 0) all[nall++] = l;
            if (size[l] < 0 || size[l] == 1) size[l] = in[i]->dims[d];
        }
    int64_t odims[8];
    for (int d = 0; d < r.orank; d++) odims[d] = size[r.olab[d]];
    amp_dtype dt = in[0]->dtype;
    amp_tensor *y;
    cr_assert_eq(amp_tensor_create(ctx, dt, r.orank, odims, &y), AMP_OK);
    const bool fl = amp_dtype_is_float(dt);
    double *accf = calloc((size_t)y->numel + 1, sizeof(double));
    uint64_t *acci = calloc((size_t)y->numel + 1, sizeof(uint64_t));
    int64_t val[256] = {0}, total = 1;
    for (int q = 0; q < nall; q++) total *= size[all[q]];
    for (int64_t it = 0; it < total; it++) {
        int64_t rem = it;
        for (int q = nall - 1; q >= 0; q--) {
            val[all[q]] = rem % size[all[q]];
            rem /= size[all[q]];
        }
        double pf = 1;
        uint64_t pi = 1;
        for (int i = 0; i < nin; i++) {
            int64_t off = 0;
            for (int d = 0; d < r.rank[i]; d++)
                off = off * in[i]->dims[d] + (in[i]->dims[d] == 1 ? 0 : val[r.lab[i][d]]);
            if (fl) pf *= tt_get(in[i], off);
            else pi *= (uint64_t)amp_ldi(in[i]->dtype, in[i]->data, off);
        }
        int64_t o = 0;
        for (int d = 0; d < r.orank; d++) o = o * odims[d] + val[r.olab[d]];
        accf[o] += pf;
        acci[o] += pi;
    }
    for (int64_t o = 0; o < y->numel; o++) {
        if (fl) amp_st(dt, y->data, o, accf[o]);
        else amp_sti(dt, y->data, o, (int64_t)acci[o]);
    }
    free(accf);
    free(acci);
    return y;
}

static double tol_of(amp_dtype dt) {
    switch (dt) {
    case AMP_F64: return 1e-24;
    case AMP_F32: return 1e-11;
    case AMP_F16: return 1e-5;
    case AMP_BF16: return 1e-3;
    default: return 0;
    }
}

typedef struct ein_case {
    const char *eq;
    int nin;
    int rank[4];
    int64_t dims[4][6];
} ein_case;

static const ein_case cases[] = {
    {"ij,jk->ik", 2, {2, 2}, {{5, 7}, {7, 3}}},
    {"ij,jk", 2, {2, 2}, {{5, 7}, {7, 3}}},
    {"ij,jk->ki", 2, {2, 2}, {{5, 7}, {7, 3}}},
    {"ij,kj->ik", 2, {2, 2}, {{4, 6}, {3, 6}}},
    {"ji,jk->ik", 2, {2, 2}, {{6, 4}, {6, 3}}},
    {"bij,bjk->bik", 2, {3, 3}, {{3, 4, 5}, {3, 5, 6}}},
    {"bij,bkj->bki", 2, {3, 3}, {{2, 4, 5}, {2, 3, 5}}},
    {"ij->ji", 1, {2}, {{3, 5}}},
    {"ij", 1, {2}, {{3, 5}}},
    {"ba", 1, {2}, {{3, 5}}},
    {"ii->i", 1, {2}, {{4, 4}}},
    {"ii", 1, {2}, {{5, 5}}},
    {"...ii->...i", 1, {3}, {{3, 4, 4}}},
    {"iij->j", 1, {3}, {{3, 3, 2}}},
    {"iji->ij", 1, {3}, {{3, 2, 3}}},
    {"i,i", 2, {1, 1}, {{7}, {7}}},
    {"i,j->ij", 2, {1, 1}, {{3}, {5}}},
    {"i,j", 2, {1, 1}, {{3}, {5}}},
    {"ij,ij->ij", 2, {2, 2}, {{3, 5}, {3, 5}}},
    {"ij,ij->", 2, {2, 2}, {{3, 5}, {3, 5}}},
    {"ijk->", 1, {3}, {{2, 3, 4}}},
    {"ijk->j", 1, {3}, {{2, 3, 4}}},
    {"ijk->kji", 1, {3}, {{2, 3, 4}}},
    {"ij,jk,kl->il", 3, {2, 2, 2}, {{3, 4}, {4, 5}, {5, 2}}},
    {"abc,cd,de->abe", 3, {3, 2, 2}, {{2, 3, 4}, {4, 3}, {3, 5}}},
    {"...ij,...jk->...ik", 2, {4, 3}, {{2, 1, 3, 4}, {5, 4, 2}}},
    {"...ij,...jk", 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}},
    {"i...j,j->...i", 2, {4, 1}, {{3, 2, 2, 4}, {4}}},
    {"bn,anm,bm->ba", 3, {2, 3, 2}, {{2, 5}, {3, 5, 4}, {2, 4}}},
    {"Ab,bc", 2, {2, 2}, {{3, 4}, {4, 2}}},
    {"aB,Ba->", 2, {2, 2}, {{3, 4}, {4, 3}}},
    {" i j , j k -> i k ", 2, {2, 2}, {{2, 3}, {3, 4}}},
    {"ij,jk->ik", 2, {2, 2}, {{2, 1}, {3, 4}}},
    {"i,i->i", 2, {1, 1}, {{1}, {6}}},
    {",ij->ij", 2, {0, 2}, {{0}, {3, 2}}},
    {"ab,bc,cd,de->ae", 4, {2, 2, 2, 2}, {{2, 3}, {3, 4}, {4, 2}, {2, 3}}},
    {"a,b,c,abc->", 4, {1, 1, 1, 3}, {{2}, {3}, {4}, {2, 3, 4}}},
    {"ij,jk->ik", 2, {2, 2}, {{3, 0}, {0, 4}}},
    {"ij,jk->ik", 2, {2, 2}, {{0, 3}, {3, 4}}},
    {"bij,bjk->bik", 2, {3, 3}, {{2, 23, 19}, {2, 19, 21}}},
    {"bji,bjk->bik", 2, {3, 3}, {{2, 19, 23}, {2, 19, 21}}},
    {"bij,bkj->bik", 2, {3, 3}, {{3, 17, 25}, {3, 9, 25}}},
    {"ik,kj->ji", 2, {2, 2}, {{31, 27}, {27, 11}}},
    {"bhqd,bhkd->bhqk", 2, {4, 4}, {{2, 3, 9, 8}, {2, 3, 7, 8}}},
    {"ijkl,lkm->ijm", 2, {4, 3}, {{3, 2, 5, 4}, {4, 5, 6}}},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static void check_case(const ein_case *c, amp_dtype dt, int threads, uint64_t seed) {
    amp_tensor *in[4] = {0}, *y = NULL;
    for (int i = 0; i < c->nin; i++) in[i] = rand_of(dt, c->rank[i], c->dims[i], seed + (uint64_t)i);
    amp_test_node *t = tn_new(ctx, "Einsum");
    t->threads = threads;
    tn_str(t, "equation", c->eq);
    cr_assert_eq(tn_run(t, c->nin, in, 1, &y), AMP_OK, "%s %s: %s", c->eq, amp_dtype_name(dt),
                 amp_context_last_error(ctx));
    amp_tensor *ref = ref_einsum(c->eq, c->nin, in);
    cr_assert_eq(y->dtype, dt);
    cr_assert_eq(y->rank, ref->rank, "%s: rank %d, expected %d", c->eq, y->rank, ref->rank);
    for (int d = 0; d < y->rank; d++) cr_assert_eq(y->dims[d], ref->dims[d], "%s: dim %d", c->eq, d);
    if (amp_dtype_is_int(dt)) {
        cr_assert(tt_equal(y, ref), "%s %s: integers differ", c->eq, amp_dtype_name(dt));
    } else {
        double e = tt_nse(y, ref);
        cr_assert(e <= tol_of(dt), "%s %s threads %d: nse %g", c->eq, amp_dtype_name(dt), threads, e);
    }
    tn_free(t);
    free_all(in, 4);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(einsum, every_case_every_dtype) {
    uint64_t seed = 11;
    for (size_t ci = 0; ci < N_CASES; ci++)
        for (size_t ti = 0; ti < N_EIN; ti++) check_case(&cases[ci], ein_types[ti], 2, seed += 7);
}

Test(einsum, thread_counts_agree_with_reference) {
    uint64_t seed = 500;
    const int thr[3] = {1, 3, 8};
    for (size_t ci = 0; ci < N_CASES; ci++)
        for (int q = 0; q < 3; q++) check_case(&cases[ci], AMP_F32, thr[q], seed += 3);
}

/* Large enough for BLAS, for the parallel packing and for batches spread over threads. */
Test(einsum, large_products) {
    static const ein_case big[] = {
        {"bij,bjk->bik", 2, {3, 3}, {{16, 33, 40}, {16, 40, 29}}},
        {"ij,jk->ik", 2, {2, 2}, {{120, 90}, {90, 70}}},
        {"bij,jk->bik", 2, {3, 2}, {{5, 30, 40}, {40, 50}}},
        {"abcd,dc->ab", 2, {4, 2}, {{7, 9, 30, 40}, {40, 30}}},
        {"ij,ij->i", 2, {2, 2}, {{300, 257}, {300, 257}}},
    };
    uint64_t seed = 900;
    for (size_t ci = 0; ci < sizeof big / sizeof big[0]; ci++) {
        check_case(&big[ci], AMP_F32, 4, seed++);
        check_case(&big[ci], AMP_F64, 4, seed++);
        check_case(&big[ci], AMP_BF16, 2, seed++);
        check_case(&big[ci], AMP_I32, 4, seed++);
    }
}

/* Integer products wrap like the integer MatMul: int8 overflows as the cast of the exact sum. */
Test(einsum, integers_wrap) {
    const int64_t d[1] = {4};
    const double a[4] = {100, 100, 100, 100}, b[4] = {3, 3, 3, 3};
    amp_tensor *in[2] = {tt_make(ctx, AMP_I8, 1, d, a), tt_make(ctx, AMP_I8, 1, d, b)}, *y = NULL;
    amp_test_node *t = tn_new(ctx, "Einsum");
    tn_str(t, "equation", "i,i->");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(((int8_t *)y->data)[0], (int8_t)(1200 - 5 * 256), "got %d", ((int8_t *)y->data)[0]);
    tn_free(t);
    free_all(in, 2);
    amp_tensor_destroy(y);
}

static void expect_fail(const char *eq, int nin, amp_tensor **in, amp_status want) {
    amp_test_node *t = tn_new(ctx, "Einsum");
    if (eq) tn_str(t, "equation", eq);
    amp_tensor *y = (amp_tensor *)1;
    amp_status s = tn_run(t, nin, in, 1, &y);
    cr_assert_eq(s, want, "'%s': status %d (%s), expected %d", eq ? eq : "(none)", s, amp_context_last_error(ctx),
                 want);
    cr_assert_null(y, "'%s': output left behind", eq ? eq : "(none)");
    tn_free(t);
}

Test(einsum, bad_inputs) {
    const int64_t d23[2] = {2, 3}, d33[2] = {3, 3}, d34[2] = {3, 4}, d4[1] = {4}, d234[3] = {2, 3, 4};
    amp_tensor *a = rand_of(AMP_F32, 2, d23, 1), *b = rand_of(AMP_F32, 2, d34, 2), *sq = rand_of(AMP_F32, 2, d33, 3);
    amp_tensor *v = rand_of(AMP_F32, 1, d4, 4), *ai = rand_of(AMP_I32, 2, d34, 5), *c3 = rand_of(AMP_F32, 3, d234, 6);
    amp_tensor *ab[2] = {a, b}, *one[1] = {a}, *mixed[2] = {a, ai}, *av[2] = {a, v}, *c3a[1] = {c3};
    amp_test_node *tn_ok = tn_new(ctx, "Einsum"), *tn_diag = tn_new(ctx, "Einsum");
    tn_str(tn_ok, "equation", "ij,k->ijk");
    tn_str(tn_diag, "equation", "ii->i");
    expect_fail("ij,jk,kl->il", 2, ab, AMP_ERR_INVALID_GRAPH);   /* more terms than inputs */
    expect_fail("ij->ij", 2, ab, AMP_ERR_INVALID_GRAPH);         /* fewer terms */
    expect_fail("ijk,jk->ik", 2, ab, AMP_ERR_SHAPE);              /* rank 2 against 3 subscripts */
    expect_fail("ij,kj->ik", 2, ab, AMP_ERR_SHAPE);               /* j: 3 against 4 */
    expect_fail("ij,jk->iz", 2, ab, AMP_ERR_INVALID_GRAPH);       /* z in no input */
    expect_fail("ij,jk->ii", 2, ab, AMP_ERR_INVALID_GRAPH);       /* repeated output subscript */
    expect_fail("i#,jk->ik", 2, ab, AMP_ERR_INVALID_GRAPH);       /* bad character */
    expect_fail("i..j,jk->ik", 2, ab, AMP_ERR_INVALID_GRAPH);     /* malformed ellipsis */
    expect_fail("...i...,jk->ik", 2, ab, AMP_ERR_INVALID_GRAPH);  /* two ellipses */
    expect_fail("ij,jk->ik->ik", 2, ab, AMP_ERR_INVALID_GRAPH);   /* two arrows */
    expect_fail("ij,jk-ik", 2, ab, AMP_ERR_INVALID_GRAPH);        /* stray '-' */
    expect_fail("ij,jk>ik", 2, ab, AMP_ERR_INVALID_GRAPH);        /* stray '>' */
    expect_fail("ij,jk->i,k", 2, ab, AMP_ERR_INVALID_GRAPH);      /* ',' in the output */
    expect_fail(NULL, 2, ab, AMP_ERR_INVALID_GRAPH);              /* no equation */
    expect_fail("ii->i", 1, one, AMP_ERR_SHAPE);                  /* diagonal of a 2 x 3 */
    expect_fail("ij,jk->ik", 2, mixed, AMP_ERR_SHAPE);            /* float and int32 */
    expect_fail("...j->j", 1, c3a, AMP_ERR_INVALID_GRAPH);        /* ellipsis dims, no '...' out */
    amp_tensor *bo = tt_rand(ctx, AMP_BOOL, 2, d23, 0, 2, 7), *bb[1] = {bo};
    expect_fail("ij->ji", 1, bb, AMP_ERR_UNSUPPORTED);
    /* controls: the same operands with a valid equation run */
    amp_tensor *y = NULL, *sqs[1] = {sq};
    cr_assert_eq(tn_run(tn_ok, 2, av, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->rank, 3);
    amp_tensor_destroy(y);
    cr_assert_eq(tn_run(tn_diag, 1, sqs, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    tn_free(tn_ok);
    tn_free(tn_diag);
    amp_tensor_destroy(a);
    amp_tensor_destroy(b);
    amp_tensor_destroy(sq);
    amp_tensor_destroy(v);
    amp_tensor_destroy(ai);
    amp_tensor_destroy(c3);
    amp_tensor_destroy(bo);
}

/* ---- Det ----------------------------------------------------------------------------------- */

/* Laplace expansion along the first row (n <= 7). */
static double laplace(const double *a, int n) {
    if (n == 0) return 1.0;
    if (n == 1) return a[0];
    double sub[49], det = 0;
    for (int c = 0; c < n; c++) {
        int q = 0;
        for (int r = 1; r < n; r++)
            for (int k = 0; k < n; k++)
                if (k != c) sub[q++] = a[r * n + k];
        double m = laplace(sub, n - 1);
        det += (c % 2 ? -1.0 : 1.0) * a[c] * m;
    }
    return det;
}

static void check_det(amp_dtype dt, int rank, const int64_t *dims, int threads, uint64_t seed) {
    amp_tensor *x = rand_of(dt, rank, dims, seed), *y = NULL;
    amp_test_node *t = tn_new(ctx, "Det");
    t->threads = threads;
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const int n = (int)dims[rank - 1];
    cr_assert_eq(y->rank, rank - 2);
    for (int d = 0; d < rank - 2; d++) cr_assert_eq(y->dims[d], dims[d]);
    amp_tensor *ref;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank - 2, dims, &ref), AMP_OK);
    double m[49];
    for (int64_t b = 0; b < ref->numel; b++) {
        for (int i = 0; i < n * n; i++) m[i] = tt_get(x, b * n * n + i);
        amp_st(dt, ref->data, b, laplace(m, n));
    }
    double e = tt_nse(y, ref);
    cr_assert(e <= (dt == AMP_F64 ? 1e-26 : dt == AMP_F32 ? 1e-11 : dt == AMP_F16 ? 1e-6 : 1e-4),
              "Det %s n=%d: nse %g", amp_dtype_name(dt), n, e);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(det, every_float_dtype_and_shape) {
    static const amp_dtype fl[4] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
    const int64_t s1[2] = {1, 1}, s2[2] = {2, 2}, s3[2] = {3, 3}, b4[3] = {5, 4, 4}, b5[4] = {2, 3, 5, 5},
                  b7[3] = {40, 7, 7}, b6[3] = {3, 6, 6};
    uint64_t seed = 3;
    for (int ti = 0; ti < 4; ti++) {
        check_det(fl[ti], 2, s1, 2, seed++);
        check_det(fl[ti], 2, s2, 2, seed++);
        check_det(fl[ti], 2, s3, 2, seed++);
        check_det(fl[ti], 3, b4, 2, seed++);
        check_det(fl[ti], 4, b5, 3, seed++);
        check_det(fl[ti], 3, b6, 1, seed++);
        check_det(fl[ti], 3, b7, 4, seed++);
    }
}

Test(det, singular_permuted_and_empty) {
    /* a repeated row gives exactly 0; a permutation matrix gives its sign; 0 x 0 gives 1 */
    const int64_t d3[2] = {3, 3}, d4[3] = {2, 4, 4}, d0[3] = {2, 0, 0}, de[3] = {0, 3, 3};
    const double sing[9] = {1, 2, 3, 4, 5, 6, 1, 2, 3};
    const double perm[32] = {0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0,   /* a 4-cycle: -1 */
                             0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0};  /* two swaps: +1 */
    amp_tensor *x = tt_make(ctx, AMP_F64, 2, d3, sing), *y = NULL;
    amp_test_node *t = tn_new(ctx, "Det");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
    cr_assert_eq(tt_get(y, 0), 0.0, "singular: %g", tt_get(y, 0));
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    x = tt_make(ctx, AMP_F32, 3, d4, perm);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
    cr_assert_eq(tt_get(y, 0), -1.0);
    cr_assert_eq(tt_get(y, 1), 1.0);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    x = tt_make(ctx, AMP_F32, 3, d0, NULL);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
    cr_assert_eq(y->numel, 2);
    cr_assert_eq(tt_get(y, 0), 1.0);
    cr_assert_eq(tt_get(y, 1), 1.0);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    x = tt_make(ctx, AMP_F32, 3, de, NULL);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
    cr_assert_eq(y->numel, 0);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    tn_free(t);
}

Test(det, bad_inputs) {
    const int64_t d1[1] = {3}, d23[2] = {2, 3}, d33[2] = {3, 3};
    amp_tensor *v = rand_of(AMP_F32, 1, d1, 1), *r = rand_of(AMP_F32, 2, d23, 2), *i = rand_of(AMP_I32, 2, d33, 3);
    amp_tensor *cases_in[3] = {v, r, i};
    const amp_status want[3] = {AMP_ERR_SHAPE, AMP_ERR_SHAPE, AMP_ERR_UNSUPPORTED};
    for (int k = 0; k < 3; k++) {
        amp_test_node *t = tn_new(ctx, "Det");
        amp_tensor *y = (amp_tensor *)1;
        amp_status s = tn_run(t, 1, &cases_in[k], 1, &y);
        cr_assert_eq(s, want[k], "case %d: %d (%s)", k, s, amp_context_last_error(ctx));
        cr_assert_null(y);
        tn_free(t);
    }
    free_all(cases_in, 3);
}

/* ---- windows ----------------------------------------------------------------------------------- */

static const char *const win_ops[3] = {"HannWindow", "HammingWindow", "BlackmanWindow"};

static double win_ref(int op, int64_t i, int64_t size, bool periodic) {
    const double pi = 3.14159265358979323846;
    double N = (double)(periodic ? size : size - 1);
    switch (op) {
    case 0: return sin(pi * (double)i / N) * sin(pi * (double)i / N); /* sin^2 form of the Hann window */
    case 1: return 25.0 / 46.0 - 21.0 / 46.0 * cos(2 * pi * (double)i / N);
    default: return 0.42 - 0.5 * cos(2 * pi * (double)i / N) + 0.08 * cos(4 * pi * (double)i / N);
    }
}

static amp_status run_window(const char *op, amp_dtype sdt, int64_t size, int periodic, int64_t odt, amp_tensor **y) {
    amp_tensor *s = tt_make(ctx, sdt, 0, NULL, (const double[]){(double)size});
    amp_test_node *t = tn_new(ctx, op);
    if (periodic >= 0) tn_int(t, "periodic", periodic);
    if (odt >= 0) tn_int(t, "output_datatype", odt);
    amp_status st = tn_run(t, 1, &s, 1, y);
    tn_free(t);
    amp_tensor_destroy(s);
    return st;
}

Test(window, every_op_size_and_dtype) {
    const int64_t sizes[6] = {0, 1, 2, 5, 10, 257};
    for (int op = 0; op < 3; op++)
        for (int per = -1; per <= 1; per++)
            for (size_t ti = 0; ti < N_EIN; ti++)
                for (int si = 0; si < 6; si++) {
                    const amp_dtype dt = ein_types[ti];
                    amp_tensor *y = NULL;
                    amp_status s = run_window(win_ops[op], si & 1 ? AMP_I32 : AMP_I64, sizes[si], per,
                                              ti == 0 && si == 3 ? -1 : (int64_t)dt, &y);
                    cr_assert_eq(s, AMP_OK, "%s: %s", win_ops[op], amp_context_last_error(ctx));
                    cr_assert_eq(y->dtype, dt);
                    cr_assert_eq(y->rank, 1);
                    cr_assert_eq(y->dims[0], sizes[si]);
                    const bool periodic = per != 0;
                    amp_tensor *ref;
                    cr_assert_eq(amp_tensor_create(ctx, dt, 1, &sizes[si], &ref), AMP_OK);
                    for (int64_t i = 0; i < sizes[si]; i++) {
                        double v = win_ref(op, i, sizes[si], periodic);
                        if (amp_dtype_is_float(dt)) amp_st(dt, ref->data, i, v);
                        else amp_sti(dt, ref->data, i, isnan(v) ? 0 : (int64_t)v);
                    }
                    if (sizes[si] == 1 && !periodic) {
                        /* 0 / 0 as the ONNX function computes it */
                        if (amp_dtype_is_float(dt)) cr_assert(isnan(tt_get(y, 0)), "%s size 1", win_ops[op]);
                    } else if (amp_dtype_is_float(dt)) {
                        /* values lie in [0, 1] and reach 0: an absolute bound, half an ulp at 1 */
                        const double tol = dt == AMP_F64 ? 1e-15 : dt == AMP_F32 ? 6e-8 : dt == AMP_F16 ? 5e-4 : 4e-3;
                        for (int64_t i = 0; i < sizes[si]; i++)
                            cr_assert(fabs(tt_get(y, i) - win_ref(op, i, sizes[si], periodic)) <= tol,
                                      "%s %s size %lld [%lld]: %.17g vs %.17g", win_ops[op], amp_dtype_name(dt),
                                      (long long)sizes[si], (long long)i, tt_get(y, i),
                                      win_ref(op, i, sizes[si], periodic));
                    } else {
                        /* integer outputs truncate: 1 only where the window reaches 1 */
                        for (int64_t i = 0; i < sizes[si]; i++) {
                            int64_t g = amp_ldi(dt, y->data, i), w = amp_ldi(dt, ref->data, i);
                            cr_assert_eq(g, w, "%s %s size %lld [%lld]: %lld vs %lld", win_ops[op],
                                         amp_dtype_name(dt), (long long)sizes[si], (long long)i, (long long)g,
                                         (long long)w);
                        }
                    }
                    amp_tensor_destroy(y);
                    amp_tensor_destroy(ref);
                }
}

/* Values from the ONNX node tests (test_hannwindow_symmetric, test_hammingwindow,
 * test_blackmanwindow_symmetric; size 10). */
Test(window, onnx_values) {
    static const double hann_sym[10] = {0, 0.11697116, 0.41315565, 0.7499732, 0.96983224,
                                        0.9698639, 0.75005364, 0.41324684, 0.11703071, 0};
    static const double hamming[10] = {0.0869565, 0.17413944, 0.40238917, 0.68452704, 0.9127922,
                                       1, 0.91284204, 0.6846076, 0.4024696, 0.17418906};
    static const double black_sym[10] = {-1.4901161e-08, 5.0866250e-02, 2.5798249e-01, 6.2996459e-01, 9.5110732e-01,
                                         9.5115799e-01, 6.3007075e-01, 2.5806355e-01, 5.0896604e-02, -2.2351742e-08};
    const double *want[3] = {hann_sym, hamming, black_sym};
    const int per[3] = {0, 1, 0};
    for (int op = 0; op < 3; op++) {
        amp_tensor *y = NULL;
        cr_assert_eq(run_window(win_ops[op], AMP_I64, 10, per[op], AMP_F32, &y), AMP_OK);
        for (int i = 0; i < 10; i++)
            cr_assert(fabs(tt_get(y, i) - want[op][i]) <= 1e-5 + 1e-3 * fabs(want[op][i]), "%s[%d]: %g vs %g",
                      win_ops[op], i, tt_get(y, i), want[op][i]);
        amp_tensor_destroy(y);
    }
}

Test(window, bad_inputs) {
    amp_tensor *y = (amp_tensor *)1;
    cr_assert_eq(run_window("HannWindow", AMP_I64, -1, -1, -1, &y), AMP_ERR_SHAPE);
    cr_assert_null(y);
    y = (amp_tensor *)1;
    cr_assert_eq(run_window("HannWindow", AMP_F32, 4, -1, -1, &y), AMP_ERR_UNSUPPORTED);
    cr_assert_null(y);
    y = (amp_tensor *)1;
    cr_assert_eq(run_window("HammingWindow", AMP_I64, 4, 2, -1, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_null(y);
    y = (amp_tensor *)1;
    cr_assert_eq(run_window("BlackmanWindow", AMP_I64, 4, -1, AMP_BOOL, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_null(y);
    y = (amp_tensor *)1;
    cr_assert_eq(run_window("BlackmanWindow", AMP_I64, 4, -1, AMP_U16, &y), AMP_ERR_UNSUPPORTED);
    cr_assert_null(y);
    y = (amp_tensor *)1;
    cr_assert_eq(run_window("BlackmanWindow", AMP_I64, 4, -1, 99, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_null(y);
    /* a 2-D size */
    const int64_t d2[2] = {1, 1};
    amp_tensor *s = tt_make(ctx, AMP_I64, 2, d2, (const double[]){4});
    amp_test_node *t = tn_new(ctx, "HannWindow");
    y = (amp_tensor *)1;
    cr_assert_eq(tn_run(t, 1, &s, 1, &y), AMP_ERR_SHAPE);
    cr_assert_null(y);
    amp_tensor_destroy(s);
    /* a size not known while planning: the output shape is data-dependent */
    amp_tinfo ti = {.dtype = AMP_I64, .rank = 0, .value = NULL}, to;
    memset(&to, 0, sizeof to);
    const amp_tinfo *pin[1] = {&ti};
    amp_tinfo *pout[1] = {&to};
    int ids_in[1] = {0}, ids_out[1] = {1};
    t->node.inputs = ids_in;
    t->node.n_inputs = 1;
    t->node.outputs = ids_out;
    t->node.n_outputs = 1;
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 1, .nout = 1, .in = pin, .out = pout};
    cr_assert_eq(amp_op_table[t->node.op].infer(&c), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "data-dependent"), "%s", amp_context_last_error(ctx));
    tn_free(t);
}
