/* IR tests: ONNX import/export round trips, tensor files, op table, linking. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
    amp_value_info vi;
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
                            "mobilenetv2", "overflow", "resnet", "unet"};
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
