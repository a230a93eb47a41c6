/* The error-targeted conversion (amp_autocast_options.max_error): a graph built here whose one
 * sensitive node is known (a large-gain MatMul whose two halves are subtracted: FP16 keeps none
 * of the difference), the report against an error measured here, the explain callback,
 * determinism of the written file, an unreachable target and bad options; the relax step on
 * two Softmaxes, one harmless in 16 bits and one not, and its off switch (keep_op_classes). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/elem.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "tests/testutil.h"

static amp_context *ctx;

static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }

TestSuite(autocast_search, .init = setup, .fini = teardown);

#define BATCH 8
#define WIDTH 16
#define NSETS 4

static int new_value(amp_graph *g, const char *name) {
    int v = amp_graph_new_value(g, name);
    cr_assert_geq(v, 0);
    return v;
}

/* An initializer holding t (the graph takes it). */
static int add_init(amp_graph *g, const char *name, amp_tensor *t) {
    int v = new_value(g, name);
    amp_value *val = &g->values[v];
    val->init = t;
    val->dtype = val->elem_onnx_type = t->dtype;
    val->rank = t->rank;
    for (int d = 0; d < t->rank; d++) val->dims[d] = (amp_dim){t->dims[d], -1};
    g->inits[g->n_inits++] = v;
    return v;
}

static int add_ints(amp_graph *g, const char *name, int64_t x) {
    int64_t dims[1] = {1};
    double v = (double)x;
    return add_init(g, name, tt_make(ctx, AMP_I64, 1, dims, &v));
}

/* A node named name (NULL: unnamed) writing one new value called out. */
static int add_node(amp_graph *g, const char *op, const char *name, int nin, const int *ins, const char *out) {
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = name ? amp_strdup(ctx, name) : NULL;
    n.op_type = amp_strdup(ctx, op);
    n.domain = amp_strdup(ctx, "");
    n.op = amp_op_lookup(op, "");
    n.inputs = amp_alloc(ctx, sizeof(int) * (size_t)nin);
    n.outputs = amp_alloc(ctx, sizeof(int));
    n.n_inputs = nin;
    n.n_outputs = 1;
    for (int i = 0; i < nin; i++) n.inputs[i] = ins[i];
    n.outputs[0] = new_value(g, out);
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    return n.outputs[0];
}

/* x[8,16] -> mm1 (16x16) -> gain (16x32: [100 R | 100 R + 0.01 S]) -> Slice halves -> Sub ->
 * an unnamed MatMul (16x16) -> y. The difference of the halves is 0.01 h S, a 1e-4 part of
 * values near 100 that FP16 (spacing 1/16 there) cannot hold, in the weights or the product; in
 * FP32 it keeps about three digits. mm1 and the last MatMul are harmless in 16 bits. */
/* An empty opset-17 graph with room for 16 initializers, 2 inputs and 2 outputs. */
static amp_graph *new_graph(void) {
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = 17;
    g->ir_version = 8;
    g->opsets = amp_calloc(ctx, 1, sizeof(amp_opset));
    g->opsets[0] = (amp_opset){amp_strdup(ctx, ""), 17};
    g->n_opsets = 1;
    g->inits = amp_calloc(ctx, 16, sizeof(int));
    g->inputs = amp_calloc(ctx, 2, sizeof(int));
    g->outputs = amp_calloc(ctx, 2, sizeof(int));
    return g;
}

/* An FP32 graph input of shape BATCH x WIDTH. */
static int add_input(amp_graph *g, const char *name) {
    int x = new_value(g, name);
    g->values[x].dtype = AMP_F32;
    g->values[x].rank = 2;
    g->values[x].dims[0] = (amp_dim){BATCH, -1};
    g->values[x].dims[1] = (amp_dim){WIDTH, -1};
    g->values[x].is_input = g->values[x].declared = true;
    g->inputs[g->n_inputs++] = x;
    return x;
}

static void add_output(amp_graph *g, int y) {
    g->values[y].is_output = true;
    g->outputs[g->n_outputs++] = y;
}

