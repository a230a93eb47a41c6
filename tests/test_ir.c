/* IR tests: ONNX import/export round trips, tensor files, op table, linking. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ir/grad.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { amp_context_create(NULL, &ctx); }
static void teardown(void) { amp_context_destroy(ctx); }

TestSuite(ir, .init = setup, .fini = teardown);

Test(ir, op_table_lookup) {
    cr_expect_eq(amp_op_lookup("Conv", ""), AMP_OP_CONV);
    cr_expect_eq(amp_op_lookup("Conv", "ai.onnx"), AMP_OP_CONV);
    cr_expect_eq(amp_op_lookup("Conv", "com.example"), AMP_OP_UNKNOWN);
    cr_expect_eq(amp_op_lookup("NoSuchOp", ""), AMP_OP_UNKNOWN);
    for (int i = 1; i < AMP_OP_COUNT; i++) {
        cr_expect(amp_op_table[i].infer != NULL, "op %s has no inference", amp_op_table[i].name);
        cr_expect_eq(amp_op_lookup(amp_op_table[i].name, amp_op_table[i].domain), i, "%s", amp_op_table[i].name);
    }
}

static bool default_domain(const char *d) { return !d[0] || strcmp(d, "ai.onnx") == 0; }

/* The type rules are data of the op table; only the training and preview domains (nodes amprt
 * makes itself, or optimizers autocast never touches) go without one. */
Test(ir, op_table_type_rules) {
    for (int i = 1; i < AMP_OP_COUNT; i++) {
        const amp_op_info *o = &amp_op_table[i];
        cr_expect_eq(o->types.known, default_domain(o->domain), "%s: a rule exactly for default-domain ops", o->name);
        if (o->types_fn) cr_expect(o->types.known, "%s: a type function on an op without a rule", o->name);
        for (int k = 0; k < 8; k++) {
            int rule = o->types.out_rule[k];
            if (rule == 0) continue;
            cr_expect(!(o->types.tout >> k & 1), "%s: output %d both T and fixed", o->name, k);
            if (rule < 0) cr_expect_lt(-rule - 1, 32, "%s: output %d follows input %d", o->name, k, -rule - 1);
            else cr_expect_neq(amp_dtype_size((amp_dtype)rule), 0, "%s: output %d has dtype %d", o->name, k, rule);
        }
        /* with no T output, output 0's type comes from a rule or the function */
        if (o->types.known && !(o->types.tout & 1))
            cr_expect(o->types.out_rule[0] != 0 || o->types_fn, "%s: output 0 has no type", o->name);
    }
}

/* amp_node_type_rule reads the table (masks cut to the node's inputs and outputs), a function
 * where the rule depends on attributes or the opset, and a short list for ops outside it. */
Test(ir, node_type_rule_from_table) {
    amp_graph g = {.opset = 17};
    int io[4] = {0, 1, 2, 3};
    amp_node n = {.op_type = "TopK", .domain = "", .op = AMP_OP_TOP_K, .inputs = io, .n_inputs = 2, .outputs = io, .n_outputs = 2};
    amp_type_rule r;
    amp_node_type_rule(&g, &n, &r);
    cr_expect(r.known);
    cr_expect_eq(r.tin, 1u);
    cr_expect_eq(r.tout, 1u);
    cr_expect_eq(r.out_rule[1], AMP_I64);
    n = (amp_node){.op_type = "Add", .domain = "", .op = AMP_OP_ADD, .inputs = io, .n_inputs = 2, .outputs = io, .n_outputs = 1};
    amp_node_type_rule(&g, &n, &r);
    cr_expect_eq(r.tin, 3u);
    cr_expect_eq(r.tout, 1u);
    /* BatchNormalization: statistics of their own type from opset 15 */
    n = (amp_node){.op_type = "BatchNormalization", .domain = "", .op = AMP_OP_BATCH_NORM, .inputs = io, .n_inputs = 5,
                   .outputs = io, .n_outputs = 3};
    amp_node_type_rule(&g, &n, &r);
    cr_expect_eq(r.tin, 1u);
    cr_expect_eq(r.out_rule[1], -4);
    g.opset = 14;
    amp_node_type_rule(&g, &n, &r);
    cr_expect_eq(r.tin, 0x1fu);
    cr_expect_eq(r.tout, 0x7u);
    n = (amp_node){.op_type = "NonZero", .domain = "", .inputs = io, .n_inputs = 1, .outputs = io, .n_outputs = 1};
    amp_node_type_rule(&g, &n, &r);
    cr_expect(r.known, "an op outside the table that autocast still converts");
    cr_expect_eq(r.out_rule[0], AMP_I64);
    n = (amp_node){.op_type = "NoSuchOp", .domain = "", .inputs = io, .n_inputs = 1, .outputs = io, .n_outputs = 1};
    amp_node_type_rule(&g, &n, &r);
    cr_expect(!r.known);
    n = (amp_node){.op_type = "SumToShape", .domain = "ai.amprt.training", .op = AMP_OP_SUM_TO_SHAPE, .inputs = io,
                   .n_inputs = 2, .outputs = io, .n_outputs = 1};
    amp_node_type_rule(&g, &n, &r);
    cr_expect(!r.known);
}

