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
    amp_session_options o = {.struct_size = sizeof o, .backend = AMP_BACKEND_CUDA};
    amp_session *s = NULL;
    amp_status st = amp_session_create(m, &o, &s);
    cr_expect(st == AMP_ERR_NO_DEVICE || st == AMP_ERR_UNSUPPORTED, "got %s", amp_status_name(st));
    cr_expect_null(s);
    o.backend = AMP_BACKEND_AUTO;
    cr_expect_eq(amp_session_create(m, &o, &s), AMP_OK, "automatic choice must fall back to the CPU");
    amp_session_destroy(s);
    amp_model_destroy(m);
}
