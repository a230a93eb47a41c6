/* Opset conversion (passes/opset.c): for each rewritten op, a one-node model at the old opset is
 * raised to the new one; the node's new form is checked and the FP32 outputs, run by the CPU
 * backend before and after, are equal bit for bit (Scatter, which amprt cannot run, against
 * its result computed here). Refusals leave the graph as it was. */
#include <criterion/criterion.h>
#include <string.h>

#include "passes/passes.h"
#include "runtime/runtime.h"
#include "tests/testutil.h"

static amp_context *ctx;

static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }

TestSuite(opset, .init = setup, .fini = teardown);

typedef struct spec_attr {
    const char *name;
    int n;              /* INTS count; 0: FLOAT f; -1: INT i */
    int64_t ints[8];
    float f;
} spec_attr;

/* The dtype of x in the models one_node makes (float32 unless a test says otherwise). */
static amp_dtype x_dtype = AMP_F32;

/* A model x[rank, dims] -> op(x) -> outputs y0..y{nout-1} at the given opset. */
static amp_model *one_node(const char *op, int64_t opset, int rank, const int64_t *dims, int nout,
                           const spec_attr *attrs, int n_attrs) {
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = opset;
    g->ir_version = 7;
    int x = amp_graph_value(g, "x");
    g->values[x].dtype = x_dtype;
    g->values[x].rank = rank;
    g->values[x].is_input = g->values[x].declared = true;
    for (int i = 0; i < rank; i++) g->values[x].dims[i] = (amp_dim){.value = dims[i], .sym = -1};
    g->inputs = amp_calloc(ctx, 1, sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, "n0");
    n.op_type = amp_strdup(ctx, op);
    n.domain = amp_strdup(ctx, "");
    n.op = amp_op_lookup(op, "");
    n.inputs = amp_calloc(ctx, 1, sizeof(int));
    n.inputs[0] = x;
    n.n_inputs = 1;
    n.outputs = amp_calloc(ctx, (size_t)nout, sizeof(int));
    g->outputs = amp_calloc(ctx, (size_t)nout, sizeof(int));
    for (int k = 0; k < nout; k++) {
        char name[16];
        snprintf(name, sizeof name, "y%d", k);
        int y = amp_graph_value(g, name);
        g->values[y].is_output = true;
        n.outputs[k] = g->outputs[k] = y;
    }
    n.n_outputs = g->n_outputs = nout;
    n.attrs = amp_calloc(ctx, (size_t)n_attrs + 1, sizeof(amp_attr));
    for (int i = 0; i < n_attrs; i++) {
        amp_attr *a = &n.attrs[i];
        a->name = amp_strdup(ctx, attrs[i].name);
        if (attrs[i].n > 0) {
            a->kind = AMP_ATTR_INTS;
            a->n = attrs[i].n;
            a->ints = amp_calloc(ctx, (size_t)a->n, sizeof(int64_t));
            memcpy(a->ints, attrs[i].ints, (size_t)a->n * sizeof(int64_t));
        } else if (attrs[i].n < 0) {
            a->kind = AMP_ATTR_INT;
            a->i = attrs[i].ints[0];
        } else {
            a->kind = AMP_ATTR_FLOAT;
            a->f = attrs[i].f;
        }
    }
    n.n_attrs = n_attrs;
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    cr_assert_eq(amp_graph_link(g), AMP_OK);
    amp_model *m = amp_calloc(ctx, 1, sizeof *m);
    m->ctx = ctx;
    m->g = g;
    m->hash = amp_graph_hash(g);
    return m;
}

static void run_model(amp_model *m, const amp_tensor *x, int nout, amp_tensor **out) {
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK, "%s", amp_context_last_error(ctx));
    const char *in_names[] = {"x"};
    const char *names[4] = {"y0", "y1", "y2", "y3"};
    for (int k = 0; k < nout; k++) out[k] = NULL;
    cr_assert_eq(amp_session_run(s, 1, in_names, &x, nout, names, out), AMP_OK, "%s", amp_session_last_error(s));
    amp_session_destroy(s);
}

/* Convert m to target, check the node count and that no attribute named moved is left, then
 * compare every output before and after, bit for bit. */