/* Every op with a gradient names its family builder; ops of the training domain have none. */
Test(ir, op_table_gradient_builders) {
    for (int i = 1; i < AMP_OP_COUNT; i++) {
        const amp_op_info *o = &amp_op_table[i];
        cr_expect_eq(o->has_grad, o->grad_builder != NULL, "%s", o->name);
        if (strcmp(o->domain, "ai.amprt.training") == 0) cr_expect(!o->has_grad, "%s", o->name);
    }
    cr_expect(amp_op_table[AMP_OP_CONV].grad_builder == amp_grad_conv);
    cr_expect(amp_op_table[AMP_OP_RELU].grad_builder == amp_grad_elementwise);
    cr_expect(amp_op_table[AMP_OP_REDUCE_SUM].grad_builder == amp_grad_reduce);
    cr_expect(amp_op_table[AMP_OP_MAT_MUL].grad_builder == amp_grad_matmul);
    cr_expect(amp_op_table[AMP_OP_SOFTMAX].grad_builder == amp_grad_nn);
    cr_expect(amp_op_table[AMP_OP_SHAPE].grad_builder == NULL);
}

/* The bf16 column against a few of onnx's numbers (all of them: tests/peer/test_op_table_peer.py). */
Test(ir, op_table_bf16_opsets) {
    cr_expect_eq(amp_op_table[AMP_OP_ADD].bf16_opset, 13);
    cr_expect_eq(amp_op_table[AMP_OP_WHERE].bf16_opset, 16);
    cr_expect_eq(amp_op_table[AMP_OP_CONV].bf16_opset, 22);
    cr_expect_eq(amp_op_table[AMP_OP_TOP_K].bf16_opset, 24);
    cr_expect_eq(amp_op_table[AMP_OP_EINSUM].bf16_opset, 28);
    cr_expect_eq(amp_op_table[AMP_OP_SHRINK].bf16_opset, 0);
    cr_expect_eq(amp_op_table[AMP_OP_AND].bf16_opset, 0);
}

/* A graph input of dtype dt and dims [2, 2]. */
static int square_input(amp_graph *g, const char *name, amp_dtype dt) {
    int v = amp_graph_new_value(g, name);
    amp_value *val = &g->values[v];
    val->dtype = dt;
    val->rank = 2;
    val->dims[0] = val->dims[1] = (amp_dim){2, -1};
    val->is_input = val->declared = true;
    g->inputs[g->n_inputs++] = v;
    return v;
}

/* Append a node of the default domain with one fresh output; the output's value id. */
static int add_node(amp_graph *g, const char *op, int nin, const int *ins) {
    char nm[32];
    snprintf(nm, sizeof nm, "v%d", g->n_values);
    amp_node n = {.name = amp_strdup(ctx, nm), .op_type = amp_strdup(ctx, op), .domain = amp_strdup(ctx, ""),
                  .op = amp_op_lookup(op, ""), .inputs = amp_alloc(ctx, sizeof(int) * (size_t)nin), .n_inputs = nin,
                  .outputs = amp_alloc(ctx, sizeof(int)), .n_outputs = 1};
    memcpy(n.inputs, ins, sizeof(int) * (size_t)nin);
    int v = n.outputs[0] = amp_graph_new_value(g, nm);
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    return v;
}

/* MatMul -> Where -> MatMul converted to BF16: the dtype Where computes in. */
static amp_dtype where_precision_bf16(int64_t opset) {
    amp_graph *g;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = opset;
    g->inputs = amp_calloc(ctx, 4, sizeof(int));
    g->outputs = amp_calloc(ctx, 2, sizeof(int));
    int a = square_input(g, "a", AMP_F32), b = square_input(g, "b", AMP_F32), m = square_input(g, "m", AMP_BOOL);
    int ab[2] = {a, b}, w[3] = {m, -1, -1}, yb[2] = {-1, b};
    int x = add_node(g, "MatMul", 2, ab);
    w[1] = w[2] = x;
    int y = add_node(g, "Where", 3, w);
    yb[0] = y;
    int z = add_node(g, "MatMul", 2, yb);
    g->values[z].is_output = true;
    g->outputs[g->n_outputs++] = z;
    cr_assert_eq(amp_graph_link(g), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_BF16};
    amp_autocast_report r;
    cr_assert_eq(amp_passes_convert(g, &o, NULL, &r), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_dtype t = AMP_UNDEFINED;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == AMP_OP_WHERE) t = amp_node_precision(g, &g->nodes[i]);
    amp_graph_destroy(g);
    return t;
}

/* The bf16 column decides autocast for files: Where has a bfloat16 type from opset 16 only, so
 * at 15 it stays FP32 between two BF16 MatMuls. */
Test(ir, op_table_bf16_opset_reaches_autocast) {
    cr_expect_eq(where_precision_bf16(15), AMP_F32);
    cr_expect_eq(where_precision_bf16(16), AMP_BF16);
}

