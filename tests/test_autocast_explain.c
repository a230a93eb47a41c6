/* Autocast's reasons and its underflow guard: every node left in FP32 is reported once, with the
 * reason it stays there and the numbers that decided it; calibration keeps FP32 the nodes whose
 * values sit below the 16-bit type's normal range. The graphs are built here, one node per
 * reason, so each reason is known before the pass runs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "passes/passes.h"
#include "runtime/runtime.h"
#include "tests/testutil.h"

static amp_context *ctx;

static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }

TestSuite(autocast_explain, .init = setup, .fini = teardown);

/* ---- a small graph builder ------------------------------------------------------------------- */

static amp_graph *gb_new(int opset) {
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = opset;
    g->inputs = amp_calloc(ctx, 8, sizeof(int));
    g->outputs = amp_calloc(ctx, 16, sizeof(int));
    g->inits = amp_calloc(ctx, 32, sizeof(int));
    cr_assert(g->inputs && g->outputs && g->inits);
    return g;
}

static int gb_input(amp_graph *g, const char *name, int rank, const int64_t *dims) {
    int v = amp_graph_new_value(g, name);
    cr_assert_geq(v, 0);
    amp_value *val = &g->values[v];
    val->dtype = AMP_F32;
    val->rank = rank;
    for (int d = 0; d < rank; d++) val->dims[d] = (amp_dim){dims[d], -1};
    val->is_input = val->declared = true;
    g->inputs[g->n_inputs++] = v;
    return v;
}

/* An initializer holding t (the graph takes it). */
static int gb_init(amp_graph *g, const char *name, amp_tensor *t) {
    cr_assert_not_null(t);
    int v = amp_graph_new_value(g, name);
    cr_assert_geq(v, 0);
    amp_value *val = &g->values[v];
    val->init = t;
    val->dtype = t->dtype;
    val->rank = t->rank;
    for (int d = 0; d < t->rank; d++) val->dims[d] = (amp_dim){t->dims[d], -1};
    val->declared = true;
    cr_assert_lt(g->n_inits, 32);
    g->inits[g->n_inits++] = v;
    return v;
}

/* A node named name with one output (value "name:out"); returns the output's value id. */
static int gb_node(amp_graph *g, const char *op, const char *name, int nin, const int *ins) {
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, name);
    n.op_type = amp_strdup(ctx, op);
    n.domain = amp_strdup(ctx, "");
    n.op = amp_op_lookup(op, "");
    n.inputs = amp_alloc(ctx, sizeof(int) * (size_t)nin);
    n.n_inputs = nin;
    for (int i = 0; i < nin; i++) n.inputs[i] = ins[i];
    n.outputs = amp_alloc(ctx, sizeof(int));
    n.n_outputs = 1;
    char out[128];
    snprintf(out, sizeof out, "%s:out", name);
    n.outputs[0] = amp_graph_new_value(g, out);
    cr_assert_geq(n.outputs[0], 0);
    int y = n.outputs[0];
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    return y;
}

static void gb_output(amp_graph *g, int v) {
    g->values[v].is_output = true;
    g->outputs[g->n_outputs++] = v;
}

static amp_model *gb_model(amp_graph *g) {
    cr_assert_eq(amp_graph_link(g), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_model *m = NULL;
    cr_assert_eq(amp_model_wrap(ctx, g, &m), AMP_OK, "%s", amp_context_last_error(ctx));
    return m;
}

/* Uniform values in [lo, hi) with a random sign each: |x| never near zero when lo > 0. */
static amp_tensor *signed_rand(int rank, const int64_t *dims, double lo, double hi, uint64_t seed) {
    amp_tensor *mag = tt_rand(ctx, AMP_F32, rank, dims, lo, hi, seed);
    amp_tensor *sgn = tt_rand(ctx, AMP_F32, rank, dims, -1, 1, seed + 1000);
    float *x = mag->data;
    for (int64_t i = 0; i < mag->numel; i++)
        if (tt_get(sgn, i) < 0) x[i] = -x[i];
    amp_tensor_destroy(sgn);
    return mag;
}

/* ---- what the explain callback said ---------------------------------------------------------- */

typedef struct said {
    struct {
        char node[64], op[32];
        amp_autocast_reason reason;
        double value, limit;
    } d[64];
    int n;
    int calls;
} said;

static void listen(void *user, const amp_autocast_decision *d) {
    said *s = user;
    s->calls++;
    if (s->n >= 64) return;
    snprintf(s->d[s->n].node, sizeof s->d[s->n].node, "%s", d->node);
    snprintf(s->d[s->n].op, sizeof s->d[s->n].op, "%s", d->op_type);
    s->d[s->n].reason = d->reason;
    s->d[s->n].value = d->value;
    s->d[s->n].limit = d->limit;
    s->n++;
}

static int said_index(const said *s, const char *node) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->d[i].node, node) == 0) return i;
    return -1;
}