static void same_outputs(const char *op, int64_t from, int target, int rank, const int64_t *dims, int nout,
                         const spec_attr *attrs, int n_attrs, const char *moved, int want_nodes) {
    amp_model *m = one_node(op, from, rank, dims, nout, attrs, n_attrs);
    amp_model *u = NULL;
    int rewritten = -1;
    cr_assert_eq(amp_model_convert_opset(m, target, &u, &rewritten), AMP_OK, "%s %lld -> %d: %s", op,
                 (long long)from, target, amp_context_last_error(ctx));
    cr_assert_eq(rewritten, 1, "%s: %d nodes rewritten", op, rewritten);
    cr_assert_eq(amp_model_opset(u), target);
    cr_assert_eq(u->g->n_nodes, want_nodes, "%s: %d nodes after", op, u->g->n_nodes);
    for (int ni = 0; ni < u->g->n_nodes; ni++)
        if (!strcmp(u->g->nodes[ni].op_type, op) && moved)
            cr_assert_null(amp_node_attr(&u->g->nodes[ni], moved), "%s keeps attribute %s", op, moved);
    amp_tensor *x = tt_rand(ctx, x_dtype, rank, dims, -3, 3, 7);
    amp_tensor *a[4], *b[4];
    run_model(m, x, nout, a);
    run_model(u, x, nout, b);
    for (int k = 0; k < nout; k++) {
        cr_assert(tt_equal(a[k], b[k]), "%s %lld -> %d: output %d differs", op, (long long)from, target, k);
        amp_tensor_destroy(a[k]);
        amp_tensor_destroy(b[k]);
    }
    amp_tensor_destroy(x);
    amp_model_destroy(u);
    amp_model_destroy(m);
}

static const int64_t d234[] = {2, 3, 4};
#define INTS(nm, cnt, ...) {.name = nm, .n = cnt, .ints = {__VA_ARGS__}}
#define INT(nm, v) {.name = nm, .n = -1, .ints = {v}}
#define FLT(nm, v) {.name = nm, .f = v}

Test(opset, attributes_become_inputs_with_the_same_results) {
    same_outputs("Unsqueeze", 11, 13, 3, d234, 1, (spec_attr[]){INTS("axes", 2, 0, 2)}, 1, "axes", 1);
    same_outputs("Squeeze", 11, 13, 3, (int64_t[]){2, 1, 4}, 1, (spec_attr[]){INTS("axes", 1, 1)}, 1, "axes", 1);
    same_outputs("ReduceSum", 11, 13, 3, d234, 1, (spec_attr[]){INTS("axes", 1, 1), INT("keepdims", 0)}, 2, "axes", 1);
    same_outputs("ReduceMean", 13, 18, 3, d234, 1, (spec_attr[]){INTS("axes", 2, 0, 2)}, 1, "axes", 1);
    same_outputs("ReduceMax", 17, 18, 3, d234, 1, (spec_attr[]){INTS("axes", 1, -1)}, 1, "axes", 1);
    same_outputs("Slice", 9, 13, 3, d234, 1,
                 (spec_attr[]){INTS("starts", 2, 1, 0), INTS("ends", 2, 3, -1), INTS("axes", 2, 1, 2)}, 3, "starts", 1);
    same_outputs("Clip", 10, 13, 3, d234, 1, (spec_attr[]){FLT("min", -1.5f), FLT("max", 0.75f)}, 2, "min", 1);
    same_outputs("Pad", 10, 13, 3, d234, 1,
                 (spec_attr[]){INTS("pads", 6, 0, 1, 2, 0, 0, 1), FLT("value", 2.5f)}, 2, "pads", 1);
    same_outputs("Split", 11, 13, 3, d234, 2, (spec_attr[]){INT("axis", 1), INTS("split", 2, 1, 2)}, 2, "split", 1);
    same_outputs("TopK", 9, 11, 3, d234, 2, (spec_attr[]){INT("k", 2)}, 1, "k", 1);
}