/* Value inputs are table data; these are the masks session planning relied on before. */
Test(ir, op_table_value_inputs) {
    static const struct {
        amp_op op;
        int k;
        bool reads;
    } pins[] = {
        {AMP_OP_RESHAPE, 0, false}, {AMP_OP_RESHAPE, 1, true}, {AMP_OP_SLICE, 4, true},
        {AMP_OP_REDUCE_SUM, 0, false}, {AMP_OP_REDUCE_SUM, 1, true}, {AMP_OP_CLIP, 2, true},
        {AMP_OP_DROPOUT, 1, true}, {AMP_OP_RANGE, 0, true}, {AMP_OP_CONSTANT_OF_SHAPE, 0, true},
        {AMP_OP_TOP_K, 0, false}, {AMP_OP_TOP_K, 1, true}, {AMP_OP_RESIZE, 0, false},
        {AMP_OP_RESIZE, 3, true}, {AMP_OP_GEMM, 1, false}, {AMP_OP_ADD, 1, false},
        {AMP_OP_ADAM, 0, false}, {AMP_OP_ADAM, 3, false}, {AMP_OP_MOMENTUM, 1, false},
        {AMP_OP_SUM_TO_SHAPE, 1, true}, {AMP_OP_OPTIM_SGD, 40, true}, {AMP_OP_RESIZE_GRAD, 0, false},
        {AMP_OP_RESIZE_GRAD, 1, true}, {AMP_OP_UNKNOWN, 0, false},
    };
    for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++)
        cr_expect_eq(amp_op_value_input(pins[i].op, pins[i].k), pins[i].reads, "%s input %d",
                     amp_op_table[pins[i].op].name, pins[i].k);
    cr_expect(amp_op_dims_only(AMP_OP_SHAPE));
    cr_expect(amp_op_dims_only(AMP_OP_EYE_LIKE));
    cr_expect(!amp_op_dims_only(AMP_OP_RESHAPE));
    cr_expect(!amp_op_dims_only(AMP_OP_UNKNOWN));
    /* every op of the training domain states its value inputs (inference may read shapes) */
    for (int i = 1; i < AMP_OP_COUNT; i++)
        if (strcmp(amp_op_table[i].domain, "ai.amprt.training") == 0) {
            bool any = false;
            for (int k = 0; k < 32; k++) any |= amp_op_value_input((amp_op)i, k);
            cr_expect(any, "%s", amp_op_table[i].name);
        }
}

Test(ir, status_names) {
    cr_expect_str_eq(amp_status_name(AMP_ERR_PARSE), "AMP_ERR_PARSE");
    cr_expect_str_eq(amp_status_name((amp_status)999), "unknown");
    cr_expect_str_eq(amp_dtype_name(AMP_BF16), "bfloat16");
}

static void round_trip(const char *path) {
    void *buf = NULL, *buf2 = NULL, *buf3 = NULL;
    size_t n = 0, n2 = 0, n3 = 0;
    cr_assert_eq(amp_read_file(ctx, path, 0, &buf, &n), AMP_OK);
    amp_graph *g1, *g2;
    cr_assert_eq(amp_onnx_import(ctx, buf, n, AMP_SOURCE_DIR, &g1), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_onnx_export(g1, &buf2, &n2), AMP_OK);
    cr_assert_eq(amp_onnx_import(ctx, buf2, n2, AMP_SOURCE_DIR, &g2), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_graph_hash(g1), amp_graph_hash(g2), "%s: graph changed in the round trip", path);
    cr_expect_eq(g1->n_nodes, g2->n_nodes);
    cr_expect_eq(g1->n_inits, g2->n_inits);
    for (int i = 0; i < g1->n_inits; i++) {
        const amp_tensor *a = g1->values[g1->inits[i]].init, *b = g2->values[g2->inits[i]].init;
        cr_expect(tt_equal(a, b), "initializer %d differs", i);
    }
    for (int i = 0; i < g1->n_nodes; i++) {
        cr_expect_str_eq(g1->nodes[i].op_type, g2->nodes[i].op_type);
        cr_expect_eq(g1->nodes[i].n_attrs, g2->nodes[i].n_attrs);
    }
    /* export is deterministic */
    cr_assert_eq(amp_onnx_export(g2, &buf3, &n3), AMP_OK);
    cr_expect(n2 == n3 && memcmp(buf2, buf3, n2) == 0, "two exports of the same graph differ");
    /* a copy in memory writes the same file, whatever attribute kinds the graph holds */
    amp_graph *c = NULL;
    void *buf4 = NULL;
    size_t n4 = 0;
    cr_assert_eq(amp_graph_clone(g1, &c), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_onnx_export(c, &buf4, &n4), AMP_OK);
    cr_expect(n4 == n2 && memcmp(buf4, buf2, n2) == 0, "%s: the clone exports differently", path);
    amp_graph_destroy(c);
    amp_dealloc(ctx, buf4);
    amp_graph_destroy(g1);
    amp_graph_destroy(g2);
    amp_dealloc(ctx, buf);
    amp_dealloc(ctx, buf2);
    amp_dealloc(ctx, buf3);
}

Test(ir, round_trip_models) {
    round_trip(AMP_SOURCE_DIR "/models/lenet/model.onnx");
    round_trip(AMP_SOURCE_DIR "/models/mlp/model.onnx");
    round_trip(AMP_SOURCE_DIR "/models/mlp_decomposed/model.onnx");
}

Test(ir, round_trip_node_tests_with_every_attribute_kind) {
    /* cases chosen for attribute kinds: ints, floats, tensor, string, typed-field initializers */
    const char *cases[] = {"test_conv_with_strides_padding", "test_constantofshape_int_zeros", "test_cast_FLOAT_to_FLOAT16",
                           "test_resize_upsample_scales_linear", "test_constant", "test_slice_neg_steps"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "/usr/share/libonnx-testdata/data/node/%s/model.onnx", cases[i]);
        if (access(path, R_OK) != 0) {
            cr_log_warn("SKIP %s: ONNX test data not installed", cases[i]);
            continue;
        }
        round_trip(path);
    }
}