/* node was reported once with reason; its value and limit are returned. */
static void expect(const said *s, const char *node, amp_autocast_reason reason, double *value, double *limit) {
    int i = said_index(s, node), again = 0;
    cr_assert_geq(i, 0, "'%s' was not reported", node);
    for (int k = 0; k < s->n; k++) again += strcmp(s->d[k].node, node) == 0;
    cr_assert_eq(again, 1, "'%s' reported %d times", node, again);
    cr_assert_eq(s->d[i].reason, reason, "'%s': reason %d, expected %d", node, s->d[i].reason, reason);
    if (value) *value = s->d[i].value;
    if (limit) *limit = s->d[i].limit;
    if (!value) cr_assert_eq(s->d[i].value, 0.0, "'%s' has no value", node);
    if (!limit) cr_assert_eq(s->d[i].limit, 0.0, "'%s' has no limit", node);
}

/* Every node the converted graph computes in FP32 (its own nodes: not the casts, not the
 * Constants, which compute nothing) was reported, in node order, and nothing else. */
static void reported_exactly_the_fp32_nodes(const amp_model *c, const said *s) {
    cr_assert_eq(s->calls, s->n, "more than 64 decisions");
    int k = 0;
    for (int ni = 0; ni < c->g->n_nodes; ni++) {
        const amp_node *n = &c->g->nodes[ni];
        if (n->flags & AMP_NODE_INSERTED || n->op == AMP_OP_CONSTANT) continue;
        if (amp_node_precision(c->g, n) != AMP_F32) continue;
        cr_assert_lt(k, s->n, "FP32 node '%s' was not reported", n->name);
        cr_assert_str_eq(s->d[k].node, n->name, "report %d is '%s', the next FP32 node is '%s'", k, s->d[k].node,
                         n->name);
        cr_assert_str_eq(s->d[k].op, n->op_type);
        k++;
    }
    cr_assert_eq(k, s->n, "%d reports for %d FP32 nodes", s->n, k);
}

/* max |x| of output v of m run on the one input set (names, ins). */
static double run_absmax(amp_model *m, int nin, const char **names, amp_tensor **ins, const char *out) {
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    amp_tensor *y = NULL;
    const char *on[] = {out};
    cr_assert_eq(amp_session_run(s, nin, names, (const amp_tensor *const *)ins, 1, on, &y), AMP_OK, "%s",
                 amp_session_last_error(s));
    double mx = 0;
    for (int64_t i = 0; i < y->numel; i++) mx = fmax(mx, fabs(tt_get(y, i)));
    amp_tensor_destroy(y);
    amp_session_destroy(s);
    return mx;
}

/* ---- every reason ------------------------------------------------------------------------------ */

/* x, z [4,8]:
 *   mm1 = MatMul(x, W1); exp = Exp(mm1)                   deny class
 *   add_after_exp = Add(exp, x)                           neighbours (an infer op after Exp)
 *   mm2 = MatMul(add_after_exp, W2)                       16-bit
 *   mul_big_const = Mul(mm2, K), K holds 1e5              range, from the constant
 *   relu = Relu(mm2)                                      blocked by op
 *   add_named = Add(mm2, B)                               blocked by name
 *   mul_tiny = Mul(mm2, S), S = 1e-7                      underflow (with calibration)
 *   square = Mul(z, z), max |z| = 100                     range (with calibration), else
 *                                                         neighbours (graph inputs only) */
static amp_model *reasons_model(void) {
    amp_graph *g = gb_new(17);
    int64_t d48[] = {4, 8}, d88[] = {8, 8};
    int x = gb_input(g, "x", 2, d48), z = gb_input(g, "z", 2, d48);
    int w1 = gb_init(g, "W1", signed_rand(2, d88, 0.01, 0.1, 1));
    int w2 = gb_init(g, "W2", signed_rand(2, d88, 0.1, 0.3, 2));
    amp_tensor *k = signed_rand(2, d48, 0.5, 1.5, 3);
    ((float *)k->data)[5] = 1e5f;
    int kk = gb_init(g, "K", k);
    int b = gb_init(g, "B", signed_rand(2, d48, 0.5, 1.5, 4));
    double tiny[32];
    for (int i = 0; i < 32; i++) tiny[i] = 1e-7;
    int sv = gb_init(g, "S", tt_make(ctx, AMP_F32, 2, d48, tiny));
    int a = gb_node(g, "MatMul", "mm1", 2, (int[]){x, w1});
    int e = gb_node(g, "Exp", "exp", 1, (int[]){a});
    int c = gb_node(g, "Add", "add_after_exp", 2, (int[]){e, x});
    int d = gb_node(g, "MatMul", "mm2", 2, (int[]){c, w2});
    gb_output(g, gb_node(g, "Mul", "mul_big_const", 2, (int[]){d, kk}));
    gb_output(g, gb_node(g, "Relu", "relu", 1, (int[]){d}));
    gb_output(g, gb_node(g, "Add", "add_named", 2, (int[]){d, b}));
    gb_output(g, gb_node(g, "Mul", "mul_tiny", 2, (int[]){d, sv}));
    gb_output(g, gb_node(g, "Mul", "square", 2, (int[]){z, z}));
    return gb_model(g);
}

