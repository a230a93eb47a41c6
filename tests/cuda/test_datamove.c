/* The data-movement family (backends/cuda/op_data.c, k_data.cu) on the emulator against the
 * CPU backend: Gather over every axis with int32 and int64 indices (negative ones included),
 * float dtypes and int64 and bool elements, empty tensors; GatherGrad with repeated and
 * negative indices (the sums in double in the indices' order: the CPU's bits); Transpose over
 * ranks 1..6 and many perms, every element size; Expand, Tile and TileGrad; Pad and PadGrad; Resize and ResizeGrad
 * (nearest bit for bit, linear and the gradients by rel L2: the sums run in another order);
 * Slice and SliceGrad with negative steps and
 * clamped ends; Concat, ConcatGrad, Split (sizes, num_outputs) and SplitGrad along every axis.
 * Copies and sums compare bit for bit; interpolation by relative L2 error. */
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_optest.h"

static const amp_dtype moved[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_I64, AMP_BOOL};

/* values of any moved dtype: floats from rnd, int64 and bool from labels */
static amp_tensor *data_of(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    if (dt == AMP_I64) return labels(dt, rank, dims, 1000, seed);
    if (dt == AMP_BOOL) return labels(dt, rank, dims, 2, seed);
    return rnd(dt, rank, dims, seed, -3, 3);
}

/* indices in [-len, len) of dtype it */
static amp_tensor *indices(amp_dtype it, int rank, const int64_t *dims, int64_t len, uint64_t seed) {
    amp_tensor *t = labels(it, rank, dims, 2 * len, seed);
    for (int64_t i = 0; t && i < t->numel; i++) amp_sti(it, t->data, i, amp_ldi(it, t->data, i) - len);
    return t;
}

static void t_gather(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int rank;
        int64_t dims[4];
        int irank;
        int64_t idims[2];
    } cases[] = {
        {2, {7, 5}, 1, {9}}, {3, {3, 33, 4}, 2, {2, 3}}, {1, {7}, 0, {0}}, {4, {2, 3, 5, 7}, 1, {1}},
        {2, {7, 5}, 1, {0}}, {3, {1, 6, 1}, 2, {3, 2}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int ax = -cases[c].rank; ax < cases[c].rank; ax++)
            for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++)
                for (int i64 = 0; i64 < 2; i64++) {
                    int a = ax < 0 ? ax + cases[c].rank : ax;
                    amp_tensor *in[2] = {data_of(moved[d], cases[c].rank, cases[c].dims, c + 3),
                                         indices(i64 ? AMP_I64 : AMP_I32, cases[c].irank, cases[c].idims,
                                                 cases[c].dims[a], c * 7 + d)};
                    tnode t;
                    tn_init(&t, "Gather", false);
                    tn_i(&t, "axis", ax);
                    CHECK_NODE(&t, 2, in, 1, true, 0.0, "Gather case %zu axis %d %s i%d", c, ax,
                               amp_dtype_name(moved[d]), i64 ? 64 : 32);
                    free_all(in, 2);
                }
}