Test(ir, tensor_pb_every_dtype) {
    amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
    int64_t dims[] = {3, 1, 5};
    char path[] = "/tmp/amprt_test_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        amp_tensor *t = tt_rand(ctx, dts[i], 3, dims, -5, 5, 11 + i), *u = NULL;
        char *name = NULL;
        cr_assert_eq(amp_tensor_save_pb(ctx, t, "tname", path), AMP_OK);
        cr_assert_eq(amp_tensor_load_pb(ctx, path, &u, &name), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_expect(tt_equal(t, u), "%s differs after save/load", amp_dtype_name(dts[i]));
        cr_expect_str_eq(name, "tname");
        amp_free(ctx, name);
        amp_tensor_destroy(t);
        amp_tensor_destroy(u);
    }
    unlink(path);
}

Test(ir, model_info_and_save) {
    amp_model *m;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/lenet/model.onnx", &m), AMP_OK);
    cr_expect_eq(amp_model_input_count(m), 1);
    cr_expect_eq(amp_model_output_count(m), 1);
    cr_expect_eq(amp_model_opset(m), 17);
    amp_value_info vi = {.struct_size = sizeof vi};
    cr_assert_eq(amp_model_input_info(m, 0, &vi), AMP_OK);
    cr_expect_str_eq(vi.name, "input");
    cr_expect_eq(vi.dtype, AMP_F32);
    cr_expect_eq(vi.rank, 4);
    cr_expect_eq(vi.dims[0], -1);
    cr_expect_str_eq(vi.dim_names[0], "N");
    cr_expect_eq(vi.dims[2], 28);
    cr_expect_eq(amp_model_input_info(m, 1, &vi), AMP_ERR_INVALID_ARG);
    char path[] = "/tmp/amprt_model_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(amp_model_save(m, path), AMP_OK);
    amp_model *m2;
    cr_assert_eq(amp_model_load(ctx, path, &m2), AMP_OK);
    cr_expect_eq(amp_graph_hash(m->g), amp_graph_hash(m2->g));
    amp_model_destroy(m2);
    amp_model_destroy(m);
    unlink(path);
    /* a save into a folder that does not exist fails cleanly and leaves nothing */
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/mlp/model.onnx", &m), AMP_OK);
    cr_expect_eq(amp_model_save(m, "/nonexistent-dir/x.onnx"), AMP_ERR_IO);
    amp_model_destroy(m);
}

Test(ir, load_from_buffer_and_null_safety) {
    void *buf;
    size_t n;
    cr_assert_eq(amp_read_file(ctx, AMP_SOURCE_DIR "/models/mlp/model.onnx", 0, &buf, &n), AMP_OK);
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load_buffer(ctx, buf, n, NULL, &m), AMP_OK);
    amp_dealloc(ctx, buf);
    cr_expect_eq(amp_model_input_count(m), 1);
    amp_model_destroy(m);
    amp_model_destroy(NULL);
    amp_session_destroy(NULL);
    amp_tensor_destroy(NULL);
    amp_context_destroy(NULL);
    cr_expect_eq(amp_model_load(ctx, NULL, &m), AMP_ERR_INVALID_ARG);
    amp_model *untouched = (amp_model *)0x1;
    cr_expect_eq(amp_model_load_buffer(ctx, "xx", 2, NULL, &untouched), AMP_ERR_PARSE);
    cr_expect_eq(untouched, (amp_model *)0x1, "out-parameter changed on failure");
}

Test(ir, cuda_backend_request_without_gpu) {
    amp_model *m;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/mlp/model.onnx", &m), AMP_OK);
    amp_session_options o = {.struct_size = sizeof o, .backend = "cuda"};
    amp_session *s = NULL;
    amp_status st = amp_session_create(m, &o, &s);
    cr_expect(st == AMP_ERR_NO_DEVICE || st == AMP_ERR_UNSUPPORTED, "got %s", amp_status_name(st));
    cr_expect_null(s);
    o.backend = "auto";
    cr_expect_eq(amp_session_create(m, &o, &s), AMP_OK, "automatic choice must fall back to the CPU");
    amp_session_destroy(s);
    amp_model_destroy(m);
}

/* Export g into a fresh buffer. */
static void export_bytes(const amp_graph *g, void **b, size_t *n) {
    cr_assert_eq(amp_onnx_export(g, b, n), AMP_OK, "%s", amp_context_last_error(ctx));
}

/* The clone of every model in models/ is the same graph (same file, same hash) and shares
 * nothing with its source. */