/* The model over g, linked. */
static amp_model *finish_model(amp_graph *g) {
    cr_assert_eq(amp_graph_link(g), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_model *m = NULL;
    cr_assert_eq(amp_model_wrap(ctx, g, &m), AMP_OK, "%s", amp_context_last_error(ctx));
    return m;
}

static amp_model *sensitive_model(void) {
    amp_graph *g = new_graph();
    int x = add_input(g, "x");

    int64_t sq[2] = {WIDTH, WIDTH}, wide[2] = {WIDTH, 2 * WIDTH};
    amp_tensor *w1 = tt_rand(ctx, AMP_F32, 2, sq, -0.5, 0.5, 11);
    amp_tensor *w3 = tt_rand(ctx, AMP_F32, 2, sq, -0.5, 0.5, 13);
    amp_tensor *r = tt_rand(ctx, AMP_F32, 2, sq, -1.0, 1.0, 17);
    amp_tensor *sm = tt_rand(ctx, AMP_F32, 2, sq, -1.0, 1.0, 19);
    amp_tensor *wg = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 2, wide, &wg), AMP_OK);
    float *G = wg->data;
    const float *R = r->data, *S = sm->data;
    for (int i = 0; i < WIDTH; i++)
        for (int j = 0; j < WIDTH; j++) {
            G[i * 2 * WIDTH + j] = 100.0f * R[i * WIDTH + j];
            G[i * 2 * WIDTH + WIDTH + j] = 100.0f * R[i * WIDTH + j] + 0.01f * S[i * WIDTH + j];
        }
    amp_tensor_destroy(r);
    amp_tensor_destroy(sm);
    int W1 = add_init(g, "w1", w1), WG = add_init(g, "wg", wg), W3 = add_init(g, "w3", w3);
    int zero = add_ints(g, "zero", 0), half = add_ints(g, "half", WIDTH), full = add_ints(g, "full", 2 * WIDTH);
    int one = add_ints(g, "one", 1);
    int h = add_node(g, "MatMul", "mm1", 2, (int[]){x, W1}, "h");
    int a = add_node(g, "MatMul", "gain", 2, (int[]){h, WG}, "a");
    int lo = add_node(g, "Slice", "lo", 4, (int[]){a, zero, half, one}, "a_lo");
    int hi = add_node(g, "Slice", "hi", 4, (int[]){a, half, full, one}, "a_hi");
    int d = add_node(g, "Sub", "diff", 2, (int[]){hi, lo}, "d");
    int y = add_node(g, "MatMul", NULL, 2, (int[]){d, W3}, "y");
    add_output(g, y);
    return finish_model(g);
}

/* Two Softmaxes, both FP32 by their op class: "soft_ok" between two MatMuls over inputs in
 * [-1, 1], harmless in 16 bits; "soft_bad" straight on input a, whose values are 1000 + [-0.2,
 * 0.2]: FP16's spacing at 1000 is 0.5, so a 16-bit Softmax sees every row as constant and gives
 * the uniform 1/16 where FP32 gives exp(+-0.2)-weighted values (an error near 0.1). Both stay
 * within the range limit (max |x| about 1000 < 4094). */
static amp_model *softmax_model(void) {
    amp_graph *g = new_graph();
    int a = add_input(g, "a"), b = add_input(g, "b");
    int64_t sq[2] = {WIDTH, WIDTH};
    int W1 = add_init(g, "w1", tt_rand(ctx, AMP_F32, 2, sq, -0.5, 0.5, 23));
    int W2 = add_init(g, "w2", tt_rand(ctx, AMP_F32, 2, sq, -0.5, 0.5, 29));
    int yb = add_node(g, "Softmax", "soft_bad", 1, (int[]){a}, "y_bad");
    int h = add_node(g, "MatMul", "mm_in", 2, (int[]){b, W1}, "h");
    int p = add_node(g, "Softmax", "soft_ok", 1, (int[]){h}, "p");
    int yo = add_node(g, "MatMul", "mm_out", 2, (int[]){p, W2}, "y_ok");
    add_output(g, yb);
    add_output(g, yo);
    return finish_model(g);
}

/* NSETS sets of n inputs, set-major. */
typedef struct calib {
    amp_tensor *sets[NSETS * 2];
    const char *names[2];
    int n;
} calib;

