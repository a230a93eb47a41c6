/* RNN, GRU and LSTM (ir/ops/rnn.c, backends/cpu/rnn.c) against reference loops written here:
 * one batch row, one direction and one step at a time in double, straight from the ONNX
 * equations. Every dtype (f16 and bf16 against the reference on their rounded inputs), both
 * layouts, every direction, sequence_lens (rows shorter than the sequence, rows of length
 * zero), every optional input, output subsets, every activation function with alpha and beta,
 * clip, GRU's linear_before_reset and LSTM's input_forget, odd and larger sizes (the threaded
 * row loop), and inputs that must be refused with the right status. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(rnn, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t seed_next = 1;

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

/* ---- the reference ---------------------------------------------------------------------------- */

typedef struct rcase {
    const char *op;        /* "RNN", "GRU", "LSTM" */
    const char *dir;       /* "forward", "reverse", "bidirectional" */
    int layout;
    int64_t S, B, I, H;
    bool bias, h0, c0, peep;
    int lens;              /* 0: none; 1: random in [1, S]; 2: random in [0, S] with a zero */
    int lbr, input_forget;
    int nacts;             /* 0: attribute absent */
    const char *acts[6];
    int nal, nbe;          /* 0: attribute absent */
    float al[6], be[6];
    float clip;            /* 0: attribute absent */
    int nout;              /* outputs asked for (0: all) */
    int64_t opset;         /* 0: 14 */
} rcase;

static int gates_of(const char *op) { return !strcmp(op, "RNN") ? 1 : !strcmp(op, "GRU") ? 3 : 4; }
static int nacts_of(const char *op) { return !strcmp(op, "RNN") ? 1 : !strcmp(op, "GRU") ? 2 : 3; }
static int dirs_of(const rcase *c) { return !strcmp(c->dir, "bidirectional") ? 2 : 1; }

typedef struct ract {
    char name[32];
    double a, b;
} ract;

static bool name_is(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if ((*a | 32) != (*b | 32)) return false;
    return *a == *b;
}

static double apply(const ract *f, double x) {
    const char *n = f->name;
    if (name_is(n, "Relu")) return x > 0 ? x : 0;
    if (name_is(n, "Tanh")) return tanh(x);
    if (name_is(n, "Sigmoid")) return 1 / (1 + exp(-x));
    if (name_is(n, "Affine")) return f->a * x + f->b;
    if (name_is(n, "LeakyRelu")) return x >= 0 ? x : f->a * x;
    if (name_is(n, "ThresholdedRelu")) return x > f->a ? x : 0;
    if (name_is(n, "ScaledTanh")) return f->a * tanh(f->b * x);
    if (name_is(n, "HardSigmoid")) return fmax(0, fmin(1, f->a * x + f->b));
    if (name_is(n, "Elu")) return x >= 0 ? x : f->a * (exp(x) - 1);
    if (name_is(n, "Softsign")) return x / (1 + fabs(x));
    if (name_is(n, "Softplus")) return log(1 + exp(x));
    cr_assert_fail("unknown activation %s", n);
    return 0;
}

/* The case's functions with their alpha and beta: the attribute lists are read in order by the
 * functions that take a value; missing values take the ONNX op's default. */
static void resolve(const rcase *c, ract *f) {
    const int nf = nacts_of(c->op), D = dirs_of(c);
    int ia = 0, ib = 0;
    for (int i = 0; i < nf * D; i++) {
        const char *n = c->nacts ? c->acts[i] : (!strcmp(c->op, "RNN") || i % nf ? "Tanh" : "Sigmoid");
        snprintf(f[i].name, sizeof f[i].name, "%s", n);
        bool ua = false, ub = false;
        double da = 0, db = 0;
        if (name_is(n, "Affine")) ua = ub = true, da = 1, db = 0;
        if (name_is(n, "LeakyRelu")) ua = true, da = 0.01;
        if (name_is(n, "ThresholdedRelu")) ua = true, da = 1;
        if (name_is(n, "ScaledTanh")) ua = ub = true, da = 1, db = 1;
        if (name_is(n, "HardSigmoid")) ua = ub = true, da = 0.2, db = 0.5;
        if (name_is(n, "Elu")) ua = true, da = 1;
        f[i].a = ua && ia < c->nal ? c->al[ia++] : da;
        f[i].b = ub && ib < c->nbe ? c->be[ib++] : db;
        /* the kernel reads float attributes: so does the reference */
        f[i].a = (float)f[i].a;
        f[i].b = (float)f[i].b;
    }
}