Test(ir, clone_every_model) {
    const char *models[] = {"encoder", "gpt_block", "lenet", "lstm_tagger", "mlp", "mlp_decomposed",
                            "mobilenetv2", "overflow", "resnet", "unet", "detector"};
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s/model.onnx", AMP_SOURCE_DIR, models[mi]);
        amp_model *m = NULL;
        cr_assert_eq(amp_model_load(ctx, path, &m), AMP_OK, "%s: %s", path, amp_context_last_error(ctx));
        const amp_graph *g = m->g;
        amp_graph *c = NULL;
        cr_assert_eq(amp_graph_clone(g, &c), AMP_OK, "%s", amp_context_last_error(ctx));
        void *b1 = NULL, *b2 = NULL, *b3 = NULL;
        size_t n1 = 0, n2 = 0, n3 = 0;
        export_bytes(g, &b1, &n1);
        export_bytes(c, &b2, &n2);
        cr_expect(n1 == n2 && memcmp(b1, b2, n1) == 0, "%s: the clone exports differently", models[mi]);
        cr_expect_eq(amp_graph_hash(g), amp_graph_hash(c), "%s: the clone hashes differently", models[mi]);
        cr_expect_eq(c->n_values, g->n_values);
        cr_expect_eq(c->n_nodes, g->n_nodes);
        cr_expect_eq(c->n_syms, g->n_syms);
        for (int i = 0; i < g->n_values; i++) {
            cr_expect_str_eq(c->values[i].name, g->values[i].name);
            cr_expect_eq(c->values[i].producer, g->values[i].producer, "%s", g->values[i].name);
            cr_expect_eq(c->values[i].declared, g->values[i].declared, "%s", g->values[i].name);
        }
        /* mutate everything the clone holds: the source must not see any of it */
        cr_assert_gt(c->n_inits, 0, "%s has no initializer", models[mi]);
        amp_tensor *w = c->values[c->inits[0]].init;
        cr_assert_neq(w, g->values[g->inits[0]].init);
        memset(w->data, 0x7f, w->nbytes);
        c->values[0].dtype = AMP_F64;
        if (c->values[0].name[0]) c->values[0].name[0] = '#';
        for (int ni = 0; ni < c->n_nodes; ni++) {
            amp_node *n = &c->nodes[ni];
            if (n->op_type[0]) n->op_type[0] = '#';
            if (n->n_inputs > 0) n->inputs[0] = -1;
            for (int a = 0; a < n->n_attrs; a++) {
                if (n->attrs[a].name[0]) n->attrs[a].name[0] = '#';
                n->attrs[a].i += 1;
                if (n->attrs[a].ints && n->attrs[a].n > 0) n->attrs[a].ints[0] += 1;
                if (n->attrs[a].t && n->attrs[a].t->nbytes) memset(n->attrs[a].t->data, 0x55, n->attrs[a].t->nbytes);
            }
        }
        if (c->n_syms && c->syms[0][0]) c->syms[0][0] = '#';
        if (c->n_opsets) c->opsets[0].version += 1;
        export_bytes(g, &b3, &n3);
        cr_expect(n1 == n3 && memcmp(b1, b3, n1) == 0, "%s: changing the clone changed the source", models[mi]);
        amp_dealloc(ctx, b1);
        amp_dealloc(ctx, b2);
        amp_dealloc(ctx, b3);
        amp_graph_destroy(c);
        amp_model_destroy(m);
    }
}

/* What ONNX files do not carry (dynamic inputs, node flags, metadata, docs) is copied too:
 * the trainer and autocast work on copies that must keep it. */
Test(ir, clone_keeps_what_files_do_not_hold) {
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/mlp/model.onnx", &m), AMP_OK);
    amp_graph *g = m->g;
    g->values[g->inputs[0]].dynamic = true;
    g->nodes[0].flags = AMP_NODE_INSERTED | AMP_NODE_CAST_RTZ;
    g->values[0].doc = amp_strdup(ctx, "a value's doc");
    /* a STRING attribute holding a NUL inside, and a STRINGS attribute */
    amp_node *n = &g->nodes[g->n_nodes - 1];
    amp_attr *at = amp_realloc(ctx, n->attrs, sizeof(amp_attr) * (size_t)(n->n_attrs + 2));
    cr_assert(at);
    n->attrs = at;
    amp_attr *sa = &at[n->n_attrs], *ss = &at[n->n_attrs + 1];
    memset(sa, 0, 2 * sizeof *sa);
    n->n_attrs += 2;
    sa->name = amp_strdup(ctx, "bytes");
    sa->kind = AMP_ATTR_STRING;
    sa->s = amp_alloc(ctx, 4);
    memcpy(sa->s, "a\0b", 4);
    sa->slen = 3;
    ss->name = amp_strdup(ctx, "words");
    ss->kind = AMP_ATTR_STRINGS;
    ss->n = 2;
    ss->strings = amp_calloc(ctx, 2, sizeof(char *));
    ss->strings[0] = amp_strdup(ctx, "one");
    ss->strings[1] = amp_strdup(ctx, "two");
    amp_graph *c = NULL;
    cr_assert_eq(amp_graph_clone(g, &c), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect(c->values[c->inputs[0]].dynamic);
    cr_expect_eq(c->nodes[0].flags, AMP_NODE_INSERTED | AMP_NODE_CAST_RTZ);
    cr_expect_str_eq(c->values[0].doc, "a value's doc");
    const amp_attr *cs = amp_node_attr(&c->nodes[c->n_nodes - 1], "bytes");
    cr_assert(cs && cs->kind == AMP_ATTR_STRING && cs->slen == 3);
    cr_expect(memcmp(cs->s, "a\0b", 4) == 0);
    const amp_attr *cw = amp_node_attr(&c->nodes[c->n_nodes - 1], "words");
    cr_assert(cw && cw->kind == AMP_ATTR_STRINGS && cw->n == 2);
    cr_expect_str_eq(cw->strings[1], "two");
    cr_expect_neq(cw->strings[1], ss->strings[1]);
    cr_expect_eq(c->n_meta, g->n_meta);
    cr_expect_eq(amp_graph_clone(NULL, &c), AMP_ERR_INVALID_ARG);
    amp_graph_destroy(c);
    amp_model_destroy(m);
}

/* The file reader (a buffer refilled as it goes, raw_data read in place) gives the graph that
 * the same bytes in memory give, also when a large string field pushes every tensor past the
 * reader's first buffers. */
static void file_matches_buffer(const char *path) {
    void *buf = NULL;
    size_t n = 0;
    cr_assert_eq(amp_read_file(ctx, path, 0, &buf, &n), AMP_OK);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "/tmp/amprt_doc_first_%ld.onnx", (long)getpid());
    FILE *f = fopen(tmp, "wb");
    cr_assert(f);
    size_t doc = 700000; /* ModelProto.doc_string (field 6), a 3-byte length */
    unsigned char head[4] = {6 << 3 | 2, (unsigned char)(doc & 0x7f) | 0x80, (unsigned char)((doc >> 7) & 0x7f) | 0x80,
                             (unsigned char)(doc >> 14)};
    fwrite(head, 1, sizeof head, f);
    for (size_t i = 0; i < doc; i++) fputc('d', f);
    fwrite(buf, 1, n, f);
    fclose(f);
    amp_graph *g1, *g2, *g3;
    cr_assert_eq(amp_onnx_import(ctx, buf, n, AMP_SOURCE_DIR, &g1), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_onnx_import_file(ctx, path, AMP_SOURCE_DIR, &g2), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_onnx_import_file(ctx, tmp, AMP_SOURCE_DIR, &g3), AMP_OK, "%s", amp_context_last_error(ctx));
    unlink(tmp);
    cr_expect_eq(amp_graph_hash(g1), amp_graph_hash(g2), "%s", path);
    cr_expect_eq(amp_graph_hash(g1), amp_graph_hash(g3), "%s", path);
    cr_expect(g3->doc && strlen(g3->doc) == doc, "%s: the doc string was not kept", path);
    cr_assert_eq(g1->n_inits, g3->n_inits);
    cr_assert(g1->n_inits > 0);
    for (int i = 0; i < g1->n_inits; i++) {
        const amp_tensor *a = g1->values[g1->inits[i]].init, *b = g3->values[g3->inits[i]].init;
        cr_expect(tt_equal(a, b), "%s: initializer %d differs", path, i);
    }
    amp_graph_destroy(g1);
    amp_graph_destroy(g2);
    amp_graph_destroy(g3);
    amp_dealloc(ctx, buf);
}

Test(ir, file_reader_matches_buffer) {
    file_matches_buffer(AMP_SOURCE_DIR "/models/mlp/model.onnx");
    file_matches_buffer(AMP_SOURCE_DIR "/models/lenet/model.onnx");
}

/* Typed attribute reads: a present attribute of another kind reads as the default but is
 * recorded on the node, and amp_node_attr_check names the node, the attribute and both kinds;
 * an INT is not taken for a FLOAT. A copy of the graph keeps the record. */
Test(ir, attribute_of_the_wrong_kind_is_recorded) {
    amp_attr attrs[3] = {{.name = "axis", .kind = AMP_ATTR_FLOAT, .f = 1.0f},
                         {.name = "alpha", .kind = AMP_ATTR_INT, .i = 2},
                         {.name = "keep", .kind = AMP_ATTR_INT, .i = 0}};
    amp_node n = {.name = "sm", .op_type = "Softmax", .attrs = attrs, .n_attrs = 3};
    cr_assert_eq(amp_attr_int(&n, "keep", 1), 0);
    cr_assert_eq(amp_attr_int(&n, "absent", 7), 7);
    cr_assert_eq(amp_node_attr_check(ctx, &n), AMP_OK, "a right kind and an absent attribute record nothing");
    cr_assert_eq(amp_attr_int(&n, "axis", -1), -1);
    cr_assert_eq(amp_node_attr_check(ctx, &n), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "node 'sm' (Softmax): attribute 'axis' is FLOAT, expected INT"),
              "%s", amp_context_last_error(ctx));
    /* the first mismatch is the one reported */
    cr_assert_float_eq(amp_attr_float(&n, "alpha", 0.5f), 0.5f, 0.0f);
    cr_assert_eq(amp_node_attr_check(ctx, &n), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "'axis'"), "%s", amp_context_last_error(ctx));
    amp_node m = {.name = "lr", .op_type = "LeakyRelu", .attrs = attrs + 1, .n_attrs = 1};
    const float *fv = NULL;
    cr_assert_float_eq(amp_attr_float(&m, "alpha", 0.01f), 0.01f, 0.0f);
    cr_assert_eq(amp_attr_floats(&m, "alpha", &fv), -1);
    cr_assert_eq(amp_node_attr_check(ctx, &m), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "attribute 'alpha' is INT, expected FLOAT"), "%s",
              amp_context_last_error(ctx));
    cr_assert_str_eq(amp_attr_kind_name(AMP_ATTR_TENSORS), "TENSORS");
    cr_assert_str_eq(amp_attr_kind_name((amp_attr_kind)99), "unknown");
}

/* A model whose only input is declared as 2^27 floats (81 bytes on disk) is refused while
 * planning for the declared shape, before its 512 MiB arena is allocated. */
Test(ir, declared_size_checked_against_the_memory_limit) {
    amp_context *c;
    amp_context_desc d = {.struct_size = sizeof d, .max_memory_bytes = 64 << 20};
    cr_assert_eq(amp_context_create(&d, &c), AMP_OK);
    amp_model *m = NULL;
    amp_session *s = NULL;
    cr_assert_eq(amp_model_load(c, AMP_SOURCE_DIR "/tests/bad/declared_big_input.onnx", &m), AMP_OK, "%s",
                 amp_context_last_error(c));
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK, "%s", amp_context_last_error(c));
    amp_plan_stats ps = {.struct_size = sizeof ps};
    cr_assert_eq(amp_session_plan(s, 0, NULL, &ps), AMP_ERR_LIMIT);
    cr_assert(strstr(amp_session_last_error(s), "output 'y' needs 536870912 bytes, over the memory limit of 67108864"),
              "%s", amp_session_last_error(s));
    amp_session_destroy(s);
    amp_model_destroy(m);
    amp_context_destroy(c);
}