static void make_calib(calib *c, const char *name, int rank, const int64_t *dims) {
    c->names[0] = name;
    c->n = 1;
    for (int s = 0; s < NSETS; s++) c->sets[s] = tt_rand(ctx, AMP_F32, rank, dims, -1.0, 1.0, 100 + (uint64_t)s);
}

static void free_calib(calib *c) {
    for (int s = 0; s < NSETS * c->n; s++) amp_tensor_destroy(c->sets[s]);
}

/* The Softmax model and its sets: a = 1000 + [-0.2, 0.2], b in [-1, 1]. */
static amp_model *softmax_fixture(calib *c) {
    int64_t dims[2] = {BATCH, WIDTH};
    c->names[0] = "a";
    c->names[1] = "b";
    c->n = 2;
    for (int s = 0; s < NSETS; s++) {
        c->sets[2 * s] = tt_rand(ctx, AMP_F32, 2, dims, 999.8, 1000.2, 200 + (uint64_t)s);
        c->sets[2 * s + 1] = tt_rand(ctx, AMP_F32, 2, dims, -1.0, 1.0, 300 + (uint64_t)s);
    }
    return softmax_model();
}

/* The sensitive model and its calibration sets. */
static amp_model *sensitive_fixture(calib *c) {
    int64_t dims[2] = {BATCH, WIDTH};
    make_calib(c, "x", 2, dims);
    return sensitive_model();
}

static amp_autocast_options options(calib *c, double max_error, int keep_io) {
    amp_autocast_options o = {.struct_size = sizeof o,
                              .dtype = AMP_F16,
                              .io_16bit = !keep_io,
                              .n_calib = NSETS,
                              .n_calib_names = c->n,
                              .calib_names = c->names,
                              .calib_inputs = (const amp_tensor *const *)c->sets,
                              .max_error = max_error};
    return o;
}

/* The error as the header defines it, measured here independently: output k of conv against
 * output k of ref over all sets, both run on the CPU unfused. */
static double output_error(amp_model *ref, amp_model *conv, calib *c, int k) {
    amp_session *sr = NULL, *sc = NULL;
    amp_session_options so = {.struct_size = sizeof so, .backend = "cpu", .fusion = -1};
    cr_assert_eq(amp_session_create(ref, &so, &sr), AMP_OK);
    cr_assert_eq(amp_session_create(conv, &so, &sc), AMP_OK);
    amp_value_info ov = {.struct_size = sizeof ov};
    cr_assert_eq(amp_model_output_info(ref, k, &ov), AMP_OK);
    const char *out_names[1] = {ov.name};
    double num = 0, den = 0;
    for (int s = 0; s < NSETS; s++) {
        amp_tensor *yr = NULL, *yc = NULL, *xin[2] = {NULL, NULL};
        for (int i = 0; i < c->n; i++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            cr_assert_eq(amp_model_input_info(conv, i, &vi), AMP_OK);
            cr_assert_eq(amp_tensor_convert(ctx, c->sets[s * c->n + i], vi.dtype, &xin[i]), AMP_OK);
        }
        const amp_tensor *const *given = (const amp_tensor *const *)&c->sets[s * c->n];
        cr_assert_eq(amp_session_run(sr, c->n, c->names, given, 1, out_names, &yr), AMP_OK);
        cr_assert_eq(amp_session_run(sc, c->n, c->names, (const amp_tensor *const *)xin, 1, out_names, &yc), AMP_OK,
                     "%s", amp_session_last_error(sc));
        cr_assert_eq(yr->numel, yc->numel);
        for (int64_t i = 0; i < yr->numel; i++) {
            double a = tt_get(yc, i), b = tt_get(yr, i);
            cr_assert(isfinite(a) && isfinite(b));
            num += (a - b) * (a - b);
            den += b * b;
        }
        amp_tensor_destroy(yr);
        amp_tensor_destroy(yc);
        for (int i = 0; i < c->n; i++) amp_tensor_destroy(xin[i]);
    }
    cr_assert_gt(den, 0.0);
    amp_session_destroy(sr);
    amp_session_destroy(sc);
    return sqrt(num / den);
}