Test(autocast_explain, every_static_reason_with_its_numbers) {
    amp_model *m = reasons_model();
    const char *ops[] = {"Relu"}, *nodes[] = {"add_named"};
    said s = {0};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .block_ops = ops,
                              .n_block_ops = 1, .block_nodes = nodes, .n_block_nodes = 1, .explain = listen,
                              .explain_user_data = &s};
    amp_model *c = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    double v, lim;
    expect(&s, "exp", AMP_REASON_DENY_CLASS, NULL, NULL);
    expect(&s, "add_after_exp", AMP_REASON_NEIGHBOURS, NULL, NULL);
    expect(&s, "mul_big_const", AMP_REASON_RANGE, &v, &lim);
    cr_assert_eq(v, 1e5, "the constant's max |x| is 1e5, reported %g", v);
    cr_assert_eq(lim, 65504.0 / 16, "the default range limit is 4094, reported %g", lim);
    expect(&s, "relu", AMP_REASON_BLOCKED, NULL, NULL);
    expect(&s, "add_named", AMP_REASON_BLOCKED, NULL, NULL);
    /* without calibration nothing is known of mul_tiny's values; square reads graph inputs
     * only, no 16-bit producer: an infer op, it stays in its inputs' FP32 */
    cr_assert_lt(said_index(&s, "mul_tiny"), 0);
    expect(&s, "square", AMP_REASON_NEIGHBOURS, NULL, NULL);
    cr_assert_lt(said_index(&s, "mm1"), 0);
    cr_assert_lt(said_index(&s, "mm2"), 0);
    cr_assert_eq(r.nodes_blocked, 2);
    cr_assert_eq(r.nodes_range_kept, 1);
    cr_assert_eq(r.nodes_underflow_kept, 0);
    cr_assert_eq(r.error, -1.0);
    reported_exactly_the_fp32_nodes(c, &s);
    amp_model_destroy(c);

    /* a user-set limit is the one reported */
    said s2 = {0};
    amp_autocast_options o2 = {.struct_size = sizeof o2, .dtype = AMP_F16, .range_limit = 2e5,
                               .explain = listen, .explain_user_data = &s2};
    cr_assert_eq(amp_model_autocast(m, &o2, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_lt(said_index(&s2, "mul_big_const"), 0, "1e5 is within a limit of 2e5");
    cr_assert_eq(r.nodes_range_kept, 0);
    reported_exactly_the_fp32_nodes(c, &s2);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

Test(autocast_explain, calibration_reasons_with_the_values_seen) {
    amp_model *m = reasons_model();
    int64_t d48[] = {4, 8};
    amp_tensor *ins[2] = {signed_rand(2, d48, 0.5, 1.5, 10), signed_rand(2, d48, 0.5, 1.5, 11)};
    ((float *)ins[1]->data)[7] = -100.0f;
    const char *names[] = {"x", "z"};
    said s = {0};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .n_calib = 1,
                              .n_calib_names = 2, .calib_names = names, .calib_inputs = (const amp_tensor *const *)ins,
                              .explain = listen, .explain_user_data = &s};
    amp_model *c = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    double v, lim;
    expect(&s, "square", AMP_REASON_RANGE, &v, &lim);
    cr_assert_eq(v, 1e4, "max |z*z| = 100^2, reported %g", v);
    cr_assert_eq(lim, 4094.0);
    expect(&s, "mul_tiny", AMP_REASON_UNDERFLOW, &v, &lim);
    double want = run_absmax(m, 2, names, ins, "mul_tiny:out");
    cr_assert_gt(want, 0.0);
    cr_assert_leq(fabs(v - want), 1e-6 * want, "underflow value %g, FP32 run gives max |x| %g", v, want);
    cr_assert_eq(lim, ldexp(1.0, -14), "the default underflow limit is FP16's smallest normal, reported %g", lim);
    /* the constant is seen with or without calibration; calibration adds its output's range */
    expect(&s, "mul_big_const", AMP_REASON_RANGE, &v, &lim);
    cr_assert_geq(v, 1e5);
    expect(&s, "exp", AMP_REASON_DENY_CLASS, NULL, NULL);
    cr_assert_eq(r.nodes_range_kept, 2);
    cr_assert_eq(r.nodes_underflow_kept, 1);
    reported_exactly_the_fp32_nodes(c, &s);
    amp_model_destroy(c);

    /* a negative limit turns the guard off: mul_tiny computes in 16 bits */
    said s2 = {0};
    o.underflow_limit = -1;
    o.explain_user_data = &s2;
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_lt(said_index(&s2, "mul_tiny"), 0);
    cr_assert_eq(r.nodes_underflow_kept, 0);
    reported_exactly_the_fp32_nodes(c, &s2);
    amp_model_destroy(c);
    /* a user limit below the value: not kept either */
    said s3 = {0};
    o.underflow_limit = want / 2;
    o.explain_user_data = &s3;
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_lt(said_index(&s3, "mul_tiny"), 0);
    amp_model_destroy(c);
    /* NaN is no limit */
    o.underflow_limit = NAN;
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_ERR_INVALID_ARG);
    for (int i = 0; i < 2; i++) amp_tensor_destroy(ins[i]);
    amp_model_destroy(m);
}

/* BF16 Conv has no ONNX type before opset 22: the file stays valid by keeping it FP32, unless
 * the caller allows amprt's own types. */
Test(autocast_explain, opset_reason) {
    amp_graph *g = gb_new(17);
    int64_t dx[] = {1, 2, 6, 6}, dw[] = {3, 2, 3, 3};
    int x = gb_input(g, "x", 4, dx);
    int w = gb_init(g, "W", signed_rand(4, dw, 0.1, 0.5, 5));
    gb_output(g, gb_node(g, "Conv", "conv", 2, (int[]){x, w}));
    amp_model *m = gb_model(g);
    said s = {0};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_BF16, .explain = listen,
                              .explain_user_data = &s};
    amp_model *c = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    expect(&s, "conv", AMP_REASON_OPSET, NULL, NULL);
    reported_exactly_the_fp32_nodes(c, &s);
    amp_model_destroy(c);
    said s2 = {0};
    o.allow_nonstandard_types = 1;
    o.explain_user_data = &s2;
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(s2.n, 0, "a 16-bit Conv is not reported");
    cr_assert_eq(r.nodes_16bit, 1);
    amp_model_destroy(c);
    /* FP16 Conv is valid at every opset */
    said s3 = {0};
    o.allow_nonstandard_types = 0;
    o.dtype = AMP_F16;
    o.explain_user_data = &s3;
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(s3.n, 0);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* ---- the underflow guard on a network whose activations shrink ------------------------------- */