/* A protobuf encoder for hand-made files (packed or unpacked typed fields, in pieces). */
typedef struct pbuf {
    uint8_t *p;
    size_t n;
} pbuf;

static void pb_raw(pbuf *b, const void *d, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    cr_assert(b->p);
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void pb_varint(pbuf *b, uint64_t v) {
    do {
        uint8_t c = (uint8_t)((v & 0x7f) | (v >> 7 ? 0x80 : 0));
        pb_raw(b, &c, 1);
        v >>= 7;
    } while (v);
}
static void pb_int(pbuf *b, int field, uint64_t v) {
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}
static void pb_bytes(pbuf *b, int field, const void *d, size_t n) {
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_raw(b, d, n);
}
static void pb_str(pbuf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
/* Elements [from, to) of vals (elem bytes each) as one element per tag (wire type 5 or 1). */
static void pb_unpacked(pbuf *b, int field, const uint8_t *vals, size_t elem, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        pb_varint(b, (uint64_t)field << 3 | (elem == 4 ? 5 : 1));
        pb_raw(b, vals + i * elem, elem);
    }
}
static void pb_msg(pbuf *b, int field, pbuf *m) { /* append m as a nested message and free it */
    pb_bytes(b, field, m->p, m->n);
    free(m->p);
    *m = (pbuf){0};
}

/* How a tensor's values are written: raw_data, the typed field packed in one piece, or the
 * typed field in pieces (unpacked elements, small and large packed runs) */
enum { AS_RAW, AS_PACKED, AS_PIECES };

static void pb_tensor(pbuf *g, const char *name, int onnx_type, int field, const int64_t *dims, int rank,
                      const uint8_t *vals, size_t elem, size_t count, int how) {
    pbuf t = {0};
    for (int i = 0; i < rank; i++) pb_int(&t, 1, (uint64_t)dims[i]);
    pb_int(&t, 2, (uint64_t)onnx_type);
    pb_str(&t, 8, name);
    if (how == AS_RAW) pb_bytes(&t, 9, vals, count * elem);
    else if (how == AS_PACKED) pb_bytes(&t, field, vals, count * elem);
    else { /* 7 unpacked, 1100 packed (one marker), 3 unpacked, 50 packed (inline), the rest packed */
        size_t cut[] = {7, 1107, 1110, 1160};
        cr_assert(count > 1160);
        pb_unpacked(&t, field, vals, elem, 0, cut[0]);
        pb_bytes(&t, field, vals + cut[0] * elem, (cut[1] - cut[0]) * elem);
        pb_unpacked(&t, field, vals, elem, cut[1], cut[2]);
        pb_bytes(&t, field, vals + cut[2] * elem, (cut[3] - cut[2]) * elem);
        pb_bytes(&t, field, vals + cut[3] * elem, (count - cut[3]) * elem);
    }
    pb_msg(g, 5, &t); /* GraphProto.initializer */
}

/* A model whose graph outputs are its initializers: wf (float [3, 700]), wd (double [2, 600]),
 * ws (float [5], always small), wi (int64 [3], int64_data unless raw). */
static void typed_model(pbuf *out, int how, const float *f, const double *d) {
    static const float small[5] = {1.5f, -0.0f, 3e-42f, -7.25f, 1e30f};
    static const int64_t ints[3] = {-1, 1LL << 40, 7};
    pbuf g = {0}, o = {0};
    pb_str(&g, 2, "typed");
    pb_tensor(&g, "wf", 1, 4, (int64_t[]){3, 700}, 2, (const uint8_t *)f, 4, 2100, how);
    pb_tensor(&g, "wd", 11, 10, (int64_t[]){2, 600}, 2, (const uint8_t *)d, 8, 1200, how);
    pb_tensor(&g, "ws", 1, 4, (int64_t[]){5}, 1, (const uint8_t *)small, 4, 5, how == AS_RAW ? AS_RAW : AS_PACKED);
    pbuf t = {0};
    pb_int(&t, 1, 3);
    pb_int(&t, 2, 7);
    pb_str(&t, 8, "wi");
    if (how == AS_RAW) pb_bytes(&t, 9, ints, sizeof ints);
    else {
        pbuf packed = {0};
        for (int i = 0; i < 3; i++) pb_varint(&packed, (uint64_t)ints[i]);
        pb_bytes(&t, 7, packed.p, packed.n);
        free(packed.p);
    }
    pb_msg(&g, 5, &t);
    const char *outs[] = {"wf", "wd", "ws", "wi"};
    for (int i = 0; i < 4; i++) {
        pb_str(&o, 1, outs[i]);
        pb_msg(&g, 12, &o);
    }
    *out = (pbuf){0};
    pb_int(out, 1, 8); /* ir_version */
    pb_int(&o, 2, 17);
    pb_msg(out, 8, &o); /* opset_import */
    pb_msg(out, 7, &g);
}

/* Import the bytes from memory and from a file; both must succeed or both fail the same. */
static amp_status import_both(const pbuf *b, amp_graph **mem, amp_graph **file, char *err, size_t errn) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/amprt_typed_%ld.onnx", (long)getpid());
    FILE *fp = fopen(path, "wb");
    cr_assert(fp);
    cr_assert_eq(fwrite(b->p, 1, b->n, fp), b->n);
    fclose(fp);
    amp_status s1 = amp_onnx_import(ctx, b->p, b->n, NULL, mem);
    snprintf(err, errn, "%s", amp_context_last_error(ctx));
    amp_status s2 = amp_onnx_import_file(ctx, path, NULL, file);
    unlink(path);
    cr_expect_eq(s1, s2, "memory: %s, file: %s", err, amp_context_last_error(ctx));
    if (s1 == s2 && s1) cr_expect_str_eq(err, amp_context_last_error(ctx));
    return s1;
}

