/* Opset conversion (passes/opset.c): for each rewritten op, a one-node model at the old opset is
 * raised to the new one; the node's new form is checked and the FP32 outputs, run by the CPU
 * backend before and after, are equal bit for bit. Refusals leave the graph as it was. */
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

/* A model x[rank, dims] -> op(x) -> outputs y0..y{nout-1} at the given opset. */
static amp_model *one_node(const char *op, int64_t opset, int rank, const int64_t *dims, int nout,
                           const spec_attr *attrs, int n_attrs) {
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = opset;
    g->ir_version = 7;
    int x = amp_graph_value(g, "x");
    g->values[x].dtype = AMP_F32;
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
    amp_tensor *x = tt_rand(ctx, AMP_F32, rank, dims, -3, 3, 7);
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