/* Clip's bounds and Pad's value become inputs of the data's type for float16 and double data */
Test(opset, scalar_inputs_take_the_data_type) {
    amp_dtype types[2] = {AMP_F16, AMP_F64};
    for (int t = 0; t < 2; t++) {
        x_dtype = types[t];
        same_outputs("Clip", 10, 13, 3, d234, 1, (spec_attr[]){FLT("min", -1.5f), FLT("max", 0.75f)}, 2, "min", 1);
        same_outputs("Pad", 10, 13, 3, d234, 1,
                     (spec_attr[]){INTS("pads", 6, 0, 1, 2, 0, 0, 1), FLT("value", 2.5f)}, 2, "pads", 1);
        amp_model *m = one_node("Clip", 10, 3, d234, 1, (spec_attr[]){FLT("min", -1.5f), FLT("max", 0.75f)}, 2);
        amp_model *u = NULL;
        cr_assert_eq(amp_model_convert_opset(m, 13, &u, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
        const amp_node *n = &u->g->nodes[0];
        cr_assert_eq(n->n_inputs, 3);
        for (int k = 1; k < 3; k++) {
            const amp_tensor *b = u->g->values[n->inputs[k]].init;
            cr_assert(b && b->dtype == types[t] && b->numel == 1, "bound %d: not a %s scalar", k, amp_dtype_name(types[t]));
            cr_assert_eq(tt_get(b, 0), k == 1 ? -1.5 : 0.75);
        }
        amp_model_destroy(u);
        amp_model_destroy(m);
    }
    x_dtype = AMP_F32;
}

Test(opset, split_without_sizes_gets_num_outputs_at_18) {
    same_outputs("Split", 13, 18, 3, (int64_t[]){2, 4, 4}, 2, (spec_attr[]){INT("axis", 1)}, 1, NULL, 1);
}

Test(opset, softmax_before_13_keeps_its_2d_meaning) {
    /* the last axis: axis written out; a middle one: Flatten, Softmax, Shape, Reshape */
    same_outputs("Softmax", 11, 13, 3, d234, 1, (spec_attr[]){INT("axis", 2)}, 1, NULL, 1);
    same_outputs("Softmax", 11, 13, 3, d234, 1, (spec_attr[]){INT("axis", 1)}, 1, NULL, 4);
    same_outputs("LogSoftmax", 12, 13, 3, d234, 1, NULL, 0, NULL, 4);
}

Test(opset, refusals_leave_the_graph_unchanged) {
    /* a target below the model's opset, or above the op table's, is refused */
    amp_model *m = one_node("Softmax", 13, 3, d234, 1, NULL, 0);
    uint64_t h = amp_graph_hash(m->g);
    amp_model *u = NULL;
    cr_assert_eq(amp_model_convert_opset(m, 11, &u, NULL), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "below the model's opset 13"), "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_model_convert_opset(m, 1000, &u, NULL), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "above the highest opset"), "%s", amp_context_last_error(ctx));
    cr_assert_null(u);
    amp_model_destroy(m);

    /* a pass on the graph itself: the first node is carried, the second is not; nothing changes */
    m = one_node("Unsqueeze", 7, 3, d234, 1, (spec_attr[]){INTS("axes", 1, 0)}, 1);
    amp_graph *g = m->g;
    amp_node bn;
    memset(&bn, 0, sizeof bn);
    bn.name = amp_strdup(ctx, "bn");
    bn.op_type = amp_strdup(ctx, "BatchNormalization");
    bn.domain = amp_strdup(ctx, "");
    bn.op = AMP_OP_BATCH_NORM;
    bn.inputs = amp_calloc(ctx, 5, sizeof(int));
    bn.n_inputs = 5;
    for (int k = 0; k < 5; k++) bn.inputs[k] = g->outputs[0];
    bn.outputs = amp_calloc(ctx, 1, sizeof(int));
    bn.outputs[0] = amp_graph_value(g, "z");
    bn.n_outputs = 1;
    bn.attrs = amp_calloc(ctx, 1, sizeof(amp_attr));
    bn.attrs[0] = (amp_attr){.name = amp_strdup(ctx, "spatial"), .kind = AMP_ATTR_INT, .i = 0};
    bn.n_attrs = 1;
    cr_assert_eq(amp_graph_add_node(g, &bn), AMP_OK);
    cr_assert_eq(amp_graph_link(g), AMP_OK);
    h = amp_graph_hash(g);
    int nv = g->n_values, ninit = g->n_inits;
    cr_assert_eq(amp_pass_convert_opset(g, 13, NULL), AMP_ERR_UNSUPPORTED);
    const char *e = amp_context_last_error(ctx);
    cr_assert(strstr(e, "'bn' (BatchNormalization)") && strstr(e, "7 -> 13") && strstr(e, "spatial"), "%s", e);
    cr_assert_eq(amp_graph_hash(g), h, "a refused conversion changed the graph");
    cr_assert_eq(g->opset, 7);
    cr_assert_eq(g->n_values, nv);
    cr_assert_eq(g->n_inits, ninit);
    cr_assert_not_null(amp_node_attr(&g->nodes[0], "axes"));
    amp_model_destroy(m);
}

/* Scatter-9 becomes ScatterElements at 11 (it is not defined there): y = x with
 * y[i][idx[i][0][k]][k] = upd[i][0][k] along axis 1, the same before and after, bit for bit, and
 * as computed here; at 10 it stays Scatter. */
Test(opset, scatter_becomes_scatter_elements_at_11) {
    amp_model *m = one_node("Scatter", 9, 3, d234, 1, (spec_attr[]){INT("axis", 1)}, 1);
    amp_graph *g = m->g;
    int64_t idims[3] = {2, 1, 4};
    double idx[8] = {2, 0, 1, 2, 1, 1, 0, 2}, upd[8];
    for (int k = 0; k < 8; k++) upd[k] = 100.0 + k;
    int vi = amp_graph_value(g, "idx"), vu = amp_graph_value(g, "upd");
    g->values[vi].init = tt_make(ctx, AMP_I64, 3, idims, idx);
    g->values[vu].init = tt_make(ctx, AMP_F32, 3, idims, upd);
    g->inits = amp_calloc(ctx, 2, sizeof(int));
    g->inits[0] = vi;
    g->inits[1] = vu;
    g->n_inits = 2;
    for (int k = 0; k < 2; k++) {
        amp_value *v = &g->values[k ? vu : vi];
        v->dtype = v->elem_onnx_type = v->init->dtype;
        v->rank = 3;
        for (int d = 0; d < 3; d++) v->dims[d] = (amp_dim){idims[d], -1};
    }
    amp_node *n = &g->nodes[0];
    n->inputs = amp_realloc(ctx, n->inputs, 3 * sizeof(int));
    n->inputs[1] = vi;
    n->inputs[2] = vu;
    n->n_inputs = 3;
    cr_assert_eq(amp_graph_link(g), AMP_OK, "%s", amp_context_last_error(ctx));

    amp_model *u = NULL;
    int rewritten = -1;
    cr_assert_eq(amp_model_convert_opset(m, 10, &u, &rewritten), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(rewritten, 0);
    cr_assert_str_eq(u->g->nodes[0].op_type, "Scatter");
    amp_model_destroy(u);
    cr_assert_eq(amp_model_convert_opset(m, 13, &u, &rewritten), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(rewritten, 1);
    cr_assert_str_eq(u->g->nodes[0].op_type, "ScatterElements");
    cr_assert_eq(u->g->nodes[0].op, AMP_OP_SCATTER_ELEMENTS);
    cr_assert_eq(amp_attr_int(&u->g->nodes[0], "axis", 0), 1);
    amp_tensor *x = tt_rand(ctx, AMP_F32, 3, d234, -3, 3, 9), *before = NULL, *after = NULL;
    run_model(m, x, 1, &before);
    run_model(u, x, 1, &after);
    amp_tensor *want = NULL;
    cr_assert_eq(amp_tensor_convert(ctx, x, AMP_F32, &want), AMP_OK);
    float *w = want->data;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++) w[i * 12 + (int)idx[i * 4 + k] * 4 + k] = (float)upd[i * 4 + k];
    cr_assert(tt_equal(before, want), "Scatter at 9 differs from its result computed here");
    cr_assert(tt_equal(after, want), "ScatterElements at 13 differs from Scatter's result");
    amp_tensor_destroy(x);
    amp_tensor_destroy(before);
    amp_tensor_destroy(after);
    amp_tensor_destroy(want);
    amp_model_destroy(u);
    amp_model_destroy(m);
}