static const amp_tensor *init_named(const amp_graph *g, const char *name) {
    for (int i = 0; i < g->n_inits; i++)
        if (strcmp(g->values[g->inits[i]].name, name) == 0) return g->values[g->inits[i]].init;
    cr_assert_fail("no initializer '%s'", name);
    return NULL;
}

/* float_data and double_data, packed in one piece or in pieces mixed with unpacked elements,
 * read from memory or from a file (large packed runs read in place), give the tensors that
 * raw_data gives, bit for bit (NaN payloads, -0, subnormals, infinities). */
Test(ir, typed_fields_match_raw_data) {
    float *f = malloc(2100 * sizeof *f);
    double *d = malloc(1200 * sizeof *d);
    cr_assert(f && d);
    uint64_t x = 12345;
    for (int i = 0; i < 2100; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t u = (uint32_t)(x >> 32);
        memcpy(&f[i], &u, 4); /* every bit pattern, NaNs with payloads included */
    }
    for (int i = 0; i < 1200; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        memcpy(&d[i], &x, 8);
    }
    f[0] = -0.0f;
    f[1] = 1e-45f;
    d[0] = -INFINITY;
    d[1] = 5e-324;
    pbuf raw, b;
    typed_model(&raw, AS_RAW, f, d);
    char err[512];
    amp_graph *rm, *rf;
    cr_assert_eq(import_both(&raw, &rm, &rf, err, sizeof err), AMP_OK, "%s", err);
    const char *names[] = {"wf", "wd", "ws", "wi"};
    for (int how = AS_PACKED; how <= AS_PIECES; how++) {
        typed_model(&b, how, f, d);
        amp_graph *gm, *gf;
        cr_assert_eq(import_both(&b, &gm, &gf, err, sizeof err), AMP_OK, "%s", err);
        for (int i = 0; i < 4; i++) {
            const amp_tensor *want = init_named(rm, names[i]), *a = init_named(gm, names[i]), *c = init_named(gf, names[i]);
            cr_expect(tt_equal(want, init_named(rf, names[i])));
            cr_expect(a->dtype == want->dtype && a->nbytes == want->nbytes && memcmp(a->data, want->data, a->nbytes) == 0,
                      "%s (form %d, from memory) differs from raw_data", names[i], how);
            cr_expect(c->dtype == want->dtype && c->nbytes == want->nbytes && memcmp(c->data, want->data, c->nbytes) == 0,
                      "%s (form %d, from a file) differs from raw_data", names[i], how);
        }
        cr_expect(memcmp(init_named(rm, "wf")->data, f, 2100 * 4) == 0 && memcmp(init_named(rm, "wd")->data, d, 1200 * 8) == 0);
        amp_graph_destroy(gm);
        amp_graph_destroy(gf);
        free(b.p);
    }
    amp_graph_destroy(rm);
    amp_graph_destroy(rf);
    free(raw.p);
    free(f);
    free(d);
}

/* A large packed typed field is still counted against the dims, and a field that is not the
 * one of the tensor's dtype is not its data: the messages are those of the unmarked path. */
Test(ir, typed_field_count_and_dtype_checked) {
    static uint8_t vals[8 * 2101];
    struct {
        int onnx_type, field;
        size_t elem, count;
        const char *msg;
    } cases[] = {
        {1, 4, 4, 2101, "tensor 'w': 8404 bytes of data for 2100 elements of"},   /* one float too many */
        {1, 4, 4, 2099, "tensor 'w': 8396 bytes of data for 2100 elements of"},   /* one too few */
        {11, 10, 8, 2101, "tensor 'w': 16808 bytes of data for 2100 elements of"}, /* doubles */
        {7, 4, 4, 2100, "tensor 'w': 0 bytes of data for 2100 elements of"},      /* float_data on INT64 */
        {1, 10, 8, 2100, "tensor 'w': 0 bytes of data for 2100 elements of"},     /* double_data on FLOAT */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pbuf g = {0}, o = {0}, m = {0};
        pb_tensor(&g, "w", cases[i].onnx_type, cases[i].field, (int64_t[]){3, 700}, 2, vals, cases[i].elem,
                  cases[i].count, AS_PACKED);
        pb_str(&o, 1, "w");
        pb_msg(&g, 12, &o);
        pb_int(&m, 1, 8);
        pb_int(&o, 2, 17);
        pb_msg(&m, 8, &o);
        pb_msg(&m, 7, &g);
        amp_graph *gm = NULL, *gf = NULL;
        char err[512];
        cr_expect_eq(import_both(&m, &gm, &gf, err, sizeof err), AMP_ERR_PARSE, "case %zu", i);
        cr_expect(strstr(err, cases[i].msg) != NULL, "case %zu: %s", i, err);
        cr_expect_null(gm);
        cr_expect_null(gf);
        free(m.p);
    }
}