static double measured_error(amp_model *ref, amp_model *conv, calib *c) { return output_error(ref, conv, c, 0); }

static const amp_node *node_named(const amp_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0) return &g->nodes[i];
    return NULL;
}

/* The last MatMul, which has no name. */
static const amp_node *last_matmul(const amp_graph *g) {
    const amp_node *n = NULL;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == AMP_OP_MAT_MUL) n = &g->nodes[i];
    return n;
}

/* The explanations received (only the ERROR_TARGET ones with error_target_only). */
typedef struct decisions {
    bool error_target_only;
    int n;
    char node[8][64];
    amp_autocast_reason reason[8];
    double value[8], limit[8];
} decisions;

static void record(void *user, const amp_autocast_decision *d) {
    decisions *x = user;
    cr_assert_not_null(d->node);
    cr_assert_not_null(d->op_type);
    if (x->error_target_only && d->reason != AMP_REASON_ERROR_TARGET) return;
    cr_assert_lt(x->n, 8);
    snprintf(x->node[x->n], sizeof x->node[0], "%s", d->node);
    x->reason[x->n] = d->reason;
    x->value[x->n] = d->value;
    x->limit[x->n] = d->limit;
    x->n++;
}

/* m converted with o, the explanations into dec, the report into r. */
static amp_model *convert_explained(amp_model *m, amp_autocast_options *o, decisions *dec, amp_autocast_report *r) {
    o->explain = record;
    o->explain_user_data = dec;
    *r = (amp_autocast_report){.struct_size = sizeof *r};
    amp_model *out = NULL;
    cr_assert_eq(amp_model_autocast(m, o, &out, r), AMP_OK, "%s", amp_context_last_error(ctx));
    return out;
}

