/* The base layer's helpers and the ir helpers that replaced per-file copies: element access,
 * shape products and comparisons, dtype predicates, the default-domain test, a node's opset. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/base.h"
#include "base/elem.h"
#include "ir/ir.h"

Test(base, dims_numel_and_equal) {
    const int64_t a[] = {2, 3, 4}, b[] = {2, 3, 5}, z[] = {7, 0, 3};
    cr_assert_eq(amp_dims_numel(3, a), 24);
    cr_assert_eq(amp_dims_numel(0, a), 1, "a scalar holds one element");
    cr_assert_eq(amp_dims_numel(3, z), 0);
    cr_assert(amp_dims_equal(3, a, 3, a));
    cr_assert(!amp_dims_equal(3, a, 3, b), "last dim differs");
    cr_assert(!amp_dims_equal(3, a, 2, a), "rank differs, common dims equal");
    cr_assert(amp_dims_equal(0, a, 0, b), "two scalars");
}

Test(base, tinfo_numel_and_same_shape) {
    amp_tinfo x = {.dtype = AMP_F32, .rank = 2, .dims = {5, 7}};
    amp_tinfo y = {.dtype = AMP_F16, .rank = 2, .dims = {5, 7}};
    amp_tinfo t = {.dtype = AMP_F32, .rank = 2, .dims = {7, 5}};
    cr_assert_eq(amp_tinfo_numel(&x), 35);
    cr_assert(amp_tinfo_same_shape(&x, &y), "dtype is not part of the shape");
    cr_assert(!amp_tinfo_same_shape(&x, &t));
}

Test(base, dtype_predicates_and_names) {
    const amp_dtype fl[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
    const amp_dtype in[] = {AMP_I64, AMP_I32, AMP_I16, AMP_I8, AMP_U64, AMP_U32, AMP_U16, AMP_U8};
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
        cr_assert(amp_dtype_is_float(fl[i]), "%s", amp_dtype_name(fl[i]));
        cr_assert(!amp_dtype_is_int(fl[i]), "%s", amp_dtype_name(fl[i]));
    }
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        cr_assert(amp_dtype_is_int(in[i]), "%s", amp_dtype_name(in[i]));
        cr_assert(!amp_dtype_is_float(in[i]), "%s", amp_dtype_name(in[i]));
    }
    cr_assert(!amp_dtype_is_int(AMP_BOOL) && !amp_dtype_is_float(AMP_BOOL));
    cr_assert_eq(amp_dtype_size(AMP_BF16), 2);
    cr_assert_eq(amp_dtype_size(AMP_U64), 8);
}

Test(base, element_access_round_trips) {
    uint16_t h[2];
    amp_st(AMP_F16, h, 1, 1.0 + 0x1p-11); /* halfway: ties to even */
    cr_assert_eq(h[1], 0x3c00);
    amp_st(AMP_BF16, h, 0, -2.5);
    cr_assert_eq(amp_ld(AMP_BF16, h, 0), -2.5);
    uint64_t u[1];
    amp_sti(AMP_U64, u, 0, (int64_t)UINT64_C(0xfffffffffffffffe));
    cr_assert_eq(u[0], UINT64_C(0xfffffffffffffffe));
    cr_assert_eq(amp_ldi(AMP_U64, u, 0), -2, "uint64 comes back as its bit pattern");
    int8_t c[1];
    amp_sti(AMP_I8, c, 0, -128);
    cr_assert_eq(amp_ldi(AMP_I8, c, 0), -128);
    uint8_t b[1];
    amp_st(AMP_BOOL, b, 0, 0.25);
    cr_assert_eq(b[0], 1);
}

Test(base, default_domain) {
    cr_assert(amp_domain_is_default(NULL));
    cr_assert(amp_domain_is_default(""));
    cr_assert(amp_domain_is_default("ai.onnx"));
    cr_assert(!amp_domain_is_default("ai.onnx.ml"));
    cr_assert(!amp_domain_is_default("com.microsoft"));
}

Test(base, node_opset_by_domain) {
    amp_context *ctx = NULL;
    amp_graph *g = NULL;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = 17;
    g->opsets = amp_calloc(ctx, 2, sizeof(amp_opset));
    cr_assert_not_null(g->opsets);
    g->opsets[0].domain = amp_strdup(ctx, "");
    g->opsets[0].version = 17;
    g->opsets[1].domain = amp_strdup(ctx, "ai.onnx.preview.training");
    g->opsets[1].version = 1;
    g->n_opsets = 2;
    amp_node n = {0};
    n.domain = "";
    cr_assert_eq(amp_node_opset(g, &n), 17);
    n.domain = "ai.onnx";
    cr_assert_eq(amp_node_opset(g, &n), 17, "ai.onnx is the default domain");
    n.domain = NULL;
    cr_assert_eq(amp_node_opset(g, &n), 17);
    n.domain = "ai.onnx.preview.training";
    g->opsets[1].version = 3;
    cr_assert_eq(amp_node_opset(g, &n), 3, "an imported domain's own version");
    n.domain = "com.example";
    cr_assert_eq(amp_node_opset(g, &n), 1, "a domain the graph does not import");
    amp_graph_destroy(g);
    amp_context_destroy(ctx);
}

/* A message that wraps the one already there ("...: %s", ctx->err), as callers up the stack do:
 * the result is the outer text followed by the inner, not what vsnprintf makes of a buffer it
 * reads while writing it. */
Test(base, seterr_wraps_its_own_message) {
    amp_context *ctx = NULL;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    amp_seterr(ctx, AMP_ERR_NO_MEMORY, "cudaMalloc(%d) failed: out of memory", 3451136);
    amp_seterr(ctx, AMP_ERR_NO_MEMORY, "cannot allocate %d bytes of weights and state: %s", 3451136, ctx->err);
    amp_status s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "training step: %s", ctx->err);
    cr_expect_eq(s, AMP_ERR_NO_MEMORY);
    cr_expect_str_eq(amp_context_last_error(ctx),
                     "training step: cannot allocate 3451136 bytes of weights and state: cudaMalloc(3451136) failed: "
                     "out of memory");
    amp_context_destroy(ctx);
}