static double clipv(const rcase *c, double x) { return c->clip > 0 ? fmax(-c->clip, fmin(c->clip, x)) : x; }

/* Inputs (any float dtype; sequence_lens int32) to outputs Y, Y_h, Y_c in f64. */
static void reference(const rcase *c, amp_tensor *const *in, amp_tensor **ref) {
    const int64_t S = c->S, B = c->B, I = c->I, H = c->H, D = dirs_of(c), G = gates_of(c->op), GH = G * H;
    const bool lstm = G == 4, gru = G == 3;
    const amp_tensor *X = in[0], *W = in[1], *R = in[2], *Bi = in[3], *SL = in[4], *H0 = in[5];
    const amp_tensor *C0 = lstm ? in[6] : NULL, *P = lstm ? in[7] : NULL;
    ract f[6];
    resolve(c, f);
    const int nf = nacts_of(c->op);
    const int64_t yd[4] = {c->layout ? B : S, c->layout ? S : D, c->layout ? D : B, H};
    const int64_t hd[3] = {c->layout ? B : D, c->layout ? D : B, H};
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, 4, yd, &ref[0]), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, 3, hd, &ref[1]), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, 3, hd, &ref[2]), AMP_OK);
    double *Y = ref[0]->data, *Yh = ref[1]->data, *Yc = ref[2]->data;
    memset(Y, 0, ref[0]->nbytes);
    double *h = calloc((size_t)H, sizeof(double)), *cs = calloc((size_t)H, sizeof(double));
    double *g = calloc((size_t)GH, sizeof(double)), *hn = calloc((size_t)H, sizeof(double));
#define XAT(t, b, i) tt_get(X, (c->layout ? ((b)*S + (t)) : ((t)*B + (b))) * I + (i))
#define ST(d, b) ((c->layout ? (b)*D + (d) : (d)*B + (b)) * H)
#define YAT(t, d, b) ((c->layout ? ((b)*S + (t)) * D + (d) : ((t)*D + (d)) * B + (b)) * H)
    for (int64_t d = 0; d < D; d++) {
        const bool back = !strcmp(c->dir, "reverse") || d == 1;
        const ract *ff = &f[d * nf], *fg = nf > 1 ? &f[d * nf + 1] : NULL, *fh = nf > 2 ? &f[d * nf + 2] : NULL;
        for (int64_t b = 0; b < B; b++) {
            const int64_t len = SL ? amp_ldi(SL->dtype, SL->data, b) : S;
            for (int64_t k = 0; k < H; k++) {
                h[k] = H0 ? tt_get(H0, ST(d, b) + k) : 0;
                cs[k] = C0 ? tt_get(C0, ST(d, b) + k) : 0;
            }
            for (int64_t step = 0; step < len; step++) {
                const int64_t t = back ? len - 1 - step : step;
                /* Wb + X W^T and Rb + H R^T per gate row */
                double xw[4 * 64], hr[4 * 64];
                cr_assert(GH <= 4 * 64);
                for (int64_t gi = 0; gi < GH; gi++) {
                    double sx = Bi ? tt_get(Bi, d * 2 * GH + gi) : 0, sh = Bi ? tt_get(Bi, d * 2 * GH + GH + gi) : 0;
                    for (int64_t i = 0; i < I; i++) sx += XAT(t, b, i) * tt_get(W, (d * GH + gi) * I + i);
                    for (int64_t i = 0; i < H; i++) sh += h[i] * tt_get(R, (d * GH + gi) * H + i);
                    xw[gi] = sx;
                    hr[gi] = sh;
                }
                if (G == 1) {
                    for (int64_t k = 0; k < H; k++) hn[k] = apply(ff, clipv(c, xw[k] + hr[k]));
                } else if (gru) {
                    for (int64_t k = 0; k < H; k++) {
                        g[k] = apply(ff, clipv(c, xw[k] + hr[k]));
                        g[H + k] = apply(ff, clipv(c, xw[H + k] + hr[H + k]));
                    }
                    for (int64_t k = 0; k < H; k++) {
                        double pre;
                        if (c->lbr) { /* GRU only */
                            pre = xw[2 * H + k] + g[H + k] * hr[2 * H + k];
                        } else {
                            /* (r (.) H) Rh^T + Rbh */
                            double s = Bi ? tt_get(Bi, d * 2 * GH + GH + 2 * H + k) : 0;
                            for (int64_t i = 0; i < H; i++)
                                s += g[H + i] * h[i] * tt_get(R, (d * GH + 2 * H + k) * H + i);
                            pre = xw[2 * H + k] + s;
                        }
                        const double n = apply(fg, clipv(c, pre));
                        hn[k] = (1 - g[k]) * n + g[k] * h[k];
                    }
                } else {
                    for (int64_t k = 0; k < H; k++) {
                        const double pi = P ? tt_get(P, d * 3 * H + k) : 0, po = P ? tt_get(P, d * 3 * H + H + k) : 0;
                        const double pf = P ? tt_get(P, d * 3 * H + 2 * H + k) : 0;
                        const double it = apply(ff, clipv(c, xw[k] + hr[k] + pi * cs[k]));
                        const double ft =
                            c->input_forget ? 1 - it : apply(ff, clipv(c, xw[2 * H + k] + hr[2 * H + k] + pf * cs[k]));
                        const double ct = apply(fg, clipv(c, xw[3 * H + k] + hr[3 * H + k]));
                        const double cn = ft * cs[k] + it * ct;
                        const double ot = apply(ff, clipv(c, xw[H + k] + hr[H + k] + po * cn));
                        hn[k] = ot * apply(fh, cn);
                        g[k] = cn;
                    }
                    for (int64_t k = 0; k < H; k++) cs[k] = g[k];
                }
                for (int64_t k = 0; k < H; k++) h[k] = hn[k];
                for (int64_t k = 0; k < H; k++) Y[YAT(t, d, b) + k] = h[k];
            }
            for (int64_t k = 0; k < H; k++) {
                Yh[ST(d, b) + k] = len > 0 ? h[k] : 0;
                Yc[ST(d, b) + k] = len > 0 ? cs[k] : 0;
            }
        }
    }
#undef XAT
#undef ST
#undef YAT
    free(h);
    free(cs);
    free(g);
    free(hn);
}

/* ---- running a case --------------------------------------------------------------------------- */

static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi) {
    return tt_rand(ctx, dt, rank, dims, lo, hi, seed_next++);
}

/* The case's inputs in dtype dt; in[] has 8 slots, NULL where omitted. */
static int make_inputs(const rcase *c, amp_dtype dt, amp_tensor **in) {
    const int64_t D = dirs_of(c), G = gates_of(c->op), S = c->S, B = c->B, I = c->I, H = c->H;
    const bool lstm = G == 4;
    const int64_t xd[3] = {c->layout ? B : S, c->layout ? S : B, I};
    const int64_t wd[3] = {D, G * H, I}, rd[3] = {D, G * H, H}, bd[2] = {D, 2 * G * H};
    const int64_t hd[3] = {c->layout ? B : D, c->layout ? D : B, H}, pd[2] = {D, 3 * H};
    memset(in, 0, sizeof(amp_tensor *) * 8);
    const double ws = 1.0 / sqrt((double)(I + H) + 1);
    in[0] = rnd(dt, 3, xd, -1.5, 1.5);
    in[1] = rnd(dt, 3, wd, -2 * ws, 2 * ws);
    in[2] = rnd(dt, 3, rd, -2 * ws, 2 * ws);
    if (c->bias) in[3] = rnd(dt, 2, bd, -0.5, 0.5);
    if (c->lens && B > 0 && S > 0) {
        double *lv = malloc(sizeof(double) * (size_t)B);
        for (int64_t b = 0; b < B; b++) lv[b] = (double)((b * 7 + seed_next) % (uint64_t)(S + (c->lens == 2)));
        for (int64_t b = 0; b < B; b++)
            if (c->lens == 1) lv[b] += 1;
        if (c->lens == 2) lv[B / 2] = 0;
        lv[B - 1] = (double)S; /* one full row */
        in[4] = tt_make(ctx, AMP_I32, 1, &B, lv);
        free(lv);
        seed_next++;
    }
    if (c->h0) in[5] = rnd(dt, 3, hd, -1, 1);
    if (lstm && c->c0) in[6] = rnd(dt, 3, hd, -1, 1);
    if (lstm && c->peep) in[7] = rnd(dt, 2, pd, -0.5, 0.5);
    int n = lstm ? 8 : 6;
    while (n > 3 && !in[n - 1]) n--; /* trailing omitted inputs left off the node */
    return n;
}

static void set_strings(amp_test_node *t, const char *name, int n, const char *const *v) {
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = (char *)name;
    a->kind = AMP_ATTR_STRINGS;
    a->strings = (char **)v; /* static strings: tn_free leaves string lists alone */
    a->n = n;
}

static amp_test_node *make_node(const rcase *c) {
    amp_test_node *t = tn_new(ctx, c->op);
    t->opset = c->opset ? c->opset : 14;
    tn_int(t, "hidden_size", c->H);
    if (strcmp(c->dir, "forward")) tn_str(t, "direction", c->dir);
    if (c->layout) tn_int(t, "layout", c->layout);
    if (c->lbr && !strcmp(c->op, "GRU")) tn_int(t, "linear_before_reset", 1);
    if (c->input_forget && !strcmp(c->op, "LSTM")) tn_int(t, "input_forget", 1);
    if (c->nacts) set_strings(t, "activations", c->nacts, c->acts);
    if (c->nal) tn_floats(t, "activation_alpha", c->nal, c->al);
    if (c->nbe) tn_floats(t, "activation_beta", c->nbe, c->be);
    if (c->clip > 0) tn_float(t, "clip", c->clip);
    return t;
}

static int nout_of(const rcase *c) {
    const int all = gates_of(c->op) == 4 ? 3 : 2;
    return c->nout ? c->nout : all;
}

/* Run the case in dtype dt and compare every output with the reference on the same (rounded)
 * inputs; tolerance on the normalised squared error. */
static void check(const rcase *c, amp_dtype dt, double tol) {
    amp_tensor *in[8], *out[3] = {0}, *ref[3] = {0};
    const int nin = make_inputs(c, dt, in), nout = nout_of(c);
    amp_test_node *t = make_node(c);
    amp_status s = tn_run(t, nin, in, nout, out);
    char what[256];
    snprintf(what, sizeof what, "%s %s %s layout %d S%lld B%lld I%lld H%lld lens#%d lbr %d if %d acts %d clip %g",
             c->op, c->dir, amp_dtype_name(dt), c->layout, (long long)c->S, (long long)c->B, (long long)c->I,
             (long long)c->H, c->lens, c->lbr, c->input_forget, c->nacts, (double)c->clip);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    reference(c, in, ref);
    for (int k = 0; k < nout; k++) {
        cr_assert_eq(out[k]->dtype, dt, "%s: output %d dtype", what, k);
        double e = tt_nse(out[k], ref[k]);
        cr_assert(e < tol, "%s: output %d nse %g", what, k, e);
    }
    tn_free(t);
    free_all(in, 8);
    free_all(out, 3);
    free_all(ref, 3);
}

static const amp_dtype float_types[4] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16};
static const double tols[4] = {1e-10, 1e-24, 1e-5, 1e-4};
static const char *const ops[3] = {"RNN", "GRU", "LSTM"};
static const char *const dirs[3] = {"forward", "reverse", "bidirectional"};

/* ---- forward semantics ------------------------------------------------------------------------ */

Test(rnn, every_op_dtype_direction_and_layout) {
    for (int o = 0; o < 3; o++)
        for (int d = 0; d < 3; d++)
            for (int layout = 0; layout < 2; layout++)
                for (int k = 0; k < 4; k++) {
                    rcase c = {.op = ops[o], .dir = dirs[d], .layout = layout, .S = 5, .B = 3, .I = 7, .H = 6,
                               .bias = true, .h0 = true, .c0 = true, .peep = true, .lens = layout + 1};
                    check(&c, float_types[k], tols[k]);
                }
}

Test(rnn, optional_inputs_each_way) {
    /* every subset of B, sequence_lens, initial_h (, initial_c, P) */
    for (int o = 0; o < 3; o++) {
        const int nopt = o == 2 ? 5 : 3;
        for (int m = 0; m < 1 << nopt; m++) {
            rcase c = {.op = ops[o], .dir = dirs[m % 3], .layout = (m >> 1) & 1, .S = 4, .B = 3, .I = 2, .H = 3,
                       .bias = m & 1, .lens = (m & 2) ? 2 : 0, .h0 = (m & 4) != 0, .c0 = (m & 8) != 0,
                       .peep = (m & 16) != 0};
            check(&c, AMP_F64, 1e-24);
        }
    }
}

Test(rnn, output_subsets) {
    for (int o = 0; o < 3; o++)
        for (int n = 1; n <= (o == 2 ? 3 : 2); n++) {
            rcase c = {.op = ops[o], .dir = "bidirectional", .S = 3, .B = 2, .I = 3, .H = 4, .bias = true,
                       .lens = 2, .nout = n};
            check(&c, AMP_F32, 1e-10);
        }
}

Test(rnn, odd_and_larger_sizes) {
    const int64_t sz[][4] = {{1, 1, 1, 1}, {7, 5, 3, 9}, {2, 13, 17, 11}, {11, 2, 1, 5}, {3, 64, 20, 64}};
    for (size_t z = 0; z < sizeof sz / sizeof sz[0]; z++)
        for (int o = 0; o < 3; o++)
            for (int lens = 0; lens < 3; lens++) {
                rcase c = {.op = ops[o], .dir = dirs[(z + (size_t)lens) % 3], .layout = (int)(z & 1), .S = sz[z][0],
                           .B = sz[z][1], .I = sz[z][2], .H = sz[z][3], .bias = true, .h0 = true, .c0 = true,
                           .peep = true, .lens = lens, .lbr = (int)(z & 1)};
                check(&c, AMP_F32, 1e-10);
                if (z == 4) check(&c, AMP_BF16, 1e-4); /* the threaded row loop, 16-bit */
            }
}

Test(rnn, every_activation_with_alpha_and_beta) {
    static const char *const names[11] = {"Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                                          "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"};
    for (int a = 0; a < 11; a++)
        for (int o = 0; o < 3; o++) {
            rcase c = {.op = ops[o], .dir = "bidirectional", .S = 4, .B = 3, .I = 3, .H = 5, .bias = true,
                       .h0 = true, .c0 = true, .lens = 1, .lbr = a & 1};
            const int nf = nacts_of(ops[o]);
            c.nacts = 2 * nf;
            /* the function under test in every slot of one direction, the defaults mixed in the other */
            for (int i = 0; i < nf; i++) {
                c.acts[i] = names[a];
                c.acts[nf + i] = i == 0 ? names[(a + 3) % 11] : "tanh";
            }
            if (a % 2 == 0) {
                /* explicit values, enough for every function */
                c.nal = c.nbe = 6;
                for (int i = 0; i < 6; i++) {
                    c.al[i] = 0.3f + 0.15f * (float)i;
                    c.be[i] = 0.6f - 0.1f * (float)i;
                }
            } else if (a % 4 == 1) {
                /* a short list: later functions fall back to the defaults */
                c.nal = 1;
                c.al[0] = 0.7f;
            }
            check(&c, AMP_F64, 1e-24);
            check(&c, AMP_F32, 1e-9);
        }
}

Test(rnn, clip_lbr_input_forget_and_case_of_names) {
    for (int o = 0; o < 3; o++)
        for (int v = 0; v < 4; v++) {
            rcase c = {.op = ops[o], .dir = dirs[v % 3], .layout = v & 1, .S = 6, .B = 4, .I = 3, .H = 4,
                       .bias = true, .h0 = true, .c0 = true, .peep = v < 2, .lens = 2,
                       .clip = v < 3 ? 0.4f + 0.3f * (float)v : 0, .lbr = v >> 1, .input_forget = v & 1};
            if (v == 3) {
                const int nf = nacts_of(ops[o]);
                c.nacts = nf;
                static const char *const lower[3] = {"sigmoid", "TANH", "tanh"};
                for (int i = 0; i < nf; i++) c.acts[i] = o == 0 ? "TaNh" : lower[i];
            }
            for (int k = 0; k < 4; k++) check(&c, float_types[k], tols[k]);
        }
}

Test(rnn, opset_7_without_layout) {
    for (int o = 0; o < 3; o++) {
        rcase c = {.op = ops[o], .dir = "reverse", .S = 3, .B = 2, .I = 4, .H = 3, .bias = true, .h0 = true,
                   .opset = 7};
        check(&c, AMP_F32, 1e-10);
    }
}

/* Rows of length zero keep Y zero and leave Y_h (and Y_c) zero, whatever the initial state. */
Test(rnn, zero_length_rows_and_empty_dims) {
    for (int o = 0; o < 3; o++) {
        rcase c = {.op = ops[o], .dir = "bidirectional", .S = 3, .B = 4, .I = 2, .H = 3, .h0 = true, .c0 = true,
                   .lens = 2};
        amp_tensor *in[8], *out[3] = {0};
        const int nin = make_inputs(&c, AMP_F32, in), nout = nout_of(&c);
        amp_test_node *t = make_node(&c);
        cr_assert_eq(tn_run(t, nin, in, nout, out), AMP_OK, "%s", amp_context_last_error(ctx));
        const int64_t zero_row = c.B / 2; /* make_inputs puts a zero length there */
        cr_assert_eq(amp_ldi(AMP_I32, in[4]->data, zero_row), 0);
        for (int k = 1; k < nout; k++)
            for (int d = 0; d < 2; d++)
                for (int64_t h = 0; h < c.H; h++) cr_assert_eq(tt_get(out[k], (d * c.B + zero_row) * c.H + h), 0.0);
        for (int64_t s = 0; s < c.S; s++)
            for (int d = 0; d < 2; d++)
                for (int64_t h = 0; h < c.H; h++)
                    cr_assert_eq(tt_get(out[0], ((s * 2 + d) * c.B + zero_row) * c.H + h), 0.0);
        tn_free(t);
        free_all(in, 8);
        free_all(out, 3);
    }
    /* an empty sequence, an empty batch, no input features */
    const int64_t shapes[3][4] = {{0, 2, 3, 4}, {3, 0, 3, 4}, {3, 2, 0, 4}};
    for (int z = 0; z < 3; z++)
        for (int o = 0; o < 3; o++) {
            rcase c = {.op = ops[o], .dir = dirs[z], .S = shapes[z][0], .B = shapes[z][1], .I = shapes[z][2],
                       .H = shapes[z][3], .bias = true, .h0 = true, .c0 = true};
            check(&c, AMP_F32, 1e-10);
        }
}

/* ---- bad inputs -------------------------------------------------------------------------------- */

static void expect_status(amp_test_node *t, int nin, amp_tensor **in, int nout, amp_status want, const char *what) {
    amp_tensor *out[3] = {0};
    amp_status s = tn_run(t, nin, in, nout, out);
    cr_assert_eq(s, want, "%s: status %d, expected %d (%s)", what, s, want, amp_context_last_error(ctx));
    if (s == AMP_OK) free_all(out, 3);
    for (int k = 0; k < 3; k++) cr_assert_null(out[k], "%s: output %d left behind", what, k);
}

Test(rnn, bad_inputs) {
    const rcase base = {.op = "LSTM", .dir = "forward", .S = 3, .B = 2, .I = 3, .H = 4, .bias = true, .h0 = true,
                        .c0 = true, .peep = true, .lens = 1};
    amp_tensor *in[8];
    int nin = make_inputs(&base, AMP_F32, in);
    amp_test_node *t;

    /* attributes */
    const struct {
        const char *name;
        int kind; /* 0 int, 1 string, 2 float */
        int64_t i;
        const char *s;
        float f;
        amp_status want;
    } attrs[] = {
        {"direction", 1, 0, "sideways", 0, AMP_ERR_INVALID_GRAPH}, {"layout", 0, 2, NULL, 0, AMP_ERR_INVALID_GRAPH},
        {"clip", 2, 0, NULL, -1.0f, AMP_ERR_INVALID_GRAPH},        {"clip", 2, 0, NULL, 0.0f, AMP_ERR_INVALID_GRAPH},
        {"linear_before_reset", 0, 1, NULL, 0, AMP_ERR_INVALID_GRAPH},
    };
    for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++) {
        t = tn_new(ctx, "LSTM");
        t->opset = 14;
        if (attrs[a].kind == 0) tn_int(t, attrs[a].name, attrs[a].i);
        else if (attrs[a].kind == 1) tn_str(t, attrs[a].name, attrs[a].s);
        else tn_float(t, attrs[a].name, attrs[a].f);
        expect_status(t, nin, in, 3, attrs[a].want, attrs[a].name);
        tn_free(t);
    }
    /* hidden_size: zero, or disagreeing with R */
    const int64_t hs[2] = {0, 5};
    const amp_status hs_want[2] = {AMP_ERR_INVALID_GRAPH, AMP_ERR_SHAPE};
    for (int v = 0; v < 2; v++) {
        t = tn_new(ctx, "LSTM");
        tn_int(t, "hidden_size", hs[v]);
        expect_status(t, nin, in, 3, hs_want[v], "hidden_size");
        tn_free(t);
    }
    /* activations: a wrong count, an unknown name */
    static const char *const two[2] = {"Sigmoid", "Tanh"}, *unknown[3] = {"Sigmoid", "Tanh", "Gelu"};
    t = tn_new(ctx, "LSTM");
    set_strings(t, "activations", 2, two);
    expect_status(t, nin, in, 3, AMP_ERR_INVALID_GRAPH, "two activations");
    tn_free(t);
    t = tn_new(ctx, "LSTM");
    set_strings(t, "activations", 3, unknown);
    expect_status(t, nin, in, 3, AMP_ERR_INVALID_GRAPH, "unknown activation");
    tn_free(t);
    /* layout before opset 14 */
    t = tn_new(ctx, "LSTM");
    t->opset = 7;
    tn_int(t, "layout", 0);
    expect_status(t, nin, in, 3, AMP_ERR_INVALID_GRAPH, "layout at opset 7");
    tn_free(t);
    /* input and output counts */
    t = tn_new(ctx, "LSTM");
    expect_status(t, 2, in, 1, AMP_ERR_INVALID_GRAPH, "two inputs");
    expect_status(t, nin, in, 3, AMP_OK, "the base case");
    tn_free(t);
    t = tn_new(ctx, "GRU");
    expect_status(t, 3, in, 3, AMP_ERR_INVALID_GRAPH, "GRU with three outputs");
    tn_free(t);

    /* shapes and dtypes, one input at a time */
    const int64_t d2[2] = {3, 4}, wbad[3] = {1, 16, 4}, rbad[3] = {1, 16, 3}, bbad[2] = {1, 16}, sbad[1] = {3};
    const int64_t hbad[3] = {2, 1, 4}, pbad[2] = {1, 4};
    const struct {
        int slot;
        amp_dtype dt;
        int rank;
        const int64_t *dims;
        amp_status want;
    } subs[] = {
        {0, AMP_F32, 2, d2, AMP_ERR_SHAPE},     {0, AMP_I32, 3, NULL, AMP_ERR_UNSUPPORTED},
        {1, AMP_F32, 3, wbad, AMP_ERR_SHAPE},   {1, AMP_F64, 3, NULL, AMP_ERR_SHAPE},
        {2, AMP_F32, 3, rbad, AMP_ERR_SHAPE},   {3, AMP_F32, 2, bbad, AMP_ERR_SHAPE},
        {4, AMP_I64, 1, NULL, AMP_ERR_UNSUPPORTED}, {4, AMP_I32, 1, sbad, AMP_ERR_SHAPE},
        {5, AMP_F32, 3, hbad, AMP_ERR_SHAPE},   {6, AMP_F16, 3, NULL, AMP_ERR_SHAPE},
        {7, AMP_F32, 2, pbad, AMP_ERR_SHAPE},
    };
    for (size_t v = 0; v < sizeof subs / sizeof subs[0]; v++) {
        amp_tensor *keep = in[subs[v].slot];
        const int64_t *dims = subs[v].dims ? subs[v].dims : keep->dims;
        const bool is_int = subs[v].dt == AMP_I32 || subs[v].dt == AMP_I64;
        in[subs[v].slot] = is_int ? tt_rand(ctx, subs[v].dt, subs[v].rank, dims, 1, 3, 7)
                                  : rnd(subs[v].dt, subs[v].rank, dims, -1, 1);
        t = tn_new(ctx, "LSTM");
        char what[64];
        snprintf(what, sizeof what, "substitution %zu (input %d)", v, subs[v].slot);
        expect_status(t, nin, in, 3, subs[v].want, what);
        tn_free(t);
        amp_tensor_destroy(in[subs[v].slot]);
        in[subs[v].slot] = keep;
    }
    /* sequence_lens outside [0, S] */
    const double lbad[2][2] = {{4, 1}, {2, -1}};
    for (int v = 0; v < 2; v++) {
        amp_tensor *keep = in[4];
        in[4] = tt_make(ctx, AMP_I32, 1, &base.B, lbad[v]);
        t = tn_new(ctx, "LSTM");
        expect_status(t, nin, in, 3, AMP_ERR_INVALID_ARG, "sequence_lens out of range");
        tn_free(t);
        amp_tensor_destroy(in[4]);
        in[4] = keep;
    }
    free_all(in, 8);
    (void)nin;
}