/* x [8,32] -> 10 x (MatMul by W_k, every other one followed by Relu) -> y
 * each layer shrinks the activations about eightfold, so they pass FP16's smallest normal
 * (6.1e-5) after about five layers and its smallest subnormal (6e-8) after eight; y ~ 1e-9. */
#define SHRINK_LAYERS 10
static amp_model *shrinking_mlp(void) {
    amp_graph *g = gb_new(17);
    int64_t dx[] = {8, 32}, dw[] = {32, 32};
    int h = gb_input(g, "x", 2, dx);
    /* a sum of 32 products of random sign grows as sqrt(32); |w| in [0.5, 1.5] * scale has an
     * rms of 1.08 * scale */
    double scale = 0.125 / (sqrt(32.0) * 1.08);
    for (int k = 0; k < SHRINK_LAYERS; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "W%d", k);
        int w = gb_init(g, nm, signed_rand(2, dw, 0.5 * scale, 1.5 * scale, 20 + k));
        snprintf(nm, sizeof nm, "mm%d", k);
        h = gb_node(g, "MatMul", nm, 2, (int[]){h, w});
        if (k % 2 == 1) {
            snprintf(nm, sizeof nm, "relu%d", k);
            h = gb_node(g, "Relu", nm, 1, (int[]){h});
        }
    }
    gb_output(g, h);
    return gb_model(g);
}

static amp_tensor *run_one(amp_model *m, const amp_tensor *x) {
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    const char *in[] = {"x"}, *out[] = {m->g->values[m->g->outputs[0]].name};
    amp_tensor *y = NULL;
    cr_assert_eq(amp_session_run(s, 1, in, (const amp_tensor *const *)&x, 1, out, &y), AMP_OK, "%s",
                 amp_session_last_error(s));
    amp_session_destroy(s);
    return y;
}