static void t_gather_grad(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int rank;
        int64_t dims[4];
        int irank;
        int64_t idims[2];
    } cases[] = {
        {2, {7, 5}, 1, {19}}, {3, {3, 33, 4}, 2, {5, 3}}, {1, {7}, 0, {0}}, {2, {50, 33}, 2, {4, 16}},
        {2, {7, 5}, 1, {0}}, {4, {2, 3, 5, 7}, 1, {1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int ax = -cases[c].rank; ax < cases[c].rank; ax++)
            for (int d = 0; d < 3; d++)
                for (int i64 = 0; i64 < 2; i64++) {
                    int r = cases[c].rank, a = ax < 0 ? ax + r : ax;
                    /* dY: dX's dims with the axis replaced by the indices' dims */
                    int64_t yd[8];
                    int yr = 0;
                    for (int q = 0; q < r; q++) {
                        if (q != a) {
                            yd[yr++] = cases[c].dims[q];
                            continue;
                        }
                        for (int j = 0; j < cases[c].irank; j++) yd[yr++] = cases[c].idims[j];
                    }
                    int64_t r64 = r;
                    amp_tensor *in[3] = {rnd(kfloats[d], yr, yd, c + 11, -2, 2), tens(AMP_I64, 1, &r64),
                                         indices(i64 ? AMP_I64 : AMP_I32, cases[c].irank, cases[c].idims,
                                                 cases[c].dims[a], c * 5 + d)};
                    memcpy(in[1]->data, cases[c].dims, sizeof(int64_t) * (size_t)r);
                    tnode t;
                    tn_init(&t, "GatherGrad", true);
                    tn_i(&t, "axis", ax);
                    CHECK_NODE(&t, 3, in, 1, true, 0.0, "GatherGrad case %zu axis %d %s i%d", c, ax,
                               amp_dtype_name(kfloats[d]), i64 ? 64 : 32);
                    free_all(in, 3);
                }
}

static void t_transpose(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int rank;
        int64_t dims[6];
        int64_t perm[6];
        bool noperm;
    } cases[] = {
        {1, {7}, {0}, false},
        {2, {33, 7}, {1, 0}, false},
        {2, {5, 9}, {0}, true},
        {3, {2, 3, 5}, {0, 2, 1}, false},
        {3, {2, 3, 5}, {2, 0, 1}, false},
        {4, {2, 5, 7, 3}, {0, 2, 3, 1}, false},
        {4, {2, 3, 7, 5}, {0, 3, 1, 2}, false},
        {4, {3, 1, 5, 1}, {3, 2, 0, 1}, false},
        {4, {2, 4, 3, 5}, {0, 2, 1, 3}, false},
        {5, {2, 3, 1, 4, 5}, {4, 0, 3, 1, 2}, false},
        {6, {2, 1, 3, 2, 5, 3}, {5, 3, 1, 0, 4, 2}, false},
        {3, {2, 0, 5}, {2, 1, 0}, false},
        {3, {4, 5, 6}, {0, 1, 2}, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++) {
            amp_tensor *x = data_of(moved[d], cases[c].rank, cases[c].dims, c + 1);
            tnode t;
            tn_init(&t, "Transpose", false);
            if (!cases[c].noperm) tn_is(&t, "perm", cases[c].rank, cases[c].perm);
            CHECK_NODE(&t, 1, &x, 1, true, 0.0, "Transpose case %zu %s", c, amp_dtype_name(moved[d]));
            free_all(&x, 1);
        }
}

/* Expand: rank growth, broadcast dims of 1 anywhere, a shape entry of 1 kept, empty */
static void t_expand(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int xr, sr;
        int64_t xd[4], sh[5];
    } cases[] = {
        {1, 2, {7}, {5, 7}},          {2, 3, {3, 1}, {2, 3, 33}},     {3, 3, {1, 5, 1}, {4, 5, 3}},
        {1, 4, {1}, {2, 3, 1, 5}},    {2, 2, {3, 4}, {1, 1}},         {4, 5, {2, 1, 3, 1}, {2, 2, 5, 3, 7}},
        {2, 2, {1, 4}, {0, 4}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++) {
            amp_tensor *in[2] = {data_of(moved[d], cases[c].xr, cases[c].xd, c + 4), ints1(cases[c].sh, cases[c].sr)};
            tnode t;
            tn_init(&t, "Expand", false);
            CHECK_NODE(&t, 2, in, 1, true, 0.0, "Expand case %zu %s", c, amp_dtype_name(moved[d]));
            free_all(in, 2);
        }
}

static amp_tensor *f32s(int n, const float *v) {
    int64_t nn = n;
    amp_tensor *t = tens(AMP_F32, 1, &nn);
    if (t) memcpy(t->data, v, sizeof(float) * (size_t)n);
    return t;
}

/* Resize (opset 13: X, roi, scales, sizes) and its gradient over the U-Net's x2 upsamplings
 * (nearest, bilinear) and other coordinate modes, scales or sizes, down- and odd sizes */
static void t_resize(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        const char *mode, *ctm;
        int64_t dims[4];
        float scales[4];
        int64_t sizes[4];
    } cases[] = {
        {"nearest", "asymmetric", {2, 3, 8, 8}, {1, 1, 2, 2}, {0}},
        {"nearest", "half_pixel", {1, 2, 5, 7}, {1, 1, 2, 3}, {0}},
        {"linear", "half_pixel", {2, 3, 8, 8}, {1, 1, 2, 2}, {0}},
        {"linear", "align_corners", {1, 2, 5, 7}, {0}, {1, 2, 11, 13}},
        {"linear", "asymmetric", {1, 1, 9, 6}, {1, 1, 0.5f, 1}, {0}},
        {"linear", "pytorch_half_pixel", {2, 1, 1, 7}, {0}, {2, 1, 1, 33}},
        {"nearest", "asymmetric", {3, 16}, {1, 2}, {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int r = cases[c].dims[2] == 0 ? 2 : 4;
        if (c == 6) r = 2;
        bool by_sizes = cases[c].sizes[0] != 0;
        for (int d = 0; d < 3; d++) {
            amp_tensor *in[4] = {rnd(kfloats[d], r, cases[c].dims, c + 21, -2, 2), NULL,
                                 by_sizes ? NULL : f32s(r, cases[c].scales),
                                 by_sizes ? ints1(cases[c].sizes, r) : NULL};
            tnode t;
            tn_init(&t, "Resize", false);
            tn_s(&t, "mode", cases[c].mode);
            tn_s(&t, "coordinate_transformation_mode", cases[c].ctm);
            bool exact = strcmp(cases[c].mode, "nearest") == 0;
            CHECK_NODE(&t, 4, in, 1, exact, exact ? 0.0 : tol_of(kfloats[d]), "Resize case %zu %s", c,
                       amp_dtype_name(kfloats[d]));
            amp_tensor *y[1];
            CT_CHECK(infer_outputs(&t, 4, in, 1, y) == AMP_OK, "infer the resize");
            int64_t rr = r;
            amp_tensor *g[5] = {rnd(kfloats[d], y[0]->rank, y[0]->dims, c + 31, -2, 2), tens(AMP_I64, 1, &rr), NULL,
                                in[2], in[3]};
            memcpy(g[1]->data, cases[c].dims, sizeof(int64_t) * (size_t)r);
            tn_init(&t, "ResizeGrad", true);
            tn_s(&t, "fwd_op", "Resize");
            tn_i(&t, "fwd_opset", 17);
            tn_s(&t, "mode", cases[c].mode);
            tn_s(&t, "coordinate_transformation_mode", cases[c].ctm);
            CHECK_NODE(&t, 5, g, 1, false, tol_of(kfloats[d]), "ResizeGrad case %zu %s", c, amp_dtype_name(kfloats[d]));
            free_all(y, 1);
            free_all(g, 2);
            free_all(in, 4);
        }
    }
    worst_print();
}

/* Tile and TileGrad (bit for bit: double sums in row-major order of the repeats match the
 * CPU's): repeats of 1 and more on every axis, ranks 1..4, an empty repeat */
static void t_tile(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int r;
        int64_t dims[4], reps[4];
    } cases[] = {
        {1, {7}, {3}},          {2, {3, 5}, {2, 1}}, {3, {2, 1, 5}, {1, 4, 2}}, {4, {2, 3, 1, 33}, {2, 2, 3, 1}},
        {2, {4, 3}, {0, 2}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++) {
            amp_tensor *in[2] = {data_of(moved[d], cases[c].r, cases[c].dims, c + 8), ints1(cases[c].reps, cases[c].r)};
            tnode t;
            tn_init(&t, "Tile", false);
            CHECK_NODE(&t, 2, in, 1, true, 0.0, "Tile case %zu %s", c, amp_dtype_name(moved[d]));
            if (d < 3) {
                /* TileGrad(dY, shape): dY of Tile's output shape, with one more leading dim
                 * (Expand's gradient) */
                amp_tensor *y[1];
                CT_CHECK(infer_outputs(&t, 2, in, 1, y) == AMP_OK, "infer the tile");
                int64_t yd[5] = {3}, rx = cases[c].r;
                memcpy(yd + 1, y[0]->dims, sizeof(int64_t) * (size_t)rx);
                for (int lead = 0; lead < 2; lead++) {
                    amp_tensor *g[2] = {rnd(moved[d], (int)rx + lead, lead ? yd : y[0]->dims, c + 50, -2, 2),
                                        ints1(cases[c].dims, rx)};
                    tn_init(&t, "TileGrad", true);
                    CHECK_NODE(&t, 2, g, 1, true, 0.0, "TileGrad case %zu %s lead %d", c,
                               amp_dtype_name(moved[d]), lead);
                    free_all(g, 2);
                }
                free_all(y, 1);
            }
            free_all(in, 2);
        }
}

/* Pad (constant with and without a value, edge; negative pads crop; axes) and PadGrad of
 * constant mode, bit for bit */
static void t_pad(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int r, na;
        int64_t dims[4], pads[8], axes[4];
        const char *mode;
    } cases[] = {
        {1, 0, {7}, {2, 3}, {0}, "constant"},
        {2, 0, {3, 5}, {1, 0, 2, 1}, {0}, "constant"},
        {4, 0, {2, 3, 5, 7}, {0, 0, 1, 1, 0, 0, 1, 1}, {0}, "constant"},
        {3, 2, {2, 5, 4}, {1, -1, 2, 3}, {-1, 1}, "constant"},
        {2, 0, {3, 5}, {2, 1, 1, 3}, {0}, "edge"},
        {3, 0, {2, 0, 3}, {0, 1, 1, 0, 2, 0}, {0}, "constant"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++) {
            int np = 2 * (cases[c].na ? cases[c].na : cases[c].r), nin = cases[c].na ? 4 : 3;
            amp_tensor *cv = tens(moved[d], 0, NULL);
            amp_sti(moved[d], cv->data, 0, 1);
            amp_tensor *in[4] = {data_of(moved[d], cases[c].r, cases[c].dims, c + 60), ints1(cases[c].pads, np),
                                 c % 2 ? cv : NULL, cases[c].na ? ints1(cases[c].axes, cases[c].na) : NULL};
            if (!in[2]) amp_tensor_destroy(cv);
            tnode t;
            tn_init(&t, "Pad", false);
            tn_s(&t, "mode", cases[c].mode);
            CHECK_NODE(&t, nin, in, 1, true, 0.0, "Pad case %zu %s", c, amp_dtype_name(moved[d]));
            if (d < 3 && strcmp(cases[c].mode, "constant") == 0) {
                amp_tensor *y[1];
                CT_CHECK(infer_outputs(&t, nin, in, 1, y) == AMP_OK, "infer the pad");
                int64_t rr = cases[c].r;
                amp_tensor *g[4] = {rnd(moved[d], y[0]->rank, y[0]->dims, c + 70, -2, 2), tens(AMP_I64, 1, &rr), in[1],
                                    in[3]};
                memcpy(g[1]->data, cases[c].dims, sizeof(int64_t) * (size_t)rr);
                tn_init(&t, "PadGrad", true);
                CHECK_NODE(&t, nin, g, 1, true, 0.0, "PadGrad case %zu %s", c, amp_dtype_name(moved[d]));
                free_all(g, 2);
                free_all(y, 1);
            }
            free_all(in, 4);
        }
}

static amp_tensor *i64s(int n, const int64_t *v) { return ints1(v, n); }

/* Slice and its gradient over the same parameters: negative starts and steps, clamped ends,
 * axes given or not, an empty result */
static void t_slice(void) {
    CT_CHECK(setup(), "setup");
    static const struct {
        int rank;
        int64_t dims[5];
        int ns;
        int64_t st[3], en[3], ax[3], sp[3];
        bool axes, steps;
    } cases[] = {
        {1, {7}, 1, {1}, {6}, {0}, {1}, false, false},
        {2, {7, 33}, 1, {-5}, {100}, {-1}, {2}, true, true},
        {3, {3, 5, 7}, 2, {-1, 1}, {-100, 5}, {2, 0}, {-2, 1}, true, true},
        {4, {2, 3, 5, 7}, 3, {0, 1, 4}, {2, 3, -1}, {0, 1, 2}, {1, 1, -1}, false, true},
        {2, {4, 6}, 1, {3}, {3}, {1}, {1}, true, false},
        {5, {2, 3, 2, 5, 3}, 2, {1, 4}, {2, 0}, {1, 3}, {1, -3}, true, true},
        {3, {4, 5, 6}, 1, {1}, {3}, {0}, {1}, true, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++) {
            int ns = cases[c].ns, nin = cases[c].steps ? 5 : cases[c].axes ? 4 : 3;
            amp_tensor *in[5] = {data_of(moved[d], cases[c].rank, cases[c].dims, c + 2), i64s(ns, cases[c].st),
                                 i64s(ns, cases[c].en), i64s(ns, cases[c].ax), i64s(ns, cases[c].sp)};
            tnode t;
            tn_init(&t, "Slice", false);
            CHECK_NODE(&t, nin, in, 1, true, 0.0, "Slice case %zu %s", c, amp_dtype_name(moved[d]));
            /* SliceGrad(dY, shape, starts, ends, axes, steps) with dY the slice's shape; the CPU
             * sums, so takes float types only */
            if (d >= 3) {
                free_all(in, 5);
                continue;
            }
            amp_tensor *y[1];
            CT_CHECK(infer_outputs(&t, nin, in, 1, y) == AMP_OK, "infer the slice");
            int64_t r = cases[c].rank;
            amp_tensor *g[6] = {data_of(moved[d], y[0]->rank, y[0]->dims, c + 9), tens(AMP_I64, 1, &r), in[1], in[2],
                                in[3], in[4]};
            memcpy(g[1]->data, cases[c].dims, sizeof(int64_t) * (size_t)r);
            tn_init(&t, "SliceGrad", true);
            CHECK_NODE(&t, nin + 1, g, 1, true, 0.0, "SliceGrad case %zu %s", c, amp_dtype_name(moved[d]));
            free_all(y, 1);
            free_all(g, 2);
            free_all(in, 5);
        }
}

/* Concat and ConcatGrad, Split (sizes as an input, or even parts) and SplitGrad (one gradient
 * absent) along every axis */
static void t_concat_split(void) {
    CT_CHECK(setup(), "setup");
    int64_t base[4] = {2, 3, 5, 4}, lens[3] = {2, 1, 4};
    for (int r = 1; r <= 4; r++)
        for (int ax = -r; ax < r; ax++)
            for (size_t d = 0; d < sizeof moved / sizeof moved[0]; d++) {
                int a = ax < 0 ? ax + r : ax;
                amp_tensor *in[3], *sh[3];
                int64_t shapes[12], wdims[4];
                memcpy(wdims, base, sizeof wdims);
                wdims[a] = 7;
                for (int i = 0; i < 3; i++) {
                    int64_t dims[4];
                    memcpy(dims, base, sizeof dims);
                    dims[a] = lens[i];
                    in[i] = data_of(moved[d], r, dims, (uint64_t)(i + 3 * r + d));
                    memcpy(shapes + i * r, dims, sizeof(int64_t) * (size_t)r);
                }
                tnode t;
                tn_init(&t, "Concat", false);
                tn_i(&t, "axis", ax);
                CHECK_NODE(&t, 3, in, 1, true, 0.0, "Concat rank %d axis %d %s", r, ax, amp_dtype_name(moved[d]));
                amp_tensor *w = data_of(moved[d], r, wdims, (uint64_t)(40 + r)), *shp = ints1(shapes, 3 * r);
                amp_tensor *cg[2] = {w, shp};
                tn_init(&t, "ConcatGrad", true);
                tn_i(&t, "axis", ax);
                CHECK_NODE(&t, 2, cg, 3, true, 0.0, "ConcatGrad rank %d axis %d %s", r, ax, amp_dtype_name(moved[d]));
                amp_tensor *sp[2] = {w, ints1(lens, 3)};
                tn_init(&t, "Split", false);
                tn_i(&t, "axis", ax);
                CHECK_NODE(&t, 2, sp, 3, true, 0.0, "Split sizes rank %d axis %d %s", r, ax, amp_dtype_name(moved[d]));
                amp_tensor *sg[4] = {shp, in[0], NULL, in[2]};
                tn_init(&t, "SplitGrad", true);
                tn_i(&t, "axis", ax);
                CHECK_NODE(&t, 4, sg, 1, true, 0.0, "SplitGrad rank %d axis %d %s", r, ax, amp_dtype_name(moved[d]));
                sh[0] = sp[1];
                free_all(sh, 1);
                free_all(cg, 2);
                free_all(in, 3);
            }
    /* opset 18: num_outputs, uneven last part */
    int64_t dims[2] = {3, 8};
    amp_tensor *x = rnd(AMP_BF16, 2, dims, 5, -1, 1);
    tnode t;
    tn_init(&t, "Split", false);
    t.opset = 18;
    tn_i(&t, "axis", -1);
    tn_i(&t, "num_outputs", 3);
    CHECK_NODE(&t, 1, &x, 3, true, 0.0, "Split num_outputs 3 of 8");
    free_all(&x, 1);
}

/* GatherGrad of f64 runs on the CPU but not here: supports says no, prepare says why. */
static void t_refused(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[2] = {4, 3}, n = 2, r = 2, iv[2] = {1, -1};
    amp_tensor *in[3] = {rnd(AMP_F64, 2, (int64_t[]){2, 3}, 1, -1, 1), tens(AMP_I64, 1, &r), ints1(iv, n)}, *out[1];
    memcpy(in[1]->data, dims, sizeof dims);
    tnode t;
    tn_init(&t, "GatherGrad", true);
    CT_CHECK(infer_outputs(&t, 3, in, 1, out) == AMP_OK, "infer");
    const amp_cuda_op *e = entry_of(AMP_OP_GATHER_GRAD);
    CT_CHECK(e != NULL, "GatherGrad has an entry");
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = t.opset, .nin = 3, .nout = 1, .in = in, .out = out};
    void *state = NULL;
    size_t ws = 0;
    CT_CHECK(!e->supports(&cu, &k), "f64 GatherGrad is not supported");
    amp_status s = e->prepare(&cu, &k, &state, &ws);
    const char *msg = amp_context_last_error(ctx);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED && strstr(msg, "GatherGrad") && strstr(msg, "f16"), "prepare: %s %s",
             amp_status_name(s), msg);
    free_all(out, 1);
    free_all(in, 3);
    /* cubic Resize: not here */
    int64_t xd[4] = {1, 1, 4, 4};
    float sc[4] = {1, 1, 2, 2};
    amp_tensor *rin[3] = {rnd(AMP_F32, 4, xd, 3, -1, 1), NULL, f32s(4, sc)};
    tn_init(&t, "Resize", false);
    tn_s(&t, "mode", "cubic");
    CT_CHECK(infer_outputs(&t, 3, rin, 1, out) == AMP_OK, "infer");
    amp_kernel kr = {.ctx = ctx, .n = &t.n, .opset = t.opset, .nin = 3, .nout = 1, .in = rin, .out = out};
    e = entry_of(AMP_OP_RESIZE);
    CT_CHECK(e && !e->supports(&cu, &kr), "cubic Resize is not supported");
    s = e->prepare(&cu, &kr, &state, &ws);
    msg = amp_context_last_error(ctx);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED && strstr(msg, "Resize") && strstr(msg, "nearest and linear"), "prepare: %s %s",
             amp_status_name(s), msg);
    free_all(out, 1);
    free_all(rin, 3);
}

static const ct_case cases[] = {
    {"gather", t_gather},
    {"gather_grad", t_gather_grad},
    {"transpose", t_transpose},
    {"expand", t_expand},
    {"tile", t_tile},
    {"pad", t_pad},
    {"resize", t_resize},
    {"slice", t_slice},
    {"concat_split", t_concat_split},
    {"refused", t_refused},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }
