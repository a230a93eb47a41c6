/* Autocast: the cases of AUTOCAST.md (tests/data/autocast, made by tests/autocast/make_cases.py),
 * the seed models in FP16 and BF16 against their FP32 outputs, range-aware mode on a model that
 * overflows FP16, overrides, rounding modes and bad options. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/grad.h"
#include "base/half.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "tests/testutil.h"

static amp_context *ctx;

static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }

TestSuite(autocast, .init = setup, .fini = teardown);

static amp_model *load(const char *rel) { return tt_load(ctx, rel); }

static amp_model *convert(const amp_model *m, amp_dtype lo, bool keep_io, amp_autocast_report *r) {
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = lo, .io_16bit = !keep_io};
    amp_model *out = NULL;
    amp_status s = amp_model_autocast(m, &o, &out, r);
    cr_assert_eq(s, AMP_OK, "autocast: %s", amp_context_last_error(ctx));
    return out;
}

/* Run model m on dir/test_data_set_0 inputs; outputs into outs[] (owned by the caller). */
static int run_set(amp_model *m, const char *dir, amp_tensor **outs, amp_tensor **want) {
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    int nin = amp_model_input_count(m), nout = amp_model_output_count(m);
    const char *names[16], *onames[16];
    amp_tensor *ins[16] = {0};
    char path[1024];
    for (int i = 0; i < nin; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_input_info(m, i, &vi);
        names[i] = vi.name;
        snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_%d.pb", AMP_SOURCE_DIR, dir, i);
        cr_assert_eq(amp_tensor_load_pb(ctx, path, &ins[i], NULL), AMP_OK, "%s", path);
    }
    for (int i = 0; i < nout; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_output_info(m, i, &vi);
        onames[i] = vi.name;
        outs[i] = NULL;
        if (want) {
            snprintf(path, sizeof path, "%s/%s/test_data_set_0/output_%d.pb", AMP_SOURCE_DIR, dir, i);
            cr_assert_eq(amp_tensor_load_pb(ctx, path, &want[i], NULL), AMP_OK, "%s", path);
        }
    }
    amp_status st = amp_session_run(s, nin, names, (const amp_tensor *const *)ins, nout, onames, outs);
    cr_assert_eq(st, AMP_OK, "run %s: %s", dir, amp_session_last_error(s));
    for (int i = 0; i < nin; i++) amp_tensor_destroy(ins[i]);
    amp_session_destroy(s);
    return nout;
}

/* Relative L2 error of got against want over want's finite elements; every element where want
 * is finite must be finite in got, and non-finite ones must agree. */
static double rel_l2(const amp_tensor *got, const amp_tensor *want) {
    cr_assert_eq(got->numel, want->numel);
    double num = 0, den = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        double x = tt_get(got, i), y = tt_get(want, i);
        if (!isfinite(y)) {
            cr_assert(x == y || (isnan(x) && isnan(y)), "element %lld: %g, expected %g", (long long)i, x, y);
            continue;
        }
        cr_assert(isfinite(x), "element %lld is %g where FP32 gives %g", (long long)i, x, y);
        num += (x - y) * (x - y);
        den += y * y;
    }
    cr_assert_gt(den, 0.0, "expected output is all zeros or non-finite");
    return sqrt(num / den);
}

/* Convert case dir, run it, check every output against the FP32 expectation within tol. */
static void case_matches(const char *dir, amp_dtype lo, double tol, amp_autocast_report *r) {
    char rel[512];
    snprintf(rel, sizeof rel, "%s/model.onnx", dir);
    amp_model *m = load(rel);
    amp_model *c = convert(m, lo, true, r);
    amp_tensor *outs[16], *want[16];
    int n = run_set(c, dir, outs, want);
    for (int i = 0; i < n; i++) {
        double e = rel_l2(outs[i], want[i]);
        cr_assert_leq(e, tol, "%s output %d: relative L2 %g over %g", dir, i, e, tol);
        amp_tensor_destroy(outs[i]);
        amp_tensor_destroy(want[i]);
    }
    amp_model_destroy(c);
    amp_model_destroy(m);
}

static int find_node(const amp_graph *g, const char *op, int from) {
    for (int i = from; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].op_type, op) == 0) return i;
    return -1;
}

static int count_op(const amp_graph *g, const char *op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += strcmp(g->nodes[i].op_type, op) == 0;
    return n;
}

static amp_dtype in_dtype(const amp_graph *g, int node, int k) { return g->values[g->nodes[node].inputs[k]].dtype; }

/* 1 */
Test(autocast, resize_keeps_roi_and_scales_fp32) {
    amp_model *m = load("tests/data/autocast/resize/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    int rz = find_node(c->g, "Resize", 0);
    cr_assert_geq(rz, 0);
    cr_assert_eq(in_dtype(c->g, rz, 0), AMP_F16, "Resize X follows its 16-bit producer");
    for (int k = 1; k < c->g->nodes[rz].n_inputs; k++)
        if (c->g->nodes[rz].inputs[k] >= 0) cr_assert_eq(in_dtype(c->g, rz, k), AMP_F32, "Resize input %d stays FP32", k);
    /* the converted graph type-checks strictly */
    cr_assert_eq(amp_pass_typecheck(c->g, true), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 2 */
Test(autocast, author_cast_in_16bit_region) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/author_cast", AMP_F16, 1e-2, &r);
    amp_model *m = load("tests/data/autocast/author_cast/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    /* no FP32 value between the two MatMuls: the author's Cast was retargeted and merged */
    int mm1 = find_node(c->g, "MatMul", 0), mm2 = find_node(c->g, "MatMul", mm1 + 1);
    cr_assert(mm1 >= 0 && mm2 >= 0);
    cr_assert_eq(in_dtype(c->g, mm2, 0), AMP_F16);
    for (int i = mm1 + 1; i < mm2; i++)
        cr_assert_neq(c->g->nodes[i].op, AMP_OP_CAST, "a cast is left between the MatMuls");
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 3 */
Test(autocast, shared_initializer_is_duplicated) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/shared_init", AMP_F16, 1e-2, &r);
    cr_assert_eq(r.inits_duplicated, 1);
    amp_model *m = load("tests/data/autocast/shared_init/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    int mm = find_node(c->g, "MatMul", 0), add = find_node(c->g, "Add", 0);
    cr_assert_eq(in_dtype(c->g, mm, 1), AMP_F16);
    cr_assert_eq(in_dtype(c->g, add, 1), AMP_F32);
    cr_assert_not_null(c->g->values[c->g->nodes[mm].inputs[1]].init, "the 16-bit copy is an initializer");
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 4 */
Test(autocast, no_cast_round_trips_between_fp32_nodes) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/no_roundtrip", AMP_F16, 1e-2, &r);
    amp_model *m = load("tests/data/autocast/no_roundtrip/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    /* one cast into the MatMul, one out of it: Softmax, Relu and Log stay FP32 together */
    cr_assert_eq(count_op(c->g, "Cast"), 2);
    for (int i = 0; i < c->g->n_nodes; i++) {
        const amp_node *n = &c->g->nodes[i];
        if (n->op != AMP_OP_CAST) continue;
        int p = c->g->values[n->inputs[0]].producer;
        cr_assert(p < 0 || c->g->nodes[p].op != AMP_OP_CAST, "Cast after Cast");
    }
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 5 */
Test(autocast, author_round_trip_saturates) {
    amp_autocast_report r = {.struct_size = sizeof r};
    /* the expected output holds +-inf where the author's FP16 cast saturates */
    case_matches("tests/data/autocast/author_roundtrip", AMP_F16, 1e-2, &r);
    case_matches("tests/data/autocast/author_roundtrip", AMP_BF16, 3e-2, &r);
    amp_model *m = load("tests/data/autocast/author_roundtrip/model.onnx");
    amp_model *c = convert(m, AMP_BF16, true, NULL);
    /* under BF16 the author's FP16 cast must still be there */
    bool found = false;
    for (int i = 0; i < c->g->n_nodes; i++)
        if (c->g->nodes[i].op == AMP_OP_CAST && amp_attr_int(&c->g->nodes[i], "to", 0) == AMP_F16) found = true;
    cr_assert(found, "the author's Cast(to=FLOAT16) was removed");
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 6 */
Test(autocast, reduce_mean_over_many_elements) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/reduce_mean_big", AMP_F16, 1e-3, &r);
    case_matches("tests/data/autocast/reduce_mean_big", AMP_BF16, 1e-2, &r);
}

/* 7 */
Test(autocast, layernorm_large_values) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/layernorm", AMP_F16, 1e-2, &r);
    case_matches("tests/data/autocast/layernorm_decomposed", AMP_F16, 1e-2, &r);
    case_matches("tests/data/autocast/layernorm_decomposed", AMP_BF16, 3e-2, &r);
    /* at opset 17 the decomposition is fused, and the fused node runs in FP32 */
    amp_model *m = load("tests/data/autocast/layernorm_decomposed/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    int ln = find_node(c->g, "LayerNormalization", 0);
    cr_assert_geq(ln, 0);
    cr_assert_eq(in_dtype(c->g, ln, 0), AMP_F32);
    cr_assert_eq(count_op(c->g, "Pow"), 0);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 8 */
Test(autocast, masked_softmax) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/softmax_mask", AMP_F16, 1e-2, &r);
    /* the mask (-1e9, FP32 min) is known: its Add stays FP32 instead of being clamped */
    cr_assert_geq(r.nodes_range_kept, 1);
    case_matches("tests/data/autocast/softmax_mask", AMP_BF16, 3e-2, &r);
}

/* 9 */
Test(autocast, constants_keep_their_meaning) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/constants", AMP_F16, 1e-2, &r);
    amp_model *m = load("tests/data/autocast/constants/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    /* 2e4 keeps its value (FP32 or exactly representable), eps stays nonzero */
    int found2e4 = 0, found_eps = 0;
    for (int i = 0; i < c->g->n_inits; i++) {
        const amp_tensor *t = c->g->values[c->g->inits[i]].init;
        if (t->numel != 1) continue;
        double v = tt_get(t, 0);
        if (v == 2e4) found2e4++;
        if (v > 0 && v < 1e-6) found_eps++;
    }
    cr_assert_geq(found2e4, 1, "2e4 lost its value");
    cr_assert_geq(found_eps, 1, "eps became zero");
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 9, conversion itself: tiny values are not flushed, huge ones are clamped, on both modes */
Test(autocast, constant_conversion_clamps_without_flushing) {
    amp_model *m = load("tests/data/tiny_consts/model.onnx");
    for (int mode = 0; mode < 2; mode++) {
        amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16,
                                  .round = (amp_round_mode)mode, .range_limit = 1e9};
        amp_model *c = NULL;
        amp_autocast_report r = {.struct_size = sizeof r};
        cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_geq(r.values_clamped, 2);
        int seen = 0;
        for (int i = 0; i < c->g->n_inits; i++) {
            const amp_tensor *t = c->g->values[c->g->inits[i]].init;
            if (t->dtype != AMP_F16) continue;
            for (int64_t e = 0; e < t->numel; e++) {
                double v = tt_get(t, e);
                cr_assert(isfinite(v), "converted constant is not finite");
                cr_assert_neq(v, 0.0, "a nonzero constant was flushed to zero");
                cr_assert_leq(fabs(v), 65504.0);
                seen++;
            }
        }
        cr_assert_gt(seen, 0);
        amp_model_destroy(c);
    }
    amp_model_destroy(m);
}

/* 10 */
Test(autocast, keep_io_types_sorted_and_fp32_at_the_boundary) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/keep_io", AMP_F16, 1e-2, &r);
    amp_model *m = load("tests/data/autocast/keep_io/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    for (int i = 0; i < c->g->n_inputs; i++) cr_assert_eq(c->g->values[c->g->inputs[i]].dtype, AMP_F32);
    for (int i = 0; i < c->g->n_outputs; i++) cr_assert_eq(c->g->values[c->g->outputs[i]].dtype, AMP_F32);
    /* every node reads only values defined before it */
    for (int i = 0; i < c->g->n_nodes; i++)
        for (int k = 0; k < c->g->nodes[i].n_inputs; k++) {
            int v = c->g->nodes[i].inputs[k];
            if (v >= 0) cr_assert_lt(c->g->values[v].producer, i, "node %d reads a later value", i);
        }
    /* with io_16bit the boundary is 16-bit */
    amp_model *c2 = convert(m, AMP_F16, false, NULL);
    for (int i = 0; i < c2->g->n_inputs; i++) cr_assert_eq(c2->g->values[c2->g->inputs[i]].dtype, AMP_F16);
    for (int i = 0; i < c2->g->n_outputs; i++) cr_assert_eq(c2->g->values[c2->g->outputs[i]].dtype, AMP_F16);
    cr_assert_eq(amp_pass_typecheck(c2->g, true), AMP_OK);
    amp_model_destroy(c2);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 11 */
Test(autocast, dtype_attribute_ops_stay_consistent) {
    amp_autocast_report r = {.struct_size = sizeof r};
    case_matches("tests/data/autocast/dtype_attr", AMP_F16, 1e-2, &r);
    amp_model *m = load("tests/data/autocast/dtype_attr_random/model.onnx");
    amp_model *c = convert(m, AMP_F16, true, NULL);
    cr_assert_eq(amp_pass_typecheck(c->g, true), AMP_OK, "%s", amp_context_last_error(ctx));
    int rn = find_node(c->g, "RandomNormalLike", 0);
    cr_assert_geq(rn, 0);
    cr_assert_eq(c->g->values[c->g->nodes[rn].outputs[0]].dtype, AMP_F32);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* 12 */
Test(autocast, already_16bit_model_is_left_alone) {
    amp_model *m = load("tests/data/autocast/already_fp16/model.onnx");
    amp_autocast_report r = {.struct_size = sizeof r};
    amp_model *c = convert(m, AMP_F16, false, &r);
    cr_assert_eq(r.already_16bit, 1);
    cr_assert_eq(c->g->n_nodes, m->g->n_nodes);
    /* the same file comes out */
    void *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    cr_assert_eq(amp_onnx_export(m->g, &b1, &n1), AMP_OK);
    cr_assert_eq(amp_onnx_export(c->g, &b2, &n2), AMP_OK);
    cr_assert(n1 == n2 && memcmp(b1, b2, n1) == 0, "the FP16 model changed");
    amp_free(ctx, b1);
    amp_free(ctx, b2);
    /* and a model amprt converted is not converted again */
    amp_model *l = load("models/lenet/model.onnx");
    amp_model *l1 = convert(l, AMP_F16, true, NULL);
    amp_model *l2 = convert(l1, AMP_F16, true, &r);
    cr_assert_eq(r.already_16bit, 1);
    cr_assert_eq(l2->g->n_nodes, l1->g->n_nodes);
    amp_model_destroy(l2);
    amp_model_destroy(l1);
    amp_model_destroy(l);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* Every seed model, FP16 and BF16, against FP32; matmul/conv FLOPs all in 16 bits. */
Test(autocast, seed_models_fp16_bf16) {
    const char *models[] = {"models/lenet",     "models/mlp",       "models/mlp_decomposed", "models/encoder",
                            "models/resnet",    "models/mobilenetv2", "models/gpt_block",    "models/unet",
                            "models/lstm_tagger", "models/detector"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        amp_autocast_report r = {.struct_size = sizeof r};
        case_matches(models[i], AMP_F16, 1e-2, &r);
        cr_assert_gt(r.nodes_16bit, 0);
        case_matches(models[i], AMP_BF16, 1e-2, &r);
    }
}

/* Range-aware mode: op-list-only autocast overflows FP16 on this model; calibration keeps the
 * square and what reads it in FP32. */
/* The calibration progress callback's calls: 1..n in order, total n. */
typedef struct calib_seen {
    int calls;
    bool in_order;
} calib_seen;
static void calib_progress(void *user, int done, int total) {
    calib_seen *c = user;
    c->calls++;
    c->in_order = (c->calls == 1 || c->in_order) && done == c->calls && total >= done;
}

Test(autocast, range_aware_keeps_overflowing_nodes_fp32) {
    amp_model *m = load("models/overflow/model.onnx");
    amp_model *plain = convert(m, AMP_F16, true, NULL);
    amp_tensor *outs[4], *want[4];
    run_set(plain, "models/overflow", outs, want);
    bool bad = false;
    for (int64_t i = 0; i < outs[0]->numel; i++) bad |= !isfinite(tt_get(outs[0], i));
    double e_plain = bad ? INFINITY : sqrt(tt_nse(outs[0], want[0]));
    cr_assert(bad || e_plain > 1e-2, "op-list autocast should fail on this model (error %g)", e_plain);
    amp_tensor_destroy(outs[0]);

    /* calibration sets */
    amp_tensor *cal[8];
    const char *name = m->g->values[amp_model_input_value(m, 0)].name;
    const char *names[8];
    int n = 0;
    for (; n < 8; n++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/models/overflow/calib/set_%d/input_0.pb", AMP_SOURCE_DIR, n);
        FILE *f = fopen(path, "rb");
        if (!f) break;
        fclose(f);
        cr_assert_eq(amp_tensor_load_pb(ctx, path, &cal[n], NULL), AMP_OK);
        names[n] = name;
    }
    cr_assert_geq(n, 2);
    calib_seen seen = {0};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .n_calib = n,
                              .n_calib_names = 1, .calib_names = names, .calib_inputs = (const amp_tensor *const *)cal,
                              .progress = calib_progress, .progress_user_data = &seen};
    amp_model *ranged = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    cr_assert_eq(amp_model_autocast(m, &o, &ranged, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(seen.calls, n, "progress called %d times for %d runs", seen.calls, n);
    cr_assert(seen.in_order, "progress went 1, 2, ... n with total n");
    cr_assert_geq(r.nodes_range_kept, 1);
    cr_assert_geq(r.nodes_16bit, 1, "the first MatMul stays 16-bit");
    run_set(ranged, "models/overflow", outs, NULL);
    double e = rel_l2(outs[0], want[0]);
    cr_assert_leq(e, 1e-2, "range-aware error %g", e);
    amp_tensor_destroy(outs[0]);
    amp_tensor_destroy(want[0]);
    for (int i = 0; i < n; i++) amp_tensor_destroy(cal[i]);
    amp_model_destroy(ranged);
    amp_model_destroy(plain);
    amp_model_destroy(m);
}

Test(autocast, block_lists) {
    amp_model *m = load("models/mlp/model.onnx");
    const char *ops[] = {"Gemm"};
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .block_ops = ops,
                              .n_block_ops = 1};
    amp_model *c = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK);
    cr_assert_eq(r.nodes_blocked, count_op(m->g, "Gemm"));
    for (int i = 0; i < c->g->n_nodes; i++)
        if (c->g->nodes[i].op == AMP_OP_GEMM) cr_assert_eq(in_dtype(c->g, i, 0), AMP_F32);
    amp_model_destroy(c);
    /* one node by name */
    int g0 = find_node(m->g, "Gemm", 0);
    const char *nodes[] = {m->g->nodes[g0].name};
    amp_autocast_options o2 = {.struct_size = sizeof o2, .dtype = AMP_F16, .block_nodes = nodes,
                               .n_block_nodes = 1};
    cr_assert_eq(amp_model_autocast(m, &o2, &c, &r), AMP_OK);
    cr_assert_eq(r.nodes_blocked, 1);
    int kept = 0, low = 0;
    for (int i = 0; i < c->g->n_nodes; i++)
        if (c->g->nodes[i].op == AMP_OP_GEMM) {
            if (in_dtype(c->g, i, 0) == AMP_F32) kept++;
            else low++;
        }
    cr_assert_eq(kept, 1);
    cr_assert_gt(low, 0);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* Nearest-even and truncation differ exactly where the dropped bits are at least half an ulp. */
Test(autocast, rounding_modes_differ_where_they_should) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_model *c[2];
    for (int mode = 0; mode < 2; mode++) {
        amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16,
                                  .round = (amp_round_mode)mode};
        cr_assert_eq(amp_model_autocast(m, &o, &c[mode], NULL), AMP_OK);
    }
    int64_t differ = 0, total = 0;
    for (int i = 0; i < m->g->n_inits; i++) {
        const amp_value *v = &m->g->values[m->g->inits[i]];
        int a = amp_graph_find_value(c[0]->g, v->name), b = amp_graph_find_value(c[1]->g, v->name);
        const amp_tensor *tn = c[0]->g->values[a].init, *tz = c[1]->g->values[b].init;
        if (tn->dtype != AMP_F16) continue;
        const float *x = v->init->data;
        for (int64_t e = 0; e < v->init->numel; e++, total++) {
            uint16_t hn = ((const uint16_t *)tn->data)[e], hz = ((const uint16_t *)tz->data)[e];
            float fz = amp_f16_to_f32(hz), fn = amp_f16_to_f32(hn);
            cr_assert_leq(fabsf(fz), fabsf(x[e]), "truncation grew |x|");
            cr_assert_leq(fabsf(fn - x[e]), fabsf(fz - x[e]), "nearest is not nearer");
            /* the 13 dropped mantissa bits of a normal value decide */
            uint32_t bits;
            memcpy(&bits, &x[e], 4);
            bool half_or_more = fabsf(x[e]) >= 6.103515625e-05f && (bits & 0x1fffu) >= 0x1000u;
            if (half_or_more && (bits & 0x1fffu) != 0x1000u) cr_assert_neq(hn, hz);
            if (hn != hz) differ++;
        }
    }
    cr_assert_gt(total, 1000);
    cr_assert_gt(differ, total / 4, "the modes should differ on about half the values");
    cr_assert_lt(differ, total * 3 / 4);
    amp_model_destroy(c[0]);
    amp_model_destroy(c[1]);
    amp_model_destroy(m);
}

/* The Cast kernel truncates when the node carries the flag. */
Test(autocast, cast_kernel_truncation_flag) {
    int64_t dims[1] = {4};
    /* 1 + 2^-11 + 2^-12 rounds up to 1 + 2^-10 but truncates to 1 */
    double vals[4] = {1.0 + 1.0 / 2048 + 1.0 / 4096, -(1.0 + 1.0 / 2048 + 1.0 / 4096), 3.0, 70000.0};
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, dims, vals);
    for (int mode = 0; mode < 2; mode++) {
        amp_test_node *t = tn_new(ctx, "Cast");
        tn_int(t, "to", AMP_F16);
        if (mode) t->node.flags |= AMP_NODE_CAST_RTZ;
        amp_tensor *y = NULL;
        cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
        double y0 = tt_get(y, 0), y1 = tt_get(y, 1), y2 = tt_get(y, 2), y3 = tt_get(y, 3);
        cr_assert_eq(y0, mode ? 1.0 : 1.0 + 1.0 / 1024);
        cr_assert_eq(y1, mode ? -1.0 : -(1.0 + 1.0 / 1024));
        cr_assert_eq(y2, 3.0);
        if (mode) cr_assert_eq(y3, 65504.0, "truncation saturates to the largest finite value");
        else cr_assert(isinf(y3));
        amp_tensor_destroy(y);
        tn_free(t);
    }
    amp_tensor_destroy(x);
}

Test(autocast, bad_options) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_model *c = (amp_model *)0x1;
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F64};
    cr_assert_eq(amp_model_autocast(m, &o, &c, NULL), AMP_ERR_INVALID_ARG);
    cr_assert_eq(c, (amp_model *)0x1, "out-parameter touched on failure");
    cr_assert(strstr(amp_context_last_error(ctx), "float16") != NULL);
    o.dtype = AMP_F16;
    o.n_block_ops = 2; /* with a NULL list */
    cr_assert_eq(amp_model_autocast(m, &o, &c, NULL), AMP_ERR_INVALID_ARG);
    o.n_block_ops = 0;
    o.round = (amp_round_mode)7;
    cr_assert_eq(amp_model_autocast(m, &o, &c, NULL), AMP_ERR_INVALID_ARG);
    /* a calibration input the model does not have */
    int64_t dims[2] = {1, 16};
    amp_tensor *t = tt_rand(ctx, AMP_F32, 2, dims, -1, 1, 3);
    const char *nm[1] = {"no_such_input"};
    amp_autocast_options o3 = {.struct_size = sizeof o3, .dtype = AMP_F16, .n_calib = 1, .n_calib_names = 1,
                               .calib_names = nm, .calib_inputs = (const amp_tensor *const *)&t};
    cr_assert_eq(amp_model_autocast(m, &o3, &c, NULL), AMP_ERR_NOT_FOUND);
    cr_assert(strstr(amp_context_last_error(ctx), "no_such_input") != NULL);
    amp_tensor_destroy(t);
    cr_assert_eq(amp_model_autocast(NULL, &o, &c, NULL), AMP_ERR_INVALID_ARG);
    amp_model_destroy(m);
}

/* Found by fuzzing: a decomposed-LayerNorm pattern whose nodes lost inputs (a Flatten with none,
 * a ReduceMean reading an undefined name). The fusion must check each node's shape before
 * reading its inputs and outputs; the model converts, leaving those nodes alone. */
Test(autocast, fuzz_layernorm_pattern_with_missing_inputs) {
    amp_model *m = load("tests/bad/fuzz_layernorm_pattern.onnx");
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16};
    amp_model *c = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    cr_assert_eq(amp_model_autocast(m, &o, &c, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(count_op(c->g, "LayerNormalization"), 0);
    cr_assert_eq(count_op(c->g, "ReduceMean"), 2);
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* Found by fuzzing: a Cast node that lost its input and output names (protobuf-c reads the file;
 * the rewrite of the author's casts must check each Cast's counts before reading them). The
 * conversion finishes and leaves that node alone. */
Test(autocast, fuzz_cast_without_inputs) {
    amp_model *m = load("tests/bad/fuzz_cast_without_inputs.onnx");
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16};
    amp_model *c = NULL;
    amp_autocast_report r = {.struct_size = sizeof r};
    amp_status s = amp_model_autocast(m, &o, &c, &r);
    cr_expect(s == AMP_OK, "%s: %s", amp_status_name(s), amp_context_last_error(ctx));
    int casts_without_inputs = 0;
    for (int i = 0; c && i < c->g->n_nodes; i++)
        if (c->g->nodes[i].op == AMP_OP_CAST && c->g->nodes[i].n_inputs == 0) casts_without_inputs++;
    cr_expect_gt(casts_without_inputs, 0, "the malformed Cast is kept as it was");
    amp_model_destroy(c);
    amp_model_destroy(m);
}

/* Does the graph carry metadata entry key? */
static bool graph_has_meta(const amp_graph *g, const char *key) {
    for (int i = 0; i < g->n_meta; i++)
        if (strcmp(g->meta_keys[i], key) == 0) return true;
    return false;
}

/* The order passes/pipeline.c writes down for conversion: type check, LayerNorm fusion,
 * colouring and casts, cleanup, strict type check, metadata. A decomposed LayerNorm fused before
 * colouring stays one FP32 node; the colouring pass on its own fuses nothing, cleans nothing up
 * and leaves no metadata, so the order is the driver's alone. */
Test(autocast, driver_fuses_layernorm_before_colouring) {
    amp_model *m = load("tests/data/autocast/layernorm_decomposed/model.onnx");
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16};
    amp_autocast_report r;
    int reduce_means = count_op(m->g, "ReduceMean");
    cr_assert_gt(reduce_means, 0);
    cr_assert_eq(count_op(m->g, "LayerNormalization"), 0);

    /* the pass alone, on a type-checked copy: the decomposition stays and is coloured piece by
     * piece */
    amp_graph *bare = NULL;
    cr_assert_eq(amp_graph_clone(m->g, &bare), AMP_OK);
    cr_assert_eq(amp_pass_typecheck(bare, true), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_pass_autocast(bare, &o, NULL, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(count_op(bare, "LayerNormalization"), 0, "the colouring pass fused by itself");
    cr_expect_eq(count_op(bare, "ReduceMean"), reduce_means);
    cr_expect_eq(r.casts_removed, 0, "the colouring pass cleaned up by itself");
    cr_expect(!graph_has_meta(bare, "amprt.autocast"), "the colouring pass wrote the metadata");
    amp_graph_destroy(bare);

    /* the driver: fused first, so one LayerNormalization computing in FP32 */
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_clone(m->g, &g), AMP_OK);
    cr_assert_eq(amp_passes_convert(g, &o, NULL, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(count_op(g, "ReduceMean"), 0);
    cr_expect_eq(count_op(g, "Pow"), 0);
    int ln = find_node(g, "LayerNormalization", 0);
    cr_assert_geq(ln, 0);
    cr_expect_eq(count_op(g, "LayerNormalization"), 1);
    cr_expect_eq(amp_node_precision(g, &g->nodes[ln]), AMP_F32);
    cr_expect(graph_has_meta(g, "amprt.autocast"));
    cr_expect_eq(r.already_16bit, 0);
    /* the same graph through amp_model_autocast (which calls the driver) */
    amp_model *c = convert(m, AMP_F16, true, NULL);
    cr_expect_eq(amp_graph_hash(c->g), amp_graph_hash(g), "amp_model_autocast and the driver disagree");
    amp_model_destroy(c);
    /* a second conversion is a no-op */
    int nodes = g->n_nodes;
    cr_assert_eq(amp_passes_convert(g, &o, NULL, &r), AMP_OK);
    cr_expect_eq(r.already_16bit, 1);
    cr_expect_eq(g->n_nodes, nodes);
    amp_graph_destroy(g);
    amp_model_destroy(m);
}

/* ---- the training order (amp_passes_training) ------------------------------------------------ */

typedef struct order_probe {
    int calls[3];   /* the order forward, seed and optimizer were called in (1-based) */
    int n;
    bool converted_at_seed; /* autocast had run when the seed was asked for */
    int nodes_at_seed;
    int nodes_at_optimizer;
    int grad;
} order_probe;

/* The loss: the mean of the model's output, as output 0. */
static amp_status probe_forward(void *user, amp_graph *g) {
    order_probe *p = user;
    p->calls[0] = ++p->n;
    amp_grad_ctx gc = {.ctx = g->ctx, .g = g, .node = g->n_nodes - 1};
    amp_node *n = NULL;
    int loss = -1;
    amp_status s = amp_grad_node(&gc, "ReduceMean", "", 1, &g->outputs[0], 1, &loss, &n);
    if (s || (s = amp_grad_attr_int(&gc, n, "keepdims", 0))) return s;
    g->values[g->outputs[0]].is_output = false;
    g->outputs[0] = loss;
    g->n_outputs = 1;
    g->values[loss].is_output = true;
    return amp_graph_link(g);
}

/* The seed one; the parameter is the graph's first input. */
static amp_status probe_seed(void *user, amp_graph *g, int loss, int *seed, int *params) {
    order_probe *p = user;
    p->calls[1] = ++p->n;
    p->converted_at_seed = graph_has_meta(g, "amprt.autocast") && g->values[loss].dtype != AMP_UNDEFINED;
    p->nodes_at_seed = g->n_nodes;
    amp_grad_ctx gc = {.ctx = g->ctx, .g = g, .node = g->n_nodes - 1};
    *seed = amp_grad_const_scalar(&gc, g->values[loss].dtype, 1.0);
    params[0] = g->inputs[0];
    return *seed < 0 ? AMP_ERR_NO_MEMORY : AMP_OK;
}

/* Records when it ran and the input's gradient; adds nothing. */
static amp_status probe_optimizer(void *user, amp_graph *g, int loss, const int *params, const int *grads) {
    (void)loss;
    (void)params;
    order_probe *p = user;
    p->calls[2] = ++p->n;
    p->nodes_at_optimizer = g->n_nodes;
    p->grad = grads[0];
    return AMP_OK;
}

/* The order passes/pipeline.c writes down for training: forward and loss, autocast, seed,
 * autodiff, optimizer, and a linked graph at the end. */
Test(autocast, driver_training_order) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_clone(m->g, &g), AMP_OK);
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16};
    order_probe p = {.grad = -2};
    amp_training_steps st = {.user = &p,
                             .n_params = 1,
                             .forward = probe_forward,
                             .seed = probe_seed,
                             .optimizer = probe_optimizer,
                             .autocast = &o};
    cr_assert_eq(amp_passes_training(g, &st), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect(p.calls[0] == 1 && p.calls[1] == 2 && p.calls[2] == 3, "builders called out of order");
    cr_expect(p.converted_at_seed, "the seed was asked for before autocast and the type check");
    cr_expect_gt(p.nodes_at_optimizer, p.nodes_at_seed, "no backward nodes before the optimizer");
    cr_assert_geq(p.grad, 0, "the input's gradient is missing");
    /* the input stays FP32 at the boundary (the default), so its gradient arrives in FP32 */
    cr_assert_eq(amp_pass_typecheck(g, false), AMP_OK);
    cr_expect_eq(g->values[p.grad].dtype, AMP_F32);
    cr_expect_geq(g->values[p.grad].producer, 0);
    amp_graph_destroy(g);
    amp_model_destroy(m);
}