Test(autocast_search, finds_the_sensitive_node) {
    calib c;
    amp_model *m = sensitive_fixture(&c);
    const double target = 1e-2;

    /* the plain conversion misses the target by far, so the search has work to do */
    amp_autocast_options plain = options(&c, 0, 1);
    amp_model *p = NULL;
    cr_assert_eq(amp_model_autocast(m, &plain, &p, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    double plain_err = measured_error(m, p, &c);
    cr_assert_gt(plain_err, 10 * target, "the plain FP16 conversion gives %g: the case tests nothing", plain_err);
    amp_model_destroy(p);

    amp_autocast_options o = options(&c, target, 1);
    decisions dec = {.error_target_only = true};
    amp_autocast_report r;
    amp_model *out = convert_explained(m, &o, &dec, &r);
    const amp_graph *g = out->g;
    const amp_node *gain = node_named(g, "gain"), *mm1 = node_named(g, "mm1"), *mm3 = last_matmul(g);
    cr_assert(gain && mm1 && mm3);
    cr_expect_eq(amp_node_precision(g, gain), AMP_F32, "the sensitive MatMul was left in 16 bits");
    cr_expect_eq(amp_node_precision(g, mm1), AMP_F16, "mm1 is harmless in 16 bits");
    cr_expect_eq(amp_node_precision(g, mm3), AMP_F16, "the last MatMul is harmless in 16 bits");
    cr_expect(!mm3->name || !mm3->name[0], "the unnamed node came back named '%s'", mm3->name);

    /* the report: the error as measured here, within the target; FLOPs 2*8*16*16 twice in 16
     * bits, 2*8*16*32 in FP32: half */
    double err = measured_error(m, out, &c);
    cr_expect_leq(err, target);
    cr_expect_leq(fabs(r.error - err), 1e-9 * err + 1e-12, "report %g, measured %g", r.error, err);
    cr_expect_leq(fabs(r.flops16_share - 0.5), 1e-12, "share %g", r.flops16_share);
    cr_expect_geq(r.nodes_error_kept, 1);
    cr_expect_eq(r.nodes_blocked, 0, "the search's nodes are not the caller's blocked ones");
    cr_expect_gt(r.error_passes, 4);
    cr_expect_leq(r.error_passes, 100);

    /* explain: one ERROR_TARGET per node kept, the sensitive one among them, its contribution the
     * error it would give back in 16 bits */
    cr_expect_eq(dec.n, r.nodes_error_kept);
    bool seen_gain = false;
    for (int i = 0; i < dec.n; i++) {
        cr_expect_eq(dec.limit[i], target);
        if (strcmp(dec.node[i], "gain") == 0) {
            seen_gain = true;
            cr_expect_gt(dec.value[i], target, "gain's contribution %g is within the target", dec.value[i]);
        }
    }
    cr_expect(seen_gain, "gain was not explained as kept for the error target");
    amp_model_destroy(out);
    free_calib(&c);
    amp_model_destroy(m);
}

static long file_bytes(const char *path, char **data) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n + 1);
    cr_assert_eq(fread(*data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return n;
}

/* Two conversions of m write byte-identical files. */
static void expect_same_file(amp_model *m, calib *c, const char *tag) {
    char path[2][512];
    for (int k = 0; k < 2; k++) {
        amp_autocast_options o = options(c, 1e-2, 1);
        amp_model *out = NULL;
        cr_assert_eq(amp_model_autocast(m, &o, &out, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
        snprintf(path[k], sizeof path[k], "%s/autocast_search_same_%s_%d.onnx", AMP_BINARY_DIR, tag, k);
        cr_assert_eq(amp_model_save(out, path[k]), AMP_OK, "%s", amp_context_last_error(ctx));
        amp_model_destroy(out);
    }
    char *a = NULL, *b = NULL;
    long na = file_bytes(path[0], &a), nb = file_bytes(path[1], &b);
    cr_expect_gt(na, 0);
    cr_expect(na == nb && memcmp(a, b, (size_t)na) == 0, "%s: two conversions wrote different files", tag);
    free(a);
    free(b);
    remove(path[0]);
    remove(path[1]);
}

Test(autocast_search, same_input_same_file) {
    calib c;
    amp_model *m = sensitive_fixture(&c);
    expect_same_file(m, &c, "sensitive");
    free_calib(&c);
    amp_model_destroy(m);
    /* the relax step's group testing too */
    m = softmax_fixture(&c);
    expect_same_file(m, &c, "softmax");
    free_calib(&c);
    amp_model_destroy(m);
}

/* The relax step: of two Softmaxes FP32 by their class, the harmless one goes to 16 bits and
 * the one whose input FP16 cannot resolve stays FP32, explained by its class with the error
 * measured with it in 16 bits; keep_op_classes leaves both. */
Test(autocast_search, relax_moves_only_harmless_class_nodes) {
    calib c;
    amp_model *m = softmax_fixture(&c);
    const double target = 1e-2;
    amp_autocast_options o = options(&c, target, 1);
    decisions dec = {0};
    amp_autocast_report r;
    amp_model *out = convert_explained(m, &o, &dec, &r);
    const amp_graph *g = out->g;
    const amp_node *bad = node_named(g, "soft_bad"), *ok = node_named(g, "soft_ok");
    cr_assert(bad && ok);
    cr_expect_eq(amp_node_precision(g, ok), AMP_F16, "the harmless Softmax stayed FP32");
    cr_expect_eq(amp_node_precision(g, bad), AMP_F32, "the Softmax FP16 cannot resolve went to 16 bits");
    cr_expect_eq(r.nodes_relaxed, 1);
    cr_expect_eq(r.nodes_error_kept, 0, "no 16-bit node had to go back");
    /* calibration, both Softmaxes in 16 bits at once (over the target), the plain conversion,
     * then each half (soft_bad, in node order first, fails), then soft_bad's contribution against
     * the final set */
    cr_expect_eq(r.error_passes, 6, "%d passes", r.error_passes);
    double e_bad = output_error(m, out, &c, 0), e_ok = output_error(m, out, &c, 1);
    cr_expect_eq(e_bad, 0.0, "y_bad is computed in FP32 from FP32 input: %g", e_bad);
    cr_expect_gt(e_ok, 0.0);
    cr_expect_leq(e_ok, target);
    cr_expect_leq(fabs(r.error - e_ok), 1e-9 * e_ok + 1e-12, "report %g, measured %g", r.error, e_ok);
    /* one explanation, soft_bad's: its class, the error of its 16-bit version, the target */
    cr_expect_eq(dec.n, 1);
    cr_expect_str_eq(dec.node[0], "soft_bad");
    cr_expect_eq(dec.reason[0], AMP_REASON_DENY_CLASS);
    cr_expect_gt(dec.value[0], 10 * target, "measured %g", dec.value[0]);
    cr_expect_eq(dec.limit[0], target);
    amp_model_destroy(out);

    /* its 16-bit version measured here: the error the search saw, far over the target */
    const char *allow[1] = {"soft_bad"};
    amp_autocast_options f = options(&c, 0, 1);
    f.allow_nodes = allow;
    f.n_allow_nodes = 1;
    cr_assert_eq(amp_model_autocast(m, &f, &out, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_node_precision(out->g, node_named(out->g, "soft_bad")), AMP_F16, "allow_nodes");
    double forced = output_error(m, out, &c, 0);
    cr_expect_gt(forced, 10 * target, "a 16-bit soft_bad gives %g: the case tests nothing", forced);
    cr_expect_leq(fabs(forced - dec.value[0]), 1e-9 * forced, "measured here %g, by the search %g", forced, dec.value[0]);
    amp_model_destroy(out);

    /* the off switch: both Softmaxes as their class says, told with no measure */
    o.keep_op_classes = 1;
    dec.n = 0;
    cr_assert_eq(amp_model_autocast(m, &o, &out, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_node_precision(out->g, node_named(out->g, "soft_ok")), AMP_F32);
    cr_expect_eq(amp_node_precision(out->g, node_named(out->g, "soft_bad")), AMP_F32);
    cr_expect_eq(r.nodes_relaxed, 0);
    cr_expect_eq(r.error_passes, 2);
    cr_expect_eq(dec.n, 2);
    for (int i = 0; i < dec.n; i++) {
        cr_expect_eq(dec.reason[i], AMP_REASON_DENY_CLASS);
        cr_expect_eq(dec.limit[i], 0.0, "%s carries a measure without the search trying it", dec.node[i]);
    }
    amp_model_destroy(out);
    free_calib(&c);
    amp_model_destroy(m);
}

/* x -> MatMul -> Where(mask, ., -inf) -> Softmax -> y, a third of each row masked: -inf is -inf
 * in 16 bits too, so neither the constant nor the calibrated output of the Where keeps it FP32
 * (only finite values beyond the limit do), and the masked entries stay exact zeros. */
Test(autocast_search, infinite_mask_is_not_a_range) {
    amp_graph *g = new_graph();
    int x = add_input(g, "x");
    int64_t sq[2] = {WIDTH, WIDTH}, row[1] = {WIDTH}, one[1] = {1};
    double keep[WIDTH], ninf = -INFINITY;
    for (int j = 0; j < WIDTH; j++) keep[j] = j % 3 != 0;
    int W = add_init(g, "w", tt_rand(ctx, AMP_F32, 2, sq, -0.5, 0.5, 31));
    int M = add_init(g, "mask", tt_make(ctx, AMP_BOOL, 1, row, keep));
    int NI = add_init(g, "ninf", tt_make(ctx, AMP_F32, 1, one, &ninf));
    int h = add_node(g, "MatMul", "mm", 2, (int[]){x, W}, "h");
    int w = add_node(g, "Where", "masked", 3, (int[]){M, h, NI}, "w");
    int y = add_node(g, "Softmax", "soft", 1, (int[]){w}, "y");
    add_output(g, y);
    amp_model *m = finish_model(g);
    calib c;
    int64_t dims[2] = {BATCH, WIDTH};
    make_calib(&c, "x", 2, dims);
    amp_autocast_options o = options(&c, 0, 1); /* calibrated, no error target */
    amp_autocast_report r = {.struct_size = sizeof r};
    amp_model *out = NULL;
    cr_assert_eq(amp_model_autocast(m, &o, &out, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(r.nodes_range_kept, 0);
    cr_expect_eq(amp_node_precision(out->g, node_named(out->g, "masked")), AMP_F16);
    double err = measured_error(m, out, &c); /* asserts every element finite */
    cr_expect_gt(err, 0.0);
    cr_expect_leq(err, 1e-2);
    amp_model_destroy(out);
    free_calib(&c);
    amp_model_destroy(m);
}

/* With io_16bit the output itself is FP16: no choice of nodes reaches 1e-6. */
Test(autocast_search, unreachable_target_fails) {
    calib c;
    amp_model *m = sensitive_fixture(&c);
    amp_autocast_options o = options(&c, 1e-6, 0);
    amp_autocast_report r = {.struct_size = sizeof r, .nodes_16bit = -7};
    amp_model *out = NULL;
    cr_assert_eq(amp_model_autocast(m, &o, &out, &r), AMP_ERR_LIMIT);
    cr_expect_null(out);
    cr_expect_eq(r.nodes_16bit, -7, "the report was written on failure");
    cr_expect_not_null(strstr(amp_context_last_error(ctx), "out of reach"), "message: %s", amp_context_last_error(ctx));
    free_calib(&c);
    amp_model_destroy(m);
}

Test(autocast_search, within_target_converts_everything) {
    amp_model *m = tt_load(ctx, "models/mlp/model.onnx");
    calib c;
    int64_t dims[2] = {BATCH, 64};
    make_calib(&c, "input", 2, dims);
    amp_autocast_options o = options(&c, 1e-2, 1);
    amp_autocast_report r = {.struct_size = sizeof r};
    amp_model *out = NULL;
    cr_assert_eq(amp_model_autocast(m, &o, &out, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(r.nodes_error_kept, 0);
    /* one pass calibrates and keeps the reference, one measures the conversion with its two
     * LayerNormalizations in 16 bits too, which holds the target (the plain one needs none) */
    cr_expect_eq(r.error_passes, 2, "calibration with the reference, the relaxed conversion");
    cr_expect_eq(r.nodes_relaxed, 2, "the two LayerNormalizations");
    cr_expect_eq(r.nodes_fp32, 0);
    cr_expect_eq(r.flops16_share, 1.0);
    double err = measured_error(m, out, &c);
    cr_expect_leq(fabs(r.error - err), 1e-9 * err + 1e-12, "report %g, measured %g", r.error, err);
    cr_expect_gt(err, 0.0);
    cr_expect_leq(err, 1e-2);
    amp_model_destroy(out);
    /* keeping the op classes: the plain conversion is the answer, in two passes */
    o.keep_op_classes = 1;
    cr_assert_eq(amp_model_autocast(m, &o, &out, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(r.error_passes, 2, "calibration with the reference, the plain conversion");
    cr_expect_eq(r.nodes_relaxed, 0);
    cr_expect_eq(r.nodes_fp32, 2, "the two LayerNormalizations stay FP32");
    amp_model_destroy(out);
    o.keep_op_classes = 0;
    /* without max_error nothing is measured */
    o.max_error = 0;
    cr_assert_eq(amp_model_autocast(m, &o, &out, &r), AMP_OK);
    cr_expect_eq(r.error, -1);
    cr_expect_eq(r.flops16_share, -1);
    amp_model_destroy(out);
    free_calib(&c);
    amp_model_destroy(m);
}

Test(autocast_search, bad_options) {
    calib c;
    amp_model *m = sensitive_fixture(&c);
    amp_model *out = NULL;
    amp_autocast_options o = options(&c, 1e-2, 1);
    o.n_calib = 0;
    cr_expect_eq(amp_model_autocast(m, &o, &out, NULL), AMP_ERR_INVALID_ARG);
    cr_expect_not_null(strstr(amp_context_last_error(ctx), "calibration"));
    double bad[3] = {-1e-2, NAN, INFINITY};
    for (int k = 0; k < 3; k++) {
        o = options(&c, bad[k], 1);
        cr_expect_eq(amp_model_autocast(m, &o, &out, NULL), AMP_ERR_INVALID_ARG, "max_error %g", bad[k]);
    }
    /* a calibration input the model does not have */
    const char *wrong[1] = {"nope"};
    o = options(&c, 1e-2, 1);
    o.calib_names = wrong;
    cr_expect_neq(amp_model_autocast(m, &o, &out, NULL), AMP_OK);
    cr_expect_null(out);
    free_calib(&c);
    amp_model_destroy(m);
}