Test(autocast_explain, underflow_guard_keeps_shrinking_activations_fp32) {
    amp_model *m = shrinking_mlp();
    int64_t dx[] = {8, 32};
    /* calibration on two sets; the check on a third */
    amp_tensor *cal[2] = {signed_rand(2, dx, 0.5, 1.5, 50), signed_rand(2, dx, 0.5, 1.5, 51)};
    amp_tensor *x = signed_rand(2, dx, 0.5, 1.5, 52);
    amp_tensor *want = run_one(m, x);
    double ymax = 0;
    for (int64_t i = 0; i < want->numel; i++) ymax = fmax(ymax, fabs(tt_get(want, i)));
    cr_assert(ymax > 1e-12 && ymax < 1e-7, "the FP32 output should be tiny and nonzero, max |y| %g", ymax);
    const char *names[] = {"x", "x"};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .n_calib = 2,
                              .n_calib_names = 1, .calib_names = names, .calib_inputs = (const amp_tensor *const *)cal};
    double err[3];
    amp_autocast_report rep[3];
    /* 0: the guard (default limit), 1: off, 2: BF16 with the guard off (FP32's exponent range) */
    for (int run = 0; run < 3; run++) {
        said s = {0};
        o.underflow_limit = run == 0 ? 0 : -1;
        o.dtype = run == 2 ? AMP_BF16 : AMP_F16;
        o.explain = listen;
        o.explain_user_data = &s;
        amp_model *c = NULL;
        rep[run] = (amp_autocast_report){.struct_size = sizeof rep[run]};
        cr_assert_eq(amp_model_autocast(m, &o, &c, &rep[run]), AMP_OK, "%s", amp_context_last_error(ctx));
        amp_tensor *y = run_one(c, x);
        err[run] = sqrt(tt_nse(y, want)); /* relative L2; inf on a NaN or a one-sided inf */
        if (run == 0) {
            reported_exactly_the_fp32_nodes(c, &s);
            cr_assert_geq(s.n, 1);
            for (int i = 0; i < s.n; i++) {
                cr_assert(s.d[i].reason == AMP_REASON_UNDERFLOW || s.d[i].reason == AMP_REASON_NEIGHBOURS,
                          "'%s' kept for reason %d", s.d[i].node, s.d[i].reason);
                if (s.d[i].reason == AMP_REASON_UNDERFLOW)
                    cr_assert(s.d[i].value > 0 && s.d[i].value < s.d[i].limit && s.d[i].limit == ldexp(1.0, -14),
                              "'%s': value %g, limit %g", s.d[i].node, s.d[i].value, s.d[i].limit);
            }
            cr_assert_lt(said_index(&s, "mm0"), 0, "the first layer's values are normal: 16 bits");
            cr_assert_geq(said_index(&s, "mm9"), 0, "the last layer's values are ~1e-9: FP32");
            cr_assert_gt(rep[0].nodes_16bit, 0);
        }
        amp_tensor_destroy(y);
        amp_model_destroy(c);
    }
    cr_assert_gt(rep[0].nodes_underflow_kept, 0);
    cr_assert_eq(rep[1].nodes_underflow_kept, 0);
    cr_log_info("shrinking MLP, rel L2 to FP32: fp16 guarded %.3g (%d nodes kept), fp16 unguarded %.3g, bf16 %.3g",
                err[0], rep[0].nodes_underflow_kept, err[1], err[2]);
    cr_assert_leq(err[0], 1e-2, "with the guard: relative L2 %g", err[0]);
    cr_assert_gt(err[1], 1e-2, "without the guard FP16 should lose this output (relative L2 %g)", err[1]);
    cr_assert_leq(err[2], 3e-2, "BF16 keeps FP32's exponent range (relative L2 %g)", err[2]);
    for (int i = 0; i < 2; i++) amp_tensor_destroy(cal[i]);
    amp_tensor_destroy(x);
    amp_tensor_destroy(want);
    amp_model_destroy(m);
}

/* All-zero values are exact in 16 bits: a zero branch keeps nothing FP32. */
Test(autocast_explain, zeros_are_not_underflow) {
    amp_graph *g = gb_new(17);
    int64_t dx[] = {4, 8}, dw[] = {8, 8};
    int x = gb_input(g, "x", 2, dx);
    double zeros[64] = {0};
    int w0 = gb_init(g, "Wzero", tt_make(ctx, AMP_F32, 2, dw, zeros));
    int w1 = gb_init(g, "W1", signed_rand(2, dw, 0.1, 0.5, 7));
    int z = gb_node(g, "MatMul", "mm_zero", 2, (int[]){x, w0});
    int r = gb_node(g, "Relu", "relu_zero", 1, (int[]){z});
    gb_output(g, gb_node(g, "MatMul", "mm_after", 2, (int[]){r, w1}));
    amp_model *m = gb_model(g);
    amp_tensor *cal = signed_rand(2, dx, 0.5, 1.5, 8);
    const char *names[] = {"x"};
    said s = {0};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .n_calib = 1,
                              .n_calib_names = 1, .calib_names = names, .calib_inputs = (const amp_tensor *const *)&cal,
                              .explain = listen, .explain_user_data = &s};
    amp_model *c = NULL;
    amp_autocast_report r2 = {.struct_size = sizeof r2};
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r2), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(r2.nodes_underflow_kept, 0);
    cr_assert_eq(s.n, 0, "nothing is FP32 (first: '%s')", s.n ? s.d[0].node : "");
    cr_assert_eq(r2.nodes_16bit, 3);
    amp_tensor_destroy(cal);
    amp_model_destroy(c);
    amp_model_destroy(m);
}