static int next_int(uint64_t *r, int n) {
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((*r >> 33) % (uint64_t)n);
}

/* Random shapes, dtypes and attributes, mostly malformed: every run must end in a status (the
 * sanitizer builds check that nothing is read or written out of bounds). */
Test(rnn, random_malformed_nodes_end_in_a_status) {
    static const amp_dtype dts[5] = {AMP_F32, AMP_F64, AMP_F16, AMP_I32, AMP_I64};
    static const char *const acts[4] = {"Tanh", "Sigmoid", "Relu", "Nope"};
    uint64_t r = 12345;
    int ok = 0;
    for (int it = 0; it < 400; it++) {
        const char *op = ops[next_int(&r, 3)];
        const int G = gates_of(op), D = 1 + next_int(&r, 2), H = 1 + next_int(&r, 3);
        const int S = next_int(&r, 3), B = next_int(&r, 3), I = next_int(&r, 3);
        amp_tensor *in[8] = {0};
        const int nin = 3 + next_int(&r, op[0] == 'L' ? 6 : 4);
        for (int i = 0; i < nin; i++) {
            if (i >= 3 && next_int(&r, 3) == 0) continue;
            /* the right shape most of the time, one dim off sometimes */
            int64_t dims[4] = {S, B, I, 0};
            int rank = 3;
            switch (i) {
            case 1: dims[0] = D, dims[1] = G * H, dims[2] = I; break;
            case 2: dims[0] = D, dims[1] = G * H, dims[2] = H; break;
            case 3: rank = 2, dims[0] = D, dims[1] = 2 * G * H; break;
            case 4: rank = 1, dims[0] = B; break;
            case 5:
            case 6: dims[0] = D, dims[1] = B, dims[2] = H; break;
            case 7: rank = 2, dims[0] = D, dims[1] = 3 * H; break;
            default: break;
            }
            if (next_int(&r, 4) == 0) dims[next_int(&r, rank)] += 1 + next_int(&r, 2);
            if (next_int(&r, 8) == 0) rank = next_int(&r, 4);
            amp_dtype dt = next_int(&r, i == 4 ? 6 : 8) ? (i == 4 ? AMP_I32 : AMP_F32) : dts[next_int(&r, 5)];
            in[i] = i == 4 ? tt_rand(ctx, dt, rank, dims, -1, S + 2, seed_next++) : rnd(dt, rank, dims, -1, 1);
        }
        amp_test_node *t = tn_new(ctx, op);
        t->opset = next_int(&r, 4) ? 14 : 7;
        if (next_int(&r, 2)) tn_int(t, "hidden_size", next_int(&r, 4) ? H : next_int(&r, 5) - 1);
        if (next_int(&r, 3) == 0) tn_str(t, "direction", D == 2 ? "bidirectional" : next_int(&r, 2) ? "reverse" : "up");
        if (next_int(&r, 4) == 0) tn_int(t, "layout", next_int(&r, 3));
        if (next_int(&r, 4) == 0) tn_float(t, "clip", (float)next_int(&r, 3) - 0.5f);
        if (next_int(&r, 4) == 0) set_strings(t, "activations", 1 + next_int(&r, 6), acts + next_int(&r, 2));
        amp_tensor *out[3] = {0};
        amp_status s = tn_run(t, nin, in, 1 + next_int(&r, 3), out);
        ok += s == AMP_OK;
        if (s) cr_assert_str_neq(amp_context_last_error(ctx), "", "iteration %d: a failure without a message", it);
        free_all(out, 3);
        tn_free(t);
        free_all(in, 8);
    }
    cr_assert_gt(ok, 10, "only %d runs succeeded: the generator is off", ok);
}
